/* The process pool as a fut_executor_t: bytes jobs in, cfutures out.  The
 * pool's start/done callbacks map onto the cfuture protocol: start is
 * set_running_or_notify_cancel, done sets the outcome. */
#include "procpool/internal.h"

static bool cf_start(void *ud) {
  return fut_cfuture_set_running_or_notify_cancel(ud) == 1;
}

static void cf_done(void *ud, int err, void *data, size_t len,
                    const char *msg) {
  fut_cfuture_t *cf = ud;
  if (err == -ECANCELED && fut_cfuture_state(cf) != FUT_CFUTURE_RUNNING) {
    /* Never started: cancelled by the shutdown (or already cancelled, in
     * which case this is a no-op). */
    fut_cfuture_cancel(cf);
  } else if (err) {
    if (msg)
      fut_cfuture_set_exception(cf, err, "%s", msg);
    else
      fut_cfuture_set_exception(cf, err, NULL);
  } else if (fut_cfuture_set_result_bytes_owned(cf, data, len) != 0) {
    free(data);
  }
  fut_cfuture_unref(cf);
}

static int pp_submit(void *self, const fut_job_t *job, fut_cfuture_t **out) {
  fut_process_pool_t *p = self;
  if (!job->bytes_fn)
    return fut__error(FUT_E_NOT_SENDABLE,
                      "process pool: a call job (function + pointer "
                      "argument) cannot be sent to a worker process; submit "
                      "a bytes job (fut_job_bytes)");
  fut_cfuture_t *cf;
  int err = fut_cfuture_new(&cf);
  if (err)
    return err;
  fut_cfuture_ref(cf); /* the pool's, dropped by cf_done */
  err = fut__pp_submit_kind(p, FUT__PP_KIND_BYTES, (uintptr_t)job->bytes_fn,
                            job->data, job->len, cf_start, cf_done, cf);
  if (err) {
    char detail[256];
    snprintf(detail, sizeof detail, "%s", fut_last_error());
    fut_cfuture_unref(cf);
    fut_cfuture_unref(cf);
    return fut__error(err, "%s", detail);
  }
  /* The argument was copied: a taken-over buffer is released now. */
  if (job->data_free)
    job->data_free((void *)job->data);
  *out = cf;
  return 0;
}

static int pp_shutdown(void *self, bool wait, bool cancel_pending,
                       uint64_t timeout_ns) {
  return fut_process_pool_shutdown(self, wait, cancel_pending, timeout_ns);
}

static void pp_destroy(void *self) {
  fut__pp_detach(self);
}

static const fut_executor_ops_t pp_ops = {
    .name = "process pool",
    .submit = pp_submit,
    .shutdown = pp_shutdown,
    .destroy = pp_destroy,
};

int fut_process_pool_new_ex(const fut_process_pool_opts_t *opts,
                            fut_executor_t **out) {
  if (!out)
    return fut__error(-EINVAL, "fut_process_pool_new_ex: NULL out");
  *out = NULL;
  fut_process_pool_t *p;
  int err = fut_process_pool_create(opts, &p);
  if (err)
    return err;
  err = fut_executor_new(&pp_ops, p, out);
  if (err) {
    fut_process_pool_destroy(p);
    return err;
  }
  return 0;
}

int fut_process_pool_new(size_t max_workers, fut_executor_t **out) {
  if (out)
    *out = NULL; /* the out rule of errors.h */
  fut_process_pool_opts_t o;
  fut_process_pool_opts_init(&o);
  if (max_workers > 4096)
    return fut__error(-EINVAL, "fut_process_pool_new: max_workers %zu > 4096",
                      max_workers);
  o.max_workers = (unsigned)max_workers;
  return fut_process_pool_new_ex(&o, out);
}
