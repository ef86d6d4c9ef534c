/* Timers: call_later / call_at handles in a 4-ary min-heap ordered by
 * (deadline, sequence), so equal deadlines fire FIFO.  Slots cache the
 * deadline (comparisons rarely touch a handle) and a 4-ary heap halves the
 * depth of a binary one: with a million timers, sifting is what costs, in
 * cache misses.  Each handle knows its slot, which makes cancel an O(log n)
 * removal that releases the timer at once. */
#include "internal.h"

#define ARITY 4

static inline bool before(const struct fut__heap_ent *a,
                          const struct fut__heap_ent *b) {
  if (a->when != b->when)
    return a->when < b->when;
  /* Sequence numbers wrap: compare by signed distance. */
  return (int32_t)(a->h->seq - b->h->seq) < 0;
}

static inline void place(fut_loop_t *loop, uint32_t i,
                         struct fut__heap_ent e) {
  loop->heap[i] = e;
  e.h->heap_idx = i;
}

static void sift_up(fut_loop_t *loop, uint32_t i) {
  struct fut__heap_ent e = loop->heap[i];
  while (i > 0) {
    uint32_t parent = (i - 1) / ARITY;
    if (!before(&e, &loop->heap[parent]))
      break;
    place(loop, i, loop->heap[parent]);
    i = parent;
  }
  place(loop, i, e);
}

static void sift_down(fut_loop_t *loop, uint32_t i) {
  struct fut__heap_ent e = loop->heap[i];
  uint32_t n = loop->heap_len;
  for (;;) {
    uint32_t first = ARITY * i + 1;
    if (first >= n)
      break;
    uint32_t last = first + ARITY < n ? first + ARITY : n;
    uint32_t min = first;
    for (uint32_t c = first + 1; c < last; c++)
      if (before(&loop->heap[c], &loop->heap[min]))
        min = c;
    if (!before(&loop->heap[min], &e))
      break;
    place(loop, i, loop->heap[min]);
    i = min;
  }
  place(loop, i, e);
}

int fut__timer_push(fut_loop_t *loop, fut_handle_t *h) {
  if (loop->heap_len == loop->heap_cap) {
    uint32_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
    struct fut__heap_ent *heap = fut__realloc(loop->heap, sizeof *heap * cap);
    if (!heap)
      return fut__error(-ENOMEM, "timer heap: out of memory");
    loop->heap = heap;
    loop->heap_cap = cap;
  }
  h->seq = loop->timer_seq++;
  uint32_t i = loop->heap_len++;
  place(loop, i, (struct fut__heap_ent){h->when, h});
  sift_up(loop, i);
  return 0;
}

void fut__timer_remove(fut_loop_t *loop, fut_handle_t *h) {
  uint32_t i = h->heap_idx;
  FUT__ASSERT(i < loop->heap_len && loop->heap[i].h == h);
  h->heap_idx = FUT__NOT_IN_HEAP;
  struct fut__heap_ent last = loop->heap[--loop->heap_len];
  if (i == loop->heap_len)
    return;
  place(loop, i, last);
  if (i > 0 && before(&last, &loop->heap[(i - 1) / ARITY]))
    sift_up(loop, i);
  else
    sift_down(loop, i);
}

/* Moves every timer due at `now` to the ready queue in deadline order; the
 * heap's reference becomes the queue's. */
void fut__timers_expire(fut_loop_t *loop, uint64_t now) {
  while (loop->heap_len > 0 && loop->heap[0].when <= now) {
    fut_handle_t *h = loop->heap[0].h;
    if (fut__ring_push(&loop->ready, fut__handle_run, h) != 0)
      break; /* out of memory: retry on the next tick, the timer stays */
    fut__timer_remove(loop, h);
  }
}

void fut__timers_clear(fut_loop_t *loop) {
  while (loop->heap_len > 0) {
    fut_handle_t *h = loop->heap[loop->heap_len - 1].h;
    fut__timer_remove(loop, h);
    h->flags |= FUT__H_CANCELLED;
    fut_handle_unref(h);
  }
}
