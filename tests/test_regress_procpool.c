/* Regression tests from the adversarial review of the process pool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
/* cmocka needs the three above first. */
#include <cmocka.h>

#include "loop/internal.h"

#include "procpool_jobs.h"
#include <stdatomic.h>

/* Bug: a max_frame near SIZE_MAX (the natural way to say "no cap")
 * overflowed the `max_frame + 4096` frame checks of the worker and of the
 * manager, so every job with more than 4 KiB of argument killed its worker
 * (FUT_E_WORKER_DIED) instead of running. */
static void test_procpool_max_frame_huge_runs_jobs(void **state) {
  (void)state;
  fut_process_pool_opts_t o;
  fut_process_pool_opts_init(&o);
  o.max_workers = 1;
  o.max_frame = SIZE_MAX;
  fut_process_pool_t *p = NULL;
  assert_int_equal(fut_process_pool_create(&o, &p), 0);
  static unsigned char arg[8192];
  for (size_t i = 0; i < sizeof arg; i++)
    arg[i] = (unsigned char)i;
  struct waiter w;
  waiter_init(&w);
  assert_int_equal(fut_process_pool_submit(p, job_xor, arg, sizeof arg, NULL,
                                           waiter_done, &w),
                   0);
  assert_int_equal(waiter_wait(&w), 0);
  assert_int_equal(w.len, sizeof arg);
  const unsigned char *r = w.data;
  for (size_t i = 0; i < sizeof arg; i++)
    assert_int_equal(r[i], arg[i] ^ 0x5a);
  waiter_destroy(&w);
  fut_process_pool_destroy(p);
}

/* Never returns: a worker stuck in its initializer. */
static int init_stuck(const void *arg, size_t len) {
  (void)arg;
  (void)len;
  for (;;)
    pause();
  return 0;
}

static bool refuse_start(void *ud) {
  (void)ud;
  return false;
}

struct shut {
  fut_process_pool_t *p;
  int rc;
  atomic_bool done;
};

static void *shutdown_thread(void *arg) {
  struct shut *sh = arg;
  sh->rc = fut_process_pool_shutdown(sh->p, true, false, FUT_MS(100));
  atomic_store(&sh->done, true);
  return NULL;
}

/* Bug: a shutdown with a timeout hung forever when a worker without a job
 * was stuck in its initializer: the pool counted as idle, so the manager
 * waited for the worker to exit at EOF, polling neither its doorbell nor
 * the abandon flag the timeout sets. */
static void
test_procpool_shutdown_timeout_worker_stuck_in_initializer(void **state) {
  (void)state;
  fut_process_pool_opts_t o;
  fut_process_pool_opts_init(&o);
  o.max_workers = 1;
  o.initializer = init_stuck;
  fut_process_pool_t *p = NULL;
  assert_int_equal(fut_process_pool_create(&o, &p), 0);
  /* Dispatch spawns a worker, then the start callback refuses the job:
   * the worker is left without a job, in its initializer. */
  struct waiter w;
  waiter_init(&w);
  int64_t n = 3;
  assert_int_equal(fut_process_pool_submit(p, job_square, &n, sizeof n,
                                           refuse_start, waiter_done, &w),
                   0);
  assert_int_equal(waiter_wait(&w), -ECANCELED);
  waiter_destroy(&w);
  for (int i = 0; i < 5000 && fut_process_pool_nworkers(p) == 0; i++)
    usleep(1000);
  assert_int_equal(fut_process_pool_nworkers(p), 1);
  struct shut sh = {.p = p};
  atomic_init(&sh.done, false);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, shutdown_thread, &sh), 0);
  /* 100 ms asked; allow 10 s on a loaded machine. */
  for (int i = 0; i < 10000 && !atomic_load(&sh.done); i++)
    usleep(1000);
  assert_true(atomic_load(&sh.done));
  pthread_join(th, NULL);
  assert_int_equal(sh.rc, -ETIMEDOUT);
  fut_process_pool_destroy(p);
}

/* Checked: an empty argument and an empty result cross both ways, and an
 * argument exactly at max_frame is accepted (one byte more is not). */
static void test_procpool_empty_and_at_cap_frames(void **state) {
  (void)state;
  fut_process_pool_opts_t o;
  fut_process_pool_opts_init(&o);
  o.max_workers = 1;
  o.max_frame = 4096;
  fut_process_pool_t *p = NULL;
  assert_int_equal(fut_process_pool_create(&o, &p), 0);
  struct waiter w;
  waiter_init(&w);
  assert_int_equal(
      fut_process_pool_submit(p, job_xor, NULL, 0, NULL, waiter_done, &w), 0);
  assert_int_equal(waiter_wait(&w), 0);
  assert_int_equal(w.len, 0);
  waiter_destroy(&w);
  static unsigned char arg[4097];
  waiter_init(&w);
  assert_int_equal(
      fut_process_pool_submit(p, job_xor, arg, 4097, NULL, waiter_done, &w),
      FUT_E_TOO_BIG);
  assert_int_equal(
      fut_process_pool_submit(p, job_xor, arg, 4096, NULL, waiter_done, &w), 0);
  assert_int_equal(waiter_wait(&w), 0);
  assert_int_equal(w.len, 4096);
  assert_int_equal(((unsigned char *)w.data)[4095], 0x5a);
  waiter_destroy(&w);
  fut_process_pool_destroy(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_procpool_max_frame_huge_runs_jobs),
      cmocka_unit_test(test_procpool_empty_and_at_cap_frames),
      cmocka_unit_test(
          test_procpool_shutdown_timeout_worker_stuck_in_initializer),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
