/* The allocation-failure sweep (SQLite's method): each scenario below is a
 * small program over the public API.  It runs once with no failure to
 * count its allocations.  Then, for N = 1, 2, ..., it runs again with the
 * N-th allocation failing: first only that one (one-shot mode), then that
 * one and every later one (persistent mode).  The sweep stops once a run
 * reaches its end without the injected failure ever happening.
 *
 * Every run must either succeed or return an error.  It must never crash,
 * hang or leak:
 *   - each scenario frees what it made on every path, and its loop must
 *     free clean (nothing alive);
 *   - ctest's timeout catches a hang;
 *   - under ASan, LeakSanitizer checks the whole run at exit.
 * The sweep prints the number of distinct allocation sites it made fail. */
#include "fixture.h"

#include <stdlib.h>

#include "base/internal.h"

#define MAX_SITES 512

static void *sites[MAX_SITES];
static size_t nsites;

static void note_site(void) {
  void *s = fut__alloc_failed_site();
  if (!s)
    return;
  for (size_t i = 0; i < nsites; i++)
    if (sites[i] == s)
      return;
  if (nsites < MAX_SITES)
    sites[nsites++] = s;
}

/* Frees loop, which must hold nothing alive any more. */
static int free_loop(fut_loop_t *loop) {
  if (!loop)
    return 0;
  fut_loop_close(loop);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.live_futures, 0);
  assert_int_equal(st.live_handles, 0);
  assert_int_equal(fut_loop_free(loop), 0);
  return 0;
}

/* Runs loop until f is done or a bounded number of iterations passed
 * (a failed allocation may mean f never completes). */
static void run_until(fut_loop_t *loop, fut_t *f, int max_iters) {
  for (int i = 0; i < max_iters && f && !fut_done(f); i++)
    if (fut_loop_run_once(loop, FUT_MS(1)) != 0)
      return;
}

static void count_cb(void *arg) {
  ++*(int *)arg;
}

static void done_count_cb(fut_t *f, void *arg) {
  (void)f;
  ++*(int *)arg;
}

/* ---- scenarios ----------------------------------------------------------- */

/* The loop: callbacks with and without handles, timers, cancel, the door. */
static int scenario_loop(void) {
  fut_loop_t *loop = NULL;
  int err = fut_loop_new(&loop);
  if (err)
    return err;
  int ran = 0;
  fut_handle_t *h1 = NULL, *h2 = NULL, *h3 = NULL;
  err = fut_loop_call_soon(loop, count_cb, &ran, NULL);
  if (!err)
    err = fut_loop_call_soon(loop, count_cb, &ran, &h1);
  if (!err)
    err = fut_loop_call_later(loop, FUT_US(200), count_cb, &ran, &h2);
  if (!err)
    err = fut_loop_call_later(loop, FUT_SEC(100), count_cb, &ran, &h3);
  if (!err)
    err = fut_loop_call_later(loop, FUT_US(100), count_cb, &ran, NULL);
  if (!err)
    err = fut_loop_call_soon_threadsafe(loop, count_cb, &ran);
  fut_handle_cancel(h3);
  for (int i = 0; i < 50 && ran < 5; i++)
    if (fut_loop_run_once(loop, FUT_MS(1)) != 0)
      break;
  fut_handle_unref(h1);
  fut_handle_unref(h2);
  fut_handle_unref(h3);
  free_loop(loop);
  return err;
}

/* Futures: results of each kind, exceptions, cancel, copy_state, late
 * callbacks. */
static int scenario_futures(void) {
  fut_loop_t *loop = NULL;
  int err = fut_loop_new(&loop);
  if (err)
    return err;
  fut_t *f[4] = {NULL, NULL, NULL, NULL};
  int cbs = 0;
  for (int i = 0; i < 4 && !err; i++)
    err = fut_new(loop, &f[i]);
  for (int i = 0; i < 4 && !err; i++)
    err = fut_add_done_callback(f[i], done_count_cb, &cbs);
  if (!err)
    err = fut_set_result_bytes(f[0], "hello", 5);
  if (!err)
    err = fut_set_exception(f[1], -EIO, "read %s", "/dev/x");
  if (!err && !fut_cancel(f[2], "bye"))
    err = FUT_E_INVALID_STATE;
  if (!err)
    err = fut_copy_state(f[3], f[0]);
  if (!err)
    err = fut_add_done_callback(f[0], done_count_cb, &cbs); /* late */
  for (int i = 0; i < 10 && cbs < 5; i++)
    fut_loop_run_once(loop, 0);
  for (int i = 0; i < 4; i++) {
    if (f[i])
      (void)fut_exception(f[i], NULL);
    fut_unref(f[i]);
  }
  free_loop(loop);
  return err;
}

static int sleeper(void *arg) {
  (void)arg;
  int err = fut_sleep(FUT_US(100));
  if (err)
    return err;
  return fut_task_return_bytes("done", 4);
}

static int waiter(void *arg) {
  fut_t *w = NULL;
  int err = fut_wait_for(arg, FUT_US(200), &w);
  if (err)
    return err;
  err = fut_await(w, NULL);
  fut_unref(w);
  return err == -ETIMEDOUT ? 0 : err;
}

/* Tasks and combinators: gather of sleepers, wait_for timing out, wait,
 * as_completed. */
static int scenario_tasks(void) {
  fut_loop_t *loop = NULL;
  int err = fut_loop_new(&loop);
  if (err)
    return err;
  fut_t *t[3] = {NULL, NULL, NULL}, *never = NULL, *g = NULL, *w = NULL,
        *ac = NULL, *tw = NULL;
  for (int i = 0; i < 3 && !err; i++)
    err = fut_create_task(loop, sleeper, NULL, NULL, &t[i]);
  if (!err)
    err = fut_new(loop, &never);
  if (!err)
    err = fut_create_task(loop, waiter, never, NULL, &tw);
  if (!err)
    err = fut_gather(loop, t, 3, 0, &g);
  if (!err)
    err = fut_wait(loop, t, 3, FUT_WAIT_ALL_COMPLETED, FUT_MS(50), &w);
  if (!err)
    err = fut_as_completed(loop, t, 3, FUT_MS(50), &ac);
  run_until(loop, g, 100);
  run_until(loop, tw, 100);
  run_until(loop, w, 100);
  if (!err && g)
    err = fut_result(g, NULL);
  /* Settle what is left so nothing waits at close. */
  fut_cancel(never, NULL);
  fut_cancel(ac, NULL);
  for (int i = 0; i < 3; i++)
    fut_cancel(t[i], NULL);
  for (int i = 0; i < 10; i++)
    fut_loop_run_once(loop, 0);
  fut_t *all[] = {t[0], t[1], t[2], never, g, w, ac, tw};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    if (all[i] && fut_done(all[i]))
      (void)fut_exception(all[i], NULL);
    fut_unref(all[i]);
  }
  free_loop(loop);
  return err;
}

static int job_add_one(void *arg, fut_cfuture_t *cf) {
  return fut_cfuture_set_result_i64(cf, (intptr_t)arg + 1);
}

/* Executors: a thread pool, the default executor, run_in_executor,
 * wrap_future. */
static int scenario_executors(void) {
  fut_loop_t *loop = NULL;
  int err = fut_loop_new(&loop);
  if (err)
    return err;
  fut_executor_t *ex = NULL;
  fut_t *f[3] = {NULL, NULL, NULL}, *wf = NULL;
  fut_cfuture_t *cf = NULL;
  err = fut_thread_pool_new(2, &ex);
  if (!err)
    err = fut_run_in_executor(loop, ex, job_add_one, (void *)1, &f[0]);
  if (!err)
    err = fut_run_in_executor(loop, ex, job_add_one, (void *)2, &f[1]);
  if (!err)
    err = fut_run_in_executor(loop, NULL, job_add_one, (void *)3, &f[2]);
  if (!err)
    err = fut_cfuture_new(&cf);
  if (!err)
    err = fut_wrap_future(loop, cf, &wf);
  if (!err)
    err = fut_cfuture_set_result_i64(cf, 9);
  for (int i = 0; i < 3; i++)
    run_until(loop, f[i], 200);
  run_until(loop, wf, 200);
  for (int i = 0; i < 3; i++) {
    if (f[i] && !fut_done(f[i]))
      fut_cancel(f[i], NULL);
    if (f[i] && fut_done(f[i]))
      (void)fut_exception(f[i], NULL);
    fut_unref(f[i]);
  }
  if (wf && fut_done(wf))
    (void)fut_exception(wf, NULL);
  fut_unref(wf);
  fut_cfuture_unref(cf);
  if (ex) {
    fut_executor_shutdown(ex, true, false, FUT_SEC(10));
    fut_executor_free(ex);
  }
  fut_loop_shutdown_default_executor(loop, FUT_SEC(10));
  free_loop(loop);
  return err;
}

static int run_main(void *arg) {
  (void)arg;
  fut_t *t = NULL, *f = NULL;
  int err = fut_create_task(fut_get_running_loop(), sleeper, NULL, NULL, &t);
  if (!err)
    err = fut_run_in_executor(fut_get_running_loop(), NULL, job_add_one,
                              (void *)5, &f);
  if (!err)
    err = fut_await(f, NULL);
  if (!err)
    err = fut_await(t, NULL);
  fut_unref(t);
  fut_unref(f);
  return err;
}

/* fut_run: asyncio.run with a task and a default-executor job. */
static int scenario_run(void) {
  fut_t *main_task = NULL;
  int err = fut_run(run_main, NULL, &main_task);
  fut_unref(main_task);
  return err;
}

/* ---- the sweep ----------------------------------------------------------- */

struct scenario {
  const char *name;
  int (*fn)(void);
};

static const struct scenario scenarios[] = {
    {"loop", scenario_loop},
    {"futures", scenario_futures},
    {"tasks", scenario_tasks},
    {"executors", scenario_executors},
    {"run", scenario_run},
};

/* Sweeps one scenario in one mode; returns the number of runs. */
static long sweep(const struct scenario *s, bool sticky) {
  long n;
  for (n = 1;; n++) {
    fut__alloc_fail_after(n, sticky);
    int err = s->fn();
    bool injected = fut__alloc_failed_site() != NULL;
    note_site();
    fut__alloc_fail_after(0, false);
    if (!injected) {
      /* Past the scenario's last allocation: it must succeed. */
      if (err)
        fail_msg("scenario %s failed without an injected failure: %s (%s)",
                 s->name, fut_strerror(err), fut_last_error());
      break;
    }
    assert_true(err <= 0);
    assert_true(n < 100000); /* a scenario that never ends allocating */
  }
  return n;
}

static void test_alloc_sweep_every_site(void **state) {
  (void)state;
  long runs = 0;
  for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
    /* A clean run first: the scenario itself must work. */
    int err = scenarios[i].fn();
    if (err)
      fail_msg("scenario %s: %s (%s)", scenarios[i].name, fut_strerror(err),
               fut_last_error());
    long one = sweep(&scenarios[i], false);
    long persistent = sweep(&scenarios[i], true);
    printf("scenario %-9s %5ld one-shot runs, %5ld persistent runs\n",
           scenarios[i].name, one, persistent);
    runs += one + persistent;
  }
  printf("allocation sweep: %ld runs, %zu distinct allocation sites failed, "
         "no crash, leak or hang\n",
         runs, nsites);
  assert_true(nsites >= 20);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_alloc_sweep_every_site),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
