/* asyncio.timeout for a block of awaits inside a task (3.12's Timeout):
 * the deadline cancels the task; leaving the block turns that cancellation
 * into -ETIMEDOUT when no other cancel request is outstanding, which
 * fut_task_uncancel's count tells. */
#include "task/internal.h"

enum { TO_ENTERED, TO_EXPIRING, TO_EXPIRED };

struct fut_timeout {
  fut_t *task;         /* reference to the task that entered */
  fut_handle_t *timer; /* pending deadline, or NULL */
  uint64_t when;       /* deadline (loop time), UINT64_MAX for none */
  unsigned cancelling; /* the task's cancelling() at enter */
  int state;           /* TO_* */
};

static void on_deadline(void *arg) {
  fut_timeout_t *t = arg;
  fut_handle_unref(t->timer);
  t->timer = NULL;
  if (t->state != TO_ENTERED || fut_done(t->task))
    return;
  t->state = TO_EXPIRING;
  fut_cancel(t->task, NULL);
}

int fut_timeout_reschedule(fut_timeout_t *t, uint64_t when) {
  if (!t)
    return fut__error(-EINVAL, "fut_timeout_reschedule: NULL timeout");
  if (t->state != TO_ENTERED)
    return fut__error(FUT_E_INVALID_STATE, "fut_timeout_reschedule: the "
                                           "timeout has already expired");
  fut__handle_clear(&t->timer);
  t->when = when;
  if (when == UINT64_MAX)
    return 0;
  fut_loop_t *loop = fut_get_loop(t->task);
  /* A deadline in the past fires on the next iteration, never inline. */
  if (when <= fut_loop_time(loop))
    return fut__call_soon_nocapture(loop, on_deadline, t, &t->timer);
  return fut__call_at_nocapture(loop, when, on_deadline, t, &t->timer);
}

int fut_timeout_enter(uint64_t delay_ns, fut_timeout_t **out) {
  if (!out)
    return fut__error(-EINVAL, "fut_timeout_enter: NULL out");
  *out = NULL;
  fut_t *task = fut_current_task(NULL);
  if (!task)
    return fut__error(FUT_E_NOT_IN_TASK, "fut_timeout_enter called outside "
                                         "a task");
  fut_timeout_t *t = fut__calloc(1, sizeof *t);
  if (!t)
    return fut__error(-ENOMEM, "fut_timeout_enter: out of memory");
  t->task = fut_ref(task);
  t->cancelling = fut_task_cancelling(task);
  t->state = TO_ENTERED;
  uint64_t when = UINT64_MAX;
  if (delay_ns != UINT64_MAX) {
    uint64_t now = fut_loop_time(fut_get_loop(task));
    when = delay_ns > UINT64_MAX - 1 - now ? UINT64_MAX - 1 : now + delay_ns;
  }
  int err = fut_timeout_reschedule(t, when);
  if (err) {
    fut_unref(t->task);
    fut__free(t);
    return err;
  }
  *out = t;
  return 0;
}

uint64_t fut_timeout_when(const fut_timeout_t *t) {
  return t ? t->when : UINT64_MAX;
}

bool fut_timeout_expired(const fut_timeout_t *t) {
  return t && t->state != TO_ENTERED;
}

int fut_timeout_exit(fut_timeout_t *t, int err) {
  if (!t)
    return err;
  fut__handle_clear(&t->timer);
  if (t->state == TO_EXPIRING) {
    t->state = TO_EXPIRED;
    /* Ours was the only cancel request since enter: the block's
     * cancellation is the timeout. */
    if (fut_task_uncancel(t->task) <= t->cancelling && err == -ECANCELED)
      err = fut__error(-ETIMEDOUT, "the timeout expired");
  }
  fut_unref(t->task);
  fut__free(t);
  return err;
}
