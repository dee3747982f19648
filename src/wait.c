/* Deadlines and the spin-then-sleep wait every blocking path uses. */
#include <stdlib.h>
#include <string.h>

#include "core.h"

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
  if (spin_us > SHMRPC_MAX_SPIN_US)
    spin_us = SHMRPC_MAX_SPIN_US;
  spin->max_ns = n < 2 ? 0 : (uint64_t)spin_us * 1000u;
  spin->window_ns = spin->max_ns;
  spin->slept_since_ns = 0;
  spin->extra_ns = 0;
  spin->rang_ns = 0;
  spin->copy_ps = SHMRPC__PACE_PS;
  /* A CPU for each spinning caller, one for the server. */
  spin->crowd_max = n < 2 ? 0 : n - 1;
}


static int sleep_until(shmrpc__os_service *service, const shmrpc__sleep *how,
                       int (*ready)(void *ctx), int (*health)(void *ctx),
                       void *ctx, shmrpc__deadline *deadline,
                       int32_t slice_ms);

/* Spins up to the window, and never past the deadline; returns ready()'s
 * result, or 0 if it ran out. */
SHMRPC__HOT int shmrpc__spin_for(int (*ready)(void *ctx), void *ctx,
                                 uint64_t window_ns, uint64_t start_ns,
                                 const shmrpc__deadline *deadline) {
  uint64_t spin_end = start_ns + window_ns;
  if (deadline->timeout_ms >= 0 && deadline->end_ns < spin_end)
    spin_end = deadline->end_ns;
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
 * the window (twice the full window, plus the extra the wait expected),
 * a full window would have caught it: use one. If it took much longer (a slow
 * handler, a peer without a CPU), spin less next time. */
SHMRPC__HOT void shmrpc__spin_judge(shmrpc__spin *spin, uint64_t slept_ns,
                                    uint64_t extra_ns) {
  if (slept_ns <= 2 * spin->max_ns + extra_ns) {
    spin->window_ns = spin->max_ns;
  } else {
    spin->window_ns /= 2;
    if (spin->window_ns < SHMRPC__SPIN_FLOOR_NS)
      spin->window_ns = SHMRPC__SPIN_FLOOR_NS;
  }
}

SHMRPC__HOT void shmrpc__spin_paid(shmrpc__spin *spin) {
  spin->window_ns = spin->window_ns * 2 + SHMRPC__SPIN_FLOOR_NS;
  if (spin->window_ns > spin->max_ns)
    spin->window_ns = spin->max_ns;
}

void shmrpc__spin_learn(shmrpc__spin *spin, uint64_t bytes, uint64_t ns) {
  uint64_t ps;
  if (bytes < SHMRPC__PACE_MIN)
    return;
  /* A copy the scheduler cut into, or one a writer slowed by writing the
   * lines being copied, counts a quarter and at most four times the pace:
   * one outlier moves the pace by three quarters at most, a slower
   * machine still gets there in a few copies, and it stays within 16 to
   * 2000 ps/byte (62 to 0.5 GB/s). */
  ps = ns * 1000u / bytes;
  if (ps > 4u * spin->copy_ps)
    ps = 4u * spin->copy_ps;
  if (ps < 16u)
    ps = 16u;
  if (ps > 2000u)
    ps = 2000u;
  spin->copy_ps = (uint32_t)((3u * (uint64_t)spin->copy_ps + ps) / 4u);
}

uint64_t shmrpc__spin_pace(const shmrpc__spin *spin, uint64_t bytes) {
  uint64_t room = (uint64_t)SHMRPC_MAX_SPIN_US * 1000u, extra;
  /* Never more than SHMRPC_MAX_SPIN_US in all, nor more than
   * SHMRPC__PACE_STRETCH windows more: a small spin_us stays small. */
  room = room > spin->max_ns ? room - spin->max_ns : 0u;
  if (room > SHMRPC__PACE_STRETCH * spin->max_ns)
    room = SHMRPC__PACE_STRETCH * spin->max_ns;
  /* Twice our own time: bytes is at most two messages of at most
   * SHMRPC_MAX_CAPACITY, copy_ps at most 2000, so this cannot overflow. */
  extra = 2u * bytes * spin->copy_ps / 1000u;
  return extra < room ? extra : room;
}

/* Counts the caller among those waiting; 1 if it may still spin. */
static int crowded(const shmrpc__sleep *how, const shmrpc__spin *spin,
                   int *counted) {
  int32_t waiting = (int32_t)(shmrpc__fetch_add32(how->crowd, 1u) + 1u);
  *counted = 1;
  return waiting <= (int32_t)spin->crowd_max;
}

SHMRPC__HOT int shmrpc__wait(shmrpc__os_service *service,
                             const shmrpc__sleep *how, int (*ready)(void *ctx),
                             int (*health)(void *ctx), void *ctx,
                             shmrpc__spin *spin, int flags,
                             shmrpc__deadline *deadline, int32_t slice_ms) {
  /* After long sleeps the window is at its floor, which means "do not
   * spin": go to the kernel without delay, leaving the CPU to the peer just
   * woken. A wait that then ends soon after restores the full window. */
  int spinning, judging, counted = 0, result = ready(ctx);
  uint64_t start = 0, extra = shmrpc__spin_take_extra(spin);
  if (result != 0)
    return result;
  /* A wait that can spin learns from how long it then sleeps; any other
   * goes to the kernel without reading the clock here (sleep_until arms
   * the deadline with the one read it needs). */
  judging = !(flags & SHMRPC__WAIT_NO_SPIN) && spin->max_ns > 0;
  spinning = judging && spin->window_ns > SHMRPC__SPIN_FLOOR_NS;
  /* More callers waiting than CPUs to spin on (one is the server's): a
   * spin would take the CPU the answers need, and the callers that spin
   * would get every answer first. Then sleep at once, and do not learn
   * from it: the crowd decided. A caller alone pays one load for this;
   * one that spins past its quick checks counts itself. */
  if (spinning && how->crowd != NULL &&
      (int32_t)shmrpc__load32_relaxed(how->crowd) >= (int32_t)spin->crowd_max)
    spinning = judging = crowded(how, spin, &counted);
  if (spinning) {
    int i;
    for (i = 0; i < SHMRPC__QUICK_CHECKS; i++) {
      shmrpc__cpu_relax();
      result = ready(ctx);
      if (result != 0) {
        if (counted)
          shmrpc__fetch_add32(how->crowd, (uint32_t)-1);
        return result;
      }
    }
    if (how->crowd != NULL && !counted)
      spinning = judging = crowded(how, spin, &counted);
  }

  if (judging) {
    if (start == 0)
      start = shmrpc__os_now_ns();
    shmrpc__deadline_arm(deadline, start);
  }
  if (spinning) {
    result = shmrpc__spin_for(ready, ctx, shmrpc__spin_window(spin, extra),
                              start, deadline);
    if (result != 0) {
      shmrpc__spin_paid(spin); /* spinning paid: widen the window again */
      if (counted)
        shmrpc__fetch_add32(how->crowd, (uint32_t)-1);
      return result;
    }
  }

  result = sleep_until(service, how, ready, health, ctx, deadline, slice_ms);
  if (counted)
    shmrpc__fetch_add32(how->crowd, (uint32_t)-1);
  if (judging)
    shmrpc__spin_judge(spin, shmrpc__os_now_ns() - start, extra);
  return result;
}

/* Tells the peer we sleep (before the last look at the state), and that we
 * are awake again. A flag has one waiter: the peer that wakes us lowers it
 * itself, on its own line, so we lower it only if it is still up (a
 * timeout, or no sleep at all), and a flag rewritten on every sleep heals if
 * someone scribbles on it. */
SHMRPC__HOT static void mark_asleep(const shmrpc__sleep *how) {
  shmrpc__store32_sc(how->sleepers, how->mark);
}
SHMRPC__HOT static void mark_awake(const shmrpc__sleep *how) {
  if (shmrpc__load32_relaxed(how->sleepers) != 0)
    shmrpc__store32_sc(how->sleepers, 0u);
}

SHMRPC__HOT static int sleep_until(shmrpc__os_service *service,
                                   const shmrpc__sleep *how,
                                   int (*ready)(void *ctx),
                                   int (*health)(void *ctx), void *ctx,
                                   shmrpc__deadline *deadline,
                                   int32_t slice_ms) {
  int result;
  for (;;) {
    int32_t slice = shmrpc__deadline_slice(deadline, slice_ms);
    uint32_t prepared;
    if (slice == 0)
      return SHMRPC_ETIMEDOUT;
    /* The event's value first, then asleep, then the last look: the peer
     * publishes its state before it looks for sleepers and sets the event,
     * so either we see the state or the wait returns at once. */
    prepared = shmrpc__os_event_prepare(service, how->event);
    mark_asleep(how);
    result = ready(ctx);
    if (result == 0) {
      (void)shmrpc__os_event_wait(service, how->event, prepared, slice);
      /* Woken: our mark's line (ready() reads another) is likely cold. */
      SHMRPC__PREFETCH(how->sleepers);
      result = ready(ctx);
    }
    mark_awake(how);
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
static volatile uint64_t test_syscalls;

void shmrpc__test_count_syscall(void) { shmrpc__add64(&test_syscalls, 1); }

uint64_t shmrpc__test_syscalls(void) { return shmrpc__load64(&test_syscalls); }

static void (*volatile fault_hook)(const char *where);

void shmrpc__test_set_fault_hook(void (*hook)(const char *where)) {
  fault_hook = hook;
}

void shmrpc__fault_point(const char *where) {
  const char *wanted;
  void (*hook)(const char *where) = fault_hook;
  if (hook != NULL)
    hook(where);
  wanted = getenv("SHMRPC_FAULT");
  if (wanted != NULL && strcmp(wanted, where) == 0)
    shmrpc__os_die_now();
}
#endif
