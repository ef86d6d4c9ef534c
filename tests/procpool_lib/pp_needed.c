/* A shared library the process-pool module test links (DT_NEEDED): its
 * functions travel as (library path, offset). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A bytes job: int64 x -> int64 3 * x. */
int pp_needed_triple(const void *data, size_t len, void **out,
                     size_t *out_len) {
  int64_t x;
  if (len != sizeof x)
    return -EINVAL;
  memcpy(&x, data, sizeof x);
  int64_t *r = malloc(sizeof *r);
  if (!r)
    return -ENOMEM;
  *r = 3 * x;
  *out = r;
  *out_len = sizeof *r;
  return 0;
}
