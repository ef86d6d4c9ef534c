/* asyncio.shield: a future with another's outcome whose cancellation
 * leaves that other alone.  See combine.c for what every combinator
 * shares. */
#include "future/internal.h"

struct shield {
  struct fut__ext x;
  struct fut__comb link; /* in the loop's list while alive */
  fut_t *inner;          /* reference until inner is done, then NULL */
};

static void shield_destroy(fut_t *f) {
  struct shield *sh = fut__container_of(f, struct shield, x.fut);
  fut__comb_untrack(&sh->link);
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
    fut__comb_consume(inner);
  sh->inner = NULL;
  fut_unref(inner); /* the reference that kept inner alive */
  fut_unref(outer);
}

int fut_shield(fut_t *f, fut_t **out) {
  int err = fut__comb_check_arg(f, out, "fut_shield");
  if (err)
    return err;
  if (f->state != FUT_PENDING) {
    *out = fut_ref(f); /* asyncio returns the done inner itself */
    return 0;
  }
  struct shield *sh =
      fut__comb_new(f->loop, sizeof *sh, 0, &shield_ops, "fut_shield", &err);
  if (!sh)
    return err;
  if ((err = fut__comb_watch(&sh->link, &sh->x.fut, f, &sh->inner,
                             shield_inner_done, NULL)))
    return err;
  *out = &sh->x.fut;
  return 0;
}
