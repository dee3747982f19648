/*
 * shmrpc itself, used as a user would: a server with default options (but a
 * capacity for the largest message, and the spin windows of
 * --server-spin-us / --client-spin-us when given) registers one echo-like method that
 * writes its response in place with shmrpc_reply_buffer() +
 * shmrpc_reply_commit(); clients open the service by name and call it with a
 * timeout. The parent stops the server with SIGTERM, whose handler calls
 * shmrpc_server_stop(), then the server destroys itself and exits.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "payload.h"
#include "shmrpc.h"

/* Timeouts of a user who would rather see an error than hang. */
#define BENCH_OPEN_TIMEOUT_MS 10000
#define BENCH_CALL_TIMEOUT_MS 10000
/* Slot capacity beyond the largest message. */
#define BENCH_CAPACITY_EXTRA 4096u

int32_t bench_shmrpc_server_spin_us = -1;
int32_t bench_shmrpc_client_spin_us = -1;
uint32_t bench_shmrpc_server_lanes;
uint32_t bench_shmrpc_server_workers;

typedef struct shmrpc_state {
  char name[SHMRPC_NAME_MAX + 1];
  size_t capacity;
  unsigned char *template_body; /* server: the response body */
} shmrpc_state;

/* The server the SIGTERM handler stops. */
static shmrpc_server *volatile bench_running_server;

static void on_sigterm(int signal_number) {
  (void)signal_number;
  shmrpc_server *server = bench_running_server;
  if (server != NULL) {
    shmrpc_server_stop(server);
  }
}

static int shmrpc_prepare(void **out, size_t max_size) {
  static unsigned service_count;
  shmrpc_state *state = calloc(1, sizeof *state);
  if (state == NULL) {
    bench_error("out of memory");
    return -1;
  }
  /* Unique per benchmark process and per server it starts. */
  snprintf(state->name, sizeof state->name, "shmrpc-bench-%ld-%u",
           (long)getpid(), service_count++);
  state->capacity = max_size + BENCH_CAPACITY_EXTRA;
  if (state->capacity < 1024u * 1024u + BENCH_CAPACITY_EXTRA) {
    state->capacity = 1024u * 1024u + BENCH_CAPACITY_EXTRA;
  }
  *out = state;
  return 0;
}

/* The echo-like method: answers with as many bytes as the request has,
 * written in place into the slot. */
static int echo_handler(void *user_data, const void *request,
                        size_t request_len, shmrpc_reply *reply) {
  const shmrpc_state *state = user_data;
  size_t capacity = 0;
  unsigned char *out = shmrpc_reply_buffer(reply, &capacity);
  if (out == NULL || request_len < BENCH_MIN_SIZE || request_len > capacity) {
    return shmrpc_reply_error(reply, 1, "bad request size");
  }
  bench_answer(request, request_len, out, state->template_body);
  return shmrpc_reply_commit(reply, request_len);
}

/* The sleeping method: the handler of a long call. */
static int sleep_handler(void *user_data, const void *request,
                         size_t request_len, shmrpc_reply *reply) {
  uint32_t ms = 0;
  (void)user_data;
  if (request_len < sizeof ms) {
    return shmrpc_reply_error(reply, 1, "sleep takes a u32");
  }
  memcpy(&ms, request, sizeof ms);
  bench_sleep_ms(ms);
  return shmrpc_reply_write(reply, request, request_len);
}

static int shmrpc_serve(void *opaque, int ready_fd) {
  shmrpc_state *state = opaque;
  shmrpc_server_options options;
  shmrpc_server *server = NULL;
  state->template_body = malloc(state->capacity);
  if (state->template_body == NULL) {
    bench_error("out of memory");
    return -1;
  }
  bench_fill_pattern(state->template_body, state->capacity);
  shmrpc_server_options_init(&options);
  options.capacity = state->capacity;
  options.spin_us = bench_shmrpc_server_spin_us;
  options.lanes = bench_shmrpc_server_lanes;
  options.workers = bench_shmrpc_server_workers;
  int rc = shmrpc_server_create(&server, state->name, &options);
  if (rc != 0) {
    bench_error("shmrpc_server_create(%s): %s", state->name,
                shmrpc_err_name(rc));
    return -1;
  }
  rc = shmrpc_server_register(server, BENCH_METHOD_ECHO, "echo", echo_handler,
                              state);
  if (rc == 0) {
    rc = shmrpc_server_register(server, BENCH_METHOD_SLEEP, "sleep",
                                sleep_handler, NULL);
  }
  if (rc != 0) {
    bench_error("shmrpc_server_register: %s", shmrpc_err_name(rc));
    shmrpc_server_destroy(server);
    return -1;
  }
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = on_sigterm;
  sigemptyset(&action.sa_mask);
  bench_running_server = server;
  sigaction(SIGTERM, &action, NULL);
  bench_signal_ready(ready_fd);
  rc = shmrpc_server_run(server);
  bench_running_server = NULL;
  if (rc != 0) {
    bench_error("shmrpc_server_run: %s", shmrpc_err_name(rc));
  }
  shmrpc_server_destroy(server);
  free(state->template_body);
  return rc == 0 ? 0 : -1;
}

int bench_shmrpc_open(const char *name, void **conn) {
  shmrpc_client *client = NULL;
  shmrpc_client_options options;
  shmrpc_client_options_init(&options);
  options.spin_us = bench_shmrpc_client_spin_us;
  int rc = shmrpc_client_open(&client, name, &options, BENCH_OPEN_TIMEOUT_MS);
  if (rc != 0) {
    bench_error("shmrpc_client_open(%s): %s", name, shmrpc_err_name(rc));
    return -1;
  }
  *conn = client;
  return 0;
}

const char *bench_shmrpc_service_name(const void *state) {
  return ((const shmrpc_state *)state)->name;
}

static int shmrpc_connect(void *opaque, void **conn) {
  shmrpc_state *state = opaque;
  return bench_shmrpc_open(state->name, conn);
}

static int shmrpc_bench_call(void *conn, const void *request,
                             size_t request_len, void *response,
                             size_t response_cap, size_t *response_len) {
  int rc = shmrpc_call(conn, BENCH_METHOD_ECHO, request, request_len, response,
                       response_cap, response_len, BENCH_CALL_TIMEOUT_MS);
  if (rc != 0) {
    const char *message = "";
    int32_t code = 0;
    if (rc == SHMRPC_EAPP) {
      code = shmrpc_client_app_error(conn, &message);
    }
    bench_error("shmrpc_call: %s %d %s", shmrpc_err_name(rc), (int)code,
                message);
    return -1;
  }
  return 0;
}

static void shmrpc_disconnect(void *conn) { shmrpc_client_close(conn); }

static void shmrpc_stop(void *opaque, pid_t server_pid) {
  (void)opaque;
  kill(server_pid, SIGTERM);
}

static void shmrpc_release(void *opaque) { free(opaque); }

const bench_transport bench_transport_shmrpc = {
    .name = "shmrpc",
    .description = "shmrpc library, default options, echo handler writing "
                   "in place (shmrpc_reply_buffer + shmrpc_reply_commit)",
    .max_clients = BENCH_MAX_CLIENTS,
    .prepare = shmrpc_prepare,
    .serve = shmrpc_serve,
    .connect = shmrpc_connect,
    .call = shmrpc_bench_call,
    .disconnect = shmrpc_disconnect,
    .stop = shmrpc_stop,
    .release = shmrpc_release,
};
