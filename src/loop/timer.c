/* Timers: call_later / call_at, fired in (deadline, sequence) order, so
 * equal deadlines fire FIFO, and never early.
 *
 * With a million pending timers the cost is cache misses, so the structure
 * is built to touch little memory (see struct fut__timers):
 * - later timers wait unsorted in wheel buckets (O(1) insert) or, beyond
 *   the wheel, in a far heap; when its slot comes, a bucket is radix-sorted
 *   (by the deadline's low bits, ~1 ms of them) onto the end of a sorted
 *   run, so firing is an index increment, not a heap pop; only timers
 *   started straight into a due slot go to the small near heap, merged
 *   with the run at the front;
 * - a heap or run entry caches deadline and sequence, so sifting never
 *   touches a handle, and a timer nobody can cancel (no handle asked for)
 *   lives in its entry alone: no allocation at all;
 * - a timer with a handle waits in the wheel as a 12-byte entry of its
 *   slot's handle list (the handle, 32 bytes, holds deadline and slack),
 *   and knows its index there, or in the run once flushed: cancelling
 *   unlinks it from the list (the last entry fills the hole) or leaves a
 *   tombstone in the run, in O(1), the handle released at once.  Only in
 *   the near and far heaps does cancelling flag the handle; those are shed
 *   when reached, and every tier is rebuilt without them once they are
 *   half of all timers, as asyncio does. */
#include "loop/internal.h"

#include <string.h>

#define ARITY 4
#define COMPACT_MIN 64 /* fewer timers than this are never compacted */
/* Free wheel chunks kept on the spare lists (~128 KiB); beyond, they go
 * back to their slab (tslab / hslab), which keeps its memory for the next
 * burst as the handle slab does (a slab past 2 MiB maps huge pages: a
 * burst faults once per 2 MiB, not per 4 KiB). */
#define FUT__TSPARE_MAX 64
/* A run or scratch buffer larger than this (entries, 512 KiB) is freed
 * when the run empties: a burst does not pin it either. */
#define RUN_KEEP (1u << 14)

/* ---- the heaps ---------------------------------------------------------- */

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

/* A run entry whose handle was cancelled in place (run_unlink). */
static inline bool is_tomb(const struct fut__heap_ent *e) {
  return !e->cb && !e->arg;
}

/* A lazily cancelled handle's entry (never a tombstone: callers skip
 * those first, or meet none). */
static inline bool is_cancelled(const struct fut__heap_ent *e) {
  return !e->cb && (((fut_handle_t *)e->arg)->flags & FUT__H_CANCELLED);
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

/* The timers' growable arrays (the heaps, a bucket's chunk list, the lag):
 * arr reallocated to twice *cap entries of elem bytes (first when empty).
 * Returns the new array with *cap updated, or NULL (arr and *cap kept). */
static void *grow_array(void *arr, uint32_t *cap, size_t elem, uint32_t first) {
  uint32_t n = *cap ? *cap * 2 : first;
  if (n <= *cap) /* 2^32 entries: never reached before memory runs out */
    return NULL;
  void *p = fut__realloc(arr, elem * n);
  if (p)
    *cap = n;
  return p;
}

static int heap_push(struct fut__theap *h, const struct fut__heap_ent *e) {
  if (FUT__UNLIKELY(h->len == h->cap)) {
    struct fut__heap_ent *ents = grow_array(h->ents, &h->cap, sizeof *ents, 64);
    if (!ents)
      return fut__error(-ENOMEM, "timer heap: out of memory");
    h->ents = ents;
  }
  h->ents[h->len] = *e;
  sift_up(h->ents, h->len++);
  return 0;
}

/* Removes the top.  Bottom-up: the hole walks down to a leaf along the
 * smaller children, then the last slot fills it and sifts up (it usually
 * belongs near the bottom, so this saves half the comparisons). */
static void heap_pop(struct fut__theap *h) {
  struct fut__heap_ent *heap = h->ents;
  uint32_t n = --h->len;
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

/* ---- bookkeeping ----------------------------------------------------------
 */

/* Drops a tier's reference to a cancelled timer it sheds. */
static void shed(fut_loop_t *loop, fut_handle_t *h) {
  struct fut__timers *t = &loop->timers;
  t->total--;
  t->cancelled--;
  if (h->refs == 1)
    t->zombies--;
  h->flags &= (uint8_t)~FUT__H_IN_HEAP;
  fut_handle_unref(h);
}

void fut__timers_init(fut_loop_t *loop, uint64_t now) {
  memset(&loop->timers, 0, sizeof loop->timers);
  loop->timers.cur_slot = now >> FUT__SLOT_SHIFT;
  fut__slab_init(&loop->timers.hslab, sizeof(struct fut__hchunk));
  fut__slab_init(&loop->timers.tslab, sizeof(struct fut__tchunk));
  loop->timers.hslab.huge = loop->timers.tslab.huge = true;
}

/* ---- the wheel ------------------------------------------------------------
 */

static void chunk_release(struct fut__timers *t, struct fut__tchunk *c) {
  if (t->nspare >= FUT__TSPARE_MAX) {
    fut__slab_free(&t->tslab, c);
    return;
  }
  c->next = t->spare;
  t->spare = c;
  t->nspare++;
}

/* A chunk from the spare list or malloc, or NULL (the error recorded). */
static struct fut__tchunk *chunk_get(struct fut__timers *t) {
  struct fut__tchunk *n = t->spare;
  if (n) {
    t->spare = n->next;
    t->nspare--;
  } else if (!(n = fut__slab_alloc(&t->tslab)))
    fut__error(-ENOMEM, "timer wheel: out of memory");
  return n;
}

static inline void bucket_mark(struct fut__timers *t, uint32_t b) {
  t->wheel_bits[b / 64] |= UINT64_C(1) << (b % 64);
}

static inline void bucket_unmark(struct fut__timers *t, uint32_t b) {
  t->wheel_bits[b / 64] &= ~(UINT64_C(1) << (b % 64));
}

static int wheel_add(struct fut__timers *t, uint64_t slot,
                     const struct fut__heap_ent *e) {
  uint32_t b = (uint32_t)(slot % FUT__WHEEL_SLOTS);
  struct fut__tchunk *c = t->wheel[b];
  if (!c || c->len == FUT__TCHUNK_ENTS) {
    struct fut__tchunk *n = chunk_get(t);
    if (!n)
      return -ENOMEM;
    n->next = c;
    n->len = 0;
    t->wheel[b] = c = n;
    bucket_mark(t, b);
  }
  c->ents[c->len++] = *e;
  return 0;
}

static struct fut__hchunk *hchunk_get(struct fut__timers *t) {
  struct fut__hchunk *c = t->hspare;
  if (c) {
    t->hspare = c->next;
    t->nhspare--;
  } else if (!(c = fut__slab_alloc(&t->hslab)))
    fut__error(-ENOMEM, "timer wheel: out of memory");
  return c;
}

static void hchunk_release(struct fut__timers *t, struct fut__hchunk *c) {
  if (t->nhspare >= FUT__TSPARE_MAX) {
    fut__slab_free(&t->hslab, c);
    return;
  }
  c->next = t->hspare;
  t->hspare = c;
  t->nhspare++;
}

/* Appends handle h (sequence seq) to bucket b's handle list; it records
 * its index there. */
static inline int hwheel_add(struct fut__timers *t, uint32_t b, fut_handle_t *h,
                             uint32_t seq) {
  struct fut__hbucket *hb = &t->hwheel[b];
  uint32_t i = hb->len, k = i / FUT__HCHUNK_ENTS;
  if (FUT__UNLIKELY(k == hb->nchunks)) {
    if (hb->nchunks == hb->cap) {
      struct fut__hchunk **cs = grow_array(hb->chunks, &hb->cap, sizeof *cs, 4);
      if (!cs)
        return fut__error(-ENOMEM, "timer wheel: out of memory");
      hb->chunks = cs;
    }
    struct fut__hchunk *c = hchunk_get(t);
    if (!c)
      return -ENOMEM;
    hb->chunks[hb->nchunks++] = c;
  }
  struct fut__hchunk *c = hb->chunks[k];
  c->h[i % FUT__HCHUNK_ENTS] = h;
  c->seq[i % FUT__HCHUNK_ENTS] = seq;
  hb->len = i + 1;
  h->pos = i;
  h->flags |= FUT__H_IN_HEAP | FUT__H_IN_WHEEL;
  bucket_mark(t, b);
  return 0;
}

/* Gives back a handle list's chunks beyond `keep` spare ones past its
 * length (so a timer started and cancelled in turn does not free and
 * allocate a chunk each time). */
static void hbucket_trim(struct fut__timers *t, struct fut__hbucket *hb,
                         uint32_t keep) {
  uint32_t need = (hb->len + FUT__HCHUNK_ENTS - 1) / FUT__HCHUNK_ENTS + keep;
  while (hb->nchunks > need)
    hchunk_release(t, hb->chunks[--hb->nchunks]);
}

/* Cancel: h leaves its bucket in O(1): the list's oldest entry by moving
 * the head (a burst cancelled in start order touches only its own
 * handles), any other by the last entry filling its place (that handle
 * learns its new index); the tier's reference goes. */
static struct fut__hbucket *lag_find(struct fut__timers *t, uint64_t s);

/* hwheel_unlink's general case (fut__timer_cancelled inlines the common
 * one: the head leaves and the list does not empty). */
__attribute__((noinline)) static void hwheel_unlink(fut_loop_t *loop,
                                                    fut_handle_t *h) {
  struct fut__timers *t = &loop->timers;
  uint64_t slot = h->when >> FUT__SLOT_SHIFT;
  uint32_t b = (uint32_t)(slot % FUT__WHEEL_SLOTS);
  bool lagged = slot <= t->cur_slot; /* still in the wheel: in the lag */
  struct fut__hbucket *hb = lagged ? lag_find(t, slot) : &t->hwheel[b];
  uint32_t i = h->pos;
  if (i == hb->head) {
    hb->head = i + 1;
  } else {
    uint32_t last = --hb->len;
    if (i != last) {
      struct fut__hchunk *lc = hb->chunks[last / FUT__HCHUNK_ENTS];
      struct fut__hchunk *c = hb->chunks[i / FUT__HCHUNK_ENTS];
      fut_handle_t *m = lc->h[last % FUT__HCHUNK_ENTS];
      c->h[i % FUT__HCHUNK_ENTS] = m;
      c->seq[i % FUT__HCHUNK_ENTS] = lc->seq[last % FUT__HCHUNK_ENTS];
      m->pos = i;
    }
    if (last % FUT__HCHUNK_ENTS == 0)
      hbucket_trim(t, hb, 1);
  }
  if (hb->head == hb->len) { /* emptied: start over */
    hb->head = hb->len = 0;
    hbucket_trim(t, hb, lagged ? 0 : 1);
    if (!lagged && !t->wheel[b])
      bucket_unmark(t, b);
  }
  t->total--;
  h->flags &= (uint8_t) ~(FUT__H_IN_HEAP | FUT__H_IN_WHEEL);
  if (FUT__LIKELY(h->refs > 1))
    h->refs--;
  else
    fut_handle_unref(h);
}

/* Files a timer into its tier.  The caller counts it in `total`. */
static int file(fut_loop_t *loop, const struct fut__heap_ent *e) {
  struct fut__timers *t = &loop->timers;
  uint64_t slot = e->when >> FUT__SLOT_SHIFT;
  if (slot <= t->cur_slot)
    return heap_push(&t->near, e);
  if (slot - t->cur_slot < FUT__WHEEL_SLOTS) {
    uint32_t b = (uint32_t)(slot % FUT__WHEEL_SLOTS);
    /* A handle goes to the bucket's handle list (12 bytes, O(1) cancel);
     * past the list's index range, to the chunks like a bare timer. */
    if (!e->cb && FUT__LIKELY(t->hwheel[b].len <= FUT__HPOS_MAX))
      return hwheel_add(t, b, e->arg, e->seq);
    return wheel_add(t, slot, e);
  }
  return heap_push(&t->far, e);
}

/* Sorts a[0..n) by (when, seq) into place, through tmp (n entries).  All
 * entries share one wheel slot, so the deadlines' low FUT__SLOT_SHIFT bits
 * order them: two stable radix passes, then an insertion pass that puts
 * equal deadlines in sequence order (a timer migrated from the far heap
 * can have an older sequence than ones already in the bucket) and would
 * finish the job whatever the input. */
#define RADIX_BITS 10
#define RADIX_MIN 48 /* below this, insertion sort alone */
static void sort_slot(struct fut__heap_ent *a, struct fut__heap_ent *tmp,
                      uint32_t n) {
  if (n >= RADIX_MIN) {
    struct fut__heap_ent *src = a, *dst = tmp;
    for (unsigned shift = 0; shift < 2 * RADIX_BITS; shift += RADIX_BITS) {
      uint32_t count[1u << RADIX_BITS] = {0};
      const uint64_t mask = (1u << RADIX_BITS) - 1;
      for (uint32_t i = 0; i < n; i++)
        count[(src[i].when >> shift) & mask]++;
      uint32_t sum = 0;
      for (uint32_t d = 0; d < (1u << RADIX_BITS); d++) {
        uint32_t c = count[d];
        count[d] = sum;
        sum += c;
      }
      for (uint32_t i = 0; i < n; i++)
        dst[count[(src[i].when >> shift) & mask]++] = src[i];
      struct fut__heap_ent *x = src;
      src = dst;
      dst = x;
    } /* an even number of passes: the result is back in a */
  }
  for (uint32_t i = 1; i < n; i++) {
    if (!before(&a[i], &a[i - 1]))
      continue;
    struct fut__heap_ent e = a[i];
    uint32_t j = i;
    do {
      a[j] = a[j - 1];
    } while (--j > 0 && before(&e, &a[j - 1]));
    a[j] = e;
  }
}

static int grow(struct fut__heap_ent **buf, uint32_t *cap, uint64_t need) {
  if (*cap >= need)
    return 0;
  uint64_t c = *cap ? *cap : 64;
  while (c < need)
    c *= 2;
  if (c > UINT32_MAX)
    return fut__error(-ENOMEM, "timer run: too many timers");
  struct fut__heap_ent *p = fut__realloc(*buf, sizeof *p * c);
  if (!p)
    return fut__error(-ENOMEM, "timer run: out of memory");
  *buf = p;
  *cap = (uint32_t)c;
  return 0;
}

/* Room for `more` entries at the run's end, and as many in scratch. */
static int run_reserve(struct fut__timers *t, uint32_t more) {
  if (t->run_pos > 0) { /* slide the live part to the front */
    memmove(t->run, t->run + t->run_pos,
            sizeof *t->run * (t->run_len - t->run_pos));
    t->run_len -= t->run_pos;
    t->run_base += t->run_pos; /* handles' positions follow */
    t->run_pos = 0;
  }
  int err = grow(&t->run, &t->run_cap, (uint64_t)t->run_len + more);
  return err ? err : grow(&t->scratch, &t->scratch_cap, more);
}

/* The run is empty: a burst's large buffers go back. */
static void run_emptied(struct fut__timers *t) {
  t->run_pos = t->run_len = 0;
  if (t->run_cap > RUN_KEEP || t->scratch_cap > RUN_KEEP) {
    fut__free(t->run);
    fut__free(t->scratch);
    t->run = t->scratch = NULL;
    t->run_cap = t->scratch_cap = 0;
  }
}

/* Moves bucket b, sorted, to the end of the run, shedding cancelled
 * timers.  On out of memory the bucket stays whole and the slot is retried
 * later. */
static int flush_lists(fut_loop_t *loop, struct fut__tchunk **bare,
                       struct fut__hbucket *hb) {
  struct fut__timers *t = &loop->timers;
  uint32_t n = 0;
  for (struct fut__tchunk *c = *bare; c; c = c->next)
    n += c->len;
  uint32_t nb = n; /* bare entries, then the handle list */
  uint32_t nh = hb->len - hb->head;
  n += nh;
  if (n == 0) { /* every handle in it was cancelled (unlinked): nothing to
                   move, and the run may have no buffer at all */
    struct fut__tchunk *c;
    while ((c = *bare) != NULL) {
      *bare = c->next;
      chunk_release(t, c);
    }
    hb->head = hb->len = 0;
    hbucket_trim(t, hb, 0);
    return 0;
  }
  int err = run_reserve(t, n);
  if (err)
    return err;
  /* Chunks are linked newest first: copy each below the newer ones, so
   * the bucket comes out in insertion order. */
  struct fut__heap_ent *dst = t->run + t->run_len;
  uint32_t off = nb;
  struct fut__tchunk *c;
  while ((c = *bare) != NULL) {
    off -= c->len;
    memcpy(dst + off, c->ents, sizeof *dst * c->len);
    *bare = c->next;
    chunk_release(t, c);
  }
  /* Handles never wait cancelled in the list (cancel unlinks them). */
  for (uint32_t k = 0; k < nh; k++) {
    uint32_t i = hb->head + k;
    struct fut__hchunk *hc = hb->chunks[i / FUT__HCHUNK_ENTS];
    fut_handle_t *h = hc->h[i % FUT__HCHUNK_ENTS];
    h->flags &= (uint8_t)~FUT__H_IN_WHEEL;
    dst[nb + k] = (struct fut__heap_ent){
        h->when, hc->seq[i % FUT__HCHUNK_ENTS],
        (uint32_t)h->slack << FUT__HSLACK_SHIFT, NULL, h};
  }
  hb->head = hb->len = 0;
  hbucket_trim(t, hb, 0);
  uint32_t kept = n;
  if (t->cancelled > 0) {
    kept = 0;
    for (uint32_t i = 0; i < n; i++) {
      if (is_cancelled(&dst[i]))
        shed(loop, dst[i].arg);
      else
        dst[kept++] = dst[i];
    }
  }
  sort_slot(dst, t->scratch, kept);
  /* Handles learn their index in the run: cancelling one there leaves a
   * tombstone instead of waiting to be shed (and compacted). */
  if ((uint64_t)t->run_len + kept <= FUT__HPOS_MAX)
    for (uint32_t i = 0; i < kept; i++)
      if (!dst[i].cb) {
        fut_handle_t *h = dst[i].arg;
        h->pos = (t->run_base + t->run_len + i) & FUT__HPOS_MAX;
        h->flags |= FUT__H_IN_RUN;
      }
  t->run_len += kept;
  return 0;
}

static int wheel_flush(fut_loop_t *loop, uint32_t b) {
  struct fut__timers *t = &loop->timers;
  int err = flush_lists(loop, &t->wheel[b], &t->hwheel[b]);
  if (err == 0)
    bucket_unmark(t, b);
  return err;
}

/* ---- the lag: slots passed while starting timers ---------------------------
 * A burst of starts that outlasts the wheel's reach (a million timers
 * without running the loop) makes add() bring the tiers up to now.  The
 * slots it passes are due, but nothing can fire before the loop runs, and
 * their timers are often cancelled first: each such bucket moves whole
 * (O(1)) to the lag, where a cancel still unlinks its handle in O(1);
 * the lag is sorted into the run, in slot order, only when the loop next
 * looks at its timers (advance, fut__timer_next). */

/* Moves wheel bucket b (slot s, passed) to the lag; -ENOMEM leaves it. */
static int lag_push(struct fut__timers *t, uint64_t s, uint32_t b) {
  struct fut__hbucket *hb = &t->hwheel[b];
  if (!t->wheel[b] && hb->len == hb->head) { /* no timer: nothing to keep */
    hb->head = hb->len = 0;
    hbucket_trim(t, hb, 0);
    bucket_unmark(t, b);
    return 0;
  }
  if (t->nlag == t->lag_cap) {
    struct fut__lag *l = grow_array(t->lag, &t->lag_cap, sizeof *l, 64);
    if (!l)
      return fut__error(-ENOMEM, "timer lag: out of memory");
    t->lag = l;
  }
  t->lag[t->nlag++] = (struct fut__lag){s, t->wheel[b], *hb};
  t->wheel[b] = NULL;
  *hb = (struct fut__hbucket){0};
  bucket_unmark(t, b);
  return 0;
}

/* Sorts the lag into the run, oldest slot first.  On out of memory the
 * slots not moved stay, in order. */
static int lag_flush(fut_loop_t *loop) {
  struct fut__timers *t = &loop->timers;
  uint32_t k = 0;
  int err = 0;
  for (; k < t->nlag; k++) {
    struct fut__lag *l = &t->lag[k];
    if ((err = flush_lists(loop, &l->bare, &l->hb)) != 0)
      break;
    fut__free(l->hb.chunks); /* its own array: the wheel's was renewed */
  }
  memmove(t->lag, t->lag + k, sizeof *t->lag * (t->nlag - k));
  t->nlag -= k;
  return err;
}

/* The lagged bucket of slot s (a handle in it: it exists). */
static struct fut__hbucket *lag_find(struct fut__timers *t, uint64_t s) {
  uint32_t lo = 0, hi = t->nlag;
  while (hi - lo > 1) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (t->lag[mid].slot <= s)
      lo = mid;
    else
      hi = mid;
  }
  FUT__ASSERT(lo < t->nlag && t->lag[lo].slot == s);
  return &t->lag[lo].hb;
}

/* Cancel: h's run entry becomes a tombstone; the tier's reference goes. */
static void run_unlink(fut_loop_t *loop, fut_handle_t *h) {
  struct fut__timers *t = &loop->timers;
  uint32_t i = (h->pos - t->run_base) & FUT__HPOS_MAX;
  FUT__ASSERT(i >= t->run_pos && i < t->run_len && t->run[i].arg == h);
  t->run[i].arg = NULL;
  t->total--;
  h->flags &= (uint8_t) ~(FUT__H_IN_HEAP | FUT__H_IN_RUN);
  if (t->total == 0)
    run_emptied(t); /* only tombstones were left */
  if (FUT__LIKELY(h->refs > 1))
    h->refs--;
  else
    fut_handle_unref(h);
}

/* The near tier's earliest entry (run head or near heap top), or NULL;
 * *in_run says which. */
static inline struct fut__heap_ent *near_first(struct fut__timers *t,
                                               bool *in_run) {
  struct fut__heap_ent *r =
      t->run_pos < t->run_len ? &t->run[t->run_pos] : NULL;
  struct fut__heap_ent *h = t->near.len > 0 ? &t->near.ents[0] : NULL;
  *in_run = r && (!h || before(r, h));
  return *in_run ? r : h;
}

static inline void near_pop(struct fut__timers *t, bool in_run) {
  if (!in_run)
    heap_pop(&t->near);
  else if (++t->run_pos == t->run_len)
    run_emptied(t);
}

/* Brings the tiers up to `now`: every slot <= now's slot moves into the
 * run (lazy: to the lag, the run's later), and the far heap feeds the
 * wheel's new horizon; a call that is not lazy first sorts the lag into
 * the run.  Returns -ENOMEM when the run could not grow: the timers not
 * moved stay in their slot, and the slot is retried by the next call. */
static int advance(fut_loop_t *loop, uint64_t now, bool lazy) {
  struct fut__timers *t = &loop->timers;
  if (FUT__UNLIKELY(t->nlag > 0) && !lazy) {
    int err = lag_flush(loop);
    if (err)
      return err;
  }
  uint64_t now_slot = now >> FUT__SLOT_SHIFT;
  if (now_slot <= t->cur_slot)
    return 0;
  uint64_t last = now_slot - t->cur_slot >= FUT__WHEEL_SLOTS
                      ? t->cur_slot + FUT__WHEEL_SLOTS - 1
                      : now_slot;
  for (uint64_t s = t->cur_slot + 1; s <= last; s++) {
    uint32_t b = (uint32_t)(s % FUT__WHEEL_SLOTS);
    if (!t->wheel[b] && !t->hwheel[b].nchunks)
      continue;
    if (lazy && lag_push(t, s, b) == 0)
      continue;
    /* Not lazy, or no room in the lag: the lag goes first, so the run
     * stays in slot order. */
    lazy = false;
    int err = t->nlag > 0 ? lag_flush(loop) : 0;
    if (err == 0)
      err = wheel_flush(loop, b);
    if (err) {
      t->cur_slot = s - 1; /* out of memory: resume here next time */
      return err;
    }
  }
  t->cur_slot = now_slot;
  while (t->far.len > 0) {
    struct fut__heap_ent e = t->far.ents[0];
    uint64_t slot = e.when >> FUT__SLOT_SHIFT;
    if (slot > t->cur_slot && slot - t->cur_slot >= FUT__WHEEL_SLOTS)
      break; /* still beyond the wheel */
    heap_pop(&t->far);
    if (is_cancelled(&e))
      shed(loop, e.arg);
    else if (file(loop, &e) != 0) {
      FUT__ASSERT(heap_push(&t->far, &e) == 0); /* room was just freed */
      return 0; /* still in time: it goes on at the next call */
    }
  }
  return 0;
}

/* ---- compaction ------------------------------------------------------------
 */

static void heap_compact(fut_loop_t *loop, struct fut__theap *h) {
  uint32_t kept = 0;
  for (uint32_t i = 0; i < h->len; i++) {
    if (is_cancelled(&h->ents[i]))
      shed(loop, h->ents[i].arg);
    else
      h->ents[kept++] = h->ents[i];
  }
  h->len = kept;
  for (uint32_t i = kept / ARITY + 1; i-- > 0;) /* Floyd's heapify */
    if (i < kept)
      sift_down(h->ents, kept, i);
}

static void chunks_compact(fut_loop_t *loop, struct fut__tchunk *c) {
  for (; c; c = c->next) {
    uint32_t kept = 0;
    for (uint32_t i = 0; i < c->len; i++) {
      if (is_cancelled(&c->ents[i]))
        shed(loop, c->ents[i].arg);
      else
        c->ents[kept++] = c->ents[i];
    }
    c->len = kept; /* empty chunks stay until the bucket is flushed */
  }
}

static void wheel_compact(fut_loop_t *loop) {
  struct fut__timers *t = &loop->timers;
  for (uint32_t b = 0; b < FUT__WHEEL_SLOTS; b++)
    chunks_compact(loop, t->wheel[b]);
  for (uint32_t k = 0; k < t->nlag; k++)
    chunks_compact(loop, t->lag[k].bare);
}

static void run_compact(fut_loop_t *loop) {
  struct fut__timers *t = &loop->timers;
  uint32_t kept = t->run_pos;
  for (uint32_t i = t->run_pos; i < t->run_len; i++) {
    struct fut__heap_ent *e = &t->run[i];
    if (is_tomb(e))
      continue;
    if (is_cancelled(e)) {
      shed(loop, e->arg);
      continue;
    }
    if (!e->cb && (((fut_handle_t *)e->arg)->flags & FUT__H_IN_RUN))
      ((fut_handle_t *)e->arg)->pos = (t->run_base + kept) & FUT__HPOS_MAX;
    t->run[kept++] = *e; /* order kept: still sorted */
  }
  t->run_len = kept;
  if (t->run_pos == t->run_len)
    run_emptied(t);
}

/* A cancel outside the wheel's lists: a tombstone in the run, or a flag
 * the heaps' timers are shed by. */
__attribute__((noinline)) static void cancelled_elsewhere(fut_loop_t *loop,
                                                          fut_handle_t *h) {
  struct fut__timers *t = &loop->timers;
  if (h->flags & FUT__H_IN_RUN) {
    run_unlink(loop, h);
    return;
  }
  t->cancelled++;
  if (h->refs == 1)
    t->zombies++;
  if (t->total >= COMPACT_MIN && t->cancelled > t->total / 2) {
    heap_compact(loop, &t->near);
    run_compact(loop);
    heap_compact(loop, &t->far);
    wheel_compact(loop);
  }
}

void fut__timer_cancelled(fut_loop_t *loop, fut_handle_t *h) {
  if (FUT__UNLIKELY(!(h->flags & FUT__H_IN_WHEEL))) {
    cancelled_elsewhere(loop, h);
    return;
  }
  /* The common case inline, with no call before its end: the bucket's
   * oldest entry leaves (timers cancelled in the order they started) and
   * others remain. */
  struct fut__timers *t = &loop->timers;
  uint64_t slot = h->when >> FUT__SLOT_SHIFT;
  struct fut__hbucket *hb = &t->hwheel[slot % FUT__WHEEL_SLOTS];
  uint32_t i = h->pos;
  if (FUT__UNLIKELY(slot <= t->cur_slot || i != hb->head ||
                    i + 1 == hb->len)) { /* lagged, or not the easy case */
    hwheel_unlink(loop, h);
    return;
  }
  hb->head = i + 1;
  t->total--;
  h->flags &= (uint8_t) ~(FUT__H_IN_HEAP | FUT__H_IN_WHEEL);
  if (FUT__LIKELY(h->refs > 1))
    h->refs--;
  else
    fut_handle_unref(h);
}

/* ---- the entry points --------------------------------------------------- */

static int add(fut_loop_t *loop, uint64_t when, uint32_t slack, fut_cb cb,
               void *arg) {
  struct fut__timers *t = &loop->timers;
  struct fut__heap_ent e = {when, t->seq, slack, cb, arg};
  /* The tiers follow the clock only when the loop runs: after a long
   * stretch without it (a burst of a million starts), a timer within the
   * wheel's reach of now would land in the far heap and pay two heap
   * passes.  Bring the tiers up to now first (an O(1) check, rarely
   * true; on out of memory the far heap takes it as before). */
  if ((when >> FUT__SLOT_SHIFT) - t->cur_slot >= FUT__WHEEL_SLOTS &&
      (when >> FUT__SLOT_SHIFT) > t->cur_slot) {
    uint64_t now = fut__loop_now(loop);
    if ((now >> FUT__SLOT_SHIFT) > t->cur_slot)
      (void)advance(loop, now, true);
  }
  int err = file(loop, &e);
  if (err)
    return err;
  t->seq++;
  t->total++;
  return 0;
}

int fut__timer_push_cb(fut_loop_t *loop, uint64_t when, uint32_t slack,
                       fut_cb cb, void *arg) {
  return add(loop, when, slack, cb, arg);
}

int fut__timer_push(fut_loop_t *loop, fut_handle_t *h, uint32_t slack) {
  struct fut__timers *t = &loop->timers;
  h->slack = slack >> FUT__HSLACK_SHIFT; /* rounded down: never later */
  /* The common case straight to the wheel's handle list: a slot ahead of
   * the tiers, within the wheel. */
  uint64_t slot = h->when >> FUT__SLOT_SHIFT;
  if (FUT__LIKELY(slot > t->cur_slot &&
                  slot - t->cur_slot < FUT__WHEEL_SLOTS)) {
    uint32_t b = (uint32_t)(slot % FUT__WHEEL_SLOTS);
    if (FUT__LIKELY(t->hwheel[b].len <= FUT__HPOS_MAX)) {
      int err = hwheel_add(t, b, h, t->seq);
      if (err == 0) {
        t->seq++;
        t->total++;
      }
      return err;
    }
  }
  int err = add(loop, h->when, slack, NULL, h);
  if (err == 0)
    h->flags |= FUT__H_IN_HEAP;
  return err;
}

/* Sheds cancelled timers from the top of a heap. */
static void prune(fut_loop_t *loop, struct fut__theap *heap) {
  while (loop->timers.cancelled > 0 && heap->len > 0 &&
         is_cancelled(&heap->ents[0])) {
    fut_handle_t *h = heap->ents[0].arg;
    heap_pop(heap);
    shed(loop, h);
  }
}

/* Sheds tombstones and cancelled timers from the front of the near
 * tier. */
static void prune_near(fut_loop_t *loop) {
  struct fut__timers *t = &loop->timers;
  bool in_run;
  struct fut__heap_ent *e;
  while ((e = near_first(t, &in_run)) != NULL) {
    if (is_tomb(e)) {
      near_pop(t, in_run);
    } else if (t->cancelled > 0 && is_cancelled(e)) {
      fut_handle_t *h = e->arg;
      near_pop(t, in_run);
      shed(loop, h);
    } else {
      break;
    }
  }
}

/* The earliest deadline the loop must wake for, UINT64_MAX when none.  May
 * be the start of a wheel slot rather than a timer's own deadline: waking
 * then files the slot into the near heap, never fires anything early. */
uint64_t fut__timer_next(fut_loop_t *loop) {
  struct fut__timers *t = &loop->timers;
  if (t->total == t->cancelled)
    return UINT64_MAX; /* only cancelled timers wait: nothing to wake for */
  /* Lagged slots are due: into the run first (out of memory: wake now,
   * and the run's advance reports it). */
  if (FUT__UNLIKELY(t->nlag > 0) && lag_flush(loop) != 0)
    return t->lag[0].slot << FUT__SLOT_SHIFT;
  prune_near(loop);
  bool in_run;
  struct fut__heap_ent *top = near_first(t, &in_run);
  if (top)
    return top->when;
  for (uint32_t k = 1; k < FUT__WHEEL_SLOTS; k++) {
    uint64_t s = t->cur_slot + k;
    uint32_t b = (uint32_t)(s % FUT__WHEEL_SLOTS);
    /* Skip empty words of the bitmap quickly. */
    if (b % 64 == 0 && t->wheel_bits[b / 64] == 0) {
      k += 63;
      continue;
    }
    if (t->wheel_bits[b / 64] & (UINT64_C(1) << (b % 64)))
      return s << FUT__SLOT_SHIFT;
  }
  prune(loop, &t->far);
  return t->far.len > 0 ? t->far.ents[0].when : UINT64_MAX;
}

/* The smallest deadline + slack among the entries of the subtree at i
 * whose deadline is below bound, or bound.  A heap's children never come
 * before their parent, so a subtree starting at or past the bound is
 * skipped whole: the walk visits the timers the wake-up will fire and
 * their children, not the heap. */
static uint64_t min_latest(const struct fut__heap_ent *heap, uint32_t n,
                           uint32_t i, uint64_t bound) {
  if (heap[i].when >= bound)
    return bound;
  uint64_t latest = heap[i].when + heap[i].slack;
  if (latest < bound)
    bound = latest;
  uint32_t first = ARITY * i + 1;
  uint32_t last = first + ARITY < n ? first + ARITY : n;
  for (uint32_t c = first; c < last; c++)
    bound = min_latest(heap, n, c, bound);
  return bound;
}

uint64_t fut__timer_wake(fut_loop_t *loop, uint64_t now) {
  struct fut__timers *t = &loop->timers;
  uint64_t first = fut__timer_next(loop); /* a lower bound of every deadline */
  if (first <= now || first > UINT64_MAX - FUT__SLACK_MAX)
    return first; /* due already, none, or too far to matter */
  /* No timer may wait later than first + FUT__SLACK_MAX: bring every slot
   * up to there into the near heap, so one walk of it sees every timer
   * that could be due by the wake-up. */
  uint64_t bound = first + FUT__SLACK_MAX;
  if (advance(loop, bound, false) != 0)
    return first; /* out of memory: wake at the first deadline, exact */
  prune_near(loop);
  bool in_run;
  struct fut__heap_ent *near_top = near_first(t, &in_run);
  if (!near_top)
    return fut__timer_next(loop); /* nothing before bound: a later slot */
  /* first may have been a slot's start; the near tier's top is now the
   * earliest deadline of all (later slots hold later ones): bound from it. */
  uint64_t top = near_top->when;
  if (top > first) {
    if (top <= now || top > UINT64_MAX - FUT__SLACK_MAX)
      return top;
    bound = top + FUT__SLACK_MAX;
    if (advance(loop, bound, false) != 0)
      return top;
  }
  /* Every entry with a deadline below the result is in the near tier (its
   * slot is at most bound's), and none of them is then past its slack.
   * The run is sorted: its walk stops at the first deadline past bound. */
  for (uint32_t i = t->run_pos; i < t->run_len && t->run[i].when < bound; i++)
    if (t->run[i].when + t->run[i].slack < bound)
      bound = t->run[i].when + t->run[i].slack;
  return t->near.len > 0 ? min_latest(t->near.ents, t->near.len, 0, bound)
                         : bound;
}

/* Moves every timer due at `now` to the ready queue in deadline order; a
 * handle's tier reference becomes the queue's. */
int fut__timers_expire(fut_loop_t *loop, uint64_t now) {
  struct fut__timers *t = &loop->timers;
  /* Due timers that cannot reach the near heap would make every poll
   * return at once for a slot that never empties: fail the run instead
   * (the timers stay where they are, and the next run retries). */
  int err = advance(loop, now, false);
  if (FUT__UNLIKELY(err))
    return fut__error(err, "timers: out of memory moving due timers "
                           "out of the wheel");
  bool in_run;
  struct fut__heap_ent *top;
  while ((top = near_first(t, &in_run)) != NULL && top->when <= now) {
    if (is_tomb(top)) {
      near_pop(t, in_run);
      continue;
    }
    fut_handle_t *h = handle_of(top);
    if (h && (h->flags & FUT__H_CANCELLED)) {
      near_pop(t, in_run);
      shed(loop, h);
      continue;
    }
    /* Out of memory: the timer stays and is retried on the next tick. */
    if (h ? fut__ring_push(&loop->ready, fut__handle_run, h)
          : fut__ring_push(&loop->ready, top->cb, top->arg))
      break;
    near_pop(t, in_run);
    t->total--;
    if (h)
      h->flags &= (uint8_t) ~(FUT__H_IN_HEAP | FUT__H_IN_RUN);
  }
  return 0;
}

/* Drops every timer: handles read as cancelled, bare timers' args stay the
 * user's (a bound call, fut__ctx_call_run's record, is freed). */
static void drop(fut_loop_t *loop, struct fut__heap_ent *e) {
  if (is_tomb(e))
    return; /* its handle left at its cancel */
  fut_handle_t *h = handle_of(e);
  loop->timers.total--;
  if (!h) {
    fut__release_entry(e->cb, e->arg); /* a bound call's context */
    return;
  }
  h->flags |= FUT__H_CANCELLED;
  h->flags &= (uint8_t) ~(FUT__H_IN_HEAP | FUT__H_IN_WHEEL | FUT__H_IN_RUN);
  fut_handle_unref(h);
}

/* Drops a bucket's timers (wheel or lag), keeping its chunk array. */
static void drop_lists(fut_loop_t *loop, struct fut__tchunk **bare,
                       struct fut__hbucket *hb) {
  struct fut__timers *t = &loop->timers;
  struct fut__tchunk *c;
  while ((c = *bare) != NULL) {
    while (c->len > 0)
      drop(loop, &c->ents[--c->len]);
    *bare = c->next;
    chunk_release(t, c);
  }
  while (hb->len > hb->head) {
    uint32_t i = --hb->len;
    fut_handle_t *h = hb->chunks[i / FUT__HCHUNK_ENTS]->h[i % FUT__HCHUNK_ENTS];
    t->total--;
    h->flags |= FUT__H_CANCELLED;
    h->flags &= (uint8_t) ~(FUT__H_IN_HEAP | FUT__H_IN_WHEEL);
    fut_handle_unref(h);
  }
  hb->head = hb->len = 0;
  hbucket_trim(t, hb, 0);
}

void fut__timers_clear(fut_loop_t *loop) {
  struct fut__timers *t = &loop->timers;
  t->cancelled = t->zombies = 0; /* everything goes, counted or not */
  while (t->near.len > 0)
    drop(loop, &t->near.ents[--t->near.len]);
  while (t->run_len > t->run_pos)
    drop(loop, &t->run[--t->run_len]);
  t->run_pos = t->run_len = 0;
  while (t->far.len > 0)
    drop(loop, &t->far.ents[--t->far.len]);
  for (uint32_t b = 0; b < FUT__WHEEL_SLOTS; b++)
    drop_lists(loop, &t->wheel[b], &t->hwheel[b]);
  for (uint32_t k = 0; k < t->nlag; k++) {
    drop_lists(loop, &t->lag[k].bare, &t->lag[k].hb);
    fut__free(t->lag[k].hb.chunks);
  }
  t->nlag = 0;
  memset(t->wheel_bits, 0, sizeof t->wheel_bits);
  FUT__ASSERT(t->total == 0);
}

void fut__timers_free(fut_loop_t *loop) {
  struct fut__timers *t = &loop->timers;
  fut__free(t->near.ents);
  fut__free(t->far.ents);
  fut__free(t->run);
  fut__free(t->scratch);
  t->run = t->scratch = NULL;
  t->run_cap = t->scratch_cap = 0;
  t->spare = NULL; /* in the slab */
  t->nspare = 0;
  fut__slab_destroy(&t->tslab);
  t->hspare = NULL; /* in the slab */
  t->nhspare = 0;
  fut__slab_destroy(&t->hslab);
  t->near.ents = t->far.ents = NULL;
  fut__free(t->lag); /* emptied by clear */
  t->lag = NULL;
  t->lag_cap = 0;
  for (uint32_t b = 0; b < FUT__WHEEL_SLOTS; b++) {
    fut__free(t->hwheel[b].chunks);
    t->hwheel[b].chunks = NULL;
    t->hwheel[b].cap = 0;
  }
}
