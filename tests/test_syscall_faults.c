/* Syscall fault injection: this program is linked with -Wl,--wrap for the
 * system calls the library makes (tests/CMakeLists.txt), so each can be
 * made to fail with a chosen errno at a chosen call.  The library must:
 *   - retry EINTR;
 *   - report every other failure as a clean error, with nothing leaked
 *     (the open-fd count returns to its baseline);
 *   - keep every promise on a kernel without epoll_pwait2 (before 5.11),
 *     played by a shim that answers ENOSYS: timers still never fire
 *     early, and the missing call is not retried on every poll. */
#include "fixture.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop/internal.h"

/* ---- the shim ------------------------------------------------------------ */

enum { S_EVENTFD, S_EPOLL_CREATE1, S_EPOLL_CTL, S_EPOLL_WAIT, S_SOCKETPAIR,
       S_PIPE2, S_NCALLS };

struct fault {
  int skip;  /* calls that pass before the first failure */
  int times; /* failures to inject (then calls pass again) */
  int err;   /* errno of the failures */
  int calls; /* calls seen since armed */
};
static struct fault faults[S_NCALLS];

static void arm(int which, int skip, int times, int err) {
  faults[which] = (struct fault){skip, times, err, 0};
}

static void disarm_all(void) {
  memset(faults, 0, sizeof faults);
}

/* Whether this call of `which` fails (errno set). */
static bool inject(int which) {
  struct fault *f = &faults[which];
  f->calls++;
  if (f->times <= 0)
    return false;
  if (f->skip > 0) {
    f->skip--;
    return false;
  }
  f->times--;
  errno = f->err;
  return true;
}

int __real_eventfd(unsigned int initval, int flags);
int __wrap_eventfd(unsigned int initval, int flags);
int __wrap_eventfd(unsigned int initval, int flags) {
  return inject(S_EVENTFD) ? -1 : __real_eventfd(initval, flags);
}

int __real_epoll_create1(int flags);
int __wrap_epoll_create1(int flags);
int __wrap_epoll_create1(int flags) {
  return inject(S_EPOLL_CREATE1) ? -1 : __real_epoll_create1(flags);
}

int __real_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev) {
  return inject(S_EPOLL_CTL) ? -1 : __real_epoll_ctl(epfd, op, fd, ev);
}

int __real_epoll_wait(int epfd, struct epoll_event *ev, int n, int ms);
int __wrap_epoll_wait(int epfd, struct epoll_event *ev, int n, int ms);
int __wrap_epoll_wait(int epfd, struct epoll_event *ev, int n, int ms) {
  return inject(S_EPOLL_WAIT) ? -1 : __real_epoll_wait(epfd, ev, n, ms);
}

int __real_socketpair(int domain, int type, int protocol, int sv[2]);
int __wrap_socketpair(int domain, int type, int protocol, int sv[2]);
int __wrap_socketpair(int domain, int type, int protocol, int sv[2]) {
  return inject(S_SOCKETPAIR) ? -1
                              : __real_socketpair(domain, type, protocol, sv);
}

int __real_pipe2(int fds[2], int flags);
int __wrap_pipe2(int fds[2], int flags);
int __wrap_pipe2(int fds[2], int flags) {
  return inject(S_PIPE2) ? -1 : __real_pipe2(fds, flags);
}

/* A kernel without epoll_pwait2. */
static int pwait2_calls;
static int no_pwait2(int epfd, void *events, int maxevents,
                     const struct timespec *ts) {
  (void)epfd;
  (void)events;
  (void)maxevents;
  (void)ts;
  pwait2_calls++;
  errno = ENOSYS;
  return -1;
}

static int teardown(void **state) {
  (void)state;
  disarm_all();
  return 0;
}

/* ---- loop creation ------------------------------------------------------- */

static void test_syscall_loop_new_reports_eventfd_and_epoll_failures(
    void **state) {
  (void)state;
  int base = fx_open_fds();
  fut_loop_t *loop = (fut_loop_t *)1;
  arm(S_EVENTFD, 0, 1, EMFILE);
  assert_int_equal(fut_loop_new(&loop), -EMFILE);
  assert_null(loop);
  assert_int_equal(fx_open_fds(), base);
  arm(S_EPOLL_CREATE1, 0, 1, ENFILE);
  assert_int_equal(fut_loop_new(&loop), -ENFILE);
  assert_null(loop);
  arm(S_EPOLL_CTL, 0, 1, ENOMEM); /* the doorbell's registration */
  assert_int_equal(fut_loop_new(&loop), -ENOMEM);
  assert_null(loop);
  assert_int_equal(fx_open_fds(), base);
  disarm_all();
  assert_int_equal(fut_loop_new(&loop), 0);
  fx_loop_free_clean(loop);
  assert_int_equal(fx_open_fds(), base);
}

/* ---- watchers ------------------------------------------------------------ */

static void test_syscall_add_reader_reports_epoll_ctl_failure(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  arm(S_EPOLL_CTL, 0, 1, ENOMEM);
  assert_int_equal(fut_loop_add_reader(loop, fds[0], fx_fail_cb, NULL),
                   -ENOMEM);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.watchers, 0);
  assert_int_equal(st.live_handles, 0);
  /* The next try works. */
  int ran = 0;
  assert_int_equal(fut_loop_add_reader(loop, fds[0], fx_count_cb, &ran), 0);
  assert_int_equal(write(fds[1], "x", 1), 1);
  assert_true(fx_run_until_flag(loop, &ran));
  assert_int_equal(fut_loop_remove_reader(loop, fds[0]), 1);
  close(fds[0]);
  close(fds[1]);
  fx_loop_free_clean(loop);
}

/* ---- polling ------------------------------------------------------------- */

static void test_syscall_epoll_wait_eintr_retried(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  int fds[2], ran = 0;
  assert_int_equal(pipe(fds), 0);
  assert_int_equal(fut_loop_add_reader(loop, fds[0], fx_count_cb, &ran), 0);
  assert_int_equal(write(fds[1], "x", 1), 1);
  arm(S_EPOLL_WAIT, 0, 3, EINTR);
  /* Interrupted polls are not errors; the event still arrives. */
  for (int i = 0; i < 10 && !ran; i++)
    assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(ran, 1);
  assert_int_equal(faults[S_EPOLL_WAIT].times, 0); /* all three happened */
  /* Any other failure is the run's error. */
  arm(S_EPOLL_WAIT, 0, 1, EBADF);
  assert_int_equal(fut_loop_run_once(loop, 0), -EBADF);
  assert_non_null(strstr(fut_last_error(), "epoll_wait"));
  disarm_all();
  assert_int_equal(fut_loop_remove_reader(loop, fds[0]), 1);
  close(fds[0]);
  close(fds[1]);
  fx_loop_free_clean(loop);
}

static void test_syscall_no_epoll_pwait2_timers_never_early(void **state) {
  (void)state;
  int (*saved)(int, void *, int, const struct timespec *) =
      fut__sys_epoll_pwait2;
  fut__sys_epoll_pwait2 = no_pwait2;
  pwait2_calls = 0;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  static const uint64_t delays[] = {FUT_US(300), FUT_MS(1), FUT_US(2500),
                                    FUT_MS(7)};
  for (size_t i = 0; i < sizeof delays / sizeof delays[0]; i++) {
    int ran = 0;
    uint64_t t0 = fut_loop_time(loop);
    assert_int_equal(
        fut_loop_call_later(loop, delays[i], fx_count_cb, &ran, NULL), 0);
    while (!ran)
      assert_int_equal(fut_loop_run_once(loop, FUT_SEC(1)), 0);
    assert_true(fut_loop_time(loop) - t0 >= delays[i]);
  }
  /* Asked once, then remembered. */
  assert_int_equal(pwait2_calls <= 1, 1);
  fx_loop_free_clean(loop);
  fut__sys_epoll_pwait2 = saved;
}

/* ---- fut_run and the process pool ---------------------------------------- */

static int main_ok(void *arg) {
  (void)arg;
  return 0;
}

/* fut_run's SIGINT pipe is best effort (as asyncio.Runner's handler): when
 * pipe2 fails, the run goes on with SIGINT's default action, and nothing
 * leaks. */
static void test_syscall_run_without_sigint_pipe(void **state) {
  (void)state;
  int base = fx_open_fds();
  fut_t *t = NULL;
  /* fut_run installs its handler only over SIGINT's default action (a
   * runner started in the background inherits SIG_IGN). */
  struct sigaction dfl, old;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  assert_int_equal(sigaction(SIGINT, &dfl, &old), 0);
  arm(S_PIPE2, 0, 1, EMFILE);
  int err = fut_run(main_ok, NULL, &t);
  sigaction(SIGINT, &old, NULL);
  assert_int_equal(faults[S_PIPE2].calls, 1); /* it was tried */
  disarm_all();
  assert_int_equal(err, 0);
  assert_true(fut_done(t));
  fut_unref(t);
  assert_int_equal(fx_open_fds(), base);
}

static void test_syscall_process_pool_reports_socketpair_failure(
    void **state) {
  (void)state;
  int base = fx_open_fds();
  fut_executor_t *ex = (fut_executor_t *)1;
  arm(S_SOCKETPAIR, 0, 1, EMFILE);
  int err = fut_process_pool_new(1, &ex);
  disarm_all();
  assert_int_equal(err, -EMFILE);
  assert_null(ex);
  assert_int_equal(fx_open_fds(), base);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(
          test_syscall_loop_new_reports_eventfd_and_epoll_failures, teardown),
      cmocka_unit_test_teardown(
          test_syscall_add_reader_reports_epoll_ctl_failure, teardown),
      cmocka_unit_test_teardown(test_syscall_epoll_wait_eintr_retried,
                                teardown),
      cmocka_unit_test_teardown(
          test_syscall_no_epoll_pwait2_timers_never_early, teardown),
      cmocka_unit_test_teardown(test_syscall_run_without_sigint_pipe,
                                teardown),
      cmocka_unit_test_teardown(
          test_syscall_process_pool_reports_socketpair_failure, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
