/* Deadlines and the spin-then-sleep wait every blocking path uses. */
#include <stdlib.h>
#include <string.h>

#include "core.h"

shmrpc__deadline shmrpc__deadline_in(int32_t timeout_ms) {
  shmrpc__deadline deadline;
  deadline.infinite = timeout_ms < 0;
  deadline.end_ns = deadline.infinite
                        ? 0
                        : shmrpc__os_now_ns() + (uint64_t)timeout_ms * 1000000u;
  return deadline;
}

int shmrpc__deadline_expired(const shmrpc__deadline *deadline) {
  return !deadline->infinite && shmrpc__os_now_ns() >= deadline->end_ns;
}

int32_t shmrpc__deadline_slice(const shmrpc__deadline *deadline,
                               int32_t cap_ms) {
  uint64_t now, left_ms;
  if (deadline->infinite)
    return cap_ms;
  now = shmrpc__os_now_ns();
  if (now >= deadline->end_ns)
    return 0;
  left_ms = (deadline->end_ns - now + 999999u) / 1000000u;
  return left_ms < (uint64_t)cap_ms ? (int32_t)left_ms : cap_ms;
}

uint64_t shmrpc__spin_ns(int32_t spin_us) {
  static volatile uint32_t cpus; /* cached; 0 until first asked */
  uint32_t n = shmrpc__load32_relaxed(&cpus);
  if (n == 0) {
    n = shmrpc__os_cpu_count();
    shmrpc__store32_relaxed(&cpus, n);
  }
  if (n < 2)
    return 0;
  if (spin_us < 0)
    spin_us = SHMRPC__DEFAULT_SPIN_US;
  return (uint64_t)spin_us * 1000u;
}

int shmrpc__wait(shmrpc__os_service *service, enum shmrpc__os_event event,
                 volatile uint32_t *sleepers, int (*ready)(void *ctx),
                 int (*health)(void *ctx), void *ctx, uint64_t spin_ns,
                 const shmrpc__deadline *deadline, int32_t slice_ms) {
  int result = ready(ctx);
  if (result != 0)
    return result;

  if (spin_ns > 0) {
    uint64_t spin_end = shmrpc__os_now_ns() + spin_ns;
    unsigned spins = 0;
    for (;;) {
      shmrpc__cpu_relax();
      result = ready(ctx);
      if (result != 0)
        return result;
      /* Reading the clock costs more than a check: do it now and then. */
      if ((++spins & 63u) == 0 && shmrpc__os_now_ns() >= spin_end)
        break;
    }
  }

  for (;;) {
    int32_t slice;
    if (health != NULL) {
      result = health(ctx);
      if (result < 0)
        return result;
    }
    slice = shmrpc__deadline_slice(deadline, slice_ms);
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
    shmrpc__store32_sc(sleepers, 0u);
    if (result != 0)
      return result;
  }
}

#ifdef SHMRPC_FAULT_INJECTION
void shmrpc__fault_point(const char *where) {
  const char *wanted = getenv("SHMRPC_FAULT");
  if (wanted != NULL && strcmp(wanted, where) == 0)
    shmrpc__os_die_now();
}
#endif
