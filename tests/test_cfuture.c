/* Concurrent futures without any loop or pool: state machine, callbacks in
 * the completing thread, blocking waits, wait() and as_completed(). */
#include "exec/internal.h"
#include "exec_helpers.h"

#include <limits.h>
#include <string.h>

static void test_cfuture_states(void **state) {
  (void)state;
  fut_cfuture_t *cf;
  assert_int_equal(fut_cfuture_new(&cf), 0);
  assert_int_equal(fut_cfuture_state(cf), FUT_CFUTURE_PENDING);
  assert_false(fut_cfuture_done(cf));
  assert_false(fut_cfuture_running(cf));
  assert_int_equal(fut_cfuture_set_running_or_notify_cancel(cf), 1);
  assert_true(fut_cfuture_running(cf));
  assert_false(fut_cfuture_cancel(cf)); /* running: cannot cancel */
  assert_int_equal(fut_cfuture_set_running_or_notify_cancel(cf),
                   FUT_E_INVALID_STATE);
  assert_int_equal(fut_cfuture_set_result_i64(cf, 42), 0);
  assert_true(fut_cfuture_done(cf));
  assert_int_equal(fut_cfuture_set_result_i64(cf, 1), FUT_E_INVALID_STATE);
  assert_int_equal(fut_cfuture_set_exception(cf, -EIO, NULL),
                   FUT_E_INVALID_STATE);
  assert_false(fut_cfuture_cancel(cf));
  int64_t v = 0;
  assert_int_equal(fut_cfuture_result_i64(cf, 0, &v), 0);
  assert_int_equal(v, 42);
  assert_int_equal(fut_cfuture_exception(cf, 0, NULL), 0);
  fut_cfuture_unref(cf);
}

static void test_cfuture_cancel_pending(void **state) {
  (void)state;
  fut_cfuture_t *cf;
  assert_int_equal(fut_cfuture_new(&cf), 0);
  assert_true(fut_cfuture_cancel(cf));
  assert_true(fut_cfuture_cancel(cf)); /* already cancelled: true (Python) */
  assert_true(fut_cfuture_cancelled(cf));
  assert_int_equal(fut_cfuture_set_running_or_notify_cancel(cf), 0);
  assert_int_equal(fut_cfuture_result(cf, FUT_FOREVER, NULL), -ECANCELED);
  assert_int_equal(fut_cfuture_set_result(cf, NULL, NULL), FUT_E_INVALID_STATE);
  fut_cfuture_unref(cf);
}

static void test_cfuture_result_kinds(void **state) {
  (void)state;
  fut_cfuture_t *cf;
  assert_int_equal(fut_cfuture_new(&cf), 0);
  assert_int_equal(fut_cfuture_set_result_bytes(cf, "abc", 3), 0);
  const void *d;
  size_t len;
  assert_int_equal(fut_cfuture_result_bytes(cf, 0, &d, &len), 0);
  assert_int_equal(len, 3);
  assert_memory_equal(d, "abc", 3);
  fut_cfuture_unref(cf);

  assert_int_equal(fut_cfuture_new(&cf), 0);
  char *p = strdup("owned");
  assert_int_equal(fut_cfuture_set_result(cf, p, free), 0);
  void *out;
  assert_int_equal(fut_cfuture_result(cf, 0, &out), 0);
  assert_ptr_equal(out, p);
  fut_cfuture_unref(cf); /* frees p (ASan checks) */

  assert_int_equal(fut_cfuture_new(&cf), 0);
  assert_int_equal(fut_cfuture_set_result_bytes(cf, NULL, 5), -EINVAL);
  assert_int_equal(fut_cfuture_set_result_bytes_owned(cf, NULL, 0), 0);
  assert_int_equal(fut_cfuture_result_bytes(cf, 0, &d, &len), 0);
  assert_int_equal(len, 0);
  fut_cfuture_unref(cf);
}

static void test_cfuture_exception_message(void **state) {
  (void)state;
  fut_cfuture_t *cf;
  assert_int_equal(fut_cfuture_new(&cf), 0);
  assert_int_equal(fut_cfuture_set_exception(cf, 5, NULL), -EINVAL);
  assert_int_equal(fut_cfuture_set_exception(cf, -EIO, "disk %d", 3), 0);
  const char *msg;
  assert_int_equal(fut_cfuture_exception(cf, 0, &msg), -EIO);
  assert_string_equal(msg, "disk 3");
  assert_int_equal(fut_cfuture_result(cf, 0, NULL), -EIO);
  fut_cfuture_unref(cf);
}

static void test_cfuture_result_timeout(void **state) {
  (void)state;
  fut_cfuture_t *cf;
  assert_int_equal(fut_cfuture_new(&cf), 0);
  assert_int_equal(fut_cfuture_result(cf, 0, NULL), -ETIMEDOUT);
  uint64_t t0 = now_ns();
  assert_int_equal(fut_cfuture_wait(cf, FUT_MS(30)), -ETIMEDOUT);
  assert_true(now_ns() - t0 >= FUT_MS(30));
  assert_int_equal(fut_cfuture_exception(cf, FUT_MS(1), NULL), -ETIMEDOUT);
  fut_cfuture_unref(cf);
}

static void test_cfuture_bad_args(void **state) {
  (void)state;
  assert_int_equal(fut_cfuture_new(NULL), -EINVAL);
  assert_int_equal(fut_cfuture_wait(NULL, 0), -EINVAL);
  assert_int_equal(fut_cfuture_set_result(NULL, NULL, NULL), -EINVAL);
  assert_int_equal(fut_cfuture_add_done_callback(NULL, NULL, NULL), -EINVAL);
  assert_int_equal(fut_cfuture_set_running_or_notify_cancel(NULL), -EINVAL);
  assert_false(fut_cfuture_cancel(NULL));
  fut_cfuture_unref(NULL);
  fut_cfuture_t *fs[1] = {NULL};
  assert_int_equal(
      fut_cfuture_wait_many(fs, 1, FUT_CFUTURE_ALL_COMPLETED, 0, NULL),
      -EINVAL);
  fut_cfuture_t *cf;
  assert_int_equal(fut_cfuture_new(&cf), 0);
  fs[0] = cf;
  assert_int_equal(
      fut_cfuture_wait_many(fs, 1, (fut_cfuture_wait_when_t)7, 0, NULL),
      -EINVAL);
  fut_cfuture_as_completed_t *it;
  assert_int_equal(fut_cfuture_as_completed(NULL, 2, 0, &it), -EINVAL);
  fut_cfuture_unref(cf);
}

static void noop_cb(fut_cfuture_t *cf, void *arg) {
  (void)cf;
  (void)arg;
}

static void test_cfuture_alloc_failure(void **state) {
  (void)state;
  fut_cfuture_t *cf = (fut_cfuture_t *)1;
  fut__alloc_fail_after(1, false);
  assert_int_equal(fut_cfuture_new(&cf), -ENOMEM);
  assert_null(cf);
  assert_int_equal(fut_cfuture_new(&cf), 0);
  fut__alloc_fail_after(1, false);
  assert_int_equal(fut_cfuture_set_result_bytes(cf, "x", 1), -ENOMEM);
  assert_false(fut_cfuture_done(cf));
  fut__alloc_fail_after(1, false);
  assert_int_equal(fut_cfuture_set_exception(cf, -EIO, "m"), -ENOMEM);
  assert_false(fut_cfuture_done(cf));
  /* One registration fits inline; the second allocates. */
  assert_int_equal(fut_cfuture_add_done_callback(cf, noop_cb, NULL), 0);
  fut__alloc_fail_after(1, false);
  assert_int_equal(fut_cfuture_add_done_callback(cf, noop_cb, NULL), -ENOMEM);
  fut__alloc_fail_after(0, false);
  assert_int_equal(fut_cfuture_set_result(cf, NULL, NULL), 0);
  fut_cfuture_unref(cf);
}

/* ---- callbacks -------------------------------------------------------- */

struct cb_rec {
  pthread_t thread;
  int calls;
  int order[4];
  int norder;
};

static void record_cb(fut_cfuture_t *cf, void *arg) {
  (void)cf;
  struct cb_rec *r = arg;
  r->thread = pthread_self();
  r->calls++;
}

static void order_cb1(fut_cfuture_t *cf, void *arg) {
  (void)cf;
  struct cb_rec *r = arg;
  r->order[r->norder++] = 1;
}
static void order_cb2(fut_cfuture_t *cf, void *arg) {
  (void)cf;
  struct cb_rec *r = arg;
  r->order[r->norder++] = 2;
}

static void *complete_thread(void *arg) {
  fut_cfuture_set_result_i64(arg, 7);
  return NULL;
}

static void test_cfuture_callback_runs_in_completing_thread(void **state) {
  (void)state;
  fut_cfuture_t *cf;
  assert_int_equal(fut_cfuture_new(&cf), 0);
  struct cb_rec r = {0};
  assert_int_equal(fut_cfuture_add_done_callback(cf, record_cb, &r), 0);
  assert_int_equal(r.calls, 0);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, complete_thread, cf), 0);
  pthread_join(t, NULL);
  assert_int_equal(r.calls, 1);
  assert_true(pthread_equal(r.thread, t));
  fut_cfuture_unref(cf);
}

static void test_cfuture_callback_inline_when_done(void **state) {
  (void)state;
  fut_cfuture_t *cf;
  assert_int_equal(fut_cfuture_new(&cf), 0);
  assert_int_equal(fut_cfuture_set_result(cf, NULL, NULL), 0);
  struct cb_rec r = {0};
  assert_int_equal(fut_cfuture_add_done_callback(cf, record_cb, &r), 0);
  assert_int_equal(r.calls, 1);
  assert_true(pthread_equal(r.thread, pthread_self()));
  fut_cfuture_unref(cf);
}

static void test_cfuture_callback_order_and_remove(void **state) {
  (void)state;
  fut_cfuture_t *cf;
  assert_int_equal(fut_cfuture_new(&cf), 0);
  struct cb_rec r = {0};
  assert_int_equal(fut_cfuture_add_done_callback(cf, order_cb1, &r), 0);
  assert_int_equal(fut_cfuture_add_done_callback(cf, order_cb2, &r), 0);
  assert_int_equal(fut_cfuture_add_done_callback(cf, record_cb, &r), 0);
  assert_int_equal(fut_cfuture_add_done_callback(cf, record_cb, &r), 0);
  assert_int_equal(fut_cfuture_remove_done_callback(cf, record_cb, &r), 2);
  assert_int_equal(fut_cfuture_remove_done_callback(cf, record_cb, &r), 0);
  assert_true(fut_cfuture_cancel(cf)); /* callbacks run in this thread */
  assert_int_equal(r.norder, 2);
  assert_int_equal(r.order[0], 1);
  assert_int_equal(r.order[1], 2);
  assert_int_equal(r.calls, 0);
  fut_cfuture_unref(cf);
}

/* The first registration is stored inline, the others in a vector:
 * removing the inline one keeps the others' order; removing all and
 * adding again works; a cfuture freed pending frees its registrations. */
static void order_cb3(fut_cfuture_t *cf, void *arg) {
  (void)cf;
  struct cb_rec *r = arg;
  r->order[r->norder++] = 3;
}

static void test_cfuture_callback_remove_inline_one(void **state) {
  (void)state;
  fut_cfuture_t *cf;
  assert_int_equal(fut_cfuture_new(&cf), 0);
  struct cb_rec r = {0};
  assert_int_equal(fut_cfuture_add_done_callback(cf, record_cb, &r), 0);
  assert_int_equal(fut_cfuture_add_done_callback(cf, order_cb2, &r), 0);
  assert_int_equal(fut_cfuture_add_done_callback(cf, record_cb, &r), 0);
  assert_int_equal(fut_cfuture_add_done_callback(cf, order_cb3, &r), 0);
  assert_int_equal(fut_cfuture_add_done_callback(cf, order_cb1, &r), 0);
  assert_int_equal(fut_cfuture_remove_done_callback(cf, record_cb, &r), 2);
  assert_true(fut_cfuture_set_result(cf, NULL, NULL) == 0);
  assert_int_equal(r.norder, 3);
  assert_int_equal(r.order[0], 2);
  assert_int_equal(r.order[1], 3);
  assert_int_equal(r.order[2], 1);
  assert_int_equal(r.calls, 0);
  fut_cfuture_unref(cf);

  assert_int_equal(fut_cfuture_new(&cf), 0);
  r = (struct cb_rec){0};
  assert_int_equal(fut_cfuture_add_done_callback(cf, order_cb1, &r), 0);
  assert_int_equal(fut_cfuture_add_done_callback(cf, order_cb2, &r), 0);
  assert_int_equal(fut_cfuture_remove_done_callback(cf, order_cb1, &r), 1);
  assert_int_equal(fut_cfuture_remove_done_callback(cf, order_cb2, &r), 1);
  assert_int_equal(fut_cfuture_add_done_callback(cf, order_cb3, &r), 0);
  assert_int_equal(fut_cfuture_add_done_callback(cf, order_cb1, &r), 0);
  assert_true(fut_cfuture_cancel(cf));
  assert_int_equal(r.norder, 2);
  assert_int_equal(r.order[0], 3);
  assert_int_equal(r.order[1], 1);
  fut_cfuture_unref(cf);

  /* Dropped pending with three registrations: nothing runs, nothing
   * leaks (ASan). */
  assert_int_equal(fut_cfuture_new(&cf), 0);
  r = (struct cb_rec){0};
  for (int i = 0; i < 3; i++)
    assert_int_equal(fut_cfuture_add_done_callback(cf, record_cb, &r), 0);
  fut_cfuture_unref(cf);
  assert_int_equal(r.calls, 0);
}

/* A callback may drop the last reference. */
static void unref_cb(fut_cfuture_t *cf, void *arg) {
  (void)arg;
  fut_cfuture_unref(cf);
}

static void test_cfuture_callback_drops_last_ref(void **state) {
  (void)state;
  fut_cfuture_t *cf;
  assert_int_equal(fut_cfuture_new(&cf), 0);
  assert_int_equal(fut_cfuture_add_done_callback(cf, unref_cb, NULL), 0);
  assert_int_equal(fut_cfuture_set_result(cf, NULL, NULL), 0);
}

/* ---- waiting ------------------------------------------------------------ */

struct delayed {
  fut_cfuture_t *cf;
  struct gate *g;
  int err; /* 0: result, else exception code */
};

static void *complete_after_gate(void *arg) {
  struct delayed *d = arg;
  gate_pass(d->g);
  if (d->err)
    fut_cfuture_set_exception(d->cf, d->err, NULL);
  else
    fut_cfuture_set_result_i64(d->cf, 1);
  return NULL;
}

static void test_cfuture_wait_blocks_until_done(void **state) {
  (void)state;
  fut_cfuture_t *cf;
  assert_int_equal(fut_cfuture_new(&cf), 0);
  struct gate g;
  gate_init(&g);
  struct delayed d = {cf, &g, 0};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, complete_after_gate, &d), 0);
  gate_wait_arrived(&g, 1);
  assert_false(fut_cfuture_done(cf));
  gate_open(&g);
  int64_t v = 0;
  assert_int_equal(fut_cfuture_result_i64(cf, FUT_FOREVER, &v), 0);
  assert_int_equal(v, 1);
  pthread_join(t, NULL);
  gate_destroy(&g);
  fut_cfuture_unref(cf);
}

static void test_cfutures_wait_first_completed(void **state) {
  (void)state;
  fut_cfuture_t *fs[3];
  for (int i = 0; i < 3; i++)
    assert_int_equal(fut_cfuture_new(&fs[i]), 0);
  bool done[3];
  /* Nothing done: times out with 0 done. */
  assert_int_equal(fut_cfuture_wait_many(fs, 3, FUT_CFUTURE_FIRST_COMPLETED,
                                         FUT_MS(10), done),
                   0);
  struct gate g;
  gate_init(&g);
  struct delayed d = {fs[1], &g, 0};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, complete_after_gate, &d), 0);
  gate_open(&g);
  assert_int_equal(fut_cfuture_wait_many(fs, 3, FUT_CFUTURE_FIRST_COMPLETED,
                                         FUT_FOREVER, done),
                   1);
  assert_false(done[0]);
  assert_true(done[1]);
  assert_false(done[2]);
  pthread_join(t, NULL);
  gate_destroy(&g);
  for (int i = 0; i < 3; i++)
    fut_cfuture_unref(fs[i]);
}

static void test_cfutures_wait_first_exception(void **state) {
  (void)state;
  fut_cfuture_t *fs[3];
  for (int i = 0; i < 3; i++)
    assert_int_equal(fut_cfuture_new(&fs[i]), 0);
  /* A result and a cancellation do not satisfy FIRST_EXCEPTION. */
  fut_cfuture_set_result(fs[0], NULL, NULL);
  fut_cfuture_cancel(fs[1]);
  assert_int_equal(fut_cfuture_wait_many(fs, 3, FUT_CFUTURE_FIRST_EXCEPTION,
                                         FUT_MS(10), NULL),
                   2);
  struct gate g;
  gate_init(&g);
  struct delayed d = {fs[2], &g, -EIO};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, complete_after_gate, &d), 0);
  gate_open(&g);
  bool done[3];
  assert_int_equal(fut_cfuture_wait_many(fs, 3, FUT_CFUTURE_FIRST_EXCEPTION,
                                         FUT_FOREVER, done),
                   3);
  assert_true(done[2]);
  assert_int_equal(fut_cfuture_exception(fs[2], 0, NULL), -EIO);
  pthread_join(t, NULL);
  gate_destroy(&g);
  for (int i = 0; i < 3; i++)
    fut_cfuture_unref(fs[i]);
}

static void test_cfutures_wait_all_completed(void **state) {
  (void)state;
  enum { N = 8 };
  fut_cfuture_t *fs[N];
  struct delayed d[N];
  pthread_t t[N];
  struct gate g;
  gate_init(&g);
  for (int i = 0; i < N; i++) {
    assert_int_equal(fut_cfuture_new(&fs[i]), 0);
    d[i] = (struct delayed){fs[i], &g, i % 2 ? -EIO : 0};
    assert_int_equal(pthread_create(&t[i], NULL, complete_after_gate, &d[i]),
                     0);
  }
  gate_wait_arrived(&g, N);
  assert_int_equal(
      fut_cfuture_wait_many(fs, N, FUT_CFUTURE_ALL_COMPLETED, 0, NULL), 0);
  gate_open(&g);
  bool done[N];
  assert_int_equal(fut_cfuture_wait_many(fs, N, FUT_CFUTURE_ALL_COMPLETED,
                                         FUT_FOREVER, done),
                   N);
  for (int i = 0; i < N; i++) {
    assert_true(done[i]);
    pthread_join(t[i], NULL);
    fut_cfuture_unref(fs[i]);
  }
  gate_destroy(&g);
  /* An empty set is trivially complete. */
  assert_int_equal(
      fut_cfuture_wait_many(NULL, 0, FUT_CFUTURE_ALL_COMPLETED, 0, NULL), 0);
}

static void test_cfutures_as_completed_order(void **state) {
  (void)state;
  enum { N = 4 };
  fut_cfuture_t *fs[N];
  for (int i = 0; i < N; i++)
    assert_int_equal(fut_cfuture_new(&fs[i]), 0);
  fut_cfuture_set_result_i64(fs[2], 2); /* done before: yielded first */
  fut_cfuture_as_completed_t *it;
  assert_int_equal(fut_cfuture_as_completed(fs, N, FUT_FOREVER, &it), 0);
  fut_cfuture_t *got;
  assert_int_equal(fut_cfuture_as_completed_next(it, &got), 0);
  assert_ptr_equal(got, fs[2]);
  /* Then in completion order, whatever the array order. */
  int order[] = {3, 0, 1};
  for (int k = 0; k < 3; k++) {
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, complete_thread, fs[order[k]]),
                     0);
    assert_int_equal(fut_cfuture_as_completed_next(it, &got), 0);
    assert_ptr_equal(got, fs[order[k]]);
    pthread_join(t, NULL);
  }
  assert_int_equal(fut_cfuture_as_completed_next(it, &got), -ENOENT);
  fut_cfuture_as_completed_free(it);
  for (int i = 0; i < N; i++)
    fut_cfuture_unref(fs[i]);
}

static void test_cfutures_as_completed_timeout(void **state) {
  (void)state;
  fut_cfuture_t *fs[2];
  for (int i = 0; i < 2; i++)
    assert_int_equal(fut_cfuture_new(&fs[i]), 0);
  fut_cfuture_cancel(fs[0]);
  fut_cfuture_as_completed_t *it;
  assert_int_equal(fut_cfuture_as_completed(fs, 2, FUT_MS(20), &it), 0);
  fut_cfuture_t *got;
  assert_int_equal(fut_cfuture_as_completed_next(it, &got), 0);
  assert_ptr_equal(got, fs[0]);
  uint64_t t0 = now_ns();
  assert_int_equal(fut_cfuture_as_completed_next(it, &got), -ETIMEDOUT);
  assert_null(got);
  assert_true(now_ns() - t0 < FUT_SEC(5));
  /* Freeing with a cfuture pending unlinks the iterator from it. */
  fut_cfuture_as_completed_free(it);
  fut_cfuture_set_result(fs[1], NULL, NULL);
  for (int i = 0; i < 2; i++)
    fut_cfuture_unref(fs[i]);
}

/* Bug: fut_cfuture_exception told "timed out waiting" from "failed" by the
 * code alone, so a job that failed with -ETIMEDOUT (a connect timeout, say)
 * lost its message. */
static void test_cfuture_exception_etimedout_code_keeps_message(void **state) {
  (void)state;
  fut_cfuture_t *cf;
  assert_int_equal(fut_cfuture_new(&cf), 0);
  const char *msg = "x";
  assert_int_equal(fut_cfuture_exception(cf, 0, &msg), -ETIMEDOUT);
  assert_null(msg);
  assert_int_equal(
      fut_cfuture_set_exception(cf, -ETIMEDOUT, "connect to %s", "db"), 0);
  assert_int_equal(fut_cfuture_exception(cf, 0, &msg), -ETIMEDOUT);
  assert_non_null(msg);
  assert_string_equal(msg, "connect to db");
  fut_cfuture_unref(cf);
}

/* Bug: INT_MIN was accepted as an exception code (its negation
 * overflows). */
static void test_cfuture_set_exception_int_min_rejected(void **state) {
  (void)state;
  fut_cfuture_t *cf;
  assert_int_equal(fut_cfuture_new(&cf), 0);
  assert_int_equal(fut_cfuture_set_exception(cf, INT_MIN, "min"), -EINVAL);
  assert_false(fut_cfuture_done(cf));
  fut_cfuture_unref(cf);
}

/* asyncio parity (concurrent.futures, test_as_completed.py
 * test_duplicate_futures): as_completed takes a set (fs = set(fs)), so a
 * cfuture listed several times is yielded once, then the iterator is
 * exhausted.  Also past the small-set path: 40 entries, 20 cfutures. */
static void test_cfuture_as_completed_duplicates_yield_once(void **state) {
  (void)state;
  fut_cfuture_t *a, *b;
  assert_int_equal(fut_cfuture_new(&a), 0);
  assert_int_equal(fut_cfuture_new(&b), 0);
  assert_int_equal(fut_cfuture_set_result_i64(a, 1), 0);
  assert_int_equal(fut_cfuture_set_result_i64(b, 2), 0);
  fut_cfuture_t *fs[5] = {a, a, b, a, b};
  fut_cfuture_as_completed_t *it;
  assert_int_equal(fut_cfuture_as_completed(fs, 5, FUT_FOREVER, &it), 0);
  fut_cfuture_t *got[2];
  assert_int_equal(fut_cfuture_as_completed_next(it, &got[0]), 0);
  assert_int_equal(fut_cfuture_as_completed_next(it, &got[1]), 0);
  assert_true((got[0] == a && got[1] == b) || (got[0] == b && got[1] == a));
  fut_cfuture_t *more = NULL;
  assert_int_equal(fut_cfuture_as_completed_next(it, &more), -ENOENT);
  fut_cfuture_as_completed_free(it);
  fut_cfuture_t *many[20], *list[40];
  for (int i = 0; i < 20; i++) {
    assert_int_equal(fut_cfuture_new(&many[i]), 0);
    assert_int_equal(fut_cfuture_set_result_i64(many[i], i), 0);
  }
  for (int i = 0; i < 40; i++)
    list[i] = many[(i * 3) % 20];
  assert_int_equal(fut_cfuture_as_completed(list, 40, FUT_FOREVER, &it), 0);
  int n = 0;
  fut_cfuture_t *x;
  while (fut_cfuture_as_completed_next(it, &x) == 0)
    n++;
  assert_int_equal(n, 20);
  fut_cfuture_as_completed_free(it);
  for (int i = 0; i < 20; i++)
    fut_cfuture_unref(many[i]);
  fut_cfuture_unref(a);
  fut_cfuture_unref(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cfuture_exception_etimedout_code_keeps_message),
      cmocka_unit_test(test_cfuture_set_exception_int_min_rejected),
      cmocka_unit_test(test_cfuture_states),
      cmocka_unit_test(test_cfuture_cancel_pending),
      cmocka_unit_test(test_cfuture_result_kinds),
      cmocka_unit_test(test_cfuture_exception_message),
      cmocka_unit_test(test_cfuture_result_timeout),
      cmocka_unit_test(test_cfuture_bad_args),
      cmocka_unit_test(test_cfuture_alloc_failure),
      cmocka_unit_test(test_cfuture_callback_runs_in_completing_thread),
      cmocka_unit_test(test_cfuture_callback_inline_when_done),
      cmocka_unit_test(test_cfuture_callback_order_and_remove),
      cmocka_unit_test(test_cfuture_callback_remove_inline_one),
      cmocka_unit_test(test_cfuture_callback_drops_last_ref),
      cmocka_unit_test(test_cfuture_wait_blocks_until_done),
      cmocka_unit_test(test_cfutures_wait_first_completed),
      cmocka_unit_test(test_cfutures_wait_first_exception),
      cmocka_unit_test(test_cfutures_wait_all_completed),
      cmocka_unit_test(test_cfutures_as_completed_order),
      cmocka_unit_test(test_cfutures_as_completed_timeout),
      cmocka_unit_test(test_cfuture_as_completed_duplicates_yield_once),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
