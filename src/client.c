/* The client: opens a service and makes blocking calls through its slot. */
#include <stdlib.h>
#include <string.h>

#include "core.h"

/* take_answer's code for an answer that says SHMRPC_ESERVERDIED: a far
 * server died, not ours, so the handle stays connected. */
#define SHMRPC__FORWARDED_DIED (-1000)

struct shmrpc_client {
  /* What a call uses first, so that it fits one or two cache lines. */
  shmrpc__control *control;     /* start of the area; NULL disconnected */
  shmrpc__os_service *service;  /* NULL while disconnected */
  unsigned char *request_area;  /* in shared memory */
  unsigned char *response_area; /* in shared memory: untrusted */
  uint32_t capacity;            /* validated when connecting */
  uint32_t waiting_seq;         /* the call being waited for */
  uint64_t generation;          /* of the server connected to */
  shmrpc__spin spin;            /* adaptive spin while waiting */
  int32_t app_code;             /* of the last call; 0 unless SHMRPC_EAPP */
  int global_namespace;
  char name[SHMRPC_NAME_MAX + 1];
  char app_message[SHMRPC_MESSAGE_MAX + 1]; /* valid while app_code != 0 */
};

void shmrpc_client_options_init(shmrpc_client_options *options) {
  if (options == NULL)
    return;
  memset(options, 0, sizeof(*options));
  options->spin_us = -1;
}

static void disconnect(shmrpc_client *client) {
  shmrpc__os_service_close(client->service);
  client->service = NULL;
  client->control = NULL;
  client->capacity = 0;
}

/* Validates a freshly mapped area. Returns 0, SHMRPC_ENOSERVER when the
 * server is still starting or already stopping (worth retrying), or
 * SHMRPC_EPROTO when it is not a compatible service. */
static int check_area(shmrpc_client *client, void *area, size_t area_size) {
  shmrpc__header *header = area;
  uint32_t magic, version, capacity, state;

  if (area_size < sizeof(shmrpc__control))
    return SHMRPC_ENOSERVER;
  magic = shmrpc__load32(&header->magic);
  if (magic == 0)
    return SHMRPC_ENOSERVER;
  version = shmrpc__load32_relaxed(&header->version);
  capacity = shmrpc__load32_relaxed(&header->capacity);
  if (magic != SHMRPC__MAGIC || version != SHMRPC__PROTOCOL_VERSION ||
      capacity == 0 || capacity > SHMRPC_MAX_CAPACITY ||
      shmrpc__area_size(capacity) > area_size)
    return SHMRPC_EPROTO;
  state = shmrpc__load32_relaxed(&header->server_state);
  if (state != SHMRPC__SERVER_RUNNING)
    return SHMRPC_ENOSERVER;
  client->generation = shmrpc__load64(&header->generation);
  client->capacity = capacity;
  client->control = area;
  client->request_area = shmrpc__request_area(area);
  client->response_area = shmrpc__response_area(area, capacity);
  return 0;
}

/* Connects, polling for the server until the deadline. */
static int connect_service(shmrpc_client *client,
                           shmrpc__deadline *deadline) {
  int32_t pause_ms = 1;
  for (;;) {
    void *area = NULL;
    size_t area_size = 0;
    int rc = shmrpc__os_service_open(client->name, client->global_namespace,
                                     &client->service, &area, &area_size);
    if (rc == 0) {
      rc = check_area(client, area, area_size);
      if (rc == 0)
        return 0;
      disconnect(client);
    }
    if (rc != SHMRPC_ENOSERVER)
      return rc;
    /* No notification exists for a name appearing: poll, backing off. */
    pause_ms = shmrpc__deadline_slice(deadline, pause_ms);
    if (pause_ms == 0)
      return SHMRPC_ENOSERVER;
    shmrpc__os_sleep_ms(pause_ms);
    pause_ms = pause_ms < 16 ? pause_ms * 2 : 20;
  }
}

int shmrpc_client_open(shmrpc_client **out, const char *name,
                       const shmrpc_client_options *options,
                       int32_t timeout_ms) {
  shmrpc_client *client;
  shmrpc__deadline deadline;
  int rc;

  if (out == NULL)
    return SHMRPC_EINVAL;
  *out = NULL;
  if (shmrpc_name_check(name) != 0 || timeout_ms < SHMRPC_INFINITE ||
      (options != NULL && options->spin_us < -1))
    return SHMRPC_EINVAL;
  client = calloc(1, sizeof(*client));
  if (client == NULL)
    return SHMRPC_ENOMEM;
  strcpy(client->name, name); /* length checked by shmrpc_name_check */
  client->global_namespace = options != NULL && options->global_namespace;
  shmrpc__spin_init(&client->spin, options != NULL ? options->spin_us : -1);

  deadline = shmrpc__deadline_in(timeout_ms);
  rc = connect_service(client, &deadline);
  if (rc != 0) {
    free(client);
    return rc;
  }
  *out = client;
  return 0;
}

void shmrpc_client_close(shmrpc_client *client) {
  if (client == NULL)
    return;
  disconnect(client);
  free(client);
}

size_t shmrpc_client_capacity(const shmrpc_client *client) {
  return client == NULL ? 0 : client->capacity;
}

int32_t shmrpc_client_app_error(const shmrpc_client *client,
                                const char **message) {
  int32_t code = client == NULL ? 0 : client->app_code;
  if (message != NULL)
    *message = code != 0 ? client->app_message : "";
  return code;
}

/* Is the server still there? Cheap checks first; the kernel has the last
 * word. Returns 0, SHMRPC_ESHUTDOWN or SHMRPC_ESERVERDIED. */
static int server_health(void *ctx) {
  shmrpc_client *client = ctx;
  shmrpc__header *header = &client->control->header;
  /* A new server can take over a dead one's mapping while this client still
   * has it mapped (Windows keeps a named mapping while any handle is open):
   * a changed generation means ours died. */
  if (shmrpc__load64(&header->generation) != client->generation)
    return SHMRPC_ESERVERDIED;
  if (shmrpc__load32(&header->server_state) == SHMRPC__SERVER_STOPPING)
    return SHMRPC_ESHUTDOWN;
  if (!shmrpc__os_server_alive(client->service)) {
    /* Tell callers queued behind us, so they need not find out slowly. */
    shmrpc__store32(&header->server_dead, 1);
    return SHMRPC_ESERVERDIED;
  }
  return 0;
}

/* The server has answered every call it took. */
SHMRPC__HOT static int slot_not_busy(void *ctx) {
  shmrpc_client *client = ctx;
  shmrpc__server_line *line = &client->control->server;
  return shmrpc__load32_sc(&line->response_seq) ==
                 shmrpc__load32(&line->taken_seq)
             ? 1
             : 0;
}

/* The answer is there once the server's line carries our sequence number:
 * one cache line to poll, written by the server alone. */
SHMRPC__HOT static int answer_ready(void *ctx) {
  shmrpc_client *client = ctx;
  return shmrpc__load32_sc(&client->control->server.response_seq) ==
                 client->waiting_seq
             ? 1
             : 0;
}

/* Withdraws posted call `seq`: FREE first, then a look at taken_seq (the
 * server does the mirror image; see layout.h). Returns 1 if withdrawn, 0 if
 * the server has taken it. */
static int withdraw(shmrpc_client *client, uint32_t seq) {
  shmrpc__control *control = client->control;
  shmrpc__store32_sc(&control->client.slot_state, SHMRPC__SLOT_FREE);
  return shmrpc__load32_sc(&control->server.taken_seq) != seq;
}

/* Takes the slot mutex after a first try (whose result is `rc`) found it
 * held or abandoned: waits in slices, so that a dead or stopping server ends
 * the wait early. Repairs nothing yet: that is prepare_slot's job. */
SHMRPC__COLD static int lock_slot_slow(shmrpc_client *client, int rc,
                                       shmrpc__deadline *deadline) {
  int32_t slice = SHMRPC_NOWAIT;
  int waited;
  for (waited = 0;; waited = 1) {
    if (rc == SHMRPC__ABANDONED) {
      shmrpc__add64(&client->control->stats.recoveries, 1);
      return 0;
    }
    if (rc != SHMRPC_ETIMEDOUT)
      return rc;
    if (waited) {
      rc = server_health(client);
      if (rc != 0)
        return rc;
      if (slice == 0 || shmrpc__deadline_expired(deadline))
        return SHMRPC_ETIMEDOUT;
    }
    slice = shmrpc__deadline_slice(deadline, SHMRPC__SLICE_MS);
    rc = shmrpc__os_slot_lock(client->service, slice);
  }
}

/* The header says the server changed, died or is stopping, or someone
 * wrote into it: server_health decides. */
SHMRPC__COLD static int recheck_server(shmrpc_client *client) {
  int rc = server_health(client);
  if (rc == 0) /* a false hint (the server lives): clear it */
    shmrpc__store32(&client->control->header.server_dead, 0);
  return rc;
}

/* The slot as a finished call leaves it: nothing posted, or the last call
 * posted, taken and answered. Anything else needs prepare_slot. */
SHMRPC__HOT static int slot_idle(shmrpc__control *control) {
  uint32_t state = shmrpc__load32_sc(&control->client.slot_state);
  uint32_t posted = shmrpc__load32(&control->client.call_seq);
  uint32_t taken = shmrpc__load32_sc(&control->server.taken_seq);
  if (state != SHMRPC__SLOT_FREE &&
      (state != SHMRPC__SLOT_POSTED || posted != taken))
    return 0;
  return shmrpc__load32_sc(&control->server.response_seq) == taken;
}

/*
 * With the mutex held, makes the slot ours to post into. What a previous
 * holder left tells what happened to it: a posted call the server never took
 * means it died right after posting (withdraw it); a call taken but not
 * answered means it timed out or died while the server works (wait for
 * that answer, which nobody will read). Anything else is idle.
 */
SHMRPC__COLD static int prepare_slot(shmrpc_client *client,
                                     shmrpc__deadline *deadline) {
  shmrpc__control *control = client->control;
  for (;;) {
    uint32_t state, posted, taken;
    int rc;
    if (slot_idle(control))
      return 0;
    state = shmrpc__load32_sc(&control->client.slot_state);
    posted = shmrpc__load32(&control->client.call_seq);
    taken = shmrpc__load32_sc(&control->server.taken_seq);
    if (state == SHMRPC__SLOT_POSTED && posted != taken) {
      (void)withdraw(client, posted);
      continue;
    }
    if (state != SHMRPC__SLOT_POSTED && state != SHMRPC__SLOT_FREE) {
      shmrpc__store32_sc(&control->client.slot_state, SHMRPC__SLOT_FREE);
      continue; /* corrupted */
    }
    /* Busy: the server still works on an earlier call. */
    rc = shmrpc__wait(client->service, SHMRPC__EVENT_RESPONSE,
                      &control->server.response_sleepers, slot_not_busy,
                      server_health, client, &client->spin, 0, deadline,
                      SHMRPC__SLICE_MS);
    if (rc < 0)
      return rc;
  }
}

/* Any answer but a success that fits the caller's buffer. status and len
 * were read once by take_answer; they are validated here. */
SHMRPC__COLD static int take_other_answer(shmrpc_client *client, int32_t status,
                                          uint32_t len, size_t *response_len) {
  shmrpc__control *control = client->control;
  switch (status) {
  case 0:
    if (len > client->capacity)
      return SHMRPC_EPROTO;
    if (response_len != NULL)
      *response_len = len;
    return SHMRPC_ETOOBIG; /* the caller's buffer is too small */
  case SHMRPC_EAPP: {
    uint32_t message_len =
        shmrpc__load32_relaxed(&control->server.message_len);
    int32_t code = (int32_t)shmrpc__load32_relaxed(
        (volatile uint32_t *)&control->server.app_code);
    if (message_len > SHMRPC_MESSAGE_MAX)
      message_len = SHMRPC_MESSAGE_MAX;
    memcpy(client->app_message, control->message, message_len);
    client->app_message[message_len] = '\0';
    client->app_code = code > 0 ? code : 1;
    return SHMRPC_EAPP;
  }
  case SHMRPC_ENOMETHOD:
  case SHMRPC_ETOOBIG:
  case SHMRPC_ESHUTDOWN:
  case SHMRPC_ETIMEDOUT:
  case SHMRPC_ENOSERVER:
    return status;
  case SHMRPC_ESERVERDIED:
    /* Forwarded from a far side by a bridge: this server lives. */
    return SHMRPC__FORWARDED_DIED;
  default:
    return SHMRPC_EPROTO;
  }
}

/* Copies the answer of the call out of the slot. */
SHMRPC__HOT static int take_answer(shmrpc_client *client, void *response,
                                   size_t response_cap, size_t *response_len) {
  shmrpc__control *control = client->control;
  int32_t status = (int32_t)shmrpc__load32_relaxed(
      (volatile uint32_t *)&control->server.status);
  uint32_t len = shmrpc__load32_relaxed(&control->server.response_len);

  if (SHMRPC__UNLIKELY(status != 0 || len > client->capacity ||
                       len > response_cap))
    return take_other_answer(client, status, len, response_len);
  if (response_len != NULL)
    *response_len = len;
  if (len > SHMRPC__INLINE_MAX)
    memcpy(response, client->response_area, len);
  else if (len > 0) /* response may be NULL when len is 0 */
    memcpy(response, control->server.response_inline, len);
  return 0;
}

/* Ends a call that was posted but not answered in time: withdraw it if the
 * server has not taken it; else leave it taken for the next caller to wait
 * out. Returns 1 if the answer arrived after all. */
SHMRPC__COLD static int abandon_call(shmrpc_client *client) {
  if (withdraw(client, client->waiting_seq))
    return 0;
  return answer_ready(client);
}

SHMRPC__HOT int shmrpc_call(shmrpc_client *client, uint32_t method,
                            const void *request, size_t request_len,
                            void *response, size_t response_cap,
                            size_t *response_len, int32_t timeout_ms) {
  shmrpc__deadline deadline;
  shmrpc__control *control;
  uint32_t seq;
  int rc, wait_flags;

  if (SHMRPC__UNLIKELY(client == NULL || (request == NULL && request_len > 0) ||
                       (response == NULL && response_cap > 0) ||
                       timeout_ms < SHMRPC_INFINITE))
    return SHMRPC_EINVAL;
  client->app_code = 0;
  if (response_len != NULL)
    *response_len = 0;
  deadline = shmrpc__deadline_in(timeout_ms);

  if (SHMRPC__UNLIKELY(client->service == NULL)) {
    rc = connect_service(client, &deadline);
    if (rc != 0)
      return rc;
  }
  if (SHMRPC__UNLIKELY(request_len > client->capacity))
    return SHMRPC_ETOOBIG;
  control = client->control;

  /* One try first: uncontended, that is one atomic operation, with no
   * clock read. */
  rc = shmrpc__os_slot_lock(client->service, SHMRPC_NOWAIT);
  if (SHMRPC__UNLIKELY(rc != 0)) {
    rc = lock_slot_slow(client, rc, &deadline);
    if (rc != 0)
      goto fail_unlocked;
  }
  SHMRPC__FAULT("client_locked");

  if (SHMRPC__UNLIKELY(shmrpc__load64(&control->header.generation) !=
                           client->generation ||
                       shmrpc__load32(&control->header.server_dead) != 0 ||
                       shmrpc__load32(&control->header.server_state) !=
                           SHMRPC__SERVER_RUNNING)) {
    rc = recheck_server(client);
    if (rc != 0)
      goto fail_locked;
  }
  if (SHMRPC__UNLIKELY(!slot_idle(control))) {
    rc = prepare_slot(client, &deadline);
    if (rc != 0)
      goto fail_locked;
  }

  /* The slot is idle and ours: write the request, then post it. The new
   * sequence number publishes it (the state may still say POSTED from the
   * last call); POSTED follows for a slot that was withdrawn. */
  seq = shmrpc__load32_relaxed(&control->client.call_seq) + 1u;
  if (request_len > SHMRPC__INLINE_MAX)
    memcpy(client->request_area, request, request_len);
  else if (request_len > 0) /* request may be NULL when request_len is 0 */
    memcpy(control->client.request_inline, request, request_len);
  shmrpc__store32_relaxed(&control->client.method, method);
  shmrpc__store32_relaxed(&control->client.request_len, (uint32_t)request_len);
  /* The deadline travels with the call; reading the clock for it would
   * cost the hot path, so an unarmed one goes as the timeout alone. */
  shmrpc__store32_relaxed((volatile uint32_t *)&control->client.timeout_ms,
                          (uint32_t)timeout_ms);
  shmrpc__store64(&control->client.deadline_ns,
                  deadline.armed && timeout_ms >= 0 ? deadline.end_ns : 0u);
  client->waiting_seq = seq;
  shmrpc__store32_sc(&control->client.call_seq, seq);
  if (shmrpc__load32_relaxed(&control->client.slot_state) !=
      SHMRPC__SLOT_POSTED)
    shmrpc__store32_sc(&control->client.slot_state, SHMRPC__SLOT_POSTED);
  /* A server asleep takes a kernel wake-up (tens of microseconds) to
   * answer: then spinning for the answer only burns the CPU it needs. */
  wait_flags = 0;
  if (shmrpc__load32_sc(&control->client.request_sleepers) != 0) {
    shmrpc__store32_relaxed(&control->client.request_sleepers, 0u);
    shmrpc__os_event_set(client->service, SHMRPC__EVENT_REQUEST);
    wait_flags = SHMRPC__WAIT_NO_SPIN;
  }
  SHMRPC__FAULT("client_posted");

  rc = shmrpc__wait(client->service, SHMRPC__EVENT_RESPONSE,
                    &control->server.response_sleepers, answer_ready,
                    server_health, client, &client->spin, wait_flags,
                    &deadline, SHMRPC__SLICE_MS);
  if (SHMRPC__UNLIKELY(rc < 0) && !abandon_call(client))
    goto fail_locked;
  SHMRPC__FAULT("client_answered");

  rc = take_answer(client, response, response_cap, response_len);
  shmrpc__os_slot_unlock(client->service); /* answered: the slot is idle */
  if (SHMRPC__UNLIKELY(rc == SHMRPC_ESHUTDOWN))
    disconnect(client);
  if (SHMRPC__UNLIKELY(rc == SHMRPC__FORWARDED_DIED))
    rc = SHMRPC_ESERVERDIED;
  return rc;

fail_locked:
  shmrpc__os_slot_unlock(client->service);
fail_unlocked:
  if (rc == SHMRPC_ETIMEDOUT)
    shmrpc__add64(&control->stats.timeouts, 1);
  /* Report a dead or stopped server once; the next call reconnects. */
  if (rc == SHMRPC_ESERVERDIED || rc == SHMRPC_ESHUTDOWN)
    disconnect(client);
  return rc;
}
