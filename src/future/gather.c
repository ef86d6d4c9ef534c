/* asyncio.gather as a callback-driven future: done when every child is
 * done, or at the first failure; cancelling it cancels the children.  See
 * combine.c for what every combinator shares. */
#include "future/internal.h"

struct gather {
  struct fut__ext x;
  struct fut__comb link;  /* in the loop's list while alive */
  size_t n;               /* children */
  size_t ndone;           /* children whose callback ran */
  unsigned flags;         /* FUT_GATHER_* */
  bool cancel_requested;  /* gather was cancelled and a child took it */
  bool wave_answer;       /* what gather_cancel returned in that wave */
  uint64_t asked_in_wave; /* cancellation wave that last asked it */
  fut_t *kids[];          /* references, argument order */
};

/* One synchronous cancellation (a fut_cancel of a gather and everything it
 * cancels in turn) is a wave; id numbers them per thread. */
static _Thread_local struct {
  uint64_t id;    /* the current or last wave */
  unsigned depth; /* gather_cancel calls in progress */
} cancel_wave;

/* Finishes dst as a failure or a cancellation copied from src. */
static void fail_like(fut_t *dst, fut_t *src) {
  const char *msg = fut__comb_msg(src);
  if (msg)
    fut_set_exception(dst, src->err, "%s", msg);
  else
    fut_set_exception(dst, src->err, NULL);
}

static void gather_destroy(fut_t *f) {
  struct gather *g = fut__container_of(f, struct gather, x.fut);
  fut__comb_untrack(&g->link);
  for (size_t i = 0; i < g->n; i++)
    fut_unref(g->kids[i]);
  fut__free(g);
}

static bool gather_cancel(fut_t *f, const char *msg) {
  struct gather *g = fut__container_of(f, struct gather, x.fut);
  /* A gather reached twice by one cancellation (a child listed twice, or
   * nested gathers sharing a child) answers from the first time: its
   * children were asked already, and asking again doubled the work at each
   * level of nesting.  Asked again, the answer would be the same (the
   * first time already cancelled what would accept), so nothing asyncio
   * returns changes. */
  if (cancel_wave.depth > 0 && g->asked_in_wave == cancel_wave.id)
    return g->wave_answer;
  if (cancel_wave.depth++ == 0)
    cancel_wave.id++;
  bool ret = false;
  for (size_t i = 0; i < g->n; i++)
    if (fut_cancel(g->kids[i], msg))
      ret = true;
  cancel_wave.depth--;
  g->asked_in_wave = cancel_wave.id;
  g->wave_answer = ret;
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
      fut__comb_consume(kid);
  } else if (g->cancel_requested && kid->state == FUT_CANCELLED &&
             !(g->flags & FUT_GATHER_RETURN_EXCEPTIONS)) {
    fut__cancel_base(outer, fut__comb_msg(kid));
  } else if (!(g->flags & FUT_GATHER_RETURN_EXCEPTIONS) && kid->err != 0) {
    /* The first failure (a cancelled child counts) fails the gather; the
     * other children go on. */
    fail_like(outer, kid);
  } else if (g->ndone == g->n) {
    /* asyncio raises the last child's (argument order) cancellation. */
    fut_t *last = g->kids[g->n - 1];
    if (g->cancel_requested)
      fut__cancel_base(outer, last->state == FUT_CANCELLED ? fut__comb_msg(last)
                                                           : NULL);
    else
      fut_set_result(outer, NULL, NULL);
  }
  fut_unref(outer);
}

int fut_gather(fut_loop_t *loop, fut_t *const *fs, size_t n, unsigned flags,
               fut_t **out) {
  int err = fut__comb_check_args(loop, fs, n, out, "fut_gather");
  if (err)
    return err;
  if (flags & ~(unsigned)FUT_GATHER_RETURN_EXCEPTIONS)
    return fut__error(-EINVAL, "fut_gather: unknown flags 0x%x",
                      flags & ~(unsigned)FUT_GATHER_RETURN_EXCEPTIONS);
  struct gather *g =
      fut__comb_new(loop, sizeof *g, n, &gather_ops, "fut_gather", &err);
  if (!g)
    return err;
  g->flags = flags;
  for (size_t i = 0; i < n; i++)
    g->kids[g->n++] = fut_ref(fs[i]);
  if ((err = fut__comb_register(fs, n, gather_child_done, g, &g->x.fut))) {
    /* Unwind: nothing of this call may run later.  Registrations on done
     * children are already queued and cannot be taken back: with n 0 and
     * outcomes kept, they only count. */
    for (size_t j = 0; j < g->n; j++)
      fut_unref(g->kids[j]);
    g->n = 0;
    g->flags = FUT_GATHER_RETURN_EXCEPTIONS;
    fut_unref(&g->x.fut);
    return err;
  }
  /* Registrations on done children are already scheduled: removal cannot
   * undo them, so no failure may happen past the loop above. */
  if (n == 0)
    fut_set_result(&g->x.fut, NULL, NULL);
  fut__comb_track(&g->link, &g->x.fut, gather_child_done, g->kids, g->n, NULL);
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
