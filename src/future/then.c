/* Promise-style chaining: a future resolved by a function of another
 * future once that one is done.  See combine.c for what every combinator
 * shares. */
#include "future/internal.h"

struct then {
  struct fut__ext x;
  struct fut__comb link; /* in the loop's list while alive */
  fut_t *src;            /* reference until fn ran */
  fut_then_cb fn;        /* NULL: copy src's outcome */
  void *arg;             /* borrowed */
};

static void then_destroy(fut_t *f) {
  struct then *t = fut__container_of(f, struct then, x.fut);
  fut__comb_untrack(&t->link);
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
    fut__comb_consume(src);
  }
  fut_unref(t->src);
  t->src = NULL;
  fut_unref(dst);
}

int fut_then(fut_t *src, fut_then_cb fn, void *arg, fut_t **out) {
  int err = fut__comb_check_arg(src, out, "fut_then");
  if (err)
    return err;
  struct then *t =
      fut__comb_new(src->loop, sizeof *t, 0, &then_ops, "fut_then", &err);
  if (!t)
    return err;
  t->fn = fn;
  t->arg = arg;
  if ((err = fut__comb_watch(&t->link, &t->x.fut, src, &t->src, then_src_done,
                             NULL)))
    return err;
  *out = &t->x.fut;
  return 0;
}
