/* Opening connections (asyncio's create_connection and
 * create_unix_connection): resolve, then try the addresses.  By default
 * one after the other (asyncio's); with a happy-eyeballs delay (RFC 8305)
 * the next address starts when the delay passes without waiting for the
 * previous attempt to fail, and the first to connect wins.  Every socket
 * that loses is closed. */
#include "net/internal.h"

#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

void fut_connect_opts_init(fut_connect_opts_t *o) {
  if (!o)
    return;
  memset(o, 0, sizeof *o);
  o->family = AF_UNSPEC;
}

/* ---- one attempt -----------------------------------------------------------
 */

/* Starts a non-blocking connect.  Returns the fd with *done set when it
 * connected at once, or a negative code. */
static int start_connect(const struct sockaddr *sa, socklen_t len,
                         const fut_connect_opts_t *o, bool *done) {
  *done = false;
  int fd = fut__socket(sa->sa_family, SOCK_STREAM, 0);
  if (fd < 0)
    return fd;
  if (o && o->local_host) {
    struct sockaddr_storage ls;
    socklen_t ll;
    int err = fut__addr_numeric(o->local_host, o->local_port, sa->sa_family,
                                &ls, &ll);
    if (err == 0 && bind(fd, (struct sockaddr *)&ls, ll) < 0)
      err = fut__error(-errno, "cannot bind to %s port %d: %s", o->local_host,
                       o->local_port, fut_strerror(-errno));
    else if (err == 1)
      err = fut__error(-EINVAL,
                       "local_host '%s' is not a numeric address "
                       "of the family",
                       o->local_host);
    if (err) {
      close(fd);
      return err;
    }
  }
  int rc;
  do
    rc = connect(fd, sa, len);
  while (rc < 0 && errno == EINTR);
  if (rc == 0) {
    *done = true;
    return fd;
  }
  if (errno == EINPROGRESS || errno == EAGAIN)
    return fd;
  int e = errno;
  close(fd);
  return fut__error(-e, "connect: %s", fut_strerror(-e));
}

/* The outcome of a connect in progress: 0, 1 still going, or -errno. */
static int poll_connect(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  if (poll(&p, 1, 0) <= 0)
    return 1;
  int soerr = 0;
  socklen_t l = sizeof soerr;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &l) < 0)
    return -errno;
  return soerr ? -soerr : 0;
}

/* ---- trying the addresses ---------------------------------------------------
 */

#define MAX_TRIES 16

static void wake(void *arg) {
  fut_t *f = arg;
  if (fut_state(f) == FUT_PENDING)
    fut_set_result(f, NULL, NULL);
}

/* Connects to one of n addresses.  Returns the connected fd or the last
 * error. */
static int connect_any(fut_loop_t *loop, struct sockaddr_storage *addrs,
                       socklen_t *lens, size_t n, const fut_connect_opts_t *o) {
  uint64_t delay = o ? o->happy_eyeballs_delay_ns : 0;
  int fds[MAX_TRIES];
  size_t next = 0, live = 0;
  int last_err = -ECONNREFUSED, winner = -1;
  for (size_t i = 0; i < MAX_TRIES; i++)
    fds[i] = -1;
  fut_handle_t *timer = NULL;
  while (winner < 0) {
    /* Start the next address when nothing runs, or the delay passed. */
    bool start = next < n && (live == 0 || (delay && !timer));
    if (start) {
      bool done;
      int fd =
          start_connect((struct sockaddr *)&addrs[next], lens[next], o, &done);
      next++;
      if (fd < 0) {
        last_err = fd;
        continue;
      }
      if (done) {
        winner = fd;
        break;
      }
      fds[next - 1] = fd;
      live++;
    }
    if (live == 0) {
      if (next >= n)
        break;
      continue;
    }
    /* Wait for any attempt to finish, or the delay. */
    fut_t *f;
    int err = fut_new(loop, &f);
    if (err) {
      last_err = err;
      break;
    }
    for (size_t i = 0; i < next; i++)
      if (fds[i] >= 0)
        (void)fut_loop_add_writer(loop, fds[i], wake, f);
    if (delay && next < n && !timer)
      (void)fut__call_later_nocapture(loop, delay, wake, f, &timer);
    err = fut_await(f, NULL);
    for (size_t i = 0; i < next; i++)
      if (fds[i] >= 0)
        fut_loop_remove_writer(loop, fds[i]);
    bool timer_fired = timer && fut_handle_cancelled(timer) == false &&
                       fut_loop_time(loop) >= fut_handle_when(timer);
    if (timer && !timer_fired) {
      fut_handle_cancel(timer);
      fut_handle_unref(timer);
      timer = NULL;
    }
    fut_unref(f);
    if (err) {
      last_err = err; /* cancelled */
      break;
    }
    for (size_t i = 0; i < next && winner < 0; i++) {
      if (fds[i] < 0)
        continue;
      int rc = poll_connect(fds[i]);
      if (rc == 1)
        continue;
      if (rc == 0) {
        winner = fds[i];
      } else {
        last_err = fut__error(rc, "connect: %s", fut_strerror(rc));
        close(fds[i]);
      }
      fds[i] = -1;
      live--;
    }
    if (timer_fired) {
      /* The delay passed: the loop starts the next address now. */
      fut_handle_unref(timer);
      timer = NULL;
    }
  }
  if (timer) {
    fut_handle_cancel(timer);
    fut_handle_unref(timer);
  }
  for (size_t i = 0; i < MAX_TRIES; i++)
    if (fds[i] >= 0 && fds[i] != winner)
      close(fds[i]);
  return winner >= 0 ? winner : last_err;
}

/* RFC 8305's interleaving: alternate families, first family first. */
static void interleave(struct sockaddr_storage *a, socklen_t *l, size_t n) {
  struct sockaddr_storage ta[MAX_TRIES];
  socklen_t tl[MAX_TRIES];
  bool used[MAX_TRIES] = {false};
  size_t k = 0;
  int fam = n ? a[0].ss_family : 0;
  while (k < n) {
    size_t pick = n;
    for (size_t i = 0; i < n; i++)
      if (!used[i] && a[i].ss_family == fam) {
        pick = i;
        break;
      }
    if (pick == n)
      for (size_t i = 0; i < n; i++)
        if (!used[i]) {
          pick = i;
          break;
        }
    used[pick] = true;
    ta[k] = a[pick];
    tl[k++] = l[pick];
    fam = a[pick].ss_family == AF_INET ? AF_INET6 : AF_INET;
  }
  memcpy(a, ta, n * sizeof *a);
  memcpy(l, tl, n * sizeof *l);
}

static int connected(fut_loop_t *loop, int fd, const fut_protocol_t *proto,
                     void *arg, fut_transport_t **out) {
  if (fd < 0)
    return fd;
  fut_transport_t *t;
  int err = fut__transport_new(loop, fd, proto, arg, NULL, &t);
  if (err)
    return err;
  /* connection_made is queued: let it run before the caller goes on, as
   * asyncio's create_connection returns after it. */
  (void)fut_yield();
  *out = t;
  return 0;
}

int fut_create_connection(const fut_protocol_t *proto, void *arg,
                          const char *host, int port,
                          const fut_connect_opts_t *opts,
                          fut_transport_t **out) {
  if (out)
    *out = NULL;
  struct fut__task *task = fut__task_current("fut_create_connection");
  if (!task)
    return FUT_E_NOT_IN_TASK;
  if (!proto || !out || !host || !*host)
    return fut__error(-EINVAL, "fut_create_connection: %s",
                      !proto ? "NULL protocol"
                      : !out ? "NULL out"
                             : "no host");
  fut_loop_t *loop = task->x.fut.loop;
  int family = opts ? opts->family : AF_UNSPEC;
  struct sockaddr_storage addrs[MAX_TRIES];
  socklen_t lens[MAX_TRIES];
  size_t n = 0;
  int err = fut__addr_numeric(host, port, family, &addrs[0], &lens[0]);
  if (err < 0)
    return err;
  if (err == 0) {
    n = 1;
  } else {
    struct addrinfo *res;
    if ((err = fut__resolve(host, port, family, SOCK_STREAM, 0, &res)))
      return err;
    for (struct addrinfo *a = res; a && n < MAX_TRIES; a = a->ai_next) {
      memcpy(&addrs[n], a->ai_addr, a->ai_addrlen);
      lens[n++] = a->ai_addrlen;
    }
    freeaddrinfo(res);
    if (n == 0)
      return fut__error(FUT_E_RESOLVE, "'%s' has no address", host);
  }
  if (opts && (opts->interleave > 0 || opts->happy_eyeballs_delay_ns))
    interleave(addrs, lens, n);
  int fd = connect_any(loop, addrs, lens, n, opts);
  if (fd < 0)
    return fut__error(fd, "cannot connect to %s port %d: %s", host, port,
                      fut_strerror(fd));
  return connected(loop, fd, proto, arg, out);
}

int fut_create_unix_connection(const fut_protocol_t *proto, void *arg,
                               const char *path, fut_transport_t **out) {
  if (out)
    *out = NULL;
  struct fut__task *task = fut__task_current("fut_create_unix_connection");
  if (!task)
    return FUT_E_NOT_IN_TASK;
  if (!proto || !out)
    return fut__error(-EINVAL, "fut_create_unix_connection: %s",
                      !proto ? "NULL protocol" : "NULL out");
  struct sockaddr_storage ss;
  socklen_t len;
  int err = fut__addr_unix(path, &ss, &len);
  if (err)
    return err;
  int fd = connect_any(task->x.fut.loop, &ss, &len, 1, NULL);
  if (fd < 0)
    return fut__error(fd, "cannot connect to %s: %s", path, fut_strerror(fd));
  return connected(task->x.fut.loop, fd, proto, arg, out);
}
