/* Blocking waits on concurrent futures: one (fut_cfuture_wait), several
 * (fut_cfuture_wait_many, concurrent.futures.wait) and as they complete
 * (fut_cfuture_as_completed).
 *
 * They use waiter records, as Python's _Waiter: a waiter owns a mutex +
 * condition variable and links one watch into each cfuture it watches.
 * Completion walks the watches under the cfuture's lock and bumps the
 * waiter's counters under the waiter's lock; the lock order is always
 * cfuture, then waiter. */
#include "exec/internal.h"

struct waiter;

/* One waiter's watch on one cfuture: its link in the cfuture's waiters. */
struct watch {
  struct fut__qnode link; /* in cf->waiters until cf is done or the wait
                             ends (guarded by the cfuture's lock) */
  struct waiter *waiter;  /* the owner; never changes */
  size_t idx;             /* position of the cfuture in the caller's
                             array */
};

struct waiter {
  pthread_mutex_t m;
  pthread_cond_t c; /* signalled on every completion counted here */
  size_t ndone;     /* guarded by m: watched cfutures now done */
  size_t nfailed;   /* guarded by m: of those, finished with an error */
  size_t *order;    /* guarded by m: indices in completion order, or
                       NULL when not recorded */
  size_t norder;    /* guarded by m: entries written in order[] */
};

static pthread_condattr_t cond_attr;
static pthread_once_t cond_once = PTHREAD_ONCE_INIT;

static void init_cond_attr(void) {
  pthread_condattr_init(&cond_attr);
  pthread_condattr_setclock(&cond_attr, CLOCK_MONOTONIC);
}

/* ---- waiters ------------------------------------------------------------- */

static void waiter_init(struct waiter *w, size_t *order) {
  pthread_once(&cond_once, init_cond_attr);
  pthread_mutex_init(&w->m, NULL);
  pthread_cond_init(&w->c, &cond_attr);
  w->ndone = w->nfailed = w->norder = 0;
  w->order = order;
}

static void waiter_destroy(struct waiter *w) {
  pthread_cond_destroy(&w->c);
  pthread_mutex_destroy(&w->m);
}

/* Called with the watched cfuture's lock held (or before linking, for a
 * cfuture found done). */
static void waiter_count(struct waiter *w, size_t idx, bool failed) {
  pthread_mutex_lock(&w->m);
  w->ndone++;
  if (failed)
    w->nfailed++;
  if (w->order)
    w->order[w->norder++] = idx;
  pthread_cond_signal(&w->c);
  pthread_mutex_unlock(&w->m);
}

void fut__cfuture_wake_waiters(fut_cfuture_t *cf, bool failed) {
  struct fut__qnode *n;
  while ((n = fut__q_first(&cf->waiters))) {
    struct watch *wt = fut__q_data(n, struct watch, link);
    fut__q_remove(n);
    waiter_count(wt->waiter, wt->idx, failed);
  }
}

/* Links wt into cf, or counts it at once if cf is done.  The newest watch
 * goes first: a completion counts the watches newest first. */
static void watch_link(fut_cfuture_t *cf, struct watch *wt) {
  fut__cfuture_lock(cf);
  int s = atomic_load_explicit(&cf->state, memory_order_relaxed);
  if (fut__cfuture_final(s)) {
    fut__q_init(&wt->link);
    waiter_count(wt->waiter, wt->idx,
                 s == FUT_CFUTURE_FINISHED && cf->err != 0);
  } else {
    fut__q_insert_head(&cf->waiters, &wt->link);
  }
  fut__cfuture_unlock(cf);
}

static void watch_unlink(fut_cfuture_t *cf, struct watch *wt) {
  fut__cfuture_lock(cf);
  fut__q_remove(&wt->link);
  fut__cfuture_unlock(cf);
}

/* Waits on w (m held) until pred(w, ctx) or the deadline; returns whether
 * pred holds. */
static bool waiter_wait(struct waiter *w,
                        bool (*pred)(struct waiter *, const void *),
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

/* ---- one cfuture --------------------------------------------------------- */

static bool pred_any(struct waiter *w, const void *ctx) {
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
  struct timespec dl = fut__deadline_of(timeout_ns, &forever);
  struct waiter w;
  waiter_init(&w, NULL);
  struct watch wt = {.waiter = &w, .idx = 0};
  watch_link(cf, &wt);
  pthread_mutex_lock(&w.m);
  bool ok = waiter_wait(&w, pred_any, NULL, &dl, forever);
  pthread_mutex_unlock(&w.m);
  watch_unlink(cf, &wt);
  waiter_destroy(&w);
  return ok ? 0 : fut__error(-ETIMEDOUT, "fut_cfuture_wait: timed out");
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

static bool pred_when(struct waiter *w, const void *p) {
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
  for (size_t i = 0; done && i < n; i++)
    done[i] = false; /* the out rule of errors.h */
  int err = check_array(fs, n, "fut_cfuture_wait_many");
  if (err)
    return err;
  if (when != FUT_CFUTURE_FIRST_COMPLETED &&
      when != FUT_CFUTURE_FIRST_EXCEPTION && when != FUT_CFUTURE_ALL_COMPLETED)
    return fut__error(-EINVAL, "fut_cfuture_wait_many: bad condition %d",
                      (int)when);
  if (n > 0) {
    struct watch *watches = fut__calloc(n, sizeof *watches);
    if (!watches)
      return fut__error(-ENOMEM, "fut_cfuture_wait_many: out of memory");
    bool forever;
    struct timespec dl = fut__deadline_of(timeout_ns, &forever);
    struct waiter w;
    waiter_init(&w, NULL);
    struct wait_ctx ctx = {n, when};
    for (size_t i = 0; i < n; i++) {
      watches[i].waiter = &w;
      watches[i].idx = i;
      watch_link(fs[i], &watches[i]);
    }
    if (timeout_ns != 0) {
      pthread_mutex_lock(&w.m);
      waiter_wait(&w, pred_when, &ctx, &dl, forever);
      pthread_mutex_unlock(&w.m);
    }
    for (size_t i = 0; i < n; i++)
      watch_unlink(fs[i], &watches[i]);
    waiter_destroy(&w);
    fut__free(watches);
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
  struct watch *watches; /* one per entry, linked until done or free */
  size_t *order;         /* indices in completion order (waiter's) */
  size_t next;           /* entries of order[] already yielded */
  struct waiter waiter;  /* records into order[] */
  struct timespec dl;    /* overall deadline */
  bool forever;          /* no deadline */
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
  /* concurrent.futures takes a set: a cfuture listed several times is
   * yielded once. */
  struct fut__ptrset seen;
  if (fut__ptrset_init(&seen, n))
    return fut__error(-ENOMEM, "fut_cfuture_as_completed: out of memory");
  fut_cfuture_as_completed_t *it = fut__calloc(1, sizeof *it);
  size_t cnt = n ? n : 1;
  if (it) {
    it->fs = fut__calloc(cnt, sizeof *it->fs);
    it->watches = fut__calloc(cnt, sizeof *it->watches);
    it->order = fut__calloc(cnt, sizeof *it->order);
  }
  if (!it || !it->fs || !it->watches || !it->order) {
    if (it) {
      fut__free(it->fs);
      fut__free(it->watches);
      fut__free(it->order);
      fut__free(it);
    }
    fut__ptrset_free(&seen);
    return fut__error(-ENOMEM, "fut_cfuture_as_completed: out of memory");
  }
  it->dl = fut__deadline_of(timeout_ns, &it->forever);
  waiter_init(&it->waiter, it->order);
  for (size_t i = 0; i < n; i++) {
    if (!fut__ptrset_add(&seen, fs[i]))
      continue;
    size_t k = it->n++;
    it->fs[k] = fut_cfuture_ref(fs[i]);
    it->watches[k].waiter = &it->waiter;
    it->watches[k].idx = k;
    watch_link(fs[i], &it->watches[k]);
  }
  fut__ptrset_free(&seen);
  *out = it;
  return 0;
}

static bool pred_more(struct waiter *w, const void *p) {
  return w->norder > *(const size_t *)p;
}

int fut_cfuture_as_completed_next(fut_cfuture_as_completed_t *it,
                                  fut_cfuture_t **out) {
  if (out)
    *out = NULL; /* the out rule of errors.h */
  if (!it || !out)
    return fut__error(-EINVAL, "fut_cfuture_as_completed_next: NULL %s",
                      !it ? "iterator" : "out");
  if (it->next == it->n)
    return -ENOENT;
  pthread_mutex_lock(&it->waiter.m);
  bool ok =
      waiter_wait(&it->waiter, pred_more, &it->next, &it->dl, it->forever);
  size_t idx = ok ? it->order[it->next] : 0;
  pthread_mutex_unlock(&it->waiter.m);
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
    watch_unlink(it->fs[i], &it->watches[i]);
    fut_cfuture_unref(it->fs[i]);
  }
  waiter_destroy(&it->waiter);
  fut__free(it->fs);
  fut__free(it->watches);
  fut__free(it->order);
  fut__free(it);
}
