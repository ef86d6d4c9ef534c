/* Regression tests from the adversarial review of tasks (task.c, timeout.c,
 * run.c) against CPython's tasks.py / timeouts.py (3.12). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "loop/internal.h"
#include "task_helpers.h"

static void run_until_done(fut_loop_t *loop, fut_t *f) {
  for (int i = 0; i < 100000 && !fut_done(f); i++)
    assert_int_equal(fut_loop_run_once(loop, UINT64_MAX), 0);
  assert_true(fut_done(f));
}

static void drain(fut_loop_t *loop) {
  for (int i = 0; i < 4; i++)
    fut_loop_run_once(loop, 0);
}

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

/* ---- await cycles ------------------------------------------------------- */

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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_task_wait_for_inner_refusing_cancel_result_wins),
      cmocka_unit_test(
          test_task_gather_cancel_with_refusing_child_is_cancelled),
      cmocka_unit_test(test_task_cancel_through_shield_leaves_inner),
      cmocka_unit_test(test_task_cancel_await_cycle_does_not_recurse),
      cmocka_unit_test(test_task_cancel_awaiting_combinator_of_itself),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
