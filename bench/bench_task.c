/* Task benchmarks:
 *   1. task switch round trip: fut_yield (the task queues its step,
 *      switches to the loop, the loop switches back), ns per round trip;
 *   2. await round trip: await a pending future that a call_soon callback
 *      resolves (future + callback + dispatch + wakeup + two switches);
 *   3. 10,000 tasks x 100 awaits each (as 2, all tasks interleaved), ns
 *      per await, plus task creation and teardown. */
#include <errno.h>
#include <future.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench_common.h"

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static long yields;

static int yielder(void *arg) {
  (void)arg;
  for (long i = 0; i < yields; i++)
    fut_yield();
  return 0;
}

static void resolve(void *arg) {
  fut_set_result(arg, NULL, NULL);
}

static int yielder_once(void *arg) {
  (void)arg;
  return fut_sleep(0);
}

static long awaits;

static int awaiter(void *arg) {
  fut_loop_t *loop = arg;
  for (long i = 0; i < awaits; i++) {
    fut_t *f;
    if (fut_new(loop, &f))
      return -ENOMEM;
    fut_loop_call_soon(loop, resolve, f, NULL);
    int rc = fut_await(f, NULL);
    fut_unref(f);
    if (rc)
      return rc;
  }
  return 0;
}

static double run_one(fut_loop_t *loop, fut_task_fn fn, void *arg, long n) {
  fut_t *t;
  if (fut_create_task(loop, fn, arg, NULL, &t))
    abort();
  uint64_t t0 = now_ns();
  fut_loop_run_until_complete(loop, t);
  uint64_t t1 = now_ns();
  fut_unref(t);
  return (double)(t1 - t0) / (double)n;
}

int main(int argc, char **argv) {
  double scale = argc > 1 ? atof(argv[1]) : bench_quick() ? 0.1 : 1;
  fut_loop_t *loop;
  if (fut_loop_new(&loop))
    return 1;

  yields = (long)(2000000 * scale);
  run_one(loop, yielder, NULL, 1); /* warm up: stack cache, ring */
  double ns_yield = run_one(loop, yielder, NULL, yields);
  printf("task switch round trip (fut_yield)           %8.1f ns\n", ns_yield);
  bench_emit("S10 task switch round trip (fut_yield)", NULL, yields, ns_yield);

  awaits = (long)(1000000 * scale);
  double ns_await = run_one(loop, awaiter, loop, awaits);
  printf("await round trip (pending future, call_soon) %8.1f ns\n", ns_await);
  bench_emit("S10 await round trip (pending future, call_soon)", NULL, awaits,
             ns_await);

  enum { NTASKS = 10000, NAWAITS = 100 };
  awaits = NAWAITS;
  fut_t **ts = calloc(NTASKS, sizeof *ts);
  uint64_t t0 = now_ns();
  for (int i = 0; i < NTASKS; i++)
    if (fut_create_task(loop, awaiter, loop, NULL, &ts[i]))
      abort();
  uint64_t t1 = now_ns();
  fut_t *g;
  fut_gather(loop, ts, NTASKS, 0, &g);
  fut_loop_run_until_complete(loop, g);
  uint64_t t2 = now_ns();
  fut_unref(g);
  for (int i = 0; i < NTASKS; i++)
    fut_unref(ts[i]);
  free(ts);
  printf("10,000 tasks x 100 awaits                    %8.1f ns per await "
         "(%.1f ms in all; creating the tasks %.0f ns each)\n",
         (double)(t2 - t1) / (NTASKS * (double)NAWAITS),
         (double)(t2 - t0) / 1e6, (double)(t1 - t0) / NTASKS);
  bench_emit("S10 10,000 live tasks x 100 awaits (per await)", NULL,
             NTASKS * (long)NAWAITS,
             (double)(t2 - t1) / (NTASKS * (double)NAWAITS));

  /* A task's whole life (create, one fut_sleep(0), finish, unref) in
   * bursts of 1,000 alive at once: the shape of a server's reconnect
   * storm.  The stack cache must recycle the burst's stacks. */
  enum { BURST = 1000, ROUNDS = 50 };
  fut_t **bs = calloc(BURST, sizeof *bs);
  uint64_t b0 = now_ns();
  for (int r = 0; r < ROUNDS; r++) {
    for (int i = 0; i < BURST; i++)
      if (fut_create_task(loop, yielder_once, NULL, NULL, &bs[i]))
        abort();
    fut_gather(loop, bs, BURST, 0, &g);
    fut_loop_run_until_complete(loop, g);
    fut_unref(g);
    for (int i = 0; i < BURST; i++)
      fut_unref(bs[i]);
  }
  uint64_t b1 = now_ns();
  free(bs);
  printf("task lifecycle, bursts of 1,000 alive        %8.1f ns per task\n",
         (double)(b1 - b0) / (BURST * (double)ROUNDS));
  bench_emit("task lifecycle, bursts of 1,000 alive", NULL,
             BURST * (long)ROUNDS,
             (double)(b1 - b0) / (BURST * (double)ROUNDS));
  fut_loop_free(loop);
  return 0;
}
