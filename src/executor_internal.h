/* libfuture — private helpers shared by the executor files (cfuture.c,
 * executor.c, threadpool.c) and their tests.  Never installed. */
#ifndef FUT_EXECUTOR_INTERNAL_H
#define FUT_EXECUTOR_INTERNAL_H

#include "internal.h"

/* The outcome of a done cfuture without waiting: 0, the error code or
 * -ECANCELED; *msg the exception message (borrowed) or NULL. */
int fut__cfuture_outcome(fut_cfuture_t *cf, const char **msg);

/* Finishes the loop future f with the result of the finished cfuture cf
 * (which must not have failed): a pointer result is borrowed (f's owner
 * must keep cf alive as long as f), bytes are copied, integers copied.
 * Returns fut_set_result*'s error. */
int fut__cfuture_copy_result(fut_cfuture_t *cf, fut_t *f);

/* fut_cfuture_new with `extra` bytes of caller space (16-byte aligned,
 * uninitialised) after the cfuture in the same allocation, written to
 * *extra_out; it lives as long as the cfuture.  Errors: -ENOMEM. */
int fut__cfuture_new_ext(size_t extra, fut_cfuture_t **out, void **extra_out);

/* Test hook: how many completion drains ran on loop and how many
 * completions they delivered (0 before the first executor call). */
void fut__executor_counters(fut_loop_t *loop, uint64_t *drains,
                            uint64_t *delivered);

/* Test hook: threads a thread pool currently has (started, not exited). */
size_t fut__thread_pool_nthreads(fut_executor_t *ex);
/* Test hook: workers of a thread pool waiting for work. */
size_t fut__thread_pool_nidle(fut_executor_t *ex);

#endif
