/* The commands that read services' control blocks without calling them:
 * list, stat and clean. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmrpc.h"
#include "tool.h"

static const char *slot_state_name(int slot_state) {
  switch (slot_state) {
  case 0:
    return "free";
  case 1:
    return "posted";
  case 2:
    return "busy";
  case 3:
    return "answered";
  default:
    return "unknown";
  }
}

/* ---- Service names ----------------------------------------------------- */

/* The names shmrpc_service_list reported, sorted. */
typedef struct name_list {
  char **names;
  size_t count;
  size_t cap;
  int out_of_memory;
} name_list;

static int collect_name(const char *name, void *ctx) {
  name_list *list = ctx;
  size_t len = strlen(name);
  char *copy;
  if (list->count == list->cap) {
    size_t cap = list->cap == 0 ? 16 : list->cap * 2;
    char **grown = realloc(list->names, cap * sizeof(*grown));
    if (grown == NULL) {
      list->out_of_memory = 1;
      return 1;
    }
    list->names = grown;
    list->cap = cap;
  }
  copy = malloc(len + 1);
  if (copy == NULL) {
    list->out_of_memory = 1;
    return 1;
  }
  memcpy(copy, name, len + 1);
  list->names[list->count++] = copy;
  return 0;
}

static int compare_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void name_list_free(name_list *list) {
  size_t i;
  for (i = 0; i < list->count; i++)
    free(list->names[i]);
  free(list->names);
  memset(list, 0, sizeof(*list));
}

/* Fills list with every service name of the local namespace. Returns 0, or
 * a SHMRPC_E* code (SHMRPC_EOS where names cannot be enumerated). */
static int name_list_read(name_list *list) {
  int rc;
  memset(list, 0, sizeof(*list));
  rc = shmrpc_service_list(collect_name, list);
  if (rc == 0 && list->out_of_memory)
    rc = SHMRPC_ENOMEM;
  if (rc != 0) {
    name_list_free(list);
    return rc;
  }
  if (list->count > 1)
    qsort(list->names, list->count, sizeof(*list->names), compare_names);
  return 0;
}

typedef struct name_search {
  const char *wanted;
  int found;
} name_search;

static int match_name(const char *name, void *ctx) {
  name_search *search = ctx;
  if (strcmp(name, search->wanted) == 0) {
    search->found = 1;
    return 1;
  }
  return 0;
}

/* 1 if some object of `name` exists now, 0 if not, -1 if the platform
 * cannot tell. A query answers SHMRPC_ENOSERVER both for a name that is
 * gone and for one whose control block is not written yet; this tells the
 * two apart. */
static int name_exists(const char *name) {
  name_search search;
  search.wanted = name;
  search.found = 0;
  if (shmrpc_service_list(match_name, &search) != 0)
    return -1;
  return search.found;
}

static int check_name(const char *command, const char *name) {
  if (shmrpc_name_check(name) == 0)
    return 0;
  tool_error(command,
             "invalid service name '%s' (1 to %d characters of "
             "[A-Za-z0-9._-])",
             name, SHMRPC_NAME_MAX);
  return TOOL_EXIT_USAGE;
}

static int cannot_enumerate(const char *command, int rc, const char *hint) {
  if (rc == SHMRPC_EOS) {
    tool_error(command, "this platform cannot enumerate service names; %s",
               hint);
    return TOOL_EXIT_RUNTIME;
  }
  return tool_fail(command, "cannot list", NULL, rc);
}

/* ---- list -------------------------------------------------------------- */

/* What `list` says of one name. */
typedef struct list_entry {
  const char *name;
  int query_rc;             /* of shmrpc_service_query */
  shmrpc_service_info info; /* valid when query_rc is 0 */
  const char *state;        /* alive, stale, incomplete, no-access, foreign */
  int ours;                 /* shown without --all */
} list_entry;

/* Classifies a name. Returns 0, or 1 when the name vanished meanwhile. */
static int list_entry_read(list_entry *entry, const char *name,
                           int global_namespace) {
  memset(entry, 0, sizeof(*entry));
  entry->name = name;
  entry->query_rc = shmrpc_service_query(name, global_namespace, &entry->info);
  entry->ours = 1;
  switch (entry->query_rc) {
  case 0:
    entry->state = !entry->info.complete ? "incomplete"
                   : entry->info.alive   ? "alive"
                                         : "stale";
    /* Another user's service this user can read: shown with --all. */
    entry->ours = entry->info.own;
    if (!entry->info.own)
      entry->state = entry->info.alive ? "other-user" : "other-stale";
    break;
  case SHMRPC_ENOSERVER:
    /* Names with no control block yet: a server starting, or one that died
     * while starting; or gone since the listing. */
    if (name_exists(name) == 0)
      return 1;
    entry->state = "incomplete";
    break;
  case SHMRPC_EACCES:
    entry->state = "no-access";
    entry->ours = 0;
    break;
  default:
    /* SHMRPC_EPROTO: another user's names, another protocol version, or
     * not a shmrpc service at all. */
    entry->state = "foreign";
    entry->ours = 0;
    break;
  }
  return 0;
}

static void list_print_json(const list_entry *entries, size_t count, int all) {
  tool_json json;
  size_t i;
  tool_json_init(&json);
  tool_json_object_begin(&json);
  tool_json_key(&json, "services");
  tool_json_array_begin(&json);
  for (i = 0; i < count; i++) {
    const list_entry *entry = &entries[i];
    if (!entry->ours && !all)
      continue;
    tool_json_object_begin(&json);
    tool_json_key(&json, "name");
    tool_json_cstring(&json, entry->name);
    tool_json_key(&json, "state");
    tool_json_cstring(&json, entry->state);
    tool_json_key(&json, "alive");
    tool_json_bool(&json, entry->query_rc == 0 && entry->info.alive);
    if (entry->query_rc == 0 && entry->info.complete) {
      tool_json_key(&json, "owner");
      tool_json_cstring(&json, entry->info.owner);
      tool_json_key(&json, "server_pid");
      tool_json_uint(&json, entry->info.server_pid);
      tool_json_key(&json, "capacity");
      tool_json_uint(&json, entry->info.capacity);
      tool_json_key(&json, "calls");
      tool_json_uint(&json, entry->info.stats.calls);
    } else if (entry->query_rc != 0) {
      tool_json_key(&json, "error");
      tool_json_cstring(&json, shmrpc_err_name(entry->query_rc));
    }
    tool_json_object_end(&json);
  }
  tool_json_array_end(&json);
  tool_json_object_end(&json);
  tool_json_finish(&json);
}

static void list_print_text(const list_entry *entries, size_t count, int all) {
  size_t i, shown = 0, hidden = 0;
  int width = 4; /* "NAME" */
  for (i = 0; i < count; i++) {
    if (entries[i].ours || all) {
      int len = (int)strlen(entries[i].name);
      width = len > width ? len : width;
    }
  }
  for (i = 0; i < count; i++) {
    const list_entry *entry = &entries[i];
    if (!entry->ours && !all) {
      hidden++;
      continue;
    }
    if (shown++ == 0)
      printf("%-*s  %8s  %-10s  %10s  %12s\n", width, "NAME", "PID", "STATE",
             "CAPACITY", "CALLS");
    if (entry->query_rc == 0 && entry->info.complete)
      printf("%-*s  %8lu  %-10s  %10lu  %12llu\n", width, entry->name,
             (unsigned long)entry->info.server_pid, entry->state,
             (unsigned long)entry->info.capacity,
             (unsigned long long)entry->info.stats.calls);
    else
      printf("%-*s  %8s  %-10s  %10s  %12s\n", width, entry->name, "-",
             entry->state, "-", "-");
  }
  if (shown == 0)
    printf("no shmrpc services of this user\n");
  if (hidden > 0)
    printf("(%lu more name%s of other users or of incompatible versions; "
           "--all shows them)\n",
           (unsigned long)hidden, hidden == 1 ? "" : "s");
}

int tool_list(const tool_options *options) {
  name_list names;
  list_entry *entries;
  size_t i, count = 0;
  int rc = name_list_read(&names);
  if (rc != 0)
    return cannot_enumerate("list", rc, "use 'shmrpc stat NAME'");
  entries = calloc(names.count + 1, sizeof(*entries));
  if (entries == NULL) {
    name_list_free(&names);
    return tool_fail("list", "cannot list", NULL, SHMRPC_ENOMEM);
  }
  for (i = 0; i < names.count; i++) {
    if (list_entry_read(&entries[count], names.names[i],
                        options->global_namespace) == 0)
      count++;
  }
  if (options->json)
    list_print_json(entries, count, options->all);
  else
    list_print_text(entries, count, options->all);
  free(entries);
  name_list_free(&names);
  return TOOL_EXIT_OK;
}

/* ---- stat -------------------------------------------------------------- */

static const char *service_state(const shmrpc_service_info *info) {
  if (!info->complete)
    return "incomplete";
  return info->alive ? "alive" : "stale";
}

static void stat_print_json(const char *name, const shmrpc_service_info *info) {
  char generation[24];
  tool_json json;
  uint32_t i;
  snprintf(generation, sizeof(generation), "0x%016llx",
           (unsigned long long)info->generation);
  tool_json_init(&json);
  tool_json_object_begin(&json);
  tool_json_key(&json, "name");
  tool_json_cstring(&json, name);
  tool_json_key(&json, "state");
  tool_json_cstring(&json, service_state(info));
  tool_json_key(&json, "alive");
  tool_json_bool(&json, info->alive);
  tool_json_key(&json, "owner");
  tool_json_cstring(&json, info->owner);
  if (!info->complete) {
    tool_json_object_end(&json);
    tool_json_finish(&json);
    return;
  }
  tool_json_key(&json, "server_pid");
  tool_json_uint(&json, info->server_pid);
  /* A string: a 64-bit value does not survive a JSON reader's doubles. */
  tool_json_key(&json, "generation");
  tool_json_cstring(&json, generation);
  tool_json_key(&json, "capacity");
  tool_json_uint(&json, info->capacity);
  tool_json_key(&json, "workers");
  tool_json_uint(&json, info->workers);
  tool_json_key(&json, "queued");
  tool_json_uint(&json, info->queued);
  tool_json_key(&json, "slot_state");
  tool_json_cstring(&json, slot_state_name(info->slot_state));
  tool_json_key(&json, "uptime_ms");
  tool_json_uint(&json, info->stats.uptime_ms);
  tool_json_key(&json, "calls");
  tool_json_uint(&json, info->stats.calls);
  tool_json_key(&json, "app_errors");
  tool_json_uint(&json, info->stats.app_errors);
  tool_json_key(&json, "timeouts");
  tool_json_uint(&json, info->stats.timeouts);
  tool_json_key(&json, "recoveries");
  tool_json_uint(&json, info->stats.recoveries);
  tool_json_key(&json, "repairs");
  tool_json_uint(&json, info->stats.repairs);
  tool_json_key(&json, "bytes_in");
  tool_json_uint(&json, info->stats.bytes_in);
  tool_json_key(&json, "bytes_out");
  tool_json_uint(&json, info->stats.bytes_out);
  tool_json_key(&json, "lanes");
  tool_json_array_begin(&json);
  for (i = 0; i < info->lanes && i < SHMRPC_MAX_LANES; i++) {
    const shmrpc_lane_info *lane = &info->lane[i];
    tool_json_object_begin(&json);
    tool_json_key(&json, "state");
    tool_json_cstring(&json, slot_state_name(lane->state));
    tool_json_key(&json, "lock_held");
    tool_json_bool(&json, lane->lock_held);
    tool_json_key(&json, "lock_owner_alive");
    tool_json_bool(&json, lane->lock_owner_alive);
    tool_json_key(&json, "lock_held_ms");
    tool_json_uint(&json, lane->lock_held_ms);
    tool_json_key(&json, "calls");
    tool_json_uint(&json, lane->calls);
    tool_json_object_end(&json);
  }
  tool_json_array_end(&json);
  tool_json_object_end(&json);
  tool_json_finish(&json);
}

/* One line per lane: its slot, who holds it and for how long, its calls. */
static void stat_print_lanes(const shmrpc_service_info *info) {
  uint32_t i;
  for (i = 0; i < info->lanes && i < SHMRPC_MAX_LANES; i++) {
    const shmrpc_lane_info *lane = &info->lane[i];
    char held[96];
    if (!lane->lock_held)
      snprintf(held, sizeof(held), "free");
    else if (!lane->lock_owner_alive)
      snprintf(held, sizeof(held),
               "held by a dead caller (the server frees it)");
    else if (lane->lock_held_ms > 0)
      snprintf(held, sizeof(held), "held for %llu ms",
               (unsigned long long)lane->lock_held_ms);
    else
      snprintf(held, sizeof(held), "held");
    printf("  lane %-3lu  %-7s %-40s %llu calls\n", (unsigned long)i,
           slot_state_name(lane->state), held,
           (unsigned long long)lane->calls);
  }
}

static void stat_print_text(const char *name, const shmrpc_service_info *info) {
  char text[64];
  printf("%-12s%s\n", "service", name);
  if (!info->complete) {
    printf("%-12s%s\n", "state",
           "incomplete (a server starting, or one that died while starting; "
           "'shmrpc clean NAME' removes it if no server holds it)");
    printf("%-12s%s\n", "owner", info->owner);
    return;
  }
  printf("%-12s%s\n", "state",
         info->alive ? "alive"
                     : "stale (its server died; 'shmrpc clean' removes it)");
  printf("%-12s%s\n", "owner", info->owner);
  printf("%-12s%lu\n", "server pid", (unsigned long)info->server_pid);
  printf("%-12s0x%016llx\n", "generation",
         (unsigned long long)info->generation);
  tool_format_bytes(text, sizeof(text), info->capacity);
  printf("%-12s%s\n", "capacity", text);
  printf("%-12s%s\n", "slot", slot_state_name(info->slot_state));
  printf("%-12s%lu\n", "workers", (unsigned long)info->workers);
  printf("%-12s%lu waiting for a lane\n", "queue", (unsigned long)info->queued);
  if (info->alive) {
    tool_format_uptime(text, sizeof(text), info->stats.uptime_ms);
    printf("%-12s%s\n", "uptime", text);
  } else {
    printf("%-12s-\n", "uptime");
  }
  printf("%-12s%llu\n", "calls", (unsigned long long)info->stats.calls);
  printf("%-12s%llu\n", "app errors",
         (unsigned long long)info->stats.app_errors);
  printf("%-12s%llu\n", "timeouts", (unsigned long long)info->stats.timeouts);
  printf("%-12s%llu\n", "recoveries",
         (unsigned long long)info->stats.recoveries);
  printf("%-12s%llu\n", "repairs", (unsigned long long)info->stats.repairs);
  tool_format_bytes(text, sizeof(text), info->stats.bytes_in);
  printf("%-12s%s\n", "bytes in", text);
  tool_format_bytes(text, sizeof(text), info->stats.bytes_out);
  printf("%-12s%s\n", "bytes out", text);
  printf("%-12s%lu\n", "lanes", (unsigned long)info->lanes);
  stat_print_lanes(info);
}

int tool_stat(const tool_options *options) {
  const char *name = options->operands[0];
  shmrpc_service_info info;
  int rc = check_name("stat", name);
  if (rc != 0)
    return rc;
  rc = shmrpc_service_query(name, options->global_namespace, &info);
  if (rc == SHMRPC_ENOSERVER) {
    tool_error("stat", "no service named '%s' (SHMRPC_ENOSERVER)", name);
    return TOOL_EXIT_RUNTIME;
  }
  if (rc != 0)
    return tool_fail("stat", "cannot read service", name, rc);
  if (options->json)
    stat_print_json(name, &info);
  else
    stat_print_text(name, &info);
  return TOOL_EXIT_OK;
}

/* ---- clean ------------------------------------------------------------- */

enum clean_outcome {
  CLEAN_REMOVED, /* its names are gone */
  CLEAN_SKIPPED, /* left alone, with a reason worth telling */
  CLEAN_ABSENT,  /* named on the command line, but nothing exists */
  CLEAN_FAILED   /* an error; reported on stderr too */
};

typedef struct clean_result {
  const char *name;
  enum clean_outcome outcome;
  const char *reason;  /* for REMOVED and SKIPPED */
  uint32_t server_pid; /* for REMOVED of a service with a control block */
  int err;             /* for FAILED */
} clean_result;

#define REASON_DEAD "its server died"
#define REASON_INCOMPLETE_DEAD "left by a server that died while starting"
#define REASON_INCOMPATIBLE_DEAD "an incompatible service whose server died"
#define REASON_INCOMPLETE                                                      \
  "no control block yet (a server starting, or one that died while "           \
  "starting); 'shmrpc clean NAME' removes it if no server holds it"
#define REASON_TAKEN_OVER "a new server took it over"

/* Removes the names of `name`; `reason` says why they are stale. Records
 * the outcome in *result: a server that holds the name now (it started
 * since we looked) makes it SKIPPED. */
static void clean_one(clean_result *result, const char *name,
                      int global_namespace, const char *reason,
                      uint32_t server_pid) {
  int rc = shmrpc_service_clean(name, global_namespace);
  result->name = name;
  result->server_pid = server_pid;
  if (rc == 0) {
    result->outcome = CLEAN_REMOVED;
    result->reason = reason;
  } else if (rc == SHMRPC_EEXIST) {
    /* A server started on the name since we looked. */
    result->outcome = CLEAN_SKIPPED;
    result->reason = REASON_TAKEN_OVER;
  } else {
    result->outcome = CLEAN_FAILED;
    result->err = rc;
  }
}

/* Without names: every service of this user whose server is dead. Returns
 * 1 if the result is worth reporting, 0 if the name is left alone quietly
 * (live, or not this user's). */
static int clean_listed(clean_result *result, const char *name,
                        int global_namespace) {
  shmrpc_service_info info;
  int rc = shmrpc_service_query(name, global_namespace, &info);
  memset(result, 0, sizeof(*result));
  result->name = name;
  switch (rc) {
  case 0:
    if (info.alive || !info.own)
      return 0;
    if (!info.complete) {
      /* A server may be starting right now: clean takes the name's lock
       * first, so it removes only what a dead one left. */
      clean_one(result, name, global_namespace, REASON_INCOMPLETE_DEAD, 0);
      if (result->outcome == CLEAN_SKIPPED)
        result->reason = REASON_INCOMPLETE;
      return 1;
    }
    clean_one(result, name, global_namespace, REASON_DEAD, info.server_pid);
    return 1;
  case SHMRPC_EPROTO:
    /* Another protocol version of ours, or someone else's: the clean call
     * makes the same ownership checks, and removes only our dead ones. */
    clean_one(result, name, global_namespace, REASON_INCOMPATIBLE_DEAD, 0);
    return result->outcome == CLEAN_REMOVED;
  case SHMRPC_EACCES:
    return 0;
  case SHMRPC_ENOSERVER:
    /* Possibly a server starting right now: never remove it unasked. */
    if (name_exists(name) == 0)
      return 0;
    result->outcome = CLEAN_SKIPPED;
    result->reason = REASON_INCOMPLETE;
    return 1;
  default:
    result->outcome = CLEAN_FAILED;
    result->err = rc;
    return 1;
  }
}

/* With a name given: remove it unless a live server serves it. */
static void clean_named(clean_result *result, const char *name,
                        int global_namespace) {
  shmrpc_service_info info;
  int rc = shmrpc_service_query(name, global_namespace, &info);
  int exists = rc != SHMRPC_ENOSERVER || name_exists(name) == 1;
  memset(result, 0, sizeof(*result));
  result->name = name;
  if (rc == 0 && info.alive) {
    result->outcome = CLEAN_FAILED;
    result->err = SHMRPC_EEXIST;
    return;
  }
  clean_one(result, name, global_namespace,
            rc == 0                  ? REASON_DEAD
            : rc == SHMRPC_ENOSERVER ? REASON_INCOMPLETE_DEAD
                                     : REASON_INCOMPATIBLE_DEAD,
            rc == 0 ? info.server_pid : 0);
  if (result->outcome == CLEAN_SKIPPED) {
    /* Named explicitly, a live server is a failure to do what was asked. */
    result->outcome = CLEAN_FAILED;
    result->err = SHMRPC_EEXIST;
  } else if (result->outcome == CLEAN_REMOVED && !exists) {
    result->outcome = CLEAN_ABSENT;
    result->reason = NULL;
    result->server_pid = 0;
  }
}

static void clean_print_json(const clean_result *results, size_t count,
                             int named) {
  static const struct {
    const char *key;
    enum clean_outcome outcome;
  } groups[] = {{"removed", CLEAN_REMOVED},
                {"skipped", CLEAN_SKIPPED},
                {"absent", CLEAN_ABSENT},
                {"failed", CLEAN_FAILED}};
  tool_json json;
  size_t g, i;
  tool_json_init(&json);
  tool_json_object_begin(&json);
  for (g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
    if (groups[g].outcome == CLEAN_ABSENT && !named)
      continue;
    tool_json_key(&json, groups[g].key);
    tool_json_array_begin(&json);
    for (i = 0; i < count; i++) {
      const clean_result *result = &results[i];
      if (result->outcome != groups[g].outcome)
        continue;
      tool_json_object_begin(&json);
      tool_json_key(&json, "name");
      tool_json_cstring(&json, result->name);
      if (result->outcome == CLEAN_REMOVED && result->server_pid != 0) {
        tool_json_key(&json, "server_pid");
        tool_json_uint(&json, result->server_pid);
      }
      if (result->reason != NULL) {
        tool_json_key(&json, "reason");
        tool_json_cstring(&json, result->reason);
      }
      if (result->outcome == CLEAN_FAILED) {
        tool_json_key(&json, "error");
        tool_json_cstring(&json, shmrpc_err_name(result->err));
        tool_json_key(&json, "message");
        tool_json_cstring(&json, shmrpc_strerror(result->err));
      }
      tool_json_object_end(&json);
    }
    tool_json_array_end(&json);
  }
  tool_json_object_end(&json);
  tool_json_finish(&json);
}

static void clean_print_text(const clean_result *results, size_t count,
                             int named) {
  size_t i, removed = 0;
  for (i = 0; i < count; i++) {
    const clean_result *result = &results[i];
    switch (result->outcome) {
    case CLEAN_REMOVED:
      removed++;
      if (result->server_pid != 0)
        printf("removed %s (%s, pid %lu)\n", result->name, result->reason,
               (unsigned long)result->server_pid);
      else
        printf("removed %s (%s)\n", result->name, result->reason);
      break;
    case CLEAN_SKIPPED:
      printf("skipped %s: %s\n", result->name, result->reason);
      break;
    case CLEAN_ABSENT:
      printf("nothing to remove: no service named %s\n", result->name);
      break;
    case CLEAN_FAILED:
      break; /* on stderr already */
    }
  }
  if (!named) {
    if (removed == 0)
      printf("nothing to clean: no service of this user has a dead server\n");
    else
      printf("removed %lu stale service%s\n", (unsigned long)removed,
             removed == 1 ? "" : "s");
  }
}

int tool_clean(const tool_options *options) {
  name_list names;
  clean_result *results;
  size_t i, count = 0;
  int named = options->operand_count > 0, failed = 0, rc;

  memset(&names, 0, sizeof(names));
  if (named) {
    for (i = 0; i < (size_t)options->operand_count; i++) {
      rc = check_name("clean", options->operands[i]);
      if (rc != 0)
        return rc;
    }
  } else {
    rc = name_list_read(&names);
    if (rc != 0)
      return cannot_enumerate("clean", rc, "name them: shmrpc clean NAME...");
  }
  results = calloc((named ? (size_t)options->operand_count : names.count) + 1,
                   sizeof(*results));
  if (results == NULL) {
    name_list_free(&names);
    return tool_fail("clean", "cannot clean", NULL, SHMRPC_ENOMEM);
  }
  if (named) {
    for (i = 0; i < (size_t)options->operand_count; i++)
      clean_named(&results[count++], options->operands[i],
                  options->global_namespace);
  } else {
    for (i = 0; i < names.count; i++) {
      if (clean_listed(&results[count], names.names[i],
                       options->global_namespace))
        count++;
    }
  }
  for (i = 0; i < count; i++) {
    if (results[i].outcome != CLEAN_FAILED)
      continue;
    failed = 1;
    if (results[i].err == SHMRPC_EEXIST)
      tool_error("clean", "not removing '%s': a live server serves it",
                 results[i].name);
    else
      tool_fail("clean", "cannot remove", results[i].name, results[i].err);
  }
  if (options->json)
    clean_print_json(results, count, named);
  else
    clean_print_text(results, count, named);
  free(results);
  name_list_free(&names);
  return failed ? TOOL_EXIT_RUNTIME : TOOL_EXIT_OK;
}
