/*
 * Calls that do not block (shmrpc_call_start, shmrpc_pending_*), and the
 * handle's waitable for event loops (shmrpc_client_waitable,
 * shmrpc_client_arm).
 *
 * A call in flight is in one of four states:
 *
 *   QUEUED     no lane yet: it holds a place in the service's queue and a
 *              copy of its request;
 *   PREPARING  it holds a lane whose previous call the server still works
 *              on (that caller timed out or cancelled), and waits for it;
 *   POSTED     its request is in the lane, its answer awaited;
 *   OVER       answered (the answer waits in the lane, which the call holds
 *              until finish copies it out) or failed with a code.
 *
 * Every look at a call (poll, wait, arm, finish) moves it on as far as it
 * can go without blocking. A call belongs to the thread that started it:
 * each thread keeps a list of its calls, oldest first, so that arm finds
 * the calls to arm without a lock, and so that a lane is released by the
 * thread that took it (on Windows a lane's lock is a mutex, which only its
 * owning thread may release).
 *
 * Arming (shmrpc_client_arm) is what makes the waitable useful and the hot
 * path free: a call's lane says "wake me through my loop" only when its
 * caller is about to sleep in its event loop. A caller that polls or spins
 * leaves it unsaid, and the server then answers without a system call.
 */
#include <stdlib.h>
#include <string.h>

#include "client.h"

enum pending_state {
  PENDING_QUEUED,
  PENDING_PREPARING,
  PENDING_POSTED,
  PENDING_OVER
};

struct shmrpc_pending {
  shmrpc_client *client;  /* NULL once shmrpc_client_close detached it */
  shmrpc__conn *conn;     /* the connection it was started on */
  shmrpc_pending *prev;   /* the thread's calls */
  shmrpc_pending *next;
  const void *owner;      /* the owning thread's list, as its identity */
  uint32_t state;         /* enum pending_state */
  uint32_t method;
  uint32_t lane;          /* valid while holds_lane */
  uint32_t seq;           /* valid once posted */
  int holds_lane;
  int answered;           /* OVER with its answer in the lane */
  int rc;                 /* OVER without one: the call's result */
  int wait_flags;         /* how to wait for the answer (from the ring) */
  int gave_up;            /* why it gave up when an answer came anyway */
  uint32_t mark;          /* what arm stored in response_sleepers, or 0 */
  int watched;            /* the loop watches its lane for it */
  shmrpc__deadline deadline; /* armed at start unless infinite */
  uint64_t health_ns;     /* next look at the server's liveness */
  shmrpc__os_lane_waiter waiter; /* its place in the queue, while QUEUED */
  size_t request_len;
  const unsigned char *request; /* the copy below, until posted */
  size_t copy_cap;              /* bytes copy[] has room for */
  unsigned char copy[];
};

/* The calling thread's calls, oldest first. In the fast thread-local
 * block (core.h): every start links its call here. */
static SHMRPC__THREAD_LOCAL_FAST struct {
  shmrpc_pending *head;
  shmrpc_pending *tail;
} thread_calls;

/*
 * One freed call kept for the next start, for the whole process: after an
 * idle spell, malloc's cold code and bookkeeping cost a start about 4 us,
 * a tenth of a cold call (README, Performance). Whoever exchanges it out
 * owns it; a free puts it back only into an empty slot. Calls with a copy
 * larger than SPARE_MAX are not kept.
 */
#define SPARE_MAX 256u
/* Under AddressSanitizer every call is its own allocation, so that a use
 * after finish or cancel is still reported. */
#if defined(__SANITIZE_ADDRESS__)
#define SPARE_KEPT 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPARE_KEPT 0
#endif
#endif
#ifndef SPARE_KEPT
#define SPARE_KEPT 1
#endif
static void *volatile spare;

static shmrpc_pending *call_alloc(size_t copy_len) {
  shmrpc_pending *call = SPARE_KEPT ? shmrpc__xchg_ptr(&spare, NULL) : NULL;
  size_t cap = copy_len <= SPARE_MAX ? SPARE_MAX : copy_len;
  if (call != NULL && call->copy_cap >= copy_len) {
    cap = call->copy_cap;
    memset(call, 0, sizeof(*call));
    call->copy_cap = cap;
    return call;
  }
  free(call);
  call = calloc(1, sizeof(*call) + cap);
  if (call != NULL)
    call->copy_cap = cap;
  return call;
}

static void call_free(shmrpc_pending *call) {
  /* A handle used after its end is no longer this thread's (mine() fails)
   * until a start takes the struct again. */
  call->owner = NULL;
  if (!SPARE_KEPT || call->copy_cap > SPARE_MAX ||
      !shmrpc__cas_ptr(&spare, NULL, call))
    free(call);
}

static int mine(const shmrpc_pending *call) {
  return call != NULL && call->owner == (const void *)&thread_calls;
}

static void link_call(shmrpc_pending *call) {
  call->owner = &thread_calls;
  call->prev = thread_calls.tail;
  call->next = NULL;
  if (thread_calls.tail != NULL)
    thread_calls.tail->next = call;
  else
    thread_calls.head = call;
  thread_calls.tail = call;
}

static void unlink_call(shmrpc_pending *call) {
  if (call->prev != NULL)
    call->prev->next = call->next;
  else
    thread_calls.head = call->next;
  if (call->next != NULL)
    call->next->prev = call->prev;
  else
    thread_calls.tail = call->prev;
}

/* 1 if the call may touch its service: a fork child's copy of a call
 * belongs to the parent, whose mappings the child no longer has. */
static int reachable(const shmrpc_pending *call) {
  return call->client != NULL &&
         !shmrpc__os_service_forked(call->conn->service);
}

/* Gives back what the call holds in the service: its place in the queue,
 * or its lane (with the mark arm left in it, if the server has not taken
 * it away). */
static void let_go(shmrpc_pending *call) {
  if (!reachable(call))
    return;
  if (call->state == PENDING_QUEUED)
    shmrpc__os_lane_wait_end(call->conn->service, &call->waiter);
  if (call->holds_lane) {
    if (call->mark != 0)
      (void)shmrpc__cas32(
          &call->conn->lane[call->lane].request->response_sleepers,
          call->mark, 0u);
    if (call->watched)
      shmrpc__os_loop_unwatch(call->client->loop, call->conn->service,
                              call->lane);
    call->watched = 0;
    shmrpc__os_lane_release(call->conn->service, call->lane);
    call->holds_lane = 0;
  }
  call->mark = 0;
}

/* Ends the call with code rc, giving back what it holds. */
static void fail(shmrpc_pending *call, int rc) {
  let_go(call);
  call->state = PENDING_OVER;
  call->answered = 0;
  call->rc = rc;
  if (rc == SHMRPC_ETIMEDOUT && reachable(call))
    shmrpc__conn_report_timeout(call->conn);
}

/* The call's answer is in its lane: it is over (finish copies it out). */
static int answered(shmrpc_pending *call) {
  call->state = PENDING_OVER;
  call->answered = 1;
  return 1;
}

/* Posts the call on its held lane if the lane is ready for it. */
static void post(shmrpc_pending *call, const void *request) {
  shmrpc__conn *conn = call->conn;
  int rc = shmrpc__conn_check(conn);
  if (rc == 0)
    rc = shmrpc__conn_prepare(conn, call->lane);
  if (rc < 0) {
    fail(call, rc);
    return;
  }
  if (rc == 1) {
    call->state = PENDING_PREPARING; /* it has a copy: see start */
    return;
  }
  call->seq = shmrpc__conn_post(conn, call->lane, call->method, request,
                                call->request_len, &call->deadline,
                                &call->wait_flags);
  if (call->seq == 0) {
    fail(call, shmrpc__conn_post_failed(conn));
    return;
  }
  call->state = PENDING_POSTED;
  /* We woke a sleeping server, and the caller goes on with its own work:
   * give the server the CPU it may be queued on, or the call waits for that
   * work to end. Measured on a 2-CPU VM: a cold call waited for in poll()
   * took 95 us without this and 50 us with it, against 42 us for a blocking
   * one (which did not yield then). */
  if (call->wait_flags & SHMRPC__WAIT_NO_SPIN)
    (void)shmrpc__conn_yield(conn, call->lane);
}

static void got_lane(shmrpc_pending *call, uint32_t lane, int rc) {
  call->lane = lane;
  call->holds_lane = 1;
  if (rc == SHMRPC__ABANDONED)
    shmrpc__conn_report_recovery(call->conn);
  post(call, call->request);
}

/* Arms the call's deadline, and its first look at the server's health, at
 * `now` if they are not armed yet. */
static void arm_deadline(shmrpc_pending *call, uint64_t now) {
  shmrpc__deadline_arm(&call->deadline, now);
  if (call->health_ns == 0)
    call->health_ns = now + (uint64_t)SHMRPC__SLICE_MS * 1000000u;
}

/* Moves the call on without blocking; returns 1 once it is over. */
static int progress(shmrpc_pending *call) {
  shmrpc__conn *conn = call->conn;
  uint64_t now;
  int rc;

  if (call->state == PENDING_OVER)
    return 1;
  if (!reachable(call)) {
    call->holds_lane = 0; /* the parent's, not ours to release */
    call->state = PENDING_OVER;
    call->answered = 0;
    call->rc = shmrpc__error_detail(SHMRPC_ECANCELED,
                                    "the call belongs to the process that "
                                    "forked this one");
    return 1;
  }
  if (call->state == PENDING_QUEUED) {
    uint32_t lane;
    rc = shmrpc__os_lane_poll(conn->service, &call->waiter, SHMRPC__SLICE_MS,
                              &lane);
    if (rc >= 0) {
      got_lane(call, lane, rc);
    } else if (rc != SHMRPC_EAGAIN) {
      fail(call, rc);
      return 1;
    }
  } else if (call->state == PENDING_PREPARING) {
    post(call, call->request);
  }
  if (call->state == PENDING_OVER)
    return 1;
  if (call->state == PENDING_POSTED &&
      shmrpc__conn_answered(conn, call->lane, call->seq))
    return answered(call);

  /* Still in flight: its deadline, then its server. */
  now = shmrpc__os_now_ns();
  arm_deadline(call, now);
  if (call->deadline.timeout_ms >= 0 && now >= call->deadline.end_ns) {
    if (call->state == PENDING_POSTED &&
        shmrpc__conn_abandon(conn, call->lane, call->seq)) {
      call->gave_up = SHMRPC_ETIMEDOUT;
      return answered(call); /* after all */
    }
    fail(call, SHMRPC_ETIMEDOUT);
    return 1;
  }
  if (conn->suspect || conn->dead || now >= call->health_ns) {
    call->health_ns = now + (uint64_t)SHMRPC__SLICE_MS * 1000000u;
    rc = call->state == PENDING_POSTED
             ? shmrpc__conn_call_lost(conn, call->lane, call->seq)
             : 0;
    if (rc == 0)
      rc = shmrpc__conn_health(conn);
    if (rc == 0 && conn->suspect)
      shmrpc__store32(&conn->suspect, 0); /* a false alarm: the server lives */
    if (rc != 0) {
      if (call->state == PENDING_POSTED &&
          shmrpc__conn_answered(conn, call->lane, call->seq))
        return answered(call); /* its last answer */
      fail(call, rc);
      return 1;
    }
  }
  return 0;
}

/* 1 if the thread has a call on client queued for a lane: later calls
 * queue behind it. */
static int thread_queued(const shmrpc_client *client) {
  const shmrpc_pending *call;
  for (call = thread_calls.head; call != NULL; call = call->next)
    if (call->client == client && call->state == PENDING_QUEUED)
      return 1;
  return 0;
}

int shmrpc_call_start(shmrpc_client *client, uint32_t method,
                      const void *request, size_t request_len,
                      int32_t timeout_ms, shmrpc_pending **out) {
  shmrpc__deadline connect = shmrpc__deadline_in(SHMRPC_NOWAIT);
  shmrpc_pending *call;
  shmrpc__conn *conn;
  uint32_t lane = 0;
  int rc, copy;

  if (out != NULL)
    *out = NULL;
  if (client == NULL || out == NULL || (request == NULL && request_len > 0) ||
      timeout_ms < SHMRPC_INFINITE)
    return SHMRPC_EINVAL;
  shmrpc__error_clear();
  if (shmrpc__client_enter(client) != 0)
    return SHMRPC_EINVAL;
  rc = shmrpc__client_connect(client, &connect, &conn);
  if (rc == 0 && request_len > conn->capacity)
    rc = SHMRPC_ETOOBIG;
  if (rc != 0) {
    shmrpc__client_leave(client);
    return rc;
  }

  shmrpc__conn_prefetch(conn, shmrpc__client_lane_hint());
  /* A lane now if one is free and this thread has no call queued before
   * this one; else a place in the queue (never for SHMRPC_NOWAIT). */
  rc = thread_queued(client)
           ? SHMRPC_EAGAIN
           : shmrpc__os_lane_try(conn->service, shmrpc__client_lane_hint(),
                                 &lane);
  if (rc < 0 && (rc != SHMRPC_EAGAIN || timeout_ms == 0)) {
    shmrpc__client_leave(client);
    return rc;
  }
  /* The request is kept until posted: queued, or on a busy lane. */
  copy = rc < 0 || !shmrpc__lane_idle(&conn->lane[lane]);
  call = call_alloc(copy ? request_len : 0);
  if (call == NULL) {
    if (rc >= 0)
      shmrpc__os_lane_release(conn->service, lane);
    shmrpc__client_leave(client);
    return SHMRPC_ENOMEM;
  }
  call->client = client;
  call->conn = conn;
  call->method = method;
  call->request_len = request_len;
  call->request = copy ? call->copy : request;
  if (copy && request_len > 0)
    memcpy(call->copy, request, request_len);
  /* SHMRPC_NOWAIT waits for the answer of a call it could post as long as
   * the server lives. The deadline is armed below. */
  call->deadline = shmrpc__deadline_in(timeout_ms == 0 ? SHMRPC_INFINITE
                                                       : timeout_ms);
  link_call(call);
  if (rc >= 0) {
    got_lane(call, lane, rc);
    if (call->state == PENDING_PREPARING && !copy)
      /* Idle a moment ago, busy now: only a writer does that, or a new
       * server clearing the lanes (shmrpc__conn_post_failed tells). */
      fail(call, shmrpc__conn_post_failed(conn));
    if (!copy)
      call->request = NULL; /* the caller's buffer is not kept */
  } else {
    call->state = PENDING_QUEUED;
  }
  /* The deadline counts from now, read after the post: a cold clock read
   * (about 2 us after an idle spell) then comes after the server was rung,
   * and none at all if its answer came while we yielded to it. A call
   * posted at once tells the server its timeout alone, as a blocking call
   * does; progress() arms what is left unarmed here. */
  if (call->state != PENDING_POSTED ||
      !shmrpc__conn_answered(conn, call->lane, call->seq))
    arm_deadline(call, shmrpc__os_now_ns());
  *out = call;
  return 0;
}

int shmrpc_pending_poll(shmrpc_pending *call) {
  shmrpc_pending *earlier;
  if (!mine(call))
    return SHMRPC_EINVAL;
  /* Calls of this thread queued before this one take lanes first. */
  if (call->state == PENDING_QUEUED)
    for (earlier = thread_calls.head; earlier != call; earlier = earlier->next)
      if (earlier->client == call->client &&
          earlier->state == PENDING_QUEUED && !progress(earlier) &&
          earlier->state == PENDING_QUEUED)
        return 0;
  return progress(call);
}

/* The earlier of two armed deadlines. */
static shmrpc__deadline earlier_of(const shmrpc__deadline *a,
                                   const shmrpc__deadline *b) {
  if (a->timeout_ms < 0)
    return *b;
  if (b->timeout_ms < 0)
    return *a;
  return a->end_ns <= b->end_ns ? *a : *b;
}

int shmrpc_pending_wait(shmrpc_pending *call, int32_t timeout_ms) {
  shmrpc__deadline until;
  if (!mine(call) || timeout_ms < SHMRPC_INFINITE)
    return SHMRPC_EINVAL;
  until = shmrpc__deadline_in(timeout_ms);
  shmrpc__deadline_arm(&until, shmrpc__os_now_ns());
  for (;;) {
    shmrpc__deadline step;
    shmrpc__conn *conn = call->conn;
    int rc;
    if (progress(call))
      return 1;
    if (shmrpc__deadline_expired(&until))
      return 0;
    /* One blocking step, to the earlier of the two deadlines; progress()
     * then says what it came to. */
    step = earlier_of(&until, &call->deadline);
    switch (call->state) {
    case PENDING_QUEUED: {
      int32_t slice = shmrpc__deadline_slice(&step, SHMRPC__SLICE_MS);
      uint32_t lane;
      if (slice == 0)
        break;
      rc = shmrpc__os_lane_wait(conn->service, &call->waiter, slice, &lane);
      if (rc >= 0)
        got_lane(call, lane, rc);
      else if (rc != SHMRPC_ETIMEDOUT)
        fail(call, rc);
      break;
    }
    case PENDING_PREPARING:
      rc = shmrpc__conn_prepare_wait(conn, call->lane, &step);
      if (rc == 0)
        post(call, call->request);
      else if (rc != SHMRPC_ETIMEDOUT)
        fail(call, rc);
      break;
    default: /* PENDING_POSTED */
      rc = shmrpc__conn_wait_answer(conn, call->lane, call->seq,
                                    call->wait_flags, &step);
      call->wait_flags = 0; /* a wake-up is paid once */
      if (rc < 0 && rc != SHMRPC_ETIMEDOUT) {
        if (shmrpc__conn_answered(conn, call->lane, call->seq))
          (void)answered(call);
        else
          fail(call, rc);
      }
      break;
    }
  }
}

/* Ends a call: lets go of what it holds and frees it. */
static void end_call(shmrpc_pending *call) {
  shmrpc_client *client = call->client;
  let_go(call);
  unlink_call(call);
  if (client != NULL)
    shmrpc__client_leave(client);
  call_free(call);
}

int shmrpc_pending_finish(shmrpc_pending *call, void *response,
                          size_t response_cap, size_t *response_len) {
  int rc;
  if (!mine(call) || (response == NULL && response_cap > 0))
    return SHMRPC_EINVAL;
  if (response_len != NULL)
    *response_len = 0;
  if (!progress(call))
    return SHMRPC_EAGAIN;
  shmrpc__client_clear_app_error();
  if (call->answered && reachable(call)) {
    rc = shmrpc__conn_take_answer(call->client, call->conn, call->lane,
                                  response, response_cap, response_len);
    /* The server's "withdrawn" for a call that gave up as it was taken. */
    if (rc == SHMRPC_ECANCELED && call->gave_up != 0)
      rc = call->gave_up;
  } else {
    rc = call->rc;
  }
  end_call(call);
  return rc;
}

int shmrpc_pending_cancel(shmrpc_pending *call) {
  if (call == NULL)
    return 0;
  if (!mine(call))
    return SHMRPC_EINVAL;
  /* Not taken yet: it never runs. Taken: the lane's next holder waits for
   * its answer, which nobody reads. */
  if (call->state == PENDING_POSTED && reachable(call))
    (void)shmrpc__lane_withdraw(&call->conn->lane[call->lane], call->seq);
  end_call(call);
  return 0;
}

void shmrpc__pending_detach(shmrpc_client *client) {
  shmrpc_pending *call;
  for (call = thread_calls.head; call != NULL; call = call->next) {
    if (call->client != client)
      continue;
    if (call->state == PENDING_POSTED && reachable(call))
      (void)shmrpc__lane_withdraw(&call->conn->lane[call->lane], call->seq);
    let_go(call);
    if (call->state != PENDING_OVER || call->answered) {
      call->state = PENDING_OVER;
      call->answered = 0;
      call->rc = SHMRPC_ECANCELED;
    }
    call->client = NULL;
    shmrpc__client_leave(client);
  }
}

/* ---- The handle's waitable ---------------------------------------------- */

int shmrpc_client_waitable(shmrpc_client *client, shmrpc_waitable *out) {
  shmrpc__deadline connect = shmrpc__deadline_in(SHMRPC_NOWAIT);
  shmrpc__os_loop *loop, *fresh = NULL;
  shmrpc__conn *conn;
  int rc;
  if (client == NULL || out == NULL)
    return SHMRPC_EINVAL;
  shmrpc__error_clear();
  if (shmrpc__client_enter(client) != 0)
    return SHMRPC_EINVAL;
  loop = __atomic_load_n(&client->loop, __ATOMIC_ACQUIRE);
  if (loop == NULL || shmrpc__os_loop_forked(loop)) {
    rc = shmrpc__client_connect(client, &connect, &conn);
    if (rc == 0)
      rc = shmrpc__os_loop_open(conn->service, &fresh);
    if (rc != 0) {
      shmrpc__client_leave(client);
      return rc;
    }
    if (__atomic_compare_exchange_n(&client->loop, &loop, fresh, 0,
                                    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
      shmrpc__os_loop_close(loop); /* a fork child's copy of the parent's */
      loop = fresh;
    } else {
      shmrpc__os_loop_close(fresh); /* another thread made one first */
    }
  }
  *out = shmrpc__os_loop_waitable(loop);
  shmrpc__client_leave(client);
  return 0;
}

/* Asks the server to wake the loop when it answers the posted call. */
static int arm_call(shmrpc__os_loop *loop, shmrpc_pending *call) {
  uint32_t waker = 0;
  int rc = shmrpc__os_loop_watch(loop, call->conn->service, call->lane, &waker);
  if (rc != 0)
    return rc;
  call->watched = 1;
  /* The mark, then the last look: the server stores the answer, then
   * reads the mark, so one of the two sees the other. */
  call->mark = SHMRPC__SLEEPER_FD | (waker << 2);
  shmrpc__store32_sc(&call->conn->lane[call->lane].request->response_sleepers,
                     call->mark);
  return 0;
}

int shmrpc_client_arm(shmrpc_client *client) {
  shmrpc__os_loop *loop;
  shmrpc__conn *conn;
  shmrpc_pending *call;
  uint64_t next_end = UINT64_MAX, now;
  int done = 0, queued = 0, posted = 0, rc = 0;
  int32_t ms = -1, health_ms;

  if (client == NULL)
    return SHMRPC_EINVAL;
  if (shmrpc__client_enter(client) != 0)
    return SHMRPC_EINVAL;
  loop = __atomic_load_n(&client->loop, __ATOMIC_ACQUIRE);
  if (loop == NULL || shmrpc__os_loop_forked(loop)) {
    shmrpc__client_leave(client);
    return shmrpc__error_detail(SHMRPC_EINVAL, "call shmrpc_client_waitable "
                                               "first");
  }
  /* What woke the loop is spent: from here on it turns ready only for
   * what happens next. */
  conn = __atomic_load_n(&client->conn, __ATOMIC_ACQUIRE);
  if (conn != NULL && !shmrpc__os_service_forked(conn->service) &&
      shmrpc__os_loop_drain(loop, conn->service))
    shmrpc__store32(&conn->suspect, 1);

  for (call = thread_calls.head; call != NULL; call = call->next) {
    if (call->client != client)
      continue;
    if (progress(call)) {
      done++;
      continue;
    }
    if (call->state == PENDING_POSTED) {
      rc = arm_call(loop, call);
      if (rc != 0)
        break;
      if (progress(call)) {
        done++;
        continue;
      }
      posted = 1;
    } else {
      queued = 1;
    }
    if (call->deadline.timeout_ms >= 0 && call->deadline.end_ns < next_end)
      next_end = call->deadline.end_ns;
  }
  if (rc == 0 && done == 0) {
    /* The timer covers what no one else signals: a deadline, a lane that
     * may have freed for a queued call, and (where a dead server does not
     * make the loop ready by itself) a look at the server's health. */
    now = shmrpc__os_now_ns();
    if (next_end != UINT64_MAX) {
      uint64_t left = next_end > now ? (next_end - now + 999999u) / 1000000u
                                     : 0u;
      ms = left > INT32_MAX ? INT32_MAX : (int32_t)left;
    }
    if (queued && (ms < 0 || ms > 1))
      ms = 1;
    health_ms = shmrpc__os_loop_health_ms();
    if (posted && health_ms >= 0 && (ms < 0 || ms > health_ms))
      ms = health_ms;
    rc = shmrpc__os_loop_timer(loop, ms);
  }
  shmrpc__client_leave(client);
  return rc != 0 ? rc : done;
}
