/* libfuture — crossing threads from task code: asyncio's
 * run_coroutine_threadsafe (fut_run_threadsafe: another thread starts a
 * task on a loop and gets a concurrent future) and to_thread
 * (fut_to_thread: a loop runs a blocking function in its default
 * executor and gets a future to await).
 *
 *   // in a plain thread, the loop running in another:
 *   fut_cfuture_t *cf;
 *   fut_run_threadsafe(loop, fetch, "url", &cf);
 *   int64_t n;
 *   int err = fut_cfuture_result_i64(cf, FUT_SEC(5), &n);
 *   if (err == -ETIMEDOUT)
 *     fut_cfuture_cancel(cf);            // cancels the task on its loop
 *   fut_cfuture_unref(cf);
 */
#ifndef FUTURE_THREADSAFE_H
#define FUTURE_THREADSAFE_H

#include "future/cfuture.h"
#include "future/executor.h"
#include "future/future.h"
#include "future/loop.h"
#include "future/task.h"
#include "future/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* asyncio.run_coroutine_threadsafe: from any thread other than the loop's
 * (the loop's own thread works too), schedules a task running fn(arg) on
 * loop (through fut_loop_call_soon_threadsafe, so the task starts on a
 * later iteration) and writes to *out a concurrent future (owned:
 * fut_cfuture_unref) that finishes with the task's outcome: an integer or
 * byte result is copied, a pointer result is handed over with its
 * destructor (the cfuture now owns it), a failure keeps its code and
 * message.  arg is borrowed until the task ends.  Cancelling the cfuture
 * (fut_cfuture_cancel, any thread; it stays pending while the task runs,
 * so the cancel is accepted) cancels the task on its loop; the cfuture is
 * cancelled at once.  If the task ends cancelled, the cfuture is
 * cancelled.  If the loop closes before the task started or ended, the
 * cfuture fails with FUT_E_CLOSED.  Do not cancel or otherwise use the
 * cfuture's link to a loop after fut_loop_free returned for it (reading
 * the finished cfuture is always fine).  Returns 0 or a negative code.
 * Errors: -EINVAL (loop, fn or out NULL), FUT_E_CLOSED (the loop refuses
 * thread-safe calls), -ENOMEM.  Any thread. */
FUT_EXTERN int fut_run_threadsafe(fut_loop_t *loop, fut_task_fn fn, void *arg,
                                  fut_cfuture_t **out);

/* asyncio.to_thread: runs fn(arg, cf) in the running loop's default
 * executor (a call job, future/executor.h: fn sets its outcome on cf or
 * returns a negative code; arg is borrowed until the future is done and fn
 * returned) and writes to *out a loop future (owned) to await, which
 * finishes like the job.  While fn runs, fut_ctxvar_get in its thread sees
 * the caller's context as it was at this call, and fut_ctxvar_set there
 * changes only that copy (asyncio runs the function in a copy of the
 * context).  Cancelling the future does not interrupt fn once it started;
 * if it has not started, it never does.  Returns 0 or a negative code.
 * Errors: FUT_E_NOT_IN_TASK (no loop runs in this thread), -EINVAL (fn or
 * out NULL), those of fut_run_in_executor (FUT_E_SHUTDOWN after the
 * default executor was shut down), -ENOMEM.  Loop thread: tasks and
 * callbacks. */
FUT_EXTERN int fut_to_thread(fut_job_fn fn, void *arg, fut_t **out);

#ifdef __cplusplus
}
#endif
#endif
