/* Service names: the rules, checked before any named object is touched, and
 * the calls that work on a name without serving or calling it. */
#include <string.h>

#include "core.h"

/* Letters, digits, '.', '_' and '-': safe in a POSIX shm name, a Win32
 * object name and a file name, and free of path separators. */
static int name_char_ok(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

int shmrpc_name_check(const char *name) {
  size_t len = 0;
  if (name == NULL)
    return SHMRPC_EINVAL;
  for (; name[len] != '\0'; len++) {
    if (len >= SHMRPC_NAME_MAX || !name_char_ok(name[len]))
      return SHMRPC_EINVAL;
  }
  return len == 0 ? SHMRPC_EINVAL : 0;
}

int shmrpc_service_clean(const char *name, int global_namespace) {
  if (shmrpc_name_check(name) != 0)
    return SHMRPC_EINVAL;
  return shmrpc__os_service_remove_stale(name, global_namespace);
}

int shmrpc_service_query(const char *name, int global_namespace,
                         shmrpc_service_info *out) {
  shmrpc__os_service *service = NULL;
  shmrpc__control *control;
  void *area = NULL;
  size_t area_size = 0;
  uint32_t magic;
  int alive = 0, rc;

  if (out == NULL || shmrpc_name_check(name) != 0)
    return SHMRPC_EINVAL;
  memset(out, 0, sizeof(*out));
  rc = shmrpc__os_service_inspect(name, global_namespace, &service, &area,
                                  &area_size, &alive);
  if (rc != 0)
    return rc;
  control = area;
  magic = area_size >= sizeof(shmrpc__control)
              ? shmrpc__load32(&control->header.magic)
              : 0;
  if (magic != SHMRPC__MAGIC ||
      shmrpc__load32_relaxed(&control->header.version) !=
          SHMRPC__PROTOCOL_VERSION) {
    shmrpc__os_service_close(service);
    return magic == 0 ? SHMRPC_ENOSERVER : SHMRPC_EPROTO;
  }
  out->alive = alive;
  out->server_pid = shmrpc__load32_relaxed(&control->header.server_pid);
  out->capacity = shmrpc__load32_relaxed(&control->header.capacity);
  out->generation = shmrpc__load64(&control->header.generation);
  {
    uint32_t taken = shmrpc__load32(&control->server.taken_seq);
    uint32_t answered = shmrpc__load32(&control->server.response_seq);
    uint32_t posted = shmrpc__load32(&control->client.call_seq);
    uint32_t state = shmrpc__load32(&control->client.slot_state);
    out->slot_state = taken != answered ? 2
                      : state == SHMRPC__SLOT_POSTED && posted != taken ? 1
                                                                        : 0;
  }
  out->stats.calls = shmrpc__load64(&control->stats.calls);
  out->stats.app_errors = shmrpc__load64(&control->stats.app_errors);
  out->stats.timeouts = shmrpc__load64(&control->stats.timeouts);
  out->stats.recoveries = shmrpc__load64(&control->stats.recoveries);
  out->stats.bytes_in = shmrpc__load64(&control->stats.bytes_in);
  out->stats.bytes_out = shmrpc__load64(&control->stats.bytes_out);
  out->stats.repairs = shmrpc__load64(&control->stats.reserved[0]);
  if (alive) {
    uint64_t start = shmrpc__load64(&control->header.start_ns);
    uint64_t now = shmrpc__os_now_ns();
    out->stats.uptime_ms = now > start ? (now - start) / 1000000u : 0;
  }
  shmrpc__os_service_close(service);
  return 0;
}

int shmrpc_service_list(int (*fn)(const char *name, void *ctx), void *ctx) {
  if (fn == NULL)
    return SHMRPC_EINVAL;
  return shmrpc__os_service_list(fn, ctx);
}
