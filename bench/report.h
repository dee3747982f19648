/*
 * What one benchmark run found, and how it is printed: a table for people,
 * one JSON object per line for machines, and the targets with whether each
 * held in this run.
 */
#ifndef SHMRPC_BENCH_REPORT_H
#define SHMRPC_BENCH_REPORT_H

#include <stdio.h>

#include "bench.h"

#define BENCH_MAX_RESULTS 256

typedef struct bench_report {
  bench_result results[BENCH_MAX_RESULTS];
  int result_count;
  /* Idle cost of a shmrpc server with no callers. */
  int idle_measured;
  double idle_seconds;
  uint64_t idle_cpu_ns;
  /* The transports measured, for their descriptions. */
  const bench_transport *transports[8];
  int transport_count;
  /* Settings worth printing next to the numbers. */
  int cold_gap_ms;
  int duration_ms;
  int big_buffers;
  double load_start; /* 1-minute load average before the first run */
  int quick;
  /* Set when any run failed: the exit code is then non-zero. */
  int failed;
} bench_report;

/* The 1-minute load average, -1 if unknown. */
double bench_load_average(void);

/* Adds a result (ignored when the report is full). */
void bench_report_add(bench_report *report, const bench_result *result);

/* The human-readable report, targets included. */
void bench_report_table(const bench_report *report, FILE *out);

/* One JSON object per line: results, the idle cost, then the targets. */
void bench_report_json(const bench_report *report, FILE *out);

#endif /* SHMRPC_BENCH_REPORT_H */
