/* libfuture — asyncio.Queue, PriorityQueue and LifoQueue (queues.py of
 * CPython 3.13, shutdown included).
 *
 * The storage is one array of item pointers used three ways: a ring that
 * doubles when full (FIFO), a stack (LIFO) or a binary min-heap (priority).
 * Once it has grown to the working size, put and get allocate nothing.
 *
 * Waiters follow queues.py exactly: a task that must wait links a struct
 * waiter (on its own stack) into the getters, putters or joiners list and
 * awaits the waiter's future, taken from the loop's free list.  Waking
 * means unlinking the first waiter whose future is still pending and
 * finishing that future; the task then re-checks the queue (another task
 * may have taken the item or the slot meanwhile, as in asyncio).  A task
 * that returns from its wait with an error unlinks itself; if it had been
 * woken already, it passes the wakeup on, so that no item (or slot) is
 * left with a waiter that will never come for it. */
#include "sync/internal.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "future/queue.h"

/* Initial storage: 16 slots (or maxsize, if smaller). */
#define INITIAL_CAP 16u

struct waiter {
  struct fut__qnode node; /* in one of the queue's lists while waiting and
                             not yet woken */
  fut_t *f;               /* the awaited future (a reference); finished
                             with a NULL result when woken */
};

struct fut_queue {
  void **buf;           /* cap slots; FIFO: a ring from head; else [0, n) */
  size_t cap;           /* a power of two for FIFO; 0 until the first put */
  size_t head;          /* FIFO: index of the oldest item, < cap */
  size_t n;             /* items held */
  size_t maxsize;       /* 0: unbounded */
  size_t unfinished;    /* put and not yet task_done'd */
  fut_free_fn dtor;     /* releases dropped items; may be NULL */
  fut_queue_cmp_fn cmp; /* priority order; NULL: pointer values */
  fut_loop_t *loop;     /* bound by the first wait; NULL before */
  struct fut__qnode getters;           /* struct waiter, oldest first */
  struct fut__qnode putters;           /* struct waiter, oldest first */
  struct fut__qnode joiners;           /* struct waiter, oldest first */
  size_t ngetters, nputters, njoiners; /* lengths of the three lists */
  fut_queue_kind_t kind;
  bool shutdown; /* fut_queue_shutdown was called */
};

/* ---- storage ------------------------------------------------------------- */

static int cmp_items(const struct fut_queue *q, void *a, void *b) {
  if (q->cmp)
    return q->cmp(a, b);
  uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
  return (x > y) - (x < y);
}

/* Makes room for one more item. */
static int grow(struct fut_queue *q) {
  size_t cap = q->cap ? q->cap * 2 : INITIAL_CAP;
  if (q->maxsize && q->maxsize < cap && q->kind != FUT_QUEUE_FIFO)
    cap = q->maxsize; /* the ring keeps a power of two */
  if (cap < q->cap || cap > SIZE_MAX / sizeof(void *))
    return -ENOMEM;
  void **buf = fut__malloc(cap * sizeof *buf);
  if (!buf)
    return -ENOMEM;
  if (q->kind == FUT_QUEUE_FIFO) {
    /* Unroll the ring: its items go to [0, n) in order. */
    size_t first = q->cap - q->head < q->n ? q->cap - q->head : q->n;
    if (q->n) {
      memcpy(buf, q->buf + q->head, first * sizeof *buf);
      memcpy(buf + first, q->buf, (q->n - first) * sizeof *buf);
    }
    q->head = 0;
  } else if (q->n) {
    memcpy(buf, q->buf, q->n * sizeof *buf);
  }
  fut__free(q->buf);
  q->buf = buf;
  q->cap = cap;
  return 0;
}

static void heap_push(struct fut_queue *q, void *item) {
  size_t i = q->n++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (cmp_items(q, item, q->buf[parent]) >= 0)
      break;
    q->buf[i] = q->buf[parent];
    i = parent;
  }
  q->buf[i] = item;
}

static void *heap_pop(struct fut_queue *q) {
  void *top = q->buf[0];
  void *last = q->buf[--q->n];
  size_t n = q->n, i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n)
      break;
    if (c + 1 < n && cmp_items(q, q->buf[c + 1], q->buf[c]) < 0)
      c++;
    if (cmp_items(q, q->buf[c], last) >= 0)
      break;
    q->buf[i] = q->buf[c];
    i = c;
  }
  if (n)
    q->buf[i] = last;
  return top;
}

/* Stores item; the caller checked full(). */
static int store(struct fut_queue *q, void *item) {
  if (q->n == q->cap) {
    int err = grow(q);
    if (err)
      return fut__error(err, "fut_queue_put: no memory to grow the queue");
  }
  switch (q->kind) {
  case FUT_QUEUE_FIFO:
    q->buf[(q->head + q->n) & (q->cap - 1)] = item;
    q->n++;
    break;
  case FUT_QUEUE_LIFO:
    q->buf[q->n++] = item;
    break;
  case FUT_QUEUE_PRIORITY:
    heap_push(q, item);
    break;
  }
  return 0;
}

/* Takes the next item; the queue is not empty. */
static void *take(struct fut_queue *q) {
  void *item;
  switch (q->kind) {
  case FUT_QUEUE_FIFO:
    item = q->buf[q->head];
    q->head = (q->head + 1) & (q->cap - 1);
    q->n--;
    return item;
  case FUT_QUEUE_LIFO:
    return q->buf[--q->n];
  default:
    return heap_pop(q);
  }
}

/* ---- waiters ------------------------------------------------------------- */

/* Wakes the oldest waiter of list whose future is still pending (asyncio's
 * _wakeup_next); waiters are unlinked as they are passed. */
static void wakeup_next(struct fut__qnode *list, size_t *len) {
  struct fut__qnode *n;
  while ((n = fut__q_first(list))) {
    struct waiter *w = fut__q_data(n, struct waiter, node);
    fut__q_remove(n);
    (*len)--;
    if (!fut_done(w->f)) {
      fut_set_result(w->f, NULL, NULL);
      return;
    }
  }
}

/* Wakes every waiter of list. */
static void wakeup_all(struct fut__qnode *list, size_t *len) {
  while (!fut__q_empty(list))
    wakeup_next(list, len);
}

/* Finds the calling task's loop (*loop), checked against the queue's.
 * Returns 0, or an error when the caller is no task or on another loop. */
static int task_loop(struct fut_queue *q, const char *what, fut_loop_t **loop) {
  *loop = NULL;
  if (!q)
    return fut__error(-EINVAL, "%s: NULL queue", what);
  struct fut__task *t = fut__task_current(what);
  if (!t)
    return FUT_E_NOT_IN_TASK;
  if (q->loop && q->loop != t->x.fut.loop)
    return fut__error(FUT_E_OTHER_LOOP,
                      "%s: the queue is bound to another loop", what);
  *loop = t->x.fut.loop;
  return 0;
}

/* The non-waiting calls' check: NULL, or used inside another loop. */
static int check_nowait(const struct fut_queue *q, const char *what) {
  if (!q)
    return fut__error(-EINVAL, "%s: NULL queue", what);
  if (q->loop) {
    fut_loop_t *running = fut_get_running_loop();
    if (running && running != q->loop)
      return fut__error(FUT_E_OTHER_LOOP,
                        "%s: the queue is bound to another loop", what);
  }
  return 0;
}

/* Links a new waiter into list and waits for it to be woken.  Returns 0
 * once woken, or the await's error; *woken tells whether the waiter had
 * been woken (its future finished) when the wait ended. */
static int wait_in(struct fut_queue *q, fut_loop_t *loop,
                   struct fut__qnode *list, size_t *len, bool *woken) {
  struct waiter local, *w = &local;
  *woken = false;
  /* A compact task's stack is not addressable while it waits
   * (FUT_TASK_COMPACT): its waiter goes on the heap. */
  if (fut__sync_stack_private() && !(w = fut__malloc(sizeof *w)))
    return fut__error(-ENOMEM, "out of memory for a waiter");
  int err = fut_new(loop, &w->f);
  if (err) {
    if (w != &local)
      fut__free(w);
    return err;
  }
  q->loop = loop;
  fut__q_insert_tail(list, &w->node);
  (*len)++;
  err = fut_await(w->f, NULL);
  if (fut__q_linked(&w->node)) {
    fut__q_remove(&w->node);
    (*len)--;
  }
  *woken = fut_state(w->f) == FUT_FINISHED;
  if (!*woken)
    fut_cancel(w->f, NULL); /* still pending if the await itself failed */
  fut_unref(w->f);
  if (w != &local)
    fut__free(w);
  return err;
}

/* ---- creation ------------------------------------------------------------ */

void fut_queue_opts_init(fut_queue_opts_t *opts) {
  if (opts)
    memset(opts, 0, sizeof *opts);
}

int fut_queue_new_opts(const fut_queue_opts_t *opts, fut_queue_t **out) {
  fut_queue_opts_t defaults;
  if (out)
    *out = NULL;
  if (!opts) {
    fut_queue_opts_init(&defaults);
    opts = &defaults;
  }
  if (!out)
    return fut__error(-EINVAL, "fut_queue_new: NULL out");
  if (opts->kind != FUT_QUEUE_FIFO && opts->kind != FUT_QUEUE_LIFO &&
      opts->kind != FUT_QUEUE_PRIORITY)
    return fut__error(-EINVAL, "fut_queue_new: unknown kind %d",
                      (int)opts->kind);
  if (opts->cmp && opts->kind != FUT_QUEUE_PRIORITY)
    return fut__error(-EINVAL, "fut_queue_new: a comparison function is for "
                               "priority queues only");
  struct fut_queue *q = fut__calloc(1, sizeof *q);
  if (!q)
    return -ENOMEM;
  q->kind = opts->kind;
  q->maxsize = opts->maxsize;
  q->dtor = opts->dtor;
  q->cmp = opts->cmp;
  fut__q_init(&q->getters);
  fut__q_init(&q->putters);
  fut__q_init(&q->joiners);
  *out = q;
  return 0;
}

int fut_queue_new(fut_queue_kind_t kind, size_t maxsize, fut_free_fn dtor,
                  fut_queue_t **out) {
  fut_queue_opts_t o;
  fut_queue_opts_init(&o);
  o.kind = kind;
  o.maxsize = maxsize;
  o.dtor = dtor;
  return fut_queue_new_opts(&o, out);
}

/* Releases every item held, with the destructor. */
static size_t drop_items(struct fut_queue *q) {
  size_t dropped = 0;
  while (q->n) {
    void *item = take(q);
    dropped++;
    if (q->dtor)
      q->dtor(item);
  }
  return dropped;
}

int fut_queue_free(fut_queue_t *q) {
  if (!q)
    return 0;
  if (q->ngetters || q->nputters || q->njoiners)
    return fut__error(-EBUSY,
                      "fut_queue_free: %zu task(s) still wait on "
                      "the queue",
                      q->ngetters + q->nputters + q->njoiners);
  drop_items(q);
  fut__free(q->buf);
  fut__free(q);
  return 0;
}

/* ---- non-waiting calls --------------------------------------------------- */

static bool is_full(const struct fut_queue *q) {
  return q->maxsize && q->n >= q->maxsize;
}

static int put_nowait(struct fut_queue *q, void *item) {
  if (q->shutdown)
    return FUT_E_QUEUE_SHUTDOWN;
  if (is_full(q))
    return FUT_E_QUEUE_FULL;
  int err = store(q, item);
  if (err)
    return err;
  q->unfinished++;
  if (q->ngetters)
    wakeup_next(&q->getters, &q->ngetters);
  return 0;
}

static int get_nowait(struct fut_queue *q, void **item) {
  if (!q->n) {
    *item = NULL;
    return q->shutdown ? FUT_E_QUEUE_SHUTDOWN : FUT_E_QUEUE_EMPTY;
  }
  *item = take(q);
  if (q->nputters)
    wakeup_next(&q->putters, &q->nputters);
  return 0;
}

int fut_queue_put_nowait(fut_queue_t *q, void *item) {
  int err = check_nowait(q, "fut_queue_put_nowait");
  return err ? err : put_nowait(q, item);
}

int fut_queue_get_nowait(fut_queue_t *q, void **item) {
  if (item)
    *item = NULL;
  int err = check_nowait(q, "fut_queue_get_nowait");
  if (!err && !item)
    err = fut__error(-EINVAL, "fut_queue_get_nowait: NULL item");
  return err ? err : get_nowait(q, item);
}

int fut_queue_task_done(fut_queue_t *q) {
  int err = check_nowait(q, "fut_queue_task_done");
  if (err)
    return err;
  if (q->unfinished == 0)
    return fut__error(FUT_E_INVALID_STATE,
                      "fut_queue_task_done: called too many times");
  if (--q->unfinished == 0)
    wakeup_all(&q->joiners, &q->njoiners);
  return 0;
}

int fut_queue_shutdown(fut_queue_t *q, bool immediate) {
  int err = check_nowait(q, "fut_queue_shutdown");
  if (err)
    return err;
  q->shutdown = true;
  if (immediate) {
    size_t dropped = drop_items(q);
    q->unfinished = dropped < q->unfinished ? q->unfinished - dropped : 0;
    if (q->unfinished == 0)
      wakeup_all(&q->joiners, &q->njoiners);
  }
  /* Every getter and putter re-checks and sees the shutdown. */
  wakeup_all(&q->getters, &q->ngetters);
  wakeup_all(&q->putters, &q->nputters);
  return 0;
}

/* ---- waiting calls ------------------------------------------------------- */

int fut_queue_put(fut_queue_t *q, void *item) {
  fut_loop_t *loop;
  int err = task_loop(q, "fut_queue_put", &loop);
  if (err)
    return err;
  while (is_full(q)) {
    if (q->shutdown)
      return FUT_E_QUEUE_SHUTDOWN;
    bool woken;
    err = wait_in(q, loop, &q->putters, &q->nputters, &woken);
    if (err) {
      /* Woken for a free slot but cannot take it: the next putter may. */
      if (woken && !is_full(q))
        wakeup_next(&q->putters, &q->nputters);
      return err;
    }
  }
  return put_nowait(q, item);
}

int fut_queue_get(fut_queue_t *q, void **item) {
  if (item)
    *item = NULL;
  fut_loop_t *loop;
  int err = task_loop(q, "fut_queue_get", &loop);
  if (err)
    return err;
  if (!item)
    return fut__error(-EINVAL, "fut_queue_get: NULL item");
  while (!q->n) {
    if (q->shutdown)
      return FUT_E_QUEUE_SHUTDOWN;
    bool woken;
    err = wait_in(q, loop, &q->getters, &q->ngetters, &woken);
    if (err) {
      /* Woken for an item but cannot take it: the next getter may. */
      if (woken && q->n)
        wakeup_next(&q->getters, &q->ngetters);
      return err;
    }
  }
  return get_nowait(q, item);
}

int fut_queue_join(fut_queue_t *q) {
  fut_loop_t *loop;
  int err = task_loop(q, "fut_queue_join", &loop);
  if (err)
    return err;
  if (q->unfinished == 0)
    return 0;
  bool woken;
  return wait_in(q, loop, &q->joiners, &q->njoiners, &woken);
}

/* ---- state --------------------------------------------------------------- */

size_t fut_queue_qsize(const fut_queue_t *q) {
  return q ? q->n : 0;
}
size_t fut_queue_maxsize(const fut_queue_t *q) {
  return q ? q->maxsize : 0;
}
bool fut_queue_empty(const fut_queue_t *q) {
  return !q || q->n == 0;
}
bool fut_queue_full(const fut_queue_t *q) {
  return q && is_full(q);
}
bool fut_queue_is_shutdown(const fut_queue_t *q) {
  return q && q->shutdown;
}
fut_queue_kind_t fut_queue_kind(const fut_queue_t *q) {
  return q ? q->kind : FUT_QUEUE_FIFO;
}
size_t fut_queue_unfinished_tasks(const fut_queue_t *q) {
  return q ? q->unfinished : 0;
}
size_t fut_queue_getters(const fut_queue_t *q) {
  return q ? q->ngetters : 0;
}
size_t fut_queue_putters(const fut_queue_t *q) {
  return q ? q->nputters : 0;
}
fut_loop_t *fut_queue_get_loop(const fut_queue_t *q) {
  return q ? q->loop : NULL;
}
