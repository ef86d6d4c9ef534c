/* Shared helpers for the cmocka tests: a loop fixture whose teardown proves
 * the loop is clean, running a loop until a condition holds, capturing
 * what reaches the exception handler, and a few counting callbacks.
 *
 * Everything here is static inline so that a test file using only part of
 * it builds warning-free. */
#ifndef FUT_TESTS_FIXTURE_H
#define FUT_TESTS_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <future.h>

/* ---- the loop fixture ---------------------------------------------------- */

/* Asserts that nothing of loop is alive (the caller dropped every reference
 * it held), then frees it. */
static inline void fx_loop_free_clean(fut_loop_t *loop) {
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.live_futures, 0);
  assert_int_equal(st.live_handles, 0);
  assert_int_equal(fut_loop_free(loop), 0);
}

/* ---- accounting: what a test leaves behind ---------------------------------
 * The loop fixture records the process's open fds, threads and children
 * before each test and fails the test if they are not back to that after
 * it (a thread still exiting gets a bounded grace period). */
#include <dirent.h>
#include <time.h>

static inline int fx_count_dir(const char *path) {
  DIR *d = opendir(path);
  if (!d)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

/* The process's open file descriptors. */
static inline int fx_open_fds(void) {
  return fx_count_dir("/proc/self/fd");
}

/* Children of every thread of this process (zombies included). */
static inline int fx_count_children(void) {
  DIR *d = opendir("/proc/self/task");
  if (!d)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    char path[300];
    snprintf(path, sizeof path, "/proc/self/task/%s/children", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f)
      continue;
    int c;
    bool in_pid = false;
    while ((c = fgetc(f)) != EOF) {
      bool digit = c >= '0' && c <= '9';
      if (digit && !in_pid)
        n++;
      in_pid = digit;
    }
    fclose(f);
  }
  closedir(d);
  return n;
}

struct fx_accounts {
  int fds, threads, children;
  bool taken; /* recorded by fx_loop_setup or fx_accounts_setup */
};
static struct fx_accounts fx_baseline;

static inline struct fx_accounts fx_accounts_now(void) {
  struct fx_accounts a = {fx_open_fds(),
                          fx_count_dir("/proc/self/task"),
                          fx_count_children(), true};
  return a;
}

/* Asserts the process is back to fx_baseline.  The one allowance is a
 * settle wait of at most 2 s while threads or children are above it: a
 * joined thread leaves /proc/self/task a moment after pthread_join
 * returns, and a pool's fork server or worker that was told to go is
 * reaped a moment after the pool's destroy returns.  Open fds get no
 * allowance. */
static inline void fx_assert_accounts_back(void) {
  if (!fx_baseline.taken)
    return; /* a test without either setup */
  fx_baseline.taken = false;
  struct fx_accounts now = fx_accounts_now();
#if defined(__SANITIZE_THREAD__)
#define FX_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FX_TSAN 1
#endif
#endif
#ifdef FX_TSAN
  /* TSan starts a background thread of its own with the first
   * pthread_create, and it stays: threads are not counted there. */
  now.threads = fx_baseline.threads;
#endif
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (now.threads > fx_baseline.threads ||
         now.children > fx_baseline.children) {
    clock_gettime(CLOCK_MONOTONIC, &t);
    if (t.tv_sec - t0.tv_sec >= 2)
      break;
    struct timespec nap = {0, 1000000};
    nanosleep(&nap, NULL);
    now = fx_accounts_now();
  }
  if (now.fds != fx_baseline.fds || now.threads != fx_baseline.threads ||
      now.children != fx_baseline.children)
    fail_msg("the test left the process changed: fds %d -> %d, threads "
             "%d -> %d, children %d -> %d",
             fx_baseline.fds, now.fds, fx_baseline.threads, now.threads,
             fx_baseline.children, now.children);
}

/* cmocka setup: *state becomes a fresh loop. */
static inline int fx_loop_setup(void **state) {
  fx_baseline = fx_accounts_now();
  fut_loop_t *loop = NULL;
  int err = fut_loop_new(&loop);
  if (err) {
    fprintf(stderr, "fut_loop_new: %s\n", fut_strerror(err));
    return -1;
  }
  *state = loop;
  return 0;
}

/* cmocka teardown: the loop must be clean, then it is freed. */
static inline int fx_loop_teardown(void **state) {
  fut_loop_t *loop = *state;
  if (loop)
    fx_loop_free_clean(loop);
  *state = NULL;
  fx_assert_accounts_back();
  return 0;
}

#define FX_LOOP_TEST(fn) cmocka_unit_test_setup_teardown(fn, fx_loop_setup, \
                                                         fx_loop_teardown)

/* The same accounting for tests without a loop (the thread and process
 * pool tests): fds, threads and children must be back to what they were
 * before the test, after the settle wait of fx_assert_accounts_back. */
static inline int fx_accounts_setup(void **state) {
  (void)state;
  fx_baseline = fx_accounts_now();
  return 0;
}

static inline int fx_accounts_teardown(void **state) {
  (void)state;
  fx_assert_accounts_back();
  return 0;
}

#define FX_ACCOUNTED_TEST(fn)                                                  \
  cmocka_unit_test_setup_teardown(fn, fx_accounts_setup, fx_accounts_teardown)

/* ---- running until a condition ------------------------------------------- */

typedef bool (*fx_cond_fn)(void *arg);

/* Runs loop one iteration at a time (each waiting at most 10 ms) until
 * cond(arg) holds or timeout_ns of loop time passed.  Returns whether cond
 * held.  Every run_once must succeed. */
static inline bool fx_run_until(fut_loop_t *loop, fx_cond_fn cond, void *arg,
                                uint64_t timeout_ns) {
  uint64_t deadline = fut_loop_time(loop) + timeout_ns;
  while (!cond(arg)) {
    if (fut_loop_time(loop) >= deadline)
      return false;
    assert_int_equal(fut_loop_run_once(loop, FUT_MS(10)), 0);
  }
  return true;
}

static inline bool fx_int_nonzero(void *arg) { return *(int *)arg != 0; }
static inline bool fx_fut_done(void *arg) { return fut_done(arg); }

/* Runs until *flag != 0 (at most 5 s). */
static inline bool fx_run_until_flag(fut_loop_t *loop, int *flag) {
  return fx_run_until(loop, fx_int_nonzero, flag, FUT_SEC(5));
}

/* ---- exception handler capture ------------------------------------------- */

typedef struct fx_exc {
  int count;               /* reports received */
  int err;                 /* of the last report */
  char message[256];       /* of the last report */
  char detail[256];        /* of the last report, "" when NULL */
  bool had_future;         /* the last report carried a future */
  bool had_handle;         /* the last report carried a handle */
  fut_state_t fut_state;   /* state of that future at report time */
  size_t live_handles;     /* loop's live handles at report time */
  size_t live_futures;     /* loop's live futures at report time */
} fx_exc_t;

static inline void fx_exc_handler(fut_loop_t *loop,
                                  const fut_exception_ctx_t *ctx, void *arg) {
  fx_exc_t *c = arg;
  fut_loop_stats_t st;
  c->count++;
  c->err = ctx->err;
  snprintf(c->message, sizeof c->message, "%s",
           ctx->message ? ctx->message : "");
  snprintf(c->detail, sizeof c->detail, "%s", ctx->detail ? ctx->detail : "");
  c->had_future = ctx->future != NULL;
  c->had_handle = ctx->handle != NULL;
  if (ctx->future)
    c->fut_state = fut_state(ctx->future);
  fut_loop_stats(loop, &st);
  c->live_handles = st.live_handles;
  c->live_futures = st.live_futures;
}

/* Routes loop's exception handler into *cap (zeroed first). */
static inline void fx_exc_capture(fut_loop_t *loop, fx_exc_t *cap) {
  memset(cap, 0, sizeof *cap);
  fut_loop_set_exception_handler(loop, fx_exc_handler, cap);
  /* Only the reports a test provokes count: under sanitizers with
   * FUT_DEBUG=1 (CI's TSan debug run) an ordinary step can pass the 100 ms
   * slow-callback threshold.  A test about slow callbacks sets its own. */
  fut_loop_set_slow_callback_duration(loop, UINT64_MAX);
}

/* ---- small callbacks ----------------------------------------------------- */

static inline void fx_count_cb(void *arg) { (*(int *)arg)++; }
static inline void fx_stop_cb(void *loop) { fut_loop_stop(loop); }
static inline void fx_fail_cb(void *arg) {
  (void)arg;
  fail_msg("this callback must not run");
}
static inline void fx_done_count_cb(fut_t *f, void *arg) {
  (void)f;
  (*(int *)arg)++;
}

/* An append-only log of small integers, to check orders. */
typedef struct fx_log {
  int n;
  int v[4096];
} fx_log_t;

static inline void fx_log_add(fx_log_t *log, int v) {
  assert_true(log->n < (int)(sizeof log->v / sizeof log->v[0]));
  log->v[log->n++] = v;
}

/* A (log, value) pair for callbacks that append value to log. */
typedef struct fx_logent {
  fx_log_t *log;
  int value;
} fx_logent_t;

static inline void fx_log_cb(void *arg) {
  fx_logent_t *e = arg;
  fx_log_add(e->log, e->value);
}

/* ---- time ---------------------------------------------------------------- */

static inline uint64_t fx_ms(uint64_t ns) { return ns / 1000000u; }

/* ---- the thread-safe door from another thread ---------------------------
 * call_soon_threadsafe from the loop's own thread joins the ready queue
 * directly (asyncio's one queue); tests of the door itself call from
 * another thread, through this. */
struct fx_ts_call {
  fut_loop_t *loop;
  fut_cb cb;
  void *arg;
  int res;
};

static inline void *fx_ts_call_thread(void *p) {
  struct fx_ts_call *c = p;
  c->res = fut_loop_call_soon_threadsafe(c->loop, c->cb, c->arg);
  return NULL;
}

/* fut_loop_call_soon_threadsafe(loop, cb, arg) made from a new thread;
 * returns its result. */
static inline int fx_call_soon_threadsafe_from_thread(fut_loop_t *loop,
                                                      fut_cb cb, void *arg) {
  struct fx_ts_call c = {loop, cb, arg, 0};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, fx_ts_call_thread, &c), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
  return c.res;
}

#endif
