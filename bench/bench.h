/*
 * shmrpc_bench: what the benchmark's files share.
 *
 * The benchmark measures blocking round-trip calls over shmrpc and over
 * baselines it implements itself (a Unix domain socket pair, a pair of
 * pipes, a raw shared-memory ping-pong that spins or sleeps on a futex).
 * Every transport is a table of functions (bench_transport); the runner
 * (runner.c) forks one server process and N client processes for each
 * measurement, so each transport is measured across processes exactly the
 * way a user would run it.
 */
#ifndef SHMRPC_BENCH_H
#define SHMRPC_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Limits of the command line. */
#define BENCH_MAX_CLIENTS 64
#define BENCH_MAX_LIST 16

/* The method id the shmrpc server registers for the echo-like method, and
 * for one that sleeps (a request of a u32 of milliseconds; the answer is
 * the request). */
#define BENCH_METHOD_ECHO 1u
#define BENCH_METHOD_SLEEP 2u

/* Every message carries an 8-byte tag at its start and at its end. */
#define BENCH_MIN_SIZE 8u

/*
 * A transport under test. The parent prepares what the server and the
 * clients share, then forks the server (serve) and the clients (connect,
 * call, disconnect); once every client has exited it stops the server and
 * releases what it prepared. Functions return 0 or -1 after printing what
 * went wrong to stderr.
 */
typedef struct bench_transport {
  /* Short name, e.g. "unix" or "shm-futex". */
  const char *name;
  /* One line for the report: what exactly is measured. */
  const char *description;
  /* How many clients may call at once (1 for point-to-point baselines). */
  int max_clients;
  /* Parent: prepares for messages of up to max_size bytes. */
  int (*prepare)(void **state, size_t max_size);
  /* Server child: serves calls, calling bench_signal_ready(ready_fd) once
   * it accepts them, until stopped. Returns 0 on a clean stop. */
  int (*serve)(void *state, int ready_fd);
  /* Client child: connects. */
  int (*connect)(void *state, void **conn);
  /* Client child: one blocking call. The response (the server's answer to
   * the request, of the request's size) is copied into response. */
  int (*call)(void *conn, const void *request, size_t request_len,
              void *response, size_t response_cap, size_t *response_len);
  /* Client child: disconnects. */
  void (*disconnect)(void *conn);
  /* Parent: makes the server's serve() return (every client has exited). */
  void (*stop)(void *state, pid_t server_pid);
  /* Parent: frees what prepare made (the server has exited). */
  void (*release)(void *state);
} bench_transport;

extern const bench_transport bench_transport_shmrpc;
extern const bench_transport bench_transport_unix;
extern const bench_transport bench_transport_pipe;
extern const bench_transport bench_transport_shm_spin;
extern const bench_transport bench_transport_shm_futex;
/* Built when nng is present (bench/CMakeLists.txt defines BENCH_HAVE_NNG):
 * nng req/rep on loopback, and a call through import, nng and export. */
extern const bench_transport bench_transport_nng;
extern const bench_transport bench_transport_bridge;

/* The shmrpc transport's pieces that the bridge transport reuses: a client
 * of service `name` as shmrpc's call() and disconnect() take it, and the
 * service name of a state from bench_transport_shmrpc.prepare(). */
int bench_shmrpc_open(const char *name, void **conn);
const char *bench_shmrpc_service_name(const void *state);

/* Set by --big-buffers: the stream baselines enlarge their kernel buffers
 * (SO_SNDBUF/SO_RCVBUF, F_SETPIPE_SZ) instead of using the defaults. */
extern int bench_big_buffers;

/* Set by --server-spin-us / --client-spin-us: the spin_us option given to
 * the shmrpc server and clients (-1: the library's default). */
extern int32_t bench_shmrpc_server_spin_us;
extern int32_t bench_shmrpc_client_spin_us;

/* The lanes and workers of the shmrpc server the next bench_server_start
 * starts (0: the library's defaults). The concurrency rows set them. */
extern uint32_t bench_shmrpc_server_lanes;
extern uint32_t bench_shmrpc_server_workers;

/* ---- Measurements ------------------------------------------------------ */

typedef enum bench_mode {
  BENCH_MODE_CALLS,    /* a number of back-to-back calls per client */
  BENCH_MODE_COLD,     /* calls each preceded by an idle gap */
  BENCH_MODE_DURATION  /* back-to-back calls for a fixed time */
} bench_mode;

typedef struct bench_run_spec {
  bench_mode mode;
  size_t size;          /* request and response bytes */
  int clients;          /* client processes */
  uint64_t calls;       /* CALLS, COLD: measured calls per client */
  uint64_t warmup;      /* unmeasured calls before the measurement */
  int64_t time_cap_ms;  /* CALLS: stop a client early after this (0: never) */
  int gap_ms;           /* COLD: the client sleeps this long before a call */
  int duration_ms;      /* DURATION: how long the clients call */
  uint64_t *samples_out; /* if set: receives the sorted call times, room for
                            calls * clients of them */
} bench_run_spec;

/* One line of the report. Times in nanoseconds. */
typedef struct bench_result {
  const char *test;       /* "latency", "cold", "multi" */
  const char *transport;
  size_t size;
  int clients;
  uint64_t calls;         /* measured calls, all clients */
  uint64_t p50_ns;
  uint64_t p99_ns;
  uint64_t p999_ns;
  uint64_t max_ns;
  double calls_per_s;     /* aggregate; 0 where it means nothing (cold) */
  double mb_per_s;        /* request + response bytes, 1 MB = 10^6 bytes */
  uint64_t min_client_calls; /* fewest calls one client completed */
  uint64_t max_client_calls; /* most calls one client completed */
  double worst_round_share;  /* multi: the lowest, over rounds, of a
                                round's fewest calls / its average */
} bench_result;

/* A server process started for one measurement. */
typedef struct bench_server {
  const bench_transport *transport;
  void *state;   /* from transport->prepare */
  pid_t pid;
  int alive_fd;  /* read end of a pipe the server holds until it exits */
} bench_server;

/* Prepares the transport and starts its server; returns once the server
 * accepts calls. */
int bench_server_start(const bench_transport *transport, size_t max_size,
                       bench_server *out);

/* Stops the server, waits for it and releases the transport. Returns -1 if
 * the server did not exit cleanly. */
int bench_server_stop(bench_server *server);

/* Runs spec->clients client processes against the server and fills *out.
 * Returns -1 if any call failed or returned a wrong answer. */
int bench_clients_run(bench_server *server, const bench_run_spec *spec,
                      bench_result *out);

/* CPU time (user + system, every thread) the process has used, in ns. */
int bench_process_cpu_ns(pid_t pid, uint64_t *cpu_ns);

/* ---- Helpers ----------------------------------------------------------- */

/* Monotonic clock in nanoseconds. */
uint64_t bench_now_ns(void);

/* Sleeps ms milliseconds (restarted after signals). */
void bench_sleep_ms(int64_t ms);

/* The idle gap before a cold call: gap_ms, give or take a third, at
 * random. A fixed gap would fall in step with a server's own timers (its
 * idle slice), and then measure that coincidence rather than a wake-up. */
void bench_sleep_gap(int gap_ms, uint64_t *seed);

/* Server child: tells the parent that the server accepts calls. */
void bench_signal_ready(int ready_fd);

/* Prints "shmrpc_bench: <message>" to stderr. */
void bench_error(const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Sorts the n samples and returns the nearest-rank q-quantile (0 < q <= 1). */
void bench_sort(uint64_t *samples, size_t n);
uint64_t bench_quantile(const uint64_t *sorted, size_t n, double q);

/* Sorts the n samples and fills out's p50, p99, p99.9 and max from them. */
void bench_latencies(bench_result *out, uint64_t *samples, size_t n);

/* ---- The concurrency rows (concurrency.c) ------------------------------ */

struct bench_report;

/* Head-of-line: 8-byte calls of one client while another's call runs a
 * 1 s handler, against the same calls on an idle service. */
void bench_measure_hol(struct bench_report *report, int quick);
/* 1, 2 and 4 threads calling through one handle: aggregate calls/s. */
void bench_measure_threads(struct bench_report *report, int quick);
/* One thread with 1, 4 and 16 calls in flight against blocking calls. */
void bench_measure_async(struct bench_report *report, int quick);
/* Cold calls waited for in poll() on the client's waitable against cold
 * blocking calls: the client sleeps gap_ms before each. */
void bench_measure_poll_cold(struct bench_report *report, int calls,
                             int gap_ms);

#endif /* SHMRPC_BENCH_H */
