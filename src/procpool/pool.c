/* The process pool object: options, creation, submit, shutdown.  The work
 * happens on the pool's manager thread (manager.c); workers come
 * from the fork server (forkserver.c). */
#include "procpool/internal.h"

#include <sched.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEFAULT_MAX_FRAME ((size_t)1 << 30)

void fut_process_pool_opts_init(fut_process_pool_opts_t *opts) {
  if (opts)
    memset(opts, 0, sizeof *opts);
}

static unsigned ncpu(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0)
      return (unsigned)n;
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (unsigned)n : 1;
}

/* ---- the pool fds, closed in the child of a fork ------------------------ */

/* A bitmap of fd numbers (static: recording never allocates, so it cannot
 * fail for memory; 2^20 is Linux's default ceiling for RLIMIT_NOFILE,
 * fs.nr_open) and the highest word in use. */
#define FD_BITS (1u << 20)
static uint64_t pool_fds[FD_BITS / 64];
static size_t pool_fds_words; /* words [0, pool_fds_words) may be non-zero */
static pthread_mutex_t pool_fds_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t pool_fds_once = PTHREAD_ONCE_INIT;

static void fds_prepare(void) {
  pthread_mutex_lock(&pool_fds_lock);
}

static void fds_parent(void) {
  pthread_mutex_unlock(&pool_fds_lock);
}

/* The child of a plain fork(): one thread, the set consistent (the prepare
 * handler held its lock).  Only close(2), which is async-signal-safe,
 * plain memory writes and the unlock.  The pool objects in the child are marked
 * forked by the base layer's fork counter: they never touch these numbers
 * again. */
static void fds_child(void) {
  for (size_t i = 0; i < pool_fds_words; i++) {
    for (uint64_t w = pool_fds[i]; w; w &= w - 1)
      close((int)(i * 64 + (size_t)__builtin_ctzll(w)));
    pool_fds[i] = 0;
  }
  pool_fds_words = 0;
  /* A default mutex: unlocking it in the child that the prepare handler
   * locked in the parent is the pthread_atfork pattern (and what TSan
   * expects; re-initialising it behind its back reads as a double lock). */
  pthread_mutex_unlock(&pool_fds_lock);
}

/* A procpool-level handler rather than a base-layer hook: only this layer
 * knows its descriptors, and registering on first use keeps programs
 * without a pool (and the fork server, which never makes one) free of it. */
static void fds_register_atfork(void) {
  pthread_atfork(fds_prepare, fds_parent, fds_child);
}

/* Under the lock.  false when fd is beyond the bitmap. */
static bool fd_record(int fd) {
  if (fd < 0 || (unsigned)fd >= FD_BITS)
    return false;
  size_t i = (size_t)fd / 64;
  pool_fds[i] |= (uint64_t)1 << (fd % 64);
  if (i + 1 > pool_fds_words)
    pool_fds_words = i + 1;
  return true;
}

static void fd_unrecord(int fd) {
  if (fd >= 0 && (unsigned)fd < FD_BITS)
    pool_fds[fd / 64] &= ~((uint64_t)1 << (fd % 64));
}

int fut__pp_socketpair(int type, int sv[2]) {
  pthread_once(&pool_fds_once, fds_register_atfork);
  pthread_mutex_lock(&pool_fds_lock);
  int err = 0;
  if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) < 0) {
    err = -errno;
  } else if (!fd_record(sv[0]) || !fd_record(sv[1])) {
    fd_unrecord(sv[0]);
    close(sv[0]);
    close(sv[1]);
    err = -EMFILE;
  }
  pthread_mutex_unlock(&pool_fds_lock);
  if (err)
    sv[0] = sv[1] = -1;
  return err;
}

int fut__pp_eventfd(void) {
  pthread_once(&pool_fds_once, fds_register_atfork);
  pthread_mutex_lock(&pool_fds_lock);
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) {
    fd = -errno;
  } else if (!fd_record(fd)) {
    close(fd);
    fd = -EMFILE;
  }
  pthread_mutex_unlock(&pool_fds_lock);
  return fd;
}

void fut__pp_fd_forget(int fd) {
  pthread_mutex_lock(&pool_fds_lock);
  fd_unrecord(fd);
  pthread_mutex_unlock(&pool_fds_lock);
}

void fut__pp_close(int fd) {
  if (fd < 0)
    return;
  pthread_mutex_lock(&pool_fds_lock);
  fd_unrecord(fd);
  close(fd);
  pthread_mutex_unlock(&pool_fds_lock);
}

/* ---- naming cache ------------------------------------------------------ */

/* dl_iterate_phdr takes the loader lock and walks every module; a job
 * function is usually submitted many times, so remember a few. */
#define NAME_CACHE 8
static struct {
  uintptr_t fn; /* 0 = empty slot */
  uint64_t off;
  char *module; /* malloc'd */
  size_t module_len;
} name_cache[NAME_CACHE];
static unsigned name_cache_next; /* round-robin victim */
static pthread_mutex_t name_lock = PTHREAD_MUTEX_INITIALIZER;

/* Names fn; *module is a malloc'd copy the caller frees. */
static int name_fn(uintptr_t fn, char **module, size_t *module_len,
                   uint64_t *off) {
  pthread_mutex_lock(&name_lock);
  for (unsigned i = 0; i < NAME_CACHE; i++) {
    if (name_cache[i].fn == fn) {
      *off = name_cache[i].off;
      *module_len = name_cache[i].module_len;
      *module = fut__malloc(*module_len + 1);
      if (*module)
        memcpy(*module, name_cache[i].module, *module_len + 1);
      pthread_mutex_unlock(&name_lock);
      return *module ? 0 : fut__error(-ENOMEM, "process pool: out of memory");
    }
  }
  pthread_mutex_unlock(&name_lock);

  struct fut__fn_name *nm = fut__malloc(sizeof *nm);
  if (!nm)
    return fut__error(-ENOMEM, "process pool: out of memory");
  int err = fut__pp_name_fn(fn, nm);
  if (err) {
    fut__free(nm);
    return err;
  }
  *module = fut__strdup(nm->module);
  *module_len = nm->module_len;
  *off = nm->off;
  char *cached = fut__strdup(nm->module);
  fut__free(nm);
  if (!*module) {
    fut__free(cached);
    return fut__error(-ENOMEM, "process pool: out of memory");
  }
  if (cached) {
    pthread_mutex_lock(&name_lock);
    unsigned v = name_cache_next++ % NAME_CACHE;
    fut__free(name_cache[v].module);
    name_cache[v].fn = fn;
    name_cache[v].off = *off;
    name_cache[v].module = cached;
    name_cache[v].module_len = *module_len;
    pthread_mutex_unlock(&name_lock);
  }
  return 0;
}

/* ---- creation ---------------------------------------------------------- */

/* In a forked child, a pool made before the fork has no manager thread,
 * and its lock may be frozen in the state a parent thread left it in: the
 * child must neither queue work nor wait. */
static bool pp_forked(const fut_process_pool_t *p) {
  return p->fork_gen != fut__fork_generation();
}

void fut__pp_free(fut_process_pool_t *p) {
  pthread_mutex_destroy(&p->lock);
  pthread_cond_destroy(&p->cv);
  fut__pp_close(p->evfd);
  fut__free(p->initarg);
  fut__free(p);
}

static int check_opts(const fut_process_pool_opts_t *o) {
  if (o->max_workers > 4096)
    return fut__error(-EINVAL, "fut_process_pool_create: max_workers %u > 4096",
                      o->max_workers);
  if (!o->initializer && (o->initarg || o->initarg_len))
    return fut__error(-EINVAL, "fut_process_pool_create: initarg without an "
                               "initializer");
  if (!o->initarg && o->initarg_len)
    return fut__error(-EINVAL,
                      "fut_process_pool_create: NULL initarg of %zu bytes",
                      o->initarg_len);
  if (o->initarg_len > FUT__CTL_MAX_PAYLOAD - 4200)
    return fut__error(FUT_E_TOO_BIG,
                      "fut_process_pool_create: initarg of %zu bytes "
                      "exceeds the limit of %u",
                      o->initarg_len, FUT__CTL_MAX_PAYLOAD - 4200);
  return 0;
}

/* Sizes and caps from the options; the initializer named (module, offset)
 * and a copy of its argument. */
static int apply_opts(fut_process_pool_t *p, const fut_process_pool_opts_t *o) {
  p->max_workers = o->max_workers ? o->max_workers : ncpu();
  p->max_tasks = o->max_tasks_per_child;
  p->max_frame = o->max_frame ? o->max_frame : DEFAULT_MAX_FRAME;
  /* A cap no allocation can reach anyway; keeps `max_frame + aux` frame
   * checks from overflowing and the value positive as the server's int64. */
  if (p->max_frame > SIZE_MAX / 4)
    p->max_frame = SIZE_MAX / 4;
  if (!o->initializer)
    return 0;
  int err = fut__pp_name_fn((uintptr_t)o->initializer, &p->init_name);
  if (err)
    return err;
  p->has_init = true;
  if (o->initarg_len) {
    p->initarg = fut__malloc(o->initarg_len);
    if (!p->initarg)
      return fut__error(-ENOMEM, "fut_process_pool_create: out of memory");
    memcpy(p->initarg, o->initarg, o->initarg_len);
    p->initarg_len = o->initarg_len;
  }
  return 0;
}

/* The lock, the condition variable (on CLOCK_MONOTONIC, as shutdown's
 * deadline) and the manager's doorbell. */
static int init_sync(fut_process_pool_t *p) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->cv, &ca);
  pthread_condattr_destroy(&ca);
  atomic_init(&p->server_pid, 0);
  atomic_init(&p->nworkers, 0u);

  int fd = fut__pp_eventfd();
  if (fd < 0)
    return fut__error(fd, "fut_process_pool_create: eventfd: %s",
                      strerror(-fd));
  p->evfd = fd;
  return 0;
}

/* Starts the manager thread and waits until it has started the fork
 * server; when that fails, joins the thread and returns its error. */
static int start_manager(fut_process_pool_t *p) {
  /* The manager takes no signal: the user's handlers run elsewhere and its
   * poll sees no EINTR. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int err = pthread_create(&p->thread, NULL, fut__pp_manager, p);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (err)
    return fut__error(-err, "fut_process_pool_create: pthread_create: %s",
                      strerror(err));
  pthread_mutex_lock(&p->lock);
  while (!p->start_done)
    pthread_cond_wait(&p->cv, &p->lock);
  err = p->start_err;
  pthread_mutex_unlock(&p->lock);
  if (err) {
    pthread_join(p->thread, NULL);
    return fut__error(err, "%s", p->broken_msg);
  }
  return 0;
}

int fut_process_pool_create(const fut_process_pool_opts_t *opts,
                            fut_process_pool_t **out) {
  if (!out)
    return fut__error(-EINVAL, "fut_process_pool_create: NULL out");
  *out = NULL;
  fut_process_pool_opts_t o;
  fut_process_pool_opts_init(&o);
  if (opts)
    o = *opts;
  int err = check_opts(&o);
  if (err)
    return err;

  fut_process_pool_t *p = fut__calloc(1, sizeof *p);
  if (!p)
    return fut__error(-ENOMEM, "fut_process_pool_create: out of memory");
  p->evfd = -1;
  p->ctl = -1;
  p->fork_gen = fut__fork_generation();
  fut__pp_q_init(&p->pending);
  fut__pp_q_init(&p->retry);
  fut__q_init(&p->workers);
  err = apply_opts(p, &o);
  if (err) {
    fut__free(p);
    return err;
  }
  err = init_sync(p);
  if (!err)
    err = start_manager(p);
  if (err) {
    fut__pp_free(p);
    return err;
  }
  *out = p;
  return 0;
}

/* ---- submit ------------------------------------------------------------ */

int fut__pp_ring(fut_process_pool_t *p) {
  if (p->sleeping && !p->rung) {
    uint64_t one = 1;
    /* EINTR is retried: `rung` set without a write would leave the
     * manager asleep in poll (no timeout) and every later ring skipped.
     * EAGAIN: the counter is saturated, so the manager is woken. */
    for (;;) {
      if (write(p->evfd, &one, sizeof one) >= 0 || errno == EAGAIN)
        break;
      if (errno != EINTR)
        return -errno; /* not rung: the next ring tries again */
    }
    p->rung = true;
  }
  return 0;
}

int fut_process_pool_submit(fut_process_pool_t *p, fut_process_pool_job_fn fn,
                            const void *arg, size_t len,
                            fut_process_pool_start_cb start,
                            fut_process_pool_done_cb done, void *ud) {
  return fut__pp_submit_kind(p, FUT__PP_KIND_PROC, (uintptr_t)fn, arg, len,
                             start, done, ud);
}

/* A job whose JOB frame (header, argument bytes, module name) is ready but
 * for its id; the caller sets the callbacks. */
static int new_job(int kind, uintptr_t fn, const void *arg, size_t len,
                   struct fut__pp_job **out) {
  char *module = NULL;
  size_t mlen = 0;
  uint64_t off = 0;
  int err = name_fn(fn, &module, &mlen, &off);
  if (err)
    return err;
  struct fut__pp_job *j = fut__malloc(sizeof *j + len + mlen);
  if (!j) {
    fut__free(module);
    return fut__error(-ENOMEM,
                      "fut_process_pool_submit: out of memory for %zu "
                      "argument bytes",
                      len);
  }
  j->started = false;
  j->hdr = (struct fut__pp_hdr){.magic = FUT__PP_MAGIC,
                                .type = FUT__PP_JOB,
                                .len = len + mlen,
                                .off = off,
                                .err = kind,
                                .aux = (uint32_t)mlen};
  if (len)
    memcpy(j->payload, arg, len);
  memcpy(j->payload + len, module, mlen);
  fut__free(module);
  *out = j;
  return 0;
}

int fut__pp_submit_kind(fut_process_pool_t *p, int kind, uintptr_t fn,
                        const void *arg, size_t len,
                        fut_process_pool_start_cb start,
                        fut_process_pool_done_cb done, void *ud) {
  if (!p || !fn || !done || (!arg && len))
    return fut__error(-EINVAL, "fut_process_pool_submit: %s",
                      !p      ? "NULL pool"
                      : !fn   ? "NULL function"
                      : !done ? "NULL done callback"
                              : "NULL argument with a length");
  if (pp_forked(p))
    return fut__error(FUT_E_FORKED,
                      "fut_process_pool_submit: the process pool "
                      "was created before a fork: its manager thread does "
                      "not exist in this child");
  if (len > p->max_frame)
    return fut__error(FUT_E_TOO_BIG,
                      "fut_process_pool_submit: argument of %zu "
                      "bytes exceeds max_frame (%zu)",
                      len, p->max_frame);
  struct fut__pp_job *j = NULL;
  int err = new_job(kind, fn, arg, len, &j);
  if (err)
    return err;
  j->start = start;
  j->done = done;
  j->ud = ud;

  pthread_mutex_lock(&p->lock);
  if (p->shutdown || p->broken) {
    err = p->broken ? FUT_E_BROKEN_POOL : FUT_E_SHUTDOWN;
    if (p->broken)
      fut__error(err, "fut_process_pool_submit: %s", p->broken_msg);
    else
      fut__error(err, "fut_process_pool_submit: the pool was shut down");
    pthread_mutex_unlock(&p->lock);
    fut__free(j);
    return err;
  }
  j->hdr.id = ++p->next_id;
  fut__pp_q_push(&p->pending, j);
  int rerr = fut__pp_ring(p);
  if (FUT__UNLIKELY(rerr)) {
    /* The manager would not learn of the job: take it back. */
    fut__q_remove(&j->node);
    p->pending.len--;
    pthread_mutex_unlock(&p->lock);
    fut__free(j);
    return fut__error(rerr,
                      "fut_process_pool_submit: waking the pool's "
                      "manager: %s",
                      fut_strerror(rerr));
  }
  pthread_mutex_unlock(&p->lock);
  return 0;
}

/* ---- shutdown ------------------------------------------------------------ */

static int wait_finished(fut_process_pool_t *p, uint64_t timeout_ns);

int fut_process_pool_shutdown(fut_process_pool_t *p, bool wait,
                              bool cancel_pending, uint64_t timeout_ns) {
  if (!p)
    return fut__error(-EINVAL, "fut_process_pool_shutdown: NULL pool");
  if (pp_forked(p)) /* nothing of the pool runs in this child */
    return 0;
  if (wait && pthread_equal(pthread_self(), p->thread))
    return fut__error(-EDEADLK,
                      "fut_process_pool_shutdown: waiting from the "
                      "pool's own completion callback would deadlock");
  struct fut__pp_jobq cancelled;
  fut__pp_q_init(&cancelled);
  pthread_mutex_lock(&p->lock);
  p->shutdown = true;
  if (cancel_pending)
    fut__pp_q_move(&cancelled, &p->pending);
  (void)fut__pp_ring(p); /* after EINTR only EBADF-like bugs fail */
  pthread_mutex_unlock(&p->lock);
  for (struct fut__pp_job *j; (j = fut__pp_q_pop(&cancelled));) {
    j->done(j->ud, -ECANCELED, NULL, 0, "cancelled by the pool's shutdown");
    fut__free(j);
  }
  return wait ? wait_finished(p, timeout_ns) : 0;
}

/* Waits until the manager finished (at most timeout_ns; then abandons the
 * jobs, which kills their workers, and waits for the teardown) and joins
 * it unless someone else does. */
static int wait_finished(fut_process_pool_t *p, uint64_t timeout_ns) {
  int ret = 0;
  struct timespec dl;
  clock_gettime(CLOCK_MONOTONIC, &dl);
  if (timeout_ns != UINT64_MAX) {
    uint64_t ns = (uint64_t)dl.tv_nsec + timeout_ns % 1000000000u;
    dl.tv_sec += (time_t)(timeout_ns / 1000000000u + ns / 1000000000u);
    dl.tv_nsec = (long)(ns % 1000000000u);
  }
  pthread_mutex_lock(&p->lock);
  while (!p->finished) {
    if (timeout_ns == UINT64_MAX || p->abandon) {
      pthread_cond_wait(&p->cv, &p->lock);
    } else if (pthread_cond_timedwait(&p->cv, &p->lock, &dl) == ETIMEDOUT &&
               !p->finished) {
      p->abandon = true;
      (void)fut__pp_ring(p);
      ret = fut__error(-ETIMEDOUT,
                       "fut_process_pool_shutdown: jobs still "
                       "running after the timeout were abandoned and their "
                       "workers killed");
    }
  }
  /* The timeout expired, but the teardown failed no job and killed no
   * worker in its start-up: nothing was abandoned (the pool was idle, its
   * workers dead or never started), so the shutdown completed. */
  if (ret == -ETIMEDOUT && p->torn == 0)
    ret = fut__error(0, "%s", "");
  bool join = !p->joined;
  p->joined = true;
  pthread_mutex_unlock(&p->lock);
  if (join)
    pthread_join(p->thread, NULL);
  return ret;
}

void fut__pp_detach(fut_process_pool_t *p) {
  pthread_mutex_lock(&p->lock);
  if (!p->finished) {
    pthread_t t = p->thread;
    bool detach = !p->joined;
    p->joined = true;
    p->orphaned = true;
    pthread_mutex_unlock(&p->lock);
    /* From here the manager may free p at any moment. */
    if (detach)
      pthread_detach(t);
    return;
  }
  bool join = !p->joined;
  p->joined = true;
  pthread_mutex_unlock(&p->lock);
  if (join)
    pthread_join(p->thread, NULL);
  fut__pp_free(p);
}

void fut_process_pool_destroy(fut_process_pool_t *p) {
  if (!p)
    return;
  if (pp_forked(p)) {
    /* Our copy of the memory only: the lock and condition variable may be
     * frozen mid-operation, queued jobs never complete here, and the
     * doorbell and sockets were closed in this child at the fork (their
     * numbers may name other files by now). */
    fut__free(p->initarg);
    fut__free(p);
    return;
  }
  if (pthread_equal(pthread_self(), p->thread)) {
    /* From a completion callback: waiting would deadlock; the manager
     * frees the pool once its last job is done. */
    (void)fut_process_pool_shutdown(p, false, false, 0);
    fut__pp_detach(p);
    return;
  }
  (void)fut_process_pool_shutdown(p, true, false, UINT64_MAX);
  fut__pp_free(p);
}

pid_t fut_process_pool_server_pid(const fut_process_pool_t *p) {
  return p ? atomic_load(&((fut_process_pool_t *)p)->server_pid) : 0;
}

unsigned fut_process_pool_nworkers(const fut_process_pool_t *p) {
  return p ? atomic_load(&((fut_process_pool_t *)p)->nworkers) : 0;
}
