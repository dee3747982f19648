/*
 * The Win32 backend of the platform contract (src/os.h).
 *
 * A service NAME is five named kernel objects, all in Local\ (or Global\
 * when asked):
 *
 *   shmrpc.NAME.map    pagefile-backed section: a 64-byte backend prefix,
 *                      then the area the core owns
 *   shmrpc.NAME.lock   the slot mutex
 *   shmrpc.NAME.req    auto-reset event "request posted"
 *   shmrpc.NAME.resp   auto-reset event "response ready"
 *   shmrpc.NAME.alive  the liveness token: a mutex the server owns for as
 *                      long as it serves
 *
 * Win32 mutex ownership belongs to a thread, not to a process, so the
 * server owns the liveness token from a small backend thread that lives
 * until shmrpc__os_service_close. If the process dies first, the kernel
 * marks the mutex abandoned, which is its own proof that the server died;
 * no PID is ever trusted.
 *
 * Windows removes a named object when its last handle closes, so nothing
 * is ever left behind on disk. A dead server's names survive only while
 * some client still holds handles to them; the next server then takes the
 * objects over instead of failing.
 *
 * Only wide-character (W) APIs are used. Link with advapi32 (security
 * descriptors, RtlGenRandom).
 */
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

#include <aclapi.h>
#include <ntsecapi.h>
#include <sddl.h>

#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "os.h"

/* ---- The backend prefix at the start of the mapping --------------------- */

#define WIN32_PREFIX_MAGIC 0x57435253u /* "SRCW" */
#define WIN32_PREFIX_SIZE 64u

/* The first 64 bytes of the mapping, before the area. Clients read each
 * field once and validate it: anyone who can open the mapping can write it. */
typedef struct win32_prefix {
  uint32_t magic;       /* WIN32_PREFIX_MAGIC, stored last by the creator */
  uint32_t prefix_size; /* WIN32_PREFIX_SIZE */
  uint64_t area_size;   /* bytes of the area that follows the prefix */
  uint32_t creator_pid; /* for diagnostics only, never for liveness */
  uint8_t pad[WIN32_PREFIX_SIZE - 20];
} win32_prefix;

_Static_assert(sizeof(win32_prefix) == WIN32_PREFIX_SIZE, "prefix size");

/* How long a new server waits for the liveness token before it concludes
 * that a live server holds it. Clients that check liveness own the token
 * for the length of one system call, so a short wait rules them out, while
 * a live server owns it forever. */
#define WIN32_TOKEN_WAIT_MS 100

/* Longest object name: "Global\shmrpc." + name + ".alive" + NUL. */
#define WIN32_OBJECT_NAME_MAX (SHMRPC_NAME_MAX + 32)

struct shmrpc__os_service {
  HANDLE mapping;            /* the section */
  unsigned char *view;       /* its mapped view; the prefix is at its start */
  HANDLE lock;               /* the slot mutex */
  HANDLE events[2];          /* indexed by enum shmrpc__os_event */
  HANDLE alive;              /* the liveness token */
  HANDLE token_thread;       /* creator: the thread that owns `alive` */
  HANDLE token_stop;         /* creator: tells token_thread to let go */
  HANDLE token_decided;      /* creator: token_thread has tried to take it */
  volatile LONG token_owned; /* creator: token_thread owns `alive` */
  int is_creator;            /* created by shmrpc__os_service_create */
};

/* The five object names of one service. */
typedef struct win32_names {
  wchar_t map[WIN32_OBJECT_NAME_MAX];
  wchar_t lock[WIN32_OBJECT_NAME_MAX];
  wchar_t request[WIN32_OBJECT_NAME_MAX];
  wchar_t response[WIN32_OBJECT_NAME_MAX];
  wchar_t alive[WIN32_OBJECT_NAME_MAX];
} win32_names;

/* Concatenates parts (NULL-terminated list) into out, which holds cap wide
 * characters. Returns 0, or -1 if they do not fit. */
static int wide_join(wchar_t *out, size_t cap, const wchar_t *const parts[]) {
  size_t used = 0, i;
  for (i = 0; parts[i] != NULL; i++) {
    size_t len = wcslen(parts[i]);
    if (len >= cap - used)
      return -1;
    memcpy(out + used, parts[i], len * sizeof *out);
    used += len;
  }
  out[used] = L'\0';
  return 0;
}

static int names_build(const char *name, int global_namespace,
                       win32_names *names) {
  wchar_t wide[SHMRPC_NAME_MAX + 1];
  const wchar_t *space =
      global_namespace ? L"Global\\shmrpc." : L"Local\\shmrpc.";
  int len;

  if (name == NULL || strlen(name) > SHMRPC_NAME_MAX)
    return SHMRPC_EINVAL;
  len = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, name, -1, wide,
                            (int)(sizeof wide / sizeof wide[0]));
  if (len <= 1)
    return SHMRPC_EINVAL;
  {
    const wchar_t *const map[] = {space, wide, L".map", NULL};
    const wchar_t *const lock[] = {space, wide, L".lock", NULL};
    const wchar_t *const request[] = {space, wide, L".req", NULL};
    const wchar_t *const response[] = {space, wide, L".resp", NULL};
    const wchar_t *const alive[] = {space, wide, L".alive", NULL};
    if (wide_join(names->map, WIN32_OBJECT_NAME_MAX, map) != 0 ||
        wide_join(names->lock, WIN32_OBJECT_NAME_MAX, lock) != 0 ||
        wide_join(names->request, WIN32_OBJECT_NAME_MAX, request) != 0 ||
        wide_join(names->response, WIN32_OBJECT_NAME_MAX, response) != 0 ||
        wide_join(names->alive, WIN32_OBJECT_NAME_MAX, alive) != 0)
      return SHMRPC_EINVAL;
  }
  return 0;
}

/* ---- Errors and timeouts ----------------------------------------------- */

/* The code for a failed Create*W or Open*W. */
static int error_from_win32(DWORD error) {
  switch (error) {
  case ERROR_FILE_NOT_FOUND:
  case ERROR_PATH_NOT_FOUND:
    return SHMRPC_ENOSERVER;
  case ERROR_ACCESS_DENIED:
  case ERROR_PRIVILEGE_NOT_HELD:
    return SHMRPC_EACCES;
  case ERROR_INVALID_HANDLE: /* the name belongs to another object type */
    return SHMRPC_EPROTO;
  case ERROR_NOT_ENOUGH_MEMORY:
  case ERROR_OUTOFMEMORY:
  case ERROR_COMMITMENT_LIMIT:
    return SHMRPC_ENOMEM;
  default:
    return SHMRPC_EOS;
  }
}

static DWORD timeout_to_win32(int32_t timeout_ms) {
  return timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms;
}

/* ---- Security ---------------------------------------------------------- */

/* The SID of this process's user, in a LocalAlloc'ed copy. */
static int user_sid_get(PSID *out) {
  HANDLE token;
  union {
    TOKEN_USER user;
    unsigned char bytes[sizeof(TOKEN_USER) + SECURITY_MAX_SID_SIZE];
  } info;
  DWORD info_len = 0;
  DWORD sid_len;
  PSID sid;

  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token))
    return SHMRPC_EOS;
  if (!GetTokenInformation(token, TokenUser, &info, sizeof info, &info_len)) {
    CloseHandle(token);
    return SHMRPC_EOS;
  }
  CloseHandle(token);
  sid_len = GetLengthSid(info.user.User.Sid);
  sid = LocalAlloc(LMEM_FIXED, sid_len);
  if (sid == NULL)
    return SHMRPC_ENOMEM;
  if (!CopySid(sid_len, sid, info.user.User.Sid)) {
    LocalFree(sid);
    return SHMRPC_EOS;
  }
  *out = sid;
  return 0;
}

/*
 * Builds the security descriptor for the objects of a new service: owned by
 * this user, with an explicit protected DACL (never a NULL DACL). The owner
 * gets every right; SHMRPC_ACCESS_GROUP adds Authenticated Users and
 * SHMRPC_ACCESS_EVERYONE adds Everyone, each with read, write and
 * synchronize rights only, so they can use the objects but not change their
 * DACL or owner. Windows has no group that matches a POSIX file group;
 * Authenticated Users is the nearest explicit wider set.
 */
static int security_descriptor_build(int access, PSECURITY_DESCRIPTOR *out) {
  PSID user_sid = NULL;
  wchar_t *user_sid_text = NULL;
  wchar_t sddl[256];
  const wchar_t *others;
  int err;

  switch (access) {
  case SHMRPC_ACCESS_OWNER:
    others = L"";
    break;
  case SHMRPC_ACCESS_GROUP:
    others = L"(A;;GRGWGX;;;AU)";
    break;
  case SHMRPC_ACCESS_EVERYONE:
    others = L"(A;;GRGWGX;;;WD)";
    break;
  default:
    return SHMRPC_EINVAL;
  }
  err = user_sid_get(&user_sid);
  if (err != 0)
    return err;
  if (!ConvertSidToStringSidW(user_sid, &user_sid_text)) {
    LocalFree(user_sid);
    return SHMRPC_EOS;
  }
  LocalFree(user_sid);
  {
    const wchar_t *const parts[] = {
        L"O:",  user_sid_text, L"D:P(A;;GA;;;", user_sid_text, L")",
        others, NULL};
    err = wide_join(sddl, sizeof sddl / sizeof sddl[0], parts);
  }
  LocalFree(user_sid_text);
  if (err != 0)
    return SHMRPC_EOS;
  if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(
          sddl, SDDL_REVISION_1, out, NULL))
    return SHMRPC_EOS;
  return 0;
}

/*
 * Returns 0 if the object's owner is this user, LocalSystem or the
 * Administrators group (the Windows counterparts of "this user or root"),
 * SHMRPC_EPROTO if it is someone else. The handle needs READ_CONTROL.
 */
static int owner_check(HANDLE object) {
  PSID owner = NULL;
  PSID user_sid = NULL;
  PSECURITY_DESCRIPTOR descriptor = NULL;
  int err;

  if (GetSecurityInfo(object, SE_KERNEL_OBJECT, OWNER_SECURITY_INFORMATION,
                      &owner, NULL, NULL, NULL, &descriptor) != ERROR_SUCCESS)
    return SHMRPC_EPROTO;
  err = user_sid_get(&user_sid);
  if (err == 0) {
    if (owner == NULL)
      err = SHMRPC_EPROTO;
    else if (EqualSid(owner, user_sid) ||
             IsWellKnownSid(owner, WinLocalSystemSid) ||
             IsWellKnownSid(owner, WinBuiltinAdministratorsSid))
      err = 0;
    else
      err = SHMRPC_EPROTO;
    LocalFree(user_sid);
  }
  LocalFree(descriptor);
  return err;
}

/* ---- The liveness token ------------------------------------------------ */

/*
 * The thread that owns the liveness token for the creator. It tries to take
 * the mutex, says whether it did, and if so holds it until told to stop.
 * A mutex held by a thread that exits, or by a process that dies, becomes
 * abandoned: the state clients read as "the server died".
 */
static DWORD WINAPI token_thread_main(void *arg) {
  shmrpc__os_service *service = arg;
  DWORD waited = WaitForSingleObject(service->alive, WIN32_TOKEN_WAIT_MS);
  int owned = waited == WAIT_OBJECT_0 || waited == WAIT_ABANDONED;

  InterlockedExchange(&service->token_owned, owned ? 1 : 0);
  SetEvent(service->token_decided);
  if (!owned)
    return 0;
  WaitForSingleObject(service->token_stop, INFINITE);
  ReleaseMutex(service->alive);
  return 0;
}

/* Starts the token thread and waits for its verdict: 0 when it owns the
 * token, SHMRPC_EEXIST when a live server does. */
static int token_take(shmrpc__os_service *service) {
  service->token_stop = CreateEventW(NULL, TRUE, FALSE, NULL);
  service->token_decided = CreateEventW(NULL, TRUE, FALSE, NULL);
  if (service->token_stop == NULL || service->token_decided == NULL)
    return SHMRPC_EOS;
  service->token_thread =
      CreateThread(NULL, 64 * 1024, token_thread_main, service,
                   STACK_SIZE_PARAM_IS_A_RESERVATION, NULL);
  if (service->token_thread == NULL)
    return SHMRPC_EOS;
  WaitForSingleObject(service->token_decided, INFINITE);
  if (InterlockedCompareExchange(&service->token_owned, 0, 0) == 0) {
    WaitForSingleObject(service->token_thread, INFINITE);
    CloseHandle(service->token_thread);
    service->token_thread = NULL;
    return SHMRPC_EEXIST;
  }
  return 0;
}

/* Makes the token thread release the token and exit. */
static void token_release(shmrpc__os_service *service) {
  if (service->token_thread != NULL) {
    SetEvent(service->token_stop);
    WaitForSingleObject(service->token_thread, INFINITE);
    CloseHandle(service->token_thread);
    service->token_thread = NULL;
  }
}

/* ---- Create, open, close ----------------------------------------------- */

static void handle_close(HANDLE *handle) {
  if (*handle != NULL) {
    CloseHandle(*handle);
    *handle = NULL;
  }
}

static void service_free(shmrpc__os_service *service) {
  token_release(service);
  if (service->view != NULL)
    UnmapViewOfFile(service->view);
  handle_close(&service->mapping);
  handle_close(&service->lock);
  handle_close(&service->events[0]);
  handle_close(&service->events[1]);
  handle_close(&service->alive);
  handle_close(&service->token_stop);
  handle_close(&service->token_decided);
  free(service);
}

static uint32_t prefix_magic_load(const win32_prefix *prefix) {
  uint32_t magic = *(const volatile uint32_t *)&prefix->magic;
  MemoryBarrier();
  return magic;
}

static void prefix_magic_store(win32_prefix *prefix, uint32_t magic) {
  InterlockedExchange((volatile LONG *)&prefix->magic, (LONG)magic);
}

/* The size of the mapped view, in bytes, or 0. */
static size_t view_size(const void *view) {
  MEMORY_BASIC_INFORMATION info;
  if (VirtualQuery(view, &info, sizeof info) != sizeof info)
    return 0;
  return info.RegionSize;
}

/*
 * 1 if a section whose magic is 0 looks like one shmrpc made and has not
 * published (yet, or any more): a server that closed, or died while
 * creating or taking over, leaves the prefix zeroed or as it wrote it, so
 * prefix_size is 0 or WIN32_PREFIX_SIZE, area_size fits the view and the
 * padding is zero. Anything else under the name is not ours to wipe.
 */
static int prefix_is_unpublished(const unsigned char *view, size_t mapped) {
  const win32_prefix *prefix = (const win32_prefix *)view;
  uint32_t prefix_size = *(const volatile uint32_t *)&prefix->prefix_size;
  uint64_t area_size = *(const volatile uint64_t *)&prefix->area_size;
  size_t i;

  if (prefix_size != 0 && prefix_size != WIN32_PREFIX_SIZE)
    return 0;
  if (area_size > mapped - WIN32_PREFIX_SIZE)
    return 0;
  for (i = 0; i < sizeof prefix->pad; i++)
    if (((const volatile uint8_t *)prefix->pad)[i] != 0)
      return 0;
  return 1;
}

/* Creates the auto-reset event `name` or takes over a stale one. */
static int event_create(const wchar_t *name, SECURITY_ATTRIBUTES *attributes,
                        HANDLE *out) {
  HANDLE event = CreateEventW(attributes, FALSE, FALSE, name);
  int err;

  if (event == NULL)
    return error_from_win32(GetLastError());
  *out = event;
  if (GetLastError() == ERROR_ALREADY_EXISTS) {
    err = owner_check(event);
    if (err != 0)
      return err;
    /* A signal left by the dead server's peers would only cause a spurious
     * wake-up, which callers tolerate; clear it anyway. */
    ResetEvent(event);
  }
  return 0;
}

static int mutex_create(const wchar_t *name, SECURITY_ATTRIBUTES *attributes,
                        HANDLE *out, int *existed) {
  HANDLE mutex = CreateMutexW(attributes, FALSE, name);
  if (mutex == NULL)
    return error_from_win32(GetLastError());
  *out = mutex;
  *existed = GetLastError() == ERROR_ALREADY_EXISTS;
  return *existed ? owner_check(mutex) : 0;
}

/*
 * Order matters. The liveness token comes first: whoever owns it is the one
 * server of the name, so two servers starting at once cannot both go on,
 * and a server that finds the other objects already there knows they are a
 * dead server's leftovers (kept alive by its clients' handles) and may
 * reuse them. Clients look for the prefix magic, which is stored last.
 */
int shmrpc__os_service_create(const char *name,
                              const shmrpc__os_create_options *options,
                              shmrpc__os_service **out, void **area) {
  win32_names names;
  PSECURITY_DESCRIPTOR descriptor = NULL;
  SECURITY_ATTRIBUTES attributes;
  shmrpc__os_service *service;
  uint64_t total;
  size_t mapped;
  int existed, existed_mapping;
  int err;

  if (out == NULL || area == NULL || options == NULL)
    return SHMRPC_EINVAL;
  *out = NULL;
  *area = NULL;
  if (options->area_size == 0 ||
      (uint64_t)options->area_size > UINT64_C(0x7FFFFFFF) - WIN32_PREFIX_SIZE)
    return SHMRPC_EINVAL;
  total = (uint64_t)options->area_size + WIN32_PREFIX_SIZE;
  err = names_build(name, options->global_namespace, &names);
  if (err != 0)
    return err;
  err = security_descriptor_build(options->access, &descriptor);
  if (err != 0)
    return err;
  attributes.nLength = sizeof attributes;
  attributes.lpSecurityDescriptor = descriptor;
  attributes.bInheritHandle = FALSE;

  service = calloc(1, sizeof *service);
  if (service == NULL) {
    LocalFree(descriptor);
    return SHMRPC_ENOMEM;
  }
  service->is_creator = 1;

  err = mutex_create(names.alive, &attributes, &service->alive, &existed);
  if (err == 0)
    err = token_take(service);
  if (err != 0)
    goto fail;

  service->mapping = CreateFileMappingW(
      INVALID_HANDLE_VALUE, &attributes, PAGE_READWRITE | SEC_COMMIT,
      (DWORD)(total >> 32), (DWORD)(total & 0xFFFFFFFFu), names.map);
  if (service->mapping == NULL) {
    err = error_from_win32(GetLastError());
    goto fail;
  }
  existed_mapping = GetLastError() == ERROR_ALREADY_EXISTS;
  if (existed_mapping) {
    err = owner_check(service->mapping);
    if (err != 0)
      goto fail;
  }
  service->view =
      MapViewOfFile(service->mapping, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, 0);
  if (service->view == NULL) {
    err = error_from_win32(GetLastError());
    goto fail;
  }
  mapped = view_size(service->view);
  if (existed_mapping) {
    /* A section cannot grow: a dead server's mapping that is too small for
     * this capacity stays until its last client lets go of it. */
    uint32_t magic = prefix_magic_load((const win32_prefix *)service->view);
    if ((magic != 0 && magic != WIN32_PREFIX_MAGIC) ||
        (magic == 0 && !prefix_is_unpublished(service->view, mapped))) {
      err = SHMRPC_EPROTO;
      goto fail;
    }
    if (mapped < total) {
      err = SHMRPC_EEXIST;
      goto fail;
    }
    prefix_magic_store((win32_prefix *)service->view, 0);
  } else if (mapped < total) {
    err = SHMRPC_EOS;
    goto fail;
  }

  err = mutex_create(names.lock, &attributes, &service->lock, &existed);
  if (err == 0)
    err = event_create(names.request, &attributes,
                       &service->events[SHMRPC__EVENT_REQUEST]);
  if (err == 0)
    err = event_create(names.response, &attributes,
                       &service->events[SHMRPC__EVENT_RESPONSE]);
  if (err != 0)
    goto fail;

  {
    win32_prefix *prefix = (win32_prefix *)service->view;
    /* A fresh section is zeroed by the kernel; a reused one is not (its
     * magic is already 0, so a client cannot open it meanwhile). */
    if (existed_mapping)
      memset(service->view + sizeof prefix->magic, 0,
             mapped - sizeof prefix->magic);
    prefix->prefix_size = WIN32_PREFIX_SIZE;
    prefix->area_size = options->area_size;
    prefix->creator_pid = (uint32_t)GetCurrentProcessId();
    prefix_magic_store(prefix, WIN32_PREFIX_MAGIC);
  }

  LocalFree(descriptor);
  *out = service;
  *area = service->view + WIN32_PREFIX_SIZE;
  return 0;

fail:
  LocalFree(descriptor);
  service_free(service);
  return err;
}

/* Rights a client needs: wait on and release the mutexes, set and wait on
 * the events. READ_CONTROL only where the owner is checked. */
#define WIN32_MUTEX_RIGHTS (SYNCHRONIZE | MUTEX_MODIFY_STATE)
#define WIN32_EVENT_RIGHTS (SYNCHRONIZE | EVENT_MODIFY_STATE)

/* 1 if no server holds the liveness token: taking it proves that. Give it
 * back at once, so that a starting server can take it. */
static int token_is_free(HANDLE alive) {
  switch (WaitForSingleObject(alive, 0)) {
  case WAIT_TIMEOUT:
    return 0;
  case WAIT_OBJECT_0:
  case WAIT_ABANDONED:
    ReleaseMutex(alive);
    return 1;
  default:
    return 1; /* an unusable token proves no one serves through it */
  }
}

/*
 * Opens and maps the service's section, checks its owner and validates the
 * prefix, reading each field once. SHMRPC_ENOSERVER if there is no section,
 * or if its creator has not published it (still creating, taking over, or
 * closed while clients keep the name alive).
 */
static int mapping_open(shmrpc__os_service *service, const win32_names *names,
                        size_t *area_size) {
  const win32_prefix *prefix;
  uint32_t magic, prefix_size;
  uint64_t size;
  size_t mapped;
  int err;

  service->mapping = OpenFileMappingW(
      FILE_MAP_READ | FILE_MAP_WRITE | READ_CONTROL, FALSE, names->map);
  if (service->mapping == NULL)
    return error_from_win32(GetLastError());
  err = owner_check(service->mapping);
  if (err != 0)
    return err;
  service->view =
      MapViewOfFile(service->mapping, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, 0);
  if (service->view == NULL)
    return error_from_win32(GetLastError());
  mapped = view_size(service->view);
  if (mapped < WIN32_PREFIX_SIZE)
    return SHMRPC_EPROTO;
  prefix = (const win32_prefix *)service->view;
  magic = prefix_magic_load(prefix);
  if (magic == 0)
    return SHMRPC_ENOSERVER;
  prefix_size = *(const volatile uint32_t *)&prefix->prefix_size;
  size = *(const volatile uint64_t *)&prefix->area_size;
  if (magic != WIN32_PREFIX_MAGIC || prefix_size != WIN32_PREFIX_SIZE ||
      size == 0 || size > mapped - WIN32_PREFIX_SIZE)
    return SHMRPC_EPROTO;
  *area_size = (size_t)size;
  return 0;
}

/* The part open and inspect share: builds the names, maps the section.
 * On success *out owns the mapping; on failure nothing is left open. */
static int open_mapping(const char *name, int global_namespace,
                        win32_names *names, shmrpc__os_service **out,
                        size_t *size) {
  shmrpc__os_service *service;
  int err = names_build(name, global_namespace, names);
  if (err != 0)
    return err;
  service = calloc(1, sizeof *service);
  if (service == NULL)
    return SHMRPC_ENOMEM;
  err = mapping_open(service, names, size);
  if (err != 0) {
    service_free(service);
    return err;
  }
  *out = service;
  return 0;
}

int shmrpc__os_service_open(const char *name, int global_namespace,
                            shmrpc__os_service **out, void **area,
                            size_t *area_size) {
  win32_names names;
  shmrpc__os_service *service = NULL;
  size_t size = 0;
  int err;

  if (out == NULL || area == NULL || area_size == NULL)
    return SHMRPC_EINVAL;
  *out = NULL;
  *area = NULL;
  *area_size = 0;
  err = open_mapping(name, global_namespace, &names, &service, &size);
  if (err != 0)
    return err;
  service->alive = OpenMutexW(WIN32_MUTEX_RIGHTS, FALSE, names.alive);
  if (service->alive == NULL) {
    err = error_from_win32(GetLastError());
    goto fail;
  }
  if (token_is_free(service->alive)) {
    err = SHMRPC_ENOSERVER;
    goto fail;
  }
  service->lock = OpenMutexW(WIN32_MUTEX_RIGHTS, FALSE, names.lock);
  service->events[SHMRPC__EVENT_REQUEST] =
      service->lock == NULL
          ? NULL
          : OpenEventW(WIN32_EVENT_RIGHTS, FALSE, names.request);
  service->events[SHMRPC__EVENT_RESPONSE] =
      service->events[SHMRPC__EVENT_REQUEST] == NULL
          ? NULL
          : OpenEventW(WIN32_EVENT_RIGHTS, FALSE, names.response);
  if (service->events[SHMRPC__EVENT_RESPONSE] == NULL) {
    /* A server still creating its objects is not serving yet. */
    err = error_from_win32(GetLastError());
    goto fail;
  }

  *out = service;
  *area = service->view + WIN32_PREFIX_SIZE;
  *area_size = size;
  return 0;

fail:
  service_free(service);
  return err;
}

/* Maps the section only, live server or not; the slot mutex and events stay
 * closed, since an inspector must not take part in calls. */
int shmrpc__os_service_inspect(const char *name, int global_namespace,
                               shmrpc__os_service **out, void **area,
                               size_t *area_size, int *alive) {
  win32_names names;
  shmrpc__os_service *service = NULL;
  size_t size = 0;
  int err;

  if (out == NULL || area == NULL || area_size == NULL || alive == NULL)
    return SHMRPC_EINVAL;
  *out = NULL;
  *area = NULL;
  *area_size = 0;
  *alive = 0;
  err = open_mapping(name, global_namespace, &names, &service, &size);
  if (err != 0)
    return err;
  service->alive = OpenMutexW(WIN32_MUTEX_RIGHTS, FALSE, names.alive);
  if (service->alive != NULL) {
    *alive = !token_is_free(service->alive);
  } else if (GetLastError() != ERROR_FILE_NOT_FOUND) {
    err = error_from_win32(GetLastError());
    goto fail;
  }

  *out = service;
  *area = service->view + WIN32_PREFIX_SIZE;
  *area_size = size;
  return 0;

fail:
  service_free(service);
  return err;
}

/* Windows can list an object directory only through native NT calls
 * (NtQueryDirectoryObject); the public API documents SHMRPC_EOS instead. */
int shmrpc__os_service_list(int (*fn)(const char *name, void *ctx), void *ctx) {
  (void)fn;
  (void)ctx;
  return SHMRPC_EOS;
}

/*
 * A named object dies with its last handle, so nothing is left to remove
 * once every process has closed the service; while some client still holds
 * a dead server's objects, nobody can remove them, and the next server takes
 * them over. This only reports what create would find.
 */
int shmrpc__os_service_remove_stale(const char *name, int global_namespace) {
  win32_names names;
  shmrpc__os_service *service;
  size_t size = 0;
  int err;

  err = names_build(name, global_namespace, &names);
  if (err != 0)
    return err;
  service = calloc(1, sizeof *service);
  if (service == NULL)
    return SHMRPC_ENOMEM;

  err = mapping_open(service, &names, &size);
  if (err == SHMRPC_ENOSERVER)
    err = 0; /* no section, or one its creator never published */
  if (err == 0) {
    service->alive =
        OpenMutexW(WIN32_MUTEX_RIGHTS | READ_CONTROL, FALSE, names.alive);
    if (service->alive != NULL) {
      err = owner_check(service->alive);
      if (err == 0 && !token_is_free(service->alive))
        err = SHMRPC_EEXIST;
    } else if (GetLastError() != ERROR_FILE_NOT_FOUND) {
      err = error_from_win32(GetLastError());
    }
  }
  service_free(service);
  return err;
}

void shmrpc__os_service_close(shmrpc__os_service *service) {
  if (service == NULL)
    return;
  if (service->is_creator && service->view != NULL) {
    /* Names vanish with their last handle; until then a client that opens
     * them must not mistake them for a live service. */
    prefix_magic_store((win32_prefix *)service->view, 0);
  }
  service_free(service);
}

int shmrpc__os_server_alive(shmrpc__os_service *service) {
  if (service == NULL || service->alive == NULL)
    return 0;
  if (service->is_creator)
    return InterlockedCompareExchange(&service->token_owned, 0, 0) != 0;
  return !token_is_free(service->alive);
}

/* ---- Slot mutex and events --------------------------------------------- */

int shmrpc__os_slot_lock(shmrpc__os_service *service, int32_t timeout_ms) {
  switch (WaitForSingleObject(service->lock, timeout_to_win32(timeout_ms))) {
  case WAIT_OBJECT_0:
    return 0;
  case WAIT_ABANDONED:
    return SHMRPC__ABANDONED;
  case WAIT_TIMEOUT:
    return SHMRPC_ETIMEDOUT;
  default:
    return SHMRPC_EPROTO;
  }
}

void shmrpc__os_slot_unlock(shmrpc__os_service *service) {
  ReleaseMutex(service->lock);
}

void shmrpc__os_event_set(shmrpc__os_service *service,
                          enum shmrpc__os_event event) {
  SetEvent(service->events[event]);
}

int shmrpc__os_event_wait(shmrpc__os_service *service,
                          enum shmrpc__os_event event, int32_t timeout_ms) {
  switch (WaitForSingleObject(service->events[event],
                              timeout_to_win32(timeout_ms))) {
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

/* ---- Time, CPUs, randomness -------------------------------------------- */

uint64_t shmrpc__os_now_ns(void) {
  static volatile LONGLONG frequency; /* counts per second, set once */
  LARGE_INTEGER counter, query;
  LONGLONG per_second = frequency;
  uint64_t ticks;

  if (per_second == 0) {
    QueryPerformanceFrequency(&query);
    per_second = query.QuadPart;
    frequency = per_second;
  }
  QueryPerformanceCounter(&counter);
  ticks = (uint64_t)counter.QuadPart;
  /* Split to avoid overflowing ticks * 1e9. */
  return ticks / (uint64_t)per_second * UINT64_C(1000000000) +
         ticks % (uint64_t)per_second * UINT64_C(1000000000) /
             (uint64_t)per_second;
}

void shmrpc__os_sleep_ms(int32_t ms) { Sleep(ms < 0 ? 0 : (DWORD)ms); }

unsigned shmrpc__os_cpu_count(void) {
  DWORD_PTR process_mask, system_mask;
  unsigned count = 0;

  if (GetProcessAffinityMask(GetCurrentProcess(), &process_mask,
                             &system_mask)) {
    for (; process_mask != 0; process_mask &= process_mask - 1)
      count++;
  }
  if (count == 0)
    count = (unsigned)GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
  return count == 0 ? 1 : count;
}

uint32_t shmrpc__os_pid(void) { return (uint32_t)GetCurrentProcessId(); }

uint64_t shmrpc__os_random64(void) {
  uint64_t value = 0;
  LARGE_INTEGER counter;

  if (RtlGenRandom(&value, sizeof value) && value != 0)
    return value;
  /* Not expected to happen; still differ from one server to the next. */
  QueryPerformanceCounter(&counter);
  value = (uint64_t)counter.QuadPart ^ ((uint64_t)GetCurrentProcessId() << 32) ^
          (uint64_t)(uintptr_t)&value;
  return value * UINT64_C(0x9E3779B97F4A7C15) | 1;
}

void shmrpc__os_die_now(void) {
  /* 137 is what a shell reports for SIGKILL, so tests read the same exit
   * code on both platforms. TerminateProcess on oneself does not return. */
  TerminateProcess(GetCurrentProcess(), 137);
  for (;;)
    Sleep(INFINITE);
}
