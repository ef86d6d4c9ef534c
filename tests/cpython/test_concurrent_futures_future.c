/* CPython's Lib/test/test_concurrent_futures/test_future.py (class
 * FutureTests) as libfuture's behavioural spec: one cmocka test per CPython
 * test method that applies to C, named after it.  Python's Future is a
 * fut_cfuture_t (future/cfuture.h); an exception is a negative code with a
 * message; futures.TimeoutError is -ETIMEDOUT, CancelledError -ECANCELED,
 * InvalidStateError FUT_E_INVALID_STATE.  CPython's CANCELLED_FUTURE (a
 * future cancelled but not yet acknowledged by an executor) has no
 * libfuture counterpart: a cancelled cfuture is done and notified at once,
 * so both cancelled premade futures are made as
 * cancelled_and_notified_future(). */
#include "cf_util.h"

#include <time.h>

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0)
    ;
}

/* ---- done callbacks ------------------------------------------------------ */

struct cb_seen {
  int calls;
  int err;         /* exception code / result code */
  int64_t result;  /* callback_future.result() */
  bool cancelled;  /* callback_future.cancelled() */
  const char *msg; /* callback_future.exception() message */
};

static void record_result(fut_cfuture_t *cf, void *arg) {
  struct cb_seen *s = arg;
  s->calls++;
  s->err = fut_cfuture_result_i64(cf, 0, &s->result);
}

static void record_exception(fut_cfuture_t *cf, void *arg) {
  struct cb_seen *s = arg;
  s->calls++;
  s->err = fut_cfuture_exception(cf, 0, &s->msg);
}

static void record_cancelled(fut_cfuture_t *cf, void *arg) {
  struct cb_seen *s = arg;
  s->calls++;
  s->cancelled = fut_cfuture_cancelled(cf);
}

/* FutureTests.test_done_callback_with_result */
static void test_done_callback_with_result(void **state) {
  (void)state;
  struct cb_seen s = {0};
  fut_cfuture_t *f = create_future();
  assert_int_equal(fut_cfuture_add_done_callback(f, record_result, &s), 0);
  assert_int_equal(s.calls, 0);
  assert_int_equal(fut_cfuture_set_result_i64(f, 5), 0);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.err, 0);
  assert_int_equal(s.result, 5);
  fut_cfuture_unref(f);
}

/* FutureTests.test_done_callback_with_exception */
static void test_done_callback_with_exception(void **state) {
  (void)state;
  struct cb_seen s = {0};
  fut_cfuture_t *f = create_future();
  assert_int_equal(fut_cfuture_add_done_callback(f, record_exception, &s), 0);
  assert_int_equal(fut_cfuture_set_exception(f, -EPERM, "test"), 0);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.err, -EPERM);
  assert_string_equal(s.msg, "test"); /* ('test',) == exc.args */
  fut_cfuture_unref(f);
}

/* FutureTests.test_done_callback_with_cancel */
static void test_done_callback_with_cancel(void **state) {
  (void)state;
  struct cb_seen s = {0};
  fut_cfuture_t *f = create_future();
  assert_int_equal(fut_cfuture_add_done_callback(f, record_cancelled, &s), 0);
  assert_true(fut_cfuture_cancel(f));
  assert_int_equal(s.calls, 1);
  assert_true(s.cancelled);
  fut_cfuture_unref(f);
}

/* FutureTests.test_done_callback_already_successful */
static void test_done_callback_already_successful(void **state) {
  (void)state;
  struct cb_seen s = {0};
  fut_cfuture_t *f = create_future();
  assert_int_equal(fut_cfuture_set_result_i64(f, 5), 0);
  assert_int_equal(fut_cfuture_add_done_callback(f, record_result, &s), 0);
  assert_int_equal(s.calls, 1); /* inline, before add returned */
  assert_int_equal(s.err, 0);
  assert_int_equal(s.result, 5);
  fut_cfuture_unref(f);
}

/* FutureTests.test_done_callback_already_failed */
static void test_done_callback_already_failed(void **state) {
  (void)state;
  struct cb_seen s = {0};
  fut_cfuture_t *f = create_future();
  assert_int_equal(fut_cfuture_set_exception(f, -EPERM, "test"), 0);
  assert_int_equal(fut_cfuture_add_done_callback(f, record_exception, &s), 0);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.err, -EPERM);
  assert_string_equal(s.msg, "test");
  fut_cfuture_unref(f);
}

/* FutureTests.test_done_callback_already_cancelled */
static void test_done_callback_already_cancelled(void **state) {
  (void)state;
  struct cb_seen s = {0};
  fut_cfuture_t *f = create_future();
  assert_true(fut_cfuture_cancel(f));
  assert_int_equal(fut_cfuture_add_done_callback(f, record_cancelled, &s), 0);
  assert_int_equal(s.calls, 1);
  assert_true(s.cancelled);
  fut_cfuture_unref(f);
}

/* ---- states -------------------------------------------------------------- */

/* FutureTests.test_cancel */
static void test_cancel(void **state) {
  (void)state;
  fut_cfuture_t *f1 = pending_future();
  fut_cfuture_t *f2 = running_future();
  fut_cfuture_t *f3 = cancelled_and_notified_future(); /* CANCELLED */
  fut_cfuture_t *f4 = cancelled_and_notified_future();
  fut_cfuture_t *f5 = exception_future();
  fut_cfuture_t *f6 = create_future();
  assert_int_equal(fut_cfuture_set_result_i64(f6, 5), 0);

  assert_true(fut_cfuture_cancel(f1));
  assert_int_equal(fut_cfuture_state(f1), FUT_CFUTURE_CANCELLED);
  assert_false(fut_cfuture_cancel(f2));
  assert_int_equal(fut_cfuture_state(f2), FUT_CFUTURE_RUNNING);
  assert_true(fut_cfuture_cancel(f3));
  assert_int_equal(fut_cfuture_state(f3), FUT_CFUTURE_CANCELLED);
  assert_true(fut_cfuture_cancel(f4));
  assert_int_equal(fut_cfuture_state(f4), FUT_CFUTURE_CANCELLED);
  assert_false(fut_cfuture_cancel(f5));
  assert_int_equal(fut_cfuture_state(f5), FUT_CFUTURE_FINISHED);
  assert_false(fut_cfuture_cancel(f6));
  assert_int_equal(fut_cfuture_state(f6), FUT_CFUTURE_FINISHED);

  fut_cfuture_t *all[6] = {f1, f2, f3, f4, f5, f6};
  for (int i = 0; i < 6; i++)
    fut_cfuture_unref(all[i]);
}

/* The six premade futures of util.py, in CPython's order: PENDING,
 * RUNNING, CANCELLED, CANCELLED_AND_NOTIFIED, EXCEPTION, SUCCESSFUL. */
static void premade(fut_cfuture_t *fs[6]) {
  fs[0] = pending_future();
  fs[1] = running_future();
  fs[2] = cancelled_and_notified_future();
  fs[3] = cancelled_and_notified_future();
  fs[4] = exception_future();
  fs[5] = successful_future();
}

static void premade_free(fut_cfuture_t *fs[6]) {
  for (int i = 0; i < 6; i++)
    fut_cfuture_unref(fs[i]);
}

/* FutureTests.test_cancelled */
static void test_cancelled(void **state) {
  (void)state;
  fut_cfuture_t *fs[6];
  premade(fs);
  const bool want[6] = {false, false, true, true, false, false};
  for (int i = 0; i < 6; i++)
    assert_int_equal(fut_cfuture_cancelled(fs[i]), want[i]);
  premade_free(fs);
}

/* FutureTests.test_done */
static void test_done(void **state) {
  (void)state;
  fut_cfuture_t *fs[6];
  premade(fs);
  const bool want[6] = {false, false, true, true, true, true};
  for (int i = 0; i < 6; i++)
    assert_int_equal(fut_cfuture_done(fs[i]), want[i]);
  premade_free(fs);
}

/* FutureTests.test_running */
static void test_running(void **state) {
  (void)state;
  fut_cfuture_t *fs[6];
  premade(fs);
  const bool want[6] = {false, true, false, false, false, false};
  for (int i = 0; i < 6; i++)
    assert_int_equal(fut_cfuture_running(fs[i]), want[i]);
  premade_free(fs);
}

/* ---- result and exception ------------------------------------------------ */

/* FutureTests.test_result_with_timeout */
static void test_result_with_timeout(void **state) {
  (void)state;
  fut_cfuture_t *fs[6];
  premade(fs);
  int64_t v = 0;
  assert_int_equal(fut_cfuture_result_i64(fs[0], 0, &v), -ETIMEDOUT);
  assert_int_equal(fut_cfuture_result_i64(fs[1], 0, &v), -ETIMEDOUT);
  assert_int_equal(fut_cfuture_result_i64(fs[2], 0, &v), -ECANCELED);
  assert_int_equal(fut_cfuture_result_i64(fs[3], 0, &v), -ECANCELED);
  assert_int_equal(fut_cfuture_result_i64(fs[4], 0, &v), -EIO); /* OSError */
  assert_int_equal(fut_cfuture_result_i64(fs[5], 0, &v), 0);
  assert_int_equal(v, 42);
  premade_free(fs);
}

struct later {
  fut_cfuture_t *f1;
  int what; /* 0: set_result(42), 1: cancel, 2: set_exception(OSError) */
};

static void *notification(void *p) {
  struct later *l = p;
  /* Wait until the main thread is (probably) waiting: the outcome does
   * not depend on it. */
  sleep_ms(100);
  if (l->what == 0)
    fut_cfuture_set_result_i64(l->f1, 42);
  else if (l->what == 1)
    fut_cfuture_cancel(l->f1);
  else
    fut_cfuture_set_exception(l->f1, -EIO, NULL);
  return NULL;
}

/* FutureTests.test_result_with_success */
static void test_result_with_success(void **state) {
  (void)state;
  struct later l = {pending_future(), 0};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, notification, &l), 0);
  int64_t v = 0;
  assert_int_equal(fut_cfuture_result_i64(l.f1, FUT_SEC(5), &v), 0);
  assert_int_equal(v, 42);
  assert_int_equal(pthread_join(t, NULL), 0);
  fut_cfuture_unref(l.f1);
}

/* FutureTests.test_result_with_cancel */
static void test_result_with_cancel(void **state) {
  (void)state;
  struct later l = {pending_future(), 1};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, notification, &l), 0);
  assert_int_equal(fut_cfuture_result(l.f1, FUT_SEC(30), NULL), -ECANCELED);
  assert_int_equal(pthread_join(t, NULL), 0);
  fut_cfuture_unref(l.f1);
}

/* FutureTests.test_exception_with_timeout */
static void test_exception_with_timeout(void **state) {
  (void)state;
  fut_cfuture_t *fs[6];
  premade(fs);
  assert_int_equal(fut_cfuture_exception(fs[0], 0, NULL), -ETIMEDOUT);
  assert_int_equal(fut_cfuture_exception(fs[1], 0, NULL), -ETIMEDOUT);
  assert_int_equal(fut_cfuture_exception(fs[2], 0, NULL), -ECANCELED);
  assert_int_equal(fut_cfuture_exception(fs[3], 0, NULL), -ECANCELED);
  const char *msg = NULL;
  assert_int_equal(fut_cfuture_exception(fs[4], 0, &msg), -EIO);
  assert_string_equal(msg, "OSError");
  msg = "unset";
  assert_int_equal(fut_cfuture_exception(fs[5], 0, &msg), 0); /* None */
  assert_null(msg);
  premade_free(fs);
}

/* FutureTests.test_exception_with_success: CPython sets the state by hand
 * under the condition; the port completes the future from the thread. */
static void test_exception_with_success(void **state) {
  (void)state;
  struct later l = {pending_future(), 2};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, notification, &l), 0);
  assert_int_equal(fut_cfuture_exception(l.f1, FUT_SEC(30), NULL), -EIO);
  assert_int_equal(pthread_join(t, NULL), 0);
  fut_cfuture_unref(l.f1);
}

/* FutureTests.test_multiple_set_result */
static void test_multiple_set_result(void **state) {
  (void)state;
  fut_cfuture_t *f = pending_future();
  assert_int_equal(fut_cfuture_set_result_i64(f, 1), 0);
  assert_int_equal(fut_cfuture_set_result_i64(f, 2), FUT_E_INVALID_STATE);
  assert_true(fut_cfuture_done(f));
  int64_t v = 0;
  assert_int_equal(fut_cfuture_result_i64(f, 0, &v), 0);
  assert_int_equal(v, 1);
  fut_cfuture_unref(f);
}

/* FutureTests.test_multiple_set_exception */
static void test_multiple_set_exception(void **state) {
  (void)state;
  fut_cfuture_t *f = pending_future();
  assert_int_equal(fut_cfuture_set_exception(f, -EINVAL, "ValueError"), 0);
  assert_int_equal(fut_cfuture_set_exception(f, -EPERM, "Exception"),
                   FUT_E_INVALID_STATE);
  const char *msg = NULL;
  assert_int_equal(fut_cfuture_exception(f, 0, &msg), -EINVAL);
  assert_string_equal(msg, "ValueError");
  fut_cfuture_unref(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_done_callback_with_result),
      cmocka_unit_test(test_done_callback_with_exception),
      cmocka_unit_test(test_done_callback_with_cancel),
      cmocka_unit_test(test_done_callback_already_successful),
      cmocka_unit_test(test_done_callback_already_failed),
      cmocka_unit_test(test_done_callback_already_cancelled),
      cmocka_unit_test(test_cancel),
      cmocka_unit_test(test_cancelled),
      cmocka_unit_test(test_done),
      cmocka_unit_test(test_running),
      cmocka_unit_test(test_result_with_timeout),
      cmocka_unit_test(test_result_with_success),
      cmocka_unit_test(test_result_with_cancel),
      cmocka_unit_test(test_exception_with_timeout),
      cmocka_unit_test(test_exception_with_success),
      cmocka_unit_test(test_multiple_set_result),
      cmocka_unit_test(test_multiple_set_exception),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
