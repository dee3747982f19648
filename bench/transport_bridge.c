/*
 * A call through the bridge, as two machines would make it, on loopback:
 *
 *   client --shmrpc--> import ==nng tcp://127.0.0.1==> export --shmrpc-->
 *   the shmrpc transport's echo server
 *
 * The "server" of this transport is three processes: the echo server (the
 * shmrpc transport's own, started with bench_server_start), the export,
 * and the import, which is the server process itself; the clients call the
 * imported name exactly as the shmrpc transport's clients call theirs.
 * Compare it with the nng transport: the same payload over nng req/rep.
 *
 * nng's threads do not survive fork(), so the export is forked before the
 * server process first touches nng. Every process stops on SIGTERM, which
 * the export and the import wait for with sigwait().
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "bridge.h"
#include "shmrpc.h"

typedef struct bridge_bench_state {
  size_t max_size;
  char import_name[SHMRPC_NAME_MAX + 1];
} bridge_bench_state;

static int bridge_bench_prepare(void **out, size_t max_size) {
  static unsigned count;
  bridge_bench_state *state = calloc(1, sizeof *state);
  if (state == NULL) {
    bench_error("out of memory");
    return -1;
  }
  state->max_size = max_size;
  snprintf(state->import_name, sizeof state->import_name,
           "shmrpc-bench-bridge-%ld-%u", (long)getpid(), count++);
  *out = state;
  return 0;
}

static void wait_for_sigterm(void) {
  sigset_t stop;
  int signal_number;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  while (sigwait(&stop, &signal_number) != 0) {
  }
}

/* The export's process: serves `service` on a port the system picks,
 * writes the URL to url_fd, and stops on SIGTERM. */
static int run_export(const char *service, int url_fd) {
  bridge_export_options options;
  bridge_export *exp = NULL;
  bridge_error error;
  memset(&options, 0, sizeof options);
  options.service = service;
  options.url = "tcp://127.0.0.1:0";
  options.open_timeout_ms = 10000;
  if (bridge_export_start(&exp, &options, &error) != 0) {
    bench_error("bridge export: %s", error.text);
    return 1;
  }
  const char *url = bridge_export_url(exp);
  if (write(url_fd, url, strlen(url) + 1) < 0) {
    bench_error("bridge export: cannot report the URL: %s", strerror(errno));
  }
  close(url_fd);
  wait_for_sigterm();
  bridge_export_stop(exp);
  return 0;
}

/* Starts the export's process; returns its pid (or -1) and its URL. */
static pid_t start_export(const char *service, char *url, size_t cap) {
  int fds[2];
  if (pipe(fds) != 0) {
    bench_error("pipe: %s", strerror(errno));
    return -1;
  }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    bench_error("fork: %s", strerror(errno));
    return -1;
  }
  if (pid == 0) {
    close(fds[0]);
    _exit(run_export(service, fds[1]));
  }
  close(fds[1]);
  size_t len = 0;
  struct pollfd pfd = {.fd = fds[0], .events = POLLIN, .revents = 0};
  while (len + 1 < cap && poll(&pfd, 1, 15000) > 0) {
    ssize_t n = read(fds[0], url + len, cap - 1 - len);
    if (n <= 0) {
      break;
    }
    len += (size_t)n;
  }
  close(fds[0]);
  url[len] = '\0';
  if (len == 0 || strlen(url) == 0) {
    bench_error("bridge export did not start");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
  }
  return pid;
}

static int bridge_bench_serve(void *opaque, int ready_fd) {
  bridge_bench_state *state = opaque;
  bridge_import_options options;
  bridge_import *imp = NULL;
  bridge_error error;
  bench_server echo;
  char url[BRIDGE_URL_MAX + 16];
  sigset_t stop;
  int status = 0, rc = 0;

  /* The echo server stops on a SIGTERM handler: start it before SIGTERM
   * is blocked here, since children inherit the mask. */
  if (bench_server_start(&bench_transport_shmrpc, state->max_size, &echo) !=
      0) {
    return -1;
  }
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);
  pid_t export_pid =
      start_export(bench_shmrpc_service_name(echo.state), url, sizeof url);
  if (export_pid < 0) {
    bench_server_stop(&echo);
    return -1;
  }
  memset(&options, 0, sizeof options);
  options.url = url;
  options.service = state->import_name;
  options.connect_timeout_ms = 10000;
  if (bridge_import_start(&imp, &options, &error) != 0) {
    bench_error("bridge import: %s", error.text);
    rc = -1;
  } else {
    bench_signal_ready(ready_fd);
    wait_for_sigterm();
    bridge_import_stop(imp);
  }
  kill(export_pid, SIGTERM);
  while (waitpid(export_pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    bench_error("bridge export ended badly (status %d)", status);
    rc = -1;
  }
  if (bench_server_stop(&echo) != 0) {
    rc = -1;
  }
  return rc;
}

static int bridge_bench_connect(void *opaque, void **conn) {
  bridge_bench_state *state = opaque;
  return bench_shmrpc_open(state->import_name, conn);
}

static void bridge_bench_stop(void *opaque, pid_t server_pid) {
  (void)opaque;
  kill(server_pid, SIGTERM);
}

static void bridge_bench_release(void *opaque) { free(opaque); }

/* A client of the imported name is a shmrpc client like any: the shmrpc
 * transport's call and disconnect serve. (A constant table cannot name
 * another table's members, hence these two forwarders.) */
static int bridge_bench_call(void *conn, const void *request,
                             size_t request_len, void *response,
                             size_t response_cap, size_t *response_len) {
  return bench_transport_shmrpc.call(conn, request, request_len, response,
                                     response_cap, response_len);
}

static void bridge_bench_disconnect(void *conn) {
  bench_transport_shmrpc.disconnect(conn);
}

const bench_transport bench_transport_bridge = {
    .name = "bridge",
    .description = "shmrpc client -> bridge import -> nng tcp://127.0.0.1 -> "
                   "bridge export -> the shmrpc echo server",
    .max_clients = BENCH_MAX_CLIENTS,
    .prepare = bridge_bench_prepare,
    .serve = bridge_bench_serve,
    .connect = bridge_bench_connect,
    .call = bridge_bench_call,
    .disconnect = bridge_bench_disconnect,
    .stop = bridge_bench_stop,
    .release = bridge_bench_release,
};
