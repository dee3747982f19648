/* Printing the report: the tables, the JSON lines and the targets. */
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "report.h"
#include "shmrpc.h"

double bench_load_average(void) {
  double load = -1;
  FILE *loadavg = fopen("/proc/loadavg", "r");
  if (loadavg != NULL) {
    if (fscanf(loadavg, "%lf", &load) != 1) {
      load = -1;
    }
    fclose(loadavg);
  }
  return load;
}

void bench_report_add(bench_report *report, const bench_result *result) {
  if (report->result_count < BENCH_MAX_RESULTS) {
    report->results[report->result_count++] = *result;
  }
}

static const bench_result *find(const bench_report *report, const char *test,
                                const char *transport, size_t size,
                                int clients) {
  for (int i = 0; i < report->result_count; i++) {
    const bench_result *r = &report->results[i];
    if (strcmp(r->test, test) == 0 && strcmp(r->transport, transport) == 0 &&
        (size == 0 || r->size == size) && (clients == 0 || r->clients == clients)) {
      return r;
    }
  }
  return NULL;
}

/* The smallest size measured by a test, 0 if none. */
static size_t smallest_size(const bench_report *report, const char *test) {
  size_t smallest = 0;
  for (int i = 0; i < report->result_count; i++) {
    const bench_result *r = &report->results[i];
    if (strcmp(r->test, test) == 0 && (smallest == 0 || r->size < smallest)) {
      smallest = r->size;
    }
  }
  return smallest;
}

static const char *format_ns(uint64_t ns, char *text, size_t cap) {
  if (ns < 10000) {
    snprintf(text, cap, "%.2fus", (double)ns / 1e3);
  } else if (ns < 1000000) {
    snprintf(text, cap, "%.1fus", (double)ns / 1e3);
  } else {
    snprintf(text, cap, "%.2fms", (double)ns / 1e6);
  }
  return text;
}

static const char *format_size(size_t size, char *text, size_t cap) {
  if (size >= 1024u * 1024u && size % (1024u * 1024u) == 0) {
    snprintf(text, cap, "%zu MiB", size / (1024u * 1024u));
  } else if (size >= 1024u && size % 1024u == 0) {
    snprintf(text, cap, "%zu KiB", size / 1024u);
  } else {
    snprintf(text, cap, "%zu B", size);
  }
  return text;
}

/* ---- Targets ----------------------------------------------------------- */

typedef enum target_status { TARGET_SKIPPED, TARGET_HELD, TARGET_MISSED } target_status;

typedef struct bench_target {
  const char *name;      /* machine name */
  char text[200];        /* what was compared, with the numbers */
  double value;          /* the measured ratio or percentage */
  double limit;          /* what it had to be */
  const char *relation;  /* "<=", ">=", "<" */
  target_status status;
} bench_target;

#define BENCH_TARGET_COUNT 13

static void judge(bench_target *target, double value, double limit,
                  const char *relation) {
  target->value = value;
  target->limit = limit;
  target->relation = relation;
  int held;
  if (strcmp(relation, "<=") == 0) {
    held = value <= limit;
  } else if (strcmp(relation, ">=") == 0) {
    held = value >= limit;
  } else {
    held = value < limit;
  }
  target->status = held ? TARGET_HELD : TARGET_MISSED;
}

/* A target that x's p50 is at most limit times base's: "what: x_label X
 * <= LIMITx base_label B". Left skipped if either was not measured. */
static void p50_target(bench_target *target, const char *name,
                       const char *what, const bench_result *x,
                       const char *x_label, const bench_result *base,
                       const char *base_label, double limit) {
  char a[32];
  char b[32];
  target->name = name;
  snprintf(target->text, sizeof target->text, "%s: %s <= %.1fx %s", what,
           x_label, limit, base_label);
  if (x == NULL || base == NULL || base->p50_ns == 0) {
    return;
  }
  judge(target, (double)x->p50_ns / (double)base->p50_ns, limit, "<=");
  snprintf(target->text, sizeof target->text, "%s: %s %s <= %.1fx %s %s", what,
           x_label, format_ns(x->p50_ns, a, sizeof a), limit, base_label,
           format_ns(base->p50_ns, b, sizeof b));
}

static void evaluate_targets(const bench_report *report,
                             bench_target targets[BENCH_TARGET_COUNT]) {
  char a[32];
  char b[32];
  memset(targets, 0, sizeof(bench_target) * BENCH_TARGET_COUNT);
  for (int i = 0; i < BENCH_TARGET_COUNT; i++) {
    targets[i].status = TARGET_SKIPPED;
    targets[i].relation = "";
  }

  const bench_result *rpc = find(report, "latency", "shmrpc", 8, 1);
  const bench_result *spin = find(report, "latency", "shm-spin", 8, 1);
  const bench_result *sock = find(report, "latency", "unix", 8, 1);
  p50_target(&targets[0], "p50_8B_vs_shm_spin", "8 B p50", rpc, "shmrpc",
             spin, "shm-spin", 1.5);
  targets[1].name = "p50_8B_speedup_vs_unix";
  snprintf(targets[1].text, sizeof targets[1].text,
           "8 B p50: shmrpc >= 20x faster than unix socket");
  if (rpc != NULL && sock != NULL && rpc->p50_ns > 0) {
    judge(&targets[1], (double)sock->p50_ns / (double)rpc->p50_ns, 20.0, ">=");
    snprintf(targets[1].text, sizeof targets[1].text,
             "8 B p50: unix %s / shmrpc %s >= 20", format_ns(sock->p50_ns, a, sizeof a),
             format_ns(rpc->p50_ns, b, sizeof b));
  }

  size_t cold_size = smallest_size(report, "cold");
  const bench_result *cold_rpc = find(report, "cold", "shmrpc", cold_size, 1);
  const bench_result *cold_futex = find(report, "cold", "shm-futex", cold_size, 1);
  p50_target(&targets[2], "cold_p50_vs_shm_futex", "cold p50", cold_rpc,
             "shmrpc", cold_futex, "shm-futex", 1.2);

  const size_t mib = 1024u * 1024u;
  const bench_result *big_rpc = find(report, "latency", "shmrpc", mib, 1);
  const bench_result *big_sock = find(report, "latency", "unix", mib, 1);
  targets[3].name = "mbps_1MiB_vs_unix";
  snprintf(targets[3].text, sizeof targets[3].text,
           "1 MiB MB/s: shmrpc >= 2x unix socket");
  if (big_rpc != NULL && big_sock != NULL && big_sock->mb_per_s > 0) {
    judge(&targets[3], big_rpc->mb_per_s / big_sock->mb_per_s, 2.0, ">=");
    snprintf(targets[3].text, sizeof targets[3].text,
             "1 MiB MB/s: shmrpc %.0f >= 2x unix %.0f", big_rpc->mb_per_s,
             big_sock->mb_per_s);
  }

  targets[4].name = "idle_cpu_percent";
  snprintf(targets[4].text, sizeof targets[4].text,
           "idle server: < 1%% of one core");
  if (report->idle_measured && report->idle_seconds > 0) {
    double percent =
        (double)report->idle_cpu_ns / 1e9 / report->idle_seconds * 100.0;
    judge(&targets[4], percent, 1.0, "<");
    snprintf(targets[4].text, sizeof targets[4].text,
             "idle server: %.3f%% of one core < 1%%", percent);
  }

  size_t multi_size = smallest_size(report, "multi");
  const bench_result *one = find(report, "multi", "shmrpc", multi_size, 1);
  const bench_result *eight = find(report, "multi", "shmrpc", multi_size, 8);
  targets[5].name = "multi_8_vs_1_calls_per_s";
  snprintf(targets[5].text, sizeof targets[5].text,
           "8 clients: aggregate calls/s >= 1x 1 client");
  targets[6].name = "multi_8_fewest_vs_average";
  snprintf(targets[6].text, sizeof targets[6].text,
           "8 clients: in every round, the fewest calls of one client >= 1/2 "
           "of the round's average");
  if (one != NULL && eight != NULL && one->calls_per_s > 0) {
    judge(&targets[5], eight->calls_per_s / one->calls_per_s, 1.0, ">=");
    snprintf(targets[5].text, sizeof targets[5].text,
             "8 clients: aggregate %.0f calls/s >= 1x 1 client %.0f",
             eight->calls_per_s, one->calls_per_s);
  }
  if (eight != NULL && eight->calls > 0) {
    judge(&targets[6], eight->worst_round_share, 0.5, ">=");
    snprintf(targets[6].text, sizeof targets[6].text,
             "8 clients: worst round's fewest / average >= 1/2 (longest "
             "call %s)",
             format_ns(eight->max_ns, a, sizeof a));
  }

  /* Head-of-line, threads, the waitable. */
  const bench_result *idle = find(report, "hol", "idle", 0, 0);
  const bench_result *beside = find(report, "hol", "beside-1s", 0, 0);
  p50_target(&targets[9], "hol_p50_vs_idle", "8 B p50", beside,
             "beside a 1 s call", idle, "idle service", 2.0);
  const bench_result *thread1 = find(report, "threads", "1-thread", 0, 0);
  static const char *const many[] = {"2-threads", "4-threads"};
  for (int i = 0; i < 2; i++) {
    const bench_result *threads = find(report, "threads", many[i], 0, 0);
    bench_target *target = &targets[10 + i];
    target->name = i == 0 ? "threads_2_vs_1" : "threads_4_vs_1";
    snprintf(target->text, sizeof target->text,
             "%d threads on one handle: calls/s >= 1x 1 thread", 2 << i);
    if (thread1 != NULL && threads != NULL && thread1->calls_per_s > 0) {
      judge(target, threads->calls_per_s / thread1->calls_per_s, 1.0, ">=");
      snprintf(target->text, sizeof target->text,
               "%d threads on one handle: %.0f calls/s >= 1x 1 thread %.0f",
               2 << i, threads->calls_per_s, thread1->calls_per_s);
    }
  }
  const bench_result *cold_block = find(report, "pollcold", "blocking", 0, 0);
  const bench_result *cold_poll = find(report, "pollcold", "poll", 0, 0);
  p50_target(&targets[12], "pollcold_p50_vs_blocking", "cold p50", cold_poll,
             "waited in poll()", cold_block, "blocking call", 1.2);

  /* The bridge (import, nng, export) against nng req/rep alone. */
  static const struct {
    const char *name;
    size_t size;
    const char *label;
  } bridged[] = {{"bridge_8B_vs_nng", 8, "8 B"},
                 {"bridge_64KiB_vs_nng", 65536, "64 KiB"}};
  for (int i = 0; i < 2; i++) {
    bench_target *target = &targets[7 + i];
    const bench_result *bridge =
        find(report, "latency", "bridge", bridged[i].size, 1);
    const bench_result *nng = find(report, "latency", "nng", bridged[i].size, 1);
    char what[32];
    snprintf(what, sizeof what, "%s p50", bridged[i].label);
    p50_target(target, bridged[i].name, what, bridge, "bridge", nng,
               "nng req/rep", 1.5);
  }
}

static const char *status_word(target_status status) {
  switch (status) {
  case TARGET_HELD:
    return "HELD";
  case TARGET_MISSED:
    return "MISSED";
  case TARGET_SKIPPED:
    break;
  }
  return "SKIPPED";
}

/* ---- Table ------------------------------------------------------------- */

static void print_latency(const bench_report *report, FILE *out) {
  char size_text[24];
  char p50[24];
  char p99[24];
  char p999[24];
  int printed_header = 0;
  for (int i = 0; i < report->result_count; i++) {
    const bench_result *r = &report->results[i];
    if (strcmp(r->test, "latency") != 0) {
      continue;
    }
    if (!printed_header) {
      fprintf(out,
              "\nLatency: 1 client, back-to-back calls, request size = "
              "response size\n"
              "ratio columns: shmrpc / this transport (p50: < 1 means shmrpc "
              "is faster; MB/s: > 1 means shmrpc moves more)\n");
      fprintf(out, "%-8s %-10s %8s %9s %9s %9s %10s %9s %12s %12s\n", "size",
              "transport", "calls", "p50", "p99", "p99.9", "calls/s", "MB/s",
              "shmrpc/p50", "shmrpc/MB/s");
      printed_header = 1;
    }
    const bench_result *rpc = find(report, "latency", "shmrpc", r->size, 1);
    char ratio_p50[24] = "-";
    char ratio_mbps[24] = "-";
    if (rpc != NULL && rpc != r && r->p50_ns > 0 && r->mb_per_s > 0) {
      snprintf(ratio_p50, sizeof ratio_p50, "%.3fx",
               (double)rpc->p50_ns / (double)r->p50_ns);
      snprintf(ratio_mbps, sizeof ratio_mbps, "%.2fx",
               rpc->mb_per_s / r->mb_per_s);
    }
    fprintf(out, "%-8s %-10s %8llu %9s %9s %9s %10.0f %9.1f %12s %12s\n",
            format_size(r->size, size_text, sizeof size_text), r->transport,
            (unsigned long long)r->calls, format_ns(r->p50_ns, p50, sizeof p50),
            format_ns(r->p99_ns, p99, sizeof p99),
            format_ns(r->p999_ns, p999, sizeof p999), r->calls_per_s,
            r->mb_per_s, ratio_p50, ratio_mbps);
  }
}

static void print_cold(const bench_report *report, FILE *out) {
  char size_text[24];
  char p50[24];
  char p99[24];
  char max[24];
  int printed_header = 0;
  for (int i = 0; i < report->result_count; i++) {
    const bench_result *r = &report->results[i];
    if (strcmp(r->test, "cold") != 0) {
      continue;
    }
    if (!printed_header) {
      fprintf(out,
              "\nCold calls: the client sleeps %d ms (give or take a third, at "
              "random) before each call (the "
              "server is idle); only the call is timed\n",
              report->cold_gap_ms);
      fprintf(out, "%-8s %-10s %8s %9s %9s %9s %12s\n", "size", "transport",
              "calls", "p50", "p99", "max", "shmrpc/p50");
      printed_header = 1;
    }
    const bench_result *rpc = find(report, "cold", "shmrpc", r->size, 1);
    char ratio[24] = "-";
    if (rpc != NULL && rpc != r && r->p50_ns > 0) {
      snprintf(ratio, sizeof ratio, "%.3fx",
               (double)rpc->p50_ns / (double)r->p50_ns);
    }
    fprintf(out, "%-8s %-10s %8llu %9s %9s %9s %12s\n",
            format_size(r->size, size_text, sizeof size_text), r->transport,
            (unsigned long long)r->calls, format_ns(r->p50_ns, p50, sizeof p50),
            format_ns(r->p99_ns, p99, sizeof p99),
            format_ns(r->max_ns, max, sizeof max), ratio);
  }
}

static void print_multi(const bench_report *report, FILE *out) {
  char size_text[24];
  char p50[24];
  char p99[24];
  int printed_header = 0;
  for (int i = 0; i < report->result_count; i++) {
    const bench_result *r = &report->results[i];
    if (strcmp(r->test, "multi") != 0) {
      continue;
    }
    if (!printed_header) {
      fprintf(out,
              "\nMulti-client: N client processes call one shmrpc server "
              "back to back for %d ms in all (4 rounds, the counts taking "
              "turns); fewest and most: summed over the rounds; worst/avg: "
              "the lowest round's fewest / that round's average\n",
              report->duration_ms);
      fprintf(out, "%-8s %7s %9s %10s %9s %9s %9s %9s %10s %10s %9s\n",
              "size", "clients", "calls", "calls/s", "vs 1", "p50", "p99",
              "longest", "fewest", "most", "worst/avg");
      printed_header = 1;
    }
    const bench_result *one = find(report, "multi", r->transport, r->size, 1);
    char versus[24] = "-";
    if (one != NULL && one->calls_per_s > 0) {
      snprintf(versus, sizeof versus, "%.2fx", r->calls_per_s / one->calls_per_s);
    }
    char longest[24];
    fprintf(out, "%-8s %7d %9llu %10.0f %9s %9s %9s %9s %10llu %10llu %9.2f\n",
            format_size(r->size, size_text, sizeof size_text), r->clients,
            (unsigned long long)r->calls, r->calls_per_s, versus,
            format_ns(r->p50_ns, p50, sizeof p50),
            format_ns(r->p99_ns, p99, sizeof p99),
            format_ns(r->max_ns, longest, sizeof longest),
            (unsigned long long)r->min_client_calls,
            (unsigned long long)r->max_client_calls, r->worst_round_share);
  }
}

/* The rows of one concurrency test: name, then each transport's calls/s
 * (and p50 where it has latencies), against the row named `base`. */
static void print_concurrency(const bench_report *report, FILE *out,
                              const char *test, const char *title,
                              const char *base, int latencies) {
  char p50[24], p99[24], max[24];
  int printed_header = 0;
  const bench_result *first = find(report, test, base, 0, 0);
  for (int i = 0; i < report->result_count; i++) {
    const bench_result *r = &report->results[i];
    if (strcmp(r->test, test) != 0) {
      continue;
    }
    if (!printed_header) {
      fprintf(out, "\n%s\n", title);
      if (latencies) {
        fprintf(out, "%-14s %8s %9s %9s %9s %12s\n", "", "calls", "p50",
                "p99", "max", "p50 vs");
      } else {
        fprintf(out, "%-14s %9s %10s %12s\n", "", "calls", "calls/s",
                "calls/s vs");
      }
      printed_header = 1;
    }
    char ratio[24] = "-";
    if (latencies) {
      if (first != NULL && first->p50_ns > 0) {
        snprintf(ratio, sizeof ratio, "%.2fx",
                 (double)r->p50_ns / (double)first->p50_ns);
      }
      fprintf(out, "%-14s %8llu %9s %9s %9s %12s\n", r->transport,
              (unsigned long long)r->calls,
              format_ns(r->p50_ns, p50, sizeof p50),
              format_ns(r->p99_ns, p99, sizeof p99),
              format_ns(r->max_ns, max, sizeof max), ratio);
    } else {
      if (first != NULL && first->calls_per_s > 0) {
        snprintf(ratio, sizeof ratio, "%.2fx",
                 r->calls_per_s / first->calls_per_s);
      }
      fprintf(out, "%-14s %9llu %10.0f %12s\n", r->transport,
              (unsigned long long)r->calls, r->calls_per_s, ratio);
    }
  }
}

void bench_report_table(const bench_report *report, FILE *out) {
  struct utsname system;
  bench_target targets[BENCH_TARGET_COUNT];
  memset(&system, 0, sizeof system);
  uname(&system);
  double load = bench_load_average();
  fprintf(out,
          "shmrpc_bench: shmrpc %s, %s %s, %ld CPUs online, load average "
          "%.2f before, %.2f after%s\n"
          "MB/s counts request + response bytes (1 MB = 10^6 bytes). "
          "Stream baselines use %s kernel buffers.\n",
          shmrpc_version_string(), system.sysname, system.release,
          sysconf(_SC_NPROCESSORS_ONLN), report->load_start, load,
          report->quick ? ", --quick" : "",
          report->big_buffers ? "enlarged (--big-buffers)" : "default");
  if (report->load_start >= 0.5) {
    fprintf(out, "WARNING: other processes were busy before the run (load "
                 "%.2f); spinning transports suffer most when CPUs are "
                 "shared, so compare with a run on an idle machine.\n",
            report->load_start);
  }
  if (bench_shmrpc_server_spin_us != -1 || bench_shmrpc_client_spin_us != -1) {
    fprintf(out, "shmrpc spin_us options: server %d, client %d (-1: default)\n",
            (int)bench_shmrpc_server_spin_us, (int)bench_shmrpc_client_spin_us);
  }
  for (int i = 0; i < report->transport_count; i++) {
    fprintf(out, "  %-10s %s\n", report->transports[i]->name,
            report->transports[i]->description);
  }
  print_latency(report, out);
  print_cold(report, out);
  print_multi(report, out);
  print_concurrency(report, out, "hol",
                    "Head-of-line: one client's 8 B calls on a service of 8 "
                    "lanes and 4 workers, idle and while another client's "
                    "call runs a 1 s handler",
                    "idle", 1);
  print_concurrency(report, out, "threads",
                    "Threads: 8 B calls from 1, 2 and 4 threads through one "
                    "handle (8 lanes, 4 workers)",
                    "1-thread", 0);
  print_concurrency(report, out, "async",
                    "Calls in flight: one thread keeps 1, 4 or 16 calls of "
                    "8 B in flight (shmrpc_call_start, polling the oldest), "
                    "against its blocking calls (16 lanes, 1 worker)",
                    "blocking", 0);
  print_concurrency(report, out, "pollcold",
                    "Cold calls through the waitable: after an idle gap, a "
                    "call waited for in poll() on the client's waitable, "
                    "against a blocking call (alternating)",
                    "blocking", 1);
  if (report->idle_measured) {
    fprintf(out,
            "\nIdle: a shmrpc server with no callers used %.3f ms of CPU in "
            "%.1f s = %.4f%% of one core\n",
            (double)report->idle_cpu_ns / 1e6, report->idle_seconds,
            (double)report->idle_cpu_ns / 1e9 / report->idle_seconds * 100.0);
  }
  evaluate_targets(report, targets);
  fprintf(out, "\nTargets (ratios measured in this run):\n");
  for (int i = 0; i < BENCH_TARGET_COUNT; i++) {
    const bench_target *t = &targets[i];
    if (t->status == TARGET_SKIPPED) {
      fprintf(out, "  %-7s %s (not measured in this run)\n",
              status_word(t->status), t->text);
    } else {
      fprintf(out, "  %-7s %s  [%.3f %s %.3f]\n", status_word(t->status),
              t->text, t->value, t->relation, t->limit);
    }
  }
  if (report->failed) {
    fprintf(out, "\nERRORS: some runs failed; see the messages above.\n");
  }
}

/* ---- JSON -------------------------------------------------------------- */

static void json_string(FILE *out, const char *text) {
  fputc('"', out);
  for (const char *p = text; *p != '\0'; p++) {
    if (*p == '"' || *p == '\\') {
      fputc('\\', out);
    }
    fputc(*p, out);
  }
  fputc('"', out);
}

void bench_report_json(const bench_report *report, FILE *out) {
  bench_target targets[BENCH_TARGET_COUNT];
  for (int i = 0; i < report->result_count; i++) {
    const bench_result *r = &report->results[i];
    fprintf(out, "{\"test\":");
    json_string(out, r->test);
    fprintf(out, ",\"transport\":");
    json_string(out, r->transport);
    fprintf(out,
            ",\"size\":%zu,\"clients\":%d,\"calls\":%llu,\"p50_ns\":%llu,"
            "\"p99_ns\":%llu,\"p999_ns\":%llu,\"max_ns\":%llu",
            r->size, r->clients, (unsigned long long)r->calls,
            (unsigned long long)r->p50_ns, (unsigned long long)r->p99_ns,
            (unsigned long long)r->p999_ns, (unsigned long long)r->max_ns);
    if (strcmp(r->test, "cold") == 0) {
      fprintf(out, ",\"calls_per_s\":null,\"mb_per_s\":null,\"gap_ms\":%d",
              report->cold_gap_ms);
    } else {
      fprintf(out, ",\"calls_per_s\":%.1f,\"mb_per_s\":%.3f", r->calls_per_s,
              r->mb_per_s);
    }
    if (strcmp(r->test, "multi") == 0) {
      fprintf(out,
              ",\"duration_ms\":%d,\"min_client_calls\":%llu,"
              "\"max_client_calls\":%llu,\"worst_round_share\":%.4f",
              report->duration_ms, (unsigned long long)r->min_client_calls,
              (unsigned long long)r->max_client_calls, r->worst_round_share);
    }
    fprintf(out, ",\"mb_counts\":\"request+response\"}\n");
  }
  if (report->idle_measured) {
    fprintf(out,
            "{\"test\":\"idle\",\"transport\":\"shmrpc\",\"size\":null,"
            "\"clients\":0,\"calls\":0,\"p50_ns\":null,\"p99_ns\":null,"
            "\"p999_ns\":null,\"calls_per_s\":null,\"mb_per_s\":null,"
            "\"seconds\":%.3f,\"cpu_ns\":%llu,\"cpu_percent\":%.5f}\n",
            report->idle_seconds, (unsigned long long)report->idle_cpu_ns,
            (double)report->idle_cpu_ns / 1e9 / report->idle_seconds * 100.0);
  }
  evaluate_targets(report, targets);
  for (int i = 0; i < BENCH_TARGET_COUNT; i++) {
    const bench_target *t = &targets[i];
    fprintf(out, "{\"test\":\"target\",\"name\":");
    json_string(out, t->name);
    fprintf(out, ",\"text\":");
    json_string(out, t->text);
    if (t->status == TARGET_SKIPPED) {
      fprintf(out, ",\"status\":\"SKIPPED\",\"value\":null,\"limit\":null}\n");
    } else {
      fprintf(out, ",\"status\":\"%s\",\"relation\":\"%s\",\"value\":%.4f,"
                   "\"limit\":%.4f}\n",
              status_word(t->status), t->relation, t->value, t->limit);
    }
  }
  fprintf(out,
          "{\"test\":\"summary\",\"errors\":%s,\"load_before\":%.2f,"
          "\"load_after\":%.2f}\n",
          report->failed ? "true" : "false", report->load_start,
          bench_load_average());
}
