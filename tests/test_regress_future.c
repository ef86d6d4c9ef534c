/* Regression tests from the adversarial review: futures and cfutures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "loop/internal.h"

static fut_loop_t *new_loop(void) {
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  return loop;
}

static void end_loop(fut_loop_t *loop) {
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.live_futures, 0);
  assert_int_equal(st.live_handles, 0);
  assert_int_equal(fut_loop_free(loop), 0);
}

/* Bug: fut_exception told "pending" from "failed" by the code alone, so an
 * exception whose own code is FUT_E_INVALID_STATE lost its message (and
 * so did a gather or wait_for copying it). */
static void test_future_exception_invalid_state_code_keeps_message(
    void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *f;
  assert_int_equal(fut_new(loop, &f), 0);
  const char *msg = "x";
  assert_int_equal(fut_exception(f, &msg), FUT_E_INVALID_STATE);
  assert_null(msg);
  assert_int_equal(fut_set_exception(f, FUT_E_INVALID_STATE, "bad %s", "io"),
                   0);
  assert_int_equal(fut_exception(f, &msg), FUT_E_INVALID_STATE);
  assert_non_null(msg);
  assert_string_equal(msg, "bad io");
  fut_unref(f);
  end_loop(loop);
}

/* Bug: fut_cfuture_exception told "timed out waiting" from "failed" by the
 * code alone, so a job that failed with -ETIMEDOUT (a connect timeout, say)
 * lost its message. */
static void test_cfuture_exception_etimedout_code_keeps_message(
    void **state) {
  (void)state;
  fut_cfuture_t *cf;
  assert_int_equal(fut_cfuture_new(&cf), 0);
  const char *msg = "x";
  assert_int_equal(fut_cfuture_exception(cf, 0, &msg), -ETIMEDOUT);
  assert_null(msg);
  assert_int_equal(
      fut_cfuture_set_exception(cf, -ETIMEDOUT, "connect to %s", "db"), 0);
  assert_int_equal(fut_cfuture_exception(cf, 0, &msg), -ETIMEDOUT);
  assert_non_null(msg);
  assert_string_equal(msg, "connect to db");
  fut_cfuture_unref(cf);
}

/* Bug: the accessors that return no error code dereferenced their
 * argument, so a NULL (the out of a failed constructor, say) crashed
 * instead of reading as "nothing there". */
static void test_accessors_accept_null(void **state) {
  (void)state;
  assert_int_equal(fut_state(NULL), FUT_PENDING);
  assert_false(fut_done(NULL));
  assert_false(fut_cancelled(NULL));
  assert_null(fut_get_loop(NULL));
  assert_int_equal(fut_cfuture_state(NULL), FUT_CFUTURE_PENDING);
  assert_true(fut_loop_is_closed(NULL));
  assert_false(fut_loop_get_debug(NULL));
  fut_loop_set_debug(NULL, true);
  fut_loop_set_slow_callback_duration(NULL, 1);
  fut_loop_set_exception_handler(NULL, NULL, NULL);
  fut_exception_handler_cb cb = (fut_exception_handler_cb)1;
  void *arg = &cb;
  fut_loop_get_exception_handler(NULL, &cb, &arg);
  assert_null(cb);
  assert_null(arg);
  fut_loop_stats_t st;
  memset(&st, 0xff, sizeof st);
  fut_loop_stats(NULL, &st);
  assert_int_equal(st.live_futures, 0);
  assert_int_equal(st.ready, 0);
  assert_false(fut_loop_is_running(NULL));
  assert_int_equal(fut_loop_backend_fd(NULL), -EINVAL);
  assert_int_equal(fut_loop_backend_timeout(NULL), UINT64_MAX);
  assert_int_equal(fut_loop_remove_reader(NULL, 0), -EINVAL);
  assert_int_equal(fut_loop_remove_writer(NULL, 0), -EINVAL);
  fut_loop_call_exception_handler(NULL, NULL);
  fut_loop_default_exception_handler(NULL, NULL, NULL);
  fut_loop_t *loop = new_loop();
  fut_loop_stats(loop, NULL);
  fut_loop_call_exception_handler(loop, NULL);
  end_loop(loop);
}

/* Bug: the byte-result setters allocated len + 1 bytes, which wraps to 0
 * for len == SIZE_MAX: a 1-byte buffer was then written at [SIZE_MAX] and
 * memcpy'd into (heap corruption, a crash) instead of -ENOMEM. */
static int return_huge_bytes(void *arg) {
  return fut_task_return_bytes(arg, SIZE_MAX) == -ENOMEM ? 0 : -EIO;
}

static void test_bytes_setters_reject_size_max(void **state) {
  (void)state;
  static const char data[16] = "abc";
  fut_loop_t *loop = new_loop();
  fut_t *f;
  assert_int_equal(fut_new(loop, &f), 0);
  assert_int_equal(fut_set_result_bytes(f, data, SIZE_MAX), -ENOMEM);
  assert_false(fut_done(f));
  fut_unref(f);
  fut_t *t;
  assert_int_equal(
      fut_create_task(loop, return_huge_bytes, (void *)data, NULL, &t), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  fut_unref(t);
  end_loop(loop);
  fut_cfuture_t *cf;
  assert_int_equal(fut_cfuture_new(&cf), 0);
  assert_int_equal(fut_cfuture_set_result_bytes(cf, data, SIZE_MAX),
                   -ENOMEM);
  assert_false(fut_cfuture_done(cf));
  fut_cfuture_unref(cf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(
          test_future_exception_invalid_state_code_keeps_message),
      cmocka_unit_test(test_cfuture_exception_etimedout_code_keeps_message),
      cmocka_unit_test(test_accessors_accept_null),
      cmocka_unit_test(test_bytes_setters_reject_size_max),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
