/*
 * Events and waitables of the POSIX backend.
 *
 * Events are sequence words in the calls object, waited on with futex(2):
 * a set adds one and wakes a waiter; a waiter sleeps only while the word
 * still holds the value it read before its last look at the state
 * (shmrpc__os_event_prepare), so a set that comes first is never lost.
 * Never a process-shared condition variable (glibc bug 21422: they hang
 * after a peer is killed), never FUTEX_PRIVATE_FLAG. A writer of the
 * mapping can only cause spurious wake-ups or make a sleeper sleep to the
 * end of its slice.
 *
 * Futex words cannot be polled, so event loops use FIFOs (see posix.h): the
 * server's waitable is the read side of its request FIFO, which callers
 * write a byte into while the server waits in its loop; a client's is a
 * loop (loop.c) over its lanes' FIFOs.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "posix.h"

#define REQUEST_LANE UINT32_MAX

SHMRPC__HOT long posix_futex(volatile uint32_t *word, int op, uint32_t value,
                             int32_t timeout_ms) {
  struct timespec relative;
  POSIX_COUNT_SYSCALL();
  if (timeout_ms >= 0) {
    relative.tv_sec = timeout_ms / 1000;
    relative.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
  }
  /* Never FUTEX_PRIVATE_FLAG: the word is shared between processes. */
  return syscall(SYS_futex, word, op, value,
                 timeout_ms >= 0 ? &relative : NULL, NULL, 0);
}

static volatile uint32_t *event_word(shmrpc__os_service *service, int event) {
  if (event == SHMRPC__EVENT_REQUEST)
    return &service->calls_prefix->doorbell;
  return &service->calls_prefix->lane[event - 1].event;
}

SHMRPC__HOT uint32_t shmrpc__os_event_prepare(shmrpc__os_service *service,
                                              int event) {
  return shmrpc__load32_sc(event_word(service, event));
}

SHMRPC__HOT void shmrpc__os_event_set(shmrpc__os_service *service, int event) {
  volatile uint32_t *word = event_word(service, event);
  shmrpc__fetch_add32(word, 1u);
  posix_futex(word, FUTEX_WAKE, 1, -1);
}

void shmrpc__os_event_broadcast(shmrpc__os_service *service, int event) {
  volatile uint32_t *word = event_word(service, event);
  shmrpc__fetch_add32(word, 1u);
  posix_futex(word, FUTEX_WAKE, INT_MAX, -1);
}

SHMRPC__HOT int shmrpc__os_event_wait(shmrpc__os_service *service, int event,
                                      uint32_t prepared, int32_t timeout_ms) {
  /* One FUTEX_WAIT with the relative timeout as given: no clock read, which
   * after a long sleep would cost the woken side half a microsecond. A
   * signal may end it early; the caller's deadline loop covers that. */
  volatile uint32_t *word = event_word(service, event);
  long rc = posix_futex(word, FUTEX_WAIT, prepared, timeout_ms);
  /* A lane's event shares its line with the lane's lock, which the woken
   * caller releases next: start loading it (for the request event, the
   * server's, this is a wasted hint). */
  SHMRPC__PREFETCH(word);
  if (rc != 0 && errno == ETIMEDOUT)
    return SHMRPC_ETIMEDOUT;
  return 0;
}

/* ---- The server's waitable ---------------------------------------------- */

/* Opens the FIFO at path for `flags` and checks it is the server's FIFO. */
int posix_fifo_open(shmrpc__os_service *service, const char *path, int flags,
                    int *out) {
  struct stat st;
  int fd = open(path, flags | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
  POSIX_COUNT_SYSCALL();
  if (fd < 0)
    return errno == ENXIO ? shmrpc__error_detail(SHMRPC_ENOSERVER,
                                                 "%s has no reader", path)
                          : posix_open_error(errno, path);
  if (fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode) ||
      st.st_uid != service->owner) {
    close(fd);
    return shmrpc__error_detail(SHMRPC_EPROTO,
                                "%s is not the service's FIFO", path);
  }
  *out = fd;
  return 0;
}

int posix_publish_fd(volatile int *slot, int fd) {
  int expected = -1;
  if (__atomic_compare_exchange_n(slot, &expected, fd, 0, __ATOMIC_SEQ_CST,
                                  __ATOMIC_SEQ_CST))
    return fd;
  close(fd);
  return expected;
}

int shmrpc__os_waitable_get(shmrpc__os_service *service,
                            shmrpc_waitable *out) {
  if (service->forked || service->role != POSIX_CREATOR)
    return SHMRPC_EINVAL;
  *out = service->request_fifo;
  return 0;
}

/* Writes one byte: a full FIFO is already readable, so EAGAIN is fine. */
static void poke(int fd) {
  static const char byte = 1;
  if (fd >= 0) {
    POSIX_COUNT_SYSCALL();
    (void)!write(fd, &byte, 1);
  }
}

void shmrpc__os_waitable_wake(shmrpc__os_service *service, uint32_t lane,
                              uint32_t waker) {
  (void)waker; /* the lane's own FIFO says whom to wake */
  if (lane != REQUEST_LANE) {
    if (lane < service->lanes)
      poke(service->lane_fifo[lane]);
    return;
  }
  if (service->role == POSIX_CREATOR) {
    poke(service->request_fifo); /* shmrpc_server_stop wakes its own loop */
    return;
  }
  if (__atomic_load_n(&service->request_fifo, __ATOMIC_ACQUIRE) < 0) {
    char path[POSIX_PATH_MAX];
    int fd;
    posix_path(path, sizeof(path), service->name, "@req");
    if (posix_fifo_open(service, path, O_WRONLY, &fd) != 0)
      return; /* the server will see the call when it looks anyway */
    posix_publish_fd(&service->request_fifo, fd);
  }
  poke(service->request_fifo);
}

int posix_fifo_drain(int fd) {
  char bytes[4096];
  int i;
  if (fd < 0)
    return 0;
  /* At most a full pipe's worth: a writer that keeps writing must not keep
   * the reader here (the next drain takes the rest). */
  for (i = 0; i < 16; i++) {
    ssize_t got;
    POSIX_COUNT_SYSCALL();
    got = read(fd, bytes, sizeof(bytes));
    if (got <= 0)
      return got == 0; /* end of file: no writer is left */
  }
  return 0;
}

void shmrpc__os_waitable_drain(shmrpc__os_service *service) {
  if (service->role == POSIX_CREATOR)
    (void)posix_fifo_drain(service->request_fifo);
}

void posix_waitables_close(shmrpc__os_service *service) {
  unsigned lane;
  if (service->epoll_fd >= 0)
    close(service->epoll_fd);
  service->epoll_fd = -1;
  service->watched = 0;
  for (lane = 0; lane < SHMRPC_MAX_LANES; lane++) {
    if (service->lane_fifo[lane] >= 0)
      close(service->lane_fifo[lane]);
    service->lane_fifo[lane] = -1;
  }
  if (service->request_fifo >= 0)
    close(service->request_fifo);
  service->request_fifo = -1;
}
