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

#endif /* SHMRPC_COMPILER_H */
