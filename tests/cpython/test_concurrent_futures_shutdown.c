/* CPython's Lib/test/test_concurrent_futures/test_shutdown.py (classes
 * ExecutorShutdownTest, ThreadPoolShutdownTest, ProcessPoolShutdownTest)
 * as libfuture's behavioural spec: one cmocka test per CPython test method
 * that applies to C, named after it.  The ExecutorShutdownTest mixin runs
 * per executor kind in CPython; its methods are ported as
 * <method>_thread and <method>_process.  Python's context manager exit is
 * fut_executor_shutdown(wait) + fut_executor_free, `del executor` is
 * fut_executor_free alone (the last reference shuts down with wait);
 * executor._threads is the process's thread count and executor._processes
 * the pool's fork server and workers (every test must end with no child
 * of this process left). */
#include "cf_proc_util.h"
#include "exec_helpers.h"

#include <ctype.h>
#include <regex.h>

enum { WORKERS = 5 }; /* CPython's ExecutorMixin.worker_count */

static fut_executor_t *thread_pool(size_t n) {
  fut_executor_t *ex = NULL;
  assert_int_equal(fut_thread_pool_new(n, &ex), 0);
  return ex;
}

static fut_executor_t *process_pool(size_t n) {
  fut_executor_t *ex = NULL;
  assert_int_equal(fut_process_pool_new(n, &ex), 0);
  return ex;
}

static void executor_done(fut_executor_t *ex) {
  assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_FOREVER), 0);
  fut_executor_free(ex);
}

/* ---- jobs ---------------------------------------------------------------- */

static int sleep_call(void *arg, fut_cfuture_t *cf) {
  (void)cf;
  pp_sleep_ns((uint64_t)(uintptr_t)arg);
  return 0;
}

static int pow_call(void *arg, fut_cfuture_t *cf) {
  (void)arg;
  return fut_cfuture_set_result_i64(cf, 32); /* pow(2, 5) */
}

static int int_call(void *arg, fut_cfuture_t *cf) {
  (void)arg;
  return fut_cfuture_set_result_i64(cf, 0); /* int() */
}

static int abs_call(void *arg, fut_cfuture_t *cf) {
  int64_t v = *(int64_t *)arg;
  return fut_cfuture_set_result_i64(cf, v < 0 ? -v : v);
}

static int acquire_lock(void *arg, fut_cfuture_t *cf) {
  (void)cf;
  gate_pass(arg);
  return 0;
}

/* ======================================================================
 * ExecutorShutdownTest
 * ====================================================================== */

/* ExecutorShutdownTest.test_run_after_shutdown (thread pool) */
static void test_run_after_shutdown_thread(void **state) {
  (void)state;
  fut_executor_t *ex = thread_pool(WORKERS);
  assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_FOREVER), 0);
  fut_cfuture_t *f = NULL;
  assert_int_equal(fut_executor_submit(ex, pow_call, NULL, &f),
                   FUT_E_SHUTDOWN); /* RuntimeError */
  assert_null(f);
  fut_executor_free(ex);
}

/* ExecutorShutdownTest.test_run_after_shutdown (process pool) */
static void test_run_after_shutdown_process(void **state) {
  (void)state;
  fut_executor_t *ex = process_pool(WORKERS);
  assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_FOREVER), 0);
  struct mul m = {2, 5};
  fut_job_t job = fut_job_bytes(pp_mul_job, &m, sizeof m);
  fut_cfuture_t *f = NULL;
  assert_int_equal(fut_executor_submit_job(ex, &job, &f), FUT_E_SHUTDOWN);
  assert_null(f);
  fut_executor_free(ex);
}

/* ExecutorShutdownTest.test_hang_issue12364: 50 sleeping jobs (CPython:
 * 0.1 s each; here 20 ms), shutdown, then every result. */
#define HANG_SLEEP FUT_MS(20)

static void test_hang_issue12364_thread(void **state) {
  (void)state;
  fut_executor_t *ex = thread_pool(WORKERS);
  fut_cfuture_t *fs[50];
  for (int i = 0; i < 50; i++)
    assert_int_equal(fut_executor_submit(ex, sleep_call,
                                         (void *)(uintptr_t)HANG_SLEEP, &fs[i]),
                     0);
  assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_FOREVER), 0);
  for (int i = 0; i < 50; i++) {
    assert_int_equal(fut_cfuture_result(fs[i], 0, NULL), 0);
    fut_cfuture_unref(fs[i]);
  }
  fut_executor_free(ex);
}

/* ExecutorShutdownTest.test_hang_issue12364 (process pool) */
static void test_hang_issue12364_process(void **state) {
  (void)state;
  fut_executor_t *ex = process_pool(WORKERS);
  fut_cfuture_t *fs[50];
  for (int i = 0; i < 50; i++)
    fs[i] = pp_submit_i64(ex, pp_sleep_job, (int64_t)HANG_SLEEP);
  assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_FOREVER), 0);
  for (int i = 0; i < 50; i++) {
    assert_int_equal(fut_cfuture_result(fs[i], 0, NULL), 0);
    fut_cfuture_unref(fs[i]);
  }
  fut_executor_free(ex);
}

/* ExecutorShutdownTest.test_cancel_futures: 50 jobs of 0.1 s on at most 5
 * workers, shutdown(cancel_futures=True): more than 20 cancelled, the
 * others done without exception, at least one of them. */
/* CPython can promise that at least one job finished because
 * Thread.start() waits for the new thread, and meanwhile (the GIL
 * released) the first worker takes its job.  libfuture's pools start a
 * job only when a worker takes it, and pthread_create does not wait for
 * the thread: a shutdown right after the submissions may find none
 * started (seen under ASan).  Wait (bounded) until the first job runs:
 * then the state CPython's test assumes holds. */
static void wait_first_started(fut_cfuture_t *f) {
  for (int i = 0; i < 15000 && fut_cfuture_state(f) == FUT_CFUTURE_PENDING; i++)
    pp_sleep_ns(FUT_MS(2));
  assert_int_not_equal(fut_cfuture_state(f), FUT_CFUTURE_PENDING);
}

static void check_cancel_futures(fut_cfuture_t **fs) {
  int cancelled = 0, others = 0;
  for (int i = 0; i < 50; i++) {
    if (fut_cfuture_cancelled(fs[i])) {
      cancelled++;
    } else {
      others++;
      assert_true(fut_cfuture_done(fs[i]));
      assert_int_equal(fut_cfuture_exception(fs[i], 0, NULL), 0);
    }
    fut_cfuture_unref(fs[i]);
  }
  assert_true(cancelled > 20);
  assert_true(others > 0);
}

static void test_cancel_futures_thread(void **state) {
  (void)state;
  fut_executor_t *ex = thread_pool(WORKERS);
  fut_cfuture_t *fs[50];
  for (int i = 0; i < 50; i++)
    assert_int_equal(fut_executor_submit(ex, sleep_call,
                                         (void *)(uintptr_t)FUT_MS(100),
                                         &fs[i]),
                     0);
  wait_first_started(fs[0]);
  assert_int_equal(fut_executor_shutdown(ex, true, true, FUT_FOREVER), 0);
  check_cancel_futures(fs);
  fut_executor_free(ex);
}

/* ExecutorShutdownTest.test_cancel_futures (process pool) */
static void test_cancel_futures_process(void **state) {
  (void)state;
  fut_executor_t *ex = process_pool(WORKERS);
  fut_cfuture_t *fs[50];
  for (int i = 0; i < 50; i++)
    fs[i] = pp_submit_i64(ex, pp_sleep_job, (int64_t)FUT_MS(100));
  /* CPython's manager thread hands up to max_workers + 1 jobs to its call
   * queue at once, where they count as running; here workers are forked on
   * demand and take jobs later. */
  wait_first_started(fs[0]);
  assert_int_equal(fut_executor_shutdown(ex, true, true, FUT_FOREVER), 0);
  check_cancel_futures(fs);
  fut_executor_free(ex);
}

/* ExecutorShutdownTest.test_hang_gh94440: shutdown(wait=True) right after
 * a submitted job was cancelled returns (CPython: within a 5 s alarm). */
static void test_hang_gh94440_thread(void **state) {
  (void)state;
  fut_executor_t *ex = thread_pool(1);
  fut_cfuture_t *f;
  assert_int_equal(fut_executor_submit(ex, int_call, NULL, &f), 0);
  assert_int_equal(fut_cfuture_result(f, FUT_FOREVER, NULL), 0);
  fut_cfuture_unref(f);
  assert_int_equal(fut_executor_submit(ex, int_call, NULL, &f), 0);
  fut_cfuture_cancel(f);
  fut_cfuture_unref(f);
  assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_SEC(5)), 0);
  fut_executor_free(ex);
}

/* ExecutorShutdownTest.test_hang_gh94440 (process pool) */
static void test_hang_gh94440_process(void **state) {
  (void)state;
  fut_executor_t *ex = process_pool(1);
  fut_cfuture_t *f = pp_submit_i64(ex, pp_abs_job, 0);
  assert_int_equal(fut_cfuture_result(f, FUT_FOREVER, NULL), 0);
  fut_cfuture_unref(f);
  f = pp_submit_i64(ex, pp_abs_job, 0);
  fut_cfuture_cancel(f);
  fut_cfuture_unref(f);
  assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_SEC(5)), 0);
  fut_executor_free(ex);
}

/* ======================================================================
 * ThreadPoolShutdownTest
 * ====================================================================== */

/* ThreadPoolShutdownTest.test_threads_terminate */
static void test_threads_terminate(void **state) {
  (void)state;
  warm_up_threads();
  int base = count_threads();
  fut_executor_t *ex = thread_pool(WORKERS);
  struct gate sem;
  gate_init(&sem);
  fut_cfuture_t *fs[3];
  for (int i = 0; i < 3; i++)
    assert_int_equal(fut_executor_submit(ex, acquire_lock, &sem, &fs[i]), 0);
  gate_wait_arrived(&sem, 3);
  assert_int_equal(count_threads() - base, 3);
  gate_open(&sem);
  assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_FOREVER), 0);
  assert_int_equal(threads_settle(base), base); /* t.join() */
  for (int i = 0; i < 3; i++)
    fut_cfuture_unref(fs[i]);
  fut_executor_free(ex);
  gate_destroy(&sem);
}

static int64_t abs_args[10] = {-5, -4, -3, -2, -1, 0, 1, 2, 3, 4};

static void map_abs_thread(fut_executor_t *ex, fut_cfuture_t **fs) {
  void *args[10];
  for (int i = 0; i < 10; i++)
    args[i] = &abs_args[i];
  assert_int_equal(fut_executor_map(ex, abs_call, args, 10, fs), 0);
}

/* all([r == abs(v) for r, v in zip(res, range(-5, 5))]) */
static void check_abs_thread(fut_cfuture_t **fs, uint64_t timeout) {
  for (int i = 0; i < 10; i++) {
    int64_t v = -1;
    assert_int_equal(fut_cfuture_result_i64(fs[i], timeout, &v), 0);
    assert_int_equal(v, abs_args[i] < 0 ? -abs_args[i] : abs_args[i]);
    fut_cfuture_unref(fs[i]);
  }
}

/* ThreadPoolShutdownTest.test_context_manager_shutdown */
static void test_context_manager_shutdown_thread(void **state) {
  (void)state;
  warm_up_threads();
  int base = count_threads();
  fut_executor_t *e = thread_pool(5);
  fut_cfuture_t *fs[10];
  map_abs_thread(e, fs);
  check_abs_thread(fs, FUT_FOREVER);
  executor_done(e); /* the with block's exit */
  assert_int_equal(threads_settle(base), base);
}

/* ThreadPoolShutdownTest.test_del_shutdown */
static void test_del_shutdown_thread(void **state) {
  (void)state;
  warm_up_threads();
  int base = count_threads();
  fut_executor_t *ex = thread_pool(5);
  fut_cfuture_t *fs[10];
  map_abs_thread(ex, fs);
  fut_executor_free(ex); /* del executor */
  assert_int_equal(threads_settle(base), base);
  check_abs_thread(fs, 0); /* computed before the executor went */
}

/* ThreadPoolShutdownTest.test_shutdown_no_wait */
static void test_shutdown_no_wait_thread(void **state) {
  (void)state;
  warm_up_threads();
  int base = count_threads();
  fut_executor_t *ex = thread_pool(5);
  fut_cfuture_t *fs[10];
  map_abs_thread(ex, fs);
  assert_int_equal(fut_executor_shutdown(ex, false, false, 0), 0);
  assert_int_equal(threads_settle(base), base); /* the threads end */
  check_abs_thread(fs, 0);
  fut_executor_free(ex);
}

/* Every thread of this process named with prefix must match re; returns
 * how many there are. */
static int check_thread_names(const char *prefix, const char *re) {
  regex_t rx;
  assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
  DIR *d = opendir("/proc/self/task");
  assert_non_null(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.')
      continue;
    char path[300], name[64] = "";
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    FILE *f = fopen(path, "re");
    if (!f)
      continue;
    if (!fgets(name, sizeof name, f))
      name[0] = '\0';
    fclose(f);
    name[strcspn(name, "\n")] = '\0';
    if (strncmp(name, prefix, strlen(prefix)) != 0)
      continue;
    n++;
    assert_int_equal(regexec(&rx, name, 0, NULL, 0), 0);
  }
  closedir(d);
  regfree(&rx);
  return n;
}

/* ThreadPoolShutdownTest.test_thread_names_assigned */
static void test_thread_names_assigned(void **state) {
  (void)state;
  fut_thread_pool_opts_t o;
  fut_thread_pool_opts_init(&o);
  o.max_workers = 5;
  o.name_prefix = "SpecialPool";
  fut_executor_t *ex = NULL;
  assert_int_equal(fut_thread_pool_new_ex(&o, &ex), 0);
  fut_cfuture_t *fs[10];
  map_abs_thread(ex, fs);
  for (int i = 0; i < 10; i++)
    assert_int_equal(fut_cfuture_wait(fs[i], FUT_FOREVER), 0);
  assert_true(check_thread_names("SpecialPool", "^SpecialPool_[0-4]$") >= 1);
  check_abs_thread(fs, 0);
  fut_executor_free(ex); /* del executor; t.join() */
}

/* ThreadPoolShutdownTest.test_thread_names_default: CPython's default is
 * ThreadPoolExecutor-<n>_<i>; libfuture's is fut-pool_<i>. */
static void test_thread_names_default(void **state) {
  (void)state;
  fut_executor_t *ex = thread_pool(5);
  fut_cfuture_t *fs[10];
  map_abs_thread(ex, fs);
  for (int i = 0; i < 10; i++)
    assert_int_equal(fut_cfuture_wait(fs[i], FUT_FOREVER), 0);
  assert_true(check_thread_names("fut-pool", "^fut-pool_[0-4]$") >= 1);
  check_abs_thread(fs, 0);
  fut_executor_free(ex);
}

/* ThreadPoolShutdownTest.test_cancel_futures_wait_false: CPython runs it
 * in a child interpreter that exits right after; here the executor is
 * freed right after.  The job either ran ("apple") or was cancelled
 * (gh-116682), and nothing else happens. */
static int sleep_and_print(void *arg, fut_cfuture_t *cf) {
  pp_sleep_ns(FUT_MS(100));
  atomic_store((atomic_int *)arg, 1);
  return fut_cfuture_set_result_bytes(cf, "apple", 5);
}

static void test_cancel_futures_wait_false(void **state) {
  (void)state;
  warm_up_threads();
  int base = count_threads();
  atomic_int printed;
  atomic_init(&printed, 0);
  fut_executor_t *t = thread_pool(0);
  fut_cfuture_t *f;
  assert_int_equal(fut_executor_submit(t, sleep_and_print, &printed, &f), 0);
  assert_int_equal(fut_executor_shutdown(t, false, true, 0), 0);
  fut_executor_free(t);
  assert_int_equal(fut_cfuture_wait(f, FUT_SEC(30)), 0);
  if (fut_cfuture_cancelled(f)) {
    assert_int_equal(atomic_load(&printed), 0);
  } else {
    const void *d;
    size_t n;
    assert_int_equal(fut_cfuture_result_bytes(f, 0, &d, &n), 0);
    assert_memory_equal(d, "apple", 5);
  }
  fut_cfuture_unref(f);
  assert_int_equal(threads_settle(base), base);
}

/* ======================================================================
 * ProcessPoolShutdownTest
 * ====================================================================== */

/* ProcessPoolShutdownTest.test_processes_terminate: workers start on
 * demand (CPython's spawn and forkserver expectation: 3 for 3 jobs). */
static void test_processes_terminate(void **state) {
  (void)state;
  fut_executor_t *ex = process_pool(WORKERS);
  fut_process_pool_t *p = fut_executor_self(ex);
  struct fgate sem;
  fgate_init(&sem);
  fut_job_t job = fgate_jobdesc(&sem);
  fut_cfuture_t *fs[3];
  for (int i = 0; i < 3; i++)
    assert_int_equal(fut_executor_submit_job(ex, &job, &fs[i]), 0);
  fgate_wait_started(&sem, 3);
  assert_int_equal(fut_process_pool_nworkers(p), 3);
  fgate_open(&sem);
  assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_FOREVER), 0);
  assert_int_equal(fut_process_pool_nworkers(p), 0);
  assert_int_equal(fut_process_pool_server_pid(p), 0);
  assert_int_equal(pp_children_settle(), 0); /* p.join() */
  for (int i = 0; i < 3; i++) {
    assert_int_equal(fut_cfuture_result(fs[i], 0, NULL), 0);
    fut_cfuture_unref(fs[i]);
  }
  fut_executor_free(ex);
  fgate_destroy(&sem);
}

static void map_abs_process(fut_executor_t *ex, fut_cfuture_t **fs) {
  fut_job_t jobs[10];
  for (int i = 0; i < 10; i++)
    jobs[i] = fut_job_bytes(pp_abs_job, &abs_args[i], sizeof abs_args[i]);
  assert_int_equal(fut_executor_map_jobs(ex, jobs, 10, fs), 0);
}

static void check_abs_process(fut_cfuture_t **fs, uint64_t timeout) {
  for (int i = 0; i < 10; i++) {
    int err;
    assert_int_equal(pp_result_i64(fs[i], timeout, &err),
                     abs_args[i] < 0 ? -abs_args[i] : abs_args[i]);
    assert_int_equal(err, 0);
    fut_cfuture_unref(fs[i]);
  }
}

/* ProcessPoolShutdownTest.test_context_manager_shutdown */
static void test_context_manager_shutdown_process(void **state) {
  (void)state;
  fut_executor_t *e = process_pool(5);
  fut_cfuture_t *fs[10];
  map_abs_process(e, fs);
  check_abs_process(fs, FUT_FOREVER);
  executor_done(e);
  assert_int_equal(pp_children_settle(), 0);
}

/* ProcessPoolShutdownTest.test_del_shutdown: every resource of the pool
 * (manager thread, workers, fork server) is gone after the last
 * reference. */
static void test_del_shutdown_process(void **state) {
  (void)state;
  int threads = pp_threads();
  fut_executor_t *ex = process_pool(5);
  fut_cfuture_t *fs[10];
  map_abs_process(ex, fs);
  fut_executor_free(ex); /* del executor */
  assert_int_equal(pp_threads_settle(threads), threads);
  assert_int_equal(pp_children_settle(), 0);
  check_abs_process(fs, 0);
}

/* ProcessPoolShutdownTest.test_shutdown_no_wait */
static void test_shutdown_no_wait_process(void **state) {
  (void)state;
  int threads = pp_threads();
  fut_executor_t *ex = process_pool(5);
  fut_cfuture_t *fs[10];
  map_abs_process(ex, fs);
  assert_int_equal(fut_executor_shutdown(ex, false, false, 0), 0);
  assert_int_equal(pp_threads_settle(threads), threads);
  assert_int_equal(pp_children_settle(), 0);
  check_abs_process(fs, 0);
  fut_executor_free(ex);
}

/* ProcessPoolShutdownTest._run_test_issue_gh_132969: max_tasks_per_child
 * 1, a job fails, shutdown(wait=False): the pool still cleans up. */
static int good_task(const void *data, size_t len, void **out,
                     size_t *out_len) {
  int64_t n;
  int err = pp_in_i64(data, len, &n);
  if (err)
    return err;
  pp_sleep_ns((uint64_t)n * FUT_MS(100));
  return pp_out_i64(n, out, out_len);
}

static int failing_task(const void *data, size_t len, void **out,
                        size_t *out_len) {
  (void)data;
  (void)len;
  (void)out;
  (void)out_len;
  return -EINVAL; /* ValueError("failing task") */
}

static int64_t run_test_issue_gh_132969(unsigned max_workers) {
  int threads = pp_threads();
  fut_process_pool_opts_t o;
  fut_process_pool_opts_init(&o);
  o.max_workers = max_workers;
  o.max_tasks_per_child = 1;
  fut_executor_t *ex = NULL;
  assert_int_equal(fut_process_pool_new_ex(&o, &ex), 0);
  fut_cfuture_t *f1 = pp_submit_i64(ex, good_task, 1);
  fut_cfuture_t *f2 = pp_submit_i64(ex, failing_task, 2);
  fut_cfuture_t *f3 = pp_submit_i64(ex, good_task, 3);
  int64_t result = 0;
  int err;
  result += pp_result_i64(f1, FUT_FOREVER, &err);
  assert_int_equal(err, 0);
  pp_result_i64(f2, FUT_FOREVER, &err);
  assert_int_equal(err, -EINVAL); /* stop at the first exception */
  assert_int_equal(fut_executor_shutdown(ex, false, false, 0), 0);
  pp_sleep_ns(FUT_MS(200));
  /* executor_manager_thread.join() */
  assert_int_equal(pp_threads_settle(threads), threads);
  assert_int_equal(pp_children_settle(), 0);
  assert_int_equal(pp_result_i64(f3, 0, &err), 3);
  assert_int_equal(err, 0);
  fut_cfuture_unref(f1);
  fut_cfuture_unref(f2);
  fut_cfuture_unref(f3);
  fut_executor_free(ex);
  return result;
}

/* ProcessPoolShutdownTest.test_shutdown_gh_132969_case_1 */
static void test_shutdown_gh_132969_case_1(void **state) {
  (void)state;
  assert_int_equal(run_test_issue_gh_132969(2), 1);
}

/* ProcessPoolShutdownTest.test_shutdown_gh_132969_case_2 */
static void test_shutdown_gh_132969_case_2(void **state) {
  (void)state;
  assert_int_equal(run_test_issue_gh_132969(4), 1);
}

#define T(name)                                                                \
  cmocka_unit_test_setup_teardown(name, pp_no_children, pp_no_children)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_run_after_shutdown_thread),
      T(test_run_after_shutdown_process),
      T(test_hang_issue12364_thread),
      T(test_hang_issue12364_process),
      T(test_cancel_futures_thread),
      T(test_cancel_futures_process),
      T(test_hang_gh94440_thread),
      T(test_hang_gh94440_process),
      T(test_threads_terminate),
      T(test_context_manager_shutdown_thread),
      T(test_del_shutdown_thread),
      T(test_shutdown_no_wait_thread),
      T(test_thread_names_assigned),
      T(test_thread_names_default),
      T(test_cancel_futures_wait_false),
      T(test_processes_terminate),
      T(test_context_manager_shutdown_process),
      T(test_del_shutdown_process),
      T(test_shutdown_no_wait_process),
      T(test_shutdown_gh_132969_case_1),
      T(test_shutdown_gh_132969_case_2),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
