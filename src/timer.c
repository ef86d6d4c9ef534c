/* Timers: call_later / call_at handles in a binary min-heap ordered by
 * (deadline, sequence), so equal deadlines fire FIFO.  Each handle knows
 * its heap index, which makes cancel an O(log n) removal that releases the
 * timer at once. */
#include "internal.h"

static inline bool before(const fut_handle_t *a, const fut_handle_t *b) {
  if (a->when != b->when)
    return a->when < b->when;
  /* Sequence numbers wrap: compare by signed distance. */
  return (int32_t)(a->seq - b->seq) < 0;
}

static inline void place(fut_loop_t *loop, uint32_t i, fut_handle_t *h) {
  loop->heap[i] = h;
  h->heap_idx = i;
}

static void sift_up(fut_loop_t *loop, uint32_t i) {
  fut_handle_t *h = loop->heap[i];
  while (i > 0) {
    uint32_t parent = (i - 1) / 2;
    if (!before(h, loop->heap[parent]))
      break;
    place(loop, i, loop->heap[parent]);
    i = parent;
  }
  place(loop, i, h);
}

static void sift_down(fut_loop_t *loop, uint32_t i) {
  fut_handle_t *h = loop->heap[i];
  uint32_t n = loop->heap_len;
  for (;;) {
    uint32_t c = 2 * i + 1;
    if (c >= n)
      break;
    if (c + 1 < n && before(loop->heap[c + 1], loop->heap[c]))
      c++;
    if (!before(loop->heap[c], h))
      break;
    place(loop, i, loop->heap[c]);
    i = c;
  }
  place(loop, i, h);
}

int fut__timer_push(fut_loop_t *loop, fut_handle_t *h) {
  if (loop->heap_len == loop->heap_cap) {
    uint32_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
    fut_handle_t **heap = fut__realloc(loop->heap, sizeof *heap * cap);
    if (!heap)
      return fut__error(-ENOMEM, "timer heap: out of memory");
    loop->heap = heap;
    loop->heap_cap = cap;
  }
  h->seq = loop->timer_seq++;
  place(loop, loop->heap_len++, h);
  sift_up(loop, h->heap_idx);
  return 0;
}

void fut__timer_remove(fut_loop_t *loop, fut_handle_t *h) {
  uint32_t i = h->heap_idx;
  FUT__ASSERT(i < loop->heap_len && loop->heap[i] == h);
  h->heap_idx = FUT__NOT_IN_HEAP;
  fut_handle_t *last = loop->heap[--loop->heap_len];
  if (i == loop->heap_len)
    return;
  place(loop, i, last);
  if (i > 0 && before(last, loop->heap[(i - 1) / 2]))
    sift_up(loop, i);
  else
    sift_down(loop, i);
}

/* Moves every timer due at `now` to the ready queue in deadline order; the
 * heap's reference becomes the queue's. */
void fut__timers_expire(fut_loop_t *loop, uint64_t now) {
  while (loop->heap_len > 0) {
    fut_handle_t *h = loop->heap[0];
    if (h->when > now)
      break;
    if (fut__ring_push(&loop->ready, fut__handle_run, h) != 0)
      break; /* out of memory: retry on the next tick, the timer stays */
    fut__timer_remove(loop, h);
  }
}

void fut__timers_clear(fut_loop_t *loop) {
  while (loop->heap_len > 0) {
    fut_handle_t *h = loop->heap[loop->heap_len - 1];
    fut__timer_remove(loop, h);
    h->flags |= FUT__H_CANCELLED;
    fut_handle_unref(h);
  }
}
