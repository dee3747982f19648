/*
 * The POSIX backend's services: the names in /dev/shm (see posix.h), how a
 * server creates them or takes them over, how a client opens them, and
 * liveness.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "posix.h"

#define SHM_DIR "/dev/shm"
#define OPEN_FLAGS (O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)

enum object { OBJ_SERVER = 0, OBJ_CALLS = 1, OBJ_LOCK = 2 };

void posix_path(char *path, size_t cap, const char *name, const char *suffix) {
  snprintf(path, cap, SHM_DIR "/shmrpc.%s%s", name, suffix);
}

/* The modes by access: the server object and the lane FIFOs are readable,
 * the calls object and the request FIFO writable, by the wider set. */
static mode_t mode_for(int access, int writable_by_others) {
  switch (access) {
  case SHMRPC_ACCESS_EVERYONE:
    return writable_by_others ? 0666 : 0644;
  case SHMRPC_ACCESS_GROUP:
    return writable_by_others ? 0660 : 0640;
  default:
    return 0600;
  }
}
/* The request FIFO: others may only write it. */
static mode_t request_fifo_mode(int access) {
  switch (access) {
  case SHMRPC_ACCESS_EVERYONE:
    return 0622;
  case SHMRPC_ACCESS_GROUP:
    return 0620;
  default:
    return 0600;
  }
}

int posix_open_error(int err, const char *path) {
  switch (err) {
  case ENOENT:
    return shmrpc__error_detail(SHMRPC_ENOSERVER, "%s does not exist", path);
  case EACCES:
  case EPERM:
    return shmrpc__error_detail(SHMRPC_EACCES, "%s: %s", path, strerror(err));
  case ELOOP:
    return shmrpc__error_detail(
        SHMRPC_EPROTO, "%s is a symbolic link, not a shmrpc object", path);
  case EISDIR:
    return shmrpc__error_detail(SHMRPC_EPROTO,
                                "%s is a directory, not a shmrpc object", path);
  case ENXIO:
  case ENODEV:
  case ETXTBSY:
    return shmrpc__error_detail(SHMRPC_EPROTO,
                                "%s is not a regular file: %s", path,
                                strerror(err));
  case ENOMEM:
    return shmrpc__error_detail(SHMRPC_ENOMEM, "%s: %s", path, strerror(err));
  case ENOSPC:
  case EDQUOT:
    return shmrpc__error_detail(SHMRPC_ENOSPC, "%s: %s", path, strerror(err));
  case ENAMETOOLONG:
    return shmrpc__error_detail(SHMRPC_EINVAL, "%s: %s", path, strerror(err));
  default:
    return shmrpc__error_detail(SHMRPC_EOS, "%s: %s", path, strerror(err));
  }
}

static const char *type_name(mode_t mode) {
  if (S_ISDIR(mode))
    return "a directory";
  if (S_ISFIFO(mode))
    return "a FIFO";
  if (S_ISLNK(mode))
    return "a symbolic link";
  if (S_ISSOCK(mode))
    return "a socket";
  if (S_ISCHR(mode) || S_ISBLK(mode))
    return "a device";
  return "a regular file";
}

/* "alice (uid 1000)", or "uid 1000" for a user without a name. */
static void user_text(uid_t uid, char *out, size_t cap) {
  struct passwd entry, *found = NULL;
  char buffer[1024];
  if (getpwuid_r(uid, &entry, buffer, sizeof(buffer), &found) == 0 &&
      found != NULL)
    snprintf(out, cap, "%s (uid %u)", found->pw_name, (unsigned)uid);
  else
    snprintf(out, cap, "uid %u", (unsigned)uid);
}

/* ---- Locks ------------------------------------------------------------- */

static int ofd_lock(int fd, short type, off_t at) {
  struct flock lock;
  memset(&lock, 0, sizeof(lock));
  lock.l_type = type;
  lock.l_whence = SEEK_SET;
  lock.l_start = at;
  lock.l_len = 1;
  return fcntl(fd, F_OFD_SETLK, &lock);
}

/* 1 if another open file description holds a lock on byte `at` that
 * conflicts with `type`: a read probe sees only write locks. */
static int ofd_conflict(int fd, short type, off_t at) {
  struct flock lock;
  memset(&lock, 0, sizeof(lock));
  lock.l_type = type;
  lock.l_whence = SEEK_SET;
  lock.l_start = at;
  lock.l_len = 1;
  POSIX_COUNT_SYSCALL();
  if (fcntl(fd, F_OFD_GETLK, &lock) != 0)
    return 0;
  return lock.l_type != F_UNLCK;
}

int shmrpc__os_server_alive(shmrpc__os_service *service) {
  /* A write lock on byte 0: only the server's user can hold one (others
   * open the object read-only), and it dies with the server. */
  if (service == NULL || service->server_fd < 0)
    return 0;
  if (service->role == POSIX_CREATOR)
    return !service->forked;
  return ofd_conflict(service->server_fd, F_RDLCK, 0);
}

SHMRPC__HOT int shmrpc__os_service_forked(const shmrpc__os_service *service) {
  return service->forked;
}

uint32_t shmrpc__os_service_lanes(const shmrpc__os_service *service) {
  return service->lanes;
}

/* ---- Objects ----------------------------------------------------------- */

/* Does `path` name the object (dev, ino)? Never follows a link. */
static int path_is(const char *path, dev_t dev, ino_t ino) {
  struct stat st;
  return lstat(path, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

/* "1.5 MiB", "12.0 KiB" or "512 bytes". */
static void size_text(uint64_t bytes, char *out, size_t cap) {
  if (bytes >= 1024u * 1024u)
    snprintf(out, cap, "%.1f MiB", (double)bytes / (1024.0 * 1024.0));
  else if (bytes >= 1024u)
    snprintf(out, cap, "%.1f KiB", (double)bytes / 1024.0);
  else
    snprintf(out, cap, "%u bytes", (unsigned)bytes);
}

/* The shortage, said in full: what the service needs of /dev/shm, what is
 * free, and what to change. */
static int no_room(uint64_t need, uint64_t free_bytes) {
  char need_text[32], free_text[32];
  size_text(need, need_text, sizeof(need_text));
  size_text(free_bytes, free_text, sizeof(free_text));
  return shmrpc__error_detail(
      SHMRPC_ENOSPC,
      SHM_DIR " is too small for the service: it needs %s (%llu bytes), %s "
              "(%llu bytes) are free; use a smaller capacity or fewer "
              "lanes, or a larger " SHM_DIR,
      need_text, (unsigned long long)need, free_text,
      (unsigned long long)free_bytes);
}

/* Bytes free in /dev/shm for this user, or UINT64_MAX if unknown. */
static uint64_t shm_free(void) {
  struct statvfs vfs;
  if (statvfs(SHM_DIR, &vfs) != 0)
    return UINT64_MAX;
  return (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
}

/* Reserves the object's memory now: tmpfs allocates pages on first touch,
 * and a page it cannot allocate then kills the toucher with SIGBUS. */
static int reserve(int fd, size_t bytes, const char *path) {
  int err = posix_fallocate(fd, 0, (off_t)bytes);
  if (err == 0)
    return 0;
  if (err == ENOSPC || err == EDQUOT)
    return no_room(bytes, shm_free());
  return shmrpc__error_detail(SHMRPC_EOS, "reserving %s: %s", path,
                              strerror(err));
}

/* Creates a new object at path (O_EXCL) with exactly `mode`, reserves
 * `bytes` and maps it. */
static int object_create(const char *path, mode_t mode, int locked,
                         size_t bytes, int *fd_out, void **map_out, dev_t *dev,
                         ino_t *ino) {
  struct stat st;
  void *map;
  /* Owner-only until the mode is set: an object that is to be `locked`
   * gets its write lock first, so that no reader can take a lock on it
   * before the server does and keep the server from starting. */
  int fd = open(path, O_RDWR | O_CREAT | O_EXCL | OPEN_FLAGS, 0600);
  int rc;
  if (fd < 0) {
    if (errno == EEXIST)
      return shmrpc__error_detail(SHMRPC_EACCES,
                                  "%s exists and is not this user's to remove",
                                  path);
    return posix_open_error(errno, path);
  }
  if (locked && ofd_lock(fd, F_WRLCK, 0) != 0) {
    rc = posix_open_error(errno, path);
    goto fail;
  }
  /* The umask may have narrowed the mode: set exactly what was asked. */
  if (fchmod(fd, mode) != 0 || fstat(fd, &st) != 0) {
    rc = posix_open_error(errno, path);
    goto fail;
  }
  *dev = st.st_dev;
  *ino = st.st_ino;
  *fd_out = fd; /* from here on the caller removes the name on failure */
  rc = reserve(fd, bytes, path);
  if (rc != 0)
    return rc;
  map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED)
    return posix_open_error(errno, path);
  *map_out = map;
  return 0;
fail:
  close(fd);
  unlink(path);
  return rc;
}

/* Removes path if it is this user's, of the expected kind, or is absent. */
static int remove_ours(const char *path, int want_fifo, uid_t me) {
  struct stat st;
  if (lstat(path, &st) != 0)
    return errno == ENOENT ? 0 : posix_open_error(errno, path);
  if (st.st_uid != me) {
    char owner[96];
    user_text(st.st_uid, owner, sizeof(owner));
    return shmrpc__error_detail(SHMRPC_EACCES, "%s belongs to %s", path,
                                owner);
  }
  if (want_fifo ? !S_ISFIFO(st.st_mode) : !S_ISREG(st.st_mode))
    return shmrpc__error_detail(SHMRPC_EPROTO,
                                "%s is %s, not a shmrpc object", path,
                                type_name(st.st_mode));
  if (unlink(path) != 0 && errno != ENOENT)
    return posix_open_error(errno, path);
  return 0;
}

/* With the name's lock held: removes every other name of the service, as a
 * dead server (of any lane count) may have left them. */
static int remove_leftovers(const char *name, uid_t me) {
  char path[POSIX_PATH_MAX];
  unsigned lane;
  int rc;
  posix_path(path, sizeof(path), name, "");
  rc = remove_ours(path, 0, me);
  if (rc != 0)
    return rc;
  posix_path(path, sizeof(path), name, "@calls");
  rc = remove_ours(path, 0, me);
  if (rc != 0)
    return rc;
  posix_path(path, sizeof(path), name, "@req");
  rc = remove_ours(path, 1, me);
  for (lane = 0; rc == 0 && lane < SHMRPC_MAX_LANES; lane++) {
    char suffix[16];
    snprintf(suffix, sizeof(suffix), "@%u", lane);
    posix_path(path, sizeof(path), name, suffix);
    rc = remove_ours(path, 1, me);
  }
  return rc;
}

/*
 * Takes the name: opens (or creates) NAME@lock, which only this user can
 * open, and takes its write lock. A live server holds it for its lifetime,
 * so failing to get it means SHMRPC_EEXIST. A lock on a file a finishing
 * server has just removed is worthless: check that the path still names
 * what we locked, else start again.
 */
static int name_take(const char *name, int *fd_out, dev_t *dev, ino_t *ino) {
  char path[POSIX_PATH_MAX];
  uid_t me = geteuid();
  int attempt;
  posix_path(path, sizeof(path), name, "@lock");
  for (attempt = 0; attempt < 16; attempt++) {
    struct stat st;
    int fd = open(path, O_RDWR | O_CREAT | OPEN_FLAGS, 0600);
    if (fd < 0)
      return posix_open_error(errno, path);
    if (fstat(fd, &st) != 0) {
      int err = errno;
      close(fd);
      return posix_open_error(err, path);
    }
    if (st.st_uid != me || !S_ISREG(st.st_mode)) {
      char owner[96];
      close(fd);
      user_text(st.st_uid, owner, sizeof(owner));
      if (st.st_uid != me)
        return shmrpc__error_detail(
            SHMRPC_EACCES, "%s belongs to %s: the name is taken", path, owner);
      return shmrpc__error_detail(SHMRPC_EPROTO,
                                  "%s is %s, not a shmrpc object", path,
                                  type_name(st.st_mode));
    }
    if (ofd_lock(fd, F_WRLCK, 0) != 0) {
      int err = errno;
      close(fd);
      if (err == EAGAIN || err == EACCES)
        return SHMRPC_EEXIST;
      return posix_open_error(err, path);
    }
    if (!path_is(path, st.st_dev, st.st_ino)) {
      close(fd);
      continue;
    }
    /* Ours now; a same-user file of wider mode is made private again. */
    if ((st.st_mode & 0777) != 0600)
      (void)fchmod(fd, 0600);
    *fd_out = fd;
    *dev = st.st_dev;
    *ino = st.st_ino;
    return 0;
  }
  return SHMRPC_EEXIST;
}

static void service_unmap(shmrpc__os_service *service) {
  if (service->server_map != NULL)
    munmap(service->server_map, service->server_map_size);
  if (service->calls_map != NULL)
    munmap(service->calls_map, service->calls_map_size);
  service->server_map = NULL;
  service->calls_map = NULL;
}

static void close_fd(int *fd) {
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

static shmrpc__os_service *service_new(int role, const char *name) {
  shmrpc__os_service *service = calloc(1, sizeof(*service));
  unsigned lane;
  if (service == NULL)
    return NULL;
  service->role = role;
  service->server_fd = -1;
  service->calls_fd = -1;
  service->lock_fd = -1;
  service->request_fifo = -1;
  service->epoll_fd = -1;
  for (lane = 0; lane < SHMRPC_MAX_LANES; lane++)
    service->lane_fifo[lane] = -1;
  snprintf(service->name, sizeof(service->name), "%s", name);
  /* On the fork list before it opens anything, and off it only once all
   * is closed: a fork() on another thread meanwhile must not leave the
   * child with copies (and so with the locks) it does not know of. */
  posix_registry_add(service);
  return service;
}

/* Closes and frees, removing nothing. */
static void service_free(shmrpc__os_service *service) {
  posix_waitables_close(service);
  service_unmap(service);
  close_fd(&service->calls_fd);
  close_fd(&service->server_fd);
  close_fd(&service->lock_fd);
  posix_registry_remove(service);
  free(service);
}

/* The creator removes its names, the lock's last: a new server waiting for
 * the lock then finds nothing left to remove. */
static void service_remove_names(shmrpc__os_service *service) {
  char path[POSIX_PATH_MAX];
  unsigned lane;
  posix_path(path, sizeof(path), service->name, "@req");
  (void)remove_ours(path, 1, service->owner);
  for (lane = 0; lane < service->lanes; lane++) {
    char suffix[16];
    snprintf(suffix, sizeof(suffix), "@%u", lane);
    posix_path(path, sizeof(path), service->name, suffix);
    (void)remove_ours(path, 1, service->owner);
  }
  posix_path(path, sizeof(path), service->name, "@calls");
  if (path_is(path, service->dev[OBJ_CALLS], service->ino[OBJ_CALLS]))
    unlink(path);
  posix_path(path, sizeof(path), service->name, "");
  if (path_is(path, service->dev[OBJ_SERVER], service->ino[OBJ_SERVER]))
    unlink(path);
  posix_path(path, sizeof(path), service->name, "@lock");
  if (path_is(path, service->dev[OBJ_LOCK], service->ino[OBJ_LOCK]))
    unlink(path);
}

/* Makes the FIFO at path with exactly `mode` and opens it read-write (which
 * never blocks, and keeps it from reporting end-of-file to its peers). */
static int fifo_create(const char *path, mode_t mode, int *fd_out) {
  struct stat st;
  int fd;
  if (mkfifo(path, mode) != 0)
    return errno == EEXIST
               ? shmrpc__error_detail(SHMRPC_EACCES,
                                      "%s exists and is not this user's", path)
               : posix_open_error(errno, path);
  fd = open(path, O_RDWR | OPEN_FLAGS);
  if (fd < 0)
    return posix_open_error(errno, path);
  if (fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode) || st.st_uid != geteuid() ||
      fchmod(fd, mode) != 0) {
    close(fd);
    return shmrpc__error_detail(SHMRPC_EPROTO, "%s is not our FIFO", path);
  }
  *fd_out = fd;
  return 0;
}

int shmrpc__os_service_create(const char *name,
                              const shmrpc__os_create_options *options,
                              shmrpc__os_service **out, void **server_area,
                              void **calls_area) {
  char path[POSIX_PATH_MAX];
  shmrpc__os_service *service;
  size_t calls_prefix = posix_calls_prefix_size(options->lanes);
  size_t server_bytes = POSIX_SERVER_PREFIX + options->server_size;
  size_t calls_bytes = calls_prefix + options->calls_size;
  unsigned lane;
  int rc;

  *out = NULL;
  service = service_new(POSIX_CREATOR, name);
  if (service == NULL)
    return SHMRPC_ENOMEM;
  service->lanes = options->lanes;
  service->owner = geteuid();

  rc = name_take(name, &service->lock_fd, &service->dev[OBJ_LOCK],
                 &service->ino[OBJ_LOCK]);
  if (rc != 0) {
    service_free(service);
    return rc;
  }
  /* The name is ours: whatever a dead server left, in whatever state, goes.
   * Its bytes are never read. */
  rc = remove_leftovers(name, service->owner);
  if (rc != 0)
    goto fail;
  /* Say the whole shortage up front, rather than the first object's. */
  if (server_bytes + calls_bytes > shm_free()) {
    rc = no_room(server_bytes + calls_bytes, shm_free());
    goto fail;
  }

  posix_path(path, sizeof(path), name, "@calls");
  rc = object_create(path, mode_for(options->access, 1), 0, calls_bytes,
                     &service->calls_fd, &service->calls_map,
                     &service->dev[OBJ_CALLS], &service->ino[OBJ_CALLS]);
  if (rc != 0)
    goto fail;
  service->calls_map_size = calls_bytes;
  service->calls_prefix = service->calls_map;

  posix_path(path, sizeof(path), name, "@req");
  rc = fifo_create(path, request_fifo_mode(options->access),
                   &service->request_fifo);
  for (lane = 0; rc == 0 && lane < options->lanes; lane++) {
    char suffix[16];
    snprintf(suffix, sizeof(suffix), "@%u", lane);
    posix_path(path, sizeof(path), name, suffix);
    rc = fifo_create(path, mode_for(options->access, 0),
                     &service->lane_fifo[lane]);
  }
  if (rc != 0)
    goto fail;

  /* The server object last: clients look for it first, and it must be
   * locked (alive) before it is complete (object_create locks it before
   * anyone else may open it). */
  posix_path(path, sizeof(path), name, "");
  rc = object_create(path, mode_for(options->access, 0), 1, server_bytes,
                     &service->server_fd, &service->server_map,
                     &service->dev[OBJ_SERVER], &service->ino[OBJ_SERVER]);
  if (rc != 0)
    goto fail;
  service->server_map_size = server_bytes;
  service->server_prefix = service->server_map;
  service->expected.magic = POSIX_MAGIC;
  service->expected.version = POSIX_PREFIX_VERSION;
  service->expected.lanes = options->lanes;
  service->expected.server_bytes = server_bytes;
  service->expected.calls_bytes = calls_bytes;
  service->expected.calls_dev = (uint64_t)service->dev[OBJ_CALLS];
  service->expected.calls_ino = (uint64_t)service->ino[OBJ_CALLS];
  service->expected.generation = options->generation;
  service->lock_check =
      (uint32_t)(options->generation ^ (options->generation >> 32));
  memcpy((unsigned char *)service->server_prefix + 4,
         (const unsigned char *)&service->expected + 4,
         sizeof(posix_server_prefix) - 4);
  shmrpc__store32(&service->server_prefix->magic, POSIX_MAGIC);

  *server_area = (unsigned char *)service->server_map + POSIX_SERVER_PREFIX;
  *calls_area = (unsigned char *)service->calls_map + calls_prefix;
  *out = service;
  return 0;

fail:
  service_remove_names(service);
  service_free(service);
  return rc;
}

/* ---- Opening ----------------------------------------------------------- */

/* Which users a client trusts to run the server. */
typedef struct trust_rule {
  int exact; /* 1: only `uid` */
  uid_t uid;
} trust_rule;

static int trust_parse(const char *server_user, trust_rule *out) {
  out->exact = 0;
  out->uid = geteuid();
  if (server_user == NULL)
    return 0;
  if (server_user[0] != '\0') {
    char *end;
    unsigned long id = strtoul(server_user, &end, 10);
    struct passwd entry, *found = NULL;
    char buffer[1024];
    if (*end == '\0' && server_user[0] >= '0' && server_user[0] <= '9') {
      out->exact = 1;
      out->uid = (uid_t)id;
      return 0;
    }
    if (getpwnam_r(server_user, &entry, buffer, sizeof(buffer), &found) == 0 &&
        found != NULL) {
      out->exact = 1;
      out->uid = found->pw_uid;
      return 0;
    }
  }
  return shmrpc__error_detail(SHMRPC_EINVAL,
                              "server user '%s' is neither a user name nor a "
                              "numeric user id",
                              server_user);
}

static int trusted(const trust_rule *rule, uid_t owner) {
  if (rule->exact)
    return owner == rule->uid;
  return owner == geteuid() || owner == 0;
}

/* Opens an existing regular object at path as `flags`, checking its type,
 * and returns its stat. */
static int object_open(const char *path, int flags, int *fd_out,
                       struct stat *st) {
  int fd = open(path, flags | OPEN_FLAGS);
  if (fd < 0)
    return posix_open_error(errno, path);
  if (fstat(fd, st) != 0) {
    int err = errno;
    close(fd);
    return posix_open_error(err, path);
  }
  if (!S_ISREG(st->st_mode)) {
    close(fd);
    return shmrpc__error_detail(SHMRPC_EPROTO,
                                "%s is %s, not a shmrpc object", path,
                                type_name(st->st_mode));
  }
  *fd_out = fd;
  return 0;
}

/* Maps the server object read-only and reads its prefix once. Returns 0,
 * SHMRPC_ENOSERVER while it is incomplete, or SHMRPC_EPROTO. */
static int server_map(shmrpc__os_service *service, const struct stat *st,
                      const char *path, posix_server_prefix *prefix) {
  const posix_server_prefix *mapped;
  void *map;
  if (st->st_size < (off_t)POSIX_SERVER_PREFIX + (off_t)SHMRPC__LINE)
    return SHMRPC_ENOSERVER; /* still being made */
  map = mmap(NULL, (size_t)st->st_size, PROT_READ, MAP_SHARED,
             service->server_fd, 0);
  if (map == MAP_FAILED)
    return posix_open_error(errno, path);
  service->server_map = map;
  service->server_map_size = (size_t)st->st_size;
  mapped = map;
  prefix->magic = shmrpc__load32(&mapped->magic);
  if (prefix->magic == 0)
    return SHMRPC_ENOSERVER; /* being made */
  memcpy((unsigned char *)prefix + 4, (const unsigned char *)mapped + 4,
         sizeof(*prefix) - 4);
  if (prefix->magic != POSIX_MAGIC || prefix->version != POSIX_PREFIX_VERSION ||
      prefix->lanes == 0 || prefix->lanes > SHMRPC_MAX_LANES ||
      prefix->server_bytes != (uint64_t)st->st_size ||
      prefix->calls_bytes <= posix_calls_prefix_size(prefix->lanes))
    return shmrpc__error_detail(SHMRPC_EPROTO,
                                "%s is not a shmrpc service of this version",
                                path);
  return 0;
}

int shmrpc__os_service_open(const char *name,
                            const shmrpc__os_open_options *options,
                            shmrpc__os_service **out, const void **server_area,
                            size_t *server_size, void **calls_area,
                            size_t *calls_size) {
  char path[POSIX_PATH_MAX], owner[96];
  shmrpc__os_service *service;
  posix_server_prefix prefix;
  struct stat st;
  trust_rule trust;
  void *map;
  int rc;

  *out = NULL;
  rc = trust_parse(options->server_user, &trust);
  if (rc != 0)
    return rc;
  service = service_new(POSIX_CLIENT, name);
  if (service == NULL)
    return SHMRPC_ENOMEM;
  posix_path(path, sizeof(path), name, "");
  rc = object_open(path, O_RDONLY, &service->server_fd, &st);
  if (rc != 0)
    goto fail;
  service->owner = st.st_uid;
  if (!trusted(&trust, st.st_uid)) {
    user_text(st.st_uid, owner, sizeof(owner));
    rc = shmrpc__error_detail(
        SHMRPC_EUNTRUSTED,
        "service '%s' belongs to %s, whom this client does not trust%s", name,
        owner,
        trust.exact ? " (it asked for another server user)"
                    : "; name that user as the server user to trust it");
    goto fail;
  }
  if (!shmrpc__os_server_alive(service)) {
    rc = shmrpc__error_detail(SHMRPC_ENOSERVER,
                              "no live server holds service '%s'", name);
    goto fail;
  }
  rc = server_map(service, &st, path, &prefix);
  if (rc != 0)
    goto fail;
  service->lanes = prefix.lanes;
  service->lock_check = (uint32_t)(prefix.generation ^ (prefix.generation >> 32));

  /* The calls object must be the very one the server made. */
  posix_path(path, sizeof(path), name, "@calls");
  rc = object_open(path, O_RDWR, &service->calls_fd, &st);
  if (rc != 0) /* SHMRPC_ENOSERVER: the server is going */
    goto fail;
  if ((uint64_t)st.st_dev != prefix.calls_dev ||
      (uint64_t)st.st_ino != prefix.calls_ino || st.st_uid != service->owner) {
    rc = shmrpc__error_detail(SHMRPC_EPROTO,
                              "%s is not the calls object of service '%s'",
                              path, name);
    goto fail;
  }
  if ((uint64_t)st.st_size < prefix.calls_bytes) {
    rc = shmrpc__error_detail(
        SHMRPC_EPROTO, "%s is shorter than its server says (truncated?)",
        path);
    goto fail;
  }
  map = mmap(NULL, (size_t)prefix.calls_bytes, PROT_READ | PROT_WRITE,
             MAP_SHARED, service->calls_fd, 0);
  if (map == MAP_FAILED) {
    rc = posix_open_error(errno, path);
    goto fail;
  }
  service->calls_map = map;
  service->calls_map_size = (size_t)prefix.calls_bytes;
  service->calls_prefix = map;
  rc = posix_token_take(service);
  if (rc != 0)
    goto fail;

  *server_area = (const unsigned char *)service->server_map +
                 POSIX_SERVER_PREFIX;
  *server_size = service->server_map_size - POSIX_SERVER_PREFIX;
  *calls_area = (unsigned char *)map + posix_calls_prefix_size(service->lanes);
  *calls_size = service->calls_map_size -
                posix_calls_prefix_size(service->lanes);
  *out = service;
  return 0;

fail:
  service_free(service);
  return rc;
}

int shmrpc__os_service_inspect(const char *name, int global_namespace,
                               shmrpc__os_service **out,
                               const void **server_area, size_t *server_size,
                               const void **calls_area, size_t *calls_size,
                               shmrpc__os_inspect_info *info) {
  char path[POSIX_PATH_MAX];
  shmrpc__os_service *service;
  posix_server_prefix prefix;
  struct stat st;
  int rc;
  (void)global_namespace; /* a Windows notion */

  *out = NULL;
  *server_area = NULL;
  *server_size = 0;
  *calls_area = NULL;
  *calls_size = 0;
  memset(info, 0, sizeof(*info));
  service = service_new(POSIX_INSPECTOR, name);
  if (service == NULL)
    return SHMRPC_ENOMEM;
  posix_path(path, sizeof(path), name, "");
  rc = object_open(path, O_RDONLY, &service->server_fd, &st);
  if (rc == SHMRPC_ENOSERVER) {
    /* Only a lock left: a server that died while it began. */
    struct stat lock_st;
    posix_path(path, sizeof(path), name, "@lock");
    if (lstat(path, &lock_st) == 0) {
      user_text(lock_st.st_uid, info->owner, sizeof(info->owner));
      info->own = lock_st.st_uid == geteuid();
      *out = service;
      return 0;
    }
  }
  if (rc != 0) {
    service_free(service);
    return rc;
  }
  service->owner = st.st_uid;
  user_text(st.st_uid, info->owner, sizeof(info->owner));
  info->own = st.st_uid == geteuid();
  info->alive = shmrpc__os_server_alive(service);
  rc = server_map(service, &st, path, &prefix);
  if (rc == SHMRPC_ENOSERVER) {
    *out = service; /* incomplete */
    return 0;
  }
  if (rc != 0) {
    service_free(service);
    return rc;
  }
  info->complete = 1;
  service->lanes = prefix.lanes;
  service->lock_check =
      (uint32_t)(prefix.generation ^ (prefix.generation >> 32));
  /* The calls object too, read-only, for the queue and the lane locks, if
   * this user may read it. */
  posix_path(path, sizeof(path), name, "@calls");
  if (object_open(path, O_RDONLY, &service->calls_fd, &st) == 0 &&
      (uint64_t)st.st_dev == prefix.calls_dev &&
      (uint64_t)st.st_ino == prefix.calls_ino &&
      (uint64_t)st.st_size >= prefix.calls_bytes) {
    void *map = mmap(NULL, (size_t)prefix.calls_bytes, PROT_READ, MAP_SHARED,
                     service->calls_fd, 0);
    if (map != MAP_FAILED) {
      size_t prefix_size = posix_calls_prefix_size(prefix.lanes);
      service->calls_map = map;
      service->calls_map_size = (size_t)prefix.calls_bytes;
      service->calls_prefix = map;
      *calls_area = (const unsigned char *)map + prefix_size;
      *calls_size = service->calls_map_size - prefix_size;
    }
  }
  shmrpc__error_clear();
  *server_area = (const unsigned char *)service->server_map +
                 POSIX_SERVER_PREFIX;
  *server_size = service->server_map_size - POSIX_SERVER_PREFIX;
  *out = service;
  return 0;
}

int shmrpc__os_service_list(int (*fn)(const char *name, void *ctx), void *ctx) {
  DIR *dir = opendir(SHM_DIR);
  struct dirent *entry;
  if (dir == NULL)
    return shmrpc__error_detail(SHMRPC_EOS, SHM_DIR ": %s", strerror(errno));
  while ((entry = readdir(dir)) != NULL) {
    char name[SHMRPC_NAME_MAX + 1];
    const char *base = entry->d_name;
    size_t len;
    if (strncmp(base, "shmrpc.", 7) != 0)
      continue;
    base += 7;
    /* A service shows as its server object, or as a lone @lock when its
     * server died before it made the rest. */
    len = strcspn(base, "@");
    if (len == 0 || len > SHMRPC_NAME_MAX)
      continue;
    memcpy(name, base, len);
    name[len] = '\0';
    if (shmrpc_name_check(name) != 0)
      continue;
    if (base[len] == '@') {
      char path[POSIX_PATH_MAX];
      struct stat st;
      if (strcmp(base + len, "@lock") != 0)
        continue;
      posix_path(path, sizeof(path), name, "");
      if (lstat(path, &st) == 0)
        continue; /* listed as its server object */
    }
    if (fn(name, ctx) != 0)
      break;
  }
  closedir(dir);
  return 0;
}

void shmrpc__os_service_close(shmrpc__os_service *service) {
  if (service == NULL)
    return;
  if (service->role == POSIX_CREATOR && !service->forked)
    service_remove_names(service);
  service_free(service);
}

int shmrpc__os_service_remove_stale(const char *name, int global_namespace) {
  char path[POSIX_PATH_MAX];
  struct stat st;
  dev_t dev;
  ino_t ino;
  int fd = -1, rc;
  (void)global_namespace;
  posix_path(path, sizeof(path), name, "");
  if (lstat(path, &st) != 0) {
    posix_path(path, sizeof(path), name, "@lock");
    if (lstat(path, &st) != 0)
      return 0; /* nothing there */
  }
  rc = name_take(name, &fd, &dev, &ino);
  if (rc != 0)
    return rc;
  rc = remove_leftovers(name, geteuid());
  /* The lock goes too, whatever was refused: it is ours, and no name of
   * ours may outlive the call. */
  posix_path(path, sizeof(path), name, "@lock");
  if (path_is(path, dev, ino))
    unlink(path);
  close(fd);
  return rc;
}

/* ---- Repair ------------------------------------------------------------ */

int shmrpc__os_service_repair(shmrpc__os_service *service) {
  posix_server_prefix *prefix = service->server_prefix;
  const posix_server_prefix *want = &service->expected;
  struct stat st;
  int repaired = 0;
  if (service->role != POSIX_CREATOR || service->forked)
    return 0;
  /* Only the server's own user can write its prefix; put it back anyway. */
  if (memcmp((const unsigned char *)prefix + 4, (const unsigned char *)want + 4,
             offsetof(posix_server_prefix, pad) - 4) != 0) {
    memcpy((unsigned char *)prefix + 4, (const unsigned char *)want + 4,
           offsetof(posix_server_prefix, pad) - 4);
    repaired++;
  }
  if (shmrpc__load32(&prefix->magic) != POSIX_MAGIC) {
    shmrpc__store32(&prefix->magic, POSIX_MAGIC);
    repaired++;
  }
  /* A caller may truncate the calls object; pages past the end then kill
   * whoever touches them. Give the object its size back, reserved. */
  if (fstat(service->calls_fd, &st) == 0 &&
      (uint64_t)st.st_size < want->calls_bytes) {
    if (ftruncate(service->calls_fd, (off_t)want->calls_bytes) == 0)
      (void)posix_fallocate(service->calls_fd, 0, (off_t)want->calls_bytes);
    repaired++;
  }
  return repaired;
}
