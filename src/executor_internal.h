/* libfuture — private helpers shared by the executor files (cfuture.c,
 * executor.c, threadpool.c) and their tests.  Never installed. */
#ifndef FUT_EXECUTOR_INTERNAL_H
#define FUT_EXECUTOR_INTERNAL_H

#include "internal.h"

/* Finishes the loop future f with the result of the finished cfuture cf
 * (which must not have failed): a pointer result is borrowed (f's owner
 * must keep cf alive as long as f), bytes are copied, integers copied.
 * Returns fut_set_result*'s error. */
int fut__cfuture_copy_result(fut_cfuture_t *cf, fut_t *f);

/* Test hook: how many completion drains ran on loop and how many
 * completions they delivered (0 before the first executor call). */
void fut__executor_counters(fut_loop_t *loop, uint64_t *drains,
                            uint64_t *delivered);

/* Test hook: threads a thread pool currently has (started, not exited). */
size_t fut__thread_pool_nthreads(fut_executor_t *ex);

#endif
