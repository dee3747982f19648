/* The POSIX backend's clock, sleep, CPU count, identity, randomness and
 * threads. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "posix.h"

SHMRPC__HOT uint64_t shmrpc__os_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void shmrpc__os_sleep_ms(int32_t ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  POSIX_COUNT_SYSCALL();
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

SHMRPC__HOT void shmrpc__os_yield(void) {
  POSIX_COUNT_SYSCALL();
  (void)sched_yield();
}

unsigned shmrpc__os_cpu_count(void) {
  cpu_set_t set;
  long n;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int count = CPU_COUNT(&set);
    if (count > 0)
      return (unsigned)count;
  }
  n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (unsigned)n : 1u;
}

uint32_t shmrpc__os_pid(void) { return (uint32_t)getpid(); }

uint64_t shmrpc__os_random64(void) {
  uint64_t value = 0;
  if (getrandom(&value, sizeof(value), GRND_NONBLOCK) !=
      (ssize_t)sizeof(value))
    value = shmrpc__os_now_ns() ^ ((uint64_t)getpid() << 32) ^
            (uint64_t)(uintptr_t)&value;
  return value;
}

struct shmrpc__os_thread {
  pthread_t thread;
  void (*fn)(void *arg);
  void *arg;
};

static void *thread_main(void *arg) {
  shmrpc__os_thread *thread = arg;
  thread->fn(thread->arg);
  return NULL;
}

int shmrpc__os_thread_start(shmrpc__os_thread **out, void (*fn)(void *arg),
                            void *arg) {
  shmrpc__os_thread *thread = malloc(sizeof(*thread));
  int err;
  if (thread == NULL)
    return SHMRPC_ENOMEM;
  thread->fn = fn;
  thread->arg = arg;
  err = pthread_create(&thread->thread, NULL, thread_main, thread);
  if (err != 0) {
    free(thread);
    return err == EAGAIN ? SHMRPC_ENOMEM : SHMRPC_EOS;
  }
  *out = thread;
  return 0;
}

void shmrpc__os_thread_join(shmrpc__os_thread *thread) {
  pthread_join(thread->thread, NULL);
  free(thread);
}

void shmrpc__os_die_now(void) {
  kill(getpid(), SIGKILL);
  _exit(137);
}
