/* Combinators: gather, wait, wait_for (3.12 rules), shield, as_completed,
 * then, and the timeout block. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "loop/internal.h"
#include "task_helpers.h"

/* ---- helpers ------------------------------------------------------------- */

/* Runs the loop until f is done, whatever its outcome. */
static void settle(fut_loop_t *loop, fut_t *f) {
  int guard = 0;
  while (!fut_done(f)) {
    assert_int_equal(fut_loop_run_once(loop, UINT64_MAX), 0);
    assert_true(++guard < 100000);
  }
}

/* Runs a few iterations so queued dispatches and wakeups finish. */
static void drain(fut_loop_t *loop) {
  for (int i = 0; i < 4; i++)
    fut_loop_run_once(loop, 0);
}

/* A task that sleeps ms then returns v (or fails with v if v < 0). */
struct job {
  uint64_t ms;
  int64_t v;
  bool catch_cancel; /* return 1000 + v when cancelled */
  int sleep_rc;
};

static int job_fn(void *arg) {
  struct job *j = arg;
  j->sleep_rc = fut_sleep(FUT_MS(j->ms));
  if (j->sleep_rc == -ECANCELED) {
    if (j->catch_cancel)
      return fut_task_return_i64(1000 + j->v);
    return -ECANCELED;
  }
  if (j->v < 0)
    return (int)j->v;
  return fut_task_return_i64(j->v);
}

static int64_t i64_of(fut_t *f) {
  int64_t v = -1;
  assert_int_equal(fut_result_i64(f, &v), 0);
  return v;
}

/* ---- gather -------------------------------------------------------------- */

static void test_gather_results_in_argument_order(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  struct job j[3] = {{.ms = 3, .v = 1}, {.ms = 1, .v = 2}, {.ms = 2, .v = 3}};
  fut_t *ts[3];
  for (int i = 0; i < 3; i++)
    ts[i] = spawn(loop, job_fn, &j[i]);
  fut_t *g;
  assert_int_equal(fut_gather(loop, ts, 3, 0, &g), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, g), 0);
  assert_int_equal(fut_gather_count(g), 3);
  for (int i = 0; i < 3; i++)
    assert_int_equal(i64_of(fut_gather_child(g, i)), i + 1);
  assert_null(fut_gather_child(g, 3));
  for (int i = 0; i < 3; i++)
    fut_unref(ts[i]);
  fut_unref(g);
  end_loop(loop);
}

static void test_gather_child_failure_fails_gather_others_go_on(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *fs[3] = {newf(loop), newf(loop), newf(loop)};
  fut_t *g;
  assert_int_equal(fut_gather(loop, fs, 3, 0, &g), 0);
  fut_set_exception(fs[0], -EIO, "boom");
  assert_int_equal(fut_loop_run_until_complete(loop, g), -EIO);
  const char *msg;
  assert_int_equal(fut_exception(g, &msg), -EIO);
  assert_string_equal(msg, "boom");
  /* The others are neither cancelled nor done, and may still finish. */
  assert_false(fut_done(fs[1]));
  assert_false(fut_done(fs[2]));
  fut_set_result_i64(fs[1], 2);
  fut_set_result_i64(fs[2], 3);
  drain(loop);
  assert_int_equal(i64_of(fs[1]), 2);
  for (int i = 0; i < 3; i++)
    fut_unref(fs[i]);
  fut_unref(g);
  end_loop(loop);
}

static void test_gather_return_exceptions_keeps_outcomes(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *fs[3] = {newf(loop), newf(loop), newf(loop)};
  fut_t *g;
  assert_int_equal(fut_gather(loop, fs, 3, FUT_GATHER_RETURN_EXCEPTIONS, &g),
                   0);
  fut_set_exception(fs[0], -ENOENT, NULL);
  fut_cancel(fs[1], NULL);
  fut_set_result_i64(fs[2], 9);
  assert_int_equal(fut_loop_run_until_complete(loop, g), 0);
  assert_int_equal(fut_exception(fut_gather_child(g, 0), NULL), -ENOENT);
  assert_true(fut_cancelled(fut_gather_child(g, 1)));
  assert_int_equal(i64_of(fut_gather_child(g, 2)), 9);
  for (int i = 0; i < 3; i++)
    fut_unref(fs[i]);
  fut_unref(g);
  end_loop(loop);
}

static void test_gather_cancelled_child_fails_gather(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *fs[2] = {newf(loop), newf(loop)};
  fut_t *g;
  assert_int_equal(fut_gather(loop, fs, 2, 0, &g), 0);
  fut_cancel(fs[0], NULL);
  assert_int_equal(fut_loop_run_until_complete(loop, g), -ECANCELED);
  assert_false(fut_cancelled(g)); /* a failure with -ECANCELED, as asyncio */
  fut_set_result_i64(fs[1], 1);
  drain(loop);
  fut_unref(fs[0]);
  fut_unref(fs[1]);
  fut_unref(g);
  end_loop(loop);
}

static int await_gather(void *arg) {
  fut_t *g = arg;
  return fut_await(g, NULL);
}

static void test_gather_cancel_cancels_children(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  struct job j[2] = {{.ms = 100000, .v = 1}, {.ms = 100000, .v = 2}};
  fut_t *ts[2] = {spawn(loop, job_fn, &j[0]), spawn(loop, job_fn, &j[1])};
  fut_t *g;
  assert_int_equal(fut_gather(loop, ts, 2, FUT_GATHER_RETURN_EXCEPTIONS, &g),
                   0);
  fut_t *waiter = spawn(loop, await_gather, g);
  drain(loop);
  assert_true(fut_cancel(g, "enough"));
  assert_int_equal(fut_loop_run_until_complete(loop, waiter), -ECANCELED);
  assert_true(fut_cancelled(g));
  assert_true(fut_cancelled(ts[0]));
  assert_true(fut_cancelled(ts[1]));
  assert_int_equal(j[0].sleep_rc, -ECANCELED);
  assert_false(fut_cancel(g, NULL));
  fut_unref(ts[0]);
  fut_unref(ts[1]);
  fut_unref(g);
  fut_unref(waiter);
  end_loop(loop);
}

static void
test_gather_task_awaiting_it_cancelled_cancels_children(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  struct job j = {.ms = 100000, .v = 1};
  fut_t *kid = spawn(loop, job_fn, &j);
  fut_t *g;
  assert_int_equal(fut_gather(loop, &kid, 1, 0, &g), 0);
  fut_t *waiter = spawn(loop, await_gather, g);
  drain(loop);
  fut_cancel(waiter, NULL);
  assert_int_equal(fut_loop_run_until_complete(loop, waiter), -ECANCELED);
  assert_true(fut_cancelled(kid));
  fut_unref(kid);
  fut_unref(g);
  fut_unref(waiter);
  end_loop(loop);
}

static void test_gather_empty_is_done_at_once(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *g;
  assert_int_equal(fut_gather(loop, NULL, 0, 0, &g), 0);
  assert_true(fut_done(g));
  assert_int_equal(fut_result(g, NULL), 0);
  fut_unref(g);
  end_loop(loop);
}

static void test_gather_same_future_twice(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *f = newf(loop);
  fut_t *fs[2] = {f, f};
  fut_t *g;
  assert_int_equal(fut_gather(loop, fs, 2, 0, &g), 0);
  fut_set_result_i64(f, 4);
  assert_int_equal(fut_loop_run_until_complete(loop, g), 0);
  assert_int_equal(i64_of(fut_gather_child(g, 1)), 4);
  fut_unref(f);
  fut_unref(g);
  end_loop(loop);
}

static int gather_seen;
static void on_gather_done(fut_t *g, void *arg) {
  (void)arg;
  gather_seen = fut_result(g, NULL) == 0 ? 1 : -1;
}

static void set_result_cb(void *arg) {
  fut_set_result_i64(arg, 1);
}

static void test_gather_from_callback_code(void **state) {
  (void)state;
  gather_seen = 0;
  fut_loop_t *loop = new_loop();
  fut_t *fs[2] = {newf(loop), newf(loop)};
  fut_t *g;
  assert_int_equal(fut_gather(loop, fs, 2, 0, &g), 0);
  fut_add_done_callback(g, on_gather_done, NULL);
  fut_loop_call_soon(loop, set_result_cb, fs[0], NULL);
  fut_loop_call_later(loop, FUT_MS(1), set_result_cb, fs[1], NULL);
  fut_loop_run_until_complete(loop, g);
  drain(loop);
  assert_int_equal(gather_seen, 1);
  fut_unref(fs[0]);
  fut_unref(fs[1]);
  fut_unref(g);
  end_loop(loop);
}

static void test_gather_bad_arguments(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop(), *other = new_loop();
  fut_t *f = newf(other);
  fut_t *g = (fut_t *)1;
  assert_int_equal(fut_gather(loop, &f, 1, 0, &g), FUT_E_OTHER_LOOP);
  assert_null(g);
  fut_t *nul = NULL;
  assert_int_equal(fut_gather(loop, &nul, 1, 0, &g), -EINVAL);
  assert_int_equal(fut_gather(NULL, &f, 1, 0, &g), -EINVAL);
  assert_int_equal(fut_gather(loop, NULL, 2, 0, &g), -EINVAL);
  assert_int_equal(fut_gather(loop, &f, 1, 0, NULL), -EINVAL);
  assert_null(fut_gather_child(f, 0));
  assert_int_equal(fut_gather_count(f), 0);
  fut_unref(f);
  end_loop(loop);
  end_loop(other);
}

static void test_gather_out_of_memory_leaves_nothing(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *fs[4];
  for (int i = 0; i < 4; i++)
    fs[i] = newf(loop);
  for (long n = 1; n <= 6; n++) {
    fut_t *g;
    fut__alloc_fail_after(n, false);
    int rc = fut_gather(loop, fs, 4, 0, &g);
    fut__alloc_fail_after(0, false);
    if (rc == 0) {
      fut_cancel(g, NULL);
      fut_unref(g);
      break;
    }
    assert_int_equal(rc, -ENOMEM);
    assert_null(g);
  }
  drain(loop);
  for (int i = 0; i < 4; i++)
    fut_unref(fs[i]);
  end_loop(loop);
}

/* ---- wait ---------------------------------------------------------------- */

static void test_wait_first_completed(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *fs[3] = {newf(loop), newf(loop), newf(loop)};
  fut_t *w;
  assert_int_equal(
      fut_wait(loop, fs, 3, FUT_WAIT_FIRST_COMPLETED, UINT64_MAX, &w), 0);
  fut_loop_call_later(loop, FUT_MS(1), set_result_cb, fs[1], NULL);
  assert_int_equal(fut_loop_run_until_complete(loop, w), 0);
  fut_t *done[3], *pending[3];
  size_t nd, np;
  assert_int_equal(fut_wait_sets(w, done, &nd, pending, &np), 0);
  assert_int_equal(nd, 1);
  assert_int_equal(np, 2);
  assert_ptr_equal(done[0], fs[1]);
  assert_false(fut_cancelled(fs[0])); /* wait never cancels */
  for (int i = 0; i < 3; i++) {
    fut_cancel(fs[i], NULL);
    fut_unref(fs[i]);
  }
  fut_unref(w);
  drain(loop);
  end_loop(loop);
}

static void test_wait_first_exception(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *fs[3] = {newf(loop), newf(loop), newf(loop)};
  fut_t *w;
  assert_int_equal(
      fut_wait(loop, fs, 3, FUT_WAIT_FIRST_EXCEPTION, UINT64_MAX, &w), 0);
  fut_set_result_i64(fs[0], 1);
  fut_cancel(fs[1], NULL); /* not an exception for wait */
  drain(loop);
  assert_false(fut_done(w));
  fut_set_exception(fs[2], -EPIPE, NULL);
  assert_int_equal(fut_loop_run_until_complete(loop, w), 0);
  size_t nd, np;
  fut_wait_sets(w, NULL, &nd, NULL, &np);
  assert_int_equal(nd, 3);
  assert_int_equal(np, 0);
  assert_int_equal(fut_exception(fs[2], NULL), -EPIPE);
  for (int i = 0; i < 3; i++)
    fut_unref(fs[i]);
  fut_unref(w);
  end_loop(loop);
}

static void test_wait_all_completed(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *fs[2] = {newf(loop), newf(loop)};
  fut_t *w;
  assert_int_equal(
      fut_wait(loop, fs, 2, FUT_WAIT_ALL_COMPLETED, UINT64_MAX, &w), 0);
  fut_set_result_i64(fs[0], 1);
  drain(loop);
  assert_false(fut_done(w));
  fut_loop_call_later(loop, FUT_MS(1), set_result_cb, fs[1], NULL);
  assert_int_equal(fut_loop_run_until_complete(loop, w), 0);
  size_t nd;
  fut_wait_sets(w, NULL, &nd, NULL, NULL);
  assert_int_equal(nd, 2);
  fut_unref(fs[0]);
  fut_unref(fs[1]);
  fut_unref(w);
  end_loop(loop);
}

static void test_wait_timeout_returns_sets(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *fs[2] = {newf(loop), newf(loop)};
  fut_set_result_i64(fs[0], 1);
  fut_t *w;
  uint64_t t0 = fut_loop_time(loop);
  assert_int_equal(fut_wait(loop, fs, 2, FUT_WAIT_ALL_COMPLETED, FUT_MS(5), &w),
                   0);
  assert_int_equal(fut_loop_run_until_complete(loop, w), 0);
  assert_true(fut_loop_time(loop) - t0 >= FUT_MS(5));
  size_t nd, np;
  fut_wait_sets(w, NULL, &nd, NULL, &np);
  assert_int_equal(nd, 1);
  assert_int_equal(np, 1);
  fut_cancel(fs[1], NULL);
  fut_unref(fs[0]);
  fut_unref(fs[1]);
  fut_unref(w);
  drain(loop);
  end_loop(loop);
}

static void test_wait_cancel_detaches(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *f = newf(loop);
  fut_t *w;
  assert_int_equal(
      fut_wait(loop, &f, 1, FUT_WAIT_ALL_COMPLETED, FUT_SEC(100), &w), 0);
  assert_true(fut_cancel(w, NULL));
  fut_unref(w); /* freed now: the child no longer refers to it */
  fut_set_result_i64(f, 1);
  drain(loop);
  fut_unref(f);
  end_loop(loop);
}

static void test_wait_bad_arguments(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *f = newf(loop);
  fut_t *w = (fut_t *)1;
  assert_int_equal(fut_wait(loop, &f, 0, FUT_WAIT_ALL_COMPLETED, 0, &w),
                   -EINVAL);
  assert_null(w);
  assert_int_equal(fut_wait(loop, &f, 1, (fut_wait_when_t)7, 0, &w), -EINVAL);
  assert_int_equal(fut_wait(NULL, &f, 1, FUT_WAIT_ALL_COMPLETED, 0, &w),
                   -EINVAL);
  assert_int_equal(fut_wait_sets(f, NULL, NULL, NULL, NULL), -EINVAL);
  fut_unref(f);
  end_loop(loop);
}

/* ---- wait_for ------------------------------------------------------------ */

static void test_wait_for_result_before_timeout(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  struct job j = {.ms = 1, .v = 5};
  fut_t *t = spawn(loop, job_fn, &j);
  fut_t *w;
  assert_int_equal(fut_wait_for(t, FUT_SEC(10), &w), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, w), 0);
  assert_int_equal(i64_of(w), 5);
  fut_unref(t);
  fut_unref(w);
  end_loop(loop);
}

static void test_wait_for_timeout_cancels_inner(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  struct job j = {.ms = 100000, .v = 5};
  fut_t *t = spawn(loop, job_fn, &j);
  fut_t *w;
  assert_int_equal(fut_wait_for(t, FUT_MS(2), &w), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, w), -ETIMEDOUT);
  /* The inner had finished cancelling before the timeout was reported. */
  assert_true(fut_cancelled(t));
  assert_int_equal(j.sleep_rc, -ECANCELED);
  fut_unref(t);
  fut_unref(w);
  end_loop(loop);
}

static void test_wait_for_inner_result_wins_race(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  /* The inner catches the timeout's cancel and returns a value: 3.12
   * returns that value instead of raising TimeoutError. */
  struct job j = {.ms = 100000, .v = 5, .catch_cancel = true};
  fut_t *t = spawn(loop, job_fn, &j);
  fut_t *w;
  assert_int_equal(fut_wait_for(t, FUT_MS(2), &w), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, w), 0);
  assert_int_equal(i64_of(w), 1005);
  fut_unref(t);
  fut_unref(w);
  end_loop(loop);
}

static void test_wait_for_inner_done_with_timeout_queued_wins(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *f = newf(loop);
  fut_t *w;
  assert_int_equal(fut_wait_for(f, 0 + FUT_NS(1), &w), 0);
  /* The result lands before the (already due) timeout can run. */
  fut_set_result_i64(f, 3);
  assert_int_equal(fut_loop_run_until_complete(loop, w), 0);
  assert_int_equal(i64_of(w), 3);
  fut_unref(f);
  fut_unref(w);
  end_loop(loop);
}

static int await_wait_for(void *arg) {
  fut_t *w = arg;
  return fut_await(w, NULL);
}

static void cancel_cb(void *arg) {
  fut_cancel(arg, "outer");
}

static void test_wait_for_outer_cancel_propagates(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  struct job j = {.ms = 100000, .v = 5};
  fut_t *t = spawn(loop, job_fn, &j);
  fut_t *w;
  assert_int_equal(fut_wait_for(t, FUT_SEC(100), &w), 0);
  fut_t *outer = spawn(loop, await_wait_for, w);
  fut_loop_call_later(loop, FUT_MS(1), cancel_cb, outer, NULL);
  assert_int_equal(fut_loop_run_until_complete(loop, outer), -ECANCELED);
  assert_true(fut_cancelled(outer));
  assert_true(fut_cancelled(w));
  assert_true(fut_cancelled(t));
  fut_unref(t);
  fut_unref(w);
  fut_unref(outer);
  end_loop(loop);
}

static void test_wait_for_outer_cancel_and_timeout_is_cancel(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  struct job j = {.ms = 100000, .v = 5};
  fut_t *t = spawn(loop, job_fn, &j);
  drain(loop);
  fut_t *w;
  /* Timeout 0: the deadline has passed and the inner is being cancelled;
   * then the outer cancel arrives before the inner finished. */
  assert_int_equal(fut_wait_for(t, 0, &w), 0);
  assert_true(fut_cancel(w, "outer"));
  settle(loop, w);
  assert_true(fut_cancelled(w)); /* never swallowed into a timeout */
  assert_true(fut_cancelled(t));
  drain(loop);
  fut_unref(t);
  fut_unref(w);
  end_loop(loop);
}

static void test_wait_for_zero_timeout(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *done = newf(loop);
  fut_set_result_i64(done, 8);
  fut_t *w;
  assert_int_equal(fut_wait_for(done, 0, &w), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, w), 0);
  assert_int_equal(i64_of(w), 8);
  fut_unref(w);
  fut_t *pending = newf(loop);
  assert_int_equal(fut_wait_for(pending, 0, &w), 0);
  assert_true(fut_cancelled(pending));
  assert_int_equal(fut_loop_run_until_complete(loop, w), -ETIMEDOUT);
  fut_unref(w);
  fut_unref(done);
  fut_unref(pending);
  end_loop(loop);
}

static void test_wait_for_bad_arguments(void **state) {
  (void)state;
  fut_t *w = (fut_t *)1;
  assert_int_equal(fut_wait_for(NULL, 1, &w), -EINVAL);
  assert_null(w);
  fut_loop_t *loop = new_loop();
  fut_t *f = newf(loop);
  assert_int_equal(fut_wait_for(f, 1, NULL), -EINVAL);
  fut_unref(f);
  end_loop(loop);
}

/* ---- shield -------------------------------------------------------------- */

struct gated {
  fut_t *gate;
  int rc;
  bool finished;
};

static int gated_fn(void *arg) {
  struct gated *g = arg;
  g->rc = fut_await(g->gate, NULL);
  g->finished = true;
  return g->rc ? g->rc : fut_task_return_i64(11);
}

static void test_shield_keeps_inner_alive(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  struct gated gd = {.gate = newf(loop)};
  fut_t *t = spawn(loop, gated_fn, &gd);
  fut_t *s;
  assert_int_equal(fut_shield(t, &s), 0);
  fut_unref(t); /* only the shield (and the loop) keep the inner task */
  fut_t *outer = spawn(loop, await_wait_for, s);
  drain(loop);
  fut_cancel(outer, NULL);
  assert_int_equal(fut_loop_run_until_complete(loop, outer), -ECANCELED);
  assert_true(fut_cancelled(s));
  assert_false(gd.finished);
  /* The inner was not cancelled: it goes on and completes. */
  fut_set_result(gd.gate, NULL, NULL);
  while (fut_all_tasks(loop, NULL, 0) > 0)
    fut_loop_run_once(loop, UINT64_MAX);
  assert_true(gd.finished);
  assert_int_equal(gd.rc, 0);
  drain(loop);
  fut_unref(gd.gate);
  fut_unref(s);
  fut_unref(outer);
  end_loop(loop);
}

static void test_shield_passes_result_through(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *f = newf(loop);
  fut_t *s;
  assert_int_equal(fut_shield(f, &s), 0);
  fut_set_result_i64(f, 6);
  assert_int_equal(fut_loop_run_until_complete(loop, s), 0);
  assert_int_equal(i64_of(s), 6);
  fut_t *s2;
  assert_int_equal(fut_shield(f, &s2), 0);
  assert_ptr_equal(s2, f); /* done: the inner itself, as asyncio */
  fut_unref(s2);
  fut_unref(s);
  fut_unref(f);
  end_loop(loop);
}

static void test_shield_inner_cancel_cancels_outer(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *f = newf(loop);
  fut_t *s;
  assert_int_equal(fut_shield(f, &s), 0);
  fut_cancel(f, NULL);
  assert_int_equal(fut_loop_run_until_complete(loop, s), -ECANCELED);
  assert_true(fut_cancelled(s));
  fut_unref(s);
  assert_int_equal(fut_shield(NULL, &s), -EINVAL);
  fut_unref(f);
  end_loop(loop);
}

/* ---- as_completed -------------------------------------------------------- */

struct ac_run {
  fut_t *ac;
  int64_t order[3];
  int n;
  int last_rc;
};

static int consume_as_completed(void *arg) {
  struct ac_run *r = arg;
  for (;;) {
    fut_t *nx;
    int rc = fut_as_completed_next(r->ac, &nx);
    if (rc == -ENOENT)
      break;
    assert_int_equal(rc, 0);
    fut_t *kid;
    rc = fut_await(nx, (void **)&kid);
    r->last_rc = rc;
    if (rc == 0)
      r->order[r->n++] = i64_of(kid);
    fut_unref(nx);
    if (rc)
      return rc;
  }
  return 0;
}

static void test_as_completed_yields_in_completion_order(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  struct job j[3] = {{.ms = 6, .v = 1}, {.ms = 2, .v = 2}, {.ms = 4, .v = 3}};
  fut_t *ts[3];
  for (int i = 0; i < 3; i++)
    ts[i] = spawn(loop, job_fn, &j[i]);
  struct ac_run r = {0};
  assert_int_equal(fut_as_completed(loop, ts, 3, UINT64_MAX, &r.ac), 0);
  fut_t *c = spawn(loop, consume_as_completed, &r);
  assert_int_equal(fut_loop_run_until_complete(loop, c), 0);
  assert_int_equal(r.n, 3);
  assert_int_equal(r.order[0], 2);
  assert_int_equal(r.order[1], 3);
  assert_int_equal(r.order[2], 1);
  settle(loop, r.ac);
  assert_int_equal(fut_result(r.ac, NULL), 0);
  for (int i = 0; i < 3; i++)
    fut_unref(ts[i]);
  fut_unref(r.ac);
  fut_unref(c);
  end_loop(loop);
}

static void test_as_completed_timeout(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *fs[2] = {newf(loop), newf(loop)};
  fut_loop_call_soon(loop, set_result_cb, fs[1], NULL);
  struct ac_run r = {0};
  assert_int_equal(fut_as_completed(loop, fs, 2, FUT_MS(3), &r.ac), 0);
  fut_t *c = spawn(loop, consume_as_completed, &r);
  assert_int_equal(fut_loop_run_until_complete(loop, c), -ETIMEDOUT);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.order[0], 1);
  assert_int_equal(fut_exception(r.ac, NULL), -ETIMEDOUT);
  fut_cancel(fs[0], NULL);
  drain(loop);
  fut_unref(fs[0]);
  fut_unref(fs[1]);
  fut_unref(r.ac);
  fut_unref(c);
  end_loop(loop);
}

static void test_as_completed_bad_arguments(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *f = newf(loop), *nx = (fut_t *)1;
  assert_int_equal(fut_as_completed_next(f, &nx), -EINVAL);
  assert_null(nx);
  fut_t *ac;
  assert_int_equal(fut_as_completed(loop, NULL, 0, UINT64_MAX, &ac), 0);
  assert_true(fut_done(ac));
  assert_int_equal(fut_as_completed_next(ac, &nx), -ENOENT);
  fut_unref(ac);
  fut_unref(f);
  end_loop(loop);
}

/* ---- then ---------------------------------------------------------------- */

static int double_it(fut_t *src, fut_t *dst, void *arg) {
  int *calls = arg;
  (*calls)++;
  int64_t v;
  int rc = fut_result_i64(src, &v);
  if (rc)
    return rc;
  return fut_set_result_i64(dst, v * 2);
}

static void test_then_chains_results(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  int calls = 0;
  fut_t *f = newf(loop), *a, *b, *c;
  assert_int_equal(fut_then(f, double_it, &calls, &a), 0);
  assert_int_equal(fut_then(a, double_it, &calls, &b), 0);
  assert_int_equal(fut_then(b, NULL, NULL, &c), 0); /* copies */
  fut_set_result_i64(f, 3);
  assert_int_equal(fut_loop_run_until_complete(loop, c), 0);
  assert_int_equal(i64_of(c), 12);
  assert_int_equal(calls, 2);
  fut_unref(f);
  fut_unref(a);
  fut_unref(b);
  fut_unref(c);
  end_loop(loop);
}

static void test_then_propagates_failure(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  int calls = 0;
  fut_t *f = newf(loop), *a;
  assert_int_equal(fut_then(f, double_it, &calls, &a), 0);
  fut_set_exception(f, -EBADF, NULL);
  assert_int_equal(fut_loop_run_until_complete(loop, a), -EBADF);
  assert_int_equal(calls, 1);
  fut_unref(f);
  fut_unref(a);
  end_loop(loop);
}

static void test_then_cancel_cancels_source(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  int calls = 0;
  fut_t *f = newf(loop), *a;
  assert_int_equal(fut_then(f, double_it, &calls, &a), 0);
  assert_true(fut_cancel(a, NULL));
  assert_true(fut_cancelled(f));
  drain(loop);
  assert_int_equal(calls, 1); /* fn still runs once, to release arg */
  fut_unref(a);
  assert_int_equal(fut_then(NULL, NULL, NULL, &a), -EINVAL);
  fut_unref(f);
  end_loop(loop);
}

/* ---- timeout ------------------------------------------------------------- */

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

static void quiet_handler(fut_loop_t *loop, const fut_exception_ctx_t *c,
                          void *arg) {
  (void)loop;
  (void)c;
  (void)arg;
}

/* ---- loop close ------------------------------------------------------ */

static int await_arg(void *arg) {
  return fut_await(arg, NULL);
}

static void test_combine_loop_close_releases_waiting_combinators(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_loop_set_exception_handler(loop, quiet_handler, NULL);
  fut_t *a = newf(loop), *b = newf(loop);
  fut_set_result_i64(b, 1); /* done, its dispatch still queued at close */
  fut_t *ab[2] = {a, b};
  fut_t *made[8];
  int n = 0;
  assert_int_equal(fut_gather(loop, ab, 2, 0, &made[n++]), 0);
  assert_int_equal(
      fut_wait(loop, ab, 2, FUT_WAIT_ALL_COMPLETED, FUT_SEC(100), &made[n++]),
      0);
  assert_int_equal(fut_wait_for(a, FUT_SEC(100), &made[n++]), 0);
  assert_int_equal(fut_shield(a, &made[n++]), 0);
  assert_int_equal(fut_as_completed(loop, ab, 2, FUT_SEC(100), &made[n++]), 0);
  fut_t *nx;
  assert_int_equal(fut_as_completed_next(made[n - 1], &nx), 0);
  assert_int_equal(fut_then(a, NULL, NULL, &made[n++]), 0);
  fut_t *waiter = spawn(loop, await_arg, made[0]);
  drain(loop);
  fut_set_result_i64(a, 2); /* a done too, dispatch queued */
  /* Nobody keeps anything: only the combinators' own registrations. */
  for (int i = 0; i < n; i++)
    fut_unref(made[i]);
  fut_unref(nx);
  fut_unref(a);
  fut_unref(b);
  fut_unref(waiter);
  assert_int_equal(fut_loop_close(loop), 0);
  end_loop(loop);
}

static void test_combine_loop_close_with_pending_children(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  fut_t *a = newf(loop);
  fut_t *made[6];
  int n = 0;
  assert_int_equal(fut_gather(loop, &a, 1, 0, &made[n++]), 0);
  assert_int_equal(
      fut_wait(loop, &a, 1, FUT_WAIT_ALL_COMPLETED, FUT_SEC(100), &made[n++]),
      0);
  assert_int_equal(fut_wait_for(a, FUT_SEC(100), &made[n++]), 0);
  assert_int_equal(fut_shield(a, &made[n++]), 0);
  assert_int_equal(fut_as_completed(loop, &a, 1, UINT64_MAX, &made[n++]), 0);
  assert_int_equal(fut_then(a, NULL, NULL, &made[n++]), 0);
  fut_unref(a);
  assert_int_equal(fut_loop_close(loop), 0);
  /* Still readable after close; released by the last unref. */
  for (int i = 0; i < n; i++) {
    assert_false(fut_done(made[i]));
    fut_unref(made[i]);
  }
  end_loop(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gather_results_in_argument_order),
      cmocka_unit_test(test_gather_child_failure_fails_gather_others_go_on),
      cmocka_unit_test(test_gather_return_exceptions_keeps_outcomes),
      cmocka_unit_test(test_gather_cancelled_child_fails_gather),
      cmocka_unit_test(test_gather_cancel_cancels_children),
      cmocka_unit_test(test_gather_task_awaiting_it_cancelled_cancels_children),
      cmocka_unit_test(test_gather_empty_is_done_at_once),
      cmocka_unit_test(test_gather_same_future_twice),
      cmocka_unit_test(test_gather_from_callback_code),
      cmocka_unit_test(test_gather_bad_arguments),
      cmocka_unit_test(test_gather_out_of_memory_leaves_nothing),
      cmocka_unit_test(test_wait_first_completed),
      cmocka_unit_test(test_wait_first_exception),
      cmocka_unit_test(test_wait_all_completed),
      cmocka_unit_test(test_wait_timeout_returns_sets),
      cmocka_unit_test(test_wait_cancel_detaches),
      cmocka_unit_test(test_wait_bad_arguments),
      cmocka_unit_test(test_wait_for_result_before_timeout),
      cmocka_unit_test(test_wait_for_timeout_cancels_inner),
      cmocka_unit_test(test_wait_for_inner_result_wins_race),
      cmocka_unit_test(test_wait_for_inner_done_with_timeout_queued_wins),
      cmocka_unit_test(test_wait_for_outer_cancel_propagates),
      cmocka_unit_test(test_wait_for_outer_cancel_and_timeout_is_cancel),
      cmocka_unit_test(test_wait_for_zero_timeout),
      cmocka_unit_test(test_wait_for_bad_arguments),
      cmocka_unit_test(test_shield_keeps_inner_alive),
      cmocka_unit_test(test_shield_passes_result_through),
      cmocka_unit_test(test_shield_inner_cancel_cancels_outer),
      cmocka_unit_test(test_as_completed_yields_in_completion_order),
      cmocka_unit_test(test_as_completed_timeout),
      cmocka_unit_test(test_as_completed_bad_arguments),
      cmocka_unit_test(test_then_chains_results),
      cmocka_unit_test(test_then_propagates_failure),
      cmocka_unit_test(test_then_cancel_cancels_source),
      cmocka_unit_test(test_timeout_expires_with_etimedout),
      cmocka_unit_test(test_timeout_not_reached_passes_through),
      cmocka_unit_test(test_timeout_reschedule_extends_deadline),
      cmocka_unit_test(test_timeout_outer_cancel_not_swallowed),
      cmocka_unit_test(test_timeout_outside_task_and_bad_arguments),
      cmocka_unit_test(test_combine_loop_close_releases_waiting_combinators),
      cmocka_unit_test(test_combine_loop_close_with_pending_children),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
