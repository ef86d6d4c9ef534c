/* Socket awaitables (asyncio's loop.sock_* methods): each call tries its
 * syscall at once and, when the socket is not ready, suspends the running
 * task on an fd watcher (fut__wait_fd) and tries again.
 *
 * Every data call passes MSG_DONTWAIT, so a socket left blocking by
 * mistake cannot block the loop there; accept and connect have no such
 * flag and refuse a blocking socket (-EINVAL) instead.  Sends pass
 * MSG_NOSIGNAL: a peer that went away is -EPIPE, never SIGPIPE.
 *
 * One waiter per direction: a call finds the direction it would wait in
 * already watched on this loop (another task, a transport, add_reader)
 * and returns -EBUSY before its syscall, so it can never take bytes meant
 * for the other waiter. */
#include "net/internal.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

/* ---- shared checks ------------------------------------------------------- */

/* -EBUSY when dir of fd is already watched on the task's loop (the same
 * test and words as fut__wait_fd, made before the syscall). */
static int check_busy(struct fut__task *t, const char *what, int fd,
                      unsigned dir) {
  fut_loop_t *loop = t->x.fut.loop;
  if (fd >= loop->io_cap)
    return 0;
  const struct fut__io *io = &loop->io[fd];
  bool read = dir == FUT__WAIT_READ;
  if (read ? io->reader == NULL : io->writer == NULL)
    return 0;
  return fut__error(-EBUSY,
                    "%s: fd %d already has a %s waiting on this loop (a "
                    "second task, a transport or add_%s)",
                    what, fd, read ? "reader" : "writer",
                    read ? "reader" : "writer");
}

static int bad_fd(const char *what, int fd) {
  return fut__error(-EINVAL, "%s: negative fd %d", what, fd);
}

/* accept, connect and sendfile have no MSG_DONTWAIT: a blocking socket
 * would block the loop. */
static int check_nonblocking(const char *what, int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) {
    int e = errno;
    return fut__error(-e, "%s: fd %d: %s", what, fd, fut_strerror(-e));
  }
  if (!(fl & O_NONBLOCK))
    return fut__error(-EINVAL,
                      "%s: fd %d is blocking: it would block the loop "
                      "(fut_sock_set_nonblocking first)",
                      what, fd);
  return 0;
}

/* The kernel's error e of syscall `call` on fd, as a negative code with a
 * message. */
static int sys_error(const char *what, const char *call, int fd, int e) {
  return fut__error(-e, "%s: %s on fd %d: %s", what, call, fd,
                    fut_strerror(-e));
}

/* A printable address for messages: "127.0.0.1:80", "[::1]:80", a Unix
 * path, or "?". */
static const char *addr_str(const struct sockaddr *sa, socklen_t len, char *buf,
                            size_t cap) {
  char host[INET6_ADDRSTRLEN];
  if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    snprintf(buf, cap, "%s:%u", host, ntohs(in->sin_port));
  } else if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    snprintf(buf, cap, "[%s]:%u", host, ntohs(in6->sin6_port));
  } else if (sa->sa_family == AF_UNIX &&
             len > offsetof(struct sockaddr_un, sun_path)) {
    const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
    size_t n = len - offsetof(struct sockaddr_un, sun_path);
    if (un->sun_path[0] == '\0') /* abstract: "@name" */
      snprintf(buf, cap, "@%.*s", (int)(n > 1 ? n - 1 : 0), un->sun_path + 1);
    else
      snprintf(buf, cap, "%.*s", (int)strnlen(un->sun_path, n), un->sun_path);
  } else {
    snprintf(buf, cap, "?");
  }
  return buf;
}

/* ---- non-waiting --------------------------------------------------------- */

int fut_sock_set_nonblocking(int fd) {
  if (fd < 0)
    return fut__error(-EBADF, "fut_sock_set_nonblocking: negative fd %d", fd);
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK))) {
    int e = errno;
    return sys_error("fut_sock_set_nonblocking", "fcntl", fd, e);
  }
  int fdfl = fcntl(fd, F_GETFD);
  if (fdfl < 0 ||
      (!(fdfl & FD_CLOEXEC) && fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC))) {
    int e = errno;
    return sys_error("fut_sock_set_nonblocking", "fcntl", fd, e);
  }
  return 0;
}

/* ---- receiving ----------------------------------------------------------- */

/* recv(2) into buf, waiting while there is nothing; *got set on success. */
static int recv_loop(struct fut__task *t, const char *what, int fd, void *buf,
                     size_t cap, size_t *got) {
  for (;;) {
    ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT);
    if (n >= 0) {
      *got = (size_t)n;
      return 0;
    }
    int e = errno;
    if (e == EINTR)
      continue;
    if (e != EAGAIN && e != EWOULDBLOCK)
      return sys_error(what, "recv", fd, e);
    int err = fut__wait_fd(t, fd, FUT__WAIT_READ);
    if (err)
      return err;
  }
}

int fut_sock_recv_into(int fd, void *buf, size_t cap, size_t *got) {
  static const char what[] = "fut_sock_recv_into";
  if (got)
    *got = 0;
  struct fut__task *t = fut__task_current(what);
  if (!t)
    return FUT_E_NOT_IN_TASK;
  if (!got)
    return fut__error(-EINVAL, "%s: NULL got", what);
  if (fd < 0)
    return bad_fd(what, fd);
  if (!buf && cap)
    return fut__error(-EINVAL, "%s: NULL buffer of %zu bytes", what, cap);
  if (cap == 0)
    return 0; /* nothing asked: no syscall (a datagram is not consumed) */
  int err = check_busy(t, what, fd, FUT__WAIT_READ);
  return err ? err : recv_loop(t, what, fd, buf, cap, got);
}

int fut_sock_recv(int fd, size_t n, void **data, size_t *len) {
  static const char what[] = "fut_sock_recv";
  if (data)
    *data = NULL;
  if (len)
    *len = 0;
  struct fut__task *t = fut__task_current(what);
  if (!t)
    return FUT_E_NOT_IN_TASK;
  if (!data || !len)
    return fut__error(-EINVAL, "%s: NULL %s", what, !data ? "data" : "len");
  if (fd < 0)
    return bad_fd(what, fd);
  if (n == 0)
    return 0;
  int err = check_busy(t, what, fd, FUT__WAIT_READ);
  if (err)
    return err;
  char *buf = fut__malloc(n);
  if (!buf)
    return fut__error(-ENOMEM, "%s: out of memory for %zu bytes", what, n);
  size_t got = 0;
  err = recv_loop(t, what, fd, buf, n, &got);
  if (err || got == 0) {
    fut__free(buf);
    return err;
  }
  if (got < n / 2) {
    /* Give back most of an oversized buffer (a failed shrink keeps it). */
    char *small = fut__realloc(buf, got);
    if (small)
      buf = small;
  }
  *data = buf;
  *len = got;
  return 0;
}

int fut_sock_recvfrom(int fd, void *buf, size_t cap, size_t *got,
                      struct sockaddr *sa, socklen_t *salen) {
  static const char what[] = "fut_sock_recvfrom";
  socklen_t sacap = salen ? *salen : 0;
  if (got)
    *got = 0;
  if (salen)
    *salen = 0;
  struct fut__task *t = fut__task_current(what);
  if (!t)
    return FUT_E_NOT_IN_TASK;
  if (!got)
    return fut__error(-EINVAL, "%s: NULL got", what);
  if (fd < 0)
    return bad_fd(what, fd);
  if (!buf && cap)
    return fut__error(-EINVAL, "%s: NULL buffer of %zu bytes", what, cap);
  if (sa && !salen)
    return fut__error(-EINVAL, "%s: an address buffer without its length",
                      what);
  int err = check_busy(t, what, fd, FUT__WAIT_READ);
  if (err)
    return err;
  for (;;) {
    socklen_t l = sacap;
    ssize_t n =
        recvfrom(fd, buf, cap, MSG_DONTWAIT, sa ? sa : NULL, sa ? &l : NULL);
    if (n >= 0) {
      *got = (size_t)n;
      if (salen)
        *salen = sa ? l : 0;
      return 0;
    }
    int e = errno;
    if (e == EINTR)
      continue;
    if (e != EAGAIN && e != EWOULDBLOCK)
      return sys_error(what, "recvfrom", fd, e);
    if ((err = fut__wait_fd(t, fd, FUT__WAIT_READ)))
      return err;
  }
}

/* ---- sending ------------------------------------------------------------- */

int fut_sock_sendall_ex(int fd, const void *data, size_t len, size_t *sent) {
  static const char what[] = "fut_sock_sendall";
  if (sent)
    *sent = 0;
  struct fut__task *t = fut__task_current(what);
  if (!t)
    return FUT_E_NOT_IN_TASK;
  if (fd < 0)
    return bad_fd(what, fd);
  if (!data && len)
    return fut__error(-EINVAL, "%s: NULL data of %zu bytes", what, len);
  if (len == 0)
    return 0;
  int err = check_busy(t, what, fd, FUT__WAIT_WRITE);
  if (err)
    return err;
  const char *p = data;
  size_t done = 0;
  while (done < len) {
    ssize_t n = send(fd, p + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      done += (size_t)n;
      if (sent)
        *sent = done;
      continue;
    }
    int e = errno;
    if (e == EINTR)
      continue;
    if (e != EAGAIN && e != EWOULDBLOCK)
      return fut__error(-e, "%s: send on fd %d after %zu of %zu bytes: %s",
                        what, fd, done, len, fut_strerror(-e));
    if ((err = fut__wait_fd(t, fd, FUT__WAIT_WRITE)))
      return err; /* *sent tells what went out */
  }
  return 0;
}

int fut_sock_sendall(int fd, const void *data, size_t len) {
  return fut_sock_sendall_ex(fd, data, len, NULL);
}

int fut_sock_sendto(int fd, const void *data, size_t len,
                    const struct sockaddr *sa, socklen_t salen) {
  static const char what[] = "fut_sock_sendto";
  struct fut__task *t = fut__task_current(what);
  if (!t)
    return FUT_E_NOT_IN_TASK;
  if (fd < 0)
    return bad_fd(what, fd);
  if (!data && len)
    return fut__error(-EINVAL, "%s: NULL data of %zu bytes", what, len);
  if (!sa != !salen)
    return fut__error(-EINVAL, "%s: %s", what,
                      sa ? "an address of length 0"
                         : "a NULL address with a non-zero length");
  int err = check_busy(t, what, fd, FUT__WAIT_WRITE);
  if (err)
    return err;
  const char *p = data;
  size_t done = 0;
  for (;;) {
    ssize_t n = sendto(fd, p + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT,
                       sa, salen);
    if (n >= 0) {
      /* A datagram goes whole; only a stream socket takes part of it. */
      done += (size_t)n;
      if (done >= len || n == 0)
        return 0;
      continue;
    }
    int e = errno;
    if (e == EINTR)
      continue;
    if (e != EAGAIN && e != EWOULDBLOCK) {
      char a[128];
      if (e == EMSGSIZE)
        return fut__error(-e,
                          "%s: a datagram of %zu bytes is too big for fd "
                          "%d",
                          what, len, fd);
      return fut__error(-e, "%s: sendto %s on fd %d: %s", what,
                        sa ? addr_str(sa, salen, a, sizeof a) : "its peer", fd,
                        fut_strerror(-e));
    }
    if ((err = fut__wait_fd(t, fd, FUT__WAIT_WRITE)))
      return err;
  }
}

/* ---- connections --------------------------------------------------------- */

int fut_sock_accept(int fd, int *conn, struct sockaddr *sa, socklen_t *salen) {
  static const char what[] = "fut_sock_accept";
  socklen_t sacap = salen ? *salen : 0;
  if (conn)
    *conn = -1;
  if (salen)
    *salen = 0;
  struct fut__task *t = fut__task_current(what);
  if (!t)
    return FUT_E_NOT_IN_TASK;
  if (!conn)
    return fut__error(-EINVAL, "%s: NULL conn", what);
  if (fd < 0)
    return bad_fd(what, fd);
  if (sa && !salen)
    return fut__error(-EINVAL, "%s: an address buffer without its length",
                      what);
  int err = check_busy(t, what, fd, FUT__WAIT_READ);
  if (err || (err = check_nonblocking(what, fd)))
    return err;
  for (;;) {
    socklen_t l = sacap;
    int c = accept4(fd, sa, sa ? &l : NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c >= 0) {
      *conn = c;
      if (salen)
        *salen = sa ? l : 0;
      return 0;
    }
    int e = errno;
    /* ECONNABORTED: a connection reset while queued; take the next. */
    if (e == EINTR || e == ECONNABORTED)
      continue;
    if (e != EAGAIN && e != EWOULDBLOCK)
      return sys_error(what, "accept4", fd, e);
    if ((err = fut__wait_fd(t, fd, FUT__WAIT_READ)))
      return err;
  }
}

int fut_sock_connect(int fd, const struct sockaddr *sa, socklen_t salen) {
  static const char what[] = "fut_sock_connect";
  struct fut__task *t = fut__task_current(what);
  if (!t)
    return FUT_E_NOT_IN_TASK;
  if (fd < 0)
    return bad_fd(what, fd);
  if (!sa || salen == 0)
    return fut__error(-EINVAL, "%s: %s", what,
                      !sa ? "NULL address" : "address of length 0");
  int err = check_busy(t, what, fd, FUT__WAIT_WRITE);
  if (err || (err = check_nonblocking(what, fd)))
    return err;
  char a[128];
  if (connect(fd, sa, salen) == 0)
    return 0; /* Unix sockets and some loopback connects finish at once */
  int e = errno;
  /* EINTR: the connect goes on in the background (POSIX); EALREADY: an
   * earlier connect (cancelled while it waited) is still going on. */
  if (e == EAGAIN && sa->sa_family == AF_UNIX)
    return fut__error(-e,
                      "%s: %s on fd %d: the listener's backlog is full "
                      "(try again later)",
                      what, addr_str(sa, salen, a, sizeof a), fd);
  if (e != EINPROGRESS && e != EINTR && e != EALREADY)
    return fut__error(-e, "%s: connect to %s on fd %d: %s", what,
                      addr_str(sa, salen, a, sizeof a), fd, fut_strerror(-e));
  if ((err = fut__wait_fd(t, fd, FUT__WAIT_WRITE)))
    return err;
  int soerr = 0;
  socklen_t l = sizeof soerr;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &l) < 0)
    return sys_error(what, "getsockopt(SO_ERROR)", fd, errno);
  if (soerr)
    return fut__error(-soerr, "%s: connect to %s on fd %d: %s", what,
                      addr_str(sa, salen, a, sizeof a), fd,
                      fut_strerror(-soerr));
  return 0;
}
