/* libfuture — tasks (asyncio.Task, asyncio.run) and timeout blocks
 * (asyncio.timeout).  The combinators (gather, wait, wait_for, shield,
 * as_completed, then), which need no task, are in future/combine.h.
 *
 * A task runs a plain C function on a stack of its own.  Inside it,
 * fut_await(f) suspends the task until the future f is done and then
 * returns f's result code: the C form of `result = await f`.  A task is a
 * fut_t: it can be awaited, cancelled, given done callbacks, and its outcome
 * is what its function returns.
 *
 *   static int fetch(void *arg) {
 *     fut_t *job;
 *     fut_run_in_executor(fut_get_running_loop(), NULL, blocking_io, arg,
 *                         &job);
 *     int64_t n;
 *     int err = fut_await_i64(job, &n);
 *     fut_unref(job);
 *     if (err)
 *       return err;                  // the task fails with that code
 *     return fut_task_return_i64(n); // the task's result
 *   }
 *   ...
 *   fut_t *main_task;
 *   int err = fut_run(fetch, "url", &main_task);
 *
 * Task functions and outcomes: fut_task_fn returns 0 or a negative code.
 *   - 0: the task finishes with the result last given by a
 *     fut_task_return_* call inside it (a NULL pointer result if none);
 *   - -ECANCELED: the task ends cancelled (asyncio: the coroutine let
 *     CancelledError out), with the message given by
 *     fut_task_fail(-ECANCELED, ...) if any, else its own cancel message;
 *   - another negative code: the task fails with that code (and the message
 *     given by fut_task_fail, if any);
 *   - a positive value is a bug: the task fails with -EINVAL.
 * As in asyncio, a cancel requested but not yet delivered when the function
 * returns 0 still cancels the task.  Only the task sets its outcome: the
 * setters of future.h (fut_set_result*, fut_set_exception, fut_copy_state)
 * refuse a task with FUT_E_NOT_SETTABLE and leave it untouched (asyncio:
 * Task.set_result raises RuntimeError); fut_cancel is the way in.
 *
 * Cancellation (asyncio's rules): fut_cancel(task, msg) on a pending task
 * returns true and cancels the future the task awaits; that await returns
 * -ECANCELED inside the task.  If the task is not awaiting a pending
 * future, the request is remembered and delivered by its next suspension
 * (fut_await of a pending future, fut_sleep, fut_yield, which then return
 * -ECANCELED) or, if the task never started, the task ends cancelled
 * without running.  The task may catch the -ECANCELED, clean up and go on.
 * fut_task_cancelling / fut_task_uncancel count requests as asyncio 3.11+.
 *
 * Threads: tasks belong to their loop's thread; every function here must be
 * called on that thread.  Task-only functions (fut_await, fut_sleep, ...)
 * return FUT_E_NOT_IN_TASK when called outside a task, never hang.
 *
 * Stacks: each task stack is a slot of a large arena mapping, with a guard
 * region below it; pages are committed only when touched, so a suspended
 * task costs about one stack page plus the task object (measured at 10^6
 * live tasks: about 4,380 bytes of RSS per task, whatever the stack size).
 * The default is 64 KiB (it was 256 KiB): the address space a stack
 * spans is not free after all, each touched top page needs page tables,
 * and with a million tasks spread 320 KiB apart the page walks made every
 * await 15 times dearer (docs/tasks.md, "The await cliff").  Give a task
 * that runs deep C libraries or recursion a larger stack_size.  The guard
 * is a MADV_GUARD_INSTALL region (Linux 6.13+), which costs no VMA; older
 * kernels get one mprotect'd guard per arena and a canary checked at each
 * switch-out (docs/tasks.md, "Guards"), so millions of live tasks fit
 * under the default vm.max_map_count.
 * Overflowing the stack hits the guard and stops the program with a
 * message naming the task and its stack size: the first task created
 * installs a SIGSEGV handler (chaining to any handler installed before it)
 * and an alternate signal stack per thread that runs tasks.  Stacks of
 * finished tasks are recycled through per-loop free lists.
 */
#ifndef FUTURE_TASK_H
#define FUTURE_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "future/future.h"
#include "future/loop.h"
#include "future/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- tasks --------------------------------------------------------------- */

/* A task's function: runs on the task's stack with the arg given to
 * fut_create_task; returns 0 or a negative code (see above). */
typedef int (*fut_task_fn)(void *arg);

/* Default stack size of a task (usable bytes, the guard region excluded):
 * 64 KiB (256 KiB before issue 17; see the Stacks paragraph above). */
#define FUT_TASK_DEFAULT_STACK (64u * 1024u)
/* Smallest stack size accepted. */
#define FUT_TASK_MIN_STACK (16u * 1024u)

/* fut_task_opts_t.flags: the task runs in compact mode.  It runs on a
 * run stack its loop shares among its compact tasks of that stack size;
 * when another compact task needs that stack, the used part of this one's
 * (its frames, from the saved stack pointer up: a few hundred bytes for a
 * task that awaits in its own function) is copied out to a right-sized
 * buffer, and back when it resumes, at the same addresses.  An idle
 * compact task costs its image, not a stack page (docs/tasks.md, "Compact
 * mode").
 * The restriction: while the task is suspended, nobody may use an address
 * inside its stack (a local's address handed to another task, a callback,
 * a fut_to_thread function, a future's result): the bytes there belong to
 * another task then.  Addresses used only while the task runs (a local
 * passed to a function it calls, even one that awaits) are fine, and the
 * library's own waits (locks, queues, conditions, streams...) keep the
 * rule.  In debug mode
 * (fut_loop_set_debug or FUT_DEBUG=1 when the task is created) each compact
 * task gets a run stack of its own, protected while it is suspended, so
 * such an access faults at once and is reported naming the task
 * ("libfuture: compact task '<name>' ...", then SIGSEGV).  A suspension
 * point of a compact task can fail with -ENOMEM (no memory for the
 * image), without suspending. */
#define FUT_TASK_COMPACT 1u

typedef struct fut_task_opts {
  size_t stack_size; /* bytes, rounded up to pages; 0 = the default */
  const char *name;  /* copied; NULL = "Task-<n>" */
  unsigned flags;    /* FUT_TASK_* (0 = a stack of its own); added in 0.1: a
                        caller that fills the struct without
                        fut_task_opts_init must set it (ABI: the struct
                        grew by one field) */
} fut_task_opts_t;

/* Fills opts with the defaults. */
FUT_EXTERN void fut_task_opts_init(fut_task_opts_t *opts);

/* Creates a task that runs fn(arg) on the loop, starting on a later
 * iteration (asyncio.create_task).  *out receives a reference the caller
 * owns (NULL on failure); the loop holds its own reference until the task
 * is done, so dropping yours at once is fire-and-forget.  arg is borrowed.
 * opts may be NULL.  Returns 0 or a negative code.  Errors: -EINVAL (loop, fn
 * or out NULL, stack size too small or too big), FUT_E_CLOSED,
 * FUT_E_WRONG_THREAD, -ENOMEM (memory or address space for the stack). */
FUT_EXTERN int fut_create_task(fut_loop_t *loop, fut_task_fn fn, void *arg,
                               const fut_task_opts_t *opts, fut_t **out);

/* True if f is a task. */
FUT_EXTERN bool fut_is_task(const fut_t *f);
/* The task's name (borrowed, valid while the task lives); NULL if f is not
 * a task.  The default name "Task-<n>" (n: the task's creation number on
 * its loop) is formatted at the first call, not at creation ("Task-?" if
 * memory runs out then). */
FUT_EXTERN const char *fut_task_get_name(const fut_t *task);
/* Renames the task (the string is copied).  Returns 0 or a negative code.
 * Errors: -EINVAL, -ENOMEM. */
FUT_EXTERN int fut_task_set_name(fut_t *task, const char *name);
/* The task's stack size in bytes (usable part); 0 if f is not a task. */
FUT_EXTERN size_t fut_task_stack_size(const fut_t *task);
/* True if f is a task created with FUT_TASK_COMPACT. */
FUT_EXTERN bool fut_task_is_compact(const fut_t *task);

/* The task running now on loop (borrowed), or NULL when called from plain
 * callback code or another loop (asyncio.current_task). */
FUT_EXTERN fut_t *fut_current_task(fut_loop_t *loop);

/* Writes up to cap borrowed pointers to the loop's tasks not yet done into
 * out and returns how many there are in all (asyncio.all_tasks). */
FUT_EXTERN size_t fut_all_tasks(fut_loop_t *loop, fut_t **out, size_t cap);

/* asyncio's Task.cancelling(): the number of cancel requests not yet
 * withdrawn by fut_task_uncancel.  0 if f is not a task. */
FUT_EXTERN unsigned fut_task_cancelling(const fut_t *task);
/* asyncio's Task.uncancel(): decrements the count (not below 0) and
 * returns it; reaching 0 also withdraws a cancel not yet delivered (the
 * asyncio 3.13 fix, so an expired fut_timeout cannot leak a cancel past
 * its block). */
FUT_EXTERN unsigned fut_task_uncancel(fut_t *task);

/* ---- inside a task ------------------------------------------------------- */

/* Suspends the calling task until f is done; returns 0 if f finished with a
 * result, f's error code if it failed, -ECANCELED if f was cancelled or the
 * calling task was cancelled meanwhile.  When f is already done it returns
 * at once without a switch.  *out (out may be NULL) receives f's pointer
 * result, borrowed: valid while the caller holds its reference to f.  The
 * caller keeps its reference to f (fut_await takes one of its own for the
 * wait).  Marks f's exception retrieved.  Errors: FUT_E_NOT_IN_TASK
 * (called outside a task), -EINVAL (f NULL, or f is the calling task),
 * FUT_E_OTHER_LOOP, -ENOMEM; -ECANCELED while the loop is closing. */
FUT_EXTERN int fut_await(fut_t *f, void **out);
/* fut_await for an integer result: *out receives it (0 on error).  Errors:
 * as fut_await, -EINVAL if the result is not an integer. */
FUT_EXTERN int fut_await_i64(fut_t *f, int64_t *out);
/* fut_await for a byte result: *data (borrowed like fut_await's pointer)
 * and *len.  Errors: as fut_await, -EINVAL if the result is not bytes. */
FUT_EXTERN int fut_await_bytes(fut_t *f, const void **data, size_t *len);

/* Suspends the calling task for at least ns nanoseconds (asyncio.sleep);
 * ns 0 is fut_yield.  Returns 0, or -ECANCELED if the task was cancelled
 * meanwhile.  Errors: FUT_E_NOT_IN_TASK, -ENOMEM. */
FUT_EXTERN int fut_sleep(uint64_t ns);
/* Gives the loop one turn: the task runs again on the next iteration
 * (asyncio.sleep(0)).  Returns 0 or -ECANCELED; FUT_E_NOT_IN_TASK. */
FUT_EXTERN int fut_yield(void);

/* Set the calling task's result, used when its function returns 0; a later
 * call replaces an earlier one (the earlier value is released).  They
 * return 0, so `return fut_task_return_i64(n);` ends a task with n.
 * fut_task_return_ptr: the task owns ptr from now on and calls dtor(ptr)
 * (dtor may be NULL) when freed or replaced.  fut_task_return_bytes copies
 * len bytes.  Errors: FUT_E_NOT_IN_TASK (ptr's ownership then stays the
 * caller's), -EINVAL (data NULL with len > 0), -ENOMEM. */
FUT_EXTERN int fut_task_return_i64(int64_t value);
FUT_EXTERN int fut_task_return_ptr(void *ptr, fut_free_fn dtor);
FUT_EXTERN int fut_task_return_bytes(const void *data, size_t len);

/* Records a message for the failure the calling task is about to return,
 * and returns err, so `return fut_task_fail(-EIO, "read %s", path);` fails
 * the task with -EIO and that message.  With -ECANCELED the message is
 * the one the task ends cancelled with (asyncio: a CancelledError caught
 * from an awaited future and re-raised keeps its args): `return
 * fut_task_fail(-ECANCELED, "%s", msg);`.  err must be negative (else it
 * returns -EINVAL).  Outside a task: returns err and records nothing. */
FUT_EXTERN int fut_task_fail(int err, const char *fmt, ...) FUT_PRINTF(2, 3);

/* ---- asyncio.run --------------------------------------------------------- */

/* asyncio.run(main(arg)): creates a loop, runs main as a task until it is
 * done, cancels the tasks still pending and waits for them, shuts down the
 * loop's default executor, closes and frees the loop.  Returns main's
 * result code (0, its error code, -ECANCELED), or an error of loop or task
 * creation.  When out is not NULL it receives a reference to main's task
 * (done; read it with fut_result / fut_result_i64 / fut_result_bytes,
 * release with fut_unref; it stays valid after the loop is gone), NULL on
 * error.  SIGINT during fut_run (if SIGINT had its default disposition and
 * this is the main thread) cancels main, and fut_run then returns -EINTR; a
 * second SIGINT kills the process the default way.  Errors: -EINVAL (main
 * NULL), FUT_E_RUNNING (a loop runs in this thread), -ENOMEM, -EMFILE. */
FUT_EXTERN int fut_run(fut_task_fn main, void *arg, fut_t **out);

/* ---- asyncio.timeout --------------------------------------------------------
 * A deadline for a block of awaits inside a task:
 *
 *   fut_timeout_t *t;
 *   fut_timeout_enter(FUT_SEC(1), &t);
 *   int err = step_one();            // awaits...
 *   if (!err) err = step_two();
 *   err = fut_timeout_exit(t, err);  // -ETIMEDOUT if the deadline cut it
 *
 * At the deadline the task is cancelled (its current await returns
 * -ECANCELED); fut_timeout_exit turns that -ECANCELED into -ETIMEDOUT
 * unless the task was also cancelled from elsewhere (fut_task_cancelling
 * tells), exactly as asyncio.timeout does with uncancel().  Blocks nest. */
typedef struct fut_timeout fut_timeout_t;

/* Enters a timeout of delay_ns from now (UINT64_MAX: none yet).  *out is
 * released by fut_timeout_exit.  Errors: FUT_E_NOT_IN_TASK, -EINVAL,
 * -ENOMEM. */
FUT_EXTERN int fut_timeout_enter(uint64_t delay_ns, fut_timeout_t **out);
/* Moves the deadline to loop time `when` (UINT64_MAX: none); a deadline in
 * the past expires at the next iteration.  Errors: -EINVAL (t NULL),
 * FUT_E_INVALID_STATE (already expired or exited). */
FUT_EXTERN int fut_timeout_reschedule(fut_timeout_t *t, uint64_t when);
/* The deadline in loop time, UINT64_MAX if none. */
FUT_EXTERN uint64_t fut_timeout_when(const fut_timeout_t *t);
/* True once the deadline fired. */
FUT_EXTERN bool fut_timeout_expired(const fut_timeout_t *t);
/* Leaves the block whose outcome is err; returns -ETIMEDOUT if err is
 * -ECANCELED caused by this timeout only, else err.  Frees t. */
FUT_EXTERN int fut_timeout_exit(fut_timeout_t *t, int err);

#ifdef __cplusplus
}
#endif
#endif
