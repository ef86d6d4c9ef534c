/* fut_run: asyncio.run for a task function, with asyncio.Runner's SIGINT
 * behaviour (the first ^C cancels main, a second one kills the process). */
#include "loop/internal.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- SIGINT ----------------------------------------------------------------
 * The handler only writes a byte to a pipe the loop watches: everything
 * else happens on the loop, in on_sigint_pipe. */

static volatile sig_atomic_t sigint_count;    /* ^C seen during this run */
static volatile sig_atomic_t sigint_wfd = -1; /* pipe write end, or -1 */

static void on_sigint(int sig) {
  int saved = errno;
  if (++sigint_count >= 2) {
    /* The second ^C: do what the default disposition would. */
    signal(sig, SIG_DFL);
    raise(sig);
  }
  if (sigint_wfd >= 0) {
    char c = 1;
    ssize_t w = write(sigint_wfd, &c, 1);
    (void)w;
  }
  errno = saved;
}

struct sigint_guard {
  int fds[2];           /* the pipe, -1 when not installed */
  struct sigaction old; /* the disposition to restore */
  fut_t *main;          /* borrowed: main's task */
  bool interrupted;     /* main was cancelled by ^C */
};

static void on_sigint_pipe(void *arg) {
  struct sigint_guard *g = arg;
  char buf[64];
  while (read(g->fds[0], buf, sizeof buf) > 0) {
  }
  if (!fut_done(g->main)) {
    g->interrupted = true;
    fut_cancel(g->main, "interrupted by SIGINT");
  }
}

/* As asyncio.Runner: only on the main thread, and only when nobody else
 * handles SIGINT. */
static void sigint_install(fut_loop_t *loop, struct sigint_guard *g) {
  g->fds[0] = g->fds[1] = -1;
  if (getpid() != (pid_t)syscall(SYS_gettid))
    return;
  struct sigaction cur;
  if (sigaction(SIGINT, NULL, &cur) != 0 || (cur.sa_flags & SA_SIGINFO) ||
      cur.sa_handler != SIG_DFL)
    return;
  if (pipe2(g->fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    g->fds[0] = g->fds[1] = -1;
    return;
  }
  if (fut_loop_add_reader(loop, g->fds[0], on_sigint_pipe, g) != 0) {
    close(g->fds[0]);
    close(g->fds[1]);
    g->fds[0] = g->fds[1] = -1;
    return;
  }
  sigint_count = 0;
  sigint_wfd = g->fds[1];
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, &g->old);
}

static void sigint_remove(fut_loop_t *loop, struct sigint_guard *g) {
  if (g->fds[0] < 0)
    return;
  sigaction(SIGINT, &g->old, NULL);
  sigint_wfd = -1;
  fut_loop_remove_reader(loop, g->fds[0]);
  close(g->fds[0]);
  close(g->fds[1]);
  g->fds[0] = g->fds[1] = -1;
}

/* ---- asyncio.run --------------------------------------------------------- */

/* asyncio.runners._cancel_all_tasks: cancel what is left, wait for it,
 * report failures nobody will see. */
static void cancel_all(fut_loop_t *loop) {
  size_t n = fut_all_tasks(loop, NULL, 0);
  if (n == 0)
    return;
  fut_t **ts = fut__calloc(n, sizeof *ts);
  if (!ts)
    return; /* fut_loop_close finishes them anyway */
  n = fut_all_tasks(loop, ts, n);
  for (size_t i = 0; i < n; i++) {
    fut_ref(ts[i]);
    fut_cancel(ts[i], NULL);
  }
  fut_t *g;
  if (fut_gather(loop, ts, n, FUT_GATHER_RETURN_EXCEPTIONS, &g) == 0) {
    fut_loop_run_until_complete(loop, g);
    fut_unref(g);
  }
  for (size_t i = 0; i < n; i++) {
    fut_t *t = ts[i];
    if (fut_done(t) && !fut_cancelled(t)) {
      const char *msg;
      int err = fut_exception(t, &msg);
      if (err)
        fut__report_exception(loop,
                              "unhandled exception during fut_run() "
                              "shutdown",
                              err, t, NULL, msg);
    }
    fut_unref(t);
  }
  fut__free(ts);
}

int fut_run(fut_task_fn main, void *arg, fut_t **out) {
  if (out)
    *out = NULL;
  if (!main)
    return fut__error(-EINVAL, "fut_run: NULL main");
  if (fut_get_running_loop())
    return fut__error(FUT_E_RUNNING, "fut_run: a loop is already running in "
                                     "this thread");
  fut_loop_t *loop;
  int err = fut_loop_new(&loop);
  if (err)
    return err;
  fut_task_opts_t opts;
  fut_task_opts_init(&opts);
  opts.name = "main";
  fut_t *task;
  if ((err = fut_create_task(loop, main, arg, &opts, &task))) {
    fut_loop_free(loop);
    return err;
  }
  struct sigint_guard g = {.main = task};
  sigint_install(loop, &g);
  err = fut_loop_run_until_complete(loop, task);
  cancel_all(loop);
  /* asyncio.run waits for the default executor, at most 300 s. */
  if (fut_loop_shutdown_default_executor(loop, FUT_SEC(300)) == -ETIMEDOUT)
    fut__report_exception(loop,
                          "the default executor did not finish "
                          "within 300 s",
                          -ETIMEDOUT, NULL, NULL, NULL);
  sigint_remove(loop, &g);
  if (g.interrupted && fut_cancelled(task))
    err = fut__error(-EINTR, "fut_run: main was cancelled by SIGINT");
  fut_loop_free(loop);
  if (out)
    *out = task;
  else
    fut_unref(task);
  return err;
}
