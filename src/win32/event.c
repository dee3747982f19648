/*
 * Events and waitables of the Win32 backend. The doorbell is a semaphore,
 * so that each ring wakes one sleeping worker and none is lost; a lane's
 * response event is an auto-reset event (never PulseEvent), which keeps a
 * set that comes before the wait. A client's waitable is a loop (loop.c).
 */
#include "win32.h"

#include <stdio.h>
#include <string.h>

#define REQUEST_LANE UINT32_MAX

static HANDLE event_handle(shmrpc__os_service *service, int event) {
  return event == SHMRPC__EVENT_REQUEST ? service->doorbell
                                        : service->lane_event[event - 1];
}

uint32_t shmrpc__os_event_prepare(shmrpc__os_service *service, int event) {
  (void)service; /* the kernel object keeps a set that comes first */
  (void)event;
  return 0;
}

void shmrpc__os_event_set(shmrpc__os_service *service, int event) {
  WIN32_COUNT_SYSCALL();
  if (event == SHMRPC__EVENT_REQUEST)
    ReleaseSemaphore(service->doorbell, 1, NULL);
  else
    SetEvent(service->lane_event[event - 1]);
}

void shmrpc__os_event_broadcast(shmrpc__os_service *service, int event) {
  WIN32_COUNT_SYSCALL();
  /* Enough for every worker; extra counts only make spurious wake-ups. */
  if (event == SHMRPC__EVENT_REQUEST)
    ReleaseSemaphore(service->doorbell, (LONG)SHMRPC_MAX_WORKERS, NULL);
  else
    SetEvent(service->lane_event[event - 1]);
}

int shmrpc__os_event_wait(shmrpc__os_service *service, int event,
                          uint32_t prepared, int32_t timeout_ms) {
  (void)prepared;
  WIN32_COUNT_SYSCALL();
  switch (WaitForSingleObject(event_handle(service, event),
                              timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms)) {
  case WAIT_OBJECT_0:
    return 0;
  case WAIT_TIMEOUT:
    return SHMRPC_ETIMEDOUT;
  default:
    /* Only a broken handle gets here. Callers re-check their state after a
     * wake-up, so report a spurious one, but slowly enough not to spin. */
    Sleep(1);
    return 0;
  }
}

/* ---- The server's waitable and wake-ups ---------------------------------- */

int shmrpc__os_waitable_get(shmrpc__os_service *service,
                            shmrpc_waitable *out) {
  if (service->role != WIN32_CREATOR)
    return SHMRPC_EINVAL;
  *out = service->doorbell;
  return 0;
}

void shmrpc__os_waitable_wake(shmrpc__os_service *service, uint32_t lane,
                              uint32_t waker) {
  wchar_t name[WIN32_OBJECT_NAME_MAX];
  if (lane == REQUEST_LANE) {
    WIN32_COUNT_SYSCALL();
    ReleaseSemaphore(service->doorbell, 1, NULL);
    return;
  }
  if (lane >= service->lanes || waker == 0)
    return;
  /* The server keeps the last waker it opened per lane. */
  if (service->lane_waker[lane] == NULL ||
      service->lane_waker_id[lane] != waker) {
    HANDLE event;
    if (win32_object_name(service, L"w", waker, 1, name,
                          WIN32_OBJECT_NAME_MAX) != 0)
      return;
    WIN32_COUNT_SYSCALL();
    event = OpenEventW(EVENT_MODIFY_STATE, FALSE, name);
    if (event == NULL)
      return; /* gone, or a writer's invention: nobody to wake */
    if (service->lane_waker[lane] != NULL)
      CloseHandle(service->lane_waker[lane]);
    service->lane_waker[lane] = event;
    service->lane_waker_id[lane] = waker;
  }
  WIN32_COUNT_SYSCALL();
  SetEvent(service->lane_waker[lane]);
}

void shmrpc__os_waitable_drain(shmrpc__os_service *service) {
  (void)service; /* a semaphore's count is consumed by the loop's wait */
}
