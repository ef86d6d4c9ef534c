/* libfuture — concurrent futures (concurrent.futures.Future).
 *
 * A fut_cfuture_t is a thread-safe future that needs no loop.  Any thread
 * may complete it, wait on it (with a timeout) or read it.  Its done
 * callbacks run in the thread that completes it.  Executors
 * (future/executor.h) return one per submitted job; fut_wrap_future turns
 * one into a loop future.
 *
 * Time: timeouts are nanoseconds (FUT_MS, FUT_SEC); FUT_FOREVER waits
 * without limit, 0 polls.
 */
#ifndef FUTURE_CFUTURE_H
#define FUTURE_CFUTURE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "future/future.h"
#include "future/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A timeout that never expires. */
#define FUT_FOREVER UINT64_MAX

typedef struct fut_cfuture fut_cfuture_t;

typedef enum fut_cfuture_state {
  FUT_CFUTURE_PENDING = 0,   /* created or queued; can still be cancelled */
  FUT_CFUTURE_RUNNING = 1,   /* set_running_or_notify_cancel succeeded */
  FUT_CFUTURE_CANCELLED = 2, /* cancelled before it ran */
  FUT_CFUTURE_FINISHED = 3   /* has a result or an exception */
} fut_cfuture_state_t;

/* Done callback of a cfuture: runs in the thread that completed cf (the
 * worker thread for executor jobs, the caller of fut_cfuture_cancel for a
 * cancellation), or inline in fut_cfuture_add_done_callback when cf is
 * already done.  cf is borrowed.  It must not block for long: it delays
 * the completing thread. */
typedef void (*fut_cfuture_done_cb)(fut_cfuture_t *cf, void *arg);

/* Creates a pending cfuture (refs 1).  Executors create them; users rarely
 * need to.  Returns 0 or a negative code.  Errors: -EINVAL (out NULL), -ENOMEM.
 * Any thread. */
FUT_EXTERN int fut_cfuture_new(fut_cfuture_t **out);

/* Reference counting with atomic counts: any thread.  The last unref frees
 * the cfuture and its result (calling the result's destructor).  NULL is a
 * no-op for unref. */
FUT_EXTERN fut_cfuture_t *fut_cfuture_ref(fut_cfuture_t *cf);
FUT_EXTERN void fut_cfuture_unref(fut_cfuture_t *cf);

/* State queries, any thread (a snapshot: may change right after). */
FUT_EXTERN fut_cfuture_state_t fut_cfuture_state(const fut_cfuture_t *cf);
/* Finished or cancelled. */
FUT_EXTERN bool fut_cfuture_done(const fut_cfuture_t *cf);
FUT_EXTERN bool fut_cfuture_cancelled(const fut_cfuture_t *cf);
FUT_EXTERN bool fut_cfuture_running(const fut_cfuture_t *cf);

/* Cancels cf if it is pending, as in Python: returns true if cf is now
 * cancelled (it was pending, or was already cancelled), false if it is
 * running or finished.  On the transition the waiters wake and the done
 * callbacks run in the calling thread before this returns. */
FUT_EXTERN bool fut_cfuture_cancel(fut_cfuture_t *cf);

/* For executors, just before running the job: returns 1 and marks cf
 * running if it was pending; returns 0 if it was cancelled (the job must
 * not run; the cancellation was already notified); FUT_E_INVALID_STATE if
 * it is running or finished already.  Any thread. */
FUT_EXTERN int fut_cfuture_set_running_or_notify_cancel(fut_cfuture_t *cf);

/* Completing (any thread).  Each finishes a pending or running cfuture,
 * wakes its waiters and runs its done callbacks in the calling thread.
 * Ownership is as for fut_set_result: cf owns ptr and calls dtor(ptr) (dtor
 * may be NULL) when freed; on error cf takes nothing.  Each returns 0 or a
 * negative code.  Errors:
 * FUT_E_INVALID_STATE (already finished or cancelled), -ENOMEM. */
FUT_EXTERN int fut_cfuture_set_result(fut_cfuture_t *cf, void *ptr,
                                      fut_free_fn dtor);
/* Copies len bytes (data may be NULL when len is 0). */
FUT_EXTERN int fut_cfuture_set_result_bytes(fut_cfuture_t *cf, const void *data,
                                            size_t len);
/* Takes over a malloc'd buffer (freed with free()). */
FUT_EXTERN int fut_cfuture_set_result_bytes_owned(fut_cfuture_t *cf, void *data,
                                                  size_t len);
FUT_EXTERN int fut_cfuture_set_result_i64(fut_cfuture_t *cf, int64_t value);
/* err must be negative (-EINVAL otherwise); fmt (may be NULL) formats a
 * message kept with the exception.  -ECANCELED here is a failure with that
 * code, not a cancellation. */
FUT_EXTERN int fut_cfuture_set_exception(fut_cfuture_t *cf, int err,
                                         const char *fmt, ...) FUT_PRINTF(3, 4);
FUT_EXTERN int fut_cfuture_set_exceptionv(fut_cfuture_t *cf, int err,
                                          const char *fmt, va_list ap);

/* Blocks until cf is done or timeout_ns passed.  Returns 0 when done,
 * -ETIMEDOUT otherwise.  Never call it from one of the threads that would
 * complete cf (a worker of the pool running it).  Any thread. */
FUT_EXTERN int fut_cfuture_wait(fut_cfuture_t *cf, uint64_t timeout_ns);

/* Reading, as Python's result(timeout) / exception(timeout): wait up to
 * timeout_ns (0 = do not wait), then return 0 with the result, the job's
 * error code if it failed, -ECANCELED if cancelled, -ETIMEDOUT if still
 * not done.  Results are borrowed: valid while the caller holds a
 * reference to cf (a done cfuture never changes).  out/data/len may be
 * NULL.  _bytes gives the data and length of a byte result (a pointer
 * result gives its pointer and length 0); _i64 the value of an integer
 * result (0 for other kinds).  Any thread. */
FUT_EXTERN int fut_cfuture_result(fut_cfuture_t *cf, uint64_t timeout_ns,
                                  void **out);
FUT_EXTERN int fut_cfuture_result_bytes(fut_cfuture_t *cf, uint64_t timeout_ns,
                                        const void **data, size_t *len);
FUT_EXTERN int fut_cfuture_result_i64(fut_cfuture_t *cf, uint64_t timeout_ns,
                                      int64_t *out);
/* Returns 0 if cf finished with a result, its error code if it failed,
 * -ECANCELED if cancelled, -ETIMEDOUT if not done in time.  *msg (msg may
 * be NULL) receives the exception message (borrowed like results, NULL if
 * none). */
FUT_EXTERN int fut_cfuture_exception(fut_cfuture_t *cf, uint64_t timeout_ns,
                                     const char **msg);

/* Registers cb(cf, arg).  If cf is not done, cb runs later in the thread
 * that completes it; if cf is already done, cb runs now, inline, in the
 * calling thread (as in Python) — before this returns 0.  Callbacks run
 * in registration order, each exactly once.  Errors: -EINVAL, -ENOMEM
 * (cb never runs). */
FUT_EXTERN int fut_cfuture_add_done_callback(fut_cfuture_t *cf,
                                             fut_cfuture_done_cb cb, void *arg);
/* Removes every registration of (cb, arg) that has not started running;
 * returns how many.  After it returns, a removed cb never runs; a cb
 * already running in another thread may still be running. */
FUT_EXTERN int fut_cfuture_remove_done_callback(fut_cfuture_t *cf,
                                                fut_cfuture_done_cb cb,
                                                void *arg);

/* ---- waiting on several ------------------------------------------------- */

typedef enum fut_cfuture_wait_when {
  FUT_CFUTURE_FIRST_COMPLETED = 0, /* any one done */
  /* any one failed (not cancelled), else all */
  FUT_CFUTURE_FIRST_EXCEPTION = 1,
  FUT_CFUTURE_ALL_COMPLETED = 2 /* all done */
} fut_cfuture_wait_when_t;

/* concurrent.futures.wait: blocks until the condition holds or timeout_ns
 * passed, then writes done[i] (done may be NULL) for each of the n
 * cfutures and returns how many are done (>= 0; a timeout is not an
 * error, as in Python: fewer are done).  fs may repeat a cfuture.
 * Errors: -EINVAL (fs NULL with n > 0, a NULL entry, bad when), -ENOMEM.
 * Any thread. */
FUT_EXTERN int fut_cfuture_wait_many(fut_cfuture_t *const *fs, size_t n,
                                     fut_cfuture_wait_when_t when,
                                     uint64_t timeout_ns, bool *done);

/* concurrent.futures.as_completed: an iterator yielding each distinct
 * cfuture of the n once (as Python takes a set, one listed several times
 * is yielded once), in the order they complete (those already done first,
 * in array order).  The deadline is timeout_ns from creation, as in Python.
 * The iterator holds references to the cfutures.  Returns 0 or a negative code.
 * Errors: -EINVAL, -ENOMEM.  One thread at a time per iterator. */
typedef struct fut_cfuture_as_completed fut_cfuture_as_completed_t;
FUT_EXTERN int fut_cfuture_as_completed(fut_cfuture_t *const *fs, size_t n,
                                        uint64_t timeout_ns,
                                        fut_cfuture_as_completed_t **out);
/* Blocks for the next done cfuture and writes it (borrowed: valid while the
 * iterator lives) to *out.  Returns 0, -ETIMEDOUT once the deadline passed
 * with cfutures left, -ENOENT when every cfuture was yielded. */
FUT_EXTERN int fut_cfuture_as_completed_next(fut_cfuture_as_completed_t *it,
                                             fut_cfuture_t **out);
/* Frees the iterator and its references.  NULL is a no-op. */
FUT_EXTERN void fut_cfuture_as_completed_free(fut_cfuture_as_completed_t *it);

#ifdef __cplusplus
}
#endif
#endif
