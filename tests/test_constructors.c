/* One rule for every function with an out parameter (future/errors.h):
 * when the call fails, each pointer it would have written through an out
 * parameter is NULL (numbers 0, flags false, arrays cleared), as long as
 * the out pointer itself is not NULL.  Each test hands a non-NULL sentinel
 * in, provokes a failure (bad arguments, a closed loop, no task, or an
 * allocation failing through fut__alloc_fail_after) and checks *out.
 *
 * asyncio parity: Python has no out parameters (a failing call raises and
 * binds nothing); NULL on failure is the C form of "no object", so a caller
 * that unrefs *out after a failure is always safe. */
#include "fixture.h"

#include <stdlib.h>

#include "base/internal.h"

static char sentinel_byte;
#define SENTINEL ((void *)&sentinel_byte)

/* Runs `call` (which writes `out`) with its k-th allocation failing, for
 * k = 1, 2, ..., until it succeeds; every failure must have left `out`
 * NULL (and returned -ENOMEM).  `cleanup` releases the success. */
#define FAIL_EACH_ALLOC(out, call, cleanup)                                    \
  do {                                                                         \
    int failures_ = 0;                                                         \
    bool ok_ = false;                                                          \
    for (long k_ = 1; k_ < 400 && !ok_; k_++) {                                \
      out = SENTINEL;                                                          \
      fut__alloc_fail_after(k_, false);                                        \
      int rc_ = (call);                                                        \
      fut__alloc_fail_after(0, false);                                         \
      if (rc_ == 0) {                                                          \
        assert_non_null(out);                                                  \
        assert_true(out != SENTINEL);                                          \
        cleanup;                                                               \
        ok_ = true;                                                            \
      } else {                                                                 \
        assert_int_equal(rc_, -ENOMEM);                                        \
        assert_null(out);                                                      \
        failures_++;                                                           \
      }                                                                        \
    }                                                                          \
    assert_true(ok_);                                                          \
    assert_true(failures_ > 0);                                                \
  } while (0)

static fut_loop_t *closed_loop(void) {
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  assert_int_equal(fut_loop_close(loop), 0);
  return loop;
}

static void settle(fut_loop_t *loop) {
  for (int i = 0; i < 8; i++)
    assert_int_equal(fut_loop_run_once(loop, 0), 0);
}

/* ---- loop ---------------------------------------------------------------- */

static void noop(void *arg) { (void)arg; }

/* asyncio parity: new_event_loop() raising binds no loop. */
static void test_constructors_loop_new(void **state) {
  (void)state;
  fut_loop_t *loop;
  FAIL_EACH_ALLOC(loop, fut_loop_new(&loop), fut_loop_free(loop));
}

/* asyncio parity: call_soon / call_later / call_at raising give no
 * handle. */
static void test_constructors_loop_call_handles(void **state) {
  fut_loop_t *loop = *state;
  fut_handle_t *h = SENTINEL;
  assert_int_equal(fut_loop_call_soon(loop, NULL, NULL, &h), -EINVAL);
  assert_null(h);
  h = SENTINEL;
  assert_int_equal(fut_loop_call_later(loop, 1, NULL, NULL, &h), -EINVAL);
  assert_null(h);
  h = SENTINEL;
  assert_int_equal(fut_loop_call_at(loop, 1, NULL, NULL, &h), -EINVAL);
  assert_null(h);
  h = SENTINEL;
  assert_int_equal(fut_loop_call_soon(NULL, noop, NULL, &h), -EINVAL);
  assert_null(h);
  fut_loop_t *closed = closed_loop();
  h = SENTINEL;
  assert_int_equal(fut_loop_call_soon(closed, noop, NULL, &h), FUT_E_CLOSED);
  assert_null(h);
  h = SENTINEL;
  assert_int_equal(fut_loop_call_later(closed, 1, noop, NULL, &h),
                   FUT_E_CLOSED);
  assert_null(h);
  h = SENTINEL;
  assert_int_equal(fut_loop_call_at(closed, 1, noop, NULL, &h), FUT_E_CLOSED);
  assert_null(h);
  assert_int_equal(fut_loop_free(closed), 0);
  /* Out of memory for the handle. */
  FAIL_EACH_ALLOC(h, fut_loop_call_soon(loop, noop, NULL, &h),
                  (fut_handle_cancel(h), fut_handle_unref(h)));
  FAIL_EACH_ALLOC(h, fut_loop_call_later(loop, FUT_SEC(60), noop, NULL, &h),
                  (fut_handle_cancel(h), fut_handle_unref(h)));
  settle(loop);
}

/* ---- futures ------------------------------------------------------------- */

/* asyncio parity: loop.create_future() on a closed loop raises. */
static void test_constructors_future_new(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f = SENTINEL;
  assert_int_equal(fut_new(NULL, &f), -EINVAL);
  assert_null(f);
  fut_loop_t *closed = closed_loop();
  f = SENTINEL;
  assert_int_equal(fut_new(closed, &f), FUT_E_CLOSED);
  assert_null(f);
  assert_int_equal(fut_loop_free(closed), 0);
  FAIL_EACH_ALLOC(f, fut_new(loop, &f), fut_unref(f));
}

/* asyncio parity: Future.result() / exception() raising bind nothing. */
static void test_constructors_future_readers(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  assert_int_equal(fut_new(loop, &f), 0);
  void *p = SENTINEL;
  assert_int_equal(fut_result(f, &p), FUT_E_INVALID_STATE);
  assert_null(p);
  const void *d = SENTINEL;
  size_t len = 7;
  assert_int_equal(fut_result_bytes(f, &d, &len), FUT_E_INVALID_STATE);
  assert_null(d);
  assert_int_equal(len, 0);
  int64_t v = 7;
  assert_int_equal(fut_result_i64(f, &v), FUT_E_INVALID_STATE);
  assert_int_equal(v, 0);
  const char *msg = SENTINEL;
  assert_int_equal(fut_exception(f, &msg), FUT_E_INVALID_STATE);
  assert_null(msg);
  fut_cancel(f, NULL);
  fut_unref(f);
  settle(loop);
}

/* ---- combinators --------------------------------------------------------- */

/* asyncio parity: gather / wait / wait_for / shield / as_completed raising
 * (bad arguments, closed loop, no memory) give no future. */
static void test_constructors_combinators(void **state) {
  fut_loop_t *loop = *state;
  fut_t *a, *out;
  assert_int_equal(fut_new(loop, &a), 0);
  fut_t *fs[2] = {a, NULL};

  out = SENTINEL;
  assert_int_equal(fut_gather(NULL, fs, 1, 0, &out), -EINVAL);
  assert_null(out);
  out = SENTINEL;
  assert_int_equal(fut_gather(loop, fs, 2, 0, &out), -EINVAL);
  assert_null(out);
  out = SENTINEL;
  assert_int_equal(
      fut_wait(loop, fs, 0, FUT_WAIT_ALL_COMPLETED, UINT64_MAX, &out), -EINVAL);
  assert_null(out);
  out = SENTINEL;
  assert_int_equal(fut_wait_for(NULL, 1, &out), -EINVAL);
  assert_null(out);
  out = SENTINEL;
  assert_int_equal(fut_shield(NULL, &out), -EINVAL);
  assert_null(out);
  out = SENTINEL;
  assert_int_equal(fut_as_completed(NULL, fs, 1, UINT64_MAX, &out), -EINVAL);
  assert_null(out);
  out = SENTINEL;
  assert_int_equal(fut_as_completed_next(a, &out), -EINVAL);
  assert_null(out);
  out = SENTINEL;
  assert_int_equal(fut_then(NULL, NULL, NULL, &out), -EINVAL);
  assert_null(out);
  size_t nd = 7, np = 7;
  assert_int_equal(fut_wait_sets(a, NULL, &nd, NULL, &np), -EINVAL);
  assert_int_equal(nd, 0);
  assert_int_equal(np, 0);

  /* A closed loop: its futures are done or gone, so only the loop-taking
   * combinators can be asked. */
  fut_loop_t *closed = closed_loop();
  out = SENTINEL;
  assert_int_equal(fut_gather(closed, NULL, 0, 0, &out), FUT_E_CLOSED);
  assert_null(out);
  out = SENTINEL;
  assert_int_equal(fut_as_completed(closed, NULL, 0, UINT64_MAX, &out),
                   FUT_E_CLOSED);
  assert_null(out);
  assert_int_equal(fut_loop_free(closed), 0);

  /* Out of memory, k-th allocation. */
  FAIL_EACH_ALLOC(out, fut_gather(loop, fs, 1, 0, &out), fut_unref(out));
  FAIL_EACH_ALLOC(
      out, fut_wait(loop, fs, 1, FUT_WAIT_ALL_COMPLETED, FUT_SEC(60), &out),
      (fut_cancel(out, NULL), fut_unref(out)));
  FAIL_EACH_ALLOC(out, fut_wait_for(a, FUT_SEC(60), &out),
                  (fut_unref(out)));
  FAIL_EACH_ALLOC(out, fut_shield(a, &out), fut_unref(out));
  FAIL_EACH_ALLOC(out, fut_as_completed(loop, fs, 1, FUT_SEC(60), &out),
                  (fut_cancel(out, NULL), fut_unref(out)));
  FAIL_EACH_ALLOC(out, fut_then(a, NULL, NULL, &out), fut_unref(out));
  fut_t *ac;
  assert_int_equal(fut_as_completed(loop, fs, 1, UINT64_MAX, &ac), 0);
  /* Next futures come from the loop's slab (no allocation to fail). */
  assert_int_equal(fut_as_completed_next(ac, &out), 0);
  fut_unref(out);
  out = SENTINEL;
  assert_int_equal(fut_as_completed_next(ac, &out), -ENOENT);
  assert_null(out);
  fut_cancel(ac, NULL);
  fut_unref(ac);

  assert_int_equal(fut_set_result(a, NULL, NULL), 0);
  settle(loop);
  fut_unref(a);
  settle(loop);
}

/* ---- tasks --------------------------------------------------------------- */

static int ret0(void *arg) {
  (void)arg;
  return 0;
}

/* asyncio parity: create_task on a closed loop raises, binding nothing. */
static void test_constructors_create_task(void **state) {
  fut_loop_t *loop = *state;
  fut_t *t = SENTINEL;
  assert_int_equal(fut_create_task(NULL, ret0, NULL, NULL, &t), -EINVAL);
  assert_null(t);
  t = SENTINEL;
  assert_int_equal(fut_create_task(loop, NULL, NULL, NULL, &t), -EINVAL);
  assert_null(t);
  fut_loop_t *closed = closed_loop();
  t = SENTINEL;
  assert_int_equal(fut_create_task(closed, ret0, NULL, NULL, &t),
                   FUT_E_CLOSED);
  assert_null(t);
  assert_int_equal(fut_loop_free(closed), 0);
  FAIL_EACH_ALLOC(t, fut_create_task(loop, ret0, NULL, NULL, &t),
                  (fut_loop_run_until_complete(loop, t), fut_unref(t)));
}

/* Inside a task: a timeout scope that cannot be made, and awaits of a
 * failed future. */
static int in_task_checks(void *arg) {
  fut_t *failed = arg;
  fut_timeout_t *to;
  FAIL_EACH_ALLOC(to, fut_timeout_enter(FUT_SEC(60), &to),
                  assert_int_equal(fut_timeout_exit(to, 0), 0));
  void *p = SENTINEL;
  assert_int_equal(fut_await(failed, &p), -EIO);
  assert_null(p);
  int64_t v = 7;
  assert_int_equal(fut_await_i64(failed, &v), -EIO);
  assert_int_equal(v, 0);
  const void *d = SENTINEL;
  size_t len = 7;
  assert_int_equal(fut_await_bytes(failed, &d, &len), -EIO);
  assert_null(d);
  assert_int_equal(len, 0);
  return 0;
}

/* asyncio parity: `x = await f` raising binds nothing; asyncio.timeout()
 * outside a task raises. */
static void test_constructors_task_outs(void **state) {
  fut_loop_t *loop = *state;
  fut_timeout_t *to = SENTINEL;
  assert_int_equal(fut_timeout_enter(FUT_SEC(1), &to), FUT_E_NOT_IN_TASK);
  assert_null(to);
  fut_t *f;
  assert_int_equal(fut_new(loop, &f), 0);
  void *p = SENTINEL;
  assert_int_equal(fut_await(f, &p), FUT_E_NOT_IN_TASK);
  assert_null(p);
  int64_t v = 7;
  assert_int_equal(fut_await_i64(f, &v), FUT_E_NOT_IN_TASK);
  assert_int_equal(v, 0);
  const void *d = SENTINEL;
  size_t len = 7;
  assert_int_equal(fut_await_bytes(f, &d, &len), FUT_E_NOT_IN_TASK);
  assert_null(d);
  assert_int_equal(len, 0);
  assert_int_equal(fut_set_exception(f, -EIO, NULL), 0);
  fut_t *t;
  assert_int_equal(fut_create_task(loop, in_task_checks, f, NULL, &t), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  fut_unref(t);
  fut_unref(f);
  settle(loop);
}

/* asyncio parity: asyncio.run(None) raises.  fut_run's out receives main's
 * task once main ran (its outcome is the return code); a failure before
 * that leaves NULL. */
static void test_constructors_run(void **state) {
  (void)state;
  fut_t *t = SENTINEL;
  assert_int_equal(fut_run(NULL, NULL, &t), -EINVAL);
  assert_null(t);
  FAIL_EACH_ALLOC(t, fut_run(ret0, NULL, &t), fut_unref(t));
}

/* ---- concurrent futures -------------------------------------------------- */

/* asyncio parity (concurrent.futures): Future() raising binds nothing;
 * result(timeout=0) of a pending future raises TimeoutError. */
static void test_constructors_cfuture(void **state) {
  (void)state;
  fut_cfuture_t *cf;
  FAIL_EACH_ALLOC(cf, fut_cfuture_new(&cf), fut_cfuture_unref(cf));
  assert_int_equal(fut_cfuture_new(&cf), 0);
  void *p = SENTINEL;
  assert_int_equal(fut_cfuture_result(cf, 0, &p), -ETIMEDOUT);
  assert_null(p);
  const void *d = SENTINEL;
  size_t len = 7;
  assert_int_equal(fut_cfuture_result_bytes(cf, 0, &d, &len), -ETIMEDOUT);
  assert_null(d);
  assert_int_equal(len, 0);
  int64_t v = 7;
  assert_int_equal(fut_cfuture_result_i64(cf, 0, &v), -ETIMEDOUT);
  assert_int_equal(v, 0);
  const char *msg = SENTINEL;
  assert_int_equal(fut_cfuture_exception(cf, 0, &msg), -ETIMEDOUT);
  assert_null(msg);
  /* wait_many: a NULL entry. */
  fut_cfuture_t *fs[2] = {cf, NULL};
  bool done[2] = {true, true};
  assert_int_equal(
      fut_cfuture_wait_many(fs, 2, FUT_CFUTURE_ALL_COMPLETED, 0, done),
      -EINVAL);
  assert_false(done[0]);
  assert_false(done[1]);
  /* as_completed */
  fut_cfuture_as_completed_t *it = SENTINEL;
  assert_int_equal(fut_cfuture_as_completed(fs, 2, 0, &it), -EINVAL);
  assert_null(it);
  FAIL_EACH_ALLOC(it, fut_cfuture_as_completed(fs, 1, FUT_SEC(60), &it),
                  fut_cfuture_as_completed_free(it));
  fut_cfuture_t *next = SENTINEL;
  assert_int_equal(fut_cfuture_as_completed_next(NULL, &next), -EINVAL);
  assert_null(next);
  assert_int_equal(fut_cfuture_as_completed(fs, 1, 0, &it), 0);
  next = SENTINEL;
  assert_int_equal(fut_cfuture_as_completed_next(it, &next), -ETIMEDOUT);
  assert_null(next);
  fut_cfuture_as_completed_free(it);
  fut_cfuture_unref(cf);
}

/* ---- executors ----------------------------------------------------------- */

static int job_noop(void *arg, fut_cfuture_t *cf) {
  (void)arg;
  (void)cf;
  return 0;
}

static int bytes_noop(const void *data, size_t len, void **out,
                      size_t *out_len) {
  (void)data;
  (void)len;
  *out = NULL;
  *out_len = 0;
  return 0;
}

static int x_submit(void *self, const fut_job_t *job, fut_cfuture_t **out) {
  (void)self;
  (void)job;
  (void)out;
  return -ENOSYS;
}
static int x_shutdown(void *self, bool wait, bool cancel_pending,
                      uint64_t timeout_ns) {
  (void)self;
  (void)wait;
  (void)cancel_pending;
  (void)timeout_ns;
  return 0;
}
static void x_destroy(void *self) { (void)self; }
static const fut_executor_ops_t x_ops = {"refusing", x_submit, x_shutdown,
                                         x_destroy};

/* asyncio parity (concurrent.futures): Executor.submit raising (after
 * shutdown, or the executor's own refusal) binds no future; map raising
 * binds no iterator. */
static void test_constructors_executor(void **state) {
  (void)state;
  fut_job_t bad = {0};
  fut_job_t *jc = SENTINEL;
  assert_int_equal(fut_job_copy(&bad, &jc), -EINVAL);
  assert_null(jc);
  fut_job_t bj = fut_job_bytes(bytes_noop, "abc", 3);
  FAIL_EACH_ALLOC(jc, fut_job_copy(&bj, &jc), fut_job_free(jc));

  fut_executor_t *ex = SENTINEL;
  assert_int_equal(fut_executor_new(NULL, NULL, &ex), -EINVAL);
  assert_null(ex);
  FAIL_EACH_ALLOC(ex, fut_executor_new(&x_ops, NULL, &ex),
                  fut_executor_free(ex));

  /* The executor's own submit refuses without touching out. */
  assert_int_equal(fut_executor_new(&x_ops, NULL, &ex), 0);
  fut_cfuture_t *cf = SENTINEL;
  assert_int_equal(fut_executor_submit(ex, job_noop, NULL, &cf), -ENOSYS);
  assert_null(cf);
  fut_executor_free(ex);

  assert_int_equal(fut_thread_pool_new(1, &ex), 0);
  assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_FOREVER), 0);
  cf = SENTINEL;
  assert_int_equal(fut_executor_submit(ex, job_noop, NULL, &cf),
                   FUT_E_SHUTDOWN);
  assert_null(cf);
  cf = SENTINEL;
  assert_int_equal(fut_executor_submit_job(ex, &bj, &cf), FUT_E_SHUTDOWN);
  assert_null(cf);
  cf = SENTINEL;
  assert_int_equal(fut_executor_submit(NULL, job_noop, NULL, &cf), -EINVAL);
  assert_null(cf);
  void *args[2] = {NULL, NULL};
  fut_cfuture_t *many[2] = {SENTINEL, SENTINEL};
  assert_int_equal(fut_executor_map(ex, job_noop, args, 2, many),
                   FUT_E_SHUTDOWN);
  assert_null(many[0]);
  assert_null(many[1]);
  fut_job_t jobs[2] = {bj, bj};
  many[0] = many[1] = SENTINEL;
  assert_int_equal(fut_executor_map_jobs(ex, jobs, 2, many), FUT_E_SHUTDOWN);
  assert_null(many[0]);
  assert_null(many[1]);
  fut_executor_free(ex);
}

/* asyncio parity (concurrent.futures): ThreadPoolExecutor(max_workers=-1)
 * / ProcessPoolExecutor(max_workers=-1) raise ValueError. */
static void test_constructors_pools(void **state) {
  (void)state;
  fut_executor_t *ex = SENTINEL;
  assert_int_equal(fut_thread_pool_new(5000, &ex), -EINVAL);
  assert_null(ex);
  fut_thread_pool_opts_t o;
  fut_thread_pool_opts_init(&o);
  o.max_workers = 5000;
  ex = SENTINEL;
  assert_int_equal(fut_thread_pool_new_ex(&o, &ex), -EINVAL);
  assert_null(ex);
  FAIL_EACH_ALLOC(ex, fut_thread_pool_new(1, &ex), fut_executor_free(ex));

  ex = SENTINEL;
  assert_int_equal(fut_process_pool_new(5000, &ex), -EINVAL);
  assert_null(ex);
  fut_process_pool_opts_t po;
  fut_process_pool_opts_init(&po);
  po.initarg_len = 1; /* with a NULL initarg */
  ex = SENTINEL;
  assert_true(fut_process_pool_new_ex(&po, &ex) < 0);
  assert_null(ex);
  fut_process_pool_t *pool = SENTINEL;
  assert_true(fut_process_pool_create(&po, &pool) < 0);
  assert_null(pool);
}

/* asyncio parity: wrap_future / run_in_executor on a closed loop raise
 * RuntimeError, binding no future. */
static void test_constructors_loop_glue(void **state) {
  fut_loop_t *loop = *state;
  fut_cfuture_t *cf;
  assert_int_equal(fut_cfuture_new(&cf), 0);
  fut_t *f = SENTINEL;
  assert_int_equal(fut_wrap_future(loop, NULL, &f), -EINVAL);
  assert_null(f);
  f = SENTINEL;
  assert_int_equal(fut_run_in_executor(loop, NULL, NULL, NULL, &f), -EINVAL);
  assert_null(f);
  fut_job_t bad = {0};
  f = SENTINEL;
  assert_int_equal(fut_run_in_executor_job(loop, NULL, &bad, &f), -EINVAL);
  assert_null(f);
  fut_loop_t *closed = closed_loop();
  f = SENTINEL;
  assert_int_equal(fut_wrap_future(closed, cf, &f), FUT_E_CLOSED);
  assert_null(f);
  f = SENTINEL;
  assert_int_equal(fut_run_in_executor(closed, NULL, job_noop, NULL, &f),
                   FUT_E_CLOSED);
  assert_null(f);
  assert_int_equal(fut_loop_free(closed), 0);
  FAIL_EACH_ALLOC(f, fut_wrap_future(loop, cf, &f),
                  (fut_cancel(f, NULL), fut_unref(f)));
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(1, &ex), 0);
  FAIL_EACH_ALLOC(f, fut_run_in_executor(loop, ex, job_noop, NULL, &f),
                  (fut_loop_run_until_complete(loop, f), fut_unref(f)));
  fut_executor_free(ex);
  fut_cfuture_cancel(cf);
  fut_cfuture_unref(cf);
  settle(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_constructors_loop_new),
      FX_LOOP_TEST(test_constructors_loop_call_handles),
      FX_LOOP_TEST(test_constructors_future_new),
      FX_LOOP_TEST(test_constructors_future_readers),
      FX_LOOP_TEST(test_constructors_combinators),
      FX_LOOP_TEST(test_constructors_create_task),
      FX_LOOP_TEST(test_constructors_task_outs),
      cmocka_unit_test(test_constructors_run),
      cmocka_unit_test(test_constructors_cfuture),
      cmocka_unit_test(test_constructors_executor),
      cmocka_unit_test(test_constructors_pools),
      FX_LOOP_TEST(test_constructors_loop_glue),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
