/* asyncio.Condition: waiters released by notify(), over a Lock that wait()
 * releases while waiting and always re-acquires before returning, as
 * CPython 3.12 does: a cancel during the re-acquire is remembered and the
 * acquire retried, and any failure out of wait() passes one notification
 * on (a spurious wake-up for someone else beats a lost one). */
#include "sync/internal.h"

struct fut_cond {
  struct fut__qnode waiters; /* struct fut__waiter, FIFO; on task stacks */
  fut_loop_t *loop;          /* bound by the first wait; NULL before */
  fut_lock_t *lock;          /* the lock; ours to free if own_lock */
  bool own_lock;             /* created by fut_cond_new */
};

int fut_cond_new(fut_lock_t *lock, fut_cond_t **out) {
  if (!out)
    return fut__error(-EINVAL, "fut_cond_new: out is NULL");
  *out = NULL;
  fut_cond_t *c = fut__calloc(1, sizeof *c);
  if (!c)
    return -ENOMEM;
  fut__q_init(&c->waiters);
  if (!lock) {
    int err = fut_lock_new(&lock);
    if (err) {
      fut__free(c);
      return err;
    }
    c->own_lock = true;
  }
  c->lock = lock;
  *out = c;
  return 0;
}

int fut_cond_free(fut_cond_t *c) {
  if (!c)
    return 0;
  if (!fut__q_empty(&c->waiters) ||
      (c->own_lock && fut__lock_has_waiters(c->lock)))
    return fut__error(-EBUSY, "fut_cond_free: tasks wait on the condition");
  if (c->own_lock)
    fut_lock_free(c->lock);
  fut__free(c);
  return 0;
}

fut_lock_t *fut_cond_lock(const fut_cond_t *c) {
  return c ? c->lock : NULL;
}

int fut_cond_acquire(fut_cond_t *c) {
  if (!c)
    return fut__error(-EINVAL, "fut_cond_acquire: NULL condition");
  return fut_lock_acquire(c->lock);
}

int fut_cond_release(fut_cond_t *c) {
  if (!c)
    return fut__error(-EINVAL, "fut_cond_release: NULL condition");
  return fut_lock_release(c->lock);
}

bool fut_cond_locked(const fut_cond_t *c) {
  return c && fut_lock_locked(c->lock);
}

int fut_cond_wait(fut_cond_t *c) {
  if (!c)
    return fut__error(-EINVAL, "fut_cond_wait: NULL condition");
  int err;
  fut_loop_t *loop = fut__sync_task_loop(&c->loop, "fut_cond_wait", &err);
  if (!loop)
    return err;
  if (!fut_lock_locked(c->lock))
    return fut__error(FUT_E_INVALID_STATE,
                      "fut_cond_wait: cannot wait on an un-acquired lock");
  c->loop = loop;
  /* The future first, so that -ENOMEM leaves the lock held. */
  struct fut__waiter w;
  fut__q_init(&w.node);
  if ((err = fut_new(loop, &w.fut)))
    return err;
  if ((err = fut_lock_release(c->lock))) { /* the lock is another loop's */
    fut__waiter_release(&w);
    return err;
  }
  int rc = fut__waiter_await(&c->waiters, &w);
  fut__waiter_release(&w);
  /* Must re-acquire the lock, even when cancelled. */
  struct fut__task *t = fut__task_running();
  for (;;) {
    err = fut_lock_acquire(c->lock);
    if (err == 0)
      break;
    if (err != -ECANCELED || fut__task_closing(t)) {
      /* -ENOMEM, or the loop is closing (every await fails at once): give
       * up, without the lock. */
      rc = err;
      break;
    }
    rc = -ECANCELED;
  }
  if (rc)
    fut__waiters_wake(&c->waiters, 1);
  return rc;
}

int fut_cond_wait_for(fut_cond_t *c, fut_cond_pred_fn pred, void *arg) {
  if (!c || !pred)
    return fut__error(-EINVAL, "fut_cond_wait_for: NULL condition or pred");
  if (!fut__task_current("fut_cond_wait_for"))
    return FUT_E_NOT_IN_TASK;
  while (!pred(arg)) {
    int err = fut_cond_wait(c);
    if (err)
      return err;
  }
  return 0;
}

int fut_cond_notify(fut_cond_t *c, size_t n) {
  if (!c)
    return fut__error(-EINVAL, "fut_cond_notify: NULL condition");
  int err = fut__sync_check_loop(c->loop, "fut_cond_notify");
  if (err)
    return err;
  if (!fut_lock_locked(c->lock))
    return fut__error(FUT_E_INVALID_STATE,
                      "fut_cond_notify: cannot notify on an un-acquired lock");
  fut__waiters_wake(&c->waiters, n);
  return 0;
}

int fut_cond_notify_all(fut_cond_t *c) {
  return fut_cond_notify(c, SIZE_MAX);
}
