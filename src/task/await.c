/* Running tasks: the switches between the loop and a task, a task's steps
 * and wakeups, its suspension points (fut_await, fut_yield, fut_sleep), its
 * end (the outcome of its future) and its last run at loop close.
 *
 * The loop's thread stack is the scheduler.  A task runs only when the
 * scheduler switches to it from a ready-queue entry (its first step, a
 * yield) or from a done callback of the future it awaits (asyncio's
 * __wakeup runs __step directly); it runs until it suspends or returns,
 * and switches back.  Switches are always scheduler <-> task, so a task
 * never resumes another one inline.
 *
 * Suspension is libdill's "register a waiter, switch, be re-queued":
 * fut_await adds a done callback (wakeup) to the awaited future, keeps a
 * reference to it in t->waiter, and switches away; wakeup resumes the task.
 * A cancel not delivered to a waiter (task.c) is delivered as -ECANCELED by
 * the next suspension point. */
#include "task/internal.h"

#include <string.h>

#if defined(FUT__ASAN)
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(FUT__TSAN)
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif

/* Per thread: the scheduler side of every switch. */
struct sched {
  struct fut__ctx ctx;       /* the loop's context while a task runs */
  struct fut__task *current; /* the running task, NULL on the scheduler */
#if defined(FUT__ASAN)
  const void *main_bottom; /* the thread stack, learnt at the first */
  size_t main_size;        /* switch into a task */
  void *asan_fake;         /* the scheduler's fake stack while away */
#endif
#if defined(FUT__TSAN)
  void *tsan_fiber; /* the thread's own fiber */
#endif
};
static _Thread_local struct sched sched;

/* ---- switching ----------------------------------------------------------- */

static void wakeup(fut_t *f, void *arg);

/* Scheduler -> task. */
static void switch_in(struct fut__task *t) {
  struct sched *s = &sched;
  if (FUT__UNLIKELY(t->has_cmp)) /* its frames onto its run stack */
    fut__compact_enter(t);
  s->current = t;
  t->state = FUT__T_RUNNING;
#if defined(FUT__TSAN)
  if (!s->tsan_fiber)
    s->tsan_fiber = __tsan_get_current_fiber();
  __tsan_switch_to_fiber(t->tsan_fiber, 0);
#endif
#if defined(FUT__ASAN)
  __sanitizer_start_switch_fiber(&s->asan_fake, fut__stack_lo(&t->stack),
                                 fut__stack_size(&t->stack));
#endif
  fut__ctx_switch(&s->ctx, &t->ctx);
#if defined(FUT__ASAN)
  __sanitizer_finish_switch_fiber(s->asan_fake, NULL, NULL);
#endif
  s->current = NULL;
  /* The task switched out (or ended): a stack without a guard page of its
   * own has its canary checked (a few loads, see stack.c). */
  if (t->stack.canary && !fut__stack_canary_ok(&t->stack))
    fut__stack_canary_hit(&t->stack, fut__task_given_name(t));
  if (FUT__UNLIKELY(t->has_cmp))
    fut__compact_leave(t);
}

/* Task -> scheduler; returns when the task is resumed.  `final` when the
 * task will never run again (its fake stack can go). */
static inline void switch_out_body(struct fut__task *t, bool final) {
  struct sched *s = &sched;
#if defined(FUT__TSAN)
  __tsan_switch_to_fiber(s->tsan_fiber, 0);
#endif
#if defined(FUT__ASAN)
  __sanitizer_start_switch_fiber(final ? NULL : &t->asan_fake, s->main_bottom,
                                 s->main_size);
#else
  (void) final;
#endif
  fut__ctx_switch(&t->ctx, &s->ctx);
#if defined(FUT__ASAN)
  __sanitizer_finish_switch_fiber(t->asan_fake, NULL, NULL);
#endif
}

/* A compact task's switch: noinline, because its reservation
 * (fut__compact_reserve) measures its distance to the switch, which must
 * be the same from every caller. */
__attribute__((noinline)) static void switch_out_compact(struct fut__task *t,
                                                         bool final) {
  switch_out_body(t, final);
}

/* Other tasks switch inline: no call on the hot path. */
static inline void switch_out(struct fut__task *t, bool final) {
  if (FUT__UNLIKELY(t->has_cmp))
    switch_out_compact(t, final);
  else
    switch_out_body(t, final);
}

static void task_entry(void *p) {
  struct fut__task *t = p;
#if defined(FUT__ASAN)
  __sanitizer_finish_switch_fiber(NULL, &sched.main_bottom, &sched.main_size);
#endif
  /* fn and arg leave the future's result union, which is the staged
   * result's from now on (zero: nothing staged). */
  struct fut__task_start start;
  memcpy(&start, &t->x.fut.r, sizeof start);
  memset(&t->x.fut.r, 0, sizeof t->x.fut.r);
  fut__task_set_rc(t, start.fn(start.arg));
  t->state = FUT__T_DONE;
  switch_out(t, true);
  FUT__ASSERT(!"a finished task was resumed");
}

void fut__task_make_ctx(struct fut__task *t) {
  fut__ctx_make(&t->ctx, fut__stack_lo(&t->stack), fut__stack_size(&t->stack),
                task_entry, t);
}

void fut__task_init_ctx(struct fut__task *t) {
#if defined(FUT__TSAN)
  t->tsan_fiber = __tsan_create_fiber(0);
#endif
  /* A compact task on a shared run stack gets its context at its first
   * run: the stack holds another task's frames until then. */
  if (fut__compact_ctx_at_create(t))
    fut__task_make_ctx(t);
}

/* ---- the running task ---------------------------------------------------- */

struct fut__task *fut__task_current(const char *what) {
  struct fut__task *t = sched.current;
  if (!t)
    fut__error(FUT_E_NOT_IN_TASK, "%s called outside a task", what);
  return t;
}

fut_t *fut_current_task(fut_loop_t *loop) {
  struct fut__task *t = sched.current;
  if (!t || (loop && t->x.fut.loop != loop))
    return NULL;
  return &t->x.fut;
}

bool fut__task_guard_hit(const void *addr, const char **name, uint64_t *id,
                         size_t *size) {
  struct fut__task *t = sched.current;
  if (!t || !t->stack.lo)
    return false;
  const char *a = addr;
  if (a < fut__stack_fault_lo(&t->stack) || a >= t->stack.lo)
    return false;
  *name = fut__task_given_name(t); /* NULL: the default, formatted by
                                      the caller */
  *id = t->id;
  *size = fut__stack_size(&t->stack);
  return true;
}

struct fut__task *fut__task_running(void) {
  return sched.current;
}

/* ---- a task's end ------------------------------------------------------- */

/* Sets the task's outcome from fn's return code, releases its stack and the
 * loop's run reference.  On the scheduler stack. */
static void finish(struct fut__task *t) {
  fut_t *f = &t->x.fut;
  struct fut__task_state *ts = fut__task_state_of(t);
  if (t->has_cmp)
    fut__compact_free(ts, t, t->abandoned);
  else if (t->abandoned)
    fut__stack_discard(&ts->cache, &t->stack);
  else
    fut__stack_put(&ts->cache, &t->stack);
#if defined(FUT__TSAN)
  __tsan_destroy_fiber(t->tsan_fiber);
  t->tsan_fiber = NULL;
#endif
  ts->ntasks--; /* off the loop's list: state is FUT__T_DONE */
  int rc = (int)(int32_t)f->ext, err = 0;
  f->ext = 0;
  /* The staged result (or, for a task that never ran, fn and arg) leaves
   * the future's result union before the outcome goes there. */
  union fut__value staged = *fut__task_staged(t);
  uint8_t rkind = t->rkind;
  t->rkind = FUT__V_NONE;
  memset(&f->r, 0, sizeof f->r);
  const struct fut__task_cold *c = t->cold;
  /* The owner sets the outcome now; once done, nobody can set it again. */
  f->flags &= (uint8_t)~FUT__F_OWNED;
  if (rc == 0 && !t->must_cancel) {
    switch (rkind) {
    case FUT__V_PTR:
      err = fut_set_result(f, staged.p.ptr, staged.p.dtor);
      break;
    case FUT__V_BYTES:
      err = fut_set_result_bytes_owned(f, staged.b.data, staged.b.len);
      break;
    case FUT__V_I64:
      err = fut_set_result_i64(f, staged.i64);
      break;
    default:
      err = fut_set_result(f, NULL, NULL);
      break;
    }
    if (err == 0)
      rkind = FUT__V_NONE; /* the future owns it now */
  } else if (rc == 0 || rc == -ECANCELED) {
    /* Cancelled right before returning, or let the cancellation out: with
     * the message fut_task_fail gave -ECANCELED (a CancelledError re-raised
     * with its args, as one caught from an awaited future), else the
     * task's own cancel message. */
    t->must_cancel = false;
    const char *msg =
        !c ? NULL
        : rc == -ECANCELED && c->fail_msg && c->fail_code == -ECANCELED
            ? c->fail_msg
            : c->cancel_msg;
    if (!fut__cancel_base(f, msg))
      err = FUT_E_INVALID_STATE;
  } else if (rc < 0) {
    err = c && c->fail_msg ? fut_set_exception(f, rc, "%s", c->fail_msg)
                           : fut_set_exception(f, rc, NULL);
  } else {
    err = fut_set_exception(f, -EINVAL,
                            "task '%s' returned %d: a task "
                            "function returns 0 or a negative code",
                            fut__task_name(t), rc);
  }
  fut__value_clear(rkind, &staged);
  if (err)
    fut__report_exception(f->loop,
                          "cannot set the outcome of a finished "
                          "task",
                          err, f, NULL, fut__task_name(t));
  fut_unref(f); /* the run reference */
}

/* Runs the task until it suspends or returns. */
static void resume(struct fut__task *t) {
  FUT__ASSERT(sched.current == NULL);
  switch_in(t);
  if (t->state == FUT__T_DONE)
    finish(t);
}

void fut__task_step(void *p) {
  struct fut__task *t = p;
  if (t->state == FUT__T_CREATED && t->must_cancel) {
    /* asyncio throws CancelledError into a coroutine that never ran: it
     * ends at once, its body unexecuted. */
    fut__task_set_rc(t, -ECANCELED);
    t->state = FUT__T_DONE;
    finish(t);
    return;
  }
  resume(t);
}

void fut__task_close(struct fut__task *t) {
  fut_t *f = &t->x.fut;
  fut__report_exception(f->loop, "Task was destroyed but it is pending!", 0, f,
                        NULL, fut__task_name(t));
  if (t->state == FUT__T_CREATED) {
    fut__task_set_rc(t, -ECANCELED);
    t->state = FUT__T_DONE;
    finish(t);
    return;
  }
  if (t->waiter) {
    fut_remove_done_callback(t->waiter, wakeup, t);
    fut_unref(t->waiter);
    t->waiter = NULL;
  }
  if (sched.current) {
    /* Closed from inside a task of another loop: switches only go
     * scheduler <-> task, so this one cannot run again.  Its frames are
     * dropped without clean-up. */
    fut__task_set_rc(t, -ECANCELED);
    t->state = FUT__T_DONE;
    t->abandoned = true;
    finish(t);
    return;
  }
  t->closing_wake = true;
  /* Every suspension point returns at once now: the task runs to its end
   * (finish() may free it). */
  resume(t);
}

/* ---- suspension points --------------------------------------------------- */

/* The delivered outcome of a suspension: a pending cancel wins. */
static int after_resume(struct fut__task *t) {
  if (t->closing_wake)
    return -ECANCELED;
  if (t->must_cancel) {
    t->must_cancel = false;
    return -ECANCELED;
  }
  return 0;
}

static void wakeup(fut_t *f, void *arg) {
  struct fut__task *t = arg;
  FUT__ASSERT(t->waiter == f && t->state == FUT__T_SUSPENDED);
  t->waiter = NULL;
  fut_unref(f);
  resume(t);
}

/* Waits for the pending future f. */
static int wait_on(struct fut__task *t, fut_t *f) {
  if (fut__task_closing(t))
    return -ECANCELED;
  int err =
      FUT__UNLIKELY(t->has_cmp) ? fut__compact_reserve(t, "fut_await") : 0;
  if (err)
    return err;
  err = fut__add_done_callback(f, wakeup, t);
  if (err)
    return err;
  t->waiter = fut_ref(f);
  if (t->must_cancel && fut_cancel(f, t->cold ? t->cold->cancel_msg : NULL))
    t->must_cancel = false;
  t->state = FUT__T_SUSPENDED;
  switch_out(t, false);
  return after_resume(t);
}

static int await_common(fut_t *f, const char *what) {
  struct fut__task *t = fut__task_current(what);
  if (!t)
    return FUT_E_NOT_IN_TASK;
  if (!f)
    return fut__error(-EINVAL, "%s: NULL future", what);
  if (f == &t->x.fut)
    return fut__error(-EINVAL, "%s: task '%s' cannot await itself", what,
                      fut__task_name(t));
  if (f->loop != t->x.fut.loop)
    return fut__error(FUT_E_OTHER_LOOP,
                      "%s: the future belongs to another "
                      "loop",
                      what);
  if (f->state == FUT_PENDING) {
    int err = wait_on(t, f);
    if (err)
      return err;
  }
  return 0;
}

int fut_await(fut_t *f, void **out) {
  if (out)
    *out = NULL;
  int err = await_common(f, "fut_await");
  return err ? err : fut_result(f, out);
}

int fut_await_i64(fut_t *f, int64_t *out) {
  if (out)
    *out = 0;
  int err = await_common(f, "fut_await_i64");
  return err ? err : fut_result_i64(f, out);
}

int fut_await_bytes(fut_t *f, const void **data, size_t *len) {
  if (data)
    *data = NULL;
  if (len)
    *len = 0;
  int err = await_common(f, "fut_await_bytes");
  return err ? err : fut_result_bytes(f, data, len);
}

int fut_yield(void) {
  struct fut__task *t = fut__task_current("fut_yield");
  if (!t)
    return FUT_E_NOT_IN_TASK;
  if (fut__task_closing(t))
    return -ECANCELED;
  int err =
      FUT__UNLIKELY(t->has_cmp) ? fut__compact_reserve(t, "fut_yield") : 0;
  if (err)
    return err;
  err = fut__ring_push(&t->x.fut.loop->ready, fut__task_step, t);
  if (err)
    return err;
  t->state = FUT__T_SUSPENDED;
  switch_out(t, false);
  return after_resume(t);
}

static void sleep_done(void *arg) {
  fut_t *f = arg;
  if (f->state == FUT_PENDING)
    fut_set_result(f, NULL, NULL);
}

int fut_sleep(uint64_t ns) {
  if (ns == 0)
    return fut_yield();
  struct fut__task *t = fut__task_current("fut_sleep");
  if (!t)
    return FUT_E_NOT_IN_TASK;
  fut_loop_t *loop = t->x.fut.loop;
  fut_t *f;
  fut_handle_t *h;
  int err = fut_new(loop, &f);
  if (err)
    return err;
  if ((err = fut__call_later_nocapture(loop, ns, sleep_done, f, &h))) {
    fut_unref(f);
    return err;
  }
  err = fut_await(f, NULL);
  fut_handle_cancel(h);
  fut_handle_unref(h);
  fut_unref(f);
  return err;
}
