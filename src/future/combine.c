/* Combinators over futures: gather, wait, wait_for, shield, as_completed,
 * then (asyncio's tasks.py functions, as callback-driven futures so that
 * plain callback code can use them as well as tasks).
 *
 * Each combinator is a future with behaviour of its own (struct fut__ext).
 * Every done callback it registers on a child holds a reference to it, so
 * it lives until its last child is done, whoever drops it first; it holds
 * a reference to each child it must read later.  Each is also linked in
 * its loop's list (struct fut__comb), so that closing the loop detaches
 * the ones still waiting instead of leaking them with their children. */
#include "future/internal.h"

#include <string.h>

static int check_futs(fut_loop_t *loop, fut_t *const *fs, size_t n,
                      const char *what) {
  if (n > 0 && !fs)
    return fut__error(-EINVAL, "%s: NULL array", what);
  for (size_t i = 0; i < n; i++) {
    if (!fs[i])
      return fut__error(-EINVAL, "%s: future %zu is NULL", what, i);
    if (fs[i]->loop != loop)
      return fut__error(FUT_E_OTHER_LOOP,
                        "%s: future %zu belongs to "
                        "another loop",
                        what, i);
  }
  return 0;
}

/* The loop part that keeps each loop's live combinators (a list head). */
static int comb_part;

static void close_all(fut_loop_t *loop, void *state);

__attribute__((constructor)) static void comb_part_init(void) {
  static const struct fut__loop_part part = {
      .name = "combinators", .rank = FUT__RANK_COMBINATORS, .close = close_all};
  comb_part = fut__loop_part_register(&part);
}

/* The loop's list of live combinators, created on first use; NULL when
 * out of memory. */
static struct fut__qnode *combs_of(fut_loop_t *loop) {
  struct fut__qnode *head = fut__loop_part(loop, comb_part);
  if (FUT__LIKELY(head))
    return head;
  if (!(head = fut__malloc(sizeof *head)))
    return NULL;
  fut__q_init(head);
  fut__loop_part_set(loop, comb_part, head);
  return head;
}

/* Allocates a combinator of `size` bytes whose future starts with refs 1. */
static void *new_ext(fut_loop_t *loop, size_t size, const struct fut__ops *ops,
                     const char *what, int *err) {
  if (!loop) {
    *err = fut__error(-EINVAL, "%s: NULL loop", what);
    return NULL;
  }
  /* Before the list: on a closed loop it would create a list that
   * nothing frees any more. */
  if ((*err = fut__check_usable(loop)))
    return NULL;
  struct fut__ext *x = combs_of(loop) ? fut__calloc(1, size) : NULL;
  if (!x) {
    *err = fut__error(-ENOMEM, "%s: out of memory", what);
    return NULL;
  }
  if ((*err = fut__ext_init(loop, x, ops))) {
    fut__free(x);
    return NULL;
  }
  return x;
}

/* Links a fully built combinator into its loop's list. */
static void track(struct fut__comb *c, fut_t *self, fut_done_cb cb,
                  fut_t **kids, size_t n, fut_handle_t **timer) {
  struct fut__qnode *head = fut__loop_part(self->loop, comb_part);
  FUT__ASSERT(head != NULL); /* the list was created by new_ext */
  c->self = self;
  c->kid_cb = cb;
  c->cb_arg = fut__container_of(self, struct fut__ext, fut);
  c->kids = kids;
  c->nkids = n;
  c->timer = timer;
  fut__q_insert_head(head, &c->node);
}

static void untrack(struct fut__comb *c) {
  fut__q_remove(&c->node);
}

/* Removes (cb, arg) registrations from f even once f is done: at close the
 * dispatch of a done child will be dropped unrun, and the references its
 * registrations hold must go with it.  fut_remove_done_callback refuses a
 * done future (as asyncio's does), hence the brief state flip; nothing can
 * run in between. */
static int strip(fut_t *f, fut_done_cb cb, void *arg) {
  uint8_t state = f->state;
  f->state = FUT_PENDING;
  int k = fut_remove_done_callback(f, cb, arg);
  f->state = state;
  return k;
}

/* At fut_loop_close, after the tasks finished (they rank higher): removes
 * every combinator's registrations and timer, releasing what they held. */
static void close_all(fut_loop_t *loop, void *state) {
  struct fut__qnode *head = state, *n;
  (void)loop;
  while ((n = fut__q_first(head))) {
    struct fut__comb *c = fut__q_data(n, struct fut__comb, node);
    fut_t *self = fut_ref(c->self);
    untrack(c);
    if (c->timer && *c->timer) {
      fut_handle_cancel(*c->timer);
      fut_handle_unref(*c->timer);
      *c->timer = NULL;
    }
    for (size_t i = 0; i < c->nkids; i++) {
      if (!c->kids[i])
        continue;
      int k = strip(c->kids[i], c->kid_cb, c->cb_arg);
      while (k-- > 0)
        fut_unref(self); /* never the last: we hold one */
    }
    /* Registrations made on a child whose dispatch was already queued sit
     * in the ready queue on their own, holding a reference too. */
    int k = fut__drop_late_callbacks(self->loop, c->kid_cb, c->cb_arg);
    while (k-- > 0)
      fut_unref(self);
    fut_unref(self);
  }
  fut__free(head);
}

/* Marks a child's exception retrieved: the combinator consumed it. */
static void consume(fut_t *f) {
  (void)fut_exception(f, NULL);
}

static const char *msg_of(fut_t *f) {
  const char *msg = NULL;
  (void)fut_exception(f, &msg);
  return msg;
}

/* Finishes dst as a failure or a cancellation copied from src. */
static void fail_like(fut_t *dst, fut_t *src) {
  const char *msg = msg_of(src);
  if (msg)
    fut_set_exception(dst, src->err, "%s", msg);
  else
    fut_set_exception(dst, src->err, NULL);
}

/* ---- gather -------------------------------------------------------------- */

struct gather {
  struct fut__ext x;
  struct fut__comb link; /* in the loop's list while alive */
  size_t n;              /* children */
  size_t ndone;          /* children whose callback ran */
  unsigned flags;        /* FUT_GATHER_* */
  bool cancel_requested; /* gather was cancelled and a child took it */
  fut_t *kids[];         /* references, argument order */
};

static void gather_destroy(fut_t *f) {
  struct gather *g = fut__container_of(f, struct gather, x.fut);
  untrack(&g->link);
  for (size_t i = 0; i < g->n; i++)
    fut_unref(g->kids[i]);
  fut__free(g);
}

static bool gather_cancel(fut_t *f, const char *msg) {
  struct gather *g = fut__container_of(f, struct gather, x.fut);
  bool ret = false;
  for (size_t i = 0; i < g->n; i++)
    if (fut_cancel(g->kids[i], msg))
      ret = true;
  /* Children may ignore the cancel: the request still ends the gather
   * cancelled, whatever return_exceptions says (asyncio bpo-32684). */
  if (ret)
    g->cancel_requested = true;
  return ret;
}

static const struct fut__ops gather_ops = {
    .type_name = "gather", .cancel = gather_cancel, .destroy = gather_destroy};

static void gather_child_done(fut_t *kid, void *arg) {
  struct gather *g = arg;
  fut_t *outer = &g->x.fut;
  g->ndone++;
  if (outer->state != FUT_PENDING) {
    if (kid->state != FUT_CANCELLED)
      consume(kid);
  } else if (g->cancel_requested && kid->state == FUT_CANCELLED &&
             !(g->flags & FUT_GATHER_RETURN_EXCEPTIONS)) {
    fut__cancel_base(outer, msg_of(kid));
  } else if (!(g->flags & FUT_GATHER_RETURN_EXCEPTIONS) && kid->err != 0) {
    /* The first failure (a cancelled child counts) fails the gather; the
     * other children go on. */
    fail_like(outer, kid);
  } else if (g->ndone == g->n) {
    /* asyncio raises the last child's (argument order) cancellation. */
    fut_t *last = g->kids[g->n - 1];
    if (g->cancel_requested)
      fut__cancel_base(outer,
                       last->state == FUT_CANCELLED ? msg_of(last) : NULL);
    else
      fut_set_result(outer, NULL, NULL);
  }
  fut_unref(outer);
}

int fut_gather(fut_loop_t *loop, fut_t *const *fs, size_t n, unsigned flags,
               fut_t **out) {
  if (!out)
    return fut__error(-EINVAL, "fut_gather: NULL out");
  *out = NULL;
  int err = loop ? check_futs(loop, fs, n, "fut_gather")
                 : fut__error(-EINVAL, "fut_gather: NULL loop");
  if (err)
    return err;
  if (n > (SIZE_MAX - sizeof(struct gather)) / sizeof(fut_t *))
    return fut__error(-ENOMEM, "fut_gather: too many futures");
  struct gather *g = new_ext(loop, sizeof *g + n * sizeof(fut_t *), &gather_ops,
                             "fut_gather", &err);
  if (!g)
    return err;
  g->flags = flags;
  for (size_t i = 0; i < n; i++) {
    if ((err = fut_add_done_callback(fs[i], gather_child_done, g))) {
      /* Unwind: nothing of this call may run later.  Each removed
       * registration held a reference to g (a child listed twice has
       * two).  Those on done children are already queued and cannot be
       * taken back: with n 0 and outcomes kept, they only count. */
      for (size_t j = 0; j < i; j++) {
        int k = fut_remove_done_callback(fs[j], gather_child_done, g);
        while (k-- > 0)
          fut_unref(&g->x.fut);
      }
      for (size_t j = 0; j < g->n; j++)
        fut_unref(g->kids[j]);
      g->n = 0;
      g->flags = FUT_GATHER_RETURN_EXCEPTIONS;
      fut_unref(&g->x.fut);
      return err;
    }
    g->kids[g->n++] = fut_ref(fs[i]);
    g->x.fut.refs++;
  }
  /* Registrations on done children are already scheduled: removal cannot
   * undo them, so no failure may happen past the loop above. */
  if (n == 0)
    fut_set_result(&g->x.fut, NULL, NULL);
  track(&g->link, &g->x.fut, gather_child_done, g->kids, g->n, NULL);
  *out = &g->x.fut;
  return 0;
}

fut_t *fut_gather_child(const fut_t *f, size_t i) {
  if (!f || fut__ops_of(f) != &gather_ops)
    return NULL;
  const struct gather *g = fut__container_of(f, struct gather, x.fut);
  return i < g->n ? g->kids[i] : NULL;
}

size_t fut_gather_count(const fut_t *f) {
  if (!f || fut__ops_of(f) != &gather_ops)
    return 0;
  return fut__container_of(f, struct gather, x.fut)->n;
}

/* ---- wait ---------------------------------------------------------------- */

struct waitf {
  struct fut__ext x;
  struct fut__comb link; /* in the loop's list while alive */
  fut_wait_when_t when;  /* the condition */
  size_t n;              /* children */
  size_t left;           /* children whose callback has not run */
  fut_handle_t *timer;   /* the timeout, NULL if none or done */
  fut_t *kids[];         /* references */
};

static void wait_stop_timer(struct waitf *w) {
  if (w->timer) {
    fut_handle_cancel(w->timer);
    fut_handle_unref(w->timer);
    w->timer = NULL;
  }
}

static void wait_destroy(fut_t *f) {
  struct waitf *w = fut__container_of(f, struct waitf, x.fut);
  untrack(&w->link);
  wait_stop_timer(w);
  for (size_t i = 0; i < w->n; i++)
    fut_unref(w->kids[i]);
  fut__free(w);
}

static void wait_child_done(fut_t *kid, void *arg);

/* The condition holds, the timeout ran out, or the wait was cancelled:
 * stop listening (asyncio's finally clause). */
static void wait_unregister(struct waitf *w) {
  wait_stop_timer(w);
  for (size_t i = 0; i < w->n; i++) {
    int k = fut_remove_done_callback(w->kids[i], wait_child_done, w);
    w->left -= (size_t)k;
    /* Each removed registration held a reference to w; the caller holds
     * another, so these never free w. */
    for (int j = 0; j < k; j++)
      fut_unref(&w->x.fut);
  }
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
      (w->left == 0 || w->when == FUT_FIRST_COMPLETED ||
       (w->when == FUT_FIRST_EXCEPTION && kid->state == FUT_FINISHED &&
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
  if (!out)
    return fut__error(-EINVAL, "fut_wait: NULL out");
  *out = NULL;
  if (!loop)
    return fut__error(-EINVAL, "fut_wait: NULL loop");
  if (n == 0)
    return fut__error(-EINVAL, "fut_wait: the set of futures is empty");
  if (when != FUT_FIRST_COMPLETED && when != FUT_FIRST_EXCEPTION &&
      when != FUT_ALL_COMPLETED)
    return fut__error(-EINVAL, "fut_wait: invalid `when` %d", (int)when);
  int err = check_futs(loop, fs, n, "fut_wait");
  if (err)
    return err;
  if (n > (SIZE_MAX - sizeof(struct waitf)) / sizeof(fut_t *))
    return fut__error(-ENOMEM, "fut_wait: too many futures");
  struct waitf *w = new_ext(loop, sizeof *w + n * sizeof(fut_t *), &wait_ops,
                            "fut_wait", &err);
  if (!w)
    return err;
  w->when = when;
  if (timeout_ns != UINT64_MAX &&
      (err =
           fut_loop_call_later(loop, timeout_ns, wait_timeout, w, &w->timer))) {
    fut_unref(&w->x.fut);
    return err;
  }
  for (size_t i = 0; i < n; i++)
    w->kids[w->n++] = fut_ref(fs[i]);
  for (size_t i = 0; i < n; i++) {
    if ((err = fut_add_done_callback(fs[i], wait_child_done, w))) {
      for (size_t j = 0; j < i; j++) {
        /* One reference per removed registration (a child listed twice
         * has two). */
        int k = fut_remove_done_callback(fs[j], wait_child_done, w);
        while (k-- > 0)
          fut_unref(&w->x.fut);
      }
      fut_unref(&w->x.fut);
      return err;
    }
    w->left++;
    w->x.fut.refs++;
  }
  track(&w->link, &w->x.fut, wait_child_done, w->kids, w->n, &w->timer);
  *out = &w->x.fut;
  return 0;
}

int fut_wait_sets(const fut_t *f, fut_t **done, size_t *ndone, fut_t **pending,
                  size_t *npending) {
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

static void wf_stop_timer(struct wait_for *w) {
  if (w->timer) {
    fut_handle_cancel(w->timer);
    fut_handle_unref(w->timer);
    w->timer = NULL;
  }
}

static void wf_destroy(fut_t *f) {
  struct wait_for *w = fut__container_of(f, struct wait_for, x.fut);
  untrack(&w->link);
  wf_stop_timer(w);
  fut_unref(w->inner);
  fut__free(w);
}

static bool wf_cancel(fut_t *f, const char *msg) {
  struct wait_for *w = fut__container_of(f, struct wait_for, x.fut);
  wf_stop_timer(w);
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
  wf_stop_timer(w);
  if (outer->state != FUT_PENDING) {
    if (inner->state != FUT_CANCELLED)
      consume(inner);
  } else if (inner->state == FUT_CANCELLED) {
    if (w->outer_cancel || !w->timed_out)
      fut__cancel_base(outer, msg_of(inner)); /* never swallowed */
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
  if (!out)
    return fut__error(-EINVAL, "fut_wait_for: NULL out");
  *out = NULL;
  if (!f)
    return fut__error(-EINVAL, "fut_wait_for: NULL future");
  int err;
  struct wait_for *w =
      new_ext(f->loop, sizeof *w, &wait_for_ops, "fut_wait_for", &err);
  if (!w)
    return err;
  w->inner = fut_ref(f);
  if (f->state == FUT_PENDING && timeout_ns != 0 && timeout_ns != UINT64_MAX &&
      (err = fut_loop_call_later(f->loop, timeout_ns, wf_timeout, w,
                                 &w->timer))) {
    fut_unref(&w->x.fut);
    return err;
  }
  if ((err = fut_add_done_callback(f, wf_inner_done, w))) {
    fut_unref(&w->x.fut);
    return err;
  }
  w->x.fut.refs++;
  track(&w->link, &w->x.fut, wf_inner_done, &w->inner, 1, &w->timer);
  if (f->state == FUT_PENDING && timeout_ns == 0) {
    w->timed_out = true;
    fut_cancel(f, NULL);
  }
  *out = &w->x.fut;
  return 0;
}

/* ---- shield -------------------------------------------------------------- */

struct shield {
  struct fut__ext x;
  struct fut__comb link; /* in the loop's list while alive */
  fut_t *inner;          /* reference until inner is done, then NULL */
};

static void shield_destroy(fut_t *f) {
  struct shield *sh = fut__container_of(f, struct shield, x.fut);
  untrack(&sh->link);
  fut_unref(sh->inner);
  fut__free(sh);
}

/* No cancel override: cancelling the outer future leaves inner alone. */
static const struct fut__ops shield_ops = {.type_name = "shield",
                                           .destroy = shield_destroy};

static void shield_inner_done(fut_t *inner, void *arg) {
  struct shield *sh = arg;
  fut_t *outer = &sh->x.fut;
  if (outer->state == FUT_PENDING)
    fut_copy_state(outer, inner);
  else if (inner->state != FUT_CANCELLED)
    consume(inner);
  sh->inner = NULL;
  fut_unref(inner); /* the reference that kept inner alive */
  fut_unref(outer);
}

int fut_shield(fut_t *f, fut_t **out) {
  if (!out)
    return fut__error(-EINVAL, "fut_shield: NULL out");
  *out = NULL;
  if (!f)
    return fut__error(-EINVAL, "fut_shield: NULL future");
  if (f->state != FUT_PENDING) {
    *out = fut_ref(f); /* asyncio returns the done inner itself */
    return 0;
  }
  int err;
  struct shield *sh =
      new_ext(f->loop, sizeof *sh, &shield_ops, "fut_shield", &err);
  if (!sh)
    return err;
  if ((err = fut_add_done_callback(f, shield_inner_done, sh))) {
    fut_unref(&sh->x.fut);
    return err;
  }
  sh->x.fut.refs++;
  sh->inner = fut_ref(f);
  track(&sh->link, &sh->x.fut, shield_inner_done, &sh->inner, 1, NULL);
  *out = &sh->x.fut;
  return 0;
}

/* ---- as_completed -------------------------------------------------------- */

struct as_completed {
  struct fut__ext x;
  struct fut__comb link; /* in the loop's list while alive */
  size_t n;              /* children */
  size_t nready;         /* children done so far, in ready[0, nready) */
  size_t given;          /* ready children handed to next futures */
  size_t nnext;          /* next futures created, in next[0, nnext) */
  size_t nserved;        /* next[0, nserved) are resolved or failed */
  fut_handle_t *timer;   /* pending timeout, or NULL */
  bool timed_out;
  fut_t **ready; /* references, completion order (n slots) */
  fut_t **next;  /* references to the next futures (n slots) */
  fut_t *kids[]; /* references */
};

static void ac_stop_timer(struct as_completed *a) {
  if (a->timer) {
    fut_handle_cancel(a->timer);
    fut_handle_unref(a->timer);
    a->timer = NULL;
  }
}

static void ac_destroy(fut_t *f) {
  struct as_completed *a = fut__container_of(f, struct as_completed, x.fut);
  untrack(&a->link);
  ac_stop_timer(a);
  for (size_t i = 0; i < a->n; i++)
    fut_unref(a->kids[i]);
  for (size_t i = 0; i < a->nready; i++)
    fut_unref(a->ready[i]);
  for (size_t i = a->nserved; i < a->nnext; i++)
    fut_unref(a->next[i]);
  fut__free(a->ready);
  fut__free(a->next);
  fut__free(a);
}

static void unref_ptr(void *p) {
  fut_unref(p);
}

/* Hands ready children to waiting next futures, in order. */
static void ac_serve(struct as_completed *a) {
  while (a->nserved < a->nnext && a->given < a->nready) {
    fut_t *nx = a->next[a->nserved++];
    if (nx->state == FUT_PENDING) {
      fut_t *kid = a->ready[a->given++];
      if (fut_set_result(nx, fut_ref(kid), unref_ptr) != 0)
        fut_unref(kid);
    }
    fut_unref(nx);
  }
  if (a->timed_out) {
    while (a->nserved < a->nnext) {
      fut_t *nx = a->next[a->nserved++];
      if (nx->state == FUT_PENDING)
        fut_set_exception(nx, -ETIMEDOUT, "as_completed: timed out");
      fut_unref(nx);
    }
  }
}

static bool ac_cancel(fut_t *f, const char *msg) {
  struct as_completed *a = fut__container_of(f, struct as_completed, x.fut);
  ac_stop_timer(a);
  while (a->nserved < a->nnext) {
    fut_t *nx = a->next[a->nserved++];
    fut_cancel(nx, msg);
    fut_unref(nx);
  }
  return fut__cancel_base(f, msg);
}

static const struct fut__ops as_completed_ops = {
    .type_name = "as_completed", .cancel = ac_cancel, .destroy = ac_destroy};

static void ac_child_done(fut_t *kid, void *arg) {
  struct as_completed *a = arg;
  if (a->timed_out) {
    /* asyncio stops listening at the timeout: the next futures still to
     * come fail with -ETIMEDOUT, whatever finishes later. */
    (void)kid;
    fut_unref(&a->x.fut);
    return;
  }
  a->ready[a->nready++] = fut_ref(kid);
  ac_serve(a);
  if (a->nready == a->n && a->x.fut.state == FUT_PENDING) {
    ac_stop_timer(a);
    fut_set_result(&a->x.fut, NULL, NULL);
  }
  fut_unref(&a->x.fut);
}

static void ac_timeout(void *arg) {
  struct as_completed *a = arg;
  fut_handle_unref(a->timer);
  a->timer = NULL;
  if (a->x.fut.state != FUT_PENDING)
    return;
  a->timed_out = true;
  ac_serve(a);
  fut_set_exception(&a->x.fut, -ETIMEDOUT, "as_completed: timed out");
  consume(&a->x.fut); /* reported through the next futures */
}

int fut_as_completed(fut_loop_t *loop, fut_t *const *fs, size_t n,
                     uint64_t timeout_ns, fut_t **out) {
  if (!out)
    return fut__error(-EINVAL, "fut_as_completed: NULL out");
  *out = NULL;
  int err = loop ? check_futs(loop, fs, n, "fut_as_completed")
                 : fut__error(-EINVAL, "fut_as_completed: NULL loop");
  if (err)
    return err;
  if (n > (SIZE_MAX - sizeof(struct as_completed)) / sizeof(fut_t *))
    return fut__error(-ENOMEM, "fut_as_completed: too many futures");
  struct as_completed *a = new_ext(loop, sizeof *a + n * sizeof(fut_t *),
                                   &as_completed_ops, "fut_as_completed", &err);
  if (!a)
    return err;
  a->ready = fut__calloc(n ? n : 1, sizeof(fut_t *));
  a->next = fut__calloc(n ? n : 1, sizeof(fut_t *));
  if (!a->ready || !a->next) {
    fut_unref(&a->x.fut);
    return fut__error(-ENOMEM, "fut_as_completed: out of memory");
  }
  if (n > 0 && timeout_ns != UINT64_MAX &&
      (err = fut_loop_call_later(loop, timeout_ns, ac_timeout, a, &a->timer))) {
    fut_unref(&a->x.fut);
    return err;
  }
  for (size_t i = 0; i < n; i++) {
    if ((err = fut_add_done_callback(fs[i], ac_child_done, a))) {
      for (size_t j = 0; j < i; j++) {
        /* One reference per removed registration (a child listed twice
         * has two). */
        int k = fut_remove_done_callback(fs[j], ac_child_done, a);
        while (k-- > 0)
          fut_unref(&a->x.fut);
      }
      ac_stop_timer(a);
      fut_unref(&a->x.fut);
      return err;
    }
    a->kids[a->n++] = fut_ref(fs[i]);
    a->x.fut.refs++;
  }
  if (n == 0)
    fut_set_result(&a->x.fut, NULL, NULL);
  track(&a->link, &a->x.fut, ac_child_done, a->kids, a->n, &a->timer);
  *out = &a->x.fut;
  return 0;
}

int fut_as_completed_next(fut_t *f, fut_t **out) {
  if (!out)
    return fut__error(-EINVAL, "fut_as_completed_next: NULL out");
  *out = NULL;
  if (!f || fut__ops_of(f) != &as_completed_ops)
    return fut__error(-EINVAL, "fut_as_completed_next: not an "
                               "as_completed future");
  struct as_completed *a = fut__container_of(f, struct as_completed, x.fut);
  if (a->nnext == a->n)
    return fut__error(-ENOENT,
                      "fut_as_completed_next: all %zu "
                      "futures were handed out",
                      a->n);
  fut_t *nx;
  int err = fut_new(f->loop, &nx);
  if (err)
    return err;
  a->next[a->nnext++] = fut_ref(nx);
  ac_serve(a);
  if (f->state == FUT_CANCELLED && nx->state == FUT_PENDING)
    fut_cancel(nx, NULL);
  *out = nx;
  return 0;
}

/* ---- then ---------------------------------------------------------------- */

struct then {
  struct fut__ext x;
  struct fut__comb link; /* in the loop's list while alive */
  fut_t *src;            /* reference until fn ran */
  fut_then_fn fn;        /* NULL: copy src's outcome */
  void *arg;             /* borrowed */
};

static void then_destroy(fut_t *f) {
  struct then *t = fut__container_of(f, struct then, x.fut);
  untrack(&t->link);
  fut_unref(t->src);
  fut__free(t);
}

static bool then_cancel(fut_t *f, const char *msg) {
  struct then *t = fut__container_of(f, struct then, x.fut);
  bool r = fut__cancel_base(f, msg);
  if (t->src)
    fut_cancel(t->src, msg);
  return r;
}

static const struct fut__ops then_ops = {
    .type_name = "then", .cancel = then_cancel, .destroy = then_destroy};

static void then_src_done(fut_t *src, void *arg) {
  struct then *t = arg;
  fut_t *dst = &t->x.fut;
  if (t->fn) {
    int rc = t->fn(src, dst, t->arg);
    if (rc < 0 && dst->state == FUT_PENDING)
      fut_set_exception(dst, rc, NULL);
  } else if (dst->state == FUT_PENDING) {
    fut_copy_state(dst, src);
  } else if (src->state != FUT_CANCELLED) {
    consume(src);
  }
  fut_unref(t->src);
  t->src = NULL;
  fut_unref(dst);
}

int fut_then(fut_t *src, fut_then_fn fn, void *arg, fut_t **out) {
  if (!out)
    return fut__error(-EINVAL, "fut_then: NULL out");
  *out = NULL;
  if (!src)
    return fut__error(-EINVAL, "fut_then: NULL future");
  int err;
  struct then *t = new_ext(src->loop, sizeof *t, &then_ops, "fut_then", &err);
  if (!t)
    return err;
  t->fn = fn;
  t->arg = arg;
  if ((err = fut_add_done_callback(src, then_src_done, t))) {
    fut_unref(&t->x.fut);
    return err;
  }
  t->src = fut_ref(src);
  t->x.fut.refs++;
  track(&t->link, &t->x.fut, then_src_done, &t->src, 1, NULL);
  *out = &t->x.fut;
  return 0;
}
