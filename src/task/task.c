/* Tasks: stackful coroutines that await futures (asyncio.Task).
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
 * Cancelling a task cancels its waiter, or records must_cancel when there
 * is none to cancel, delivered as -ECANCELED by the next suspension point.
 *
 * Lifetime: the loop holds one reference to each task from creation until
 * the task is done (the "run reference"), so fire-and-forget is safe.  At
 * fut_loop_close, tasks still pending are resumed one last time with every
 * suspension point returning -ECANCELED at once, so their clean-up code
 * runs and their stacks are released (asyncio closes their coroutines). */
#include "task/internal.h"

#if defined(FUT__ASAN)
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(FUT__TSAN)
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif

enum task_run_state {
  T_CREATED,   /* first step queued, never ran */
  T_RUNNING,   /* on the CPU */
  T_SUSPENDED, /* switched away, waiting for a wakeup or a step */
  T_DONE       /* fn returned; the outcome is set right after */
};

struct task_state;

struct task {
  struct fut__ext x;       /* the task's future; first for container_of */
  struct fut__ctx ctx;     /* saved context while not running */
  struct fut__stack stack; /* mapped until the task is done */
  struct task_state *ts;   /* the loop's task state; NULL once done */
  fut_task_fn fn;          /* the task's function */
  void *arg;               /* borrowed from the creator */
  fut_t *waiter;           /* the awaited pending future (a reference),
                              NULL while not awaiting one */
  struct fut__qnode node;  /* in ts->tasks while not done */
  char *name;              /* malloc'd, never NULL */
  char *cancel_msg;        /* last cancel message, or NULL */
  char *fail_msg;          /* fut_task_fail's message, or NULL */
  uint32_t ncancels;       /* cancel requests not withdrawn (cancelling) */
  int rc;                  /* fn's return value once T_DONE */
  uint8_t state;           /* enum task_run_state */
  bool must_cancel;        /* a cancel waits for the next suspension */
  bool closing_wake;       /* resumed by loop close, not by its waiter */
  bool abandoned;          /* ended without returning: frames dropped */
  bool in_cancel;          /* task_cancel is cancelling the waiter */
  uint8_t rkind;           /* FUT__V_*: staged result for a 0 return */
  union fut__value res;    /* staged by fut_task_return_* */
#if defined(FUT__ASAN)
  void *asan_fake; /* ASan fake stack while switched away */
#endif
#if defined(FUT__TSAN)
  void *tsan_fiber; /* TSan fiber of this task */
#endif
};

/* Per loop (the tasks' loop part). */
struct task_state {
  struct fut__qnode tasks;       /* tasks not done, newest first */
  size_t ntasks;                 /* length of tasks */
  uint64_t next_id;              /* for default names Task-<n> */
  bool closing;                  /* fut_loop_close is finishing tasks */
  struct fut__stack_cache cache; /* stacks of finished tasks */
};

/* Per thread: the scheduler side of every switch. */
struct sched {
  struct fut__ctx ctx;  /* the loop's context while a task runs */
  struct task *current; /* the running task, NULL on the scheduler */
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

static const struct fut__ops task_ops;

static inline struct task *task_of(const fut_t *f) {
  return fut__container_of(f, struct task, x.fut);
}

bool fut_is_task(const fut_t *f) {
  return f && fut__ops_of(f) == &task_ops;
}

/* ---- switching ----------------------------------------------------------- */

static void task_entry(void *p);
static void wakeup(fut_t *f, void *arg);

/* Scheduler -> task. */
static void switch_in(struct task *t) {
  struct sched *s = &sched;
  s->current = t;
  t->state = T_RUNNING;
#if defined(FUT__TSAN)
  if (!s->tsan_fiber)
    s->tsan_fiber = __tsan_get_current_fiber();
  __tsan_switch_to_fiber(t->tsan_fiber, 0);
#endif
#if defined(FUT__ASAN)
  __sanitizer_start_switch_fiber(&s->asan_fake, fut__stack_lo(&t->stack),
                                 t->stack.size);
#endif
  fut__ctx_switch(&s->ctx, &t->ctx);
#if defined(FUT__ASAN)
  __sanitizer_finish_switch_fiber(s->asan_fake, NULL, NULL);
#endif
  s->current = NULL;
}

/* Task -> scheduler; returns when the task is resumed.  `final` when the
 * task will never run again (its fake stack can go). */
static void switch_out(struct task *t, bool final) {
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

static void task_entry(void *p) {
  struct task *t = p;
#if defined(FUT__ASAN)
  __sanitizer_finish_switch_fiber(NULL, &sched.main_bottom, &sched.main_size);
#endif
  t->rc = t->fn(t->arg);
  t->state = T_DONE;
  switch_out(t, true);
  FUT__ASSERT(!"a finished task was resumed");
}

/* ---- outcome ------------------------------------------------------------- */

static void drop_staged(struct task *t) {
  fut__value_clear(t->rkind, &t->res);
  t->rkind = FUT__V_NONE;
}

/* Sets the task's outcome from t->rc, releases its stack and the loop's
 * run reference.  On the scheduler stack. */
static void finish(struct task *t) {
  fut_t *f = &t->x.fut;
  if (t->abandoned)
    fut__stack_discard(&t->stack);
  else
    fut__stack_put(&t->ts->cache, &t->stack);
#if defined(FUT__TSAN)
  __tsan_destroy_fiber(t->tsan_fiber);
  t->tsan_fiber = NULL;
#endif
  fut__q_remove(&t->node);
  t->ts->ntasks--;
  t->ts = NULL;
  int rc = t->rc, err = 0;
  if (rc == 0 && !t->must_cancel) {
    switch (t->rkind) {
    case FUT__V_PTR:
      err = fut_set_result(f, t->res.p.ptr, t->res.p.dtor);
      break;
    case FUT__V_BYTES:
      err = fut_set_result_bytes_owned(f, t->res.b.data, t->res.b.len);
      break;
    case FUT__V_I64:
      err = fut_set_result_i64(f, t->res.i64);
      break;
    default:
      err = fut_set_result(f, NULL, NULL);
      break;
    }
    if (err == 0)
      t->rkind = FUT__V_NONE; /* the future owns it now */
  } else if (rc == 0 || rc == -ECANCELED) {
    /* Cancelled right before returning, or let the cancellation out. */
    t->must_cancel = false;
    if (!fut__cancel_base(f, t->cancel_msg))
      err = FUT_E_INVALID_STATE;
  } else if (rc < 0) {
    err = t->fail_msg ? fut_set_exception(f, rc, "%s", t->fail_msg)
                      : fut_set_exception(f, rc, NULL);
  } else {
    err = fut_set_exception(f, -EINVAL,
                            "task '%s' returned %d: a task "
                            "function returns 0 or a negative code",
                            t->name, rc);
  }
  drop_staged(t);
  if (err)
    fut__report_exception(f->loop,
                          "cannot set the outcome of a finished "
                          "task",
                          err, f, NULL, t->name);
  fut_unref(f); /* the run reference */
}

/* Runs the task until it suspends or returns. */
static void resume(struct task *t) {
  FUT__ASSERT(sched.current == NULL);
  switch_in(t);
  if (t->state == T_DONE)
    finish(t);
}

/* Ready-queue entry: a task's first step, or the step after a yield. */
static void step(void *p) {
  struct task *t = p;
  if (t->state == T_CREATED && t->must_cancel) {
    /* asyncio throws CancelledError into a coroutine that never ran: it
     * ends at once, its body unexecuted. */
    t->rc = -ECANCELED;
    t->state = T_DONE;
    finish(t);
    return;
  }
  resume(t);
}

/* ---- per-loop state ------------------------------------------------------ */

static void task_close(fut_loop_t *loop, void *state);

/* The loop part holding each loop's struct task_state. */
static int task_part;

__attribute__((constructor)) static void task_part_init(void) {
  static const struct fut__loop_part part = {
      .name = "tasks", .rank = FUT__RANK_TASKS, .close = task_close};
  task_part = fut__loop_part_register(&part);
}

static struct task_state *get_state(fut_loop_t *loop) {
  struct task_state *ts = fut__loop_part(loop, task_part);
  if (ts)
    return ts;
  if (!(ts = fut__calloc(1, sizeof *ts)))
    return NULL;
  fut__q_init(&ts->tasks);
  fut__loop_part_set(loop, task_part, ts);
  return ts;
}

/* A task pending at close: give it its last run, every suspension
 * returning -ECANCELED at once, so it cleans up and returns. */
static void close_task(struct task *t) {
  fut_t *f = &t->x.fut;
  fut__report_exception(f->loop, "Task was destroyed but it is pending!", 0, f,
                        NULL, t->name);
  if (t->state == T_CREATED) {
    t->rc = -ECANCELED;
    t->state = T_DONE;
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
    t->rc = -ECANCELED;
    t->state = T_DONE;
    t->abandoned = true;
    finish(t);
    return;
  }
  t->closing_wake = true;
  /* Every suspension point returns at once now: the task runs to its end
   * (finish() may free it). */
  resume(t);
}

static void task_close(fut_loop_t *loop, void *state) {
  struct task_state *ts = state;
  (void)loop;
  ts->closing = true;
  struct fut__qnode *n;
  while ((n = fut__q_first(&ts->tasks)))
    close_task(fut__q_data(n, struct task, node));
  fut__stack_cache_clear(&ts->cache);
  fut__free(ts);
}

/* ---- creation ------------------------------------------------------------ */

void fut_task_opts_init(fut_task_opts_t *opts) {
  if (opts) {
    opts->stack_size = FUT_TASK_DEFAULT_STACK;
    opts->name = NULL;
  }
}

static void task_destroy(fut_t *f) {
  struct task *t = task_of(f);
  drop_staged(t);
  fut__free(t->name);
  fut__free(t->cancel_msg);
  fut__free(t->fail_msg);
  fut__free(t);
}

static bool task_cancel(fut_t *f, const char *msg);

static const struct fut__ops task_ops = {
    .type_name = "task",
    .cancel = task_cancel,
    .destroy = task_destroy,
};

int fut_create_task(fut_loop_t *loop, fut_task_fn fn, void *arg,
                    const fut_task_opts_t *opts, fut_t **out) {
  if (!out)
    return fut__error(-EINVAL, "fut_create_task: NULL out");
  *out = NULL;
  if (!loop || !fn)
    return fut__error(-EINVAL, "fut_create_task: NULL %s",
                      !loop ? "loop" : "function");
  int err = fut__check_usable(loop);
  if (err)
    return err;
  size_t want =
      opts && opts->stack_size ? opts->stack_size : FUT_TASK_DEFAULT_STACK;
  size_t size = fut__stack_round(want);
  if (want < FUT_TASK_MIN_STACK || size == 0)
    return fut__error(-EINVAL,
                      "fut_create_task: stack size %zu is out of "
                      "range [%u, 4 GiB]",
                      want, FUT_TASK_MIN_STACK);
  struct task_state *ts = get_state(loop);
  if (!ts)
    return fut__error(-ENOMEM, "fut_create_task: out of memory");
  fut__stack_guard_setup();
  if (ts->closing)
    return fut__error(FUT_E_CLOSED, "fut_create_task: the loop is closing");
  struct task *t = fut__calloc(1, sizeof *t);
  if (!t)
    return fut__error(-ENOMEM, "fut_create_task: out of memory");
  uint64_t id = ++ts->next_id;
  if (opts && opts->name) {
    t->name = fut__strdup(opts->name);
  } else {
    char buf[32];
    snprintf(buf, sizeof buf, "Task-%llu", (unsigned long long)id);
    t->name = fut__strdup(buf);
  }
  if (!t->name) {
    fut__free(t);
    return fut__error(-ENOMEM, "fut_create_task: out of memory");
  }
  if ((err = fut__stack_get(&ts->cache, size, &t->stack))) {
    fut__free(t->name);
    fut__free(t);
    return err;
  }
  /* Reserve the first step's queue slot before the future exists, so no
   * failure can follow its creation. */
  if ((err = fut__ring_push(&loop->ready, step, t))) {
    fut__stack_put(&ts->cache, &t->stack);
    fut__free(t->name);
    fut__free(t);
    return err;
  }
  err = fut__ext_init(loop, &t->x, &task_ops);
  FUT__ASSERT(err == 0); /* usability was checked above */
#if defined(FUT__TSAN)
  t->tsan_fiber = __tsan_create_fiber(0);
#endif
  fut__ctx_make(&t->ctx, fut__stack_lo(&t->stack), t->stack.size, task_entry,
                t);
  t->ts = ts;
  t->fn = fn;
  t->arg = arg;
  t->state = T_CREATED;
  fut__q_insert_head(&ts->tasks, &t->node);
  ts->ntasks++;
  t->x.fut.refs++; /* the run reference, dropped by finish() */
  *out = &t->x.fut;
  return 0;
}

/* ---- introspection ------------------------------------------------------- */

const char *fut_task_get_name(const fut_t *f) {
  return fut_is_task(f) ? task_of(f)->name : NULL;
}

int fut_task_set_name(fut_t *f, const char *name) {
  if (!fut_is_task(f) || !name)
    return fut__error(-EINVAL, "fut_task_set_name: %s",
                      !name ? "NULL name" : "not a task");
  char *copy = fut__strdup(name);
  if (!copy)
    return fut__error(-ENOMEM, "fut_task_set_name: out of memory");
  struct task *t = task_of(f);
  fut__free(t->name);
  t->name = copy;
  return 0;
}

size_t fut_task_stack_size(const fut_t *f) {
  return fut_is_task(f) ? task_of(f)->stack.size : 0;
}

fut_t *fut_current_task(fut_loop_t *loop) {
  struct task *t = sched.current;
  if (!t || (loop && t->x.fut.loop != loop))
    return NULL;
  return &t->x.fut;
}

size_t fut_all_tasks(fut_loop_t *loop, fut_t **out, size_t cap) {
  if (!loop || !fut__loop_part(loop, task_part))
    return 0;
  struct task_state *ts = fut__loop_part(loop, task_part);
  size_t i = 0;
  struct fut__qnode *n;
  FUT__Q_FOREACH(n, &ts->tasks) {
    if (i == cap || !out)
      break;
    out[i++] = &fut__q_data(n, struct task, node)->x.fut;
  }
  return ts->ntasks;
}

unsigned fut_task_cancelling(const fut_t *f) {
  return fut_is_task(f) ? task_of(f)->ncancels : 0;
}

unsigned fut_task_uncancel(fut_t *f) {
  if (!fut_is_task(f))
    return 0;
  struct task *t = task_of(f);
  if (t->ncancels > 0 && --t->ncancels == 0)
    t->must_cancel = false; /* asyncio 3.13: withdraw an undelivered one */
  return t->ncancels;
}

bool fut__task_guard_hit(const void *addr, const char **name, size_t *size) {
  struct task *t = sched.current;
  if (!t || !t->stack.map)
    return false;
  const char *g = t->stack.map;
  size_t guard = t->stack.map_size - t->stack.size;
  if ((const char *)addr < g || (const char *)addr >= g + guard)
    return false;
  *name = t->name;
  *size = t->stack.size;
  return true;
}

/* ---- cancellation -------------------------------------------------------- */

static bool task_cancel(fut_t *f, const char *msg) {
  struct task *t = task_of(f);
  /* An await cycle (this task awaits, maybe through combinators, a future
   * that awaits this task) led the cancel back here: going round again
   * would recurse until the stack overflows (asyncio: RecursionError).
   * The request is already being made; refuse this echo of it. */
  if (t->in_cancel)
    return false;
  t->ncancels++;
  char *copy = msg ? fut__strdup(msg) : NULL;
  if (copy || !msg) {
    fut__free(t->cancel_msg);
    t->cancel_msg = copy;
  }
  /* The waiter stays cancellable: if it is a task that ignores the cancel,
   * a later cancel of ours reaches it again. */
  if (t->waiter) {
    t->in_cancel = true;
    bool taken = fut_cancel(t->waiter, msg);
    t->in_cancel = false;
    if (taken)
      return true;
  }
  /* Not awaiting, or the waiter is already done and its wakeup is queued:
   * the next suspension point delivers it. */
  t->must_cancel = true;
  return true;
}

/* ---- suspension points --------------------------------------------------- */

static struct task *current_or_error(const char *what) {
  struct task *t = sched.current;
  if (!t)
    fut__error(FUT_E_NOT_IN_TASK, "%s called outside a task", what);
  return t;
}

/* The delivered outcome of a suspension: a pending cancel wins. */
static int after_resume(struct task *t) {
  if (t->closing_wake)
    return -ECANCELED;
  if (t->must_cancel) {
    t->must_cancel = false;
    return -ECANCELED;
  }
  return 0;
}

static void wakeup(fut_t *f, void *arg) {
  struct task *t = arg;
  FUT__ASSERT(t->waiter == f && t->state == T_SUSPENDED);
  t->waiter = NULL;
  fut_unref(f);
  resume(t);
}

/* Waits for the pending future f. */
static int wait_on(struct task *t, fut_t *f) {
  if (t->closing_wake || t->ts->closing)
    return -ECANCELED;
  int err = fut_add_done_callback(f, wakeup, t);
  if (err)
    return err;
  t->waiter = fut_ref(f);
  if (t->must_cancel && fut_cancel(f, t->cancel_msg))
    t->must_cancel = false;
  t->state = T_SUSPENDED;
  switch_out(t, false);
  return after_resume(t);
}

static int await_common(fut_t *f, const char *what) {
  struct task *t = current_or_error(what);
  if (!t)
    return FUT_E_NOT_IN_TASK;
  if (!f)
    return fut__error(-EINVAL, "%s: NULL future", what);
  if (f == &t->x.fut)
    return fut__error(-EINVAL, "%s: task '%s' cannot await itself", what,
                      t->name);
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
  struct task *t = current_or_error("fut_yield");
  if (!t)
    return FUT_E_NOT_IN_TASK;
  if (t->closing_wake || t->ts->closing)
    return -ECANCELED;
  int err = fut__ring_push(&t->x.fut.loop->ready, step, t);
  if (err)
    return err;
  t->state = T_SUSPENDED;
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
  struct task *t = current_or_error("fut_sleep");
  if (!t)
    return FUT_E_NOT_IN_TASK;
  fut_loop_t *loop = t->x.fut.loop;
  fut_t *f;
  fut_handle_t *h;
  int err = fut_new(loop, &f);
  if (err)
    return err;
  if ((err = fut_loop_call_later(loop, ns, sleep_done, f, &h))) {
    fut_unref(f);
    return err;
  }
  err = fut_await(f, NULL);
  fut_handle_cancel(h);
  fut_handle_unref(h);
  fut_unref(f);
  return err;
}

/* ---- results ------------------------------------------------------------- */

int fut_task_return_i64(int64_t value) {
  struct task *t = current_or_error("fut_task_return_i64");
  if (!t)
    return FUT_E_NOT_IN_TASK;
  drop_staged(t);
  t->rkind = FUT__V_I64;
  t->res.i64 = value;
  return 0;
}

int fut_task_return_ptr(void *ptr, fut_free_fn dtor) {
  struct task *t = current_or_error("fut_task_return_ptr");
  if (!t)
    return FUT_E_NOT_IN_TASK;
  drop_staged(t);
  t->rkind = FUT__V_PTR;
  t->res.p.ptr = ptr;
  t->res.p.dtor = dtor;
  return 0;
}

int fut_task_return_bytes(const void *data, size_t len) {
  struct task *t = current_or_error("fut_task_return_bytes");
  if (!t)
    return FUT_E_NOT_IN_TASK;
  if (len > 0 && !data)
    return fut__error(-EINVAL,
                      "fut_task_return_bytes: NULL data with "
                      "length %zu",
                      len);
  void *copy = fut__bytes_dup(data, len);
  if (!copy)
    return fut__error(-ENOMEM,
                      "fut_task_return_bytes: out of memory for "
                      "%zu bytes",
                      len);
  drop_staged(t);
  t->rkind = FUT__V_BYTES;
  t->res.b.data = copy;
  t->res.b.len = len;
  return 0;
}

int fut_task_fail(int err, const char *fmt, ...) {
  if (err >= 0)
    return fut__error(-EINVAL,
                      "fut_task_fail: the code must be negative, "
                      "got %d",
                      err);
  struct task *t = sched.current;
  if (!t || !fmt)
    return err;
  va_list ap;
  va_start(ap, fmt);
  char *msg = fut__vasprintf(fmt, ap);
  va_end(ap);
  if (msg) {
    fut__free(t->fail_msg);
    t->fail_msg = msg;
  }
  return err;
}
