/* The server: creates the service, waits for posted calls, runs handlers and
 * answers. */
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "shmrpc_payload.h"

typedef struct shmrpc__method {
  uint32_t id;
  char *name;
  shmrpc_handler handler;
  void *user_data;
} shmrpc__method;

/* Every this many calls a busy server checks its control block too. */
#define SHMRPC__REPAIR_EVERY 64u

struct shmrpc_server {
  shmrpc__os_service *service; /* the named objects */
  shmrpc__control *control;    /* start of the area */
  unsigned char *request_area; /* in shared memory: untrusted */
  unsigned char *response_area;
  unsigned char *request_copy; /* private copy handlers read */
  uint32_t capacity;
  shmrpc__spin spin;           /* adaptive spin before sleeping */
  uint64_t start_ns;
  shmrpc__header header;       /* private copy of what the header must say */
  uint32_t calls_since_check;  /* calls since the last repair pass */
  uint32_t last_taken;         /* what taken_seq must say */
  uint32_t last_answered;      /* what response_seq must say */
  volatile uint32_t stop_requested; /* set by shmrpc_server_stop */
  shmrpc__method *methods;
  size_t method_count;
  shmrpc__method fallback;     /* handler NULL if none */
};

struct shmrpc_reply {
  shmrpc_server *server;
  size_t len;            /* committed response bytes */
  int32_t app_code;      /* non-zero once the handler failed */
  int32_t fail_status;   /* a transport code from shmrpc_reply_fail, or 0 */
  uint32_t method;       /* the method called */
  int32_t timeout_ms;    /* the caller's timeout as posted (-1: none) */
  uint64_t deadline_ns;  /* the caller's deadline; 0 until known */
  size_t message_len;
  char message[SHMRPC_MESSAGE_MAX];
};

void shmrpc_server_options_init(shmrpc_server_options *options) {
  if (options == NULL)
    return;
  memset(options, 0, sizeof(*options));
  options->capacity = SHMRPC_DEFAULT_CAPACITY;
  options->access = SHMRPC_ACCESS_OWNER;
  options->spin_us = -1;
}

int shmrpc_server_create(shmrpc_server **out, const char *name,
                         const shmrpc_server_options *options) {
  shmrpc_server_options defaults;
  shmrpc__os_create_options os_options;
  shmrpc_server *server;
  shmrpc__header *header;
  void *area = NULL;
  size_t capacity;
  int rc;

  if (out == NULL)
    return SHMRPC_EINVAL;
  *out = NULL;
  if (shmrpc_name_check(name) != 0)
    return SHMRPC_EINVAL;
  if (options == NULL) {
    shmrpc_server_options_init(&defaults);
    options = &defaults;
  }
  capacity = options->capacity == 0 ? SHMRPC_DEFAULT_CAPACITY
                                    : options->capacity;
  if (capacity > SHMRPC_MAX_CAPACITY || options->access < 0 ||
      options->access > SHMRPC_ACCESS_EVERYONE || options->spin_us < -1)
    return SHMRPC_EINVAL;

  server = calloc(1, sizeof(*server));
  if (server == NULL)
    return SHMRPC_ENOMEM;
  server->capacity = (uint32_t)capacity;
  shmrpc__spin_init(&server->spin, options->spin_us);
  server->request_copy = malloc(capacity);
  if (server->request_copy == NULL) {
    free(server);
    return SHMRPC_ENOMEM;
  }

  os_options.area_size = (size_t)shmrpc__area_size(server->capacity);
  os_options.access = options->access;
  os_options.global_namespace = options->global_namespace;
  rc = shmrpc__os_service_create(name, &os_options, &server->service, &area);
  if (rc != 0) {
    free(server->request_copy);
    free(server);
    return rc;
  }

  server->control = area;
  server->request_area = shmrpc__request_area(area);
  server->response_area = shmrpc__response_area(area, server->capacity);
  server->start_ns = shmrpc__os_now_ns();

  header = &server->control->header;
  header->version = SHMRPC__PROTOCOL_VERSION;
  header->capacity = server->capacity;
  header->area_size = (uint32_t)os_options.area_size;
  header->generation = shmrpc__os_random64();
  header->start_ns = server->start_ns;
  header->server_pid = shmrpc__os_pid();
  header->server_state = SHMRPC__SERVER_RUNNING;
  server->header = *header;
  server->header.magic = SHMRPC__MAGIC;
  /* Clients trust nothing until the magic appears: store it last. */
  shmrpc__store32(&header->magic, SHMRPC__MAGIC);

  *out = server;
  return 0;
}

int shmrpc_server_set_fallback(shmrpc_server *server, shmrpc_handler handler,
                               void *user_data) {
  if (server == NULL || handler == NULL)
    return SHMRPC_EINVAL;
  server->fallback.id = 0;
  server->fallback.name = NULL;
  server->fallback.handler = handler;
  server->fallback.user_data = user_data;
  return 0;
}

int shmrpc_server_register(shmrpc_server *server, uint32_t method,
                           const char *name, shmrpc_handler handler,
                           void *user_data) {
  shmrpc__method *grown;
  size_t i, name_len;
  char *name_copy;

  if (server == NULL || handler == NULL || name == NULL ||
      method >= SHMRPC_METHOD_RESERVED)
    return SHMRPC_EINVAL;
  name_len = strlen(name);
  if (name_len == 0 || name_len > SHMRPC_NAME_MAX)
    return SHMRPC_EINVAL;
  for (i = 0; i < server->method_count; i++) {
    if (server->methods[i].id == method)
      return SHMRPC_EEXIST;
  }
  name_copy = malloc(name_len + 1);
  if (name_copy == NULL)
    return SHMRPC_ENOMEM;
  memcpy(name_copy, name, name_len + 1);
  grown = realloc(server->methods,
                  (server->method_count + 1) * sizeof(*server->methods));
  if (grown == NULL) {
    free(name_copy);
    return SHMRPC_ENOMEM;
  }
  server->methods = grown;
  grown[server->method_count].id = method;
  grown[server->method_count].name = name_copy;
  grown[server->method_count].handler = handler;
  grown[server->method_count].user_data = user_data;
  server->method_count++;
  return 0;
}

SHMRPC__HOT int shmrpc_reply_write(shmrpc_reply *reply, const void *data,
                                   size_t len) {
  if (reply == NULL || (data == NULL && len > 0))
    return SHMRPC_EINVAL;
  if (len > reply->server->capacity)
    return SHMRPC_ETOOBIG;
  if (len > 0)
    memcpy(reply->server->response_area, data, len);
  reply->len = len;
  return 0;
}

SHMRPC__HOT void *shmrpc_reply_buffer(shmrpc_reply *reply, size_t *capacity) {
  if (reply == NULL)
    return NULL;
  if (capacity != NULL)
    *capacity = reply->server->capacity;
  return reply->server->response_area;
}

SHMRPC__HOT int shmrpc_reply_commit(shmrpc_reply *reply, size_t len) {
  if (reply == NULL)
    return SHMRPC_EINVAL;
  if (len > reply->server->capacity)
    return SHMRPC_ETOOBIG;
  reply->len = len;
  return 0;
}

int shmrpc_reply_error(shmrpc_reply *reply, int32_t code,
                       const char *message) {
  if (code <= 0)
    code = 1;
  if (reply == NULL)
    return code;
  reply->app_code = code;
  reply->message_len = 0;
  if (message != NULL) {
    size_t len = strlen(message);
    if (len > SHMRPC_MESSAGE_MAX)
      len = SHMRPC_MESSAGE_MAX;
    memcpy(reply->message, message, len);
    reply->message_len = len;
  }
  return code;
}

/* An empty reply. message[] is left as it is: message_len says how much of
 * it counts, and clearing its 255 bytes on every call is not free. */
SHMRPC__HOT static void reply_init(shmrpc_reply *reply, shmrpc_server *server) {
  reply->server = server;
  reply->len = 0;
  reply->app_code = 0;
  reply->fail_status = 0;
  reply->method = 0;
  reply->timeout_ms = SHMRPC_INFINITE;
  reply->deadline_ns = 0;
  reply->message_len = 0;
}

int shmrpc_reply_fail(shmrpc_reply *reply, int code) {
  switch (code) {
  case SHMRPC_ETIMEDOUT:
  case SHMRPC_ENOSERVER:
  case SHMRPC_ESERVERDIED:
  case SHMRPC_ESHUTDOWN:
  case SHMRPC_ENOMETHOD:
  case SHMRPC_ETOOBIG:
    break;
  default:
    return SHMRPC_EINVAL;
  }
  if (reply == NULL)
    return SHMRPC_EINVAL;
  reply->fail_status = code;
  return code;
}

uint32_t shmrpc_reply_method(const shmrpc_reply *reply) {
  return reply == NULL ? 0 : reply->method;
}

int32_t shmrpc_reply_timeout(shmrpc_reply *reply) {
  uint64_t now;
  if (reply == NULL)
    return 0;
  if (reply->deadline_ns == 0) {
    if (reply->timeout_ms < 0)
      return SHMRPC_INFINITE;
    /* The caller posted before reading its clock: count from now, once. */
    reply->deadline_ns =
        shmrpc__os_now_ns() + (uint64_t)reply->timeout_ms * 1000000u;
  }
  now = shmrpc__os_now_ns();
  if (now >= reply->deadline_ns)
    return 0;
  return (int32_t)((reply->deadline_ns - now) / 1000000u);
}

SHMRPC__HOT static const shmrpc__method *
find_method(const shmrpc_server *server, uint32_t id) {
  size_t i;
  for (i = 0; i < server->method_count; i++) {
    if (server->methods[i].id == id)
      return &server->methods[i];
  }
  return NULL;
}

/* The built-in SHMRPC_METHOD_LIST: id and name of each method. */
static int32_t list_methods(shmrpc_server *server, shmrpc_reply *reply) {
  shmrpc_writer writer;
  size_t capacity, i;
  void *out = shmrpc_reply_buffer(reply, &capacity);
  shmrpc_writer_init(&writer, out, capacity);
  for (i = 0; i < server->method_count; i++) {
    shmrpc_put_u32(&writer, server->methods[i].id);
    shmrpc_put_str(&writer, server->methods[i].name);
  }
  if (writer.err != 0)
    return SHMRPC_ETOOBIG;
  return shmrpc_reply_commit(reply, writer.len);
}

/* Runs the call whose request (already copied) is in request_copy, and
 * returns its status; the reply holds the response length and error. */
SHMRPC__HOT static int32_t dispatch(shmrpc_server *server, uint32_t method,
                                    size_t request_len, shmrpc_reply *reply) {
  const shmrpc__method *entry = find_method(server, method);
  int handler_rc;

  if (entry == NULL && server->fallback.handler != NULL)
    entry = &server->fallback;
  if (entry == NULL) {
    if (method == SHMRPC_METHOD_PING)
      return shmrpc_reply_write(reply, server->request_copy, request_len);
    if (method == SHMRPC_METHOD_LIST)
      return list_methods(server, reply);
    return SHMRPC_ENOMETHOD;
  }
  handler_rc = entry->handler(entry->user_data, server->request_copy,
                              request_len, reply);
  if (reply->fail_status != 0)
    return reply->fail_status;
  /* A handler passing on SHMRPC_ETOOBIG from shmrpc_reply_write tells the
   * caller its answer did not fit; any other failure is the application's. */
  if (handler_rc == SHMRPC_ETOOBIG && reply->app_code == 0)
    return SHMRPC_ETOOBIG;
  if (handler_rc < 0 && reply->app_code == 0)
    shmrpc_reply_error(reply, 1, shmrpc_strerror(handler_rc));
  else if (handler_rc > 0 && reply->app_code == 0)
    reply->app_code = handler_rc;
  return reply->app_code != 0 ? SHMRPC_EAPP : 0;
}

/* Closes call `seq`: its sequence number, stored last, publishes whatever
 * was written for it; then the caller is woken if it sleeps. */
SHMRPC__HOT static void publish_answer(shmrpc_server *server, uint32_t seq) {
  shmrpc__control *control = server->control;
  server->last_answered = seq;
  shmrpc__store32_sc(&control->server.response_seq, seq);
  if (shmrpc__load32_sc(&control->server.response_sleepers) != 0) {
    shmrpc__store32_relaxed(&control->server.response_sleepers, 0u);
    shmrpc__os_event_set(server->service, SHMRPC__EVENT_RESPONSE);
  }
}

/* Writes the answer for call `seq` and publishes it. */
SHMRPC__HOT static void answer(shmrpc_server *server, uint32_t seq,
                               int32_t status, const shmrpc_reply *reply) {
  shmrpc__control *control = server->control;
  size_t message_len = status == SHMRPC_EAPP ? reply->message_len : 0;
  uint32_t response_len = status == 0 ? (uint32_t)reply->len : 0;

  if (message_len > 0)
    memcpy(control->message, reply->message, message_len);
  shmrpc__store32_relaxed(&control->server.message_len, (uint32_t)message_len);
  shmrpc__store32_relaxed((volatile uint32_t *)&control->server.app_code,
                          status == SHMRPC_EAPP ? (uint32_t)reply->app_code
                                                : 0u);
  shmrpc__store32_relaxed((volatile uint32_t *)&control->server.status,
                          (uint32_t)status);
  shmrpc__store32_relaxed(&control->server.response_len, response_len);
  /* A small answer rides in this line: the caller then reads no other. */
  if (response_len <= SHMRPC__INLINE_MAX)
    memcpy(control->server.response_inline, server->response_area,
           response_len);
  /* Count before publishing, so a caller that has its answer sees it
   * counted even if the server dies the next instant. Only the server
   * writes these counters: plain increments will do. */
  shmrpc__bump64(&control->stats.calls, 1);
  shmrpc__bump64(&control->stats.bytes_out, response_len);
  if (status == SHMRPC_EAPP)
    shmrpc__bump64(&control->stats.app_errors, 1);
  publish_answer(server, seq);
}

/*
 * Anyone who can open the mapping can write into it. Between calls the
 * server puts back what only it may say: the header, and its own sequence
 * numbers (a forged taken_seq would make every caller wait for an answer
 * that never comes). Runs before the server sleeps and every
 * SHMRPC__REPAIR_EVERY calls; it never touches the caller's line.
 */
static int repair_control(void *ctx) {
  shmrpc_server *server = ctx;
  shmrpc__control *control = server->control;
  shmrpc__header *header = &control->header;
  const shmrpc__header *want = &server->header;
  int repaired = 0;

  server->calls_since_check = 0;
  if (shmrpc__load32_relaxed(&header->version) != want->version ||
      shmrpc__load32_relaxed(&header->capacity) != want->capacity ||
      shmrpc__load32_relaxed(&header->area_size) != want->area_size ||
      shmrpc__load32_relaxed(&header->server_pid) != want->server_pid ||
      shmrpc__load64(&header->generation) != want->generation ||
      shmrpc__load64(&header->start_ns) != want->start_ns) {
    shmrpc__store32_relaxed(&header->version, want->version);
    shmrpc__store32_relaxed(&header->capacity, want->capacity);
    shmrpc__store32_relaxed(&header->area_size, want->area_size);
    shmrpc__store32_relaxed(&header->server_pid, want->server_pid);
    shmrpc__store64(&header->generation, want->generation);
    shmrpc__store64(&header->start_ns, want->start_ns);
    repaired = 1;
  }
  if (shmrpc__load32(&header->server_state) != SHMRPC__SERVER_RUNNING) {
    shmrpc__store32(&header->server_state, SHMRPC__SERVER_RUNNING);
    repaired = 1;
  }
  if (shmrpc__load32(&header->server_dead) != 0) {
    shmrpc__store32(&header->server_dead, 0);
    repaired = 1;
  }
  if (shmrpc__load32(&header->magic) != SHMRPC__MAGIC) {
    shmrpc__store32(&header->magic, SHMRPC__MAGIC);
    repaired = 1;
  }
  if (shmrpc__load32(&control->server.taken_seq) != server->last_taken ||
      shmrpc__load32(&control->server.response_seq) != server->last_answered) {
    shmrpc__store32_sc(&control->server.taken_seq, server->last_taken);
    shmrpc__store32_sc(&control->server.response_seq, server->last_answered);
    /* Wake a caller that waits for the phantom call to end. */
    shmrpc__os_event_set(server->service, SHMRPC__EVENT_RESPONSE);
    repaired = 1;
  }
  if (repaired)
    shmrpc__add64(&control->stats.reserved[0], 1);
  return 0;
}

/* A call is waiting when the caller's line shows a posted sequence number
 * this server has not taken yet. */
SHMRPC__HOT static int call_posted(const shmrpc_server *server) {
  shmrpc__client_line *line = &server->control->client;
  if (shmrpc__load32_sc(&line->call_seq) == server->last_taken)
    return 0;
  return shmrpc__load32_sc(&line->slot_state) == SHMRPC__SLOT_POSTED;
}

SHMRPC__HOT static int request_ready(void *ctx) {
  shmrpc_server *server = ctx;
  if (shmrpc__load32_relaxed(&server->stop_requested))
    return SHMRPC_ESHUTDOWN;
  return call_posted(server);
}

/* Takes the posted call: publishes taken_seq, then checks that the caller
 * has not withdrawn it meanwhile (see layout.h). Returns 1 if the call is
 * ours to run, 0 if it was withdrawn (it is then answered as such). */
SHMRPC__HOT static int take_call(shmrpc_server *server, uint32_t seq) {
  shmrpc__control *control = server->control;
  server->last_taken = seq;
  shmrpc__store32_sc(&control->server.taken_seq, seq);
  if (shmrpc__load32_sc(&control->client.slot_state) == SHMRPC__SLOT_POSTED &&
      shmrpc__load32_sc(&control->client.call_seq) == seq)
    return 1;
  /* Withdrawn: close the call without running it, so the slot is idle. */
  publish_answer(server, seq);
  return 0;
}

/* Waits for one posted call and answers it. */
SHMRPC__HOT static int serve_one(shmrpc_server *server,
                                 shmrpc__deadline *deadline) {
  shmrpc__control *control = server->control;
  shmrpc_reply reply;
  uint32_t seq, method, request_len;
  int32_t status;
  int rc;

  for (;;) {
    if (server->calls_since_check >= SHMRPC__REPAIR_EVERY)
      repair_control(server);
    rc = shmrpc__wait(server->service, SHMRPC__EVENT_REQUEST,
                      &control->client.request_sleepers, request_ready,
                      repair_control, server, &server->spin,
                      SHMRPC__WAIT_HEALTH_FIRST | SHMRPC__WAIT_JUDGE_LATER,
                      deadline, SHMRPC__IDLE_SLICE_MS);
    if (rc < 0)
      return rc;
    /* Read each field once, then validate: the caller may be hostile. */
    seq = shmrpc__load32(&control->client.call_seq);
    if (take_call(server, seq))
      break;
  }
  SHMRPC__FAULT("server_busy");

  method = shmrpc__load32_relaxed(&control->client.method);
  request_len = shmrpc__load32_relaxed(&control->client.request_len);

  reply_init(&reply, server);
  reply.method = method;
  reply.timeout_ms = (int32_t)shmrpc__load32_relaxed(
      (volatile uint32_t *)&control->client.timeout_ms);
  reply.deadline_ns = shmrpc__load64(&control->client.deadline_ns);
  if (reply.timeout_ms < SHMRPC_INFINITE)
    reply.timeout_ms = SHMRPC_INFINITE;
  if (request_len > server->capacity) {
    status = SHMRPC_ETOOBIG;
  } else {
    memcpy(server->request_copy,
           request_len <= SHMRPC__INLINE_MAX ? control->client.request_inline
                                             : server->request_area,
           request_len);
    shmrpc__bump64(&control->stats.bytes_in, request_len);
    status = dispatch(server, method, request_len, &reply);
  }
  answer(server, seq, status, &reply);
  server->calls_since_check++;
  SHMRPC__FAULT("server_answered");
  return 0;
}

int shmrpc_server_run_once(shmrpc_server *server, int32_t timeout_ms) {
  shmrpc__deadline deadline;
  if (server == NULL || timeout_ms < SHMRPC_INFINITE)
    return SHMRPC_EINVAL;
  deadline = shmrpc__deadline_in(timeout_ms);
  return serve_one(server, &deadline);
}

SHMRPC__HOT int shmrpc_server_run(shmrpc_server *server) {
  shmrpc__deadline forever = shmrpc__deadline_in(SHMRPC_INFINITE);
  int rc;
  if (server == NULL)
    return SHMRPC_EINVAL;
  do {
    rc = serve_one(server, &forever);
  } while (rc == 0);
  return rc == SHMRPC_ESHUTDOWN ? 0 : rc;
}

void shmrpc_server_stop(shmrpc_server *server) {
  if (server == NULL)
    return;
  /* Only an atomic store and a wake-up: both are async-signal-safe. */
  shmrpc__store32_sc(&server->stop_requested, 1);
  shmrpc__os_event_set(server->service, SHMRPC__EVENT_REQUEST);
}

int shmrpc_server_stats(const shmrpc_server *server, shmrpc_stats *out) {
  const shmrpc__stats_line *stats;
  if (server == NULL || out == NULL)
    return SHMRPC_EINVAL;
  stats = &server->control->stats;
  out->calls = shmrpc__load64(&stats->calls);
  out->app_errors = shmrpc__load64(&stats->app_errors);
  out->timeouts = shmrpc__load64(&stats->timeouts);
  out->recoveries = shmrpc__load64(&stats->recoveries);
  out->bytes_in = shmrpc__load64(&stats->bytes_in);
  out->bytes_out = shmrpc__load64(&stats->bytes_out);
  out->repairs = shmrpc__load64(&stats->reserved[0]);
  out->uptime_ms = (shmrpc__os_now_ns() - server->start_ns) / 1000000u;
  return 0;
}

void shmrpc_server_destroy(shmrpc_server *server) {
  shmrpc__control *control;
  size_t i;
  if (server == NULL)
    return;
  control = server->control;
  shmrpc__store32_sc(&control->header.server_state, SHMRPC__SERVER_STOPPING);
  /* A call posted but not taken gets an answer instead of a timeout. */
  if (call_posted(server)) {
    uint32_t seq = shmrpc__load32(&control->client.call_seq);
    if (take_call(server, seq)) {
      shmrpc_reply reply;
      reply_init(&reply, server);
      answer(server, seq, SHMRPC_ESHUTDOWN, &reply);
    }
  }
  /* Wake a caller that sleeps, whether or not it is counted yet. */
  shmrpc__os_event_set(server->service, SHMRPC__EVENT_RESPONSE);
  shmrpc__os_service_close(server->service);
  for (i = 0; i < server->method_count; i++)
    free(server->methods[i].name);
  free(server->methods);
  free(server->request_copy);
  free(server);
}
