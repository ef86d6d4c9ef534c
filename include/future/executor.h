/* libfuture — executors (concurrent.futures and loop.run_in_executor).
 *
 * Three layers:
 *
 *   fut_cfuture_t   concurrent.futures.Future: a thread-safe future that
 *                   needs no loop.  Any thread may complete it, wait on it
 *                   (with a timeout) or read it.  Its done callbacks run in
 *                   the thread that completes it.
 *   fut_executor_t  concurrent.futures.Executor: an opaque object built from
 *                   a small vtable (fut_executor_ops_t).  The library ships
 *                   a thread pool (below) and a process pool
 *                   (future/procpool.h); users may write their own.
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

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "future/future.h"
#include "future/loop.h"
#include "future/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A timeout that never expires. */
#define FUT_FOREVER UINT64_MAX

typedef struct fut_cfuture fut_cfuture_t;
typedef struct fut_executor fut_executor_t;

/* ======================================================================
 * Concurrent futures
 * ====================================================================== */

typedef enum fut_cfuture_state {
  FUT_CFUTURE_PENDING = 0,   /* created or queued; can still be cancelled */
  FUT_CFUTURE_RUNNING = 1,   /* set_running_or_notify_cancel succeeded */
  FUT_CFUTURE_CANCELLED = 2, /* cancelled before it ran */
  FUT_CFUTURE_FINISHED = 3   /* has a result or an exception */
} fut_cfuture_state_t;

/* Done callback of a cfuture: runs in the thread that completed cf (the
 * worker thread for executor jobs, the caller of fut_cfuture_cancel for a
 * cancellation), or inline in fut_cfuture_add_done_callback when cf is
 * already done.  cf is borrowed.  It must not block for long: it delays
 * the completing thread. */
typedef void (*fut_cfuture_done_cb)(fut_cfuture_t *cf, void *arg);

/* Creates a pending cfuture (refs 1).  Executors create them; users rarely
 * need to.  Errors: -EINVAL (out NULL), -ENOMEM.  Any thread. */
FUT_EXTERN int fut_cfuture_new(fut_cfuture_t **out);

/* Reference counting with atomic counts: any thread.  The last unref frees
 * the cfuture and its result (calling the result's destructor).  NULL is a
 * no-op for unref. */
FUT_EXTERN fut_cfuture_t *fut_cfuture_ref(fut_cfuture_t *cf);
FUT_EXTERN void fut_cfuture_unref(fut_cfuture_t *cf);

/* State queries, any thread (a snapshot: may change right after). */
FUT_EXTERN fut_cfuture_state_t fut_cfuture_state(const fut_cfuture_t *cf);
/* Finished or cancelled. */
FUT_EXTERN bool fut_cfuture_done(const fut_cfuture_t *cf);
FUT_EXTERN bool fut_cfuture_cancelled(const fut_cfuture_t *cf);
FUT_EXTERN bool fut_cfuture_running(const fut_cfuture_t *cf);

/* Cancels cf if it is pending, as in Python: returns true if cf is now
 * cancelled (it was pending, or was already cancelled), false if it is
 * running or finished.  On the transition the waiters wake and the done
 * callbacks run in the calling thread before this returns. */
FUT_EXTERN bool fut_cfuture_cancel(fut_cfuture_t *cf);

/* For executors, just before running the job: returns 1 and marks cf
 * running if it was pending; returns 0 if it was cancelled (the job must
 * not run; the cancellation was already notified); FUT_E_INVALID_STATE if
 * it is running or finished already.  Any thread. */
FUT_EXTERN int fut_cfuture_set_running_or_notify_cancel(fut_cfuture_t *cf);

/* Completing (any thread).  Each finishes a pending or running cfuture,
 * wakes its waiters and runs its done callbacks in the calling thread.
 * Ownership is as for fut_set_result: cf owns ptr and calls dtor(ptr) (dtor
 * may be NULL) when freed; on error cf takes nothing.  Errors:
 * FUT_E_INVALID_STATE (already finished or cancelled), -ENOMEM. */
FUT_EXTERN int fut_cfuture_set_result(fut_cfuture_t *cf, void *ptr,
                                      fut_free_fn dtor);
/* Copies len bytes (data may be NULL when len is 0). */
FUT_EXTERN int fut_cfuture_set_result_bytes(fut_cfuture_t *cf, const void *data,
                                            size_t len);
/* Takes over a malloc'd buffer (freed with free()). */
FUT_EXTERN int fut_cfuture_set_result_bytes_owned(fut_cfuture_t *cf, void *data,
                                                  size_t len);
FUT_EXTERN int fut_cfuture_set_result_i64(fut_cfuture_t *cf, int64_t value);
/* err must be negative (-EINVAL otherwise); fmt (may be NULL) formats a
 * message kept with the exception.  -ECANCELED here is a failure with that
 * code, not a cancellation. */
FUT_EXTERN int fut_cfuture_set_exception(fut_cfuture_t *cf, int err,
                                         const char *fmt, ...) FUT_PRINTF(3, 4);
FUT_EXTERN int fut_cfuture_set_exceptionv(fut_cfuture_t *cf, int err,
                                          const char *fmt, va_list ap);

/* Blocks until cf is done or timeout_ns passed.  Returns 0 when done,
 * -ETIMEDOUT otherwise.  Never call it from one of the threads that would
 * complete cf (a worker of the pool running it).  Any thread. */
FUT_EXTERN int fut_cfuture_wait(fut_cfuture_t *cf, uint64_t timeout_ns);

/* Reading, as Python's result(timeout) / exception(timeout): wait up to
 * timeout_ns (0 = do not wait), then return 0 with the result, the job's
 * error code if it failed, -ECANCELED if cancelled, -ETIMEDOUT if still
 * not done.  Results are borrowed: valid while the caller holds a
 * reference to cf (a done cfuture never changes).  out/data/len may be
 * NULL.  _bytes gives the data and length of a byte result (a pointer
 * result gives its pointer and length 0); _i64 the value of an integer
 * result (0 for other kinds).  Any thread. */
FUT_EXTERN int fut_cfuture_result(fut_cfuture_t *cf, uint64_t timeout_ns,
                                  void **out);
FUT_EXTERN int fut_cfuture_result_bytes(fut_cfuture_t *cf, uint64_t timeout_ns,
                                        const void **data, size_t *len);
FUT_EXTERN int fut_cfuture_result_i64(fut_cfuture_t *cf, uint64_t timeout_ns,
                                      int64_t *out);
/* Returns 0 if cf finished with a result, its error code if it failed,
 * -ECANCELED if cancelled, -ETIMEDOUT if not done in time.  *msg (msg may
 * be NULL) receives the exception message (borrowed like results, NULL if
 * none). */
FUT_EXTERN int fut_cfuture_exception(fut_cfuture_t *cf, uint64_t timeout_ns,
                                     const char **msg);

/* Registers cb(cf, arg).  If cf is not done, cb runs later in the thread
 * that completes it; if cf is already done, cb runs now, inline, in the
 * calling thread (as in Python) — before this returns 0.  Callbacks run
 * in registration order, each exactly once.  Errors: -EINVAL, -ENOMEM
 * (cb never runs). */
FUT_EXTERN int fut_cfuture_add_done_callback(fut_cfuture_t *cf,
                                             fut_cfuture_done_cb cb, void *arg);
/* Removes every registration of (cb, arg) that has not started running;
 * returns how many.  After it returns, a removed cb never runs; a cb
 * already running in another thread may still be running. */
FUT_EXTERN int fut_cfuture_remove_done_callback(fut_cfuture_t *cf,
                                                fut_cfuture_done_cb cb,
                                                void *arg);

/* ---- waiting on several ------------------------------------------------- */

typedef enum fut_cfuture_wait_when {
  FUT_CFUTURE_FIRST_COMPLETED = 0, /* any one done */
  /* any one failed (not cancelled), else all */
  FUT_CFUTURE_FIRST_EXCEPTION = 1,
  FUT_CFUTURE_ALL_COMPLETED = 2 /* all done */
} fut_cfuture_wait_when_t;

/* concurrent.futures.wait: blocks until the condition holds or timeout_ns
 * passed, then writes done[i] (done may be NULL) for each of the n
 * cfutures and returns how many are done (>= 0; a timeout is not an
 * error, as in Python: fewer are done).  fs may repeat a cfuture.
 * Errors: -EINVAL (fs NULL with n > 0, a NULL entry, bad when), -ENOMEM.
 * Any thread. */
FUT_EXTERN int fut_cfuture_wait_many(fut_cfuture_t *const *fs, size_t n,
                                     fut_cfuture_wait_when_t when,
                                     uint64_t timeout_ns, bool *done);

/* concurrent.futures.as_completed: an iterator yielding each of the n
 * cfutures once, in the order they complete (those already done first, in
 * array order).  The deadline is timeout_ns from creation, as in Python.
 * The iterator holds references to the cfutures.  Errors: -EINVAL,
 * -ENOMEM.  One thread at a time per iterator. */
typedef struct fut_cfuture_as_completed fut_cfuture_as_completed_t;
FUT_EXTERN int fut_cfuture_as_completed(fut_cfuture_t *const *fs, size_t n,
                                        uint64_t timeout_ns,
                                        fut_cfuture_as_completed_t **out);
/* Blocks for the next done cfuture and writes it (borrowed: valid while the
 * iterator lives) to *out.  Returns 0, -ETIMEDOUT once the deadline passed
 * with cfutures left, -ENOENT when every cfuture was yielded. */
FUT_EXTERN int fut_cfuture_as_completed_next(fut_cfuture_as_completed_t *it,
                                             fut_cfuture_t **out);
/* Frees the iterator and its references.  NULL is a no-op. */
FUT_EXTERN void fut_cfuture_as_completed_free(fut_cfuture_as_completed_t *it);

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
 *   Returns 0 or a negative code (nothing queued, *out untouched):
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
 * Errors: -EINVAL (a NULL op), -ENOMEM (self untouched). */
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
 * cfuture (owned).  Errors: -EINVAL, FUT_E_SHUTDOWN (after shutdown),
 * FUT_E_BROKEN_POOL (an initializer failed), FUT_E_NOT_SENDABLE (this
 * executor cannot run call jobs), -ENOMEM.  Any thread. */
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

/* ---- the thread pool (ThreadPoolExecutor) -------------------------------- */

typedef struct fut_thread_pool_opts {
  /* Maximum worker threads; 0 = min(32, ncpu + 4) as in Python, where ncpu
   * is the CPUs this process may run on.  Threads start on demand: a
   * submission starts one when no worker is idle and fewer than
   * max_workers exist. */
  size_t max_workers;
  /* Thread name prefix (pthread_setname_np, truncated to 15 bytes with the
   * index): "<prefix>_<n>".  NULL = "fut-pool".  Copied. */
  const char *name_prefix;
  /* Run by each new worker before its first job, with initarg.  Failure
   * (non-zero) breaks the pool: every pending and later job fails with
   * FUT_E_BROKEN_POOL. */
  fut_init_fn initializer;
  void *initarg;
} fut_thread_pool_opts_t;

/* Fills *o with the defaults. */
FUT_EXTERN void fut_thread_pool_opts_init(fut_thread_pool_opts_t *o);

/* Creates a thread pool.  o may be NULL (defaults).  No thread is started
 * before the first submission.  Several pools may coexist.  Errors:
 * -EINVAL (out NULL, max_workers > 4096), -ENOMEM.  Any thread. */
FUT_EXTERN int fut_thread_pool_new_ex(const fut_thread_pool_opts_t *o,
                                      fut_executor_t **out);
/* Shorthand: max_workers (0 = default), the other options default. */
FUT_EXTERN int fut_thread_pool_new(size_t max_workers, fut_executor_t **out);
/* min(32, ncpu + 4). */
FUT_EXTERN size_t fut_thread_pool_default_workers(void);

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
 * Errors: -EINVAL, FUT_E_CLOSED, FUT_E_WRONG_THREAD, -ENOMEM.  Loop
 * thread only. */
FUT_EXTERN int fut_wrap_future(fut_loop_t *loop, fut_cfuture_t *cf,
                               fut_t **out);

/* loop.run_in_executor: submits fn(arg, cf) to ex (NULL = the loop's
 * default executor, created on first use: a thread pool with default
 * options) and writes a loop future (owned) wrapping the job's cfuture.
 * Errors: those of fut_executor_submit and fut_wrap_future; FUT_E_SHUTDOWN
 * when ex is NULL after fut_loop_shutdown_default_executor.  Loop thread
 * only. */
FUT_EXTERN int fut_run_in_executor(fut_loop_t *loop, fut_executor_t *ex,
                                   fut_job_fn fn, void *arg, fut_t **out);
/* The same for any job descriptor (e.g. a bytes job for a process pool). */
FUT_EXTERN int fut_run_in_executor_job(fut_loop_t *loop, fut_executor_t *ex,
                                       const fut_job_t *job, fut_t **out);

/* loop.set_default_executor: the loop takes its own reference to ex (the
 * caller keeps theirs) and drops its reference to the previous default,
 * without shutting it down unless that was the last reference.  Errors:
 * -EINVAL (ex NULL), FUT_E_CLOSED, FUT_E_WRONG_THREAD.  Loop thread. */
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
