/* tests/proc.h on POSIX: posix_spawn of this executable, a pipe for its
 * stdout, poll() for deadlines. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct test_proc {
  pid_t pid;
  int out_fd;      /* read end of the child's stdout */
  int reaped;
  int exit_code;
  char buf[4096];  /* bytes read but not yet returned as lines */
  size_t buf_len;
};

static char self_path[4096];

void test_proc_init(const char *argv0) {
  ssize_t n = readlink("/proc/self/exe", self_path, sizeof(self_path) - 1);
  if (n > 0) {
    self_path[n] = '\0';
  } else {
    strncpy(self_path, argv0, sizeof(self_path) - 1);
  }
}

int64_t test_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint32_t test_proc_self_pid(void) { return (uint32_t)getpid(); }

int test_proc_spawn(test_proc **out, const char *const args[]) {
  posix_spawn_file_actions_t actions;
  test_proc *proc;
  char *argv[64];
  int pipe_fds[2], n = 0, rc;

  argv[n++] = self_path;
  while (args[n - 1] != NULL && n < 63) {
    argv[n] = (char *)args[n - 1];
    n++;
  }
  argv[n] = NULL;
  if (pipe2(pipe_fds, O_CLOEXEC) != 0)
    return -1;
  proc = calloc(1, sizeof(*proc));
  if (proc == NULL) {
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return -1;
  }
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  rc = posix_spawn(&proc->pid, self_path, &actions, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);
  if (rc != 0) {
    close(pipe_fds[0]);
    free(proc);
    return -1;
  }
  proc->out_fd = pipe_fds[0];
  *out = proc;
  return 0;
}

int test_proc_read_line(test_proc *proc, char *buf, size_t cap,
                        int32_t timeout_ms) {
  int64_t end = test_now_ms() + timeout_ms;
  for (;;) {
    char *newline = memchr(proc->buf, '\n', proc->buf_len);
    struct pollfd pfd;
    ssize_t n;
    int64_t left;
    if (newline != NULL) {
      size_t len = (size_t)(newline - proc->buf);
      size_t copy = len < cap - 1 ? len : cap - 1;
      memcpy(buf, proc->buf, copy);
      buf[copy] = '\0';
      memmove(proc->buf, newline + 1, proc->buf_len - len - 1);
      proc->buf_len -= len + 1;
      return (int)copy;
    }
    if (proc->buf_len == sizeof(proc->buf))
      return -1;
    left = end - test_now_ms();
    if (left <= 0)
      return -1;
    pfd.fd = proc->out_fd;
    pfd.events = POLLIN;
    if (poll(&pfd, 1, (int)left) <= 0)
      continue;
    n = read(proc->out_fd, proc->buf + proc->buf_len,
             sizeof(proc->buf) - proc->buf_len);
    if (n <= 0)
      return -1;
    proc->buf_len += (size_t)n;
  }
}

static int decode_status(int status) {
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  if (WIFSIGNALED(status))
    return 128 + WTERMSIG(status);
  return -1;
}

int test_proc_wait(test_proc *proc, int32_t timeout_ms, int *exit_code) {
  int64_t end = test_now_ms() + timeout_ms;
  int status;
  while (!proc->reaped) {
    pid_t r = waitpid(proc->pid, &status, WNOHANG);
    if (r == proc->pid) {
      proc->reaped = 1;
      proc->exit_code = decode_status(status);
      break;
    }
    if (test_now_ms() >= end)
      return -1;
    /* No portable way to wait for a child with a deadline: poll briefly.
     * This is a bounded wait for an exit, not a synchronisation sleep. */
    {
      struct timespec ts = {0, 1000000L};
      nanosleep(&ts, NULL);
    }
  }
  if (exit_code != NULL)
    *exit_code = proc->exit_code;
  return 0;
}

void test_proc_kill(test_proc *proc) {
  int status;
  if (proc->reaped)
    return;
  kill(proc->pid, SIGKILL);
  if (waitpid(proc->pid, &status, 0) == proc->pid) {
    proc->reaped = 1;
    proc->exit_code = decode_status(status);
  }
}

void test_proc_free(test_proc *proc) {
  if (proc == NULL)
    return;
  test_proc_kill(proc);
  close(proc->out_fd);
  free(proc);
}

struct test_thread {
  pthread_t thread;
  void (*fn)(void *);
  void *arg;
};

static void *thread_main(void *arg) {
  test_thread *thread = arg;
  thread->fn(thread->arg);
  return NULL;
}

int test_thread_start(test_thread **out, void (*fn)(void *), void *arg) {
  test_thread *thread = calloc(1, sizeof(*thread));
  if (thread == NULL)
    return -1;
  thread->fn = fn;
  thread->arg = arg;
  if (pthread_create(&thread->thread, NULL, thread_main, thread) != 0) {
    free(thread);
    return -1;
  }
  *out = thread;
  return 0;
}

void test_thread_join(test_thread *thread) {
  if (thread == NULL)
    return;
  pthread_join(thread->thread, NULL);
  free(thread);
}

struct test_event {
  pthread_mutex_t mutex;
  pthread_cond_t cond;
  int set;
};

test_event *test_event_new(void) {
  test_event *event = calloc(1, sizeof(*event));
  pthread_condattr_t attr;
  if (event == NULL)
    return NULL;
  pthread_mutex_init(&event->mutex, NULL);
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&event->cond, &attr);
  pthread_condattr_destroy(&attr);
  return event;
}

void test_event_set(test_event *event) {
  pthread_mutex_lock(&event->mutex);
  event->set = 1;
  pthread_cond_broadcast(&event->cond);
  pthread_mutex_unlock(&event->mutex);
}

int test_event_wait(test_event *event, int32_t timeout_ms) {
  struct timespec deadline;
  int rc = 0;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += timeout_ms / 1000;
  deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&event->mutex);
  while (!event->set && rc == 0)
    rc = pthread_cond_timedwait(&event->cond, &event->mutex, &deadline);
  rc = event->set ? 0 : -1;
  pthread_mutex_unlock(&event->mutex);
  return rc;
}

void test_event_free(test_event *event) {
  if (event == NULL)
    return;
  pthread_cond_destroy(&event->cond);
  pthread_mutex_destroy(&event->mutex);
  free(event);
}

void test_sleep_ms(int32_t ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

int test_service_objects_exist(const char *name) {
  char path[256];
  snprintf(path, sizeof(path), "/dev/shm/shmrpc.%s", name);
  return access(path, F_OK) == 0;
}

int test_proc_fork_sleeper(void) {
  pid_t child;
  fflush(stdout);
  child = fork();
  if (child < 0)
    return -1;
  if (child == 0) {
    /* Keep every descriptor but stdout, and outlive the parent: a bounded
     * sleep, in case the test cannot kill us. */
    int null_fd = open("/dev/null", O_WRONLY);
    int i;
    if (null_fd >= 0)
      dup2(null_fd, STDOUT_FILENO);
    prctl(PR_SET_PDEATHSIG, 0);
    for (i = 0; i < 200; i++)
      test_sleep_ms(100);
    _exit(0);
  }
  printf("child %d\n", (int)child);
  return 0;
}

int test_pid_alive(int pid) { return kill((pid_t)pid, 0) == 0; }

void test_pid_kill(int pid) { kill((pid_t)pid, SIGKILL); }

void test_proc_helper_started(void) {
  /* If the test process is already gone, so are we. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1)
    _exit(1);
}
