/* Dispatch: which worker gets which job, and the non-blocking writes that
 * send it (manager thread only).
 *
 * Jobs leave the pending queue in FIFO order, first to idle workers, then
 * to new workers (spawned on demand up to max_workers), then queued behind
 * a running job (see PIPELINE) so a worker finishing a tiny job finds the
 * next one already in its socket.  A dispatched job is started (its start
 * callback said yes): it can no longer be cancelled.
 *
 * A job queued behind a running one is not bound to that worker: it must
 * never wait there while another worker is idle (the running job may be
 * long, or its worker stopped with SIGSTOP).  Such a job is sent with
 * FUT__PP_JOB_CLAIM and a word in the claim table (internal.h); when a
 * worker is idle and nothing else waits, take_back() revokes the queued
 * jobs the busy workers have not started (one compare-and-swap each, which
 * works even when their worker is stopped) and they run on the idle one.
 * The worker skips a revoked job when it reaches it.  The worker they were
 * taken from is suspect: nothing is queued behind its running job until it
 * answers again.  Without a claim table (memfd or mmap failed) a worker
 * holds one job at a time. */
#include "procpool/internal.h"

#include <sys/socket.h>
#include <sys/uio.h>

/* Jobs in flight per worker: PIPELINE normally, up to PIPELINE_MAX while
 * the backlog would keep every worker busy anyway.  Deeper pipelines pay
 * for fewer wake-ups (20k tiny jobs on 2 cores: ~19 µs/job at depth 1,
 * ~10 at 2, ~2.7 at 8). */
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

/* Room for one more job within depth; behind a running job only with a
 * claim table and a worker that is not suspect. */
static bool can_take(const fut_process_pool_t *p,
                     const struct fut__pp_worker *w, size_t depth) {
  if (w->state != FUT__W_LIVE || w->retiring || w->wbroken)
    return false;
  if (w->inflight.len == 0)
    return true;
  return p->claims && !w->suspect && w->inflight.len < depth;
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

static _Atomic uint64_t *claim_of(fut_process_pool_t *p, uint64_t id) {
  return &p->claims[id % p->nclaims];
}

/* QUEUED -> REVOKED for j: true when the worker had not claimed it. */
static bool claim_revoke(fut_process_pool_t *p, struct fut__pp_job *j) {
  uint64_t want = fut__pp_claim_word(j->hdr.id, FUT__PP_CLAIM_QUEUED);
  return atomic_compare_exchange_strong(
      claim_of(p, j->hdr.id), &want,
      fut__pp_claim_word(j->hdr.id, FUT__PP_CLAIM_REVOKED));
}

void fut__pp_release_claims(fut_process_pool_t *p, struct fut__pp_jobq *q) {
  for (struct fut__pp_job *j = fut__pp_q_first(q); j; j = fut__pp_q_next(q, j))
    if (p->claims && (j->hdr.err & FUT__PP_JOB_CLAIM))
      (void)claim_revoke(p, j);
}

/* Gives j a fresh id and, when it goes behind w's running job, its claim:
 * false when its claim word is still held by an older queued job (then j
 * waits for an idle worker). */
static bool stamp(fut_process_pool_t *p, struct fut__pp_worker *w,
                  struct fut__pp_job *j) {
  j->hdr.id = ++p->next_jid;
  j->hdr.err &= FUT__PP_KIND_MASK;
  if (w->inflight.len == 0)
    return true;
  _Atomic uint64_t *c = claim_of(p, j->hdr.id);
  if ((atomic_load(c) & 3u) == FUT__PP_CLAIM_QUEUED)
    return false;
  atomic_store(c, fut__pp_claim_word(j->hdr.id, FUT__PP_CLAIM_QUEUED));
  j->hdr.err |= FUT__PP_JOB_CLAIM;
  return true;
}

/* When a worker is idle and no job waits in the queues, takes back every
 * queued job the busy workers have not started (and not partly written),
 * in order, to the front of the retry queue.  True when some came back. */
static bool take_back(fut_process_pool_t *p) {
  if (!p->claims || p->retry.len)
    return false;
  bool some_idle = false;
  for (struct fut__pp_worker *w = fut__pp_first_worker(p); w && !some_idle;
       w = fut__pp_next_worker(p, w))
    some_idle = can_take(p, w, 1) && w->inflight.len == 0;
  if (!some_idle)
    return false;
  pthread_mutex_lock(&p->lock);
  size_t pending = p->pending.len;
  pthread_mutex_unlock(&p->lock);
  if (pending)
    return false;
  struct fut__pp_jobq back;
  fut__pp_q_init(&back);
  for (struct fut__pp_worker *w = fut__pp_first_worker(p); w;
       w = fut__pp_next_worker(p, w)) {
    if (w->inflight.len < 2 || w->fd < 0)
      continue;
    struct fut__pp_job *head = fut__pp_q_first(&w->inflight);
    size_t before = back.len;
    for (struct fut__pp_job *j = fut__pp_q_next(&w->inflight, head), *nx; j;
         j = nx) {
      nx = fut__pp_q_next(&w->inflight, j);
      if (j == w->send_job && w->send_off > 0)
        continue; /* partly written: the frame must be finished */
      if (!(j->hdr.err & FUT__PP_JOB_CLAIM) || !claim_revoke(p, j))
        continue; /* it runs now */
      if (j == w->send_job) {
        w->send_job = nx;
        w->send_off = 0;
      }
      fut__q_remove(&j->node);
      w->inflight.len--;
      fut__pp_q_push(&back, j);
      if (w->dispatched > 0)
        w->dispatched--;
      w->retiring = p->max_tasks && w->dispatched >= p->max_tasks;
    }
    if (back.len > before)
      w->suspect = true;
  }
  if (!back.len)
    return false;
  fut__pp_q_move_front(&p->retry, &back);
  return true;
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

/* Sends queued jobs to workers while some have room. */
static void assign(fut_process_pool_t *p) {
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
    if (!w || !stamp(p, w, j)) {
      if (fut__pp_is_broken(p)) { /* spawning failed */
        fut__pp_job_fail(j, FUT_E_BROKEN_POOL, p->broken_msg);
        break;
      }
      /* No room (the backlog shrank below the deep pipeline's threshold,
       * no worker could be made, or its claim word is busy): the job
       * waits, where it was. */
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
}

void fut__pp_dispatch(fut_process_pool_t *p) {
  assign(p);
  if (take_back(p))
    assign(p);
  for (struct fut__pp_worker *w = fut__pp_first_worker(p); w;
       w = fut__pp_next_worker(p, w))
    if (w->send_job)
      fut__pp_flush_out(w);
}

bool fut__pp_dispatchable(fut_process_pool_t *p) {
  size_t n = p->pending.len + p->retry.len;
  return n > 0 && has_room(p, depth_for(p, n));
}
