/* The Win32 backend's clock, sleep, CPU count, identity, randomness and
 * threads. */
#include "win32.h"

#include <ntsecapi.h>

#include <stdlib.h>

uint64_t shmrpc__os_now_ns(void) {
  static volatile LONGLONG frequency; /* counts per second, set once */
  LARGE_INTEGER counter, query;
  LONGLONG per_second = frequency;
  uint64_t ticks;

  if (per_second == 0) {
    QueryPerformanceFrequency(&query);
    per_second = query.QuadPart;
    frequency = per_second;
  }
  QueryPerformanceCounter(&counter);
  ticks = (uint64_t)counter.QuadPart;
  /* Split to avoid overflowing ticks * 1e9. */
  return ticks / (uint64_t)per_second * UINT64_C(1000000000) +
         ticks % (uint64_t)per_second * UINT64_C(1000000000) /
             (uint64_t)per_second;
}

void shmrpc__os_sleep_ms(int32_t ms) { Sleep(ms < 0 ? 0 : (DWORD)ms); }

SHMRPC__HOT void shmrpc__os_yield(void) { (void)SwitchToThread(); }

unsigned shmrpc__os_cpu_count(void) {
  DWORD_PTR process_mask, system_mask;
  unsigned count = 0;

  if (GetProcessAffinityMask(GetCurrentProcess(), &process_mask,
                             &system_mask)) {
    for (; process_mask != 0; process_mask &= process_mask - 1)
      count++;
  }
  if (count == 0)
    count = (unsigned)GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
  return count == 0 ? 1 : count;
}

uint32_t shmrpc__os_pid(void) { return (uint32_t)GetCurrentProcessId(); }

uint64_t shmrpc__os_random64(void) {
  uint64_t value = 0;
  LARGE_INTEGER counter;

  if (RtlGenRandom(&value, sizeof value) && value != 0)
    return value;
  /* Not expected to happen; still differ from one server to the next. */
  QueryPerformanceCounter(&counter);
  value = (uint64_t)counter.QuadPart ^ ((uint64_t)GetCurrentProcessId() << 32) ^
          (uint64_t)(uintptr_t)&value;
  return value * UINT64_C(0x9E3779B97F4A7C15) | 1;
}

struct shmrpc__os_thread {
  HANDLE thread;
  void (*fn)(void *arg);
  void *arg;
};

static DWORD WINAPI thread_main(void *arg) {
  shmrpc__os_thread *thread = arg;
  thread->fn(thread->arg);
  return 0;
}

int shmrpc__os_thread_start(shmrpc__os_thread **out, void (*fn)(void *arg),
                            void *arg) {
  shmrpc__os_thread *thread = malloc(sizeof *thread);
  if (thread == NULL)
    return SHMRPC_ENOMEM;
  thread->fn = fn;
  thread->arg = arg;
  thread->thread = CreateThread(NULL, 0, thread_main, thread, 0, NULL);
  if (thread->thread == NULL) {
    free(thread);
    return SHMRPC_EOS;
  }
  *out = thread;
  return 0;
}

void shmrpc__os_thread_join(shmrpc__os_thread *thread) {
  WaitForSingleObject(thread->thread, INFINITE);
  CloseHandle(thread->thread);
  free(thread);
}

void shmrpc__os_die_now(void) {
  /* 137 is what a shell reports for SIGKILL, so tests read the same exit
   * code on both platforms. TerminateProcess on oneself does not return. */
  TerminateProcess(GetCurrentProcess(), 137);
  for (;;)
    Sleep(INFINITE);
}
