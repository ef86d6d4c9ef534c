/* Loop hot paths against plain-C limits measured in the same program:
 *   S1  a chain of call_soon callbacks, each scheduling the next
 *   S2  call_soon scheduled all at once, then run
 *   S3  futures: create, add_done_callback, set_result, run, free, each
 *       future in turn (stays in cache)
 *   S3' the same in phases over all N: create all, then add a done
 *       callback to each, then set_result on each, then run the loop once,
 *       then unref all (a server's shape: many futures pending at once)
 *   S4  call_later timers over 1..100 ms, all fire; S4' started, then
 *       cancelled
 * Peers in the same run when found at configure time: libev (S1
 * ev_feed_event, S2, S4, S4') and libuv (S1 0-ms timers, S4, S4').
 * Usage: bench_loop [scale]   (scale 1 = the figures of BENCHMARKS.md;
 * BENCH_QUICK=1 divides it by 10) */
#include <future.h>

#include "bench_common.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

static fut_loop_t *loop;
static long counter, target;

/* ---- plain-C baseline: a ring buffer of function pointers ---------------- */
typedef void (*ring_fn)(void *);
static struct ring_ent {
  ring_fn fn;
  void *arg;
} * ring;
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

/* ---- S1 / S2 ---------------------------------------------------------------
 */
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

/* ---- S3: futures vs a malloc'd struct per future --------------------------
 */
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

/* ---- S3': the same phases over all N futures at once ----------------------
 * Each phase is timed; the set_result phase also comes as a row of its own
 * (the "set_result phase"). */
static fut_t **futs;
static struct plain_future **plains;
static uint64_t phase_ns;

static uint64_t s3p_futures(long n) {
  counter = 0;
  uint64_t t0 = bench_now();
  for (long i = 0; i < n; i++)
    BENCH_CHECK(fut_new(loop, &futs[i]) == 0);
  for (long i = 0; i < n; i++)
    fut_add_done_callback(futs[i], done_cb, NULL);
  uint64_t p0 = bench_now();
  for (long i = 0; i < n; i++)
    fut_set_result_i64(futs[i], i);
  phase_ns = bench_now() - p0;
  BENCH_CHECK(fut_loop_run_once(loop, 0) == 0);
  for (long i = 0; i < n; i++)
    fut_unref(futs[i]);
  uint64_t t = bench_now() - t0;
  BENCH_CHECK(counter == n);
  return t;
}

static void plain_dispatch_keep(void *p) {
  struct plain_future *f = p;
  f->cb(f, f->cb_arg);
  f->refs--;
}

static uint64_t base_futures_phases(long n) {
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
    f->cb = NULL;
    plains[i] = f;
  }
  for (long i = 0; i < n; i++) {
    plains[i]->cb = plain_done;
    plains[i]->cb_arg = NULL;
  }
  uint64_t p0 = bench_now();
  for (long i = 0; i < n; i++) {
    struct plain_future *f = plains[i];
    f->result = i;
    f->state = 1;
    f->refs++;
    ring_push(plain_dispatch_keep, f);
  }
  phase_ns = bench_now() - p0;
  ring_run();
  for (long i = 0; i < n; i++)
    free(plains[i]);
  uint64_t t = bench_now() - t0;
  BENCH_CHECK(counter == n);
  free(ring);
  return t;
}

static void s3_phases(long n) {
  const char *name =
      "S3' futures in phases (create all, callbacks, set_result, run, unref)";
  const char *pname = "S3' set_result phase";
  double v[BENCH_RUNS], b[BENCH_RUNS], pv[BENCH_RUNS], pb[BENCH_RUNS];
  int runs = bench_runs();
  if (runs == 1) { /* one timed run: warm the slab and the ring first */
    s3p_futures(n);
    base_futures_phases(n);
  }
  for (int i = 0; i < runs; i++) {
    v[i] = (double)s3p_futures(n) / (double)n;
    pv[i] = (double)phase_ns / (double)n;
    b[i] = (double)base_futures_phases(n) / (double)n;
    pb[i] = (double)phase_ns / (double)n;
  }
  double mv = bench_median(v, runs), mb = bench_median(b, runs);
  double mpv = bench_median(pv, runs), mpb = bench_median(pb, runs);
  bench_report("S3' futures in phases, all N at once", mv, "malloc'd struct",
               mb);
  bench_report("S3' (of which the set_result phase)", mpv, "malloc'd struct",
               mpb);
  bench_emit(name, NULL, n, mv);
  bench_emit(name, "malloc'd struct", n, mb);
  bench_emit(pname, NULL, n, mpv);
  bench_emit(pname, "malloc'd struct", n, mpb);
}

/* ---- S4: timers ------------------------------------------------------------
 */
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
#include <ev.h>
/* S1 / S2 through libev's pending queue: ev_feed_event, then one
 * ev_invoke_pending runs everything fed meanwhile (no poll), the fastest
 * way libev runs queued work. */
static struct ev_loop *evl;
static ev_idle ev_chain_w, *ev_burst_w;

static void ev_chain_cb(struct ev_loop *l, ev_idle *w, int revents) {
  (void)revents;
  if (++counter < target)
    ev_feed_event(l, w, EV_CUSTOM);
}

static uint64_t ev_chain(long n) {
  counter = 0;
  target = n;
  ev_idle_init(&ev_chain_w, ev_chain_cb);
  uint64_t t0 = bench_now();
  ev_feed_event(evl, &ev_chain_w, EV_CUSTOM);
  ev_invoke_pending(evl);
  uint64_t t = bench_now() - t0;
  BENCH_CHECK(counter == n);
  return t;
}

static void ev_count_cb(struct ev_loop *l, ev_idle *w, int revents) {
  (void)l;
  (void)w;
  (void)revents;
  counter++;
}

static uint64_t ev_burst(long n) {
  counter = 0;
  for (long i = 0; i < n; i++)
    ev_idle_init(&ev_burst_w[i], ev_count_cb);
  uint64_t t0 = bench_now();
  for (long i = 0; i < n; i++)
    ev_feed_event(evl, &ev_burst_w[i], EV_CUSTOM);
  ev_invoke_pending(evl);
  uint64_t t = bench_now() - t0;
  BENCH_CHECK(counter == n);
  return t;
}
#endif

#ifdef FUT_BENCH_HAVE_LIBUV
#include <uv.h>
/* libuv: S1 as a chain of 0-ms timers (run in the same timer pass, no
 * poll: libuv's fastest "call soon"), S4 / S4' with uv_timer. */
static uv_loop_t *uvl;
static uv_timer_t uv_chain_t, *uv_timers;

static void uv_chain_cb(uv_timer_t *t) {
  if (++counter < target)
    uv_timer_start(t, uv_chain_cb, 0, 0);
}

static uint64_t uv_chain(long n) {
  counter = 0;
  target = n;
  uint64_t t0 = bench_now();
  uv_timer_start(&uv_chain_t, uv_chain_cb, 0, 0);
  uv_run(uvl, UV_RUN_DEFAULT);
  uint64_t t = bench_now() - t0;
  BENCH_CHECK(counter == n);
  return t;
}

static void uvb_timer_cb(uv_timer_t *t) {
  (void)t;
  counter++;
}

static uint64_t uv_timers_fire(long n) {
  counter = 0;
  uint64_t t0 = bench_now();
  uv_update_time(uvl);
  for (long i = 0; i < n; i++)
    uv_timer_start(&uv_timers[i], uvb_timer_cb, 1 + xorshift() % 100, 0);
  uv_run(uvl, UV_RUN_DEFAULT);
  uint64_t t = bench_now() - t0;
  BENCH_CHECK(counter == n);
  return t;
}

static uint64_t uv_timers_cancel(long n) {
  uint64_t t0 = bench_now();
  uv_update_time(uvl);
  for (long i = 0; i < n; i++)
    uv_timer_start(&uv_timers[i], uvb_timer_cb, 1 + xorshift() % 100, 0);
  for (long i = 0; i < n; i++)
    uv_timer_stop(&uv_timers[i]);
  return bench_now() - t0;
}
#endif

#ifdef FUT_BENCH_HAVE_LIBEV
/* libev's timers, the same scenarios, for a ratio measured in this run.
 * libev is linked into this benchmark only, never into the library. */
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

#define ADD_SYS(nm, fn)                                                        \
  do {                                                                         \
    names[k] = (nm);                                                           \
    fns[k++] = (fn);                                                           \
  } while (0)

int main(int argc, char **argv) {
  double scale = argc > 1 ? atof(argv[1]) : 1.0;
  if (bench_quick())
    scale /= 10;
  long m = (long)(1000000 * scale);
  if (m < 1000)
    m = 1000;
#ifdef __GLIBC__
  /* The plain-C limits malloc and free their rings and structs on every
   * run: keep freed memory in the heap (no mmap per ring, no trim), as the
   * loop keeps its slabs, so neither side pays page faults after the
   * warm-up (they cost microseconds each on a VM). */
  mallopt(M_MMAP_THRESHOLD, 1 << 25); /* glibc's maximum, 32 MiB */
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
  BENCH_CHECK(fut_loop_new(&loop) == 0);
  handles = malloc(sizeof *handles * (size_t)m);
  futs = malloc(sizeof *futs * (size_t)m);
  plains = malloc(sizeof *plains * (size_t)m);
  BENCH_CHECK(handles && futs && plains);
#ifdef FUT_BENCH_HAVE_LIBEV
  evl = ev_loop_new(EVFLAG_AUTO);
  ev_timers = malloc(sizeof *ev_timers * (size_t)m);
  ev_burst_w = malloc(sizeof *ev_burst_w * (size_t)m);
  BENCH_CHECK(evl && ev_timers && ev_burst_w);
#endif
#ifdef FUT_BENCH_HAVE_LIBUV
  uvl = uv_default_loop();
  uv_timers = malloc(sizeof *uv_timers * (size_t)m);
  BENCH_CHECK(uvl && uv_timers);
  uv_timer_init(uvl, &uv_chain_t);
  for (long i = 0; i < m; i++)
    uv_timer_init(uvl, &uv_timers[i]);
#endif
  printf("libfuture %s, medians of %d runs, n = %ld (chain: %ld)\n",
         fut_version_string(), bench_runs(), m, 10 * m);
  const char *names[BENCH_MAX_SYSTEMS];
  uint64_t (*fns[BENCH_MAX_SYSTEMS])(long);
  int k = 0;
  ADD_SYS(NULL, s1_chain);
  ADD_SYS("ring buffer", base_chain);
#ifdef FUT_BENCH_HAVE_LIBEV
  ADD_SYS("libev ev_feed_event", ev_chain);
#endif
#ifdef FUT_BENCH_HAVE_LIBUV
  ADD_SYS("libuv 0-ms uv_timer", uv_chain);
#endif
  bench_multi("S1 call_soon chain", 10 * m, k, names, fns);
  k = 0;
  ADD_SYS(NULL, s2_burst);
  ADD_SYS("ring buffer", base_burst);
#ifdef FUT_BENCH_HAVE_LIBEV
  ADD_SYS("libev ev_feed_event", ev_burst);
#endif
  bench_multi("S2 call_soon burst, then run", m, k, names, fns);
  bench_pair("S3 future+callback+set_result+run+free", s3_futures,
             "malloc'd struct", base_futures, m);
  s3_phases(m);
  k = 0;
  ADD_SYS(NULL, s4_timers_fire);
#ifdef FUT_BENCH_HAVE_LIBEV
  ADD_SYS("libev ev_timer", ev_timers_fire);
#endif
#ifdef FUT_BENCH_HAVE_LIBUV
  ADD_SYS("libuv uv_timer", uv_timers_fire);
#endif
  bench_multi("S4 call_later 1..100 ms, all fire", m, k, names, fns);
  k = 0;
  ADD_SYS(NULL, s4_timers_cancel);
#ifdef FUT_BENCH_HAVE_LIBEV
  ADD_SYS("libev ev_timer", ev_timers_cancel);
#endif
#ifdef FUT_BENCH_HAVE_LIBUV
  ADD_SYS("libuv uv_timer", uv_timers_cancel);
#endif
  bench_multi("S4' call_later then cancel", m, k, names, fns);
#ifdef FUT_BENCH_HAVE_LIBEV
  free(ev_timers);
  free(ev_burst_w);
  ev_loop_destroy(evl);
#endif
#ifdef FUT_BENCH_HAVE_LIBUV
  uv_close((uv_handle_t *)&uv_chain_t, NULL);
  for (long i = 0; i < m; i++)
    uv_close((uv_handle_t *)&uv_timers[i], NULL);
  uv_run(uvl, UV_RUN_DEFAULT);
  uv_loop_close(uvl);
  free(uv_timers);
#endif
  free(handles);
  free(futs);
  free(plains);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  BENCH_CHECK(st.live_futures == 0 && st.live_handles == 0);
  fut_loop_free(loop);
  return 0;
}
