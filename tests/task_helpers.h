/* Small helpers shared by the task and combinator tests (cmocka must be
 * included first). */
#ifndef TESTS_TASK_HELPERS_H
#define TESTS_TASK_HELPERS_H

#include "future.h"

#define FUT_TASK_TEST_HELPER __attribute__((unused)) static

/* A new loop, or the test fails. */
FUT_TASK_TEST_HELPER fut_loop_t *new_loop(void) {
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  return loop;
}

/* Proves nothing is alive, then frees the loop. */
FUT_TASK_TEST_HELPER void end_loop(fut_loop_t *loop) {
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.live_futures, 0);
  assert_int_equal(st.live_handles, 0);
  assert_int_equal(fut_loop_free(loop), 0);
}

/* A task running fn(arg) with default options. */
FUT_TASK_TEST_HELPER fut_t *spawn(fut_loop_t *loop, fut_task_fn fn, void *arg) {
  fut_t *t;
  assert_int_equal(fut_create_task(loop, fn, arg, NULL, &t), 0);
  return t;
}

/* Runs fn(arg) as a main task on loop to its end; returns its outcome. */
FUT_TASK_TEST_HELPER int run_main(fut_loop_t *loop, fut_task_fn fn, void *arg) {
  fut_t *t;
  assert_int_equal(fut_create_task(loop, fn, arg, NULL, &t), 0);
  int rc = fut_loop_run_until_complete(loop, t);
  fut_unref(t);
  return rc;
}

/* A pending future. */
FUT_TASK_TEST_HELPER fut_t *newf(fut_loop_t *loop) {
  fut_t *f;
  assert_int_equal(fut_new(loop, &f), 0);
  return f;
}

/* Runs the loop until f is done (at most 100,000 iterations). */
FUT_TASK_TEST_HELPER void run_until_done(fut_loop_t *loop, fut_t *f) {
  for (int i = 0; i < 100000 && !fut_done(f); i++)
    assert_int_equal(fut_loop_run_once(loop, UINT64_MAX), 0);
  assert_true(fut_done(f));
}

/* Runs a few iterations so queued dispatches and wakeups finish. */
FUT_TASK_TEST_HELPER void drain(fut_loop_t *loop) {
  for (int i = 0; i < 4; i++)
    fut_loop_run_once(loop, 0);
}

#endif
