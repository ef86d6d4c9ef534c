/* libfuture — the task layer's private interface: stackful coroutines
 * (task.c), their stacks and context switch (ctx.h, stack.c), timeout
 * scopes (timeout.c).  Includes the future layer.  Never installed. */
#ifndef FUT_TASK_INTERNAL_H
#define FUT_TASK_INTERNAL_H

#include "future/internal.h"
#include "task/ctx.h"

/* Close rank of the tasks' loop part: above the combinators, which close
 * after the tasks finished. */
#define FUT__RANK_TASKS 40

#endif
