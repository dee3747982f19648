/*
 * The runner: forks the server and the client processes of one
 * measurement, synchronises them on pipes (never on a sleep), collects what
 * the clients measured through a shared anonymous mapping, and turns it into
 * a bench_result.
 *
 * Synchronisation: the server holds the write end of `alive` for its whole
 * life and writes one byte to it when it accepts calls; its end of file
 * tells the parent the server has exited. Each client writes one byte to
 * `ready` after connecting and warming up, then blocks reading `go`; the
 * parent closes `go` to start every client at once. While the clients run,
 * the parent sleeps in poll() on `alive` and on a pidfd per client, so a
 * client that fails or a server that dies ends the run at once instead of
 * leaving the others spinning until a timeout.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "payload.h"

/* How long a server may take to start or to stop. */
#define BENCH_SERVER_TIMEOUT_MS 15000
/* How long clients may take to connect and warm up, and the slack added to
 * the expected length of a measurement before the parent gives up. */
#define BENCH_CLIENT_SLACK_MS 60000
/* Latencies a client records at most in DURATION mode (16 MB each). */
#define BENCH_DURATION_SAMPLES (2u * 1024u * 1024u)

/* What one client reports to the parent. */
typedef struct bench_client_record {
  uint64_t calls;      /* measured calls completed */
  uint64_t recorded;   /* latencies written to its sample array */
  uint64_t elapsed_ns; /* wall time of the measured loop */
} bench_client_record;

/* The mapping the parent shares with the clients of one run. */
typedef struct bench_run_area {
  uint64_t deadline_ns; /* DURATION: when the clients stop calling */
  bench_client_record clients[BENCH_MAX_CLIENTS];
  /* Followed by clients * samples_per_client uint64_t latencies. */
} bench_run_area;

/* Waits up to timeout_ms for fd to become readable; 1 if it did. */
static int wait_readable(int fd, int64_t timeout_ms) {
  uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
  for (;;) {
    uint64_t now = bench_now_ns();
    if (now >= deadline) {
      return 0;
    }
    struct pollfd pfd = {.fd = fd, .events = POLLIN, .revents = 0};
    int64_t left_ms = (int64_t)((deadline - now) / 1000000u) + 1;
    int rc = poll(&pfd, 1, left_ms > 1000000 ? 1000000 : (int)left_ms);
    if (rc > 0) {
      return 1;
    }
    if (rc < 0 && errno != EINTR) {
      return 0;
    }
  }
}

/* Reads one byte; 1 if read, 0 at end of file, -1 on error. */
static int read_byte(int fd) {
  char byte;
  for (;;) {
    ssize_t rc = read(fd, &byte, 1);
    if (rc >= 0) {
      return (int)rc;
    }
    if (errno != EINTR) {
      return -1;
    }
  }
}

/* Describes how a child ended into text; returns 1 for a clean exit. */
static int describe_status(int status, char *text, size_t cap) {
  if (WIFEXITED(status)) {
    snprintf(text, cap, "exit code %d", WEXITSTATUS(status));
    return WEXITSTATUS(status) == 0;
  }
  if (WIFSIGNALED(status)) {
    snprintf(text, cap, "killed by signal %d", WTERMSIG(status));
    return 0;
  }
  snprintf(text, cap, "status %d", status);
  return 0;
}

static void wait_child(pid_t pid, int *status) {
  while (waitpid(pid, status, 0) < 0 && errno == EINTR) {
  }
}

/* ---- Server ------------------------------------------------------------ */

int bench_server_start(const bench_transport *transport, size_t max_size,
                       bench_server *out) {
  int alive[2];
  memset(out, 0, sizeof *out);
  out->transport = transport;
  out->alive_fd = -1;
  if (transport->prepare(&out->state, max_size) != 0) {
    return -1;
  }
  if (pipe(alive) != 0) {
    bench_error("pipe: %s", strerror(errno));
    transport->release(out->state);
    return -1;
  }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    bench_error("fork: %s", strerror(errno));
    close(alive[0]);
    close(alive[1]);
    transport->release(out->state);
    return -1;
  }
  if (pid == 0) {
    close(alive[0]);
    int rc = transport->serve(out->state, alive[1]);
    _exit(rc == 0 ? 0 : 3);
  }
  close(alive[1]);
  out->pid = pid;
  out->alive_fd = alive[0];
  if (!wait_readable(alive[0], BENCH_SERVER_TIMEOUT_MS) ||
      read_byte(alive[0]) != 1) {
    int status = 0;
    char text[64];
    kill(pid, SIGKILL);
    wait_child(pid, &status);
    describe_status(status, text, sizeof text);
    bench_error("%s server did not start (%s)", transport->name, text);
    close(alive[0]);
    transport->release(out->state);
    return -1;
  }
  return 0;
}

int bench_server_stop(bench_server *server) {
  int status = 0;
  int clean = 1;
  char text[64];
  server->transport->stop(server->state, server->pid);
  /* The server's end of `alive` closes when it exits. */
  if (!wait_readable(server->alive_fd, BENCH_SERVER_TIMEOUT_MS) ||
      read_byte(server->alive_fd) != 0) {
    bench_error("%s server did not stop; killing it", server->transport->name);
    kill(server->pid, SIGKILL);
    clean = 0;
  }
  wait_child(server->pid, &status);
  if (!describe_status(status, text, sizeof text)) {
    bench_error("%s server ended badly (%s)", server->transport->name, text);
    clean = 0;
  }
  close(server->alive_fd);
  server->transport->release(server->state);
  return clean ? 0 : -1;
}

/* ---- Clients ----------------------------------------------------------- */

/* The private state of one client process. */
typedef struct bench_client {
  const bench_transport *transport;
  void *conn;
  int index;
  size_t size;
  uint64_t next_call; /* numbers calls, for the tags */
  unsigned char *request;
  unsigned char *response;
} bench_client;

/* One checked call; *elapsed_ns gets the time spent in the call itself. */
static int client_call(bench_client *client, uint64_t *elapsed_ns) {
  uint64_t tag = bench_tag(client->index, client->next_call++);
  size_t response_len = 0;
  bench_stamp(client->request, client->size, tag);
  uint64_t start = bench_now_ns();
  int rc = client->transport->call(client->conn, client->request,
                                   client->size, client->response,
                                   client->size, &response_len);
  uint64_t end = bench_now_ns();
  if (rc != 0) {
    return -1;
  }
  if (!bench_check_answer(client->response, response_len, client->size,
                          tag)) {
    bench_error("%s client %d: wrong answer to call %llu (%zu bytes, "
                "expected %zu)",
                client->transport->name, client->index,
                (unsigned long long)(client->next_call - 1), response_len,
                client->size);
    return -1;
  }
  *elapsed_ns = end - start;
  return 0;
}

/* The body of a client process; returns its exit code. */
static int client_main(const bench_server *server, const bench_run_spec *spec,
                       int index, bench_run_area *area, uint64_t *samples,
                       uint64_t sample_cap, int ready_fd, int go_fd) {
  bench_client client;
  bench_client_record *record = &area->clients[index];
  uint64_t elapsed = 0;
  memset(&client, 0, sizeof client);
  client.transport = server->transport;
  client.index = index;
  client.size = spec->size;
  client.request = malloc(spec->size);
  client.response = malloc(spec->size);
  if (client.request == NULL || client.response == NULL) {
    bench_error("out of memory");
    return 2;
  }
  bench_fill_pattern(client.request, spec->size);
  memset(client.response, 0, spec->size);
  if (client.transport->connect(server->state, &client.conn) != 0) {
    return 2;
  }
  for (uint64_t i = 0; i < spec->warmup; i++) {
    if (client_call(&client, &elapsed) != 0) {
      return 2;
    }
  }
  bench_signal_ready(ready_fd);
  if (read_byte(go_fd) != 0) {
    bench_error("client %d: bad start signal", index);
    return 2;
  }

  uint64_t start = bench_now_ns();
  uint64_t calls = 0;
  uint64_t recorded = 0;
  uint64_t cap_ns = (uint64_t)spec->time_cap_ms * 1000000u;
  switch (spec->mode) {
  case BENCH_MODE_CALLS:
    for (calls = 0; calls < spec->calls;) {
      if (client_call(&client, &elapsed) != 0) {
        return 2;
      }
      samples[recorded++] = elapsed;
      calls++;
      if (cap_ns != 0 && (calls & 63u) == 0 &&
          bench_now_ns() - start > cap_ns) {
        break;
      }
    }
    break;
  case BENCH_MODE_COLD: {
    uint64_t gap_seed = bench_now_ns() ^ (uint64_t)index;
    for (calls = 0; calls < spec->calls; calls++) {
      bench_sleep_gap(spec->gap_ms, &gap_seed);
      if (client_call(&client, &elapsed) != 0) {
        return 2;
      }
      samples[recorded++] = elapsed;
    }
    break;
  }
  case BENCH_MODE_DURATION: {
    uint64_t deadline = area->deadline_ns;
    while (bench_now_ns() < deadline) {
      if (client_call(&client, &elapsed) != 0) {
        return 2;
      }
      if (recorded < sample_cap) {
        samples[recorded++] = elapsed;
      }
      calls++;
    }
    break;
  }
  }
  record->elapsed_ns = bench_now_ns() - start;
  record->calls = calls;
  record->recorded = recorded;
  client.transport->disconnect(client.conn);
  free(client.request);
  free(client.response);
  return 0;
}

/* The client processes of one run, as the parent watches them. */
typedef struct bench_children {
  pid_t pids[BENCH_MAX_CLIENTS];
  int pidfds[BENCH_MAX_CLIENTS]; /* -1 where pidfd_open is not available */
  int exited[BENCH_MAX_CLIENTS]; /* reaped */
  int count;                     /* started */
} bench_children;

/* A descriptor that becomes readable when the process exits (Linux 5.3);
 * -1 if the kernel has none, and the parent then relies on timeouts. */
static int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return (int)syscall(SYS_pidfd_open, pid, 0);
#else
  (void)pid;
  return -1;
#endif
}

/* Kills and reaps every client not yet reaped, and closes the pidfds. */
static void kill_clients(bench_children *children) {
  for (int i = 0; i < children->count; i++) {
    if (!children->exited[i]) {
      kill(children->pids[i], SIGKILL);
    }
  }
  for (int i = 0; i < children->count; i++) {
    if (!children->exited[i]) {
      int status;
      wait_child(children->pids[i], &status);
      children->exited[i] = 1;
    }
    if (children->pidfds[i] >= 0) {
      close(children->pidfds[i]);
      children->pidfds[i] = -1;
    }
  }
}

/* Reaps client i if it has exited; -1 if it ended badly. */
static int reap_client(bench_children *children, int i, const char *name) {
  int status = 0;
  char text[64];
  pid_t rc;
  do {
    rc = waitpid(children->pids[i], &status, WNOHANG);
  } while (rc < 0 && errno == EINTR);
  if (rc != children->pids[i]) {
    return 0;
  }
  children->exited[i] = 1;
  if (!describe_status(status, text, sizeof text)) {
    bench_error("%s client %d failed (%s)", name, i, text);
    return -1;
  }
  return 0;
}

/*
 * Watches the clients and the server until `want_ready` bytes have come on
 * ready_fd (want_ready > 0) or every client has exited (want_ready == 0).
 * A client that fails or a server that exits ends the wait at once with -1,
 * so a broken run never waits for the timeout; -1 also on timeout.
 */
static int supervise(bench_children *children, const bench_server *server,
                     int ready_fd, int want_ready, int64_t timeout_ms) {
  uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
  int got_ready = 0;
  for (;;) {
    int running = 0;
    for (int i = 0; i < children->count; i++) {
      running += !children->exited[i];
    }
    if (want_ready > 0 ? got_ready >= want_ready : running == 0) {
      return 0;
    }
    uint64_t now = bench_now_ns();
    if (now >= deadline) {
      bench_error("%s: clients did not %s in time", server->transport->name,
                  want_ready > 0 ? "get ready" : "finish");
      return -1;
    }
    struct pollfd fds[BENCH_MAX_CLIENTS + 2];
    int owner[BENCH_MAX_CLIENTS + 2]; /* client index, -1 server, -2 ready */
    int n = 0;
    fds[n] = (struct pollfd){.fd = server->alive_fd, .events = POLLIN};
    owner[n++] = -1;
    if (want_ready > 0) {
      fds[n] = (struct pollfd){.fd = ready_fd, .events = POLLIN};
      owner[n++] = -2;
    }
    int blind = 0; /* clients without a pidfd */
    for (int i = 0; i < children->count; i++) {
      if (!children->exited[i] && children->pidfds[i] >= 0) {
        fds[n] = (struct pollfd){.fd = children->pidfds[i], .events = POLLIN};
        owner[n++] = i;
      } else if (!children->exited[i]) {
        blind = 1;
      }
    }
    /* Without pidfds, look at the clients every 100 ms. */
    int64_t slice_ms = (int64_t)((deadline - now) / 1000000u) + 1;
    if (slice_ms > (blind ? 100 : 1000000)) {
      slice_ms = blind ? 100 : 1000000;
    }
    int rc = poll(fds, (nfds_t)n, (int)slice_ms);
    if (rc < 0 && errno != EINTR) {
      bench_error("poll: %s", strerror(errno));
      return -1;
    }
    for (int k = 0; rc > 0 && k < n; k++) {
      if (fds[k].revents == 0) {
        continue;
      }
      if (owner[k] == -1) {
        bench_error("%s: the server exited during the run",
                    server->transport->name);
        return -1;
      }
      if (owner[k] == -2) {
        char bytes[BENCH_MAX_CLIENTS];
        ssize_t len = read(ready_fd, bytes, sizeof bytes);
        if (len > 0) {
          got_ready += (int)len;
        }
      }
    }
    for (int i = 0; i < children->count; i++) {
      if (!children->exited[i] &&
          reap_client(children, i, server->transport->name) != 0) {
        return -1;
      }
      if (want_ready > 0 && children->exited[i]) {
        bench_error("%s client %d exited before it was ready",
                    server->transport->name, i);
        return -1;
      }
    }
  }
}

/* How long the clients of spec may run before the parent gives up. */
static int64_t run_timeout_ms(const bench_run_spec *spec) {
  switch (spec->mode) {
  case BENCH_MODE_CALLS:
    return (spec->time_cap_ms != 0 ? spec->time_cap_ms : 3600000) +
           BENCH_CLIENT_SLACK_MS;
  case BENCH_MODE_COLD:
    return (int64_t)spec->calls * (spec->gap_ms + 1000) +
           BENCH_CLIENT_SLACK_MS;
  case BENCH_MODE_DURATION:
    return spec->duration_ms + BENCH_CLIENT_SLACK_MS;
  }
  return BENCH_CLIENT_SLACK_MS;
}

/* Turns what the clients recorded into *out. */
static int summarise(const bench_run_spec *spec, const bench_run_area *area,
                     const uint64_t *samples, uint64_t sample_cap,
                     bench_result *out) {
  uint64_t total_calls = 0;
  uint64_t total_recorded = 0;
  uint64_t longest_ns = 0;
  out->min_client_calls = UINT64_MAX;
  out->max_client_calls = 0;
  for (int i = 0; i < spec->clients; i++) {
    const bench_client_record *record = &area->clients[i];
    total_calls += record->calls;
    total_recorded += record->recorded;
    if (record->elapsed_ns > longest_ns) {
      longest_ns = record->elapsed_ns;
    }
    if (record->calls < out->min_client_calls) {
      out->min_client_calls = record->calls;
    }
    if (record->calls > out->max_client_calls) {
      out->max_client_calls = record->calls;
    }
  }
  uint64_t *all = malloc((total_recorded ? total_recorded : 1) * sizeof *all);
  if (all == NULL) {
    bench_error("out of memory");
    return -1;
  }
  uint64_t n = 0;
  for (int i = 0; i < spec->clients; i++) {
    memcpy(all + n, samples + (uint64_t)i * sample_cap,
           area->clients[i].recorded * sizeof *all);
    n += area->clients[i].recorded;
  }
  bench_latencies(out, all, n);
  if (spec->samples_out != NULL) {
    memcpy(spec->samples_out, all, n * sizeof *all);
  }
  out->size = spec->size;
  out->clients = spec->clients;
  out->calls = total_calls;
  free(all);
  if (spec->mode != BENCH_MODE_COLD && longest_ns > 0) {
    out->calls_per_s = (double)total_calls * 1e9 / (double)longest_ns;
    out->mb_per_s = out->calls_per_s * 2.0 * (double)spec->size / 1e6;
  } else {
    out->calls_per_s = 0;
    out->mb_per_s = 0;
  }
  return 0;
}

int bench_clients_run(bench_server *server, const bench_run_spec *spec,
                      bench_result *out) {
  bench_children children;
  int failed = 0;
  int ready[2] = {-1, -1};
  int go[2] = {-1, -1};
  uint64_t sample_cap = spec->mode == BENCH_MODE_DURATION
                            ? BENCH_DURATION_SAMPLES
                            : (spec->calls ? spec->calls : 1);
  size_t map_size = sizeof(bench_run_area) +
                    (size_t)spec->clients * sample_cap * sizeof(uint64_t);

  memset(&children, 0, sizeof children);
  if (spec->clients < 1 || spec->clients > BENCH_MAX_CLIENTS ||
      spec->clients > server->transport->max_clients) {
    bench_error("%s: %d clients not supported", server->transport->name,
                spec->clients);
    return -1;
  }
  /* MAP_NORESERVE: DURATION runs reserve room for many samples but touch
   * only the pages they fill. */
  void *mapping = mmap(NULL, map_size, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mapping == MAP_FAILED) {
    bench_error("mmap %zu bytes: %s", map_size, strerror(errno));
    return -1;
  }
  bench_run_area *area = mapping;
  uint64_t *samples = (uint64_t *)(area + 1);
  if (pipe(ready) != 0 || pipe(go) != 0) {
    bench_error("pipe: %s", strerror(errno));
    failed = 1;
    goto done;
  }
  fflush(stdout);
  fflush(stderr);
  for (int i = 0; i < spec->clients; i++) {
    pid_t pid = fork();
    if (pid < 0) {
      bench_error("fork: %s", strerror(errno));
      failed = 1;
      goto done;
    }
    if (pid == 0) {
      /* Drop the parent's ends, or the pipes never reach end of file. */
      close(ready[0]);
      close(go[1]);
      close(server->alive_fd);
      for (int k = 0; k < children.count; k++) {
        if (children.pidfds[k] >= 0) {
          close(children.pidfds[k]);
        }
      }
      _exit(client_main(server, spec, i, area,
                        samples + (uint64_t)i * sample_cap, sample_cap,
                        ready[1], go[0]));
    }
    children.pids[children.count] = pid;
    children.pidfds[children.count] = open_pidfd(pid);
    children.count++;
  }
  close(ready[1]);
  ready[1] = -1;
  close(go[0]);
  go[0] = -1;

  if (supervise(&children, server, ready[0], spec->clients,
                BENCH_CLIENT_SLACK_MS) != 0) {
    failed = 1;
    goto done;
  }
  area->deadline_ns = bench_now_ns() + (uint64_t)spec->duration_ms * 1000000u;
  close(go[1]); /* go */
  go[1] = -1;
  if (supervise(&children, server, ready[0], 0, run_timeout_ms(spec)) != 0) {
    failed = 1;
    goto done;
  }
  failed = summarise(spec, area, samples, sample_cap, out) != 0;

done:
  kill_clients(&children);
  for (int i = 0; i < 2; i++) {
    if (ready[i] >= 0) {
      close(ready[i]);
    }
    if (go[i] >= 0) {
      close(go[i]);
    }
  }
  munmap(mapping, map_size);
  out->transport = server->transport->name;
  return failed ? -1 : 0;
}

/* ---- CPU time ---------------------------------------------------------- */

/* Sums the run time of every thread from /proc/PID/task/TID/schedstat,
 * which the scheduler keeps in nanoseconds. */
static int cpu_from_schedstat(pid_t pid, uint64_t *cpu_ns) {
  char path[96];
  snprintf(path, sizeof path, "/proc/%ld/task", (long)pid);
  DIR *tasks = opendir(path);
  if (tasks == NULL) {
    return -1;
  }
  uint64_t total = 0;
  int found = 0;
  struct dirent *entry;
  while ((entry = readdir(tasks)) != NULL) {
    if (entry->d_name[0] == '.') {
      continue;
    }
    char stat_path[160];
    snprintf(stat_path, sizeof stat_path, "/proc/%ld/task/%.32s/schedstat",
             (long)pid, entry->d_name);
    FILE *file = fopen(stat_path, "r");
    if (file == NULL) {
      continue;
    }
    unsigned long long run_ns;
    if (fscanf(file, "%llu", &run_ns) == 1) {
      total += run_ns;
      found = 1;
    }
    fclose(file);
  }
  closedir(tasks);
  if (!found) {
    return -1;
  }
  *cpu_ns = total;
  return 0;
}

/* utime + stime from /proc/PID/stat, in clock ticks (coarse). */
static int cpu_from_stat(pid_t pid, uint64_t *cpu_ns) {
  char path[64];
  char text[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
  FILE *file = fopen(path, "r");
  if (file == NULL) {
    return -1;
  }
  size_t len = fread(text, 1, sizeof text - 1, file);
  fclose(file);
  text[len] = '\0';
  /* The command name may contain spaces and parentheses: skip to the last
   * ')', after which come the state (field 3) and then fields 4 to 15. */
  char *after = strrchr(text, ')');
  if (after == NULL) {
    return -1;
  }
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  if (sscanf(after + 1,
             " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
             &stime) != 2) {
    return -1;
  }
  long ticks = sysconf(_SC_CLK_TCK);
  *cpu_ns = (utime + stime) * (1000000000ull / (uint64_t)(ticks > 0 ? ticks : 100));
  return 0;
}

int bench_process_cpu_ns(pid_t pid, uint64_t *cpu_ns) {
  if (cpu_from_schedstat(pid, cpu_ns) == 0) {
    return 0;
  }
  return cpu_from_stat(pid, cpu_ns);
}
