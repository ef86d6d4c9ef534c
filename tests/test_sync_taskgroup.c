/* Task groups beyond the CPython ports (tests/cpython/test_taskgroups.c):
 * TaskGroup.cancel (3.14), the error group API and nesting, misuse, a
 * group freed without exit; and context variables: copies at task
 * creation, isolation from the creator and siblings. */
#include "fixture.h"
#include "task_helpers.h"

#include "base/internal.h" /* fut__alloc_fail_after */

#define T(fn) FX_LOOP_TEST(fn)

static int sleeper(void *arg) {
  int *cancelled = arg;
  int err = fut_sleep(FUT_SEC(30));
  if (err == -ECANCELED && cancelled)
    (*cancelled)++;
  return err;
}

static int fail_with(void *arg) {
  int code = *(int *)arg;
  return fut_task_fail(code, "failed with %s", fut_err_name(code));
}

/* ---- TaskGroup.cancel --------------------------------------------------- */

struct gc {
  fut_taskgroup_t *g;
  int cancelled;
  int body_rc, rc, late_rc;
  unsigned cancelling;
};

static int canceller(void *arg) {
  struct gc *c = arg;
  fut_sleep(FUT_MS(1));
  fut_taskgroup_cancel(c->g);
  fut_taskgroup_cancel(c->g); /* idempotent */
  return 0;
}

static int group_cancel_main(void *arg) {
  struct gc *c = arg;
  assert_int_equal(fut_taskgroup_new(&c->g), 0);
  assert_int_equal(fut_taskgroup_enter(c->g), 0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(
        fut_taskgroup_create_task(c->g, sleeper, &c->cancelled, NULL, NULL), 0);
  assert_int_equal(fut_taskgroup_create_task(c->g, canceller, c, NULL, NULL),
                   0);
  c->body_rc = fut_sleep(FUT_SEC(30));
  c->late_rc = fut_taskgroup_create_task(c->g, sleeper, NULL, NULL, NULL);
  c->rc = fut_taskgroup_exit(c->g, c->body_rc);
  c->cancelling = fut_task_cancelling(fut_current_task(fut_get_running_loop()));
  fut_taskgroup_cancel(c->g); /* after exit: nothing */
  fut_taskgroup_free(c->g);
  return fut_sleep(0); /* no cancel leaks out */
}

static void test_taskgroup_cancel_ends_group_quietly(void **state) {
  struct gc c = {0};
  assert_int_equal(run_main(*state, group_cancel_main, &c), 0);
  assert_int_equal(c.body_rc, -ECANCELED);
  assert_int_equal(c.late_rc, FUT_E_GROUP_SHUTDOWN);
  assert_int_equal(c.rc, 0);
  assert_int_equal(c.cancelled, 3);
  assert_int_equal(c.cancelling, 0);
}

static int cancel_before_enter_main(void *arg) {
  struct gc *c = arg;
  assert_int_equal(fut_taskgroup_new(&c->g), 0);
  fut_taskgroup_cancel(c->g);
  assert_int_equal(fut_taskgroup_enter(c->g), 0);
  c->late_rc = fut_taskgroup_create_task(c->g, sleeper, NULL, NULL, NULL);
  c->body_rc = fut_sleep(FUT_SEC(30));
  c->rc = fut_taskgroup_exit(c->g, c->body_rc);
  fut_taskgroup_free(c->g);
  return 0;
}

static void test_taskgroup_cancel_before_enter(void **state) {
  struct gc c = {0};
  assert_int_equal(run_main(*state, cancel_before_enter_main, &c), 0);
  assert_int_equal(c.late_rc, FUT_E_GROUP_SHUTDOWN);
  assert_int_equal(c.body_rc, -ECANCELED);
  assert_int_equal(c.rc, 0);
}

/* ---- with a timeout block ----------------------------------------------- */

static int timeout_main(void *arg) {
  int *c = arg; /* c[0]: cancelled children, c[1]: the block's outcome */
  fut_timeout_t *to;
  assert_int_equal(fut_timeout_enter(FUT_MS(5), &to), 0);
  fut_taskgroup_t *g;
  assert_int_equal(fut_taskgroup_new(&g), 0);
  assert_int_equal(fut_taskgroup_enter(g), 0);
  for (int i = 0; i < 2; i++)
    assert_int_equal(fut_taskgroup_create_task(g, sleeper, &c[0], NULL, NULL),
                     0);
  int err = fut_taskgroup_exit(g, 0); /* the deadline cancels the wait */
  fut_taskgroup_free(g);
  c[1] = fut_timeout_exit(to, err);
  c[2] = (int)fut_task_cancelling(fut_current_task(fut_get_running_loop()));
  return 0;
}

/* asyncio.timeout around a TaskGroup: the deadline cancels the parent in
 * exit's wait, the group cancels its tasks, and the block ends with
 * -ETIMEDOUT and no cancel left. */
static void test_taskgroup_inside_timeout(void **state) {
  int c[3] = {0, 1, 1};
  assert_int_equal(run_main(*state, timeout_main, c), 0);
  assert_int_equal(c[0], 2);
  assert_int_equal(c[1], -ETIMEDOUT);
  assert_int_equal(c[2], 0);
}

/* Out of memory at enter: the group is not entered (enter works once
 * memory is back), and the error group a failing exit raises is kept on
 * the task, never lost for want of memory at exit. */
struct oom {
  fut_loop_t *loop;
  int enter_rc, exit_rc;
  size_t kept;
};

static int oom_main(void *arg) {
  struct oom *c = arg;
  static int code = -EIO;
  fut_taskgroup_t *g;
  assert_int_equal(fut_taskgroup_new(&g), 0);
  fut__alloc_fail_after(1, false);
  c->enter_rc = fut_taskgroup_enter(g);
  fut__alloc_fail_after(0, false);
  assert_int_equal(fut_taskgroup_enter(g), 0);
  assert_int_equal(fut_taskgroup_create_task(g, fail_with, &code, NULL, NULL),
                   0);
  c->exit_rc = fut_taskgroup_exit(g, 0);
  const fut_error_group_t *eg = fut_task_error_group(fut_current_task(c->loop));
  c->kept = eg ? fut_error_group_count(eg) : 0;
  fut_taskgroup_free(g);
  return 0;
}

static void test_taskgroup_enter_out_of_memory(void **state) {
  struct oom c = {.loop = *state};
  assert_int_equal(run_main(*state, oom_main, &c), 0);
  assert_int_equal(c.enter_rc, -ENOMEM);
  assert_int_equal(c.exit_rc, FUT_E_GROUP);
  assert_int_equal(c.kept, 1);
}

/* ---- error groups ------------------------------------------------------- */

struct eg {
  fut_error_group_t *kept; /* a reference kept past the group */
  int rc;
};

static int inner_group(void *arg) {
  (void)arg;
  static int codes[2] = {-EIO, -EPIPE};
  fut_taskgroup_t *g;
  assert_int_equal(fut_taskgroup_new(&g), 0);
  assert_int_equal(fut_taskgroup_enter(g), 0);
  assert_int_equal(
      fut_taskgroup_create_task(g, fail_with, &codes[0], NULL, NULL), 0);
  assert_int_equal(
      fut_taskgroup_create_task(g, fail_with, &codes[1], NULL, NULL), 0);
  int err = fut_taskgroup_exit(g, 0);
  fut_taskgroup_free(g);
  return err; /* FUT_E_GROUP, the group attached to this task */
}

static int nested_main(void *arg) {
  struct eg *c = arg;
  fut_taskgroup_t *g;
  assert_int_equal(fut_taskgroup_new(&g), 0);
  assert_int_equal(fut_taskgroup_enter(g), 0);
  assert_int_equal(fut_taskgroup_create_task(g, inner_group, NULL, NULL, NULL),
                   0);
  int err = fut_sleep(FUT_SEC(30)); /* cancelled by the inner failure */
  assert_int_equal(err, -ECANCELED);
  c->rc = fut_taskgroup_exit(g, err);
  c->kept = fut_error_group_ref(fut_taskgroup_errors(g));
  fut_taskgroup_free(g);
  return 0;
}

static void test_error_group_nested_and_kept(void **state) {
  struct eg c = {0};
  assert_int_equal(run_main(*state, nested_main, &c), 0);
  assert_int_equal(c.rc, FUT_E_GROUP);
  const fut_error_group_t *eg = c.kept;
  assert_int_equal(fut_error_group_count(eg), 1);
  assert_int_equal(fut_error_group_code(eg, 0), FUT_E_GROUP);
  const fut_error_group_t *inner = fut_error_group_child(eg, 0);
  assert_non_null(inner);
  assert_int_equal(fut_error_group_count(inner), 2);
  assert_int_equal(fut_error_group_code(inner, 0), -EIO); /* in order */
  assert_int_equal(fut_error_group_code(inner, 1), -EPIPE);
  assert_string_equal(fut_error_group_message(inner, 1), "failed with EPIPE");
  assert_null(fut_error_group_child(inner, 0));
  assert_true(fut_error_group_contains(eg, -EPIPE));
  assert_false(fut_error_group_contains(eg, -ENOENT));
  /* out of range */
  assert_int_equal(fut_error_group_code(eg, 5), 0);
  assert_null(fut_error_group_message(eg, 5));
  assert_int_equal(fut_error_group_count(NULL), 0);
  char buf[512];
  size_t n = fut_error_group_format(eg, buf, sizeof buf);
  assert_int_equal(n, strlen(buf));
  assert_non_null(strstr(buf, "FUT_E_GROUP"));
  assert_non_null(strstr(buf, "  EIO"));
  assert_non_null(strstr(buf, "  EPIPE"));
  char small[8];
  assert_int_equal(fut_error_group_format(eg, small, sizeof small), n);
  assert_int_equal(strlen(small), 7);
  fut_error_group_unref(c.kept);
}

/* ---- misuse ------------------------------------------------------------- */

struct misuse {
  fut_taskgroup_t *g;
  int rc_other;
};

static int other_exit(void *arg) {
  struct misuse *m = arg;
  m->rc_other = fut_taskgroup_exit(m->g, 0);
  return 0;
}

static int misuse_main(void *arg) {
  struct misuse *m = arg;
  assert_int_equal(fut_taskgroup_new(&m->g), 0);
  assert_int_equal(fut_taskgroup_exit(m->g, 0), FUT_E_INVALID_STATE);
  assert_int_equal(fut_taskgroup_enter(m->g), 0);
  fut_t *t = spawn(fut_get_running_loop(), other_exit, m);
  fut_await(t, NULL);
  fut_unref(t);
  assert_int_equal(fut_taskgroup_exit(m->g, 0), 0);
  assert_int_equal(fut_taskgroup_exit(m->g, 0), FUT_E_INVALID_STATE);
  fut_taskgroup_free(m->g);
  return 0;
}

static void test_taskgroup_misuse(void **state) {
  struct misuse m = {0};
  assert_int_equal(run_main(*state, misuse_main, &m), 0);
  assert_int_equal(m.rc_other, FUT_E_INVALID_STATE);
  fut_taskgroup_t *g;
  assert_int_equal(fut_taskgroup_new(NULL), -EINVAL);
  assert_int_equal(fut_taskgroup_new(&g), 0);
  assert_int_equal(fut_taskgroup_exit(g, 0), FUT_E_NOT_IN_TASK);
  assert_int_equal(fut_taskgroup_enter(NULL), -EINVAL);
  assert_int_equal(fut_taskgroup_create_task(NULL, sleeper, NULL, NULL, NULL),
                   -EINVAL);
  assert_null(fut_taskgroup_errors(g));
  assert_int_equal(fut_taskgroup_size(g), 0);
  fut_taskgroup_free(g);
  fut_taskgroup_free(NULL);
}

/* A body that bails out without exit: free cancels and forgets the tasks. */
static int bail_out_main(void *arg) {
  int *cancelled = arg;
  fut_taskgroup_t *g;
  assert_int_equal(fut_taskgroup_new(&g), 0);
  assert_int_equal(fut_taskgroup_enter(g), 0);
  for (int i = 0; i < 2; i++)
    assert_int_equal(
        fut_taskgroup_create_task(g, sleeper, cancelled, NULL, NULL), 0);
  fut_yield(); /* they start */
  fut_taskgroup_free(g);
  return fut_sleep(FUT_MS(1));
}

static void test_taskgroup_free_without_exit(void **state) {
  int cancelled = 0;
  assert_int_equal(run_main(*state, bail_out_main, &cancelled), 0);
  drain(*state);
  assert_int_equal(cancelled, 2);
}

/* ---- context variables -------------------------------------------------- */

static fut_ctxvar_t *var;

struct cv {
  void *child_saw, *sibling_saw, *grandchild_saw, *parent_after;
  void *cb_saw;
  bool child_isset_before;
  fut_t *gate; /* the sibling waits for the child's set */
};

static int grandchild(void *arg) {
  struct cv *c = arg;
  c->grandchild_saw = fut_ctxvar_get(var);
  return 0;
}

static int child(void *arg) {
  struct cv *c = arg;
  c->child_saw = fut_ctxvar_get(var);
  c->child_isset_before = fut_ctxvar_isset(var);
  assert_int_equal(fut_ctxvar_set(var, "child"), 0);
  assert_int_equal(fut_ctxvar_set(var, "child2"), 0); /* in place */
  fut_t *g = spawn(fut_get_running_loop(), grandchild, c);
  fut_await(g, NULL);
  fut_unref(g);
  fut_set_result(c->gate, NULL, NULL);
  return 0;
}

static int sibling(void *arg) {
  struct cv *c = arg;
  fut_await(c->gate, NULL);
  c->sibling_saw = fut_ctxvar_get(var);
  return 0;
}

static void read_in_cb(void *arg) {
  struct cv *c = arg;
  c->cb_saw = fut_ctxvar_get(var);
}

static int ctx_main(void *arg) {
  struct cv *c = arg;
  fut_loop_t *loop = fut_get_running_loop();
  assert_int_equal(fut_ctxvar_set(var, "parent"), 0);
  assert_int_equal(fut_new(loop, &c->gate), 0);
  fut_taskgroup_t *g;
  assert_int_equal(fut_taskgroup_new(&g), 0);
  assert_int_equal(fut_taskgroup_enter(g), 0);
  assert_int_equal(fut_taskgroup_create_task(g, child, c, NULL, NULL), 0);
  assert_int_equal(fut_taskgroup_create_task(g, sibling, c, NULL, NULL), 0);
  fut_handle_t *h;
  assert_int_equal(fut_loop_call_soon(loop, read_in_cb, c, &h), 0);
  fut_handle_unref(h);
  assert_int_equal(fut_taskgroup_exit(g, 0), 0);
  fut_taskgroup_free(g);
  fut_unref(c->gate);
  c->parent_after = fut_ctxvar_get(var);
  return 0;
}

static void test_ctxvar_isolation(void **state) {
  struct cv c = {0};
  assert_int_equal(fut_ctxvar_new("default", &var), 0);
  assert_string_equal(fut_ctxvar_get(var), "default");
  assert_false(fut_ctxvar_isset(var));
  assert_int_equal(run_main(*state, ctx_main, &c), 0);
  assert_string_equal(c.child_saw, "parent"); /* copied at creation */
  assert_true(c.child_isset_before);
  assert_string_equal(c.grandchild_saw, "child2"); /* the child's copy */
  assert_string_equal(c.sibling_saw, "parent");    /* not the sibling's */
  assert_string_equal(c.parent_after, "parent");   /* nor the creator's */
  assert_string_equal(c.cb_saw, "parent"); /* a callback: its scheduler's */
  assert_string_equal(fut_ctxvar_get(var), "default");
  fut_ctxvar_free(var);
  var = NULL;
}

static int read_var(void *arg) {
  *(void **)arg = fut_ctxvar_get(var);
  return 0;
}

/* A task created from plain code copies the thread's own context. */
static void test_ctxvar_thread_context_copied(void **state) {
  assert_int_equal(fut_ctxvar_new(NULL, &var), 0);
  assert_int_equal(fut_ctxvar_set(var, "thread"), 0);
  void *seen = NULL;
  fut_t *t = spawn(*state, read_var, &seen);
  assert_int_equal(fut_ctxvar_set(var, "later"), 0); /* after the copy */
  run_until_done(*state, t);
  fut_unref(t);
  assert_string_equal(seen, "thread");
  assert_string_equal(fut_ctxvar_get(var), "later");
  assert_int_equal(fut_ctxvar_set(var, NULL), 0);
  assert_int_equal(fut_ctxvar_set(NULL, NULL), -EINVAL);
  assert_null(fut_ctxvar_get(NULL));
  assert_int_equal(fut_ctxvar_new(NULL, NULL), -EINVAL);
  fut_ctxvar_free(var);
  var = NULL;
}

static void *set_in_thread(void *arg) {
  void **seen = arg;
  seen[0] = fut_ctxvar_get(var); /* a new thread: the default */
  fut_ctxvar_set(var, "in thread");
  fut_ctxvar_set(var, "again");
  seen[1] = fut_ctxvar_get(var);
  return NULL; /* its context is released at exit (ASan checks) */
}

/* Each thread has its own context, released when the thread exits. */
static void test_ctxvar_per_thread(void **state) {
  (void)state;
  assert_int_equal(fut_ctxvar_new("default", &var), 0);
  void *seen[2] = {NULL, NULL};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, set_in_thread, seen), 0);
  pthread_join(th, NULL);
  assert_string_equal(seen[0], "default");
  assert_string_equal(seen[1], "again");
  assert_string_equal(fut_ctxvar_get(var), "default");
  fut_ctxvar_free(var);
  var = NULL;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_taskgroup_cancel_ends_group_quietly),
      T(test_taskgroup_cancel_before_enter),
      T(test_taskgroup_inside_timeout),
      T(test_error_group_nested_and_kept),
      T(test_taskgroup_misuse),
      T(test_taskgroup_enter_out_of_memory),
      T(test_taskgroup_free_without_exit),
      T(test_ctxvar_isolation),
      T(test_ctxvar_thread_context_copied),
      T(test_ctxvar_per_thread),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
