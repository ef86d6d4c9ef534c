/* Concurrent futures (concurrent.futures.Future): thread-safe, loop-free.
 *
 * One small lock per cfuture guards its state, callbacks and waiter list:
 * a spin-then-yield flag (fut__cfuture_lock), because its critical sections
 * are a few stores and a pthread mutex (init, lock, unlock) cost more than
 * the rest of a job's bookkeeping.  Nothing blocks or calls out while
 * holding it.  The state is also an atomic so done() and readers of a
 * finished cfuture need no lock: the result is written before the release
 * store that publishes FINISHED and never changes afterwards.
 *
 * Blocking waits (fut_cfuture_wait, wait_many, as_completed) are in
 * cfuture_wait.c. */
#include "exec/internal.h"

#include <string.h>

/* ---- lifetime ------------------------------------------------------------ */

int fut__cfuture_new_ext(size_t extra, fut_cfuture_t **out, void **extra_out) {
  *out = NULL;
  if (extra > SIZE_MAX - FUT__CF_SIZE)
    return fut__error(-ENOMEM, "fut_cfuture_new: %zu bytes is too big", extra);
  /* Not calloc: the extra space may be large and is the caller's. */
  fut_cfuture_t *cf = fut__malloc(FUT__CF_SIZE + extra);
  if (!cf)
    return fut__error(-ENOMEM, "fut_cfuture_new: out of memory");
  fut__cfuture_init(cf, false, 1);
  if (extra_out)
    *extra_out = (char *)cf + FUT__CF_SIZE;
  *out = cf;
  return 0;
}

void fut__cfuture_init(fut_cfuture_t *cf, bool embedded, unsigned refs) {
  atomic_init(&cf->refs, refs);
  atomic_init(&cf->state, FUT_CFUTURE_PENDING);
  cf->err = 0;
  atomic_init(&cf->locked, false);
  cf->kind = FUT__V_NONE;
  cf->embedded = embedded;
  cf->msg = NULL;
  cf->cb0.cb = NULL;
  cf->more = NULL;
  fut__q_init(&cf->waiters);
}

/* Takes back the memory of embedded cfutures (set once at load time). */
static void (*embedded_release)(fut_cfuture_t *cf);

void fut__cfuture_set_embedded_release(void (*release)(fut_cfuture_t *cf)) {
  embedded_release = release;
}

int fut_cfuture_new(fut_cfuture_t **out) {
  if (!out)
    return fut__error(-EINVAL, "fut_cfuture_new: NULL out");
  return fut__cfuture_new_ext(0, out, NULL);
}

fut_cfuture_t *fut_cfuture_ref(fut_cfuture_t *cf) {
  if (cf)
    atomic_fetch_add_explicit(&cf->refs, 1, memory_order_relaxed);
  return cf;
}

void fut_cfuture_unref(fut_cfuture_t *cf) {
  if (!cf)
    return;
  unsigned old = atomic_fetch_sub_explicit(&cf->refs, 1, memory_order_acq_rel);
  FUT__ASSERT(old > 0);
  if (old != 1)
    return;
  /* No waiter can be linked: waiters hold references. */
  FUT__ASSERT(fut__q_empty(&cf->waiters));
  if (cf->kind != FUT__V_NONE &&
      !(cf->kind == FUT__V_PTR && cf->value.p.dtor == NULL))
    fut__value_clear(cf->kind, &cf->value);
  if (cf->msg)
    fut__free(cf->msg);
  /* Registrations never run (a cfuture dropped pending). */
  if (cf->more)
    fut__free(cf->more);
  if (cf->embedded)
    embedded_release(cf);
  else
    fut__free(cf);
}

fut_cfuture_state_t fut_cfuture_state(const fut_cfuture_t *cf) {
  if (!cf)
    return FUT_CFUTURE_PENDING;
  return (fut_cfuture_state_t)atomic_load_explicit(&cf->state,
                                                   memory_order_acquire);
}
bool fut_cfuture_done(const fut_cfuture_t *cf) {
  return cf && fut__cfuture_final(fut_cfuture_state(cf));
}
bool fut_cfuture_cancelled(const fut_cfuture_t *cf) {
  return cf && fut_cfuture_state(cf) == FUT_CFUTURE_CANCELLED;
}
bool fut_cfuture_running(const fut_cfuture_t *cf) {
  return cf && fut_cfuture_state(cf) == FUT_CFUTURE_RUNNING;
}

/* ---- completion ---------------------------------------------------------- */

/* With cf->lock held and the outcome stored: publishes the final state,
 * wakes the waiters, detaches the callbacks; then, unlocked, runs them. */
static void complete_locked(fut_cfuture_t *cf, int state) {
  atomic_store_explicit(&cf->state, state, memory_order_release);
  if (!fut__q_empty(&cf->waiters))
    fut__cfuture_wake_waiters(cf,
                              state == FUT_CFUTURE_FINISHED && cf->err != 0);
  /* Nobody writes the detached registrations after the unlock:
   * registrations on a done cfuture run inline, removals find none. */
  struct fut__cfuture_callback first = cf->cb0;
  struct fut__cfuture_cbvec *more = cf->more;
  if (!first.cb) { /* the common case of a pool job: nobody registered */
    fut__cfuture_unlock(cf);
    return;
  }
  cf->cb0.cb = NULL;
  cf->more = NULL;
  /* A callback may drop the last reference the caller relied on; keep cf
   * alive until they all ran. */
  fut_cfuture_ref(cf);
  fut__cfuture_unlock(cf);
  first.cb(cf, first.arg);
  if (more) {
    for (uint32_t i = 0; i < more->len; i++)
      more->e[i].cb(cf, more->e[i].arg);
    fut__free(more);
  }
  fut_cfuture_unref(cf);
}

/* Locks cf if it may still be completed; else returns the error. */
static int lock_settable(fut_cfuture_t *cf, const char *what) {
  if (!cf)
    return fut__error(-EINVAL, "%s: NULL cfuture", what);
  fut__cfuture_lock(cf);
  int s = atomic_load_explicit(&cf->state, memory_order_relaxed);
  if (fut__cfuture_final(s)) {
    fut__cfuture_unlock(cf);
    return fut__error(FUT_E_INVALID_STATE, "%s: the cfuture is already %s",
                      what,
                      s == FUT_CFUTURE_CANCELLED ? "cancelled" : "finished");
  }
  return 0;
}

bool fut_cfuture_cancel(fut_cfuture_t *cf) {
  if (!cf)
    return false;
  fut__cfuture_lock(cf);
  int s = atomic_load_explicit(&cf->state, memory_order_relaxed);
  if (s != FUT_CFUTURE_PENDING) {
    fut__cfuture_unlock(cf);
    return s == FUT_CFUTURE_CANCELLED;
  }
  cf->err = -ECANCELED;
  complete_locked(cf, FUT_CFUTURE_CANCELLED);
  return true;
}

int fut_cfuture_set_running_or_notify_cancel(fut_cfuture_t *cf) {
  if (!cf)
    return fut__error(-EINVAL, "fut_cfuture_set_running_or_notify_cancel: "
                               "NULL cfuture");
  fut__cfuture_lock(cf);
  int s = atomic_load_explicit(&cf->state, memory_order_relaxed);
  int ret;
  if (s == FUT_CFUTURE_PENDING) {
    atomic_store_explicit(&cf->state, FUT_CFUTURE_RUNNING,
                          memory_order_release);
    ret = 1;
  } else if (s == FUT_CFUTURE_CANCELLED) {
    ret = 0; /* cancel() already woke the waiters and ran the callbacks */
  } else {
    ret = fut__error(FUT_E_INVALID_STATE,
                     "fut_cfuture_set_running_or_notify_"
                     "cancel: the cfuture is already %s",
                     s == FUT_CFUTURE_RUNNING ? "running" : "finished");
  }
  fut__cfuture_unlock(cf);
  return ret;
}

int fut_cfuture_set_result(fut_cfuture_t *cf, void *ptr, fut_free_fn dtor) {
  int err = lock_settable(cf, "fut_cfuture_set_result");
  if (err)
    return err;
  cf->kind = FUT__V_PTR;
  cf->value.p.ptr = ptr;
  cf->value.p.dtor = dtor;
  complete_locked(cf, FUT_CFUTURE_FINISHED);
  return 0;
}

int fut_cfuture_set_result_bytes_owned(fut_cfuture_t *cf, void *data,
                                       size_t len) {
  if (cf && len > 0 && !data)
    return fut__error(-EINVAL,
                      "fut_cfuture_set_result_bytes_owned: NULL "
                      "data with length %zu",
                      len);
  int err = lock_settable(cf, "fut_cfuture_set_result_bytes");
  if (err)
    return err;
  cf->kind = FUT__V_BYTES;
  cf->value.b.data = data;
  cf->value.b.len = len;
  complete_locked(cf, FUT_CFUTURE_FINISHED);
  return 0;
}

int fut_cfuture_set_result_bytes(fut_cfuture_t *cf, const void *data,
                                 size_t len) {
  if (!cf)
    return fut__error(-EINVAL, "fut_cfuture_set_result_bytes: NULL cfuture");
  if (len > 0 && !data)
    return fut__error(-EINVAL,
                      "fut_cfuture_set_result_bytes: NULL data "
                      "with length %zu",
                      len);
  if (fut_cfuture_done(cf))
    return fut__error(FUT_E_INVALID_STATE, "fut_cfuture_set_result_bytes: "
                                           "the cfuture is already done");
  /* A spare NUL keeps text results terminated, as fut_set_result_bytes. */
  void *copy = fut__bytes_dup(data, len);
  if (!copy)
    return fut__error(-ENOMEM,
                      "fut_cfuture_set_result_bytes: out of memory "
                      "for %zu bytes",
                      len);
  int err = fut_cfuture_set_result_bytes_owned(cf, copy, len);
  if (err)
    fut__free(copy);
  return err;
}

int fut_cfuture_set_result_i64(fut_cfuture_t *cf, int64_t value) {
  int err = lock_settable(cf, "fut_cfuture_set_result_i64");
  if (err)
    return err;
  cf->kind = FUT__V_I64;
  cf->value.i64 = value;
  complete_locked(cf, FUT_CFUTURE_FINISHED);
  return 0;
}

int fut_cfuture_set_exceptionv(fut_cfuture_t *cf, int code, const char *fmt,
                               va_list ap) {
  if (!cf)
    return fut__error(-EINVAL, "fut_cfuture_set_exception: NULL cfuture");
  int err = fut__check_failure_code(code, "fut_cfuture_set_exception");
  if (err)
    return err;
  char *msg = NULL;
  if (fmt && !(msg = fut__vasprintf(fmt, ap)))
    return fut__error(-ENOMEM, "fut_cfuture_set_exception: out of memory for "
                               "the message");
  err = lock_settable(cf, "fut_cfuture_set_exception");
  if (err) {
    fut__free(msg);
    return err;
  }
  cf->err = code;
  cf->msg = msg;
  complete_locked(cf, FUT_CFUTURE_FINISHED);
  return 0;
}

int fut_cfuture_set_exception(fut_cfuture_t *cf, int code, const char *fmt,
                              ...) {
  va_list ap;
  va_start(ap, fmt);
  int err = fut_cfuture_set_exceptionv(cf, code, fmt, ap);
  va_end(ap);
  return err;
}

void fut__cfuture_finish_none(fut_cfuture_t *cf) {
  fut__cfuture_lock(cf);
  if (fut__cfuture_final(
          atomic_load_explicit(&cf->state, memory_order_relaxed))) {
    fut__cfuture_unlock(cf);
    return;
  }
  cf->kind = FUT__V_PTR;
  cf->value.p.ptr = NULL;
  cf->value.p.dtor = NULL;
  complete_locked(cf, FUT_CFUTURE_FINISHED);
}

/* ---- reading ------------------------------------------------------------ */

/* Waits, then returns the outcome code; on success cf is done. */
static int outcome(fut_cfuture_t *cf, uint64_t timeout_ns, const char *what) {
  if (!cf)
    return fut__error(-EINVAL, "%s: NULL cfuture", what);
  int err = fut_cfuture_wait(cf, timeout_ns);
  if (err)
    return fut__error(err, "%s: timed out", what);
  return cf->err;
}

int fut_cfuture_result(fut_cfuture_t *cf, uint64_t timeout_ns, void **out) {
  if (out)
    *out = NULL;
  int err = outcome(cf, timeout_ns, "fut_cfuture_result");
  if (err)
    return err;
  if (out) {
    if (cf->kind == FUT__V_PTR)
      *out = cf->value.p.ptr;
    else if (cf->kind == FUT__V_BYTES)
      *out = cf->value.b.data;
  }
  return 0;
}

int fut_cfuture_result_bytes(fut_cfuture_t *cf, uint64_t timeout_ns,
                             const void **data, size_t *len) {
  if (data)
    *data = NULL;
  if (len)
    *len = 0;
  int err = outcome(cf, timeout_ns, "fut_cfuture_result_bytes");
  if (err)
    return err;
  if (cf->kind == FUT__V_BYTES) {
    if (data)
      *data = cf->value.b.data;
    if (len)
      *len = cf->value.b.len;
  } else if (cf->kind == FUT__V_PTR && data) {
    *data = cf->value.p.ptr;
  }
  return 0;
}

int fut_cfuture_result_i64(fut_cfuture_t *cf, uint64_t timeout_ns,
                           int64_t *out) {
  if (out)
    *out = 0;
  int err = outcome(cf, timeout_ns, "fut_cfuture_result_i64");
  if (err)
    return err;
  if (out && cf->kind == FUT__V_I64)
    *out = cf->value.i64;
  return 0;
}

int fut_cfuture_exception(fut_cfuture_t *cf, uint64_t timeout_ns,
                          const char **msg) {
  if (msg)
    *msg = NULL;
  if (!cf)
    return fut__error(-EINVAL, "fut_cfuture_exception: NULL cfuture");
  /* Waiting apart: a job's own exception may be -ETIMEDOUT too. */
  int err = fut_cfuture_wait(cf, timeout_ns);
  if (err)
    return fut__error(err, "fut_cfuture_exception: timed out");
  if (cf->err && msg)
    *msg = cf->msg;
  return cf->err;
}

/* ---- callbacks ----------------------------------------------------------- */

int fut_cfuture_add_done_callback(fut_cfuture_t *cf, fut_cfuture_done_cb cb,
                                  void *arg) {
  if (!cf || !cb)
    return fut__error(-EINVAL, "fut_cfuture_add_done_callback: NULL %s",
                      !cf ? "cfuture" : "callback");
  fut__cfuture_lock(cf);
  if (fut__cfuture_final(
          atomic_load_explicit(&cf->state, memory_order_relaxed))) {
    fut__cfuture_unlock(cf);
    cb(cf, arg);
    return 0;
  }
  if (!cf->cb0.cb) {
    cf->cb0 = (struct fut__cfuture_callback){cb, arg};
    fut__cfuture_unlock(cf);
    return 0;
  }
  struct fut__cfuture_cbvec *v = cf->more;
  if (!v || v->len == v->cap) {
    uint32_t cap = v ? 2 * v->cap : 2;
    struct fut__cfuture_cbvec *nv =
        v && cap <= v->cap ? NULL
                           : fut__realloc(v, sizeof *v + sizeof v->e[0] * cap);
    if (!nv) {
      fut__cfuture_unlock(cf);
      return fut__error(-ENOMEM, "fut_cfuture_add_done_callback: out of "
                                 "memory");
    }
    if (!v)
      nv->len = 0;
    nv->cap = cap;
    cf->more = v = nv;
  }
  v->e[v->len++] = (struct fut__cfuture_callback){cb, arg};
  fut__cfuture_unlock(cf);
  return 0;
}

int fut_cfuture_remove_done_callback(fut_cfuture_t *cf, fut_cfuture_done_cb cb,
                                     void *arg) {
  if (!cf || !cb)
    return fut__error(-EINVAL, "fut_cfuture_remove_done_callback: NULL %s",
                      !cf ? "cfuture" : "callback");
  int removed = 0;
  fut__cfuture_lock(cf);
  /* Keep the others in order: cb0, then more, compacted. */
  struct fut__cfuture_cbvec *v = cf->more;
  uint32_t n = v ? v->len : 0, kept = 0;
  bool have0 = false;
  if (cf->cb0.cb) {
    if (cf->cb0.cb == cb && cf->cb0.arg == arg)
      removed++;
    else
      have0 = true;
  }
  for (uint32_t i = 0; i < n; i++) {
    struct fut__cfuture_callback e = v->e[i];
    if (e.cb == cb && e.arg == arg) {
      removed++;
    } else if (!have0) {
      cf->cb0 = e;
      have0 = true;
    } else {
      v->e[kept++] = e;
    }
  }
  if (!have0)
    cf->cb0.cb = NULL;
  if (v)
    v->len = kept;
  fut__cfuture_unlock(cf);
  return removed;
}

/* ---- for the loop glue --------------------------------------------------- */

int fut__cfuture_outcome(fut_cfuture_t *cf, const char **msg) {
  FUT__ASSERT(fut_cfuture_done(cf));
  *msg = cf->msg;
  return cf->err;
}

int fut__cfuture_copy_result(fut_cfuture_t *cf, fut_t *f) {
  FUT__ASSERT(fut_cfuture_state(cf) == FUT_CFUTURE_FINISHED && cf->err == 0);
  switch (cf->kind) {
  case FUT__V_PTR:
    return fut_set_result(f, cf->value.p.ptr, NULL);
  case FUT__V_BYTES:
    return fut_set_result_bytes(f, cf->value.b.data, cf->value.b.len);
  case FUT__V_I64:
    return fut_set_result_i64(f, cf->value.i64);
  default:
    return fut_set_result(f, NULL, NULL);
  }
}
