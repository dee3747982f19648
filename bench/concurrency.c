/*
 * The rows of many callers and of calls in flight, which the transport
 * table (one blocking call() per client process) cannot express:
 *
 *   hol       one client's 8-byte calls while another client's call runs a
 *             1 s handler, against the same calls on an idle service;
 *   threads   1, 2 and 4 threads calling through one handle;
 *   async     one thread keeping 1, 4 or 16 calls in flight, against the
 *             same thread's blocking calls;
 *   pollcold  a cold call waited for in poll() on the client's waitable,
 *             against a cold blocking call.
 *
 * Each measurement runs in a client process of its own (forked, as the
 * runner's clients are) against a server bench_server_start() forks, and
 * hands its result back through a shared mapping. As elsewhere, what is
 * compared takes turns in rounds on the same server, so that a drift of
 * the machine's speed lands on both sides of a ratio.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "payload.h"
#include "report.h"
#include "shmrpc.h"

#define CALL_TIMEOUT_MS 10000
/* Latencies a measurement records at most. */
#define MAX_SAMPLES 200000u

/* What a client process reports. */
typedef struct child_report {
  int ok;
  uint64_t calls;
  uint64_t elapsed_ns;
  uint64_t recorded;
  uint64_t samples[MAX_SAMPLES];
} child_report;

typedef int (*child_fn)(const char *service, const void *arg,
                        child_report *out);

/* Runs fn in a client process and waits for it; 0 if it reported ok. */
static int in_child(const char *service, child_fn fn, const void *arg,
                    child_report *out) {
  child_report *shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  int status = 0;
  pid_t pid;
  if (shared == MAP_FAILED) {
    bench_error("mmap: %s", strerror(errno));
    return -1;
  }
  memset(shared, 0, sizeof(*shared));
  fflush(stdout);
  fflush(stderr);
  pid = fork();
  if (pid < 0) {
    bench_error("fork: %s", strerror(errno));
    munmap(shared, sizeof(*shared));
    return -1;
  }
  if (pid == 0) {
    int rc = fn(service, arg, shared);
    shared->ok = rc == 0;
    _exit(rc == 0 ? 0 : 2);
  }
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  memcpy(out, shared, sizeof(*out));
  munmap(shared, sizeof(*shared));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !out->ok) {
    bench_error("a client process failed");
    return -1;
  }
  return 0;
}

/* A client as the shmrpc transport opens one (its spin options). */
static shmrpc_client *open_client(const char *service) {
  void *client = NULL;
  return bench_shmrpc_open(service, &client) == 0 ? client : NULL;
}

/* One checked 8-byte echo call through client, tagged (index, n). */
static int echo_call(shmrpc_client *client, int index, uint64_t n) {
  unsigned char request[8], response[8];
  uint64_t tag = bench_tag(index, n);
  size_t len = 0;
  bench_stamp(request, sizeof request, tag);
  int rc = shmrpc_call(client, BENCH_METHOD_ECHO, request, sizeof request,
                       response, sizeof response, &len, CALL_TIMEOUT_MS);
  if (rc != 0 || !bench_check_answer(response, len, sizeof request, tag)) {
    bench_error("echo call: %s", rc != 0 ? shmrpc_err_name(rc) : "wrong answer");
    return -1;
  }
  return 0;
}

/* A client of service, after 1000 checked calls (tagged `index`) that warm
 * up both sides; NULL on failure. */
static shmrpc_client *warm_client(const char *service, int index) {
  shmrpc_client *client = open_client(service);
  for (uint64_t i = 0; client != NULL && i < 1000; i++) {
    if (echo_call(client, index, i) != 0) {
      shmrpc_client_close(client);
      client = NULL;
    }
  }
  return client;
}

/* Adds a result of `calls` latencies (sorted here) to the report. */
static void add_result(bench_report *report, const char *test,
                       const char *transport, int clients, uint64_t *samples,
                       uint64_t recorded, uint64_t calls, double seconds) {
  bench_result result;
  memset(&result, 0, sizeof result);
  if (recorded > 0)
    bench_latencies(&result, samples, recorded);
  result.test = test;
  result.transport = transport;
  result.size = 8;
  result.clients = clients;
  result.calls = calls;
  result.min_client_calls = result.max_client_calls = calls;
  if (seconds > 0) {
    result.calls_per_s = (double)calls / seconds;
    result.mb_per_s = result.calls_per_s * 16.0 / 1e6;
  }
  bench_report_add(report, &result);
}

/* Starts a shmrpc server with these lanes and workers. */
static int start_server(uint32_t lanes, uint32_t workers,
                        bench_server *server) {
  bench_shmrpc_server_lanes = lanes;
  bench_shmrpc_server_workers = workers;
  int rc = bench_server_start(&bench_transport_shmrpc, 8, server);
  bench_shmrpc_server_lanes = 0;
  bench_shmrpc_server_workers = 0;
  return rc;
}

/* ---- Head-of-line ------------------------------------------------------ */

typedef struct echo_spec {
  uint64_t calls;
} echo_spec;

/* Warm-up, then spec->calls timed echo calls. */
static int echo_child(const char *service, const void *arg,
                      child_report *out) {
  const echo_spec *spec = arg;
  shmrpc_client *client = warm_client(service, 1);
  if (client == NULL)
    return -1;
  uint64_t start = bench_now_ns();
  for (uint64_t i = 0; i < spec->calls && i < MAX_SAMPLES; i++) {
    uint64_t before = bench_now_ns();
    if (echo_call(client, 1, 1000 + i) != 0)
      return -1;
    out->samples[out->recorded++] = bench_now_ns() - before;
  }
  out->elapsed_ns = bench_now_ns() - start;
  out->calls = out->recorded;
  shmrpc_client_close(client);
  return 0;
}

/* How many lanes of the service run a handler now. */
static int busy_lanes(const char *service) {
  static shmrpc_service_info info;
  int busy = 0;
  if (shmrpc_service_query(service, 0, &info) != 0)
    return -1;
  for (uint32_t i = 0; i < info.lanes && i < SHMRPC_MAX_LANES; i++)
    busy += info.lane[i].state == 2;
  return busy;
}

void bench_measure_hol(bench_report *report, int quick) {
  static child_report idle, busy;
  static uint64_t idle_samples[MAX_SAMPLES * 3], busy_samples[MAX_SAMPLES * 3];
  echo_spec spec = {quick ? 5000u : 20000u};
  uint64_t idle_n = 0, busy_n = 0;
  int rounds = quick ? 2 : 3, overlapped = 1;
  bench_server server;
  fprintf(stderr, "shmrpc_bench: hol     shmrpc         8 B  a 1 s call "
                  "beside ...\n");
  if (start_server(8, 4, &server) != 0) {
    report->failed = 1;
    return;
  }
  const char *service = bench_shmrpc_service_name(server.state);
  for (int r = 0; r < rounds; r++) {
    if (in_child(service, echo_child, &spec, &idle) != 0)
      goto failed;
    /* The slow call: its own process, on a lane of its own. */
    pid_t slow = fork();
    if (slow < 0)
      goto failed;
    if (slow == 0) {
      shmrpc_client *client = open_client(service);
      uint32_t ms = 1000;
      unsigned char response[8];
      size_t len = 0;
      if (client == NULL)
        _exit(2);
      int rc = shmrpc_call(client, BENCH_METHOD_SLEEP, &ms, sizeof ms,
                           response, sizeof response, &len, CALL_TIMEOUT_MS);
      shmrpc_client_close(client);
      _exit(rc == 0 ? 0 : 2);
    }
    /* Measure only once the server runs it. */
    uint64_t deadline = bench_now_ns() + 5000000000u;
    while (busy_lanes(service) < 1 && bench_now_ns() < deadline)
      bench_sleep_ms(1);
    int ran = in_child(service, echo_child, &spec, &busy);
    if (busy_lanes(service) < 1)
      overlapped = 0; /* the calls outlasted the slow one */
    int status = 0;
    while (waitpid(slow, &status, 0) < 0 && errno == EINTR) {
    }
    if (ran != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
      goto failed;
    memcpy(idle_samples + idle_n, idle.samples, idle.recorded * 8);
    idle_n += idle.recorded;
    memcpy(busy_samples + busy_n, busy.samples, busy.recorded * 8);
    busy_n += busy.recorded;
  }
  if (!overlapped)
    bench_error("hol: the 8-byte calls outlasted the 1 s call: compare "
                "with care");
  add_result(report, "hol", "idle", 1, idle_samples, idle_n, idle_n, 0);
  add_result(report, "hol", "beside-1s", 1, busy_samples, busy_n, busy_n, 0);
  if (bench_server_stop(&server) != 0)
    report->failed = 1;
  return;
failed:
  report->failed = 1;
  bench_server_stop(&server);
}

/* ---- Threads on one handle --------------------------------------------- */

/* A row of a rate test: its child runs n (threads, or calls in flight) for
 * duration_ms. */
typedef struct rate_spec {
  int n;
  int duration_ms;
} rate_spec;

typedef struct caller {
  shmrpc_client *client;
  int index;
  uint64_t deadline;
  uint64_t calls;
  int failed;
} caller;

static void *caller_main(void *arg) {
  caller *c = arg;
  uint64_t n = 0;
  while (bench_now_ns() < c->deadline) {
    if (echo_call(c->client, c->index, n++) != 0) {
      c->failed = 1;
      break;
    }
  }
  c->calls = n;
  return NULL;
}

static int threads_child(const char *service, const void *arg,
                         child_report *out) {
  const rate_spec *spec = arg;
  caller callers[8];
  pthread_t threads[8];
  shmrpc_client *client = warm_client(service, 0);
  if (client == NULL)
    return -1;
  uint64_t start = bench_now_ns();
  for (int t = 0; t < spec->n; t++) {
    memset(&callers[t], 0, sizeof callers[t]);
    callers[t].client = client;
    callers[t].index = t + 1;
    callers[t].deadline = start + (uint64_t)spec->duration_ms * 1000000u;
    if (pthread_create(&threads[t], NULL, caller_main, &callers[t]) != 0)
      return -1;
  }
  int failed = 0;
  for (int t = 0; t < spec->n; t++) {
    pthread_join(threads[t], NULL);
    out->calls += callers[t].calls;
    failed |= callers[t].failed;
  }
  out->elapsed_ns = bench_now_ns() - start;
  shmrpc_client_close(client);
  return failed ? -1 : 0;
}

/* One rate test: every row's child in turn, in rounds, on one server;
 * calls/s per row. */
typedef struct rate_row {
  const char *name;
  int n;       /* the child's n */
  int clients; /* what the report's clients column says */
} rate_row;

static void measure_rates(bench_report *report, int quick, const char *test,
                          uint32_t lanes, uint32_t workers, child_fn fn,
                          const rate_row *rows, int count) {
  static child_report run;
  uint64_t calls[8] = {0}, elapsed[8] = {0};
  int rounds = quick ? 2 : 4;
  bench_server server;
  fprintf(stderr, "shmrpc_bench: %-7s shmrpc         8 B  %d rows ...\n", test,
          count);
  if (start_server(lanes, workers, &server) != 0) {
    report->failed = 1;
    return;
  }
  const char *service = bench_shmrpc_service_name(server.state);
  for (int r = 0; r < rounds; r++) {
    for (int k = 0; k < count && k < 8; k++) {
      rate_spec spec = {rows[k].n, quick ? 150 : 500};
      if (in_child(service, fn, &spec, &run) != 0) {
        report->failed = 1;
        bench_server_stop(&server);
        return;
      }
      calls[k] += run.calls;
      elapsed[k] += run.elapsed_ns;
    }
  }
  for (int k = 0; k < count && k < 8; k++)
    add_result(report, test, rows[k].name, rows[k].clients, NULL, 0, calls[k],
               (double)elapsed[k] / 1e9);
  if (bench_server_stop(&server) != 0)
    report->failed = 1;
}

void bench_measure_threads(bench_report *report, int quick) {
  static const rate_row rows[] = {
      {"1-thread", 1, 1}, {"2-threads", 2, 2}, {"4-threads", 4, 4}};
  measure_rates(report, quick, "threads", 8, 4, threads_child, rows, 3);
}

/* ---- Calls in flight --------------------------------------------------- */


static int start_echo(shmrpc_client *client, uint64_t tag,
                      shmrpc_pending **call) {
  unsigned char request[8];
  bench_stamp(request, sizeof request, tag);
  int rc = shmrpc_call_start(client, BENCH_METHOD_ECHO, request,
                             sizeof request, CALL_TIMEOUT_MS, call);
  if (rc != 0)
    bench_error("shmrpc_call_start: %s", shmrpc_err_name(rc));
  return rc;
}

static int finish_echo(shmrpc_pending *call, uint64_t tag) {
  unsigned char response[8];
  size_t len = 0;
  int rc = shmrpc_pending_finish(call, response, sizeof response, &len);
  if (rc != 0 || !bench_check_answer(response, len, sizeof response, tag)) {
    bench_error("async call: %s", rc != 0 ? shmrpc_err_name(rc) : "wrong answer");
    return -1;
  }
  return 0;
}

static int flight_child(const char *service, const void *arg,
                        child_report *out) {
  const rate_spec *spec = arg; /* n calls in flight; 0: blocking calls */
  shmrpc_pending *calls[16];
  uint64_t tags[16], started = 0, finished = 0;
  shmrpc_client *client = warm_client(service, 0);
  if (client == NULL)
    return -1;
  uint64_t start = bench_now_ns();
  uint64_t deadline = start + (uint64_t)spec->duration_ms * 1000000u;
  if (spec->n == 0) {
    while (bench_now_ns() < deadline) {
      if (echo_call(client, 1, finished++) != 0)
        return -1;
    }
  } else {
    int k = spec->n;
    for (;;) {
      int more = bench_now_ns() < deadline;
      while (more && started - finished < (uint64_t)k) {
        tags[started % 16] = bench_tag(1, started);
        if (start_echo(client, tags[started % 16], &calls[started % 16]) != 0)
          return -1;
        started++;
      }
      if (finished == started)
        break;
      /* The oldest call: the others are on their way meanwhile. */
      while (shmrpc_pending_poll(calls[finished % 16]) == 0) {
      }
      if (finish_echo(calls[finished % 16], tags[finished % 16]) != 0)
        return -1;
      finished++;
    }
  }
  out->elapsed_ns = bench_now_ns() - start;
  out->calls = finished;
  shmrpc_client_close(client);
  return 0;
}

void bench_measure_async(bench_report *report, int quick) {
  static const rate_row rows[] = {{"blocking", 0, 1},
                                  {"1-in-flight", 1, 1},
                                  {"4-in-flight", 4, 4},
                                  {"16-in-flight", 16, 16}};
  measure_rates(report, quick, "async", 16, 1, flight_child, rows, 4);
}

/* ---- Cold calls through the waitable ----------------------------------- */

typedef struct cold_spec {
  int calls; /* of each kind */
  int gap_ms;
} cold_spec;

/* One cold call waited for in poll(): start, arm, poll, finish. */
static int polled_call(shmrpc_client *client, int fd, uint64_t tag) {
  shmrpc_pending *call = NULL;
  if (start_echo(client, tag, &call) != 0)
    return -1;
  while (shmrpc_pending_poll(call) == 0) {
    int armed = shmrpc_client_arm(client);
    if (armed < 0) {
      bench_error("shmrpc_client_arm: %s", shmrpc_err_name(armed));
      return -1;
    }
    if (armed == 0) {
      struct pollfd pfd = {.fd = fd, .events = POLLIN, .revents = 0};
      if (poll(&pfd, 1, CALL_TIMEOUT_MS) <= 0) {
        bench_error("poll: no answer");
        return -1;
      }
    }
  }
  return finish_echo(call, tag);
}

/* Alternates blocking and polled cold calls; samples: blocking ones first
 * (out->calls of them), then the polled ones. */
static int cold_child(const char *service, const void *arg,
                      child_report *out) {
  const cold_spec *spec = arg;
  shmrpc_client *client = open_client(service);
  shmrpc_waitable fd;
  uint64_t n = 0, gap_seed = bench_now_ns();
  if (client == NULL || shmrpc_client_waitable(client, &fd) != 0)
    return -1;
  for (uint64_t i = 0; i < 100; i++)
    if (echo_call(client, 0, i) != 0 || polled_call(client, fd, bench_tag(2, i)) != 0)
      return -1;
  for (int i = 0; i < spec->calls; i++) {
    for (int kind = 0; kind < 2; kind++) {
      bench_sleep_gap(spec->gap_ms, &gap_seed);
      uint64_t before = bench_now_ns();
      int rc = kind == 0 ? echo_call(client, 1, n)
                         : polled_call(client, fd, bench_tag(2, n));
      uint64_t took = bench_now_ns() - before;
      if (rc != 0)
        return -1;
      n++;
      out->samples[kind * (uint64_t)spec->calls + (uint64_t)i] = took;
    }
  }
  out->calls = (uint64_t)spec->calls;
  shmrpc_client_close(client);
  return 0;
}

void bench_measure_poll_cold(bench_report *report, int calls, int gap_ms) {
  static child_report run;
  cold_spec spec = {calls, gap_ms};
  bench_server server;
  if (calls > (int)(MAX_SAMPLES / 2))
    spec.calls = (int)(MAX_SAMPLES / 2);
  fprintf(stderr, "shmrpc_bench: pollcold shmrpc        8 B  %d calls of "
                  "each kind ...\n",
          spec.calls);
  if (start_server(0, 0, &server) != 0) {
    report->failed = 1;
    return;
  }
  const char *service = bench_shmrpc_service_name(server.state);
  if (in_child(service, cold_child, &spec, &run) != 0) {
    report->failed = 1;
    bench_server_stop(&server);
    return;
  }
  add_result(report, "pollcold", "blocking", 1, run.samples, run.calls,
             run.calls, 0);
  add_result(report, "pollcold", "poll", 1, run.samples + run.calls, run.calls,
             run.calls, 0);
  if (bench_server_stop(&server) != 0)
    report->failed = 1;
}
