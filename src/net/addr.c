/* Addresses and sockets: numeric hosts parsed without the resolver, Unix
 * paths checked for length, sockets made non-blocking and close-on-exec
 * in the one socket(2) call. */
#include "net/internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

int fut__addr_numeric(const char *host, int port, int family,
                      struct sockaddr_storage *ss, socklen_t *len) {
  if (port < 0 || port > 65535)
    return fut__error(-EINVAL, "port %d is out of range (0 to 65535)", port);
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
  if (!host || !*host) {
    if (family == AF_INET) {
      in4->sin_family = AF_INET;
      in4->sin_port = htons((uint16_t)port);
      in4->sin_addr.s_addr = htonl(INADDR_ANY);
      *len = sizeof *in4;
    } else {
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons((uint16_t)port);
      in6->sin6_addr = in6addr_any;
      *len = sizeof *in6;
    }
    return 0;
  }
  if (family != AF_INET6 && inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons((uint16_t)port);
    *len = sizeof *in4;
    return 0;
  }
  if (family != AF_INET && !strchr(host, '%') &&
      inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    *len = sizeof *in6;
    return 0;
  }
  return 1;
}

int fut__addr_unix(const char *path, struct sockaddr_storage *ss,
                   socklen_t *len) {
  if (!path || !*path)
    return fut__error(-EINVAL, "empty Unix socket path");
  struct sockaddr_un *un = (struct sockaddr_un *)ss;
  size_t n = strlen(path);
  if (n >= sizeof un->sun_path)
    return fut__error(-ENAMETOOLONG,
                      "Unix socket path of %zu bytes (at most %zu)", n,
                      sizeof un->sun_path - 1);
  memset(ss, 0, sizeof *ss);
  un->sun_family = AF_UNIX;
  memcpy(un->sun_path, path, n + 1);
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
  return 0;
}

int fut__socket(int family, int type, int protocol) {
  int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  int e = errno;
  if (fd < 0)
    return fut__error(-e, "socket(%s): %s",
                      family == AF_INET    ? "AF_INET"
                      : family == AF_INET6 ? "AF_INET6"
                      : family == AF_UNIX  ? "AF_UNIX"
                                           : "?",
                      fut_strerror(-e));
  return fd;
}
