/* The commands that call a server: ping (the built-in SHMRPC_METHOD_PING)
 * and methods (the built-in SHMRPC_METHOD_LIST). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmrpc.h"
#include "shmrpc_payload.h"
#include "tool.h"

int tool_open_client(const tool_options *options, const char *command,
                     int32_t timeout_ms, shmrpc_client **client) {
  const char *name = options->operands[0];
  shmrpc_client_options client_options;
  int rc;
  if (shmrpc_name_check(name) != 0) {
    tool_error(command,
               "invalid service name '%s' (1 to %d characters of "
               "[A-Za-z0-9._-])",
               name, SHMRPC_NAME_MAX);
    return TOOL_EXIT_USAGE;
  }
  shmrpc_client_options_init(&client_options);
  client_options.global_namespace = options->global_namespace;
  client_options.server_user = options->server_user;
  rc = shmrpc_client_open(client, name, &client_options, timeout_ms);
  if (rc != 0)
    return tool_fail(command, "cannot reach service", name, rc);
  return 0;
}

/* ---- ping -------------------------------------------------------------- */

static int compare_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y ? 1 : 0;
}

/* The nearest-rank percentile of count sorted values. */
static uint64_t percentile(const uint64_t *sorted, size_t count,
                           unsigned percent) {
  size_t rank = (count * percent + 99u) / 100u; /* ceil(count * p / 100) */
  return sorted[rank == 0 ? 0 : rank - 1];
}

typedef struct ping_summary {
  size_t count;
  size_t size;
  uint64_t min_ns, p50_ns, p99_ns, max_ns, mean_ns;
} ping_summary;

static void ping_print(const tool_options *options,
                       const ping_summary *summary) {
  const char *name = options->operands[0];
  if (options->json) {
    tool_json json;
    tool_json_init(&json);
    tool_json_object_begin(&json);
    tool_json_key(&json, "name");
    tool_json_cstring(&json, name);
    tool_json_key(&json, "count");
    tool_json_uint(&json, summary->count);
    tool_json_key(&json, "size");
    tool_json_uint(&json, summary->size);
    tool_json_key(&json, "min_ns");
    tool_json_uint(&json, summary->min_ns);
    tool_json_key(&json, "p50_ns");
    tool_json_uint(&json, summary->p50_ns);
    tool_json_key(&json, "p99_ns");
    tool_json_uint(&json, summary->p99_ns);
    tool_json_key(&json, "max_ns");
    tool_json_uint(&json, summary->max_ns);
    tool_json_key(&json, "mean_ns");
    tool_json_uint(&json, summary->mean_ns);
    tool_json_object_end(&json);
    tool_json_finish(&json);
  } else {
    static const char *const labels[] = {"min", "p50", "p99", "max", "mean"};
    const uint64_t values[] = {summary->min_ns, summary->p50_ns,
                               summary->p99_ns, summary->max_ns,
                               summary->mean_ns};
    char text[32];
    size_t i;
    printf("%lu round trip%s to %s, %lu byte%s each\n",
           (unsigned long)summary->count, summary->count == 1 ? "" : "s", name,
           (unsigned long)summary->size, summary->size == 1 ? "" : "s");
    for (i = 0; i < sizeof(labels) / sizeof(labels[0]); i++) {
      tool_format_duration(text, sizeof(text), values[i]);
      printf("  %-5s %s\n", labels[i], text);
    }
  }
}

/* Fills the payload of round trip `round`: its number in the first bytes,
 * so that an echo of another round trip's payload is noticed. */
static void ping_payload(unsigned char *payload, size_t size, uint64_t round) {
  size_t i;
  for (i = 0; i < size; i++)
    payload[i] = i < 8 ? (unsigned char)(round >> (8 * i))
                       : (unsigned char)(i * 31u + 7u);
}

int tool_ping(const tool_options *options) {
  const char *name = options->operands[0];
  size_t count = (size_t)options->count, size = options->size, i;
  unsigned char *request = NULL, *response = NULL;
  uint64_t *latencies = NULL, total = 0;
  shmrpc_client *client = NULL;
  ping_summary summary;
  int rc, exit_code = TOOL_EXIT_RUNTIME;

  rc = tool_open_client(options, "ping", options->timeout_ms, &client);
  if (rc != 0)
    return rc;
  if (size > shmrpc_client_capacity(client)) {
    tool_error("ping",
               "--size %lu exceeds the slot capacity of '%s' (%lu bytes)",
               (unsigned long)size, name,
               (unsigned long)shmrpc_client_capacity(client));
    shmrpc_client_close(client);
    return TOOL_EXIT_USAGE;
  }
  request = malloc(size + 1);
  response = malloc(size + 1);
  latencies = malloc(count * sizeof(*latencies));
  if (request == NULL || response == NULL || latencies == NULL) {
    tool_fail("ping", "cannot ping", name, SHMRPC_ENOMEM);
    goto done;
  }
  for (i = 0; i < count; i++) {
    size_t response_len = 0;
    uint64_t start, elapsed;
    ping_payload(request, size, i);
    start = tool_now_ns();
    rc = shmrpc_call(client, SHMRPC_METHOD_PING, request, size, response, size,
                     &response_len, options->timeout_ms);
    elapsed = tool_now_ns() - start;
    if (rc != 0) {
      char what[64];
      snprintf(what, sizeof(what), "round trip %lu of %lu to",
               (unsigned long)i + 1, (unsigned long)count);
      tool_fail("ping", what, name, rc);
      goto done;
    }
    if (response_len != size || memcmp(request, response, size) != 0) {
      tool_error("ping",
                 "round trip %lu of %lu to '%s': the answer (%lu bytes) is "
                 "not the request echoed",
                 (unsigned long)i + 1, (unsigned long)count, name,
                 (unsigned long)response_len);
      goto done;
    }
    latencies[i] = elapsed;
    total += elapsed;
  }
  qsort(latencies, count, sizeof(*latencies), compare_u64);
  summary.count = count;
  summary.size = size;
  summary.min_ns = latencies[0];
  summary.p50_ns = percentile(latencies, count, 50);
  summary.p99_ns = percentile(latencies, count, 99);
  summary.max_ns = latencies[count - 1];
  summary.mean_ns = total / count;
  ping_print(options, &summary);
  exit_code = TOOL_EXIT_OK;

done:
  free(latencies);
  free(response);
  free(request);
  shmrpc_client_close(client);
  return exit_code;
}

/* ---- methods ----------------------------------------------------------- */

static int compare_methods(const void *a, const void *b) {
  uint32_t x = ((const method_entry *)a)->id, y = ((const method_entry *)b)->id;
  return x < y ? -1 : x > y ? 1 : 0;
}

/* The answer of SHMRPC_METHOD_LIST: entries of a u32 id and a
 * u32-length-prefixed name, until the answer ends. */
int tool_methods_parse(const void *answer, size_t len, method_entry **out,
                       size_t *count) {
  shmrpc_reader reader;
  method_entry *entries;
  size_t n = 0;
  int rc;

  /* Each entry takes at least 8 bytes: that bounds the count. */
  entries = malloc((len / 8 + 1) * sizeof(*entries));
  if (entries == NULL)
    return SHMRPC_ENOMEM;
  shmrpc_reader_init(&reader, answer, len);
  while (reader.err == 0 && reader.pos < reader.len) {
    shmrpc_get_u32(&reader, &entries[n].id);
    shmrpc_get_str(&reader, &entries[n].name, &entries[n].name_len);
    n++;
  }
  rc = shmrpc_reader_done(&reader, SHMRPC_TRAILING_ERROR);
  if (rc != 0) {
    free(entries);
    return SHMRPC_EPROTO;
  }
  if (n > 1)
    qsort(entries, n, sizeof(*entries), compare_methods);
  *out = entries;
  *count = n;
  return 0;
}

static void methods_print(const tool_options *options,
                          const method_entry *entries, size_t count) {
  size_t i;
  if (options->json) {
    tool_json json;
    tool_json_init(&json);
    tool_json_object_begin(&json);
    tool_json_key(&json, "name");
    tool_json_cstring(&json, options->operands[0]);
    tool_json_key(&json, "methods");
    tool_json_array_begin(&json);
    for (i = 0; i < count; i++) {
      tool_json_object_begin(&json);
      tool_json_key(&json, "id");
      tool_json_uint(&json, entries[i].id);
      tool_json_key(&json, "name");
      tool_json_string(&json, entries[i].name, entries[i].name_len);
      tool_json_object_end(&json);
    }
    tool_json_array_end(&json);
    tool_json_object_end(&json);
    tool_json_finish(&json);
    return;
  }
  if (count == 0) {
    printf("%s registered no methods (it answers only the built-in ping and "
           "list)\n",
           options->operands[0]);
    return;
  }
  printf("%10s  %s\n", "ID", "NAME");
  for (i = 0; i < count; i++) {
    printf("%10lu  ", (unsigned long)entries[i].id);
    tool_print_text(entries[i].name, entries[i].name_len);
    putchar('\n');
  }
}

int tool_methods(const tool_options *options) {
  const char *name = options->operands[0];
  shmrpc_client *client = NULL;
  method_entry *entries = NULL;
  unsigned char *answer = NULL;
  size_t capacity, answer_len = 0, count = 0;
  int rc, exit_code = TOOL_EXIT_RUNTIME;

  rc = tool_open_client(options, "methods", options->timeout_ms, &client);
  if (rc != 0)
    return rc;
  /* The answer fits the slot, and so in a buffer of its capacity. */
  capacity = shmrpc_client_capacity(client);
  answer = malloc(capacity > 0 ? capacity : 1);
  if (answer == NULL) {
    tool_fail("methods", "cannot list the methods of", name, SHMRPC_ENOMEM);
    goto done;
  }
  rc = shmrpc_call(client, SHMRPC_METHOD_LIST, NULL, 0, answer, capacity,
                   &answer_len, options->timeout_ms);
  if (rc == SHMRPC_ENOMETHOD) {
    tool_error("methods",
               "'%s' does not answer the built-in method list (a server "
               "older than this tool?)",
               name);
    goto done;
  }
  if (rc == 0)
    rc = tool_methods_parse(answer, answer_len, &entries, &count);
  if (rc != 0) {
    tool_fail("methods", "cannot list the methods of", name, rc);
    goto done;
  }
  methods_print(options, entries, count);
  exit_code = TOOL_EXIT_OK;

done:
  free(entries);
  free(answer);
  shmrpc_client_close(client);
  return exit_code;
}
