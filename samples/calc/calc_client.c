/* calc_client [--name NAME] [--timeout MS] OP ARGS...
 * Prints the result alone on stdout. Exit codes: 0 success, 2 usage or bad
 * number, 3 no server, 4 timeout, 5 application error, 6 other error. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calc.h"
#include "shmrpc.h"
#include "shmrpc_payload.h"

enum { EXIT_USAGE = 2, EXIT_NOSERVER = 3, EXIT_TIMEOUT = 4, EXIT_APP = 5,
       EXIT_OTHER = 6 };

static const struct {
  const char *name;
  int method;
  int args; /* number of integer arguments; 0 means one expression string */
} ops[] = {{"add", CALC_ADD, 2}, {"sub", CALC_SUB, 2}, {"mul", CALC_MUL, 2},
           {"div", CALC_DIV, 2}, {"mod", CALC_MOD, 2}, {"eval", CALC_EVAL, 0},
           {"sleep", CALC_SLEEP, 1}};

static int usage(void) {
  fprintf(stderr, "usage: calc_client [--name NAME] [--timeout MS] "
                  "add|sub|mul|div|mod A B | eval EXPR | sleep MS\n");
  return EXIT_USAGE;
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

int main(int argc, char **argv) {
  const char *name = CALC_DEFAULT_NAME;
  int32_t timeout_ms = 5000;
  unsigned char request[SHMRPC_DEFAULT_CAPACITY];
  unsigned char response[8];
  size_t response_len = 0, k;
  shmrpc_writer writer;
  shmrpc_client *client;
  int i = 1, op = -1, rc;

  for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
    int64_t value;
    if (strcmp(argv[i], "--name") == 0 && i + 1 < argc) {
      name = argv[++i];
    } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
      if (parse_i64(argv[++i], &value) != 0 || value < 0 || value > INT32_MAX) {
        fprintf(stderr, "calc_client: bad timeout '%s'\n", argv[i]);
        return EXIT_USAGE;
      }
      timeout_ms = (int32_t)value;
    } else {
      return usage();
    }
  }
  if (i >= argc)
    return usage();
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

  rc = shmrpc_client_open(&client, name, NULL, timeout_ms);
  if (rc != 0) {
    fprintf(stderr, "calc_client: cannot reach '%s': %s\n", name,
            shmrpc_strerror(rc));
    return rc == SHMRPC_EINVAL ? EXIT_USAGE : exit_code_for(rc);
  }
  rc = shmrpc_call(client, (uint32_t)ops[op].method, request, writer.len,
                   response, sizeof(response), &response_len, timeout_ms);
  if (rc == SHMRPC_EAPP) {
    const char *message;
    int32_t code = shmrpc_client_app_error(client, &message);
    fprintf(stderr, "calc_client: %s: %s (code %d)\n", ops[op].name, message,
            (int)code);
  } else if (rc != 0) {
    fprintf(stderr, "calc_client: %s: %s\n", ops[op].name,
            shmrpc_strerror(rc));
  } else {
    shmrpc_reader reader;
    int64_t result;
    shmrpc_reader_init(&reader, response, response_len);
    shmrpc_get_i64(&reader, &result);
    if (shmrpc_reader_done(&reader, SHMRPC_TRAILING_ERROR) != 0) {
      fprintf(stderr, "calc_client: malformed answer (%zu bytes)\n",
              response_len);
      rc = SHMRPC_EPROTO;
    } else {
      printf("%lld\n", (long long)result);
    }
  }
  shmrpc_client_close(client);
  return rc == 0 ? 0 : exit_code_for(rc);
}
