/*
 * shmrpc: fast, crash-safe request/response calls between processes on one
 * machine.
 *
 * A server publishes a service name. The name owns one shared-memory mapping
 * with a fixed request/response slot, guarded by a named mutex; two events
 * signal "request posted" and "response ready". Clients make blocking calls.
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
#define SHMRPC_VERSION_MINOR 1
#define SHMRPC_VERSION_PATCH 0
#define SHMRPC_VERSION_STRING "0.1.0"
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
  XX(EOS, -13, "operating system error")

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

/* ---- Limits and constants ---------------------------------------------- */

#define SHMRPC_INFINITE (-1)
#define SHMRPC_NOWAIT 0

/* Service names: 1 to SHMRPC_NAME_MAX characters of [A-Za-z0-9._-]. */
#define SHMRPC_NAME_MAX 64
/* Slot capacity (bytes of request and of response): default and bounds. */
#define SHMRPC_DEFAULT_CAPACITY (64u * 1024u)
#define SHMRPC_MAX_CAPACITY (256u * 1024u * 1024u)
/* Longest application error message, without its terminating NUL. */
#define SHMRPC_MESSAGE_MAX 255
/* Method ids from this value up are reserved for built-in methods. */
#define SHMRPC_METHOD_RESERVED 0xFFFF0000u
/* Built-in: answers with the request bytes unchanged (shmrpc ping). */
#define SHMRPC_METHOD_PING 0xFFFF0000u
/* Built-in: answers the registered methods, each as a u32 id followed by a
 * u32-length-prefixed name (shmrpc_payload.h reads them). */
#define SHMRPC_METHOD_LIST 0xFFFF0001u

/* Who may open a service (server option). */
enum shmrpc_access {
  SHMRPC_ACCESS_OWNER = 0,   /* the server's user only (default; 0600) */
  SHMRPC_ACCESS_GROUP = 1,   /* and its group (0660) */
  SHMRPC_ACCESS_EVERYONE = 2 /* every local user (0666) */
};

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
  /* How long the server spins for the next request before it sleeps in the
   * kernel, in microseconds; -1 means the default, 0 never spins. Spinning
   * is disabled on a single-CPU machine. */
  int32_t spin_us;
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
 * error 1 with that code's message. Handlers run on the thread that runs
 * shmrpc_server_run().
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
 * SHMRPC_ENOMETHOD, SHMRPC_ETOOBIG; anything else is SHMRPC_EINVAL and
 * changes nothing. Returns code, so a handler can `return
 * shmrpc_reply_fail(...)`. A response or application error set before is
 * dropped. */
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
 * serves the name), SHMRPC_EACCES, SHMRPC_EPROTO (the name is held by
 * something that is not a shmrpc service of this user), SHMRPC_ENOMEM,
 * SHMRPC_EOS. A name left behind by a server that died is taken over.
 */
SHMRPC_EXTERN int shmrpc_server_create(shmrpc_server **out, const char *name,
                                       const shmrpc_server_options *options);

/* Registers handler for method (below SHMRPC_METHOD_RESERVED) with a short
 * name (copied). Call before shmrpc_server_run(). SHMRPC_EEXIST if the id is
 * taken, SHMRPC_EINVAL for a reserved id or NULL handler. */
SHMRPC_EXTERN int shmrpc_server_register(shmrpc_server *server,
                                         uint32_t method, const char *name,
                                         shmrpc_handler handler,
                                         void *user_data);

/* Registers handler for every method id that no handler was registered
 * for, the built-in ping and list methods included (the server then no
 * longer answers those itself): a bridge forwards them all. The handler
 * learns the id from shmrpc_reply_method(). Call before
 * shmrpc_server_run(); a second call replaces the first. SHMRPC_EINVAL for
 * a NULL server or handler. */
SHMRPC_EXTERN int shmrpc_server_set_fallback(shmrpc_server *server,
                                             shmrpc_handler handler,
                                             void *user_data);

/* Serves calls until shmrpc_server_stop(). Returns 0 when stopped. */
SHMRPC_EXTERN int shmrpc_server_run(shmrpc_server *server);

/* Serves at most one call, waiting up to timeout_ms for it. Returns 0 when a
 * call was served, SHMRPC_ETIMEDOUT when none came, SHMRPC_ESHUTDOWN once
 * stopped. */
SHMRPC_EXTERN int shmrpc_server_run_once(shmrpc_server *server,
                                         int32_t timeout_ms);

/* Asks the loop to return after the call in progress. Safe from any thread
 * and from a signal handler. */
SHMRPC_EXTERN void shmrpc_server_stop(shmrpc_server *server);

/* Stops serving: a call still posted is answered SHMRPC_ESHUTDOWN, waiting
 * callers get SHMRPC_ESHUTDOWN, every name the server created is removed, and
 * the handle is freed. Do not call it while shmrpc_server_run() runs. */
SHMRPC_EXTERN void shmrpc_server_destroy(shmrpc_server *server);

/* Counters kept in the service's control block. */
typedef struct shmrpc_stats {
  uint64_t calls;          /* calls answered, built-ins included */
  uint64_t app_errors;     /* calls a handler failed */
  uint64_t timeouts;       /* calls that timed out in a client */
  uint64_t recoveries;     /* slot locks recovered from a dead client */
  uint64_t bytes_in;       /* request bytes received */
  uint64_t bytes_out;      /* response bytes sent */
  uint64_t uptime_ms;      /* since the server started */
  uint64_t repairs;        /* times the server put back a control block
                              that someone else had written over */
} shmrpc_stats;

/* Copies the service's counters into *out. Returns 0, or SHMRPC_EINVAL for
 * a NULL argument. Safe while shmrpc_server_run() runs on another thread;
 * the counters may be mid-update by a call in progress. */
SHMRPC_EXTERN int shmrpc_server_stats(const shmrpc_server *server,
                                      shmrpc_stats *out);

/* ---- Client ------------------------------------------------------------ */

typedef struct shmrpc_client shmrpc_client;

typedef struct shmrpc_client_options {
  /* Windows only: look for the service in Global\ instead of Local\. */
  int global_namespace;
  /* Spin window while waiting for the response, in microseconds; -1 means
   * the default, 0 never spins. */
  int32_t spin_us;
} shmrpc_client_options;

/* Fills *options with the defaults (Local\ namespace, default spin). */
SHMRPC_EXTERN void shmrpc_client_options_init(shmrpc_client_options *options);

/*
 * Opens the service `name`, waiting up to timeout_ms for its server to
 * appear. options may be NULL. Errors: SHMRPC_EINVAL, SHMRPC_ENOSERVER (no
 * live server by the deadline), SHMRPC_EACCES, SHMRPC_EPROTO, SHMRPC_ENOMEM.
 * A handle is used by one thread at a time; open one per thread.
 */
SHMRPC_EXTERN int shmrpc_client_open(shmrpc_client **out, const char *name,
                                     const shmrpc_client_options *options,
                                     int32_t timeout_ms);

/*
 * Calls method with request_len bytes of request and waits up to timeout_ms
 * for the answer, which is copied into response (response_cap bytes); its
 * length goes to *response_len (may be NULL).
 *
 * Returns 0 on success, or:
 * - SHMRPC_EAPP: the handler failed; see shmrpc_client_app_error().
 * - SHMRPC_ENOMETHOD: the server has no such method.
 * - SHMRPC_ETOOBIG: the request exceeds the slot (nothing was sent), or the
 *   response exceeds response_cap (nothing was copied; *response_len holds
 *   the size needed).
 * - SHMRPC_ETIMEDOUT: no answer in time; a late answer is never delivered
 *   to a later call.
 * - SHMRPC_ESERVERDIED / SHMRPC_ESHUTDOWN: the server died or stopped. The
 *   handle reports it once; the next call reconnects to a new server of the
 *   same name if one runs (or fails with SHMRPC_ENOSERVER). A handler that
 *   forwards calls (see shmrpc_reply_fail) can also answer with
 *   SHMRPC_ETIMEDOUT, SHMRPC_ENOSERVER or SHMRPC_ESERVERDIED for the far
 *   side; such an answer leaves the handle connected.
 * - SHMRPC_EINVAL for bad arguments.
 */
SHMRPC_EXTERN int shmrpc_call(shmrpc_client *client, uint32_t method,
                              const void *request, size_t request_len,
                              void *response, size_t response_cap,
                              size_t *response_len, int32_t timeout_ms);

/* After SHMRPC_EAPP: the handler's code (positive) and message ("" if none).
 * The message stays valid until the next call on this handle. */
SHMRPC_EXTERN int32_t shmrpc_client_app_error(const shmrpc_client *client,
                                              const char **message);

/* The slot capacity of the connected service (0 if disconnected). */
SHMRPC_EXTERN size_t shmrpc_client_capacity(const shmrpc_client *client);

/* Closes the handle and frees it; NULL does nothing. Never call it while
 * another thread is inside shmrpc_call() on the same handle. */
SHMRPC_EXTERN void shmrpc_client_close(shmrpc_client *client);

/* Removes the names a dead server left behind (a new server takes them
 * over anyway; this is for tidying up). Returns 0 if removed or absent,
 * SHMRPC_EEXIST if a live server serves the name, SHMRPC_EACCES or
 * SHMRPC_EPROTO if the names are not this user's shmrpc service, SHMRPC_EINVAL
 * for a bad name. On Windows names vanish with their last handle. */
SHMRPC_EXTERN int shmrpc_service_clean(const char *name, int global_namespace);

/* What shmrpc_service_query reports of a service, alive or not. The counts
 * come from the service's control block, as the server wrote them. */
typedef struct shmrpc_service_info {
  int alive;             /* 1 while its server holds the name */
  uint32_t server_pid;   /* as the server wrote it (diagnostics only) */
  uint32_t capacity;     /* slot capacity in bytes */
  uint64_t generation;   /* random per server instance */
  int slot_state;        /* 0 idle, 1 posted (waiting for the server),
                            2 busy (the server runs a handler) */
  shmrpc_stats stats;    /* uptime_ms is 0 for a dead server */
} shmrpc_service_info;

/* Reads the control block of service `name` without calling it.
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
