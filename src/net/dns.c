/* Name resolution.  Placeholder: numeric hosts only, until the DNS pool
 * lands. */
#include "net/internal.h"

#include <stdio.h>
#include <string.h>

int fut__resolve(const char *host, int port, int family, int socktype,
                 int flags, struct addrinfo **res) {
  *res = NULL;
  char serv[16];
  snprintf(serv, sizeof serv, "%d", port);
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = family;
  hints.ai_socktype = socktype;
  hints.ai_flags = flags | AI_NUMERICSERV;
  int rc = getaddrinfo(host, serv, &hints, res);
  if (rc)
    return fut__error(FUT_E_RESOLVE, "cannot resolve '%s': %s",
                      host ? host : "(null)", gai_strerror(rc));
  return 0;
}
