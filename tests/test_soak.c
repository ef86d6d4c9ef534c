/* Soak: a mixed workload for FUT_SOAK_SECONDS (default 5; CI runs 30, and
 * `FUT_SOAK_SECONDS=600 ./build/tests/test_soak` runs ten minutes).  The
 * workload mixes:
 *   - timers, some cancelled;
 *   - call_soon_threadsafe from 4 threads;
 *   - tasks that sleep and await;
 *   - gather and wait_for with cancellations and timeouts;
 *   - thread pool jobs;
 *   - process pool jobs, a few of which kill their own worker.
 * Every round's outcome is checked.  After a warm-up, the resident memory
 * and the open-fd count must stay flat to the end: growth of either is a
 * leak. */
#include "fixture.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "task_helpers.h"

/* ASan keeps freed memory in quarantine (up to 256 MiB) and TSan keeps
 * history, so resident memory grows under them by design: there the
 * sanitizers check for leaks instead of RSS. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FX_UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define FX_UNDER_SANITIZER 1
#endif
#endif
#ifndef FX_UNDER_SANITIZER
#define FX_UNDER_SANITIZER 0
#endif

static long rss_kib(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  assert_non_null(f);
  long pages = 0, resident = 0;
  assert_int_equal(fscanf(f, "%ld %ld", &pages, &resident), 2);
  fclose(f);
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static uint64_t rng = 0x853c49e6748fea9bu;
static uint32_t rnd(uint32_t n) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng % n);
}

/* ---- pieces of work ------------------------------------------------------ */

struct round {
  fut_loop_t *loop;
  fut_executor_t *threads, *procs;
  atomic_int threadsafe_ran;
  int timers_ran;
  long procs_ok, procs_killed, jobs_ok, tasks_ok, cancels, timeouts;
};

static void timer_cb(void *arg) {
  ((struct round *)arg)->timers_ran++;
}

static void threadsafe_cb(void *arg) {
  atomic_fetch_add(&((struct round *)arg)->threadsafe_ran, 1);
}

struct producer {
  struct round *r;
  int calls;
  int failures;
};

static void *produce(void *arg) {
  struct producer *p = arg;
  for (int i = 0; i < p->calls; i++)
    if (fut_loop_call_soon_threadsafe(p->r->loop, threadsafe_cb, p->r))
      p->failures++;
  return NULL;
}

static int thread_job(void *arg, fut_cfuture_t *cf) {
  return fut_cfuture_set_result_i64(cf, (intptr_t)arg * 2);
}

/* A process job: echoes its argument; "die" kills its own worker. */
static int proc_job(const void *data, size_t len, void **out,
                    size_t *out_len) {
  if (len == 3 && memcmp(data, "die", 3) == 0)
    raise(SIGKILL);
  void *copy = malloc(len ? len : 1);
  if (!copy)
    return -ENOMEM;
  memcpy(copy, data, len);
  *out = copy;
  *out_len = len;
  return 0;
}

static int sleeper(void *arg) {
  int err = fut_sleep(FUT_US((uintptr_t)arg));
  if (err)
    return err;
  return fut_task_return_i64(1);
}

/* One round on the loop: schedules everything, runs until it settles. */
static void one_round(struct round *r) {
  fut_loop_t *loop = r->loop;
  /* Timers: 20, a quarter cancelled. */
  fut_handle_t *hs[20];
  int expect_timers = 0;
  r->timers_ran = 0;
  for (int i = 0; i < 20; i++) {
    assert_int_equal(fut_loop_call_later(loop, FUT_US(rnd(2000)), timer_cb,
                                         r, &hs[i]),
                     0);
    if (rnd(4) == 0)
      fut_handle_cancel(hs[i]);
    else
      expect_timers++;
  }
  /* Threadsafe calls from 4 threads. */
  atomic_store(&r->threadsafe_ran, 0);
  pthread_t th[4];
  struct producer ps[4];
  for (int i = 0; i < 4; i++) {
    ps[i] = (struct producer){r, 200, 0};
    assert_int_equal(pthread_create(&th[i], NULL, produce, &ps[i]), 0);
  }
  /* Tasks, a gather of them, and a wait_for that may time out. */
  fut_t *ts[4], *g, *slow, *wf;
  for (int i = 0; i < 4; i++)
    assert_int_equal(fut_create_task(loop, sleeper,
                                     (void *)(uintptr_t)rnd(1500), NULL,
                                     &ts[i]),
                     0);
  assert_int_equal(fut_gather(loop, ts, 4, 0, &g), 0);
  assert_int_equal(
      fut_create_task(loop, sleeper, (void *)(uintptr_t)3000, NULL, &slow),
      0);
  assert_int_equal(fut_wait_for(slow, FUT_US(rnd(6000)), &wf), 0);
  bool cancel_gather = rnd(5) == 0;
  /* Executor jobs. */
  fut_t *jobs[8], *pjobs[3];
  for (int i = 0; i < 8; i++)
    assert_int_equal(fut_run_in_executor(loop, r->threads, thread_job,
                                         (void *)(intptr_t)i, &jobs[i]),
                     0);
  for (int i = 0; i < 3; i++) {
    bool die = rnd(10) == 0;
    fut_job_t j = fut_job_bytes(proc_job, die ? "die" : "hello", die ? 3 : 5);
    assert_int_equal(fut_run_in_executor_job(loop, r->procs, &j, &pjobs[i]),
                     0);
  }
  if (cancel_gather)
    fut_cancel(g, "soak");
  /* Run until everything settled (bounded). */
  uint64_t deadline = fut_loop_time(loop) + FUT_SEC(20);
  for (;;) {
    bool done = fut_done(g) && fut_done(wf) &&
                r->timers_ran == expect_timers &&
                atomic_load(&r->threadsafe_ran) == 800;
    for (int i = 0; i < 8; i++)
      done = done && fut_done(jobs[i]);
    for (int i = 0; i < 3; i++)
      done = done && fut_done(pjobs[i]);
    if (done)
      break;
    assert_true(fut_loop_time(loop) < deadline);
    assert_int_equal(fut_loop_run_once(loop, FUT_MS(5)), 0);
  }
  for (int i = 0; i < 4; i++) {
    assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(ps[i].failures, 0);
  }
  /* Check the outcomes. */
  if (cancel_gather) {
    assert_true(fut_cancelled(g) || fut_exception(g, NULL) == 0);
    r->cancels++;
  } else {
    assert_int_equal(fut_result(g, NULL), 0);
    r->tasks_ok += 4;
  }
  int wrc = fut_result(wf, NULL);
  assert_true(wrc == 0 || wrc == -ETIMEDOUT);
  if (wrc == -ETIMEDOUT)
    r->timeouts++;
  for (int i = 0; i < 8; i++) {
    int64_t v;
    assert_int_equal(fut_result_i64(jobs[i], &v), 0);
    assert_int_equal(v, 2 * i);
    r->jobs_ok++;
  }
  for (int i = 0; i < 3; i++) {
    int rc = fut_result(pjobs[i], NULL);
    if (rc == 0)
      r->procs_ok++;
    else if (rc == FUT_E_WORKER_DIED)
      r->procs_killed++;
    else
      fail_msg("process job failed: %s (%s)", fut_strerror(rc),
               fut_last_error());
  }
  /* Tasks of a cancelled gather may still be finishing: let them. */
  for (int i = 0; i < 4; i++)
    while (!fut_done(ts[i]))
      assert_int_equal(fut_loop_run_once(loop, FUT_MS(5)), 0);
  while (!fut_done(slow))
    assert_int_equal(fut_loop_run_once(loop, FUT_MS(5)), 0);
  for (int i = 0; i < 4; i++) {
    (void)fut_exception(ts[i], NULL);
    fut_unref(ts[i]);
  }
  (void)fut_exception(slow, NULL);
  fut_unref(slow);
  fut_unref(g);
  fut_unref(wf);
  for (int i = 0; i < 8; i++)
    fut_unref(jobs[i]);
  for (int i = 0; i < 3; i++)
    fut_unref(pjobs[i]);
  for (int i = 0; i < 20; i++)
    fut_handle_unref(hs[i]);
}

static void test_soak_mixed_workload_stays_flat(void **state) {
  (void)state;
  const char *env = getenv("FUT_SOAK_SECONDS");
  double seconds = env ? atof(env) : 5.0;
  if (seconds < 1)
    seconds = 1;
  struct round r;
  memset(&r, 0, sizeof r);
  assert_int_equal(fut_loop_new(&r.loop), 0);
  assert_int_equal(fut_thread_pool_new(4, &r.threads), 0);
  assert_int_equal(fut_process_pool_new(2, &r.procs), 0);
  uint64_t start = fut_loop_time(r.loop);
  uint64_t warm = start + (uint64_t)(seconds * 0.2 * 1e9);
  uint64_t end = start + (uint64_t)(seconds * 1e9);
  long rss0 = 0, rss_max = 0;
  int fds0 = -1, fds_min = 1 << 30, fds_max = 0;
  long rounds = 0;
  while (fut_loop_time(r.loop) < end) {
    one_round(&r);
    rounds++;
    if (fds0 < 0 && fut_loop_time(r.loop) >= warm) {
      rss0 = rss_kib();
      fds0 = fx_open_fds();
    }
    if (fds0 >= 0) {
      long rss = rss_kib();
      if (rss > rss_max)
        rss_max = rss;
      int fds = fx_open_fds();
      fds_min = fds < fds_min ? fds : fds_min;
      fds_max = fds > fds_max ? fds : fds_max;
    }
  }
  printf("soak: %.0f s, %ld rounds: %ld tasks, %ld thread jobs, %ld process "
         "jobs (%ld workers killed), %ld gather cancels, %ld wait_for "
         "timeouts; RSS %ld -> max %ld KiB after warm-up, fds %d..%d\n",
         seconds, rounds, r.tasks_ok, r.jobs_ok, r.procs_ok, r.procs_killed,
         r.cancels, r.timeouts, rss0, rss_max, fds_min, fds_max);
  assert_true(rounds > 0);
  assert_true(fds0 >= 0);
  /* The process pool's workers come and go (killed ones are replaced),
   * each with one socket: at most 2 apart.  A leaked fd a round would
   * climb past that at once. */
  assert_true(fds_max - fds_min <= 2);
  /* Flat: a leak of even 100 bytes a round would grow past this over a
   * long soak; allocator noise stays well inside it. */
#if !FX_UNDER_SANITIZER
  assert_true(rss_max - rss0 < 4096);
#endif
  assert_int_equal(fut_executor_shutdown(r.threads, true, false, FUT_SEC(10)),
                   0);
  fut_executor_free(r.threads);
  assert_int_equal(fut_executor_shutdown(r.procs, true, false, FUT_SEC(10)),
                   0);
  fut_executor_free(r.procs);
  fx_loop_free_clean(r.loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_soak_mixed_workload_stays_flat),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
