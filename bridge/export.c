/*
 * The export: serves a local service to the network. An nng rep socket
 * listens at the URL; each worker owns an nng context, a thread and a
 * client handle of the service, and turns the requests its context
 * receives into calls, one at a time. Several workers serve requests at
 * once, each on a lane of the service of its own.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/util/platform.h>

#include "bridge.h"
#include "endpoint.h"
#include "shmrpc.h"
#include "wire.h"

typedef struct export_worker {
  bridge_export *owner;
  nng_ctx ctx;
  nng_aio *recv_aio;
  nng_aio *send_aio;
  int sending; /* send_aio holds an answer not yet sent */
  nng_thread *thread;
  shmrpc_client *client;   /* NULL until connected */
  unsigned deaths_seen;    /* owner->deaths when client was opened */
  unsigned char *response; /* capacity bytes: the local call's answer */
} export_worker;

struct bridge_export {
  nng_socket socket;
  int socket_open;
  bridge__endpoint endpoint;
  char service[SHMRPC_NAME_MAX + 1];
  uint32_t capacity;
  char url[BRIDGE_URL_MAX + 16]; /* with the bound port */
  /* Times a worker saw the service die or stop: every worker then opens
   * a fresh handle before its next call, so that a death is reported once
   * and not once per stale handle. */
  atomic_uint deaths;
  atomic_int stopping; /* bridge_export_stop has begun */
  int worker_count;
  export_worker *workers;
};

/* Builds an answer message; NULL when out of memory (the import then
 * times out, as it would over a network that lost the answer). */
static nng_msg *make_answer(unsigned kind, int32_t status, int32_t app_code,
                            const char *message, const void *payload,
                            size_t payload_len) {
  unsigned char header[BRIDGE_WIRE_ANSWER_HEADER];
  size_t message_len = message != NULL ? strlen(message) : 0;
  unsigned char *body;
  nng_msg *msg;
  if (message_len > BRIDGE_WIRE_MESSAGE_MAX)
    message_len = BRIDGE_WIRE_MESSAGE_MAX;
  bridge_wire_put_answer(header, kind, status, app_code, (uint16_t)message_len,
                         (uint32_t)payload_len);
  /* One allocation of the whole size: appending would grow the message,
   * and for large answers each growth is a new allocation and a copy. */
  if (nng_msg_alloc(&msg, sizeof(header) + message_len + payload_len) != 0)
    return NULL;
  body = nng_msg_body(msg);
  memcpy(body, header, sizeof(header));
  if (message_len > 0) /* memcpy must never see NULL, even for 0 bytes */
    memcpy(body + sizeof(header), message, message_len);
  if (payload_len > 0)
    memcpy(body + sizeof(header) + message_len, payload, payload_len);
  return msg;
}

/* Makes sure the worker has a handle to a live service, without waiting
 * for one: a caller across the network learns at once that there is no
 * server instead of at its deadline. */
static int worker_connect(export_worker *worker) {
  bridge_export *exp = worker->owner;
  unsigned deaths = atomic_load(&exp->deaths);
  if (worker->client != NULL && worker->deaths_seen == deaths &&
      shmrpc_client_capacity(worker->client) > 0)
    return 0;
  shmrpc_client_close(worker->client);
  worker->client = NULL;
  worker->deaths_seen = deaths;
  return shmrpc_client_open(&worker->client, exp->service, NULL, SHMRPC_NOWAIT);
}

/* How often a worker in a local call looks whether the export stops. */
#define EXPORT_STOP_LOOK_MS 50

/* The local call, as shmrpc_call would make it, but given up once the
 * export stops: a handler that runs long (or a caller with no timeout)
 * must not hold up the stop. The server drops the answer of a call given
 * up after it took it. */
static int local_call(export_worker *worker, const bridge_request *req,
                      size_t *response_len) {
  bridge_export *exp = worker->owner;
  shmrpc_pending *call;
  int rc = shmrpc_call_start(worker->client, req->method, req->payload,
                             req->payload_len, req->timeout_ms, &call);
  if (rc != 0)
    return rc;
  while ((rc = shmrpc_pending_wait(call, EXPORT_STOP_LOOK_MS)) == 0) {
    if (atomic_load(&exp->stopping)) {
      (void)shmrpc_pending_cancel(call);
      return SHMRPC_ESHUTDOWN;
    }
  }
  if (rc < 0) {
    (void)shmrpc_pending_cancel(call);
    return rc;
  }
  return shmrpc_pending_finish(call, worker->response, exp->capacity,
                               response_len);
}

/* Makes the local call a request asks for and returns its answer. */
static nng_msg *serve_call(export_worker *worker, const bridge_request *req) {
  bridge_export *exp = worker->owner;
  size_t response_len = 0;
  const char *message = NULL;
  int32_t code;
  int rc;

  /* The caller has given up already: working for it helps no one. */
  if (req->timeout_ms == 0)
    return make_answer(req->kind, SHMRPC_ETIMEDOUT, 0, NULL, NULL, 0);
  rc = worker_connect(worker);
  if (rc == 0)
    rc = local_call(worker, req, &response_len);
  switch (rc) {
  case 0:
    return make_answer(req->kind, 0, 0, NULL, worker->response, response_len);
  case SHMRPC_EAPP:
    code = shmrpc_client_app_error(worker->client, &message);
    return make_answer(req->kind, SHMRPC_EAPP, code, message, NULL, 0);
  case SHMRPC_ESERVERDIED:
  case SHMRPC_ESHUTDOWN:
    atomic_fetch_add(&exp->deaths, 1u);
    return make_answer(req->kind, rc, 0, NULL, NULL, 0);
  default:
    /* Transport codes travel as they are; the import maps those it cannot
     * pass on. */
    return make_answer(req->kind, rc, 0, NULL, NULL, 0);
  }
}

/* The answer to the len bytes of one request. */
static nng_msg *serve_request(export_worker *worker, const void *data,
                              size_t len) {
  bridge_export *exp = worker->owner;
  const unsigned char *bytes = data;
  unsigned char hello[BRIDGE_WIRE_HELLO_PAYLOAD];
  bridge_request req;
  const char *why;
  int rc = bridge_wire_get_request(data, len, exp->capacity, &req, &why);
  if (rc != 0) {
    /* Say why, so that whoever sent it can tell its user. The answer's
     * kind follows the request's where it is one we know. */
    unsigned kind = len >= 4 && bytes[3] == BRIDGE_WIRE_HELLO
                        ? BRIDGE_WIRE_HELLO
                        : BRIDGE_WIRE_CALL;
    return make_answer(kind, rc, 0, why, NULL, 0);
  }
  if (req.kind == BRIDGE_WIRE_HELLO) {
    hello[0] = (unsigned char)exp->capacity;
    hello[1] = (unsigned char)(exp->capacity >> 8);
    hello[2] = (unsigned char)(exp->capacity >> 16);
    hello[3] = (unsigned char)(exp->capacity >> 24);
    return make_answer(req.kind, 0, 0, NULL, hello, sizeof(hello));
  }
  return serve_call(worker, &req);
}

/* Waits for the last answer to be sent (to reuse its aio); an answer nng
 * could not send is still ours to free. */
static void finish_send(export_worker *worker) {
  if (!worker->sending)
    return;
  nng_aio_wait(worker->send_aio);
  if (nng_aio_result(worker->send_aio) != 0 &&
      nng_aio_get_msg(worker->send_aio) != NULL)
    nng_msg_free(nng_aio_get_msg(worker->send_aio));
  worker->sending = 0;
}

static void worker_main(void *arg) {
  export_worker *worker = arg;
  for (;;) {
    nng_msg *request, *answer;
    int rv;
    nng_ctx_recv(worker->ctx, worker->recv_aio);
    nng_aio_wait(worker->recv_aio);
    rv = nng_aio_result(worker->recv_aio);
    /* A stopped aio fails every later operation at once: never loop. */
    if (rv == NNG_ECLOSED || atomic_load(&worker->owner->stopping))
      break;
    if (rv != 0)
      continue;
    request = nng_aio_get_msg(worker->recv_aio);
    answer = serve_request(worker, nng_msg_body(request), nng_msg_len(request));
    nng_msg_free(request);
    finish_send(worker);
    if (answer == NULL)
      continue;
    /* The next receive is posted at once: waiting for the send to complete
     * first would cost this thread a wake-up per call. */
    nng_aio_set_msg(worker->send_aio, answer);
    nng_ctx_send(worker->ctx, worker->send_aio);
    worker->sending = 1;
  }
  finish_send(worker);
}

/* Fills exp->url: the URL given, with the port the system chose if it
 * was 0. */
static void resolve_url(bridge_export *exp, const char *url) {
  const char *colon = strrchr(url, ':');
  int port = 0;
  snprintf(exp->url, sizeof(exp->url), "%s", url);
  if (colon != NULL && strcmp(colon, ":0") == 0 &&
      nng_listener_get_int(exp->endpoint.listener, NNG_OPT_TCP_BOUND_PORT,
                           &port) == 0)
    snprintf(exp->url, sizeof(exp->url), "%.*s:%d", (int)(colon - url), url,
             port);
}

static int workers_start(bridge_export *exp, shmrpc_client *first,
                         bridge_error *error) {
  int i, rv;
  exp->workers = calloc((size_t)exp->worker_count, sizeof(*exp->workers));
  if (exp->workers == NULL)
    return bridge__fail(error, SHMRPC_ENOMEM, "out of memory");
  for (i = 0; i < exp->worker_count; i++) {
    export_worker *worker = &exp->workers[i];
    worker->owner = exp;
    if (i == 0)
      worker->client = first; /* the handle that found the service */
    worker->response = malloc(exp->capacity);
    if (worker->response == NULL)
      return bridge__fail(error, SHMRPC_ENOMEM, "out of memory");
    rv = nng_ctx_open(&worker->ctx, exp->socket);
    if (rv == 0)
      rv = nng_aio_alloc(&worker->recv_aio, NULL, NULL);
    if (rv == 0)
      rv = nng_aio_alloc(&worker->send_aio, NULL, NULL);
    if (rv == 0)
      rv = nng_thread_create(&worker->thread, worker_main, worker);
    if (rv != 0)
      return bridge__nng_fail(error, "cannot start the workers for", exp->url,
                              rv);
  }
  return 0;
}

int bridge_export_start(bridge_export **out,
                        const bridge_export_options *options,
                        bridge_error *error) {
  bridge_export *exp;
  shmrpc_client *first = NULL;
  int rc, rv;

  *out = NULL;
  if (options->service == NULL || shmrpc_name_check(options->service) != 0)
    return bridge__fail(error, SHMRPC_EINVAL,
                        "invalid service name '%s' (1 to %d characters of "
                        "[A-Za-z0-9._-])",
                        options->service != NULL ? options->service : "",
                        SHMRPC_NAME_MAX);
  if (options->workers < 0 || options->workers > BRIDGE_MAX_WORKERS)
    return bridge__fail(error, SHMRPC_EINVAL, "workers: 1 to %d",
                        BRIDGE_MAX_WORKERS);
  rc = bridge__check_url(options->url, 1, options->allow_remote, &options->tls,
                         error);
  if (rc != 0)
    return rc;
  rc = shmrpc_client_open(&first, options->service, NULL,
                          options->open_timeout_ms);
  if (rc != 0)
    return bridge__fail(error, rc, "cannot reach service '%s': %s (%s)",
                        options->service, shmrpc_strerror(rc),
                        shmrpc_err_name(rc));

  exp = calloc(1, sizeof(*exp));
  if (exp == NULL) {
    shmrpc_client_close(first);
    return bridge__fail(error, SHMRPC_ENOMEM, "out of memory");
  }
  snprintf(exp->service, sizeof(exp->service), "%s", options->service);
  snprintf(exp->url, sizeof(exp->url), "%s", options->url);
  exp->capacity = (uint32_t)shmrpc_client_capacity(first);
  exp->worker_count =
      options->workers > 0 ? options->workers : BRIDGE_DEFAULT_WORKERS;
  atomic_init(&exp->deaths, 0u);
  atomic_init(&exp->stopping, 0);

  rv = nng_rep0_open(&exp->socket);
  if (rv != 0) {
    shmrpc_client_close(first);
    rc = bridge__nng_fail(error, "cannot open a socket for", options->url, rv);
    free(exp);
    return rc;
  }
  exp->socket_open = 1;
  /* A request longer than the slot is refused from its length prefix,
   * before nng reads (or allocates for) its body: nng closes that
   * connection. */
  rv = nng_socket_set_size(exp->socket, NNG_OPT_RECVMAXSZ,
                           BRIDGE_WIRE_NNG_SLACK + BRIDGE_WIRE_REQUEST_HEADER +
                               (size_t)exp->capacity);
  if (rv != 0) {
    shmrpc_client_close(first);
    rc = bridge__nng_fail(error, "cannot limit the requests of", options->url,
                          rv);
    bridge_export_stop(exp);
    return rc;
  }
  rc = bridge__endpoint_create(&exp->endpoint, exp->socket, options->url, 1,
                               &options->tls, error);
  if (rc != 0) {
    shmrpc_client_close(first);
    bridge_export_stop(exp);
    return rc;
  }
  rv = nng_listener_start(exp->endpoint.listener, 0);
  if (rv != 0) {
    shmrpc_client_close(first);
    rc = bridge__nng_fail(error, "cannot listen at", options->url, rv);
    bridge_export_stop(exp);
    return rc;
  }
  resolve_url(exp, options->url);
  rc = workers_start(exp, first, error);
  if (rc != 0) {
    if (exp->workers == NULL)
      shmrpc_client_close(first);
    bridge_export_stop(exp);
    return rc;
  }
  *out = exp;
  return 0;
}

const char *bridge_export_url(const bridge_export *exp) { return exp->url; }

size_t bridge_export_capacity(const bridge_export *exp) {
  return exp->capacity;
}

void bridge_export_stop(bridge_export *exp) {
  int i;
  if (exp == NULL)
    return;
  /* Every operation ends before the socket closes: nng 1.5 can hang in
   * nng_close while a context still has a receive pending
   * (nanomsg/nng#1543, #1813). Stopping an aio cancels what it runs and
   * fails what a worker posts on it later, so an idle worker wakes and
   * one in a local call gives it up (local_call), finds its aios stopped
   * and exits. */
  atomic_store(&exp->stopping, 1);
  for (i = 0; exp->workers != NULL && i < exp->worker_count; i++) {
    if (exp->workers[i].recv_aio != NULL)
      nng_aio_stop(exp->workers[i].recv_aio);
    if (exp->workers[i].send_aio != NULL)
      nng_aio_stop(exp->workers[i].send_aio);
  }
  for (i = 0; exp->workers != NULL && i < exp->worker_count; i++) {
    if (exp->workers[i].thread != NULL)
      nng_thread_destroy(exp->workers[i].thread); /* joins */
  }
  if (exp->socket_open)
    nng_close(exp->socket);
  for (i = 0; exp->workers != NULL && i < exp->worker_count; i++) {
    export_worker *worker = &exp->workers[i];
    if (worker->recv_aio != NULL)
      nng_aio_free(worker->recv_aio);
    if (worker->send_aio != NULL)
      nng_aio_free(worker->send_aio);
    shmrpc_client_close(worker->client);
    free(worker->response);
  }
  free(exp->workers);
  free(exp);
}
