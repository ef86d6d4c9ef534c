/* A program built against an installed libfuture. */
#include <future.h>
#include <stdio.h>

static void answer(void *arg) { fut_set_result_i64(arg, 42); }

int main(void) {
  fut_loop_t *loop;
  fut_t *f;
  int64_t v = 0;
  if (fut_loop_new(&loop) || fut_new(loop, &f))
    return 1;
  fut_loop_call_soon(loop, answer, f, NULL);
  int err = fut_loop_run_until_complete(loop, f);
  if (err == 0)
    err = fut_result_i64(f, &v);
  fut_unref(f);
  fut_loop_free(loop);
  printf("consumer ok %lld\n", (long long)v);
  return err ? 1 : 0;
}
