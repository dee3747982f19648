/*
 * Atomic access to 32- and 64-bit words in shared memory (and to a pointer
 * in private memory that threads share), with one branch per compiler.
 * Fields in the mapping are plain integers: another process may change them
 * at any time, so every access goes through these functions, which also
 * stop the compiler from reading a field twice.
 */
#ifndef SHMRPC_ATOMIC_H
#define SHMRPC_ATOMIC_H

#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)

static inline uint32_t shmrpc__load32(const volatile uint32_t *p) {
  return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
static inline uint32_t shmrpc__load32_relaxed(const volatile uint32_t *p) {
  return __atomic_load_n(p, __ATOMIC_RELAXED);
}
static inline void shmrpc__store32(volatile uint32_t *p, uint32_t v) {
  __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
static inline void shmrpc__store32_relaxed(volatile uint32_t *p, uint32_t v) {
  __atomic_store_n(p, v, __ATOMIC_RELAXED);
}
/* Sequentially consistent store: orders it before a later load of another
 * word (the "publish, then look for sleepers" handshake). */
static inline void shmrpc__store32_sc(volatile uint32_t *p, uint32_t v) {
  __atomic_store_n(p, v, __ATOMIC_SEQ_CST);
}
static inline uint32_t shmrpc__load32_sc(const volatile uint32_t *p) {
  return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}
static inline uint32_t shmrpc__xchg32(volatile uint32_t *p, uint32_t v) {
  return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST);
}
/* Compare-and-swap: stores desired if *p holds expected; returns 1 if it
 * did. Sequentially consistent. */
static inline int shmrpc__cas32(volatile uint32_t *p, uint32_t expected,
                                uint32_t desired) {
  return __atomic_compare_exchange_n(p, &expected, desired, 0,
                                     __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
/* Adds v and returns the value before. Sequentially consistent. */
static inline uint32_t shmrpc__fetch_add32(volatile uint32_t *p, uint32_t v) {
  return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
static inline uint64_t shmrpc__load64(const volatile uint64_t *p) {
  return __atomic_load_n(p, __ATOMIC_RELAXED);
}
static inline void shmrpc__store64(volatile uint64_t *p, uint64_t v) {
  __atomic_store_n(p, v, __ATOMIC_RELAXED);
}
static inline void shmrpc__add64(volatile uint64_t *p, uint64_t v) {
  __atomic_add_fetch(p, v, __ATOMIC_RELAXED);
}
/* Orders the loads before it ahead of the loads after it. x86 never
 * reorders loads with loads, so there it only stops the compiler (and GCC's
 * ThreadSanitizer, which refuses thread fences, builds it). */
static inline void shmrpc__fence_acquire(void) {
#if defined(__x86_64__) || defined(__i386__)
  __asm__ __volatile__("" ::: "memory");
#else
  __atomic_thread_fence(__ATOMIC_ACQUIRE);
#endif
}
/* For a counter with one writer: no locked instruction. */
static inline void shmrpc__bump64(volatile uint64_t *p, uint64_t v) {
  __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + v,
                   __ATOMIC_RELAXED);
}
/* Pointers in private memory shared by threads: exchange and
 * compare-and-swap, sequentially consistent. */
static inline void *shmrpc__xchg_ptr(void *volatile *p, void *v) {
  return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST);
}
static inline int shmrpc__cas_ptr(void *volatile *p, void *expected,
                                  void *desired) {
  return __atomic_compare_exchange_n(p, &expected, desired, 0,
                                     __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
/* A hint to the CPU inside a spin loop. */
static inline void shmrpc__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

#elif defined(_MSC_VER)

#include <intrin.h>

static inline uint32_t shmrpc__load32(const volatile uint32_t *p) {
  uint32_t v = *p; /* volatile has acquire semantics under /volatile:ms */
  _ReadWriteBarrier();
  return v;
}
static inline uint32_t shmrpc__load32_relaxed(const volatile uint32_t *p) {
  return *p;
}
static inline void shmrpc__store32(volatile uint32_t *p, uint32_t v) {
  _ReadWriteBarrier();
  *p = v;
}
static inline void shmrpc__store32_relaxed(volatile uint32_t *p, uint32_t v) {
  *p = v;
}
static inline void shmrpc__store32_sc(volatile uint32_t *p, uint32_t v) {
  _InterlockedExchange((volatile long *)p, (long)v);
}
/* Loads never use an interlocked instruction: they all write, and clients
 * read the server area through a read-only view. On x64 a plain load is
 * sequentially consistent against the interlocked stores above. */
static inline uint32_t shmrpc__load32_sc(const volatile uint32_t *p) {
  uint32_t v = *p;
  _ReadWriteBarrier();
  return v;
}
static inline uint32_t shmrpc__xchg32(volatile uint32_t *p, uint32_t v) {
  return (uint32_t)_InterlockedExchange((volatile long *)p, (long)v);
}
static inline int shmrpc__cas32(volatile uint32_t *p, uint32_t expected,
                                uint32_t desired) {
  return (uint32_t)_InterlockedCompareExchange((volatile long *)p,
                                               (long)desired,
                                               (long)expected) == expected;
}
static inline uint32_t shmrpc__fetch_add32(volatile uint32_t *p, uint32_t v) {
  return (uint32_t)_InterlockedExchangeAdd((volatile long *)p, (long)v);
}
static inline uint64_t shmrpc__load64(const volatile uint64_t *p) {
  return *p; /* aligned 64-bit loads are atomic on x64 */
}
static inline void shmrpc__store64(volatile uint64_t *p, uint64_t v) {
  _InterlockedExchange64((volatile __int64 *)p, (__int64)v);
}
static inline void shmrpc__add64(volatile uint64_t *p, uint64_t v) {
  _InterlockedExchangeAdd64((volatile __int64 *)p, (__int64)v);
}
static inline void shmrpc__bump64(volatile uint64_t *p, uint64_t v) {
  *p = *p + v; /* aligned 64-bit accesses are atomic on x64 */
}
static inline void shmrpc__fence_acquire(void) {
  _ReadWriteBarrier(); /* x64 does not reorder loads with loads */
}
static inline void *shmrpc__xchg_ptr(void *volatile *p, void *v) {
  return _InterlockedExchangePointer(p, v);
}
static inline int shmrpc__cas_ptr(void *volatile *p, void *expected,
                                  void *desired) {
  return _InterlockedCompareExchangePointer(p, desired, expected) == expected;
}
static inline void shmrpc__cpu_relax(void) { _mm_pause(); }

#else
#error "shmrpc: no atomics for this compiler"
#endif

#endif /* SHMRPC_ATOMIC_H */
