/* libfuture — queues (asyncio.Queue, asyncio.PriorityQueue,
 * asyncio.LifoQueue), with asyncio 3.13's shutdown.
 *
 * A queue carries void * items between tasks of one loop:
 *
 *   fut_queue_t *q;
 *   fut_queue_new(FUT_QUEUE_FIFO, 64, free, &q);   // bounded, items free()d
 *   ...in a producer task:
 *   int err = fut_queue_put(q, item);   // waits while the queue is full
 *   ...in a consumer task:
 *   void *item;
 *   err = fut_queue_get(q, &item);      // waits while the queue is empty
 *   if (!err) { work(item); free(item); fut_queue_task_done(q); }
 *
 * Kinds: FUT_QUEUE_FIFO (first in, first out; a ring buffer that grows),
 * FUT_QUEUE_LIFO (last in, first out) and FUT_QUEUE_PRIORITY (smallest
 * first by the queue's comparison function; a binary heap).  As with
 * CPython's heapq, items that compare equal come out in no particular
 * order: the priority queue is not stable (add a sequence number to the
 * key if you need FIFO among equals).
 *
 * maxsize 0 means unbounded; otherwise fut_queue_put waits while maxsize
 * items are queued and fut_queue_put_nowait fails with FUT_E_QUEUE_FULL.
 *
 * Ownership of items: a successful put hands the item to the queue; a
 * successful get hands it to the caller.  A failed put leaves it with the
 * caller.  The queue calls its destructor (optional, given at creation) on
 * the items it still holds when it is freed or shut down with immediate.
 * Items are opaque: NULL is a valid item.
 *
 * Loops: a queue is created without a loop and binds, for its whole life,
 * to the loop of the first task that waits on it (asyncio's loop-bound
 * mixin).  From then on, any call made from a task or callback of another
 * loop fails with FUT_E_OTHER_LOOP (asyncio only checks when a call must
 * wait; refusing every call catches the mistake earlier).  So a queue does
 * not move to a new loop after its loop is freed: make a new queue.
 *
 * Waiting calls (fut_queue_put, fut_queue_get, fut_queue_join) suspend the
 * calling task and follow asyncio's rules: called outside a task they
 * return FUT_E_NOT_IN_TASK at once; cancelling the task makes them return
 * -ECANCELED with nothing half-done (a cancelled get takes no item, a
 * cancelled put adds none; a getter that was woken for an item and then
 * cancelled passes the wakeup on to the next getter, so no item is ever
 * stranded).  They need no allocation in steady state: each waiter is a
 * future from the loop's free list, linked into the queue from the
 * waiting task's stack.  The non-waiting calls never suspend and may be
 * called from callbacks and tasks alike.
 *
 * Threads: a queue belongs to its loop's thread; every function here must
 * be called on it (none is thread-safe; to feed a queue from another
 * thread, go through fut_loop_call_soon_threadsafe).
 *
 * Common errors: -EINVAL (q NULL), FUT_E_OTHER_LOOP.
 */
#ifndef FUTURE_QUEUE_H
#define FUTURE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

#include "future/future.h"
#include "future/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fut_queue fut_queue_t;

typedef enum fut_queue_kind {
  FUT_QUEUE_FIFO = 0,    /* asyncio.Queue */
  FUT_QUEUE_LIFO = 1,    /* asyncio.LifoQueue */
  FUT_QUEUE_PRIORITY = 2 /* asyncio.PriorityQueue */
} fut_queue_kind_t;

/* Orders two items of a priority queue: negative if a comes out before b,
 * positive if after, 0 if either may come first (like qsort's). */
typedef int (*fut_queue_cmp_fn)(const void *a, const void *b);

typedef struct fut_queue_opts {
  fut_queue_kind_t kind; /* FUT_QUEUE_FIFO by default */
  size_t maxsize;        /* 0 (default): unbounded */
  fut_free_fn dtor;      /* frees items the queue drops; NULL: none */
  fut_queue_cmp_fn cmp;  /* FUT_QUEUE_PRIORITY only; NULL: compares the
                            pointers' values (uintptr_t), for small
                            integers stored in the pointer */
} fut_queue_opts_t;

/* Fills opts with the defaults: an unbounded FIFO queue without a
 * destructor. */
FUT_EXTERN void fut_queue_opts_init(fut_queue_opts_t *opts);

/* Creates a queue of the given kind holding at most maxsize items (0:
 * unbounded) whose dropped items are released with dtor (may be NULL).  A
 * priority queue made here orders items by their pointer values; use
 * fut_queue_new_opts for a comparison function.  *out receives the queue,
 * which the caller owns (fut_queue_free).  Any thread; no loop needed.
 * Returns 0 or a negative code.  Errors: -EINVAL (out NULL, unknown kind),
 * -ENOMEM. */
FUT_EXTERN int fut_queue_new(fut_queue_kind_t kind, size_t maxsize,
                             fut_free_fn dtor, fut_queue_t **out);
/* fut_queue_new with every option (opts NULL: the defaults).  Returns 0 or
 * a negative code.  Errors: -EINVAL (out NULL, unknown kind, cmp given to a
 * queue that is not a priority queue), -ENOMEM. */
FUT_EXTERN int fut_queue_new_opts(const fut_queue_opts_t *opts,
                                  fut_queue_t **out);

/* Frees the queue, releasing the items it still holds with its destructor.
 * NULL is a no-op.  Returns 0 or a negative code.  Errors: -EBUSY (a task
 * still waits on the queue in put, get or join: nothing is freed; shut it
 * down and let the waiters return first). */
FUT_EXTERN int fut_queue_free(fut_queue_t *q);

/* ---- waiting calls (inside a task) ------------------------------------- */

/* Puts item into the queue, first waiting while it is full (asyncio's
 * `await q.put(item)`).  On success the queue owns item and a waiting
 * getter is woken.  Returns 0 or a negative code; on failure item stays
 * the caller's.  Errors: FUT_E_NOT_IN_TASK, FUT_E_QUEUE_SHUTDOWN (shut
 * down before or while waiting), -ECANCELED (the task was cancelled while
 * waiting), -ENOMEM, and the common errors. */
FUT_EXTERN int fut_queue_put(fut_queue_t *q, void *item);

/* Removes the next item from the queue into *item (now the caller's),
 * first waiting while the queue is empty (asyncio's `await q.get()`).
 * Returns 0 or a negative code (*item is then NULL).  Errors:
 * FUT_E_NOT_IN_TASK, FUT_E_QUEUE_SHUTDOWN (the queue is shut down and
 * empty), -ECANCELED (the task was cancelled while waiting; no item was
 * taken), -ENOMEM, and the common errors (also -EINVAL for item NULL). */
FUT_EXTERN int fut_queue_get(fut_queue_t *q, void **item);

/* Waits until every item put into the queue was got and marked done with
 * fut_queue_task_done (asyncio's `await q.join()`); returns at once when
 * none is unfinished.  Returns 0 or a negative code.  Errors:
 * FUT_E_NOT_IN_TASK, -ECANCELED, -ENOMEM, and the common errors. */
FUT_EXTERN int fut_queue_join(fut_queue_t *q);

/* ---- non-waiting calls -------------------------------------------------- */

/* Puts item into the queue if there is room (asyncio's put_nowait); the
 * queue then owns it and a waiting getter is woken.  Returns 0 or a
 * negative code; on failure item stays the caller's.  Errors:
 * FUT_E_QUEUE_FULL, FUT_E_QUEUE_SHUTDOWN, -ENOMEM (growing the storage),
 * and the common errors. */
FUT_EXTERN int fut_queue_put_nowait(fut_queue_t *q, void *item);

/* Removes the next item into *item if there is one (asyncio's get_nowait)
 * and wakes a waiting putter.  Returns 0 or a negative code (*item is then
 * NULL).  Errors: FUT_E_QUEUE_EMPTY, FUT_E_QUEUE_SHUTDOWN (shut down and
 * empty), and the common errors (also -EINVAL for item NULL). */
FUT_EXTERN int fut_queue_get_nowait(fut_queue_t *q, void **item);

/* Marks one item got from the queue as processed (asyncio's task_done);
 * the last one wakes the tasks waiting in fut_queue_join.  Returns 0 or a
 * negative code.  Errors: FUT_E_INVALID_STATE (called more times than
 * items were put: asyncio's ValueError), and the common errors. */
FUT_EXTERN int fut_queue_task_done(fut_queue_t *q);

/* Shuts the queue down (asyncio 3.13's shutdown): puts fail with
 * FUT_E_QUEUE_SHUTDOWN from now on, and so do gets once the queue is empty.
 * Every waiting putter and getter is woken (a woken getter still takes an
 * item if one is left).  With immediate, the queue also drops the items it
 * holds (each released with the destructor), counting each as done, so
 * that join returns once the items already got are done too.  Calling it
 * again is harmless (immediate then still drops the items).  Returns 0 or
 * a negative code.  Errors: the common errors. */
FUT_EXTERN int fut_queue_shutdown(fut_queue_t *q, bool immediate);

/* ---- state -------------------------------------------------------------- */

/* The number of items in the queue (0 for NULL). */
FUT_EXTERN size_t fut_queue_qsize(const fut_queue_t *q);
/* The queue's maxsize (0: unbounded). */
FUT_EXTERN size_t fut_queue_maxsize(const fut_queue_t *q);
/* True if the queue holds no item. */
FUT_EXTERN bool fut_queue_empty(const fut_queue_t *q);
/* True if the queue holds maxsize items (never for an unbounded queue). */
FUT_EXTERN bool fut_queue_full(const fut_queue_t *q);
/* True once fut_queue_shutdown was called. */
FUT_EXTERN bool fut_queue_is_shutdown(const fut_queue_t *q);
/* The queue's kind. */
FUT_EXTERN fut_queue_kind_t fut_queue_kind(const fut_queue_t *q);
/* Items put and not yet marked done (asyncio's _unfinished_tasks). */
FUT_EXTERN size_t fut_queue_unfinished_tasks(const fut_queue_t *q);
/* Tasks waiting in fut_queue_get (asyncio's len(_getters)). */
FUT_EXTERN size_t fut_queue_getters(const fut_queue_t *q);
/* Tasks waiting in fut_queue_put (asyncio's len(_putters)). */
FUT_EXTERN size_t fut_queue_putters(const fut_queue_t *q);
/* The loop the queue is bound to (borrowed), NULL until a task waited on
 * it. */
FUT_EXTERN fut_loop_t *fut_queue_get_loop(const fut_queue_t *q);

#ifdef __cplusplus
}
#endif
#endif
