/*
 * The platform contract. Every backend (src/posix/, src/win32/) implements
 * each function below; the core calls nothing else of the operating system.
 *
 * A *service* is the set of named kernel objects behind one service name: a
 * shared mapping, the slot mutex, the request and response events, and a
 * liveness token the server holds for as long as it serves. The backend owns
 * how they are named and laid out; the core sees only the *area*, the part
 * of the mapping that holds the control block and the payload.
 *
 * Functions return 0 or a negative SHMRPC_E* code unless said otherwise.
 */
#ifndef SHMRPC_OS_H
#define SHMRPC_OS_H

#include <stddef.h>
#include <stdint.h>

#include "shmrpc.h"

typedef struct shmrpc__os_service shmrpc__os_service;

/* Returned by shmrpc__os_slot_lock when the previous owner died holding the
 * mutex: the caller owns it now and must repair what it guards. */
#define SHMRPC__ABANDONED 1

/* The two auto-reset events of a service. */
enum shmrpc__os_event { SHMRPC__EVENT_REQUEST = 0, SHMRPC__EVENT_RESPONSE = 1 };

typedef struct shmrpc__os_create_options {
  size_t area_size;     /* bytes the core needs in the area */
  int access;           /* SHMRPC_ACCESS_* */
  int global_namespace; /* Windows: Global\ instead of Local\ */
} shmrpc__os_create_options;

/*
 * shmrpc__os_service_create creates every object of the service `name` (a
 * name already checked by shmrpc_name_check) with the requested access, and
 * takes the liveness token, which the process then holds until
 * shmrpc__os_service_close or its death. If the names exist and their
 * liveness token is free (the old server died), they are taken over; if the
 * token is held, it returns SHMRPC_EEXIST; if they belong to another user or
 * are not shmrpc objects, SHMRPC_EPROTO (or SHMRPC_EACCES if they cannot be
 * opened). On success *area points at area_size zeroed bytes, aligned to 64.
 * Only the server calls it.
 */
int shmrpc__os_service_create(const char *name,
                              const shmrpc__os_create_options *options,
                              shmrpc__os_service **out, void **area);

/*
 * shmrpc__os_service_open opens the existing service `name` without waiting.
 * SHMRPC_ENOSERVER if the names do not exist or their liveness token is free,
 * SHMRPC_EACCES if this user may not open them, SHMRPC_EPROTO if they are
 * not a well-formed shmrpc service owned by this user (or by root). On
 * success *area and *area_size describe the area (the core validates its
 * content). Clients call it.
 */
int shmrpc__os_service_open(const char *name, int global_namespace,
                            shmrpc__os_service **out, void **area,
                            size_t *area_size);

/*
 * shmrpc__os_service_inspect opens like shmrpc__os_service_open but also a
 * service whose server is dead, for read-only diagnostics; *alive tells
 * which. The caller must not take the slot mutex through this handle.
 */
int shmrpc__os_service_inspect(const char *name, int global_namespace,
                               shmrpc__os_service **out, void **area,
                               size_t *area_size, int *alive);

/*
 * shmrpc__os_service_list calls fn(name, ctx) for every service name that
 * exists, stopping when fn returns non-zero. SHMRPC_EOS where named objects
 * cannot be enumerated.
 */
int shmrpc__os_service_list(int (*fn)(const char *name, void *ctx), void *ctx);

/*
 * shmrpc__os_service_close unmaps and closes everything. When the creator
 * closes, it also removes the names (only if they still are its own) and
 * releases the liveness token. NULL does nothing.
 */
void shmrpc__os_service_close(shmrpc__os_service *service);

/*
 * shmrpc__os_service_remove_stale removes the names of service `name` if they
 * exist and no live server holds them, applying the same ownership and
 * format checks as shmrpc__os_service_create. Returns 0 (removed, or nothing
 * to remove), SHMRPC_EEXIST if a live server holds them, SHMRPC_EACCES or
 * SHMRPC_EPROTO if they are not this user's shmrpc objects. Where names die
 * with their last handle (Windows), it only reports.
 */
int shmrpc__os_service_remove_stale(const char *name, int global_namespace);

/*
 * shmrpc__os_server_alive returns 1 while the server that created this
 * service still holds its liveness token, 0 once it has released it or
 * died. The answer comes from the kernel (a lock held by the server process),
 * never from a PID alone. It costs a system call: keep it off the hot path.
 */
int shmrpc__os_server_alive(shmrpc__os_service *service);

/*
 * shmrpc__os_slot_lock takes the slot mutex, waiting up to timeout_ms
 * (SHMRPC_INFINITE allowed). Returns 0 when acquired, SHMRPC__ABANDONED when
 * acquired from an owner that died, SHMRPC_ETIMEDOUT, or SHMRPC_EPROTO if the
 * mutex is unusable. The calling thread owns the mutex until it calls
 * shmrpc__os_slot_unlock.
 */
int shmrpc__os_slot_lock(shmrpc__os_service *service, int32_t timeout_ms);

/* shmrpc__os_slot_unlock releases the slot mutex; only its owner calls it. */
void shmrpc__os_slot_unlock(shmrpc__os_service *service);

/*
 * shmrpc__os_event_set signals an auto-reset event: one waiter wakes, or the
 * next wait returns at once if no one waits. Safe from a signal handler.
 */
void shmrpc__os_event_set(shmrpc__os_service *service,
                          enum shmrpc__os_event event);

/*
 * shmrpc__os_event_wait waits up to timeout_ms for the event and resets it.
 * Returns 0 when signalled, SHMRPC_ETIMEDOUT otherwise. It may return
 * either early (a spurious wake-up, a signal): callers re-check the state
 * they wait for and their own deadline.
 */
int shmrpc__os_event_wait(shmrpc__os_service *service,
                          enum shmrpc__os_event event, int32_t timeout_ms);

/* A monotonic clock in nanoseconds. */
uint64_t shmrpc__os_now_ns(void);

/* Sleeps about ms milliseconds (used to poll for a server to appear). */
void shmrpc__os_sleep_ms(int32_t ms);

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
