/* Futures: asyncio.Future's state machine and done callbacks.
 *
 * Completion never runs callbacks inline: it queues one dispatch entry for
 * the future (holding a reference), and the dispatch runs the callbacks
 * registered so far, in order.  Callbacks registered after completion queue
 * a dispatch of their own, so everything runs in registration order and
 * nothing runs in the same drain as the call that scheduled it. */
#include "future/internal.h"

#include <string.h>

static void dispatch(void *p);
static void release_future(void *p) {
  fut_unref(p);
}

/* A registration made on a done future whose dispatch is already queued
 * cannot join that dispatch: the dispatch may sit in the current drain's
 * snapshot, and what is scheduled during a drain runs on the next
 * iteration.  It gets a ready entry of its own, queued behind the
 * dispatch, which keeps registration order. */
struct late_cb {
  fut_t *f; /* holds a reference until the entry ran or went */
  fut_done_cb cb;
  void *arg;
};

static void run_late(void *p) {
  struct late_cb l = *(struct late_cb *)p;
  fut__free(p);
  l.cb(l.f, l.arg);
  fut_unref(l.f);
}

static void ctx_done_run(fut_t *f, void *p);

/* Frees a registration's bound call (asyncio's context) when it will not
 * run. */
static inline void drop_ent(const struct fut__cb_ent *e) {
  if (FUT__UNLIKELY(e->cb == ctx_done_run))
    fut__ctx_call_free(e->arg);
}

static void release_late(void *p) {
  struct late_cb *l = p;
  fut_t *f = l->f;
  drop_ent(&(struct fut__cb_ent){l->cb, l->arg});
  fut__free(p);
  fut_unref(f);
}

static void late_dropped(void *p) {
  (void)p;
}

int fut__drop_late_callbacks(fut_loop_t *loop, fut_done_cb cb, void *arg) {
  struct fut__ring *r = &loop->ready;
  int n = 0;
  for (uint32_t i = r->head; i != r->tail; i++) {
    struct fut__ready_ent *e = &r->ents[i & r->mask];
    struct late_cb *l = e->arg;
    if (e->fn != run_late || l->cb != cb || l->arg != arg)
      continue;
    e->fn = late_dropped;
    e->arg = NULL;
    release_late(l);
    n++;
  }
  return n;
}

/* For the loop's default exception handler, which cannot read futures. */
static int describe(const fut_t *f, char *buf, size_t size) {
  const struct fut__ops *ops = fut__ops_of(f);
  static const char *const states[] = {"pending", "finished", "cancelled"};
  return snprintf(buf, size, "%s %p (%s)", ops ? ops->type_name : "future",
                  (const void *)f, states[f->state]);
}

__attribute__((constructor)) static void future_global_init(void) {
  fut__register_release(dispatch, release_future);
  fut__register_release(run_late, release_late);
  fut__describe_future = describe;
}

static void init_fields(fut_t *f, fut_loop_t *loop) {
  memset(f, 0, sizeof *f);
  f->loop = loop;
  f->refs = 1;
  loop->live_futures++;
}

__attribute__((noinline)) static int new_slow(fut_loop_t *loop, fut_t **out);

int fut_new(fut_loop_t *loop, fut_t **out) {
  /* The fast path makes no call (no stack frame): a healthy loop and a
   * slot at hand in its slab. */
  if (FUT__LIKELY(loop && out && !loop->checked)) {
    fut_t *f = fut__slab_try_alloc(&loop->fut_slab);
    if (FUT__LIKELY(f != NULL)) {
      init_fields(f, loop);
      *out = f;
      return 0;
    }
  }
  return new_slow(loop, out);
}

static int new_slow(fut_loop_t *loop, fut_t **out) {
  if (FUT__UNLIKELY(!loop || !out)) {
    if (out)
      *out = NULL; /* the out rule of errors.h */
    return fut__error(-EINVAL, "fut_new: NULL %s", !loop ? "loop" : "out");
  }
  *out = NULL;
  if (FUT__UNLIKELY(loop->checked)) {
    int err = fut__check_usable(loop);
    if (err)
      return err;
  }
  fut_t *f = fut__slab_alloc(&loop->fut_slab);
  if (FUT__UNLIKELY(!f))
    return fut__error(-ENOMEM, "fut_new: out of memory");
  init_fields(f, loop);
  *out = f;
  return 0;
}

int fut__ext_init(fut_loop_t *loop, struct fut__ext *x,
                  const struct fut__ops *ops) {
  if (!loop)
    return fut__error(-EINVAL, "NULL loop");
  int err = fut__check_usable_fast(loop);
  if (err)
    return err;
  x->ops = ops;
  init_fields(&x->fut, loop);
  x->fut.flags = FUT__F_EXT;
  return 0;
}

fut_t *fut_ref(fut_t *f) {
  if (f)
    f->refs++;
  return f;
}

/* Frees the result storage (not the message of a pending future: it has
 * none). */
static void clear_result(fut_t *f) {
  if (f->rkind == FUT__R_SHARED)
    fut_unref(f->r.s.src);
  else if (f->rkind == FUT__R_MSG)
    fut__free(f->r.msg);
  else
    fut__value_clear(f->rkind, &f->r.v);
  f->rkind = FUT__R_NONE;
}

/* Registrations that never ran: only bound ones hold anything. */
__attribute__((noinline)) static void drop_bound(fut_t *f) {
  if (f->flags & FUT__F_CB0)
    drop_ent(&f->cb0);
  for (uint32_t i = 0; f->more && i < f->more->len; i++)
    drop_ent(&f->more->e[i]);
}

/* Reports a never-retrieved exception, in the future's own context if it
 * has one (a task's: the handler sees what the task set). */
static void report_unretrieved(fut_t *f) {
  const struct fut__ops *ops = fut__ops_of(f);
  void *ctx = ops && ops->context ? ops->context(f) : NULL;
  struct fut__ctx_frame fr;
  if (ctx)
    fut__ctx_enter(f->loop, &fr, ctx);
  fut__report_exception(f->loop, "Future exception was never retrieved", f->err,
                        f, NULL, f->rkind == FUT__R_MSG ? f->r.msg : NULL);
  if (ctx)
    fut__ctx_leave(f->loop, &fr);
}

/* The last reference went: report an unretrieved exception, free. */
__attribute__((noinline)) static void destroy(fut_t *f) {
  fut_loop_t *loop = f->loop;
  if (f->state == FUT_FINISHED && f->err != 0 &&
      !(f->flags & FUT__F_RETRIEVED)) {
    /* The handler sees a live future: hold it for the call. */
    f->refs = 1;
    f->flags |= FUT__F_RETRIEVED;
    report_unretrieved(f);
    if (--f->refs > 0)
      return; /* the handler kept a reference */
  }
  if (f->rkind != FUT__R_NONE && f->rkind != FUT__R_I64)
    clear_result(f);
  if (FUT__UNLIKELY(f->flags & FUT__F_BOUND))
    drop_bound(f);
  if (f->more)
    fut__free(f->more);
  const struct fut__ops *ops = fut__ops_of(f);
  if (ops)
    ops->destroy(f);
  else
    fut__slab_free(&loop->fut_slab, f);
  loop->live_futures--;
  if (FUT__UNLIKELY(loop->freed))
    fut__loop_maybe_release(loop);
}

/* Whether a future whose last reference went has nothing for destroy to
 * do but free it: plain (no ops), no registration left to drop, a result
 * that owns nothing, no exception to report, its loop not being freed. */
static inline bool plain_release(const fut_t *f) {
  return !(f->flags & (FUT__F_EXT | FUT__F_BOUND)) && !f->more &&
         (f->rkind == FUT__R_NONE || f->rkind == FUT__R_I64) &&
         (f->err == 0 || f->state != FUT_FINISHED ||
          (f->flags & FUT__F_RETRIEVED)) &&
         !f->loop->freed;
}

void fut_unref(fut_t *f) {
  if (!f)
    return;
  FUT__ASSERT(f->refs > 0);
  if (--f->refs > 0)
    return;
  if (FUT__LIKELY(plain_release(f))) { /* destroy's common case, inline */
    fut_loop_t *loop = f->loop;
    loop->live_futures--;
    fut__slab_free(&loop->fut_slab, f);
    return;
  }
  destroy(f);
}

/* NULL (say, the out of a failed constructor) reads as pending. */
fut_state_t fut_state(const fut_t *f) {
  return f ? (fut_state_t)f->state : FUT_PENDING;
}
bool fut_done(const fut_t *f) {
  return f && f->state != FUT_PENDING;
}
bool fut_cancelled(const fut_t *f) {
  return f && f->state == FUT_CANCELLED;
}
fut_loop_t *fut_get_loop(const fut_t *f) {
  return f ? f->loop : NULL;
}

/* ---- completion -----------------------------------------------------------
 */

static int schedule_dispatch(fut_t *f) {
  if (f->flags & FUT__F_DISPATCH)
    return 0;
  if (!(f->flags & FUT__F_CB0))
    return 0;
  int err = fut__ring_push(&f->loop->ready, dispatch, f);
  if (err)
    return err;
  f->refs++;
  f->flags |= FUT__F_DISPATCH;
  return 0;
}

static void dispatch(void *p) {
  fut_t *f = p;
  /* Detach the registrations: callbacks added from here on queue a new
   * dispatch and run on a later iteration. */
  struct fut__cb_ent first = f->cb0;
  struct fut__cb_vec *more = f->more;
  f->more = NULL;
  f->flags &= (uint8_t) ~(FUT__F_CB0 | FUT__F_DISPATCH | FUT__F_BOUND);
  first.cb(f, first.arg);
  if (more) {
    for (uint32_t i = 0; i < more->len; i++)
      more->e[i].cb(f, more->e[i].arg);
    fut__free(more);
  }
  if (--f->refs == 0) /* the queue's reference (fut_unref, inline) */
    destroy(f);
}

/* Why f cannot be completed now (the cold half of check_settable). */
__attribute__((noinline)) static int settable_error(fut_t *f, const char *what,
                                                    uint8_t forbid) {
  if (!f)
    return fut__error(-EINVAL, "%s: NULL future", what);
  if (f->state != FUT_PENDING)
    return fut__error(FUT_E_INVALID_STATE, "%s: the future is already %s", what,
                      f->state == FUT_CANCELLED ? "cancelled" : "done");
  if (f->flags & forbid) {
    const struct fut__ops *ops = fut__ops_of(f);
    return fut__error(FUT_E_NOT_SETTABLE,
                      "%s: a %s sets its own outcome (asyncio: "
                      "Task does not support set_result)",
                      what, ops ? ops->type_name : "future");
  }
  return fut__check_usable(f->loop);
}

/* Checks that f may be completed now; returns 0 or the error.  forbid:
 * the flags that refuse it (FUT__F_OWNED for the setters, 0 for a
 * cancel). */
static inline int check_settable_by(fut_t *f, const char *what,
                                    uint8_t forbid) {
  if (FUT__UNLIKELY(!f || f->state != FUT_PENDING || (f->flags & forbid) ||
                    f->loop->checked)) {
    int err = settable_error(f, what, forbid);
    if (err)
      return err;
  }
  /* Reserve the ready-queue slot first, so completion cannot fail half way
   * (a dispatch that cannot be queued would lose callbacks).  f is pending:
   * no dispatch is queued for it. */
  const struct fut__ring *r = &f->loop->ready;
  if ((f->flags & FUT__F_CB0) && FUT__UNLIKELY(r->tail - r->head > r->mask))
    return fut__ring_grow(&f->loop->ready);
  return 0;
}

/* check_settable_by for the setters: an owned future (a task) refuses. */
static inline int check_settable(fut_t *f, const char *what) {
  return check_settable_by(f, what, FUT__F_OWNED);
}

/* The setters' fast path: check_settable would pass with nothing to do (a
 * pending plain future, a healthy loop, room for the dispatch).  The
 * setter then completes with no call, so it needs no stack frame; the
 * rest goes through check_settable. */
static inline bool settable_fast(const fut_t *f) {
  if (!f || f->state != FUT_PENDING || (f->flags & FUT__F_OWNED) ||
      f->loop->checked)
    return false;
  const struct fut__ring *r = &f->loop->ready;
  return !(f->flags & FUT__F_CB0) || r->tail - r->head <= r->mask;
}

/* Completes a pending future that check_settable passed: its dispatch
 * (if it has registrations) goes into the slot check_settable reserved,
 * with no second check.  A pending future has no dispatch queued. */
static inline void finish(fut_t *f, uint8_t state, int err) {
  f->state = state;
  f->err = err;
  uint8_t flags = f->flags;
  if (flags & FUT__F_CB0) {
    struct fut__ring *r = &f->loop->ready;
    uint32_t tail = r->tail;
    struct fut__ready_ent *e = &r->ents[tail & r->mask];
    r->tail = tail + 1;
    e->fn = dispatch;
    e->arg = f;
    f->refs++;
    f->flags = flags | FUT__F_DISPATCH;
  }
}

static inline void put_ptr(fut_t *f, void *ptr, fut_free_fn dtor) {
  f->rkind = FUT__R_PTR;
  f->r.v.p.ptr = ptr;
  f->r.v.p.dtor = dtor;
  finish(f, FUT_FINISHED, 0);
}

__attribute__((noinline)) static int set_result_slow(fut_t *f, void *ptr,
                                                     fut_free_fn dtor) {
  int err = check_settable(f, "fut_set_result");
  if (FUT__UNLIKELY(err))
    return err;
  put_ptr(f, ptr, dtor);
  return 0;
}

int fut_set_result(fut_t *f, void *ptr, fut_free_fn dtor) {
  if (FUT__UNLIKELY(!settable_fast(f)))
    return set_result_slow(f, ptr, dtor);
  put_ptr(f, ptr, dtor);
  return 0;
}

int fut_set_result_bytes_owned(fut_t *f, void *data, size_t len) {
  int err = check_settable(f, "fut_set_result_bytes_owned");
  if (err)
    return err;
  f->rkind = FUT__R_BYTES;
  f->r.v.b.data = data;
  f->r.v.b.len = len;
  finish(f, FUT_FINISHED, 0);
  return 0;
}

int fut_set_result_bytes(fut_t *f, const void *data, size_t len) {
  int err = check_settable(f, "fut_set_result_bytes");
  if (err)
    return err;
  if (len > 0 && !data)
    return fut__error(-EINVAL,
                      "fut_set_result_bytes: NULL data with "
                      "length %zu",
                      len);
  /* One spare byte keeps a text result NUL-terminated for convenience. */
  void *copy = fut__bytes_dup(data, len);
  if (!copy)
    return fut__error(-ENOMEM,
                      "fut_set_result_bytes: out of memory for %zu "
                      "bytes",
                      len);
  return fut_set_result_bytes_owned(f, copy, len);
}

static inline void put_i64(fut_t *f, int64_t value) {
  f->rkind = FUT__R_I64;
  f->r.v.i64 = value;
  finish(f, FUT_FINISHED, 0);
}

__attribute__((noinline)) static int set_result_i64_slow(fut_t *f,
                                                         int64_t value) {
  int err = check_settable(f, "fut_set_result_i64");
  if (err)
    return err;
  put_i64(f, value);
  return 0;
}

int fut_set_result_i64(fut_t *f, int64_t value) {
  if (FUT__UNLIKELY(!settable_fast(f)))
    return set_result_i64_slow(f, value);
  put_i64(f, value);
  return 0;
}

int fut_set_exceptionv(fut_t *f, int code, const char *fmt, va_list ap) {
  int err = check_settable(f, "fut_set_exception");
  if (err)
    return err;
  if ((err = fut__check_failure_code(code, "fut_set_exception")))
    return err;
  char *msg = NULL;
  if (fmt && !(msg = fut__vasprintf(fmt, ap)))
    return fut__error(-ENOMEM, "fut_set_exception: out of memory for the "
                               "message");
  if (msg) {
    f->rkind = FUT__R_MSG;
    f->r.msg = msg;
  }
  finish(f, FUT_FINISHED, code);
  return 0;
}

int fut_set_exception(fut_t *f, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int err = fut_set_exceptionv(f, code, fmt, ap);
  va_end(ap);
  return err;
}

bool fut__cancel_base(fut_t *f, const char *msg) {
  if (check_settable_by(f, "fut_cancel", 0) != 0)
    return false;
  char *copy = NULL;
  /* Out of memory for the message still cancels: the message is optional,
   * the cancellation is not. */
  if (msg && (copy = fut__strdup(msg))) {
    f->rkind = FUT__R_MSG;
    f->r.msg = copy;
  }
  finish(f, FUT_CANCELLED, -ECANCELED);
  return true;
}

bool fut_cancel(fut_t *f, const char *msg) {
  if (!f)
    return false;
  if (f->state != FUT_PENDING) {
    /* asyncio's cancel clears the "never retrieved" flag before it looks
     * at the state: cancelling a failed future counts as retrieving its
     * exception.  (A pending one that fails later is reported as usual.) */
    f->flags |= FUT__F_RETRIEVED;
    return false;
  }
  const struct fut__ops *ops = fut__ops_of(f);
  if (ops && ops->cancel)
    return ops->cancel(f, msg);
  return fut__cancel_base(f, msg);
}

int fut_copy_state(fut_t *dst, fut_t *src) {
  if (!dst || !src)
    return fut__error(-EINVAL, "fut_copy_state: NULL future");
  if (src->state == FUT_PENDING)
    return fut__error(FUT_E_INVALID_STATE, "fut_copy_state: the source is "
                                           "pending");
  /* dst first: a refused copy leaves src as it was. */
  int derr = check_settable(dst, "fut_copy_state");
  if (derr)
    return derr;
  src->flags |= FUT__F_RETRIEVED;
  const char *msg = src->rkind == FUT__R_MSG ? src->r.msg : NULL;
  if (src->state == FUT_CANCELLED) {
    int err = check_settable(dst, "fut_copy_state");
    if (err)
      return err;
    return fut_cancel(dst, msg) ? 0 : FUT_E_INVALID_STATE;
  }
  if (src->err != 0)
    return msg ? fut_set_exception(dst, src->err, "%s", msg)
               : fut_set_exception(dst, src->err, NULL);
  switch (src->rkind) {
  case FUT__R_BYTES:
    return fut_set_result_bytes(dst, src->r.v.b.data, src->r.v.b.len);
  case FUT__R_I64:
    return fut_set_result_i64(dst, src->r.v.i64);
  case FUT__R_NONE:
    return fut_set_result(dst, NULL, NULL);
  default: {
    int err = check_settable(dst, "fut_copy_state");
    if (err)
      return err;
    dst->rkind = FUT__R_SHARED;
    dst->r.s.ptr = src->rkind == FUT__R_SHARED ? src->r.s.ptr : src->r.v.p.ptr;
    dst->r.s.src = fut_ref(src->rkind == FUT__R_SHARED ? src->r.s.src : src);
    finish(dst, FUT_FINISHED, 0);
    return 0;
  }
  }
}

/* ---- reading ----------------------------------------------------------------
 */

static int outcome(fut_t *f, const char *what) {
  if (!f)
    return fut__error(-EINVAL, "%s: NULL future", what);
  if (f->state == FUT_PENDING)
    return fut__error(FUT_E_INVALID_STATE, "%s: the future is pending", what);
  f->flags |= FUT__F_RETRIEVED;
  return f->err;
}

int fut_result(fut_t *f, void **out) {
  int err = outcome(f, "fut_result");
  if (out)
    *out = NULL;
  if (err)
    return err;
  if (out) {
    switch (f->rkind) {
    case FUT__R_PTR:
      *out = f->r.v.p.ptr;
      break;
    case FUT__R_BYTES:
      *out = f->r.v.b.data;
      break;
    case FUT__R_SHARED:
      *out = f->r.s.ptr;
      break;
    default:
      break;
    }
  }
  return 0;
}

int fut_result_bytes(fut_t *f, const void **data, size_t *len) {
  int err = outcome(f, "fut_result_bytes");
  if (data)
    *data = NULL;
  if (len)
    *len = 0;
  if (err)
    return err;
  if (f->rkind != FUT__R_BYTES)
    return fut__error(-EINVAL, "fut_result_bytes: the result is not bytes");
  if (data)
    *data = f->r.v.b.data;
  if (len)
    *len = f->r.v.b.len;
  return 0;
}

int fut_result_i64(fut_t *f, int64_t *out) {
  int err = outcome(f, "fut_result_i64");
  if (out)
    *out = 0;
  if (err)
    return err;
  if (f->rkind != FUT__R_I64)
    return fut__error(-EINVAL, "fut_result_i64: the result is not an "
                               "integer");
  if (out)
    *out = f->r.v.i64;
  return 0;
}

int fut_exception(fut_t *f, const char **msg) {
  int err = outcome(f, "fut_exception");
  /* By state, not code: an exception may carry FUT_E_INVALID_STATE too. */
  if (msg)
    *msg = (err && f && f->state != FUT_PENDING && f->rkind == FUT__R_MSG)
               ? f->r.msg
               : NULL;
  return err;
}

/* ---- callbacks --------------------------------------------------------------
 */

/* Inlined into both entry points: the public one is a hot path. */
static int add_bound(fut_t *f, fut_done_cb cb, void *arg);

/* capture: the public call, whose registration may capture the scheduling
 * code's context (the slow path of loop->checked). */
__attribute__((always_inline)) static inline int
add_cb(fut_t *f, fut_done_cb cb, void *arg, bool capture) {
  if (FUT__UNLIKELY(!f || !cb))
    return fut__error(-EINVAL, "fut_add_done_callback: NULL %s",
                      !f ? "future" : "callback");
  fut_loop_t *loop = f->loop;
  /* The common case: the first registration on a pending future, stored
   * inline (no allocation, nothing queued). */
  if (FUT__LIKELY(!loop->checked && f->state == FUT_PENDING &&
                  !(f->flags & FUT__F_CB0))) {
    f->cb0 = (struct fut__cb_ent){cb, arg};
    f->flags |= FUT__F_CB0;
    return 0;
  }
  if (FUT__UNLIKELY(loop->checked)) {
    int err = fut__check_usable(loop);
    if (err)
      return err;
    if (capture && (loop->checked & FUT__CHK_CTX))
      return add_bound(f, cb, arg);
  }
  bool done = f->state != FUT_PENDING;
  /* A done future needs a queue slot: reserve it before registering. */
  if (done && loop->ready.tail - loop->ready.head > loop->ready.mask) {
    int err = fut__ring_grow(&loop->ready);
    if (err)
      return err;
  }
  if (done && (f->flags & FUT__F_DISPATCH)) {
    struct late_cb *l = fut__malloc(sizeof *l);
    if (!l)
      return fut__error(-ENOMEM, "fut_add_done_callback: out of memory");
    *l = (struct late_cb){fut_ref(f), cb, arg};
    FUT__ASSERT(fut__ring_push(&loop->ready, run_late, l) == 0);
    return 0;
  }
  if (!(f->flags & FUT__F_CB0)) {
    f->cb0 = (struct fut__cb_ent){cb, arg};
    f->flags |= FUT__F_CB0;
  } else {
    struct fut__cb_vec *v = f->more;
    if (!v || v->len == v->cap) {
      uint32_t cap = v ? v->cap * 2 : 3;
      v = fut__realloc(v, sizeof *v + sizeof v->e[0] * cap);
      if (!v)
        return fut__error(-ENOMEM, "fut_add_done_callback: out of memory");
      if (!f->more)
        v->len = 0;
      v->cap = cap;
      f->more = v;
    }
    v->e[v->len++] = (struct fut__cb_ent){cb, arg};
  }
  if (done)
    FUT__ASSERT(schedule_dispatch(f) == 0);
  return 0;
}

/* A done callback bound to its context: runs the user's inside it. */
static void ctx_done_run(fut_t *f, void *p) {
  struct fut__ctx_call c = *(struct fut__ctx_call *)p;
  fut__free(p);
  struct fut__ctx_frame fr;
  fut__ctx_enter(c.loop, &fr, c.ctx);
  c.fn.done(f, c.arg);
  fut__ctx_leave(c.loop, &fr);
}

/* Inside a task (or a bound callback) with a context: the registration
 * runs in the context captured now (asyncio: add_done_callback's
 * copy_context()). */
__attribute__((noinline)) static int add_bound(fut_t *f, fut_done_cb cb,
                                               void *arg) {
  void *ctx = fut__ctx_capture(f->loop);
  if (!ctx)
    return add_cb(f, cb, arg, false);
  struct fut__ctx_call *c = fut__ctx_call_new(f->loop, ctx, arg);
  if (!c)
    return -ENOMEM;
  c->fn.done = cb;
  int err = add_cb(f, ctx_done_run, c, false);
  if (err)
    fut__ctx_call_free(c);
  else
    f->flags |= FUT__F_BOUND; /* harmless on the late path */
  return err;
}

__attribute__((noinline)) static int add_cb_slow(fut_t *f, fut_done_cb cb,
                                                 void *arg) {
  return add_cb(f, cb, arg, true);
}

int fut_add_done_callback(fut_t *f, fut_done_cb cb, void *arg) {
  /* add_cb's common case, with no call (no stack frame). */
  if (FUT__LIKELY(f && cb && !f->loop->checked && f->state == FUT_PENDING &&
                  !(f->flags & FUT__F_CB0))) {
    f->cb0 = (struct fut__cb_ent){cb, arg};
    f->flags |= FUT__F_CB0;
    return 0;
  }
  return add_cb_slow(f, cb, arg);
}

int fut__add_done_callback(fut_t *f, fut_done_cb cb, void *arg) {
  return add_cb(f, cb, arg, false);
}

/* Whether registration e is (cb, arg), bound or not. */
static inline bool is_reg(const struct fut__cb_ent *e, fut_done_cb cb,
                          void *arg) {
  if (e->cb == cb && e->arg == arg)
    return true;
  if (e->cb != ctx_done_run)
    return false;
  const struct fut__ctx_call *c = e->arg;
  return c->fn.done == cb && c->arg == arg;
}

int fut_remove_done_callback(fut_t *f, fut_done_cb cb, void *arg) {
  if (!f || !cb)
    return fut__error(-EINVAL, "fut_remove_done_callback: NULL %s",
                      !f ? "future" : "callback");
  /* Once done, registrations are scheduled and cannot be taken back. */
  if (f->state != FUT_PENDING)
    return 0;
  int removed = 0;
  struct fut__cb_vec *v = f->more;
  uint32_t kept = 0;
  if (v) {
    for (uint32_t i = 0; i < v->len; i++) {
      if (is_reg(&v->e[i], cb, arg)) {
        drop_ent(&v->e[i]);
        removed++;
      } else {
        v->e[kept++] = v->e[i];
      }
    }
    v->len = kept;
  }
  if ((f->flags & FUT__F_CB0) && is_reg(&f->cb0, cb, arg)) {
    drop_ent(&f->cb0);
    removed++;
    /* Promote the next registration into the inline slot. */
    if (v && v->len > 0) {
      f->cb0 = v->e[0];
      memmove(v->e, v->e + 1, sizeof v->e[0] * (v->len - 1));
      v->len--;
    } else {
      f->flags &= (uint8_t)~FUT__F_CB0;
    }
  }
  if (v && v->len == 0) {
    fut__free(v);
    f->more = NULL;
  }
  return removed;
}
