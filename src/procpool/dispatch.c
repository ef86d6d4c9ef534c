/* Dispatch: which worker gets which job, and the non-blocking writes that
 * send it (manager thread only).
 *
 * Jobs leave the pending queue in FIFO order, to idle workers, else to new
 * workers (spawned on demand up to max_workers); otherwise they wait in the
 * queue.  A worker holds one job at a time, as in Python's
 * ProcessPoolExecutor, where an idle worker takes the next call: a job is
 * never queued behind a running one, so a worker that is stopped
 * (SIGSTOP), stuck or in a long job delays no job while another worker is
 * idle.  (Until issue 9 the pool sent up to 2 — 8 with a deep backlog —
 * jobs per worker: faster for tiny jobs, but the jobs behind a stopped
 * worker waited for it forever.)  A dispatched job is started (its start
 * callback said yes): it can no longer be cancelled. */
#include "procpool/internal.h"

#include <sys/socket.h>
#include <sys/uio.h>

_Static_assert(offsetof(struct fut__pp_job, payload) ==
                   offsetof(struct fut__pp_job, hdr) +
                       sizeof(struct fut__pp_hdr),
               "a job's frame must be contiguous");

/* SPAWN requests awaiting their SPAWNED reply.  Bounded so the blocking
 * control socket can never fill in both directions at once (the manager
 * blocked sending SPAWN while the server blocks sending SPAWNED). */
#define MAX_SPAWNING 32

static bool can_spawn(const fut_process_pool_t *p) {
  return p->nlive < p->max_workers && !p->spawn_blocked &&
         p->nspawning < MAX_SPAWNING;
}

/* Idle: live, accepting jobs, and holding none. */
static bool can_take(const struct fut__pp_worker *w) {
  return w->state == FUT__W_LIVE && !w->retiring && !w->wbroken &&
         w->inflight.len == 0;
}

/* An idle worker, else a new one (when may_spawn; with !may_spawn, any
 * non-NULL answer only means "there is room").  NULL: every worker is
 * busy and no new one can be made now. */
static struct fut__pp_worker *pick(fut_process_pool_t *p, bool may_spawn) {
  for (struct fut__pp_worker *w = fut__pp_first_worker(p); w;
       w = fut__pp_next_worker(p, w))
    if (can_take(w))
      return w;
  if (can_spawn(p) && may_spawn)
    return fut__pp_spawn(p);
  return NULL;
}

static bool has_room(fut_process_pool_t *p) {
  return can_spawn(p) || pick(p, false) != NULL;
}

void fut__pp_flush_out(struct fut__pp_worker *w) {
  while (w->send_job && w->fd >= 0) {
    struct iovec iov[16];
    int n = 0;
    for (struct fut__pp_job *j = w->send_job; j && n < 16;
         j = fut__pp_q_next(&w->inflight, j)) {
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
        w->send_job = fut__pp_q_next(&w->inflight, w->send_job);
        w->send_off = 0;
      } else {
        w->send_off += left;
        left = 0;
      }
    }
  }
}

/* Takes the next job: retried ones first, then the pending queue. */
static struct fut__pp_job *take_job(fut_process_pool_t *p) {
  struct fut__pp_job *j = fut__pp_q_pop(&p->retry);
  if (!j) {
    pthread_mutex_lock(&p->lock);
    j = fut__pp_q_pop(&p->pending);
    pthread_mutex_unlock(&p->lock);
  }
  return j;
}

void fut__pp_dispatch(fut_process_pool_t *p) {
  while (!fut__pp_is_broken(p)) {
    if (!has_room(p))
      break;
    struct fut__pp_job *j = take_job(p);
    if (!j)
      break;
    struct fut__pp_worker *w = pick(p, true);
    if (!w) {
      if (fut__pp_is_broken(p)) { /* spawning failed */
        fut__pp_job_fail(j, FUT_E_BROKEN_POOL, p->broken_msg);
        break;
      }
      /* No worker could be made now: the job waits, where it was. */
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
        fut__pp_job_fail(j, -ECANCELED, "cancelled before it started");
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
  for (struct fut__pp_worker *w = fut__pp_first_worker(p); w;
       w = fut__pp_next_worker(p, w))
    if (w->send_job)
      fut__pp_flush_out(w);
}

bool fut__pp_dispatchable(fut_process_pool_t *p) {
  return p->pending.len + p->retry.len > 0 && has_room(p);
}
