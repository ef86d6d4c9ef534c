/* The epoll boundary: the only file that includes <sys/epoll.h>.  A private
 * event array, create / destroy / ctl / poll, nothing else. */
#include "loop/internal.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

/* epoll_event.data.u64 for the eventfd doorbell; fds use their number. */
#define DOORBELL_TAG UINT64_MAX

int fut__epoll_create(fut_loop_t *loop) {
  loop->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (loop->epfd < 0)
    return fut__error(-errno, "epoll_create1: %s", fut_strerror(-errno));
  loop->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (loop->evfd < 0) {
    int err = -errno;
    close(loop->epfd);
    loop->epfd = -1;
    return fut__error(err, "eventfd: %s", fut_strerror(err));
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = DOORBELL_TAG};
  if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->evfd, &ev) < 0) {
    int err = -errno;
    close(loop->evfd);
    close(loop->epfd);
    loop->evfd = loop->epfd = -1;
    return fut__error(err, "epoll_ctl(eventfd): %s", fut_strerror(err));
  }
  if (!loop->events) {
    loop->events_cap = 1024;
    loop->events = fut__malloc(sizeof(struct epoll_event) * 1024);
    if (!loop->events) {
      fut__epoll_destroy(loop);
      return fut__error(-ENOMEM, "epoll event array: out of memory");
    }
  }
  return 0;
}

void fut__epoll_destroy(fut_loop_t *loop) {
  if (loop->evfd >= 0)
    close(loop->evfd);
  if (loop->epfd >= 0)
    close(loop->epfd);
  loop->evfd = loop->epfd = -1;
}

static uint32_t to_epoll(uint32_t ev) {
  return ((ev & FUT__EV_READ) ? EPOLLIN : 0u) |
         ((ev & FUT__EV_WRITE) ? EPOLLOUT : 0u);
}

static int ctl(fut_loop_t *loop, int op, int fd, uint32_t events) {
  uint32_t *gen = &loop->io[fd].gen;
  if (op == EPOLL_CTL_ADD)
    ++*gen;
  struct epoll_event ev = {.events = to_epoll(events),
                           .data.u64 = (uint64_t)*gen << 32 | (uint32_t)fd};
  return epoll_ctl(loop->epfd, op, fd, &ev) == 0 ? 0 : -errno;
}

int fut__epoll_ctl(fut_loop_t *loop, int fd, uint32_t old_events,
                   uint32_t new_events) {
  int op = !new_events  ? EPOLL_CTL_DEL
           : old_events ? EPOLL_CTL_MOD
                        : EPOLL_CTL_ADD;
  int err = ctl(loop, op, fd, new_events);
  /* The fd was closed and maybe reused behind our back: epoll forgot it
   * (ENOENT on MOD), or it holds a registration we did not know of
   * (EEXIST on ADD). */
  if (op == EPOLL_CTL_MOD && err == -ENOENT) {
    err = ctl(loop, EPOLL_CTL_ADD, fd, new_events);
    return err ? err : 1;
  }
  if (op == EPOLL_CTL_ADD && err == -EEXIST)
    return ctl(loop, EPOLL_CTL_MOD, fd, new_events);
  return err;
}

int fut__epoll_lower(fut_loop_t *loop, int fd, uint32_t new_events) {
  return ctl(loop, new_events ? EPOLL_CTL_MOD : EPOLL_CTL_DEL, fd, new_events);
}

int fut__epoll_rebuild(fut_loop_t *loop) {
  int fresh = epoll_create1(EPOLL_CLOEXEC);
  if (fresh < 0)
    return fut__error(-errno, "epoll_create1: %s", fut_strerror(-errno));
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = DOORBELL_TAG};
  /* The new instance takes the old one's number, so fut_loop_backend_fd
   * stays valid for an embedding program. */
  if (epoll_ctl(fresh, EPOLL_CTL_ADD, loop->evfd, &ev) < 0 ||
      dup3(fresh, loop->epfd, O_CLOEXEC) < 0) {
    int err = -errno;
    close(fresh);
    return fut__error(err, "rebuilding the epoll instance: %s",
                      fut_strerror(err));
  }
  close(fresh);
  return fut__io_reregister(loop);
}

/* epoll_pwait2 (Linux 5.11) through syscall(2): glibc wraps it only from
 * 2.35 (RHEL 9 ships 2.34).  Its number is the same on every architecture
 * (the generic table). */
#ifndef __NR_epoll_pwait2
#define __NR_epoll_pwait2 441
#endif
static int sys_epoll_pwait2(int epfd, void *events, int maxevents,
                            const struct timespec *ts) {
  return (int)syscall(__NR_epoll_pwait2, epfd, events, maxevents, ts, NULL,
                      (size_t)8);
}
int (*fut__sys_epoll_pwait2)(int epfd, void *events, int maxevents,
                             const struct timespec *ts) = sys_epoll_pwait2;

/* Set once epoll_pwait2 answered ENOSYS (a kernel before 5.11, or a
 * seccomp filter that refuses it): from then on only epoll_wait, with the
 * timeout rounded up to milliseconds (never early). */
static atomic_bool no_pwait2;

int fut__epoll_poll(fut_loop_t *loop, uint64_t timeout_ns) {
  struct epoll_event *events = loop->events;
  int n;
  if (loop->io_ndirty)
    fut__io_flush(loop);
  for (;;) {
    if (timeout_ns == 0 || timeout_ns == UINT64_MAX) {
      n = epoll_wait(loop->epfd, events, loop->events_cap,
                     timeout_ns == 0 ? 0 : -1);
    } else {
      /* Never early: epoll_pwait2 takes a timespec (Linux 5.11); fall back
       * to milliseconds rounded up. */
      struct timespec ts = {.tv_sec = (time_t)(timeout_ns / 1000000000u),
                            .tv_nsec = (long)(timeout_ns % 1000000000u)};
      n = -1;
      errno = ENOSYS;
      if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed))
        n = fut__sys_epoll_pwait2(loop->epfd, events, loop->events_cap, &ts);
      if (n < 0 && errno == ENOSYS) {
        atomic_store_explicit(&no_pwait2, true, memory_order_relaxed);
        uint64_t ms = (timeout_ns + 999999u) / 1000000u;
        n = epoll_wait(loop->epfd, events, loop->events_cap,
                       ms > INT32_MAX ? INT32_MAX : (int)ms);
      }
    }
    if (n >= 0)
      break;
    if (errno != EINTR)
      return fut__error(-errno, "epoll_wait: %s", fut_strerror(-errno));
    /* Interrupted: the caller recomputes the timeout on the next tick. */
    n = 0;
    break;
  }
  for (int i = 0; i < n; i++) {
    if (events[i].data.u64 == DOORBELL_TAG) {
      fut__door_drain(loop);
      continue;
    }
    uint32_t e = events[i].events;
    uint32_t ev = 0;
    /* Errors and hangups wake both sides, as asyncio's selector does. */
    if (e & (EPOLLIN | EPOLLERR | EPOLLHUP))
      ev |= FUT__EV_READ;
    if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP))
      ev |= FUT__EV_WRITE;
    uint64_t data = events[i].data.u64;
    fut__io_event(loop, (int)(uint32_t)data, (uint32_t)(data >> 32), ev);
  }
  if (FUT__UNLIKELY(loop->io_stale)) {
    loop->io_stale = false;
    int err = fut__epoll_rebuild(loop);
    if (err)
      return err;
  }
  /* A full batch hints at more ready fds: grow for the next poll. */
  if (n == loop->events_cap && loop->events_cap < 65536) {
    void *bigger = fut__realloc(loop->events, sizeof(struct epoll_event) *
                                                  (size_t)loop->events_cap * 2);
    if (bigger) {
      loop->events = bigger;
      loop->events_cap *= 2;
    }
  }
  return n;
}
