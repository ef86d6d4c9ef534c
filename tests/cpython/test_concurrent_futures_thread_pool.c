/* CPython's Lib/test/test_concurrent_futures/test_thread_pool.py (class
 * ThreadPoolExecutorTest, its own methods; the ExecutorTest mixin it also
 * runs is ported in test_concurrent_futures_executor.c) as libfuture's
 * behavioural spec: one cmocka test per CPython test method, named after
 * it.  CPython's executor._threads is read as the process's thread count
 * (/proc/self/task) against a baseline taken before the pool starts; a
 * threading.Semaphore or Event is a gate (exec_helpers.h). */
#include "cf_util.h"
#include "exec_helpers.h"

#include <sched.h>
#include <stdlib.h>

#include "future/process_pool.h"

static void executor_done(fut_executor_t *ex) {
  assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_FOREVER), 0);
  fut_executor_free(ex);
}

/* lock.acquire() on a semaphore: the gate */
static int acquire_lock(void *arg, fut_cfuture_t *cf) {
  (void)cf;
  gate_pass(arg);
  return 0;
}

/* ThreadPoolExecutorTest.test_map_submits_without_iteration: map submits
 * every job at once; the results are never read. */
static int record_finished(void *arg, fut_cfuture_t *cf) {
  (void)cf;
  atomic_fetch_add((atomic_int *)arg, 1);
  return 0;
}

static void test_map_submits_without_iteration(void **state) {
  (void)state;
  fut_executor_t *ex = NULL;
  assert_int_equal(fut_thread_pool_new(5, &ex), 0);
  atomic_int finished[10];
  void *args[10];
  for (int i = 0; i < 10; i++) {
    atomic_init(&finished[i], 0);
    args[i] = &finished[i];
  }
  fut_cfuture_t *fs[10];
  assert_int_equal(fut_executor_map(ex, record_finished, args, 10, fs), 0);
  for (int i = 0; i < 10; i++)
    fut_cfuture_unref(fs[i]);
  assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_FOREVER), 0);
  for (int i = 0; i < 10; i++) /* assertCountEqual(finished, range(10)) */
    assert_int_equal(atomic_load(&finished[i]), 1);
  fut_executor_free(ex);
}

/* ThreadPoolExecutorTest.test_default_workers: min(32, cpus + 4), where
 * cpus is os.process_cpu_count(), the CPUs this process may run on. */
static void test_default_workers(void **state) {
  (void)state;
  cpu_set_t set;
  assert_int_equal(sched_getaffinity(0, sizeof set, &set), 0);
  size_t cpus = (size_t)CPU_COUNT(&set);
  size_t expected = cpus + 4 < 32 ? cpus + 4 : 32;
  assert_int_equal(fut_thread_pool_default_workers(), expected);
  /* executor = self.executor_type(): max_workers 0 is that default.  Its
   * workers start on demand: expected blocked jobs start expected
   * threads, one more does not start another. */
  fut_executor_t *ex = NULL;
  assert_int_equal(fut_thread_pool_new(0, &ex), 0);
  warm_up_threads();
  int base = count_threads();
  struct gate sem;
  gate_init(&sem);
  fut_cfuture_t *fs[33];
  for (size_t i = 0; i <= expected; i++)
    assert_int_equal(fut_executor_submit(ex, acquire_lock, &sem, &fs[i]), 0);
  gate_wait_arrived(&sem, (int)expected);
  assert_int_equal(count_threads() - base, (int)expected);
  gate_open(&sem);
  for (size_t i = 0; i <= expected; i++) {
    assert_int_equal(fut_cfuture_result(fs[i], FUT_FOREVER, NULL), 0);
    fut_cfuture_unref(fs[i]);
  }
  executor_done(ex);
  gate_destroy(&sem);
}

/* ThreadPoolExecutorTest.test_saturation */
static void test_saturation(void **state) {
  (void)state;
  warm_up_threads();
  int base = count_threads();
  fut_executor_t *ex = NULL;
  assert_int_equal(fut_thread_pool_new(4, &ex), 0);
  struct gate sem;
  gate_init(&sem);
  enum { N = 15 * 4 };
  fut_cfuture_t *fs[N];
  for (int i = 0; i < N; i++)
    assert_int_equal(fut_executor_submit(ex, acquire_lock, &sem, &fs[i]), 0);
  /* len(executor._threads) == executor._max_workers */
  assert_int_equal(count_threads() - base, 4);
  gate_wait_arrived(&sem, 4);
  assert_int_equal(count_threads() - base, 4);
  gate_open(&sem);
  for (int i = 0; i < N; i++)
    fut_cfuture_unref(fs[i]);
  executor_done(ex);
  assert_int_equal(gate_count(&sem, &sem.passed), N);
  assert_int_equal(threads_settle(base), base);
  gate_destroy(&sem);
}

/* ThreadPoolExecutorTest.test_idle_thread_reuse */
static void test_idle_thread_reuse(void **state) {
  (void)state;
  warm_up_threads();
  int base = count_threads();
  fut_executor_t *ex = NULL;
  assert_int_equal(fut_thread_pool_new(0, &ex), 0);
  struct mul ms[3] = {{21, 2}, {6, 7}, {3, 14}};
  for (int i = 0; i < 3; i++) {
    fut_cfuture_t *f;
    assert_int_equal(fut_executor_submit(ex, mul, &ms[i], &f), 0);
    int64_t v = 0;
    assert_int_equal(fut_cfuture_result_i64(f, FUT_FOREVER, &v), 0);
    assert_int_equal(v, 42);
    fut_cfuture_unref(f);
  }
  assert_int_equal(count_threads() - base, 1);
  executor_done(ex);
}

/* ThreadPoolExecutorTest.test_hang_global_shutdown_lock: a job that keeps
 * resubmitting itself to a one-thread pool while the main thread makes
 * and shuts down one-worker process pools (CPython: 50 with the fork
 * start method; here 10, each a fork server of its own). */
static int resubmit(void *arg, fut_cfuture_t *cf) {
  (void)cf;
  fut_executor_t *pool = arg;
  fut_cfuture_t *next = NULL;
  /* After the shutdown this fails with FUT_E_SHUTDOWN and the chain
   * ends. */
  if (fut_executor_submit(pool, resubmit, pool, &next) == 0)
    fut_cfuture_unref(next);
  return 0;
}

static int tuple_bytes(const void *data, size_t len, void **out,
                       size_t *out_len) {
  (void)data;
  (void)len;
  *out = NULL;
  *out_len = 0;
  return 0;
}

static void test_hang_global_shutdown_lock(void **state) {
  (void)state;
  fut_executor_t *pool = NULL;
  assert_int_equal(fut_thread_pool_new(1, &pool), 0);
  fut_cfuture_t *first;
  assert_int_equal(fut_executor_submit(pool, resubmit, pool, &first), 0);
  for (int i = 0; i < 10; i++) {
    fut_executor_t *workers = NULL;
    assert_int_equal(fut_process_pool_new(1, &workers), 0);
    fut_job_t job = fut_job_bytes(tuple_bytes, NULL, 0);
    fut_cfuture_t *f;
    assert_int_equal(fut_executor_submit_job(workers, &job, &f), 0);
    assert_int_equal(fut_cfuture_result(f, FUT_SEC(30), NULL), 0);
    fut_cfuture_unref(f);
    executor_done(workers);
  }
  fut_cfuture_unref(first);
  executor_done(pool);
}

/* ThreadPoolExecutorTest.test_process_fork_from_a_threadpool: a job forks
 * a child that runs a trivial function and exits normally (exit(), atexit
 * handlers included); the child must not hang on the parent's pool. */
/* LeakSanitizer's exit-time check would count, in the child, the parent's
 * memory held by threads the child does not have: it is off there (the
 * hook LSan reads, when it is linked in). */
static volatile sig_atomic_t in_forked_child;
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void) {
  return in_forked_child;
}

static int fork_process_and_return_exitcode(void *arg, fut_cfuture_t *cf) {
  (void)arg;
  pid_t pid = fork();
  if (pid < 0)
    return -errno;
  if (pid == 0) {
    in_forked_child = 1;
    exit(0); /* target=lambda: 1 */
  }
  int st = wait_child(pid);
  return fut_cfuture_set_result_i64(cf, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static void test_process_fork_from_a_threadpool(void **state) {
  (void)state;
  fut_executor_t *pool = NULL;
  assert_int_equal(fut_thread_pool_new(1, &pool), 0);
  fut_cfuture_t *f;
  assert_int_equal(
      fut_executor_submit(pool, fork_process_and_return_exitcode, NULL, &f), 0);
  int64_t process_exitcode = -1;
  assert_int_equal(fut_cfuture_result_i64(f, FUT_FOREVER, &process_exitcode),
                   0);
  fut_cfuture_unref(f);
  executor_done(pool);
  assert_int_equal(process_exitcode, 0);
}

/* ThreadPoolExecutorTest.test_executor_map_current_future_cancel: map's
 * iterator with timeout=0 raises TimeoutError on the first result and,
 * when closed, cancels the futures it still holds; neither mapped job
 * runs.  In C the caller holds the mapped cfutures and cancels them. */
struct log {
  pthread_mutex_t m;
  char lines[8][32];
  int n;
};

struct log_n_wait {
  struct log *log;
  struct gate *stop_event;
  const char *ident;
};

static void log_add(struct log *l, const char *ident, const char *what) {
  pthread_mutex_lock(&l->m);
  if (l->n < 8)
    snprintf(l->lines[l->n++], sizeof l->lines[0], "%s %s", ident, what);
  pthread_mutex_unlock(&l->m);
}

static int log_n_wait(void *arg, fut_cfuture_t *cf) {
  (void)cf;
  struct log_n_wait *a = arg;
  log_add(a->log, a->ident, "started");
  gate_pass(a->stop_event);
  log_add(a->log, a->ident, "stopped");
  return 0;
}

static void test_executor_map_current_future_cancel(void **state) {
  (void)state;
  struct log log = {PTHREAD_MUTEX_INITIALIZER, {{0}}, 0};
  struct gate stop_event;
  gate_init(&stop_event);
  struct log_n_wait first = {&log, &stop_event, "first"};
  struct log_n_wait second = {&log, &stop_event, "second"};
  struct log_n_wait third = {&log, &stop_event, "third"};
  fut_executor_t *pool = NULL;
  assert_int_equal(fut_thread_pool_new(1, &pool), 0);
  /* submit work to saturate the pool */
  fut_cfuture_t *fut;
  assert_int_equal(fut_executor_submit(pool, log_n_wait, &first, &fut), 0);
  void *args[2] = {&second, &third};
  fut_cfuture_t *gen[2];
  assert_int_equal(fut_executor_map(pool, log_n_wait, args, 2, gen), 0);
  assert_int_equal(fut_cfuture_result(gen[0], 0, NULL), -ETIMEDOUT);
  /* closing the generator: second on the timeout, third as left over */
  assert_true(fut_cfuture_cancel(gen[0]));
  assert_true(fut_cfuture_cancel(gen[1]));
  gate_open(&stop_event);
  assert_int_equal(fut_cfuture_result(fut, FUT_FOREVER, NULL), 0);
  executor_done(pool);
  assert_int_equal(log.n, 2);
  assert_string_equal(log.lines[0], "first started");
  assert_string_equal(log.lines[1], "first stopped");
  fut_cfuture_unref(fut);
  fut_cfuture_unref(gen[0]);
  fut_cfuture_unref(gen[1]);
  gate_destroy(&stop_event);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_map_submits_without_iteration),
      cmocka_unit_test(test_default_workers),
      cmocka_unit_test(test_saturation),
      cmocka_unit_test(test_idle_thread_reuse),
      cmocka_unit_test(test_hang_global_shutdown_lock),
      cmocka_unit_test(test_process_fork_from_a_threadpool),
      cmocka_unit_test(test_executor_map_current_future_cancel),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
