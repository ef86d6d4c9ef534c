/* libfuture — the process layer's private interface: the child watcher
 * (pidfd) and subprocesses (asyncio's create_subprocess_exec / _shell).
 * Includes the signal layer's header (and so every layer below).  Never
 * installed. */
#ifndef FUT_PROCESS_INTERNAL_H
#define FUT_PROCESS_INTERNAL_H

#include "signal/internal.h"

#endif
