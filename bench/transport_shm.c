/*
 * Raw shared-memory ping-pong baselines: the least a call through one shared
 * slot can cost, with none of shmrpc's safety (no mutex, no liveness, no
 * validation beyond a length check, one client only).
 *
 * The slot lives in a MAP_SHARED mapping made before the fork. The client
 * copies its request into the slot and publishes a new request sequence
 * number; the server copies the request out to a private buffer, writes the
 * response into the slot from its private template and publishes the same
 * number as the response sequence; the client copies the response out.
 * These are the copies a shmrpc call makes.
 *
 * Two ways to wait for the other side's sequence number:
 * - shm-spin: spin on the word with a pause instruction, never sleep.
 * - shm-futex: never spin; FUTEX_WAIT on the word (shared, so without
 *   FUTEX_PRIVATE_FLAG). The side that publishes calls FUTEX_WAKE only when
 *   the other side has announced itself as a sleeper, which a Dekker-style
 *   handshake of sequentially consistent accesses makes safe.
 */
#include <errno.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"
#include "payload.h"

#define SHM_LINE 64u

typedef struct shm_control {
  /* Written by the client. */
  _Alignas(SHM_LINE) uint32_t request_seq;
  uint32_t request_len;
  uint32_t client_sleeping; /* the client waits in FUTEX_WAIT */
  /* Written by the server. */
  _Alignas(SHM_LINE) uint32_t response_seq;
  uint32_t response_len;
  uint32_t server_sleeping; /* the server waits in FUTEX_WAIT */
  /* Written by the parent to end the server. */
  _Alignas(SHM_LINE) uint32_t stop;
} shm_control;

typedef struct shm_state {
  int use_futex;
  size_t max_size;
  size_t map_size;
  shm_control *control;
  unsigned char *request;  /* max_size bytes in the mapping */
  unsigned char *response; /* max_size bytes in the mapping */
  uint32_t last_seq;       /* client: the last request sequence it posted */
} shm_state;

static size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static long futex(uint32_t *word, int op, uint32_t value) {
  return syscall(SYS_futex, word, op, value, NULL, NULL, 0);
}

static int shm_prepare(int use_futex, void **out, size_t max_size) {
  shm_state *state = calloc(1, sizeof *state);
  if (state == NULL) {
    bench_error("out of memory");
    return -1;
  }
  size_t area = round_up(max_size, 4096);
  state->use_futex = use_futex;
  state->max_size = max_size;
  state->map_size = 4096 + 2 * area;
  void *mapping = mmap(NULL, state->map_size, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mapping == MAP_FAILED) {
    bench_error("mmap: %s", strerror(errno));
    free(state);
    return -1;
  }
  state->control = mapping;
  state->request = (unsigned char *)mapping + 4096;
  state->response = state->request + area;
  *out = state;
  return 0;
}

static int spin_prepare(void **out, size_t max_size) {
  return shm_prepare(0, out, max_size);
}

static int futex_prepare(void **out, size_t max_size) {
  return shm_prepare(1, out, max_size);
}

/* Waits until *word differs from old (or, when stop is given, until *stop is
 * set) and returns the new value. */
static uint32_t wait_change(const shm_state *state, uint32_t *word,
                            uint32_t old, uint32_t *sleeping,
                            const uint32_t *stop) {
  uint32_t now;
  if (!state->use_futex) {
    while ((now = __atomic_load_n(word, __ATOMIC_ACQUIRE)) == old) {
      if (stop != NULL && __atomic_load_n(stop, __ATOMIC_RELAXED)) {
        return old;
      }
      cpu_relax();
    }
    return now;
  }
  while ((now = __atomic_load_n(word, __ATOMIC_ACQUIRE)) == old) {
    if (stop != NULL && __atomic_load_n(stop, __ATOMIC_RELAXED)) {
      return old;
    }
    /* Announce the sleep, then look once more: the publisher stores its
     * word before it looks for sleepers, so one of us sees the other. */
    __atomic_store_n(sleeping, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(word, __ATOMIC_SEQ_CST) == old) {
      futex(word, FUTEX_WAIT, old); /* EAGAIN, EINTR: look again */
    }
    __atomic_store_n(sleeping, 0, __ATOMIC_RELAXED);
  }
  return now;
}

/* Publishes value in *word and wakes the other side if it sleeps. */
static void publish(const shm_state *state, uint32_t *word, uint32_t value,
                    uint32_t *sleeping) {
  if (!state->use_futex) {
    __atomic_store_n(word, value, __ATOMIC_RELEASE);
    return;
  }
  __atomic_store_n(word, value, __ATOMIC_SEQ_CST);
  if (__atomic_load_n(sleeping, __ATOMIC_SEQ_CST)) {
    futex(word, FUTEX_WAKE, 1);
  }
}

static int shm_serve(void *opaque, int ready_fd) {
  shm_state *state = opaque;
  shm_control *control = state->control;
  unsigned char *request = malloc(state->max_size);
  unsigned char *template_body = malloc(state->max_size);
  if (request == NULL || template_body == NULL) {
    bench_error("out of memory");
    return -1;
  }
  memset(request, 0, state->max_size);
  bench_fill_pattern(template_body, state->max_size);
  uint32_t seq = __atomic_load_n(&control->request_seq, __ATOMIC_ACQUIRE);
  bench_signal_ready(ready_fd);
  for (;;) {
    seq = wait_change(state, &control->request_seq, seq,
                      &control->server_sleeping, &control->stop);
    if (__atomic_load_n(&control->stop, __ATOMIC_ACQUIRE)) {
      break;
    }
    uint32_t len = __atomic_load_n(&control->request_len, __ATOMIC_RELAXED);
    if (len < BENCH_MIN_SIZE || len > state->max_size) {
      bench_error("shm: bad request length %u", len);
      return -1;
    }
    memcpy(request, state->request, len);
    bench_answer(request, len, state->response, template_body);
    __atomic_store_n(&control->response_len, len, __ATOMIC_RELAXED);
    publish(state, &control->response_seq, seq, &control->client_sleeping);
  }
  free(request);
  free(template_body);
  return 0;
}

static int shm_connect(void *opaque, void **conn) {
  shm_state *state = opaque;
  state->last_seq =
      __atomic_load_n(&state->control->request_seq, __ATOMIC_ACQUIRE);
  *conn = state;
  return 0;
}

static int shm_call(void *opaque, const void *request, size_t request_len,
                    void *response, size_t response_cap,
                    size_t *response_len) {
  shm_state *state = opaque;
  shm_control *control = state->control;
  if (request_len > state->max_size) {
    bench_error("shm: request too big");
    return -1;
  }
  memcpy(state->request, request, request_len);
  __atomic_store_n(&control->request_len, (uint32_t)request_len,
                   __ATOMIC_RELAXED);
  uint32_t seq = state->last_seq + 1;
  state->last_seq = seq;
  publish(state, &control->request_seq, seq, &control->server_sleeping);
  wait_change(state, &control->response_seq, seq - 1,
              &control->client_sleeping, NULL);
  uint32_t len = __atomic_load_n(&control->response_len, __ATOMIC_RELAXED);
  if (len > response_cap) {
    bench_error("shm: bad response length %u", len);
    return -1;
  }
  memcpy(response, state->response, len);
  *response_len = len;
  return 0;
}

static void shm_disconnect(void *opaque) { (void)opaque; }

static void shm_stop(void *opaque, pid_t server_pid) {
  shm_state *state = opaque;
  (void)server_pid;
  __atomic_store_n(&state->control->stop, 1, __ATOMIC_SEQ_CST);
  /* Changing the word makes a FUTEX_WAIT that raced with the store of stop
   * return at once; the server checks stop before it reads a request. */
  __atomic_add_fetch(&state->control->request_seq, 1, __ATOMIC_SEQ_CST);
  futex(&state->control->request_seq, FUTEX_WAKE, 1);
}

static void shm_release(void *opaque) {
  shm_state *state = opaque;
  munmap(state->control, state->map_size);
  free(state);
}

const bench_transport bench_transport_shm_spin = {
    .name = "shm-spin",
    .description = "raw shared-memory slot, both sides spin on an atomic word",
    .max_clients = 1,
    .prepare = spin_prepare,
    .serve = shm_serve,
    .connect = shm_connect,
    .call = shm_call,
    .disconnect = shm_disconnect,
    .stop = shm_stop,
    .release = shm_release,
};

const bench_transport bench_transport_shm_futex = {
    .name = "shm-futex",
    .description = "raw shared-memory slot, both sides sleep in FUTEX_WAIT "
                   "(shared futex, no spinning)",
    .max_clients = 1,
    .prepare = futex_prepare,
    .serve = shm_serve,
    .connect = shm_connect,
    .call = shm_call,
    .disconnect = shm_disconnect,
    .stop = shm_stop,
    .release = shm_release,
};
