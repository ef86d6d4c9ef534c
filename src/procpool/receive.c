/* Frames from workers (manager thread only): reading a worker's socket
 * without blocking, checking each header before trusting its lengths, and
 * delivering HELLO and RESULT frames to the pool and the jobs.  A result
 * larger than half the input buffer is read into a buffer of its own, which
 * becomes the job's result without a copy. */
#include "procpool/internal.h"

#include <string.h>
#include <unistd.h>

static void deliver(fut_process_pool_t *p, struct fut__pp_worker *w,
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
    fut__pp_set_broken(p, "%s", why);
    /* The worker exits now; the jobs sent to it never started: they fail
     * as the pool is broken, not as killed by a dying worker. */
    w->send_job = NULL;
    w->send_off = 0;
    fut__pp_fail_queue(&w->inflight, FUT_E_BROKEN_POOL, why);
    return;
  }
  struct fut__pp_job *j = fut__pp_q_pop(&w->inflight);
  FUT__ASSERT(j && j->hdr.id == h->id && w->send_job != j);
  w->suspect = false; /* it answers */
  if (h->err) {
    if (owned)
      fut__free(payload);
    fut__pp_job_fail(j, h->err < 0 ? h->err : FUT_E_JOB_FAILED,
                     mlen ? msg : NULL);
    return;
  }
  void *data = NULL;
  if (owned) {
    data = payload;
  } else if (dlen) {
    data = fut__malloc(dlen);
    if (!data) {
      fut__pp_job_fail(j, -ENOMEM, "process pool: out of memory for a result");
      return;
    }
    memcpy(data, payload, dlen);
  }
  j->done(j->ud, 0, data, dlen, NULL);
  fut__free(j);
}

/* Checks a header from a worker before anything trusts its lengths. */
static bool hdr_ok(const fut_process_pool_t *p, const struct fut__pp_worker *w,
                   const struct fut__pp_hdr *h) {
  if (h->magic != FUT__PP_MAGIC || h->aux > h->len || h->aux > 4096 ||
      h->len > p->max_frame + 4096)
    return false;
  if (h->type == FUT__PP_HELLO)
    return true;
  const struct fut__pp_job *running = fut__pp_q_first(&w->inflight);
  return h->type == FUT__PP_RESULT && running && running->hdr.id == h->id &&
         w->send_job != running;
}

int fut__pp_receive(fut_process_pool_t *p, struct fut__pp_worker *w) {
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
      if (w->hdr.len > FUT__PP_RX_CAP / 2) {
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
    ssize_t r = read(w->fd, w->rx + w->rx_len, FUT__PP_RX_CAP - w->rx_len);
    if (r > 0) {
      w->rx_len += (size_t)r;
    } else if (r == 0) {
      return 1;
    } else if (errno != EINTR) {
      return errno == EAGAIN ? 0 : 1;
    }
  }
}
