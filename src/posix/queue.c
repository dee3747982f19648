/*
 * The queue of callers waiting for a lane (POSIX backend), in the calls
 * object: a ticket counter (tail), the first ticket whose turn it is
 * (head), and a ring of per-ticket states a waiter sleeps on.
 *
 * A caller that finds a free lane and nobody queued takes it. Otherwise it
 * draws a ticket and waits for its turn: first come, first served, across
 * processes and threads. A caller releasing a lane wakes the waiter whose
 * turn it is, which takes the lane and passes the turn on. A releaser that
 * calls again at once finds the queue non-empty and queues behind, so a busy
 * caller cannot keep a lane to itself.
 *
 * Nothing here can wedge the lanes. The queue is only an order; a waiter
 * whose turn does not come while a lane sits free for two slices (the
 * waiter ahead died, or left no trace of its timeout, or a writer scribbled
 * the counters) takes a lane anyway and moves the head past itself. A
 * waiter whose turn it is and who finds every lane held asks the kernel
 * whether their owners live, and takes over the lane of one that is gone.
 */
#include <linux/futex.h>
#include <string.h>

#include "posix.h"

static posix_ring_slot *slot_of(shmrpc__os_service *service, uint32_t ticket) {
  return &service->calls_prefix->ring[ticket % POSIX_RING];
}

uint32_t shmrpc__os_queue_length(shmrpc__os_service *service) {
  posix_calls_prefix *queue = service->calls_prefix;
  uint32_t waiting;
  if (queue == NULL)
    return 0;
  waiting = shmrpc__load32(&queue->tail) - shmrpc__load32(&queue->head);
  return waiting > POSIX_TOKENS ? 0 : waiting; /* garbage shows as none */
}

/* Tries every lane, starting at hint. */
static int take_any(shmrpc__os_service *service, uint32_t hint,
                    int prove_dead, uint32_t *lane) {
  uint32_t i;
  for (i = 0; i < service->lanes; i++) {
    uint32_t candidate = (hint + i) % service->lanes;
    int rc = posix_lane_take(service, candidate, prove_dead);
    if (rc != POSIX_LANE_BUSY) {
      *lane = candidate;
      return rc;
    }
  }
  return POSIX_LANE_BUSY;
}

static int any_lane_free(const shmrpc__os_service *service) {
  uint32_t i;
  for (i = 0; i < service->lanes; i++)
    if (posix_lane_free(service, i))
      return 1;
  return 0;
}

SHMRPC__HOT int shmrpc__os_lane_try(shmrpc__os_service *service, uint32_t hint,
                                    uint32_t *lane) {
  posix_calls_prefix *queue = service->calls_prefix;
  uint32_t start = hint < service->lanes ? hint : 0;
  int rc;
  /* The lane's line (its lock, and the event its answer may come by) and
   * the request event, which the call rings if the server sleeps: after an
   * idle spell each is a miss, and they load side by side. */
  SHMRPC__PREFETCH(&queue->lane[start]);
  SHMRPC__PREFETCH(&queue->doorbell);
  /* Callers are queued: do not overtake them. */
  if (SHMRPC__UNLIKELY(shmrpc__load32(&queue->tail) !=
                       shmrpc__load32(&queue->head)))
    return SHMRPC_EAGAIN;
  /* The usual case: our last lane is free. */
  rc = posix_lane_take(service, start, 0);
  if (SHMRPC__UNLIKELY(rc == POSIX_LANE_BUSY)) {
    rc = take_any(service, start + 1, 0, lane);
    return rc == POSIX_LANE_BUSY ? SHMRPC_EAGAIN : rc;
  }
  *lane = start;
  return rc;
}

/* Moves the head past `ticket` (never backwards) and past tickets whose
 * waiters left, then wakes the new head if a lane is free for it. */
static void advance_head(shmrpc__os_service *service, uint32_t ticket) {
  posix_calls_prefix *queue = service->calls_prefix;
  uint32_t next = ticket + 1u;
  for (;;) {
    uint32_t head = shmrpc__load32_sc(&queue->head);
    if ((int32_t)(head - next) >= 0)
      break;
    if (shmrpc__cas32(&queue->head, head, next))
      break;
  }
  for (;;) {
    uint32_t head = shmrpc__load32_sc(&queue->head);
    posix_ring_slot *slot = slot_of(service, head);
    if (head == shmrpc__load32_sc(&queue->tail) ||
        shmrpc__load32(&slot->ticket) != head ||
        shmrpc__load32_sc(&slot->state) != POSIX_WAITER_LEFT ||
        !shmrpc__cas32(&queue->head, head, head + 1u))
      break;
  }
  if (any_lane_free(service))
    posix_queue_wake_head(service);
}

SHMRPC__HOT void posix_queue_wake_head(shmrpc__os_service *service) {
  posix_calls_prefix *queue = service->calls_prefix;
  uint32_t head = shmrpc__load32_sc(&queue->head);
  posix_ring_slot *slot;
  if (head == shmrpc__load32_sc(&queue->tail))
    return; /* nobody waits: the common case, no system call */
  slot = slot_of(service, head);
  if (shmrpc__load32(&slot->ticket) != head)
    return;
  /* A waiter still awake will see the free lane itself. */
  if (shmrpc__cas32(&slot->state, POSIX_WAITER_SLEEPING, POSIX_WAITER_WOKEN))
    posix_futex(&slot->state, FUTEX_WAKE, 1, -1);
}

void shmrpc__os_queue_wake(shmrpc__os_service *service) {
  if (service->calls_prefix != NULL)
    posix_queue_wake_head(service);
}

static int my_turn(shmrpc__os_service *service,
                   const shmrpc__os_lane_waiter *waiter) {
  uint32_t head = shmrpc__load32_sc(&service->calls_prefix->head);
  return waiter->bypass || (int32_t)(head - waiter->ticket) >= 0;
}

/* Takes the caller's place in the queue, once. */
static posix_ring_slot *join(shmrpc__os_service *service,
                             shmrpc__os_lane_waiter *waiter) {
  posix_ring_slot *slot;
  if (!waiter->queued) {
    waiter->ticket = shmrpc__fetch_add32(&service->calls_prefix->tail, 1u);
    waiter->queued = 1;
    slot = slot_of(service, waiter->ticket);
    shmrpc__store32(&slot->ticket, waiter->ticket);
    shmrpc__store32_sc(&slot->state, POSIX_WAITER_AWAKE);
  }
  return slot_of(service, waiter->ticket);
}

/* The waiter got *lane: its place is done, the turn passes on. */
static int got(shmrpc__os_service *service, shmrpc__os_lane_waiter *waiter,
               int rc) {
  posix_ring_slot *slot = slot_of(service, waiter->ticket);
  if (shmrpc__load32(&slot->ticket) == waiter->ticket)
    shmrpc__store32_sc(&slot->state, POSIX_WAITER_DONE);
  waiter->queued = 0;
  advance_head(service, waiter->ticket);
  return rc;
}

/* A whole slice went by without a lane. Whose turn it is may hold every
 * lane, and the owners may be dead: ask the kernel. Not our turn, and a
 * lane free at the end of two slices in a row with the head unmoved: the
 * queue is stuck ahead of us; stop waiting for it. Returns what
 * take_any() did. */
static int slice_over(shmrpc__os_service *service,
                      shmrpc__os_lane_waiter *waiter, uint32_t hint,
                      uint32_t *lane) {
  if (my_turn(service, waiter)) {
    return take_any(service, hint, 1, lane);
  } else {
    uint32_t head = shmrpc__load32_sc(&service->calls_prefix->head);
    int lane_free = any_lane_free(service);
    if (lane_free && head == waiter->stuck_head && waiter->stuck_seen > 0) {
      waiter->bypass = 1;
    } else {
      waiter->stuck_head = head;
      waiter->stuck_seen = lane_free ? 1u : 0u;
    }
  }
  return POSIX_LANE_BUSY;
}

int shmrpc__os_lane_wait(shmrpc__os_service *service,
                         shmrpc__os_lane_waiter *waiter, int32_t slice_ms,
                         uint32_t *lane) {
  uint64_t end = shmrpc__os_now_ns() + (uint64_t)slice_ms * 1000000u;
  posix_ring_slot *slot = join(service, waiter);
  uint32_t hint = (uint32_t)(shmrpc__os_random64() % service->lanes);
  int rc;

  for (;;) {
    uint64_t now;
    if (my_turn(service, waiter)) {
      rc = take_any(service, hint, 0, lane);
      if (rc != POSIX_LANE_BUSY)
        return got(service, waiter, rc);
    }
    /* Asleep first, then the last look: a releaser frees a lane, then
     * looks for a sleeper, so one of the two sees the other. A slot that
     * is no longer ours (more waiters than slots, or a writer) is neither
     * marked nor slept on: its word would wake us at once, or another
     * waiter would lose its mark. Then we look every millisecond. */
    int mine = shmrpc__load32(&slot->ticket) == waiter->ticket;
    if (mine)
      shmrpc__store32_sc(&slot->state, POSIX_WAITER_SLEEPING);
    if (my_turn(service, waiter) && any_lane_free(service)) {
      if (mine && shmrpc__load32(&slot->ticket) == waiter->ticket)
        shmrpc__store32_sc(&slot->state, POSIX_WAITER_AWAKE);
      continue;
    }
    now = shmrpc__os_now_ns();
    if (now >= end)
      break;
    if (mine) {
      posix_futex(&slot->state, FUTEX_WAIT, POSIX_WAITER_SLEEPING,
                  (int32_t)((end - now + 999999u) / 1000000u));
    } else {
      shmrpc__os_sleep_ms(1);
    }
    if (shmrpc__load32(&slot->ticket) == waiter->ticket)
      shmrpc__store32_sc(&slot->state, POSIX_WAITER_AWAKE);
  }
  if (shmrpc__load32(&slot->ticket) == waiter->ticket)
    shmrpc__store32_sc(&slot->state, POSIX_WAITER_AWAKE);
  rc = slice_over(service, waiter, hint, lane);
  if (rc != POSIX_LANE_BUSY)
    return got(service, waiter, rc);
  waiter->slice_end_ns = 0;
  return SHMRPC_ETIMEDOUT;
}

int shmrpc__os_lane_poll(shmrpc__os_service *service,
                         shmrpc__os_lane_waiter *waiter, int32_t slice_ms,
                         uint32_t *lane) {
  uint32_t hint = (uint32_t)(shmrpc__os_random64() % service->lanes);
  uint64_t now;
  int rc;
  /* Never asleep: a releaser need not wake us, we look again. */
  (void)join(service, waiter);
  if (my_turn(service, waiter)) {
    rc = take_any(service, hint, 0, lane);
    if (rc != POSIX_LANE_BUSY)
      return got(service, waiter, rc);
  }
  now = shmrpc__os_now_ns();
  if (waiter->slice_end_ns == 0) {
    waiter->slice_end_ns = now + (uint64_t)slice_ms * 1000000u;
  } else if (now >= waiter->slice_end_ns) {
    waiter->slice_end_ns = now + (uint64_t)slice_ms * 1000000u;
    rc = slice_over(service, waiter, hint, lane);
    if (rc != POSIX_LANE_BUSY)
      return got(service, waiter, rc);
  }
  return SHMRPC_EAGAIN;
}

void shmrpc__os_lane_wait_end(shmrpc__os_service *service,
                              shmrpc__os_lane_waiter *waiter) {
  posix_ring_slot *slot;
  if (!waiter->queued)
    return;
  waiter->queued = 0;
  slot = slot_of(service, waiter->ticket);
  if (shmrpc__load32(&slot->ticket) == waiter->ticket)
    shmrpc__store32_sc(&slot->state, POSIX_WAITER_LEFT);
  /* Leaving at our turn: pass it on; otherwise the head skips us when it
   * gets here (it reads LEFT after we wrote it, or we see it got here). */
  if ((int32_t)(shmrpc__load32_sc(&service->calls_prefix->head) -
                waiter->ticket) >= 0)
    advance_head(service, waiter->ticket);
}
