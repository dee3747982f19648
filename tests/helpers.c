/* The test service and the helper roles; see helpers.h. */
#include "helpers.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Arms a fault point (SHMRPC_FAULT) in this helper process. */
static void arm_fault(const char *point) {
#ifdef _WIN32
  _putenv_s("SHMRPC_FAULT", point);
#else
  setenv("SHMRPC_FAULT", point, 1);
#endif
}

void test_put_u64(unsigned char *out, uint64_t value) {
  int i;
  for (i = 0; i < 8; i++)
    out[i] = (unsigned char)(value >> (8 * i));
}

uint64_t test_get_u64(const unsigned char *in) {
  uint64_t value = 0;
  int i;
  for (i = 0; i < 8; i++)
    value |= (uint64_t)in[i] << (8 * i);
  return value;
}

void test_put_u32(unsigned char *out, uint32_t value) {
  int i;
  for (i = 0; i < 4; i++)
    out[i] = (unsigned char)(value >> (8 * i));
}

uint32_t test_get_u32(const unsigned char *in) {
  return (uint32_t)in[0] | (uint32_t)in[1] << 8 | (uint32_t)in[2] << 16 |
         (uint32_t)in[3] << 24;
}

const char *test_service_name(const char *tag) {
  static char names[16][64];
  static unsigned counter;
  char *name = names[counter % 16];
  snprintf(name, sizeof(names[0]), "t%u-%s-%u", (unsigned)test_proc_self_pid(),
           tag, counter);
  counter++;
  return name;
}

static int handle_echo(void *user, const void *req, size_t len,
                       shmrpc_reply *reply) {
  (void)user;
  return shmrpc_reply_write(reply, req, len);
}

static int handle_add(void *user, const void *req, size_t len,
                      shmrpc_reply *reply) {
  unsigned char out[8];
  (void)user;
  if (len != 16)
    return shmrpc_reply_error(reply, 1, "add takes 16 bytes");
  test_put_u64(out, test_get_u64(req) + test_get_u64((const unsigned char *)req + 8));
  return shmrpc_reply_write(reply, out, sizeof(out));
}

/* Set in the server helper role: T_SLOW then prints "slow" on stdout, so a
 * test knows the handler is running. */
static int announce_slow;

static int handle_slow(void *user, const void *req, size_t len,
                       shmrpc_reply *reply) {
  (void)user;
  if (len < 4)
    return shmrpc_reply_error(reply, 1, "slow takes a u32");
  if (announce_slow) {
    printf("slow\n");
    fflush(stdout);
  }
  test_sleep_ms((int32_t)test_get_u32(req));
  return shmrpc_reply_write(reply, req, len);
}

static int handle_fail(void *user, const void *req, size_t len,
                       shmrpc_reply *reply) {
  (void)user;
  (void)req;
  (void)len;
  return shmrpc_reply_error(reply, T_FAIL_CODE, T_FAIL_MESSAGE);
}

static int handle_failwith(void *user, const void *req, size_t len,
                           shmrpc_reply *reply) {
  char message[32];
  uint32_t code;
  (void)user;
  if (len != 4)
    return shmrpc_reply_error(reply, 1, "failwith takes a u32");
  code = test_get_u32(req);
  snprintf(message, sizeof(message), "fail %lu", (unsigned long)code);
  return shmrpc_reply_error(reply, (int32_t)code, message);
}

static int handle_big(void *user, const void *req, size_t len,
                      shmrpc_reply *reply) {
  size_t cap, n, i;
  unsigned char *out;
  (void)user;
  if (len != 4)
    return shmrpc_reply_error(reply, 1, "big takes a u32");
  n = test_get_u32(req);
  out = shmrpc_reply_buffer(reply, &cap);
  if (n > cap)
    return SHMRPC_ETOOBIG;
  for (i = 0; i < n; i++)
    out[i] = (unsigned char)(i * 31u + 7u);
  return shmrpc_reply_commit(reply, n);
}

static int handle_stop(void *user, const void *req, size_t len,
                       shmrpc_reply *reply) {
  (void)req;
  (void)len;
  (void)reply;
  shmrpc_server_stop(user);
  return 0;
}

static int handle_gate(void *user, const void *req, size_t len,
                       shmrpc_reply *reply) {
  test_gate *gate = user;
  test_event_set(gate->entered);
  if (test_event_wait(gate->release, T_EXIT_MS) != 0)
    return shmrpc_reply_error(reply, 1, "gate never opened");
  return shmrpc_reply_write(reply, req, len);
}

/* The library's test hook (src/core.h): its count of system calls. */
uint64_t shmrpc__test_syscalls(void);

uint64_t test_syscalls(void) { return shmrpc__test_syscalls(); }

unsigned shmrpc__os_cpu_count(void);

unsigned test_cpu_count(void) { return shmrpc__os_cpu_count(); }

static int handle_count(void *user, const void *req, size_t len,
                        shmrpc_reply *reply) {
  static volatile uint64_t count;
  unsigned char out[8];
  (void)user;
  (void)req;
  (void)len;
  test_put_u64(out, __atomic_add_fetch(&count, 1, __ATOMIC_SEQ_CST));
  return shmrpc_reply_write(reply, out, sizeof(out));
}

static int handle_syscalls(void *user, const void *req, size_t len,
                           shmrpc_reply *reply) {
  unsigned char out[8];
  (void)user;
  (void)req;
  (void)len;
  test_put_u64(out, test_syscalls());
  return shmrpc_reply_write(reply, out, sizeof(out));
}

void test_register_methods(shmrpc_server *server, test_gate *gate) {
  assert_int_equal(shmrpc_server_register(server, T_ECHO, "echo", handle_echo, NULL), 0);
  assert_int_equal(shmrpc_server_register(server, T_ADD, "add", handle_add, NULL), 0);
  assert_int_equal(shmrpc_server_register(server, T_SLOW, "slow", handle_slow, NULL), 0);
  assert_int_equal(shmrpc_server_register(server, T_FAIL, "fail", handle_fail, NULL), 0);
  assert_int_equal(shmrpc_server_register(server, T_BIG, "big", handle_big, NULL), 0);
  assert_int_equal(shmrpc_server_register(server, T_STOP, "stop", handle_stop, server), 0);
  assert_int_equal(shmrpc_server_register(server, T_FAILWITH, "failwith", handle_failwith, NULL), 0);
  assert_int_equal(shmrpc_server_register(server, T_COUNT, "count", handle_count, NULL), 0);
  assert_int_equal(shmrpc_server_register(server, T_SYSCALLS, "syscalls", handle_syscalls, NULL), 0);
  if (gate != NULL)
    assert_int_equal(shmrpc_server_register(server, T_GATE, "gate", handle_gate, gate), 0);
}

static void server_thread_main(void *arg) {
  test_server_thread *ts = arg;
  ts->run_rc = shmrpc_server_run(ts->server);
}

void test_server_thread_start_with(test_server_thread *ts, const char *name,
                                   const shmrpc_server_options *options,
                                   test_gate *gate) {
  memset(ts, 0, sizeof(*ts));
  assert_int_equal(shmrpc_server_create(&ts->server, name, options), 0);
  test_register_methods(ts->server, gate);
  assert_int_equal(test_thread_start(&ts->thread, server_thread_main, ts), 0);
}

void test_server_thread_start(test_server_thread *ts, const char *name,
                              size_t capacity, test_gate *gate) {
  shmrpc_server_options options;
  shmrpc_server_options_init(&options);
  if (capacity > 0)
    options.capacity = capacity;
  test_server_thread_start_with(ts, name, &options, gate);
}

uint64_t test_wait_recoveries(shmrpc_server *server, uint64_t count) {
  int64_t end = test_now_ms() + T_EXIT_MS;
  shmrpc_stats stats;
  for (;;) {
    assert_int_equal(shmrpc_server_stats(server, &stats), 0);
    if (stats.recoveries >= count || test_now_ms() > end)
      return stats.recoveries;
    test_sleep_ms(5);
  }
}

void test_server_thread_stop(test_server_thread *ts) {
  shmrpc_server_stop(ts->server);
  test_thread_join(ts->thread);
  assert_int_equal(ts->run_rc, 0);
  shmrpc_server_destroy(ts->server);
  ts->server = NULL;
}

test_proc *test_spawn_server_args(const char *name, const char *capacity,
                                  const char *const extra[]) {
  const char *args[16] = {"server", name, capacity};
  test_proc *proc = NULL;
  char line[128];
  size_t n = 3, i;
  for (i = 0; extra != NULL && extra[i] != NULL && n < 15; i++)
    args[n++] = extra[i];
  args[n] = NULL;
  assert_int_equal(test_proc_spawn(&proc, args), 0);
  assert_true(test_proc_read_line(proc, line, sizeof(line), T_READY_MS) > 0);
  assert_string_equal(line, "ready");
  return proc;
}

test_proc *test_spawn_server(const char *name, const char *capacity) {
  return test_spawn_server_args(name, capacity, NULL);
}

void test_wait_service_dead(const char *name) {
  int64_t end = test_now_ms() + T_READY_MS;
  for (;;) {
    shmrpc_service_info info;
    int rc = shmrpc_service_query(name, 0, &info);
    if (rc == SHMRPC_ENOSERVER || (rc == 0 && !info.alive))
      return;
    assert_int_equal(rc, 0);
    assert_true(test_now_ms() < end);
    test_sleep_ms(1);
  }
}

uint64_t test_call_add(shmrpc_client *client, uint64_t a, uint64_t b) {
  unsigned char req[16], resp[8];
  size_t len = 0;
  test_put_u64(req, a);
  test_put_u64(req + 8, b);
  assert_int_equal(shmrpc_call(client, T_ADD, req, sizeof(req), resp,
                               sizeof(resp), &len, T_EXIT_MS),
                   0);
  assert_int_equal(len, 8);
  return test_get_u64(resp);
}

void test_read_expected(test_proc *proc, const char *expected) {
  char line[128];
  assert_true(test_proc_read_line(proc, line, sizeof(line), T_EXIT_MS) > 0);
  assert_string_equal(line, expected);
}

void test_stop_server(shmrpc_client *client, test_proc *server) {
  assert_int_equal(shmrpc_call(client, T_STOP, NULL, 0, NULL, 0, NULL, T_EXIT_MS), 0);
  test_expect_exit(server, 0);
}

void test_expect_exit(test_proc *proc, int expected_code) {
  int code = -1;
  assert_int_equal(test_proc_wait(proc, T_EXIT_MS, &code), 0);
  assert_int_equal(code, expected_code);
}

/* server NAME CAPACITY [ARG...]: serves the test methods until T_STOP.
 * ARGs: "safe" (only methods that neither block nor stop the server, for a
 * server whose words will be scribbled on), "lanes=N", "workers=N", "spin=US",
 * "access=owner|group|everyone", "fork" (forks a child that sleeps and
 * keeps every inherited descriptor), or a fault point to die at. */
static int role_server(int argc, char **argv) {
  int safe_methods_only = 0, fork_child = 0, i;
  shmrpc_server_options options;
  shmrpc_server *server;
  int rc;
  if (argc < 4)
    return 2;
  shmrpc_server_options_init(&options);
  options.capacity = (size_t)strtoul(argv[3], NULL, 10);
  for (i = 4; i < argc; i++) {
    if (strcmp(argv[i], "safe") == 0)
      safe_methods_only = 1;
    else if (strncmp(argv[i], "lanes=", 6) == 0)
      options.lanes = (uint32_t)strtoul(argv[i] + 6, NULL, 10);
    else if (strncmp(argv[i], "workers=", 8) == 0)
      options.workers = (uint32_t)strtoul(argv[i] + 8, NULL, 10);
    else if (strncmp(argv[i], "spin=", 5) == 0)
      options.spin_us = (int32_t)strtol(argv[i] + 5, NULL, 10);
    else if (strcmp(argv[i], "access=group") == 0)
      options.access = SHMRPC_ACCESS_GROUP;
    else if (strcmp(argv[i], "access=everyone") == 0)
      options.access = SHMRPC_ACCESS_EVERYONE;
    else if (strcmp(argv[i], "fork") == 0)
      fork_child = 1;
    else
      arm_fault(argv[i]);
  }
  rc = shmrpc_server_create(&server, argv[2], &options);
  if (rc != 0) {
    printf("error %s\n", shmrpc_err_name(rc));
    fflush(stdout);
    return 1;
  }
  if (safe_methods_only) {
    assert_int_equal(shmrpc_server_register(server, T_ECHO, "echo", handle_echo, NULL), 0);
    assert_int_equal(shmrpc_server_register(server, T_ADD, "add", handle_add, NULL), 0);
    assert_int_equal(shmrpc_server_register(server, T_FAIL, "fail", handle_fail, NULL), 0);
    assert_int_equal(shmrpc_server_register(server, T_BIG, "big", handle_big, NULL), 0);
    assert_int_equal(shmrpc_server_register(server, T_FAILWITH, "failwith", handle_failwith, NULL), 0);
  } else {
    test_register_methods(server, NULL);
  }
  announce_slow = 1;
  if (fork_child && test_proc_fork_sleeper() != 0) {
    printf("error fork\n");
    fflush(stdout);
    return 1;
  }
  printf("ready\n");
  fflush(stdout);
  rc = shmrpc_server_run(server);
  shmrpc_server_destroy(server);
  printf("stopped %s\n", shmrpc_err_name(rc));
  fflush(stdout);
  return rc == 0 ? 0 : 1;
}

/* client NAME CALLS ID: CALLS additions, every answer checked. */
static int role_client(int argc, char **argv) {
  shmrpc_client *client;
  unsigned long calls, id, i;
  int rc;
  if (argc < 5)
    return 2;
  calls = strtoul(argv[3], NULL, 10);
  id = strtoul(argv[4], NULL, 10);
  rc = shmrpc_client_open(&client, argv[2], NULL, T_READY_MS);
  if (rc != 0) {
    printf("open %s\n", shmrpc_err_name(rc));
    return 1;
  }
  for (i = 0; i < calls; i++) {
    unsigned char req[16], resp[8];
    uint64_t a = ((uint64_t)id << 40) + i, b = i * 7919u + id;
    size_t len = 0;
    test_put_u64(req, a);
    test_put_u64(req + 8, b);
    rc = shmrpc_call(client, T_ADD, req, sizeof(req), resp, sizeof(resp), &len,
                     T_EXIT_MS);
    if (rc != 0 || len != 8 || test_get_u64(resp) != a + b) {
      printf("bad call %lu: %s len %zu\n", i, shmrpc_err_name(rc), len);
      shmrpc_client_close(client);
      return 1;
    }
  }
  shmrpc_client_close(client);
  printf("ok %lu\n", calls);
  return 0;
}

/* call NAME METHOD ARG TIMEOUT [OPEN_TIMEOUT]: one call; prints "opened", then
 * "result NAME VALUE" (VALUE: T_ADD's sum of ARG+ARG, else ARG echoed). */
static int role_call(int argc, char **argv) {
  shmrpc_client *client;
  unsigned char req[16], resp[16];
  uint32_t method;
  uint64_t arg;
  size_t req_len, len = 0;
  int32_t timeout;
  int rc;
  if (argc < 6)
    return 2;
  method = (uint32_t)strtoul(argv[3], NULL, 10);
  arg = strtoull(argv[4], NULL, 10);
  timeout = (int32_t)strtol(argv[5], NULL, 10);
  rc = shmrpc_client_open(&client, argv[2], NULL,
                          argc > 6 ? (int32_t)strtol(argv[6], NULL, 10)
                                   : T_READY_MS);
  if (rc != 0) {
    printf("open %s\n", shmrpc_err_name(rc));
    return 1;
  }
  printf("opened\n");
  fflush(stdout);
  if (method == T_ADD) {
    test_put_u64(req, arg);
    test_put_u64(req + 8, arg);
    req_len = 16;
  } else {
    test_put_u32(req, (uint32_t)arg);
    req_len = 4;
  }
  rc = shmrpc_call(client, method, req, req_len, resp, sizeof(resp), &len,
                   timeout);
  printf("result %s %llu\n", shmrpc_err_name(rc),
         rc == 0 && len >= 8 ? (unsigned long long)test_get_u64(resp)
         : rc == 0 && len >= 4 ? (unsigned long long)test_get_u32(resp)
                               : 0ull);
  fflush(stdout);
  shmrpc_client_close(client);
  return 0;
}

/* faultcall NAME POINT: one T_ADD call that dies at fault point POINT. */
static int role_faultcall(int argc, char **argv) {
  shmrpc_client *client;
  unsigned char req[16], resp[8];
  int rc;
  if (argc < 4)
    return 2;
  rc = shmrpc_client_open(&client, argv[2], NULL, T_READY_MS);
  if (rc != 0) {
    printf("open %s\n", shmrpc_err_name(rc));
    return 1;
  }
  test_put_u64(req, 1);
  test_put_u64(req + 8, 2);
  arm_fault(argv[3]);
  rc = shmrpc_call(client, T_ADD, req, 16, resp, 8, NULL, T_EXIT_MS);
  /* Reaching this line means the fault point was never hit. */
  printf("survived %s\n", shmrpc_err_name(rc));
  shmrpc_client_close(client);
  return 3;
}

/* One soak client thread's work; see role_soakclient. */
typedef struct soak_worker {
  shmrpc_client *client;
  int64_t end;
  unsigned long id, ok, failed;
  char problem[384]; /* "" while all is well */
} soak_worker;

static void soak_worker_main(void *arg) {
  soak_worker *w = arg;
  unsigned long i = 0;
  while (test_now_ms() < w->end && w->problem[0] == '\0') {
    unsigned char req[16], resp[8];
    uint64_t a = ((uint64_t)w->id << 40) + i, b = (uint64_t)i * 104729u;
    size_t len = 0;
    int rc;
    i++;
    test_put_u64(req, a);
    test_put_u64(req + 8, b);
    rc = shmrpc_call(w->client, T_ADD, req, 16, resp, 8, &len, 200);
    if (rc == 0) {
      if (len != 8 || test_get_u64(resp) != a + b)
        snprintf(w->problem, sizeof(w->problem), "wrong answer at call %lu",
                 i);
      else
        w->ok++;
    } else if (rc == SHMRPC_ETIMEDOUT || rc == SHMRPC_ESERVERDIED ||
               rc == SHMRPC_ESHUTDOWN || rc == SHMRPC_ENOSERVER) {
      w->failed++;
    } else {
      snprintf(w->problem, sizeof(w->problem), "unclean %s at call %lu: %s",
               shmrpc_err_name(rc), i, shmrpc_error_message(rc));
    }
  }
}

/* soakclient NAME DURATION_MS ID: two threads making checked additions
 * through one shared handle with a short timeout for DURATION_MS, while
 * servers and other clients die around them. Every answer must be right;
 * every failure must be a clean error. Prints "done OK FAILED" and exits 0,
 * or "wrong ..." / "unclean ..." and 1. */
static int role_soakclient(int argc, char **argv) {
  soak_worker workers[2];
  test_thread *threads[2];
  shmrpc_client *client = NULL;
  unsigned long failed_opens = 0;
  int64_t end;
  int i, rc;
  if (argc < 5)
    return 2;
  end = test_now_ms() + strtol(argv[3], NULL, 10);
  while ((rc = shmrpc_client_open(&client, argv[2], NULL, 200)) != 0) {
    if (rc != SHMRPC_ENOSERVER) {
      printf("unclean open %s\n", shmrpc_err_name(rc));
      return 1;
    }
    failed_opens++;
    if (test_now_ms() >= end) {
      printf("done 0 %lu\n", failed_opens);
      return 0;
    }
  }
  for (i = 0; i < 2; i++) {
    memset(&workers[i], 0, sizeof(workers[i]));
    workers[i].client = client;
    workers[i].end = end;
    workers[i].id = strtoul(argv[4], NULL, 10) * 2 + (unsigned long)i;
    if (test_thread_start(&threads[i], soak_worker_main, &workers[i]) != 0)
      return 1;
  }
  for (i = 0; i < 2; i++)
    test_thread_join(threads[i]);
  shmrpc_client_close(client);
  for (i = 0; i < 2; i++) {
    if (workers[i].problem[0] != '\0') {
      printf("%s\n", workers[i].problem);
      return 1;
    }
  }
  printf("done %lu %lu\n", workers[0].ok + workers[1].ok,
         workers[0].failed + workers[1].failed + failed_opens);
  return 0;
}

int test_helper_main(int argc, char **argv) {
  if (argc < 2)
    return -1;
  if (strcmp(argv[1], "sleeper") == 0) {
    /* test_proc_fork_sleeper's child on Windows: outlive the server, for
     * a while. */
    int i;
    for (i = 0; i < 200; i++)
      test_sleep_ms(100);
    return 0;
  }
  if (strcmp(argv[1], "server") == 0 || strcmp(argv[1], "client") == 0 ||
      strcmp(argv[1], "call") == 0 || strcmp(argv[1], "faultcall") == 0 ||
      strcmp(argv[1], "soakclient") == 0)
    test_proc_helper_started();
  if (strcmp(argv[1], "server") == 0)
    return role_server(argc, argv);
  if (strcmp(argv[1], "client") == 0)
    return role_client(argc, argv);
  if (strcmp(argv[1], "call") == 0)
    return role_call(argc, argv);
  if (strcmp(argv[1], "faultcall") == 0)
    return role_faultcall(argc, argv);
  if (strcmp(argv[1], "soakclient") == 0)
    return role_soakclient(argc, argv);
  return -1;
}
