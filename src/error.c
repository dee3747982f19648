/* Error names and messages, generated from SHMRPC_ERRNO_MAP, the per-thread
 * details behind them, and the version functions. */
#include <stdarg.h>
#include <stdio.h>

#include "core.h"

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

/* The last detailed error of this thread: its code and its message. */
static SHMRPC__THREAD_LOCAL struct {
  int code;
  char text[320];
} detail;

int shmrpc__error_detail(int code, const char *format, ...) {
  va_list args;
  va_start(args, format);
  vsnprintf(detail.text, sizeof(detail.text), format, args);
  va_end(args);
  detail.code = code;
  return code;
}

void shmrpc__error_clear(void) { detail.code = 0; }

const char *shmrpc_error_message(int err) {
  if (err != 0 && detail.code == err && detail.text[0] != '\0')
    return detail.text;
  return shmrpc_strerror(err);
}

unsigned shmrpc_version(void) { return SHMRPC_VERSION_HEX; }

const char *shmrpc_version_string(void) { return SHMRPC_VERSION_STRING; }
