/* libfuture — the sync layer's task-group files' shared declarations
 * (taskgroup.c, threadsafe.c, ctxvar.c): contexts of context variables,
 * the per-task hooks.  Beside sync/internal.h, which it includes.  Never
 * installed. */
#ifndef FUT_SYNC_GROUPS_H
#define FUT_SYNC_GROUPS_H

#include "future/ctxvar.h"
#include "future/taskgroup.h"
#include "future/threadsafe.h"
#include "sync/internal.h"

/* ctxvar.c: a context is a refcounted (atomic) cell list, see there. */
struct fut__ctx_cell;
struct fut__ctx_cell *fut__ctx_ref(struct fut__ctx_cell *c);
void fut__ctx_unref(struct fut__ctx_cell *c);
/* True once ctxvar.c's constructor installed the task hooks (through
 * which a task releases its error group).  Calling it also makes a static
 * link pull ctxvar.c in, constructor included. */
bool fut__sync_hooks_installed(void);
/* A reference to the current context (a fut_to_thread function's, the
 * running task's or the thread's own); NULL when empty. */
struct fut__ctx_cell *fut__ctx_current(void);
/* Makes *slot the calling thread's current context until called again
 * with the previous value, which it returns (NULL: none). */
struct fut__ctx_cell **fut__ctx_override(struct fut__ctx_cell **slot);

#endif
