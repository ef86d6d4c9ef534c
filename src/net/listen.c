/* Making servers: the listening sockets of fut_create_server (every
 * address of the host, one port for all when port 0 was asked) and of
 * fut_create_unix_server (a stale socket file replaced, a live one
 * refused). */
#include "net/internal.h"

#include <netinet/in.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int port_of(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET)
    return ntohs(((const struct sockaddr_in *)sa)->sin_port);
  if (sa->sa_family == AF_INET6)
    return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
  return 0;
}

static void set_port(struct sockaddr *sa, int port) {
  if (sa->sa_family == AF_INET)
    ((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
  else if (sa->sa_family == AF_INET6)
    ((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
}

/* One listening socket on sa.  Returns the fd or a negative code. */
static int listen_on(struct sockaddr *sa, socklen_t len,
                     const fut_server_opts_t *o) {
  int fd = fut__socket(sa->sa_family, SOCK_STREAM, 0);
  if (fd < 0)
    return fd;
  int one = 1;
  if (sa->sa_family != AF_UNIX) {
    if (o->reuse_address)
      (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (o->reuse_port &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
      int e = errno;
      close(fd);
      return fut__error(-e, "SO_REUSEPORT: %s", fut_strerror(-e));
    }
    /* asyncio's choice: an IPv6 socket does not take IPv4 too, so that
     * the IPv4 address of the same host can have its own. */
    if (sa->sa_family == AF_INET6)
      (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  if (bind(fd, sa, len) < 0 || listen(fd, o->backlog) < 0) {
    int e = errno;
    close(fd);
    char host[INET6_ADDRSTRLEN + 8] = "";
    if (sa->sa_family == AF_UNIX)
      snprintf(host, sizeof host, "%.40s",
               ((struct sockaddr_un *)sa)->sun_path);
    else
      (void)getnameinfo(sa, len, host, sizeof host, NULL, 0, NI_NUMERICHOST);
    return fut__error(-e, "cannot listen on %s port %d: %s", host, port_of(sa),
                      fut_strerror(-e));
  }
  return fd;
}

static int check_args(fut_loop_t **loop, const fut_protocol_t *proto,
                      const fut_server_opts_t *o, fut_server_t **out,
                      const char *what) {
  if (out)
    *out = NULL;
  if (!*loop) {
    struct fut__task *t = fut__task_running();
    if (t)
      *loop = t->x.fut.loop;
  }
  if (!*loop || !proto || !out)
    return fut__error(-EINVAL, "%s: %s", what,
                      !*loop   ? "NULL loop outside a task"
                      : !proto ? "NULL protocol"
                               : "NULL out");
  if (o->backlog <= 0)
    return fut__error(-EINVAL, "%s: backlog %d (must be positive)", what,
                      o->backlog);
  return fut__check_usable(*loop);
}

static int make_server(fut_loop_t *loop, const fut_protocol_t *proto,
                       fut_protocol_factory_fn factory, void *factory_arg,
                       const fut_server_opts_t *o, int *fds, size_t nfds,
                       fut_server_t **out) {
  struct fut__net_state *st = fut__net_state(loop);
  fut_server_t *s = st ? fut__calloc(1, sizeof *s) : NULL;
  struct fut__listener *ls = s ? fut__calloc(nfds, sizeof *ls) : NULL;
  if (!ls) {
    fut__free(s);
    for (size_t i = 0; i < nfds; i++)
      close(fds[i]);
    return fut__error(-ENOMEM, "out of memory for a server");
  }
  s->loop = loop;
  s->refs = 1;
  s->proto = proto;
  s->factory = factory;
  s->factory_arg = factory_arg;
  s->ls = ls;
  s->nls = nfds;
  for (size_t i = 0; i < nfds; i++) {
    ls[i].s = s;
    ls[i].fd = fds[i];
  }
  s->backlog = o->backlog;
  s->retry_delay_ns = o->accept_retry_delay_ns;
  fut__q_init(&s->conns);
  fut__q_insert_tail(&st->servers, &s->node);
  if (o->start_serving)
    fut_server_start_serving(s);
  *out = s;
  return 0;
}

#define MAX_LISTEN 16

int fut_create_server(fut_loop_t *loop, const fut_protocol_t *proto,
                      fut_protocol_factory_fn factory, void *factory_arg,
                      const char *host, int port, const fut_server_opts_t *opts,
                      fut_server_t **out) {
  fut_server_opts_t o;
  if (opts)
    o = *opts;
  else
    fut_server_opts_init(&o);
  int err = check_args(&loop, proto, &o, out, "fut_create_server");
  if (err)
    return err;
  struct sockaddr_storage addrs[MAX_LISTEN];
  socklen_t lens[MAX_LISTEN];
  size_t n = 0;
  if (!host || !*host) {
    /* All interfaces: both families, as asyncio with host None. */
    int fams[2] = {AF_INET, AF_INET6};
    for (int i = 0; i < 2; i++)
      if (o.family == AF_UNSPEC || o.family == fams[i]) {
        if ((err = fut__addr_numeric(NULL, port, fams[i], &addrs[n],
                                     &lens[n])) < 0)
          return err;
        n++;
      }
  } else {
    err = fut__addr_numeric(host, port, o.family, &addrs[0], &lens[0]);
    if (err < 0)
      return err;
    if (err == 0) {
      n = 1;
    } else {
      if (!fut__task_running() || fut__task_running()->x.fut.loop != loop)
        return fut__error(FUT_E_NOT_IN_TASK,
                          "fut_create_server: host '%s' needs a lookup, "
                          "which only a task of the loop can wait for "
                          "(or give a numeric address)",
                          host);
      struct addrinfo *res;
      if ((err = fut__resolve(host, port, o.family, SOCK_STREAM, AI_PASSIVE,
                              &res)))
        return err;
      for (struct addrinfo *a = res; a && n < MAX_LISTEN; a = a->ai_next) {
        bool dup = false;
        for (size_t i = 0; i < n; i++)
          dup |= lens[i] == a->ai_addrlen &&
                 !memcmp(&addrs[i], a->ai_addr, a->ai_addrlen);
        if (dup)
          continue;
        memcpy(&addrs[n], a->ai_addr, a->ai_addrlen);
        lens[n++] = a->ai_addrlen;
      }
      freeaddrinfo(res);
    }
  }
  int fds[MAX_LISTEN];
  size_t nfds = 0;
  int first_err = 0;
  for (size_t i = 0; i < n; i++) {
    struct sockaddr *sa = (struct sockaddr *)&addrs[i];
    if (port == 0 && nfds > 0) {
      /* One port for every address (asyncio gives each its own). */
      struct sockaddr_storage b;
      socklen_t bl = sizeof b;
      if (getsockname(fds[0], (struct sockaddr *)&b, &bl) == 0)
        set_port(sa, port_of((struct sockaddr *)&b));
    }
    int fd = listen_on(sa, lens[i], &o);
    if (fd == -EAFNOSUPPORT && (!host || !*host) && n > 1)
      continue; /* a host without IPv6: the wildcard of the other family */
    if (fd < 0) {
      first_err = fd;
      break;
    }
    fds[nfds++] = fd;
  }
  if (first_err || nfds == 0) {
    for (size_t i = 0; i < nfds; i++)
      close(fds[i]);
    return first_err
               ? first_err
               : fut__error(-EADDRNOTAVAIL, "fut_create_server: no address to "
                                            "listen on");
  }
  return make_server(loop, proto, factory, factory_arg, &o, fds, nfds, out);
}

/* A socket file at path: is a server still behind it?  Returns 0 when the
 * path is free or stale (removed), -EADDRINUSE when live. */
static int clear_stale(const char *path, const struct sockaddr_storage *ss,
                       socklen_t len) {
  struct stat sb;
  if (stat(path, &sb) < 0 || !S_ISSOCK(sb.st_mode))
    return 0; /* absent, or not a socket: bind reports it */
  int fd = fut__socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0)
    return fd;
  int rc = connect(fd, (const struct sockaddr *)ss, len);
  int e = errno;
  close(fd);
  if (rc == 0 || e == EAGAIN || e == EINPROGRESS)
    return fut__error(-EADDRINUSE, "a server is listening on %s", path);
  if (e == ECONNREFUSED)
    unlink(path);
  return 0;
}

int fut_create_unix_server(fut_loop_t *loop, const fut_protocol_t *proto,
                           fut_protocol_factory_fn factory, void *factory_arg,
                           const char *path, const fut_server_opts_t *opts,
                           fut_server_t **out) {
  fut_server_opts_t o;
  if (opts)
    o = *opts;
  else
    fut_server_opts_init(&o);
  int err = check_args(&loop, proto, &o, out, "fut_create_unix_server");
  if (err)
    return err;
  struct sockaddr_storage ss;
  socklen_t len;
  if ((err = fut__addr_unix(path, &ss, &len)))
    return err;
  if (o.unix_cleanup && (err = clear_stale(path, &ss, len)))
    return err;
  char *copy = o.unix_cleanup ? fut__strdup(path) : NULL;
  if (o.unix_cleanup && !copy)
    return fut__error(-ENOMEM, "out of memory for a server");
  int fd = listen_on((struct sockaddr *)&ss, len, &o);
  if (fd < 0) {
    fut__free(copy);
    return fd;
  }
  if ((err = make_server(loop, proto, factory, factory_arg, &o, &fd, 1, out))) {
    if (copy)
      unlink(copy);
    fut__free(copy);
    return err;
  }
  (*out)->unix_path = copy;
  (*out)->is_unix = true;
  return 0;
}
