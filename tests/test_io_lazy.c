/* Lazy epoll removal (issue 13): a removed watcher's registration is
 * lowered just before the next epoll_wait, and an add in the same
 * iteration turns the pending DEL into one MOD.  These tests pin the
 * fd rules of fut_loop_add_reader around a pending change: fds closed
 * while a change is pending, dup'd fds, re-add after remove within one
 * iteration, numbers reused after close.  epoll_ctl is wrapped
 * (-Wl,--wrap=epoll_ctl) to count the calls by operation. */
#include "fixture.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int ctl_count[4]; /* by EPOLL_CTL_ADD (1), DEL (2), MOD (3) */

int __real_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev) {
  if (op >= 1 && op <= 3)
    ctl_count[op]++;
  return __real_epoll_ctl(epfd, op, fd, ev);
}

static void reset_counts(void) {
  ctl_count[EPOLL_CTL_ADD] = ctl_count[EPOLL_CTL_DEL] =
      ctl_count[EPOLL_CTL_MOD] = 0;
}

static void assert_counts(int add, int del, int mod) {
  assert_int_equal(ctl_count[EPOLL_CTL_ADD], add);
  assert_int_equal(ctl_count[EPOLL_CTL_DEL], del);
  assert_int_equal(ctl_count[EPOLL_CTL_MOD], mod);
}

static void make_pipe(int fds[2]) {
  assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
}

static void make_socketpair(int fds[2]) {
  assert_int_equal(
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds),
      0);
}

static size_t watchers(fut_loop_t *loop) {
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  return st.watchers;
}

static uint64_t cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Runs the loop for ms milliseconds; returns the CPU time it took. */
static uint64_t run_for(fut_loop_t *loop, uint64_t ms) {
  uint64_t c0 = cpu_ns(), t0 = fut_loop_time(loop);
  while (fut_loop_time(loop) - t0 < FUT_MS(ms))
    assert_int_equal(fut_loop_run_once(loop, FUT_MS(5)), 0);
  return cpu_ns() - c0;
}

/* A removal costs nothing until the poll, then one DEL (or one MOD when a
 * watcher is left); the removed callback never runs even though its fd is
 * ready in that poll. */
static void test_lazy_removal_applied_before_poll(void **state) {
  fut_loop_t *loop = *state;
  int s[2], rran = 0;
  make_socketpair(s);
  assert_int_equal(fut_loop_add_reader(loop, s[0], fx_count_cb, &rran), 0);
  assert_int_equal(fut_loop_add_writer(loop, s[0], fx_fail_cb, NULL), 0);
  reset_counts();
  assert_int_equal(fut_loop_remove_writer(loop, s[0]), 1);
  assert_counts(0, 0, 0);
  assert_int_equal(fut_loop_remove_writer(loop, s[0]), 0);
  assert_int_equal(write(s[1], "x", 1), 1);
  assert_true(fx_run_until_flag(loop, &rran));
  assert_counts(0, 0, 1); /* lowered to EPOLLIN once */
  reset_counts();
  assert_int_equal(fut_loop_remove_reader(loop, s[0]), 1);
  assert_int_equal(watchers(loop), 0);
  assert_counts(0, 0, 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_counts(0, 1, 0);
  /* Nothing left registered: the readable fd does not wake the loop. */
  assert_true(run_for(loop, 20) < FUT_MS(15));
  close(s[0]);
  close(s[1]);
}

/* Re-add after remove within one iteration: the pending DEL becomes one
 * MOD (pause_reading / resume_reading in one callback), and the new
 * callback is the one that runs. */
static void test_lazy_readd_after_remove_one_mod(void **state) {
  fut_loop_t *loop = *state;
  int p[2], ran = 0;
  make_pipe(p);
  assert_int_equal(fut_loop_add_reader(loop, p[0], fx_fail_cb, NULL), 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  reset_counts();
  assert_int_equal(fut_loop_remove_reader(loop, p[0]), 1);
  assert_int_equal(fut_loop_add_reader(loop, p[0], fx_count_cb, &ran), 0);
  assert_counts(0, 0, 1);
  assert_int_equal(write(p[1], "x", 1), 1);
  assert_true(fx_run_until_flag(loop, &ran));
  assert_counts(0, 0, 1); /* the flush had nothing left to do */
  assert_int_equal(watchers(loop), 1);
  assert_int_equal(fut_loop_remove_reader(loop, p[0]), 1);
  close(p[0]);
  close(p[1]);
}

/* The writer re-armed from its own callback: remove, then add again in
 * the same iteration; the second callback runs on the next writable poll. */
static int rearm_count;
static fut_loop_t *rearm_loop;
static int rearm_fd;

static void rearm_second(void *arg) {
  (void)arg;
  rearm_count += 10;
  assert_int_equal(fut_loop_remove_writer(rearm_loop, rearm_fd), 1);
}

static void rearm_first(void *arg) {
  (void)arg;
  rearm_count++;
  assert_int_equal(fut_loop_remove_writer(rearm_loop, rearm_fd), 1);
  assert_int_equal(
      fut_loop_add_writer(rearm_loop, rearm_fd, rearm_second, NULL), 0);
}

static bool rearm_done(void *arg) {
  (void)arg;
  return rearm_count == 11;
}

static void test_lazy_writer_rearmed_in_callback(void **state) {
  fut_loop_t *loop = *state;
  int s[2];
  make_socketpair(s);
  rearm_loop = loop;
  rearm_fd = s[0];
  rearm_count = 0;
  reset_counts();
  assert_int_equal(fut_loop_add_writer(loop, s[0], rearm_first, NULL), 0);
  assert_true(fx_run_until(loop, rearm_done, NULL, FUT_SEC(5)));
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  /* ADD, the re-add's MOD, the final DEL: no DEL + ADD pair. */
  assert_counts(1, 1, 1);
  assert_int_equal(rearm_count, 11);
  assert_int_equal(watchers(loop), 0);
  close(s[0]);
  close(s[1]);
}

/* The rule-following close: remove, close, then the poll.  The pending
 * DEL meets a closed number (EBADF): ignored, nothing leaks, and the
 * number works again for a new file. */
static void test_lazy_fd_closed_while_removal_pending(void **state) {
  fut_loop_t *loop = *state;
  int s[2], t[2], ran = 0;
  make_socketpair(s);
  assert_int_equal(fut_loop_add_reader(loop, s[0], fx_fail_cb, NULL), 0);
  assert_int_equal(fut_loop_add_writer(loop, s[0], fx_fail_cb, NULL), 0);
  assert_int_equal(fut_loop_remove_writer(loop, s[0]), 1);
  assert_int_equal(fut_loop_remove_reader(loop, s[0]), 1);
  int num = s[0];
  close(s[0]);
  close(s[1]);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(watchers(loop), 0);
  make_socketpair(t);
  assert_int_equal(t[0], num);
  assert_int_equal(fut_loop_add_reader(loop, t[0], fx_count_cb, &ran), 0);
  assert_int_equal(write(t[1], "x", 1), 1);
  assert_true(fx_run_until_flag(loop, &ran));
  assert_int_equal(fut_loop_remove_reader(loop, t[0]), 1);
  close(t[0]);
  close(t[1]);
}

/* The rule broken while a change is pending: the writer removed, the fd
 * closed with its reader still watched.  The pending MOD finds the number
 * closed and drops the stale reader, as an add on the number would; the
 * loop reports no error and the number is reusable. */
static void test_lazy_fd_closed_with_watcher_left(void **state) {
  fut_loop_t *loop = *state;
  int s[2], t[2], ran = 0;
  make_socketpair(s);
  assert_int_equal(fut_loop_add_reader(loop, s[0], fx_fail_cb, NULL), 0);
  assert_int_equal(fut_loop_add_writer(loop, s[0], fx_fail_cb, NULL), 0);
  assert_int_equal(fut_loop_remove_writer(loop, s[0]), 1);
  int num = s[0];
  close(s[0]);
  close(s[1]);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(watchers(loop), 0);
  assert_int_equal(fut_loop_remove_reader(loop, num), 0); /* dropped */
  make_socketpair(t);
  assert_int_equal(t[0], num);
  assert_int_equal(write(t[1], "x", 1), 1);
  assert_int_equal(fut_loop_add_writer(loop, t[0], fx_count_cb, &ran), 0);
  assert_true(fx_run_until_flag(loop, &ran));
  assert_int_equal(fut_loop_remove_writer(loop, t[0]), 1);
  close(t[0]);
  close(t[1]);
}

/* The fd number reused after close within one iteration: remove, close,
 * a new file under the same number added before the poll.  The add's MOD
 * finds the new file unknown to epoll and registers it (ADD); the old
 * callback never runs, the new one does. */
static void test_lazy_number_reused_in_same_iteration(void **state) {
  fut_loop_t *loop = *state;
  int a[2], b[2], ran = 0;
  make_pipe(a);
  assert_int_equal(fut_loop_add_reader(loop, a[0], fx_fail_cb, NULL), 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(fut_loop_remove_reader(loop, a[0]), 1);
  close(a[0]);
  close(a[1]);
  make_pipe(b);
  assert_int_equal(b[0], a[0]);
  assert_int_equal(fut_loop_add_reader(loop, b[0], fx_count_cb, &ran), 0);
  assert_int_equal(watchers(loop), 1);
  assert_int_equal(write(b[1], "x", 1), 1);
  assert_true(fx_run_until_flag(loop, &ran));
  assert_int_equal(fut_loop_remove_reader(loop, b[0]), 1);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  close(b[0]);
  close(b[1]);
}

/* The hardest order: remove, then close the number while a dup() keeps
 * the old file open (the pending DEL cannot reach it any more), then a new
 * file under the same number added in the same iteration.  The old file
 * becomes readable: its events are not ours, the loop rebuilds its epoll
 * instance (same backend fd), does not spin, never runs the old callback,
 * and the new fd and the dup both work. */
static void test_lazy_remove_close_dup_new_number(void **state) {
  fut_loop_t *loop = *state;
  int a[2], b[2], ran = 0, dran = 0;
  int epfd = fut_loop_backend_fd(loop);
  make_pipe(a);
  assert_int_equal(fut_loop_add_reader(loop, a[0], fx_fail_cb, NULL), 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  int keep = dup(a[0]);
  assert_true(keep >= 0);
  int num = a[0];
  assert_int_equal(fut_loop_remove_reader(loop, num), 1);
  close(a[0]);
  make_pipe(b);
  assert_int_equal(b[0], num);
  assert_int_equal(fut_loop_add_reader(loop, b[0], fx_count_cb, &ran), 0);
  assert_int_equal(write(a[1], "x", 1), 1); /* the old file is readable */
  uint64_t cpu = run_for(loop, 30);
  printf("30 ms with the old file readable: %.2f ms of CPU\n", cpu / 1e6);
  assert_true(cpu < FUT_MS(15));
  assert_int_equal(ran, 0);
  assert_int_equal(fut_loop_backend_fd(loop), epfd);
  assert_int_equal(write(b[1], "y", 1), 1);
  assert_true(fx_run_until_flag(loop, &ran));
  /* The dup is a number of its own: watched, it fires. */
  assert_int_equal(fut_loop_add_reader(loop, keep, fx_count_cb, &dran), 0);
  assert_true(fx_run_until_flag(loop, &dran));
  assert_int_equal(fut_loop_remove_reader(loop, keep), 1);
  assert_int_equal(fut_loop_remove_reader(loop, b[0]), 1);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  close(keep);
  close(a[1]);
  close(b[0]);
  close(b[1]);
}

/* Two numbers of one file, both watched: a pending removal on one leaves
 * the other's registration alone (epoll keys on file and number). */
static void test_lazy_dup_fds_independent(void **state) {
  fut_loop_t *loop = *state;
  int p[2], r1 = 0, r2 = 0;
  make_pipe(p);
  int d = dup(p[0]);
  assert_true(d >= 0);
  assert_int_equal(fut_loop_add_reader(loop, p[0], fx_count_cb, &r1), 0);
  assert_int_equal(fut_loop_add_reader(loop, d, fx_count_cb, &r2), 0);
  assert_int_equal(write(p[1], "x", 1), 1);
  assert_true(fx_run_until_flag(loop, &r1));
  assert_true(fx_run_until_flag(loop, &r2));
  assert_int_equal(fut_loop_remove_reader(loop, p[0]), 1);
  close(p[0]); /* the file stays open through d */
  r2 = 0;
  assert_true(fx_run_until_flag(loop, &r2)); /* still readable */
  int r1_before = r1;
  r2 = 0;
  assert_true(fx_run_until_flag(loop, &r2));
  assert_int_equal(r1, r1_before); /* the removed watcher never runs */
  char c;
  assert_int_equal(read(d, &c, 1), 1);
  assert_int_equal(fut_loop_remove_reader(loop, d), 1);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(watchers(loop), 0);
  close(d);
  close(p[1]);
}

/* A removal pending when the loop closes: nothing leaks (the sanitizer
 * build checks) or misfires. */
static void test_lazy_pending_at_close(void **state) {
  (void)state;
  fut_loop_t *loop;
  int p[2];
  make_pipe(p);
  assert_int_equal(fut_loop_new(&loop), 0);
  assert_int_equal(fut_loop_add_reader(loop, p[0], fx_fail_cb, NULL), 0);
  assert_int_equal(fut_loop_remove_reader(loop, p[0]), 1);
  assert_int_equal(fut_loop_close(loop), 0);
  fut_loop_free(loop);
  close(p[0]);
  close(p[1]);
}

/* A removal pending across fork: the child's fut_loop_fork registers the
 * watchers the table holds, so the removed one stays unregistered there,
 * and the parent's pending DEL still applies to its own instance. */
static void test_lazy_pending_across_fork(void **state) {
  fut_loop_t *loop = *state;
  int p[2], ran = 0;
  make_pipe(p);
  assert_int_equal(fut_loop_add_reader(loop, p[0], fx_fail_cb, NULL), 0);
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(fut_loop_remove_reader(loop, p[0]), 1);
  assert_int_equal(write(p[1], "x", 1), 1);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int ok = fut_loop_fork(loop) == 0 && watchers(loop) == 0;
    uint64_t t0 = fut_loop_time(loop);
    while (ok && fut_loop_time(loop) - t0 < FUT_MS(20))
      ok = fut_loop_run_once(loop, FUT_MS(5)) == 0; /* fail_cb would abort */
    _exit(ok ? 0 : 1);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  assert_true(run_for(loop, 20) < FUT_MS(15));
  assert_int_equal(fut_loop_add_reader(loop, p[0], fx_count_cb, &ran), 0);
  assert_true(fx_run_until_flag(loop, &ran));
  assert_int_equal(fut_loop_remove_reader(loop, p[0]), 1);
  close(p[0]);
  close(p[1]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FX_LOOP_TEST(test_lazy_removal_applied_before_poll),
      FX_LOOP_TEST(test_lazy_readd_after_remove_one_mod),
      FX_LOOP_TEST(test_lazy_writer_rearmed_in_callback),
      FX_LOOP_TEST(test_lazy_fd_closed_while_removal_pending),
      FX_LOOP_TEST(test_lazy_fd_closed_with_watcher_left),
      FX_LOOP_TEST(test_lazy_number_reused_in_same_iteration),
      FX_LOOP_TEST(test_lazy_remove_close_dup_new_number),
      FX_LOOP_TEST(test_lazy_dup_fds_independent),
      cmocka_unit_test(test_lazy_pending_at_close),
      FX_LOOP_TEST(test_lazy_pending_across_fork),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
