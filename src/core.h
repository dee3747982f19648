/*
 * Internal declarations shared by the core's files in src/. Nothing here is
 * platform specific: the core reaches the operating system through os.h.
 */
#ifndef SHMRPC_CORE_H
#define SHMRPC_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "atomic.h"
#include "compiler.h"
#include "layout.h"
#include "os.h"
#include "shmrpc.h"

/* How long one kernel wait lasts before a waiter looks at the server's
 * health again. It bounds how late a caller notices a dead server. */
#define SHMRPC__SLICE_MS 20
/* The server's idle wait slice: it bounds how long a lost wake-up or a
 * scribbled control block goes unrepaired. */
#define SHMRPC__IDLE_SLICE_MS 250
/* Default (and largest) spin window before sleeping in the kernel. */
#define SHMRPC__DEFAULT_SPIN_US 100

/* A deadline on the monotonic clock. It is armed (the clock read) only when
 * first needed, so a call that never waits never reads the clock; a
 * timeout thus counts from the call's first wait. */
typedef struct shmrpc__deadline {
  uint64_t end_ns;    /* valid once armed */
  int32_t timeout_ms; /* as given; negative means infinite */
  int armed;
} shmrpc__deadline;

shmrpc__deadline shmrpc__deadline_in(int32_t timeout_ms);
/* Arms the deadline at `now` if it is not armed yet. */
void shmrpc__deadline_arm(shmrpc__deadline *deadline, uint64_t now_ns);
/* Milliseconds left, rounded up, capped at cap_ms; an infinite deadline
 * gives cap_ms. 0 when expired. */
int32_t shmrpc__deadline_slice(shmrpc__deadline *deadline, int32_t cap_ms);
int shmrpc__deadline_expired(shmrpc__deadline *deadline);

/* Spin windows adapt: a wait satisfied while spinning widens the window
 * (up to the configured maximum); a wait that slept much longer than the
 * maximum halves it. Under CPU contention, or with a slow peer, spinning
 * all but stops by itself; it comes back as soon as it pays again. */
typedef struct shmrpc__spin {
  uint64_t max_ns;     /* configured window; 0 never spins */
  uint64_t window_ns;  /* current window */
  uint64_t slept_since_ns; /* start of a sleep not judged yet; 0 if none */
} shmrpc__spin;

/* A spin policy for an option value (-1 = default); never spins on a
 * single CPU, where spinning only delays the peer. */
void shmrpc__spin_init(shmrpc__spin *spin, int32_t spin_us);

/* How shmrpc__wait ended up waiting. */
enum shmrpc__wait_flags {
  SHMRPC__WAIT_NO_SPIN = 1,      /* go straight to the kernel this time */
  SHMRPC__WAIT_HEALTH_FIRST = 2, /* call health() before the first sleep too */
  /* Judge a sleep's length at the next wait rather than on waking: the
   * first clock read after a long sleep costs about half a microsecond,
   * which the server would otherwise add to every cold call. The length
   * judged then includes the work done in between (the handler). */
  SHMRPC__WAIT_JUDGE_LATER = 4
};

/*
 * shmrpc__wait waits until ready(ctx) returns non-zero and returns that
 * value. It spins for the spin window, then sleeps on `event` in slices of
 * slice_ms, with *sleepers (in shared memory) set while it sleeps so the
 * peer signals only when someone sleeps; only one thread may wait on an
 * event at a time. After each slice (and before the first one with
 * SHMRPC__WAIT_HEALTH_FIRST) it calls health(ctx) if not NULL; a negative
 * result ends the wait with that result. At the deadline it returns
 * SHMRPC_ETIMEDOUT. ready() must load the state it tests with a
 * sequentially consistent load (the sleepers handshake relies on it).
 */
int shmrpc__wait(shmrpc__os_service *service, enum shmrpc__os_event event,
                 volatile uint32_t *sleepers, int (*ready)(void *ctx),
                 int (*health)(void *ctx), void *ctx, shmrpc__spin *spin,
                 int flags, shmrpc__deadline *deadline, int32_t slice_ms);

/* Test-only fault points: with SHMRPC_FAULT_INJECTION compiled in, the
 * process dies at the point whose name the SHMRPC_FAULT environment variable
 * holds. Compiled out otherwise. */
#ifdef SHMRPC_FAULT_INJECTION
void shmrpc__fault_point(const char *where);
#define SHMRPC__FAULT(where) shmrpc__fault_point(where)
#else
#define SHMRPC__FAULT(where) ((void)0)
#endif

/* Pointers into an area of `capacity`. */
static inline unsigned char *shmrpc__request_area(void *area) {
  return (unsigned char *)area + shmrpc__request_offset();
}
static inline unsigned char *shmrpc__response_area(void *area,
                                                   uint32_t capacity) {
  return (unsigned char *)area + shmrpc__response_offset(capacity);
}

#endif /* SHMRPC_CORE_H */
