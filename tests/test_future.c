/* Futures: DESIGN.md §5 and asyncio.Future, rule by rule. */
#include <limits.h>

#include "fixture.h"

#include <stdlib.h>

#include "loop/internal.h"
#include "task_helpers.h"

static int dtor_calls;
static void *dtor_last;
static void counting_dtor(void *p) {
  dtor_calls++;
  dtor_last = p;
}

static int new_pending(fut_loop_t *loop, fut_t **f) {
  dtor_calls = 0;
  dtor_last = NULL;
  return fut_new(loop, f);
}

/* ---- states -------------------------------------------------------------- */

static void test_future_new_pending(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  assert_int_equal(new_pending(loop, &f), 0);
  assert_int_equal(fut_state(f), FUT_PENDING);
  assert_false(fut_done(f));
  assert_false(fut_cancelled(f));
  assert_ptr_equal(fut_get_loop(f), loop);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.live_futures, 1);
  fut_t *g = fut_ref(f);
  assert_ptr_equal(g, f);
  fut_unref(g);
  fut_unref(f);
  fut_unref(NULL);
  assert_null(fut_ref(NULL));
}

static void test_future_new_bad_args(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f = (fut_t *)1;
  assert_int_equal(fut_new(NULL, &f), -EINVAL);
  assert_int_equal(fut_new(loop, NULL), -EINVAL);
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

static void test_future_result_of_pending_invalid_state(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  assert_int_equal(new_pending(loop, &f), 0);
  void *p = (void *)1;
  assert_int_equal(fut_result(f, &p), FUT_E_INVALID_STATE);
  assert_null(p);
  const char *msg = "x";
  assert_int_equal(fut_exception(f, &msg), FUT_E_INVALID_STATE);
  assert_null(msg);
  int64_t v = 5;
  assert_int_equal(fut_result_i64(f, &v), FUT_E_INVALID_STATE);
  const void *d;
  size_t n;
  assert_int_equal(fut_result_bytes(f, &d, &n), FUT_E_INVALID_STATE);
  assert_int_equal(fut_result(NULL, NULL), -EINVAL);
  fut_unref(f);
}

/* ---- setting ------------------------------------------------------------- */

static void test_future_set_result_ptr(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  static int payload = 42;
  assert_int_equal(new_pending(loop, &f), 0);
  assert_int_equal(fut_set_result(f, &payload, counting_dtor), 0);
  assert_int_equal(fut_state(f), FUT_FINISHED);
  assert_true(fut_done(f));
  assert_false(fut_cancelled(f));
  void *p = NULL;
  assert_int_equal(fut_result(f, &p), 0);
  assert_ptr_equal(p, &payload);
  assert_int_equal(fut_result(f, NULL), 0);
  const char *msg = "x";
  assert_int_equal(fut_exception(f, &msg), 0);
  assert_null(msg);
  assert_int_equal(dtor_calls, 0);
  fut_unref(f);
  assert_int_equal(dtor_calls, 1);
  assert_ptr_equal(dtor_last, &payload);
}

static void test_future_set_result_bytes(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  char buf[] = "hello";
  assert_int_equal(new_pending(loop, &f), 0);
  assert_int_equal(fut_set_result_bytes(f, buf, 5), 0);
  buf[0] = 'J'; /* a copy was taken */
  const void *d = NULL;
  size_t n = 0;
  assert_int_equal(fut_result_bytes(f, &d, &n), 0);
  assert_int_equal(n, 5);
  assert_memory_equal(d, "hello", 5);
  assert_int_equal(((const char *)d)[5], '\0');
  void *p = NULL;
  assert_int_equal(fut_result(f, &p), 0);
  assert_ptr_equal(p, d);
  int64_t v;
  assert_int_equal(fut_result_i64(f, &v), -EINVAL);
  fut_unref(f);
  /* Empty result, NULL data allowed for length 0; NULL with length not. */
  assert_int_equal(new_pending(loop, &f), 0);
  assert_int_equal(fut_set_result_bytes(f, NULL, 3), -EINVAL);
  assert_false(fut_done(f));
  assert_int_equal(fut_set_result_bytes(f, NULL, 0), 0);
  assert_int_equal(fut_result_bytes(f, &d, &n), 0);
  assert_int_equal(n, 0);
  fut_unref(f);
}

static void test_future_set_result_bytes_owned(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  char *buf = malloc(4);
  memcpy(buf, "abcd", 4);
  assert_int_equal(new_pending(loop, &f), 0);
  assert_int_equal(fut_set_result_bytes_owned(f, buf, 4), 0);
  const void *d;
  size_t n;
  assert_int_equal(fut_result_bytes(f, &d, &n), 0);
  assert_ptr_equal(d, buf);
  assert_int_equal(n, 4);
  fut_unref(f); /* frees buf (ASan / valgrind check) */
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
  assert_int_equal(fut_cfuture_set_result_bytes(cf, data, SIZE_MAX), -ENOMEM);
  assert_false(fut_cfuture_done(cf));
  fut_cfuture_unref(cf);
}

static void test_future_set_result_i64(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  assert_int_equal(new_pending(loop, &f), 0);
  assert_int_equal(fut_set_result_i64(f, INT64_MIN), 0);
  int64_t v = 0;
  assert_int_equal(fut_result_i64(f, &v), 0);
  assert_true(v == INT64_MIN);
  const void *d;
  assert_int_equal(fut_result_bytes(f, &d, NULL), -EINVAL);
  fut_unref(f);
}

static void test_future_set_exception(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  assert_int_equal(new_pending(loop, &f), 0);
  assert_int_equal(fut_set_exception(f, -EPIPE, "write %s: %d", "sock", 9), 0);
  assert_int_equal(fut_state(f), FUT_FINISHED);
  assert_false(fut_cancelled(f));
  void *p = (void *)1;
  assert_int_equal(fut_result(f, &p), -EPIPE);
  assert_null(p);
  const char *msg = NULL;
  assert_int_equal(fut_exception(f, &msg), -EPIPE);
  assert_string_equal(msg, "write sock: 9");
  int64_t v;
  assert_int_equal(fut_result_i64(f, &v), -EPIPE);
  fut_unref(f);
  /* Without a message; library codes are accepted too. */
  assert_int_equal(new_pending(loop, &f), 0);
  assert_int_equal(fut_set_exception(f, FUT_E_BROKEN_POOL, NULL), 0);
  msg = "x";
  assert_int_equal(fut_exception(f, &msg), FUT_E_BROKEN_POOL);
  assert_null(msg);
  fut_unref(f);
}

static void test_future_set_exception_bad_code(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  assert_int_equal(new_pending(loop, &f), 0);
  assert_int_equal(fut_set_exception(f, 0, "zero"), -EINVAL);
  assert_int_equal(fut_set_exception(f, EIO, "positive"), -EINVAL);
  assert_false(fut_done(f));
  /* -ECANCELED is a failure with that code, not a cancellation. */
  assert_int_equal(fut_set_exception(f, -ECANCELED, NULL), 0);
  assert_int_equal(fut_state(f), FUT_FINISHED);
  assert_false(fut_cancelled(f));
  assert_int_equal(fut_result(f, NULL), -ECANCELED);
  fut_unref(f);
}

/* Bug: INT_MIN was accepted as an exception code: its negation (what
 * strerror-style readers compute) overflows.  Rejected with -EINVAL. */
static void test_future_set_exception_int_min_rejected(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  assert_int_equal(new_pending(loop, &f), 0);
  assert_int_equal(fut_set_exception(f, INT_MIN, "min"), -EINVAL);
  assert_false(fut_done(f));
  assert_int_equal(fut_set_exception(f, INT_MIN + 1, NULL), 0);
  assert_int_equal(fut_result(f, NULL), INT_MIN + 1);
  fut_unref(f);
}

/* Bug: fut_exception told "pending" from "failed" by the code alone, so an
 * exception whose own code is FUT_E_INVALID_STATE lost its message (and
 * so did a gather or wait_for copying it). */
static void
test_future_exception_invalid_state_code_keeps_message(void **state) {
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

static void test_future_cancel(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  assert_int_equal(new_pending(loop, &f), 0);
  assert_true(fut_cancel(f, "shutting down"));
  assert_int_equal(fut_state(f), FUT_CANCELLED);
  assert_true(fut_done(f));
  assert_true(fut_cancelled(f));
  assert_int_equal(fut_result(f, NULL), -ECANCELED);
  const char *msg = NULL;
  assert_int_equal(fut_exception(f, &msg), -ECANCELED);
  assert_string_equal(msg, "shutting down");
  assert_false(fut_cancel(f, "again"));
  assert_false(fut_cancel(NULL, NULL));
  fut_unref(f);
  assert_int_equal(new_pending(loop, &f), 0);
  assert_true(fut_cancel(f, NULL));
  msg = "x";
  assert_int_equal(fut_exception(f, &msg), -ECANCELED);
  assert_null(msg);
  fut_unref(f);
}

static void test_future_cancel_done_returns_false(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  assert_int_equal(new_pending(loop, &f), 0);
  assert_int_equal(fut_set_result_i64(f, 1), 0);
  assert_false(fut_cancel(f, "late"));
  assert_int_equal(fut_state(f), FUT_FINISHED);
  assert_int_equal(fut_result(f, NULL), 0);
  fut_unref(f);
  assert_int_equal(new_pending(loop, &f), 0);
  assert_int_equal(fut_set_exception(f, -EIO, NULL), 0);
  assert_false(fut_cancel(f, "late"));
  assert_int_equal(fut_result(f, NULL), -EIO);
  fut_unref(f);
}

static void test_future_set_done_invalid_state_not_taken(void **state) {
  fut_loop_t *loop = *state;
  static int a, b;
  fut_t *f;
  for (int kind = 0; kind < 3; kind++) {
    assert_int_equal(new_pending(loop, &f), 0);
    if (kind == 0)
      assert_int_equal(fut_set_result(f, &a, counting_dtor), 0);
    else if (kind == 1)
      assert_int_equal(fut_set_exception(f, -EIO, "boom"), 0);
    else
      assert_true(fut_cancel(f, NULL));
    assert_int_equal(fut_set_result(f, &b, counting_dtor), FUT_E_INVALID_STATE);
    assert_int_equal(dtor_calls, 0); /* &b not taken */
    char *owned = malloc(3);
    assert_int_equal(fut_set_result_bytes_owned(f, owned, 3),
                     FUT_E_INVALID_STATE);
    free(owned); /* still ours */
    assert_int_equal(fut_set_result_bytes(f, "xy", 2), FUT_E_INVALID_STATE);
    assert_int_equal(fut_set_result_i64(f, 3), FUT_E_INVALID_STATE);
    assert_int_equal(fut_set_exception(f, -EPERM, "late %d", 1),
                     FUT_E_INVALID_STATE);
    assert_non_null(strstr(fut_last_error(), "fut_set_exception"));
    fut_result(f, NULL);
    fut_unref(f);
    assert_int_equal(dtor_calls, kind == 0 ? 1 : 0);
    if (kind == 0)
      assert_ptr_equal(dtor_last, &a);
  }
  assert_int_equal(fut_set_result(NULL, NULL, NULL), -EINVAL);
}

static void test_future_dtor_once_at_last_unref(void **state) {
  fut_loop_t *loop = *state;
  static int payload;
  fut_t *f;
  int ran = 0;
  assert_int_equal(new_pending(loop, &f), 0);
  fut_ref(f);
  fut_ref(f);
  assert_int_equal(fut_add_done_callback(f, fx_done_count_cb, &ran), 0);
  assert_int_equal(fut_set_result(f, &payload, counting_dtor), 0);
  fut_unref(f);
  fut_unref(f);
  assert_int_equal(dtor_calls, 0);
  fut_unref(f); /* the queued dispatch still holds it */
  assert_int_equal(dtor_calls, 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(ran, 1);
  assert_int_equal(dtor_calls, 1);
}

/* ---- done callbacks ------------------------------------------------------ */

static void test_future_done_callbacks_never_inline(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  int ran = 0;
  assert_int_equal(new_pending(loop, &f), 0);
  assert_int_equal(fut_add_done_callback(f, fx_done_count_cb, &ran), 0);
  assert_int_equal(fut_set_result_i64(f, 1), 0);
  assert_int_equal(ran, 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(ran, 1);
  /* Registered on a done future: scheduled, not inline, runs once. */
  assert_int_equal(fut_add_done_callback(f, fx_done_count_cb, &ran), 0);
  assert_int_equal(ran, 1);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(ran, 2);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(ran, 2);
  fut_unref(f);
}

struct ordlog {
  fx_log_t *log;
  int value;
  fut_t *expect;
};
static void ord_cb(fut_t *f, void *arg) {
  struct ordlog *o = arg;
  assert_ptr_equal(f, o->expect);
  assert_true(fut_done(f));
  fx_log_add(o->log, o->value);
}

static void test_future_done_callbacks_registration_order(void **state) {
  fut_loop_t *loop = *state;
  fx_log_t log = {0};
  fut_t *f;
  assert_int_equal(new_pending(loop, &f), 0);
  struct ordlog o[20];
  for (int i = 0; i < 20; i++) {
    o[i] = (struct ordlog){&log, i, f};
    assert_int_equal(fut_add_done_callback(f, ord_cb, &o[i]), 0);
  }
  assert_true(fut_cancel(f, NULL));
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(log.n, 20);
  for (int i = 0; i < 20; i++)
    assert_int_equal(log.v[i], i);
  fut_unref(f);
}

static void test_future_same_callback_twice_runs_twice(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  int ran = 0;
  assert_int_equal(new_pending(loop, &f), 0);
  assert_int_equal(fut_add_done_callback(f, fx_done_count_cb, &ran), 0);
  assert_int_equal(fut_add_done_callback(f, fx_done_count_cb, &ran), 0);
  assert_int_equal(fut_set_exception(f, -EIO, NULL), 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(ran, 2);
  assert_int_equal(fut_result(f, NULL), -EIO);
  fut_unref(f);
}

/* A callback registered after completion runs on a later iteration than
 * the one that registered it, even while the future's first dispatch is
 * still queued in the current drain. */
struct late {
  fut_t *f;
  fx_log_t *log;
  int iteration;
};
static void late_b(fut_t *f, void *arg) {
  (void)f;
  struct late *l = arg;
  fx_log_add(l->log, 100 + l->iteration);
}
static void late_a(fut_t *f, void *arg) {
  (void)f;
  struct late *l = arg;
  fx_log_add(l->log, l->iteration);
}
static void late_register(void *arg) {
  struct late *l = arg;
  assert_int_equal(fut_add_done_callback(l->f, late_b, l), 0);
}
static void late_complete(void *arg) {
  struct late *l = arg;
  /* Queued before the dispatch that set_result queues. */
  assert_int_equal(
      fut_loop_call_soon(fut_get_loop(l->f), late_register, l, NULL), 0);
  assert_int_equal(fut_set_result_i64(l->f, 1), 0);
}

static void test_future_add_done_callback_after_done_runs_later(void **state) {
  fut_loop_t *loop = *state;
  fx_log_t log = {0};
  struct late l = {NULL, &log, 0};
  assert_int_equal(new_pending(loop, &l.f), 0);
  assert_int_equal(fut_add_done_callback(l.f, late_a, &l), 0);
  assert_int_equal(fut_loop_call_soon(loop, late_complete, &l, NULL), 0);
  for (l.iteration = 1; l.iteration <= 4; l.iteration++)
    assert_int_equal(fut_loop_run_once(loop, 0), 0);
  /* iteration 1: complete; 2: late_register then dispatch (runs a);
   * 3: b. */
  assert_int_equal(log.n, 2);
  assert_int_equal(log.v[0], 2);
  assert_int_equal(log.v[1], 103);
  fut_unref(l.f);
}

static void test_future_remove_done_callback(void **state) {
  fut_loop_t *loop = *state;
  fx_log_t log = {0};
  fut_t *f;
  assert_int_equal(new_pending(loop, &f), 0);
  struct ordlog x = {&log, 1, f}, y = {&log, 2, f}, z = {&log, 3, f};
  int counted = 0;
  assert_int_equal(fut_add_done_callback(f, ord_cb, &x), 0);
  assert_int_equal(fut_add_done_callback(f, ord_cb, &y), 0);
  assert_int_equal(fut_add_done_callback(f, ord_cb, &x), 0);
  assert_int_equal(fut_add_done_callback(f, fx_done_count_cb, &counted), 0);
  assert_int_equal(fut_add_done_callback(f, ord_cb, &z), 0);
  assert_int_equal(fut_add_done_callback(f, ord_cb, &x), 0);
  assert_int_equal(fut_remove_done_callback(f, ord_cb, &x), 3);
  assert_int_equal(fut_remove_done_callback(f, ord_cb, &x), 0);
  assert_int_equal(fut_remove_done_callback(f, fx_done_count_cb, &log), 0);
  assert_int_equal(fut_remove_done_callback(f, NULL, NULL), -EINVAL);
  assert_int_equal(fut_set_result(f, NULL, NULL), 0);
  /* Once done, nothing can be removed. */
  assert_int_equal(fut_remove_done_callback(f, ord_cb, &y), 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(log.n, 2);
  assert_int_equal(log.v[0], 2);
  assert_int_equal(log.v[1], 3);
  assert_int_equal(counted, 1);
  fut_unref(f);
}

static void test_future_remove_all_callbacks_schedules_nothing(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  int ran = 0;
  assert_int_equal(new_pending(loop, &f), 0);
  assert_int_equal(fut_add_done_callback(f, fx_done_count_cb, &ran), 0);
  assert_int_equal(fut_add_done_callback(f, fx_done_count_cb, &ran), 0);
  assert_int_equal(fut_remove_done_callback(f, fx_done_count_cb, &ran), 2);
  assert_int_equal(fut_set_result(f, NULL, NULL), 0);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.ready, 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(ran, 0);
  /* Registering again afterwards works. */
  assert_int_equal(fut_add_done_callback(f, fx_done_count_cb, &ran), 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(ran, 1);
  fut_unref(f);
}

static void test_future_add_done_callback_bad_args(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  assert_int_equal(new_pending(loop, &f), 0);
  assert_int_equal(fut_add_done_callback(f, NULL, NULL), -EINVAL);
  assert_int_equal(fut_add_done_callback(NULL, fx_done_count_cb, NULL),
                   -EINVAL);
  fut_unref(f);
}

/* ---- fut_copy_state ------------------------------------------------------ */

static void test_future_copy_state_each_kind(void **state) {
  fut_loop_t *loop = *state;
  static int payload;
  fut_t *src, *dst;
  const void *d;
  size_t n;
  void *p;
  /* Pointer result: shared, the source stays alive, one destructor call. */
  assert_int_equal(new_pending(loop, &src), 0);
  assert_int_equal(fut_new(loop, &dst), 0);
  assert_int_equal(fut_set_result(src, &payload, counting_dtor), 0);
  assert_int_equal(fut_copy_state(dst, src), 0);
  fut_unref(src);
  assert_int_equal(dtor_calls, 0);
  assert_int_equal(fut_result(dst, &p), 0);
  assert_ptr_equal(p, &payload);
  /* A copy of a copy still points at the original. */
  fut_t *dst2;
  assert_int_equal(fut_new(loop, &dst2), 0);
  assert_int_equal(fut_copy_state(dst2, dst), 0);
  fut_unref(dst);
  assert_int_equal(fut_result(dst2, &p), 0);
  assert_ptr_equal(p, &payload);
  assert_int_equal(dtor_calls, 0);
  fut_unref(dst2);
  assert_int_equal(dtor_calls, 1);
  /* Bytes. */
  assert_int_equal(fut_new(loop, &src), 0);
  assert_int_equal(fut_new(loop, &dst), 0);
  assert_int_equal(fut_set_result_bytes(src, "q", 1), 0);
  assert_int_equal(fut_copy_state(dst, src), 0);
  fut_unref(src);
  assert_int_equal(fut_result_bytes(dst, &d, &n), 0);
  assert_int_equal(n, 1);
  assert_memory_equal(d, "q", 1);
  fut_unref(dst);
  /* Integer. */
  assert_int_equal(fut_new(loop, &src), 0);
  assert_int_equal(fut_new(loop, &dst), 0);
  assert_int_equal(fut_set_result_i64(src, -9), 0);
  assert_int_equal(fut_copy_state(dst, src), 0);
  int64_t v;
  assert_int_equal(fut_result_i64(dst, &v), 0);
  assert_int_equal(v, -9);
  fut_unref(src);
  fut_unref(dst);
  /* NULL pointer result without destructor. */
  assert_int_equal(fut_new(loop, &src), 0);
  assert_int_equal(fut_new(loop, &dst), 0);
  assert_int_equal(fut_set_result(src, NULL, NULL), 0);
  assert_int_equal(fut_copy_state(dst, src), 0);
  p = (void *)1;
  assert_int_equal(fut_result(dst, &p), 0);
  assert_null(p);
  fut_unref(src);
  fut_unref(dst);
  /* Exception with message; the source counts as retrieved. */
  fx_exc_t cap;
  fx_exc_capture(loop, &cap);
  assert_int_equal(fut_new(loop, &src), 0);
  assert_int_equal(fut_new(loop, &dst), 0);
  assert_int_equal(fut_set_exception(src, -ENOENT, "no %s", "file"), 0);
  assert_int_equal(fut_copy_state(dst, src), 0);
  fut_unref(src);
  assert_int_equal(cap.count, 0);
  const char *msg;
  assert_int_equal(fut_exception(dst, &msg), -ENOENT);
  assert_string_equal(msg, "no file");
  fut_unref(dst);
  /* Exception without message. */
  assert_int_equal(fut_new(loop, &src), 0);
  assert_int_equal(fut_new(loop, &dst), 0);
  assert_int_equal(fut_set_exception(src, -EAGAIN, NULL), 0);
  assert_int_equal(fut_copy_state(dst, src), 0);
  assert_int_equal(fut_exception(dst, &msg), -EAGAIN);
  assert_null(msg);
  fut_unref(src);
  fut_unref(dst);
  assert_int_equal(cap.count, 0);
  /* Cancelled, with its message. */
  assert_int_equal(fut_new(loop, &src), 0);
  assert_int_equal(fut_new(loop, &dst), 0);
  assert_true(fut_cancel(src, "stop"));
  assert_int_equal(fut_copy_state(dst, src), 0);
  assert_true(fut_cancelled(dst));
  assert_int_equal(fut_exception(dst, &msg), -ECANCELED);
  assert_string_equal(msg, "stop");
  fut_unref(src);
  fut_unref(dst);
  fut_loop_set_exception_handler(loop, NULL, NULL);
}

static void test_future_copy_state_invalid(void **state) {
  fut_loop_t *loop = *state;
  fut_t *src, *dst;
  assert_int_equal(new_pending(loop, &src), 0);
  assert_int_equal(fut_new(loop, &dst), 0);
  assert_int_equal(fut_copy_state(dst, src), FUT_E_INVALID_STATE);
  assert_false(fut_done(dst));
  assert_int_equal(fut_set_result_i64(src, 1), 0);
  assert_int_equal(fut_set_result_i64(dst, 2), 0);
  assert_int_equal(fut_copy_state(dst, src), FUT_E_INVALID_STATE);
  int64_t v;
  assert_int_equal(fut_result_i64(dst, &v), 0);
  assert_int_equal(v, 2);
  assert_int_equal(fut_copy_state(NULL, src), -EINVAL);
  assert_int_equal(fut_copy_state(dst, NULL), -EINVAL);
  fut_unref(src);
  fut_unref(dst);
  /* Cancelled source into a done destination. */
  assert_int_equal(fut_new(loop, &src), 0);
  assert_int_equal(fut_new(loop, &dst), 0);
  assert_true(fut_cancel(src, NULL));
  assert_true(fut_cancel(dst, NULL));
  assert_int_equal(fut_copy_state(dst, src), FUT_E_INVALID_STATE);
  fut_unref(src);
  fut_unref(dst);
}

/* Bug (issue 9, defect 11): fut_copy_state between futures of one loop
 * made a reference cycle that kept the loop from being freed when the
 * source was never completed: the future that copies (then, shield,
 * wait_for) holds the source, and the source's done callback holds the
 * copier.  Here every such chain is left waiting on a source nobody
 * completes, with every user reference dropped; fut_loop_free must still
 * free every future (live_futures 0 after close, the shared pointer
 * result's destructor run once), so the loop's memory goes with it. */
static int copy_then_fn(fut_t *src, fut_t *dst, void *arg) {
  (void)arg;
  return fut_copy_state(dst, src);
}

static void test_future_copy_state_cycle_never_completed(void **state) {
  (void)state;
  static int payload;
  for (int kind = 0; kind < 6; kind++) {
    fut_loop_t *loop;
    fut_t *src, *dst, *done, *extra;
    assert_int_equal(fut_loop_new(&loop), 0);
    assert_int_equal(new_pending(loop, &src), 0);
    switch (kind) {
    case 0:
      assert_int_equal(fut_then(src, NULL, NULL, &dst), 0);
      break;
    case 1:
      assert_int_equal(fut_then(src, copy_then_fn, NULL, &dst), 0);
      break;
    case 2:
      assert_int_equal(fut_shield(src, &dst), 0);
      break;
    case 3:
      assert_int_equal(fut_wait_for(src, FUT_SEC(3600), &dst), 0);
      break;
    case 4: /* a chain of copies: src -> then -> shield -> then */
      assert_int_equal(fut_then(src, NULL, NULL, &extra), 0);
      assert_int_equal(fut_shield(extra, &dst), 0);
      fut_unref(extra);
      extra = dst;
      assert_int_equal(fut_then(extra, NULL, NULL, &dst), 0);
      fut_unref(extra);
      break;
    default: /* the copier is completed by a copy that shares a pointer
              * result with a third future: the copier then holds that
              * one, and the never-completed source holds the copier */
      assert_int_equal(fut_then(src, NULL, NULL, &dst), 0);
      break;
    }
    assert_int_equal(fut_new(loop, &done), 0);
    assert_int_equal(fut_set_result(done, &payload, counting_dtor), 0);
    fut_t *copy;
    assert_int_equal(fut_new(loop, &copy), 0);
    assert_int_equal(fut_copy_state(copy, done), 0); /* copy holds done */
    if (kind == 5)
      assert_int_equal(fut_copy_state(dst, copy), 0);
    fut_unref(done);
    fut_unref(copy);
    fut_unref(src);
    fut_unref(dst);
    assert_int_equal(fut_loop_run_once(loop, 0), 0);
    assert_int_equal(fut_loop_close(loop), 0);
    fut_loop_stats_t st;
    fut_loop_stats(loop, &st);
    if (st.live_futures != 0 || dtor_calls != 1)
      fail_msg("chain %d: %zu futures alive after close, destructor run %d "
               "times",
               kind, st.live_futures, dtor_calls);
    assert_int_equal(st.live_handles, 0);
    assert_int_equal(fut_loop_free(loop), 0);
  }
}

/* ---- re-entrancy --------------------------------------------------------- */

static void drop_last_ref_cb(fut_t *f, void *arg) {
  (*(int *)arg)++;
  fut_unref(f);             /* the reference the test handed over */
  assert_true(fut_done(f)); /* still alive: the dispatch holds it */
}

static void test_future_callback_drops_last_ref(void **state) {
  fut_loop_t *loop = *state;
  static int payload;
  fut_t *f;
  int ran = 0;
  assert_int_equal(new_pending(loop, &f), 0);
  assert_int_equal(fut_add_done_callback(f, drop_last_ref_cb, &ran), 0);
  assert_int_equal(fut_add_done_callback(f, fx_done_count_cb, &ran), 0);
  assert_int_equal(fut_set_result(f, &payload, counting_dtor), 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(ran, 2);
  assert_int_equal(dtor_calls, 1);
}

static void stop_loop_cb(fut_t *f, void *arg) {
  (void)f;
  fut_loop_stop(arg);
}

static void test_future_callback_stops_loop(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  int ran = 0;
  assert_int_equal(new_pending(loop, &f), 0);
  assert_int_equal(fut_add_done_callback(f, stop_loop_cb, loop), 0);
  assert_int_equal(fut_add_done_callback(f, fx_done_count_cb, &ran), 0);
  assert_int_equal(fut_set_result(f, NULL, NULL), 0);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  /* Callbacks after the stopping one still ran in that iteration. */
  assert_int_equal(ran, 1);
  fut_unref(f);
}

struct closer {
  fut_loop_t *loop;
  int close_err;
  int ran;
};
static void close_loop_cb(fut_t *f, void *arg) {
  (void)f;
  struct closer *c = arg;
  c->ran++;
  c->close_err = fut_loop_close(c->loop);
}

static void test_future_callback_closes_loop_refused(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  struct closer c = {loop, 0, 0};
  assert_int_equal(new_pending(loop, &f), 0);
  assert_int_equal(fut_add_done_callback(f, close_loop_cb, &c), 0);
  assert_int_equal(fut_set_result_i64(f, 5), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, f), 0);
  if (!c.ran)
    assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(c.ran, 1);
  assert_int_equal(c.close_err, FUT_E_RUNNING);
  assert_false(fut_loop_is_closed(loop));
  fut_unref(f);
}

/* A done callback that completes another future, whose callback completes a
 * third: each hop is one iteration later. */
static void chain_cb(fut_t *f, void *arg) {
  (void)f;
  assert_int_equal(fut_set_result_i64(arg, 1), 0);
}

static void test_future_chain_one_hop_per_iteration(void **state) {
  fut_loop_t *loop = *state;
  fut_t *a, *b, *c;
  int ran = 0;
  assert_int_equal(new_pending(loop, &a), 0);
  assert_int_equal(fut_new(loop, &b), 0);
  assert_int_equal(fut_new(loop, &c), 0);
  assert_int_equal(fut_add_done_callback(a, chain_cb, b), 0);
  assert_int_equal(fut_add_done_callback(b, chain_cb, c), 0);
  assert_int_equal(fut_add_done_callback(c, fx_done_count_cb, &ran), 0);
  assert_int_equal(fut_set_result_i64(a, 1), 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_true(fut_done(b));
  assert_false(fut_done(c));
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_true(fut_done(c));
  assert_int_equal(ran, 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(ran, 1);
  fut_unref(a);
  fut_unref(b);
  fut_unref(c);
}

/* asyncio parity: Future.cancel() clears the "never retrieved" flag before
 * it looks at the state (futures.py: self.__log_traceback = False), so
 * cancelling a future that already failed counts as retrieving its
 * exception: cancel returns false and no "exception was never retrieved"
 * report follows when the last reference goes. */
static void test_future_cancel_failed_marks_retrieved(void **state) {
  fut_loop_t *loop = *state;
  fx_exc_t cap;
  fx_exc_capture(loop, &cap);
  fut_t *f;
  assert_int_equal(fut_new(loop, &f), 0);
  assert_int_equal(fut_set_exception(f, -EIO, "boom"), 0);
  assert_false(fut_cancel(f, "too late"));
  assert_int_equal(fut_state(f), FUT_FINISHED);
  fut_unref(f);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(cap.count, 0);
  fut_loop_set_exception_handler(loop, NULL, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FX_LOOP_TEST(test_future_new_pending),
      FX_LOOP_TEST(test_future_new_bad_args),
      cmocka_unit_test(test_accessors_accept_null),
      FX_LOOP_TEST(test_future_result_of_pending_invalid_state),
      FX_LOOP_TEST(test_future_set_result_ptr),
      FX_LOOP_TEST(test_future_set_result_bytes),
      FX_LOOP_TEST(test_future_set_result_bytes_owned),
      cmocka_unit_test(test_bytes_setters_reject_size_max),
      FX_LOOP_TEST(test_future_set_result_i64),
      FX_LOOP_TEST(test_future_set_exception),
      FX_LOOP_TEST(test_future_set_exception_bad_code),
      FX_LOOP_TEST(test_future_set_exception_int_min_rejected),
      cmocka_unit_test(test_future_exception_invalid_state_code_keeps_message),
      FX_LOOP_TEST(test_future_cancel),
      FX_LOOP_TEST(test_future_cancel_done_returns_false),
      FX_LOOP_TEST(test_future_cancel_failed_marks_retrieved),
      FX_LOOP_TEST(test_future_set_done_invalid_state_not_taken),
      FX_LOOP_TEST(test_future_dtor_once_at_last_unref),
      FX_LOOP_TEST(test_future_done_callbacks_never_inline),
      FX_LOOP_TEST(test_future_done_callbacks_registration_order),
      FX_LOOP_TEST(test_future_same_callback_twice_runs_twice),
      FX_LOOP_TEST(test_future_add_done_callback_after_done_runs_later),
      FX_LOOP_TEST(test_future_remove_done_callback),
      FX_LOOP_TEST(test_future_remove_all_callbacks_schedules_nothing),
      FX_LOOP_TEST(test_future_add_done_callback_bad_args),
      FX_LOOP_TEST(test_future_copy_state_each_kind),
      FX_LOOP_TEST(test_future_copy_state_invalid),
      cmocka_unit_test(test_future_copy_state_cycle_never_completed),
      FX_LOOP_TEST(test_future_callback_drops_last_ref),
      FX_LOOP_TEST(test_future_callback_stops_loop),
      FX_LOOP_TEST(test_future_callback_closes_loop_refused),
      FX_LOOP_TEST(test_future_chain_one_hop_per_iteration),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
