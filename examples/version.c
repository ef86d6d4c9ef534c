/* The version a program was compiled against (FUT_VERSION_*), the one it
 * runs with (fut_version), and what the error codes say. */
#include <errno.h>
#include <future.h>
#include <stdio.h>

int main(void) {
  printf("compiled against libfuture %d.%d.%d, running with %s\n",
         FUT_VERSION_MAJOR, FUT_VERSION_MINOR, FUT_VERSION_PATCH,
         fut_version_string());
  /* While the major is 0 the ABI is that of one minor version. */
  if ((fut_version() >> 8) != (FUT_VERSION_HEX >> 8)) {
    fprintf(stderr, "libfuture ABI mismatch\n");
    return 1;
  }
  const int codes[] = {0, -ECANCELED, -ETIMEDOUT, FUT_E_INVALID_STATE,
                       FUT_E_WORKER_DIED};
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
    printf("%6d %-22s %s\n", codes[i], fut_err_name(codes[i]),
           fut_strerror(codes[i]));

  fut_loop_t *loop;
  int err = fut_loop_new(NULL); /* out NULL: refused, nothing created */
  printf("fut_loop_new(NULL): %s (%s)\n", fut_err_name(err), fut_last_error());
  if (fut_loop_new(&loop) != 0)
    return 1;
  fut_loop_free(loop);
  return err == -EINVAL ? 0 : 1;
}
