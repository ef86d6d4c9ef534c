/* libfuture — futures (asyncio.Future).
 *
 * A future is a refcounted object bound to one loop, in one of three
 * states: pending, finished (with a result or an exception) or cancelled.
 * Callback code resolves it; tasks await it.  Completing a future schedules
 * its done callbacks on the loop, in registration order; they never run
 * inline.
 *
 * Ownership: fut_new writes a reference the caller owns; release it with
 * fut_unref.  A future owns its result and frees it with the destructor
 * given to fut_set_result when its last reference goes.  The loop holds a
 * reference while done callbacks are scheduled, so dropping yours early is
 * safe.
 *
 * Thread-safety: a future belongs to its loop's thread.  To resolve one from
 * another thread, go through fut_loop_call_soon_threadsafe (or an executor,
 * which does so).  fut_ref / fut_unref are not atomic either.
 *
 * Errors: FUT_E_INVALID_STATE when the state forbids the call (setting a
 * done future, reading the result of a pending one), FUT_E_NOT_SETTABLE
 * when a setter is given a task (a task sets its own outcome; cancel it
 * instead), -ECANCELED when the future was cancelled, -EINVAL for bad
 * arguments, FUT_E_WRONG_THREAD in debug mode, -ENOMEM.
 */
#ifndef FUTURE_FUTURE_H
#define FUTURE_FUTURE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "future/loop.h"
#include "future/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fut_state {
  FUT_PENDING = 0,
  FUT_FINISHED = 1,
  FUT_CANCELLED = 2
} fut_state_t;

/* Called on the loop with the done future (borrowed) and the arg given at
 * registration. */
typedef void (*fut_done_cb)(fut_t *f, void *arg);

/* Destructor of a pointer result. */
typedef void (*fut_free_fn)(void *ptr);

/* Creates a pending future bound to loop.  Returns 0 or a negative code.
 * Errors: -EINVAL, FUT_E_CLOSED, FUT_E_WRONG_THREAD, -ENOMEM. */
FUT_EXTERN int fut_new(fut_loop_t *loop, fut_t **out);

/* Takes a reference to f and returns f. */
FUT_EXTERN fut_t *fut_ref(fut_t *f);
/* Drops a reference; the last one frees the future and its result.  A
 * failed future whose exception was never retrieved (fut_result,
 * fut_exception) is reported through the loop's exception handler then.
 * NULL is a no-op. */
FUT_EXTERN void fut_unref(fut_t *f);

/* State queries; NULL reads as a pending future of no loop. */
FUT_EXTERN fut_state_t fut_state(const fut_t *f);
/* True when finished or cancelled. */
FUT_EXTERN bool fut_done(const fut_t *f);
FUT_EXTERN bool fut_cancelled(const fut_t *f);
FUT_EXTERN fut_loop_t *fut_get_loop(const fut_t *f);

/* ---- resolving --------------------------------------------------------- */

/* Finishes f with ptr as its result; f owns ptr and calls dtor(ptr) when
 * freed (dtor may be NULL).  On error f does not take ownership.  Returns 0 or
 * a negative code.  Errors: FUT_E_INVALID_STATE (already done; cancelled
 * included), FUT_E_NOT_SETTABLE (f is a task: only the task sets its outcome).
 */
FUT_EXTERN int fut_set_result(fut_t *f, void *ptr, fut_free_fn dtor);
/* Finishes f with a copy of len bytes at data (data may be NULL if len 0).
 * Errors: as fut_set_result, -ENOMEM. */
FUT_EXTERN int fut_set_result_bytes(fut_t *f, const void *data, size_t len);
/* Finishes f with a malloc'd buffer it takes over (freed with free()). */
FUT_EXTERN int fut_set_result_bytes_owned(fut_t *f, void *data, size_t len);
/* Finishes f with an integer result. */
FUT_EXTERN int fut_set_result_i64(fut_t *f, int64_t value);

/* Finishes f with an exception: err must be a negative code (-EINVAL
 * otherwise); fmt (may be NULL) formats a message kept with it.  err
 * -ECANCELED is accepted and means failure with that code, not
 * cancellation; use fut_cancel to cancel.  Returns 0 or a negative code, as
 * fut_set_result. */
FUT_EXTERN int fut_set_exception(fut_t *f, int err, const char *fmt, ...)
    FUT_PRINTF(3, 4);
FUT_EXTERN int fut_set_exceptionv(fut_t *f, int err, const char *fmt,
                                  va_list ap);

/* Cancels a pending future and schedules its callbacks; msg (may be NULL)
 * is copied.  Returns true if f was pending, false if already done.  As in
 * asyncio, cancelling a done future marks its exception retrieved: a
 * failed future that was cancelled in vain is not reported as "exception
 * was never retrieved". */
FUT_EXTERN bool fut_cancel(fut_t *f, const char *msg);

/* Copies the outcome of src into dst (result, exception or cancellation).
 * Pointer results are shared by reference: dst then holds a reference to
 * src.  Returns 0 or a negative code.  Errors: FUT_E_INVALID_STATE (src pending
 * or dst done), FUT_E_NOT_SETTABLE (dst is a task). */
FUT_EXTERN int fut_copy_state(fut_t *dst, fut_t *src);

/* ---- reading ------------------------------------------------------------ */

/* Returns 0 and writes the pointer result (borrowed, owned by f; NULL for a
 * byte or integer result other than its data pointer) into *out (out may be
 * NULL); f's error code if it failed; -ECANCELED if cancelled;
 * FUT_E_INVALID_STATE if pending.  Marks the exception retrieved. */
FUT_EXTERN int fut_result(fut_t *f, void **out);
/* Like fut_result for byte results: borrowed data and length. */
FUT_EXTERN int fut_result_bytes(fut_t *f, const void **data, size_t *len);
/* Like fut_result for integer results. */
FUT_EXTERN int fut_result_i64(fut_t *f, int64_t *out);

/* Returns the exception: 0 if f finished with a result, its code if it failed,
 * -ECANCELED if cancelled, FUT_E_INVALID_STATE if pending.  *msg (msg may be
 * NULL) receives the message (borrowed, NULL if none): the exception's or
 * the cancel message.  Marks the exception retrieved. */
FUT_EXTERN int fut_exception(fut_t *f, const char **msg);

/* ---- callbacks ---------------------------------------------------------- */

/* Registers cb(f, arg) to run on the loop when f is done; on a done future it
 * is scheduled now (never run inline).  The same cb may be added several
 * times.  Returns 0 or a negative code.  Errors: -EINVAL, FUT_E_WRONG_THREAD,
 * -ENOMEM. */
FUT_EXTERN int fut_add_done_callback(fut_t *f, fut_done_cb cb, void *arg);
/* Removes every registration of (cb, arg) not yet scheduled; returns how
 * many it removed (0 once f is done, as in asyncio). */
FUT_EXTERN int fut_remove_done_callback(fut_t *f, fut_done_cb cb, void *arg);

#ifdef __cplusplus
}
#endif
#endif
