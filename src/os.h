/*
 * The platform contract. Every backend (src/posix/, src/win32/) implements
 * each function below; the core calls nothing else of the operating system.
 *
 * A *service* is the set of named kernel objects behind one service name.
 * The backend owns how they are named and laid out; the core sees two
 * *areas*: the server area, which only the server may write (clients map it
 * read-only), and the calls area, which every caller writes. Around them
 * the backend keeps its own words: the events, the lane locks, and the
 * queue of callers waiting for a lane.
 *
 * Liveness, lane ownership and the right to create a name come from kernel
 * objects the mapping cannot forge: a lock the server holds for its
 * lifetime, a token each client connection holds for its lifetime.
 *
 * Functions return 0 or a negative SHMRPC_E* code unless said otherwise.
 * Where the operating system said why something failed, the backend also
 * records a message with shmrpc__error_detail() (core.h).
 */
#ifndef SHMRPC_OS_H
#define SHMRPC_OS_H

#include <stddef.h>
#include <stdint.h>

#include "shmrpc.h"

typedef struct shmrpc__os_service shmrpc__os_service;
typedef struct shmrpc__os_thread shmrpc__os_thread;

/* A lane acquired from an owner that died holding it: the caller owns it
 * now; shmrpc__conn_prepare_wait repairs the slot if it is not idle. */
#define SHMRPC__ABANDONED 1

/* Events. The request event is the service's doorbell: any number of
 * server workers may wait on it, and each set wakes one of them. A lane's
 * response event has one waiter at a time, the lane's owner. */
#define SHMRPC__EVENT_REQUEST 0
#define SHMRPC__EVENT_RESPONSE(lane) (1 + (int)(lane))

typedef struct shmrpc__os_create_options {
  size_t server_size;   /* bytes the core needs in the server area */
  size_t calls_size;    /* bytes the core needs in the calls area */
  uint32_t lanes;       /* 1 to SHMRPC_MAX_LANES */
  uint64_t generation;  /* the server instance's random generation */
  int access;           /* SHMRPC_ACCESS_* */
  int global_namespace; /* Windows: Global\ instead of Local\ */
} shmrpc__os_create_options;

typedef struct shmrpc__os_open_options {
  int global_namespace;    /* Windows: Global\ instead of Local\ */
  const char *server_user; /* trust only this user; NULL: this user and
                              the administrator (root, SYSTEM) */
} shmrpc__os_open_options;

/* What a service looks like from outside (shmrpc__os_service_inspect). */
typedef struct shmrpc__os_inspect_info {
  int alive;           /* 1 while a server holds the liveness token */
  int complete;        /* 0 while the names are still being created, or
                          were left half made by a server that died */
  char owner[64];      /* the user that owns the names, as text */
  int own;             /* 1 if that is the calling user */
} shmrpc__os_inspect_info;

/* What a lane's lock looks like (shmrpc__os_lane_query). */
typedef struct shmrpc__os_lane_info {
  int held;        /* 1 if some owner holds the lock */
  int owner_alive; /* 1 if that owner's token is held by a live process */
  uint64_t owner;  /* an opaque owner identity, equal for the same holding */
} shmrpc__os_lane_info;

/* A caller's place in the queue of callers waiting for a lane. The core
 * treats it as opaque; zero it before the first shmrpc__os_lane_wait. */
typedef struct shmrpc__os_lane_waiter {
  uint32_t ticket;      /* position in the queue */
  uint32_t queued;      /* 1 once it holds a ticket */
  uint32_t bypass;      /* 1 once the queue looked stuck */
  uint32_t stuck_head;  /* the head seen at the end of the last slice */
  uint32_t stuck_seen;  /* slices that ended with that head and a free lane */
  uint64_t slice_end_ns; /* shmrpc__os_lane_poll: when its slice ends */
} shmrpc__os_lane_waiter;

/* ---- Services ---------------------------------------------------------- */

/*
 * shmrpc__os_service_create creates every object of the service `name` (a
 * name already checked by shmrpc_name_check) with the requested access and
 * takes the liveness token, which the process then holds until
 * shmrpc__os_service_close or its death. The memory is reserved now, so that
 * a full /dev/shm (or commit limit) fails here with SHMRPC_ENOMEM rather
 * than killing a process later. If the names exist and no live server holds
 * them, they are removed and made anew, whatever their bytes; if a live
 * server holds them, SHMRPC_EEXIST; if another user owns them or they are
 * not shmrpc objects, SHMRPC_EACCES or SHMRPC_EPROTO. On success the areas
 * are zeroed, aligned to 64, writable. A backend that reuses a dead
 * server's memory that its clients still map (Windows) zeroes the server
 * area's first line (the header, with its generation) first, then a full
 * barrier, then the rest: a client that read a zeroed byte anywhere then
 * sees the generation gone. Only the server calls it.
 */
int shmrpc__os_service_create(const char *name,
                              const shmrpc__os_create_options *options,
                              shmrpc__os_service **out, void **server_area,
                              void **calls_area);

/*
 * shmrpc__os_service_open opens the existing service `name` without waiting
 * and without blocking. SHMRPC_ENOSERVER if the names do not exist, are not
 * complete yet, or no live server holds them; SHMRPC_EACCES if this user may
 * not open them; SHMRPC_EUNTRUSTED if a user this client does not trust owns
 * them; SHMRPC_EPROTO if they are not a well-formed shmrpc service. On
 * success the server area is mapped read-only and the calls area
 * read-write, and the connection holds a client token for its lifetime.
 * Clients call it.
 */
int shmrpc__os_service_open(const char *name,
                            const shmrpc__os_open_options *options,
                            shmrpc__os_service **out, const void **server_area,
                            size_t *server_size, void **calls_area,
                            size_t *calls_size);

/*
 * shmrpc__os_service_inspect maps the server area of `name` read-only,
 * alive or not, for diagnostics, and the calls area read-only too if this
 * user may read it (else *calls_area is NULL); *info tells what it found.
 * With info->complete 0 the areas are NULL. It takes no token and no lane.
 */
int shmrpc__os_service_inspect(const char *name, int global_namespace,
                               shmrpc__os_service **out,
                               const void **server_area, size_t *server_size,
                               const void **calls_area, size_t *calls_size,
                               shmrpc__os_inspect_info *info);

/*
 * shmrpc__os_service_list calls fn(name, ctx) for every service name that
 * exists, stopping when fn returns non-zero. SHMRPC_EOS where named objects
 * cannot be enumerated.
 */
int shmrpc__os_service_list(int (*fn)(const char *name, void *ctx), void *ctx);

/*
 * shmrpc__os_service_close unmaps and closes everything. When the creator
 * closes, it also removes the names (only those still its own) and releases
 * the liveness token. NULL does nothing.
 */
void shmrpc__os_service_close(shmrpc__os_service *service);

/*
 * shmrpc__os_service_remove_stale removes the names of service `name` if they
 * exist and no live server holds them, with the same checks as create.
 * Returns 0 (removed, or nothing to remove), SHMRPC_EEXIST if a live server
 * holds them, SHMRPC_EACCES or SHMRPC_EPROTO if they are not this user's.
 * Where names die with their last handle (Windows), it only reports.
 */
int shmrpc__os_service_remove_stale(const char *name, int global_namespace);

/*
 * shmrpc__os_server_alive returns 1 while the server that created this
 * service still holds its liveness token, 0 once it has released it or
 * died. The answer comes from the kernel, and no client can make a dead
 * server look alive or a live one dead. It costs a system call: keep it off
 * the hot path.
 */
int shmrpc__os_server_alive(shmrpc__os_service *service);

/*
 * shmrpc__os_service_forked returns 1 if this process is a child that
 * fork() made after the service was opened or created here. The child's
 * copies of the kernel objects were closed at the fork, so that a child
 * never keeps a dead server alive or holds its parent's lanes; the handle
 * in the child must not be used for calls or serving. One load: callable
 * on the hot path.
 */
int shmrpc__os_service_forked(const shmrpc__os_service *service);

/* The lanes the backend's own objects were made for (its prefix says so):
 * the lanes it takes, locks and wakes. A connection whose header says
 * another number is refused. */
uint32_t shmrpc__os_service_lanes(const shmrpc__os_service *service);

/*
 * shmrpc__os_service_repair puts back what the backend owns and a writer
 * may have changed (its own header words, the size of an object someone
 * truncated). Returns the number of things it put back. Only the server
 * calls it, from its repair pass.
 */
int shmrpc__os_service_repair(shmrpc__os_service *service);

/* ---- Lanes ------------------------------------------------------------- */

/*
 * shmrpc__os_lane_try takes a free lane without waiting, trying `hint`
 * first, unless callers are queued for lanes (then it leaves the lanes to
 * them). Returns 0 or SHMRPC__ABANDONED with *lane set, or SHMRPC_EAGAIN
 * (the caller should queue with shmrpc__os_lane_wait).
 */
int shmrpc__os_lane_try(shmrpc__os_service *service, uint32_t hint,
                        uint32_t *lane);

/*
 * shmrpc__os_lane_wait waits up to slice_ms for a lane, in first-come,
 * first-served order among waiting callers of every process, keeping the
 * caller's place in *waiter across calls. Returns 0 or SHMRPC__ABANDONED
 * with *lane set (the wait is over), SHMRPC_ETIMEDOUT when the slice ended
 * first (call again, or shmrpc__os_lane_wait_end to give up), or an error.
 * A queued caller that died, or one that does not take its turn, is passed
 * over after a slice or two.
 */
int shmrpc__os_lane_wait(shmrpc__os_service *service,
                         shmrpc__os_lane_waiter *waiter, int32_t slice_ms,
                         uint32_t *lane);

/*
 * shmrpc__os_lane_poll is shmrpc__os_lane_wait for a caller that must not
 * sleep (a call started without blocking): one look at the lanes, never a
 * wait. The first poll takes the caller's place in the queue; the caller
 * must look again at least every slice_ms, or be passed over like one that
 * does not take its turn. Returns 0 or SHMRPC__ABANDONED with *lane set,
 * SHMRPC_EAGAIN (look again later), or an error. A waiter may go on with
 * shmrpc__os_lane_wait, and gives up with shmrpc__os_lane_wait_end.
 */
int shmrpc__os_lane_poll(shmrpc__os_service *service,
                         shmrpc__os_lane_waiter *waiter, int32_t slice_ms,
                         uint32_t *lane);

/* shmrpc__os_lane_wait_end gives up a place in the queue that did not get a
 * lane (a timeout, a dead server). Harmless after a wait that got one. */
void shmrpc__os_lane_wait_end(shmrpc__os_service *service,
                              shmrpc__os_lane_waiter *waiter);

/* shmrpc__os_lane_release releases a lane this connection took, and hands
 * it to the first queued caller. */
void shmrpc__os_lane_release(shmrpc__os_service *service, uint32_t lane);

/* shmrpc__os_lane_query reports the state of a lane's lock without taking
 * it; it may cost a system call per lane. Servers and diagnostics call it. */
int shmrpc__os_lane_query(shmrpc__os_service *service, uint32_t lane,
                          shmrpc__os_lane_info *out);

/* shmrpc__os_lane_recover frees lane `lane` if its lock holds garbage or
 * names an owner the kernel says is gone; returns 1 if it did. The slot is
 * repaired by the lane's next caller. The server calls it from its repair
 * pass, so that a dead client's lane serves again even if nobody is left
 * waiting for one. */
int shmrpc__os_lane_recover(shmrpc__os_service *service, uint32_t lane);

/* shmrpc__os_queue_wake wakes the first queued caller (after a lane was
 * freed by someone other than its holder). */
void shmrpc__os_queue_wake(shmrpc__os_service *service);

/* shmrpc__os_queue_length returns how many callers wait for a lane (0 where
 * the platform keeps the queue in the kernel). */
uint32_t shmrpc__os_queue_length(shmrpc__os_service *service);

/* ---- Events ------------------------------------------------------------ */

/*
 * shmrpc__os_event_prepare returns a value to pass to shmrpc__os_event_wait.
 * Read it before the last look at the state waited for: a set that comes
 * after it makes the wait return at once.
 */
uint32_t shmrpc__os_event_prepare(shmrpc__os_service *service, int event);

/*
 * shmrpc__os_event_set wakes one waiter of the event, or makes the next wait
 * return at once if none waits. Safe from a signal handler.
 */
void shmrpc__os_event_set(shmrpc__os_service *service, int event);

/* shmrpc__os_event_broadcast wakes every waiter of the event (used to stop
 * the server's workers). Safe from a signal handler. */
void shmrpc__os_event_broadcast(shmrpc__os_service *service, int event);

/*
 * shmrpc__os_event_wait waits up to timeout_ms for the event, given what
 * shmrpc__os_event_prepare returned. Returns 0 when signalled,
 * SHMRPC_ETIMEDOUT otherwise. It may return either early (a spurious
 * wake-up, a signal): callers re-check the state they wait for and their
 * own deadline.
 */
int shmrpc__os_event_wait(shmrpc__os_service *service, int event,
                          uint32_t prepared, int32_t timeout_ms);

/* ---- Waitables (event loops) ------------------------------------------- */

/*
 * A server in an event loop waits on its service's waitable: it turns ready
 * when a caller rings the doorbell while the doorbell word says the server
 * waits in a loop (SHMRPC__SLEEPERS_FD). shmrpc__os_waitable_get returns it
 * (POSIX: the read side of the request FIFO; Windows: the doorbell
 * semaphore); only the creator calls it.
 */
int shmrpc__os_waitable_get(shmrpc__os_service *service,
                            shmrpc_waitable *out);

/*
 * shmrpc__os_waitable_wake is the server's wake-up of the caller of lane
 * `lane` that waits in an event loop (waker as the caller stored it in the
 * lane's response_sleepers), or, with lane UINT32_MAX, a caller's ring of the
 * server's waitable. Never blocks. Safe from a signal handler.
 */
void shmrpc__os_waitable_wake(shmrpc__os_service *service, uint32_t lane,
                              uint32_t waker);

/* shmrpc__os_waitable_drain consumes the rings that made the server's
 * waitable ready. */
void shmrpc__os_waitable_drain(shmrpc__os_service *service);

/*
 * A client handle's waitable is a *loop*: made once per handle and kept
 * across reconnections, so an event loop registers it once. POSIX: an epoll
 * descriptor holding a timer and, per connection, the FIFOs of the lanes
 * its calls use (a FIFO's reader sees end-of-file when the server is gone,
 * so a dead server makes the loop ready by itself). Windows: an auto-reset
 * event named after a random id, which the server's user may set, and a
 * timer that sets it too.
 *
 * shmrpc__os_loop_open makes one for connections to the service of
 * `service` (a client connection: it says whose server may wake it).
 */
typedef struct shmrpc__os_loop shmrpc__os_loop;
int shmrpc__os_loop_open(shmrpc__os_service *service, shmrpc__os_loop **out);
void shmrpc__os_loop_close(shmrpc__os_loop *loop);
shmrpc_waitable shmrpc__os_loop_waitable(const shmrpc__os_loop *loop);
/* 1 in a fork() child of the process that made the loop: the child must
 * make its own (its copy would share the parent's wake-ups). */
int shmrpc__os_loop_forked(const shmrpc__os_loop *loop);

/*
 * shmrpc__os_loop_watch makes the server's wake-up of lane `lane` of
 * connection `service` reach the loop, and returns in *waker the value the
 * caller stores in the lane's response_sleepers, above the mode bits. The
 * first watch of a lane of a connection makes system calls, later ones none.
 */
int shmrpc__os_loop_watch(shmrpc__os_loop *loop, shmrpc__os_service *service,
                          uint32_t lane, uint32_t *waker);

/* shmrpc__os_loop_unwatch undoes a watch once the lane's armed call is
 * over, before the lane is released: the lane's next holder may be another
 * connection, and a wake-up the server leaves it must not reach (and be
 * consumed by) this loop. */
void shmrpc__os_loop_unwatch(shmrpc__os_loop *loop,
                             shmrpc__os_service *service, uint32_t lane);

/*
 * shmrpc__os_loop_drain consumes, without waiting, every wake-up the loop
 * holds for connection `service` and its timer, so that the waitable turns
 * ready again only for new ones. Returns 1 if the server of `service` is
 * gone as far as the loop can tell (then it no longer watches the
 * connection's lanes: a dead connection must not keep the loop ready), else 0.
 */
int shmrpc__os_loop_drain(shmrpc__os_loop *loop, shmrpc__os_service *service);

/* shmrpc__os_loop_timer makes the waitable turn ready in ms milliseconds,
 * replacing the last setting; -1: no deadline. A backend may keep a setting
 * that fires no later (POSIX does), which costs at most a look too early. */
int shmrpc__os_loop_timer(shmrpc__os_loop *loop, int32_t ms);

/* How often a loop with calls in flight turns ready by itself, in
 * milliseconds, for what no wake-up signals: a dead server where nothing
 * tells the loop (Windows), a wake-up a hostile reader of a lane's FIFO
 * took (POSIX). */
int32_t shmrpc__os_loop_health_ms(void);

/* ---- Threads ----------------------------------------------------------- */

/* Starts a thread running fn(arg). */
int shmrpc__os_thread_start(shmrpc__os_thread **out, void (*fn)(void *arg),
                            void *arg);
/* Waits for the thread to return and frees it. */
void shmrpc__os_thread_join(shmrpc__os_thread *thread);

/* ---- Time, CPUs, identity, randomness ---------------------------------- */

/* A monotonic clock in nanoseconds. */
uint64_t shmrpc__os_now_ns(void);

/* Sleeps about ms milliseconds (used to poll for a server to appear). */
void shmrpc__os_sleep_ms(int32_t ms);

/* Offers this thread's CPU to another ready thread, if there is one: the
 * server just woken may have been queued on this CPU (on a VM, the
 * scheduler often queues a wakee behind its waker rather than on an idle
 * CPU it cannot tell is really idle). */
void shmrpc__os_yield(void);

/* The number of CPUs this process may run on (at least 1). */
unsigned shmrpc__os_cpu_count(void);

/* This process's id, for diagnostics only. */
uint32_t shmrpc__os_pid(void);

/* 64 unpredictable bits (the server generation). */
uint64_t shmrpc__os_random64(void);

/* Test builds only (SHMRPC_FAULT_INJECTION): kills this process at once,
 * with no clean-up, as SIGKILL or TerminateProcess would. */
void shmrpc__os_die_now(void);

#endif /* SHMRPC_OS_H */
