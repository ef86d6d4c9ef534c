/* libfuture — the thread pool (concurrent.futures.ThreadPoolExecutor).
 *
 * A thread pool is a fut_executor_t (future/executor.h): submit to it with
 * fut_executor_submit* / fut_executor_map*, or hand it to
 * fut_run_in_executor, which takes a fast path for it (the job travels in
 * its loop future, with no allocation per job).  It runs call jobs and
 * bytes jobs.  Workers start on demand, up to max_workers; several pools
 * may coexist.  A loop's default executor is a thread pool with default
 * options.
 */
#ifndef FUTURE_THREAD_POOL_H
#define FUTURE_THREAD_POOL_H

#include <stddef.h>

#include "future/executor.h"
#include "future/version.h"

#ifdef __cplusplus
extern "C" {
#endif

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
 * before the first submission.  Several pools may coexist.  Returns 0 or a
 * negative code.  Errors: -EINVAL (out NULL, max_workers > 4096), -ENOMEM.  Any
 * thread. */
FUT_EXTERN int fut_thread_pool_new_ex(const fut_thread_pool_opts_t *o,
                                      fut_executor_t **out);
/* Shorthand: max_workers (0 = default), the other options default. */
FUT_EXTERN int fut_thread_pool_new(size_t max_workers, fut_executor_t **out);
/* min(32, ncpu + 4). */
FUT_EXTERN size_t fut_thread_pool_default_workers(void);

#ifdef __cplusplus
}
#endif
#endif
