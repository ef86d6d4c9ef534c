/* Tasks: stackful coroutines that await futures (asyncio.Task).  This file
 * makes them, names them, cancels them and stages their results; await.c
 * runs them (switches, suspension points, a task's end).
 *
 * Cancelling a task cancels its waiter, or records must_cancel when there
 * is none to cancel, delivered as -ECANCELED by the next suspension point.
 *
 * Lifetime: the loop holds one reference to each task from creation until
 * the task is done (the "run reference"), so fire-and-forget is safe.  At
 * fut_loop_close, tasks still pending are resumed one last time with every
 * suspension point returning -ECANCELED at once, so their clean-up code
 * runs and their stacks are released (asyncio closes their coroutines). */
#include "task/internal.h"

#include <string.h>

#if defined(FUT__ASAN)
#include <sanitizer/asan_interface.h>
#endif

static const struct fut__ops task_ops;

bool fut_is_task(const fut_t *f) {
  return f && fut__ops_of(f) == &task_ops;
}

/* Whether a slot of the task slab holds a task not done: one in the
 * loop's list (created, and finish() not run yet). */
static bool listed(const struct fut__task *t) {
  return t->state != FUT__T_DONE;
}

/* ---- per-loop state ------------------------------------------------------ */

static void task_close(fut_loop_t *loop, void *state);

/* The loop part holding each loop's struct fut__task_state. */
int fut__task_part;

/* What the task object's size buys (docs/tasks.md, "A smaller task"):
 * 144 bytes with the assembly switch and no sanitizer. */
#if defined(FUT_CTX_ASM) && !defined(FUT__ASAN) && !defined(FUT__TSAN) &&      \
    UINTPTR_MAX == UINT64_MAX
_Static_assert(sizeof(struct fut__task) <= 144,
               "struct fut__task grew past 144 bytes: move the new field "
               "to struct fut__task_cold if most tasks leave it unset");
#endif
_Static_assert(sizeof(struct fut__task_start) <= sizeof(((fut_t *)0)->r),
               "a task's fn and arg live in its future's result union");

/* The loop is about to block: stacks cached beyond the few kept go back
 * to the kernel now, off every hot path. */
static void task_idle(fut_loop_t *loop, void *state) {
  struct fut__task_state *ts = state;
  (void)loop;
  fut__stack_cache_trim(&ts->cache, FUT__STACK_CACHE_KEEP);
}

/* A task step is reported as its task (asyncio's "Executing <Task ...>"). */
static bool task_describe(fut_cb fn, void *arg, char *buf, size_t cap) {
  if (fn != fut__task_step)
    return false;
  struct fut__task *t = arg;
  const char *name = fut__task_given_name(t);
  if (name)
    snprintf(buf, cap, "task '%s' %p", name, (void *)&t->x.fut);
  else
    snprintf(buf, cap, "task 'Task-%llu' %p", (unsigned long long)t->id,
             (void *)&t->x.fut);
  return true;
}

__attribute__((constructor)) static void task_part_init(void) {
  static const struct fut__loop_part part = {.name = "tasks",
                                             .rank = FUT__RANK_TASKS,
                                             .close = task_close,
                                             .before_block = task_idle,
                                             .describe = task_describe};
  fut__task_part = fut__loop_part_register(&part);
}

static struct fut__task_state *get_state(fut_loop_t *loop) {
  struct fut__task_state *ts = fut__loop_part(loop, fut__task_part);
  if (ts)
    return ts;
  if (!(ts = fut__calloc(1, sizeof *ts)))
    return NULL;
  fut__loop_part_set(loop, fut__task_part, ts);
  return ts;
}

static void close_one(void *obj, void *arg) {
  struct fut__task *t = obj;
  (void)arg;
  if (listed(t))
    fut__task_close(t);
}

/* At fut_loop_close: every task still pending gets its last run. */
static void task_close(fut_loop_t *loop, void *state) {
  struct fut__task_state *ts = state;
  ts->closing = true;
  /* No task can be created from here on: one walk reaches them all. */
  fut__slab_each(&loop->task_slab, close_one, NULL);
  FUT__ASSERT(ts->ntasks == 0);
  fut__compact_close(ts);
  fut__stack_cache_clear(&ts->cache);
  fut__free(ts);
}

/* ---- creation ------------------------------------------------------------ */

void fut_task_opts_init(fut_task_opts_t *opts) {
  if (opts) {
    opts->stack_size = FUT_TASK_DEFAULT_STACK;
    opts->name = NULL;
    opts->flags = 0;
  }
}

const struct fut__task_hooks *fut__task_hooks;

/* Task objects come from their loop's task slab (loop/internal.h): no
 * malloc header, and the slot of a task just freed is the next task's,
 * still in the cache.  The slab is also the list of the loop's tasks
 * (fut_all_tasks, task_close walk it).  Under ASan a free slot is
 * poisoned, so that a use after free is still reported. */
static struct fut__task *task_alloc(fut_loop_t *loop) {
  struct fut__slab *s = &loop->task_slab;
  if (FUT__UNLIKELY(s->obj_size == 0))
    fut__slab_init(s, sizeof(struct fut__task));
  struct fut__task *t = fut__slab_alloc(s);
  if (t) {
#if defined(FUT__ASAN)
    __asan_unpoison_memory_region(t, sizeof *t);
#endif
    memset(t, 0, sizeof *t);
  }
  return t;
}

static void task_free(fut_loop_t *loop, struct fut__task *t) {
  fut__slab_free(&loop->task_slab, t);
#if defined(FUT__ASAN)
  __asan_poison_memory_region(t, sizeof *t);
#endif
}

struct fut__task_cold *fut__task_cold(struct fut__task *t) {
  if (!t->cold)
    t->cold = fut__calloc(1, sizeof *t->cold);
  return t->cold;
}

/* Frees the cold fields' strings and record (not the error group, which
 * the sync layer's hook releases). */
static void free_cold(struct fut__task *t) {
  struct fut__task_cold *c = t->cold;
  if (!c)
    return;
  fut__free(c->name);
  fut__free(c->cancel_msg);
  fut__free(c->fail_msg);
  fut__free(c);
  t->cold = NULL;
}

static void task_destroy(fut_t *f) {
  struct fut__task *t = fut__task_of(f);
  fut_loop_t *loop = f->loop;
  void *group = t->cold ? t->cold->sync_group : NULL;
  if (t->sync_ctx)
    fut__ctx_live_add(loop, -1); /* loop/internal.h */
  if (fut__task_hooks && (t->sync_ctx || group))
    fut__task_hooks->release(t->sync_ctx, group);
  /* Nothing is staged any more: finish() moved it into the outcome or
   * released it, and the outcome is gone already. */
  FUT__ASSERT(t->rkind == FUT__V_NONE);
  free_cold(t);
  task_free(loop, t);
}

static bool task_cancel(fut_t *f, const char *msg);

/* The report of the task's never-retrieved exception runs in its context
 * (asyncio's Task.__del__, python/cpython#96704). */
static void *task_context(fut_t *f) {
  void *ctx = fut__task_of(f)->sync_ctx;
  if (ctx)
    fut__ctx_hooks->ref(ctx);
  return ctx;
}

static const struct fut__ops task_ops = {
    .type_name = "task",
    .cancel = task_cancel,
    .destroy = task_destroy,
    .context = task_context,
};

/* A zeroed task with its name and a stack of `size` bytes, or NULL with the
 * error in *err. */
static struct fut__task *new_task(fut_loop_t *loop, struct fut__task_state *ts,
                                  const fut_task_opts_t *opts, size_t size,
                                  int *err) {
  struct fut__task *t = task_alloc(loop);
  if (!t) {
    *err = fut__error(-ENOMEM, "fut_create_task: out of memory");
    return NULL;
  }
  t->id = ++ts->next_id;
  /* The default name is formatted when first asked for (fut__task_name). */
  if (opts && opts->name) {
    struct fut__task_cold *c = fut__task_cold(t);
    if (!c || !(c->name = fut__strdup(opts->name))) {
      free_cold(t);
      task_free(loop, t);
      *err = fut__error(-ENOMEM, "fut_create_task: out of memory");
      return NULL;
    }
  }
  if ((*err = opts && (opts->flags & FUT_TASK_COMPACT)
                  ? fut__compact_init(ts, t, size, loop->debug)
                  : fut__stack_get(&ts->cache, size, &t->stack))) {
    free_cold(t);
    task_free(loop, t);
    return NULL;
  }
  return t;
}

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
  if (opts && (opts->flags & ~FUT_TASK_COMPACT))
    return fut__error(-EINVAL, "fut_create_task: unknown flags 0x%x",
                      opts->flags & ~FUT_TASK_COMPACT);
  struct fut__task_state *ts = get_state(loop);
  if (!ts)
    return fut__error(-ENOMEM, "fut_create_task: out of memory");
  fut__stack_guard_setup();
  if (ts->closing)
    return fut__error(FUT_E_CLOSED, "fut_create_task: the loop is closing");
  struct fut__task *t = new_task(loop, ts, opts, size, &err);
  if (!t)
    return err;
  /* Reserve the first step's queue slot before the future exists, so no
   * failure can follow its creation. */
  if ((err = fut__ring_push(&loop->ready, fut__task_step, t))) {
    if (t->has_cmp)
      fut__compact_free(ts, t, false);
    else
      fut__stack_put(&ts->cache, &t->stack);
    free_cold(t);
    task_free(loop, t);
    return err;
  }
  err = fut__ext_init(loop, &t->x, &task_ops);
  FUT__ASSERT(err == 0); /* usability was checked above */
  /* Only the task sets its outcome (asyncio: Task.set_result raises). */
  t->x.fut.flags |= FUT__F_OWNED;
  /* fn and arg wait in the pending future's result union until the first
   * step takes them (task_entry, await.c): no field of their own. */
  struct fut__task_start start = {fn, arg};
  memcpy(&t->x.fut.r, &start, sizeof start);
  fut__task_init_ctx(t);
  t->compact = t->has_cmp;
  t->state = FUT__T_CREATED;
  if (fut__task_hooks &&
      (t->sync_ctx = fut__task_hooks->inherit(fut__task_running())))
    fut__ctx_live_add(loop, 1); /* callbacks it schedules capture it */
  ts->ntasks++;                 /* listed from now on: in the slab, not done */
  t->x.fut.refs++;              /* the run reference, dropped by finish() */
  *out = &t->x.fut;
  return 0;
}

/* ---- introspection ------------------------------------------------------- */

const char *fut__task_name(struct fut__task *t) {
  const char *given = fut__task_given_name(t);
  if (given)
    return given;
  char buf[32];
  snprintf(buf, sizeof buf, "Task-%llu", (unsigned long long)t->id);
  struct fut__task_cold *c = fut__task_cold(t);
  if (!c || !(c->name = fut__strdup(buf)))
    return "Task-?";
  return c->name;
}

const char *fut_task_get_name(const fut_t *f) {
  /* Formatting the default name on first request changes no observable
   * state: the const is the caller's view. */
  return fut_is_task(f) ? fut__task_name((struct fut__task *)fut__task_of(f))
                        : NULL;
}

int fut_task_set_name(fut_t *f, const char *name) {
  if (!fut_is_task(f) || !name)
    return fut__error(-EINVAL, "fut_task_set_name: %s",
                      !name ? "NULL name" : "not a task");
  char *copy = fut__strdup(name);
  if (!copy)
    return fut__error(-ENOMEM, "fut_task_set_name: out of memory");
  struct fut__task_cold *c = fut__task_cold(fut__task_of(f));
  if (!c) {
    fut__free(copy);
    return fut__error(-ENOMEM, "fut_task_set_name: out of memory");
  }
  fut__free(c->name);
  c->name = copy;
  return 0;
}

size_t fut_task_stack_size(const fut_t *f) {
  return fut_is_task(f) ? fut__stack_size(&fut__task_of(f)->stack) : 0;
}

bool fut_task_is_compact(const fut_t *f) {
  return fut_is_task(f) && fut__task_of(f)->compact;
}

struct all_tasks {
  fut_t **out;
  size_t cap, n;
};

static void add_listed(void *obj, void *arg) {
  struct fut__task *t = obj;
  struct all_tasks *a = arg;
  if (listed(t) && a->n < a->cap)
    a->out[a->n++] = &t->x.fut;
}

size_t fut_all_tasks(fut_loop_t *loop, fut_t **out, size_t cap) {
  if (!loop || !fut__loop_part(loop, fut__task_part))
    return 0;
  struct fut__task_state *ts = fut__loop_part(loop, fut__task_part);
  if (out && cap > 0) {
    struct all_tasks a = {out, cap, 0};
    fut__slab_each(&loop->task_slab, add_listed, &a);
  }
  return ts->ntasks;
}

unsigned fut_task_cancelling(const fut_t *f) {
  return fut_is_task(f) ? fut__task_of(f)->ncancels : 0;
}

unsigned fut_task_uncancel(fut_t *f) {
  if (!fut_is_task(f))
    return 0;
  struct fut__task *t = fut__task_of(f);
  if (t->ncancels > 0 && --t->ncancels == 0)
    t->must_cancel = false; /* asyncio 3.13: withdraw an undelivered one */
  return t->ncancels;
}

/* ---- cancellation -------------------------------------------------------- */

static bool task_cancel(fut_t *f, const char *msg) {
  struct fut__task *t = fut__task_of(f);
  /* An await cycle (this task awaits, maybe through combinators, a future
   * that awaits this task) led the cancel back here: going round again
   * would recurse until the stack overflows (asyncio: RecursionError).
   * The request is already being made; refuse this echo of it. */
  if (t->in_cancel)
    return false;
  t->ncancels++;
  /* The message replaces the last one (none: no cold fields needed). */
  if (msg || (t->cold && t->cold->cancel_msg)) {
    struct fut__task_cold *c = fut__task_cold(t);
    char *copy = msg && c ? fut__strdup(msg) : NULL;
    if (c && (copy || !msg)) {
      fut__free(c->cancel_msg);
      c->cancel_msg = copy;
    }
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

/* ---- results ------------------------------------------------------------- */

int fut_task_return_i64(int64_t value) {
  struct fut__task *t = fut__task_current("fut_task_return_i64");
  if (!t)
    return FUT_E_NOT_IN_TASK;
  fut__task_drop_staged(t);
  t->rkind = FUT__V_I64;
  fut__task_staged(t)->i64 = value;
  return 0;
}

int fut_task_return_ptr(void *ptr, fut_free_fn dtor) {
  struct fut__task *t = fut__task_current("fut_task_return_ptr");
  if (!t)
    return FUT_E_NOT_IN_TASK;
  fut__task_drop_staged(t);
  t->rkind = FUT__V_PTR;
  fut__task_staged(t)->p.ptr = ptr;
  fut__task_staged(t)->p.dtor = dtor;
  return 0;
}

int fut_task_return_bytes(const void *data, size_t len) {
  struct fut__task *t = fut__task_current("fut_task_return_bytes");
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
  fut__task_drop_staged(t);
  t->rkind = FUT__V_BYTES;
  fut__task_staged(t)->b.data = copy;
  fut__task_staged(t)->b.len = len;
  return 0;
}

int fut_task_fail(int err, const char *fmt, ...) {
  int bad = fut__check_failure_code(err, "fut_task_fail");
  if (bad)
    return bad;
  struct fut__task *t = fut__task_running();
  if (!t || !fmt)
    return err;
  va_list ap;
  va_start(ap, fmt);
  char *msg = fut__vasprintf(fmt, ap);
  va_end(ap);
  struct fut__task_cold *c = msg ? fut__task_cold(t) : NULL;
  if (c) {
    fut__free(c->fail_msg);
    c->fail_msg = msg;
    c->fail_code = err;
  } else {
    fut__free(msg);
  }
  return err;
}
