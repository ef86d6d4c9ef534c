/* asyncio.as_completed as an iterator future: each next future finishes
 * with the next child to complete, in completion order, or -ETIMEDOUT
 * after the timeout.  See combine.c for what every combinator shares.
 *
 * Which next future a completed child goes to: asyncio's next objects are
 * coroutines that take the next completed child when they are awaited, so
 * awaiting the second one first gets the first child to complete.  A C
 * future cannot tell when it starts being awaited, but it can be seen to
 * be awaited: a child is handed to the oldest pending next future that has
 * a registration (a task awaiting it, a done callback), and only when none
 * has one to the oldest pending next future (so next futures that are
 * only polled fill in the order they were made). */
#include "future/internal.h"

struct as_completed {
  struct fut__ext x;
  struct fut__comb link; /* in the loop's list while alive */
  size_t n;              /* children */
  size_t nready;         /* children done so far, in ready[0, nready) */
  size_t given;          /* ready children handed to next futures */
  size_t nnext;          /* next futures created, in next[0, nnext) */
  size_t nserved;        /* next[0, nserved) are served (NULL); later
                            ones served out of order are NULL too */
  fut_handle_t *timer;   /* pending timeout, or NULL */
  bool timed_out;
  fut_t **ready; /* references, completion order (n slots) */
  fut_t **next;  /* references to the next futures (n slots) */
  fut_t *kids[]; /* references */
};

static void ac_destroy(fut_t *f) {
  struct as_completed *a = fut__container_of(f, struct as_completed, x.fut);
  fut__comb_untrack(&a->link);
  fut__handle_clear(&a->timer);
  for (size_t i = 0; i < a->n; i++)
    fut_unref(a->kids[i]);
  for (size_t i = 0; i < a->nready; i++)
    fut_unref(a->ready[i]);
  for (size_t i = a->nserved; i < a->nnext; i++)
    if (a->next[i])
      fut_unref(a->next[i]);
  fut__free(a->ready);
  fut__free(a->next);
  fut__free(a);
}

static void unref_ptr(void *p) {
  fut_unref(p);
}

/* Drops next[i] (served, cancelled or failed). */
static void ac_release(struct as_completed *a, size_t i) {
  fut_unref(a->next[i]);
  a->next[i] = NULL;
  while (a->nserved < a->nnext && !a->next[a->nserved])
    a->nserved++;
}

/* Whether someone waits on f: a task awaiting it, a done callback. */
static bool has_waiter(const fut_t *f) {
  return (f->flags & FUT__F_CB0) || (f->more && f->more->len);
}

/* The next future the next ready child goes to (see the top of the file),
 * or SIZE_MAX when none is pending.  Next futures no longer pending (the
 * user cancelled them) are dropped on the way and get no child. */
static size_t ac_pick(struct as_completed *a) {
  size_t oldest = SIZE_MAX;
  for (size_t i = a->nserved; i < a->nnext; i++) {
    fut_t *nx = a->next[i];
    if (!nx)
      continue;
    if (nx->state != FUT_PENDING) {
      ac_release(a, i);
      continue;
    }
    if (has_waiter(nx))
      return i;
    if (oldest == SIZE_MAX)
      oldest = i;
  }
  return oldest;
}

/* Hands ready children to next futures, awaited ones first. */
static void ac_serve(struct as_completed *a) {
  while (a->given < a->nready) {
    size_t i = ac_pick(a);
    if (i == SIZE_MAX)
      break;
    fut_t *kid = a->ready[a->given++];
    if (fut_set_result(a->next[i], fut_ref(kid), unref_ptr) != 0)
      fut_unref(kid);
    ac_release(a, i);
  }
  if (a->timed_out) {
    for (size_t i = a->nserved; i < a->nnext; i++) {
      if (!a->next[i])
        continue;
      if (a->next[i]->state == FUT_PENDING)
        fut_set_exception(a->next[i], -ETIMEDOUT, "as_completed: timed out");
      ac_release(a, i);
    }
  }
}

static bool ac_cancel(fut_t *f, const char *msg) {
  struct as_completed *a = fut__container_of(f, struct as_completed, x.fut);
  fut__handle_clear(&a->timer);
  for (size_t i = a->nserved; i < a->nnext; i++) {
    if (!a->next[i])
      continue;
    fut_cancel(a->next[i], msg);
    ac_release(a, i);
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
    fut__handle_clear(&a->timer);
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
  fut__comb_consume(&a->x.fut); /* reported through the next futures */
}

int fut_as_completed(fut_loop_t *loop, fut_t *const *fs, size_t n,
                     uint64_t timeout_ns, fut_t **out) {
  int err = fut__comb_check_args(loop, fs, n, out, "fut_as_completed");
  if (err)
    return err;
  struct as_completed *a = fut__comb_new(loop, sizeof *a, n, &as_completed_ops,
                                         "fut_as_completed", &err);
  if (!a)
    return err;
  a->ready = fut__calloc(n ? n : 1, sizeof(fut_t *));
  a->next = fut__calloc(n ? n : 1, sizeof(fut_t *));
  if (!a->ready || !a->next) {
    fut_unref(&a->x.fut);
    return fut__error(-ENOMEM, "fut_as_completed: out of memory");
  }
  /* asyncio takes a set: a future listed several times is yielded once.
   * The kids hold no references until a->n counts them. */
  size_t m;
  if ((err = fut__comb_distinct(fs, n, a->kids, &m, "fut_as_completed")) ||
      (n > 0 && timeout_ns != UINT64_MAX &&
       (err = fut__call_later_nocapture(loop, timeout_ns, ac_timeout, a,
                                        &a->timer)))) {
    fut_unref(&a->x.fut);
    return err;
  }
  for (; a->n < m; a->n++)
    fut_ref(a->kids[a->n]);
  if ((err = fut__comb_register(a->kids, m, ac_child_done, a, &a->x.fut))) {
    fut__handle_clear(&a->timer);
    fut_unref(&a->x.fut);
    return err;
  }
  if (n == 0)
    fut_set_result(&a->x.fut, NULL, NULL);
  fut__comb_track(&a->link, &a->x.fut, ac_child_done, a->kids, a->n, &a->timer);
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
