/* Signal handlers on the loop: delivery from raise() and kill() as an
 * ordinary callback, replacement and removal, coalescing, the disposition
 * put back after the last removal, several loops in several threads, the
 * refused signal numbers, loop close, and a forked child. */
#include "fixture.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/internal.h" /* fut__alloc_fail_after */

/* From signal/internal.h (which needs the task layer's build flags). */
void fut__sig_child_reset(void);

/* What a handler saw when it ran. */
struct seen {
  fut_loop_t *loop; /* the loop expected to run it */
  int count;        /* runs */
  bool on_loop;     /* every run: fut_get_running_loop() was loop */
  bool unblocked;   /* every run: the signal was not blocked, as it would
                       be inside a signal handler */
  int signo;
};

static void seen_cb(void *p) {
  struct seen *s = p;
  sigset_t cur;
  pthread_sigmask(SIG_SETMASK, NULL, &cur);
  if (s->count == 0)
    s->on_loop = s->unblocked = true;
  s->on_loop &= fut_get_running_loop() == s->loop;
  s->unblocked &= !sigismember(&cur, s->signo);
  s->count++;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Runs loop for a few short iterations (no waiting for a signal). */
static void spin(fut_loop_t *loop, int n) {
  for (int i = 0; i < n; i++)
    assert_int_equal(fut_loop_run_once(loop, FUT_MS(1)), 0);
}

static void test_signal_raise_runs_on_loop(void **state) {
  fut_loop_t *loop = *state;
  struct seen s = {.loop = loop, .signo = SIGUSR1};
  assert_int_equal(fut_loop_add_signal_handler(loop, SIGUSR1, seen_cb, &s), 0);
  assert_int_equal(raise(SIGUSR1), 0);
  assert_int_equal(s.count, 0); /* nothing ran inside the signal */
  assert_true(fx_run_until(loop, fx_int_nonzero, &s.count, FUT_SEC(5)));
  assert_int_equal(s.count, 1);
  assert_true(s.on_loop);
  assert_true(s.unblocked);
  assert_int_equal(fut_loop_remove_signal_handler(loop, SIGUSR1), 1);
  assert_int_equal(fut_loop_remove_signal_handler(loop, SIGUSR1), 0);
}

static void test_signal_kill_self_runs_handler(void **state) {
  fut_loop_t *loop = *state;
  struct seen s = {.loop = loop, .signo = SIGUSR2};
  assert_int_equal(fut_loop_add_signal_handler(loop, SIGUSR2, seen_cb, &s), 0);
  assert_int_equal(kill(getpid(), SIGUSR2), 0);
  assert_true(fx_run_until(loop, fx_int_nonzero, &s.count, FUT_SEC(5)));
  assert_true(s.on_loop);
  assert_true(s.unblocked);
  /* And a second time: the handler stays. */
  assert_int_equal(kill(getpid(), SIGUSR2), 0);
  int two = 0;
  while (s.count < 2 && two++ < 500)
    assert_int_equal(fut_loop_run_once(loop, FUT_MS(10)), 0);
  assert_int_equal(s.count, 2);
  assert_int_equal(fut_loop_remove_signal_handler(loop, SIGUSR2), 1);
}

static void test_signal_handler_replaced(void **state) {
  fut_loop_t *loop = *state;
  int first = 0, second = 0;
  assert_int_equal(
      fut_loop_add_signal_handler(loop, SIGUSR1, fx_count_cb, &first), 0);
  assert_int_equal(
      fut_loop_add_signal_handler(loop, SIGUSR1, fx_count_cb, &second), 0);
  raise(SIGUSR1);
  assert_true(fx_run_until_flag(loop, &second));
  spin(loop, 3);
  assert_int_equal(first, 0);
  assert_int_equal(second, 1);
  /* A delivery already queued runs the replacement. */
  raise(SIGUSR1);
  assert_int_equal(fut_loop_run_once(loop, 0), 0); /* queues the delivery */
  assert_int_equal(
      fut_loop_add_signal_handler(loop, SIGUSR1, fx_count_cb, &first), 0);
  spin(loop, 3);
  assert_int_equal(first, 1);
  assert_int_equal(second, 1);
  assert_int_equal(fut_loop_remove_signal_handler(loop, SIGUSR1), 1);
}

static void test_signal_removed_handler_does_not_run(void **state) {
  fut_loop_t *loop = *state;
  int ran = 0;
  assert_int_equal(
      fut_loop_add_signal_handler(loop, SIGUSR1, fx_count_cb, &ran), 0);
  /* Keep the disposition ours once the handler goes, so the second raise
   * below does not kill the test: another loop watches too. */
  fut_loop_t *other;
  assert_int_equal(fut_loop_new(&other), 0);
  int other_ran = 0;
  assert_int_equal(
      fut_loop_add_signal_handler(other, SIGUSR1, fx_count_cb, &other_ran), 0);
  raise(SIGUSR1);
  assert_int_equal(fut_loop_run_once(loop, 0), 0); /* queues the delivery */
  assert_int_equal(fut_loop_remove_signal_handler(loop, SIGUSR1), 1);
  spin(loop, 3);
  assert_int_equal(ran, 0);
  /* Removed before the signal: nothing either. */
  raise(SIGUSR1);
  spin(loop, 3);
  assert_int_equal(ran, 0);
  assert_true(fx_run_until_flag(other, &other_ran));
  assert_int_equal(fut_loop_remove_signal_handler(other, SIGUSR1), 1);
  fx_loop_free_clean(other);
}

static void test_signal_deliveries_coalesce(void **state) {
  fut_loop_t *loop = *state;
  int ran = 0;
  assert_int_equal(
      fut_loop_add_signal_handler(loop, SIGUSR1, fx_count_cb, &ran), 0);
  for (int i = 0; i < 5; i++)
    raise(SIGUSR1);
  assert_true(fx_run_until_flag(loop, &ran));
  spin(loop, 3);
  assert_int_equal(ran, 1);
  /* A later signal is a new batch. */
  raise(SIGUSR1);
  spin(loop, 3);
  assert_int_equal(ran, 2);
  assert_int_equal(fut_loop_remove_signal_handler(loop, SIGUSR1), 1);
}

/* ---- dispositions ----------------------------------------------------------
 */

static volatile sig_atomic_t marker_hits;
static void marker(int signo) {
  (void)signo;
  marker_hits++;
}

static struct sigaction current(int signo) {
  struct sigaction sa;
  assert_int_equal(sigaction(signo, NULL, &sa), 0);
  return sa;
}

static void test_signal_disposition_restored(void **state) {
  fut_loop_t *loop = *state;
  struct sigaction mine, before;
  memset(&mine, 0, sizeof mine);
  mine.sa_handler = marker;
  sigemptyset(&mine.sa_mask);
  sigaddset(&mine.sa_mask, SIGUSR2);
  mine.sa_flags = SA_NODEFER;
  assert_int_equal(sigaction(SIGUSR1, &mine, &before), 0);

  fut_loop_t *other;
  assert_int_equal(fut_loop_new(&other), 0);
  int a = 0, b = 0;
  assert_int_equal(fut_loop_add_signal_handler(loop, SIGUSR1, fx_count_cb, &a),
                   0);
  assert_true(current(SIGUSR1).sa_handler != marker);
  assert_int_equal(fut_loop_add_signal_handler(other, SIGUSR1, fx_count_cb, &b),
                   0);
  assert_int_equal(fut_loop_remove_signal_handler(loop, SIGUSR1), 1);
  assert_true(current(SIGUSR1).sa_handler != marker); /* other still has one */
  assert_int_equal(fut_loop_remove_signal_handler(other, SIGUSR1), 1);
  struct sigaction now = current(SIGUSR1);
  assert_true(now.sa_handler == marker);
  assert_int_equal(now.sa_flags & SA_NODEFER, SA_NODEFER);
  assert_true(sigismember(&now.sa_mask, SIGUSR2));
  marker_hits = 0;
  raise(SIGUSR1);
  assert_int_equal(marker_hits, 1);
  assert_int_equal(a + b, 0);

  /* From SIG_IGN and back. */
  signal(SIGUSR1, SIG_IGN);
  assert_int_equal(fut_loop_add_signal_handler(loop, SIGUSR1, fx_count_cb, &a),
                   0);
  raise(SIGUSR1); /* no longer ignored: ours */
  assert_true(fx_run_until_flag(loop, &a));
  assert_int_equal(fut_loop_remove_signal_handler(loop, SIGUSR1), 1);
  assert_true(current(SIGUSR1).sa_handler == SIG_IGN);

  /* Somebody replaced ours meanwhile: theirs stays at the last removal. */
  assert_int_equal(fut_loop_add_signal_handler(loop, SIGUSR1, fx_count_cb, &a),
                   0);
  signal(SIGUSR1, marker);
  assert_int_equal(fut_loop_remove_signal_handler(loop, SIGUSR1), 1);
  assert_true(current(SIGUSR1).sa_handler == marker);

  /* Adding again puts ours back in place (asyncio installs its handler
   * at every add), and the replacement is what the removal restores. */
  a = 0;
  assert_int_equal(fut_loop_add_signal_handler(loop, SIGUSR1, fx_count_cb, &a),
                   0);
  signal(SIGUSR1, SIG_IGN);
  assert_int_equal(fut_loop_add_signal_handler(loop, SIGUSR1, fx_count_cb, &a),
                   0);
  assert_true(current(SIGUSR1).sa_handler != SIG_IGN);
  raise(SIGUSR1);
  assert_true(fx_run_until_flag(loop, &a));
  assert_int_equal(fut_loop_remove_signal_handler(loop, SIGUSR1), 1);
  assert_true(current(SIGUSR1).sa_handler == SIG_IGN);

  assert_int_equal(sigaction(SIGUSR1, &before, NULL), 0);
  fx_loop_free_clean(other);
}

/* ---- several loops ---------------------------------------------------------
 */

struct loop_thread {
  pthread_barrier_t *ready; /* both loops watch: the main thread signals */
  int signo;
  int count;  /* handler runs */
  int result; /* 0, or what went wrong */
};

static void *loop_thread_main(void *p) {
  struct loop_thread *t = p;
  fut_loop_t *loop = NULL;
  t->result = fut_loop_new(&loop);
  if (t->result == 0)
    t->result =
        fut_loop_add_signal_handler(loop, t->signo, fx_count_cb, &t->count);
  pthread_barrier_wait(t->ready);
  uint64_t deadline = now_ns() + FUT_SEC(5);
  while (t->result == 0 && t->count == 0 && now_ns() < deadline)
    t->result = fut_loop_run_once(loop, FUT_MS(10));
  if (t->result == 0 && t->count == 0)
    t->result = -ETIMEDOUT;
  /* The other thread may still be waiting: keep the disposition until
   * both saw the signal. */
  pthread_barrier_wait(t->ready);
  if (loop && fut_loop_remove_signal_handler(loop, t->signo) != 1 &&
      t->result == 0)
    t->result = -EINVAL;
  fut_loop_free(loop);
  return NULL;
}

static void test_signal_two_loops_both_notified(void **state) {
  (void)state;
  pthread_barrier_t ready;
  pthread_barrier_init(&ready, NULL, 3);
  struct loop_thread t[2] = {{&ready, SIGUSR1, 0, 0}, {&ready, SIGUSR1, 0, 0}};
  pthread_t th[2];
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_create(&th[i], NULL, loop_thread_main, &t[i]), 0);
  pthread_barrier_wait(&ready);
  assert_int_equal(kill(getpid(), SIGUSR1), 0);
  pthread_barrier_wait(&ready);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(t[i].result, 0);
    assert_int_equal(t[i].count, 1);
  }
  pthread_barrier_destroy(&ready);
  assert_true(current(SIGUSR1).sa_handler == SIG_DFL);
}

/* ---- errors ----------------------------------------------------------------
 */

static void test_signal_refused_numbers(void **state) {
  fut_loop_t *loop = *state;
  int fds = fx_open_fds();
  int bad[] = {SIGKILL, SIGSTOP, 0, 65, -1, 1000};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(
        fut_loop_add_signal_handler(loop, bad[i], fx_fail_cb, NULL), -EINVAL);
    assert_true(fut_last_error()[0] != '\0');
  }
  assert_int_equal(fut_loop_add_signal_handler(loop, SIGKILL, fx_fail_cb, NULL),
                   -EINVAL);
  assert_non_null(strstr(fut_last_error(), "SIGKILL"));
  assert_int_equal(fut_loop_add_signal_handler(loop, 65, fx_fail_cb, NULL),
                   -EINVAL);
  assert_non_null(strstr(fut_last_error(), "out of range"));
  /* The C library's own (NPTL's cancellation signal): sigaction says no. */
  assert_int_equal(fut_loop_add_signal_handler(loop, 32, fx_fail_cb, NULL),
                   -EINVAL);
  assert_non_null(strstr(fut_last_error(), "32"));
  assert_int_equal(fut_loop_add_signal_handler(NULL, SIGUSR1, fx_fail_cb, NULL),
                   -EINVAL);
  assert_int_equal(fut_loop_add_signal_handler(loop, SIGUSR1, NULL, NULL),
                   -EINVAL);
  assert_int_equal(fut_loop_remove_signal_handler(loop, 0), -EINVAL);
  assert_int_equal(fut_loop_remove_signal_handler(loop, 65), -EINVAL);
  assert_int_equal(fut_loop_remove_signal_handler(NULL, SIGUSR1), -EINVAL);
  /* asyncio: removing an uncatchable one is "nothing was there". */
  assert_int_equal(fut_loop_remove_signal_handler(loop, SIGKILL), 0);
  assert_int_equal(fx_open_fds(), fds); /* a refusal leaves nothing */
  assert_true(current(SIGUSR1).sa_handler == SIG_DFL);
}

/* Out of memory for the loop's state: nothing changed. */
static void test_signal_add_out_of_memory_changes_nothing(void **state) {
  fut_loop_t *loop = *state;
  int fds = fx_open_fds();
  fut__alloc_fail_after(1, true);
  int err = fut_loop_add_signal_handler(loop, SIGUSR1, fx_fail_cb, NULL);
  fut__alloc_fail_after(0, false);
  assert_int_equal(err, -ENOMEM);
  assert_int_equal(fx_open_fds(), fds);
  assert_true(current(SIGUSR1).sa_handler == SIG_DFL);
  assert_int_equal(fut_loop_remove_signal_handler(loop, SIGUSR1), 0);
}

struct foreign_call {
  fut_loop_t *loop;
  int add, remove;
};
static void *foreign_thread(void *p) {
  struct foreign_call *c = p;
  c->add = fut_loop_add_signal_handler(c->loop, SIGUSR1, fx_fail_cb, NULL);
  c->remove = fut_loop_remove_signal_handler(c->loop, SIGUSR1);
  return NULL;
}

/* Debug mode: another thread's calls are refused, as for every loop
 * call. */
static void test_signal_wrong_thread_refused(void **state) {
  fut_loop_t *loop = *state;
  fut_loop_set_debug(loop, true);
  struct foreign_call c = {loop, 0, 0};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, foreign_thread, &c), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_int_equal(c.add, FUT_E_WRONG_THREAD);
  assert_int_equal(c.remove, FUT_E_WRONG_THREAD);
  assert_true(current(SIGUSR1).sa_handler == SIG_DFL);
}

static void test_signal_fds_back_after_last_removal(void **state) {
  fut_loop_t *loop = *state;
  int fds = fx_open_fds(), a = 0;
  assert_int_equal(fut_loop_add_signal_handler(loop, SIGUSR1, fx_count_cb, &a),
                   0);
  assert_int_equal(fx_open_fds(), fds + 1); /* one eventfd per loop */
  assert_int_equal(fut_loop_add_signal_handler(loop, SIGUSR2, fx_count_cb, &a),
                   0);
  assert_int_equal(fx_open_fds(), fds + 1);
  assert_int_equal(fut_loop_remove_signal_handler(loop, SIGUSR1), 1);
  assert_int_equal(fx_open_fds(), fds + 1);
  assert_int_equal(fut_loop_remove_signal_handler(loop, SIGUSR2), 1);
  assert_int_equal(fx_open_fds(), fds);
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  assert_int_equal(st.watchers, 0);
}

static void test_signal_loop_close_removes_handlers(void **state) {
  (void)state;
  fut_loop_t *loop;
  assert_int_equal(fut_loop_new(&loop), 0);
  int a = 0;
  assert_int_equal(fut_loop_add_signal_handler(loop, SIGUSR1, fx_count_cb, &a),
                   0);
  assert_int_equal(fut_loop_add_signal_handler(loop, SIGTERM, fx_count_cb, &a),
                   0);
  raise(SIGUSR1);
  assert_int_equal(fut_loop_run_once(loop, 0), 0); /* a delivery queued */
  assert_true(current(SIGTERM).sa_handler != SIG_DFL);
  assert_int_equal(fut_loop_close(loop), 0);
  assert_true(current(SIGUSR1).sa_handler == SIG_DFL);
  assert_true(current(SIGTERM).sa_handler == SIG_DFL);
  assert_int_equal(a, 0);
  assert_int_equal(fut_loop_remove_signal_handler(loop, SIGUSR1), 0);
  assert_int_equal(fut_loop_add_signal_handler(loop, SIGUSR1, fx_count_cb, &a),
                   FUT_E_CLOSED);
  fx_loop_free_clean(loop);
}

/* A handler that removes itself (the loop's last one: the state goes) and
 * one that adds another signal's handler. */
struct self_remove {
  fut_loop_t *loop;
  int ran;
};
static void remove_self_cb(void *p) {
  struct self_remove *r = p;
  r->ran++;
  assert_int_equal(fut_loop_remove_signal_handler(r->loop, SIGUSR1), 1);
}

static void test_signal_handler_removes_itself(void **state) {
  fut_loop_t *loop = *state;
  struct self_remove r = {loop, 0};
  assert_int_equal(
      fut_loop_add_signal_handler(loop, SIGUSR1, remove_self_cb, &r), 0);
  raise(SIGUSR1);
  assert_true(fx_run_until_flag(loop, &r.ran));
  assert_true(current(SIGUSR1).sa_handler == SIG_DFL);
}

/* fut_run installs asyncio.Runner's SIGINT handler; main's own handler
 * replaces it for the run (as in asyncio), and afterwards SIGINT is back
 * to SIG_DFL. */
static int sigint_main(void *arg) {
  int *ran = arg;
  int err = fut_loop_add_signal_handler(fut_get_running_loop(), SIGINT,
                                        fx_count_cb, ran);
  if (err)
    return err;
  raise(SIGINT); /* the runner's handler would cancel main */
  for (int i = 0; i < 5000 && !*ran; i++)
    if ((err = fut_sleep(FUT_MS(1))))
      return err;
  return *ran == 1 ? 0 : -ETIMEDOUT;
}

static void test_signal_handler_inside_fut_run(void **state) {
  (void)state;
  int ran = 0;
  assert_true(current(SIGINT).sa_handler == SIG_DFL);
  assert_int_equal(fut_run(sigint_main, &ran, NULL), 0);
  assert_int_equal(ran, 1);
  assert_true(current(SIGINT).sa_handler == SIG_DFL);
}

/* ---- threads and children ----------------------------------------------- */

struct raiser {
  int signo;
};
static void *raise_in_thread(void *p) {
  struct raiser *r = p;
  raise(r->signo); /* thread-directed: the handler runs in this thread */
  return NULL;
}

static void stop_cb(void *p) {
  struct seen *s = p;
  seen_cb(s);
  fut_loop_stop(s->loop);
}

/* The loop blocks in run_forever with nothing else to do; a signal caught
 * by another thread wakes it and the callback runs on the loop's thread. */
static void test_signal_other_thread_wakes_blocked_loop(void **state) {
  fut_loop_t *loop = *state;
  struct seen s = {.loop = loop, .signo = SIGUSR1};
  assert_int_equal(fut_loop_add_signal_handler(loop, SIGUSR1, stop_cb, &s), 0);
  struct raiser r = {SIGUSR1};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, raise_in_thread, &r), 0);
  assert_int_equal(fut_loop_run_forever(loop), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_int_equal(s.count, 1);
  assert_true(s.on_loop);
  assert_int_equal(fut_loop_remove_signal_handler(loop, SIGUSR1), 1);
}

/* A storm of signals from another thread while loops come and go (each
 * taking and freeing a wakeup slot and an eventfd): a slot is never freed
 * under a handler (ASan, TSan), and the loop that stays is notified. */
struct storm {
  atomic_bool stop;
  int sent;
};
static void *storm_thread(void *p) {
  struct storm *s = p;
  while (!atomic_load(&s->stop) && s->sent < 100000) {
    kill(getpid(), SIGUSR2);
    s->sent++;
  }
  return NULL;
}

static void test_signal_storm_while_loops_come_and_go(void **state) {
  fut_loop_t *loop = *state;
  int anchor = 0;
  assert_int_equal(
      fut_loop_add_signal_handler(loop, SIGUSR2, fx_count_cb, &anchor), 0);
  struct storm s = {.sent = 0};
  atomic_init(&s.stop, false);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, storm_thread, &s), 0);
  for (int i = 0; i < 200; i++) {
    fut_loop_t *l;
    int ran = 0;
    assert_int_equal(fut_loop_new(&l), 0);
    assert_int_equal(fut_loop_add_signal_handler(l, SIGUSR2, fx_count_cb, &ran),
                     0);
    assert_int_equal(fut_loop_run_once(l, 0), 0);
    assert_int_equal(fut_loop_run_once(loop, 0), 0);
    if (i % 2)
      assert_int_equal(fut_loop_remove_signal_handler(l, SIGUSR2), 1);
    assert_int_equal(fut_loop_free(l), 0); /* closing removes it too */
  }
  atomic_store(&s.stop, true);
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_true(s.sent > 0);
  anchor = 0;
  raise(SIGUSR2);
  assert_true(fx_run_until_flag(loop, &anchor));
  assert_int_equal(fut_loop_remove_signal_handler(loop, SIGUSR2), 1);
}

/* Reads "Name:\t<hex>" from a /proc status text. */
static unsigned long long status_mask(const char *text, const char *name) {
  const char *p = strstr(text, name);
  assert_non_null(p);
  return strtoull(p + strlen(name), NULL, 16);
}

/* An exec'd child (a subprocess, the process pool's fork server) neither
 * catches the signal nor has it blocked: exec resets caught signals to
 * SIG_DFL, and the library never changes a thread's mask. */
static void test_signal_exec_child_inherits_nothing(void **state) {
  fut_loop_t *loop = *state;
  int ran = 0;
  assert_int_equal(
      fut_loop_add_signal_handler(loop, SIGUSR1, fx_count_cb, &ran), 0);
  static char text[8192];
  unsigned long long bit = 1ull << (SIGUSR1 - 1);
  FILE *f = fopen("/proc/self/status", "r"); /* ours: caught */
  assert_non_null(f);
  size_t n = fread(text, 1, sizeof text - 1, f);
  text[n] = '\0';
  fclose(f);
  assert_int_equal(status_mask(text, "SigCgt:") & bit, bit);
  fflush(NULL);
  f = popen("cat /proc/self/status", "r"); /* the exec'd child's */
  assert_non_null(f);
  n = fread(text, 1, sizeof text - 1, f);
  text[n] = '\0';
  assert_int_equal(pclose(f), 0);
  assert_int_equal(status_mask(text, "SigCgt:") & bit, 0);
  assert_int_equal(status_mask(text, "SigBlk:") & bit, 0);
  assert_int_equal(status_mask(text, "SigIgn:") & bit, 0);
  assert_int_equal(fut_loop_remove_signal_handler(loop, SIGUSR1), 1);
}

/* Between fork and exec, the process layer resets the library's
 * dispositions to what exec would give (SIG_DFL); others are untouched. */
static void test_signal_child_reset_before_exec(void **state) {
  fut_loop_t *loop = *state;
  int ran = 0;
  assert_int_equal(
      fut_loop_add_signal_handler(loop, SIGUSR1, fx_count_cb, &ran), 0);
  void (*old)(int) = signal(SIGUSR2, marker);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    fut__sig_child_reset();
    struct sigaction a, b;
    sigaction(SIGUSR1, NULL, &a);
    sigaction(SIGUSR2, NULL, &b);
    _exit(a.sa_handler == SIG_DFL && b.sa_handler == marker ? 0 : 1);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  signal(SIGUSR2, old);
  assert_true(current(SIGUSR1).sa_handler != SIG_DFL); /* the parent's */
  assert_int_equal(fut_loop_remove_signal_handler(loop, SIGUSR1), 1);
}

/* A forked child: before fut_loop_fork, a signal caught there does not
 * wake the parent's loop through the eventfd they share; after it, the
 * child's loop has a wakeup of its own. */
static void test_signal_forked_child(void **state) {
  fut_loop_t *loop = *state;
  int ran = 0;
  assert_int_equal(
      fut_loop_add_signal_handler(loop, SIGUSR1, fx_count_cb, &ran), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int code = 1;
    raise(SIGUSR1); /* the parent must not see this one */
    if (fut_loop_fork(loop) == 0) {
      raise(SIGUSR1);
      for (int i = 0; i < 500 && ran == 0; i++)
        if (fut_loop_run_once(loop, FUT_MS(10)) != 0)
          break;
      code = ran == 1 ? 0 : 2;
      fut_loop_remove_signal_handler(loop, SIGUSR1);
    }
    _exit(code);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  spin(loop, 3);
  assert_int_equal(ran, 0);
  raise(SIGUSR1);
  assert_true(fx_run_until_flag(loop, &ran));
  assert_int_equal(fut_loop_remove_signal_handler(loop, SIGUSR1), 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FX_LOOP_TEST(test_signal_raise_runs_on_loop),
      FX_LOOP_TEST(test_signal_kill_self_runs_handler),
      FX_LOOP_TEST(test_signal_handler_replaced),
      FX_LOOP_TEST(test_signal_removed_handler_does_not_run),
      FX_LOOP_TEST(test_signal_deliveries_coalesce),
      FX_LOOP_TEST(test_signal_disposition_restored),
      FX_LOOP_TEST(test_signal_two_loops_both_notified),
      FX_LOOP_TEST(test_signal_refused_numbers),
      FX_LOOP_TEST(test_signal_add_out_of_memory_changes_nothing),
      FX_LOOP_TEST(test_signal_wrong_thread_refused),
      FX_LOOP_TEST(test_signal_fds_back_after_last_removal),
      FX_LOOP_TEST(test_signal_loop_close_removes_handlers),
      FX_LOOP_TEST(test_signal_handler_removes_itself),
      FX_LOOP_TEST(test_signal_handler_inside_fut_run),
      FX_LOOP_TEST(test_signal_other_thread_wakes_blocked_loop),
      FX_LOOP_TEST(test_signal_storm_while_loops_come_and_go),
      FX_LOOP_TEST(test_signal_exec_child_inherits_nothing),
      FX_LOOP_TEST(test_signal_child_reset_before_exec),
      FX_LOOP_TEST(test_signal_forked_child),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
