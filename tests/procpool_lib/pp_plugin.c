/* A module the process-pool module test loads with dlopen after the pool
 * started: the worker must dlopen the same path to run its function. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A bytes job: int64 x -> int64 -x. */
int pp_plugin_negate(const void *data, size_t len, void **out,
                     size_t *out_len) {
  int64_t x;
  if (len != sizeof x)
    return -EINVAL;
  memcpy(&x, data, sizeof x);
  int64_t *r = malloc(sizeof *r);
  if (!r)
    return -ENOMEM;
  *r = -x;
  *out = r;
  *out_len = sizeof *r;
  return 0;
}
