/* fut_run: asyncio.run for a task function. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "loop/internal.h"

static int main_i64(void *arg) {
  int64_t *v = arg;
  assert_int_equal(fut_sleep(FUT_MS(1)), 0);
  return fut_task_return_i64(*v);
}

static void test_run_returns_main_result(void **state) {
  (void)state;
  int64_t v = 77;
  fut_t *t;
  assert_int_equal(fut_run(main_i64, &v, &t), 0);
  assert_non_null(t);
  assert_true(fut_done(t));
  int64_t got;
  assert_int_equal(fut_result_i64(t, &got), 0); /* the loop is gone */
  assert_int_equal(got, 77);
  assert_string_equal(fut_task_get_name(t), "main");
  fut_unref(t);
  assert_int_equal(fut_run(main_i64, &v, NULL), 0);
}

static int main_bytes(void *arg) {
  (void)arg;
  return fut_task_return_bytes("result", 6);
}

static void test_run_main_value_outlives_loop(void **state) {
  (void)state;
  fut_t *t;
  assert_int_equal(fut_run(main_bytes, NULL, &t), 0);
  const void *d;
  size_t n;
  assert_int_equal(fut_result_bytes(t, &d, &n), 0);
  assert_int_equal(n, 6);
  assert_memory_equal(d, "result", 6);
  fut_unref(t);
}

static int main_fails(void *arg) {
  (void)arg;
  return fut_task_fail(-EPROTO, "bad reply");
}

static void test_run_main_failure_returns_its_code(void **state) {
  (void)state;
  fut_t *t;
  assert_int_equal(fut_run(main_fails, NULL, &t), -EPROTO);
  const char *msg;
  assert_int_equal(fut_exception(t, &msg), -EPROTO);
  assert_string_equal(msg, "bad reply");
  fut_unref(t);
}

struct leftover {
  int rc;
  bool fail_on_cancel;
};

static int leftover_child(void *arg) {
  struct leftover *l = arg;
  l->rc = fut_sleep(FUT_SEC(100));
  if (l->rc == -ECANCELED && l->fail_on_cancel)
    return -EIO;
  return l->rc;
}

static int reports;
static void count_reports(fut_loop_t *loop, const fut_exception_ctx_t *c,
                          void *arg) {
  (void)loop;
  (void)arg;
  if (strstr(c->message, "shutdown") && c->err == -EIO)
    reports++;
}

static int main_spawns(void *arg) {
  struct leftover *l = arg;
  fut_loop_t *loop = fut_get_running_loop();
  fut_loop_set_exception_handler(loop, count_reports, NULL);
  for (int i = 0; i < 2; i++) {
    fut_t *c;
    assert_int_equal(fut_create_task(loop, leftover_child, &l[i], NULL, &c), 0);
    fut_unref(c);
  }
  assert_int_equal(fut_yield(), 0); /* the children start and sleep */
  return 0;
}

static void test_run_cancels_leftover_tasks(void **state) {
  (void)state;
  reports = 0;
  struct leftover l[2] = {{.rc = 1}, {.rc = 1, .fail_on_cancel = true}};
  assert_int_equal(fut_run(main_spawns, l, NULL), 0);
  assert_int_equal(l[0].rc, -ECANCELED);
  assert_int_equal(l[1].rc, -ECANCELED);
  /* A leftover that failed while cancelled is reported, as asyncio does. */
  assert_int_equal(reports, 1);
}

static int main_nested(void *arg) {
  (void)arg;
  return fut_run(main_bytes, NULL, NULL);
}

static void test_run_inside_running_loop_is_refused(void **state) {
  (void)state;
  assert_int_equal(fut_run(main_nested, NULL, NULL), FUT_E_RUNNING);
  fut_t *t = (fut_t *)1;
  assert_int_equal(fut_run(NULL, NULL, &t), -EINVAL);
  assert_null(t);
}

static void raise_sigint(void *arg) {
  (void)arg;
  raise(SIGINT);
}

static int main_interrupted(void *arg) {
  int *rc = arg;
  fut_loop_call_later(fut_get_running_loop(), FUT_MS(1), raise_sigint, NULL,
                      NULL);
  *rc = fut_sleep(FUT_SEC(100));
  return *rc;
}

static void test_run_sigint_cancels_main(void **state) {
  (void)state;
  int rc = 0;
  assert_int_equal(fut_run(main_interrupted, &rc, NULL), -EINTR);
  assert_int_equal(rc, -ECANCELED);
  struct sigaction sa;
  sigaction(SIGINT, NULL, &sa);
  assert_true(sa.sa_handler == SIG_DFL); /* restored */
}

static int main_ignores_sigint(void *arg) {
  (void)arg;
  raise(SIGINT);
  return fut_sleep(FUT_MS(2));
}

static void test_run_leaves_a_custom_sigint_disposition_alone(void **state) {
  (void)state;
  struct sigaction ign, old;
  memset(&ign, 0, sizeof ign);
  ign.sa_handler = SIG_IGN;
  sigaction(SIGINT, &ign, &old);
  assert_int_equal(fut_run(main_ignores_sigint, NULL, NULL), 0);
  struct sigaction now;
  sigaction(SIGINT, &old, &now);
  assert_true(now.sa_handler == SIG_IGN);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_run_returns_main_result),
      cmocka_unit_test(test_run_main_value_outlives_loop),
      cmocka_unit_test(test_run_main_failure_returns_its_code),
      cmocka_unit_test(test_run_cancels_leftover_tasks),
      cmocka_unit_test(test_run_inside_running_loop_is_refused),
      cmocka_unit_test(test_run_sigint_cancels_main),
      cmocka_unit_test(test_run_leaves_a_custom_sigint_disposition_alone),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
