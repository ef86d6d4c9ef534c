/* fd watchers: asyncio's add_reader / add_writer on level-triggered epoll.
 * Each watcher is a persistent handle; an event queues that handle (one
 * reference per queued run), so removing a watcher cancels the handle and
 * a run already queued in the same batch is skipped.
 *
 * Lazy removal: removing a watcher only marks the fd; its registration is
 * lowered (MOD, or DEL when no watcher is left) just before the next
 * epoll_wait.  No event can arrive in between, and an add in the same
 * iteration (pause / resume reading, a writer re-armed) turns the pending
 * DEL + ADD into one MOD.  Adds stay immediate: they report EBADF / EPERM
 * to the caller and are the loop's probe for an fd closed behind its back
 * (see fut_loop_add_reader's close rule). */
#include "loop/internal.h"

#include <fcntl.h>
#include <limits.h>
#include <string.h>

static inline uint32_t watched(const struct fut__io *io) {
  return (io->reader ? FUT__EV_READ : 0u) | (io->writer ? FUT__EV_WRITE : 0u);
}

static int grow_table(fut_loop_t *loop, int fd) {
  if (fd < loop->io_cap)
    return 0;
  int cap = loop->io_cap ? loop->io_cap : 64;
  while (cap <= fd)
    cap = cap > INT_MAX / 2 ? fd + 1 : cap * 2; /* no int overflow */
  struct fut__io *io = fut__realloc(loop->io, sizeof *io * (size_t)cap);
  if (!io)
    return fut__error(-ENOMEM, "fd table: out of memory for fd %d", fd);
  memset(io + loop->io_cap, 0, sizeof *io * (size_t)(cap - loop->io_cap));
  loop->io = io;
  loop->io_cap = cap;
  return 0;
}

/* Forgets fd's watchers without touching epoll (their fd is gone): the
 * handles read as cancelled. */
static void drop_watchers(fut_loop_t *loop, int fd) {
  struct fut__io *io = &loop->io[fd];
  if (!io->reader && !io->writer)
    return;
  fut_handle_t *hs[2] = {io->reader, io->writer};
  for (int i = 0; i < 2; i++)
    if (hs[i]) {
      hs[i]->flags |= FUT__H_CANCELLED;
      fut_handle_unref(hs[i]);
    }
  io->reader = io->writer = NULL;
  io->registered = 0;
  loop->nwatchers--;
}

static int add_watcher(fut_loop_t *loop, int fd, fut_cb cb, void *arg,
                       uint32_t bit, const char *what) {
  if (!loop || fd < 0 || !cb)
    return fut__error(-EINVAL, "%s: %s", what,
                      !loop    ? "NULL loop"
                      : fd < 0 ? "negative fd"
                               : "NULL callback");
  int err = fut__check_usable(loop);
  if (err)
    return err;
  /* epoll_ctl's EEXIST fallback would re-point the doorbell's entry at a
   * watcher (and a later remove would delete it): refuse the loop's own
   * descriptors. */
  if (fd == loop->evfd || fd == loop->epfd)
    return fut__error(-EINVAL, "%s: fd %d belongs to the loop itself", what,
                      fd);
  /* An fd beyond the table would grow it: make sure it is open first, so
   * that a bogus large number costs no memory.  Inside the table the
   * probe is epoll_ctl's own EBADF (one syscall less per watcher). */
  if (fd >= loop->io_cap && fcntl(fd, F_GETFD) < 0)
    return fut__error(-EBADF, "%s: fd %d is not open", what, fd);
  if ((err = grow_table(loop, fd)))
    return err;
  fut_handle_t *h = fut__handle_new(loop, cb, arg, FUT__H_IO);
  if (!h)
    return -ENOMEM;
  struct fut__io *io = &loop->io[fd];
  /* Always asked of epoll, even when the events do not change: a
   * registration the kernel forgot means the fd was closed (and maybe
   * reopened) behind our back, and its old watchers are stale.  The
   * registration may still hold the events of a pending removal: the MOD
   * applies it too. */
  uint32_t want = watched(io) | bit;
  err = fut__epoll_ctl(loop, fd, io->registered, want);
  if (err == 1) {
    drop_watchers(loop, fd);
    err = want == bit ? 0 : fut__epoll_ctl(loop, fd, want, bit);
    want = bit;
  }
  if (err) {
    fut_handle_unref(h);
    if (err == -EPERM)
      return fut__error(err,
                        "%s: fd %d cannot be watched by epoll "
                        "(a regular file or directory?)",
                        what, fd);
    if (err == -EBADF)
      return fut__error(err, "%s: fd %d is not open", what, fd);
    return fut__error(err, "%s: epoll_ctl on fd %d: %s", what, fd,
                      fut_strerror(err));
  }
  io->registered = (uint8_t)want;
  fut_handle_t **slot = bit == FUT__EV_READ ? &io->reader : &io->writer;
  if (!io->reader && !io->writer)
    loop->nwatchers++;
  if (*slot) {
    (*slot)->flags |= FUT__H_CANCELLED;
    fut_handle_unref(*slot);
  }
  *slot = h;
  return 0;
}

/* Puts fd on the list of pending removals.  Returns 0 or -ENOMEM. */
static int mark_dirty(fut_loop_t *loop, int fd) {
  if (loop->io_ndirty == loop->io_dirty_cap) {
    int cap = loop->io_dirty_cap ? loop->io_dirty_cap * 2 : 64;
    int *list = fut__realloc(loop->io_dirty, sizeof *list * (size_t)cap);
    if (!list)
      return -ENOMEM;
    loop->io_dirty = list;
    loop->io_dirty_cap = cap;
  }
  loop->io_dirty[loop->io_ndirty++] = fd;
  loop->io[fd].dirty = true;
  return 0;
}

void fut__io_flush(fut_loop_t *loop) {
  for (int i = 0; i < loop->io_ndirty; i++) {
    int fd = loop->io_dirty[i];
    struct fut__io *io = &loop->io[fd];
    io->dirty = false;
    uint32_t want = watched(io);
    if (io->registered == want)
      continue; /* an add in the same iteration already applied it */
    int err = fut__epoll_lower(loop, fd, want);
    /* The number was closed (EBADF), or closed and reused by a file epoll
     * does not hold (ENOENT): the kernel dropped the registration with the
     * last close of the file.  A watcher still in the table belongs to the
     * closed fd: dropped, as an add on the number would.  If a dup() keeps
     * the old file open its registration stays: its events are detected as
     * not ours and the instance is rebuilt (fut__io_event). */
    if ((err == -EBADF || err == -ENOENT) && want)
      drop_watchers(loop, fd);
    else
      io->registered = (uint8_t)want;
  }
  loop->io_ndirty = 0;
}

void fut__io_closing(fut_loop_t *loop, int fd) {
  if (fd < 0 || fd >= loop->io_cap)
    return;
  struct fut__io *io = &loop->io[fd];
  if (io->reader || io->writer)
    return; /* still watched: the lowering (or the rebuild) deals with it */
  /* A pending DEL would only meet EBADF after the close: skip it.  The
   * entry stays on the dirty list and the flush finds nothing to do. */
  io->registered = 0;
}

static int remove_watcher(fut_loop_t *loop, int fd, uint32_t bit) {
  if (!loop || fd < 0)
    return fut__error(-EINVAL, "remove watcher: %s",
                      !loop ? "NULL loop" : "negative fd");
  int err = fut__check_thread(loop);
  if (err)
    return err;
  if (fd >= loop->io_cap)
    return 0;
  struct fut__io *io = &loop->io[fd];
  fut_handle_t **slot = bit == FUT__EV_READ ? &io->reader : &io->writer;
  if (!*slot)
    return 0;
  (*slot)->flags |= FUT__H_CANCELLED;
  fut_handle_unref(*slot);
  *slot = NULL;
  /* Lowered before the next poll (fut__io_flush); eagerly only if the list
   * cannot grow.  The fd may already be closed: epoll then forgot it,
   * which is what we want anyway, so errors are ignored.  In a forked child
   * before fut_loop_fork the epoll instance is still the parent's (shared
   * across fork): touching it would remove the parent's watcher, so only
   * the table changes, and fut_loop_fork registers from the table. */
  uint32_t want = watched(io);
  if (loop->epfd < 0 || loop->fork_gen != fut__fork_generation()) {
    io->registered = (uint8_t)want;
  } else if (io->registered != want && !io->dirty &&
             mark_dirty(loop, fd) != 0) {
    (void)fut__epoll_lower(loop, fd, want);
    io->registered = (uint8_t)want;
  }
  if (!io->reader && !io->writer)
    loop->nwatchers--;
  return 1;
}

int fut_loop_add_reader(fut_loop_t *loop, int fd, fut_cb cb, void *arg) {
  return add_watcher(loop, fd, cb, arg, FUT__EV_READ, "fut_loop_add_reader");
}

int fut_loop_add_writer(fut_loop_t *loop, int fd, fut_cb cb, void *arg) {
  return add_watcher(loop, fd, cb, arg, FUT__EV_WRITE, "fut_loop_add_writer");
}

int fut_loop_remove_reader(fut_loop_t *loop, int fd) {
  return remove_watcher(loop, fd, FUT__EV_READ);
}

int fut_loop_remove_writer(fut_loop_t *loop, int fd) {
  return remove_watcher(loop, fd, FUT__EV_WRITE);
}

int fut__io_reregister(fut_loop_t *loop) {
  /* The new instance gets the watchers' events: pending removals are
   * applied by not registering them. */
  loop->io_ndirty = 0;
  for (int fd = 0; fd < loop->io_cap; fd++) {
    struct fut__io *io = &loop->io[fd];
    io->dirty = false;
    io->registered = (uint8_t)watched(io);
    if (!io->registered)
      continue;
    int err = fut__epoll_ctl(loop, fd, 0, io->registered);
    if (err == -EBADF) {
      drop_watchers(loop, fd); /* closed without remove_reader/_writer */
      continue;
    }
    if (err)
      return fut__error(err, "re-registering fd %d with epoll: %s", fd,
                        fut_strerror(err));
  }
  return 0;
}

void fut__io_clear(fut_loop_t *loop) {
  for (int fd = 0; fd < loop->io_cap; fd++) {
    if (loop->io[fd].reader)
      remove_watcher(loop, fd, FUT__EV_READ);
    if (loop->io[fd].writer)
      remove_watcher(loop, fd, FUT__EV_WRITE);
  }
  fut__free(loop->io);
  loop->io = NULL;
  loop->io_cap = 0;
  fut__free(loop->io_dirty);
  loop->io_dirty = NULL;
  loop->io_ndirty = loop->io_dirty_cap = 0;
}
