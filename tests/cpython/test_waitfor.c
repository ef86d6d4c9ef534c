/* CPython's Lib/test/test_asyncio/test_waitfor.py (class AsyncioWaitForTest)
 * as libfuture's behavioural spec: one cmocka test per CPython test
 * method, named after it.  A coroutine passed to asyncio.wait_for becomes
 * a task here (fut_wait_for takes a future); each CPython test body runs as
 * a main task on the fixture's loop.  Task functions only record what they
 * see; the assertions run on the test's own stack. */
#include "fixture.h"
#include "task_helpers.h"

#define T(fn) FX_LOOP_TEST(fn)

/* The CPython file's very small timeout. */
#define EPSILON FUT_US(100)

/* A task of the running loop, or NULL (task functions record what they
 * see and do not assert). */
static fut_t *spawn_here(fut_task_fn fn, void *arg) {
  fut_t *t = NULL;
  if (fut_create_task(fut_get_running_loop(), fn, arg, NULL, &t) != 0)
    return NULL;
  return t;
}

/* ---- SlowTask: runs TASK_TIMEOUT, ignoring cancel requests --------------- */

#define TASK_TIMEOUT FUT_MS(200)

struct slow {
  bool exited;
};

static int slow_run(void *arg) {
  struct slow *s = arg;
  fut_loop_t *loop = fut_get_running_loop();
  uint64_t exitat = fut_loop_time(loop) + TASK_TIMEOUT;
  for (;;) {
    uint64_t now = fut_loop_time(loop);
    if (now >= exitat)
      break;
    (void)fut_sleep(exitat - now); /* -ECANCELED ignored */
  }
  s->exited = true;
  return 0;
}

struct ctx {
  struct slow slow;
  int rc, rc2;
  bool flag, flag2;
  uint64_t elapsed;
  fut_t *fut, *task;
};

static int wait_for_cancelled_main(void *arg) {
  struct ctx *c = arg;
  fut_t *inner = spawn_here(slow_run, &c->slow), *w;
  int err = fut_wait_for(inner, TASK_TIMEOUT * 2, &w);
  fut_unref(inner);
  if (err)
    return err;
  fut_yield();
  fut_cancel(w, NULL);
  fut_t *all;
  if ((err = fut_wait(fut_get_running_loop(), &w, 1, FUT_WAIT_ALL_COMPLETED,
                      UINT64_MAX, &all)) == 0) {
    err = fut_await(all, NULL);
    fut_unref(all);
  }
  (void)fut_exception(w, NULL);
  fut_unref(w);
  return err;
}

/* AsyncioWaitForTest.test_asyncio_wait_for_cancelled */
static void test_asyncio_wait_for_cancelled(void **state) {
  struct ctx c = {0};
  assert_int_equal(run_main(*state, wait_for_cancelled_main, &c), 0);
  assert_true(c.slow.exited);
}

static int wait_for_timeout_main(void *arg) {
  struct ctx *c = arg;
  fut_t *inner = spawn_here(slow_run, &c->slow), *w;
  int err = fut_wait_for(inner, TASK_TIMEOUT / 2, &w);
  fut_unref(inner);
  if (err)
    return err;
  c->rc = fut_await(w, NULL); /* a TimeoutError would be caught */
  fut_unref(w);
  return 0;
}

/* AsyncioWaitForTest.test_asyncio_wait_for_timeout */
static void test_asyncio_wait_for_timeout(void **state) {
  struct ctx c = {0};
  assert_int_equal(run_main(*state, wait_for_timeout_main, &c), 0);
  assert_true(c.rc == 0 || c.rc == -ETIMEDOUT);
  assert_true(c.slow.exited);
}

static int done_future_main(void *arg) {
  struct ctx *c = arg;
  fut_loop_t *loop = fut_get_running_loop();
  fut_t *fut, *w;
  int err = fut_new(loop, &fut);
  if (err)
    return err;
  fut_set_result_bytes(fut, "done", 4);
  uint64_t t0 = fut_loop_time(loop);
  if ((err = fut_wait_for(fut, 0, &w)) == 0) {
    const void *d = NULL;
    c->rc = fut_await_bytes(w, &d, NULL);
    c->flag = c->rc == 0 && memcmp(d, "done", 4) == 0;
    fut_unref(w);
  }
  c->elapsed = fut_loop_time(loop) - t0;
  c->flag2 = fut_done(fut);
  fut_unref(fut);
  return err;
}

/* AsyncioWaitForTest.test_wait_for_timeout_less_then_0_or_0_future_done */
static void test_wait_for_timeout_less_then_0_or_0_future_done(void **state) {
  struct ctx c = {0};
  assert_int_equal(run_main(*state, done_future_main, &c), 0);
  assert_int_equal(c.rc, 0);
  assert_true(c.flag);
  assert_true(c.flag2);
  assert_true(c.elapsed < FUT_MS(100));
}

static int foo_flag(void *arg) {
  *(bool *)arg = true;
  return 0;
}

static int not_started_main(void *arg) {
  struct ctx *c = arg;
  fut_loop_t *loop = fut_get_running_loop();
  fut_t *foo = spawn_here(foo_flag, &c->flag), *w;
  uint64_t t0 = fut_loop_time(loop);
  int err = fut_wait_for(foo, 0, &w);
  fut_unref(foo);
  if (err)
    return err;
  c->rc = fut_await(w, NULL);
  c->elapsed = fut_loop_time(loop) - t0;
  fut_unref(w);
  return 0;
}

/* AsyncioWaitForTest.
 * test_wait_for_timeout_less_then_0_or_0_coroutine_do_not_started */
static void
test_wait_for_timeout_less_then_0_or_0_coroutine_do_not_started(void **state) {
  struct ctx c = {0};
  assert_int_equal(run_main(*state, not_started_main, &c), 0);
  assert_int_equal(c.rc, -ETIMEDOUT);
  assert_false(c.flag); /* foo_started */
  assert_true(c.elapsed < FUT_MS(100));
}

/* foo of the CPython tests: running while it sleeps 10 s, then 'done'. */
struct foo {
  bool running;
  fut_t *started; /* resolved once running, or NULL */
};

static int foo_run(void *arg) {
  struct foo *f = arg;
  f->running = true;
  if (f->started)
    fut_set_result(f->started, NULL, NULL);
  int err = fut_sleep(FUT_SEC(10));
  f->running = false; /* finally */
  if (err)
    return err;
  return fut_task_return_bytes("done", 4);
}

struct foo_ctx {
  struct foo foo;
  int rc;
  bool done, cancelled;
  uint64_t elapsed;
  uint64_t timeout;
};

static int less_then_0_main(void *arg) {
  struct foo_ctx *c = arg;
  fut_loop_t *loop = fut_get_running_loop();
  int err = fut_new(loop, &c->foo.started);
  if (err)
    return err;
  fut_t *fut = spawn_here(foo_run, &c->foo), *w;
  err = fut_await(c->foo.started, NULL);
  fut_unref(c->foo.started);
  c->foo.started = NULL;
  if (err)
    return err;
  uint64_t t0 = fut_loop_time(loop);
  if ((err = fut_wait_for(fut, c->timeout, &w)) == 0) {
    c->rc = fut_await(w, NULL);
    fut_unref(w);
  }
  c->elapsed = fut_loop_time(loop) - t0;
  c->done = fut_done(fut);
  c->cancelled = fut_cancelled(fut);
  fut_unref(fut);
  return err;
}

/* AsyncioWaitForTest.test_wait_for_timeout_less_then_0_or_0 (timeout 0;
 * the subtest with -1 has no counterpart: timeouts are unsigned) */
static void test_wait_for_timeout_less_then_0_or_0(void **state) {
  struct foo_ctx c = {.timeout = 0};
  assert_int_equal(run_main(*state, less_then_0_main, &c), 0);
  assert_int_equal(c.rc, -ETIMEDOUT);
  assert_true(c.done);
  assert_true(c.cancelled);
  assert_false(c.foo.running);
  assert_true(c.elapsed < FUT_MS(100));
}

static int wait_for_main(void *arg) {
  struct foo_ctx *c = arg;
  fut_loop_t *loop = fut_get_running_loop();
  fut_t *fut = spawn_here(foo_run, &c->foo), *w;
  uint64_t t0 = fut_loop_time(loop);
  int err = fut_wait_for(fut, FUT_MS(100), &w);
  if (err == 0) {
    c->rc = fut_await(w, NULL);
    fut_unref(w);
  }
  c->elapsed = fut_loop_time(loop) - t0;
  c->done = fut_done(fut);
  c->cancelled = fut_cancelled(fut);
  fut_unref(fut);
  return err;
}

/* AsyncioWaitForTest.test_wait_for */
static void test_wait_for(void **state) {
  struct foo_ctx c = {0};
  assert_int_equal(run_main(*state, wait_for_main, &c), 0);
  assert_int_equal(c.rc, -ETIMEDOUT);
  assert_true(c.done);
  assert_true(c.cancelled);
  assert_true(c.elapsed < FUT_MS(500));
  assert_false(c.foo.running);
}

static int coro_done(void *arg) {
  (void)arg;
  return fut_task_return_bytes("done", 4);
}

static int blocking_main(void *arg) {
  struct ctx *c = arg;
  fut_t *t = spawn_here(coro_done, NULL), *w;
  int err = fut_wait_for(t, UINT64_MAX, &w); /* timeout=None */
  fut_unref(t);
  if (err)
    return err;
  const void *d = NULL;
  c->rc = fut_await_bytes(w, &d, NULL);
  c->flag = c->rc == 0 && memcmp(d, "done", 4) == 0;
  fut_unref(w);
  return 0;
}

/* AsyncioWaitForTest.test_wait_for_blocking */
static void test_wait_for_blocking(void **state) {
  struct ctx c = {0};
  assert_int_equal(run_main(*state, blocking_main, &c), 0);
  assert_int_equal(c.rc, 0);
  assert_true(c.flag);
}

static void set_ok(void *arg) {
  fut_set_result_bytes(arg, "ok", 2);
}

static int race_main(void *arg) {
  struct ctx *c = arg;
  fut_loop_t *loop = fut_get_running_loop();
  fut_t *fut, *w;
  int err = fut_new(loop, &fut);
  if (err)
    return err;
  if ((err = fut_wait_for(fut, FUT_MS(200), &w)) == 0) {
    fut_loop_call_later(loop, FUT_MS(100), set_ok, fut, NULL);
    const void *d = NULL;
    c->rc = fut_await_bytes(w, &d, NULL);
    c->flag = c->rc == 0 && memcmp(d, "ok", 2) == 0;
    fut_unref(w);
  }
  fut_unref(fut);
  return err;
}

/* AsyncioWaitForTest.test_wait_for_race_condition */
static void test_wait_for_race_condition(void **state) {
  struct ctx c = {0};
  assert_int_equal(run_main(*state, race_main, &c), 0);
  assert_int_equal(c.rc, 0);
  assert_true(c.flag);
}

static int inner_expects_cancel(void *arg) {
  *(int *)arg = fut_sleep(FUT_SEC(1)); /* must be -ECANCELED */
  return fut_task_return_i64(1);
}

static int cancellation_race_main(void *arg) {
  struct ctx *c = arg;
  fut_t *t = spawn_here(inner_expects_cancel, &c->rc2), *w;
  int err = fut_wait_for(t, FUT_MS(10), &w);
  fut_unref(t);
  if (err)
    return err;
  int64_t v = 0;
  c->rc = fut_await_i64(w, &v);
  c->flag = v == 1;
  fut_unref(w);
  return 0;
}

/* AsyncioWaitForTest.test_wait_for_cancellation_race_condition */
static void test_wait_for_cancellation_race_condition(void **state) {
  struct ctx c = {0};
  assert_int_equal(run_main(*state, cancellation_race_main, &c), 0);
  assert_int_equal(c.rc2, -ECANCELED);
  assert_int_equal(c.rc, 0);
  assert_true(c.flag);
}

/* inner of the cancellation tests: sleeps 10 s; on a cancel sleeps
 * EPSILON more, then lets the cancellation out; task_done in finally. */
static int slow_to_cancel(void *arg) {
  bool *task_done = arg;
  int err = fut_sleep(FUT_SEC(10));
  if (err == -ECANCELED)
    (void)fut_sleep(EPSILON);
  *task_done = true;
  return err;
}

static int waits_for_cancellation_main(void *arg) {
  struct ctx *c = arg;
  fut_t *inner = spawn_here(slow_to_cancel, &c->flag), *w;
  int err = fut_wait_for(inner, EPSILON, &w);
  fut_unref(inner);
  if (err)
    return err;
  c->rc = fut_await(w, NULL);
  fut_unref(w);
  return 0;
}

/* AsyncioWaitForTest.test_wait_for_waits_for_task_cancellation (the
 * exception's __context__ has no C counterpart) */
static void test_wait_for_waits_for_task_cancellation(void **state) {
  struct ctx c = {0};
  assert_int_equal(run_main(*state, waits_for_cancellation_main, &c), 0);
  assert_int_equal(c.rc, -ETIMEDOUT);
  assert_true(c.flag); /* task_done */
}

static int timeout_0_foo(void *arg) {
  struct ctx *c = arg;
  fut_t *inner = spawn_here(slow_to_cancel, &c->flag), *w;
  int err = fut_sleep(EPSILON);
  if (err == 0 && (err = fut_wait_for(inner, 0, &w)) == 0) {
    err = fut_await(w, NULL);
    fut_unref(w);
  }
  fut_unref(inner);
  return err;
}

/* AsyncioWaitForTest.test_wait_for_waits_for_task_cancellation_w_timeout_0
 * (the exception's __context__ has no C counterpart) */
static void test_wait_for_waits_for_task_cancellation_w_timeout_0(void **state) {
  struct ctx c = {0};
  assert_int_equal(run_main(*state, timeout_0_foo, &c), -ETIMEDOUT);
  assert_true(c.flag); /* task_done */
}

#define FOO_EXCEPTION (-EPROTO)

static int raises_in_finally(void *arg) {
  (void)arg;
  (void)fut_sleep(FUT_MS(200));
  return FOO_EXCEPTION; /* finally: raise FooException */
}

static int reraises_foo(void *arg) {
  (void)arg;
  fut_t *inner = spawn_here(raises_in_finally, NULL), *w;
  int err = fut_wait_for(inner, EPSILON, &w);
  fut_unref(inner);
  if (err)
    return err;
  err = fut_await(w, NULL);
  fut_unref(w);
  return err;
}

/* AsyncioWaitForTest.test_wait_for_reraises_exception_during_cancellation */
static void test_wait_for_reraises_exception_during_cancellation(void **state) {
  assert_int_equal(run_main(*state, reraises_foo, NULL), FOO_EXCEPTION);
}

static int stubborn_42(void *arg) {
  (void)arg;
  if (fut_sleep(FUT_MS(300)) == -ECANCELED && fut_sleep(FUT_MS(300)) == -ECANCELED)
    (void)fut_sleep(FUT_MS(300));
  return fut_task_return_i64(42);
}

static int wait_for_of(void *arg) {
  fut_t *inner = arg, *w;
  int err = fut_wait_for(inner, FUT_MS(100), &w);
  if (err)
    return err;
  err = fut_await(w, NULL);
  fut_unref(w);
  return err;
}

static int self_cancellation_main(void *arg) {
  struct ctx *c = arg;
  fut_t *inner_task = spawn_here(stubborn_42, NULL);
  fut_t *task = spawn_here(wait_for_of, inner_task);
  fut_cancel(task, NULL);
  c->rc = fut_await(task, NULL);
  int64_t v = 0;
  c->rc2 = fut_await_i64(inner_task, &v);
  c->flag = v == 42;
  fut_unref(task);
  fut_unref(inner_task);
  return 0;
}

/* AsyncioWaitForTest.test_wait_for_self_cancellation */
static void test_wait_for_self_cancellation(void **state) {
  struct ctx c = {0};
  assert_int_equal(run_main(*state, self_cancellation_main, &c), 0);
  assert_int_equal(c.rc, -ECANCELED);
  assert_int_equal(c.rc2, 0);
  assert_true(c.flag);
}

static int blocking_coroutine(void *arg) {
  (void)arg;
  fut_t *fut;
  int err = fut_new(fut_get_running_loop(), &fut);
  if (err)
    return err;
  err = fut_await(fut, NULL); /* never set */
  fut_unref(fut);
  return err;
}

struct cancel_wf {
  fut_t *task;
  uint64_t timeout;
};

static int wait_for_task(void *arg) {
  struct cancel_wf *c = arg;
  fut_t *w;
  int err = fut_wait_for(c->task, c->timeout, &w);
  if (err)
    return err;
  err = fut_await(w, NULL);
  fut_unref(w);
  return err;
}

static void cancel_cb(void *arg) {
  fut_cancel(arg, NULL);
}

static int cancel_wait_for_main(void *arg) {
  struct cancel_wf *c = arg;
  c->task = spawn_here(blocking_coroutine, NULL);
  fut_t *wait = spawn_here(wait_for_task, c);
  fut_loop_call_soon(fut_get_running_loop(), cancel_cb, wait, NULL);
  int err = fut_await(wait, NULL);
  fut_unref(wait);
  return err;
}

/* AsyncioWaitForTest._test_cancel_wait_for */
static void check_cancel_wait_for(fut_loop_t *loop, uint64_t timeout) {
  struct cancel_wf c = {.timeout = timeout};
  assert_int_equal(run_main(loop, cancel_wait_for_main, &c), -ECANCELED);
  /* Python issue #23219: cancelling the wait must also cancel the task. */
  assert_true(fut_cancelled(c.task));
  fut_unref(c.task);
}

/* AsyncioWaitForTest.test_cancel_blocking_wait_for */
static void test_cancel_blocking_wait_for(void **state) {
  check_cancel_wait_for(*state, UINT64_MAX);
}

/* AsyncioWaitForTest.test_cancel_wait_for */
static void test_cancel_wait_for(void **state) {
  check_cancel_wait_for(*state, FUT_SEC(60));
}

static int return_42(void *arg) {
  (void)arg;
  if (fut_sleep(FUT_SEC(10)) == -ECANCELED)
    return fut_task_return_i64(42);
  return 0;
}

static int cancel_suppressed_main(void *arg) {
  struct ctx *c = arg;
  fut_t *t = spawn_here(return_42, NULL), *w;
  int err = fut_wait_for(t, FUT_MS(100), &w);
  fut_unref(t);
  if (err)
    return err;
  int64_t v = 0;
  c->rc = fut_await_i64(w, &v);
  c->flag = v == 42;
  fut_unref(w);
  return 0;
}

/* AsyncioWaitForTest.test_wait_for_cancel_suppressed */
static void test_wait_for_cancel_suppressed(void **state) {
  struct ctx c = {0};
  assert_int_equal(run_main(*state, cancel_suppressed_main, &c), 0);
  assert_int_equal(c.rc, 0);
  assert_true(c.flag);
}

static int return_none(void *arg) {
  (void)arg;
  return 0;
}

static int wait_for_coro(void *arg) {
  bool *reached_end = arg;
  fut_t *inner = spawn_here(return_none, NULL), *w;
  int err = fut_wait_for(inner, FUT_SEC(100), &w);
  fut_unref(inner);
  if (err)
    return err;
  err = fut_await(w, NULL);
  fut_unref(w);
  if (err)
    return err;
  if ((err = fut_sleep(FUT_SEC(1))))
    return err;
  *reached_end = true;
  return 0;
}

static int issue86296_main(void *arg) {
  struct ctx *c = arg;
  fut_t *task = spawn_here(wait_for_coro, &c->flag);
  fut_yield();
  c->flag2 = fut_done(task);
  fut_cancel(task, NULL);
  c->rc = fut_await(task, NULL);
  fut_unref(task);
  return 0;
}

/* AsyncioWaitForTest.test_wait_for_issue86296 */
static void test_wait_for_issue86296(void **state) {
  struct ctx c = {0};
  assert_int_equal(run_main(*state, issue86296_main, &c), 0);
  assert_false(c.flag2); /* not done after one step */
  assert_int_equal(c.rc, -ECANCELED);
  assert_false(c.flag); /* reached_end */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_asyncio_wait_for_cancelled),
      T(test_asyncio_wait_for_timeout),
      T(test_wait_for_timeout_less_then_0_or_0_future_done),
      T(test_wait_for_timeout_less_then_0_or_0_coroutine_do_not_started),
      T(test_wait_for_timeout_less_then_0_or_0),
      T(test_wait_for),
      T(test_wait_for_blocking),
      T(test_wait_for_race_condition),
      T(test_wait_for_cancellation_race_condition),
      T(test_wait_for_waits_for_task_cancellation),
      T(test_wait_for_waits_for_task_cancellation_w_timeout_0),
      T(test_wait_for_reraises_exception_during_cancellation),
      T(test_wait_for_self_cancellation),
      T(test_cancel_blocking_wait_for),
      T(test_cancel_wait_for),
      T(test_wait_for_cancel_suppressed),
      T(test_wait_for_issue86296),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
