/* libfuture — asyncio's core for C on Linux.  Include this one header.
 *
 *   future/loop.h          the event loop: callbacks, timers, fd watchers
 *   future/future.h        futures: set_result, cancel, done callbacks
 *   future/combine.h       gather, wait(_for), shield, as_completed, then
 *   future/task.h          tasks (fut_await, fut_run), timeout blocks
 *   future/cfuture.h       concurrent futures: wait, wait_many, as_completed
 *   future/executor.h      executors, jobs, run_in_executor, wrap_future
 *   future/thread_pool.h   the thread pool
 *   future/process_pool.h  the process pool
 *   future/errors.h        error codes, fut_strerror
 *   future/version.h       version and export macros
 */
#ifndef FUTURE_H
#define FUTURE_H

/* In dependency order, not alphabetical. */
/* clang-format off */
#include "future/version.h"
#include "future/errors.h"
#include "future/loop.h"
#include "future/future.h"
#include "future/combine.h"
#include "future/task.h"
#include "future/queue.h"
#include "future/cfuture.h"
#include "future/executor.h"
#include "future/thread_pool.h"
#include "future/process_pool.h"
#include "future/taskgroup.h"
#include "future/threadsafe.h"
#include "future/ctxvar.h"
#include "future/sock.h"
#include "future/dns.h"
#include "future/transport.h"
#include "future/stream.h"
#include "future/signal.h"
#include "future/sync.h"
#include "future/process.h"
/* clang-format on */

#endif
