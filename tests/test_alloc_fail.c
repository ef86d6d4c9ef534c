/* Allocation failures (fut__alloc_fail_after): every failing call returns
 * -ENOMEM, leaves no half state and leaks nothing (ASan / valgrind). */
#include "fixture.h"

#include <fcntl.h>
#include <unistd.h>

#include "loop/internal.h"

static int teardown(void **state) {
  fut__alloc_fail_after(0, false);
  return fx_loop_teardown(state);
}

#define AF_TEST(fn) cmocka_unit_test_setup_teardown(fn, fx_loop_setup, teardown)

static void stats(fut_loop_t *loop, fut_loop_stats_t *st) {
  fut_loop_stats(loop, st);
}

static void test_alloc_fail_loop_new(void **state) {
  (void)state;
  int fds0 = fx_open_fds();
  int failures = 0;
  for (long n = 1; n < 64; n++) {
    fut_loop_t *loop = (fut_loop_t *)1;
    fut__alloc_fail_after(n, false);
    int err = fut_loop_new(&loop);
    fut__alloc_fail_after(0, false);
    if (err == 0) {
      assert_non_null(loop);
      fx_loop_free_clean(loop);
      break;
    }
    assert_int_equal(err, -ENOMEM);
    assert_null(loop);
    assert_int_equal(fx_open_fds(), fds0); /* no fd leaked */
    failures++;
  }
  assert_true(failures >= 2);
  /* Sticky: everything fails. */
  fut_loop_t *loop;
  fut__alloc_fail_after(1, true);
  assert_int_equal(fut_loop_new(&loop), -ENOMEM);
  fut__alloc_fail_after(0, false);
  assert_int_equal(fx_open_fds(), fds0);
}

static void test_alloc_fail_fut_new(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f = (fut_t *)1;
  fut__alloc_fail_after(1, false);
  assert_int_equal(fut_new(loop, &f), -ENOMEM);
  fut__alloc_fail_after(0, false);
  assert_null(f);
  fut_loop_stats_t st;
  stats(loop, &st);
  assert_int_equal(st.live_futures, 0);
  assert_int_equal(fut_new(loop, &f), 0);
  fut_unref(f);
}

static void test_alloc_fail_call_soon_with_handle(void **state) {
  fut_loop_t *loop = *state;
  fut_handle_t *h = (fut_handle_t *)1;
  fut_loop_stats_t st;
  /* The handle itself. */
  fut__alloc_fail_after(1, false);
  assert_int_equal(fut_loop_call_soon(loop, fx_fail_cb, NULL, &h), -ENOMEM);
  fut__alloc_fail_after(0, false);
  stats(loop, &st);
  assert_int_equal(st.ready, 0);
  assert_int_equal(st.live_handles, 0);
  /* The ready queue's growth: fill it first (handles are now cached). */
  int ran = 0;
  assert_int_equal(fut_loop_call_soon(loop, fx_count_cb, &ran, &h), 0);
  fut_handle_unref(h);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  for (;;) {
    stats(loop, &st);
    if (st.ready == loop->ready.mask + 1)
      break;
    assert_int_equal(fut_loop_call_soon(loop, fx_count_cb, &ran, NULL), 0);
  }
  size_t full = st.ready;
  fut__alloc_fail_after(1, true);
  assert_int_equal(fut_loop_call_soon(loop, fx_fail_cb, NULL, &h), -ENOMEM);
  assert_int_equal(fut_loop_call_soon(loop, fx_fail_cb, NULL, NULL), -ENOMEM);
  fut__alloc_fail_after(0, false);
  stats(loop, &st);
  assert_int_equal(st.ready, full);
  assert_int_equal(st.live_handles, 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(ran, (int)full + 1);
}

static void test_alloc_fail_call_later(void **state) {
  fut_loop_t *loop = *state;
  fut_handle_t *h = NULL;
  fut_loop_stats_t st;
  int failures = 0;
  /* 1: the handle chunk, 2: the timer heap. */
  for (long n = 1; n < 16; n++) {
    fut__alloc_fail_after(n, false);
    int err = fut_loop_call_later(loop, FUT_MS(1), fx_fail_cb, NULL, &h);
    fut__alloc_fail_after(0, false);
    if (err == 0)
      break;
    assert_int_equal(err, -ENOMEM);
    stats(loop, &st);
    assert_int_equal(st.pending_timers, 0);
    assert_int_equal(st.live_handles, 0);
    failures++;
  }
  assert_int_equal(failures, 2);
  fut_handle_cancel(h);
  fut_handle_unref(h);
}

static void test_alloc_fail_add_reader(void **state) {
  fut_loop_t *loop = *state;
  int fds[2];
  assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
  assert_int_equal(write(fds[1], "x", 1), 1);
  fut_loop_stats_t st;
  int failures = 0, ran = 0;
  /* 1: the fd table, 2: the handle chunk. */
  for (long n = 1; n < 16; n++) {
    fut__alloc_fail_after(n, false);
    int err = fut_loop_add_reader(loop, fds[0], fx_count_cb, &ran);
    fut__alloc_fail_after(0, false);
    if (err == 0)
      break;
    assert_int_equal(err, -ENOMEM);
    stats(loop, &st);
    assert_int_equal(st.watchers, 0);
    assert_int_equal(st.live_handles, 0);
    /* Nothing was registered with epoll either. */
    assert_int_equal(fut_loop_run_once(loop, 0), 0);
    assert_int_equal(ran, 0);
    failures++;
  }
  assert_int_equal(failures, 2);
  assert_true(fx_run_until_flag(loop, &ran));
  assert_int_equal(fut_loop_remove_reader(loop, fds[0]), 1);
  close(fds[0]);
  close(fds[1]);
}

static void test_alloc_fail_set_result_bytes(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  assert_int_equal(fut_new(loop, &f), 0);
  fut__alloc_fail_after(1, false);
  assert_int_equal(fut_set_result_bytes(f, "abc", 3), -ENOMEM);
  fut__alloc_fail_after(0, false);
  assert_false(fut_done(f));
  assert_int_equal(fut_set_result_bytes(f, "abc", 3), 0);
  const void *d;
  size_t n;
  assert_int_equal(fut_result_bytes(f, &d, &n), 0);
  assert_int_equal(n, 3);
  fut_unref(f);
}

static void test_alloc_fail_set_exception_message(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  assert_int_equal(fut_new(loop, &f), 0);
  fut__alloc_fail_after(1, true);
  assert_int_equal(fut_set_exception(f, -EIO, "with %s", "message"), -ENOMEM);
  assert_false(fut_done(f));
  /* Without a message nothing is allocated. */
  assert_int_equal(fut_set_exception(f, -EIO, NULL), 0);
  fut__alloc_fail_after(0, false);
  assert_int_equal(fut_result(f, NULL), -EIO);
  fut_unref(f);
}

static void test_alloc_fail_cancel_message_still_cancels(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  assert_int_equal(fut_new(loop, &f), 0);
  fut__alloc_fail_after(1, true);
  assert_true(fut_cancel(f, "message lost"));
  fut__alloc_fail_after(0, false);
  const char *msg = "x";
  assert_int_equal(fut_exception(f, &msg), -ECANCELED);
  assert_null(msg);
  fut_unref(f);
}

static void test_alloc_fail_add_done_callback_second(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  int first = 0, second = 0;
  assert_int_equal(fut_new(loop, &f), 0);
  fut__alloc_fail_after(1, true);
  /* The first registration is stored inline: no allocation. */
  assert_int_equal(fut_add_done_callback(f, fx_done_count_cb, &first), 0);
  assert_int_equal(fut_add_done_callback(f, fx_done_count_cb, &second),
                   -ENOMEM);
  fut__alloc_fail_after(0, false);
  assert_int_equal(fut_remove_done_callback(f, fx_done_count_cb, &second), 0);
  assert_int_equal(fut_set_result(f, NULL, NULL), 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(first, 1);
  assert_int_equal(second, 0);
  /* On a done future whose dispatch is queued (a registration of its
   * own), failure schedules nothing. */
  assert_int_equal(fut_add_done_callback(f, fx_done_count_cb, &first), 0);
  fut__alloc_fail_after(1, true);
  assert_int_equal(fut_add_done_callback(f, fx_done_count_cb, &second),
                   -ENOMEM);
  fut__alloc_fail_after(0, false);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(first, 2);
  assert_int_equal(second, 0);
  fut_unref(f);
}

/* Completing a future whose dispatch needs the ready queue to grow: the
 * failure leaves it pending and the result is not taken. */
static int dtor_calls;
static void counting_dtor(void *p) {
  (void)p;
  dtor_calls++;
}

static void test_alloc_fail_set_result_ring_full(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  int ran = 0, cb = 0;
  static int payload;
  assert_int_equal(fut_new(loop, &f), 0);
  assert_int_equal(fut_add_done_callback(f, fx_done_count_cb, &cb), 0);
  fut_loop_stats_t st;
  for (;;) {
    stats(loop, &st);
    if (st.ready == loop->ready.mask + 1)
      break;
    assert_int_equal(fut_loop_call_soon(loop, fx_count_cb, &ran, NULL), 0);
  }
  dtor_calls = 0;
  fut__alloc_fail_after(1, true);
  assert_int_equal(fut_set_result(f, &payload, counting_dtor), -ENOMEM);
  assert_false(fut_done(f));
  assert_false(fut_cancel(f, NULL)); /* cannot schedule either */
  fut__alloc_fail_after(0, false);
  assert_false(fut_done(f));
  assert_int_equal(dtor_calls, 0);
  assert_int_equal(fut_set_result(f, &payload, counting_dtor), 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  if (!cb)
    assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(cb, 1);
  fut_unref(f);
  assert_int_equal(dtor_calls, 1);
}

static void test_alloc_fail_call_soon_threadsafe(void **state) {
  fut_loop_t *loop = *state;
  fut__alloc_fail_after(1, false);
  assert_int_equal(
      fx_call_soon_threadsafe_from_thread(loop, fx_fail_cb, NULL), -ENOMEM);
  fut__alloc_fail_after(0, false);
  fut_loop_stats_t st;
  stats(loop, &st);
  assert_int_equal(st.threadsafe, 0);
  int ran = 0;
  assert_int_equal(fut_loop_call_soon_threadsafe(loop, fx_count_cb, &ran), 0);
  assert_true(fx_run_until_flag(loop, &ran));
}

/* run_until_complete registers a done callback: when that fails it
 * returns -ENOMEM without running the loop or leaving a registration. */
static void test_alloc_fail_run_until_complete(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  int cb = 0, soon = 0;
  assert_int_equal(fut_new(loop, &f), 0);
  assert_int_equal(fut_add_done_callback(f, fx_done_count_cb, &cb), 0);
  assert_int_equal(fut_loop_call_soon(loop, fx_count_cb, &soon, NULL), 0);
  fut__alloc_fail_after(1, true);
  assert_int_equal(fut_loop_run_until_complete(loop, f), -ENOMEM);
  fut__alloc_fail_after(0, false);
  assert_int_equal(soon, 0);
  assert_false(fut_loop_is_running(loop));
  assert_int_equal(fut_set_result(f, NULL, NULL), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, f), 0);
  if (!cb)
    assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(cb, 1);
  assert_int_equal(soon, 1);
  fut_unref(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_alloc_fail_loop_new, teardown),
      AF_TEST(test_alloc_fail_fut_new),
      AF_TEST(test_alloc_fail_call_soon_with_handle),
      AF_TEST(test_alloc_fail_call_later),
      AF_TEST(test_alloc_fail_add_reader),
      AF_TEST(test_alloc_fail_set_result_bytes),
      AF_TEST(test_alloc_fail_set_exception_message),
      AF_TEST(test_alloc_fail_cancel_message_still_cancels),
      AF_TEST(test_alloc_fail_add_done_callback_second),
      AF_TEST(test_alloc_fail_set_result_ring_full),
      AF_TEST(test_alloc_fail_call_soon_threadsafe),
      AF_TEST(test_alloc_fail_run_until_complete),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
