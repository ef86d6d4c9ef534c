/* The process pool's manager thread.  It owns every socket of the pool —
 * the control socket to the fork server and one stream socket per worker —
 * and multiplexes them with poll(2), so the submitting threads (a loop, a
 * plain program) never block on a worker and a 64 MiB frame moves in
 * non-blocking pieces.  Completion callbacks run here.
 *
 * Dispatch: jobs leave the pending queue in FIFO order, first to idle
 * workers, then to new workers (spawned on demand up to max_workers), then
 * pipelined behind a running job (see PIPELINE) so a worker finishing a
 * tiny job finds the next one already in its socket.  A
 * dispatched job is started (its start callback said yes): it can no
 * longer be cancelled, as with Python's call queue.
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
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

/* Jobs in flight per worker: PIPELINE normally, up to PIPELINE_MAX while
 * the backlog would keep every worker busy anyway.  Deeper pipelines pay
 * for fewer wake-ups (20k tiny jobs on 2 cores: ~19 µs/job at depth 1,
 * ~10 at 2, ~2.7 at 8) but a job queued behind a long one waits for it and
 * can no longer be cancelled. */
#define PIPELINE 2
#define PIPELINE_MAX 8
#define RX_CAP (64u * 1024u)
#define SOCKBUF (4 << 20) /* asked; the kernel clamps it */

_Static_assert(offsetof(struct fut__pp_job, payload) ==
                   offsetof(struct fut__pp_job, hdr) +
                       sizeof(struct fut__pp_hdr),
               "a job's frame must be contiguous");

static void job_fail(struct fut__pp_job *j, int err, const char *msg) {
  j->done(j->ud, err, NULL, 0, msg);
  fut__free(j);
}

static void fail_queue(struct fut__pp_jobq *q, int err, const char *msg) {
  for (struct fut__pp_job *j; (j = fut__pp_q_pop(q));)
    job_fail(j, err, msg);
}

/* Marks the pool broken (new submits fail) and fails every queued job. */
static void set_broken(fut_procpool_t *p, const char *fmt, ...)
    FUT_PRINTF(2, 3);
static void set_broken(fut_procpool_t *p, const char *fmt, ...) {
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
  struct fut__pp_jobq q = p->pending;
  p->pending = (struct fut__pp_jobq){0};
  pthread_mutex_unlock(&p->lock);
  fail_queue(&q, FUT_E_BROKEN_POOL, msg);
  fail_queue(&p->retry, FUT_E_BROKEN_POOL, msg);
}

static bool is_broken(fut_procpool_t *p) {
  pthread_mutex_lock(&p->lock);
  bool b = p->broken;
  pthread_mutex_unlock(&p->lock);
  return b;
}

/* ---- workers ----------------------------------------------------------- */

static void close_worker_fd(fut_procpool_t *p, struct fut__pp_worker *w) {
  if (w->fd < 0)
    return;
  close(w->fd);
  w->fd = -1;
  if (w->state == FUT__W_LIVE) {
    w->state = FUT__W_CLOSED;
    p->nlive--;
    atomic_fetch_sub(&p->nworkers, 1u);
  }
}

static void free_worker(fut_procpool_t *p, struct fut__pp_worker *w) {
  for (struct fut__pp_worker **pp = &p->workers; *pp; pp = &(*pp)->next)
    if (*pp == w) {
      *pp = w->next;
      break;
    }
  close_worker_fd(p, w);
  fut__free(w->rx);
  fut__free(w->big);
  fut__free(w);
}

/* A worker could not be made for a local, maybe passing reason (memory,
 * the fd limit): with workers left, the pool carries on with them and
 * tries again after the next event; with none, nothing would ever run the
 * queue, so the pool is broken. */
static void spawn_failed(fut_procpool_t *p, const char *what, int err) {
  if (p->nlive > 0) {
    p->spawn_blocked = true;
    return;
  }
  set_broken(p, "process pool: cannot make a worker: %s: %s", what,
             fut_strerror(err));
}

static struct fut__pp_worker *spawn(fut_procpool_t *p) {
  struct fut__pp_worker *w = fut__calloc(1, sizeof *w);
  char *rx = fut__malloc(RX_CAP);
  int sv[2] = {-1, -1};
  if (!w || !rx) {
    fut__free(w);
    fut__free(rx);
    spawn_failed(p, "out of memory", -ENOMEM);
    return NULL;
  }
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    int e = errno;
    fut__free(w);
    fut__free(rx);
    spawn_failed(p, "socketpair", -e);
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
  close(sv[1]);
  if (err) {
    close(sv[0]);
    fut__free(w);
    fut__free(rx);
    set_broken(p, "process pool: the fork server is gone (%s)",
               fut_strerror(err));
    return NULL;
  }
  w->fd = sv[0];
  w->rx = rx;
  w->state = FUT__W_LIVE;
  p->nspawning++;
  w->next = p->workers;
  p->workers = w;
  p->nlive++;
  atomic_fetch_add(&p->nworkers, 1u);
  return w;
}

/* SPAWN requests awaiting their SPAWNED reply.  Bounded so the blocking
 * control socket can never fill in both directions at once (the manager
 * blocked sending SPAWN while the server blocks sending SPAWNED). */
#define MAX_SPAWNING 32

static bool can_spawn(const fut_procpool_t *p) {
  return p->nlive < p->max_workers && !p->spawn_blocked &&
         p->nspawning < MAX_SPAWNING;
}

static bool can_take(const fut_procpool_t *p, const struct fut__pp_worker *w,
                     size_t depth) {
  (void)p;
  return w->state == FUT__W_LIVE && !w->retiring && !w->wbroken &&
         w->inflight.len < depth;
}

/* An idle worker, else a new one (when may_spawn; with !may_spawn, any
 * non-NULL answer only means "there is room"), else one with room in its
 * pipeline.  NULL: every worker is full. */
static struct fut__pp_worker *pick(fut_procpool_t *p, bool may_spawn,
                                   size_t depth) {
  for (struct fut__pp_worker *w = p->workers; w; w = w->next)
    if (can_take(p, w, 1))
      return w;
  if (can_spawn(p) && may_spawn) {
    struct fut__pp_worker *w = spawn(p);
    if (w || is_broken(p))
      return w;
  }
  struct fut__pp_worker *best = NULL;
  for (struct fut__pp_worker *w = p->workers; w; w = w->next)
    if (can_take(p, w, depth) &&
        (!best || w->inflight.len < best->inflight.len))
      best = w;
  return best;
}

static bool has_room(fut_procpool_t *p, size_t depth) {
  return can_spawn(p) || pick(p, false, depth) != NULL;
}

/* The pipeline depth for a backlog of n queued jobs. */
static size_t depth_for(const fut_procpool_t *p, size_t n) {
  return n >= (size_t)p->max_workers * PIPELINE_MAX ? PIPELINE_MAX : PIPELINE;
}

/* Writes what it can of the worker's unsent frames. */
static void flush_out(struct fut__pp_worker *w) {
  while (w->send_job && w->fd >= 0) {
    struct iovec iov[16];
    int n = 0;
    for (struct fut__pp_job *j = w->send_job; j && n < 16; j = j->next) {
      size_t skip = j == w->send_job ? w->send_off : 0;
      iov[n].iov_base = (char *)&j->hdr + skip;
      iov[n].iov_len = sizeof j->hdr + j->hdr.len - skip;
      n++;
    }
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    ssize_t r = sendmsg(w->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN) {
        /* Dying worker: keep reading what it wrote before; the death
         * report decides what failed. */
        w->wbroken = true;
        w->send_job = NULL;
      }
      return;
    }
    size_t left = (size_t)r;
    while (left > 0 && w->send_job) {
      size_t rem = sizeof w->send_job->hdr + w->send_job->hdr.len - w->send_off;
      if (left >= rem) {
        left -= rem;
        w->send_job = w->send_job->next;
        w->send_off = 0;
      } else {
        w->send_off += left;
        left = 0;
      }
    }
  }
}

/* Takes the next job: retried ones first, then the pending queue.  *left
 * gets the backlog behind it. */
static struct fut__pp_job *take_job(fut_procpool_t *p, size_t *left) {
  struct fut__pp_job *j = fut__pp_q_pop(&p->retry);
  pthread_mutex_lock(&p->lock);
  if (!j)
    j = fut__pp_q_pop(&p->pending);
  *left = p->pending.len + p->retry.len;
  pthread_mutex_unlock(&p->lock);
  return j;
}

/* Sends queued jobs to workers while some have room, then writes what the
 * sockets take without blocking. */
static void dispatch(fut_procpool_t *p) {
  size_t depth = PIPELINE_MAX;
  while (!is_broken(p)) {
    if (!has_room(p, depth))
      break;
    size_t left;
    struct fut__pp_job *j = take_job(p, &left);
    if (!j)
      break;
    depth = depth_for(p, left + 1);
    struct fut__pp_worker *w = pick(p, true, depth);
    if (!w) {
      if (is_broken(p)) { /* spawning failed */
        job_fail(j, FUT_E_BROKEN_POOL, p->broken_msg);
        break;
      }
      /* The backlog shrank below the deep pipeline's threshold: the job
       * waits for a worker, where it was. */
      if (j->started) {
        fut__pp_q_push_front(&p->retry, j);
      } else {
        pthread_mutex_lock(&p->lock);
        fut__pp_q_push_front(&p->pending, j);
        pthread_mutex_unlock(&p->lock);
      }
      break;
    }
    if (!j->started) {
      if (j->start && !j->start(j->ud)) {
        job_fail(j, -ECANCELED, "cancelled before it started");
        continue;
      }
      j->started = true;
    }
    fut__pp_q_push(&w->inflight, j);
    if (!w->send_job) {
      w->send_job = j;
      w->send_off = 0;
    }
    if (p->max_tasks && ++w->dispatched >= p->max_tasks)
      w->retiring = true;
  }
  for (struct fut__pp_worker *w = p->workers; w; w = w->next)
    if (w->send_job)
      flush_out(w);
}

/* ---- frames from workers ------------------------------------------------ */

static void deliver(fut_procpool_t *p, struct fut__pp_worker *w,
                    const struct fut__pp_hdr *h, char *payload, bool owned) {
  size_t dlen = h->len - h->aux;
  char msg[1024];
  size_t mlen = h->aux < sizeof msg - 1 ? h->aux : sizeof msg - 1;
  memcpy(msg, payload + dlen, mlen);
  msg[mlen] = '\0';
  if (h->type == FUT__PP_HELLO) {
    if (owned)
      fut__free(payload);
    if (!h->err) {
      w->hello = true;
      return;
    }
    char why[1280];
    snprintf(why, sizeof why, "the initializer failed in worker %d: %s",
             (int)w->pid, mlen ? msg : fut_strerror(h->err));
    set_broken(p, "%s", why);
    /* The worker exits now; the jobs sent to it never started: they fail
     * as the pool is broken, not as killed by a dying worker. */
    w->send_job = NULL;
    w->send_off = 0;
    fail_queue(&w->inflight, FUT_E_BROKEN_POOL, why);
    return;
  }
  struct fut__pp_job *j = fut__pp_q_pop(&w->inflight);
  FUT__ASSERT(j && j->hdr.id == h->id && w->send_job != j);
  if (h->err) {
    if (owned)
      fut__free(payload);
    job_fail(j, h->err < 0 ? h->err : FUT_E_JOB_FAILED, mlen ? msg : NULL);
    return;
  }
  void *data = NULL;
  if (owned) {
    data = payload;
  } else if (dlen) {
    data = fut__malloc(dlen);
    if (!data) {
      job_fail(j, -ENOMEM, "process pool: out of memory for a result");
      return;
    }
    memcpy(data, payload, dlen);
  }
  j->done(j->ud, 0, data, dlen, NULL);
  fut__free(j);
}

/* Checks a header from a worker before anything trusts its lengths. */
static bool hdr_ok(const fut_procpool_t *p, const struct fut__pp_worker *w,
                   const struct fut__pp_hdr *h) {
  if (h->magic != FUT__PP_MAGIC || h->aux > h->len || h->aux > 4096 ||
      h->len > p->max_frame + 4096)
    return false;
  if (h->type == FUT__PP_HELLO)
    return true;
  return h->type == FUT__PP_RESULT && w->inflight.head &&
         w->inflight.head->hdr.id == h->id && w->send_job != w->inflight.head;
}

/* Reads and delivers what the worker sent.  Returns 0 when the socket is
 * drained for now, 1 at EOF, -EPROTO on garbage. */
static int rx_process(fut_procpool_t *p, struct fut__pp_worker *w) {
  for (;;) {
    if (w->big) {
      ssize_t r = read(w->fd, w->big + w->big_got, w->hdr.len - w->big_got);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        return errno == EAGAIN ? 0 : 1;
      if (r == 0)
        return 1;
      w->big_got += (size_t)r;
      if (w->big_got == w->hdr.len) {
        char *b = w->big;
        w->big = NULL;
        w->have_hdr = false;
        deliver(p, w, &w->hdr, b, true);
      }
      continue;
    }
    size_t avail = w->rx_len - w->rx_pos;
    if (!w->have_hdr && avail >= sizeof w->hdr) {
      memcpy(&w->hdr, w->rx + w->rx_pos, sizeof w->hdr);
      if (!hdr_ok(p, w, &w->hdr))
        return -EPROTO;
      w->rx_pos += sizeof w->hdr;
      avail -= sizeof w->hdr;
      w->have_hdr = true;
    }
    if (w->have_hdr) {
      if (avail >= w->hdr.len) {
        char *pl = w->rx + w->rx_pos;
        w->rx_pos += w->hdr.len;
        w->have_hdr = false;
        deliver(p, w, &w->hdr, pl, false);
        continue;
      }
      if (w->hdr.len > RX_CAP / 2) {
        w->big = fut__malloc(w->hdr.len + 1);
        if (!w->big)
          return -ENOMEM;
        memcpy(w->big, w->rx + w->rx_pos, avail);
        w->big_got = avail;
        w->rx_pos = w->rx_len = 0;
        continue;
      }
    }
    if (w->rx_pos > 0) {
      memmove(w->rx, w->rx + w->rx_pos, w->rx_len - w->rx_pos);
      w->rx_len -= w->rx_pos;
      w->rx_pos = 0;
    }
    ssize_t r = read(w->fd, w->rx + w->rx_len, RX_CAP - w->rx_len);
    if (r > 0) {
      w->rx_len += (size_t)r;
    } else if (r == 0) {
      return 1;
    } else if (errno != EINTR) {
      return errno == EAGAIN ? 0 : 1;
    }
  }
}

static void kill_worker(fut_procpool_t *p, struct fut__pp_worker *w) {
  if (w->pid > 0) {
    struct fut__ctl_msg m = {.type = FUT__CTL_KILL, .b = (uint64_t)w->pid};
    (void)fut__pp_ctl_send(p->ctl, &m, NULL, 0, -1);
  }
  close_worker_fd(p, w);
}

static void worker_readable(fut_procpool_t *p, struct fut__pp_worker *w) {
  int r = rx_process(p, w);
  if (r == 1) {
    close_worker_fd(p, w);
  } else if (r < 0) {
    w->kill_reason = r == -ENOMEM ? " (killed: no memory for its result)"
                                  : " (killed after a protocol error)";
    kill_worker(p, w);
  }
}

/* Puts jobs that never started in a worker back at the front of the
 * queue, in their order. */
static void requeue(fut_procpool_t *p, struct fut__pp_jobq *q) {
  if (!q->head)
    return;
  q->tail->next = p->retry.head;
  p->retry.head = q->head;
  if (!p->retry.tail)
    p->retry.tail = q->tail;
  p->retry.len += q->len;
  *q = (struct fut__pp_jobq){0};
}

/* The worker is gone and reaped: settle its jobs and forget it. */
static void finalize(fut_procpool_t *p, struct fut__pp_worker *w) {
  bool clean = WIFEXITED(w->status) && WEXITSTATUS(w->status) == 0;
  if (!w->hello && (w->inflight.head || !clean)) {
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
    fail_queue(&w->inflight, FUT_E_BROKEN_POOL, msg);
    set_broken(p, "process pool: %s", msg);
    free_worker(p, w);
    return;
  }
  struct fut__pp_job *j = fut__pp_q_pop(&w->inflight);
  if (j) {
    char st[96], msg[256];
    fut__pp_describe_status(w->status, st, sizeof st);
    snprintf(msg, sizeof msg, "worker process %d %s while running the job%s",
             (int)w->pid, st, w->kill_reason ? w->kill_reason : "");
    job_fail(j, FUT_E_WORKER_DIED, msg);
  }
  /* The rest never started in that worker: run them elsewhere, first. */
  requeue(p, &w->inflight);
  free_worker(p, w);
}

static void ctl_readable(fut_procpool_t *p) {
  struct fut__ctl_msg m;
  int err = fut__pp_ctl_recv(p->ctl, &m, NULL, 0, NULL, NULL);
  if (err == -EAGAIN || err == -EINTR)
    return;
  if (err) {
    close(p->ctl);
    p->ctl = -1;
    set_broken(p, "process pool: the fork server died (%s)", fut_strerror(err));
    return;
  }
  if (m.type == FUT__CTL_SPAWNED) {
    for (struct fut__pp_worker *w = p->workers; w; w = w->next)
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
        }
        break;
      }
  } else if (m.type == FUT__CTL_DIED) {
    for (struct fut__pp_worker *w = p->workers; w; w = w->next)
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

static void poll_reserve(fut_procpool_t *p, size_t n);

static int start(fut_procpool_t *p) {
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
  struct fut__ctl_msg m = {.type = FUT__CTL_CONFIG,
                           .a = p->max_tasks,
                           .c = (int64_t)p->max_frame,
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
  err = fut__pp_ctl_send(p->ctl, &m, pl, n, -1);
  fut__free(pl);
  if (err)
    return fut__error(err, "process pool: configuring the fork server: %s",
                      fut_strerror(err));
  return 0;
}

static bool idle(fut_procpool_t *p) {
  if (p->retry.len)
    return false;
  for (struct fut__pp_worker *w = p->workers; w; w = w->next)
    if (w->inflight.len)
      return false;
  pthread_mutex_lock(&p->lock);
  bool empty = p->pending.len == 0;
  pthread_mutex_unlock(&p->lock);
  return empty;
}

/* Grows the poll arrays to n entries; keeps the old ones on failure. */
static void poll_reserve(fut_procpool_t *p, size_t n) {
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

static int poll_all(fut_procpool_t *p, bool with_evfd, int timeout) {
  size_t need = 2;
  for (struct fut__pp_worker *w = p->workers; w; w = w->next)
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
  for (struct fut__pp_worker *w = p->workers; w && n < p->pcap; w = w->next) {
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
    ssize_t rr = read(p->evfd, &v, sizeof v);
    (void)rr;
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
      flush_out(w);
    if (ev & (POLLIN | POLLHUP | POLLERR))
      worker_readable(p, w);
  }
  if (ctl_ev && p->ctl >= 0)
    ctl_readable(p);
  return 0;
}

/* Ends everything: workers, server.  Jobs still held fail with err. */
static void teardown(fut_procpool_t *p, int err, const char *msg) {
  /* Closing a worker's socket is its signal to exit (EOF). */
  for (struct fut__pp_worker *w = p->workers; w; w = w->next) {
    fail_queue(&w->inflight, err, msg);
    w->send_job = NULL;
    close_worker_fd(p, w);
  }
  fail_queue(&p->retry, err, msg);
  pthread_mutex_lock(&p->lock);
  struct fut__pp_jobq q = p->pending;
  p->pending = (struct fut__pp_jobq){0};
  pthread_mutex_unlock(&p->lock);
  fail_queue(&q, err, msg);
  /* Closing the control socket makes the server SIGKILL what is left,
   * reap it and exit. */
  if (p->ctl >= 0) {
    close(p->ctl);
    p->ctl = -1;
  }
  while (p->workers)
    free_worker(p, p->workers);
  pid_t pid = atomic_load(&p->server_pid);
  if (pid > 0) {
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    atomic_store(&p->server_pid, 0);
  }
}

void *fut__pp_manager(void *arg) {
  fut_procpool_t *p = arg;
  pthread_setname_np(pthread_self(), "fut-procpool");
  int err = start(p);
  pthread_mutex_lock(&p->lock);
  p->start_done = true;
  p->start_err = err;
  if (err)
    snprintf(p->broken_msg, sizeof p->broken_msg, "%s", fut_last_error());
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->lock);
  if (err) {
    fut__free(p->pfds);
    fut__free(p->pws);
    if (p->ctl >= 0)
      close(p->ctl);
    p->ctl = -1;
    pid_t pid = atomic_load(&p->server_pid);
    if (pid > 0)
      while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
      }
    return NULL;
  }

  int end_err = 0;
  const char *end_msg = NULL;
  for (;;) {
    dispatch(p);
    pthread_mutex_lock(&p->lock);
    bool abandon = p->abandon, broken = p->broken, sd = p->shutdown;
    pthread_mutex_unlock(&p->lock);
    if (broken) {
      end_err = FUT_E_BROKEN_POOL;
      end_msg = p->broken_msg;
      break;
    }
    if (abandon) {
      end_err = FUT_E_SHUTDOWN;
      end_msg = "abandoned: the pool's shutdown timed out";
      break;
    }
    if (sd && idle(p))
      break;
    /* Sleep only if, under the lock submit and shutdown ring with, there
     * is nothing to do: a shutdown or abandon that came after the check
     * above found sleeping false and did not ring. */
    pthread_mutex_lock(&p->lock);
    bool more = (p->pending.len + p->retry.len > 0 &&
                 has_room(p, depth_for(p, p->pending.len + p->retry.len))) ||
                p->shutdown != sd || p->abandon || p->broken;
    p->sleeping = !more;
    pthread_mutex_unlock(&p->lock);
    if (more)
      continue;
    int r = poll_all(p, true, -1);
    p->spawn_blocked = false; /* something happened: worth a new try */
    pthread_mutex_lock(&p->lock);
    p->sleeping = false;
    p->rung = false;
    pthread_mutex_unlock(&p->lock);
    if (r < 0) {
      set_broken(p, "process pool: poll: %s", fut_strerror(r));
    }
  }

  if (!end_err) {
    /* Graceful: idle workers exit at EOF; wait for the server to report
     * each one reaped, so none is left behind. */
    for (struct fut__pp_worker *w = p->workers; w; w = w->next)
      close_worker_fd(p, w);
    /* A worker without a job may still be in its initializer, which can
     * take long or forever: a shutdown that times out meanwhile sets
     * abandon and rings, and teardown kills it. */
    while (p->workers && p->ctl >= 0) {
      pthread_mutex_lock(&p->lock);
      bool abandon = p->abandon;
      p->sleeping = !abandon;
      pthread_mutex_unlock(&p->lock);
      if (abandon)
        break;
      int r = poll_all(p, true, -1);
      pthread_mutex_lock(&p->lock);
      p->sleeping = false;
      p->rung = false;
      pthread_mutex_unlock(&p->lock);
      if (r < 0)
        break;
    }
  }
  teardown(p, end_err ? end_err : FUT_E_SHUTDOWN,
           end_msg ? end_msg : "the pool shut down");
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
    fut__procpool_destroy(p); /* nobody else will */
  return NULL;
}
