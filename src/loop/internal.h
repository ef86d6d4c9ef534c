/* libfuture — the loop layer's private interface: handles, the ready
 * ring, timers, fd watchers, the epoll boundary, the thread-safe door, the
 * loop struct and the parts through which upper layers join a loop.
 * Includes only the base layer.  Never installed. */
#ifndef FUT_LOOP_INTERNAL_H
#define FUT_LOOP_INTERNAL_H

#include "base/internal.h"
/* ---- handles (loop.c, timer.c, io.c) ----------------------------------- */
enum {
  FUT__H_CANCELLED = 1u << 0, /* cancelled: never runs again */
  FUT__H_TIMER = 1u << 1,     /* scheduled by call_later / call_at */
  FUT__H_IO = 1u << 2,        /* an fd watcher's handle, runs repeatedly */
  FUT__H_RAN = 1u << 3,       /* a one-shot handle that has run */
  FUT__H_IN_HEAP = 1u << 4,   /* a timer a timer tier still references */
  FUT__H_CTX = 1u << 5,       /* cb is fut__ctx_call_run and arg its
                                 struct fut__ctx_call, owned by the handle
                                 until it runs (then freed by the run) or
                                 is cancelled or freed */
  FUT__H_IN_WHEEL = 1u << 6,  /* with IN_HEAP: in a wheel bucket's handle
                                 list at index pos (cancel unlinks it) */
  FUT__H_IN_RUN = 1u << 7     /* with IN_HEAP: in the sorted run, where pos
                                 (mod 2^24, from run_base) finds it (cancel
                                 leaves a tombstone) */
};

/* 32 bytes: a pending timer with a handle is this plus a 12-byte wheel
 * entry (struct fut__hchunk).  The loop is the slab's owner
 * (fut__handle_loop), not a field; a timer's sequence number lives in its
 * wheel entry, its slack here, rounded down to FUT__HSLACK_SHIFT bits. */
struct fut_handle {
  union {
    fut_cb cb; /* the callback; the free-list link once freed */
    void *next_free;
  };
  void *arg;          /* borrowed from the user */
  uint64_t when;      /* timers: deadline in loop time */
  uint32_t refs : 24; /* user + loop references (heap, ready queue) */
  uint32_t flags : 8; /* FUT__H_* */
  uint32_t slack : 8; /* timers: fut__timer_slack >> FUT__HSLACK_SHIFT */
  uint32_t pos : 24;  /* IN_WHEEL: index in its bucket's handle list */
};
#define FUT__HANDLE_REFS_MAX ((1u << 24) - 1)
#define FUT__HSLACK_SHIFT 12 /* 4 us units: 1 ms fits in 8 bits */
#define FUT__HPOS_MAX ((1u << 24) - 1)

/* The loop a handle belongs to. */
static inline fut_loop_t *fut__handle_loop(const fut_handle_t *h) {
  return fut__slab_owner(h);
}

/* A handle with one reference, or NULL (out of memory, detail recorded). */
fut_handle_t *fut__handle_new(fut_loop_t *loop, fut_cb cb, void *arg,
                              uint8_t flags);
/* Debug mode: the calls that return nothing refuse a thread that does not
 * own the loop (nothing happens; fut_last_error and stderr say why), as
 * the int calls return FUT_E_WRONG_THREAD.  True when refused. */
bool fut__refuse_foreign(const fut_loop_t *loop, const char *what);
#define FUT__FOREIGN(loop, what)                                               \
  (FUT__UNLIKELY((loop)->debug) && fut__refuse_foreign(loop, what))

/* Ready-queue trampoline for handles: skips cancelled ones, drops the
 * queue's reference. */
void fut__handle_run(void *h);

/* A timer heap slot.  It holds the whole timer when nobody asked for a
 * handle (cb set), so fire-and-forget timers allocate nothing and firing
 * touches only the heap; otherwise cb is NULL and arg is the handle.  The
 * deadline and sequence are cached either way, so sifting never touches a
 * handle (handles are scattered in memory). */
struct fut__heap_ent {
  uint64_t when;  /* deadline in loop time */
  uint32_t seq;   /* FIFO tie-break among equal deadlines (wraps) */
  uint32_t slack; /* ns the timer may fire late (fut__timer_slack) */
  fut_cb cb;      /* the callback, or NULL when arg is a fut_handle_t */
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

/* A chunk of a bucket's handle list: handle i of the list is
 * chunks[i / FUT__HCHUNK_ENTS] at i % FUT__HCHUNK_ENTS, its sequence number
 * beside it.  12 bytes a timer (3 KiB chunks: a power of two entries, so
 * an index splits with shifts). */
#define FUT__HCHUNK_ENTS 256
struct fut__hchunk {
  union {
    fut_handle_t *h[FUT__HCHUNK_ENTS];
    struct fut__hchunk *next; /* on the spare list */
  };
  uint32_t seq[FUT__HCHUNK_ENTS];
};

/* A wheel bucket's timers with a handle: a dense list [head, len), so
 * cancelling unlinks in O(1): the oldest entry (a timer cancelled in the
 * order it was started, the common case) leaves by moving head, touching
 * no other handle; any other by the last entry filling its hole (handles
 * know their index, absolute from the list's start). */
struct fut__hbucket {
  struct fut__hchunk **chunks; /* ceil(len / FUT__HCHUNK_ENTS) in use */
  uint32_t head;               /* entries before it were cancelled */
  uint32_t len;                /* end of the list (head..len: handles) */
  uint32_t nchunks, cap;       /* chunks held, room in chunks[] */
};

#define FUT__WHEEL_BITS 8
#define FUT__WHEEL_SLOTS (1u << FUT__WHEEL_BITS)
#define FUT__SLOT_SHIFT 20 /* a slot spans 2^20 ns, about 1 ms */

/* A wheel slot passed by a burst of starts before the loop ran (the lag,
 * timer.c): its lists, moved whole, wait to be sorted into the run. */
struct fut__lag {
  uint64_t slot;
  struct fut__tchunk *bare;
  struct fut__hbucket hb; /* its handles keep FUT__H_IN_WHEEL */
};

/* Timers in three tiers by deadline slot (when >> FUT__SLOT_SHIFT):
 *   near   slot <= cur_slot: a small heap, the only tier that fires;
 *   wheel  the next FUT__WHEEL_SLOTS - 1 slots: unsorted buckets, O(1)
 *          insert, moved into the near heap when their slot comes;
 *   far    later: a heap whose top migrates into the wheel.
 * So the heap that orders firing stays small (in cache) however many
 * timers wait. */
struct fut__timers {
  struct fut__theap near; /* timers filed straight into slot <= cur_slot */
  /* Flushed wheel slots, sorted by radix on arrival: firing from here is
   * an index increment, not a heap pop.  Slots flush in order, so each
   * flush appends after every earlier one and the run stays sorted.  The
   * near tier is this run merged with the near heap. */
  struct fut__heap_ent *run, *scratch; /* scratch: the sort's second buffer */
  uint32_t run_pos, run_len, run_cap;  /* live entries: [run_pos, run_len) */
  uint32_t run_base;     /* a handle's pos minus this (mod 2^24) is its index in
                            run: sliding the run forward adds to it.  A
                            cancelled handle's entry becomes a tombstone (cb
                            and arg NULL), skipped when reached */
  uint32_t scratch_cap;  /* the largest bucket sorted so far */
  struct fut__theap far; /* slot >= cur_slot + WHEEL_SLOTS */
  struct fut__tchunk *wheel[FUT__WHEEL_SLOTS];  /* bucket of slot s at
                                                   s % WHEEL_SLOTS: timers
                                                   without a handle (and
                                                   handles past HPOS_MAX) */
  struct fut__hbucket hwheel[FUT__WHEEL_SLOTS]; /* the same slots' timers
                                                   with a handle */
  uint64_t wheel_bits[FUT__WHEEL_SLOTS / 64];   /* non-empty buckets */
  struct fut__tchunk *spare;                    /* free chunks */
  uint32_t nspare;  /* at most FUT__TSPARE_MAX: a burst's chunks go back */
  uint32_t nhspare; /* the same for handle-list chunks */
  struct fut__hchunk *hspare;
  struct fut__slab hslab; /* handle-list chunks come from here, and */
  struct fut__slab tslab; /* bare timers' chunks from here: a burst of
                             timers maps huge pages, not a fault per
                             4 KiB of malloc'd chunks */
  struct fut__lag *lag;   /* slots <= cur_slot not yet in the run, in slot
                             order; a handle in the wheel whose slot is
                             <= cur_slot is in one */
  uint32_t nlag, lag_cap;
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

/* ---- thread-safe door (door.c) --------------------------------------- */
struct fut__door_ent {
  fut_cb fn;
  void *arg;
};

struct fut__door {
  pthread_mutex_t lock;
  struct fut__door_ent *ents; /* guarded by lock */
  size_t len, cap;            /* guarded by lock */
  bool closed;                /* guarded by lock: refuse new calls */
  atomic_bool rung;           /* doorbell written and not yet drained */
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
  uint8_t registered;   /* epoll events the kernel holds (0 = none); more
                           than the watchers' while a removal is pending */
  bool dirty;           /* on loop->io_dirty: a removal waits for the poll */
  uint32_t gen;         /* bumped at each EPOLL_CTL_ADD and carried in the
                           event's data: an event of an older generation
                           comes from a registration we no longer own */
};

/* ---- context capture (ctxcall.c) --------------------------------------
 * asyncio's call_soon / call_later / call_at / add_done_callback capture
 * the scheduling code's context (contextvars.copy_context()) and run the
 * callback inside it.  The contexts are the sync layer's (context
 * variables); this layer only carries them, as opaque references, through
 * the hooks that layer registers from a constructor.
 *
 * loop->ctx_live counts what on the loop has a non-empty context: tasks
 * (counted by the task layer at creation, and by the sync layer at a
 * task's first set; uncounted when the task is freed) and the bound
 * callbacks running (fut__ctx_live_add).  While it is 0 no code on the
 * loop can have a context to capture; its being non-zero is a bit of
 * loop->checked, the byte the hot paths already test, so scheduling with
 * no context in use costs nothing more, and task switches pay nothing;
 * otherwise the hooks say what the running code's context is.  A captured
 * callback is scheduled as (fut__ctx_call_run, struct fut__ctx_call) in place
 * of (cb, arg). */
struct fut__ctx_hooks {
  void (*ref)(void *ctx);   /* takes a reference (ctx not NULL) */
  void (*unref)(void *ctx); /* drops one */
  /* A reference to the context of the code running on this thread (a
   * task's, a bound callback's, a fut_to_thread function's), or NULL
   * when it has none (plain code, an empty context). */
  void *(*capture_here)(void);
  /* Makes *slot the calling thread's current context until leave(the
   * returned value); *slot may change meanwhile (a set pushes onto it). */
  void *(*enter)(void **slot);
  void (*leave)(void *prev);
};
extern const struct fut__ctx_hooks *fut__ctx_hooks;

/* A callback bound to a context (a side allocation: the handle and the
 * queues keep their size). */
struct fut__ctx_call {
  union {
    fut_cb cb;        /* call_soon / call_later / call_at / threadsafe */
    fut_done_cb done; /* a done callback (the future layer) */
  } fn;
  void *arg;        /* the user's */
  void *ctx;        /* a context reference, never NULL */
  fut_loop_t *loop; /* where it runs */
};

/* The context a callback scheduled now on loop would capture: a reference
 * to it, or NULL (the common case: one test). */
static inline void *fut__ctx_capture(const fut_loop_t *loop);
/* A bound callback for (ctx, arg) with fn to be set by the caller; ctx (a
 * reference) moves in.  NULL when out of memory: ctx is released and the
 * detail recorded (the caller returns -ENOMEM). */
struct fut__ctx_call *fut__ctx_call_new(fut_loop_t *loop, void *ctx, void *arg);
/* Ready-queue / timer / door trampoline: runs c->fn.cb(c->arg) inside
 * c->ctx, then frees c.  Registered with fut__register_release, so a loop
 * closed with it queued frees c. */
void fut__ctx_call_run(void *c);
/* Frees a bound callback that will not run (cancelled, removed, dropped). */
void fut__ctx_call_free(struct fut__ctx_call *c);

/* Runs code inside a context: enter moves the reference ctx into the
 * frame and makes it current (for the sync layer and for what the code
 * schedules); leave restores the outer one and drops the frame's. */
struct fut__ctx_frame {
  void *ctx;   /* the callback's context (sets inside replace it) */
  void *outer; /* what the hooks' enter returned */
};
void fut__ctx_enter(fut_loop_t *loop, struct fut__ctx_frame *fr, void *ctx);
void fut__ctx_leave(fut_loop_t *loop, struct fut__ctx_frame *fr);

/* The scheduling calls without capture, for the library's own callbacks
 * (wake-ups, timeouts, polls): they run no user code that could read a
 * context, and a task awaiting in a context must not pay an allocation
 * per wait.  Same contracts as the public calls. */
int fut__call_soon_nocapture(fut_loop_t *loop, fut_cb cb, void *arg,
                             fut_handle_t **hout);
int fut__call_at_nocapture(fut_loop_t *loop, uint64_t when, fut_cb cb,
                           void *arg, fut_handle_t **hout);
int fut__call_later_nocapture(fut_loop_t *loop, uint64_t delay_ns, fut_cb cb,
                              void *arg, fut_handle_t **hout);
int fut__call_soon_threadsafe_nocapture(fut_loop_t *loop, fut_cb fn, void *arg);

/* ---- parts: how upper layers join a loop (loop.c) ----------------------
 * A layer above the loop that keeps per-loop state (tasks, combinators,
 * executors, ...) registers a part once, from a constructor, and gets an
 * id; the loop keeps one state pointer per part and calls the part's hooks
 * without naming it, so the loop never depends on the layers above it. */
#define FUT__LOOP_PARTS 16

struct fut__loop_part {
  const char *name;
  /* Close order: parts with a higher rank close first (a layer ranks
   * above the layers it uses, so they are still whole when it closes). */
  int rank;
  /* At fut_loop_close, before the loop drops its queues, with the state
   * the part set on this loop (never NULL); the part releases it.  NULL
   * for a part whose state never outlives a run.  The
   * loop forgets the state afterwards.  May schedule and release futures. */
  void (*close)(fut_loop_t *loop, void *state);
  /* When the tick would block in epoll_wait (nothing ready, a non-zero
   * timeout): may wait briefly for thread-safe work and drain it
   * (fut__door_drain); the tick then polls without blocking if something
   * became ready.  NULL when unused. */
  void (*before_block)(fut_loop_t *loop, void *state);
  /* At fut_loop_fork in the child, after the loop's own state was
   * renewed.  NULL when unused. */
  void (*forked)(fut_loop_t *loop, void *state);
  /* Debug mode's slow-callback report: when the ready entry (fn, arg) is
   * this layer's (a task step), writes what it runs into buf ("task
   * 'main'") and returns true.  Called before the entry runs (it may free
   * arg).  NULL when unused. */
  bool (*describe)(fut_cb fn, void *arg, char *buf, size_t cap);
};

/* Registers a part (static storage) and returns its id; aborts when more
 * than FUT__LOOP_PARTS are registered (a build-time constant). */
int fut__loop_part_register(const struct fut__loop_part *part);
/* The part's state on loop, or NULL. */
static inline void *fut__loop_part(const fut_loop_t *loop, int id);
/* Sets (or, with NULL, clears) the part's state on loop. */
void fut__loop_part_set(fut_loop_t *loop, int id, void *state);

/* Bytes of a plain future (struct fut, future/internal.h, which checks
 * it): the loop keeps their slab. */
#define FUT__FUTURE_SIZE 64

/* ---- the loop ---------------------------------------------------------- */
struct fut_loop {
  struct fut__ring ready; /* the ready queue */

  struct fut__timers timers; /* call_later / call_at (timer.c) */

  struct fut__io *io; /* indexed by fd, io_cap entries */
  int io_cap;
  size_t nwatchers; /* fds with a reader or writer */
  /* fds whose watchers were removed since the last poll: their epoll
   * registration is lowered (MOD or DEL) just before the next epoll_wait,
   * so a removal that an add cancels in the same iteration costs one MOD
   * instead of a DEL and an ADD (io.c, fut__io_flush). */
  int *io_dirty;
  int io_ndirty, io_dirty_cap;
  bool io_stale; /* the last poll saw an event of a registration the
                    table does not own: rebuild after the batch */

  int epfd;     /* epoll instance, -1 when closed */
  int evfd;     /* eventfd doorbell, -1 when closed */
  void *events; /* struct epoll_event[events_cap] */
  int events_cap;

  struct fut__door door;            /* call_soon_threadsafe queue */
  struct fut__door_ent *door_spare; /* loop thread only: swapped with door;
                                       holds the backlog */
  size_t door_spare_cap;
  size_t backlog_at, backlog_len; /* loop thread only: door_spare[at,
                                     at + len) were taken from the door
                                     but did not fit in the ready queue
                                     (out of memory): they run first;
                                     door.rung stays set meanwhile */

  struct fut__slab fut_slab;    /* plain futures (FUT__FUTURE_SIZE):
                                   kept by the loop, whose memory
                                   outlives it while futures live */
  struct fut__slab handle_slab; /* handles */
  struct fut__slab task_slab;   /* the task layer's task objects: sized
                                   by it at its first task (obj_size 0
                                   until then), kept by the loop like
                                   fut_slab (tasks are futures) */
  size_t live_futures;          /* futures not yet freed (all kinds) */
  size_t live_handles;          /* handles not yet freed */

  bool running;    /* inside run_forever / run_once; written under
                      door.lock, so call_soon_threadsafe can tell
                      whether the loop's thread may be running it */
  bool stopping;   /* stop requested */
  bool closed;     /* close done */
  uint8_t checked; /* FUT__CHK_*: the hot paths test this
                      one byte before their slow path */
  bool freed;      /* fut_loop_free called while objects
                      lived; memory goes with the last one */
  bool debug;
  bool in_callback;         /* a ready entry is executing */
  uint32_t ctx_live;        /* tasks with a context and bound callbacks
                               running (see "context capture") */
  _Atomic(pthread_t) owner; /* thread that created / runs the loop;
                               written under door.lock (relaxed reads
                               from any thread: the debug check) */
  unsigned fork_gen;        /* fut__fork_gen when epfd was made */

  uint64_t last_poll;         /* loop time near the last epoll_wait,
                                 0 until the first clock check after
                                 it */
  unsigned drains_since_poll; /* drains that skipped polling since */
  unsigned skip_budget;       /* drains left before reading the clock
                                 to bound the time without a poll */
  unsigned skip_every;        /* drains between those clock reads
                                 (adapts to the drains' length) */
  uint64_t last_check;        /* fut__now() at the last clock read */
  uint64_t slow_ns;           /* debug: slow callback threshold */

  uint64_t (*clock)(void *arg); /* tests: the loop's time source, NULL =
                                   CLOCK_MONOTONIC (fut__loop_now) */
  void *clock_arg;

  fut_exception_handler_cb exc_cb; /* NULL = default */
  void *exc_arg;

  /* The parts upper layers keep in this loop (see "parts" below). */
  void *parts[FUT__LOOP_PARTS]; /* a part's state, by part id; NULL
                                   until the part first uses the loop
                                   and after its close hook ran */
  uint32_t blocking_parts;      /* ids (bits) of the parts with state
                                   here and a before_block hook */
};

/* Why the hot paths (call_soon, a future's checks) take their slow path:
 * loop->checked is 0 in the common case. */
enum {
  FUT__CHK_USABLE = 1u << 0, /* closed or debug: the full checks */
  FUT__CHK_CTX = 1u << 1     /* ctx_live > 0: a callback may capture */
};

/* Changes loop->ctx_live by d (+1 or -1), keeping FUT__CHK_CTX in step. */
static inline void fut__ctx_live_add(fut_loop_t *loop, int d) {
  loop->ctx_live += (uint32_t)d;
  loop->checked = (uint8_t)((loop->checked & ~FUT__CHK_CTX) |
                            (loop->ctx_live ? FUT__CHK_CTX : 0));
}

static inline void *fut__loop_part(const fut_loop_t *loop, int id) {
  return loop->parts[id];
}

static inline void *fut__ctx_capture(const fut_loop_t *loop) {
  if (FUT__LIKELY(loop->ctx_live == 0))
    return NULL;
  return fut__ctx_hooks->capture_here();
}

/* The loop's time: CLOCK_MONOTONIC, or a test's mock clock. */
static inline uint64_t fut__loop_now(const fut_loop_t *loop) {
  return FUT__UNLIKELY(loop->clock != NULL) ? loop->clock(loop->clock_arg)
                                            : fut__now();
}
/* Test hook: replaces the loop's time source (timers, call_later,
 * fut_loop_time) with clock(arg), NULL for the real one.  Only while no
 * timer is pending (-EBUSY).  A test then advances its clock and runs the
 * loop with fut_loop_run_once(loop, 0): timer tests need no sleeping. */
int fut__loop_set_clock(fut_loop_t *loop, uint64_t (*clock)(void *arg),
                        void *arg);

/* Returns 0 when the calling thread may use the loop, else an error.  Only
 * checks in debug mode (cheap otherwise). */
static inline int fut__check_thread(const fut_loop_t *loop) {
  if (FUT__UNLIKELY(loop->debug) &&
      !pthread_equal(pthread_self(),
                     atomic_load_explicit(&loop->owner, memory_order_relaxed)))
    return fut__error(FUT_E_WRONG_THREAD,
                      "loop %p used from a thread that does not own it",
                      (const void *)loop);
  return 0;
}
int fut__check_usable(const fut_loop_t *loop);
/* fut__check_usable with its common case inline: a loop neither closed
 * nor in debug mode (loop->checked) nor carried over a fork. */
static inline int fut__check_usable_fast(const fut_loop_t *loop) {
  if (FUT__LIKELY(!(loop->checked & FUT__CHK_USABLE) &&
                  loop->fork_gen == fut__fork_generation()))
    return 0;
  return fut__check_usable(loop);
}

/* Releases the loop's memory once fut_loop_free ran and the last object
 * went. */
void fut__loop_maybe_release(fut_loop_t *loop);

/* timer.c */
void fut__timers_init(fut_loop_t *loop, uint64_t now);
void fut__timers_free(fut_loop_t *loop); /* memory; after clear */
/* Timer coalescing: a timer scheduled `delay` ns ahead may fire up to
 * fut__timer_slack(delay) late, never early: 1/16 of the delay, at least
 * FUT__SLACK_MIN, at most FUT__SLACK_MAX.  The loop then sleeps until the
 * latest moment that keeps every due timer within its slack
 * (fut__timer_wake), so a burst of near-equal deadlines costs one
 * wake-up.  Precedents: the kernel's timer slack (50 us for a normal
 * thread, and 0.1% of a poll timeout), libuv and libev (whole
 * milliseconds, up to 1 ms late); asyncio fires up to its clock
 * resolution early, which this never does. */
#define FUT__SLACK_MIN 50000u   /* 50 us */
#define FUT__SLACK_MAX 1000000u /* 1 ms */
static inline uint32_t fut__timer_slack(uint64_t delay) {
  uint64_t s = delay >> 4;
  return s < FUT__SLACK_MIN   ? FUT__SLACK_MIN
         : s > FUT__SLACK_MAX ? FUT__SLACK_MAX
                              : (uint32_t)s;
}
/* Schedules cb(arg) at `when` with no handle, `slack` ns late at most. */
int fut__timer_push_cb(fut_loop_t *loop, uint64_t when, uint32_t slack,
                       fut_cb cb, void *arg);
/* Schedules a timer handle (h->when set); the heap takes a reference. */
int fut__timer_push(fut_loop_t *loop, fut_handle_t *h, uint32_t slack);
/* call_later / call_at's fast path for a timer with a handle, the loop
 * already checked usable with no context to capture: when `when` falls in
 * a wheel slot whose handle list has room and the handle slab's current
 * chunk has a free slot, makes the handle (the caller's and the wheel's
 * references), files it, sets *hout and returns 0; otherwise does nothing
 * and returns 1 (take the general path).  Inline: the scheduling call
 * stays one function. */
static inline int fut__timer_start(fut_loop_t *loop, uint64_t when,
                                   uint32_t slack, fut_cb cb, void *arg,
                                   fut_handle_t **hout) {
  struct fut__timers *t = &loop->timers;
  /* Straight-line: a slot ahead of the tiers and within the wheel, whose
   * handle list's last chunk has room, and a handle from the slab's
   * current chunk; anything else is the general path's. */
  uint64_t slot = when >> FUT__SLOT_SHIFT;
  if (FUT__UNLIKELY(slot <= t->cur_slot ||
                    slot - t->cur_slot >= FUT__WHEEL_SLOTS))
    return 1;
  uint32_t b = (uint32_t)(slot % FUT__WHEEL_SLOTS);
  struct fut__hbucket *hb = &t->hwheel[b];
  uint32_t i = hb->len, k = i / FUT__HCHUNK_ENTS;
  if (FUT__UNLIKELY(k >= hb->nchunks || i > FUT__HPOS_MAX))
    return 1;
  fut_handle_t *h = fut__slab_try_alloc(&loop->handle_slab);
  if (FUT__UNLIKELY(!h))
    return 1;
  *h = (fut_handle_t){
      .cb = cb,
      .arg = arg,
      .when = when,
      .refs = 2, /* the caller's and the wheel's */
      .flags = FUT__H_TIMER | FUT__H_IN_HEAP | FUT__H_IN_WHEEL,
      .slack = slack >> FUT__HSLACK_SHIFT, /* rounded down: never later */
      .pos = i};
  struct fut__hchunk *c = hb->chunks[k];
  c->h[i % FUT__HCHUNK_ENTS] = h;
  c->seq[i % FUT__HCHUNK_ENTS] = t->seq++;
  hb->len = i + 1;
  t->wheel_bits[b / 64] |= UINT64_C(1) << (b % 64);
  t->total++;
  loop->live_handles++;
  *hout = h;
  return 0;
}
/* Called when a timer still in the heap is cancelled. */
void fut__timer_cancelled(fut_loop_t *loop, fut_handle_t *h);
/* The earliest live deadline, UINT64_MAX when none. */
uint64_t fut__timer_next(fut_loop_t *loop);
/* When the loop, blocking at `now`, should wake for its timers: the
 * latest time T such that no timer is due after its deadline plus its
 * slack by T, and no timer due before T is left for a later wake; never
 * before the earliest deadline (at most `now` when one is already due);
 * UINT64_MAX when no timer waits.  May move wheel slots into the near
 * heap ahead of time. */
uint64_t fut__timer_wake(fut_loop_t *loop, uint64_t now);
/* Moves due timers to the ready queue: 0, or -ENOMEM when due timers could
 * not be moved (they stay; the caller fails its run). */
int fut__timers_expire(fut_loop_t *loop, uint64_t now);
void fut__timers_clear(fut_loop_t *loop);

/* io.c */
void fut__io_clear(fut_loop_t *loop);
/* Registers every watched fd with a new epoll instance (after a fork, or a
 * rebuild); watchers of fds closed behind the loop's back are dropped. */
int fut__io_reregister(fut_loop_t *loop);
/* Applies the pending removals to epoll (called just before epoll_wait). */
void fut__io_flush(fut_loop_t *loop);
/* Tells the loop that fd, whose watchers are all removed, is about to be
 * closed by an owner holding the only descriptor of its file: the kernel
 * drops the epoll registration with the close, so the pending lowering
 * (an EPOLL_CTL_DEL that would fail with EBADF) is skipped.  Should the
 * file live on elsewhere (a dup, a fork), its events are recognised as
 * stale and the epoll instance is rebuilt (fut__io_event). */
void fut__io_closing(fut_loop_t *loop, int fd);
#define FUT__EV_READ 1u
#define FUT__EV_WRITE 2u

/* Queues the watchers of fd that events (FUT__EV_*) made ready; inline in
 * the epoll dispatch loop.  Each queued run holds a handle reference, so a
 * watcher removed earlier in the same batch is skipped, not freed under
 * the queue.  Level-triggered: if the queue cannot grow, the next poll
 * reports the fd again, so nothing is lost. */
static inline void fut__io_event(fut_loop_t *loop, int fd, uint32_t gen,
                                 uint32_t events) {
  /* A registration the loop no longer owns: an fd closed and reopened
   * behind its back, or removed after its file was dup'd and the number
   * closed (epoll tracks the open file, so EPOLL_CTL_DEL could not reach
   * it).  It would wake every poll: the epoll instance is rebuilt. */
  if (FUT__UNLIKELY(fd >= loop->io_cap || loop->io[fd].gen != gen ||
                    !loop->io[fd].registered)) {
    loop->io_stale = true;
    return;
  }
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
/* Changes fd's registration from old_events to new_events (FUT__EV_*;
 * 0 = none), bumping loop->io[fd].gen on each ADD.  Returns 0, 1 when the
 * kernel had forgotten the fd (it was closed behind the loop's back: MOD
 * fell back to ADD), or a negative errno. */
int fut__epoll_ctl(fut_loop_t *loop, int fd, uint32_t old_events,
                   uint32_t new_events);
/* Lowers fd's registration to new_events (EPOLL_CTL_MOD, or DEL for 0)
 * without falling back to ADD.  Returns 0 or a negative errno. */
int fut__epoll_lower(fut_loop_t *loop, int fd, uint32_t new_events);
/* Replaces the epoll instance (same fd number, same doorbell) with one
 * holding only the registrations of the fd table. */
int fut__epoll_rebuild(fut_loop_t *loop);
int fut__epoll_poll(fut_loop_t *loop, uint64_t timeout_ns);
/* The epoll_pwait2 call the poll makes (events: struct epoll_event *); a
 * test shim replaces it to play a kernel without the syscall. */
extern int (*fut__sys_epoll_pwait2)(int epfd, void *events, int maxevents,
                                    const struct timespec *ts);

/* door.c: the thread-safe door's own API.  fut__door_drain moves every
 * queued call into the ready queue (loop thread); fut__door_rung says
 * whether the doorbell was rung and not yet drained (any thread, acquire);
 * fut__door_poke wakes the loop without queueing anything (any thread,
 * while the loop is not closed: the caller guarantees it), so a blocked
 * loop runs its parts' before_block hooks.  It retries EINTR and returns 0,
 * or -errno of a failed write (EAGAIN counts as rung). */
int fut__door_init(fut_loop_t *loop);
void fut__door_destroy(fut_loop_t *loop);
void fut__door_drain(fut_loop_t *loop);
void fut__door_close(fut_loop_t *loop);
static inline bool fut__door_rung(const fut_loop_t *loop) {
  return atomic_load_explicit(&loop->door.rung, memory_order_acquire);
}
int fut__door_poke(fut_loop_t *loop);

/* Writes a one-line description of f ("task 'name' 0x... (pending)")
 * into buf for the default exception handler and returns what snprintf
 * returns; set once by the future layer's constructor (NULL before). */
extern int (*fut__describe_future)(const fut_t *f, char *buf, size_t size);
/* Reports through the loop's exception handler (loop.c). */
void fut__report_exception(fut_loop_t *loop, const char *message, int err,
                           fut_t *f, fut_handle_t *h, const char *detail);

#endif
