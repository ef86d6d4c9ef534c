/* Executors: the generic executor object, job helpers, and the loop glue
 * (wrap_future, run_in_executor, the default executor).
 *
 * Completions cross from worker threads to the loop through a per-loop
 * inbox: the completing thread pushes the wrapper onto a lock-free stack
 * (one CAS) and, only when no drain is queued, asks the loop for one drain
 * with fut_loop_call_soon_threadsafe.  So one thread-safe call (one
 * doorbell) carries every completion that arrives before the loop gets to
 * it, and the loop takes them all with one atomic exchange.
 *
 * Lifetimes.  A wrapper (struct wrap) is a loop future with two memory
 * owners: the loop side (the future's references, loop thread only) and the
 * cfuture's done callback (which may run in any thread).  `mem` counts
 * them atomically; the memory goes when both let go, so a callback racing
 * with loop close never touches freed memory.  The inbox is refcounted too
 * (the loop state, each wrapper, a queued drain), so a worker finishing
 * after the loop is gone finds a closed inbox, not a dangling loop. */
#include "exec/internal.h"

#include <sched.h>
#include <string.h>
#include <unistd.h>

/* ======================================================================
 * Generic executor
 * ====================================================================== */

struct fut_executor {
  const fut_executor_ops_t *ops; /* never changes */
  void *self;                    /* implementation object; never changes */
  atomic_uint refs;              /* > 0 while alive */
  atomic_bool shut;              /* fut_executor_shutdown was called */
};

int fut_executor_new(const fut_executor_ops_t *ops, void *self,
                     fut_executor_t **out) {
  if (!out)
    return fut__error(-EINVAL, "fut_executor_new: NULL out");
  *out = NULL;
  if (!ops || !ops->submit || !ops->shutdown || !ops->destroy)
    return fut__error(-EINVAL, "fut_executor_new: ops or one of its "
                               "functions is NULL");
  fut_executor_t *ex = fut__malloc(sizeof *ex);
  if (!ex)
    return fut__error(-ENOMEM, "fut_executor_new: out of memory");
  ex->ops = ops;
  ex->self = self;
  atomic_init(&ex->refs, 1);
  atomic_init(&ex->shut, false);
  *out = ex;
  return 0;
}

void *fut_executor_self(const fut_executor_t *ex) {
  return ex ? ex->self : NULL;
}
const fut_executor_ops_t *fut_executor_ops(const fut_executor_t *ex) {
  return ex ? ex->ops : NULL;
}

fut_executor_t *fut_executor_ref(fut_executor_t *ex) {
  if (ex)
    atomic_fetch_add_explicit(&ex->refs, 1, memory_order_relaxed);
  return ex;
}

void fut_executor_free(fut_executor_t *ex) {
  if (!ex)
    return;
  unsigned old = atomic_fetch_sub_explicit(&ex->refs, 1, memory_order_acq_rel);
  FUT__ASSERT(old > 0);
  if (old != 1)
    return;
  if (!atomic_exchange(&ex->shut, true))
    (void)ex->ops->shutdown(ex->self, true, false, FUT_FOREVER);
  ex->ops->destroy(ex->self);
  fut__free(ex);
}

bool fut_executor_is_shutdown(const fut_executor_t *ex) {
  return ex && atomic_load(&ex->shut);
}

int fut_executor_shutdown(fut_executor_t *ex, bool wait, bool cancel_pending,
                          uint64_t timeout_ns) {
  if (!ex)
    return fut__error(-EINVAL, "fut_executor_shutdown: NULL executor");
  atomic_store(&ex->shut, true);
  return ex->ops->shutdown(ex->self, wait, cancel_pending, timeout_ns);
}

static int check_job(const fut_job_t *job, const char *what) {
  if (!job)
    return fut__error(-EINVAL, "%s: NULL job", what);
  if (!job->fn == !job->bytes_fn)
    return fut__error(-EINVAL,
                      "%s: a job needs exactly one of fn and "
                      "bytes_fn",
                      what);
  if (job->bytes_fn && job->len > 0 && !job->data)
    return fut__error(-EINVAL, "%s: NULL data with length %zu", what, job->len);
  return 0;
}

int fut_executor_submit_job(fut_executor_t *ex, const fut_job_t *job,
                            fut_cfuture_t **out) {
  if (!ex || !out)
    return fut__error(-EINVAL, "fut_executor_submit: NULL %s",
                      !ex ? "executor" : "out");
  int err = check_job(job, "fut_executor_submit");
  if (err)
    return err;
  if (atomic_load_explicit(&ex->shut, memory_order_acquire))
    return fut__error(FUT_E_SHUTDOWN,
                      "fut_executor_submit: the %s has been "
                      "shut down",
                      ex->ops->name ? ex->ops->name : "executor");
  fut_cfuture_t *cf = NULL;
  err = ex->ops->submit(ex->self, job, &cf);
  if (err)
    return err;
  FUT__ASSERT(cf != NULL);
  *out = cf;
  return 0;
}

int fut_executor_submit(fut_executor_t *ex, fut_job_fn fn, void *arg,
                        fut_cfuture_t **out) {
  if (!fn)
    return fut__error(-EINVAL, "fut_executor_submit: NULL function");
  fut_job_t job = fut_job_call(fn, arg);
  return fut_executor_submit_job(ex, &job, out);
}

/* A map is all or nothing, as Python's map cancels what it submitted when
 * it fails part way: cancels and drops the first n submissions, returns
 * err. */
static int unwind_map(fut_cfuture_t **out, size_t n, int err) {
  for (size_t j = 0; j < n; j++) {
    fut_cfuture_cancel(out[j]);
    fut_cfuture_unref(out[j]);
    out[j] = NULL;
  }
  return err;
}

int fut_executor_map_jobs(fut_executor_t *ex, const fut_job_t *jobs, size_t n,
                          fut_cfuture_t **out) {
  if (!ex || !out || (n > 0 && !jobs))
    return fut__error(-EINVAL, "fut_executor_map: NULL %s",
                      !ex    ? "executor"
                      : !out ? "out"
                             : "jobs");
  for (size_t i = 0; i < n; i++)
    out[i] = NULL;
  for (size_t i = 0; i < n; i++) {
    int err = fut_executor_submit_job(ex, &jobs[i], &out[i]);
    if (err)
      return unwind_map(out, i, err);
  }
  return 0;
}

int fut_executor_map(fut_executor_t *ex, fut_job_fn fn, void *const *args,
                     size_t n, fut_cfuture_t **out) {
  if (!fn || (n > 0 && !args))
    return fut__error(-EINVAL, "fut_executor_map: NULL %s",
                      !fn ? "function" : "args");
  if (!ex || !out)
    return fut__error(-EINVAL, "fut_executor_map: NULL %s",
                      !ex ? "executor" : "out");
  for (size_t i = 0; i < n; i++)
    out[i] = NULL;
  for (size_t i = 0; i < n; i++) {
    fut_job_t job = fut_job_call(fn, args[i]);
    int err = fut_executor_submit_job(ex, &job, &out[i]);
    if (err)
      return unwind_map(out, i, err);
  }
  return 0;
}

/* ======================================================================
 * Jobs
 * ====================================================================== */

int fut_job_copy(const fut_job_t *src, fut_job_t **out) {
  if (!out)
    return fut__error(-EINVAL, "fut_job_copy: NULL out");
  *out = NULL;
  int err = check_job(src, "fut_job_copy");
  if (err)
    return err;
  /* Borrowed bytes are copied into the same allocation as the job. */
  bool copy = src->bytes_fn && !src->data_free && src->len > 0;
  size_t extra = copy ? src->len : 0;
  if (extra > SIZE_MAX - sizeof(fut_job_t))
    return fut__error(-ENOMEM, "fut_job_copy: %zu bytes is too big", extra);
  fut_job_t *j = fut__malloc(sizeof *j + extra);
  if (!j)
    return fut__error(-ENOMEM, "fut_job_copy: out of memory for %zu bytes",
                      sizeof *j + extra);
  *j = *src;
  if (copy) {
    memcpy(j + 1, src->data, src->len);
    j->data = j + 1;
  }
  *out = j;
  return 0;
}

void fut_job_free(fut_job_t *job) {
  if (!job)
    return;
  if (job->data_free)
    job->data_free((void *)(uintptr_t)job->data);
  fut__free(job);
}

bool fut_job_run(const fut_job_t *job, fut_cfuture_t *cf) {
  if (!job || !cf || fut_cfuture_set_running_or_notify_cancel(cf) != 1)
    return false;
  /* The detail of this thread's last libfuture error becomes the message
   * of a failed job: clear it so a stale one is not reported. */
  if (fut_last_error()[0])
    fut__error(0, "%s", "");
  int ret;
  if (job->fn) {
    ret = job->fn(job->arg, cf);
    if (ret == 0 && !fut_cfuture_done(cf))
      fut_cfuture_set_result(cf, NULL, NULL);
  } else {
    void *out = NULL;
    size_t out_len = 0;
    ret = job->bytes_fn(job->data, job->len, &out, &out_len);
    if (ret == 0) {
      if (out_len > 0 && !out)
        ret = fut__error(-EINVAL,
                         "bytes job returned NULL data with length "
                         "%zu",
                         out_len);
      else if (fut_cfuture_set_result_bytes_owned(cf, out, out_len) != 0)
        free(out); /* already done: the job completed cf itself */
    } else {
      free(out);
    }
  }
  if (ret != 0 && !fut_cfuture_done(cf)) {
    int code = ret < 0 ? ret : FUT_E_JOB_FAILED;
    const char *detail = fut_last_error();
    if (detail[0])
      fut_cfuture_set_exception(cf, code, "%s", detail);
    else if (ret > 0)
      fut_cfuture_set_exception(cf, code, "job returned %d", ret);
    else
      fut_cfuture_set_exception(cf, code, NULL);
  }
  return true;
}

/* ======================================================================
 * Loop glue
 * ====================================================================== */

struct wrap;

/* A free list of wrapper-sized blocks carved from malloc'd chunks.  Not the
 * loop's fut__slab: with it S7 went from ~260 to ~380 ns/job.  That slab
 * keeps a header and bitmap at the start of each 64 KiB-aligned chunk, and
 * a burst of completions frees wrappers across hundreds of chunks (likely
 * cause: those headers all share the same cache sets).  Here a free is one
 * store into the block itself. */
struct wrap_pool {
  void *free;             /* loop thread: singly linked through each free
                             block's first word */
  _Atomic(void *) remote; /* blocks freed by other threads (or after
                             close): a stack pushed with CAS, taken whole
                             by the loop thread (so no ABA) */
  void *chunks;           /* loop thread: singly linked through each
                             chunk's first word */
  size_t size;            /* block size, a multiple of 16 */
};

#define WRAP_CHUNK 128 /* blocks per chunk */

static void wrap_pool_init(struct wrap_pool *wp, size_t size) {
  wp->free = wp->chunks = NULL;
  atomic_init(&wp->remote, NULL);
  wp->size = (size + 15u) & ~(size_t)15u;
}

static void *wrap_pool_alloc(struct wrap_pool *wp) {
  void *p = wp->free;
  if (FUT__UNLIKELY(p == NULL) &&
      atomic_load_explicit(&wp->remote, memory_order_relaxed))
    p = atomic_exchange_explicit(&wp->remote, NULL, memory_order_acquire);
  if (FUT__LIKELY(p != NULL)) {
    wp->free = *(void **)p;
    return p;
  }
  char *chunk = fut__malloc(16 + wp->size * WRAP_CHUNK);
  if (!chunk)
    return NULL;
  *(void **)chunk = wp->chunks;
  wp->chunks = chunk;
  /* Block 0 is returned; 1.. go on the free list in address order. */
  char *first = chunk + 16;
  for (size_t i = WRAP_CHUNK - 1; i >= 1; i--) {
    *(void **)(first + i * wp->size) = wp->free;
    wp->free = first + i * wp->size;
  }
  return first;
}

static void wrap_pool_free(struct wrap_pool *wp, void *p) {
  *(void **)p = wp->free;
  wp->free = p;
}

/* Any thread. */
static void wrap_pool_free_remote(struct wrap_pool *wp, void *p) {
  void *head = atomic_load_explicit(&wp->remote, memory_order_relaxed);
  do
    *(void **)p = head;
  while (!atomic_compare_exchange_weak_explicit(
      &wp->remote, &head, p, memory_order_release, memory_order_relaxed));
}

static void wrap_pool_destroy(struct wrap_pool *wp) {
  void *c = wp->chunks;
  while (c) {
    void *next = *(void **)c;
    fut__free(c);
    c = next;
  }
  wp->free = wp->chunks = NULL;
}

/* Completion inbox of one loop (see the top of the file). */
/* Laid out in two cache lines: what every completing worker touches,
 * and what the loop thread writes on every job (the free list and the
 * wrappers' references), so neither invalidates the other's line. */
struct inbox {
  /* Completed, not drained: a stack (newest first) pushed with CAS and
   * taken whole with an exchange (so no ABA); linked by next_done. */
  _Atomic(struct wrap *) head;
  atomic_bool scheduled;   /* a drain is queued (or being queued) */
  atomic_bool closed;      /* the loop closed: nobody drains head */
  const fut_loop_t *owner; /* the loop; never changes (compared only) */
  pthread_mutex_t lock;    /* taken only to queue a drain and to close */
  fut_loop_t *loop;        /* guarded by lock; NULL once the loop closed */
  char pad[64];            /* keeps the lines apart */
  atomic_uint refs;        /* loop state + live wrappers + queued drain */
  unsigned fork_gen;       /* loop thread: fut__fork_gen when made or
                              re-armed (see inbox_check_fork) */
  struct wrap_pool pool;   /* wrapper memory (see wrap_mem_unref) */
  uint64_t drains;         /* loop thread: drains run (tests) */
  uint64_t delivered;      /* loop thread: completions delivered */
};

struct exec_state {
  struct inbox *inbox;   /* owned reference */
  fut_executor_t *def;   /* default executor (a reference) or NULL */
  bool def_shut;         /* shutdown_default_executor was called */
  struct wrap *inflight; /* wrappers whose cfuture callback may still
                            come (doubly linked, loop thread only) */
  size_t nfast;          /* fast-path items not yet back (loop
                            thread) */
};

/* Two kinds.  A wrapper of any cfuture (fut_wrap_future, or
 * run_in_executor on another executor) registers a cfuture done callback.
 * A run_in_executor job on one of our thread pools is the fast path: the
 * wrapper carries the pool's work item and the cfuture itself (one block
 * from the free list per job, no malloc), and the worker hands the item
 * straight to the inbox (item.done) with no callback registration. */
struct wrap {
  atomic_uint mem;          /* memory owners: loop side + pending callback
                               (fast: loop side + ecf alive) */
  struct inbox *inbox;      /* owned reference */
  fut_cfuture_t *cf;        /* owned reference: dropped with the memory, or
                               (fast) when the loop side goes */
  struct wrap *next_done;   /* inbox stack link: written before the push */
  struct wrap *prev, *next; /* exec_state.inflight links (loop thread) */
  bool inflight;            /* in exec_state.inflight (loop thread) */
  bool fast;                /* item and ecf are in use; never changes */
  struct fut__work_item item; /* fast: the pool's item (its cf reference
                               comes back through the inbox) */
  fut_cfuture_t ecf;        /* fast: the job's cfuture (cf == &ecf) */
  struct fut__ext x;        /* the loop future; last: fut__ext ends with it */
};

static void inbox_unref(struct inbox *ib) {
  if (atomic_fetch_sub_explicit(&ib->refs, 1, memory_order_acq_rel) != 1)
    return;
  wrap_pool_destroy(&ib->pool);
  pthread_mutex_destroy(&ib->lock);
  fut__free(ib);
}

/* The loop part holding each loop's struct exec_state. */
static int exec_part;

/* In a forked child (loop thread, after fut_loop_fork or at close): a
 * parent worker may have been inside ring at the fork, leaving our copy of
 * the lock held forever and `scheduled` set with no drain coming.  No
 * other thread of the child uses the inbox yet: re-arm it.  A drain that
 * really was queued then runs once more, finding nothing. */
static void inbox_check_fork(struct inbox *ib) {
  unsigned gen = fut__fork_generation();
  if (FUT__LIKELY(ib->fork_gen == gen))
    return;
  ib->fork_gen = gen;
  pthread_mutex_init(&ib->lock, NULL);
  atomic_store(&ib->scheduled, false);
}

/* Wrappers come from a per-loop free list (struct wrap_pool): malloc and
 * free were a third of a job's cost on the loop thread.  Only the loop
 * thread allocates.  The last owner usually lets go on the loop thread
 * while it runs the loop (a worker's share travels back through the
 * inbox): then the block goes on the plain list.  Anywhere else (another
 * thread keeping the job's cfuture, a worker finishing after close, the
 * loop not running) it goes on the atomic remote stack. */
static void wrap_mem_unref(struct wrap *w) {
  if (atomic_fetch_sub_explicit(&w->mem, 1, memory_order_acq_rel) != 1)
    return;
  struct inbox *ib = w->inbox;
  if (!w->fast)
    fut_cfuture_unref(w->cf);
  if (fut_get_running_loop() == ib->owner &&
      !atomic_load_explicit(&ib->closed, memory_order_acquire))
    wrap_pool_free(&ib->pool, w);
  else
    wrap_pool_free_remote(&ib->pool, w);
  inbox_unref(ib);
}

/* The embedded cfuture's last reference went (any thread). */
static void ecf_release(fut_cfuture_t *cf) {
  wrap_mem_unref(fut__container_of(cf, struct wrap, ecf));
}

static struct wrap *wrap_of(fut_t *f) {
  return fut__container_of(fut__container_of(f, struct fut__ext, fut),
                           struct wrap, x);
}

static void inflight_remove(fut_loop_t *loop, struct wrap *w) {
  struct exec_state *st = fut__loop_part(loop, exec_part);
  if (!w->inflight)
    return;
  if (w->prev)
    w->prev->next = w->next;
  else
    st->inflight = w->next;
  if (w->next)
    w->next->prev = w->prev;
  w->inflight = false;
}

static bool wrap_cancel(fut_t *f, const char *msg) {
  struct wrap *w = wrap_of(f);
  /* As asyncio's _chain_future: the loop future is cancelled; the job is
   * stopped only if it has not started. */
  fut_cfuture_cancel(w->cf);
  return fut__cancel_base(f, msg);
}

static void wrap_destroy(fut_t *f) {
  struct wrap *w = wrap_of(f);
  if (w->fast)
    fut_cfuture_unref(w->cf); /* may release ecf: its share of mem */
  wrap_mem_unref(w);
}

static const struct fut__ops wrap_ops = {"wrap_future", wrap_cancel,
                                         wrap_destroy};

static void drain(void *p);

static void entry_release(struct wrap *w);

/* Releases the shares of inbox entries nobody will drain (the loop
 * closed).  Any thread. */
static void release_list(struct wrap *list) {
  while (list) {
    struct wrap *w = list;
    list = w->next_done;
    entry_release(w);
  }
}

/* Asks the loop for a drain (the caller turned `scheduled` on). */
__attribute__((noinline)) static void ring(struct inbox *ib) {
  /* Under the inbox lock: the loop cannot finish closing meanwhile (its
   * close hook takes this lock), so ib->loop stays valid. */
  pthread_mutex_lock(&ib->lock);
  if (ib->loop) {
    atomic_fetch_add_explicit(&ib->refs, 1, memory_order_relaxed);
    if (fut_loop_call_soon_threadsafe(ib->loop, drain, ib) != 0) {
      /* Out of memory (the queue could not grow): the entries stay in the
       * inbox, and the loop, woken by its eventfd (no allocation), finds
       * them before it blocks again (before_block). */
      atomic_fetch_sub_explicit(&ib->refs, 1, memory_order_relaxed);
      atomic_store(&ib->scheduled, false);
      fut__door_poke(ib->loop);
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
static bool inbox_push(struct wrap *w) {
  struct inbox *ib = w->inbox;
  if (FUT__UNLIKELY(atomic_load(&ib->closed)))
    return false;
  /* The completer's share moves to the inbox entry.  Once pushed, w may
   * be drained at once; the caller keeps w (and so its inbox reference)
   * alive until this returns (see keep_alive). */
  struct wrap *head = atomic_load_explicit(&ib->head, memory_order_relaxed);
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
  struct wrap *w = arg;
  /* keep_alive: a share of w's own (a line this thread has) rather than a
   * reference on the inbox, which every worker would bounce. */
  atomic_fetch_add_explicit(&w->mem, 1, memory_order_relaxed);
  if (!inbox_push(w))
    wrap_mem_unref(w);
  wrap_mem_unref(w);
}

/* Fast path: the pool is done with the item (it ran, or was cancelled
 * before it started); its cfuture reference comes home with it. */
static void on_item_done(struct fut__work_item *it) {
  struct wrap *w = fut__container_of(it, struct wrap, item);
  fut_cfuture_ref(&w->ecf); /* keep_alive, as on_cf_done */
  if (!inbox_push(w))
    fut_cfuture_unref(&w->ecf);
  fut_cfuture_unref(&w->ecf);
}

/* Drops the share an inbox entry carries. */
static void entry_release(struct wrap *w) {
  if (w->fast)
    fut_cfuture_unref(&w->ecf);
  else
    wrap_mem_unref(w);
}

/* Moves the cfuture's outcome into the loop future (unless it was
 * cancelled meanwhile: a late result is dropped). */
static void deliver(struct wrap *w) {
  fut_t *f = &w->x.fut;
  if (fut_done(f))
    return;
  fut_cfuture_t *cf = w->cf;
  if (fut_cfuture_cancelled(cf)) {
    fut__cancel_base(f, NULL);
    return;
  }
  const char *msg = NULL;
  int err = fut__cfuture_outcome(cf, &msg);
  int r;
  if (err) {
    r = msg ? fut_set_exception(f, err, "%s", msg)
            : fut_set_exception(f, err, NULL);
  } else {
    r = fut__cfuture_copy_result(cf, f);
  }
  if (r)
    fut_set_exception(f, r, "could not deliver the job's outcome: %s",
                      fut_strerror(r));
}

/* Takes every entry, oldest first (the stack is newest first). */
static struct wrap *inbox_take(struct inbox *ib) {
  struct wrap *list = atomic_exchange(&ib->head, NULL), *fifo = NULL;
  while (list) {
    struct wrap *next = list->next_done;
    list->next_done = fifo;
    fifo = list;
    list = next;
  }
  return fifo;
}

/* The thread-safe trampoline: runs on the loop thread. */
static void drain(void *p) {
  struct inbox *ib = p;
  /* Cleared first: a push after the take rings for another drain. */
  atomic_store(&ib->scheduled, false);
  struct wrap *list = inbox_take(ib);
  fut_loop_t *loop = ib->loop; /* loop thread: stable while it runs */
  struct exec_state *st = fut__loop_part(loop, exec_part);
  ib->drains++;
  while (list) {
    struct wrap *w = list;
    list = w->next_done;
    ib->delivered++;
    inflight_remove(loop, w);
    if (w->fast)
      st->nfast--;
    deliver(w);
    entry_release(w);     /* the completer's share */
    fut_unref(&w->x.fut); /* the in-flight reference */
  }
  inbox_unref(ib);
}

static void drain_release(void *p) {
  inbox_unref(p);
}

static void executor_close(fut_loop_t *loop, void *state);
static void before_block(fut_loop_t *loop, void *state);

__attribute__((constructor)) static void glue_init(void) {
  static const struct fut__loop_part part = {.name = "executors",
                                             .rank = FUT__RANK_EXECUTORS,
                                             .close = executor_close,
                                             .before_block = before_block};
  fut__register_release(drain, drain_release);
  exec_part = fut__loop_part_register(&part);
}

static void executor_close(fut_loop_t *loop, void *state) {
  struct exec_state *st = state;
  if (st->def) {
    /* asyncio's close: shutdown(wait=False).  Jobs already running finish
     * on their threads; their results are dropped with the inbox below.
     * Waiting is fut_loop_shutdown_default_executor's job (fut_run calls
     * it), because a stuck job must not hang close. */
    fut_executor_shutdown(st->def, false, false, 0);
    fut_executor_free(st->def);
    st->def = NULL;
  }
  struct inbox *ib = st->inbox;
  inbox_check_fork(ib);
  /* Close the inbox: completers from now on drop their share themselves
   * (see inbox_push). */
  pthread_mutex_lock(&ib->lock);
  ib->loop = NULL;
  atomic_store(&ib->closed, true);
  pthread_mutex_unlock(&ib->lock);
  struct wrap *list = inbox_take(ib);
  while (list) {
    struct wrap *w = list;
    list = w->next_done;
    inflight_remove(loop, w);
    entry_release(w);
    fut_unref(&w->x.fut);
  }
  while (st->inflight) {
    struct wrap *w = st->inflight;
    inflight_remove(loop, w);
    /* If the callback is still registered it will never run: drop its
     * share here.  Otherwise it is running now and drops it itself.  A
     * fast-path item always comes back: its completer finds the inbox
     * closed and drops the pool's reference itself. */
    if (!w->fast && fut_cfuture_remove_done_callback(w->cf, on_cf_done, w) > 0)
      wrap_mem_unref(w);
    fut_unref(&w->x.fut);
  }
  inbox_unref(ib);
  fut__free(st);
}

/* How long the loop, about to block with fast-path jobs in flight, first
 * waits for a completion: a short job is back within a few microseconds,
 * sooner than the loop thread can sleep in epoll_wait and be woken by the
 * doorbell.  Bounded, and only while jobs are out, so an idle loop never
 * spins; yielding, so a worker sharing the core runs. */
#define LOOP_SPIN_NS FUT_US(20)

static void before_block(fut_loop_t *loop, void *state) {
  struct exec_state *st = state;
  struct inbox *ib = st->inbox;
  if (FUT__UNLIKELY(atomic_load_explicit(&ib->head, memory_order_relaxed) &&
                    !atomic_exchange(&ib->scheduled, true))) {
    /* Completions nobody queued a drain for (a ring failed: see ring):
     * drain them here, as a queued drain would. */
    atomic_fetch_add_explicit(&ib->refs, 1, memory_order_relaxed);
    drain(ib);
    return;
  }
  if (st->nfast == 0)
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

static int get_state(fut_loop_t *loop, struct exec_state **out) {
  if ((*out = fut__loop_part(loop, exec_part))) {
    inbox_check_fork((*out)->inbox);
    return 0;
  }
  struct exec_state *st = fut__calloc(1, sizeof *st);
  struct inbox *ib = fut__calloc(1, sizeof *ib);
  if (!st || !ib) {
    fut__free(st);
    fut__free(ib);
    return fut__error(-ENOMEM, "out of memory for the loop's executor state");
  }
  pthread_mutex_init(&ib->lock, NULL);
  atomic_init(&ib->refs, 1);
  atomic_init(&ib->closed, false);
  atomic_init(&ib->scheduled, false);
  atomic_init(&ib->head, NULL);
  wrap_pool_init(&ib->pool, sizeof(struct wrap));
  ib->loop = loop;
  ib->owner = loop;
  ib->fork_gen = fut__fork_generation();
  st->inbox = ib;
  fut__loop_part_set(loop, exec_part, st);
  *out = st;
  return 0;
}

/* A wrapper with its loop future initialised, two memory owners (the loop
 * side and the completion side) and a reference to the inbox. */
static int wrap_new(fut_loop_t *loop, struct exec_state *st, bool fast,
                    const char *what, struct wrap **out) {
  struct wrap *w = wrap_pool_alloc(&st->inbox->pool);
  if (!w)
    return fut__error(-ENOMEM, "%s: out of memory", what);
  int err = fut__ext_init(loop, &w->x, &wrap_ops);
  if (err) {
    wrap_pool_free(&st->inbox->pool, w);
    return err;
  }
  atomic_init(&w->mem, 2);
  w->fast = fast;
  w->inbox = st->inbox;
  atomic_fetch_add_explicit(&w->inbox->refs, 1, memory_order_relaxed);
  w->next_done = NULL;
  *out = w;
  return 0;
}

/* Wraps cf into a new loop future, taking over the caller's reference to
 * cf on success (on failure the caller keeps it).  Loop thread; the loop
 * was checked usable. */
static int wrap_adopt(fut_loop_t *loop, struct exec_state *st,
                      fut_cfuture_t *cf, fut_t **out) {
  struct wrap *w;
  int err = wrap_new(loop, st, false, "fut_wrap_future", &w);
  if (err)
    return err;
  w->cf = cf;
  /* In flight: the loop holds a reference until the outcome arrives. */
  fut_ref(&w->x.fut);
  w->prev = NULL;
  w->next = st->inflight;
  if (st->inflight)
    st->inflight->prev = w;
  st->inflight = w;
  w->inflight = true;
  /* May run on_cf_done inline (cf already done): it queues a drain. */
  err = fut_cfuture_add_done_callback(cf, on_cf_done, w);
  if (err) {
    inflight_remove(loop, w);
    atomic_fetch_sub(&w->mem, 1); /* the callback will never run */
    fut_cfuture_ref(cf);          /* the wrapper's unref must not take the
                                     caller's reference */
    fut_unref(&w->x.fut);
    fut_unref(&w->x.fut);
    return err;
  }
  *out = &w->x.fut;
  return 0;
}

int fut_wrap_future(fut_loop_t *loop, fut_cfuture_t *cf, fut_t **out) {
  if (!out)
    return fut__error(-EINVAL, "fut_wrap_future: NULL out");
  *out = NULL;
  if (!loop || !cf)
    return fut__error(-EINVAL, "fut_wrap_future: NULL %s",
                      !loop ? "loop" : "cfuture");
  int err = fut__check_usable(loop);
  if (err)
    return err;
  struct exec_state *st;
  if ((err = get_state(loop, &st)))
    return err;
  fut_cfuture_ref(cf);
  if ((err = wrap_adopt(loop, st, cf, out)))
    fut_cfuture_unref(cf);
  return err;
}

/* run_in_executor on one of our thread pools (see struct wrap). */
static int run_fast(fut_loop_t *loop, struct exec_state *st, fut_executor_t *ex,
                    const fut_job_t *job, fut_t **out) {
  struct wrap *w;
  int err = wrap_new(loop, st, true, "fut_run_in_executor", &w);
  if (err)
    return err;
  /* mem: the loop side and ecf; ecf refs: the wrapper's and the pool's. */
  fut__cfuture_init(&w->ecf, ecf_release, 2);
  w->cf = &w->ecf;
  w->item.cf = &w->ecf;
  w->item.done = on_item_done;
  w->item.job = *job;
  if ((err = fut__thread_pool_push(ex, &w->item))) {
    fut_cfuture_unref(&w->ecf); /* the pool's */
    fut_unref(&w->x.fut);       /* frees the rest */
    return err;
  }
  /* In flight: the loop holds a reference until the item comes back. */
  fut_ref(&w->x.fut);
  st->nfast++;
  w->prev = NULL;
  w->next = st->inflight;
  if (st->inflight)
    st->inflight->prev = w;
  st->inflight = w;
  w->inflight = true;
  *out = &w->x.fut;
  return 0;
}

/* Lets go of a default executor without blocking the loop thread: when
 * the loop held the last reference, a plain free would wait for the jobs
 * still running (and deadlock if one waits for the loop).  Like a dropped
 * ThreadPoolExecutor in Python, queued jobs still run, then its threads
 * exit. */
static void release_default(fut_executor_t *ex) {
  if (ex && atomic_load(&ex->refs) == 1 && !atomic_load(&ex->shut))
    fut_executor_shutdown(ex, false, false, 0);
  fut_executor_free(ex);
}

static int default_executor(fut_loop_t *loop, fut_executor_t **out) {
  struct exec_state *st;
  int err = get_state(loop, &st);
  if (err)
    return err;
  if (st->def && fut__thread_pool_forked(st->def)) {
    /* The loop was carried into a forked child (fut_loop_fork): the
     * parent's pool has no threads here; start a fresh one. */
    fut_executor_free(st->def);
    st->def = NULL;
  }
  if (!st->def) {
    if (st->def_shut)
      return fut__error(FUT_E_SHUTDOWN, "fut_run_in_executor: the default "
                                        "executor has been shut down");
    if ((err = fut_thread_pool_new(0, &st->def)))
      return err;
  }
  *out = st->def;
  return 0;
}

int fut_run_in_executor_job(fut_loop_t *loop, fut_executor_t *ex,
                            const fut_job_t *job, fut_t **out) {
  if (!out)
    return fut__error(-EINVAL, "fut_run_in_executor: NULL out");
  *out = NULL;
  if (!loop)
    return fut__error(-EINVAL, "fut_run_in_executor: NULL loop");
  int err = fut__check_usable(loop);
  if (err)
    return err;
  if ((err = check_job(job, "fut_run_in_executor")))
    return err;
  struct exec_state *st;
  if ((err = get_state(loop, &st)))
    return err;
  if (!ex && (err = default_executor(loop, &ex)))
    return err;
  /* Jobs whose bytes would need copying take the generic path. */
  if (fut__is_thread_pool(ex) && (job->fn || job->data_free || job->len == 0))
    return run_fast(loop, st, ex, job, out);
  fut_cfuture_t *cf;
  if ((err = fut_executor_submit_job(ex, job, &cf)))
    return err;
  if ((err = wrap_adopt(loop, st, cf, out))) {
    fut_cfuture_cancel(cf); /* best effort: nobody will read it */
    fut_cfuture_unref(cf);
  }
  return err;
}

int fut_run_in_executor(fut_loop_t *loop, fut_executor_t *ex, fut_job_fn fn,
                        void *arg, fut_t **out) {
  if (!fn) {
    if (out)
      *out = NULL;
    return fut__error(-EINVAL, "fut_run_in_executor: NULL function");
  }
  fut_job_t job = fut_job_call(fn, arg);
  return fut_run_in_executor_job(loop, ex, &job, out);
}

int fut_loop_set_default_executor(fut_loop_t *loop, fut_executor_t *ex) {
  if (!loop || !ex)
    return fut__error(-EINVAL, "fut_loop_set_default_executor: NULL %s",
                      !loop ? "loop" : "executor");
  int err = fut__check_usable(loop);
  if (err)
    return err;
  struct exec_state *st;
  if ((err = get_state(loop, &st)))
    return err;
  fut_executor_t *old = st->def;
  st->def = fut_executor_ref(ex);
  st->def_shut = false;
  release_default(old);
  return 0;
}

int fut_loop_shutdown_default_executor(fut_loop_t *loop, uint64_t timeout_ns) {
  if (!loop)
    return fut__error(-EINVAL, "fut_loop_shutdown_default_executor: NULL "
                               "loop");
  int err = fut__check_thread(loop);
  if (err)
    return err;
  struct exec_state *st = fut__loop_part(loop, exec_part);
  if (!st) {
    if (loop->closed)
      return 0;
    if ((err = get_state(loop, &st)))
      return err;
  }
  st->def_shut = true;
  fut_executor_t *ex = st->def;
  st->def = NULL;
  if (!ex)
    return 0;
  err = fut_executor_shutdown(ex, true, false, timeout_ns);
  fut_executor_free(ex);
  if (err == -ETIMEDOUT)
    return fut__error(err, "fut_loop_shutdown_default_executor: jobs still "
                           "running after the timeout");
  return err;
}

void fut__executor_counters(fut_loop_t *loop, uint64_t *drains,
                            uint64_t *delivered) {
  struct exec_state *st = fut__loop_part(loop, exec_part);
  *drains = st ? st->inbox->drains : 0;
  *delivered = st ? st->inbox->delivered : 0;
}
