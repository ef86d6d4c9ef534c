/* CPython's Lib/test/test_asyncio/test_futures.py as libfuture's
 * behavioural spec: one cmocka test per CPython test method that applies
 * to C, named after it, with the CPython class and method beside it.
 * BaseFutureTests and BaseFutureDoneCallbackTests run in CPython once per
 * future class (C, C subclass, Python); libfuture has one future type, so
 * each method is ported once.  The methods that do not apply to C (Python
 * typing, the generator protocol, the garbage collector, private
 * attributes, "evil" __eq__ / __getattribute__ hooks) are listed with the
 * reason in docs/asyncio-to-libfuture.md. */
#include "fixture.h"

#include <stdlib.h>

/* The loop fixture: a fresh loop per test, proven clean at the end. */
#define T(fn) FX_LOOP_TEST(fn)

static void run_briefly(fut_loop_t *loop) {
  for (int i = 0; i < 4; i++)
    assert_int_equal(fut_loop_run_once(loop, 0), 0);
}

static fut_t *new_future(fut_loop_t *loop) {
  fut_t *f = NULL;
  assert_int_equal(fut_new(loop, &f), 0);
  return f;
}

/* ---- BaseFutureTests ----------------------------------------------------- */

/* BaseFutureTests.test_initial_state */
static void test_initial_state(void **state) {
  fut_t *f = new_future(*state);
  assert_false(fut_cancelled(f));
  assert_false(fut_done(f));
  assert_true(fut_cancel(f, NULL));
  assert_true(fut_cancelled(f));
  fut_unref(f);
  run_briefly(*state);
}

/* BaseFutureTests.test_constructor_without_loop: C takes the loop
 * explicitly; without one the constructor refuses (RuntimeError there). */
static void test_constructor_without_loop(void **state) {
  (void)state;
  fut_t *f = (fut_t *)&f;
  assert_int_equal(fut_new(NULL, &f), -EINVAL);
  assert_null(f);
}

static int make_in_task(void *arg) {
  fut_t **out = arg;
  return fut_new(fut_get_running_loop(), out);
}

/* BaseFutureTests.test_constructor_use_running_loop */
static void test_constructor_use_running_loop(void **state) {
  fut_loop_t *loop = *state;
  fut_t *made = NULL, *t;
  assert_int_equal(fut_create_task(loop, make_in_task, &made, NULL, &t), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  assert_ptr_equal(fut_get_loop(made), loop);
  fut_unref(made);
  fut_unref(t);
}

/* BaseFutureTests.test_future_cancel_message_getter */
static void test_future_cancel_message_getter(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f = new_future(loop);
  const char *msg = (const char *)&msg;
  assert_int_equal(fut_exception(f, &msg), FUT_E_INVALID_STATE);
  assert_null(msg); /* _cancel_message is None */
  fut_cancel(f, "my message");
  assert_int_equal(fut_loop_run_until_complete(loop, f), -ECANCELED);
  assert_int_equal(fut_exception(f, &msg), -ECANCELED);
  assert_string_equal(msg, "my message");
  fut_unref(f);
}

/* BaseFutureTests.test_cancel */
static void test_cancel(void **state) {
  fut_t *f = new_future(*state);
  assert_true(fut_cancel(f, NULL));
  assert_true(fut_cancelled(f));
  assert_true(fut_done(f));
  assert_int_equal(fut_result(f, NULL), -ECANCELED);
  assert_int_equal(fut_exception(f, NULL), -ECANCELED);
  assert_int_equal(fut_set_result(f, NULL, NULL), FUT_E_INVALID_STATE);
  assert_int_equal(fut_set_exception(f, -EIO, NULL), FUT_E_INVALID_STATE);
  assert_false(fut_cancel(f, NULL));
  fut_unref(f);
  run_briefly(*state);
}

/* BaseFutureTests.test_result */
static void test_result(void **state) {
  fut_t *f = new_future(*state);
  assert_int_equal(fut_result(f, NULL), FUT_E_INVALID_STATE);
  assert_int_equal(fut_set_result_i64(f, 42), 0);
  assert_false(fut_cancelled(f));
  assert_true(fut_done(f));
  int64_t v;
  assert_int_equal(fut_result_i64(f, &v), 0);
  assert_int_equal(v, 42);
  assert_int_equal(fut_exception(f, NULL), 0); /* None */
  assert_int_equal(fut_set_result(f, NULL, NULL), FUT_E_INVALID_STATE);
  assert_int_equal(fut_set_exception(f, -EIO, NULL), FUT_E_INVALID_STATE);
  assert_false(fut_cancel(f, NULL));
  fut_unref(f);
  run_briefly(*state);
}

/* BaseFutureTests.test_exception */
static void test_exception(void **state) {
  fut_t *f = new_future(*state);
  assert_int_equal(fut_exception(f, NULL), FUT_E_INVALID_STATE);
  assert_int_equal(fut_set_exception(f, -EIO, "boom"), 0);
  assert_false(fut_cancelled(f));
  assert_true(fut_done(f));
  assert_int_equal(fut_result(f, NULL), -EIO);
  const char *msg = NULL;
  assert_int_equal(fut_exception(f, &msg), -EIO);
  assert_string_equal(msg, "boom");
  assert_int_equal(fut_set_result(f, NULL, NULL), FUT_E_INVALID_STATE);
  assert_int_equal(fut_set_exception(f, -EIO, NULL), FUT_E_INVALID_STATE);
  assert_false(fut_cancel(f, NULL));
  fut_unref(f);
  run_briefly(*state);
}

struct twice {
  fut_t *f;
  int64_t x, y;
  int steps;
};

static int await_twice(void *arg) {
  struct twice *w = arg;
  w->steps++; /* 'A' */
  int err = fut_await_i64(w->f, &w->x);
  if (err)
    return err;
  w->steps++; /* 'B', x */
  if ((err = fut_await_i64(w->f, &w->y)))
    return err;
  w->steps++; /* 'C', y: the second await does not suspend */
  return 0;
}

/* BaseFutureTests.test_yield_from_twice: awaiting a future twice gives
 * its result twice; the second await of a done future does not wait. */
static void test_yield_from_twice(void **state) {
  fut_loop_t *loop = *state;
  struct twice w = {.f = new_future(loop)};
  fut_t *t;
  assert_int_equal(fut_create_task(loop, await_twice, &w, NULL, &t), 0);
  run_briefly(loop);
  assert_int_equal(w.steps, 1); /* suspended in the first await */
  assert_int_equal(fut_set_result_i64(w.f, 42), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  assert_int_equal(w.steps, 3);
  assert_int_equal(w.x, 42);
  assert_int_equal(w.y, 42);
  fut_unref(t);
  fut_unref(w.f);
}

/* The loop future of a concurrent future already in `how` state:
 * 0 result 10, 1 exception -EIO "runtime", 2 cancelled. */
static fut_t *copied(fut_loop_t *loop, int how) {
  fut_cfuture_t *cf;
  assert_int_equal(fut_cfuture_new(&cf), 0);
  if (how == 0)
    assert_int_equal(fut_cfuture_set_result_i64(cf, 10), 0);
  else if (how == 1)
    assert_int_equal(fut_cfuture_set_exception(cf, -EIO, "runtime"), 0);
  else
    assert_true(fut_cfuture_cancel(cf));
  fut_t *f;
  assert_int_equal(fut_wrap_future(loop, cf, &f), 0);
  fut_cfuture_unref(cf);
  return f;
}

/* BaseFutureTests.test_copy_state: asyncio's _copy_future_state is how
 * wrap_future moves a concurrent future's outcome to a loop future; the
 * traceback count at its end has no C counterpart. */
static void test_copy_state(void **state) {
  fut_loop_t *loop = *state;
  fut_t *newf = copied(loop, 0);
  fut_loop_run_until_complete(loop, newf);
  assert_true(fut_done(newf));
  int64_t v;
  assert_int_equal(fut_result_i64(newf, &v), 0);
  assert_int_equal(v, 10);
  fut_t *newf_exception = copied(loop, 1);
  fut_loop_run_until_complete(loop, newf_exception);
  assert_true(fut_done(newf_exception));
  assert_int_equal(fut_result(newf_exception, NULL), -EIO);
  fut_t *newf_cancelled = copied(loop, 2);
  fut_loop_run_until_complete(loop, newf_cancelled);
  assert_true(fut_cancelled(newf_cancelled));
  fut_unref(newf);
  fut_unref(newf_exception);
  fut_unref(newf_cancelled);
  run_briefly(loop);
}

/* BaseFutureTests.test_copy_state_from_concurrent_futures (the exception
 * type conversion at its end has no C counterpart: codes are not types) */
static void test_copy_state_from_concurrent_futures(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f = copied(loop, 0);
  fut_loop_run_until_complete(loop, f);
  int64_t v;
  assert_int_equal(fut_result_i64(f, &v), 0);
  assert_int_equal(v, 10);
  fut_unref(f);
  f = copied(loop, 1);
  fut_loop_run_until_complete(loop, f);
  const char *msg = NULL;
  assert_int_equal(fut_exception(f, &msg), -EIO);
  assert_string_equal(msg, "runtime");
  fut_unref(f);
  f = copied(loop, 2);
  fut_loop_run_until_complete(loop, f);
  assert_true(fut_cancelled(f));
  fut_unref(f);
  /* A destination already cancelled prevents the copy. */
  f = copied(loop, 0);
  assert_true(fut_cancel(f, NULL));
  run_briefly(loop);
  assert_true(fut_cancelled(f));
  fut_unref(f);
  run_briefly(loop);
}

/* ---- the "exception was never retrieved" logger -------------------------- */

/* Drops f's last reference after `prep`, runs briefly, returns how many
 * reports reached the exception handler. */
static int reports_after_drop(fut_loop_t *loop, fut_t *f) {
  fx_exc_t cap;
  fx_exc_capture(loop, &cap);
  fut_unref(f);
  run_briefly(loop);
  fut_loop_set_exception_handler(loop, NULL, NULL);
  return cap.count;
}

/* BaseFutureTests.test_tb_logger_abandoned */
static void test_tb_logger_abandoned(void **state) {
  fut_t *f = new_future(*state);
  assert_int_equal(reports_after_drop(*state, f), 0);
}

/* BaseFutureTests.test_tb_logger_not_called_after_cancel */
static void test_tb_logger_not_called_after_cancel(void **state) {
  fut_t *f = new_future(*state);
  assert_int_equal(fut_set_exception(f, -EIO, NULL), 0);
  assert_false(fut_cancel(f, NULL));
  assert_int_equal(reports_after_drop(*state, f), 0);
}

/* BaseFutureTests.test_tb_logger_result_unretrieved */
static void test_tb_logger_result_unretrieved(void **state) {
  fut_t *f = new_future(*state);
  assert_int_equal(fut_set_result_i64(f, 42), 0);
  assert_int_equal(reports_after_drop(*state, f), 0);
}

/* BaseFutureTests.test_tb_logger_result_retrieved */
static void test_tb_logger_result_retrieved(void **state) {
  fut_t *f = new_future(*state);
  assert_int_equal(fut_set_result_i64(f, 42), 0);
  assert_int_equal(fut_result(f, NULL), 0);
  assert_int_equal(reports_after_drop(*state, f), 0);
}

/* BaseFutureTests.test_tb_logger_exception_unretrieved */
static void test_tb_logger_exception_unretrieved(void **state) {
  fut_t *f = new_future(*state);
  assert_int_equal(fut_set_exception(f, -EIO, "boom"), 0);
  assert_int_equal(reports_after_drop(*state, f), 1);
}

/* BaseFutureTests.test_tb_logger_exception_retrieved */
static void test_tb_logger_exception_retrieved(void **state) {
  fut_t *f = new_future(*state);
  assert_int_equal(fut_set_exception(f, -EIO, "boom"), 0);
  assert_int_equal(fut_exception(f, NULL), -EIO);
  assert_int_equal(reports_after_drop(*state, f), 0);
}

/* BaseFutureTests.test_tb_logger_exception_result_retrieved */
static void test_tb_logger_exception_result_retrieved(void **state) {
  fut_t *f = new_future(*state);
  assert_int_equal(fut_set_exception(f, -EIO, "boom"), 0);
  assert_int_equal(fut_result(f, NULL), -EIO);
  assert_int_equal(reports_after_drop(*state, f), 0);
}

/* BaseFutureTests.check_future_exception_never_retrieved, for
 * test_future_exception_never_retrieved (debug false) and
 * test_future_exception_never_retrieved_debug (debug true): one report,
 * "Future exception was never retrieved", with the code. */
static void check_never_retrieved(fut_loop_t *loop, bool debug) {
  fut_loop_set_debug(loop, debug);
  fx_exc_t cap;
  fx_exc_capture(loop, &cap);
  fut_t *f = new_future(loop);
  assert_int_equal(fut_set_exception(f, -ENOMEM, NULL), 0); /* MemoryError */
  fut_unref(f);
  run_briefly(loop);
  assert_int_equal(cap.count, 1);
  assert_int_equal(cap.err, -ENOMEM);
  assert_non_null(strstr(cap.message, "exception was never retrieved"));
  fut_loop_set_exception_handler(loop, NULL, NULL);
  fut_loop_set_debug(loop, false);
}

/* BaseFutureTests.test_future_exception_never_retrieved */
static void test_future_exception_never_retrieved(void **state) {
  check_never_retrieved(*state, false);
}

/* BaseFutureTests.test_future_exception_never_retrieved_debug */
static void test_future_exception_never_retrieved_debug(void **state) {
  check_never_retrieved(*state, true);
}

/* BaseFutureTests.test_set_result_unless_cancelled: a cancelled future
 * refuses a result and stays cancelled. */
static void test_set_result_unless_cancelled(void **state) {
  fut_t *f = new_future(*state);
  assert_true(fut_cancel(f, NULL));
  assert_int_equal(fut_set_result_i64(f, 2), FUT_E_INVALID_STATE);
  assert_true(fut_cancelled(f));
  fut_unref(f);
  run_briefly(*state);
}

/* ---- wrap_future --------------------------------------------------------- */

struct oi {
  pthread_t ident;
};

static int run_oi(void *arg, fut_cfuture_t *cf) {
  struct oi *o = arg;
  o->ident = pthread_self();
  return fut_cfuture_set_result_bytes(cf, "oi", 2);
}

/* BaseFutureTests.test_wrap_future */
static void test_wrap_future(void **state) {
  fut_loop_t *loop = *state;
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(1, &ex), 0);
  struct oi o;
  fut_cfuture_t *f1;
  assert_int_equal(fut_executor_submit(ex, run_oi, &o, &f1), 0);
  fut_t *f2;
  assert_int_equal(fut_wrap_future(loop, f1, &f2), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, f2), 0);
  const void *d;
  size_t len;
  assert_int_equal(fut_result_bytes(f2, &d, &len), 0);
  assert_int_equal(len, 2);
  assert_memory_equal(d, "oi", 2);
  assert_false(pthread_equal(o.ident, pthread_self()));
  fut_unref(f2);
  fut_cfuture_unref(f1);
  assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_FOREVER), 0);
  fut_executor_free(ex);
}

/* BaseFutureTests.test_wrap_future_without_loop */
static void test_wrap_future_without_loop(void **state) {
  (void)state;
  fut_cfuture_t *f1;
  assert_int_equal(fut_cfuture_new(&f1), 0);
  fut_t *f2 = (fut_t *)&f2;
  assert_int_equal(fut_wrap_future(NULL, f1, &f2), -EINVAL);
  assert_null(f2);
  fut_cfuture_unref(f1);
}

struct wrap_in_task {
  fut_cfuture_t *cf;
  fut_t *f2;
};

static int wrap_running(void *arg) {
  struct wrap_in_task *w = arg;
  return fut_wrap_future(fut_get_running_loop(), w->cf, &w->f2);
}

/* BaseFutureTests.test_wrap_future_use_running_loop */
static void test_wrap_future_use_running_loop(void **state) {
  fut_loop_t *loop = *state;
  struct wrap_in_task w = {0};
  assert_int_equal(fut_cfuture_new(&w.cf), 0);
  fut_t *t;
  assert_int_equal(fut_create_task(loop, wrap_running, &w, NULL, &t), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  assert_ptr_equal(fut_get_loop(w.f2), loop);
  fut_cancel(w.f2, NULL);
  run_briefly(loop);
  fut_unref(w.f2);
  fut_unref(t);
  fut_cfuture_unref(w.cf);
}

/* BaseFutureTests.test_wrap_future_cancel */
static void test_wrap_future_cancel(void **state) {
  fut_loop_t *loop = *state;
  fut_cfuture_t *f1;
  assert_int_equal(fut_cfuture_new(&f1), 0);
  fut_t *f2;
  assert_int_equal(fut_wrap_future(loop, f1, &f2), 0);
  fut_cancel(f2, NULL);
  run_briefly(loop);
  assert_true(fut_cfuture_cancelled(f1));
  assert_true(fut_cancelled(f2));
  fut_unref(f2);
  fut_cfuture_unref(f1);
}

/* BaseFutureTests.test_wrap_future_cancel2 */
static void test_wrap_future_cancel2(void **state) {
  fut_loop_t *loop = *state;
  fut_cfuture_t *f1;
  assert_int_equal(fut_cfuture_new(&f1), 0);
  fut_t *f2;
  assert_int_equal(fut_wrap_future(loop, f1, &f2), 0);
  assert_int_equal(fut_cfuture_set_result_i64(f1, 42), 0);
  fut_cancel(f2, NULL);
  run_briefly(loop);
  assert_false(fut_cfuture_cancelled(f1));
  int64_t v;
  assert_int_equal(fut_cfuture_result_i64(f1, 0, &v), 0);
  assert_int_equal(v, 42);
  assert_true(fut_cancelled(f2));
  fut_unref(f2);
  fut_cfuture_unref(f1);
}

/* ---- BaseFutureDoneCallbackTests ----------------------------------------- */

typedef struct bag {
  int n;
  int v[16];
} bag_t;

static bag_t *the_bag;

/* One callback per value: (cb, arg) identifies a registration, as the
 * bag_appender closure does in Python. */
#define BAG_CB(k)                                                              \
  static void bag_##k(fut_t *f, void *arg) {                                   \
    (void)f;                                                                   \
    (void)arg;                                                                 \
    the_bag->v[the_bag->n++] = k;                                              \
  }
BAG_CB(1)
BAG_CB(2)
BAG_CB(3)
BAG_CB(17)
BAG_CB(42)
BAG_CB(100)

static void expect_bag(const bag_t *b, int n, const int *want) {
  assert_int_equal(b->n, n);
  for (int i = 0; i < n; i++)
    assert_int_equal(b->v[i], want[i]);
}

static void expect_result_foo(fut_t *f) {
  const void *d;
  size_t len;
  assert_int_equal(fut_result_bytes(f, &d, &len), 0);
  assert_int_equal(len, 3);
  assert_memory_equal(d, "foo", 3);
}

/* BaseFutureDoneCallbackTests.test_callbacks_remove_first_callback */
static void test_callbacks_remove_first_callback(void **state) {
  bag_t bag = {0};
  the_bag = &bag;
  fut_t *f = new_future(*state);
  fut_add_done_callback(f, bag_42, NULL);
  fut_add_done_callback(f, bag_17, NULL);
  fut_add_done_callback(f, bag_100, NULL);
  assert_int_equal(fut_remove_done_callback(f, bag_42, NULL), 1);
  assert_int_equal(fut_remove_done_callback(f, bag_42, NULL), 0);
  assert_int_equal(bag.n, 0);
  assert_int_equal(fut_set_result_bytes(f, "foo", 3), 0);
  run_briefly(*state);
  expect_bag(&bag, 2, (const int[]){17, 100});
  expect_result_foo(f);
  fut_unref(f);
}

/* BaseFutureDoneCallbackTests.test_callbacks_remove_first_and_second_callback
 */
static void test_callbacks_remove_first_and_second_callback(void **state) {
  bag_t bag = {0};
  the_bag = &bag;
  fut_t *f = new_future(*state);
  fut_add_done_callback(f, bag_42, NULL);
  fut_add_done_callback(f, bag_17, NULL);
  fut_add_done_callback(f, bag_100, NULL);
  fut_remove_done_callback(f, bag_42, NULL);
  fut_remove_done_callback(f, bag_17, NULL);
  fut_remove_done_callback(f, bag_42, NULL);
  assert_int_equal(bag.n, 0);
  assert_int_equal(fut_set_result_bytes(f, "foo", 3), 0);
  run_briefly(*state);
  expect_bag(&bag, 1, (const int[]){100});
  expect_result_foo(f);
  fut_unref(f);
}

/* BaseFutureDoneCallbackTests.test_callbacks_remove_third_callback */
static void test_callbacks_remove_third_callback(void **state) {
  bag_t bag = {0};
  the_bag = &bag;
  fut_t *f = new_future(*state);
  fut_add_done_callback(f, bag_42, NULL);
  fut_add_done_callback(f, bag_17, NULL);
  fut_add_done_callback(f, bag_100, NULL);
  fut_remove_done_callback(f, bag_100, NULL);
  fut_remove_done_callback(f, bag_100, NULL);
  assert_int_equal(bag.n, 0);
  assert_int_equal(fut_set_result_bytes(f, "foo", 3), 0);
  run_briefly(*state);
  expect_bag(&bag, 2, (const int[]){42, 17});
  expect_result_foo(f);
  fut_unref(f);
}

/* BaseFutureDoneCallbackTests.test_callbacks_invoked_on_set_result */
static void test_callbacks_invoked_on_set_result(void **state) {
  bag_t bag = {0};
  the_bag = &bag;
  fut_t *f = new_future(*state);
  fut_add_done_callback(f, bag_42, NULL);
  fut_add_done_callback(f, bag_17, NULL);
  assert_int_equal(bag.n, 0);
  assert_int_equal(fut_set_result_bytes(f, "foo", 3), 0);
  run_briefly(*state);
  expect_bag(&bag, 2, (const int[]){42, 17});
  expect_result_foo(f);
  fut_unref(f);
}

/* BaseFutureDoneCallbackTests.test_callbacks_invoked_on_set_exception */
static void test_callbacks_invoked_on_set_exception(void **state) {
  bag_t bag = {0};
  the_bag = &bag;
  fut_t *f = new_future(*state);
  fut_add_done_callback(f, bag_100, NULL);
  assert_int_equal(bag.n, 0);
  assert_int_equal(fut_set_exception(f, -EIO, NULL), 0);
  run_briefly(*state);
  expect_bag(&bag, 1, (const int[]){100});
  assert_int_equal(fut_exception(f, NULL), -EIO);
  fut_unref(f);
}

/* BaseFutureDoneCallbackTests.test_remove_done_callback */
static void test_remove_done_callback(void **state) {
  bag_t bag = {0};
  the_bag = &bag;
  fut_t *f = new_future(*state);
  fut_add_done_callback(f, bag_1, NULL);
  fut_add_done_callback(f, bag_2, NULL);
  assert_int_equal(fut_remove_done_callback(f, bag_2, NULL), 1);
  assert_int_equal(fut_remove_done_callback(f, bag_3, NULL), 0);
  fut_add_done_callback(f, bag_2, NULL);
  for (int i = 0; i < 5; i++)
    fut_add_done_callback(f, bag_1, NULL);
  assert_int_equal(fut_remove_done_callback(f, bag_1, NULL), 6);
  assert_int_equal(bag.n, 0);
  assert_int_equal(fut_set_result_bytes(f, "foo", 3), 0);
  run_briefly(*state);
  expect_bag(&bag, 1, (const int[]){2});
  expect_result_foo(f);
  fut_unref(f);
}

static int str_calls;
static void str_cb(fut_t *f, void *arg) {
  (void)f;
  (void)arg;
  str_calls++;
}
static void mut_cb(fut_t *f, void *arg) {
  (void)arg;
  /* Once done, registrations are scheduled and cannot be taken back. */
  assert_int_equal(fut_remove_done_callback(f, str_cb, NULL), 0);
}

/* BaseFutureDoneCallbackTests.test_schedule_callbacks_list_mutation_1: a
 * callback that removes later ones while the callbacks run crashes
 * nothing, and the removed ones still run (they were scheduled). */
static void test_schedule_callbacks_list_mutation_1(void **state) {
  str_calls = 0;
  fut_t *f = new_future(*state);
  fut_add_done_callback(f, mut_cb, NULL);
  fut_add_done_callback(f, str_cb, NULL);
  fut_add_done_callback(f, str_cb, NULL);
  assert_int_equal(fut_set_result_i64(f, 1), 0);
  run_briefly(*state);
  assert_int_equal(str_calls, 2);
  fut_unref(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_initial_state),
      T(test_constructor_without_loop),
      T(test_constructor_use_running_loop),
      T(test_future_cancel_message_getter),
      T(test_cancel),
      T(test_result),
      T(test_exception),
      T(test_yield_from_twice),
      T(test_copy_state),
      T(test_copy_state_from_concurrent_futures),
      T(test_tb_logger_abandoned),
      T(test_tb_logger_not_called_after_cancel),
      T(test_tb_logger_result_unretrieved),
      T(test_tb_logger_result_retrieved),
      T(test_tb_logger_exception_unretrieved),
      T(test_tb_logger_exception_retrieved),
      T(test_tb_logger_exception_result_retrieved),
      T(test_future_exception_never_retrieved),
      T(test_future_exception_never_retrieved_debug),
      T(test_set_result_unless_cancelled),
      T(test_wrap_future),
      T(test_wrap_future_without_loop),
      T(test_wrap_future_use_running_loop),
      T(test_wrap_future_cancel),
      T(test_wrap_future_cancel2),
      T(test_callbacks_remove_first_callback),
      T(test_callbacks_remove_first_and_second_callback),
      T(test_callbacks_remove_third_callback),
      T(test_callbacks_invoked_on_set_result),
      T(test_callbacks_invoked_on_set_exception),
      T(test_remove_done_callback),
      T(test_schedule_callbacks_list_mutation_1),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
