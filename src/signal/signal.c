/* Signal handlers on the loop: fut_loop_add_signal_handler and
 * fut_loop_remove_signal_handler, and the loop part that holds a loop's
 * handlers.
 *
 * A loop with at least one handler owns a wakeup slot (wakeup.c) and the
 * eventfd its slot writes.  The eventfd is an ordinary fd watcher: when it
 * is readable, on_wakeup takes the slot's caught signals and queues one
 * delivery per signal with call_soon, so a user callback runs from the
 * ready queue like any other.  A loop without handlers has no state, no
 * slot and no fd. */
#include "signal/internal.h"

#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct entry {
  fut_cb cb;            /* the handler; NULL when signo has none here */
  void *arg;            /* borrowed from the user */
  fut_handle_t *queued; /* the queued delivery (our reference), NULL when
                           none: a signal caught meanwhile coalesces */
};

struct sig_state {
  fut_loop_t *loop;
  int efd;       /* eventfd the slot's handler writes; watched for reading */
  int slot;      /* wakeup slot (wakeup.c) */
  int nhandlers; /* entries with a cb; the state goes when it drops to 0 */
  struct entry ents[FUT__SIG_MAX + 1]; /* by signo */
};

static int sig_part = -1;

/* Queued delivery of one signal: runs the entry's current callback. */
static void deliver(void *p) {
  struct entry *e = p;
  fut_handle_t *h = e->queued;
  e->queued = NULL;
  fut_handle_unref(h);
  /* The callback may remove this handler and free the state: nothing of
   * e is read after it starts. */
  e->cb(e->arg);
}

static void on_wakeup(void *p) {
  struct sig_state *st = p;
  uint64_t n; /* one read resets the counter (EAGAIN: nothing rang) */
  ssize_t r = read(st->efd, &n, sizeof n);
  (void)r;
  /* Read first, take second: a signal whose write we consumed had set its
   * bit before; one caught after the take rings the eventfd again. */
  uint64_t bits = fut__sig_slot_take(st->slot);
  while (bits) {
    int signo = __builtin_ctzll(bits) + 1;
    bits &= bits - 1;
    struct entry *e = &st->ents[signo];
    if (!e->cb || e->queued)
      continue; /* not watched any more, or coalesced with a queued run */
    int err = fut_loop_call_soon(st->loop, deliver, e, &e->queued);
    if (err)
      fut__report_exception(st->loop, "a signal handler could not be queued",
                            err, NULL, NULL, fut_last_error());
  }
}

/* Cancels e's queued delivery, if any. */
static void drop_queued(struct entry *e) {
  if (e->queued) {
    fut_handle_cancel(e->queued);
    fut_handle_unref(e->queued);
    e->queued = NULL;
  }
}

static void state_free(struct sig_state *st) {
  fut_loop_remove_reader(st->loop, st->efd);
  fut__sig_slot_release(st->slot);
  close(st->efd);
  fut__free(st);
}

static void remove_entry(struct sig_state *st, int signo) {
  struct entry *e = &st->ents[signo];
  drop_queued(e);
  e->cb = NULL;
  e->arg = NULL;
  fut__sig_unwatch(st->slot, signo);
  if (--st->nhandlers == 0) {
    fut__loop_part_set(st->loop, sig_part, NULL);
    state_free(st);
  }
}

static void sig_close(fut_loop_t *loop, void *state) {
  struct sig_state *st = state;
  (void)loop;
  for (int signo = 1; signo <= FUT__SIG_MAX; signo++) {
    if (!st->ents[signo].cb)
      continue;
    bool last = st->nhandlers == 1;
    remove_entry(st, signo); /* the last one frees st */
    if (last)
      break;
  }
}

/* In a forked child (fut_loop_fork): the inherited eventfd is shared with
 * the parent, so the child's loop gets its own. */
static void sig_forked(fut_loop_t *loop, void *state) {
  struct sig_state *st = state;
  int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd < 0) {
    fut__report_exception(loop,
                          "fut_loop_fork: no eventfd for the signal "
                          "handlers; they stay deaf in the child",
                          -errno, NULL, NULL, NULL);
    fut__sig_slot_renew(st->slot, -1);
    return;
  }
  fut_loop_remove_reader(loop, st->efd);
  close(st->efd);
  st->efd = efd;
  int err = fut_loop_add_reader(loop, efd, on_wakeup, st);
  if (err)
    fut__report_exception(loop,
                          "fut_loop_fork: cannot watch the signal "
                          "handlers' eventfd",
                          err, NULL, NULL, fut_last_error());
  fut__sig_slot_renew(st->slot, efd);
}

__attribute__((constructor)) static void sig_part_init(void) {
  static const struct fut__loop_part part = {.name = "signals",
                                             .rank = FUT__RANK_SIGNALS,
                                             .close = sig_close,
                                             .forked = sig_forked};
  sig_part = fut__loop_part_register(&part);
}

/* The loop's state, made on first use: eventfd, watcher, slot. */
static int get_state(fut_loop_t *loop, struct sig_state **out) {
  struct sig_state *st = fut__loop_part(loop, sig_part);
  if (st) {
    *out = st;
    return 0;
  }
  st = fut__calloc(1, sizeof *st);
  if (!st)
    return fut__error(-ENOMEM, "fut_loop_add_signal_handler: out of memory");
  st->loop = loop;
  int err;
  st->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (st->efd < 0) {
    int e = errno;
    err =
        fut__error(-e, "fut_loop_add_signal_handler: eventfd: %s", strerror(e));
    goto fail_efd;
  }
  if ((err = fut_loop_add_reader(loop, st->efd, on_wakeup, st)))
    goto fail_reader;
  if ((err = st->slot = fut__sig_slot_acquire(st->efd)) < 0)
    goto fail_slot;
  fut__loop_part_set(loop, sig_part, st);
  *out = st;
  return 0;

fail_slot:
  fut_loop_remove_reader(loop, st->efd);
fail_reader:
  close(st->efd);
fail_efd:
  fut__free(st);
  return err;
}

int fut_loop_add_signal_handler(fut_loop_t *loop, int signo, fut_cb cb,
                                void *arg) {
  if (!loop || !cb)
    return fut__error(-EINVAL, "fut_loop_add_signal_handler: NULL %s",
                      loop ? "cb" : "loop");
  int err = fut__sig_check(signo, "fut_loop_add_signal_handler");
  if (err)
    return err;
  if ((err = fut__check_usable(loop)))
    return err;
  struct sig_state *st = NULL;
  if ((err = get_state(loop, &st)))
    return err;
  struct entry *e = &st->ents[signo];
  /* Also when replacing: puts the library's disposition back if somebody
   * replaced it meanwhile. */
  if ((err = fut__sig_watch(st->slot, signo))) {
    if (st->nhandlers == 0) {
      fut__loop_part_set(loop, sig_part, NULL);
      state_free(st);
    }
    return err;
  }
  if (!e->cb)
    st->nhandlers++;
  e->cb = cb;
  e->arg = arg;
  return 0;
}

int fut_loop_remove_signal_handler(fut_loop_t *loop, int signo) {
  if (!loop)
    return fut__error(-EINVAL, "fut_loop_remove_signal_handler: NULL loop");
  int err = fut__sig_check(signo, "fut_loop_remove_signal_handler");
  if (err)
    return signo == SIGKILL || signo == SIGSTOP ? 0 : err;
  if (loop->closed)
    return 0; /* closing removed every handler */
  if ((err = fut__check_usable(loop)))
    return err;
  struct sig_state *st = fut__loop_part(loop, sig_part);
  if (!st || !st->ents[signo].cb)
    return 0;
  remove_entry(st, signo);
  return 1;
}
