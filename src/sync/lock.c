/* asyncio.Lock: a FIFO lock for tasks, not owned by the task that holds it.
 *
 * The fast path (free, no live waiter) only flips `locked`.  Otherwise the
 * task queues a waiter and release() wakes the head of the queue.  The
 * subtle part is CPython's _wake_up_first: a woken head that is cancelled
 * before it runs does not take the lock, and its acquire passes the
 * wake-up on to the new head, so a cancellation never strands the queue;
 * and a free lock is taken at once only when every queued waiter is
 * cancelled ("jumping the queue if all are cancelled"). */
#include "sync/internal.h"

struct fut_lock {
  struct fut__qnode waiters; /* struct fut__waiter, FIFO; on task stacks */
  fut_loop_t *loop;          /* bound by the first wait; NULL before */
  bool locked;               /* held by someone */
};

int fut_lock_new(fut_lock_t **out) {
  if (!out)
    return fut__error(-EINVAL, "fut_lock_new: out is NULL");
  *out = NULL;
  fut_lock_t *lock = fut__calloc(1, sizeof *lock);
  if (!lock)
    return -ENOMEM;
  fut__q_init(&lock->waiters);
  *out = lock;
  return 0;
}

int fut_lock_free(fut_lock_t *lock) {
  if (!lock)
    return 0;
  if (!fut__q_empty(&lock->waiters))
    return fut__error(-EBUSY, "fut_lock_free: tasks wait on the lock");
  fut__free(lock);
  return 0;
}

int fut_lock_acquire(fut_lock_t *lock) {
  if (!lock)
    return fut__error(-EINVAL, "fut_lock_acquire: NULL lock");
  int err;
  fut_loop_t *loop = fut__sync_task_loop(&lock->loop, "fut_lock_acquire", &err);
  if (!loop)
    return err;
  if (!lock->locked && (fut__q_empty(&lock->waiters) ||
                        !fut__waiters_any_live(&lock->waiters))) {
    lock->locked = true;
    return 0;
  }
  lock->loop = loop;
  struct fut__waiter w;
  err = fut__waiter_wait(&lock->waiters, &w, loop);
  if (err == 0) {
    FUT__ASSERT(!lock->locked);
    lock->locked = true;
  } else if (!lock->locked) {
    /* Cancelled (possibly after our wake-up): keep the invariant that a
     * free lock with waiters has its head woken. */
    fut__waiters_wake_head(&lock->waiters);
  }
  fut__waiter_release(&w);
  return err;
}

int fut_lock_release(fut_lock_t *lock) {
  if (!lock)
    return fut__error(-EINVAL, "fut_lock_release: NULL lock");
  if (lock->loop) {
    int err = fut__sync_check_loop(lock->loop, "fut_lock_release");
    if (err)
      return err;
  }
  if (!lock->locked)
    return fut__error(FUT_E_INVALID_STATE,
                      "fut_lock_release: the lock is not acquired");
  lock->locked = false;
  if (!fut__q_empty(&lock->waiters))
    fut__waiters_wake_head(&lock->waiters);
  return 0;
}

bool fut_lock_locked(const fut_lock_t *lock) {
  return lock && lock->locked;
}

/* For condition.c: the waiters of a lock, to tell whether it is busy. */
bool fut__lock_has_waiters(const fut_lock_t *lock) {
  return !fut__q_empty(&lock->waiters);
}
