/* libfuture — the signal layer's private interface: signal handlers on the
 * loop (asyncio's add_signal_handler).  Includes the network layer's
 * header (and so every layer below).  Never installed.
 *
 * Two halves.  wakeup.c is process-wide: the one sigaction handler, the
 * dispositions it replaced, and a fixed table of wakeup slots, one per loop
 * that has handlers.  signal.c is per loop: the public calls and the loop
 * part that keeps each loop's callbacks and its slot's eventfd. */
#ifndef FUT_SIGNAL_INTERNAL_H
#define FUT_SIGNAL_INTERNAL_H

#include "net/internal.h"

/* Signals are 1..FUT__SIG_MAX; signal s is bit s - 1 of a slot's masks. */
#define FUT__SIG_MAX 64
/* Loops of one process that may have handlers at the same time. */
#define FUT__SIG_SLOTS 128
/* Close rank: before everything else, so no delivery is queued while the
 * other parts close. */
#define FUT__RANK_SIGNALS 50

/* ---- wakeup.c: process-wide, every call thread-safe ---------------------
 * A slot is the signal handler's view of one loop: the signals it watches,
 * those caught and not yet taken, and the eventfd to write.  The handler
 * touches nothing else. */

/* 0 when signo can be handled (checks the range, SIGKILL and SIGSTOP; the
 * C library's reserved signals are found by sigaction later), else -EINVAL
 * with a message naming `what`. */
int fut__sig_check(int signo, const char *what);
/* Takes a free slot whose handler wakes efd (this process only): its
 * index, or -ENOSPC. */
int fut__sig_slot_acquire(int efd);
/* Frees the slot: afterwards no handler reads it, so efd may be closed. */
void fut__sig_slot_release(int slot);
/* After a fork, in the child: the slot wakes efd, in this process. */
void fut__sig_slot_renew(int slot, int efd);
/* The signals caught for the slot since the last call (bit signo - 1). */
uint64_t fut__sig_slot_take(int slot);
/* The slot watches signo (again: no change but the next line): installs
 * the library's disposition if it is not in place, saving the one it
 * replaces.  0 or a negative errno (-EINVAL with a message for a signal
 * sigaction refuses); on failure the slot's watching is as before. */
int fut__sig_watch(int slot, int signo);
/* The slot stops watching signo; the last watcher in the process puts back
 * the saved disposition (if the library's is still in place). */
void fut__sig_unwatch(int slot, int signo);
/* For a child between fork and exec (the process layer): sets every
 * signal the library catches back to SIG_DFL, which is what exec would do,
 * so a signal sent to the child in that window gets its default action
 * instead of our handler (which would do nothing there).  Async-signal-
 * safe: no lock, only sigaction.  posix_spawn does the same by itself. */
void fut__sig_child_reset(void);

#endif
