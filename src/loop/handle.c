/* Handles: what call_soon / call_later / the fd watchers give back, their
 * references and cancellation; the ready-queue trampoline that runs them. */
#include "loop/internal.h"

/* A handle dropped from the ready queue by close never runs: it reads as
 * cancelled to whoever still holds it. */
static void release_handle(void *p) {
  fut_handle_t *h = p;
  if (!(h->flags & FUT__H_RAN))
    h->flags |= FUT__H_CANCELLED;
  fut_handle_unref(h);
}

__attribute__((constructor)) static void loop_global_init(void) {
  fut__register_release(fut__handle_run, release_handle);
}

/* ---- handles ------------------------------------------------------------ */

/* Debug mode: the calls that return nothing refuse a thread that does not
 * own the loop as the others return FUT_E_WRONG_THREAD: nothing happens,
 * fut_last_error has the detail, and stderr says so. */
__attribute__((noinline)) bool fut__refuse_foreign(const fut_loop_t *loop,
                                                   const char *what) {
  if (!fut__check_thread(loop))
    return false;
  fprintf(stderr, "libfuture: %s refused: %s\n", what, fut_last_error());
  return true;
}

fut_handle_t *fut__handle_new(fut_loop_t *loop, fut_cb cb, void *arg,
                              uint8_t flags) {
  fut_handle_t *h = fut__slab_alloc(&loop->handle_slab);
  if (FUT__UNLIKELY(!h)) {
    fut__error(-ENOMEM, "out of memory for a handle");
    return NULL;
  }
  h->cb = cb;
  h->arg = arg;
  h->when = 0;
  h->refs = 1;
  h->flags = flags;
  h->slack = 0;
  h->pos = 0;
  loop->live_handles++;
  return h;
}

void fut_handle_ref(fut_handle_t *h) {
  if (!h || FUT__FOREIGN(fut__handle_loop(h), "fut_handle_ref"))
    return;
  /* 2^24 - 1 references is a leak, not a use: stop before the count
   * wraps and frees a handle still held. */
  if (FUT__UNLIKELY(h->refs == FUT__HANDLE_REFS_MAX)) {
    fprintf(stderr,
            "libfuture: fut_handle_ref: handle %p has %u "
            "references, the most it can count\n",
            (void *)h, (unsigned)FUT__HANDLE_REFS_MAX);
    abort();
  }
  h->refs++;
}

void fut_handle_unref(fut_handle_t *h) {
  if (!h || FUT__FOREIGN(fut__handle_loop(h), "fut_handle_unref"))
    return;
  FUT__ASSERT(h->refs > 0);
  if (--h->refs > 0) {
    if (h->refs == 1 && (h->flags & (FUT__H_IN_HEAP | FUT__H_CANCELLED)) ==
                            (FUT__H_IN_HEAP | FUT__H_CANCELLED))
      fut__handle_loop(h)->timers.zombies++;
    return;
  }
  fut_loop_t *loop = fut__handle_loop(h);
  /* A bound callback that never ran (dropped by close) goes with it. */
  if (FUT__UNLIKELY((h->flags & (FUT__H_CTX | FUT__H_RAN)) == FUT__H_CTX))
    fut__ctx_call_free(h->arg);
  fut__slab_free(&loop->handle_slab, h);
  loop->live_handles--;
  if (FUT__UNLIKELY(loop->freed))
    fut__loop_maybe_release(loop);
}

void fut__handle_run(void *p) {
  fut_handle_t *h = p;
  if (!(h->flags & FUT__H_CANCELLED)) {
    if (!(h->flags & FUT__H_IO))
      h->flags |= FUT__H_RAN;
    h->cb(h->arg);
  }
  /* The common case, a watcher or a handle someone still holds: the
   * queue's reference goes without a call (no timer-heap bookkeeping
   * applies outside the heap, and this runs on the loop's thread). */
  if (FUT__LIKELY(h->refs > 1 && !(h->flags & FUT__H_IN_HEAP))) {
    h->refs--;
    return;
  }
  fut_handle_unref(h);
}

void fut_handle_cancel(fut_handle_t *h) {
  if (!h || (h->flags & (FUT__H_CANCELLED | FUT__H_RAN)) ||
      FUT__FOREIGN(fut__handle_loop(h), "fut_handle_cancel"))
    return;
  h->flags |= FUT__H_CANCELLED;
  /* It never runs: its context goes now (asyncio's cancel drops the
   * callback's references too). */
  if (h->flags & FUT__H_CTX) {
    fut__ctx_call_free(h->arg);
    h->flags &= (uint8_t)~FUT__H_CTX;
    h->arg = NULL;
  }
  /* A timer in a wheel bucket leaves it now (O(1)).  Elsewhere a
   * cancelled handle is skipped where it waits (heap, run or ready queue)
   * and released when reached; the tiers also shed cancelled timers in
   * bulk. */
  if (h->flags & FUT__H_IN_HEAP)
    fut__timer_cancelled(fut__handle_loop(h), h);
}

bool fut_handle_cancelled(const fut_handle_t *h) {
  return h && (h->flags & FUT__H_CANCELLED);
}

uint64_t fut_handle_when(const fut_handle_t *h) {
  return h && (h->flags & FUT__H_TIMER) ? h->when : 0;
}
