/* fut_sock_sendfile (asyncio's sock_sendfile): sendfile(2) from the file
 * to the socket, waiting for writable between chunks, with a read + send
 * fallback when the kernel refuses sendfile for these fds (EINVAL: e.g. a
 * file system without splice support; ENOSYS).
 *
 * Accounting is exact: *sent counts what reached the socket and *offset
 * (or the file position, when offset is NULL) advances by exactly that, on
 * success, failure and cancellation alike.  The fallback reads a chunk
 * ahead; what it read but could not send is given back (the file position
 * moved back) so a cancelled call consumes nothing the caller did not
 * get. */
#include "net/internal.h"

#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

/* The most one sendfile(2) call is asked for (the kernel's own cap is
 * 0x7ffff000), as asyncio's 1 GiB block. */
#define SENDFILE_CHUNK ((size_t)1 << 30)
/* The fallback's buffer. */
#define FALLBACK_CHUNK ((size_t)65536)

static const char what[] = "fut_sock_sendfile";

struct sf {
  struct fut__task *t;
  int out_fd, in_fd;
  off_t *offset; /* the caller's, or NULL: the file position */
  off_t pos;     /* where the next byte comes from (offset mode) */
  size_t count;  /* bytes to send; SIZE_MAX: until end of file */
  size_t sent;
};

/* sendfile(2) until done, EOF or an error.  Returns 0, 1 when the kernel
 * refuses sendfile for these fds before the first byte of this call went
 * (use the fallback), or a negative code. */
static int by_sendfile(struct sf *s) {
  while (s->sent < s->count) {
    size_t want = s->count - s->sent;
    if (want > SENDFILE_CHUNK)
      want = SENDFILE_CHUNK;
    ssize_t n = sendfile(s->out_fd, s->in_fd, s->offset ? &s->pos : NULL, want);
    if (n > 0) {
      s->sent += (size_t)n;
      if (s->offset)
        *s->offset = s->pos;
      continue;
    }
    if (n == 0)
      return 0; /* end of file */
    int e = errno;
    if (e == EINTR)
      continue;
    if (e == EINVAL || e == ENOSYS)
      return 1;
    if (e != EAGAIN && e != EWOULDBLOCK)
      return fut__error(-e,
                        "%s: sendfile from fd %d to fd %d after %zu bytes: "
                        "%s",
                        what, s->in_fd, s->out_fd, s->sent, fut_strerror(-e));
    int err = fut__wait_fd(s->t, s->out_fd, FUT__WAIT_WRITE);
    if (err)
      return err;
  }
  return 0;
}

/* Gives back `unsent` bytes read from the file position but not sent. */
static void unread(struct sf *s, size_t unsent) {
  if (!s->offset && unsent > 0)
    (void)lseek(s->in_fd, -(off_t)unsent, SEEK_CUR);
}

/* read + send, a chunk at a time. */
static int by_copy(struct sf *s) {
  char *buf = fut__malloc(FALLBACK_CHUNK);
  if (!buf)
    return fut__error(-ENOMEM, "%s: out of memory for the copy buffer", what);
  int err = 0;
  while (s->sent < s->count && !err) {
    size_t want = s->count - s->sent;
    if (want > FALLBACK_CHUNK)
      want = FALLBACK_CHUNK;
    ssize_t got = s->offset ? pread(s->in_fd, buf, want, s->pos)
                            : read(s->in_fd, buf, want);
    if (got < 0) {
      int e = errno;
      if (e == EINTR)
        continue;
      err = fut__error(-e, "%s: reading fd %d after %zu bytes: %s", what,
                       s->in_fd, s->sent, fut_strerror(-e));
      break;
    }
    if (got == 0)
      break; /* end of file */
    size_t done = 0;
    while (done < (size_t)got) {
      ssize_t n = send(s->out_fd, buf + done, (size_t)got - done,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n >= 0) {
        done += (size_t)n;
        s->sent += (size_t)n;
        if (s->offset) {
          s->pos += n;
          *s->offset = s->pos;
        }
        continue;
      }
      int e = errno;
      if (e == EINTR)
        continue;
      if (e != EAGAIN && e != EWOULDBLOCK) {
        err = fut__error(-e, "%s: send on fd %d after %zu bytes: %s", what,
                         s->out_fd, s->sent, fut_strerror(-e));
        break;
      }
      if ((err = fut__wait_fd(s->t, s->out_fd, FUT__WAIT_WRITE)))
        break;
    }
    if (err)
      unread(s, (size_t)got - done);
  }
  fut__free(buf);
  return err;
}

int fut_sock_sendfile(int out_fd, int in_fd, off_t *offset, size_t count,
                      size_t *sent) {
  if (sent)
    *sent = 0;
  struct fut__task *t = fut__task_current(what);
  if (!t)
    return FUT_E_NOT_IN_TASK;
  if (out_fd < 0 || in_fd < 0)
    return fut__error(-EINVAL, "%s: negative %s fd %d", what,
                      out_fd < 0 ? "socket" : "file",
                      out_fd < 0 ? out_fd : in_fd);
  if (offset && *offset < 0)
    return fut__error(-EINVAL, "%s: negative offset %lld", what,
                      (long long)*offset);
  fut_loop_t *loop = t->x.fut.loop;
  if (out_fd < loop->io_cap && loop->io[out_fd].writer)
    return fut__error(-EBUSY,
                      "%s: fd %d already has a writer waiting on this loop "
                      "(a second task, a transport or add_writer)",
                      what, out_fd);
  int fl = fcntl(out_fd, F_GETFL);
  if (fl < 0) {
    int e = errno;
    return fut__error(-e, "%s: socket fd %d: %s", what, out_fd,
                      fut_strerror(-e));
  }
  if (!(fl & O_NONBLOCK))
    return fut__error(-EINVAL,
                      "%s: socket fd %d is blocking: it would block the loop "
                      "(fut_sock_set_nonblocking first)",
                      what, out_fd);
  /* asyncio refuses anything but a stream socket: a datagram socket
   * would cut the file into datagrams at arbitrary boundaries. */
  int type = 0;
  socklen_t tlen = sizeof type;
  if (getsockopt(out_fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0 &&
      type != SOCK_STREAM)
    return fut__error(-EINVAL,
                      "%s: socket fd %d is not a stream socket (only "
                      "SOCK_STREAM sockets are supported)",
                      what, out_fd);
  struct sf s = {t, out_fd, in_fd, offset, offset ? *offset : 0, count, 0};
  if (count == 0) {
    /* To the end of the file as it is now (asyncio reads st_size); a file
     * without a size (a pipe) goes until end of file. */
    struct stat st;
    if (fstat(in_fd, &st) < 0) {
      int e = errno;
      return fut__error(-e, "%s: file fd %d: %s", what, in_fd,
                        fut_strerror(-e));
    }
    s.count = SIZE_MAX;
    if (S_ISREG(st.st_mode)) {
      off_t from = offset ? *offset : lseek(in_fd, 0, SEEK_CUR);
      if (from < 0) {
        int e = errno;
        return fut__error(-e, "%s: file fd %d: %s", what, in_fd,
                          fut_strerror(-e));
      }
      if (from >= st.st_size)
        return 0;
      s.count = (size_t)(st.st_size - from);
    }
  }
  int err = by_sendfile(&s);
  if (err == 1)
    err = by_copy(&s);
  if (sent)
    *sent = s.sent;
  return err;
}
