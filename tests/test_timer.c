/* Timers: call_later / call_at never early, deadline order, FIFO among
 * equal deadlines, cancel, clamping, fut_handle_when. */
#include "fixture.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "loop/internal.h"

struct stamp {
  fut_loop_t *loop;
  uint64_t fired; /* loop time when the callback ran, 0 before */
  int count;
};

static void stamp_cb(void *arg) {
  struct stamp *s = arg;
  s->fired = fut_loop_time(s->loop);
  s->count++;
}

static bool stamp_fired(void *arg) {
  return ((struct stamp *)arg)->count;
}

static void test_timer_call_later_never_early(void **state) {
  fut_loop_t *loop = *state;
  static const uint64_t delays[] = {FUT_US(100), FUT_MS(1), FUT_MS(7),
                                    FUT_MS(25)};
  for (size_t i = 0; i < sizeof delays / sizeof delays[0]; i++) {
    struct stamp s = {loop, 0, 0};
    uint64_t t0 = fut_loop_time(loop);
    fut_handle_t *h;
    assert_int_equal(fut_loop_call_later(loop, delays[i], stamp_cb, &s, &h), 0);
    uint64_t when = fut_handle_when(h);
    assert_true(when >= t0 + delays[i]);
    assert_true(fx_run_until(loop, stamp_fired, &s, FUT_SEC(5)));
    assert_int_equal(s.count, 1);
    assert_true(s.fired >= when);
    assert_true(s.fired >= t0 + delays[i]);
    assert_true(s.fired - t0 < delays[i] + FUT_MS(500)); /* tolerant */
    fut_handle_unref(h);
  }
}

static void test_timer_call_at(void **state) {
  fut_loop_t *loop = *state;
  struct stamp s = {loop, 0, 0};
  uint64_t when = fut_loop_time(loop) + FUT_MS(15);
  fut_handle_t *h;
  assert_int_equal(fut_loop_call_at(loop, when, stamp_cb, &s, &h), 0);
  assert_true(fut_handle_when(h) == when);
  assert_true(fx_run_until(loop, stamp_fired, &s, FUT_SEC(5)));
  assert_true(s.fired >= when);
  fut_handle_unref(h);
  /* A deadline in the past fires on the next iteration. */
  struct stamp p = {loop, 0, 0};
  assert_int_equal(fut_loop_call_at(loop, 1, stamp_cb, &p, NULL), 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(p.count, 1);
}

static void test_timer_bad_args(void **state) {
  fut_loop_t *loop = *state;
  assert_int_equal(fut_loop_call_later(loop, 1, NULL, NULL, NULL), -EINVAL);
  assert_int_equal(fut_loop_call_at(loop, 1, NULL, NULL, NULL), -EINVAL);
  assert_int_equal(fut_loop_call_at(NULL, 1, fx_count_cb, NULL, NULL), -EINVAL);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.pending_timers, 0);
}

static void test_timer_deadline_order(void **state) {
  fut_loop_t *loop = *state;
  fx_log_t log = {0};
  static const int ms[] = {30, 10, 20, 0, 25, 5};
  fx_logent_t ents[6];
  for (int i = 0; i < 6; i++) {
    ents[i] = (fx_logent_t){&log, ms[i]};
    assert_int_equal(
        fut_loop_call_later(loop, FUT_MS(ms[i]), fx_log_cb, &ents[i], NULL), 0);
  }
  assert_int_equal(
      fut_loop_call_later(loop, FUT_MS(40), fx_stop_cb, loop, NULL), 0);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  assert_int_equal(log.n, 6);
  static const int want[] = {0, 5, 10, 20, 25, 30};
  for (int i = 0; i < 6; i++)
    assert_int_equal(log.v[i], want[i]);
}

static void test_timer_fifo_equal_deadlines(void **state) {
  fut_loop_t *loop = *state;
  static fx_log_t log;
  static fx_logent_t ents[300];
  log.n = 0;
  uint64_t when = fut_loop_time(loop) + FUT_MS(5);
  for (int i = 0; i < 300; i++) {
    ents[i] = (fx_logent_t){&log, i};
    assert_int_equal(fut_loop_call_at(loop, when, fx_log_cb, &ents[i], NULL),
                     0);
  }
  assert_int_equal(fut_loop_call_at(loop, when + 1, fx_stop_cb, loop, NULL), 0);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  assert_int_equal(log.n, 300);
  for (int i = 0; i < 300; i++)
    assert_int_equal(log.v[i], i);
}

/* White-box check of the heap against a reference: random deadlines (all in
 * the past, so one iteration fires them), random cancellations. */
struct rt {
  fx_log_t *log;
  int idx;
  uint64_t when;
};
static void rt_cb(void *arg) {
  struct rt *r = arg;
  fx_log_add(r->log, r->idx);
}

static void test_timer_random_heap_order(void **state) {
  fut_loop_t *loop = *state;
  enum { N = 2000 };
  static struct rt rts[N];
  static fut_handle_t *hs[N];
  static bool cancelled[N];
  static fx_log_t log;
  log.n = 0;
  srand(1234);
  uint64_t base = fut_loop_time(loop) - FUT_SEC(1);
  for (int i = 0; i < N; i++) {
    rts[i] = (struct rt){&log, i, base + (uint64_t)(rand() % 500)};
    cancelled[i] = false;
    assert_int_equal(
        fut_loop_call_at(loop, rts[i].when, rt_cb, &rts[i], &hs[i]), 0);
    /* Cancel some, interleaved with insertions. */
    if (i > 0 && rand() % 3 == 0) {
      int j = rand() % i;
      if (!cancelled[j]) {
        fut_handle_cancel(hs[j]);
        cancelled[j] = true;
      }
    }
  }
  size_t live = 0;
  for (int i = 0; i < N; i++)
    live += !cancelled[i];
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.pending_timers, live);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(log.n, (int)live);
  for (int k = 1; k < log.n; k++) {
    const struct rt *a = &rts[log.v[k - 1]], *b = &rts[log.v[k]];
    assert_true(a->when < b->when || (a->when == b->when && a->idx < b->idx));
  }
  for (int k = 0; k < log.n; k++)
    assert_false(cancelled[log.v[k]]);
  for (int i = 0; i < N; i++)
    fut_handle_unref(hs[i]);
}

static void test_timer_cancel_never_fires(void **state) {
  fut_loop_t *loop = *state;
  fut_handle_t *h;
  assert_int_equal(fut_loop_call_later(loop, FUT_MS(5), fx_fail_cb, NULL, &h),
                   0);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.pending_timers, 1);
  assert_int_equal(st.live_handles, 1);
  fut_handle_cancel(h);
  assert_true(fut_handle_cancelled(h));
  /* Released by the loop at once: only our reference is left. */
  fut_loop_stats(loop, &st);
  assert_int_equal(st.pending_timers, 0);
  assert_int_equal(st.live_handles, 1);
  int stop = 0;
  assert_int_equal(
      fut_loop_call_later(loop, FUT_MS(20), fx_count_cb, &stop, NULL), 0);
  assert_true(fx_run_until_flag(loop, &stop));
  fut_handle_unref(h);
}

struct pair {
  fut_handle_t *victim;
  int ran;
};
static void pair_first(void *arg) {
  struct pair *p = arg;
  p->ran++;
  fut_handle_cancel(p->victim);
}

static void test_timer_cancel_expired_same_tick(void **state) {
  fut_loop_t *loop = *state;
  struct pair p = {NULL, 0};
  uint64_t when = fut_loop_time(loop) - FUT_MS(1);
  assert_int_equal(fut_loop_call_at(loop, when, pair_first, &p, NULL), 0);
  assert_int_equal(fut_loop_call_at(loop, when, fx_fail_cb, NULL, &p.victim),
                   0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(p.ran, 1);
  assert_true(fut_handle_cancelled(p.victim));
  fut_handle_unref(p.victim);
}

static void test_timer_cancel_after_fire_noop(void **state) {
  fut_loop_t *loop = *state;
  int ran = 0;
  fut_handle_t *h;
  assert_int_equal(fut_loop_call_at(loop, 1, fx_count_cb, &ran, &h), 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(ran, 1);
  fut_handle_cancel(h);
  assert_false(fut_handle_cancelled(h));
  fut_handle_unref(h);
}

static void stop_reader(void *loop) {
  fut_loop_stop(loop);
}

static void test_timer_huge_delay_clamps(void **state) {
  fut_loop_t *loop = *state;
  fut_handle_t *h1, *h2;
  assert_int_equal(fut_loop_call_later(loop, UINT64_MAX, fx_fail_cb, NULL, &h1),
                   0);
  assert_true(fut_handle_when(h1) == UINT64_MAX);
  assert_int_equal(
      fut_loop_call_later(loop, UINT64_MAX - 5, fx_fail_cb, NULL, &h2), 0);
  assert_true(fut_handle_when(h2) == UINT64_MAX);
  uint64_t t = fut_loop_backend_timeout(loop);
  assert_true(t > FUT_SEC(1000000));
  /* Polling with a far deadline works (a readable pipe ends the wait). */
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  assert_int_equal(write(fds[1], "x", 1), 1);
  assert_int_equal(fut_loop_add_reader(loop, fds[0], stop_reader, loop), 0);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  assert_int_equal(fut_loop_remove_reader(loop, fds[0]), 1);
  assert_int_equal(fut_loop_run_once(loop, FUT_MS(1)), 0);
  fut_handle_cancel(h1);
  fut_handle_cancel(h2);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.pending_timers, 0);
  fut_handle_unref(h1);
  fut_handle_unref(h2);
  close(fds[0]);
  close(fds[1]);
}

static void test_timer_handle_when(void **state) {
  fut_loop_t *loop = *state;
  uint64_t t0 = fut_loop_time(loop);
  fut_handle_t *h, *s;
  assert_int_equal(fut_loop_call_later(loop, FUT_SEC(3), fx_fail_cb, NULL, &h),
                   0);
  uint64_t t1 = fut_loop_time(loop);
  assert_true(fut_handle_when(h) >= t0 + FUT_SEC(3));
  assert_true(fut_handle_when(h) <= t1 + FUT_SEC(3));
  assert_int_equal(fut_loop_call_soon(loop, fx_count_cb, &(int){0}, &s), 0);
  assert_int_equal(fut_handle_when(s), 0);
  assert_int_equal(fut_handle_when(NULL), 0);
  fut_handle_cancel(h);
  fut_handle_cancel(s);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  fut_handle_unref(h);
  fut_handle_unref(s);
}

/* A due timer scheduled during a drain waits for the next iteration. */
struct nested_timer {
  fut_loop_t *loop;
  int ran;
};
static void schedule_due_timer(void *arg) {
  struct nested_timer *n = arg;
  assert_int_equal(fut_loop_call_at(n->loop, 1, fx_count_cb, &n->ran, NULL), 0);
}

static void test_timer_scheduled_in_drain_runs_next_iteration(void **state) {
  fut_loop_t *loop = *state;
  struct nested_timer n = {loop, 0};
  assert_int_equal(fut_loop_call_soon(loop, schedule_due_timer, &n, NULL), 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(n.ran, 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(n.ran, 1);
}

/* FIFO among equal deadlines holds across the sequence counter's wrap. */
static void test_timer_fifo_across_seq_wrap(void **state) {
  fut_loop_t *loop = *state;
  fx_log_t log = {0};
  fx_logent_t ents[10];
  loop->timers.seq = UINT32_MAX - 4;
  uint64_t when = fut_loop_time(loop) - FUT_MS(1);
  for (int i = 0; i < 10; i++) {
    ents[i] = (fx_logent_t){&log, i};
    assert_int_equal(fut_loop_call_at(loop, when, fx_log_cb, &ents[i], NULL),
                     0);
  }
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(log.n, 10);
  for (int i = 0; i < 10; i++)
    assert_int_equal(log.v[i], i);
}

/* Signals interrupting the poll (EINTR) neither fail the run nor fire a
 * timer early. */
static volatile sig_atomic_t alarms;
static void on_alarm(int sig) {
  (void)sig;
  alarms++;
}

static void test_timer_poll_interrupted_by_signals(void **state) {
  fut_loop_t *loop = *state;
  struct sigaction sa = {0}, old;
  sa.sa_handler = on_alarm; /* no SA_RESTART: epoll_wait gets EINTR */
  sigemptyset(&sa.sa_mask);
  assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
  struct itimerval it = {{0, 2000}, {0, 2000}}, off = {{0, 0}, {0, 0}};
  alarms = 0;
  struct stamp s = {loop, 0, 0};
  uint64_t t0 = fut_loop_time(loop);
  assert_int_equal(fut_loop_call_later(loop, FUT_MS(60), stamp_cb, &s, NULL),
                   0);
  assert_int_equal(
      fut_loop_call_later(loop, FUT_MS(61), fx_stop_cb, loop, NULL), 0);
  assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
  int err = fut_loop_run_forever(loop);
  setitimer(ITIMER_REAL, &off, NULL);
  sigaction(SIGALRM, &old, NULL);
  assert_int_equal(err, 0);
  assert_int_equal(s.count, 1);
  assert_true(s.fired - t0 >= FUT_MS(60));
  assert_true(alarms > 0);
}

/* Bug: when due timers could not move from the wheel to the near heap
 * (out of memory), every poll returned at once for a slot that never
 * emptied: run_forever spun at 100% CPU forever.  The run now fails with
 * -ENOMEM, the timers stay, and they all fire once memory returns. */
enum { OOM_TIMERS = 2000 };
struct oom_timers {
  uint64_t earliest;
  int fired;
  int early;
};

static void oom_timer_cb(void *arg) {
  struct oom_timers *o = arg;
  if (fut_loop_time(NULL) < o->earliest)
    o->early++;
  o->fired++;
}

static void test_timer_wheel_out_of_memory_fails_run(void **state) {
  fut_loop_t *loop = *state;
  struct oom_timers o = {0, 0, 0};
  uint64_t when = fut_loop_time(loop) + FUT_MS(3);
  o.earliest = when;
  /* Many timers in one wheel slot: moving them needs the near heap to
   * grow. */
  for (int i = 0; i < OOM_TIMERS; i++)
    assert_int_equal(fut_loop_call_at(loop, when, oom_timer_cb, &o, NULL), 0);
  assert_int_equal(fut_loop_call_at(loop, when + 1, fx_stop_cb, loop, NULL), 0);
  while (fut_loop_time(loop) < when + FUT_MS(2))
    ; /* the slot is due */
  fut__alloc_fail_after(1, true);
  int err = fut_loop_run_forever(loop);
  fut__alloc_fail_after(0, false);
  assert_int_equal(err, -ENOMEM);
  assert_non_null(strstr(fut_last_error(), "timers"));
  assert_int_equal(o.fired, 0);
  /* Memory is back: the loop is usable and nothing was lost. */
  assert_int_equal(fut_loop_run_forever(loop), 0);
  assert_int_equal(o.fired, OOM_TIMERS);
  assert_int_equal(o.early, 0);
}

/* Issue 17: a pending timer with a handle costs at most 48 bytes: its
 * handle (32, from the loop's slab) and its entry in a wheel bucket's
 * handle list (12), with every chunk counted.  Cancel unlinks it from the
 * list at once (nothing left to shed), and the timers left still fire in
 * (deadline, FIFO) order, never early. */
enum { BYTES_TIMERS = 20000 };
struct bytes_fire {
  fut_loop_t *loop;
  uint64_t t0, last_when;
  int last_i, fired, early, disorder;
};
static struct bytes_fire bf;

/* Ten slots: at 2,000 timers a bucket, a half-filled last chunk weighs
 * little, as at a million timers over 100 slots. */
static uint64_t bytes_when(int i) {
  return bf.t0 + FUT_MS(10 + i % 10);
}

static void bytes_cb(void *arg) {
  int i = (int)(intptr_t)arg;
  uint64_t when = bytes_when(i);
  if (fut_loop_time(bf.loop) < when)
    bf.early++;
  if (bf.fired > 0 &&
      (when < bf.last_when || (when == bf.last_when && i < bf.last_i)))
    bf.disorder++;
  bf.last_when = when;
  bf.last_i = i;
  if (++bf.fired == BYTES_TIMERS / 2)
    fut_loop_stop(bf.loop);
}

static void test_timer_handle_bytes_bound(void **state) {
  fut_loop_t *loop = *state;
  _Static_assert(sizeof(fut_handle_t) == 32, "a handle is 32 bytes");
  _Static_assert(sizeof(struct fut__hchunk) == 12 * FUT__HCHUNK_ENTS,
                 "12 bytes a timer in a handle list");
  memset(&bf, 0, sizeof bf);
  bf.loop = loop;
  bf.t0 = fut_loop_time(loop);
  fut_handle_t **hs = calloc(BYTES_TIMERS, sizeof *hs);
  assert_non_null(hs);
  for (int i = 0; i < BYTES_TIMERS; i++)
    assert_int_equal(fut_loop_call_at(loop, bytes_when(i), bytes_cb,
                                      (void *)(intptr_t)i, &hs[i]),
                     0);
  struct fut__timers *t = &loop->timers;
  size_t listed = 0, chunks = 0, arrays = 0;
  for (uint32_t b = 0; b < FUT__WHEEL_SLOTS; b++) {
    listed += t->hwheel[b].len - t->hwheel[b].head;
    chunks += t->hwheel[b].nchunks;
    arrays += t->hwheel[b].cap * sizeof(struct fut__hchunk *);
  }
  assert_int_equal(listed, BYTES_TIMERS);
  /* A handle's share of its 64 KiB slab chunk; a list chunk's share of
   * its slab chunk; the lists' chunk arrays. */
  double handle = (double)FUT__SLAB_CHUNK / loop->handle_slab.per_chunk;
  double hchunk = (double)FUT__SLAB_CHUNK / t->hslab.per_chunk;
  double bytes =
      BYTES_TIMERS * handle + (double)chunks * hchunk + (double)arrays;
  printf("bytes per pending timer with a handle: %.2f\n", bytes / BYTES_TIMERS);
  assert_true(bytes / BYTES_TIMERS <= 48.0);

  /* Cancel every other one: gone from the lists at once. */
  for (int i = 1; i < BYTES_TIMERS; i += 2) {
    fut_handle_cancel(hs[i]);
    assert_true(fut_handle_cancelled(hs[i]));
    fut_handle_unref(hs[i]);
  }
  listed = 0;
  for (uint32_t b = 0; b < FUT__WHEEL_SLOTS; b++)
    listed += t->hwheel[b].len - t->hwheel[b].head;
  assert_int_equal(listed, BYTES_TIMERS / 2);
  assert_int_equal(t->cancelled, 0);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.pending_timers, BYTES_TIMERS / 2);
  assert_int_equal(st.live_handles, BYTES_TIMERS / 2);

  assert_int_equal(fut_loop_run_forever(loop), 0);
  assert_int_equal(bf.fired, BYTES_TIMERS / 2);
  assert_int_equal(bf.early, 0);
  assert_int_equal(bf.disorder, 0);
  for (int i = 0; i < BYTES_TIMERS; i += 2) {
    assert_false(fut_handle_cancelled(hs[i]));
    assert_int_equal(fut_handle_when(hs[i]), bytes_when(i));
    fut_handle_unref(hs[i]);
  }
  free(hs);
}

/* The mock clock (fut__loop_set_clock): timers of an hour, ten minutes, a
 * second and a millisecond fire in deadline order, FIFO among equals,
 * never before their time, with no real waiting. */
static uint64_t mock_now;
static uint64_t mock_clock(void *arg) {
  (void)arg;
  return mock_now;
}

struct mock_fire {
  int order[8];
  uint64_t at[8];
  int n;
};
struct mock_timer {
  struct mock_fire *log;
  int id;
};

static void mock_fire_cb(void *arg) {
  struct mock_timer *t = arg;
  t->log->at[t->log->n] = mock_now;
  t->log->order[t->log->n++] = t->id;
}

static void test_timer_mock_clock_hours_pass_instantly(void **state) {
  fut_loop_t *loop = *state;
  mock_now = FUT_SEC(1000);
  assert_int_equal(fut__loop_set_clock(loop, mock_clock, NULL), 0);
  assert_int_equal(fut_loop_time(loop), FUT_SEC(1000));
  struct mock_fire log = {.n = 0};
  static const uint64_t delays[] = {FUT_SEC(3600), FUT_SEC(600), FUT_SEC(1),
                                    FUT_MS(1),     FUT_MS(1),    FUT_SEC(600)};
  struct mock_timer ts[6];
  fut_handle_t *cancel_me = NULL;
  for (int i = 0; i < 6; i++) {
    ts[i] = (struct mock_timer){&log, i};
    assert_int_equal(fut_loop_call_later(loop, delays[i], mock_fire_cb, &ts[i],
                                         i == 5 ? &cancel_me : NULL),
                     0);
  }
  fut_handle_cancel(cancel_me);
  fut_handle_unref(cancel_me);
  uint64_t wall0 = fut__now();
  /* Advance in steps of 100 ms of mock time up to 1 h 1 s. */
  while (mock_now < FUT_SEC(1000 + 3601)) {
    mock_now += FUT_MS(100);
    assert_int_equal(fut_loop_run_once(loop, 0), 0);
  }
  assert_true(fut__now() - wall0 < FUT_SEC(10)); /* no real waiting */
  assert_int_equal(log.n, 5);
  static const int expect[] = {3, 4, 2, 1, 0};
  for (int i = 0; i < 5; i++) {
    assert_int_equal(log.order[i], expect[i]);
    assert_true(log.at[i] >= FUT_SEC(1000) + delays[expect[i]]);
    /* Fired at the first step at or after the deadline. */
    assert_true(log.at[i] < FUT_SEC(1000) + delays[expect[i]] + FUT_MS(100));
  }
  assert_int_equal(fut__loop_set_clock(loop, NULL, NULL), 0);
}

/* Timers whose wheel slot has come wait, sorted, in the run; cancelling
 * one there leaves a tombstone (no lazy shedding, nothing counted as
 * cancelled), the others fire in order, and a loop freed with tombstones
 * and live timers in the run drops both cleanly. */
enum { RUN_TIMERS = 1000 };
struct run_fire {
  int order[RUN_TIMERS];
  int n;
};
static struct run_fire rf;

static void run_fire_cb(void *arg) {
  rf.order[rf.n++] = (int)(intptr_t)arg;
}

static void test_timer_cancel_in_run_leaves_tombstone(void **state) {
  fut_loop_t *loop = *state;
  uint64_t slot = FUT_SEC(1000) >> FUT__SLOT_SHIFT;
  mock_now = slot << FUT__SLOT_SHIFT; /* a slot's first nanosecond */
  assert_int_equal(fut__loop_set_clock(loop, mock_clock, NULL), 0);
  memset(&rf, 0, sizeof rf);
  fut_handle_t **hs = calloc(RUN_TIMERS, sizeof *hs);
  assert_non_null(hs);
  /* All in the next slot, deadlines descending with ties (FIFO). */
  uint64_t base = (slot + 1) << FUT__SLOT_SHIFT;
  for (int i = 0; i < RUN_TIMERS; i++)
    assert_int_equal(fut_loop_call_at(loop,
                                      base + 1000 * (uint64_t)(99 - i % 100),
                                      run_fire_cb, (void *)(intptr_t)i, &hs[i]),
                     0);
  /* Just before the slot: the wake-up computation moves it to the run
   * ahead of time (the slack may reach into it); nothing is due. */
  mock_now = base - 1;
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(rf.n, 0);
  struct fut__timers *t = &loop->timers;
  assert_int_equal(t->run_len - t->run_pos, RUN_TIMERS);
  for (int i = 0; i < RUN_TIMERS; i += 3) {
    fut_handle_cancel(hs[i]);
    fut_handle_unref(hs[i]);
    hs[i] = NULL;
  }
  assert_int_equal(t->cancelled, 0);
  assert_int_equal(t->zombies, 0);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  int left = RUN_TIMERS - (RUN_TIMERS + 2) / 3;
  assert_int_equal(st.pending_timers, left);
  assert_int_equal(st.live_handles, left);
  /* Half the deadlines pass: those fire, in (deadline, FIFO) order. */
  mock_now = base + 1000 * 49;
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  for (int k = 1; k < rf.n; k++) {
    int a = rf.order[k - 1], b = rf.order[k];
    assert_true(99 - a % 100 < 99 - b % 100 ||
                (99 - a % 100 == 99 - b % 100 && a < b));
  }
  for (int k = 0; k < rf.n; k++) {
    assert_int_not_equal(rf.order[k] % 3, 0);
    assert_true(99 - rf.order[k] % 100 <= 49);
  }
  assert_int_equal(rf.n, left / 2);
  /* The rest stay pending, tombstones among them, when the loop closes:
   * the live ones read as cancelled, the tombstones are skipped. */
  assert_int_equal(fut_loop_close(loop), 0);
  for (int i = 0; i < RUN_TIMERS; i++) {
    if (!hs[i])
      continue;
    bool fired = false;
    for (int k = 0; k < rf.n; k++)
      fired = fired || rf.order[k] == i;
    assert_true(fut_handle_cancelled(hs[i]) == !fired);
    fut_handle_unref(hs[i]);
  }
  fut_loop_stats(loop, &st);
  assert_int_equal(st.live_handles, 0);
  free(hs);
}

/* Bug (fuzz_api, CI): a wheel slot whose timers were all cancelled handle
 * timers (unlinked from the slot at cancel) still had its bit set; its
 * flush, with an empty run that had no buffer yet, did pointer arithmetic
 * on NULL (UBSan: "applying zero offset to null pointer").  The slot must
 * flush to nothing, and a later timer still fire. */
static void
test_timer_wheel_slot_of_cancelled_handles_flushes_empty(void **state) {
  fut_loop_t *loop = *state;
  uint64_t slot = FUT_SEC(2000) >> FUT__SLOT_SHIFT;
  mock_now = slot << FUT__SLOT_SHIFT;
  assert_int_equal(fut__loop_set_clock(loop, mock_clock, NULL), 0);
  struct fut__timers *t = &loop->timers;
  assert_null(t->run); /* a fresh loop: no run buffer */
  memset(&rf, 0, sizeof rf);
  /* Two handle timers 20 ms ahead (the wheel), both cancelled. */
  fut_handle_t *h[2];
  for (int i = 0; i < 2; i++)
    assert_int_equal(fut_loop_call_later(loop, FUT_MS(20), run_fire_cb,
                                         (void *)(intptr_t)i, &h[i]),
                     0);
  for (int i = 0; i < 2; i++) {
    fut_handle_cancel(h[i]);
    fut_handle_unref(h[i]);
  }
  /* One plain timer later still, then time passes the cancelled slot. */
  assert_int_equal(fut_loop_call_later(loop, FUT_MS(40), run_fire_cb,
                                       (void *)(intptr_t)7, NULL),
                   0);
  for (int k = 0; k < 60 && rf.n == 0; k++) {
    mock_now += FUT_MS(1);
    assert_int_equal(fut_loop_run_once(loop, 0), 0);
  }
  assert_int_equal(rf.n, 1);
  assert_int_equal(rf.order[0], 7);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.pending_timers, 0);
  assert_int_equal(st.live_handles, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FX_LOOP_TEST(test_timer_call_later_never_early),
      FX_LOOP_TEST(test_timer_call_at),
      FX_LOOP_TEST(test_timer_bad_args),
      FX_LOOP_TEST(test_timer_deadline_order),
      FX_LOOP_TEST(test_timer_fifo_equal_deadlines),
      FX_LOOP_TEST(test_timer_random_heap_order),
      FX_LOOP_TEST(test_timer_cancel_never_fires),
      FX_LOOP_TEST(test_timer_cancel_expired_same_tick),
      FX_LOOP_TEST(test_timer_cancel_after_fire_noop),
      FX_LOOP_TEST(test_timer_huge_delay_clamps),
      FX_LOOP_TEST(test_timer_handle_when),
      FX_LOOP_TEST(test_timer_scheduled_in_drain_runs_next_iteration),
      FX_LOOP_TEST(test_timer_fifo_across_seq_wrap),
      FX_LOOP_TEST(test_timer_poll_interrupted_by_signals),
      FX_LOOP_TEST(test_timer_wheel_out_of_memory_fails_run),
      FX_LOOP_TEST(test_timer_handle_bytes_bound),
      FX_LOOP_TEST(test_timer_cancel_in_run_leaves_tombstone),
      FX_LOOP_TEST(test_timer_wheel_slot_of_cancelled_handles_flushes_empty),
      FX_LOOP_TEST(test_timer_mock_clock_hours_pass_instantly),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
