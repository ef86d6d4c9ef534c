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

void fut__door_poke(fut_loop_t *loop) {
  uint64_t one = 1;
  /* EAGAIN means the counter is saturated: already rung. */
  ssize_t r = write(loop->evfd, &one, sizeof one);
  (void)r;
}

int fut_loop_call_soon_threadsafe(fut_loop_t *loop, fut_cb fn, void *arg) {
  if (!loop || !fn)
    return fut__error(-EINVAL, "fut_loop_call_soon_threadsafe: %s",
                      !loop ? "NULL loop" : "NULL callback");
  struct fut__door *q = &loop->door;
  pthread_mutex_lock(&q->lock);
  if (q->closed) {
    pthread_mutex_unlock(&q->lock);
    return fut__error(FUT_E_CLOSED, "fut_loop_call_soon_threadsafe: the loop "
                                    "is closed");
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
  if (!atomic_exchange(&q->rung, true))
    fut__door_poke(loop);
  pthread_mutex_unlock(&q->lock);
  return 0;
}

void fut__door_drain(fut_loop_t *loop) {
  struct fut__door *q = &loop->door;
  /* Reset the doorbell before taking the queue: a producer that comes
   * after the swap rings again, one that comes before is swapped in. */
  uint64_t v;
  ssize_t r = read(loop->evfd, &v, sizeof v);
  (void)r;
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
  for (size_t i = 0; i < n; i++) {
    if (fut__ring_push(&loop->ready, ents[i].fn, ents[i].arg) != 0) {
      /* Out of memory: put the rest back in front and ring again, so the
       * calls run later instead of being lost. */
      pthread_mutex_lock(&q->lock);
      size_t rest = n - i;
      struct fut__door_ent *merged =
          fut__malloc(sizeof *merged * (rest + q->len + 1));
      if (merged) {
        memcpy(merged, ents + i, sizeof *merged * rest);
        memcpy(merged + rest, q->ents, sizeof *merged * q->len);
        fut__free(q->ents);
        q->ents = merged;
        q->len += rest;
        q->cap = q->len + 1;
        if (!atomic_exchange(&q->rung, true))
          fut__door_poke(loop);
      }
      pthread_mutex_unlock(&q->lock);
      FUT__ASSERT(merged != NULL);
      return;
    }
  }
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
}
