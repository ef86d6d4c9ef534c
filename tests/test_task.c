/* Tasks: creation, results, await, sleep / yield, cancellation with
 * asyncio's rules (also through combinators and await cycles),
 * introspection, close with pending tasks. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "loop/internal.h"
#include "task_helpers.h"

/* ---- helpers ------------------------------------------------------------- */

/* Proves the loop is clean, then frees it. */
static void set_i64_cb(void *arg) {
  struct {
    fut_t *f;
    int64_t v;
  } *p = arg;
  fut_set_result_i64(p->f, p->v);
}

static void cancel_cb(void *arg) {
  fut_cancel(arg, "from a callback");
}

/* Counts handler calls, keeps the last message. */
static int handler_calls;
static char handler_msg[256];
static void counting_handler(fut_loop_t *loop, const fut_exception_ctx_t *c,
                             void *arg) {
  (void)loop;
  (void)arg;
  handler_calls++;
  snprintf(handler_msg, sizeof handler_msg, "%s", c->message);
}

/* ---- results ------------------------------------------------------------- */

static int ret_i64(void *arg) {
  (void)arg;
  return fut_task_return_i64(42);
}

static void test_task_returns_i64(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *t = spawn(loop, ret_i64, NULL);
  assert_true(fut_is_task(t));
  assert_false(fut_done(t));
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  int64_t v;
  assert_int_equal(fut_result_i64(t, &v), 0);
  assert_int_equal(v, 42);
  fut_unref(t);
  end_loop(loop);
}

static int freed_ptr;
static void count_free(void *p) {
  freed_ptr++;
  free(p);
}

static int ret_ptr(void *arg) {
  (void)arg;
  char *s = strdup("first");
  assert_int_equal(fut_task_return_ptr(s, count_free), 0);
  /* A later value replaces (and releases) the earlier one. */
  return fut_task_return_ptr(strdup("hello"), count_free);
}

static void test_task_returns_ptr_with_destructor(void **state) {
  (void)state;
  freed_ptr = 0;
  fut_loop_t *loop = new_loop();
  fut_t *t = spawn(loop, ret_ptr, NULL);
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  assert_int_equal(freed_ptr, 1);
  void *p;
  assert_int_equal(fut_result(t, &p), 0);
  assert_string_equal(p, "hello");
  fut_unref(t);
  assert_int_equal(freed_ptr, 2);
  end_loop(loop);
}

static int ret_bytes(void *arg) {
  (void)arg;
  return fut_task_return_bytes("abc", 3);
}

static void test_task_returns_bytes(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *t = spawn(loop, ret_bytes, NULL);
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  const void *d;
  size_t n;
  assert_int_equal(fut_result_bytes(t, &d, &n), 0);
  assert_int_equal(n, 3);
  assert_memory_equal(d, "abc", 3);
  fut_unref(t);
  end_loop(loop);
}

static int ret_none(void *arg) {
  (void)arg;
  return 0;
}

static void test_task_returns_null_by_default(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *t = spawn(loop, ret_none, NULL);
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  void *p = (void *)1;
  assert_int_equal(fut_result(t, &p), 0);
  assert_null(p);
  fut_unref(t);
  end_loop(loop);
}

static int fail_eio(void *arg) {
  (void)arg;
  fut_task_return_i64(5); /* dropped: the task fails */
  return fut_task_fail(-EIO, "read %s", "x.txt");
}

static void test_task_failure_code_and_message(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *t = spawn(loop, fail_eio, NULL);
  assert_int_equal(fut_loop_run_until_complete(loop, t), -EIO);
  const char *msg;
  assert_int_equal(fut_exception(t, &msg), -EIO);
  assert_string_equal(msg, "read x.txt");
  fut_unref(t);
  end_loop(loop);
}

/* Lets out a cancellation caught from an awaited future, with its
 * message (asyncio: `except CancelledError: raise`). */
static int reraise_cancel(void *arg) {
  fut_t *f = arg;
  int err = fut_await(f, NULL);
  const char *msg = NULL;
  (void)fut_exception(f, &msg);
  return msg ? fut_task_fail(err, "%s", msg) : err;
}

/* A message given with another code earlier does not name a later
 * cancellation: the task's own cancel message does. */
static int stale_fail_then_cancelled(void *arg) {
  (void)fut_task_fail(-EIO, "not this one");
  return fut_await(arg, NULL); /* -ECANCELED from the task's cancel */
}

/* Bug: a task ending with -ECANCELED always took its own cancel message
 * (none here), so fut_task_fail(-ECANCELED, msg) was dropped. */
static void test_task_cancelled_with_fail_message(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *f = newf(loop);
  fut_t *t = spawn(loop, reraise_cancel, f);
  drain(loop);
  fut_cancel(f, "inner message");
  assert_int_equal(fut_loop_run_until_complete(loop, t), -ECANCELED);
  assert_true(fut_cancelled(t));
  const char *msg = NULL;
  assert_int_equal(fut_exception(t, &msg), -ECANCELED);
  assert_non_null(msg);
  assert_string_equal(msg, "inner message");
  fut_unref(t);
  fut_unref(f);

  f = newf(loop);
  t = spawn(loop, stale_fail_then_cancelled, f);
  drain(loop);
  fut_cancel(t, "own message");
  assert_int_equal(fut_loop_run_until_complete(loop, t), -ECANCELED);
  assert_int_equal(fut_exception(t, &msg), -ECANCELED);
  assert_non_null(msg);
  assert_string_equal(msg, "own message");
  fut_unref(t);
  fut_unref(f);
  end_loop(loop);
}

static int ret_positive(void *arg) {
  (void)arg;
  return 3;
}

static void test_task_positive_return_fails_einval(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *t = spawn(loop, ret_positive, NULL);
  assert_int_equal(fut_loop_run_until_complete(loop, t), -EINVAL);
  fut_unref(t);
  end_loop(loop);
}

static void test_task_fail_rejects_nonnegative_code(void **state) {
  (void)state;
  assert_int_equal(fut_task_fail(0, "x"), -EINVAL);
  assert_int_equal(fut_task_fail(-EIO, "outside"), -EIO);
}

/* Bug: INT_MIN was accepted as a failure code (its negation overflows). */
static void test_task_fail_rejects_int_min(void **state) {
  (void)state;
  assert_int_equal(fut_task_fail(INT_MIN, "x"), -EINVAL);
}

/* ---- await --------------------------------------------------------------- */

struct order {
  fut_t *fs[3];
  int64_t got[3];
  int rcs[3];
};

static int await_three(void *arg) {
  struct order *o = arg;
  for (int i = 0; i < 3; i++)
    o->rcs[i] = fut_await_i64(o->fs[i], &o->got[i]);
  return 0;
}

static void test_await_order_and_results(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  struct order o;
  struct {
    fut_t *f;
    int64_t v;
  } set[3];
  for (int i = 0; i < 3; i++) {
    assert_int_equal(fut_new(loop, &o.fs[i]), 0);
    set[i].f = o.fs[i];
    set[i].v = 100 + i;
  }
  /* Resolve in reverse order: awaits still return in program order. */
  fut_loop_call_later(loop, FUT_MS(3), set_i64_cb, &set[0], NULL);
  fut_loop_call_later(loop, FUT_MS(2), set_i64_cb, &set[1], NULL);
  fut_loop_call_later(loop, FUT_MS(1), set_i64_cb, &set[2], NULL);
  fut_t *t = spawn(loop, await_three, &o);
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(o.rcs[i], 0);
    assert_int_equal(o.got[i], 100 + i);
    fut_unref(o.fs[i]);
  }
  fut_unref(t);
  end_loop(loop);
}

static int await_failed(void *arg) {
  fut_t *f = arg;
  void *p = (void *)1;
  int rc = fut_await(f, &p);
  assert_null(p);
  return rc;
}

static void test_await_returns_error_code(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *f;
  fut_new(loop, &f);
  fut_t *t = spawn(loop, await_failed, f);
  fut_loop_run_once(loop, 0); /* the task starts and waits */
  assert_int_equal(fut_set_exception(f, -ENOENT, "gone"), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, t), -ENOENT);
  fut_unref(f);
  fut_unref(t);
  end_loop(loop);
}

static int counter;
static int bump(void *arg) {
  (void)arg;
  counter++;
  return 0;
}

static int await_done_no_switch(void *arg) {
  fut_t *f = arg;
  fut_t *other;
  assert_int_equal(fut_create_task(fut_get_loop(f), bump, NULL, NULL, &other),
                   0);
  int64_t v;
  assert_int_equal(fut_await_i64(f, &v), 0);
  assert_int_equal(v, 7);
  /* No switch happened: the other task has not run yet. */
  assert_int_equal(counter, 0);
  fut_unref(other);
  return 0;
}

static void test_await_done_future_returns_without_switch(void **state) {
  (void)state;
  counter = 0;
  fut_loop_t *loop = new_loop();
  fut_t *f;
  fut_new(loop, &f);
  fut_set_result_i64(f, 7);
  fut_t *t = spawn(loop, await_done_no_switch, f);
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  fut_loop_run_once(loop, 0);
  assert_int_equal(counter, 1);
  fut_unref(f);
  fut_unref(t);
  end_loop(loop);
}

static void test_await_outside_task_is_an_error(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *f;
  fut_new(loop, &f);
  void *p = (void *)1;
  assert_int_equal(fut_await(f, &p), FUT_E_NOT_IN_TASK);
  assert_null(p);
  assert_non_null(strstr(fut_last_error(), "outside a task"));
  int64_t v;
  assert_int_equal(fut_await_i64(f, &v), FUT_E_NOT_IN_TASK);
  const void *d;
  size_t n;
  assert_int_equal(fut_await_bytes(f, &d, &n), FUT_E_NOT_IN_TASK);
  assert_int_equal(fut_sleep(FUT_MS(1)), FUT_E_NOT_IN_TASK);
  assert_int_equal(fut_yield(), FUT_E_NOT_IN_TASK);
  assert_int_equal(fut_task_return_i64(1), FUT_E_NOT_IN_TASK);
  assert_int_equal(fut_task_return_ptr(NULL, NULL), FUT_E_NOT_IN_TASK);
  assert_int_equal(fut_task_return_bytes("a", 1), FUT_E_NOT_IN_TASK);
  assert_null(fut_current_task(loop));
  fut_unref(f);
  end_loop(loop);
}

static int await_bad(void *arg) {
  fut_loop_t *other = arg;
  fut_t *self = fut_current_task(NULL);
  assert_int_equal(fut_await(self, NULL), -EINVAL);
  assert_int_equal(fut_await(NULL, NULL), -EINVAL);
  fut_t *f;
  assert_int_equal(fut_new(other, &f), 0);
  assert_int_equal(fut_await(f, NULL), FUT_E_OTHER_LOOP);
  fut_unref(f);
  /* A result of the wrong kind. */
  fut_new(fut_get_loop(self), &f);
  fut_set_result(f, NULL, NULL);
  int64_t v;
  assert_int_equal(fut_await_i64(f, &v), -EINVAL);
  const void *d;
  size_t n;
  assert_int_equal(fut_await_bytes(f, &d, &n), -EINVAL);
  fut_unref(f);
  assert_int_equal(fut_task_return_bytes(NULL, 3), -EINVAL);
  return 0;
}

static void test_await_bad_arguments(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop(), *other = new_loop();
  fut_t *t = spawn(loop, await_bad, other);
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  fut_unref(t);
  end_loop(loop);
  end_loop(other);
}

/* ---- nesting ------------------------------------------------------------- */

static int leaf(void *arg) {
  int64_t x = (int64_t)(intptr_t)arg;
  assert_int_equal(fut_sleep(FUT_MS(1)), 0);
  return fut_task_return_i64(x * 2);
}

static int middle(void *arg) {
  fut_loop_t *loop = fut_get_loop(fut_current_task(NULL));
  fut_t *a, *b;
  assert_int_equal(fut_create_task(loop, leaf, arg, NULL, &a), 0);
  assert_int_equal(fut_create_task(loop, leaf, (void *)(intptr_t)10, NULL, &b),
                   0);
  int64_t x, y;
  assert_int_equal(fut_await_i64(a, &x), 0);
  assert_int_equal(fut_await_i64(b, &y), 0);
  fut_unref(a);
  fut_unref(b);
  return fut_task_return_i64(x + y);
}

static int top(void *arg) {
  fut_loop_t *loop = fut_get_loop(fut_current_task(NULL));
  fut_t *m;
  assert_int_equal(fut_create_task(loop, middle, arg, NULL, &m), 0);
  int64_t v;
  int rc = fut_await_i64(m, &v);
  fut_unref(m);
  if (rc)
    return rc;
  return fut_task_return_i64(v + 1);
}

static void test_task_nested_tasks(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *t = spawn(loop, top, (void *)(intptr_t)5);
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  int64_t v;
  fut_result_i64(t, &v);
  assert_int_equal(v, 5 * 2 + 10 * 2 + 1);
  fut_unref(t);
  end_loop(loop);
}

static int await_task(void *arg) {
  fut_t *other = arg;
  int64_t v;
  int rc = fut_await_i64(other, &v);
  if (rc)
    return rc;
  return fut_task_return_i64(v + 1);
}

static void test_task_awaits_task(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *a = spawn(loop, leaf, (void *)(intptr_t)20);
  fut_t *b = spawn(loop, await_task, a);
  assert_int_equal(fut_loop_run_until_complete(loop, b), 0);
  int64_t v;
  fut_result_i64(b, &v);
  assert_int_equal(v, 41);
  fut_unref(a);
  fut_unref(b);
  end_loop(loop);
}

static int child_done;
static int slow_child(void *arg) {
  (void)arg;
  if (fut_sleep(FUT_MS(2)) == 0)
    child_done++;
  return 0;
}

static int parent_leaves_children(void *arg) {
  (void)arg;
  fut_loop_t *loop = fut_get_loop(fut_current_task(NULL));
  for (int i = 0; i < 3; i++) {
    fut_t *c;
    assert_int_equal(fut_create_task(loop, slow_child, NULL, NULL, &c), 0);
    fut_unref(c); /* fire and forget: the loop keeps it */
  }
  return fut_task_return_i64(1);
}

static void test_task_ends_with_pending_children(void **state) {
  (void)state;
  child_done = 0;
  fut_loop_t *loop = new_loop();
  fut_t *t = spawn(loop, parent_leaves_children, NULL);
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  assert_int_equal(child_done, 0);
  assert_int_equal(fut_all_tasks(loop, NULL, 0), 3);
  fut_unref(t);
  while (fut_all_tasks(loop, NULL, 0) > 0)
    assert_int_equal(fut_loop_run_once(loop, UINT64_MAX), 0);
  assert_int_equal(child_done, 3);
  fut_loop_run_once(loop, 0);
  end_loop(loop);
}

/* ---- sleep and yield ----------------------------------------------------- */

static int sleeper(void *arg) {
  uint64_t *elapsed = arg;
  uint64_t t0 = fut_loop_time(NULL);
  int rc = fut_sleep(FUT_MS(20));
  *elapsed = fut_loop_time(NULL) - t0;
  return rc;
}

static void test_sleep_waits_at_least_the_delay(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  uint64_t elapsed = 0;
  fut_t *t = spawn(loop, sleeper, &elapsed);
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  assert_true(elapsed >= FUT_MS(20));
  assert_true(elapsed < FUT_SEC(5));
  fut_unref(t);
  end_loop(loop);
}

static char ylog[32];
static size_t ylen;
static int yielder(void *arg) {
  char c = *(const char *)arg;
  for (int i = 0; i < 3; i++) {
    ylog[ylen++] = c;
    assert_int_equal(fut_yield(), 0);
  }
  return 0;
}

static void test_yield_interleaves_tasks_fifo(void **state) {
  (void)state;
  ylen = 0;
  memset(ylog, 0, sizeof ylog);
  fut_loop_t *loop = new_loop();
  fut_t *a = spawn(loop, yielder, "a");
  fut_t *b = spawn(loop, yielder, "b");
  assert_int_equal(fut_loop_run_until_complete(loop, b), 0);
  assert_string_equal(ylog, "ababab");
  fut_unref(a);
  fut_unref(b);
  end_loop(loop);
}

static int sleep_zero(void *arg) {
  (void)arg;
  return fut_sleep(0);
}

static void test_sleep_zero_yields(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *t = spawn(loop, sleep_zero, NULL);
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  fut_unref(t);
  end_loop(loop);
}

/* ---- cancellation -------------------------------------------------------- */

struct cancel_probe {
  int sleep_rc;
  int ran;
  bool catch_it;
};

static int long_sleeper(void *arg) {
  struct cancel_probe *p = arg;
  p->ran++;
  p->sleep_rc = fut_sleep(FUT_SEC(100));
  if (p->catch_it && p->sleep_rc == -ECANCELED)
    return fut_task_return_i64(99); /* caught: clean up, go on */
  return p->sleep_rc;
}

static void test_task_cancel_sleeping_task(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  struct cancel_probe p = {0};
  fut_t *t = spawn(loop, long_sleeper, &p);
  fut_loop_call_later(loop, FUT_MS(1), cancel_cb, t, NULL);
  assert_int_equal(fut_loop_run_until_complete(loop, t), -ECANCELED);
  assert_int_equal(p.sleep_rc, -ECANCELED);
  assert_true(fut_cancelled(t));
  const char *msg;
  assert_int_equal(fut_exception(t, &msg), -ECANCELED);
  assert_string_equal(msg, "from a callback");
  assert_int_equal(fut_task_cancelling(t), 1);
  fut_unref(t);
  end_loop(loop);
}

static void test_task_cancel_caught_ends_with_result(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  struct cancel_probe p = {.catch_it = true};
  fut_t *t = spawn(loop, long_sleeper, &p);
  fut_loop_call_later(loop, FUT_MS(1), cancel_cb, t, NULL);
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  assert_false(fut_cancelled(t));
  int64_t v;
  fut_result_i64(t, &v);
  assert_int_equal(v, 99);
  fut_unref(t);
  end_loop(loop);
}

static int cancel_self_then_return(void *arg) {
  (void)arg;
  assert_true(fut_cancel(fut_current_task(NULL), "self"));
  /* Not delivered: nothing suspended since. */
  return fut_task_return_i64(1);
}

static void test_task_cancel_requested_at_return_still_cancels(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *t = spawn(loop, cancel_self_then_return, NULL);
  assert_int_equal(fut_loop_run_until_complete(loop, t), -ECANCELED);
  assert_true(fut_cancelled(t));
  fut_unref(t);
  end_loop(loop);
}

static void test_task_cancel_before_start_never_runs(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  struct cancel_probe p = {0};
  fut_t *t = spawn(loop, long_sleeper, &p);
  assert_true(fut_cancel(t, NULL));
  assert_int_equal(fut_loop_run_until_complete(loop, t), -ECANCELED);
  assert_int_equal(p.ran, 0);
  fut_unref(t);
  end_loop(loop);
}

static void test_task_cancel_done_task_returns_false(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *t = spawn(loop, ret_i64, NULL);
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  assert_false(fut_cancel(t, NULL));
  assert_int_equal(fut_task_cancelling(t), 0);
  fut_unref(t);
  end_loop(loop);
}

static int yield_once(void *arg) {
  int *rc = arg;
  *rc = fut_yield();
  return *rc == -ECANCELED ? 0 : -EIO; /* caught */
}

static void test_task_cancel_delivered_at_yield(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  int rc = 1;
  fut_t *t = spawn(loop, yield_once, &rc);
  fut_loop_run_once(loop, 0); /* starts, yields */
  assert_true(fut_cancel(t, NULL));
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  assert_int_equal(rc, -ECANCELED);
  fut_unref(t);
  end_loop(loop);
}

struct wake_race {
  fut_t *f;
  int rc;
};

static int await_plain(void *arg) {
  struct wake_race *w = arg;
  w->rc = fut_await(w->f, NULL);
  return 0;
}

static void test_task_cancel_after_waiter_done_delivers_cancel(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  struct wake_race w = {0};
  fut_new(loop, &w.f);
  fut_t *t = spawn(loop, await_plain, &w);
  fut_loop_run_once(loop, 0); /* the task waits on f */
  /* f completes (the wakeup is queued), then the task is cancelled: f
   * cannot be cancelled any more, so the await reports the cancel. */
  fut_set_result_i64(w.f, 1);
  assert_true(fut_cancel(t, NULL));
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  assert_int_equal(w.rc, -ECANCELED);
  fut_unref(w.f);
  fut_unref(t);
  end_loop(loop);
}

static void test_task_cancel_cancels_awaited_future(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  struct wake_race w = {0};
  fut_new(loop, &w.f);
  fut_t *t = spawn(loop, await_plain, &w);
  fut_loop_run_once(loop, 0);
  assert_true(fut_cancel(t, "stop"));
  assert_true(fut_cancelled(w.f));
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  assert_int_equal(w.rc, -ECANCELED);
  fut_unref(w.f);
  fut_unref(t);
  end_loop(loop);
}

static int await_inner_task(void *arg) {
  fut_t **inner = arg;
  return fut_await(*inner, NULL);
}

static void test_task_cancel_propagates_to_awaited_task(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  struct cancel_probe p = {0};
  fut_t *inner = spawn(loop, long_sleeper, &p);
  fut_t *outer = spawn(loop, await_inner_task, &inner);
  fut_loop_run_once(loop, 0);
  fut_loop_run_once(loop, 0);
  assert_true(fut_cancel(outer, NULL));
  assert_int_equal(fut_loop_run_until_complete(loop, outer), -ECANCELED);
  assert_true(fut_cancelled(inner));
  assert_int_equal(p.sleep_rc, -ECANCELED);
  fut_unref(inner);
  fut_unref(outer);
  end_loop(loop);
}

static void
test_task_inner_ignoring_cancel_gives_outer_its_result(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  struct cancel_probe p = {.catch_it = true};
  fut_t *inner = spawn(loop, long_sleeper, &p);
  fut_t *outer = spawn(loop, await_inner_task, &inner);
  fut_loop_run_once(loop, 0);
  fut_loop_run_once(loop, 0);
  assert_true(fut_cancel(outer, NULL));
  /* asyncio: the inner caught it and returned; the outer sees the result
   * and is not cancelled. */
  assert_int_equal(fut_loop_run_until_complete(loop, outer), 0);
  assert_false(fut_cancelled(outer));
  assert_int_equal(fut_task_cancelling(outer), 1);
  fut_unref(inner);
  fut_unref(outer);
  end_loop(loop);
}

static int cancelling_probe(void *arg) {
  (void)arg;
  fut_t *self = fut_current_task(NULL);
  assert_int_equal(fut_task_cancelling(self), 0);
  fut_cancel(self, NULL);
  fut_cancel(self, NULL);
  assert_int_equal(fut_task_cancelling(self), 2);
  assert_int_equal(fut_task_uncancel(self), 1);
  /* Still one request: the next suspension delivers it. */
  assert_int_equal(fut_yield(), -ECANCELED);
  assert_int_equal(fut_task_uncancel(self), 0);
  assert_int_equal(fut_task_uncancel(self), 0);
  /* Withdrawn before delivery: no cancel arrives. */
  fut_cancel(self, NULL);
  assert_int_equal(fut_task_uncancel(self), 0);
  assert_int_equal(fut_yield(), 0);
  return 0;
}

static void test_task_cancelling_and_uncancel(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *t = spawn(loop, cancelling_probe, NULL);
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  fut_t *f;
  fut_new(loop, &f);
  assert_int_equal(fut_task_cancelling(f), 0);
  assert_int_equal(fut_task_uncancel(f), 0);
  fut_unref(f);
  fut_unref(t);
  end_loop(loop);
}

static int await_after_self_cancel(void *arg) {
  fut_t *f = arg;
  fut_cancel(fut_current_task(NULL), "pending");
  /* The pending cancel is delivered to the future we now wait on. */
  int rc = fut_await(f, NULL);
  assert_true(fut_cancelled(f));
  return rc;
}

static void test_task_pending_cancel_cancels_next_awaited(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *f;
  fut_new(loop, &f);
  fut_t *t = spawn(loop, await_after_self_cancel, f);
  assert_int_equal(fut_loop_run_until_complete(loop, t), -ECANCELED);
  fut_unref(f);
  fut_unref(t);
  end_loop(loop);
}

/* ---- cancellation through combinators, await cycles --------------------- */

/* Sleeps 20 ms; when cancelled, returns 7 (refuses the cancel). */
static int stubborn(void *arg) {
  (void)arg;
  int rc = fut_sleep(FUT_MS(20));
  return fut_task_return_i64(rc == -ECANCELED ? 7 : 1);
}

static void test_task_wait_for_inner_refusing_cancel_result_wins(void **s) {
  (void)s;
  fut_loop_t *loop = new_loop();
  fut_t *t = spawn(loop, stubborn, NULL), *w;
  assert_int_equal(fut_wait_for(t, FUT_MS(2), &w), 0);
  run_until_done(loop, w);
  int64_t v = 0;
  assert_int_equal(fut_result_i64(w, &v), 0);
  assert_int_equal(v, 7);
  fut_unref(w);
  run_until_done(loop, t);
  fut_unref(t);
  end_loop(loop);
}

static void test_task_gather_cancel_with_refusing_child_is_cancelled(void **s) {
  (void)s;
  for (unsigned flags = 0; flags <= FUT_GATHER_RETURN_EXCEPTIONS;
       flags += FUT_GATHER_RETURN_EXCEPTIONS) {
    fut_loop_t *loop = new_loop();
    fut_t *t = spawn(loop, stubborn, NULL), *g;
    assert_int_equal(fut_gather(loop, &t, 1, flags, &g), 0);
    drain(loop);
    assert_true(fut_cancel(g, NULL));
    run_until_done(loop, g);
    assert_true(fut_cancelled(g));
    run_until_done(loop, t);
    int64_t v = 0;
    assert_int_equal(fut_result_i64(t, &v), 0);
    assert_int_equal(v, 7);
    fut_unref(g);
    fut_unref(t);
    end_loop(loop);
  }
}

struct shielded {
  fut_t *inner;
  int rc;
};

static int await_shield(void *arg) {
  struct shielded *sh = arg;
  fut_t *o;
  assert_int_equal(fut_shield(sh->inner, &o), 0);
  sh->rc = fut_await(o, NULL);
  fut_unref(o);
  return sh->rc;
}

static void test_task_cancel_through_shield_leaves_inner(void **s) {
  (void)s;
  fut_loop_t *loop = new_loop();
  struct shielded sh = {spawn(loop, stubborn, NULL), 0};
  fut_t *t = spawn(loop, await_shield, &sh);
  drain(loop);
  assert_true(fut_cancel(t, "stop"));
  run_until_done(loop, t);
  assert_true(fut_cancelled(t));
  assert_int_equal(sh.rc, -ECANCELED);
  const char *msg = NULL;
  assert_int_equal(fut_exception(t, &msg), -ECANCELED);
  assert_non_null(msg);
  assert_string_equal(msg, "stop");
  assert_false(fut_done(sh.inner));
  run_until_done(loop, sh.inner);
  int64_t v = 0;
  assert_int_equal(fut_result_i64(sh.inner, &v), 0);
  assert_int_equal(v, 1);
  drain(loop);
  fut_unref(sh.inner);
  fut_unref(t);
  end_loop(loop);
}

static fut_t *cyc[2];

static int await_other(void *arg) {
  return fut_await(cyc[(intptr_t)arg], NULL);
}

/* Bug: cancelling a task of an await cycle (T1 awaits T2 awaits T1)
 * recursed without end, each task cancelling its waiter, and overflowed
 * the stack (a crash; asyncio raises RecursionError).  The cycle cannot
 * finish, but the cancel must return and loop close must clean up. */
static void test_task_cancel_await_cycle_does_not_recurse(void **s) {
  (void)s;
  fut_loop_t *loop = new_loop();
  cyc[0] = spawn(loop, await_other, (void *)1);
  cyc[1] = spawn(loop, await_other, (void *)0);
  drain(loop);
  assert_true(fut_cancel(cyc[0], NULL));
  assert_true(fut_cancel(cyc[1], NULL));
  drain(loop);
  assert_false(fut_done(cyc[0]));
  assert_int_equal(fut_loop_close(loop), 0);
  assert_true(fut_cancelled(cyc[0]));
  assert_true(fut_cancelled(cyc[1]));
  fut_unref(cyc[0]);
  fut_unref(cyc[1]);
  end_loop(loop);
}

static int await_gather_of_self(void *arg) {
  (void)arg;
  fut_t *me = fut_current_task(NULL), *g;
  assert_int_equal(fut_gather(fut_get_loop(me), &me, 1, 0, &g), 0);
  int rc = fut_await(g, NULL);
  fut_unref(g);
  return rc;
}

static int await_wait_for_of_self(void *arg) {
  (void)arg;
  fut_t *me = fut_current_task(NULL), *w;
  assert_int_equal(fut_wait_for(me, UINT64_MAX, &w), 0);
  int rc = fut_await(w, NULL);
  fut_unref(w);
  return rc;
}

/* The same cycle through a combinator: a task awaiting a gather or a
 * wait_for of itself. */
static void test_task_cancel_awaiting_combinator_of_itself(void **s) {
  (void)s;
  fut_task_fn fns[2] = {await_gather_of_self, await_wait_for_of_self};
  for (int i = 0; i < 2; i++) {
    fut_loop_t *loop = new_loop();
    fut_t *t = spawn(loop, fns[i], NULL);
    drain(loop);
    assert_true(fut_cancel(t, NULL));
    drain(loop);
    assert_int_equal(fut_loop_close(loop), 0);
    assert_true(fut_done(t));
    (void)fut_exception(t, NULL);
    fut_unref(t);
    end_loop(loop);
  }
}

/* ---- introspection ------------------------------------------------------- */

struct intro {
  fut_loop_t *loop;
  fut_t *self_seen;
};

static int introspect(void *arg) {
  struct intro *in = arg;
  in->self_seen = fut_current_task(in->loop);
  fut_t *all[4];
  assert_int_equal(fut_all_tasks(in->loop, all, 4), 2);
  return 0;
}

static void test_task_current_and_all_tasks(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  struct intro in = {.loop = loop};
  fut_t *a = spawn(loop, introspect, &in);
  fut_t *b = spawn(loop, ret_none, NULL);
  fut_t *all[4] = {0};
  assert_int_equal(fut_all_tasks(loop, all, 4), 2);
  assert_true((all[0] == a && all[1] == b) || (all[0] == b && all[1] == a));
  assert_int_equal(fut_loop_run_until_complete(loop, a), 0);
  assert_ptr_equal(in.self_seen, a);
  assert_null(fut_current_task(loop));
  fut_loop_run_until_complete(loop, b);
  assert_int_equal(fut_all_tasks(loop, all, 4), 0);
  fut_unref(a);
  fut_unref(b);
  end_loop(loop);
}

/* The loop's task list is its task slab (docs/tasks.md, "A smaller task
 * object"): over several slab chunks, with slots freed by finished tasks
 * and taken again by new ones, fut_all_tasks lists exactly the tasks not
 * done, and loop close gives each of them its last run. */
struct many {
  fut_t *gate;
  int last_runs;
};

static int await_gate_then_count(void *arg) {
  struct many *m = arg;
  int rc = fut_await(m->gate, NULL);
  if (rc == -ECANCELED)
    m->last_runs++;
  return rc;
}

enum { MANY = 1500, MORE = 500 };

static void test_task_list_over_many_slab_slots(void **state) {
  (void)state;
  handler_calls = 0;
  fut_loop_t *loop = new_loop();
  fut_loop_set_exception_handler(loop, counting_handler, NULL);
  struct many m = {.gate = newf(loop)};
  static fut_t *ts[MANY + MORE], *out[MANY + MORE + 1];
  for (int i = 0; i < MANY; i++)
    ts[i] = spawn(loop, i % 2 ? ret_none : await_gate_then_count, &m);
  assert_int_equal(fut_all_tasks(loop, NULL, 0), MANY);
  drain(loop);
  /* The odd ones ended: their slots go free. */
  for (int i = 1; i < MANY; i += 2) {
    assert_true(fut_done(ts[i]));
    fut_unref(ts[i]);
    ts[i] = NULL;
  }
  assert_int_equal(fut_all_tasks(loop, NULL, 0), MANY / 2);
  for (int i = MANY; i < MANY + MORE; i++)
    ts[i] = spawn(loop, await_gate_then_count, &m);
  drain(loop);
  size_t n = fut_all_tasks(loop, out, MANY + MORE + 1);
  assert_int_equal(n, MANY / 2 + MORE);
  /* Exactly the pending ones, each once. */
  for (size_t k = 0; k < n; k++) {
    int found = -1;
    for (int i = 0; i < MANY + MORE && found < 0; i++)
      if (ts[i] && out[k] == ts[i])
        found = i;
    assert_true(found >= 0 && (found >= MANY || found % 2 == 0));
    assert_false(fut_done(out[k]));
    for (size_t j = 0; j < k; j++)
      assert_ptr_not_equal(out[j], out[k]);
  }
  /* A short buffer gets the first ones, the count is still all. */
  assert_int_equal(fut_all_tasks(loop, out, 3), MANY / 2 + MORE);
  assert_int_equal(fut_loop_close(loop), 0);
  assert_int_equal(m.last_runs, MANY / 2 + MORE);
  assert_int_equal(handler_calls, MANY / 2 + MORE); /* destroyed pending */
  assert_int_equal(fut_all_tasks(loop, NULL, 0), 0);
  for (int i = 0; i < MANY + MORE; i++) {
    if (!ts[i])
      continue;
    assert_true(fut_cancelled(ts[i]));
    fut_unref(ts[i]);
  }
  fut_unref(m.gate);
  end_loop(loop);
}

static void test_task_names_and_stack_size(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *a = spawn(loop, ret_none, NULL);
  assert_string_equal(fut_task_get_name(a), "Task-1");
  assert_int_equal(fut_task_stack_size(a), FUT_TASK_DEFAULT_STACK);
  fut_task_opts_t o;
  fut_task_opts_init(&o);
  o.name = "worker";
  o.stack_size = 20000; /* rounded up to pages */
  fut_t *b;
  assert_int_equal(fut_create_task(loop, ret_none, NULL, &o, &b), 0);
  assert_string_equal(fut_task_get_name(b), "worker");
  assert_int_equal(fut_task_stack_size(b) % 4096, 0);
  assert_true(fut_task_stack_size(b) >= 20000);
  assert_int_equal(fut_task_set_name(b, "renamed"), 0);
  assert_string_equal(fut_task_get_name(b), "renamed");
  assert_int_equal(fut_task_set_name(b, NULL), -EINVAL);
  fut_t *f;
  fut_new(loop, &f);
  assert_false(fut_is_task(f));
  assert_null(fut_task_get_name(f));
  assert_int_equal(fut_task_stack_size(f), 0);
  assert_int_equal(fut_task_set_name(f, "x"), -EINVAL);
  fut_unref(f);
  fut_loop_run_until_complete(loop, a);
  fut_loop_run_until_complete(loop, b);
  fut_unref(a);
  fut_unref(b);
  end_loop(loop);
}

/* Default names are formatted on first request, not at creation: the
 * numbering still counts every task, the pointer stays the same while the
 * task lives, and a rename replaces it. */
static void test_task_default_name_is_lazy(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *t[3];
  for (int i = 0; i < 3; i++)
    t[i] = spawn(loop, ret_none, NULL);
  const char *n3 = fut_task_get_name(t[2]); /* 1 and 2 never asked yet */
  assert_string_equal(n3, "Task-3");
  assert_ptr_equal(fut_task_get_name(t[2]), n3);
  assert_int_equal(fut_loop_run_until_complete(loop, t[0]), 0);
  /* Asked for after the task is done: still its creation number. */
  assert_string_equal(fut_task_get_name(t[0]), "Task-1");
  assert_int_equal(fut_task_set_name(t[1], "named"), 0);
  assert_string_equal(fut_task_get_name(t[1]), "named");
  assert_int_equal(fut_task_set_name(t[2], "other"), 0);
  assert_string_equal(fut_task_get_name(t[2]), "other");
  for (int i = 0; i < 3; i++) {
    fut_loop_run_until_complete(loop, t[i]);
    fut_unref(t[i]);
  }
  end_loop(loop);
}

static void test_task_create_bad_arguments(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *t = (fut_t *)1;
  assert_int_equal(fut_create_task(loop, NULL, NULL, NULL, &t), -EINVAL);
  assert_null(t);
  assert_int_equal(fut_create_task(NULL, ret_none, NULL, NULL, &t), -EINVAL);
  assert_int_equal(fut_create_task(loop, ret_none, NULL, NULL, NULL), -EINVAL);
  fut_task_opts_t o;
  fut_task_opts_init(&o);
  o.stack_size = 1024;
  assert_int_equal(fut_create_task(loop, ret_none, NULL, &o, &t), -EINVAL);
  o.stack_size = (size_t)1 << 40;
  assert_int_equal(fut_create_task(loop, ret_none, NULL, &o, &t), -EINVAL);
  fut_loop_close(loop);
  assert_int_equal(fut_create_task(loop, ret_none, NULL, NULL, &t),
                   FUT_E_CLOSED);
  end_loop(loop);
}

static void test_task_create_out_of_memory_leaves_nothing(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *warm = spawn(loop, ret_none, NULL); /* task state exists */
  fut_loop_run_until_complete(loop, warm);
  fut_unref(warm);
  for (long n = 1; n <= 3; n++) {
    fut_t *t;
    fut__alloc_fail_after(n, false);
    int rc = fut_create_task(loop, ret_none, NULL, NULL, &t);
    fut__alloc_fail_after(0, false);
    if (rc == 0) {
      fut_loop_run_until_complete(loop, t);
      fut_unref(t);
      continue;
    }
    assert_int_equal(rc, -ENOMEM);
    assert_null(t);
  }
  end_loop(loop);
}

/* ---- close and failures nobody read -------------------------------------- */

struct closing {
  fut_t *f;
  int await_rc;
  int second_rc;
  bool cleaned;
};

static int wait_forever(void *arg) {
  struct closing *c = arg;
  c->await_rc = fut_await(c->f, NULL);
  c->second_rc = fut_sleep(FUT_MS(1)); /* returns at once while closing */
  c->cleaned = true;
  return c->await_rc;
}

static void test_task_loop_close_finishes_pending_tasks(void **state) {
  (void)state;
  handler_calls = 0;
  fut_loop_t *loop = new_loop();
  fut_loop_set_exception_handler(loop, counting_handler, NULL);
  struct closing c = {0};
  fut_new(loop, &c.f);
  fut_t *t = spawn(loop, wait_forever, &c);
  struct cancel_probe p = {0};
  fut_t *never = spawn(loop, long_sleeper, &p);
  fut_loop_run_once(loop, 0);
  fut_cancel(never, NULL); /* cancel requested, the step not yet run */
  assert_int_equal(fut_loop_close(loop), 0);
  assert_true(c.cleaned);
  assert_int_equal(c.await_rc, -ECANCELED);
  assert_int_equal(c.second_rc, -ECANCELED);
  assert_true(fut_cancelled(t));
  assert_true(fut_done(never));
  assert_int_equal(handler_calls, 2);
  assert_string_equal(handler_msg, "Task was destroyed but it is pending!");
  fut_unref(c.f);
  fut_unref(t);
  fut_unref(never);
  end_loop(loop);
}

struct other_close {
  fut_loop_t *other;
  int rc;
};

static int close_other_loop(void *arg) {
  struct other_close *oc = arg;
  oc->rc = fut_loop_close(oc->other);
  return 0;
}

static void test_task_close_other_loop_from_a_task(void **state) {
  (void)state;
  handler_calls = 0;
  fut_loop_t *loop = new_loop(), *other = new_loop();
  fut_loop_set_exception_handler(other, counting_handler, NULL);
  struct closing c = {0};
  fut_new(other, &c.f);
  fut_t *t = spawn(other, wait_forever, &c);
  fut_loop_run_once(other, 0); /* t waits on c.f */
  struct other_close oc = {.other = other, .rc = 1};
  fut_t *closer = spawn(loop, close_other_loop, &oc);
  assert_int_equal(fut_loop_run_until_complete(loop, closer), 0);
  assert_int_equal(oc.rc, 0);
  /* The other loop's task could not run from inside a task: it ends
   * cancelled, its clean-up skipped. */
  assert_true(fut_cancelled(t));
  assert_false(c.cleaned);
  assert_int_equal(handler_calls, 1);
  fut_unref(c.f);
  fut_unref(t);
  fut_unref(closer);
  end_loop(other);
  end_loop(loop);
}

static void test_task_exception_never_retrieved_is_reported(void **state) {
  (void)state;
  handler_calls = 0;
  fut_loop_t *loop = new_loop();
  fut_loop_set_exception_handler(loop, counting_handler, NULL);
  fut_t *t = spawn(loop, fail_eio, NULL);
  fut_unref(t); /* fire and forget */
  for (int i = 0; i < 3; i++)
    fut_loop_run_once(loop, 0);
  assert_int_equal(handler_calls, 1);
  assert_string_equal(handler_msg, "Future exception was never retrieved");
  end_loop(loop);
}

/* ---- stacks -------------------------------------------------------------- */

static int recurse(int depth, volatile char *prev) {
  volatile char buf[1024];
  buf[0] = (char)depth;
  buf[1023] = prev ? prev[0] : 0;
  if (depth == 0)
    return buf[0] + buf[1023];
  return recurse(depth - 1, buf) + 1;
}

static int deep(void *arg) {
  (void)arg;
  /* Three quarters of the default stack in 1 KiB frames (48 KiB of the
   * 64 KiB): well inside it. */
  int depth = (int)(FUT_TASK_DEFAULT_STACK / 1024 * 3 / 4);
  return recurse(depth, NULL) == depth + 1 ? 0 : -EIO;
}

static void test_task_deep_stack_use_within_limit(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *t = spawn(loop, deep, NULL);
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  fut_unref(t);
  end_loop(loop);
}

static int yield_then_return(void *arg) {
  (void)arg;
  fut_yield();
  return 0;
}

static void test_task_stacks_are_recycled(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  /* Many more tasks than the stack cache holds, in waves. */
  for (int wave = 0; wave < 3; wave++) {
    fut_t *ts[100];
    for (int i = 0; i < 100; i++)
      ts[i] = spawn(loop, yield_then_return, NULL);
    fut_loop_run_until_complete(loop, ts[99]);
    for (int i = 0; i < 100; i++) {
      fut_loop_run_until_complete(loop, ts[i]);
      fut_unref(ts[i]);
    }
  }
  end_loop(loop);
}

/* ---- FP control words ------------------------------------------------ */

#if defined(__x86_64__)
static unsigned get_mxcsr(void) {
  unsigned v;
  __asm__ volatile("stmxcsr %0" : "=m"(v));
  return v;
}
static void set_mxcsr(unsigned v) {
  __asm__ volatile("ldmxcsr %0" : : "m"(v));
}

#define MXCSR_ROUND_DOWN 0x2000u
static unsigned seen_by_loop;
static void read_loop_mxcsr(void *arg) {
  (void)arg;
  seen_by_loop = get_mxcsr();
}

static int fp_task(void *arg) {
  unsigned *after = arg;
  unsigned base = get_mxcsr();
  set_mxcsr((base & ~0x6000u) | MXCSR_ROUND_DOWN);
  fut_loop_call_soon(fut_get_running_loop(), read_loop_mxcsr, NULL, NULL);
  fut_yield();
  fut_yield();
  *after = get_mxcsr();
  set_mxcsr(base);
  return 0;
}
#endif

static void test_task_fp_control_word_is_per_task(void **state) {
  (void)state;
#if defined(__x86_64__)
  fut_loop_t *loop = new_loop();
  unsigned loop_mxcsr = get_mxcsr(), after = 0;
  fut_t *t = spawn(loop, fp_task, &after);
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  /* The loop kept its rounding mode while the task ran with its own. */
  assert_int_equal(seen_by_loop & 0x6000u, loop_mxcsr & 0x6000u);
  assert_int_equal(after & 0x6000u, MXCSR_ROUND_DOWN);
  assert_int_equal(get_mxcsr(), loop_mxcsr);
  fut_unref(t);
  end_loop(loop);
#else
  skip();
#endif
}

/* ---- a task's outcome is its own ----------------------------------------- */

static int yield_then_42(void *arg) {
  (void)arg;
  int err = fut_yield();
  if (err)
    return err;
  return fut_task_return_i64(42);
}

/* asyncio parity: Task.set_result() and Task.set_exception() raise
 * RuntimeError ("Task does not support set_result() operation"): only the
 * task's coroutine decides its outcome.  Here every setter on a task, from
 * outside, is refused with FUT_E_NOT_SETTABLE and leaves it pending; the
 * task then finishes with its own result, and nothing is reported. */
static void test_task_set_outcome_from_outside_refused(void **state) {
  (void)state;
  handler_calls = 0;
  fut_loop_t *loop = new_loop();
  fut_loop_set_exception_handler(loop, counting_handler, NULL);
  fut_t *t = spawn(loop, yield_then_42, NULL);
  fut_t *done = newf(loop);
  assert_int_equal(fut_set_result_i64(done, 1), 0);
  for (int round = 0; round < 2; round++) {
    /* Round 0: not started yet; round 1: suspended in fut_yield. */
    assert_int_equal(fut_set_result_i64(t, 7), FUT_E_NOT_SETTABLE);
    assert_non_null(strstr(fut_last_error(), "task"));
    assert_int_equal(fut_set_result(t, NULL, NULL), FUT_E_NOT_SETTABLE);
    assert_int_equal(fut_set_result_bytes(t, "x", 1), FUT_E_NOT_SETTABLE);
    void *owned = malloc(4);
    assert_int_equal(fut_set_result_bytes_owned(t, owned, 4),
                     FUT_E_NOT_SETTABLE);
    free(owned); /* refused: still the caller's */
    assert_int_equal(fut_set_exception(t, -EIO, "from outside"),
                     FUT_E_NOT_SETTABLE);
    assert_int_equal(fut_copy_state(t, done), FUT_E_NOT_SETTABLE);
    assert_false(fut_done(t));
    if (round == 0)
      assert_int_equal(fut_loop_run_once(loop, 0), 0);
  }
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  int64_t v = 0;
  assert_int_equal(fut_result_i64(t, &v), 0);
  assert_int_equal(v, 42);
  drain(loop);
  assert_int_equal(handler_calls, 0);
  fut_unref(done);
  fut_unref(t);
  end_loop(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_task_returns_i64),
      cmocka_unit_test(test_task_returns_ptr_with_destructor),
      cmocka_unit_test(test_task_returns_bytes),
      cmocka_unit_test(test_task_returns_null_by_default),
      cmocka_unit_test(test_task_failure_code_and_message),
      cmocka_unit_test(test_task_cancelled_with_fail_message),
      cmocka_unit_test(test_task_positive_return_fails_einval),
      cmocka_unit_test(test_task_fail_rejects_nonnegative_code),
      cmocka_unit_test(test_task_fail_rejects_int_min),
      cmocka_unit_test(test_await_order_and_results),
      cmocka_unit_test(test_await_returns_error_code),
      cmocka_unit_test(test_await_done_future_returns_without_switch),
      cmocka_unit_test(test_await_outside_task_is_an_error),
      cmocka_unit_test(test_await_bad_arguments),
      cmocka_unit_test(test_task_nested_tasks),
      cmocka_unit_test(test_task_awaits_task),
      cmocka_unit_test(test_task_ends_with_pending_children),
      cmocka_unit_test(test_sleep_waits_at_least_the_delay),
      cmocka_unit_test(test_yield_interleaves_tasks_fifo),
      cmocka_unit_test(test_sleep_zero_yields),
      cmocka_unit_test(test_task_cancel_sleeping_task),
      cmocka_unit_test(test_task_cancel_caught_ends_with_result),
      cmocka_unit_test(test_task_cancel_requested_at_return_still_cancels),
      cmocka_unit_test(test_task_cancel_before_start_never_runs),
      cmocka_unit_test(test_task_cancel_done_task_returns_false),
      cmocka_unit_test(test_task_cancel_delivered_at_yield),
      cmocka_unit_test(test_task_cancel_after_waiter_done_delivers_cancel),
      cmocka_unit_test(test_task_cancel_cancels_awaited_future),
      cmocka_unit_test(test_task_cancel_propagates_to_awaited_task),
      cmocka_unit_test(test_task_inner_ignoring_cancel_gives_outer_its_result),
      cmocka_unit_test(test_task_cancelling_and_uncancel),
      cmocka_unit_test(test_task_pending_cancel_cancels_next_awaited),
      cmocka_unit_test(test_task_wait_for_inner_refusing_cancel_result_wins),
      cmocka_unit_test(
          test_task_gather_cancel_with_refusing_child_is_cancelled),
      cmocka_unit_test(test_task_cancel_through_shield_leaves_inner),
      cmocka_unit_test(test_task_cancel_await_cycle_does_not_recurse),
      cmocka_unit_test(test_task_cancel_awaiting_combinator_of_itself),
      cmocka_unit_test(test_task_current_and_all_tasks),
      cmocka_unit_test(test_task_list_over_many_slab_slots),
      cmocka_unit_test(test_task_names_and_stack_size),
      cmocka_unit_test(test_task_default_name_is_lazy),
      cmocka_unit_test(test_task_create_bad_arguments),
      cmocka_unit_test(test_task_create_out_of_memory_leaves_nothing),
      cmocka_unit_test(test_task_loop_close_finishes_pending_tasks),
      cmocka_unit_test(test_task_close_other_loop_from_a_task),
      cmocka_unit_test(test_task_exception_never_retrieved_is_reported),
      cmocka_unit_test(test_task_set_outcome_from_outside_refused),
      cmocka_unit_test(test_task_deep_stack_use_within_limit),
      cmocka_unit_test(test_task_stacks_are_recycled),
      cmocka_unit_test(test_task_fp_control_word_is_per_task),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
