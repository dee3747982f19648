/* The tool's monotonic clock: the only platform code it has, because the
 * public API keeps its own clock private. */
#ifndef _WIN32
#define _POSIX_C_SOURCE 200809L
#endif

#include "tool.h"

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>

uint64_t tool_now_ns(void) {
  static LONGLONG per_second; /* counts per second, read once */
  LARGE_INTEGER counter;
  uint64_t ticks;
  if (per_second == 0) {
    LARGE_INTEGER frequency;
    QueryPerformanceFrequency(&frequency);
    per_second = frequency.QuadPart;
  }
  QueryPerformanceCounter(&counter);
  ticks = (uint64_t)counter.QuadPart;
  /* Split so that ticks * 1e9 cannot overflow. */
  return ticks / (uint64_t)per_second * UINT64_C(1000000000) +
         ticks % (uint64_t)per_second * UINT64_C(1000000000) /
             (uint64_t)per_second;
}

#else
#include <time.h>

uint64_t tool_now_ns(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (uint64_t)now.tv_sec * UINT64_C(1000000000) + (uint64_t)now.tv_nsec;
}
#endif
