/* Loop hot paths against plain-C limits measured in the same program:
 *   S1  a chain of call_soon callbacks, each scheduling the next
 *   S2  call_soon scheduled all at once, then run
 *   S3  futures: create, add_done_callback, set_result, run, free
 *   S4  call_later timers over 1..100 ms, all fire; S4' started, then
 *       cancelled
 * Usage: bench_loop [scale]   (scale 1 = the figures of BENCHMARKS.md) */
#include <future.h>

#include "bench_common.h"

static fut_loop_t *loop;
static long counter, target;

/* ---- plain-C baseline: a ring buffer of function pointers ---------------- */
typedef void (*ring_fn)(void *);
static struct ring_ent {
  ring_fn fn;
  void *arg;
} *ring;
static size_t ring_mask, ring_head, ring_tail;

static void ring_init(size_t cap) {
  ring = malloc(sizeof *ring * cap);
  BENCH_CHECK(ring);
  ring_mask = cap - 1;
  ring_head = ring_tail = 0;
}

static inline void ring_push(ring_fn fn, void *arg) {
  ring[ring_tail++ & ring_mask] = (struct ring_ent){fn, arg};
}

static void ring_run(void) {
  while (ring_head != ring_tail) {
    struct ring_ent e = ring[ring_head++ & ring_mask];
    e.fn(e.arg);
  }
}

static void ring_chain_cb(void *arg) {
  if (++counter < target)
    ring_push(ring_chain_cb, arg);
}

static uint64_t base_chain(long n) {
  ring_init(1024);
  counter = 0;
  target = n;
  uint64_t t0 = bench_now();
  ring_push(ring_chain_cb, NULL);
  ring_run();
  uint64_t t = bench_now() - t0;
  BENCH_CHECK(counter == n);
  free(ring);
  return t;
}

static void count_cb(void *arg) {
  (void)arg;
  counter++;
}

static uint64_t base_burst(long n) {
  size_t cap = 1;
  while (cap < (size_t)n)
    cap *= 2;
  ring_init(cap);
  counter = 0;
  uint64_t t0 = bench_now();
  for (long i = 0; i < n; i++)
    ring_push(count_cb, NULL);
  ring_run();
  uint64_t t = bench_now() - t0;
  BENCH_CHECK(counter == n);
  free(ring);
  return t;
}

/* ---- S1 / S2 --------------------------------------------------------------- */
static void chain_cb(void *arg) {
  if (++counter < target)
    fut_loop_call_soon(loop, chain_cb, arg, NULL);
  else
    fut_loop_stop(loop);
}

static uint64_t s1_chain(long n) {
  counter = 0;
  target = n;
  uint64_t t0 = bench_now();
  fut_loop_call_soon(loop, chain_cb, NULL, NULL);
  BENCH_CHECK(fut_loop_run_forever(loop) == 0);
  uint64_t t = bench_now() - t0;
  BENCH_CHECK(counter == n);
  return t;
}

static void stop_cb(void *arg) {
  (void)arg;
  fut_loop_stop(loop);
}

static uint64_t s2_burst(long n) {
  counter = 0;
  uint64_t t0 = bench_now();
  for (long i = 0; i < n; i++)
    fut_loop_call_soon(loop, count_cb, NULL, NULL);
  fut_loop_call_soon(loop, stop_cb, NULL, NULL);
  BENCH_CHECK(fut_loop_run_forever(loop) == 0);
  uint64_t t = bench_now() - t0;
  BENCH_CHECK(counter == n);
  return t;
}

/* ---- S3: futures vs a malloc'd struct per future -------------------------- */
static void done_cb(fut_t *f, void *arg) {
  (void)f;
  (void)arg;
  counter++;
}

static uint64_t s3_futures(long n) {
  counter = 0;
  uint64_t t0 = bench_now();
  for (long i = 0; i < n; i++) {
    fut_t *f;
    fut_new(loop, &f);
    fut_add_done_callback(f, done_cb, NULL);
    fut_set_result_i64(f, i);
    fut_unref(f); /* the loop holds it until its callback ran */
  }
  fut_loop_call_soon(loop, stop_cb, NULL, NULL);
  BENCH_CHECK(fut_loop_run_forever(loop) == 0);
  uint64_t t = bench_now() - t0;
  BENCH_CHECK(counter == n);
  return t;
}

struct plain_future {
  int state;
  void (*cb)(struct plain_future *, void *);
  void *cb_arg;
  int64_t result;
  void *loop;
  int refs;
  int pad[2];
};

static void plain_done(struct plain_future *f, void *arg) {
  (void)f;
  (void)arg;
  counter++;
}

static void plain_dispatch(void *p) {
  struct plain_future *f = p;
  f->cb(f, f->cb_arg);
  free(f);
}

static uint64_t base_futures(long n) {
  size_t cap = 1;
  while (cap < (size_t)n)
    cap *= 2;
  ring_init(cap);
  counter = 0;
  uint64_t t0 = bench_now();
  for (long i = 0; i < n; i++) {
    struct plain_future *f = malloc(sizeof *f);
    BENCH_CHECK(f);
    f->state = 0;
    f->refs = 1;
    f->cb = plain_done;
    f->cb_arg = NULL;
    f->result = i;
    f->state = 1;
    ring_push(plain_dispatch, f);
  }
  ring_run();
  uint64_t t = bench_now() - t0;
  BENCH_CHECK(counter == n);
  free(ring);
  return t;
}

/* ---- S4: timers ------------------------------------------------------------ */
static uint64_t rng = 88172645463325252u;
static uint64_t xorshift(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static void timer_cb(void *arg) {
  (void)arg;
  if (++counter == target)
    fut_loop_stop(loop);
}

static uint64_t s4_timers_fire(long n) {
  counter = 0;
  target = n;
  uint64_t t0 = bench_now();
  for (long i = 0; i < n; i++)
    fut_loop_call_later(loop, FUT_MS(1 + xorshift() % 100), timer_cb, NULL,
                        NULL);
  BENCH_CHECK(fut_loop_run_forever(loop) == 0);
  uint64_t t = bench_now() - t0;
  BENCH_CHECK(counter == n);
  return t;
}

static fut_handle_t **handles;

#ifdef FUT_BENCH_HAVE_LIBEV
/* libev's timers, the same scenarios, for a ratio measured in this run.
 * libev is linked into this benchmark only, never into the library. */
#include <ev.h>

static struct ev_loop *evl;
static ev_timer *ev_timers;

static void ev_timer_cb(struct ev_loop *l, ev_timer *w, int revents) {
  (void)w;
  (void)revents;
  if (++counter == target)
    ev_break(l, EVBREAK_ALL);
}

static uint64_t ev_timers_fire(long n) {
  counter = 0;
  target = n;
  uint64_t t0 = bench_now();
  ev_now_update(evl);
  for (long i = 0; i < n; i++) {
    ev_timer_init(&ev_timers[i], ev_timer_cb,
                  (double)(1 + xorshift() % 100) / 1000.0, 0.);
    ev_timer_start(evl, &ev_timers[i]);
  }
  ev_run(evl, 0);
  uint64_t t = bench_now() - t0;
  BENCH_CHECK(counter == n);
  return t;
}

static uint64_t ev_timers_cancel(long n) {
  uint64_t t0 = bench_now();
  ev_now_update(evl);
  for (long i = 0; i < n; i++) {
    ev_timer_init(&ev_timers[i], ev_timer_cb,
                  (double)(1 + xorshift() % 100) / 1000.0, 0.);
    ev_timer_start(evl, &ev_timers[i]);
  }
  for (long i = 0; i < n; i++)
    ev_timer_stop(evl, &ev_timers[i]);
  return bench_now() - t0;
}
#endif

static uint64_t s4_timers_cancel(long n) {
  uint64_t t0 = bench_now();
  for (long i = 0; i < n; i++)
    fut_loop_call_later(loop, FUT_MS(1 + xorshift() % 100), timer_cb, NULL,
                        &handles[i]);
  for (long i = 0; i < n; i++) {
    fut_handle_cancel(handles[i]);
    fut_handle_unref(handles[i]);
  }
  uint64_t t = bench_now() - t0;
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  BENCH_CHECK(st.pending_timers == 0);
  return t;
}

int main(int argc, char **argv) {
  double scale = argc > 1 ? atof(argv[1]) : 1.0;
  long m = (long)(1000000 * scale);
  if (m < 1000)
    m = 1000;
  BENCH_CHECK(fut_loop_new(&loop) == 0);
  handles = malloc(sizeof *handles * (size_t)m);
  BENCH_CHECK(handles);
  printf("libfuture %s, medians of %d runs, n = %ld (chain: %ld)\n",
         fut_version_string(), BENCH_RUNS, m, 10 * m);
  bench_pair("S1 call_soon chain", s1_chain, "ring buffer", base_chain,
             10 * m);
  bench_pair("S2 call_soon burst, then run", s2_burst, "ring buffer",
             base_burst, m);
  bench_pair("S3 future+callback+set_result+run+free", s3_futures,
             "malloc'd struct", base_futures, m);
#ifdef FUT_BENCH_HAVE_LIBEV
  evl = ev_loop_new(EVFLAG_AUTO);
  ev_timers = malloc(sizeof *ev_timers * (size_t)m);
  BENCH_CHECK(evl && ev_timers);
  bench_pair("S4 call_later 1..100 ms, all fire", s4_timers_fire,
             "libev ev_timer", ev_timers_fire, m);
  bench_pair("S4' call_later then cancel", s4_timers_cancel, "libev ev_timer",
             ev_timers_cancel, m);
  free(ev_timers);
  ev_loop_destroy(evl);
#else
  bench_pair("S4 call_later 1..100 ms, all fire", s4_timers_fire, NULL, NULL,
             m);
  bench_pair("S4' call_later then cancel", s4_timers_cancel, NULL, NULL, m);
#endif
  free(handles);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  BENCH_CHECK(st.live_futures == 0 && st.live_handles == 0);
  fut_loop_free(loop);
  return 0;
}
