/* libfuture — the combinators: asyncio's gather, wait, wait_for, shield and
 * as_completed, and promise-style chaining (then).
 *
 * Each returns a future (a reference the caller owns) usable from tasks
 * (fut_await) and from callback code (fut_add_done_callback): no task is
 * needed.  Each takes its own references to the futures given; the caller
 * keeps its own.  All futures must belong to loop (FUT_E_OTHER_LOOP).  A
 * combinator lives until its children are done, even if every reference to
 * it is dropped; if the loop is closed first, it lets go of its children
 * and timers then (nothing leaks).
 *
 * Threads: like futures, combinators belong to their loop's thread; every
 * function here must be called on it.
 *
 * Common errors: -EINVAL (NULL arguments), FUT_E_CLOSED,
 * FUT_E_WRONG_THREAD (debug mode), -ENOMEM.
 */
#ifndef FUTURE_COMBINE_H
#define FUTURE_COMBINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "future/future.h"
#include "future/loop.h"
#include "future/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- gather -------------------------------------------------------------- */

enum {
  /* gather: a failed or cancelled child is kept as an outcome instead of
   * failing the gather (asyncio's return_exceptions=True). */
  FUT_GATHER_RETURN_EXCEPTIONS = 1u << 0
};

/* asyncio.gather: finishes when every child is done (result: NULL
 * pointer; read the children's results in argument order with
 * fut_gather_child), or as soon as one child fails or is cancelled, with
 * that child's code (-ECANCELED for a cancelled child, as a failure, as
 * asyncio does), unless FUT_GATHER_RETURN_EXCEPTIONS.  A child's failure
 * does not cancel the others.  Cancelling the gather cancels every pending
 * child (true if any accepted); the gather then ends cancelled whatever the
 * flags.  n may be 0 (done at once).
 * The same future may appear several times.  Returns 0 or a negative code
 * (the common errors above). */
FUT_EXTERN int fut_gather(fut_loop_t *loop, fut_t *const *fs, size_t n,
                          unsigned flags, fut_t **out);
/* The i-th child of a gather (borrowed, valid while the gather lives);
 * NULL if g is not a gather or i is out of range. */
FUT_EXTERN fut_t *fut_gather_child(const fut_t *g, size_t i);
/* The number of children of a gather; 0 if g is not a gather. */
FUT_EXTERN size_t fut_gather_count(const fut_t *g);

/* ---- wait, wait_for ------------------------------------------------------ */

typedef enum fut_wait_when {
  FUT_WAIT_FIRST_COMPLETED = 1,
  FUT_WAIT_FIRST_EXCEPTION = 2, /* a failure (a cancellation is not one, as
                                   in asyncio), or all done */
  FUT_WAIT_ALL_COMPLETED = 3
} fut_wait_when_t;

/* asyncio.wait: a future that finishes (result NULL, never failing) when
 * the condition holds or timeout_ns ran out (UINT64_MAX: no timeout).  The
 * children are never cancelled.  Then fut_wait_sets gives the done and
 * pending sets.  As asyncio takes a set, a future listed several times is
 * one child: the sets hold each distinct future once.  Errors: -EINVAL
 * also for n == 0 (as asyncio) or a bad `when`. */
FUT_EXTERN int fut_wait(fut_loop_t *loop, fut_t *const *fs, size_t n,
                        fut_wait_when_t when, uint64_t timeout_ns, fut_t **out);
/* Splits a wait's distinct children, as they are now, into done[] and
 * pending[] (each with room for the n given to fut_wait; either may be
 * NULL), writing the counts.  Borrowed pointers.  Errors: -EINVAL if w is not a
 * wait future. */
FUT_EXTERN int fut_wait_sets(const fut_t *w, fut_t **done, size_t *ndone,
                             fut_t **pending, size_t *npending);

/* asyncio.wait_for with 3.12 semantics: a future with f's outcome, or, when
 * timeout_ns runs out first, f is cancelled and, once f has finished
 * cancelling, the future fails with -ETIMEDOUT; if f finished with a result
 * or an error despite the cancel, that outcome wins.  Cancelling the
 * returned future cancels f and waits for it; it then ends cancelled (the
 * outer cancel is never turned into a timeout), or with f's outcome if f
 * refused the cancel.  timeout_ns 0: f is cancelled at once if not done;
 * UINT64_MAX: no timeout. */
FUT_EXTERN int fut_wait_for(fut_t *f, uint64_t timeout_ns, fut_t **out);

/* ---- shield -------------------------------------------------------------- */

/* asyncio.shield: a future with f's outcome whose cancellation does not
 * cancel f; f is kept alive until it is done.  Returns 0 or a negative
 * code (the common errors above). */
FUT_EXTERN int fut_shield(fut_t *f, fut_t **out);

/* ---- as_completed -------------------------------------------------------- */

/* asyncio.as_completed (concurrent.futures' blocking one is
 * fut_cfuture_as_completed, in cfuture.h).  *out receives an iterator future
 * that finishes (result NULL) when every child is done, or fails with
 * -ETIMEDOUT when timeout_ns (UINT64_MAX: none) runs out first.  Each
 * fut_as_completed_next call gives a new future (owned) that finishes with the
 * next child to complete, in completion order, as its pointer result (borrowed
 * while that future lives: read it with fut_result), or fails with -ETIMEDOUT
 * after the timeout.  As asyncio's next coroutines take a child when they
 * are awaited, a child that completes goes to the oldest pending next future
 * someone waits on (a task awaiting it, a done callback), or, when nobody
 * waits on any, to the oldest pending one (next futures only polled fill
 * in the order they were made); a child already done when a next future is
 * made goes to it at once.  As asyncio builds a set, a future listed several
 * times is yielded once: there are as many next futures as distinct
 * children.  Cancelling the iterator cancels the pending next futures, not
 * the children.  Errors of next: -EINVAL (ac not an iterator of
 * fut_as_completed), -ENOENT (one next future per distinct child was
 * already given).
 */
FUT_EXTERN int fut_as_completed(fut_loop_t *loop, fut_t *const *fs, size_t n,
                                uint64_t timeout_ns, fut_t **out);
FUT_EXTERN int fut_as_completed_next(fut_t *ac, fut_t **next);

/* ---- then ---------------------------------------------------------------- */

/* Promise-style chaining: fn(src, dst, arg) runs on the loop once, when src
 * is done (even if dst was cancelled meanwhile: check fut_done(dst)), and
 * resolves dst (fut_set_result..., or leaves it pending to resolve it
 * later).  If fn returns a negative code while dst is pending, dst fails
 * with it.  fn NULL copies src's outcome.  Cancelling dst cancels src.
 * arg is borrowed until fn ran (fn never runs if the loop is closed while
 * src is pending). */
typedef int (*fut_then_cb)(fut_t *src, fut_t *dst, void *arg);
FUT_EXTERN int fut_then(fut_t *src, fut_then_cb fn, void *arg, fut_t **out);

#ifdef __cplusplus
}
#endif
#endif
