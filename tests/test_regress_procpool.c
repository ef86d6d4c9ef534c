/* Regression tests from the adversarial review of the process pool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
/* cmocka needs the three above first. */
#include <cmocka.h>

#include "internal.h"
#include "procpool_jobs.h"

struct waiter {
  pthread_mutex_t lock;
  pthread_cond_t cv;
  bool done;
  int err;
  void *data;
  size_t len;
  char msg[512];
};

static void waiter_init(struct waiter *w) {
  memset(w, 0, sizeof *w);
  pthread_mutex_init(&w->lock, NULL);
  pthread_cond_init(&w->cv, NULL);
}

static void waiter_done(void *ud, int err, void *data, size_t len,
                        const char *msg) {
  struct waiter *w = ud;
  pthread_mutex_lock(&w->lock);
  w->err = err;
  w->data = data;
  w->len = len;
  snprintf(w->msg, sizeof w->msg, "%s", msg ? msg : "");
  w->done = true;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->lock);
}

static int waiter_wait(struct waiter *w) {
  pthread_mutex_lock(&w->lock);
  while (!w->done)
    pthread_cond_wait(&w->cv, &w->lock);
  pthread_mutex_unlock(&w->lock);
  return w->err;
}

static void waiter_destroy(struct waiter *w) {
  free(w->data);
  pthread_mutex_destroy(&w->lock);
  pthread_cond_destroy(&w->cv);
}

/* Bug: a max_frame near SIZE_MAX (the natural way to say "no cap")
 * overflowed the `max_frame + 4096` frame checks of the worker and of the
 * manager, so every job with more than 4 KiB of argument killed its worker
 * (FUT_E_WORKER_DIED) instead of running. */
static void test_procpool_max_frame_huge_runs_jobs(void **state) {
  (void)state;
  fut_procpool_opts_t o;
  fut_procpool_opts_init(&o);
  o.max_workers = 1;
  o.max_frame = SIZE_MAX;
  fut_procpool_t *p = NULL;
  assert_int_equal(fut_procpool_new(&o, &p), 0);
  static unsigned char arg[8192];
  for (size_t i = 0; i < sizeof arg; i++)
    arg[i] = (unsigned char)i;
  struct waiter w;
  waiter_init(&w);
  assert_int_equal(
      fut_procpool_submit(p, job_xor, arg, sizeof arg, NULL, waiter_done, &w),
      0);
  assert_int_equal(waiter_wait(&w), 0);
  assert_int_equal(w.len, sizeof arg);
  const unsigned char *r = w.data;
  for (size_t i = 0; i < sizeof arg; i++)
    assert_int_equal(r[i], arg[i] ^ 0x5a);
  waiter_destroy(&w);
  fut_procpool_free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_procpool_max_frame_huge_runs_jobs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
