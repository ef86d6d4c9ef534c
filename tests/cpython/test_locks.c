/* CPython's Lib/test/test_asyncio/test_locks.py (LockTests, EventTests,
 * ConditionTests, SemaphoreTests, BarrierTests) as libfuture's behavioural
 * spec: one cmocka test per CPython test method that applies to C, named
 * after it, with the CPython class and method beside it.  Each CPython
 * body runs as a main task; `await asyncio.sleep(0)` is fut_yield(), a
 * task is fut_create_task, `async with x` is acquire ... release.
 * Checks made inside tasks are recorded with CHECK and asserted on the
 * test's own stack afterwards.  The methods that do not apply to C (repr,
 * the `await lock` / `with` TypeErrors, the removed loop parameter, a
 * negative semaphore value) are listed in docs/asyncio-to-libfuture.md. */
#include "fixture.h"
#include "task_helpers.h"

/* From src/sync/internal.h (its task layer needs the library's build
 * flags): the barrier's state name and count, for the methods that read
 * repr() and _count. */
const char *fut__barrier_state_name(const fut_barrier_t *b);
unsigned fut__barrier_count(const fut_barrier_t *b);

#define T(fn) FX_LOOP_TEST(fn)

/* ---- checks inside tasks ------------------------------------------------- */

static int fail_line;
static const char *fail_expr;
#define CHECK(c)                                                               \
  do {                                                                         \
    if (!(c) && !fail_line) {                                                  \
      fail_line = __LINE__;                                                    \
      fail_expr = #c;                                                          \
    }                                                                          \
  } while (0)

/* The primitives and the result list of the running test. */
static struct {
  fut_lock_t *lock;
  fut_event_t *ev;
  fut_cond_t *cond;
  fut_sem_t *sem;
  fut_barrier_t *bar, *bar2;
  int res[64];
  int nres;
  int n1, n2, n3, count;
  bool flag;
  fut_t *t[16];
} G;

static void res_add(int v) {
  if (G.nres < 64)
    G.res[G.nres++] = v;
}

static bool res_is(int n, const int *v) {
  if (G.nres != n)
    return false;
  for (int i = 0; i < n; i++)
    if (G.res[i] != v[i])
      return false;
  return true;
}
#define RES(...)                                                               \
  res_is(sizeof((int[]){__VA_ARGS__}) / sizeof(int), (int[]){__VA_ARGS__})

static fut_t *sp(fut_task_fn fn, void *arg) {
  fut_t *t = NULL;
  CHECK(fut_create_task(fut_get_running_loop(), fn, arg, NULL, &t) == 0);
  return t;
}

/* Awaits then drops each task; returns how many ended with rc. */
static int join(fut_t **ts, int n, int rc) {
  int k = 0;
  for (int i = 0; i < n; i++) {
    if (!ts[i])
      continue;
    if (fut_await(ts[i], NULL) == rc)
      k++;
    fut_unref(ts[i]);
    ts[i] = NULL;
  }
  return k;
}

static int task_rc(fut_t *t) {
  return fut_done(t) ? fut_result(t, NULL) : 1;
}

static void run_body(fut_loop_t *loop, fut_task_fn body) {
  memset(&G, 0, sizeof G);
  fail_line = 0;
  int rc = run_main(loop, body, NULL);
  drain(loop);
  if (fail_line)
    fail_msg("check failed at line %d: %s", fail_line, fail_expr);
  assert_int_equal(rc, 0);
  assert_int_equal(fut_lock_free(G.lock), 0);
  assert_int_equal(fut_event_free(G.ev), 0);
  assert_int_equal(fut_cond_free(G.cond), 0);
  assert_int_equal(fut_sem_free(G.sem), 0);
  assert_int_equal(fut_barrier_free(G.bar), 0);
  assert_int_equal(fut_barrier_free(G.bar2), 0);
}

#define BODY(name)                                                             \
  static int name##_body(void *arg);                                           \
  static void name(void **state) {                                             \
    run_body(*state, name##_body);                                             \
  }                                                                            \
  static int name##_body(void *arg)

/* Small task functions. */
static int lock_acquire(void *arg) {
  (void)arg;
  return fut_lock_acquire(G.lock);
}
static int lock_log(void *tag) {
  int err = fut_lock_acquire(G.lock);
  if (!err)
    res_add((int)(intptr_t)tag);
  return err;
}
static int ev_wait(void *arg) {
  (void)arg;
  return fut_event_wait(G.ev);
}
static int ev_log(void *tag) {
  int err = fut_event_wait(G.ev);
  if (!err)
    res_add((int)(intptr_t)tag);
  return err;
}
static int cond_wait(void *arg) {
  (void)arg;
  return fut_cond_wait(G.cond);
}
static int sem_acquire(void *arg) {
  (void)arg;
  return fut_sem_acquire(G.sem);
}
static int sem_log(void *tag) {
  int err = fut_sem_acquire(G.sem);
  if (!err)
    res_add((int)(intptr_t)tag);
  return err;
}
static int bar_wait(void *arg) {
  (void)arg;
  unsigned i;
  int err = fut_barrier_wait(G.bar, &i);
  return err ? err : fut_task_return_i64(i);
}
#define TAG(n) ((void *)(intptr_t)(n))

/* ==== LockTests =========================================================== */

/* LockTests.test_acquire */
BODY(test_lock_acquire) {
  (void)arg;
  CHECK(fut_lock_new(&G.lock) == 0);
  CHECK(fut_lock_acquire(G.lock) == 0);
  fut_t *t1 = sp(lock_log, TAG(1)), *t2 = sp(lock_log, TAG(2));
  fut_yield();
  CHECK(G.nres == 0);
  fut_lock_release(G.lock);
  fut_yield();
  CHECK(RES(1));
  fut_yield();
  CHECK(RES(1));
  fut_t *t3 = sp(lock_log, TAG(3));
  fut_lock_release(G.lock);
  fut_yield();
  CHECK(RES(1, 2));
  fut_lock_release(G.lock);
  fut_yield();
  CHECK(RES(1, 2, 3));
  CHECK(task_rc(t1) == 0 && task_rc(t2) == 0 && task_rc(t3) == 0);
  fut_t *ts[] = {t1, t2, t3};
  join(ts, 3, 0);
  fut_lock_release(G.lock);
  return 0;
}

static void cancel_cb(void *t) {
  fut_cancel(t, NULL);
}

/* LockTests.test_acquire_cancel */
BODY(test_lock_acquire_cancel) {
  (void)arg;
  CHECK(fut_lock_new(&G.lock) == 0);
  CHECK(fut_lock_acquire(G.lock) == 0);
  fut_t *task = sp(lock_acquire, NULL);
  fut_loop_call_soon(fut_get_running_loop(), cancel_cb, task, NULL);
  CHECK(fut_await(task, NULL) == -ECANCELED);
  CHECK(fut_cancelled(task));
  fut_unref(task);
  CHECK(fut_lock_release(G.lock) == 0);
  return 0;
}

static int lockit(void *blocker) {
  int err = fut_lock_acquire(G.lock);
  if (err)
    return err;
  if (blocker)
    err = fut_await(blocker, NULL);
  fut_lock_release(G.lock);
  return err;
}

/* LockTests.test_cancel_race */
BODY(test_cancel_race) {
  (void)arg;
  CHECK(fut_lock_new(&G.lock) == 0);
  fut_t *fa = NULL;
  CHECK(fut_new(fut_get_running_loop(), &fa) == 0);
  fut_t *ta = sp(lockit, fa);
  fut_yield();
  CHECK(fut_lock_locked(G.lock));
  fut_t *tb = sp(lockit, NULL);
  fut_yield();
  fut_t *tc = sp(lockit, NULL);
  fut_yield();
  fut_set_result(fa, NULL, NULL);
  fut_cancel(tb, NULL);
  fut_yield();
  CHECK(!fut_lock_locked(G.lock));
  CHECK(fut_done(ta));
  CHECK(fut_cancelled(tb));
  CHECK(fut_await(tc, NULL) == 0);
  fut_t *ts[] = {ta, tb, tc};
  join(ts, 3, 0);
  fut_unref(fa);
  return 0;
}

static int lockit_count(void *arg) {
  (void)arg;
  G.n2++; /* call_count */
  int err = fut_lock_acquire(G.lock);
  if (!err)
    G.n1++; /* lock_count */
  return err;
}

static void trigger(void *arg) {
  (void)arg;
  fut_cancel(G.t[0], NULL);
  fut_lock_release(G.lock);
}

/* LockTests.test_cancel_release_race */
BODY(test_cancel_release_race) {
  (void)arg;
  CHECK(fut_lock_new(&G.lock) == 0);
  CHECK(fut_lock_acquire(G.lock) == 0);
  for (int i = 0; i < 3; i++)
    G.t[i] = sp(lockit_count, NULL);
  fut_yield();
  fut_loop_call_soon(fut_get_running_loop(), trigger, NULL, NULL);
  CHECK(fut_await(G.t[0], NULL) == -ECANCELED);
  CHECK(G.n1 == 1);
  CHECK(G.n2 == 3);
  CHECK(fut_cancelled(G.t[0]) && fut_done(G.t[1]));
  fut_cancel(G.t[2], NULL);
  fut_yield();
  CHECK(fut_cancelled(G.t[2]));
  join(G.t, 3, 0);
  fut_lock_release(G.lock);
  return 0;
}

/* LockTests.test_finished_waiter_cancelled */
BODY(test_finished_waiter_cancelled) {
  (void)arg;
  CHECK(fut_lock_new(&G.lock) == 0);
  CHECK(fut_lock_acquire(G.lock) == 0);
  fut_t *tb = sp(lock_acquire, NULL);
  fut_yield();
  fut_t *tc = sp(lock_acquire, NULL);
  fut_cancel(tb, NULL);
  fut_lock_release(G.lock);
  fut_yield();
  CHECK(fut_lock_locked(G.lock));
  CHECK(fut_cancelled(tb));
  CHECK(fut_await(tc, NULL) == 0);
  fut_t *ts[] = {tb, tc};
  join(ts, 2, 0);
  fut_lock_release(G.lock);
  return 0;
}

/* LockTests.test_release_not_acquired */
BODY(test_lock_release_not_acquired) {
  (void)arg;
  CHECK(fut_lock_new(&G.lock) == 0);
  CHECK(fut_lock_release(G.lock) == FUT_E_INVALID_STATE);
  return 0;
}

/* LockTests.test_release_no_waiters */
BODY(test_lock_release_no_waiters) {
  (void)arg;
  CHECK(fut_lock_new(&G.lock) == 0);
  CHECK(fut_lock_acquire(G.lock) == 0);
  CHECK(fut_lock_locked(G.lock));
  CHECK(fut_lock_release(G.lock) == 0);
  CHECK(!fut_lock_locked(G.lock));
  return 0;
}

/* LockTests.test_context_manager (async with: acquire ... release) */
BODY(test_lock_context_manager) {
  (void)arg;
  CHECK(fut_lock_new(&G.lock) == 0);
  CHECK(!fut_lock_locked(G.lock));
  CHECK(fut_lock_acquire(G.lock) == 0);
  CHECK(fut_lock_locked(G.lock));
  fut_lock_release(G.lock);
  CHECK(!fut_lock_locked(G.lock));
  return 0;
}

/* ==== EventTests ========================================================== */

/* EventTests.test_wait */
BODY(test_event_wait) {
  (void)arg;
  CHECK(fut_event_new(&G.ev) == 0);
  CHECK(!fut_event_is_set(G.ev));
  fut_t *t1 = sp(ev_log, TAG(1)), *t2 = sp(ev_log, TAG(2));
  fut_yield();
  CHECK(G.nres == 0);
  fut_t *t3 = sp(ev_log, TAG(3));
  fut_event_set(G.ev);
  fut_yield();
  CHECK(RES(3, 1, 2));
  CHECK(task_rc(t1) == 0 && task_rc(t2) == 0 && task_rc(t3) == 0);
  fut_t *ts[] = {t1, t2, t3};
  join(ts, 3, 0);
  return 0;
}

/* EventTests.test_wait_on_set */
BODY(test_event_wait_on_set) {
  (void)arg;
  CHECK(fut_event_new(&G.ev) == 0);
  fut_event_set(G.ev);
  CHECK(fut_event_wait(G.ev) == 0);
  return 0;
}

/* EventTests.test_wait_cancel */
BODY(test_event_wait_cancel) {
  (void)arg;
  CHECK(fut_event_new(&G.ev) == 0);
  fut_t *w = sp(ev_wait, NULL);
  fut_loop_call_soon(fut_get_running_loop(), cancel_cb, w, NULL);
  CHECK(fut_await(w, NULL) == -ECANCELED);
  fut_unref(w);
  return 0; /* no waiters left: fut_event_free succeeds */
}

/* EventTests.test_clear */
BODY(test_event_clear) {
  (void)arg;
  CHECK(fut_event_new(&G.ev) == 0);
  CHECK(!fut_event_is_set(G.ev));
  fut_event_set(G.ev);
  CHECK(fut_event_is_set(G.ev));
  fut_event_clear(G.ev);
  CHECK(!fut_event_is_set(G.ev));
  return 0;
}

/* EventTests.test_clear_with_waiters */
BODY(test_event_clear_with_waiters) {
  (void)arg;
  CHECK(fut_event_new(&G.ev) == 0);
  fut_t *t = sp(ev_log, TAG(1));
  fut_yield();
  CHECK(G.nres == 0);
  fut_event_set(G.ev);
  fut_event_clear(G.ev);
  CHECK(!fut_event_is_set(G.ev));
  fut_event_set(G.ev);
  fut_event_set(G.ev);
  fut_yield();
  CHECK(RES(1));
  CHECK(task_rc(t) == 0);
  join(&t, 1, 0);
  return 0;
}

/* ==== ConditionTests ====================================================== */

static int cond_log(void *tag) {
  int err = fut_cond_acquire(G.cond);
  if (err)
    return err;
  if (!(err = fut_cond_wait(G.cond)))
    res_add((int)(intptr_t)tag);
  return err;
}

static int cond_log_release(void *tag) {
  int err = cond_log(tag);
  if (!err)
    fut_cond_release(G.cond);
  return err;
}

/* ConditionTests.test_wait */
BODY(test_cond_wait) {
  (void)arg;
  CHECK(fut_cond_new(NULL, &G.cond) == 0);
  fut_t *t1 = sp(cond_log, TAG(1)), *t2 = sp(cond_log, TAG(2)),
        *t3 = sp(cond_log, TAG(3));
  fut_yield();
  CHECK(G.nres == 0);
  CHECK(!fut_cond_locked(G.cond));
  CHECK(fut_cond_acquire(G.cond) == 0);
  fut_cond_notify(G.cond, 1);
  fut_yield();
  CHECK(G.nres == 0);
  CHECK(fut_cond_locked(G.cond));
  fut_cond_release(G.cond);
  fut_yield();
  CHECK(RES(1));
  CHECK(fut_cond_locked(G.cond));
  fut_cond_notify(G.cond, 2);
  fut_yield();
  CHECK(RES(1));
  CHECK(fut_cond_locked(G.cond));
  fut_cond_release(G.cond);
  fut_yield();
  CHECK(RES(1, 2));
  CHECK(fut_cond_locked(G.cond));
  fut_cond_release(G.cond);
  fut_yield();
  CHECK(RES(1, 2, 3));
  CHECK(fut_cond_locked(G.cond));
  CHECK(task_rc(t1) == 0 && task_rc(t2) == 0 && task_rc(t3) == 0);
  fut_t *ts[] = {t1, t2, t3};
  join(ts, 3, 0);
  fut_cond_release(G.cond);
  return 0;
}

/* ConditionTests.test_wait_cancel */
BODY(test_cond_wait_cancel) {
  (void)arg;
  CHECK(fut_cond_new(NULL, &G.cond) == 0);
  CHECK(fut_cond_acquire(G.cond) == 0);
  fut_t *w = sp(cond_wait, NULL);
  fut_loop_call_soon(fut_get_running_loop(), cancel_cb, w, NULL);
  CHECK(fut_await(w, NULL) == -ECANCELED);
  CHECK(fut_cond_locked(G.cond));
  fut_unref(w);
  fut_cond_release(G.cond);
  return 0;
}

static void cond_release_cb(void *arg) {
  (void)arg;
  fut_cond_release(G.cond);
}

/* ConditionTests.test_wait_cancel_contested */
BODY(test_wait_cancel_contested) {
  (void)arg;
  CHECK(fut_cond_new(NULL, &G.cond) == 0);
  CHECK(fut_cond_acquire(G.cond) == 0);
  CHECK(fut_cond_locked(G.cond));
  fut_t *w = sp(cond_wait, NULL);
  fut_yield();
  CHECK(!fut_cond_locked(G.cond));
  CHECK(fut_cond_acquire(G.cond) == 0);
  CHECK(fut_cond_locked(G.cond));
  fut_cond_notify(G.cond, 1);
  fut_loop_call_soon(fut_get_running_loop(), cancel_cb, w, NULL);
  fut_loop_call_soon(fut_get_running_loop(), cond_release_cb, NULL, NULL);
  fut_await(w, NULL); /* -ECANCELED or 0: either way the lock is held */
  CHECK(fut_cond_locked(G.cond));
  fut_unref(w);
  fut_cond_release(G.cond);
  return 0;
}

static int wait_on_cond(void *arg) {
  (void)arg;
  int err = fut_cond_acquire(G.cond);
  if (err)
    return err;
  G.flag = true; /* waited */
  err = fut_cond_wait(G.cond);
  fut_cond_release(G.cond);
  return err;
}

/* ConditionTests.test_wait_cancel_after_notify */
BODY(test_wait_cancel_after_notify) {
  (void)arg;
  CHECK(fut_cond_new(NULL, &G.cond) == 0);
  fut_t *w = sp(wait_on_cond, NULL);
  fut_yield();
  CHECK(fut_cond_acquire(G.cond) == 0);
  fut_cond_notify(G.cond, 1);
  fut_yield();
  fut_cancel(w, NULL);
  fut_yield();
  fut_cond_release(G.cond);
  fut_yield();
  CHECK(fut_cancelled(w));
  CHECK(G.flag);
  join(&w, 1, 0);
  return 0;
}

/* ConditionTests.test_wait_unacquired */
BODY(test_wait_unacquired) {
  (void)arg;
  CHECK(fut_cond_new(NULL, &G.cond) == 0);
  CHECK(fut_cond_wait(G.cond) == FUT_E_INVALID_STATE);
  return 0;
}

static bool pred_flag(void *arg) {
  (void)arg;
  return G.flag;
}
static bool pred_true(void *arg) {
  (void)arg;
  return true;
}

static int cond_wait_for_task(void *arg) {
  (void)arg;
  int err = fut_cond_acquire(G.cond);
  if (err)
    return err;
  if (!(err = fut_cond_wait_for(G.cond, pred_flag, NULL))) {
    res_add(1);
    fut_cond_release(G.cond);
  }
  return err;
}

/* ConditionTests.test_wait_for */
BODY(test_wait_for) {
  (void)arg;
  CHECK(fut_cond_new(NULL, &G.cond) == 0);
  fut_t *t = sp(cond_wait_for_task, NULL);
  fut_yield();
  CHECK(G.nres == 0);
  CHECK(fut_cond_acquire(G.cond) == 0);
  fut_cond_notify(G.cond, 1);
  fut_cond_release(G.cond);
  fut_yield();
  CHECK(G.nres == 0);
  G.flag = true;
  CHECK(fut_cond_acquire(G.cond) == 0);
  fut_cond_notify(G.cond, 1);
  fut_cond_release(G.cond);
  fut_yield();
  CHECK(RES(1));
  CHECK(task_rc(t) == 0);
  join(&t, 1, 0);
  return 0;
}

/* ConditionTests.test_wait_for_unacquired */
BODY(test_wait_for_unacquired) {
  (void)arg;
  CHECK(fut_cond_new(NULL, &G.cond) == 0);
  CHECK(fut_cond_wait_for(G.cond, pred_true, NULL) == 0);
  CHECK(fut_cond_wait_for(G.cond, pred_flag, NULL) == FUT_E_INVALID_STATE);
  return 0;
}

/* ConditionTests.test_notify */
BODY(test_notify) {
  (void)arg;
  CHECK(fut_cond_new(NULL, &G.cond) == 0);
  fut_t *ts[] = {sp(cond_log_release, TAG(1)), sp(cond_log_release, TAG(2)),
                 sp(cond_log_release, TAG(3))};
  fut_yield();
  CHECK(G.nres == 0);
  CHECK(fut_cond_acquire(G.cond) == 0);
  fut_cond_notify(G.cond, 1);
  fut_cond_release(G.cond);
  fut_yield();
  CHECK(RES(1));
  CHECK(fut_cond_acquire(G.cond) == 0);
  fut_cond_notify(G.cond, 1);
  fut_cond_notify(G.cond, 2048);
  fut_cond_release(G.cond);
  fut_yield();
  CHECK(RES(1, 2, 3));
  for (int i = 0; i < 3; i++)
    CHECK(task_rc(ts[i]) == 0);
  join(ts, 3, 0);
  return 0;
}

/* ConditionTests.test_notify_all */
BODY(test_notify_all) {
  (void)arg;
  CHECK(fut_cond_new(NULL, &G.cond) == 0);
  fut_t *ts[] = {sp(cond_log_release, TAG(1)), sp(cond_log_release, TAG(2))};
  fut_yield();
  CHECK(G.nres == 0);
  CHECK(fut_cond_acquire(G.cond) == 0);
  fut_cond_notify_all(G.cond);
  fut_cond_release(G.cond);
  fut_yield();
  CHECK(RES(1, 2));
  CHECK(task_rc(ts[0]) == 0 && task_rc(ts[1]) == 0);
  join(ts, 2, 0);
  return 0;
}

/* ConditionTests.test_notify_unacquired */
static void test_notify_unacquired(void **state) {
  (void)state;
  fut_cond_t *c;
  assert_int_equal(fut_cond_new(NULL, &c), 0);
  assert_int_equal(fut_cond_notify(c, 1), FUT_E_INVALID_STATE);
  assert_int_equal(fut_cond_free(c), 0);
}

/* ConditionTests.test_notify_all_unacquired */
static void test_notify_all_unacquired(void **state) {
  (void)state;
  fut_cond_t *c;
  assert_int_equal(fut_cond_new(NULL, &c), 0);
  assert_int_equal(fut_cond_notify_all(c), FUT_E_INVALID_STATE);
  assert_int_equal(fut_cond_free(c), 0);
}

/* ConditionTests.test_context_manager */
BODY(test_cond_context_manager) {
  (void)arg;
  CHECK(fut_cond_new(NULL, &G.cond) == 0);
  CHECK(!fut_cond_locked(G.cond));
  CHECK(fut_cond_acquire(G.cond) == 0);
  CHECK(fut_cond_locked(G.cond));
  fut_cond_release(G.cond);
  CHECK(!fut_cond_locked(G.cond));
  return 0;
}

static void explicit_lock_f(fut_lock_t *lock, fut_cond_t *cond) {
  fut_lock_t *own = NULL;
  fut_cond_t *own_cond = NULL;
  if (!lock) {
    CHECK(fut_lock_new(&own) == 0);
    lock = own;
  }
  if (!cond) {
    CHECK(fut_cond_new(lock, &own_cond) == 0);
    cond = own_cond;
  }
  CHECK(fut_cond_lock(cond) == lock);
  CHECK(!fut_lock_locked(lock) && !fut_cond_locked(cond));
  CHECK(fut_cond_acquire(cond) == 0);
  CHECK(fut_lock_locked(lock) && fut_cond_locked(cond));
  fut_cond_release(cond);
  CHECK(!fut_lock_locked(lock) && !fut_cond_locked(cond));
  CHECK(fut_lock_acquire(lock) == 0);
  CHECK(fut_lock_locked(lock) && fut_cond_locked(cond));
  fut_lock_release(lock);
  CHECK(!fut_lock_locked(lock) && !fut_cond_locked(cond));
  CHECK(fut_cond_free(own_cond) == 0);
  CHECK(fut_lock_free(own) == 0);
}

/* ConditionTests.test_explicit_lock */
BODY(test_explicit_lock) {
  (void)arg;
  explicit_lock_f(NULL, NULL);
  fut_lock_t *lock;
  CHECK(fut_lock_new(&lock) == 0);
  explicit_lock_f(lock, NULL);
  fut_cond_t *cond;
  CHECK(fut_cond_new(lock, &cond) == 0);
  explicit_lock_f(lock, cond);
  CHECK(fut_cond_free(cond) == 0);
  CHECK(fut_lock_free(lock) == 0);
  return 0;
}

/* Binds G.lock to the loop running it: holds it while a second task
 * queues on it. */
static int bind_hold(void *arg) {
  (void)arg;
  if (fut_lock_acquire(G.lock))
    return -EIO;
  fut_t *t = sp(lock_acquire, NULL);
  fut_yield();
  fut_lock_release(G.lock);
  int err = fut_await(t, NULL);
  fut_unref(t);
  fut_lock_release(G.lock);
  return err;
}

static int ambiguous_in_loop(void *arg) {
  (void)arg;
  /* The lock is bound to the other loop: waiting on it here fails. */
  CHECK(fut_lock_acquire(G.lock) == FUT_E_OTHER_LOOP);
  CHECK(fut_cond_acquire(G.cond) == FUT_E_OTHER_LOOP);
  return 0;
}

/* ConditionTests.test_ambiguous_loops: a primitive bound to one loop (by a
 * wait there) refuses another loop with FUT_E_OTHER_LOOP. */
static void test_ambiguous_loops(void **state) {
  memset(&G, 0, sizeof G);
  fail_line = 0;
  assert_int_equal(fut_lock_new(&G.lock), 0);
  assert_int_equal(fut_cond_new(G.lock, &G.cond), 0);
  fut_loop_t *other = new_loop();
  assert_int_equal(run_main(other, bind_hold, NULL), 0);
  end_loop(other);
  assert_int_equal(run_main(*state, ambiguous_in_loop, NULL), 0);
  if (fail_line)
    fail_msg("check failed at line %d: %s", fail_line, fail_expr);
  assert_int_equal(fut_cond_free(G.cond), 0);
  assert_int_equal(fut_lock_free(G.lock), 0);
}

/* ConditionTests.test_timeout_in_block */
BODY(test_timeout_in_block) {
  (void)arg;
  CHECK(fut_cond_new(NULL, &G.cond) == 0);
  CHECK(fut_cond_acquire(G.cond) == 0);
  fut_timeout_t *cm;
  CHECK(fut_timeout_enter(FUT_MS(20), &cm) == 0);
  int err = fut_cond_wait(G.cond);
  CHECK(fut_timeout_exit(cm, err) == -ETIMEDOUT);
  CHECK(fut_cond_locked(G.cond));
  fut_cond_release(G.cond);
  return 0;
}

static int cancelled_error_func(void *arg) {
  (void)arg;
  int err = fut_cond_acquire(G.cond);
  if (err)
    return err;
  err = fut_cond_wait_for(G.cond, pred_flag, NULL);
  CHECK(err == -ECANCELED);
  CHECK(fut_cond_locked(G.cond)); /* the lock is held again */
  fut_cond_release(G.cond);
  return err;
}

static int cancel_msg_is_foo(fut_t *task) {
  const char *msg = NULL;
  int err = fut_exception(task, &msg);
  return err == -ECANCELED && msg && strcmp(msg, "foo") == 0;
}

/* ConditionTests.test_cancelled_error_wakeup (the same exception instance:
 * here the same code and cancel message) */
BODY(test_cancelled_error_wakeup) {
  (void)arg;
  CHECK(fut_cond_new(NULL, &G.cond) == 0);
  fut_t *task = sp(cancelled_error_func, NULL);
  fut_yield();
  fut_cancel(task, "foo");
  CHECK(fut_await(task, NULL) == -ECANCELED);
  CHECK(cancel_msg_is_foo(task));
  join(&task, 1, -ECANCELED);
  return 0;
}

/* ConditionTests.test_cancelled_error_re_aquire */
BODY(test_cancelled_error_re_aquire) {
  (void)arg;
  CHECK(fut_cond_new(NULL, &G.cond) == 0);
  fut_t *task = sp(cancelled_error_func, NULL);
  fut_yield();
  CHECK(fut_cond_acquire(G.cond) == 0);
  G.flag = true;
  fut_cond_notify(G.cond, 1);
  fut_yield();
  fut_cancel(task, "foo"); /* while it re-acquires the lock */
  fut_cond_release(G.cond);
  CHECK(fut_await(task, NULL) == -ECANCELED);
  CHECK(cancel_msg_is_foo(task));
  join(&task, 1, -ECANCELED);
  return 0;
}

static bool state_nonzero(void *arg) {
  (void)arg;
  return G.count != 0;
}
static bool state_zero(void *arg) {
  (void)arg;
  return G.count == 0;
}

static int wakeup_consumer(void *arg) {
  (void)arg;
  int err = fut_cond_acquire(G.cond);
  if (err)
    return err;
  for (;;) {
    if ((err = fut_cond_wait_for(G.cond, state_nonzero, NULL)))
      break;
    if (G.count < 0)
      break;
    G.count--;
  }
  if (fut_cond_locked(G.cond))
    fut_cond_release(G.cond);
  return err;
}

static void cancelled_wakeup(bool relock) {
  CHECK(fut_cond_new(NULL, &G.cond) == 0);
  fut_t *c[2] = {sp(wakeup_consumer, NULL), sp(wakeup_consumer, NULL)};
  fut_yield();
  CHECK(fut_cond_acquire(G.cond) == 0);
  G.count += 1;
  fut_cond_notify(G.cond, 1);
  if (relock)
    fut_yield(); /* the woken task settles on re-acquiring the lock */
  fut_cancel(c[0], NULL);
  fut_timeout_t *cm;
  CHECK(fut_timeout_enter(FUT_MS(10), &cm) == 0);
  int err = fut_cond_wait_for(G.cond, state_zero, NULL);
  err = fut_timeout_exit(cm, err);
  CHECK(err == 0 || err == -ETIMEDOUT);
  CHECK(G.count == 0); /* the notification was not lost */
  G.count = -1;
  fut_cond_notify_all(G.cond);
  fut_cond_release(G.cond);
  CHECK(fut_await(c[1], NULL) == 0);
  join(c, 2, 0);
}

/* ConditionTests.test_cancelled_wakeup */
BODY(test_cancelled_wakeup) {
  (void)arg;
  cancelled_wakeup(false);
  return 0;
}

/* ConditionTests.test_cancelled_wakeup_relock */
BODY(test_cancelled_wakeup_relock) {
  (void)arg;
  cancelled_wakeup(true);
  return 0;
}

/* ==== SemaphoreTests ====================================================== */

/* SemaphoreTests.test_initial_value_zero */
static void test_initial_value_zero(void **state) {
  (void)state;
  fut_sem_t *s;
  assert_int_equal(fut_sem_new(0, &s), 0);
  assert_true(fut_sem_locked(s));
  assert_int_equal(fut_sem_free(s), 0);
}

/* SemaphoreTests.test_semaphore (the value and state part; `await sem` is
 * Python syntax) */
static void test_semaphore(void **state) {
  (void)state;
  fut_sem_t *s;
  assert_int_equal(fut_sem_new(1, &s), 0);
  assert_int_equal(fut_sem_value(s), 1);
  assert_false(fut_sem_locked(s));
  assert_int_equal(fut_sem_free(s), 0);
}

/* SemaphoreTests.test_acquire */
BODY(test_sem_acquire) {
  (void)arg;
  CHECK(fut_sem_new(3, &G.sem) == 0);
  CHECK(fut_sem_acquire(G.sem) == 0);
  CHECK(fut_sem_acquire(G.sem) == 0);
  CHECK(!fut_sem_locked(G.sem));
  fut_t *t1 = sp(sem_log, TAG(1)), *t2 = sp(sem_log, TAG(2)),
        *t3 = sp(sem_log, TAG(3));
  fut_yield();
  CHECK(RES(1));
  CHECK(fut_sem_locked(G.sem));
  CHECK(fut_sem_value(G.sem) == 0);
  fut_t *t4 = sp(sem_log, TAG(4));
  fut_sem_release(G.sem);
  fut_sem_release(G.sem);
  CHECK(fut_sem_value(G.sem) == 0);
  fut_yield();
  CHECK(fut_sem_value(G.sem) == 0);
  CHECK(G.nres == 3);
  CHECK(fut_sem_locked(G.sem));
  CHECK(task_rc(t1) == 0);
  int done = (task_rc(t2) == 0) + (task_rc(t3) == 0) + (task_rc(t4) == 0);
  CHECK(done == 2);
  fut_sem_release(G.sem);
  fut_t *ts[] = {t1, t2, t3, t4};
  CHECK(join(ts, 4, 0) == 4);
  return 0;
}

/* SemaphoreTests.test_acquire_cancel */
BODY(test_sem_acquire_cancel) {
  (void)arg;
  CHECK(fut_sem_new(1, &G.sem) == 0);
  CHECK(fut_sem_acquire(G.sem) == 0);
  fut_t *a = sp(sem_acquire, NULL);
  fut_loop_call_soon(fut_get_running_loop(), cancel_cb, a, NULL);
  CHECK(fut_await(a, NULL) == -ECANCELED);
  fut_unref(a);
  return 0;
}

/* SemaphoreTests.test_acquire_cancel_before_awoken */
BODY(test_acquire_cancel_before_awoken) {
  (void)arg;
  CHECK(fut_sem_new(0, &G.sem) == 0);
  for (int i = 0; i < 4; i++)
    G.t[i] = sp(sem_acquire, NULL);
  fut_yield();
  fut_cancel(G.t[0], NULL);
  fut_cancel(G.t[1], NULL);
  fut_sem_release(G.sem);
  fut_yield();
  fut_yield();
  CHECK(fut_done(G.t[2]));
  CHECK(!fut_done(G.t[3]));
  fut_cancel(G.t[2], NULL);
  fut_cancel(G.t[3], NULL);
  fut_yield();
  join(G.t, 4, 0);
  return 0;
}

/* SemaphoreTests.test_acquire_hang */
BODY(test_acquire_hang) {
  (void)arg;
  CHECK(fut_sem_new(0, &G.sem) == 0);
  fut_t *t1 = sp(sem_acquire, NULL), *t2 = sp(sem_acquire, NULL);
  fut_yield();
  fut_cancel(t1, NULL);
  fut_sem_release(G.sem);
  fut_yield();
  fut_yield();
  CHECK(fut_sem_locked(G.sem));
  CHECK(fut_done(t2));
  fut_t *ts[] = {t1, t2};
  join(ts, 2, 0);
  return 0;
}

static int no_hang_c1(void *arg) {
  (void)arg;
  int err = fut_sem_acquire(G.sem);
  if (err)
    return err;
  fut_yield();
  fut_sem_release(G.sem);
  fut_cancel(G.t[1], NULL);
  return 0;
}

static int no_hang_c2(void *arg) {
  (void)arg;
  int err = fut_sem_acquire(G.sem);
  if (err)
    return err;
  CHECK(!"c2 must not acquire");
  fut_sem_release(G.sem);
  return 0;
}

/* SemaphoreTests.test_acquire_no_hang */
BODY(test_acquire_no_hang) {
  (void)arg;
  CHECK(fut_sem_new(1, &G.sem) == 0);
  G.t[0] = sp(no_hang_c1, NULL);
  G.t[1] = sp(no_hang_c2, NULL);
  CHECK(fut_await(G.t[0], NULL) == 0);
  CHECK(fut_await(G.t[1], NULL) == -ECANCELED);
  join(G.t, 2, 0);
  fut_timeout_t *cm;
  CHECK(fut_timeout_enter(FUT_SEC(1), &cm) == 0);
  CHECK(fut_timeout_exit(cm, fut_sem_acquire(G.sem)) == 0);
  fut_sem_release(G.sem);
  return 0;
}

/* SemaphoreTests.test_release_not_acquired */
static void test_sem_release_not_acquired(void **state) {
  (void)state;
  fut_sem_t *s;
  assert_int_equal(fut_bounded_sem_new(1, &s), 0);
  assert_int_equal(fut_sem_release(s), -EOVERFLOW);
  assert_int_equal(fut_sem_free(s), 0);
}

/* SemaphoreTests.test_release_no_waiters */
BODY(test_sem_release_no_waiters) {
  (void)arg;
  CHECK(fut_sem_new(1, &G.sem) == 0);
  CHECK(fut_sem_acquire(G.sem) == 0);
  CHECK(fut_sem_locked(G.sem));
  fut_sem_release(G.sem);
  CHECK(!fut_sem_locked(G.sem));
  return 0;
}

static int fifo_coro(void *tag) {
  int t = (int)(intptr_t)tag;
  for (int round = 1; round <= 2; round++) {
    int err = fut_sem_acquire(G.sem);
    if (err)
      return err;
    res_add(t * 10 + round);
    fut_sleep(FUT_MS(2));
    fut_sem_release(G.sem);
  }
  return 0;
}

/* SemaphoreTests.test_acquire_fifo_order (a TaskGroup of three: here the
 * three tasks are awaited in turn) */
BODY(test_acquire_fifo_order) {
  (void)arg;
  CHECK(fut_sem_new(1, &G.sem) == 0);
  fut_t *ts[] = {sp(fifo_coro, TAG(1)), sp(fifo_coro, TAG(2)),
                 sp(fifo_coro, TAG(3))};
  CHECK(join(ts, 3, 0) == 3);
  CHECK(RES(11, 21, 31, 12, 22, 32));
  return 0;
}

static int fifo2_c2(void *arg) {
  (void)arg;
  int err = fut_sem_acquire(G.sem);
  if (err)
    return err;
  res_add(2);
  fut_sem_release(G.sem);
  if ((err = fut_sem_acquire(G.sem)))
    return err;
  res_add(4);
  return 0;
}

/* SemaphoreTests.test_acquire_fifo_order_2 */
BODY(test_acquire_fifo_order_2) {
  (void)arg;
  CHECK(fut_sem_new(1, &G.sem) == 0);
  fut_t *ts[] = {sp(sem_log, TAG(1)), sp(fifo2_c2, NULL), sp(sem_log, TAG(3))};
  fut_yield();
  fut_sem_release(G.sem);
  fut_sem_release(G.sem);
  CHECK(join(ts, 3, 0) == 3);
  CHECK(RES(1, 2, 3, 4));
  return 0;
}

/* SemaphoreTests.test_acquire_fifo_order_3 */
BODY(test_acquire_fifo_order_3) {
  (void)arg;
  CHECK(fut_sem_new(0, &G.sem) == 0);
  fut_t *ts[] = {sp(sem_log, TAG(1)), sp(sem_log, TAG(2)), sp(sem_log, TAG(3))};
  fut_yield();
  fut_cancel(ts[0], NULL);
  fut_yield();
  fut_sem_release(G.sem);
  fut_sem_release(G.sem);
  CHECK(join(ts, 3, 0) == 2);
  CHECK(RES(2, 3));
  return 0;
}

static int fifo4_c4(void *arg) {
  (void)arg;
  res_add(4);
  return 0;
}

static int fifo4_c1(void *arg) {
  (void)arg;
  CHECK(fut_sem_value(G.sem) == 0);
  int err = fut_sem_acquire(G.sem);
  if (err)
    return err;
  CHECK(fut_sem_value(G.sem) == 0); /* every waiter was woken */
  G.t[3] = sp(fifo4_c4, NULL);      /* runs after c3, not c2 */
  res_add(1);
  return 0;
}

static int fifo4_c2(void *arg) {
  (void)arg;
  fut_sem_release(G.sem);
  fut_sem_release(G.sem);
  fut_sem_release(G.sem);
  CHECK(fut_sem_value(G.sem) == 2);
  CHECK(fut_sem_locked(G.sem)); /* c1 has not woken up yet */
  int err = fut_sem_acquire(G.sem);
  if (!err)
    res_add(2);
  return err;
}

static int fifo4_c3(void *arg) {
  (void)arg;
  int err = fut_sem_acquire(G.sem);
  if (err)
    return err;
  CHECK(fut_sem_locked(G.sem));
  res_add(3);
  return 0;
}

/* SemaphoreTests.test_acquire_fifo_order_4 */
BODY(test_acquire_fifo_order_4) {
  (void)arg;
  CHECK(fut_sem_new(0, &G.sem) == 0);
  G.t[0] = sp(fifo4_c1, NULL);
  G.t[1] = sp(fifo4_c2, NULL);
  G.t[2] = sp(fifo4_c3, NULL);
  fut_yield();
  CHECK(fut_sem_value(G.sem) == 2);
  fut_yield();
  join(G.t, 3, 0);
  CHECK(G.t[3] != NULL);
  join(G.t + 3, 1, 0);
  CHECK(RES(1, 2, 3, 4));
  return 0;
}

/* ==== BarrierTests ======================================================== */

#define N 5

static int gather_n(int n, fut_task_fn fn, int64_t *out) {
  fut_t *ts[16];
  for (int i = 0; i < n; i++)
    ts[i] = sp(fn, NULL);
  int bad = 0;
  for (int i = 0; i < n; i++) {
    int64_t v = 0;
    if (fut_await(ts[i], NULL))
      bad++;
    else if (out)
      fut_result_i64(ts[i], &v);
    if (out)
      out[i] = v;
    fut_unref(ts[i]);
  }
  return bad;
}

static bool is_permutation(const int64_t *v, int n) {
  bool seen[16] = {0};
  for (int i = 0; i < n; i++) {
    if (v[i] < 0 || v[i] >= n || seen[v[i]])
      return false;
    seen[v[i]] = true;
  }
  return true;
}

/* BarrierTests.test_barrier_parties */
static void test_barrier_parties(void **state) {
  (void)state;
  fut_barrier_t *b;
  assert_int_equal(fut_barrier_new(0, &b), -EINVAL);
  assert_null(b);
  assert_int_equal(fut_barrier_new(N, &b), 0);
  assert_int_equal(fut_barrier_parties(b), N);
  assert_int_equal(fut_barrier_free(b), 0);
}

static int bar_log_index(void *arg) {
  (void)arg;
  unsigned i;
  int err = fut_barrier_wait(G.bar, &i);
  if (!err)
    res_add((int)i);
  return err;
}

/* BarrierTests.test_context_manager */
BODY(test_barrier_context_manager) {
  (void)arg;
  CHECK(fut_barrier_new(3, &G.bar) == 0);
  CHECK(gather_n(3, bar_log_index, NULL) == 0);
  CHECK(G.nres == 3);
  int64_t v[3] = {G.res[0], G.res[1], G.res[2]};
  CHECK(is_permutation(v, 3));
  CHECK(fut_barrier_n_waiting(G.bar) == 0);
  CHECK(!fut_barrier_broken(G.bar));
  return 0;
}

/* BarrierTests.test_filling_one_task */
BODY(test_filling_one_task) {
  (void)arg;
  CHECK(fut_barrier_new(1, &G.bar) == 0);
  unsigned i = 9;
  CHECK(fut_barrier_wait(G.bar, &i) == 0);
  CHECK(i == 0);
  CHECK(fut_barrier_n_waiting(G.bar) == 0);
  CHECK(!fut_barrier_broken(G.bar));
  return 0;
}

/* BarrierTests.test_filling_one_task_twice */
BODY(test_filling_one_task_twice) {
  (void)arg;
  CHECK(fut_barrier_new(1, &G.bar) == 0);
  fut_t *t1 = sp(bar_wait, NULL);
  fut_yield();
  CHECK(fut_barrier_n_waiting(G.bar) == 0);
  fut_t *t2 = sp(bar_wait, NULL);
  fut_yield();
  int64_t r1 = -1, r2 = -2;
  CHECK(fut_done(t1) && fut_done(t2));
  fut_result_i64(t1, &r1);
  fut_result_i64(t2, &r2);
  CHECK(r1 == r2);
  CHECK(fut_barrier_n_waiting(G.bar) == 0);
  CHECK(!fut_barrier_broken(G.bar));
  fut_t *ts[] = {t1, t2};
  join(ts, 2, 0);
  return 0;
}

/* BarrierTests.test_filling_task_by_task */
BODY(test_filling_task_by_task) {
  (void)arg;
  CHECK(fut_barrier_new(3, &G.bar) == 0);
  fut_t *ts[3];
  ts[0] = sp(bar_wait, NULL);
  fut_yield();
  CHECK(fut_barrier_n_waiting(G.bar) == 1);
  ts[1] = sp(bar_wait, NULL);
  fut_yield();
  CHECK(fut_barrier_n_waiting(G.bar) == 2);
  ts[2] = sp(bar_wait, NULL);
  fut_yield();
  CHECK(join(ts, 3, 0) == 3);
  CHECK(fut_barrier_n_waiting(G.bar) == 0);
  CHECK(!fut_barrier_broken(G.bar));
  return 0;
}

static int wait_twice(void *arg) {
  (void)arg;
  int err = fut_barrier_wait(G.bar, NULL);
  if (err)
    return err;
  G.n1++; /* results True */
  unsigned i;
  if ((err = fut_barrier_wait(G.bar, &i)))
    return err;
  G.n2++; /* results False */
  return fut_task_return_i64(i);
}

/* BarrierTests.test_filling_tasks_wait_twice */
BODY(test_filling_tasks_wait_twice) {
  (void)arg;
  CHECK(fut_barrier_new(N, &G.bar) == 0);
  CHECK(gather_n(N, wait_twice, NULL) == 0);
  CHECK(G.n1 == N && G.n2 == N);
  CHECK(fut_barrier_n_waiting(G.bar) == 0);
  CHECK(!fut_barrier_broken(G.bar));
  return 0;
}

/* BarrierTests.test_filling_tasks_check_return_value */
BODY(test_filling_tasks_check_return_value) {
  (void)arg;
  CHECK(fut_barrier_new(N, &G.bar) == 0);
  int64_t res[N];
  CHECK(gather_n(N, wait_twice, res) == 0);
  CHECK(G.n1 == N && G.n2 == N);
  CHECK(is_permutation(res, N));
  CHECK(fut_barrier_n_waiting(G.bar) == 0);
  CHECK(!fut_barrier_broken(G.bar));
  return 0;
}

static int blocking_coro(void *arg) {
  (void)arg;
  int err = fut_barrier_wait(G.bar, NULL);
  if (err)
    return err;
  if (G.n1 > 0) {
    G.n1--; /* rewait_n */
    return fut_barrier_wait(G.bar, NULL);
  }
  if ((err = fut_barrier_wait(G.bar2, NULL)))
    return err;
  return fut_barrier_wait(G.bar, NULL);
}

/* BarrierTests.test_blocking_tasks_while_draining */
BODY(test_blocking_tasks_while_draining) {
  (void)arg;
  CHECK(fut_barrier_new(N, &G.bar) == 0);
  CHECK(fut_barrier_new(N - 2, &G.bar2) == 0);
  G.n1 = 2;
  CHECK(gather_n(N, blocking_coro, NULL) == 0);
  return 0;
}

static int cancel_one_coro(void *arg) {
  (void)arg;
  int err = fut_barrier_wait(G.bar, NULL);
  if (!err)
    G.n1++;
  return err;
}

/* BarrierTests.test_filling_tasks_cancel_one */
BODY(test_filling_tasks_cancel_one) {
  (void)arg;
  CHECK(fut_barrier_new(3, &G.bar) == 0);
  fut_t *t1 = sp(cancel_one_coro, NULL);
  fut_yield();
  CHECK(fut_barrier_n_waiting(G.bar) == 1);
  fut_t *t2 = sp(cancel_one_coro, NULL);
  fut_yield();
  CHECK(fut_barrier_n_waiting(G.bar) == 2);
  fut_cancel(t1, NULL);
  fut_yield();
  CHECK(fut_barrier_n_waiting(G.bar) == 1);
  CHECK(fut_await(t1, NULL) == -ECANCELED);
  CHECK(fut_cancelled(t1));
  fut_t *t3 = sp(cancel_one_coro, NULL);
  fut_yield();
  CHECK(fut_barrier_n_waiting(G.bar) == 2);
  fut_t *t4 = sp(cancel_one_coro, NULL);
  fut_t *ts[] = {t2, t3, t4};
  CHECK(join(ts, 3, 0) == 3);
  fut_unref(t1);
  CHECK(G.n1 == 3);
  CHECK(fut_barrier_n_waiting(G.bar) == 0);
  CHECK(!fut_barrier_broken(G.bar));
  return 0;
}

static int bar_reset(void *arg) {
  (void)arg;
  return fut_barrier_reset(G.bar);
}
static int bar_abort(void *arg) {
  (void)arg;
  return fut_barrier_abort(G.bar);
}

/* BarrierTests.test_reset_barrier */
BODY(test_reset_barrier) {
  (void)arg;
  CHECK(fut_barrier_new(1, &G.bar) == 0);
  fut_t *t = sp(bar_reset, NULL);
  fut_yield();
  CHECK(fut_barrier_n_waiting(G.bar) == 0);
  CHECK(!fut_barrier_broken(G.bar));
  join(&t, 1, 0);
  return 0;
}

static int broken_coro(void *arg) {
  (void)arg;
  int err = fut_barrier_wait(G.bar, NULL);
  if (err == FUT_E_BROKEN_BARRIER) {
    G.n1++;
    return 0;
  }
  return err ? err : -EIO;
}

/* BarrierTests.test_reset_barrier_while_tasks_waiting */
BODY(test_reset_barrier_while_tasks_waiting) {
  (void)arg;
  CHECK(fut_barrier_new(N, &G.bar) == 0);
  fut_t *ts[N];
  for (int i = 0; i < N - 1; i++)
    ts[i] = sp(broken_coro, NULL);
  fut_yield();
  fut_t *r = sp(bar_reset, NULL);
  CHECK(join(ts, N - 1, 0) == N - 1);
  join(&r, 1, 0);
  CHECK(G.n1 == N - 1);
  CHECK(fut_barrier_n_waiting(G.bar) == 0);
  CHECK(!fut_barrier_broken(G.bar));
  return 0;
}

static int half_draining_half_blocking(void *arg) {
  (void)arg;
  int err = fut_barrier_wait(G.bar, NULL);
  if (err == FUT_E_BROKEN_BARRIER) {
    G.n1++; /* results1 */
    return fut_barrier_wait(G.bar, NULL);
  }
  if (err)
    return err;
  if (++G.count > N / 2) {
    fut_barrier_reset(G.bar);
    return fut_barrier_wait(G.bar, NULL);
  }
  err = fut_barrier_wait(G.bar, NULL);
  if (err == FUT_E_BROKEN_BARRIER) {
    G.n2++; /* results2 */
    return 0;
  }
  return err;
}

/* BarrierTests.test_reset_barrier_when_tasks_half_draining_half_blocking */
BODY(test_reset_barrier_when_tasks_half_draining_half_blocking) {
  (void)arg;
  CHECK(fut_barrier_new(N, &G.bar) == 0);
  CHECK(gather_n(N, half_draining_half_blocking, NULL) == 0);
  CHECK(G.n1 == N / 2);
  CHECK(G.n2 == 0);
  CHECK(fut_barrier_n_waiting(G.bar) == 0);
  CHECK(!fut_barrier_broken(G.bar));
  return 0;
}

static int waiting_again_coro1(void *arg) {
  (void)arg;
  int err = fut_barrier_wait(G.bar, NULL);
  if (err == FUT_E_BROKEN_BARRIER)
    G.n1++;
  if ((err = fut_barrier_wait(G.bar, NULL)))
    return err;
  G.n2++;
  return 0;
}

static int waiting_again_coro2(void *arg) {
  (void)arg;
  int err = fut_barrier_wait(G.bar, NULL);
  if (!err)
    G.n2++;
  return err;
}

/* BarrierTests.test_reset_barrier_while_tasks_waiting_and_waiting_again */
BODY(test_reset_barrier_while_tasks_waiting_and_waiting_again) {
  (void)arg;
  CHECK(fut_barrier_new(N, &G.bar) == 0);
  fut_t *ts[N + 1];
  for (int i = 0; i < N - 1; i++)
    ts[i] = sp(waiting_again_coro1, NULL);
  ts[N - 1] = sp(bar_reset, NULL);
  fut_yield();
  ts[N] = sp(waiting_again_coro2, NULL);
  CHECK(join(ts, N + 1, 0) == N + 1);
  CHECK(!fut_barrier_broken(G.bar));
  CHECK(G.n1 == N - 1);
  CHECK(G.n2 == N);
  CHECK(fut_barrier_n_waiting(G.bar) == 0);
  return 0;
}

static int while_draining_coro(void *arg) {
  (void)arg;
  int err = fut_barrier_wait(G.bar, NULL);
  if (err)
    return err;
  if (++G.count == N) {
    fut_barrier_reset(G.bar);
    if ((err = fut_barrier_wait(G.bar, NULL)))
      return err;
  } else {
    if (fut_barrier_wait(G.bar, NULL) == 0)
      G.n1++;
    else
      G.n2++;
  }
  if ((err = fut_barrier_wait(G.bar, NULL)))
    return err;
  G.n3++;
  return 0;
}

/* BarrierTests.test_reset_barrier_while_tasks_draining */
BODY(test_reset_barrier_while_tasks_draining) {
  (void)arg;
  CHECK(fut_barrier_new(N, &G.bar) == 0);
  CHECK(gather_n(N, while_draining_coro, NULL) == 0);
  CHECK(!fut_barrier_broken(G.bar));
  CHECK(G.n1 == N - 1);
  CHECK(G.n2 == 0);
  CHECK(G.n3 == N);
  CHECK(fut_barrier_n_waiting(G.bar) == 0);
  return 0;
}

static int draining_coro(void *arg) {
  (void)arg;
  int err = fut_barrier_wait(G.bar, NULL);
  if (!err)
    res_add(strcmp(fut__barrier_state_name(G.bar), "draining") == 0);
  return err;
}

/* BarrierTests.test_draining_state ("draining" in repr: the state's name) */
BODY(test_draining_state) {
  (void)arg;
  CHECK(fut_barrier_new(N, &G.bar) == 0);
  CHECK(gather_n(N, draining_coro, NULL) == 0);
  CHECK(G.nres == N);
  CHECK(G.res[N - 1] == 0);
  for (int i = 0; i < N - 1; i++)
    CHECK(G.res[i] == 1);
  CHECK(fut_barrier_n_waiting(G.bar) == 0);
  CHECK(!fut_barrier_broken(G.bar));
  return 0;
}

static int half_draining(void *arg) {
  (void)arg;
  int err = fut_barrier_wait(G.bar, NULL);
  if (err == FUT_E_BROKEN_BARRIER) {
    G.n1++;
    return 0;
  }
  if (err)
    return err;
  if (fut__barrier_count(G.bar) == N / 2) /* rest_of_tasks == _count */
    fut_barrier_reset(G.bar);
  return 0;
}

/* BarrierTests.test_reset_barrier_when_tasks_half_draining */
BODY(test_reset_barrier_when_tasks_half_draining) {
  (void)arg;
  CHECK(fut_barrier_new(N, &G.bar) == 0);
  CHECK(gather_n(N, half_draining, NULL) == 0);
  CHECK(G.n1 == N / 2);
  CHECK(fut_barrier_n_waiting(G.bar) == 0);
  CHECK(strcmp(fut__barrier_state_name(G.bar), "resetting") != 0);
  CHECK(!fut_barrier_broken(G.bar));
  return 0;
}

/* BarrierTests.test_abort_barrier */
BODY(test_abort_barrier) {
  (void)arg;
  CHECK(fut_barrier_new(1, &G.bar) == 0);
  fut_t *t = sp(bar_abort, NULL);
  fut_yield();
  CHECK(fut_barrier_n_waiting(G.bar) == 0);
  CHECK(fut_barrier_broken(G.bar));
  join(&t, 1, 0);
  return 0;
}

static int abort_half(void *arg) {
  (void)arg;
  int err = fut_barrier_wait(G.bar, NULL);
  if (err == FUT_E_BROKEN_BARRIER) {
    G.n1++;
    return 0;
  }
  if (err)
    return err;
  if (++G.count > N / 2)
    return fut_barrier_abort(G.bar);
  err = fut_barrier_wait(G.bar, NULL);
  if (err == FUT_E_BROKEN_BARRIER) {
    G.n2++;
    return 0;
  }
  return err;
}

/* BarrierTests.test_abort_barrier_when_tasks_half_draining_half_blocking */
BODY(test_abort_barrier_when_tasks_half_draining_half_blocking) {
  (void)arg;
  CHECK(fut_barrier_new(N, &G.bar) == 0);
  CHECK(gather_n(N, abort_half, NULL) == 0);
  CHECK(fut_barrier_broken(G.bar));
  CHECK(G.n1 == N / 2);
  CHECK(G.n2 == N - N / 2 - 1);
  CHECK(fut_barrier_n_waiting(G.bar) == 0);
  return 0;
}

static int abort_when_exception(void *arg) {
  (void)arg;
  unsigned i;
  int err = fut_barrier_wait(G.bar, &i);
  if (!err && i == N / 2)
    return fut_barrier_abort(G.bar); /* the RuntimeError branch */
  if (!err)
    err = fut_barrier_wait(G.bar, NULL);
  if (!err)
    G.n1++;
  else if (err == FUT_E_BROKEN_BARRIER)
    G.n2++;
  else
    return err;
  return 0;
}

/* BarrierTests.test_abort_barrier_when_exception */
BODY(test_abort_barrier_when_exception) {
  (void)arg;
  CHECK(fut_barrier_new(N, &G.bar) == 0);
  CHECK(gather_n(N, abort_when_exception, NULL) == 0);
  CHECK(fut_barrier_broken(G.bar));
  CHECK(G.n1 == 0);
  CHECK(G.n2 == N - 1);
  CHECK(fut_barrier_n_waiting(G.bar) == 0);
  return 0;
}

static int abort_then_reset(void *arg) {
  (void)arg;
  unsigned i;
  int err = fut_barrier_wait(G.bar, &i);
  if (!err && i == N / 2) {
    fut_barrier_abort(G.bar);
  } else {
    if (!err)
      err = fut_barrier_wait(G.bar, NULL);
    if (!err)
      G.n1++;
    else if (err == FUT_E_BROKEN_BARRIER)
      G.n2++;
    else
      return err;
  }
  if ((err = fut_barrier_wait(G.bar2, &i)))
    return err;
  if (i == N / 2)
    fut_barrier_reset(G.bar);
  if ((err = fut_barrier_wait(G.bar2, NULL)))
    return err;
  if ((err = fut_barrier_wait(G.bar, NULL)))
    return err;
  G.n3++;
  return 0;
}

/* BarrierTests.test_abort_barrier_when_exception_then_resetting */
BODY(test_abort_barrier_when_exception_then_resetting) {
  (void)arg;
  CHECK(fut_barrier_new(N, &G.bar) == 0);
  CHECK(fut_barrier_new(N, &G.bar2) == 0);
  CHECK(gather_n(N, abort_then_reset, NULL) == 0);
  CHECK(!fut_barrier_broken(G.bar));
  CHECK(G.n1 == 0);
  CHECK(G.n2 == N - 1);
  CHECK(G.n3 == N);
  CHECK(fut_barrier_n_waiting(G.bar) == 0);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_lock_acquire),
      T(test_lock_acquire_cancel),
      T(test_cancel_race),
      T(test_cancel_release_race),
      T(test_finished_waiter_cancelled),
      T(test_lock_release_not_acquired),
      T(test_lock_release_no_waiters),
      T(test_lock_context_manager),
      T(test_event_wait),
      T(test_event_wait_on_set),
      T(test_event_wait_cancel),
      T(test_event_clear),
      T(test_event_clear_with_waiters),
      T(test_cond_wait),
      T(test_cond_wait_cancel),
      T(test_wait_cancel_contested),
      T(test_wait_cancel_after_notify),
      T(test_wait_unacquired),
      T(test_wait_for),
      T(test_wait_for_unacquired),
      T(test_notify),
      T(test_notify_all),
      T(test_notify_unacquired),
      T(test_notify_all_unacquired),
      T(test_cond_context_manager),
      T(test_explicit_lock),
      T(test_ambiguous_loops),
      T(test_timeout_in_block),
      T(test_cancelled_error_wakeup),
      T(test_cancelled_error_re_aquire),
      T(test_cancelled_wakeup),
      T(test_cancelled_wakeup_relock),
      T(test_initial_value_zero),
      T(test_semaphore),
      T(test_sem_acquire),
      T(test_sem_acquire_cancel),
      T(test_acquire_cancel_before_awoken),
      T(test_acquire_hang),
      T(test_acquire_no_hang),
      T(test_sem_release_not_acquired),
      T(test_sem_release_no_waiters),
      T(test_acquire_fifo_order),
      T(test_acquire_fifo_order_2),
      T(test_acquire_fifo_order_3),
      T(test_acquire_fifo_order_4),
      T(test_barrier_parties),
      T(test_barrier_context_manager),
      T(test_filling_one_task),
      T(test_filling_one_task_twice),
      T(test_filling_task_by_task),
      T(test_filling_tasks_wait_twice),
      T(test_filling_tasks_check_return_value),
      T(test_draining_state),
      T(test_blocking_tasks_while_draining),
      T(test_filling_tasks_cancel_one),
      T(test_reset_barrier),
      T(test_reset_barrier_while_tasks_waiting),
      T(test_reset_barrier_when_tasks_half_draining),
      T(test_reset_barrier_when_tasks_half_draining_half_blocking),
      T(test_reset_barrier_while_tasks_waiting_and_waiting_again),
      T(test_reset_barrier_while_tasks_draining),
      T(test_abort_barrier),
      T(test_abort_barrier_when_tasks_half_draining_half_blocking),
      T(test_abort_barrier_when_exception),
      T(test_abort_barrier_when_exception_then_resetting),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
