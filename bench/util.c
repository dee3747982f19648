/* Small helpers of the benchmark: clock, sleep, errors, quantiles. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

uint64_t bench_now_ns(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

void bench_sleep_ms(int64_t ms) {
  struct timespec left;
  left.tv_sec = (time_t)(ms / 1000);
  left.tv_nsec = (long)(ms % 1000) * 1000000L;
  while (nanosleep(&left, &left) != 0 && errno == EINTR) {
  }
}

void bench_sleep_gap(int gap_ms, uint64_t *seed) {
  int64_t spread = gap_ms / 3;
  *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
  if (spread > 0) {
    bench_sleep_ms(gap_ms - spread +
                   (int64_t)((*seed >> 33) % (uint64_t)(2 * spread + 1)));
  } else {
    bench_sleep_ms(gap_ms);
  }
}

void bench_signal_ready(int ready_fd) {
  char ready = 'R';
  while (write(ready_fd, &ready, 1) < 0 && errno == EINTR) {
  }
}

void bench_error(const char *format, ...) {
  char line[512];
  va_list args;
  va_start(args, format);
  vsnprintf(line, sizeof line, format, args);
  va_end(args);
  /* One write, so that lines of concurrent processes do not interleave. */
  fprintf(stderr, "shmrpc_bench[%ld]: %s\n", (long)getpid(), line);
  fflush(stderr);
}

static int compare_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a;
  uint64_t y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

void bench_sort(uint64_t *samples, size_t n) {
  qsort(samples, n, sizeof *samples, compare_u64);
}

uint64_t bench_quantile(const uint64_t *sorted, size_t n, double q) {
  if (n == 0) {
    return 0;
  }
  /* Nearest rank: the smallest sample with at least q*n samples at or
   * below it. */
  double rank = q * (double)n;
  size_t index = (size_t)rank;
  if ((double)index < rank) {
    index++;
  }
  if (index == 0) {
    index = 1;
  }
  if (index > n) {
    index = n;
  }
  return sorted[index - 1];
}

void bench_latencies(bench_result *out, uint64_t *samples, size_t n) {
  bench_sort(samples, n);
  out->p50_ns = bench_quantile(samples, n, 0.50);
  out->p99_ns = bench_quantile(samples, n, 0.99);
  out->p999_ns = bench_quantile(samples, n, 0.999);
  out->max_ns = n ? samples[n - 1] : 0;
}
