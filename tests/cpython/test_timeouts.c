/* CPython's Lib/test/test_asyncio/test_timeouts.py (class TimeoutTests) as
 * libfuture's behavioural spec: one cmocka test per CPython test method
 * that applies to C, named after it.  `async with asyncio.timeout(d) as
 * cm` is fut_timeout_enter(d, &cm) ... fut_timeout_exit(cm, err);
 * asyncio.timeout_at(when) is an enter without deadline followed by
 * fut_timeout_reschedule(cm, when).  fut_timeout_exit frees the scope, so
 * cm.expired() / cm.when() are read just before it.  Each CPython test
 * body runs as a main task; the assertions run on the test's own stack.
 * docs/asyncio-to-libfuture.md lists the methods that do not apply. */
#include "fixture.h"
#include "task_helpers.h"

#include <unistd.h>

#define T(fn) FX_LOOP_TEST(fn)

struct ctx {
  int rc;         /* the outcome of the outermost block */
  int inner_rc;   /* the outcome of an inner block */
  bool expired;   /* cm.expired() just before exit */
  bool expired2;  /* of a second scope */
  bool flag;      /* "cancelled" and the like */
  uint64_t when;  /* cm.when() */
  uint64_t when2; /* another reading */
  uint64_t t0, t1;
  fut_t *fut, *task;
  fut_timeout_t *cm;
};

static uint64_t now(void) {
  return fut_loop_time(fut_get_running_loop());
}

/* timeout_at(when): enter with no deadline, then set it. */
static int timeout_at(uint64_t when, fut_timeout_t **cm) {
  int err = fut_timeout_enter(UINT64_MAX, cm);
  if (err)
    return err;
  if ((err = fut_timeout_reschedule(*cm, when))) {
    fut_timeout_exit(*cm, 0);
    *cm = NULL;
  }
  return err;
}

static int timeout_basic(void *arg) {
  struct ctx *c = arg;
  fut_timeout_t *cm;
  int err = fut_timeout_enter(FUT_MS(10), &cm);
  if (err)
    return err;
  err = fut_sleep(FUT_SEC(10));
  c->expired = fut_timeout_expired(cm);
  c->rc = fut_timeout_exit(cm, err);
  return 0;
}

/* TimeoutTests.test_timeout_basic */
static void test_timeout_basic(void **state) {
  struct ctx c = {0};
  assert_int_equal(run_main(*state, timeout_basic, &c), 0);
  assert_int_equal(c.rc, -ETIMEDOUT);
  assert_true(c.expired);
}

static int timeout_at_basic(void *arg) {
  struct ctx *c = arg;
  fut_timeout_t *cm;
  uint64_t deadline = now() + FUT_MS(10);
  int err = timeout_at(deadline, &cm);
  if (err)
    return err;
  err = fut_sleep(FUT_SEC(10));
  c->expired = fut_timeout_expired(cm);
  c->flag = fut_timeout_when(cm) == deadline;
  c->rc = fut_timeout_exit(cm, err);
  return 0;
}

/* TimeoutTests.test_timeout_at_basic */
static void test_timeout_at_basic(void **state) {
  struct ctx c = {0};
  assert_int_equal(run_main(*state, timeout_at_basic, &c), 0);
  assert_int_equal(c.rc, -ETIMEDOUT);
  assert_true(c.expired);
  assert_true(c.flag); /* deadline == cm.when() */
}

static int nested_timeouts(void *arg) {
  struct ctx *c = arg;
  fut_timeout_t *cm1, *cm2;
  uint64_t deadline = now() + FUT_MS(10);
  int err = timeout_at(deadline, &cm1);
  if (err)
    return err;
  if ((err = timeout_at(deadline, &cm2)) == 0) {
    err = fut_sleep(FUT_SEC(10));
    c->expired2 = fut_timeout_expired(cm2);
    /* Only the topmost scope turns the cancellation into a timeout. */
    err = fut_timeout_exit(cm2, err);
    c->flag = err == -ECANCELED; /* cancelled = True */
  }
  c->expired = fut_timeout_expired(cm1);
  c->rc = fut_timeout_exit(cm1, err);
  return 0;
}

/* TimeoutTests.test_nested_timeouts */
static void test_nested_timeouts(void **state) {
  struct ctx c = {0};
  assert_int_equal(run_main(*state, nested_timeouts, &c), 0);
  assert_int_equal(c.rc, -ETIMEDOUT);
  assert_true(c.flag);
  assert_true(c.expired);
  assert_true(c.expired2);
}

static int waiter_cancelled(void *arg) {
  struct ctx *c = arg;
  fut_timeout_t *cm;
  int err = fut_timeout_enter(FUT_MS(10), &cm);
  if (err)
    return err;
  err = fut_sleep(FUT_SEC(10));
  c->flag = err == -ECANCELED;
  c->rc = fut_timeout_exit(cm, err);
  return 0;
}

/* TimeoutTests.test_waiter_cancelled */
static void test_waiter_cancelled(void **state) {
  struct ctx c = {0};
  assert_int_equal(run_main(*state, waiter_cancelled, &c), 0);
  assert_int_equal(c.rc, -ETIMEDOUT);
  assert_true(c.flag);
}

static int timeout_not_called(void *arg) {
  struct ctx *c = arg;
  fut_timeout_t *cm;
  int err = fut_timeout_enter(FUT_SEC(10), &cm);
  if (err)
    return err;
  err = fut_sleep(FUT_MS(10));
  c->t1 = now();
  c->expired = fut_timeout_expired(cm);
  c->when = fut_timeout_when(cm);
  c->rc = fut_timeout_exit(cm, err);
  return 0;
}

/* TimeoutTests.test_timeout_not_called */
static void test_timeout_not_called(void **state) {
  struct ctx c = {0};
  assert_int_equal(run_main(*state, timeout_not_called, &c), 0);
  assert_int_equal(c.rc, 0);
  assert_false(c.expired);
  assert_true(c.when > c.t1);
}

static int timeout_disabled(void *arg) {
  struct ctx *c = arg;
  fut_timeout_t *cm;
  int err = c->flag ? timeout_at(UINT64_MAX, &cm)
                    : fut_timeout_enter(UINT64_MAX, &cm);
  if (err)
    return err;
  err = fut_sleep(FUT_MS(10));
  c->expired = fut_timeout_expired(cm);
  c->when = fut_timeout_when(cm);
  c->rc = fut_timeout_exit(cm, err);
  return 0;
}

/* TimeoutTests.test_timeout_disabled (timeout(None)) */
static void test_timeout_disabled(void **state) {
  struct ctx c = {.flag = false};
  assert_int_equal(run_main(*state, timeout_disabled, &c), 0);
  assert_int_equal(c.rc, 0);
  assert_false(c.expired);
  assert_true(c.when == UINT64_MAX); /* None */
}

/* TimeoutTests.test_timeout_at_disabled (timeout_at(None)) */
static void test_timeout_at_disabled(void **state) {
  struct ctx c = {.flag = true};
  assert_int_equal(run_main(*state, timeout_disabled, &c), 0);
  assert_int_equal(c.rc, 0);
  assert_false(c.expired);
  assert_true(c.when == UINT64_MAX);
}

/* timeout(0) (or a deadline in the past) around sleep(sleep_ns). */
struct zero {
  struct ctx c;
  uint64_t sleep_ns;
  bool past;
};

static int timeout_zero(void *arg) {
  struct zero *z = arg;
  fut_timeout_t *cm;
  z->c.t0 = now();
  int err;
  if (z->past) {
    uint64_t t = z->c.t0 > FUT_SEC(11) ? z->c.t0 - FUT_SEC(11) : 0;
    err = timeout_at(t, &cm); /* timeout(-11) */
  } else {
    err = fut_timeout_enter(0, &cm);
  }
  if (err)
    return err;
  err = fut_sleep(z->sleep_ns);
  z->c.expired = fut_timeout_expired(cm);
  z->c.when = fut_timeout_when(cm);
  z->c.rc = fut_timeout_exit(cm, err);
  z->c.t1 = now();
  return 0;
}

/* TimeoutTests.test_timeout_zero */
static void test_timeout_zero(void **state) {
  struct zero z = {.sleep_ns = FUT_SEC(10)};
  assert_int_equal(run_main(*state, timeout_zero, &z), 0);
  assert_int_equal(z.c.rc, -ETIMEDOUT);
  assert_true(z.c.expired);
  assert_true(z.c.t0 <= z.c.when && z.c.when <= z.c.t1);
}

/* TimeoutTests.test_timeout_zero_sleep_zero */
static void test_timeout_zero_sleep_zero(void **state) {
  struct zero z = {.sleep_ns = 0};
  assert_int_equal(run_main(*state, timeout_zero, &z), 0);
  assert_int_equal(z.c.rc, -ETIMEDOUT);
  assert_true(z.c.expired);
  assert_true(z.c.t0 <= z.c.when && z.c.when <= z.c.t1);
}

/* TimeoutTests.test_timeout_in_the_past_sleep_zero */
static void test_timeout_in_the_past_sleep_zero(void **state) {
  struct zero z = {.sleep_ns = 0, .past = true};
  assert_int_equal(run_main(*state, timeout_zero, &z), 0);
  assert_int_equal(z.c.rc, -ETIMEDOUT);
  assert_true(z.c.expired);
  assert_true(z.c.t0 >= z.c.when && z.c.when <= z.c.t1);
}

#define KEY_ERROR (-ENOKEY)
#define ZERO_DIVISION (-EDOM)

static int foreign_exception_passed(void *arg) {
  struct ctx *c = arg;
  fut_timeout_t *cm;
  int err = fut_timeout_enter(FUT_MS(10), &cm);
  if (err)
    return err;
  c->expired = fut_timeout_expired(cm);
  c->rc = fut_timeout_exit(cm, KEY_ERROR); /* raise KeyError */
  return 0;
}

/* TimeoutTests.test_foreign_exception_passed */
static void test_foreign_exception_passed(void **state) {
  struct ctx c = {0};
  assert_int_equal(run_main(*state, foreign_exception_passed, &c), 0);
  assert_int_equal(c.rc, KEY_ERROR);
  assert_false(c.expired);
}

static int crash(void) {
  (void)fut_sleep(FUT_SEC(1));
  return ZERO_DIVISION; /* finally: 1/0 */
}

static int foreign_exception_on_timeout(void *arg) {
  struct ctx *c = arg;
  fut_timeout_t *cm;
  int err = fut_timeout_enter(FUT_MS(10), &cm);
  if (err)
    return err;
  c->rc = fut_timeout_exit(cm, crash());
  return 0;
}

/* TimeoutTests.test_foreign_exception_on_timeout */
static void test_foreign_exception_on_timeout(void **state) {
  struct ctx c = {0};
  assert_int_equal(run_main(*state, foreign_exception_on_timeout, &c), 0);
  assert_int_equal(c.rc, ZERO_DIVISION);
}

static int foreign_cancel(void *arg) {
  struct ctx *c = arg;
  fut_timeout_t *cm;
  int err = fut_timeout_enter(FUT_SEC(10), &cm);
  if (err)
    return err;
  fut_cancel(fut_current_task(NULL), NULL);
  err = fut_sleep(FUT_SEC(10));
  c->expired = fut_timeout_expired(cm);
  c->rc = fut_timeout_exit(cm, err);
  return 0;
}

/* TimeoutTests.test_foreign_cancel_doesnt_timeout_if_not_expired */
static void test_foreign_cancel_doesnt_timeout_if_not_expired(void **state) {
  struct ctx c = {0};
  assert_int_equal(run_main(*state, foreign_cancel, &c), 0);
  assert_int_equal(c.rc, -ECANCELED);
  assert_false(c.expired);
}

static int outer(void *arg) {
  struct ctx *c = arg;
  fut_timeout_t *cm;
  int err = fut_timeout_enter(FUT_MS(1), &cm);
  if (err)
    return err;
  c->inner_rc = fut_timeout_exit(cm, fut_sleep(FUT_SEC(10)));
  return 0; /* the TimeoutError is caught */
}

static int outer_task_main(void *arg) {
  struct ctx *c = arg;
  fut_t *task;
  int err = fut_create_task(fut_get_running_loop(), outer, c, NULL, &task);
  if (err)
    return err;
  c->rc = fut_await(task, NULL);
  c->flag = fut_cancelled(task);
  c->expired = fut_done(task);
  fut_unref(task);
  return 0;
}

/* TimeoutTests.test_outer_task_is_not_cancelled */
static void test_outer_task_is_not_cancelled(void **state) {
  struct ctx c = {0};
  assert_int_equal(run_main(*state, outer_task_main, &c), 0);
  assert_int_equal(c.inner_rc, -ETIMEDOUT);
  assert_int_equal(c.rc, 0);
  assert_false(c.flag);   /* not cancelled */
  assert_true(c.expired); /* done */
}

static int nested_concurrent(void *arg) {
  struct ctx *c = arg;
  fut_timeout_t *cm1, *cm2;
  int err = fut_timeout_enter(FUT_MS(2), &cm1);
  if (err)
    return err;
  if ((err = fut_timeout_enter(FUT_MS(100), &cm2)) == 0) {
    usleep(10000); /* pretend we crunch some numbers */
    err = fut_timeout_exit(cm2, fut_sleep(FUT_SEC(1)));
    c->inner_rc = err;
  }
  c->rc = fut_timeout_exit(cm1, err);
  return 0;
}

/* TimeoutTests.test_nested_timeouts_concurrent: the outer deadline fires
 * first; the inner block lets the cancellation through (in CPython the
 * inner assertRaises(TimeoutError) re-raises the CancelledError it does not
 * expect) and the outer one turns it into a timeout. */
static void test_nested_timeouts_concurrent(void **state) {
  struct ctx c = {0};
  assert_int_equal(run_main(*state, nested_concurrent, &c), 0);
  assert_int_equal(c.inner_rc, -ECANCELED);
  assert_int_equal(c.rc, -ETIMEDOUT);
}

static int nested_loop_busy(void *arg) {
  struct ctx *c = arg;
  fut_timeout_t *cm1, *cm2;
  c->t0 = now();
  int err = fut_timeout_enter(FUT_MS(100), &cm1); /* (1) */
  if (err)
    return err;
  if ((err = fut_timeout_enter(FUT_MS(10), &cm2)) == 0) { /* (2) */
    usleep(100000); /* the loop is busy for a while */
    err = fut_timeout_exit(cm2, fut_sleep(FUT_SEC(1)));
    c->inner_rc = err;
    if (err == -ETIMEDOUT) /* caught by (2) */
      err = fut_sleep(FUT_SEC(10)); /* interrupted by (1) */
  }
  c->rc = fut_timeout_exit(cm1, err);
  c->t1 = now();
  return 0;
}

/* TimeoutTests.test_nested_timeouts_loop_busy */
static void test_nested_timeouts_loop_busy(void **state) {
  fut_loop_set_slow_callback_duration(*state, FUT_SEC(10));
  struct ctx c = {0};
  assert_int_equal(run_main(*state, nested_loop_busy, &c), 0);
  assert_int_equal(c.rc, -ETIMEDOUT);
  assert_true(c.t0 <= c.t1 && c.t1 <= c.t0 + FUT_SEC(1));
}

static int reschedule_f(void *arg) {
  struct ctx *c = arg;
  fut_timeout_t *cm;
  int err = timeout_at(c->when, &cm);
  if (err)
    return err;
  c->cm = cm;
  fut_set_result(c->fut, cm, NULL);
  err = fut_sleep(FUT_SEC(50));
  c->expired = fut_timeout_expired(cm);
  c->cm = NULL;
  return fut_timeout_exit(cm, err);
}

static int reschedule_main(void *arg) {
  struct ctx *c = arg;
  fut_loop_t *loop = fut_get_running_loop();
  int err = fut_new(loop, &c->fut);
  if (err)
    return err;
  uint64_t deadline1 = now() + FUT_SEC(10), deadline2 = deadline1 + FUT_SEC(20);
  c->when = deadline1;
  fut_t *task;
  if ((err = fut_create_task(loop, reschedule_f, c, NULL, &task)))
    return err;
  fut_timeout_t *cm = NULL;
  err = fut_await(c->fut, (void **)&cm);
  c->flag = err == 0 && fut_timeout_when(cm) == deadline1;
  if (err == 0 && fut_timeout_reschedule(cm, deadline2) == 0 &&
      fut_timeout_when(cm) == deadline2 &&
      fut_timeout_reschedule(cm, UINT64_MAX) == 0)
    c->when2 = fut_timeout_when(cm);
  fut_cancel(task, NULL);
  c->rc = fut_await(task, NULL);
  fut_unref(task);
  fut_unref(c->fut);
  return 0;
}

/* TimeoutTests.test_reschedule */
static void test_reschedule(void **state) {
  struct ctx c = {0};
  assert_int_equal(run_main(*state, reschedule_main, &c), 0);
  assert_true(c.flag);                /* cm.when() == deadline1 */
  assert_true(c.when2 == UINT64_MAX); /* after reschedule(None) */
  assert_int_equal(c.rc, -ECANCELED);
  assert_false(c.expired);
}

static int nested_in_finally(void *arg) {
  struct ctx *c = arg;
  fut_timeout_t *cm1, *cm2;
  int err = fut_timeout_enter(FUT_MS(10), &cm1);
  if (err)
    return err;
  err = fut_sleep(FUT_SEC(1));
  /* finally: */
  if (fut_timeout_enter(FUT_MS(10), &cm2) == 0)
    c->inner_rc = fut_timeout_exit(cm2, fut_sleep(FUT_SEC(10)));
  c->rc = fut_timeout_exit(cm1, err);
  return 0;
}

/* TimeoutTests.test_nested_timeout_in_finally */
static void test_nested_timeout_in_finally(void **state) {
  struct ctx c = {0};
  assert_int_equal(run_main(*state, nested_in_finally, &c), 0);
  assert_int_equal(c.inner_rc, -ETIMEDOUT);
  assert_int_equal(c.rc, -ETIMEDOUT);
}

static int after_cancellation(void *arg) {
  struct ctx *c = arg;
  fut_cancel(fut_current_task(NULL), NULL);
  c->flag = fut_sleep(FUT_SEC(1)) == -ECANCELED; /* caught */
  /* finally: */
  fut_timeout_t *cm;
  int err = fut_timeout_enter(c->when, &cm);
  if (err)
    return err;
  if (c->when2)
    fut_cancel(fut_current_task(NULL), NULL);
  c->rc = fut_timeout_exit(cm, fut_sleep(FUT_SEC(c->when2 ? 2 : 1)));
  return 0;
}

/* TimeoutTests.test_timeout_after_cancellation */
static void test_timeout_after_cancellation(void **state) {
  struct ctx c = {.when = 0, .when2 = 0};
  assert_int_equal(run_main(*state, after_cancellation, &c), 0);
  assert_true(c.flag);
  assert_int_equal(c.rc, -ETIMEDOUT);
}

/* TimeoutTests.test_cancel_in_timeout_after_cancellation */
static void test_cancel_in_timeout_after_cancellation(void **state) {
  struct ctx c = {.when = FUT_SEC(1), .when2 = 1};
  assert_int_equal(run_main(*state, after_cancellation, &c), 0);
  assert_true(c.flag);
  assert_int_equal(c.rc, -ECANCELED);
}

/* TimeoutTests.test_timeout_without_task (the reschedule of a scope never
 * entered has no C counterpart: only entering makes one) */
static void test_timeout_without_task(void **state) {
  (void)state;
  fut_timeout_t *cm = (fut_timeout_t *)&cm;
  assert_int_equal(fut_timeout_enter(FUT_MS(10), &cm), FUT_E_NOT_IN_TASK);
  assert_null(cm);
  assert_non_null(strstr(fut_last_error(), "task"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_timeout_basic),
      T(test_timeout_at_basic),
      T(test_nested_timeouts),
      T(test_waiter_cancelled),
      T(test_timeout_not_called),
      T(test_timeout_disabled),
      T(test_timeout_at_disabled),
      T(test_timeout_zero),
      T(test_timeout_zero_sleep_zero),
      T(test_timeout_in_the_past_sleep_zero),
      T(test_foreign_exception_passed),
      T(test_foreign_exception_on_timeout),
      T(test_foreign_cancel_doesnt_timeout_if_not_expired),
      T(test_outer_task_is_not_cancelled),
      T(test_nested_timeouts_concurrent),
      T(test_nested_timeouts_loop_busy),
      T(test_reschedule),
      T(test_nested_timeout_in_finally),
      T(test_timeout_after_cancellation),
      T(test_cancel_in_timeout_after_cancellation),
      T(test_timeout_without_task),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
