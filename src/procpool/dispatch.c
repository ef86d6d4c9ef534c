/* Dispatch: which worker gets which job, and the non-blocking writes that
 * send it (manager thread only).
 *
 * Jobs leave the pending queue in FIFO order, first to idle workers, then
 * to new workers (spawned on demand up to max_workers), then pipelined
 * behind a running job (see PIPELINE) so a worker finishing a tiny job
 * finds the next one already in its socket.  A dispatched job is started
 * (its start callback said yes): it can no longer be cancelled, as with
 * Python's call queue. */
#include "procpool/internal.h"

#include <sys/socket.h>
#include <sys/uio.h>

/* Jobs in flight per worker: PIPELINE normally, up to PIPELINE_MAX while
 * the backlog would keep every worker busy anyway.  Deeper pipelines pay
 * for fewer wake-ups (20k tiny jobs on 2 cores: ~19 µs/job at depth 1,
 * ~10 at 2, ~2.7 at 8) but a job queued behind a long one waits for it and
 * can no longer be cancelled. */
#define PIPELINE 2
#define PIPELINE_MAX 8

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

static bool can_take(const fut_process_pool_t *p,
                     const struct fut__pp_worker *w, size_t depth) {
  (void)p;
  return w->state == FUT__W_LIVE && !w->retiring && !w->wbroken &&
         w->inflight.len < depth;
}

/* An idle worker, else a new one (when may_spawn; with !may_spawn, any
 * non-NULL answer only means "there is room"), else one with room in its
 * pipeline.  NULL: every worker is full. */
static struct fut__pp_worker *pick(fut_process_pool_t *p, bool may_spawn,
                                   size_t depth) {
  for (struct fut__pp_worker *w = fut__pp_first_worker(p); w;
       w = fut__pp_next_worker(p, w))
    if (can_take(p, w, 1))
      return w;
  if (can_spawn(p) && may_spawn) {
    struct fut__pp_worker *w = fut__pp_spawn(p);
    if (w || fut__pp_is_broken(p))
      return w;
  }
  struct fut__pp_worker *best = NULL;
  for (struct fut__pp_worker *w = fut__pp_first_worker(p); w;
       w = fut__pp_next_worker(p, w))
    if (can_take(p, w, depth) &&
        (!best || w->inflight.len < best->inflight.len))
      best = w;
  return best;
}

static bool has_room(fut_process_pool_t *p, size_t depth) {
  return can_spawn(p) || pick(p, false, depth) != NULL;
}

/* The pipeline depth for a backlog of n queued jobs. */
static size_t depth_for(const fut_process_pool_t *p, size_t n) {
  return n >= (size_t)p->max_workers * PIPELINE_MAX ? PIPELINE_MAX : PIPELINE;
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

/* Takes the next job: retried ones first, then the pending queue.  *left
 * gets the backlog behind it. */
static struct fut__pp_job *take_job(fut_process_pool_t *p, size_t *left) {
  struct fut__pp_job *j = fut__pp_q_pop(&p->retry);
  pthread_mutex_lock(&p->lock);
  if (!j)
    j = fut__pp_q_pop(&p->pending);
  *left = p->pending.len + p->retry.len;
  pthread_mutex_unlock(&p->lock);
  return j;
}

void fut__pp_dispatch(fut_process_pool_t *p) {
  size_t depth = PIPELINE_MAX;
  while (!fut__pp_is_broken(p)) {
    if (!has_room(p, depth))
      break;
    size_t left;
    struct fut__pp_job *j = take_job(p, &left);
    if (!j)
      break;
    depth = depth_for(p, left + 1);
    struct fut__pp_worker *w = pick(p, true, depth);
    if (!w) {
      if (fut__pp_is_broken(p)) { /* spawning failed */
        fut__pp_job_fail(j, FUT_E_BROKEN_POOL, p->broken_msg);
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
  size_t n = p->pending.len + p->retry.len;
  return n > 0 && has_room(p, depth_for(p, n));
}
