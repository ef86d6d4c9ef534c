/* libfuture — the event loop (asyncio's event loop core).
 *
 * A loop is single-threaded: one thread runs it and makes every call on it,
 * except fut_loop_call_soon_threadsafe(), which any thread may call.  In
 * debug mode (fut_loop_set_debug) a call from another thread returns
 * FUT_E_WRONG_THREAD instead of corrupting state; in normal mode such a call
 * is undefined behaviour, as with asyncio.
 *
 * Every user callback runs from one place: the loop's drain of its ready
 * queue.  What is scheduled during a drain runs on a later iteration, in
 * FIFO order.  Callbacks never run inline from the call that schedules them.
 *
 * Time is uint64_t nanoseconds of CLOCK_MONOTONIC.
 */
#ifndef FUTURE_LOOP_H
#define FUTURE_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "future/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fut_loop fut_loop_t;
typedef struct fut_handle fut_handle_t;
typedef struct fut fut_t;

/* A plain callback: call_soon, call_later, readers, writers. */
typedef void (*fut_cb)(void *arg);

#define FUT_NS(n) ((uint64_t)(n))
#define FUT_US(n) ((uint64_t)(n)*1000u)
#define FUT_MS(n) ((uint64_t)(n)*1000000u)
#define FUT_SEC(n) ((uint64_t)(n)*1000000000u)

/* ---- lifetime ---------------------------------------------------------- */

/* Creates a loop owned by the calling thread.  *out receives the loop (NULL
 * on failure).  Returns 0 or a negative code.  Errors: -EINVAL (out NULL),
 * -ENOMEM, -EMFILE/-ENFILE (no fd for epoll or the eventfd). */
FUT_EXTERN int fut_loop_new(fut_loop_t **out);

/* Closes the loop if needed and frees it.  Everything still scheduled is
 * released (handles, timers, pending done-callback dispatches); arguments
 * of user callbacks stay the caller's.  NULL is a no-op.  Must not be
 * called while the loop runs (returns FUT_E_RUNNING and frees nothing). */
FUT_EXTERN int fut_loop_free(fut_loop_t *loop);

/* Closes the loop: drops every scheduled callback, timer and fd watcher,
 * shuts down the loop's default executor without waiting for its running
 * jobs (asyncio's shutdown(wait=False); their results are dropped), closes
 * the epoll and eventfd descriptors.  Idempotent.  Returns 0 or a negative
 * code.  Errors: FUT_E_RUNNING while the loop runs (for instance from a
 * callback). */
FUT_EXTERN int fut_loop_close(fut_loop_t *loop);

/* True once closed (and for NULL). */
FUT_EXTERN bool fut_loop_is_closed(const fut_loop_t *loop);
FUT_EXTERN bool fut_loop_is_running(const fut_loop_t *loop); /* NULL: false */

/* ---- running ----------------------------------------------------------- */

/* Runs until fut_loop_stop().  Returns 0 or a negative code.  Errors:
 * FUT_E_RUNNING (already running, or another loop runs in this thread),
 * FUT_E_CLOSED, FUT_E_FORKED (used in a forked child before fut_loop_fork),
 * -errno if epoll_wait fails. */
FUT_EXTERN int fut_loop_run_forever(fut_loop_t *loop);

/* Runs until f is done.  Returns 0 if f finished with a result, f's error
 * code if it failed, -ECANCELED if it was cancelled, FUT_E_STOPPED if the
 * loop was stopped first, or any error of fut_loop_run_forever.  f must
 * belong to loop (FUT_E_OTHER_LOOP).  The caller keeps its reference. */
FUT_EXTERN int fut_loop_run_until_complete(fut_loop_t *loop, fut_t *f);

/* One iteration, for embedding: poll for at most timeout_ns (0 = do not
 * block, UINT64_MAX = as long as needed; the poll never outlasts the
 * earliest timer or pending work), then run what became ready.  Returns 0
 * or the errors of fut_loop_run_forever. */
FUT_EXTERN int fut_loop_run_once(fut_loop_t *loop, uint64_t timeout_ns);

/* Asks a running loop to stop after the current iteration (the callbacks
 * already ready still run).  Called while the loop is not running, the next
 * run_forever runs one iteration and returns, as in asyncio. */
FUT_EXTERN void fut_loop_stop(fut_loop_t *loop);

/* The loop's clock: CLOCK_MONOTONIC in ns. */
FUT_EXTERN uint64_t fut_loop_time(const fut_loop_t *loop);

/* The loop running in the calling thread (asyncio.get_running_loop), or
 * NULL when none runs. */
FUT_EXTERN fut_loop_t *fut_get_running_loop(void);

/* ---- scheduling ---------------------------------------------------------
 * Each returns 0 or a negative code, and when hout is not NULL writes a
 * handle the caller owns (release with fut_handle_unref).  The loop keeps
 * its own reference until the callback ran or was cancelled.  arg is
 * borrowed: it must stay valid until the callback runs or is cancelled.
 * Errors: -EINVAL (cb NULL), FUT_E_CLOSED, FUT_E_WRONG_THREAD (debug mode),
 * FUT_E_FORKED, -ENOMEM.  Called from a task with context variables, the
 * callback runs in the task's context as it is now (asyncio's
 * copy_context(); future/ctxvar.h); from plain code nothing is captured. */

FUT_EXTERN int fut_loop_call_soon(fut_loop_t *loop, fut_cb cb, void *arg,
                                  fut_handle_t **hout);
/* Runs cb no earlier than delay_ns from now. */
FUT_EXTERN int fut_loop_call_later(fut_loop_t *loop, uint64_t delay_ns,
                                   fut_cb cb, void *arg, fut_handle_t **hout);
/* Runs cb no earlier than the loop time `when` (fut_loop_time units). */
FUT_EXTERN int fut_loop_call_at(fut_loop_t *loop, uint64_t when, fut_cb cb,
                                void *arg, fut_handle_t **hout);

/* Thread-safe: may be called from any thread, including signal-free worker
 * threads.  Every successful call runs cb exactly once on the loop thread,
 * in FIFO order per calling thread.  No handle: it cannot be cancelled.  If
 * the loop is closed before cb ran, cb never runs.  Errors: -EINVAL,
 * FUT_E_CLOSED, -ENOMEM, or -errno of the write that wakes the loop
 * (EINTR is retried; then nothing is queued). */
FUT_EXTERN int fut_loop_call_soon_threadsafe(fut_loop_t *loop, fut_cb cb,
                                             void *arg);

/* Cancels the callback.  Harmless if it already ran or was cancelled.  The
 * handle stays valid until unref'd.  NULL is a no-op. */
FUT_EXTERN void fut_handle_cancel(fut_handle_t *h);
FUT_EXTERN bool fut_handle_cancelled(const fut_handle_t *h);
/* For timer handles: the scheduled loop time; 0 for others. */
FUT_EXTERN uint64_t fut_handle_when(const fut_handle_t *h);
FUT_EXTERN void fut_handle_ref(fut_handle_t *h);
FUT_EXTERN void fut_handle_unref(fut_handle_t *h);

/* ---- file descriptors --------------------------------------------------
 * asyncio's add_reader / add_writer: level-triggered watching of fd on
 * epoll; cb(arg) runs on the loop each iteration while the fd is ready.
 * Adding again replaces the callback.  The fd stays the caller's.
 *
 * The rule for closing: remove the watchers, then close the fd.  epoll
 * watches the open file, not the number, so the loop cannot see a close
 * behind its back; it copes with the two mistakes it can detect: an fd
 * closed without removal whose number comes back (the next add on that
 * number finds the old registration gone and drops the stale watchers, so
 * the old callback never runs for the new file), and a removal after the
 * number was closed while a dup() kept the file open (the loop sees events
 * of a registration it no longer owns and rebuilds its epoll instance,
 * keeping the fd number fut_loop_backend_fd returned).  Until either
 * happens, the watcher of a closed fd simply never runs.
 *
 * A removal reaches epoll lazily, just before the loop next waits (so a
 * remove and an add of the same fd in one iteration cost one
 * EPOLL_CTL_MOD); no event of a removed watcher is delivered meanwhile.
 * Removing, then closing the fd before that wait is the rule followed;
 * if a dup() keeps the file open past that close, the loop handles its
 * registration as in the second case above (a rebuild if it fires).
 *
 * Each returns 0 or a negative code.  Errors: -EINVAL (NULL loop, fd < 0,
 * cb NULL, or one of the loop's own descriptors), -EBADF (not an open fd),
 * -EPERM (epoll cannot watch this kind of fd, e.g. a regular file:
 * asyncio's EpollSelector refuses it too), FUT_E_CLOSED,
 * FUT_E_WRONG_THREAD, -ENOMEM. */
FUT_EXTERN int fut_loop_add_reader(fut_loop_t *loop, int fd, fut_cb cb,
                                   void *arg);
FUT_EXTERN int fut_loop_add_writer(fut_loop_t *loop, int fd, fut_cb cb,
                                   void *arg);
/* Return 1 if a watcher was removed, 0 if none was registered, or a
 * negative code (-EINVAL for a NULL loop or fd < 0, FUT_E_WRONG_THREAD).
 * A callback already queued in this iteration for the removed watcher does
 * not run.  Safe on a fd that has been closed meanwhile (see above). */
FUT_EXTERN int fut_loop_remove_reader(fut_loop_t *loop, int fd);
FUT_EXTERN int fut_loop_remove_writer(fut_loop_t *loop, int fd);

/* ---- exceptions --------------------------------------------------------
 * asyncio's exception handler: errors nobody else can report (a failed
 * future whose exception was never retrieved, a slow callback in debug
 * mode, an error inside the loop) go through it. */
typedef struct fut_exception_ctx {
  const char *message;  /* always set */
  int err;              /* error code, 0 if none */
  fut_t *future;        /* borrowed, may be NULL */
  fut_handle_t *handle; /* borrowed, may be NULL */
  const char *detail;   /* the future's exception message, may be NULL */
} fut_exception_ctx_t;

typedef void (*fut_exception_handler_cb)(fut_loop_t *loop,
                                         const fut_exception_ctx_t *ctx,
                                         void *arg);

/* handler NULL restores the default (fut_loop_default_exception_handler). */
FUT_EXTERN void fut_loop_set_exception_handler(fut_loop_t *loop,
                                               fut_exception_handler_cb cb,
                                               void *arg);
/* Writes the current handler (NULL when it is the default) and its arg. */
FUT_EXTERN void fut_loop_get_exception_handler(const fut_loop_t *loop,
                                               fut_exception_handler_cb *cb,
                                               void **arg);
/* Calls the current handler with ctx (synchronously); NULL ctx: nothing,
 * NULL loop: the default handler. */
FUT_EXTERN void fut_loop_call_exception_handler(fut_loop_t *loop,
                                                const fut_exception_ctx_t *ctx);
/* Prints a readable report of ctx to stderr. */
FUT_EXTERN void fut_loop_default_exception_handler(
    fut_loop_t *loop, const fut_exception_ctx_t *ctx, void *unused);

/* ---- debug mode --------------------------------------------------------
 * Debug mode checks the calling thread on every loop and future call, and
 * reports callbacks that take longer than the slow-callback threshold
 * (default 100 ms) through the exception handler.  Also enabled by the
 * environment variable FUT_DEBUG=1 at fut_loop_new. */
FUT_EXTERN void fut_loop_set_debug(fut_loop_t *loop, bool enabled);
FUT_EXTERN bool fut_loop_get_debug(const fut_loop_t *loop);
FUT_EXTERN void fut_loop_set_slow_callback_duration(fut_loop_t *loop,
                                                    uint64_t ns);

/* ---- embedding ---------------------------------------------------------
 * The epoll fd: readable when the loop has something to do (I/O, a
 * threadsafe call).  Poll it from a host loop with the timeout below and
 * call fut_loop_run_once(loop, 0) when it is readable or the timeout ran
 * out.  Returns the fd, or -EINVAL for a NULL loop. */
FUT_EXTERN int fut_loop_backend_fd(const fut_loop_t *loop);
/* ns until the loop needs to run: 0 when work is ready, UINT64_MAX when
 * nothing is scheduled (or loop is NULL). */
FUT_EXTERN uint64_t fut_loop_backend_timeout(const fut_loop_t *loop);

/* ---- fork --------------------------------------------------------------
 * In a forked child the loop refuses every run with FUT_E_FORKED until this
 * re-creates its epoll instance and eventfd and re-registers its fd
 * watchers (libev's ev_loop_fork).  Call it in the child only.  Returns 0 or a
 * negative code.  Errors: FUT_E_CLOSED, -errno of epoll_create1 / eventfd. */
FUT_EXTERN int fut_loop_fork(fut_loop_t *loop);

/* ---- introspection ----------------------------------------------------- */
typedef struct fut_loop_stats {
  size_t live_futures;   /* futures of this loop not yet freed */
  size_t live_handles;   /* handles not yet freed (user or loop owned) */
  size_t pending_timers; /* timers scheduled and not cancelled */
  size_t ready;          /* entries in the ready queue */
  size_t watchers;       /* fds with a reader or writer */
  size_t threadsafe;     /* threadsafe calls queued, not yet run */
} fut_loop_stats_t;

/* Fills *out with counters; useful to prove nothing is alive.  A NULL
 * loop gives zeros; a NULL out does nothing. */
FUT_EXTERN void fut_loop_stats(const fut_loop_t *loop, fut_loop_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
