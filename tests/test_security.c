/*
 * The trust boundary, outside the mapping: who may open a service, which
 * users a client trusts, names held by squatters, errors that say what
 * happened, bounded spinning, liveness that a fork() child or a client's
 * locks cannot fake, a /dev/shm too small for a service, and an object a
 * peer truncates. (test_hostile.c writes into the mapping.)
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

#ifndef _WIN32
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#define DAEMON_ID 1

static int is_root(void) { return geteuid() == 0; }

static void path_of(char *out, size_t cap, const char *name,
                    const char *suffix) {
  snprintf(out, cap, "/dev/shm/shmrpc.%s%s", name, suffix);
}

static int mode_of(const char *name, const char *suffix) {
  char path[256];
  struct stat st;
  path_of(path, sizeof(path), name, suffix);
  if (lstat(path, &st) != 0)
    return -1;
  return (int)(st.st_mode & 0777);
}

/* Becomes user `uid` (and its group), for a helper that plays another
 * user. */
static int become(uid_t uid) {
  return setgid(uid == NOBODY_ID ? NOBODY_ID : uid) == 0 && setuid(uid) == 0
             ? 0
             : -1;
}

/* asuser UID NAME [SERVER_USER]: as that user, opens NAME (trusting
 * SERVER_USER if given) and makes one T_ADD call of 40 + 2. Prints "open
 * CODE" or "result CODE VALUE", and the detailed message on a second line. */
static int role_asuser(int argc, char **argv) {
  shmrpc_client_options options;
  shmrpc_client *client = NULL;
  unsigned char req[16], resp[8];
  size_t len = 0;
  int rc;
  if (argc < 4)
    return 2;
  if (become((uid_t)strtoul(argv[2], NULL, 10)) != 0) {
    printf("cannot become uid %s\n", argv[2]);
    return 1;
  }
  shmrpc_client_options_init(&options);
  if (argc > 4)
    options.server_user = argv[4];
  rc = shmrpc_client_open(&client, argv[3], &options, 2000);
  if (rc != 0) {
    printf("open %s\n%s\n", shmrpc_err_name(rc), shmrpc_error_message(rc));
    return 0;
  }
  test_put_u64(req, 40);
  test_put_u64(req + 8, 2);
  rc = shmrpc_call(client, T_ADD, req, 16, resp, 8, &len, T_EXIT_MS);
  printf("result %s %llu\n", shmrpc_err_name(rc),
         rc == 0 ? (unsigned long long)test_get_u64(resp) : 0ull);
  fflush(stdout);
  shmrpc_client_close(client);
  return 0;
}

/* userserver UID NAME: as that user, serves NAME to everyone until
 * T_STOP. */
static int role_userserver(int argc, char **argv) {
  shmrpc_server_options options;
  shmrpc_server *server = NULL;
  int rc;
  if (argc < 4)
    return 2;
  if (become((uid_t)strtoul(argv[2], NULL, 10)) != 0) {
    printf("cannot become uid %s\n", argv[2]);
    return 1;
  }
  shmrpc_server_options_init(&options);
  options.access = SHMRPC_ACCESS_EVERYONE;
  rc = shmrpc_server_create(&server, argv[3], &options);
  if (rc != 0) {
    printf("error %s %s\n", shmrpc_err_name(rc), shmrpc_error_message(rc));
    return 1;
  }
  test_register_methods(server, NULL);
  printf("ready\n");
  fflush(stdout);
  rc = shmrpc_server_run(server);
  shmrpc_server_destroy(server);
  return rc == 0 ? 0 : 1;
}

/* Runs a helper role and returns its first output line in line[]. */
static void run_helper(const char *const args[], char *line, size_t cap) {
  test_proc *proc = NULL;
  assert_int_equal(test_proc_spawn(&proc, args), 0);
  assert_true(test_proc_read_line(proc, line, cap, T_EXIT_MS) > 0);
  test_proc_free(proc);
}

/* ---- Access ------------------------------------------------------------ */

/* Every name is owner-only by default; wider access opens exactly what
 * callers need: the calls object and the request FIFO for writing, the
 * server object and the lane FIFOs for reading; the lock never. */
static void test_access_modes(void **state) {
  static const struct {
    const char *suffix;
    int mode[3];
  } names[] = {{"", {0600, 0640, 0644}},
               {"@calls", {0600, 0660, 0666}},
               {"@lock", {0600, 0600, 0600}},
               {"@req", {0600, 0620, 0622}},
               {"@0", {0600, 0640, 0644}},
               {"@1", {0600, 0640, 0644}}};
  int access;
  (void)state;
  for (access = SHMRPC_ACCESS_OWNER; access <= SHMRPC_ACCESS_EVERYONE;
       access++) {
    const char *name = test_service_name("mode");
    shmrpc_server_options options;
    shmrpc_server *server = NULL;
    mode_t old_umask = umask(0077); /* a strict umask must not matter */
    size_t i;
    shmrpc_server_options_init(&options);
    options.access = access;
    options.lanes = 2;
    assert_int_equal(shmrpc_server_create(&server, name, &options), 0);
    umask(old_umask);
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
      assert_int_equal(mode_of(name, names[i].suffix), names[i].mode[access]);
    assert_int_equal(mode_of(name, "@2"), -1); /* two lanes, two FIFOs */
    shmrpc_server_destroy(server);
    assert_int_equal(test_service_objects_exist(name), 0);
  }
}

/* Another user is refused by default and served once access is widened;
 * it trusts a server run by root. */
static void test_other_user(void **state) {
  int access;
  char uid[16];
  (void)state;
  if (!is_root()) {
    print_message("skipped: needs root to run a helper as user nobody\n");
    skip();
  }
  snprintf(uid, sizeof(uid), "%d", NOBODY_ID);
  for (access = SHMRPC_ACCESS_OWNER; access <= SHMRPC_ACCESS_EVERYONE;
       access += SHMRPC_ACCESS_EVERYONE) {
    const char *name = test_service_name("user");
    const char *args[] = {"asuser", uid, name, NULL};
    shmrpc_server_options options;
    test_server_thread ts;
    char line[128];
    shmrpc_server_options_init(&options);
    options.access = access;
    test_server_thread_start_with(&ts, name, &options, NULL);
    run_helper(args, line, sizeof(line));
    assert_string_equal(line, access == SHMRPC_ACCESS_OWNER
                                  ? "open SHMRPC_EACCES"
                                  : "result SHMRPC_OK 42");
    test_server_thread_stop(&ts);
  }
}

/* A server run as nobody and shared with everyone: a client refuses it
 * with a distinct error unless it names nobody as the server user, and
 * then calls it, as root and as a third user. */
static void test_cross_user_service(void **state) {
  const char *name = test_service_name("xuser");
  char nobody[16], daemon_uid[16], line[256];
  test_proc *server = NULL;
  shmrpc_client *client = NULL;
  shmrpc_client_options options;
  (void)state;
  if (!is_root()) {
    print_message("skipped: needs root to run helpers as other users\n");
    skip();
  }
  snprintf(nobody, sizeof(nobody), "%d", NOBODY_ID);
  snprintf(daemon_uid, sizeof(daemon_uid), "%d", DAEMON_ID);
  {
    const char *args[] = {"userserver", nobody, name, NULL};
    assert_int_equal(test_proc_spawn(&server, args), 0);
    test_read_expected(server, "ready");
  }

  /* Root trusts itself and root: nobody's service is refused, clearly. */
  assert_int_equal(shmrpc_client_open(&client, name, NULL, 1000),
                   SHMRPC_EUNTRUSTED);
  assert_non_null(strstr(shmrpc_error_message(SHMRPC_EUNTRUSTED), "nobody"));
  shmrpc_client_options_init(&options);
  options.server_user = "root";
  assert_int_equal(shmrpc_client_open(&client, name, &options, 1000),
                   SHMRPC_EUNTRUSTED);
  options.server_user = "no-such-user-here";
  assert_int_equal(shmrpc_client_open(&client, name, &options, 1000),
                   SHMRPC_EINVAL);

  /* Named, by name or id, it is trusted. */
  options.server_user = "nobody";
  assert_int_equal(shmrpc_client_open(&client, name, &options, 1000), 0);
  assert_int_equal(test_call_add(client, 20, 22), 42);
  shmrpc_client_close(client);
  options.server_user = nobody;
  assert_int_equal(shmrpc_client_open(&client, name, &options, 1000), 0);
  assert_int_equal(test_call_add(client, 1, 2), 3);

  /* A third user, naming nobody, and not naming it. */
  {
    const char *args[] = {"asuser", daemon_uid, name, "nobody", NULL};
    run_helper(args, line, sizeof(line));
    assert_string_equal(line, "result SHMRPC_OK 42");
  }
  {
    const char *args[] = {"asuser", daemon_uid, name, NULL};
    run_helper(args, line, sizeof(line));
    assert_string_equal(line, "open SHMRPC_EUNTRUSTED");
  }
  test_stop_server(client, server);
  shmrpc_client_close(client);
  test_proc_free(server);
  assert_int_equal(test_service_objects_exist(name), 0);
}

/* ---- Squatters --------------------------------------------------------- */

static void write_junk(const char *path, mode_t mode) {
  unsigned char junk[4096];
  int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, mode);
  if (fd < 0)
    print_error("cannot create %s: %s\n", path, strerror(errno));
  assert_true(fd >= 0);
  memset(junk, 0x41, sizeof(junk));
  assert_int_equal(write(fd, junk, sizeof(junk)), (int)sizeof(junk));
  close(fd);
}

/* Another user's object under the name is never taken over, used or
 * removed; another user's lock means the name is taken. Making objects for
 * another user needs root. */
static void test_other_users_names(void **state) {
  const char *name = test_service_name("others");
  shmrpc_server *server = NULL;
  shmrpc_client *client = NULL;
  char path[256], target[256];
  (void)state;
  if (!is_root())
    skip();
  path_of(path, sizeof(path), name, "");
  write_junk(path, 0644);
  assert_int_equal(chown(path, NOBODY_ID, NOBODY_ID), 0);
  assert_int_equal(shmrpc_server_create(&server, name, NULL), SHMRPC_EACCES);
  assert_non_null(strstr(shmrpc_error_message(SHMRPC_EACCES), "nobody"));
  assert_int_equal(shmrpc_client_open(&client, name, NULL, 0),
                   SHMRPC_EUNTRUSTED);
  assert_int_equal(shmrpc_service_clean(name, 0), SHMRPC_EACCES);
  assert_int_equal(unlink(path), 0);
  path_of(target, sizeof(target), name, "@lock");
  write_junk(target, 0600);
  assert_int_equal(chown(target, NOBODY_ID, NOBODY_ID), 0);
  assert_int_equal(shmrpc_server_create(&server, name, NULL), SHMRPC_EACCES);
  assert_int_equal(unlink(target), 0);
  assert_null(server);
  assert_null(client);
  assert_int_equal(test_service_objects_exist(name), 0);
}

/* What lies at a service's name decides what happens to it. Garbage of this
 * user's is a dead server's leftover: taken over, or cleaned. Anything of
 * another user's, a link, a directory or a FIFO is refused with an error
 * that says so, never followed, never waited on, and left as it was. */
static void test_squatters_refused(void **state) {
  const char *name = test_service_name("squat");
  shmrpc_server *server = NULL;
  shmrpc_client *client = NULL;
  char path[256], target[256];
  struct stat before, after;
  (void)state;
  path_of(path, sizeof(path), name, "");

  /* Garbage of ours, in both objects: a server takes it over. */
  write_junk(path, 0600);
  path_of(target, sizeof(target), name, "@calls");
  write_junk(target, 0666);
  assert_int_equal(stat(path, &before), 0);
  assert_int_equal(shmrpc_client_open(&client, name, NULL, 0),
                   SHMRPC_ENOSERVER);
  assert_int_equal(shmrpc_server_create(&server, name, NULL), 0);
  assert_int_equal(stat(path, &after), 0);
  assert_true(after.st_ino != before.st_ino);
  assert_int_equal(mode_of(name, "@calls"), 0600);
  shmrpc_server_destroy(server);
  server = NULL;
  /* ... or clean removes it. */
  write_junk(path, 0600);
  assert_int_equal(shmrpc_service_clean(name, 0), 0);
  assert_int_equal(test_service_objects_exist(name), 0);

  /* A symbolic link where the object should be is never followed. */
  snprintf(target, sizeof(target), "/dev/shm/shmrpc-target-%s", name);
  write_junk(target, 0600);
  assert_int_equal(symlink(target, path), 0);
  assert_int_equal(shmrpc_server_create(&server, name, NULL), SHMRPC_EPROTO);
  assert_non_null(strstr(shmrpc_error_message(SHMRPC_EPROTO), "link"));
  assert_int_equal(shmrpc_client_open(&client, name, NULL, 0), SHMRPC_EPROTO);
  assert_int_equal(stat(target, &after), 0);
  assert_int_equal(after.st_size, 4096);
  assert_int_equal(unlink(path), 0);
  assert_int_equal(unlink(target), 0);

  /* A directory: "is a directory", not "invalid argument". */
  assert_int_equal(mkdir(path, 0700), 0);
  assert_int_equal(shmrpc_server_create(&server, name, NULL), SHMRPC_EPROTO);
  assert_non_null(strstr(shmrpc_error_message(SHMRPC_EPROTO), "directory"));
  assert_int_equal(shmrpc_client_open(&client, name, NULL, 0), SHMRPC_EPROTO);
  assert_non_null(strstr(shmrpc_error_message(SHMRPC_EPROTO), "directory"));
  assert_int_equal(rmdir(path), 0);

  /* A FIFO: never opened in a way that blocks. */
  assert_int_equal(mkfifo(path, 0600), 0);
  assert_int_equal(shmrpc_server_create(&server, name, NULL), SHMRPC_EPROTO);
  assert_non_null(strstr(shmrpc_error_message(SHMRPC_EPROTO), "FIFO"));
  assert_int_equal(shmrpc_client_open(&client, name, NULL, 0), SHMRPC_EPROTO);
  assert_int_equal(unlink(path), 0);
  path_of(target, sizeof(target), name, "@lock");
  unlink(target);
  assert_null(server);
  assert_null(client);
  assert_int_equal(test_service_objects_exist(name), 0);
}

/* A FIFO planted where a live server's names are does not make it hang
 * when it finishes. */
static void test_destroy_never_blocks(void **state) {
  const char *name = test_service_name("fifo");
  shmrpc_server *server = NULL;
  char path[256], moved[300];
  (void)state;
  assert_int_equal(shmrpc_server_create(&server, name, NULL), 0);
  path_of(path, sizeof(path), name, "@calls");
  snprintf(moved, sizeof(moved), "%s-moved", path);
  assert_int_equal(rename(path, moved), 0);
  assert_int_equal(mkfifo(path, 0600), 0);
  shmrpc_server_destroy(server); /* returns: nothing opens the FIFO */
  assert_int_equal(unlink(path), 0);
  assert_int_equal(unlink(moved), 0);
  assert_int_equal(test_service_objects_exist(name), 0);
}

/* ---- Errors ------------------------------------------------------------ */

/* nofiles NAME: opens NAME with no file descriptor left to open. */
static int role_nofiles(int argc, char **argv) {
  struct rlimit limit = {3, 3};
  shmrpc_client *client = NULL;
  int rc;
  if (argc < 3)
    return 2;
  fflush(stdout);
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0)
    return 1;
  rc = shmrpc_client_open(&client, argv[2], NULL, 1000);
  printf("open %s\n%s\n", shmrpc_err_name(rc), shmrpc_error_message(rc));
  fflush(stdout);
  return 0;
}

/* Errors carry what the operating system said. */
static void test_error_messages(void **state) {
  const char *name = test_service_name("err");
  const char *args[] = {"nofiles", name, NULL};
  test_server_thread ts;
  shmrpc_service_info info;
  test_proc *proc = NULL;
  char line[256], path[256];
  int fd;
  (void)state;

  /* Out of file descriptors: the message says so. */
  test_server_thread_start(&ts, name, 0, NULL);
  assert_int_equal(test_proc_spawn(&proc, args), 0);
  assert_true(test_proc_read_line(proc, line, sizeof(line), T_EXIT_MS) > 0);
  assert_string_equal(line, "open SHMRPC_EOS");
  assert_true(test_proc_read_line(proc, line, sizeof(line), T_EXIT_MS) > 0);
  assert_non_null(strstr(line, "Too many open files"));
  test_proc_free(proc);
  test_server_thread_stop(&ts);

  /* A name whose server died while it began shows as incomplete, not as
   * "no service". */
  path_of(path, sizeof(path), name, "@lock");
  fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0600);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(shmrpc_service_query(name, 0, &info), 0);
  assert_int_equal(info.complete, 0);
  assert_int_equal(info.alive, 0);
  assert_int_equal(shmrpc_service_clean(name, 0), 0);
  assert_int_equal(test_service_objects_exist(name), 0);

  /* The rule for names, stated. */
  {
    shmrpc_client *client = NULL;
    assert_int_equal(shmrpc_client_open(&client, "bad/name", NULL, 0),
                     SHMRPC_EINVAL);
    assert_non_null(strstr(shmrpc_error_message(SHMRPC_EINVAL), "1 to 64"));
  }
}

/* Adds 2 and 3 through client and prints "WHO CODE SUM". */
static void add_and_print(shmrpc_client *client, const char *who) {
  unsigned char req[16], resp[8] = {0};
  size_t len = 0;
  int rc;
  test_put_u64(req, 2);
  test_put_u64(req + 8, 3);
  rc = shmrpc_call(client, T_ADD, req, 16, resp, 8, &len, T_EXIT_MS);
  printf("%s %s %llu\n", who, shmrpc_err_name(rc),
         (unsigned long long)test_get_u64(resp));
  fflush(stdout);
}

/* forkcall NAME: opens NAME, calls, forks; the child calls through the
 * handle it inherited (it reconnects as a client of its own), then the
 * parent calls. Prints "first CODE SUM", "child CODE SUM" and
 * "parent CODE SUM". */
static int role_forkcall(int argc, char **argv) {
  shmrpc_client *client = NULL;
  pid_t child;
  int status = 0;
  if (argc < 3)
    return 2;
  if (shmrpc_client_open(&client, argv[2], NULL, T_READY_MS) != 0)
    return 1;
  add_and_print(client, "first");
  child = fork();
  if (child == 0) {
    add_and_print(client, "child");
    shmrpc_client_close(client);
    _exit(0);
  }
  waitpid(child, &status, 0);
  add_and_print(client, "parent");
  shmrpc_client_close(client);
  return 0;
}

/* A client handle inherited through fork() works in the child, as a new
 * connection, and the parent's goes on. */
static void test_fork_client(void **state) {
  const char *name = test_service_name("forkc");
  const char *args[] = {"forkcall", name, NULL};
  test_server_thread ts;
  test_proc *proc = NULL;
  (void)state;
  test_server_thread_start(&ts, name, 0, NULL);
  assert_int_equal(test_proc_spawn(&proc, args), 0);
  test_read_expected(proc, "first SHMRPC_OK 5");
  test_read_expected(proc, "child SHMRPC_OK 5");
  test_read_expected(proc, "parent SHMRPC_OK 5");
  test_expect_exit(proc, 0);
  test_proc_free(proc);
  test_server_thread_stop(&ts);
}

/* Takes every lock this process can on byte `at` and on the whole file. */
static void lock_everything(int fd, int writable) {
  static const off_t at[] = {0, 1, 2, ((off_t)1 << 40), ((off_t)1 << 40) + 7};
  size_t i;
  for (i = 0; i < sizeof(at) / sizeof(at[0]) + 1; i++) {
    struct flock lock;
    memset(&lock, 0, sizeof(lock));
    lock.l_whence = SEEK_SET;
    lock.l_start = i < sizeof(at) / sizeof(at[0]) ? at[i] : 0;
    lock.l_len = i < sizeof(at) / sizeof(at[0]) ? 1 : 0; /* 0: to the end */
    lock.l_type = writable ? F_WRLCK : F_RDLCK;
    (void)fcntl(fd, F_OFD_SETLK, &lock);
    lock.l_type = F_RDLCK;
    (void)fcntl(fd, F_OFD_SETLK, &lock);
  }
  (void)flock(fd, LOCK_EX | LOCK_NB);
  (void)flock(fd, LOCK_SH | LOCK_NB);
}

/* locker UID NAME: as that user, opens every name of service NAME it can,
 * in every mode it may, and takes every kind of lock on each; prints
 * "locked N" (descriptors), then holds them until killed. */
static int role_locker(int argc, char **argv) {
  static const char *const suffixes[] = {"", "@calls", "@lock", "@req",
                                         "@0", "@1"};
  static const int modes[] = {O_RDONLY, O_WRONLY, O_RDWR};
  int opened = 0;
  size_t i, m;
  if (argc < 4)
    return 2;
  if (become((uid_t)strtoul(argv[2], NULL, 10)) != 0)
    return 1;
  for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
    char path[256];
    path_of(path, sizeof(path), argv[3], suffixes[i]);
    for (m = 0; m < 3; m++) {
      int fd = open(path, modes[m] | O_NONBLOCK);
      if (fd < 0)
        continue;
      opened++;
      lock_everything(fd, modes[m] != O_RDONLY);
    }
  }
  printf("locked %d\n", opened);
  fflush(stdout);
  for (;;)
    test_sleep_ms(1000);
}

/* A client of a service open to everyone takes every lock it can on every
 * object: a live server still looks alive, and once killed it looks dead
 * to its callers and to a new server, which starts at once. */
static void test_locks_cannot_fake_liveness(void **state) {
  const char *name = test_service_name("locker");
  const char *extra[] = {"access=everyone", NULL};
  shmrpc_service_info info;
  shmrpc_client *client = NULL;
  shmrpc_server *next = NULL;
  test_proc *server, *locker = NULL;
  char uid[16], line[64];
  int descriptors = 0;
  (void)state;

  server = test_spawn_server_args(name, "4096", extra);
  assert_int_equal(shmrpc_client_open(&client, name, NULL, T_READY_MS), 0);
  assert_int_equal(test_call_add(client, 1, 2), 3);
  snprintf(uid, sizeof(uid), "%d", is_root() ? NOBODY_ID : (int)geteuid());
  {
    const char *args[] = {"locker", uid, name, NULL};
    assert_int_equal(test_proc_spawn(&locker, args), 0);
  }
  assert_true(test_proc_read_line(locker, line, sizeof(line), T_READY_MS) > 0);
  assert_int_equal(sscanf(line, "locked %d", &descriptors), 1);
  assert_true(descriptors >= 3);

  /* Alive, and an open connection still calls. */
  assert_int_equal(shmrpc_service_query(name, 0, &info), 0);
  assert_int_equal(info.alive, 1);
  assert_int_equal(test_call_add(client, 20, 22), 42);

  /* Dead: the caller hears it, the query says it, a new server starts. */
  test_proc_kill(server);
  test_proc_free(server);
  {
    unsigned char req[16], resp[8];
    test_put_u64(req, 1);
    test_put_u64(req + 8, 1);
    assert_int_equal(shmrpc_call(client, T_ADD, req, 16, resp, 8, NULL,
                                 SHMRPC_INFINITE),
                     SHMRPC_ESERVERDIED);
  }
  assert_int_equal(shmrpc_service_query(name, 0, &info), 0);
  assert_int_equal(info.alive, 0);
  assert_int_equal(shmrpc_server_create(&next, name, NULL), 0);
  shmrpc_client_close(client);
  shmrpc_server_destroy(next);
  test_proc_kill(locker);
  test_proc_free(locker);
  assert_int_equal(test_service_objects_exist(name), 0);
}

/* ---- Space ------------------------------------------------------------- */

/* Counts the entries of /dev/shm (in this mount namespace). */
static int shm_entries(void) {
  DIR *dir = opendir("/dev/shm");
  struct dirent *entry;
  int count = 0;
  if (dir == NULL)
    return -1;
  while ((entry = readdir(dir)) != NULL)
    if (entry->d_name[0] != '.')
      count++;
  closedir(dir);
  return count;
}

/* smallshm NAME: in a mount namespace of its own with a 1 MiB /dev/shm,
 * creates a service too large for it and one that fits, and calls the one
 * that fits with requests and answers of its full capacity. Prints
 * "toolarge CODE ENTRIES", then "fits CODE ENTRIES", then "full CODE
 * OK|BAD", then "gone ENTRIES". */
static int role_smallshm(int argc, char **argv) {
  shmrpc_server_options options;
  shmrpc_server *server = NULL;
  test_server_thread ts;
  shmrpc_client *client = NULL;
  static unsigned char request[200000], response[200000];
  size_t len = 0, i;
  int rc;
  if (argc < 3)
    return 2;
  if (unshare(CLONE_NEWNS) != 0 ||
      mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
      mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV,
            "size=1m,mode=1777") != 0) {
    printf("cannot make a small /dev/shm: %s\n", strerror(errno));
    return 1;
  }
  shmrpc_server_options_init(&options);
  options.capacity = 1024 * 1024;
  options.lanes = 1;
  rc = shmrpc_server_create(&server, argv[2], &options);
  printf("toolarge %s %d\n%s\n", shmrpc_err_name(rc), shm_entries(),
         shmrpc_error_message(rc));
  options.capacity = sizeof(request);
  test_server_thread_start_with(&ts, argv[2], &options, NULL);
  printf("fits 0 %d\n", shm_entries());
  rc = shmrpc_client_open(&client, argv[2], NULL, T_READY_MS);
  for (i = 0; i < sizeof(request); i++)
    request[i] = (unsigned char)(i * 7u);
  if (rc == 0)
    rc = shmrpc_call(client, T_ECHO, request, sizeof(request), response,
                     sizeof(response), &len, T_EXIT_MS);
  printf("full %s %s\n", shmrpc_err_name(rc),
         rc == 0 && len == sizeof(request) &&
                 memcmp(request, response, len) == 0
             ? "OK"
             : "BAD");
  shmrpc_client_close(client);
  test_server_thread_stop(&ts);
  printf("gone %d\n", shm_entries());
  fflush(stdout);
  return 0;
}

/* A /dev/shm that cannot hold a service (Docker's is 64 MiB): creating it
 * fails with a clear error that names the shortage and leaves no name; one
 * that fits serves calls of its full capacity, never SIGBUS. */
static void test_small_dev_shm(void **state) {
  const char *name = test_service_name("small");
  const char *args[] = {"smallshm", name, NULL};
  test_proc *proc = NULL;
  char line[256];
  (void)state;
  if (!is_root()) {
    print_message("skipped: needs root for a mount namespace\n");
    skip();
  }
  assert_int_equal(test_proc_spawn(&proc, args), 0);
  test_read_expected(proc, "toolarge SHMRPC_ENOSPC 0");
  assert_true(test_proc_read_line(proc, line, sizeof(line), T_EXIT_MS) > 0);
  print_message("the error says: %s\n", line);
  assert_non_null(strstr(line, "/dev/shm"));
  assert_non_null(strstr(line, "MiB"));
  assert_true(test_proc_read_line(proc, line, sizeof(line), T_EXIT_MS) > 0);
  assert_int_equal(strncmp(line, "fits 0 ", 7), 0);
  test_read_expected(proc, "full SHMRPC_OK OK");
  test_read_expected(proc, "gone 0");
  test_expect_exit(proc, 0);
  test_proc_free(proc);
}

/* A peer that may write the calls object truncates it. Whoever touches the
 * lost pages may die of SIGBUS (Linux gives no way to forbid that for an
 * object other users write); what is guaranteed is that the name stays
 * recoverable: a new server starts, and clean works. */
static void test_truncated_calls_object(void **state) {
  const char *name = test_service_name("trunc");
  test_proc *server = test_spawn_server(name, "4096");
  shmrpc_server *next = NULL;
  char path[256];
  int code = -1;
  int64_t end = test_now_ms() + T_EXIT_MS;
  (void)state;
  path_of(path, sizeof(path), name, "@calls");
  assert_int_equal(truncate(path, 0), 0);
  /* The server either dies touching a lost page or puts the size back in
   * its repair pass: wait for one of the two. */
  for (;;) {
    struct stat st;
    if (test_proc_wait(server, 10, &code) == 0) {
      print_message("the server died with exit code %d\n", code);
      break;
    }
    assert_int_equal(stat(path, &st), 0);
    if (st.st_size > 0) {
      print_message("the server lives; the object has %lld bytes again\n",
                    (long long)st.st_size);
      test_proc_kill(server);
      break;
    }
    if (test_now_ms() > end)
      fail_msg("the server neither died nor restored %s", path);
  }
  test_proc_free(server);
  test_wait_service_dead(name);
  assert_int_equal(shmrpc_server_create(&next, name, NULL), 0);
  shmrpc_server_destroy(next);
  assert_int_equal(truncate(path, 0), -1); /* gone with the server */
  assert_int_equal(test_service_objects_exist(name), 0);
}
#endif /* !_WIN32 */

#ifdef _WIN32
/* ---- Windows: security descriptors and squatters ----------------------- */

#include <aclapi.h>
#include <sddl.h>
#include <wchar.h>

/* The kinds of named object a service is made of. */
enum win_kind { WIN_SECTION, WIN_MUTEX, WIN_EVENT, WIN_SEMAPHORE };

/* The objects of a two-lane service, as src/win32/ names them, and the
 * rights others get on each (src/win32/service.c: others_rights). */
static const struct {
  const wchar_t *suffix;
  enum win_kind kind;
  ACCESS_MASK others;
} win_objects[] = {
    {L".map", WIN_SECTION, READ_CONTROL | SECTION_MAP_READ | SECTION_QUERY},
    {L".calls", WIN_SECTION,
     READ_CONTROL | SECTION_MAP_READ | SECTION_MAP_WRITE | SECTION_QUERY},
    {L".alive", WIN_MUTEX, READ_CONTROL | MUTANT_QUERY_STATE},
    {L".req", WIN_SEMAPHORE, READ_CONTROL | SEMAPHORE_MODIFY_STATE},
    {L".lock0", WIN_MUTEX, READ_CONTROL | SYNCHRONIZE | MUTANT_QUERY_STATE},
    {L".lock1", WIN_MUTEX, READ_CONTROL | SYNCHRONIZE | MUTANT_QUERY_STATE},
    {L".resp0", WIN_EVENT, READ_CONTROL | SYNCHRONIZE | EVENT_MODIFY_STATE},
    {L".resp1", WIN_EVENT, READ_CONTROL | SYNCHRONIZE | EVENT_MODIFY_STATE}};
#define WIN_OBJECTS (sizeof(win_objects) / sizeof(win_objects[0]))
#define WIN_MAP 0u
#define WIN_CALLS 1u
#define WIN_ALIVE 2u

/* Local\shmrpc.NAME.SUFFIX; service names are ASCII (shmrpc_name_check). */
static void win_object_name(wchar_t *out, size_t cap, const char *name,
                            const wchar_t *suffix) {
  static const wchar_t prefix[] = L"Local\\shmrpc.";
  size_t used = 0, i;
  assert_true(wcslen(prefix) + strlen(name) + wcslen(suffix) < cap);
  for (i = 0; prefix[i] != L'\0'; i++)
    out[used++] = prefix[i];
  for (i = 0; name[i] != '\0'; i++)
    out[used++] = (wchar_t)(unsigned char)name[i];
  for (i = 0; suffix[i] != L'\0'; i++)
    out[used++] = suffix[i];
  out[used] = L'\0';
}

static HANDLE win_object_open(enum win_kind kind, const wchar_t *object,
                              DWORD access) {
  switch (kind) {
  case WIN_SECTION:
    return OpenFileMappingW(access, FALSE, object);
  case WIN_MUTEX:
    return OpenMutexW(access, FALSE, object);
  case WIN_SEMAPHORE:
    return OpenSemaphoreW(access, FALSE, object);
  default:
    return OpenEventW(access, FALSE, object);
  }
}

/* The SID of this process's user (a static copy). */
static PSID win_current_user(void) {
  static union {
    TOKEN_USER user;
    unsigned char bytes[sizeof(TOKEN_USER) + SECURITY_MAX_SID_SIZE];
  } info;
  HANDLE token = NULL;
  DWORD len = 0;
  assert_true(OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token));
  assert_true(GetTokenInformation(token, TokenUser, &info, sizeof(info), &len));
  CloseHandle(token);
  return info.user.User.Sid;
}

/* Fails the test with the object and its descriptor if cond is false. */
static void win_expect(int cond, const char *what, const char *name,
                       size_t object, PSECURITY_DESCRIPTOR descriptor) {
  if (!cond) {
    char *text = NULL;
    ConvertSecurityDescriptorToStringSecurityDescriptorA(
        descriptor, SDDL_REVISION_1,
        OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION, &text, NULL);
    print_error("%s: object %ls of %s, descriptor %s\n", what,
                win_objects[object].suffix, name, text != NULL ? text : "?");
    fail();
  }
}

/* Reads back the descriptor of every named object of a new service, for
 * each access option: an explicit protected DACL (never a NULL one), owned
 * by this user; the owner's ACE alone by default; one more ACE, for
 * Authenticated Users (S-1-5-11) or Everyone (S-1-1-0), when access is
 * widened, with exactly the rights a caller needs: read-only on the server
 * section, query-only on the liveness token, never WRITE_DAC, WRITE_OWNER
 * or DELETE. */
static void test_access_descriptors(void **state) {
  PSID user = win_current_user();
  PSID wider[3] = {NULL, NULL, NULL};
  int access;
  (void)state;
  assert_true(ConvertStringSidToSidW(L"S-1-5-11", &wider[SHMRPC_ACCESS_GROUP]));
  assert_true(ConvertStringSidToSidW(L"S-1-1-0", &wider[SHMRPC_ACCESS_EVERYONE]));
  for (access = SHMRPC_ACCESS_OWNER; access <= SHMRPC_ACCESS_EVERYONE;
       access++) {
    const char *name = test_service_name("sd");
    shmrpc_server_options options;
    shmrpc_server *server = NULL;
    size_t i;
    shmrpc_server_options_init(&options);
    options.access = access;
    options.lanes = 2;
    assert_int_equal(shmrpc_server_create(&server, name, &options), 0);
    for (i = 0; i < WIN_OBJECTS; i++) {
      wchar_t object[160];
      PSECURITY_DESCRIPTOR descriptor = NULL;
      PSID owner = NULL;
      PACL dacl = NULL;
      SECURITY_DESCRIPTOR_CONTROL control = 0;
      DWORD revision = 0, ace;
      ACL_SIZE_INFORMATION acl;
      unsigned user_aces = 0, wider_aces = 0;
      HANDLE handle;
      win_object_name(object, 160, name, win_objects[i].suffix);
      handle = win_object_open(win_objects[i].kind, object, READ_CONTROL);
      assert_non_null(handle);
      assert_int_equal(GetSecurityInfo(handle, SE_KERNEL_OBJECT,
                                       OWNER_SECURITY_INFORMATION |
                                           DACL_SECURITY_INFORMATION,
                                       &owner, NULL, &dacl, NULL, &descriptor),
                       ERROR_SUCCESS);
      assert_true(GetSecurityDescriptorControl(descriptor, &control, &revision));
      win_expect((control & SE_DACL_PRESENT) != 0 && dacl != NULL,
                 "no DACL, or a NULL DACL", name, i, descriptor);
      win_expect((control & SE_DACL_PROTECTED) != 0, "a DACL that inherits",
                 name, i, descriptor);
      win_expect(owner != NULL && EqualSid(owner, user),
                 "not owned by this user", name, i, descriptor);
      assert_true(GetAclInformation(dacl, &acl, sizeof(acl), AclSizeInformation));
      win_expect(acl.AceCount == (access == SHMRPC_ACCESS_OWNER ? 1u : 2u),
                 "wrong number of ACEs", name, i, descriptor);
      for (ace = 0; ace < acl.AceCount; ace++) {
        void *entry = NULL;
        const ACCESS_ALLOWED_ACE *allowed;
        PSID sid;
        assert_true(GetAce(dacl, ace, &entry));
        allowed = entry;
        win_expect(allowed->Header.AceType == ACCESS_ALLOWED_ACE_TYPE,
                   "an ACE that does not allow", name, i, descriptor);
        sid = (PSID)&allowed->SidStart;
        if (EqualSid(sid, user)) {
          user_aces++;
        } else if (access != SHMRPC_ACCESS_OWNER &&
                   EqualSid(sid, wider[access])) {
          wider_aces++;
          win_expect(allowed->Mask == win_objects[i].others,
                     "the wider ACE grants other rights than a caller needs",
                     name, i, descriptor);
        } else {
          win_expect(0, "an ACE for an unexpected SID", name, i, descriptor);
        }
      }
      win_expect(user_aces == 1, "not one ACE for the owner", name, i,
                 descriptor);
      win_expect(wider_aces == (access == SHMRPC_ACCESS_OWNER ? 0u : 1u),
                 "not one ACE for the wider group", name, i, descriptor);
      LocalFree(descriptor);
      CloseHandle(handle);
    }
    shmrpc_server_destroy(server);
    assert_int_equal(test_service_objects_exist(name), 0);
  }
  LocalFree(wider[SHMRPC_ACCESS_GROUP]);
  LocalFree(wider[SHMRPC_ACCESS_EVERYONE]);
}

/* Security attributes for a squatter's object, made from SDDL: owned by
 * `owner` (this user when NULL), with a protected DACL that grants this
 * user everything when grant_user is set, and no one anything otherwise.
 * The descriptor is explicit because Wine gives an object made without one
 * no owner at all. */
static void win_squatter_attributes(SECURITY_ATTRIBUTES *attributes,
                                    const wchar_t *owner, int grant_user) {
  PSECURITY_DESCRIPTOR descriptor = NULL;
  wchar_t *user = NULL, sddl[512];
  assert_true(ConvertSidToStringSidW(win_current_user(), &user));
  swprintf(sddl, 512, L"O:%lsD:P%ls%ls%ls", owner != NULL ? owner : user,
           grant_user ? L"(A;;GA;;;" : L"", grant_user ? user : L"",
           grant_user ? L")" : L"");
  LocalFree(user);
  assert_true(ConvertStringSecurityDescriptorToSecurityDescriptorW(
      sddl, SDDL_REVISION_1, &descriptor, NULL));
  attributes->nLength = sizeof(*attributes);
  attributes->lpSecurityDescriptor = descriptor;
  attributes->bInheritHandle = FALSE;
}

/* What each entry point answers while a squatter holds a name. */
typedef struct squat_expect {
  int create, open, clean;
} squat_expect;

static void win_expect_refused(const char *name, const squat_expect *expect) {
  shmrpc_server *server = NULL;
  shmrpc_client *client = NULL;
  assert_int_equal(shmrpc_server_create(&server, name, NULL), expect->create);
  assert_null(server);
  assert_int_equal(shmrpc_client_open(&client, name, NULL, 0), expect->open);
  assert_null(client);
  assert_int_equal(shmrpc_service_clean(name, 0), expect->clean);
}

/* Another SID's section under the name, though its DACL lets us in: never
 * taken over, never trusted. Making an object for another owner needs
 * SeRestorePrivilege on Windows (Wine allows it); without it the test is
 * skipped. */
static void test_other_owners_object(void **state) {
  const char *name = test_service_name("squat");
  SECURITY_ATTRIBUTES attributes;
  shmrpc_server *server = NULL;
  shmrpc_client *client = NULL;
  wchar_t object[160];
  HANDLE squatter;
  DWORD error;
  (void)state;
  win_object_name(object, 160, name, win_objects[WIN_MAP].suffix);
  /* S-1-5-21-1-2-3-4242: a local account that is not us. */
  win_squatter_attributes(&attributes, L"S-1-5-21-1-2-3-4242", 1);
  squatter = CreateFileMappingW(INVALID_HANDLE_VALUE, &attributes,
                                PAGE_READWRITE, 0, 4096, object);
  error = GetLastError();
  LocalFree(attributes.lpSecurityDescriptor);
  if (squatter == NULL && error == ERROR_INVALID_OWNER)
    skip();
  assert_non_null(squatter);
  assert_int_equal(shmrpc_server_create(&server, name, NULL), SHMRPC_EACCES);
  assert_int_equal(shmrpc_client_open(&client, name, NULL, 0),
                   SHMRPC_EUNTRUSTED);
  CloseHandle(squatter);
  assert_int_equal(test_service_objects_exist(name), 0);
}

/* Something else under a service's names. The wrong kind of object is
 * refused (SHMRPC_EPROTO); an object of ours whose DACL refuses us is
 * SHMRPC_EACCES; an object another SID owns is another user's name
 * (SHMRPC_EACCES for a server, SHMRPC_EUNTRUSTED for a client); a section
 * of ours with garbage in it is a dead server's leftover, taken over. A
 * refused server leaves nothing behind. */
static void test_squatters_refused(void **state) {
  wchar_t object[160];
  size_t i;
  (void)state;

  /* The wrong kind under each of the names a server makes first. */
  for (i = 0; i < 4; i++) {
    const char *name = test_service_name("squat");
    SECURITY_ATTRIBUTES attributes;
    squat_expect expect;
    HANDLE squatter;
    win_object_name(object, 160, name, win_objects[i].suffix);
    win_squatter_attributes(&attributes, NULL, 1);
    squatter = win_objects[i].kind == WIN_MUTEX
                   ? CreateEventW(&attributes, TRUE, TRUE, object)
                   : CreateMutexW(&attributes, FALSE, object);
    LocalFree(attributes.lpSecurityDescriptor);
    assert_non_null(squatter);
    expect.create = SHMRPC_EPROTO;
    expect.open = i == WIN_MAP ? SHMRPC_EPROTO : SHMRPC_ENOSERVER;
    expect.clean = i == WIN_MAP || i == WIN_ALIVE ? SHMRPC_EPROTO : 0;
    win_expect_refused(name, &expect);
    CloseHandle(squatter);
    assert_int_equal(test_service_objects_exist(name), 0);
  }

  /* Ours, but its DACL grants us nothing. */
  for (i = 0; i < 2; i++) {
    const char *name = test_service_name("squat");
    static const squat_expect expect = {SHMRPC_EACCES, SHMRPC_EACCES,
                                        SHMRPC_EACCES};
    SECURITY_ATTRIBUTES attributes;
    HANDLE squatter;
    win_object_name(object, 160, name, win_objects[i == 0 ? WIN_MAP : WIN_ALIVE]
                                           .suffix);
    win_squatter_attributes(&attributes, NULL, 0);
    squatter = i == 0 ? CreateFileMappingW(INVALID_HANDLE_VALUE, &attributes,
                                           PAGE_READWRITE, 0, 4096, object)
                      : CreateMutexW(&attributes, FALSE, object);
    LocalFree(attributes.lpSecurityDescriptor);
    assert_non_null(squatter);
    if (i == 0) {
      win_expect_refused(name, &expect);
    } else {
      shmrpc_server *server = NULL;
      assert_int_equal(shmrpc_server_create(&server, name, NULL),
                       SHMRPC_EACCES);
    }
    CloseHandle(squatter);
    assert_int_equal(test_service_objects_exist(name), 0);
  }

  /* Garbage in a section of ours: a dead server's leftover, taken over. */
  {
    const char *name = test_service_name("squat");
    SECURITY_ATTRIBUTES attributes;
    shmrpc_server *server = NULL;
    shmrpc_client *client = NULL;
    unsigned char *view;
    HANDLE squatter;
    win_object_name(object, 160, name, win_objects[WIN_CALLS].suffix);
    win_squatter_attributes(&attributes, NULL, 1);
    squatter = CreateFileMappingW(INVALID_HANDLE_VALUE, &attributes,
                                  PAGE_READWRITE, 0, 4u << 20, object);
    LocalFree(attributes.lpSecurityDescriptor);
    assert_non_null(squatter);
    view = MapViewOfFile(squatter, FILE_MAP_WRITE, 0, 0, 0);
    assert_non_null(view);
    memset(view, 0x41, 4u << 20);
    assert_int_equal(shmrpc_server_create(&server, name, NULL), 0);
    assert_int_equal(view[0], 0); /* zeroed for the new server */
    assert_int_equal(shmrpc_client_open(&client, name, NULL, T_READY_MS), 0);
    shmrpc_client_close(client);
    shmrpc_server_destroy(server);
    UnmapViewOfFile(view);
    CloseHandle(squatter);
    assert_int_equal(test_service_objects_exist(name), 0);
  }
}
#endif /* _WIN32 */

/* ---- Spinning ---------------------------------------------------------- */

/* The spin window is capped, and a spinning caller keeps its deadline. */
static void test_spin_bounds(void **state) {
  const char *name = test_service_name("spin");
  test_gate gate = {test_event_new(), test_event_new()};
  shmrpc_server_options server_options;
  shmrpc_client_options options;
  shmrpc_client *client = NULL;
  shmrpc_server *server = NULL;
  test_server_thread ts;
  unsigned char byte = 0;
  int64_t started, took;
  (void)state;

  shmrpc_server_options_init(&server_options);
  server_options.spin_us = SHMRPC_MAX_SPIN_US + 1;
  assert_int_equal(shmrpc_server_create(&server, name, &server_options),
                   SHMRPC_EINVAL);
  server_options.spin_us = INT32_MAX;
  assert_int_equal(shmrpc_server_create(&server, name, &server_options),
                   SHMRPC_EINVAL);
  shmrpc_client_options_init(&options);
  options.spin_us = SHMRPC_MAX_SPIN_US + 1;
  assert_int_equal(shmrpc_client_open(&client, name, &options, 0),
                   SHMRPC_EINVAL);

  /* The longest spin, against a handler that blocks: a 5 ms timeout ends
   * the call with ETIMEDOUT, never early. How long it took is printed, not
   * bounded: an upper bound would be a time limit on a shared machine. */
  test_server_thread_start(&ts, name, 0, &gate);
  options.spin_us = SHMRPC_MAX_SPIN_US;
  assert_int_equal(shmrpc_client_open(&client, name, &options, T_READY_MS), 0);
  started = test_now_ms();
  assert_int_equal(shmrpc_call(client, T_GATE, &byte, 1, &byte, 1, NULL, 5),
                   SHMRPC_ETIMEDOUT);
  took = test_now_ms() - started;
  print_message("a 5 ms call with a %d us spin window took %lld ms\n",
                SHMRPC_MAX_SPIN_US, (long long)took);
  assert_true(took >= 5);
  test_event_set(gate.release);
  shmrpc_client_close(client);
  test_server_thread_stop(&ts);
  test_event_free(gate.entered);
  test_event_free(gate.release);
}

/* ---- Liveness ---------------------------------------------------------- */

/* Reads "child PID" from a server started with "fork". */
static int read_child(test_proc *server) {
  char line[64];
  int pid = 0;
  assert_true(test_proc_read_line(server, line, sizeof(line), T_READY_MS) > 0);
  assert_int_equal(sscanf(line, "child %d", &pid), 1);
  return pid;
}

/* A server that started a helper that inherited all it could (fork()
 * without exec on POSIX, CreateProcess with inheritance on Windows) is
 * killed: yet callers learn at once that the server died, even with an
 * infinite timeout, and a new server starts at once. */
static void test_fork_child_keeps_no_liveness(void **state) {
  const char *name = test_service_name("fork");
  const char *args[] = {"server", name, "4096", "fork", NULL};
  shmrpc_service_info info;
  shmrpc_server *next = NULL;
  test_proc *server = NULL, *caller = NULL;
  char line[128], slow_id[8];
  int child, rc;
  int64_t killed;
  (void)state;

  assert_int_equal(test_proc_spawn(&server, args), 0);
  child = read_child(server);
  test_read_expected(server, "ready");
  snprintf(slow_id, sizeof(slow_id), "%d", T_SLOW);
  {
    const char *call[] = {"call", name, slow_id, "20000", "-1", NULL};
    assert_int_equal(test_proc_spawn(&caller, call), 0);
  }
  test_read_expected(caller, "opened");
  test_read_expected(server, "slow"); /* the handler runs */
  killed = test_now_ms();
  test_proc_kill(server);
  assert_true(test_proc_read_line(caller, line, sizeof(line), T_EXIT_MS) > 0);
  print_message("the caller learned of the death after %lld ms\n",
                (long long)(test_now_ms() - killed));
  assert_string_equal(line, "result SHMRPC_ESERVERDIED 0");
  test_proc_free(caller);
  assert_true(test_pid_alive(child)); /* the child still lives */
  /* Dead, or (Windows) gone with the last handle. */
  rc = shmrpc_service_query(name, 0, &info);
  assert_true(rc == SHMRPC_ENOSERVER || (rc == 0 && info.alive == 0));
  assert_int_equal(shmrpc_server_create(&next, name, NULL), 0);
  shmrpc_server_destroy(next);
  test_pid_kill(child);
  test_proc_free(server);
  assert_int_equal(test_service_objects_exist(name), 0);
}


int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_spin_bounds),
      cmocka_unit_test(test_fork_child_keeps_no_liveness),
#ifdef _WIN32
      cmocka_unit_test(test_access_descriptors),
      cmocka_unit_test(test_squatters_refused),
      cmocka_unit_test(test_other_owners_object),
#else
      cmocka_unit_test(test_access_modes),
      cmocka_unit_test(test_other_user),
      cmocka_unit_test(test_cross_user_service),
      cmocka_unit_test(test_squatters_refused),
      cmocka_unit_test(test_other_users_names),
      cmocka_unit_test(test_destroy_never_blocks),
      cmocka_unit_test(test_error_messages),
      cmocka_unit_test(test_fork_client),
      cmocka_unit_test(test_locks_cannot_fake_liveness),
      cmocka_unit_test(test_small_dev_shm),
      cmocka_unit_test(test_truncated_calls_object),
#endif
  };
  int helper;
  test_proc_init(argv[0]);
#ifndef _WIN32
  if (argc > 1) {
    static const struct {
      const char *role;
      int (*main)(int argc, char **argv);
    } roles[] = {{"asuser", role_asuser},     {"userserver", role_userserver},
                 {"nofiles", role_nofiles},   {"forkcall", role_forkcall},
                 {"locker", role_locker},     {"smallshm", role_smallshm}};
    size_t i;
    for (i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
      if (strcmp(argv[1], roles[i].role) == 0) {
        test_proc_helper_started();
        return roles[i].main(argc, argv);
      }
    }
  }
#endif
  helper = test_helper_main(argc, argv);
  if (helper >= 0)
    return helper;
  return cmocka_run_group_tests(tests, NULL, NULL);
}
