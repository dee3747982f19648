/*
 * shmrpc: fast, crash-safe request/response calls between processes on one
 * machine.
 *
 * A server publishes a service name. The name owns shared memory with a
 * number of lanes, each a request/response slot with its own lock; callers
 * of any process or thread take a free lane (or queue for one, first come,
 * first served) and the server's workers serve the lanes in parallel. Calls
 * block with a timeout (shmrpc_call), or run in flight while the caller
 * polls them or waits in an event loop (shmrpc_call_start and the
 * waitables). docs/PROTOCOL.md describes the shared memory byte by byte.
 *
 * Conventions of this header:
 * - Every function that can fail returns 0 or a negative SHMRPC_E* code;
 *   shmrpc_strerror() names every code.
 * - Timeouts are int32_t milliseconds: SHMRPC_INFINITE waits forever (but a
 *   dead server still ends the wait), SHMRPC_NOWAIT tries once.
 * - Handles are opaque; destroying or closing NULL does nothing.
 * - This header includes no platform header.
 */
#ifndef SHMRPC_H
#define SHMRPC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* SHMRPC_EXTERN marks the public API. Building the shared library defines
 * SHMRPC_BUILDING_SHARED; users of the Windows DLL define SHMRPC_SHARED. */
#if defined(_WIN32)
#if defined(SHMRPC_BUILDING_SHARED)
#define SHMRPC_EXTERN __declspec(dllexport)
#elif defined(SHMRPC_SHARED)
#define SHMRPC_EXTERN __declspec(dllimport)
#else
#define SHMRPC_EXTERN
#endif
#elif defined(__GNUC__) || defined(__clang__)
#define SHMRPC_EXTERN __attribute__((visibility("default")))
#else
#define SHMRPC_EXTERN
#endif

/* ---- Version ----------------------------------------------------------- */

#define SHMRPC_VERSION_MAJOR 0
#define SHMRPC_VERSION_MINOR 2
#define SHMRPC_VERSION_PATCH 0
#define SHMRPC_VERSION_STRING "0.2.0"
#define SHMRPC_VERSION_HEX                                                     \
  ((SHMRPC_VERSION_MAJOR << 16) | (SHMRPC_VERSION_MINOR << 8) |                \
   SHMRPC_VERSION_PATCH)

/* The version of the library actually linked, as SHMRPC_VERSION_HEX. */
SHMRPC_EXTERN unsigned shmrpc_version(void);
/* The same as a string, e.g. "0.1.0". */
SHMRPC_EXTERN const char *shmrpc_version_string(void);

/* ---- Errors ------------------------------------------------------------ */

/* XX(name, value, message): the one table of error codes. */
#define SHMRPC_ERRNO_MAP(XX)                                                   \
  XX(EINVAL, -1, "invalid argument")                                           \
  XX(ENOMEM, -2, "out of memory")                                              \
  XX(ETIMEDOUT, -3, "timed out")                                               \
  XX(ENOSERVER, -4, "no server is serving this name")                          \
  XX(EEXIST, -5, "a live server already serves this name")                     \
  XX(ETOOBIG, -6, "message larger than the slot or the buffer")                \
  XX(ENOMETHOD, -7, "no such method")                                          \
  XX(EAPP, -8, "the handler reported an application error")                   \
  XX(ESERVERDIED, -9, "the server died")                                       \
  XX(ESHUTDOWN, -10, "the server is shutting down")                            \
  XX(EACCES, -11, "permission denied")                                         \
  XX(EPROTO, -12, "not a compatible shmrpc service, or corrupted")             \
  XX(EOS, -13, "operating system error")                                       \
  XX(EUNTRUSTED, -14,                                                          \
     "the service belongs to a user this client does not trust")              \
  XX(ENOSPC, -15, "not enough shared memory for the service")                 \
  XX(EAGAIN, -16, "not now: no lane is free, or the call has not finished")   \
  XX(ECANCELED, -17, "the call was canceled")

enum shmrpc_error {
  SHMRPC_OK = 0,
#define SHMRPC__ERRNO_ENUM(name, value, message) SHMRPC_##name = (value),
  SHMRPC_ERRNO_MAP(SHMRPC__ERRNO_ENUM)
#undef SHMRPC__ERRNO_ENUM
};

/* A short English message for any code this library returns; never NULL. */
SHMRPC_EXTERN const char *shmrpc_strerror(int err);
/* The code's name, e.g. "SHMRPC_ETIMEDOUT"; "SHMRPC_UNKNOWN" if unknown. */
SHMRPC_EXTERN const char *shmrpc_err_name(int err);
/* The most specific message for err when a function of this library just
 * returned it to this thread: what the operating system said and about
 * which object or user, e.g. "/dev/shm is full: the service needs 1.0 MiB,
 * 256.0 KiB are free". For other codes, or codes without details, it is
 * shmrpc_strerror(err). Valid until this thread's next call into shmrpc. */
SHMRPC_EXTERN const char *shmrpc_error_message(int err);

/* ---- Limits and constants ---------------------------------------------- */

#define SHMRPC_INFINITE (-1)
#define SHMRPC_NOWAIT 0

/* Service names: 1 to SHMRPC_NAME_MAX characters of [A-Za-z0-9._-]. */
#define SHMRPC_NAME_MAX 64
/* Slot capacity (bytes of request and of response): default and bounds. */
#define SHMRPC_DEFAULT_CAPACITY (64u * 1024u)
#define SHMRPC_MAX_CAPACITY (256u * 1024u * 1024u)
/* Lanes: how many calls a service holds at once (server option). The
 * default lets eight callers, processes or threads, call without waiting
 * for one another, for about 1 MiB of shared memory at the default
 * capacity; a ninth queues. */
#define SHMRPC_DEFAULT_LANES 8u
#define SHMRPC_MAX_LANES 64u
/* All lanes together take at most this much shared memory. */
#define SHMRPC_MAX_SERVICE_BYTES (4ull * 1024u * 1024u * 1024u)
/* Server worker threads (server option). */
#define SHMRPC_MAX_WORKERS 64u
/* Largest spin window, in microseconds (the spin_us options). */
#define SHMRPC_MAX_SPIN_US 10000
/* Longest application error message, without its terminating NUL. */
#define SHMRPC_MESSAGE_MAX 255
/* Longest user name in the server_user client option. */
#define SHMRPC_USER_MAX 255
/* Method ids from this value up are reserved for built-in methods. */
#define SHMRPC_METHOD_RESERVED 0xFFFF0000u
/* Built-in: answers with the request bytes unchanged (shmrpc ping). */
#define SHMRPC_METHOD_PING 0xFFFF0000u
/* Built-in: answers the registered methods, each as a u32 id followed by a
 * u32-length-prefixed name (shmrpc_payload.h reads them). */
#define SHMRPC_METHOD_LIST 0xFFFF0001u

/* Who may open a service (server option). */
enum shmrpc_access {
  SHMRPC_ACCESS_OWNER = 0,   /* the server's user only (default) */
  SHMRPC_ACCESS_GROUP = 1,   /* and its group */
  SHMRPC_ACCESS_EVERYONE = 2 /* every local user */
};

/* What an event loop waits on: a file descriptor on POSIX, a HANDLE on
 * Windows (shmrpc_client_waitable, shmrpc_server_waitable). */
#ifdef _WIN32
typedef void *shmrpc_waitable;
#else
typedef int shmrpc_waitable;
#endif

/* ---- Server ------------------------------------------------------------ */

typedef struct shmrpc_server shmrpc_server;
/* A handler's view of the response being built; valid during the call only. */
typedef struct shmrpc_reply shmrpc_reply;

typedef struct shmrpc_server_options {
  /* Bytes a request and a response may each hold; 0 means the default. */
  size_t capacity;
  /* SHMRPC_ACCESS_*; default SHMRPC_ACCESS_OWNER. */
  int access;
  /* Windows only: create the names in Global\ instead of Local\ (needs
   * SeCreateGlobalPrivilege). Ignored elsewhere. Default 0. */
  int global_namespace;
  /* How long an idle worker spins for the next request before it sleeps in
   * the kernel, in microseconds; -1 means the default, 0 never spins, at
   * most SHMRPC_MAX_SPIN_US. No spinning on a single-CPU machine, and one
   * worker at a time spins. After an answer or request of 64 KiB or more
   * the next spin is longer, by twice the time the worker takes to copy
   * those bytes (the caller copies them before it can call again): at most
   * 32 times spin_us more, and within SHMRPC_MAX_SPIN_US in all. */
  int32_t spin_us;
  /* How many calls the service holds at once, from any callers (each lane
   * is a request/response slot of `capacity` bytes each way); a caller
   * that finds every lane taken queues, first come first served. 0 means
   * SHMRPC_DEFAULT_LANES; at most SHMRPC_MAX_LANES. */
  uint32_t lanes;
  /* Threads shmrpc_server_run() serves with (its own thread is one of
   * them), so that calls on different lanes run at once. 0 means 1: then
   * handlers run one at a time, as code written for one thread expects.
   * With more, handlers must be thread-safe. At most SHMRPC_MAX_WORKERS and
   * no more than the lanes. */
  uint32_t workers;
} shmrpc_server_options;

/* Fills *options with the defaults. */
SHMRPC_EXTERN void shmrpc_server_options_init(shmrpc_server_options *options);

/*
 * A method handler. It reads request_len bytes at request (a private copy),
 * writes its answer with shmrpc_reply_write() or shmrpc_reply_buffer() +
 * shmrpc_reply_commit(), and returns 0. To report an application error it
 * returns shmrpc_reply_error(reply, code, message), whose code reaches the
 * caller; a positive return is reported the same way, without a message.
 * Returning SHMRPC_ETOOBIG (as shmrpc_reply_write gives it) fails the call
 * with SHMRPC_ETOOBIG; another negative SHMRPC_E* code becomes application
 * error 1 with that code's message. Handlers run on the server's workers
 * (several at once when options.workers > 1), or on the thread that calls
 * shmrpc_server_run_once() or shmrpc_server_dispatch().
 */
typedef int (*shmrpc_handler)(void *user_data, const void *request,
                              size_t request_len, shmrpc_reply *reply);

/* Copies len bytes as the response. SHMRPC_ETOOBIG (nothing written) if len
 * exceeds the slot capacity. */
SHMRPC_EXTERN int shmrpc_reply_write(shmrpc_reply *reply, const void *data,
                                     size_t len);
/* The response area itself (capacity bytes in *capacity) for writing in
 * place; finish with shmrpc_reply_commit(). */
SHMRPC_EXTERN void *shmrpc_reply_buffer(shmrpc_reply *reply, size_t *capacity);
/* Sets the length of a response written in place; SHMRPC_ETOOBIG if len
 * exceeds the capacity. */
SHMRPC_EXTERN int shmrpc_reply_commit(shmrpc_reply *reply, size_t len);
/* Marks the call failed with a positive application code (0 is replaced by
 * 1) and a message (truncated to SHMRPC_MESSAGE_MAX bytes; NULL for none).
 * Returns the code, so a handler can `return shmrpc_reply_error(...)`. */
SHMRPC_EXTERN int shmrpc_reply_error(shmrpc_reply *reply, int32_t code,
                                     const char *message);

/* Fails the call with a transport error instead of an answer, as if the
 * handler were the transport: the caller's shmrpc_call() returns `code`.
 * For handlers that forward calls elsewhere (a bridge), so that a remote
 * "timed out" or "server died" reaches the caller as that. Allowed codes:
 * SHMRPC_ETIMEDOUT, SHMRPC_ENOSERVER, SHMRPC_ESERVERDIED, SHMRPC_ESHUTDOWN,
 * SHMRPC_ENOMETHOD, SHMRPC_ETOOBIG, SHMRPC_EACCES, SHMRPC_EUNTRUSTED,
 * SHMRPC_EAGAIN and SHMRPC_ECANCELED. SHMRPC_EPROTO is not among them: it
 * means the caller's own shared memory was damaged. Any other code
 * (SHMRPC_EINVAL included) is refused with SHMRPC_EINVAL and changes
 * nothing. Returns code, so a handler can `return shmrpc_reply_fail(...)`.
 * A response or application error set before is dropped. */
SHMRPC_EXTERN int shmrpc_reply_fail(shmrpc_reply *reply, int code);

/* The method id the caller called: the same for every call of a handler
 * registered with shmrpc_server_register(), any id for a fallback. */
SHMRPC_EXTERN uint32_t shmrpc_reply_method(const shmrpc_reply *reply);

/* Milliseconds left before the caller stops waiting for this call, at the
 * moment of asking: 0 once past, SHMRPC_INFINITE if it waits forever.
 * Where the caller had not read its clock before posting (it found a lane
 * at once), its timeout counts from the first time the handler asks. A
 * handler that forwards the call passes this on, so that the far side never
 * works past the caller's deadline. */
SHMRPC_EXTERN int32_t shmrpc_reply_timeout(shmrpc_reply *reply);

/*
 * Creates the service `name` and publishes it. options may be NULL.
 * Errors: SHMRPC_EINVAL (bad name or option), SHMRPC_EEXIST (a live server
 * serves the name), SHMRPC_EACCES (another user holds the name, or this
 * user may not create it), SHMRPC_EPROTO (something that is not a shmrpc
 * object holds it), SHMRPC_ENOSPC (not enough shared memory: the memory is
 * reserved now, so a full /dev/shm fails here and never kills a process
 * later), SHMRPC_ENOMEM, SHMRPC_EOS; shmrpc_error_message() says more. A
 * name left behind by a server that died is taken over, whatever its bytes.
 */
SHMRPC_EXTERN int shmrpc_server_create(shmrpc_server **out, const char *name,
                                       const shmrpc_server_options *options);

/* Registers handler for method (below SHMRPC_METHOD_RESERVED) with a short
 * name (copied). Call before serving. SHMRPC_EEXIST if the id is taken,
 * SHMRPC_EINVAL for a reserved id or NULL handler. */
SHMRPC_EXTERN int shmrpc_server_register(shmrpc_server *server,
                                         uint32_t method, const char *name,
                                         shmrpc_handler handler,
                                         void *user_data);

/* Registers handler for every method id that no handler was registered
 * for, the built-in ping and list methods included (the server then no
 * longer answers those itself): a bridge forwards them all. The handler
 * learns the id from shmrpc_reply_method(). Call before serving; a second
 * call replaces the first. SHMRPC_EINVAL for a NULL server or handler. */
SHMRPC_EXTERN int shmrpc_server_set_fallback(shmrpc_server *server,
                                             shmrpc_handler handler,
                                             void *user_data);

/* Serves calls until shmrpc_server_stop(), on options.workers threads: this
 * one and workers - 1 it starts and joins before it returns. Returns 0 once
 * stopped; SHMRPC_EINVAL for a forked copy of the server (see
 * shmrpc_server_destroy) or a server already running. */
SHMRPC_EXTERN int shmrpc_server_run(shmrpc_server *server);

/* Serves at most one call on this thread, waiting up to timeout_ms for it.
 * Returns 0 when a call was served, SHMRPC_ETIMEDOUT when none came,
 * SHMRPC_ESHUTDOWN once stopped. */
SHMRPC_EXTERN int shmrpc_server_run_once(shmrpc_server *server,
                                         int32_t timeout_ms);

/*
 * A server inside an event loop: shmrpc_server_waitable gives the object to
 * wait on (a file descriptor to poll for reading on POSIX, a HANDLE for
 * WaitForMultipleObjects on Windows), and shmrpc_server_dispatch serves the
 * calls posted now on the calling thread, without waiting, and returns how
 * many it served (or SHMRPC_ESHUTDOWN once stopped). Call dispatch when the
 * waitable is ready, and at least every 250 ms (so that the server repairs
 * what a writer may have changed). A caller's post makes the waitable ready
 * only while the server waits in its loop; a busy pair makes no system
 * call. Not together with shmrpc_server_run() or run_once() (SHMRPC_EINVAL).
 */
SHMRPC_EXTERN int shmrpc_server_waitable(shmrpc_server *server,
                                         shmrpc_waitable *out);
SHMRPC_EXTERN int shmrpc_server_dispatch(shmrpc_server *server);

/* Asks the workers to return after the calls in progress, and wakes an
 * event loop waiting on the server's waitable. Safe from any thread and
 * from a signal handler. */
SHMRPC_EXTERN void shmrpc_server_stop(shmrpc_server *server);

/* Stops serving: a call still posted is answered SHMRPC_ESHUTDOWN, waiting
 * callers get SHMRPC_ESHUTDOWN, every name the server created is removed, and
 * the handle is freed. Called while shmrpc_server_run() runs on another
 * thread, it stops the workers and waits for the handlers in progress
 * first. In a child that fork() made, it frees the handle and leaves the
 * parent's service alone. */
SHMRPC_EXTERN void shmrpc_server_destroy(shmrpc_server *server);

/* Counters of a service. */
typedef struct shmrpc_stats {
  uint64_t calls;          /* calls answered, built-ins included */
  uint64_t app_errors;     /* calls a handler failed */
  uint64_t timeouts;       /* calls that timed out in a client, as clients
                              reported them */
  uint64_t recoveries;     /* lane locks taken over from dead clients, as
                              clients reported them */
  uint64_t bytes_in;       /* request bytes received */
  uint64_t bytes_out;      /* response bytes sent */
  uint64_t uptime_ms;      /* since the server started */
  uint64_t repairs;        /* repair passes that put back something a
                              writer had changed */
} shmrpc_stats;

/* Copies the service's counters into *out. Returns 0, or SHMRPC_EINVAL for
 * a NULL argument or a fork child's copy of the server. Safe while the
 * server serves on other threads; the counters may be mid-update by calls
 * in progress. */
SHMRPC_EXTERN int shmrpc_server_stats(const shmrpc_server *server,
                                      shmrpc_stats *out);

/* ---- Client ------------------------------------------------------------ */

typedef struct shmrpc_client shmrpc_client;

typedef struct shmrpc_client_options {
  /* Windows only: look for the service in Global\ instead of Local\. */
  int global_namespace;
  /* Spin window while waiting for the response, in microseconds; -1 means
   * the default, 0 never spins, at most SHMRPC_MAX_SPIN_US. A request of
   * 64 KiB or more spins longer, by twice the time this side takes to copy
   * it (the server copies it before its handler runs): at most 32 times
   * spin_us more, and within SHMRPC_MAX_SPIN_US in all. */
  int32_t spin_us;
  /* The user the server must run as: a name or a numeric id (POSIX), an
   * account name or a SID string such as "S-1-5-18" (Windows). NULL (the
   * default) trusts this user and the administrator (root, SYSTEM or the
   * Administrators group). A service owned by anyone else is refused with
   * SHMRPC_EUNTRUSTED, so that no other user can stand in for the server. */
  const char *server_user;
} shmrpc_client_options;

/* Fills *options with the defaults (Local\ namespace, default spin, trust
 * this user and the administrator). */
SHMRPC_EXTERN void shmrpc_client_options_init(shmrpc_client_options *options);

/*
 * Opens the service `name`, waiting up to timeout_ms for its server to
 * appear. options may be NULL. Errors: SHMRPC_EINVAL, SHMRPC_ENOSERVER (no
 * live server by the deadline), SHMRPC_EACCES, SHMRPC_EUNTRUSTED (the
 * service belongs to a user this client does not trust: name it in
 * options.server_user to trust it), SHMRPC_EPROTO, SHMRPC_ENOMEM;
 * shmrpc_error_message() says more.
 *
 * A handle is thread-safe: any number of threads may call through it at
 * once, each call on its own lane.
 */
SHMRPC_EXTERN int shmrpc_client_open(shmrpc_client **out, const char *name,
                                     const shmrpc_client_options *options,
                                     int32_t timeout_ms);

/*
 * Calls method with request_len bytes of request and waits up to timeout_ms
 * for the answer, which is copied into response (response_cap bytes); its
 * length goes to *response_len (may be NULL). The timeout covers waiting
 * for a free lane, for a reconnection, and for the answer. A call that
 * wakes a sleeping server yields the CPU once (as shmrpc_call_start does),
 * so other threads may run before it returns.
 *
 * With SHMRPC_NOWAIT the call waits for nothing but its answer: if no lane
 * is free right now (or no server runs), it fails at once with
 * SHMRPC_EAGAIN (or SHMRPC_ENOSERVER) without being sent; otherwise it is
 * sent and its answer awaited for as long as the server lives (a server
 * that dies or stops still ends the wait). So the result never depends on
 * whether the server happened to be spinning.
 *
 * Returns 0 on success, or:
 * - SHMRPC_EAPP: the handler failed; see shmrpc_client_app_error().
 * - SHMRPC_ENOMETHOD: the server has no such method.
 * - SHMRPC_ETOOBIG: the request exceeds the slot (nothing was sent), or the
 *   response exceeds response_cap (nothing was copied; *response_len holds
 *   the size needed).
 * - SHMRPC_ETIMEDOUT: no answer in time; a late answer is never delivered
 *   to a later call.
 * - SHMRPC_EAGAIN: SHMRPC_NOWAIT and every lane was taken.
 * - SHMRPC_ESERVERDIED / SHMRPC_ESHUTDOWN: the server died or stopped. Each
 *   call that was waiting reports it; the next call reconnects to a new
 *   server of the same name if one runs (or fails with SHMRPC_ENOSERVER). A
 *   handler that forwards calls (see shmrpc_reply_fail) can also answer with
 *   SHMRPC_ETIMEDOUT, SHMRPC_ENOSERVER or SHMRPC_ESERVERDIED for the far
 *   side; such an answer leaves the handle connected.
 * - SHMRPC_EINVAL for bad arguments, or a handle being closed.
 *
 * In a child that fork() made, a handle inherited from the parent
 * reconnects on its first call as a new client of the service.
 */
SHMRPC_EXTERN int shmrpc_call(shmrpc_client *client, uint32_t method,
                              const void *request, size_t request_len,
                              void *response, size_t response_cap,
                              size_t *response_len, int32_t timeout_ms);

/* After SHMRPC_EAPP: the handler's code (positive) and message ("" if none)
 * of the last call the calling thread made through this handle. The message
 * stays valid until this thread's next call. 0 if that call did not fail
 * with SHMRPC_EAPP. */
SHMRPC_EXTERN int32_t shmrpc_client_app_error(const shmrpc_client *client,
                                              const char **message);

/* The slot capacity of the connected service (0 if disconnected). */
SHMRPC_EXTERN size_t shmrpc_client_capacity(const shmrpc_client *client);

/* Closes the handle and frees it; NULL does nothing. Calls in progress on
 * other threads finish first (the handle is freed when the last returns);
 * no call may start on the handle once close has begun. */
SHMRPC_EXTERN void shmrpc_client_close(shmrpc_client *client);

/* ---- Calls that do not block ------------------------------------------- */

/* A call in flight, started by shmrpc_call_start(). */
typedef struct shmrpc_pending shmrpc_pending;

/*
 * Starts a call and returns at once with *out. The request is copied: the
 * buffer may be reused as soon as this returns. The call is posted on a free
 * lane now, or queued for one (first come, first served with every other
 * caller) and posted as soon as one frees. A post that wakes a sleeping
 * server yields the CPU once (the woken server may be queued on it), unless
 * the lane rang a sleeping server less than 1 ms before, so it may return
 * after other threads ran. timeout_ms covers the whole call,
 * counted from this function (a call posted at once counts it from just
 * after its post and that yield): queueing, the server's work and the
 * answer; with SHMRPC_NOWAIT
 * it fails at once with SHMRPC_EAGAIN if no lane is free, else waits for
 * its answer for as long as the server lives, as shmrpc_call does.
 *
 * A handle may have any number of calls in flight, from any number of
 * threads; at most one per lane is posted at a time, the rest queue. Each
 * call belongs to the thread that started it: poll, wait, finish and cancel
 * it on that thread (elsewhere they fail with SHMRPC_EINVAL), and end every
 * call with shmrpc_pending_finish() or shmrpc_pending_cancel().
 *
 * Errors (and *out NULL): SHMRPC_EINVAL, SHMRPC_ETOOBIG (the request
 * exceeds the slot), SHMRPC_ENOSERVER (not connected, and no server to
 * reconnect to right now: it never waits for one), SHMRPC_EAGAIN, SHMRPC_ENOMEM.
 * shmrpc_call(client, ...) is shmrpc_call_start + shmrpc_pending_wait +
 * shmrpc_pending_finish, without the allocation.
 */
SHMRPC_EXTERN int shmrpc_call_start(shmrpc_client *client, uint32_t method,
                                    const void *request, size_t request_len,
                                    int32_t timeout_ms, shmrpc_pending **out);

/* Looks at the call without waiting (and posts it if it was queued and a
 * lane is free). Returns 1 once it is over (answered, failed or timed out:
 * shmrpc_pending_finish says which), 0 while it is in flight, SHMRPC_EINVAL
 * for NULL or a call of another thread. Costs no system call while the
 * answer is on its way, bar a look at the server's liveness every 20 ms. */
SHMRPC_EXTERN int shmrpc_pending_poll(shmrpc_pending *call);

/* Waits up to timeout_ms for the call to be over, spinning then sleeping as
 * shmrpc_call does. Returns 1 once it is over, 0 if it is still in flight
 * when timeout_ms ends (the call goes on, to its own deadline),
 * SHMRPC_EINVAL. */
SHMRPC_EXTERN int shmrpc_pending_wait(shmrpc_pending *call, int32_t timeout_ms);

/* Ends a call that is over and frees it: returns what shmrpc_call would
 * have returned, with the response copied into response (response_cap
 * bytes) and its length in *response_len (may be NULL); after SHMRPC_EAPP,
 * shmrpc_client_app_error() has the handler's code and message. A call
 * still in flight is left alone: SHMRPC_EAGAIN. SHMRPC_EINVAL for NULL or a
 * call of another thread. */
SHMRPC_EXTERN int shmrpc_pending_finish(shmrpc_pending *call, void *response,
                                        size_t response_cap,
                                        size_t *response_len);

/* Gives up a call, over or not, and frees it. A call the server has not
 * taken yet is withdrawn and never runs; one it has taken runs to its end,
 * and its answer is dropped (never delivered to another call). Returns 0, or
 * SHMRPC_EINVAL (nothing done) for a call of another thread; NULL does
 * nothing. */
SHMRPC_EXTERN int shmrpc_pending_cancel(shmrpc_pending *call);

/*
 * The handle's waitable, for an event loop: a file descriptor to poll for
 * reading on POSIX, an event HANDLE for WaitForMultipleObjects on Windows.
 * The same for the life of the handle (a fork() child asks again: it gets
 * its own). Before each wait on it, call shmrpc_client_arm(): it returns
 * how many of the calling thread's calls through the handle are over
 * already (then do not sleep: poll them), or 0 once the waitable is set to
 * turn ready when one of them is answered, fails (the server died or
 * stopped) or reaches its deadline, or a queued one may get a lane. After
 * the wait, poll the calls. Only an armed wait costs the server a system
 * call to wake it; calls that are polled, or waited for, cost nothing
 * extra. Errors: SHMRPC_EINVAL, SHMRPC_ENOSERVER (never connected),
 * SHMRPC_EOS.
 */
SHMRPC_EXTERN int shmrpc_client_waitable(shmrpc_client *client,
                                         shmrpc_waitable *out);
SHMRPC_EXTERN int shmrpc_client_arm(shmrpc_client *client);

/* ---- Services ---------------------------------------------------------- */

/* Removes the names a dead server left behind (a new server takes them
 * over anyway; this is for tidying up), whatever their bytes. Returns 0 if
 * removed or absent, SHMRPC_EEXIST if a live server serves the name,
 * SHMRPC_EACCES or SHMRPC_EPROTO if the names are not this user's shmrpc
 * service, SHMRPC_EINVAL for a bad name. On Windows names vanish with
 * their last handle. */
SHMRPC_EXTERN int shmrpc_service_clean(const char *name, int global_namespace);

/* One lane, as shmrpc_service_query sees it. */
typedef struct shmrpc_lane_info {
  int state;             /* 0 idle, 1 posted (waiting for the server),
                            2 busy (the server runs its handler) */
  int lock_held;         /* 1 while a caller holds the lane */
  int lock_owner_alive;  /* 1 if that caller's process lives */
  uint64_t lock_held_ms; /* for about how long the same caller has held it,
                            as the server last saw it (0 if free) */
  uint64_t calls;        /* calls answered on this lane */
} shmrpc_lane_info;

/* What shmrpc_service_query reports of a service, alive or not. The counts
 * come from the server area, as the server wrote them. */
typedef struct shmrpc_service_info {
  int alive;             /* 1 while its server holds the name */
  int complete;          /* 0 for names a server is still creating, or left
                            half made when it died: nothing else is set */
  uint32_t server_pid;   /* as the server wrote it (diagnostics only) */
  uint32_t capacity;     /* slot capacity in bytes */
  uint64_t generation;   /* random per server instance */
  int slot_state;        /* the busiest lane's state (see shmrpc_lane_info) */
  shmrpc_stats stats;    /* uptime_ms is 0 for a dead server */
  uint32_t lanes;        /* lanes of the service */
  uint32_t workers;      /* the server's worker threads */
  uint32_t queued;       /* callers waiting for a lane */
  char owner[64];        /* the user that owns the names */
  int own;               /* 1 if that is the calling user */
  shmrpc_lane_info lane[SHMRPC_MAX_LANES]; /* the first `lanes` are set */
} shmrpc_service_info;

/* Reads the server area of service `name` without calling it.
 * SHMRPC_ENOSERVER if no such names exist; SHMRPC_EACCES, SHMRPC_EPROTO. */
SHMRPC_EXTERN int shmrpc_service_query(const char *name, int global_namespace,
                                       shmrpc_service_info *out);

/* Calls fn(name, ctx) for every service name of the local namespace (Linux:
 * the shmrpc.* entries of /dev/shm), live or stale; a non-zero return from
 * fn stops the walk. Returns 0, or SHMRPC_EOS where the platform cannot
 * enumerate named objects (Windows). */
SHMRPC_EXTERN int shmrpc_service_list(int (*fn)(const char *name, void *ctx),
                                      void *ctx);

/* Returns 0 if name is a valid service name, else SHMRPC_EINVAL. */
SHMRPC_EXTERN int shmrpc_name_check(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* SHMRPC_H */
