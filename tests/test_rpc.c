/*
 * The core behaviour of shmrpc: results, concurrency, timeouts, errors and
 * stopping, across processes (helpers re-run this binary) and across threads.
 */
#ifndef _WIN32
#define _POSIX_C_SOURCE 200809L /* sigaction, pthread_kill, nanosleep */
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"
#include "shmrpc_payload.h"

#ifndef _WIN32
#include <pthread.h>
#include <signal.h>
#include <time.h>
#endif

static void test_errors_have_names(void **state) {
  static const int codes[] = {
#define T_CODE(name, value, message) SHMRPC_##name,
      SHMRPC_ERRNO_MAP(T_CODE)
#undef T_CODE
  };
  size_t i, j;
  (void)state;
  for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
    assert_true(codes[i] < 0);
    assert_string_not_equal(shmrpc_strerror(codes[i]), "unknown error");
    assert_string_not_equal(shmrpc_err_name(codes[i]), "SHMRPC_UNKNOWN");
    for (j = 0; j < i; j++)
      assert_string_not_equal(shmrpc_strerror(codes[i]),
                              shmrpc_strerror(codes[j]));
  }
  assert_string_equal(shmrpc_err_name(SHMRPC_ETIMEDOUT), "SHMRPC_ETIMEDOUT");
  assert_string_equal(shmrpc_strerror(12345), "unknown error");
  assert_int_equal(shmrpc_version(), SHMRPC_VERSION_HEX);
  assert_string_equal(shmrpc_version_string(), SHMRPC_VERSION_STRING);
}

static void test_bad_names_are_refused(void **state) {
  char too_long[SHMRPC_NAME_MAX + 2], longest[SHMRPC_NAME_MAX + 1];
  const char *bad[] = {"", "a/b", "/abs", "sp ace", "back\\slash", "uni\xc3\xa9",
                       too_long, NULL};
  shmrpc_server *server = (shmrpc_server *)&state; /* must be reset to NULL */
  shmrpc_client *client = (shmrpc_client *)&state;
  size_t i;
  (void)state;
  memset(too_long, 'x', sizeof(too_long) - 1);
  too_long[sizeof(too_long) - 1] = '\0';
  for (i = 0; bad[i] != NULL; i++) {
    assert_int_equal(shmrpc_name_check(bad[i]), SHMRPC_EINVAL);
    assert_int_equal(shmrpc_server_create(&server, bad[i], NULL), SHMRPC_EINVAL);
    assert_null(server);
    assert_int_equal(shmrpc_client_open(&client, bad[i], NULL, 0), SHMRPC_EINVAL);
    assert_null(client);
  }
  assert_int_equal(shmrpc_name_check(NULL), SHMRPC_EINVAL);
  assert_int_equal(shmrpc_server_create(&server, NULL, NULL), SHMRPC_EINVAL);

  /* The longest valid name works end to end. */
  memset(longest, 'n', sizeof(longest) - 1);
  longest[sizeof(longest) - 1] = '\0';
  snprintf(longest, 12, "t%u", (unsigned)test_proc_self_pid());
  longest[strlen(longest)] = 'n';
  assert_int_equal(strlen(longest), SHMRPC_NAME_MAX);
  assert_int_equal(shmrpc_server_create(&server, longest, NULL), 0);
  assert_int_equal(shmrpc_client_open(&client, longest, NULL, 0), 0);
  shmrpc_client_close(client);
  shmrpc_server_destroy(server);
}

static void test_bad_arguments(void **state) {
  shmrpc_server_options options;
  shmrpc_server *server = NULL;
  shmrpc_client *client = NULL;
  test_server_thread ts;
  const char *name = test_service_name("args");
  unsigned char buf[8];
  (void)state;

  shmrpc_server_options_init(&options);
  options.capacity = (size_t)SHMRPC_MAX_CAPACITY + 1;
  assert_int_equal(shmrpc_server_create(&server, name, &options), SHMRPC_EINVAL);
  shmrpc_server_options_init(&options);
  options.access = 7;
  assert_int_equal(shmrpc_server_create(&server, name, &options), SHMRPC_EINVAL);
  assert_int_equal(shmrpc_client_open(&client, name, NULL, -2), SHMRPC_EINVAL);

  test_server_thread_start(&ts, name, 0, NULL);
  assert_int_equal(shmrpc_server_register(ts.server, SHMRPC_METHOD_RESERVED,
                                          "x", (shmrpc_handler)1, NULL),
                   SHMRPC_EINVAL);
  assert_int_equal(shmrpc_client_open(&client, name, NULL, T_READY_MS), 0);
  assert_int_equal(shmrpc_call(client, T_ECHO, NULL, 4, buf, sizeof(buf), NULL, 100),
                   SHMRPC_EINVAL);
  assert_int_equal(shmrpc_call(client, T_ECHO, buf, 4, NULL, 4, NULL, 100),
                   SHMRPC_EINVAL);
  assert_int_equal(shmrpc_call(client, T_ECHO, buf, 4, buf, 4, NULL, -5),
                   SHMRPC_EINVAL);
  assert_int_equal(shmrpc_call(NULL, T_ECHO, buf, 4, buf, 4, NULL, 100),
                   SHMRPC_EINVAL);
  shmrpc_client_close(client);
  shmrpc_client_close(NULL);
  shmrpc_server_destroy(NULL);
  test_server_thread_stop(&ts);
}

/* Results, application errors and unknown methods, with the server in
 * another process. */
static void test_cross_process_results(void **state) {
  const char *name = test_service_name("results");
  test_proc *server = test_spawn_server(name, "65536");
  shmrpc_client *client = NULL;
  unsigned char req[300], resp[300];
  const char *message = NULL;
  size_t len = 0, i;
  (void)state;

  assert_int_equal(shmrpc_client_open(&client, name, NULL, T_READY_MS), 0);
  assert_int_equal(shmrpc_client_capacity(client), 65536);
  assert_int_equal(test_call_add(client, 2, 3), 5);
  assert_int_equal(test_call_add(client, UINT64_MAX, 2), 1);

  for (i = 0; i < sizeof(req); i++)
    req[i] = (unsigned char)(i ^ 0x5a);
  assert_int_equal(shmrpc_call(client, T_ECHO, req, sizeof(req), resp,
                               sizeof(resp), &len, T_EXIT_MS),
                   0);
  assert_int_equal(len, sizeof(req));
  assert_memory_equal(resp, req, sizeof(req));
  /* An empty request and the built-in ping. */
  assert_int_equal(shmrpc_call(client, T_ECHO, NULL, 0, NULL, 0, &len, T_EXIT_MS), 0);
  assert_int_equal(len, 0);
  assert_int_equal(shmrpc_call(client, SHMRPC_METHOD_PING, "ping", 4, resp,
                               sizeof(resp), &len, T_EXIT_MS),
                   0);
  assert_int_equal(len, 4);
  assert_memory_equal(resp, "ping", 4);

  /* An application error carries the handler's code and message. */
  assert_int_equal(shmrpc_call(client, T_FAIL, req, 1, resp, sizeof(resp), &len,
                               T_EXIT_MS),
                   SHMRPC_EAPP);
  assert_int_equal(shmrpc_client_app_error(client, &message), T_FAIL_CODE);
  assert_string_equal(message, T_FAIL_MESSAGE);
  /* ...and is cleared by the next call. */
  assert_int_equal(test_call_add(client, 1, 1), 2);
  assert_int_equal(shmrpc_client_app_error(client, &message), 0);
  assert_string_equal(message, "");

  /* Unknown methods are a transport error, not an application one. */
  assert_int_equal(shmrpc_call(client, 999, req, 1, resp, sizeof(resp), &len,
                               T_EXIT_MS),
                   SHMRPC_ENOMETHOD);
  assert_int_equal(shmrpc_call(client, SHMRPC_METHOD_RESERVED + 77, req, 1, resp,
                               sizeof(resp), &len, T_EXIT_MS),
                   SHMRPC_ENOMETHOD);
  assert_int_equal(test_call_add(client, 40, 2), 42);

  /* Introspection: the built-in method list and the control block. */
  {
    unsigned char list[1024];
    shmrpc_reader reader;
    shmrpc_service_info info;
    uint32_t id = 0;
    const char *method_name = NULL;
    size_t name_len = 0;
    assert_int_equal(shmrpc_call(client, SHMRPC_METHOD_LIST, NULL, 0, list,
                                 sizeof(list), &len, T_EXIT_MS),
                     0);
    shmrpc_reader_init(&reader, list, len);
    assert_int_equal(shmrpc_get_u32(&reader, &id), 0);
    assert_int_equal(shmrpc_get_str(&reader, &method_name, &name_len), 0);
    assert_int_equal(id, T_ECHO);
    assert_memory_equal(method_name, "echo", 4);
    assert_int_equal(name_len, 4);
    assert_int_equal(shmrpc_service_query(name, 0, &info), 0);
    assert_int_equal(info.alive, 1);
    assert_int_equal(info.capacity, 65536);
    assert_true(info.stats.calls >= 8);
    assert_int_equal(info.stats.app_errors, 1);
    assert_int_equal(info.slot_state, 0);
  }

  test_stop_server(client, server);
  shmrpc_client_close(client);
  test_proc_free(server);
}

/* Four client processes x 1000 calls, every answer checked. */
static void test_four_client_processes(void **state) {
  const char *name = test_service_name("four");
  test_proc *server = test_spawn_server(name, "4096");
  test_proc *clients[4];
  shmrpc_client *stopper = NULL;
  char line[128], id[8];
  int i;
  (void)state;

  for (i = 0; i < 4; i++) {
    const char *args[] = {"client", name, "1000", id, NULL};
    snprintf(id, sizeof(id), "%d", i + 1);
    assert_int_equal(test_proc_spawn(&clients[i], args), 0);
  }
  for (i = 0; i < 4; i++) {
    assert_true(test_proc_read_line(clients[i], line, sizeof(line), T_EXIT_MS) > 0);
    assert_string_equal(line, "ok 1000");
    test_expect_exit(clients[i], 0);
    test_proc_free(clients[i]);
  }
  assert_int_equal(shmrpc_client_open(&stopper, name, NULL, T_READY_MS), 0);
  assert_int_equal(shmrpc_call(stopper, T_STOP, NULL, 0, NULL, 0, NULL, T_EXIT_MS), 0);
  shmrpc_client_close(stopper);
  test_expect_exit(server, 0);
  test_proc_free(server);
}

typedef struct adder {
  const char *name;
  uint64_t id;
  int calls_ok;
} adder;

static void adder_thread(void *arg) {
  adder *a = arg;
  shmrpc_client *client = NULL;
  int i;
  if (shmrpc_client_open(&client, a->name, NULL, T_READY_MS) != 0)
    return;
  for (i = 0; i < 1000; i++) {
    unsigned char req[16], resp[8];
    uint64_t x = (a->id << 40) + (uint64_t)i, y = (uint64_t)i * 31u;
    size_t len = 0;
    test_put_u64(req, x);
    test_put_u64(req + 8, y);
    if (shmrpc_call(client, T_ADD, req, 16, resp, 8, &len, T_EXIT_MS) != 0 ||
        len != 8 || test_get_u64(resp) != x + y)
      break;
    a->calls_ok++;
  }
  shmrpc_client_close(client);
}

/* The same scenario across threads of one process. */
static void test_four_client_threads(void **state) {
  const char *name = test_service_name("threads");
  test_server_thread ts;
  test_thread *threads[4];
  adder adders[4];
  shmrpc_stats stats;
  int i;
  (void)state;

  test_server_thread_start(&ts, name, 0, NULL);
  for (i = 0; i < 4; i++) {
    adders[i].name = name;
    adders[i].id = (uint64_t)i + 1;
    adders[i].calls_ok = 0;
    assert_int_equal(test_thread_start(&threads[i], adder_thread, &adders[i]), 0);
  }
  for (i = 0; i < 4; i++) {
    test_thread_join(threads[i]);
    assert_int_equal(adders[i].calls_ok, 1000);
  }
  assert_int_equal(shmrpc_server_stats(ts.server, &stats), 0);
  assert_int_equal(stats.calls, 4000);
  assert_int_equal(stats.bytes_in, 4000 * 16);
  assert_int_equal(stats.bytes_out, 4000 * 8);
  test_server_thread_stop(&ts);
}

/* A call that times out while the server is slow; the next caller, at
 * once, gets its own answer, never the late one. */
static void test_timeout_then_next_caller(void **state) {
  const char *name = test_service_name("timeout");
  test_proc *server = test_spawn_server(name, "65536");
  shmrpc_client *slow = NULL, *next = NULL;
  unsigned char req[4], resp[16];
  size_t len = 0;
  int64_t started;
  (void)state;

  assert_int_equal(shmrpc_client_open(&slow, name, NULL, T_READY_MS), 0);
  assert_int_equal(shmrpc_client_open(&next, name, NULL, T_READY_MS), 0);
  test_put_u32(req, 400);
  started = test_now_ms();
  assert_int_equal(shmrpc_call(slow, T_SLOW, req, 4, resp, sizeof(resp), &len, 50),
                   SHMRPC_ETIMEDOUT);
  assert_true(test_now_ms() - started >= 50);
  /* The server is still inside the slow handler: this caller must wait it
   * out and receive its own sum, not the slow call's echo. */
  assert_int_equal(test_call_add(next, 1000, 234), 1234);
  assert_int_equal(test_call_add(next, 7, 8), 15);
  /* The handle that timed out is usable again. */
  assert_int_equal(test_call_add(slow, 20, 22), 42);

  test_stop_server(next, server);
  shmrpc_client_close(slow);
  shmrpc_client_close(next);
  test_proc_free(server);
}

#ifndef _WIN32
static volatile sig_atomic_t interruptions;

static void on_interrupt(int signo) {
  (void)signo;
  interruptions = interruptions + 1;
}

typedef struct interrupter {
  pthread_t target;
  int stop; /* read and written with __atomic builtins */
} interrupter;

/* Interrupts the target thread every 200 us until told to stop. The pause
 * only paces the signals; nothing waits for it. */
static void *interrupt_loop(void *arg) {
  interrupter *it = arg;
  struct timespec pause = {0, 200000};
  while (!__atomic_load_n(&it->stop, __ATOMIC_ACQUIRE)) {
    pthread_kill(it->target, SIGUSR1);
    nanosleep(&pause, NULL);
  }
  return NULL;
}

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A caller whose sleeps signals keep cutting short (a handler installed
 * without SA_RESTART ends each FUTEX_WAIT early) times out no earlier than
 * asked: after an interrupted sleep the time left is read from the clock,
 * never assumed. The timeout is 2 ms, so that even one interrupted sleep
 * counted as whole would show. */
static void test_timeout_under_signals(void **state) {
  const char *name = test_service_name("signals");
  test_proc *server = test_spawn_server(name, "4096");
  shmrpc_client *client = NULL;
  shmrpc_client_options options;
  struct sigaction action;
  interrupter it;
  pthread_t thread;
  unsigned char req[4], resp[16];
  size_t len = 0;
  sig_atomic_t before;
  int64_t started, elapsed_us;
  int rc;
  (void)state;

  memset(&action, 0, sizeof(action));
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0; /* no SA_RESTART: each signal ends the wait */
  assert_int_equal(sigaction(SIGUSR1, &action, NULL), 0);
  /* A client that never spins goes straight to its sleeps, whatever the
   * server does. */
  shmrpc_client_options_init(&options);
  options.spin_us = 0;
  assert_int_equal(shmrpc_client_open(&client, name, &options, T_READY_MS), 0);

  it.target = pthread_self();
  it.stop = 0;
  test_put_u32(req, 400); /* the handler takes 400 ms */
  before = interruptions;
  assert_int_equal(pthread_create(&thread, NULL, interrupt_loop, &it), 0);
  started = now_us();
  rc = shmrpc_call(client, T_SLOW, req, 4, resp, sizeof(resp), &len, 2);
  elapsed_us = now_us() - started;
  __atomic_store_n(&it.stop, 1, __ATOMIC_RELEASE);
  assert_int_equal(pthread_join(thread, NULL), 0);
  /* The handler stays: a signal still on its way must not find the default
   * action, which would end this process. */

  print_message("timed out after %ld us, %d signals\n", (long)elapsed_us,
                (int)(interruptions - before));
  assert_int_equal(rc, SHMRPC_ETIMEDOUT);
  assert_true(elapsed_us >= 2000);
  assert_true(interruptions - before > 0);
  /* The next call waits the slow one out and gets its own answer. */
  assert_int_equal(test_call_add(client, 2, 3), 5);

  test_stop_server(client, server);
  shmrpc_client_close(client);
  test_proc_free(server);
}
#endif

/* A caller queued for the only lane behind a slow call times out cleanly
 * too, and the server counts that timeout. */
static void test_timeout_while_queued(void **state) {
  const char *name = test_service_name("queued");
  test_gate gate = {test_event_new(), test_event_new()};
  shmrpc_server_options options;
  test_server_thread ts;
  test_proc *holder;
  shmrpc_client *queued = NULL;
  shmrpc_stats stats;
  char line[128], gate_id[8];
  (void)state;

  shmrpc_server_options_init(&options);
  options.lanes = 1;
  test_server_thread_start_with(&ts, name, &options, &gate);
  snprintf(gate_id, sizeof(gate_id), "%d", T_GATE);
  {
    const char *args[] = {"call", name, gate_id, "5", "-1", NULL};
    assert_int_equal(test_proc_spawn(&holder, args), 0);
  }
  assert_int_equal(test_event_wait(gate.entered, T_READY_MS), 0);
  assert_int_equal(shmrpc_client_open(&queued, name, NULL, T_READY_MS), 0);
  assert_int_equal(shmrpc_call(queued, T_ECHO, "x", 1, line, sizeof(line), NULL, 30),
                   SHMRPC_ETIMEDOUT);
  test_event_set(gate.release);
  assert_true(test_proc_read_line(holder, line, sizeof(line), T_EXIT_MS) > 0);
  assert_string_equal(line, "opened");
  assert_true(test_proc_read_line(holder, line, sizeof(line), T_EXIT_MS) > 0);
  assert_string_equal(line, "result SHMRPC_OK 5");
  assert_int_equal(shmrpc_server_stats(ts.server, &stats), 0);
  assert_int_equal(stats.timeouts, 1);

  shmrpc_client_close(queued);
  test_expect_exit(holder, 0);
  test_proc_free(holder);
  test_server_thread_stop(&ts);
  test_event_free(gate.entered);
  test_event_free(gate.release);
}

static void test_no_server(void **state) {
  const char *name = test_service_name("nobody");
  shmrpc_client *client = NULL;
  int64_t started = test_now_ms();
  (void)state;
  assert_int_equal(shmrpc_client_open(&client, name, NULL, 100), SHMRPC_ENOSERVER);
  assert_null(client);
  assert_true(test_now_ms() - started >= 100);
  assert_int_equal(shmrpc_client_open(&client, name, NULL, SHMRPC_NOWAIT),
                   SHMRPC_ENOSERVER);
}

/* Messages of up to 32 bytes travel in the control lines, larger ones in
 * the payload areas (docs/PROTOCOL.md). Every size on both sides of that
 * boundary arrives intact, in both directions, whatever size came before:
 * small after large and large after small. */
static void test_message_sizes(void **state) {
  static const size_t sizes[] = {0, 1, 31, 32, 33, 64, 255, 256};
  const size_t count = sizeof(sizes) / sizeof(sizes[0]);
  const char *name = test_service_name("sizes");
  test_proc *server = test_spawn_server(name, "256");
  shmrpc_client *client = NULL;
  unsigned char req[256], resp[256];
  size_t i, k, len;
  int round;
  (void)state;

  assert_int_equal(shmrpc_client_open(&client, name, NULL, T_READY_MS), 0);
  for (round = 0; round < 2; round++) {
    for (i = 0; i < count; i++) {
      size_t size = sizes[round == 0 ? i : count - 1 - i];
      for (k = 0; k < size; k++)
        req[k] = (unsigned char)(size * 7u + k + (size_t)round);
      memset(resp, 0xee, sizeof(resp));
      len = 999;
      assert_int_equal(shmrpc_call(client, T_ECHO, req, size, resp,
                                   sizeof(resp), &len, T_EXIT_MS),
                       0);
      assert_int_equal(len, size);
      assert_memory_equal(resp, req, size);

      /* A small request with an answer of this size. */
      test_put_u32(req, (uint32_t)size);
      memset(resp, 0xee, sizeof(resp));
      assert_int_equal(shmrpc_call(client, T_BIG, req, 4, resp, sizeof(resp),
                                   &len, T_EXIT_MS),
                       0);
      assert_int_equal(len, size);
      for (k = 0; k < size; k++)
        assert_int_equal(resp[k], (unsigned char)(k * 31u + 7u));
    }
  }
  test_stop_server(client, server);
  shmrpc_client_close(client);
  test_proc_free(server);
}

/* A fallback handler sees every method nobody registered, built-ins
 * included, learns the id and the caller's remaining time, and can fail a
 * call with a transport code, as a bridge forwarding calls does. */
static int forward_like(void *user, const void *req, size_t len,
                        shmrpc_reply *reply) {
  unsigned char out[8];
  (void)user;
  if (len == 4) /* a transport code to fail with, as a u32 of its negation */
    return shmrpc_reply_fail(
        reply, -(int)((const unsigned char *)req)[0]);
  test_put_u32(out, shmrpc_reply_method(reply));
  test_put_u32(out + 4, (uint32_t)shmrpc_reply_timeout(reply));
  return shmrpc_reply_write(reply, out, sizeof(out));
}

static void serve_loop(void *arg) { (void)shmrpc_server_run(arg); }

static void test_fallback_forwarding(void **state) {
  static const int forwarded[] = {SHMRPC_ETIMEDOUT, SHMRPC_ENOSERVER,
                                  SHMRPC_ESERVERDIED, SHMRPC_ENOMETHOD,
                                  SHMRPC_ETOOBIG};
  const char *name = test_service_name("fallback");
  shmrpc_server *server = NULL;
  shmrpc_client *client = NULL;
  test_thread *thread = NULL;
  unsigned char req[4], resp[8];
  size_t len = 0, i;
  (void)state;

  assert_int_equal(shmrpc_server_create(&server, name, NULL), 0);
  assert_int_equal(shmrpc_server_set_fallback(NULL, forward_like, NULL),
                   SHMRPC_EINVAL);
  assert_int_equal(shmrpc_server_set_fallback(server, NULL, NULL),
                   SHMRPC_EINVAL);
  assert_int_equal(shmrpc_server_set_fallback(server, forward_like, NULL), 0);
  assert_int_equal(shmrpc_reply_fail(NULL, SHMRPC_ETIMEDOUT), SHMRPC_EINVAL);
  assert_int_equal(test_thread_start(&thread, serve_loop, server), 0);
  assert_int_equal(shmrpc_client_open(&client, name, NULL, T_READY_MS), 0);

  /* Any id, the built-in ping included, reaches the fallback. */
  assert_int_equal(shmrpc_call(client, 77, NULL, 0, resp, sizeof(resp), &len,
                               5000),
                   0);
  assert_int_equal(len, 8);
  assert_int_equal(test_get_u64(resp) & 0xffffffffu, 77);
  /* The caller's 5 s, as the handler saw them a moment later. */
  assert_true((resp[4] | resp[5] << 8 | resp[6] << 16) <= 5000);
  assert_true((resp[4] | resp[5] << 8 | resp[6] << 16) > 4000);
  assert_int_equal(shmrpc_call(client, SHMRPC_METHOD_PING, NULL, 0, resp,
                               sizeof(resp), &len, SHMRPC_INFINITE),
                   0);
  assert_int_equal(test_get_u64(resp) & 0xffffffffu, SHMRPC_METHOD_PING);
  assert_int_equal((int32_t)(test_get_u64(resp) >> 32), SHMRPC_INFINITE);

  /* Forwarded transport codes reach the caller as themselves, and a
   * forwarded "server died" leaves the handle connected. */
  for (i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++) {
    test_put_u32(req, (uint32_t)-forwarded[i]);
    assert_int_equal(shmrpc_call(client, 5, req, 4, resp, sizeof(resp), &len,
                                 T_EXIT_MS),
                     forwarded[i]);
    assert_true(shmrpc_client_capacity(client) > 0);
  }
  /* A code a handler may not forward is refused: the handler's own
   * negative return then becomes an application error. */
  test_put_u32(req, (uint32_t)-SHMRPC_EPROTO);
  assert_int_equal(shmrpc_call(client, 5, req, 4, resp, sizeof(resp), &len,
                               T_EXIT_MS),
                   SHMRPC_EAPP);
  assert_int_equal(shmrpc_call(client, 6, NULL, 0, resp, sizeof(resp), &len,
                               T_EXIT_MS),
                   0);

  shmrpc_client_close(client);
  shmrpc_server_stop(server);
  test_thread_join(thread);
  shmrpc_server_destroy(server);
}

/* Requests and responses larger than the slot or the caller's buffer. */
static void test_too_big(void **state) {
  const char *name = test_service_name("big");
  test_proc *server = test_spawn_server(name, "256");
  shmrpc_client *client = NULL;
  unsigned char req[257], resp[300], before[300];
  size_t len = 0;
  (void)state;

  memset(req, 0xab, sizeof(req));
  assert_int_equal(shmrpc_client_open(&client, name, NULL, T_READY_MS), 0);
  assert_int_equal(shmrpc_client_capacity(client), 256);
  /* One byte over: refused before anything is written to the slot. */
  assert_int_equal(shmrpc_call(client, T_ECHO, req, 257, resp, sizeof(resp), &len,
                               T_EXIT_MS),
                   SHMRPC_ETOOBIG);
  assert_int_equal(len, 0);
  /* Exactly the capacity fits. */
  assert_int_equal(shmrpc_call(client, T_ECHO, req, 256, resp, sizeof(resp), &len,
                               T_EXIT_MS),
                   0);
  assert_int_equal(len, 256);
  assert_memory_equal(resp, req, 256);

  /* The handler's answer would exceed the slot. */
  test_put_u32(req, 257);
  assert_int_equal(shmrpc_call(client, T_BIG, req, 4, resp, sizeof(resp), &len,
                               T_EXIT_MS),
                   SHMRPC_ETOOBIG);
  /* The answer fits the slot but not the caller's buffer: nothing copied,
   * the size needed reported. */
  test_put_u32(req, 200);
  memset(resp, 0xee, sizeof(resp));
  memcpy(before, resp, sizeof(resp));
  assert_int_equal(shmrpc_call(client, T_BIG, req, 4, resp, 199, &len, T_EXIT_MS),
                   SHMRPC_ETOOBIG);
  assert_int_equal(len, 200);
  assert_memory_equal(resp, before, sizeof(resp));
  assert_int_equal(shmrpc_call(client, T_BIG, req, 4, resp, 200, &len, T_EXIT_MS), 0);
  assert_int_equal(len, 200);
  assert_int_equal(resp[199], (unsigned char)(199 * 31u + 7u));

  test_stop_server(client, server);
  shmrpc_client_close(client);
  test_proc_free(server);
}

/* One live server per name; the name is free again after destroy. */
static void test_second_server_refused(void **state) {
  const char *name = test_service_name("dup");
  shmrpc_server *first = NULL, *second = NULL;
  shmrpc_client *client = NULL;
  test_proc *other;
  char line[128];
  (void)state;

  assert_int_equal(shmrpc_server_create(&first, name, NULL), 0);
  assert_int_equal(shmrpc_server_create(&second, name, NULL), SHMRPC_EEXIST);
  assert_null(second);
  assert_int_equal(shmrpc_service_clean(name, 0), SHMRPC_EEXIST);
  assert_int_equal(shmrpc_service_clean("bad/name", 0), SHMRPC_EINVAL);
  {
    const char *args[] = {"server", name, "1024", NULL};
    assert_int_equal(test_proc_spawn(&other, args), 0);
    assert_true(test_proc_read_line(other, line, sizeof(line), T_READY_MS) > 0);
    assert_string_equal(line, "error SHMRPC_EEXIST");
    test_expect_exit(other, 1);
    test_proc_free(other);
  }
  shmrpc_server_destroy(first);
  assert_int_equal(shmrpc_client_open(&client, name, NULL, SHMRPC_NOWAIT),
                   SHMRPC_ENOSERVER);
  assert_int_equal(shmrpc_server_create(&second, name, NULL), 0);
  shmrpc_server_destroy(second);
  assert_int_equal(test_service_objects_exist(name), 0);
  assert_int_equal(shmrpc_service_clean(name, 0), 0);
}

/* Stopping the server while callers wait: the call in progress completes,
 * the waiting callers get SHMRPC_ESHUTDOWN; nobody hangs. */
static void test_stop_while_clients_wait(void **state) {
  const char *name = test_service_name("stop");
  test_gate gate = {test_event_new(), test_event_new()};
  test_server_thread ts;
  test_proc *holder, *waiters[2];
  char line[128], gate_id[8], add_id[8];
  int i;
  (void)state;

  test_server_thread_start(&ts, name, 0, &gate);
  snprintf(gate_id, sizeof(gate_id), "%d", T_GATE);
  snprintf(add_id, sizeof(add_id), "%d", T_ADD);
  {
    const char *args[] = {"call", name, gate_id, "9", "-1", NULL};
    assert_int_equal(test_proc_spawn(&holder, args), 0);
  }
  assert_int_equal(test_event_wait(gate.entered, T_READY_MS), 0);
  for (i = 0; i < 2; i++) {
    const char *args[] = {"call", name, add_id, "21", "-1", NULL};
    assert_int_equal(test_proc_spawn(&waiters[i], args), 0);
    assert_true(test_proc_read_line(waiters[i], line, sizeof(line), T_READY_MS) > 0);
    assert_string_equal(line, "opened");
  }
  /* Ask the loop to stop, then let the call in progress finish. */
  shmrpc_server_stop(ts.server);
  test_event_set(gate.release);
  test_server_thread_stop(&ts);

  assert_true(test_proc_read_line(holder, line, sizeof(line), T_EXIT_MS) > 0);
  assert_string_equal(line, "opened");
  assert_true(test_proc_read_line(holder, line, sizeof(line), T_EXIT_MS) > 0);
  assert_string_equal(line, "result SHMRPC_OK 9");
  for (i = 0; i < 2; i++) {
    assert_true(test_proc_read_line(waiters[i], line, sizeof(line), T_EXIT_MS) > 0);
    assert_string_equal(line, "result SHMRPC_ESHUTDOWN 0");
    test_expect_exit(waiters[i], 0);
    test_proc_free(waiters[i]);
  }
  test_expect_exit(holder, 0);
  test_proc_free(holder);
  test_event_free(gate.entered);
  test_event_free(gate.release);
}

/* A handle whose server stopped reports it once, then reconnects to a new
 * server of the same name. */
static void test_reconnect_after_restart(void **state) {
  const char *name = test_service_name("restart");
  test_server_thread ts;
  shmrpc_client *client = NULL;
  (void)state;

  test_server_thread_start(&ts, name, 0, NULL);
  assert_int_equal(shmrpc_client_open(&client, name, NULL, T_READY_MS), 0);
  assert_int_equal(test_call_add(client, 1, 2), 3);
  test_server_thread_stop(&ts);
  assert_int_equal(shmrpc_call(client, T_ECHO, "x", 1, NULL, 0, NULL, T_EXIT_MS),
                   SHMRPC_ESHUTDOWN);
  assert_int_equal(shmrpc_call(client, T_ECHO, "x", 1, NULL, 0, NULL, 50),
                   SHMRPC_ENOSERVER);
  test_server_thread_start(&ts, name, 0, NULL);
  assert_int_equal(test_call_add(client, 2, 2), 4);
  shmrpc_client_close(client);
  test_server_thread_stop(&ts);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_errors_have_names),
      cmocka_unit_test(test_bad_names_are_refused),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_cross_process_results),
      cmocka_unit_test(test_four_client_processes),
      cmocka_unit_test(test_four_client_threads),
      cmocka_unit_test(test_timeout_then_next_caller),
      cmocka_unit_test(test_timeout_while_queued),
#ifndef _WIN32
      cmocka_unit_test(test_timeout_under_signals),
#endif
      cmocka_unit_test(test_no_server),
      cmocka_unit_test(test_message_sizes),
      cmocka_unit_test(test_fallback_forwarding),
      cmocka_unit_test(test_too_big),
      cmocka_unit_test(test_second_server_refused),
      cmocka_unit_test(test_stop_while_clients_wait),
      cmocka_unit_test(test_reconnect_after_restart),
  };
  int helper;
  test_proc_init(argv[0]);
  helper = test_helper_main(argc, argv);
  if (helper >= 0)
    return helper;
  return cmocka_run_group_tests(tests, NULL, NULL);
}
