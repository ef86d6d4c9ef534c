/* CPython's Lib/test/test_concurrent_futures/util.py for the C ports: the
 * premade futures (PENDING_FUTURE, RUNNING_FUTURE,
 * CANCELLED_AND_NOTIFIED_FUTURE, EXCEPTION_FUTURE, SUCCESSFUL_FUTURE) and
 * the mul job both test files submit. */
#ifndef FUT_TESTS_CPYTHON_CF_UTIL_H
#define FUT_TESTS_CPYTHON_CF_UTIL_H

#include "fixture.h"

static inline fut_cfuture_t *create_future(void) {
  fut_cfuture_t *cf = NULL;
  assert_int_equal(fut_cfuture_new(&cf), 0);
  return cf;
}

static inline fut_cfuture_t *pending_future(void) {
  return create_future();
}

static inline fut_cfuture_t *running_future(void) {
  fut_cfuture_t *cf = create_future();
  assert_int_equal(fut_cfuture_set_running_or_notify_cancel(cf), 1);
  return cf;
}

static inline fut_cfuture_t *cancelled_and_notified_future(void) {
  fut_cfuture_t *cf = create_future();
  assert_true(fut_cfuture_cancel(cf));
  assert_int_equal(fut_cfuture_set_running_or_notify_cancel(cf), 0);
  return cf;
}

static inline fut_cfuture_t *exception_future(void) {
  fut_cfuture_t *cf = create_future();
  assert_int_equal(fut_cfuture_set_exception(cf, -EIO, "OSError"), 0);
  return cf;
}

static inline fut_cfuture_t *successful_future(void) {
  fut_cfuture_t *cf = create_future();
  assert_int_equal(fut_cfuture_set_result_i64(cf, 42), 0);
  return cf;
}

/* mul(x, y) */
struct mul {
  int64_t x, y;
};

static inline int mul(void *arg, fut_cfuture_t *cf) {
  struct mul *m = arg;
  return fut_cfuture_set_result_i64(cf, m->x * m->y);
}

#endif
