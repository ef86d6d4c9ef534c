/* libfuture — task groups (asyncio.TaskGroup, Python 3.12+ semantics) and
 * the error groups their failures come back in (ExceptionGroup).
 *
 *   fut_taskgroup_t *g;
 *   fut_taskgroup_new(&g);
 *   fut_taskgroup_enter(g);                   // async with TaskGroup() as g:
 *   fut_taskgroup_create_task(g, fetch, "a", NULL, NULL);
 *   fut_taskgroup_create_task(g, fetch, "b", NULL, NULL);
 *   int err = body();                         //     ... awaits ...
 *   err = fut_taskgroup_exit(g, err);         // waits for every task
 *   if (err == FUT_E_GROUP) {                 // except* ...
 *     char text[512];
 *     fut_error_group_format(fut_taskgroup_errors(g), text, sizeof text);
 *   }
 *   fut_taskgroup_free(g);
 *
 * The rules are asyncio's.  fut_taskgroup_exit waits for all the group's
 * tasks.  The first task that fails (returns an error other than
 * -ECANCELED) cancels the other tasks and the parent task (the one that
 * entered the group), so the body's current await returns -ECANCELED;
 * fut_taskgroup_exit then withdraws that cancel (fut_task_uncancel) and
 * returns FUT_E_GROUP, the failures being the group's error group.  A
 * cancel of the parent from elsewhere while it is inside the group (the
 * body's await or fut_taskgroup_exit's wait returns -ECANCELED) cancels
 * the tasks, and fut_taskgroup_exit returns -ECANCELED once they ended,
 * unless some task failed: errors take priority over a cancellation, and
 * the parent is then cancelled again (uncancel + cancel, so its count
 * stays) so that its next suspension still sees the outer cancel.  A body
 * error other than -ECANCELED (passed as exit's err) also cancels the tasks
 * and joins the error group, last.  Tasks that end cancelled are not
 * errors.
 *
 * Nesting: when fut_taskgroup_exit returns FUT_E_GROUP inside a task, the
 * error group is also attached to that task; if the task then ends with
 * FUT_E_GROUP (it returned exit's code), a group it belongs to records
 * that entry with the nested group as its child (fut_error_group_child),
 * and fut_task_error_group gives it to anyone holding the task.
 *
 * Threads: a group belongs to the loop of the task that entered it; every
 * function here runs on that loop's thread, except the fut_error_group_*
 * readers, which may run on any thread that has the group.
 */
#ifndef FUTURE_TASKGROUP_H
#define FUTURE_TASKGROUP_H

#include <stdbool.h>
#include <stddef.h>

#include "future/future.h"
#include "future/task.h"
#include "future/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- error groups --------------------------------------------------------
 * An immutable, refcounted list of failures in the order they happened:
 * each entry is a code (negative), an optional message and, for an entry
 * whose code is FUT_E_GROUP, an optional nested group. */
typedef struct fut_error_group fut_error_group_t;

/* The number of entries (0 for NULL). */
FUT_EXTERN size_t fut_error_group_count(const fut_error_group_t *eg);
/* Entry i's code.  Returns the code (negative), or 0 when eg is NULL or i
 * is out of range.  Errors: none (0 means no such entry). */
FUT_EXTERN int fut_error_group_code(const fut_error_group_t *eg, size_t i);
/* Entry i's message (borrowed, valid while eg lives), or NULL if it has
 * none or there is no such entry. */
FUT_EXTERN const char *fut_error_group_message(const fut_error_group_t *eg,
                                               size_t i);
/* Entry i's nested group (borrowed, valid while eg lives): set for an entry
 * whose code is FUT_E_GROUP and that came from a task that raised a group;
 * NULL otherwise. */
FUT_EXTERN const fut_error_group_t *
fut_error_group_child(const fut_error_group_t *eg, size_t i);
/* True if code is the code of some entry of eg or of a nested group
 * (asyncio: eg.subgroup(T) is not None). */
FUT_EXTERN bool fut_error_group_contains(const fut_error_group_t *eg, int code);
/* Writes a readable multi-line description of eg (nested groups indented)
 * into buf (truncated to size, NUL-terminated when size > 0) and returns
 * the length it needed, as snprintf does. */
FUT_EXTERN size_t fut_error_group_format(const fut_error_group_t *eg, char *buf,
                                         size_t size);
/* Takes a reference to eg (NULL: nothing) and returns eg.  Any thread. */
FUT_EXTERN fut_error_group_t *fut_error_group_ref(const fut_error_group_t *eg);
/* Drops a reference; the last one frees eg and its nested groups' own
 * references.  NULL: nothing.  Any thread. */
FUT_EXTERN void fut_error_group_unref(fut_error_group_t *eg);

/* ---- task groups ------------------------------------------------------- */
typedef struct fut_taskgroup fut_taskgroup_t;

/* Creates a task group, not yet entered and bound to no loop.  *out
 * receives it (the caller owns it: fut_taskgroup_free).  Returns 0 or a
 * negative code.  Errors: -EINVAL (out NULL), -ENOMEM.  Any thread. */
FUT_EXTERN int fut_taskgroup_new(fut_taskgroup_t **out);

/* Enters the group from the calling task, which becomes its parent
 * (`async with`).  If fut_taskgroup_cancel was called before, the group
 * is cancelled now.  Returns 0 or a negative code.  Errors:
 * FUT_E_NOT_IN_TASK, -EINVAL (g NULL), FUT_E_INVALID_STATE (already
 * entered once), -ENOMEM (the group is not entered; enter may be tried
 * again). */
FUT_EXTERN int fut_taskgroup_enter(fut_taskgroup_t *g);

/* Creates a task in the group (TaskGroup.create_task): fn(arg) with opts
 * (may be NULL), as fut_create_task, on the parent's loop.  Callable from
 * the body, from the group's tasks (a task may add siblings) and from
 * callbacks, on the loop's thread.  *out (out may be NULL) receives a
 * reference the caller owns; the group holds its own until the task is
 * done.  Returns 0 or a negative code.  Errors: -EINVAL (g or fn NULL),
 * FUT_E_INVALID_STATE (not entered), FUT_E_GROUP_SHUTDOWN (the group is
 * aborting after a failure or cancel, or exit found it empty and
 * finished: fn never runs), and those of fut_create_task. */
FUT_EXTERN int fut_taskgroup_create_task(fut_taskgroup_t *g, fut_task_fn fn,
                                         void *arg, const fut_task_opts_t *opts,
                                         fut_t **out);

/* Leaves the group (`__aexit__`): err is the body's outcome (0, a failure,
 * or -ECANCELED when the body's await was cancelled).  Suspends the
 * calling task, which must be the parent, until every task of the group is
 * done, by the rules in this header's top comment.  Returns 0; -ECANCELED
 * when the parent's cancellation propagates; FUT_E_GROUP when tasks
 * failed or err was a failure (the list: fut_taskgroup_errors).  Errors:
 * -EINVAL (g NULL), FUT_E_NOT_IN_TASK, FUT_E_INVALID_STATE (not entered,
 * exited already, or called from a task other than the parent). */
FUT_EXTERN int fut_taskgroup_exit(fut_taskgroup_t *g, int err);

/* Cancels the group (TaskGroup.cancel, Python 3.14): cancels its pending
 * tasks and the parent, and fut_taskgroup_exit then returns 0 rather than
 * -ECANCELED (unless the parent was also cancelled from elsewhere).
 * Before enter: the group is cancelled when entered.  After exit, or once
 * aborting: nothing.  Idempotent.  Loop thread. */
FUT_EXTERN void fut_taskgroup_cancel(fut_taskgroup_t *g);

/* The group's failures so far (borrowed, valid until fut_taskgroup_free;
 * take a reference with fut_error_group_ref to keep it longer), or NULL
 * when there are none. */
FUT_EXTERN const fut_error_group_t *
fut_taskgroup_errors(const fut_taskgroup_t *g);

/* The number of the group's tasks not done yet. */
FUT_EXTERN size_t fut_taskgroup_size(const fut_taskgroup_t *g);

/* Frees the group.  A group entered and not exited (the body bailed out
 * without fut_taskgroup_exit, a bug in asyncio terms) has its pending
 * tasks cancelled and forgotten first.  NULL: nothing.  Loop thread once
 * entered. */
FUT_EXTERN void fut_taskgroup_free(fut_taskgroup_t *g);

/* The error group attached to task by its last fut_taskgroup_exit that
 * returned FUT_E_GROUP (borrowed, valid while the caller holds task), or
 * NULL. */
FUT_EXTERN const fut_error_group_t *fut_task_error_group(const fut_t *task);

#ifdef __cplusplus
}
#endif
#endif
