/* Datagram transports (asyncio's _SelectorDatagramTransport) and
 * fut_create_datagram_endpoint.  A persistent read watcher takes each
 * datagram into the loop's receive buffer; a send goes out at once when
 * nothing is queued, and only a datagram the kernel refused with EAGAIN is
 * copied into the queue (t->dq), which a write watcher drains in order.
 * Closing flushes the queue, then connection_lost(0); aborting drops it. */
#include "net/datagram.h"
#include "net/internal.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* What a queued datagram adds to the write buffer size besides its bytes
 * (asyncio's _header_size allowance): an empty datagram counts too,
 * so a non-empty queue never has size 0. */
#define DGRAM_OVERHEAD 8
/* The largest UDP payload: the 16-bit length less the 8-byte UDP header
 * (IPv6; the kernel refuses IPv4 datagrams above 65507 itself). */
#define UDP_MAX 65527
/* Datagrams read per wakeup of the read watcher, at most (the rest wait
 * for the next iteration: other fds get their turn). */
#define READ_BATCH 32
/* Addresses kept per host name resolved. */
#define MAX_ADDRS 16

/* A datagram waiting for the socket to be writable. */
struct fut__dgram {
  struct fut__qnode node; /* in t->dq */
  size_t len;
  socklen_t salen; /* 0: to the connected peer */
  struct sockaddr_storage sa;
  unsigned char data[];
};

static void on_readable(void *arg);
static void on_writable(void *arg);

/* "127.0.0.1:53", "[::1]:53", or the path of a Unix address. */
static const char *fmt_addr(const struct sockaddr *sa, socklen_t len, char *buf,
                            size_t size) {
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
    struct sockaddr_in in;
    memcpy(&in, sa, sizeof in);
    inet_ntop(AF_INET, &in.sin_addr, host, sizeof host);
    port = ntohs(in.sin_port);
    snprintf(buf, size, "%s:%d", host, port);
  } else if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
    struct sockaddr_in6 in6;
    memcpy(&in6, sa, sizeof in6);
    inet_ntop(AF_INET6, &in6.sin6_addr, host, sizeof host);
    port = ntohs(in6.sin6_port);
    snprintf(buf, size, "[%s]:%d", host, port);
  } else {
    snprintf(buf, size, "an address of family %d", (int)sa->sa_family);
  }
  return buf;
}

/* ---- the queue ------------------------------------------------------------
 */

void fut__dgram_clear(fut_transport_t *t) {
  while (!fut__q_empty(&t->dq)) {
    struct fut__dgram *d =
        fut__container_of(fut__q_first(&t->dq), struct fut__dgram, node);
    fut__q_remove(&d->node);
    fut__free(d);
  }
  t->dq_bytes = 0;
}

static void error_received(fut_transport_t *t, int err) {
  if (t->dproto->error_received)
    t->dproto->error_received(t, err, t->arg);
}

static void writer_off(fut_transport_t *t) {
  if (t->writer_on) {
    fut_loop_remove_writer(t->loop, t->fd);
    t->writer_on = false;
  }
}

/* Sends the queue in order until the socket is full.  A datagram the
 * kernel refuses for another reason is dropped and reported through
 * error_received (asyncio's _sendto_ready). */
static void on_writable(void *arg) {
  fut_transport_t *t = arg;
  while (!t->lost && !fut__q_empty(&t->dq)) {
    struct fut__dgram *d =
        fut__container_of(fut__q_first(&t->dq), struct fut__dgram, node);
    ssize_t n = sendto(t->fd, d->data, d->len, MSG_NOSIGNAL,
                       d->salen ? (struct sockaddr *)&d->sa : NULL, d->salen);
    int e = n < 0 ? errno : 0;
    if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR)
      break;
    fut__q_remove(&d->node);
    t->dq_bytes -= d->len + DGRAM_OVERHEAD;
    fut__free(d);
    if (e)
      error_received(t, -e); /* may close, abort or send more */
  }
  if (t->lost)
    return; /* aborted from error_received: the queue is gone */
  fut__transport_flow(t, t->dq_bytes); /* resume_writing may send more */
  if (t->lost || !fut__q_empty(&t->dq))
    return;
  writer_off(t);
  if (t->closing)
    fut__transport_schedule_lost(t, 0);
}

/* Copies a datagram the socket could not take now into the queue and arms
 * the writer.  Returns 0, or -ENOMEM / the add_writer error (then nothing
 * is queued and the transport stays as it was). */
static int enqueue(fut_transport_t *t, const void *data, size_t len,
                   const struct sockaddr *sa, socklen_t salen) {
  if (len > SIZE_MAX - sizeof(struct fut__dgram) - DGRAM_OVERHEAD)
    return fut__error(-ENOMEM, "fut_transport_sendto: %zu bytes", len);
  struct fut__dgram *d = fut__malloc(sizeof *d + len);
  if (!d)
    return fut__error(-ENOMEM, "out of memory queueing a datagram of %zu bytes",
                      len);
  d->len = len;
  d->salen = sa ? salen : 0;
  if (sa)
    memcpy(&d->sa, sa, salen);
  if (len)
    memcpy(d->data, data, len);
  if (!t->writer_on) {
    int err = fut_loop_add_writer(t->loop, t->fd, on_writable, t);
    if (err) {
      fut__free(d);
      return err;
    }
    t->writer_on = true;
  }
  fut__q_insert_tail(&t->dq, &d->node);
  t->dq_bytes += len + DGRAM_OVERHEAD;
  fut__transport_flow(t, t->dq_bytes);
  return 0;
}

/* ---- sending --------------------------------------------------------------
 */

/* Is sa the connected peer of fd?  Compares family, address and port
 * (and the scope of IPv6), not the padding. */
static bool same_peer(int fd, const struct sockaddr *sa, socklen_t salen) {
  struct sockaddr_storage p;
  socklen_t pl = sizeof p;
  if (getpeername(fd, (struct sockaddr *)&p, &pl) < 0 ||
      p.ss_family != sa->sa_family)
    return false;
  if (sa->sa_family == AF_INET) {
    struct sockaddr_in a, b;
    if (salen < sizeof a)
      return false;
    memcpy(&a, sa, sizeof a);
    memcpy(&b, &p, sizeof b);
    return a.sin_port == b.sin_port && a.sin_addr.s_addr == b.sin_addr.s_addr;
  }
  if (sa->sa_family == AF_INET6) {
    struct sockaddr_in6 a, b;
    if (salen < sizeof a)
      return false;
    memcpy(&a, sa, sizeof a);
    memcpy(&b, &p, sizeof b);
    return a.sin6_port == b.sin6_port && a.sin6_scope_id == b.sin6_scope_id &&
           !memcmp(&a.sin6_addr, &b.sin6_addr, sizeof a.sin6_addr);
  }
  return pl == salen && !memcmp(&p, sa, pl);
}

int fut_transport_sendto(fut_transport_t *t, const void *data, size_t len,
                         const struct sockaddr *sa, socklen_t salen) {
  static const char what[] = "fut_transport_sendto";
  if (!t || (!data && len))
    return fut__error(-EINVAL, "%s: %s", what,
                      !t ? "NULL transport" : "NULL data");
  if (t->kind != FUT__T_DGRAM)
    return fut__error(
        -EINVAL, "%s on a stream transport (use fut_transport_write)", what);
  if (sa &&
      (salen < sizeof(sa_family_t) || salen > sizeof(struct sockaddr_storage)))
    return fut__error(-EINVAL, "%s: address length %u", what, (unsigned)salen);
  if (t->closing)
    return fut__error(-EPIPE, "%s: the transport is %s", what,
                      t->lost ? "lost" : "closing");
  if (!t->is_unix && len > UDP_MAX)
    return fut__error(-EMSGSIZE,
                      "%s: a datagram of %zu bytes (UDP takes at most %d)",
                      what, len, UDP_MAX);
  char buf[INET6_ADDRSTRLEN + 16];
  if (t->connected) {
    /* asyncio's ValueError: only the peer's own address may be given. */
    if (sa && !same_peer(t->fd, sa, salen))
      return fut__error(-EINVAL,
                        "%s: %s is not the peer this endpoint is "
                        "connected to (give NULL)",
                        what, fmt_addr(sa, salen, buf, sizeof buf));
    sa = NULL;
    salen = 0;
  } else if (!sa) {
    return fut__error(-EDESTADDRREQ,
                      "%s: no address, and the endpoint is not connected",
                      what);
  }
  if (fut__q_empty(&t->dq)) {
    /* Datagrams go whole or not at all: any count is success. */
    if (sendto(t->fd, data, len, MSG_NOSIGNAL, sa, salen) >= 0)
      return 0;
    int e = errno;
    if (e != EAGAIN && e != EWOULDBLOCK && e != EINTR) {
      if (sa)
        return fut__error(-e, "%s: to %s: %s", what,
                          fmt_addr(sa, salen, buf, sizeof buf),
                          fut_strerror(-e));
      return fut__error(-e, "%s: %s", what, fut_strerror(-e));
    }
  }
  return enqueue(t, data, len, sa, salen);
}

/* ---- receiving ------------------------------------------------------------
 */

static void on_readable(void *arg) {
  fut_transport_t *t = arg;
  char *buf = fut__net_state_peek(t->loop)->rbuf;
  for (int i = 0; i < READ_BATCH && t->reader_on; i++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    /* MSG_TRUNC: the datagram's real length, to tell one cut short. */
    ssize_t n = recvfrom(t->fd, buf, FUT__NET_RBUF, MSG_TRUNC,
                         (struct sockaddr *)&ss, &sl);
    if (n < 0) {
      int e = errno;
      if (e != EAGAIN && e != EWOULDBLOCK && e != EINTR)
        error_received(t, -e); /* ICMP's -ECONNREFUSED, ...: stays open */
      return;
    }
    if ((size_t)n > FUT__NET_RBUF) {
      fut__error(-EMSGSIZE,
                 "a datagram of %zd bytes was cut to the %d-byte buffer "
                 "and dropped",
                 n, FUT__NET_RBUF);
      error_received(t, -EMSGSIZE);
      continue;
    }
    if (t->dproto->datagram_received)
      t->dproto->datagram_received(
          t, buf, (size_t)n, sl ? (struct sockaddr *)&ss : NULL, sl, t->arg);
  }
}

/* ---- making endpoints -----------------------------------------------------
 */

int fut__dgram_new(fut_loop_t *loop, int fd,
                   const fut_datagram_protocol_t *proto, void *arg,
                   bool connected, fut_transport_t **out) {
  if (out)
    *out = NULL;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  int err = fut__check_usable(loop);
  if (!err && getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
    err = fut__error(-ENOTSOCK, "fd %d is not a socket", fd);
  if (!err) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK)))
      err = fut__error(-errno, "fd %d: cannot make it non-blocking", fd);
  }
  fut_transport_t *t = NULL;
  if (!err && !(t = fut__transport_alloc(loop, fd, FUT__T_DGRAM)))
    err = -ENOMEM;
  if (err) {
    close(fd);
    return err;
  }
  t->dproto = proto;
  t->arg = arg;
  t->connected = connected;
  t->is_unix = ss.ss_family == AF_UNIX;
  if ((err = fut__transport_start(t, on_readable)))
    return err;
  if (out)
    *out = fut_transport_ref(t);
  return 0;
}

void fut_datagram_opts_init(fut_datagram_opts_t *o) {
  if (!o)
    return;
  memset(o, 0, sizeof *o);
  o->family = AF_UNSPEC;
}

struct cand {
  struct sockaddr_storage ss;
  socklen_t len;
};

/* The addresses of host:port: the numeric one, or (inside a task of loop)
 * those the resolver gives.  Returns 0 with *n >= 1, or a negative code. */
static int addrs_of(fut_loop_t *loop, const char *host, int port, int family,
                    const char *which, struct cand *c, size_t *n) {
  static const char what[] = "fut_create_datagram_endpoint";
  *n = 0;
  int err = fut__addr_numeric(host, port, family, &c[0].ss, &c[0].len);
  if (err <= 0) {
    *n = err == 0;
    return err;
  }
  if (family != AF_UNSPEC &&
      fut__addr_numeric(host, port, AF_UNSPEC, &c[0].ss, &c[0].len) == 0)
    return fut__error(-EINVAL, "%s: %s address %s is not of the family asked",
                      what, which, host);
  struct fut__task *task = fut__task_running();
  if (!task || task->x.fut.loop != loop)
    return fut__error(FUT_E_NOT_IN_TASK,
                      "%s: %s host '%s' needs a lookup, which only a task "
                      "of the loop can wait for (or give a numeric address)",
                      what, which, host);
  struct addrinfo *res;
  if ((err = fut__resolve(host, port, family, SOCK_DGRAM, 0, &res)))
    return err;
  for (struct addrinfo *a = res; a && *n < MAX_ADDRS; a = a->ai_next) {
    if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) ||
        a->ai_addrlen > sizeof c[*n].ss)
      continue;
    memcpy(&c[*n].ss, a->ai_addr, a->ai_addrlen);
    c[*n].len = a->ai_addrlen;
    ++*n;
  }
  freeaddrinfo(res);
  if (*n == 0)
    return fut__error(FUT_E_RESOLVE, "%s: no IPv4 or IPv6 address for '%s'",
                      what, host);
  return 0;
}

/* The first of c[0, n) of family fam, or NULL. */
static const struct cand *of_family(const struct cand *c, size_t n, int fam) {
  for (size_t i = 0; i < n; i++)
    if (c[i].ss.ss_family == fam)
      return &c[i];
  return NULL;
}

/* A socket of family fam with the options, bound to l and connected to r
 * (each optional).  Returns the fd or a negative code. */
static int open_endpoint(int fam, const struct cand *l, const struct cand *r,
                         const fut_datagram_opts_t *o, bool dual_stack) {
  static const char what[] = "fut_create_datagram_endpoint";
  int fd = fut__socket(fam, SOCK_DGRAM, 0);
  if (fd < 0)
    return fd;
  int one = 1, zero = 0;
  const char *step = NULL;
  const struct cand *at = NULL;
  if (o->reuse_port &&
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
    step = "SO_REUSEPORT";
  else if (o->allow_broadcast &&
           setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) < 0)
    step = "SO_BROADCAST";
  else if (dual_stack &&
           setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) < 0)
    step = "IPV6_V6ONLY";
  else if (l && bind(fd, (const struct sockaddr *)&l->ss, l->len) < 0) {
    step = "bind";
    at = l;
  } else if (r && connect(fd, (const struct sockaddr *)&r->ss, r->len) < 0) {
    step = "connect";
    at = r;
  }
  if (!step)
    return fd;
  int e = errno;
  close(fd);
  char buf[INET6_ADDRSTRLEN + 16];
  if (at)
    return fut__error(
        -e, "%s: %s to %s: %s", what, step,
        fmt_addr((const struct sockaddr *)&at->ss, at->len, buf, sizeof buf),
        fut_strerror(-e));
  return fut__error(-e, "%s: %s: %s", what, step, fut_strerror(-e));
}

int fut_create_datagram_endpoint(
    fut_loop_t *loop, const fut_datagram_protocol_t *proto, void *arg,
    const char *local_host, int local_port, const char *remote_host,
    int remote_port, const fut_datagram_opts_t *opts, fut_transport_t **out) {
  static const char what[] = "fut_create_datagram_endpoint";
  if (out)
    *out = NULL;
  fut_datagram_opts_t o;
  if (opts)
    o = *opts;
  else
    fut_datagram_opts_init(&o);
  if (!loop) {
    struct fut__task *task = fut__task_running();
    if (task)
      loop = task->x.fut.loop;
  }
  if (!loop || !proto || !out)
    return fut__error(-EINVAL, "%s: %s", what,
                      !loop    ? "NULL loop outside a task"
                      : !proto ? "NULL protocol"
                               : "NULL out");
  if (o.family != AF_UNSPEC && o.family != AF_INET && o.family != AF_INET6)
    return fut__error(-EINVAL, "%s: family %d (AF_UNSPEC, AF_INET or AF_INET6)",
                      what, o.family);
  bool has_local = local_host && *local_host;
  bool has_remote = remote_host && *remote_host;
  if (local_port < 0 || local_port > 65535 ||
      (has_remote && (remote_port < 0 || remote_port > 65535)))
    return fut__error(-EINVAL, "%s: port %d is out of range (0 to 65535)", what,
                      local_port < 0 || local_port > 65535 ? local_port
                                                           : remote_port);
  /* asyncio refuses an endpoint with neither address nor family
   * (ValueError): there is nothing to choose the socket's family from. */
  if (!has_local && !has_remote && local_port == 0 && o.family == AF_UNSPEC)
    return fut__error(-EINVAL,
                      "%s: no local address, no remote address and no "
                      "family: give one of them",
                      what);
  int err = fut__check_usable(loop);
  if (err)
    return err;

  struct cand ls[MAX_ADDRS], rs[MAX_ADDRS];
  size_t nl = 0, nr = 0;
  if (has_local && (err = addrs_of(loop, local_host, local_port, o.family,
                                   "local", ls, &nl)))
    return err;
  if (has_remote && (err = addrs_of(loop, remote_host, remote_port, o.family,
                                    "remote", rs, &nr)))
    return err;

  /* The families to try, in the order the addresses came (asyncio pairs
   * the local and remote addresses by family). */
  int fams[2];
  size_t nf = 0;
  if (!has_local && !has_remote) {
    /* The wildcard: IPv6 taking IPv4 too, or IPv4 where there is no IPv6
     * (fut__addr_numeric's wildcard of AF_UNSPEC). */
    if (o.family != AF_INET)
      fams[nf++] = AF_INET6;
    if (o.family != AF_INET6)
      fams[nf++] = AF_INET;
  } else {
    const struct cand *all[2] = {ls, rs};
    size_t cnt[2] = {nl, nr};
    for (int k = 0; k < 2; k++)
      for (size_t i = 0; i < cnt[k]; i++) {
        int fam = all[k][i].ss.ss_family;
        if ((nf > 0 && fams[0] == fam) || (nf > 1 && fams[1] == fam))
          continue;
        if ((has_local && !of_family(ls, nl, fam)) ||
            (has_remote && !of_family(rs, nr, fam)))
          continue;
        fams[nf++] = fam;
      }
    if (nf == 0)
      return fut__error(-EINVAL,
                        "%s: the local address (%s) and the remote one (%s) "
                        "have no family in common",
                        what, local_host, remote_host);
  }

  int first_err = 0;
  char first_msg[256] = "";
  for (size_t i = 0; i < nf; i++) {
    int fam = fams[i];
    const struct cand *l = has_local ? of_family(ls, nl, fam) : NULL;
    const struct cand *r = has_remote ? of_family(rs, nr, fam) : NULL;
    struct cand wild;
    /* No local host: bind the wildcard of a port asked for; with no port
     * leave the socket unbound, as asyncio does (connect or the first
     * sendto picks one). */
    if (!has_local && local_port != 0) {
      if ((err = fut__addr_numeric(NULL, local_port, fam, &wild.ss,
                                   &wild.len)) < 0)
        return err;
      l = &wild;
    }
    bool dual =
        !has_local && !has_remote && fam == AF_INET6 && o.family == AF_UNSPEC;
    int fd = open_endpoint(fam, l, r, &o, dual);
    if (fd >= 0)
      return fut__dgram_new(loop, fd, proto, arg, has_remote, out);
    if (!first_err) {
      first_err = fd;
      snprintf(first_msg, sizeof first_msg, "%s", fut_last_error());
    }
  }
  /* Every family failed: the first failure, as asyncio raises. */
  return fut__error(first_err, "%s", first_msg);
}
