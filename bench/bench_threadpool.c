/* S7 / S7': the thread pool with completion on the loop.
 *   S7  200,000 no-op jobs submitted with fut_run_in_executor, each
 *       completed on the loop (a done callback counts them): ns per job;
 *   S7' one job in flight at a time: submit, run the loop until it is back
 *       (round trip, ns).
 * With libuv found at configure time, the same scenarios through
 * uv_queue_work run alternately with ours (so machine noise hits both) and
 * the line gives the ratio.  libuv runs 4 threads by default; our pool is
 * given 4 workers too (W=<n> in the environment changes ours).  Argument
 * "t": S7 once, for profilers ("t<k>": k times; with S7_UV=1 in the
 * environment, a libuv burst before each, the cold shape of bench/run's
 * rounds); a number instead: the scale factor of both sizes (bench/run
 * --scales).
 * Last, the idle cost: the process's CPU time over 500 ms in which the
 * pool and the loop have nothing to do, right after the bursts (workers
 * and the loop spin only briefly before sleeping: this must stay near 0). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_common.h"
#include "future.h"

#ifdef FUT_BENCH_HAVE_LIBUV
#include <uv.h>
#endif

#define NJOBS 200000
#define NROUND 20000
/* BENCH_QUICK: a tenth of each. */
/* Sizes after the scale factor (argv[1], bench/run --scales) and
 * BENCH_QUICK's tenth. */
static long njobs_run = NJOBS, nround_run = NROUND;
#define NJOBS_RUN njobs_run
#define NROUND_RUN nround_run
#define WORKERS 4

static fut_loop_t *loop;
static fut_executor_t *pool;
static long remaining;

static int job_noop(void *arg, fut_cfuture_t *cf) {
  (void)arg;
  (void)cf;
  return 0;
}

static void on_done(fut_t *f, void *arg) {
  (void)arg;
  fut_unref(f);
  if (--remaining == 0)
    fut_loop_stop(loop);
}

static uint64_t s7_burst(long n) {
  remaining = n;
  uint64_t t0 = bench_now();
  for (long i = 0; i < n; i++) {
    fut_t *f;
    BENCH_CHECK(fut_run_in_executor(loop, pool, job_noop, NULL, &f) == 0);
    BENCH_CHECK(fut_add_done_callback(f, on_done, NULL) == 0);
  }
  BENCH_CHECK(fut_loop_run_forever(loop) == 0);
  BENCH_CHECK(remaining == 0);
  return bench_now() - t0;
}

static uint64_t s7_round_trip(long n) {
  uint64_t t0 = bench_now();
  for (long i = 0; i < n; i++) {
    fut_t *f;
    BENCH_CHECK(fut_run_in_executor(loop, pool, job_noop, NULL, &f) == 0);
    BENCH_CHECK(fut_loop_run_until_complete(loop, f) == 0);
    fut_unref(f);
  }
  return bench_now() - t0;
}

static uint64_t cpu_ns(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000u +
         (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000u;
}

/* CPU ms the whole process uses per second while the pool is idle (a
 * burst just finished, so workers were busy a moment ago). */
static double idle_cpu_ms_per_s(void) {
  uint64_t c0 = cpu_ns(), t0 = bench_now();
  struct timespec ts = {0, 500000000};
  nanosleep(&ts, NULL);
  return (double)(cpu_ns() - c0) / 1e6 / ((double)(bench_now() - t0) / 1e9);
}

#ifdef FUT_BENCH_HAVE_LIBUV
static uv_loop_t *uvl;
static uv_work_t *reqs;
static long uv_remaining;

static void uv_work(uv_work_t *req) {
  (void)req;
}
static void uv_after(uv_work_t *req, int status) {
  (void)req;
  (void)status;
  uv_remaining--;
}

static uint64_t uv_burst(long n) {
  uv_remaining = n;
  uint64_t t0 = bench_now();
  for (long i = 0; i < n; i++)
    BENCH_CHECK(uv_queue_work(uvl, &reqs[i], uv_work, uv_after) == 0);
  uv_run(uvl, UV_RUN_DEFAULT);
  BENCH_CHECK(uv_remaining == 0);
  return bench_now() - t0;
}

static uint64_t uv_round_trip(long n) {
  uint64_t t0 = bench_now();
  for (long i = 0; i < n; i++) {
    BENCH_CHECK(uv_queue_work(uvl, &reqs[0], uv_work, uv_after) == 0);
    uv_run(uvl, UV_RUN_DEFAULT);
  }
  return bench_now() - t0;
}
#define BASE(name, fn) name, fn
#else
#define BASE(name, fn) NULL, NULL
#endif

int main(int argc, char **argv) {
  const char *w = getenv("W");
  /* A number first: the scale factor (1 = 200k jobs, 20k round trips). */
  double scale = argc > 1 && argv[1][0] != 't' ? atof(argv[1]) : 1.0;
  if (bench_quick())
    scale /= 10;
  if (scale <= 0)
    scale = 1.0;
  njobs_run = (long)(NJOBS * scale);
  nround_run = (long)(NROUND * scale);
  if (njobs_run < 100)
    njobs_run = 100;
  if (nround_run < 100)
    nround_run = 100;
  BENCH_CHECK(fut_loop_new(&loop) == 0);
  BENCH_CHECK(fut_thread_pool_new(w ? (size_t)atoi(w) : WORKERS, &pool) == 0);
#ifdef FUT_BENCH_HAVE_LIBUV
  uvl = uv_default_loop();
  reqs = calloc((size_t)njobs_run, sizeof *reqs);
  BENCH_CHECK(reqs != NULL);
  uv_round_trip(100); /* start libuv's threads */
#endif
  s7_round_trip(100); /* start ours */
  if (argc > 1 && argv[1][0] == 't') {
    /* "t5": five bursts (the first one touches the wrapper memory). */
    for (int i = argv[1][1] ? atoi(argv[1] + 1) : 1; i > 0; i--) {
#ifdef FUT_BENCH_HAVE_LIBUV
      /* S7_UV=1: a libuv burst before each of ours, as in bench/run's
       * alternating rounds (our wrappers no longer in cache, our workers
       * asleep). */
      if (getenv("S7_UV"))
        uv_burst(NJOBS_RUN);
#endif
      uint64_t c0 = cpu_ns(), wall = s7_burst(NJOBS_RUN);
      fprintf(stderr, "S7 %.1f ns/job wall, %.1f ns/job CPU (all threads)\n",
              (double)wall / NJOBS_RUN, (double)(cpu_ns() - c0) / NJOBS_RUN);
    }
  } else {
    printf("libfuture %s thread pool (%s workers), medians of %d runs\n",
           fut_version_string(), w ? w : "4", BENCH_RUNS);
    bench_pair("S7 200k no-op jobs, completion on the loop", s7_burst,
               BASE("libuv uv_queue_work", uv_burst), NJOBS_RUN);
    bench_pair("S7' one job in flight, round trip", s7_round_trip,
               BASE("libuv uv_queue_work", uv_round_trip), NROUND_RUN);
#ifndef FUT_BENCH_HAVE_LIBUV
    printf("(libuv not found at configure time: no comparison)\n");
#endif
    s7_burst(NJOBS_RUN);
    double idle = idle_cpu_ms_per_s();
    printf("%-44s %9.2f ms CPU per s (whole process, pool idle)\n",
           "S7 idle after a burst", idle);
    bench_emit_role("S7 idle after a burst", "libfuture", "fut", 0, idle,
                    "ms/s");
  }
  fut_executor_free(pool);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  BENCH_CHECK(st.live_futures == 0 && st.live_handles == 0);
  fut_loop_free(loop);
#ifdef FUT_BENCH_HAVE_LIBUV
  free(reqs);
  uv_loop_close(uvl);
#endif
  return 0;
}
