/* libfuture — private structures and cross-file helpers.  Never installed.
 *
 * Naming: fut__ for functions shared across files (hidden from the shared
 * library by -fvisibility=hidden), plain static names inside a file. */
#ifndef FUT_INTERNAL_H
#define FUT_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "future.h"

#define FUT__LIKELY(x) __builtin_expect(!!(x), 1)
#define FUT__UNLIKELY(x) __builtin_expect(!!(x), 0)

#define fut__container_of(ptr, type, member)                                   \
  ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* Broken invariants abort with a message; never compiled out. */
#define FUT__ASSERT(cond)                                                      \
  do {                                                                         \
    if (FUT__UNLIKELY(!(cond)))                                                \
      fut__assert_fail(#cond, __FILE__, __LINE__);                             \
  } while (0)
_Noreturn void fut__assert_fail(const char *expr, const char *file, int line);

/* ---- alloc.c: every allocation goes through here (fault injection) ----- */
void *fut__malloc(size_t n);
void *fut__calloc(size_t n, size_t size);
void *fut__realloc(void *p, size_t n);
/* n bytes aligned on n (a power of two), from mmap; fut__chunk_free. */
void *fut__chunk_alloc(size_t n);
void fut__chunk_free(void *p, size_t n);
void fut__free(void *p);
char *fut__strdup(const char *s);
char *fut__vasprintf(const char *fmt, va_list ap);
/* Test hook: the n-th allocation from now (1 = the next) fails, and every
 * one after it while `sticky`; n = 0 disables.  Process-wide, atomic. */
void fut__alloc_fail_after(long n, bool sticky);

/* ---- errors.c ---------------------------------------------------------- */
/* Records a detail for fut_last_error() and returns err. */
int fut__error(int err, const char *fmt, ...) FUT_PRINTF(2, 3);

/* ---- clock ------------------------------------------------------------- */
static inline uint64_t fut__now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- slab.c: per-loop pools of fixed-size objects ---------------------
 * Objects are carved from 64 KiB chunks aligned on their size, so an
 * object finds its chunk by masking its address.  Each chunk keeps a bitmap
 * of free slots and hands out the lowest free one: reuse stays in address
 * order, so objects freed in a scattered order (timers fired by deadline)
 * are reallocated close together instead of as a random walk through
 * memory.  The steady state allocates nothing. */
#define FUT__SLAB_CHUNK ((size_t)64 * 1024)

struct fut__slab_chunk;
struct fut__slab {
  struct fut__slab_chunk *cur;   /* chunk allocations come from; NULL when
                                    no chunk has a free slot */
  struct fut__slab_chunk *avail; /* other chunks with free slots */
  struct fut__slab_chunk *all;   /* every chunk, for destroy */
  uint32_t obj_size;             /* multiple of 8 */
  uint32_t per_chunk;            /* objects per chunk */
  uint64_t div_magic;            /* ceil(2^32 / obj_size): offset -> index */
};

struct fut__slab_chunk {
  struct fut__slab_chunk *next_all;   /* in slab->all */
  struct fut__slab_chunk *next_avail; /* in slab->avail while there */
  bool in_avail;                      /* linked in slab->avail */
  uint32_t nfree;                     /* free slots */
  uint32_t hint;                      /* no free slot in bits[0..hint) */
  char *objs;                         /* first object */
  uint64_t bits[];                    /* 1 = free */
};

void fut__slab_init(struct fut__slab *s, size_t obj_size);
void fut__slab_destroy(struct fut__slab *s);
/* An object, or NULL when out of memory. */
void *fut__slab_alloc(struct fut__slab *s);
void fut__slab_free(struct fut__slab *s, void *p);

/* ---- handles (loop.c, timer.c, io.c) ----------------------------------- */
enum {
  FUT__H_CANCELLED = 1u << 0, /* cancelled: never runs again */
  FUT__H_TIMER = 1u << 1,     /* scheduled by call_later / call_at */
  FUT__H_IO = 1u << 2,        /* an fd watcher's handle, runs repeatedly */
  FUT__H_RAN = 1u << 3,       /* a one-shot handle that has run */
  FUT__H_IN_HEAP = 1u << 4    /* a timer a timer tier still references */
};

struct fut_handle {
  union {
    fut_cb cb; /* the callback; the free-list link once freed */
    void *next_free;
  };
  void *arg;        /* borrowed from the user */
  fut_loop_t *loop; /* owner; never changes */
  uint64_t when;    /* timers: deadline in loop time */
  uint32_t refs;    /* user + loop references (heap, ready queue) */
  uint8_t flags;    /* FUT__H_* */
};

/* A handle with one reference, or NULL (out of memory, detail recorded). */
fut_handle_t *fut__handle_new(fut_loop_t *loop, fut_cb cb, void *arg,
                              uint8_t flags);
/* Ready-queue trampoline for handles: skips cancelled ones, drops the
 * queue's reference. */
void fut__handle_run(void *h);

/* A timer heap slot.  It holds the whole timer when nobody asked for a
 * handle (cb set), so fire-and-forget timers allocate nothing and firing
 * touches only the heap; otherwise cb is NULL and arg is the handle.  The
 * deadline and sequence are cached either way, so sifting never touches a
 * handle (handles are scattered in memory). */
struct fut__heap_ent {
  uint64_t when; /* deadline in loop time */
  uint32_t seq;  /* FIFO tie-break among equal deadlines (wraps) */
  uint32_t unused;
  fut_cb cb; /* the callback, or NULL when arg is a fut_handle_t */
  void *arg;
};

/* A 4-ary min-heap of timer slots by (when, seq). */
struct fut__theap {
  struct fut__heap_ent *ents;
  uint32_t len, cap;
};

/* A chunk of a wheel bucket: timers of one slot, unsorted. */
#define FUT__TCHUNK_ENTS 63
struct fut__tchunk {
  struct fut__tchunk *next;
  uint32_t len;
  struct fut__heap_ent ents[FUT__TCHUNK_ENTS];
};

#define FUT__WHEEL_BITS 8
#define FUT__WHEEL_SLOTS (1u << FUT__WHEEL_BITS)
#define FUT__SLOT_SHIFT 20 /* a slot spans 2^20 ns, about 1 ms */

/* Timers in three tiers by deadline slot (when >> FUT__SLOT_SHIFT):
 *   near   slot <= cur_slot: a small heap, the only tier that fires;
 *   wheel  the next FUT__WHEEL_SLOTS - 1 slots: unsorted buckets, O(1)
 *          insert, moved into the near heap when their slot comes;
 *   far    later: a heap whose top migrates into the wheel.
 * So the heap that orders firing stays small (in cache) however many
 * timers wait. */
struct fut__timers {
  struct fut__theap near; /* every timer with slot <= cur_slot */
  struct fut__theap far;  /* slot >= cur_slot + WHEEL_SLOTS */
  struct fut__tchunk *wheel[FUT__WHEEL_SLOTS]; /* bucket of slot s at
                                                  s % WHEEL_SLOTS */
  uint64_t wheel_bits[FUT__WHEEL_SLOTS / 64];  /* non-empty buckets */
  struct fut__tchunk *spare;                   /* free chunks */
  uint64_t cur_slot;  /* slots up to this are in near */
  uint32_t total;     /* entries in all tiers */
  uint32_t cancelled; /* cancelled handles still in a tier */
  uint32_t zombies;   /* of those, handles only a tier holds:
                         dead to the user, freed when shed */
  uint32_t seq;       /* next sequence number */
};

/* ---- ready queue (ready.c) --------------------------------------------- */
struct fut__ready_ent {
  fut_cb fn;
  void *arg;
};

struct fut__ring {
  struct fut__ready_ent *ents; /* capacity mask+1, a power of two */
  uint32_t mask;
  uint32_t head; /* next to run; head == tail when empty */
  uint32_t tail; /* next free slot (indices wrap mod 2^32) */
};

int fut__ring_grow(struct fut__ring *r);
static inline uint32_t fut__ring_len(const struct fut__ring *r) {
  return r->tail - r->head;
}
static inline int fut__ring_push(struct fut__ring *r, fut_cb fn, void *arg) {
  if (FUT__UNLIKELY(r->tail - r->head > r->mask)) {
    int err = fut__ring_grow(r);
    if (err)
      return err;
  }
  struct fut__ready_ent *e = &r->ents[r->tail & r->mask];
  e->fn = fn;
  e->arg = arg;
  r->tail++;
  return 0;
}

/* ---- thread-safe door (wakeup.c) --------------------------------------- */
struct fut__ts_ent {
  fut_cb fn;
  void *arg;
};

struct fut__tsq {
  pthread_mutex_t lock;
  struct fut__ts_ent *ents; /* guarded by lock */
  size_t len, cap;          /* guarded by lock */
  bool closed;              /* guarded by lock: refuse new calls */
  atomic_bool rung;         /* doorbell written and not yet drained */
};

/* Queued work that holds references (internal trampolines such as a
 * future's callback dispatch or an executor's completion) registers, once,
 * how to release its argument when the loop closes before it runs.  Up to
 * 16 pairs, process-wide; call from a constructor or under pthread_once. */
void fut__register_release(fut_cb fn, fut_cb release);
/* Releases what a queued (fn, arg) entry holds, if fn was registered. */
void fut__release_entry(fut_cb fn, void *arg);
/* Drops every entry of the ready queue, releasing what they hold. */
void fut__ready_clear(fut_loop_t *loop);

/* ---- fd watchers (io.c) ------------------------------------------------ */
struct fut__io {
  fut_handle_t *reader; /* NULL when no reader */
  fut_handle_t *writer; /* NULL when no writer */
  uint32_t registered;  /* epoll events currently registered (0 = none) */
};

/* ---- futures (future.c) ------------------------------------------------ */
enum {
  FUT__R_NONE = 0, /* pending, or done without result storage */
  FUT__R_PTR,      /* r.p: pointer + destructor */
  FUT__R_BYTES,    /* r.b: malloc'd bytes + length */
  FUT__R_I64,      /* r.i64 */
  FUT__R_SHARED,   /* r.s: pointer borrowed from another future */
  FUT__R_MSG       /* r.msg: exception or cancel message */
};

enum {
  FUT__F_RETRIEVED = 1u << 0, /* result/exception was read */
  FUT__F_DISPATCH = 1u << 1,  /* a callback dispatch is queued */
  FUT__F_EXT = 1u << 2,       /* embedded in a struct fut__ext */
  FUT__F_CB0 = 1u << 3        /* cb0 holds a registration */
};

struct fut__cb_ent {
  fut_done_cb cb;
  void *arg;
};

struct fut__cb_vec {
  uint32_t len, cap;
  struct fut__cb_ent e[];
};

struct fut {
  fut_loop_t *loop; /* owner; never changes */
  uint32_t refs;    /* > 0 while alive */
  int32_t err;      /* 0, the exception's code, or -ECANCELED */
  uint8_t state;    /* fut_state_t */
  uint8_t rkind;    /* FUT__R_* */
  uint8_t flags;    /* FUT__F_* */
  uint8_t unused;
  uint32_t unused2;
  struct fut__cb_ent cb0; /* first registration when FUT__F_CB0 */
  union {
    struct {
      void *ptr;
      fut_free_fn dtor;
    } p;
    struct {
      void *data;
      size_t len;
    } b;
    struct {
      void *ptr;
      fut_t *src;
    } s;
    int64_t i64;
    char *msg;
    void *next_free;
  } r;
  struct fut__cb_vec *more; /* registrations after the first, or NULL */
};

/* Futures with behaviour of their own (tasks, combinators) embed a
 * struct fut__ext; its ops override cancel and free. */
struct fut__ops {
  const char *type_name;
  /* Cancel request for a pending future; returns what fut_cancel returns. */
  bool (*cancel)(fut_t *f, const char *msg);
  /* Releases the object's own fields and its memory (fut__free) once the
   * future's result and callbacks are gone. */
  void (*destroy)(fut_t *f);
};
struct fut__ext {
  const struct fut__ops *ops;
  fut_t fut;
};
/* Initialises an embedded future (refs 1) bound to loop. */
int fut__ext_init(fut_loop_t *loop, struct fut__ext *x,
                  const struct fut__ops *ops);
/* The plain cancel of a future, used by ops->cancel implementations. */
bool fut__cancel_base(fut_t *f, const char *msg);
static inline const struct fut__ops *fut__ops_of(const fut_t *f) {
  if (!(f->flags & FUT__F_EXT))
    return NULL;
  return fut__container_of(f, struct fut__ext, fut)->ops;
}

/* ---- the loop ---------------------------------------------------------- */
struct fut_loop {
  struct fut__ring ready; /* the ready queue */

  struct fut__timers timers; /* call_later / call_at (timer.c) */

  struct fut__io *io; /* indexed by fd, io_cap entries */
  int io_cap;
  size_t nwatchers; /* fds with a reader or writer */

  int epfd;     /* epoll instance, -1 when closed */
  int evfd;     /* eventfd doorbell, -1 when closed */
  void *events; /* struct epoll_event[events_cap] */
  int events_cap;

  struct fut__tsq tsq;          /* call_soon_threadsafe queue */
  struct fut__ts_ent *ts_spare; /* loop thread only: swapped with tsq */
  size_t ts_spare_cap;

  struct fut__slab fut_slab;    /* plain futures */
  struct fut__slab handle_slab; /* handles */
  size_t live_futures;          /* futures not yet freed (all kinds) */
  size_t live_handles;          /* handles not yet freed */

  bool running;  /* inside run_forever / run_once */
  bool stopping; /* stop requested */
  bool closed;   /* close done */
  bool checked;  /* closed || debug: the hot paths test
                    this one flag before the full checks */
  bool freed;    /* fut_loop_free called while objects
                    lived; memory goes with the last one */
  bool debug;
  bool in_callback;  /* a ready entry is executing */
  pthread_t owner;   /* thread that created / runs the loop */
  unsigned fork_gen; /* fut__fork_gen when epfd was made */

  uint64_t last_poll;         /* loop time near the last epoll_wait,
                                 0 until the first clock check after
                                 it */
  unsigned drains_since_poll; /* drains that skipped polling since */
  unsigned skip_budget;       /* drains left before reading the clock
                                 to bound the time without a poll */
  uint64_t slow_ns;           /* debug: slow callback threshold */

  fut_t *ruc_future; /* the future run_until_complete waits
                        for, NULL outside it */

  fut_exception_handler_cb exc_cb; /* NULL = default */
  void *exc_arg;

  /* Upper layers' per-loop state (executor.c, task.c), torn down at close
   * by these hooks (which may be NULL). */
  void *executor_state;
  void (*executor_close)(fut_loop_t *loop);
  /* Called when the tick would block in epoll_wait (nothing ready, a
   * non-zero timeout): may wait briefly for thread-safe work and drain it
   * into the ready queue (fut__tsq_drain); the tick then polls without
   * blocking if something became ready.  NULL when unused. */
  void (*executor_before_block)(fut_loop_t *loop);
  void *task_state;
  void (*task_close)(fut_loop_t *loop);
};

extern atomic_uint fut__fork_gen;

/* Returns 0 when the calling thread may use the loop, else an error.  Only
 * checks in debug mode (cheap otherwise). */
static inline int fut__check_thread(const fut_loop_t *loop) {
  if (FUT__UNLIKELY(loop->debug) && !pthread_equal(pthread_self(), loop->owner))
    return fut__error(FUT_E_WRONG_THREAD,
                      "loop %p used from a thread that does not own it",
                      (const void *)loop);
  return 0;
}
int fut__check_usable(const fut_loop_t *loop);

/* Releases the loop's memory once fut_loop_free ran and the last object
 * went. */
void fut__loop_maybe_release(fut_loop_t *loop);

/* timer.c */
void fut__timers_init(fut_loop_t *loop, uint64_t now);
void fut__timers_free(fut_loop_t *loop); /* memory; after clear */
/* Schedules cb(arg) at `when` with no handle. */
int fut__timer_push_cb(fut_loop_t *loop, uint64_t when, fut_cb cb, void *arg);
/* Schedules a timer handle (h->when set); the heap takes a reference. */
int fut__timer_push(fut_loop_t *loop, fut_handle_t *h);
/* Called when a timer still in the heap is cancelled. */
void fut__timer_cancelled(fut_loop_t *loop, fut_handle_t *h);
/* The earliest live deadline, UINT64_MAX when none. */
uint64_t fut__timer_next(fut_loop_t *loop);
void fut__timers_expire(fut_loop_t *loop, uint64_t now);
void fut__timers_clear(fut_loop_t *loop);

/* io.c */
void fut__io_clear(fut_loop_t *loop);
int fut__io_reregister(fut_loop_t *loop);
#define FUT__EV_READ 1u
#define FUT__EV_WRITE 2u

/* Queues the watchers of fd that events (FUT__EV_*) made ready; inline in
 * the epoll dispatch loop.  Each queued run holds a handle reference, so a
 * watcher removed earlier in the same batch is skipped, not freed under
 * the queue.  Level-triggered: if the queue cannot grow, the next poll
 * reports the fd again, so nothing is lost. */
static inline void fut__io_event(fut_loop_t *loop, int fd, uint32_t events) {
  if (FUT__UNLIKELY(fd < 0 || fd >= loop->io_cap))
    return;
  struct fut__io *io = &loop->io[fd];
  fut_handle_t *r = (events & FUT__EV_READ) ? io->reader : NULL;
  fut_handle_t *w = (events & FUT__EV_WRITE) ? io->writer : NULL;
  if (r && fut__ring_push(&loop->ready, fut__handle_run, r) == 0)
    r->refs++;
  if (w && fut__ring_push(&loop->ready, fut__handle_run, w) == 0)
    w->refs++;
}

/* epoll.c: the only file that includes <sys/epoll.h>. */
int fut__epoll_create(fut_loop_t *loop);
void fut__epoll_destroy(fut_loop_t *loop);
int fut__epoll_ctl(fut_loop_t *loop, int fd, uint32_t old_events,
                   uint32_t new_events);
int fut__epoll_poll(fut_loop_t *loop, uint64_t timeout_ns);

/* wakeup.c */
int fut__tsq_init(fut_loop_t *loop);
void fut__tsq_destroy(fut_loop_t *loop);
void fut__tsq_drain(fut_loop_t *loop);
void fut__tsq_close(fut_loop_t *loop);

/* future.c */
void fut__future_global_init(void); /* once, from fut_loop_new */
void fut__future_release_all(fut_loop_t *loop);
/* Drops the queued registrations (cb, arg) made on futures that were done
 * with a dispatch already queued (they sit in the ready queue, not on the
 * future, so fut_remove_done_callback cannot see them); returns how many.
 * For loop close, whose ready-queue clear would release the future but not
 * what arg holds. */
int fut__drop_late_callbacks(fut_loop_t *loop, fut_done_cb cb, void *arg);
void fut__report_exception(fut_loop_t *loop, const char *message, int err,
                           fut_t *f, fut_handle_t *h, const char *detail);

#endif
