/* Deadlines and the spin-then-sleep wait every blocking path uses. */
#include <stdlib.h>
#include <string.h>

#include "core.h"

SHMRPC__HOT shmrpc__deadline shmrpc__deadline_in(int32_t timeout_ms) {
  shmrpc__deadline deadline;
  deadline.end_ns = 0;
  deadline.timeout_ms = timeout_ms;
  deadline.armed = 0;
  return deadline;
}

SHMRPC__HOT void shmrpc__deadline_arm(shmrpc__deadline *deadline,
                                      uint64_t now_ns) {
  if (deadline->armed)
    return;
  deadline->armed = 1;
  if (deadline->timeout_ms >= 0)
    deadline->end_ns = now_ns + (uint64_t)deadline->timeout_ms * 1000000u;
}

SHMRPC__HOT int shmrpc__deadline_expired(shmrpc__deadline *deadline) {
  uint64_t now;
  if (deadline->timeout_ms < 0)
    return 0;
  now = shmrpc__os_now_ns();
  shmrpc__deadline_arm(deadline, now);
  return now >= deadline->end_ns;
}

SHMRPC__HOT int32_t shmrpc__deadline_slice(shmrpc__deadline *deadline,
                                           int32_t cap_ms) {
  uint64_t now, left_ms;
  if (deadline->timeout_ms < 0)
    return cap_ms;
  now = shmrpc__os_now_ns();
  shmrpc__deadline_arm(deadline, now);
  if (now >= deadline->end_ns)
    return 0;
  left_ms = (deadline->end_ns - now + 999999u) / 1000000u;
  return left_ms < (uint64_t)cap_ms ? (int32_t)left_ms : cap_ms;
}

void shmrpc__spin_init(shmrpc__spin *spin, int32_t spin_us) {
  static volatile uint32_t cpus; /* cached; 0 until first asked */
  uint32_t n = shmrpc__load32_relaxed(&cpus);
  if (n == 0) {
    n = shmrpc__os_cpu_count();
    shmrpc__store32_relaxed(&cpus, n);
  }
  if (spin_us < 0)
    spin_us = SHMRPC__DEFAULT_SPIN_US;
  spin->max_ns = n < 2 ? 0 : (uint64_t)spin_us * 1000u;
  spin->window_ns = spin->max_ns;
  spin->slept_since_ns = 0;
}

/* The smallest window worth trying again: below it a spin costs more in
 * clock reads than it can win. */
#define SHMRPC__SPIN_FLOOR_NS 500u

static int sleep_until(shmrpc__os_service *service, enum shmrpc__os_event event,
                       volatile uint32_t *sleepers, int (*ready)(void *ctx),
                       int (*health)(void *ctx), void *ctx, int flags,
                       shmrpc__deadline *deadline, int32_t slice_ms);

/* Spins up to the window; returns ready()'s result, or 0 if it ran out. */
SHMRPC__HOT static int spin_until(int (*ready)(void *ctx), void *ctx,
                                  uint64_t window_ns, uint64_t start_ns) {
  uint64_t spin_end = start_ns + window_ns;
  unsigned spins = 0;
  for (;;) {
    int result;
    shmrpc__cpu_relax();
    result = ready(ctx);
    if (result != 0)
      return result;
    /* Reading the clock costs more than a check: do it now and then. */
    if ((++spins & 63u) == 0 && shmrpc__os_now_ns() >= spin_end)
      return 0;
  }
}

/* A wait outlasted the spin and slept for slept_ns. If it ended soon after
 * the window, a full window would have caught it: use one. If it took much
 * longer (a slow handler, a peer without a CPU), spin less next time. */
SHMRPC__HOT static void judge_sleep(shmrpc__spin *spin, uint64_t slept_ns) {
  if (slept_ns <= 2 * spin->max_ns) {
    spin->window_ns = spin->max_ns;
  } else {
    spin->window_ns /= 2;
    if (spin->window_ns < SHMRPC__SPIN_FLOOR_NS)
      spin->window_ns = SHMRPC__SPIN_FLOOR_NS;
  }
}

/* Checks made before the first clock read: an active peer usually answers
 * within them, and a clock read costs as much as a dozen checks. */
#define SHMRPC__QUICK_CHECKS 64

SHMRPC__HOT int shmrpc__wait(shmrpc__os_service *service,
                             enum shmrpc__os_event event,
                             volatile uint32_t *sleepers,
                             int (*ready)(void *ctx), int (*health)(void *ctx),
                             void *ctx, shmrpc__spin *spin, int flags,
                             shmrpc__deadline *deadline, int32_t slice_ms) {
  /* After long sleeps the window is at its floor, which means "do not
   * spin": go to the kernel without delay, leaving the CPU to the peer just
   * woken. A wait that then ends soon after restores the full window. */
  int spinning, judging, result = ready(ctx);
  uint64_t start = 0;
  if (result != 0)
    return result;
  if (spin->slept_since_ns != 0) {
    start = shmrpc__os_now_ns();
    judge_sleep(spin, start - spin->slept_since_ns);
    spin->slept_since_ns = 0;
  }
  /* A wait that can spin learns from how long it then sleeps; any other
   * goes to the kernel without reading the clock here (sleep_until arms
   * the deadline with the one read it needs). */
  judging = !(flags & SHMRPC__WAIT_NO_SPIN) && spin->max_ns > 0;
  spinning = judging && spin->window_ns > SHMRPC__SPIN_FLOOR_NS;
  if (spinning) {
    int i;
    for (i = 0; i < SHMRPC__QUICK_CHECKS; i++) {
      shmrpc__cpu_relax();
      result = ready(ctx);
      if (result != 0)
        return result;
    }
  }

  if (judging) {
    if (start == 0)
      start = shmrpc__os_now_ns();
    shmrpc__deadline_arm(deadline, start);
  }
  if (spinning) {
    result = spin_until(ready, ctx, spin->window_ns, start);
    if (result != 0) {
      /* Spinning paid: widen the window again. */
      spin->window_ns = spin->window_ns * 2 + SHMRPC__SPIN_FLOOR_NS;
      if (spin->window_ns > spin->max_ns)
        spin->window_ns = spin->max_ns;
      return result;
    }
  }

  result = sleep_until(service, event, sleepers, ready, health, ctx, flags,
                       deadline, slice_ms);
  if (judging) {
    if (flags & SHMRPC__WAIT_JUDGE_LATER)
      spin->slept_since_ns = start;
    else
      judge_sleep(spin, shmrpc__os_now_ns() - start);
  }
  return result;
}

SHMRPC__HOT static int
sleep_until(shmrpc__os_service *service, enum shmrpc__os_event event,
            volatile uint32_t *sleepers, int (*ready)(void *ctx),
            int (*health)(void *ctx), void *ctx, int flags,
            shmrpc__deadline *deadline, int32_t slice_ms) {
  int result;
  if ((flags & SHMRPC__WAIT_HEALTH_FIRST) && health != NULL) {
    result = health(ctx);
    if (result < 0)
      return result;
  }
  for (;;) {
    int32_t slice = shmrpc__deadline_slice(deadline, slice_ms);
    if (slice == 0)
      return SHMRPC_ETIMEDOUT;
    /* Mark ourselves asleep before the last look at the state: the peer
     * publishes its state before it looks for sleepers, so one of the two
     * always sees the other. One thread at a time waits on each event (the
     * server on requests, the slot's holder on responses), so a flag will
     * do, and a flag rewritten on every sleep heals if someone scribbles
     * on it. */
    shmrpc__store32_sc(sleepers, 1u);
    result = ready(ctx);
    if (result == 0) {
      (void)shmrpc__os_event_wait(service, event, slice);
      result = ready(ctx);
    }
    /* A peer that wakes us lowers the flag itself, on its own line; we
     * lower it only if it is still up (a timeout, or no sleep at all), so
     * a wake-up costs us no write to the peer's line. */
    if (shmrpc__load32_relaxed(sleepers) != 0)
      shmrpc__store32_sc(sleepers, 0u);
    if (result != 0)
      return result;
    if (health != NULL) {
      result = health(ctx);
      if (result < 0)
        return result;
    }
  }
}

#ifdef SHMRPC_FAULT_INJECTION
void shmrpc__fault_point(const char *where) {
  const char *wanted = getenv("SHMRPC_FAULT");
  if (wanted != NULL && strcmp(wanted, where) == 0)
    shmrpc__os_die_now();
}
#endif
