/* S9: bytes of heap per pending timer and per pending future with one
 * done callback, measured with mallinfo2 over 1,000,000 of each. */
#include <future.h>
#include <malloc.h>

#include "bench_common.h"

static void nop_cb(void *arg) { (void)arg; }
static void nop_done(fut_t *f, void *arg) {
  (void)f;
  (void)arg;
}

/* Small blocks plus mmap'd ones (large arrays). */
static size_t heap_used(void) {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 1000000;
  fut_loop_t *loop;
  BENCH_CHECK(fut_loop_new(&loop) == 0);

  size_t before = heap_used();
  for (long i = 0; i < n; i++)
    BENCH_CHECK(fut_loop_call_later(loop, FUT_SEC(1) + (uint64_t)i * 1000,
                                    nop_cb, NULL, NULL) == 0);
  size_t after = heap_used();
  printf("S9 bytes per pending timer (no handle)       %6.1f\n",
         (double)(after - before) / (double)n);

  fut_handle_t **hs = malloc(sizeof *hs * (size_t)n);
  BENCH_CHECK(hs);
  before = heap_used();
  for (long i = 0; i < n; i++)
    BENCH_CHECK(fut_loop_call_later(loop, FUT_SEC(1) + (uint64_t)i * 1000,
                                    nop_cb, NULL, &hs[i]) == 0);
  after = heap_used();
  printf("S9 bytes per pending timer (with handle)     %6.1f\n",
         (double)(after - before) / (double)n);
  for (long i = 0; i < n; i++) {
    fut_handle_cancel(hs[i]);
    fut_handle_unref(hs[i]);
  }

  fut_t **fs = malloc(sizeof *fs * (size_t)n);
  BENCH_CHECK(fs);
  before = heap_used();
  for (long i = 0; i < n; i++) {
    BENCH_CHECK(fut_new(loop, &fs[i]) == 0);
    BENCH_CHECK(fut_add_done_callback(fs[i], nop_done, NULL) == 0);
  }
  after = heap_used();
  printf("S9 bytes per pending future with 1 callback  %6.1f\n",
         (double)(after - before) / (double)n);
  for (long i = 0; i < n; i++)
    fut_unref(fs[i]);
  free(fs);
  free(hs);
  fut_loop_free(loop);
  return 0;
}
