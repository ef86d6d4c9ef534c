/* CPython's Lib/test/test_asyncio/test_futures2.py as libfuture's
 * behavioural spec: one cmocka test per CPython test method that applies
 * to C, named after it, with the CPython class and method beside it.
 * CPython runs FutureTests once over the C task and once over the Python
 * one; libfuture has one task type, so each method is ported once.  The
 * methods that do not apply (tracebacks, repr, a callback raising) are
 * listed with the reason in docs/asyncio-to-libfuture.md. */
#include "fixture.h"
#include "task_helpers.h"

#include <string.h>

/* The loop fixture: a fresh loop per test, proven clean at the end. */
#define T(fn) FX_LOOP_TEST(fn)

/* ---- FutureTests --------------------------------------------------------- */

struct exc_ctx {
  fut_ctxvar_t *name;
  bool exc_handler_called;
  const char *seen; /* name's value inside the handler */
  int err;          /* the code the handler got */
};

static void exc_handler(fut_loop_t *loop, const fut_exception_ctx_t *ctx,
                        void *arg) {
  (void)loop;
  struct exc_ctx *c = arg;
  c->seen = fut_ctxvar_get(c->name);
  c->err = ctx->err;
  c->exc_handler_called = true;
}

static int failing_task(void *arg) {
  struct exc_ctx *c = arg;
  int err = fut_ctxvar_set(c->name, "bar");
  if (err)
    return err;
  return fut_task_fail(-EDOM, "division by zero"); /* 1/0 */
}

static int exc_main(void *arg) {
  struct exc_ctx *c = arg;
  fut_loop_t *loop = fut_get_running_loop();
  fut_loop_set_exception_handler(loop, exc_handler, c);
  fut_t *t;
  int err = fut_create_task(loop, failing_task, c, NULL, &t);
  if (err)
    return err;
  fut_unref(t); /* self.cls(task()): nobody keeps it */
  return fut_sleep(0);
}

/* FutureTests.test_task_exc_handler_correct_context
 * (https://github.com/python/cpython/issues/96704): the handler reporting
 * a task's never-retrieved exception sees the task's context. */
static void test_task_exc_handler_correct_context(void **state) {
  struct exc_ctx c = {0};
  assert_int_equal(fut_ctxvar_new("foo", &c.name), 0);
  assert_int_equal(run_main(*state, exc_main, &c), 0);
  assert_true(c.exc_handler_called);
  assert_non_null(c.seen);
  assert_string_equal(c.seen, "bar");
  assert_int_equal(c.err, -EDOM);
  fut_loop_set_exception_handler(*state, NULL, NULL);
  assert_string_equal(fut_ctxvar_get(c.name), "foo");
  fut_ctxvar_free(c.name);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_task_exc_handler_correct_context),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
