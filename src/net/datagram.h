/* libfuture — datagram.c's constructor over an fd, for the library and its
 * tests (which cannot include net/internal.h: it needs the library's build
 * definitions).  Never installed; not exported. */
#ifndef FUT_NET_DATAGRAM_H
#define FUT_NET_DATAGRAM_H

#include <stdbool.h>

#include "future/transport.h"

/* Makes a datagram transport over fd (a datagram socket of any family,
 * taken: closed on failure; connected says connect(2) was done, so that
 * sendto takes a NULL address) and schedules connection_made.
 * fut_create_datagram_endpoint's last step, and the tests' way to wrap a
 * Unix socketpair.  Returns 0, or FUT_E_CLOSED, -ENOTSOCK, -ENOMEM, the
 * add_reader error; *out is a new reference when out is not NULL. */
int fut__dgram_new(fut_loop_t *loop, int fd,
                   const fut_datagram_protocol_t *proto, void *arg,
                   bool connected, fut_transport_t **out);

#endif
