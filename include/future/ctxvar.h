/* libfuture — context variables (asyncio's contextvars, simplified).
 *
 * A fut_ctxvar_t names a per-task value.  Each task has a context: the
 * values set in it.  A task created (fut_create_task, a task group,
 * fut_run) starts with a copy of its creator's context: the running task's,
 * or, when created from plain callback code or before the loop runs, the
 * calling thread's own context.  After that, fut_ctxvar_set in a task is
 * seen only by that task and the tasks it creates afterwards, never by its
 * creator or its siblings.  Copies are O(1) (contexts are shared,
 * persistent lists; a set adds to the front of the setter's own copy).
 *
 * fut_to_thread runs its function in a copy of the caller's context.
 *
 * Callbacks, as asyncio's Handle and Future.add_done_callback
 * (copy_context() when scheduled, the callback run inside it): a callback
 * scheduled by fut_loop_call_soon, fut_loop_call_later, fut_loop_call_at,
 * fut_loop_call_soon_threadsafe or fut_add_done_callback from code that
 * has a context (a task that set or inherited a value, a callback bound
 * this way, a fut_to_thread function for call_soon_threadsafe) runs in
 * that context as it was when scheduled: a set after scheduling is not
 * seen.  A set inside such a callback is seen by the rest of it and by
 * what it schedules or the tasks it creates, never by the task that
 * scheduled it nor by other callbacks.  Scheduled from plain code (no
 * task), a callback captures nothing and reads its thread's own context
 * when it runs (asyncio would copy the thread's context).  Cancelling a
 * handle, fut_remove_done_callback, or closing the loop releases the
 * captured context.  The library's own wake-ups capture nothing.
 *
 * A task's exception nobody retrieved is reported (the exception handler
 * called) in the task's context, as asyncio's Task.__del__ does, unless
 * its last reference is dropped inside another running task, whose
 * context the handler then sees.
 *
 * A thread's own context is released when the thread exits (the main
 * thread's at process exit).
 *
 *   static fut_ctxvar_t *request_id;   // fut_ctxvar_new(NULL, &request_id)
 *   fut_ctxvar_set(request_id, (void *)(intptr_t)42);
 *   ... in a child task: fut_ctxvar_get(request_id) == 42
 *
 * Values are borrowed pointers: the library never frees them; keep them
 * valid while a context may hold them (static data, or data outliving the
 * tasks).
 */
#ifndef FUTURE_CTXVAR_H
#define FUTURE_CTXVAR_H

#include <stdbool.h>

#include "future/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fut_ctxvar fut_ctxvar_t;

/* Creates a context variable whose value is default_value wherever it was
 * never set (ContextVar(name, default=...)).  *out receives it, owned:
 * free it with fut_ctxvar_free once no task uses it.  Returns 0 or a
 * negative code.  Errors: -EINVAL (out NULL), -ENOMEM.  Any thread. */
FUT_EXTERN int fut_ctxvar_new(void *default_value, fut_ctxvar_t **out);

/* Sets var to value in the current context: the running task's, a
 * fut_to_thread function's copy, or elsewhere the calling thread's own.
 * Returns 0 or a negative code.  Errors: -EINVAL (var NULL), -ENOMEM (the
 * value is unchanged).  Any thread (each thread and task sees its own
 * context). */
FUT_EXTERN int fut_ctxvar_set(fut_ctxvar_t *var, void *value);

/* The value of var in the current context (borrowed), or its default when
 * never set there; NULL when var is NULL. */
FUT_EXTERN void *fut_ctxvar_get(const fut_ctxvar_t *var);

/* True if var was set in the current context (or inherited a set value). */
FUT_EXTERN bool fut_ctxvar_isset(const fut_ctxvar_t *var);

/* Frees var.  Contexts still holding a value of var keep that cell until
 * they go (nobody can read it any more; a later variable never sees it).
 * Do not use var after this.  NULL: nothing.  Any thread. */
FUT_EXTERN void fut_ctxvar_free(fut_ctxvar_t *var);

#ifdef __cplusplus
}
#endif
#endif
