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

static int bad_name(void) {
  return shmrpc__error_detail(SHMRPC_EINVAL,
                              "bad service name: a name is 1 to %d characters "
                              "of A-Z, a-z, 0-9, '.', '_', '-'",
                              SHMRPC_NAME_MAX);
}

int shmrpc_service_clean(const char *name, int global_namespace) {
  shmrpc__error_clear();
  if (shmrpc_name_check(name) != 0)
    return bad_name();
  return shmrpc__os_service_remove_stale(name, global_namespace);
}

/* One lane's state and lock, from the server area (and the live lock when
 * the platform can show it). */
static void query_lane(shmrpc__os_service *service, const void *server,
                       const void *calls, uint32_t lanes, uint32_t index,
                       int alive, uint64_t now, shmrpc_lane_info *out) {
  const shmrpc__answer_line *answer = shmrpc__area_answer(server, index);
  const shmrpc__lane_info *info = shmrpc__area_lane_info(server, lanes, index);
  shmrpc__os_lane_info lock;
  uint32_t taken = shmrpc__load32(&info->taken_seq);
  uint32_t answered = shmrpc__load32(&answer->response_seq);
  uint64_t since = shmrpc__load64(&info->lock_since_ns);
  out->calls = shmrpc__load64(&answer->calls);
  out->state = taken != answered ? 2 : 0;
  if (out->state == 0 && calls != NULL) {
    const shmrpc__request_line *request =
        shmrpc__area_request((void *)(uintptr_t)calls, index);
    if (shmrpc__load32(&request->slot_state) == SHMRPC__SLOT_POSTED &&
        shmrpc__load32(&request->call_seq) != taken)
      out->state = 1;
  }
  if (shmrpc__os_lane_query(service, index, &lock) == 0) {
    out->lock_held = lock.held;
    out->lock_owner_alive = lock.owner_alive;
  } else {
    out->lock_held = shmrpc__load64(&info->lock_seen) != 0;
    out->lock_owner_alive = shmrpc__load32(&info->lock_owner_alive) != 0;
  }
  if (out->lock_held && since != 0 && alive && now > since)
    out->lock_held_ms = (now - since) / 1000000u;
}

int shmrpc_service_query(const char *name, int global_namespace,
                         shmrpc_service_info *out) {
  shmrpc__os_service *service = NULL;
  shmrpc__os_inspect_info inspect;
  const shmrpc__header *header;
  const shmrpc__stats_line *stats;
  const void *server = NULL, *calls = NULL;
  size_t server_size = 0, calls_size = 0;
  uint32_t magic, lanes, capacity, i;
  uint64_t now;
  int rc;

  shmrpc__error_clear();
  if (out == NULL)
    return SHMRPC_EINVAL;
  if (shmrpc_name_check(name) != 0)
    return bad_name();
  memset(out, 0, sizeof(*out));
  rc = shmrpc__os_service_inspect(name, global_namespace, &service, &server,
                                  &server_size, &calls, &calls_size, &inspect);
  if (rc != 0)
    return rc;
  out->alive = inspect.alive;
  out->own = inspect.own;
  memcpy(out->owner, inspect.owner, sizeof(out->owner));
  out->owner[sizeof(out->owner) - 1] = '\0';
  if (!inspect.complete || server_size < SHMRPC__OFF_ANSWERS) {
    shmrpc__os_service_close(service);
    return 0; /* out->complete stays 0 */
  }
  header = shmrpc__area_header(server);
  magic = shmrpc__load32(&header->magic);
  lanes = shmrpc__load32_relaxed(&header->lanes);
  capacity = shmrpc__load32_relaxed(&header->capacity);
  if (magic == 0) {
    shmrpc__os_service_close(service);
    return 0; /* being made, or left half made */
  }
  if (magic != SHMRPC__MAGIC ||
      shmrpc__load32_relaxed(&header->version) != SHMRPC__PROTOCOL_VERSION ||
      lanes == 0 || lanes > SHMRPC_MAX_LANES || capacity == 0 ||
      capacity > SHMRPC_MAX_CAPACITY ||
      shmrpc__server_size(capacity, lanes) > server_size) {
    shmrpc__os_service_close(service);
    return shmrpc__error_detail(SHMRPC_EPROTO,
                                "'%s' is not a shmrpc service of protocol %u",
                                name, SHMRPC__PROTOCOL_VERSION);
  }
  out->complete = 1;
  out->server_pid = shmrpc__load32_relaxed(&header->server_pid);
  out->capacity = capacity;
  out->lanes = lanes;
  out->workers = shmrpc__load32_relaxed(&header->workers);
  out->generation = shmrpc__load64(&header->generation);
  out->queued = shmrpc__os_queue_length(service);
  now = shmrpc__os_now_ns();
  for (i = 0; i < lanes; i++) {
    const shmrpc__lane_info *info = shmrpc__area_lane_info(server, lanes, i);
    query_lane(service, server,
               shmrpc__calls_size(capacity, lanes) <= calls_size ? calls
                                                                 : NULL,
               lanes, i, inspect.alive, now, &out->lane[i]);
    if (out->lane[i].state > out->slot_state)
      out->slot_state = out->lane[i].state;
    out->stats.calls += out->lane[i].calls;
    out->stats.app_errors += shmrpc__load64(&info->app_errors);
    out->stats.bytes_in += shmrpc__load64(&info->bytes_in);
    out->stats.bytes_out += shmrpc__load64(&info->bytes_out);
  }
  stats = shmrpc__area_stats(server);
  out->stats.timeouts = shmrpc__load64(&stats->timeouts);
  out->stats.recoveries = shmrpc__load64(&stats->recoveries);
  out->stats.repairs = shmrpc__load64(&stats->repairs);
  if (calls != NULL && calls_size >= SHMRPC__LINE)
    shmrpc__add_reported(&out->stats,
                         shmrpc__area_calls_header((void *)(uintptr_t)calls));
  if (inspect.alive) {
    uint64_t start = shmrpc__load64(&header->start_ns);
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
