/*
 * Compiler hints shared by the core and the backends. Nothing here changes
 * behaviour; other compilers get empty definitions.
 */
#ifndef SHMRPC_COMPILER_H
#define SHMRPC_COMPILER_H

/* The call path: GCC and Clang place these functions side by side (in
 * .text.hot), so a call after a long idle spell, when the TLB and caches
 * have forgotten the library, touches a page or two of code rather than
 * one per source file. */
#if defined(__GNUC__) || defined(__clang__)
#define SHMRPC__HOT __attribute__((hot))
#else
#define SHMRPC__HOT
#endif

/* The rare turns of the call path (a dead server, a busy slot, an error
 * answer) live in functions of their own, placed away from it (in
 * .text.unlikely), and branches to them are marked unlikely: the lines a
 * call runs then sit together, and a cold call misses on fewer of them. */
#if defined(__GNUC__) || defined(__clang__)
#define SHMRPC__COLD __attribute__((cold, noinline))
#define SHMRPC__UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define SHMRPC__COLD
#define SHMRPC__UNLIKELY(x) (x)
#endif

/* Starts loading the line at `p` into the cache (SHMRPC__PREFETCH_W: to
 * write it), without waiting for it: a hint that changes no memory and
 * never faults. After a long idle spell, when caches and TLB have forgotten
 * the service, a call's misses then overlap instead of queueing one after
 * another. */
#if defined(__GNUC__) || defined(__clang__)
#define SHMRPC__PREFETCH(p) __builtin_prefetch((const void *)(p), 0, 3)
#define SHMRPC__PREFETCH_W(p) __builtin_prefetch((const void *)(p), 1, 3)
#else
#define SHMRPC__PREFETCH(p) ((void)(p))
#define SHMRPC__PREFETCH_W(p) ((void)(p))
#endif

#endif /* SHMRPC_COMPILER_H */
