/* libfuture — the future layer's private interface: the future struct,
 * futures with behaviour of their own (tasks, combinators), what the
 * combinators share (the loop part that tracks the live ones).  Includes
 * the loop and base layers.  Never installed. */
#ifndef FUT_FUTURE_INTERNAL_H
#define FUT_FUTURE_INTERNAL_H

#include "loop/internal.h"
/* ---- futures (future.c) ------------------------------------------------ */
/* What r holds: the shared value kinds (base/value.h), then a future's
 * own. */
enum {
  FUT__R_NONE = FUT__V_NONE,    /* pending, or done without result storage */
  FUT__R_PTR = FUT__V_PTR,      /* r.v.p: pointer + destructor */
  FUT__R_BYTES = FUT__V_BYTES,  /* r.v.b: fut__malloc'd bytes + length */
  FUT__R_I64 = FUT__V_I64,      /* r.v.i64 */
  FUT__R_SHARED = FUT__V_KINDS, /* r.s: pointer borrowed from another future */
  FUT__R_MSG                    /* r.msg: exception or cancel message */
};

enum {
  FUT__F_RETRIEVED = 1u << 0, /* result/exception was read */
  FUT__F_DISPATCH = 1u << 1,  /* a callback dispatch is queued */
  FUT__F_EXT = 1u << 2,       /* embedded in a struct fut__ext */
  FUT__F_CB0 = 1u << 3,       /* cb0 holds a registration */
  FUT__F_OWNED = 1u << 4,     /* only its owner sets the outcome (a task:
                                 the setters refuse FUT_E_NOT_SETTABLE;
                                 cancel is still allowed) */
  FUT__F_BOUND = 1u << 5      /* a registration may be bound to a context
                                 (loop/internal.h): freed if never run */
};

struct fut__cb_ent {
  fut_done_cb cb;
  void *arg;
};

struct fut__cb_vec {
  uint32_t len, cap;
  struct fut__cb_ent e[];
};

struct fut {
  fut_loop_t *loop; /* owner; never changes */
  uint32_t refs;    /* > 0 while alive */
  int32_t err;      /* 0, the exception's code, or -ECANCELED */
  uint8_t state;    /* fut_state_t */
  uint8_t rkind;    /* FUT__R_* */
  uint8_t flags;    /* FUT__F_* */
  uint8_t unused;
  uint32_t ext; /* never read by this layer: free for a struct embedding
                   the future (struct fut__ext; a task's return code) */
  struct fut__cb_ent cb0; /* first registration when FUT__F_CB0 */
  /* Read only once the future is done (rkind says what it holds): while
   * it is pending, a struct embedding it whose owner alone sets the
   * outcome (FUT__F_OWNED) may keep its own data here, and must leave it
   * zeroed before setting the outcome (a task: fn and arg, then its
   * staged result). */
  union {
    union fut__value v; /* FUT__R_PTR, FUT__R_BYTES, FUT__R_I64 */
    struct {
      void *ptr;
      fut_t *src; /* holds a reference */
    } s;          /* FUT__R_SHARED */
    char *msg;    /* FUT__R_MSG */
  } r;
  struct fut__cb_vec *more; /* registrations after the first, or NULL */
};

_Static_assert(sizeof(struct fut) == FUT__FUTURE_SIZE,
               "the loop's future slab holds struct fut");

/* Futures with behaviour of their own (tasks, combinators) embed a
 * struct fut__ext; its ops override cancel and free. */
struct fut__ops {
  const char *type_name;
  /* Cancel request for a pending future; returns what fut_cancel returns. */
  bool (*cancel)(fut_t *f, const char *msg);
  /* Releases the object's own fields and its memory (fut__free) once the
   * future's result and callbacks are gone. */
  void (*destroy)(fut_t *f);
  /* Optional: a reference to the context the report of a never-retrieved
   * exception runs in (a task's own, as asyncio's Task.__del__ enters the
   * task's context), or NULL for none. */
  void *(*context)(fut_t *f);
};
struct fut__ext {
  const struct fut__ops *ops;
  fut_t fut;
};
/* fut_add_done_callback without the context capture, for the library's
 * own registrations (a task's wake-up, a combinator's): they run no user
 * code that reads a context.  fut_remove_done_callback takes both back. */
int fut__add_done_callback(fut_t *f, fut_done_cb cb, void *arg);
/* Initialises an embedded future (refs 1) bound to loop. */
int fut__ext_init(fut_loop_t *loop, struct fut__ext *x,
                  const struct fut__ops *ops);
/* The plain cancel of a future, used by ops->cancel implementations. */
bool fut__cancel_base(fut_t *f, const char *msg);
static inline const struct fut__ops *fut__ops_of(const fut_t *f) {
  if (!(f->flags & FUT__F_EXT))
    return NULL;
  return fut__container_of(f, struct fut__ext, fut)->ops;
}

/* ---- combinators (combine.c; gather.c, wait.c, as_completed.c, shield.c,
 * then.c) --------------------------------------------------------------- */

/* Close ranks of the loop parts (struct fut__loop_part): a layer closes
 * before the layers it uses. */
#define FUT__RANK_COMBINATORS 20

/* A combinator's link to its loop's list of live combinators, so that
 * closing the loop can detach the ones still waiting (each registration
 * they hold on a child keeps them alive; without this a combinator waiting
 * on a future nobody completes would leak with it). */
struct fut__comb {
  struct fut__qnode node; /* in the loop's list while waiting */
  fut_t *self;            /* the combinator's future (not a ref) */
  fut_done_cb kid_cb;     /* registered on each kid with cb_arg */
  void *cb_arg;
  fut_t **kids; /* nkids slots; NULL entries skipped */
  size_t nkids;
  fut_handle_t **timer; /* slot of its timer handle, or NULL */
};

/* Checks a combinator's children: fs[0, n) non-NULL and all of loop.
 * Returns 0, -EINVAL or FUT_E_OTHER_LOOP (`what` names the call). */
int fut__comb_check_futs(fut_loop_t *loop, fut_t *const *fs, size_t n,
                         const char *what);
/* The checks a combinator of the futures fs[0, n) starts with: out not
 * NULL (then *out = NULL), loop not NULL, then fut__comb_check_futs. */
int fut__comb_check_args(fut_loop_t *loop, fut_t *const *fs, size_t n,
                         fut_t **out, const char *what);
/* The same for a combinator of the one future f: out, then f not NULL. */
int fut__comb_check_arg(fut_t *f, fut_t **out, const char *what);
/* Writes the distinct futures of fs[0, n) to dst (room for n), each once,
 * in the order of their first appearance, and their count to *m (no
 * references taken).  asyncio's wait and as_completed take a set.  Returns
 * 0 or -ENOMEM (`what` names the call). */
int fut__comb_distinct(fut_t *const *fs, size_t n, fut_t **dst, size_t *m,
                       const char *what);
/* Allocates a zeroed combinator of `size` bytes (a struct fut__ext first)
 * followed by nkids child slots (fut_t *), whose future starts with refs
 * 1; NULL with the error in *err (-EINVAL, -ENOMEM, FUT_E_CLOSED, ...). */
void *fut__comb_new(fut_loop_t *loop, size_t size, size_t nkids,
                    const struct fut__ops *ops, const char *what, int *err);
/* Links a fully built combinator into its loop's list: closing the loop
 * removes the (cb, self's fut__ext) registrations on kids[0, n) and the
 * timer in *timer (timer may be NULL). */
void fut__comb_track(struct fut__comb *c, fut_t *self, fut_done_cb cb,
                     fut_t **kids, size_t n, fut_handle_t **timer);
static inline void fut__comb_untrack(struct fut__comb *c) {
  fut__q_remove(&c->node);
}
/* Registers (cb, arg) on fs[0, n), each registration holding a reference
 * to self.  On failure takes back those it made (those on done futures are
 * already scheduled and stay: they still run) and returns the error. */
int fut__comb_register(fut_t *const *fs, size_t n, fut_done_cb cb, void *arg,
                       fut_t *self);
/* For a combinator of one child f: *slot takes a reference to f, cb is
 * registered on f (holding a reference to self) and the combinator is
 * tracked with the timer in *timer (timer may be NULL).  On failure drops
 * the caller's reference to self (which frees it: its destroy releases
 * *slot) and returns the error. */
int fut__comb_watch(struct fut__comb *c, fut_t *self, fut_t *f, fut_t **slot,
                    fut_done_cb cb, fut_handle_t **timer);
/* Takes back the registrations (cb, arg) on fs[0, n) that are not yet
 * scheduled, dropping the reference each held on self (a child listed
 * twice has two); the caller holds one more.  Returns how many. */
size_t fut__comb_unregister(fut_t *const *fs, size_t n, fut_done_cb cb,
                            void *arg, fut_t *self);
/* Marks a child's exception retrieved: the combinator consumed it. */
static inline void fut__comb_consume(fut_t *f) {
  (void)fut_exception(f, NULL);
}
/* A done future's exception or cancel message (borrowed), or NULL; marks
 * the exception retrieved. */
static inline const char *fut__comb_msg(fut_t *f) {
  const char *msg = NULL;
  (void)fut_exception(f, &msg);
  return msg;
}

/* Cancels and releases the timer handle in *h, if any, and clears *h. */
static inline void fut__handle_clear(fut_handle_t **h) {
  if (*h) {
    fut_handle_cancel(*h);
    fut_handle_unref(*h);
    *h = NULL;
  }
}

/* future.c */
/* Drops the queued registrations (cb, arg) made on futures that were done
 * with a dispatch already queued (they sit in the ready queue, not on the
 * future, so fut_remove_done_callback cannot see them); returns how many.
 * For loop close, whose ready-queue clear would release the future but not
 * what arg holds. */
int fut__drop_late_callbacks(fut_loop_t *loop, fut_done_cb cb, void *arg);

#endif
