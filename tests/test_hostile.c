/*
 * A hostile writer in the mapping. It writes adversarial values into every
 * field of both objects of a service, one region at a time and all at once,
 * while honest callers (processes' threads, one handle of their own each and
 * one shared by two threads) call and check every answer. Asserted: no
 * process but the writer dies, no call outlives its timeout, no honest
 * caller gets a wrong answer from a writer of the fields that carry no part
 * of a request, and once the writer stops, calls succeed again with the
 * same server.
 *
 * Regions that carry a request (its method, length and bytes), and a lane's
 * lock (clearing it lets a second caller write into the holder's request),
 * let a writer change what a call asks: the caller then gets the server's
 * answer to the changed request, which no shared memory can prevent. The
 * server area is writable only by the server's user. For those the test
 * asserts all of the above but the answers.
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

/* The layout the writer aims at: the core's, and the backend's. */
#include "layout.h"
#ifndef _WIN32
#include "posix/posix.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#else
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#define WIN_PREFIX 64u /* src/win32/win32.h: the server section's prefix */
#endif

#define ATTACK_MS 150
#define ATTACK_ALL_MS 1500

enum object { CALLS = 0, SERVER = 1 };

/* A field repeated `count` times, `stride` bytes apart. */
typedef struct region {
  const char *name;
  enum object object;
  uint64_t offset, stride;
  uint32_t count, length;
  int request; /* writing it can change a request in flight */
  int server;  /* in the server object: only the server's user can */
} region;

#define MAX_REGIONS 24

/* The regions of a service of `lanes` lanes and `capacity`. */
static size_t regions_of(uint32_t lanes, uint32_t capacity, region *out) {
  size_t n = 0;
  uint64_t calls = 0, server = 0;
#ifndef _WIN32
  calls = posix_calls_prefix_size(lanes);
  server = POSIX_SERVER_PREFIX;
  out[n++] = (region){"doorbell", CALLS, 0, 0, 1, 4, 0, 0};
  out[n++] = (region){"queue", CALLS, 64, 0, 1, 8, 0, 0};
  out[n++] = (region){"ring", CALLS, 128, 0, 1, 8 * POSIX_RING, 0, 0};
  out[n++] = (region){"lane-events",
                      CALLS,
                      offsetof(posix_calls_prefix, lane) + 4,
                      sizeof(posix_lane_words),
                      lanes,
                      4,
                      0,
                      0};
  out[n++] = (region){"lane-locks",
                      CALLS,
                      offsetof(posix_calls_prefix, lane),
                      sizeof(posix_lane_words),
                      lanes,
                      4,
                      1,
                      0};
  out[n++] = (region){"server-prefix", SERVER, 0, 0, 1, 56, 0, 1};
#else
  /* No backend words in the calls section: the locks and events are kernel
   * objects no writer of the mapping reaches. */
  server = WIN_PREFIX;
  out[n++] = (region){"server-prefix", SERVER, 0, 0, 1, 40, 0, 1};
#endif
  out[n++] = (region){"calls-header", CALLS, calls, 0, 1, 24, 0, 0};
  out[n++] = (region){"crowd", CALLS, calls + SHMRPC__OFF_CROWD, 0, 1, 4, 0, 0};
  out[n++] = (region){"request-state", CALLS, calls + SHMRPC__OFF_REQUESTS,
                      64,                  lanes, 8, 0, 0};
  out[n++] = (region){"request-timing", CALLS,
                      calls + SHMRPC__OFF_REQUESTS + 16, 64, lanes, 16, 0, 0};
  out[n++] = (region){"request-call", CALLS, calls + SHMRPC__OFF_REQUESTS + 8,
                      64,                 lanes, 8, 1, 0};
  out[n++] = (region){"request-bytes", CALLS,
                      calls + SHMRPC__OFF_REQUESTS + 32, 64, lanes, 32, 1, 0};
  out[n++] = (region){"header", SERVER, server, 0, 1, 64, 0, 1};
  out[n++] = (region){"sleepers", SERVER, server + 64, 0, 1, 4, 0, 1};
  out[n++] = (region){"stats", SERVER, server + 128, 0, 1, 64, 0, 1};
  out[n++] = (region){"lane-info", SERVER,
                      server + shmrpc__off_lane_info(lanes), 0, 1,
                      64 * lanes, 0, 1};
  out[n++] = (region){"answers", SERVER, server + SHMRPC__OFF_ANSWERS, 0, 1,
                      64 * lanes, 1, 1};
  out[n++] = (region){"messages", SERVER,
                      server + shmrpc__off_messages(lanes), 0, 1,
                      SHMRPC__MESSAGE_AREA * lanes, 1, 1};
  (void)capacity;
  return n;
}

static uint32_t rng_next(uint32_t *state) {
  *state ^= *state << 13;
  *state ^= *state >> 17;
  *state ^= *state << 5;
  return *state;
}

/* ---- The writer -------------------------------------------------------- */

typedef struct mapped {
  unsigned char *base[2]; /* calls, server */
  size_t size[2];
} mapped;

#ifdef _WIN32
/* Maps the service's sections as a process of this user would. */
static int map_objects(const char *name, mapped *out) {
  static const char *const suffix[2] = {".calls", ".map"};
  int i;
  memset(out, 0, sizeof(*out));
  for (i = 0; i < 2; i++) {
    char narrow[160];
    wchar_t wide[160];
    HANDLE section;
    MEMORY_BASIC_INFORMATION info;
    int k;
    snprintf(narrow, sizeof(narrow), "Local\\shmrpc.%s%s", name, suffix[i]);
    for (k = 0; narrow[k] != '\0'; k++)
      wide[k] = (wchar_t)(unsigned char)narrow[k];
    wide[k] = L'\0';
    section = OpenFileMappingW(FILE_MAP_READ | FILE_MAP_WRITE, FALSE, wide);
    if (section == NULL)
      continue;
    out->base[i] = MapViewOfFile(section, FILE_MAP_READ | FILE_MAP_WRITE, 0,
                                 0, 0);
    CloseHandle(section);
    if (out->base[i] != NULL &&
        VirtualQuery(out->base[i], &info, sizeof(info)) == sizeof(info))
      out->size[i] = info.RegionSize;
  }
  return out->base[CALLS] != NULL && out->base[SERVER] != NULL ? 0 : -1;
}
#else
/* Maps the service's objects as a process with access would: the calls
 * object always, the server object if this user may write it. */
static int map_objects(const char *name, mapped *out) {
  static const char *const suffix[2] = {"@calls", ""};
  int i;
  memset(out, 0, sizeof(*out));
  for (i = 0; i < 2; i++) {
    char path[256];
    struct stat st;
    int fd;
    snprintf(path, sizeof(path), "/dev/shm/shmrpc.%s%s", name, suffix[i]);
    fd = open(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
      continue;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
      void *map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE,
                       MAP_SHARED, fd, 0);
      if (map != MAP_FAILED) {
        out->base[i] = map;
        out->size[i] = (size_t)st.st_size;
      }
    }
    close(fd);
  }
  return out->base[CALLS] != NULL ? 0 : -1;
}
#endif

/* An adversarial 32-bit value: an edge, one near the capacity, a value
 * seen elsewhere in the same region (a replayed lock word or sequence
 * number), or noise. */
static uint32_t nasty_value(uint32_t *rng, uint32_t capacity,
                            const volatile uint32_t *seen) {
  static const uint32_t edges[] = {0, 1, 2, 3, 4, 0x7fffffffu, 0x80000000u,
                                   0xffffffffu, 0xfffffff0u, 0x00010000u};
  uint32_t pick = rng_next(rng);
  switch (pick % 5) {
  case 0:
    return edges[(pick >> 4) % (sizeof(edges) / sizeof(edges[0]))];
  case 1:
    return capacity + (pick >> 28) - 4;
  case 2:
    return *seen + ((pick >> 8) & 3) - 1;
  default:
    return rng_next(rng);
  }
}

/* 1 if `name` is one of the comma-separated names of `list`. */
static int listed(const char *list, const char *name) {
  size_t len = strlen(name);
  while (*list != '\0') {
    size_t item = strcspn(list, ",");
    if (item == len && strncmp(list, name, len) == 0)
      return 1;
    list += item;
    if (*list == ',')
      list++;
  }
  return 0;
}

/* hostile NAME MS UID REGION[,REGION...]: as user UID (0: stay), writes
 * adversarial values into the named regions ("all" for every one this user
 * can write) for MS ms. Prints "attacking N" (regions it can write), then
 * "done WRITES". */
static int role_hostile(int argc, char **argv) {
  region regions[MAX_REGIONS], chosen[MAX_REGIONS];
  size_t count, picked = 0, i;
  uint32_t rng = 0x9e3779b9u ^ test_proc_self_pid(), lanes, capacity;
  unsigned long writes = 0;
  mapped map;
  int64_t end;
  if (argc < 6)
    return 2;
#ifndef _WIN32
  if (strtoul(argv[4], NULL, 10) != 0 &&
      (setgid(NOBODY_ID) != 0 || setuid((uid_t)strtoul(argv[4], NULL, 10))))
    return 1;
  if (map_objects(argv[2], &map) != 0) {
    printf("cannot map\n");
    return 1;
  }
  {
    /* The server object is readable even when not writable. */
    char path[256];
    const shmrpc__header *header;
    int fd;
    void *view;
    snprintf(path, sizeof(path), "/dev/shm/shmrpc.%s", argv[2]);
    fd = open(path, O_RDONLY | O_NOFOLLOW);
    view = fd < 0 ? MAP_FAILED
                  : mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    if (view == MAP_FAILED)
      return 1;
    header = (const shmrpc__header *)((const unsigned char *)view +
                                      POSIX_SERVER_PREFIX);
    lanes = header->lanes;
    capacity = header->capacity;
    close(fd);
  }
#else
  if (map_objects(argv[2], &map) != 0) {
    printf("cannot map\n");
    return 1;
  }
  {
    const shmrpc__header *header =
        (const shmrpc__header *)(map.base[SERVER] + WIN_PREFIX);
    lanes = header->lanes;
    capacity = header->capacity;
  }
#endif
  count = regions_of(lanes, capacity, regions);
  for (i = 0; i < count; i++) {
    if (map.base[regions[i].object] == NULL)
      continue; /* this user cannot write it */
    if (strcmp(argv[5], "all") == 0 || listed(argv[5], regions[i].name))
      chosen[picked++] = regions[i];
  }
  printf("attacking %zu\n", picked);
  fflush(stdout);
  if (picked == 0)
    return 0;
  end = test_now_ms() + strtol(argv[3], NULL, 10);
  while (test_now_ms() < end) {
    int burst;
    for (burst = 0; burst < 256; burst++) {
      const region *r = &chosen[rng_next(&rng) % picked];
      uint32_t copy = r->count > 1 ? rng_next(&rng) % r->count : 0;
      uint32_t word = rng_next(&rng) % (r->length / 4);
      uint64_t at = r->offset + (uint64_t)copy * r->stride + word * 4u;
      volatile uint32_t *target;
      if (at + 4 > map.size[r->object])
        continue;
      target = (volatile uint32_t *)(void *)(map.base[r->object] + at);
      *target = nasty_value(&rng, capacity, target);
      writes++;
    }
  }
  printf("done %lu\n", writes);
  fflush(stdout);
  return 0;
}

/* ---- Honest callers ---------------------------------------------------- */

typedef struct honest {
  shmrpc_client *shared; /* NULL: open a handle of its own */
  const char *name;
  int32_t timeout_ms;
  volatile int stop;
  unsigned long ok, clean_errors, wrong, unclean, overran;
  int last_error;
  uint32_t seed;
} honest;

/* One checked addition; returns 0 (right), 1 (clean error), 2 (wrong),
 * 3 (unclean). */
static int honest_call(honest *h, shmrpc_client *client) {
  unsigned char req[16], resp[64];
  uint64_t a = rng_next(&h->seed), b = rng_next(&h->seed);
  size_t len = 0;
  int64_t started = test_now_ms(), took;
  int rc;
  test_put_u64(req, a);
  test_put_u64(req + 8, b);
  rc = shmrpc_call(client, T_ADD, req, 16, resp, sizeof(resp), &len,
                   h->timeout_ms);
  took = test_now_ms() - started;
  /* A generous margin over the timeout: this detects a hang, it does not
   * time the library. */
  if (took > h->timeout_ms + 2000)
    h->overran++;
  switch (rc) {
  case 0:
    return len == 8 && test_get_u64(resp) == a + b ? 0 : 2;
  case SHMRPC_ETIMEDOUT:
  case SHMRPC_EPROTO:
  case SHMRPC_EAPP:
  case SHMRPC_ENOMETHOD:
  case SHMRPC_ETOOBIG:
  case SHMRPC_ESHUTDOWN:
  case SHMRPC_ESERVERDIED:
  case SHMRPC_ENOSERVER:
  case SHMRPC_ECANCELED:
  case SHMRPC_EAGAIN:
    h->last_error = rc;
    return 1;
  default:
    h->last_error = rc;
    return 3;
  }
}

static void honest_thread(void *arg) {
  honest *h = arg;
  shmrpc_client *client = h->shared;
  while (!h->stop) {
    if (client == NULL &&
        shmrpc_client_open(&client, h->name, NULL, h->timeout_ms) != 0) {
      client = NULL;
      h->clean_errors++;
      continue;
    }
    switch (honest_call(h, client)) {
    case 0:
      h->ok++;
      break;
    case 1:
      h->clean_errors++;
      break;
    case 2:
      h->wrong++;
      break;
    default:
      h->unclean++;
    }
  }
  if (h->shared == NULL)
    shmrpc_client_close(client);
}

#define HONEST 4

/* Four callers: two with handles of their own, two sharing one. */
typedef struct crowd {
  honest caller[HONEST];
  test_thread *thread[HONEST];
  shmrpc_client *shared;
} crowd;

static void crowd_start(crowd *c, const char *name) {
  int i;
  memset(c, 0, sizeof(*c));
  assert_int_equal(shmrpc_client_open(&c->shared, name, NULL, T_READY_MS), 0);
  for (i = 0; i < HONEST; i++) {
    c->caller[i].name = name;
    c->caller[i].timeout_ms = i % 2 == 0 ? 50 : 300;
    c->caller[i].shared = i >= 2 ? c->shared : NULL;
    c->caller[i].seed = 0x1234567u + (uint32_t)i * 7919u;
    assert_int_equal(
        test_thread_start(&c->thread[i], honest_thread, &c->caller[i]), 0);
  }
}

/* Stops the callers and checks what they saw. */
static void crowd_stop(crowd *c, const char *what, int answers_checked) {
  int i;
  for (i = 0; i < HONEST; i++)
    c->caller[i].stop = 1;
  for (i = 0; i < HONEST; i++) {
    honest *h = &c->caller[i];
    test_thread_join(c->thread[i]);
    if (h->unclean != 0 || h->overran != 0 ||
        (answers_checked && h->wrong != 0))
      print_error("%s: caller %d: %lu right, %lu clean errors, %lu wrong, "
                  "%lu unclean (last %s), %lu overran\n",
                  what, i, h->ok, h->clean_errors, h->wrong, h->unclean,
                  shmrpc_err_name(h->last_error), h->overran);
    assert_int_equal(h->unclean, 0);
    assert_int_equal(h->overran, 0);
    if (answers_checked)
      assert_int_equal(h->wrong, 0);
  }
}

/* After the writer stopped: how long until a new client, and every handle
 * of the crowd, get right answers again. Returns the first, in ms. */
static int64_t recovered_ms(const char *name, crowd *c, int64_t since) {
  int64_t first = -1;
  shmrpc_client *fresh = NULL;
  honest probe;
  int i;
  memset(&probe, 0, sizeof(probe));
  probe.timeout_ms = 100;
  probe.seed = 99;
  while (first < 0 && test_now_ms() - since < T_EXIT_MS) {
    if (fresh == NULL && shmrpc_client_open(&fresh, name, NULL, 100) != 0) {
      fresh = NULL;
      continue;
    }
    if (honest_call(&probe, fresh) == 0)
      first = test_now_ms() - since;
  }
  assert_true(first >= 0);
  /* Every handle the writer disturbed works again, within a few tries. */
  for (i = 0; i < HONEST; i++) {
    shmrpc_client *own = NULL;
    shmrpc_client *client = c->shared;
    int tries, right = 0;
    if (i < 2 &&
        shmrpc_client_open(&own, name, NULL, T_READY_MS) == 0)
      client = own;
    for (tries = 0; tries < 50 && !right; tries++)
      right = honest_call(&probe, client) == 0;
    assert_true(right);
    shmrpc_client_close(own);
  }
  shmrpc_client_close(fresh);
  return first;
}

static test_proc *hostile_server(const char *name) {
  /* Several lanes and workers: the writer meets every concept. Everyone
   * may call, so that the writer can be another user. */
  const char *extra[] = {"safe", "lanes=4", "workers=2", "access=everyone",
                         NULL};
  return test_spawn_server_args(name, "4096", extra);
}

/* Runs the writer on `regions` as `uid` for `ms` while the crowd calls;
 * returns the recovery time. */
static int64_t attack(const char *name, test_proc *server,
                      const char *regions, int as_other_user, int ms,
                      int answers_checked) {
  char line[128], uid[16], duration[16];
  test_proc *writer = NULL;
  crowd c;
  unsigned long writes = 0;
  size_t attacking = 0;
  int64_t stopped, recovery;
  int code = -1;
#ifndef _WIN32
  snprintf(uid, sizeof(uid), "%d",
           as_other_user && geteuid() == 0 ? NOBODY_ID : 0);
#else
  snprintf(uid, sizeof(uid), "0");
  (void)as_other_user;
#endif
  snprintf(duration, sizeof(duration), "%d", ms);
  crowd_start(&c, name);
  {
    const char *args[] = {"hostile", name, duration, uid, regions, NULL};
    assert_int_equal(test_proc_spawn(&writer, args), 0);
  }
  assert_true(test_proc_read_line(writer, line, sizeof(line), T_READY_MS) > 0);
  assert_int_equal(sscanf(line, "attacking %zu", &attacking), 1);
  assert_true(attacking > 0);
  assert_true(test_proc_read_line(writer, line, sizeof(line), T_EXIT_MS) > 0);
  assert_int_equal(sscanf(line, "done %lu", &writes), 1);
  test_expect_exit(writer, 0);
  test_proc_free(writer);
  stopped = test_now_ms();
  crowd_stop(&c, regions, answers_checked);
  assert_int_equal(test_proc_wait(server, 0, &code), -1); /* it lives */
  recovery = recovered_ms(name, &c, stopped);
  shmrpc_client_close(c.shared);
  print_message("%-15s %9lu writes, %5lu right answers, recovered %3lld ms "
                "after\n",
                regions, writes,
                c.caller[0].ok + c.caller[1].ok + c.caller[2].ok +
                    c.caller[3].ok,
                (long long)recovery);
  return recovery;
}

static void finish(const char *name, test_proc *server) {
  /* The server has no stop method (the writer could call it): kill it and
   * remove its names. */
  test_proc_kill(server);
  test_proc_free(server);
  test_wait_service_dead(name);
  assert_int_equal(shmrpc_service_clean(name, 0), 0);
  assert_int_equal(test_service_objects_exist(name), 0);
}

/* One region at a time: the calls object's as another user (when the test
 * runs as root), the server object's as the server's own user. */
static void test_each_region(void **state) {
  const char *name = test_service_name("each");
  test_proc *server = hostile_server(name);
  region regions[MAX_REGIONS];
  size_t count = regions_of(4, 4096, regions), i;
  (void)state;
  for (i = 0; i < count; i++)
    attack(name, server, regions[i].name, !regions[i].server, ATTACK_MS,
           !regions[i].request && !regions[i].server);
  finish(name, server);
}

/* Every field that carries no request, all at once, for longer: still no
 * wrong answer. */
static void test_all_control_fields(void **state) {
  const char *name = test_service_name("control");
  test_proc *server = hostile_server(name);
  region regions[MAX_REGIONS];
  size_t count = regions_of(4, 4096, regions), i;
  char list[512] = "";
  (void)state;
  for (i = 0; i < count; i++) {
    if (regions[i].request || regions[i].server)
      continue;
    strncat(list, regions[i].name, sizeof(list) - strlen(list) - 2);
    strcat(list, ",");
  }
  attack(name, server, list, 1, ATTACK_ALL_MS, 1);
  finish(name, server);
}

/* Everything a writer of the server's own user can reach, at once. */
static void test_everything(void **state) {
  const char *name = test_service_name("all");
  test_proc *server = hostile_server(name);
  (void)state;
  attack(name, server, "all", 0, ATTACK_ALL_MS, 0);
  finish(name, server);
}

/* ---- The victim -------------------------------------------------------- */

#define CANARY_BYTES 4096
#define CANARY 0x5a

static int canary_intact(const unsigned char *block) {
  size_t i;
  for (i = 0; i < CANARY_BYTES; i++)
    if (block[i] != CANARY)
      return 0;
  return 1;
}

/* victim NAME MS: calls for MS ms with guard blocks around its handle and
 * on its stack; prints "intact RIGHT ERRORS" or "corrupted". */
static int role_victim(int argc, char **argv) {
  unsigned char stack_guard[CANARY_BYTES];
  unsigned char *before = malloc(CANARY_BYTES), *after;
  shmrpc_client *client = NULL;
  honest h;
  int64_t end;
  if (argc < 4 || before == NULL)
    return 2;
  memset(before, CANARY, CANARY_BYTES);
  memset(stack_guard, CANARY, sizeof(stack_guard));
  if (shmrpc_client_open(&client, argv[2], NULL, T_READY_MS) != 0)
    return 1;
  after = malloc(CANARY_BYTES);
  if (after == NULL)
    return 2;
  memset(after, CANARY, CANARY_BYTES);
  memset(&h, 0, sizeof(h));
  h.timeout_ms = 50;
  h.seed = 4242;
  printf("calling\n");
  fflush(stdout);
  end = test_now_ms() + strtol(argv[3], NULL, 10);
  while (test_now_ms() < end) {
    int result = honest_call(&h, client);
    if (result == 0)
      h.ok++;
    else
      h.clean_errors++;
  }
  shmrpc_client_close(client);
  if (!canary_intact(before) || !canary_intact(after) ||
      !canary_intact(stack_guard)) {
    printf("corrupted\n");
    return 1;
  }
  printf("intact %lu %lu\n", h.ok, h.clean_errors);
  fflush(stdout);
  free(before);
  free(after);
  return 0;
}

/* A header that counts fewer lanes than the backend's objects were made
 * for (written by the server's user) is no service to connect to yet
 * (SHMRPC_ENOSERVER): the backend would hand out a lane the connection has
 * no words for. The server's repair pass may put the count back between
 * our write and the open, so the write is made again until one open meets
 * it. */
static void test_header_lanes_disagree(void **state) {
  const char *extra[] = {"lanes=4", NULL};
  const char *name = test_service_name("lanes");
  test_proc *server = test_spawn_server_args(name, "4096", extra);
  volatile uint32_t *lanes;
  shmrpc_client *client = NULL;
  int64_t end = test_now_ms() + T_EXIT_MS;
  mapped map;
  int refused = 0;
  (void)state;
  assert_int_equal(map_objects(name, &map), 0);
  assert_non_null(map.base[SERVER]);
#ifndef _WIN32
  lanes = &((shmrpc__header *)(map.base[SERVER] + POSIX_SERVER_PREFIX))->lanes;
#else
  lanes = &((shmrpc__header *)(map.base[SERVER] + WIN_PREFIX))->lanes;
#endif
  assert_int_equal(*lanes, 4);
  while (!refused) {
    int rc;
    *lanes = 2;
    rc = shmrpc_client_open(&client, name, NULL, 0);
    if (rc == SHMRPC_ENOSERVER) {
      refused = 1;
    } else {
      assert_int_equal(rc, 0); /* the repair pass was first */
      shmrpc_client_close(client);
      client = NULL;
      assert_true(test_now_ms() < end);
    }
  }
  *lanes = 4;
  assert_int_equal(shmrpc_client_open(&client, name, NULL, T_READY_MS), 0);
  assert_int_equal(test_call_add(client, 2, 3), 5);
  test_stop_server(client, server);
  shmrpc_client_close(client);
  test_proc_free(server);
}

/* A writer of the calls area posts a slow call on an idle lane and, once
 * the server has taken it, puts call_seq back to the number last answered.
 * The lane's request and answer lines then look as a finished call leaves
 * them, but the server is busy with the writer's call: the next honest
 * caller must see that (taken_seq), and must not post under the number the
 * server runs, whose answer is the writer's. */
static void test_forged_idle_lane(void **state) {
  const char *extra[] = {"lanes=1", NULL};
  const char *name = test_service_name("forged");
  test_proc *server = test_spawn_server_args(name, "4096", extra);
  shmrpc__request_line *request;
  const shmrpc__answer_line *answer;
  const shmrpc__lane_info *info;
  shmrpc_client *client = NULL;
  unsigned char *calls, *server_area;
  mapped map;
  uint32_t last;
  (void)state;
  assert_int_equal(shmrpc_client_open(&client, name, NULL, T_READY_MS), 0);
  assert_int_equal(test_call_add(client, 1, 2), 3);
  assert_int_equal(map_objects(name, &map), 0);
  assert_non_null(map.base[SERVER]);
  /* Where the core's areas start, past the backend's prefixes. */
#ifndef _WIN32
  calls = map.base[CALLS] + posix_calls_prefix_size(1);
  server_area = map.base[SERVER] + POSIX_SERVER_PREFIX;
#else
  calls = map.base[CALLS];
  server_area = map.base[SERVER] + WIN_PREFIX;
#endif
  request = (shmrpc__request_line *)(void *)(calls + SHMRPC__OFF_REQUESTS);
  answer = (const shmrpc__answer_line *)(const void *)(server_area +
                                                       SHMRPC__OFF_ANSWERS);
  info = (const shmrpc__lane_info *)(const void *)(server_area +
                                                   shmrpc__off_lane_info(1));
  last = __atomic_load_n(&request->call_seq, __ATOMIC_SEQ_CST);
  assert_int_equal(__atomic_load_n(&answer->response_seq, __ATOMIC_SEQ_CST),
                   last);
  /* The writer's call: T_SLOW for 1 s, posted as a caller would. */
  request->method = T_SLOW;
  request->request_len = 4;
  request->timeout_ms = -1;
  request->deadline_ns = 0;
  test_put_u32(request->request_inline, 1000);
  __atomic_store_n(&request->call_seq, last + 1u, __ATOMIC_SEQ_CST);
  __atomic_store_n(&request->slot_state, SHMRPC__SLOT_POSTED,
                   __ATOMIC_SEQ_CST);
  /* Nobody rang: the server finds it after its idle slice at the latest.
   * Its handler says when it starts: only then has the server taken the
   * call for good (a call_seq put back before the server's second look
   * would be a withdrawal, answered unrun). */
  test_read_expected(server, "slow");
  assert_int_equal(__atomic_load_n(&info->taken_seq, __ATOMIC_SEQ_CST),
                   last + 1u);
  __atomic_store_n(&request->call_seq, last, __ATOMIC_SEQ_CST);
  /* The forgery is in place while the handler runs (it has most of its
   * second left): the honest call below meets it. */
  assert_int_equal(__atomic_load_n(&answer->response_seq, __ATOMIC_SEQ_CST),
                   last);
  assert_int_equal(test_call_add(client, 20, 22), 42);
  assert_int_equal(test_call_add(client, 5, 6), 11);
  test_stop_server(client, server);
  shmrpc_client_close(client);
  test_proc_free(server);
}

/* A victim holding lanes while the writer rewrites the lanes' locks and the
 * whole calls area: its private memory is untouched and it does not crash.
 * No word of the mapping is ever followed as a pointer or trusted as a
 * structure of another library. */
static void test_victim_memory(void **state) {
  const char *name = test_service_name("victim");
  test_proc *server = hostile_server(name);
  test_proc *victim = NULL, *writer = NULL;
  char line[128], uid[16], duration[16];
  unsigned long right = 0, errors = 0;
  (void)state;
  snprintf(duration, sizeof(duration), "%d", ATTACK_ALL_MS);
#ifndef _WIN32
  snprintf(uid, sizeof(uid), "%d", geteuid() == 0 ? NOBODY_ID : 0);
#else
  snprintf(uid, sizeof(uid), "0");
#endif
  {
    const char *args[] = {"victim", name, duration, NULL};
    assert_int_equal(test_proc_spawn(&victim, args), 0);
  }
  test_read_expected(victim, "calling");
  {
    const char *args[] = {"hostile", name, duration, uid,
                          "lane-locks,request-state,request-timing,queue,ring,"
                          "lane-events,doorbell,calls-header",
                          NULL};
    assert_int_equal(test_proc_spawn(&writer, args), 0);
  }
  assert_true(test_proc_read_line(victim, line, sizeof(line), T_EXIT_MS) > 0);
  assert_int_equal(sscanf(line, "intact %lu %lu", &right, &errors), 2);
  print_message("victim: %lu right answers, %lu clean errors, memory intact\n",
                right, errors);
  test_expect_exit(victim, 0);
  test_proc_free(victim);
  assert_true(test_proc_read_line(writer, line, sizeof(line), T_EXIT_MS) > 0);
  assert_true(test_proc_read_line(writer, line, sizeof(line), T_EXIT_MS) > 0);
  test_expect_exit(writer, 0);
  test_proc_free(writer);
  finish(name, server);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_each_region),
      cmocka_unit_test(test_all_control_fields),
      cmocka_unit_test(test_everything),
      cmocka_unit_test(test_header_lanes_disagree),
      cmocka_unit_test(test_forged_idle_lane),
      cmocka_unit_test(test_victim_memory),
  };
  int helper;
  test_proc_init(argv[0]);
  if (argc > 1 && strcmp(argv[1], "hostile") == 0) {
    test_proc_helper_started();
    return role_hostile(argc, argv);
  }
  if (argc > 1 && strcmp(argv[1], "victim") == 0) {
    test_proc_helper_started();
    return role_victim(argc, argv);
  }
  helper = test_helper_main(argc, argv);
  if (helper >= 0)
    return helper;
  return cmocka_run_group_tests(tests, NULL, NULL);
}
