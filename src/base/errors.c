/* The error table: fut_strerror, fut_err_name, and the per-thread detail of
 * the last failure. */
#include "base/internal.h"

#include <limits.h>

#include <string.h>

static _Thread_local char last_error[256];

int fut__error(int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
  return err;
}

const char *fut_last_error(void) {
  return last_error;
}

const char *fut_strerror(int err) {
  switch (err) {
  case 0:
    return "success";
#define XX(name, value, msg)                                                   \
  case value:                                                                  \
    return msg;
    FUT_ERRNO_MAP(XX)
#undef XX
  default:
    break;
  }
  if (err < 0 && err > -4096) {
    /* strerrordesc_np is static and thread-safe (glibc >= 2.32). */
    const char *s = strerrordesc_np(-err);
    if (s)
      return s;
  }
  return "unknown error";
}

const char *fut_err_name(int err) {
  switch (err) {
  case 0:
    return "0";
#define XX(name, value, msg)                                                   \
  case value:                                                                  \
    return "FUT_E_" #name;
    FUT_ERRNO_MAP(XX)
#undef XX
  default:
    break;
  }
  if (err < 0 && err > -4096) {
    const char *s = strerrorname_np(-err);
    if (s)
      return s;
  }
  return "unknown";
}

unsigned fut_version(void) {
  return FUT_VERSION_HEX;
}

#define FUT__STR2(x) #x
#define FUT__STR(x) FUT__STR2(x)
const char *fut_version_string(void) {
  return FUT__STR(FUT_VERSION_MAJOR) "." FUT__STR(
      FUT_VERSION_MINOR) "." FUT__STR(FUT_VERSION_PATCH);
}

int fut__check_failure_code(int code, const char *what) {
  if (code < 0 && code != INT_MIN)
    return 0;
  return fut__error(-EINVAL,
                    "%s: the code must be negative (and not INT_MIN), "
                    "got %d",
                    what, code);
}
