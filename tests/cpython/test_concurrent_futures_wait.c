/* CPython's Lib/test/test_concurrent_futures/test_wait.py (classes
 * WaitTests, ThreadPoolWaitTests) as libfuture's behavioural spec: one
 * cmocka test per CPython test method that applies to C, named after it.
 * CPython runs WaitTests once per executor kind; the port submits to a
 * thread pool.  fut_cfuture_wait_many reports done[] per entry; the done
 * and not-done sets of Python are read from it.  An event is a gate
 * (exec_helpers.h). */
#include "cf_util.h"
#include "exec_helpers.h"

/* ---- jobs ---------------------------------------------------------------- */

/* divmod(x, 0) */
static int divmod_by_zero(void *arg, fut_cfuture_t *cf) {
  (void)arg;
  (void)cf;
  return -EDOM; /* ZeroDivisionError */
}

/* event.wait() */
static int event_wait(void *arg, fut_cfuture_t *cf) {
  (void)cf;
  gate_pass(arg);
  return 0;
}

static int wait_and_raise(void *arg, fut_cfuture_t *cf) {
  (void)cf;
  gate_pass(arg);
  return -EPERM; /* raise Exception("this is an exception") */
}

static fut_executor_t *executor(void) {
  fut_executor_t *ex = NULL;
  assert_int_equal(fut_thread_pool_new(4, &ex), 0);
  return ex;
}

static void executor_done(fut_executor_t *ex) {
  assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_FOREVER), 0);
  fut_executor_free(ex);
}

static void unref_all(fut_cfuture_t **fs, size_t n) {
  for (size_t i = 0; i < n; i++)
    fut_cfuture_unref(fs[i]);
}

/* ---- WaitTests ----------------------------------------------------------- */

/* WaitTests.test_20369: the same future twice is one future of the done
 * set. */
static void test_20369(void **state) {
  (void)state;
  fut_executor_t *ex = executor();
  struct mul m = {1, 2};
  fut_cfuture_t *future;
  assert_int_equal(fut_executor_submit(ex, mul, &m, &future), 0);
  fut_cfuture_t *fs[2] = {future, future};
  bool done[2] = {false, false};
  assert_true(fut_cfuture_wait_many(fs, 2, FUT_CFUTURE_ALL_COMPLETED,
                                    FUT_FOREVER, done) >= 1);
  assert_true(done[0] && done[1]); /* done == {future}, not_done == {} */
  fut_cfuture_unref(future);
  executor_done(ex);
}

/* WaitTests.test_first_completed_some_already_completed */
static void test_first_completed_some_already_completed(void **state) {
  (void)state;
  fut_executor_t *ex = executor();
  struct gate event;
  gate_init(&event);
  fut_cfuture_t *future1;
  assert_int_equal(fut_executor_submit(ex, event_wait, &event, &future1), 0);
  fut_cfuture_t *fs[3] = {cancelled_and_notified_future(), successful_future(),
                          future1};
  bool done[3];
  assert_int_equal(fut_cfuture_wait_many(fs, 3, FUT_CFUTURE_FIRST_COMPLETED,
                                         FUT_FOREVER, done),
                   2);
  assert_true(done[0] && done[1]);
  assert_false(done[2]);
  gate_open(&event);
  assert_int_equal(fut_cfuture_result(future1, FUT_FOREVER, NULL), 0);
  unref_all(fs, 3);
  executor_done(ex);
  gate_destroy(&event);
}

struct after_future1 {
  fut_cfuture_t *future1;
  struct gate *event1;
};

static void *wait_for_future1(void *p) {
  struct after_future1 *a = p;
  fut_cfuture_result(a->future1, FUT_FOREVER, NULL);
  gate_open(a->event1);
  return NULL;
}

/* WaitTests.test_first_exception */
static void test_first_exception(void **state) {
  (void)state;
  fut_executor_t *ex = executor();
  struct gate event1, event2;
  gate_init(&event1);
  gate_init(&event2);
  struct mul m = {2, 21};
  fut_cfuture_t *fs[3];
  assert_int_equal(fut_executor_submit(ex, mul, &m, &fs[0]), 0);
  assert_int_equal(fut_executor_submit(ex, wait_and_raise, &event1, &fs[1]),
                   0);
  assert_int_equal(fut_executor_submit(ex, event_wait, &event2, &fs[2]), 0);
  /* Ensure that future1 is completed before future2 finishes. */
  struct after_future1 a = {fs[0], &event1};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, wait_for_future1, &a), 0);
  bool done[3];
  assert_int_equal(fut_cfuture_wait_many(fs, 3, FUT_CFUTURE_FIRST_EXCEPTION,
                                         FUT_FOREVER, done),
                   2);
  assert_true(done[0] && done[1]);
  assert_false(done[2]);
  assert_int_equal(pthread_join(t, NULL), 0);
  gate_open(&event2);
  assert_int_equal(fut_cfuture_result(fs[2], FUT_FOREVER, NULL), 0);
  unref_all(fs, 3);
  executor_done(ex);
  gate_destroy(&event1);
  gate_destroy(&event2);
}

/* WaitTests.test_first_exception_one_already_failed */
static void test_first_exception_one_already_failed(void **state) {
  (void)state;
  fut_executor_t *ex = executor();
  struct gate event;
  gate_init(&event);
  fut_cfuture_t *future1;
  assert_int_equal(fut_executor_submit(ex, event_wait, &event, &future1), 0);
  fut_cfuture_t *fs[2] = {exception_future(), future1};
  bool done[2];
  assert_int_equal(fut_cfuture_wait_many(fs, 2, FUT_CFUTURE_FIRST_EXCEPTION,
                                         FUT_FOREVER, done),
                   1);
  assert_true(done[0]);
  assert_false(done[1]);
  gate_open(&event);
  assert_int_equal(fut_cfuture_result(future1, FUT_FOREVER, NULL), 0);
  unref_all(fs, 2);
  executor_done(ex);
  gate_destroy(&event);
}

/* WaitTests.test_all_completed */
static void test_all_completed(void **state) {
  (void)state;
  fut_executor_t *ex = executor();
  struct mul m = {2, 21};
  fut_cfuture_t *future1, *future2;
  assert_int_equal(fut_executor_submit(ex, divmod_by_zero, NULL, &future1), 0);
  assert_int_equal(fut_executor_submit(ex, mul, &m, &future2), 0);
  fut_cfuture_t *fs[5] = {successful_future(), cancelled_and_notified_future(),
                          exception_future(), future1, future2};
  bool done[5];
  assert_int_equal(fut_cfuture_wait_many(fs, 5, FUT_CFUTURE_ALL_COMPLETED,
                                         FUT_FOREVER, done),
                   5);
  for (int i = 0; i < 5; i++)
    assert_true(done[i]);
  unref_all(fs, 5);
  executor_done(ex);
}

/* WaitTests.test_timeout */
static void test_timeout(void **state) {
  (void)state;
  fut_executor_t *ex = executor();
  struct gate event;
  gate_init(&event);
  fut_cfuture_t *future;
  assert_int_equal(fut_executor_submit(ex, event_wait, &event, &future), 0);
  fut_cfuture_t *fs[4] = {cancelled_and_notified_future(), exception_future(),
                          successful_future(), future};
  bool done[4];
  assert_int_equal(fut_cfuture_wait_many(fs, 4, FUT_CFUTURE_ALL_COMPLETED,
                                         FUT_MS(50), done),
                   3);
  assert_true(done[0] && done[1] && done[2]);
  assert_false(done[3]);
  gate_open(&event);
  assert_int_equal(fut_cfuture_result(future, FUT_FOREVER, NULL), 0);
  unref_all(fs, 4);
  executor_done(ex);
  gate_destroy(&event);
}

/* ---- ThreadPoolWaitTests ------------------------------------------------- */

/* ThreadPoolWaitTests.test_pending_calls_race */
static void test_pending_calls_race(void **state) {
  (void)state;
  fut_executor_t *ex = executor();
  struct gate event;
  gate_init(&event);
  fut_cfuture_t *fs[100];
  for (int i = 0; i < 100; i++)
    assert_int_equal(fut_executor_submit(ex, event_wait, &event, &fs[i]), 0);
  gate_open(&event);
  assert_int_equal(fut_cfuture_wait_many(fs, 100, FUT_CFUTURE_ALL_COMPLETED,
                                         FUT_FOREVER, NULL),
                   100);
  unref_all(fs, 100);
  executor_done(ex);
  gate_destroy(&event);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_20369),
      cmocka_unit_test(test_first_completed_some_already_completed),
      cmocka_unit_test(test_first_exception),
      cmocka_unit_test(test_first_exception_one_already_failed),
      cmocka_unit_test(test_all_completed),
      cmocka_unit_test(test_timeout),
      cmocka_unit_test(test_pending_calls_race),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
