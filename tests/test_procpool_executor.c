/* Process pool as an executor: cfutures, map, cancellation, shutdown, and
 * run_in_executor on a loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
/* cmocka needs the three above first. */
#include <cmocka.h>

#include <stdatomic.h>
#include <sys/wait.h>

#include "fixture.h" /* FX_ACCOUNTED_TEST */
#include "procpool_jobs.h"

/* The demo's exact sum needs 128 bits (__extension__: -Wpedantic). */
__extension__ typedef unsigned __int128 u128;

/* ---- bytes jobs (fut_bytes_fn) ----------------------------------------- */

static int bytes_square(const void *data, size_t len, void **out,
                        size_t *out_len) {
  int64_t n;
  if (len != sizeof n)
    return -EINVAL;
  memcpy(&n, data, sizeof n);
  n *= n;
  int64_t *r = malloc(sizeof *r);
  if (!r)
    return -ENOMEM;
  *r = n;
  *out = r;
  *out_len = sizeof *r;
  return 0;
}

static int bytes_fail(const void *data, size_t len, void **out,
                      size_t *out_len) {
  (void)data;
  (void)len;
  (void)out;
  (void)out_len;
  return -EDOM;
}

/* The seed's cpu_bound: sum(i * i for i in range(n)), exact, as 16 bytes. */
static int bytes_sum_squares(const void *data, size_t len, void **out,
                             size_t *out_len) {
  uint64_t n;
  if (len != sizeof n)
    return -EINVAL;
  memcpy(&n, data, sizeof n);
  u128 s = 0;
  for (uint64_t i = 0; i < n; i++)
    s += (u128)i * i;
  void *r = malloc(sizeof s);
  if (!r)
    return -ENOMEM;
  memcpy(r, &s, sizeof s);
  *out = r;
  *out_len = sizeof s;
  return 0;
}

/* Burns about arg * 100k iterations, then returns arg: later-submitted
 * jobs of a map finish first. */
static int bytes_spin(const void *data, size_t len, void **out,
                      size_t *out_len) {
  int64_t n;
  if (len != sizeof n)
    return -EINVAL;
  memcpy(&n, data, sizeof n);
  volatile uint64_t x = 0;
  for (int64_t i = 0; i < n * 100000; i++)
    x += (uint64_t)i;
  (void)x;
  int64_t *r = malloc(sizeof *r);
  if (!r)
    return -ENOMEM;
  *r = n;
  *out = r;
  *out_len = sizeof *r;
  return 0;
}

/* Every byte xor 0x5a. */
static int bytes_xor(const void *data, size_t len, void **out,
                     size_t *out_len) {
  unsigned char *o = malloc(len ? len : 1);
  if (!o)
    return -ENOMEM;
  const unsigned char *a = data;
  for (size_t i = 0; i < len; i++)
    o[i] = a[i] ^ 0x5a;
  *out = o;
  *out_len = len;
  return 0;
}

/* The gate job of procpool_jobs.h, as a bytes job. */
static int bytes_gate(const void *data, size_t len, void **out,
                      size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  return gate_body(data, len) < 0 ? -EIO : 0;
}

static int bytes_suicide(const void *data, size_t len, void **out,
                         size_t *out_len) {
  (void)data;
  (void)len;
  (void)out;
  (void)out_len;
  raise(SIGKILL);
  return 0;
}

static int call_job(void *arg, fut_cfuture_t *cf) {
  (void)arg;
  (void)cf;
  return 0;
}

/* ---- helpers ------------------------------------------------------------- */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static fut_executor_t *new_ex(size_t workers) {
  fut_executor_t *ex = NULL;
  assert_int_equal(fut_process_pool_new(workers, &ex), 0);
  assert_non_null(ex);
  return ex;
}

static fut_cfuture_t *submit_bytes(fut_executor_t *ex, fut_bytes_fn fn,
                                   const void *data, size_t len) {
  fut_job_t job = fut_job_bytes(fn, data, len);
  fut_cfuture_t *cf = NULL;
  assert_int_equal(fut_executor_submit_job(ex, &job, &cf), 0);
  assert_non_null(cf);
  return cf;
}

static int64_t cf_i64_bytes(fut_cfuture_t *cf) {
  const void *d;
  size_t n;
  assert_int_equal(fut_cfuture_result_bytes(cf, FUT_FOREVER, &d, &n), 0);
  assert_int_equal(n, 8);
  int64_t v;
  memcpy(&v, d, sizeof v);
  return v;
}

static void loop_free_clean(fut_loop_t *loop) {
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.live_futures, 0);
  assert_int_equal(st.live_handles, 0);
  assert_int_equal(fut_loop_free(loop), 0);
}

/* ---- tests --------------------------------------------------------------- */

static void test_procpool_executor_result(void **state) {
  (void)state;
  fut_executor_t *ex = new_ex(2);
  for (int64_t i = 0; i < 10; i++) {
    fut_cfuture_t *cf = submit_bytes(ex, bytes_square, &i, sizeof i);
    assert_int_equal(cf_i64_bytes(cf), i * i);
    fut_cfuture_unref(cf);
  }
  fut_executor_free(ex);
}

static void test_procpool_executor_error(void **state) {
  (void)state;
  fut_executor_t *ex = new_ex(1);
  fut_cfuture_t *cf = submit_bytes(ex, bytes_fail, "x", 1);
  const char *msg = NULL;
  assert_int_equal(fut_cfuture_exception(cf, FUT_FOREVER, &msg), -EDOM);
  assert_non_null(msg);
  assert_non_null(strstr(msg, "EDOM"));
  fut_cfuture_unref(cf);
  /* A call job carries a pointer: it cannot go to another process. */
  assert_int_equal(fut_executor_submit(ex, call_job, NULL, &cf),
                   FUT_E_NOT_SENDABLE);
  /* Nor can code outside every module. */
  void *heap = malloc(16);
  fut_job_t job = fut_job_bytes((fut_bytes_fn)(uintptr_t)heap, NULL, 0);
  assert_int_equal(fut_executor_submit_job(ex, &job, &cf), FUT_E_NOT_SENDABLE);
  free(heap);
  fut_executor_free(ex);
}

static void test_procpool_executor_cancel_before_start(void **state) {
  (void)state;
  fut_executor_t *ex = new_ex(1);
  struct gate g;
  gate_init(&g);
  fut_cfuture_t *a = submit_bytes(ex, bytes_gate, g.dir, strlen(g.dir));
  gate_wait_started(&g);
  /* With one worker busy, b may be pipelined behind a (then it counts as
   * started, like Python's call queue); c and d wait in the queue. */
  int64_t v = 3;
  fut_cfuture_t *b = submit_bytes(ex, bytes_square, &v, sizeof v);
  fut_cfuture_t *c = submit_bytes(ex, bytes_square, &v, sizeof v);
  fut_cfuture_t *d = submit_bytes(ex, bytes_square, &v, sizeof v);
  assert_true(fut_cfuture_running(a));
  assert_true(fut_cfuture_cancel(c));
  assert_true(fut_cfuture_cancelled(c));
  assert_false(fut_cfuture_cancel(a)); /* running: cannot */
  gate_open(&g);
  assert_int_equal(fut_cfuture_result(a, FUT_FOREVER, NULL), 0);
  assert_int_equal(cf_i64_bytes(b), 9);
  assert_int_equal(cf_i64_bytes(d), 9);
  assert_int_equal(fut_cfuture_result(c, 0, NULL), -ECANCELED);
  fut_cfuture_unref(a);
  fut_cfuture_unref(b);
  fut_cfuture_unref(c);
  fut_cfuture_unref(d);
  gate_destroy(&g);
  fut_executor_free(ex);
}

static void test_procpool_executor_map_order(void **state) {
  (void)state;
  fut_executor_t *ex = new_ex(2);
  enum { N = 16 };
  int64_t args[N];
  fut_job_t jobs[N];
  for (int i = 0; i < N; i++) {
    args[i] = N - i; /* the first jobs are the slowest */
    jobs[i] = fut_job_bytes(bytes_spin, &args[i], sizeof args[i]);
  }
  fut_cfuture_t *cfs[N];
  assert_int_equal(fut_executor_map_jobs(ex, jobs, N, cfs), 0);
  for (int i = 0; i < N; i++) {
    assert_int_equal(cf_i64_bytes(cfs[i]), N - i);
    fut_cfuture_unref(cfs[i]);
  }
  fut_executor_free(ex);
}

static void test_procpool_executor_wait_as_completed(void **state) {
  (void)state;
  fut_executor_t *ex = new_ex(2);
  enum { N = 8 };
  fut_cfuture_t *cfs[N];
  for (int64_t i = 0; i < N; i++)
    cfs[i] = submit_bytes(ex, bytes_square, &i, sizeof i);
  bool done[N];
  assert_int_equal(fut_cfuture_wait_many(cfs, N, FUT_CFUTURE_ALL_COMPLETED,
                                         FUT_FOREVER, done),
                   N);
  fut_cfuture_as_completed_t *it;
  assert_int_equal(fut_cfuture_as_completed(cfs, N, FUT_FOREVER, &it), 0);
  int seen = 0;
  fut_cfuture_t *cf;
  while (fut_cfuture_as_completed_next(it, &cf) == 0)
    seen++;
  assert_int_equal(seen, N);
  fut_cfuture_as_completed_free(it);
  for (int i = 0; i < N; i++)
    fut_cfuture_unref(cfs[i]);
  fut_executor_free(ex);
}

static int data_free_calls;
static void count_free(void *p) {
  data_free_calls++;
  free(p);
}

static void test_procpool_executor_data_free(void **state) {
  (void)state;
  fut_executor_t *ex = new_ex(1);
  int64_t *v = malloc(sizeof *v);
  *v = 11;
  fut_job_t job = fut_job_bytes(bytes_square, v, sizeof *v);
  job.data_free = count_free;
  data_free_calls = 0;
  fut_cfuture_t *cf = NULL;
  assert_int_equal(fut_executor_submit_job(ex, &job, &cf), 0);
  assert_int_equal(cf_i64_bytes(cf), 121);
  assert_int_equal(data_free_calls, 1);
  fut_cfuture_unref(cf);
  fut_executor_free(ex);
}

static void test_procpool_executor_worker_killed(void **state) {
  (void)state;
  fut_executor_t *ex = new_ex(1);
  fut_cfuture_t *cf = submit_bytes(ex, bytes_suicide, NULL, 0);
  const char *msg = NULL;
  assert_int_equal(fut_cfuture_exception(cf, FUT_FOREVER, &msg),
                   FUT_E_WORKER_DIED);
  assert_non_null(strstr(msg, "SIGKILL"));
  fut_cfuture_unref(cf);
  int64_t v = 5;
  cf = submit_bytes(ex, bytes_square, &v, sizeof v);
  assert_int_equal(cf_i64_bytes(cf), 25);
  fut_cfuture_unref(cf);
  fut_process_pool_t *p = fut_executor_self(ex);
  assert_int_equal(zombies_of(fut_process_pool_server_pid(p)), 0);
  fut_executor_free(ex);
}

static void test_procpool_executor_shutdown_timeout(void **state) {
  (void)state;
  fut_executor_t *ex = new_ex(1);
  struct gate g;
  gate_init(&g);
  fut_cfuture_t *a = submit_bytes(ex, bytes_gate, g.dir, strlen(g.dir));
  gate_wait_started(&g);
  int64_t v = 2;
  fut_cfuture_t *b = submit_bytes(ex, bytes_square, &v, sizeof v);
  fut_cfuture_t *c = submit_bytes(ex, bytes_square, &v, sizeof v);
  uint64_t t0 = now_ns();
  assert_int_equal(fut_executor_shutdown(ex, true, true, FUT_MS(100)),
                   -ETIMEDOUT);
  assert_true(now_ns() - t0 >= FUT_MS(90));
  const char *msg;
  assert_int_equal(fut_cfuture_exception(a, 0, &msg), FUT_E_SHUTDOWN);
  /* b was pipelined (then abandoned) or cancelled; c was cancelled. */
  int eb = fut_cfuture_exception(b, 0, NULL);
  assert_true(eb == FUT_E_SHUTDOWN || eb == -ECANCELED);
  assert_true(fut_cfuture_cancelled(c));
  fut_cfuture_t *d;
  fut_job_t job = fut_job_bytes(bytes_square, &v, sizeof v);
  assert_int_equal(fut_executor_submit_job(ex, &job, &d), FUT_E_SHUTDOWN);
  fut_cfuture_unref(a);
  fut_cfuture_unref(b);
  fut_cfuture_unref(c);
  gate_destroy(&g);
  fut_executor_free(ex);
}

/* Freed while a job still runs after shutdown(wait=false): the pool lives
 * on by itself, completes the job, then tears down. */
static void test_procpool_executor_free_while_running(void **state) {
  (void)state;
  int fds0 = count_dir("/proc/self/fd");
  int thr0 = count_dir("/proc/self/task");
  fut_executor_t *ex = new_ex(1);
  struct gate g;
  gate_init(&g);
  fut_cfuture_t *a = submit_bytes(ex, bytes_gate, g.dir, strlen(g.dir));
  gate_wait_started(&g);
  assert_int_equal(fut_executor_shutdown(ex, false, false, 0), 0);
  fut_executor_free(ex);
  assert_false(fut_cfuture_done(a));
  gate_open(&g);
  assert_int_equal(fut_cfuture_result(a, FUT_FOREVER, NULL), 0);
  fut_cfuture_unref(a);
  gate_destroy(&g);
  /* The orphaned manager exits on its own: poll, bounded. */
  assert_int_equal(threads_settle(thr0), thr0);
  assert_int_equal(count_dir("/proc/self/fd"), fds0);
}

static fut_t *run_job(fut_loop_t *loop, fut_executor_t *ex, fut_bytes_fn fn,
                      const void *data, size_t len) {
  fut_job_t job = fut_job_bytes(fn, data, len);
  fut_t *f = NULL;
  assert_int_equal(fut_run_in_executor_job(loop, ex, &job, &f), 0);
  return f;
}

static void test_procpool_executor_run_in_executor(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  fut_executor_t *ex = new_ex(2);
  uint64_t n = 10000000;
  fut_t *f = run_job(loop, ex, bytes_sum_squares, &n, sizeof n);
  int64_t v = 12;
  fut_t *g = run_job(loop, ex, bytes_square, &v, sizeof v);
  assert_int_equal(fut_loop_run_until_complete(loop, f), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, g), 0);
  const void *d;
  size_t len;
  assert_int_equal(fut_result_bytes(f, &d, &len), 0);
  assert_int_equal(len, 16);
  u128 s;
  memcpy(&s, d, sizeof s);
  /* Python: sum(i*i for i in range(10**7)) == 333333283333335000000 */
  u128 want = (u128)333333283333ull * 1000000000ull + 335000000ull;
  assert_true(s == want);
  assert_int_equal(fut_result_bytes(g, &d, &len), 0);
  int64_t r;
  memcpy(&r, d, sizeof r);
  assert_int_equal(r, 144);
  fut_unref(f);
  fut_unref(g);
  /* A failure reaches the loop future as its exception. */
  f = run_job(loop, ex, bytes_fail, NULL, 0);
  int rc = fut_loop_run_until_complete(loop, f);
  assert_true(rc == 0 || rc == -EDOM);
  assert_int_equal(fut_exception(f, NULL), -EDOM);
  fut_unref(f);
  fut_executor_free(ex);
  assert_int_equal(fut_loop_close(loop), 0);
  loop_free_clean(loop);
}

static void test_procpool_executor_loop_cancel(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  fut_executor_t *ex = new_ex(1);
  struct gate g;
  gate_init(&g);
  fut_t *a = run_job(loop, ex, bytes_gate, g.dir, strlen(g.dir));
  gate_wait_started(&g);
  int64_t v = 4;
  fut_t *b = run_job(loop, ex, bytes_square, &v, sizeof v);
  fut_t *c = run_job(loop, ex, bytes_square, &v, sizeof v);
  assert_true(fut_cancel(c, "not needed"));
  gate_open(&g);
  assert_int_equal(fut_loop_run_until_complete(loop, a), 0);
  assert_int_equal(fut_loop_run_until_complete(loop, b), 0);
  assert_int_equal(fut_result(c, NULL), -ECANCELED);
  fut_unref(a);
  fut_unref(b);
  fut_unref(c);
  gate_destroy(&g);
  fut_executor_free(ex);
  assert_int_equal(fut_loop_close(loop), 0);
  loop_free_clean(loop);
}

struct ticker {
  fut_loop_t *loop;
  int ticks;    /* timer firings while the big job ran */
  fut_t *until; /* stop re-arming once this is done */
};

static void tick(void *arg) {
  struct ticker *t = arg;
  t->ticks++;
  if (!fut_done(t->until)) {
    fut_handle_t *h;
    assert_int_equal(fut_loop_call_later(t->loop, FUT_MS(1), tick, t, &h), 0);
    fut_handle_unref(h);
  }
}

static void test_procpool_executor_big_frames(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  fut_executor_t *ex = new_ex(1);
  size_t n = (size_t)64 << 20;
  unsigned char *arg = malloc(n);
  assert_non_null(arg);
  for (size_t i = 0; i < n; i++)
    arg[i] = (unsigned char)((i * 2654435761u) >> 13);
  fut_t *f = run_job(loop, ex, bytes_xor, arg, n);
  /* While 64 MiB go each way, the loop keeps running its timers: the
   * manager thread moves the bytes, not the loop. */
  struct ticker t = {loop, 0, f};
  fut_handle_t *h;
  assert_int_equal(fut_loop_call_later(loop, FUT_MS(1), tick, &t, &h), 0);
  fut_handle_unref(h);
  assert_int_equal(fut_loop_run_until_complete(loop, f), 0);
  const void *d;
  size_t len;
  assert_int_equal(fut_result_bytes(f, &d, &len), 0);
  assert_int_equal(len, n);
  const unsigned char *r = d;
  size_t bad = 0;
  for (size_t i = 0; i < n; i++)
    bad += r[i] != (arg[i] ^ 0x5a);
  assert_int_equal(bad, 0);
  assert_true(t.ticks > 0);
  fut_unref(f);
  /* Let the last timer run out. */
  while (t.ticks >= 0) {
    fut_loop_stats_t st;
    fut_loop_stats(loop, &st);
    if (st.live_handles == 0)
      break;
    assert_int_equal(fut_loop_run_once(loop, FUT_MS(5)), 0);
  }
  free(arg);
  fut_executor_free(ex);
  assert_int_equal(fut_loop_close(loop), 0);
  loop_free_clean(loop);
}

/* Bug (issue 9, defect 1): a child made with a plain fork() that lives on
 * kept the pool's sockets, so the parent's fut_executor_shutdown(wait)
 * hung until that child exited.  Now the child's copies are closed at the
 * fork and the shutdown ends in time. */
struct shutdown_arg {
  fut_executor_t *ex;
  atomic_bool done;
  int rc;
};
static void *shutdown_thread(void *arg) {
  struct shutdown_arg *a = arg;
  a->rc = fut_executor_shutdown(a->ex, true, false, FUT_FOREVER);
  atomic_store(&a->done, true);
  return NULL;
}
static void test_procpool_executor_fork_child_does_not_hold_pool(void **state) {
  (void)state;
  fut_executor_t *ex = new_ex(2);
  int64_t v = 4;
  fut_cfuture_t *cf = submit_bytes(ex, bytes_square, &v, sizeof v);
  assert_int_equal(cf_i64_bytes(cf), 16);
  fut_cfuture_unref(cf);
  int hold[2];
  assert_int_equal(pipe2(hold, O_CLOEXEC), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) { /* lives on until the parent lets it go */
    close(hold[1]);
    alarm(60);
    char c;
    ssize_t r = read(hold[0], &c, 1);
    (void)r;
    _exit(0);
  }
  close(hold[0]);
  struct shutdown_arg a = {.ex = ex, .rc = -1};
  atomic_init(&a.done, false);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, shutdown_thread, &a), 0);
  uint64_t t0 = now_ns();
  while (!atomic_load(&a.done) && now_ns() - t0 < FUT_SEC(5)) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL); /* polling a flag with a deadline */
  }
  bool in_time = atomic_load(&a.done);
  close(hold[1]); /* lets the child go: a hung shutdown ends now */
  pthread_join(t, NULL);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  fut_executor_free(ex);
  assert_true(in_time);
  assert_int_equal(a.rc, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FX_ACCOUNTED_TEST(test_procpool_executor_result),
      FX_ACCOUNTED_TEST(test_procpool_executor_error),
      FX_ACCOUNTED_TEST(test_procpool_executor_cancel_before_start),
      FX_ACCOUNTED_TEST(test_procpool_executor_map_order),
      FX_ACCOUNTED_TEST(test_procpool_executor_wait_as_completed),
      FX_ACCOUNTED_TEST(test_procpool_executor_data_free),
      FX_ACCOUNTED_TEST(test_procpool_executor_worker_killed),
      FX_ACCOUNTED_TEST(test_procpool_executor_shutdown_timeout),
      FX_ACCOUNTED_TEST(test_procpool_executor_free_while_running),
      FX_ACCOUNTED_TEST(test_procpool_executor_run_in_executor),
      FX_ACCOUNTED_TEST(test_procpool_executor_loop_cancel),
      FX_ACCOUNTED_TEST(test_procpool_executor_big_frames),
      FX_ACCOUNTED_TEST(test_procpool_executor_fork_child_does_not_hold_pool),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
