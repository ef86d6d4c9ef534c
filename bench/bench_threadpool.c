/* Thread pool throughput and latency, with completion on the loop:
 *   1. 200,000 no-op jobs submitted with fut_run_in_executor, all awaited
 *      on the loop (jobs/s, ns/job);
 *   2. one job in flight at a time: submit, run the loop until it is back
 *      (round trip in microseconds).
 * With libuv found at configure time, the same two scenarios through
 * uv_queue_work (4 threads, libuv's default) for comparison; our pool also
 * uses 4 workers so the figures compare like for like (W=<n> in the
 * environment changes our pool's size; argument "t": throughput only). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "future.h"

#ifdef FUT_BENCH_HAVE_LIBUV
#include <uv.h>
#endif

#define NJOBS 200000
#define NROUND 20000
#define WORKERS 4

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int job_noop(void *arg, fut_cfuture_t *cf) {
  (void)arg;
  (void)cf;
  return 0;
}

static long remaining;
static int only_throughput; /* argv[1] == "throughput": profiling aid */

static void on_done(fut_t *f, void *arg) {
  fut_loop_t *loop = arg;
  fut_unref(f);
  if (--remaining == 0)
    fut_loop_stop(loop);
}

static void check(int err, const char *what) {
  if (err) {
    fprintf(stderr, "%s: %s (%s)\n", what, fut_strerror(err),
            fut_last_error());
    exit(1);
  }
}

static void bench_fut(void) {
  fut_loop_t *loop;
  fut_executor_t *ex;
  check(fut_loop_new(&loop), "fut_loop_new");
  check(fut_thread_pool_new(getenv("W") ? (size_t)atoi(getenv("W")) : WORKERS, &ex), "fut_thread_pool_new");
  /* Warm up: start the workers. */
  for (int i = 0; i < 100; i++) {
    fut_t *f;
    check(fut_run_in_executor(loop, ex, job_noop, NULL, &f), "submit");
    check(fut_loop_run_until_complete(loop, f), "run");
    fut_unref(f);
  }

  remaining = NJOBS;
  uint64_t t0 = now_ns();
  for (int i = 0; i < NJOBS; i++) {
    fut_t *f;
    check(fut_run_in_executor(loop, ex, job_noop, NULL, &f), "submit");
    check(fut_add_done_callback(f, on_done, loop), "add_done_callback");
  }
  check(fut_loop_run_forever(loop), "run_forever");
  uint64_t dt = now_ns() - t0;
  printf("libfuture thread pool (%d workers): %d no-op jobs, completion on "
         "the loop: %.0f jobs/s, %.0f ns/job\n",
         WORKERS, NJOBS, NJOBS / (dt / 1e9), (double)dt / NJOBS);

  if (only_throughput) {
    fut_executor_free(ex);
    fut_loop_free(loop);
    return;
  }
  t0 = now_ns();
  for (int i = 0; i < NROUND; i++) {
    fut_t *f;
    check(fut_run_in_executor(loop, ex, job_noop, NULL, &f), "submit");
    check(fut_loop_run_until_complete(loop, f), "run");
    fut_unref(f);
  }
  dt = now_ns() - t0;
  printf("libfuture thread pool: one job in flight, round trip %.2f us\n",
         (double)dt / NROUND / 1e3);
  fut_executor_free(ex);
  fut_loop_free(loop);
}

#ifdef FUT_BENCH_HAVE_LIBUV
static long uv_remaining;
static void uv_work(uv_work_t *req) { (void)req; }
static void uv_after(uv_work_t *req, int status) {
  (void)status;
  (void)req;
  uv_remaining--;
}

static void bench_uv(void) {
  uv_loop_t *loop = uv_default_loop();
  uv_work_t *reqs = calloc(NJOBS, sizeof *reqs);
  if (!reqs)
    exit(1);
  for (int i = 0; i < 100; i++) {
    uv_remaining = 1;
    uv_queue_work(loop, &reqs[0], uv_work, uv_after);
    uv_run(loop, UV_RUN_DEFAULT);
  }
  uv_remaining = NJOBS;
  uint64_t t0 = now_ns();
  for (int i = 0; i < NJOBS; i++)
    uv_queue_work(loop, &reqs[i], uv_work, uv_after);
  uv_run(loop, UV_RUN_DEFAULT);
  uint64_t dt = now_ns() - t0;
  printf("libuv uv_queue_work (4 threads): %d no-op jobs: %.0f jobs/s, "
         "%.0f ns/job\n",
         NJOBS, NJOBS / (dt / 1e9), (double)dt / NJOBS);
  t0 = now_ns();
  for (int i = 0; i < NROUND; i++) {
    uv_queue_work(loop, &reqs[0], uv_work, uv_after);
    uv_run(loop, UV_RUN_DEFAULT);
  }
  dt = now_ns() - t0;
  printf("libuv uv_queue_work: one job in flight, round trip %.2f us\n",
         (double)dt / NROUND / 1e3);
  free(reqs);
  uv_loop_close(loop);
}
#endif

int main(int argc, char **argv) {
  only_throughput = argc > 1 && argv[1][0] == 't';
  bench_fut();
  if (only_throughput)
    return 0;
#ifdef FUT_BENCH_HAVE_LIBUV
  bench_uv();
#else
  printf("libuv: not found at configure time, comparison skipped\n");
#endif
  return 0;
}
