/* Service-name rules, checked before any named object is touched. */
#include "os.h"
#include "shmrpc.h"

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
