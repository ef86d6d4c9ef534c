/* Timers: call_later / call_at handles in a 4-ary min-heap ordered by
 * (deadline, sequence), so equal deadlines fire FIFO.  A timer nobody
 * can cancel (no handle asked for) lives in its heap slot alone.
 *
 * With a million timers the cost is cache misses, so the heap is built to
 * touch as little as possible: slots cache the deadline (sifting compares
 * without touching handles, which are scattered in memory), the 4-ary shape
 * halves the depth of a binary heap, and handles do not record their slot,
 * so moving a slot never writes to a handle.  Cancelling therefore only
 * flags the handle (O(1)); the heap drops cancelled timers when they reach
 * the top, and rebuilds itself without them once they are half of it, as
 * asyncio does. */
#include "internal.h"

#define ARITY 4
#define COMPACT_MIN 64 /* heaps smaller than this are never rebuilt */

static inline bool before(const struct fut__heap_ent *a,
                          const struct fut__heap_ent *b) {
  if (a->when != b->when)
    return a->when < b->when;
  /* Sequence numbers wrap: compare by signed distance. */
  return (int32_t)(a->seq - b->seq) < 0;
}

static inline fut_handle_t *handle_of(const struct fut__heap_ent *e) {
  return e->cb ? NULL : e->arg;
}

static void sift_up(struct fut__heap_ent *heap, uint32_t i) {
  struct fut__heap_ent e = heap[i];
  while (i > 0) {
    uint32_t parent = (i - 1) / ARITY;
    if (!before(&e, &heap[parent]))
      break;
    heap[i] = heap[parent];
    i = parent;
  }
  heap[i] = e;
}

static void sift_down(struct fut__heap_ent *heap, uint32_t n, uint32_t i) {
  struct fut__heap_ent e = heap[i];
  for (;;) {
    uint32_t first = ARITY * i + 1;
    if (first >= n)
      break;
    uint32_t last = first + ARITY < n ? first + ARITY : n;
    uint32_t min = first;
    for (uint32_t c = first + 1; c < last; c++)
      if (before(&heap[c], &heap[min]))
        min = c;
    if (!before(&heap[min], &e))
      break;
    heap[i] = heap[min];
    i = min;
  }
  heap[i] = e;
}

/* Removes the top.  Bottom-up: the hole walks down to a leaf along the
 * smaller children, then the last slot fills it and sifts up (it usually
 * belongs near the bottom, so this saves half the comparisons). */
static void pop_top(fut_loop_t *loop) {
  struct fut__heap_ent *heap = loop->heap;
  uint32_t n = --loop->heap_len;
  if (n == 0)
    return;
  uint32_t i = 0;
  for (;;) {
    uint32_t first = ARITY * i + 1;
    if (first >= n)
      break;
    uint32_t last = first + ARITY < n ? first + ARITY : n;
    uint32_t min = first;
    for (uint32_t c = first + 1; c < last; c++)
      if (before(&heap[c], &heap[min]))
        min = c;
    heap[i] = heap[min];
    i = min;
  }
  heap[i] = heap[n];
  sift_up(heap, i);
}

static int push(fut_loop_t *loop, uint64_t when, fut_cb cb, void *arg) {
  if (FUT__UNLIKELY(loop->heap_len == loop->heap_cap)) {
    uint32_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
    struct fut__heap_ent *heap = fut__realloc(loop->heap, sizeof *heap * cap);
    if (!heap)
      return fut__error(-ENOMEM, "timer heap: out of memory");
    loop->heap = heap;
    loop->heap_cap = cap;
  }
  uint32_t i = loop->heap_len++;
  loop->heap[i] = (struct fut__heap_ent){when, loop->timer_seq++, 0, cb, arg};
  sift_up(loop->heap, i);
  return 0;
}

int fut__timer_push_cb(fut_loop_t *loop, uint64_t when, fut_cb cb,
                       void *arg) {
  return push(loop, when, cb, arg);
}

int fut__timer_push(fut_loop_t *loop, fut_handle_t *h) {
  int err = push(loop, h->when, NULL, h);
  if (err == 0)
    h->flags |= FUT__H_IN_HEAP;
  return err;
}

/* Drops the heap's reference to a timer that left it. */
static void release(fut_loop_t *loop, fut_handle_t *h) {
  if (h->flags & FUT__H_CANCELLED) {
    loop->heap_cancelled--;
    if (h->refs == 1)
      loop->heap_zombies--;
  }
  h->flags &= (uint8_t)~FUT__H_IN_HEAP;
  fut_handle_unref(h);
}

/* Rebuilds the heap without its cancelled timers (Floyd's heapify). */
static void compact(fut_loop_t *loop) {
  struct fut__heap_ent *heap = loop->heap;
  uint32_t kept = 0, n = loop->heap_len;
  for (uint32_t i = 0; i < n; i++) {
    fut_handle_t *h = handle_of(&heap[i]);
    if (h && (h->flags & FUT__H_CANCELLED))
      release(loop, h);
    else
      heap[kept++] = heap[i];
  }
  loop->heap_len = kept;
  for (uint32_t i = kept / ARITY + 1; i-- > 0;)
    if (i < kept)
      sift_down(heap, kept, i);
}

void fut__timer_cancelled(fut_loop_t *loop, fut_handle_t *h) {
  loop->heap_cancelled++;
  if (h->refs == 1)
    loop->heap_zombies++;
  if (loop->heap_len >= COMPACT_MIN &&
      loop->heap_cancelled > loop->heap_len / 2)
    compact(loop);
}

/* Sheds cancelled timers from the top. */
static void prune(fut_loop_t *loop) {
  while (loop->heap_cancelled > 0 && loop->heap_len > 0) {
    fut_handle_t *h = handle_of(&loop->heap[0]);
    if (!h || !(h->flags & FUT__H_CANCELLED))
      break;
    pop_top(loop);
    release(loop, h);
  }
}

uint64_t fut__timer_next(fut_loop_t *loop) {
  prune(loop);
  return loop->heap_len > 0 ? loop->heap[0].when : UINT64_MAX;
}

/* Moves every timer due at `now` to the ready queue in deadline order; the
 * heap's reference becomes the queue's. */
void fut__timers_expire(fut_loop_t *loop, uint64_t now) {
  while (loop->heap_len > 0 && loop->heap[0].when <= now) {
    struct fut__heap_ent *top = &loop->heap[0];
    fut_handle_t *h = handle_of(top);
    if (!h) {
      if (fut__ring_push(&loop->ready, top->cb, top->arg) != 0)
        break; /* out of memory: retry on the next tick, the timer stays */
      pop_top(loop);
      continue;
    }
    if (h->flags & FUT__H_CANCELLED) {
      pop_top(loop);
      release(loop, h);
      continue;
    }
    if (fut__ring_push(&loop->ready, fut__handle_run, h) != 0)
      break;
    pop_top(loop);
    h->flags &= (uint8_t)~FUT__H_IN_HEAP;
  }
}

void fut__timers_clear(fut_loop_t *loop) {
  while (loop->heap_len > 0) {
    fut_handle_t *h = handle_of(&loop->heap[--loop->heap_len]);
    if (!h)
      continue; /* a bare timer: its arg stays the user's */
    h->flags |= FUT__H_CANCELLED; /* never runs: reads as cancelled */
    h->flags &= (uint8_t)~FUT__H_IN_HEAP;
    fut_handle_unref(h);
  }
  loop->heap_cancelled = loop->heap_zombies = 0;
}
