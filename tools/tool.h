/*
 * The shmrpc command-line tool: what its files share. shmrpc.c parses the
 * command line and runs one command; services.c holds the commands that
 * read control blocks (list, stat, clean), calls.c those that call a server
 * (ping, methods), call.c the one that calls any method (call); bridge.c is
 * `shmrpc bridge` (when nng is there); output.c prints JSON and text safely;
 * clock.c is the one piece of platform code. Everything else goes through
 * the public API.
 */
#ifndef SHMRPC_TOOL_H
#define SHMRPC_TOOL_H

#include <stddef.h>
#include <stdint.h>

#include "shmrpc.h"

/* Exit codes, as `shmrpc --help` documents them. */
enum tool_exit {
  TOOL_EXIT_OK = 0,      /* the command did what it was asked */
  TOOL_EXIT_RUNTIME = 1, /* no such service, no server, timeout, OS error */
  TOOL_EXIT_USAGE = 2,   /* unknown command or option, bad argument */
  TOOL_EXIT_APP = 3      /* call: the server's handler reported an error */
};

#define TOOL_DEFAULT_TIMEOUT_MS 1000
#define TOOL_DEFAULT_PING_COUNT 10
#define TOOL_DEFAULT_PING_SIZE 16
#define TOOL_MAX_PING_COUNT 10000000L

/* The command line, once parsed. */
typedef struct tool_options {
  const char *command;  /* "list", "stat", ... */
  int json;             /* --json: one JSON document on stdout */
  int global_namespace; /* --global: Windows Global\ names */
  int32_t timeout_ms;   /* --timeout: for opening and for each call */
  long count;           /* ping -n: round trips */
  size_t size;          /* ping --size: payload bytes per round trip */
  int all;              /* list --all: also names that are not ours */
  const char *in;       /* call --in: how ARGS make the request */
  const char *out;      /* call --out: how the answer is printed */
  const char *server_user; /* --server-user: the user the server must run
                              as, for commands that call it */
  char **operands;      /* the arguments that are not options */
  int operand_count;
} tool_options;

/* The commands. Each returns an enum tool_exit value. */
int tool_list(const tool_options *options);
int tool_stat(const tool_options *options);
int tool_clean(const tool_options *options);
int tool_ping(const tool_options *options);
int tool_methods(const tool_options *options);
int tool_call(const tool_options *options);
/* The text `shmrpc call --help` prints (call.c). */
extern const char tool_call_help[];

/* Opens the service named by the first operand, waiting up to timeout_ms
 * (calls.c). Returns 0, or the exit code after reporting the error. */
int tool_open_client(const tool_options *options, const char *command,
                     int32_t timeout_ms, shmrpc_client **client);

/* One method of SHMRPC_METHOD_LIST's answer; name points into the answer
 * and is not NUL-terminated. */
typedef struct method_entry {
  uint32_t id;
  const char *name;
  size_t name_len;
} method_entry;

/* Reads the answer of SHMRPC_METHOD_LIST (calls.c): returns 0 and a
 * malloc'ed array sorted by id, or SHMRPC_EPROTO / SHMRPC_ENOMEM. */
int tool_methods_parse(const void *answer, size_t len, method_entry **out,
                       size_t *count);

/* `shmrpc bridge ...` (bridge.c, built when nng is present): parses its
 * own arguments, argv[0] being "bridge"; and its --help text. */
int tool_bridge(int argc, char **argv);
void tool_bridge_help(void);

/* Prints "shmrpc: COMMAND: message" and a newline on stderr. */
void tool_error(const char *command, const char *format, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Reports a library error in one line: "shmrpc: COMMAND: WHAT 'NAME': the
 * code's message (SHMRPC_E...)", and returns the exit code it deserves
 * (TOOL_EXIT_USAGE for SHMRPC_EINVAL, else TOOL_EXIT_RUNTIME). */
int tool_fail(const char *command, const char *what, const char *name, int err);

/* Parses a whole decimal number in [min, max] into *out. Returns 0 or -1
 * (shmrpc.c). */
int tool_parse_long(const char *text, long min, long max, long *out);

/* A monotonic clock in nanoseconds (clock.c). */
uint64_t tool_now_ns(void);

/* ---- Output (output.c) ------------------------------------------------- */

/* Writes one JSON document to stdout, compact, on one line. Keys and string
 * values are escaped; bytes that are not valid UTF-8 become U+FFFD. */
#define TOOL_JSON_MAX_DEPTH 8
typedef struct tool_json {
  int depth;                          /* open objects and arrays */
  int has_items[TOOL_JSON_MAX_DEPTH]; /* a value was written at depth */
  int after_key;                      /* a key waits for its value */
} tool_json;

void tool_json_init(tool_json *json);
void tool_json_object_begin(tool_json *json);
void tool_json_object_end(tool_json *json);
void tool_json_array_begin(tool_json *json);
void tool_json_array_end(tool_json *json);
void tool_json_key(tool_json *json, const char *key);
void tool_json_string(tool_json *json, const char *text, size_t len);
void tool_json_cstring(tool_json *json, const char *text);
void tool_json_uint(tool_json *json, uint64_t value);
void tool_json_int(tool_json *json, int64_t value);
void tool_json_bool(tool_json *json, int value);
/* Ends the document with a newline and flushes stdout. */
void tool_json_finish(tool_json *json);

/* Prints len bytes of untrusted text to stdout so that it cannot disturb a
 * terminal: control characters and invalid UTF-8 bytes appear as \xNN. */
void tool_print_text(const char *text, size_t len);

/* Formats a duration in nanoseconds as "12.3 us", "4.567 ms" or "1.234 s". */
void tool_format_duration(char *out, size_t cap, uint64_t ns);
/* Formats an uptime in milliseconds as "12.345 s" or "2d 03h 04m 05s". */
void tool_format_uptime(char *out, size_t cap, uint64_t ms);
/* Formats a byte count as "123 bytes" or "1234567 bytes (1.2 MiB)". */
void tool_format_bytes(char *out, size_t cap, uint64_t bytes);

#endif /* SHMRPC_TOOL_H */
