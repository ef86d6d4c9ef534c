/* fut_run_threadsafe (asyncio.run_coroutine_threadsafe) from another
 * thread: result kinds, failure, cancel from the other thread (before and
 * after the task started), a task cancelled on its loop, a loop closing
 * first; fut_to_thread (asyncio.to_thread).  Runs under TSan too. */
#include "fixture.h"
#include "task_helpers.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

struct ts {
  fut_loop_t *loop;
  fut_cfuture_t *cf;
  atomic_int started;   /* set by the task once it runs */
  atomic_int cancelled; /* set by the task when its sleep was cancelled */
  atomic_int runs;      /* runs of the task function */
  int kind;             /* what the task returns: see task_fn */
  int rc;               /* the other thread's reading */
  int64_t i64;
  char text[32];
};

static int task_fn(void *arg) {
  struct ts *s = arg;
  atomic_fetch_add(&s->runs, 1);
  atomic_store(&s->started, 1);
  switch (s->kind) {
  case 0: /* an integer after a sleep */
    if (fut_sleep(FUT_MS(1)))
      return -ECANCELED;
    return fut_task_return_i64(42);
  case 1: /* a pointer handed over with its destructor */
    return fut_task_return_ptr(strdup("handed over"), free);
  case 2: /* bytes */
    return fut_task_return_bytes("bytes", 5);
  case 3: /* a failure with a message */
    return fut_task_fail(-EIO, "boom %d", 7);
  case 4: /* waits to be cancelled from the other thread */
    if (fut_sleep(FUT_SEC(30)) == -ECANCELED) {
      atomic_store(&s->cancelled, 1);
      fut_loop_stop(s->loop);
      return -ECANCELED;
    }
    return 0;
  case 5: /* cancels itself on the loop */
    fut_cancel(fut_current_task(s->loop), NULL);
    return fut_yield();
  }
  return -EINVAL;
}

static void spin_until(atomic_int *flag) {
  while (!atomic_load(flag))
    sched_yield();
}

/* The other thread: starts the task, reads the outcome, stops the loop. */
static void *other(void *arg) {
  struct ts *s = arg;
  assert_int_equal(fut_run_threadsafe(s->loop, task_fn, s, &s->cf), 0);
  switch (s->kind) {
  case 0:
  case 5:
    s->rc = fut_cfuture_result_i64(s->cf, FUT_SEC(30), &s->i64);
    break;
  case 1: {
    void *p = NULL;
    s->rc = fut_cfuture_result(s->cf, FUT_SEC(30), &p);
    if (p)
      snprintf(s->text, sizeof s->text, "%s", (char *)p);
    break;
  }
  case 2: {
    const void *d = NULL;
    size_t n = 0;
    s->rc = fut_cfuture_result_bytes(s->cf, FUT_SEC(30), &d, &n);
    if (d)
      snprintf(s->text, sizeof s->text, "%.*s", (int)n, (const char *)d);
    break;
  }
  case 3: {
    const char *msg = NULL;
    s->rc = fut_cfuture_exception(s->cf, FUT_SEC(30), &msg);
    if (msg)
      snprintf(s->text, sizeof s->text, "%s", msg);
    break;
  }
  case 4:
    spin_until(&s->started);
    s->rc = fut_cfuture_cancel(s->cf) ? -ECANCELED : 0;
    fut_cfuture_unref(s->cf);
    return NULL; /* the task stops the loop */
  }
  fut_cfuture_unref(s->cf);
  fut_loop_call_soon_threadsafe(s->loop, fx_stop_cb, s->loop);
  return NULL;
}

static void run_with_other(fut_loop_t *loop, struct ts *s) {
  s->loop = loop;
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, other, s), 0);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  pthread_join(th, NULL);
  drain(loop);
}

static void test_threadsafe_result(void **state) {
  struct ts s = {.kind = 0};
  run_with_other(*state, &s);
  assert_int_equal(s.rc, 0);
  assert_int_equal(s.i64, 42);
}

static void test_threadsafe_pointer_handed_over(void **state) {
  struct ts s = {.kind = 1};
  run_with_other(*state, &s);
  assert_int_equal(s.rc, 0);
  assert_string_equal(s.text, "handed over"); /* freed with the cfuture */
}

static void test_threadsafe_bytes(void **state) {
  struct ts s = {.kind = 2};
  run_with_other(*state, &s);
  assert_int_equal(s.rc, 0);
  assert_string_equal(s.text, "bytes");
}

static void test_threadsafe_failure(void **state) {
  struct ts s = {.kind = 3};
  run_with_other(*state, &s);
  assert_int_equal(s.rc, -EIO);
  assert_string_equal(s.text, "boom 7");
}

static void test_threadsafe_cancel_from_other_thread(void **state) {
  struct ts s = {.kind = 4};
  run_with_other(*state, &s);
  assert_int_equal(s.rc, -ECANCELED);
  assert_int_equal(atomic_load(&s.cancelled), 1);
}

static void test_threadsafe_task_cancelled_on_loop(void **state) {
  struct ts s = {.kind = 5};
  run_with_other(*state, &s);
  assert_int_equal(s.rc, -ECANCELED);
}

/* Cancelled before the loop ran the start: the function never runs. */
static void test_threadsafe_cancel_before_start(void **state) {
  fut_loop_t *loop = *state;
  struct ts s = {.kind = 0, .loop = loop};
  fut_cfuture_t *cf;
  assert_int_equal(fut_run_threadsafe(loop, task_fn, &s, &cf), 0);
  assert_true(fut_cfuture_cancel(cf));
  drain(loop);
  assert_int_equal(atomic_load(&s.runs), 0);
  assert_true(fut_cfuture_cancelled(cf));
  fut_cfuture_unref(cf);
}

/* The loop closes before the task started, then with it pending. */
static void test_threadsafe_loop_closed_first(void **state) {
  (void)state;
  fut_loop_t *loop = new_loop();
  struct ts s = {.kind = 4, .loop = loop};
  fut_cfuture_t *cf1, *cf2;
  assert_int_equal(fut_run_threadsafe(loop, task_fn, &s, &cf1), 0);
  assert_int_equal(fut_loop_close(loop), 0);
  assert_int_equal(fut_cfuture_exception(cf1, 0, NULL), FUT_E_CLOSED);
  fut_cfuture_unref(cf1);
  assert_int_equal(fut_loop_free(loop), 0);

  loop = new_loop();
  fx_exc_t cap;
  fx_exc_capture(loop, &cap); /* "Task was destroyed but it is pending!" */
  s.loop = loop;
  atomic_store(&s.runs, 0);
  assert_int_equal(fut_run_threadsafe(loop, task_fn, &s, &cf2), 0);
  drain(loop); /* started, now asleep */
  assert_int_equal(atomic_load(&s.runs), 1);
  assert_int_equal(fut_loop_close(loop), 0);
  assert_int_equal(fut_cfuture_exception(cf2, 0, NULL), FUT_E_CLOSED);
  assert_false(fut_cfuture_cancel(cf2)); /* done: no loop is touched */
  fut_cfuture_unref(cf2);
  assert_int_equal(cap.count, 1);
  assert_int_equal(fut_loop_free(loop), 0);
}

/* Several threads start tasks at once, cancelling every third. */
#define NTHREADS 4
#define PER_THREAD 40

static int echo_task(void *arg) {
  intptr_t n = (intptr_t)arg;
  if (n % 3 == 0 && fut_sleep(FUT_SEC(30)) == -ECANCELED)
    return -ECANCELED;
  if (fut_yield())
    return -ECANCELED;
  return fut_task_return_i64(n);
}

struct many {
  fut_loop_t *loop;
  atomic_int *left;
  int ok;
};

static void *many_thread(void *arg) {
  struct many *m = arg;
  fut_cfuture_t *cf[PER_THREAD];
  for (intptr_t i = 0; i < PER_THREAD; i++)
    assert_int_equal(fut_run_threadsafe(m->loop, echo_task, (void *)i, &cf[i]),
                     0);
  for (int i = 0; i < PER_THREAD; i++) {
    if (i % 3 == 0) {
      if (fut_cfuture_cancel(cf[i]) && fut_cfuture_cancelled(cf[i]))
        m->ok++;
    } else {
      int64_t v = -1;
      if (fut_cfuture_result_i64(cf[i], FUT_SEC(30), &v) == 0 && v == i)
        m->ok++;
    }
    fut_cfuture_unref(cf[i]);
  }
  if (atomic_fetch_sub(m->left, 1) == 1)
    fut_loop_call_soon_threadsafe(m->loop, fx_stop_cb, m->loop);
  return NULL;
}

static void test_threadsafe_many_threads(void **state) {
  fut_loop_t *loop = *state;
  atomic_int left = NTHREADS;
  struct many m[NTHREADS];
  pthread_t th[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) {
    m[i] = (struct many){loop, &left, 0};
    assert_int_equal(pthread_create(&th[i], NULL, many_thread, &m[i]), 0);
  }
  assert_int_equal(fut_loop_run_forever(loop), 0);
  for (int i = 0; i < NTHREADS; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(m[i].ok, PER_THREAD);
  }
  /* The cancels still queued reach their tasks. */
  for (int i = 0; i < 100 && fut_all_tasks(loop, NULL, 0); i++)
    fut_loop_run_once(loop, FUT_MS(10));
  assert_int_equal(fut_all_tasks(loop, NULL, 0), 0);
  drain(loop);
}

static void test_threadsafe_bad_args(void **state) {
  fut_cfuture_t *cf = (fut_cfuture_t *)1;
  assert_int_equal(fut_run_threadsafe(NULL, task_fn, NULL, &cf), -EINVAL);
  assert_null(cf);
  assert_int_equal(fut_run_threadsafe(*state, NULL, NULL, &cf), -EINVAL);
  assert_int_equal(fut_run_threadsafe(*state, task_fn, NULL, NULL), -EINVAL);
}

/* ---- to_thread ---------------------------------------------------------- */

struct tt {
  pthread_t loop_thread;
  bool other_thread;
  int rc;
  int64_t v;
};

static int blocking(void *arg, fut_cfuture_t *cf) {
  struct tt *t = arg;
  t->other_thread = !pthread_equal(pthread_self(), t->loop_thread);
  return fut_cfuture_set_result_i64(cf, 7);
}

static int to_thread_main(void *arg) {
  struct tt *t = arg;
  fut_t *f;
  int err = fut_to_thread(blocking, t, &f);
  if (err)
    return err;
  t->rc = fut_await_i64(f, &t->v);
  fut_unref(f);
  return 0;
}

static void test_to_thread(void **state) {
  struct tt t = {.loop_thread = pthread_self()};
  assert_int_equal(run_main(*state, to_thread_main, &t), 0);
  assert_int_equal(t.rc, 0);
  assert_int_equal(t.v, 7);
  assert_true(t.other_thread);
}

/* The function runs in a copy of the caller's context. */
static fut_ctxvar_t *cvar;

struct ttc {
  void *seen, *after_set, *task_after;
};

static int read_and_set(void *arg, fut_cfuture_t *cf) {
  struct ttc *c = arg;
  c->seen = fut_ctxvar_get(cvar);
  fut_ctxvar_set(cvar, "worker");
  c->after_set = fut_ctxvar_get(cvar);
  (void)cf;
  return 0;
}

static int ctx_main(void *arg) {
  struct ttc *c = arg;
  fut_ctxvar_set(cvar, "task");
  fut_t *f;
  int err = fut_to_thread(read_and_set, c, &f);
  if (err)
    return err;
  fut_ctxvar_set(cvar, "task later"); /* after the copy */
  err = fut_await(f, NULL);
  fut_unref(f);
  c->task_after = fut_ctxvar_get(cvar);
  return err;
}

static void test_to_thread_copies_context(void **state) {
  struct ttc c = {0};
  assert_int_equal(fut_ctxvar_new("default", &cvar), 0);
  assert_int_equal(run_main(*state, ctx_main, &c), 0);
  assert_string_equal(c.seen, "task");
  assert_string_equal(c.after_set, "worker");
  assert_string_equal(c.task_after, "task later");
  fut_ctxvar_free(cvar);
}

/* Cancelled while the function runs: the await returns -ECANCELED at
 * once, the function finishes undisturbed, nothing leaks. */
struct gate {
  atomic_int entered, release, finished;
  int rc;
};

static int held(void *arg, fut_cfuture_t *cf) {
  struct gate *g = arg;
  atomic_store(&g->entered, 1);
  spin_until(&g->release);
  atomic_store(&g->finished, 1);
  return fut_cfuture_set_result_i64(cf, 1);
}

static int cancel_main(void *arg) {
  struct gate *g = arg;
  fut_t *f;
  int err = fut_to_thread(held, g, &f);
  if (err)
    return err;
  while (!atomic_load(&g->entered))
    fut_sleep(FUT_MS(1));
  fut_cancel(f, NULL);
  g->rc = fut_await(f, NULL);
  fut_unref(f);
  atomic_store(&g->release, 1);
  return 0;
}

static void test_to_thread_cancel_while_running(void **state) {
  struct gate g = {0};
  assert_int_equal(run_main(*state, cancel_main, &g), 0);
  assert_int_equal(g.rc, -ECANCELED);
  /* The link goes when the job ends. */
  for (int i = 0; i < 1000 && !atomic_load(&g.finished); i++)
    fut_loop_run_once(*state, FUT_MS(1));
  assert_int_equal(atomic_load(&g.finished), 1);
  fut_loop_shutdown_default_executor(*state, FUT_SEC(10));
  drain(*state);
}

static void test_to_thread_needs_a_loop(void **state) {
  (void)state;
  fut_t *f = (fut_t *)1;
  assert_int_equal(fut_to_thread(blocking, NULL, &f), FUT_E_NOT_IN_TASK);
  assert_null(f);
}

#define T(fn) FX_LOOP_TEST(fn)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_threadsafe_result),
      T(test_threadsafe_pointer_handed_over),
      T(test_threadsafe_bytes),
      T(test_threadsafe_failure),
      T(test_threadsafe_cancel_from_other_thread),
      T(test_threadsafe_task_cancelled_on_loop),
      T(test_threadsafe_cancel_before_start),
      T(test_threadsafe_loop_closed_first),
      T(test_threadsafe_many_threads),
      T(test_threadsafe_bad_args),
      T(test_to_thread),
      T(test_to_thread_copies_context),
      T(test_to_thread_cancel_while_running),
      T(test_to_thread_needs_a_loop),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
