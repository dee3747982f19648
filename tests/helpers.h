/*
 * The test service every suite uses, and the helper roles the test binaries
 * run as when started with arguments (test_rpc server NAME ...).
 */
#ifndef SHMRPC_TEST_HELPERS_H
#define SHMRPC_TEST_HELPERS_H

#include <stddef.h>
#include <stdint.h>

#include "proc.h"
#include "shmrpc.h"

enum test_method {
  T_ECHO = 1, /* answers the request */
  T_ADD = 2,  /* two little-endian u64 -> their sum */
  T_SLOW = 3, /* u32 ms -> sleeps that long, answers the request */
  T_FAIL = 4, /* application error T_FAIL_CODE with T_FAIL_MESSAGE */
  T_BIG = 5,  /* u32 n -> n bytes of pattern, or SHMRPC_ETOOBIG */
  T_STOP = 6, /* stops the server after answering */
  T_GATE = 7, /* in-process only: blocks until the test opens the gate */
  T_FAILWITH = 8, /* u32 code -> application error code, message "fail
                     <code>" */
  T_COUNT = 9,    /* -> u64: how many T_COUNT calls this server has run */
  T_SYSCALLS = 10 /* -> u64: system calls the server's library has made
                     (the test build's counter) */
};

/* A helper's exit code when killed: SIGKILL on POSIX (128 + 9), the code
 * die_now uses on Windows. */
#define KILLED_EXIT 137
/* The user and group id of `nobody` on Debian, for the cross-user tests. */
#define NOBODY_ID 65534

#define T_FAIL_CODE 42
#define T_FAIL_MESSAGE "it failed on purpose"

/* Deadlines for waiting on helpers: generous, they only stop a hang. */
#define T_READY_MS 10000
#define T_EXIT_MS 20000

/* A gate for T_GATE: `entered` is set when the handler starts, the handler
 * returns once `release` is set. */
typedef struct test_gate {
  test_event *entered;
  test_event *release;
} test_gate;

/* A unique service name for this run: "t<pid>-<tag>-<n>". */
const char *test_service_name(const char *tag);

/* Registers the test methods on server (gate may be NULL). */
void test_register_methods(shmrpc_server *server, test_gate *gate);

/* Packs two u64 for T_ADD; reads a u64. */
void test_put_u64(unsigned char *out, uint64_t value);
uint64_t test_get_u64(const unsigned char *in);
void test_put_u32(unsigned char *out, uint32_t value);
uint32_t test_get_u32(const unsigned char *in);

/* A server running shmrpc_server_run() on a thread of this process. */
typedef struct test_server_thread {
  shmrpc_server *server;
  test_thread *thread;
  int run_rc;
} test_server_thread;

/* Creates the server (asserting success) and starts its loop. */
void test_server_thread_start(test_server_thread *ts, const char *name,
                              size_t capacity, test_gate *gate);
/* The same with options (capacity, lanes, workers...). */
void test_server_thread_start_with(test_server_thread *ts, const char *name,
                                   const shmrpc_server_options *options,
                                   test_gate *gate);
/* Waits (with a deadline) until the server's counter of lane recoveries
 * reaches `count`; returns the value it saw. */
uint64_t test_wait_recoveries(shmrpc_server *server, uint64_t count);
/* Stops the loop, joins it and destroys the server. */
void test_server_thread_stop(test_server_thread *ts);

/* Spawns a helper server process and waits for its "ready" line. */
test_proc *test_spawn_server(const char *name, const char *capacity);
/* The same with more arguments for the server role (NULL-terminated list:
 * "lanes=N", "workers=N", "spin=US", "access=owner|group|everyone",
 * "safe", a fault point). */
test_proc *test_spawn_server_args(const char *name, const char *capacity,
                                  const char *const extra[]);
/* Waits for a helper to exit; asserts the exit code. */
void test_expect_exit(test_proc *proc, int expected_code);

/* After killing a server process: waits (with a deadline) until the kernel
 * has released its liveness lock. The process is reaped before its mapping
 * is torn down if something else briefly holds its address space. */
void test_wait_service_dead(const char *name);

/* One checked T_ADD call; returns the sum. */
uint64_t test_call_add(shmrpc_client *client, uint64_t a, uint64_t b);
/* Reads one line from a helper and asserts it. */
void test_read_expected(test_proc *proc, const char *expected);
/* Stops a helper server through its T_STOP method and waits for its exit. */
void test_stop_server(shmrpc_client *client, test_proc *server);

/* The test build's count of system calls this process's library made. */
uint64_t test_syscalls(void);
/* The CPUs the library counts (it spins only with two or more). */
unsigned test_cpu_count(void);

/* Runs a helper role if argv names one; returns -1 if it does not. */
int test_helper_main(int argc, char **argv);

#endif
