/* Error names and messages, generated from SHMRPC_ERRNO_MAP, and the
 * version functions. */
#include "shmrpc.h"

const char *shmrpc_strerror(int err) {
  switch (err) {
  case SHMRPC_OK:
    return "success";
#define SHMRPC__STRERROR(name, value, message)                                 \
  case SHMRPC_##name:                                                          \
    return message;
    SHMRPC_ERRNO_MAP(SHMRPC__STRERROR)
#undef SHMRPC__STRERROR
  default:
    return "unknown error";
  }
}

const char *shmrpc_err_name(int err) {
  switch (err) {
  case SHMRPC_OK:
    return "SHMRPC_OK";
#define SHMRPC__ERR_NAME(name, value, message)                                 \
  case SHMRPC_##name:                                                          \
    return "SHMRPC_" #name;
    SHMRPC_ERRNO_MAP(SHMRPC__ERR_NAME)
#undef SHMRPC__ERR_NAME
  default:
    return "SHMRPC_UNKNOWN";
  }
}

unsigned shmrpc_version(void) { return SHMRPC_VERSION_HEX; }

const char *shmrpc_version_string(void) { return SHMRPC_VERSION_STRING; }
