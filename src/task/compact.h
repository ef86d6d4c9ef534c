/* Compact tasks (FUT_TASK_COMPACT, compact.c): tasks that run on a run
 * stack their loop shares among its compact tasks of one stack size; the
 * used part of a suspended one's stack (its image) is copied out to a
 * right-sized buffer when another compact task needs that stack, and back
 * at the same addresses when it resumes.  In debug mode each compact task
 * runs on a stack of its own instead, copied out and protected while it is
 * suspended, so that a use of an address of its stack faults and is
 * reported naming it.  Included by task/internal.h. */
#ifndef FUT_TASK_COMPACT_H
#define FUT_TASK_COMPACT_H

#include <stdint.h>

/* A compact task's run stack, shared by the loop's compact tasks of its
 * size (never in debug mode). */
struct fut__run_stack {
  struct fut__stack st;    /* from the loop's stack cache */
  struct fut__task *owner; /* the compact task whose frames are on it now
                              (running, or suspended and not yet copied
                              out: the copy-out is lazy), or NULL */
};
struct fut__run_stacks {
  struct fut__run_stack rs[FUT__STACK_POOLS];
  unsigned n;
};

/* A compact task's record (fut__task_cmp): the task's cold fields, then
 * its run stack and image size; its image follows it (after the debug
 * links for a debug-mode task).  When the task ends, it stays as its
 * cold fields until the task is freed. */
struct fut__compact {
  struct fut__task_cold cold; /* the task's cold fields (t->cold points
                                 here while the task runs): first */
  struct fut__run_stack *rs;  /* its run stack; NULL in debug mode */
  uint32_t len;               /* bytes of its frames (top - saved sp) at its
                                 last switch-out; 0 = it never ran */
  uint32_t cap : 30;          /* bytes its image buffer holds */
  uint32_t debug : 1;         /* a stack of its own, protected while away */
  uint32_t prot : 1;          /* debug: protected (and registered) now */
};

struct fut__task;
struct fut__task_state;

/* Sets up t (t->stack: its run stack, or in debug mode a stack of its own)
 * for a compact task with `size`-byte stacks.  Returns 0, -ENOMEM,
 * -EINVAL (more stack sizes in compact mode than the loop keeps). */
int fut__compact_init(struct fut__task_state *ts, struct fut__task *t,
                      size_t size, bool debug);
/* Whether t's context is made on its own stack at creation (not a compact
 * task on a shared run stack, whose context is made at its first run). */
bool fut__compact_ctx_at_create(const struct fut__task *t);
/* Task side, before a suspension point registers its wake-up: makes sure
 * the image buffer can hold the frames of the coming switch.  Returns 0 or
 * -ENOMEM (recorded for `what`); the task then does not suspend. */
int fut__compact_reserve(struct fut__task *t, const char *what);
/* Scheduler side, right before t is switched in: its frames onto its run
 * stack (the previous owner's copied out first). */
void fut__compact_enter(struct fut__task *t);
/* Scheduler side, right after t switched out or ended. */
void fut__compact_leave(struct fut__task *t);
/* Releases t's compact state and stack (t done or never run); abandoned:
 * its frames were dropped without returning. */
void fut__compact_free(struct fut__task_state *ts, struct fut__task *t,
                       bool abandoned);
/* At loop close, after every task ended: the run stacks go back. */
void fut__compact_close(struct fut__task_state *ts);
/* SIGSEGV handler: whether addr lies in the protected stack of a suspended
 * debug-mode compact task; then its name (NULL: the default, Task-<id>)
 * and id.  Async-signal-safe (best effort
 * against a concurrent registration on another thread). */
bool fut__compact_fault(const void *addr, const char **name, uint64_t *id);

/* await.c: makes t's first context on t->stack (a compact task's at its
 * first run on the shared run stack). */
void fut__task_make_ctx(struct fut__task *t);

#endif
