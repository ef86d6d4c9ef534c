/* Crossing threads: fut_run_threadsafe (asyncio.run_coroutine_threadsafe)
 * and fut_to_thread (asyncio.to_thread).
 *
 * fut_run_threadsafe's link (struct rts) is shared by three parties, each
 * holding a reference: the queued start (then the task's done callback),
 * the cfuture's done callback, and a queued cancel.  The cfuture stays
 * pending while the task runs, so a cancel from any thread is accepted;
 * its done callback then asks the loop, through the thread-safe door, to
 * cancel the task.  `finished` (under mu) tells that callback the loop may
 * be gone: once set, it never touches the loop again.  The loop part
 * below finishes the links of a loop that closes with tasks pending. */
#include "sync/groups.h"

#include <pthread.h>
#include <stdatomic.h>

/* Close rank: above the tasks, so pending links are detached before the
 * tasks get their last run. */
#define FUT__RANK_THREADSAFE 45

struct rts {
  atomic_uint refs;
  pthread_mutex_t mu;
  fut_loop_t *loop;  /* valid while !finished */
  bool finished;     /* under mu: cf has (or is about to get) its outcome */
  bool cancel_sent;  /* under mu: a cancel is queued on the loop */
  fut_task_fn fn;    /* the task's function */
  void *arg;         /* borrowed */
  fut_cfuture_t *cf; /* a reference */
  fut_t *task;       /* loop thread: the running task (a reference), or
                        NULL before start and after the end */
  struct fut__qnode node; /* loop thread: in the part's list while task */
};

static void rts_unref(struct rts *r) {
  if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
    return;
  pthread_mutex_destroy(&r->mu);
  fut_cfuture_unref(r->cf);
  fut__free(r);
}

/* Marks r finished; false if it already was. */
static bool rts_finish(struct rts *r) {
  pthread_mutex_lock(&r->mu);
  bool was = r->finished;
  r->finished = true;
  pthread_mutex_unlock(&r->mu);
  return !was;
}

/* ---- the loop part: links with a task pending ------------------------- */

static int ts_part;

static void on_task_done(fut_t *task, void *arg);

static void ts_close(fut_loop_t *loop, void *state) {
  struct fut__qnode *head = state, *n;
  (void)loop;
  while ((n = fut__q_first(head))) {
    struct rts *r = fut__q_data(n, struct rts, node);
    fut__q_remove(&r->node);
    fut_t *task = r->task;
    r->task = NULL;
    /* The task is still pending (tasks close after this part), so its
     * done callback can be taken back, with the reference it held. */
    int removed = fut_remove_done_callback(task, on_task_done, r);
    if (rts_finish(r))
      fut_cfuture_set_exception(r->cf, FUT_E_CLOSED,
                                "the loop closed before the task ended");
    fut_unref(task);
    if (removed > 0)
      rts_unref(r);
  }
  fut__free(head);
}

static void start_release(void *arg);
static void cancel_cb(void *arg);
static void start_cb(void *arg);

__attribute__((constructor)) static void ts_part_init(void) {
  static const struct fut__loop_part part = {
      .name = "threadsafe", .rank = FUT__RANK_THREADSAFE, .close = ts_close};
  ts_part = fut__loop_part_register(&part);
  fut__register_release(start_cb, start_release);
  fut__register_release(cancel_cb, (fut_cb)rts_unref);
}

static struct fut__qnode *ts_list(fut_loop_t *loop) {
  struct fut__qnode *head = fut__loop_part(loop, ts_part);
  if (!head && (head = fut__malloc(sizeof *head))) {
    fut__q_init(head);
    fut__loop_part_set(loop, ts_part, head);
  }
  return head;
}

/* ---- the task's side (loop thread) ------------------------------------ */

static void copy_outcome(fut_t *task, fut_cfuture_t *cf) {
  if (fut_cancelled(task)) {
    fut_cfuture_cancel(cf);
    return;
  }
  const char *msg = NULL;
  int code = fut_exception(task, &msg);
  if (code) {
    if (msg)
      fut_cfuture_set_exception(cf, code, "%s", msg);
    else
      fut_cfuture_set_exception(cf, code, NULL);
    return;
  }
  int err = 0;
  switch (task->rkind) {
  case FUT__R_I64:
    err = fut_cfuture_set_result_i64(cf, task->r.v.i64);
    break;
  case FUT__R_BYTES:
    err = fut_cfuture_set_result_bytes(cf, task->r.v.b.data, task->r.v.b.len);
    break;
  case FUT__R_PTR:
    /* Handed over: nobody else holds this task. */
    if (!(err = fut_cfuture_set_result(cf, task->r.v.p.ptr, task->r.v.p.dtor)))
      task->rkind = FUT__R_NONE;
    break;
  default:
    err = fut_cfuture_set_result(cf, NULL, NULL);
  }
  if (err == -ENOMEM)
    fut_cfuture_set_exception(cf, -ENOMEM, "no memory to copy the result");
}

static void on_task_done(fut_t *task, void *arg) {
  struct rts *r = arg;
  if (fut__q_linked(&r->node)) { /* else the loop closed: ts_close did it */
    fut__q_remove(&r->node);
    r->task = NULL;
    if (rts_finish(r))
      copy_outcome(task, r->cf);
    fut_unref(task);
  }
  rts_unref(r);
}

static void start_cb(void *arg) {
  struct rts *r = arg;
  if (fut_cfuture_done(r->cf)) { /* cancelled before it started */
    rts_finish(r);
    rts_unref(r);
    return;
  }
  struct fut__qnode *list = ts_list(r->loop);
  fut_t *t = NULL;
  int err = list ? fut_create_task(r->loop, r->fn, r->arg, NULL, &t) : -ENOMEM;
  if (!err && (err = fut__add_done_callback(t, on_task_done, r))) {
    fut_cancel(t, NULL);
    fut_unref(t);
  }
  if (err) {
    if (rts_finish(r))
      fut_cfuture_set_exception(r->cf, err, "fut_run_threadsafe: %s",
                                fut_last_error());
    rts_unref(r);
    return;
  }
  r->task = t;
  fut__q_insert_tail(list, &r->node);
}

/* The loop closed with the start still queued. */
static void start_release(void *arg) {
  struct rts *r = arg;
  if (rts_finish(r))
    fut_cfuture_set_exception(r->cf, FUT_E_CLOSED,
                              "the loop closed before the task started");
  rts_unref(r);
}

static void cancel_cb(void *arg) {
  struct rts *r = arg;
  if (r->task && !fut_done(r->task))
    fut_cancel(r->task, NULL);
  rts_unref(r);
}

/* ---- the cfuture's side (any thread) ---------------------------------- */

static void on_cf_done(fut_cfuture_t *cf, void *arg) {
  struct rts *r = arg;
  if (fut_cfuture_cancelled(cf)) {
    pthread_mutex_lock(&r->mu);
    if (!r->finished && !r->cancel_sent) {
      r->cancel_sent = true;
      atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
      /* Under mu: the loop cannot finish r (nor close) meanwhile. */
      if (fut__call_soon_threadsafe_nocapture(r->loop, cancel_cb, r))
        atomic_fetch_sub_explicit(&r->refs, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&r->mu);
  }
  rts_unref(r);
}

int fut_run_threadsafe(fut_loop_t *loop, fut_task_fn fn, void *arg,
                       fut_cfuture_t **out) {
  if (!out)
    return fut__error(-EINVAL, "fut_run_threadsafe: NULL out");
  *out = NULL;
  if (!loop || !fn)
    return fut__error(-EINVAL, "fut_run_threadsafe: NULL %s",
                      !loop ? "loop" : "function");
  struct rts *r = fut__calloc(1, sizeof *r);
  if (!r)
    return fut__error(-ENOMEM, "fut_run_threadsafe: out of memory");
  int err = fut_cfuture_new(&r->cf);
  if (err) {
    fut__free(r);
    return err;
  }
  pthread_mutex_init(&r->mu, NULL);
  atomic_init(&r->refs, 2); /* the start, the cfuture's callback */
  r->loop = loop;
  r->fn = fn;
  r->arg = arg;
  fut__q_init(&r->node);
  if ((err = fut_cfuture_add_done_callback(r->cf, on_cf_done, r))) {
    fut_cfuture_unref(r->cf);
    pthread_mutex_destroy(&r->mu);
    fut__free(r);
    return err;
  }
  fut_cfuture_t *cf = fut_cfuture_ref(r->cf);
  if ((err = fut_loop_call_soon_threadsafe(loop, start_cb, r))) {
    rts_finish(r);
    fut_cfuture_cancel(cf); /* runs on_cf_done: drops its reference */
    rts_unref(r);
    fut_cfuture_unref(cf);
    return err;
  }
  *out = cf;
  return 0;
}

/* ---- to_thread ----------------------------------------------------------
 * The caller gets its own future `out`; the run_in_executor future `inner`
 * stays private and is never cancelled, so inner is done only once the
 * job returned (or will never be called: the executor shut down).  Only
 * then is the link freed; the job copies what it needs from the link
 * before calling fn.  Cancelling `out` marks the link abandoned: a job
 * that had not started then skips fn, as a cancelled executor job would. */

struct tt {
  fut_job_fn fn;
  void *arg;
  struct fut__ctx_cell *ctx; /* the caller's context (a reference) */
  atomic_bool abandoned;     /* out was cancelled */
  unsigned refs;             /* loop thread: the two done callbacks */
  fut_t *out;                /* the caller's future (a reference) */
};

static void tt_release(struct tt *t) {
  if (--t->refs)
    return;
  fut_unref(t->out);
  fut__ctx_unref(t->ctx);
  fut__free(t);
}

static int tt_job(void *p, fut_cfuture_t *cf) {
  struct tt *t = p;
  if (atomic_load_explicit(&t->abandoned, memory_order_acquire))
    return -ECANCELED; /* nobody waits: fn never starts */
  fut_job_fn fn = t->fn;
  void *arg = t->arg;
  struct fut__ctx_cell *ctx = fut__ctx_ref(t->ctx); /* t may go from here */
  struct fut__ctx_cell **old = fut__ctx_override(&ctx);
  int rc = fn(arg, cf);
  fut__ctx_override(old);
  fut__ctx_unref(ctx);
  return rc;
}

static void tt_out_done(fut_t *out, void *arg) {
  struct tt *t = arg;
  if (fut_cancelled(out))
    atomic_store_explicit(&t->abandoned, true, memory_order_release);
  tt_release(t);
}

static void tt_inner_done(fut_t *inner, void *arg) {
  struct tt *t = arg;
  /* Taken back while out is pending; once out is done its callback is
   * scheduled and releases its own reference. */
  int removed = fut_remove_done_callback(t->out, tt_out_done, t);
  if (!fut_done(t->out))
    fut_copy_state(t->out, inner);
  else if (!fut_cancelled(inner))
    fut_exception(inner, NULL); /* out was cancelled: nobody reads it */
  if (removed > 0)
    t->refs--;
  fut_unref(inner);
  tt_release(t);
}

int fut_to_thread(fut_job_fn fn, void *arg, fut_t **out) {
  if (out)
    *out = NULL;
  fut_loop_t *loop = fut_get_running_loop();
  if (!loop)
    return fut__error(FUT_E_NOT_IN_TASK,
                      "fut_to_thread: no loop runs in this thread");
  if (!fn || !out)
    return fut__error(-EINVAL, "fut_to_thread: NULL %s",
                      !fn ? "function" : "out");
  struct tt *t = fut__calloc(1, sizeof *t);
  if (!t)
    return fut__error(-ENOMEM, "fut_to_thread: out of memory");
  t->fn = fn;
  t->arg = arg;
  atomic_init(&t->abandoned, false);
  t->ctx = fut__ctx_current();
  t->refs = 1; /* this call's, until the callbacks are registered */
  int err = fut_new(loop, &t->out);
  if (!err && !(err = fut__add_done_callback(t->out, tt_out_done, t)))
    t->refs++;
  fut_t *inner = NULL;
  if (!err)
    err = fut_run_in_executor(loop, NULL, tt_job, t, &inner);
  if (!err && (err = fut__add_done_callback(inner, tt_inner_done, t))) {
    /* No memory to learn when the job ends: it may still read t, so t
     * stays (leaked), abandoned; fn does not start if it has not yet. */
    atomic_store(&t->abandoned, true);
    fut_cancel(inner, NULL);
    fut_unref(inner);
    fut_cancel(t->out, NULL);
    return err;
  }
  if (err) {
    if (t->refs == 2) /* out's callback then releases its reference */
      fut_cancel(t->out, NULL);
    tt_release(t);
    return err;
  }
  /* This call's reference becomes inner's callback's. */
  *out = fut_ref(t->out);
  return 0;
}
