/* A task waits for one fd: a watcher whose callback resolves a future the
 * task awaits.  The watcher is removed however the wait ends (ready,
 * cancelled, loop closing), so a cancelled wait leaves the fd as it was. */
#include "net/internal.h"

static void ready(void *arg) {
  fut_t *f = arg;
  if (f->state == FUT_PENDING)
    fut_set_result(f, NULL, NULL);
}

int fut__wait_fd(struct fut__task *t, int fd, unsigned dir) {
  fut_loop_t *loop = t->x.fut.loop;
  if (fd >= 0 && fd < loop->io_cap) {
    const struct fut__io *io = &loop->io[fd];
    if (dir == FUT__WAIT_READ ? io->reader != NULL : io->writer != NULL)
      return fut__error(-EBUSY,
                        "fd %d already has a %s waiting on this loop (a "
                        "second task, a transport or add_%s)",
                        fd, dir == FUT__WAIT_READ ? "reader" : "writer",
                        dir == FUT__WAIT_READ ? "reader" : "writer");
  }
  fut_t *f;
  int err = fut_new(loop, &f);
  if (err)
    return err;
  err = dir == FUT__WAIT_READ ? fut_loop_add_reader(loop, fd, ready, f)
                              : fut_loop_add_writer(loop, fd, ready, f);
  if (err) {
    fut_unref(f);
    return err;
  }
  err = fut_await(f, NULL);
  if (dir == FUT__WAIT_READ)
    fut_loop_remove_reader(loop, fd);
  else
    fut_loop_remove_writer(loop, fd);
  fut_unref(f);
  return err;
}
