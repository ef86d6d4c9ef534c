/* libfuture — error codes.
 *
 * Every fallible libfuture function returns an int: 0 on success or a
 * negative error code.  Where a POSIX errno fits, the code is its negation
 * (-EINVAL, -ENOMEM, -ECANCELED, -ETIMEDOUT, ...).  Where none fits, the
 * code comes from the reserved range below, which never overlaps errno
 * values.  A negative return means nothing happened: no object was created
 * and no callback passed to that call will ever run.
 *
 * Out parameters, one rule for every function that has them: when the
 * call fails (returns a negative code), whatever it would have written
 * through an out parameter is cleared, as long as that out pointer is not
 * NULL itself: a pointer (an object, a handle, a borrowed result) is NULL,
 * a number 0, a flag false, and each slot of an out array (map, wait_many)
 * NULL or false.  So after a failed constructor, `fut_unref(*out)` and
 * friends are always safe, and a failed call never leaves a stale pointer.
 * Outcomes are not failures of the call: fut_exception /
 * fut_cfuture_exception return the exception's code and give its message,
 * and fut_run returns main's code and gives main's task once main ran (a
 * failure before that gives NULL).
 *
 * Thread-safety: every function in this header may be called from any
 * thread.
 */
#ifndef FUTURE_ERRORS_H
#define FUTURE_ERRORS_H

#include "future/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X-macro table of libfuture's own codes: name, value, message. */
#define FUT_ERRNO_MAP(XX)                                                      \
  XX(INVALID_STATE, -10001, "invalid state for this operation")                \
  XX(NOT_IN_TASK, -10002, "await called outside of a task")                    \
  XX(BROKEN_POOL, -10003, "executor pool is broken")                           \
  XX(WRONG_THREAD, -10004, "loop called from a thread that does not own it")   \
  XX(FORKED, -10005, "loop used in a forked child before fut_loop_fork()")     \
  XX(CLOSED, -10006, "loop or executor is closed")                             \
  XX(RUNNING, -10007, "loop is already running")                               \
  XX(STOPPED, -10008, "loop stopped before the future completed")              \
  XX(SHUTDOWN, -10009, "executor has been shut down")                          \
  XX(WORKER_DIED, -10010, "worker process died while running the job")         \
  XX(OTHER_LOOP, -10011, "object belongs to another loop")                     \
  XX(TOO_BIG, -10012, "message exceeds the size limit")                        \
  XX(NOT_SENDABLE, -10013, "function cannot be sent to a worker process")      \
  XX(JOB_FAILED, -10014, "job reported a failure")                             \
  XX(NOT_SETTABLE, -10015, "only a task itself sets its outcome")              \
  XX(INCOMPLETE_READ, -10016, "end of stream before the bytes asked for")      \
  XX(LIMIT_OVERRUN, -10017, "no separator found within the stream's limit")    \
  XX(RESOLVE, -10018, "name resolution failed")                                \
  XX(BROKEN_BARRIER, -10019, "barrier is broken, reset or aborted")            \
  XX(QUEUE_FULL, -10022, "queue is full")                                      \
  XX(QUEUE_EMPTY, -10023, "queue is empty")                                    \
  XX(QUEUE_SHUTDOWN, -10024, "queue is shut down")                             \
  XX(GROUP, -10025, "unhandled errors in a task group (see its error group)")  \
  XX(GROUP_SHUTDOWN, -10026, "task group is shutting down or finished")

enum fut_errno {
#define FUT__ERR_ENUM(name, value, msg) FUT_E_##name = (value),
  FUT_ERRNO_MAP(FUT__ERR_ENUM)
#undef FUT__ERR_ENUM
      FUT__E_MIN = -10999 /* codes of this library stay above this */
};

/* A human readable message for any code returned by libfuture: negative
 * errno values give strerror()'s text, reserved codes their own text, 0
 * gives "success".  Never returns NULL; the string is static. */
FUT_EXTERN const char *fut_strerror(int err);

/* The symbolic name of a code: "ECANCELED", "FUT_E_INVALID_STATE",
 * "0" for success, "unknown" for anything else.  Static string. */
FUT_EXTERN const char *fut_err_name(int err);

/* Details of the last error a libfuture call returned in this thread, such
 * as "fut_loop_add_reader: fd 7 cannot be watched by epoll (regular file?)".
 * Empty string when no detail was recorded.  Thread-local; the pointer is
 * valid until the next libfuture call in this thread. */
FUT_EXTERN const char *fut_last_error(void);

#ifdef __cplusplus
}
#endif
#endif
