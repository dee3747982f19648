/*
 * `shmrpc bridge export NAME --listen URL` and `shmrpc bridge import URL
 * --as NAME`: the command line of the bridge (bridge/). Each runs until
 * SIGINT or SIGTERM, says on stdout what it serves and when its connection
 * comes and goes, and stops cleanly (the import removes its name).
 */
#define _POSIX_C_SOURCE 200809L

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "shmrpc.h"
#include "tool.h"

#define BRIDGE_IMPORT_DEFAULT_TIMEOUT_MS 5000

static const char bridge_help[] =
    "usage: shmrpc bridge export NAME --listen URL [--allow-remote]\n"
    "                     [--workers N] [--timeout MS]\n"
    "                     [--tls-cert FILE] [--tls-ca FILE]\n"
    "       shmrpc bridge import URL --as NAME [--timeout MS]\n"
    "                     [--tls-ca FILE] [--tls-cert FILE]\n"
    "                     [--tls-server-name HOST]\n"
    "\n"
    "Connects services across machines over nng. URL is tcp://HOST:PORT or\n"
    "tls+tcp://HOST:PORT; port 0 lets the system choose one.\n"
    "\n"
    "export NAME --listen URL\n"
    "  Serves the local service NAME at URL. Each request becomes a call on\n"
    "  NAME with the caller's remaining timeout; its answer, application\n"
    "  error or transport error goes back as it is. Up to N requests\n"
    "  (--workers, default 4) are served at once. Requests larger than\n"
    "  NAME's slot are refused before they are read. Prints\n"
    "  \"exporting NAME (...) at URL\" with the port chosen, once listening.\n"
    "  --timeout: how long to wait for NAME to appear (default 1000 ms).\n"
    "\n"
    "import URL --as NAME\n"
    "  Publishes the local service NAME, with the export's slot capacity,\n"
    "  whose every method (the built-in ping and list included) forwards\n"
    "  to the export at URL: local clients use NAME as if the server ran\n"
    "  here. Prints \"importing URL as NAME (...)\" once serving, then \"lost\n"
    "  the connection to URL; reconnecting\" and \"connected to URL\" as the\n"
    "  connection comes and goes. While it is lost, calls fail at once with\n"
    "  SHMRPC_ENOSERVER; a call in flight when it breaks fails with\n"
    "  SHMRPC_ESERVERDIED (it may or may not have run; nothing is resent).\n"
    "  --timeout: how long to wait for the export at the start (default\n"
    "  5000 ms).\n"
    "\n"
    "Security: tcp:// authenticates and encrypts nothing; anyone who can\n"
    "connect can call every method of NAME. So the export listens only on\n"
    "loopback (127.0.0.0/8, ::1, localhost) unless --allow-remote is given.\n"
    "Across machines use tls+tcp:// with certificates:\n"
    "  --tls-cert FILE     PEM file with this side's certificate (chain)\n"
    "                      followed by its unencrypted private key. Required\n"
    "                      by the export; for the import, the client\n"
    "                      certificate an export with --tls-ca requires.\n"
    "  --tls-ca FILE       PEM file with the CA certificate(s) that sign the\n"
    "                      peer's certificate. Required by the import (it\n"
    "                      always verifies the export); the export given one\n"
    "                      requires client certificates signed by it.\n"
    "  --tls-server-name HOST\n"
    "                      import: the name the export's certificate must\n"
    "                      carry (default: the URL's host).\n"
    "  --allow-remote      export: listen on an address other than loopback.\n"
    "\n"
    "Exit status: 0 once stopped by SIGINT or SIGTERM, 1 when it cannot\n"
    "start (no such service, no export answering, an address in use, a TLS\n"
    "file nng refuses), 2 for a usage error.\n";

typedef struct bridge_line {
  const char *mode;    /* "export" or "import" */
  const char *operand; /* NAME (export) or URL (import) */
  const char *listen, *as;
  int allow_remote;
  long workers;
  long timeout_ms;
  int timeout_given;
  bridge_tls tls;
} bridge_line;

static int usage(const char *format, const char *arg) {
  char message[256];
  snprintf(message, sizeof(message), format, arg);
  tool_error("bridge", "%s (see 'shmrpc bridge --help')", message);
  return TOOL_EXIT_USAGE;
}

/* Reads the options after `bridge MODE`. Returns 0, -1 after --help, or an
 * exit code after reporting. */
static int parse(int argc, char **argv, bridge_line *line) {
  int i;
  memset(line, 0, sizeof(*line));
  line->mode = argv[1];
  for (i = 2; i < argc; i++) {
    const char *arg = argv[i], *equals = strchr(arg, '='), *value = NULL;
    size_t name_len = equals != NULL ? (size_t)(equals - arg) : strlen(arg);
#define IS(option)                                                             \
  (name_len == strlen(option) && strncmp(arg, option, name_len) == 0)
    if (arg[0] != '-') {
      if (line->operand != NULL)
        return usage("unexpected argument '%s'", arg);
      line->operand = arg;
      continue;
    }
    if (IS("-h") || IS("--help"))
      return -1;
    if (IS("--allow-remote")) {
      line->allow_remote = 1;
      continue;
    }
    if (equals != NULL)
      value = equals + 1;
    else if (i + 1 < argc)
      value = argv[++i];
    else
      return usage("option '%s' needs a value", arg);
    if (IS("--listen"))
      line->listen = value;
    else if (IS("--as"))
      line->as = value;
    else if (IS("--tls-cert"))
      line->tls.cert_key_file = value;
    else if (IS("--tls-ca"))
      line->tls.ca_file = value;
    else if (IS("--tls-server-name"))
      line->tls.server_name = value;
    else if (IS("--workers")) {
      if (tool_parse_long(value, 1, BRIDGE_MAX_WORKERS, &line->workers) != 0)
        return usage("bad --workers '%s' (1 to 64)", value);
    } else if (IS("--timeout")) {
      if (tool_parse_long(value, -1, INT32_MAX, &line->timeout_ms) != 0)
        return usage("bad --timeout '%s' (milliseconds, or -1)", value);
      line->timeout_given = 1;
    } else {
      return usage("unknown option '%s'", arg);
    }
#undef IS
  }
  return 0;
}

/* Blocks the stop signals in every thread (nng's and the bridge's, which
 * inherit the mask), so that waiting for them is one sigwait(). */
static void block_stop_signals(sigset_t *stop) {
  sigemptyset(stop);
  sigaddset(stop, SIGINT);
  sigaddset(stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, stop, NULL);
  /* A peer that goes away must be an error, never a signal. */
  signal(SIGPIPE, SIG_IGN);
}

static void wait_for_stop(const sigset_t *stop) {
  int signal_number;
  while (sigwait(stop, &signal_number) != 0) {
  }
}

static int start_failed(const char *mode, int rc, const bridge_error *error) {
  tool_error("bridge", "%s: %s", mode, error->text);
  return rc == SHMRPC_EINVAL ? TOOL_EXIT_USAGE : TOOL_EXIT_RUNTIME;
}

static int run_export(const bridge_line *line) {
  bridge_export_options options;
  bridge_export *exp = NULL;
  bridge_error error;
  sigset_t stop;
  int rc;
  if (line->operand == NULL)
    return usage("%s", "export needs the service NAME");
  if (line->listen == NULL)
    return usage("%s", "export needs --listen URL");
  if (line->as != NULL || line->tls.server_name != NULL)
    return usage("%s", "export takes no --as or --tls-server-name");
  memset(&options, 0, sizeof(options));
  options.service = line->operand;
  options.url = line->listen;
  options.allow_remote = line->allow_remote;
  options.workers = (int)line->workers;
  options.open_timeout_ms =
      line->timeout_given ? (int32_t)line->timeout_ms : TOOL_DEFAULT_TIMEOUT_MS;
  options.tls = line->tls;
  block_stop_signals(&stop);
  rc = bridge_export_start(&exp, &options, &error);
  if (rc != 0)
    return start_failed("export", rc, &error);
  if (line->allow_remote && strncmp(line->listen, "tcp://", 6) == 0)
    tool_error("bridge",
               "export: warning: tcp:// is unauthenticated: anyone who can "
               "reach %s can call every method of '%s'",
               bridge_export_url(exp), line->operand);
  printf("exporting %s (slot capacity %lu bytes, %d workers) at %s\n",
         line->operand, (unsigned long)bridge_export_capacity(exp),
         options.workers > 0 ? options.workers : BRIDGE_DEFAULT_WORKERS,
         bridge_export_url(exp));
  fflush(stdout);
  wait_for_stop(&stop);
  bridge_export_stop(exp);
  return TOOL_EXIT_OK;
}

/* Import events: connection changes on stdout (a script may wait for
 * them), unreadable answers on stderr. */
static void print_event(void *ctx, bridge_event event, const char *detail) {
  (void)ctx;
  if (event == BRIDGE_EVENT_PROTOCOL) {
    tool_error("bridge", "import: %s", detail);
    return;
  }
  printf("%s\n", detail);
  fflush(stdout);
}

static int run_import(const bridge_line *line) {
  bridge_import_options options;
  bridge_import *imp = NULL;
  bridge_error error;
  sigset_t stop;
  int rc;
  if (line->operand == NULL)
    return usage("%s", "import needs the export's URL");
  if (line->as == NULL)
    return usage("%s", "import needs --as NAME");
  if (line->listen != NULL || line->allow_remote || line->workers != 0)
    return usage("%s", "import takes no --listen, --allow-remote or "
                       "--workers");
  if (line->timeout_given && line->timeout_ms < 0)
    return usage("%s", "import needs a finite --timeout");
  memset(&options, 0, sizeof(options));
  options.url = line->operand;
  options.service = line->as;
  options.connect_timeout_ms = line->timeout_given
                                   ? (int32_t)line->timeout_ms
                                   : BRIDGE_IMPORT_DEFAULT_TIMEOUT_MS;
  options.tls = line->tls;
  options.on_event = print_event;
  block_stop_signals(&stop);
  rc = bridge_import_start(&imp, &options, &error);
  if (rc != 0)
    return start_failed("import", rc, &error);
  printf("importing %s as %s (slot capacity %lu bytes)\n", line->operand,
         line->as, (unsigned long)bridge_import_capacity(imp));
  fflush(stdout);
  wait_for_stop(&stop);
  bridge_import_stop(imp);
  return TOOL_EXIT_OK;
}

void tool_bridge_help(void) { fputs(bridge_help, stdout); }

int tool_bridge(int argc, char **argv) {
  bridge_line line;
  int rc;
  if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
      strcmp(argv[1], "-h") == 0) {
    if (argc < 2) {
      tool_error("bridge", "export or import? (see 'shmrpc bridge --help')");
      return TOOL_EXIT_USAGE;
    }
    tool_bridge_help();
    return TOOL_EXIT_OK;
  }
  if (strcmp(argv[1], "export") != 0 && strcmp(argv[1], "import") != 0) {
    tool_error("bridge", "unknown bridge command '%s' (export or import)",
               argv[1]);
    return TOOL_EXIT_USAGE;
  }
  rc = parse(argc, argv, &line);
  if (rc < 0) {
    tool_bridge_help();
    return TOOL_EXIT_OK;
  }
  if (rc != 0)
    return rc;
  return strcmp(line.mode, "export") == 0 ? run_export(&line)
                                          : run_import(&line);
}
