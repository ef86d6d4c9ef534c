/* asyncio.Event: a flag tasks wait for.  set() wakes every waiter at once;
 * a waiter cancelled after set() still returns -ECANCELED (its wake-up
 * concerns only itself, nothing is passed on). */
#include "sync/internal.h"

struct fut_event {
  struct fut__qnode waiters; /* struct fut__waiter, FIFO; on task stacks */
  fut_loop_t *loop;          /* bound by the first wait; NULL before */
  bool value;                /* the flag */
};

int fut_event_new(fut_event_t **out) {
  if (!out)
    return fut__error(-EINVAL, "fut_event_new: out is NULL");
  *out = NULL;
  fut_event_t *ev = fut__calloc(1, sizeof *ev);
  if (!ev)
    return -ENOMEM;
  fut__q_init(&ev->waiters);
  *out = ev;
  return 0;
}

int fut_event_free(fut_event_t *ev) {
  if (!ev)
    return 0;
  if (!fut__q_empty(&ev->waiters))
    return fut__error(-EBUSY, "fut_event_free: tasks wait on the event");
  fut__free(ev);
  return 0;
}

int fut_event_wait(fut_event_t *ev) {
  if (!ev)
    return fut__error(-EINVAL, "fut_event_wait: NULL event");
  int err;
  fut_loop_t *loop = fut__sync_task_loop(&ev->loop, "fut_event_wait", &err);
  if (!loop)
    return err;
  if (ev->value)
    return 0;
  ev->loop = loop;
  struct fut__waiter w;
  err = fut__waiter_wait(&ev->waiters, &w, loop);
  fut__waiter_release(&w);
  return err;
}

int fut_event_set(fut_event_t *ev) {
  if (!ev)
    return fut__error(-EINVAL, "fut_event_set: NULL event");
  int err = fut__sync_check_loop(ev->loop, "fut_event_set");
  if (err)
    return err;
  if (!ev->value) {
    ev->value = true;
    fut__waiters_wake(&ev->waiters, SIZE_MAX);
  }
  return 0;
}

void fut_event_clear(fut_event_t *ev) {
  if (ev)
    ev->value = false;
}

bool fut_event_is_set(const fut_event_t *ev) {
  return ev && ev->value;
}
