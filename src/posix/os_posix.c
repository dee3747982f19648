/*
 * The POSIX backend (Linux): one shm_open object per service holds
 * everything. Its first 256 bytes belong to this backend:
 *
 *   line 0   backend magic
 *   line 1   the slot mutex: a robust, process-shared pthread mutex
 *   line 2   request event: a futex word (0 = reset, 1 = set)
 *   line 3   response event: a futex word
 *
 * and the core's area follows. Events are futex words, never process-shared
 * condition variables (glibc bug 21422: they hang after a peer is killed).
 *
 * Liveness: the server holds an open-file-description lock (F_OFD_SETLK) on
 * byte 0 of the object for as long as it serves. The kernel drops it when the
 * server process dies, whatever its threads do, so a client's F_OFD_GETLK is
 * the kernel's own answer to "is the server alive"; PIDs never enter into it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../atomic.h"
#include "../compiler.h"
#include "../os.h"

#define POSIX_MAGIC 0x58535053u /* "SPSX" */
#define POSIX_PREFIX 256u
#define POSIX_LINE 64u

typedef struct posix_prefix {
  uint32_t magic; /* POSIX_MAGIC once the mutex is initialised */
  uint8_t pad0[POSIX_LINE - 4];
  union {
    pthread_mutex_t mutex;
    uint8_t line[POSIX_LINE];
  } slot;
  uint32_t events[2][POSIX_LINE / 4]; /* word 0 of each line is the futex */
} posix_prefix;

_Static_assert(sizeof(pthread_mutex_t) <= POSIX_LINE, "mutex fits a line");
_Static_assert(sizeof(posix_prefix) <= POSIX_PREFIX, "prefix fits");

struct shmrpc__os_service {
  int fd;               /* the shm object; the creator's fd holds the lock */
  void *map;            /* whole mapping */
  size_t map_size;
  posix_prefix *prefix; /* == map */
  int creator;          /* removes the name on close */
  dev_t dev;            /* identity of the object, to unlink only our own */
  ino_t ino;
  char path[SHMRPC_NAME_MAX + 16];
};

static void make_path(char *path, size_t cap, const char *name) {
  snprintf(path, cap, "/shmrpc.%s", name);
}

static mode_t access_mode(int access) {
  switch (access) {
  case SHMRPC_ACCESS_EVERYONE:
    return 0666;
  case SHMRPC_ACCESS_GROUP:
    return 0660;
  default:
    return 0600;
  }
}

static int errno_to_error(int err) {
  switch (err) {
  case ENOENT:
    return SHMRPC_ENOSERVER;
  case EACCES:
  case EPERM:
    return SHMRPC_EACCES;
  case ENOMEM:
  case ENOSPC:
    return SHMRPC_ENOMEM;
  case ENAMETOOLONG:
  case EINVAL:
    return SHMRPC_EINVAL;
  case ELOOP:
    return SHMRPC_EPROTO; /* a link where our object should be */
  default:
    return SHMRPC_EOS;
  }
}

/* The liveness lock: a write lock on byte 0, owned by the open file
 * description (not by a thread, and not shared with the client's fds). */
static void liveness_range(struct flock *lock) {
  memset(lock, 0, sizeof(*lock));
  lock->l_type = F_WRLCK;
  lock->l_whence = SEEK_SET;
  lock->l_start = 0;
  lock->l_len = 1;
}

static int liveness_lock(int fd) {
  struct flock lock;
  liveness_range(&lock);
  return fcntl(fd, F_OFD_SETLK, &lock);
}

/* 1 if some other open file description holds the liveness lock. */
static int liveness_held(int fd) {
  struct flock lock;
  liveness_range(&lock);
  if (fcntl(fd, F_OFD_GETLK, &lock) != 0)
    return 0;
  return lock.l_type != F_UNLCK;
}

/* Does `path` still name the object open as (dev, ino)? */
static int path_is_object(const char *path, dev_t dev, ino_t ino) {
  struct stat st;
  int fd = shm_open(path, O_RDONLY, 0);
  int same;
  if (fd < 0)
    return 0;
  same = fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
  close(fd);
  return same;
}

/*
 * An object already has the name. Decide whether it may be taken over: it
 * must be ours, a regular shm object, not held by a live server, and either
 * a shmrpc object or an empty one a creator died before initialising.
 * Returns 0 with *held_fd holding its liveness lock (keep it until the name
 * is replaced, so no third server can judge it stale meanwhile), 1 to retry
 * from the start, or a negative error.
 */
static int judge_existing(const char *path, int *held_fd) {
  struct stat st;
  uint32_t magic = 0;
  int fd = shm_open(path, O_RDWR, 0);
  if (fd < 0)
    return errno == ENOENT ? 1 : errno_to_error(errno);
  if (fstat(fd, &st) != 0) {
    close(fd);
    return SHMRPC_EOS;
  }
  if (st.st_uid != geteuid()) {
    close(fd);
    return SHMRPC_EACCES; /* another user's object: never take it over */
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return SHMRPC_EPROTO;
  }
  if (liveness_lock(fd) != 0) {
    close(fd);
    return (errno == EAGAIN || errno == EACCES) ? SHMRPC_EEXIST : SHMRPC_EOS;
  }
  if (st.st_size >= (off_t)POSIX_PREFIX) {
    if (pread(fd, &magic, sizeof(magic), 0) != (ssize_t)sizeof(magic)) {
      close(fd);
      return SHMRPC_EOS;
    }
    if (magic != POSIX_MAGIC && magic != 0) {
      close(fd);
      return SHMRPC_EPROTO; /* not ours to remove */
    }
  } else if (st.st_size != 0) {
    close(fd);
    return SHMRPC_EPROTO;
  }
  if (!path_is_object(path, st.st_dev, st.st_ino)) {
    close(fd);
    return 1; /* replaced under us: look again */
  }
  *held_fd = fd;
  return 0;
}

static int init_mutex(pthread_mutex_t *mutex) {
  pthread_mutexattr_t attr;
  int rc = pthread_mutexattr_init(&attr);
  if (rc != 0)
    return SHMRPC_EOS;
  if (pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED) != 0 ||
      pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST) != 0 ||
      pthread_mutex_init(mutex, &attr) != 0)
    rc = SHMRPC_EOS;
  pthread_mutexattr_destroy(&attr);
  return rc;
}

/* Maps `size` bytes of the object; the prefix is at the start. */
static int map_object(shmrpc__os_service *service, size_t size) {
  service->map_size = size;
  service->map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
                      service->fd, 0);
  if (service->map == MAP_FAILED) {
    service->map = NULL;
    return errno_to_error(errno);
  }
  service->prefix = service->map;
  return 0;
}

/* Unmaps and closes what is open (closing the creator's fd releases the
 * liveness lock) and frees the handle. */
static void service_free(shmrpc__os_service *service) {
  if (service->map != NULL)
    munmap(service->map, service->map_size);
  if (service->fd >= 0)
    close(service->fd);
  free(service);
}

int shmrpc__os_service_create(const char *name,
                              const shmrpc__os_create_options *options,
                              shmrpc__os_service **out, void **area) {
  shmrpc__os_service *service;
  int stale_fd = -1;
  int attempt, rc;
  struct stat st;
  mode_t mode = access_mode(options->access);

  *out = NULL;
  service = calloc(1, sizeof(*service));
  if (service == NULL)
    return SHMRPC_ENOMEM;
  service->fd = -1;
  service->creator = 1;
  make_path(service->path, sizeof(service->path), name);

  for (attempt = 0; attempt < 16; attempt++) {
    service->fd = shm_open(service->path, O_RDWR | O_CREAT | O_EXCL, mode);
    if (service->fd >= 0)
      break;
    if (errno != EEXIST) {
      rc = errno_to_error(errno);
      goto fail;
    }
    if (stale_fd >= 0) { /* someone re-created it after we unlinked */
      close(stale_fd);
      stale_fd = -1;
    }
    rc = judge_existing(service->path, &stale_fd);
    if (rc < 0)
      goto fail;
    if (rc == 0) {
      /* Stale: remove it while we still hold its lock. */
      if (shm_unlink(service->path) != 0 && errno != ENOENT) {
        rc = errno_to_error(errno);
        goto fail;
      }
    }
  }
  if (service->fd < 0) {
    rc = SHMRPC_EEXIST;
    goto fail;
  }
  /* Another server judging our fresh object stale locks it first; then it
   * owns the name and we step aside. */
  if (liveness_lock(service->fd) != 0) {
    close(service->fd);
    service->fd = -1;
    rc = SHMRPC_EEXIST;
    goto fail;
  }
  if (stale_fd >= 0) {
    close(stale_fd);
    stale_fd = -1;
  }
  /* The umask may have narrowed the mode: set exactly what was asked. */
  if (fchmod(service->fd, mode) != 0 ||
      ftruncate(service->fd, (off_t)(POSIX_PREFIX + options->area_size)) != 0 ||
      fstat(service->fd, &st) != 0) {
    rc = errno_to_error(errno);
    goto fail_unlink;
  }
  service->dev = st.st_dev;
  service->ino = st.st_ino;
  rc = map_object(service, POSIX_PREFIX + options->area_size);
  if (rc != 0)
    goto fail_unlink;
  rc = init_mutex(&service->prefix->slot.mutex);
  if (rc != 0)
    goto fail_unlink;
  shmrpc__store32(&service->prefix->magic, POSIX_MAGIC);
  *area = (unsigned char *)service->map + POSIX_PREFIX;
  *out = service;
  return 0;

fail_unlink:
  shm_unlink(service->path);
fail:
  if (stale_fd >= 0)
    close(stale_fd);
  service_free(service);
  return rc;
}

static int open_service(const char *name, int require_alive,
                        shmrpc__os_service **out, void **area,
                        size_t *area_size, int *alive);

int shmrpc__os_service_open(const char *name, int global_namespace,
                            shmrpc__os_service **out, void **area,
                            size_t *area_size) {
  int alive = 0;
  (void)global_namespace; /* a Windows notion */
  return open_service(name, 1, out, area, area_size, &alive);
}

int shmrpc__os_service_inspect(const char *name, int global_namespace,
                               shmrpc__os_service **out, void **area,
                               size_t *area_size, int *alive) {
  (void)global_namespace;
  return open_service(name, 0, out, area, area_size, alive);
}

int shmrpc__os_service_list(int (*fn)(const char *name, void *ctx), void *ctx) {
  DIR *dir = opendir("/dev/shm");
  struct dirent *entry;
  if (dir == NULL)
    return SHMRPC_EOS;
  while ((entry = readdir(dir)) != NULL) {
    const char *name = entry->d_name;
    if (strncmp(name, "shmrpc.", 7) != 0 || shmrpc_name_check(name + 7) != 0)
      continue;
    if (fn(name + 7, ctx) != 0)
      break;
  }
  closedir(dir);
  return 0;
}

static int open_service(const char *name, int require_alive,
                        shmrpc__os_service **out, void **area,
                        size_t *area_size, int *alive) {
  shmrpc__os_service *service;
  struct stat st;
  int rc;

  *out = NULL;
  service = calloc(1, sizeof(*service));
  if (service == NULL)
    return SHMRPC_ENOMEM;
  make_path(service->path, sizeof(service->path), name);
  service->fd = shm_open(service->path, O_RDWR, 0);
  if (service->fd < 0) {
    rc = errno_to_error(errno);
    goto fail;
  }
  if (fstat(service->fd, &st) != 0) {
    rc = SHMRPC_EOS;
    goto fail;
  }
  /* Only a service of this user (or of root, who could read us anyway) is
   * trusted: another user's object of this name is a squatter. */
  if (!S_ISREG(st.st_mode) || (st.st_uid != geteuid() && st.st_uid != 0)) {
    rc = SHMRPC_EPROTO;
    goto fail;
  }
  *alive = liveness_held(service->fd);
  if (require_alive && !*alive) {
    rc = SHMRPC_ENOSERVER;
    goto fail;
  }
  if (st.st_size < (off_t)POSIX_PREFIX + 64) {
    rc = SHMRPC_ENOSERVER; /* still being created */
    goto fail;
  }
  rc = map_object(service, (size_t)st.st_size);
  if (rc != 0)
    goto fail;
  switch (shmrpc__load32(&service->prefix->magic)) {
  case POSIX_MAGIC:
    break;
  case 0:
    rc = SHMRPC_ENOSERVER;
    goto fail;
  default:
    rc = SHMRPC_EPROTO;
    goto fail;
  }
  *area = (unsigned char *)service->map + POSIX_PREFIX;
  *area_size = service->map_size - POSIX_PREFIX;
  *out = service;
  return 0;

fail:
  service_free(service);
  return rc;
}

void shmrpc__os_service_close(shmrpc__os_service *service) {
  if (service == NULL)
    return;
  if (service->creator &&
      path_is_object(service->path, service->dev, service->ino))
    shm_unlink(service->path);
  service_free(service);
}

int shmrpc__os_service_remove_stale(const char *name, int global_namespace) {
  char path[SHMRPC_NAME_MAX + 16];
  int held_fd = -1, attempt, rc = 0;
  (void)global_namespace;
  make_path(path, sizeof(path), name);
  for (attempt = 0; attempt < 16; attempt++) {
    rc = judge_existing(path, &held_fd);
    if (rc != 1)
      break;
  }
  if (rc == 1 || rc == SHMRPC_ENOSERVER)
    return 0; /* nothing there */
  if (rc < 0)
    return rc;
  if (shm_unlink(path) != 0 && errno != ENOENT)
    rc = errno_to_error(errno);
  close(held_fd);
  return rc;
}

int shmrpc__os_server_alive(shmrpc__os_service *service) {
  return liveness_held(service->fd);
}

static struct timespec deadline_after_ms(clockid_t clock, int32_t ms) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

SHMRPC__HOT int shmrpc__os_slot_lock(shmrpc__os_service *service,
                                     int32_t timeout_ms) {
  pthread_mutex_t *mutex = &service->prefix->slot.mutex;
  int rc;
  if (timeout_ms < 0) {
    rc = pthread_mutex_lock(mutex);
  } else if (timeout_ms == 0) {
    rc = pthread_mutex_trylock(mutex);
    if (rc == EBUSY)
      rc = ETIMEDOUT;
  } else {
    /* pthread_mutex_timedlock takes a CLOCK_REALTIME deadline; a clock
     * step can stretch one wait, but the core waits in slices of a few
     * milliseconds and keeps its own monotonic deadline. (The monotonic
     * pthread_mutex_clocklock would be nicer, but sanitizers do not know
     * it yet.) */
    struct timespec deadline = deadline_after_ms(CLOCK_REALTIME, timeout_ms);
    rc = pthread_mutex_timedlock(mutex, &deadline);
  }
  switch (rc) {
  case 0:
    return 0;
  case EOWNERDEAD:
    /* Without this the mutex would be unusable forever once unlocked. */
    pthread_mutex_consistent(mutex);
    return SHMRPC__ABANDONED;
  case ETIMEDOUT:
    return SHMRPC_ETIMEDOUT;
  default:
    return SHMRPC_EPROTO; /* ENOTRECOVERABLE, EINVAL: a corrupted mutex */
  }
}

SHMRPC__HOT void shmrpc__os_slot_unlock(shmrpc__os_service *service) {
  pthread_mutex_unlock(&service->prefix->slot.mutex);
}

SHMRPC__HOT static long futex(volatile uint32_t *word, int op, uint32_t value,
                              const struct timespec *timeout) {
  /* Never FUTEX_PRIVATE_FLAG: the word is shared between processes. */
  return syscall(SYS_futex, word, op, value, timeout, NULL, 0);
}

SHMRPC__HOT void shmrpc__os_event_set(shmrpc__os_service *service,
                                      enum shmrpc__os_event event) {
  volatile uint32_t *word = &service->prefix->events[event][0];
  if (shmrpc__xchg32(word, 1) == 0)
    futex(word, FUTEX_WAKE, 1, NULL);
}

SHMRPC__HOT int shmrpc__os_event_wait(shmrpc__os_service *service,
                                      enum shmrpc__os_event event,
                                      int32_t timeout_ms) {
  volatile uint32_t *word = &service->prefix->events[event][0];
  struct timespec relative;
  if (shmrpc__xchg32(word, 0) != 0)
    return 0;
  /* One FUTEX_WAIT with the relative timeout as given: no clock read, which
   * after a long sleep would cost the woken side half a microsecond. A
   * signal may end it early; the caller's deadline loop covers that. */
  relative.tv_sec = timeout_ms / 1000;
  relative.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
  futex(word, FUTEX_WAIT, 0, timeout_ms < 0 ? NULL : &relative);
  return shmrpc__xchg32(word, 0) != 0 ? 0 : SHMRPC_ETIMEDOUT;
}

SHMRPC__HOT uint64_t shmrpc__os_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void shmrpc__os_sleep_ms(int32_t ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

unsigned shmrpc__os_cpu_count(void) {
  cpu_set_t set;
  long n;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int count = CPU_COUNT(&set);
    if (count > 0)
      return (unsigned)count;
  }
  n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (unsigned)n : 1u;
}

uint32_t shmrpc__os_pid(void) { return (uint32_t)getpid(); }

uint64_t shmrpc__os_random64(void) {
  uint64_t value = 0;
  if (getrandom(&value, sizeof(value), 0) != (ssize_t)sizeof(value))
    value = shmrpc__os_now_ns() ^ ((uint64_t)getpid() << 32);
  return value;
}

void shmrpc__os_die_now(void) {
  kill(getpid(), SIGKILL);
  _exit(137);
}
