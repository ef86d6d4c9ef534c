/* Context capture: callbacks bound to the context of the code that
 * scheduled them (asyncio's Handle._context, copy_context() at call_soon),
 * carried for the sync layer, which owns the contexts.  See "context
 * capture" in loop/internal.h. */
#include "loop/internal.h"

const struct fut__ctx_hooks *fut__ctx_hooks;

static void release_call(void *c) {
  fut__ctx_call_free(c);
}

__attribute__((constructor)) static void ctxcall_init(void) {
  fut__register_release(fut__ctx_call_run, release_call);
}

struct fut__ctx_call *fut__ctx_call_new(fut_loop_t *loop, void *ctx,
                                        void *arg) {
  struct fut__ctx_call *c = fut__malloc(sizeof *c);
  if (FUT__UNLIKELY(!c)) {
    fut__ctx_hooks->unref(ctx);
    fut__error(-ENOMEM, "out of memory binding a callback to its context");
    return NULL;
  }
  c->arg = arg;
  c->ctx = ctx;
  c->loop = loop;
  return c;
}

void fut__ctx_call_free(struct fut__ctx_call *c) {
  fut__ctx_hooks->unref(c->ctx);
  fut__free(c);
}

void fut__ctx_enter(fut_loop_t *loop, struct fut__ctx_frame *fr, void *ctx) {
  fr->ctx = ctx;
  fut__ctx_live_add(loop, 1); /* what the callback schedules captures it */
  fr->outer = fut__ctx_hooks->enter(&fr->ctx);
}

void fut__ctx_leave(fut_loop_t *loop, struct fut__ctx_frame *fr) {
  fut__ctx_hooks->leave(fr->outer);
  fut__ctx_live_add(loop, -1);
  /* The frame's head: the captured context, or what sets inside the
   * callback pushed on it (never seen by the scheduler's context). */
  fut__ctx_hooks->unref(fr->ctx);
}

void fut__ctx_call_run(void *p) {
  struct fut__ctx_call c = *(struct fut__ctx_call *)p;
  fut__free(p);
  struct fut__ctx_frame fr;
  fut__ctx_enter(c.loop, &fr, c.ctx);
  c.fn.cb(c.arg);
  fut__ctx_leave(c.loop, &fr);
}
