/* libfuture — the task layer's private interface: stackful coroutines
 * (task.c: creation, introspection, cancellation, results; await.c: the
 * switches, suspension points, a task's end), their stacks and context
 * switch (ctx.h, stack.c), timeout scopes (timeout.c).  Includes the future
 * layer.  Never installed. */
#ifndef FUT_TASK_INTERNAL_H
#define FUT_TASK_INTERNAL_H

#include "future/internal.h"
#include "task/ctx.h"

/* Close rank of the tasks' loop part: above the combinators, which close
 * after the tasks finished. */
#define FUT__RANK_TASKS 40

/* ---- tasks (task.c, await.c) ------------------------------------------- */

enum fut__task_run_state {
  FUT__T_CREATED,   /* first step queued, never ran */
  FUT__T_RUNNING,   /* on the CPU */
  FUT__T_SUSPENDED, /* switched away, waiting for a wakeup or a step */
  FUT__T_DONE       /* fn returned; the outcome is set right after */
};

struct fut__task_state;

/* A task's cold fields: what most tasks never set (a name, messages, an
 * error group).  Allocated at the first need (fut__task_cold), or as the
 * head of a compact task's record (compact.h); freed with the task (the
 * whole record for a compact task). */
struct fut__task_cold {
  char *name;       /* malloc'd; NULL: the default "Task-<id>",
                       formatted at the first request
                       (fut__task_name) */
  char *cancel_msg; /* last cancel message, or NULL */
  char *fail_msg;   /* fut_task_fail's message, or NULL */
  void *sync_group; /* the sync layer's error group raised last
                       by a TaskGroup exit in this task, or NULL;
                       released at destruction */
  int fail_code;    /* the code fut_task_fail was given with it */
};

/* A task, 144 bytes (task.c checks it), from its loop's task slab.  Two
 * things live in its future's fields while the future is pending (the
 * future layer does not read them then, future/internal.h): its function
 * and argument in x.fut.r until its first step, then the result staged by
 * fut_task_return_* (fut__task_staged); and fn's return code in
 * x.fut.ext between fn's return and the outcome. */
struct fut__task {
  struct fut__ext x;           /* the task's future; first for container_of */
  struct fut__ctx ctx;         /* saved context while not running */
  struct fut__stack stack;     /* mapped until the task is done */
  fut_t *waiter;               /* the awaited pending future (a reference),
                                  NULL while not awaiting one */
  uint64_t id;                 /* creation number, for the default name */
  void *sync_ctx;              /* the sync layer's context variables (opaque
                                  here): given by fut__task_hooks->inherit at
                                  creation, released at destruction */
  struct fut__task_cold *cold; /* NULL until a cold field is set */
  uint32_t ncancels;           /* cancel requests not withdrawn (cancelling) */
  uint8_t state;               /* enum fut__task_run_state */
  uint8_t rkind;               /* FUT__V_*: staged result for a 0 return */
  uint8_t must_cancel : 1;     /* a cancel waits for the next suspension */
  uint8_t closing_wake : 1;    /* resumed by loop close, not by its waiter */
  uint8_t abandoned : 1;       /* ended without returning: frames dropped */
  uint8_t in_cancel : 1;       /* the cancel is cancelling the waiter */
  uint8_t compact : 1;         /* created with FUT_TASK_COMPACT */
  uint8_t has_cmp : 1;         /* cold heads a compact record (a compact
                                  task not ended yet): tested on every
                                  switch */
#if defined(FUT__ASAN)
  void *asan_fake; /* ASan fake stack while switched away */
#endif
#if defined(FUT__TSAN)
  void *tsan_fiber; /* TSan fiber of this task */
#endif
};

/* Per loop (the tasks' loop part, task.c). */
struct fut__task_state {
  size_t ntasks;                 /* tasks not done: the slots of the loop's
                                    task slab whose state is not
                                    FUT__T_DONE (task.c, listed) */
  uint64_t next_id;              /* for default names Task-<n> */
  bool closing;                  /* fut_loop_close is finishing tasks */
  struct fut__stack_cache cache; /* stacks of finished tasks */
  struct fut__run_stacks *run;   /* compact tasks' run stacks, or NULL */
};

/* The loop part holding each loop's struct fut__task_state (task.c). */
extern int fut__task_part;

/* The task state of t's loop (valid until the loop closes). */
static inline struct fut__task_state *
fut__task_state_of(const struct fut__task *t) {
  return (struct fut__task_state *)fut__loop_part(t->x.fut.loop,
                                                  fut__task_part);
}

/* Whether t's suspension points fail at once: its last run at loop close,
 * or the loop closing. */
static inline bool fut__task_closing(const struct fut__task *t) {
  return t->closing_wake || fut__task_state_of(t)->closing;
}

/* t's cold fields, allocated zeroed on first use; NULL when out of
 * memory (nothing recorded). */
struct fut__task_cold *fut__task_cold(struct fut__task *t);

/* The task's given name, or NULL (the default, not formatted yet). */
static inline const char *fut__task_given_name(const struct fut__task *t) {
  return t->cold ? t->cold->name : NULL;
}

/* The compact record of a compact task not ended yet, else NULL. */
static inline struct fut__compact *fut__task_cmp(const struct fut__task *t) {
  return t->has_cmp ? (struct fut__compact *)(void *)t->cold : NULL;
}

/* A new task's function and argument: in its future's result union
 * until its first step. */
struct fut__task_start {
  fut_task_fn fn;
  void *arg;
};

/* fn's return code, kept in the future's free word from fn's return to
 * the outcome (finish, await.c). */
static inline void fut__task_set_rc(struct fut__task *t, int rc) {
  t->x.fut.ext = (uint32_t)rc;
}

/* The staged result (fut_task_return_*): the future's result union,
 * unused while it is pending. */
static inline union fut__value *fut__task_staged(struct fut__task *t) {
  return &t->x.fut.r.v;
}

static inline struct fut__task *fut__task_of(const fut_t *f) {
  return fut__container_of(f, struct fut__task, x.fut);
}

/* The task's name, the default one formatted on first use (no malloc per
 * task: most are never asked for theirs).  Never NULL: "Task-?" if
 * memory runs out formatting it.  Valid while the task lives. */
const char *fut__task_name(struct fut__task *t);

/* Releases the staged result (the task owned it). */
static inline void fut__task_drop_staged(struct fut__task *t) {
  fut__value_clear(t->rkind, fut__task_staged(t));
  t->rkind = FUT__V_NONE;
}

/* The sync layer's per-task data (context variables, a raised error
 * group), opaque to this layer: set once, from a constructor, before any
 * task exists.  inherit(parent) gives a new task's sync_ctx (parent: the
 * task running when it is created, or NULL); release(ctx, group) frees a
 * task's two fields when the task is freed.  NULL: no such data. */
struct fut__task_hooks {
  void *(*inherit)(struct fut__task *parent);
  void (*release)(void *ctx, void *group);
};
extern const struct fut__task_hooks *fut__task_hooks;

/* await.c */
/* Prepares a new task's context (and sanitizer fiber) so that its first
 * switch runs fn(arg), as stored in the future by fut_create_task. */
void fut__task_init_ctx(struct fut__task *t);
/* Ready-queue entry: a task's first step, or the step after a yield. */
void fut__task_step(void *t);
/* The task running on this thread, NULL on the scheduler. */
struct fut__task *fut__task_running(void);
/* The running task, or NULL with FUT_E_NOT_IN_TASK recorded for `what`. */
struct fut__task *fut__task_current(const char *what);
/* A task pending at loop close: gives it its last run, every suspension
 * returning -ECANCELED at once, so it cleans up and returns; it leaves
 * ts->tasks. */
void fut__task_close(struct fut__task *t);

#include "task/compact.h"

#endif
