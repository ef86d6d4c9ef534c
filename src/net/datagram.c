/* Datagram transports.  Placeholder until the datagram endpoint lands. */
#include "net/internal.h"

void fut__dgram_clear(fut_transport_t *t) {
  (void)t;
}
