/* Timer coalescing (fut__timer_slack, fut__timer_wake): the loop sleeps
 * until the latest moment that keeps every due timer within its slack, so
 * near-equal deadlines share one wake-up; and still no timer ever fires
 * before its deadline, equal deadlines fire FIFO, and a timer is at most
 * its slack late (plus the kernel's own lateness, played here).
 *
 * The mock clock (fut__loop_set_clock) and an epoll_pwait2 shim that
 * "sleeps" by moving the mock clock make the wake-ups exact and
 * countable: no real waiting. */
#include "fixture.h"

#include <stdlib.h>

#include "loop/internal.h"

static uint64_t mock_now;
static uint64_t mock_clock(void *arg) {
  (void)arg;
  return mock_now;
}

/* The kernel: sleeps the timeout asked, plus up to `kernel_late` ns (its
 * own timer slack), by moving the mock clock. */
static uint64_t kernel_late;
static unsigned sleeps;
static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint64_t xorshift(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static int fake_pwait2(int epfd, void *events, int maxevents,
                       const struct timespec *ts) {
  (void)epfd;
  (void)events;
  (void)maxevents;
  uint64_t ns = (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
  mock_now += ns + (kernel_late ? xorshift() % (kernel_late + 1) : 0);
  sleeps++;
  return 0;
}

struct tm_ent {
  uint64_t when;  /* deadline */
  uint64_t delay; /* asked for at scheduling */
  uint64_t fired; /* mock time at the callback, 0 before */
  int order;      /* firing order, from 1 */
  bool cancelled;
  fut_handle_t *h;
};

static int fired_count;

static void tm_cb(void *arg) {
  struct tm_ent *e = arg;
  e->fired = mock_now;
  e->order = ++fired_count;
}

static int (*saved_pwait2)(int, void *, int, const struct timespec *);

static void mock_on(fut_loop_t *loop) {
  mock_now = FUT_SEC(1000);
  sleeps = 0;
  fired_count = 0;
  kernel_late = 0;
  assert_int_equal(fut__loop_set_clock(loop, mock_clock, NULL), 0);
  saved_pwait2 = fut__sys_epoll_pwait2;
  fut__sys_epoll_pwait2 = fake_pwait2;
}

static void mock_off(fut_loop_t *loop) {
  fut__sys_epoll_pwait2 = saved_pwait2;
  assert_int_equal(fut__loop_set_clock(loop, NULL, NULL), 0);
}

/* Runs the loop (blocking polls, played by the shim) until n timers fired. */
static void run_until_fired(fut_loop_t *loop, int n) {
  for (int guard = 0; fired_count < n; guard++) {
    assert_true(guard < 10 * n + 1000);
    assert_int_equal(fut_loop_run_once(loop, UINT64_MAX), 0);
  }
}

static void test_coalesce_slack_policy(void **state) {
  (void)state;
  assert_int_equal(fut__timer_slack(0), FUT_US(50));
  assert_int_equal(fut__timer_slack(FUT_US(100)), FUT_US(50));
  assert_int_equal(fut__timer_slack(FUT_MS(1)), FUT_MS(1) / 16);
  assert_int_equal(fut__timer_slack(FUT_MS(10)), FUT_MS(10) / 16);
  assert_int_equal(fut__timer_slack(FUT_MS(100)), FUT_MS(1));
  assert_int_equal(fut__timer_slack(UINT64_MAX), FUT_MS(1));
}

/* Checks every timer: never early, at most slack (+ kernel) late, firing
 * order by (deadline, scheduling order), cancelled ones never. */
static void check_fired(struct tm_ent *ts, int n) {
  for (int i = 0; i < n; i++) {
    if (ts[i].cancelled) {
      assert_int_equal(ts[i].order, 0);
      continue;
    }
    assert_true(ts[i].order > 0);
    assert_true(ts[i].fired >= ts[i].when); /* never early, strictly */
    assert_true(ts[i].fired - ts[i].when <=
                fut__timer_slack(ts[i].delay) + kernel_late);
  }
  /* Order: for any two fired timers, the earlier deadline (or, equal, the
   * earlier scheduled: lower index) fired first.  Sorting by firing order
   * and checking neighbours is enough. */
  int *by_order = calloc((size_t)n + 1, sizeof *by_order);
  assert_non_null(by_order);
  for (int i = 0; i < n; i++)
    if (ts[i].order)
      by_order[ts[i].order] = i + 1;
  int prev = 0;
  for (int k = 1; k <= n; k++) {
    int cur = by_order[k];
    if (!cur)
      continue;
    if (prev) {
      struct tm_ent *a = &ts[prev - 1], *b = &ts[cur - 1];
      assert_true(a->when < b->when || (a->when == b->when && prev < cur));
    }
    prev = cur;
  }
  free(by_order);
}

/* 10,000 timers over 4..100 ms, scheduled over 3 ms of (mock) time, a
 * tenth of them sharing deadlines, some cancelled, some with handles: each
 * fires once, never early, within its slack, in order; and the loop wakes
 * about once per millisecond, not once per distinct deadline. */
static void run_burst(fut_loop_t *loop, uint64_t late) {
  enum { N = 10000 };
  mock_on(loop);
  kernel_late = late;
  struct tm_ent *ts = calloc(N, sizeof *ts);
  assert_non_null(ts);
  int live = 0;
  for (int i = 0; i < N; i++) {
    if (i % 10 == 9) {
      /* Same deadline as the previous timer, by call_at: FIFO. */
      ts[i].when = ts[i - 1].when;
      ts[i].delay = ts[i].when - mock_now;
      assert_int_equal(fut_loop_call_at(loop, ts[i].when, tm_cb, &ts[i], NULL),
                       0);
    } else {
      ts[i].delay = FUT_US(4000 + xorshift() % 96001);
      ts[i].when = mock_now + ts[i].delay;
      assert_int_equal(fut_loop_call_later(loop, ts[i].delay, tm_cb, &ts[i],
                                           i % 3 == 0 ? &ts[i].h : NULL),
                       0);
    }
    mock_now += 300; /* 3 ms for the burst */
  }
  for (int i = 0; i < N; i += 30) {
    fut_handle_cancel(ts[i].h);
    ts[i].cancelled = true;
  }
  for (int i = 0; i < N; i++)
    live += !ts[i].cancelled;
  sleeps = 0;
  run_until_fired(loop, live);
  check_fired(ts, N);
  /* 10^4 distinct-ish deadlines over about 100 ms: with a 1 ms slack for
   * most of them, about one wake-up per millisecond (exact deadlines
   * would take thousands). */
  print_message("%d timers over 100 ms: %u wake-ups (kernel late <= %llu "
                "ns)\n",
                live, sleeps, (unsigned long long)late);
  assert_true(sleeps <= 250);
  for (int i = 0; i < N; i++)
    fut_handle_unref(ts[i].h);
  free(ts);
  mock_off(loop);
}

static void test_coalesce_burst_exact_kernel(void **state) {
  run_burst(*state, 0);
}

static void test_coalesce_burst_late_kernel(void **state) {
  run_burst(*state, FUT_US(50));
}

/* A short timer is not held back for a long one: 100 us gets its 50 us,
 * while a 100 ms timer beside it may wait 1 ms. */
static void test_coalesce_short_timer_keeps_small_slack(void **state) {
  fut_loop_t *loop = *state;
  mock_on(loop);
  struct tm_ent ts[3] = {{0}};
  static const uint64_t delays[3] = {FUT_MS(100), FUT_US(100), FUT_MS(5)};
  for (int i = 0; i < 3; i++) {
    ts[i].delay = delays[i];
    ts[i].when = mock_now + delays[i];
    assert_int_equal(fut_loop_call_later(loop, delays[i], tm_cb, &ts[i], NULL),
                     0);
  }
  run_until_fired(loop, 3);
  check_fired(ts, 3);
  /* The shim's kernel is exact: each wake-up lands at the latest moment
   * the slack allows, so the short one is exactly 50 us late. */
  assert_int_equal(ts[1].fired - ts[1].when, FUT_US(50));
  assert_int_equal(ts[0].fired - ts[0].when, FUT_MS(1));
  assert_int_equal(sleeps, 3);
  mock_off(loop);
}

/* Timers a slot apart and beyond the wheel (the far heap) coalesce too,
 * and a burst of equal deadlines costs one wake-up. */
static void test_coalesce_equal_deadlines_one_wakeup(void **state) {
  fut_loop_t *loop = *state;
  mock_on(loop);
  enum { N = 1000 };
  struct tm_ent *ts = calloc(N, sizeof *ts);
  assert_non_null(ts);
  uint64_t when = mock_now + FUT_SEC(2); /* beyond the wheel: far heap */
  for (int i = 0; i < N; i++) {
    ts[i].when = when + (uint64_t)(i % 4) * FUT_US(100);
    ts[i].delay = ts[i].when - mock_now;
    assert_int_equal(fut_loop_call_at(loop, ts[i].when, tm_cb, &ts[i],
                                      i % 2 ? &ts[i].h : NULL),
                     0);
  }
  run_until_fired(loop, N);
  check_fired(ts, N);
  /* Reaching the deadline from 2 s away may take a wake-up at the wheel's
   * horizon; the 1,000 timers within 300 us then fire in one. */
  assert_true(sleeps <= 3);
  for (int i = 0; i < N; i++)
    fut_handle_unref(ts[i].h);
  free(ts);
  mock_off(loop);
}

/* On the real clock: never early, and late by a bounded amount (loosely:
 * the machine is loaded). */
struct real_ent {
  fut_loop_t *loop;
  uint64_t when;
  uint64_t fired;
};
static int real_fired;
static void real_cb(void *arg) {
  struct real_ent *e = arg;
  e->fired = fut_loop_time(e->loop);
  real_fired++;
}
static bool real_all(void *arg) {
  return real_fired == *(int *)arg;
}

static void test_coalesce_real_clock_never_early(void **state) {
  fut_loop_t *loop = *state;
  enum { N = 2000 };
  struct real_ent *ts = calloc(N, sizeof *ts);
  assert_non_null(ts);
  real_fired = 0;
  for (int i = 0; i < N; i++) {
    uint64_t t0 = fut_loop_time(loop);
    uint64_t delay = FUT_US(10 + xorshift() % 30000);
    ts[i] = (struct real_ent){loop, 0, 0};
    fut_handle_t *h = NULL;
    assert_int_equal(
        fut_loop_call_later(loop, delay, real_cb, &ts[i], i % 2 ? &h : NULL),
        0);
    ts[i].when = h ? fut_handle_when(h) : t0 + delay;
    fut_handle_unref(h);
  }
  int n = N;
  assert_true(fx_run_until(loop, real_all, &n, FUT_SEC(30)));
  for (int i = 0; i < N; i++) {
    assert_true(ts[i].fired >= ts[i].when);
    assert_true(ts[i].fired - ts[i].when < FUT_SEC(5));
  }
  free(ts);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_coalesce_slack_policy),
      FX_LOOP_TEST(test_coalesce_burst_exact_kernel),
      FX_LOOP_TEST(test_coalesce_burst_late_kernel),
      FX_LOOP_TEST(test_coalesce_short_timer_keeps_small_slack),
      FX_LOOP_TEST(test_coalesce_equal_deadlines_one_wakeup),
      FX_LOOP_TEST(test_coalesce_real_clock_never_early),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
