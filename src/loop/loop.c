/* The loop: lifetime, the tick, run / stop, call_soon / call_later,
 * handles, the exception handler and debug mode. */
#include "loop/internal.h"

#include <string.h>
#include <unistd.h>

/* Poll skipping (DESIGN.md §3): while ready work remains, the zero-timeout
 * epoll_wait is skipped unless one of these bounds is reached, so a chain of
 * callbacks runs without a syscall per hop and I/O still waits at most
 * about POLL_SKIP_NS. */
#define POLL_SKIP_NS FUT_US(50)
/* A backstop: the time bound comes first unless drains take < 3 ns. */
#define POLL_SKIP_MAX_DRAINS 16384u
/* Drains between clock reads: POLL_SKIP_CLOCK_EVERY, doubled up to
 * POLL_SKIP_CLOCK_MAX while the reads come less than POLL_SKIP_NS / 16
 * apart (short drains: a chain of small callbacks), back to the base as
 * soon as they come more than POLL_SKIP_NS / 8 apart.  Both the clock read
 * (~35 ns) and the poll (~2 us on a VM with mitigations) would otherwise
 * cost a chain a large share of each hop. */
#define POLL_SKIP_CLOCK_EVERY 64u
#define POLL_SKIP_CLOCK_MAX 1024u

static _Thread_local fut_loop_t *running_loop;

/* ---- parts -------------------------------------------------------------- */

/* Registered parts, by id; written by constructors before any loop
 * exists, read-only afterwards. */
static const struct fut__loop_part *parts[FUT__LOOP_PARTS];
static atomic_int nparts;

int fut__loop_part_register(const struct fut__loop_part *part) {
  int id = atomic_fetch_add(&nparts, 1);
  FUT__ASSERT(id < FUT__LOOP_PARTS);
  parts[id] = part;
  return id;
}

void fut__loop_part_set(fut_loop_t *loop, int id, void *state) {
  loop->parts[id] = state;
  if (state && parts[id]->before_block)
    loop->blocking_parts |= 1u << id;
  else
    loop->blocking_parts &= ~(1u << id);
}

/* Closes every part that has state here, higher ranks first. */
static void close_parts(fut_loop_t *loop) {
  int n = atomic_load(&nparts);
  bool done[FUT__LOOP_PARTS] = {false};
  for (;;) {
    int best = -1;
    for (int id = 0; id < n; id++)
      if (!done[id] && (best < 0 || parts[id]->rank > parts[best]->rank))
        best = id;
    if (best < 0)
      return;
    done[best] = true;
    void *state = loop->parts[best];
    if (state) {
      if (parts[best]->close)
        parts[best]->close(loop, state);
      fut__loop_part_set(loop, best, NULL);
    }
  }
}

__attribute__((noinline)) static void before_block(fut_loop_t *loop) {
  for (int id = 0; id < FUT__LOOP_PARTS; id++)
    if (loop->blocking_parts & (1u << id))
      parts[id]->before_block(loop, loop->parts[id]);
}

static void fork_parts(fut_loop_t *loop) {
  int n = atomic_load(&nparts);
  for (int id = 0; id < n; id++)
    if (loop->parts[id] && parts[id]->forked)
      parts[id]->forked(loop, loop->parts[id]);
}

/* ---- lifetime ----------------------------------------------------------- */

int fut__check_usable(const fut_loop_t *loop) {
  if (FUT__UNLIKELY(loop->closed))
    return fut__error(FUT_E_CLOSED, "the loop is closed");
  if (FUT__UNLIKELY(loop->fork_gen != fut__fork_generation()))
    return fut__error(FUT_E_FORKED, "the loop was created before a fork: "
                                    "call fut_loop_fork() in the child first");
  return fut__check_thread(loop);
}

int fut_loop_new(fut_loop_t **out) {
  if (!out)
    return fut__error(-EINVAL, "fut_loop_new: NULL out");
  *out = NULL;
  fut_loop_t *loop = fut__calloc(1, sizeof *loop);
  if (!loop)
    return fut__error(-ENOMEM, "fut_loop_new: out of memory");
  loop->epfd = loop->evfd = -1;
  atomic_init(&loop->owner, pthread_self());
  loop->fork_gen = fut__fork_generation();
  loop->slow_ns = FUT_MS(100);
  loop->skip_every = POLL_SKIP_CLOCK_EVERY;
  const char *dbg = getenv("FUT_DEBUG");
  loop->debug = dbg && dbg[0] && strcmp(dbg, "0") != 0;
  loop->checked = loop->debug ? FUT__CHK_USABLE : 0;
  fut__slab_init(&loop->fut_slab, FUT__FUTURE_SIZE);
  fut__slab_init(&loop->handle_slab, sizeof(fut_handle_t));
  /* A burst of a million futures or timers faults 2 MiB at a time (a
   * 4 KiB fault costs 10-20 us in a VM).  Not the tasks' slab: measured
   * slower there (docs/tasks.md, "Huge pages: not for tasks"). */
  loop->fut_slab.huge = loop->handle_slab.huge = true;
  loop->handle_slab.owner = loop; /* fut__handle_loop */
  fut__timers_init(loop, fut__now());
  int err = fut__ring_grow(&loop->ready);
  if (err)
    goto fail_ring;
  if ((err = fut__door_init(loop)))
    goto fail_door;
  if ((err = fut__epoll_create(loop)))
    goto fail_epoll;
  *out = loop;
  return 0;

fail_epoll:
  fut__door_destroy(loop);
fail_door:
  fut__free(loop->ready.ents);
fail_ring:
  fut__free(loop->events);
  fut__free(loop);
  return err;
}

bool fut_loop_is_closed(const fut_loop_t *loop) {
  return !loop || loop->closed; /* NULL is no usable loop */
}
bool fut_loop_is_running(const fut_loop_t *loop) {
  return loop && loop->running;
}

int fut_loop_close(fut_loop_t *loop) {
  if (!loop)
    return fut__error(-EINVAL, "fut_loop_close: NULL loop");
  if (loop->running)
    return fut__error(FUT_E_RUNNING, "fut_loop_close: the loop is running");
  if (loop->closed)
    return 0;
  int err = fut__check_thread(loop);
  if (err)
    return err;
  /* Upper layers first: they may still schedule or release futures. */
  close_parts(loop);
  loop->closed = true;
  loop->checked |= FUT__CHK_USABLE;
  /* In a forked child before fut_loop_fork, a parent thread may have held
   * the queue's lock at fork time: our copy would stay locked forever. */
  if (loop->fork_gen != fut__fork_generation())
    pthread_mutex_init(&loop->door.lock, NULL);
  fut__door_close(loop);
  fut__timers_clear(loop);
  fut__io_clear(loop);
  fut__ready_clear(loop);
  fut__epoll_destroy(loop);
  return 0;
}

static void release_memory(fut_loop_t *loop) {
  fut__slab_destroy(&loop->fut_slab);
  fut__slab_destroy(&loop->handle_slab);
  fut__slab_destroy(&loop->task_slab);
  fut__free(loop->ready.ents);
  fut__timers_free(loop);
  fut__free(loop->events);
  fut__door_destroy(loop);
  fut__free(loop);
}

void fut__loop_maybe_release(fut_loop_t *loop) {
  if (loop->freed && loop->live_futures == 0 && loop->live_handles == 0)
    release_memory(loop);
}

int fut_loop_free(fut_loop_t *loop) {
  if (!loop)
    return 0;
  int err = fut_loop_close(loop);
  if (err)
    return err;
  /* Futures or handles the user still holds keep the memory alive; the
   * last of them releases it. */
  loop->freed = true;
  fut__loop_maybe_release(loop);
  return 0;
}

/* ---- the tick ----------------------------------------------------------- */

/* What a ready entry runs, for the slow-callback report: an upper
 * layer's own words (a task step names its task), else the callback. */
static void describe_entry(const struct fut__ready_ent *e, char *buf,
                           size_t cap) {
  int n = atomic_load(&nparts);
  for (int id = 0; id < n; id++)
    if (parts[id]->describe && parts[id]->describe(e->fn, e->arg, buf, cap))
      return;
  snprintf(buf, cap, "callback %p", *(void **)(void *)&e->fn);
}

__attribute__((noinline)) static void report_slow(fut_loop_t *loop,
                                                  fut_handle_t *h,
                                                  const char *what,
                                                  uint64_t took) {
  char msg[192];
  snprintf(msg, sizeof msg, "executing %s took %.3f seconds", what,
           (double)took / 1e9);
  fut__report_exception(loop, msg, 0, NULL, h, NULL);
}

/* The debug drain times each callback to report slow ones. */
__attribute__((noinline)) static void drain_debug(fut_loop_t *loop,
                                                  uint32_t n) {
  struct fut__ring *r = &loop->ready;
  while (n--) {
    struct fut__ready_ent e = r->ents[r->head & r->mask];
    r->head++;
    /* The report shows the handle: keep it alive across the call, which
     * may drop the queue's last reference.  What the entry runs is read
     * before it runs, for the same reason. */
    fut_handle_t *h = e.fn == fut__handle_run ? e.arg : NULL;
    fut_handle_ref(h);
    char what[128];
    describe_entry(&e, what, sizeof what);
    uint64_t t0 = fut__now();
    e.fn(e.arg);
    uint64_t took = fut__now() - t0;
    if (took >= loop->slow_ns)
      report_slow(loop, h, what, took);
    fut_handle_unref(h);
  }
}

/* Runs the entries present when the drain began (asyncio's snapshot):
 * whatever they schedule waits for the next iteration.
 *
 * chain (run_forever): when that next iteration would only skip its poll
 * (may_skip_poll's countdown), find no timer and drain again, it is run
 * here in place: the same snapshots in the same order, without the tick's
 * overhead around each (a chain of callbacks that each schedule the next
 * drains one entry per iteration).  It ends where the tick would do more:
 * an empty queue, a stop, a timer, debug mode, the countdown's end (the
 * clock check and the poll bound stay the tick's). */
static inline void drain(fut_loop_t *loop, bool chain) {
  struct fut__ring *r = &loop->ready;
  if (FUT__UNLIKELY(loop->debug)) {
    drain_debug(loop, r->tail - r->head);
    return;
  }
  /* Only the drain moves the head (a growing ring keeps indices), and only
   * the tick uses the countdown (callbacks cannot run a tick of this
   * loop): both stay in registers. */
  uint32_t head = r->head, end = r->tail;
  unsigned budget = loop->skip_budget;
  for (;;) {
    if (head == end) { /* the snapshot ran */
      end = r->tail;
      if (!chain || end == head || loop->stopping || loop->timers.total > 0 ||
          budget <= 1 || loop->debug)
        break;
      budget--; /* what the skipped iteration's may_skip_poll does */
    }
    /* Re-read the ring each time: a callback may grow it. */
    struct fut__ready_ent e = r->ents[head & r->mask];
    r->head = ++head;
    e.fn(e.arg);
  }
  if (chain) {
    loop->drains_since_poll += loop->skip_budget - budget;
    loop->skip_budget = budget;
  }
}

/* Whether this tick may skip its zero-timeout poll: only a countdown on
 * the hot path; the clock is read once per loop->skip_every drains. */
static inline bool may_skip_poll(fut_loop_t *loop) {
  if (FUT__LIKELY(loop->skip_budget > 1)) {
    loop->skip_budget--;
    return true;
  }
  if (loop->drains_since_poll >= POLL_SKIP_MAX_DRAINS)
    return false;
  /* The poll itself reads no clock (it would cost every I/O iteration a
   * clock read): the first check after it takes the reference, so the time
   * bound counts from at most loop->skip_every drains after the poll. */
  uint64_t now = fut__now();
  if (loop->last_poll == 0)
    loop->last_poll = now;
  else if (now - loop->last_poll >= POLL_SKIP_NS)
    return false;
  uint64_t since = now - loop->last_check;
  loop->last_check = now;
  unsigned every = loop->skip_every;
  if (since < POLL_SKIP_NS / 16)
    every = every >= POLL_SKIP_CLOCK_MAX / 2 ? POLL_SKIP_CLOCK_MAX : every * 2;
  else if (since > POLL_SKIP_NS / 8)
    every = POLL_SKIP_CLOCK_EVERY;
  loop->skip_every = every;
  loop->skip_budget = every;
  return true;
}

/* Polls epoll with the timeout the loop's state allows. */
__attribute__((noinline)) static int poll_io(fut_loop_t *loop, bool have_ready,
                                             uint64_t max_timeout) {
  uint64_t timeout;
  if (have_ready || loop->stopping) {
    timeout = 0;
  } else if (loop->timers.total > 0) {
    uint64_t now = fut__loop_now(loop), when = fut__timer_wake(loop, now);
    timeout = when == UINT64_MAX ? UINT64_MAX : when > now ? when - now : 0;
  } else {
    timeout = UINT64_MAX;
  }
  if (timeout > max_timeout)
    timeout = max_timeout;
  int n = fut__epoll_poll(loop, timeout);
  if (n < 0)
    return n;
  loop->last_poll = 0; /* taken by the first may_skip_poll clock check */
  loop->drains_since_poll = 0;
  loop->skip_budget = loop->skip_every;
  return 0;
}

static inline __attribute__((always_inline)) int
tick(fut_loop_t *loop, uint64_t max_timeout, bool chain) {
  bool have_ready = loop->ready.tail != loop->ready.head;
  /* A stop requested before the run (the only way stopping is set when a
   * tick starts) asks for exactly one poll, as in asyncio: never skip it. */
  if (have_ready && !loop->stopping && may_skip_poll(loop)) {
    loop->drains_since_poll++;
  } else {
    if (!have_ready && !loop->stopping && max_timeout != 0 &&
        loop->blocking_parts) {
      before_block(loop);
      have_ready = loop->ready.tail != loop->ready.head;
    }
    int err = poll_io(loop, have_ready, max_timeout);
    if (err)
      return err;
  }
  if (loop->timers.total > 0) {
    int err = fut__timers_expire(loop, fut__loop_now(loop));
    if (FUT__UNLIKELY(err))
      return err;
  }
  drain(loop, chain);
  return 0;
}

static int enter(fut_loop_t *loop, const char *what) {
  if (!loop)
    return fut__error(-EINVAL, "%s: NULL loop", what);
  int err = fut__check_usable(loop);
  if (err)
    return err;
  if (loop->running)
    return fut__error(FUT_E_RUNNING, "%s: the loop is already running", what);
  if (running_loop)
    return fut__error(FUT_E_RUNNING,
                      "%s: another loop is running in this "
                      "thread",
                      what);
  /* Under the door's lock: call_soon_threadsafe reads both to decide
   * whether its caller may push to the ready queue directly. */
  pthread_mutex_lock(&loop->door.lock);
  loop->running = true;
  atomic_store_explicit(&loop->owner, pthread_self(), memory_order_relaxed);
  pthread_mutex_unlock(&loop->door.lock);
  running_loop = loop;
  return 0;
}

static void leave(fut_loop_t *loop) {
  loop->stopping = false;
  pthread_mutex_lock(&loop->door.lock);
  loop->running = false;
  pthread_mutex_unlock(&loop->door.lock);
  running_loop = NULL;
}

int fut_loop_run_forever(fut_loop_t *loop) {
  int err = enter(loop, "fut_loop_run_forever");
  if (err)
    return err;
  for (;;) {
    if ((err = tick(loop, UINT64_MAX, true)) != 0)
      break;
    if (loop->stopping)
      break;
  }
  leave(loop);
  return err;
}

int fut_loop_run_once(fut_loop_t *loop, uint64_t timeout_ns) {
  int err = enter(loop, "fut_loop_run_once");
  if (err)
    return err;
  err = tick(loop, timeout_ns, false);
  leave(loop);
  return err;
}

void fut_loop_stop(fut_loop_t *loop) {
  if (loop && !FUT__FOREIGN(loop, "fut_loop_stop"))
    loop->stopping = true;
}

uint64_t fut_loop_time(const fut_loop_t *loop) {
  return loop ? fut__loop_now(loop) : fut__now();
}

int fut__loop_set_clock(fut_loop_t *loop, uint64_t (*clock)(void *arg),
                        void *arg) {
  if (loop->timers.total > 0)
    return fut__error(-EBUSY, "fut__loop_set_clock: timers are pending");
  fut__timers_clear(loop); /* empty lagged slots of the old time go */
  loop->clock = clock;
  loop->clock_arg = arg;
  /* No timer waits (total is 0, cancelled ones included): the tiers are
   * empty and only need the new time's slot. */
  loop->timers.cur_slot = fut__loop_now(loop) >> FUT__SLOT_SHIFT;
  return 0;
}

fut_loop_t *fut_get_running_loop(void) {
  return running_loop;
}

/* ---- scheduling --------------------------------------------------------- */

/* Binds (cb, arg) to the context captured from the code scheduling on
 * loop, if any: *cb and *arg become the bound call's trampoline and
 * record.  Returns 0, or -ENOMEM (nothing bound). */
static int bind_ctx(fut_loop_t *loop, fut_cb *cb, void **arg, uint8_t *flags) {
  void *ctx = fut__ctx_capture(loop);
  if (FUT__LIKELY(!ctx))
    return 0;
  struct fut__ctx_call *c = fut__ctx_call_new(loop, ctx, *arg);
  if (!c)
    return -ENOMEM;
  c->fn.cb = *cb;
  *cb = fut__ctx_call_run;
  *arg = c;
  *flags |= FUT__H_CTX;
  return 0;
}

/* A bound call not handed to a handle: dropped on failure. */
static inline int unbind_on_error(int err, fut_cb cb, void *arg) {
  if (FUT__UNLIKELY(err) && cb == fut__ctx_call_run)
    fut__ctx_call_free(arg);
  return err;
}

__attribute__((noinline)) static int call_soon_slow(fut_loop_t *loop, fut_cb cb,
                                                    void *arg,
                                                    fut_handle_t **hout,
                                                    bool capture) {
  if (hout)
    *hout = NULL; /* the out rule of errors.h */
  if (!loop || !cb)
    return fut__error(-EINVAL, "fut_loop_call_soon: NULL %s",
                      !loop ? "loop" : "callback");
  int err = fut__check_usable(loop);
  if (err)
    return err;
  /* One FIFO with call_soon_threadsafe, as asyncio's one deque: calls the
   * door already received (from any thread) go before a user's call. */
  if (capture && (fut__door_rung(loop) || loop->backlog_len))
    fut__door_drain(loop);
  uint8_t flags = 0;
  if (capture && (err = bind_ctx(loop, &cb, &arg, &flags)))
    return err;
  if (!hout)
    return unbind_on_error(fut__ring_push(&loop->ready, cb, arg), cb, arg);
  fut_handle_t *h = fut__handle_new(loop, cb, arg, flags);
  if (!h) {
    unbind_on_error(-ENOMEM, cb, arg);
    return fut__error(-ENOMEM, "fut_loop_call_soon: out of memory");
  }
  if ((err = fut__ring_push(&loop->ready, fut__handle_run, h))) {
    fut_handle_unref(h); /* frees a bound call with it */
    return err;
  }
  h->refs++; /* the queue's and the caller's */
  *hout = h;
  return 0;
}

int fut_loop_call_soon(fut_loop_t *loop, fut_cb cb, void *arg,
                       fut_handle_t **hout) {
  /* The hot path: no handle, a healthy loop, no context to capture
   * (loop->checked), nothing waiting in the door (that goes first: the
   * slow path drains it; a backlog keeps the bell rung, so the bell says
   * it all), room in the ring.  The door is checked on every call, not
   * once per drain: a call_soon_threadsafe that returned on another thread
   * before this call (the caller may know it, e.g. by a join) must run
   * first, as in asyncio's one deque. */
  if (FUT__LIKELY(!hout && loop && cb && !loop->checked &&
                  !fut__door_rung(loop))) {
    struct fut__ring *r = &loop->ready;
    if (FUT__LIKELY(r->tail - r->head <= r->mask)) {
      struct fut__ready_ent *e = &r->ents[r->tail & r->mask];
      e->fn = cb;
      e->arg = arg;
      r->tail++;
      return 0;
    }
  }
  return call_soon_slow(loop, cb, arg, hout, true);
}

int fut__call_soon_nocapture(fut_loop_t *loop, fut_cb cb, void *arg,
                             fut_handle_t **hout) {
  return call_soon_slow(loop, cb, arg, hout, false);
}

/* call_at and call_later: slack is how late the timer may fire
 * (fut__timer_slack of its delay); capture binds the running task's
 * context to the callback. */
__attribute__((noinline)) static int schedule(fut_loop_t *loop, uint64_t when,
                                              uint32_t slack, fut_cb cb,
                                              void *arg, fut_handle_t **hout,
                                              bool capture, const char *what) {
  if (hout)
    *hout = NULL; /* the out rule of errors.h */
  if (FUT__UNLIKELY(!loop || !cb))
    return fut__error(-EINVAL, "%s: NULL %s", what,
                      !loop ? "loop" : "callback");
  int err = fut__check_usable(loop);
  if (err)
    return err;
  uint8_t flags = FUT__H_TIMER;
  if (capture && (err = bind_ctx(loop, &cb, &arg, &flags)))
    return err;
  if (!hout)
    return unbind_on_error(fut__timer_push_cb(loop, when, slack, cb, arg), cb,
                           arg);
  fut_handle_t *h = fut__handle_new(loop, cb, arg, flags);
  if (!h) {
    unbind_on_error(-ENOMEM, cb, arg);
    return fut__error(-ENOMEM, "%s: out of memory", what);
  }
  h->when = when;
  if ((err = fut__timer_push(loop, h, slack))) {
    fut_handle_unref(h); /* frees a bound call with it */
    return err;
  }
  h->refs++; /* the heap's and the caller's */
  *hout = h;
  return 0;
}

/* The fast paths apply: a usable loop in the common state (not closed,
 * not debug, no context in use: the one byte loop->checked) and not
 * inherited across a fork; schedule's checks and capture have nothing to
 * do then. */
static inline bool timer_fast(const fut_loop_t *loop, fut_cb cb) {
  return loop && cb && !loop->checked &&
         loop->fork_gen == fut__fork_generation();
}

/* Files the timer: without a handle straight into the tiers, with one
 * through fut__timer_start's inline path when it applies, else
 * schedule. */
static inline int start_timer(fut_loop_t *loop, uint64_t when, uint32_t slack,
                              fut_cb cb, void *arg, fut_handle_t **hout,
                              bool capture, const char *what) {
  if (FUT__LIKELY(timer_fast(loop, cb))) {
    if (!hout)
      return fut__timer_push_cb(loop, when, slack, cb, arg);
    if (FUT__LIKELY(fut__timer_start(loop, when, slack, cb, arg, hout) == 0))
      return 0;
  }
  return schedule(loop, when, slack, cb, arg, hout, capture, what);
}

static inline int call_at(fut_loop_t *loop, uint64_t when, fut_cb cb, void *arg,
                          fut_handle_t **hout, bool capture) {
  uint64_t now = loop ? fut__loop_now(loop) : 0;
  return start_timer(loop, when, fut__timer_slack(when > now ? when - now : 0),
                     cb, arg, hout, capture, "fut_loop_call_at");
}

/* Clamps instead of wrapping: a huge delay means "never, in practice". */
static inline int call_later(fut_loop_t *loop, uint64_t delay_ns, fut_cb cb,
                             void *arg, fut_handle_t **hout, bool capture) {
  uint64_t now = loop ? fut__loop_now(loop) : fut__now();
  uint64_t when = delay_ns > UINT64_MAX - now ? UINT64_MAX : now + delay_ns;
  return start_timer(loop, when, fut__timer_slack(delay_ns), cb, arg, hout,
                     capture, "fut_loop_call_later");
}

int fut_loop_call_at(fut_loop_t *loop, uint64_t when, fut_cb cb, void *arg,
                     fut_handle_t **hout) {
  return call_at(loop, when, cb, arg, hout, true);
}

int fut__call_at_nocapture(fut_loop_t *loop, uint64_t when, fut_cb cb,
                           void *arg, fut_handle_t **hout) {
  return call_at(loop, when, cb, arg, hout, false);
}

int fut_loop_call_later(fut_loop_t *loop, uint64_t delay_ns, fut_cb cb,
                        void *arg, fut_handle_t **hout) {
  return call_later(loop, delay_ns, cb, arg, hout, true);
}

int fut__call_later_nocapture(fut_loop_t *loop, uint64_t delay_ns, fut_cb cb,
                              void *arg, fut_handle_t **hout) {
  return call_later(loop, delay_ns, cb, arg, hout, false);
}

/* ---- exceptions --------------------------------------------------------- */

void fut_loop_set_exception_handler(fut_loop_t *loop,
                                    fut_exception_handler_cb cb, void *arg) {
  if (!loop)
    return;
  loop->exc_cb = cb;
  loop->exc_arg = cb ? arg : NULL;
}

void fut_loop_get_exception_handler(const fut_loop_t *loop,
                                    fut_exception_handler_cb *cb, void **arg) {
  if (cb)
    *cb = loop ? loop->exc_cb : NULL;
  if (arg)
    *arg = loop ? loop->exc_arg : NULL;
}

void fut_loop_default_exception_handler(fut_loop_t *loop,
                                        const fut_exception_ctx_t *ctx,
                                        void *unused) {
  (void)unused;
  if (!ctx)
    return;
  char buf[1024];
  int n = snprintf(buf, sizeof buf, "libfuture: loop %p: %s\n", (void *)loop,
                   ctx->message ? ctx->message : "(no message)");
  if (ctx->err && n < (int)sizeof buf)
    n += snprintf(buf + n, sizeof buf - (size_t)n, "  error: %s (%s)\n",
                  fut_err_name(ctx->err), fut_strerror(ctx->err));
  if (ctx->detail && n < (int)sizeof buf)
    n += snprintf(buf + n, sizeof buf - (size_t)n, "  message: %s\n",
                  ctx->detail);
  if (ctx->future && fut__describe_future && n < (int)sizeof buf) {
    n += snprintf(buf + n, sizeof buf - (size_t)n, "  future: ");
    if (n < (int)sizeof buf)
      n += fut__describe_future(ctx->future, buf + n, sizeof buf - (size_t)n);
    if (n < (int)sizeof buf)
      n += snprintf(buf + n, sizeof buf - (size_t)n, "\n");
  }
  if (ctx->handle && n < (int)sizeof buf) {
    const fut_handle_t *h = ctx->handle;
    fut_cb cb = h->cb;
    void *arg = h->arg;
    /* A bound callback not yet run: the user's, not the trampoline. */
    if ((h->flags & (FUT__H_CTX | FUT__H_RAN)) == FUT__H_CTX) {
      const struct fut__ctx_call *c = arg;
      cb = c->fn.cb;
      arg = c->arg;
    }
    n += snprintf(buf + n, sizeof buf - (size_t)n,
                  "  handle: %p callback %p arg %p\n", (void *)h,
                  *(void **)(void *)&cb, arg);
  }
  fputs(buf, stderr);
}

void fut_loop_call_exception_handler(fut_loop_t *loop,
                                     const fut_exception_ctx_t *ctx) {
  if (!ctx)
    return;
  if (loop && loop->exc_cb)
    loop->exc_cb(loop, ctx, loop->exc_arg);
  else
    fut_loop_default_exception_handler(loop, ctx, NULL);
}

int (*fut__describe_future)(const fut_t *f, char *buf, size_t size);

void fut__report_exception(fut_loop_t *loop, const char *message, int err,
                           fut_t *f, fut_handle_t *h, const char *detail) {
  fut_exception_ctx_t ctx = {.message = message,
                             .err = err,
                             .future = f,
                             .handle = h,
                             .detail = detail};
  fut_loop_call_exception_handler(loop, &ctx);
}

/* ---- debug, embedding, fork, stats -------------------------------------- */

void fut_loop_set_debug(fut_loop_t *loop, bool enabled) {
  if (!loop)
    return;
  loop->debug = enabled;
  loop->checked = (uint8_t)((loop->checked & ~FUT__CHK_USABLE) |
                            (loop->closed || enabled ? FUT__CHK_USABLE : 0));
}
bool fut_loop_get_debug(const fut_loop_t *loop) {
  return loop && loop->debug;
}
void fut_loop_set_slow_callback_duration(fut_loop_t *loop, uint64_t ns) {
  if (!loop)
    return;
  loop->slow_ns = ns;
}

int fut_loop_backend_fd(const fut_loop_t *loop) {
  if (!loop)
    return fut__error(-EINVAL, "fut_loop_backend_fd: NULL loop");
  return loop->epfd;
}

uint64_t fut_loop_backend_timeout(const fut_loop_t *loop) {
  if (!loop)
    return UINT64_MAX;
  if (loop->ready.tail != loop->ready.head || loop->stopping)
    return 0;
  uint64_t when = fut__timer_next((fut_loop_t *)loop);
  if (when == UINT64_MAX)
    return UINT64_MAX;
  uint64_t now = fut__loop_now(loop);
  return when > now ? when - now : 0;
}

int fut_loop_fork(fut_loop_t *loop) {
  if (!loop)
    return fut__error(-EINVAL, "fut_loop_fork: NULL loop");
  if (loop->closed)
    return fut__error(FUT_E_CLOSED, "fut_loop_fork: the loop is closed");
  /* The parent's epoll instance is shared with ours: closing our copies of
   * its fds leaves the parent's registrations alone. */
  fut__epoll_destroy(loop);
  int err = fut__epoll_create(loop);
  if (err)
    return err;
  /* A thread of the parent may have held the lock at fork time. */
  pthread_mutex_init(&loop->door.lock, NULL);
  atomic_store(&loop->door.rung, false);
  if (loop->door.len > 0 || loop->backlog_len > 0) {
    atomic_store(&loop->door.rung, true);
    (void)fut__door_poke(loop); /* best effort: the run drains first */
  }
  if ((err = fut__io_reregister(loop)))
    return err;
  atomic_store(&loop->owner, pthread_self());
  loop->running = false;
  running_loop = NULL;
  loop->fork_gen = fut__fork_generation();
  fork_parts(loop);
  return 0;
}

void fut_loop_stats(const fut_loop_t *loop, fut_loop_stats_t *out) {
  if (!out)
    return;
  if (!loop) {
    memset(out, 0, sizeof *out);
    return;
  }
  out->live_futures = loop->live_futures;
  /* Cancelled timers only the heap still holds are dead to the user. */
  out->live_handles = loop->live_handles - loop->timers.zombies;
  out->pending_timers = loop->timers.total - loop->timers.cancelled;
  out->ready = loop->ready.tail - loop->ready.head;
  out->watchers = loop->nwatchers;
  pthread_mutex_lock((pthread_mutex_t *)&loop->door.lock);
  out->threadsafe = loop->door.len + loop->backlog_len;
  pthread_mutex_unlock((pthread_mutex_t *)&loop->door.lock);
}
