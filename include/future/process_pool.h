/* libfuture — process pool (concurrent.futures.ProcessPoolExecutor).
 *
 * A process pool runs CPU-bound jobs in worker processes.  A job is a
 * function of this program (or of a shared library it loaded at startup)
 * plus argument bytes; its reply is result bytes or an error code with a
 * message.  Nothing but bytes crosses the process boundary: pointers in the
 * argument mean nothing in the worker.
 *
 * Two ways in, one prefix:
 *  - as an executor, like fut_thread_pool_new: fut_process_pool_new and
 *    fut_process_pool_new_ex give a fut_executor_t that runs bytes jobs
 *    (cfutures, fut_run_in_executor_job, fut_executor_free);
 *  - as the pool itself: fut_process_pool_create gives a
 *    fut_process_pool_t, fut_process_pool_submit queues a job whose
 *    callbacks run on the pool's manager thread, fut_process_pool_destroy
 *    frees it.
 *
 * How workers are made.  fut_process_pool_create starts a fork server: the
 * pool's manager thread spawns (posix_spawn: fork and exec in one step)
 * /proc/self/exe with a marker in the environment; libfuture's constructor sees
 * the marker before the program's main runs and turns the new image into a
 * single-threaded fork server, which forks one worker per slot on request.  A
 * worker is thus a fork of a process that never had a second thread: it never
 * inherits a lock held by one of the parent's threads (stdio, malloc, the
 * user's mutexes), whatever the parent was doing.  Because the exec'd image has
 * its own address-space layout, a job's function travels as (module name,
 * offset in the module), computed with dl_iterate_phdr at submit and
 * resolved in the worker by the same module's base plus the offset.
 *
 * What may be sent:
 *  - a function defined in the main executable or in a shared library
 *    loaded at program start (DT_NEEDED); one from a library loaded later
 *    with dlopen works if the worker can dlopen the same path;
 *  - never a function in memory that no module maps (JIT code, trampolines
 *    on the heap): submit fails with FUT_E_NOT_SENDABLE at once;
 *  - argument and result bytes up to opts.max_frame (default 1 GiB) each;
 *    more fails with FUT_E_TOO_BIG (at submit for arguments, as the job's
 *    error for results).
 * The worker runs the program's static constructors (it is an exec of the
 * same executable) but never its main: state that main sets up is absent
 * unless the pool's initializer sets it up.
 *
 * Workers exit when the parent dies (PR_SET_PDEATHSIG and EOF on their
 * socket).  A worker that dies while running a job fails that job only
 * with FUT_E_WORKER_DIED and a message naming its pid and signal or exit
 * status; it is reaped by the fork server and replaced on demand.
 *
 * Thread-safety: every function here may be called from any thread.
 * Completion callbacks run on the pool's manager thread.
 */
#ifndef FUTURE_PROCESS_POOL_H
#define FUTURE_PROCESS_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "future/executor.h"
#include "future/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fut_process_pool fut_process_pool_t;

/* The output buffer a job writes its result bytes (or error message) into.
 * Opaque; only valid inside the job call. */
typedef struct fut_buf fut_buf_t;

/* A job: runs in a worker process with the argument bytes (borrowed, valid
 * for the call, 16-byte aligned) and writes its result into out.  Returns 0
 * on success (the bytes in out are the result), or a negative code: the job
 * fails with that code and the message set by fut_buf_errorf (if any).  A
 * positive return is a bug in the job and fails it with FUT_E_JOB_FAILED. */
typedef int (*fut_process_pool_job_fn)(const void *arg, size_t len,
                                       fut_buf_t *out);

/* Runs once in each worker before its first job, with the initializer
 * argument bytes.  A negative return, or the worker dying in it (a crash),
 * breaks the pool: every pending and future job fails with
 * FUT_E_BROKEN_POOL (Python's BrokenProcessPool). */
typedef int (*fut_process_pool_init_fn)(const void *arg, size_t len);

/* ---- inside a job ------------------------------------------------------ */

/* Appends len bytes to the result.  Returns 0 or a negative code.  Errors:
 * -ENOMEM, FUT_E_TOO_BIG (the result would exceed the pool's max_frame). */
FUT_EXTERN int fut_buf_append(fut_buf_t *out, const void *data, size_t len);
/* Resizes the result to len bytes and returns a pointer to them (the old
 * content is kept up to len; new bytes are uninitialised), NULL on failure
 * (-ENOMEM or FUT_E_TOO_BIG recorded for fut_last_error).  The pointer is
 * valid until the next call on out. */
FUT_EXTERN void *fut_buf_resize(fut_buf_t *out, size_t len);
/* The result bytes written so far (length through *len, may be NULL). */
FUT_EXTERN void *fut_buf_data(fut_buf_t *out, size_t *len);
/* Records the message of a failure and returns err, so a job can write
 * `return fut_buf_errorf(out, -EINVAL, "bad n %d", n);`.  The message is
 * truncated to 1000 bytes. */
FUT_EXTERN int fut_buf_errorf(fut_buf_t *out, int err, const char *fmt, ...)
    FUT_PRINTF(3, 4);

/* ---- the pool ---------------------------------------------------------- */

typedef struct fut_process_pool_opts {
  unsigned max_workers;         /* 0: the number of CPUs we may run on */
  unsigned max_tasks_per_child; /* 0: unlimited; else a worker exits after
                                   this many jobs and a new one replaces it */
  fut_process_pool_init_fn initializer; /* NULL: none */
  const void *initarg;                  /* copied; at most 64 KiB */
  size_t initarg_len;
  size_t max_frame; /* cap on argument and result bytes;
                       0: 1 GiB; SIZE_MAX: no cap */
} fut_process_pool_opts_t;

/* Fills opts with the defaults (all zero: see the fields). */
FUT_EXTERN void fut_process_pool_opts_init(fut_process_pool_opts_t *opts);

/* Creates a pool and starts its fork server and manager thread; workers
 * are forked on demand.  opts may be NULL for the defaults.  Returns 0 or a
 * negative code.  Errors: -EINVAL (bad options), FUT_E_NOT_SENDABLE
 * (initializer not in a module), FUT_E_TOO_BIG (initarg over 64 KiB), -ENOMEM,
 * -errno of a failed socketpair / fork / exec (the detail says which),
 * -ETIMEDOUT when the exec'd fork server does not answer within 10 s (libfuture
 * was dlopen'ed: /proc/self/exe then lacks its constructor; the image is
 * killed).  Free with fut_process_pool_destroy. */
FUT_EXTERN int fut_process_pool_create(const fut_process_pool_opts_t *opts,
                                       fut_process_pool_t **out);

/* Called exactly once per accepted job, on the manager thread (or, for
 * jobs cancelled by shutdown, on the thread calling shutdown).  err is 0
 * with the result bytes in data/len (data is malloc'd; the callback owns it
 * and must free() it; NULL when len is 0), or a negative code with a
 * message (borrowed, may be NULL) and data NULL: the job's own code,
 * -ECANCELED (never started), FUT_E_WORKER_DIED, FUT_E_BROKEN_POOL,
 * FUT_E_SHUTDOWN (abandoned by a shutdown timeout), FUT_E_NOT_SENDABLE
 * (the worker could not resolve the function), FUT_E_TOO_BIG. */
typedef void (*fut_process_pool_done_cb)(void *ud, int err, void *data,
                                         size_t len, const char *msg);
/* Called on the manager thread when the job is about to be sent to a
 * worker; returning false means the job was cancelled meanwhile: it is not
 * run and done is called with -ECANCELED.  May be NULL. */
typedef bool (*fut_process_pool_start_cb)(void *ud);

/* Queues fn(arg bytes) (arg is copied; arg may be NULL when len is 0).
 * start and done are called as above with ud.  Returns 0 or a negative code.
 * Errors (nothing queued, no callback will run): -EINVAL, FUT_E_NOT_SENDABLE,
 * FUT_E_TOO_BIG, FUT_E_SHUTDOWN, FUT_E_BROKEN_POOL, -ENOMEM, or -errno of the
 * write that wakes the pool's manager (EINTR is retried). */
FUT_EXTERN int fut_process_pool_submit(fut_process_pool_t *pool,
                                       fut_process_pool_job_fn fn,
                                       const void *arg, size_t len,
                                       fut_process_pool_start_cb start,
                                       fut_process_pool_done_cb done, void *ud);

/* Stops the pool.  New submits fail with FUT_E_SHUTDOWN.  With
 * cancel_pending, jobs not yet sent to a worker complete with -ECANCELED
 * (before this returns); otherwise they still run.  With wait, blocks until
 * every job completed and the workers, the fork server and the manager
 * thread are gone — at most timeout_ns (UINT64_MAX: no limit): when it
 * expires, the workers are killed, their jobs fail with FUT_E_SHUTDOWN and
 * this returns -ETIMEDOUT (after the teardown, which no longer waits for
 * jobs); if no job was lost that way and no worker was killed in its
 * start-up (the pool was idle, its workers dead or never started), it
 * returns 0 once the teardown is done, so a timeout of 0 kills the workers
 * of running jobs, as Python's kill_workers(), and reports -ETIMEDOUT only
 * when there were any.  Without wait, returns at once; the teardown happens
 * when the last job completes (and fut_process_pool_destroy waits for it).
 * Calling it again is fine (a later call may wait for an earlier one's
 * teardown). */
FUT_EXTERN int fut_process_pool_shutdown(fut_process_pool_t *pool, bool wait,
                                         bool cancel_pending,
                                         uint64_t timeout_ns);

/* Shuts down (wait, without cancelling pending jobs, unless shutdown ran
 * before) and frees the pool.  From one of the pool's own completion
 * callbacks it does not wait: the pool frees itself once its last job is
 * done.  NULL is a no-op. */
FUT_EXTERN void fut_process_pool_destroy(fut_process_pool_t *pool);

/* ---- as an executor (concurrent.futures.ProcessPoolExecutor) ----------- */

/* Creates a process pool wrapped as a fut_executor_t (see executor.h), so
 * fut_executor_submit_job / fut_executor_map_jobs give cfutures and
 * fut_run_in_executor_job(loop, ex, &job, &f) a loop future.  It runs
 * bytes jobs (fut_job_bytes: a fut_bytes_fn and argument bytes; the result
 * is a byte result of the cfuture); a call job (fut_job_call: a pointer
 * argument) fails at submit with FUT_E_NOT_SENDABLE, as does a function
 * that no module maps.  fut_executor_self(ex) is the fut_process_pool_t, for
 * the diagnostics below and fut_process_pool_submit.
 *
 * Cancelling a cfuture stops its job if no worker took it yet.
 * fut_executor_shutdown behaves as fut_process_pool_shutdown: a wait that times
 * out kills the workers (unlike a thread pool, a process can be stopped)
 * and fails their jobs with FUT_E_SHUTDOWN.  A bytes job's failure carries
 * its code and a message naming it.  Returns 0 or a negative code.  Errors: as
 * fut_process_pool_create. */
FUT_EXTERN int fut_process_pool_new_ex(const fut_process_pool_opts_t *opts,
                                       fut_executor_t **out);
/* Shorthand: max_workers (0 = ncpu), the other options default. */
FUT_EXTERN int fut_process_pool_new(size_t max_workers, fut_executor_t **out);

/* Diagnostics.  The fork server's pid (0 once it is gone). */
FUT_EXTERN pid_t fut_process_pool_server_pid(const fut_process_pool_t *pool);
/* Worker processes alive now. */
FUT_EXTERN unsigned fut_process_pool_nworkers(const fut_process_pool_t *pool);

#ifdef __cplusplus
}
#endif
#endif
