/*
 * A client handle's waitable on Windows: an auto-reset event of its own,
 * named shmrpc.NAME.wID after a random id, which the server's user may set
 * (and no one else but its creator). A lane whose caller waits in a loop
 * carries the id in its response_sleepers; the server opens the event by
 * that name and sets it when it answers. A writer who puts another id there
 * makes, at worst, someone's loop wake for nothing.
 *
 * A thread-pool timer sets the event too: at a call's deadline, and every
 * WIN32_LOOP_HEALTH_MS while calls are in flight, since nothing the server
 * can no longer do (it died) sets an event.
 */
#include "win32.h"

#include <stdlib.h>
#include <string.h>

#define WIN32_LOOP_HEALTH_MS 100

struct shmrpc__os_loop {
  HANDLE event; /* the waitable */
  uint32_t id;
  PTP_TIMER timer;
};

static VOID CALLBACK timer_fired(PTP_CALLBACK_INSTANCE instance, PVOID context,
                                 PTP_TIMER timer) {
  (void)instance;
  (void)timer;
  SetEvent(((shmrpc__os_loop *)context)->event);
}

/* Makes the event: fresh, never one that exists (someone's). */
static int event_create(shmrpc__os_service *service, shmrpc__os_loop *loop) {
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
      CloseHandle(event);
      continue;
    }
    loop->event = event;
    loop->id = id;
    LocalFree(descriptor);
    return 0;
  }
  LocalFree(descriptor);
  return shmrpc__error_detail(SHMRPC_EOS, "cannot make a waitable event: "
                                          "error %lu",
                              (unsigned long)GetLastError());
}

int shmrpc__os_loop_open(shmrpc__os_service *service, shmrpc__os_loop **out) {
  shmrpc__os_loop *loop = calloc(1, sizeof(*loop));
  int err;
  if (loop == NULL)
    return SHMRPC_ENOMEM;
  err = event_create(service, loop);
  if (err != 0) {
    free(loop);
    return err;
  }
  loop->timer = CreateThreadpoolTimer(timer_fired, loop, NULL);
  if (loop->timer == NULL) {
    CloseHandle(loop->event);
    free(loop);
    return shmrpc__error_detail(SHMRPC_EOS, "CreateThreadpoolTimer: error %lu",
                                (unsigned long)GetLastError());
  }
  *out = loop;
  return 0;
}

void shmrpc__os_loop_close(shmrpc__os_loop *loop) {
  if (loop == NULL)
    return;
  SetThreadpoolTimer(loop->timer, NULL, 0, 0);
  WaitForThreadpoolTimerCallbacks(loop->timer, TRUE);
  CloseThreadpoolTimer(loop->timer);
  CloseHandle(loop->event);
  free(loop);
}

shmrpc_waitable shmrpc__os_loop_waitable(const shmrpc__os_loop *loop) {
  return loop->event;
}

int shmrpc__os_loop_forked(const shmrpc__os_loop *loop) {
  (void)loop; /* no fork() on Windows */
  return 0;
}

int shmrpc__os_loop_watch(shmrpc__os_loop *loop, shmrpc__os_service *service,
                          uint32_t lane, uint32_t *waker) {
  (void)service;
  (void)lane;
  *waker = loop->id;
  return 0;
}

void shmrpc__os_loop_unwatch(shmrpc__os_loop *loop,
                             shmrpc__os_service *service, uint32_t lane) {
  (void)loop; /* the waker id in the lane is the only watch */
  (void)service;
  (void)lane;
}

int shmrpc__os_loop_drain(shmrpc__os_loop *loop, shmrpc__os_service *service) {
  (void)loop; /* the loop's wait on an auto-reset event consumed the set */
  (void)service;
  return 0;
}

int shmrpc__os_loop_timer(shmrpc__os_loop *loop, int32_t ms) {
  ULARGE_INTEGER relative;
  FILETIME due;
  if (ms < 0) {
    SetThreadpoolTimer(loop->timer, NULL, 0, 0);
    return 0;
  }
  /* A negative due time is relative, in units of 100 ns. */
  relative.QuadPart = (ULONGLONG)(-((LONGLONG)ms * 10000));
  due.dwLowDateTime = relative.LowPart;
  due.dwHighDateTime = relative.HighPart;
  WIN32_COUNT_SYSCALL();
  SetThreadpoolTimer(loop->timer, &due, 0, 0);
  return 0;
}

int32_t shmrpc__os_loop_health_ms(void) { return WIN32_LOOP_HEALTH_MS; }
