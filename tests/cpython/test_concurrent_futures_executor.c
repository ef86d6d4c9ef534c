/* CPython's Lib/test/test_concurrent_futures/executor.py (the ExecutorTest
 * mixin) as libfuture's behavioural spec: one cmocka test per CPython test
 * method that applies to C, named after it.  CPython runs the mixin once
 * per executor kind (ThreadPoolExecutorTest, ProcessPoolExecutorTest with
 * each start method, InterpreterPoolExecutorTest); the port runs each
 * method as two cmocka tests, <method>_thread on a thread pool (call jobs)
 * and <method>_process on a process pool (bytes jobs, which is what a
 * process pool runs), except test_no_stale_references, thread pool only
 * (see docs/asyncio-to-libfuture.md).  A process pool has 2 workers here
 * (CPython: 5) to keep the machine's load low.
 *
 * Executor.map(fn, it, timeout) is fut_executor_map* followed by reading
 * the cfutures in order, each with the time left until the deadline
 * counted from the map call, which is what Python's map iterator does. */
#include "cf_util.h"

#include <stdlib.h>
#include <time.h>

#include "future/process_pool.h"

enum { THREAD_WORKERS = 5, PROCESS_WORKERS = 2 };

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static fut_executor_t *thread_pool(void) {
  fut_executor_t *ex = NULL;
  assert_int_equal(fut_thread_pool_new(THREAD_WORKERS, &ex), 0);
  return ex;
}

static fut_executor_t *process_pool(void) {
  fut_executor_t *ex = NULL;
  assert_int_equal(fut_process_pool_new(PROCESS_WORKERS, &ex), 0);
  return ex;
}

static void executor_done(fut_executor_t *ex) {
  assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_FOREVER), 0);
  fut_executor_free(ex);
}

/* ---- jobs ---------------------------------------------------------------- */

static int64_t ipow(int64_t b, int64_t e) {
  int64_t r = 1;
  while (e-- > 0)
    r *= b;
  return r;
}

struct pair {
  int64_t x, y;
};

/* pow(x, y), call job */
static int pow_call(void *arg, fut_cfuture_t *cf) {
  struct pair *p = arg;
  return fut_cfuture_set_result_i64(cf, ipow(p->x, p->y));
}

static int out_i64(int64_t v, void **out, size_t *out_len) {
  int64_t *r = malloc(sizeof *r);
  if (!r)
    return -ENOMEM;
  *r = v;
  *out = r;
  *out_len = sizeof *r;
  return 0;
}

/* pow(x, y), bytes job over a struct pair */
static int pow_bytes(const void *data, size_t len, void **out,
                     size_t *out_len) {
  struct pair p;
  if (len != sizeof p)
    return -EINVAL;
  memcpy(&p, data, sizeof p);
  return out_i64(ipow(p.x, p.y), out, out_len);
}

/* divmod(x, y) as x / y * 1000 + x % y; ZeroDivisionError is -EDOM. */
static int divmod_call(void *arg, fut_cfuture_t *cf) {
  struct pair *p = arg;
  if (p->y == 0)
    return -EDOM;
  return fut_cfuture_set_result_i64(cf, p->x / p->y * 1000 + p->x % p->y);
}

static int divmod_bytes(const void *data, size_t len, void **out,
                        size_t *out_len) {
  struct pair p;
  if (len != sizeof p)
    return -EINVAL;
  memcpy(&p, data, sizeof p);
  if (p.y == 0)
    return -EDOM;
  return out_i64(p.x / p.y * 1000 + p.x % p.y, out, out_len);
}

static void sleep_ns(uint64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
  while (nanosleep(&ts, &ts) != 0)
    ;
}

/* time.sleep(arg nanoseconds), call job: result None */
static int sleep_call(void *arg, fut_cfuture_t *cf) {
  (void)cf;
  sleep_ns((uint64_t)(uintptr_t)arg);
  return 0;
}

/* time.sleep(n nanoseconds), bytes job: empty result (None) */
static int sleep_bytes(const void *data, size_t len, void **out,
                       size_t *out_len) {
  uint64_t ns;
  if (len != sizeof ns)
    return -EINVAL;
  memcpy(&ns, data, sizeof ns);
  sleep_ns(ns);
  *out = NULL;
  *out_len = 0;
  return 0;
}

/* str(2): the bytes "2" */
static int str_call(void *arg, fut_cfuture_t *cf) {
  (void)arg;
  return fut_cfuture_set_result_bytes(cf, "2", 1);
}

static int str_bytes(const void *data, size_t len, void **out,
                     size_t *out_len) {
  (void)data;
  (void)len;
  char *s = malloc(1);
  if (!s)
    return -ENOMEM;
  s[0] = '2';
  *out = s;
  *out_len = 1;
  return 0;
}

static int64_t bytes_i64(fut_cfuture_t *cf, uint64_t timeout, int *err) {
  const void *d = NULL;
  size_t n = 0;
  *err = fut_cfuture_result_bytes(cf, timeout, &d, &n);
  if (*err)
    return 0;
  assert_int_equal(n, sizeof(int64_t));
  int64_t v;
  memcpy(&v, d, sizeof v);
  return v;
}

static void unref_all(fut_cfuture_t **fs, size_t n) {
  for (size_t i = 0; i < n; i++)
    fut_cfuture_unref(fs[i]);
}

/* ---- ExecutorTest.test_submit -------------------------------------------- */

/* ExecutorTest.test_submit (thread pool) */
static void test_submit_thread(void **state) {
  (void)state;
  fut_executor_t *ex = thread_pool();
  struct pair p = {2, 8};
  fut_cfuture_t *future;
  assert_int_equal(fut_executor_submit(ex, pow_call, &p, &future), 0);
  int64_t v = 0;
  assert_int_equal(fut_cfuture_result_i64(future, FUT_FOREVER, &v), 0);
  assert_int_equal(v, 256);
  fut_cfuture_unref(future);
  executor_done(ex);
}

/* ExecutorTest.test_submit (process pool) */
static void test_submit_process(void **state) {
  (void)state;
  fut_executor_t *ex = process_pool();
  struct pair p = {2, 8};
  fut_job_t job = fut_job_bytes(pow_bytes, &p, sizeof p);
  fut_cfuture_t *future;
  assert_int_equal(fut_executor_submit_job(ex, &job, &future), 0);
  int err;
  assert_int_equal(bytes_i64(future, FUT_FOREVER, &err), 256);
  assert_int_equal(err, 0);
  fut_cfuture_unref(future);
  executor_done(ex);
}

/* ---- ExecutorTest.test_map ----------------------------------------------- */

/* ExecutorTest.test_map (thread pool): the chunksize half has no C
 * counterpart (fut_executor_map submits one job per argument). */
static void test_map_thread(void **state) {
  (void)state;
  fut_executor_t *ex = thread_pool();
  struct pair ps[10];
  void *args[10];
  for (int i = 0; i < 10; i++) {
    ps[i] = (struct pair){i, i};
    args[i] = &ps[i];
  }
  fut_cfuture_t *fs[10];
  assert_int_equal(fut_executor_map(ex, pow_call, args, 10, fs), 0);
  for (int i = 0; i < 10; i++) {
    int64_t v = -1;
    assert_int_equal(fut_cfuture_result_i64(fs[i], FUT_FOREVER, &v), 0);
    assert_int_equal(v, ipow(i, i));
  }
  unref_all(fs, 10);
  executor_done(ex);
}

/* ExecutorTest.test_map (process pool) */
static void test_map_process(void **state) {
  (void)state;
  fut_executor_t *ex = process_pool();
  struct pair ps[10];
  fut_job_t jobs[10];
  for (int i = 0; i < 10; i++) {
    ps[i] = (struct pair){i, i};
    jobs[i] = fut_job_bytes(pow_bytes, &ps[i], sizeof ps[i]);
  }
  fut_cfuture_t *fs[10];
  assert_int_equal(fut_executor_map_jobs(ex, jobs, 10, fs), 0);
  for (int i = 0; i < 10; i++) {
    int err;
    assert_int_equal(bytes_i64(fs[i], FUT_FOREVER, &err), ipow(i, i));
    assert_int_equal(err, 0);
  }
  unref_all(fs, 10);
  executor_done(ex);
}

/* ---- ExecutorTest.test_map_exception ------------------------------------- */

static const struct pair divmod_args[4] = {{1, 2}, {1, 3}, {1, 0}, {1, 5}};

/* ExecutorTest.test_map_exception (thread pool) */
static void test_map_exception_thread(void **state) {
  (void)state;
  fut_executor_t *ex = thread_pool();
  struct pair ps[4];
  void *args[4];
  for (int i = 0; i < 4; i++) {
    ps[i] = divmod_args[i];
    args[i] = &ps[i];
  }
  fut_cfuture_t *fs[4];
  assert_int_equal(fut_executor_map(ex, divmod_call, args, 4, fs), 0);
  int64_t v = -1;
  assert_int_equal(fut_cfuture_result_i64(fs[0], FUT_FOREVER, &v), 0);
  assert_int_equal(v, 1); /* (0, 1) */
  assert_int_equal(fut_cfuture_result_i64(fs[1], FUT_FOREVER, &v), 0);
  assert_int_equal(v, 1); /* (0, 1) */
  assert_int_equal(fut_cfuture_result_i64(fs[2], FUT_FOREVER, &v), -EDOM);
  unref_all(fs, 4);
  executor_done(ex);
}

/* ExecutorTest.test_map_exception (process pool) */
static void test_map_exception_process(void **state) {
  (void)state;
  fut_executor_t *ex = process_pool();
  fut_job_t jobs[4];
  for (int i = 0; i < 4; i++)
    jobs[i] = fut_job_bytes(divmod_bytes, &divmod_args[i], sizeof(struct pair));
  fut_cfuture_t *fs[4];
  assert_int_equal(fut_executor_map_jobs(ex, jobs, 4, fs), 0);
  int err;
  assert_int_equal(bytes_i64(fs[0], FUT_FOREVER, &err), 1);
  assert_int_equal(err, 0);
  assert_int_equal(bytes_i64(fs[1], FUT_FOREVER, &err), 1);
  assert_int_equal(err, 0);
  bytes_i64(fs[2], FUT_FOREVER, &err);
  assert_int_equal(err, -EDOM);
  unref_all(fs, 4);
  executor_done(ex);
}

/* ---- ExecutorTest.test_map_timeout --------------------------------------- */

/* CPython sleeps [0, 0, 6] s with timeout 5 s; the port sleeps
 * [0, 0, 1.5] s with 0.3 s. */
#define MAP_TIMEOUT FUT_MS(300)
#define MAP_LONG FUT_MS(1500)

/* Reads the three results as the map iterator would: returns how many
 * came before the TimeoutError (-1 if none came). */
static int read_until_timeout(fut_cfuture_t **fs, uint64_t t0) {
  int results = 0;
  for (int i = 0; i < 3; i++) {
    uint64_t now = now_ns(), end = t0 + MAP_TIMEOUT;
    int err = fut_cfuture_result(fs[i], end > now ? end - now : 0, NULL);
    if (err == -ETIMEDOUT)
      return results;
    assert_int_equal(err, 0); /* None */
    results++;
  }
  return -1; /* self.fail('expected TimeoutError') */
}

/* ExecutorTest.test_map_timeout (thread pool) */
static void test_map_timeout_thread(void **state) {
  (void)state;
  fut_executor_t *ex = thread_pool();
  void *args[3] = {(void *)(uintptr_t)0, (void *)(uintptr_t)0,
                   (void *)(uintptr_t)MAP_LONG};
  fut_cfuture_t *fs[3];
  uint64_t t0 = now_ns();
  assert_int_equal(fut_executor_map(ex, sleep_call, args, 3, fs), 0);
  assert_int_equal(read_until_timeout(fs, t0), 2); /* [None, None] */
  unref_all(fs, 3);
  executor_done(ex);
}

/* ExecutorTest.test_map_timeout (process pool) */
static void test_map_timeout_process(void **state) {
  (void)state;
  fut_executor_t *ex = process_pool();
  static const uint64_t ns[3] = {0, 0, MAP_LONG};
  fut_job_t jobs[3];
  for (int i = 0; i < 3; i++)
    jobs[i] = fut_job_bytes(sleep_bytes, &ns[i], sizeof ns[i]);
  fut_cfuture_t *fs[3];
  uint64_t t0 = now_ns();
  assert_int_equal(fut_executor_map_jobs(ex, jobs, 3, fs), 0);
  assert_int_equal(read_until_timeout(fs, t0), 2);
  unref_all(fs, 3);
  executor_done(ex);
}

/* ---- ExecutorTest.test_shutdown_race_issue12456 -------------------------- */

/* ExecutorTest.test_shutdown_race_issue12456 (thread pool): map more jobs
 * than workers, drop the results, shut down. */
static void test_shutdown_race_issue12456_thread(void **state) {
  (void)state;
  fut_executor_t *ex = thread_pool();
  void *args[THREAD_WORKERS + 1] = {0};
  fut_cfuture_t *fs[THREAD_WORKERS + 1];
  assert_int_equal(fut_executor_map(ex, str_call, args, THREAD_WORKERS + 1, fs),
                   0);
  unref_all(fs, THREAD_WORKERS + 1);
  executor_done(ex);
}

/* ExecutorTest.test_shutdown_race_issue12456 (process pool) */
static void test_shutdown_race_issue12456_process(void **state) {
  (void)state;
  fut_executor_t *ex = process_pool();
  fut_job_t jobs[PROCESS_WORKERS + 1];
  for (int i = 0; i < PROCESS_WORKERS + 1; i++)
    jobs[i] = fut_job_bytes(str_bytes, "2", 1);
  fut_cfuture_t *fs[PROCESS_WORKERS + 1];
  assert_int_equal(fut_executor_map_jobs(ex, jobs, PROCESS_WORKERS + 1, fs), 0);
  unref_all(fs, PROCESS_WORKERS + 1);
  executor_done(ex);
}

/* ---- ExecutorTest.test_no_stale_references ------------------------------- */

/* threading.Event with a timed wait */
struct event {
  pthread_mutex_t m;
  pthread_cond_t c;
  bool set;
};

static void event_set(void *p) {
  struct event *e = p;
  pthread_mutex_lock(&e->m);
  e->set = true;
  pthread_cond_broadcast(&e->c);
  pthread_mutex_unlock(&e->m);
}

static bool event_wait(struct event *e, int seconds) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += seconds;
  pthread_mutex_lock(&e->m);
  int r = 0;
  while (!e->set && r == 0)
    r = pthread_cond_timedwait(&e->c, &e->m, &dl);
  bool set = e->set;
  pthread_mutex_unlock(&e->m);
  return set;
}

/* my_object.my_method(): the job's result is "my_object"; when the last
 * reference to the cfuture goes, its destructor sets the event, as the
 * weak reference's callback does in CPython. */
static int my_method(void *arg, fut_cfuture_t *cf) {
  return fut_cfuture_set_result(cf, arg, event_set);
}

/* ExecutorTest.test_no_stale_references (thread pool): the executor drops
 * its references once the job is done, so a discarded future (and what
 * it holds) is freed without any shutdown. */
static void test_no_stale_references_thread(void **state) {
  (void)state;
  fut_executor_t *ex = thread_pool();
  struct event collected = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                            false};
  fut_cfuture_t *future;
  assert_int_equal(fut_executor_submit(ex, my_method, &collected, &future), 0);
  fut_cfuture_unref(future); /* deliberately discarding the future */
  assert_true(event_wait(&collected, 30)); /* support.SHORT_TIMEOUT */
  executor_done(ex);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_submit_thread),
      cmocka_unit_test(test_submit_process),
      cmocka_unit_test(test_map_thread),
      cmocka_unit_test(test_map_process),
      cmocka_unit_test(test_map_exception_thread),
      cmocka_unit_test(test_map_exception_process),
      cmocka_unit_test(test_map_timeout_thread),
      cmocka_unit_test(test_map_timeout_process),
      cmocka_unit_test(test_shutdown_race_issue12456_thread),
      cmocka_unit_test(test_shutdown_race_issue12456_process),
      cmocka_unit_test(test_no_stale_references_thread),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
