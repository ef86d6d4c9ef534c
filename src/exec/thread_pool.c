/* The thread pool (ThreadPoolExecutor) behind the executor vtable.
 *
 * One mutex guards a FIFO of work items and the worker bookkeeping.
 * Submissions do not take it in the common case: a submitter pushes its
 * item onto a lock-free stack (`incoming`, one CAS) and then reads the
 * worker counts; only when a worker must be woken or started, or the pool
 * is shut down, does it take the lock.  A worker that finds the FIFO
 * empty moves the whole stack into it, oldest first (one exchange, under
 * the lock: so no ABA), so jobs still start in submission order.  A
 * submitter's push and its read of the counts pair (seq_cst) with a
 * worker's count update and its re-read of the stack, so either the
 * submitter sees the worker asleep and wakes it, or the worker sees the
 * job.
 * Workers start on demand, as in Python: a submission wakes an idle worker
 * when one is waiting for it, and otherwise starts a new thread while fewer
 * than max_workers exist.  A worker runs its item unlocked through
 * fut_job_run, which marks the cfuture running (or finds it cancelled and
 * skips the job): so cancel-if-not-started needs no extra locking here.
 *
 * Wake-ups are the cost of a pool (a futex wake and a context switch per
 * job when workers sleep between jobs).  So a worker that runs out of work
 * first polls an atomic queue length for up to SPIN_NS before it sleeps;
 * at most one worker polls at a time, and a submission that the poller
 * will pick up wakes nobody.  A steady stream of jobs then flows without a
 * futex wake per job.  The poller yields the CPU between polls: on a
 * machine with fewer cores than busy threads, a pure spin would take the
 * core the submitting loop thread needs (measured: twice slower).
 *
 * The pool memory is refcounted: one reference for the executor, one per
 * live worker.  A shutdown that does not wait (or runs out of time) lets
 * the executor be freed while workers finish their last job; the last one
 * out frees the pool. */
#include "exec/internal.h"

#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#define MAX_WORKERS_LIMIT 4096u

/* How long an out-of-work worker polls before sleeping. */
#define SPIN_NS FUT_US(50)

struct worker {
  struct worker *next;      /* in pool->workers */
  struct thread_pool *pool; /* never changes */
  pthread_t tid;            /* valid once started */
  unsigned idx;             /* for the thread name */
  bool exited;              /* guarded by pool->lock: left the work loop */
};

/* In three parts kept apart by padding (the block is only 16-byte
 * aligned): what a submitter reads on every job (written rarely), the
 * stack every submission pushes to, and the workers' FIFO under the lock
 * (written on every job).  Sharing a line, each would invalidate the
 * others' readers. */
struct thread_pool {
  /* The four counts and `closed` are written under lock, and read
   * without it by a submitter (seq_cst: see the top comment). */
  atomic_bool closed;     /* shutdown || broken */
  atomic_bool spinning;   /* a worker polls qlen and incoming */
  atomic_size_t nthreads; /* started, not exited */
  atomic_size_t nidle;    /* waiting on work_cv and not yet signalled */
  atomic_size_t nwoken;   /* signalled, not yet back from the wait (ready
                             for a job) */
  size_t max_workers;     /* >= 1; never changes */
  unsigned fork_gen;      /* fut__fork_generation() at creation;
                             never changes */
  char pad1[64];
  /* Submitted, not yet in the FIFO: a stack (newest first) pushed with
   * CAS by any thread, taken whole only under lock. */
  _Atomic(struct fut__work_item *) incoming;
  char pad2[64];
  pthread_mutex_t lock;
  struct fut__work_item *head, *tail; /* guarded by lock: queued, not started */
  size_t nqueued;                     /* guarded by lock: items in the FIFO */
  atomic_size_t qlen;                 /* nqueued, readable without the lock;
                                         SIZE_MAX once shut down or broken */
  pthread_cond_t work_cv; /* signalled on new work, shutdown, broken */
  pthread_cond_t exit_cv; /* broadcast when a worker exits */
  unsigned next_idx;      /* guarded by lock: next thread name index */
  struct worker *workers; /* guarded by lock: not yet joined */
  bool shutdown;          /* guarded by lock: refuses submissions */
  bool broken;            /* guarded by lock: an initializer failed */
  int broken_err;         /* guarded by lock: the initializer's code */
  atomic_uint refs;       /* executor + live workers */
  fut_init_fn init;       /* never changes */
  void *initarg;          /* never changes */
  char prefix[16];        /* thread name prefix; never changes */
};

/* Whether p was made before a fork of this process.  Such a pool has no
 * threads in the child, and its lock and condition variables may be
 * frozen in the state a parent thread left them in: the child must not
 * wait on them. */
static bool forked(const struct thread_pool *p) {
  return p->fork_gen != fut__fork_generation();
}

static int forked_error(const struct thread_pool *p, const char *what) {
  return fut__error(FUT_E_FORKED,
                    "%s: thread pool %s was created before a "
                    "fork: its threads do not exist in this child",
                    what, p->prefix);
}

static void pool_unref(struct thread_pool *p) {
  if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
    return;
  struct worker *w = p->workers;
  while (w) {
    struct worker *next = w->next;
    fut__free(w);
    w = next;
  }
  pthread_cond_destroy(&p->work_cv);
  pthread_cond_destroy(&p->exit_cv);
  pthread_mutex_destroy(&p->lock);
  fut__free(p);
}

/* Releases what the item holds; the item's memory goes with its cfuture
 * or is handed back to its owner by its sink. */
static void item_free(struct fut__work_item *it) {
  if (FUT__UNLIKELY(!it->fn)) {
    const fut_job_t *job = it->arg;
    if (job->data_free)
      job->data_free((void *)(uintptr_t)job->data);
  }
  if (it->sink)
    it->sink->done(it);
  else
    fut_cfuture_unref(fut__work_item_cf(it));
}

/* Runs the item's job (or finds its cfuture cancelled). */
static void item_run(struct fut__work_item *it) {
  if (FUT__LIKELY(it->fn != NULL))
    fut__job_run_call(it->fn, it->arg, fut__work_item_cf(it));
  else
    fut_job_run(it->arg, fut__work_item_cf(it));
}

/* With p->lock held: moves the incoming stack to the FIFO's tail, oldest
 * first.  Returns whether the FIFO has items. */
static bool absorb_incoming(struct thread_pool *p) {
  if (atomic_load(&p->incoming) != NULL) {
    struct fut__work_item *list = atomic_exchange(&p->incoming, NULL);
    struct fut__work_item *fifo = NULL, *last = list;
    size_t n = 0;
    while (list) {
      struct fut__work_item *next = list->next;
      list->next = fifo;
      fifo = list;
      list = next;
      n++;
    }
    if (p->tail)
      p->tail->next = fifo;
    else
      p->head = fifo;
    p->tail = last;
    p->nqueued += n;
    if (atomic_load_explicit(&p->qlen, memory_order_relaxed) != SIZE_MAX)
      atomic_store_explicit(&p->qlen, p->nqueued, memory_order_relaxed);
  }
  return p->head != NULL;
}

/* With p->lock held: removes it from the FIFO if it is there (a
 * submission that lost a race with shutdown or a failed thread start).
 * Returns whether it was. */
static bool unqueue(struct thread_pool *p, struct fut__work_item *it) {
  absorb_incoming(p);
  struct fut__work_item *prev = NULL;
  for (struct fut__work_item *i = p->head; i; prev = i, i = i->next) {
    if (i != it)
      continue;
    if (prev)
      prev->next = it->next;
    else
      p->head = it->next;
    if (p->tail == it)
      p->tail = prev;
    p->nqueued--;
    if (atomic_load_explicit(&p->qlen, memory_order_relaxed) != SIZE_MAX)
      atomic_store_explicit(&p->qlen, p->nqueued, memory_order_relaxed);
    return true;
  }
  return false;
}

static struct fut__work_item *take_queue(struct thread_pool *p) {
  absorb_incoming(p);
  struct fut__work_item *list = p->head;
  p->head = p->tail = NULL;
  p->nqueued = 0;
  atomic_store_explicit(&p->qlen, 0, memory_order_relaxed);
  return list;
}

/* Without the lock: polls for work for up to SPIN_NS, yielding between
 * polls. */
static void spin_for_work(struct thread_pool *p) {
  uint64_t start = fut__now();
  for (unsigned i = 1;; i++) {
    if (atomic_load_explicit(&p->qlen, memory_order_relaxed) != 0 ||
        atomic_load_explicit(&p->incoming, memory_order_relaxed) != NULL)
      return;
    sched_yield();
    if (fut__now() - start > SPIN_NS)
      return;
  }
}

static void fail_items(struct fut__work_item *list, int err,
                       const char *prefix) {
  while (list) {
    struct fut__work_item *it = list;
    list = it->next;
    fut_cfuture_set_exception(fut__work_item_cf(it), FUT_E_BROKEN_POOL,
                              "thread pool %s is broken: a worker's "
                              "initializer failed (%s)",
                              prefix, fut_err_name(err));
    item_free(it);
  }
}

/* Runs the pool's initializer, if any, in a new worker.  Returns whether
 * the worker may serve; else the initializer failed and broke the pool:
 * what was queued fails, and so will every later submission. */
static bool run_initializer(struct thread_pool *p) {
  if (!p->init)
    return true;
  int r = p->init(p->initarg);
  if (r == 0)
    return true;
  pthread_mutex_lock(&p->lock);
  if (!p->broken) {
    p->broken = true;
    p->broken_err = r < 0 ? r : FUT_E_JOB_FAILED;
  }
  atomic_store(&p->closed, true);
  struct fut__work_item *list = take_queue(p);
  atomic_store_explicit(&p->qlen, SIZE_MAX, memory_order_relaxed);
  pthread_cond_broadcast(&p->work_cv);
  pthread_mutex_unlock(&p->lock);
  fail_items(list, r < 0 ? r : FUT_E_JOB_FAILED, p->prefix);
  return false;
}

/* The work loop, entered and left with p->lock held: runs queued items
 * until the pool is shut down (and the queue is empty) or broken. */
static void serve(struct thread_pool *p) {
  bool spun = false;
  for (;;) {
    if (!p->head && !absorb_incoming(p) && !p->shutdown && !p->broken) {
      if (!spun && !p->spinning) {
        p->spinning = true;
        pthread_mutex_unlock(&p->lock);
        spin_for_work(p);
        pthread_mutex_lock(&p->lock);
        p->spinning = false;
        spun = true;
        continue;
      }
      p->nidle++;
      /* After counting ourselves idle (a submitter that pushed before it
       * may not have seen us): look again. */
      if (absorb_incoming(p)) {
        p->nidle--;
        continue;
      }
      pthread_cond_wait(&p->work_cv, &p->lock);
      /* A signal moved us from nidle to nwoken; a broadcast or a spurious
       * wake-up did not. */
      if (p->nwoken > 0)
        p->nwoken--;
      else
        p->nidle--;
      continue;
    }
    struct fut__work_item *it = p->head;
    if (!it)
      return;
    p->head = it->next;
    if (!p->head)
      p->tail = NULL;
    p->nqueued--;
    atomic_store_explicit(&p->qlen, p->nqueued, memory_order_relaxed);
    /* More work and nobody else on the way: pass the wake-up on (see
     * enqueue), so jobs still spread over the sleepers. */
    bool wake = (p->head || atomic_load(&p->incoming)) && p->nidle > 0 &&
                p->nwoken == 0 && !p->spinning;
    if (wake) {
      p->nidle--;
      p->nwoken++;
    }
    pthread_mutex_unlock(&p->lock);
    /* After the unlock: the woken thread does not block on our lock.  The
     * counts were settled under it, so any waiter may take the signal. */
    if (wake)
      pthread_cond_signal(&p->work_cv);
    item_run(it);
    item_free(it);
    spun = false;
    pthread_mutex_lock(&p->lock);
  }
}

static void *worker_main(void *arg) {
  struct worker *w = arg;
  struct thread_pool *p = w->pool;
  /* The kernel keeps 15 bytes of a thread name; longer ones are cut. */
  char name[32];
  snprintf(name, sizeof name, "%s_%u", p->prefix, w->idx % 100000u);
  name[15] = '\0';
  pthread_setname_np(pthread_self(), name);
  bool serving = run_initializer(p);
  pthread_mutex_lock(&p->lock);
  if (serving)
    serve(p);
  p->nthreads--;
  w->exited = true;
  pthread_cond_broadcast(&p->exit_cv);
  pthread_mutex_unlock(&p->lock);
  pool_unref(p);
  return NULL;
}

/* With p->lock held: starts one worker.  Workers block every signal, so
 * signals go to the application's own threads. */
static int spawn(struct thread_pool *p) {
  struct worker *w = fut__calloc(1, sizeof *w);
  if (!w)
    return fut__error(-ENOMEM, "thread pool: out of memory for a worker");
  w->pool = p;
  w->idx = p->next_idx;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
  int err = pthread_create(&w->tid, NULL, worker_main, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (err) {
    atomic_fetch_sub_explicit(&p->refs, 1, memory_order_relaxed);
    fut__free(w);
    return fut__error(-err, "thread pool: pthread_create: %s",
                      fut_strerror(-err));
  }
  p->next_idx++;
  p->nthreads++;
  w->next = p->workers;
  p->workers = w;
  return 0;
}

static int refused(struct thread_pool *p) {
  if (p->broken)
    return fut__error(FUT_E_BROKEN_POOL,
                      "fut_executor_submit: thread pool "
                      "%s is broken: a worker's initializer failed (%s)",
                      p->prefix, fut_err_name(p->broken_err));
  return fut__error(FUT_E_SHUTDOWN,
                    "fut_executor_submit: thread pool %s "
                    "has been shut down",
                    p->prefix);
}

/* With p->lock held, it pushed: wakes or starts a worker if needed, and
 * unlocks.  Returns 0 or why it was taken back (then the caller keeps
 * it). */
static int settle_locked(struct thread_pool *p, struct fut__work_item *it) {
  if (p->shutdown || p->broken) {
    /* Lost a race with shutdown: take it back unless a worker, the
     * shutdown or the failing initializer already took it (and so will
     * finish it). */
    int err = unqueue(p, it) ? refused(p) : 0;
    pthread_mutex_unlock(&p->lock);
    return err;
  }
  absorb_incoming(p);
  /* Workers ready for the queue: the sleepers, those already woken, and a
   * spinner (which needs no wake-up).  Short of that, start a thread while
   * under the limit.  Wake a sleeper only when no worker is on the way:
   * a worker taking a job passes the wake-up on while more wait, so the
   * submitting thread (the loop, usually) pays at most one futex wake per
   * idle period instead of one per job. */
  size_t coming = p->nwoken + (p->spinning ? 1u : 0u);
  size_t ready = p->nidle + coming;
  if (ready < p->nqueued && p->nthreads < p->max_workers) {
    int err = spawn(p);
    if (err && p->nthreads == 0 && unqueue(p, it)) {
      /* Nobody would ever run it: take it back. */
      pthread_mutex_unlock(&p->lock);
      return err;
    }
  } else if (p->nidle > 0 && coming == 0) {
    p->nidle--;
    p->nwoken++;
    pthread_mutex_unlock(&p->lock);
    pthread_cond_signal(&p->work_cv); /* after the unlock, as worker_main */
    return 0;
  }
  pthread_mutex_unlock(&p->lock);
  return 0;
}

/* Queues it (with it->cf's reference) or returns why not; on error the
 * caller keeps it. */
static int enqueue(struct thread_pool *p, struct fut__work_item *it) {
  if (forked(p))
    return forked_error(p, "fut_executor_submit");
  if (FUT__UNLIKELY(atomic_load_explicit(&p->closed, memory_order_acquire))) {
    pthread_mutex_lock(&p->lock);
    int err = refused(p);
    pthread_mutex_unlock(&p->lock);
    return err;
  }
  struct fut__work_item *top =
      atomic_load_explicit(&p->incoming, memory_order_relaxed);
  do
    it->next = top;
  while (!atomic_compare_exchange_weak_explicit(
      &p->incoming, &top, it, memory_order_seq_cst, memory_order_relaxed));
  /* The common case, without the lock: every thread started, and a worker
   * will look at the queue anyway (none sleeps, or one is already on the
   * way).  A closed pool goes the slow way to take the item back. */
  if (FUT__LIKELY(!atomic_load(&p->closed) &&
                  atomic_load(&p->nthreads) == p->max_workers &&
                  (atomic_load(&p->nidle) == 0 || atomic_load(&p->nwoken) > 0 ||
                   atomic_load(&p->spinning))))
    return 0;
  pthread_mutex_lock(&p->lock);
  return settle_locked(p, it);
}

static int pool_submit(void *self, const fut_job_t *job, fut_cfuture_t **out) {
  struct thread_pool *p = self;
  /* After the item: a bytes job's descriptor, then the argument bytes it
   * borrowed (copied). */
  bool bytes = job->fn == NULL;
  bool copy = bytes && !job->data_free && job->len > 0;
  size_t extra = sizeof(struct fut__work_item);
  if (bytes) {
    extra += sizeof(fut_job_t);
    if (copy && job->len > SIZE_MAX - FUT__CF_SIZE - extra)
      return fut__error(-ENOMEM, "thread pool: %zu argument bytes is too big",
                        job->len);
    extra += copy ? job->len : 0;
  }
  fut_cfuture_t *cf;
  void *space;
  int err = fut__cfuture_new_ext(extra, &cf, &space);
  if (err)
    return err;
  struct fut__work_item *it = space;
  it->next = NULL;
  it->sink = NULL;
  it->fn = job->fn;
  it->arg = job->arg;
  if (bytes) {
    fut_job_t *j = (fut_job_t *)(it + 1);
    *j = *job;
    if (copy) {
      memcpy(j + 1, job->data, job->len);
      j->data = j + 1;
    }
    it->arg = j;
  }
  /* The caller's reference; the item keeps the pool's. */
  fut_cfuture_ref(cf);
  if ((err = enqueue(p, it))) {
    fut_cfuture_unref(cf);
    fut_cfuture_unref(cf);
    return err;
  }
  *out = cf;
  return 0;
}

static bool is_own_worker(struct thread_pool *p) {
  pthread_t me = pthread_self();
  for (struct worker *w = p->workers; w; w = w->next)
    if (!w->exited && pthread_equal(w->tid, me))
      return true;
  return false;
}

static int pool_shutdown(void *self, bool wait, bool cancel_pending,
                         uint64_t timeout_ns) {
  struct thread_pool *p = self;
  if (forked(p)) /* nothing runs here: nothing to cancel or wait for */
    return 0;
  pthread_mutex_lock(&p->lock);
  p->shutdown = true;
  atomic_store(&p->closed, true);
  struct fut__work_item *list = cancel_pending ? take_queue(p) : NULL;
  atomic_store_explicit(&p->qlen, SIZE_MAX, memory_order_relaxed);
  bool own = wait && is_own_worker(p);
  pthread_cond_broadcast(&p->work_cv);
  pthread_mutex_unlock(&p->lock);
  while (list) {
    struct fut__work_item *it = list;
    list = it->next;
    fut_cfuture_cancel(fut__work_item_cf(it));
    item_free(it);
  }
  if (!wait)
    return 0;
  if (own)
    return fut__error(-EDEADLK,
                      "fut_executor_shutdown: cannot wait for "
                      "thread pool %s from one of its own workers",
                      p->prefix);
  bool forever;
  struct timespec dl = fut__deadline_of(timeout_ns, &forever);
  pthread_mutex_lock(&p->lock);
  while (p->nthreads > 0) {
    if (forever) {
      pthread_cond_wait(&p->exit_cv, &p->lock);
    } else if (pthread_cond_timedwait(&p->exit_cv, &p->lock, &dl) ==
                   ETIMEDOUT &&
               p->nthreads > 0) {
      pthread_mutex_unlock(&p->lock);
      return fut__error(-ETIMEDOUT,
                        "fut_executor_shutdown: thread pool %s "
                        "still has running jobs after the timeout",
                        p->prefix);
    }
  }
  struct worker *ws = p->workers;
  p->workers = NULL;
  pthread_mutex_unlock(&p->lock);
  /* Every worker has left its loop; joining only waits for the thread to
   * finish returning. */
  while (ws) {
    struct worker *next = ws->next;
    pthread_join(ws->tid, NULL);
    fut__free(ws);
    ws = next;
  }
  return 0;
}

static void pool_destroy(void *self) {
  struct thread_pool *p = self;
  if (forked(p)) {
    /* No thread of ours holds a reference here, and the lock and condition
     * variables may be frozen mid-operation (destroying a condition
     * variable with waiters blocks): free the memory only.  Queued items
     * never run; their cfutures stay pending. */
    struct worker *w = p->workers;
    while (w) {
      struct worker *next = w->next;
      fut__free(w);
      w = next;
    }
    fut__free(p);
    return;
  }
  pthread_mutex_lock(&p->lock);
  /* Threads still running after a shutdown without wait: let them go.  The
   * records stay (they write to them) and go with the pool. */
  for (struct worker *w = p->workers; w; w = w->next)
    pthread_detach(w->tid);
  pthread_mutex_unlock(&p->lock);
  pool_unref(p);
}

/* The condition variable waits on CLOCK_MONOTONIC, like every deadline in
 * the library. */
static int init_cond(pthread_cond_t *c) {
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  int err = pthread_cond_init(c, &a);
  pthread_condattr_destroy(&a);
  return -err;
}

const fut_executor_ops_t fut__thread_pool_ops = {"thread pool", pool_submit,
                                                 pool_shutdown, pool_destroy};

size_t fut_thread_pool_default_workers(void) {
  cpu_set_t set;
  long n = 0;
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    n = CPU_COUNT(&set);
  if (n <= 0)
    n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n <= 0)
    n = 1;
  return (size_t)(n + 4 < 32 ? n + 4 : 32);
}

void fut_thread_pool_opts_init(fut_thread_pool_opts_t *o) {
  if (o)
    memset(o, 0, sizeof *o);
}

int fut_thread_pool_new_ex(const fut_thread_pool_opts_t *o,
                           fut_executor_t **out) {
  if (!out)
    return fut__error(-EINVAL, "fut_thread_pool_new: NULL out");
  *out = NULL;
  fut_thread_pool_opts_t defaults;
  if (!o) {
    fut_thread_pool_opts_init(&defaults);
    o = &defaults;
  }
  if (o->max_workers > MAX_WORKERS_LIMIT)
    return fut__error(-EINVAL,
                      "fut_thread_pool_new: max_workers %zu is "
                      "above the limit %u",
                      o->max_workers, MAX_WORKERS_LIMIT);
  struct thread_pool *p = fut__calloc(1, sizeof *p);
  if (!p)
    return fut__error(-ENOMEM, "fut_thread_pool_new: out of memory");
  p->max_workers =
      o->max_workers ? o->max_workers : fut_thread_pool_default_workers();
  p->init = o->initializer;
  p->initarg = o->initarg;
  snprintf(p->prefix, sizeof p->prefix, "%s",
           o->name_prefix ? o->name_prefix : "fut-pool");
  atomic_init(&p->refs, 1);
  atomic_init(&p->qlen, 0);
  atomic_init(&p->incoming, NULL);
  atomic_init(&p->closed, false);
  atomic_init(&p->nthreads, 0);
  atomic_init(&p->nidle, 0);
  atomic_init(&p->nwoken, 0);
  atomic_init(&p->spinning, false);
  p->fork_gen = fut__fork_generation();
  int err = -pthread_mutex_init(&p->lock, NULL);
  if (err)
    goto fail_lock;
  if ((err = init_cond(&p->work_cv)))
    goto fail_work;
  if ((err = init_cond(&p->exit_cv)))
    goto fail_exit;
  if ((err = fut_executor_new(&fut__thread_pool_ops, p, out)))
    goto fail_ex;
  return 0;

fail_ex:
  pthread_cond_destroy(&p->exit_cv);
fail_exit:
  pthread_cond_destroy(&p->work_cv);
fail_work:
  pthread_mutex_destroy(&p->lock);
fail_lock:
  fut__free(p);
  return err == -ENOMEM
             ? err
             : fut__error(err, "fut_thread_pool_new: %s", fut_strerror(err));
}

int fut_thread_pool_new(size_t max_workers, fut_executor_t **out) {
  fut_thread_pool_opts_t o;
  fut_thread_pool_opts_init(&o);
  o.max_workers = max_workers;
  return fut_thread_pool_new_ex(&o, out);
}

bool fut__thread_pool_forked(const fut_executor_t *ex) {
  return fut__is_thread_pool(ex) && forked(fut_executor_self(ex));
}

int fut__thread_pool_push(fut_executor_t *ex, struct fut__work_item *it) {
  FUT__ASSERT(ex->ops == &fut__thread_pool_ops);
  if (atomic_load_explicit(&ex->shut, memory_order_relaxed))
    return fut__error(FUT_E_SHUTDOWN, "fut_executor_submit: the thread pool "
                                      "has been shut down");
  return enqueue(ex->self, it);
}

/* One of a thread pool's counts, read under its lock; 0 for another
 * executor. */
static size_t locked_count(fut_executor_t *ex, bool idle) {
  if (fut_executor_ops(ex) != &fut__thread_pool_ops)
    return 0;
  struct thread_pool *p = fut_executor_self(ex);
  pthread_mutex_lock(&p->lock);
  size_t n = idle ? atomic_load(&p->nidle) : atomic_load(&p->nthreads);
  pthread_mutex_unlock(&p->lock);
  return n;
}

size_t fut__thread_pool_nthreads(fut_executor_t *ex) {
  return locked_count(ex, false);
}

size_t fut__thread_pool_nidle(fut_executor_t *ex) {
  return locked_count(ex, true);
}
