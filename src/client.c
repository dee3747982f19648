/*
 * The client: a thread-safe handle on a service, and blocking calls (for
 * calls that do not block, see pending.c).
 *
 * A handle holds a *connection* (the mapped service, its lanes, the client
 * token the backend took). Any number of threads call through one handle at
 * once; each call takes a lane of its own (the backend's lane locks and
 * queue say which), so concurrent calls never share a slot.
 *
 * When the server dies or stops, the connection is marked dead; every call
 * that waits on it reports that, and the next call makes a new connection.
 * A replaced connection may still be in use by calls on other threads, so
 * it is *retired*, not closed: each call counts itself in `active` before it
 * loads the connection, and a retired connection is closed by the call that
 * brings `active` back to zero after the retirement (the epoch says which
 * retirements that call may close).
 */
#include <stdlib.h>
#include <string.h>

#include "client.h"

/* The calling thread's: the application error of its last call, and the
 * lane it used last (a hint: the lane's lines are likely in its cache).
 * The words a call touches are in the fast thread-local model; the message
 * is not (see SHMRPC__THREAD_LOCAL_FAST). */
typedef struct thread_state {
  uint32_t last_lane;
  int32_t code;
  const shmrpc_client *client;
} thread_state;
static SHMRPC__THREAD_LOCAL_FAST thread_state this_thread;
static SHMRPC__THREAD_LOCAL char app_message[SHMRPC_MESSAGE_MAX + 1];

void shmrpc_client_options_init(shmrpc_client_options *options) {
  if (options == NULL)
    return;
  memset(options, 0, sizeof(*options));
  options->spin_us = -1;
}

/* ---- Connections ------------------------------------------------------- */

static void conn_close(shmrpc__conn *conn) {
  shmrpc__os_service_close(conn->service);
  free(conn);
}

/* Validates a freshly mapped service. Returns 0, SHMRPC_ENOSERVER when the
 * server is still starting or already stopping (worth retrying), or
 * SHMRPC_EPROTO when it is not a compatible service. Each field is read
 * once. */
static int conn_check(shmrpc__conn *conn, size_t server_size,
                      size_t calls_size) {
  const shmrpc__header *header = shmrpc__area_header(conn->server);
  uint32_t magic, version, capacity, lanes, state, i;
  uint64_t want_server, want_calls;

  if (server_size < SHMRPC__OFF_ANSWERS)
    return SHMRPC_ENOSERVER;
  magic = shmrpc__load32(&header->magic);
  if (magic == 0)
    return SHMRPC_ENOSERVER;
  version = shmrpc__load32_relaxed(&header->version);
  capacity = shmrpc__load32_relaxed(&header->capacity);
  lanes = shmrpc__load32_relaxed(&header->lanes);
  if (magic != SHMRPC__MAGIC || version != SHMRPC__PROTOCOL_VERSION ||
      capacity == 0 || capacity > SHMRPC_MAX_CAPACITY || lanes == 0 ||
      lanes > SHMRPC_MAX_LANES)
    return shmrpc__error_detail(SHMRPC_EPROTO,
                                "not a shmrpc service of protocol %u",
                                SHMRPC__PROTOCOL_VERSION);
  /* The backend takes and wakes the lanes its own prefix counts: a header
   * that says fewer would let it hand out a lane this connection has no
   * words for. Seen while a server remakes the names, or while a writer
   * of the server's user is at it (the server's repair puts the header
   * back): not yet a service to call, so worth retrying. */
  if (lanes != shmrpc__os_service_lanes(conn->service))
    return shmrpc__error_detail(SHMRPC_ENOSERVER,
                                "the service's header says %u lanes, its "
                                "objects were made for %u",
                                (unsigned)lanes,
                                (unsigned)shmrpc__os_service_lanes(
                                    conn->service));
  want_server = shmrpc__server_size(capacity, lanes);
  want_calls = shmrpc__calls_size(capacity, lanes);
  if (want_server > server_size || want_calls > calls_size)
    return shmrpc__error_detail(SHMRPC_EPROTO,
                                "the service's areas are smaller than its "
                                "header says");
  state = shmrpc__load32_relaxed(&header->server_state);
  if (state != SHMRPC__SERVER_RUNNING)
    return SHMRPC_ENOSERVER;
  conn->generation = shmrpc__load64(&header->generation);
  conn->capacity = capacity;
  conn->lanes = lanes;
  for (i = 0; i < lanes; i++) {
    shmrpc__lane *lane = &conn->lane[i];
    lane->request = shmrpc__area_request(conn->calls, i);
    lane->answer = shmrpc__area_answer(conn->server, i);
    lane->taken = &shmrpc__area_lane_info(conn->server, lanes, i)->taken_seq;
    lane->payload = shmrpc__area_payload(conn->calls, lanes, capacity, i);
    lane->response =
        shmrpc__area_response(conn->server, lanes, capacity, i);
    lane->message = shmrpc__area_message(conn->server, lanes, i);
  }
  return 0;
}

/* Opens a new connection, polling for the server until the deadline. */
static int conn_open(const shmrpc_client *client, shmrpc__deadline *deadline,
                     shmrpc__conn **out) {
  shmrpc__os_open_options options;
  int32_t pause_ms = 1;
  options.global_namespace = client->global_namespace;
  options.server_user = client->has_server_user ? client->server_user : NULL;
  for (;;) {
    shmrpc__conn *conn = calloc(1, sizeof(*conn));
    const void *server = NULL;
    void *calls = NULL;
    size_t server_size = 0, calls_size = 0;
    uint32_t i;
    int rc;
    if (conn == NULL)
      return SHMRPC_ENOMEM;
    shmrpc__error_clear();
    rc = shmrpc__os_service_open(client->name, &options, &conn->service,
                                 &server, &server_size, &calls, &calls_size);
    if (rc == 0) {
      conn->server = server;
      conn->calls = calls;
      rc = conn_check(conn, server_size, calls_size);
      if (rc == 0) {
        for (i = 0; i < conn->lanes; i++)
          shmrpc__spin_init(&conn->spin[i], client->spin_us);
        *out = conn;
        return 0;
      }
      shmrpc__os_service_close(conn->service);
    }
    free(conn);
    if (rc != SHMRPC_ENOSERVER)
      return rc;
    /* No notification exists for a name appearing: poll, backing off. */
    pause_ms = shmrpc__deadline_slice(deadline, pause_ms);
    if (pause_ms == 0)
      return rc;
    shmrpc__os_sleep_ms(pause_ms);
    pause_ms = pause_ms < 16 ? pause_ms * 2 : 20;
  }
}

/* Closes the retired connections that no call can be using any more:
 * those retired at or before `epoch`, which the caller read before it saw
 * `active` reach zero. */
SHMRPC__COLD static void close_retired(shmrpc_client *client, uint64_t epoch) {
  shmrpc__conn *list =
      __atomic_exchange_n(&client->retired, NULL, __ATOMIC_SEQ_CST);
  while (list != NULL) {
    shmrpc__conn *next = list->retired_next;
    if (list->retired_epoch <= epoch) {
      conn_close(list);
    } else { /* too recent: put it back */
      shmrpc__conn *head = __atomic_load_n(&client->retired, __ATOMIC_SEQ_CST);
      do {
        list->retired_next = head;
      } while (!__atomic_compare_exchange_n(&client->retired, &head, list, 0,
                                            __ATOMIC_SEQ_CST,
                                            __ATOMIC_SEQ_CST));
    }
    list = next;
  }
}

static void retire(shmrpc_client *client, shmrpc__conn *conn) {
  shmrpc__conn *head;
  conn->retired_epoch = __atomic_add_fetch(&client->epoch, 1, __ATOMIC_SEQ_CST);
  head = __atomic_load_n(&client->retired, __ATOMIC_SEQ_CST);
  do {
    conn->retired_next = head;
  } while (!__atomic_compare_exchange_n(&client->retired, &head, conn, 0,
                                        __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
}

/* A call enters and leaves the handle; see the top of this file. */
SHMRPC__HOT static int enter(shmrpc_client *client) {
  shmrpc__fetch_add32(&client->active, 1u);
  if (SHMRPC__UNLIKELY(shmrpc__load32(&client->closing) != 0)) {
    shmrpc__fetch_add32(&client->active, (uint32_t)-1);
    return SHMRPC_EINVAL;
  }
  return 0;
}

SHMRPC__HOT static void leave(shmrpc_client *client) {
  uint64_t epoch = __atomic_load_n(&client->epoch, __ATOMIC_SEQ_CST);
  if (shmrpc__fetch_add32(&client->active, (uint32_t)-1) == 1u &&
      SHMRPC__UNLIKELY(__atomic_load_n(&client->retired, __ATOMIC_SEQ_CST) !=
                       NULL))
    close_retired(client, epoch);
}

/* Gives the handle a working connection: the current one if it is alive,
 * else a new one. One thread connects; others wait for it, within their
 * own deadlines. */
SHMRPC__COLD static int reconnect(shmrpc_client *client,
                                  shmrpc__deadline *deadline,
                                  shmrpc__conn **out) {
  for (;;) {
    shmrpc__conn *conn = __atomic_load_n(&client->conn, __ATOMIC_ACQUIRE);
    shmrpc__conn *fresh = NULL;
    int rc;
    if (conn != NULL && !conn->dead &&
        !shmrpc__os_service_forked(conn->service)) {
      *out = conn;
      return 0;
    }
    if (!shmrpc__cas32(&client->connecting, 0, 1)) {
      int32_t pause = shmrpc__deadline_slice(deadline, 1);
      if (pause == 0 && deadline->timeout_ms >= 0)
        return SHMRPC_ENOSERVER;
      shmrpc__os_sleep_ms(pause > 0 ? pause : 1);
      continue;
    }
    /* Ours to replace, if nobody did it meanwhile. */
    if (__atomic_load_n(&client->conn, __ATOMIC_ACQUIRE) != conn) {
      shmrpc__store32(&client->connecting, 0);
      continue;
    }
    rc = conn_open(client, deadline, &fresh);
    if (rc != 0 && conn == NULL) {
      shmrpc__store32(&client->connecting, 0);
      return rc;
    }
    __atomic_store_n(&client->conn, fresh, __ATOMIC_RELEASE);
    if (conn != NULL)
      retire(client, conn);
    shmrpc__store32(&client->connecting, 0);
    if (rc != 0)
      return rc;
    *out = fresh;
    return 0;
  }
}

int shmrpc__client_enter(shmrpc_client *client) { return enter(client); }

void shmrpc__client_leave(shmrpc_client *client) { leave(client); }

int shmrpc__client_connect(shmrpc_client *client, shmrpc__deadline *deadline,
                           shmrpc__conn **out) {
  shmrpc__conn *conn = __atomic_load_n(&client->conn, __ATOMIC_ACQUIRE);
  if (conn != NULL && !conn->dead &&
      !shmrpc__os_service_forked(conn->service)) {
    *out = conn;
    return 0;
  }
  return reconnect(client, deadline, out);
}

int shmrpc_client_open(shmrpc_client **out, const char *name,
                       const shmrpc_client_options *options,
                       int32_t timeout_ms) {
  shmrpc_client *client;
  shmrpc__deadline deadline;
  shmrpc__conn *conn = NULL;
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
  if (timeout_ms < SHMRPC_INFINITE ||
      (options != NULL &&
       (options->spin_us < -1 || options->spin_us > SHMRPC_MAX_SPIN_US)))
    return SHMRPC_EINVAL;
  if (options != NULL && options->server_user != NULL &&
      strlen(options->server_user) > SHMRPC_USER_MAX)
    return shmrpc__error_detail(SHMRPC_EINVAL, "server user name too long");
  client = calloc(1, sizeof(*client));
  if (client == NULL)
    return SHMRPC_ENOMEM;
  strcpy(client->name, name); /* length checked by shmrpc_name_check */
  client->global_namespace = options != NULL && options->global_namespace;
  client->spin_us = options != NULL ? options->spin_us : -1;
  if (options != NULL && options->server_user != NULL) {
    client->has_server_user = 1;
    strcpy(client->server_user, options->server_user);
  }
  deadline = shmrpc__deadline_in(timeout_ms);
  rc = conn_open(client, &deadline, &conn);
  if (rc != 0) {
    free(client);
    return rc;
  }
  client->conn = conn;
  *out = client;
  return 0;
}

void shmrpc_client_close(shmrpc_client *client) {
  shmrpc__conn *conn;
  if (client == NULL)
    return;
  /* This thread's calls in flight end now; calls in progress on other
   * threads finish first. */
  shmrpc__pending_detach(client);
  shmrpc__store32_sc(&client->closing, 1);
  while (shmrpc__load32_sc(&client->active) != 0)
    shmrpc__os_sleep_ms(1);
  conn = client->conn;
  if (conn != NULL)
    conn_close(conn);
  close_retired(client, UINT64_MAX);
  shmrpc__os_loop_close(client->loop);
  free(client);
}

size_t shmrpc_client_capacity(const shmrpc_client *client) {
  const shmrpc__conn *conn;
  if (client == NULL)
    return 0;
  conn = __atomic_load_n(&client->conn, __ATOMIC_ACQUIRE);
  return conn == NULL || conn->dead ? 0 : conn->capacity;
}

int32_t shmrpc_client_app_error(const shmrpc_client *client,
                                const char **message) {
  const thread_state *me = &this_thread;
  int32_t code = client != NULL && me->client == client
                     ? me->code
                     : 0;
  if (message != NULL)
    *message = code != 0 ? app_message : "";
  return code;
}

/* ---- Calls ------------------------------------------------------------- */

void shmrpc__client_clear_app_error(void) { this_thread.code = 0; }

uint32_t shmrpc__client_lane_hint(void) { return this_thread.last_lane; }

/* What a waiting call looks at. */
typedef struct call_wait {
  shmrpc__conn *conn;
  shmrpc__lane *lane;
  uint32_t seq;
} call_wait;

int shmrpc__conn_health(shmrpc__conn *conn) {
  const shmrpc__header *header = shmrpc__area_header(conn->server);
  int rc = 0;
  if (shmrpc__load64(&header->generation) != conn->generation ||
      conn->dead)
    rc = SHMRPC_ESERVERDIED;
  else if (shmrpc__load32(&header->server_state) == SHMRPC__SERVER_STOPPING)
    rc = SHMRPC_ESHUTDOWN;
  else if (!shmrpc__os_server_alive(conn->service)) {
    /* Tell callers of other handles, so they need not find out slowly. */
    shmrpc__store32(&shmrpc__area_calls_header(conn->calls)->server_dead, 1);
    rc = SHMRPC_ESERVERDIED;
  }
  if (rc != 0)
    shmrpc__store32(&conn->dead, 1);
  return rc;
}

int shmrpc__conn_call_lost(shmrpc__conn *conn, uint32_t index, uint32_t seq) {
  const shmrpc__lane *lane = &conn->lane[index];
  int rc;
  if (shmrpc__load32_sc(&lane->answer->response_seq) == seq)
    return 0; /* answered */
  if (shmrpc__load32_sc(&lane->request->call_seq) == seq &&
      (shmrpc__load32_sc(&lane->request->slot_state) == SHMRPC__SLOT_POSTED ||
       shmrpc__load32_sc(lane->taken) == seq))
    return 0;
  /* A new server that reuses the mapping (Windows keeps a dead server's
   * section while clients hold it) starts from zeroed lanes: that is the
   * server's death, not a meddling peer. */
  rc = shmrpc__conn_health(conn);
  if (rc != 0)
    return rc;
  return shmrpc__error_detail(SHMRPC_EPROTO,
                              "another process withdrew or replaced the "
                              "call on lane %u", (unsigned)index);
}

/* After each slice of a wait: the server's health, and, for an answer, that
 * the call is still there to be answered (only a writer of the calls area
 * withdraws or replaces another's call; it would wait for ever). */
static int wait_health(void *ctx) {
  call_wait *wait = ctx;
  if (wait->seq != 0) {
    int rc = shmrpc__conn_call_lost(wait->conn,
                                    (uint32_t)(wait->lane - wait->conn->lane),
                                    wait->seq);
    if (rc != 0)
      return rc;
  }
  return shmrpc__conn_health(wait->conn);
}

static int lane_not_busy(void *ctx) {
  return shmrpc__lane_not_busy(((call_wait *)ctx)->lane);
}

/* The answer is there once the answer line carries our sequence number:
 * one cache line to poll, written by the server alone. */
SHMRPC__HOT static int answer_ready(void *ctx) {
  call_wait *wait = ctx;
  return shmrpc__load32_sc(&wait->lane->answer->response_seq) == wait->seq
             ? 1
             : 0;
}

/* Counts a client-side event in the calls area, where the server folds it
 * into its counters. */
static void report(volatile uint64_t *counter) { shmrpc__add64(counter, 1); }

void shmrpc__conn_report_timeout(shmrpc__conn *conn) {
  report(&shmrpc__area_calls_header(conn->calls)->timeouts);
}

void shmrpc__conn_report_recovery(shmrpc__conn *conn) {
  report(&shmrpc__area_calls_header(conn->calls)->recoveries);
}

/* Takes a lane after the first try (whose result is `rc`) found none:
 * queues for one in slices, so that a dead or stopping server ends the
 * wait. SHMRPC_NOWAIT does not queue. */
SHMRPC__COLD static int take_lane_slow(shmrpc__conn *conn, int rc,
                                       shmrpc__deadline *deadline,
                                       uint32_t *lane) {
  shmrpc__os_lane_waiter waiter;
  if (rc != SHMRPC_EAGAIN)
    return rc;
  if (deadline->timeout_ms == 0)
    return SHMRPC_EAGAIN;
  memset(&waiter, 0, sizeof(waiter));
  for (;;) {
    int32_t slice = shmrpc__deadline_slice(deadline, SHMRPC__SLICE_MS);
    if (slice == 0) {
      shmrpc__os_lane_wait_end(conn->service, &waiter);
      return SHMRPC_ETIMEDOUT;
    }
    rc = shmrpc__os_lane_wait(conn->service, &waiter, slice, lane);
    if (rc >= 0)
      return rc;
    if (rc == SHMRPC_ETIMEDOUT)
      rc = shmrpc__conn_health(conn);
    if (rc != 0) {
      shmrpc__os_lane_wait_end(conn->service, &waiter);
      return rc;
    }
  }
}

/* The header says the server changed, died or is stopping, or a caller
 * left a hint that it died: the health check decides. */
SHMRPC__COLD static int recheck_server(shmrpc__conn *conn) {
  int rc = shmrpc__conn_health(conn);
  if (rc == 0) /* a false hint (the server lives): clear it */
    shmrpc__store32(&shmrpc__area_calls_header(conn->calls)->server_dead, 0);
  return rc;
}

SHMRPC__HOT int shmrpc__conn_check(shmrpc__conn *conn) {
  if (SHMRPC__UNLIKELY(
          shmrpc__load64(&shmrpc__area_header(conn->server)->generation) !=
              conn->generation ||
          shmrpc__load32(&shmrpc__area_header(conn->server)->server_state) !=
              SHMRPC__SERVER_RUNNING ||
          shmrpc__load32(&shmrpc__area_calls_header(conn->calls)
                              ->server_dead) != 0))
    return recheck_server(conn);
  return 0;
}

/*
 * What a previous holder left in a lane tells what happened to it: a posted
 * call the server never took means it died right after posting (withdraw
 * it); a call taken but not answered means it timed out, was cancelled or
 * died while the server works (wait for that answer, which nobody will
 * read). Anything else is idle.
 */
SHMRPC__COLD int shmrpc__conn_prepare(shmrpc__conn *conn, uint32_t index) {
  shmrpc__lane *lane = &conn->lane[index];
  int looks;
  /* A writer who keeps rewriting the slot gets a few looks, then the lane
   * counts as busy (its caller's deadline bounds the rest). */
  for (looks = 0; looks < 16; looks++) {
    uint32_t state, posted, taken;
    if (shmrpc__lane_idle(lane))
      return 0;
    state = shmrpc__load32_sc(&lane->request->slot_state);
    posted = shmrpc__load32(&lane->request->call_seq);
    taken = shmrpc__load32_sc(lane->taken);
    if (state == SHMRPC__SLOT_POSTED && posted != taken) {
      (void)shmrpc__lane_withdraw(lane, posted);
      continue;
    }
    if (state != SHMRPC__SLOT_POSTED && state != SHMRPC__SLOT_FREE) {
      shmrpc__store32_sc(&lane->request->slot_state, SHMRPC__SLOT_FREE);
      continue; /* corrupted */
    }
    if (shmrpc__lane_not_busy(lane))
      continue; /* answered meanwhile: look again */
    return 1; /* busy: the server still works on an earlier call */
  }
  return 1;
}

SHMRPC__COLD int shmrpc__conn_prepare_wait(shmrpc__conn *conn, uint32_t index,
                                           shmrpc__deadline *deadline) {
  call_wait wait;
  shmrpc__sleep how;
  wait.conn = conn;
  wait.lane = &conn->lane[index];
  wait.seq = 0;
  how.event = SHMRPC__EVENT_RESPONSE(index);
  how.sleepers = &wait.lane->request->response_sleepers;
  how.mark = SHMRPC__SLEEPER_EVENT;
  how.crowd = NULL;
  /* Not the answer a post expected: no extra spin (core.h, Pacing) from a
   * call of this lane that ended without a wait. */
  conn->spin[index].extra_ns = 0;
  for (;;) {
    int rc = shmrpc__conn_prepare(conn, index);
    if (rc <= 0)
      return rc;
    if (shmrpc__deadline_expired(deadline))
      return SHMRPC_ETIMEDOUT;
    rc = shmrpc__wait(conn->service, &how, lane_not_busy, wait_health, &wait,
                      &conn->spin[index], 0, deadline, SHMRPC__SLICE_MS);
    if (rc < 0)
      return rc;
  }
}

SHMRPC__COLD int shmrpc__conn_post_failed(shmrpc__conn *conn) {
  int rc = shmrpc__conn_health(conn); /* a new server zeroed the lanes */
  if (rc != 0)
    return rc;
  return shmrpc__error_detail(SHMRPC_EPROTO,
                              "the lane changed under the call: someone "
                              "wrote over the lane's lock");
}

SHMRPC__COLD static int server_replaced(shmrpc__conn *conn) {
  this_thread.code = 0; /* no application error came with it */
  shmrpc__store32(&conn->dead, 1);
  return shmrpc__error_detail(SHMRPC_ESERVERDIED,
                              "the server died and a new one took the name "
                              "as its answer was read");
}

/* Any answer but a success that fits the caller's buffer. status and len
 * were read once by take_answer; they are validated here. */
SHMRPC__COLD static int take_other_answer(shmrpc_client *client,
                                          shmrpc__conn *conn,
                                          const shmrpc__lane *lane,
                                          int32_t status, uint32_t len,
                                          size_t *response_len) {
  switch (status) {
  case 0:
    if (len > conn->capacity)
      return SHMRPC_EPROTO;
    if (response_len != NULL)
      *response_len = len;
    return SHMRPC_ETOOBIG; /* the caller's buffer is too small */
  case SHMRPC_EAPP: {
    uint32_t message_len = shmrpc__load32_relaxed(&lane->answer->message_len);
    int32_t code = (int32_t)shmrpc__load32_relaxed(
        (const volatile uint32_t *)&lane->answer->app_code);
    if (message_len > SHMRPC_MESSAGE_MAX)
      message_len = SHMRPC_MESSAGE_MAX;
    thread_state *me = &this_thread;
    memcpy(app_message, lane->message, message_len);
    app_message[message_len] = '\0';
    me->client = client;
    me->code = code > 0 ? code : 1;
    return SHMRPC_EAPP;
  }
  case SHMRPC_ESHUTDOWN:
    shmrpc__store32(&conn->dead, 1);
    return SHMRPC_ESHUTDOWN;
  case SHMRPC_ENOMETHOD:
  case SHMRPC_ETOOBIG:
  case SHMRPC_ETIMEDOUT:
  case SHMRPC_ENOSERVER:
  case SHMRPC_ESERVERDIED: /* forwarded from a far side: ours lives */
  case SHMRPC_ECANCELED:   /* withdrawn by someone else: see take_call */
  case SHMRPC_EACCES:      /* the rest only from a handler that forwards */
  case SHMRPC_EUNTRUSTED:
  case SHMRPC_EAGAIN:
    return status;
  default:
    return SHMRPC_EPROTO;
  }
}

/* shmrpc__conn_take_answer, inline for the blocking call. */
SHMRPC__HOT static inline int take_answer(shmrpc_client *client,
                                          shmrpc__conn *conn, uint32_t index,
                                          void *response, size_t response_cap,
                                          size_t *response_len) {
  const shmrpc__lane *lane = &conn->lane[index];
  const shmrpc__answer_line *answer = lane->answer;
  int32_t status = (int32_t)shmrpc__load32_relaxed(
      (const volatile uint32_t *)&answer->status);
  uint32_t len = shmrpc__load32_relaxed(&answer->response_len);
  int rc = 0;

  if (SHMRPC__UNLIKELY(status != 0 || len > conn->capacity ||
                       len > response_cap)) {
    rc = take_other_answer(client, conn, lane, status, len, response_len);
  } else {
    if (response_len != NULL)
      *response_len = len;
    if (len > SHMRPC__INLINE_MAX)
      memcpy(response, lane->response, len);
    else if (len > 0) /* response may be NULL when len is 0 */
      shmrpc__copy_small(response, answer->response_inline, len);
  }
  /* A new server of the name may reuse a dead one's memory (a Windows
   * section lives while clients map it) and zero it, generation first
   * (os.h): what we read is the dead server's whole answer only if the
   * generation still stands. */
  shmrpc__fence_acquire();
  if (SHMRPC__UNLIKELY(
          shmrpc__load64(&shmrpc__area_header(conn->server)->generation) !=
          conn->generation)) {
    if (response_len != NULL)
      *response_len = 0;
    return server_replaced(conn);
  }
  return rc;
}

int shmrpc__conn_take_answer(shmrpc_client *client, shmrpc__conn *conn,
                             uint32_t index, void *response,
                             size_t response_cap, size_t *response_len) {
  return take_answer(client, conn, index, response, response_cap, response_len);
}

SHMRPC__COLD int shmrpc__conn_abandon(shmrpc__conn *conn, uint32_t index,
                                      uint32_t seq) {
  if (shmrpc__lane_withdraw(&conn->lane[index], seq))
    return 0;
  return shmrpc__conn_answered(conn, index, seq);
}

/* Rings the doorbell if no worker would see the call without it: every
 * worker is asleep (none spins), or the server waits in an event loop.
 * Returns the wait flags for the answer. A ring that wakes a sleeping
 * worker marks the lane YIELDED first (the caller yields next, see
 * shmrpc__conn_yield): the worker may run on our CPU at once, even before
 * the system call returns. */
SHMRPC__HOT static int ring(shmrpc__conn *conn, volatile uint32_t *mark) {
  uint32_t sleepers =
      shmrpc__load32_sc(&shmrpc__area_doorbell(conn->server)->request_sleepers);
  int flags = 0;
  if (SHMRPC__UNLIKELY(sleepers & SHMRPC__SLEEPERS_FD))
    shmrpc__os_waitable_wake(conn->service, UINT32_MAX, 0);
  if ((sleepers & SHMRPC__SLEEPERS_SPINNING) == 0 &&
      (sleepers & SHMRPC__SLEEPERS_ASLEEP) != 0) {
    shmrpc__store32_sc(mark, SHMRPC__SLEEPER_YIELDED);
    shmrpc__os_event_set(conn->service, SHMRPC__EVENT_REQUEST);
    /* A server asleep takes a kernel wake-up (tens of microseconds) to
     * answer: then spinning for the answer only burns the CPU it needs. */
    flags = SHMRPC__WAIT_NO_SPIN;
  }
  return flags;
}

/* shmrpc__conn_post, inline for the blocking call. */
SHMRPC__HOT static inline uint32_t
post(shmrpc__conn *conn, uint32_t index, uint32_t method, const void *request,
     size_t request_len, const shmrpc__deadline *deadline, int *wait_flags) {
  uint64_t copy_start = 0;
  uint32_t seq;
  /* A large request: the server copies it before it can answer, and the
   * wait for the answer spins that much longer (core.h, Pacing); our copy
   * of it gives the pace. */
  if (SHMRPC__UNLIKELY(request_len >= SHMRPC__PACE_MIN))
    copy_start = shmrpc__os_now_ns();
  seq = shmrpc__lane_post(&conn->lane[index], method, request, request_len,
                          deadline);
  if (SHMRPC__UNLIKELY(copy_start != 0))
    shmrpc__spin_learn(&conn->spin[index], request_len,
                       shmrpc__os_now_ns() - copy_start);
  shmrpc__spin_expect(&conn->spin[index], request_len);
  if (SHMRPC__UNLIKELY(seq == 0))
    return 0; /* see shmrpc__conn_post_failed */
  *wait_flags = ring(conn, &conn->lane[index].request->response_sleepers);
  return seq;
}

/* A caller whose rings come closer together than this does not yield: its
 * server sleeps between calls that are not cold (a bridge's, each waiting
 * ~200 us for the network). Measured on a 2-CPU VM, yielding there made
 * the bridge's 8-byte call 17 us slower (most likely the scheduler counting
 * the yield against the caller when its answer wakes it soon after), while
 * cold calls after 100 ms gaps went from 1.25x to 1.11x the futex
 * ping-pong (README, Performance). */
#define SHMRPC__YIELD_GAP_NS 1000000u

SHMRPC__HOT uint64_t shmrpc__conn_yield(shmrpc__conn *conn, uint32_t index) {
  volatile uint32_t *mark = &conn->lane[index].request->response_sleepers;
  shmrpc__spin *spin = &conn->spin[index];
  uint64_t now = shmrpc__os_now_ns(), last = spin->rang_ns;
  spin->rang_ns = now;
  if (last == 0 || now - last >= SHMRPC__YIELD_GAP_NS)
    shmrpc__os_yield();
  if (shmrpc__load32(mark) == SHMRPC__SLEEPER_YIELDED)
    (void)shmrpc__cas32(mark, SHMRPC__SLEEPER_YIELDED, 0u);
  return now;
}

uint32_t shmrpc__conn_post(shmrpc__conn *conn, uint32_t index, uint32_t method,
                           const void *request, size_t request_len,
                           const shmrpc__deadline *deadline, int *wait_flags) {
  return post(conn, index, method, request, request_len, deadline, wait_flags);
}

SHMRPC__HOT int shmrpc__conn_wait_answer(shmrpc__conn *conn, uint32_t index,
                                         uint32_t seq, int wait_flags,
                                         shmrpc__deadline *deadline) {
  shmrpc__lane *lane = &conn->lane[index];
  shmrpc__sleep how;
  call_wait wait;
  wait.conn = conn;
  wait.lane = lane;
  wait.seq = seq;
  how.event = SHMRPC__EVENT_RESPONSE(index);
  how.sleepers = &lane->request->response_sleepers;
  how.mark = SHMRPC__SLEEPER_EVENT;
  how.crowd = &shmrpc__area_crowd(conn->calls)->waiting;
  return shmrpc__wait(conn->service, &how, answer_ready, wait_health, &wait,
                      &conn->spin[index], wait_flags, deadline,
                      SHMRPC__SLICE_MS);
}

/* The blocking call: what shmrpc_call_start, shmrpc_pending_wait and
 * shmrpc_pending_finish do together, on the stack and with a lane wait
 * that sleeps. */
SHMRPC__HOT int shmrpc_call(shmrpc_client *client, uint32_t method,
                            const void *request, size_t request_len,
                            void *response, size_t response_cap,
                            size_t *response_len, int32_t timeout_ms) {
  thread_state *me = &this_thread;
  shmrpc__deadline deadline;
  shmrpc__conn *conn;
  uint32_t index, seq;
  int rc, wait_flags = 0;

  if (SHMRPC__UNLIKELY(client == NULL || (request == NULL && request_len > 0) ||
                       (response == NULL && response_cap > 0) ||
                       timeout_ms < SHMRPC_INFINITE))
    return SHMRPC_EINVAL;
  if (response_len != NULL)
    *response_len = 0;
  me->code = 0;
  /* An error without a detail of its own must not show an older one's. */
  shmrpc__error_clear();
  deadline = shmrpc__deadline_in(timeout_ms);
  if (SHMRPC__UNLIKELY(enter(client) != 0))
    return SHMRPC_EINVAL;

  conn = __atomic_load_n(&client->conn, __ATOMIC_ACQUIRE);
  if (SHMRPC__UNLIKELY(conn == NULL || conn->dead ||
                       shmrpc__os_service_forked(conn->service))) {
    rc = reconnect(client, &deadline, &conn);
    if (rc != 0)
      goto out;
  }
  if (SHMRPC__UNLIKELY(request_len > conn->capacity)) {
    rc = SHMRPC_ETOOBIG;
    goto out;
  }

  shmrpc__conn_prefetch(conn, me->last_lane);
  /* One try first: uncontended, that is one atomic operation on the lane's
   * lock, with no clock read. */
  rc = shmrpc__os_lane_try(conn->service, me->last_lane, &index);
  if (SHMRPC__UNLIKELY(rc != 0)) {
    rc = take_lane_slow(conn, rc, &deadline, &index);
    if (rc < 0)
      goto out;
    if (rc == SHMRPC__ABANDONED)
      shmrpc__conn_report_recovery(conn);
  }
  me->last_lane = index;
  SHMRPC__FAULT("client_locked");

  rc = shmrpc__conn_check(conn);
  if (SHMRPC__UNLIKELY(rc != 0))
    goto release;
  if (SHMRPC__UNLIKELY(!shmrpc__lane_idle(&conn->lane[index]))) {
    rc = shmrpc__conn_prepare_wait(conn, index, &deadline);
    if (rc != 0)
      goto release;
  }

  seq = post(conn, index, method, request, request_len, &deadline,
             &wait_flags);
  if (SHMRPC__UNLIKELY(seq == 0)) {
    rc = shmrpc__conn_post_failed(conn);
    goto release;
  }
  /* We woke a sleeping server. Sleeping now would leave it the CPU too,
   * but then its answer must wake us: two kernel wake-ups per cold call
   * instead of one (README, Performance). The deadline counts the yield
   * (the server may run its handler meanwhile), from the clock read the
   * yield made anyway. */
  if (wait_flags & SHMRPC__WAIT_NO_SPIN)
    shmrpc__deadline_arm(&deadline, shmrpc__conn_yield(conn, index));
  SHMRPC__FAULT("client_posted");

  /* SHMRPC_NOWAIT waits for the answer of a call it could send as long as
   * the server lives: it never waited for anything before. */
  if (SHMRPC__UNLIKELY(timeout_ms == 0))
    deadline = shmrpc__deadline_in(SHMRPC_INFINITE);
  rc = shmrpc__conn_wait_answer(conn, index, seq, wait_flags, &deadline);
  if (SHMRPC__UNLIKELY(rc < 0)) {
    int why = rc;
    if (!shmrpc__conn_abandon(conn, index, seq))
      goto release;
    /* Answered as we gave up: the answer, unless it is the server's
     * "withdrawn" (it saw our withdrawal after it took the call). */
    rc = take_answer(client, conn, index, response, response_cap, response_len);
    if (rc == SHMRPC_ECANCELED)
      rc = why;
    goto release;
  }
  SHMRPC__FAULT("client_answered");

  rc = take_answer(client, conn, index, response, response_cap, response_len);

release:
  shmrpc__os_lane_release(conn->service, index);
out:
  if (SHMRPC__UNLIKELY(rc == SHMRPC_ETIMEDOUT) && conn != NULL)
    shmrpc__conn_report_timeout(conn);
  leave(client);
  return rc;
}
