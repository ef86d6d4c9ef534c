/* wrap_future and run_in_executor: concurrent futures delivered to a loop
 * in batches, cancellation across the boundary, late results dropped, the
 * default executor, custom and user-written executors, loop close with
 * completions in flight.  Regressions: the default executor in a forked
 * child and when replaced, many completing threads, a doorbell that could
 * not be queued (out of memory). */
#include "exec/internal.h"
#include "exec_helpers.h"

#include <stdio.h>
#include <string.h>

#define T(name)                                                                \
  cmocka_unit_test_setup_teardown(name, threads_setup, threads_teardown)

static int job_i64(void *arg, fut_cfuture_t *cf) {
  return fut_cfuture_set_result_i64(cf, (int64_t)(intptr_t)arg);
}

static int job_noop(void *arg, fut_cfuture_t *cf) {
  (void)arg;
  (void)cf;
  return 0;
}

static int job_gated(void *arg, fut_cfuture_t *cf) {
  gate_pass(arg);
  return fut_cfuture_set_result_i64(cf, 1);
}

static int frees;
static void count_free(void *p) {
  __atomic_fetch_add(&frees, 1, __ATOMIC_SEQ_CST);
  free(p);
}

static int job_gated_ptr(void *arg, fut_cfuture_t *cf) {
  gate_pass(arg);
  return fut_cfuture_set_result(cf, strdup("late"), count_free);
}

static int job_thread_name(void *arg, fut_cfuture_t *cf) {
  (void)arg;
  char name[32] = "";
  pthread_getname_np(pthread_self(), name, sizeof name);
  return fut_cfuture_set_result_bytes(cf, name, strlen(name));
}

static int bytes_rev(const void *data, size_t len, void **out,
                     size_t *out_len) {
  char *o = malloc(len ? len : 1);
  if (!o)
    return -ENOMEM;
  for (size_t i = 0; i < len; i++)
    o[i] = ((const char *)data)[len - 1 - i];
  *out = o;
  *out_len = len;
  return 0;
}

struct completer {
  fut_cfuture_t *cf;
  int kind; /* 0 i64, 1 ptr, 2 bytes, 3 exception */
  void *ptr;
};

static void *complete_main(void *arg) {
  struct completer *c = arg;
  switch (c->kind) {
  case 0:
    fut_cfuture_set_result_i64(c->cf, -5);
    break;
  case 1:
    fut_cfuture_set_result(c->cf, c->ptr, free);
    break;
  case 2:
    fut_cfuture_set_result_bytes(c->cf, "\x00\x01z", 3);
    break;
  default:
    fut_cfuture_set_exception(c->cf, -EPIPE, "pipe %s", "gone");
    break;
  }
  return NULL;
}

/* Registered after fut_wrap_future's own callback, so it runs after it in
 * the completing thread: once every one ran, every completion is in the
 * inbox (waiters wake before callbacks run, as in Python). */
static void after_wrap_cb(fut_cfuture_t *cf, void *arg) {
  (void)cf;
  gate_pass(arg);
}

/* ---- wrap_future --------------------------------------------------------- */

static void test_wrap_future_result_kinds(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  for (int kind = 0; kind < 4; kind++) {
    fut_cfuture_t *cf;
    assert_int_equal(fut_cfuture_new(&cf), 0);
    fut_t *f;
    assert_int_equal(fut_wrap_future(loop, cf, &f), 0);
    struct completer c = {cf, kind, kind == 1 ? strdup("ptr") : NULL};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, complete_main, &c), 0);
    int rc = fut_loop_run_until_complete(loop, f);
    pthread_join(t, NULL);
    if (kind == 0) {
      int64_t v;
      assert_int_equal(rc, 0);
      assert_int_equal(fut_result_i64(f, &v), 0);
      assert_int_equal(v, -5);
    } else if (kind == 1) {
      void *p;
      assert_int_equal(fut_result(f, &p), 0);
      assert_ptr_equal(p, c.ptr); /* shared, not copied */
      /* The loop future keeps cf (and so the pointer) alive. */
      fut_cfuture_unref(cf);
      cf = NULL;
      assert_string_equal(p, "ptr");
    } else if (kind == 2) {
      const void *d;
      size_t len;
      assert_int_equal(fut_result_bytes(f, &d, &len), 0);
      assert_int_equal(len, 3);
      assert_memory_equal(d, "\x00\x01z", 3);
    } else {
      const char *msg;
      assert_int_equal(rc, -EPIPE);
      assert_int_equal(fut_exception(f, &msg), -EPIPE);
      assert_string_equal(msg, "pipe gone");
    }
    fut_unref(f);
    fut_cfuture_unref(cf);
  }
  fx_loop_free_clean(loop);
}

static void test_wrap_future_already_done(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  fut_cfuture_t *cf;
  assert_int_equal(fut_cfuture_new(&cf), 0);
  fut_cfuture_set_result_i64(cf, 3);
  fut_t *f;
  assert_int_equal(fut_wrap_future(loop, cf, &f), 0);
  assert_false(fut_done(f)); /* delivered on the loop, never inline */
  assert_int_equal(fut_loop_run_until_complete(loop, f), 0);
  int64_t v;
  assert_int_equal(fut_result_i64(f, &v), 0);
  assert_int_equal(v, 3);
  fut_unref(f);
  fut_cfuture_unref(cf);
  fx_loop_free_clean(loop);
}

static void test_wrap_future_cancelled_cfuture(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  fut_cfuture_t *cf;
  assert_int_equal(fut_cfuture_new(&cf), 0);
  fut_t *f;
  assert_int_equal(fut_wrap_future(loop, cf, &f), 0);
  assert_true(fut_cfuture_cancel(cf));
  assert_int_equal(fut_loop_run_until_complete(loop, f), -ECANCELED);
  assert_true(fut_cancelled(f));
  fut_unref(f);
  fut_cfuture_unref(cf);
  fx_loop_free_clean(loop);
}

static void test_wrap_future_bad_args(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  fut_cfuture_t *cf;
  assert_int_equal(fut_cfuture_new(&cf), 0);
  fut_t *f = (fut_t *)1;
  assert_int_equal(fut_wrap_future(NULL, cf, &f), -EINVAL);
  assert_null(f);
  assert_int_equal(fut_wrap_future(loop, NULL, &f), -EINVAL);
  assert_int_equal(fut_wrap_future(loop, cf, NULL), -EINVAL);
  fut__alloc_fail_after(1, true);
  int err = fut_wrap_future(loop, cf, &f);
  fut__alloc_fail_after(0, false);
  assert_int_equal(err, -ENOMEM);
  fut_loop_close(loop);
  assert_int_equal(fut_wrap_future(loop, cf, &f), FUT_E_CLOSED);
  fut_cfuture_unref(cf);
  fx_loop_free_clean(loop);
}

static void noop_cf_cb(fut_cfuture_t *cf, void *arg) {
  (void)cf;
  (void)arg;
}

static void test_wrap_future_alloc_failure(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  fut_cfuture_t *a, *b;
  assert_int_equal(fut_cfuture_new(&a), 0);
  assert_int_equal(fut_cfuture_new(&b), 0);
  fut_t *fa, *fb = (fut_t *)1;
  assert_int_equal(fut_wrap_future(loop, a, &fa), 0); /* state exists */
  /* b's inline callback slot is taken: the wrap's registration needs
   * memory, and fails. */
  assert_int_equal(fut_cfuture_add_done_callback(b, noop_cf_cb, NULL), 0);
  fut__alloc_fail_after(1, false);
  int err = fut_wrap_future(loop, b, &fb);
  fut__alloc_fail_after(0, false);
  assert_int_equal(err, -ENOMEM);
  assert_null(fb);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.live_futures, 1); /* only fa */
  assert_int_equal(fut_cfuture_set_result(b, NULL, NULL), 0);
  fut_cfuture_unref(b);
  /* run_in_executor: the job's cfuture cannot be made: nothing queued. */
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(1, &ex), 0);
  fut__alloc_fail_after(1, false);
  err = fut_run_in_executor(loop, ex, job_noop, NULL, &fb);
  fut__alloc_fail_after(0, false);
  assert_int_equal(err, -ENOMEM);
  assert_null(fb);
  fut_executor_free(ex);
  /* A wrapper when the free list is empty and no chunk can be had: each
   * wrap gets a cfuture of its own, whose inline callback slot needs no
   * memory, so the only allocation left is a new chunk of wrappers. */
  enum { LIVE = 400 };
  static fut_t *many[LIVE];
  static fut_cfuture_t *cfs[LIVE];
  int nlive = 0;
  for (; nlive < LIVE; nlive++) {
    assert_int_equal(fut_cfuture_new(&cfs[nlive]), 0);
    fut__alloc_fail_after(1, false);
    err = fut_wrap_future(loop, cfs[nlive], &many[nlive]);
    fut__alloc_fail_after(0, false);
    if (err)
      break;
  }
  assert_int_equal(err, -ENOMEM); /* a chunk was needed within LIVE */
  assert_true(nlive > 0 && nlive < LIVE);
  fut_cfuture_unref(cfs[nlive]);
  for (int i = 0; i < nlive; i++) {
    fut_cfuture_set_result(cfs[i], NULL, NULL);
    assert_int_equal(fut_loop_run_until_complete(loop, many[i]), 0);
    fut_unref(many[i]);
    fut_cfuture_unref(cfs[i]);
  }
  fut_cfuture_set_result(a, NULL, NULL);
  assert_int_equal(fut_loop_run_until_complete(loop, fa), 0);
  fut_unref(fa);
  fut_cfuture_unref(a);
  fx_loop_free_clean(loop);
}

/* Many completions while the loop sleeps: one thread-safe call, one drain. */
static void test_wrap_future_batching(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(4, &ex), 0);
  struct gate g;
  gate_init(&g);
  enum { N = 200 };
  fut_cfuture_t *cf[N];
  fut_t *f[N];
  struct gate pushed;
  gate_init(&pushed);
  gate_open(&pushed);
  for (int i = 0; i < N; i++) {
    assert_int_equal(fut_executor_submit(ex, job_gated, &g, &cf[i]), 0);
    assert_int_equal(fut_wrap_future(loop, cf[i], &f[i]), 0);
    assert_int_equal(
        fut_cfuture_add_done_callback(cf[i], after_wrap_cb, &pushed), 0);
  }
  gate_open(&g);
  gate_wait_arrived(&pushed, N);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.threadsafe, 1); /* one doorbell for N completions */
  uint64_t drains, delivered;
  for (int i = 0; i < N; i++)
    assert_int_equal(fut_loop_run_until_complete(loop, f[i]), 0);
  fut__executor_counters(loop, &drains, &delivered);
  assert_int_equal(drains, 1);
  assert_int_equal(delivered, N);
  for (int i = 0; i < N; i++) {
    fut_unref(f[i]);
    fut_cfuture_unref(cf[i]);
  }
  fut_executor_free(ex);
  gate_destroy(&g);
  gate_destroy(&pushed);
  fx_loop_free_clean(loop);
}

static void test_wrap_future_cancel_cancels_pending_job(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(1, &ex), 0);
  struct gate g;
  gate_init(&g);
  fut_cfuture_t *busy, *queued;
  assert_int_equal(fut_executor_submit(ex, job_gated, &g, &busy), 0);
  gate_wait_arrived(&g, 1);
  assert_int_equal(fut_executor_submit(ex, job_gated, &g, &queued), 0);
  fut_t *f;
  assert_int_equal(fut_wrap_future(loop, queued, &f), 0);
  assert_true(fut_cancel(f, "stop"));
  assert_true(fut_cfuture_cancelled(queued)); /* not started: stopped */
  gate_open(&g);
  fut_executor_shutdown(ex, true, false, FUT_FOREVER);
  assert_int_equal(gate_count(&g, &g.passed), 1); /* it never ran */
  assert_int_equal(fut_loop_run_until_complete(loop, f), -ECANCELED);
  /* The cancellation still crosses the inbox: let it drain. */
  uint64_t drains = 0, delivered = 0;
  while (delivered == 0) {
    assert_int_equal(fut_loop_run_once(loop, FUT_MS(100)), 0);
    fut__executor_counters(loop, &drains, &delivered);
  }
  fut_unref(f);
  fut_cfuture_unref(busy);
  fut_cfuture_unref(queued);
  fut_executor_free(ex);
  gate_destroy(&g);
  fx_loop_free_clean(loop);
}

static void test_wrap_future_late_result_dropped(void **state) {
  (void)state;
  frees = 0;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(1, &ex), 0);
  struct gate g;
  gate_init(&g);
  fut_cfuture_t *cf;
  assert_int_equal(fut_executor_submit(ex, job_gated_ptr, &g, &cf), 0);
  fut_t *f;
  assert_int_equal(fut_wrap_future(loop, cf, &f), 0);
  gate_wait_arrived(&g, 1);
  assert_true(fut_cancel(f, NULL));     /* the loop future is cancelled... */
  assert_true(fut_cfuture_running(cf)); /* ...the running job is not */
  gate_open(&g);
  assert_int_equal(fut_cfuture_wait(cf, FUT_FOREVER), 0);
  assert_int_equal(fut_cfuture_result(cf, 0, NULL), 0);
  /* Deliver: the late result is dropped, the loop future stays cancelled. */
  uint64_t drains = 0, delivered = 0;
  while (delivered == 0) {
    assert_int_equal(fut_loop_run_once(loop, FUT_MS(100)), 0);
    fut__executor_counters(loop, &drains, &delivered);
  }
  assert_true(fut_cancelled(f));
  assert_int_equal(fut_result(f, NULL), -ECANCELED);
  fut_unref(f);
  assert_int_equal(__atomic_load_n(&frees, __ATOMIC_SEQ_CST), 0);
  fut_cfuture_unref(cf);
  fut_executor_free(ex);
  /* The result was freed exactly once, with its cfuture. */
  assert_int_equal(__atomic_load_n(&frees, __ATOMIC_SEQ_CST), 1);
  gate_destroy(&g);
  fx_loop_free_clean(loop);
}

/* Closing the loop while a job runs: nothing leaks, the late completion
 * finds the loop gone and does nothing. */
static void test_wrap_future_loop_close_inflight(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(1, &ex), 0);
  struct gate g;
  gate_init(&g);
  fut_t *f;
  assert_int_equal(fut_run_in_executor(loop, ex, job_gated, &g, &f), 0);
  gate_wait_arrived(&g, 1);
  fut_unref(f);
  assert_int_equal(fut_loop_close(loop), 0);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.live_futures, 0);
  assert_int_equal(fut_loop_free(loop), 0);
  gate_open(&g);
  fut_executor_free(ex); /* waits: the job completes after the loop */
  gate_destroy(&g);
}

/* Closing the loop with a drain queued but not run: its reference is
 * released by close (fut__register_release). */
static void test_wrap_future_loop_close_completion_queued(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(2, &ex), 0);
  fut_cfuture_t *cf[3];
  fut_t *f[3];
  struct gate pushed;
  gate_init(&pushed);
  gate_open(&pushed);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(fut_executor_submit(ex, job_i64, (void *)7, &cf[i]), 0);
    assert_int_equal(fut_wrap_future(loop, cf[i], &f[i]), 0);
    assert_int_equal(
        fut_cfuture_add_done_callback(cf[i], after_wrap_cb, &pushed), 0);
  }
  gate_wait_arrived(&pushed, 3);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  /* One drain queued for the three: through the door when a worker
   * completed first, or straight in the ready queue when a job was done
   * before fut_wrap_future and its completion ran on this thread, the
   * loop's own (call_soon_threadsafe from the loop's thread joins the
   * ready queue). */
  assert_int_equal(st.threadsafe + st.ready, 1);
  assert_int_equal(fut_loop_close(loop), 0);
  for (int i = 0; i < 3; i++) {
    assert_false(fut_done(f[i])); /* never delivered */
    fut_unref(f[i]);
    fut_cfuture_unref(cf[i]);
  }
  fut_executor_free(ex);
  gate_destroy(&pushed);
  fx_loop_free_clean(loop);
}

/* ---- run_in_executor ----------------------------------------------------- */

static void test_run_in_executor_default(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  assert_int_equal(count_threads(), baseline); /* created lazily */
  fut_t *f;
  assert_int_equal(fut_run_in_executor(loop, NULL, job_i64, (void *)11, &f), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, f), 0);
  int64_t v;
  assert_int_equal(fut_result_i64(f, &v), 0);
  assert_int_equal(v, 11);
  fut_unref(f);
  assert_true(count_threads() > baseline);
  /* Closing the loop shuts the default executor down and joins it. */
  fx_loop_free_clean(loop);
  assert_int_equal(threads_settle(baseline), baseline);
}

static void test_run_in_executor_custom_pool(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  fut_thread_pool_opts_t o;
  fut_thread_pool_opts_init(&o);
  o.name_prefix = "custom";
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new_ex(&o, &ex), 0);
  fut_t *f;
  assert_int_equal(fut_run_in_executor(loop, ex, job_thread_name, NULL, &f), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, f), 0);
  const void *d;
  size_t len;
  assert_int_equal(fut_result_bytes(f, &d, &len), 0);
  assert_int_equal(strncmp(d, "custom_", 7), 0);
  fut_unref(f);
  fut_job_t job = fut_job_bytes(bytes_rev, "abc", 3);
  assert_int_equal(fut_run_in_executor_job(loop, ex, &job, &f), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, f), 0);
  assert_int_equal(fut_result_bytes(f, &d, &len), 0);
  assert_memory_equal(d, "cba", 3);
  fut_unref(f);
  fut_executor_free(ex);
  fx_loop_free_clean(loop);
}

static void test_run_in_executor_many(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(3, &ex), 0);
  enum { N = 2000 };
  static fut_t *f[N];
  for (int i = 0; i < N; i++)
    assert_int_equal(
        fut_run_in_executor(loop, ex, job_i64, (void *)(intptr_t)i, &f[i]), 0);
  for (int i = 0; i < N; i++) {
    assert_int_equal(fut_loop_run_until_complete(loop, f[i]), 0);
    int64_t v;
    assert_int_equal(fut_result_i64(f[i], &v), 0);
    assert_int_equal(v, i);
    fut_unref(f[i]);
  }
  uint64_t drains, delivered;
  fut__executor_counters(loop, &drains, &delivered);
  assert_int_equal(delivered, N);
  assert_true(drains <= delivered);
  fut_executor_free(ex);
  fx_loop_free_clean(loop);
}

/* A user-written executor: one thread per job, through the public vtable. */
struct tpj {
  pthread_mutex_t m;
  pthread_t threads[64]; /* guarded by m */
  int n;                 /* guarded by m */
  int joined;            /* guarded by m */
};

struct tpj_run {
  fut_job_t *job;
  fut_cfuture_t *cf;
};

static void *tpj_main(void *arg) {
  struct tpj_run *r = arg;
  fut_job_run(r->job, r->cf);
  fut_cfuture_unref(r->cf);
  fut_job_free(r->job);
  free(r);
  return NULL;
}

static int tpj_submit(void *self, const fut_job_t *job, fut_cfuture_t **out) {
  struct tpj *x = self;
  struct tpj_run *r = malloc(sizeof *r);
  if (!r)
    return -ENOMEM;
  int err = fut_job_copy(job, &r->job);
  if (err) {
    free(r);
    return err;
  }
  if ((err = fut_cfuture_new(&r->cf))) {
    fut_job_free(r->job);
    free(r);
    return err;
  }
  *out = fut_cfuture_ref(r->cf);
  pthread_mutex_lock(&x->m);
  assert_true(x->n < 64);
  pthread_create(&x->threads[x->n++], NULL, tpj_main, r);
  pthread_mutex_unlock(&x->m);
  return 0;
}

static int tpj_shutdown(void *self, bool wait, bool cancel_pending,
                        uint64_t timeout_ns) {
  (void)cancel_pending;
  (void)timeout_ns;
  struct tpj *x = self;
  if (!wait)
    return 0;
  pthread_mutex_lock(&x->m);
  for (; x->joined < x->n; x->joined++)
    pthread_join(x->threads[x->joined], NULL);
  pthread_mutex_unlock(&x->m);
  return 0;
}

static void tpj_destroy(void *self) {
  struct tpj *x = self;
  pthread_mutex_destroy(&x->m);
  free(x);
}

static const fut_executor_ops_t tpj_ops = {"thread per job", tpj_submit,
                                           tpj_shutdown, tpj_destroy};

static void test_run_in_executor_user_executor(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  struct tpj *x = calloc(1, sizeof *x);
  pthread_mutex_init(&x->m, NULL);
  fut_executor_t *ex;
  assert_int_equal(fut_executor_new(&tpj_ops, x, &ex), 0);
  assert_ptr_equal(fut_executor_self(ex), x);
  fut_t *f[3];
  assert_int_equal(fut_run_in_executor(loop, ex, job_i64, (void *)4, &f[0]), 0);
  fut_job_t job = fut_job_bytes(bytes_rev, "xyz", 3);
  assert_int_equal(fut_run_in_executor_job(loop, ex, &job, &f[1]), 0);
  assert_int_equal(fut_run_in_executor(loop, ex, job_noop, NULL, &f[2]), 0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(fut_loop_run_until_complete(loop, f[i]), 0);
  int64_t v;
  assert_int_equal(fut_result_i64(f[0], &v), 0);
  assert_int_equal(v, 4);
  const void *d;
  size_t len;
  assert_int_equal(fut_result_bytes(f[1], &d, &len), 0);
  assert_memory_equal(d, "zyx", 3);
  for (int i = 0; i < 3; i++)
    fut_unref(f[i]);
  /* Not as the default executor: that must be a thread pool
   * (test_run_in_executor_default_must_be_thread_pool). */
  assert_int_equal(fut_loop_set_default_executor(loop, ex), -EINVAL);
  fut_executor_free(ex);
  fx_loop_free_clean(loop);
}

static void test_run_in_executor_set_default_executor(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  fut_thread_pool_opts_t o;
  fut_thread_pool_opts_init(&o);
  o.name_prefix = "mine";
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new_ex(&o, &ex), 0);
  assert_int_equal(fut_loop_set_default_executor(loop, ex), 0);
  fut_executor_free(ex); /* the loop keeps its own reference */
  fut_t *f;
  assert_int_equal(fut_run_in_executor(loop, NULL, job_thread_name, NULL, &f),
                   0);
  assert_int_equal(fut_loop_run_until_complete(loop, f), 0);
  const void *d;
  assert_int_equal(fut_result_bytes(f, &d, NULL), 0);
  assert_int_equal(strncmp(d, "mine_", 5), 0);
  fut_unref(f);
  assert_int_equal(fut_loop_set_default_executor(loop, NULL), -EINVAL);
  fx_loop_free_clean(loop); /* shuts the pool down */
}

/* asyncio parity: loop.set_default_executor raises TypeError for anything
 * but a ThreadPoolExecutor (base_events.py), since the default executor
 * runs arbitrary functions (DNS lookups among them).  A process pool or a
 * user-written executor is refused with -EINVAL, a message naming the
 * executor, and the loop keeps its previous default. */
static void test_run_in_executor_default_must_be_thread_pool(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  fut_thread_pool_opts_t o;
  fut_thread_pool_opts_init(&o);
  o.name_prefix = "kept";
  fut_executor_t *tp;
  assert_int_equal(fut_thread_pool_new_ex(&o, &tp), 0);
  assert_int_equal(fut_loop_set_default_executor(loop, tp), 0);
  fut_executor_free(tp);
  fut_executor_t *pp;
  assert_int_equal(fut_process_pool_new(1, &pp), 0);
  assert_int_equal(fut_loop_set_default_executor(loop, pp), -EINVAL);
  assert_non_null(strstr(fut_last_error(), "thread pool"));
  struct tpj *x = calloc(1, sizeof *x);
  pthread_mutex_init(&x->m, NULL);
  fut_executor_t *user;
  assert_int_equal(fut_executor_new(&tpj_ops, x, &user), 0);
  assert_int_equal(fut_loop_set_default_executor(loop, user), -EINVAL);
  /* The default is still the thread pool set before. */
  fut_t *f;
  assert_int_equal(fut_run_in_executor(loop, NULL, job_thread_name, NULL, &f),
                   0);
  assert_int_equal(fut_loop_run_until_complete(loop, f), 0);
  const void *d;
  assert_int_equal(fut_result_bytes(f, &d, NULL), 0);
  assert_int_equal(strncmp(d, "kept_", 5), 0);
  fut_unref(f);
  fut_executor_free(user);
  fut_executor_free(pp);
  fx_loop_free_clean(loop);
}

static void test_run_in_executor_after_shutdown_default(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  fut_t *f;
  assert_int_equal(fut_run_in_executor(loop, NULL, job_noop, NULL, &f), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, f), 0);
  fut_unref(f);
  assert_int_equal(fut_loop_shutdown_default_executor(loop, FUT_SEC(5)), 0);
  assert_int_equal(threads_settle(baseline), baseline);
  f = (fut_t *)1;
  assert_int_equal(fut_run_in_executor(loop, NULL, job_noop, NULL, &f),
                   FUT_E_SHUTDOWN);
  assert_null(f);
  /* A custom executor still works. */
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(1, &ex), 0);
  assert_int_equal(fut_run_in_executor(loop, ex, job_noop, NULL, &f), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, f), 0);
  fut_unref(f);
  fut_executor_shutdown(ex, true, false, FUT_FOREVER);
  assert_int_equal(fut_run_in_executor(loop, ex, job_noop, NULL, &f),
                   FUT_E_SHUTDOWN);
  fut_executor_free(ex);
  fx_loop_free_clean(loop);
}

static void test_run_in_executor_shutdown_default_timeout(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  struct gate g;
  gate_init(&g);
  fut_t *f;
  assert_int_equal(fut_run_in_executor(loop, NULL, job_gated, &g, &f), 0);
  gate_wait_arrived(&g, 1);
  uint64_t t0 = now_ns();
  assert_int_equal(fut_loop_shutdown_default_executor(loop, FUT_MS(30)),
                   -ETIMEDOUT);
  assert_true(now_ns() - t0 >= FUT_MS(30));
  gate_open(&g);
  /* The job still completes and is delivered. */
  assert_int_equal(fut_loop_run_until_complete(loop, f), 0);
  fut_unref(f);
  fx_loop_free_clean(loop);
  assert_int_equal(threads_settle(baseline), baseline);
  gate_destroy(&g);
}

/* fut_loop_close does not wait for the default executor's running jobs
 * (asyncio's shutdown(wait=False)): a stuck job cannot hang close.  The job
 * finishes later on its thread and its result is dropped. */
static void test_run_in_executor_close_does_not_wait_default(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  /* Static and never destroyed: the detached worker may still be leaving
   * gate_pass when the test ends. */
  static struct gate g;
  gate_init(&g);
  fut_t *f;
  assert_int_equal(fut_run_in_executor(loop, NULL, job_gated, &g, &f), 0);
  gate_wait_arrived(&g, 1);
  fut_unref(f);
  uint64_t t0 = now_ns();
  assert_int_equal(fut_loop_close(loop), 0); /* the job is still blocked */
  assert_true(now_ns() - t0 < FUT_SEC(1));
  fx_loop_free_clean(loop);
  gate_open(&g);
  assert_int_equal(threads_settle(baseline), baseline);
}

struct wrong_thread_call {
  fut_loop_t *loop;
  int wrap_err, run_err, shutdown_err;
};

static void *call_from_other_thread(void *arg) {
  struct wrong_thread_call *c = arg;
  fut_cfuture_t *cf;
  fut_t *f;
  fut_cfuture_new(&cf);
  c->wrap_err = fut_wrap_future(c->loop, cf, &f);
  c->run_err = fut_run_in_executor(c->loop, NULL, job_noop, NULL, &f);
  c->shutdown_err = fut_loop_shutdown_default_executor(c->loop, 0);
  fut_cfuture_unref(cf);
  return NULL;
}

/* In debug mode the loop-thread-only calls refuse other threads. */
static void test_run_in_executor_wrong_thread(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  fut_loop_set_debug(loop, true);
  struct wrong_thread_call c = {loop, 0, 0, 0};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, call_from_other_thread, &c), 0);
  pthread_join(t, NULL);
  assert_int_equal(c.wrap_err, FUT_E_WRONG_THREAD);
  assert_int_equal(c.run_err, FUT_E_WRONG_THREAD);
  assert_int_equal(c.shutdown_err, FUT_E_WRONG_THREAD);
  fx_loop_free_clean(loop);
}

static void test_run_in_executor_bad_args(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  fut_t *f;
  assert_int_equal(fut_run_in_executor(NULL, NULL, job_noop, NULL, &f),
                   -EINVAL);
  assert_int_equal(fut_run_in_executor(loop, NULL, NULL, NULL, &f), -EINVAL);
  assert_int_equal(fut_run_in_executor(loop, NULL, job_noop, NULL, NULL),
                   -EINVAL);
  fut_job_t bad = {0};
  assert_int_equal(fut_run_in_executor_job(loop, NULL, &bad, &f), -EINVAL);
  assert_int_equal(fut_loop_shutdown_default_executor(NULL, 0), -EINVAL);
  assert_int_equal(count_threads(), baseline); /* nothing was started */
  fut_loop_close(loop);
  assert_int_equal(fut_run_in_executor(loop, NULL, job_noop, NULL, &f),
                   FUT_E_CLOSED);
  assert_int_equal(fut_loop_shutdown_default_executor(loop, 0), 0);
  fx_loop_free_clean(loop);
}

/* ---- regressions: fork, default executor, inbox -------------------------- */

/* The loop's default executor carried into a child by fut_loop_fork is
 * replaced by a fresh pool instead of queueing jobs nobody runs; closing
 * the loop in a child that never used it does not hang either. */
static void test_loop_forked_child_default_executor_restarts(void **state) {
  (void)state;
  fut_loop_t *loop = NULL;
  assert_int_equal(fut_loop_new(&loop), 0);
  atomic_int n;
  atomic_init(&n, 0);
  fut_t *f = NULL;
  assert_int_equal(fut_run_in_executor(loop, NULL, job_add, &n, &f), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, f), 0);
  fut_unref(f);
  fflush(NULL);
  for (int mode = 0; mode < 2; mode++) {
    /* TSan cannot start threads after a multi-threaded fork. */
    if (mode == 0 && UNDER_TSAN)
      continue;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      if (fut_loop_fork(loop) != 0)
        _exit(2);
      if (mode == 0) {
        fut_t *g = NULL;
        if (fut_run_in_executor(loop, NULL, job_add, &n, &g) != 0)
          _exit(3);
        if (fut_loop_run_until_complete(loop, g) != 0)
          _exit(4);
        int64_t v = 0;
        if (fut_result_i64(g, &v) != 0 || v != 7)
          _exit(5);
        fut_unref(g);
        if (fut_loop_shutdown_default_executor(loop, FUT_SEC(10)) != 0)
          _exit(6);
      }
      if (fut_loop_free(loop) != 0)
        _exit(7);
      _exit(0);
    }
    int st = wait_child(pid);
    assert_int_not_equal(st, -1);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
  }
  assert_int_equal(fut_loop_shutdown_default_executor(loop, FUT_SEC(10)), 0);
  fx_loop_free_clean(loop);
}

struct blocker {
  atomic_bool release;  /* the test lets the job finish */
  atomic_bool started;  /* the job is running */
  atomic_bool finished; /* the job returned */
};

/* Waits (bounded, 5 s) for the test to release it. */
static int job_block(void *arg, fut_cfuture_t *cf) {
  (void)cf;
  struct blocker *b = arg;
  atomic_store(&b->started, true);
  uint64_t end = fut__now() + FUT_SEC(5);
  while (!atomic_load(&b->release) && fut__now() < end)
    sched_yield();
  atomic_store(&b->finished, true);
  return 0;
}

/* Bug: fut_loop_set_default_executor freed the old default pool with the
 * loop's last reference, which shut it down with wait: the loop thread
 * blocked until the old pool's jobs were done (a deadlock if one of them
 * waits for the loop).  Now the old pool is let go as a dropped Python
 * executor: its jobs finish on their threads, the call returns at once. */
static void test_executor_set_default_does_not_wait_for_old_jobs(void **state) {
  (void)state;
  fut_loop_t *loop = NULL;
  assert_int_equal(fut_loop_new(&loop), 0);
  struct blocker b;
  atomic_init(&b.release, false);
  atomic_init(&b.started, false);
  atomic_init(&b.finished, false);
  fut_t *f = NULL;
  assert_int_equal(fut_run_in_executor(loop, NULL, job_block, &b, &f), 0);
  uint64_t end = fut__now() + FUT_SEC(10);
  while (!atomic_load(&b.started) && fut__now() < end)
    sched_yield();
  assert_true(atomic_load(&b.started));
  fut_executor_t *ex = NULL;
  assert_int_equal(fut_thread_pool_new(1, &ex), 0);
  assert_int_equal(fut_loop_set_default_executor(loop, ex), 0);
  assert_false(atomic_load(&b.finished)); /* did not wait for the job */
  atomic_store(&b.release, true);
  /* The old pool's job still completes into the loop. */
  assert_int_equal(fut_loop_run_until_complete(loop, f), 0);
  assert_true(fut_done(f) && !fut_cancelled(f));
  fut_unref(f);
  /* And the new one serves. */
  atomic_int n;
  atomic_init(&n, 0);
  assert_int_equal(fut_run_in_executor(loop, NULL, job_add, &n, &f), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, f), 0);
  fut_unref(f);
  assert_int_equal(atomic_load(&n), 1);
  fut_executor_free(ex);
  assert_int_equal(fut_loop_shutdown_default_executor(loop, FUT_SEC(10)), 0);
  fx_loop_free_clean(loop);
}

struct pusher {
  fut_cfuture_t **cfs;
  int from, to;
};

/* Completes its share of the cfutures, in a thread of its own. */
static void *push_thread(void *arg) {
  struct pusher *p = arg;
  for (int i = p->from; i < p->to; i++)
    fut_cfuture_set_result_i64(p->cfs[i], i);
  return NULL;
}

/* Several threads complete wrapped cfutures at once while the loop drains
 * and reuses wrapper blocks: every outcome arrives exactly once and right
 * (a wrapper reused while a completer still pushes would lose or mix
 * them). */
static void test_inbox_many_completers_deliver_each_once(void **state) {
  (void)state;
  enum { N = 2000, T = 4 };
  fut_loop_t *loop = NULL;
  assert_int_equal(fut_loop_new(&loop), 0);
  for (int round = 0; round < 5; round++) {
    static fut_cfuture_t *cfs[N];
    static fut_t *fs[N];
    for (int i = 0; i < N; i++) {
      assert_int_equal(fut_cfuture_new(&cfs[i]), 0);
      assert_int_equal(fut_wrap_future(loop, cfs[i], &fs[i]), 0);
    }
    pthread_t th[T];
    struct pusher ps[T];
    for (int t = 0; t < T; t++) {
      ps[t] = (struct pusher){cfs, t * N / T, (t + 1) * N / T};
      assert_int_equal(pthread_create(&th[t], NULL, push_thread, &ps[t]), 0);
    }
    /* Drains race the pushes; wrappers freed here are reused below. */
    int done = 0;
    uint64_t end = fut__now() + FUT_SEC(20);
    while (done < N && fut__now() < end) {
      fut_loop_run_once(loop, FUT_MS(10));
      for (int i = 0; i < N; i++)
        if (fs[i] && fut_done(fs[i])) {
          int64_t v = -1;
          assert_int_equal(fut_result_i64(fs[i], &v), 0);
          assert_int_equal(v, i);
          fut_unref(fs[i]);
          fs[i] = NULL;
          done++;
        }
    }
    for (int t = 0; t < T; t++)
      pthread_join(th[t], NULL);
    assert_int_equal(done, N);
    for (int i = 0; i < N; i++)
      fut_cfuture_unref(cfs[i]);
  }
  fx_loop_free_clean(loop);
}

/* Makes the library's next allocation fail: in a worker, that is the
 * loop's thread-safe queue growing for the completion's doorbell. */
static int job_then_oom(void *arg, fut_cfuture_t *cf) {
  (void)arg;
  (void)cf;
  fut__alloc_fail_after(1, false);
  return 0;
}

/* Bug: when the completing thread could not queue the drain (the loop's
 * thread-safe queue failed to grow: out of memory), the completion stayed
 * in the inbox with nobody told; the loop slept in epoll_wait forever (or
 * until an unrelated completion).  Now the completer pokes the loop's
 * eventfd, which allocates nothing, and the loop drains an inbox with
 * entries but no drain queued before it blocks. */
static void test_inbox_ring_out_of_memory_not_lost(void **state) {
  (void)state;
  for (int path = 0; path < 2; path++) {
    fut_loop_t *loop = NULL;
    assert_int_equal(fut_loop_new(&loop), 0);
    fut_executor_t *ex = NULL;
    assert_int_equal(fut_thread_pool_new(1, &ex), 0);
    fut_t *f = NULL;
    fut_cfuture_t *cf = NULL;
    /* Warm up: the loop's lazy allocations are made, and after one drain
     * the thread-safe queue is empty again (swapped with a spare of
     * capacity 0), so the next doorbell must allocate. */
    assert_int_equal(fut_run_in_executor(loop, ex, job_noop, NULL, &f), 0);
    assert_int_equal(fut_loop_run_until_complete(loop, f), 0);
    fut_unref(f);
    if (path == 0) {
      assert_int_equal(fut_run_in_executor(loop, ex, job_then_oom, NULL, &f),
                       0);
    } else {
      assert_int_equal(fut_executor_submit(ex, job_then_oom, NULL, &cf), 0);
      assert_int_equal(fut_wrap_future(loop, cf, &f), 0);
    }
    /* Should the loop thread take the failed allocation instead, its
     * run_once fails once and the doorbell works: nothing to check then,
     * but nothing must hang either. */
    for (int i = 0; i < 100 && !fut_done(f); i++) {
      int err = fut_loop_run_once(loop, FUT_MS(50));
      assert_true(err == 0 || err == -ENOMEM);
    }
    fut__alloc_fail_after(0, false);
    assert_true(fut_done(f));
    assert_int_equal(fut_result(f, NULL), 0);
    fut_unref(f);
    fut_cfuture_unref(cf);
    assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_SEC(10)), 0);
    fut_executor_free(ex);
    fx_loop_free_clean(loop);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_wrap_future_result_kinds),
      T(test_wrap_future_already_done),
      T(test_wrap_future_cancelled_cfuture),
      T(test_wrap_future_bad_args),
      T(test_wrap_future_alloc_failure),
      T(test_wrap_future_batching),
      T(test_wrap_future_cancel_cancels_pending_job),
      T(test_wrap_future_late_result_dropped),
      T(test_wrap_future_loop_close_inflight),
      T(test_wrap_future_loop_close_completion_queued),
      T(test_run_in_executor_default),
      T(test_run_in_executor_custom_pool),
      T(test_run_in_executor_many),
      T(test_run_in_executor_user_executor),
      T(test_run_in_executor_set_default_executor),
      T(test_run_in_executor_default_must_be_thread_pool),
      T(test_run_in_executor_after_shutdown_default),
      T(test_run_in_executor_shutdown_default_timeout),
      T(test_run_in_executor_close_does_not_wait_default),
      T(test_run_in_executor_bad_args),
      T(test_run_in_executor_wrong_thread),
      cmocka_unit_test(test_loop_forked_child_default_executor_restarts),
      cmocka_unit_test(test_executor_set_default_does_not_wait_for_old_jobs),
      cmocka_unit_test(test_inbox_many_completers_deliver_each_once),
      cmocka_unit_test(test_inbox_ring_out_of_memory_not_lost),
  };
  warm_up_threads();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
