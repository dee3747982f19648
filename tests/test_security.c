/*
 * Security and hostile input: owner-only objects, other users refused unless
 * access was widened, names held by squatters refused, and a server that
 * survives a process scribbling over its control block.
 */
#ifndef _WIN32
#define _GNU_SOURCE
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"

/* Internal headers: the hostile writer maps the service as any process
 * with access could, through the same platform layer. */
#include "layout.h"
#include "os.h"

#ifndef _WIN32
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#define NOBODY_ID 65534
#endif

#define ATTACK_MS 1500

static uint32_t rng_next(uint32_t *state) {
  *state ^= *state << 13;
  *state ^= *state >> 17;
  *state ^= *state << 5;
  return *state;
}

/* hostile NAME MS: maps the service and, for MS ms, writes random and
 * adversarial values into every field of the control block and sets its
 * events. Prints "done WRITES". */
static int role_hostile(int argc, char **argv) {
  shmrpc__os_service *service = NULL;
  shmrpc__control *control;
  void *area = NULL;
  size_t area_size = 0;
  uint32_t rng = 0x9e3779b9u ^ test_proc_self_pid(), capacity;
  unsigned long writes = 0;
  int64_t end;
  int rc;
  if (argc < 4)
    return 2;
  rc = shmrpc__os_service_open(argv[2], 0, &service, &area, &area_size);
  if (rc != 0) {
    printf("open %s\n", shmrpc_err_name(rc));
    return 1;
  }
  control = area;
  capacity = control->header.capacity;
  printf("attacking\n");
  fflush(stdout);
  end = test_now_ms() + strtol(argv[3], NULL, 10);
  while (test_now_ms() < end) {
    static const uint32_t nasty[] = {0, 1, 2, 3, 4, 0x7fffffffu, 0x80000000u,
                                     0xffffffffu, 0xfffffff0u};
    uint32_t pick = rng_next(&rng), value;
    volatile uint32_t *words = (volatile uint32_t *)(void *)control;
    size_t word = (pick >> 8) % (sizeof(shmrpc__control) / 4);
    switch (pick % 4) {
    case 0:
      value = nasty[(pick >> 4) % (sizeof(nasty) / sizeof(nasty[0]))];
      break;
    case 1:
      value = capacity + (pick >> 28) - 4; /* around the capacity */
      break;
    default:
      value = rng_next(&rng);
    }
    words[word] = value;
    if ((pick & 0xff) == 0)
      shmrpc__os_event_set(service, (pick >> 8) & 1 ? SHMRPC__EVENT_REQUEST
                                                     : SHMRPC__EVENT_RESPONSE);
    writes++;
  }
  shmrpc__os_service_close(service);
  printf("done %lu\n", writes);
  return 0;
}

#ifndef _WIN32
/* asuser NAME: as user nobody, opens NAME and makes one T_ADD call. */
static int role_asuser(int argc, char **argv) {
  shmrpc_client *client = NULL;
  unsigned char req[16], resp[8];
  size_t len = 0;
  int rc;
  if (argc < 3)
    return 2;
  if (setgid(NOBODY_ID) != 0 || setuid(NOBODY_ID) != 0) {
    printf("cannot become nobody\n");
    return 1;
  }
  rc = shmrpc_client_open(&client, argv[2], NULL, 500);
  if (rc != 0) {
    printf("open %s\n", shmrpc_err_name(rc));
    return 0;
  }
  test_put_u64(req, 40);
  test_put_u64(req + 8, 2);
  rc = shmrpc_call(client, T_ADD, req, 16, resp, 8, &len, T_EXIT_MS);
  printf("result %s %llu\n", shmrpc_err_name(rc),
         rc == 0 ? (unsigned long long)test_get_u64(resp) : 0ull);
  shmrpc_client_close(client);
  return 0;
}

static int file_mode(const char *name) {
  char path[256];
  struct stat st;
  snprintf(path, sizeof(path), "/dev/shm/shmrpc.%s", name);
  if (stat(path, &st) != 0)
    return -1;
  return (int)(st.st_mode & 0777);
}

/* Objects are 0600 by default; wider access only when asked. */
static void test_access_modes(void **state) {
  static const int modes[] = {0600, 0660, 0666};
  int access;
  (void)state;
  for (access = SHMRPC_ACCESS_OWNER; access <= SHMRPC_ACCESS_EVERYONE; access++) {
    const char *name = test_service_name("mode");
    shmrpc_server_options options;
    shmrpc_server *server = NULL;
    mode_t old_umask = umask(0077); /* a strict umask must not matter */
    shmrpc_server_options_init(&options);
    options.access = access;
    assert_int_equal(shmrpc_server_create(&server, name, &options), 0);
    umask(old_umask);
    assert_int_equal(file_mode(name), modes[access]);
    shmrpc_server_destroy(server);
  }
}

/* Another user is refused by default and served once access is widened. */
static void test_other_user(void **state) {
  int access;
  (void)state;
  if (geteuid() != 0) {
    print_message("skipped: needs root to run a helper as user nobody\n");
    skip();
  }
  for (access = SHMRPC_ACCESS_OWNER; access <= SHMRPC_ACCESS_EVERYONE;
       access += SHMRPC_ACCESS_EVERYONE) {
    const char *name = test_service_name("user");
    const char *args[] = {"asuser", name, NULL};
    shmrpc_server_options options;
    test_server_thread ts;
    test_proc *other;
    char line[128];
    (void)options;
    test_server_thread_start(&ts, name, 0, NULL);
    if (access == SHMRPC_ACCESS_EVERYONE) {
      /* Widen the running service the way the option does at creation. */
      char path[256];
      snprintf(path, sizeof(path), "/dev/shm/shmrpc.%s", name);
      assert_int_equal(chmod(path, 0666), 0);
    }
    assert_int_equal(test_proc_spawn(&other, args), 0);
    assert_true(test_proc_read_line(other, line, sizeof(line), T_EXIT_MS) > 0);
    assert_string_equal(line, access == SHMRPC_ACCESS_OWNER
                                  ? "open SHMRPC_EACCES"
                                  : "result SHMRPC_OK 42");
    test_expect_exit(other, 0);
    test_proc_free(other);
    test_server_thread_stop(&ts);
  }
}

/* Something else under the service's name: the server refuses to use it,
 * a client refuses to call into it, and nothing of it is changed. */
static void test_squatters_refused(void **state) {
  const char *name = test_service_name("squat");
  shmrpc_server *server = NULL;
  shmrpc_client *client = NULL;
  char path[256], target[256];
  unsigned char junk[4096];
  int fd;
  (void)state;
  snprintf(path, sizeof(path), "/dev/shm/shmrpc.%s", name);
  memset(junk, 0x41, sizeof(junk));

  /* A file of ours that is not a shmrpc service. */
  fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, junk, sizeof(junk)), (int)sizeof(junk));
  close(fd);
  assert_int_equal(shmrpc_server_create(&server, name, NULL), SHMRPC_EPROTO);
  assert_int_equal(shmrpc_client_open(&client, name, NULL, 0), SHMRPC_ENOSERVER);
  assert_int_equal(shmrpc_service_clean(name, 0), SHMRPC_EPROTO);
  assert_int_equal(file_mode(name), 0600); /* still there, untouched */

  /* Another user's object. */
  if (geteuid() == 0) {
    assert_int_equal(chown(path, NOBODY_ID, NOBODY_ID), 0);
    assert_int_equal(shmrpc_server_create(&server, name, NULL), SHMRPC_EACCES);
    assert_int_equal(shmrpc_client_open(&client, name, NULL, 0), SHMRPC_EPROTO);
  }
  assert_int_equal(unlink(path), 0);

  /* A symbolic link where the object should be is never followed. */
  snprintf(target, sizeof(target), "/dev/shm/shmrpc.%s.target", name);
  fd = open(target, O_CREAT | O_EXCL | O_WRONLY, 0600);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(symlink(target, path), 0);
  assert_int_equal(shmrpc_server_create(&server, name, NULL), SHMRPC_EPROTO);
  assert_int_equal(shmrpc_client_open(&client, name, NULL, 0), SHMRPC_EPROTO);
  {
    struct stat st;
    assert_int_equal(stat(target, &st), 0);
    assert_int_equal(st.st_size, 0);
  }
  unlink(path);
  unlink(target);
  assert_null(server);
  assert_null(client);
}
#endif

typedef struct honest {
  const char *name;
  int64_t end_ms;
  int32_t timeout_ms;
  unsigned long ok, clean_errors, unclean, overran;
  int64_t worst_overrun_ms;
} honest;

/* Calls with checked arguments while the attack runs. During the attack an
 * answer may be wrong (the attacker can rewrite the method or the lengths);
 * what must hold is that every call returns, within its timeout, with a
 * result or a clean error. */
static void honest_thread(void *arg) {
  honest *h = arg;
  shmrpc_client *client = NULL;
  uint64_t i = 0;
  while (test_now_ms() < h->end_ms) {
    unsigned char req[16], resp[64];
    size_t len = 0;
    int64_t started, took;
    int rc;
    if (client == NULL &&
        shmrpc_client_open(&client, h->name, NULL, h->timeout_ms) != 0) {
      client = NULL;
      h->clean_errors++;
      continue;
    }
    test_put_u64(req, i);
    test_put_u64(req + 8, i);
    i++;
    started = test_now_ms();
    rc = shmrpc_call(client, T_ADD, req, 16, resp, sizeof(resp), &len,
                     h->timeout_ms);
    took = test_now_ms() - started;
    /* A generous margin over the timeout: this detects a hang, it does not
     * time the library. */
    if (took > h->timeout_ms + 2000) {
      h->overran++;
      if (took - h->timeout_ms > h->worst_overrun_ms)
        h->worst_overrun_ms = took - h->timeout_ms;
    }
    switch (rc) {
    case 0:
      h->ok++;
      break;
    case SHMRPC_ETIMEDOUT:
    case SHMRPC_EPROTO:
    case SHMRPC_EAPP:
    case SHMRPC_ENOMETHOD:
    case SHMRPC_ETOOBIG:
    case SHMRPC_ESHUTDOWN:
    case SHMRPC_ESERVERDIED:
    case SHMRPC_ENOSERVER:
      h->clean_errors++;
      break;
    default:
      h->unclean++;
    }
  }
  shmrpc_client_close(client);
}

/* A hostile process writes garbage into the control block while honest
 * callers call. The server survives and keeps answering signals; callers
 * never hang; afterwards calls succeed again at once. */
static void test_hostile_writer(void **state) {
  const char *name = test_service_name("hostile");
  const char *server_args[] = {"server", name, "4096", "safe", NULL};
  test_proc *server;
  test_proc *hostile;
  test_thread *threads[2];
  honest callers[2];
  shmrpc_client *client = NULL;
  shmrpc_service_info info;
  char line[128], duration[16];
  int64_t attack_end, recovered_ms = -1;
  unsigned long writes = 0;
  int i, code = -1;
  (void)state;

  assert_int_equal(test_proc_spawn(&server, server_args), 0);
  assert_true(test_proc_read_line(server, line, sizeof(line), T_READY_MS) > 0);
  assert_string_equal(line, "ready");
  snprintf(duration, sizeof(duration), "%d", ATTACK_MS);
  {
    const char *args[] = {"hostile", name, duration, NULL};
    assert_int_equal(test_proc_spawn(&hostile, args), 0);
  }
  assert_true(test_proc_read_line(hostile, line, sizeof(line), T_READY_MS) > 0);
  assert_string_equal(line, "attacking");
  for (i = 0; i < 2; i++) {
    memset(&callers[i], 0, sizeof(callers[i]));
    callers[i].name = name;
    callers[i].end_ms = test_now_ms() + ATTACK_MS;
    callers[i].timeout_ms = i == 0 ? 50 : 300;
    assert_int_equal(test_thread_start(&threads[i], honest_thread, &callers[i]), 0);
  }
  assert_true(test_proc_read_line(hostile, line, sizeof(line), T_EXIT_MS) > 0);
  assert_int_equal(sscanf(line, "done %lu", &writes), 1);
  attack_end = test_now_ms();
  test_expect_exit(hostile, 0);
  test_proc_free(hostile);
  for (i = 0; i < 2; i++) {
    test_thread_join(threads[i]);
    print_message("caller %d (timeout %d ms): %lu answers, %lu clean errors, "
                  "%lu unclean, %lu overran (worst +%lld ms)\n",
                  i, (int)callers[i].timeout_ms, callers[i].ok,
                  callers[i].clean_errors, callers[i].unclean,
                  callers[i].overran, (long long)callers[i].worst_overrun_ms);
    assert_int_equal(callers[i].unclean, 0);
    assert_int_equal(callers[i].overran, 0);
  }

  /* The server still runs, and correct answers come back. */
  assert_int_equal(test_proc_wait(server, 0, &code), -1);
  while (recovered_ms < 0 && test_now_ms() - attack_end < 2000) {
    unsigned char req[16], resp[8];
    size_t len = 0;
    if (client == NULL) {
      int rc = shmrpc_client_open(&client, name, NULL, 100);
      if (rc != 0) {
        if (getenv("SHMRPC_TEST_DEBUG"))
          print_message("after attack: open %s\n", shmrpc_err_name(rc));
        client = NULL;
        continue;
      }
    }
    test_put_u64(req, 1234);
    test_put_u64(req + 8, 4321);
    {
      int rc = shmrpc_call(client, T_ADD, req, 16, resp, 8, &len, 100);
      if (rc == 0 && len == 8 && test_get_u64(resp) == 5555)
        recovered_ms = test_now_ms() - attack_end;
      else if (getenv("SHMRPC_TEST_DEBUG"))
        print_message("after attack: %s len %lu\n", shmrpc_err_name(rc),
                      (unsigned long)len);
    }
  }
  print_message("%lu hostile writes; correct answers again %lld ms after the "
                "attack\n",
                writes, (long long)recovered_ms);
  assert_true(recovered_ms >= 0);
  for (i = 0; i < 100; i++) {
    unsigned char req[16], resp[8];
    size_t len = 0;
    test_put_u64(req, (uint64_t)i);
    test_put_u64(req + 8, 1);
    assert_int_equal(shmrpc_call(client, T_ADD, req, 16, resp, 8, &len, T_EXIT_MS), 0);
    assert_int_equal(test_get_u64(resp), (uint64_t)i + 1);
  }
  assert_int_equal(shmrpc_service_query(name, 0, &info), 0);
  assert_int_equal(info.alive, 1);

  /* This server has no stop method (the attacker could call it): kill it
   * and remove its names. */
  shmrpc_client_close(client);
  test_proc_kill(server);
  test_proc_free(server);
  test_wait_service_dead(name);
  assert_int_equal(shmrpc_service_clean(name, 0), 0);
  assert_int_equal(test_service_objects_exist(name), 0);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
#ifndef _WIN32
      cmocka_unit_test(test_access_modes),
      cmocka_unit_test(test_other_user),
      cmocka_unit_test(test_squatters_refused),
#endif
      cmocka_unit_test(test_hostile_writer),
  };
  int helper;
  test_proc_init(argv[0]);
  if (argc > 1 && strcmp(argv[1], "hostile") == 0) {
    test_proc_helper_started();
    return role_hostile(argc, argv);
  }
#ifndef _WIN32
  if (argc > 1 && strcmp(argv[1], "asuser") == 0) {
    test_proc_helper_started();
    return role_asuser(argc, argv);
  }
#endif
  helper = test_helper_main(argc, argv);
  if (helper >= 0)
    return helper;
  return cmocka_run_group_tests(tests, NULL, NULL);
}
