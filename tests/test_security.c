/*
 * Security and hostile input: owner-only objects, other users refused unless
 * access was widened, names held by squatters refused, and a server that
 * survives a process scribbling over its control block.
 */
#ifndef _WIN32
#define _GNU_SOURCE
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"

/* Internal headers: the hostile writer maps the service as any process
 * with access could, through the same platform layer. */
#include "layout.h"
#include "os.h"

#ifndef _WIN32
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#define NOBODY_ID 65534
#else
#define WIN32_LEAN_AND_MEAN
#include <windows.h>

#include <aclapi.h>
#include <sddl.h>
#endif

#define ATTACK_MS 1500

static uint32_t rng_next(uint32_t *state) {
  *state ^= *state << 13;
  *state ^= *state >> 17;
  *state ^= *state << 5;
  return *state;
}

/* hostile NAME MS: maps the service and, for MS ms, writes random and
 * adversarial values into every field of the control block and sets its
 * events. Prints "done WRITES". */
static int role_hostile(int argc, char **argv) {
  shmrpc__os_service *service = NULL;
  shmrpc__control *control;
  void *area = NULL;
  size_t area_size = 0;
  uint32_t rng = 0x9e3779b9u ^ test_proc_self_pid(), capacity;
  unsigned long writes = 0;
  int64_t end;
  int rc;
  if (argc < 4)
    return 2;
  rc = shmrpc__os_service_open(argv[2], 0, &service, &area, &area_size);
  if (rc != 0) {
    printf("open %s\n", shmrpc_err_name(rc));
    return 1;
  }
  control = area;
  capacity = control->header.capacity;
  printf("attacking\n");
  fflush(stdout);
  end = test_now_ms() + strtol(argv[3], NULL, 10);
  while (test_now_ms() < end) {
    static const uint32_t nasty[] = {0, 1, 2, 3, 4, 0x7fffffffu, 0x80000000u,
                                     0xffffffffu, 0xfffffff0u};
    uint32_t pick = rng_next(&rng), value;
    volatile uint32_t *words = (volatile uint32_t *)(void *)control;
    size_t word = (pick >> 8) % (sizeof(shmrpc__control) / 4);
    switch (pick % 4) {
    case 0:
      value = nasty[(pick >> 4) % (sizeof(nasty) / sizeof(nasty[0]))];
      break;
    case 1:
      value = capacity + (pick >> 28) - 4; /* around the capacity */
      break;
    default:
      value = rng_next(&rng);
    }
    words[word] = value;
    if ((pick & 0xff) == 0)
      shmrpc__os_event_set(service, (pick >> 8) & 1 ? SHMRPC__EVENT_REQUEST
                                                     : SHMRPC__EVENT_RESPONSE);
    writes++;
  }
  shmrpc__os_service_close(service);
  printf("done %lu\n", writes);
  return 0;
}

#ifndef _WIN32
/* asuser NAME: as user nobody, opens NAME and makes one T_ADD call. */
static int role_asuser(int argc, char **argv) {
  shmrpc_client *client = NULL;
  unsigned char req[16], resp[8];
  size_t len = 0;
  int rc;
  if (argc < 3)
    return 2;
  if (setgid(NOBODY_ID) != 0 || setuid(NOBODY_ID) != 0) {
    printf("cannot become nobody\n");
    return 1;
  }
  rc = shmrpc_client_open(&client, argv[2], NULL, 500);
  if (rc != 0) {
    printf("open %s\n", shmrpc_err_name(rc));
    return 0;
  }
  test_put_u64(req, 40);
  test_put_u64(req + 8, 2);
  rc = shmrpc_call(client, T_ADD, req, 16, resp, 8, &len, T_EXIT_MS);
  printf("result %s %llu\n", shmrpc_err_name(rc),
         rc == 0 ? (unsigned long long)test_get_u64(resp) : 0ull);
  shmrpc_client_close(client);
  return 0;
}

static int file_mode(const char *name) {
  char path[256];
  struct stat st;
  snprintf(path, sizeof(path), "/dev/shm/shmrpc.%s", name);
  if (stat(path, &st) != 0)
    return -1;
  return (int)(st.st_mode & 0777);
}

/* Objects are 0600 by default; wider access only when asked. */
static void test_access_modes(void **state) {
  static const int modes[] = {0600, 0660, 0666};
  int access;
  (void)state;
  for (access = SHMRPC_ACCESS_OWNER; access <= SHMRPC_ACCESS_EVERYONE; access++) {
    const char *name = test_service_name("mode");
    shmrpc_server_options options;
    shmrpc_server *server = NULL;
    mode_t old_umask = umask(0077); /* a strict umask must not matter */
    shmrpc_server_options_init(&options);
    options.access = access;
    assert_int_equal(shmrpc_server_create(&server, name, &options), 0);
    umask(old_umask);
    assert_int_equal(file_mode(name), modes[access]);
    shmrpc_server_destroy(server);
  }
}

/* Another user is refused by default and served once access is widened. */
static void test_other_user(void **state) {
  int access;
  (void)state;
  if (geteuid() != 0) {
    print_message("skipped: needs root to run a helper as user nobody\n");
    skip();
  }
  for (access = SHMRPC_ACCESS_OWNER; access <= SHMRPC_ACCESS_EVERYONE;
       access += SHMRPC_ACCESS_EVERYONE) {
    const char *name = test_service_name("user");
    const char *args[] = {"asuser", name, NULL};
    shmrpc_server_options options;
    test_server_thread ts;
    test_proc *other;
    char line[128];
    (void)options;
    test_server_thread_start(&ts, name, 0, NULL);
    if (access == SHMRPC_ACCESS_EVERYONE) {
      /* Widen the running service the way the option does at creation. */
      char path[256];
      snprintf(path, sizeof(path), "/dev/shm/shmrpc.%s", name);
      assert_int_equal(chmod(path, 0666), 0);
    }
    assert_int_equal(test_proc_spawn(&other, args), 0);
    assert_true(test_proc_read_line(other, line, sizeof(line), T_EXIT_MS) > 0);
    assert_string_equal(line, access == SHMRPC_ACCESS_OWNER
                                  ? "open SHMRPC_EACCES"
                                  : "result SHMRPC_OK 42");
    test_expect_exit(other, 0);
    test_proc_free(other);
    test_server_thread_stop(&ts);
  }
}

/* Something else under the service's name: the server refuses to use it,
 * a client refuses to call into it, and nothing of it is changed. */
static void test_squatters_refused(void **state) {
  const char *name = test_service_name("squat");
  shmrpc_server *server = NULL;
  shmrpc_client *client = NULL;
  char path[256], target[256];
  unsigned char junk[4096];
  int fd;
  (void)state;
  snprintf(path, sizeof(path), "/dev/shm/shmrpc.%s", name);
  memset(junk, 0x41, sizeof(junk));

  /* A file of ours that is not a shmrpc service. */
  fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, junk, sizeof(junk)), (int)sizeof(junk));
  close(fd);
  assert_int_equal(shmrpc_server_create(&server, name, NULL), SHMRPC_EPROTO);
  assert_int_equal(shmrpc_client_open(&client, name, NULL, 0), SHMRPC_ENOSERVER);
  assert_int_equal(shmrpc_service_clean(name, 0), SHMRPC_EPROTO);
  assert_int_equal(file_mode(name), 0600); /* still there, untouched */

  /* Another user's object. */
  if (geteuid() == 0) {
    assert_int_equal(chown(path, NOBODY_ID, NOBODY_ID), 0);
    assert_int_equal(shmrpc_server_create(&server, name, NULL), SHMRPC_EACCES);
    assert_int_equal(shmrpc_client_open(&client, name, NULL, 0), SHMRPC_EPROTO);
  }
  assert_int_equal(unlink(path), 0);

  /* A symbolic link where the object should be is never followed. */
  snprintf(target, sizeof(target), "/dev/shm/shmrpc.%s.target", name);
  fd = open(target, O_CREAT | O_EXCL | O_WRONLY, 0600);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(symlink(target, path), 0);
  assert_int_equal(shmrpc_server_create(&server, name, NULL), SHMRPC_EPROTO);
  assert_int_equal(shmrpc_client_open(&client, name, NULL, 0), SHMRPC_EPROTO);
  {
    struct stat st;
    assert_int_equal(stat(target, &st), 0);
    assert_int_equal(st.st_size, 0);
  }
  unlink(path);
  unlink(target);
  assert_null(server);
  assert_null(client);
}
#endif

#ifdef _WIN32
/* ---- Windows: security descriptors and squatters ------------------------ */

/* The kinds of named object a service is made of. */
enum win_kind { WIN_SECTION, WIN_MUTEX, WIN_EVENT };

/* The five objects of a service, as src/win32/os_win32.c names them. */
static const struct {
  const wchar_t *suffix;
  enum win_kind kind;
} win_objects[] = {{L".map", WIN_SECTION},
                   {L".lock", WIN_MUTEX},
                   {L".req", WIN_EVENT},
                   {L".resp", WIN_EVENT},
                   {L".alive", WIN_MUTEX}};
#define WIN_OBJECTS (sizeof(win_objects) / sizeof(win_objects[0]))
#define WIN_MAP 0u   /* index of .map in win_objects */
#define WIN_ALIVE 4u /* index of .alive */

#ifndef EVENT_QUERY_STATE
#define EVENT_QUERY_STATE 0x0001
#endif

/* How Windows maps generic rights to each kind's specific rights (the
 * object types' GENERIC_MAPPING), indexed by enum win_kind. */
static const GENERIC_MAPPING win_generic[] = {
    {STANDARD_RIGHTS_READ | SECTION_QUERY | SECTION_MAP_READ,
     STANDARD_RIGHTS_WRITE | SECTION_MAP_WRITE,
     STANDARD_RIGHTS_EXECUTE | SECTION_MAP_EXECUTE, SECTION_ALL_ACCESS},
    {STANDARD_RIGHTS_READ | MUTANT_QUERY_STATE, STANDARD_RIGHTS_WRITE,
     STANDARD_RIGHTS_EXECUTE | SYNCHRONIZE, MUTANT_ALL_ACCESS},
    {STANDARD_RIGHTS_READ | EVENT_QUERY_STATE,
     STANDARD_RIGHTS_WRITE | EVENT_MODIFY_STATE,
     STANDARD_RIGHTS_EXECUTE | SYNCHRONIZE, EVENT_ALL_ACCESS}};

/* The rights a client of another user opens each kind with (os_win32.c:
 * mapping_open, WIN32_MUTEX_RIGHTS, WIN32_EVENT_RIGHTS, and READ_CONTROL
 * where it checks the owner). */
static const ACCESS_MASK win_client_rights[] = {
    FILE_MAP_READ | FILE_MAP_WRITE | READ_CONTROL,
    SYNCHRONIZE | MUTEX_MODIFY_STATE | READ_CONTROL,
    SYNCHRONIZE | EVENT_MODIFY_STATE};

/* Local\shmrpc.NAME.SUFFIX; service names are ASCII (shmrpc_name_check). */
static void win_object_name(wchar_t *out, size_t cap, const char *name,
                            const wchar_t *suffix) {
  static const wchar_t prefix[] = L"Local\\shmrpc.";
  size_t used = 0, i;
  assert_true(wcslen(prefix) + strlen(name) + wcslen(suffix) < cap);
  for (i = 0; prefix[i] != L'\0'; i++)
    out[used++] = prefix[i];
  for (i = 0; name[i] != '\0'; i++)
    out[used++] = (wchar_t)(unsigned char)name[i];
  for (i = 0; suffix[i] != L'\0'; i++)
    out[used++] = suffix[i];
  out[used] = L'\0';
}

static HANDLE win_object_open(enum win_kind kind, const wchar_t *object,
                              DWORD access) {
  switch (kind) {
  case WIN_SECTION:
    return OpenFileMappingW(access, FALSE, object);
  case WIN_MUTEX:
    return OpenMutexW(access, FALSE, object);
  default:
    return OpenEventW(access, FALSE, object);
  }
}

/* The SID of this process's user (a static copy). */
static PSID win_current_user(void) {
  static union {
    TOKEN_USER user;
    unsigned char bytes[sizeof(TOKEN_USER) + SECURITY_MAX_SID_SIZE];
  } info;
  HANDLE token = NULL;
  DWORD len = 0;
  assert_true(OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token));
  assert_true(GetTokenInformation(token, TokenUser, &info, sizeof(info), &len));
  CloseHandle(token);
  return info.user.User.Sid;
}

/* The descriptor as SDDL text, for failure messages (LocalFree it). */
static char *win_sddl(PSECURITY_DESCRIPTOR descriptor) {
  char *text = NULL;
  if (!ConvertSecurityDescriptorToStringSecurityDescriptorA(
          descriptor, SDDL_REVISION_1,
          OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION, &text, NULL))
    return NULL;
  return text;
}

/* Fails the test with the object and its descriptor if cond is false. */
static void win_expect(int cond, const char *what, const char *name,
                       size_t object, const char *sddl) {
  if (!cond) {
    print_error("%s: object %lu of %s, descriptor %s\n", what,
                (unsigned long)object, name, sddl != NULL ? sddl : "?");
    fail();
  }
}

/* Reads back the descriptor of every named object of a new service, for
 * each access option: an explicit DACL (never a NULL one), owned by this
 * user; the owner's ACE alone by default; one more ACE, for Authenticated
 * Users (S-1-5-11) or Everyone (S-1-1-0), when access is widened, that
 * grants what a client needs and never WRITE_DAC, WRITE_OWNER or DELETE. */
static void test_access_descriptors(void **state) {
  PSID user = win_current_user();
  PSID wider[SHMRPC_ACCESS_EVERYONE + 1] = {NULL, NULL, NULL};
  int access;
  (void)state;
  assert_true(ConvertStringSidToSidW(L"S-1-5-11", &wider[SHMRPC_ACCESS_GROUP]));
  assert_true(
      ConvertStringSidToSidW(L"S-1-1-0", &wider[SHMRPC_ACCESS_EVERYONE]));

  for (access = SHMRPC_ACCESS_OWNER; access <= SHMRPC_ACCESS_EVERYONE;
       access++) {
    const char *name = test_service_name("sd");
    shmrpc_server_options options;
    shmrpc_server *server = NULL;
    size_t i;
    shmrpc_server_options_init(&options);
    options.access = access;
    assert_int_equal(shmrpc_server_create(&server, name, &options), 0);

    for (i = 0; i < WIN_OBJECTS; i++) {
      enum win_kind kind = win_objects[i].kind;
      GENERIC_MAPPING mapping = win_generic[kind];
      wchar_t object[128];
      HANDLE handle;
      PSID owner = NULL;
      PACL dacl = NULL;
      PSECURITY_DESCRIPTOR descriptor = NULL;
      SECURITY_DESCRIPTOR_CONTROL control = 0;
      DWORD revision = 0, ace;
      ACL_SIZE_INFORMATION acl;
      unsigned user_aces = 0, wider_aces = 0;
      char *sddl;

      win_object_name(object, sizeof(object) / sizeof(object[0]), name,
                      win_objects[i].suffix);
      handle = win_object_open(kind, object, READ_CONTROL);
      win_expect(handle != NULL, "cannot open with READ_CONTROL", name, i,
                 NULL);
      assert_int_equal(GetSecurityInfo(handle, SE_KERNEL_OBJECT,
                                       OWNER_SECURITY_INFORMATION |
                                           DACL_SECURITY_INFORMATION,
                                       &owner, NULL, &dacl, NULL, &descriptor),
                       ERROR_SUCCESS);
      sddl = win_sddl(descriptor);
      if (getenv("SHMRPC_TEST_DEBUG"))
        print_message("access %d object %lu: %s\n", access, (unsigned long)i,
                      sddl != NULL ? sddl : "?");
      assert_true(GetSecurityDescriptorControl(descriptor, &control, &revision));
      win_expect((control & SE_DACL_PRESENT) != 0 && dacl != NULL,
                 "no DACL, or a NULL DACL", name, i, sddl);
      win_expect((control & SE_DACL_PROTECTED) != 0,
                 "a DACL that inherits ACEs", name, i, sddl);
      win_expect(owner != NULL && EqualSid(owner, user),
                 "not owned by this user", name, i, sddl);
      assert_true(GetAclInformation(dacl, &acl, sizeof(acl), AclSizeInformation));
      win_expect(acl.AceCount == (access == SHMRPC_ACCESS_OWNER ? 1u : 2u),
                 "wrong number of ACEs", name, i, sddl);

      for (ace = 0; ace < acl.AceCount; ace++) {
        void *entry = NULL;
        const ACE_HEADER *header;
        const ACCESS_ALLOWED_ACE *allowed;
        ACCESS_MASK mask;
        PSID sid;
        assert_true(GetAce(dacl, ace, &entry));
        header = entry;
        win_expect(header->AceType == ACCESS_ALLOWED_ACE_TYPE,
                   "an ACE that does not allow", name, i, sddl);
        allowed = entry;
        sid = (PSID)&allowed->SidStart;
        mask = allowed->Mask;
        /* Windows stores the rights mapped; map them here too, either way. */
        MapGenericMask(&mask, &mapping);
        if (EqualSid(sid, user)) {
          user_aces++;
          win_expect((mask & mapping.GenericAll) == mapping.GenericAll,
                     "the owner lacks full access", name, i, sddl);
        } else if (access != SHMRPC_ACCESS_OWNER && EqualSid(sid, wider[access])) {
          wider_aces++;
          win_expect((allowed->Mask & GENERIC_ALL) == 0 &&
                         (mask & (WRITE_DAC | WRITE_OWNER | DELETE)) == 0,
                     "the wider ACE may change the DACL or owner", name, i,
                     sddl);
          win_expect((mask & win_client_rights[kind]) ==
                         win_client_rights[kind],
                     "the wider ACE lacks a client's rights", name, i, sddl);
        } else {
          win_expect(0, "an ACE for an unexpected SID", name, i, sddl);
        }
      }
      win_expect(user_aces == 1, "not one ACE for the owner", name, i, sddl);
      win_expect(wider_aces == (access == SHMRPC_ACCESS_OWNER ? 0u : 1u),
                 "not one ACE for the wider group", name, i, sddl);
      LocalFree(sddl);
      LocalFree(descriptor);
      CloseHandle(handle);
    }
    shmrpc_server_destroy(server);
    assert_int_equal(test_service_objects_exist(name), 0);
  }
  LocalFree(wider[SHMRPC_ACCESS_GROUP]);
  LocalFree(wider[SHMRPC_ACCESS_EVERYONE]);
}

/* What each entry point answers while a squatter holds a name. */
typedef struct squat_expect {
  int create, open, query, clean;
} squat_expect;

static void win_expect_refused(const char *name, const squat_expect *expect) {
  shmrpc_server *server = NULL;
  shmrpc_client *client = NULL;
  shmrpc_service_info info;
  assert_int_equal(shmrpc_server_create(&server, name, NULL), expect->create);
  assert_null(server);
  assert_int_equal(shmrpc_client_open(&client, name, NULL, 0), expect->open);
  assert_null(client);
  assert_int_equal(shmrpc_service_query(name, 0, &info), expect->query);
  assert_int_equal(shmrpc_service_clean(name, 0), expect->clean);
}

/* A refused server leaves nothing behind: of the service's names, only the
 * squatter's (index squatted) exists. */
static void win_expect_only_squatter(const char *name, size_t squatted) {
  size_t i;
  for (i = 0; i < WIN_OBJECTS; i++) {
    wchar_t object[128];
    HANDLE handle;
    if (i == squatted)
      continue;
    win_object_name(object, sizeof(object) / sizeof(object[0]), name,
                    win_objects[i].suffix);
    handle = win_object_open(win_objects[i].kind, object,
                             win_objects[i].kind == WIN_SECTION
                                 ? FILE_MAP_READ
                                 : SYNCHRONIZE);
    if (handle != NULL) {
      CloseHandle(handle);
      print_error("object %lu of %s left behind\n", (unsigned long)i, name);
      fail();
    }
    assert_int_equal(GetLastError(), ERROR_FILE_NOT_FOUND);
  }
}

/* Security attributes for a squatter's object, made from SDDL: owned by
 * `owner` (this user when NULL), with a protected DACL that grants this
 * user everything when grant_user is set, and no one anything otherwise.
 * The descriptor is explicit because Wine gives an object made without one
 * no owner at all, which the library's owner check would refuse first. */
static void win_squatter_attributes(SECURITY_ATTRIBUTES *attributes,
                                    const wchar_t *owner, int grant_user) {
  PSECURITY_DESCRIPTOR descriptor = NULL;
  wchar_t *user = NULL, sddl[512];
  assert_true(ConvertSidToStringSidW(win_current_user(), &user));
  assert_true(wcslen(user) < 150 && (owner == NULL || wcslen(owner) < 150));
  wcscpy(sddl, L"O:");
  wcscat(sddl, owner != NULL ? owner : user);
  wcscat(sddl, L"D:P");
  if (grant_user) {
    wcscat(sddl, L"(A;;GA;;;");
    wcscat(sddl, user);
    wcscat(sddl, L")");
  }
  LocalFree(user);
  assert_true(ConvertStringSecurityDescriptorToSecurityDescriptorW(
      sddl, SDDL_REVISION_1, &descriptor, NULL));
  attributes->nLength = sizeof(*attributes);
  attributes->lpSecurityDescriptor = descriptor;
  attributes->bInheritHandle = FALSE;
}

/* A section under NAME.map, `size` bytes of `fill` from byte `from` on
 * (zeros before it). */
static HANDLE win_section_squat(const wchar_t *object, DWORD size, DWORD from,
                                unsigned char fill,
                                SECURITY_ATTRIBUTES *attributes) {
  HANDLE section = CreateFileMappingW(INVALID_HANDLE_VALUE, attributes,
                                      PAGE_READWRITE, 0, size, object);
  DWORD error = GetLastError();
  unsigned char *view;
  assert_non_null(section);
  assert_int_not_equal(error, ERROR_ALREADY_EXISTS);
  view = MapViewOfFile(section, FILE_MAP_WRITE, 0, 0, 0);
  assert_non_null(view);
  memset(view, 0, from);
  memset(view + from, fill, size - from);
  UnmapViewOfFile(view);
  return section;
}

/* Every byte of the section from byte `from` on is still `fill`. */
static void win_expect_section_untouched(HANDLE section, DWORD size, DWORD from,
                                         unsigned char fill) {
  const unsigned char *view = MapViewOfFile(section, FILE_MAP_READ, 0, 0, 0);
  DWORD i;
  assert_non_null(view);
  for (i = from; i < size && view[i] == fill; i++)
    ;
  UnmapViewOfFile(view);
  if (i != size) {
    print_error("the squatter's section changed at byte %lu\n",
                (unsigned long)i);
    fail();
  }
}

/* Something else under a service's names: the server refuses to use it,
 * a client refuses to call into it, and nothing of it is changed. On
 * Windows a squatter is a named object that shmrpc did not make: an object
 * of the wrong type under one of the five names, a section of ours that is
 * not a shmrpc service, an object whose DACL refuses us (the counterpart of
 * another user's file), and an object another SID owns. (Symbolic links
 * and file modes have no counterpart among named kernel objects.) */
static void test_squatters_refused(void **state) {
  wchar_t object[128];
  size_t i;
  (void)state;

  /* The wrong type under each name: a mutex where a section or an event
   * belongs, a set event where a mutex belongs. Windows refuses to open an
   * object as another type (ERROR_INVALID_HANDLE): SHMRPC_EPROTO. Whoever
   * looks at a name that is not there answers SHMRPC_ENOSERVER. */
  for (i = 0; i < WIN_OBJECTS; i++) {
    const char *name = test_service_name("squat");
    SECURITY_ATTRIBUTES attributes;
    squat_expect expect;
    HANDLE squatter, again;
    win_object_name(object, sizeof(object) / sizeof(object[0]), name,
                    win_objects[i].suffix);
    win_squatter_attributes(&attributes, NULL, 1);
    squatter = win_objects[i].kind == WIN_MUTEX
                   ? CreateEventW(&attributes, TRUE, TRUE, object)
                   : CreateMutexW(&attributes, FALSE, object);
    LocalFree(attributes.lpSecurityDescriptor);
    assert_non_null(squatter);
    expect.create = SHMRPC_EPROTO;
    expect.open = i == WIN_MAP ? SHMRPC_EPROTO : SHMRPC_ENOSERVER;
    expect.query = expect.open;
    /* clean looks at the section, then at the liveness token. */
    expect.clean = i == WIN_MAP || i == WIN_ALIVE ? SHMRPC_EPROTO : 0;
    win_expect_refused(name, &expect);
    win_expect_only_squatter(name, i);
    /* Untouched: the event still set, the mutex free and never abandoned;
     * still there under its name, as the type it was made. */
    assert_int_equal(WaitForSingleObject(squatter, 0), WAIT_OBJECT_0);
    if (win_objects[i].kind != WIN_MUTEX)
      assert_true(ReleaseMutex(squatter));
    again = win_objects[i].kind == WIN_MUTEX
                ? OpenEventW(SYNCHRONIZE, FALSE, object)
                : OpenMutexW(SYNCHRONIZE, FALSE, object);
    assert_non_null(again);
    CloseHandle(again);
    CloseHandle(squatter);
    assert_int_equal(test_service_objects_exist(name), 0);
  }

  /* A section of ours that is not a shmrpc service, and no liveness token:
   * larger than a service, and smaller. */
  for (i = 0; i < 2; i++) {
    const char *name = test_service_name("squat");
    static const squat_expect expect = {SHMRPC_EPROTO, SHMRPC_EPROTO,
                                        SHMRPC_EPROTO, SHMRPC_EPROTO};
    DWORD size = i == 0 ? 1u << 20 : 4096u;
    SECURITY_ATTRIBUTES attributes;
    HANDLE section;
    win_object_name(object, sizeof(object) / sizeof(object[0]), name,
                    win_objects[WIN_MAP].suffix);
    win_squatter_attributes(&attributes, NULL, 1);
    section = win_section_squat(object, size, 0, 0x41, &attributes);
    LocalFree(attributes.lpSecurityDescriptor);
    win_expect_refused(name, &expect);
    win_expect_only_squatter(name, WIN_MAP);
    win_expect_section_untouched(section, size, 0, 0x41);
    CloseHandle(section);
    assert_int_equal(test_service_objects_exist(name), 0);
  }

  /* An object of ours whose DACL grants nothing (the owner keeps only
   * READ_CONTROL and WRITE_DAC): opening it is refused, SHMRPC_EACCES, as
   * for another user's file on Linux. Under the section's name, then under
   * the liveness token's. */
  for (i = 0; i < 2; i++) {
    const char *name = test_service_name("squat");
    size_t index = i == 0 ? WIN_MAP : WIN_ALIVE;
    SECURITY_ATTRIBUTES attributes;
    squat_expect expect;
    HANDLE squatter;
    win_object_name(object, sizeof(object) / sizeof(object[0]), name,
                    win_objects[index].suffix);
    win_squatter_attributes(&attributes, NULL, 0);
    squatter = index == WIN_MAP
                   ? win_section_squat(object, 4096, 0, 0x41, &attributes)
                   : CreateMutexW(&attributes, FALSE, object);
    LocalFree(attributes.lpSecurityDescriptor);
    assert_non_null(squatter);
    expect.create = SHMRPC_EACCES;
    expect.open = index == WIN_MAP ? SHMRPC_EACCES : SHMRPC_ENOSERVER;
    expect.query = expect.open;
    expect.clean = SHMRPC_EACCES;
    win_expect_refused(name, &expect);
    win_expect_only_squatter(name, index);
    if (index == WIN_MAP) {
      win_expect_section_untouched(squatter, 4096, 0, 0x41);
    } else {
      assert_int_equal(WaitForSingleObject(squatter, 0), WAIT_OBJECT_0);
      assert_true(ReleaseMutex(squatter));
    }
    CloseHandle(squatter);
    assert_int_equal(test_service_objects_exist(name), 0);
  }

  /* An object another SID owns, though its DACL lets us in: the owner
   * check refuses it, SHMRPC_EPROTO (a client opens only services of its
   * own user, LocalSystem or Administrators). Making an object for another
   * owner needs SeRestorePrivilege on Windows; Wine allows it. */
  for (i = 0; i < 2; i++) {
    const char *name = test_service_name("squat");
    size_t index = i == 0 ? WIN_MAP : WIN_ALIVE;
    squat_expect expect = {SHMRPC_EPROTO, SHMRPC_EPROTO, SHMRPC_EPROTO,
                           SHMRPC_EPROTO};
    SECURITY_ATTRIBUTES attributes;
    HANDLE squatter;
    DWORD error;
    win_object_name(object, sizeof(object) / sizeof(object[0]), name,
                    win_objects[index].suffix);
    /* S-1-5-21-1-2-3-4242: a local account that is not us. */
    win_squatter_attributes(&attributes, L"S-1-5-21-1-2-3-4242", 1);
    squatter = index == WIN_MAP
                   ? CreateFileMappingW(INVALID_HANDLE_VALUE, &attributes,
                                        PAGE_READWRITE, 0, 4096, object)
                   : CreateMutexW(&attributes, FALSE, object);
    error = GetLastError();
    LocalFree(attributes.lpSecurityDescriptor);
    if (squatter == NULL && error == ERROR_INVALID_OWNER) {
      print_message("not checked: this system refuses to make an object "
                    "for another owner\n");
      continue;
    }
    assert_non_null(squatter);
    if (index == WIN_ALIVE) {
      /* A client and a query look at the section first: none is there. */
      expect.open = SHMRPC_ENOSERVER;
      expect.query = SHMRPC_ENOSERVER;
    }
    win_expect_refused(name, &expect);
    win_expect_only_squatter(name, index);
    CloseHandle(squatter);
    assert_int_equal(test_service_objects_exist(name), 0);
  }
}
#endif

typedef struct honest {
  const char *name;
  int64_t end_ms;
  int32_t timeout_ms;
  unsigned long ok, clean_errors, unclean, overran;
  int64_t worst_overrun_ms;
} honest;

/* Calls with checked arguments while the attack runs. During the attack an
 * answer may be wrong (the attacker can rewrite the method or the lengths);
 * what must hold is that every call returns, within its timeout, with a
 * result or a clean error. */
static void honest_thread(void *arg) {
  honest *h = arg;
  shmrpc_client *client = NULL;
  uint64_t i = 0;
  while (test_now_ms() < h->end_ms) {
    unsigned char req[16], resp[64];
    size_t len = 0;
    int64_t started, took;
    int rc;
    if (client == NULL &&
        shmrpc_client_open(&client, h->name, NULL, h->timeout_ms) != 0) {
      client = NULL;
      h->clean_errors++;
      continue;
    }
    test_put_u64(req, i);
    test_put_u64(req + 8, i);
    i++;
    started = test_now_ms();
    rc = shmrpc_call(client, T_ADD, req, 16, resp, sizeof(resp), &len,
                     h->timeout_ms);
    took = test_now_ms() - started;
    /* A generous margin over the timeout: this detects a hang, it does not
     * time the library. */
    if (took > h->timeout_ms + 2000) {
      h->overran++;
      if (took - h->timeout_ms > h->worst_overrun_ms)
        h->worst_overrun_ms = took - h->timeout_ms;
    }
    switch (rc) {
    case 0:
      h->ok++;
      break;
    case SHMRPC_ETIMEDOUT:
    case SHMRPC_EPROTO:
    case SHMRPC_EAPP:
    case SHMRPC_ENOMETHOD:
    case SHMRPC_ETOOBIG:
    case SHMRPC_ESHUTDOWN:
    case SHMRPC_ESERVERDIED:
    case SHMRPC_ENOSERVER:
      h->clean_errors++;
      break;
    default:
      h->unclean++;
    }
  }
  shmrpc_client_close(client);
}

/* A hostile process writes garbage into the control block while honest
 * callers call. The server survives and keeps answering signals; callers
 * never hang; afterwards calls succeed again at once. */
static void test_hostile_writer(void **state) {
  const char *name = test_service_name("hostile");
  const char *server_args[] = {"server", name, "4096", "safe", NULL};
  test_proc *server;
  test_proc *hostile;
  test_thread *threads[2];
  honest callers[2];
  shmrpc_client *client = NULL;
  shmrpc_service_info info;
  char line[128], duration[16];
  int64_t attack_end, recovered_ms = -1, repaired_ms = -1;
  uint64_t good_generation;
  unsigned long writes = 0;
  int i, code = -1;
  (void)state;

  assert_int_equal(test_proc_spawn(&server, server_args), 0);
  assert_true(test_proc_read_line(server, line, sizeof(line), T_READY_MS) > 0);
  assert_string_equal(line, "ready");
  assert_int_equal(shmrpc_service_query(name, 0, &info), 0);
  good_generation = info.generation;
  snprintf(duration, sizeof(duration), "%d", ATTACK_MS);
  {
    const char *args[] = {"hostile", name, duration, NULL};
    assert_int_equal(test_proc_spawn(&hostile, args), 0);
  }
  assert_true(test_proc_read_line(hostile, line, sizeof(line), T_READY_MS) > 0);
  assert_string_equal(line, "attacking");
  for (i = 0; i < 2; i++) {
    memset(&callers[i], 0, sizeof(callers[i]));
    callers[i].name = name;
    callers[i].end_ms = test_now_ms() + ATTACK_MS;
    callers[i].timeout_ms = i == 0 ? 50 : 300;
    assert_int_equal(test_thread_start(&threads[i], honest_thread, &callers[i]), 0);
  }
  assert_true(test_proc_read_line(hostile, line, sizeof(line), T_EXIT_MS) > 0);
  assert_int_equal(sscanf(line, "done %lu", &writes), 1);
  attack_end = test_now_ms();
  test_expect_exit(hostile, 0);
  test_proc_free(hostile);
  for (i = 0; i < 2; i++) {
    test_thread_join(threads[i]);
    print_message("caller %d (timeout %d ms): %lu answers, %lu clean errors, "
                  "%lu unclean, %lu overran (worst +%lld ms)\n",
                  i, (int)callers[i].timeout_ms, callers[i].ok,
                  callers[i].clean_errors, callers[i].unclean,
                  callers[i].overran, (long long)callers[i].worst_overrun_ms);
    assert_int_equal(callers[i].unclean, 0);
    assert_int_equal(callers[i].overran, 0);
  }

  /* The server still runs and puts its header back (a client that
   * connected while the header was scribbled on took a forged generation
   * and reports the server dead once; one that connects after the repair
   * must simply work). */
  assert_int_equal(test_proc_wait(server, 0, &code), -1);
  while (repaired_ms < 0 && test_now_ms() - attack_end < 2000) {
    if (shmrpc_service_query(name, 0, &info) == 0 && info.alive &&
        info.generation == good_generation)
      repaired_ms = test_now_ms() - attack_end;
    else
      test_sleep_ms(1);
  }
  print_message("header repaired %ld ms after the attack\n", (long)repaired_ms);
  assert_true(repaired_ms >= 0);
  while (recovered_ms < 0 && test_now_ms() - attack_end < 2000) {
    unsigned char req[16], resp[8];
    size_t len = 0;
    if (client == NULL) {
      int rc = shmrpc_client_open(&client, name, NULL, 100);
      if (rc != 0) {
        if (getenv("SHMRPC_TEST_DEBUG"))
          print_message("after attack: open %s\n", shmrpc_err_name(rc));
        client = NULL;
        continue;
      }
    }
    test_put_u64(req, 1234);
    test_put_u64(req + 8, 4321);
    {
      int rc = shmrpc_call(client, T_ADD, req, 16, resp, 8, &len, 100);
      if (rc == 0 && len == 8 && test_get_u64(resp) == 5555)
        recovered_ms = test_now_ms() - attack_end;
      else if (getenv("SHMRPC_TEST_DEBUG"))
        print_message("after attack: %s len %lu\n", shmrpc_err_name(rc),
                      (unsigned long)len);
    }
  }
  print_message("%lu hostile writes; correct answers again %lld ms after the "
                "attack\n",
                writes, (long long)recovered_ms);
  assert_true(recovered_ms >= 0);
  for (i = 0; i < 100; i++) {
    unsigned char req[16], resp[8];
    size_t len = 0;
    test_put_u64(req, (uint64_t)i);
    test_put_u64(req + 8, 1);
    assert_int_equal(shmrpc_call(client, T_ADD, req, 16, resp, 8, &len, T_EXIT_MS), 0);
    assert_int_equal(test_get_u64(resp), (uint64_t)i + 1);
  }
  assert_int_equal(shmrpc_service_query(name, 0, &info), 0);
  assert_int_equal(info.alive, 1);

  /* This server has no stop method (the attacker could call it): kill it
   * and remove its names. */
  shmrpc_client_close(client);
  test_proc_kill(server);
  test_proc_free(server);
  test_wait_service_dead(name);
  assert_int_equal(shmrpc_service_clean(name, 0), 0);
  assert_int_equal(test_service_objects_exist(name), 0);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
#ifndef _WIN32
      cmocka_unit_test(test_access_modes),
      cmocka_unit_test(test_other_user),
#else
      cmocka_unit_test(test_access_descriptors),
#endif
      cmocka_unit_test(test_squatters_refused),
      cmocka_unit_test(test_hostile_writer),
  };
  int helper;
  test_proc_init(argv[0]);
  if (argc > 1 && strcmp(argv[1], "hostile") == 0) {
    test_proc_helper_started();
    return role_hostile(argc, argv);
  }
#ifndef _WIN32
  if (argc > 1 && strcmp(argv[1], "asuser") == 0) {
    test_proc_helper_started();
    return role_asuser(argc, argv);
  }
#endif
  helper = test_helper_main(argc, argv);
  if (helper >= 0)
    return helper;
  return cmocka_run_group_tests(tests, NULL, NULL);
}
