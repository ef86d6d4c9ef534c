/* A thread pool without a loop (concurrent.futures): submit jobs, read
 * their results in order with a timeout, wait for several at once. */
#include <future.h>
#include <stdint.h>
#include <stdio.h>

static int cube(void *arg, fut_cfuture_t *cf) {
  int64_t n = (int64_t)(intptr_t)arg;
  return fut_cfuture_set_result_i64(cf, n * n * n);
}

int main(void) {
  fut_executor_t *pool;
  int err = fut_thread_pool_new(4, &pool);
  if (err) {
    fprintf(stderr, "fut_thread_pool_new: %s\n", fut_strerror(err));
    return 1;
  }
  void *args[5];
  fut_cfuture_t *cfs[5];
  for (intptr_t i = 0; i < 5; i++)
    args[i] = (void *)(i + 1);
  err = fut_executor_map(pool, cube, args, 5, cfs); /* all or nothing */
  if (!err) {
    bool done[5];
    int n = fut_cfuture_wait_many(cfs, 5, FUT_CFUTURE_ALL_COMPLETED,
                                  FUT_SEC(10), done);
    printf("%d of 5 done\n", n);
    for (int i = 0; i < 5; i++) {
      int64_t v = 0;
      int e = fut_cfuture_result_i64(cfs[i], FUT_SEC(1), &v);
      printf("cube(%d) = %lld%s\n", i + 1, (long long)v, e ? " (failed)" : "");
      if (e)
        err = e;
      fut_cfuture_unref(cfs[i]);
    }
  }
  fut_executor_shutdown(pool, true, false, FUT_FOREVER);
  fut_executor_free(pool);
  return err ? 1 : 0;
}
