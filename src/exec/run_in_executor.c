/* The loop glue (asyncio.wrap_future, loop.run_in_executor): the loop's
 * executor state, its default executor, and the choice between the fast
 * path (a job on one of our thread pools travels in its loop future's
 * wrapper) and the generic path (any executor's cfuture, wrapped).  The
 * wrappers and the completion inbox they come back through are in
 * inbox.c. */
#include "exec/internal.h"

/* The executor layer's state in one loop (its loop part), made on first
 * use. */
struct exec_state {
  struct fut__inbox *inbox;   /* owned reference */
  fut_executor_t *default_ex; /* default executor (a reference) or NULL */
  bool default_shut;          /* shutdown_default_executor was called */
};

/* The loop part holding each loop's struct exec_state. */
static int exec_part;

static void exec_close(fut_loop_t *loop, void *state) {
  (void)loop;
  struct exec_state *st = state;
  if (st->default_ex) {
    /* asyncio's close: shutdown(wait=False).  Jobs already running finish
     * on their threads; their results are dropped with the inbox below.
     * Waiting is fut_loop_shutdown_default_executor's job (fut_run calls
     * it), because a stuck job must not hang close. */
    fut_executor_shutdown(st->default_ex, false, false, 0);
    fut_executor_free(st->default_ex);
    st->default_ex = NULL;
  }
  fut__inbox_close(st->inbox);
  fut__free(st);
}

static void exec_before_block(fut_loop_t *loop, void *state) {
  struct exec_state *st = state;
  fut__inbox_before_block(loop, st->inbox);
}

__attribute__((constructor)) static void exec_part_init(void) {
  static const struct fut__loop_part part = {.name = "executors",
                                             .rank = FUT__RANK_EXECUTORS,
                                             .close = exec_close,
                                             .before_block = exec_before_block};
  exec_part = fut__loop_part_register(&part);
}

static int get_state(fut_loop_t *loop, struct exec_state **out) {
  if ((*out = fut__loop_part(loop, exec_part))) {
    fut__inbox_check_fork((*out)->inbox);
    return 0;
  }
  struct exec_state *st = fut__calloc(1, sizeof *st);
  if (!st || fut__inbox_new(loop, &st->inbox) != 0) {
    fut__free(st);
    return fut__error(-ENOMEM, "out of memory for the loop's executor state");
  }
  fut__loop_part_set(loop, exec_part, st);
  *out = st;
  return 0;
}

/* get_state for a call that needs a usable loop (not closed, right
 * thread, not a forked copy). */
static int usable_state(fut_loop_t *loop, struct exec_state **out) {
  int err = fut__check_usable(loop);
  return err ? err : get_state(loop, out);
}

int fut_wrap_future(fut_loop_t *loop, fut_cfuture_t *cf, fut_t **out) {
  if (!out)
    return fut__error(-EINVAL, "fut_wrap_future: NULL out");
  *out = NULL;
  if (!loop || !cf)
    return fut__error(-EINVAL, "fut_wrap_future: NULL %s",
                      !loop ? "loop" : "cfuture");
  struct exec_state *st;
  int err = usable_state(loop, &st);
  if (err)
    return err;
  fut_cfuture_ref(cf);
  if ((err = fut__inbox_wrap(loop, st->inbox, cf, out)))
    fut_cfuture_unref(cf);
  return err;
}

static int default_executor(struct exec_state *st, fut_executor_t **out) {
  if (st->default_ex && fut__thread_pool_forked(st->default_ex)) {
    /* The loop was carried into a forked child (fut_loop_fork): the
     * parent's pool has no threads here; start a fresh one. */
    fut_executor_free(st->default_ex);
    st->default_ex = NULL;
  }
  if (!st->default_ex) {
    if (st->default_shut)
      return fut__error(FUT_E_SHUTDOWN, "fut_run_in_executor: the default "
                                        "executor has been shut down");
    int err = fut_thread_pool_new(0, &st->default_ex);
    if (err)
      return err;
  }
  *out = st->default_ex;
  return 0;
}

int fut_run_in_executor_job(fut_loop_t *loop, fut_executor_t *ex,
                            const fut_job_t *job, fut_t **out) {
  if (!out)
    return fut__error(-EINVAL, "fut_run_in_executor: NULL out");
  *out = NULL;
  if (!loop)
    return fut__error(-EINVAL, "fut_run_in_executor: NULL loop");
  int err = fut__check_usable_fast(loop);
  if (err)
    return err;
  if ((err = fut__job_check(job, "fut_run_in_executor")))
    return err;
  struct exec_state *st;
  if ((err = get_state(loop, &st)))
    return err;
  if (!ex && (err = default_executor(st, &ex)))
    return err;
  /* The fast path: call jobs on our thread pools; bytes jobs (their
   * descriptor and bytes do not fit in the fast wrapper) take the generic
   * one. */
  if (job->fn && fut__is_thread_pool(ex))
    return fut__inbox_run_job(loop, st->inbox, ex, job->fn, job->arg, out);
  fut_cfuture_t *cf;
  if ((err = fut_executor_submit_job(ex, job, &cf)))
    return err;
  if ((err = fut__inbox_wrap(loop, st->inbox, cf, out))) {
    fut_cfuture_cancel(cf); /* best effort: nobody will read it */
    fut_cfuture_unref(cf);
  }
  return err;
}

int fut_run_in_executor(fut_loop_t *loop, fut_executor_t *ex, fut_job_fn fn,
                        void *arg, fut_t **out) {
  /* The common case, with nothing to copy or check twice: a usable loop
   * whose executor state exists, and one of our thread pools. */
  struct exec_state *st;
  if (FUT__LIKELY(fn && out && loop && fut__check_usable_fast(loop) == 0 &&
                  (st = fut__loop_part(loop, exec_part)) != NULL)) {
    fut__inbox_check_fork(st->inbox);
    if (!ex && !(st->default_ex && !fut__thread_pool_forked(st->default_ex)))
      goto general; /* makes or replaces the default executor */
    fut_executor_t *pool = ex ? ex : st->default_ex;
    if (fut__is_thread_pool(pool)) {
      *out = NULL;
      return fut__inbox_run_job(loop, st->inbox, pool, fn, arg, out);
    }
  }
general:
  if (!fn) {
    if (out)
      *out = NULL;
    return fut__error(-EINVAL, "fut_run_in_executor: NULL function");
  }
  fut_job_t job = fut_job_call(fn, arg);
  return fut_run_in_executor_job(loop, ex, &job, out);
}

int fut_loop_set_default_executor(fut_loop_t *loop, fut_executor_t *ex) {
  if (!loop || !ex)
    return fut__error(-EINVAL, "fut_loop_set_default_executor: NULL %s",
                      !loop ? "loop" : "executor");
  /* asyncio raises TypeError for anything but a ThreadPoolExecutor: the
   * default executor runs arbitrary functions (blocking calls, DNS
   * lookups), which a process pool cannot take. */
  if (!fut__is_thread_pool(ex)) {
    const fut_executor_ops_t *ops = fut_executor_ops(ex);
    return fut__error(-EINVAL,
                      "fut_loop_set_default_executor: the default executor "
                      "must be a thread pool (fut_thread_pool_new), not a "
                      "%s",
                      ops && ops->name ? ops->name : "user executor");
  }
  struct exec_state *st;
  int err = usable_state(loop, &st);
  if (err)
    return err;
  fut_executor_t *old = st->default_ex;
  st->default_ex = fut_executor_ref(ex);
  st->default_shut = false;
  /* Not a plain free: when the loop held the last reference, that would
   * wait for the jobs still running (and deadlock if one waits for the
   * loop).  Like a dropped ThreadPoolExecutor in Python, queued jobs
   * still run, then its threads exit. */
  fut__executor_release_nowait(old);
  return 0;
}

int fut_loop_shutdown_default_executor(fut_loop_t *loop, uint64_t timeout_ns) {
  if (!loop)
    return fut__error(-EINVAL, "fut_loop_shutdown_default_executor: NULL "
                               "loop");
  int err = fut__check_thread(loop);
  if (err)
    return err;
  struct exec_state *st = fut__loop_part(loop, exec_part);
  if (!st) {
    if (loop->closed)
      return 0;
    if ((err = get_state(loop, &st)))
      return err;
  }
  st->default_shut = true;
  fut_executor_t *ex = st->default_ex;
  st->default_ex = NULL;
  if (!ex)
    return 0;
  err = fut_executor_shutdown(ex, true, false, timeout_ns);
  fut_executor_free(ex);
  if (err == -ETIMEDOUT)
    return fut__error(err, "fut_loop_shutdown_default_executor: jobs still "
                           "running after the timeout");
  return err;
}

void fut__executor_counters(fut_loop_t *loop, uint64_t *drains,
                            uint64_t *delivered) {
  struct exec_state *st = fut__loop_part(loop, exec_part);
  if (st) {
    fut__inbox_counters(st->inbox, drains, delivered);
  } else {
    *drains = 0;
    *delivered = 0;
  }
}
