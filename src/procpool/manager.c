/* The process pool's manager thread.  It owns every socket of the pool —
 * the control socket to the fork server and one stream socket per worker —
 * and multiplexes them with poll(2), so the submitting threads (a loop, a
 * plain program) never block on a worker and a 64 MiB frame moves in
 * non-blocking pieces.  Completion callbacks run here.
 *
 * This file holds the thread's life (start, the serving loop, the graceful
 * end, teardown), the poll set, the control socket's messages and the
 * parent's record of each worker.  Which worker gets which job is
 * dispatch.c; reading what workers send is receive.c.
 *
 * Death: a worker's socket reaches EOF when it dies; its exit status comes
 * from the fork server (its parent, which reaps it) as a DIED message.
 * Once both are in, the job at the head of its in-flight FIFO — the one it
 * was running — fails with FUT_E_WORKER_DIED naming the pid and status;
 * jobs queued behind it never started and go back to the front of the
 * queue. */
#include "procpool/internal.h"

#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define SOCKBUF (4 << 20) /* asked; the kernel clamps it */

/* ---- failing jobs, breaking the pool ------------------------------------ */

void fut__pp_job_fail(struct fut__pp_job *j, int err, const char *msg) {
  j->done(j->ud, err, NULL, 0, msg);
  fut__free(j);
}

void fut__pp_fail_queue(struct fut__pp_jobq *q, int err, const char *msg) {
  for (struct fut__pp_job *j; (j = fut__pp_q_pop(q));)
    fut__pp_job_fail(j, err, msg);
}

void fut__pp_set_broken(fut_process_pool_t *p, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&p->lock);
  bool was = p->broken;
  p->broken = true;
  if (!was)
    snprintf(p->broken_msg, sizeof p->broken_msg, "%s", msg);
  struct fut__pp_jobq q;
  fut__pp_q_init(&q);
  fut__pp_q_move(&q, &p->pending);
  pthread_mutex_unlock(&p->lock);
  fut__pp_fail_queue(&q, FUT_E_BROKEN_POOL, msg);
  fut__pp_fail_queue(&p->retry, FUT_E_BROKEN_POOL, msg);
}

bool fut__pp_is_broken(fut_process_pool_t *p) {
  pthread_mutex_lock(&p->lock);
  bool b = p->broken;
  pthread_mutex_unlock(&p->lock);
  return b;
}

/* ---- workers ----------------------------------------------------------- */

static void close_worker_fd(fut_process_pool_t *p, struct fut__pp_worker *w) {
  if (w->fd < 0)
    return;
  fut__pp_close(w->fd);
  w->fd = -1;
  if (w->state == FUT__W_LIVE) {
    w->state = FUT__W_CLOSED;
    p->nlive--;
    atomic_fetch_sub(&p->nworkers, 1u);
  }
}

static void free_worker(fut_process_pool_t *p, struct fut__pp_worker *w) {
  fut__q_remove(&w->node);
  close_worker_fd(p, w);
  fut__free(w->rx);
  fut__free(w->big);
  fut__free(w);
}

/* A worker could not be made for a local, maybe passing reason (memory,
 * the fd limit, fork's process limit): the pool is not broken by it.  No
 * new try before a back-off (1 ms, doubling up to SPAWN_BACKOFF_MAX); with
 * other workers alive, they serve meanwhile and any event ends the
 * back-off early.  With none, serve() fails the jobs waiting (only them)
 * once the failures have lasted SPAWN_GIVE_UP_NS; later jobs try again. */
#define SPAWN_BACKOFF_MIN ((uint64_t)1000000u)   /* 1 ms */
#define SPAWN_BACKOFF_MAX ((uint64_t)200000000u) /* 200 ms */
#define SPAWN_GIVE_UP_NS ((uint64_t)2000000000u) /* 2 s */

static void spawn_failed(fut_process_pool_t *p, const char *what, int err) {
  uint64_t now = fut__now();
  if (p->spawn_fails++ == 0)
    p->spawn_first_fail = now;
  unsigned shift = p->spawn_fails - 1 < 16 ? p->spawn_fails - 1 : 16;
  uint64_t backoff = SPAWN_BACKOFF_MIN << shift;
  if (backoff > SPAWN_BACKOFF_MAX)
    backoff = SPAWN_BACKOFF_MAX;
  p->spawn_blocked = true;
  p->spawn_retry_at = now + backoff;
  p->spawn_err = err;
  p->spawn_what = what;
}

/* A worker was made: the next failure starts a new back-off. */
static void spawn_succeeded(fut_process_pool_t *p) {
  p->spawn_fails = 0;
}

/* Called by serve() after dispatching: when no worker lives or is being
 * made and making one has failed for SPAWN_GIVE_UP_NS, the jobs waiting
 * cannot run: they fail with the cause; the pool stays usable. */
static void spawn_give_up(fut_process_pool_t *p) {
  if (!p->spawn_fails || p->nlive > 0 ||
      fut__now() - p->spawn_first_fail < SPAWN_GIVE_UP_NS)
    return;
  char msg[256];
  snprintf(msg, sizeof msg,
           "process pool: cannot make a worker: %s: %s (%u tries over %llu "
           "ms)",
           p->spawn_what, fut_strerror(p->spawn_err), p->spawn_fails,
           (unsigned long long)((fut__now() - p->spawn_first_fail) / 1000000u));
  int err = p->spawn_err;
  p->spawn_fails = 0;
  p->spawn_blocked = false;
  struct fut__pp_jobq q;
  fut__pp_q_init(&q);
  fut__pp_q_move(&q, &p->retry);
  pthread_mutex_lock(&p->lock);
  fut__pp_q_move(&q, &p->pending);
  pthread_mutex_unlock(&p->lock);
  fut__pp_fail_queue(&q, err, msg);
}

/* How long poll may sleep: until the spawn back-off ends, or forever. */
static int poll_timeout(const fut_process_pool_t *p) {
  if (!p->spawn_blocked)
    return -1;
  uint64_t now = fut__now();
  if (now >= p->spawn_retry_at)
    return 0;
  return (int)((p->spawn_retry_at - now + 999999u) / 1000000u);
}

static atomic_uint fail_next_spawn;

void fut__pp_fail_next_spawn(unsigned n) {
  atomic_store(&fail_next_spawn, n);
}

/* Consumes one injected failure, if any. */
static bool injected_spawn_failure(void) {
  unsigned n = atomic_load(&fail_next_spawn);
  while (n > 0 && !atomic_compare_exchange_weak(&fail_next_spawn, &n, n - 1)) {
  }
  return n > 0;
}

struct fut__pp_worker *fut__pp_spawn(fut_process_pool_t *p) {
  struct fut__pp_worker *w = fut__calloc(1, sizeof *w);
  char *rx = fut__malloc(FUT__PP_RX_CAP);
  int sv[2] = {-1, -1};
  if (!w || !rx) {
    fut__free(w);
    fut__free(rx);
    spawn_failed(p, "out of memory", -ENOMEM);
    return NULL;
  }
  int e =
      injected_spawn_failure() ? -EMFILE : fut__pp_socketpair(SOCK_STREAM, sv);
  if (e) {
    fut__free(w);
    fut__free(rx);
    spawn_failed(p, "socketpair", e);
    return NULL;
  }
  int sz = SOCKBUF;
  for (int i = 0; i < 2; i++) {
    setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  }
  fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
  w->wid = ++p->next_wid;
  struct fut__ctl_msg m = {.type = FUT__CTL_SPAWN, .a = w->wid};
  int err = fut__pp_ctl_send(p->ctl, &m, NULL, 0, sv[1]);
  fut__pp_close(sv[1]);
  if (err) {
    fut__pp_close(sv[0]);
    fut__free(w);
    fut__free(rx);
    fut__pp_set_broken(p, "process pool: the fork server is gone (%s)",
                       fut_strerror(err));
    return NULL;
  }
  w->fd = sv[0];
  w->rx = rx;
  fut__pp_q_init(&w->inflight);
  w->state = FUT__W_LIVE;
  p->nspawning++;
  fut__q_insert_head(&p->workers, &w->node);
  p->nlive++;
  atomic_fetch_add(&p->nworkers, 1u);
  return w;
}

static void kill_worker(fut_process_pool_t *p, struct fut__pp_worker *w) {
  if (w->pid > 0) {
    struct fut__ctl_msg m = {.type = FUT__CTL_KILL, .b = (uint64_t)w->pid};
    (void)fut__pp_ctl_send(p->ctl, &m, NULL, 0, -1);
  }
  close_worker_fd(p, w);
}

static void worker_readable(fut_process_pool_t *p, struct fut__pp_worker *w) {
  int r = fut__pp_receive(p, w);
  if (r == 1) {
    close_worker_fd(p, w);
  } else if (r < 0) {
    w->kill_reason = r == -ENOMEM ? " (killed: no memory for its result)"
                                  : " (killed after a protocol error)";
    kill_worker(p, w);
  }
}

/* ---- deaths, and the fork server's reports ----------------------------- */

/* Puts jobs that never started in a worker back at the front of the
 * queue, in their order. */
static void requeue(fut_process_pool_t *p, struct fut__pp_jobq *q) {
  fut__pp_release_claims(p, q);
  fut__pp_q_move_front(&p->retry, q);
}

/* The worker is gone and reaped: settle its jobs and forget it. */
static void finalize(fut_process_pool_t *p, struct fut__pp_worker *w) {
  bool clean = WIFEXITED(w->status) && WEXITSTATUS(w->status) == 0;
  if (!w->hello && (w->inflight.len || !clean)) {
    /* It died during start-up (its initializer crashed, say): none of its
     * jobs started.  As Python's ProcessPoolExecutor, a worker that dies
     * in its initializer breaks the pool: the next one would likely die
     * the same way.  (A clean exit with no job is our own close during
     * shutdown.) */
    char st[96], msg[256];
    fut__pp_describe_status(w->status, st, sizeof st);
    snprintf(msg, sizeof msg,
             "worker process %d %s during start-up (in "
             "its initializer), before running any job%s",
             (int)w->pid, st, w->kill_reason ? w->kill_reason : "");
    fut__pp_fail_queue(&w->inflight, FUT_E_BROKEN_POOL, msg);
    fut__pp_set_broken(p, "process pool: %s", msg);
    free_worker(p, w);
    return;
  }
  struct fut__pp_job *j = fut__pp_q_pop(&w->inflight);
  if (j) {
    char st[96], msg[256];
    fut__pp_describe_status(w->status, st, sizeof st);
    snprintf(msg, sizeof msg, "worker process %d %s while running the job%s",
             (int)w->pid, st, w->kill_reason ? w->kill_reason : "");
    fut__pp_job_fail(j, FUT_E_WORKER_DIED, msg);
  }
  /* The rest never started in that worker: run them elsewhere, first. */
  requeue(p, &w->inflight);
  free_worker(p, w);
}

static void ctl_readable(fut_process_pool_t *p) {
  struct fut__ctl_msg m;
  int err = fut__pp_ctl_recv(p->ctl, &m, NULL, 0, NULL, NULL);
  if (err == -EAGAIN || err == -EINTR)
    return;
  if (err) {
    fut__pp_close(p->ctl);
    p->ctl = -1;
    fut__pp_set_broken(p, "process pool: the fork server died (%s)",
                       fut_strerror(err));
    return;
  }
  if (m.type == FUT__CTL_SPAWNED) {
    for (struct fut__pp_worker *w = fut__pp_first_worker(p); w;
         w = fut__pp_next_worker(p, w))
      if (w->wid == m.a) {
        p->nspawning--;
        if (m.b == 0) {
          /* fork failed (EAGAIN: a process limit?): its jobs never started;
           * the other workers take them, or the pool is broken. */
          close_worker_fd(p, w);
          requeue(p, &w->inflight);
          free_worker(p, w);
          spawn_failed(p, "fork", (int)m.c);
        } else {
          w->pid = (pid_t)m.b;
          spawn_succeeded(p);
        }
        break;
      }
  } else if (m.type == FUT__CTL_DIED) {
    for (struct fut__pp_worker *w = fut__pp_first_worker(p); w;
         w = fut__pp_next_worker(p, w))
      if (w->pid == (pid_t)m.b) {
        w->dead = true;
        w->status = (int)m.c;
        /* Everything it wrote is in the socket now: take it first. */
        if (w->fd >= 0) {
          /* Reads to EOF, or to EAGAIN when a child the job forked still
           * holds the socket: nothing more will come from the worker. */
          worker_readable(p, w);
          close_worker_fd(p, w);
        }
        finalize(p, w);
        break;
      }
  }
}

/* ---- the thread -------------------------------------------------------- */

static void poll_reserve(fut_process_pool_t *p, size_t n);

/* The claim table (internal.h), sized so that a queued job's word is
 * almost never still held by an older queued job: its memfd (for CONFIG)
 * or -1 without one — then no job is ever queued behind a running one. */
static int claims_create(fut_process_pool_t *p) {
  size_t n = (size_t)p->max_workers * 32;
  if (n < 64)
    n = 64;
  int fd = memfd_create("fut-procpool-claims", MFD_CLOEXEC);
  if (fd < 0)
    return -1;
  void *t = MAP_FAILED;
  if (ftruncate(fd, (off_t)(n * sizeof *p->claims)) == 0)
    t = mmap(NULL, n * sizeof *p->claims, PROT_READ | PROT_WRITE, MAP_SHARED,
             fd, 0);
  if (t == MAP_FAILED) {
    close(fd);
    return -1;
  }
  p->claims = t;
  p->nclaims = n;
  return fd;
}

static int start(fut_process_pool_t *p) {
  pid_t pid;
  int err = fut__forkserver_start(&p->ctl, &pid);
  if (err)
    return err;
  atomic_store(&p->server_pid, pid);
  poll_reserve(p, 2 * ((size_t)p->max_workers + 2));
  if (!p->pcap)
    return fut__error(-ENOMEM, "process pool: out of memory");
  char *pl = fut__malloc(FUT__CTL_MAX_PAYLOAD);
  if (!pl)
    return fut__error(-ENOMEM, "process pool: out of memory");
  int mfd = claims_create(p);
  struct fut__ctl_msg m = {.type = FUT__CTL_CONFIG,
                           .a = p->max_tasks,
                           .c = (int64_t)p->max_frame,
                           .d = p->nclaims,
                           .has_init = p->has_init};
  size_t n = 0;
  if (p->has_init) {
    m.b = p->init_name.off;
    memcpy(pl, p->init_name.module, p->init_name.module_len + 1);
    n = p->init_name.module_len + 1;
    if (p->initarg_len)
      memcpy(pl + n, p->initarg, p->initarg_len);
    n += p->initarg_len;
  }
  err = fut__pp_ctl_send(p->ctl, &m, pl, n, mfd);
  fut__free(pl);
  if (mfd >= 0)
    close(mfd);
  if (err)
    return fut__error(err, "process pool: configuring the fork server: %s",
                      fut_strerror(err));
  return 0;
}

static void claims_free(fut_process_pool_t *p) {
  if (p->claims)
    munmap((void *)p->claims, p->nclaims * sizeof *p->claims);
  p->claims = NULL;
  p->nclaims = 0;
}

static bool idle(fut_process_pool_t *p) {
  if (p->retry.len)
    return false;
  for (struct fut__pp_worker *w = fut__pp_first_worker(p); w;
       w = fut__pp_next_worker(p, w))
    if (w->inflight.len)
      return false;
  pthread_mutex_lock(&p->lock);
  bool empty = p->pending.len == 0;
  pthread_mutex_unlock(&p->lock);
  return empty;
}

/* Grows the poll arrays to n entries; keeps the old ones on failure. */
static void poll_reserve(fut_process_pool_t *p, size_t n) {
  if (n <= p->pcap)
    return;
  struct pollfd *np = fut__realloc(p->pfds, n * sizeof *np);
  if (np)
    p->pfds = np;
  struct fut__pp_worker **nw = fut__realloc(p->pws, n * sizeof *nw);
  if (nw)
    p->pws = nw;
  if (np && nw)
    p->pcap = n;
}

static int poll_all(fut_process_pool_t *p, bool with_evfd, int timeout) {
  size_t need = 2;
  for (struct fut__pp_worker *w = fut__pp_first_worker(p); w;
       w = fut__pp_next_worker(p, w))
    need++;
  /* Out of memory, it polls the sockets that fit, and the rest next time
   * round: never an error. */
  poll_reserve(p, need * 2);
  struct pollfd *pfds = p->pfds;
  size_t n = 0;
  if (with_evfd)
    pfds[n++] = (struct pollfd){p->evfd, POLLIN, 0};
  if (p->ctl >= 0)
    pfds[n++] = (struct pollfd){p->ctl, POLLIN, 0};
  size_t first_w = n;
  for (struct fut__pp_worker *w = fut__pp_first_worker(p); w && n < p->pcap;
       w = fut__pp_next_worker(p, w)) {
    if (w->fd < 0)
      continue;
    p->pws[n - first_w] = w;
    pfds[n++] = (struct pollfd){
        w->fd, (short)(POLLIN | (w->send_job ? POLLOUT : 0)), 0};
  }
  int r = poll(pfds, n, timeout);
  if (r <= 0)
    return r < 0 && errno != EINTR ? -errno : 0;
  size_t i = 0;
  if (with_evfd && pfds[i++].revents) {
    uint64_t v;
    /* EINTR retried; on any other failure the counter stays set and the
     * next poll returns at once to try again. */
    while (read(p->evfd, &v, sizeof v) < 0 && errno == EINTR) {
    }
  }
  bool ctl_ev = false;
  if (p->ctl >= 0 && pfds[i++].revents)
    ctl_ev = true;
  /* Worker sockets before the control socket: a DIED report must not
   * overtake data the worker wrote before dying. */
  for (size_t k = first_w; k < n; k++) {
    struct fut__pp_worker *w = p->pws[k - first_w];
    short ev = pfds[k].revents;
    if (!ev || w->fd < 0)
      continue;
    if (ev & POLLOUT)
      fut__pp_flush_out(w);
    if (ev & (POLLIN | POLLHUP | POLLERR))
      worker_readable(p, w);
  }
  if (ctl_ev && p->ctl >= 0)
    ctl_readable(p);
  return 0;
}

/* Ends everything: workers, server.  Jobs still held fail with err. */
static void teardown(fut_process_pool_t *p, int err, const char *msg) {
  size_t torn = p->retry.len;
  /* Closing a worker's socket is its signal to exit (EOF). */
  for (struct fut__pp_worker *w = fut__pp_first_worker(p); w;
       w = fut__pp_next_worker(p, w)) {
    /* A worker still in its start-up (its initializer, maybe stuck there)
     * is killed before it could serve: that counts as lost work too. */
    torn += w->inflight.len + (!w->hello && !w->dead ? 1u : 0u);
    fut__pp_fail_queue(&w->inflight, err, msg);
    w->send_job = NULL;
    close_worker_fd(p, w);
  }
  fut__pp_fail_queue(&p->retry, err, msg);
  pthread_mutex_lock(&p->lock);
  struct fut__pp_jobq q;
  fut__pp_q_init(&q);
  fut__pp_q_move(&q, &p->pending);
  /* A shutdown whose wait timed out reports -ETIMEDOUT only if this lost
   * jobs or a starting worker (pool.c, wait_finished). */
  p->torn += torn + q.len;
  pthread_mutex_unlock(&p->lock);
  fut__pp_fail_queue(&q, err, msg);
  /* Closing the control socket makes the server SIGKILL what is left,
   * reap it and exit. */
  if (p->ctl >= 0) {
    fut__pp_close(p->ctl);
    p->ctl = -1;
  }
  for (struct fut__pp_worker *w; (w = fut__pp_first_worker(p));)
    free_worker(p, w);
  pid_t pid = atomic_load(&p->server_pid);
  if (pid > 0) {
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    atomic_store(&p->server_pid, 0);
  }
}

/* Tells the constructor waiting in fut_process_pool_create how start() went. */
static void report_start(fut_process_pool_t *p, int err) {
  pthread_mutex_lock(&p->lock);
  p->start_done = true;
  p->start_err = err;
  if (err)
    snprintf(p->broken_msg, sizeof p->broken_msg, "%s", fut_last_error());
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->lock);
}

/* Undoes what a failed start() made; the constructor frees the pool. */
static void undo_start(fut_process_pool_t *p) {
  claims_free(p);
  fut__free(p->pfds);
  fut__free(p->pws);
  fut__pp_close(p->ctl);
  p->ctl = -1;
  pid_t pid = atomic_load(&p->server_pid);
  if (pid > 0)
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
}

/* Polls until a socket or the doorbell has news; the caller set sleeping
 * under the lock, so submit and shutdown ring the doorbell meanwhile. */
static int sleep_in_poll(fut_process_pool_t *p, int timeout) {
  int r = poll_all(p, true, timeout);
  pthread_mutex_lock(&p->lock);
  p->sleeping = false;
  p->rung = false;
  pthread_mutex_unlock(&p->lock);
  return r;
}

/* Dispatches jobs and handles events until a shutdown finds the pool idle
 * (0), or the pool breaks or is abandoned: then the code the jobs still
 * held fail with, and in *msg why. */
static int serve(fut_process_pool_t *p, const char **msg) {
  for (;;) {
    fut__pp_dispatch(p);
    spawn_give_up(p);
    pthread_mutex_lock(&p->lock);
    bool abandon = p->abandon, broken = p->broken, sd = p->shutdown;
    pthread_mutex_unlock(&p->lock);
    if (broken) {
      *msg = p->broken_msg;
      return FUT_E_BROKEN_POOL;
    }
    if (abandon) {
      *msg = "abandoned: the pool's shutdown timed out";
      return FUT_E_SHUTDOWN;
    }
    if (sd && idle(p))
      return 0;
    /* Sleep only if, under the lock submit and shutdown ring with, there
     * is nothing to do: a shutdown or abandon that came after the check
     * above found sleeping false and did not ring. */
    pthread_mutex_lock(&p->lock);
    bool more =
        fut__pp_dispatchable(p) || p->shutdown != sd || p->abandon || p->broken;
    p->sleeping = !more;
    pthread_mutex_unlock(&p->lock);
    if (more)
      continue;
    int r = sleep_in_poll(p, poll_timeout(p));
    /* The back-off ended, or (with workers alive) something happened:
     * worth a new try. */
    if (p->spawn_blocked && (p->nlive > 0 || fut__now() >= p->spawn_retry_at))
      p->spawn_blocked = false;
    if (r < 0)
      fut__pp_set_broken(p, "process pool: poll: %s", fut_strerror(r));
  }
}

/* The graceful end: idle workers exit at EOF; waits for the server to
 * report each one reaped, so none is left behind. */
static void retire_workers(fut_process_pool_t *p) {
  for (struct fut__pp_worker *w = fut__pp_first_worker(p); w;
       w = fut__pp_next_worker(p, w))
    close_worker_fd(p, w);
  /* A worker without a job may still be in its initializer, which can
   * take long or forever: a shutdown that times out meanwhile sets
   * abandon and rings, and teardown kills it. */
  while (fut__pp_first_worker(p) && p->ctl >= 0) {
    pthread_mutex_lock(&p->lock);
    bool abandon = p->abandon;
    p->sleeping = !abandon;
    pthread_mutex_unlock(&p->lock);
    if (abandon || sleep_in_poll(p, -1) < 0)
      break;
  }
}

/* Marks the pool finished for the threads waiting in shutdown; frees an
 * orphaned pool, which nobody else will. */
static void finish(fut_process_pool_t *p) {
  claims_free(p);
  fut__free(p->pfds);
  fut__free(p->pws);
  p->pfds = NULL;
  p->pws = NULL;
  p->pcap = 0;
  pthread_mutex_lock(&p->lock);
  p->finished = true;
  bool orphaned = p->orphaned;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->lock);
  if (orphaned)
    fut__pp_free(p);
}

void *fut__pp_manager(void *arg) {
  fut_process_pool_t *p = arg;
  pthread_setname_np(pthread_self(), "fut-procpool");
  int err = start(p);
  report_start(p, err);
  if (err) {
    undo_start(p);
    return NULL;
  }
  const char *msg = NULL;
  err = serve(p, &msg);
  if (!err)
    retire_workers(p);
  teardown(p, err ? err : FUT_E_SHUTDOWN, msg ? msg : "the pool shut down");
  finish(p);
  return NULL;
}
