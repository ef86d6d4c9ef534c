/* A loop, a timer and a future: the timer resolves the future, a done
 * callback prints the result, run_until_complete returns. */
#include <future.h>
#include <stdio.h>

static void resolve(void *arg) { fut_set_result_i64(arg, 42); }

static void print_result(fut_t *f, void *arg) {
  int64_t v;
  (void)arg;
  if (fut_result_i64(f, &v) == 0)
    printf("the future resolved to %lld\n", (long long)v);
}

int main(void) {
  fut_loop_t *loop;
  fut_t *f;
  int err = fut_loop_new(&loop);
  if (err) {
    fprintf(stderr, "fut_loop_new: %s\n", fut_strerror(err));
    return 1;
  }
  fut_new(loop, &f);
  fut_add_done_callback(f, print_result, NULL);
  fut_loop_call_later(loop, FUT_MS(10), resolve, f, NULL);
  err = fut_loop_run_until_complete(loop, f);
  fut_unref(f);
  fut_loop_free(loop);
  return err ? 1 : 0;
}
