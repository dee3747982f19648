/*
 * The server: creates the service, finds posted calls on its lanes, runs
 * handlers on its workers and answers.
 *
 * Workers share one doorbell. An idle worker looks at every lane, starting
 * after the lane it served last, so that no lane's caller can crowd out the
 * others. One idle worker at a time spins; the others sleep on the request
 * event, and a caller rings it only when every idle worker sleeps (see
 * SHMRPC__SLEEPERS_* in layout.h). A worker claims a lane before it takes
 * its call, so two workers never serve one lane.
 */
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

/* What the server knows of a lane, in private memory. */
typedef struct shmrpc__lane_state {
  volatile uint32_t claimed; /* a worker serves this lane now */
  /* What taken_seq and response_seq must say. Written by the lane's
   * claimer; last_taken is also read by other workers looking for calls,
   * so both are accessed atomically (relaxed: the claim orders the rest). */
  volatile uint32_t last_taken;
  volatile uint32_t last_answered;
  uint32_t pad0;
  uint64_t calls;            /* what the lane's counters must say */
  uint8_t pad[SHMRPC__LINE - 24];
} shmrpc__lane_state;

/* One thread's serving context. */
typedef struct shmrpc__worker {
  shmrpc_server *server;
  unsigned char *request_copy; /* the private copy handlers read */
  shmrpc__spin spin;           /* adaptive spin before sleeping */
  uint32_t next_lane;          /* where its next look starts */
  uint32_t calls_since_repair;
  int holds_role;              /* 1 while it holds the spinner's role */
  uint32_t id;                 /* its name in the role word: 1, 2, ... */
  int woke_caller;             /* its last answer woke a sleeping caller,
                                  or found one marked YIELDED */
  /* Whether the sleep that spin.slept_since_ns started judges the spin
   * window (0 after such an answer: that one did not spin); and whether
   * the last sleep after such an answer ended within the spin window: the
   * caller then calls back to back. */
  int sleep_judged;
  int back_to_back;
  uint64_t slept_extra_ns; /* the spin's extra when that sleep began */
  shmrpc__os_thread *thread;   /* NULL for the thread that called run() */
} shmrpc__worker;

/* The spinner's role (see become_spinner). */
enum spinner_role {
  ROLE_FREE = 0,
  ROLE_SPINNING = 1, /* its holder looks at the lanes */
  ROLE_BUSY = 2,     /* its holder runs a handler, then looks again */
  ROLE_STATE = 3     /* the state's bits; the holder's id is above them */
};

struct shmrpc_server {
  shmrpc__os_service *service; /* the named objects */
  void *server_area;           /* writable by this process only */
  void *calls_area;            /* written by callers: untrusted */
  uint32_t capacity;
  uint32_t lanes;
  uint32_t workers;
  shmrpc__header header;       /* private copy of what the header must say */
  shmrpc__lane_state *lane;    /* [lanes] */
  shmrpc__worker *worker;      /* [workers]; run() uses them all */
  shmrpc__worker loop_worker;  /* run_once() and dispatch() */
  volatile uint32_t stop_requested; /* set by shmrpc_server_stop */
  volatile uint32_t serving;   /* run, run_once or dispatch in progress */
  volatile uint32_t repairing; /* a repair pass in progress */
  volatile uint32_t in_loop;   /* dispatch() has armed the waitable */
  uint32_t doorbell_seen;      /* the doorbell word at the last repair */
  uint32_t doorbell_repairs;   /* passes it looked wrong in a row */
  volatile uint32_t spinning;  /* the spinner's role: enum spinner_role */
  volatile uint32_t asleep;
  uint64_t start_ns;
  volatile uint64_t repaired_ns; /* when the last repair pass ran */
  shmrpc__method *methods;
  size_t method_count;
  shmrpc__method fallback;     /* handler NULL if none */
};

struct shmrpc_reply {
  shmrpc_server *server;
  unsigned char *response;     /* the lane's response area */
  size_t len;                  /* committed response bytes */
  int32_t app_code;            /* non-zero once the handler failed */
  int32_t fail_status;         /* a transport code from shmrpc_reply_fail */
  uint32_t method;             /* the method called */
  int32_t timeout_ms;          /* the caller's timeout as posted (-1: none) */
  uint64_t deadline_ns;        /* the caller's deadline; 0 until known */
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
  options->lanes = SHMRPC_DEFAULT_LANES;
  options->workers = 1;
}

static int worker_init(shmrpc__worker *worker, shmrpc_server *server,
                       int32_t spin_us) {
  worker->server = server;
  worker->request_copy = malloc(server->capacity);
  if (worker->request_copy == NULL)
    return SHMRPC_ENOMEM;
  shmrpc__spin_init(&worker->spin, spin_us);
  return 0;
}

static void server_free(shmrpc_server *server) {
  size_t i;
  if (server->worker != NULL)
    for (i = 0; i < server->workers; i++)
      free(server->worker[i].request_copy);
  free(server->loop_worker.request_copy);
  for (i = 0; i < server->method_count; i++)
    free(server->methods[i].name);
  free(server->methods);
  free(server->worker);
  free(server->lane);
  free(server);
}

int shmrpc_server_create(shmrpc_server **out, const char *name,
                         const shmrpc_server_options *options) {
  shmrpc_server_options defaults;
  shmrpc__os_create_options os_options;
  shmrpc_server *server;
  shmrpc__header *header;
  size_t capacity;
  uint32_t lanes, workers, i;
  int rc;

  shmrpc__error_clear();
  if (out == NULL)
    return SHMRPC_EINVAL;
  *out = NULL;
  if (shmrpc_name_check(name) != 0)
    return shmrpc__error_detail(SHMRPC_EINVAL,
                                "bad service name: a name is 1 to %d "
                                "characters of A-Z, a-z, 0-9, '.', '_', '-'",
                                SHMRPC_NAME_MAX);
  if (options == NULL) {
    shmrpc_server_options_init(&defaults);
    options = &defaults;
  }
  capacity = options->capacity == 0 ? SHMRPC_DEFAULT_CAPACITY
                                    : options->capacity;
  lanes = options->lanes == 0 ? SHMRPC_DEFAULT_LANES : options->lanes;
  workers = options->workers == 0 ? 1 : options->workers;
  if (capacity > SHMRPC_MAX_CAPACITY || options->access < 0 ||
      options->access > SHMRPC_ACCESS_EVERYONE || options->spin_us < -1 ||
      options->spin_us > SHMRPC_MAX_SPIN_US || lanes > SHMRPC_MAX_LANES ||
      workers > SHMRPC_MAX_WORKERS || workers > lanes)
    return shmrpc__error_detail(
        SHMRPC_EINVAL,
        "bad server option: capacity 1 to %u bytes, spin_us -1 to %d, lanes "
        "1 to %u, workers 1 to the lanes (at most %u)",
        SHMRPC_MAX_CAPACITY, SHMRPC_MAX_SPIN_US, SHMRPC_MAX_LANES,
        SHMRPC_MAX_WORKERS);
  if (shmrpc__server_size((uint32_t)capacity, lanes) +
          shmrpc__calls_size((uint32_t)capacity, lanes) >
      SHMRPC_MAX_SERVICE_BYTES)
    return shmrpc__error_detail(
        SHMRPC_EINVAL,
        "capacity x lanes too large: a service takes at most %llu bytes",
        (unsigned long long)SHMRPC_MAX_SERVICE_BYTES);

  server = calloc(1, sizeof(*server));
  if (server == NULL)
    return SHMRPC_ENOMEM;
  server->capacity = (uint32_t)capacity;
  server->lanes = lanes;
  server->workers = workers;
  server->lane = calloc(lanes, sizeof(*server->lane));
  server->worker = calloc(workers, sizeof(*server->worker));
  rc = server->lane == NULL || server->worker == NULL ? SHMRPC_ENOMEM : 0;
  for (i = 0; rc == 0 && i < workers; i++) {
    rc = worker_init(&server->worker[i], server, options->spin_us);
    server->worker[i].id = i + 1;
  }
  if (rc == 0)
    rc = worker_init(&server->loop_worker, server, options->spin_us);
  server->loop_worker.id = workers + 1;
  if (rc != 0) {
    server_free(server);
    return rc;
  }

  os_options.server_size = (size_t)shmrpc__server_size(server->capacity, lanes);
  os_options.calls_size = (size_t)shmrpc__calls_size(server->capacity, lanes);
  os_options.lanes = lanes;
  os_options.generation = shmrpc__os_random64();
  os_options.access = options->access;
  os_options.global_namespace = options->global_namespace;
  rc = shmrpc__os_service_create(name, &os_options, &server->service,
                                 &server->server_area, &server->calls_area);
  if (rc != 0) {
    server_free(server);
    return rc;
  }
  server->start_ns = shmrpc__os_now_ns();

  header = shmrpc__area_header(server->server_area);
  header->version = SHMRPC__PROTOCOL_VERSION;
  header->capacity = server->capacity;
  header->lanes = lanes;
  header->workers = workers;
  header->server_size = os_options.server_size;
  header->calls_size = os_options.calls_size;
  header->generation = os_options.generation;
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

/* ---- Replies ----------------------------------------------------------- */

SHMRPC__HOT int shmrpc_reply_write(shmrpc_reply *reply, const void *data,
                                   size_t len) {
  if (reply == NULL || (data == NULL && len > 0))
    return SHMRPC_EINVAL;
  if (len > reply->server->capacity)
    return SHMRPC_ETOOBIG;
  if (len > 0)
    memcpy(reply->response, data, len);
  reply->len = len;
  return 0;
}

SHMRPC__HOT void *shmrpc_reply_buffer(shmrpc_reply *reply, size_t *capacity) {
  if (reply == NULL)
    return NULL;
  if (capacity != NULL)
    *capacity = reply->server->capacity;
  return reply->response;
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

int shmrpc_reply_fail(shmrpc_reply *reply, int code) {
  switch (code) {
  case SHMRPC_ETIMEDOUT:
  case SHMRPC_ENOSERVER:
  case SHMRPC_ESERVERDIED:
  case SHMRPC_ESHUTDOWN:
  case SHMRPC_ENOMETHOD:
  case SHMRPC_ETOOBIG:
  case SHMRPC_EACCES:
  case SHMRPC_EUNTRUSTED:
  case SHMRPC_EAGAIN:
  case SHMRPC_ECANCELED:
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
  uint64_t now, left_ms;
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
  /* A caller's deadline comes from the calls area: a writer may put it
   * farther than any timeout reaches. */
  left_ms = (reply->deadline_ns - now) / 1000000u;
  return left_ms > (uint64_t)INT32_MAX ? INT32_MAX : (int32_t)left_ms;
}

/* An empty reply. message[] is left as it is: message_len says how much of
 * it counts, and clearing its 255 bytes on every call is not free. */
SHMRPC__HOT static void reply_init(shmrpc_reply *reply, shmrpc_server *server,
                                   uint32_t lane) {
  reply->server = server;
  reply->response =
      shmrpc__area_response(server->server_area, server->lanes,
                            server->capacity, lane);
  reply->len = 0;
  reply->app_code = 0;
  reply->fail_status = 0;
  reply->method = 0;
  reply->timeout_ms = SHMRPC_INFINITE;
  reply->deadline_ns = 0;
  reply->message_len = 0;
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

/* Runs the call whose request (already copied) is in the worker's copy, and
 * returns its status; the reply holds the response length and error. */
SHMRPC__HOT static int32_t dispatch_call(shmrpc__worker *worker,
                                         uint32_t method, size_t request_len,
                                         shmrpc_reply *reply) {
  shmrpc_server *server = worker->server;
  const shmrpc__method *entry = find_method(server, method);
  int handler_rc;

  if (entry == NULL && server->fallback.handler != NULL)
    entry = &server->fallback;
  if (entry == NULL) {
    if (method == SHMRPC_METHOD_PING)
      return shmrpc_reply_write(reply, worker->request_copy, request_len);
    if (method == SHMRPC_METHOD_LIST)
      return list_methods(server, reply);
    return SHMRPC_ENOMETHOD;
  }
  handler_rc = entry->handler(entry->user_data, worker->request_copy,
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

/* ---- Answering --------------------------------------------------------- */

/* Closes call `seq` of `lane`: its sequence number, stored last, publishes
 * whatever was written for it; then its caller is woken if it sleeps. */
SHMRPC__HOT static int publish_answer(shmrpc_server *server, uint32_t lane,
                                      uint32_t seq) {
  shmrpc__answer_line *answer = shmrpc__area_answer(server->server_area, lane);
  shmrpc__request_line *request = shmrpc__area_request(server->calls_area, lane);
  uint32_t sleeper;
  shmrpc__store32_relaxed(&server->lane[lane].last_answered, seq);
  shmrpc__store32_sc(&answer->response_seq, seq);
  sleeper = shmrpc__load32_sc(&request->response_sleepers);
  if (SHMRPC__UNLIKELY(sleeper != 0)) {
    /* Lowered only if it is still what we saw: the lane's next caller may
     * have raised its own mark meanwhile. */
    (void)shmrpc__cas32(&request->response_sleepers, sleeper, 0u);
    switch (sleeper & SHMRPC__SLEEPER_MODE_MASK) {
    case SHMRPC__SLEEPER_FD:
      shmrpc__os_waitable_wake(server->service, lane, sleeper >> 2);
      break;
    case SHMRPC__SLEEPER_YIELDED:
      break; /* it did not sleep: nothing to wake */
    default:
      shmrpc__os_event_set(server->service, SHMRPC__EVENT_RESPONSE(lane));
      break;
    }
    return 1;
  }
  return 0;
}

/* Writes the answer for call `seq` and publishes it. */
SHMRPC__HOT static int answer_call(shmrpc_server *server, uint32_t lane,
                                   uint32_t seq, int32_t status,
                                   const shmrpc_reply *reply) {
  shmrpc__answer_line *answer = shmrpc__area_answer(server->server_area, lane);
  shmrpc__lane_info *info =
      shmrpc__area_lane_info(server->server_area, server->lanes, lane);
  size_t message_len = status == SHMRPC_EAPP ? reply->message_len : 0;
  uint32_t response_len = status == 0 ? (uint32_t)reply->len : 0;

  if (message_len > 0)
    memcpy(shmrpc__area_message(server->server_area, server->lanes, lane),
           reply->message, message_len);
  shmrpc__store32_relaxed(&answer->message_len, (uint32_t)message_len);
  shmrpc__store32_relaxed((volatile uint32_t *)&answer->app_code,
                          status == SHMRPC_EAPP ? (uint32_t)reply->app_code
                                                : 0u);
  shmrpc__store32_relaxed((volatile uint32_t *)&answer->status,
                          (uint32_t)status);
  shmrpc__store32_relaxed(&answer->response_len, response_len);
  /* A small answer rides in this line: the caller then reads no other. */
  if (response_len <= SHMRPC__INLINE_MAX)
    shmrpc__copy_small(answer->response_inline, reply->response,
                       response_len);
  /* Count before publishing, so a caller that has its answer sees it
   * counted even if the server dies the next instant. One worker serves a
   * lane at a time: plain increments will do. */
  server->lane[lane].calls++;
  shmrpc__store64(&answer->calls, server->lane[lane].calls);
  shmrpc__bump64(&info->bytes_out, response_len);
  if (status == SHMRPC_EAPP)
    shmrpc__bump64(&info->app_errors, 1);
  return publish_answer(server, lane, seq);
}

/* ---- Repair ------------------------------------------------------------ */

/* At most one repair pass per this long. */
#define SHMRPC__REPAIR_GAP_NS 50000000u

/* Adds what callers reported to the server's counters, bounded: a writer
 * can inflate a report, not the total by more than a plausible amount. */
static void fold_report(volatile uint64_t *report, volatile uint64_t *total) {
  uint64_t value = __atomic_exchange_n(report, 0, __ATOMIC_RELAXED);
  if (value > SHMRPC__REPORT_MAX)
    value = SHMRPC__REPORT_MAX;
  shmrpc__add64(total, value);
}

void shmrpc__add_reported(shmrpc_stats *stats,
                          const shmrpc__calls_header *calls) {
  uint64_t timeouts = shmrpc__load64(&calls->timeouts);
  uint64_t recoveries = shmrpc__load64(&calls->recoveries);
  stats->timeouts += timeouts > SHMRPC__REPORT_MAX ? SHMRPC__REPORT_MAX
                                                   : timeouts;
  stats->recoveries += recoveries > SHMRPC__REPORT_MAX ? SHMRPC__REPORT_MAX
                                                       : recoveries;
}

/* Frees the lanes of dead clients (and lock words a writer garbled), and
 * records what the server saw of each lane's lock, for shmrpc stat. */
static void observe_locks(shmrpc_server *server) {
  shmrpc__stats_line *stats = shmrpc__area_stats(server->server_area);
  uint64_t now = 0;
  uint32_t i;
  for (i = 0; i < server->lanes; i++) {
    shmrpc__lane_info *info =
        shmrpc__area_lane_info(server->server_area, server->lanes, i);
    shmrpc__os_lane_info lock;
    if (shmrpc__os_lane_recover(server->service, i)) {
      shmrpc__add64(&stats->recoveries, 1);
      shmrpc__os_queue_wake(server->service);
    }
    if (shmrpc__os_lane_query(server->service, i, &lock) != 0 || !lock.held) {
      shmrpc__store64(&info->lock_seen, 0);
      shmrpc__store64(&info->lock_since_ns, 0);
      shmrpc__store32(&info->lock_owner_alive, 0);
      continue;
    }
    if (now == 0)
      now = shmrpc__os_now_ns();
    if (shmrpc__load64(&info->lock_seen) != lock.owner ||
        shmrpc__load64(&info->lock_since_ns) == 0) {
      shmrpc__store64(&info->lock_seen, lock.owner);
      shmrpc__store64(&info->lock_since_ns, now);
    }
    shmrpc__store32(&info->lock_owner_alive, lock.owner_alive ? 1u : 0u);
  }
}

/* The doorbell word as the workers' states say it must be. */
static uint32_t doorbell_expected(const shmrpc_server *server) {
  return (shmrpc__load32(&server->in_loop) ? SHMRPC__SLEEPERS_FD : 0u) |
         (shmrpc__load32(&server->spinning) != ROLE_FREE
              ? SHMRPC__SLEEPERS_ONE_SPINNER
              : 0u) |
         shmrpc__load32(&server->asleep);
}

/*
 * Puts back what only the server may say, when a writer changed it: the
 * header and each idle lane's sequence numbers (a forged taken_seq would
 * make the lane's callers wait for an answer that never comes) in the
 * server area, which only processes of the server's user can write, and
 * the doorbell word; folds in what callers reported; and lets the backend
 * put back its own words. It never writes a caller's request line. Runs
 * after each idle slice a worker slept through and every
 * SHMRPC__REPAIR_EVERY calls (not before a sleep: a call that wakes the
 * server would wait for it); one pass at a time.
 */
static void repair(shmrpc_server *server) {
  shmrpc__header *header = shmrpc__area_header(server->server_area);
  const shmrpc__header *want = &server->header;
  shmrpc__stats_line *stats = shmrpc__area_stats(server->server_area);
  shmrpc__calls_header *calls = shmrpc__area_calls_header(server->calls_area);
  volatile uint32_t *doorbell =
      &shmrpc__area_doorbell(server->server_area)->request_sleepers;
  uint32_t i, seen;
  int repaired = 0, quiet = 1;

  uint64_t now = shmrpc__os_now_ns();
  /* Often enough that a writer's damage lasts well under the idle slice,
   * rarely enough to cost nothing: the pass makes system calls. */
  if (now - shmrpc__load64(&server->repaired_ns) < SHMRPC__REPAIR_GAP_NS)
    return;
  if (!shmrpc__cas32(&server->repairing, 0, 1))
    return;
  shmrpc__store64(&server->repaired_ns, now);
  if (memcmp((const unsigned char *)header + 4,
             (const unsigned char *)want + 4, sizeof(*header) - 4) != 0) {
    memcpy((unsigned char *)header + 4, (const unsigned char *)want + 4,
           sizeof(*header) - 4);
    repaired = 1;
  }
  if (shmrpc__load32(&header->magic) != SHMRPC__MAGIC) {
    shmrpc__store32(&header->magic, SHMRPC__MAGIC);
    repaired = 1;
  }
  for (i = 0; i < server->lanes; i++) {
    shmrpc__lane_state *lane = &server->lane[i];
    shmrpc__answer_line *answer = shmrpc__area_answer(server->server_area, i);
    volatile uint32_t *taken =
        &shmrpc__area_lane_info(server->server_area, server->lanes, i)
             ->taken_seq;
    if (!shmrpc__cas32(&lane->claimed, 0, 1)) {
      quiet = 0;
      continue; /* a worker serves it: its words are in flux */
    }
    uint32_t last_taken = shmrpc__load32_relaxed(&lane->last_taken);
    uint32_t last_answered = shmrpc__load32_relaxed(&lane->last_answered);
    if (last_taken != last_answered ||
        shmrpc__load32(&shmrpc__area_request(server->calls_area, i)
                            ->call_seq) != last_taken)
      quiet = 0;
    if (shmrpc__load32(taken) != last_taken ||
        shmrpc__load32(&answer->response_seq) != last_answered ||
        shmrpc__load64(&answer->calls) != lane->calls) {
      shmrpc__store32_sc(taken, last_taken);
      shmrpc__store32_sc(&answer->response_seq, last_answered);
      shmrpc__store64(&answer->calls, lane->calls);
      /* Wake a caller that waits for the phantom call to end. */
      shmrpc__os_event_set(server->service, SHMRPC__EVENT_RESPONSE(i));
      repaired = 1;
    }
    shmrpc__store32(&lane->claimed, 0);
  }
  /* The doorbell word changes as workers come and go: put it back only if
   * it stayed wrong, and the same, for two passes. */
  seen = shmrpc__load32_sc(doorbell);
  if (seen != doorbell_expected(server) && seen == server->doorbell_seen) {
    if (++server->doorbell_repairs >= 2 &&
        shmrpc__cas32(doorbell, seen, doorbell_expected(server))) {
      shmrpc__os_event_broadcast(server->service, SHMRPC__EVENT_REQUEST);
      server->doorbell_repairs = 0;
      repaired = 1;
    }
  } else {
    server->doorbell_repairs = 0;
  }
  server->doorbell_seen = seen;
  /* No call in flight: nobody waits for an answer, whatever the crowd
   * word says (a caller killed while it waited left its count there). */
  if (quiet && shmrpc__load32(&shmrpc__area_crowd(server->calls_area)->waiting))
    shmrpc__store32(&shmrpc__area_crowd(server->calls_area)->waiting, 0);
  fold_report(&calls->timeouts, &stats->timeouts);
  fold_report(&calls->recoveries, &stats->recoveries);
  if (shmrpc__load32(&calls->server_dead) != 0)
    shmrpc__store32(&calls->server_dead, 0); /* we live */
  if (shmrpc__os_service_repair(server->service) > 0)
    repaired = 1;
  observe_locks(server);
  if (repaired)
    shmrpc__add64(&stats->repairs, 1);
  shmrpc__store32(&server->repairing, 0);
}

/* ---- Finding and taking calls ------------------------------------------ */

/* A call is waiting on a lane when its request line shows a posted sequence
 * number the server has not taken yet. */
SHMRPC__HOT static int call_posted(const shmrpc_server *server, uint32_t lane) {
  const shmrpc__request_line *request =
      shmrpc__area_request(server->calls_area, lane);
  if (shmrpc__load32_sc(&request->call_seq) ==
      shmrpc__load32_relaxed(&server->lane[lane].last_taken))
    return 0;
  return shmrpc__load32_sc(&request->slot_state) == SHMRPC__SLOT_POSTED;
}

/* Looks at every lane once, starting after the last one served. Returns the
 * lane + 1 of a posted call, 0 if none, SHMRPC_ESHUTDOWN once stopping. */
SHMRPC__HOT static int find_call(void *ctx) {
  shmrpc__worker *worker = ctx;
  shmrpc_server *server = worker->server;
  uint32_t i, lanes = server->lanes;
  if (shmrpc__load32_relaxed(&server->stop_requested))
    return SHMRPC_ESHUTDOWN;
  for (i = 0; i < lanes; i++) {
    uint32_t lane = worker->next_lane + i;
    if (lane >= lanes)
      lane -= lanes;
    if (shmrpc__load32_relaxed(&server->lane[lane].claimed) == 0 &&
        call_posted(server, lane))
      return (int)lane + 1;
  }
  return 0;
}

/* Takes the posted call: publishes taken_seq, then checks that the caller
 * has not withdrawn it meanwhile (see layout.h). Returns 1 if the call is
 * ours to run, 0 if it was withdrawn (it is then answered as such). */
SHMRPC__HOT static int take_call(shmrpc_server *server, uint32_t lane,
                                 uint32_t seq) {
  shmrpc__answer_line *answer = shmrpc__area_answer(server->server_area, lane);
  const shmrpc__request_line *request =
      shmrpc__area_request(server->calls_area, lane);
  shmrpc__store32_relaxed(&server->lane[lane].last_taken, seq);
  shmrpc__store32_sc(
      &shmrpc__area_lane_info(server->server_area, server->lanes, lane)
           ->taken_seq,
      seq);
  if (shmrpc__load32_sc(&request->slot_state) == SHMRPC__SLOT_POSTED &&
      shmrpc__load32_sc(&request->call_seq) == seq)
    return 1;
  /* Withdrawn: close the call without running it, so the lane is idle.
   * Its caller is gone, unless a writer withdrew it under a caller that
   * still waits: that one must get no stale answer, but "canceled". */
  shmrpc__add64(&shmrpc__area_stats(server->server_area)->withdrawn, 1);
  shmrpc__store32_relaxed((volatile uint32_t *)&answer->status,
                          (uint32_t)SHMRPC_ECANCELED);
  shmrpc__store32_relaxed(&answer->response_len, 0u);
  publish_answer(server, lane, seq);
  return 0;
}

/* Claims a lane for this worker: needed only when workers share lanes. */
SHMRPC__HOT static int claim(shmrpc_server *server, uint32_t lane) {
  if (server->workers == 1)
    return 1;
  return shmrpc__cas32(&server->lane[lane].claimed, 0, 1);
}
SHMRPC__HOT static void unclaim(shmrpc_server *server, uint32_t lane) {
  if (server->workers > 1)
    shmrpc__store32(&server->lane[lane].claimed, 0);
}

/* Copies the request of lane `lane` (beyond its line, at most capacity)
 * for the handler; a large one is timed: the pace of this worker's copies
 * (core.h, Pacing). */
SHMRPC__HOT static void copy_request(shmrpc__worker *worker, uint32_t lane,
                                     uint32_t request_len) {
  shmrpc_server *server = worker->server;
  uint64_t start = 0;
  if (request_len >= SHMRPC__PACE_MIN)
    start = shmrpc__os_now_ns();
  memcpy(worker->request_copy,
         shmrpc__area_payload(server->calls_area, server->lanes,
                              server->capacity, lane),
         request_len);
  if (start != 0)
    shmrpc__spin_learn(&worker->spin, request_len,
                       shmrpc__os_now_ns() - start);
}

/* Serves the call posted on `lane`, if it is still there. Returns 1 if it
 * served one. */
SHMRPC__HOT static int serve_lane(shmrpc__worker *worker, uint32_t lane) {
  shmrpc_server *server = worker->server;
  shmrpc__request_line *request = shmrpc__area_request(server->calls_area, lane);
  shmrpc_reply reply;
  uint32_t seq, method, request_len;
  int32_t status;

  if (!claim(server, lane))
    return 0;
  /* Read each field once, then validate: the caller may be hostile. */
  seq = shmrpc__load32(&request->call_seq);
  if (seq == shmrpc__load32_relaxed(&server->lane[lane].last_taken) ||
      !take_call(server, lane, seq)) {
    unclaim(server, lane);
    return 0;
  }
  worker->next_lane = lane + 1 < server->lanes ? lane + 1 : 0;
  SHMRPC__FAULT("server_busy");

  method = shmrpc__load32_relaxed(&request->method);
  request_len = shmrpc__load32_relaxed(&request->request_len);
  reply_init(&reply, server, lane);
  reply.method = method;
  reply.timeout_ms = (int32_t)shmrpc__load32_relaxed(
      (volatile uint32_t *)&request->timeout_ms);
  reply.deadline_ns = shmrpc__load64(&request->deadline_ns);
  if (reply.timeout_ms < SHMRPC_INFINITE)
    reply.timeout_ms = SHMRPC_INFINITE;

  if (request_len > server->capacity) {
    status = SHMRPC_ETOOBIG;
  } else {
    if (request_len <= SHMRPC__INLINE_MAX)
      shmrpc__copy_small(worker->request_copy, request->request_inline,
                         request_len);
    else
      copy_request(worker, lane, request_len);
    shmrpc__bump64(
        &shmrpc__area_lane_info(server->server_area, server->lanes, lane)
             ->bytes_in,
        request_len);
    status = dispatch_call(worker, method, request_len, &reply);
  }
  worker->woke_caller = answer_call(server, lane, seq, status, &reply);
  /* Before its next call the caller copies this answer out and its next
   * request in: the next wait for a call spins that much longer (core.h,
   * Pacing). A request beyond capacity was never copied: count none. */
  shmrpc__spin_expect(&worker->spin,
                      (request_len <= server->capacity ? request_len : 0u) +
                          (status == 0 ? (uint64_t)reply.len : 0u));
  unclaim(server, lane);
  worker->calls_since_repair++;
  SHMRPC__FAULT("server_answered");
  return 1;
}

/* ---- Waiting for calls ------------------------------------------------- */

/* Changes the doorbell word (what callers read to decide whether to ring). */
static void doorbell_add(shmrpc_server *server, uint32_t delta) {
  shmrpc__fetch_add32(
      &shmrpc__area_doorbell(server->server_area)->request_sleepers, delta);
}

/*
 * The spinner's role. The doorbell word tells callers that a worker will
 * look at the lanes without being woken: one spinning, or one running a
 * handler that will look again when it returns. So a worker that finds a
 * call keeps the role while no other worker sleeps: in the usual steady
 * state (one worker, calls back to back) the doorbell word is never
 * written, and a caller's look at it stays a cache hit. With a worker
 * asleep, the finder gives the role up, so that callers ring and a sleeper
 * serves the next call rather than wait for the handler; and a worker about
 * to sleep while the holder runs a handler takes the role over instead.
 * The finder marks itself BUSY and then looks for sleepers; a worker about
 * to sleep counts itself asleep and then looks for a BUSY holder: one of
 * the two sees the other.
 */
/* The role word of `worker` holding the role in `state`. */
static uint32_t role_of(const shmrpc__worker *worker, uint32_t state) {
  return (worker->id << 2) | state;
}

/* Takes the role: its own already, free (the doorbell learns of it), or
 * from a holder busy in a handler (the doorbell already says so). */
static int become_spinner(shmrpc__worker *worker) {
  shmrpc_server *server = worker->server;
  uint32_t seen;
  /* One worker: nobody to take its role over, nor to give it to. */
  if (worker->holds_role && server->workers == 1)
    return 1;
  seen = shmrpc__load32_sc(&server->spinning);
  if (seen == role_of(worker, ROLE_SPINNING))
    return 1; /* ours already (taken over before a sleep) */
  if (seen == role_of(worker, ROLE_BUSY) &&
      shmrpc__cas32(&server->spinning, seen, role_of(worker, ROLE_SPINNING)))
    return 1;
  worker->holds_role = 0; /* if it had it, another worker took it over */
  if (shmrpc__cas32(&server->spinning, ROLE_FREE,
                    role_of(worker, ROLE_SPINNING))) {
    doorbell_add(server, SHMRPC__SLEEPERS_ONE_SPINNER);
    worker->holds_role = 1;
    return 1;
  }
  seen = shmrpc__load32_sc(&server->spinning);
  if ((seen & ROLE_STATE) == ROLE_BUSY &&
      shmrpc__cas32(&server->spinning, seen, role_of(worker, ROLE_SPINNING))) {
    worker->holds_role = 1; /* from a worker busy in a handler */
    return 1;
  }
  return 0;
}

/* The holder found a call: keeps the role, busy, unless a worker sleeps. */
static void spinner_found(shmrpc__worker *worker) {
  shmrpc_server *server = worker->server;
  if (server->workers == 1)
    return; /* its role stays as it is: see become_spinner */
  if (!shmrpc__cas32(&server->spinning, role_of(worker, ROLE_SPINNING),
                     role_of(worker, ROLE_BUSY))) {
    worker->holds_role = 0;
    return;
  }
  if (shmrpc__load32_sc(&server->asleep) != 0 &&
      shmrpc__cas32(&server->spinning, role_of(worker, ROLE_BUSY), ROLE_FREE)) {
    doorbell_add(server, (uint32_t)-SHMRPC__SLEEPERS_ONE_SPINNER);
    worker->holds_role = 0;
  }
}

/* A worker woken from a sleep finds what it touches cold: it asks for
 * every lane's request line at once (find_call reads them all), and then
 * for the lines that serving the call it found touches (README,
 * Performance: from wake-up to answer 4.3 us instead of 5.4 us). */
static void prefetch_lanes(const shmrpc__worker *worker) {
  const shmrpc_server *server = worker->server;
  uint32_t i;
  for (i = 0; i < server->lanes; i++) {
    SHMRPC__PREFETCH(shmrpc__area_request(server->calls_area, i));
    SHMRPC__PREFETCH(&server->lane[i]);
  }
  SHMRPC__PREFETCH(shmrpc__area_doorbell(server->server_area));
}

static void prefetch_serve(const shmrpc__worker *worker, uint32_t lane) {
  const shmrpc_server *server = worker->server;
  SHMRPC__PREFETCH_W(shmrpc__area_answer(server->server_area, lane));
  SHMRPC__PREFETCH_W(
      shmrpc__area_lane_info(server->server_area, server->lanes, lane));
  SHMRPC__PREFETCH_W(shmrpc__area_response(server->server_area, server->lanes,
                                           server->capacity, lane));
  SHMRPC__PREFETCH_W(worker->request_copy);
  SHMRPC__PREFETCH(server->methods);
}

/*
 * Waits until a call is posted on some lane (returns its lane + 1), the
 * server stops (SHMRPC_ESHUTDOWN) or the deadline passes (SHMRPC_ETIMEDOUT).
 * As shmrpc__wait does for callers: spin for the window (if no other worker
 * spins), then sleep in slices, telling callers through the doorbell word,
 * and judge the sleep's length only at the next wait, so that a call that
 * wakes the server costs it no clock read before the handler.
 */
SHMRPC__HOT static int wait_for_call(shmrpc__worker *worker,
                                     shmrpc__deadline *deadline) {
  shmrpc_server *server = worker->server;
  shmrpc__spin *spin = &worker->spin;
  uint64_t start = 0, extra = shmrpc__spin_take_extra(spin);
  int found = find_call(worker), judging, spinner = 0;
  if (found != 0)
    return found;
  if (spin->slept_since_ns != 0) {
    uint64_t slept;
    start = shmrpc__os_now_ns();
    slept = start - spin->slept_since_ns;
    if (worker->sleep_judged)
      shmrpc__spin_judge(spin, slept, worker->slept_extra_ns);
    if (slept > 2 * spin->max_ns + worker->slept_extra_ns)
      worker->back_to_back = 0; /* the calls stopped coming */
    else if (!worker->sleep_judged)
      worker->back_to_back = 1;
    spin->slept_since_ns = 0;
  }
  /* A caller just woken needs a CPU to take its answer; where CPUs are
   * few, a spin for the next call would keep it from one (a cold call then
   * costs a whole spin window more). So does one that yielded its CPU to
   * this worker after ringing it (SHMRPC__SLEEPER_YIELDED): the scheduler
   * tends to queue a woken worker on its waker's CPU, and a spin there
   * keeps that caller from its answer until the window ends (README,
   * Performance). A caller that spins is no such case, nor one that called
   * again soon after the last such answer: it calls back to back, and the
   * two sides would otherwise take turns to sleep, each call waking both,
   * for as long as its calls keep coming. */
  judging = spin->max_ns > 0 && (!worker->woke_caller || worker->back_to_back);
  if (judging && spin->window_ns > SHMRPC__SPIN_FLOOR_NS &&
      become_spinner(worker)) {
    int i;
    spinner = 1;
    for (i = 0; i < SHMRPC__QUICK_CHECKS && found == 0; i++) {
      shmrpc__cpu_relax();
      found = find_call(worker);
    }
    if (found == 0) {
      if (start == 0)
        start = shmrpc__os_now_ns();
      shmrpc__deadline_arm(deadline, start);
      found = shmrpc__spin_for(find_call, worker,
                               shmrpc__spin_window(spin, extra), start,
                               deadline);
    }
    if (found != 0) {
      if (found > 0)
        spinner_found(worker);
      shmrpc__spin_paid(spin);
      return found;
    }
  } else if (spin->max_ns > 0 && start == 0) {
    start = shmrpc__os_now_ns(); /* before the sleep: no cold call waits */
  }
  /* A worker that could not spin gives up a busy role it still holds. */
  if (!spinner && worker->holds_role) {
    worker->holds_role = 0;
    if (shmrpc__cas32(&server->spinning, role_of(worker, ROLE_BUSY),
                      ROLE_FREE) ||
        shmrpc__cas32(&server->spinning, role_of(worker, ROLE_SPINNING),
                      ROLE_FREE))
      doorbell_add(server, (uint32_t)-SHMRPC__SLEEPERS_ONE_SPINNER);
  }

  /* Asleep from now on, as the doorbell word says; then the last looks. */
  shmrpc__fetch_add32(&server->asleep, 1);
  if (spinner && shmrpc__cas32(&server->spinning,
                                role_of(worker, ROLE_SPINNING), ROLE_FREE)) {
    worker->holds_role = 0;
    doorbell_add(server, 1u - SHMRPC__SLEEPERS_ONE_SPINNER);
  } else {
    worker->holds_role = 0;
    doorbell_add(server, 1u);
  }
  /* A holder busy in a handler would make callers wait for it: take its
   * role over rather than sleep. */
  {
    uint32_t seen = shmrpc__load32_sc(&server->spinning);
    if ((seen & ROLE_STATE) == ROLE_BUSY &&
        shmrpc__cas32(&server->spinning, seen,
                      role_of(worker, ROLE_SPINNING))) {
      doorbell_add(server, (uint32_t)-1);
      shmrpc__fetch_add32(&server->asleep, (uint32_t)-1);
      worker->holds_role = 1;
      spin->extra_ns = extra; /* for that look's spin */
      return 0; /* serve_one looks again, as the spinner */
    }
  }
  /* Repair at the end of each idle slice (after the look that follows it:
   * a call that came as the slice ended must not wait for the pass), not
   * before the first sleep: a caller just woken may need this CPU. */
  for (;;) {
    int32_t slice = shmrpc__deadline_slice(deadline, SHMRPC__IDLE_SLICE_MS);
    uint32_t prepared;
    if (slice == 0) {
      found = SHMRPC_ETIMEDOUT;
      break;
    }
    prepared = shmrpc__os_event_prepare(server->service, SHMRPC__EVENT_REQUEST);
    found = find_call(worker);
    if (found == 0) {
      (void)shmrpc__os_event_wait(server->service, SHMRPC__EVENT_REQUEST,
                                  prepared, slice);
      prefetch_lanes(worker);
      found = find_call(worker);
      if (found > 0)
        prefetch_serve(worker, (uint32_t)found - 1u);
    }
    if (found != 0)
      break;
    repair(server);
    worker->calls_since_repair = 0;
  }
  doorbell_add(server, (uint32_t)-1);
  shmrpc__fetch_add32(&server->asleep, (uint32_t)-1);
  if (spin->max_ns > 0) {
    spin->slept_since_ns = start;
    worker->slept_extra_ns = extra;
    worker->sleep_judged = judging;
  }
  return found;
}

/* Waits for one posted call and serves it. */
SHMRPC__HOT static int serve_one(shmrpc__worker *worker,
                                 shmrpc__deadline *deadline) {
  for (;;) {
    int found;
    if (worker->calls_since_repair >= SHMRPC__REPAIR_EVERY) {
      repair(worker->server);
      worker->calls_since_repair = 0;
    }
    found = wait_for_call(worker, deadline);
    if (found < 0)
      return found;
    if (found == 0)
      continue; /* it took the spinner's role over: look again */
    if (serve_lane(worker, (uint32_t)found - 1u))
      return 0;
  }
}

static void worker_main(void *arg) {
  shmrpc__worker *worker = arg;
  shmrpc__deadline forever = shmrpc__deadline_in(SHMRPC_INFINITE);
  while (serve_one(worker, &forever) == 0) {
  }
}

/* run, run_once and dispatch are one at a time, and never in a fork child
 * (its kernel objects are gone: it would only steal the parent's calls). */
static int begin_serving(shmrpc_server *server) {
  if (server == NULL || shmrpc__os_service_forked(server->service))
    return SHMRPC_EINVAL;
  if (!shmrpc__cas32(&server->serving, 0, 1))
    return SHMRPC_EINVAL;
  return 0;
}

static void end_serving(shmrpc_server *server) {
  shmrpc__store32_sc(&server->serving, 0);
}

int shmrpc_server_run_once(shmrpc_server *server, int32_t timeout_ms) {
  shmrpc__deadline deadline;
  int rc;
  if (server == NULL || timeout_ms < SHMRPC_INFINITE)
    return SHMRPC_EINVAL;
  rc = begin_serving(server);
  if (rc != 0)
    return rc;
  deadline = shmrpc__deadline_in(timeout_ms);
  rc = serve_one(&server->loop_worker, &deadline);
  end_serving(server);
  return rc;
}

SHMRPC__HOT int shmrpc_server_run(shmrpc_server *server) {
  uint32_t started, i;
  int rc = begin_serving(server);
  if (rc != 0)
    return rc;
  for (started = 1; started < server->workers; started++) {
    shmrpc__worker *worker = &server->worker[started];
    worker->next_lane = started % server->lanes;
    rc = shmrpc__os_thread_start(&worker->thread, worker_main, worker);
    if (rc != 0)
      break;
  }
  if (rc != 0) {
    shmrpc_server_stop(server);
  } else {
    worker_main(&server->worker[0]);
  }
  for (i = 1; i < started; i++) {
    shmrpc__os_thread_join(server->worker[i].thread);
    server->worker[i].thread = NULL;
  }
  end_serving(server);
  return rc;
}

void shmrpc_server_stop(shmrpc_server *server) {
  if (server == NULL)
    return;
  /* Only an atomic store and wake-ups: all async-signal-safe. */
  shmrpc__store32_sc(&server->stop_requested, 1);
  if (shmrpc__os_service_forked(server->service))
    return;
  shmrpc__os_event_broadcast(server->service, SHMRPC__EVENT_REQUEST);
  shmrpc__os_waitable_wake(server->service, UINT32_MAX, 0);
}

/* ---- Event loops ------------------------------------------------------- */

int shmrpc_server_waitable(shmrpc_server *server, shmrpc_waitable *out) {
  if (server == NULL || out == NULL)
    return SHMRPC_EINVAL;
  return shmrpc__os_waitable_get(server->service, out);
}

int shmrpc_server_dispatch(shmrpc_server *server) {
  shmrpc__worker *worker;
  volatile uint32_t *doorbell;
  int served = 0, rc;
  rc = begin_serving(server);
  if (rc != 0)
    return rc;
  worker = &server->loop_worker;
  doorbell = &shmrpc__area_doorbell(server->server_area)->request_sleepers;
  /* While it serves, callers need not poke the waitable. */
  if (shmrpc__load32(&server->in_loop)) {
    shmrpc__store32(&server->in_loop, 0);
    __atomic_fetch_and(doorbell, ~SHMRPC__SLEEPERS_FD, __ATOMIC_SEQ_CST);
  }
  shmrpc__os_waitable_drain(server->service);
  repair(server);
  for (;;) {
    int found = find_call(worker);
    if (found < 0) {
      rc = found;
      break;
    }
    if (found == 0) {
      /* Armed first, then the last look: a caller posts, then looks for
       * the bit, so one of the two sees the other. */
      shmrpc__store32(&server->in_loop, 1);
      __atomic_fetch_or(doorbell, SHMRPC__SLEEPERS_FD, __ATOMIC_SEQ_CST);
      found = find_call(worker);
      if (found <= 0) {
        rc = found < 0 ? found : served;
        break;
      }
      shmrpc__store32(&server->in_loop, 0);
      __atomic_fetch_and(doorbell, ~SHMRPC__SLEEPERS_FD, __ATOMIC_SEQ_CST);
    }
    served += serve_lane(worker, (uint32_t)found - 1u);
    if ((uint32_t)served >= 2 * server->lanes) {
      /* Enough for one turn of the caller's loop: let its other work run,
       * and make its next wait return at once for the rest. */
      shmrpc__os_waitable_wake(server->service, UINT32_MAX, 0);
      rc = served;
      break;
    }
  }
  end_serving(server);
  return rc;
}

/* ---- Counters and the end ---------------------------------------------- */

int shmrpc_server_stats(const shmrpc_server *server, shmrpc_stats *out) {
  const shmrpc__stats_line *stats;
  uint32_t i;
  if (server == NULL || out == NULL ||
      shmrpc__os_service_forked(server->service))
    return SHMRPC_EINVAL;
  memset(out, 0, sizeof(*out));
  stats = shmrpc__area_stats(server->server_area);
  for (i = 0; i < server->lanes; i++) {
    const shmrpc__lane_info *info =
        shmrpc__area_lane_info(server->server_area, server->lanes, i);
    out->calls += shmrpc__load64(&shmrpc__area_answer(server->server_area, i)
                                      ->calls);
    out->app_errors += shmrpc__load64(&info->app_errors);
    out->bytes_in += shmrpc__load64(&info->bytes_in);
    out->bytes_out += shmrpc__load64(&info->bytes_out);
  }
  out->timeouts = shmrpc__load64(&stats->timeouts);
  out->recoveries = shmrpc__load64(&stats->recoveries);
  shmrpc__add_reported(out, shmrpc__area_calls_header(server->calls_area));
  out->repairs = shmrpc__load64(&stats->repairs);
  out->uptime_ms = (shmrpc__os_now_ns() - server->start_ns) / 1000000u;
  return 0;
}

void shmrpc_server_destroy(shmrpc_server *server) {
  shmrpc__header *header;
  uint32_t lane;
  if (server == NULL)
    return;
  if (shmrpc__os_service_forked(server->service)) {
    /* A fork child's copy: the service is the parent's. */
    shmrpc__os_service_close(server->service);
    server_free(server);
    return;
  }
  /* Workers running on other threads stop first; handlers in progress
   * finish. */
  shmrpc_server_stop(server);
  while (shmrpc__load32_sc(&server->serving) != 0)
    shmrpc__os_sleep_ms(1);
  header = shmrpc__area_header(server->server_area);
  shmrpc__store32_sc(&header->server_state, SHMRPC__SERVER_STOPPING);
  for (lane = 0; lane < server->lanes; lane++) {
    /* A call posted but not taken gets an answer instead of a timeout. */
    if (call_posted(server, lane)) {
      const shmrpc__request_line *request =
          shmrpc__area_request(server->calls_area, lane);
      uint32_t seq = shmrpc__load32(&request->call_seq);
      if (take_call(server, lane, seq)) {
        shmrpc_reply reply;
        reply_init(&reply, server, lane);
        answer_call(server, lane, seq, SHMRPC_ESHUTDOWN, &reply);
      }
    }
    /* Wake a caller that sleeps, whether or not it is counted yet. */
    shmrpc__os_event_set(server->service, SHMRPC__EVENT_RESPONSE(lane));
  }
  shmrpc__os_service_close(server->service);
  server_free(server);
}
