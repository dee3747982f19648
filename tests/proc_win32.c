/*
 * Test support on Windows (tests/proc.h): helper processes are this same
 * executable, started with CreateProcessW; their stdout is an anonymous
 * pipe that test_proc_read_line polls until its deadline.
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

#include <process.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "proc.h"

/* Bytes of child output kept while no complete line has arrived. */
#define PROC_PENDING_MAX 8192

struct test_proc {
  HANDLE process;                 /* the child process */
  HANDLE stdout_read;             /* our end of the child's stdout pipe */
  int exited;                     /* 1 once the child was waited for */
  int exit_code;                  /* valid when exited */
  int eof;                        /* 1 once the pipe reported end of file */
  size_t pending_len;             /* bytes in pending */
  char pending[PROC_PENDING_MAX]; /* output not yet returned as lines */
};

struct test_thread {
  HANDLE handle;
  void (*fn)(void *);
  void *arg;
};

/* The path of this executable, set by test_proc_init. */
static wchar_t self_path[MAX_PATH * 4];

/* Handles a child may inherit are made inheritable only while this lock is
 * held, so a child started by another thread never inherits the write end
 * of someone else's pipe (which would hide that pipe's end of file). */
static SRWLOCK spawn_lock = SRWLOCK_INIT;

/* Every helper runs in this job, which kills them all when this process
 * exits: a test that fails half-way (cmocka jumps out of it) must not leave
 * a helper running, or it would hold the test runner's output pipe open.
 * Created on the first spawn, under spawn_lock; NULL if jobs are refused. */
static HANDLE helper_job;

static HANDLE helper_job_get(void) {
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION limits;
  if (helper_job != NULL)
    return helper_job;
  helper_job = CreateJobObjectW(NULL, NULL);
  if (helper_job == NULL)
    return NULL;
  memset(&limits, 0, sizeof limits);
  limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
  if (!SetInformationJobObject(helper_job, JobObjectExtendedLimitInformation,
                               &limits, sizeof limits)) {
    CloseHandle(helper_job);
    helper_job = NULL;
  }
  return helper_job;
}

void test_proc_init(const char *argv0) {
  DWORD len;
  (void)argv0; /* argv[0] may be relative or lack ".exe"; ask Windows. */
  len = GetModuleFileNameW(NULL, self_path,
                           (DWORD)(sizeof self_path / sizeof self_path[0]));
  if (len == 0 || len >= sizeof self_path / sizeof self_path[0]) {
    fprintf(stderr, "test_proc_init: GetModuleFileNameW failed (%lu)\n",
            (unsigned long)GetLastError());
    self_path[0] = L'\0';
  }
}

/* ---- Command line ------------------------------------------------------- */

/* A growing wide string. */
typedef struct wide_text {
  wchar_t *chars;
  size_t len;
  size_t cap;
} wide_text;

static int text_push(wide_text *text, wchar_t c) {
  if (text->len + 2 > text->cap) {
    size_t cap = text->cap == 0 ? 256 : text->cap * 2;
    wchar_t *chars = realloc(text->chars, cap * sizeof *chars);
    if (chars == NULL)
      return -1;
    text->chars = chars;
    text->cap = cap;
  }
  text->chars[text->len++] = c;
  text->chars[text->len] = L'\0';
  return 0;
}

static int text_push_n(wide_text *text, wchar_t c, size_t count) {
  for (; count > 0; count--)
    if (text_push(text, c) != 0)
      return -1;
  return 0;
}

/*
 * Appends one argument quoted so that the C runtime's argv parser (and
 * CommandLineToArgvW) gives it back unchanged: backslashes are literal
 * unless they precede a double quote, where they must be doubled.
 */
static int text_push_argument(wide_text *text, const wchar_t *arg) {
  size_t backslashes = 0;
  const wchar_t *p;

  if (text->len > 0 && text_push(text, L' ') != 0)
    return -1;
  if (arg[0] != L'\0' && wcspbrk(arg, L" \t\n\v\"") == NULL) {
    for (p = arg; *p != L'\0'; p++)
      if (text_push(text, *p) != 0)
        return -1;
    return 0;
  }
  if (text_push(text, L'"') != 0)
    return -1;
  for (p = arg;; p++) {
    if (*p == L'\\') {
      backslashes++;
      continue;
    }
    if (*p == L'\0') {
      /* Double them so the closing quote stays a quote. */
      if (text_push_n(text, L'\\', backslashes * 2) != 0)
        return -1;
      break;
    }
    if (*p == L'"') {
      if (text_push_n(text, L'\\', backslashes * 2 + 1) != 0)
        return -1;
    } else if (text_push_n(text, L'\\', backslashes) != 0) {
      return -1;
    }
    backslashes = 0;
    if (text_push(text, *p) != 0)
      return -1;
  }
  return text_push(text, L'"');
}

static wchar_t *utf8_to_wide(const char *utf8) {
  int len = MultiByteToWideChar(CP_UTF8, 0, utf8, -1, NULL, 0);
  wchar_t *wide;
  if (len <= 0)
    return NULL;
  wide = malloc((size_t)len * sizeof *wide);
  if (wide == NULL)
    return NULL;
  if (MultiByteToWideChar(CP_UTF8, 0, utf8, -1, wide, len) != len) {
    free(wide);
    return NULL;
  }
  return wide;
}

/* "exe" arg1 arg2 ..., or NULL. */
static wchar_t *command_line_build(const char *const args[]) {
  wide_text text = {NULL, 0, 0};
  const wchar_t *p;
  size_t i;

  /* The program name is parsed without backslash escapes: just quote it. */
  if (text_push(&text, L'"') != 0)
    goto fail;
  for (p = self_path; *p != L'\0'; p++)
    if (text_push(&text, *p) != 0)
      goto fail;
  if (text_push(&text, L'"') != 0)
    goto fail;
  for (i = 0; args[i] != NULL; i++) {
    wchar_t *wide = utf8_to_wide(args[i]);
    int err;
    if (wide == NULL)
      goto fail;
    err = text_push_argument(&text, wide);
    free(wide);
    if (err != 0)
      goto fail;
  }
  return text.chars;

fail:
  free(text.chars);
  return NULL;
}

/* ---- Processes ---------------------------------------------------------- */

static HANDLE inheritable_copy(HANDLE handle) {
  HANDLE copy = NULL;
  if (handle == NULL || handle == INVALID_HANDLE_VALUE)
    return NULL;
  if (!DuplicateHandle(GetCurrentProcess(), handle, GetCurrentProcess(), &copy,
                       0, TRUE, DUPLICATE_SAME_ACCESS))
    return NULL;
  return copy;
}

int test_proc_spawn(test_proc **out, const char *const args[]) {
  SECURITY_ATTRIBUTES inherit = {sizeof inherit, NULL, TRUE};
  STARTUPINFOW startup;
  PROCESS_INFORMATION info;
  HANDLE stdout_write = NULL;
  HANDLE child_stdin = NULL, child_stdout = NULL, child_stderr = NULL;
  test_proc *proc;
  wchar_t *command_line;
  BOOL started = FALSE;
  int attempt;
  DWORD spawn_error = 0;

  *out = NULL;
  if (self_path[0] == L'\0')
    return -1;
  proc = calloc(1, sizeof *proc);
  if (proc == NULL)
    return -1;
  command_line = command_line_build(args);
  if (command_line == NULL) {
    free(proc);
    return -1;
  }
  /* Both ends start private; only a copy of the write end is inherited. */
  if (!CreatePipe(&proc->stdout_read, &stdout_write, NULL, 0)) {
    free(command_line);
    free(proc);
    return -1;
  }

  AcquireSRWLockExclusive(&spawn_lock);
  child_stdin =
      CreateFileW(L"NUL", GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE,
                  &inherit, OPEN_EXISTING, 0, NULL);
  if (child_stdin == INVALID_HANDLE_VALUE)
    child_stdin = NULL;
  child_stdout = inheritable_copy(stdout_write);
  child_stderr = inheritable_copy(GetStdHandle(STD_ERROR_HANDLE));
  memset(&startup, 0, sizeof startup);
  startup.cb = sizeof startup;
  startup.dwFlags = STARTF_USESTDHANDLES;
  startup.hStdInput = child_stdin;
  startup.hStdOutput = child_stdout;
  startup.hStdError = child_stderr;
  /* Suspended until it is in the job, so it cannot escape it. */
  /* Wine now and then fails a spawn with ERROR_INTERNAL_ERROR and
   * succeeds on the next try: allow it two more. */
  for (attempt = 0; attempt < 3; attempt++) {
    started = child_stdout != NULL &&
              CreateProcessW(self_path, command_line, NULL, NULL, TRUE,
                             CREATE_SUSPENDED, NULL, NULL, &startup, &info);
    spawn_error = started ? 0 : GetLastError();
    if (started || spawn_error != ERROR_INTERNAL_ERROR)
      break;
  }
  if (started) {
    HANDLE job = helper_job_get();
    /* Best effort: an enclosing job may forbid nesting (Windows 7). */
    if (job != NULL)
      (void)AssignProcessToJobObject(job, info.hProcess);
    ResumeThread(info.hThread);
  }
  ReleaseSRWLockExclusive(&spawn_lock);

  /* Only the child holds a write end now: its exit ends our reads. */
  CloseHandle(stdout_write);
  free(command_line);
  if (!started) {
    fprintf(stderr, "test_proc_spawn: CreateProcessW failed (%lu)\n",
            (unsigned long)spawn_error);
    CloseHandle(proc->stdout_read);
    free(proc);
    return -1;
  }
  CloseHandle(info.hThread);
  proc->process = info.hProcess;
  *out = proc;
  return 0;
}

int test_proc_fork_sleeper(void) {
  wchar_t command_line[1200];
  STARTUPINFOW startup;
  PROCESS_INFORMATION info;
  if (wcslen(self_path) + 16 > sizeof command_line / sizeof command_line[0])
    return -1;
  wcscpy(command_line, L"\"");
  wcscat(command_line, self_path);
  wcscat(command_line, L"\" sleeper");
  memset(&startup, 0, sizeof startup);
  startup.cb = sizeof startup;
  /* Every inheritable handle goes with it: none of the library's is. */
  if (!CreateProcessW(self_path, command_line, NULL, NULL, TRUE, 0, NULL,
                      NULL, &startup, &info))
    return -1;
  CloseHandle(info.hThread);
  CloseHandle(info.hProcess);
  printf("child %lu\n", (unsigned long)info.dwProcessId);
  return 0;
}

int test_pid_alive(int pid) {
  HANDLE process =
      OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, (DWORD)pid);
  DWORD code = 0;
  int alive;
  if (process == NULL)
    return 0;
  alive = GetExitCodeProcess(process, &code) && code == STILL_ACTIVE;
  CloseHandle(process);
  return alive;
}

void test_pid_kill(int pid) {
  HANDLE process = OpenProcess(PROCESS_TERMINATE, FALSE, (DWORD)pid);
  if (process != NULL) {
    TerminateProcess(process, 137);
    CloseHandle(process);
  }
}

void test_proc_helper_started(void) {
  /* Nothing to do: test_proc_spawn put this process, before it ran, in a
   * job that Windows kills as soon as the test process exits. */
}

/* Moves one complete line (or, at end of file, the rest) from pending into
 * buf; returns its length, or -1 if there is none yet. */
static int line_take(test_proc *proc, char *buf, size_t cap) {
  char *newline = memchr(proc->pending, '\n', proc->pending_len);
  size_t line_len, consumed, copied;

  if (newline != NULL) {
    line_len = (size_t)(newline - proc->pending);
    consumed = line_len + 1;
  } else if ((proc->eof && proc->pending_len > 0) ||
             proc->pending_len == sizeof proc->pending) {
    line_len = proc->pending_len;
    consumed = line_len;
  } else {
    return -1;
  }
  /* The child's C runtime writes "\r\n" in text mode. */
  if (line_len > 0 && proc->pending[line_len - 1] == '\r')
    line_len--;
  copied = cap == 0 ? 0 : (line_len < cap - 1 ? line_len : cap - 1);
  if (cap > 0) {
    memcpy(buf, proc->pending, copied);
    buf[copied] = '\0';
  }
  memmove(proc->pending, proc->pending + consumed,
          proc->pending_len - consumed);
  proc->pending_len -= consumed;
  return (int)copied;
}

int test_proc_read_line(test_proc *proc, char *buf, size_t cap,
                        int32_t timeout_ms) {
  int64_t deadline = timeout_ms < 0 ? -1 : test_now_ms() + timeout_ms;

  for (;;) {
    DWORD available = 0, got = 0;
    int len = line_take(proc, buf, cap);
    if (len >= 0)
      return len;
    if (proc->eof)
      return -1;

    if (!PeekNamedPipe(proc->stdout_read, NULL, 0, NULL, &available, NULL)) {
      proc->eof = 1; /* ERROR_BROKEN_PIPE: every writer has gone */
      continue;
    }
    if (available > 0) {
      DWORD room = (DWORD)(sizeof proc->pending - proc->pending_len);
      if (available < room)
        room = available;
      /* Peek said these bytes are there, so this read does not block. */
      if (!ReadFile(proc->stdout_read, proc->pending + proc->pending_len, room,
                    &got, NULL) ||
          got == 0) {
        proc->eof = 1;
        continue;
      }
      proc->pending_len += got;
      continue;
    }
    if (deadline >= 0 && test_now_ms() >= deadline)
      return -1;
    Sleep(1);
  }
}

int test_proc_wait(test_proc *proc, int32_t timeout_ms, int *exit_code) {
  DWORD code;

  if (!proc->exited) {
    DWORD waited = WaitForSingleObject(
        proc->process, timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms);
    if (waited != WAIT_OBJECT_0)
      return -1;
    if (!GetExitCodeProcess(proc->process, &code))
      return -1;
    proc->exited = 1;
    proc->exit_code = (int)code;
  }
  if (exit_code != NULL)
    *exit_code = proc->exit_code;
  return 0;
}

void test_proc_kill(test_proc *proc) {
  if (proc == NULL || proc->exited)
    return;
  /* 137 is what POSIX reports for SIGKILL (128 + 9). */
  TerminateProcess(proc->process, 137);
  test_proc_wait(proc, -1, NULL);
}

void test_proc_free(test_proc *proc) {
  if (proc == NULL)
    return;
  test_proc_kill(proc);
  CloseHandle(proc->process);
  CloseHandle(proc->stdout_read);
  free(proc);
}

uint32_t test_proc_self_pid(void) { return (uint32_t)GetCurrentProcessId(); }

int64_t test_now_ms(void) {
  LARGE_INTEGER counter, frequency;
  QueryPerformanceFrequency(&frequency);
  QueryPerformanceCounter(&counter);
  return (int64_t)(counter.QuadPart / frequency.QuadPart * 1000 +
                   counter.QuadPart % frequency.QuadPart * 1000 /
                       frequency.QuadPart);
}

/* ---- Threads ------------------------------------------------------------ */

static unsigned __stdcall thread_main(void *arg) {
  test_thread *thread = arg;
  thread->fn(thread->arg);
  return 0;
}

int test_thread_start(test_thread **out, void (*fn)(void *), void *arg) {
  test_thread *thread = calloc(1, sizeof *thread);
  uintptr_t handle;

  *out = NULL;
  if (thread == NULL)
    return -1;
  thread->fn = fn;
  thread->arg = arg;
  handle = _beginthreadex(NULL, 0, thread_main, thread, 0, NULL);
  if (handle == 0) {
    free(thread);
    return -1;
  }
  thread->handle = (HANDLE)handle;
  *out = thread;
  return 0;
}

void test_thread_join(test_thread *thread) {
  if (thread == NULL)
    return;
  WaitForSingleObject(thread->handle, INFINITE);
  CloseHandle(thread->handle);
  free(thread);
}

/* ---- Events between threads ------------------------------------------- */

struct test_event {
  HANDLE handle; /* an unnamed manual-reset event */
};

test_event *test_event_new(void) {
  test_event *event = calloc(1, sizeof *event);
  if (event == NULL)
    return NULL;
  event->handle = CreateEventW(NULL, TRUE, FALSE, NULL);
  if (event->handle == NULL) {
    free(event);
    return NULL;
  }
  return event;
}

void test_event_set(test_event *event) { SetEvent(event->handle); }

int test_event_wait(test_event *event, int32_t timeout_ms) {
  DWORD waited = WaitForSingleObject(
      event->handle, timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms);
  return waited == WAIT_OBJECT_0 ? 0 : -1;
}

void test_event_free(test_event *event) {
  if (event == NULL)
    return;
  CloseHandle(event->handle);
  free(event);
}

/* ---- Named objects ------------------------------------------------------ */

/* 1 if the object exists: opened, or refused to us (it exists then, too). */
static int object_found(HANDLE handle) {
  if (handle != NULL) {
    CloseHandle(handle);
    return 1;
  }
  return GetLastError() == ERROR_ACCESS_DENIED;
}

/*
 * Windows has no files behind these names: an object lives while any
 * process holds a handle to it, so "exists" means some process (a server,
 * a client, or nobody at all once everyone closed) still holds one.
 */
int test_service_objects_exist(const char *name) {
  /* Every kind of object a service is made of (lane 0's stand for all). */
  static const struct {
    const wchar_t *suffix;
    int kind; /* 0 section, 1 mutex, 2 event, 3 semaphore */
  } objects[] = {{L".map", 0},   {L".calls", 0}, {L".alive", 1},
                 {L".req", 3},   {L".lock0", 1}, {L".resp0", 2}};
  wchar_t object[160];
  wchar_t *wide = utf8_to_wide(name);
  size_t i;
  int found = 0;

  if (wide == NULL)
    return 0;
  for (i = 0; i < sizeof objects / sizeof objects[0] && !found; i++) {
    if (wcslen(wide) + wcslen(objects[i].suffix) + 16 >
        sizeof object / sizeof object[0])
      break;
    wcscpy(object, L"Local\\shmrpc.");
    wcscat(object, wide);
    wcscat(object, objects[i].suffix);
    switch (objects[i].kind) {
    case 0:
      found = object_found(OpenFileMappingW(FILE_MAP_READ, FALSE, object));
      break;
    case 1:
      found = object_found(OpenMutexW(SYNCHRONIZE, FALSE, object));
      break;
    case 2:
      found = object_found(OpenEventW(SYNCHRONIZE, FALSE, object));
      break;
    default:
      found = object_found(OpenSemaphoreW(SYNCHRONIZE, FALSE, object));
    }
  }
  free(wide);
  return found;
}

void test_sleep_ms(int32_t ms) { Sleep(ms < 0 ? 0 : (DWORD)ms); }
