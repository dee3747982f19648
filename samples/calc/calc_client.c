/* calc_client [--name NAME] [--timeout MS] [--server-user USER]
 *             [--in-flight N] OP ARGS...
 * Prints the result alone on stdout (N results, one per line, in order,
 * for N calls in flight at once). Exit codes: 0 success, 2 usage or bad
 * number, 3 no server, 4 timeout, 5 application error, 6 other error. */
#ifndef _WIN32
#define _POSIX_C_SOURCE 200809L
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#include <windows.h>
#else
#include <time.h>
#endif

#include "calc.h"
#include "shmrpc.h"
#include "shmrpc_payload.h"

enum { EXIT_USAGE = 2, EXIT_NOSERVER = 3, EXIT_TIMEOUT = 4, EXIT_APP = 5,
       EXIT_OTHER = 6 };

#define MAX_IN_FLIGHT 1024

static const struct {
  const char *name;
  int method;
  int args; /* number of integer arguments; 0 means one expression string */
} ops[] = {{"add", CALC_ADD, 2}, {"sub", CALC_SUB, 2}, {"mul", CALC_MUL, 2},
           {"div", CALC_DIV, 2}, {"mod", CALC_MOD, 2}, {"eval", CALC_EVAL, 0},
           {"sleep", CALC_SLEEP, 1}};

static const char help[] =
    "usage: calc_client [--name NAME] [--timeout MS] [--server-user USER]\n"
    "                   [--in-flight N] add|sub|mul|div|mod A B | eval EXPR |"
    " sleep MS\n"
    "\n"
    "Asks the calculator server (calc_server) for one result and prints it\n"
    "alone on stdout. A and B are 64-bit integers; EXPR uses + - * / % and\n"
    "parentheses; sleep makes the server sleep MS milliseconds.\n"
    "\n"
    "  --name NAME   the service (default " CALC_DEFAULT_NAME "): 1 to 64 "
    "characters of [A-Za-z0-9._-]\n"
    "  --timeout MS  one budget for finding the server and getting the\n"
    "                answer (default 5000; -1 waits forever, though a dead\n"
    "                server still ends the wait)\n"
    "  --server-user USER  the user the server must run as (a name or id;\n"
    "                a SID on Windows); by default only this user's and\n"
    "                the administrator's services are trusted\n"
    "  --in-flight N make the call N times at once through one handle\n"
    "                (calls that do not block) and print the N results in\n"
    "                order: 'sleep 1000' with N = 4 takes about a second on\n"
    "                a server with 4 workers\n"
    "  --help        this text\n"
    "\n"
    "Exit codes: 0 success, 2 usage or bad number, 3 no server (or it died\n"
    "or stopped), 4 timeout, 5 application error (division by zero,\n"
    "overflow, syntax error with its position), 6 any other error (a\n"
    "malformed answer, permission denied, an OS error). With --in-flight,\n"
    "the code of the first call that failed.\n";

static int usage(void) {
  fprintf(stderr, "%.*s(see 'calc_client --help')\n",
          (int)(strchr(help, '\n') - help + 1), help);
  return EXIT_USAGE;
}

/* Monotonic milliseconds, for the one timeout budget. */
static int64_t now_ms(void) {
#ifdef _WIN32
  return (int64_t)GetTickCount64();
#else
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
#endif
}

static int parse_i64(const char *text, int64_t *out) {
  char *end;
  long long value;
  errno = 0;
  value = strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0')
    return -1;
  *out = (int64_t)value;
  return 0;
}

static int exit_code_for(int rc) {
  switch (rc) {
  case SHMRPC_ENOSERVER:
  case SHMRPC_ESERVERDIED:
  case SHMRPC_ESHUTDOWN:
    return EXIT_NOSERVER;
  case SHMRPC_ETIMEDOUT:
    return EXIT_TIMEOUT;
  case SHMRPC_EAPP:
    return EXIT_APP;
  default:
    return EXIT_OTHER;
  }
}

/* Prints a call's result (or says why it failed); returns rc, or
 * SHMRPC_EPROTO for a malformed answer. */
static int print_result(shmrpc_client *client, const char *op, int rc,
                        const unsigned char *response, size_t response_len) {
  if (rc == SHMRPC_EAPP) {
    const char *message;
    int32_t code = shmrpc_client_app_error(client, &message);
    fprintf(stderr, "calc_client: %s: %s (code %d)\n", op, message,
            (int)code);
  } else if (rc != 0) {
    fprintf(stderr, "calc_client: %s: %s\n", op, shmrpc_strerror(rc));
  } else {
    shmrpc_reader reader;
    int64_t result;
    shmrpc_reader_init(&reader, response, response_len);
    shmrpc_get_i64(&reader, &result);
    if (shmrpc_reader_done(&reader, SHMRPC_TRAILING_ERROR) != 0) {
      fprintf(stderr, "calc_client: malformed answer (%zu bytes)\n",
              response_len);
      return SHMRPC_EPROTO;
    }
    printf("%lld\n", (long long)result);
  }
  return rc;
}

/* Starts n calls at once through the one handle (each on its own lane, or
 * queued for one), then prints their results in order. Returns the first
 * failure's code, or 0. */
static int call_in_flight(shmrpc_client *client, const char *op,
                          uint32_t method, const unsigned char *request,
                          size_t request_len, long n, int32_t timeout_ms) {
  shmrpc_pending *calls[MAX_IN_FLIGHT];
  long k, started;
  int first = 0;
  for (started = 0; started < n; started++) {
    int rc = shmrpc_call_start(client, method, request, request_len,
                               timeout_ms, &calls[started]);
    if (rc != 0) {
      fprintf(stderr, "calc_client: %s: cannot start call %ld: %s\n", op,
              started + 1, shmrpc_error_message(rc));
      first = rc;
      break;
    }
  }
  for (k = 0; k < started; k++) {
    unsigned char response[8];
    size_t response_len = 0;
    int rc;
    /* Each call has its own deadline: waiting without a limit here ends
     * when the call does. */
    (void)shmrpc_pending_wait(calls[k], SHMRPC_INFINITE);
    rc = shmrpc_pending_finish(calls[k], response, sizeof(response),
                               &response_len);
    rc = print_result(client, op, rc, response, response_len);
    if (rc != 0 && first == 0)
      first = rc;
  }
  return first;
}

int main(int argc, char **argv) {
  const char *name = CALC_DEFAULT_NAME;
  int32_t timeout_ms = 5000;
  unsigned char request[SHMRPC_DEFAULT_CAPACITY];
  unsigned char response[8];
  size_t response_len = 0, k;
  int64_t start_ms;
  shmrpc_writer writer;
  shmrpc_client_options options;
  shmrpc_client *client;
  long in_flight = 0;
  int i = 1, op = -1, rc;

  shmrpc_client_options_init(&options);

  for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
    int64_t value;
    if (strcmp(argv[i], "--help") == 0) {
      fputs(help, stdout);
      return 0;
    } else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc) {
      name = argv[++i];
    } else if (strcmp(argv[i], "--server-user") == 0 && i + 1 < argc) {
      options.server_user = argv[++i];
    } else if (strcmp(argv[i], "--in-flight") == 0 && i + 1 < argc) {
      if (parse_i64(argv[++i], &value) != 0 || value < 1 ||
          value > MAX_IN_FLIGHT) {
        fprintf(stderr, "calc_client: bad --in-flight '%s' (1 to %d)\n",
                argv[i], MAX_IN_FLIGHT);
        return EXIT_USAGE;
      }
      in_flight = (long)value;
    } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
      if (parse_i64(argv[++i], &value) != 0 || value < -1 || value > INT32_MAX) {
        fprintf(stderr,
                "calc_client: bad timeout '%s' (milliseconds, or -1 for no "
                "limit)\n",
                argv[i]);
        return EXIT_USAGE;
      }
      timeout_ms = (int32_t)value;
    } else {
      return usage();
    }
  }
  if (i >= argc)
    return usage();
  if (shmrpc_name_check(name) != 0) {
    fprintf(stderr,
            "calc_client: invalid service name '%s' (1 to %d characters of "
            "[A-Za-z0-9._-])\n",
            name, SHMRPC_NAME_MAX);
    return EXIT_USAGE;
  }
  for (k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
    if (strcmp(argv[i], ops[k].name) == 0)
      op = (int)k;
  }
  if (op < 0)
    return usage();
  i++;
  shmrpc_writer_init(&writer, request, sizeof(request));
  if (ops[op].args == 0) {
    if (argc - i != 1)
      return usage();
    if (shmrpc_put_str(&writer, argv[i]) != 0) {
      fprintf(stderr, "calc_client: expression too long\n");
      return EXIT_USAGE;
    }
  } else {
    int a;
    if (argc - i != ops[op].args)
      return usage();
    for (a = 0; a < ops[op].args; a++) {
      int64_t value;
      if (parse_i64(argv[i + a], &value) != 0) {
        fprintf(stderr, "calc_client: not a 64-bit integer: '%s'\n",
                argv[i + a]);
        return EXIT_USAGE;
      }
      shmrpc_put_i64(&writer, value); /* two fit easily */
    }
  }

  /* One budget: the call gets what opening left of it. */
  start_ms = now_ms();
  rc = shmrpc_client_open(&client, name, &options, timeout_ms);
  if (rc != 0) {
    fprintf(stderr, "calc_client: cannot reach '%s': %s\n", name,
            shmrpc_error_message(rc));
    return rc == SHMRPC_EINVAL ? EXIT_USAGE : exit_code_for(rc);
  }
  if (timeout_ms > 0) {
    /* What is left, and never 0, which means "no waiting" (SHMRPC_NOWAIT)
     * rather than "the budget is spent". */
    int64_t left = timeout_ms - (now_ms() - start_ms);
    timeout_ms = left > 0 ? (int32_t)left : 1;
  }
  if (in_flight > 0) {
    rc = call_in_flight(client, ops[op].name, (uint32_t)ops[op].method, request,
                        writer.len, in_flight, timeout_ms);
  } else {
    rc = shmrpc_call(client, (uint32_t)ops[op].method, request, writer.len,
                     response, sizeof(response), &response_len, timeout_ms);
    rc = print_result(client, ops[op].name, rc, response, response_len);
  }
  shmrpc_client_close(client);
  return rc == 0 ? 0 : exit_code_for(rc);
}
