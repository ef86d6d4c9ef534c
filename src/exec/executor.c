/* Executors (concurrent.futures.Executor): the generic executor object
 * built from a vtable, submit and map, and the job helpers executors use
 * to run a job for its cfuture.  The thread pool (thread_pool.c), the
 * process pool and users' executors plug in through the vtable; the loop
 * glue is in run_in_executor.c and inbox.c. */
#include "exec/internal.h"

#include <string.h>

/* ---- the executor object ------------------------------------------------- */

int fut_executor_new(const fut_executor_ops_t *ops, void *self,
                     fut_executor_t **out) {
  if (!out)
    return fut__error(-EINVAL, "fut_executor_new: NULL out");
  *out = NULL;
  if (!ops || !ops->submit || !ops->shutdown || !ops->destroy)
    return fut__error(-EINVAL, "fut_executor_new: ops or one of its "
                               "functions is NULL");
  fut_executor_t *ex = fut__malloc(sizeof *ex);
  if (!ex)
    return fut__error(-ENOMEM, "fut_executor_new: out of memory");
  ex->ops = ops;
  ex->self = self;
  atomic_init(&ex->refs, 1);
  atomic_init(&ex->shut, false);
  *out = ex;
  return 0;
}

void *fut_executor_self(const fut_executor_t *ex) {
  return ex ? ex->self : NULL;
}
const fut_executor_ops_t *fut_executor_ops(const fut_executor_t *ex) {
  return ex ? ex->ops : NULL;
}

fut_executor_t *fut_executor_ref(fut_executor_t *ex) {
  if (ex)
    atomic_fetch_add_explicit(&ex->refs, 1, memory_order_relaxed);
  return ex;
}

void fut_executor_free(fut_executor_t *ex) {
  if (!ex)
    return;
  unsigned old = atomic_fetch_sub_explicit(&ex->refs, 1, memory_order_acq_rel);
  FUT__ASSERT(old > 0);
  if (old != 1)
    return;
  if (!atomic_exchange(&ex->shut, true))
    (void)ex->ops->shutdown(ex->self, true, false, FUT_FOREVER);
  ex->ops->destroy(ex->self);
  fut__free(ex);
}

bool fut_executor_is_shutdown(const fut_executor_t *ex) {
  return ex && atomic_load(&ex->shut);
}

int fut_executor_shutdown(fut_executor_t *ex, bool wait, bool cancel_pending,
                          uint64_t timeout_ns) {
  if (!ex)
    return fut__error(-EINVAL, "fut_executor_shutdown: NULL executor");
  atomic_store(&ex->shut, true);
  return ex->ops->shutdown(ex->self, wait, cancel_pending, timeout_ns);
}

void fut__executor_release_nowait(fut_executor_t *ex) {
  if (ex && atomic_load(&ex->refs) == 1 && !atomic_load(&ex->shut))
    fut_executor_shutdown(ex, false, false, 0);
  fut_executor_free(ex);
}

int fut__job_check(const fut_job_t *job, const char *what) {
  if (!job)
    return fut__error(-EINVAL, "%s: NULL job", what);
  if (!job->fn == !job->bytes_fn)
    return fut__error(-EINVAL,
                      "%s: a job needs exactly one of fn and "
                      "bytes_fn",
                      what);
  if (job->bytes_fn && job->len > 0 && !job->data)
    return fut__error(-EINVAL, "%s: NULL data with length %zu", what, job->len);
  return 0;
}

int fut_executor_submit_job(fut_executor_t *ex, const fut_job_t *job,
                            fut_cfuture_t **out) {
  if (out)
    *out = NULL; /* the out rule of errors.h */
  if (!ex || !out)
    return fut__error(-EINVAL, "fut_executor_submit: NULL %s",
                      !ex ? "executor" : "out");
  int err = fut__job_check(job, "fut_executor_submit");
  if (err)
    return err;
  if (atomic_load_explicit(&ex->shut, memory_order_acquire))
    return fut__error(FUT_E_SHUTDOWN,
                      "fut_executor_submit: the %s has been "
                      "shut down",
                      ex->ops->name ? ex->ops->name : "executor");
  fut_cfuture_t *cf = NULL;
  err = ex->ops->submit(ex->self, job, &cf);
  if (err)
    return err;
  FUT__ASSERT(cf != NULL);
  *out = cf;
  return 0;
}

int fut_executor_submit(fut_executor_t *ex, fut_job_fn fn, void *arg,
                        fut_cfuture_t **out) {
  if (!fn) {
    if (out)
      *out = NULL;
    return fut__error(-EINVAL, "fut_executor_submit: NULL function");
  }
  fut_job_t job = fut_job_call(fn, arg);
  return fut_executor_submit_job(ex, &job, out);
}

/* A map is all or nothing, as Python's map cancels what it submitted when
 * it fails part way: cancels and drops the first n submissions, returns
 * err. */
static int unwind_map(fut_cfuture_t **out, size_t n, int err) {
  for (size_t j = 0; j < n; j++) {
    fut_cfuture_cancel(out[j]);
    fut_cfuture_unref(out[j]);
    out[j] = NULL;
  }
  return err;
}

int fut_executor_map_jobs(fut_executor_t *ex, const fut_job_t *jobs, size_t n,
                          fut_cfuture_t **out) {
  for (size_t i = 0; out && i < n; i++)
    out[i] = NULL; /* the out rule of errors.h */
  if (!ex || !out || (n > 0 && !jobs))
    return fut__error(-EINVAL, "fut_executor_map: NULL %s",
                      !ex    ? "executor"
                      : !out ? "out"
                             : "jobs");
  for (size_t i = 0; i < n; i++) {
    int err = fut_executor_submit_job(ex, &jobs[i], &out[i]);
    if (err)
      return unwind_map(out, i, err);
  }
  return 0;
}

int fut_executor_map(fut_executor_t *ex, fut_job_fn fn, void *const *args,
                     size_t n, fut_cfuture_t **out) {
  for (size_t i = 0; out && i < n; i++)
    out[i] = NULL; /* the out rule of errors.h */
  if (!fn || (n > 0 && !args))
    return fut__error(-EINVAL, "fut_executor_map: NULL %s",
                      !fn ? "function" : "args");
  if (!ex || !out)
    return fut__error(-EINVAL, "fut_executor_map: NULL %s",
                      !ex ? "executor" : "out");
  for (size_t i = 0; i < n; i++) {
    fut_job_t job = fut_job_call(fn, args[i]);
    int err = fut_executor_submit_job(ex, &job, &out[i]);
    if (err)
      return unwind_map(out, i, err);
  }
  return 0;
}

/* ---- jobs ---------------------------------------------------------------- */

int fut_job_copy(const fut_job_t *src, fut_job_t **out) {
  if (!out)
    return fut__error(-EINVAL, "fut_job_copy: NULL out");
  *out = NULL;
  int err = fut__job_check(src, "fut_job_copy");
  if (err)
    return err;
  /* Borrowed bytes are copied into the same allocation as the job. */
  bool copy = src->bytes_fn && !src->data_free && src->len > 0;
  size_t extra = copy ? src->len : 0;
  if (extra > SIZE_MAX - sizeof(fut_job_t))
    return fut__error(-ENOMEM, "fut_job_copy: %zu bytes is too big", extra);
  fut_job_t *j = fut__malloc(sizeof *j + extra);
  if (!j)
    return fut__error(-ENOMEM, "fut_job_copy: out of memory for %zu bytes",
                      sizeof *j + extra);
  *j = *src;
  if (copy) {
    memcpy(j + 1, src->data, src->len);
    j->data = j + 1;
  }
  *out = j;
  return 0;
}

void fut_job_free(fut_job_t *job) {
  if (!job)
    return;
  if (job->data_free)
    job->data_free((void *)(uintptr_t)job->data);
  fut__free(job);
}

/* A failed job's outcome on cf (unless the job completed cf itself). */
static void job_failed(fut_cfuture_t *cf, int ret) {
  if (fut_cfuture_done(cf))
    return;
  int code = ret < 0 ? ret : FUT_E_JOB_FAILED;
  const char *detail = fut_last_error();
  if (detail[0])
    fut_cfuture_set_exception(cf, code, "%s", detail);
  else if (ret > 0)
    fut_cfuture_set_exception(cf, code, "job returned %d", ret);
  else
    fut_cfuture_set_exception(cf, code, NULL);
}

bool fut__job_run_call(fut_job_fn fn, void *arg, fut_cfuture_t *cf) {
  if (fut_cfuture_set_running_or_notify_cancel(cf) != 1)
    return false;
  /* The detail of this thread's last libfuture error becomes the message
   * of a failed job: clear it so a stale one is not reported. */
  if (fut_last_error()[0])
    fut__error(0, "%s", "");
  int ret = fn(arg, cf);
  if (ret == 0) {
    fut__cfuture_finish_none(cf);
  } else {
    job_failed(cf, ret);
  }
  return true;
}

bool fut_job_run(const fut_job_t *job, fut_cfuture_t *cf) {
  if (!job || !cf)
    return false;
  if (job->fn)
    return fut__job_run_call(job->fn, job->arg, cf);
  if (fut_cfuture_set_running_or_notify_cancel(cf) != 1)
    return false;
  if (fut_last_error()[0])
    fut__error(0, "%s", "");
  void *out = NULL;
  size_t out_len = 0;
  int ret = job->bytes_fn(job->data, job->len, &out, &out_len);
  if (ret == 0) {
    if (out_len > 0 && !out)
      ret = fut__error(-EINVAL,
                       "bytes job returned NULL data with length "
                       "%zu",
                       out_len);
    else if (fut_cfuture_set_result_bytes_owned(cf, out, out_len) != 0)
      free(out); /* already done: the job completed cf itself */
  } else {
    free(out);
  }
  if (ret != 0)
    job_failed(cf, ret);
  return true;
}
