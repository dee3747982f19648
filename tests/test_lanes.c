/*
 * Many callers at once: threads sharing one handle, each answer and each
 * application error reaching its own caller; a slow call on one lane while
 * the other lanes answer; callers queued for lanes served first come, first
 * served; a caller killed on one lane while the others serve; the server
 * killed with a call running on every lane.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"

/* ---- Threads on one handle --------------------------------------------- */

#define THREADS 8
#define CALLS_PER_THREAD 2000

typedef struct worker {
  shmrpc_client *client;
  uint32_t id;
  unsigned long right, wrong_answers, wrong_errors, unclean;
} worker;

/* Checked additions, and every tenth call an application error whose code
 * names this thread and call: the code and message must be its own. */
static void worker_main(void *arg) {
  worker *w = arg;
  uint32_t i;
  for (i = 0; i < CALLS_PER_THREAD; i++) {
    unsigned char req[16], resp[16];
    size_t len = 0;
    int rc;
    if (i % 10 == 9) {
      uint32_t code = w->id * 100000u + i + 1u;
      char want[32];
      const char *message = NULL;
      test_put_u32(req, code);
      rc = shmrpc_call(w->client, T_FAILWITH, req, 4, resp, sizeof(resp), &len,
                       T_EXIT_MS);
      snprintf(want, sizeof(want), "fail %lu", (unsigned long)code);
      if (rc != SHMRPC_EAPP) {
        if (w->unclean++ == 0) /* say what went wrong, once per thread */
          print_error("thread %u, call %u: %s: %s\n", (unsigned)w->id,
                      (unsigned)i, shmrpc_err_name(rc),
                      shmrpc_error_message(rc));
      } else if (shmrpc_client_app_error(w->client, &message) !=
                     (int32_t)code ||
                 strcmp(message, want) != 0) {
        w->wrong_errors++;
      } else {
        w->right++;
      }
      continue;
    }
    test_put_u64(req, ((uint64_t)w->id << 32) + i);
    test_put_u64(req + 8, i);
    rc = shmrpc_call(w->client, T_ADD, req, 16, resp, sizeof(resp), &len,
                     T_EXIT_MS);
    if (rc != 0) {
      if (w->unclean++ == 0) /* say what went wrong, once per thread */
        print_error("thread %u, call %u: %s: %s\n", (unsigned)w->id,
                    (unsigned)i, shmrpc_err_name(rc),
                    shmrpc_error_message(rc));
    } else if (len != 8 ||
             test_get_u64(resp) != ((uint64_t)w->id << 32) + 2u * i)
      w->wrong_answers++;
    else
      w->right++;
  }
}

static void run_threads(shmrpc_client *client) {
  worker workers[THREADS];
  test_thread *threads[THREADS];
  int i;
  for (i = 0; i < THREADS; i++) {
    memset(&workers[i], 0, sizeof(workers[i]));
    workers[i].client = client;
    workers[i].id = (uint32_t)i + 1;
    assert_int_equal(test_thread_start(&threads[i], worker_main, &workers[i]),
                     0);
  }
  for (i = 0; i < THREADS; i++) {
    test_thread_join(threads[i]);
    assert_int_equal(workers[i].unclean, 0);
    assert_int_equal(workers[i].wrong_answers, 0);
    assert_int_equal(workers[i].wrong_errors, 0);
    assert_int_equal(workers[i].right, CALLS_PER_THREAD);
  }
}

/* Eight threads through one handle, to a server of four workers over four
 * lanes in this process (so half the threads queue) and then in another. */
static void test_threads_share_a_handle(void **state) {
  const char *name = test_service_name("threads");
  const char *extra[] = {"lanes=4", "workers=4", NULL};
  shmrpc_server_options options;
  shmrpc_client *client = NULL;
  test_server_thread ts;
  test_proc *server;
  (void)state;

  shmrpc_server_options_init(&options);
  options.lanes = 4;
  options.workers = 4;
  test_server_thread_start_with(&ts, name, &options, NULL);
  assert_int_equal(shmrpc_client_open(&client, name, NULL, T_READY_MS), 0);
  run_threads(client);
  shmrpc_client_close(client);
  test_server_thread_stop(&ts);

  name = test_service_name("threads");
  server = test_spawn_server_args(name, "4096", extra);
  assert_int_equal(shmrpc_client_open(&client, name, NULL, T_READY_MS), 0);
  run_threads(client);
  test_stop_server(client, server);
  shmrpc_client_close(client);
  test_proc_free(server);
  assert_int_equal(test_service_objects_exist(name), 0);
}

/* ---- No head-of-line blocking ------------------------------------------ */

typedef struct gated {
  shmrpc_client *client;
  volatile int rc; /* read by the test while the call may end */
} gated;

static void call_gate(void *arg) {
  gated *g = arg;
  unsigned char byte = 7;
  int rc = shmrpc_call(g->client, T_GATE, &byte, 1, &byte, 1, NULL, T_EXIT_MS);
  __atomic_store_n(&g->rc, rc, __ATOMIC_SEQ_CST);
}

/* A call that blocks in its handler holds one lane and one worker; calls
 * through the same handle and through another go on answering meanwhile. */
static void test_slow_call_blocks_no_one(void **state) {
  const char *name = test_service_name("hol");
  test_gate gate = {test_event_new(), test_event_new()};
  shmrpc_server_options options;
  shmrpc_client *client = NULL, *other = NULL;
  test_server_thread ts;
  test_thread *slow = NULL;
  gated g;
  int i;
  (void)state;

  shmrpc_server_options_init(&options);
  options.workers = 2;
  test_server_thread_start_with(&ts, name, &options, &gate);
  assert_int_equal(shmrpc_client_open(&client, name, NULL, T_READY_MS), 0);
  assert_int_equal(shmrpc_client_open(&other, name, NULL, T_READY_MS), 0);
  g.client = client;
  g.rc = -1;
  assert_int_equal(test_thread_start(&slow, call_gate, &g), 0);
  assert_int_equal(test_event_wait(gate.entered, T_READY_MS), 0);
  for (i = 0; i < 100; i++) {
    assert_int_equal(test_call_add(client, (uint64_t)i, 1), (uint64_t)i + 1);
    assert_int_equal(test_call_add(other, (uint64_t)i, 2), (uint64_t)i + 2);
  }
  /* the slow call still runs */
  assert_int_equal(__atomic_load_n(&g.rc, __ATOMIC_SEQ_CST), -1);
  test_event_set(gate.release);
  test_thread_join(slow);
  assert_int_equal(g.rc, 0);
  shmrpc_client_close(client);
  shmrpc_client_close(other);
  test_server_thread_stop(&ts);
  test_event_free(gate.entered);
  test_event_free(gate.release);
}

/* ---- Fairness ---------------------------------------------------------- */

#define FAIR_CALLERS 4
#define FAIR_CALLS 100

/* The order the server served callers in, recorded by its one worker. */
static struct {
  int caller[FAIR_CALLERS * FAIR_CALLS];
  int count;
} served_order;

/* u32 caller id -> records it, works for a moment, answers nothing. */
static int handle_record(void *user, const void *req, size_t len,
                         shmrpc_reply *reply) {
  (void)user;
  (void)reply;
  if (len == 4 && served_order.count < FAIR_CALLERS * FAIR_CALLS)
    served_order.caller[served_order.count++] =
        ((const unsigned char *)req)[0];
  test_sleep_ms(1); /* real work: the other callers wait in the queue */
  return 0;
}

typedef struct fair_caller {
  const char *name;
  int index, rc;
  test_event *ready, *start;
} fair_caller;

static void fair_main(void *arg) {
  fair_caller *c = arg;
  shmrpc_client *client = NULL;
  int i;
  c->rc = shmrpc_client_open(&client, c->name, NULL, T_READY_MS);
  test_event_set(c->ready);
  if (test_event_wait(c->start, T_READY_MS) != 0)
    c->rc = -1;
  for (i = 0; c->rc == 0 && i < FAIR_CALLS; i++) {
    unsigned char req[4];
    test_put_u32(req, (uint32_t)c->index);
    c->rc = shmrpc_call(client, 100, req, 4, NULL, 0, NULL, T_EXIT_MS);
  }
  shmrpc_client_close(client);
}

static void serve_loop(void *arg) { (void)shmrpc_server_run(arg); }

/* Four callers, each with a handle of its own, on a service of one lane
 * whose handler works for a millisecond: they queue, and are served first
 * come, first served. While all four still call, no caller is served twice
 * in a row (the releaser of the lane queues behind the others instead of
 * taking it straight back, which a plain lock lets it do), and each gets
 * its share. */
static void test_queue_is_fair(void **state) {
  const char *name = test_service_name("fair");
  shmrpc_server_options options;
  shmrpc_server *server = NULL;
  test_thread *loop = NULL;
  fair_caller callers[FAIR_CALLERS];
  test_thread *threads[FAIR_CALLERS];
  test_event *start = test_event_new();
  int done[FAIR_CALLERS] = {0}, i, all_active_until = 0, repeats = 0;
  int least;
  (void)state;

  shmrpc_server_options_init(&options);
  options.lanes = 1;
  assert_int_equal(shmrpc_server_create(&server, name, &options), 0);
  assert_int_equal(
      shmrpc_server_register(server, 100, "record", handle_record, NULL), 0);
  served_order.count = 0;
  assert_int_equal(test_thread_start(&loop, serve_loop, server), 0);
  for (i = 0; i < FAIR_CALLERS; i++) {
    callers[i].name = name;
    callers[i].index = i;
    callers[i].rc = -1;
    callers[i].ready = test_event_new();
    callers[i].start = start;
    assert_int_equal(test_thread_start(&threads[i], fair_main, &callers[i]),
                     0);
  }
  for (i = 0; i < FAIR_CALLERS; i++)
    assert_int_equal(test_event_wait(callers[i].ready, T_READY_MS), 0);
  test_event_set(start);
  for (i = 0; i < FAIR_CALLERS; i++) {
    test_thread_join(threads[i]);
    assert_int_equal(callers[i].rc, 0);
    test_event_free(callers[i].ready);
  }
  shmrpc_server_stop(server);
  test_thread_join(loop);
  shmrpc_server_destroy(server);
  test_event_free(start);

  /* The stretch where all four were still calling: up to the first
   * caller's last call. */
  assert_int_equal(served_order.count, FAIR_CALLERS * FAIR_CALLS);
  for (i = 0; i < served_order.count; i++) {
    if (++done[served_order.caller[i]] == FAIR_CALLS) {
      all_active_until = i;
      break;
    }
  }
  least = FAIR_CALLS;
  for (i = 0; i < FAIR_CALLERS; i++)
    if (done[i] < least)
      least = done[i];
  /* A caller that joins the queue late may be served twice running now
   * and then; a lock that lets the releaser barge does it every time. */
  for (i = 1; i <= all_active_until; i++)
    if (served_order.caller[i] == served_order.caller[i - 1])
      repeats++;
  print_message("while all four called: %d turns, the slowest had %d of the "
                "first's %d, %d turns went to the caller served just before\n",
                all_active_until + 1, least, FAIR_CALLS, repeats);
  assert_true(least >= FAIR_CALLS / 2);
  assert_true(repeats <= all_active_until / 20);
}

/* ---- Crashes ----------------------------------------------------------- */

typedef struct steady {
  const char *name;
  volatile int stop;
  unsigned long right, failed;
} steady;

static void steady_main(void *arg) {
  steady *s = arg;
  shmrpc_client *client = NULL;
  uint64_t i = 0;
  assert_int_equal(shmrpc_client_open(&client, s->name, NULL, T_READY_MS), 0);
  while (!__atomic_load_n(&s->stop, __ATOMIC_SEQ_CST)) {
    unsigned char req[16], resp[8];
    size_t len = 0;
    test_put_u64(req, i);
    test_put_u64(req + 8, 5);
    if (shmrpc_call(client, T_ADD, req, 16, resp, 8, &len, T_EXIT_MS) == 0 &&
        len == 8 && test_get_u64(resp) == i + 5)
      s->right++;
    else
      s->failed++;
    i++;
  }
  shmrpc_client_close(client);
}

/* A caller dies holding its lane, at each point of its call, while two
 * others call on the other lanes: they never see an error, the dead lane is
 * recovered, and every call after gets its own answer. */
static void test_caller_dies_on_one_lane(void **state) {
  static const char *points[] = {"client_locked", "client_posted",
                                 "client_answered"};
  const char *name = test_service_name("lanedie");
  shmrpc_server_options options;
  test_server_thread ts;
  steady callers[2];
  test_thread *threads[2];
  shmrpc_stats before;
  size_t p;
  int i;
  (void)state;

  shmrpc_server_options_init(&options);
  options.lanes = 4;
  options.workers = 2;
  test_server_thread_start_with(&ts, name, &options, NULL);
  for (i = 0; i < 2; i++) {
    memset(&callers[i], 0, sizeof(callers[i]));
    callers[i].name = name;
    assert_int_equal(test_thread_start(&threads[i], steady_main, &callers[i]),
                     0);
  }
  for (p = 0; p < sizeof(points) / sizeof(points[0]); p++) {
    const char *args[] = {"faultcall", name, points[p], NULL};
    test_proc *victim = NULL;
    assert_int_equal(shmrpc_server_stats(ts.server, &before), 0);
    assert_int_equal(test_proc_spawn(&victim, args), 0);
    test_expect_exit(victim, KILLED_EXIT);
    test_proc_free(victim);
    assert_int_equal(test_wait_recoveries(ts.server, before.recoveries + 1),
                     before.recoveries + 1);
  }
  for (i = 0; i < 2; i++) {
    __atomic_store_n(&callers[i].stop, 1, __ATOMIC_SEQ_CST);
    test_thread_join(threads[i]);
    assert_true(callers[i].right > 0);
    assert_int_equal(callers[i].failed, 0);
  }
  test_server_thread_stop(&ts);
}

/* The server is killed while a call runs on every one of its lanes and two
 * more callers wait for a lane, all with infinite timeouts: every one of
 * them learns of the death, promptly. */
static void test_server_dies_busy_on_every_lane(void **state) {
  const char *name = test_service_name("alldie");
  const char *extra[] = {"lanes=4", "workers=4", NULL};
  test_proc *server = test_spawn_server_args(name, "4096", extra);
  test_proc *callers[6];
  char line[128], slow_id[8];
  int64_t killed;
#ifndef _WIN32
  int64_t end = test_now_ms() + T_EXIT_MS;
#endif
  int i;
  (void)state;

  snprintf(slow_id, sizeof(slow_id), "%d", T_SLOW);
  for (i = 0; i < 6; i++) {
    const char *args[] = {"call", name, slow_id, "30000", "-1", NULL};
    assert_int_equal(test_proc_spawn(&callers[i], args), 0);
    test_read_expected(callers[i], "opened");
  }
  for (i = 0; i < 4; i++)
    test_read_expected(server, "slow"); /* a handler runs on every lane */
#ifndef _WIN32
  for (;;) { /* and the other two wait in the queue (Windows cannot count
                the callers waiting for a mutex) */
    shmrpc_service_info info;
    assert_int_equal(shmrpc_service_query(name, 0, &info), 0);
    if (info.queued >= 2)
      break;
    assert_true(test_now_ms() < end);
    test_sleep_ms(1); /* polling the queue: there is no notification */
  }
#endif
  killed = test_now_ms();
  test_proc_kill(server);
  test_proc_free(server);
  for (i = 0; i < 6; i++) {
    assert_true(test_proc_read_line(callers[i], line, sizeof(line),
                                    T_EXIT_MS) > 0);
    assert_string_equal(line, "result SHMRPC_ESERVERDIED 0");
    test_expect_exit(callers[i], 0);
    test_proc_free(callers[i]);
  }
  print_message("six callers (four running, two queued) all learned of the "
                "death within %lld ms\n",
                (long long)(test_now_ms() - killed));
  test_wait_service_dead(name);
  assert_int_equal(shmrpc_service_clean(name, 0), 0);
  assert_int_equal(test_service_objects_exist(name), 0);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_threads_share_a_handle),
      cmocka_unit_test(test_slow_call_blocks_no_one),
      cmocka_unit_test(test_queue_is_fair),
      cmocka_unit_test(test_caller_dies_on_one_lane),
      cmocka_unit_test(test_server_dies_busy_on_every_lane),
  };
  int helper;
  test_proc_init(argv[0]);
  helper = test_helper_main(argc, argv);
  if (helper >= 0)
    return helper;
  return cmocka_run_group_tests(tests, NULL, NULL);
}
