/* libfuture — the executor layer's private interface: the concurrent
 * future's layout, the executor object's helpers, the thread pool's work
 * items, and the completion inbox that brings outcomes to a loop.  Shared
 * by the files of src/exec/ and their tests.  Includes the future layer
 * (and so loop and base).  Never installed.
 *
 *   cfuture.c          concurrent futures: state, completion, callbacks
 *   cfuture_wait.c     blocking waits: wait, wait_many, as_completed
 *   executor.c         the executor object, submit/map, job helpers
 *   thread_pool.c      the thread pool behind the executor vtable
 *   inbox.c            loop futures wrapping cfutures; the completion inbox
 *   run_in_executor.c  wrap_future, run_in_executor, the default executor
 *
 * Dependencies inside the layer run one way: the thread pool uses the
 * executor object and cfutures and knows nothing of loops; the loop glue
 * (inbox.c, run_in_executor.c) uses the thread pool through the
 * fut__thread_pool_* functions below. */
#ifndef FUT_EXECUTOR_INTERNAL_H
#define FUT_EXECUTOR_INTERNAL_H

#include "future/internal.h"

#include <sched.h>

/* Close rank of the executors' loop part: executor glue closes after the
 * tasks (a task may still be waiting on a job) and before the
 * combinators. */
#define FUT__RANK_EXECUTORS 30

/* The absolute CLOCK_MONOTONIC time (for pthread_cond_timedwait on a
 * monotonic condition variable) timeout_ns from now, saturating; sets
 * *forever, and the deadline is then unused, when timeout_ns is
 * FUT_FOREVER. */
static inline struct timespec fut__deadline_of(uint64_t timeout_ns,
                                               bool *forever) {
  struct timespec ts = {0, 0};
  *forever = timeout_ns == FUT_FOREVER;
  if (*forever)
    return ts;
  uint64_t now = fut__now();
  uint64_t when = now + timeout_ns < now ? UINT64_MAX : now + timeout_ns;
  ts.tv_sec = (time_t)(when / 1000000000u);
  ts.tv_nsec = (long)(when % 1000000000u);
  return ts;
}

/* ---- concurrent futures (cfuture.c, cfuture_wait.c) --------------------
 * The layout is private to the executor files: the loop glue embeds one
 * cfuture in each fast-path wrapper (one allocation per job). */

/* A done callback registered on a cfuture. */
struct fut__cfuture_callback {
  fut_cfuture_done_cb cb;
  void *arg;
};

/* The registrations after a cfuture's first (malloc'd, grown by
 * doubling). */
struct fut__cfuture_cbvec {
  uint32_t len, cap;
  struct fut__cfuture_callback e[];
};

/* 80 bytes (run_in_executor embeds one in every job's wrapper: a burst of
 * jobs is bounded by how many of them the caches hold). */
struct fut_cfuture {
  atomic_uint refs;   /* > 0 while alive */
  atomic_int state;   /* fut_cfuture_state_t; FINISHED/CANCELLED
                         final */
  int err;            /* 0, the exception's code, or -ECANCELED */
  atomic_bool locked; /* the lock (fut__cfuture_lock): guards
                         everything below until done */
  uint8_t kind;       /* FUT__V_* of value; set before done */
  /* Set at init, never changes: the last unref hands the memory to the
   * embedded-release hook (fut__cfuture_set_embedded_release) instead of
   * fut__free (the cfuture lives inside a bigger object). */
  bool embedded;
  union fut__value value; /* the result */
  char *msg;              /* exception message or NULL */
  /* Registered, not yet run, in order: cb0 (cb0.cb NULL when there is
   * none), then `more`. */
  struct fut__cfuture_callback cb0;
  struct fut__cfuture_cbvec *more;
  /* The blocking waits watching it (cfuture_wait.c); empty once done. */
  struct fut__qnode waiters;
};

/* A cfuture's size rounded up so that what follows it is aligned (a work
 * item after its cfuture: fut__work_item_cf). */
#define FUT__CF_SIZE ((sizeof(struct fut_cfuture) + 15u) & ~(size_t)15u)

static inline bool fut__cfuture_final(int state) {
  return state == FUT_CFUTURE_FINISHED || state == FUT_CFUTURE_CANCELLED;
}

static inline void fut__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* The cfuture's lock: a spin-then-yield flag (see cfuture.c).  Nothing
 * blocks or calls out while holding it. */
static inline void fut__cfuture_lock(fut_cfuture_t *cf) {
  if (FUT__LIKELY(
          !atomic_exchange_explicit(&cf->locked, true, memory_order_acquire)))
    return;
  for (unsigned spins = 0;;) {
    while (atomic_load_explicit(&cf->locked, memory_order_relaxed)) {
      /* The holder may have been preempted: stop burning its CPU. */
      if (++spins < 100)
        fut__cpu_relax();
      else
        sched_yield();
    }
    if (!atomic_exchange_explicit(&cf->locked, true, memory_order_acquire))
      return;
  }
}

static inline void fut__cfuture_unlock(fut_cfuture_t *cf) {
  atomic_store_explicit(&cf->locked, false, memory_order_release);
}

/* With cf's lock held, cf just done (failed: finished with an error):
 * counts the completion in every waiter watching cf and empties
 * cf->waiters.  In cfuture_wait.c. */
void fut__cfuture_wake_waiters(fut_cfuture_t *cf, bool failed);

/* Initialises a cfuture: pending, `refs` references, no callbacks.  An
 * embedded one goes, after its last unref (any thread), to the hook set
 * with fut__cfuture_set_embedded_release instead of fut__free. */
void fut__cfuture_init(fut_cfuture_t *cf, bool embedded, unsigned refs);

/* Sets the one function that takes back the memory of embedded cfutures
 * (the loop glue's wrappers; at load time, before any cfuture exists).
 * The result, message and callbacks are already released. */
void fut__cfuture_set_embedded_release(void (*release)(fut_cfuture_t *cf));

/* Finishes cf with a NULL pointer result (Python's None) unless it is
 * done already: what a call job that returned 0 without setting cf
 * leaves.  No error. */
void fut__cfuture_finish_none(fut_cfuture_t *cf);

/* The outcome of a done cfuture without waiting: 0, the error code or
 * -ECANCELED; *msg the exception message (borrowed) or NULL. */
int fut__cfuture_outcome(fut_cfuture_t *cf, const char **msg);

/* Finishes the loop future f with the result of the finished cfuture cf
 * (which must not have failed): a pointer result is borrowed (f's owner
 * must keep cf alive as long as f), bytes are copied, integers copied.
 * Returns fut_set_result*'s error. */
int fut__cfuture_copy_result(fut_cfuture_t *cf, fut_t *f);

/* fut_cfuture_new with `extra` bytes of caller space (16-byte aligned,
 * uninitialised) after the cfuture in the same allocation, written to
 * *extra_out; it lives as long as the cfuture.  Errors: -ENOMEM. */
int fut__cfuture_new_ext(size_t extra, fut_cfuture_t **out, void **extra_out);

/* ---- the executor object and jobs (executor.c) ------------------------ */

/* Visible to the layer so the hot paths (run_in_executor on a thread
 * pool) read it without calls. */
struct fut_executor {
  const fut_executor_ops_t *ops; /* never changes */
  void *self;                    /* implementation object; never changes */
  atomic_uint refs;              /* > 0 while alive */
  atomic_bool shut;              /* fut_executor_shutdown was called */
};

/* Checks a job descriptor: exactly one function, data for its length.
 * Returns 0 or -EINVAL with a detail naming `what`. */
int fut__job_check(const fut_job_t *job, const char *what);

/* Drops a reference to ex without blocking: when it is the last one and ex
 * was not shut down, shuts it down first without waiting (queued jobs still
 * run, then its threads exit), as a dropped Python executor.  NULL is a
 * no-op. */
void fut__executor_release_nowait(fut_executor_t *ex);

/* ---- the thread pool (thread_pool.c) ----------------------------------- */

struct fut__work_item;

/* Where a finished work item goes instead of dropping its cfuture
 * reference: done(it) is called once, in the thread that finished with
 * the item (a worker, or the caller of shutdown or of a failing
 * initializer); it takes over the reference, and the pool never touches
 * the item again.  Embedded in its owner (the loop glue's inbox), which
 * the item's sink pointer so also names. */
struct fut__item_sink {
  void (*done)(struct fut__work_item *it);
};

/* A thread pool's work item: 32 bytes, always right after its job's
 * cfuture (at FUT__CF_SIZE: fut__work_item_cf).  Items of
 * fut_executor_submit live in the extra space of their cfuture;
 * run_in_executor embeds cfuture and item in its wrapper. */
struct fut__work_item {
  struct fut__work_item *next; /* pool queue link */
  /* NULL: the pool drops the cfuture's reference when the job is over
   * (ran, was cancelled, or failed for a broken pool).  Else the sink
   * takes it. */
  const struct fut__item_sink *sink;
  /* A call job: fn(arg, cf).  fn NULL: a bytes job, and arg its
   * fut_job_t (after the item, owning its bytes until the item is
   * freed). */
  fut_job_fn fn;
  void *arg;
};

/* The cfuture of a work item (the pool holds one reference to it). */
static inline fut_cfuture_t *fut__work_item_cf(struct fut__work_item *it) {
  return (fut_cfuture_t *)(void *)((char *)it - FUT__CF_SIZE);
}

/* Runs a call job for cf as fut_job_run does (cf marked running, or the
 * job skipped when cancelled); returns whether it ran. */
bool fut__job_run_call(fut_job_fn fn, void *arg, fut_cfuture_t *cf);

/* The thread pool's vtable (thread_pool.c). */
extern const fut_executor_ops_t fut__thread_pool_ops;

/* Whether ex is a thread pool from fut_thread_pool_new. */
static inline bool fut__is_thread_pool(const fut_executor_t *ex) {
  return ex && ex->ops == &fut__thread_pool_ops;
}
/* Whether ex is a thread pool created before a fork of this process (in
 * the child: it has no threads; submit fails with FUT_E_FORKED, shutdown
 * neither waits nor blocks, free releases the memory only). */
bool fut__thread_pool_forked(const fut_executor_t *ex);
/* Queues it on the thread pool ex: returns 0 (the pool took the
 * reference of it's cfuture; it->sink, if set, will be called) or a negative
 * error (FUT_E_SHUTDOWN, FUT_E_BROKEN_POOL, a thread creation error; the caller
 * keeps it).  Allocates nothing.  Any thread. */
int fut__thread_pool_push(fut_executor_t *ex, struct fut__work_item *it);

/* Test hook: threads a thread pool currently has (started, not exited). */
size_t fut__thread_pool_nthreads(fut_executor_t *ex);
/* Test hook: workers of a thread pool waiting for work. */
size_t fut__thread_pool_nidle(fut_executor_t *ex);

/* ---- loop glue: the completion inbox (inbox.c) ------------------------- */

/* One loop's completion inbox: loop futures wrapping cfutures (or carrying
 * fast-path jobs) come back through it.  Refcounted; made and closed on
 * the loop thread, pushed to from any thread. */
struct fut__inbox;

/* A new inbox for loop.  Errors: -ENOMEM (no detail recorded). */
int fut__inbox_new(fut_loop_t *loop, struct fut__inbox **out);

/* In a forked child (loop thread, after fut_loop_fork or at close): a
 * parent worker may have been inside ring at the fork, leaving our copy of
 * the lock held forever and `scheduled` set with no drain coming.  No
 * other thread of the child uses the inbox yet: re-arm it.  A drain that
 * really was queued then runs once more, finding nothing. */
void fut__inbox_check_fork(struct fut__inbox *ib);

/* Loop close: later completions are dropped by their completers; queued
 * ones and wrappers still in flight lose the loop's reference; drops the
 * caller's reference to ib. */
void fut__inbox_close(struct fut__inbox *ib);

/* The loop is about to block: drains completions nobody queued a drain
 * for, and with fast-path jobs out, waits briefly for the doorbell. */
void fut__inbox_before_block(fut_loop_t *loop, struct fut__inbox *ib);

/* Wraps cf into a new loop future (owned, to *out) that completes like cf,
 * taking over the caller's reference to cf on success (on failure the
 * caller keeps it).  Loop thread; the loop was checked usable.  Errors:
 * -ENOMEM, fut_cfuture_add_done_callback's. */
int fut__inbox_wrap(fut_loop_t *loop, struct fut__inbox *ib, fut_cfuture_t *cf,
                    fut_t **out);

/* The fast path of run_in_executor on pool, one of our thread pools, for
 * the call job fn(arg): the job's work item and cfuture live in the new
 * loop future's wrapper, and the worker hands the item straight back to
 * the inbox.  Loop thread.  Errors: -ENOMEM, fut__thread_pool_push's. */
int fut__inbox_run_job(fut_loop_t *loop, struct fut__inbox *ib,
                       fut_executor_t *pool, fut_job_fn fn, void *arg,
                       fut_t **out);

/* Drains run and completions delivered so far. */
void fut__inbox_counters(const struct fut__inbox *ib, uint64_t *drains,
                         uint64_t *delivered);

/* ---- loop glue: run_in_executor.c -------------------------------------- */

/* Test hook: how many completion drains ran on loop and how many
 * completions they delivered (0 before the first executor call). */
void fut__executor_counters(fut_loop_t *loop, uint64_t *drains,
                            uint64_t *delivered);

#endif
