/* asyncio.wait (a future done when a condition over its children holds,
 * or at a timeout) and asyncio.wait_for (one future's outcome, or
 * -ETIMEDOUT once it finished cancelling), as callback-driven futures.  See
 * combine.c for what every combinator shares. */
#include "future/internal.h"

struct waitf {
  struct fut__ext x;
  struct fut__comb link; /* in the loop's list while alive */
  fut_wait_when_t when;  /* the condition */
  size_t n;              /* children */
  size_t left;           /* children whose callback has not run */
  fut_handle_t *timer;   /* the timeout, NULL if none or done */
  fut_t *kids[];         /* references */
};

static void wait_destroy(fut_t *f) {
  struct waitf *w = fut__container_of(f, struct waitf, x.fut);
  fut__comb_untrack(&w->link);
  fut__handle_clear(&w->timer);
  for (size_t i = 0; i < w->n; i++)
    fut_unref(w->kids[i]);
  fut__free(w);
}

static void wait_child_done(fut_t *kid, void *arg);

/* The condition holds, the timeout ran out, or the wait was cancelled:
 * stop listening (asyncio's finally clause). */
static void wait_unregister(struct waitf *w) {
  fut__handle_clear(&w->timer);
  w->left -= fut__comb_unregister(w->kids, w->n, wait_child_done, w, &w->x.fut);
}

static bool wait_cancel(fut_t *f, const char *msg) {
  struct waitf *w = fut__container_of(f, struct waitf, x.fut);
  bool r = fut__cancel_base(f, msg);
  if (r) {
    fut_ref(f);
    wait_unregister(w);
    fut_unref(f);
  }
  return r;
}

static const struct fut__ops wait_ops = {
    .type_name = "wait", .cancel = wait_cancel, .destroy = wait_destroy};

static void wait_release(struct waitf *w) {
  fut_ref(&w->x.fut);
  fut_set_result(&w->x.fut, NULL, NULL);
  wait_unregister(w);
  fut_unref(&w->x.fut);
}

static void wait_child_done(fut_t *kid, void *arg) {
  struct waitf *w = arg;
  w->left--;
  if (w->x.fut.state == FUT_PENDING &&
      (w->left == 0 || w->when == FUT_WAIT_FIRST_COMPLETED ||
       (w->when == FUT_WAIT_FIRST_EXCEPTION && kid->state == FUT_FINISHED &&
        kid->err != 0)))
    wait_release(w);
  fut_unref(&w->x.fut);
}

static void wait_timeout(void *arg) {
  struct waitf *w = arg;
  fut_handle_unref(w->timer);
  w->timer = NULL;
  if (w->x.fut.state == FUT_PENDING)
    wait_release(w);
}

int fut_wait(fut_loop_t *loop, fut_t *const *fs, size_t n, fut_wait_when_t when,
             uint64_t timeout_ns, fut_t **out) {
  /* The children are checked after n and `when`. */
  int err = fut__comb_check_args(loop, fs, 0, out, "fut_wait");
  if (err)
    return err;
  if (n == 0)
    return fut__error(-EINVAL, "fut_wait: the set of futures is empty");
  if (when != FUT_WAIT_FIRST_COMPLETED && when != FUT_WAIT_FIRST_EXCEPTION &&
      when != FUT_WAIT_ALL_COMPLETED)
    return fut__error(-EINVAL, "fut_wait: invalid `when` %d", (int)when);
  if ((err = fut__comb_check_futs(loop, fs, n, "fut_wait")))
    return err;
  struct waitf *w =
      fut__comb_new(loop, sizeof *w, n, &wait_ops, "fut_wait", &err);
  if (!w)
    return err;
  w->when = when;
  /* asyncio takes a set: a future listed several times is one child.  The
   * kids hold no references until w->n counts them. */
  size_t m;
  if ((err = fut__comb_distinct(fs, n, w->kids, &m, "fut_wait")) ||
      (timeout_ns != UINT64_MAX &&
       (err = fut__call_later_nocapture(loop, timeout_ns, wait_timeout, w,
                                        &w->timer)))) {
    fut_unref(&w->x.fut);
    return err;
  }
  for (; w->n < m; w->n++)
    fut_ref(w->kids[w->n]);
  if ((err = fut__comb_register(w->kids, m, wait_child_done, w, &w->x.fut))) {
    fut_unref(&w->x.fut);
    return err;
  }
  w->left = m;
  fut__comb_track(&w->link, &w->x.fut, wait_child_done, w->kids, w->n,
                  &w->timer);
  *out = &w->x.fut;
  return 0;
}

int fut_wait_sets(const fut_t *f, fut_t **done, size_t *ndone, fut_t **pending,
                  size_t *npending) {
  if (ndone)
    *ndone = 0; /* the out rule of errors.h */
  if (npending)
    *npending = 0;
  if (!f || fut__ops_of(f) != &wait_ops)
    return fut__error(-EINVAL, "fut_wait_sets: not a fut_wait future");
  const struct waitf *w = fut__container_of(f, struct waitf, x.fut);
  size_t d = 0, p = 0;
  for (size_t i = 0; i < w->n; i++) {
    if (fut_done(w->kids[i])) {
      if (done)
        done[d] = w->kids[i];
      d++;
    } else {
      if (pending)
        pending[p] = w->kids[i];
      p++;
    }
  }
  if (ndone)
    *ndone = d;
  if (npending)
    *npending = p;
  return 0;
}

/* ---- wait_for ------------------------------------------------------------ */

struct wait_for {
  struct fut__ext x;
  struct fut__comb link; /* in the loop's list while alive */
  fut_t *inner;          /* reference */
  fut_handle_t *timer;   /* pending timeout, or NULL */
  bool timed_out;        /* the timeout cancelled inner */
  bool outer_cancel;     /* this future was cancelled: inner is finishing */
};

static void wf_destroy(fut_t *f) {
  struct wait_for *w = fut__container_of(f, struct wait_for, x.fut);
  fut__comb_untrack(&w->link);
  fut__handle_clear(&w->timer);
  fut_unref(w->inner);
  fut__free(w);
}

static bool wf_cancel(fut_t *f, const char *msg) {
  struct wait_for *w = fut__container_of(f, struct wait_for, x.fut);
  fut__handle_clear(&w->timer);
  if (w->inner->state == FUT_PENDING && fut_cancel(w->inner, msg)) {
    /* Wait for inner to finish cancelling (3.12): the outcome is decided
     * in wf_inner_done. */
    w->outer_cancel = true;
    return true;
  }
  return fut__cancel_base(f, msg);
}

static const struct fut__ops wait_for_ops = {
    .type_name = "wait_for", .cancel = wf_cancel, .destroy = wf_destroy};

static void wf_inner_done(fut_t *inner, void *arg) {
  struct wait_for *w = arg;
  fut_t *outer = &w->x.fut;
  fut__handle_clear(&w->timer);
  if (outer->state != FUT_PENDING) {
    if (inner->state != FUT_CANCELLED)
      fut__comb_consume(inner);
  } else if (inner->state == FUT_CANCELLED) {
    if (w->outer_cancel || !w->timed_out)
      fut__cancel_base(outer, fut__comb_msg(inner)); /* never swallowed */
    else
      fut_set_exception(outer, -ETIMEDOUT, "wait_for: timed out");
  } else {
    /* The inner outcome won the race against the timeout. */
    fut_copy_state(outer, inner);
  }
  fut_unref(outer);
}

static void wf_timeout(void *arg) {
  struct wait_for *w = arg;
  fut_handle_unref(w->timer);
  w->timer = NULL;
  if (w->x.fut.state == FUT_PENDING && w->inner->state == FUT_PENDING) {
    w->timed_out = true;
    fut_cancel(w->inner, NULL);
  }
}

int fut_wait_for(fut_t *f, uint64_t timeout_ns, fut_t **out) {
  int err = fut__comb_check_arg(f, out, "fut_wait_for");
  if (err)
    return err;
  struct wait_for *w =
      fut__comb_new(f->loop, sizeof *w, 0, &wait_for_ops, "fut_wait_for", &err);
  if (!w)
    return err;
  if (f->state == FUT_PENDING && timeout_ns != 0 && timeout_ns != UINT64_MAX &&
      (err = fut__call_later_nocapture(f->loop, timeout_ns, wf_timeout, w,
                                       &w->timer))) {
    fut_unref(&w->x.fut);
    return err;
  }
  if ((err = fut__comb_watch(&w->link, &w->x.fut, f, &w->inner, wf_inner_done,
                             &w->timer)))
    return err;
  if (f->state == FUT_PENDING && timeout_ns == 0) {
    w->timed_out = true;
    fut_cancel(f, NULL);
  }
  *out = &w->x.fut;
  return 0;
}
