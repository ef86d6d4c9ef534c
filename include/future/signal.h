/* libfuture — Unix signal handlers on the loop (asyncio's
 * loop.add_signal_handler / remove_signal_handler).
 *
 * A handler is an ordinary callback: when the signal arrives, the library's
 * own sigaction handler only records it and wakes every loop that watches
 * it (an atomic flag and an eventfd write); cb(arg) then runs on the loop's
 * thread from its ready queue, like a call_soon callback, never in signal
 * context.  So a handler may call any libfuture or libc function.
 *
 * Delivery coalesces as Linux does for standard signals: however many times
 * a signal arrives before its callback ran, the callback runs once for the
 * batch (real-time signals coalesce too).  Several loops of one process may
 * watch one signal: each of them runs its own handler.  The first handler
 * for a signal in the process installs the library's disposition; removing
 * the last one (or closing the last loop that had one) puts back the
 * disposition that was there before, unless somebody replaced the library's
 * disposition in the meantime (then theirs stays).  docs/signals.md tells
 * the design: threads, fork, subprocesses and the process pool.
 *
 * Thread-safety: these calls belong to the loop's thread, like every loop
 * call (FUT_E_WRONG_THREAD in debug mode).  Loops of different threads may
 * add and remove handlers concurrently: the process-wide table is locked.
 * Signals may arrive on any thread that does not block them.
 *
 * Common errors: -EINVAL (NULL loop or cb, a signal number outside 1..64,
 * SIGKILL, SIGSTOP, or a signal the C library reserves: fut_last_error()
 * says which), FUT_E_CLOSED, FUT_E_FORKED, FUT_E_WRONG_THREAD, -ENOMEM,
 * -EMFILE / -ENFILE (no fd for the loop's eventfd), -ENOSPC (more than 128
 * loops of the process have signal handlers).
 */
#ifndef FUTURE_SIGNAL_H
#define FUTURE_SIGNAL_H

#include "future/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- signal handlers ---------------------------------------------------- */

/* Runs cb(arg) on loop each time signo arrives (once per coalesced
 * batch).  Adding a handler for a signal that already has one on this
 * loop replaces its callback and argument; a delivery already queued then
 * runs the new one.  arg is borrowed: it must stay valid until the handler
 * is removed or the loop is closed.  Call it from the loop's thread.
 * Returns 0 or a negative code, and on failure nothing changed.  Errors:
 * -EINVAL (NULL loop or cb, signo outside 1..64, SIGKILL, SIGSTOP, a
 * signal the C library reserves), FUT_E_CLOSED, FUT_E_FORKED,
 * FUT_E_WRONG_THREAD, -ENOMEM, -EMFILE, -ENFILE, -ENOSPC. */
FUT_EXTERN int fut_loop_add_signal_handler(fut_loop_t *loop, int signo,
                                           fut_cb cb, void *arg);

/* Removes loop's handler for signo.  A delivery already queued for it does
 * not run.  When no loop of the process handles signo any more, the
 * disposition from before the first handler is restored.  Call it from
 * the loop's thread, callbacks included (a handler may remove itself).
 * Returns 1 when a handler was removed, 0 when there was none (also on a
 * closed loop, and for SIGKILL / SIGSTOP), or a negative code.  Errors:
 * -EINVAL (NULL loop, signo outside 1..64), FUT_E_FORKED,
 * FUT_E_WRONG_THREAD. */
FUT_EXTERN int fut_loop_remove_signal_handler(fut_loop_t *loop, int signo);

#ifdef __cplusplus
}
#endif
#endif
