/*
 * What the export and the import share about nng endpoints: checking a
 * URL, creating a listener or a dialer with its TLS and TCP options, and
 * turning failures into one line for bridge_error. Private to bridge/.
 */
#ifndef SHMRPC_BRIDGE_ENDPOINT_H
#define SHMRPC_BRIDGE_ENDPOINT_H

#include <nng/nng.h>

#include "bridge.h"

/* A listener (export) or a dialer (import). */
typedef struct bridge__endpoint {
  int listening;
  nng_listener listener;
  nng_dialer dialer;
} bridge__endpoint;

/* Formats error->text and returns code. */
int bridge__fail(bridge_error *error, int code, const char *format, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Reports an nng failure "WHAT URL: nng's message" and returns the
 * SHMRPC_E* code it deserves (SHMRPC_EINVAL for a malformed address,
 * SHMRPC_EOS otherwise). */
int bridge__nng_fail(bridge_error *error, const char *what, const char *url,
                     int nng_rv);

/*
 * Checks url: tcp:// or tls+tcp:// with a host and a port, no longer than
 * BRIDGE_URL_MAX. A listening URL must name a loopback host (127.0.0.0/8,
 * ::1 or localhost) unless allow_remote. TLS options are refused with tcp://
 * and the ones TLS needs are required with tls+tcp:// (a certificate for
 * listening, a CA for dialing). Returns 0 or SHMRPC_EINVAL.
 */
int bridge__check_url(const char *url, int listening, int allow_remote,
                      const bridge_tls *tls, bridge_error *error);

/* Creates a listener or a dialer for url on socket, with TCP keep-alive and
 * the TLS settings. Returns 0, or an error after reporting it (nothing is
 * left open). */
int bridge__endpoint_create(bridge__endpoint *endpoint, nng_socket socket,
                            const char *url, int listening,
                            const bridge_tls *tls, bridge_error *error);

/* Closes an endpoint that was created but not started. */
void bridge__endpoint_close(bridge__endpoint *endpoint);

#endif /* SHMRPC_BRIDGE_ENDPOINT_H */
