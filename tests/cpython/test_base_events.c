/* CPython's Lib/test/test_asyncio/test_base_events.py as libfuture's
 * behavioural spec: one cmocka test per CPython test method that applies
 * to C, named after it, with the CPython class and method beside it.
 * CPython's BaseEventLoopTests drive a BaseEventLoop whose selector is a
 * mock; here the real loop runs, and what those tests read from private
 * attributes (_ready, _scheduled, the selector's timeout) is read through
 * fut_loop_stats and fut_loop_backend_timeout.  The methods that do not
 * apply to C (mocked sockets and getaddrinfo, private helpers, SSL, task
 * factories, Python types and exceptions raised by callbacks) are listed
 * with the reason in docs/asyncio-to-libfuture.md. */
#include "fixture.h"
#include "task_helpers.h"

#include "net_util.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define T(fn) FX_LOOP_TEST(fn)

static void run_briefly(fut_loop_t *loop) {
  for (int i = 0; i < 4; i++)
    assert_int_equal(fut_loop_run_once(loop, 0), 0);
}

static void noop_cb(void *arg) {
  (void)arg;
}

static fut_loop_stats_t stats(fut_loop_t *loop) {
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  return st;
}

/* ---- BaseEventLoopTests -------------------------------------------------- */

/* BaseEventLoopTests.test_close */
static void test_close(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f = newf(loop);
  assert_false(fut_loop_is_closed(loop));
  assert_int_equal(fut_loop_close(loop), 0);
  assert_true(fut_loop_is_closed(loop));
  /* it should be possible to call close() more than once */
  assert_int_equal(fut_loop_close(loop), 0);
  assert_int_equal(fut_loop_close(loop), 0);
  /* operation blocked when the loop is closed */
  assert_int_equal(fut_loop_run_forever(loop), FUT_E_CLOSED);
  assert_int_equal(fut_loop_run_until_complete(loop, f), FUT_E_CLOSED);
  fut_unref(f);
}

static int noop_job(void *arg, fut_cfuture_t *cf) {
  (void)arg;
  (void)cf;
  return 0;
}

/* BaseEventLoopTests.test_set_default_executor: the loop uses the thread
 * pool given (shutting that pool down makes run_in_executor(NULL) fail). */
static void test_set_default_executor(void **state) {
  fut_loop_t *loop = *state;
  fut_executor_t *ex;
  assert_int_equal(fut_thread_pool_new(1, &ex), 0);
  assert_int_equal(fut_loop_set_default_executor(loop, ex), 0);
  assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_SEC(30)), 0);
  fut_t *f = (fut_t *)&f;
  assert_int_equal(fut_run_in_executor(loop, NULL, noop_job, NULL, &f),
                   FUT_E_SHUTDOWN);
  assert_null(f);
  fut_executor_free(ex);
}

static int mock_submit(void *self, const fut_job_t *job, fut_cfuture_t **out) {
  (void)self;
  (void)job;
  (void)out;
  return -ENOSYS;
}
static int mock_shutdown(void *self, bool wait, bool cancel, uint64_t t) {
  (void)self;
  (void)wait;
  (void)cancel;
  (void)t;
  return 0;
}
static void mock_destroy(void *self) {
  (void)self;
}
static const fut_executor_ops_t mock_ops = {"mock", mock_submit, mock_shutdown,
                                            mock_destroy};

/* BaseEventLoopTests.test_set_default_executor_error: anything but a
 * thread pool is refused (TypeError there), and the default stays. */
static void test_set_default_executor_error(void **state) {
  fut_loop_t *loop = *state;
  fut_executor_t *ex;
  assert_int_equal(fut_executor_new(&mock_ops, NULL, &ex), 0);
  assert_int_equal(fut_loop_set_default_executor(loop, ex), -EINVAL);
  fut_executor_free(ex);
  /* the loop still makes its own thread pool for run_in_executor(NULL) */
  fut_t *f;
  assert_int_equal(fut_run_in_executor(loop, NULL, noop_job, NULL, &f), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, f), 0);
  fut_unref(f);
}

struct gate {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool open;
};

static int gate_job(void *arg, fut_cfuture_t *cf) {
  (void)cf;
  struct gate *g = arg;
  pthread_mutex_lock(&g->mu);
  while (!g->open)
    pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
  return 0;
}

/* BaseEventLoopTests.test_shutdown_default_executor_timeout: the executor
 * did not finish joining in time: -ETIMEDOUT (a RuntimeWarning there). */
static void test_shutdown_default_executor_timeout(void **state) {
  fut_loop_t *loop = *state;
  struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
  fut_t *f;
  assert_int_equal(fut_run_in_executor(loop, NULL, gate_job, &g, &f), 0);
  assert_int_equal(fut_loop_shutdown_default_executor(loop, FUT_MS(10)),
                   -ETIMEDOUT);
  pthread_mutex_lock(&g.mu);
  g.open = true;
  pthread_cond_broadcast(&g.cv);
  pthread_mutex_unlock(&g.mu);
  assert_int_equal(fut_loop_run_until_complete(loop, f), 0);
  fut_unref(f);
}

/* BaseEventLoopTests.test_call_soon */
static void test_call_soon(void **state) {
  fut_loop_t *loop = *state;
  fut_handle_t *h;
  assert_int_equal(fut_loop_call_soon(loop, noop_cb, NULL, &h), 0);
  assert_non_null(h);
  assert_false(fut_handle_cancelled(h));
  assert_int_equal(fut_handle_when(h), 0); /* a Handle, not a TimerHandle */
  assert_int_equal(stats(loop).ready, 1);  /* in _ready */
  assert_int_equal(stats(loop).pending_timers, 0);
  fut_handle_unref(h);
  run_briefly(loop);
}

/* BaseEventLoopTests.test_call_soon_non_callable: a NULL callback
 * (TypeError there). */
static void test_call_soon_non_callable(void **state) {
  fut_loop_t *loop = *state;
  fut_loop_set_debug(loop, true);
  fut_handle_t *h = (fut_handle_t *)&h;
  assert_int_equal(fut_loop_call_soon(loop, NULL, NULL, &h), -EINVAL);
  assert_int_equal(stats(loop).ready, 0);
}

/* BaseEventLoopTests.test_call_later */
static void test_call_later(void **state) {
  fut_loop_t *loop = *state;
  uint64_t t0 = fut_loop_time(loop);
  fut_handle_t *h;
  assert_int_equal(fut_loop_call_later(loop, FUT_SEC(10), noop_cb, NULL, &h),
                   0);
  assert_true(fut_handle_when(h) >= t0 + FUT_SEC(10)); /* a TimerHandle */
  assert_int_equal(stats(loop).pending_timers, 1);     /* in _scheduled */
  assert_int_equal(stats(loop).ready, 0);              /* not in _ready */
  fut_handle_cancel(h);
  fut_handle_unref(h);
  run_briefly(loop);
}

/* BaseEventLoopTests.test_call_later_negative_delays: delays are unsigned
 * here, so the two timers are set in the past with call_at (-1 and -2 ms);
 * the earlier one runs first. */
static void test_call_later_negative_delays(void **state) {
  fut_loop_t *loop = *state;
  fx_log_t log = {0};
  fx_logent_t a = {&log, 'a'}, b = {&log, 'b'};
  uint64_t now = fut_loop_time(loop);
  assert_int_equal(fut_loop_call_at(loop, now - FUT_MS(1), fx_log_cb, &a, NULL),
                   0);
  assert_int_equal(fut_loop_call_at(loop, now - FUT_MS(2), fx_log_cb, &b, NULL),
                   0);
  run_briefly(loop);
  assert_int_equal(log.n, 2);
  assert_int_equal(log.v[0], 'b');
  assert_int_equal(log.v[1], 'a');
}

/* BaseEventLoopTests.test_time_and_call_at */
static void test_time_and_call_at(void **state) {
  fut_loop_t *loop = *state;
  uint64_t delay = FUT_MS(100);
  uint64_t when = fut_loop_time(loop) + delay;
  assert_int_equal(fut_loop_call_at(loop, when, fx_stop_cb, loop, NULL), 0);
  uint64_t t0 = fut_loop_time(loop);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  uint64_t dt = fut_loop_time(loop) - t0;
  assert_true(dt >= delay - FUT_MS(1)); /* CLOCK_RES */
}

/* check_thread of test_check_thread, from a thread that does not own the
 * loop; with create_loop the thread owns a loop of its own. */
struct check_thread {
  fut_loop_t *loop;
  fut_t *fut;
  bool create_loop;
  int rc[3];
  uint64_t when; /* loop.time() + 60, read on the loop's thread */
};

static void set_result_cb(void *f) {
  fut_set_result(f, NULL, NULL);
}

static void *check_in_thread(void *p) {
  struct check_thread *c = p;
  fut_loop_t *loop2 = NULL;
  if (c->create_loop && fut_loop_new(&loop2) != 0)
    return NULL;
  fut_handle_t *h = NULL;
  c->rc[0] = fut_loop_call_soon(c->loop, noop_cb, NULL, &h);
  c->rc[1] = fut_loop_call_later(c->loop, FUT_SEC(60), noop_cb, NULL, &h);
  c->rc[2] = fut_loop_call_at(c->loop, c->when, noop_cb, NULL, &h);
  if (loop2)
    fut_loop_free(loop2);
  fut_loop_call_soon_threadsafe(c->loop, set_result_cb, c->fut);
  return NULL;
}

/* BaseEventLoopTests.test_check_thread: in debug mode a call from a
 * thread that does not own the loop is refused (RuntimeError there),
 * whether or not that thread has a loop of its own.  The halves with
 * debug mode off are left out: such calls are undefined behaviour in C,
 * as loop.h says (asyncio lets them through unchecked). */
static void test_check_thread(void **state) {
  fut_loop_t *loop = *state;
  fut_loop_set_debug(loop, true);
  for (int create_loop = 0; create_loop < 2; create_loop++) {
    struct check_thread c = {loop,
                             newf(loop),
                             create_loop,
                             {1, 1, 1},
                             fut_loop_time(loop) + FUT_SEC(60)};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, check_in_thread, &c), 0);
    assert_int_equal(fut_loop_run_until_complete(loop, c.fut), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    for (int i = 0; i < 3; i++)
      assert_int_equal(c.rc[i], FUT_E_WRONG_THREAD);
    fut_unref(c.fut);
  }
}

/* BaseEventLoopTests.test__run_once: a cancelled timer at +5 s does not
 * shorten the poll; the one at +10 s sets it, and only it stays
 * scheduled. */
static void test__run_once(void **state) {
  fut_loop_t *loop = *state;
  fut_handle_t *h1, *h2;
  uint64_t now = fut_loop_time(loop);
  assert_int_equal(fut_loop_call_at(loop, now + FUT_SEC(5), noop_cb, NULL, &h1),
                   0);
  assert_int_equal(
      fut_loop_call_at(loop, now + FUT_SEC(10), noop_cb, NULL, &h2), 0);
  fut_handle_cancel(h1);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  uint64_t t = fut_loop_backend_timeout(loop);
  assert_true(t > FUT_MS(9500) && t < FUT_MS(10500));
  assert_int_equal(stats(loop).pending_timers, 1);
  fut_handle_cancel(h2);
  fut_handle_unref(h1);
  fut_handle_unref(h2);
  run_briefly(loop);
}

/* BaseEventLoopTests.test_set_debug */
static void test_set_debug(void **state) {
  fut_loop_t *loop = *state;
  fut_loop_set_debug(loop, true);
  assert_true(fut_loop_get_debug(loop));
  fut_loop_set_debug(loop, false);
  assert_false(fut_loop_get_debug(loop));
}

struct sched {
  fut_loop_t *loop;
  bool processed;
  fut_handle_t *handle;
};

static void schedule_cb(void *arg) {
  struct sched *s = arg;
  s->processed = true;
  assert_int_equal(fut_loop_call_soon(s->loop, noop_cb, NULL, &s->handle), 0);
}

/* BaseEventLoopTests.test__run_once_schedule_handle: a timer already due
 * runs in this iteration; what it schedules waits in the ready queue. */
static void test__run_once_schedule_handle(void **state) {
  fut_loop_t *loop = *state;
  struct sched s = {loop, false, NULL};
  assert_int_equal(fut_loop_call_at(loop, fut_loop_time(loop) - FUT_SEC(1),
                                    schedule_cb, &s, NULL),
                   0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_true(s.processed);
  assert_non_null(s.handle);
  assert_int_equal(stats(loop).ready, 1);
  fut_handle_unref(s.handle);
  run_briefly(loop);
}

/* BaseEventLoopTests.test_run_until_complete_type_error: not a future
 * (NULL here; TypeError there). */
static void test_run_until_complete_type_error(void **state) {
  assert_int_equal(fut_loop_run_until_complete(*state, NULL), -EINVAL);
}

/* BaseEventLoopTests.test_run_until_complete_loop: a future of another
 * loop (ValueError there). */
static void test_run_until_complete_loop(void **state) {
  fut_t *task = newf(*state);
  fut_loop_t *other = new_loop();
  assert_int_equal(fut_loop_run_until_complete(other, task), FUT_E_OTHER_LOOP);
  fut_cancel(task, NULL);
  fut_unref(task);
  end_loop(other);
  run_briefly(*state);
}

static int sleep_task(void *arg) {
  return fut_sleep(*(uint64_t *)arg);
}

/* BaseEventLoopTests.test_run_until_complete_loop_orphan_future_close_loop:
 * the first run ends early (a callback stops the loop: SystemExit there),
 * and the next run_until_complete must not be disturbed by what the first
 * left behind. */
static void
test_run_until_complete_loop_orphan_future_close_loop(void **state) {
  fut_loop_t *loop = *state;
  uint64_t d1 = FUT_MS(100), d2 = FUT_MS(200);
  assert_int_equal(fut_loop_call_soon(loop, fx_stop_cb, loop, NULL), 0);
  fut_t *t1 = spawn(loop, sleep_task, &d1);
  assert_int_equal(fut_loop_run_until_complete(loop, t1), FUT_E_STOPPED);
  fut_t *t2 = spawn(loop, sleep_task, &d2);
  assert_int_equal(fut_loop_run_until_complete(loop, t2), 0);
  assert_true(fut_done(t1));
  fut_unref(t1);
  fut_unref(t2);
}

static int zero_error_task(void *arg) {
  (void)arg;
  int err = fut_sleep(FUT_MS(10));
  if (err)
    return err;
  return fut_task_fail(-EDOM, "division by zero");
}

/* BaseEventLoopTests.test_default_exc_handler_coro: a task that failed
 * and whose exception nobody retrieved is reported when it is freed. */
static void test_default_exc_handler_coro(void **state) {
  fut_loop_t *loop = *state;
  fx_exc_t cap;
  fx_exc_capture(loop, &cap);
  fut_t *t = spawn(loop, zero_error_task, NULL);
  int stopped = 0;
  assert_int_equal(fut_add_done_callback(t, fx_done_count_cb, &stopped), 0);
  assert_true(fx_run_until_flag(loop, &stopped));
  fut_unref(t); /* Future.__del__ */
  run_briefly(loop);
  assert_int_equal(cap.count, 1);
  assert_non_null(strstr(cap.message, "exception was never retrieved"));
  assert_int_equal(cap.err, -EDOM);
  assert_string_equal(cap.detail, "division by zero");
}

/* A future that failed and is dropped unretrieved: one report. */
static void provoke_report(fut_loop_t *loop) {
  fut_t *f = newf(loop);
  fut_set_exception(f, -EDOM, "zero_error");
  fut_unref(f);
  run_briefly(loop);
}

static void mock_handler(fut_loop_t *loop, const fut_exception_ctx_t *ctx,
                         void *arg) {
  (void)loop;
  (void)ctx;
  (*(int *)arg)++;
}

/* BaseEventLoopTests.test_set_exc_handler_custom: get / set, and the
 * custom handler receives the reports until it is reset to the default.
 * The report comes from an unretrieved failed future: a C callback cannot
 * raise. */
static void test_set_exc_handler_custom(void **state) {
  fut_loop_t *loop = *state;
  fut_loop_set_debug(loop, true);
  fut_loop_set_slow_callback_duration(loop, UINT64_MAX);
  fut_exception_handler_cb cb = mock_handler;
  void *arg = &arg;
  fut_loop_get_exception_handler(loop, &cb, &arg);
  assert_null(cb); /* the default */
  int calls = 0;
  fut_loop_set_exception_handler(loop, mock_handler, &calls);
  fut_loop_get_exception_handler(loop, &cb, &arg);
  assert_ptr_equal(cb, mock_handler);
  assert_ptr_equal(arg, &calls);
  provoke_report(loop);
  assert_int_equal(calls, 1);

  fut_loop_set_exception_handler(loop, NULL, NULL);
  fut_loop_get_exception_handler(loop, &cb, &arg);
  assert_null(cb);
  provoke_report(loop); /* to the default handler (stderr) */
  assert_int_equal(calls, 1);
}

/* BaseEventLoopTests.test_env_var_debug: FUT_DEBUG plays
 * PYTHONASYNCIODEBUG (read by fut_loop_new). */
static void test_env_var_debug(void **state) {
  (void)state;
  const char *old = getenv("FUT_DEBUG");
  char *saved = old ? strdup(old) : NULL;
  static const struct {
    const char *value; /* NULL: unset */
    bool debug;
  } cases[] = {{NULL, false}, {"", false}, {"1", true}, {"0", false}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (cases[i].value)
      setenv("FUT_DEBUG", cases[i].value, 1);
    else
      unsetenv("FUT_DEBUG");
    fut_loop_t *loop = new_loop();
    assert_int_equal(fut_loop_get_debug(loop), cases[i].debug);
    end_loop(loop);
  }
  if (saved)
    setenv("FUT_DEBUG", saved, 1);
  else
    unsetenv("FUT_DEBUG");
  free(saved);
}

static int empty_task(void *arg) {
  (void)arg;
  return 0;
}

/* BaseEventLoopTests.test_create_task_error_closes_coro: a closed loop
 * refuses the task (RuntimeError), and nothing is left behind. */
static void test_create_task_error_closes_coro(void **state) {
  fut_loop_t *loop = *state;
  assert_int_equal(fut_loop_close(loop), 0);
  fut_t *t = (fut_t *)&t;
  assert_int_equal(fut_create_task(loop, empty_task, NULL, NULL, &t),
                   FUT_E_CLOSED);
  assert_null(t);
}

/* BaseEventLoopTests.test_create_named_task_with_default_factory */
static void test_create_named_task_with_default_factory(void **state) {
  fut_loop_t *loop = *state;
  fut_task_opts_t o;
  fut_task_opts_init(&o);
  o.name = "test_task";
  fut_t *t;
  assert_int_equal(fut_create_task(loop, empty_task, NULL, &o, &t), 0);
  assert_string_equal(fut_task_get_name(t), "test_task");
  assert_int_equal(fut_loop_run_until_complete(loop, t), 0);
  fut_unref(t);
}

static int fail_task(void *arg) {
  (void)arg;
  return fut_task_fail(-EINTR, "KeyboardInterrupt");
}

struct func {
  fut_loop_t *loop;
  bool called;
};

static void func_cb(void *arg) {
  struct func *f = arg;
  fut_loop_stop(f->loop);
  f->called = true;
}
static void call_soon_func(void *arg) {
  struct func *f = arg;
  assert_int_equal(fut_loop_call_soon(f->loop, func_cb, f, NULL), 0);
}

/* BaseEventLoopTests.test_run_until_complete_baseexception: after a
 * run_until_complete whose future failed, no stale stop is pending: the
 * next run_forever runs until its own stop (a failed task stands for the
 * KeyboardInterrupt). */
static void test_run_until_complete_baseexception(void **state) {
  fut_loop_t *loop = *state;
  fut_t *t = spawn(loop, fail_task, NULL);
  assert_int_equal(fut_loop_run_until_complete(loop, t), -EINTR);
  fut_unref(t);
  struct func f = {loop, false};
  assert_int_equal(fut_loop_call_soon(loop, call_soon_func, &f, NULL), 0);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  assert_true(f.called);
}

/* BaseEventLoopTests.test_run_forever_keyboard_interrupt: the failure of
 * a future given to run_until_complete reaches its caller, and counts as
 * retrieved: nothing is reported when the task is freed and the loop
 * closed (a failed task stands for the KeyboardInterrupt). */
static void test_run_forever_keyboard_interrupt(void **state) {
  fut_loop_t *loop = *state;
  fx_exc_t cap;
  fx_exc_capture(loop, &cap);
  fut_t *t = spawn(loop, fail_task, NULL);
  assert_int_equal(fut_loop_run_until_complete(loop, t), -EINTR);
  fut_unref(t);
  run_briefly(loop);
  assert_int_equal(fut_loop_close(loop), 0);
  assert_int_equal(cap.count, 0);
}

/* BaseEventLoopTests.test_subprocess_exec_invalid_args: the missing
 * program (empty args); the other cases are Python types and keyword
 * arguments (universal_newlines, shell, bufsize) with no C form. */
static void test_subprocess_exec_invalid_args(void **state) {
  char *const empty[] = {NULL};
  fut_process_t *p = (fut_process_t *)&p;
  assert_int_equal(fut_create_subprocess_exec(*state, empty, NULL, &p),
                   -EINVAL);
  assert_null(p);
  p = (fut_process_t *)&p;
  assert_int_equal(fut_create_subprocess_exec(*state, NULL, NULL, &p), -EINVAL);
  assert_null(p);
}

/* BaseEventLoopTests.test_subprocess_shell_invalid_args: no command string
 * (an int or a list there: a NULL string here). */
static void test_subprocess_shell_invalid_args(void **state) {
  fut_process_t *p = (fut_process_t *)&p;
  assert_int_equal(fut_create_subprocess_shell(*state, NULL, NULL, &p),
                   -EINVAL);
  assert_null(p);
}

/* BaseEventLoopTests.test_run_once: the idiom call_soon(stop) then
 * run_forever runs what is ready once. */
static void test_run_once(void **state) {
  fut_loop_t *loop = *state;
  int count = 0;
  assert_int_equal(fut_loop_call_soon(loop, fx_count_cb, &count, NULL), 0);
  assert_int_equal(fut_loop_call_soon(loop, fx_stop_cb, loop, NULL), 0);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  assert_int_equal(count, 1);
}

/* BaseEventLoopTests.test_run_forever_pre_stopped: stopped before it
 * runs, run_forever makes one iteration that does not wait (select(0)
 * there), even with a timer 10 s away. */
static void test_run_forever_pre_stopped(void **state) {
  fut_loop_t *loop = *state;
  fut_handle_t *h;
  assert_int_equal(fut_loop_call_later(loop, FUT_SEC(10), noop_cb, NULL, &h),
                   0);
  fut_loop_stop(loop);
  uint64_t t0 = fut_loop_time(loop);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  assert_true(fut_loop_time(loop) - t0 < FUT_SEC(5));
  fut_handle_cancel(h);
  fut_handle_unref(h);
  run_briefly(loop);
}

struct integ {
  fut_loop_t *loop;
  int count;
  bool saw_running;
};

static void integ_cb(void *arg) {
  struct integ *c = arg;
  c->count++;
  c->saw_running =
      fut_get_running_loop() == c->loop && fut_loop_is_running(c->loop);
}

/* BaseEventLoopTests.test_custom_run_forever_integration: a custom loop
 * of ten iterations (fut_loop_run_once: _run_forever_setup, _run_once
 * and _run_forever_cleanup in one) runs the callback once, with the loop
 * running meanwhile and not afterwards. */
static void test_custom_run_forever_integration(void **state) {
  fut_loop_t *loop = *state;
  struct integ c = {loop, 0, false};
  assert_int_equal(fut_loop_call_soon(loop, integ_cb, &c, NULL), 0);
  for (int i = 0; i < 10; i++)
    assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_null(fut_get_running_loop());
  assert_false(fut_loop_is_running(loop));
  assert_int_equal(c.count, 1);
  assert_true(c.saw_running);
}

/* ---- BaseEventLoopWithSelectorTests: the loop's own slow-callback log --- */

static int stop_loop_coro(void *loop) {
  fut_loop_stop(loop);
  return 0;
}

/* Every report's message, for test_log_slow_callbacks. */
struct slow_log {
  int count;
  bool handle_seen; /* a report of "callback" carried its handle */
  bool task_seen;   /* a report named the task */
};

static void slow_handler(fut_loop_t *loop, const fut_exception_ctx_t *ctx,
                         void *arg) {
  (void)loop;
  struct slow_log *l = arg;
  l->count++;
  if (strncmp(ctx->message, "executing ", 10) != 0 ||
      !strstr(ctx->message, " took ") || !strstr(ctx->message, " seconds"))
    return;
  if (ctx->handle && strstr(ctx->message, "executing callback "))
    l->handle_seen = true;
  if (strstr(ctx->message, "executing task 'stop_loop_coro'"))
    l->task_seen = true;
}

/* BaseEventLoopWithSelectorTests.test_log_slow_callbacks: with a zero
 * threshold in debug mode, a callback and a task step are reported as
 * slow ("executing ... took ... seconds"); the task's report names it
 * (asyncio: "Executing <Task ... stop_loop_coro ...> took"). */
static void test_log_slow_callbacks(void **state) {
  fut_loop_t *loop = *state;
  struct slow_log l = {0};
  fut_loop_set_exception_handler(loop, slow_handler, &l);
  fut_loop_set_debug(loop, true);
  fut_loop_set_slow_callback_duration(loop, 0);
  /* slow callback (with a handle, for the report to carry it) */
  fut_handle_t *h;
  assert_int_equal(fut_loop_call_soon(loop, fx_stop_cb, loop, &h), 0);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  fut_handle_unref(h);
  assert_true(l.count >= 1);
  assert_true(l.handle_seen);
  /* slow task */
  fut_task_opts_t o;
  fut_task_opts_init(&o);
  o.name = "stop_loop_coro";
  fut_t *t;
  assert_int_equal(fut_create_task(loop, stop_loop_coro, loop, &o, &t), 0);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  assert_true(l.task_seen);
  fut_loop_set_debug(loop, false);
  assert_true(fut_done(t));
  fut_unref(t);
  fut_loop_set_exception_handler(loop, NULL, NULL);
}

/* ---- BaseEventLoopWithSelectorTests: connections, servers, datagrams ---- */

struct conn {
  const char *host;
  int port;
  fut_connect_opts_t opts;
  my_proto_t proto;
  fut_transport_t *t;
  int rc;
};

static int connect_task(void *arg) {
  struct conn *c = arg;
  c->rc = fut_create_connection(&my_proto, &c->proto, c->host, c->port,
                                &c->opts, &c->t);
  return 0;
}

static void conn_init(struct conn *c, const char *host, int port) {
  memset(c, 0, sizeof *c);
  c->host = host;
  c->port = port;
  fut_connect_opts_init(&c->opts);
}

/* BaseEventLoopWithSelectorTests.test_create_connection_no_host_port_sock:
 * no host (and no port): ValueError there, -EINVAL here. */
static void test_create_connection_no_host_port_sock(void **state) {
  struct conn c;
  conn_init(&c, NULL, 0);
  assert_int_equal(run_main(*state, connect_task, &c), 0);
  assert_int_equal(c.rc, -EINVAL);
  assert_null(c.t);
  assert_int_equal(c.proto.state, ST_INITIAL);
}

/* BaseEventLoopWithSelectorTests.test_create_connection_connect_err: the
 * connect fails (CPython mocks sock_connect to raise OSError; here a
 * loopback port bound by nobody listening refuses), and the error is the
 * connect's; nothing is left open. */
static void test_create_connection_connect_err(void **state) {
  int port;
  int hold = bound_loopback(SOCK_STREAM, false, &port); /* not listening */
  struct conn c;
  conn_init(&c, "127.0.0.1", port);
  assert_int_equal(run_main(*state, connect_task, &c), 0);
  assert_int_equal(c.rc, -ECONNREFUSED);
  assert_null(c.t);
  assert_int_equal(c.proto.state, ST_INITIAL);
  close(hold);
}

/* BaseEventLoopWithSelectorTests.test_create_server_ipv6 (on ::1) */
static void test_create_server_ipv6(void **state) {
  fut_loop_t *loop = *state;
  my_proto_t p = {0};
  fut_server_t *srv = NULL;
  int err = fut_create_server(loop, &my_proto, NULL, &p, "::1", 0, NULL, &srv);
  if (err == -EADDRNOTAVAIL || err == -EAFNOSUPPORT) {
    skip(); /* failed to bind to ::1 */
    return;
  }
  assert_int_equal(err, 0);
  int fds[4];
  assert_true(fut_server_sockets(srv, fds, 4) > 0);
  close_server(loop, srv);
}

/* BaseEventLoopWithSelectorTests.test_create_server_cant_bind: the bind
 * fails (mocked there; here the loopback port is taken by a listener):
 * the error comes back and no socket is left open. */
static void test_create_server_cant_bind(void **state) {
  fut_loop_t *loop = *state;
  int port;
  int hold = bound_loopback(SOCK_STREAM, true, &port);
  my_proto_t p = {0};
  fut_server_t *srv = (fut_server_t *)&srv;
  assert_int_equal(fut_create_server(loop, &my_proto, NULL, &p, "127.0.0.1",
                                     port, NULL, &srv),
                   -EADDRINUSE);
  close(hold);
}

static void dg_lost(fut_transport_t *t, int err, void *arg) {
  (void)t;
  (void)err;
  (*(int *)arg)++;
}
static const fut_datagram_protocol_t dg_proto = {.connection_lost = dg_lost};

/* BaseEventLoopWithSelectorTests.test_create_datagram_endpoint_cant_bind */
static void test_create_datagram_endpoint_cant_bind(void **state) {
  fut_loop_t *loop = *state;
  int port;
  int hold = bound_loopback(SOCK_DGRAM, false, &port);
  int lost = 0;
  fut_datagram_opts_t o;
  fut_datagram_opts_init(&o);
  o.family = AF_INET;
  fut_transport_t *t = (fut_transport_t *)&t;
  assert_int_equal(fut_create_datagram_endpoint(loop, &dg_proto, &lost,
                                                "127.0.0.1", port, NULL, 0, &o,
                                                &t),
                   -EADDRINUSE);
  run_briefly(loop);
  assert_int_equal(lost, 0);
  close(hold);
}

/* BaseEventLoopWithSelectorTests.test_create_datagram_endpoint_noaddr_nofamily:
 * neither address nor family (ValueError there). */
static void test_create_datagram_endpoint_noaddr_nofamily(void **state) {
  fut_loop_t *loop = *state;
  int lost = 0;
  fut_transport_t *t = (fut_transport_t *)&t;
  assert_int_equal(fut_create_datagram_endpoint(loop, &dg_proto, &lost, NULL, 0,
                                                NULL, 0, NULL, &t),
                   -EINVAL);
  assert_null(t);
  run_briefly(loop);
  assert_int_equal(lost, 0);
}

/* BaseEventLoopWithSelectorTests.
 * test_create_datagram_endpoint_no_matching_family: an IPv4 remote and an
 * IPv6 local address (ValueError there). */
static void test_create_datagram_endpoint_no_matching_family(void **state) {
  fut_loop_t *loop = *state;
  int lost = 0;
  fut_transport_t *t = (fut_transport_t *)&t;
  assert_int_equal(fut_create_datagram_endpoint(loop, &dg_proto, &lost, "::1",
                                                0, "127.0.0.1", 9, NULL, &t),
                   -EINVAL);
  run_briefly(loop);
  assert_int_equal(lost, 0);
}

static int sockopt(int fd, int level, int name) {
  int v = -1;
  socklen_t len = sizeof v;
  assert_int_equal(getsockopt(fd, level, name, &v, &len), 0);
  return v;
}

static int transport_socket(fut_transport_t *t) {
  int fd = -1;
  socklen_t len = sizeof fd;
  assert_int_equal(fut_transport_get_extra_info(t, FUT_EXTRA_SOCKET, &fd, &len),
                   0);
  return fd;
}

/* BaseEventLoopWithSelectorTests.test_create_datagram_endpoint_sockopts:
 * socket options are applied only when asked for. */
static void test_create_datagram_endpoint_sockopts(void **state) {
  fut_loop_t *loop = *state;
  int lost = 0;
  fut_transport_t *t;
  assert_int_equal(fut_create_datagram_endpoint(loop, &dg_proto, &lost,
                                                "127.0.0.1", 0, NULL, 0, NULL,
                                                &t),
                   0);
  int fd = transport_socket(t);
  assert_false(sockopt(fd, SOL_SOCKET, SO_REUSEPORT));
  assert_false(sockopt(fd, SOL_SOCKET, SO_BROADCAST));
  fut_transport_close(t);
  assert_true(fx_run_until_flag(loop, &lost));
  fut_transport_unref(t);

  fut_datagram_opts_t o;
  fut_datagram_opts_init(&o);
  o.reuse_port = true;
  o.allow_broadcast = true;
  lost = 0;
  assert_int_equal(fut_create_datagram_endpoint(
                       loop, &dg_proto, &lost, "127.0.0.1", 0, NULL, 0, &o, &t),
                   0);
  fd = transport_socket(t);
  assert_false(sockopt(fd, SOL_SOCKET, SO_REUSEADDR));
  assert_true(sockopt(fd, SOL_SOCKET, SO_REUSEPORT));
  assert_true(sockopt(fd, SOL_SOCKET, SO_BROADCAST));
  fut_transport_close(t);
  assert_true(fx_run_until_flag(loop, &lost));
  fut_transport_unref(t);
}

/* ---- BaseLoopSockSendfileTests --------------------------------------------
 */

#define SF_LEN (160 * 1024) /* b"12345abcde" * 16 * 1024 */

struct sf {
  fut_loop_t *loop;
  fut_server_t *srv;
  my_proto_t proto; /* the server side */
  int sock;         /* the client socket, non-blocking */
  int file;
  unsigned char *data;
  off_t offset;
  bool use_offset;
  size_t count, sent;
  int rc;
};

static int sf_connect(void *arg) {
  struct sf *s = arg;
  struct sockaddr_in sin = loopback4(fut_server_port(s->srv));
  return fut_sock_connect(s->sock, (struct sockaddr *)&sin, sizeof sin);
}

/* prepare(): a file of the data, a server collecting what it receives and
 * a non-blocking client socket connected to it. */
static void sf_prepare(struct sf *s, fut_loop_t *loop) {
  memset(s, 0, sizeof *s);
  s->loop = loop;
  s->data = malloc(SF_LEN);
  assert_non_null(s->data);
  for (size_t i = 0; i < SF_LEN; i++)
    s->data[i] = (unsigned char)"12345abcde"[i % 10];
  char path[] = "/tmp/fut_sendfile_XXXXXX";
  s->file = mkstemp(path);
  assert_true(s->file >= 0);
  unlink(path);
  assert_int_equal(write(s->file, s->data, SF_LEN), SF_LEN);
  assert_int_equal(lseek(s->file, 0, SEEK_SET), 0);
  s->proto.keep = true;
  assert_int_equal(fut_create_server(loop, &my_proto, NULL, &s->proto,
                                     "127.0.0.1", 0, NULL, &s->srv),
                   0);
  s->sock = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  assert_true(s->sock >= 0);
  assert_int_equal(run_main(loop, sf_connect, s), 0);
}

/* The client closes; the server's side sees the end. */
static void sf_finish(struct sf *s) {
  close(s->sock);
  assert_true(fx_run_until(s->loop, mp_closed, &s->proto, FUT_SEC(10)));
  assert_false(s->proto.bad_state);
}

static void sf_cleanup(struct sf *s) {
  close_server(s->loop, s->srv);
  my_proto_free(&s->proto);
  close(s->file);
  free(s->data);
}

static int sf_send(void *arg) {
  struct sf *s = arg;
  s->rc = fut_sock_sendfile(s->sock, s->file, s->use_offset ? &s->offset : NULL,
                            s->count, &s->sent);
  return 0;
}

/* BaseLoopSockSendfileTests.test_sock_sendfile_fallback: the whole file
 * goes out (sendfile(2) here, or its read + send fallback) and the file
 * position advances by it. */
static void test_sock_sendfile_fallback(void **state) {
  struct sf s;
  sf_prepare(&s, *state);
  assert_int_equal(run_main(*state, sf_send, &s), 0);
  assert_int_equal(s.rc, 0);
  assert_int_equal(s.sent, SF_LEN);
  assert_int_equal(lseek(s.file, 0, SEEK_CUR), SF_LEN);
  sf_finish(&s);
  assert_int_equal(s.proto.nbytes, SF_LEN);
  assert_memory_equal(s.proto.data, s.data, SF_LEN);
  sf_cleanup(&s);
}

/* BaseLoopSockSendfileTests.test_sock_sendfile_fallback_offset_and_count:
 * with an explicit offset, the offset advances (file.tell() there). */
static void test_sock_sendfile_fallback_offset_and_count(void **state) {
  struct sf s;
  sf_prepare(&s, *state);
  s.use_offset = true;
  s.offset = 1000;
  s.count = 2000;
  assert_int_equal(run_main(*state, sf_send, &s), 0);
  assert_int_equal(s.rc, 0);
  assert_int_equal(s.sent, 2000);
  assert_int_equal(s.offset, 3000);
  sf_finish(&s);
  assert_int_equal(s.proto.nbytes, 2000);
  assert_memory_equal(s.proto.data, s.data + 1000, 2000);
  sf_cleanup(&s);
}

/* BaseLoopSockSendfileTests.test_blocking_socket: "must be non-blocking" */
static void test_blocking_socket(void **state) {
  struct sf s;
  sf_prepare(&s, *state);
  int fl = fcntl(s.sock, F_GETFL);
  assert_int_equal(fcntl(s.sock, F_SETFL, fl & ~O_NONBLOCK), 0);
  assert_int_equal(run_main(*state, sf_send, &s), 0);
  assert_int_equal(s.rc, -EINVAL);
  assert_int_equal(s.sent, 0);
  sf_finish(&s);
  assert_int_equal(s.proto.nbytes, 0);
  sf_cleanup(&s);
}

/* BaseLoopSockSendfileTests.test_negative_offset */
static void test_negative_offset(void **state) {
  struct sf s;
  sf_prepare(&s, *state);
  s.use_offset = true;
  s.offset = -1;
  assert_int_equal(run_main(*state, sf_send, &s), 0);
  assert_int_equal(s.rc, -EINVAL);
  sf_finish(&s);
  assert_int_equal(s.proto.nbytes, 0);
  sf_cleanup(&s);
}

/* BaseLoopSockSendfileTests.test_nonstream_socket: a datagram socket is
 * refused ("only SOCK_STREAM type sockets are supported"). */
static void test_nonstream_socket(void **state) {
  struct sf s;
  sf_prepare(&s, *state);
  int udp = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  assert_true(udp >= 0);
  int stream = s.sock;
  s.sock = udp;
  assert_int_equal(run_main(*state, sf_send, &s), 0);
  assert_int_equal(s.rc, -EINVAL);
  assert_int_equal(s.sent, 0);
  assert_int_equal(lseek(s.file, 0, SEEK_CUR), 0);
  close(udp);
  s.sock = stream;
  sf_finish(&s);
  sf_cleanup(&s);
}

/* ---- TestSelectorUtils ------------------------------------------------------
 */

static int accept_count(void *arg, void **out) {
  (void)arg;
  *out = NULL;
  return 0;
}

/* TestSelectorUtils.test_set_nodelay: base_events._set_nodelay is private;
 * what it serves is checked: a TCP transport has TCP_NODELAY set. */
static void test_set_nodelay(void **state) {
  fut_loop_t *loop = *state;
  fut_server_t *srv;
  static const fut_protocol_t none = {0};
  assert_int_equal(fut_create_server(loop, &none, accept_count, NULL,
                                     "127.0.0.1", 0, NULL, &srv),
                   0);
  struct conn c;
  conn_init(&c, "127.0.0.1", fut_server_port(srv));
  assert_int_equal(run_main(loop, connect_task, &c), 0);
  assert_int_equal(c.rc, 0);
  assert_true(sockopt(transport_socket(c.t), IPPROTO_TCP, TCP_NODELAY));
  fut_transport_close(c.t);
  assert_true(fx_run_until(loop, mp_closed, &c.proto, FUT_SEC(10)));
  fut_transport_unref(c.t);
  my_proto_free(&c.proto);
  fut_server_close_clients(srv);
  close_server(loop, srv);
}

/* ---- RunningLoopTests -----------------------------------------------------
 */

static int runner(void *inner) {
  return fut_loop_run_forever(inner);
}

/* RunningLoopTests.test_running_loop_within_a_loop */
static void test_running_loop_within_a_loop(void **state) {
  fut_loop_t *outer = *state;
  fut_loop_t *loop = new_loop();
  assert_int_equal(run_main(outer, runner, loop), FUT_E_RUNNING);
  end_loop(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_close),
      T(test_set_default_executor),
      T(test_set_default_executor_error),
      T(test_shutdown_default_executor_timeout),
      T(test_call_soon),
      T(test_call_soon_non_callable),
      T(test_call_later),
      T(test_call_later_negative_delays),
      T(test_time_and_call_at),
      T(test_check_thread),
      T(test__run_once),
      T(test_set_debug),
      T(test__run_once_schedule_handle),
      T(test_run_until_complete_type_error),
      T(test_run_until_complete_loop),
      T(test_run_until_complete_loop_orphan_future_close_loop),
      T(test_default_exc_handler_coro),
      T(test_set_exc_handler_custom),
      T(test_env_var_debug),
      T(test_create_task_error_closes_coro),
      T(test_create_named_task_with_default_factory),
      T(test_run_until_complete_baseexception),
      T(test_run_forever_keyboard_interrupt),
      T(test_subprocess_exec_invalid_args),
      T(test_subprocess_shell_invalid_args),
      T(test_run_once),
      T(test_run_forever_pre_stopped),
      T(test_custom_run_forever_integration),
      T(test_log_slow_callbacks),
      T(test_create_connection_no_host_port_sock),
      T(test_create_connection_connect_err),
      T(test_create_server_ipv6),
      T(test_create_server_cant_bind),
      T(test_create_datagram_endpoint_cant_bind),
      T(test_create_datagram_endpoint_noaddr_nofamily),
      T(test_create_datagram_endpoint_no_matching_family),
      T(test_create_datagram_endpoint_sockopts),
      T(test_running_loop_within_a_loop),
      T(test_sock_sendfile_fallback),
      T(test_sock_sendfile_fallback_offset_and_count),
      T(test_blocking_socket),
      T(test_negative_offset),
      T(test_nonstream_socket),
      T(test_set_nodelay),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
