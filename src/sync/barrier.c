/* asyncio.Barrier: parties tasks meet, then all pass.  CPython builds it on
 * a Condition; here every state change simply wakes all waiters, who
 * re-check the state (the Condition's lock adds nothing on one thread with
 * no suspension between check and change).  States as CPython's:
 * FILLING (tasks arrive), DRAINING (the round passed, its tasks leave; new
 * callers wait), RESETTING (reset while tasks waited: they leave broken;
 * new callers wait), BROKEN (until reset). */
#include "sync/internal.h"

enum barrier_state { FILLING, DRAINING, RESETTING, BROKEN };

struct fut_barrier {
  struct fut__qnode waiters; /* struct fut__waiter; all woken on change */
  fut_loop_t *loop;          /* bound by the first wait; NULL before */
  unsigned parties;          /* tasks per round, >= 1 */
  unsigned count;            /* tasks inside wait() past the entry check */
  enum barrier_state state;
};

int fut_barrier_new(unsigned parties, fut_barrier_t **out) {
  if (!out)
    return fut__error(-EINVAL, "fut_barrier_new: out is NULL");
  *out = NULL;
  if (parties < 1)
    return fut__error(-EINVAL, "fut_barrier_new: parties must be >= 1");
  fut_barrier_t *b = fut__calloc(1, sizeof *b);
  if (!b)
    return -ENOMEM;
  fut__q_init(&b->waiters);
  b->parties = parties;
  b->state = FILLING;
  *out = b;
  return 0;
}

int fut_barrier_free(fut_barrier_t *b) {
  if (!b)
    return 0;
  if (!fut__q_empty(&b->waiters))
    return fut__error(-EBUSY, "fut_barrier_free: tasks wait on the barrier");
  fut__free(b);
  return 0;
}

static void changed(fut_barrier_t *b) {
  fut__waiters_wake(&b->waiters, SIZE_MAX);
}

/* Waits for the next state change (or a spurious wake-up). */
static int wait_change(fut_barrier_t *b, fut_loop_t *loop) {
  struct fut__waiter w;
  int err = fut__waiter_wait(&b->waiters, &w, loop);
  fut__waiter_release(&w);
  return err;
}

int fut_barrier_wait(fut_barrier_t *b, unsigned *index) {
  if (index)
    *index = 0;
  if (!b)
    return fut__error(-EINVAL, "fut_barrier_wait: NULL barrier");
  int err;
  fut_loop_t *loop = fut__sync_task_loop(&b->loop, "fut_barrier_wait", &err);
  if (!loop)
    return err;
  b->loop = loop;
  /* Block while the previous round drains or resets. */
  while (b->state == DRAINING || b->state == RESETTING)
    if ((err = wait_change(b, loop)))
      return err;
  if (b->state == BROKEN)
    return fut__error(FUT_E_BROKEN_BARRIER, "fut_barrier_wait: aborted");
  unsigned idx = b->count++;
  if (idx + 1 == b->parties) {
    b->state = DRAINING; /* the round passes */
    changed(b);
  } else {
    while (b->state == FILLING && !(err = wait_change(b, loop)))
      ;
    if (!err && (b->state == BROKEN || b->state == RESETTING))
      err = fut__error(FUT_E_BROKEN_BARRIER,
                       "fut_barrier_wait: abort or reset of the barrier");
  }
  /* Leaving: the last one out ends a drain or a reset. */
  if (--b->count == 0) {
    if (b->state == RESETTING || b->state == DRAINING)
      b->state = FILLING;
    changed(b);
  }
  if (!err && index)
    *index = idx;
  return err;
}

int fut_barrier_reset(fut_barrier_t *b) {
  if (!b)
    return fut__error(-EINVAL, "fut_barrier_reset: NULL barrier");
  int err = fut__sync_check_loop(b->loop, "fut_barrier_reset");
  if (err)
    return err;
  b->state = b->count > 0 ? RESETTING : FILLING;
  changed(b);
  return 0;
}

int fut_barrier_abort(fut_barrier_t *b) {
  if (!b)
    return fut__error(-EINVAL, "fut_barrier_abort: NULL barrier");
  int err = fut__sync_check_loop(b->loop, "fut_barrier_abort");
  if (err)
    return err;
  b->state = BROKEN;
  changed(b);
  return 0;
}

unsigned fut_barrier_parties(const fut_barrier_t *b) {
  return b ? b->parties : 0;
}

unsigned fut_barrier_n_waiting(const fut_barrier_t *b) {
  return b && b->state == FILLING ? b->count : 0;
}

bool fut_barrier_broken(const fut_barrier_t *b) {
  return b && b->state == BROKEN;
}

const char *fut__barrier_state_name(const fut_barrier_t *b) {
  static const char *const names[] = {"filling", "draining", "resetting",
                                      "broken"};
  return names[b->state];
}

unsigned fut__barrier_count(const fut_barrier_t *b) {
  return b->count;
}
