/* calc_server [OPTIONS]: serves the calculator until SIGINT or SIGTERM, on
 * several worker threads (its handlers keep no state, so they are
 * thread-safe), or with --poll from one thread's event loop that also
 * evaluates the expressions typed on standard input. */
#ifndef _WIN32
#define _POSIX_C_SOURCE 200809L
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#include <windows.h>
#else
#include <poll.h>
#include <time.h>
#include <unistd.h>
#endif

#include "calc.h"
#include "shmrpc.h"
#include "shmrpc_payload.h"

static shmrpc_server *served;

static void on_signal(int signo) {
  (void)signo;
  shmrpc_server_stop(served); /* async-signal-safe */
}

static void sleep_ms(int64_t ms) {
#ifdef _WIN32
  Sleep((DWORD)ms);
#else
  struct timespec ts;
  ts.tv_sec = (time_t)(ms / 1000);
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) != 0) {
  }
#endif
}

/* Answers one int64, written in place in the response area. */
static int reply_i64(shmrpc_reply *reply, int64_t value) {
  size_t capacity = 0;
  void *area = shmrpc_reply_buffer(reply, &capacity);
  shmrpc_writer writer;
  shmrpc_writer_init(&writer, area, capacity);
  shmrpc_put_i64(&writer, value);
  if (writer.err != 0)
    return writer.err;
  return shmrpc_reply_commit(reply, writer.len);
}

static int handle_binary(void *user_data, const void *request,
                         size_t request_len, shmrpc_reply *reply) {
  int method = (int)(intptr_t)user_data;
  char msg[SHMRPC_MESSAGE_MAX + 1];
  shmrpc_reader reader;
  int64_t a, b, result = 0;
  int rc;
  shmrpc_reader_init(&reader, request, request_len);
  shmrpc_get_i64(&reader, &a);
  shmrpc_get_i64(&reader, &b);
  if (shmrpc_reader_done(&reader, SHMRPC_TRAILING_ERROR) != 0)
    return shmrpc_reply_error(reply, CALC_ERR_BAD_REQUEST,
                              "expected two 64-bit integers");
  rc = calc_apply(method, a, b, &result, msg, sizeof(msg));
  if (rc != 0)
    return shmrpc_reply_error(reply, rc, msg);
  return reply_i64(reply, result);
}

static int handle_eval(void *user_data, const void *request,
                       size_t request_len, shmrpc_reply *reply) {
  char msg[SHMRPC_MESSAGE_MAX + 1];
  shmrpc_reader reader;
  const char *expression;
  size_t expression_len;
  int64_t result = 0;
  int rc;
  (void)user_data;
  shmrpc_reader_init(&reader, request, request_len);
  shmrpc_get_str(&reader, &expression, &expression_len);
  if (shmrpc_reader_done(&reader, SHMRPC_TRAILING_ERROR) != 0)
    return shmrpc_reply_error(reply, CALC_ERR_BAD_REQUEST,
                              "expected one expression string");
  rc = calc_eval(expression, expression_len, &result, msg, sizeof(msg));
  if (rc != 0)
    return shmrpc_reply_error(reply, rc, msg);
  return reply_i64(reply, result);
}

static int handle_sleep(void *user_data, const void *request,
                        size_t request_len, shmrpc_reply *reply) {
  shmrpc_reader reader;
  int64_t ms;
  (void)user_data;
  shmrpc_reader_init(&reader, request, request_len);
  shmrpc_get_i64(&reader, &ms);
  if (shmrpc_reader_done(&reader, SHMRPC_TRAILING_ERROR) != 0)
    return shmrpc_reply_error(reply, CALC_ERR_BAD_REQUEST,
                              "expected one 64-bit integer");
  if (ms < 0 || ms > 600000)
    return shmrpc_reply_error(reply, CALC_ERR_BAD_REQUEST,
                              "sleep takes 0 to 600000 ms");
  sleep_ms(ms);
  return reply_i64(reply, ms);
}

static const char help[] =
    "usage: calc_server [--name NAME] [--lanes N] [--workers N] [--poll]\n"
    "                   [--access owner|group|everyone] [--capacity BYTES]\n"
    "\n"
    "Serves the calculator until SIGINT or SIGTERM.\n"
    "\n"
    "  --poll             serve from one thread's event loop, which also\n"
    "                     evaluates each line typed on standard input and\n"
    "                     prints '= RESULT' (or 'error: WHY')\n"
    "  --name NAME        the service (default " CALC_DEFAULT_NAME ")\n"
    "  --lanes N          calls held at once, from any clients (default 8)\n"
    "  --workers N        handler threads (default 4, at most the lanes):\n"
    "                     a long 'sleep' never holds up an 'add'\n"
    "  --access WHO       who may call: owner (default), group, everyone\n"
    "  --capacity BYTES   request and response bytes per lane (default\n"
    "                     65536)\n";

/* ---- --poll: one loop for shmrpc calls and standard input --------------- */

/* Evaluates one line of standard input and prints the result. */
static void eval_line(char *line) {
  char msg[SHMRPC_MESSAGE_MAX + 1], out[SHMRPC_MESSAGE_MAX + 16];
  size_t len = strcspn(line, "\r\n");
  int64_t result = 0;
  line[len] = '\0';
  if (len == 0)
    return;
  if (calc_eval(line, len, &result, msg, sizeof(msg)) != 0)
    snprintf(out, sizeof(out), "error: %s", msg);
  else
    snprintf(out, sizeof(out), "= %lld", (long long)result);
  puts(out);
  fflush(stdout);
}

#ifdef _WIN32
/* A console or pipe cannot be waited on beside an event: a thread reads
 * the lines and hands each over through an event. */
static char typed[1024];
static HANDLE typed_ready, typed_taken;
static volatile LONG typed_eof;

static DWORD WINAPI read_lines(LPVOID arg) {
  (void)arg;
  while (fgets(typed, sizeof(typed), stdin) != NULL) {
    SetEvent(typed_ready);
    WaitForSingleObject(typed_taken, INFINITE);
  }
  InterlockedExchange(&typed_eof, 1);
  SetEvent(typed_ready);
  return 0;
}

static int serve_poll(shmrpc_server *server) {
  shmrpc_waitable waitable;
  HANDLE handles[2];
  DWORD count = 2;
  int rc = shmrpc_server_waitable(server, &waitable);
  if (rc != 0)
    return rc;
  typed_ready = CreateEventW(NULL, FALSE, FALSE, NULL);
  typed_taken = CreateEventW(NULL, FALSE, FALSE, NULL);
  if (typed_ready == NULL || typed_taken == NULL ||
      CreateThread(NULL, 0, read_lines, NULL, 0, NULL) == NULL)
    return SHMRPC_EOS;
  handles[0] = waitable;
  handles[1] = typed_ready;
  for (;;) {
    /* Dispatch at least every 250 ms (see shmrpc_server_dispatch). */
    DWORD got = WaitForMultipleObjects(count, handles, FALSE, 250);
    if (got == WAIT_OBJECT_0 + 1) {
      if (InterlockedCompareExchange(&typed_eof, 0, 0)) {
        count = 1; /* end of input: serve calls only */
      } else {
        eval_line(typed);
        SetEvent(typed_taken);
      }
    }
    rc = shmrpc_server_dispatch(server);
    if (rc < 0)
      return rc == SHMRPC_ESHUTDOWN ? 0 : rc;
  }
}
#else
static int serve_poll(shmrpc_server *server) {
  struct pollfd fds[2];
  nfds_t count = 2;
  char line[1024];
  size_t have = 0;
  int rc = shmrpc_server_waitable(server, &fds[0].fd);
  if (rc != 0)
    return rc;
  fds[0].events = POLLIN;
  fds[1].fd = STDIN_FILENO;
  fds[1].events = POLLIN;
  for (;;) {
    fds[0].revents = fds[1].revents = 0;
    /* Dispatch at least every 250 ms (see shmrpc_server_dispatch). A
     * signal ends poll early: dispatch then says the server stopped. */
    (void)poll(fds, count, 250);
    if (count == 2 && fds[1].revents != 0) {
      ssize_t got = read(STDIN_FILENO, line + have, sizeof(line) - 1 - have);
      if (got <= 0) {
        count = 1; /* end of input: serve calls only */
      } else {
        char *start = line, *newline;
        have += (size_t)got;
        line[have] = '\0';
        while ((newline = strchr(start, '\n')) != NULL) {
          *newline = '\0';
          eval_line(start);
          start = newline + 1;
        }
        have -= (size_t)(start - line);
        memmove(line, start, have);
        if (have == sizeof(line) - 1) { /* a line too long: take it whole */
          eval_line(line);
          have = 0;
        }
      }
    }
    rc = shmrpc_server_dispatch(server);
    if (rc < 0)
      return rc == SHMRPC_ESHUTDOWN ? 0 : rc;
  }
}
#endif

/* A positive number no larger than max, or -1. */
static long parse_count(const char *text, long max) {
  char *end;
  long value = strtol(text, &end, 10);
  if (end == text || *end != '\0' || value < 1 || value > max)
    return -1;
  return value;
}

int main(int argc, char **argv) {
  const char *name = CALC_DEFAULT_NAME;
  shmrpc_server_options options;
  int i, rc, use_poll = 0;

  shmrpc_server_options_init(&options);
  options.workers = 4;
  for (i = 1; i < argc; i++) {
    const char *value = i + 1 < argc ? argv[i + 1] : NULL;
    long number = 0;
    if (strcmp(argv[i], "--help") == 0) {
      fputs(help, stdout);
      return 0;
    } else if (strcmp(argv[i], "--poll") == 0) {
      use_poll = 1;
      continue;
    } else if (strcmp(argv[i], "--name") == 0 && value != NULL) {
      name = value;
    } else if (strcmp(argv[i], "--lanes") == 0 && value != NULL &&
               (number = parse_count(value, SHMRPC_MAX_LANES)) > 0) {
      options.lanes = (uint32_t)number;
    } else if (strcmp(argv[i], "--workers") == 0 && value != NULL &&
               (number = parse_count(value, SHMRPC_MAX_WORKERS)) > 0) {
      options.workers = (uint32_t)number;
    } else if (strcmp(argv[i], "--capacity") == 0 && value != NULL &&
               (number = parse_count(value, (long)SHMRPC_MAX_CAPACITY)) > 0) {
      options.capacity = (size_t)number;
    } else if (strcmp(argv[i], "--access") == 0 && value != NULL &&
               (strcmp(value, "owner") == 0 || strcmp(value, "group") == 0 ||
                strcmp(value, "everyone") == 0)) {
      options.access = value[0] == 'o'   ? SHMRPC_ACCESS_OWNER
                       : value[0] == 'g' ? SHMRPC_ACCESS_GROUP
                                         : SHMRPC_ACCESS_EVERYONE;
    } else {
      fprintf(stderr, "%.*s(see 'calc_server --help')\n",
              (int)(strchr(help, '\n') - help + 1), help);
      return 2;
    }
    i++;
  }
  if (options.workers > options.lanes)
    options.workers = options.lanes;

  rc = shmrpc_server_create(&served, name, &options);
  if (rc != 0) {
    fprintf(stderr, "calc_server: cannot serve '%s': %s\n", name,
            shmrpc_error_message(rc));
    return 1;
  }
  shmrpc_server_register(served, CALC_ADD, "add", handle_binary,
                         (void *)(intptr_t)CALC_ADD);
  shmrpc_server_register(served, CALC_SUB, "sub", handle_binary,
                         (void *)(intptr_t)CALC_SUB);
  shmrpc_server_register(served, CALC_MUL, "mul", handle_binary,
                         (void *)(intptr_t)CALC_MUL);
  shmrpc_server_register(served, CALC_DIV, "div", handle_binary,
                         (void *)(intptr_t)CALC_DIV);
  shmrpc_server_register(served, CALC_MOD, "mod", handle_binary,
                         (void *)(intptr_t)CALC_MOD);
  shmrpc_server_register(served, CALC_EVAL, "eval", handle_eval, NULL);
  shmrpc_server_register(served, CALC_SLEEP, "sleep", handle_sleep, NULL);

  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);

  printf("calc_server: serving '%s'%s\n", name,
         use_poll ? " from a poll loop, and standard input" : "");
  fflush(stdout);
  rc = use_poll ? serve_poll(served) : shmrpc_server_run(served);
  shmrpc_server_destroy(served);
  if (rc != 0) {
    fprintf(stderr, "calc_server: %s\n", shmrpc_strerror(rc));
    return 1;
  }
  fprintf(stderr, "calc_server: stopped\n");
  return 0;
}
