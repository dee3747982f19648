/*
 * A client handle's waitable on POSIX: an epoll set (the loop) holding a
 * timerfd and, per connection, that connection's own epoll set of lane
 * FIFOs (shmrpc.NAME@K, one per lane, which the server writes a byte into
 * when it answers a call whose caller waits in a loop).
 *
 * Why FIFOs: a futex word cannot be polled, and the wake-up must come from
 * the server's user to whoever calls, across users, without a socket the
 * client would have to bind or a descriptor it would have to receive. The
 * server makes each FIFO (owner read-write, others read-only, so no caller
 * can forge a wake-up for another) and holds its write side for life; a
 * client opens the read side without blocking. A FIFO's reader sees end of
 * file once the last writer is gone, so a loop turns ready by itself when
 * the server dies. The cost is one write(2) in the server per answer to a
 * caller that armed its loop, and one read(2) in the caller; a caller that
 * spins or polls costs neither.
 *
 * A connection's set is nested in the loop rather than its FIFOs added one
 * by one: a connection closes its FIFOs and its set together, which takes
 * them out of the loop, and a dead connection leaves as one descriptor.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "posix.h"

struct shmrpc__os_loop {
  int epoll_fd; /* the waitable */
  int timer_fd; /* in epoll_fd */
  unsigned fork_generation;
  uint64_t timer_at_ns; /* when the timer fires; 0 when it is not set */
};

/* What the loop's set says about each of its members. */
#define LOOP_TIMER 0u
#define LOOP_CONNECTION 1u

static int loop_error(const char *what) {
  return shmrpc__error_detail(SHMRPC_EOS, "%s: %s", what, strerror(errno));
}

int shmrpc__os_loop_open(shmrpc__os_service *service, shmrpc__os_loop **out) {
  struct epoll_event event;
  shmrpc__os_loop *loop;
  (void)service; /* a FIFO's mode says who may wake it */
  loop = calloc(1, sizeof(*loop));
  if (loop == NULL)
    return SHMRPC_ENOMEM;
  loop->timer_fd = -1;
  loop->fork_generation = posix_fork_generation;
  loop->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (loop->epoll_fd < 0) {
    free(loop);
    return loop_error("epoll_create1");
  }
  loop->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  memset(&event, 0, sizeof(event));
  event.events = EPOLLIN;
  event.data.u32 = LOOP_TIMER;
  if (loop->timer_fd < 0 ||
      epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, loop->timer_fd, &event) != 0) {
    int rc = loop_error("timerfd");
    shmrpc__os_loop_close(loop);
    return rc;
  }
  *out = loop;
  return 0;
}

void shmrpc__os_loop_close(shmrpc__os_loop *loop) {
  if (loop == NULL)
    return;
  if (loop->timer_fd >= 0)
    close(loop->timer_fd);
  close(loop->epoll_fd);
  free(loop);
}

shmrpc_waitable shmrpc__os_loop_waitable(const shmrpc__os_loop *loop) {
  return loop->epoll_fd;
}

int shmrpc__os_loop_forked(const shmrpc__os_loop *loop) {
  return loop->fork_generation != posix_fork_generation;
}

/* Puts the connection's set into the loop, once. */
static int attach(shmrpc__os_loop *loop, shmrpc__os_service *service) {
  struct epoll_event event;
  int fd = __atomic_load_n(&service->epoll_fd, __ATOMIC_ACQUIRE);
  if (fd < 0) {
    fd = epoll_create1(EPOLL_CLOEXEC);
    POSIX_COUNT_SYSCALL();
    if (fd < 0)
      return loop_error("epoll_create1");
    fd = posix_publish_fd(&service->epoll_fd, fd);
  }
  if (__atomic_load_n(&service->loop_state, __ATOMIC_ACQUIRE) !=
      POSIX_LOOP_NONE)
    return 0;
  memset(&event, 0, sizeof(event));
  event.events = EPOLLIN;
  event.data.u32 = LOOP_CONNECTION;
  POSIX_COUNT_SYSCALL();
  if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0 &&
      errno != EEXIST)
    return loop_error("epoll_ctl");
  __atomic_store_n(&service->loop_state, POSIX_LOOP_IN, __ATOMIC_RELEASE);
  return 0;
}

int shmrpc__os_loop_watch(shmrpc__os_loop *loop, shmrpc__os_service *service,
                          uint32_t lane, uint32_t *waker) {
  struct epoll_event event;
  uint64_t bit = (uint64_t)1 << lane;
  int rc;
  *waker = 0; /* the lane's own FIFO says whom to wake */
  if (service->forked || lane >= service->lanes)
    return SHMRPC_EINVAL;
  if (__atomic_load_n(&service->loop_state, __ATOMIC_ACQUIRE) ==
      POSIX_LOOP_OUT)
    return 0; /* its server is gone: the calls learn it from the kernel */
  if ((__atomic_load_n(&service->watched, __ATOMIC_ACQUIRE) & bit) != 0 &&
      service->loop_state == POSIX_LOOP_IN)
    return 0;
  rc = attach(loop, service);
  if (rc != 0)
    return rc;
  if (service->lane_fifo[lane] < 0) {
    char path[POSIX_PATH_MAX], suffix[16];
    int fd;
    snprintf(suffix, sizeof(suffix), "@%u", lane);
    posix_path(path, sizeof(path), service->name, suffix);
    rc = posix_fifo_open(service, path, O_RDONLY, &fd);
    if (rc != 0)
      return rc;
    posix_publish_fd(&service->lane_fifo[lane], fd);
  }
  if (__atomic_fetch_or(&service->watched, bit, __ATOMIC_SEQ_CST) & bit)
    return 0;
  memset(&event, 0, sizeof(event));
  event.events = EPOLLIN;
  event.data.u32 = lane;
  POSIX_COUNT_SYSCALL();
  if (epoll_ctl(service->epoll_fd, EPOLL_CTL_ADD, service->lane_fifo[lane],
                &event) != 0 &&
      errno != EEXIST) {
    __atomic_fetch_and(&service->watched, ~bit, __ATOMIC_SEQ_CST);
    return loop_error("epoll_ctl");
  }
  return 0;
}

void shmrpc__os_loop_unwatch(shmrpc__os_loop *loop,
                             shmrpc__os_service *service, uint32_t lane) {
  uint64_t bit = (uint64_t)1 << lane;
  (void)loop;
  if (service->forked || lane >= service->lanes ||
      !(__atomic_fetch_and(&service->watched, ~bit, __ATOMIC_SEQ_CST) & bit))
    return;
  POSIX_COUNT_SYSCALL();
  (void)epoll_ctl(service->epoll_fd, EPOLL_CTL_DEL, service->lane_fifo[lane],
                  NULL);
}

int shmrpc__os_loop_drain(shmrpc__os_loop *loop, shmrpc__os_service *service) {
  struct epoll_event events[SHMRPC_MAX_LANES];
  uint64_t expirations;
  int n, i, gone = 0;

  /* Only a timer that has fired holds an expiry to read. */
  if (loop->timer_at_ns != 0 && shmrpc__os_now_ns() >= loop->timer_at_ns) {
    POSIX_COUNT_SYSCALL();
    (void)!read(loop->timer_fd, &expirations, sizeof(expirations));
    loop->timer_at_ns = 0;
  }
  if (service == NULL || service->forked || service->epoll_fd < 0 ||
      service->loop_state != POSIX_LOOP_IN)
    return 0;
  POSIX_COUNT_SYSCALL();
  n = epoll_wait(service->epoll_fd, events, SHMRPC_MAX_LANES, 0);
  for (i = 0; i < n; i++) {
    uint32_t lane = events[i].data.u32;
    if (lane < service->lanes && posix_fifo_drain(service->lane_fifo[lane]))
      gone = 1;
  }
  if (gone) {
    /* No writer left: the server closed its FIFOs, so it is gone. Its
     * FIFOs would keep the loop ready for ever: out they go. */
    __atomic_store_n(&service->loop_state, POSIX_LOOP_OUT, __ATOMIC_RELEASE);
    POSIX_COUNT_SYSCALL();
    (void)epoll_ctl(loop->epoll_fd, EPOLL_CTL_DEL, service->epoll_fd, NULL);
  }
  return gone;
}

int shmrpc__os_loop_timer(shmrpc__os_loop *loop, int32_t ms) {
  struct itimerspec when;
  uint64_t now = shmrpc__os_now_ns();
  uint64_t at = ms < 0 ? 0 : now + (uint64_t)ms * 1000000u;
  /* A timer set to fire no later is kept: it costs at most a look too
   * early, which arms it again. Calls made one after the other, each with
   * a later deadline, then set it once. */
  if (loop->timer_at_ns != 0 && now < loop->timer_at_ns &&
      (at == 0 || loop->timer_at_ns <= at))
    return 0;
  if (at == 0 && loop->timer_at_ns == 0)
    return 0;
  memset(&when, 0, sizeof(when));
  if (ms == 0) {
    when.it_value.tv_nsec = 1; /* at once (all zeros would disarm it) */
  } else if (ms > 0) {
    when.it_value.tv_sec = ms / 1000;
    when.it_value.tv_nsec = (long)(ms % 1000) * 1000000L;
  }
  /* Setting the timer also forgets an expiry not read yet. */
  POSIX_COUNT_SYSCALL();
  if (timerfd_settime(loop->timer_fd, 0, &when, NULL) != 0)
    return loop_error("timerfd_settime");
  loop->timer_at_ns = at != 0 && ms == 0 ? now + 1u : at;
  return 0;
}

/* A dead server makes the loop ready (end of file on the FIFOs), and a lane
 * is watched only while its holder's call is armed: only a hostile reader
 * of a FIFO can take a wake-up, and this bounds what that costs. */
int32_t shmrpc__os_loop_health_ms(void) { return 250; }
