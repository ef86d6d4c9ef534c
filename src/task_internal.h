/* Private interface between task.c and combine.c: the loop's list of live
 * combinators, so that closing the loop can detach the ones still waiting
 * (each registration they hold on a child keeps them alive; without this
 * a combinator waiting on a future nobody completes would leak with it). */
#ifndef FUT_TASK_INTERNAL_H
#define FUT_TASK_INTERNAL_H

#include "internal.h"

struct fut__comb {
  struct fut__comb *prev, *next; /* the loop's live combinators */
  fut_t *self;                   /* the combinator's future (not a ref) */
  fut_done_cb kid_cb;            /* registered on each kid with cb_arg */
  void *cb_arg;
  fut_t **kids; /* nkids slots; NULL entries skipped */
  size_t nkids;
  fut_handle_t **timer; /* slot of its timer handle, or NULL */
  bool tracked;         /* linked in the loop's list */
};

/* task.c: the head of loop's combinator list (creating the loop's task
 * state), or NULL when out of memory. */
struct fut__comb **fut__task_combs(fut_loop_t *loop);

/* combine.c: at fut_loop_close, after the tasks are finished: removes
 * every combinator's registrations and timer, releasing what they held. */
void fut__comb_close_all(struct fut__comb **head);

#endif
