/*
 * The shmrpc bridge: a local service served to the network over nng
 * (export), and a remote export published as a local service (import).
 * The `shmrpc bridge` command (tools/bridge.c) and the benchmark use it;
 * the core library knows nothing of it.
 *
 *   machine A                                 machine B
 *   client --shmrpc--> import ==nng req/rep==> export --shmrpc--> server
 *
 * Each side runs threads of its own (nng's, and the ones below); the
 * functions here start and stop them. Every function returns 0 or a
 * negative SHMRPC_E* code; on failure *error says what went wrong in one
 * line, naming the URL, file or service concerned.
 */
#ifndef SHMRPC_BRIDGE_H
#define SHMRPC_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

/* Requests an export serves at once by default, each with an nng context,
 * a thread and a client handle of its own. */
#define BRIDGE_DEFAULT_WORKERS 4
#define BRIDGE_MAX_WORKERS 64
/* Longest URL accepted, and the bound URL reported. */
#define BRIDGE_URL_MAX 256

/* What went wrong, for a person: "cannot listen at tcp://...: ...". */
typedef struct bridge_error {
  char text[512];
} bridge_error;

/* TLS settings of either side, for tls+tcp:// URLs (NULL: not given). */
typedef struct bridge_tls {
  /* PEM file with this side's certificate chain and its unencrypted
   * private key. Required by an export; an import's client certificate,
   * for an export that requires one. */
  const char *cert_key_file;
  /* PEM file with the CA certificate(s) that sign the peer's. Required by
   * an import (it verifies the export); an export given one requires and
   * verifies client certificates. */
  const char *ca_file;
  /* Import only: the name the export's certificate must carry; the URL's
   * host when NULL. */
  const char *server_name;
} bridge_tls;

/* ---- Export ----------------------------------------------------------- */

typedef struct bridge_export bridge_export;

typedef struct bridge_export_options {
  const char *service;     /* the local service to serve */
  const char *url;         /* where to listen: tcp:// or tls+tcp:// */
  int allow_remote;        /* listen on a host other than loopback */
  int workers;             /* 1 to BRIDGE_MAX_WORKERS; 0: the default */
  int32_t open_timeout_ms; /* how long to wait for the service to appear */
  bridge_tls tls;
} bridge_export_options;

/* Opens the service, listens at the URL and serves until
 * bridge_export_stop(). Errors: SHMRPC_EINVAL (a bad option or URL, a
 * non-loopback host without allow_remote), SHMRPC_ENOSERVER (the service
 * did not appear in time), SHMRPC_EOS (nng refused: the address is taken,
 * a TLS file cannot be read...), and the errors of shmrpc_client_open. */
int bridge_export_start(bridge_export **out,
                        const bridge_export_options *options,
                        bridge_error *error);

/* The URL it listens at, with the port the system chose for port 0. */
const char *bridge_export_url(const bridge_export *exp);

/* The slot capacity of the exported service, as it was at the start:
 * longer requests are refused before they are read. */
size_t bridge_export_capacity(const bridge_export *exp);

/* Stops listening, waits for the calls in progress and frees everything.
 * NULL does nothing. */
void bridge_export_stop(bridge_export *exp);

/* ---- Import ----------------------------------------------------------- */

typedef struct bridge_import bridge_import;

/* What an import reports while it runs. */
typedef enum bridge_event {
  BRIDGE_EVENT_CONNECTED, /* the connection to the export is back */
  BRIDGE_EVENT_LOST,      /* the connection was lost; it is being retried */
  BRIDGE_EVENT_PROTOCOL   /* the export answered something unreadable */
} bridge_event;

/* Called from nng's or the server's threads; detail is one line of text. */
typedef void (*bridge_event_fn)(void *ctx, bridge_event event,
                                const char *detail);

typedef struct bridge_import_options {
  const char *url;            /* the export: tcp:// or tls+tcp:// */
  const char *service;        /* the local name to publish */
  int32_t connect_timeout_ms; /* how long to wait for the export at start */
  bridge_tls tls;
  bridge_event_fn on_event; /* may be NULL */
  void *event_ctx;
} bridge_import_options;

/* Connects to the export, learns its slot capacity, and publishes the
 * service with that capacity; every call to it, the built-in ping and list
 * included, is forwarded with the caller's remaining timeout. Errors:
 * SHMRPC_EINVAL, SHMRPC_ENOSERVER (no answer from the export in time),
 * SHMRPC_EPROTO (the peer is not a compatible export), SHMRPC_EOS, and the
 * errors of shmrpc_server_create (SHMRPC_EEXIST: the name is served). */
int bridge_import_start(bridge_import **out,
                        const bridge_import_options *options,
                        bridge_error *error);

/* The slot capacity of the published service (the export's). */
size_t bridge_import_capacity(const bridge_import *imp);

/* Stops serving: calls in flight end with SHMRPC_ESHUTDOWN, the name is
 * removed, everything is freed. NULL does nothing. */
void bridge_import_stop(bridge_import *imp);

#endif /* SHMRPC_BRIDGE_H */
