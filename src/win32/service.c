/*
 * The Win32 backend's services: names, security descriptors, how a server
 * creates its objects or takes over a dead server's, how a client opens
 * them, liveness and repair. See win32.h for the objects.
 *
 * Only wide-character (W) APIs are used. Link with advapi32 (security
 * descriptors, RtlGenRandom).
 */
#include "win32.h"

#include <aclapi.h>
#include <sddl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

/* How long a new server waits for the liveness token before it concludes
 * that a live server holds it. No client can hold it (they may only query
 * it), so a free or abandoned token is taken at once. */
#define WIN32_TOKEN_WAIT_MS 100

/* ---- Names ------------------------------------------------------------- */

int win32_object_name(const shmrpc__os_service *service, const wchar_t *suffix,
                      uint32_t index, int with_index, wchar_t *out,
                      size_t cap) {
  const char *prefix =
      service->global_namespace ? "Global\\shmrpc." : "Local\\shmrpc.";
  char narrow[WIN32_OBJECT_NAME_MAX];
  int len;
  if (with_index)
    len = snprintf(narrow, sizeof(narrow), "%s%s.%ls%u", prefix,
                   service->name, suffix, (unsigned)index);
  else
    len = snprintf(narrow, sizeof(narrow), "%s%s.%ls", prefix, service->name,
                   suffix);
  if (len < 0 || (size_t)len >= sizeof(narrow) || (size_t)len >= cap)
    return SHMRPC_EINVAL;
  /* Service names are ASCII (shmrpc_name_check). */
  for (len = 0; narrow[len] != '\0'; len++)
    out[len] = (wchar_t)(unsigned char)narrow[len];
  out[len] = L'\0';
  return 0;
}

int win32_error(DWORD error, const char *what, const char *name) {
  int code;
  switch (error) {
  case ERROR_FILE_NOT_FOUND:
  case ERROR_PATH_NOT_FOUND:
    return shmrpc__error_detail(SHMRPC_ENOSERVER,
                                "service '%s' has no %s (it is not served)",
                                name, what);
  case ERROR_ACCESS_DENIED:
  case ERROR_PRIVILEGE_NOT_HELD:
    code = SHMRPC_EACCES;
    break;
  case ERROR_INVALID_HANDLE: /* the name belongs to another object type */
    return shmrpc__error_detail(
        SHMRPC_EPROTO, "the %s of service '%s' is another kind of object",
        what, name);
  case ERROR_NOT_ENOUGH_MEMORY:
  case ERROR_OUTOFMEMORY:
    code = SHMRPC_ENOMEM;
    break;
  case ERROR_COMMITMENT_LIMIT:
  case ERROR_DISK_FULL:
    code = SHMRPC_ENOSPC;
    break;
  default:
    code = SHMRPC_EOS;
  }
  return shmrpc__error_detail(code, "%s of service '%s': Windows error %lu",
                              what, name, (unsigned long)error);
}

/* ---- Security ---------------------------------------------------------- */

/* The SID of this process's user, in a LocalAlloc'ed copy. */
static int user_sid_get(PSID *out) {
  HANDLE token;
  union {
    TOKEN_USER user;
    unsigned char bytes[sizeof(TOKEN_USER) + SECURITY_MAX_SID_SIZE];
  } info;
  DWORD info_len = 0, sid_len;
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

/* The rights others get on each kind: what a caller needs, and never
 * WRITE_DAC, WRITE_OWNER or DELETE. */
static const wchar_t *others_rights(enum win32_kind kind) {
  switch (kind) {
  case WIN32_SERVER_SECTION:
    return L"0x20005"; /* READ_CONTROL | SECTION_MAP_READ | SECTION_QUERY */
  case WIN32_CALLS_SECTION:
    return L"0x20007"; /* ... | SECTION_MAP_WRITE */
  case WIN32_TOKEN:
    return L"0x20001"; /* READ_CONTROL | MUTANT_QUERY_STATE: query only */
  case WIN32_DOORBELL:
    return L"0x20002"; /* READ_CONTROL | SEMAPHORE_MODIFY_STATE: ring */
  case WIN32_LANE_LOCK:
    return L"0x120001"; /* SYNCHRONIZE | MUTEX_MODIFY_STATE | READ_CONTROL */
  case WIN32_LANE_EVENT:
  case WIN32_WAKER:
    return L"0x120002"; /* SYNCHRONIZE | EVENT_MODIFY_STATE | READ_CONTROL */
  }
  return L"0";
}

/*
 * Builds the security descriptor for a new object: owned by this user, with
 * an explicit protected DACL (never a NULL DACL). The owner gets every
 * right; SHMRPC_ACCESS_GROUP adds Authenticated Users and
 * SHMRPC_ACCESS_EVERYONE adds Everyone, with the rights others_rights says.
 * Windows has no group that matches a POSIX file group; Authenticated Users
 * is the nearest explicit wider set. A client's waker event grants its
 * rights to the server's user (grantee_sid) instead.
 */
int win32_descriptor(enum win32_kind kind, int access, void *grantee_sid,
                     PSECURITY_DESCRIPTOR *out) {
  PSID user_sid = NULL;
  wchar_t *user_text = NULL, *grantee_text = NULL;
  wchar_t sddl[512];
  int err, len;
  const wchar_t *who;

  switch (access) {
  case SHMRPC_ACCESS_OWNER:
    who = NULL;
    break;
  case SHMRPC_ACCESS_GROUP:
    who = L"AU";
    break;
  case SHMRPC_ACCESS_EVERYONE:
    who = L"WD";
    break;
  default:
    return SHMRPC_EINVAL;
  }
  err = user_sid_get(&user_sid);
  if (err != 0)
    return err;
  if (!ConvertSidToStringSidW(user_sid, &user_text)) {
    LocalFree(user_sid);
    return SHMRPC_EOS;
  }
  LocalFree(user_sid);
  if (grantee_sid != NULL) {
    if (!ConvertSidToStringSidW(grantee_sid, &grantee_text)) {
      LocalFree(user_text);
      return SHMRPC_EOS;
    }
    who = grantee_text;
  }
  if (who != NULL)
    len = swprintf(sddl, sizeof sddl / sizeof sddl[0],
                   L"O:%lsD:P(A;;GA;;;%ls)(A;;%ls;;;%ls)", user_text, user_text,
                   others_rights(kind), who);
  else
    len = swprintf(sddl, sizeof sddl / sizeof sddl[0], L"O:%lsD:P(A;;GA;;;%ls)",
                   user_text, user_text);
  LocalFree(user_text);
  if (grantee_text != NULL)
    LocalFree(grantee_text);
  if (len < 0)
    return SHMRPC_EOS;
  if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(
          sddl, SDDL_REVISION_1, out, NULL))
    return SHMRPC_EOS;
  return 0;
}

/* Which users a client trusts to run the server. */
typedef struct trust_rule {
  PSID exact; /* only this SID (LocalAlloc'ed), or NULL: this user and the
                 administrators */
} trust_rule;

static int trust_parse(const char *server_user, trust_rule *out) {
  wchar_t wide[SHMRPC_USER_MAX + 1];
  out->exact = NULL;
  if (server_user == NULL)
    return 0;
  if (MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, server_user, -1, wide,
                          SHMRPC_USER_MAX + 1) <= 1)
    return shmrpc__error_detail(SHMRPC_EINVAL, "bad server user '%s'",
                                server_user);
  if (wcsncmp(wide, L"S-", 2) == 0) {
    if (ConvertStringSidToSidW(wide, &out->exact))
      return 0;
  } else {
    unsigned char sid[SECURITY_MAX_SID_SIZE];
    wchar_t domain[256];
    DWORD sid_len = sizeof sid, domain_len = 256;
    SID_NAME_USE use;
    if (LookupAccountNameW(NULL, wide, sid, &sid_len, domain, &domain_len,
                           &use)) {
      out->exact = LocalAlloc(LMEM_FIXED, GetLengthSid(sid));
      if (out->exact != NULL && CopySid(GetLengthSid(sid), out->exact, sid))
        return 0;
      if (out->exact != NULL)
        LocalFree(out->exact);
      out->exact = NULL;
    }
  }
  return shmrpc__error_detail(SHMRPC_EINVAL,
                              "server user '%s' is neither an account nor a "
                              "SID",
                              server_user);
}

/* The owner of an object (the handle needs READ_CONTROL), LocalAlloc'ed. */
static int owner_of(HANDLE object, PSID *out) {
  PSID owner = NULL;
  PSECURITY_DESCRIPTOR descriptor = NULL;
  DWORD len;
  if (GetSecurityInfo(object, SE_KERNEL_OBJECT, OWNER_SECURITY_INFORMATION,
                      &owner, NULL, NULL, NULL, &descriptor) != ERROR_SUCCESS ||
      owner == NULL) {
    if (descriptor != NULL)
      LocalFree(descriptor);
    return SHMRPC_EPROTO;
  }
  len = GetLengthSid(owner);
  *out = LocalAlloc(LMEM_FIXED, len);
  if (*out == NULL || !CopySid(len, *out, owner)) {
    if (*out != NULL)
      LocalFree(*out);
    *out = NULL;
    LocalFree(descriptor);
    return SHMRPC_ENOMEM;
  }
  LocalFree(descriptor);
  return 0;
}

/* 0 if `owner` is trusted: the named user, or (by default) this user,
 * LocalSystem or the Administrators group; else SHMRPC_EUNTRUSTED. */
static int owner_trusted(PSID owner, const trust_rule *rule,
                         const char *name) {
  PSID me = NULL;
  wchar_t *text = NULL;
  int ok = 0;
  if (rule->exact != NULL) {
    ok = EqualSid(owner, rule->exact);
  } else if (user_sid_get(&me) == 0) {
    ok = EqualSid(owner, me) || IsWellKnownSid(owner, WinLocalSystemSid) ||
         IsWellKnownSid(owner, WinBuiltinAdministratorsSid);
    LocalFree(me);
  }
  if (ok)
    return 0;
  ConvertSidToStringSidW(owner, &text);
  shmrpc__error_detail(SHMRPC_EUNTRUSTED,
                       "service '%s' belongs to %ls, whom this client does "
                       "not trust%s",
                       name, text != NULL ? text : L"another user",
                       rule->exact != NULL
                           ? " (it asked for another server user)"
                           : "; name that user as the server user to trust it");
  if (text != NULL)
    LocalFree(text);
  return SHMRPC_EUNTRUSTED;
}

/* A server accepts a dead server's object only if this user made it. */
static int owner_is_me(HANDLE object, const char *what, const char *name) {
  PSID owner = NULL, me = NULL;
  int err = owner_of(object, &owner);
  if (err != 0)
    return err;
  err = user_sid_get(&me);
  if (err == 0 && !EqualSid(owner, me))
    err = shmrpc__error_detail(SHMRPC_EACCES,
                               "the %s of service '%s' belongs to another "
                               "user: the name is taken",
                               what, name);
  LocalFree(owner);
  if (me != NULL)
    LocalFree(me);
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

int shmrpc__os_server_alive(shmrpc__os_service *service) {
  int abandoned = 0;
  if (service == NULL || service->alive == NULL)
    return 0;
  if (service->role == WIN32_CREATOR)
    return InterlockedCompareExchange(&service->token_owned, 0, 0) != 0;
  return win32_mutex_owned(service->alive, &abandoned) == 1;
}

SHMRPC__HOT int shmrpc__os_service_forked(const shmrpc__os_service *service) {
  (void)service; /* no fork() on Windows */
  return 0;
}

uint32_t shmrpc__os_service_lanes(const shmrpc__os_service *service) {
  return service->lanes;
}

/* ---- Objects ----------------------------------------------------------- */

static void handle_close(HANDLE *handle) {
  if (*handle != NULL) {
    CloseHandle(*handle);
    *handle = NULL;
  }
}

static void service_free(shmrpc__os_service *service) {
  uint32_t i;
  token_release(service);
  if (service->server_view != NULL)
    UnmapViewOfFile(service->server_view);
  if (service->calls_view != NULL)
    UnmapViewOfFile(service->calls_view);
  handle_close(&service->server_section);
  handle_close(&service->calls_section);
  handle_close(&service->alive);
  handle_close(&service->doorbell);
  handle_close(&service->token_stop);
  handle_close(&service->token_decided);
  for (i = 0; i < SHMRPC_MAX_LANES; i++) {
    handle_close(&service->lane_lock[i]);
    handle_close(&service->lane_event[i]);
    handle_close(&service->lane_waker[i]);
  }
  if (service->owner_sid != NULL)
    LocalFree(service->owner_sid);
  free(service);
}

static shmrpc__os_service *service_new(int role, const char *name,
                                       int global_namespace) {
  shmrpc__os_service *service = calloc(1, sizeof *service);
  if (service == NULL)
    return NULL;
  service->role = role;
  service->global_namespace = global_namespace;
  snprintf(service->name, sizeof service->name, "%s", name);
  return service;
}

/* The size of a mapped view, in bytes, or 0. */
static size_t view_size(const void *view) {
  MEMORY_BASIC_INFORMATION info;
  if (VirtualQuery(view, &info, sizeof info) != sizeof info)
    return 0;
  return info.RegionSize;
}

/* Attributes for a new object of `kind`; *descriptor is LocalFree'd by the
 * caller. */
static int attributes_for(enum win32_kind kind, int access,
                          SECURITY_ATTRIBUTES *attributes,
                          PSECURITY_DESCRIPTOR *descriptor) {
  int err = win32_descriptor(kind, access, NULL, descriptor);
  if (err != 0)
    return err;
  attributes->nLength = sizeof *attributes;
  attributes->lpSecurityDescriptor = *descriptor;
  attributes->bInheritHandle = FALSE; /* a child never holds our objects */
  return 0;
}

/* Creates (or, left by a dead server, reuses) the section `suffix` of
 * `bytes`, maps it read-write and zeroes a reused one. A section cannot
 * grow: a dead server's that is too small stays until its last client lets
 * go (SHMRPC_EEXIST). SEC_COMMIT reserves its memory now. */
static int section_create(shmrpc__os_service *service, const wchar_t *suffix,
                          enum win32_kind kind, int access, uint64_t bytes,
                          HANDLE *section, unsigned char **view,
                          size_t *size) {
  SECURITY_ATTRIBUTES attributes;
  PSECURITY_DESCRIPTOR descriptor = NULL;
  wchar_t name[WIN32_OBJECT_NAME_MAX];
  const char *what =
      kind == WIN32_SERVER_SECTION ? "server section" : "calls section";
  int err, existed;

  err = win32_object_name(service, suffix, 0, 0, name, WIN32_OBJECT_NAME_MAX);
  if (err == 0)
    err = attributes_for(kind, access, &attributes, &descriptor);
  if (err != 0)
    return err;
  *section = CreateFileMappingW(INVALID_HANDLE_VALUE, &attributes,
                                PAGE_READWRITE | SEC_COMMIT,
                                (DWORD)(bytes >> 32),
                                (DWORD)(bytes & 0xFFFFFFFFu), name);
  LocalFree(descriptor);
  if (*section == NULL)
    return win32_error(GetLastError(), what, service->name);
  existed = GetLastError() == ERROR_ALREADY_EXISTS;
  if (existed) {
    err = owner_is_me(*section, what, service->name);
    if (err != 0)
      return err;
  }
  *view = MapViewOfFile(*section, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, 0);
  if (*view == NULL)
    return win32_error(GetLastError(), what, service->name);
  *size = view_size(*view);
  if (*size < bytes)
    return existed ? shmrpc__error_detail(
                         SHMRPC_EEXIST,
                         "a dead server's smaller %s of service '%s' is still "
                         "held by a client",
                         what, service->name)
                   : SHMRPC_EOS;
  if (existed) { /* a fresh section is zeroed by the kernel; a reused one
                    is not (its magic is already 0: clients cannot open it) */
    /* The dead server's clients still read it: in the server section the
     * prefix and the core's header (its generation) go first, then the
     * rest (os.h); the calls section, which has neither, is zeroed the
     * same way for simplicity. */
    size_t first = WIN32_PREFIX_SIZE + SHMRPC__LINE;
    if (first > *size)
      first = *size;
    memset(*view, 0, first);
    MemoryBarrier();
    memset(*view + first, 0, *size - first);
  }
  return 0;
}

/* Creates (or reuses) a named mutex, event or semaphore. */
static int sync_create(shmrpc__os_service *service, enum win32_kind kind,
                       const wchar_t *suffix, uint32_t index, int with_index,
                       int access, HANDLE *out) {
  SECURITY_ATTRIBUTES attributes;
  PSECURITY_DESCRIPTOR descriptor = NULL;
  wchar_t name[WIN32_OBJECT_NAME_MAX];
  int err = win32_object_name(service, suffix, index, with_index, name,
                              WIN32_OBJECT_NAME_MAX);
  if (err == 0)
    err = attributes_for(kind, access, &attributes, &descriptor);
  if (err != 0)
    return err;
  switch (kind) {
  case WIN32_DOORBELL:
    *out = CreateSemaphoreW(&attributes, 0, 0x7FFFFFFF, name);
    break;
  case WIN32_LANE_EVENT:
    *out = CreateEventW(&attributes, FALSE, FALSE, name);
    break;
  default:
    *out = CreateMutexW(&attributes, FALSE, name);
  }
  LocalFree(descriptor);
  if (*out == NULL)
    return win32_error(GetLastError(), "lane object", service->name);
  if (GetLastError() == ERROR_ALREADY_EXISTS) {
    err = owner_is_me(*out, "lane object", service->name);
    if (err != 0)
      return err;
    /* A dead server's peers may have left a signal: a spurious wake-up at
     * worst, which callers tolerate; clear it anyway. */
    if (kind == WIN32_LANE_EVENT)
      ResetEvent(*out);
  }
  return 0;
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
                              shmrpc__os_service **out, void **server_area,
                              void **calls_area) {
  shmrpc__os_service *service;
  uint32_t lane;
  int err;

  *out = NULL;
  if (options->server_size > (uint64_t)0x7FFFFFFF - WIN32_PREFIX_SIZE ||
      options->calls_size > (uint64_t)0x7FFFFFFF)
    return SHMRPC_EINVAL;
  service = service_new(WIN32_CREATOR, name, options->global_namespace);
  if (service == NULL)
    return SHMRPC_ENOMEM;
  service->lanes = options->lanes;

  err = sync_create(service, WIN32_TOKEN, L"alive", 0, 0, options->access,
                    &service->alive);
  if (err == 0)
    err = token_take(service);
  if (err == 0)
    err = section_create(service, L"map", WIN32_SERVER_SECTION,
                         options->access,
                         WIN32_PREFIX_SIZE + options->server_size,
                         &service->server_section, &service->server_view,
                         &service->server_view_size);
  if (err == 0)
    err = section_create(service, L"calls", WIN32_CALLS_SECTION,
                         options->access, options->calls_size,
                         &service->calls_section, &service->calls_view,
                         &service->calls_view_size);
  if (err == 0)
    err = sync_create(service, WIN32_DOORBELL, L"req", 0, 0, options->access,
                      &service->doorbell);
  for (lane = 0; err == 0 && lane < options->lanes; lane++) {
    err = sync_create(service, WIN32_LANE_LOCK, L"lock", lane, 1,
                      options->access, &service->lane_lock[lane]);
    if (err == 0)
      err = sync_create(service, WIN32_LANE_EVENT, L"resp", lane, 1,
                        options->access, &service->lane_event[lane]);
  }
  if (err != 0) {
    service_free(service);
    return err;
  }

  {
    win32_prefix *prefix = (win32_prefix *)service->server_view;
    service->expected.magic = WIN32_PREFIX_MAGIC;
    service->expected.version = WIN32_PREFIX_VERSION;
    service->expected.lanes = options->lanes;
    service->expected.creator_pid = (uint32_t)GetCurrentProcessId();
    service->expected.server_bytes = options->server_size;
    service->expected.calls_bytes = options->calls_size;
    service->expected.generation = options->generation;
    memcpy((unsigned char *)prefix + 4,
           (const unsigned char *)&service->expected + 4,
           sizeof(win32_prefix) - 4);
    InterlockedExchange((volatile LONG *)&prefix->magic,
                        (LONG)WIN32_PREFIX_MAGIC);
  }
  *out = service;
  *server_area = service->server_view + WIN32_PREFIX_SIZE;
  *calls_area = service->calls_view;
  return 0;
}

/* ---- Opening ----------------------------------------------------------- */

/* Reads the server section's prefix once and checks it. Returns 0,
 * SHMRPC_ENOSERVER while unpublished, or SHMRPC_EPROTO. */
static int prefix_read(const shmrpc__os_service *service, win32_prefix *out) {
  const win32_prefix *prefix = (const win32_prefix *)service->server_view;
  if (service->server_view_size < WIN32_PREFIX_SIZE)
    return SHMRPC_EPROTO;
  /* A plain load: the view is read-only, so no interlocked instruction
   * (they all write) may touch it. */
  out->magic = *(const volatile uint32_t *)&prefix->magic;
  MemoryBarrier();
  if (out->magic == 0)
    return SHMRPC_ENOSERVER;
  memcpy((unsigned char *)out + 4, (const unsigned char *)prefix + 4,
         sizeof(*out) - 4);
  if (out->magic != WIN32_PREFIX_MAGIC || out->version != WIN32_PREFIX_VERSION ||
      out->lanes == 0 || out->lanes > SHMRPC_MAX_LANES ||
      out->server_bytes > service->server_view_size - WIN32_PREFIX_SIZE)
    return shmrpc__error_detail(SHMRPC_EPROTO,
                                "'%s' is not a shmrpc service of this version",
                                service->name);
  return 0;
}

/* Opens and maps the server section read-only, with its owner. */
static int server_section_open(shmrpc__os_service *service,
                               win32_prefix *prefix) {
  wchar_t name[WIN32_OBJECT_NAME_MAX];
  int err = win32_object_name(service, L"map", 0, 0, name,
                              WIN32_OBJECT_NAME_MAX);
  if (err != 0)
    return err;
  service->server_section =
      OpenFileMappingW(FILE_MAP_READ | READ_CONTROL, FALSE, name);
  if (service->server_section == NULL)
    return win32_error(GetLastError(), "server section", service->name);
  err = owner_of(service->server_section, (PSID *)&service->owner_sid);
  if (err != 0)
    return err;
  service->server_view =
      MapViewOfFile(service->server_section, FILE_MAP_READ, 0, 0, 0);
  if (service->server_view == NULL)
    return win32_error(GetLastError(), "server section", service->name);
  service->server_view_size = view_size(service->server_view);
  return prefix_read(service, prefix);
}

/* Opens a named object of the service with `rights`, checking its owner is
 * the server section's. */
static int object_open(shmrpc__os_service *service, enum win32_kind kind,
                       const wchar_t *suffix, uint32_t index, int with_index,
                       DWORD rights, HANDLE *out) {
  wchar_t name[WIN32_OBJECT_NAME_MAX];
  PSID owner = NULL;
  int err = win32_object_name(service, suffix, index, with_index, name,
                              WIN32_OBJECT_NAME_MAX);
  if (err != 0)
    return err;
  switch (kind) {
  case WIN32_CALLS_SECTION:
    *out = OpenFileMappingW(rights | READ_CONTROL, FALSE, name);
    break;
  case WIN32_DOORBELL:
    *out = OpenSemaphoreW(rights | READ_CONTROL, FALSE, name);
    break;
  case WIN32_LANE_EVENT:
    *out = OpenEventW(rights | READ_CONTROL, FALSE, name);
    break;
  default:
    *out = OpenMutexW(rights | READ_CONTROL, FALSE, name);
  }
  if (*out == NULL)
    return win32_error(GetLastError(), "named object", service->name);
  err = owner_of(*out, &owner);
  if (err == 0 && !EqualSid(owner, service->owner_sid))
    err = shmrpc__error_detail(SHMRPC_EPROTO,
                               "an object of service '%s' has another owner "
                               "than its section",
                               service->name);
  if (owner != NULL)
    LocalFree(owner);
  return err;
}

int shmrpc__os_service_open(const char *name,
                            const shmrpc__os_open_options *options,
                            shmrpc__os_service **out, const void **server_area,
                            size_t *server_size, void **calls_area,
                            size_t *calls_size) {
  shmrpc__os_service *service;
  win32_prefix prefix;
  trust_rule rule;
  uint32_t lane;
  int err;

  *out = NULL;
  err = trust_parse(options->server_user, &rule);
  if (err != 0)
    return err;
  service = service_new(WIN32_CLIENT, name, options->global_namespace);
  if (service == NULL) {
    if (rule.exact != NULL)
      LocalFree(rule.exact);
    return SHMRPC_ENOMEM;
  }
  err = server_section_open(service, &prefix);
  if ((err == 0 || err == SHMRPC_ENOSERVER) && service->owner_sid != NULL) {
    int trust = owner_trusted(service->owner_sid, &rule, name);
    if (trust != 0)
      err = trust;
  }
  if (rule.exact != NULL)
    LocalFree(rule.exact);
  if (err == 0)
    err = object_open(service, WIN32_TOKEN, L"alive", 0, 0, MUTANT_QUERY_STATE,
                      &service->alive);
  if (err == 0 && !shmrpc__os_server_alive(service))
    err = shmrpc__error_detail(SHMRPC_ENOSERVER,
                               "no live server holds service '%s'", name);
  if (err == 0) {
    service->lanes = prefix.lanes;
    err = object_open(service, WIN32_CALLS_SECTION, L"calls", 0, 0,
                      FILE_MAP_READ | FILE_MAP_WRITE, &service->calls_section);
  }
  if (err == 0) {
    service->calls_view = MapViewOfFile(
        service->calls_section, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, 0);
    if (service->calls_view == NULL)
      err = win32_error(GetLastError(), "calls section", name);
    else if ((service->calls_view_size = view_size(service->calls_view)) <
             prefix.calls_bytes)
      err = shmrpc__error_detail(SHMRPC_EPROTO,
                                 "the calls section of '%s' is too small",
                                 name);
  }
  if (err == 0)
    err = object_open(service, WIN32_DOORBELL, L"req", 0, 0,
                      SEMAPHORE_MODIFY_STATE, &service->doorbell);
  for (lane = 0; err == 0 && lane < service->lanes; lane++) {
    err = object_open(service, WIN32_LANE_LOCK, L"lock", lane, 1,
                      SYNCHRONIZE | MUTEX_MODIFY_STATE,
                      &service->lane_lock[lane]);
    if (err == 0)
      err = object_open(service, WIN32_LANE_EVENT, L"resp", lane, 1,
                        SYNCHRONIZE | EVENT_MODIFY_STATE,
                        &service->lane_event[lane]);
  }
  if (err != 0) {
    service_free(service);
    return err;
  }
  *out = service;
  *server_area = service->server_view + WIN32_PREFIX_SIZE;
  *server_size = (size_t)prefix.server_bytes;
  *calls_area = service->calls_view;
  *calls_size = (size_t)prefix.calls_bytes;
  return 0;
}

int shmrpc__os_service_inspect(const char *name, int global_namespace,
                               shmrpc__os_service **out,
                               const void **server_area, size_t *server_size,
                               const void **calls_area, size_t *calls_size,
                               shmrpc__os_inspect_info *info) {
  shmrpc__os_service *service;
  win32_prefix prefix;
  wchar_t *owner_text = NULL;
  uint32_t lane;
  int err;

  *out = NULL;
  *server_area = NULL;
  *server_size = 0;
  *calls_area = NULL;
  *calls_size = 0;
  memset(info, 0, sizeof *info);
  service = service_new(WIN32_INSPECTOR, name, global_namespace);
  if (service == NULL)
    return SHMRPC_ENOMEM;
  err = server_section_open(service, &prefix);
  if (service->owner_sid != NULL &&
      ConvertSidToStringSidW(service->owner_sid, &owner_text)) {
    PSID me = NULL;
    snprintf(info->owner, sizeof info->owner, "%ls", owner_text);
    LocalFree(owner_text);
    if (user_sid_get(&me) == 0) {
      info->own = EqualSid(me, service->owner_sid) != 0;
      LocalFree(me);
    }
  }
  if (err == SHMRPC_ENOSERVER && service->server_view != NULL) {
    *out = service; /* unpublished: incomplete */
    return 0;
  }
  if (err != 0) {
    service_free(service);
    return err;
  }
  info->complete = 1;
  service->lanes = prefix.lanes;
  if (object_open(service, WIN32_TOKEN, L"alive", 0, 0, MUTANT_QUERY_STATE,
                  &service->alive) == 0)
    info->alive = shmrpc__os_server_alive(service);
  if (object_open(service, WIN32_CALLS_SECTION, L"calls", 0, 0, FILE_MAP_READ,
                  &service->calls_section) == 0) {
    service->calls_view =
        MapViewOfFile(service->calls_section, FILE_MAP_READ, 0, 0, 0);
    if (service->calls_view != NULL &&
        view_size(service->calls_view) >= prefix.calls_bytes) {
      *calls_area = service->calls_view;
      *calls_size = (size_t)prefix.calls_bytes;
    }
  }
  /* The lane locks, to show their state (query only). */
  for (lane = 0; lane < service->lanes; lane++)
    (void)object_open(service, WIN32_LANE_LOCK, L"lock", lane, 1,
                      MUTANT_QUERY_STATE, &service->lane_lock[lane]);
  shmrpc__error_clear();
  *out = service;
  *server_area = service->server_view + WIN32_PREFIX_SIZE;
  *server_size = (size_t)prefix.server_bytes;
  return 0;
}

/* Windows can list an object directory only through native NT calls
 * (NtQueryDirectoryObject); the public API documents SHMRPC_EOS instead. */
int shmrpc__os_service_list(int (*fn)(const char *name, void *ctx), void *ctx) {
  (void)fn;
  (void)ctx;
  return shmrpc__error_detail(SHMRPC_EOS,
                              "Windows cannot list named objects");
}

void shmrpc__os_service_close(shmrpc__os_service *service) {
  if (service == NULL)
    return;
  if (service->role == WIN32_CREATOR && service->server_view != NULL) {
    /* Names vanish with their last handle; until then a client that opens
     * them must not mistake them for a live service. */
    InterlockedExchange((volatile LONG *)service->server_view, 0);
  }
  service_free(service);
}

/*
 * A named object dies with its last handle, so nothing is left to remove
 * once every process has closed the service; while some client still holds
 * a dead server's objects, nobody can remove them, and the next server takes
 * them over. This only reports what create would find.
 */
int shmrpc__os_service_remove_stale(const char *name, int global_namespace) {
  shmrpc__os_service *service = service_new(WIN32_INSPECTOR, name,
                                            global_namespace);
  wchar_t object[WIN32_OBJECT_NAME_MAX];
  int err = 0;
  if (service == NULL)
    return SHMRPC_ENOMEM;
  /* The section: absent is fine; another kind of object, one we may not
   * open, or another user's is what create would refuse too. */
  if (win32_object_name(service, L"map", 0, 0, object,
                        WIN32_OBJECT_NAME_MAX) == 0) {
    service->server_section =
        OpenFileMappingW(FILE_MAP_READ | READ_CONTROL, FALSE, object);
    if (service->server_section != NULL)
      err = owner_is_me(service->server_section, "server section", name);
    else if (GetLastError() != ERROR_FILE_NOT_FOUND)
      err = win32_error(GetLastError(), "server section", name);
  }
  /* The token: a live server holds it. */
  if (err == 0 && win32_object_name(service, L"alive", 0, 0, object,
                                    WIN32_OBJECT_NAME_MAX) == 0) {
    service->alive = OpenMutexW(MUTANT_QUERY_STATE, FALSE, object);
    if (service->alive != NULL) {
      if (shmrpc__os_server_alive(service))
        err = SHMRPC_EEXIST;
    } else if (GetLastError() != ERROR_FILE_NOT_FOUND) {
      err = win32_error(GetLastError(), "liveness token", name);
    }
  }
  service_free(service);
  return err;
}

/* ---- Repair ------------------------------------------------------------ */

int shmrpc__os_service_repair(shmrpc__os_service *service) {
  win32_prefix *prefix;
  if (service->role != WIN32_CREATOR)
    return 0;
  /* Only the server's own user can write its prefix; put it back anyway. */
  prefix = (win32_prefix *)service->server_view;
  if (memcmp((const unsigned char *)prefix + 4,
             (const unsigned char *)&service->expected + 4,
             sizeof(win32_prefix) - 4) != 0 ||
      prefix->magic != WIN32_PREFIX_MAGIC) {
    memcpy((unsigned char *)prefix + 4,
           (const unsigned char *)&service->expected + 4,
           sizeof(win32_prefix) - 4);
    InterlockedExchange((volatile LONG *)&prefix->magic,
                        (LONG)WIN32_PREFIX_MAGIC);
    return 1;
  }
  return 0;
}
