/* fd watchers: add_reader / add_writer / remove on pipes and socketpairs,
 * errors, and removal during a batch of events. */
#include "fixture.h"

#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop/internal.h"

static void make_pipe(int fds[2]) {
  assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
}

/* Bug: an fd closed without remove_reader and its number handed out
 * again by the next pipe(): add_reader on the new fd saw the old
 * registration in its table and never armed the new fd.  The loop now asks
 * epoll every time, finds the kernel forgot the fd, and drops the stale
 * watchers (the old callback never runs for the new fd). */
static void test_io_fd_closed_without_remove_then_reused(void **state) {
  fut_loop_t *loop = *state;
  int a[2], b[2], ran = 0;
  make_pipe(a);
  assert_int_equal(fut_loop_add_reader(loop, a[0], fx_fail_cb, NULL), 0);
  close(a[0]);
  close(a[1]);
  make_pipe(b);
  assert_int_equal(b[0], a[0]); /* lowest free number: reused */
  assert_int_equal(fut_loop_add_reader(loop, b[0], fx_count_cb, &ran), 0);
  assert_int_equal(write(b[1], "x", 1), 1);
  assert_true(fx_run_until_flag(loop, &ran));
  /* The same with a writer added to the reused number: the stale reader
   * must not be armed with it. */
  assert_int_equal(fut_loop_remove_reader(loop, b[0]), 1);
  int s1[2], s2[2];
  assert_int_equal(
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, s1),
      0);
  assert_int_equal(fut_loop_add_reader(loop, s1[0], fx_fail_cb, NULL), 0);
  int num = s1[0];
  close(s1[0]);
  close(s1[1]);
  assert_int_equal(
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, s2),
      0);
  assert_int_equal(s2[0], num);
  int wran = 0;
  assert_int_equal(write(s2[1], "x", 1), 1); /* readable: must not matter */
  assert_int_equal(fut_loop_add_writer(loop, s2[0], fx_count_cb, &wran), 0);
  assert_true(fx_run_until_flag(loop, &wran));
  assert_int_equal(fut_loop_run_once(loop, FUT_MS(2)), 0);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.watchers, 1);
  assert_int_equal(fut_loop_remove_writer(loop, s2[0]), 1);
  assert_int_equal(fut_loop_remove_reader(loop, s2[0]), 0); /* dropped */
  close(b[0]);
  close(b[1]);
  close(s2[0]);
  close(s2[1]);
}

static uint64_t cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Bug: remove_reader on an fd whose file was dup'd and whose number was
 * closed cannot reach epoll's registration (it tracks the open file): the
 * readable file woke every poll (100% CPU) and its events were delivered
 * to whatever was watched under that number later.  The loop now detects
 * an event it does not own and rebuilds its epoll instance. */
static void test_io_remove_after_dup_and_close_no_spin(void **state) {
  fut_loop_t *loop = *state;
  int p[2];
  make_pipe(p);
  int epfd = fut_loop_backend_fd(loop);
  assert_int_equal(fut_loop_add_reader(loop, p[0], fx_fail_cb, NULL), 0);
  int keep = dup(p[0]);
  assert_true(keep >= 0);
  int num = p[0];
  close(p[0]);
  assert_int_equal(fut_loop_remove_reader(loop, num), 1);
  assert_int_equal(write(p[1], "x", 1), 1); /* the file is readable */
  /* A new fd under the old number, watched, never readable. */
  int q[2];
  make_pipe(q);
  assert_int_equal(q[0], num);
  assert_int_equal(fut_loop_add_reader(loop, q[0], fx_fail_cb, NULL), 0);
  /* 30 ms of running: blocked in epoll, not spinning, no callback. */
  uint64_t c0 = cpu_ns(), t0 = fut_loop_time(loop);
  while (fut_loop_time(loop) - t0 < FUT_MS(30))
    assert_int_equal(fut_loop_run_once(loop, FUT_MS(10)), 0);
  uint64_t cpu = cpu_ns() - c0;
  printf("30 ms with a stale registration: %.2f ms of CPU\n", cpu / 1e6);
  assert_true(cpu < FUT_MS(15));
  /* The embedding program's backend fd is still the loop's. */
  assert_int_equal(fut_loop_backend_fd(loop), epfd);
  /* The new fd still works. */
  int ran = 0;
  assert_int_equal(fut_loop_remove_reader(loop, q[0]), 1);
  assert_int_equal(fut_loop_add_reader(loop, q[0], fx_count_cb, &ran), 0);
  assert_int_equal(write(q[1], "y", 1), 1);
  assert_true(fx_run_until_flag(loop, &ran));
  assert_int_equal(fut_loop_remove_reader(loop, q[0]), 1);
  close(keep);
  close(p[1]);
  close(q[0]);
  close(q[1]);
}

static void test_io_reader_fires_when_readable(void **state) {
  fut_loop_t *loop = *state;
  int fds[2], ran = 0;
  make_pipe(fds);
  assert_int_equal(fut_loop_add_reader(loop, fds[0], fx_count_cb, &ran), 0);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.watchers, 1);
  assert_int_equal(fut_loop_run_once(loop, FUT_MS(5)), 0);
  assert_int_equal(ran, 0); /* not readable yet */
  assert_int_equal(write(fds[1], "x", 1), 1);
  assert_true(fx_run_until_flag(loop, &ran));
  /* Level-triggered: fires again while data is unread. */
  int before = ran;
  assert_int_equal(fut_loop_run_once(loop, FUT_SEC(1)), 0);
  assert_true(ran > before);
  char c;
  assert_int_equal(read(fds[0], &c, 1), 1);
  before = ran;
  assert_int_equal(fut_loop_run_once(loop, FUT_MS(5)), 0);
  assert_int_equal(ran, before);
  assert_int_equal(fut_loop_remove_reader(loop, fds[0]), 1);
  close(fds[0]);
  close(fds[1]);
}

static void test_io_writer_fires_when_writable(void **state) {
  fut_loop_t *loop = *state;
  int sv[2], ran = 0;
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  assert_int_equal(fut_loop_add_writer(loop, sv[0], fx_count_cb, &ran), 0);
  assert_true(fx_run_until_flag(loop, &ran));
  assert_int_equal(fut_loop_remove_writer(loop, sv[0]), 1);
  assert_int_equal(fut_loop_remove_writer(loop, sv[0]), 0);
  close(sv[0]);
  close(sv[1]);
}

static void test_io_reader_and_writer_same_fd(void **state) {
  fut_loop_t *loop = *state;
  int sv[2], r = 0, w = 0;
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  assert_int_equal(fut_loop_add_reader(loop, sv[0], fx_count_cb, &r), 0);
  assert_int_equal(fut_loop_add_writer(loop, sv[0], fx_count_cb, &w), 0);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.watchers, 1); /* one fd */
  assert_true(fx_run_until_flag(loop, &w));
  assert_int_equal(r, 0);
  assert_int_equal(write(sv[1], "y", 1), 1);
  assert_true(fx_run_until_flag(loop, &r));
  /* Removing the reader keeps the writer. */
  assert_int_equal(fut_loop_remove_reader(loop, sv[0]), 1);
  int w0 = w, r0 = r;
  assert_int_equal(fut_loop_run_once(loop, FUT_SEC(1)), 0);
  assert_true(w > w0);
  assert_int_equal(r, r0);
  fut_loop_stats(loop, &st);
  assert_int_equal(st.watchers, 1);
  assert_int_equal(fut_loop_remove_writer(loop, sv[0]), 1);
  fut_loop_stats(loop, &st);
  assert_int_equal(st.watchers, 0);
  close(sv[0]);
  close(sv[1]);
}

static void test_io_add_again_replaces(void **state) {
  fut_loop_t *loop = *state;
  int fds[2], ran = 0;
  make_pipe(fds);
  assert_int_equal(fut_loop_add_reader(loop, fds[0], fx_fail_cb, NULL), 0);
  assert_int_equal(fut_loop_add_reader(loop, fds[0], fx_count_cb, &ran), 0);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.watchers, 1);
  assert_int_equal(st.live_handles, 1);
  assert_int_equal(write(fds[1], "x", 1), 1);
  assert_true(fx_run_until_flag(loop, &ran));
  assert_int_equal(fut_loop_remove_reader(loop, fds[0]), 1);
  close(fds[0]);
  close(fds[1]);
}

static void test_io_remove_returns_1_then_0(void **state) {
  fut_loop_t *loop = *state;
  int fds[2];
  make_pipe(fds);
  assert_int_equal(fut_loop_remove_reader(loop, fds[0]), 0);
  assert_int_equal(fut_loop_remove_reader(loop, 100000), 0);
  assert_int_equal(fut_loop_add_reader(loop, fds[0], fx_fail_cb, NULL), 0);
  assert_int_equal(fut_loop_remove_writer(loop, fds[0]), 0);
  assert_int_equal(fut_loop_remove_reader(loop, fds[0]), 1);
  assert_int_equal(fut_loop_remove_reader(loop, fds[0]), 0);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.watchers, 0);
  assert_int_equal(write(fds[1], "x", 1), 1);
  assert_int_equal(fut_loop_run_once(loop, FUT_MS(5)), 0);
  close(fds[0]);
  close(fds[1]);
}

static void test_io_regular_file_eperm(void **state) {
  fut_loop_t *loop = *state;
  FILE *tf = tmpfile();
  assert_non_null(tf);
  int fd = fileno(tf);
  assert_int_equal(fut_loop_add_reader(loop, fd, fx_fail_cb, NULL), -EPERM);
  const char *detail = fut_last_error();
  assert_non_null(strstr(detail, "regular file"));
  assert_non_null(strstr(detail, "fut_loop_add_reader"));
  assert_int_equal(fut_loop_add_writer(loop, fd, fx_fail_cb, NULL), -EPERM);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.watchers, 0);
  assert_int_equal(st.live_handles, 0);
  assert_int_equal(fut_loop_remove_reader(loop, fd), 0);
  fclose(tf);
}

static void test_io_closed_fd_ebadf(void **state) {
  fut_loop_t *loop = *state;
  int fds[2];
  make_pipe(fds);
  close(fds[0]);
  close(fds[1]);
  assert_int_equal(fut_loop_add_reader(loop, fds[0], fx_fail_cb, NULL),
                   -EBADF);
  assert_int_equal(fut_loop_add_writer(loop, fds[1], fx_fail_cb, NULL),
                   -EBADF);
  assert_non_null(strstr(fut_last_error(), "not open"));
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.watchers, 0);
}

static void test_io_bad_args_einval(void **state) {
  fut_loop_t *loop = *state;
  int fds[2];
  make_pipe(fds);
  assert_int_equal(fut_loop_add_reader(loop, -1, fx_fail_cb, NULL), -EINVAL);
  assert_int_equal(fut_loop_add_writer(loop, -5, fx_fail_cb, NULL), -EINVAL);
  assert_int_equal(fut_loop_add_reader(loop, fds[0], NULL, NULL), -EINVAL);
  assert_int_equal(fut_loop_add_writer(loop, fds[1], NULL, NULL), -EINVAL);
  assert_int_equal(fut_loop_remove_reader(loop, -1), -EINVAL);
  assert_int_equal(fut_loop_remove_writer(loop, -1), -EINVAL);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.watchers, 0);
  close(fds[0]);
  close(fds[1]);
}

/* Bug: add_reader / add_writer dereferenced a NULL loop (the NULL check
 * came after the usability check); every loop call refuses NULL. */
static void test_io_null_loop_einval(void **state) {
  (void)state;
  int fds[2];
  make_pipe(fds);
  assert_int_equal(fut_loop_add_reader(NULL, fds[0], fx_fail_cb, NULL),
                   -EINVAL);
  assert_int_equal(fut_loop_add_writer(NULL, fds[1], fx_fail_cb, NULL),
                   -EINVAL);
  assert_int_equal(fut_loop_remove_reader(NULL, fds[0]), -EINVAL);
  assert_int_equal(fut_loop_remove_writer(NULL, fds[1]), -EINVAL);
  close(fds[0]);
  close(fds[1]);
}

/* Two fds ready in one epoll batch; the first callback to run removes the
 * other's reader (and maybe closes it): the other must not run. */
struct duel {
  fut_loop_t *loop;
  int fd[2];      /* read ends */
  int wfd[2];     /* write ends */
  int ran[2];
  bool close_other;
};
struct duel_side {
  struct duel *d;
  int me;
};
static void duel_cb(void *arg) {
  struct duel_side *s = arg;
  struct duel *d = s->d;
  int other = 1 - s->me;
  d->ran[s->me]++;
  if (d->fd[other] >= 0) {
    assert_int_equal(fut_loop_remove_reader(d->loop, d->fd[other]), 1);
    if (d->close_other) {
      close(d->fd[other]);
      close(d->wfd[other]);
      d->fd[other] = d->wfd[other] = -1;
    }
  }
  fut_loop_stop(d->loop);
}

static void run_duel(fut_loop_t *loop, bool close_other) {
  struct duel d = {.loop = loop, .close_other = close_other};
  struct duel_side sides[2] = {{&d, 0}, {&d, 1}};
  for (int i = 0; i < 2; i++) {
    int fds[2];
    make_pipe(fds);
    d.fd[i] = fds[0];
    d.wfd[i] = fds[1];
    assert_int_equal(write(fds[1], "x", 1), 1);
  }
  for (int i = 0; i < 2; i++)
    assert_int_equal(fut_loop_add_reader(loop, d.fd[i], duel_cb, &sides[i]),
                     0);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  assert_int_equal(d.ran[0] + d.ran[1], 1);
  int winner = d.ran[0] ? 0 : 1;
  assert_int_equal(fut_loop_remove_reader(loop, d.fd[winner]), 1);
  /* The loser's queued run was skipped, not merely delayed. */
  assert_int_equal(fut_loop_run_once(loop, FUT_MS(5)), 0);
  assert_int_equal(d.ran[0] + d.ran[1], 1);
  for (int i = 0; i < 2; i++)
    if (d.fd[i] >= 0) {
      close(d.fd[i]);
      close(d.wfd[i]);
    }
}

static void test_io_remove_other_in_same_batch(void **state) {
  run_duel(*state, false);
}

static void test_io_remove_and_close_other_in_same_batch(void **state) {
  run_duel(*state, true);
}

struct selfrm {
  fut_loop_t *loop;
  int fd;
  int ran;
};
static void self_remove_cb(void *arg) {
  struct selfrm *s = arg;
  s->ran++;
  assert_int_equal(fut_loop_remove_reader(s->loop, s->fd), 1);
  assert_int_equal(fut_loop_remove_reader(s->loop, s->fd), 0);
}

static void test_io_reader_removes_itself(void **state) {
  fut_loop_t *loop = *state;
  int fds[2];
  make_pipe(fds);
  struct selfrm s = {loop, fds[0], 0};
  assert_int_equal(write(fds[1], "x", 1), 1);
  assert_int_equal(fut_loop_add_reader(loop, fds[0], self_remove_cb, &s), 0);
  assert_true(fx_run_until_flag(loop, &s.ran));
  assert_int_equal(fut_loop_run_once(loop, FUT_MS(5)), 0);
  assert_int_equal(s.ran, 1);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.watchers, 0);
  close(fds[0]);
  close(fds[1]);
}

static void test_io_remove_on_closed_fd_safe(void **state) {
  fut_loop_t *loop = *state;
  int fds[2];
  make_pipe(fds);
  assert_int_equal(fut_loop_add_reader(loop, fds[0], fx_fail_cb, NULL), 0);
  assert_int_equal(fut_loop_add_writer(loop, fds[1], fx_fail_cb, NULL), 0);
  int rfd = fds[0];
  close(fds[0]);
  close(fds[1]);
  assert_int_equal(fut_loop_remove_reader(loop, fds[0]), 1);
  assert_int_equal(fut_loop_remove_writer(loop, fds[1]), 1);
  assert_int_equal(fut_loop_run_once(loop, FUT_MS(1)), 0);
  /* The fd number is reused (lowest free) and watched again. */
  int ran = 0;
  make_pipe(fds);
  assert_int_equal(fds[0], rfd);
  assert_int_equal(fut_loop_add_reader(loop, fds[0], fx_count_cb, &ran), 0);
  assert_int_equal(write(fds[1], "x", 1), 1);
  assert_true(fx_run_until_flag(loop, &ran));
  assert_int_equal(fut_loop_remove_reader(loop, fds[0]), 1);
  close(fds[0]);
  close(fds[1]);
}

static void test_io_hangup_wakes_reader(void **state) {
  fut_loop_t *loop = *state;
  int fds[2], ran = 0;
  make_pipe(fds);
  assert_int_equal(fut_loop_add_reader(loop, fds[0], fx_count_cb, &ran), 0);
  close(fds[1]);
  assert_true(fx_run_until_flag(loop, &ran));
  assert_int_equal(fut_loop_remove_reader(loop, fds[0]), 1);
  close(fds[0]);
}

/* Many fds ready at once: more than the first event batch holds. */
static void test_io_many_fds_ready(void **state) {
  fut_loop_t *loop = *state;
  enum { N = 300 };
  static int sv[N][2];
  static int ran[N];
  for (int i = 0; i < N; i++) {
    ran[i] = 0;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
                                sv[i]), 0);
    assert_int_equal(fut_loop_add_writer(loop, sv[i][0], fx_count_cb, &ran[i]),
                     0);
  }
  assert_int_equal(fut_loop_run_once(loop, FUT_SEC(1)), 0);
  for (int i = 0; i < N; i++) {
    assert_int_equal(ran[i], 1);
    assert_int_equal(fut_loop_remove_writer(loop, sv[i][0]), 1);
    close(sv[i][0]);
    close(sv[i][1]);
  }
}

/* The loop's own descriptors cannot be watched: registering the doorbell
 * again would take over (and a remove would drop) its epoll entry. */
static void test_io_loop_own_fds_refused(void **state) {
  fut_loop_t *loop = *state;
  assert_int_equal(fut_loop_add_reader(loop, loop->evfd, fx_fail_cb, NULL),
                   -EINVAL);
  assert_non_null(strstr(fut_last_error(), "loop"));
  assert_int_equal(fut_loop_add_writer(loop, loop->evfd, fx_fail_cb, NULL),
                   -EINVAL);
  assert_int_equal(fut_loop_add_reader(loop, fut_loop_backend_fd(loop),
                                       fx_fail_cb, NULL), -EINVAL);
  assert_int_equal(fut_loop_remove_reader(loop, loop->evfd), 0);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.watchers, 0);
  assert_int_equal(st.live_handles, 0);
  /* The thread-safe door still works. */
  int ran = 0;
  assert_int_equal(fut_loop_call_soon_threadsafe(loop, fx_count_cb, &ran), 0);
  assert_true(fx_run_until_flag(loop, &ran));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FX_LOOP_TEST(test_io_reader_fires_when_readable),
      FX_LOOP_TEST(test_io_writer_fires_when_writable),
      FX_LOOP_TEST(test_io_reader_and_writer_same_fd),
      FX_LOOP_TEST(test_io_add_again_replaces),
      FX_LOOP_TEST(test_io_remove_returns_1_then_0),
      FX_LOOP_TEST(test_io_regular_file_eperm),
      FX_LOOP_TEST(test_io_closed_fd_ebadf),
      FX_LOOP_TEST(test_io_bad_args_einval),
      cmocka_unit_test(test_io_null_loop_einval),
      FX_LOOP_TEST(test_io_fd_closed_without_remove_then_reused),
      FX_LOOP_TEST(test_io_remove_after_dup_and_close_no_spin),
      FX_LOOP_TEST(test_io_remove_other_in_same_batch),
      FX_LOOP_TEST(test_io_remove_and_close_other_in_same_batch),
      FX_LOOP_TEST(test_io_reader_removes_itself),
      FX_LOOP_TEST(test_io_remove_on_closed_fd_safe),
      FX_LOOP_TEST(test_io_hangup_wakes_reader),
      FX_LOOP_TEST(test_io_many_fds_ready),
      FX_LOOP_TEST(test_io_loop_own_fds_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
