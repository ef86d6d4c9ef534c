/* CPython's Lib/test/test_concurrent_futures/test_as_completed.py (class
 * AsCompletedTests) as libfuture's behavioural spec: one cmocka test per
 * CPython test method that applies to C, named after it.  CPython runs the
 * class once per executor kind (threads, processes, interpreters); the C
 * port submits to a thread pool.  The premade futures of CPython's
 * util.py (CANCELLED_AND_NOTIFIED_FUTURE, EXCEPTION_FUTURE, ...) are made
 * the same way here. */
#include "cf_util.h"

#include <time.h>

/* ---- jobs ---------------------------------------------------------------- */

/* time.sleep(arg nanoseconds) */
static int sleep_job(void *arg, fut_cfuture_t *cf) {
  (void)cf;
  uint64_t ns = (uint64_t)(uintptr_t)arg;
  struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
  while (nanosleep(&ts, &ts) != 0)
    ;
  return 0;
}

static fut_executor_t *executor(void) {
  fut_executor_t *ex = NULL;
  assert_int_equal(fut_thread_pool_new(2, &ex), 0);
  return ex;
}

static void executor_done(fut_executor_t *ex) {
  assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_FOREVER), 0);
  fut_executor_free(ex);
}

static bool contains(fut_cfuture_t *const *set, size_t n, fut_cfuture_t *cf) {
  for (size_t i = 0; i < n; i++)
    if (set[i] == cf)
      return true;
  return false;
}

/* ---- AsCompletedTests ---------------------------------------------------- */

/* AsCompletedTests.test_no_timeout */
static void test_no_timeout(void **state) {
  (void)state;
  fut_executor_t *ex = executor();
  struct mul m1 = {2, 21}, m2 = {7, 6};
  fut_cfuture_t *future1, *future2;
  assert_int_equal(fut_executor_submit(ex, mul, &m1, &future1), 0);
  assert_int_equal(fut_executor_submit(ex, mul, &m2, &future2), 0);
  fut_cfuture_t *fs[5] = {cancelled_and_notified_future(), exception_future(),
                          successful_future(), future1, future2};
  fut_cfuture_as_completed_t *it;
  assert_int_equal(fut_cfuture_as_completed(fs, 5, FUT_FOREVER, &it), 0);
  fut_cfuture_t *completed[5], *f;
  size_t n = 0;
  while (fut_cfuture_as_completed_next(it, &f) == 0) {
    assert_true(n < 5);
    completed[n++] = f;
  }
  assert_int_equal(n, 5);
  for (size_t i = 0; i < 5; i++)
    assert_true(contains(completed, n, fs[i]));
  fut_cfuture_as_completed_free(it);
  for (size_t i = 0; i < 5; i++)
    fut_cfuture_unref(fs[i]);
  executor_done(ex);
}

/* AsCompletedTests.test_future_times_out (both subtests: timeout 0 and
 * the short timeout) */
static void test_future_times_out(void **state) {
  (void)state;
  fut_executor_t *ex = executor();
  fut_cfuture_t *already[3] = {cancelled_and_notified_future(),
                               exception_future(), successful_future()};
  const uint64_t short_timeout = FUT_MS(100);
  const uint64_t timeouts[2] = {0, short_timeout};
  for (int t = 0; t < 2; t++) {
    fut_cfuture_t *future;
    assert_int_equal(fut_executor_submit(
                         ex, sleep_job,
                         (void *)(uintptr_t)(short_timeout * 10), &future),
                     0);
    fut_cfuture_t *fs[4] = {already[0], already[1], already[2], future};
    fut_cfuture_as_completed_t *it;
    assert_int_equal(fut_cfuture_as_completed(fs, 4, timeouts[t], &it), 0);
    fut_cfuture_t *completed[4], *f;
    size_t n = 0;
    int rc;
    while ((rc = fut_cfuture_as_completed_next(it, &f)) == 0) {
      assert_true(n < 4);
      completed[n++] = f;
    }
    assert_int_equal(rc, -ETIMEDOUT);
    /* future was not completed. */
    assert_int_equal(n, 3);
    for (size_t i = 0; i < 3; i++)
      assert_true(contains(completed, n, already[i]));
    fut_cfuture_as_completed_free(it);
    fut_cfuture_unref(future);
  }
  for (size_t i = 0; i < 3; i++)
    fut_cfuture_unref(already[i]);
  executor_done(ex);
}

/* AsCompletedTests.test_duplicate_futures */
static void test_duplicate_futures(void **state) {
  (void)state;
  fut_executor_t *ex = executor();
  fut_cfuture_t *future1;
  assert_int_equal(
      fut_executor_submit(ex, sleep_job, (void *)(uintptr_t)FUT_MS(200), &future1),
      0);
  fut_cfuture_t *fs[3] = {future1, future1, future1}; /* repeat(future1, 3) */
  fut_cfuture_as_completed_t *it;
  assert_int_equal(fut_cfuture_as_completed(fs, 3, FUT_FOREVER, &it), 0);
  size_t n = 0;
  fut_cfuture_t *f;
  while (fut_cfuture_as_completed_next(it, &f) == 0)
    n++;
  assert_int_equal(n, 1);
  fut_cfuture_as_completed_free(it);
  fut_cfuture_unref(future1);
  executor_done(ex);
}

/* AsCompletedTests.test_correct_timeout_exception_msg: Python's message
 * is "2 (of 4) futures unfinished"; here fut_last_error() says how many
 * of how many were not done in time. */
static void test_correct_timeout_exception_msg(void **state) {
  (void)state;
  fut_cfuture_t *fs[4] = {cancelled_and_notified_future(), pending_future(),
                          running_future(), successful_future()};
  fut_cfuture_as_completed_t *it;
  assert_int_equal(fut_cfuture_as_completed(fs, 4, 0, &it), 0);
  fut_cfuture_t *f;
  int rc;
  while ((rc = fut_cfuture_as_completed_next(it, &f)) == 0)
    ;
  assert_int_equal(rc, -ETIMEDOUT);
  assert_non_null(strstr(fut_last_error(), "2 of 4"));
  fut_cfuture_as_completed_free(it);
  fut_cfuture_cancel(fs[1]);
  assert_int_equal(fut_cfuture_set_result(fs[2], NULL, NULL), 0);
  for (size_t i = 0; i < 4; i++)
    fut_cfuture_unref(fs[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_no_timeout),
      cmocka_unit_test(test_future_times_out),
      cmocka_unit_test(test_duplicate_futures),
      cmocka_unit_test(test_correct_timeout_exception_msg),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
