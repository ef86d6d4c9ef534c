/* Timers with a handle: call_later / call_at's fast path and the general
 * one interleaved (FIFO kept), cancels in start order (a wheel bucket's
 * head moves), in the middle and at the end of a bucket, a bucket emptied
 * and reused, cancels from callbacks, a slab grown into its huge-page
 * regions, and slots passed by a burst of starts (the lag).  The mock clock
 * (fut__loop_set_clock) makes them exact. */
#include "fixture.h"

#include <stdlib.h>
#include <string.h>

#include "loop/internal.h"

static uint64_t mock_now;
static uint64_t mock_clock(void *arg) {
  (void)arg;
  return mock_now;
}

enum { MAXT = 3000 };
struct fire_log {
  int order[MAXT];
  uint64_t at[MAXT];
  int n;
};
static struct fire_log fl;
static uint64_t deadline[MAXT];

static void log_cb(void *arg) {
  int i = (int)(intptr_t)arg;
  fl.at[fl.n] = mock_now;
  fl.order[fl.n++] = i;
}

static size_t listed(const fut_loop_t *loop) {
  size_t n = 0;
  for (uint32_t b = 0; b < FUT__WHEEL_SLOTS; b++)
    n += loop->timers.hwheel[b].len - loop->timers.hwheel[b].head;
  return n;
}

static uint32_t bucket_of(uint64_t when) {
  return (uint32_t)((when >> FUT__SLOT_SHIFT) % FUT__WHEEL_SLOTS);
}

static bool bucket_marked(const fut_loop_t *loop, uint32_t b) {
  return loop->timers.wheel_bits[b / 64] & (UINT64_C(1) << (b % 64));
}

/* Runs the mock clock forward in 100 us steps until `until`. */
static void run_to(fut_loop_t *loop, uint64_t until) {
  while (mock_now < until) {
    mock_now += FUT_US(100);
    assert_int_equal(fut_loop_run_once(loop, 0), 0);
  }
}

/* Checks the log: every fired timer at or after its deadline, in
 * (deadline, start order) order. */
static void assert_fired_in_order(void) {
  for (int k = 0; k < fl.n; k++) {
    int i = fl.order[k];
    assert_true(fl.at[k] >= deadline[i]);
    if (k > 0) {
      int p = fl.order[k - 1];
      assert_true(deadline[p] < deadline[i] ||
                  (deadline[p] == deadline[i] && p < i));
    }
  }
}

/* Three slots, 900 timers each, started interleaved: the first start in a
 * slot and each 256th (a new list chunk) take the general path, the
 * others the fast one.  Cancels: the first 300 of each slot in start
 * order (the head moves: no other handle is touched), some in the middle
 * (the last entry fills the hole), each slot's newest; then every timer
 * of the third slot, which empties its list: it starts over, its bit
 * clears, and timers started into it again fire. */
static void test_timer_cancel_head_middle_last(void **state) {
  fut_loop_t *loop = *state;
  uint64_t slot = FUT_SEC(3000) >> FUT__SLOT_SHIFT;
  mock_now = slot << FUT__SLOT_SHIFT;
  assert_int_equal(fut__loop_set_clock(loop, mock_clock, NULL), 0);
  memset(&fl, 0, sizeof fl);
  enum { PER = 900, N = 3 * PER };
  fut_handle_t **hs = calloc(N, sizeof *hs);
  assert_non_null(hs);
  for (int i = 0; i < N; i++) {
    /* Slots +5, +6, +7; deadlines in each descending with ties. */
    deadline[i] =
        ((slot + 5 + (uint64_t)(i % 3)) << FUT__SLOT_SHIFT) + 997 * (i % 7);
    if (i % 2)
      assert_int_equal(fut_loop_call_at(loop, deadline[i], log_cb,
                                        (void *)(intptr_t)i, &hs[i]),
                       0);
    else
      assert_int_equal(fut_loop_call_later(loop, deadline[i] - mock_now, log_cb,
                                           (void *)(intptr_t)i, &hs[i]),
                       0);
    assert_int_equal(fut_handle_when(hs[i]), deadline[i]);
  }
  assert_int_equal(listed(loop), N);
  struct fut__timers *t = &loop->timers;
  bool gone[N];
  memset(gone, 0, sizeof gone);
  int ngone = 0;
#define CANCEL(i)                                                              \
  do {                                                                         \
    fut_handle_cancel(hs[i]);                                                  \
    assert_true(fut_handle_cancelled(hs[i]));                                  \
    fut_handle_unref(hs[i]);                                                   \
    gone[i] = true;                                                            \
    ngone++;                                                                   \
  } while (0)
  /* The first 300 of each slot, in start order: the heads move. */
  for (int i = 0; i < 900; i++)
    CANCEL(i);
  for (int s = 0; s < 3; s++) {
    const struct fut__hbucket *hb = &t->hwheel[bucket_of(deadline[s])];
    assert_int_equal(hb->head, 300);
    assert_int_equal(hb->len, PER);
  }
  /* Middle entries, and each slot's newest. */
  for (int i = 1000; i < 2000; i += 7)
    CANCEL(i);
  for (int i = N - 3; i < N; i++)
    if (!gone[i])
      CANCEL(i);
  assert_int_equal(listed(loop), N - ngone);
  assert_int_equal(t->cancelled, 0); /* all unlinked at once */
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.pending_timers, N - ngone);
  assert_int_equal(st.live_handles, N - ngone);
  /* Every timer of the third slot (i % 3 == 2): its list empties. */
  uint32_t b3 = bucket_of(deadline[2]);
  for (int i = 2; i < N; i += 3)
    if (!gone[i])
      CANCEL(i);
  assert_int_equal(t->hwheel[b3].head, 0);
  assert_int_equal(t->hwheel[b3].len, 0);
  assert_false(bucket_marked(loop, b3));
  assert_true(bucket_marked(loop, bucket_of(deadline[0])));
  /* The emptied slot takes timers again. */
  fut_handle_t *again[3];
  for (int k = 0; k < 3; k++) {
    int i = N + k;
    deadline[i] = deadline[2] + (uint64_t)k;
    assert_int_equal(fut_loop_call_at(loop, deadline[i], log_cb,
                                      (void *)(intptr_t)i, &again[k]),
                     0);
  }
  assert_true(bucket_marked(loop, b3));
  run_to(loop, ((slot + 9) << FUT__SLOT_SHIFT));
  int expect = N - ngone + 3;
  assert_int_equal(fl.n, expect);
  assert_fired_in_order();
  for (int k = 0; k < fl.n; k++)
    assert_true(fl.order[k] >= N || !gone[fl.order[k]]);
  for (int i = 0; i < N; i++)
    if (!gone[i]) {
      assert_false(fut_handle_cancelled(hs[i]));
      fut_handle_unref(hs[i]);
    }
  for (int k = 0; k < 3; k++)
    fut_handle_unref(again[k]);
  fut_loop_stats(loop, &st);
  assert_int_equal(st.pending_timers, 0);
  assert_int_equal(st.live_handles, 0);
  free(hs);
#undef CANCEL
  assert_int_equal(fut__loop_set_clock(loop, NULL, NULL), 0);
}

/* Equal deadlines keep FIFO whichever path filed them: handles from the
 * fast path, handles from the general one (new list chunks, the handle
 * slab's chunk boundaries every ~2,000), and timers without a handle. */
static void test_timer_fast_and_general_paths_fifo(void **state) {
  fut_loop_t *loop = *state;
  uint64_t slot = FUT_SEC(4000) >> FUT__SLOT_SHIFT;
  mock_now = slot << FUT__SLOT_SHIFT;
  assert_int_equal(fut__loop_set_clock(loop, mock_clock, NULL), 0);
  memset(&fl, 0, sizeof fl);
  enum { N = MAXT };
  fut_handle_t **hs = calloc(N, sizeof *hs);
  assert_non_null(hs);
  uint64_t when = (slot + 3) << FUT__SLOT_SHIFT;
  for (int i = 0; i < N; i++) {
    deadline[i] = when;
    assert_int_equal(fut_loop_call_at(loop, when, log_cb, (void *)(intptr_t)i,
                                      i % 5 == 4 ? NULL : &hs[i]),
                     0);
  }
  run_to(loop, when + FUT_MS(2));
  assert_int_equal(fl.n, N);
  for (int k = 0; k < N; k++)
    assert_int_equal(fl.order[k], k);
  assert_fired_in_order();
  for (int i = 0; i < N; i++)
    fut_handle_unref(hs[i]); /* NULL for the bare ones: a no-op */
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.live_handles, 0);
  free(hs);
  assert_int_equal(fut__loop_set_clock(loop, NULL, NULL), 0);
}

/* Cancels from callbacks: a timer of the slot being run (a tombstone in
 * the run), one of a later slot (the head of its bucket), and the running
 * timer itself (a no-op: it ran). */
static fut_handle_t *cb_hs[8];
static int cb_ran[8];
static void cancelling_cb(void *arg) {
  int i = (int)(intptr_t)arg;
  cb_ran[i]++;
  if (i == 0) {
    fut_handle_cancel(cb_hs[1]); /* same slot, later deadline: in the run */
    fut_handle_cancel(cb_hs[4]); /* a later slot's oldest: its head */
    fut_handle_cancel(cb_hs[0]); /* itself: it ran, nothing happens */
    assert_false(fut_handle_cancelled(cb_hs[0]));
  }
}

static void test_timer_cancel_from_callback(void **state) {
  fut_loop_t *loop = *state;
  uint64_t slot = FUT_SEC(5000) >> FUT__SLOT_SHIFT;
  mock_now = slot << FUT__SLOT_SHIFT;
  assert_int_equal(fut__loop_set_clock(loop, mock_clock, NULL), 0);
  memset(cb_ran, 0, sizeof cb_ran);
  uint64_t s1 = (slot + 2) << FUT__SLOT_SHIFT;
  uint64_t s2 = (slot + 4) << FUT__SLOT_SHIFT;
  /* 0..3 in slot s1, 4..7 in slot s2, 10 ns apart. */
  for (int i = 0; i < 8; i++)
    assert_int_equal(fut_loop_call_at(loop, (i < 4 ? s1 : s2) + 10 * (i % 4),
                                      cancelling_cb, (void *)(intptr_t)i,
                                      &cb_hs[i]),
                     0);
  /* Slot s1 comes, only 0 due: 1..3 wait in the run; 0 cancels 1 there,
   * and 4 at the head of s2's list. */
  mock_now = s1 + 5;
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(cb_ran[0], 1);
  assert_int_equal(cb_ran[1], 0);
  assert_true(fut_handle_cancelled(cb_hs[1]));
  assert_true(fut_handle_cancelled(cb_hs[4]));
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.pending_timers, 5);
  run_to(loop, s2 + FUT_MS(1));
  static const int expect[8] = {1, 0, 1, 1, 0, 1, 1, 1};
  for (int i = 0; i < 8; i++) {
    assert_int_equal(cb_ran[i], expect[i]);
    fut_handle_unref(cb_hs[i]);
  }
  fut_loop_stats(loop, &st);
  assert_int_equal(st.pending_timers, 0);
  assert_int_equal(st.live_handles, 0);
  assert_int_equal(fut__loop_set_clock(loop, NULL, NULL), 0);
}

/* 100,000 handles grow the handle slab past its small chunks into 2 MiB
 * huge-page regions; half cancelled in a scattered order, the rest fire,
 * and every handle goes back (ASan checks the regions' carving). */
static int big_fired;
static void count_cb(void *arg) {
  (void)arg;
  big_fired++;
}

static void test_timer_many_handles_slab_regions(void **state) {
  fut_loop_t *loop = *state;
  uint64_t slot = FUT_SEC(6000) >> FUT__SLOT_SHIFT;
  mock_now = slot << FUT__SLOT_SHIFT;
  assert_int_equal(fut__loop_set_clock(loop, mock_clock, NULL), 0);
  enum { BIG = 100000 };
  fut_handle_t **hs = calloc(BIG, sizeof *hs);
  assert_non_null(hs);
  uint64_t x = 12345;
  for (int i = 0; i < BIG; i++) {
    x = x * 6364136223846793005u + 1442695040888963407u;
    assert_int_equal(fut_loop_call_later(loop, FUT_MS(1 + (x >> 33) % 100),
                                         count_cb, NULL, &hs[i]),
                     0);
  }
  /* Past 31 chunks (groups of 1, 2, 4, 8, 16), chunks come from 2 MiB
   * groups advised for huge pages. */
  uint32_t nchunks = 0;
  for (struct fut__slab_chunk *c = loop->handle_slab.all; c; c = c->next_all)
    nchunks++;
  assert_true(nchunks >= FUT__SLAB_GROUP_MAX);
  int cancelled = 0;
  for (int i = 0; i < BIG; i++) {
    int j = (int)(((uint64_t)i * 7919) % BIG); /* scattered, each once */
    if (j % 2) {
      fut_handle_cancel(hs[j]);
      cancelled++;
    }
  }
  for (int i = 0; i < BIG; i++)
    if (fut_handle_cancelled(hs[i])) {
      fut_handle_unref(hs[i]);
      hs[i] = NULL;
    }
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.pending_timers, BIG - cancelled);
  big_fired = 0;
  run_to(loop, mock_now + FUT_MS(103));
  assert_int_equal(big_fired, BIG - cancelled);
  for (int i = 0; i < BIG; i++)
    fut_handle_unref(hs[i]);
  fut_loop_stats(loop, &st);
  assert_int_equal(st.live_handles, 0);
  free(hs);
  assert_int_equal(fut__loop_set_clock(loop, NULL, NULL), 0);
}

/* A burst of starts outlasting the wheel's reach (the mock clock jumps
 * 300 ms between starts, the loop never runs): the passed slots move
 * whole to the lag, where cancels still unlink at once (heads, middles, a
 * whole slot); when the loop runs, the rest fire in (deadline, FIFO) order,
 * never early.  With `fail` the lag's first allocation fails: that slot
 * and the later ones go to the run at once instead (after any lag, so the
 * run stays in slot order), with the same outcome. */
static void lag_case(fut_loop_t *loop, bool fail) {
  uint64_t slot = FUT_SEC(7000) >> FUT__SLOT_SHIFT;
  mock_now = slot << FUT__SLOT_SHIFT;
  assert_int_equal(fut__loop_set_clock(loop, mock_clock, NULL), 0);
  memset(&fl, 0, sizeof fl);
  enum { N = 1200 };
  fut_handle_t **hs = calloc(N + 1, sizeof *hs);
  assert_non_null(hs);
  for (int i = 0; i < N; i++) {
    deadline[i] = ((slot + 2 + (uint64_t)(i % 4)) << FUT__SLOT_SHIFT) +
                  100 * (uint64_t)(i % 9);
    assert_int_equal(fut_loop_call_at(loop, deadline[i], log_cb,
                                      (void *)(intptr_t)i,
                                      i % 6 == 5 ? NULL : &hs[i]),
                     0);
  }
  struct fut__timers *t = &loop->timers;
  mock_now += FUT_MS(300);
  if (fail)
    fut__alloc_fail_after(1, false);
  /* Beyond the wheel from the old slot: the tiers catch up. */
  deadline[N] = mock_now + FUT_MS(5);
  assert_int_equal(
      fut_loop_call_at(loop, deadline[N], log_cb, (void *)(intptr_t)N, &hs[N]),
      0);
  fut__alloc_fail_after(0, false);
  assert_int_equal(t->nlag, fail ? 0 : 4);
  bool gone[N + 1];
  memset(gone, 0, sizeof gone);
  int ngone = 0;
  for (int i = 0; i < N; i++) {
    /* Slot +2 (i % 4 == 0) whole; in the others every 5th, in start
     * order (heads) and from the middle. */
    if (!hs[i] || (i % 4 != 0 && i % 5 != 0 && i % 13 != 0))
      continue;
    fut_handle_cancel(hs[i]);
    assert_true(fut_handle_cancelled(hs[i]));
    fut_handle_unref(hs[i]);
    hs[i] = NULL;
    gone[i] = true;
    ngone++;
  }
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.pending_timers, N + 1 - ngone);
  assert_int_equal(t->cancelled, 0);
  run_to(loop, deadline[N] + FUT_MS(2));
  assert_int_equal(t->nlag, 0);
  assert_int_equal(fl.n, N + 1 - ngone);
  assert_fired_in_order();
  for (int k = 0; k < fl.n; k++)
    assert_false(gone[fl.order[k]]);
  for (int i = 0; i <= N; i++)
    fut_handle_unref(hs[i]);
  fut_loop_stats(loop, &st);
  assert_int_equal(st.pending_timers, 0);
  assert_int_equal(st.live_handles, 0);
  free(hs);
  assert_int_equal(fut__loop_set_clock(loop, NULL, NULL), 0);
}

static void test_timer_lagged_slots_cancel_then_fire(void **state) {
  lag_case(*state, false);
}

static void test_timer_lag_out_of_memory_flushes_at_once(void **state) {
  lag_case(*state, true);
}

/* A loop closed with timers in the lag: they read as cancelled. */
static void test_timer_close_with_lagged_timers(void **state) {
  fut_loop_t *loop = *state;
  uint64_t slot = FUT_SEC(8000) >> FUT__SLOT_SHIFT;
  mock_now = slot << FUT__SLOT_SHIFT;
  assert_int_equal(fut__loop_set_clock(loop, mock_clock, NULL), 0);
  fut_handle_t *h[3];
  for (int i = 0; i < 2; i++)
    assert_int_equal(
        fut_loop_call_later(loop, FUT_MS(3 + i), log_cb, NULL, &h[i]), 0);
  mock_now += FUT_MS(300);
  assert_int_equal(fut_loop_call_later(loop, FUT_MS(5), log_cb, NULL, &h[2]),
                   0);
  assert_int_equal(loop->timers.nlag, 2);
  assert_int_equal(fut_loop_close(loop), 0);
  for (int i = 0; i < 3; i++) {
    assert_true(fut_handle_cancelled(h[i]));
    fut_handle_unref(h[i]);
  }
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.live_handles, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FX_LOOP_TEST(test_timer_cancel_head_middle_last),
      FX_LOOP_TEST(test_timer_fast_and_general_paths_fifo),
      FX_LOOP_TEST(test_timer_cancel_from_callback),
      FX_LOOP_TEST(test_timer_many_handles_slab_regions),
      FX_LOOP_TEST(test_timer_lagged_slots_cancel_then_fire),
      FX_LOOP_TEST(test_timer_lag_out_of_memory_flushes_at_once),
      FX_LOOP_TEST(test_timer_close_with_lagged_timers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
