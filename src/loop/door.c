/* The loop's one thread-safe door: call_soon_threadsafe's queue plus an
 * eventfd doorbell.  Producers append under a mutex (one vector, so FIFO
 * per producer holds) and ring the doorbell only when it is not already
 * rung; the loop drains the whole queue at once by swapping vectors. */
#include "loop/internal.h"

#include <string.h>
#include <unistd.h>

int fut__door_init(fut_loop_t *loop) {
  int err = pthread_mutex_init(&loop->door.lock, NULL);
  if (err)
    return fut__error(-err, "pthread_mutex_init: %s", fut_strerror(-err));
  loop->door.ents = NULL;
  loop->door.len = loop->door.cap = 0;
  loop->door.closed = false;
  atomic_init(&loop->door.rung, false);
  return 0;
}

void fut__door_destroy(fut_loop_t *loop) {
  pthread_mutex_destroy(&loop->door.lock);
  fut__free(loop->door.ents);
  fut__free(loop->door_spare);
  loop->door.ents = loop->door_spare = NULL;
}

int fut__door_poke(fut_loop_t *loop) {
  uint64_t one = 1;
  /* EINTR is retried: a caller that believed the bell rung while it was
   * not would leave the loop asleep with a call queued.  EAGAIN means the
   * counter is saturated: already rung. */
  for (;;) {
    if (write(loop->evfd, &one, sizeof one) >= 0 || errno == EAGAIN)
      return 0;
    if (errno != EINTR)
      return -errno;
  }
}

static int call_soon_threadsafe(fut_loop_t *loop, fut_cb fn, void *arg,
                                bool capture) {
  if (!loop || !fn)
    return fut__error(-EINVAL, "fut_loop_call_soon_threadsafe: %s",
                      !loop ? "NULL loop" : "NULL callback");
  bool on_loop = fut_get_running_loop() == loop;
  if (capture) {
    /* asyncio captures the caller's context here too: the running task's
     * (or context-bound callback's) on the loop's thread, a task's of
     * another loop or a fut_to_thread function's elsewhere. */
    void *ctx = on_loop          ? fut__ctx_capture(loop)
                : fut__ctx_hooks ? fut__ctx_hooks->capture_here()
                                 : NULL;
    if (FUT__UNLIKELY(ctx)) {
      struct fut__ctx_call *c = fut__ctx_call_new(loop, ctx, arg);
      if (!c)
        return -ENOMEM;
      c->fn.cb = fn;
      int err = call_soon_threadsafe(loop, fut__ctx_call_run, c, false);
      if (err)
        fut__ctx_call_free(c);
      return err;
    }
  }
  /* From the thread running the loop there is one queue, as in asyncio:
   * what the door already holds goes first, then this call, then whatever
   * call_soon adds later. */
  if (on_loop) {
    if (fut__door_rung(loop) || loop->backlog_len)
      fut__door_drain(loop);
    if (!loop->backlog_len)
      return fut__ring_push(&loop->ready, fn, arg);
  }
  struct fut__door *q = &loop->door;
  pthread_mutex_lock(&q->lock);
  if (q->closed) {
    pthread_mutex_unlock(&q->lock);
    return fut__error(FUT_E_CLOSED, "fut_loop_call_soon_threadsafe: the loop "
                                    "is closed");
  }
  /* The loop's own thread while nobody runs it: the ready queue is ours
   * (a run on another thread starts under this lock), so the call joins
   * call_soon's order, unless the door holds earlier calls. */
  if (!loop->running &&
      pthread_equal(atomic_load_explicit(&loop->owner, memory_order_relaxed),
                    pthread_self()) &&
      q->len == 0 && loop->backlog_len == 0) {
    int err = fut__ring_push(&loop->ready, fn, arg);
    pthread_mutex_unlock(&q->lock);
    return err;
  }
  if (q->len == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 64;
    struct fut__door_ent *ents = fut__realloc(q->ents, sizeof *ents * cap);
    if (!ents) {
      pthread_mutex_unlock(&q->lock);
      return fut__error(-ENOMEM, "fut_loop_call_soon_threadsafe: out of "
                                 "memory");
    }
    q->ents = ents;
    q->cap = cap;
  }
  q->ents[q->len++] = (struct fut__door_ent){fn, arg};
  /* Written under the lock so close() cannot close the eventfd between the
   * check above and the write. */
  if (!atomic_exchange(&q->rung, true)) {
    int err = fut__door_poke(loop);
    if (FUT__UNLIKELY(err)) {
      /* The loop would never learn of the call: take it back (the bell
       * was not rung, so the door held nothing else since its drain). */
      q->len--;
      atomic_store(&q->rung, false);
      pthread_mutex_unlock(&q->lock);
      return fut__error(err,
                        "fut_loop_call_soon_threadsafe: waking the "
                        "loop: %s",
                        fut_strerror(err));
    }
  }
  pthread_mutex_unlock(&q->lock);
  return 0;
}

int fut_loop_call_soon_threadsafe(fut_loop_t *loop, fut_cb fn, void *arg) {
  return call_soon_threadsafe(loop, fn, arg, true);
}

int fut__call_soon_threadsafe_nocapture(fut_loop_t *loop, fut_cb fn,
                                        void *arg) {
  return call_soon_threadsafe(loop, fn, arg, false);
}

/* Moves door_spare[at, at + len) into the ready queue.  The queue only
 * fails to take an entry when it is full and cannot grow (out of memory):
 * the rest stays as the backlog, in order, and the doorbell is poked so the
 * next poll does not block; the queue drains meanwhile, so the backlog
 * moves on at the latest by the next tick.  Nothing is dropped. */
static bool move_ready(fut_loop_t *loop, size_t at, size_t len) {
  struct fut__door_ent *ents = loop->door_spare;
  for (size_t i = 0; i < len; i++) {
    if (FUT__UNLIKELY(
            fut__ring_push(&loop->ready, ents[at + i].fn, ents[at + i].arg))) {
      loop->backlog_at = at + i;
      loop->backlog_len = len - i;
      /* The bell stays rung while a backlog waits: call_soon's hot path
       * tests only the bell (one load) to keep the one FIFO. */
      atomic_store(&loop->door.rung, true);
      (void)fut__door_poke(loop);
      return false;
    }
  }
  loop->backlog_at = loop->backlog_len = 0;
  return true;
}

void fut__door_drain(fut_loop_t *loop) {
  struct fut__door *q = &loop->door;
  /* Reset the doorbell before taking the queue: a producer that comes
   * after the swap rings again, one that comes before is swapped in. */
  uint64_t v;
  /* EINTR is retried, else the counter stays set and the next poll
   * returns at once for nothing.  EAGAIN: nothing to reset.  Any other
   * failure leaves the counter set: the next poll wakes the loop and this
   * read is tried again; the door is drained either way. */
  while (read(loop->evfd, &v, sizeof v) < 0 && errno == EINTR) {
  }
  /* What an earlier drain could not queue goes first (FIFO), and the door
   * is not swapped until it is gone: the spare vector still holds it. */
  if (FUT__UNLIKELY(loop->backlog_len) &&
      !move_ready(loop, loop->backlog_at, loop->backlog_len))
    return;
  pthread_mutex_lock(&q->lock);
  struct fut__door_ent *ents = q->ents;
  size_t n = q->len, cap = q->cap;
  q->ents = loop->door_spare;
  q->cap = loop->door_spare_cap;
  q->len = 0;
  atomic_store(&q->rung, false);
  pthread_mutex_unlock(&q->lock);
  loop->door_spare = ents;
  loop->door_spare_cap = cap;
  move_ready(loop, 0, n);
}

void fut__door_close(fut_loop_t *loop) {
  struct fut__door *q = &loop->door;
  pthread_mutex_lock(&q->lock);
  q->closed = true;
  struct fut__door_ent *ents = q->ents;
  size_t n = q->len;
  q->ents = NULL;
  q->len = q->cap = 0;
  pthread_mutex_unlock(&q->lock);
  for (size_t i = 0; i < n; i++)
    fut__release_entry(ents[i].fn, ents[i].arg);
  fut__free(ents);
  for (size_t i = 0; i < loop->backlog_len; i++) {
    struct fut__door_ent *e = &loop->door_spare[loop->backlog_at + i];
    fut__release_entry(e->fn, e->arg);
  }
  loop->backlog_at = loop->backlog_len = 0;
}
