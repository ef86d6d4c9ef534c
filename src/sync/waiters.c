/* The waiting side shared by asyncio.locks' primitives: binding a primitive
 * to a loop, and a FIFO of waiters that live on the waiting tasks' stacks.
 *
 * A waiter is one future per waiting task (asyncio's `fut =
 * loop.create_future(); waiters.append(fut); await fut`).  Waking sets its
 * result, so the task resumes on the next loop iteration, as in asyncio;
 * cancelling the task cancels it.  Whether a waiter that was woken and then
 * cancelled before it ran passes its wake-up on is each primitive's rule. */
#include "sync/internal.h"

fut_loop_t *fut__sync_task_loop(fut_loop_t **bound, const char *what,
                                int *err) {
  struct fut__task *t = fut__task_current(what);
  if (!t) {
    *err = FUT_E_NOT_IN_TASK;
    return NULL;
  }
  fut_loop_t *loop = t->x.fut.loop;
  if (*bound && *bound != loop) {
    *err = fut__error(FUT_E_OTHER_LOOP,
                      "%s: the primitive is bound to another loop", what);
    return NULL;
  }
  *err = 0;
  return loop;
}

int fut__sync_check_loop(const fut_loop_t *bound, const char *what) {
  if (!bound)
    return 0;
  fut_loop_t *running = fut_get_running_loop();
  if (running && running != bound)
    return fut__error(FUT_E_OTHER_LOOP,
                      "%s: the primitive is bound to another loop", what);
  return 0;
}

bool fut__sync_stack_private(void) {
  return fut_task_is_compact(fut_current_task(NULL));
}

int fut__waiter_await(struct fut__qnode *list, struct fut__waiter *w) {
  fut__q_init(&w->node);
  /* A compact task's stack is not addressable while it waits
   * (FUT_TASK_COMPACT): the wakers walk a heap copy of the node. */
  struct fut__waiter *h = w;
  if (fut__sync_stack_private()) {
    if (!(h = fut__malloc(sizeof *h)))
      return fut__error(-ENOMEM, "out of memory for a waiter");
    h->fut = w->fut;
  }
  fut__q_insert_tail(list, &h->node);
  int err = fut_await(h->fut, NULL);
  fut__q_remove(&h->node);
  if (h != w)
    fut__free(h);
  return err;
}

int fut__waiter_wait(struct fut__qnode *list, struct fut__waiter *w,
                     fut_loop_t *loop) {
  fut__q_init(&w->node);
  int err = fut_new(loop, &w->fut);
  if (err)
    return err;
  return fut__waiter_await(list, w);
}

bool fut__waiter_woken(const struct fut__waiter *w) {
  return w->fut && fut_state(w->fut) == FUT_FINISHED;
}

void fut__waiter_release(struct fut__waiter *w) {
  fut_unref(w->fut);
  w->fut = NULL;
}

static struct fut__waiter *waiter_of(struct fut__qnode *n) {
  return fut__q_data(n, struct fut__waiter, node);
}

void fut__waiters_wake_head(struct fut__qnode *list) {
  struct fut__qnode *n = fut__q_first(list);
  if (n && !fut_done(waiter_of(n)->fut))
    fut_set_result(waiter_of(n)->fut, NULL, NULL);
}

size_t fut__waiters_wake(struct fut__qnode *list, size_t n) {
  size_t woken = 0;
  struct fut__qnode *q;
  FUT__Q_FOREACH(q, list) {
    if (woken >= n)
      break;
    fut_t *f = waiter_of(q)->fut;
    if (!fut_done(f)) {
      fut_set_result(f, NULL, NULL);
      woken++;
    }
  }
  return woken;
}

bool fut__waiters_any_live(const struct fut__qnode *list) {
  struct fut__qnode *q;
  FUT__Q_FOREACH(q, list) {
    if (!fut_cancelled(waiter_of(q)->fut))
      return true;
  }
  return false;
}

size_t fut__waiters_count(const struct fut__qnode *list) {
  size_t n = 0;
  struct fut__qnode *q;
  FUT__Q_FOREACH(q, list) n++;
  return n;
}
