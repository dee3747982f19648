/*
 * The shmrpc command-line tool (tools/), run as its own process against test
 * servers: list, stat, ping, methods and clean, their --json documents, and
 * the exit codes (0 ok, 1 runtime error, 2 usage error).
 *
 * On POSIX the tool runs through popen(); on Windows through CreateProcessW
 * (under Wine too: the tool is a Windows process there), with its output
 * read from a pipe. Windows cannot enumerate named objects, so there `list`
 * and a bare `clean` must fail with exit code 1 and say why; and a dead
 * server's names vanish with their last handle, so `clean` is checked
 * against what Windows does with them instead of against stale files.
 */
#ifndef _WIN32
#define _POSIX_C_SOURCE 200809L
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

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <wchar.h>
#else
#include <sys/wait.h>
#include <unistd.h>
#endif

#ifndef SHMRPC_TOOL_PATH
#error "SHMRPC_TOOL_PATH must name the built shmrpc tool"
#endif

/* One run of the tool: its exit code and what it printed. */
typedef struct tool_run {
  int exit_code;
  size_t len;
  char out[32768];
} tool_run;

/* Runs `shmrpc ARGS` (ARGS formatted like printf; only names this test
 * makes, which need no quoting). stdout is captured; with merge_stderr,
 * stderr too, else it goes to the test's own stderr. */
static void run_tool(tool_run *run, int merge_stderr, const char *format, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#ifndef _WIN32
static void run_tool(tool_run *run, int merge_stderr, const char *format, ...) {
  char args[512], command[1024 + sizeof(SHMRPC_TOOL_PATH)];
  char chunk[4096];
  va_list list;
  FILE *pipe;
  size_t n;
  int status;

  va_start(list, format);
  vsnprintf(args, sizeof(args), format, list);
  va_end(list);
  assert_null(strchr(SHMRPC_TOOL_PATH, '\'')); /* quoted below */
  snprintf(command, sizeof(command), "'%s' %s%s", SHMRPC_TOOL_PATH, args,
           merge_stderr ? " 2>&1" : "");
  fflush(stdout);
  pipe = popen(command, "r");
  assert_non_null(pipe);
  /* Read to the end even if the buffer fills, so the tool never blocks. */
  run->len = 0;
  while ((n = fread(chunk, 1, sizeof(chunk), pipe)) > 0) {
    size_t room = sizeof(run->out) - 1 - run->len;
    memcpy(run->out + run->len, chunk, n < room ? n : room);
    run->len += n < room ? n : room;
  }
  run->out[run->len] = '\0';
  status = pclose(pipe);
  assert_int_not_equal(status, -1);
  assert_true(WIFEXITED(status));
  run->exit_code = WEXITSTATUS(status);
}
#else
/* The tool: next to this executable (CMake puts both in bin/), else the
 * path CMake gave, which a cross build writes as a Unix path. */
static const wchar_t *tool_path(void) {
  static wchar_t path[MAX_PATH * 2];
  const size_t cap = sizeof(path) / sizeof(path[0]);
  const char *base = SHMRPC_TOOL_PATH, *at;
  wchar_t *slash;
  size_t used, i;
  DWORD len;
  if (path[0] != L'\0')
    return path;
  for (at = SHMRPC_TOOL_PATH; *at != '\0'; at++)
    if (*at == '/' || *at == '\\')
      base = at + 1;
  len = GetModuleFileNameW(NULL, path, (DWORD)cap);
  assert_true(len > 0 && len < cap);
  slash = wcsrchr(path, L'\\');
  assert_non_null(slash);
  used = (size_t)(slash + 1 - path);
  assert_true(used + strlen(base) < cap);
  for (i = 0; base[i] != '\0'; i++)
    path[used++] = (wchar_t)(unsigned char)base[i];
  path[used] = L'\0';
  if (GetFileAttributesW(path) == INVALID_FILE_ATTRIBUTES)
    assert_true(MultiByteToWideChar(CP_UTF8, 0, SHMRPC_TOOL_PATH, -1, path,
                                    (int)cap) > 0);
  return path;
}

/* Runs the tool with CreateProcessW, its stdout (and with merge_stderr its
 * stderr) on a pipe read to the end. The test starts no other process
 * meanwhile, so only this call's handles are inheritable while it runs. */
static void run_tool(tool_run *run, int merge_stderr, const char *format, ...) {
  SECURITY_ATTRIBUTES inherit = {sizeof(inherit), NULL, TRUE};
  STARTUPINFOW startup;
  PROCESS_INFORMATION info;
  HANDLE read_end = NULL, write_end = NULL, child_stdin, child_stderr = NULL;
  const wchar_t *tool = tool_path();
  wchar_t command[2048];
  char args[512];
  va_list list;
  size_t used = 0, i, kept;
  DWORD code = 0, spawn_error = 0;
  BOOL started;

  va_start(list, format);
  vsnprintf(args, sizeof(args), format, list);
  va_end(list);
  /* "TOOL" ARGS: only names this test makes, which need no quoting. */
  assert_true(wcslen(tool) + strlen(args) + 4 <
              sizeof(command) / sizeof(command[0]));
  command[used++] = L'"';
  for (i = 0; tool[i] != L'\0'; i++)
    command[used++] = tool[i];
  command[used++] = L'"';
  command[used++] = L' ';
  for (i = 0; args[i] != '\0'; i++)
    command[used++] = (wchar_t)(unsigned char)args[i];
  command[used] = L'\0';

  /* Only the child's ends are inheritable. */
  assert_true(CreatePipe(&read_end, &write_end, &inherit, 0));
  assert_true(SetHandleInformation(read_end, HANDLE_FLAG_INHERIT, 0));
  child_stdin = CreateFileW(L"NUL", GENERIC_READ,
                            FILE_SHARE_READ | FILE_SHARE_WRITE, &inherit,
                            OPEN_EXISTING, 0, NULL);
  if (merge_stderr) {
    child_stderr = write_end;
  } else if (!DuplicateHandle(GetCurrentProcess(),
                              GetStdHandle(STD_ERROR_HANDLE),
                              GetCurrentProcess(), &child_stderr, 0, TRUE,
                              DUPLICATE_SAME_ACCESS)) {
    child_stderr = NULL;
  }
  memset(&startup, 0, sizeof(startup));
  startup.cb = sizeof(startup);
  startup.dwFlags = STARTF_USESTDHANDLES;
  startup.hStdInput = child_stdin == INVALID_HANDLE_VALUE ? NULL : child_stdin;
  startup.hStdOutput = write_end;
  startup.hStdError = child_stderr;
  fflush(stdout);
  fflush(stderr);
  started = CreateProcessW(tool, command, NULL, NULL, TRUE, 0, NULL, NULL,
                           &startup, &info);
  if (!started)
    spawn_error = GetLastError();
  /* The child holds the write end now: its exit ends our reads. */
  CloseHandle(write_end);
  if (!merge_stderr && child_stderr != NULL)
    CloseHandle(child_stderr);
  if (child_stdin != INVALID_HANDLE_VALUE)
    CloseHandle(child_stdin);
  if (!started) {
    CloseHandle(read_end);
    print_error("CreateProcessW failed (%lu) for: %ls\n",
                (unsigned long)spawn_error, command);
    fail();
  }

  /* Read to the end even if the buffer fills, so the tool never blocks. */
  run->len = 0;
  for (;;) {
    char chunk[4096];
    DWORD got = 0;
    size_t room = sizeof(run->out) - 1 - run->len;
    if (!ReadFile(read_end, chunk, sizeof(chunk), &got, NULL) || got == 0)
      break; /* ERROR_BROKEN_PIPE: the tool has exited */
    memcpy(run->out + run->len, chunk, got < room ? got : room);
    run->len += got < room ? got : room;
  }
  CloseHandle(read_end);
  assert_int_equal(WaitForSingleObject(info.hProcess, INFINITE), WAIT_OBJECT_0);
  assert_true(GetExitCodeProcess(info.hProcess, &code));
  CloseHandle(info.hProcess);
  CloseHandle(info.hThread);
  run->exit_code = (int)code;

  /* The tool's C runtime writes text mode: "\r\n" becomes "\n". */
  for (i = 0, kept = 0; i < run->len; i++) {
    if (run->out[i] == '\r' && i + 1 < run->len && run->out[i + 1] == '\n')
      continue;
    run->out[kept++] = run->out[i];
  }
  run->len = kept;
  run->out[run->len] = '\0';
}
#endif

/* Asserts that text contains needle, printing both if not. */
static void expect_contains(const char *text, const char *needle) {
  if (strstr(text, needle) == NULL) {
    print_error("expected \"%s\" in:\n%s\n", needle, text);
    fail();
  }
}

static void expect_not_contains(const char *text, const char *needle) {
  if (strstr(text, needle) != NULL) {
    print_error("did not expect \"%s\" in:\n%s\n", needle, text);
    fail();
  }
}

/* Copies the line of text that starts with `start` followed by a space
 * into line; 0 if there is none. */
static int find_line(const char *text, const char *start, char *line,
                     size_t cap) {
  size_t start_len = strlen(start);
  const char *at = text;
  while (*at != '\0') {
    const char *end = strchr(at, '\n');
    size_t len = end != NULL ? (size_t)(end - at) : strlen(at);
    if (len > start_len && strncmp(at, start, start_len) == 0 &&
        at[start_len] == ' ') {
      if (len >= cap)
        len = cap - 1;
      memcpy(line, at, len);
      line[len] = '\0';
      return 1;
    }
    if (end == NULL)
      break;
    at = end + 1;
  }
  return 0;
}

/* The value after the label of `shmrpc stat`'s line `label`. */
static const char *stat_field(const char *text, const char *label) {
  static char line[256];
  const char *value;
  if (!find_line(text, label, line, sizeof(line))) {
    print_error("no line \"%s\" in:\n%s\n", label, text);
    fail();
  }
  value = line + strlen(label);
  while (*value == ' ')
    value++;
  return value;
}

static unsigned long long stat_number(const char *text, const char *label) {
  return strtoull(stat_field(text, label), NULL, 10);
}

static size_t count_lines(const char *text) {
  size_t lines = 0;
  for (; *text != '\0'; text++)
    lines += *text == '\n';
  return lines;
}

/* The tool failed with exit_code, and said why in one line on stderr that
 * starts with "shmrpc: ". */
static void expect_error(const tool_run *run, int exit_code) {
  assert_int_equal(run->exit_code, exit_code);
  assert_int_equal(count_lines(run->out), 1);
  assert_memory_equal(run->out, "shmrpc: ", 8);
}

/* `clean NAME` finds nothing of NAME and says so, in text and in JSON;
 * that is not an error. */
static void expect_nothing_to_clean(const char *name) {
  tool_run run;
  char expected[256];
  run_tool(&run, 0, "clean %s", name);
  assert_int_equal(run.exit_code, 0);
  expect_contains(run.out, "nothing to remove");
  run_tool(&run, 0, "clean --json %s", name);
  assert_int_equal(run.exit_code, 0);
  snprintf(expected, sizeof(expected),
           "{\"removed\":[],\"skipped\":[],\"absent\":[{\"name\":\"%s\"}],"
           "\"failed\":[]}\n",
           name);
  assert_string_equal(run.out, expected);
}

static void wait_until_dead(const char *name) {
  int64_t end = test_now_ms() + T_READY_MS;
  for (;;) {
    shmrpc_service_info info;
    int rc = shmrpc_service_query(name, 0, &info);
    assert_int_equal(rc, 0);
    if (!info.alive)
      return;
    assert_true(test_now_ms() < end);
    test_sleep_ms(1);
  }
}

static void call_ok(shmrpc_client *client, uint32_t method, const void *req,
                    size_t len) {
  unsigned char resp[64];
  assert_int_equal(shmrpc_call(client, method, req, len, resp, sizeof(resp),
                               NULL, T_EXIT_MS),
                   0);
}

/* ---- Tests ------------------------------------------------------------- */

/* Usage errors exit 2, runtime errors 1, each with one line on stderr;
 * help and version exit 0. */
static void test_exit_codes(void **state) {
  const char *missing = test_service_name("missing");
  tool_run run;
  (void)state;

  run_tool(&run, 1, "frobnicate");
  expect_error(&run, 2);
  expect_contains(run.out, "unknown command 'frobnicate'");

  run_tool(&run, 1, "%s", "");
  expect_error(&run, 2);

  run_tool(&run, 1, "stat");
  expect_error(&run, 2);

  run_tool(&run, 1, "stat %s --frob", missing);
  expect_error(&run, 2);

  run_tool(&run, 1, "stat --timeout 5 %s", missing);
  expect_error(&run, 2);

  run_tool(&run, 1, "ping %s -n 0", missing);
  expect_error(&run, 2);

  run_tool(&run, 1, "stat bad/name");
  expect_error(&run, 2);

  run_tool(&run, 1, "stat %s", missing);
  expect_error(&run, 1);
  expect_contains(run.out, missing);

  run_tool(&run, 1, "stat --json %s", missing);
  expect_error(&run, 1);
  run_tool(&run, 0, "stat --json %s", missing);
  assert_int_equal(run.exit_code, 1);
  expect_not_contains(run.out, "{"); /* no document on error */

  run_tool(&run, 1, "ping %s --timeout 0", missing);
  expect_error(&run, 1);

  run_tool(&run, 1, "methods %s --timeout 0", missing);
  expect_error(&run, 1);

  run_tool(&run, 0, "--version");
  assert_int_equal(run.exit_code, 0);
  expect_contains(run.out, SHMRPC_VERSION_STRING);

  run_tool(&run, 0, "--help");
  assert_int_equal(run.exit_code, 0);
  expect_contains(run.out, "Exit status");

  run_tool(&run, 0, "stat --help");
  assert_int_equal(run.exit_code, 0);
  expect_contains(run.out, "usage: shmrpc stat");

  run_tool(&run, 0, "help ping");
  assert_int_equal(run.exit_code, 0);
  expect_contains(run.out, "usage: shmrpc ping");
}

#ifndef _WIN32
/* A live service appears in the list with its pid, alive; once stopped it
 * is gone. */
static void test_list(void **state) {
  const char *name = test_service_name("list");
  char line[256], expected[256];
  test_server_thread ts;
  tool_run run;
  (void)state;

  test_server_thread_start(&ts, name, 4096, NULL);
  run_tool(&run, 0, "list");
  assert_int_equal(run.exit_code, 0);
  expect_contains(run.out, "NAME");
  assert_true(find_line(run.out, name, line, sizeof(line)));
  snprintf(expected, sizeof(expected), " %lu ",
           (unsigned long)test_proc_self_pid());
  expect_contains(line, expected);
  expect_contains(line, " alive ");
  expect_contains(line, " 4096 ");

  run_tool(&run, 0, "list --json");
  assert_int_equal(run.exit_code, 0);
  assert_int_equal(count_lines(run.out), 1);
  assert_memory_equal(run.out, "{\"services\":[", 13);
  snprintf(expected, sizeof(expected),
           "{\"name\":\"%s\",\"state\":\"alive\",\"alive\":true,"
           "\"owner\":\"",
           name);
  expect_contains(run.out, expected);
  snprintf(expected, sizeof(expected),
           "\"server_pid\":%lu,\"capacity\":4096,\"calls\":0}",
           (unsigned long)test_proc_self_pid());
  expect_contains(run.out, expected);
  test_server_thread_stop(&ts);

  run_tool(&run, 0, "list");
  assert_int_equal(run.exit_code, 0);
  assert_false(find_line(run.out, name, line, sizeof(line)));
}
#else
/* Windows cannot enumerate named objects: list and a bare clean fail with
 * exit code 1 and one line that says so, --json prints no document, and a
 * live service is untouched and still found by name. */
static void test_list(void **state) {
  const char *name = test_service_name("list");
  test_server_thread ts;
  tool_run run;
  (void)state;

  test_server_thread_start(&ts, name, 4096, NULL);
  run_tool(&run, 1, "list");
  expect_error(&run, 1);
  expect_contains(run.out, "shmrpc: list: ");
  expect_contains(run.out, "cannot enumerate service names");
  expect_contains(run.out, "shmrpc stat NAME");

  run_tool(&run, 0, "list --json");
  assert_int_equal(run.exit_code, 1);
  assert_int_equal(run.len, 0); /* no document on error */

  run_tool(&run, 1, "clean");
  expect_error(&run, 1);
  expect_contains(run.out, "shmrpc: clean: ");
  expect_contains(run.out, "cannot enumerate service names");
  expect_contains(run.out, "shmrpc clean NAME");

  run_tool(&run, 0, "clean --json");
  assert_int_equal(run.exit_code, 1);
  assert_int_equal(run.len, 0);

  run_tool(&run, 0, "stat %s", name);
  assert_int_equal(run.exit_code, 0);
  assert_string_equal(stat_field(run.out, "state"), "alive");
  assert_int_equal(stat_number(run.out, "server pid"), test_proc_self_pid());
  assert_int_equal(stat_number(run.out, "capacity"), 4096);
  test_server_thread_stop(&ts);
}
#endif

/* stat reports the calls this test made, the failed one, and the bytes. */
static void test_stat(void **state) {
  const char *name = test_service_name("stat");
  unsigned char add_request[16];
  char expected[128];
  test_server_thread ts;
  shmrpc_client *client = NULL;
  tool_run run;
  (void)state;

  test_server_thread_start(&ts, name, 0, NULL);
  assert_int_equal(shmrpc_client_open(&client, name, NULL, T_READY_MS), 0);
  call_ok(client, T_ECHO, "hello", 5);
  test_put_u64(add_request, 20);
  test_put_u64(add_request + 8, 22);
  call_ok(client, T_ADD, add_request, sizeof(add_request));
  call_ok(client, T_ECHO, "", 0);
  assert_int_equal(
      shmrpc_call(client, T_FAIL, NULL, 0, NULL, 0, NULL, T_EXIT_MS),
      SHMRPC_EAPP);
  /* 4 calls, 1 failed; in: 5 + 16 bytes; out: 5 + 8 bytes. */

  run_tool(&run, 0, "stat %s", name);
  assert_int_equal(run.exit_code, 0);
  assert_string_equal(stat_field(run.out, "service"), name);
  assert_string_equal(stat_field(run.out, "state"), "alive");
  assert_string_equal(stat_field(run.out, "slot"), "free");
  assert_int_equal(stat_number(run.out, "server pid"), test_proc_self_pid());
  assert_int_equal(stat_number(run.out, "capacity"), SHMRPC_DEFAULT_CAPACITY);
  assert_int_equal(stat_number(run.out, "calls"), 4);
  assert_int_equal(stat_number(run.out, "app errors"), 1);
  assert_int_equal(stat_number(run.out, "timeouts"), 0);
  assert_int_equal(stat_number(run.out, "recoveries"), 0);
  assert_int_equal(stat_number(run.out, "repairs"), 0);
  assert_int_equal(stat_number(run.out, "bytes in"), 21);
  assert_int_equal(stat_number(run.out, "bytes out"), 13);
  assert_memory_equal(stat_field(run.out, "generation"), "0x", 2);
  assert_string_not_equal(stat_field(run.out, "uptime"), "-");
  assert_int_equal(stat_number(run.out, "lanes"), SHMRPC_DEFAULT_LANES);
  expect_contains(run.out, "  lane 0    free    free");

  run_tool(&run, 0, "stat --json %s", name);
  assert_int_equal(run.exit_code, 0);
  assert_int_equal(count_lines(run.out), 1);
  snprintf(expected, sizeof(expected), "{\"name\":\"%s\",", name);
  expect_contains(run.out, expected);
  expect_contains(run.out, "\"state\":\"alive\",\"alive\":true,");
  snprintf(expected, sizeof(expected), "\"server_pid\":%lu,",
           (unsigned long)test_proc_self_pid());
  expect_contains(run.out, expected);
  expect_contains(run.out, "\"generation\":\"0x");
  expect_contains(run.out, "\"capacity\":65536,");
  expect_contains(run.out, "\"slot_state\":\"free\",");
  expect_contains(run.out, "\"uptime_ms\":");
  expect_contains(run.out, "\"calls\":4,");
  expect_contains(run.out, "\"app_errors\":1,");
  expect_contains(run.out, "\"timeouts\":0,");
  expect_contains(run.out, "\"recoveries\":0,\"repairs\":0,");
  expect_contains(run.out, "\"bytes_in\":21,");
  expect_contains(run.out, "\"bytes_out\":13,\"lanes\":[{\"state\":\"free\","
                           "\"lock_held\":false,");

  shmrpc_client_close(client);
  test_server_thread_stop(&ts);
}

/* stat shows a lane held by a caller whose call runs: busy, its lock held
 * by a live caller, and the queue (the JSON has the hold's length too; it
 * stays 0 until a repair pass has seen the holder, so only the key is
 * checked). */
typedef struct gate_caller {
  const char *name;
  int rc;
} gate_caller;

static void call_gate(void *arg) {
  gate_caller *caller = arg;
  shmrpc_client *client = NULL;
  unsigned char byte = 1;
  caller->rc = shmrpc_client_open(&client, caller->name, NULL, T_READY_MS);
  if (caller->rc == 0)
    caller->rc = shmrpc_call(client, T_GATE, &byte, 1, &byte, 1, NULL,
                             T_EXIT_MS);
  shmrpc_client_close(client);
}

static void test_stat_lanes(void **state) {
  const char *name = test_service_name("lanes");
  test_gate gate = {test_event_new(), test_event_new()};
  shmrpc_server_options options;
  test_server_thread ts;
  test_thread *thread = NULL;
  gate_caller caller;
  tool_run run;
  (void)state;

  shmrpc_server_options_init(&options);
  options.lanes = 2;
  test_server_thread_start_with(&ts, name, &options, &gate);
  caller.name = name;
  caller.rc = -1;
  assert_int_equal(test_thread_start(&thread, call_gate, &caller), 0);
  assert_int_equal(test_event_wait(gate.entered, T_READY_MS), 0);

  run_tool(&run, 0, "stat %s", name);
  assert_int_equal(run.exit_code, 0);
  assert_int_equal(stat_number(run.out, "lanes"), 2);
  expect_contains(run.out, "  lane 0    busy    held");
  expect_contains(run.out, "  lane 1    free    free");
  assert_string_equal(stat_field(run.out, "queue"), "0 waiting for a lane");
  run_tool(&run, 0, "stat --json %s", name);
  expect_contains(run.out, "\"lanes\":[{\"state\":\"busy\",\"lock_held\":true,"
                           "\"lock_owner_alive\":true,\"lock_held_ms\":");

  test_event_set(gate.release);
  test_thread_join(thread);
  assert_int_equal(caller.rc, 0);
  test_server_thread_stop(&ts);
  test_event_free(gate.entered);
  test_event_free(gate.release);
}

/* ping makes exactly the round trips asked for, and reports them. */
static void test_ping(void **state) {
  const char *name = test_service_name("ping");
  char expected[128];
  test_server_thread ts;
  shmrpc_stats stats;
  tool_run run;
  (void)state;

  test_server_thread_start(&ts, name, 4096, NULL);
  run_tool(&run, 0, "ping %s -n 5", name);
  assert_int_equal(run.exit_code, 0);
  snprintf(expected, sizeof(expected), "5 round trips to %s, 16 bytes each",
           name);
  expect_contains(run.out, expected);
  expect_contains(run.out, "min ");
  expect_contains(run.out, "p50 ");
  expect_contains(run.out, "p99 ");
  expect_contains(run.out, "max ");
  assert_int_equal(shmrpc_server_stats(ts.server, &stats), 0);
  assert_int_equal(stats.calls, 5);
  assert_int_equal(stats.bytes_in, 5 * 16);
  assert_int_equal(stats.bytes_out, 5 * 16);

  run_tool(&run, 0, "ping --json --count 3 --size 100 %s", name);
  assert_int_equal(run.exit_code, 0);
  assert_int_equal(count_lines(run.out), 1);
  snprintf(expected, sizeof(expected),
           "{\"name\":\"%s\",\"count\":3,\"size\":100,\"min_ns\":", name);
  expect_contains(run.out, expected);
  expect_contains(run.out, "\"p50_ns\":");
  expect_contains(run.out, "\"p99_ns\":");
  expect_contains(run.out, "\"max_ns\":");
  assert_int_equal(shmrpc_server_stats(ts.server, &stats), 0);
  assert_int_equal(stats.calls, 8);
  assert_int_equal(stats.bytes_in, 5 * 16 + 3 * 100);

  /* Larger than the slot: a bad argument for this service. */
  run_tool(&run, 1, "ping %s --size 5000", name);
  expect_error(&run, 2);

  /* --server-user is taken as an option like the others (it once made
   * the tool print the usage and exit 0), and its user is checked. */
  run_tool(&run, 1, "ping --server-user nosuchuser-shmrpc %s -n 1", name);
  expect_error(&run, 2);
  expect_contains(run.out, "nosuchuser-shmrpc");
#ifndef _WIN32
  run_tool(&run, 0, "ping --server-user %u -n 2 %s", (unsigned)geteuid(),
           name);
  assert_int_equal(run.exit_code, 0);
  expect_contains(run.out, "2 round trips");
  assert_int_equal(shmrpc_server_stats(ts.server, &stats), 0);
  assert_int_equal(stats.calls, 10);
#endif
  test_server_thread_stop(&ts);
}

/* methods lists what the server registered, with the ids. */
static void test_methods(void **state) {
  static const struct {
    unsigned id;
    const char *name;
  } expected_methods[] = {{T_ECHO, "echo"}, {T_ADD, "add"}, {T_SLOW, "slow"},
                          {T_FAIL, "fail"}, {T_BIG, "big"}, {T_STOP, "stop"},
                          {T_FAILWITH, "failwith"}, {T_COUNT, "count"},
                          {T_SYSCALLS, "syscalls"}};
  const char *name = test_service_name("methods");
  test_server_thread ts;
  tool_run run;
  size_t i;
  (void)state;

  test_server_thread_start(&ts, name, 0, NULL);
  run_tool(&run, 0, "methods %s", name);
  assert_int_equal(run.exit_code, 0);
  /* A header, then one line per method. */
  assert_int_equal(count_lines(run.out),
                   1 + sizeof(expected_methods) / sizeof(expected_methods[0]));
  for (i = 0; i < sizeof(expected_methods) / sizeof(expected_methods[0]); i++) {
    char line[64];
    snprintf(line, sizeof(line), "%10u  %s\n", expected_methods[i].id,
             expected_methods[i].name);
    expect_contains(run.out, line);
  }

  run_tool(&run, 0, "methods %s --json", name);
  assert_int_equal(run.exit_code, 0);
  assert_int_equal(count_lines(run.out), 1);
  expect_contains(run.out,
                  "\"methods\":[{\"id\":1,\"name\":\"echo\"},"
                  "{\"id\":2,\"name\":\"add\"},{\"id\":3,\"name\":\"slow\"},"
                  "{\"id\":4,\"name\":\"fail\"},{\"id\":5,\"name\":\"big\"},"
                  "{\"id\":6,\"name\":\"stop\"},"
                  "{\"id\":8,\"name\":\"failwith\"},"
                  "{\"id\":9,\"name\":\"count\"},"
                  "{\"id\":10,\"name\":\"syscalls\"}]}");
  test_server_thread_stop(&ts);
}

/* A live service: clean refuses it with exit code 1, and it keeps
 * serving. */
static void clean_refuses_live(void) {
  const char *live_name = test_service_name("cleanlive");
  shmrpc_service_info info;
  test_server_thread live;
  tool_run run;

  test_server_thread_start(&live, live_name, 4096, NULL);
  run_tool(&run, 1, "clean %s", live_name);
  expect_error(&run, 1);
  expect_contains(run.out, "live server");
  assert_int_equal(shmrpc_service_query(live_name, 0, &info), 0);
  assert_int_equal(info.alive, 1);
  run_tool(&run, 0, "ping %s -n 1", live_name);
  assert_int_equal(run.exit_code, 0);
  test_server_thread_stop(&live);
}

#ifndef _WIN32
/* A killed server's names show as stale and clean removes them; a live
 * service is never removed. Names are given explicitly: a bare `shmrpc
 * clean` removes every stale name of this user, including the ones that
 * test_crash (of this run or another build's) keeps stale on purpose. */
static void test_clean(void **state) {
  const char *name = test_service_name("clean");
  const char *json_name = test_service_name("cleanjson");
  shmrpc_service_info info;
  test_proc *server;
  char line[256], expected[256];
  tool_run run;
  (void)state;

  /* The server runs in its own process, so it can die. */
  server = test_spawn_server(name, "4096");
  run_tool(&run, 0, "ping %s -n 2", name);
  assert_int_equal(run.exit_code, 0);
  test_proc_kill(server);
  test_proc_free(server);
  wait_until_dead(name);

  run_tool(&run, 0, "list");
  assert_int_equal(run.exit_code, 0);
  assert_true(find_line(run.out, name, line, sizeof(line)));
  expect_contains(line, " stale ");
  run_tool(&run, 0, "stat %s", name);
  assert_int_equal(run.exit_code, 0);
  expect_contains(stat_field(run.out, "state"), "stale");
  assert_int_equal(stat_number(run.out, "calls"), 2);

  run_tool(&run, 0, "clean %s", name);
  assert_int_equal(run.exit_code, 0);
  snprintf(expected, sizeof(expected), "removed %s (its server died", name);
  expect_contains(run.out, expected);
  assert_int_equal(shmrpc_service_query(name, 0, &info), SHMRPC_ENOSERVER);
  assert_int_equal(test_service_objects_exist(name), 0);
  run_tool(&run, 0, "list");
  assert_false(find_line(run.out, name, line, sizeof(line)));

  /* Again: nothing left, which is not an error. */
  expect_nothing_to_clean(name);

  /* --json names what it removed, with the dead server's pid. */
  server = test_spawn_server(json_name, "4096");
  test_proc_kill(server);
  test_proc_free(server);
  wait_until_dead(json_name);
  assert_int_equal(shmrpc_service_query(json_name, 0, &info), 0);
  run_tool(&run, 0, "clean --json %s", json_name);
  assert_int_equal(run.exit_code, 0);
  assert_int_equal(count_lines(run.out), 1);
  snprintf(expected, sizeof(expected),
           "{\"removed\":[{\"name\":\"%s\",\"server_pid\":%lu,", json_name,
           (unsigned long)info.server_pid);
  expect_contains(run.out, expected);
  expect_contains(run.out, "\"failed\":[]}");
  assert_int_equal(shmrpc_service_query(json_name, 0, &info), SHMRPC_ENOSERVER);

  clean_refuses_live();
}
#else
/* Waits (with a deadline) until no object of `name` exists any more. */
static void wait_until_gone(const char *name) {
  int64_t end = test_now_ms() + T_READY_MS;
  while (test_service_objects_exist(name)) {
    assert_true(test_now_ms() < end);
    test_sleep_ms(1);
  }
}

/*
 * Windows removes a named object with its last handle (os_win32.c,
 * shmrpc__os_service_remove_stale): a killed server's names vanish at once
 * when no one else holds them, so stat finds no service and clean has
 * nothing to remove. While a client still holds them they are stale: stat
 * says so, clean deletes nothing (it cannot) and exits 0, a new server
 * takes them over at once, and they vanish when the last holder lets go.
 * A live service is never touched.
 */
static void test_clean(void **state) {
  const char *name = test_service_name("clean");
  const char *held_name = test_service_name("cleanheld");
  shmrpc_service_info info;
  shmrpc_client *client = NULL;
  test_server_thread next;
  test_proc *server;
  tool_run run;
  (void)state;

  /* Killed, and no one else holds its names: they are gone. */
  server = test_spawn_server(name, "4096");
  run_tool(&run, 0, "ping %s -n 2", name);
  assert_int_equal(run.exit_code, 0);
  test_proc_kill(server);
  test_proc_free(server);
  wait_until_gone(name);
  assert_int_equal(shmrpc_service_query(name, 0, &info), SHMRPC_ENOSERVER);
  run_tool(&run, 1, "stat %s", name);
  expect_error(&run, 1);
  expect_contains(run.out, "no service named");
  expect_nothing_to_clean(name);

  /* Killed while this process holds its names through a client: stale. */
  server = test_spawn_server(held_name, "4096");
  assert_int_equal(shmrpc_client_open(&client, held_name, NULL, T_READY_MS), 0);
  run_tool(&run, 0, "ping %s -n 2", held_name);
  assert_int_equal(run.exit_code, 0);
  test_proc_kill(server);
  test_proc_free(server);
  wait_until_dead(held_name);
  assert_int_equal(shmrpc_service_query(held_name, 0, &info), 0);
  run_tool(&run, 0, "stat %s", held_name);
  assert_int_equal(run.exit_code, 0);
  expect_contains(stat_field(run.out, "state"), "stale");
  assert_int_equal(stat_number(run.out, "server pid"), info.server_pid);
  assert_int_equal(stat_number(run.out, "calls"), 2);
  run_tool(&run, 0, "stat --json %s", held_name);
  assert_int_equal(run.exit_code, 0);
  expect_contains(run.out, "\"state\":\"stale\",\"alive\":false,");

  /* clean succeeds, but nothing can delete a named object: the names stay
   * while the client holds them. */
  run_tool(&run, 0, "clean --json %s", held_name);
  assert_int_equal(run.exit_code, 0);
  assert_int_equal(count_lines(run.out), 1);
  expect_contains(run.out, held_name);
  expect_contains(run.out, "\"failed\":[]}");
  assert_int_equal(test_service_objects_exist(held_name), 1);
  assert_int_equal(shmrpc_service_query(held_name, 0, &info), 0);
  assert_int_equal(info.alive, 0);

  /* A new server takes the held names over at once. */
  test_server_thread_start(&next, held_name, 4096, NULL);
  run_tool(&run, 0, "stat %s", held_name);
  assert_int_equal(run.exit_code, 0);
  assert_string_equal(stat_field(run.out, "state"), "alive");
  assert_int_equal(stat_number(run.out, "server pid"), test_proc_self_pid());
  assert_int_equal(stat_number(run.out, "calls"), 0);
  run_tool(&run, 0, "ping %s -n 1", held_name);
  assert_int_equal(run.exit_code, 0);
  test_server_thread_stop(&next);

  /* The last holder lets go: the names vanish, nothing to clean. */
  shmrpc_client_close(client);
  wait_until_gone(held_name);
  run_tool(&run, 1, "stat %s", held_name);
  expect_error(&run, 1);
  expect_nothing_to_clean(held_name);

  clean_refuses_live();
}
#endif

/* ---- shmrpc call -------------------------------------------------------- */

/* call by name and by id: the request made of int64s, strings, text, hex
 * or a file, the answer printed as int64s, strings, text, hex or raw. */
static void test_call_formats(void **state) {
  static const struct {
    const char *args;    /* after "call NAME echo" */
    const char *printed; /* the answer as printed */
  } echo_cases[] = {
      {"1 -1", "1 -1\n"},
      {"--in str one two", "one\ntwo\n"},
      {"--in str --out hex ab", "020000006162\n"},
      {"--in text hello", "hello\n"},
      {"--in hex de:ad:BE ef", "deadbeef\n"},
      {"--in hex --out text 41000a", "A\\x00\\x0a\n"}, /* escaped, not raw */
      {"", ""}, /* no ARGS: an empty request, an empty answer */
  };
  const char *name = test_service_name("call");
  char file_name[64];
  size_t i;
  test_server_thread ts;
  tool_run run;
  FILE *file;
  (void)state;

  test_server_thread_start(&ts, name, 4096, NULL);
  /* T_ADD sums two little-endian u64: int64s by name and by id. */
  run_tool(&run, 0, "call %s add 40 2", name);
  assert_int_equal(run.exit_code, 0);
  assert_string_equal(run.out, "42\n");
  run_tool(&run, 0, "call %s %d -- -7 2", name, T_ADD);
  assert_int_equal(run.exit_code, 0);
  assert_string_equal(run.out, "-5\n");
  run_tool(&run, 0, "call %s 0x2 -7 2", name); /* negative without -- */
  assert_string_equal(run.out, "-5\n");

  /* T_ECHO answers the request: each format both ways. */
  for (i = 0; i < sizeof(echo_cases) / sizeof(echo_cases[0]); i++) {
    run_tool(&run, 0, "call %s echo %s", name, echo_cases[i].args);
    assert_int_equal(run.exit_code, 0);
    assert_string_equal(run.out, echo_cases[i].printed);
  }
  run_tool(&run, 0, "call %s echo --in hex --out raw 414243", name);
  assert_int_equal(run.len, 3);
  assert_memory_equal(run.out, "ABC", 3);

  snprintf(file_name, sizeof(file_name), "%s.request", name);
  file = fopen(file_name, "wb");
  assert_non_null(file);
  assert_int_equal(fwrite("\x01\x02\x03", 1, 3, file), 3);
  assert_int_equal(fclose(file), 0);
  run_tool(&run, 0, "call %s echo --in file %s", name, file_name);
  assert_int_equal(run.exit_code, 0);
  assert_string_equal(run.out, "010203\n");
  assert_int_equal(remove(file_name), 0);

  /* The built-in ping, by its id. */
  run_tool(&run, 0, "call %s 0xffff0000 --in text ping", name);
  assert_string_equal(run.out, "ping\n");

  run_tool(&run, 0, "call --json %s add 40 2", name);
  assert_int_equal(run.exit_code, 0);
  {
    char expected[256];
    snprintf(expected, sizeof(expected),
             "{\"name\":\"%s\",\"method\":{\"id\":2,\"name\":\"add\"},"
             "\"request_bytes\":16,\"answer_bytes\":8,"
             "\"hex\":\"2a00000000000000\",\"i64\":[42]}\n",
             name);
    assert_string_equal(run.out, expected);
  }
  run_tool(&run, 0, "call --json %s 1 --in str x", name);
  expect_contains(run.out, "\"str\":[\"x\"]}");
  test_server_thread_stop(&ts);
}

/* A handler's failure is exit code 3 with its code and message; every
 * other failure exits 1 or 2 with one line. */
static void test_call_errors(void **state) {
  static const struct {
    const char *args; /* after "call NAME" */
    int exit_code;
    const char *said; /* in the one line on stderr */
  } failures[] = {
      {"frobnicate", 1, "no method named 'frobnicate'"},
      {"999", 1, "SHMRPC_ENOMETHOD"},
      {"echo --in text --out i64 abc", 1, "try --out hex"},
      {"echo --in hex abc", 2, "not hex bytes"},
      {"echo x", 2, "not a 64-bit integer"},
      {"echo --in file", 2, "takes one ARG"},
      {"echo --in bogus", 2, "bad --in"},
      {"echo --out file", 2, "bad --out"},
      {"4294967296", 2, "bad METHOD"},
      {"", 2, "missing METHOD"},
  };
  const char *name = test_service_name("callerr");
  const char *missing = test_service_name("callmissing");
  char expected[256];
  test_server_thread ts;
  tool_run run;
  size_t i;
  (void)state;

  test_server_thread_start(&ts, name, 4096, NULL);
  run_tool(&run, 1, "call %s fail", name);
  expect_error(&run, 3);
  snprintf(expected, sizeof(expected),
           "shmrpc: call: %s fail: application error %d: %s\n", name,
           T_FAIL_CODE, T_FAIL_MESSAGE);
  assert_string_equal(run.out, expected);
  run_tool(&run, 0, "call --json %s %d", name, T_FAIL);
  assert_int_equal(run.exit_code, 3);
  snprintf(expected, sizeof(expected),
           "{\"name\":\"%s\",\"method\":{\"id\":4},\"error\":\"SHMRPC_EAPP\","
           "\"app_code\":%d,\"app_message\":\"%s\"}\n",
           name, T_FAIL_CODE, T_FAIL_MESSAGE);
  assert_string_equal(run.out, expected);

  for (i = 0; i < sizeof(failures) / sizeof(failures[0]); i++) {
    run_tool(&run, 1, "call %s %s", name, failures[i].args);
    expect_error(&run, failures[i].exit_code);
    expect_contains(run.out, failures[i].said);
  }
  run_tool(&run, 0, "call --help");
  assert_int_equal(run.exit_code, 0);
  expect_contains(run.out, "usage: shmrpc call");
  run_tool(&run, 0, "--help");
  expect_contains(run.out, "  3  call: the method's handler failed");
  test_server_thread_stop(&ts);

  run_tool(&run, 1, "call %s add 1 2 --timeout 0", missing);
  expect_error(&run, 1);
  expect_contains(run.out, missing);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exit_codes), cmocka_unit_test(test_list),
      cmocka_unit_test(test_stat),       cmocka_unit_test(test_stat_lanes),       cmocka_unit_test(test_ping),
      cmocka_unit_test(test_methods),    cmocka_unit_test(test_clean),
      cmocka_unit_test(test_call_formats), cmocka_unit_test(test_call_errors),
  };
  int helper;
  test_proc_init(argv[0]);
  helper = test_helper_main(argc, argv);
  if (helper >= 0)
    return helper;
  return cmocka_run_group_tests(tests, NULL, NULL);
}
