/* S9: bytes per pending timer and per pending future with one done
 * callback, over 1,000,000 of each: the growth of the resident set (the
 * library maps its object chunks itself, so mallinfo would miss them). */
#include <future.h>

#include "bench_common.h"

#include <string.h>

static void nop_cb(void *arg) {
  (void)arg;
}
static void nop_done(fut_t *f, void *arg) {
  (void)f;
  (void)arg;
}

/* Resident memory in bytes, from /proc/self/statm. */
static size_t heap_used(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size = 0, resident = 0;
  BENCH_CHECK(f && fscanf(f, "%lu %lu", &size, &resident) == 2);
  fclose(f);
  return resident * 4096;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : bench_quick() ? 100000 : 1000000;
  fut_loop_t *loop;
  BENCH_CHECK(fut_loop_new(&loop) == 0);

  size_t before = heap_used();
  for (long i = 0; i < n; i++)
    BENCH_CHECK(fut_loop_call_later(loop, FUT_SEC(1) + (uint64_t)i * 1000,
                                    nop_cb, NULL, NULL) == 0);
  size_t after = heap_used();
  printf("S9 bytes per pending timer (no handle)       %6.1f\n",
         (double)(after - before) / (double)n);
  bench_emit_role("S9 bytes per pending timer (no handle)", "libfuture", "fut",
                  n, (double)(after - before) / (double)n, "bytes");

  /* The arrays of our own references are touched before measuring. */
  fut_handle_t **hs = calloc((size_t)n, sizeof *hs);
  BENCH_CHECK(hs);
  memset(hs, 1, sizeof *hs * (size_t)n);
  before = heap_used();
  for (long i = 0; i < n; i++)
    BENCH_CHECK(fut_loop_call_later(loop, FUT_SEC(1) + (uint64_t)i * 1000,
                                    nop_cb, NULL, &hs[i]) == 0);
  after = heap_used();
  printf("S9 bytes per pending timer (with handle)     %6.1f\n",
         (double)(after - before) / (double)n);
  bench_emit_role("S9 bytes per pending timer (with handle)", "libfuture",
                  "fut", n, (double)(after - before) / (double)n, "bytes");
  for (long i = 0; i < n; i++) {
    fut_handle_cancel(hs[i]);
    fut_handle_unref(hs[i]);
  }

  fut_t **fs = calloc((size_t)n, sizeof *fs);
  BENCH_CHECK(fs);
  memset(fs, 1, sizeof *fs * (size_t)n);
  before = heap_used();
  for (long i = 0; i < n; i++) {
    BENCH_CHECK(fut_new(loop, &fs[i]) == 0);
    BENCH_CHECK(fut_add_done_callback(fs[i], nop_done, NULL) == 0);
  }
  after = heap_used();
  printf("S9 bytes per pending future with 1 callback  %6.1f\n",
         (double)(after - before) / (double)n);
  bench_emit_role("S9 bytes per pending future with 1 callback", "libfuture",
                  "fut", n, (double)(after - before) / (double)n, "bytes");
  for (long i = 0; i < n; i++)
    fut_unref(fs[i]);
  free(fs);
  free(hs);
  fut_loop_free(loop);
  return 0;
}
