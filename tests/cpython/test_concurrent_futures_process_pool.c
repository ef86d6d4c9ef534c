/* CPython's Lib/test/test_concurrent_futures/test_process_pool.py (class
 * ProcessPoolExecutorTest, its own methods; the ExecutorTest mixin it also
 * runs is ported in test_concurrent_futures_executor.c) as libfuture's
 * behavioural spec: one cmocka test per CPython test method that applies
 * to C, named after it.  CPython runs the class once per start method
 * (fork, forkserver, spawn); libfuture has one, a fork server that execs
 * the program (future/process_pool.h), which behaves as CPython's spawn
 * and forkserver do (workers start on demand, max_tasks_per_child is
 * allowed), so the methods CPython skips under "fork" run here.
 *
 * Mapping: BrokenProcessPool for the job of a worker that died is
 * FUT_E_WORKER_DIED (libfuture fails that job only, see the docs);
 * executor._processes is fut_process_pool_nworkers; terminate_workers() /
 * kill_workers() is fut_executor_shutdown(wait, cancel_pending, timeout 0),
 * which kills the workers still running jobs; a manager Queue / Event is
 * the file-system gate of cf_proc_util.h.  Every test must end with no
 * child of this process left. */
#include "cf_proc_util.h"

#include <pthread.h>
#include <signal.h>

static fut_executor_t *process_pool(unsigned workers, unsigned max_tasks) {
  fut_process_pool_opts_t o;
  fut_process_pool_opts_init(&o);
  o.max_workers = workers;
  o.max_tasks_per_child = max_tasks;
  fut_executor_t *ex = NULL;
  assert_int_equal(fut_process_pool_new_ex(&o, &ex), 0);
  return ex;
}

static void executor_done(fut_executor_t *ex) {
  assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_FOREVER), 0);
  fut_executor_free(ex);
}

static unsigned nworkers(fut_executor_t *ex) {
  return fut_process_pool_nworkers(fut_executor_self(ex));
}

static fut_cfuture_t *submit_mul(fut_executor_t *ex, int64_t x, int64_t y) {
  struct mul m = {x, y};
  return pp_submit(ex, pp_mul_job, &m, sizeof m);
}

static int64_t result_i64(fut_cfuture_t *cf, uint64_t timeout) {
  int err;
  int64_t v = pp_result_i64(cf, timeout, &err);
  assert_int_equal(err, 0);
  return v;
}

/* ---- jobs ---------------------------------------------------------------- */

/* raise RuntimeError(123): a bytes job fails with a code */
static int test_traceback_job(const void *data, size_t len, void **out,
                              size_t *out_len) {
  (void)data;
  (void)len;
  (void)out;
  (void)out_len;
  return -ERANGE;
}

/* The same through the pool's own API, whose jobs also carry a message. */
static int test_traceback_proc_job(const void *arg, size_t len,
                                   fut_buf_t *out) {
  (void)arg;
  (void)len;
  return fut_buf_errorf(out, -ERANGE, "raise RuntimeError(123) # some comment");
}

/* os._exit(code) */
static int os_exit_job(const void *data, size_t len, void **out,
                       size_t *out_len) {
  (void)out;
  (void)out_len;
  int64_t code = 1;
  pp_in_i64(data, len, &code);
  _exit((int)code);
}

/* _report_wait_return(queue, event, value): reports at the gate, waits
 * for it, returns value. */
struct rwr {
  int64_t value;
  char dir[64];
};

static int report_wait_return(const void *data, size_t len, void **out,
                              size_t *out_len) {
  struct rwr a;
  if (len != sizeof a)
    return -EINVAL;
  memcpy(&a, data, sizeof a);
  int err = fgate_pass(a.dir, strlen(a.dir));
  return err ? err : pp_out_i64(a.value, out, out_len);
}

/* _put_wait_put(queue, event): "started", wait, then "finished" (never
 * reached: the worker is killed while it waits). */
static int put_wait_put(const void *data, size_t len, void **out,
                        size_t *out_len) {
  int err = fgate_job(data, len, out, out_len);
  if (err)
    return err;
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%.*s/finished", (int)len, (const char *)data);
  int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0)
    close(fd);
  return 0;
}

/* ---- ProcessPoolExecutorTest --------------------------------------------- */

struct waiter {
  pthread_mutex_t m;
  pthread_cond_t c;
  bool done;
  int err;
  char msg[256];
};

static void waiter_done(void *ud, int err, void *data, size_t len,
                        const char *msg) {
  (void)len;
  struct waiter *w = ud;
  free(data);
  pthread_mutex_lock(&w->m);
  w->err = err;
  snprintf(w->msg, sizeof w->msg, "%s", msg ? msg : "");
  w->done = true;
  pthread_cond_broadcast(&w->c);
  pthread_mutex_unlock(&w->m);
}

/* ProcessPoolExecutorTest.test_traceback: the job's exception (its code)
 * reaches the parent; through the pool's API, with the text the job gave
 * it (CPython: the remote traceback naming the raising line). */
static void test_traceback(void **state) {
  (void)state;
  fut_executor_t *ex = process_pool(2, 0);
  fut_cfuture_t *future = pp_submit(ex, test_traceback_job, NULL, 0);
  const char *msg = NULL;
  assert_int_equal(fut_cfuture_exception(future, FUT_FOREVER, &msg), -ERANGE);
  assert_non_null(msg);
  assert_non_null(strstr(msg, "ERANGE"));
  fut_cfuture_unref(future);
  executor_done(ex);

  fut_process_pool_t *pool = NULL;
  assert_int_equal(fut_process_pool_create(NULL, &pool), 0);
  struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false,
                     0, ""};
  assert_int_equal(fut_process_pool_submit(pool, test_traceback_proc_job, NULL,
                                           0, NULL, waiter_done, &w),
                   0);
  pthread_mutex_lock(&w.m);
  while (!w.done)
    pthread_cond_wait(&w.c, &w.m);
  pthread_mutex_unlock(&w.m);
  assert_int_equal(w.err, -ERANGE);
  assert_non_null(strstr(w.msg, "raise RuntimeError(123) # some comment"));
  fut_process_pool_destroy(pool);
}

/* ProcessPoolExecutorTest.test_traceback_when_child_process_terminates_abruptly
 */
static void
test_traceback_when_child_process_terminates_abruptly(void **state) {
  (void)state;
  fut_executor_t *executor = process_pool(1, 0);
  fut_cfuture_t *future = pp_submit_i64(executor, os_exit_job, 99);
  const char *msg = NULL;
  assert_int_equal(fut_cfuture_exception(future, FUT_FOREVER, &msg),
                   FUT_E_WORKER_DIED);
  assert_non_null(msg);
  /* "terminated abruptly with exit code 99" */
  assert_non_null(strstr(msg, "exited with status 99"));
  fut_cfuture_unref(future);
  executor_done(executor);
}

/* ProcessPoolExecutorTest.test_saturation: 15 * max_workers blocked jobs
 * start max_workers workers, no more. */
static void test_saturation(void **state) {
  (void)state;
  enum { MAX = 5, N = 15 * MAX };
  fut_executor_t *executor = process_pool(MAX, 0);
  struct fgate sem;
  fgate_init(&sem);
  fut_job_t job = fgate_jobdesc(&sem);
  fut_cfuture_t *fs[N];
  for (int i = 0; i < N; i++)
    assert_int_equal(fut_executor_submit_job(executor, &job, &fs[i]), 0);
  fgate_wait_started(&sem, MAX);
  assert_int_equal(nworkers(executor), MAX);
  assert_int_equal(fgate_started(&sem), MAX);
  fgate_open(&sem);
  for (int i = 0; i < N; i++) {
    assert_int_equal(fut_cfuture_result(fs[i], FUT_SEC(60), NULL), 0);
    fut_cfuture_unref(fs[i]);
  }
  executor_done(executor);
  fgate_destroy(&sem);
}

/* ProcessPoolExecutorTest.test_idle_process_reuse_one */
static void test_idle_process_reuse_one(void **state) {
  (void)state;
  fut_executor_t *executor = process_pool(5, 0);
  fut_cfuture_t *f = submit_mul(executor, 21, 2);
  assert_int_equal(result_i64(f, FUT_FOREVER), 42);
  fut_cfuture_unref(f);
  f = submit_mul(executor, 6, 7);
  assert_int_equal(result_i64(f, FUT_FOREVER), 42);
  fut_cfuture_unref(f);
  f = submit_mul(executor, 3, 14);
  assert_int_equal(result_i64(f, FUT_FOREVER), 42);
  fut_cfuture_unref(f);
  assert_int_equal(nworkers(executor), 1);
  executor_done(executor);
}

/* ProcessPoolExecutorTest.test_idle_process_reuse_multiple */
static void test_idle_process_reuse_multiple(void **state) {
  (void)state;
  fut_executor_t *executor = process_pool(5, 0);
  fut_cfuture_t *fs[6];
  fs[0] = submit_mul(executor, 12, 7);
  assert_int_equal(result_i64(fs[0], FUT_FOREVER), 84);
  fs[1] = submit_mul(executor, 33, 25);
  fs[2] = submit_mul(executor, 25, 26);
  assert_int_equal(result_i64(fs[2], FUT_FOREVER), 650);
  fs[3] = submit_mul(executor, 18, 29);
  fs[4] = submit_mul(executor, 1, 2);
  assert_int_equal(result_i64(fs[4], FUT_FOREVER), 2);
  fs[5] = submit_mul(executor, 0, 9);
  assert_true(nworkers(executor) <= 3);
  executor_done(executor);
  for (int i = 0; i < 6; i++)
    fut_cfuture_unref(fs[i]);
}

/* ProcessPoolExecutorTest.test_max_tasks_per_child */
static void test_max_tasks_per_child(void **state) {
  (void)state;
  fut_executor_t *executor = process_pool(1, 3);
  fut_cfuture_t *f1 = pp_submit(executor, pp_getpid_job, NULL, 0);
  int64_t original_pid = result_i64(f1, FUT_FOREVER);
  /* The worker pid remains the same as the worker could be reused */
  fut_cfuture_t *f2 = pp_submit(executor, pp_getpid_job, NULL, 0);
  assert_int_equal(result_i64(f2, FUT_FOREVER), original_pid);
  assert_int_equal(nworkers(executor), 1);
  fut_cfuture_t *f3 = pp_submit(executor, pp_getpid_job, NULL, 0);
  assert_int_equal(result_i64(f3, FUT_FOREVER), original_pid);
  /* A new worker is spawned, with a different pid, while the previous
   * was reaped. */
  fut_cfuture_t *f4 = pp_submit(executor, pp_getpid_job, NULL, 0);
  int64_t new_pid = result_i64(f4, FUT_FOREVER);
  assert_int_not_equal(original_pid, new_pid);
  assert_int_equal(nworkers(executor), 1);
  executor_done(executor);
  fut_cfuture_unref(f1);
  fut_cfuture_unref(f2);
  fut_cfuture_unref(f3);
  fut_cfuture_unref(f4);
}

/* ProcessPoolExecutorTest.test_max_tasks_per_child_pending_tasks_gh115634:
 * more jobs than the pool runs at once, workers retiring at their limit:
 * every job still runs. */
static void test_max_tasks_per_child_pending_tasks_gh115634(void **state) {
  (void)state;
  static const unsigned cases[2][3] = {{1, 2, 6}, {2, 2, 8}};
  for (int c = 0; c < 2; c++) {
    fut_executor_t *executor = process_pool(cases[c][0], cases[c][1]);
    unsigned num_tasks = cases[c][2];
    fut_cfuture_t *fs[8];
    for (unsigned i = 0; i < num_tasks; i++)
      fs[i] = submit_mul(executor, i, 2);
    for (unsigned i = 0; i < num_tasks; i++) {
      assert_int_equal(result_i64(fs[i], FUT_SEC(30)), (int64_t)i * 2);
      fut_cfuture_unref(fs[i]);
    }
    assert_int_equal(fut_executor_shutdown(executor, true, true, FUT_FOREVER),
                     0);
    fut_executor_free(executor);
  }
}

/* ProcessPoolExecutorTest._run_stranded_worker_exit_test: one worker with
 * max_tasks_per_child 1 runs the first of 3 jobs; meanwhile the executor
 * is shut down without waiting and/or its last reference dropped; then the
 * first job finishes and its worker retires.  CPython requires the other
 * futures to resolve (a replacement worker runs them while the executor
 * lives; once it was garbage collected they fail with BrokenProcessPool).
 * libfuture's pool outlives its last reference until its jobs are done
 * (future/executor.h), so here they always run: results 1 and 2. */
struct opener {
  struct fgate *gate;
};

static void *open_later(void *p) {
  struct opener *o = p;
  pp_sleep_ns(FUT_MS(100));
  fgate_open(o->gate);
  return NULL;
}

static void run_stranded_worker_exit_test(bool shutdown, bool drop_reference) {
  struct fgate gate;
  fgate_init(&gate);
  fut_executor_t *executor = process_pool(1, 1);
  fut_cfuture_t *futs[3];
  for (int i = 0; i < 3; i++) {
    struct rwr a = {i, ""};
    snprintf(a.dir, sizeof a.dir, "%s", gate.dir);
    futs[i] = pp_submit(executor, report_wait_return, &a, sizeof a);
  }
  fgate_wait_started(&gate, 1); /* started.get() == 0 */
  pthread_t t;
  bool opener = false;
  if (shutdown)
    assert_int_equal(fut_executor_shutdown(executor, false, false, 0), 0);
  if (drop_reference) {
    if (!shutdown) {
      /* The last reference shuts down with wait: the gate must open while
       * fut_executor_free blocks. */
      struct opener o = {&gate};
      assert_int_equal(pthread_create(&t, NULL, open_later, &o), 0);
      fut_executor_free(executor);
      assert_int_equal(pthread_join(t, NULL), 0);
      opener = true;
    } else {
      fut_executor_free(executor);
    }
    executor = NULL;
  }
  if (!opener)
    fgate_open(&gate);
  assert_int_equal(result_i64(futs[0], FUT_SEC(30)), 0);
  assert_int_equal(result_i64(futs[1], FUT_SEC(30)), 1);
  assert_int_equal(result_i64(futs[2], FUT_SEC(30)), 2);
  for (int i = 0; i < 3; i++)
    fut_cfuture_unref(futs[i]);
  if (executor)
    executor_done(executor);
  assert_int_equal(pp_children_settle(), 0);
  fgate_destroy(&gate);
}

/* ProcessPoolExecutorTest.test_shutdown_no_wait_max_tasks_gh119592 */
static void test_shutdown_no_wait_max_tasks_gh119592(void **state) {
  (void)state;
  run_stranded_worker_exit_test(true, false);
  run_stranded_worker_exit_test(true, true);
}

/* ProcessPoolExecutorTest.test_gc_during_max_tasks_worker_exit_gh152967 */
static void test_gc_during_max_tasks_worker_exit_gh152967(void **state) {
  (void)state;
  run_stranded_worker_exit_test(false, true);
}

/* ProcessPoolExecutorTest.test_max_tasks_early_shutdown */
static void test_max_tasks_early_shutdown(void **state) {
  (void)state;
  fut_executor_t *executor = process_pool(3, 1);
  fut_cfuture_t *futures[6];
  for (int i = 0; i < 6; i++)
    futures[i] = submit_mul(executor, i, i);
  assert_int_equal(fut_executor_shutdown(executor, true, false, FUT_FOREVER),
                   0);
  for (int i = 0; i < 6; i++) {
    assert_int_equal(result_i64(futures[i], 0), i * i);
    fut_cfuture_unref(futures[i]);
  }
  fut_executor_free(executor);
}

/* kill_workers(): shut down now, killing the workers that still run. */
static int force_shutdown(fut_executor_t *ex) {
  return fut_executor_shutdown(ex, true, true, 0);
}

/* ProcessPoolExecutorTest.test_force_shutdown_workers (CPython runs it for
 * terminate_workers and kill_workers; libfuture kills with SIGKILL only) */
static void test_force_shutdown_workers(void **state) {
  (void)state;
  struct fgate g;
  fgate_init(&g);
  fut_executor_t *executor = process_pool(1, 0);
  fut_cfuture_t *f = pp_submit(executor, put_wait_put, g.dir, strlen(g.dir));
  fgate_wait_started(&g, 1); /* q.get() == 'started' */
  assert_int_equal(nworkers(executor), 1);
  assert_int_equal(force_shutdown(executor), -ETIMEDOUT);
  assert_int_equal(fut_cfuture_exception(f, 0, NULL), FUT_E_SHUTDOWN);
  assert_int_equal(nworkers(executor), 0);
  assert_int_equal(pp_children_settle(), 0); /* worker_process.join() */
  /* 'finished' is never put, even once the event is set. */
  fgate_open(&g);
  pp_sleep_ns(FUT_MS(50));
  char p[128];
  snprintf(p, sizeof p, "%s/finished", g.dir);
  assert_int_not_equal(access(p, F_OK), 0);
  fut_cfuture_unref(f);
  fut_executor_free(executor);
  fgate_destroy(&g);
}

/* ProcessPoolExecutorTest.test_force_shutdown_workers_dead_workers */
static void test_force_shutdown_workers_dead_workers(void **state) {
  (void)state;
  fut_executor_t *executor = process_pool(1, 0);
  fut_cfuture_t *future = pp_submit_i64(executor, os_exit_job, 1);
  assert_int_equal(fut_cfuture_exception(future, FUT_FOREVER, NULL),
                   FUT_E_WORKER_DIED);
  /* even though the worker died, this shouldn't fail */
  assert_int_equal(force_shutdown(executor), 0);
  fut_cfuture_unref(future);
  fut_executor_free(executor);
}

/* ProcessPoolExecutorTest.test_force_shutdown_workers_not_started_yet: no
 * worker was ever started; the forced shutdown kills nothing. */
static void test_force_shutdown_workers_not_started_yet(void **state) {
  (void)state;
  fut_executor_t *executor = process_pool(1, 0);
  assert_int_equal(nworkers(executor), 0);
  assert_int_equal(force_shutdown(executor), 0);
  assert_int_equal(nworkers(executor), 0);
  fut_executor_free(executor);
}

/* ProcessPoolExecutorTest.test_force_shutdown_workers_stops_pool */
static void test_force_shutdown_workers_stops_pool(void **state) {
  (void)state;
  fut_executor_t *executor = process_pool(1, 0);
  fut_cfuture_t *task = pp_submit_i64(executor, pp_sleep_job, 0);
  assert_int_equal(fut_cfuture_result(task, FUT_FOREVER, NULL), 0); /* None */
  fut_cfuture_unref(task);
  assert_int_equal(nworkers(executor), 1);
  force_shutdown(executor);
  fut_job_t job = fut_job_bytes(pp_sleep_job, NULL, 0);
  fut_cfuture_t *f = NULL;
  assert_int_equal(fut_executor_submit_job(executor, &job, &f), FUT_E_SHUTDOWN);
  assert_null(f);
  /* the worker is gone, not just signalled */
  assert_int_equal(pp_children_settle(), 0);
  fut_executor_free(executor);
}

#define T(name)                                                                \
  cmocka_unit_test_setup_teardown(name, pp_no_children, pp_no_children)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_traceback),
      T(test_traceback_when_child_process_terminates_abruptly),
      T(test_saturation),
      T(test_idle_process_reuse_one),
      T(test_idle_process_reuse_multiple),
      T(test_max_tasks_per_child),
      T(test_max_tasks_per_child_pending_tasks_gh115634),
      T(test_shutdown_no_wait_max_tasks_gh119592),
      T(test_gc_during_max_tasks_worker_exit_gh152967),
      T(test_max_tasks_early_shutdown),
      T(test_force_shutdown_workers),
      T(test_force_shutdown_workers_dead_workers),
      T(test_force_shutdown_workers_not_started_yet),
      T(test_force_shutdown_workers_stops_pool),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
