#!/bin/sh
# Makes the TLS files test_bridge uses, in the folder DIR (given), with the
# openssl command-line tool (Debian package openssl):
#   ca.crt        a CA;  server.pem  the export's certificate (CN 127.0.0.1,
#                 signed by ca) followed by its key
#   client.pem    an import's client certificate signed by ca, and its key
#   other-ca.crt  another CA;  wrong-client.pem  a client certificate signed
#                 by other-ca, which an export trusting ca must refuse
# EC P-256 keys: quick to make, and mbedTLS (nng's TLS) takes them.
set -eu
dir=${1:?usage: bridge_certs.sh DIR}
command -v openssl >/dev/null || {
  echo "bridge_certs.sh: missing package openssl (apt-get install openssl)" >&2
  exit 1
}
cd "$dir"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# ca NAME SUBJECT: a self-signed CA certificate NAME.crt with key NAME.key.
ca() {
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 2 -out "$1.crt" 2>/dev/null
}

# leaf NAME CN CA: NAME.pem, a certificate for CN signed by CA, then its key.
# The host is in the CN: mbedTLS 2 matches a server name against DNS names
# and the CN, not against IP addresses.
leaf() {
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\n' >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial \
    -days 2 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  cat "$1.crt" "$1.key" >"$1.pem"
}

ca ca "shmrpc test CA"
ca other-ca "shmrpc other CA"
leaf server 127.0.0.1 ca
leaf client shmrpc-import ca
leaf wrong-client shmrpc-import other-ca
