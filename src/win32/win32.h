/*
 * The Win32 backend's own declarations, shared by the files of src/win32/
 * and by nothing else.
 *
 * A service NAME is these named kernel objects in Local\ (or Global\):
 *
 *   shmrpc.NAME.map     the server section: a 64-byte backend prefix, then
 *                       the server area. Others get read-only rights
 *                       (SECTION_MAP_READ), so no caller can forge an answer.
 *   shmrpc.NAME.calls   the calls section: the calls area, read-write for
 *                       whoever may call.
 *   shmrpc.NAME.alive   the liveness token: a mutex a server thread owns for
 *                       the service's lifetime. Others get MUTANT_QUERY_STATE
 *                       only: they read its state with NtQueryMutant, and
 *                       cannot wait on it, so no client can acquire it, fake
 *                       a live server or keep a new one from starting.
 *   shmrpc.NAME.req     the doorbell: a semaphore (each ring wakes one
 *                       worker, and none is lost); the server's waitable.
 *   shmrpc.NAME.lockK   lane K's lock: a mutex (the kernel marks it abandoned
 *                       if its owner dies; it wakes its waiters
 *                       roughly in the order they came, which Windows does
 *                       not promise).
 *   shmrpc.NAME.respK   lane K's response event (auto-reset).
 *   shmrpc.NAME.wID     a client handle's waitable (an auto-reset event it
 *                       makes, which the server's user may set; loop.c).
 *
 * Every object gets an explicit security descriptor (never a NULL DACL),
 * owned by its creator; handles are never inheritable, so a child process
 * never holds a server's token. Windows removes a named object with its
 * last handle: a dead server's names live only while a client still holds
 * them, and the next server takes them over.
 */
#ifndef SHMRPC_WIN32_H
#define SHMRPC_WIN32_H

#define WIN32_LEAN_AND_MEAN
#ifndef UNICODE
#define UNICODE
#endif
#ifndef _UNICODE
#define _UNICODE
#endif
#if !defined(_WIN32_WINNT) || _WIN32_WINNT < 0x0601
#undef _WIN32_WINNT
#define _WIN32_WINNT 0x0601
#endif

#include <windows.h>

#include <stddef.h>
#include <stdint.h>

#include "../atomic.h"
#include "../core.h"
#include "../os.h"

#define WIN32_PREFIX_MAGIC 0x57435253u /* "SRCW" */
#define WIN32_PREFIX_VERSION 2u
#define WIN32_PREFIX_SIZE 64u

/* Longest object name: "Global\shmrpc." + name + ".resp63" + NUL. */
#define WIN32_OBJECT_NAME_MAX (SHMRPC_NAME_MAX + 40)

/* The server section's first 64 bytes. Only the server writes them. */
typedef struct win32_prefix {
  uint32_t magic;        /* WIN32_PREFIX_MAGIC, stored last by the creator */
  uint32_t version;      /* WIN32_PREFIX_VERSION */
  uint32_t lanes;
  uint32_t creator_pid;  /* for diagnostics only, never for liveness */
  uint64_t server_bytes; /* the server area's bytes (after the prefix) */
  uint64_t calls_bytes;  /* the calls area's bytes */
  uint64_t generation;
  uint8_t pad[WIN32_PREFIX_SIZE - 40];
} win32_prefix;

/* The kinds of object, for rights and security descriptors. */
enum win32_kind {
  WIN32_SERVER_SECTION,
  WIN32_CALLS_SECTION,
  WIN32_TOKEN,
  WIN32_DOORBELL,
  WIN32_LANE_LOCK,
  WIN32_LANE_EVENT,
  WIN32_WAKER
};

enum win32_role { WIN32_CREATOR = 1, WIN32_CLIENT = 2, WIN32_INSPECTOR = 3 };

struct shmrpc__os_service {
  int role;                  /* enum win32_role */
  uint32_t lanes;
  HANDLE server_section;
  unsigned char *server_view; /* the prefix, then the server area */
  size_t server_view_size;
  HANDLE calls_section;
  unsigned char *calls_view;
  size_t calls_view_size;
  HANDLE alive;              /* the liveness token */
  HANDLE doorbell;           /* the request semaphore */
  HANDLE lane_lock[SHMRPC_MAX_LANES];
  HANDLE lane_event[SHMRPC_MAX_LANES];
  HANDLE token_thread;       /* creator: the thread that owns `alive` */
  HANDLE token_stop;         /* creator: tells token_thread to let go */
  HANDLE token_decided;      /* creator: token_thread has tried to take it */
  volatile LONG token_owned; /* creator: token_thread owns `alive` */
  win32_prefix expected;     /* creator: what its prefix must say */
  uint32_t lane_waker_id[SHMRPC_MAX_LANES]; /* creator: cached per lane */
  HANDLE lane_waker[SHMRPC_MAX_LANES];
  void *owner_sid;           /* the names' owner (LocalAlloc'ed) */
  int global_namespace;
  char name[SHMRPC_NAME_MAX + 1];
  /* Client: the lanes this connection holds. A Win32 mutex is recursive,
   * so a thread must not take a lane it already holds. */
  volatile LONG holding[SHMRPC_MAX_LANES];
};

/* ---- service.c --------------------------------------------------------- */

/* Local\shmrpc.NAME + suffix, as a wide string. */
int win32_object_name(const shmrpc__os_service *service, const wchar_t *suffix,
                      uint32_t index, int with_index, wchar_t *out,
                      size_t cap);
/* An error code for a failed Create* or Open*, with a detail. */
int win32_error(DWORD error, const char *what, const char *name);
/* The security descriptor for a new object of `kind` (LocalFree it). */
int win32_descriptor(enum win32_kind kind, int access, void *grantee_sid,
                     PSECURITY_DESCRIPTOR *out);

/* Test builds count the system calls the backend makes (test hook). */
#ifdef SHMRPC_FAULT_INJECTION
#define WIN32_COUNT_SYSCALL() shmrpc__test_count_syscall()
#else
#define WIN32_COUNT_SYSCALL() ((void)0)
#endif

/* ---- lane.c ------------------------------------------------------------ */

/* NtQueryMutant: 1 if a live thread owns the mutex, 0 if it is free or was
 * abandoned, -1 if it cannot be told. */
int win32_mutex_owned(HANDLE mutex, int *abandoned);

#endif /* SHMRPC_WIN32_H */
