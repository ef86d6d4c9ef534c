/* Syscall fault injection: this program is linked with -Wl,--wrap for the
 * system calls the library makes (tests/CMakeLists.txt), so each can be
 * made to fail with a chosen errno at a chosen call.  read and write fail
 * only on the fd they are armed for (the loop's doorbell, the pool's
 * doorbell, a worker's socket), so cmocka's own output is never touched;
 * fork fails in the pool's fork server, which is an exec of this program
 * configured through the environment (FORK_FAULT_ENV below).  The library
 * must:
 *   - retry EINTR;
 *   - report every other failure as a clean error, with nothing leaked
 *     (the open-fd count returns to its baseline);
 *   - keep every promise on a kernel without epoll_pwait2 (before 5.11),
 *     played by a shim that answers ENOSYS: timers still never fire
 *     early, and the missing call is not retried on every poll. */
#include "fixture.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop/internal.h"
#include "procpool/internal.h"
#include "procpool_jobs.h"

/* ---- the shim ------------------------------------------------------------ */

enum {
  S_EVENTFD,
  S_EPOLL_CREATE1,
  S_EPOLL_CTL,
  S_EPOLL_WAIT,
  S_SOCKETPAIR,
  S_PIPE2,
  S_NCALLS
};

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

/* read and write: armed for one fd, from any thread (the pool's manager
 * thread makes its calls), hence the lock. */
enum { S_READ, S_WRITE, S_NFD };
struct fd_fault {
  int fd; /* -1: disarmed */
  int skip, times, err, calls;
};
static struct fd_fault fd_faults[S_NFD] = {{-1, 0, 0, 0, 0}, {-1, 0, 0, 0, 0}};
static pthread_mutex_t fd_fault_lock = PTHREAD_MUTEX_INITIALIZER;

static void arm_fd(int which, int fd, int skip, int times, int err) {
  pthread_mutex_lock(&fd_fault_lock);
  fd_faults[which] = (struct fd_fault){fd, skip, times, err, 0};
  pthread_mutex_unlock(&fd_fault_lock);
}

/* The failures still to inject. */
static int fd_left(int which) {
  pthread_mutex_lock(&fd_fault_lock);
  int n = fd_faults[which].times;
  pthread_mutex_unlock(&fd_fault_lock);
  return n;
}

/* Armed for every SOCK_STREAM socket: the pool's worker sockets (the
 * manager's other fds are an eventfd and a SEQPACKET socket). */
#define ANY_STREAM_SOCKET (-2)
static bool is_stream_socket(int fd) {
  int type = 0;
  socklen_t tl = sizeof type;
  return fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 &&
         type == SOCK_STREAM;
}

static bool inject_fd(int which, int fd) {
  bool fail = false;
  pthread_mutex_lock(&fd_fault_lock);
  struct fd_fault *f = &fd_faults[which];
  if (f->fd == fd || (f->fd == ANY_STREAM_SOCKET && is_stream_socket(fd))) {
    f->calls++;
    if (f->times > 0) {
      if (f->skip > 0) {
        f->skip--;
      } else {
        f->times--;
        errno = f->err;
        fail = true;
      }
    }
  }
  pthread_mutex_unlock(&fd_fault_lock);
  return fail;
}

ssize_t __real_read(int fd, void *buf, size_t n);
ssize_t __wrap_read(int fd, void *buf, size_t n);
ssize_t __wrap_read(int fd, void *buf, size_t n) {
  return inject_fd(S_READ, fd) ? -1 : __real_read(fd, buf, n);
}

ssize_t __real_write(int fd, const void *buf, size_t n);
ssize_t __wrap_write(int fd, const void *buf, size_t n);
ssize_t __wrap_write(int fd, const void *buf, size_t n) {
  return inject_fd(S_WRITE, fd) ? -1 : __real_write(fd, buf, n);
}

/* fork: the pool forks its workers in the fork server, a fresh exec of
 * this program, so the fault travels in the environment, which the server
 * inherits: "errno:skip:times:pid", pid being the test's own process,
 * where the variable is ignored.  The server is single-threaded. */
#define FORK_FAULT_ENV "FUT_TEST_FORK_FAULT"
static struct fault fork_fault;
static bool fork_fault_read;

pid_t __real_fork(void);
pid_t __wrap_fork(void);
pid_t __wrap_fork(void) {
  if (!fork_fault_read) {
    fork_fault_read = true;
    const char *v = getenv(FORK_FAULT_ENV);
    int err, skip, times;
    long pid;
    if (v && sscanf(v, "%d:%d:%d:%ld", &err, &skip, &times, &pid) == 4 &&
        pid != (long)getpid())
      fork_fault = (struct fault){skip, times, err, 0};
  }
  struct fault *f = &fork_fault;
  f->calls++;
  if (f->times > 0) {
    if (f->skip > 0) {
      f->skip--;
    } else {
      f->times--;
      errno = f->err;
      return -1;
    }
  }
  return __real_fork();
}

static void arm_server_fork(int err, int skip, int times) {
  char v[64];
  snprintf(v, sizeof v, "%d:%d:%d:%ld", err, skip, times, (long)getpid());
  assert_int_equal(setenv(FORK_FAULT_ENV, v, 1), 0);
}

/* posix_spawn: how the pool starts its fork server (and the process layer
 * its children). */
static struct fault spawn_fault;
int __real_posix_spawn(pid_t *pid, const char *path,
                       const posix_spawn_file_actions_t *fa,
                       const posix_spawnattr_t *at, char *const argv[],
                       char *const envp[]);
int __wrap_posix_spawn(pid_t *pid, const char *path,
                       const posix_spawn_file_actions_t *fa,
                       const posix_spawnattr_t *at, char *const argv[],
                       char *const envp[]);
int __wrap_posix_spawn(pid_t *pid, const char *path,
                       const posix_spawn_file_actions_t *fa,
                       const posix_spawnattr_t *at, char *const argv[],
                       char *const envp[]) {
  struct fault *f = &spawn_fault;
  f->calls++;
  if (f->times > 0) {
    if (f->skip > 0) {
      f->skip--;
    } else {
      f->times--;
      return f->err; /* posix_spawn returns the error */
    }
  }
  return __real_posix_spawn(pid, path, fa, at, argv, envp);
}

static void disarm_all(void) {
  memset(faults, 0, sizeof faults);
  arm_fd(S_READ, -1, 0, 0, 0);
  arm_fd(S_WRITE, -1, 0, 0, 0);
  memset(&spawn_fault, 0, sizeof spawn_fault);
  unsetenv(FORK_FAULT_ENV);
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

static void
test_syscall_loop_new_reports_eventfd_and_epoll_failures(void **state) {
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

static void test_syscall_process_pool_reports_socketpair_failure(void **state) {
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

/* ---- read and write on the loop's doorbell --------------------------------
 * call_soon_threadsafe from another thread writes the loop's eventfd; the
 * loop reads it back when it drains the door. */

struct ts_later {
  fut_loop_t *loop;
  unsigned delay_ms;
  int *ran;
  int res;
};

static void *ts_later_thread(void *arg) {
  struct ts_later *t = arg;
  struct timespec ts = {0, (long)t->delay_ms * 1000000L};
  nanosleep(&ts, NULL);
  t->res = fut_loop_call_soon_threadsafe(t->loop, fx_count_cb, t->ran);
  return NULL;
}

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Bug: the doorbell's write was not retried on EINTR, while the "rung"
 * flag said it was written: a call_soon_threadsafe whose write was
 * interrupted left the loop asleep in epoll_wait (here for its whole 10 s
 * timeout; with no timer, forever), and the call unseen until another
 * call rang. */
static void test_syscall_door_write_eintr_retried(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  int ran = 0;
  /* The other thread calls once the loop sleeps (300 ms in). */
  struct ts_later t = {loop, 300, &ran, 1};
  arm_fd(S_WRITE, loop->evfd, 0, 1, EINTR);
  uint64_t t0 = mono_ns();
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, ts_later_thread, &t), 0);
  assert_int_equal(fut_loop_run_once(loop, FUT_SEC(10)), 0);
  uint64_t took = mono_ns() - t0;
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_int_equal(t.res, 0);
  assert_int_equal(fd_left(S_WRITE), 0); /* the EINTR happened */
  if (!ran) /* woken before the callback was queued: run it now */
    assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(ran, 1);
  if (took >= FUT_SEC(5))
    fail_msg("the loop slept %.1f s through a thread-safe call whose "
             "wake-up write was interrupted",
             (double)took / 1e9);
  disarm_all();
  fx_loop_free_clean(loop);
}

/* Any other failure of the doorbell's write is the call's error: the
 * call is not queued (it would wait for a wake-up that never comes). */
static void test_syscall_door_write_error_reported(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  int ran = 0;
  arm_fd(S_WRITE, loop->evfd, 0, 1, EIO);
  assert_int_equal(fx_call_soon_threadsafe_from_thread(loop, fx_count_cb, &ran),
                   -EIO);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.threadsafe, 0);
  assert_int_equal(fd_left(S_WRITE), 0);
  disarm_all();
  /* EAGAIN is a saturated counter (made here for real): the loop is woken
   * already, so the call is queued and runs. */
  uint64_t max = UINT64_MAX - 1;
  assert_int_equal(write(loop->evfd, &max, sizeof max), (ssize_t)sizeof max);
  assert_int_equal(fx_call_soon_threadsafe_from_thread(loop, fx_count_cb, &ran),
                   0);
  assert_true(fx_run_until(loop, fx_int_nonzero, &ran, FUT_SEC(5)));
  /* The refused call never runs. */
  for (int i = 0; i < 3; i++)
    assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(ran, 1);
  fx_loop_free_clean(loop);
}

static bool evfd_readable(fut_loop_t *loop) {
  struct pollfd pf = {loop->evfd, POLLIN, 0};
  return poll(&pf, 1, 0) == 1;
}

/* The drain's read retries EINTR (else the counter stays set and the
 * next poll returns at once, for nothing); EAGAIN (nothing to reset) and
 * other failures lose no call. */
static void test_syscall_door_read_faults(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  int ran = 0;
  assert_int_equal(fx_call_soon_threadsafe_from_thread(loop, fx_count_cb, &ran),
                   0);
  assert_true(evfd_readable(loop));
  arm_fd(S_READ, loop->evfd, 0, 2, EINTR);
  assert_int_equal(fut_loop_run_once(loop, FUT_SEC(5)), 0);
  assert_int_equal(fd_left(S_READ), 0);
  assert_int_equal(ran, 1);
  assert_false(evfd_readable(loop)); /* reset by the retried read */
  for (int err = 0; err < 2; err++) {
    ran = 0;
    assert_int_equal(
        fx_call_soon_threadsafe_from_thread(loop, fx_count_cb, &ran), 0);
    arm_fd(S_READ, loop->evfd, 0, 1, err == 0 ? EAGAIN : EIO);
    assert_true(fx_run_until(loop, fx_int_nonzero, &ran, FUT_SEC(5)));
    assert_int_equal(fd_left(S_READ), 0);
    disarm_all();
    /* The counter left set is reset by the next drain. */
    for (int i = 0; i < 3 && evfd_readable(loop); i++)
      assert_int_equal(fut_loop_run_once(loop, 0), 0);
    assert_false(evfd_readable(loop));
    assert_int_equal(ran, 1);
  }
  fx_loop_free_clean(loop);
}

/* ---- the process pool: its doorbell, its worker sockets, fork ------------ */

/* Waits at most ms for w: its error, or 1 when it timed out. */
static int waiter_wait_ms(struct waiter *w, unsigned ms) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += ms / 1000;
  dl.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (dl.tv_nsec >= 1000000000L) {
    dl.tv_sec++;
    dl.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&w->lock);
  int r = 0;
  while (!w->done && r != ETIMEDOUT)
    r = pthread_cond_timedwait(&w->cv, &w->lock, &dl);
  bool done = w->done;
  pthread_mutex_unlock(&w->lock);
  return done ? w->err : 1;
}

static int64_t pool_square(fut_process_pool_t *p, int64_t n, int *err,
                           char *msg, size_t cap) {
  struct waiter w;
  waiter_init(&w);
  assert_int_equal(fut_process_pool_submit(p, job_square, &n, sizeof n,
                                           waiter_start, waiter_done, &w),
                   0);
  int rc = waiter_wait_ms(&w, 30000);
  assert_int_not_equal(rc, 1); /* not timed out */
  *err = rc;
  if (msg)
    snprintf(msg, cap, "%s", w.msg);
  int64_t r = 0;
  if (rc == 0) {
    assert_int_equal(w.len, sizeof r);
    memcpy(&r, w.data, sizeof r);
  }
  waiter_destroy(&w);
  return r;
}

static fut_process_pool_t *pool_new(unsigned workers) {
  fut_process_pool_opts_t o;
  fut_process_pool_opts_init(&o);
  o.max_workers = workers;
  fut_process_pool_t *p = NULL;
  assert_int_equal(fut_process_pool_create(&o, &p), 0);
  return p;
}

/* The manager sleeps in poll when it has nothing to do; up to 5 s.
 * `sleeping` stays set while the manager handles what woke it (until
 * poll_all returns), so it must read set for 20 samples in a row, 1 ms
 * apart: the manager is then back in poll with nothing left to do. */
static bool manager_sleeps(fut_process_pool_t *p) {
  int in_a_row = 0;
  for (int i = 0; i < 5000 && in_a_row < 20; i++) {
    pthread_mutex_lock(&p->lock);
    bool s = p->sleeping && !p->rung;
    pthread_mutex_unlock(&p->lock);
    in_a_row = s ? in_a_row + 1 : 0;
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  return in_a_row >= 20;
}

/* Fds, threads and children back to what they were (the manager thread
 * and the fork server take a moment to go). */
static void assert_back_to(struct fx_accounts base) {
  struct fx_accounts now = fx_accounts_now();
  for (int i = 0;
       i < 5000 && (now.threads > base.threads || now.children > base.children);
       i++) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
    now = fx_accounts_now();
  }
  assert_int_equal(now.fds, base.fds);
  assert_int_equal(now.threads, base.threads);
  assert_int_equal(now.children, base.children);
}

/* Bug: submit's ring of the manager's doorbell was not retried on EINTR,
 * while `rung` said it was written: the manager slept in poll (no timeout)
 * with the job queued, which then never ran. */
static void test_syscall_pool_doorbell_write_eintr_retried(void **state) {
  (void)state;
  struct fx_accounts base = fx_accounts_now();
  fut_process_pool_t *p = pool_new(1);
  int err;
  assert_int_equal(pool_square(p, 3, &err, NULL, 0), 9);
  assert_int_equal(err, 0);
  assert_true(manager_sleeps(p));
  arm_fd(S_WRITE, p->evfd, 0, 1, EINTR);
  struct waiter w;
  waiter_init(&w);
  int64_t n = 4;
  assert_int_equal(fut_process_pool_submit(p, job_square, &n, sizeof n,
                                           waiter_start, waiter_done, &w),
                   0);
  int rc = waiter_wait_ms(&w, 10000);
  assert_int_equal(fd_left(S_WRITE), 0); /* the EINTR happened */
  disarm_all();
  if (rc == 1) {
    /* Wake the manager by hand so the pool can go, then fail. */
    uint64_t one = 1;
    assert_int_equal(write(p->evfd, &one, sizeof one), (ssize_t)sizeof one);
    waiter_wait(&w);
    waiter_destroy(&w);
    fut_process_pool_destroy(p);
    fail_msg("a job submitted while the doorbell's write was interrupted "
             "did not run within 10 s");
  }
  assert_int_equal(rc, 0);
  int64_t r;
  memcpy(&r, w.data, sizeof r);
  assert_int_equal(r, 16);
  waiter_destroy(&w);
  fut_process_pool_destroy(p);
  assert_back_to(base);
}

/* The manager's reads of a worker socket: EINTR is retried and EAGAIN
 * waits for the next poll (no result lost); any other failure closes the
 * worker, whose job fails with an error naming it, and the next job runs
 * on a new worker. */
static void test_syscall_pool_worker_read_faults(void **state) {
  (void)state;
  struct fx_accounts base = fx_accounts_now();
  fut_process_pool_t *p = pool_new(1);
  int err;
  assert_int_equal(pool_square(p, 2, &err, NULL, 0), 4);
  /* Armed once the manager sleeps: the job's callback runs inside the
   * manager's read loop, whose next read (EAGAIN: nothing more) must not
   * take the fault meant for the next job's result. */
  assert_true(manager_sleeps(p));
  arm_fd(S_READ, ANY_STREAM_SOCKET, 0, 3, EINTR);
  for (int64_t i = 0; i < 5; i++) {
    assert_int_equal(pool_square(p, i, &err, NULL, 0), i * i);
    assert_int_equal(err, 0);
  }
  assert_int_equal(fd_left(S_READ), 0);
  assert_true(manager_sleeps(p));
  arm_fd(S_READ, ANY_STREAM_SOCKET, 0, 2, EAGAIN);
  for (int64_t i = 0; i < 3; i++) {
    assert_int_equal(pool_square(p, i, &err, NULL, 0), i * i);
    assert_int_equal(err, 0);
  }
  assert_int_equal(fd_left(S_READ), 0);
  char msg[512];
  assert_true(manager_sleeps(p));
  arm_fd(S_READ, ANY_STREAM_SOCKET, 0, 1, EIO);
  int64_t r = pool_square(p, 5, &err, msg, sizeof msg);
  assert_int_equal(fd_left(S_READ), 0);
  disarm_all();
  /* `sleeping` is still set while the manager finishes the read loop that
   * delivered the previous result, so the EIO may hit that loop's last
   * read (the idle worker is closed, the job runs on its replacement)
   * rather than the read of this job's result (the job fails, saying
   * which worker).  Either way nothing hangs and nothing is lost. */
  if (err == 0) {
    assert_int_equal(r, 25);
  } else {
    assert_true(err < 0);
    assert_non_null(strstr(msg, "worker"));
  }
  assert_int_equal(pool_square(p, 6, &err, NULL, 0), 36);
  assert_int_equal(err, 0);
  fut_process_pool_destroy(p);
  assert_back_to(base);
}

/* fork in the fork server: EAGAIN (a passing process limit) is retried
 * with back-off and the job runs; ENOMEM that lasts fails the waiting
 * jobs with that code and a message naming fork, and the pool is
 * destroyed clean. */
static void test_syscall_pool_fork_eagain_retried(void **state) {
  (void)state;
  struct fx_accounts base = fx_accounts_now();
  arm_server_fork(EAGAIN, 0, 3);
  fut_process_pool_t *p = pool_new(1);
  unsetenv(FORK_FAULT_ENV); /* read by the server at its first fork */
  int err;
  assert_int_equal(pool_square(p, 7, &err, NULL, 0), 49);
  assert_int_equal(err, 0);
  fut_process_pool_destroy(p);
  assert_back_to(base);
}

static void test_syscall_pool_fork_enomem_fails_jobs(void **state) {
  (void)state;
  struct fx_accounts base = fx_accounts_now();
  arm_server_fork(ENOMEM, 0, 1 << 30);
  fut_process_pool_t *p = pool_new(2);
  unsetenv(FORK_FAULT_ENV);
  int err;
  char msg[512];
  pool_square(p, 7, &err, msg, sizeof msg);
  assert_int_equal(err, -ENOMEM);
  assert_non_null(strstr(msg, "fork"));
  /* Later jobs try again, and fail the same way: no hang. */
  pool_square(p, 8, &err, msg, sizeof msg);
  assert_int_equal(err, -ENOMEM);
  fut_process_pool_destroy(p);
  assert_back_to(base);
}

/* posix_spawn of the fork server: its error is the creation's, with
 * nothing left behind. */
static void test_syscall_pool_server_spawn_failure(void **state) {
  (void)state;
  struct fx_accounts base = fx_accounts_now();
  static const int errs[] = {EAGAIN, ENOMEM};
  for (size_t i = 0; i < 2; i++) {
    fut_process_pool_t *p = (fut_process_pool_t *)1;
    spawn_fault = (struct fault){0, 1, errs[i], 0};
    assert_int_equal(fut_process_pool_create(NULL, &p), -errs[i]);
    assert_int_equal(spawn_fault.calls, 1);
    assert_null(p);
    assert_back_to(base);
  }
  disarm_all();
  fut_process_pool_t *p = pool_new(1);
  int err;
  assert_int_equal(pool_square(p, 5, &err, NULL, 0), 25);
  fut_process_pool_destroy(p);
  assert_back_to(base);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(
          test_syscall_loop_new_reports_eventfd_and_epoll_failures, teardown),
      cmocka_unit_test_teardown(
          test_syscall_add_reader_reports_epoll_ctl_failure, teardown),
      cmocka_unit_test_teardown(test_syscall_epoll_wait_eintr_retried,
                                teardown),
      cmocka_unit_test_teardown(test_syscall_no_epoll_pwait2_timers_never_early,
                                teardown),
      cmocka_unit_test_teardown(test_syscall_run_without_sigint_pipe, teardown),
      cmocka_unit_test_teardown(
          test_syscall_process_pool_reports_socketpair_failure, teardown),
      cmocka_unit_test_teardown(test_syscall_door_write_eintr_retried,
                                teardown),
      cmocka_unit_test_teardown(test_syscall_door_write_error_reported,
                                teardown),
      cmocka_unit_test_teardown(test_syscall_door_read_faults, teardown),
      cmocka_unit_test_teardown(test_syscall_pool_doorbell_write_eintr_retried,
                                teardown),
      cmocka_unit_test_teardown(test_syscall_pool_worker_read_faults, teardown),
      cmocka_unit_test_teardown(test_syscall_pool_fork_eagain_retried,
                                teardown),
      cmocka_unit_test_teardown(test_syscall_pool_fork_enomem_fails_jobs,
                                teardown),
      cmocka_unit_test_teardown(test_syscall_pool_server_spawn_failure,
                                teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
