/*
 * Internal declarations shared by the core's files in src/. Nothing here is
 * platform specific: the core reaches the operating system through os.h.
 */
#ifndef SHMRPC_CORE_H
#define SHMRPC_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "atomic.h"
#include "compiler.h"
#include "layout.h"
#include "os.h"
#include "shmrpc.h"

/* How long one kernel wait lasts before a waiter looks at the server's
 * health again. It bounds how late a caller notices a dead server. */
#define SHMRPC__SLICE_MS 20
/* The server's idle wait slice: it bounds how long a lost wake-up or a
 * scribbled word goes unrepaired. */
#define SHMRPC__IDLE_SLICE_MS 100
/* Default spin window before sleeping in the kernel. */
#define SHMRPC__DEFAULT_SPIN_US 100
/* Every this many calls a busy worker runs the repair pass too. */
#define SHMRPC__REPAIR_EVERY 64u

#if defined(_MSC_VER) && !defined(__clang__)
#define SHMRPC__THREAD_LOCAL __declspec(thread)
#else
#define SHMRPC__THREAD_LOCAL _Thread_local
#endif
/* For the few bytes the hot path touches: an ELF shared library's
 * thread-local variable costs a call to __tls_get_addr per access, the
 * initial-exec model one load. Its static TLS block is small and taken
 * from what the C library keeps for libraries loaded later (dlopen, as
 * Python's ctypes does), so only a few bytes use it. */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__ELF__)
#define SHMRPC__THREAD_LOCAL_FAST                                              \
  _Thread_local __attribute__((tls_model("initial-exec")))
#else
#define SHMRPC__THREAD_LOCAL_FAST SHMRPC__THREAD_LOCAL
#endif

/* Copies n bytes, n at most 32 (SHMRPC__INLINE_MAX): a message that rides
 * in its line. Fixed-size copies the compiler inlines, two of them
 * overlapping where n is not a power of two, instead of a call to memcpy
 * that costs more than the copy. */
static inline void shmrpc__copy_small(void *dst, const void *src, size_t n) {
  unsigned char *d = (unsigned char *)dst;
  const unsigned char *s = (const unsigned char *)src;
  if (n >= 16) {
    memcpy(d, s, 16);
    memcpy(d + n - 16, s + n - 16, 16);
  } else if (n >= 8) {
    memcpy(d, s, 8);
    memcpy(d + n - 8, s + n - 8, 8);
  } else if (n >= 4) {
    memcpy(d, s, 4);
    memcpy(d + n - 4, s + n - 4, 4);
  } else if (n > 0) {
    d[0] = s[0];
    d[n / 2] = s[n / 2];
    d[n - 1] = s[n - 1];
  }
}
_Static_assert(SHMRPC__INLINE_MAX <= 32, "shmrpc__copy_small copies 32 bytes");

/* ---- Errors with details (error.c) ------------------------------------- */

/* Records a message for code on this thread (printf-style) and returns
 * code, so that `return shmrpc__error_detail(SHMRPC_EOS, "open %s: %s",
 * path, reason);` reads as one step. shmrpc_error_message() returns it. */
int shmrpc__error_detail(int code, const char *format, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Forgets this thread's message: entry points that may record one call it
 * first, so that an old message never explains a new error. One store to
 * the code the message belongs to (error.c), inline: the blocking call
 * makes it too, and a call to a cold page after an idle spell costs more
 * than the call it is in would notice. */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__ELF__)
extern SHMRPC__THREAD_LOCAL_FAST int shmrpc__error_code
    __attribute__((visibility("hidden")));
#else
extern SHMRPC__THREAD_LOCAL_FAST int shmrpc__error_code;
#endif
static inline void shmrpc__error_clear(void) { shmrpc__error_code = 0; }

/* ---- Deadlines --------------------------------------------------------- */

/* A deadline on the monotonic clock. It is armed (the clock read) only when
 * first needed, so a call that never waits never reads the clock; a
 * timeout thus counts from the call's first wait. */
typedef struct shmrpc__deadline {
  uint64_t end_ns;    /* valid once armed */
  int32_t timeout_ms; /* as given; negative means infinite */
  int armed;
} shmrpc__deadline;

static inline shmrpc__deadline shmrpc__deadline_in(int32_t timeout_ms) {
  shmrpc__deadline deadline;
  deadline.end_ns = 0;
  deadline.timeout_ms = timeout_ms;
  deadline.armed = 0;
  return deadline;
}
/* Arms the deadline at `now` if it is not armed yet. */
void shmrpc__deadline_arm(shmrpc__deadline *deadline, uint64_t now_ns);
/* Milliseconds left, rounded up, capped at cap_ms; an infinite deadline
 * gives cap_ms. 0 when expired. */
int32_t shmrpc__deadline_slice(shmrpc__deadline *deadline, int32_t cap_ms);
int shmrpc__deadline_expired(shmrpc__deadline *deadline);

/* ---- Spinning and waiting (wait.c) ------------------------------------- */

/* Spin windows adapt: a wait satisfied while spinning widens the window
 * (up to the configured maximum); a wait that slept much longer than the
 * maximum halves it. Under CPU contention, or with a slow peer, spinning
 * all but stops by itself; it comes back as soon as it pays again. */
typedef struct shmrpc__spin {
  uint64_t max_ns;     /* configured window; 0 never spins */
  uint64_t window_ns;  /* current window */
  /* The server's: the start of a sleep it measures at its next wait rather
   * than on waking (the first clock read after a long sleep costs about
   * half a microsecond, which every cold call would pay), to judge the
   * window or to tell calls back to back (server.c); 0 if none. */
  uint64_t slept_since_ns;
  /* What the next wait adds to its window: the copying the peer must do
   * before the awaited state can come (shmrpc__spin_expect). One wait
   * uses it. */
  uint64_t extra_ns;
  /* A caller's: when it last rang a sleeping server (0: never); see
   * shmrpc__conn_yield. */
  uint64_t rang_ns;
  uint32_t copy_ps;    /* this side's pace of copying, ps per byte */
  uint32_t crowd_max;  /* spin while at most this many callers wait */
} shmrpc__spin;

/* A spin policy for an option value (-1 = default; the options were checked
 * to be at most SHMRPC_MAX_SPIN_US, and a larger value is clamped anyway);
 * never spins on a single CPU, where spinning only delays the peer. */
void shmrpc__spin_init(shmrpc__spin *spin, int32_t spin_us);

/* The pieces of shmrpc__wait, for waiters with their own sleep logic (the
 * server's workers). shmrpc__spin_judge adapts the window to a sleep of
 * slept_ns; shmrpc__spin_for spins up to the window from start_ns, never
 * past the deadline, and returns ready()'s result or 0; shmrpc__spin_paid
 * widens the window after a spin that caught the state. */
void shmrpc__spin_judge(shmrpc__spin *spin, uint64_t slept_ns,
                        uint64_t extra_ns);
int shmrpc__spin_for(int (*ready)(void *ctx), void *ctx, uint64_t window_ns,
                     uint64_t start_ns, const shmrpc__deadline *deadline);
void shmrpc__spin_paid(shmrpc__spin *spin);

/*
 * Pacing. A large message keeps the peer copying before the awaited state
 * can come: the server copies a request before it runs the handler, a
 * caller copies an answer out before it calls again. A window sized for
 * small calls then ends while the peer still copies, and each side sleeps
 * and is woken at every call (on a VM, a wake-up of an idle CPU costs
 * tens of microseconds; README, Performance). So a side that sees the
 * bytes go by (its own copy of the request, or the answer it wrote)
 * expects the peer to take twice as long as it would itself to copy them,
 * and its next wait spins that much longer. Its pace comes from timing its
 * own copies of at least SHMRPC__PACE_MIN bytes (two clock reads against
 * a copy of several microseconds), and starts at SHMRPC__PACE_PS.
 */
#define SHMRPC__PACE_MIN 65536u
#define SHMRPC__PACE_PS 125u /* 8 GB/s, before the first timed copy */
#define SHMRPC__PACE_STRETCH 32u /* at most this many windows more */
/* The pace learns from a copy of `bytes` that took ns. */
void shmrpc__spin_learn(shmrpc__spin *spin, uint64_t bytes, uint64_t ns);
/* How much longer to spin for a peer that copies `bytes` (at least
 * SHMRPC__PACE_MIN) first: at most SHMRPC__PACE_STRETCH full windows, and
 * never beyond SHMRPC_MAX_SPIN_US in all. */
uint64_t shmrpc__spin_pace(const shmrpc__spin *spin, uint64_t bytes);
/* The next wait expects the peer to copy `bytes` first (below
 * SHMRPC__PACE_MIN the window covers them: nothing is added). */
static inline void shmrpc__spin_expect(shmrpc__spin *spin, uint64_t bytes) {
  spin->extra_ns = bytes >= SHMRPC__PACE_MIN ? shmrpc__spin_pace(spin, bytes)
                                             : 0u;
}
/* The extra the next wait expects, which it takes (so no later wait
 * inherits it). It judges its sleep against all of it, and spins for
 * shmrpc__spin_window(). */
static inline uint64_t shmrpc__spin_take_extra(shmrpc__spin *spin) {
  uint64_t extra = spin->extra_ns;
  spin->extra_ns = 0;
  return extra;
}
/* How long a wait that expects `extra` spins: the window, and the extra
 * shrunk with it as sleeps that outlast both shrink the window (at the
 * floor there is no spin at all). The judge still measures a sleep against
 * the whole extra, so a long copy seen once more restores the window. */
static inline uint64_t shmrpc__spin_window(const shmrpc__spin *spin,
                                           uint64_t extra) {
  if (SHMRPC__UNLIKELY(extra != 0) && spin->window_ns < spin->max_ns)
    extra = extra * spin->window_ns / spin->max_ns;
  return spin->window_ns + extra;
}

/* Below this window a spin costs more in clock reads than it can win: a
 * window at the floor means "do not spin". */
#define SHMRPC__SPIN_FLOOR_NS 500u
/* Checks made before the first clock read: an active peer usually answers
 * within them, and a clock read costs as much as a dozen checks. */
#define SHMRPC__QUICK_CHECKS 64

/* How shmrpc__wait is to wait. */
enum shmrpc__wait_flags {
  SHMRPC__WAIT_NO_SPIN = 1 /* go straight to the kernel this time */
};

/* How a waiter tells the peer that it sleeps, so that the peer sets the
 * event only then: *sleepers is a flag the waiter stores mark into (one
 * waiter per event: a lane's owner). The server's workers keep their own
 * count in the doorbell word (server.c). */
typedef struct shmrpc__sleep {
  int event;                   /* SHMRPC__EVENT_* to sleep on */
  volatile uint32_t *sleepers; /* in shared memory */
  uint32_t mark;               /* the flag's value, never 0 */
  volatile uint32_t *crowd;    /* callers waiting, or NULL: see
                                  shmrpc__crowd_line */
} shmrpc__sleep;

/*
 * shmrpc__wait waits until ready(ctx) returns non-zero and returns that
 * value. It spins for the spin window (never past the deadline), then
 * sleeps on the event in slices of slice_ms, telling the peer through
 * *how. After each slice it calls health(ctx) if not NULL; a negative
 * result ends the wait with that result. A spin is shorter than a slice
 * (SHMRPC_MAX_SPIN_US), so it calls no health. At the deadline it returns
 * SHMRPC_ETIMEDOUT. ready()
 * must load the state it tests with a sequentially consistent load (the
 * sleepers handshake relies on it).
 */
int shmrpc__wait(shmrpc__os_service *service, const shmrpc__sleep *how,
                 int (*ready)(void *ctx), int (*health)(void *ctx), void *ctx,
                 shmrpc__spin *spin, int flags, shmrpc__deadline *deadline,
                 int32_t slice_ms);

/* ---- Test-only fault points -------------------------------------------- */

/* With SHMRPC_FAULT_INJECTION compiled in, the process dies at the point
 * whose name the SHMRPC_FAULT environment variable holds, after calling the
 * hook a test may set (it sees every point the process passes, and may do
 * there what a test needs, e.g. replace the server mid-call). Compiled out
 * otherwise. */
#ifdef SHMRPC_FAULT_INJECTION
void shmrpc__fault_point(const char *where);
SHMRPC_EXTERN void shmrpc__test_set_fault_hook(void (*hook)(const char *where));
#define SHMRPC__FAULT(where) shmrpc__fault_point(where)
/* Backends count every system call they make (the test hook that shows a
 * spinning pair makes none per call); the count is this process's. */
void shmrpc__test_count_syscall(void);
SHMRPC_EXTERN uint64_t shmrpc__test_syscalls(void);
#else
#define SHMRPC__FAULT(where) ((void)0)
#endif

/* ---- The areas --------------------------------------------------------- */

/* Pointers into a server area of `lanes` lanes and `capacity`. */
static inline shmrpc__header *shmrpc__area_header(const void *server) {
  return (shmrpc__header *)((uintptr_t)server + SHMRPC__OFF_HEADER);
}
static inline shmrpc__doorbell_line *shmrpc__area_doorbell(const void *server) {
  return (shmrpc__doorbell_line *)((uintptr_t)server + SHMRPC__OFF_DOORBELL);
}
static inline shmrpc__stats_line *shmrpc__area_stats(const void *server) {
  return (shmrpc__stats_line *)((uintptr_t)server + SHMRPC__OFF_STATS);
}
static inline shmrpc__answer_line *shmrpc__area_answer(const void *server,
                                                       uint32_t lane) {
  return (shmrpc__answer_line *)((uintptr_t)server + SHMRPC__OFF_ANSWERS +
                                 (uint64_t)lane * SHMRPC__LINE);
}
static inline shmrpc__lane_info *
shmrpc__area_lane_info(const void *server, uint32_t lanes, uint32_t lane) {
  return (shmrpc__lane_info *)((uintptr_t)server +
                               shmrpc__off_lane_info(lanes) +
                               (uint64_t)lane * SHMRPC__LINE);
}
static inline char *shmrpc__area_message(const void *server, uint32_t lanes,
                                         uint32_t lane) {
  return (char *)((uintptr_t)server + shmrpc__off_messages(lanes) +
                  (uint64_t)lane * SHMRPC__MESSAGE_AREA);
}
static inline unsigned char *shmrpc__area_response(const void *server,
                                                   uint32_t lanes,
                                                   uint32_t capacity,
                                                   uint32_t lane) {
  return (unsigned char *)((uintptr_t)server + shmrpc__off_responses(lanes) +
                           (uint64_t)lane * shmrpc__align_line(capacity));
}

/* Pointers into a calls area. */
static inline shmrpc__calls_header *shmrpc__area_calls_header(void *calls) {
  return (shmrpc__calls_header *)((uintptr_t)calls + SHMRPC__OFF_CALLS_HEADER);
}
static inline shmrpc__crowd_line *shmrpc__area_crowd(void *calls) {
  return (shmrpc__crowd_line *)((uintptr_t)calls + SHMRPC__OFF_CROWD);
}
static inline shmrpc__request_line *shmrpc__area_request(void *calls,
                                                         uint32_t lane) {
  return (shmrpc__request_line *)((uintptr_t)calls + SHMRPC__OFF_REQUESTS +
                                  (uint64_t)lane * SHMRPC__LINE);
}
static inline unsigned char *shmrpc__area_payload(void *calls, uint32_t lanes,
                                                  uint32_t capacity,
                                                  uint32_t lane) {
  return (unsigned char *)((uintptr_t)calls + shmrpc__off_payloads(lanes) +
                           (uint64_t)lane * shmrpc__align_line(capacity));
}

/* ---- Counters callers report ------------------------------------------ */

/* Callers count their timeouts and lane takeovers in the calls area; the
 * server folds them into its own counters, at most this much per pass, so a
 * writer cannot make them absurd. */
#define SHMRPC__REPORT_MAX 1000000u
/* Adds what callers reported and the server has not folded in yet. */
void shmrpc__add_reported(shmrpc_stats *stats,
                          const shmrpc__calls_header *calls);

#include "lane.h"

#endif /* SHMRPC_CORE_H */
