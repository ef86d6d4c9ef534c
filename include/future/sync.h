/* libfuture — synchronisation primitives for tasks (asyncio.locks): Lock,
 * Event, Condition, Semaphore, BoundedSemaphore and Barrier.
 *
 *   fut_lock_t *lock;
 *   fut_lock_new(&lock);
 *   ...
 *   int err = fut_lock_acquire(lock);   // inside a task; may suspend
 *   if (err)
 *     return err;                       // -ECANCELED: not acquired
 *   ... critical section ...
 *   fut_lock_release(lock);
 *
 * The semantics are CPython's asyncio.locks, translated:
 *   - Waiting calls (fut_lock_acquire, fut_event_wait, fut_cond_wait,
 *     fut_cond_wait_for, fut_sem_acquire, fut_barrier_wait) suspend the
 *     calling task and return 0 or a negative code.  Outside a task they
 *     return FUT_E_NOT_IN_TASK at once.  Cancelling the task makes them
 *     return -ECANCELED with nothing acquired (fut_cond_wait excepted: it
 *     re-acquires the lock before it returns, as asyncio does).
 *   - Waiters are served first in, first out.  A waiter that was woken but
 *     cancelled before it ran passes the wake-up on to the next one, so a
 *     cancellation never strands the others.
 *   - Non-waiting calls (release, set, clear, notify, reset, abort) never
 *     suspend: callbacks and tasks may make them.
 *   - A primitive is created without a loop and binds to the loop of the
 *     first task that waits on it; waiting on it, or waking its waiters,
 *     from another loop is FUT_E_OTHER_LOOP.
 *   - An uncontended acquire allocates nothing; a task that has to wait
 *     uses one future of its loop for the wait.
 *
 * Ownership: fut_*_new writes a primitive the caller owns and frees with
 * the matching fut_*_free, which refuses (-EBUSY) while tasks wait on it.
 *
 * Threads: a primitive belongs to the thread of the loop it is bound to;
 * none of these calls is thread-safe (use fut_loop_call_soon_threadsafe to
 * reach the loop from elsewhere).
 *
 * Common errors: -EINVAL (a NULL primitive or out pointer),
 * FUT_E_NOT_IN_TASK (a waiting call outside a task), FUT_E_OTHER_LOOP,
 * -ECANCELED (the waiting task was cancelled), -ENOMEM.
 */
#ifndef FUTURE_SYNC_H
#define FUTURE_SYNC_H

#include <stdbool.h>
#include <stddef.h>

#include "future/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fut_lock fut_lock_t;
typedef struct fut_event fut_event_t;
typedef struct fut_cond fut_cond_t;
typedef struct fut_sem fut_sem_t;
typedef struct fut_barrier fut_barrier_t;

/* ---- Lock (asyncio.Lock) ------------------------------------------------- */

/* Creates an unlocked lock, bound to no loop yet.  *out receives it (NULL on
 * failure); free it with fut_lock_free.  Returns 0 or a negative code.
 * Errors: -EINVAL (out NULL), -ENOMEM. */
FUT_EXTERN int fut_lock_new(fut_lock_t **out);
/* Frees a lock (NULL is a no-op).  Returns 0, or -EBUSY while tasks wait
 * on it (then nothing is freed).  Errors: -EBUSY. */
FUT_EXTERN int fut_lock_free(fut_lock_t *lock);
/* Acquires the lock, suspending the calling task until it is its turn
 * (FIFO; a free lock with no live waiter is taken at once, without
 * allocating).  Returns 0 once the caller holds the lock.  Errors:
 * -ECANCELED (the task was cancelled; the lock is not held, and a wake-up
 * meant for the caller goes to the next waiter), FUT_E_NOT_IN_TASK,
 * FUT_E_OTHER_LOOP, -EINVAL, -ENOMEM. */
FUT_EXTERN int fut_lock_acquire(fut_lock_t *lock);
/* Releases the lock and wakes the first waiter, if any.  The lock is not
 * owned by a task: any task or callback of its loop may release it.
 * Returns 0 or a negative code.  Errors: FUT_E_INVALID_STATE (the lock is
 * not locked), FUT_E_OTHER_LOOP (called from another running loop),
 * -EINVAL. */
FUT_EXTERN int fut_lock_release(fut_lock_t *lock);
/* True while the lock is held (false for NULL). */
FUT_EXTERN bool fut_lock_locked(const fut_lock_t *lock);

/* ---- Event (asyncio.Event) ----------------------------------------------- */

/* Creates an event whose flag is clear.  *out receives it (NULL on
 * failure); free it with fut_event_free.  Returns 0 or a negative code.
 * Errors: -EINVAL, -ENOMEM. */
FUT_EXTERN int fut_event_new(fut_event_t **out);
/* Frees an event (NULL is a no-op).  Returns 0, or -EBUSY while tasks wait
 * on it (nothing freed).  Errors: -EBUSY. */
FUT_EXTERN int fut_event_free(fut_event_t *ev);
/* Suspends the calling task until the flag is set; returns 0 at once if it
 * is set already.  Returns 0 or a negative code.  Errors: -ECANCELED,
 * FUT_E_NOT_IN_TASK, FUT_E_OTHER_LOOP, -EINVAL, -ENOMEM. */
FUT_EXTERN int fut_event_wait(fut_event_t *ev);
/* Sets the flag and wakes every waiting task (they resume on a later loop
 * iteration); a no-op if already set.  Returns 0 or a negative code.
 * Errors: FUT_E_OTHER_LOOP (called from another running loop), -EINVAL. */
FUT_EXTERN int fut_event_set(fut_event_t *ev);
/* Clears the flag: later fut_event_wait calls suspend again.  Tasks already
 * woken stay woken. */
FUT_EXTERN void fut_event_clear(fut_event_t *ev);
/* True if the flag is set (false for NULL). */
FUT_EXTERN bool fut_event_is_set(const fut_event_t *ev);

/* ---- Condition (asyncio.Condition) --------------------------------------- */

/* A predicate for fut_cond_wait_for: true when the awaited state holds. */
typedef bool (*fut_cond_pred_fn)(void *arg);

/* Creates a condition variable over lock, or over a lock of its own when
 * lock is NULL.  A given lock is borrowed: it must outlive the condition
 * (several conditions may share it).  *out receives the condition (NULL on
 * failure).  Returns 0 or a negative code.  Errors: -EINVAL, -ENOMEM. */
FUT_EXTERN int fut_cond_new(fut_lock_t *lock, fut_cond_t **out);
/* Frees a condition and the lock it created (a given lock is left alone);
 * NULL is a no-op.  Returns 0, or -EBUSY while tasks wait on it or on its
 * own lock (nothing freed).  Errors: -EBUSY. */
FUT_EXTERN int fut_cond_free(fut_cond_t *cond);
/* The condition's lock (borrowed, lives as long as the condition). */
FUT_EXTERN fut_lock_t *fut_cond_lock(const fut_cond_t *cond);
/* fut_lock_acquire of the condition's lock.  Returns 0 or a negative code.
 * Errors: as fut_lock_acquire. */
FUT_EXTERN int fut_cond_acquire(fut_cond_t *cond);
/* fut_lock_release of the condition's lock.  Returns 0 or a negative code.
 * Errors: as fut_lock_release. */
FUT_EXTERN int fut_cond_release(fut_cond_t *cond);
/* True while the condition's lock is held. */
FUT_EXTERN bool fut_cond_locked(const fut_cond_t *cond);
/* Releases the lock, suspends until notified, then re-acquires the lock
 * before returning, also when cancelled (asyncio: the lock is re-acquired
 * "even if wait is cancelled").  The caller must hold the lock.  A wait may
 * return 0 spuriously: re-check the state (or use fut_cond_wait_for).
 * Returns 0, notified, with the lock held.  Errors: -ECANCELED (the lock is
 * held again; a notification the caller received is passed to another
 * waiter), FUT_E_INVALID_STATE (the lock is not held; nothing happened),
 * FUT_E_NOT_IN_TASK, FUT_E_OTHER_LOOP, -EINVAL; -ENOMEM; and, only while
 * the loop is closing or on -ENOMEM when re-acquiring, the code is returned
 * WITHOUT the lock (fut_cond_locked tells). */
FUT_EXTERN int fut_cond_wait(fut_cond_t *cond);
/* Waits (fut_cond_wait) until pred(arg) is true; pred is called with the
 * lock held, first before any wait.  arg is borrowed.  Returns 0 once
 * pred(arg) held, with the lock held; when pred holds at once, the lock is
 * not needed (asyncio's wait_for).  Errors: as fut_cond_wait, -EINVAL
 * (pred NULL). */
FUT_EXTERN int fut_cond_wait_for(fut_cond_t *cond, fut_cond_pred_fn pred,
                                 void *arg);
/* Wakes up to n tasks waiting on the condition (FIFO).  They return from
 * fut_cond_wait only once they re-acquired the lock, which the caller still
 * holds.  Returns 0 or a negative code.  Errors: FUT_E_INVALID_STATE (the
 * lock is not held), FUT_E_OTHER_LOOP, -EINVAL. */
FUT_EXTERN int fut_cond_notify(fut_cond_t *cond, size_t n);
/* Wakes every task waiting on the condition.  Returns 0 or a negative code.
 * Errors: as fut_cond_notify. */
FUT_EXTERN int fut_cond_notify_all(fut_cond_t *cond);

/* ---- Semaphore and BoundedSemaphore -------------------------------------- */

/* Creates a semaphore whose counter starts at value (asyncio.Semaphore).
 * *out receives it (NULL on failure).  Returns 0 or a negative code.
 * Errors: -EINVAL, -ENOMEM. */
FUT_EXTERN int fut_sem_new(unsigned value, fut_sem_t **out);
/* Creates a bounded semaphore (asyncio.BoundedSemaphore): releasing it
 * above its initial value is an error.  Returns 0 or a negative code.
 * Errors: -EINVAL, -ENOMEM. */
FUT_EXTERN int fut_bounded_sem_new(unsigned value, fut_sem_t **out);
/* Frees a semaphore (NULL is a no-op).  Returns 0, or -EBUSY while tasks
 * wait on it (nothing freed).  Errors: -EBUSY. */
FUT_EXTERN int fut_sem_free(fut_sem_t *sem);
/* Decrements the counter, first suspending the calling task while it is 0
 * or earlier waiters are queued (FIFO).  Returns 0 once acquired.  Errors:
 * -ECANCELED (nothing acquired; a wake-up meant for the caller goes to the
 * next waiter), FUT_E_NOT_IN_TASK, FUT_E_OTHER_LOOP, -EINVAL, -ENOMEM. */
FUT_EXTERN int fut_sem_acquire(fut_sem_t *sem);
/* Increments the counter and wakes the first waiter, if any.  Returns 0 or
 * a negative code.  Errors: -EOVERFLOW (a bounded semaphore released more
 * times than acquired, or the counter at UINT_MAX; nothing changed),
 * FUT_E_OTHER_LOOP, -EINVAL. */
FUT_EXTERN int fut_sem_release(fut_sem_t *sem);
/* True if an acquire would suspend now: the counter is 0 or live waiters
 * are queued. */
FUT_EXTERN bool fut_sem_locked(const fut_sem_t *sem);
/* The counter's value (0 for NULL). */
FUT_EXTERN unsigned fut_sem_value(const fut_sem_t *sem);

/* ---- Barrier (asyncio.Barrier) ------------------------------------------- */

/* Creates a barrier for parties tasks.  *out receives it (NULL on
 * failure).  Returns 0 or a negative code.  Errors: -EINVAL (parties 0),
 * -ENOMEM. */
FUT_EXTERN int fut_barrier_new(unsigned parties, fut_barrier_t **out);
/* Frees a barrier (NULL is a no-op).  Returns 0, or -EBUSY while tasks wait
 * on it (nothing freed).  Errors: -EBUSY. */
FUT_EXTERN int fut_barrier_free(fut_barrier_t *b);
/* Waits until parties tasks wait on the barrier, then all of them pass.
 * While the barrier drains (the previous round's tasks are still leaving)
 * or resets, a new caller first waits for that to end.  *index (index may
 * be NULL) receives a number unique within the round, 0 to parties - 1 (0
 * on error).  Returns 0 or a negative code.  Errors: FUT_E_BROKEN_BARRIER
 * (the barrier is broken, or was reset or aborted while the caller waited),
 * -ECANCELED, FUT_E_NOT_IN_TASK, FUT_E_OTHER_LOOP, -EINVAL, -ENOMEM. */
FUT_EXTERN int fut_barrier_wait(fut_barrier_t *b, unsigned *index);
/* Returns the barrier to its empty state: tasks waiting now get
 * FUT_E_BROKEN_BARRIER, and new callers wait until they all left.  Never
 * suspends (asyncio's reset is a coroutine only for its lock).  Returns 0
 * or a negative code.  Errors: FUT_E_OTHER_LOOP, -EINVAL. */
FUT_EXTERN int fut_barrier_reset(fut_barrier_t *b);
/* Breaks the barrier: waiting and future callers get FUT_E_BROKEN_BARRIER
 * until fut_barrier_reset.  Never suspends.  Returns 0 or a negative code.
 * Errors: FUT_E_OTHER_LOOP, -EINVAL. */
FUT_EXTERN int fut_barrier_abort(fut_barrier_t *b);
/* The number of tasks needed to pass the barrier. */
FUT_EXTERN unsigned fut_barrier_parties(const fut_barrier_t *b);
/* The number of tasks waiting for the barrier to fill (0 while it drains,
 * resets or is broken). */
FUT_EXTERN unsigned fut_barrier_n_waiting(const fut_barrier_t *b);
/* True while the barrier is broken. */
FUT_EXTERN bool fut_barrier_broken(const fut_barrier_t *b);

#ifdef __cplusplus
}
#endif
#endif
