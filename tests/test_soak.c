/*
 * Soak: 8 client processes, each with two threads calling through one
 * shared handle, make checked calls to a server of 4 lanes and 3 workers
 * (so that callers queue for lanes and handlers run at once), while clients
 * are killed at random and the server is killed and restarted a few times.
 * Zero wrong answers, every failure a clean error, no name left at the end.
 * SHMRPC_SOAK_MS sets the duration (default 20000; CI keeps it under 60 s).
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

#define SOAK_CLIENTS 8
#define SERVER_RESTARTS 4

static const char *const soak_server[] = {"lanes=4", "workers=3", NULL};

typedef struct soak {
  const char *name;
  int32_t duration_ms;
  test_proc *clients[SOAK_CLIENTS];
  int64_t client_end[SOAK_CLIENTS];
  unsigned long answers, failures, kills, spawned;
  uint32_t rng;
} soak;

static uint32_t next_random(soak *s) {
  s->rng = s->rng * 1103515245u + 12345u;
  return s->rng >> 8;
}

static void spawn_client(soak *s, int slot, int64_t end) {
  char duration[32], id[32];
  const char *args[] = {"soakclient", s->name, duration, id, NULL};
  int64_t left = end - test_now_ms();
  snprintf(duration, sizeof(duration), "%lld", (long long)(left > 0 ? left : 0));
  snprintf(id, sizeof(id), "%lu", ++s->spawned);
  assert_int_equal(test_proc_spawn(&s->clients[slot], args), 0);
}

/* Collects a client that ran to its end: it must report, and exit 0. */
static void reap_client(soak *s, int slot) {
  char line[512];
  unsigned long ok = 0, failed = 0;
  assert_true(test_proc_read_line(s->clients[slot], line, sizeof(line), T_EXIT_MS) > 0);
  if (sscanf(line, "done %lu %lu", &ok, &failed) != 2)
    fail_msg("soak client reported: %s", line);
  test_expect_exit(s->clients[slot], 0);
  test_proc_free(s->clients[slot]);
  s->clients[slot] = NULL;
  s->answers += ok;
  s->failures += failed;
}

static void test_soak(void **state) {
  soak s;
  test_proc *server;
  const char *env = getenv("SHMRPC_SOAK_MS");
  int64_t start, end, next_restart;
  int i, restarts = 0;
  (void)state;

  memset(&s, 0, sizeof(s));
  s.name = test_service_name("soak");
  s.duration_ms = env != NULL ? (int32_t)atoi(env) : 20000;
  if (s.duration_ms < 1000)
    s.duration_ms = 1000;
  s.rng = test_proc_self_pid();

  server = test_spawn_server_args(s.name, "4096", soak_server);
  start = test_now_ms();
  end = start + s.duration_ms;
  next_restart = start + s.duration_ms / (SERVER_RESTARTS + 1);
  for (i = 0; i < SOAK_CLIENTS; i++)
    spawn_client(&s, i, end);

  /* The chaos is paced by short pauses; nothing waits on them for
   * correctness: every check below waits for a real line or exit. */
  while (test_now_ms() < end - 300) {
    int victim = (int)(next_random(&s) % SOAK_CLIENTS), code = -1;
    test_sleep_ms((int32_t)(50 + next_random(&s) % 200));
    /* A client only exits early when it saw a wrong answer or an unclean
     * error: catch that before the kill hides it. */
    if (test_proc_wait(s.clients[victim], 0, &code) == 0) {
      char line[512] = "";
      test_proc_read_line(s.clients[victim], line, sizeof(line), 0);
      fail_msg("soak client exited early (%d): %s", code, line);
    }
    test_proc_kill(s.clients[victim]);
    test_proc_free(s.clients[victim]);
    s.kills++;
    spawn_client(&s, victim, end);
    if (restarts < SERVER_RESTARTS && test_now_ms() >= next_restart) {
      /* Kill the server outright; a new one must take the name at once. */
      test_proc_kill(server);
      test_proc_free(server);
      test_wait_service_dead(s.name);
      server = test_spawn_server_args(s.name, "4096", soak_server);
      restarts++;
      next_restart += s.duration_ms / (SERVER_RESTARTS + 1);
    }
  }
  for (i = 0; i < SOAK_CLIENTS; i++)
    reap_client(&s, i);

  {
    shmrpc_client *stopper = NULL;
    assert_int_equal(shmrpc_client_open(&stopper, s.name, NULL, T_READY_MS), 0);
    assert_int_equal(shmrpc_call(stopper, T_STOP, NULL, 0, NULL, 0, NULL, T_EXIT_MS), 0);
    shmrpc_client_close(stopper);
  }
  test_expect_exit(server, 0);
  test_proc_free(server);
  assert_int_equal(test_service_objects_exist(s.name), 0);

  print_message("soak: %d ms, %lu clients killed, %d server restarts, "
                "%lu checked answers, %lu clean failures, 0 wrong\n",
                s.duration_ms, s.kills, restarts, s.answers, s.failures);
  assert_int_equal(restarts, SERVER_RESTARTS);
  assert_true(s.answers > 0);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_soak),
  };
  int helper;
  test_proc_init(argv[0]);
  helper = test_helper_main(argc, argv);
  if (helper >= 0)
    return helper;
  return cmocka_run_group_tests(tests, NULL, NULL);
}
