/* The loop: lifetime, run / stop / run_once / run_until_complete, close,
 * call_soon and handles, the running loop, embedding. */
#include "fixture.h"

#include <poll.h>
#include <unistd.h>
#include <sys/resource.h>

#include "loop/internal.h"

/* ---- lifetime ------------------------------------------------------------ */

static void test_loop_new_free(void **state) {
  (void)state;
  fut_loop_t *loop = NULL;
  assert_int_equal(fut_loop_new(&loop), 0);
  assert_non_null(loop);
  assert_false(fut_loop_is_running(loop));
  assert_false(fut_loop_is_closed(loop));
  fx_loop_free_clean(loop);
  assert_int_equal(fut_loop_free(NULL), 0);
  assert_int_equal(fut_loop_new(NULL), -EINVAL);
}

static void test_loop_close_idempotent(void **state) {
  fut_loop_t *loop = *state;
  assert_int_equal(fut_loop_close(loop), 0);
  assert_true(fut_loop_is_closed(loop));
  assert_int_equal(fut_loop_close(loop), 0);
  assert_true(fut_loop_is_closed(loop));
  assert_int_equal(fut_loop_close(NULL), -EINVAL);
}

static void test_loop_run_after_close_refused(void **state) {
  fut_loop_t *loop = *state;
  assert_int_equal(fut_loop_close(loop), 0);
  assert_int_equal(fut_loop_run_forever(loop), FUT_E_CLOSED);
  assert_int_equal(fut_loop_run_once(loop, 0), FUT_E_CLOSED);
  int ran = 0;
  assert_int_equal(fut_loop_call_soon(loop, fx_count_cb, &ran, NULL),
                   FUT_E_CLOSED);
  assert_int_equal(fut_loop_call_later(loop, 1, fx_count_cb, &ran, NULL),
                   FUT_E_CLOSED);
  fut_t *f = (fut_t *)1;
  assert_int_equal(fut_new(loop, &f), FUT_E_CLOSED);
  assert_null(f);
}

/* ---- run_forever / stop -------------------------------------------------- */

static void test_loop_run_forever_stop(void **state) {
  fut_loop_t *loop = *state;
  int ran = 0;
  assert_int_equal(fut_loop_call_soon(loop, fx_count_cb, &ran, NULL), 0);
  assert_int_equal(fut_loop_call_later(loop, FUT_MS(5), fx_stop_cb, loop,
                                       NULL), 0);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  assert_int_equal(ran, 1);
  assert_false(fut_loop_is_running(loop));
  /* The loop can run again after a stop. */
  assert_int_equal(fut_loop_call_soon(loop, fx_count_cb, &ran, NULL), 0);
  assert_int_equal(fut_loop_call_soon(loop, fx_stop_cb, loop, NULL), 0);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  assert_int_equal(ran, 2);
}

struct chain {
  fut_loop_t *loop;
  int first, second;
};

static void chain_second(void *arg) { ((struct chain *)arg)->second++; }
static void chain_first(void *arg) {
  struct chain *c = arg;
  c->first++;
  assert_int_equal(fut_loop_call_soon(c->loop, chain_second, c, NULL), 0);
}

static void test_loop_stop_before_run_runs_one_iteration(void **state) {
  fut_loop_t *loop = *state;
  struct chain c = {loop, 0, 0};
  assert_int_equal(fut_loop_call_soon(loop, chain_first, &c, NULL), 0);
  fut_loop_stop(loop);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  assert_int_equal(c.first, 1);
  assert_int_equal(c.second, 0); /* scheduled during the one iteration */
  /* The stop request was consumed: the next run_once runs the rest. */
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(c.second, 1);
}

/* asyncio: stop() before run_forever() polls I/O once with a zero timeout,
 * runs the callbacks of ready fds and those already scheduled, then exits;
 * ready work must not make that iteration skip the poll. */
static void test_loop_stop_before_run_polls_io_once(void **state) {
  fut_loop_t *loop = *state;
  int fds[2], reader = 0, soon = 0;
  assert_int_equal(pipe(fds), 0);
  assert_int_equal(write(fds[1], "x", 1), 1);
  assert_int_equal(fut_loop_add_reader(loop, fds[0], fx_count_cb, &reader),
                   0);
  assert_int_equal(fut_loop_call_soon(loop, fx_count_cb, &soon, NULL), 0);
  fut_loop_stop(loop);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  assert_int_equal(soon, 1);
  assert_int_equal(reader, 1);
  assert_int_equal(fut_loop_remove_reader(loop, fds[0]), 1);
  close(fds[0]);
  close(fds[1]);
}

/* ---- run_until_complete -------------------------------------------------- */

static void resolve_i64(void *arg) { fut_set_result_i64(arg, 7); }
static void resolve_err(void *arg) {
  fut_set_exception(arg, -EIO, "disk %d", 3);
}
static void resolve_cancel(void *arg) { fut_cancel(arg, "bye"); }

static void test_loop_run_until_complete_result(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  assert_int_equal(fut_new(loop, &f), 0);
  assert_int_equal(fut_loop_call_later(loop, FUT_MS(2), resolve_i64, f, NULL),
                   0);
  assert_int_equal(fut_loop_run_until_complete(loop, f), 0);
  int64_t v = 0;
  assert_int_equal(fut_result_i64(f, &v), 0);
  assert_int_equal(v, 7);
  assert_false(fut_loop_is_running(loop));
  fut_unref(f);
}

static void test_loop_run_until_complete_error(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  assert_int_equal(fut_new(loop, &f), 0);
  assert_int_equal(fut_loop_call_soon(loop, resolve_err, f, NULL), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, f), -EIO);
  const char *msg = NULL;
  assert_int_equal(fut_exception(f, &msg), -EIO);
  assert_string_equal(msg, "disk 3");
  fut_unref(f);
}

static void test_loop_run_until_complete_cancelled(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  assert_int_equal(fut_new(loop, &f), 0);
  assert_int_equal(fut_loop_call_soon(loop, resolve_cancel, f, NULL), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, f), -ECANCELED);
  assert_true(fut_cancelled(f));
  fut_unref(f);
}

static void test_loop_run_until_complete_stopped(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  assert_int_equal(fut_new(loop, &f), 0);
  assert_int_equal(fut_loop_call_soon(loop, fx_stop_cb, loop, NULL), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, f), FUT_E_STOPPED);
  assert_false(fut_done(f));
  /* Its stop callback was removed: completing f later does not stop a
   * later run early. */
  int ran = 0;
  assert_int_equal(fut_set_result(f, NULL, NULL), 0);
  assert_int_equal(fut_loop_call_soon(loop, fx_count_cb, &ran, NULL), 0);
  assert_int_equal(fut_loop_call_later(loop, FUT_MS(5), fx_stop_cb, loop,
                                       NULL), 0);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  assert_int_equal(ran, 1);
  fut_unref(f);
}

/* f completes in the same iteration as an unrelated stop(): the run ends
 * with f's dispatch (holding run_until_complete's stop callback) still
 * queued.  That stale callback must not stop a later, unrelated run. */
static void complete_and_stop(void *arg) {
  fut_t *f = arg;
  assert_int_equal(fut_set_result_i64(f, 3), 0);
  fut_loop_stop(fut_get_loop(f));
}

static void test_loop_run_until_complete_no_stale_stop(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  assert_int_equal(fut_new(loop, &f), 0);
  assert_int_equal(fut_loop_call_soon(loop, complete_and_stop, f, NULL), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, f), 0);
  fut_unref(f);
  int ran = 0;
  uint64_t t0 = fut_loop_time(loop);
  assert_int_equal(fut_loop_call_later(loop, FUT_MS(20), fx_count_cb, &ran,
                                       NULL), 0);
  assert_int_equal(fut_loop_call_later(loop, FUT_MS(21), fx_stop_cb, loop,
                                       NULL), 0);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  assert_int_equal(ran, 1);
  assert_true(fut_loop_time(loop) - t0 >= FUT_MS(20));
}

static void test_loop_run_until_complete_other_loop(void **state) {
  fut_loop_t *loop = *state, *other;
  assert_int_equal(fut_loop_new(&other), 0);
  fut_t *f;
  assert_int_equal(fut_new(other, &f), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, f), FUT_E_OTHER_LOOP);
  assert_int_equal(fut_loop_run_until_complete(loop, NULL), -EINVAL);
  fut_unref(f);
  fx_loop_free_clean(other);
}

static void test_loop_run_until_complete_done_future(void **state) {
  fut_loop_t *loop = *state;
  fut_t *f;
  assert_int_equal(fut_new(loop, &f), 0);
  assert_int_equal(fut_set_result_i64(f, 1), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, f), 0);
  fut_unref(f);
}

/* ---- run_once ------------------------------------------------------------ */

static void test_loop_run_once_timeout(void **state) {
  fut_loop_t *loop = *state;
  uint64_t t0 = fut_loop_time(loop);
  assert_int_equal(fut_loop_run_once(loop, FUT_MS(30)), 0);
  uint64_t took = fut_loop_time(loop) - t0;
  assert_true(took >= FUT_MS(30));
  assert_true(took < FUT_SEC(2));
  /* timeout 0 never blocks. */
  t0 = fut_loop_time(loop);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_true(fut_loop_time(loop) - t0 < FUT_MS(500));
}

static void test_loop_run_once_runs_ready_work(void **state) {
  fut_loop_t *loop = *state;
  int ran = 0;
  assert_int_equal(fut_loop_call_soon(loop, fx_count_cb, &ran, NULL), 0);
  uint64_t t0 = fut_loop_time(loop);
  assert_int_equal(fut_loop_run_once(loop, UINT64_MAX), 0);
  assert_int_equal(ran, 1);
  assert_true(fut_loop_time(loop) - t0 < FUT_MS(500));
  assert_false(fut_loop_is_running(loop));
}

static void test_loop_run_once_bounded_by_timer(void **state) {
  fut_loop_t *loop = *state;
  int ran = 0;
  /* The clock is read before scheduling: read after, a preemption between
   * the two would make the timer look early. */
  uint64_t t0 = fut_loop_time(loop);
  assert_int_equal(fut_loop_call_later(loop, FUT_MS(20), fx_count_cb, &ran,
                                       NULL), 0);
  /* The poll never outlasts the earliest timer. */
  while (!ran)
    assert_int_equal(fut_loop_run_once(loop, FUT_SEC(10)), 0);
  uint64_t took = fut_loop_time(loop) - t0;
  assert_true(took >= FUT_MS(20));
  assert_true(took < FUT_SEC(2));
}

/* ---- state inside callbacks ---------------------------------------------- */

struct inside {
  fut_loop_t *loop, *other;
  bool running;
  bool running_loop_ok;
  int close_err;
  int free_err;
  int nested_forever, nested_once, nested_other, nested_other_once;
  int nested_other_ruc;
  fut_t *other_f;
};

static void inside_cb(void *arg) {
  struct inside *in = arg;
  in->running = fut_loop_is_running(in->loop);
  in->running_loop_ok = fut_get_running_loop() == in->loop;
  in->close_err = fut_loop_close(in->loop);
  in->free_err = fut_loop_free(in->loop);
  in->nested_forever = fut_loop_run_forever(in->loop);
  in->nested_once = fut_loop_run_once(in->loop, 0);
  in->nested_other = fut_loop_run_forever(in->other);
  in->nested_other_once = fut_loop_run_once(in->other, 0);
  in->nested_other_ruc = fut_loop_run_until_complete(in->other, in->other_f);
}

static void test_loop_state_inside_callback(void **state) {
  fut_loop_t *loop = *state;
  struct inside in = {.loop = loop};
  assert_int_equal(fut_loop_new(&in.other), 0);
  assert_int_equal(fut_new(in.other, &in.other_f), 0);
  assert_null(fut_get_running_loop());
  assert_int_equal(fut_loop_call_soon(loop, inside_cb, &in, NULL), 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_true(in.running);
  assert_true(in.running_loop_ok);
  assert_int_equal(in.close_err, FUT_E_RUNNING);
  assert_int_equal(in.free_err, FUT_E_RUNNING);
  assert_int_equal(in.nested_forever, FUT_E_RUNNING);
  assert_int_equal(in.nested_once, FUT_E_RUNNING);
  assert_int_equal(in.nested_other, FUT_E_RUNNING);
  assert_int_equal(in.nested_other_once, FUT_E_RUNNING);
  assert_int_equal(in.nested_other_ruc, FUT_E_RUNNING);
  assert_false(fut_loop_is_closed(loop));
  assert_false(fut_loop_is_running(loop));
  assert_null(fut_get_running_loop());
  /* The failed nested run_until_complete left nothing behind on the other
   * loop: a later run is not stopped by a stale callback. */
  assert_false(fut_loop_is_running(in.other));
  fut_unref(in.other_f);
  fx_loop_free_clean(in.other);
}

static void test_loop_time_monotonic(void **state) {
  fut_loop_t *loop = *state;
  uint64_t prev = fut_loop_time(loop);
  assert_true(prev > 0);
  for (int i = 0; i < 1000; i++) {
    uint64_t t = fut_loop_time(loop);
    assert_true(t >= prev);
    prev = t;
  }
}

/* ---- close releases what is scheduled ------------------------------------ */

static void test_loop_close_frees_scheduled(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  assert_int_equal(write(fds[1], "x", 1), 1);
  fut_handle_t *h;
  /* Ready callbacks with and without a handle, a dropped handle. */
  assert_int_equal(fut_loop_call_soon(loop, fx_fail_cb, NULL, NULL), 0);
  assert_int_equal(fut_loop_call_soon(loop, fx_fail_cb, NULL, &h), 0);
  fut_handle_unref(h);
  fut_handle_t *kept;
  assert_int_equal(fut_loop_call_soon(loop, fx_fail_cb, NULL, &kept), 0);
  /* Timers. */
  assert_int_equal(fut_loop_call_later(loop, FUT_SEC(60), fx_fail_cb, NULL,
                                       NULL), 0);
  assert_int_equal(fut_loop_call_later(loop, FUT_SEC(60), fx_fail_cb, NULL,
                                       &h), 0);
  fut_handle_unref(h);
  /* Watchers. */
  assert_int_equal(fut_loop_add_reader(loop, fds[0], fx_fail_cb, NULL), 0);
  assert_int_equal(fut_loop_add_writer(loop, fds[1], fx_fail_cb, NULL), 0);
  /* A pending done-callback dispatch, the future dropped by the user. */
  fut_t *f;
  assert_int_equal(fut_new(loop, &f), 0);
  int dummy = 0;
  assert_int_equal(fut_add_done_callback(f, fx_done_count_cb, &dummy), 0);
  assert_int_equal(fut_set_result_bytes(f, "abc", 3), 0);
  /* And a registration made after completion (its own queued entry). */
  assert_int_equal(fut_add_done_callback(f, fx_done_count_cb, &dummy), 0);
  fut_unref(f);
  /* A threadsafe call not yet run (from another thread: the door). */
  assert_int_equal(fx_call_soon_threadsafe_from_thread(loop, fx_fail_cb, NULL),
                   0);

  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.pending_timers, 2);
  assert_int_equal(st.watchers, 2);
  assert_int_equal(st.threadsafe, 1);
  assert_int_equal(st.live_futures, 1);

  assert_int_equal(fut_loop_close(loop), 0);
  fut_loop_stats(loop, &st);
  assert_int_equal(st.live_futures, 0);
  assert_int_equal(st.live_handles, 1); /* ours */
  assert_int_equal(st.pending_timers, 0);
  assert_int_equal(st.watchers, 0);
  assert_int_equal(st.ready, 0);
  assert_int_equal(st.threadsafe, 0);
  assert_int_equal(dummy, 0);
  /* A handle dropped by close reads as cancelled. */
  assert_true(fut_handle_cancelled(kept));
  fut_handle_cancel(kept);
  fut_handle_unref(kept);
  fx_loop_free_clean(loop);
  close(fds[0]);
  close(fds[1]);
}

/* fut_loop_free while the user still holds objects: the memory stays until
 * the last of them goes (checked by ASan / valgrind). */
static void test_loop_free_with_live_objects(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  fut_t *f;
  fut_handle_t *h;
  assert_int_equal(fut_new(loop, &f), 0);
  assert_int_equal(fut_loop_call_later(loop, FUT_SEC(1), fx_fail_cb, NULL,
                                       &h), 0);
  assert_int_equal(fut_loop_free(loop), 0);
  assert_true(fut_handle_cancelled(h));
  fut_handle_unref(h);
  fut_unref(f);
}

/* ---- call_soon and handles ----------------------------------------------- */

static void test_call_soon_fifo(void **state) {
  fut_loop_t *loop = *state;
  static fx_log_t log;
  static fx_logent_t ents[200];
  fut_handle_t *hs[200] = {0};
  log.n = 0;
  /* Mixed with and without handles: one queue, one order. */
  for (int i = 0; i < 200; i++) {
    ents[i] = (fx_logent_t){&log, i};
    assert_int_equal(fut_loop_call_soon(loop, fx_log_cb, &ents[i],
                                        i % 2 ? NULL : &hs[i]),
                     0);
  }
  assert_int_equal(log.n, 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(log.n, 200);
  for (int i = 0; i < 200; i++) {
    assert_int_equal(log.v[i], i);
    fut_handle_unref(hs[i]);
  }
}

struct snap {
  fut_loop_t *loop;
  int a, b;
};
static void snap_b(void *arg) { ((struct snap *)arg)->b++; }
static void snap_a(void *arg) {
  struct snap *s = arg;
  s->a++;
  assert_int_equal(fut_loop_call_soon(s->loop, snap_b, s, NULL), 0);
  fut_loop_stop(s->loop);
}

static void test_call_soon_scheduled_in_drain_runs_next_iteration(
    void **state) {
  fut_loop_t *loop = *state;
  struct snap s = {loop, 0, 0};
  assert_int_equal(fut_loop_call_soon(loop, snap_a, &s, NULL), 0);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  assert_int_equal(s.a, 1);
  assert_int_equal(s.b, 0);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.ready, 1);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(s.b, 1);
}

static void test_call_soon_with_handle(void **state) {
  fut_loop_t *loop = *state;
  int ran = 0;
  fut_handle_t *h = NULL;
  assert_int_equal(fut_loop_call_soon(loop, fx_count_cb, &ran, &h), 0);
  assert_non_null(h);
  assert_false(fut_handle_cancelled(h));
  assert_int_equal(fut_handle_when(h), 0);
  assert_int_equal(ran, 0); /* never inline */
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(ran, 1);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.live_handles, 1); /* ours only */
  fut_handle_unref(h);
}

static void test_call_soon_without_handle(void **state) {
  fut_loop_t *loop = *state;
  int ran = 0;
  assert_int_equal(fut_loop_call_soon(loop, fx_count_cb, &ran, NULL), 0);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.ready, 1);
  assert_int_equal(st.live_handles, 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(ran, 1);
}

static void test_call_soon_bad_args(void **state) {
  fut_loop_t *loop = *state;
  assert_int_equal(fut_loop_call_soon(loop, NULL, NULL, NULL), -EINVAL);
  assert_int_equal(fut_loop_call_soon(NULL, fx_count_cb, NULL, NULL),
                   -EINVAL);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.ready, 0);
}

static void test_handle_cancel_before_run(void **state) {
  fut_loop_t *loop = *state;
  fut_handle_t *h;
  assert_int_equal(fut_loop_call_soon(loop, fx_fail_cb, NULL, &h), 0);
  fut_handle_cancel(h);
  assert_true(fut_handle_cancelled(h));
  fut_handle_cancel(h); /* twice is harmless */
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  fut_handle_unref(h);
  fut_handle_cancel(NULL);
  assert_false(fut_handle_cancelled(NULL));
}

struct canceller {
  fut_handle_t *victim;
};
static void cancel_victim(void *arg) {
  fut_handle_cancel(((struct canceller *)arg)->victim);
}

static void test_handle_cancel_same_tick(void **state) {
  fut_loop_t *loop = *state;
  struct canceller c;
  assert_int_equal(fut_loop_call_soon(loop, cancel_victim, &c, NULL), 0);
  assert_int_equal(fut_loop_call_soon(loop, fx_fail_cb, NULL, &c.victim), 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_true(fut_handle_cancelled(c.victim));
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.ready, 0);
  fut_handle_unref(c.victim);
}

static void test_handle_cancel_after_run_noop(void **state) {
  fut_loop_t *loop = *state;
  int ran = 0;
  fut_handle_t *h;
  assert_int_equal(fut_loop_call_soon(loop, fx_count_cb, &ran, &h), 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(ran, 1);
  fut_handle_cancel(h);
  assert_false(fut_handle_cancelled(h));
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(ran, 1);
  fut_handle_unref(h);
}

static void test_handle_ref_unref(void **state) {
  fut_loop_t *loop = *state;
  int ran = 0;
  fut_handle_t *h;
  assert_int_equal(fut_loop_call_soon(loop, fx_count_cb, &ran, &h), 0);
  fut_handle_ref(h);
  fut_handle_unref(h);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.live_handles, 1);
  /* Dropping the user's last reference does not cancel the callback. */
  fut_handle_unref(h);
  fut_loop_stats(loop, &st);
  assert_int_equal(st.live_handles, 1); /* the loop's */
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(ran, 1);
  fut_loop_stats(loop, &st);
  assert_int_equal(st.live_handles, 0);
  fut_handle_ref(NULL);
  fut_handle_unref(NULL);
}

/* ---- embedding ----------------------------------------------------------- */

static void test_loop_backend_fd(void **state) {
  fut_loop_t *loop = *state;
  int fd = fut_loop_backend_fd(loop);
  assert_true(fd >= 0);
  struct pollfd p = {.fd = fd, .events = POLLIN};
  assert_int_equal(poll(&p, 1, 0), 0); /* nothing to do */
  int ran = 0;
  assert_int_equal(fx_call_soon_threadsafe_from_thread(loop, fx_count_cb, &ran),
                   0);
  assert_int_equal(poll(&p, 1, 1000), 1); /* the doorbell shows */
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  /* The doorbell's drain queued the call; the next iteration runs it if
   * this one did not. */
  if (!ran)
    assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(ran, 1);
  assert_int_equal(poll(&p, 1, 0), 0);
}

static void test_loop_backend_timeout(void **state) {
  fut_loop_t *loop = *state;
  assert_true(fut_loop_backend_timeout(loop) == UINT64_MAX);
  fut_handle_t *h;
  assert_int_equal(fut_loop_call_later(loop, FUT_MS(500), fx_fail_cb, NULL,
                                       &h), 0);
  uint64_t t = fut_loop_backend_timeout(loop);
  assert_true(t <= FUT_MS(500));
  assert_true(t > FUT_MS(400));
  int ran = 0;
  assert_int_equal(fut_loop_call_soon(loop, fx_count_cb, &ran, NULL), 0);
  assert_int_equal(fut_loop_backend_timeout(loop), 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(ran, 1);
  assert_true(fut_loop_backend_timeout(loop) > 0);
  fut_handle_cancel(h);
  assert_true(fut_loop_backend_timeout(loop) == UINT64_MAX);
  fut_handle_unref(h);
  fut_loop_stop(loop);
  assert_int_equal(fut_loop_backend_timeout(loop), 0);
  assert_int_equal(fut_loop_run_forever(loop), 0);
}

/* ---- busy ready queue ---------------------------------------------------- */

/* A callback that re-queues itself forever keeps the ready queue busy, so
 * the loop skips polls; timers, fd readiness and thread-safe calls must
 * still get through promptly. */
struct spinner {
  fut_loop_t *loop;
  int timer, reader, threadsafe;
  long spins;
  uint64_t deadline;
};

static void spin_cb(void *arg) {
  struct spinner *s = arg;
  s->spins++;
  if ((s->timer && s->reader && s->threadsafe) ||
      fut_loop_time(s->loop) > s->deadline) {
    fut_loop_stop(s->loop);
    return;
  }
  assert_int_equal(fut_loop_call_soon(s->loop, spin_cb, s, NULL), 0);
}

static void test_loop_busy_queue_does_not_starve_io_timers(void **state) {
  fut_loop_t *loop = *state;
  struct spinner s = {.loop = loop};
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  assert_int_equal(write(fds[1], "x", 1), 1);
  uint64_t t0 = fut_loop_time(loop);
  s.deadline = t0 + FUT_SEC(5);
  assert_int_equal(fut_loop_call_soon(loop, spin_cb, &s, NULL), 0);
  assert_int_equal(fut_loop_call_later(loop, FUT_MS(5), fx_count_cb, &s.timer,
                                       NULL), 0);
  assert_int_equal(fut_loop_add_reader(loop, fds[0], fx_count_cb, &s.reader),
                   0);
  assert_int_equal(fut_loop_call_soon_threadsafe(loop, fx_count_cb,
                                                 &s.threadsafe), 0);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  uint64_t took = fut_loop_time(loop) - t0;
  print_message("busy queue: all served after %.2f ms, %ld spins\n",
                (double)took / 1e6, s.spins);
  assert_true(s.timer && s.reader && s.threadsafe);
  assert_true(took < FUT_SEC(1));
  assert_int_equal(fut_loop_remove_reader(loop, fds[0]), 1);
  close(fds[0]);
  close(fds[1]);
}

/* ---- the drain's chained snapshots (issue 13) ---------------------------- */

/* run_forever runs the next snapshot in place when the next iteration
 * would only skip its poll: that must stay invisible.  A stop inside a
 * chain ends the run after the current snapshot; entries scheduled
 * meanwhile wait, in order, for the next run. */
struct hops {
  fut_loop_t *loop;
  int log[64];
  int n, stop_at, limit;
};

static void hop_cb(void *arg) {
  struct hops *h = arg;
  int i = h->n;
  h->log[h->n++] = i;
  if (i + 1 < h->limit)
    assert_int_equal(fut_loop_call_soon(h->loop, hop_cb, h, NULL), 0);
  if (i == h->stop_at)
    fut_loop_stop(h->loop);
}

static void test_loop_chain_stop_ends_after_snapshot(void **state) {
  fut_loop_t *loop = *state;
  struct hops h = {.loop = loop, .stop_at = 20, .limit = 40};
  assert_int_equal(fut_loop_call_soon(loop, hop_cb, &h, NULL), 0);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  assert_int_equal(h.n, 21); /* hop 21 was scheduled by hop 20: it waits */
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.ready, 1);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(h.n, 22); /* one iteration, one snapshot */
  h.stop_at = -1;
  assert_int_equal(fut_loop_call_soon(loop, fx_stop_cb, loop, NULL), 0);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  assert_int_equal(h.n, 23); /* the stop was queued behind hop 22 only */
  h.stop_at = 39;
  assert_int_equal(fut_loop_run_forever(loop), 0);
  assert_int_equal(h.n, 40);
  for (int i = 0; i < 40; i++)
    assert_int_equal(h.log[i], i);
}

/* A callback that grows the ready queue (a burst past its capacity) while
 * the drain holds the head: every entry runs once, in order, and the
 * burst runs after the snapshot it was scheduled in. */
struct grow {
  fut_loop_t *loop;
  int next, bad, snapshot_done;
};

static void grow_item_cb(void *arg) {
  struct grow *g = arg;
  g->next++;
  if (!g->snapshot_done)
    g->bad++;
}

static void grow_seq_cb(void *arg) {
  struct grow *g = arg;
  (void)g;
}

static void grow_burst_cb(void *arg) {
  struct grow *g = arg;
  for (int i = 0; i < 5000; i++)
    assert_int_equal(fut_loop_call_soon(g->loop, grow_item_cb, g, NULL), 0);
}

static void grow_mark_cb(void *arg) {
  struct grow *g = arg;
  g->snapshot_done = 1;
}

static void grow_check_cb(void *arg) {
  struct grow *g = arg;
  assert_int_equal(g->next, 5000);
  fut_loop_stop(g->loop);
}

static void test_loop_ring_grows_under_the_drain(void **state) {
  fut_loop_t *loop = *state;
  struct grow g = {.loop = loop};
  /* Wrap the ring's indices first, so the growth has to keep them. */
  for (int k = 0; k < 3; k++) {
    for (int i = 0; i < 700; i++)
      assert_int_equal(fut_loop_call_soon(loop, grow_seq_cb, &g, NULL), 0);
    assert_int_equal(fut_loop_run_once(loop, 0), 0);
  }
  assert_int_equal(fut_loop_call_soon(loop, grow_burst_cb, &g, NULL), 0);
  for (int i = 0; i < 300; i++)
    assert_int_equal(fut_loop_call_soon(loop, grow_seq_cb, &g, NULL), 0);
  assert_int_equal(fut_loop_call_soon(loop, grow_mark_cb, &g, NULL), 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(g.snapshot_done, 1);
  assert_int_equal(g.next, 0);
  assert_int_equal(fut_loop_call_soon(loop, grow_check_cb, &g, NULL), 0);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  assert_int_equal(g.next, 5000);
  assert_int_equal(g.bad, 0);
}

/* A timer that comes due during a long chain fires before the chain ends
 * (the chain stops chaining while a timer waits: each iteration checks
 * them again). */
struct chain_timer {
  fut_loop_t *loop;
  int fired;
  long hops;
};

static void ct_hop_cb(void *arg) {
  struct chain_timer *c = arg;
  c->hops++;
  if (c->fired) {
    fut_loop_stop(c->loop);
    return;
  }
  assert_int_equal(fut_loop_call_soon(c->loop, ct_hop_cb, c, NULL), 0);
}

static void test_loop_chain_lets_timers_fire(void **state) {
  fut_loop_t *loop = *state;
  struct chain_timer c = {.loop = loop};
  uint64_t t0 = fut_loop_time(loop);
  assert_int_equal(fut_loop_call_soon(loop, ct_hop_cb, &c, NULL), 0);
  assert_int_equal(
      fut_loop_call_later(loop, FUT_MS(2), fx_count_cb, &c.fired, NULL), 0);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  assert_int_equal(c.fired, 1);
  assert_true(fut_loop_time(loop) - t0 >= FUT_MS(2));
  assert_true(fut_loop_time(loop) - t0 < FUT_SEC(2));
}

/* ---- idle CPU ------------------------------------------------------------ */

static uint64_t cpu_ns(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000u +
         (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000u;
}

static void test_loop_idle_uses_no_cpu(void **state) {
  fut_loop_t *loop = *state;
  uint64_t c0 = cpu_ns(), t0 = fut_loop_time(loop);
  assert_int_equal(fut_loop_call_later(loop, FUT_MS(200), fx_stop_cb, loop,
                                       NULL), 0);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  uint64_t wall = fut_loop_time(loop) - t0, cpu = cpu_ns() - c0;
  print_message("idle 200 ms timer: wall %.1f ms, cpu %.3f ms\n",
                (double)wall / 1e6, (double)cpu / 1e6);
  assert_true(wall >= FUT_MS(200));
  assert_true(cpu < FUT_MS(20));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_loop_new_free),
      FX_LOOP_TEST(test_loop_close_idempotent),
      FX_LOOP_TEST(test_loop_run_after_close_refused),
      FX_LOOP_TEST(test_loop_run_forever_stop),
      FX_LOOP_TEST(test_loop_stop_before_run_runs_one_iteration),
      FX_LOOP_TEST(test_loop_stop_before_run_polls_io_once),
      FX_LOOP_TEST(test_loop_chain_stop_ends_after_snapshot),
      FX_LOOP_TEST(test_loop_ring_grows_under_the_drain),
      FX_LOOP_TEST(test_loop_chain_lets_timers_fire),
      FX_LOOP_TEST(test_loop_run_until_complete_result),
      FX_LOOP_TEST(test_loop_run_until_complete_error),
      FX_LOOP_TEST(test_loop_run_until_complete_cancelled),
      FX_LOOP_TEST(test_loop_run_until_complete_stopped),
      FX_LOOP_TEST(test_loop_run_until_complete_no_stale_stop),
      FX_LOOP_TEST(test_loop_run_until_complete_other_loop),
      FX_LOOP_TEST(test_loop_run_until_complete_done_future),
      FX_LOOP_TEST(test_loop_run_once_timeout),
      FX_LOOP_TEST(test_loop_run_once_runs_ready_work),
      FX_LOOP_TEST(test_loop_run_once_bounded_by_timer),
      FX_LOOP_TEST(test_loop_state_inside_callback),
      FX_LOOP_TEST(test_loop_time_monotonic),
      cmocka_unit_test(test_loop_close_frees_scheduled),
      cmocka_unit_test(test_loop_free_with_live_objects),
      FX_LOOP_TEST(test_call_soon_fifo),
      FX_LOOP_TEST(test_call_soon_scheduled_in_drain_runs_next_iteration),
      FX_LOOP_TEST(test_call_soon_with_handle),
      FX_LOOP_TEST(test_call_soon_without_handle),
      FX_LOOP_TEST(test_call_soon_bad_args),
      FX_LOOP_TEST(test_handle_cancel_before_run),
      FX_LOOP_TEST(test_handle_cancel_same_tick),
      FX_LOOP_TEST(test_handle_cancel_after_run_noop),
      FX_LOOP_TEST(test_handle_ref_unref),
      FX_LOOP_TEST(test_loop_backend_fd),
      FX_LOOP_TEST(test_loop_backend_timeout),
      FX_LOOP_TEST(test_loop_busy_queue_does_not_starve_io_timers),
      FX_LOOP_TEST(test_loop_idle_uses_no_cpu),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
