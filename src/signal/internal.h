/* libfuture — the signal layer's private interface: signal handlers on the
 * loop (asyncio's add_signal_handler).  Includes the network layer's
 * header (and so every layer below).  Never installed. */
#ifndef FUT_SIGNAL_INTERNAL_H
#define FUT_SIGNAL_INTERNAL_H

#include "net/internal.h"

#endif
