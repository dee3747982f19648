/*
 * The POSIX (Linux) backend's own declarations, shared by the files of
 * src/posix/ and by nothing else.
 *
 * A service NAME is these names in /dev/shm (the '@' cannot occur in a
 * service name, so no service's names collide with another's):
 *
 *   shmrpc.NAME         the server object: the server area, after a
 *                       64-byte backend prefix. Owner read-write, others
 *                       read-only (0600, 0640, 0644 by access). The server
 *                       holds an OFD write lock on byte 0 for its lifetime:
 *                       liveness. Clients open it read-only, so they can take
 *                       only read locks, and probe for a write lock: no
 *                       client can fake a live server or hide one.
 *   shmrpc.NAME@calls   the calls object: a backend prefix (the doorbell, the
 *                       queue, per lane a lock word and an event word), then
 *                       the calls area. Read-write for whoever may call
 *                       (0600, 0660, 0666). Each client connection holds an
 *                       OFD write lock on one byte far past its end (its
 *                       token, at POSIX_TOKEN_BASE + index) for its lifetime.
 *   shmrpc.NAME@lock    owner-only (0600): the server holds an OFD write lock
 *                       on it for its lifetime. Whoever gets that lock owns
 *                       the name: it may remove and re-create the rest. No
 *                       other user can open it, so no client can block a new
 *                       server from taking over a dead one's names.
 *   shmrpc.NAME@req     a FIFO clients write a byte into to wake a server
 *                       that waits in an event loop (owner rw, others w).
 *   shmrpc.NAME@K       one FIFO per lane K the server writes a byte into to
 *                       wake a client that waits in an event loop (owner rw,
 *                       others r). A client's epoll set holds the FIFOs of
 *                       its lanes that have a call in flight.
 *
 * Every open is O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC and checks the type and
 * owner of what it opened (object_open the type, its callers the owner and,
 * for the calls object, the identity the server object records), so a
 * link, a FIFO or a directory planted at a name is refused and never
 * blocks.
 */
#ifndef SHMRPC_POSIX_H
#define SHMRPC_POSIX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../atomic.h"
#include "../compiler.h"
#include "../core.h"
#include "../os.h"

#define POSIX_MAGIC 0x58535053u /* "SPSX" */
#define POSIX_PREFIX_VERSION 2u
#define POSIX_LINE 64u
/* The server object's prefix before the server area. */
#define POSIX_SERVER_PREFIX 64u
/* Client tokens: one byte each, far past the end of the calls object. */
#define POSIX_TOKEN_BASE ((off_t)1 << 40)
#define POSIX_TOKENS 65535u
/* The queue's ring of waiting callers. */
#define POSIX_RING 256u
/* Longest path: "/dev/shm/shmrpc." + name + "@calls" + NUL. */
#define POSIX_PATH_MAX (SHMRPC_NAME_MAX + 32)

/* The server object's first 64 bytes. Only the server writes them. */
typedef struct posix_server_prefix {
  uint32_t magic;          /* POSIX_MAGIC, stored last */
  uint32_t version;        /* POSIX_PREFIX_VERSION */
  uint32_t lanes;          /* lanes of the service */
  uint32_t reserved;
  uint64_t server_bytes;   /* size of the server object */
  uint64_t calls_bytes;    /* size of the calls object */
  uint64_t calls_dev;      /* identity of the calls object */
  uint64_t calls_ino;
  uint64_t generation;     /* the core's generation, for lock words */
  uint8_t pad[POSIX_SERVER_PREFIX - 56];
} posix_server_prefix;

/* One slot of the queue's ring: the caller holding ticket `ticket` waits. */
typedef struct posix_ring_slot {
  uint32_t ticket;
  uint32_t state; /* enum posix_waiter_state */
} posix_ring_slot;

enum posix_waiter_state {
  POSIX_WAITER_EMPTY = 0,
  POSIX_WAITER_AWAKE = 1,    /* looking at the lanes */
  POSIX_WAITER_SLEEPING = 2, /* asleep (or about to be) on its state word */
  POSIX_WAITER_WOKEN = 3,    /* a releaser woke it */
  POSIX_WAITER_LEFT = 4,     /* gave up its place */
  POSIX_WAITER_DONE = 5      /* got a lane */
};

/* Per lane, in the calls object's prefix: its lock and its event. */
typedef struct posix_lane_words {
  uint32_t lock;  /* 0 free; else (check << 16) | (token + 1) */
  uint32_t event; /* the response event: a sequence word */
  uint8_t pad[POSIX_LINE - 8];
} posix_lane_words;

/* The calls object's prefix. */
typedef struct posix_calls_prefix {
  uint32_t doorbell; /* the request event: a sequence word */
  uint8_t pad0[POSIX_LINE - 4];
  uint32_t head;     /* the first ticket whose turn it is */
  uint32_t tail;     /* the next ticket to hand out */
  uint8_t pad1[POSIX_LINE - 8];
  posix_ring_slot ring[POSIX_RING];
  posix_lane_words lane[]; /* `lanes` of them */
} posix_calls_prefix;

/* Bytes of the calls object's prefix for `lanes` lanes. */
static inline size_t posix_calls_prefix_size(uint32_t lanes) {
  return sizeof(posix_calls_prefix) + (size_t)lanes * sizeof(posix_lane_words);
}

enum posix_role { POSIX_CREATOR = 1, POSIX_CLIENT = 2, POSIX_INSPECTOR = 3 };

/* A client connection in a loop: its epoll set is not in the loop yet, is,
 * or was taken out for good (its server is gone). */
enum posix_loop_state { POSIX_LOOP_NONE = 0, POSIX_LOOP_IN = 1,
                        POSIX_LOOP_OUT = 2 };

struct shmrpc__os_service {
  int role;                      /* enum posix_role */
  int server_fd;                 /* server object; the creator's holds the
                                    liveness lock */
  int calls_fd;                  /* calls object; a client's holds its token */
  int lock_fd;                   /* creator: the @lock object */
  int request_fifo;              /* @req: the creator's (read side, its
                                    waitable), a client's (write side) */
  int lane_fifo[SHMRPC_MAX_LANES]; /* creator: write sides; client: read
                                      sides of the lanes a loop watches */
  int epoll_fd;                  /* client: an epoll set of those FIFOs,
                                    which a loop (loop.c) holds; or -1 */
  volatile int forked;           /* set in a fork() child */
  uint32_t lanes;
  uint32_t token;                /* client: its token index */
  uint32_t lock_mine;            /* client: its lane lock word */
  uint32_t lock_check;           /* 32 bits of the generation */
  uint64_t watched;              /* client: lanes whose FIFO is in epoll_fd */
  volatile int loop_state;       /* client: enum posix_loop_state */
  void *server_map;              /* the server object */
  size_t server_map_size;
  void *calls_map;               /* the calls object */
  size_t calls_map_size;
  posix_server_prefix *server_prefix;
  posix_calls_prefix *calls_prefix;
  posix_server_prefix expected;  /* creator: what its prefix must say */
  dev_t dev[3];                  /* creator: identity of the server, calls */
  ino_t ino[3];                  /* and lock objects, to remove only ours */
  uid_t owner;                   /* the user owning the names */
  char name[SHMRPC_NAME_MAX + 1];
  shmrpc__os_service *registry_next; /* fork.c's list of open services */
  shmrpc__os_service *registry_prev;
};

/* ---- service.c --------------------------------------------------------- */

/* Writes "/dev/shm/shmrpc.NAME" + suffix (e.g. "@calls", or "" ) into path. */
void posix_path(char *path, size_t cap, const char *name, const char *suffix);
/* An error code for errno after a failed open, with a detail naming path. */
int posix_open_error(int err, const char *path);

/* ---- lane_lock.c ------------------------------------------------------- */

/* Takes a free client token on the connection's calls object and clears
 * lane locks a dead holder of the same token left. */
int posix_token_take(shmrpc__os_service *service);
/* 1 if some open file description holds token `token`. */
int posix_token_alive(shmrpc__os_service *service, uint32_t token);
/* posix_lane_take's answer for a lane it could not take. */
#define POSIX_LANE_BUSY 2
/* Tries to take lane `lane`: 0 or SHMRPC__ABANDONED when taken,
 * POSIX_LANE_BUSY if held by a live owner (or one not proven dead:
 * prove_dead 0 skips the probe). */
int posix_lane_take(shmrpc__os_service *service, uint32_t lane,
                    int prove_dead);
/* 1 if lane `lane` looks free (its lock word is 0). */
int posix_lane_free(const shmrpc__os_service *service, uint32_t lane);

/* ---- queue.c ----------------------------------------------------------- */

/* Wakes the queued caller whose turn it is, if any (after a release). */
void posix_queue_wake_head(shmrpc__os_service *service);

/* ---- event.c ----------------------------------------------------------- */

/* futex(2) on a word in shared memory (never FUTEX_PRIVATE_FLAG). */
long posix_futex(volatile uint32_t *word, int op, uint32_t value,
                 int32_t timeout_ms);
/* Opens the service's FIFO at path for `flags` (O_RDONLY or O_WRONLY; it
 * adds O_NONBLOCK, O_NOFOLLOW, O_CLOEXEC) and checks that it is a FIFO of
 * the service's owner. */
int posix_fifo_open(shmrpc__os_service *service, const char *path, int flags,
                    int *out);
/* Reads what the FIFO holds, without waiting; 1 at end of file (no writer
 * is left), else 0. */
int posix_fifo_drain(int fd);
/* Stores fd in *slot if it holds -1 and returns fd; else closes fd and
 * returns the descriptor another thread stored first. */
int posix_publish_fd(volatile int *slot, int fd);
/* Closes the waitables' descriptors of a service. */
void posix_waitables_close(shmrpc__os_service *service);

/* ---- fork.c: how many fork() children this process is (0 in the first). */
extern volatile unsigned posix_fork_generation;

/* Test builds count the system calls the backend makes (test hook). */
#ifdef SHMRPC_FAULT_INJECTION
#define POSIX_COUNT_SYSCALL() shmrpc__test_count_syscall()
#else
#define POSIX_COUNT_SYSCALL() ((void)0)
#endif

/* ---- fork.c ------------------------------------------------------------ */

/* Adds an open service to the list the fork handler walks, and removes it. */
void posix_registry_add(shmrpc__os_service *service);
void posix_registry_remove(shmrpc__os_service *service);

#endif /* SHMRPC_POSIX_H */
