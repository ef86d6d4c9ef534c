/* libfuture — the sync layer's private interface: structured concurrency
 * (TaskGroup), asyncio.locks' primitives, queues, and crossing threads.
 * Includes the task and executor layers (and so future, loop and base).
 * Never installed.
 *
 *   locks.c, event.c, condition.c, semaphore.c, barrier.c   asyncio.locks
 *   queue.c                                                 asyncio.Queue
 *   taskgroup.c, threadsafe.c, ctxvar.c                     the rest
 */
#ifndef FUT_SYNC_INTERNAL_H
#define FUT_SYNC_INTERNAL_H

#include "exec/internal.h"
#include "task/internal.h"

#endif
