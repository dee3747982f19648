/*
 * The import: publishes a local service whose every call is forwarded to
 * an export. A fallback handler takes every method id, the built-in ping
 * and list included, and sends the call over an nng req socket with the
 * caller's remaining timeout; the answer, an application error or a
 * transport code comes back to the caller as it was.
 *
 * Each forwarded call borrows an nng lane (a context and its aios). The
 * local server runs IMPORT_LANES workers, so that many calls are forwarded
 * at once, each worker on an nng lane of its own.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "bridge.h"
#include "endpoint.h"
#include "shmrpc.h"
#include "wire.h"

/* Calls forwarded at once: one per server worker. */
#define IMPORT_LANES 4
/* How soon a lost connection is retried, and how far apart retries go. */
#define IMPORT_RECONNECT_MIN_MS 100
#define IMPORT_RECONNECT_MAX_MS 1000
/* Unreadable answers reported before the import falls silent about them. */
#define IMPORT_PROTOCOL_REPORTS 20

typedef struct import_lane {
  struct bridge_import *owner;
  nng_ctx ctx;
  nng_aio *send_aio;
  nng_aio *recv_aio; /* no nng timeout: exchange() keeps the deadline */
  nng_cv *received;  /* the exchange is over (with the owner's lock) */
  /* With the owner's lock: */
  int busy;        /* borrowed by a call */
  int in_flight;   /* in exchange(): a lost pipe abandons it */
  int send_done;   /* send_aio's operation has completed */
  int recv_posted; /* on_sent posted the receive */
  int done;        /* nothing more will complete for this exchange */
  int abandoned;   /* given up: the deadline, a lost pipe, the stop */
} import_lane;

struct bridge_import {
  nng_socket socket;
  int socket_open;
  bridge__endpoint endpoint;
  char url[BRIDGE_URL_MAX];
  uint32_t capacity; /* the export's, and so the local slot's */
  shmrpc_server *server;
  nng_thread *server_thread;
  bridge_event_fn on_event;
  void *event_ctx;

  nng_mtx *lock;     /* guards what follows */
  nng_cv *changed;   /* a lane came free, or a pipe came */
  int connected;     /* pipes to the export (0 or 1) */
  unsigned removals; /* pipes lost so far */
  int started;       /* connection changes are reported from now on */
  int stopping;
  unsigned protocol_reports;
  import_lane lanes[IMPORT_LANES];
};

/* Reports an event with a formatted detail line. */
static void report(bridge_import *imp, bridge_event event, const char *format,
                   ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void report(bridge_import *imp, bridge_event event, const char *format,
                   ...) {
  char detail[512];
  va_list args;
  if (imp->on_event == NULL)
    return;
  va_start(args, format);
  vsnprintf(detail, sizeof(detail), format, args);
  va_end(args);
  imp->on_event(imp->event_ctx, event, detail);
}

/* ---- Connection state (nng's pipe callbacks) -------------------------- */

static void lane_abandon(import_lane *lane);

static void on_pipe_added(nng_pipe pipe, nng_pipe_ev event, void *arg) {
  bridge_import *imp = arg;
  int tell;
  (void)pipe;
  (void)event;
  nng_mtx_lock(imp->lock);
  imp->connected++;
  tell = imp->started && !imp->stopping;
  nng_cv_wake(imp->changed);
  nng_mtx_unlock(imp->lock);
  if (tell)
    report(imp, BRIDGE_EVENT_CONNECTED, "connected to %s", imp->url);
}

/* A lost pipe takes the calls in flight on it: nng would fail them itself
 * (resending is off), except a call caught between sending and receiving,
 * so every call in flight is cancelled here. */
static void on_pipe_removed(nng_pipe pipe, nng_pipe_ev event, void *arg) {
  bridge_import *imp = arg;
  int tell, i;
  (void)pipe;
  (void)event;
  nng_mtx_lock(imp->lock);
  imp->connected--;
  imp->removals++;
  for (i = 0; i < IMPORT_LANES; i++) {
    if (imp->lanes[i].in_flight)
      lane_abandon(&imp->lanes[i]);
  }
  tell = imp->started && !imp->stopping;
  nng_mtx_unlock(imp->lock);
  if (tell)
    report(imp, BRIDGE_EVENT_LOST, "lost the connection to %s; reconnecting",
           imp->url);
}

/* ---- One exchange ------------------------------------------------------ */

/*
 * An exchange sends, and only once the send has completed receives:
 * nng 1.5's REQ cannot cancel a request still queued for the connection
 * while a receive waits for its answer (req0_ctx_cancel_send asserts that
 * no receive is pending, and cancelling the receive first frees the
 * request under the send). A request stays queued while the connection is
 * busy writing, which a peer that stops reading makes last.
 */

/* Ends the exchange on lane early (with the owner's lock): cancels the one
 * operation it has outstanding. Its callback then ends the exchange. */
static void lane_abandon(import_lane *lane) {
  lane->abandoned = 1;
  if (!lane->send_done)
    nng_aio_cancel(lane->send_aio);
  else if (lane->recv_posted)
    nng_aio_cancel(lane->recv_aio);
}

/* send_aio's callback: the request left, or will not. */
static void on_sent(void *arg) {
  import_lane *lane = arg;
  bridge_import *imp = lane->owner;
  nng_mtx_lock(imp->lock);
  lane->send_done = 1;
  /* Posted with the lock held, so a stop (which sets `stopping` with it
   * before it stops the aios) cancels it rather than leaving it never to
   * complete. */
  if (nng_aio_result(lane->send_aio) == 0 && !lane->abandoned &&
      !imp->stopping) {
    lane->recv_posted = 1;
    nng_ctx_recv(lane->ctx, lane->recv_aio);
  } else {
    lane->done = 1;
    nng_cv_wake(lane->received);
  }
  nng_mtx_unlock(imp->lock);
}

/* recv_aio's callback: the answer came, or the receive failed. */
static void on_received(void *arg) {
  import_lane *lane = arg;
  nng_mtx_lock(lane->owner->lock);
  lane->done = 1;
  nng_cv_wake(lane->received);
  nng_mtx_unlock(lane->owner->lock);
}

static import_lane *lane_borrow(bridge_import *imp) {
  import_lane *lane = NULL;
  int i;
  nng_mtx_lock(imp->lock);
  while (lane == NULL) {
    for (i = 0; i < IMPORT_LANES && lane == NULL; i++) {
      if (!imp->lanes[i].busy)
        lane = &imp->lanes[i];
    }
    if (lane == NULL)
      nng_cv_wait(imp->changed);
  }
  lane->busy = 1;
  nng_mtx_unlock(imp->lock);
  return lane;
}

static void lane_return(bridge_import *imp, import_lane *lane) {
  nng_mtx_lock(imp->lock);
  lane->busy = 0;
  nng_cv_wake(imp->changed);
  nng_mtx_unlock(imp->lock);
}

/* nng's timeout for what is left before deadline (0: none). */
static nng_duration time_left(nng_time deadline) {
  nng_time now;
  if (deadline == 0)
    return NNG_DURATION_INFINITE;
  now = nng_clock();
  return now >= deadline ? NNG_DURATION_ZERO : (nng_duration)(deadline - now);
}

/*
 * Sends request (consumed) on lane and waits until deadline (0: forever)
 * for the answer. Returns 0 with *answer, or the code the caller gets:
 * SHMRPC_ENOSERVER (no connection to the export), SHMRPC_ETIMEDOUT,
 * SHMRPC_ESERVERDIED (the connection was lost under the call, which may or
 * may not have run), SHMRPC_ESHUTDOWN (the import is stopping).
 *
 * The deadline is ours, not an nng timeout on the aios: nng 1.5's timer
 * thread takes an expiring aio off its list, drops its lock and only then
 * cancels it. When the answer completes the operation in that gap (the
 * export answers a call that timed out there at about the moment our own
 * timeout for it ends), the cancel comes late and lands on the next call
 * started on the same aio, which then failed with SHMRPC_ETIMEDOUT at
 * once. A cancel made here is over before the aio is used again.
 */
static int exchange(bridge_import *imp, import_lane *lane, nng_msg *request,
                    nng_time deadline, nng_msg **answer) {
  unsigned removals;
  int rv, send_rv, lost, stopping, timed_out, recv_posted;

  nng_mtx_lock(imp->lock);
  if (imp->connected == 0 || imp->stopping) {
    stopping = imp->stopping;
    nng_mtx_unlock(imp->lock);
    nng_msg_free(request);
    return stopping ? SHMRPC_ESHUTDOWN : SHMRPC_ENOSERVER;
  }
  removals = imp->removals;
  lane->in_flight = 1;
  lane->send_done = 0;
  lane->recv_posted = 0;
  lane->done = 0;
  lane->abandoned = 0;
  /* Posted with the lock held, as on_sent posts the receive. */
  nng_aio_set_msg(lane->send_aio, request);
  nng_ctx_send(lane->ctx, lane->send_aio);
  /* Until the exchange is over; at the deadline, give it up. A pipe lost
   * or a stop begun meanwhile has abandoned it already. */
  timed_out = 0;
  while (!lane->done) {
    if (!lane->abandoned && deadline != 0 && nng_clock() >= deadline) {
      timed_out = 1;
      lane_abandon(lane);
    } else if (lane->abandoned || deadline == 0) {
      nng_cv_wait(lane->received);
    } else {
      (void)nng_cv_until(lane->received, deadline);
    }
  }
  recv_posted = lane->recv_posted;
  nng_mtx_unlock(imp->lock);
  /* The callbacks have run their course; their tasks end now. */
  nng_aio_wait(lane->send_aio);
  nng_aio_wait(lane->recv_aio);
  send_rv = nng_aio_result(lane->send_aio);
  if (send_rv != 0 && nng_aio_get_msg(lane->send_aio) != NULL)
    nng_msg_free(nng_aio_get_msg(lane->send_aio)); /* not sent: still ours */
  if (recv_posted)
    rv = nng_aio_result(lane->recv_aio);
  else
    rv = send_rv != 0 ? send_rv : NNG_ECANCELED; /* sent, then given up */
  if (rv == 0)
    *answer = nng_aio_get_msg(lane->recv_aio);
  else if (send_rv != 0 && send_rv != NNG_ECANCELED)
    rv = send_rv; /* why the call never left */

  nng_mtx_lock(imp->lock);
  lane->in_flight = 0;
  lost = imp->removals != removals;
  stopping = imp->stopping;
  nng_mtx_unlock(imp->lock);
  if (rv == 0)
    return 0;
  if (stopping || rv == NNG_ECLOSED)
    return SHMRPC_ESHUTDOWN;
  if (timed_out && !lost)
    return SHMRPC_ETIMEDOUT;
  return SHMRPC_ESERVERDIED;
}

/* Builds a request message; NULL when out of memory. */
static nng_msg *make_request(unsigned kind, uint32_t method, int32_t timeout_ms,
                             const void *payload, size_t payload_len) {
  unsigned char header[BRIDGE_WIRE_REQUEST_HEADER];
  nng_msg *msg;
  bridge_wire_put_request(header, kind, method, timeout_ms,
                          (uint32_t)payload_len);
  /* One allocation of the whole size, as the export's answers. */
  if (nng_msg_alloc(&msg, sizeof(header) + payload_len) != 0)
    return NULL;
  memcpy(nng_msg_body(msg), header, sizeof(header));
  if (payload_len > 0)
    memcpy((unsigned char *)nng_msg_body(msg) + sizeof(header), payload,
           payload_len);
  return msg;
}

/* ---- The forwarding handler ------------------------------------------- */

/* An answer this import cannot pass on as it is: the caller learns that
 * no compatible server answered, and the log says what came. */
static int unreadable(bridge_import *imp, shmrpc_reply *reply, const char *what,
                      const char *message, size_t message_len) {
  unsigned shown;
  nng_mtx_lock(imp->lock);
  shown = imp->protocol_reports++;
  nng_mtx_unlock(imp->lock);
  if (shown < IMPORT_PROTOCOL_REPORTS)
    report(imp, BRIDGE_EVENT_PROTOCOL, "%s from %s%s%.*s%s", what, imp->url,
           message_len > 0 ? " (\"" : "", (int)message_len, message,
           message_len > 0 ? "\")" : "");
  if (shown + 1 == IMPORT_PROTOCOL_REPORTS)
    report(imp, BRIDGE_EVENT_PROTOCOL,
           "further unreadable answers from %s are not reported", imp->url);
  return shmrpc_reply_fail(reply, SHMRPC_ENOSERVER);
}

/* Hands the answer of the export to the local caller. */
static int deliver(bridge_import *imp, const nng_msg *msg,
                   shmrpc_reply *reply) {
  char message[BRIDGE_WIRE_MESSAGE_MAX + 1];
  bridge_answer answer;
  const char *why;
  int rc = bridge_wire_get_answer(nng_msg_body((nng_msg *)msg),
                                  nng_msg_len((nng_msg *)msg), BRIDGE_WIRE_CALL,
                                  imp->capacity, &answer, &why);
  if (rc == SHMRPC_ETOOBIG)
    return shmrpc_reply_fail(reply, SHMRPC_ETOOBIG);
  if (rc != 0)
    return unreadable(imp, reply, why, "", 0);
  if (answer.status == 0)
    return shmrpc_reply_write(reply, answer.payload, answer.payload_len);
  if (answer.status == SHMRPC_EAPP) {
    memcpy(message, answer.message, answer.message_len);
    message[answer.message_len] = '\0';
    return shmrpc_reply_error(reply, answer.app_code, message);
  }
  /* A transport code the library lets a handler pass on goes as it is;
   * any other (a code this build does not know, SHMRPC_EPROTO for a
   * request the export could not read) is a failure to reach a compatible
   * server. */
  if (shmrpc_reply_fail(reply, answer.status) == answer.status)
    return answer.status;
  {
    char what[96];
    snprintf(what, sizeof(what), "the answer %s (%d)",
             shmrpc_err_name(answer.status), (int)answer.status);
    return unreadable(imp, reply, what, answer.message, answer.message_len);
  }
}

static int forward(void *user_data, const void *request, size_t request_len,
                   shmrpc_reply *reply) {
  bridge_import *imp = user_data;
  int32_t timeout_ms = shmrpc_reply_timeout(reply);
  nng_time deadline;
  import_lane *lane;
  nng_msg *msg, *answer = NULL;
  int rc;

  if (timeout_ms == 0)
    return shmrpc_reply_fail(reply, SHMRPC_ETIMEDOUT);
  /* timeout_ms is rounded down, and nng's clock counts whole milliseconds
   * (now may be all but 1 ms past nng_clock()): each loses up to 1 ms, so
   * two more keep our wait from ending before the caller's deadline. */
  deadline = timeout_ms < 0 ? 0 : nng_clock() + (nng_time)timeout_ms + 2;
  msg = make_request(BRIDGE_WIRE_CALL, shmrpc_reply_method(reply), timeout_ms,
                     request, request_len);
  if (msg == NULL)
    return SHMRPC_ENOMEM;
  lane = lane_borrow(imp);
  rc = exchange(imp, lane, msg, deadline, &answer);
  lane_return(imp, lane);
  if (rc != 0)
    return shmrpc_reply_fail(reply, rc);
  rc = deliver(imp, answer, reply);
  nng_msg_free(answer);
  return rc;
}

static void serve_main(void *arg) {
  bridge_import *imp = arg;
  (void)shmrpc_server_run(imp->server);
}

/* ---- Start and stop ---------------------------------------------------- */

/* Opens a req socket that never resends (a call runs at most once) and
 * reads answers of at most recv_max bytes, and starts dialing the export
 * in the background. */
static int dial(bridge_import *imp, const bridge_import_options *options,
                size_t recv_max, int watch, nng_socket *socket,
                bridge__endpoint *endpoint, bridge_error *error) {
  int rv = nng_req0_open(socket);
  if (rv != 0)
    return bridge__nng_fail(error, "cannot open a socket for", options->url,
                            rv);
  if ((rv = nng_socket_set_ms(*socket, NNG_OPT_REQ_RESENDTIME,
                              NNG_DURATION_INFINITE)) != 0 ||
      (rv = nng_socket_set_size(*socket, NNG_OPT_RECVMAXSZ, recv_max)) != 0 ||
      (rv = nng_socket_set_ms(*socket, NNG_OPT_RECONNMINT,
                              IMPORT_RECONNECT_MIN_MS)) != 0 ||
      (rv = nng_socket_set_ms(*socket, NNG_OPT_RECONNMAXT,
                              IMPORT_RECONNECT_MAX_MS)) != 0 ||
      (watch && (rv = nng_pipe_notify(*socket, NNG_PIPE_EV_ADD_POST,
                                      on_pipe_added, imp)) != 0) ||
      (watch && (rv = nng_pipe_notify(*socket, NNG_PIPE_EV_REM_POST,
                                      on_pipe_removed, imp)) != 0)) {
    nng_close(*socket);
    return bridge__nng_fail(error, "cannot set up the socket for", options->url,
                            rv);
  }
  rv = bridge__endpoint_create(endpoint, *socket, options->url, 0,
                               &options->tls, error);
  if (rv != 0) {
    nng_close(*socket);
    return rv;
  }
  rv = nng_dialer_start(endpoint->dialer, NNG_FLAG_NONBLOCK);
  if (rv != 0) {
    nng_close(*socket);
    return bridge__nng_fail(error, "cannot dial", options->url, rv);
  }
  return 0;
}

/* Asks the export for its slot capacity, on a socket of its own that reads
 * only short answers. Waits until deadline for the export to answer. */
static int ask_capacity(bridge_import *imp,
                        const bridge_import_options *options, nng_time deadline,
                        bridge_error *error) {
  nng_socket socket;
  bridge__endpoint endpoint;
  nng_msg *msg, *answer_msg = NULL;
  nng_aio *aio = NULL;
  bridge_answer answer;
  const char *why;
  int rc, rv;

  rc = dial(imp, options,
            BRIDGE_WIRE_NNG_SLACK + BRIDGE_WIRE_ANSWER_HEADER +
                BRIDGE_WIRE_MESSAGE_MAX + 4 * BRIDGE_WIRE_HELLO_PAYLOAD,
            0, &socket, &endpoint, error);
  if (rc != 0)
    return rc;
  msg =
      make_request(BRIDGE_WIRE_HELLO, 0, (int32_t)time_left(deadline), NULL, 0);
  rv = msg == NULL ? NNG_ENOMEM : nng_aio_alloc(&aio, NULL, NULL);
  if (rv == 0) {
    /* The request waits for the connection; the deadline bounds both. */
    nng_aio_set_msg(aio, msg);
    nng_aio_set_timeout(aio, time_left(deadline));
    nng_send_aio(socket, aio);
    nng_aio_wait(aio);
    rv = nng_aio_result(aio);
    if (rv != 0) {
      if (nng_aio_get_msg(aio) != NULL)
        nng_msg_free(nng_aio_get_msg(aio));
    } else {
      nng_aio_set_timeout(aio, time_left(deadline));
      nng_recv_aio(socket, aio);
      nng_aio_wait(aio);
      rv = nng_aio_result(aio);
      if (rv == 0)
        answer_msg = nng_aio_get_msg(aio);
    }
  } else if (msg != NULL) {
    nng_msg_free(msg);
  }
  if (aio != NULL)
    nng_aio_free(aio);
  nng_close(socket);
  if (rv == NNG_ETIMEDOUT)
    return bridge__fail(error, SHMRPC_ENOSERVER,
                        "no answer from %s within %ld ms (is the export "
                        "running and reachable? over TLS: do the "
                        "certificates match?)",
                        options->url, (long)options->connect_timeout_ms);
  if (rv != 0)
    return bridge__nng_fail(error, "no answer from", options->url, rv);

  rc = bridge_wire_get_answer(nng_msg_body(answer_msg), nng_msg_len(answer_msg),
                              BRIDGE_WIRE_HELLO, BRIDGE_WIRE_HELLO_PAYLOAD * 4,
                              &answer, &why);
  if (rc == 0 && answer.status != 0)
    rc = bridge__fail(
        error,
        answer.status == SHMRPC_EPROTO ? SHMRPC_EPROTO : SHMRPC_ENOSERVER,
        "%s answered %s%s%.*s", options->url, shmrpc_err_name(answer.status),
        answer.message_len > 0 ? ": " : "", (int)answer.message_len,
        answer.message);
  else if (rc == 0 && bridge_wire_get_hello(&answer, &imp->capacity) != 0)
    rc = bridge__fail(error, SHMRPC_EPROTO, "%s sent a bad capacity",
                      options->url);
  else if (rc != 0)
    rc = bridge__fail(error, SHMRPC_EPROTO,
                      "%s is not a compatible shmrpc export: %s", options->url,
                      why);
  nng_msg_free(answer_msg);
  return rc;
}

/* Waits until deadline for the main socket's first connection. */
static int wait_connected(bridge_import *imp, nng_time deadline,
                          bridge_error *error) {
  int connected;
  nng_mtx_lock(imp->lock);
  while (imp->connected == 0 && nng_clock() < deadline)
    nng_cv_until(imp->changed, deadline);
  connected = imp->connected > 0;
  nng_mtx_unlock(imp->lock);
  if (!connected)
    return bridge__fail(error, SHMRPC_ENOSERVER,
                        "lost %s right after it answered", imp->url);
  return 0;
}

/* Creates the lanes and the published service, and starts serving. */
static int publish(bridge_import *imp, const char *service,
                   bridge_error *error) {
  shmrpc_server_options server_options;
  int i, rc, rv;
  for (i = 0; i < IMPORT_LANES; i++) {
    import_lane *lane = &imp->lanes[i];
    lane->owner = imp;
    rv = nng_ctx_open(&lane->ctx, imp->socket);
    if (rv == 0)
      rv = nng_cv_alloc(&lane->received, imp->lock);
    if (rv == 0)
      rv = nng_aio_alloc(&lane->send_aio, on_sent, lane);
    if (rv == 0)
      rv = nng_aio_alloc(&lane->recv_aio, on_received, lane);
    if (rv != 0)
      return bridge__nng_fail(error, "cannot make contexts for", imp->url, rv);
  }
  shmrpc_server_options_init(&server_options);
  server_options.capacity = imp->capacity;
  server_options.workers = IMPORT_LANES; /* forward() is thread-safe */
  rc = shmrpc_server_create(&imp->server, service, &server_options);
  if (rc != 0)
    return bridge__fail(error, rc, "cannot publish '%s': %s (%s)", service,
                        shmrpc_strerror(rc), shmrpc_err_name(rc));
  shmrpc_server_set_fallback(imp->server, forward, imp);
  rv = nng_thread_create(&imp->server_thread, serve_main, imp);
  if (rv != 0)
    return bridge__nng_fail(error, "cannot start serving", service, rv);
  return 0;
}

int bridge_import_start(bridge_import **out,
                        const bridge_import_options *options,
                        bridge_error *error) {
  bridge_import *imp;
  nng_time deadline;
  int rc;

  *out = NULL;
  if (options->service == NULL || shmrpc_name_check(options->service) != 0)
    return bridge__fail(error, SHMRPC_EINVAL,
                        "invalid service name '%s' (1 to %d characters of "
                        "[A-Za-z0-9._-])",
                        options->service != NULL ? options->service : "",
                        SHMRPC_NAME_MAX);
  if (options->connect_timeout_ms < 0)
    return bridge__fail(error, SHMRPC_EINVAL,
                        "the import needs a finite timeout to connect");
  rc = bridge__check_url(options->url, 0, 0, &options->tls, error);
  if (rc != 0)
    return rc;
  imp = calloc(1, sizeof(*imp));
  if (imp == NULL)
    return bridge__fail(error, SHMRPC_ENOMEM, "out of memory");
  snprintf(imp->url, sizeof(imp->url), "%s", options->url);
  imp->on_event = options->on_event;
  imp->event_ctx = options->event_ctx;
  if (nng_mtx_alloc(&imp->lock) != 0 ||
      nng_cv_alloc(&imp->changed, imp->lock) != 0) {
    bridge_import_stop(imp);
    return bridge__fail(error, SHMRPC_ENOMEM, "out of memory");
  }
  deadline = nng_clock() + (nng_time)options->connect_timeout_ms;
  rc = ask_capacity(imp, options, deadline, error);
  if (rc == 0) {
    /* The answers of calls are as long as the slot allows, no longer. */
    rc = dial(imp, options,
              BRIDGE_WIRE_NNG_SLACK + BRIDGE_WIRE_ANSWER_HEADER +
                  BRIDGE_WIRE_MESSAGE_MAX + (size_t)imp->capacity,
              1, &imp->socket, &imp->endpoint, error);
    imp->socket_open = rc == 0;
  }
  if (rc == 0)
    rc = wait_connected(imp, deadline, error);
  if (rc == 0)
    rc = publish(imp, options->service, error);
  if (rc != 0) {
    bridge_import_stop(imp);
    return rc;
  }
  nng_mtx_lock(imp->lock);
  imp->started = 1;
  nng_mtx_unlock(imp->lock);
  *out = imp;
  return 0;
}

size_t bridge_import_capacity(const bridge_import *imp) {
  return imp->capacity;
}

void bridge_import_stop(bridge_import *imp) {
  int i;
  if (imp == NULL)
    return;
  if (imp->lock != NULL) {
    nng_mtx_lock(imp->lock);
    imp->stopping = 1;
    for (i = 0; i < IMPORT_LANES; i++) {
      if (imp->lanes[i].in_flight)
        lane_abandon(&imp->lanes[i]);
    }
    nng_mtx_unlock(imp->lock);
  }
  if (imp->server != NULL)
    shmrpc_server_stop(imp->server);
  /* Stopping the lanes' aios ends a call waiting for the export, and fails
   * at once one a worker starts later (exchange then sees `stopping`): the
   * workers finish, and the server loop sees the stop. Only then is the
   * socket closed, with nothing pending on it: nng 1.5 can hang in
   * nng_close while a context has an operation pending (nanomsg/nng#1543,
   * #1813). */
  for (i = 0; i < IMPORT_LANES; i++) {
    if (imp->lanes[i].send_aio != NULL)
      nng_aio_stop(imp->lanes[i].send_aio);
    if (imp->lanes[i].recv_aio != NULL)
      nng_aio_stop(imp->lanes[i].recv_aio);
  }
  if (imp->server_thread != NULL)
    nng_thread_destroy(imp->server_thread); /* joins */
  if (imp->socket_open)
    nng_close(imp->socket);
  shmrpc_server_destroy(imp->server);
  for (i = 0; i < IMPORT_LANES; i++) {
    if (imp->lanes[i].send_aio != NULL)
      nng_aio_free(imp->lanes[i].send_aio);
    if (imp->lanes[i].recv_aio != NULL)
      nng_aio_free(imp->lanes[i].recv_aio);
    if (imp->lanes[i].received != NULL)
      nng_cv_free(imp->lanes[i].received);
  }
  if (imp->changed != NULL)
    nng_cv_free(imp->changed);
  if (imp->lock != NULL)
    nng_mtx_free(imp->lock);
  free(imp);
}
