/* The thread pool through the executor interface, without any loop:
 * results and errors, cancellation, shutdown modes, the initializer, map,
 * wait / as_completed, threads on demand and back to baseline.
 * Regressions: a pool in a forked child, lost wake-ups, a pool freed from
 * its own job, shutdown without wait then free. */
#include "exec/internal.h"
#include "exec_helpers.h"

#include <sched.h>
#include <stdio.h>
#include <string.h>

/* Every test: fds, threads and children back to their baseline after it
 * (tests/fixture.h); `baseline` (the thread count) is read by tests. */
static int accounted_setup(void **state) {
  threads_setup(state);
  return fx_accounts_setup(state);
}

static int accounted_teardown(void **state) {
  threads_teardown(state);
  return fx_accounts_teardown(state);
}

#define T(name)                                                                \
  cmocka_unit_test_setup_teardown(name, accounted_setup, accounted_teardown)

/* ---- jobs ---------------------------------------------------------------- */

static int job_i64(void *arg, fut_cfuture_t *cf) {
  return fut_cfuture_set_result_i64(cf, (int64_t)(intptr_t)arg);
}

static int job_square(void *arg, fut_cfuture_t *cf) {
  int64_t v = (int64_t)(intptr_t)arg;
  return fut_cfuture_set_result_i64(cf, v * v);
}

static int job_noop(void *arg, fut_cfuture_t *cf) {
  (void)arg;
  (void)cf;
  return 0;
}

static int job_fail(void *arg, fut_cfuture_t *cf) {
  (void)arg;
  (void)cf;
  return -ENOENT;
}

static int job_fail_msg(void *arg, fut_cfuture_t *cf) {
  return fut_cfuture_set_exception(cf, -EIO, "read failed at %d",
                                   (int)(intptr_t)arg);
}

static int job_positive(void *arg, fut_cfuture_t *cf) {
  (void)arg;
  (void)cf;
  return 3;
}

/* Waits at the gate, then finishes with the value 1. */
static int job_gated(void *arg, fut_cfuture_t *cf) {
  gate_pass(arg);
  return fut_cfuture_set_result_i64(cf, 1);
}

static int bytes_upper(const void *data, size_t len, void **out,
                       size_t *out_len) {
  char *o = malloc(len);
  if (!o)
    return -ENOMEM;
  for (size_t i = 0; i < len; i++) {
    char c = ((const char *)data)[i];
    o[i] = (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
  }
  *out = o;
  *out_len = len;
  return 0;
}

static int bytes_fail(const void *data, size_t len, void **out,
                      size_t *out_len) {
  (void)data;
  (void)len;
  *out = malloc(4); /* freed by the executor on failure */
  *out_len = 4;
  return -ERANGE;
}

/* ---- results and errors -------------------------------------------------- */

static void test_threadpool_result_i64(void **state) {
  (void)state;
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(2, &ex), 0);
  fut_cfuture_t *cf;
  assert_int_equal(fut_executor_submit(ex, job_i64, (void *)(intptr_t)77, &cf),
                   0);
  int64_t v = 0;
  assert_int_equal(fut_cfuture_result_i64(cf, FUT_FOREVER, &v), 0);
  assert_int_equal(v, 77);
  fut_cfuture_unref(cf);
  fut_executor_free(ex);
}

static void test_threadpool_result_none(void **state) {
  (void)state;
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(1, &ex), 0);
  fut_cfuture_t *cf;
  assert_int_equal(fut_executor_submit(ex, job_noop, NULL, &cf), 0);
  void *p = (void *)1;
  assert_int_equal(fut_cfuture_result(cf, FUT_FOREVER, &p), 0);
  assert_null(p);
  fut_cfuture_unref(cf);
  fut_executor_free(ex);
}

static void test_threadpool_bytes_job(void **state) {
  (void)state;
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(1, &ex), 0);
  char arg[] = "hello";
  fut_job_t job = fut_job_bytes(bytes_upper, arg, 5);
  fut_cfuture_t *cf;
  assert_int_equal(fut_executor_submit_job(ex, &job, &cf), 0);
  memset(arg, 'x', 5); /* the argument was copied at submit */
  const void *d;
  size_t len;
  assert_int_equal(fut_cfuture_result_bytes(cf, FUT_FOREVER, &d, &len), 0);
  assert_int_equal(len, 5);
  assert_memory_equal(d, "HELLO", 5);
  fut_cfuture_unref(cf);

  /* Owned argument bytes are freed by the pool (ASan checks). */
  char *owned = strdup("abc");
  job = fut_job_bytes(bytes_upper, owned, 3);
  job.data_free = free;
  assert_int_equal(fut_executor_submit_job(ex, &job, &cf), 0);
  assert_int_equal(fut_cfuture_result_bytes(cf, FUT_FOREVER, &d, &len), 0);
  assert_memory_equal(d, "ABC", 3);
  fut_cfuture_unref(cf);

  job = fut_job_bytes(bytes_fail, "", 0);
  assert_int_equal(fut_executor_submit_job(ex, &job, &cf), 0);
  assert_int_equal(fut_cfuture_result(cf, FUT_FOREVER, NULL), -ERANGE);
  fut_cfuture_unref(cf);
  fut_executor_free(ex);
}

static void test_threadpool_error_code(void **state) {
  (void)state;
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(2, &ex), 0);
  fut_cfuture_t *a, *b, *c;
  assert_int_equal(fut_executor_submit(ex, job_fail, NULL, &a), 0);
  assert_int_equal(fut_executor_submit(ex, job_fail_msg, (void *)5, &b), 0);
  assert_int_equal(fut_executor_submit(ex, job_positive, NULL, &c), 0);
  assert_int_equal(fut_cfuture_result(a, FUT_FOREVER, NULL), -ENOENT);
  const char *msg;
  assert_int_equal(fut_cfuture_exception(b, FUT_FOREVER, &msg), -EIO);
  assert_string_equal(msg, "read failed at 5");
  assert_int_equal(fut_cfuture_exception(c, FUT_FOREVER, &msg),
                   FUT_E_JOB_FAILED);
  assert_non_null(strstr(msg, "3"));
  fut_cfuture_unref(a);
  fut_cfuture_unref(b);
  fut_cfuture_unref(c);
  fut_executor_free(ex);
}

static void test_threadpool_bad_args(void **state) {
  (void)state;
  fut_executor_t *ex = (fut_executor_t *)1;
  assert_int_equal(fut_thread_pool_new(0, NULL), -EINVAL);
  assert_int_equal(fut_thread_pool_new(100000, &ex), -EINVAL);
  assert_null(ex);
  assert_int_equal(fut_thread_pool_new(1, &ex), 0);
  fut_cfuture_t *cf;
  assert_int_equal(fut_executor_submit(ex, NULL, NULL, &cf), -EINVAL);
  assert_int_equal(fut_executor_submit(NULL, job_noop, NULL, &cf), -EINVAL);
  assert_int_equal(fut_executor_submit(ex, job_noop, NULL, NULL), -EINVAL);
  fut_job_t both = fut_job_call(job_noop, NULL);
  both.bytes_fn = bytes_upper;
  assert_int_equal(fut_executor_submit_job(ex, &both, &cf), -EINVAL);
  fut_job_t nodata = fut_job_bytes(bytes_upper, NULL, 4);
  assert_int_equal(fut_executor_submit_job(ex, &nodata, &cf), -EINVAL);
  assert_int_equal(fut_executor_shutdown(NULL, true, false, 0), -EINVAL);
  fut_executor_t *other;
  assert_int_equal(fut_executor_new(NULL, NULL, &other), -EINVAL);
  assert_null(other);
  assert_int_equal(fut__thread_pool_nthreads(ex), 0); /* nothing started */
  fut_executor_free(ex);
  fut_executor_free(NULL);
}

static void test_threadpool_alloc_failure(void **state) {
  (void)state;
  fut_executor_t *ex;
  fut__alloc_fail_after(1, false);
  assert_int_equal(fut_thread_pool_new(1, &ex), -ENOMEM);
  fut__alloc_fail_after(0, false);
  assert_int_equal(fut_thread_pool_new(1, &ex), 0);
  fut_cfuture_t *cf = NULL;
  for (int n = 1; n <= 3; n++) {
    fut__alloc_fail_after(n, false);
    int err = fut_executor_submit(ex, job_noop, NULL, &cf);
    fut__alloc_fail_after(0, false);
    if (err == 0) {
      assert_int_equal(fut_cfuture_wait(cf, FUT_FOREVER), 0);
      fut_cfuture_unref(cf);
    } else {
      assert_int_equal(err, -ENOMEM);
    }
  }
  fut_executor_free(ex);
}

/* ---- threads ------------------------------------------------------------- */

static void test_threadpool_threads_on_demand(void **state) {
  (void)state;
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(3, &ex), 0);
  assert_int_equal(fut__thread_pool_nthreads(ex), 0);
  assert_int_equal(count_threads(), baseline);
  struct gate g;
  gate_init(&g);
  enum { N = 6 };
  fut_cfuture_t *cf[N];
  for (int i = 0; i < N; i++)
    assert_int_equal(fut_executor_submit(ex, job_gated, &g, &cf[i]), 0);
  gate_wait_arrived(&g, 3);
  /* Never more than max_workers. */
  assert_int_equal(fut__thread_pool_nthreads(ex), 3);
  assert_int_equal(count_threads(), baseline + 3);
  gate_open(&g);
  assert_int_equal(fut_cfuture_wait_many(cf, N, FUT_CFUTURE_ALL_COMPLETED,
                                         FUT_FOREVER, NULL),
                   N);
  for (int i = 0; i < N; i++)
    fut_cfuture_unref(cf[i]);
  fut_executor_free(ex);
  gate_destroy(&g);
}

static void test_threadpool_idle_worker_reused(void **state) {
  (void)state;
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(8, &ex), 0);
  for (int i = 0; i < 20; i++) {
    fut_cfuture_t *cf;
    assert_int_equal(fut_executor_submit(ex, job_noop, NULL, &cf), 0);
    assert_int_equal(fut_cfuture_wait(cf, FUT_FOREVER), 0);
    fut_cfuture_unref(cf);
    /* The worker completes cf a moment before it is idle again (as in
     * Python): let it get there, bounded. */
    for (int k = 0; k < 1000000 && fut__thread_pool_nidle(ex) == 0; k++)
      sched_yield();
  }
  /* Sequential jobs: the idle worker takes each, no new thread. */
  assert_int_equal(fut__thread_pool_nthreads(ex), 1);
  fut_executor_free(ex);
}

static int job_thread_name(void *arg, fut_cfuture_t *cf) {
  (void)arg;
  char name[32] = "";
  pthread_getname_np(pthread_self(), name, sizeof name);
  return fut_cfuture_set_result_bytes(cf, name, strlen(name));
}

static void test_threadpool_name_prefix(void **state) {
  (void)state;
  fut_thread_pool_opts_t o;
  fut_thread_pool_opts_init(&o);
  o.name_prefix = "reader";
  o.max_workers = 1;
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new_ex(&o, &ex), 0);
  fut_cfuture_t *cf;
  assert_int_equal(fut_executor_submit(ex, job_thread_name, NULL, &cf), 0);
  const void *d;
  size_t len;
  assert_int_equal(fut_cfuture_result_bytes(cf, FUT_FOREVER, &d, &len), 0);
  assert_string_equal(d, "reader_0");
  fut_cfuture_unref(cf);
  fut_executor_free(ex);
}

static void test_threadpool_default_workers(void **state) {
  (void)state;
  size_t n = fut_thread_pool_default_workers();
  assert_true(n >= 5 && n <= 32);
}

static void test_threadpool_several_pools(void **state) {
  (void)state;
  fut_executor_t *a, *b;
  assert_int_equal(fut_thread_pool_new(2, &a), 0);
  assert_int_equal(fut_thread_pool_new(2, &b), 0);
  fut_cfuture_t *fa, *fb;
  assert_int_equal(fut_executor_submit(a, job_i64, (void *)1, &fa), 0);
  assert_int_equal(fut_executor_submit(b, job_i64, (void *)2, &fb), 0);
  int64_t va, vb;
  assert_int_equal(fut_cfuture_result_i64(fa, FUT_FOREVER, &va), 0);
  assert_int_equal(fut_cfuture_result_i64(fb, FUT_FOREVER, &vb), 0);
  assert_int_equal(va + vb, 3);
  fut_executor_shutdown(a, true, false, FUT_FOREVER);
  /* b still serves after a shut down. */
  fut_cfuture_unref(fb);
  assert_int_equal(fut_executor_submit(b, job_i64, (void *)3, &fb), 0);
  assert_int_equal(fut_cfuture_result_i64(fb, FUT_FOREVER, &vb), 0);
  assert_int_equal(vb, 3);
  fut_cfuture_unref(fa);
  fut_cfuture_unref(fb);
  fut_executor_free(a);
  fut_executor_free(b);
}

/* ---- cancellation -------------------------------------------------------- */

static int ran_count;
static pthread_mutex_t ran_lock = PTHREAD_MUTEX_INITIALIZER;

static int job_count(void *arg, fut_cfuture_t *cf) {
  (void)arg;
  (void)cf;
  pthread_mutex_lock(&ran_lock);
  ran_count++;
  pthread_mutex_unlock(&ran_lock);
  return 0;
}

static int get_ran(void) {
  pthread_mutex_lock(&ran_lock);
  int n = ran_count;
  pthread_mutex_unlock(&ran_lock);
  return n;
}

static void test_threadpool_cancel_before_start(void **state) {
  (void)state;
  ran_count = 0;
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(1, &ex), 0);
  struct gate g;
  gate_init(&g);
  fut_cfuture_t *busy, *queued;
  assert_int_equal(fut_executor_submit(ex, job_gated, &g, &busy), 0);
  gate_wait_arrived(&g, 1);
  assert_int_equal(fut_executor_submit(ex, job_count, NULL, &queued), 0);
  assert_true(fut_cfuture_cancel(queued));
  assert_true(fut_cfuture_cancelled(queued));
  assert_int_equal(fut_cfuture_result(queued, 0, NULL), -ECANCELED);
  gate_open(&g);
  assert_int_equal(fut_cfuture_wait(busy, FUT_FOREVER), 0);
  fut_executor_shutdown(ex, true, false, FUT_FOREVER);
  assert_int_equal(get_ran(), 0); /* the cancelled job never ran */
  fut_cfuture_unref(busy);
  fut_cfuture_unref(queued);
  fut_executor_free(ex);
  gate_destroy(&g);
}

static void test_threadpool_cancel_after_start(void **state) {
  (void)state;
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(1, &ex), 0);
  struct gate g;
  gate_init(&g);
  fut_cfuture_t *cf;
  assert_int_equal(fut_executor_submit(ex, job_gated, &g, &cf), 0);
  gate_wait_arrived(&g, 1);
  assert_true(fut_cfuture_running(cf));
  assert_false(fut_cfuture_cancel(cf)); /* a running job is not stopped */
  gate_open(&g);
  int64_t v = 0;
  assert_int_equal(fut_cfuture_result_i64(cf, FUT_FOREVER, &v), 0);
  assert_int_equal(v, 1);
  fut_cfuture_unref(cf);
  fut_executor_free(ex);
  gate_destroy(&g);
}

/* ---- shutdown ------------------------------------------------------------ */

static void test_threadpool_shutdown_wait(void **state) {
  (void)state;
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(2, &ex), 0);
  struct gate g;
  gate_init(&g);
  gate_open(&g);
  enum { N = 10 };
  fut_cfuture_t *cf[N];
  for (int i = 0; i < N; i++)
    assert_int_equal(fut_executor_submit(ex, job_gated, &g, &cf[i]), 0);
  assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_FOREVER), 0);
  assert_true(fut_executor_is_shutdown(ex));
  /* Waiting shutdown: every queued job ran, every thread is gone. */
  for (int i = 0; i < N; i++) {
    assert_int_equal(fut_cfuture_state(cf[i]), FUT_CFUTURE_FINISHED);
    fut_cfuture_unref(cf[i]);
  }
  assert_int_equal(fut__thread_pool_nthreads(ex), 0);
  assert_int_equal(threads_settle(baseline), baseline);
  assert_int_equal(fut_executor_shutdown(ex, true, false, 0), 0); /* again */
  fut_executor_free(ex);
  gate_destroy(&g);
}

static void test_threadpool_shutdown_nowait(void **state) {
  (void)state;
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(1, &ex), 0);
  struct gate g;
  gate_init(&g);
  fut_cfuture_t *a, *b;
  assert_int_equal(fut_executor_submit(ex, job_gated, &g, &a), 0);
  assert_int_equal(fut_executor_submit(ex, job_gated, &g, &b), 0);
  gate_wait_arrived(&g, 1);
  /* Returns at once although a job is blocked. */
  assert_int_equal(fut_executor_shutdown(ex, false, false, FUT_FOREVER), 0);
  assert_false(fut_cfuture_done(a));
  gate_open(&g);
  /* Without cancel_pending, the queued job still runs. */
  assert_int_equal(fut_cfuture_result(b, FUT_FOREVER, NULL), 0);
  assert_int_equal(fut_cfuture_result(a, FUT_FOREVER, NULL), 0);
  assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_FOREVER), 0);
  fut_cfuture_unref(a);
  fut_cfuture_unref(b);
  fut_executor_free(ex);
  gate_destroy(&g);
}

static void test_threadpool_shutdown_nowait_then_free(void **state) {
  (void)state;
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(1, &ex), 0);
  struct gate g;
  gate_init(&g);
  fut_cfuture_t *a;
  assert_int_equal(fut_executor_submit(ex, job_gated, &g, &a), 0);
  gate_wait_arrived(&g, 1);
  fut_executor_shutdown(ex, false, false, 0);
  /* Freed while its worker still runs: the worker keeps the pool alive. */
  fut_executor_free(ex);
  gate_open(&g);
  assert_int_equal(fut_cfuture_result(a, FUT_FOREVER, NULL), 0);
  fut_cfuture_unref(a);
  gate_destroy(&g); /* the worker passed the gate before completing a */
}

static void test_threadpool_shutdown_cancel_pending(void **state) {
  (void)state;
  ran_count = 0;
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(1, &ex), 0);
  struct gate g;
  gate_init(&g);
  fut_cfuture_t *busy, *q[5];
  assert_int_equal(fut_executor_submit(ex, job_gated, &g, &busy), 0);
  gate_wait_arrived(&g, 1);
  for (int i = 0; i < 5; i++)
    assert_int_equal(fut_executor_submit(ex, job_count, NULL, &q[i]), 0);
  assert_int_equal(fut_executor_shutdown(ex, false, true, 0), 0);
  for (int i = 0; i < 5; i++)
    assert_true(fut_cfuture_cancelled(q[i]));
  assert_false(fut_cfuture_done(busy)); /* the running one goes on */
  gate_open(&g);
  assert_int_equal(fut_executor_shutdown(ex, true, true, FUT_FOREVER), 0);
  assert_int_equal(fut_cfuture_result(busy, 0, NULL), 0);
  assert_int_equal(get_ran(), 0);
  for (int i = 0; i < 5; i++)
    fut_cfuture_unref(q[i]);
  fut_cfuture_unref(busy);
  fut_executor_free(ex);
  gate_destroy(&g);
}

static void test_threadpool_shutdown_timeout_stuck_job(void **state) {
  (void)state;
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(1, &ex), 0);
  struct gate g;
  gate_init(&g);
  fut_cfuture_t *cf;
  assert_int_equal(fut_executor_submit(ex, job_gated, &g, &cf), 0);
  gate_wait_arrived(&g, 1);
  uint64_t t0 = now_ns();
  assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_MS(50)),
                   -ETIMEDOUT);
  uint64_t dt = now_ns() - t0;
  assert_true(dt >= FUT_MS(50));
  assert_true(dt < FUT_SEC(5));
  assert_int_equal(fut__thread_pool_nthreads(ex), 1);
  /* Shut down anyway: no new work. */
  fut_cfuture_t *late;
  assert_int_equal(fut_executor_submit(ex, job_noop, NULL, &late),
                   FUT_E_SHUTDOWN);
  gate_open(&g);
  assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_FOREVER), 0);
  assert_int_equal(fut_cfuture_result(cf, 0, NULL), 0);
  fut_cfuture_unref(cf);
  fut_executor_free(ex);
  gate_destroy(&g);
}

static void test_threadpool_submit_after_shutdown(void **state) {
  (void)state;
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(1, &ex), 0);
  assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_FOREVER), 0);
  fut_cfuture_t *cf = NULL;
  assert_int_equal(fut_executor_submit(ex, job_noop, NULL, &cf),
                   FUT_E_SHUTDOWN);
  assert_null(cf);
  assert_non_null(strstr(fut_last_error(), "shut down"));
  void *args[2] = {NULL, NULL};
  fut_cfuture_t *out[2];
  assert_int_equal(fut_executor_map(ex, job_noop, args, 2, out),
                   FUT_E_SHUTDOWN);
  fut_executor_free(ex);
}

static int job_shutdown_self(void *arg, fut_cfuture_t *cf) {
  (void)cf;
  return fut_executor_shutdown(arg, true, false, FUT_FOREVER);
}

static void test_threadpool_shutdown_from_worker(void **state) {
  (void)state;
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(1, &ex), 0);
  fut_cfuture_t *cf;
  assert_int_equal(fut_executor_submit(ex, job_shutdown_self, ex, &cf), 0);
  assert_int_equal(fut_cfuture_result(cf, FUT_FOREVER, NULL), -EDEADLK);
  fut_cfuture_unref(cf);
  fut_executor_free(ex);
}

static void test_threadpool_free_without_shutdown_waits(void **state) {
  (void)state;
  ran_count = 0;
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(2, &ex), 0);
  for (int i = 0; i < 10; i++) {
    fut_cfuture_t *cf;
    assert_int_equal(fut_executor_submit(ex, job_count, NULL, &cf), 0);
    fut_cfuture_unref(cf); /* fire and forget */
  }
  fut_executor_free(ex); /* shutdown(wait): every job ran */
  assert_int_equal(get_ran(), 10);
}

/* ---- initializer --------------------------------------------------------- */

static int init_fail(void *arg) {
  (void)arg;
  return -EACCES;
}

static void test_threadpool_initializer_failure(void **state) {
  (void)state;
  fut_thread_pool_opts_t o;
  fut_thread_pool_opts_init(&o);
  o.max_workers = 1;
  o.initializer = init_fail;
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new_ex(&o, &ex), 0);
  fut_cfuture_t *cf;
  assert_int_equal(fut_executor_submit(ex, job_noop, NULL, &cf), 0);
  const char *msg;
  assert_int_equal(fut_cfuture_exception(cf, FUT_FOREVER, &msg),
                   FUT_E_BROKEN_POOL);
  assert_non_null(strstr(msg, "EACCES"));
  fut_cfuture_unref(cf);
  fut_cfuture_t *late = NULL;
  assert_int_equal(fut_executor_submit(ex, job_noop, NULL, &late),
                   FUT_E_BROKEN_POOL);
  assert_null(late);
  fut_executor_free(ex);
}

static int init_calls;
static int init_count(void *arg) {
  pthread_mutex_lock(&ran_lock);
  init_calls += (int)(intptr_t)arg;
  pthread_mutex_unlock(&ran_lock);
  return 0;
}

static void test_threadpool_initializer_per_worker(void **state) {
  (void)state;
  init_calls = 0;
  fut_thread_pool_opts_t o;
  fut_thread_pool_opts_init(&o);
  o.max_workers = 3;
  o.initializer = init_count;
  o.initarg = (void *)1;
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new_ex(&o, &ex), 0);
  struct gate g;
  gate_init(&g);
  fut_cfuture_t *cf[3];
  for (int i = 0; i < 3; i++)
    assert_int_equal(fut_executor_submit(ex, job_gated, &g, &cf[i]), 0);
  gate_wait_arrived(&g, 3);
  gate_open(&g);
  fut_executor_shutdown(ex, true, false, FUT_FOREVER);
  pthread_mutex_lock(&ran_lock);
  assert_int_equal(init_calls, 3);
  pthread_mutex_unlock(&ran_lock);
  for (int i = 0; i < 3; i++)
    fut_cfuture_unref(cf[i]);
  fut_executor_free(ex);
  gate_destroy(&g);
}

/* ---- map, wait, as_completed --------------------------------------------- */

static void test_threadpool_map_order(void **state) {
  (void)state;
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(4, &ex), 0);
  enum { N = 50 };
  void *args[N];
  fut_cfuture_t *out[N];
  for (int i = 0; i < N; i++)
    args[i] = (void *)(intptr_t)i;
  assert_int_equal(fut_executor_map(ex, job_square, args, N, out), 0);
  for (int i = 0; i < N; i++) {
    int64_t v = -1;
    assert_int_equal(fut_cfuture_result_i64(out[i], FUT_FOREVER, &v), 0);
    assert_int_equal(v, (int64_t)i * i);
    fut_cfuture_unref(out[i]);
  }
  /* map_jobs mixes bytes jobs in. */
  fut_job_t jobs[2] = {fut_job_bytes(bytes_upper, "ab", 2),
                       fut_job_call(job_i64, (void *)9)};
  assert_int_equal(fut_executor_map_jobs(ex, jobs, 2, out), 0);
  const void *d;
  size_t len;
  assert_int_equal(fut_cfuture_result_bytes(out[0], FUT_FOREVER, &d, &len), 0);
  assert_memory_equal(d, "AB", 2);
  int64_t v;
  assert_int_equal(fut_cfuture_result_i64(out[1], FUT_FOREVER, &v), 0);
  assert_int_equal(v, 9);
  fut_cfuture_unref(out[0]);
  fut_cfuture_unref(out[1]);
  /* A bad job makes map fail as a whole. */
  jobs[1].fn = NULL;
  out[0] = (fut_cfuture_t *)1;
  assert_int_equal(fut_executor_map_jobs(ex, jobs, 2, out), -EINVAL);
  assert_null(out[0]);
  fut_executor_free(ex);
}

static void test_threadpool_wait_and_as_completed(void **state) {
  (void)state;
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(3, &ex), 0);
  struct gate g;
  gate_init(&g);
  fut_cfuture_t *fs[3];
  assert_int_equal(fut_executor_submit(ex, job_gated, &g, &fs[0]), 0);
  assert_int_equal(fut_executor_submit(ex, job_fail, NULL, &fs[1]), 0);
  assert_int_equal(fut_executor_submit(ex, job_gated, &g, &fs[2]), 0);
  bool done[3];
  assert_int_equal(fut_cfuture_wait_many(fs, 3, FUT_CFUTURE_FIRST_EXCEPTION,
                                         FUT_FOREVER, done),
                   1);
  assert_true(done[1]);
  fut_cfuture_as_completed_t *it;
  assert_int_equal(fut_cfuture_as_completed(fs, 3, FUT_FOREVER, &it), 0);
  fut_cfuture_t *got;
  assert_int_equal(fut_cfuture_as_completed_next(it, &got), 0);
  assert_ptr_equal(got, fs[1]); /* the only one done so far */
  gate_open(&g);
  int seen = 0;
  while (fut_cfuture_as_completed_next(it, &got) == 0) {
    assert_true(got == fs[0] || got == fs[2]);
    seen++;
  }
  assert_int_equal(seen, 2);
  fut_cfuture_as_completed_free(it);
  for (int i = 0; i < 3; i++)
    fut_cfuture_unref(fs[i]);
  fut_executor_free(ex);
  gate_destroy(&g);
}

/* ---- user helpers -------------------------------------------------------- */

static void test_threadpool_job_helpers(void **state) {
  (void)state;
  fut_job_t *j;
  fut_job_t src = fut_job_bytes(bytes_upper, "xy", 2);
  assert_int_equal(fut_job_copy(&src, &j), 0);
  assert_ptr_not_equal(j->data, src.data);
  fut_cfuture_t *cf;
  assert_int_equal(fut_cfuture_new(&cf), 0);
  assert_true(fut_job_run(j, cf));
  assert_false(fut_job_run(j, cf)); /* already done: does not run again */
  const void *d;
  size_t len;
  assert_int_equal(fut_cfuture_result_bytes(cf, 0, &d, &len), 0);
  assert_memory_equal(d, "XY", 2);
  fut_cfuture_unref(cf);
  fut_job_free(j);
  assert_int_equal(fut_cfuture_new(&cf), 0);
  fut_cfuture_cancel(cf);
  fut_job_t call = fut_job_call(job_noop, NULL);
  assert_false(fut_job_run(&call, cf));
  fut_cfuture_unref(cf);
  fut_job_t bad = {0};
  assert_int_equal(fut_job_copy(&bad, &j), -EINVAL);
  fut_job_free(NULL);
}

/* ---- regressions: fork, lifetimes, lost wake-ups ------------------------- */

/* Bug: a thread pool used in a forked child hung.  The child has none of
 * the workers, yet the pool still counted them: a submission signalled a
 * "sleeping" worker that does not exist (the job never ran), and freeing
 * the pool waited forever for them to exit.  Now submit fails with
 * FUT_E_FORKED and shutdown and free return at once. */
static void test_threadpool_forked_child_fails_cleanly(void **state) {
  (void)state;
  fut_executor_t *ex = NULL;
  assert_int_equal(fut_thread_pool_new(2, &ex), 0);
  fut_cfuture_t *cf = NULL;
  assert_int_equal(fut_executor_submit(ex, job_noop, NULL, &cf), 0);
  assert_int_equal(fut_cfuture_wait(cf, FUT_SEC(10)), 0);
  fut_cfuture_unref(cf);
  assert_true(fut__thread_pool_nthreads(ex) >= 1);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    fut_cfuture_t *c = NULL;
    int err = fut_executor_submit(ex, job_noop, NULL, &c);
    if (err != FUT_E_FORKED || c != NULL)
      _exit(2);
    if (!strstr(fut_last_error(), "fork"))
      _exit(3);
    if (!fut__thread_pool_forked(ex))
      _exit(4);
    if (fut_executor_shutdown(ex, true, true, FUT_FOREVER) != 0)
      _exit(5);
    fut_executor_free(ex);
    _exit(0);
  }
  int st = wait_child(pid);
  assert_int_not_equal(st, -1); /* it hung */
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  assert_false(fut__thread_pool_forked(ex));
  assert_int_equal(fut_executor_submit(ex, job_noop, NULL, &cf), 0);
  assert_int_equal(fut_cfuture_wait(cf, FUT_SEC(10)), 0);
  fut_cfuture_unref(cf);
  fut_executor_free(ex);
}

struct submitter {
  fut_executor_t *ex;
  atomic_int *count;
  int n;
  int failures;
};

static void *submit_thread(void *arg) {
  struct submitter *s = arg;
  for (int i = 0; i < s->n; i++) {
    fut_cfuture_t *cf = NULL;
    if (fut_executor_submit(s->ex, job_add, s->count, &cf) != 0) {
      s->failures++;
      continue;
    }
    /* Waiting on every 8th: idle periods between bursts, so workers go
     * to sleep and must be woken (a lost wake-up times out here). */
    if (i % 8 == 7 && fut_cfuture_wait(cf, FUT_SEC(10)) != 0)
      s->failures++;
    fut_cfuture_unref(cf);
  }
  return NULL;
}

/* Bursts from several submitters while workers spin, sleep and pass the
 * wake-up on: every job runs, none waits for a worker that never comes. */
static void test_threadpool_no_lost_wakeup_stress(void **state) {
  (void)state;
  enum { T = 3, PER = 3000 };
  for (size_t max = 1; max <= 4; max += 3) {
    fut_executor_t *ex = NULL;
    assert_int_equal(fut_thread_pool_new(max, &ex), 0);
    atomic_int count;
    atomic_init(&count, 0);
    pthread_t th[T];
    struct submitter s[T];
    for (int t = 0; t < T; t++) {
      s[t] = (struct submitter){ex, &count, PER, 0};
      assert_int_equal(pthread_create(&th[t], NULL, submit_thread, &s[t]), 0);
    }
    for (int t = 0; t < T; t++) {
      pthread_join(th[t], NULL);
      assert_int_equal(s[t].failures, 0);
    }
    assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_SEC(20)), 0);
    assert_int_equal(atomic_load(&count), T * PER);
    fut_executor_free(ex);
  }
}

/* Submissions go on a lock-free stack that workers move into the FIFO:
 * with one worker, jobs still start in submission order. */
struct order {
  atomic_int next;
  int seen[256];
};

struct order_arg {
  struct order *o;
  int idx;
};

static int job_record(void *arg, fut_cfuture_t *cf) {
  (void)cf;
  struct order_arg *a = arg;
  a->o->seen[atomic_fetch_add(&a->o->next, 1)] = a->idx;
  return 0;
}

static void test_threadpool_fifo_order(void **state) {
  (void)state;
  enum { N = 256 };
  fut_executor_t *ex = NULL;
  assert_int_equal(fut_thread_pool_new(1, &ex), 0);
  struct order o;
  atomic_init(&o.next, 0);
  struct order_arg args[N];
  fut_cfuture_t *cfs[N];
  for (int i = 0; i < N; i++) {
    args[i] = (struct order_arg){&o, i};
    assert_int_equal(fut_executor_submit(ex, job_record, &args[i], &cfs[i]), 0);
  }
  for (int i = 0; i < N; i++) {
    assert_int_equal(fut_cfuture_wait(cfs[i], FUT_SEC(20)), 0);
    fut_cfuture_unref(cfs[i]);
  }
  assert_int_equal(atomic_load(&o.next), N);
  for (int i = 0; i < N; i++)
    assert_int_equal(o.seen[i], i);
  fut_executor_free(ex);
}

struct racer {
  fut_executor_t *ex;
  atomic_int *count;
  fut_cfuture_t *cfs[2000];
  int accepted, refused, other;
};

static void *race_thread(void *arg) {
  struct racer *r = arg;
  for (int i = 0; i < 2000; i++) {
    fut_cfuture_t *cf = NULL;
    int err = fut_executor_submit(r->ex, job_add, r->count, &cf);
    if (err == 0)
      r->cfs[r->accepted++] = cf;
    else if (err == FUT_E_SHUTDOWN)
      r->refused++;
    else
      r->other++;
  }
  return NULL;
}

/* Submissions racing with shutdown (with and without cancel_futures):
 * each is refused, or its job runs or is cancelled; none is left pending
 * once shutdown(wait) and the submitters are done. */
static void test_threadpool_submit_races_shutdown(void **state) {
  (void)state;
  enum { T = 3 };
  for (int round = 0; round < 6; round++) {
    bool cancel = round % 2;
    fut_executor_t *ex = NULL;
    assert_int_equal(fut_thread_pool_new(2, &ex), 0);
    atomic_int count;
    atomic_init(&count, 0);
    static struct racer r[T];
    pthread_t th[T];
    for (int t = 0; t < T; t++) {
      r[t] = (struct racer){.ex = ex, .count = &count};
      assert_int_equal(pthread_create(&th[t], NULL, race_thread, &r[t]), 0);
    }
    /* Let some submissions in first (a round may also shut down before
     * any). */
    for (int spins = 0; spins < round * 200; spins++)
      sched_yield();
    assert_int_equal(fut_executor_shutdown(ex, true, cancel, FUT_SEC(20)), 0);
    int ran = 0, cancelled = 0;
    for (int t = 0; t < T; t++) {
      pthread_join(th[t], NULL);
      assert_int_equal(r[t].other, 0);
      assert_int_equal(r[t].accepted + r[t].refused, 2000);
      for (int i = 0; i < r[t].accepted; i++) {
        fut_cfuture_t *cf = r[t].cfs[i];
        assert_true(fut_cfuture_done(cf));
        if (fut_cfuture_cancelled(cf))
          cancelled++;
        else
          ran++;
        fut_cfuture_unref(cf);
      }
    }
    assert_int_equal(atomic_load(&count), ran);
    if (!cancel)
      assert_int_equal(cancelled, 0);
    fut_executor_free(ex);
  }
}

static _Atomic(fut_executor_t *) self_pool;
static atomic_bool test_dropped; /* the test let go of its reference */

/* Drops the last reference to its own pool, from a worker, once the test
 * (which must hold one while it submits) has dropped its own. */
static int job_free_own_pool(void *arg, fut_cfuture_t *cf) {
  (void)arg;
  (void)cf;
  uint64_t end = fut__now() + FUT_SEC(10);
  while (!atomic_load(&test_dropped) && fut__now() < end)
    sched_yield();
  fut_executor_free(atomic_exchange(&self_pool, NULL));
  return 0;
}

static void free_pool_cb(fut_cfuture_t *cf, void *arg) {
  (void)cf;
  fut_executor_free(arg);
}

/* A pool freed by its last reference from inside one of its own jobs, or
 * from a completion callback running in its worker, neither deadlocks nor
 * frees memory the worker still uses; queued jobs still finish. */
static void test_threadpool_freed_from_own_job_or_callback(void **state) {
  (void)state;
  for (int round = 0; round < 50; round++) {
    fut_executor_t *ex = NULL;
    assert_int_equal(fut_thread_pool_new(2, &ex), 0);
    atomic_int n;
    atomic_init(&n, 0);
    fut_cfuture_t *cfs[4];
    for (int i = 0; i < 3; i++)
      assert_int_equal(fut_executor_submit(ex, job_add, &n, &cfs[i]), 0);
    if (round % 2) {
      atomic_store(&test_dropped, false);
      atomic_store(&self_pool, fut_executor_ref(ex));
      assert_int_equal(
          fut_executor_submit(ex, job_free_own_pool, NULL, &cfs[3]), 0);
      fut_executor_free(ex); /* not the last: the job holds one */
      atomic_store(&test_dropped, true);
    } else {
      assert_int_equal(fut_executor_submit(ex, job_noop, NULL, &cfs[3]), 0);
      /* Takes over the test's reference; may run here at once. */
      assert_int_equal(fut_cfuture_add_done_callback(cfs[3], free_pool_cb, ex),
                       0);
    }
    for (int i = 0; i < 4; i++) {
      assert_int_equal(fut_cfuture_wait(cfs[i], FUT_SEC(10)), 0);
      fut_cfuture_unref(cfs[i]);
    }
    assert_int_equal(atomic_load(&n), 3);
  }
}

/* shutdown(wait=false) then free while jobs run and more are queued: the
 * queued ones still run, the last worker out frees the pool. */
static void test_threadpool_shutdown_nowait_free_while_running(void **state) {
  (void)state;
  for (int round = 0; round < 100; round++) {
    fut_executor_t *ex = NULL;
    assert_int_equal(fut_thread_pool_new(1 + round % 3, &ex), 0);
    atomic_int n;
    atomic_init(&n, 0);
    fut_cfuture_t *cfs[16];
    for (int i = 0; i < 16; i++)
      assert_int_equal(fut_executor_submit(ex, job_add, &n, &cfs[i]), 0);
    assert_int_equal(fut_executor_shutdown(ex, false, round % 4 == 0, 0), 0);
    fut_executor_free(ex);
    int ran = 0;
    for (int i = 0; i < 16; i++) {
      assert_int_equal(fut_cfuture_wait(cfs[i], FUT_SEC(10)), 0);
      ran += !fut_cfuture_cancelled(cfs[i]);
      fut_cfuture_unref(cfs[i]);
    }
    assert_int_equal(atomic_load(&n), ran);
    if (round % 4)
      assert_int_equal(ran, 16);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_threadpool_result_i64),
      T(test_threadpool_result_none),
      T(test_threadpool_bytes_job),
      T(test_threadpool_error_code),
      T(test_threadpool_bad_args),
      T(test_threadpool_alloc_failure),
      T(test_threadpool_threads_on_demand),
      T(test_threadpool_idle_worker_reused),
      T(test_threadpool_name_prefix),
      T(test_threadpool_default_workers),
      T(test_threadpool_several_pools),
      T(test_threadpool_cancel_before_start),
      T(test_threadpool_cancel_after_start),
      T(test_threadpool_shutdown_wait),
      T(test_threadpool_shutdown_nowait),
      T(test_threadpool_shutdown_nowait_then_free),
      T(test_threadpool_shutdown_cancel_pending),
      T(test_threadpool_shutdown_timeout_stuck_job),
      T(test_threadpool_submit_after_shutdown),
      T(test_threadpool_shutdown_from_worker),
      T(test_threadpool_free_without_shutdown_waits),
      T(test_threadpool_initializer_failure),
      T(test_threadpool_initializer_per_worker),
      T(test_threadpool_map_order),
      T(test_threadpool_wait_and_as_completed),
      T(test_threadpool_job_helpers),
      T(test_threadpool_forked_child_fails_cleanly),
      T(test_threadpool_no_lost_wakeup_stress),
      T(test_threadpool_fifo_order),
      T(test_threadpool_submit_races_shutdown),
      T(test_threadpool_freed_from_own_job_or_callback),
      T(test_threadpool_shutdown_nowait_free_while_running),
  };
  warm_up_threads();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
