/*
 * Lanes of the Win32 backend: each lane's lock is a named mutex. The kernel
 * keeps it outside the mapping (no writer of the mapping can touch it),
 * marks it abandoned when its owner dies, and wakes its waiters: the queue
 * of callers is the kernel's own, roughly first come, first served (Windows
 * does not promise the order, and a caller's first try takes a free lane
 * ahead of the waiters).
 *
 * A Win32 mutex belongs to a thread and is recursive, so a lane is released
 * on the thread that took it, and a thread never takes a lane its
 * connection already holds (a recursive acquisition would put two calls on
 * one lane): `holding` says which.
 */
#include "win32.h"

#include <string.h>

typedef LONG win32_ntstatus;
typedef struct win32_mutant_info {
  LONG current_count; /* 1 free, <= 0 owned */
  BOOLEAN owned_by_caller;
  BOOLEAN abandoned;
} win32_mutant_info;
typedef win32_ntstatus(NTAPI *win32_query_mutant)(HANDLE, int, PVOID, ULONG,
                                                  PULONG);

int win32_mutex_owned(HANDLE mutex, int *abandoned) {
  static win32_query_mutant query;
  win32_mutant_info info;
  ULONG len = 0;
  if (query == NULL) {
    HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
    FARPROC found =
        ntdll != NULL ? GetProcAddress(ntdll, "NtQueryMutant") : NULL;
    memcpy(&query, &found, sizeof query);
    if (query == NULL)
      return -1;
  }
  memset(&info, 0, sizeof info);
  WIN32_COUNT_SYSCALL();
  if (query(mutex, 0 /* MutantBasicInformation */, &info, sizeof info, &len) <
      0)
    return -1;
  *abandoned = info.abandoned != 0;
  return info.current_count <= 0 && !info.abandoned ? 1 : 0;
}

/* take()'s answer for a lane it could not take. */
#define LANE_BUSY 2

/* Takes lane `lane` without waiting: 0, SHMRPC__ABANDONED or LANE_BUSY. */
static int take(shmrpc__os_service *service, uint32_t lane) {
  DWORD waited;
  if (InterlockedCompareExchange(&service->holding[lane], 0, 0) != 0)
    return LANE_BUSY; /* ours already, on some thread */
  WIN32_COUNT_SYSCALL();
  waited = WaitForSingleObject(service->lane_lock[lane], 0);
  if (waited != WAIT_OBJECT_0 && waited != WAIT_ABANDONED)
    return LANE_BUSY;
  if (InterlockedExchange(&service->holding[lane], 1) != 0) {
    /* Another thread of ours took it between the check and the wait. */
    ReleaseMutex(service->lane_lock[lane]);
    return LANE_BUSY;
  }
  return waited == WAIT_ABANDONED ? SHMRPC__ABANDONED : 0;
}

int shmrpc__os_lane_try(shmrpc__os_service *service, uint32_t hint,
                        uint32_t *lane) {
  uint32_t i, start = hint < service->lanes ? hint : 0;
  for (i = 0; i < service->lanes; i++) {
    uint32_t candidate = (start + i) % service->lanes;
    int rc = take(service, candidate);
    if (rc != LANE_BUSY) {
      *lane = candidate;
      return rc;
    }
  }
  return SHMRPC_EAGAIN;
}

int shmrpc__os_lane_wait(shmrpc__os_service *service,
                         shmrpc__os_lane_waiter *waiter, int32_t slice_ms,
                         uint32_t *lane) {
  HANDLE handles[SHMRPC_MAX_LANES];
  uint32_t index[SHMRPC_MAX_LANES], count = 0, i;
  DWORD waited;
  (void)waiter; /* the kernel keeps our place */
  for (i = 0; i < service->lanes; i++) {
    if (InterlockedCompareExchange(&service->holding[i], 0, 0) == 0) {
      handles[count] = service->lane_lock[i];
      index[count++] = i;
    }
  }
  if (count == 0) { /* this connection holds every lane */
    Sleep(slice_ms < 1 ? 0 : 1);
    return SHMRPC_ETIMEDOUT;
  }
  WIN32_COUNT_SYSCALL();
  waited = WaitForMultipleObjects(count, handles, FALSE, (DWORD)slice_ms);
  if (waited == WAIT_TIMEOUT)
    return SHMRPC_ETIMEDOUT;
  if (waited < WAIT_OBJECT_0 + count || (waited >= WAIT_ABANDONED_0 &&
                                         waited < WAIT_ABANDONED_0 + count)) {
    int abandoned = waited >= WAIT_ABANDONED_0;
    uint32_t got = index[waited - (abandoned ? WAIT_ABANDONED_0 : WAIT_OBJECT_0)];
    if (InterlockedExchange(&service->holding[got], 1) != 0) {
      ReleaseMutex(service->lane_lock[got]);
      return SHMRPC_ETIMEDOUT;
    }
    *lane = got;
    return abandoned ? SHMRPC__ABANDONED : 0;
  }
  return shmrpc__error_detail(SHMRPC_EOS, "waiting for a lane: error %lu",
                              (unsigned long)GetLastError());
}

int shmrpc__os_lane_poll(shmrpc__os_service *service,
                         shmrpc__os_lane_waiter *waiter, int32_t slice_ms,
                         uint32_t *lane) {
  (void)waiter; /* the kernel's queue has no place for one who does not wait */
  (void)slice_ms;
  return shmrpc__os_lane_try(
      service, (uint32_t)(shmrpc__os_random64() % service->lanes), lane);
}

void shmrpc__os_lane_wait_end(shmrpc__os_service *service,
                              shmrpc__os_lane_waiter *waiter) {
  (void)service;
  (void)waiter;
}

SHMRPC__HOT void shmrpc__os_lane_release(shmrpc__os_service *service,
                                         uint32_t lane) {
  InterlockedExchange(&service->holding[lane], 0);
  WIN32_COUNT_SYSCALL();
  ReleaseMutex(service->lane_lock[lane]);
}

int shmrpc__os_lane_query(shmrpc__os_service *service, uint32_t lane,
                          shmrpc__os_lane_info *out) {
  int abandoned = 0, owned;
  memset(out, 0, sizeof *out);
  if (lane >= service->lanes || service->lane_lock[lane] == NULL)
    return SHMRPC_EINVAL;
  owned = win32_mutex_owned(service->lane_lock[lane], &abandoned);
  if (owned < 0)
    return SHMRPC_EOS;
  out->held = owned || abandoned;
  out->owner_alive = owned;
  out->owner = out->held ? 1u : 0u;
  return 0;
}

int shmrpc__os_lane_recover(shmrpc__os_service *service, uint32_t lane) {
  int abandoned = 0;
  if (lane >= service->lanes || service->lane_lock[lane] == NULL ||
      win32_mutex_owned(service->lane_lock[lane], &abandoned) != 0 ||
      !abandoned)
    return 0;
  /* Take the abandoned mutex and let it go: the next caller then takes a
   * plain free lane, and repairs its slot. */
  if (WaitForSingleObject(service->lane_lock[lane], 0) != WAIT_ABANDONED)
    return 0;
  ReleaseMutex(service->lane_lock[lane]);
  return 1;
}

void shmrpc__os_queue_wake(shmrpc__os_service *service) { (void)service; }

uint32_t shmrpc__os_queue_length(shmrpc__os_service *service) {
  (void)service; /* the kernel's queue cannot be counted */
  return 0;
}
