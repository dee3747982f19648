/*
 * Events and waitables of the Win32 backend. The doorbell is a semaphore,
 * so that each ring wakes one sleeping worker and none is lost; a lane's
 * response event is an auto-reset event (never PulseEvent), which keeps a
 * set that comes before the wait. A client's waitable is an event of its
 * own, named after a random id the lane carries to the server.
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
  if (event == SHMRPC__EVENT_REQUEST)
    ReleaseSemaphore(service->doorbell, 1, NULL);
  else
    SetEvent(service->lane_event[event - 1]);
}

void shmrpc__os_event_broadcast(shmrpc__os_service *service, int event) {
  /* Enough for every worker; extra counts only make spurious wake-ups. */
  if (event == SHMRPC__EVENT_REQUEST)
    ReleaseSemaphore(service->doorbell, (LONG)SHMRPC_MAX_WORKERS, NULL);
  else
    SetEvent(service->lane_event[event - 1]);
}

int shmrpc__os_event_wait(shmrpc__os_service *service, int event,
                          uint32_t prepared, int32_t timeout_ms) {
  (void)prepared;
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

/* ---- Waitables --------------------------------------------------------- */

/* Makes the client's waitable: an auto-reset event of its own, which the
 * server's user may set, named after a fresh random id. */
static int waker_create(shmrpc__os_service *service) {
  SECURITY_ATTRIBUTES attributes;
  PSECURITY_DESCRIPTOR descriptor = NULL;
  int attempt, err;
  err = win32_descriptor(WIN32_WAKER, SHMRPC_ACCESS_OWNER, service->owner_sid,
                         &descriptor);
  if (err != 0)
    return err;
  attributes.nLength = sizeof attributes;
  attributes.lpSecurityDescriptor = descriptor;
  attributes.bInheritHandle = FALSE;
  for (attempt = 0; attempt < 16; attempt++) {
    wchar_t name[WIN32_OBJECT_NAME_MAX];
    uint32_t id = (uint32_t)(shmrpc__os_random64() & 0x3FFFFFFFu) | 1u;
    HANDLE event;
    if (win32_object_name(service, L"w", id, 1, name, WIN32_OBJECT_NAME_MAX) !=
        0)
      break;
    event = CreateEventW(&attributes, FALSE, FALSE, name);
    if (event == NULL)
      break;
    if (GetLastError() == ERROR_ALREADY_EXISTS) {
      CloseHandle(event); /* someone's: never share one */
      continue;
    }
    service->waker = event;
    service->waker_id = id;
    LocalFree(descriptor);
    return 0;
  }
  LocalFree(descriptor);
  return shmrpc__error_detail(SHMRPC_EOS, "cannot make a waitable event");
}

int shmrpc__os_waitable_get(shmrpc__os_service *service,
                            shmrpc_waitable *out) {
  if (service->role == WIN32_CREATOR) {
    *out = service->doorbell;
    return 0;
  }
  if (service->waker == NULL) {
    int err = waker_create(service);
    if (err != 0)
      return err;
  }
  *out = service->waker;
  return 0;
}

int shmrpc__os_waitable_arm(shmrpc__os_service *service, uint32_t lane,
                            uint32_t *waker) {
  shmrpc_waitable handle;
  int err = shmrpc__os_waitable_get(service, &handle);
  (void)lane;
  if (err != 0)
    return err;
  *waker = service->waker_id;
  return 0;
}

void shmrpc__os_waitable_disarm(shmrpc__os_service *service, uint32_t lane) {
  (void)service;
  (void)lane;
}

void shmrpc__os_waitable_wake(shmrpc__os_service *service, uint32_t lane,
                              uint32_t waker) {
  wchar_t name[WIN32_OBJECT_NAME_MAX];
  if (lane == REQUEST_LANE) {
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
    event = OpenEventW(EVENT_MODIFY_STATE, FALSE, name);
    if (event == NULL)
      return; /* gone, or a writer's invention: nobody to wake */
    if (service->lane_waker[lane] != NULL)
      CloseHandle(service->lane_waker[lane]);
    service->lane_waker[lane] = event;
    service->lane_waker_id[lane] = waker;
  }
  SetEvent(service->lane_waker[lane]);
}

int shmrpc__os_waitable_drain(shmrpc__os_service *service, uint32_t lane) {
  (void)lane;
  /* An auto-reset event resets as the loop's wait returns. A dead server
   * shows in the liveness token. */
  return service->role == WIN32_CLIENT && !shmrpc__os_server_alive(service);
}
