/* loop.sendfile for stream transports: the write buffer is flushed first,
 * then the file goes out with fut_sock_sendfile (sendfile(2), or read +
 * send where the kernel refuses), writes refused meanwhile, as asyncio's
 * _sendfile_native does. */
#include "net/internal.h"

/* Waits until t's write buffer is empty or t is lost. */
static int wait_empty(fut_transport_t *t) {
  while (!t->lost && t->wlen != t->whead) {
    fut_t *f;
    int err = fut_new(t->loop, &f);
    if (err)
      return err;
    t->empty_waiter = f;
    err = fut_await(f, NULL);
    t->empty_waiter = NULL;
    fut_unref(f);
    if (err)
      return err;
  }
  return 0;
}

int fut_transport_sendfile(fut_transport_t *t, int in_fd, off_t *offset,
                           size_t count, size_t *sent) {
  if (sent)
    *sent = 0;
  if (!fut__task_current("fut_transport_sendfile"))
    return FUT_E_NOT_IN_TASK;
  if (!t || in_fd < 0)
    return fut__error(-EINVAL, "fut_transport_sendfile: %s",
                      !t ? "NULL transport" : "negative fd");
  if (t->kind != FUT__T_STREAM)
    return fut__error(-EINVAL, "fut_transport_sendfile: a datagram "
                               "transport");
  if (t->sendfile_busy)
    return fut__error(-EBUSY, "fut_transport_sendfile: another sendfile is "
                              "running on this transport");
  if (t->closing || t->eof_pending)
    return fut__error(-EPIPE, "fut_transport_sendfile: the transport is %s",
                      t->closing ? "closing" : "closed for writing");
  t->sendfile_busy = true;
  fut_transport_ref(t);
  int err = wait_empty(t);
  if (!err && t->lost)
    err = fut__error(t->lost_err ? t->lost_err : -EPIPE,
                     "fut_transport_sendfile: the connection is lost");
  if (!err)
    err = fut_sock_sendfile(t->fd, in_fd, offset, count, sent);
  t->sendfile_busy = false;
  if (err && err != -ECANCELED && !t->lost && err != FUT_E_NOT_IN_TASK &&
      err != -EBADF && err != -EINVAL)
    fut__transport_force_close(t, err); /* the socket failed */
  fut_transport_unref(t);
  return err;
}
