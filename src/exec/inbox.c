/* The completion inbox: how executor outcomes reach a loop.
 *
 * A wrapper (struct wrapper) is a loop future that completes like a
 * cfuture.  Completions cross from worker threads to the loop through a
 * per-loop inbox: the completing thread pushes the wrapper onto a
 * lock-free stack (one CAS) and, only when no drain is queued, asks the
 * loop for one drain with fut_loop_call_soon_threadsafe.  So one
 * thread-safe call (one doorbell) carries every completion that arrives
 * before the loop gets to it, and the loop takes them all with one atomic
 * exchange.
 *
 * Lifetimes.  A wrapper has two memory owners: the loop side (the future's
 * references, loop thread only) and the completion side (the cfuture's
 * done callback, or the fast path's job cfuture, either of which may let
 * go in any thread).  `owners` counts them atomically; the memory goes
 * when both let go, so a completion racing with loop close never touches
 * freed memory.  The inbox is refcounted too (the loop's executor state,
 * each wrapper, a queued drain), so a worker finishing after the loop is
 * gone finds a closed inbox, not a dangling loop. */
#include "exec/internal.h"

#include <sched.h>

/* ---- wrapper memory ------------------------------------------------------ */

/* A free list of wrapper-sized blocks carved from malloc'd chunks.  Not the
 * loop's fut__slab: with it S7 went from ~260 to ~380 ns/job.  That slab
 * keeps a header and bitmap at the start of each 64 KiB-aligned chunk, and
 * a burst of completions frees wrappers across hundreds of chunks (likely
 * cause: those headers all share the same cache sets).  Here a free is one
 * store into the block itself. */
struct wrapper_pool {
  void *free;             /* loop thread: singly linked through each free
                             block's first word */
  _Atomic(void *) remote; /* blocks freed by other threads (or after
                             close): a stack pushed with CAS, taken whole
                             by the loop thread (so no ABA) */
  void *chunks;           /* loop thread: singly linked through each
                             chunk's first word */
  size_t size;            /* block size, a multiple of 16 */
};

#define WRAPPERS_PER_CHUNK 128

static void wrapper_pool_init(struct wrapper_pool *pool, size_t size) {
  pool->free = pool->chunks = NULL;
  atomic_init(&pool->remote, NULL);
  pool->size = (size + 15u) & ~(size_t)15u;
}

static void *wrapper_pool_alloc(struct wrapper_pool *pool) {
  void *p = pool->free;
  if (FUT__UNLIKELY(p == NULL) &&
      atomic_load_explicit(&pool->remote, memory_order_relaxed))
    p = atomic_exchange_explicit(&pool->remote, NULL, memory_order_acquire);
  if (FUT__LIKELY(p != NULL)) {
    pool->free = *(void **)p;
    return p;
  }
  char *chunk = fut__malloc(16 + pool->size * WRAPPERS_PER_CHUNK);
  if (!chunk)
    return NULL;
  *(void **)chunk = pool->chunks;
  pool->chunks = chunk;
  /* Block 0 is returned; 1.. go on the free list in address order. */
  char *first = chunk + 16;
  for (size_t i = WRAPPERS_PER_CHUNK - 1; i >= 1; i--) {
    *(void **)(first + i * pool->size) = pool->free;
    pool->free = first + i * pool->size;
  }
  return first;
}

static void wrapper_pool_free(struct wrapper_pool *pool, void *p) {
  *(void **)p = pool->free;
  pool->free = p;
}

/* Any thread. */
static void wrapper_pool_free_remote(struct wrapper_pool *pool, void *p) {
  void *head = atomic_load_explicit(&pool->remote, memory_order_relaxed);
  do
    *(void **)p = head;
  while (!atomic_compare_exchange_weak_explicit(
      &pool->remote, &head, p, memory_order_release, memory_order_relaxed));
}

static void wrapper_pool_destroy(struct wrapper_pool *pool) {
  /* Oldest first: the list is newest first, and the newest chunks are
   * usually at the top of the heap, where freeing each one first would
   * make malloc give memory back to the kernel one chunk at a time (a
   * TLB shootdown on every thread each time). */
  void *c = NULL;
  for (void *n = pool->chunks; n;) {
    void *next = *(void **)n;
    *(void **)n = c;
    c = n;
    n = next;
  }
  while (c) {
    void *next = *(void **)c;
    fut__free(c);
    c = next;
  }
  pool->free = pool->chunks = NULL;
}

/* ---- the inbox and its wrappers ------------------------------------------ */

struct wrapper;

/* Laid out in two cache lines: what every completing worker touches, and
 * what the loop thread writes on every job (the free list, the wrappers'
 * references, the in-flight list), so neither invalidates the other's
 * line. */
struct fut__inbox {
  /* Completed, not drained: a stack (newest first) pushed with CAS and
   * taken whole with an exchange (so no ABA); linked by next_done. */
  _Atomic(struct wrapper *) head;
  struct fut__item_sink sink; /* fast-path items come home here (read by
                                 the completers; never changes) */
  atomic_bool scheduled;      /* a drain is queued (or being queued) */
  atomic_bool closed;         /* the loop closed: nobody drains head */
  const fut_loop_t *owner;    /* the loop; never changes (compared only) */
  pthread_mutex_t lock;       /* taken only to queue a drain and to close */
  fut_loop_t *loop;           /* guarded by lock; NULL once the loop closed */
  char pad[64];               /* keeps the lines apart */
  atomic_uint refs;           /* loop state + live wrappers + queued drain
                                 + credit */
  unsigned credit;            /* loop thread: references taken ahead for
                                 wrappers to come (each wrapper holds one;
                                 one freed on the loop thread gives it
                                 back here): two atomics fewer per job */
  unsigned fork_gen;          /* loop thread: fut__fork_generation() when
                                 made or re-armed (fut__inbox_check_fork) */
  struct wrapper_pool pool;   /* wrapper memory (see wrapper_drop) */
  struct fut__qnode inflight; /* loop thread: wrappers whose outcome may
                                 still come (struct wrapper.inflight) */
  size_t nfast;               /* loop thread: fast-path items not yet
                                 back */
  struct wrapper **batch;     /* loop thread: the taken completions,
                                 newest first */
  size_t batch_cap;           /* loop thread: its capacity */
  size_t left;                /* loop thread: batch[0, left) still to
                                 deliver (see drain_step) */
  bool more_queued;           /* loop thread: a drain_more is queued */
  uint64_t drains;            /* loop thread: drains run (tests) */
  uint64_t delivered;         /* loop thread: completions delivered */
};

/* Two kinds.  A wrapper of any cfuture (fut_wrap_future, or
 * run_in_executor on another executor) registers a cfuture done callback.
 * A run_in_executor call job on one of our thread pools is the fast path:
 * the wrapper carries the job's cfuture and the pool's work item itself
 * (one block from the free list per job, no malloc), and the worker hands
 * the item straight to the inbox (its sink) with no callback
 * registration.  The kinds differ by their ops (fast_ops, slow_ops).
 *
 * 208 bytes for the fast path (the loop future 72, the cfuture 80, the
 * item 32, the links 24): a burst of 200,000 jobs walks 42 MB of them in
 * each phase (submit, worker, drain and callbacks), so every byte here is
 * paid three times in cache misses.  What the kinds do not share is in a
 * union; the inbox of a fast wrapper is where its item's sink lives. */
struct wrapper {
  struct wrapper *next_done; /* inbox stack link: written before the push
                                (first word: the free list's link too) */
  union {
    struct {
      /* Its references: the loop side's and the pool's (dropped by the
       * completer once the item is in the inbox); user jobs may take
       * more.  The memory goes when the last one does
       * (job_cf_release). */
      fut_cfuture_t cf;
      struct fut__work_item item; /* right after cf (fut__work_item_cf) */
    } fast;
    struct {
      fut_cfuture_t *cf;        /* owned reference: dropped with the
                                   memory */
      struct fut__inbox *inbox; /* owned reference */
      atomic_uint owners;       /* memory owners: the loop side + the
                                   pending callback */
    } slow;
  } u;
  struct fut__qnode inflight; /* in inbox->inflight until the outcome came
                                 (loop thread) */
  struct fut__ext ext;        /* the loop future; last: fut__ext ends with
                                 it */
};

_Static_assert(offsetof(struct wrapper, u.fast.item) -
                       offsetof(struct wrapper, u.fast.cf) ==
                   FUT__CF_SIZE,
               "a work item follows its cfuture");

static const struct fut__ops fast_ops, slow_ops;
static void on_item_done(struct fut__work_item *it);

static inline bool is_fast(const struct wrapper *w) {
  return w->ext.ops == &fast_ops;
}

/* The inbox of a fast wrapper: its item's sink is the inbox's. */
static inline struct fut__inbox *sink_inbox(const struct fut__work_item *it) {
  return fut__container_of((struct fut__item_sink *)(uintptr_t)it->sink,
                           struct fut__inbox, sink);
}

static inline fut_cfuture_t *cf_of(struct wrapper *w) {
  return is_fast(w) ? &w->u.fast.cf : w->u.slow.cf;
}

static void inbox_unref(struct fut__inbox *ib) {
  if (atomic_fetch_sub_explicit(&ib->refs, 1, memory_order_acq_rel) != 1)
    return;
  wrapper_pool_destroy(&ib->pool);
  fut__free(ib->batch);
  pthread_mutex_destroy(&ib->lock);
  fut__free(ib);
}

int fut__inbox_new(fut_loop_t *loop, struct fut__inbox **out) {
  struct fut__inbox *ib = fut__calloc(1, sizeof *ib);
  if (!ib)
    return -ENOMEM;
  pthread_mutex_init(&ib->lock, NULL);
  atomic_init(&ib->refs, 1);
  atomic_init(&ib->closed, false);
  atomic_init(&ib->scheduled, false);
  atomic_init(&ib->head, NULL);
  wrapper_pool_init(&ib->pool, sizeof(struct wrapper));
  ib->sink.done = on_item_done;
  fut__q_init(&ib->inflight);
  ib->loop = loop;
  ib->owner = loop;
  ib->fork_gen = fut__fork_generation();
  *out = ib;
  return 0;
}

void fut__inbox_check_fork(struct fut__inbox *ib) {
  unsigned gen = fut__fork_generation();
  if (FUT__LIKELY(ib->fork_gen == gen))
    return;
  ib->fork_gen = gen;
  pthread_mutex_init(&ib->lock, NULL);
  atomic_store(&ib->scheduled, false);
}

/* Wrappers come from a per-loop free list (struct wrapper_pool): malloc
 * and free were a third of a job's cost on the loop thread.  Only the loop
 * thread allocates.  The last owner usually lets go on the loop thread
 * while it runs the loop (a worker's share travels back through the
 * inbox): then the block goes on the plain list.  Anywhere else (another
 * thread keeping the job's cfuture, a worker finishing after close, the
 * loop not running) it goes on the atomic remote stack. */
static void wrapper_free(struct fut__inbox *ib, struct wrapper *w) {
  if (fut_get_running_loop() == ib->owner &&
      !atomic_load_explicit(&ib->closed, memory_order_acquire)) {
    wrapper_pool_free(&ib->pool, w);
    ib->credit++; /* its inbox reference, kept for the next wrapper */
  } else {
    wrapper_pool_free_remote(&ib->pool, w);
    inbox_unref(ib);
  }
}

/* A generic wrapper's owner lets go. */
static void wrapper_drop(struct wrapper *w) {
  if (atomic_fetch_sub_explicit(&w->u.slow.owners, 1, memory_order_acq_rel) !=
      1)
    return;
  fut_cfuture_unref(w->u.slow.cf);
  wrapper_free(w->u.slow.inbox, w);
}

/* A fast wrapper's cfuture lost its last reference (any thread): the loop
 * side is gone (it held one), so is the memory. */
static void job_cf_release(fut_cfuture_t *cf) {
  struct wrapper *w = fut__container_of(cf, struct wrapper, u.fast.cf);
  wrapper_free(sink_inbox(&w->u.fast.item), w);
}

static struct wrapper *wrapper_of(fut_t *f) {
  return fut__container_of(fut__container_of(f, struct fut__ext, fut),
                           struct wrapper, ext);
}

static bool wrapper_cancel(fut_t *f, const char *msg) {
  struct wrapper *w = wrapper_of(f);
  /* As asyncio's _chain_future: the loop future is cancelled; the job is
   * stopped only if it has not started. */
  fut_cfuture_cancel(cf_of(w));
  return fut__cancel_base(f, msg);
}

static void wrapper_destroy(fut_t *f) {
  struct wrapper *w = wrapper_of(f);
  if (is_fast(w))
    fut_cfuture_unref(&w->u.fast.cf); /* may release the memory */
  else
    wrapper_drop(w);
}

static const struct fut__ops fast_ops = {.type_name = "wrap_future",
                                         .cancel = wrapper_cancel,
                                         .destroy = wrapper_destroy};
static const struct fut__ops slow_ops = {.type_name = "wrap_future",
                                         .cancel = wrapper_cancel,
                                         .destroy = wrapper_destroy};

/* ---- completing (any thread) --------------------------------------------- */

static void drain(void *p);

/* Drops the share an inbox entry carries: a generic wrapper's callback
 * share.  A fast entry carries none (its completer drops the pool's
 * reference itself once it pushed: see on_item_done). */
static void entry_release(struct wrapper *w) {
  if (!is_fast(w))
    wrapper_drop(w);
}

/* Releases the shares of inbox entries nobody will drain (the loop
 * closed).  Any thread. */
static void release_list(struct wrapper *list) {
  while (list) {
    struct wrapper *w = list;
    list = w->next_done;
    entry_release(w);
  }
}

/* Asks the loop for a drain (the caller turned `scheduled` on). */
__attribute__((noinline)) static void ring(struct fut__inbox *ib) {
  /* Under the inbox lock: the loop cannot finish closing meanwhile (its
   * close hook takes this lock), so ib->loop stays valid. */
  pthread_mutex_lock(&ib->lock);
  if (ib->loop) {
    atomic_fetch_add_explicit(&ib->refs, 1, memory_order_relaxed);
    if (fut__call_soon_threadsafe_nocapture(ib->loop, drain, ib) != 0) {
      /* Out of memory (the queue could not grow): the entries stay in the
       * inbox, and the loop, woken by its eventfd (no allocation), finds
       * them before it blocks again (fut__inbox_before_block). */
      atomic_fetch_sub_explicit(&ib->refs, 1, memory_order_relaxed);
      atomic_store(&ib->scheduled, false);
      (void)fut__door_poke(ib->loop);
    }
  }
  pthread_mutex_unlock(&ib->lock);
}

/* Queues w for the loop's next drain, in the completing thread; false
 * when the loop closed (nothing done: the caller keeps its share).
 *
 * The seq_cst pairs: push-then-read-closed here against set-closed-then-
 * take in close, so an entry is taken by close or by the pusher that saw
 * closed; push-then-read-scheduled here against clear-scheduled-then-take
 * in drain, so an entry is taken by a drain already queued or rings. */
static bool inbox_push(struct fut__inbox *ib, struct wrapper *w) {
  if (FUT__UNLIKELY(atomic_load(&ib->closed)))
    return false;
  /* The completer's share (if any) moves to the inbox entry.  Once
   * pushed, w may be drained at once; the caller keeps w (and so its
   * inbox reference) alive until this returns (see keep_alive). */
  struct wrapper *head = atomic_load_explicit(&ib->head, memory_order_relaxed);
  do
    w->next_done = head;
  while (!atomic_compare_exchange_weak_explicit(
      &ib->head, &head, w, memory_order_seq_cst, memory_order_relaxed));
  if (FUT__UNLIKELY(atomic_load(&ib->closed))) {
    /* Close may have taken its snapshot before this push: what is left
     * is nobody else's to release. */
    release_list(atomic_exchange(&ib->head, NULL));
  } else if (!atomic_load(&ib->scheduled) &&
             !atomic_exchange(&ib->scheduled, true)) {
    ring(ib);
  }
  return true;
}

/* The cfuture's done callback, in the completing thread. */
static void on_cf_done(fut_cfuture_t *cf, void *arg) {
  (void)cf;
  struct wrapper *w = arg;
  /* keep_alive: a share of w's own (a line this thread has) rather than a
   * reference on the inbox, which every worker would bounce. */
  atomic_fetch_add_explicit(&w->u.slow.owners, 1, memory_order_relaxed);
  if (!inbox_push(w->u.slow.inbox, w))
    wrapper_drop(w);
  wrapper_drop(w);
}

/* Fast path: the pool is done with the item (it ran, or was cancelled
 * before it started).  The pool's cfuture reference keeps w (and so its
 * inbox) alive through the push, and is dropped here after it: the loop
 * side holds its own until it read the outcome, so the entry needs none,
 * and this thread (which has cf's line) pays the atomic instead of the
 * loop thread. */
static void on_item_done(struct fut__work_item *it) {
  struct wrapper *w = fut__container_of(it, struct wrapper, u.fast.item);
  (void)inbox_push(sink_inbox(it), w);
  fut_cfuture_unref(&w->u.fast.cf);
}

/* ---- draining (loop thread) ---------------------------------------------- */

/* Moves the cfuture's outcome into the loop future (unless it was
 * cancelled meanwhile: a late result is dropped). */
static void deliver(struct wrapper *w) {
  fut_t *f = &w->ext.fut;
  if (fut_done(f))
    return;
  fut_cfuture_t *cf = cf_of(w);
  int state = atomic_load_explicit(&cf->state, memory_order_acquire);
  if (state == FUT_CFUTURE_CANCELLED) {
    fut__cancel_base(f, NULL);
    return;
  }
  FUT__ASSERT(state == FUT_CFUTURE_FINISHED);
  /* The outcome fields were written before the release store of the
   * final state and never change after it. */
  int r;
  if (FUT__UNLIKELY(cf->err)) {
    r = cf->msg ? fut_set_exception(f, cf->err, "%s", cf->msg)
                : fut_set_exception(f, cf->err, NULL);
  } else if (FUT__LIKELY(cf->kind == FUT__V_PTR)) {
    /* Borrowed: the wrapper keeps cf (and so its destructor) alive as
     * long as f. */
    r = fut_set_result(f, cf->value.p.ptr, NULL);
  } else {
    r = fut__cfuture_copy_result(cf, f);
  }
  if (r)
    fut_set_exception(f, r, "could not deliver the job's outcome: %s",
                      fut_strerror(r));
}

/* Takes every entry, oldest first (the stack is newest first). */
static struct wrapper *inbox_take(struct fut__inbox *ib) {
  struct wrapper *list = atomic_exchange(&ib->head, NULL), *fifo = NULL;
  while (list) {
    struct wrapper *next = list->next_done;
    list->next_done = fifo;
    fifo = list;
    list = next;
  }
  return fifo;
}

static void deliver_one(struct fut__inbox *ib, struct wrapper *w) {
  ib->delivered++;
  fut__q_remove(&w->inflight);
  if (is_fast(w))
    ib->nfast--;
  deliver(w);
  entry_release(w);       /* the completer's share */
  fut_unref(&w->ext.fut); /* the in-flight reference */
}

/* The stack as an array, newest first, in ib->batch (grown as needed);
 * returns its length, or 0 with the list untouched in *list when the
 * array cannot grow (out of memory). */
static size_t take_into_batch(struct fut__inbox *ib, struct wrapper **list) {
  size_t n = 0;
  for (struct wrapper *w = *list; w; w = w->next_done) {
    if (FUT__UNLIKELY(n == ib->batch_cap)) {
      size_t cap = ib->batch_cap ? 2 * ib->batch_cap : 256;
      struct wrapper **b = fut__realloc(ib->batch, cap * sizeof *b);
      if (!b)
        return 0;
      ib->batch = b;
      ib->batch_cap = cap;
    }
    ib->batch[n++] = w;
  }
  return n;
}

/* How many wrappers ahead the drain prefetches. */
#define DRAIN_AHEAD 4
/* How many completions one drain step delivers before it lets the done
 * callbacks they scheduled run (see drain_step). */
#define DRAIN_CHUNK 64

static void drain_more(void *p);

/* One step of a drain (loop thread): delivers up to DRAIN_CHUNK of the
 * taken completions, oldest first, taking the stack first when none is
 * left over.
 *
 * A burst's completions do not fit in cache, and the stack is newest
 * first: walking it to reverse it and then again to deliver paid a
 * dependent cache miss per wrapper twice.  So the one walk stores the
 * wrappers in an array, and the delivery prefetches the lines of the
 * wrappers a few places ahead (their addresses are known).
 *
 * Delivering a whole burst at once, then running its done callbacks
 * (queued behind the drain) walked every wrapper twice from memory.  So a
 * step delivers one chunk and queues the next step behind the chunk's
 * callbacks: they run while the chunk's wrappers are still in cache.  To
 * the callbacks this is as if the completions had come in several
 * batches; each future's own callbacks still run in order, after its
 * outcome, and completions are delivered in the order they came. */
static void drain_step(struct fut__inbox *ib) {
  bool took = ib->left == 0;
  if (took) {
    /* Cleared first: a push after the take rings for another drain. */
    atomic_store(&ib->scheduled, false);
    struct wrapper *list = atomic_exchange(&ib->head, NULL);
    if (!list)
      return;
    ib->drains++;
    ib->left = take_into_batch(ib, &list);
    if (FUT__UNLIKELY(ib->left == 0)) {
      /* Out of memory for the array: reverse in place (oldest first) and
       * deliver all. */
      struct wrapper *fifo = NULL;
      while (list) {
        struct wrapper *next = list->next_done;
        list->next_done = fifo;
        fifo = list;
        list = next;
      }
      while (fifo) {
        struct wrapper *w = fifo;
        fifo = w->next_done;
        deliver_one(ib, w);
      }
      return;
    }
  }
  struct wrapper **b = ib->batch;
  size_t end = ib->left > DRAIN_CHUNK ? ib->left - DRAIN_CHUNK : 0;
  while (ib->left > end) {
    size_t i = --ib->left;
    if (i >= DRAIN_AHEAD) {
      struct wrapper *a = b[i - DRAIN_AHEAD];
      for (size_t off = 0; off < sizeof *a; off += 64)
        __builtin_prefetch((char *)a + off, 1, 3);
      __builtin_prefetch((char *)a + sizeof *a - 1, 1, 3);
    }
    deliver_one(ib, b[i]);
  }
  /* Leftovers: the next step.  None, after a step that did not take: the
   * ring that set `scheduled` since the last take may have been spent on
   * leftovers (or set it for an entry that take already had), and
   * nothing would clear it: a pusher seeing it set does not ring.  So
   * clear it as a take does, then look at the stack (the seq_cst pair of
   * drain_step's take: a push either is seen here or sees it clear and
   * rings). */
  if (ib->left == 0) {
    if (took)
      return;
    atomic_store(&ib->scheduled, false);
    if (!atomic_load(&ib->head))
      return;
  }
  if (ib->more_queued)
    return;
  fut_loop_t *loop = (fut_loop_t *)(uintptr_t)ib->owner;
  if (fut__ring_push(&loop->ready, drain_more, ib) == 0) {
    atomic_fetch_add_explicit(&ib->refs, 1, memory_order_relaxed);
    ib->more_queued = true;
  } else {
    /* Out of memory for the queue: the rest now; what is in the stack is
     * then found before the loop blocks (fut__inbox_before_block). */
    while (ib->left > 0)
      deliver_one(ib, b[--ib->left]);
    atomic_store(&ib->scheduled, false);
  }
}

/* The thread-safe trampoline (ring): runs on the loop thread. */
static void drain(void *p) {
  struct fut__inbox *ib = p;
  drain_step(ib);
  inbox_unref(ib);
}

/* The next step of a drain, queued by the previous one. */
static void drain_more(void *p) {
  struct fut__inbox *ib = p;
  ib->more_queued = false;
  drain_step(ib);
  inbox_unref(ib);
}

static void drain_release(void *p) {
  inbox_unref(p);
}

__attribute__((constructor)) static void inbox_init(void) {
  fut__register_release(drain, drain_release);
  fut__register_release(drain_more, drain_release);
  fut__cfuture_set_embedded_release(job_cf_release);
}

void fut__inbox_close(struct fut__inbox *ib) {
  fut__inbox_check_fork(ib);
  /* Close the inbox: completers from now on drop their share themselves
   * (see inbox_push). */
  pthread_mutex_lock(&ib->lock);
  ib->loop = NULL;
  atomic_store(&ib->closed, true);
  pthread_mutex_unlock(&ib->lock);
  /* A drain's leftovers (their drain_more is dropped with the queue). */
  while (ib->left > 0) {
    struct wrapper *w = ib->batch[--ib->left];
    fut__q_remove(&w->inflight);
    entry_release(w);
    fut_unref(&w->ext.fut);
  }
  struct wrapper *list = inbox_take(ib);
  while (list) {
    struct wrapper *w = list;
    list = w->next_done;
    fut__q_remove(&w->inflight);
    entry_release(w);
    fut_unref(&w->ext.fut);
  }
  struct fut__qnode *n;
  while ((n = fut__q_first(&ib->inflight))) {
    struct wrapper *w = fut__q_data(n, struct wrapper, inflight);
    fut__q_remove(n);
    /* If the callback is still registered it will never run: drop its
     * share here.  Otherwise it is running now and drops it itself.  A
     * fast-path item always comes back: its completer finds the inbox
     * closed and drops the pool's reference itself. */
    if (!is_fast(w) &&
        fut_cfuture_remove_done_callback(w->u.slow.cf, on_cf_done, w) > 0)
      wrapper_drop(w);
    fut_unref(&w->ext.fut);
  }
  /* The references kept for wrappers to come (closed: wrappers freed
   * from now on drop theirs with inbox_unref). */
  atomic_fetch_sub_explicit(&ib->refs, ib->credit, memory_order_relaxed);
  ib->credit = 0;
  inbox_unref(ib);
}

/* How long the loop, about to block with fast-path jobs in flight, first
 * waits for a completion: a short job is back within a few microseconds,
 * sooner than the loop thread can sleep in epoll_wait and be woken by the
 * doorbell.  Bounded, and only while jobs are out, so an idle loop never
 * spins; yielding, so a worker sharing the core runs. */
#define LOOP_SPIN_NS FUT_US(20)

void fut__inbox_before_block(fut_loop_t *loop, struct fut__inbox *ib) {
  if (FUT__UNLIKELY(atomic_load_explicit(&ib->head, memory_order_relaxed) &&
                    !atomic_exchange(&ib->scheduled, true))) {
    /* Completions nobody queued a drain for (a ring failed: see ring):
     * drain them here, as a queued drain would. */
    atomic_fetch_add_explicit(&ib->refs, 1, memory_order_relaxed);
    drain(ib);
    return;
  }
  if (ib->nfast == 0)
    return;
  uint64_t start = fut__now();
  for (;;) {
    if (fut__door_rung(loop)) {
      /* The doorbell's write may still be on its way: it then costs one
       * empty drain later, not a lost call. */
      fut__door_drain(loop);
      return;
    }
    sched_yield();
    if (fut__now() - start > LOOP_SPIN_NS)
      return;
  }
}

/* ---- wrapping (loop thread) ---------------------------------------------- */

/* Inbox references the loop thread takes at once for its wrappers. */
#define INBOX_CREDIT 64u

/* A wrapper with its loop future initialised (ops tell the kind), in
 * flight (the loop holds a second reference until the outcome arrives),
 * holding a reference to the inbox. */
static int wrapper_new(fut_loop_t *loop, struct fut__inbox *ib,
                       const struct fut__ops *ops, const char *what,
                       struct wrapper **out) {
  struct wrapper *w = wrapper_pool_alloc(&ib->pool);
  if (!w)
    return fut__error(-ENOMEM, "%s: out of memory", what);
  /* A burst's wrappers do not fit in cache: the next allocation would
   * wait for its link's load and then stall on the stores that fill the
   * block.  Fetch its lines now, while this one is being filled. */
  char *next = ib->pool.free;
  if (next) {
    for (size_t off = 0; off < sizeof *w; off += 64)
      __builtin_prefetch(next + off, 1, 3);
    __builtin_prefetch(next + sizeof *w - 1, 1, 3);
  }
  int err = fut__ext_init(loop, &w->ext, ops);
  if (err) {
    wrapper_pool_free(&ib->pool, w);
    return err;
  }
  if (FUT__UNLIKELY(ib->credit == 0)) {
    atomic_fetch_add_explicit(&ib->refs, INBOX_CREDIT, memory_order_relaxed);
    ib->credit = INBOX_CREDIT;
  }
  ib->credit--;
  w->next_done = NULL;
  *out = w;
  return 0;
}

int fut__inbox_wrap(fut_loop_t *loop, struct fut__inbox *ib, fut_cfuture_t *cf,
                    fut_t **out) {
  struct wrapper *w = NULL;
  int err = wrapper_new(loop, ib, &slow_ops, "fut_wrap_future", &w);
  if (err)
    return err;
  atomic_init(&w->u.slow.owners, 2);
  w->u.slow.inbox = ib;
  w->u.slow.cf = cf;
  /* In flight: the loop holds a reference until the outcome arrives. */
  fut_ref(&w->ext.fut);
  fut__q_insert_head(&ib->inflight, &w->inflight);
  /* May run on_cf_done inline (cf already done): it queues a drain. */
  err = fut_cfuture_add_done_callback(cf, on_cf_done, w);
  if (err) {
    fut__q_remove(&w->inflight);
    atomic_fetch_sub(&w->u.slow.owners, 1); /* the callback will never run */
    fut_cfuture_ref(cf); /* the wrapper's unref must not take the caller's
                            reference */
    fut_unref(&w->ext.fut);
    fut_unref(&w->ext.fut);
    return err;
  }
  *out = &w->ext.fut;
  return 0;
}

int fut__inbox_run_job(fut_loop_t *loop, struct fut__inbox *ib,
                       fut_executor_t *pool, fut_job_fn fn, void *arg,
                       fut_t **out) {
  struct wrapper *w = NULL;
  int err = wrapper_new(loop, ib, &fast_ops, "fut_run_in_executor", &w);
  if (err)
    return err;
  /* cf's references: the wrapper's and the pool's. */
  fut__cfuture_init(&w->u.fast.cf, true, 2);
  struct fut__work_item *it = &w->u.fast.item;
  it->sink = &ib->sink;
  it->fn = fn;
  it->arg = arg;
  if ((err = fut__thread_pool_push(pool, it))) {
    fut_cfuture_unref(&w->u.fast.cf); /* the pool's */
    fut_unref(&w->ext.fut);           /* frees the rest */
    return err;
  }
  /* In flight: the loop holds a reference until the item comes back. */
  fut_ref(&w->ext.fut);
  ib->nfast++;
  fut__q_insert_head(&ib->inflight, &w->inflight);
  *out = &w->ext.fut;
  return 0;
}

void fut__inbox_counters(const struct fut__inbox *ib, uint64_t *drains,
                         uint64_t *delivered) {
  *drains = ib->drains;
  *delivered = ib->delivered;
}
