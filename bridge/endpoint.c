/* nng endpoints for the bridge: URL checks, TLS and TCP options, errors.
 * See endpoint.h. */
#include "endpoint.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <nng/supplemental/tls/tls.h>

#include "shmrpc.h"

int bridge__fail(bridge_error *error, int code, const char *format, ...) {
  va_list args;
  if (error != NULL) {
    va_start(args, format);
    vsnprintf(error->text, sizeof(error->text), format, args);
    va_end(args);
  }
  return code;
}

int bridge__nng_fail(bridge_error *error, const char *what, const char *url,
                     int nng_rv) {
  int code =
      nng_rv == NNG_EADDRINVAL || nng_rv == NNG_ENOTSUP || nng_rv == NNG_EINVAL
          ? SHMRPC_EINVAL
          : SHMRPC_EOS;
  return bridge__fail(error, code, "%s %s: %s", what, url,
                      nng_strerror(nng_rv));
}

static int starts_with(const char *text, const char *prefix) {
  return strncmp(text, prefix, strlen(prefix)) == 0;
}

/* 1 if host (len bytes) is a loopback name or address: localhost, ::1, or a
 * dotted IPv4 address whose first number is 127. */
static int is_loopback(const char *host, size_t len) {
  size_t i, dots = 0;
  if ((len == 9 && strncmp(host, "localhost", 9) == 0) ||
      (len == 3 && strncmp(host, "::1", 3) == 0))
    return 1;
  if (len < 9 || strncmp(host, "127.", 4) != 0)
    return 0;
  for (i = 4; i < len; i++) {
    if (host[i] == '.')
      dots++;
    else if (!isdigit((unsigned char)host[i]))
      return 0;
  }
  return dots == 2 && host[len - 1] != '.';
}

int bridge__check_url(const char *url, int listening, int allow_remote,
                      const bridge_tls *tls, bridge_error *error) {
  const char *authority, *host, *port, *end;
  size_t host_len;
  int secure;

  if (url == NULL || strlen(url) >= BRIDGE_URL_MAX)
    return bridge__fail(error, SHMRPC_EINVAL,
                        "a URL of at most %d bytes "
                        "is needed",
                        BRIDGE_URL_MAX - 1);
  if (starts_with(url, "tcp://"))
    secure = 0;
  else if (starts_with(url, "tls+tcp://"))
    secure = 1;
  else
    return bridge__fail(error, SHMRPC_EINVAL,
                        "unsupported URL '%s' (tcp://HOST:PORT or "
                        "tls+tcp://HOST:PORT)",
                        url);
  authority = strstr(url, "://") + 3;
  if (authority[0] == '[') {
    host = authority + 1;
    end = strchr(host, ']');
    if (end == NULL || end[1] != ':')
      return bridge__fail(error, SHMRPC_EINVAL, "bad address in '%s'", url);
    host_len = (size_t)(end - host);
    port = end + 2;
  } else {
    host = authority;
    end = strrchr(authority, ':');
    if (end == NULL)
      return bridge__fail(error, SHMRPC_EINVAL, "no port in '%s'", url);
    host_len = (size_t)(end - host);
    port = end + 1;
  }
  if (port[0] == '\0' || strspn(port, "0123456789") != strlen(port) ||
      strlen(port) > 5)
    return bridge__fail(error, SHMRPC_EINVAL, "bad port in '%s'", url);
  if (!listening && host_len == 0)
    return bridge__fail(error, SHMRPC_EINVAL, "no host in '%s'", url);
  /* tcp:// authenticates no one: by default only this machine may
   * connect. An empty host or * would mean every interface. */
  if (listening && !allow_remote && !is_loopback(host, host_len))
    return bridge__fail(error, SHMRPC_EINVAL,
                        "'%s' is not a loopback address: anyone who reaches "
                        "it could call the service; give --allow-remote to "
                        "listen there anyway",
                        url);
  if (!secure && tls != NULL &&
      (tls->cert_key_file != NULL || tls->ca_file != NULL ||
       tls->server_name != NULL))
    return bridge__fail(error, SHMRPC_EINVAL,
                        "TLS options need a tls+tcp:// URL, not '%s'", url);
  if (secure && listening && (tls == NULL || tls->cert_key_file == NULL))
    return bridge__fail(error, SHMRPC_EINVAL,
                        "'%s' needs --tls-cert: the export's certificate and "
                        "key",
                        url);
  if (secure && !listening && (tls == NULL || tls->ca_file == NULL))
    return bridge__fail(error, SHMRPC_EINVAL,
                        "'%s' needs --tls-ca: the CA that signed the "
                        "export's certificate",
                        url);
  if (listening && tls != NULL && tls->server_name != NULL)
    return bridge__fail(error, SHMRPC_EINVAL,
                        "--tls-server-name is for the import");
  return 0;
}

static int set_string(const bridge__endpoint *endpoint, const char *option,
                      const char *value) {
  return endpoint->listening
             ? nng_listener_set_string(endpoint->listener, option, value)
             : nng_dialer_set_string(endpoint->dialer, option, value);
}

static int set_int(const bridge__endpoint *endpoint, const char *option,
                   int value) {
  return endpoint->listening
             ? nng_listener_set_int(endpoint->listener, option, value)
             : nng_dialer_set_int(endpoint->dialer, option, value);
}

/* Applies the TLS files; reports which one nng refused. */
static int apply_tls(const bridge__endpoint *endpoint, const bridge_tls *tls,
                     bridge_error *error) {
  int rv;
  if (tls->cert_key_file != NULL) {
    rv = set_string(endpoint, NNG_OPT_TLS_CERT_KEY_FILE, tls->cert_key_file);
    if (rv != 0)
      return bridge__nng_fail(error, "cannot use --tls-cert",
                              tls->cert_key_file, rv);
  }
  if (tls->ca_file != NULL) {
    rv = set_string(endpoint, NNG_OPT_TLS_CA_FILE, tls->ca_file);
    if (rv != 0)
      return bridge__nng_fail(error, "cannot use --tls-ca", tls->ca_file, rv);
  }
  if (tls->server_name != NULL) {
    rv = set_string(endpoint, NNG_OPT_TLS_SERVER_NAME, tls->server_name);
    if (rv != 0)
      return bridge__nng_fail(error, "cannot use --tls-server-name",
                              tls->server_name, rv);
  }
  /* A dialer always verifies the export. A listener given a CA requires
   * client certificates signed by it; without one it asks for none. */
  rv = set_int(endpoint, NNG_OPT_TLS_AUTH_MODE,
               endpoint->listening && tls->ca_file == NULL
                   ? NNG_TLS_AUTH_MODE_NONE
                   : NNG_TLS_AUTH_MODE_REQUIRED);
  if (rv != 0)
    return bridge__nng_fail(error, "cannot require certificates on", "TLS", rv);
  return 0;
}

int bridge__endpoint_create(bridge__endpoint *endpoint, nng_socket socket,
                            const char *url, int listening,
                            const bridge_tls *tls, bridge_error *error) {
  int rv;
  memset(endpoint, 0, sizeof(*endpoint));
  endpoint->listening = listening;
  rv = listening ? nng_listener_create(&endpoint->listener, socket, url)
                 : nng_dialer_create(&endpoint->dialer, socket, url);
  if (rv != 0)
    return bridge__nng_fail(
        error, listening ? "cannot listen at" : "cannot dial", url, rv);
  /* Keep-alive lets a connection whose peer vanished (no FIN: a machine
   * off, a cable out) end some day even for callers with no timeout. */
  (void)(listening ? nng_listener_set_bool(endpoint->listener,
                                           NNG_OPT_TCP_KEEPALIVE, true)
                   : nng_dialer_set_bool(endpoint->dialer,
                                         NNG_OPT_TCP_KEEPALIVE, true));
  if (starts_with(url, "tls+")) {
    rv = apply_tls(endpoint, tls, error);
    if (rv != 0) {
      bridge__endpoint_close(endpoint);
      return rv;
    }
  }
  return 0;
}

void bridge__endpoint_close(bridge__endpoint *endpoint) {
  if (endpoint->listening)
    nng_listener_close(endpoint->listener);
  else
    nng_dialer_close(endpoint->dialer);
}
