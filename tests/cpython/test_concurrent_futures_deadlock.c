/* CPython's Lib/test/test_concurrent_futures/test_deadlock.py (class
 * ExecutorDeadlockTest, run by CPython on process pools with each start
 * method) as libfuture's behavioural spec: one cmocka test per CPython test
 * method that applies to C, named after it.  Most of the class provokes
 * failures while pickling or unpickling a job or its result; libfuture
 * sends bytes, so those do not apply (docs/asyncio-to-libfuture.md).  What
 * remains: a worker that crashes, exits or fails while running a job, or
 * crashes during a shutdown, must fail the job and never hang the pool.
 *
 * Mapping: BrokenProcessPool for the job of a worker that died is
 * FUT_E_WORKER_DIED (libfuture fails that job only; the pool lives on);
 * CPython's TIMEOUT (support.LONG_TIMEOUT, 5 minutes) is 30 s here. */
#include "cf_proc_util.h"

#include <signal.h>

#define TIMEOUT FUT_SEC(30)

static fut_executor_t *process_pool(unsigned workers) {
  fut_executor_t *ex = NULL;
  assert_int_equal(fut_process_pool_new(workers, &ex), 0);
  return ex;
}

/* ---- jobs ---------------------------------------------------------------- */

/* _crash(delay): induces a segfault, after delay ns */
static int crash_job(const void *data, size_t len, void **out,
                     size_t *out_len) {
  (void)out;
  (void)out_len;
  int64_t delay = 0;
  if (len == sizeof delay)
    memcpy(&delay, data, sizeof delay);
  if (delay)
    pp_sleep_ns((uint64_t)delay);
  signal(SIGSEGV, SIG_DFL);
  raise(SIGSEGV);
  return -EFAULT; /* not reached */
}

/* _exit(): sys.exit(1) */
static int exit_job(const void *data, size_t len, void **out, size_t *out_len) {
  (void)data;
  (void)len;
  (void)out;
  (void)out_len;
  exit(1);
}

/* _raise_error(RuntimeError) */
static int raise_error_job(const void *data, size_t len, void **out,
                           size_t *out_len) {
  (void)data;
  (void)len;
  (void)out;
  (void)out_len;
  return -ERANGE;
}

/* int(n) */
static int int_job(const void *data, size_t len, void **out, size_t *out_len) {
  int64_t n;
  int err = pp_in_i64(data, len, &n);
  return err ? err : pp_out_i64(n, out, out_len);
}

/* ExecutorDeadlockTest._check_error: a fresh pool of 2 runs the job; its
 * result must be the error within TIMEOUT; the pool then shuts down.
 * Returns the error's message (static copy). */
static const char *check_error(int error, fut_bytes_fn func, const void *data,
                               size_t len) {
  static char msg_copy[256];
  fut_executor_t *executor = process_pool(2);
  fut_cfuture_t *res = pp_submit(executor, func, data, len);
  const char *msg = NULL;
  /* -ETIMEDOUT here is CPython's _fail_on_deadlock */
  assert_int_equal(fut_cfuture_exception(res, TIMEOUT, &msg), error);
  snprintf(msg_copy, sizeof msg_copy, "%s", msg ? msg : "");
  fut_cfuture_unref(res);
  assert_int_equal(fut_executor_shutdown(executor, true, false, TIMEOUT), 0);
  fut_executor_free(executor);
  return msg_copy;
}

/* ExecutorDeadlockTest.test_crash_during_func_exec_on_worker */
static void test_crash_during_func_exec_on_worker(void **state) {
  (void)state;
  check_error(FUT_E_WORKER_DIED, crash_job, NULL, 0);
}

/* ExecutorDeadlockTest.test_exit_during_func_exec_on_worker: CPython's
 * SystemExit is an exception the worker catches and sends back; a C job
 * calling exit(1) ends its worker process, so the job fails as one whose
 * worker died, with the exit status in the message. */
static void test_exit_during_func_exec_on_worker(void **state) {
  (void)state;
  const char *msg = check_error(FUT_E_WORKER_DIED, exit_job, NULL, 0);
  assert_non_null(strstr(msg, "exited with status 1"));
}

/* ExecutorDeadlockTest.test_error_during_func_exec_on_worker */
static void test_error_during_func_exec_on_worker(void **state) {
  (void)state;
  check_error(-ERANGE, raise_error_job, NULL, 0); /* RuntimeError */
}

/* ExecutorDeadlockTest.test_shutdown_deadlock: a worker fails after the
 * shutdown call; the shutdown must not hang. */
static void test_shutdown_deadlock(void **state) {
  (void)state;
  fut_executor_t *executor = process_pool(2);
  int64_t delay = FUT_MS(100);
  fut_cfuture_t *f = pp_submit(executor, crash_job, &delay, sizeof delay);
  assert_int_equal(fut_executor_shutdown(executor, true, false, TIMEOUT), 0);
  assert_int_equal(fut_cfuture_exception(f, 0, NULL), FUT_E_WORKER_DIED);
  fut_cfuture_unref(f);
  fut_executor_free(executor);
}

/* ExecutorDeadlockTest.test_crash_big_data: workers crash while big
 * arguments (support.PIPE_MAX_SIZE, 4 MiB + 1) are being sent to them: a
 * clean error, no deadlock. */
static void test_crash_big_data(void **state) {
  (void)state;
  size_t n = 4 * 1024 * 1024 + 1;
  char *data = malloc(n);
  assert_non_null(data);
  memset(data, 'a', n);
  fut_executor_t *executor = process_pool(2);
  fut_job_t jobs[10];
  for (int i = 0; i < 10; i++)
    jobs[i] = fut_job_bytes(crash_job, data, n);
  fut_cfuture_t *fs[10];
  assert_int_equal(fut_executor_map_jobs(executor, jobs, 10, fs), 0);
  free(data);
  /* list(executor.map(...)) raises at the first result */
  assert_int_equal(fut_cfuture_exception(fs[0], TIMEOUT, NULL),
                   FUT_E_WORKER_DIED);
  for (int i = 1; i < 10; i++)
    assert_int_equal(fut_cfuture_exception(fs[i], TIMEOUT, NULL),
                     FUT_E_WORKER_DIED);
  for (int i = 0; i < 10; i++)
    fut_cfuture_unref(fs[i]);
  assert_int_equal(fut_executor_shutdown(executor, true, false, TIMEOUT), 0);
  fut_executor_free(executor);
}

/* ExecutorDeadlockTest.test_gh105829_should_not_deadlock_if_wakeup_pipe_full:
 * CPython delays its manager thread's start (a mock) so the submissions'
 * wake-ups fill a pipe; libfuture's doorbell is an eventfd, which a burst
 * of submissions cannot fill.  The port keeps the workload: 100 jobs
 * mapped at once all complete within TIMEOUT. */
static void
test_gh105829_should_not_deadlock_if_wakeup_pipe_full(void **state) {
  (void)state;
  enum { JOB_NUM = 100 };
  fut_executor_t *executor = process_pool(2);
  int64_t job_data[JOB_NUM];
  fut_job_t jobs[JOB_NUM];
  for (int i = 0; i < JOB_NUM; i++) {
    job_data[i] = i;
    jobs[i] = fut_job_bytes(int_job, &job_data[i], sizeof job_data[i]);
  }
  fut_cfuture_t *fs[JOB_NUM];
  uint64_t t0 = pp_now_ns();
  assert_int_equal(fut_executor_map_jobs(executor, jobs, JOB_NUM, fs), 0);
  for (int i = 0; i < JOB_NUM; i++) {
    uint64_t spent = pp_now_ns() - t0;
    int err;
    assert_int_equal(
        pp_result_i64(fs[i], spent < TIMEOUT ? TIMEOUT - spent : 0, &err), i);
    assert_int_equal(err, 0);
    fut_cfuture_unref(fs[i]);
  }
  assert_int_equal(fut_executor_shutdown(executor, true, false, TIMEOUT), 0);
  fut_executor_free(executor);
}

#define T(name)                                                                \
  cmocka_unit_test_setup_teardown(name, pp_no_children, pp_no_children)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_crash_during_func_exec_on_worker),
      T(test_exit_during_func_exec_on_worker),
      T(test_error_during_func_exec_on_worker),
      T(test_shutdown_deadlock),
      T(test_crash_big_data),
      T(test_gh105829_should_not_deadlock_if_wakeup_pipe_full),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
