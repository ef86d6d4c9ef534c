/* Timeout blocks inside a task (asyncio.timeout, 3.12): expiry turns the
 * block's cancellation into -ETIMEDOUT, rescheduling, an outer cancel is
 * never swallowed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "future.h"
#include "task_helpers.h"

struct tblock {
  uint64_t delay;
  uint64_t sleep_ms;
  int rc;
  bool expired;
  bool reschedule_later;
};

static int timeout_block(void *arg) {
  struct tblock *b = arg;
  fut_timeout_t *t;
  int rc = fut_timeout_enter(b->delay, &t);
  if (rc)
    return rc;
  if (b->reschedule_later)
    assert_int_equal(
        fut_timeout_reschedule(t, fut_loop_time(NULL) + FUT_SEC(100)), 0);
  rc = fut_sleep(FUT_MS(b->sleep_ms));
  b->expired = fut_timeout_expired(t);
  b->rc = fut_timeout_exit(t, rc);
  return b->rc;
}

static void test_timeout_expires_with_etimedout(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  struct tblock b = {.delay = FUT_MS(2), .sleep_ms = 100000};
  fut_t *t = spawn(loop, timeout_block, &b);
  assert_int_equal(fut_loop_run_until_complete(loop, t), -ETIMEDOUT);
  assert_true(b.expired);
  assert_int_equal(fut_task_cancelling(t), 0);
  fut_unref(t);
  end_loop(loop);
}

static void test_timeout_not_reached_passes_through(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  struct tblock b = {.delay = FUT_SEC(100), .sleep_ms = 1};
  fut_t *t = spawn(loop, timeout_block, &b);
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  assert_false(b.expired);
  fut_unref(t);
  end_loop(loop);
}

static void test_timeout_reschedule_extends_deadline(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  struct tblock b = {
      .delay = FUT_MS(1), .sleep_ms = 5, .reschedule_later = true};
  fut_t *t = spawn(loop, timeout_block, &b);
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  assert_false(b.expired);
  fut_unref(t);
  end_loop(loop);
}

static int timeout_and_outer_cancel(void *arg) {
  int *rc = arg;
  fut_timeout_t *t;
  /* Deadline 0: it fires on the next iteration. */
  assert_int_equal(fut_timeout_enter(0, &t), 0);
  fut_t *self = fut_current_task(NULL);
  fut_cancel(self, "outer"); /* a cancel from elsewhere, too */
  int err = fut_sleep(FUT_SEC(100));
  assert_true(fut_timeout_expired(t));
  *rc = fut_timeout_exit(t, err);
  assert_int_equal(fut_task_cancelling(self), 1);
  return *rc;
}

static void test_timeout_outer_cancel_not_swallowed(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  int rc = 0;
  fut_t *t = spawn(loop, timeout_and_outer_cancel, &rc);
  assert_int_equal(fut_loop_run_until_complete(loop, t), -ECANCELED);
  assert_int_equal(rc, -ECANCELED);
  fut_unref(t);
  end_loop(loop);
}

static void test_timeout_outside_task_and_bad_arguments(void **state) {
  (void)state;
  fut_timeout_t *t = (fut_timeout_t *)1;
  assert_int_equal(fut_timeout_enter(1, &t), FUT_E_NOT_IN_TASK);
  assert_null(t);
  assert_int_equal(fut_timeout_enter(1, NULL), -EINVAL);
  assert_int_equal(fut_timeout_reschedule(NULL, 1), -EINVAL);
  assert_int_equal(fut_timeout_exit(NULL, -EIO), -EIO);
  assert_int_equal(fut_timeout_when(NULL), UINT64_MAX);
  assert_false(fut_timeout_expired(NULL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_timeout_expires_with_etimedout),
      cmocka_unit_test(test_timeout_not_reached_passes_through),
      cmocka_unit_test(test_timeout_reschedule_extends_deadline),
      cmocka_unit_test(test_timeout_outer_cancel_not_swallowed),
      cmocka_unit_test(test_timeout_outside_task_and_bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
