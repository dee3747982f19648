/*
 * Test support: re-running this test binary as a helper process, and
 * threads, with one interface on POSIX (proc_posix.c) and Windows
 * (proc_win32.c). Helpers are this same executable started with a role in
 * argv[1] (the libuv way); their stdout is a pipe the test reads lines from,
 * so a test waits for a real "ready" line, never for a sleep.
 */
#ifndef SHMRPC_TEST_PROC_H
#define SHMRPC_TEST_PROC_H

#include <stddef.h>
#include <stdint.h>

typedef struct test_proc test_proc;

/* Remembers the path of this executable; main() calls it with argv[0]. */
void test_proc_init(const char *argv0);

/* Starts this executable again with the NULL-terminated args (args[0] is the
 * role, e.g. "server"). The child's stdout is readable with
 * test_proc_read_line; its stderr goes to ours. Returns 0 or -1. */
int test_proc_spawn(test_proc **out, const char *const args[]);

/* Called first thing in a helper process: ties its life to the test's, so
 * a failed test leaves no helper running. */
void test_proc_helper_started(void);

/* Reads one line (without its newline) from the child's stdout into buf,
 * waiting up to timeout_ms. Returns the line's length, or -1 on timeout,
 * end of file or error. */
int test_proc_read_line(test_proc *proc, char *buf, size_t cap,
                        int32_t timeout_ms);

/* Waits up to timeout_ms for the child to exit. Returns 0 and sets
 * *exit_code (a signal death on POSIX gives 128 + signal number), or -1 on
 * timeout. */
int test_proc_wait(test_proc *proc, int32_t timeout_ms, int *exit_code);

/* Kills the child at once (SIGKILL / TerminateProcess) and reaps it. */
void test_proc_kill(test_proc *proc);

/* Kills the child if it still runs, and frees everything. NULL is fine. */
void test_proc_free(test_proc *proc);

/* This process's id, used to make service names unique per test run. */
uint32_t test_proc_self_pid(void);

/* Monotonic milliseconds, for measuring how long a call took. */
int64_t test_now_ms(void);

typedef struct test_thread test_thread;
int test_thread_start(test_thread **out, void (*fn)(void *), void *arg);
void test_thread_join(test_thread *thread);

/* A one-shot, manual-reset event between threads of this process. */
typedef struct test_event test_event;
test_event *test_event_new(void);
void test_event_set(test_event *event);
/* Returns 0 once set, -1 if timeout_ms passed first. */
int test_event_wait(test_event *event, int32_t timeout_ms);
void test_event_free(test_event *event);

/* 1 if any named object of service `name` still exists (on Linux, its file
 * in /dev/shm), else 0. */
int test_service_objects_exist(const char *name);

/* Starts a child that inherits all it can and sleeps (up to 20 s), like a
 * helper a server starts, and prints "child PID". POSIX: fork() without
 * exec, so the child keeps every descriptor but stdout. Windows:
 * CreateProcessW with bInheritHandles, so it keeps every inheritable
 * handle. Returns 0, or -1 if it could not. */
int test_proc_fork_sleeper(void);
/* Whether process `pid` still runs; kills it. */
int test_pid_alive(int pid);
void test_pid_kill(int pid);

/* Sleeps: only to make a handler slow on purpose, never to synchronise. */
void test_sleep_ms(int32_t ms);

#endif /* SHMRPC_TEST_PROC_H */
