/* Regression tests from the adversarial review of the combinators
 * (combine.c, timeout.c): each names the bug it pins down. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "loop/internal.h"
#include "task_helpers.h"

static void drain(fut_loop_t *loop) {
  for (int i = 0; i < 4; i++)
    fut_loop_run_once(loop, 0);
}

static void noop_cb(fut_t *f, void *arg) {
  (void)f;
  (void)arg;
}

typedef int (*combine_fn)(fut_loop_t *loop, fut_t *const *fs, size_t n,
                          fut_t **out);

static int do_gather(fut_loop_t *loop, fut_t *const *fs, size_t n,
                     fut_t **out) {
  return fut_gather(loop, fs, n, 0, out);
}

static int do_wait(fut_loop_t *loop, fut_t *const *fs, size_t n,
                   fut_t **out) {
  return fut_wait(loop, fs, n, FUT_WAIT_ALL_COMPLETED, UINT64_MAX, out);
}

static int do_as_completed(fut_loop_t *loop, fut_t *const *fs, size_t n,
                           fut_t **out) {
  return fut_as_completed(loop, fs, n, UINT64_MAX, out);
}

/* The last child already has a done callback, so registering on it needs
 * an allocation; failing it makes the combinator unwind the registrations
 * it made on the children before.  `dup` repeats the first child. */
static void unwind_case(combine_fn fn, bool dup) {
  fut_loop_t *loop = new_loop();
  fut_t *a = newf(loop), *b = newf(loop);
  assert_int_equal(fut_add_done_callback(b, noop_cb, NULL), 0);
  fut_t *fs[3] = {a, dup ? a : b, b};
  size_t n = dup ? 3 : 2;
  /* Create the loop's combinator list first, so that the k-th allocation
   * of fn is the same at every attempt. */
  fut_t *empty;
  assert_int_equal(fut_gather(loop, NULL, 0, 0, &empty), 0);
  fut_unref(empty);
  bool failed = false;
  fut_t *c = NULL;
  for (long k = 1; k <= 8; k++) {
    fut__alloc_fail_after(k, false);
    int rc = fn(loop, fs, n, &c);
    fut__alloc_fail_after(0, false);
    if (rc == 0)
      break;
    assert_int_equal(rc, -ENOMEM);
    assert_null(c);
    failed = true;
  }
  assert_true(failed);
  assert_non_null(c);
  drain(loop);
  assert_int_equal(fut_remove_done_callback(b, noop_cb, NULL), 1);
  fut_cancel(a, NULL);
  fut_cancel(b, NULL);
  drain(loop);
  assert_true(fut_done(c));
  (void)fut_exception(c, NULL);
  fut_unref(c);
  drain(loop);
  fut_unref(a);
  fut_unref(b);
  end_loop(loop);
}

/* Bug: gather's unwind removed its registrations from earlier children but
 * kept the reference each registration held on the gather: it leaked. */
static void test_gather_registration_failure_leaks_nothing(void **state) {
  (void)state;
  unwind_case(do_gather, false);
}

static void test_gather_registration_failure_duplicate_child(void **state) {
  (void)state;
  unwind_case(do_gather, true);
}

/* Bug: wait and as_completed dropped one reference per child whose
 * registrations were removed, but a child listed twice has two. */
static void test_wait_registration_failure_duplicate_child(void **state) {
  (void)state;
  unwind_case(do_wait, true);
}

static void
test_as_completed_registration_failure_duplicate_child(void **state) {
  (void)state;
  unwind_case(do_as_completed, true);
}

static void count_reports(fut_loop_t *loop, const fut_exception_ctx_t *ctx,
                          void *arg) {
  (void)loop;
  (void)ctx;
  ++*(int *)arg;
}

/* A failed gather whose registration on a done (failed) child could not be
 * taken back must not later fail an orphan gather nobody sees: that
 * reported a spurious "exception was never retrieved". */
static void test_gather_registration_failure_done_child_is_silent(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  int reports = 0;
  fut_loop_set_exception_handler(loop, count_reports, &reports);
  fut_t *a = newf(loop), *b = newf(loop);
  assert_int_equal(fut_set_exception(a, -EIO, NULL), 0);
  assert_int_equal(fut_add_done_callback(b, noop_cb, NULL), 0);
  fut_t *empty;
  assert_int_equal(fut_gather(loop, NULL, 0, 0, &empty), 0);
  fut_unref(empty);
  fut_t *fs[2] = {a, b}, *g = NULL;
  /* 1: the gather, 2: the vector of b's registrations. */
  fut__alloc_fail_after(2, false);
  assert_int_equal(fut_gather(loop, fs, 2, 0, &g), -ENOMEM);
  fut__alloc_fail_after(0, false);
  assert_null(g);
  drain(loop);
  assert_int_equal(reports, 0);
  assert_int_equal(fut_remove_done_callback(b, noop_cb, NULL), 1);
  assert_int_equal(fut_exception(a, NULL), -EIO);
  fut_unref(a);
  fut_unref(b);
  drain(loop);
  assert_int_equal(reports, 0);
  end_loop(loop);
}

/* Bug: a combinator registering on a child that is done with its callback
 * dispatch already queued gets a ready-queue entry of its own; closing the
 * loop before it ran dropped the entry but not the reference it held on
 * the combinator, which leaked with its children. */
static void test_combine_loop_close_releases_late_registrations(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *a = newf(loop);
  assert_int_equal(fut_add_done_callback(a, noop_cb, NULL), 0);
  assert_int_equal(fut_set_result(a, NULL, NULL), 0);
  fut_t *c[6];
  assert_int_equal(fut_gather(loop, &a, 1, 0, &c[0]), 0);
  assert_int_equal(fut_wait(loop, &a, 1, FUT_WAIT_ALL_COMPLETED, FUT_SEC(5),
                            &c[1]), 0);
  assert_int_equal(fut_wait_for(a, FUT_SEC(5), &c[2]), 0);
  assert_int_equal(fut_as_completed(loop, &a, 1, FUT_SEC(5), &c[3]), 0);
  assert_int_equal(fut_then(a, NULL, NULL, &c[4]), 0);
  assert_int_equal(fut_gather(loop, &a, 1, 0, &c[5]), 0);
  for (int i = 0; i < 5; i++)
    fut_unref(c[i]);
  fut_unref(a);
  assert_int_equal(fut_loop_close(loop), 0);
  assert_false(fut_done(c[5]));
  fut_unref(c[5]);
  end_loop(loop);
}

static void run_until_done(fut_loop_t *loop, fut_t *f) {
  for (int i = 0; i < 100000 && !fut_done(f); i++)
    assert_int_equal(fut_loop_run_once(loop, UINT64_MAX), 0);
  assert_true(fut_done(f));
}

/* Bug: a child finishing after as_completed's timeout was still handed to
 * the next futures asked for later, as a success; asyncio stops listening
 * at the timeout, and every next after the children done before it fails
 * with TimeoutError. */
static void test_as_completed_child_done_after_timeout_is_not_served(
    void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *fs[3] = {newf(loop), newf(loop), newf(loop)};
  fut_t *ac;
  assert_int_equal(fut_as_completed(loop, fs, 3, FUT_MS(2), &ac), 0);
  assert_int_equal(fut_set_result(fs[0], NULL, NULL), 0);
  run_until_done(loop, ac);
  assert_int_equal(fut_exception(ac, NULL), -ETIMEDOUT);
  /* After the timeout: fs[1] finishes before anyone asks for a next. */
  assert_int_equal(fut_set_result(fs[1], NULL, NULL), 0);
  drain(loop);
  fut_t *nx[3];
  for (int i = 0; i < 3; i++) {
    assert_int_equal(fut_as_completed_next(ac, &nx[i]), 0);
    drain(loop);
    assert_true(fut_done(nx[i]));
  }
  void *got = NULL;
  assert_int_equal(fut_result(nx[0], &got), 0);
  assert_ptr_equal(got, fs[0]);
  assert_int_equal(fut_result(nx[1], NULL), -ETIMEDOUT);
  assert_int_equal(fut_result(nx[2], NULL), -ETIMEDOUT);
  for (int i = 0; i < 3; i++)
    fut_unref(nx[i]);
  fut_cancel(fs[2], NULL);
  drain(loop);
  fut_unref(ac);
  for (int i = 0; i < 3; i++)
    fut_unref(fs[i]);
  drain(loop);
  end_loop(loop);
}

/* Bug: a combinator on a closed loop failed with FUT_E_CLOSED but first
 * created the loop's task state, which nothing freed any more (8 KiB
 * leaked per loop). */
static void test_combine_on_closed_loop_allocates_nothing(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *f = newf(loop);
  assert_int_equal(fut_loop_close(loop), 0);
  fut_t *c = (fut_t *)1;
  assert_int_equal(fut_gather(loop, &f, 1, 0, &c), FUT_E_CLOSED);
  assert_null(c);
  assert_int_equal(
      fut_wait(loop, &f, 1, FUT_WAIT_ALL_COMPLETED, UINT64_MAX, &c), FUT_E_CLOSED);
  assert_int_equal(fut_as_completed(loop, &f, 1, UINT64_MAX, &c),
                   FUT_E_CLOSED);
  assert_int_equal(fut_wait_for(f, FUT_SEC(1), &c), FUT_E_CLOSED);
  assert_int_equal(fut_shield(f, &c), FUT_E_CLOSED);
  assert_int_equal(fut_then(f, NULL, NULL, &c), FUT_E_CLOSED);
  for (int i = 0; i < FUT__LOOP_PARTS; i++)
    assert_null(loop->parts[i]); /* no layer made per-loop state */
  fut_unref(f);
  end_loop(loop);
}

/* Bug: a cancelled gather with FUT_GATHER_RETURN_EXCEPTIONS ended
 * cancelled without the cancel message; asyncio raises the last child's
 * cancellation (CancelledError('bye')) there, as without the flag. */
static void test_gather_return_exceptions_cancel_keeps_message(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *fs[2] = {newf(loop), newf(loop)}, *g;
  assert_int_equal(
      fut_gather(loop, fs, 2, FUT_GATHER_RETURN_EXCEPTIONS, &g), 0);
  assert_true(fut_cancel(g, "bye"));
  for (int i = 0; i < 10 && !fut_done(g); i++)
    assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_true(fut_cancelled(g));
  const char *msg = NULL;
  assert_int_equal(fut_exception(g, &msg), -ECANCELED);
  assert_non_null(msg);
  assert_string_equal(msg, "bye");
  fut_unref(g);
  fut_unref(fs[0]);
  fut_unref(fs[1]);
  drain(loop);
  end_loop(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gather_registration_failure_leaks_nothing),
      cmocka_unit_test(test_gather_registration_failure_duplicate_child),
      cmocka_unit_test(test_wait_registration_failure_duplicate_child),
      cmocka_unit_test(
          test_as_completed_registration_failure_duplicate_child),
      cmocka_unit_test(test_gather_registration_failure_done_child_is_silent),
      cmocka_unit_test(test_combine_loop_close_releases_late_registrations),
      cmocka_unit_test(
          test_as_completed_child_done_after_timeout_is_not_served),
      cmocka_unit_test(test_combine_on_closed_loop_allocates_nothing),
      cmocka_unit_test(test_gather_return_exceptions_cancel_keeps_message),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
