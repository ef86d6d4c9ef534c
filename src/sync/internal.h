/* libfuture — the sync layer's private interface: structured concurrency
 * (TaskGroup), asyncio.locks' primitives, queues, and crossing threads.
 * Includes the task and executor layers (and so future, loop and base).
 * Never installed.
 *
 *   lock.c, event.c, condition.c, semaphore.c, barrier.c,    asyncio.locks
 *   waiters.c
 *   queue.c                                                 asyncio.Queue
 *   taskgroup.c, threadsafe.c, ctxvar.c                     the rest
 */
#ifndef FUT_SYNC_INTERNAL_H
#define FUT_SYNC_INTERNAL_H

#include "exec/internal.h"
#include "task/internal.h"

#include "future/sync.h"

/* ---- asyncio.locks: waiting tasks (waiters.c) ---------------------------
 * (The Lock itself is in lock.c.)
 * A task that must wait on a primitive puts a waiter, on its own stack,
 * at the tail of the primitive's list and awaits the waiter's future.
 * Waking sets that future's result; cancelling the task cancels it.  As in
 * asyncio, a woken or cancelled waiter stays in the list until its task
 * runs and unlinks it, so "done" waiters are skipped when waking. */
struct fut__waiter {
  struct fut__qnode node; /* in the primitive's list while the task waits */
  fut_t *fut;             /* pending until woken (result) or cancelled */
};

/* The running task's loop for a waiting call `what`, checked against the
 * primitive's *bound loop (set on first use).  NULL with the error in *err
 * (FUT_E_NOT_IN_TASK, FUT_E_OTHER_LOOP). */
fut_loop_t *fut__sync_task_loop(fut_loop_t **bound, const char *what, int *err);
/* For non-waiting calls: FUT_E_OTHER_LOOP if a loop other than `bound`
 * runs in this thread, else 0. */
int fut__sync_check_loop(const fut_loop_t *bound, const char *what);
/* Puts w at the tail of list, awaits its future and unlinks it.  Returns
 * fut_await's code: 0 when woken, -ECANCELED when the task was cancelled
 * (w may still have been woken: fut__waiter_woken), -ENOMEM (w never
 * queued).  The caller ends with fut__waiter_release(w). */
int fut__waiter_wait(struct fut__qnode *list, struct fut__waiter *w,
                     fut_loop_t *loop);
/* fut__waiter_wait with w->fut already made (pending).  Returns the same
 * codes. */
int fut__waiter_await(struct fut__qnode *list, struct fut__waiter *w);
/* True when the running task is a compact one (FUT_TASK_COMPACT): nothing
 * on its stack may be linked where others reach it while it waits. */
bool fut__sync_stack_private(void);
/* True if w's future was given its wake-up (finished, not cancelled). */
bool fut__waiter_woken(const struct fut__waiter *w);
/* Drops w's future. */
void fut__waiter_release(struct fut__waiter *w);
/* Wakes the first waiter of list if it is not done yet (Lock's rule: only
 * the head, which then passes the wake-up on if it was cancelled). */
void fut__waiters_wake_head(struct fut__qnode *list);
/* Wakes up to n waiters not done yet, first first; returns how many. */
size_t fut__waiters_wake(struct fut__qnode *list, size_t n);
/* True if some waiter of list is not cancelled. */
bool fut__waiters_any_live(const struct fut__qnode *list);
/* The number of waiters in list. */
size_t fut__waiters_count(const struct fut__qnode *list);

/* lock.c: true if tasks wait on the lock (for fut_cond_free). */
bool fut__lock_has_waiters(const fut_lock_t *lock);

/* barrier.c, for tests (CPython's tests read repr() and _count): the
 * state's name ("filling", "draining", "resetting", "broken") and the
 * number of tasks inside fut_barrier_wait. */
const char *fut__barrier_state_name(const fut_barrier_t *b);
unsigned fut__barrier_count(const fut_barrier_t *b);

#endif
