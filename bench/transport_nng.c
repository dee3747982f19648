/*
 * The baseline of the bridge rows: nng req/rep over tcp:// on loopback,
 * one req socket per client and one rep socket in the server, with the
 * payload of the other transports. The server answers in the request's own
 * message (its template copied over the body, stamped), the cheapest echo
 * nng allows; the client copies its request into a message and the answer
 * out of one, as a user of nng_sendmsg/nng_recvmsg would.
 *
 * nng starts threads when first used, and they do not survive fork(): the
 * parent never touches nng, so the server and each client start their own.
 * The server listens on a port the system chooses and leaves its number in
 * a page shared with the clients, which are forked after it is ready.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "bench.h"
#include "payload.h"

/* Room for nng's own header beyond the payload. */
#define BENCH_NNG_SLACK 64u

typedef struct nng_bench_state {
  size_t max_size;
  volatile int *port; /* shared page: the server's port once ready */
} nng_bench_state;

static int nng_bench_prepare(void **out, size_t max_size) {
  nng_bench_state *state = calloc(1, sizeof *state);
  if (state == NULL) {
    bench_error("out of memory");
    return -1;
  }
  void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) {
    bench_error("mmap: out of memory");
    free(state);
    return -1;
  }
  state->max_size = max_size;
  state->port = page;
  *out = state;
  return 0;
}

/* Ends the server: SIGTERM (blocked, so waited for here) closes the socket,
 * which ends the receive loop. */
static void stop_on_sigterm(void *arg) {
  nng_socket *socket = arg;
  sigset_t stop;
  int signal_number;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  while (sigwait(&stop, &signal_number) != 0) {
  }
  nng_close(*socket);
}

static int nng_bench_serve(void *opaque, int ready_fd) {
  nng_bench_state *state = opaque;
  nng_socket socket;
  nng_listener listener;
  nng_thread *stopper = NULL;
  sigset_t stop;
  int port = 0, rv;
  unsigned char *template_body = malloc(state->max_size);
  if (template_body == NULL) {
    bench_error("out of memory");
    return -1;
  }
  bench_fill_pattern(template_body, state->max_size);
  /* Before nng starts its threads, so that they inherit the mask. */
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);
  if ((rv = nng_rep0_open(&socket)) != 0 ||
      (rv = nng_socket_set_size(socket, NNG_OPT_RECVMAXSZ,
                                state->max_size + BENCH_NNG_SLACK)) != 0 ||
      (rv = nng_listener_create(&listener, socket, "tcp://127.0.0.1:0")) != 0 ||
      (rv = nng_listener_start(listener, 0)) != 0 ||
      (rv = nng_listener_get_int(listener, NNG_OPT_TCP_BOUND_PORT, &port)) !=
          0 ||
      (rv = nng_thread_create(&stopper, stop_on_sigterm, &socket)) != 0) {
    bench_error("nng server: %s", nng_strerror(rv));
    return -1;
  }
  *state->port = port;
  bench_signal_ready(ready_fd);
  for (;;) {
    nng_msg *msg;
    uint64_t tag;
    rv = nng_recvmsg(socket, &msg, 0);
    if (rv != 0)
      break; /* NNG_ECLOSED: stopped */
    unsigned char *body = nng_msg_body(msg);
    size_t len = nng_msg_len(msg);
    if (len < BENCH_MIN_SIZE || len > state->max_size ||
        !bench_read_tag(body, len, &tag)) {
      tag = ~(uint64_t)0;
    }
    if (len >= BENCH_MIN_SIZE && len <= state->max_size) {
      memcpy(body, template_body, len);
      bench_stamp(body, len, ~tag);
    }
    if (nng_sendmsg(socket, msg, 0) != 0) {
      nng_msg_free(msg);
    }
  }
  nng_thread_destroy(stopper);
  free(template_body);
  return rv == NNG_ECLOSED ? 0 : -1;
}

typedef struct nng_bench_conn {
  nng_socket socket;
} nng_bench_conn;

static int nng_bench_connect(void *opaque, void **out) {
  nng_bench_state *state = opaque;
  nng_bench_conn *conn = calloc(1, sizeof *conn);
  char url[64];
  int rv;
  if (conn == NULL) {
    bench_error("out of memory");
    return -1;
  }
  snprintf(url, sizeof url, "tcp://127.0.0.1:%d", *state->port);
  if ((rv = nng_req0_open(&conn->socket)) != 0 ||
      (rv = nng_socket_set_ms(conn->socket, NNG_OPT_REQ_RESENDTIME,
                              NNG_DURATION_INFINITE)) != 0 ||
      (rv = nng_socket_set_size(conn->socket, NNG_OPT_RECVMAXSZ,
                                state->max_size + BENCH_NNG_SLACK)) != 0 ||
      (rv = nng_dial(conn->socket, url, NULL, 0)) != 0) {
    bench_error("nng client %s: %s", url, nng_strerror(rv));
    return -1;
  }
  *out = conn;
  return 0;
}

static int nng_bench_call(void *opaque, const void *request, size_t request_len,
                          void *response, size_t response_cap,
                          size_t *response_len) {
  nng_bench_conn *conn = opaque;
  nng_msg *msg;
  int rv;
  if ((rv = nng_msg_alloc(&msg, 0)) != 0 ||
      (rv = nng_msg_append(msg, request, request_len)) != 0 ||
      (rv = nng_sendmsg(conn->socket, msg, 0)) != 0) {
    bench_error("nng send: %s", nng_strerror(rv));
    return -1;
  }
  if ((rv = nng_recvmsg(conn->socket, &msg, 0)) != 0) {
    bench_error("nng receive: %s", nng_strerror(rv));
    return -1;
  }
  size_t len = nng_msg_len(msg);
  if (len > response_cap) {
    bench_error("nng: answer of %zu bytes for a %zu-byte buffer", len,
                response_cap);
    nng_msg_free(msg);
    return -1;
  }
  memcpy(response, nng_msg_body(msg), len);
  *response_len = len;
  nng_msg_free(msg);
  return 0;
}

static void nng_bench_disconnect(void *opaque) {
  nng_bench_conn *conn = opaque;
  nng_close(conn->socket);
  free(conn);
}

static void nng_bench_stop(void *opaque, pid_t server_pid) {
  (void)opaque;
  kill(server_pid, SIGTERM);
}

static void nng_bench_release(void *opaque) {
  nng_bench_state *state = opaque;
  munmap((void *)state->port, 4096);
  free(state);
}

const bench_transport bench_transport_nng = {
    .name = "nng",
    .description = "nng req/rep over tcp://127.0.0.1, the bridge's baseline "
                   "(the server answers in the request's message)",
    .max_clients = 1,
    .prepare = nng_bench_prepare,
    .serve = nng_bench_serve,
    .connect = nng_bench_connect,
    .call = nng_bench_call,
    .disconnect = nng_bench_disconnect,
    .stop = nng_bench_stop,
    .release = nng_bench_release,
};
