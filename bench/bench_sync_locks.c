/* asyncio.locks: the cost of an uncontended fut_lock_acquire +
 * fut_lock_release pair inside a task (the fast path: no future, no
 * switch), beside an uncontended semaphore pair and, for scale, a
 * contended hand-off between two tasks (a future and two switches per
 * acquisition). */
#include "bench_common.h"

#include <future.h>

static fut_loop_t *loop;
static fut_lock_t *lock;
static fut_sem_t *sem;

struct job {
  long n;
  uint64_t ns;
};

static int lock_pairs(void *arg) {
  struct job *j = arg;
  uint64_t t0 = bench_now();
  for (long i = 0; i < j->n; i++) {
    BENCH_CHECK(fut_lock_acquire(lock) == 0);
    fut_lock_release(lock);
  }
  j->ns = bench_now() - t0;
  return 0;
}

static int sem_pairs(void *arg) {
  struct job *j = arg;
  uint64_t t0 = bench_now();
  for (long i = 0; i < j->n; i++) {
    BENCH_CHECK(fut_sem_acquire(sem) == 0);
    fut_sem_release(sem);
  }
  j->ns = bench_now() - t0;
  return 0;
}

/* Two tasks take turns: each holds the lock across a yield, so the other
 * always waits. */
static int contender(void *arg) {
  long n = *(long *)arg;
  for (long i = 0; i < n; i++) {
    BENCH_CHECK(fut_lock_acquire(lock) == 0);
    fut_yield();
    fut_lock_release(lock);
  }
  return 0;
}

static uint64_t run_task(fut_task_fn fn, struct job *j) {
  fut_t *t;
  BENCH_CHECK(fut_create_task(loop, fn, j, NULL, &t) == 0);
  BENCH_CHECK(fut_loop_run_until_complete(loop, t) == 0);
  fut_unref(t);
  return j->ns;
}

static uint64_t bench_lock(long n) {
  struct job j = {n, 0};
  return run_task(lock_pairs, &j);
}

static uint64_t bench_sem(long n) {
  struct job j = {n, 0};
  return run_task(sem_pairs, &j);
}

static uint64_t bench_contended(long n) {
  long half = n / 2;
  fut_t *a, *b;
  uint64_t t0 = bench_now();
  BENCH_CHECK(fut_create_task(loop, contender, &half, NULL, &a) == 0);
  BENCH_CHECK(fut_create_task(loop, contender, &half, NULL, &b) == 0);
  BENCH_CHECK(fut_loop_run_until_complete(loop, b) == 0);
  BENCH_CHECK(fut_loop_run_until_complete(loop, a) == 0);
  uint64_t ns = bench_now() - t0;
  fut_unref(a);
  fut_unref(b);
  return ns;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : bench_quick() ? 1000000 : 10000000;
  BENCH_CHECK(n >= 2);
  BENCH_CHECK(fut_loop_new(&loop) == 0);
  BENCH_CHECK(fut_lock_new(&lock) == 0);
  BENCH_CHECK(fut_sem_new(1, &sem) == 0);
  bench_pair("lock acquire+release, uncontended", bench_lock, NULL, NULL, n);
  bench_pair("semaphore acquire+release, uncontended", bench_sem, NULL, NULL,
             n);
  bench_pair("lock hand-off between 2 tasks (per acquire)", bench_contended,
             NULL, NULL, n / 20);
  BENCH_CHECK(fut_lock_free(lock) == 0);
  BENCH_CHECK(fut_sem_free(sem) == 0);
  BENCH_CHECK(fut_loop_close(loop) == 0);
  BENCH_CHECK(fut_loop_free(loop) == 0);
  return 0;
}
