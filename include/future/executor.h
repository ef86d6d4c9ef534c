/* libfuture — executors (concurrent.futures.Executor) and the loop glue
 * (asyncio.wrap_future, loop.run_in_executor).
 *
 *   fut_job_t       what is submitted: a call job or a bytes job (below).
 *   fut_executor_t  concurrent.futures.Executor: an opaque object built from
 *                   a small vtable (fut_executor_ops_t).  The library ships
 *                   a thread pool (future/thread_pool.h) and a process pool
 *                   (future/process_pool.h); users may write their own.  Each
 *                   submission gives a concurrent future
 *                   (future/cfuture.h).
 *   loop glue       fut_wrap_future turns a cfuture into a loop future;
 *                   fut_run_in_executor submits a job and returns a loop
 *                   future; each loop has a lazily created default executor.
 *
 * Jobs.  A job is described by a fut_job_t, which carries one of two kinds
 * of function:
 *   - a call job, fut_job_fn: fn(arg, cf) runs in a worker thread of the
 *     same process with a borrowed pointer argument and sets its outcome on
 *     cf (or returns a negative code);
 *   - a bytes job, fut_bytes_fn: fn(data, len, &out, &out_len) maps argument
 *     bytes to result bytes.  It can run anywhere, including a worker
 *     process; the cfuture then holds a byte result.
 * The thread pool runs both kinds; a process pool runs only bytes jobs (a
 * call job fails at submit with FUT_E_NOT_SENDABLE).
 *
 * Cancellation: cancelling a cfuture stops its job only if it has not
 * started.  A running job is never interrupted; its late result is dropped
 * by any loop future that was cancelled meanwhile.
 *
 * Time: timeouts are nanoseconds (FUT_MS, FUT_SEC); FUT_FOREVER waits
 * without limit, 0 polls.
 */
#ifndef FUTURE_EXECUTOR_H
#define FUTURE_EXECUTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "future/cfuture.h"
#include "future/future.h"
#include "future/loop.h"
#include "future/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fut_executor fut_executor_t;

/* ======================================================================
 * Jobs
 * ====================================================================== */

/* A call job: runs in a worker thread with arg (borrowed: it must stay
 * valid until cf is done) and cf, the job's cfuture, already marked
 * running.  The job sets its outcome on cf with fut_cfuture_set_result*
 * or fut_cfuture_set_exception and returns 0, or returns a negative code
 * and leaves cf alone (cf then fails with that code and the job's
 * fut_last_error() detail as message).  Returning 0 without setting cf
 * finishes it with a NULL pointer result (Python's None).  A positive
 * return is treated as FUT_E_JOB_FAILED. */
typedef int (*fut_job_fn)(void *arg, fut_cfuture_t *cf);

/* A bytes job: reads len argument bytes at data (borrowed, read-only) and
 * writes a malloc'd result to *out (or NULL when *out_len is 0), which the
 * executor takes over.  Returns 0, or a negative code for a failure (then
 * *out is ignored and freed if set).  It may run in another process: it
 * must not rely on pointers inside the argument or on state the caller set
 * up after the pool was created. */
typedef int (*fut_bytes_fn)(const void *data, size_t len, void **out,
                            size_t *out_len);

/* An initializer run by each new worker (thread or process) before its
 * first job; a non-zero return breaks the pool: queued and later jobs fail
 * with FUT_E_BROKEN_POOL, as in Python. */
typedef int (*fut_init_fn)(void *arg);

/* What is submitted.  Exactly one of fn and bytes_fn is set. */
typedef struct fut_job {
  fut_job_fn fn;         /* call job, or NULL */
  void *arg;             /* call job: borrowed argument */
  fut_bytes_fn bytes_fn; /* bytes job, or NULL */
  const void *data;      /* bytes job: argument (NULL allowed if len 0) */
  size_t len;            /* bytes job: argument length */
  /* Bytes job: if NULL, data is borrowed for the duration of submit (the
   * executor copies what it keeps); if set, a successful submit takes
   * ownership of data and calls data_free(data) when done with it (on
   * failure the caller keeps it). */
  fut_free_fn data_free;
} fut_job_t;

/* A call job's descriptor. */
static inline fut_job_t fut_job_call(fut_job_fn fn, void *arg) {
  fut_job_t j = {fn, arg, NULL, NULL, 0, NULL};
  return j;
}
/* A bytes job's descriptor (data borrowed during submit). */
static inline fut_job_t fut_job_bytes(fut_bytes_fn fn, const void *data,
                                      size_t len) {
  fut_job_t j = {NULL, NULL, fn, data, len, NULL};
  return j;
}

/* Helpers for executor writers.
 *
 * fut_job_copy makes a heap job that owns its argument bytes (copied, or
 * taken over when src->data_free is set) so submit can return at once.
 * Errors: -EINVAL (not exactly one function), -ENOMEM (src untouched). */
FUT_EXTERN int fut_job_copy(const fut_job_t *src, fut_job_t **out);
/* Frees a job made by fut_job_copy (and its data).  NULL is a no-op. */
FUT_EXTERN void fut_job_free(fut_job_t *job);
/* Runs job for cf in the calling thread: set_running_or_notify_cancel,
 * then the function, then sets cf's outcome from what it returned.
 * Returns true if the job ran, false if cf was cancelled (or not pending). */
FUT_EXTERN bool fut_job_run(const fut_job_t *job, fut_cfuture_t *cf);

/* ======================================================================
 * Executors
 * ====================================================================== */

/* The executor interface.  `self` is the implementation's object given to
 * fut_executor_new.  The generic functions below check their arguments,
 * refuse submissions after shutdown (FUT_E_SHUTDOWN) and serialize
 * nothing else: submit may be called from several threads at once.
 *
 * submit: queues job and writes a new cfuture reference (owned by the
 *   caller) to *out; the executor keeps its own reference until it
 *   completes the cfuture.  It must copy what it keeps of job (job itself
 *   and a borrowed job->data are only valid during the call; see
 *   fut_job_copy) and must complete the cfuture exactly once (result,
 *   exception, or cancellation through set_running_or_notify_cancel).
 *   Returns 0 or a negative code (nothing queued; the caller of
 *   fut_executor_submit gets NULL whatever the op left in its out):
 *   FUT_E_SHUTDOWN, FUT_E_BROKEN_POOL, FUT_E_NOT_SENDABLE, -ENOMEM...
 * shutdown: stops accepting jobs.  If cancel_pending, cancels the jobs
 *   not started.  If wait, blocks until every job completed and every
 *   worker is gone, or timeout_ns passed (-ETIMEDOUT; work continues and
 *   a later shutdown may wait again).  May be called several times.
 * destroy: releases self.  Called once, after a shutdown, by the last
 *   fut_executor_free.  Work still running after a shutdown that did not
 *   wait must keep what it needs alive by itself. */
typedef struct fut_executor_ops {
  const char *name; /* for messages: "thread pool", "process pool" */
  int (*submit)(void *self, const fut_job_t *job, fut_cfuture_t **out);
  int (*shutdown)(void *self, bool wait, bool cancel_pending,
                  uint64_t timeout_ns);
  void (*destroy)(void *self);
} fut_executor_ops_t;

/* Wraps (ops, self) into an executor (refs 1).  ops must outlive it.
 * Returns 0 or a negative code.  Errors: -EINVAL (a NULL op), -ENOMEM (self
 * untouched). */
FUT_EXTERN int fut_executor_new(const fut_executor_ops_t *ops, void *self,
                                fut_executor_t **out);
/* The self pointer and ops given to fut_executor_new. */
FUT_EXTERN void *fut_executor_self(const fut_executor_t *ex);
FUT_EXTERN const fut_executor_ops_t *fut_executor_ops(const fut_executor_t *ex);

/* Executors are refcounted (atomic, any thread): a loop keeps a reference
 * to its default executor.  fut_executor_free drops one reference; the
 * last one shuts the executor down with wait (unless a shutdown already
 * happened, in which case it does not wait again), then destroys it.
 * NULL is a no-op. */
FUT_EXTERN fut_executor_t *fut_executor_ref(fut_executor_t *ex);
FUT_EXTERN void fut_executor_free(fut_executor_t *ex);

/* Submits a call job fn(arg, cf) (see fut_job_fn); *out receives the
 * cfuture (owned).  Returns 0 or a negative code.  Errors: -EINVAL,
 * FUT_E_SHUTDOWN (after shutdown), FUT_E_BROKEN_POOL (an initializer failed),
 * FUT_E_NOT_SENDABLE (this executor cannot run call jobs), -ENOMEM.  Any
 * thread. */
FUT_EXTERN int fut_executor_submit(fut_executor_t *ex, fut_job_fn fn, void *arg,
                                   fut_cfuture_t **out);
/* Submits any job.  Errors: as above. */
FUT_EXTERN int fut_executor_submit_job(fut_executor_t *ex, const fut_job_t *job,
                                       fut_cfuture_t **out);

/* Executor.map: submits fn(args[i]) for i < n in order and writes the n
 * cfutures (owned) to out[] in the same order, so reading them in order
 * gives the results in argument order whatever order they complete in.
 * All or nothing: on an error every job already submitted is cancelled,
 * its reference dropped, and out[] is left NULL.  Errors: as
 * fut_executor_submit.  Any thread. */
FUT_EXTERN int fut_executor_map(fut_executor_t *ex, fut_job_fn fn,
                                void *const *args, size_t n,
                                fut_cfuture_t **out);
/* The same for an array of job descriptors (bytes jobs included). */
FUT_EXTERN int fut_executor_map_jobs(fut_executor_t *ex, const fut_job_t *jobs,
                                     size_t n, fut_cfuture_t **out);

/* Executor.shutdown(wait, cancel_futures) with a timeout (FUT_FOREVER for
 * none).  Later submissions fail with FUT_E_SHUTDOWN.  Returns 0,
 * -ETIMEDOUT (wait ran out of time; jobs keep running), -EDEADLK (wait
 * asked from one of the executor's own workers), -EINVAL.  Idempotent;
 * any thread. */
FUT_EXTERN int fut_executor_shutdown(fut_executor_t *ex, bool wait,
                                     bool cancel_pending, uint64_t timeout_ns);
/* True once fut_executor_shutdown was called. */
FUT_EXTERN bool fut_executor_is_shutdown(const fut_executor_t *ex);

/* ======================================================================
 * Loop glue (asyncio.wrap_future, loop.run_in_executor)
 * ====================================================================== */

/* Makes a loop future that completes like cf, on the loop's thread
 * (asyncio.wrap_future).  The loop future takes its own reference to cf.
 * Completions from worker threads reach the loop in batches: one
 * thread-safe wake-up carries every completion that arrived meanwhile.
 * Cancelling the loop future cancels cf if cf has not started (a running
 * job is not interrupted); the loop future is cancelled either way, and
 * the job's late result is dropped.  A result is shared: a pointer result
 * stays owned by cf (kept alive by the loop future), byte and integer
 * results read the same through fut_result_bytes / fut_result_i64.
 * Returns 0 or a negative code.  Errors: -EINVAL, FUT_E_CLOSED,
 * FUT_E_WRONG_THREAD, -ENOMEM.  Loop thread only. */
FUT_EXTERN int fut_wrap_future(fut_loop_t *loop, fut_cfuture_t *cf,
                               fut_t **out);

/* loop.run_in_executor: submits fn(arg, cf) to ex (NULL = the loop's
 * default executor, created on first use: a thread pool with default
 * options) and writes a loop future (owned) wrapping the job's cfuture.
 * Returns 0 or a negative code.  Errors: those of fut_executor_submit and
 * fut_wrap_future; FUT_E_SHUTDOWN when ex is NULL after
 * fut_loop_shutdown_default_executor.  Loop thread only. */
FUT_EXTERN int fut_run_in_executor(fut_loop_t *loop, fut_executor_t *ex,
                                   fut_job_fn fn, void *arg, fut_t **out);
/* The same for any job descriptor (e.g. a bytes job for a process pool). */
FUT_EXTERN int fut_run_in_executor_job(fut_loop_t *loop, fut_executor_t *ex,
                                       const fut_job_t *job, fut_t **out);

/* loop.set_default_executor: the loop takes its own reference to ex (the
 * caller keeps theirs) and drops its reference to the previous default,
 * without shutting it down unless that was the last reference.  ex must be
 * a thread pool (fut_thread_pool_new / _new_ex), as asyncio requires a
 * ThreadPoolExecutor: the default executor runs arbitrary call jobs
 * (blocking calls, DNS lookups), which a process pool cannot run.  Returns 0 or
 * a negative code.  Errors: -EINVAL (ex NULL, or not a thread pool: a process
 * pool or a user-written executor; the loop keeps its previous default),
 * FUT_E_CLOSED, FUT_E_WRONG_THREAD.  Loop thread. */
FUT_EXTERN int fut_loop_set_default_executor(fut_loop_t *loop,
                                             fut_executor_t *ex);

/* loop.shutdown_default_executor: shuts the default executor down, waiting
 * up to timeout_ns for its jobs (blocking the calling thread; completions
 * are delivered when the loop runs next), then drops the loop's reference.
 * Later run_in_executor(NULL) fails with FUT_E_SHUTDOWN.  Returns 0 (also
 * when there was no default executor) or -ETIMEDOUT (jobs still run; the
 * executor is shut down anyway).  fut_run does this with a 300 s
 * timeout, as asyncio.run does; fut_loop_close only shuts the default
 * executor down without waiting.  Errors: -EINVAL, FUT_E_WRONG_THREAD.
 * Loop thread. */
FUT_EXTERN int fut_loop_shutdown_default_executor(fut_loop_t *loop,
                                                  uint64_t timeout_ns);

#ifdef __cplusplus
}
#endif
#endif
