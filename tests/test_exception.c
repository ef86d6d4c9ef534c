/* The exception handler, "Future exception was never retrieved", and debug
 * mode (slow callbacks, calls from a wrong thread). */
#include "fixture.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "loop/internal.h"

/* ---- handler set / get / call -------------------------------------------- */

static void test_exception_handler_set_get_call(void **state) {
  fut_loop_t *loop = *state;
  fut_exception_handler_cb cb = (fut_exception_handler_cb)1;
  void *arg = (void *)1;
  fut_loop_get_exception_handler(loop, &cb, &arg);
  assert_null(cb);
  assert_null(arg);
  fx_exc_t cap;
  fx_exc_capture(loop, &cap);
  fut_loop_get_exception_handler(loop, &cb, &arg);
  assert_ptr_equal(cb, fx_exc_handler);
  assert_ptr_equal(arg, &cap);
  fut_loop_get_exception_handler(loop, NULL, NULL);
  fut_exception_ctx_t ctx = {.message = "custom", .err = -EINTR,
                             .detail = "why"};
  fut_loop_call_exception_handler(loop, &ctx);
  assert_int_equal(cap.count, 1);
  assert_string_equal(cap.message, "custom");
  assert_int_equal(cap.err, -EINTR);
  assert_string_equal(cap.detail, "why");
  assert_false(cap.had_future);
  assert_false(cap.had_handle);
  /* NULL restores the default. */
  fut_loop_set_exception_handler(loop, NULL, &cap);
  fut_loop_get_exception_handler(loop, &cb, &arg);
  assert_null(cb);
  assert_null(arg);
}

/* Runs fn(loop, arg) with stderr sent to a temporary file; returns what
 * was written (static buffer). */
static const char *capture_stderr(void (*fn)(fut_loop_t *, void *),
                                  fut_loop_t *loop, void *arg) {
  static char out[4096];
  FILE *tf = tmpfile();
  assert_non_null(tf);
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  assert_true(saved >= 0);
  assert_true(dup2(fileno(tf), STDERR_FILENO) >= 0);
  fn(loop, arg);
  fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);
  rewind(tf);
  size_t n = fread(out, 1, sizeof out - 1, tf);
  out[n] = '\0';
  fclose(tf);
  return out;
}

static void call_default(fut_loop_t *loop, void *arg) {
  (void)arg;
  fut_exception_ctx_t ctx = {.message = "something broke", .err = -EIO,
                             .detail = "while reading /dev/zero"};
  fut_loop_call_exception_handler(loop, &ctx);
}

static void drop_failed(fut_loop_t *loop, void *arg) {
  (void)arg;
  fut_t *f;
  assert_int_equal(fut_new(loop, &f), 0);
  assert_int_equal(fut_set_exception(f, -ECONNRESET, "peer %s went away",
                                     "10.0.0.1"), 0);
  fut_unref(f);
}

static void test_exception_default_handler_prints(void **state) {
  fut_loop_t *loop = *state;
  const char *out = capture_stderr(call_default, loop, NULL);
  assert_non_null(strstr(out, "something broke"));
  assert_non_null(strstr(out, "EIO"));
  assert_non_null(strstr(out, "while reading /dev/zero"));
  out = capture_stderr(drop_failed, loop, NULL);
  assert_non_null(strstr(out, "Future exception was never retrieved"));
  assert_non_null(strstr(out, "ECONNRESET"));
  assert_non_null(strstr(out, "peer 10.0.0.1 went away"));
  assert_non_null(strstr(out, "future"));
}

/* ---- never retrieved ----------------------------------------------------- */

static void test_exception_never_retrieved_reported_once(void **state) {
  fut_loop_t *loop = *state;
  fx_exc_t cap;
  fx_exc_capture(loop, &cap);
  fut_t *f;
  assert_int_equal(fut_new(loop, &f), 0);
  fut_ref(f);
  assert_int_equal(fut_set_exception(f, -ETIMEDOUT, "after %d s", 3), 0);
  fut_unref(f);
  assert_int_equal(cap.count, 0); /* not the last reference */
  fut_unref(f);
  assert_int_equal(cap.count, 1);
  assert_string_equal(cap.message, "Future exception was never retrieved");
  assert_int_equal(cap.err, -ETIMEDOUT);
  assert_string_equal(cap.detail, "after 3 s");
  assert_true(cap.had_future);
  assert_int_equal(cap.fut_state, FUT_FINISHED);
  assert_int_equal(cap.live_futures, 1); /* alive during the report */
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.live_futures, 0);
}

static void test_exception_never_retrieved_after_callbacks(void **state) {
  fut_loop_t *loop = *state;
  fx_exc_t cap;
  fx_exc_capture(loop, &cap);
  fut_t *f;
  int ran = 0;
  assert_int_equal(fut_new(loop, &f), 0);
  assert_int_equal(fut_add_done_callback(f, fx_done_count_cb, &ran), 0);
  assert_int_equal(fut_set_exception(f, -EIO, NULL), 0);
  fut_unref(f); /* the dispatch holds the last reference */
  assert_int_equal(cap.count, 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(ran, 1);
  assert_int_equal(cap.count, 1);
  assert_string_equal(cap.detail, "");
}

static void test_exception_not_reported_when_retrieved(void **state) {
  fut_loop_t *loop = *state;
  fx_exc_t cap;
  fx_exc_capture(loop, &cap);
  fut_t *f;
  for (int how = 0; how < 4; how++) {
    assert_int_equal(fut_new(loop, &f), 0);
    assert_int_equal(fut_set_exception(f, -EIO, "x"), 0);
    if (how == 0) {
      assert_int_equal(fut_result(f, NULL), -EIO);
    } else if (how == 1) {
      assert_int_equal(fut_exception(f, NULL), -EIO);
    } else if (how == 2) {
      int64_t v;
      assert_int_equal(fut_result_i64(f, &v), -EIO);
    } else {
      assert_int_equal(fut_loop_run_until_complete(loop, f), -EIO);
    }
    fut_unref(f);
  }
  /* Results and cancellations are never reported. */
  assert_int_equal(fut_new(loop, &f), 0);
  assert_true(fut_cancel(f, "c"));
  fut_unref(f);
  assert_int_equal(fut_new(loop, &f), 0);
  assert_int_equal(fut_set_result_i64(f, 1), 0);
  fut_unref(f);
  assert_int_equal(fut_new(loop, &f), 0);
  fut_unref(f);
  assert_int_equal(cap.count, 0);
}

/* A handler that keeps the future it is shown: reported once, freed at the
 * handler's own unref. */
static fut_t *kept_future;
static int keep_count;
static void keeping_handler(fut_loop_t *loop, const fut_exception_ctx_t *ctx,
                            void *arg) {
  (void)loop;
  (void)arg;
  keep_count++;
  kept_future = fut_ref(ctx->future);
}

static void test_exception_handler_may_keep_future(void **state) {
  fut_loop_t *loop = *state;
  keep_count = 0;
  fut_loop_set_exception_handler(loop, keeping_handler, NULL);
  fut_t *f;
  assert_int_equal(fut_new(loop, &f), 0);
  assert_int_equal(fut_set_exception(f, -EIO, "kept"), 0);
  fut_unref(f);
  assert_int_equal(keep_count, 1);
  assert_ptr_equal(kept_future, f);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.live_futures, 1);
  fut_unref(kept_future);
  assert_int_equal(keep_count, 1);
  fut_loop_stats(loop, &st);
  assert_int_equal(st.live_futures, 0);
}

/* ---- debug mode ---------------------------------------------------------- */

static void busy_5ms(void *arg) {
  (void)arg;
  uint64_t t0 = fut__now();
  while (fut__now() - t0 < FUT_MS(5)) {
  }
}

static void test_debug_slow_callback_reported(void **state) {
  fut_loop_t *loop = *state;
  fx_exc_t cap;
  fx_exc_capture(loop, &cap);
  fut_loop_set_debug(loop, true);
  assert_true(fut_loop_get_debug(loop));
  fut_loop_set_slow_callback_duration(loop, FUT_MS(1));
  int ran = 0;
  assert_int_equal(fut_loop_call_soon(loop, fx_count_cb, &ran, NULL), 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(ran, 1);
  assert_int_equal(cap.count, 0); /* fast: not reported */
  fut_handle_t *h;
  assert_int_equal(fut_loop_call_soon(loop, busy_5ms, NULL, &h), 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(cap.count, 1);
  assert_non_null(strstr(cap.message, "took"));
  assert_true(cap.had_handle);
  fut_handle_unref(h);
  /* Off again: nothing reported. */
  fut_loop_set_debug(loop, false);
  assert_int_equal(fut_loop_call_soon(loop, busy_5ms, NULL, NULL), 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(cap.count, 1);
}

/* The handle shown to the handler is borrowed, so it must be alive during
 * the report even when the loop held its last reference (a timer or
 * call_soon scheduled without keeping the handle).  A timer scheduled
 * without a handle has none to show: the report still names it. */
static void test_debug_slow_callback_handle_alive(void **state) {
  fut_loop_t *loop = *state;
  fx_exc_t cap;
  fx_exc_capture(loop, &cap);
  fut_loop_set_debug(loop, true);
  fut_loop_set_slow_callback_duration(loop, FUT_MS(1));
  assert_int_equal(fut_loop_call_at(loop, 1, busy_5ms, NULL, NULL), 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(cap.count, 1);
  assert_false(cap.had_handle);
  assert_non_null(strstr(cap.message, "took"));
  fut_handle_t *kept;
  assert_int_equal(fut_loop_call_at(loop, 1, busy_5ms, NULL, &kept), 0);
  fut_handle_unref(kept);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(cap.count, 2);
  assert_true(cap.had_handle);
  assert_int_equal(cap.live_handles, 1);
  fut_handle_t *h;
  assert_int_equal(fut_loop_call_soon(loop, busy_5ms, NULL, &h), 0);
  fut_handle_unref(h);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(cap.count, 3);
  assert_int_equal(cap.live_handles, 1);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.live_handles, 0);
}

struct foreign {
  fut_loop_t *loop;
  fut_t *f;
  int fd;
  int call_soon, call_later, add_reader, set_result, new_fut, add_cb,
      threadsafe;
  int ts_ran;
};

static void *foreign_calls(void *arg) {
  struct foreign *x = arg;
  fut_t *g = NULL;
  x->call_soon = fut_loop_call_soon(x->loop, fx_fail_cb, NULL, NULL);
  x->call_later = fut_loop_call_later(x->loop, 1, fx_fail_cb, NULL, NULL);
  x->add_reader = fut_loop_add_reader(x->loop, x->fd, fx_fail_cb, NULL);
  x->set_result = fut_set_result_i64(x->f, 1);
  x->new_fut = fut_new(x->loop, &g);
  x->add_cb = fut_add_done_callback(x->f, fx_done_count_cb, NULL);
  x->threadsafe = fut_loop_call_soon_threadsafe(x->loop, fx_count_cb,
                                                &x->ts_ran);
  return NULL;
}

static void test_debug_wrong_thread(void **state) {
  fut_loop_t *loop = *state;
  fut_loop_set_debug(loop, true);
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  struct foreign x = {.loop = loop, .fd = fds[0]};
  assert_int_equal(fut_new(loop, &x.f), 0);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, foreign_calls, &x), 0);
  pthread_join(th, NULL);
  assert_int_equal(x.call_soon, FUT_E_WRONG_THREAD);
  assert_int_equal(x.call_later, FUT_E_WRONG_THREAD);
  assert_int_equal(x.add_reader, FUT_E_WRONG_THREAD);
  assert_int_equal(x.set_result, FUT_E_WRONG_THREAD);
  assert_int_equal(x.new_fut, FUT_E_WRONG_THREAD);
  assert_int_equal(x.add_cb, FUT_E_WRONG_THREAD);
  assert_int_equal(x.threadsafe, 0); /* the one thread-safe door */
  assert_false(fut_done(x.f));
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.watchers, 0);
  assert_int_equal(st.pending_timers, 0);
  assert_int_equal(st.live_futures, 1);
  assert_true(fx_run_until_flag(loop, &x.ts_ran));
  fut_unref(x.f);
  close(fds[0]);
  close(fds[1]);
}

static void test_debug_env_enables(void **state) {
  (void)state;
  fut_loop_t *loop;
  setenv("FUT_DEBUG", "1", 1);
  assert_int_equal(fut_loop_new(&loop), 0);
  assert_true(fut_loop_get_debug(loop));
  fx_loop_free_clean(loop);
  setenv("FUT_DEBUG", "0", 1);
  assert_int_equal(fut_loop_new(&loop), 0);
  assert_false(fut_loop_get_debug(loop));
  fx_loop_free_clean(loop);
  unsetenv("FUT_DEBUG");
}

/* Bug: the debug-mode thread check missed the calls that return nothing:
 * fut_handle_cancel, fut_handle_ref / _unref and fut_loop_stop from a
 * foreign thread changed the loop's state unsynchronised.  They are
 * refused now, with the detail in fut_last_error. */
struct foreign_void {
  fut_loop_t *loop;
  fut_handle_t *h;
  bool refused_detail;
};

static void *foreign_void_calls(void *arg) {
  struct foreign_void *x = arg;
  fut_handle_cancel(x->h);
  x->refused_detail = strstr(fut_last_error(), "thread") != NULL;
  fut_handle_ref(x->h);
  fut_handle_unref(x->h);
  fut_handle_unref(x->h);
  fut_loop_stop(x->loop);
  return NULL;
}

static void test_debug_wrong_thread_void_calls_refused(void **state) {
  fut_loop_t *loop = *state;
  fut_loop_set_debug(loop, true);
  int ran = 0;
  struct foreign_void x = {.loop = loop};
  assert_int_equal(
      fut_loop_call_later(loop, FUT_MS(1), fx_count_cb, &ran, &x.h), 0);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, foreign_void_calls, &x), 0);
  pthread_join(th, NULL);
  assert_true(x.refused_detail);
  assert_false(fut_handle_cancelled(x.h)); /* the cancel was refused */
  /* The stop was refused: the run goes on until the timer fired. */
  assert_true(fx_run_until_flag(loop, &ran));
  assert_int_equal(ran, 1);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.live_handles, 1); /* ours: the unrefs were refused */
  fut_handle_unref(x.h);
  fut_loop_stats(loop, &st);
  assert_int_equal(st.live_handles, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FX_LOOP_TEST(test_exception_handler_set_get_call),
      FX_LOOP_TEST(test_exception_default_handler_prints),
      FX_LOOP_TEST(test_exception_never_retrieved_reported_once),
      FX_LOOP_TEST(test_exception_never_retrieved_after_callbacks),
      FX_LOOP_TEST(test_exception_not_reported_when_retrieved),
      FX_LOOP_TEST(test_exception_handler_may_keep_future),
      FX_LOOP_TEST(test_debug_slow_callback_reported),
      FX_LOOP_TEST(test_debug_slow_callback_handle_alive),
      FX_LOOP_TEST(test_debug_wrong_thread),
      FX_LOOP_TEST(test_debug_wrong_thread_void_calls_refused),
      cmocka_unit_test(test_debug_env_enables),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
