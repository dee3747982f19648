/*
 * Crash safety: clients and servers killed at each point of a call (through
 * the test-only fault points, or SIGKILL / TerminateProcess), restarts after
 * a crash, and handlers that never return.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"


/* A dead server's names can be removed, and then none is left. */
static void expect_clean(const char *name) {
  assert_int_equal(shmrpc_service_clean(name, 0), 0);
  assert_int_equal(test_service_objects_exist(name), 0);
}

/* A client dies holding its lane at each point of its call; the lane is
 * recovered (by the server's repair pass, or by a caller that needs it),
 * its slot repaired, and every later caller gets its own answer. */
static void test_client_dies_at_each_point(void **state) {
  static const char *points[] = {"client_locked", "client_posted",
                                 "client_answered"};
  size_t i;
  (void)state;
  for (i = 0; i < sizeof(points) / sizeof(points[0]); i++) {
    const char *name = test_service_name("cdie");
    const char *args[] = {"faultcall", name, points[i], NULL};
    test_server_thread ts;
    shmrpc_client *client = NULL;
    shmrpc_stats before, after;
    test_proc *victim;

    test_server_thread_start(&ts, name, 0, NULL);
    assert_int_equal(shmrpc_client_open(&client, name, NULL, T_READY_MS), 0);
    assert_int_equal(test_call_add(client, 1, 1), 2);
    assert_int_equal(shmrpc_server_stats(ts.server, &before), 0);

    assert_int_equal(test_proc_spawn(&victim, args), 0);
    test_expect_exit(victim, KILLED_EXIT);
    test_proc_free(victim);

    /* Its own answer, never the dead caller's (which would be 3). */
    assert_int_equal(test_call_add(client, 100, 11), 111);
    assert_int_equal(test_call_add(client, 5, 6), 11);
    assert_int_equal(test_wait_recoveries(ts.server, before.recoveries + 1),
                     before.recoveries + 1);
    assert_int_equal(shmrpc_server_stats(ts.server, &after), 0);
    assert_int_equal(after.recoveries, before.recoveries + 1);
    shmrpc_client_close(client);
    test_server_thread_stop(&ts);
  }
}

/* The server dies as it takes a call: every caller, even with an infinite
 * timeout, gets SHMRPC_ESERVERDIED. */
static void test_server_dies_taking_a_call(void **state) {
  const char *name = test_service_name("sdie");
  const char *server_args[] = {"server", name, "4096", "server_busy", NULL};
  test_proc *server, *callers[3];
  char line[128], add_id[8];
  int i, opened = 0;
  (void)state;

  assert_int_equal(test_proc_spawn(&server, server_args), 0);
  test_read_expected(server, "ready");
  snprintf(add_id, sizeof(add_id), "%d", T_ADD);
  for (i = 0; i < 3; i++) {
    const char *args[] = {"call", name, add_id, "4", "-1", "300", NULL};
    assert_int_equal(test_proc_spawn(&callers[i], args), 0);
  }
  test_expect_exit(server, KILLED_EXIT);
  for (i = 0; i < 3; i++) {
    int code = -1;
    assert_true(test_proc_read_line(callers[i], line, sizeof(line), T_EXIT_MS) > 0);
    if (strcmp(line, "opened") == 0) {
      /* It reached the server before the death: the death is reported. */
      opened++;
      test_read_expected(callers[i], "result SHMRPC_ESERVERDIED 0");
    } else {
      /* It came after: the stale name is not a server. */
      assert_string_equal(line, "open SHMRPC_ENOSERVER");
    }
    assert_int_equal(test_proc_wait(callers[i], T_EXIT_MS, &code), 0);
    test_proc_free(callers[i]);
  }
  assert_true(opened >= 1); /* someone's call killed it */
  test_proc_free(server);
  expect_clean(name);
}

/* The server is killed inside a handler while one caller waits for its
 * answer and two wait for the slot, all with infinite timeouts. */
static void test_server_killed_while_callers_wait(void **state) {
  const char *name = test_service_name("skill");
  test_proc *server = test_spawn_server(name, "4096");
  test_proc *slow, *waiters[2];
  char slow_id[8], add_id[8];
  int64_t killed_at, worst = 0;
  int i;
  (void)state;

  snprintf(slow_id, sizeof(slow_id), "%d", T_SLOW);
  snprintf(add_id, sizeof(add_id), "%d", T_ADD);
  {
    const char *args[] = {"call", name, slow_id, "60000", "-1", NULL};
    assert_int_equal(test_proc_spawn(&slow, args), 0);
  }
  test_read_expected(server, "slow"); /* the handler runs */
  for (i = 0; i < 2; i++) {
    const char *args[] = {"call", name, add_id, "8", "-1", NULL};
    assert_int_equal(test_proc_spawn(&waiters[i], args), 0);
    test_read_expected(waiters[i], "opened");
  }
  test_read_expected(slow, "opened");
  test_proc_kill(server);
  killed_at = test_now_ms();

  test_read_expected(slow, "result SHMRPC_ESERVERDIED 0");
  for (i = 0; i < 2; i++)
    test_read_expected(waiters[i], "result SHMRPC_ESERVERDIED 0");
  worst = test_now_ms() - killed_at;
  print_message("all three callers saw the death %lld ms after the kill\n",
                (long long)worst);
  test_expect_exit(slow, 0);
  test_proc_free(slow);
  for (i = 0; i < 2; i++) {
    test_expect_exit(waiters[i], 0);
    test_proc_free(waiters[i]);
  }
  test_proc_free(server);
  expect_clean(name);
}

/* The server dies right after answering: that answer still arrives; the
 * next call reports the death once; then the name is simply unserved. */
static void test_server_dies_after_answer(void **state) {
  const char *name = test_service_name("sans");
  const char *server_args[] = {"server", name, "4096", "server_answered", NULL};
  shmrpc_client *client = NULL;
  test_proc *server;
  (void)state;

  assert_int_equal(test_proc_spawn(&server, server_args), 0);
  test_read_expected(server, "ready");
  assert_int_equal(shmrpc_client_open(&client, name, NULL, T_READY_MS), 0);
  assert_int_equal(test_call_add(client, 20, 3), 23);
  test_expect_exit(server, KILLED_EXIT);
  assert_int_equal(shmrpc_call(client, T_ECHO, "x", 1, NULL, 0, NULL, SHMRPC_INFINITE),
                   SHMRPC_ESERVERDIED);
  assert_int_equal(shmrpc_call(client, T_ECHO, "x", 1, NULL, 0, NULL, 30),
                   SHMRPC_ENOSERVER);
  shmrpc_client_close(client);
  test_proc_free(server);
  expect_clean(name);
}

/* A crashed server's name is taken over at once by the next server; a live
 * one is still refused; an old handle reports the death once, then
 * reconnects. A graceful stop leaves no name behind. */
static void test_restart_after_crash(void **state) {
  const char *name = test_service_name("restart");
  const char *dup_args[] = {"server", name, "4096", NULL};
  test_proc *server = test_spawn_server(name, "4096");
  test_proc *second, *duplicate;
  shmrpc_client *client = NULL;
  (void)state;

  assert_int_equal(shmrpc_client_open(&client, name, NULL, T_READY_MS), 0);
  assert_int_equal(test_call_add(client, 1, 2), 3);
  test_proc_kill(server);
  test_wait_service_dead(name);
  assert_int_equal(test_service_objects_exist(name), 1); /* stale */
  {
    shmrpc_service_info info;
    assert_int_equal(shmrpc_service_query(name, 0, &info), 0);
    assert_int_equal(info.alive, 0);
    assert_int_equal(info.stats.calls, 1);
  }

  second = test_spawn_server(name, "4096");
  assert_int_equal(test_proc_spawn(&duplicate, dup_args), 0);
  test_read_expected(duplicate, "error SHMRPC_EEXIST");
  test_expect_exit(duplicate, 1);
  test_proc_free(duplicate);

  assert_int_equal(shmrpc_call(client, T_ECHO, "x", 1, NULL, 0, NULL, T_EXIT_MS),
                   SHMRPC_ESERVERDIED);
  assert_int_equal(test_call_add(client, 2, 2), 4);

  test_stop_server(client, second);
  /* On Windows a name lives while any handle to it does: close ours first. */
  shmrpc_client_close(client);
  assert_int_equal(test_service_objects_exist(name), 0);
  test_proc_free(server);
  test_proc_free(second);
}

/* A handler that does not return: callers time out cleanly, and the slot
 * serves again as soon as the handler returns. */
static void test_handler_never_returns(void **state) {
  const char *name = test_service_name("stuck");
  test_gate gate = {test_event_new(), test_event_new()};
  test_server_thread ts;
  test_proc *holder;
  shmrpc_client *a = NULL, *b = NULL;
  shmrpc_stats stats;
  char gate_id[8];
  (void)state;

  test_server_thread_start(&ts, name, 0, &gate);
  snprintf(gate_id, sizeof(gate_id), "%d", T_GATE);
  {
    const char *args[] = {"call", name, gate_id, "3", "100", NULL};
    assert_int_equal(test_proc_spawn(&holder, args), 0);
  }
  assert_int_equal(test_event_wait(gate.entered, T_READY_MS), 0);
  test_read_expected(holder, "opened");
  test_read_expected(holder, "result SHMRPC_ETIMEDOUT 0");
  assert_int_equal(shmrpc_client_open(&a, name, NULL, T_READY_MS), 0);
  assert_int_equal(shmrpc_client_open(&b, name, NULL, T_READY_MS), 0);
  assert_int_equal(shmrpc_call(a, T_ECHO, "a", 1, NULL, 0, NULL, 30), SHMRPC_ETIMEDOUT);
  assert_int_equal(shmrpc_call(b, T_ECHO, "b", 1, NULL, 0, NULL, 30), SHMRPC_ETIMEDOUT);
  test_event_set(gate.release);
  assert_int_equal(test_call_add(a, 30, 12), 42);
  assert_int_equal(test_call_add(b, 1, 1), 2);
  assert_int_equal(shmrpc_server_stats(ts.server, &stats), 0);
  assert_true(stats.timeouts >= 3);

  shmrpc_client_close(a);
  shmrpc_client_close(b);
  test_expect_exit(holder, 0);
  test_proc_free(holder);
  test_server_thread_stop(&ts);
  test_event_free(gate.entered);
  test_event_free(gate.release);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_client_dies_at_each_point),
      cmocka_unit_test(test_server_dies_taking_a_call),
      cmocka_unit_test(test_server_killed_while_callers_wait),
      cmocka_unit_test(test_server_dies_after_answer),
      cmocka_unit_test(test_restart_after_crash),
      cmocka_unit_test(test_handler_never_returns),
  };
  int helper;
  test_proc_init(argv[0]);
  helper = test_helper_main(argc, argv);
  if (helper >= 0)
    return helper;
  return cmocka_run_group_tests(tests, NULL, NULL);
}
