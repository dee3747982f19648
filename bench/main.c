/*
 * shmrpc_bench: blocking round-trip calls over shmrpc against a Unix socket,
 * pipes and raw shared memory, in one run, on this machine.
 *
 *   shmrpc_bench [--quick] [--json] [--sizes 8,4K,64K,1M] [--clients 1,2,4,8]
 *                [--calls N] [--duration-ms N] [--idle-ms N]
 *                [--cold-calls N] [--transports LIST] [--tests LIST]
 *                [--big-buffers] [--server-spin-us N] [--client-spin-us N]
 *
 * Exit code 0 when every run completed with right answers (missed targets
 * included), 1 when a call failed or returned a wrong answer, 2 on a bad
 * command line.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "report.h"

typedef struct bench_config {
  int quick;
  int json;
  const char *json_file; /* also write the JSON lines here */
  size_t sizes[BENCH_MAX_LIST];
  int size_count;
  int clients[BENCH_MAX_LIST];
  int client_count;
  uint64_t calls;   /* 0: a default per size */
  int duration_ms;  /* multi-client run length */
  int idle_ms;      /* idle measurement length */
  int cold_calls;
  int cold_gap_ms;
  char transports[256]; /* comma-separated names to run; "" for all */
  char tests[128];      /* comma-separated tests to run; "" for all */
} bench_config;

/* Every transport, shmrpc first so the others can be compared to it. */
static const bench_transport *const all_transports[] = {
    &bench_transport_shmrpc,    &bench_transport_shm_spin,
    &bench_transport_shm_futex, &bench_transport_unix,
    &bench_transport_pipe,
#ifdef BENCH_HAVE_NNG
    &bench_transport_nng,       &bench_transport_bridge,
#endif
};
#define TRANSPORT_COUNT (sizeof all_transports / sizeof all_transports[0])

static void usage(FILE *out) {
  fprintf(out,
          "usage: shmrpc_bench [options]\n"
          "  --quick            small counts (CI): the whole run in well under "
          "a minute\n"
          "  --json-file PATH   also write the JSON lines to PATH\n"
          "  --json             one JSON object per line instead of the "
          "table\n"
          "  --sizes LIST       message sizes, e.g. 8,4K,64K,1M (default)\n"
          "  --clients LIST     client counts of the multi-client test "
          "(default 1,2,4,8)\n"
          "  --calls N          measured calls per latency run (default: by "
          "size, time-capped)\n"
          "  --duration-ms N    length of each multi-client run (default "
          "2000, quick 500)\n"
          "  --idle-ms N        length of the idle measurement (default "
          "5000, quick 2000)\n"
          "  --cold-calls N     calls of the cold test (default 60, quick 20)\n"
          "  --transports LIST  of shmrpc,shm-spin,shm-futex,unix,pipe"
#ifdef BENCH_HAVE_NNG
          ",nng,bridge"
#endif
          " (default all)\n"
          "  --tests LIST       of latency,cold,multi,idle,hol,threads,async,"
          "pollcold\n"
          "                     (default all)\n"
          "  --big-buffers      enlarge socket and pipe buffers of the "
          "baselines\n"
          "  --server-spin-us N, --client-spin-us N\n"
          "                     spin_us option of the shmrpc server / clients "
          "(default -1:\n"
          "                     the library's default)\n"
          "MB/s counts request + response bytes, 1 MB = 10^6 bytes.\n");
}

/* Parses a size such as 8, 4K, 4KiB, 64k, 1M. */
static int parse_size(const char *text, size_t *out) {
  char *end;
  errno = 0;
  unsigned long long value = strtoull(text, &end, 10);
  if (errno != 0 || end == text) {
    return -1;
  }
  if (*end == 'K' || *end == 'k') {
    value *= 1024u;
    end++;
  } else if (*end == 'M' || *end == 'm') {
    value *= 1024u * 1024u;
    end++;
  }
  if (strcmp(end, "") != 0 && strcmp(end, "B") != 0 && strcmp(end, "iB") != 0) {
    return -1;
  }
  if (value < BENCH_MIN_SIZE || value > 64ull * 1024u * 1024u) {
    return -1;
  }
  *out = (size_t)value;
  return 0;
}

static int parse_count(const char *text, long long min, long long max,
                       long long *out) {
  char *end;
  errno = 0;
  long long value = strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < min || value > max) {
    return -1;
  }
  *out = value;
  return 0;
}

/* Splits a comma-separated list into up to BENCH_MAX_LIST items. */
static int split_list(const char *text, char items[BENCH_MAX_LIST][32]) {
  int count = 0;
  const char *p = text;
  while (*p != '\0') {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    if (len == 0 || len >= 32 || count == BENCH_MAX_LIST) {
      return -1;
    }
    memcpy(items[count], p, len);
    items[count][len] = '\0';
    count++;
    p += len;
    if (*p == ',') {
      p++;
    }
  }
  return count;
}

/* 1 if name is in the comma-separated list (an empty list holds all). */
static int listed(const char *list, const char *name) {
  if (list[0] == '\0') {
    return 1;
  }
  size_t len = strlen(name);
  for (const char *p = list; *p != '\0';) {
    const char *comma = strchr(p, ',');
    size_t item = comma ? (size_t)(comma - p) : strlen(p);
    if (item == len && strncmp(p, name, len) == 0) {
      return 1;
    }
    p += item;
    if (*p == ',') {
      p++;
    }
  }
  return 0;
}

static int parse_args(int argc, char **argv, bench_config *config) {
  char items[BENCH_MAX_LIST][32];
  int durations_set = 0;
  int idle_set = 0;
  int cold_set = 0;
  memset(config, 0, sizeof *config);
  config->sizes[0] = 8;
  config->sizes[1] = 4096;
  config->sizes[2] = 65536;
  config->sizes[3] = 1048576;
  config->size_count = 4;
  config->clients[0] = 1;
  config->clients[1] = 2;
  config->clients[2] = 4;
  config->clients[3] = 8;
  config->client_count = 4;
  config->duration_ms = 2000;
  config->idle_ms = 5000;
  config->cold_calls = 60;
  config->cold_gap_ms = 100;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    const char *value = i + 1 < argc ? argv[i + 1] : NULL;
    long long number;
    if (strcmp(arg, "--quick") == 0) {
      config->quick = 1;
      continue;
    }
    if (strcmp(arg, "--json") == 0) {
      config->json = 1;
      continue;
    }
    if (strcmp(arg, "--json-file") == 0 && value != NULL) {
      config->json_file = value;
      i++;
      continue;
    }
    if (strcmp(arg, "--big-buffers") == 0) {
      bench_big_buffers = 1;
      continue;
    }
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      usage(stdout);
      exit(0);
    }
    if (value == NULL) {
      fprintf(stderr, "shmrpc_bench: unknown option or missing value: %s\n",
              arg);
      return -1;
    }
    i++;
    if (strcmp(arg, "--sizes") == 0) {
      int count = split_list(value, items);
      if (count <= 0) {
        fprintf(stderr, "shmrpc_bench: bad --sizes %s\n", value);
        return -1;
      }
      for (int k = 0; k < count; k++) {
        if (parse_size(items[k], &config->sizes[k]) != 0) {
          fprintf(stderr, "shmrpc_bench: bad size %s (8 B to 64 MiB)\n",
                  items[k]);
          return -1;
        }
      }
      config->size_count = count;
    } else if (strcmp(arg, "--clients") == 0) {
      int count = split_list(value, items);
      if (count <= 0) {
        fprintf(stderr, "shmrpc_bench: bad --clients %s\n", value);
        return -1;
      }
      for (int k = 0; k < count; k++) {
        if (parse_count(items[k], 1, BENCH_MAX_CLIENTS, &number) != 0) {
          fprintf(stderr, "shmrpc_bench: bad client count %s (1 to %d)\n",
                  items[k], BENCH_MAX_CLIENTS);
          return -1;
        }
        config->clients[k] = (int)number;
      }
      config->client_count = count;
    } else if (strcmp(arg, "--calls") == 0) {
      if (parse_count(value, 1, 100000000, &number) != 0) {
        fprintf(stderr, "shmrpc_bench: bad --calls %s\n", value);
        return -1;
      }
      config->calls = (uint64_t)number;
    } else if (strcmp(arg, "--duration-ms") == 0) {
      if (parse_count(value, 10, 3600000, &number) != 0) {
        fprintf(stderr, "shmrpc_bench: bad --duration-ms %s\n", value);
        return -1;
      }
      config->duration_ms = (int)number;
      durations_set = 1;
    } else if (strcmp(arg, "--idle-ms") == 0) {
      if (parse_count(value, 100, 3600000, &number) != 0) {
        fprintf(stderr, "shmrpc_bench: bad --idle-ms %s\n", value);
        return -1;
      }
      config->idle_ms = (int)number;
      idle_set = 1;
    } else if (strcmp(arg, "--cold-calls") == 0) {
      if (parse_count(value, 1, 100000, &number) != 0) {
        fprintf(stderr, "shmrpc_bench: bad --cold-calls %s\n", value);
        return -1;
      }
      config->cold_calls = (int)number;
      cold_set = 1;
    } else if (strcmp(arg, "--transports") == 0) {
      snprintf(config->transports, sizeof config->transports, "%s", value);
      int count = split_list(value, items);
      for (int k = 0; k < count; k++) {
        int known = 0;
        for (size_t t = 0; t < TRANSPORT_COUNT; t++) {
          known |= strcmp(items[k], all_transports[t]->name) == 0;
        }
        if (!known) {
          fprintf(stderr, "shmrpc_bench: unknown transport %s\n", items[k]);
          return -1;
        }
      }
    } else if (strcmp(arg, "--server-spin-us") == 0 ||
               strcmp(arg, "--client-spin-us") == 0) {
      if (parse_count(value, -1, 10000000, &number) != 0) {
        fprintf(stderr, "shmrpc_bench: bad %s %s\n", arg, value);
        return -1;
      }
      if (arg[2] == 's') {
        bench_shmrpc_server_spin_us = (int32_t)number;
      } else {
        bench_shmrpc_client_spin_us = (int32_t)number;
      }
    } else if (strcmp(arg, "--tests") == 0) {
      static const char *const known_tests[] = {
          "latency", "cold", "multi", "idle", "hol", "threads", "async",
          "pollcold"};
      snprintf(config->tests, sizeof config->tests, "%s", value);
      int count = split_list(value, items);
      for (int k = 0; k < count; k++) {
        int known = 0;
        for (size_t t = 0; t < sizeof known_tests / sizeof known_tests[0];
             t++) {
          known |= strcmp(items[k], known_tests[t]) == 0;
        }
        if (!known) {
          fprintf(stderr, "shmrpc_bench: unknown test %s\n", items[k]);
          return -1;
        }
      }
    } else {
      fprintf(stderr, "shmrpc_bench: unknown option %s\n", arg);
      return -1;
    }
  }
  if (config->quick && !durations_set) {
    config->duration_ms = 500;
  }
  if (config->quick && !idle_set) {
    config->idle_ms = 2000;
  }
  if (config->quick && !cold_set) {
    config->cold_calls = 20;
  }
  return 0;
}

/* Default measured calls of a latency run, by size; a time cap ends a slow
 * run early. */
static uint64_t default_calls(const bench_config *config, size_t size) {
  uint64_t calls;
  if (size <= 1024) {
    calls = 200000;
  } else if (size <= 16384) {
    calls = 100000;
  } else if (size <= 262144) {
    calls = 20000;
  } else {
    calls = 2000;
  }
  return config->quick ? calls / 10 : calls;
}

static uint64_t warmup_for(uint64_t calls) {
  uint64_t warmup = calls / 10;
  if (warmup < 10) {
    warmup = 10;
  }
  return warmup > 5000 ? 5000 : warmup;
}

static size_t smallest_size(const bench_config *config) {
  size_t smallest = config->sizes[0];
  for (int i = 1; i < config->size_count; i++) {
    if (config->sizes[i] < smallest) {
      smallest = config->sizes[i];
    }
  }
  return smallest;
}

/* Starts a server, runs the clients of spec against it and stops it. With
 * `announce`, says on stderr what it is about to run. */
static int run_once(const bench_transport *transport, const char *test,
                    const bench_run_spec *spec, size_t max_size, int announce,
                    bench_result *result) {
  bench_server server;
  memset(result, 0, sizeof *result);
  if (announce) {
    fprintf(stderr, "shmrpc_bench: %-7s %-10s %8zu B  %d client%s ...\n", test,
            transport->name, spec->size, spec->clients,
            spec->clients == 1 ? "" : "s");
  }
  if (bench_server_start(transport, max_size, &server) != 0) {
    return -1;
  }
  int rc = bench_clients_run(&server, spec, result);
  if (bench_server_stop(&server) != 0) {
    rc = -1;
  }
  if (rc != 0) {
    bench_error("%s %s %zu B failed", test, transport->name, spec->size);
    return -1;
  }
  result->test = test;
  return 0;
}

/* One transport's share of measure_rounds. */
typedef struct round_tally {
  const bench_transport *transport;
  uint64_t *samples; /* room for the calls asked of every round */
  uint64_t recorded; /* samples so far */
  double elapsed_s;  /* time the recorded calls took, for calls/s */
} round_tally;

/*
 * A one-client test of `transports`, a few seconds each. The speed of a
 * shared virtual machine drifts over seconds (load, where the host runs its
 * CPUs), so measuring the transports one after the other lets a drift land
 * on one side of a ratio only. Instead they take turns: `rounds` rounds,
 * each running every transport for its share of spec->calls (and of the
 * time cap) on a fresh server after a warm-up. Each transport's rounds are
 * summarised together.
 */
static void measure_rounds(bench_report *report, const bench_config *config,
                           const char *test,
                           const bench_transport *const *transports,
                           size_t transport_count, const bench_run_spec *spec,
                           uint64_t rounds) {
  round_tally tally[8];
  size_t count = 0;
  uint64_t per_round = (spec->calls + rounds - 1) / rounds;
  for (size_t t = 0; t < transport_count && count < 8; t++) {
    if (!listed(config->transports, transports[t]->name)) {
      continue;
    }
    memset(&tally[count], 0, sizeof tally[count]);
    tally[count].transport = transports[t];
    tally[count].samples = malloc(per_round * rounds * sizeof(uint64_t));
    if (tally[count].samples == NULL) {
      bench_error("out of memory");
      report->failed = 1;
      goto done;
    }
    count++;
  }
  for (uint64_t r = 0; r < rounds; r++) {
    for (size_t t = 0; t < count; t++) {
      bench_run_spec round = *spec;
      bench_result result;
      if (r * per_round >= spec->calls) {
        break; /* the calls ran out before the rounds */
      }
      round.calls = spec->calls - r * per_round < per_round
                        ? spec->calls - r * per_round
                        : per_round;
      round.time_cap_ms = spec->time_cap_ms / (int64_t)rounds;
      if (spec->time_cap_ms > 0 && round.time_cap_ms == 0) {
        round.time_cap_ms = 1;
      }
      round.samples_out = tally[t].samples + tally[t].recorded;
      if (run_once(tally[t].transport, test, &round, spec->size, r == 0,
                   &result) != 0) {
        report->failed = 1;
        goto done;
      }
      tally[t].recorded += result.calls;
      if (result.calls_per_s > 0) {
        tally[t].elapsed_s += (double)result.calls / result.calls_per_s;
      }
    }
  }
  for (size_t t = 0; t < count; t++) {
    bench_result result;
    memset(&result, 0, sizeof result);
    bench_latencies(&result, tally[t].samples, tally[t].recorded);
    result.test = test;
    result.transport = tally[t].transport->name;
    result.size = spec->size;
    result.clients = 1;
    result.calls = tally[t].recorded;
    result.min_client_calls = tally[t].recorded;
    result.max_client_calls = tally[t].recorded;
    if (tally[t].elapsed_s > 0) {
      result.calls_per_s = (double)tally[t].recorded / tally[t].elapsed_s;
      result.mb_per_s = result.calls_per_s * 2.0 * (double)spec->size / 1e6;
    }
    bench_report_add(report, &result);
  }
done:
  for (size_t t = 0; t < count; t++) {
    free(tally[t].samples);
  }
}

/* Rounds of the latency test: enough that a drift is shared, few enough
 * that server start-up stays a small part of the run. */
#define LATENCY_ROUNDS 8
/* Calls per round of the cold test: each takes cold_gap_ms. */
#define COLD_ROUND_CALLS 5

/* Rounds of the multi-client test; each round runs every client count for
 * duration_ms / MULTI_ROUNDS. */
#define MULTI_ROUNDS 4

/*
 * The multi-client test of shmrpc. As in measure_rounds, the client counts
 * take turns: MULTI_ROUNDS rounds, each running every count on a fresh
 * server for its share of the duration, so that a drift of the machine's
 * speed does not land on one count alone (measured one after the other, 8
 * clients once came out at 0.28x of one client, and at 1.41x in the next
 * run). A count's rounds add up: its calls, its time (for calls/s), and
 * each round's fewest and most calls of one client, so that a client
 * starved in one round still shows. Of the latencies it reports the median
 * of the rounds' p50 and the largest of their p99, p99.9 and max.
 */
static void measure_multi(bench_report *report, const bench_config *config,
                          size_t size) {
  bench_result total[BENCH_MAX_LIST];
  uint64_t p50[BENCH_MAX_LIST][MULTI_ROUNDS];
  double elapsed_s[BENCH_MAX_LIST];
  int duration_ms = config->duration_ms / MULTI_ROUNDS;
  if (duration_ms < 1) {
    duration_ms = 1;
  }
  memset(total, 0, sizeof total);
  memset(elapsed_s, 0, sizeof elapsed_s);
  for (int r = 0; r < MULTI_ROUNDS; r++) {
    for (int c = 0; c < config->client_count; c++) {
      bench_run_spec spec;
      bench_result result;
      memset(&spec, 0, sizeof spec);
      spec.mode = BENCH_MODE_DURATION;
      spec.size = size;
      spec.clients = config->clients[c];
      spec.warmup = 100;
      spec.duration_ms = duration_ms;
      if (run_once(&bench_transport_shmrpc, "multi", &spec, size, r == 0,
                   &result) != 0) {
        report->failed = 1;
        return;
      }
      double round_share =
          result.calls > 0 ? (double)result.min_client_calls *
                                 (double)spec.clients / (double)result.calls
                           : 0.0;
      if (r == 0 || round_share < total[c].worst_round_share) {
        total[c].worst_round_share = round_share;
      }
      total[c].calls += result.calls;
      total[c].min_client_calls += result.min_client_calls;
      total[c].max_client_calls += result.max_client_calls;
      if (result.calls_per_s > 0) {
        elapsed_s[c] += (double)result.calls / result.calls_per_s;
      }
      p50[c][r] = result.p50_ns;
      if (result.p99_ns > total[c].p99_ns) {
        total[c].p99_ns = result.p99_ns;
      }
      if (result.p999_ns > total[c].p999_ns) {
        total[c].p999_ns = result.p999_ns;
      }
      if (result.max_ns > total[c].max_ns) {
        total[c].max_ns = result.max_ns;
      }
    }
  }
  for (int c = 0; c < config->client_count; c++) {
    bench_sort(p50[c], MULTI_ROUNDS);
    total[c].p50_ns = bench_quantile(p50[c], MULTI_ROUNDS, 0.50);
    total[c].test = "multi";
    total[c].transport = bench_transport_shmrpc.name;
    total[c].size = size;
    total[c].clients = config->clients[c];
    if (elapsed_s[c] > 0) {
      total[c].calls_per_s = (double)total[c].calls / elapsed_s[c];
      total[c].mb_per_s = total[c].calls_per_s * 2.0 * (double)size / 1e6;
    }
    bench_report_add(report, &total[c]);
  }
}

/* CPU use of a shmrpc server that has served a few calls and then has no
 * callers. */
static void measure_idle(bench_report *report, const bench_config *config) {
  bench_server server;
  bench_result warm;
  bench_run_spec spec;
  memset(&spec, 0, sizeof spec);
  spec.mode = BENCH_MODE_CALLS;
  spec.size = smallest_size(config);
  spec.clients = 1;
  spec.calls = 100;
  spec.warmup = 10;
  fprintf(stderr, "shmrpc_bench: idle    shmrpc     %d ms ...\n",
          config->idle_ms);
  if (bench_server_start(&bench_transport_shmrpc, spec.size, &server) != 0) {
    report->failed = 1;
    return;
  }
  int rc = bench_clients_run(&server, &spec, &warm);
  uint64_t cpu_start = 0;
  uint64_t cpu_end = 0;
  uint64_t start = 0;
  uint64_t end = 0;
  if (rc == 0) {
    /* Let a spin window after the last call run out first. */
    bench_sleep_ms(100);
    start = bench_now_ns();
    rc = bench_process_cpu_ns(server.pid, &cpu_start);
    bench_sleep_ms(config->idle_ms);
    if (rc == 0) {
      rc = bench_process_cpu_ns(server.pid, &cpu_end);
    }
    end = bench_now_ns();
    if (rc != 0) {
      bench_error("cannot read the CPU time of process %ld", (long)server.pid);
    }
  }
  if (bench_server_stop(&server) != 0) {
    rc = -1;
  }
  if (rc != 0) {
    report->failed = 1;
    return;
  }
  report->idle_measured = 1;
  report->idle_seconds = (double)(end - start) / 1e9;
  report->idle_cpu_ns = cpu_end - cpu_start;
}

int main(int argc, char **argv) {
  static bench_report report;
  bench_config config;
  if (parse_args(argc, argv, &config) != 0) {
    usage(stderr);
    return 2;
  }
  /* A peer that dies must show up as an error from write, not kill us. */
  signal(SIGPIPE, SIG_IGN);
  report.cold_gap_ms = config.cold_gap_ms;
  report.duration_ms = config.duration_ms;
  report.big_buffers = bench_big_buffers;
  report.quick = config.quick;
  report.load_start = bench_load_average();
  size_t small = smallest_size(&config);
  for (size_t t = 0; t < TRANSPORT_COUNT; t++) {
    if (listed(config.transports, all_transports[t]->name) &&
        report.transport_count < 8) {
      report.transports[report.transport_count++] = all_transports[t];
    }
  }

  if (listed(config.tests, "latency")) {
    for (int s = 0; s < config.size_count; s++) {
      bench_run_spec spec;
      memset(&spec, 0, sizeof spec);
      spec.mode = BENCH_MODE_CALLS;
      spec.size = config.sizes[s];
      spec.clients = 1;
      spec.calls =
          config.calls ? config.calls : default_calls(&config, spec.size);
      spec.warmup = warmup_for(spec.calls / LATENCY_ROUNDS);
      spec.time_cap_ms = config.calls ? 0 : (config.quick ? 400 : 2500);
      measure_rounds(&report, &config, "latency", all_transports,
                     TRANSPORT_COUNT, &spec, LATENCY_ROUNDS);
    }
  }

  if (listed(config.tests, "cold")) {
    static const bench_transport *const cold[] = {&bench_transport_shmrpc,
                                                  &bench_transport_shm_futex};
    bench_run_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.mode = BENCH_MODE_COLD;
    spec.size = small;
    spec.clients = 1;
    spec.calls = (uint64_t)config.cold_calls;
    spec.warmup = 100;
    spec.gap_ms = config.cold_gap_ms;
    measure_rounds(&report, &config, "cold", cold, 2, &spec,
                   (spec.calls + COLD_ROUND_CALLS - 1) / COLD_ROUND_CALLS);
  }

  if (listed(config.tests, "multi") &&
      listed(config.transports, bench_transport_shmrpc.name)) {
    measure_multi(&report, &config, small);
  }

  if (listed(config.transports, bench_transport_shmrpc.name)) {
    if (listed(config.tests, "hol")) {
      bench_measure_hol(&report, config.quick);
    }
    if (listed(config.tests, "threads")) {
      bench_measure_threads(&report, config.quick);
    }
    if (listed(config.tests, "async")) {
      bench_measure_async(&report, config.quick);
    }
    if (listed(config.tests, "pollcold")) {
      bench_measure_poll_cold(&report, config.cold_calls, config.cold_gap_ms);
    }
  }

  if (listed(config.tests, "idle") &&
      listed(config.transports, bench_transport_shmrpc.name)) {
    measure_idle(&report, &config);
  }

  if (config.json) {
    bench_report_json(&report, stdout);
  } else {
    bench_report_table(&report, stdout);
  }
  if (config.json_file != NULL) {
    FILE *out = fopen(config.json_file, "w");
    if (out == NULL) {
      fprintf(stderr, "shmrpc_bench: cannot write %s\n", config.json_file);
      return 1;
    }
    bench_report_json(&report, out);
    fclose(out);
  }
  fflush(stdout);
  return report.failed ? 1 : 0;
}
