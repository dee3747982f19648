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

/* The last detailed error of this thread: its code and its message. The
 * code sits apart, in the fast thread-local block, where every call clears
 * it inline (core.h, shmrpc__error_clear): in a shared library the
 * message's block costs a call to __tls_get_addr, which after an idle
 * spell is a couple of microseconds of cold code and data. */
SHMRPC__THREAD_LOCAL_FAST int shmrpc__error_code;
static SHMRPC__THREAD_LOCAL char detail_text[320];

int shmrpc__error_detail(int code, const char *format, ...) {
  va_list args;
  va_start(args, format);
  vsnprintf(detail_text, sizeof(detail_text), format, args);
  va_end(args);
  shmrpc__error_code = code;
  return code;
}

const char *shmrpc_error_message(int err) {
  if (err != 0 && shmrpc__error_code == err && detail_text[0] != '\0')
    return detail_text;
  return shmrpc_strerror(err);
}

unsigned shmrpc_version(void) { return SHMRPC_VERSION_HEX; }

const char *shmrpc_version_string(void) { return SHMRPC_VERSION_STRING; }
