/* The process-wide half of signal handling: one sigaction handler for every
 * signal a loop watches, the dispositions it replaced, and the wakeup slots
 * it writes to.
 *
 * The handler is async-signal-safe by construction: it reads and writes
 * lock-free atomics of a static table and calls write(2) and getpid(2),
 * nothing else.  Everything that changes the table takes `lock`; the
 * handler never does.  A slot being freed is first made invisible (no
 * watched signal, fd -1), then the release waits until no handler is still
 * inside it (`busy`), so an eventfd is never closed under a handler that
 * could write to a recycled fd number. */
#include "signal/internal.h"

#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

_Static_assert(NSIG - 1 <= FUT__SIG_MAX, "a signal mask is one uint64_t");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2 && ATOMIC_INT_LOCK_FREE == 2,
               "the signal handler needs lock-free atomics");

struct slot {
  atomic_uint_least64_t watched; /* signals this loop handles; 0 when free */
  atomic_uint_least64_t pending; /* caught, not yet taken by the loop */
  atomic_int fd;                 /* eventfd to write; -1 when free */
  atomic_int pid;                /* process fd belongs to: a forked child
                                    that did not renew the slot skips it */
  atomic_int busy;               /* handlers inside this slot right now */
  bool used;                     /* taken (under lock) */
};

static struct slot slots[FUT__SIG_SLOTS];
static atomic_int nslots; /* the handler scans slots[0, nslots): the
                             high-water mark of used slots, never lowered */

/* Signals whose disposition the library set (bit signo - 1): read without
 * the lock by fut__sig_child_reset, in a child where the lock is unsafe. */
static atomic_uint_least64_t installed;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned lock_gen;              /* fork generation lock was made in */
static int watchers[FUT__SIG_MAX + 1]; /* by signo: slots watching it */
static struct sigaction saved[FUT__SIG_MAX + 1]; /* by signo: the
                                                    disposition to restore,
                                                    valid while watched */

/* A parent thread may have held the lock, or been inside the handler, at
 * fork time: the child's copy of the lock would stay locked forever and a
 * slot's busy count would never drop, so a child re-creates the lock and
 * zeroes the counts (it starts with one thread, the one calling here, and
 * that thread is not inside the handler). */
static void take_lock(void) {
  unsigned gen = fut__fork_generation();
  if (FUT__UNLIKELY(__atomic_load_n(&lock_gen, __ATOMIC_RELAXED) != gen)) {
    pthread_mutex_init(&lock, NULL);
    for (int i = 0; i < FUT__SIG_SLOTS; i++)
      atomic_store(&slots[i].busy, 0);
    __atomic_store_n(&lock_gen, gen, __ATOMIC_RELAXED);
  }
  pthread_mutex_lock(&lock);
}

__attribute__((constructor)) static void wakeup_init(void) {
  lock_gen = fut__fork_generation();
  for (int i = 0; i < FUT__SIG_SLOTS; i++)
    atomic_init(&slots[i].fd, -1);
}

static void on_signal(int signo) {
  int saved_errno = errno;
  uint64_t bit = (uint64_t)1 << (signo - 1);
  int n = atomic_load(&nslots);
  pid_t me = 0;
  for (int i = 0; i < n; i++) {
    struct slot *s = &slots[i];
    if (!(atomic_load(&s->watched) & bit))
      continue;
    atomic_fetch_add(&s->busy, 1);
    /* Re-read under busy: a release that cleared the slot before our
     * increment is seen here; one after it waits for us. */
    int fd = atomic_load(&s->fd);
    if (fd >= 0 && (atomic_load(&s->watched) & bit)) {
      if (!me)
        me = getpid();
      if (atomic_load(&s->pid) == me) {
        atomic_fetch_or(&s->pending, bit);
        uint64_t one = 1;
        ssize_t w = write(fd, &one, sizeof one); /* EAGAIN: already rung */
        (void)w;
      }
    }
    atomic_fetch_sub(&s->busy, 1);
  }
  errno = saved_errno;
}

int fut__sig_check(int signo, const char *what) {
  if (signo < 1 || signo > FUT__SIG_MAX || signo >= NSIG)
    return fut__error(-EINVAL, "%s: signal %d is out of range 1..%d", what,
                      signo, NSIG - 1);
  if (signo == SIGKILL || signo == SIGSTOP)
    return fut__error(-EINVAL, "%s: signal %d (%s) cannot be caught", what,
                      signo, signo == SIGKILL ? "SIGKILL" : "SIGSTOP");
  return 0;
}

int fut__sig_slot_acquire(int efd) {
  take_lock();
  int i = 0;
  while (i < FUT__SIG_SLOTS && slots[i].used)
    i++;
  if (i == FUT__SIG_SLOTS) {
    pthread_mutex_unlock(&lock);
    return fut__error(-ENOSPC,
                      "more than %d loops of this process have signal "
                      "handlers",
                      FUT__SIG_SLOTS);
  }
  struct slot *s = &slots[i];
  s->used = true;
  atomic_store(&s->pending, 0);
  atomic_store(&s->pid, (int)getpid());
  atomic_store(&s->fd, efd);
  if (atomic_load(&nslots) <= i)
    atomic_store(&nslots, i + 1);
  pthread_mutex_unlock(&lock);
  return i;
}

void fut__sig_slot_release(int slot) {
  struct slot *s = &slots[slot];
  take_lock();
  atomic_store(&s->watched, 0);
  atomic_store(&s->fd, -1);
  /* A handler that entered before the stores may still write to the old
   * fd: it is brief and never blocks (the eventfd is non-blocking). */
  while (atomic_load(&s->busy) > 0)
    sched_yield();
  atomic_store(&s->pending, 0);
  s->used = false;
  pthread_mutex_unlock(&lock);
}

void fut__sig_slot_renew(int slot, int efd) {
  struct slot *s = &slots[slot];
  take_lock();
  atomic_store(&s->fd, -1);
  while (atomic_load(&s->busy) > 0)
    sched_yield();
  atomic_store(&s->pid, (int)getpid());
  atomic_store(&s->fd, efd);
  pthread_mutex_unlock(&lock);
}

uint64_t fut__sig_slot_take(int slot) {
  return atomic_exchange(&slots[slot].pending, 0);
}

static bool is_ours(const struct sigaction *sa) {
  return !(sa->sa_flags & SA_SIGINFO) && sa->sa_handler == on_signal;
}

int fut__sig_watch(int slot, int signo) {
  uint64_t bit = (uint64_t)1 << (signo - 1);
  take_lock();
  /* Watched before the disposition is ours, so no signal caught by our
   * handler finds nobody to wake. */
  bool again = atomic_fetch_or(&slots[slot].watched, bit) & bit;
  struct sigaction cur;
  int err = 0;
  if (sigaction(signo, NULL, &cur) != 0) {
    err = -errno;
  } else if (!is_ours(&cur)) {
    /* Not in place: the first watcher, or somebody replaced ours since
     * (then theirs is what the last removal restores; asyncio installs
     * its handler at every add as well). */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigfillset(&sa.sa_mask);
    /* asyncio's siginterrupt(sig, False); SA_ONSTACK honours an alternate
     * stack the application set up. */
    sa.sa_flags = SA_RESTART | SA_ONSTACK;
    if (sigaction(signo, &sa, NULL) != 0) {
      err = -errno;
    } else {
      saved[signo] = cur;
      atomic_fetch_or(&installed, bit);
    }
  }
  if (err) {
    if (!again)
      atomic_fetch_and(&slots[slot].watched, ~bit);
    pthread_mutex_unlock(&lock);
    if (err == -EINVAL)
      return fut__error(err,
                        "fut_loop_add_signal_handler: signal %d cannot be "
                        "caught (reserved by the C library?)",
                        signo);
    return fut__error(err, "fut_loop_add_signal_handler: sigaction(%d): %s",
                      signo, strerror(-err));
  }
  if (!again)
    watchers[signo]++;
  pthread_mutex_unlock(&lock);
  return 0;
}

void fut__sig_unwatch(int slot, int signo) {
  take_lock();
  FUT__ASSERT(watchers[signo] > 0);
  /* The old disposition first: a signal caught from now on gets it, not a
   * handler with nobody to wake. */
  if (--watchers[signo] == 0) {
    struct sigaction cur;
    if (sigaction(signo, NULL, &cur) == 0 && is_ours(&cur))
      sigaction(signo, &saved[signo], NULL);
    atomic_fetch_and(&installed, ~((uint64_t)1 << (signo - 1)));
  }
  atomic_fetch_and(&slots[slot].watched, ~((uint64_t)1 << (signo - 1)));
  pthread_mutex_unlock(&lock);
}

void fut__sig_child_reset(void) {
  uint64_t bits = atomic_load(&installed);
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  while (bits) {
    int signo = __builtin_ctzll(bits) + 1;
    bits &= bits - 1;
    struct sigaction cur;
    if (sigaction(signo, NULL, &cur) == 0 && is_ours(&cur))
      sigaction(signo, &dfl, NULL);
  }
}
