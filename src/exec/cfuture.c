/* Concurrent futures (concurrent.futures.Future): thread-safe, loop-free.
 *
 * One small lock per cfuture guards its state, callbacks and waiter list:
 * a spin-then-yield flag, because its critical sections are a few stores
 * and a pthread mutex (init, lock, unlock) cost more than the rest of a
 * job's bookkeeping.  Nothing blocks or calls out while holding it.  The
 * state is also an atomic so done() and readers of a finished cfuture need
 * no lock: the result is written before the release store that publishes
 * FINISHED and never changes afterwards.
 *
 * Blocking waits (one cfuture or many) use waiter records, as Python's
 * _Waiter: a waiter owns a mutex + condition variable and links one node
 * into each cfuture it watches.  Completion walks the nodes under the
 * cfuture's lock and bumps the waiter's counters under the waiter's lock;
 * the lock order is always cfuture, then waiter. */
#include "exec/internal.h"

#include <sched.h>
#include <string.h>

struct cf_waiter;

/* One waiter's link into one cfuture's list. */
struct cf_node {
  struct cf_node *prev, *next; /* in cf->waiters while linked */
  struct cf_waiter *w;         /* the owner; never changes */
  size_t idx;                  /* position of the cfuture in the caller's
                                  array */
  bool linked;                 /* in a list (guarded by the cf lock) */
};

struct cf_waiter {
  pthread_mutex_t m;
  pthread_cond_t c; /* signalled on every completion counted here */
  size_t ndone;     /* guarded by m: watched cfutures now done */
  size_t nfailed;   /* guarded by m: of those, finished with an error */
  size_t *order;    /* guarded by m: indices in completion order, or
                       NULL when not recorded */
  size_t norder;    /* guarded by m: entries written in order[] */
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static inline void cf_lock(fut_cfuture_t *cf) {
  if (FUT__LIKELY(
          !atomic_exchange_explicit(&cf->locked, true, memory_order_acquire)))
    return;
  for (unsigned spins = 0;;) {
    while (atomic_load_explicit(&cf->locked, memory_order_relaxed)) {
      /* The holder may have been preempted: stop burning its CPU. */
      if (++spins < 100)
        cpu_relax();
      else
        sched_yield();
    }
    if (!atomic_exchange_explicit(&cf->locked, true, memory_order_acquire))
      return;
  }
}

static inline void cf_unlock(fut_cfuture_t *cf) {
  atomic_store_explicit(&cf->locked, false, memory_order_release);
}

static pthread_condattr_t cond_attr;
static pthread_once_t cond_once = PTHREAD_ONCE_INIT;

static void init_cond_attr(void) {
  pthread_condattr_init(&cond_attr);
  pthread_condattr_setclock(&cond_attr, CLOCK_MONOTONIC);
}

/* ---- waiters ------------------------------------------------------------- */

static void waiter_init(struct cf_waiter *w, size_t *order) {
  pthread_once(&cond_once, init_cond_attr);
  pthread_mutex_init(&w->m, NULL);
  pthread_cond_init(&w->c, &cond_attr);
  w->ndone = w->nfailed = w->norder = 0;
  w->order = order;
}

static void waiter_destroy(struct cf_waiter *w) {
  pthread_cond_destroy(&w->c);
  pthread_mutex_destroy(&w->m);
}

/* Called with the node's cfuture lock held (or before linking, for a
 * cfuture found done). */
static void waiter_count(struct cf_waiter *w, size_t idx, bool failed) {
  pthread_mutex_lock(&w->m);
  w->ndone++;
  if (failed)
    w->nfailed++;
  if (w->order)
    w->order[w->norder++] = idx;
  pthread_cond_signal(&w->c);
  pthread_mutex_unlock(&w->m);
}

static bool is_done_state(int s) {
  return s == FUT_CFUTURE_FINISHED || s == FUT_CFUTURE_CANCELLED;
}

/* Links n into cf, or counts it at once if cf is done. */
static void node_link(fut_cfuture_t *cf, struct cf_node *n) {
  cf_lock(cf);
  int s = atomic_load_explicit(&cf->state, memory_order_relaxed);
  if (is_done_state(s)) {
    n->linked = false;
    waiter_count(n->w, n->idx, s == FUT_CFUTURE_FINISHED && cf->err != 0);
  } else {
    n->prev = NULL;
    n->next = cf->waiters;
    if (cf->waiters)
      cf->waiters->prev = n;
    cf->waiters = n;
    n->linked = true;
  }
  cf_unlock(cf);
}

static void node_unlink(fut_cfuture_t *cf, struct cf_node *n) {
  cf_lock(cf);
  if (n->linked) {
    if (n->prev)
      n->prev->next = n->next;
    else
      cf->waiters = n->next;
    if (n->next)
      n->next->prev = n->prev;
    n->linked = false;
  }
  cf_unlock(cf);
}

/* Absolute CLOCK_MONOTONIC deadline for a relative timeout. */
static struct timespec deadline_of(uint64_t timeout_ns, bool *forever) {
  struct timespec ts = {0, 0};
  *forever = timeout_ns == FUT_FOREVER;
  if (*forever)
    return ts;
  uint64_t now = fut__now();
  uint64_t when = now + timeout_ns < now ? UINT64_MAX : now + timeout_ns;
  ts.tv_sec = (time_t)(when / 1000000000u);
  ts.tv_nsec = (long)(when % 1000000000u);
  return ts;
}

/* Waits on w (m held) until pred(w, ctx) or the deadline; returns whether
 * pred holds. */
static bool waiter_wait(struct cf_waiter *w,
                        bool (*pred)(struct cf_waiter *, const void *),
                        const void *ctx, const struct timespec *dl,
                        bool forever) {
  while (!pred(w, ctx)) {
    if (forever) {
      pthread_cond_wait(&w->c, &w->m);
    } else if (pthread_cond_timedwait(&w->c, &w->m, dl) == ETIMEDOUT) {
      return pred(w, ctx);
    }
  }
  return true;
}

/* ---- lifetime ------------------------------------------------------------ */

/* The cfuture's size rounded up so trailing extra space is aligned. */
#define CF_SIZE ((sizeof(struct fut_cfuture) + 15u) & ~(size_t)15u)

int fut__cfuture_new_ext(size_t extra, fut_cfuture_t **out, void **extra_out) {
  *out = NULL;
  if (extra > SIZE_MAX - CF_SIZE)
    return fut__error(-ENOMEM, "fut_cfuture_new: %zu bytes is too big", extra);
  /* Not calloc: the extra space may be large and is the caller's. */
  fut_cfuture_t *cf = fut__malloc(CF_SIZE + extra);
  if (!cf)
    return fut__error(-ENOMEM, "fut_cfuture_new: out of memory");
  fut__cfuture_init(cf, NULL, 1);
  if (extra_out)
    *extra_out = (char *)cf + CF_SIZE;
  *out = cf;
  return 0;
}

void fut__cfuture_init(fut_cfuture_t *cf, void (*release)(fut_cfuture_t *),
                       unsigned refs) {
  memset(cf, 0, sizeof *cf);
  atomic_init(&cf->refs, refs);
  atomic_init(&cf->state, FUT_CFUTURE_PENDING);
  atomic_init(&cf->locked, false);
  cf->cbs = cf->cb_inline;
  cf->capcbs = 2;
  cf->release = release;
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

static void clear_result(fut_cfuture_t *cf) {
  switch (cf->rkind) {
  case CF_R_PTR:
    if (cf->r.p.dtor)
      cf->r.p.dtor(cf->r.p.ptr);
    break;
  case CF_R_BYTES:
    free(cf->r.b.data);
    break;
  default:
    break;
  }
  cf->rkind = CF_R_NONE;
}

void fut_cfuture_unref(fut_cfuture_t *cf) {
  if (!cf)
    return;
  unsigned old = atomic_fetch_sub_explicit(&cf->refs, 1, memory_order_acq_rel);
  FUT__ASSERT(old > 0);
  if (old != 1)
    return;
  /* No waiter can be linked: waiters hold references. */
  FUT__ASSERT(cf->waiters == NULL);
  clear_result(cf);
  fut__free(cf->msg);
  if (cf->cbs != cf->cb_inline)
    fut__free(cf->cbs);
  if (cf->release)
    cf->release(cf);
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
  return cf && is_done_state(fut_cfuture_state(cf));
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
  bool failed = state == FUT_CFUTURE_FINISHED && cf->err != 0;
  for (struct cf_node *n = cf->waiters; n; n = n->next) {
    n->linked = false;
    waiter_count(n->w, n->idx, failed);
  }
  cf->waiters = NULL;
  /* Nobody writes the detached vector after the unlock: registrations on
   * a done cfuture run inline, removals find ncbs == 0. */
  struct cf_cb *cbs = cf->cbs;
  size_t ncbs = cf->ncbs;
  cf->cbs = cf->cb_inline;
  cf->ncbs = 0;
  cf->capcbs = 2;
  /* A callback may drop the last reference the caller relied on; keep cf
   * alive until they all ran. */
  fut_cfuture_ref(cf);
  cf_unlock(cf);
  for (size_t i = 0; i < ncbs; i++)
    cbs[i].cb(cf, cbs[i].arg);
  if (cbs != cf->cb_inline)
    fut__free(cbs);
  fut_cfuture_unref(cf);
}

/* Locks cf if it may still be completed; else returns the error. */
static int lock_settable(fut_cfuture_t *cf, const char *what) {
  if (!cf)
    return fut__error(-EINVAL, "%s: NULL cfuture", what);
  cf_lock(cf);
  int s = atomic_load_explicit(&cf->state, memory_order_relaxed);
  if (is_done_state(s)) {
    cf_unlock(cf);
    return fut__error(FUT_E_INVALID_STATE, "%s: the cfuture is already %s",
                      what,
                      s == FUT_CFUTURE_CANCELLED ? "cancelled" : "finished");
  }
  return 0;
}

bool fut_cfuture_cancel(fut_cfuture_t *cf) {
  if (!cf)
    return false;
  cf_lock(cf);
  int s = atomic_load_explicit(&cf->state, memory_order_relaxed);
  if (s != FUT_CFUTURE_PENDING) {
    cf_unlock(cf);
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
  cf_lock(cf);
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
  cf_unlock(cf);
  return ret;
}

int fut_cfuture_set_result(fut_cfuture_t *cf, void *ptr, fut_free_fn dtor) {
  int err = lock_settable(cf, "fut_cfuture_set_result");
  if (err)
    return err;
  cf->rkind = CF_R_PTR;
  cf->r.p.ptr = ptr;
  cf->r.p.dtor = dtor;
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
  cf->rkind = CF_R_BYTES;
  cf->r.b.data = data;
  cf->r.b.len = len;
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
  /* len + 1 must not wrap to a tiny allocation. */
  char *copy = len < SIZE_MAX ? fut__malloc(len + 1) : NULL;
  if (!copy)
    return fut__error(-ENOMEM,
                      "fut_cfuture_set_result_bytes: out of memory "
                      "for %zu bytes",
                      len);
  if (len)
    memcpy(copy, data, len);
  copy[len] = '\0';
  int err = fut_cfuture_set_result_bytes_owned(cf, copy, len);
  if (err)
    free(copy);
  return err;
}

int fut_cfuture_set_result_i64(fut_cfuture_t *cf, int64_t value) {
  int err = lock_settable(cf, "fut_cfuture_set_result_i64");
  if (err)
    return err;
  cf->rkind = CF_R_I64;
  cf->r.i64 = value;
  complete_locked(cf, FUT_CFUTURE_FINISHED);
  return 0;
}

int fut_cfuture_set_exceptionv(fut_cfuture_t *cf, int code, const char *fmt,
                               va_list ap) {
  if (!cf)
    return fut__error(-EINVAL, "fut_cfuture_set_exception: NULL cfuture");
  if (code >= 0)
    return fut__error(-EINVAL,
                      "fut_cfuture_set_exception: the code must be "
                      "negative, got %d",
                      code);
  char *msg = NULL;
  if (fmt && !(msg = fut__vasprintf(fmt, ap)))
    return fut__error(-ENOMEM, "fut_cfuture_set_exception: out of memory for "
                               "the message");
  int err = lock_settable(cf, "fut_cfuture_set_exception");
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

/* ---- waiting and reading ------------------------------------------------- */

static bool pred_any(struct cf_waiter *w, const void *ctx) {
  (void)ctx;
  return w->ndone > 0;
}

int fut_cfuture_wait(fut_cfuture_t *cf, uint64_t timeout_ns) {
  if (!cf)
    return fut__error(-EINVAL, "fut_cfuture_wait: NULL cfuture");
  if (fut_cfuture_done(cf))
    return 0;
  if (timeout_ns == 0)
    return fut__error(-ETIMEDOUT, "fut_cfuture_wait: not done");
  bool forever;
  struct timespec dl = deadline_of(timeout_ns, &forever);
  struct cf_waiter w;
  waiter_init(&w, NULL);
  struct cf_node n = {.w = &w, .idx = 0};
  node_link(cf, &n);
  pthread_mutex_lock(&w.m);
  bool ok = waiter_wait(&w, pred_any, NULL, &dl, forever);
  pthread_mutex_unlock(&w.m);
  node_unlink(cf, &n);
  waiter_destroy(&w);
  return ok ? 0 : fut__error(-ETIMEDOUT, "fut_cfuture_wait: timed out");
}

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
    if (cf->rkind == CF_R_PTR)
      *out = cf->r.p.ptr;
    else if (cf->rkind == CF_R_BYTES)
      *out = cf->r.b.data;
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
  if (cf->rkind == CF_R_BYTES) {
    if (data)
      *data = cf->r.b.data;
    if (len)
      *len = cf->r.b.len;
  } else if (cf->rkind == CF_R_PTR && data) {
    *data = cf->r.p.ptr;
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
  if (out && cf->rkind == CF_R_I64)
    *out = cf->r.i64;
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
  cf_lock(cf);
  if (is_done_state(atomic_load_explicit(&cf->state, memory_order_relaxed))) {
    cf_unlock(cf);
    cb(cf, arg);
    return 0;
  }
  if (cf->ncbs == cf->capcbs) {
    size_t cap = cf->capcbs * 2;
    struct cf_cb *v = fut__malloc(sizeof *v * cap);
    if (!v) {
      cf_unlock(cf);
      return fut__error(-ENOMEM, "fut_cfuture_add_done_callback: out of "
                                 "memory");
    }
    memcpy(v, cf->cbs, sizeof *v * cf->ncbs);
    if (cf->cbs != cf->cb_inline)
      fut__free(cf->cbs);
    cf->cbs = v;
    cf->capcbs = cap;
  }
  cf->cbs[cf->ncbs++] = (struct cf_cb){cb, arg};
  cf_unlock(cf);
  return 0;
}

int fut_cfuture_remove_done_callback(fut_cfuture_t *cf, fut_cfuture_done_cb cb,
                                     void *arg) {
  if (!cf || !cb)
    return fut__error(-EINVAL, "fut_cfuture_remove_done_callback: NULL %s",
                      !cf ? "cfuture" : "callback");
  int removed = 0;
  cf_lock(cf);
  size_t kept = 0;
  for (size_t i = 0; i < cf->ncbs; i++) {
    if (cf->cbs[i].cb == cb && cf->cbs[i].arg == arg)
      removed++;
    else
      cf->cbs[kept++] = cf->cbs[i];
  }
  cf->ncbs = kept;
  cf_unlock(cf);
  return removed;
}

/* ---- several cfutures ---------------------------------------------------- */

static int check_array(fut_cfuture_t *const *fs, size_t n, const char *what) {
  if (n > 0 && !fs)
    return fut__error(-EINVAL, "%s: NULL array", what);
  for (size_t i = 0; i < n; i++)
    if (!fs[i])
      return fut__error(-EINVAL, "%s: entry %zu is NULL", what, i);
  return 0;
}

struct wait_ctx {
  size_t n;
  fut_cfuture_wait_when_t when;
};

static bool pred_when(struct cf_waiter *w, const void *p) {
  const struct wait_ctx *c = p;
  switch (c->when) {
  case FUT_CFUTURE_FIRST_COMPLETED:
    return w->ndone > 0 || c->n == 0;
  case FUT_CFUTURE_FIRST_EXCEPTION:
    return w->nfailed > 0 || w->ndone == c->n;
  default:
    return w->ndone == c->n;
  }
}

int fut_cfuture_wait_many(fut_cfuture_t *const *fs, size_t n,
                          fut_cfuture_wait_when_t when, uint64_t timeout_ns,
                          bool *done) {
  int err = check_array(fs, n, "fut_cfuture_wait_many");
  if (err)
    return err;
  if (when != FUT_CFUTURE_FIRST_COMPLETED &&
      when != FUT_CFUTURE_FIRST_EXCEPTION && when != FUT_CFUTURE_ALL_COMPLETED)
    return fut__error(-EINVAL, "fut_cfuture_wait_many: bad condition %d",
                      (int)when);
  if (n > 0) {
    struct cf_node *nodes = fut__calloc(n, sizeof *nodes);
    if (!nodes)
      return fut__error(-ENOMEM, "fut_cfuture_wait_many: out of memory");
    bool forever;
    struct timespec dl = deadline_of(timeout_ns, &forever);
    struct cf_waiter w;
    waiter_init(&w, NULL);
    struct wait_ctx ctx = {n, when};
    for (size_t i = 0; i < n; i++) {
      nodes[i].w = &w;
      nodes[i].idx = i;
      node_link(fs[i], &nodes[i]);
    }
    if (timeout_ns != 0) {
      pthread_mutex_lock(&w.m);
      waiter_wait(&w, pred_when, &ctx, &dl, forever);
      pthread_mutex_unlock(&w.m);
    }
    for (size_t i = 0; i < n; i++)
      node_unlink(fs[i], &nodes[i]);
    waiter_destroy(&w);
    fut__free(nodes);
  }
  int ndone = 0;
  for (size_t i = 0; i < n; i++) {
    bool d = fut_cfuture_done(fs[i]);
    if (done)
      done[i] = d;
    ndone += d;
  }
  return ndone;
}

struct fut_cfuture_as_completed {
  size_t n;              /* cfutures watched */
  fut_cfuture_t **fs;    /* references, one per entry */
  struct cf_node *nodes; /* one per entry, linked until done or free */
  size_t *order;         /* indices in completion order (waiter's) */
  size_t next;           /* entries of order[] already yielded */
  struct cf_waiter w;
  struct timespec dl; /* overall deadline */
  bool forever;       /* no deadline */
};

int fut_cfuture_as_completed(fut_cfuture_t *const *fs, size_t n,
                             uint64_t timeout_ns,
                             fut_cfuture_as_completed_t **out) {
  if (!out)
    return fut__error(-EINVAL, "fut_cfuture_as_completed: NULL out");
  *out = NULL;
  int err = check_array(fs, n, "fut_cfuture_as_completed");
  if (err)
    return err;
  fut_cfuture_as_completed_t *it = fut__calloc(1, sizeof *it);
  size_t cnt = n ? n : 1;
  if (it) {
    it->fs = fut__calloc(cnt, sizeof *it->fs);
    it->nodes = fut__calloc(cnt, sizeof *it->nodes);
    it->order = fut__calloc(cnt, sizeof *it->order);
  }
  if (!it || !it->fs || !it->nodes || !it->order) {
    if (it) {
      fut__free(it->fs);
      fut__free(it->nodes);
      fut__free(it->order);
      fut__free(it);
    }
    return fut__error(-ENOMEM, "fut_cfuture_as_completed: out of memory");
  }
  it->n = n;
  it->dl = deadline_of(timeout_ns, &it->forever);
  waiter_init(&it->w, it->order);
  for (size_t i = 0; i < n; i++) {
    it->fs[i] = fut_cfuture_ref(fs[i]);
    it->nodes[i].w = &it->w;
    it->nodes[i].idx = i;
    node_link(fs[i], &it->nodes[i]);
  }
  *out = it;
  return 0;
}

static bool pred_more(struct cf_waiter *w, const void *p) {
  return w->norder > *(const size_t *)p;
}

int fut_cfuture_as_completed_next(fut_cfuture_as_completed_t *it,
                                  fut_cfuture_t **out) {
  if (!it || !out)
    return fut__error(-EINVAL, "fut_cfuture_as_completed_next: NULL %s",
                      !it ? "iterator" : "out");
  *out = NULL;
  if (it->next == it->n)
    return -ENOENT;
  pthread_mutex_lock(&it->w.m);
  bool ok = waiter_wait(&it->w, pred_more, &it->next, &it->dl, it->forever);
  size_t idx = ok ? it->order[it->next] : 0;
  pthread_mutex_unlock(&it->w.m);
  if (!ok)
    return fut__error(-ETIMEDOUT,
                      "fut_cfuture_as_completed_next: %zu of %zu "
                      "cfutures not done in time",
                      it->n - it->next, it->n);
  it->next++;
  *out = it->fs[idx];
  return 0;
}

void fut_cfuture_as_completed_free(fut_cfuture_as_completed_t *it) {
  if (!it)
    return;
  for (size_t i = 0; i < it->n; i++) {
    node_unlink(it->fs[i], &it->nodes[i]);
    fut_cfuture_unref(it->fs[i]);
  }
  waiter_destroy(&it->w);
  fut__free(it->fs);
  fut__free(it->nodes);
  fut__free(it->order);
  fut__free(it);
}

int fut__cfuture_outcome(fut_cfuture_t *cf, const char **msg) {
  FUT__ASSERT(fut_cfuture_done(cf));
  *msg = cf->msg;
  return cf->err;
}

int fut__cfuture_copy_result(fut_cfuture_t *cf, fut_t *f) {
  FUT__ASSERT(fut_cfuture_state(cf) == FUT_CFUTURE_FINISHED && cf->err == 0);
  switch (cf->rkind) {
  case CF_R_PTR:
    return fut_set_result(f, cf->r.p.ptr, NULL);
  case CF_R_BYTES:
    return fut_set_result_bytes(f, cf->r.b.data, cf->r.b.len);
  case CF_R_I64:
    return fut_set_result_i64(f, cf->r.i64);
  default:
    return fut_set_result(f, NULL, NULL);
  }
}
