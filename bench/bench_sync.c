/* Queue benchmarks (future/queue.h): items passed through a queue from a
 * producer task to a consumer task, ns per item:
 *   1. maxsize 1: every item is a wait on each side (put waits for the
 *      get, get for the put): two future wakeups and two task switches;
 *   2. maxsize 64: the producer fills the queue, the consumer drains it;
 *   3. unbounded: the same with no bound (the producer yields every 64
 *      items so that both run interleaved);
 *   4. put_nowait + get_nowait on a warm queue, no task (the storage).
 * When python3 is on the PATH, the bench runs the same scenarios 1-3 with
 * asyncio.Queue in the same run and prints the ratio (target: libfuture
 * at least 20x faster). */
#include <errno.h>
#include <future.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

struct pc {
  fut_queue_t *q;
  long n;
  int yield_every; /* producer: 0 never */
  long sum;
};

static int producer(void *arg) {
  struct pc *p = arg;
  for (long i = 0; i < p->n; i++) {
    if (fut_queue_put(p->q, (void *)(intptr_t)i))
      return -EPROTO;
    if (p->yield_every && i % p->yield_every == p->yield_every - 1)
      fut_yield();
  }
  return 0;
}

static int consumer(void *arg) {
  struct pc *p = arg;
  for (long i = 0; i < p->n; i++) {
    void *item;
    if (fut_queue_get(p->q, &item))
      return -EPROTO;
    p->sum += (intptr_t)item;
  }
  return 0;
}

static size_t g_maxsize;
static int g_yield_every;

/* One run: n items from a producer task to a consumer task; elapsed ns. */
static uint64_t run_pc(long n) {
  fut_loop_t *loop;
  BENCH_CHECK(fut_loop_new(&loop) == 0);
  fut_queue_t *q;
  BENCH_CHECK(fut_queue_new(FUT_QUEUE_FIFO, g_maxsize, NULL, &q) == 0);
  struct pc p = {q, n, g_yield_every, 0};
  fut_t *tp, *tc;
  BENCH_CHECK(fut_create_task(loop, producer, &p, NULL, &tp) == 0);
  BENCH_CHECK(fut_create_task(loop, consumer, &p, NULL, &tc) == 0);
  uint64_t t0 = bench_now();
  BENCH_CHECK(fut_loop_run_until_complete(loop, tc) == 0);
  BENCH_CHECK(fut_loop_run_until_complete(loop, tp) == 0);
  uint64_t t1 = bench_now();
  BENCH_CHECK(p.sum == n * (n - 1) / 2);
  fut_unref(tp);
  fut_unref(tc);
  BENCH_CHECK(fut_queue_free(q) == 0);
  BENCH_CHECK(fut_loop_free(loop) == 0);
  return t1 - t0;
}

/* An uncontended lock: n acquire + release pairs inside one task. */
static long lock_n;
static int lock_task(void *arg) {
  fut_lock_t *l = arg;
  for (long i = 0; i < lock_n; i++) {
    BENCH_CHECK(fut_lock_acquire(l) == 0);
    BENCH_CHECK(fut_lock_release(l) == 0);
  }
  return 0;
}

static uint64_t run_lock(long n) {
  fut_loop_t *loop;
  BENCH_CHECK(fut_loop_new(&loop) == 0);
  fut_lock_t *l;
  BENCH_CHECK(fut_lock_new(&l) == 0);
  lock_n = n;
  fut_t *t;
  BENCH_CHECK(fut_create_task(loop, lock_task, l, NULL, &t) == 0);
  uint64_t t0 = bench_now();
  BENCH_CHECK(fut_loop_run_until_complete(loop, t) == 0);
  uint64_t t1 = bench_now();
  fut_unref(t);
  BENCH_CHECK(fut_lock_free(l) == 0);
  BENCH_CHECK(fut_loop_free(loop) == 0);
  return t1 - t0;
}

/* put_nowait then get_nowait, 64 items at a time, on a warm queue. */
static uint64_t run_nowait(long n) {
  fut_queue_t *q;
  BENCH_CHECK(fut_queue_new(FUT_QUEUE_FIFO, 0, NULL, &q) == 0);
  void *item;
  long sum = 0;
  uint64_t t0 = bench_now();
  for (long i = 0; i < n; i += 64) {
    for (long j = 0; j < 64; j++)
      fut_queue_put_nowait(q, (void *)(intptr_t)j);
    for (long j = 0; j < 64; j++) {
      fut_queue_get_nowait(q, &item);
      sum += (intptr_t)item;
    }
  }
  uint64_t t1 = bench_now();
  BENCH_CHECK(sum == (n / 64) * (64 * 63 / 2));
  BENCH_CHECK(fut_queue_free(q) == 0);
  return t1 - t0;
}

/* The same three producer/consumer scenarios with asyncio.Queue; the script
 * prints "<maxsize> <median ns per item>" per scenario. */
static const char *py_script =
    "import asyncio,time,statistics\n"
    "async def prod(q,n,ye):\n"
    "  for i in range(n):\n"
    "    await q.put(i)\n"
    "    if ye and i%ye==ye-1: await asyncio.sleep(0)\n"
    "async def cons(q,n):\n"
    "  s=0\n"
    "  for i in range(n): s+=await q.get()\n"
    "  return s\n"
    "async def one(m,n,ye):\n"
    "  q=asyncio.Queue(m)\n"
    "  t0=time.perf_counter_ns()\n"
    "  p=asyncio.create_task(prod(q,n,ye)); s=await cons(q,n); await p\n"
    "  t1=time.perf_counter_ns()\n"
    "  assert s==n*(n-1)//2\n"
    "  return (t1-t0)/n\n"
    "for m,ye in ((1,0),(64,0),(0,64)):\n"
    "  v=[asyncio.run(one(m,100000,ye)) for _ in range(3)]\n"
    "  print(m,statistics.median(v),flush=True)\n"
    "async def lk(n):\n"
    "  l=asyncio.Lock()\n"
    "  t0=time.perf_counter_ns()\n"
    "  for i in range(n):\n"
    "    await l.acquire(); l.release()\n"
    "  return (time.perf_counter_ns()-t0)/n\n"
    "v=[asyncio.run(lk(1000000)) for _ in range(3)]\n"
    "print(-1,statistics.median(v),flush=True)\n";

/* Runs the asyncio script; fills py[0..3] (ns per item, then per lock
 * acquire + release); false if python3 is missing or failed. */
static bool run_python(double py[4]) {
  FILE *f = fopen("/tmp/fut_bench_sync_queue.py", "w");
  if (!f)
    return false;
  fputs(py_script, f);
  fclose(f);
  FILE *p = popen("python3 /tmp/fut_bench_sync_queue.py 2>/dev/null", "r");
  if (!p)
    return false;
  int got = 0;
  long m;
  double ns;
  while (got < 4 && fscanf(p, "%ld %lf", &m, &ns) == 2)
    py[got++] = ns;
  int st = pclose(p);
  remove("/tmp/fut_bench_sync_queue.py");
  return got == 4 && st == 0;
}

int main(int argc, char **argv) {
  /* An optional scale (as bench_loop's): 0.01 for a quick run under
   * valgrind --tool=callgrind; BENCH_QUICK is a tenth. */
  double scale = argc > 1 ? atof(argv[1]) : bench_quick() ? 0.1 : 1.0;
  long n = (long)(1000000 * scale);
  if (n < 1000)
    n = 1000;
  int runs = bench_runs();
  static const struct {
    const char *name;
    size_t maxsize;
    int yield_every;
  } sc[3] = {
      {"queue put/get, 2 tasks, maxsize 1", 1, 0},
      {"queue put/get, 2 tasks, maxsize 64", 64, 0},
      {"queue put/get, 2 tasks, unbounded", 0, 64},
  };
  double fut[3];
  for (int i = 0; i < 3; i++) {
    g_maxsize = sc[i].maxsize;
    g_yield_every = sc[i].yield_every;
    fut[i] = bench_ns_per_op(run_pc, n, runs);
  }
  double lock_ns = bench_ns_per_op(run_lock, n * 10, runs);
  double py[4];
  /* asyncio takes tens of seconds: not in the quick mode. */
  bool have_py = !bench_quick() && run_python(py);
  for (int i = 0; i < 3; i++) {
    bench_emit(sc[i].name, NULL, n, fut[i]);
    if (have_py)
      bench_emit(sc[i].name, "asyncio (python3)", 100000, py[i]);
  }
  bench_emit("lock acquire + release, uncontended", NULL, n * 10, lock_ns);
  if (have_py)
    bench_emit("lock acquire + release, uncontended", "asyncio (python3)",
               1000000, py[3]);
  for (int i = 0; i < 3; i++) {
    if (have_py)
      printf("%-44s %9.2f ns/item   asyncio %9.2f ns/item   %.1fx faster\n",
             sc[i].name, fut[i], py[i], py[i] / fut[i]);
    else
      bench_report(sc[i].name, fut[i], NULL, 0);
  }
  if (have_py)
    printf("%-44s %9.2f ns/op     asyncio %9.2f ns/op     %.1fx faster\n",
           "lock acquire + release, uncontended", lock_ns, py[3],
           py[3] / lock_ns);
  else
    bench_report("lock acquire + release, uncontended", lock_ns, NULL, 0);
  if (!have_py)
    printf("(python3 not found or failed: no asyncio comparison)\n");
  double nowait = bench_ns_per_op(run_nowait, n * 10, runs);
  bench_report("queue put_nowait + get_nowait, no task", nowait, NULL, 0);
  bench_emit("queue put_nowait + get_nowait, no task", NULL, n * 10, nowait);
  return 0;
}
