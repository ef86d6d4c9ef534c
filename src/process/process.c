/* The process object (asyncio.subprocess.Process): its code once reaped,
 * waiting for it, signals, its pipes, references. */
#include "process/internal.h"

#include <signal.h>
#include <stdlib.h>

pid_t fut_process_pid(const fut_process_t *p) {
  return p ? p->pid : 0;
}

bool fut_process_returncode(const fut_process_t *p, int *code) {
  if (!p || !p->reaped)
    return false;
  if (code)
    *code = p->code;
  return true;
}

fut_loop_t *fut_process_loop(const fut_process_t *p) {
  return p ? p->loop : NULL;
}

fut_writer_t *fut_process_stdin(const fut_process_t *p) {
  return p ? p->in : NULL;
}

fut_reader_t *fut_process_stdout(const fut_process_t *p) {
  return p ? p->out : NULL;
}

fut_reader_t *fut_process_stderr(const fut_process_t *p) {
  return p ? p->err : NULL;
}

fut_process_t *fut_process_ref(fut_process_t *p) {
  if (p)
    p->refs++;
  return p;
}

void fut_process_unref(fut_process_t *p) {
  if (!p || --p->refs)
    return;
  /* The watcher holds a reference until the child is reaped, so the
   * waiters were resolved and released already. */
  FUT__ASSERT(p->nwaiters == 0);
  fut__free(p->waiters);
  fut_writer_unref(p->in);
  fut_reader_unref(p->out);
  fut_reader_unref(p->err);
  fut__free(p);
}

/* ---- waiting --------------------------------------------------------------
 */

void fut__process_exited(fut_process_t *p, int code) {
  p->reaped = true;
  p->code = code;
  for (size_t i = 0; i < p->nwaiters; i++) {
    if (fut_state(p->waiters[i]) == FUT_PENDING)
      (void)fut_set_result_i64(p->waiters[i], code);
    fut_unref(p->waiters[i]);
  }
  p->nwaiters = 0;
}

/* Drops the waiters that are done (cancelled waits) so that a process
 * waited on and cancelled many times keeps a short list. */
static void prune(fut_process_t *p) {
  size_t k = 0;
  for (size_t i = 0; i < p->nwaiters; i++) {
    if (fut_done(p->waiters[i]))
      fut_unref(p->waiters[i]);
    else
      p->waiters[k++] = p->waiters[i];
  }
  p->nwaiters = k;
}

int fut_process_wait_future(fut_process_t *p, fut_t **out) {
  if (out)
    *out = NULL;
  if (!p || !out)
    return fut__error(-EINVAL, "fut_process_wait_future: NULL %s",
                      !p ? "process" : "out");
  fut_t *f;
  int err = fut_new(p->loop, &f);
  if (err)
    return err;
  if (p->reaped) {
    (void)fut_set_result_i64(f, p->code);
    *out = f;
    return 0;
  }
  prune(p);
  if (p->nwaiters == p->capwaiters) {
    size_t cap = p->capwaiters ? 2 * p->capwaiters : 4;
    fut_t **nw = fut__realloc(p->waiters, cap * sizeof *nw);
    if (!nw) {
      fut_unref(f);
      return fut__error(-ENOMEM, "out of memory waiting for a process");
    }
    p->waiters = nw;
    p->capwaiters = cap;
  }
  p->waiters[p->nwaiters++] = fut_ref(f);
  *out = f;
  return 0;
}

/* The running task, checked against p's loop. */
int fut__process_task_check(const fut_process_t *p, const char *what) {
  struct fut__task *t = fut__task_current(what);
  if (!t)
    return FUT_E_NOT_IN_TASK;
  if (!p)
    return fut__error(-EINVAL, "%s: NULL process", what);
  if (t->x.fut.loop != p->loop)
    return fut__error(FUT_E_OTHER_LOOP,
                      "%s: the process belongs to another loop", what);
  return 0;
}

int fut_process_wait(fut_process_t *p, int *code) {
  int err = fut__process_task_check(p, "fut_process_wait");
  if (err)
    return err;
  if (!p->reaped) {
    fut_t *f;
    if ((err = fut_process_wait_future(p, &f)))
      return err;
    int64_t v = 0;
    err = fut_await_i64(f, &v);
    fut_unref(f);
    if (err)
      return err;
  }
  if (code)
    *code = p->code;
  return 0;
}

/* ---- signals --------------------------------------------------------------
 */

int fut_process_send_signal(fut_process_t *p, int signo) {
  if (!p)
    return fut__error(-EINVAL, "fut_process_send_signal: NULL process");
  if (p->reaped)
    return fut__error(-ESRCH,
                      "fut_process_send_signal: process %ld already exited "
                      "(code %d): no signal sent",
                      (long)p->pid, p->code);
  /* kill(pid) is safe: the pid stays ours (a zombie at worst) until the
   * watcher reaps it, and only the watcher does. */
  if (kill(p->pid, signo) < 0)
    return fut__error(-errno, "fut_process_send_signal: kill(%ld, %d): %s",
                      (long)p->pid, signo, fut_strerror(-errno));
  return 0;
}

int fut_process_terminate(fut_process_t *p) {
  return fut_process_send_signal(p, SIGTERM);
}

int fut_process_kill(fut_process_t *p) {
  return fut_process_send_signal(p, SIGKILL);
}
