/* What the combinators share (gather.c, wait.c, as_completed.c, shield.c,
 * then.c: asyncio's tasks.py functions, as callback-driven futures so that
 * plain callback code can use them as well as tasks).
 *
 * Each combinator is a future with behaviour of its own (struct fut__ext).
 * Every done callback it registers on a child holds a reference to it, so
 * it lives until its last child is done, whoever drops it first; it holds
 * a reference to each child it must read later.  Each is also linked in
 * its loop's list (struct fut__comb), so that closing the loop detaches
 * the ones still waiting instead of leaking them with their children. */
#include "future/internal.h"

int fut__comb_check_futs(fut_loop_t *loop, fut_t *const *fs, size_t n,
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

int fut__comb_check_args(fut_loop_t *loop, fut_t *const *fs, size_t n,
                         fut_t **out, const char *what) {
  if (!out)
    return fut__error(-EINVAL, "%s: NULL out", what);
  *out = NULL;
  if (!loop)
    return fut__error(-EINVAL, "%s: NULL loop", what);
  return fut__comb_check_futs(loop, fs, n, what);
}

int fut__comb_check_arg(fut_t *f, fut_t **out, const char *what) {
  if (!out)
    return fut__error(-EINVAL, "%s: NULL out", what);
  *out = NULL;
  if (!f)
    return fut__error(-EINVAL, "%s: NULL future", what);
  return 0;
}

int fut__comb_distinct(fut_t *const *fs, size_t n, fut_t **dst, size_t *m,
                       const char *what) {
  struct fut__ptrset seen;
  if (fut__ptrset_init(&seen, n))
    return fut__error(-ENOMEM, "%s: out of memory", what);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (fut__ptrset_add(&seen, fs[i]))
      dst[k++] = fs[i];
  fut__ptrset_free(&seen);
  *m = k;
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

void *fut__comb_new(fut_loop_t *loop, size_t size, size_t nkids,
                    const struct fut__ops *ops, const char *what, int *err) {
  if (nkids > (SIZE_MAX - size) / sizeof(fut_t *)) {
    *err = fut__error(-ENOMEM, "%s: too many futures", what);
    return NULL;
  }
  if (!loop) {
    *err = fut__error(-EINVAL, "%s: NULL loop", what);
    return NULL;
  }
  /* Before the list: on a closed loop it would create a list that
   * nothing frees any more. */
  if ((*err = fut__check_usable(loop)))
    return NULL;
  struct fut__ext *x =
      combs_of(loop) ? fut__calloc(1, size + nkids * sizeof(fut_t *)) : NULL;
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

void fut__comb_track(struct fut__comb *c, fut_t *self, fut_done_cb cb,
                     fut_t **kids, size_t n, fut_handle_t **timer) {
  struct fut__qnode *head = fut__loop_part(self->loop, comb_part);
  FUT__ASSERT(head != NULL); /* the list was created by fut__comb_new */
  c->self = self;
  c->kid_cb = cb;
  c->cb_arg = fut__container_of(self, struct fut__ext, fut);
  c->kids = kids;
  c->nkids = n;
  c->timer = timer;
  fut__q_insert_head(head, &c->node);
}

int fut__comb_register(fut_t *const *fs, size_t n, fut_done_cb cb, void *arg,
                       fut_t *self) {
  for (size_t i = 0; i < n; i++) {
    int err = fut__add_done_callback(fs[i], cb, arg);
    if (err) {
      fut__comb_unregister(fs, i, cb, arg, self);
      return err;
    }
    self->refs++;
  }
  return 0;
}

int fut__comb_watch(struct fut__comb *c, fut_t *self, fut_t *f, fut_t **slot,
                    fut_done_cb cb, fut_handle_t **timer) {
  *slot = fut_ref(f);
  int err = fut__add_done_callback(
      f, cb, fut__container_of(self, struct fut__ext, fut));
  if (err) {
    fut_unref(self);
    return err;
  }
  self->refs++;
  fut__comb_track(c, self, cb, slot, 1, timer);
  return 0;
}

size_t fut__comb_unregister(fut_t *const *fs, size_t n, fut_done_cb cb,
                            void *arg, fut_t *self) {
  size_t removed = 0;
  for (size_t i = 0; i < n; i++) {
    int k = fut_remove_done_callback(fs[i], cb, arg);
    removed += (size_t)k;
    /* Each removed registration held a reference to self; the caller
     * holds another, so these never free it. */
    while (k-- > 0)
      fut_unref(self);
  }
  return removed;
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
    fut__comb_untrack(c);
    if (c->timer)
      fut__handle_clear(c->timer);
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
