/* libfuture — private helpers shared by the executor files (cfuture.c,
 * executor.c, threadpool.c) and their tests.  Never installed. */
#ifndef FUT_EXECUTOR_INTERNAL_H
#define FUT_EXECUTOR_INTERNAL_H

#include "future/internal.h"

/* Close rank of the executors' loop part: executor glue closes after the
 * tasks (a task may still be waiting on a job) and before the
 * combinators. */
#define FUT__RANK_EXECUTORS 30

/* The cfuture's layout, private to the executor files: executor.c embeds
 * one in each run_in_executor wrapper (one allocation per job). */
struct cf_node;
struct cf_cb {
  fut_cfuture_done_cb cb;
  void *arg;
};

enum { CF_R_NONE = 0, CF_R_PTR, CF_R_BYTES, CF_R_I64 };

struct fut_cfuture {
  atomic_uint refs;   /* > 0 while alive */
  atomic_int state;   /* fut_cfuture_state_t; FINISHED/CANCELLED final */
  atomic_bool locked; /* the lock (cf_lock): guards everything
                         below until done */
  int err;            /* 0, the exception's code, or -ECANCELED */
  uint8_t rkind;      /* CF_R_*: result storage, set before done */
  union {
    struct {
      void *ptr;
      fut_free_fn dtor;
    } p;
    struct {
      void *data;
      size_t len;
    } b;
    int64_t i64;
  } r;
  char *msg;                 /* exception message or NULL */
  struct cf_cb *cbs;         /* registered, not yet run: cb_inline or a
                                malloc'd vector */
  size_t ncbs, capcbs;       /* entries used / capacity of cbs */
  struct cf_cb cb_inline[2]; /* the first registrations (no allocation) */
  struct cf_node *waiters;   /* head of the waiter-node list */
  /* Frees the memory once the last reference went (result, message and
   * callback vector already released), or NULL for fut__free: a cfuture
   * embedded in a bigger object hands it back to its owner. */
  void (*release)(fut_cfuture_t *cf);
};

/* Initialises an embedded cfuture: pending, `refs` references, no
 * callbacks; release(cf) is called instead of fut__free after the last
 * unref (any thread). */
void fut__cfuture_init(fut_cfuture_t *cf, void (*release)(fut_cfuture_t *),
                       unsigned refs);

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

/* Test hook: how many completion drains ran on loop and how many
 * completions they delivered (0 before the first executor call). */
void fut__executor_counters(fut_loop_t *loop, uint64_t *drains,
                            uint64_t *delivered);

/* A thread pool's work item.  Items of fut_executor_submit live in the
 * extra space of their cfuture; run_in_executor embeds one in its wrapper
 * and sets done. */
struct fut__tp_item {
  struct fut__tp_item *next; /* pool FIFO link (guarded by the pool lock) */
  fut_cfuture_t *cf;         /* the pool's reference to the job's cfuture */
  /* NULL: the pool drops its reference when the job is over (ran, was
   * cancelled, or failed for a broken pool).  Else called instead, once,
   * in the thread that finished with the item (a worker, or the caller of
   * shutdown or of a failing initializer): it takes over the reference,
   * and the pool never touches the item again. */
  void (*done)(struct fut__tp_item *it);
  fut_job_t job; /* owns its bytes (copied after the item, or
                    job.data_free) until the job ran */
};

/* Whether ex is a thread pool from fut_thread_pool_new. */
bool fut__is_thread_pool(const fut_executor_t *ex);
/* Whether ex is a thread pool created before a fork of this process (in
 * the child: it has no threads; submit fails with FUT_E_FORKED, shutdown
 * neither waits nor blocks, free releases the memory only). */
bool fut__thread_pool_forked(const fut_executor_t *ex);
/* Queues it on the thread pool ex: returns 0 (the pool took it->cf's
 * reference; it->done, if set, will be called) or a negative error
 * (FUT_E_SHUTDOWN, FUT_E_BROKEN_POOL, a thread creation error; the caller
 * keeps it).  Allocates nothing.  Any thread. */
int fut__thread_pool_push(fut_executor_t *ex, struct fut__tp_item *it);

/* Test hook: threads a thread pool currently has (started, not exited). */
size_t fut__thread_pool_nthreads(fut_executor_t *ex);
/* Test hook: workers of a thread pool waiting for work. */
size_t fut__thread_pool_nidle(fut_executor_t *ex);

#endif
