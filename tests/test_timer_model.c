/* White-box test of the timer tiers (near heap, wheel, far heap) against a
 * reference model: random timers across all three tiers, random cancels,
 * and time driven by hand through fut__timers_expire, checking that each
 * step fires exactly the due, uncancelled timers in (deadline, FIFO)
 * order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "loop/internal.h"

#define N 4000

struct model {
  uint64_t when;
  uint32_t order; /* creation order: FIFO among equal deadlines */
  bool cancelled;
  bool fired;
  fut_handle_t *h; /* NULL for a bare timer */
};

static struct model timers[N];
static int fired_log[N];
static int nfired;

static void fire_cb(void *arg) {
  int id = (int)(intptr_t)arg;
  assert_false(timers[id].fired);
  assert_false(timers[id].cancelled);
  timers[id].fired = true;
  fired_log[nfired++] = id;
}

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* Deadlines spread over the near tier (already due), the wheel (up to
 * ~268 ms) and the far heap (seconds), with many exact ties. */
static bool dense; /* many timers per wheel slot (the run's radix sort) */
static uint64_t random_delay(void) {
  if (dense) { /* a few slots, ties on whole and half ms, some far */
    uint64_t r = next_rand();
    return r % 16 == 0 ? FUT_MS(300) + r % FUT_SEC(1)
                       : FUT_MS(1 + r % 8) + (r / 8 % 3) * 500000;
  }
  switch (next_rand() % 4) {
  case 0:
    return next_rand() % FUT_MS(2);
  case 1:
    return FUT_MS(next_rand() % 250); /* ties on whole ms */
  case 2:
    return next_rand() % FUT_MS(300);
  default:
    return FUT_MS(300) + next_rand() % FUT_SEC(3);
  }
}

/* Runs the ready queue without touching the timers: the clock the loop
 * sees is behind our hand-driven `now`, so nothing else becomes due. */
static void run_ready(fut_loop_t *loop) {
  while (loop->ready.head != loop->ready.tail) {
    struct fut__ready_ent e =
        loop->ready.ents[loop->ready.head & loop->ready.mask];
    loop->ready.head++;
    e.fn(e.arg);
  }
}

static int cmp_expected(const void *a, const void *b) {
  const struct model *x = &timers[*(const int *)a];
  const struct model *y = &timers[*(const int *)b];
  if (x->when != y->when)
    return x->when < y->when ? -1 : 1;
  return x->order < y->order ? -1 : x->order > y->order;
}

static void run_model(void) {
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  uint64_t now = fut_loop_time(loop);
  memset(timers, 0, sizeof timers);
  nfired = 0;
  int created = 0, fired_before = 0;
  static int expected[N];
  bool saw_far = false, saw_wheel = false;
  for (;;) {
    /* Create a burst, cancel a few, advance time by a random step. */
    for (int k = 0; k < (dense ? 400 : 50) && created < N; k++, created++) {
      struct model *m = &timers[created];
      m->when = now + random_delay();
      m->order = (uint32_t)created;
      bool with_handle = next_rand() % 2;
      assert_int_equal(fut_loop_call_at(loop, m->when, fire_cb,
                                        (void *)(intptr_t)created,
                                        with_handle ? &m->h : NULL),
                       0);
    }
    for (int k = 0; k < 10; k++) {
      int id = (int)(next_rand() % (uint64_t)created);
      if (timers[id].h && !timers[id].fired && !timers[id].cancelled) {
        fut_handle_cancel(timers[id].h);
        timers[id].cancelled = true;
      }
    }
    saw_far |= loop->timers.far.len > 0;
    for (unsigned w = 0; w < FUT__WHEEL_SLOTS / 64; w++)
      saw_wheel |= loop->timers.wheel_bits[w] != 0;
    now += next_rand() % FUT_MS(dense ? 4 : 40);
    /* Expected: the due, live, unfired timers in (when, order). */
    int ne = 0;
    for (int i = 0; i < created; i++)
      if (!timers[i].fired && !timers[i].cancelled && timers[i].when <= now)
        expected[ne++] = i;
    qsort(expected, (size_t)ne, sizeof expected[0], cmp_expected);
    fired_before = nfired;
    fut__timers_expire(loop, now);
    run_ready(loop);
    assert_int_equal(nfired - fired_before, ne);
    for (int i = 0; i < ne; i++)
      assert_int_equal(fired_log[fired_before + i], expected[i]);
    /* Pending count matches the model. */
    size_t pending = 0;
    for (int i = 0; i < created; i++)
      pending += !timers[i].fired && !timers[i].cancelled;
    fut_loop_stats_t st;
    fut_loop_stats(loop, &st);
    assert_int_equal(st.pending_timers, pending);
    /* The next wake-up is never after the earliest live deadline. */
    uint64_t earliest = UINT64_MAX;
    for (int i = 0; i < created; i++)
      if (!timers[i].fired && !timers[i].cancelled && timers[i].when < earliest)
        earliest = timers[i].when;
    assert_true(fut__timer_next(loop) <= earliest);
    if (created == N && pending == 0)
      break;
  }
  /* The run went through every tier. */
  assert_true(saw_far);
  assert_true(saw_wheel);
  for (int i = 0; i < N; i++)
    fut_handle_unref(timers[i].h);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.live_handles, 0);
  assert_int_equal(st.pending_timers, 0);
  assert_int_equal(fut_loop_free(loop), 0);
}

static void test_timer_model_random(void **state) {
  (void)state;
  dense = false;
  run_model();
}

/* Hundreds of timers per slot with exact ties: wheel slots flush through
 * the sorted run (radix sort, then sequence order among ties). */
static void test_timer_model_dense_slots(void **state) {
  (void)state;
  dense = true;
  run_model();
  dense = false;
}

/* Cancelling most timers compacts every tier and frees the handles only the
 * timers held. */
static void test_timer_model_mass_cancel_compacts(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  static fut_handle_t *hs[3000];
  for (int i = 0; i < 3000; i++) {
    uint64_t delay = i % 3 == 0   ? FUT_MS(1)
                     : i % 3 == 1 ? FUT_MS(100)
                                  : FUT_SEC(10);
    assert_int_equal(fut_loop_call_later(loop, delay, fire_cb, NULL, &hs[i]),
                     0);
  }
  for (int i = 0; i < 3000; i++) {
    fut_handle_cancel(hs[i]);
    fut_handle_unref(hs[i]);
  }
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.pending_timers, 0);
  assert_int_equal(st.live_handles, 0);
  /* Compaction really freed most of them (not just hid them). */
  assert_true(loop->live_handles < 100);
  assert_true(fut__timer_next(loop) == UINT64_MAX);
  assert_int_equal(fut_loop_free(loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_timer_model_random),
      cmocka_unit_test(test_timer_model_dense_slots),
      cmocka_unit_test(test_timer_model_mass_cancel_compacts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
