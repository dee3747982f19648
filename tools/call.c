/* The call command: invokes one method of a service from the shell, like
 * `busctl call`. The request is made of the ARGS in the --in format, the
 * answer printed in the --out format; a handler's failure is exit code 3
 * with its code and message. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#include <fcntl.h>
#include <io.h>
#endif

#include "shmrpc.h"
#include "shmrpc_payload.h"
#include "tool.h"

const char tool_call_help[] =
    "usage: shmrpc call [--json] [--in FORMAT] [--out FORMAT] [--timeout MS]\n"
    "                   [--global] [--server-user USER] NAME METHOD [ARGS...]\n"
    "\n"
    "Calls METHOD of service NAME once and prints the answer. METHOD is an\n"
    "id (decimal, or hex with 0x) or the name the server registered it\n"
    "under (looked up with the built-in list method, as 'shmrpc methods'\n"
    "shows them).\n"
    "\n"
    "--in says how ARGS make the request:\n"
    "  i64    each ARG a 64-bit integer, 8 bytes little-endian (default)\n"
    "  str    each ARG a string: a u32 length and its bytes, the string of\n"
    "         shmrpc_payload.h\n"
    "  text   one ARG, its bytes as they are\n"
    "  hex    the ARGS are hex digits of the bytes (spaces and colons\n"
    "         ignored)\n"
    "  file   one ARG, a file whose bytes are the request ('-' is stdin)\n"
    "No ARGS: an empty request.\n"
    "\n"
    "--out says how the answer is printed: i64 (integers on one line), str\n"
    "(one string a line), text (the bytes, control characters escaped),\n"
    "hex, or raw (the bytes exactly, for a file: > FILE). The default is\n"
    "--in's format for i64, str and text, else hex. An answer that is not in\n"
    "the format (say 5 bytes for i64) is an error: try --out hex.\n"
    "\n"
    "--timeout is one budget for finding the server, looking METHOD up and\n"
    "the call (default 1000 ms; -1 waits forever, though a dead server still\n"
    "ends the wait).\n"
    "\n"
    "--json prints {\"name\", \"method\", \"request_bytes\", \"answer_bytes\",\n"
    "\"hex\", and \"i64\" (an array), \"str\" (an array) or \"text\" as --out\n"
    "says}; after an application error {\"name\", \"method\", \"error\":\n"
    "\"SHMRPC_EAPP\", \"app_code\", \"app_message\"}.\n"
    "\n"
    "  shmrpc call calc add 2 3                 prints 5\n"
    "  shmrpc call calc eval --in str --out i64 '2*(3+4)'\n"
    "  shmrpc call calc 0xffff0000 --in text hello     the built-in ping\n"
    "\n"
    "Exits 0 on an answer, 3 if the handler failed (its code and message\n"
    "on stderr), 1 for a runtime error (no server, timeout, no such method,\n"
    "an answer not in the --out format), 2 for a usage error.\n";

/* The request or answer formats; not every one is valid both ways. */
enum format { FORMAT_I64, FORMAT_STR, FORMAT_TEXT, FORMAT_HEX, FORMAT_FILE,
              FORMAT_RAW };

static const char *const format_names[] = {"i64", "str", "text",
                                           "hex", "file", "raw"};

static int format_parse(const char *text, int output, enum format *out) {
  size_t i;
  for (i = 0; i < sizeof(format_names) / sizeof(format_names[0]); i++) {
    if (strcmp(text, format_names[i]) == 0) {
      *out = (enum format)i;
      /* A file is only a request; raw bytes are only an answer. */
      return (output ? i != FORMAT_FILE : i != FORMAT_RAW) ? 0 : -1;
    }
  }
  return -1;
}

/* A growing byte buffer for the request. */
typedef struct bytes {
  unsigned char *data;
  size_t len, cap;
} bytes;

static int bytes_append(bytes *b, const void *data, size_t len) {
  if (b->len + len > b->cap) {
    size_t cap = b->cap == 0 ? 256 : b->cap;
    unsigned char *grown;
    while (cap < b->len + len)
      cap *= 2;
    grown = realloc(b->data, cap);
    if (grown == NULL)
      return SHMRPC_ENOMEM;
    b->data = grown;
    b->cap = cap;
  }
  if (len > 0)
    memcpy(b->data + b->len, data, len);
  b->len += len;
  return 0;
}

static int hex_digit(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Bytes through stdin or stdout unchanged: Windows' text mode would turn
 * "\n" into "\r\n" and stop at ^Z. */
static void binary_mode(FILE *stream) {
#ifdef _WIN32
  _setmode(_fileno(stream), _O_BINARY);
#else
  (void)stream;
#endif
}

static int read_file(const char *path, bytes *out) {
  FILE *file = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  unsigned char chunk[4096];
  size_t n;
  int rc = 0;
  if (file == stdin)
    binary_mode(stdin);
  if (file == NULL) {
    tool_error("call", "cannot open '%s': %s", path, strerror(errno));
    return TOOL_EXIT_USAGE;
  }
  while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), file)) > 0)
    rc = bytes_append(out, chunk, n);
  if (rc == 0 && ferror(file)) {
    tool_error("call", "cannot read '%s'", path);
    rc = TOOL_EXIT_RUNTIME;
  } else if (rc != 0) {
    rc = tool_fail("call", "cannot read", path, rc);
  }
  if (file != stdin)
    fclose(file);
  return rc;
}

/* Builds the request from ARGS (operands from the third on). Returns 0, or
 * the exit code after reporting. */
static int make_request(enum format in, char **args, int count, bytes *out) {
  unsigned char field[8];
  int i;
  if ((in == FORMAT_TEXT && count > 1) || (in == FORMAT_FILE && count != 1)) {
    tool_error("call", "--in %s takes one ARG, not %d%s", format_names[in],
               count, in == FORMAT_TEXT ? " (quote it)" : "");
    return TOOL_EXIT_USAGE;
  }
  if (in == FORMAT_FILE)
    return read_file(args[0], out);
  for (i = 0; i < count; i++) {
    const char *arg = args[i];
    size_t len = strlen(arg), k;
    shmrpc_writer w;
    int rc = 0;
    switch (in) {
    case FORMAT_I64: {
      char *end;
      long long value;
      errno = 0;
      value = strtoll(arg, &end, 10);
      if (errno != 0 || end == arg || *end != '\0') {
        tool_error("call", "not a 64-bit integer: '%s' (see --in)", arg);
        return TOOL_EXIT_USAGE;
      }
      shmrpc_writer_init(&w, field, sizeof(field));
      shmrpc_put_i64(&w, (int64_t)value);
      rc = bytes_append(out, field, w.len);
      break;
    }
    case FORMAT_STR:
      if (len > UINT32_MAX)
        return tool_fail("call", "cannot send", NULL, SHMRPC_ETOOBIG);
      shmrpc_writer_init(&w, field, 4);
      shmrpc_put_u32(&w, (uint32_t)len);
      rc = bytes_append(out, field, w.len);
      if (rc == 0)
        rc = bytes_append(out, arg, len);
      break;
    case FORMAT_TEXT:
      rc = bytes_append(out, arg, len);
      break;
    default: /* FORMAT_HEX */
      for (k = 0; k < len && rc == 0; k++) {
        int high, low;
        unsigned char byte;
        if (arg[k] == ' ' || arg[k] == ':')
          continue;
        high = hex_digit((unsigned char)arg[k]);
        low = k + 1 < len ? hex_digit((unsigned char)arg[k + 1]) : -1;
        if (high < 0 || low < 0) {
          tool_error("call", "not hex bytes: '%s' (two digits a byte)", arg);
          return TOOL_EXIT_USAGE;
        }
        byte = (unsigned char)(high << 4 | low);
        rc = bytes_append(out, &byte, 1);
        k++;
      }
      break;
    }
    if (rc != 0)
      return tool_fail("call", "cannot build the request", NULL, rc);
  }
  return 0;
}

/* Parses METHOD as a number: decimal, or hex after 0x. 0 or -1. */
static int parse_method_id(const char *text, uint32_t *out) {
  int hex = text[0] == '0' && (text[1] == 'x' || text[1] == 'X');
  char *end;
  unsigned long long value;
  if (!(hex ? hex_digit((unsigned char)text[2]) >= 0
            : text[0] >= '0' && text[0] <= '9'))
    return -1;
  errno = 0;
  value = strtoull(hex ? text + 2 : text, &end, hex ? 16 : 10);
  if (errno != 0 || *end != '\0' || value > UINT32_MAX)
    return -1;
  *out = (uint32_t)value;
  return 0;
}

/* Milliseconds left of the budget that started at start_ns. */
static int32_t budget_left(int32_t timeout_ms, uint64_t start_ns) {
  uint64_t spent_ms = (tool_now_ns() - start_ns) / 1000000u;
  if (timeout_ms < 0)
    return SHMRPC_INFINITE;
  return spent_ms >= (uint64_t)timeout_ms ? 0
                                          : (int32_t)(timeout_ms - spent_ms);
}

/* Looks up the id of the method the server registered as `method`, with
 * the built-in list method. Returns 0, or the exit code after reporting. */
static int resolve_method(shmrpc_client *client, const char *service,
                          const char *method, int32_t timeout_ms,
                          unsigned char *answer, size_t capacity,
                          uint32_t *id) {
  method_entry *entries = NULL;
  size_t answer_len = 0, count = 0, i;
  int rc = shmrpc_call(client, SHMRPC_METHOD_LIST, NULL, 0, answer, capacity,
                       &answer_len, timeout_ms);
  if (rc == 0)
    rc = tool_methods_parse(answer, answer_len, &entries, &count);
  if (rc != 0)
    return tool_fail("call", "cannot look the method up in", service, rc);
  for (i = 0; i < count; i++) {
    if (entries[i].name_len == strlen(method) &&
        memcmp(entries[i].name, method, entries[i].name_len) == 0) {
      *id = entries[i].id;
      free(entries);
      return 0;
    }
  }
  free(entries);
  tool_error("call",
             "'%s' has no method named '%s' (see 'shmrpc methods %s')",
             service, method, service);
  return TOOL_EXIT_RUNTIME;
}

/* Whether the answer is a sequence of `out` fields. */
static int answer_fits(enum format out, const unsigned char *answer,
                       size_t len) {
  shmrpc_reader r;
  if (out == FORMAT_I64)
    return len % 8 == 0;
  if (out != FORMAT_STR)
    return 1;
  shmrpc_reader_init(&r, answer, len);
  while (r.err == 0 && r.pos < r.len) {
    const char *text;
    size_t text_len;
    shmrpc_get_str(&r, &text, &text_len);
  }
  return r.err == 0;
}

static void print_hex(const unsigned char *data, size_t len) {
  size_t i;
  for (i = 0; i < len; i++)
    printf("%02x", data[i]);
}

/* Prints the answer in the --out format, as text or inside --json. */
static void print_answer(enum format out,
                         const unsigned char *answer, size_t len,
                         tool_json *json) {
  shmrpc_reader r;
  shmrpc_reader_init(&r, answer, len);
  if (json != NULL) {
    /* "hex" always; the decoded form as --out says. */
    char *hex = malloc(len * 2 + 1);
    size_t i;
    tool_json_key(json, "hex");
    if (hex != NULL) {
      for (i = 0; i < len; i++)
        snprintf(hex + 2 * i, 3, "%02x", answer[i]);
      tool_json_string(json, hex, len * 2);
      free(hex);
    } else {
      tool_json_cstring(json, "");
    }
    if (out == FORMAT_I64 || out == FORMAT_STR) {
      tool_json_key(json, format_names[out]);
      tool_json_array_begin(json);
      while (r.pos < r.len) {
        if (out == FORMAT_I64) {
          int64_t value;
          shmrpc_get_i64(&r, &value);
          tool_json_int(json, value);
        } else {
          const char *text;
          size_t text_len;
          shmrpc_get_str(&r, &text, &text_len);
          tool_json_string(json, text, text_len);
        }
      }
      tool_json_array_end(json);
    } else if (out == FORMAT_TEXT) {
      tool_json_key(json, "text");
      tool_json_string(json, (const char *)answer, len);
    }
    return;
  }
  switch (out) {
  case FORMAT_I64:
    while (r.pos < r.len) {
      int64_t value;
      shmrpc_get_i64(&r, &value);
      printf(r.pos < r.len ? "%lld " : "%lld\n", (long long)value);
    }
    break;
  case FORMAT_STR:
    while (r.pos < r.len) {
      const char *text;
      size_t text_len;
      shmrpc_get_str(&r, &text, &text_len);
      tool_print_text(text, text_len);
      putchar('\n');
    }
    break;
  case FORMAT_TEXT:
    tool_print_text((const char *)answer, len);
    putchar('\n');
    break;
  case FORMAT_RAW:
    fflush(stdout);
    binary_mode(stdout);
    fwrite(answer, 1, len, stdout);
    break;
  default:
    print_hex(answer, len);
    putchar('\n');
    break;
  }
}

/* The start of the --json document: the service and the method. */
static void json_head(tool_json *json, const char *name, uint32_t id,
                      const char *method_name) {
  tool_json_init(json);
  tool_json_object_begin(json);
  tool_json_key(json, "name");
  tool_json_cstring(json, name);
  tool_json_key(json, "method");
  tool_json_object_begin(json);
  tool_json_key(json, "id");
  tool_json_uint(json, id);
  if (method_name != NULL) {
    tool_json_key(json, "name");
    tool_json_cstring(json, method_name);
  }
  tool_json_object_end(json);
}

/* Reports a handler's failure: one line on stderr, and with --json the
 * document on stdout. Returns TOOL_EXIT_APP. */
static int report_app_error(const tool_options *options, shmrpc_client *client,
                            uint32_t id, const char *method_name) {
  const char *name = options->operands[0], *message = "";
  int32_t code = shmrpc_client_app_error(client, &message);
  if (options->json) {
    tool_json json;
    json_head(&json, name, id, method_name);
    tool_json_key(&json, "error");
    tool_json_cstring(&json, shmrpc_err_name(SHMRPC_EAPP));
    tool_json_key(&json, "app_code");
    tool_json_int(&json, code);
    tool_json_key(&json, "app_message");
    tool_json_cstring(&json, message);
    tool_json_object_end(&json);
    tool_json_finish(&json);
  }
  tool_error("call", "%s %s: application error %ld%s%s", name,
             options->operands[1], (long)code, message[0] != '\0' ? ": " : "",
             message);
  return TOOL_EXIT_APP;
}

int tool_call(const tool_options *options) {
  const char *name = options->operands[0], *method = options->operands[1];
  const char *method_name = NULL;
  enum format in = FORMAT_I64, out;
  uint64_t start_ns = tool_now_ns();
  shmrpc_client *client = NULL;
  bytes request = {NULL, 0, 0};
  unsigned char *answer = NULL;
  size_t capacity, answer_len = 0;
  uint32_t id = 0;
  int rc, exit_code;

  if (options->in != NULL && format_parse(options->in, 0, &in) != 0) {
    tool_error("call", "bad --in '%s' (i64, str, text, hex or file)",
               options->in);
    return TOOL_EXIT_USAGE;
  }
  out = in == FORMAT_I64 || in == FORMAT_STR || in == FORMAT_TEXT ? in
                                                                  : FORMAT_HEX;
  if (options->out != NULL && format_parse(options->out, 1, &out) != 0) {
    tool_error("call", "bad --out '%s' (i64, str, text, hex or raw)",
               options->out);
    return TOOL_EXIT_USAGE;
  }
  if (parse_method_id(method, &id) != 0) {
    if (method[0] >= '0' && method[0] <= '9') {
      tool_error("call", "bad METHOD '%s' (an id up to 4294967295, or a name)",
                 method);
      return TOOL_EXIT_USAGE;
    }
    method_name = method;
  }
  exit_code = make_request(in, options->operands + 2,
                           options->operand_count - 2, &request);
  if (exit_code != 0)
    goto done;
  exit_code = tool_open_client(options, "call", options->timeout_ms, &client);
  if (exit_code != 0)
    goto done;
  /* Every answer fits the slot, so a buffer of its capacity holds it. */
  capacity = shmrpc_client_capacity(client);
  answer = malloc(capacity > 0 ? capacity : 1);
  if (answer == NULL) {
    exit_code = tool_fail("call", "cannot call", name, SHMRPC_ENOMEM);
    goto done;
  }
  if (method_name != NULL) {
    exit_code = resolve_method(client, name, method_name,
                               budget_left(options->timeout_ms, start_ns),
                               answer, capacity, &id);
    if (exit_code != 0)
      goto done;
  }
  rc = shmrpc_call(client, id, request.data, request.len, answer, capacity,
                   &answer_len, budget_left(options->timeout_ms, start_ns));
  if (rc == SHMRPC_EAPP) {
    exit_code = report_app_error(options, client, id, method_name);
    goto done;
  }
  if (rc != 0) {
    char what[128];
    snprintf(what, sizeof(what), "method %s of", method);
    exit_code = tool_fail("call", what, name, rc);
    goto done;
  }
  if (!answer_fits(out, answer, answer_len)) {
    tool_error("call",
               "the answer (%lu bytes) is not %s; try --out hex",
               (unsigned long)answer_len,
               out == FORMAT_I64 ? "a sequence of int64" : "strings");
    exit_code = TOOL_EXIT_RUNTIME;
    goto done;
  }
  if (options->json) {
    tool_json json;
    json_head(&json, name, id, method_name);
    tool_json_key(&json, "request_bytes");
    tool_json_uint(&json, request.len);
    tool_json_key(&json, "answer_bytes");
    tool_json_uint(&json, answer_len);
    print_answer(out, answer, answer_len, &json);
    tool_json_object_end(&json);
    tool_json_finish(&json);
  } else {
    print_answer(out, answer, answer_len, NULL);
  }
  exit_code = TOOL_EXIT_OK;

done:
  free(answer);
  free(request.data);
  shmrpc_client_close(client);
  return exit_code;
}
