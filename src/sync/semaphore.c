/* asyncio.Semaphore and BoundedSemaphore, with CPython 3.12's FIFO rules:
 * release() hands a unit straight to the first live waiter (the counter is
 * decremented for it at wake time), an acquire never jumps ahead of live
 * waiters, and a waiter woken then cancelled before it ran gives its unit
 * back and wakes as many others as the counter allows. */
#include "sync/internal.h"

#include <limits.h>

struct fut_sem {
  struct fut__qnode waiters; /* struct fut__waiter, FIFO; on task stacks */
  fut_loop_t *loop;          /* bound by the first wait; NULL before */
  unsigned value;            /* units free, not yet handed to a waiter */
  unsigned bound;            /* BoundedSemaphore: the initial value */
  bool bounded;              /* release() above `bound` is an error */
};

static int sem_new(unsigned value, bool bounded, fut_sem_t **out,
                   const char *what) {
  if (!out)
    return fut__error(-EINVAL, "%s: out is NULL", what);
  *out = NULL;
  fut_sem_t *s = fut__calloc(1, sizeof *s);
  if (!s)
    return -ENOMEM;
  fut__q_init(&s->waiters);
  s->value = value;
  s->bound = value;
  s->bounded = bounded;
  *out = s;
  return 0;
}

int fut_sem_new(unsigned value, fut_sem_t **out) {
  return sem_new(value, false, out, "fut_sem_new");
}

int fut_bounded_sem_new(unsigned value, fut_sem_t **out) {
  return sem_new(value, true, out, "fut_bounded_sem_new");
}

int fut_sem_free(fut_sem_t *s) {
  if (!s)
    return 0;
  if (!fut__q_empty(&s->waiters))
    return fut__error(-EBUSY, "fut_sem_free: tasks wait on the semaphore");
  fut__free(s);
  return 0;
}

bool fut_sem_locked(const fut_sem_t *s) {
  return s && (s->value == 0 || (!fut__q_empty(&s->waiters) &&
                                 fut__waiters_any_live(&s->waiters)));
}

unsigned fut_sem_value(const fut_sem_t *s) {
  return s ? s->value : 0;
}

/* Hands a unit to the first waiter not woken yet; false if none. */
static bool wake_next(fut_sem_t *s) {
  if (fut__q_empty(&s->waiters) || fut__waiters_wake(&s->waiters, 1) == 0)
    return false;
  s->value--;
  return true;
}

int fut_sem_acquire(fut_sem_t *s) {
  if (!s)
    return fut__error(-EINVAL, "fut_sem_acquire: NULL semaphore");
  int err;
  fut_loop_t *loop = fut__sync_task_loop(&s->loop, "fut_sem_acquire", &err);
  if (!loop)
    return err;
  if (!fut_sem_locked(s)) {
    s->value--;
    return 0;
  }
  s->loop = loop;
  struct fut__waiter w;
  err = fut__waiter_wait(&s->waiters, &w, loop);
  if (err && fut__waiter_woken(&w))
    s->value++; /* handed a unit, but not taking it: give it back */
  fut__waiter_release(&w);
  /* Waiters that arrived meanwhile had to queue (FIFO): wake as many as
   * the counter allows. */
  while (s->value > 0 && wake_next(s))
    ;
  return err;
}

int fut_sem_release(fut_sem_t *s) {
  if (!s)
    return fut__error(-EINVAL, "fut_sem_release: NULL semaphore");
  int err = s->loop ? fut__sync_check_loop(s->loop, "fut_sem_release") : 0;
  if (err)
    return err;
  if (s->bounded && s->value >= s->bound)
    return fut__error(-EOVERFLOW,
                      "fut_sem_release: bounded semaphore released too many "
                      "times (initial value %u)",
                      s->bound);
  if (s->value == UINT_MAX)
    return fut__error(-EOVERFLOW, "fut_sem_release: counter at UINT_MAX");
  s->value++;
  wake_next(s);
  return 0;
}
