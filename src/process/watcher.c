/* The child watcher (asyncio's PidfdChildWatcher, with a polling fallback
 * instead of ThreadedChildWatcher's thread per child).
 *
 * Each child this layer started is in the loop's live list until reaped.
 * With a pidfd (Linux 5.3), the loop watches it: it becomes readable when
 * the child exits, and waitpid(pid, WNOHANG) then reaps exactly that child.
 * Without one (ENOSYS on an older kernel, EMFILE, a seccomp filter), a
 * timer polls waitpid(pid, WNOHANG) for each such child, every 1 ms at
 * first and backing off to 10 ms.  Never waitpid(-1): the process pool's
 * fork server, the program's own children and a signal handler's keep
 * theirs.  The pid cannot be reused under us: it stays a zombie until we
 * reap it. */
#include "process/internal.h"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif

/* The poll's first and longest interval. */
#define POLL_MIN_NS ((uint64_t)1000000)
#define POLL_MAX_NS ((uint64_t)10000000)

static int sys_pidfd_open(pid_t pid, unsigned flags) {
  return (int)syscall(__NR_pidfd_open, pid, flags);
}

int (*fut__sys_pidfd_open)(pid_t pid, unsigned flags) = sys_pidfd_open;

struct state {
  struct fut__qnode live; /* processes not yet reaped (p->node) */
  size_t npolled;         /* of them, those without a pidfd */
  fut_handle_t *poll;     /* the poll timer while npolled > 0, or NULL */
  uint64_t poll_ns;       /* its next interval */
};

static int proc_part = -1;

/* Status from waitpid as asyncio's returncode. */
static int decode(int st) {
  if (WIFSIGNALED(st))
    return -WTERMSIG(st);
  if (WIFEXITED(st))
    return WEXITSTATUS(st);
  return 255;
}

static void unwatch(struct state *s, fut_process_t *p) {
  fut__q_remove(&p->node);
  if (p->pidfd >= 0) {
    fut_loop_remove_reader(p->loop, p->pidfd);
    close(p->pidfd);
    p->pidfd = -1;
  }
  if (p->polled) {
    p->polled = false;
    s->npolled--;
  }
}

/* The child exited (or vanished): it leaves the watcher. */
static void reaped(fut_process_t *p, int code) {
  struct state *s = fut__loop_part(p->loop, proc_part);
  unwatch(s, p);
  fut__process_exited(p, code);
  fut_process_unref(p); /* the watcher's */
}

/* Reaps p's child if it exited.  True when it is gone. */
static bool try_reap(fut_process_t *p, int flags) {
  int st = 0;
  for (;;) {
    pid_t r = waitpid(p->pid, &st, flags);
    if (r == p->pid) {
      reaped(p, decode(st));
      return true;
    }
    if (r == 0)
      return false;
    if (errno == EINTR)
      continue;
    /* ECHILD: someone reaped it behind our back (SIGCHLD set to SIG_IGN,
     * or a waitpid(-1) elsewhere): asyncio reports 255. */
    fut__report_exception(p->loop, "unknown child process: cannot reap it",
                          -errno, NULL, NULL,
                          "the program reaped it (SIGCHLD ignored?): its "
                          "code is reported as 255");
    reaped(p, 255);
    return true;
  }
}

static void on_pidfd(void *arg) {
  (void)try_reap(arg, WNOHANG);
}

static void poll_cb(void *arg);

static int arm_poll(fut_loop_t *loop, struct state *s) {
  if (s->poll)
    return 0;
  return fut__call_later_nocapture(loop, s->poll_ns, poll_cb, loop, &s->poll);
}

static void poll_cb(void *arg) {
  fut_loop_t *loop = arg;
  struct state *s = fut__loop_part(loop, proc_part);
  fut_handle_unref(s->poll);
  s->poll = NULL;
  struct fut__qnode *n = s->live.next;
  while (n != &s->live) {
    struct fut__qnode *next = n->next;
    fut_process_t *p = fut__container_of(n, fut_process_t, node);
    if (p->polled)
      (void)try_reap(p, WNOHANG);
    n = next;
  }
  if (!s->npolled)
    return;
  s->poll_ns = s->poll_ns * 2 > POLL_MAX_NS ? POLL_MAX_NS : s->poll_ns * 2;
  if (arm_poll(loop, s)) {
    /* No memory for the timer: try again from the next tick rather than
     * never. */
    (void)fut__call_soon_nocapture(loop, poll_cb, loop, &s->poll);
  }
}

/* Loop close: every child still running is killed and reaped (no zombie,
 * never a hang: SIGKILL cannot be caught). */
static void proc_close(fut_loop_t *loop, void *state) {
  struct state *s = state;
  (void)loop;
  while (!fut__q_empty(&s->live)) {
    fut_process_t *p =
        fut__container_of(fut__q_first(&s->live), fut_process_t, node);
    (void)kill(p->pid, SIGKILL);
    fut__child_reap_now(p);
  }
  if (s->poll) {
    fut_handle_cancel(s->poll);
    fut_handle_unref(s->poll);
  }
  fut__free(s);
}

/* fut_loop_fork, in the child: the children we watch are the parent's,
 * not this process's.  They leave the watcher as if reaped with 255
 * (asyncio's unknown child), without a report: waiters wake, and
 * send_signal answers -ESRCH, so a forked child never signals its parent's
 * children through a copied handle.  The pidfds were copied by fork: ours
 * to close. */
static void proc_forked(fut_loop_t *loop, void *state) {
  struct state *s = state;
  (void)loop;
  while (!fut__q_empty(&s->live))
    reaped(fut__container_of(fut__q_first(&s->live), fut_process_t, node), 255);
  if (s->poll) {
    fut_handle_cancel(s->poll);
    fut_handle_unref(s->poll);
    s->poll = NULL;
  }
}

__attribute__((constructor)) static void proc_part_init(void) {
  static const struct fut__loop_part part = {.name = "process",
                                             .rank = FUT__RANK_PROCESS,
                                             .close = proc_close,
                                             .forked = proc_forked};
  proc_part = fut__loop_part_register(&part);
}

static struct state *get_state(fut_loop_t *loop) {
  struct state *s = fut__loop_part(loop, proc_part);
  if (s)
    return s;
  s = fut__calloc(1, sizeof *s);
  if (!s) {
    fut__error(-ENOMEM, "out of memory for the loop's child watcher");
    return NULL;
  }
  fut__q_init(&s->live);
  fut__loop_part_set(loop, proc_part, s);
  return s;
}

void fut__child_reap_now(fut_process_t *p) {
  (void)try_reap(p, 0);
}

int fut__child_watch(fut_process_t *p) {
  struct state *s = get_state(p->loop);
  if (!s)
    return -ENOMEM;
  fut__q_insert_tail(&s->live, &p->node);
  p->pidfd = fut__sys_pidfd_open(p->pid, 0);
  if (p->pidfd >= 0) {
    if (fut_loop_add_reader(p->loop, p->pidfd, on_pidfd, p) == 0)
      return 0;
    close(p->pidfd);
    p->pidfd = -1;
  }
  /* No pidfd: poll this child, from 1 ms again (a new child is the likely
   * one to exit soon). */
  p->polled = true;
  s->npolled++;
  s->poll_ns = POLL_MIN_NS;
  if (s->poll) {
    fut_handle_cancel(s->poll);
    fut_handle_unref(s->poll);
    s->poll = NULL;
  }
  int err = arm_poll(p->loop, s);
  if (err) {
    fut__q_remove(&p->node);
    p->polled = false;
    s->npolled--;
  }
  return err;
}
