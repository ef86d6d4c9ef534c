/* Regression tests from the second review of the process pool: workers
 * dying during start-up, and the signal dispositions jobs run with. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
/* cmocka needs the three above first. */
#include <cmocka.h>

#include "loop/internal.h"

#include "procpool_jobs.h"

#include <sys/wait.h>

/* Dies in the initializer, as one that crashes would. */
static int init_crash(const void *arg, size_t len) {
  (void)arg;
  (void)len;
  raise(SIGKILL);
  return 0;
}

/* Result: int64 1 when SIGPIPE is ignored in the worker, 0 when it has
 * the default disposition, 2 otherwise. */
static int job_sigpipe_disp(const void *arg, size_t len, fut_buf_t *out) {
  (void)arg;
  (void)len;
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) != 0)
    return fut_buf_errorf(out, -errno, "sigaction failed");
  int64_t v = sa.sa_handler == SIG_IGN ? 1 : sa.sa_handler == SIG_DFL ? 0 : 2;
  return fut_buf_append(out, &v, sizeof v);
}

/* Bug: a worker that died in its initializer (before saying HELLO) failed
 * the job sent to it with FUT_E_WORKER_DIED, "died while running the
 * job", though the job never started.  As Python's ProcessPoolExecutor,
 * the pool is now broken: the job fails with FUT_E_BROKEN_POOL saying the
 * worker died during start-up, and later submissions are refused. */
static void test_procpool_initializer_crash_breaks_pool(void **state) {
  (void)state;
  fut_process_pool_opts_t o;
  fut_process_pool_opts_init(&o);
  o.max_workers = 2;
  o.initializer = init_crash;
  fut_process_pool_t *p = NULL;
  assert_int_equal(fut_process_pool_create(&o, &p), 0);
  struct waiter w[2];
  int64_t n = 3;
  for (int i = 0; i < 2; i++) {
    waiter_init(&w[i]);
    assert_int_equal(fut_process_pool_submit(p, job_square, &n, sizeof n, NULL,
                                             waiter_done, &w[i]),
                     0);
  }
  for (int i = 0; i < 2; i++) {
    assert_int_equal(waiter_wait(&w[i]), FUT_E_BROKEN_POOL);
    assert_null(strstr(w[i].msg, "while running the job"));
    waiter_destroy(&w[i]);
  }
  /* The first death's message names it. */
  waiter_init(&w[0]);
  assert_int_equal(fut_process_pool_submit(p, job_square, &n, sizeof n, NULL,
                                           waiter_done, &w[0]),
                   FUT_E_BROKEN_POOL);
  assert_non_null(strstr(fut_last_error(), "start-up"));
  assert_non_null(strstr(fut_last_error(), "SIGKILL"));
  waiter_destroy(&w[0]);
  fut_process_pool_destroy(p);
}

static int64_t run_disp(fut_process_pool_t *p) {
  struct waiter w;
  waiter_init(&w);
  assert_int_equal(fut_process_pool_submit(p, job_sigpipe_disp, NULL, 0, NULL,
                                           waiter_done, &w),
                   0);
  assert_int_equal(waiter_wait(&w), 0);
  assert_int_equal(w.len, sizeof(int64_t));
  int64_t v;
  memcpy(&v, w.data, sizeof v);
  waiter_destroy(&w);
  return v;
}

/* Bug: jobs ran with SIGPIPE ignored, inherited from the fork server,
 * which ignores it for itself.  A worker now restores the disposition the
 * pool's parent had when the pool started: the default here... */
static void test_procpool_worker_sigpipe_default(void **state) {
  (void)state;
  struct sigaction dfl = {.sa_handler = SIG_DFL}, old;
  sigemptyset(&dfl.sa_mask);
  assert_int_equal(sigaction(SIGPIPE, &dfl, &old), 0);
  fut_process_pool_opts_t o;
  fut_process_pool_opts_init(&o);
  o.max_workers = 1;
  fut_process_pool_t *p = NULL;
  assert_int_equal(fut_process_pool_create(&o, &p), 0);
  assert_int_equal(run_disp(p), 0);
  fut_process_pool_destroy(p);
  sigaction(SIGPIPE, &old, NULL);
}

/* ...and ignored when the parent ignores it. */
static void test_procpool_worker_sigpipe_follows_parent_ignore(void **state) {
  (void)state;
  struct sigaction ign = {.sa_handler = SIG_IGN}, old;
  sigemptyset(&ign.sa_mask);
  assert_int_equal(sigaction(SIGPIPE, &ign, &old), 0);
  fut_process_pool_opts_t o;
  fut_process_pool_opts_init(&o);
  o.max_workers = 1;
  fut_process_pool_t *p = NULL;
  assert_int_equal(fut_process_pool_create(&o, &p), 0);
  assert_int_equal(run_disp(p), 1);
  fut_process_pool_destroy(p);
  sigaction(SIGPIPE, &old, NULL);
}

/* Bug: a process pool used in a forked child hung: submit queued the job
 * for a manager thread that does not exist in the child (and rang the
 * parent's manager through the shared eventfd), and free waited forever
 * for that thread to finish.  Now submit fails with FUT_E_FORKED, shutdown
 * and free return at once, and the parent's pool is unaffected. */
static void test_procpool_forked_child_fails_cleanly(void **state) {
  (void)state;
  fut_process_pool_opts_t o;
  fut_process_pool_opts_init(&o);
  o.max_workers = 1;
  fut_process_pool_t *p = NULL;
  assert_int_equal(fut_process_pool_create(&o, &p), 0);
  assert_int_equal(run_disp(p) >= 0, 1);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct waiter w;
    waiter_init(&w);
    int64_t n = 2;
    if (fut_process_pool_submit(p, job_square, &n, sizeof n, NULL, waiter_done,
                                &w) != FUT_E_FORKED)
      _exit(2);
    if (!strstr(fut_last_error(), "fork"))
      _exit(3);
    if (fut_process_pool_shutdown(p, true, true, FUT_FOREVER) != 0)
      _exit(4);
    fut_process_pool_destroy(p);
    _exit(0);
  }
  int st = -1;
  for (int i = 0; i < 10000; i++) {
    if (waitpid(pid, &st, WNOHANG) == pid)
      break;
    st = -1;
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL); /* polling a child: not synchronisation */
  }
  if (st == -1) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
  }
  assert_int_not_equal(st, -1); /* it hung */
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  assert_true(run_disp(p) >= 0); /* the parent's pool still serves */
  fut_process_pool_destroy(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_procpool_initializer_crash_breaks_pool),
      cmocka_unit_test(test_procpool_worker_sigpipe_default),
      cmocka_unit_test(test_procpool_worker_sigpipe_follows_parent_ignore),
      cmocka_unit_test(test_procpool_forked_child_fails_cleanly),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
