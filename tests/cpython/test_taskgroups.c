/* CPython's Lib/test/test_asyncio/test_taskgroups.py (class
 * BaseTestTaskGroup) as libfuture's behavioural spec: one cmocka test per
 * CPython test method that applies to C, named after it.
 *
 *   async with TaskGroup() as g: BODY     fut_taskgroup_new(&g);
 *                                          fut_taskgroup_enter(g);
 *                                          err = BODY;
 *                                          err = fut_taskgroup_exit(g, err);
 *   except* / ExceptionGroup              err == FUT_E_GROUP, then
 *                                          fut_taskgroup_errors(g) or
 *                                          fut_task_error_group(task)
 * Exceptions become codes: ZeroDivisionError -EDOM, ValueError -EINVAL,
 * MyExc and CustomException -EPROTO, TypeError -EBADMSG, RuntimeError -EIO.
 * Short delays are scaled down (0.1 s -> 10 ms) keeping their order; a
 * delay that must not expire before another event is kept long, so a
 * loaded machine (sanitizers, parallel tests) cannot reorder them.
 *
 * Not ported (docs/sync.md repeats the list): test_taskgroup_20,
 * test_taskgroup_20a, test_taskgroup_21a and _test_taskgroup_21
 * (KeyboardInterrupt / BaseException: C codes have no such class);
 * test_taskgroup_task_context (create_task(context=...): libfuture's
 * context variables are always copied from the creator);
 * test_exception_refcycles_* (Python garbage collection); the
 * TestEagerTaskTaskGroup variant (no eager task factory). */
#include "fixture.h"
#include "task_helpers.h"

#define T(fn) FX_LOOP_TEST(fn)

#define ZERO_DIV (-EDOM)
#define VALUE_ERR (-EINVAL)
#define MY_EXC (-EPROTO)
#define TYPE_ERR (-EBADMSG)
#define RUNTIME_ERR (-EIO)

/* A child task: sleeps `delay`, then returns `fail` or the result `ret`;
 * counts a cancelled sleep in *cancelled and adds `add` to *num after a
 * sleep that was not cancelled. */
struct job {
  uint64_t delay;
  int fail;
  int64_t ret;
  int *cancelled;
  int *num;
  int add;
};

static int job_fn(void *arg) {
  struct job *j = arg;
  int err = fut_sleep(j->delay);
  if (err == -ECANCELED) {
    if (j->cancelled)
      (*j->cancelled)++;
    return err;
  }
  if (j->num)
    *j->num += j->add;
  if (j->fail)
    return j->fail;
  return fut_task_return_i64(j->ret);
}

static fut_t *add(fut_taskgroup_t *g, struct job *j) {
  fut_t *t;
  assert_int_equal(fut_taskgroup_create_task(g, job_fn, j, NULL, &t), 0);
  return t;
}

static void add_nr(fut_taskgroup_t *g, struct job *j) {
  assert_int_equal(fut_taskgroup_create_task(g, job_fn, j, NULL, NULL), 0);
}

static fut_taskgroup_t *enter(void) {
  fut_taskgroup_t *g;
  assert_int_equal(fut_taskgroup_new(&g), 0);
  assert_int_equal(fut_taskgroup_enter(g), 0);
  return g;
}

static int64_t result_i64(fut_t *t) {
  int64_t v = -1;
  assert_int_equal(fut_result_i64(t, &v), 0);
  return v;
}

/* The codes at the top level of eg: a bit per code in a small set. */
static bool only_code(const fut_error_group_t *eg, int code) {
  if (!eg || fut_error_group_count(eg) == 0)
    return false;
  for (size_t i = 0; i < fut_error_group_count(eg); i++)
    if (fut_error_group_code(eg, i) != code)
      return false;
  return true;
}

/* Spawns fn(c) as a task r, sleeps `pause`, cancels r (message msg) and
 * returns its outcome, r's reference given to *rp (or dropped). */
static int cancel_after(fut_task_fn fn, void *c, uint64_t pause,
                        const char *msg, fut_t **rp) {
  fut_t *r;
  int err = fut_create_task(fut_get_running_loop(), fn, c, NULL, &r);
  if (err)
    return err;
  fut_sleep(pause);
  int rc;
  if (fut_done(r)) {
    rc = 1; /* the test checks r is still pending */
  } else {
    fut_cancel(r, msg);
    rc = fut_await(r, NULL);
  }
  if (rp)
    *rp = r;
  else
    fut_unref(r);
  return rc;
}

/* ---- test_taskgroup_01 / 02 / 03 ------------------------------------- */

struct basic {
  int64_t r1, r2;
  bool t1_cancelled;
  int rc;
};

static int taskgroup_01(void *arg) {
  struct basic *c = arg;
  struct job j1 = {.delay = FUT_MS(10), .ret = 42};
  struct job j2 = {.delay = FUT_MS(20), .ret = 11};
  fut_taskgroup_t *g = enter();
  fut_t *t1 = add(g, &j1), *t2 = add(g, &j2);
  c->rc = fut_taskgroup_exit(g, 0);
  fut_taskgroup_free(g);
  c->r1 = result_i64(t1);
  c->r2 = result_i64(t2);
  fut_unref(t1);
  fut_unref(t2);
  return 0;
}

/* TestTaskGroup.test_taskgroup_01 */
static void test_taskgroup_01(void **state) {
  struct basic c = {0};
  assert_int_equal(run_main(*state, taskgroup_01, &c), 0);
  assert_int_equal(c.rc, 0);
  assert_int_equal(c.r1, 42);
  assert_int_equal(c.r2, 11);
}

static int taskgroup_02(void *arg) {
  struct basic *c = arg;
  struct job j1 = {.delay = FUT_MS(10), .ret = 42};
  struct job j2 = {.delay = FUT_MS(20), .ret = 11};
  fut_taskgroup_t *g = enter();
  fut_t *t1 = add(g, &j1);
  int err = fut_sleep(FUT_MS(15));
  fut_t *t2 = add(g, &j2);
  c->rc = fut_taskgroup_exit(g, err);
  fut_taskgroup_free(g);
  c->r1 = result_i64(t1);
  c->r2 = result_i64(t2);
  fut_unref(t1);
  fut_unref(t2);
  return 0;
}

/* TestTaskGroup.test_taskgroup_02 */
static void test_taskgroup_02(void **state) {
  struct basic c = {0};
  assert_int_equal(run_main(*state, taskgroup_02, &c), 0);
  assert_int_equal(c.rc, 0);
  assert_int_equal(c.r1, 42);
  assert_int_equal(c.r2, 11);
}

static int taskgroup_03(void *arg) {
  struct basic *c = arg;
  struct job j1 = {.delay = FUT_SEC(1), .ret = 42};
  struct job j2 = {.delay = FUT_MS(20), .ret = 11};
  fut_taskgroup_t *g = enter();
  fut_t *t1 = add(g, &j1);
  int err = fut_sleep(FUT_MS(15));
  fut_cancel(t1, NULL); /* everything else goes on as usual */
  fut_t *t2 = add(g, &j2);
  c->rc = fut_taskgroup_exit(g, err);
  fut_taskgroup_free(g);
  c->t1_cancelled = fut_cancelled(t1);
  c->r2 = result_i64(t2);
  fut_unref(t1);
  fut_unref(t2);
  return 0;
}

/* TestTaskGroup.test_taskgroup_03 */
static void test_taskgroup_03(void **state) {
  struct basic c = {0};
  assert_int_equal(run_main(*state, taskgroup_03, &c), 0);
  assert_int_equal(c.rc, 0);
  assert_true(c.t1_cancelled);
  assert_int_equal(c.r2, 11);
}

/* ---- a failing child cancels the rest ---------------------------------- */

struct fail4 {
  int num, t2_cancel, runner_cancel;
  bool t2_cancelled;
  int rc;
  bool types_ok;
};

static int runner_04(void *arg) {
  struct fail4 *c = arg;
  struct job j1 = {.delay = FUT_MS(10), .fail = ZERO_DIV};
  struct job j2 = {.delay = FUT_SEC(1),
                   .cancelled = &c->t2_cancel,
                   .num = &c->num,
                   .add = 1};
  fut_taskgroup_t *g = enter();
  add_nr(g, &j1);
  fut_t *t2 = add(g, &j2);
  int err = fut_taskgroup_exit(g, 0);
  fut_taskgroup_free(g);
  c->t2_cancelled = fut_cancelled(t2);
  fut_unref(t2);
  if (err)
    return err;
  c->num += 10;
  return 0;
}

static int main_04(void *arg) {
  struct fail4 *c = arg;
  fut_t *r = spawn(fut_get_running_loop(), runner_04, c);
  c->rc = fut_await(r, NULL);
  c->types_ok = only_code(fut_task_error_group(r), ZERO_DIV);
  fut_unref(r);
  return 0;
}

/* TestTaskGroup.test_taskgroup_04 */
static void test_taskgroup_04(void **state) {
  struct fail4 c = {0};
  assert_int_equal(run_main(*state, main_04, &c), 0);
  assert_int_equal(c.rc, FUT_E_GROUP);
  assert_true(c.types_ok);
  assert_int_equal(c.num, 0);
  assert_int_equal(c.t2_cancel, 1);
  assert_true(c.t2_cancelled);
}

static int runner_children_error(void *arg) {
  struct fail4 *c = arg;
  struct job j1 = {.delay = FUT_MS(10), .fail = ZERO_DIV};
  struct job j2 = {.delay = FUT_SEC(5),
                   .cancelled = &c->t2_cancel,
                   .num = &c->num,
                   .add = 1};
  fut_taskgroup_t *g = enter();
  add_nr(g, &j1);
  add_nr(g, &j1);
  add_nr(g, &j1);
  add_nr(g, &j2);
  int err = fut_sleep(FUT_SEC(10));
  if (err == -ECANCELED)
    c->runner_cancel = 1;
  err = fut_taskgroup_exit(g, err);
  fut_taskgroup_free(g);
  if (err)
    return err;
  c->num += 10;
  return 0;
}

static int main_children_error(void *arg) {
  struct fail4 *c = arg;
  fut_t *r = spawn(fut_get_running_loop(), runner_children_error, c);
  c->rc = fut_await(r, NULL);
  c->types_ok = only_code(fut_task_error_group(r), ZERO_DIV);
  fut_unref(r);
  return 0;
}

/* TestTaskGroup.test_cancel_children_on_child_error */
static void test_cancel_children_on_child_error(void **state) {
  struct fail4 c = {0};
  assert_int_equal(run_main(*state, main_children_error, &c), 0);
  assert_int_equal(c.rc, FUT_E_GROUP);
  assert_true(c.types_ok);
  assert_int_equal(c.num, 0);
  assert_int_equal(c.t2_cancel, 1);
  assert_int_equal(c.runner_cancel, 1);
}

/* ---- cancelling the parent from outside -------------------------------- */

struct canc {
  int num;
  int rc;
  const char *msg_seen;
  bool msg_ok;
  int body_flag;
};

static int runner_cancellation(void *arg) {
  struct canc *c = arg;
  struct job j = {.delay = FUT_SEC(5), .cancelled = &c->num};
  fut_taskgroup_t *g = enter();
  for (int i = 0; i < 5; i++)
    add_nr(g, &j);
  int err = fut_taskgroup_exit(g, 0);
  fut_taskgroup_free(g);
  return err;
}

static int main_cancellation(void *arg) {
  struct canc *c = arg;
  fut_t *r;
  c->rc = cancel_after(runner_cancellation, c, FUT_MS(10), "test", &r);
  const char *msg = NULL;
  if (fut_exception(r, &msg) == -ECANCELED)
    c->msg_ok = msg && strcmp(msg, "test") == 0;
  fut_unref(r);
  return 0;
}

/* TestTaskGroup.test_cancellation */
static void test_cancellation(void **state) {
  struct canc c = {0};
  assert_int_equal(run_main(*state, main_cancellation, &c), 0);
  assert_int_equal(c.rc, -ECANCELED);
  assert_true(c.msg_ok);
  assert_int_equal(c.num, 5);
}

static int runner_07(void *arg) {
  struct canc *c = arg;
  struct job j = {.delay = FUT_SEC(5), .cancelled = &c->num};
  fut_taskgroup_t *g = enter();
  for (int i = 0; i < 5; i++)
    add_nr(g, &j);
  int err = fut_sleep(FUT_SEC(10));
  if (err == -ECANCELED)
    c->num += 10;
  err = fut_taskgroup_exit(g, err);
  fut_taskgroup_free(g);
  return err;
}

static int main_07(void *arg) {
  struct canc *c = arg;
  c->rc = cancel_after(runner_07, c, FUT_MS(10), NULL, NULL);
  return 0;
}

/* TestTaskGroup.test_taskgroup_07 */
static void test_taskgroup_07(void **state) {
  struct canc c = {0};
  assert_int_equal(run_main(*state, main_07, &c), 0);
  assert_int_equal(c.rc, -ECANCELED);
  assert_int_equal(c.num, 15);
}

static int runner_cancel_in_body(void *arg) {
  (void)arg;
  struct job j = {.delay = FUT_MS(500), .fail = ZERO_DIV};
  fut_taskgroup_t *g = enter();
  for (int i = 0; i < 5; i++)
    add_nr(g, &j);
  int err = fut_sleep(FUT_SEC(10));
  err = fut_taskgroup_exit(g, err);
  fut_taskgroup_free(g);
  return err;
}

static int main_cancel_in_body(void *arg) {
  struct canc *c = arg;
  fut_t *r;
  c->rc = cancel_after(runner_cancel_in_body, c, FUT_MS(10), "test", &r);
  const char *msg = NULL;
  if (fut_exception(r, &msg) == -ECANCELED)
    c->msg_ok = msg && strcmp(msg, "test") == 0;
  fut_unref(r);
  return 0;
}

/* TestTaskGroup.test_cancellation_in_body */
static void test_cancellation_in_body(void **state) {
  struct canc c = {0};
  assert_int_equal(run_main(*state, main_cancel_in_body, &c), 0);
  assert_int_equal(c.rc, -ECANCELED);
  assert_true(c.msg_ok);
}

/* ---- a failing body ----------------------------------------------------- */

struct body {
  bool t1_cancelled, t2_cancelled, types_ok;
  int rc;
  uint64_t pause; /* 0: fail at once */
};

static int runner_09(void *arg) {
  struct body *c = arg;
  struct job j1 = {.delay = FUT_SEC(1), .ret = 42};
  struct job j2 = {.delay = FUT_SEC(2), .ret = 11};
  fut_taskgroup_t *g = enter();
  fut_t *t1 = add(g, &j1), *t2 = add(g, &j2);
  int err = c->pause ? fut_sleep(c->pause) : 0;
  if (!err)
    err = ZERO_DIV; /* 1 / 0 in the body */
  c->rc = fut_taskgroup_exit(g, err);
  c->types_ok = only_code(fut_taskgroup_errors(g), ZERO_DIV);
  fut_taskgroup_free(g);
  c->t1_cancelled = fut_cancelled(t1);
  c->t2_cancelled = fut_cancelled(t2);
  fut_unref(t1);
  fut_unref(t2);
  return 0;
}

/* TestTaskGroup.test_taskgroup_09 */
static void test_taskgroup_09(void **state) {
  struct body c = {.pause = FUT_MS(10)};
  assert_int_equal(run_main(*state, runner_09, &c), 0);
  assert_int_equal(c.rc, FUT_E_GROUP);
  assert_true(c.types_ok);
  assert_true(c.t1_cancelled);
  assert_true(c.t2_cancelled);
}

/* TestTaskGroup.test_taskgroup_10 */
static void test_taskgroup_10(void **state) {
  struct body c = {.pause = 0};
  assert_int_equal(run_main(*state, runner_09, &c), 0);
  assert_int_equal(c.rc, FUT_E_GROUP);
  assert_true(c.types_ok);
  assert_true(c.t1_cancelled);
  assert_true(c.t2_cancelled);
}

/* ---- nested groups ------------------------------------------------------ */

struct nest {
  int rc;
  bool types_ok, nested_ok;
};

static int runner_11(void *arg) {
  (void)arg;
  struct job j = {.delay = FUT_MS(500), .fail = ZERO_DIV};
  fut_taskgroup_t *g1 = enter();
  fut_taskgroup_t *g2 = enter();
  for (int i = 0; i < 5; i++)
    add_nr(g2, &j);
  int err = fut_sleep(FUT_SEC(10));
  err = fut_taskgroup_exit(g2, err);
  fut_taskgroup_free(g2);
  err = fut_taskgroup_exit(g1, err);
  fut_taskgroup_free(g1);
  return err;
}

static int main_11(void *arg) {
  struct nest *c = arg;
  c->rc = cancel_after(runner_11, c, FUT_MS(10), NULL, NULL);
  return 0;
}

/* TestTaskGroup.test_taskgroup_11 */
static void test_taskgroup_11(void **state) {
  struct nest c = {0};
  assert_int_equal(run_main(*state, main_11, &c), 0);
  assert_int_equal(c.rc, -ECANCELED);
}

static int runner_12(void *arg) {
  (void)arg;
  struct job j = {.delay = FUT_MS(500), .fail = ZERO_DIV};
  struct job sleeper = {.delay = FUT_SEC(10)};
  fut_taskgroup_t *g1 = enter();
  add_nr(g1, &sleeper);
  fut_taskgroup_t *g2 = enter();
  for (int i = 0; i < 5; i++)
    add_nr(g2, &j);
  int err = fut_sleep(FUT_SEC(10));
  err = fut_taskgroup_exit(g2, err);
  fut_taskgroup_free(g2);
  err = fut_taskgroup_exit(g1, err);
  fut_taskgroup_free(g1);
  return err;
}

static int main_12(void *arg) {
  struct nest *c = arg;
  c->rc = cancel_after(runner_12, c, FUT_MS(10), NULL, NULL);
  return 0;
}

/* TestTaskGroup.test_taskgroup_12 */
static void test_taskgroup_12(void **state) {
  struct nest c = {0};
  assert_int_equal(run_main(*state, main_12, &c), 0);
  assert_int_equal(c.rc, -ECANCELED);
}

static int runner_13_14(void *arg) {
  uint64_t *delays = arg; /* outer task's, inner task's */
  struct job outer = {.delay = delays[0], .fail = VALUE_ERR};
  struct job inner = {.delay = delays[1], .fail = VALUE_ERR};
  fut_taskgroup_t *g1 = enter();
  add_nr(g1, &outer);
  fut_taskgroup_t *g2 = enter();
  add_nr(g2, &inner);
  int err = fut_taskgroup_exit(g2, 0);
  fut_taskgroup_free(g2);
  err = fut_taskgroup_exit(g1, err);
  fut_taskgroup_free(g1);
  return err;
}

static int main_13_14(void *arg) {
  struct nest *c = arg;
  uint64_t d13[2] = {FUT_MS(10), FUT_SEC(10)};
  uint64_t d14[2] = {FUT_SEC(10), FUT_MS(10)};
  bool is13 = !c->nested_ok;
  fut_t *r = spawn(fut_get_running_loop(), runner_13_14, is13 ? d13 : d14);
  c->rc = fut_await(r, NULL);
  const fut_error_group_t *eg = fut_task_error_group(r);
  if (is13) {
    c->types_ok = only_code(eg, VALUE_ERR);
  } else {
    c->types_ok = only_code(eg, FUT_E_GROUP) &&
                  only_code(fut_error_group_child(eg, 0), VALUE_ERR);
  }
  fut_unref(r);
  return 0;
}

/* TestTaskGroup.test_taskgroup_13 */
static void test_taskgroup_13(void **state) {
  struct nest c = {0};
  assert_int_equal(run_main(*state, main_13_14, &c), 0);
  assert_int_equal(c.rc, FUT_E_GROUP);
  assert_true(c.types_ok);
}

/* TestTaskGroup.test_taskgroup_14 */
static void test_taskgroup_14(void **state) {
  struct nest c = {.nested_ok = true}; /* selects the 14 variant */
  assert_int_equal(run_main(*state, main_13_14, &c), 0);
  assert_int_equal(c.rc, FUT_E_GROUP);
  assert_true(c.types_ok);
}

/* ---- a parent cancelled and a child failing at once -------------------- */

static int nested_runner_15(void *arg) {
  (void)arg;
  struct job crash = {.delay = FUT_MS(30), .fail = ZERO_DIV};
  fut_taskgroup_t *g1 = enter();
  add_nr(g1, &crash);
  int err = fut_sleep(FUT_SEC(10));
  if (err == -ECANCELED) {
    fut_sleep(FUT_MS(500)); /* the crash happens meanwhile */
    err = -ECANCELED;
  }
  err = fut_taskgroup_exit(g1, err);
  fut_taskgroup_free(g1);
  return err;
}

static int runner_16(void *arg) {
  fut_t *t = spawn(fut_get_running_loop(), nested_runner_15, arg);
  int err = fut_await(t, NULL);
  /* `await t` re-raises t's ExceptionGroup: pass its group on. */
  if (err == FUT_E_GROUP)
    ((struct nest *)arg)->types_ok =
        only_code(fut_task_error_group(t), ZERO_DIV);
  fut_unref(t);
  return err;
}

struct n15 {
  struct nest n;
  bool is16;
};

static int main_15_16(void *arg) {
  struct n15 *c = arg;
  fut_t *r;
  c->n.rc = cancel_after(c->is16 ? runner_16 : nested_runner_15, &c->n,
                         FUT_MS(10), NULL, &r);
  if (!c->is16)
    c->n.types_ok = only_code(fut_task_error_group(r), ZERO_DIV);
  fut_unref(r);
  return 0;
}

/* TestTaskGroup.test_taskgroup_15 */
static void test_taskgroup_15(void **state) {
  struct n15 c = {0};
  assert_int_equal(run_main(*state, main_15_16, &c), 0);
  assert_int_equal(c.n.rc, FUT_E_GROUP);
  assert_true(c.n.types_ok);
}

/* TestTaskGroup.test_taskgroup_16 */
static void test_taskgroup_16(void **state) {
  struct n15 c = {.is16 = true};
  assert_int_equal(run_main(*state, main_15_16, &c), 0);
  assert_int_equal(c.n.rc, FUT_E_GROUP);
  assert_true(c.n.types_ok);
}

/* ---- an empty group's body cancelled ----------------------------------- */

static int runner_17_18(void *arg) {
  struct canc *c = arg;
  fut_taskgroup_t *g = enter();
  int err = fut_sleep(FUT_SEC(10));
  if (err == -ECANCELED) {
    c->num += 10;
    if (c->body_flag) /* "not a good idea, but we have to support it" */
      err = MY_EXC;
  }
  err = fut_taskgroup_exit(g, err);
  if (err == FUT_E_GROUP)
    c->msg_ok = only_code(fut_taskgroup_errors(g), MY_EXC);
  fut_taskgroup_free(g);
  return err;
}

static int main_17_18(void *arg) {
  struct canc *c = arg;
  c->rc = cancel_after(runner_17_18, c, FUT_MS(10), NULL, NULL);
  return 0;
}

/* TestTaskGroup.test_taskgroup_17 */
static void test_taskgroup_17(void **state) {
  struct canc c = {0};
  assert_int_equal(run_main(*state, main_17_18, &c), 0);
  assert_int_equal(c.rc, -ECANCELED);
  assert_int_equal(c.num, 10);
}

/* TestTaskGroup.test_taskgroup_18 */
static void test_taskgroup_18(void **state) {
  struct canc c = {.body_flag = 1};
  assert_int_equal(run_main(*state, main_17_18, &c), 0);
  assert_int_equal(c.rc, FUT_E_GROUP);
  assert_true(c.msg_ok);
  assert_int_equal(c.num, 10);
}

/* ---- a body that fails while being cancelled ---------------------------- */

static int runner_19(void *arg) {
  struct nest *c = arg;
  struct job crash = {.delay = FUT_MS(10), .fail = ZERO_DIV};
  fut_taskgroup_t *g = enter();
  add_nr(g, &crash);
  fut_sleep(FUT_SEC(10)); /* nested(): finally: raise MyExc */
  int err = fut_taskgroup_exit(g, MY_EXC);
  const fut_error_group_t *eg = fut_taskgroup_errors(g);
  c->types_ok = fut_error_group_count(eg) == 2 &&
                fut_error_group_contains(eg, MY_EXC) &&
                fut_error_group_contains(eg, ZERO_DIV);
  fut_taskgroup_free(g);
  return err;
}

/* TestTaskGroup.test_taskgroup_19 */
static void test_taskgroup_19(void **state) {
  struct nest c = {0};
  assert_int_equal(run_main(*state, runner_19, &c), FUT_E_GROUP);
  assert_true(c.types_ok);
}

/* ---- test_taskgroup_22 .. 25 ------------------------------------------- */

static int runner_22(void *arg) {
  (void)arg;
  struct job j1 = {.delay = FUT_SEC(1), .ret = 42};
  struct job j2 = {.delay = FUT_SEC(2), .ret = 11};
  fut_taskgroup_t *g = enter();
  add_nr(g, &j1);
  add_nr(g, &j2);
  int err = fut_taskgroup_exit(g, 0);
  fut_taskgroup_free(g);
  return err;
}

static int main_22(void *arg) {
  struct canc *c = arg;
  c->rc = cancel_after(runner_22, c, FUT_MS(5), NULL, NULL);
  return 0;
}

/* TestTaskGroup.test_taskgroup_22 */
static void test_taskgroup_22(void **state) {
  struct canc c = {0};
  assert_int_equal(run_main(*state, main_22, &c), 0);
  assert_int_equal(c.rc, -ECANCELED);
}

struct sizes {
  size_t at5, at_end;
  int rc;
};

static int taskgroup_23(void *arg) {
  struct sizes *c = arg;
  struct job j = {.delay = FUT_MS(30)};
  fut_taskgroup_t *g = enter();
  int err = 0;
  for (int count = 0; count < 10 && !err; count++) {
    err = fut_sleep(FUT_MS(10));
    add_nr(g, &j);
    if (count == 5)
      c->at5 = fut_taskgroup_size(g);
  }
  if (!err)
    err = fut_sleep(FUT_MS(135));
  c->at_end = fut_taskgroup_size(g);
  c->rc = fut_taskgroup_exit(g, err);
  fut_taskgroup_free(g);
  return 0;
}

/* TestTaskGroup.test_taskgroup_23 */
static void test_taskgroup_23(void **state) {
  struct sizes c = {0};
  assert_int_equal(run_main(*state, taskgroup_23, &c), 0);
  assert_int_equal(c.rc, 0);
  assert_true(c.at5 < 5);
  assert_int_equal(c.at_end, 0);
}

struct root24 {
  fut_taskgroup_t *g;
  struct job j1, j2;
};

static int root_24(void *arg) {
  struct root24 *r = arg;
  int err = fut_sleep(FUT_MS(10));
  if (err)
    return err;
  if ((err = fut_taskgroup_create_task(r->g, job_fn, &r->j1, NULL, NULL)))
    return err;
  return fut_taskgroup_create_task(r->g, job_fn, &r->j2, NULL, NULL);
}

static int taskgroup_24(void *arg) {
  int *rc = arg;
  struct root24 r = {.j1 = {.delay = FUT_MS(10)}, .j2 = {.delay = FUT_MS(20)}};
  r.g = enter();
  assert_int_equal(fut_taskgroup_create_task(r.g, root_24, &r, NULL, NULL), 0);
  *rc = fut_taskgroup_exit(r.g, 0);
  fut_taskgroup_free(r.g);
  return 0;
}

/* TestTaskGroup.test_taskgroup_24 */
static void test_taskgroup_24(void **state) {
  int rc = -1;
  assert_int_equal(run_main(*state, taskgroup_24, &rc), 0);
  assert_int_equal(rc, 0);
}

struct hydra {
  fut_taskgroup_t *g;
  int nhydras;
};

static int hydra_fn(void *arg) {
  struct hydra *h = arg;
  h->nhydras++;
  int err = fut_sleep(FUT_MS(1));
  if (err)
    return err;
  if ((err = fut_taskgroup_create_task(h->g, hydra_fn, h, NULL, NULL)))
    return err;
  return fut_taskgroup_create_task(h->g, hydra_fn, h, NULL, NULL);
}

static int hercules_fn(void *arg) {
  struct hydra *h = arg;
  while (h->nhydras < 10) {
    int err = fut_sleep(FUT_US(1500));
    if (err)
      return err;
  }
  return ZERO_DIV;
}

static int taskgroup_25(void *arg) {
  struct hydra *h = arg;
  h->g = enter();
  assert_int_equal(fut_taskgroup_create_task(h->g, hydra_fn, h, NULL, NULL), 0);
  assert_int_equal(fut_taskgroup_create_task(h->g, hercules_fn, h, NULL, NULL),
                   0);
  int err = fut_taskgroup_exit(h->g, 0);
  assert_int_equal(err, FUT_E_GROUP);
  assert_true(only_code(fut_taskgroup_errors(h->g), ZERO_DIV));
  fut_taskgroup_free(h->g);
  return 0;
}

/* TestTaskGroup.test_taskgroup_25 */
static void test_taskgroup_25(void **state) {
  struct hydra h = {0};
  assert_int_equal(run_main(*state, taskgroup_25, &h), 0);
  assert_true(h.nhydras >= 10);
}

/* ---- names -------------------------------------------------------------- */

static int name_fn(void *arg) {
  char *out = arg;
  snprintf(out, 32, "%s",
           fut_task_get_name(fut_current_task(fut_get_running_loop())));
  return fut_sleep(0);
}

static int taskgroup_name(void *arg) {
  char *name = arg;
  fut_task_opts_t o;
  fut_task_opts_init(&o);
  o.name = "yolo";
  fut_taskgroup_t *g = enter();
  fut_t *t;
  assert_int_equal(fut_taskgroup_create_task(g, name_fn, name + 32, &o, &t), 0);
  snprintf(name, 32, "%s", fut_task_get_name(t));
  fut_unref(t);
  assert_int_equal(fut_taskgroup_exit(g, 0), 0);
  fut_taskgroup_free(g);
  return 0;
}

/* TestTaskGroup.test_taskgroup_task_name */
static void test_taskgroup_task_name(void **state) {
  char name[64] = {0};
  assert_int_equal(run_main(*state, taskgroup_name, name), 0);
  assert_string_equal(name, "yolo");
}

/* TestTaskGroup.test_name */
static void test_name(void **state) {
  char name[64] = {0};
  assert_int_equal(run_main(*state, taskgroup_name, name), 0);
  assert_string_equal(name + 32, "yolo"); /* as the task saw it */
}

/* ---- refusals ----------------------------------------------------------- */

struct refuse {
  struct fut_taskgroup *g;
  int rc_create;
  int rc;
  bool types_ok;
};

static int coro2_no_create(void *arg) {
  struct refuse *c = arg;
  int err = fut_sleep(FUT_SEC(1));
  if (err == -ECANCELED) {
    struct job crash = {.delay = FUT_MS(1), .fail = ZERO_DIV};
    c->rc_create = fut_taskgroup_create_task(c->g, job_fn, &crash, NULL, NULL);
  }
  return 0;
}

static int no_create_after_failure(void *arg) {
  struct refuse *c = arg;
  struct job crash = {.delay = FUT_MS(1), .fail = ZERO_DIV};
  c->g = enter();
  add_nr(c->g, &crash);
  assert_int_equal(
      fut_taskgroup_create_task(c->g, coro2_no_create, c, NULL, NULL), 0);
  c->rc = fut_taskgroup_exit(c->g, 0);
  c->types_ok = only_code(fut_taskgroup_errors(c->g), ZERO_DIV);
  fut_taskgroup_free(c->g);
  return 0;
}

/* TestTaskGroup.test_taskgroup_no_create_task_after_failure */
static void test_taskgroup_no_create_task_after_failure(void **state) {
  struct refuse c = {0};
  assert_int_equal(run_main(*state, no_create_after_failure, &c), 0);
  assert_int_equal(c.rc_create, FUT_E_GROUP_SHUTDOWN);
  assert_int_equal(c.rc, FUT_E_GROUP);
  assert_true(c.types_ok);
}

static int raise_now(void *arg) {
  return *(int *)arg;
}

static int exit_raises(void *arg) {
  struct refuse *c = arg;
  int custom = MY_EXC;
  fut_t *me = fut_current_task(fut_get_running_loop());
  fut_taskgroup_t *g = enter();
  assert_int_equal(fut_taskgroup_create_task(g, raise_now, &custom, NULL, NULL),
                   0);
  int err = fut_sleep(FUT_SEC(1));
  (void)err; /* database(): finally: raise CustomException */
  c->rc = fut_taskgroup_exit(g, MY_EXC);
  c->types_ok = fut_task_cancelling(me) == 0 &&
                fut_error_group_count(fut_taskgroup_errors(g)) == 2 &&
                only_code(fut_taskgroup_errors(g), MY_EXC);
  fut_taskgroup_free(g);
  return 0;
}

static int main_exit_raises(void *arg) {
  fut_t *t = spawn(fut_get_running_loop(), exit_raises, arg);
  int err = fut_await(t, NULL);
  fut_unref(t);
  return err;
}

/* TestTaskGroup.test_taskgroup_context_manager_exit_raises */
static void test_taskgroup_context_manager_exit_raises(void **state) {
  struct refuse c = {0};
  assert_int_equal(run_main(*state, main_exit_raises, &c), 0);
  assert_int_equal(c.rc, FUT_E_GROUP);
  assert_true(c.types_ok);
}

static int already_entered(void *arg) {
  int *rc = arg;
  fut_taskgroup_t *g = enter();
  rc[0] = fut_taskgroup_enter(g);
  rc[1] = fut_taskgroup_exit(g, 0);
  fut_taskgroup_free(g);
  return 0;
}

/* TestTaskGroup.test_taskgroup_already_entered */
static void test_taskgroup_already_entered(void **state) {
  int rc[2] = {1, 1};
  assert_int_equal(run_main(*state, already_entered, rc), 0);
  assert_int_equal(rc[0], FUT_E_INVALID_STATE);
  assert_int_equal(rc[1], 0);
}

static int double_enter(void *arg) {
  int *rc = arg;
  fut_taskgroup_t *g = enter();
  rc[0] = fut_taskgroup_exit(g, 0);
  rc[1] = fut_taskgroup_enter(g);
  fut_taskgroup_free(g);
  return 0;
}

/* TestTaskGroup.test_taskgroup_double_enter */
static void test_taskgroup_double_enter(void **state) {
  int rc[2] = {1, 1};
  assert_int_equal(run_main(*state, double_enter, rc), 0);
  assert_int_equal(rc[0], 0);
  assert_int_equal(rc[1], FUT_E_INVALID_STATE);
}

static int never_runs(void *arg) {
  (*(int *)arg)++;
  return 0;
}

static int create_after_finish(void *arg) {
  int *rc = arg; /* rc[0]: create's code, rc[1]: runs of the function */
  fut_taskgroup_t *g = enter();
  assert_int_equal(fut_taskgroup_exit(g, 0), 0);
  fut_t *t = (fut_t *)1;
  rc[0] = fut_taskgroup_create_task(g, never_runs, &rc[1], NULL, &t);
  assert_null(t);
  fut_taskgroup_free(g);
  return fut_sleep(FUT_MS(1));
}

/* TestTaskGroup.test_taskgroup_finished */
static void test_taskgroup_finished(void **state) {
  int rc[2] = {1, 0};
  assert_int_equal(run_main(*state, create_after_finish, rc), 0);
  assert_int_equal(rc[0], FUT_E_GROUP_SHUTDOWN);
  assert_int_equal(rc[1], 0); /* "the coroutine was closed" */
}

/* TestTaskGroup.test_coro_closed_when_tg_closed */
static void test_coro_closed_when_tg_closed(void **state) {
  int rc[2] = {1, 0};
  assert_int_equal(run_main(*state, create_after_finish, rc), 0);
  assert_int_equal(rc[0], FUT_E_GROUP_SHUTDOWN);
  assert_int_equal(rc[1], 0);
}

static int not_entered(void *arg) {
  int *rc = arg;
  fut_taskgroup_t *g;
  assert_int_equal(fut_taskgroup_new(&g), 0);
  rc[0] = fut_taskgroup_create_task(g, never_runs, &rc[1], NULL, NULL);
  fut_taskgroup_free(g);
  return 0;
}

/* TestTaskGroup.test_taskgroup_not_entered */
static void test_taskgroup_not_entered(void **state) {
  int rc[2] = {1, 0};
  assert_int_equal(run_main(*state, not_entered, rc), 0);
  assert_int_equal(rc[0], FUT_E_INVALID_STATE);
  assert_int_equal(rc[1], 0);
}

/* TestTaskGroup.test_taskgroup_without_parent_task */
static void test_taskgroup_without_parent_task(void **state) {
  (void)state;
  fut_taskgroup_t *g;
  int runs = 0;
  assert_int_equal(fut_taskgroup_new(&g), 0);
  assert_int_equal(fut_taskgroup_enter(g), FUT_E_NOT_IN_TASK);
  assert_int_equal(fut_taskgroup_create_task(g, never_runs, &runs, NULL, NULL),
                   FUT_E_INVALID_STATE);
  fut_taskgroup_free(g);
  assert_int_equal(runs, 0);
}

/* ---- the cancel count --------------------------------------------------- */

static int cancelling_level(void *arg) {
  unsigned *level = arg;
  struct job raise_rt = {.delay = 0, .fail = RUNTIME_ERR};
  fut_taskgroup_t *g = enter();
  add_nr(g, &raise_rt);
  int err = fut_taskgroup_exit(g, 0);
  fut_taskgroup_free(g);
  assert_int_equal(err, FUT_E_GROUP); /* except* RuntimeError: pass */
  *level = fut_task_cancelling(fut_current_task(fut_get_running_loop()));
  return 0;
}

/* TestTaskGroup.test_cancelling_level_preserved */
static void test_cancelling_level_preserved(void **state) {
  unsigned level = 99;
  assert_int_equal(run_main(*state, cancelling_level, &level), 0);
  assert_int_equal(level, 0);
}

static int both_cancelled(void *arg) {
  unsigned *level = arg; /* inside the outer group, after it */
  fut_t *me = fut_current_task(fut_get_running_loop());
  struct job raise_rt = {.delay = 0, .fail = RUNTIME_ERR};
  struct job raise_val = {.delay = 0, .fail = VALUE_ERR};
  fut_taskgroup_t *outer = enter();
  fut_taskgroup_t *inner = enter();
  add_nr(inner, &raise_rt);
  add_nr(outer, &raise_val);
  int err = fut_taskgroup_exit(inner, 0);
  bool rt =
      err == FUT_E_GROUP && only_code(fut_taskgroup_errors(inner), RUNTIME_ERR);
  fut_taskgroup_free(inner);
  assert_true(rt); /* except* RuntimeError: pass */
  level[0] = fut_task_cancelling(me);
  err = fut_taskgroup_exit(outer, 0);
  bool val =
      err == FUT_E_GROUP && only_code(fut_taskgroup_errors(outer), VALUE_ERR);
  fut_taskgroup_free(outer);
  assert_true(val);
  level[1] = fut_task_cancelling(me);
  return 0;
}

/* TestTaskGroup.test_nested_groups_both_cancelled */
static void test_nested_groups_both_cancelled(void **state) {
  unsigned level[2] = {99, 99};
  assert_int_equal(run_main(*state, both_cancelled, level), 0);
  assert_int_equal(level[0], 1);
  assert_int_equal(level[1], 0);
}

struct errcancel {
  fut_t *event; /* asyncio.Event: a future set by raise_error */
  unsigned in_except, after_group;
  int after_sleep;
  bool reached_fail;
  unsigned cancelling_before, cancelling_after;
  int rc;
  bool t_cancelled;
};

static int raise_error(void *arg) {
  struct errcancel *c = arg;
  if (!fut_done(c->event))
    fut_set_result(c->event, NULL, NULL);
  fut_sleep(0);
  return RUNTIME_ERR;
}

static int inner_ec(void *arg) {
  struct errcancel *c = arg;
  fut_t *me = fut_current_task(fut_get_running_loop());
  fut_taskgroup_t *g = enter();
  assert_int_equal(fut_taskgroup_create_task(g, raise_error, c, NULL, NULL), 0);
  int err = fut_sleep(FUT_SEC(1));
  if (!err)
    c->reached_fail = true; /* "should have been cancelled" */
  err = fut_taskgroup_exit(g, err);
  if (err == FUT_E_GROUP && only_code(fut_taskgroup_errors(g), RUNTIME_ERR))
    c->in_except = fut_task_cancelling(me);
  fut_taskgroup_free(g);
  c->after_group = fut_task_cancelling(me);
  c->after_sleep = fut_sleep(FUT_SEC(1));
  if (!c->after_sleep)
    c->reached_fail = true;
  return c->after_sleep;
}

static int outer_ec(void *arg) {
  struct errcancel *c = arg;
  assert_int_equal(fut_new(fut_get_running_loop(), &c->event), 0);
  fut_t *t = spawn(fut_get_running_loop(), inner_ec, c);
  fut_await(c->event, NULL);
  c->cancelling_before = fut_task_cancelling(t);
  fut_cancel(t, NULL);
  c->cancelling_after = fut_task_cancelling(t);
  c->rc = fut_await(t, NULL);
  c->t_cancelled = fut_cancelled(t);
  fut_unref(t);
  fut_unref(c->event);
  return 0;
}

/* TestTaskGroup.test_error_and_cancel */
static void test_error_and_cancel(void **state) {
  struct errcancel c = {0};
  assert_int_equal(run_main(*state, outer_ec, &c), 0);
  assert_false(c.reached_fail);
  assert_int_equal(c.in_except, 1);
  assert_int_equal(c.after_group, 1);
  assert_int_equal(c.after_sleep, -ECANCELED);
  assert_int_equal(c.cancelling_before, 0);
  assert_int_equal(c.cancelling_after, 1);
  assert_int_equal(c.rc, -ECANCELED);
  assert_true(c.t_cancelled);
}

/* ---- gh-128550 ---------------------------------------------------------- */

struct gh128550 {
  fut_taskgroup_t *g;
  bool ran;
  int sleep_rc;
};

static int third_task(void *arg) {
  (void)arg;
  return fut_task_fail(MY_EXC, "third task failed");
}

static int second_task(void *arg) {
  struct gh128550 *c = arg;
  assert_int_equal(fut_taskgroup_create_task(c->g, third_task, c, NULL, NULL),
                   0);
  int err = fut_sleep(0);
  if (!err)
    err = fut_sleep(0);
  c->sleep_rc = err; /* CancelledError expected */
  c->ran = true;
  return 0;
}

static int created_during_creation(void *arg) {
  struct gh128550 *c = arg;
  c->g = enter();
  assert_int_equal(fut_taskgroup_create_task(c->g, second_task, c, NULL, NULL),
                   0);
  int err = fut_taskgroup_exit(c->g, 0);
  const fut_error_group_t *eg = fut_taskgroup_errors(c->g);
  assert_int_equal(err, FUT_E_GROUP);
  assert_int_equal(fut_error_group_count(eg), 1);
  assert_int_equal(fut_error_group_code(eg, 0), MY_EXC);
  assert_string_equal(fut_error_group_message(eg, 0), "third task failed");
  fut_taskgroup_free(c->g);
  return 0;
}

/* TestTaskGroup.test_cancels_task_if_created_during_creation */
static void test_cancels_task_if_created_during_creation(void **state) {
  struct gh128550 c = {0};
  assert_int_equal(run_main(*state, created_during_creation, &c), 0);
  assert_true(c.ran);
  assert_int_equal(c.sleep_rc, -ECANCELED);
}

static int no_leak(void *arg) {
  int *rc = arg;
  int my = MY_EXC;
  fut_taskgroup_t *g = enter();
  assert_int_equal(fut_taskgroup_create_task(g, raise_now, &my, NULL, NULL), 0);
  rc[0] = fut_taskgroup_exit(g, 0);
  fut_taskgroup_free(g);
  rc[1] = fut_sleep(0); /* a leaked cancel would land here */
  return 0;
}

/* TestTaskGroup.test_cancellation_does_not_leak_out_of_tg */
static void test_cancellation_does_not_leak_out_of_tg(void **state) {
  int rc[2] = {1, 1};
  assert_int_equal(run_main(*state, no_leak, rc), 0);
  assert_int_equal(rc[0], FUT_E_GROUP);
  assert_int_equal(rc[1], 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_taskgroup_01),
      T(test_taskgroup_02),
      T(test_taskgroup_03),
      T(test_taskgroup_04),
      T(test_cancel_children_on_child_error),
      T(test_cancellation),
      T(test_taskgroup_07),
      T(test_cancellation_in_body),
      T(test_taskgroup_09),
      T(test_taskgroup_10),
      T(test_taskgroup_11),
      T(test_taskgroup_12),
      T(test_taskgroup_13),
      T(test_taskgroup_14),
      T(test_taskgroup_15),
      T(test_taskgroup_16),
      T(test_taskgroup_17),
      T(test_taskgroup_18),
      T(test_taskgroup_19),
      T(test_taskgroup_22),
      T(test_taskgroup_23),
      T(test_taskgroup_24),
      T(test_taskgroup_25),
      T(test_taskgroup_task_name),
      T(test_taskgroup_no_create_task_after_failure),
      T(test_taskgroup_context_manager_exit_raises),
      T(test_taskgroup_already_entered),
      T(test_taskgroup_double_enter),
      T(test_taskgroup_finished),
      T(test_taskgroup_not_entered),
      T(test_taskgroup_without_parent_task),
      T(test_coro_closed_when_tg_closed),
      T(test_cancelling_level_preserved),
      T(test_nested_groups_both_cancelled),
      T(test_error_and_cancel),
      T(test_name),
      T(test_cancels_task_if_created_during_creation),
      T(test_cancellation_does_not_leak_out_of_tg),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
