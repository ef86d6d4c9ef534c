/* The ready queue: a growable ring of (callback, argument) pairs.  Pushing
 * is a store and an increment; the ring doubles when full and never
 * shrinks, so the steady state allocates nothing. */
#include "loop/internal.h"

#include <string.h>

int fut__ring_grow(struct fut__ring *r) {
  uint32_t old_cap = r->ents ? r->mask + 1 : 0;
  uint32_t cap = old_cap ? old_cap * 2 : 1024;
  if (cap == 0 || cap > (UINT32_C(1) << 31))
    return fut__error(-ENOMEM, "ready queue cannot grow past 2^31 entries");
  struct fut__ready_ent *ents = fut__malloc(sizeof *ents * cap);
  if (!ents)
    return fut__error(-ENOMEM, "ready queue: out of memory growing to %u",
                      (unsigned)cap);
  /* Each live entry keeps its index (head and tail do not move), so the
   * drain may hold the head in a register across callbacks that grow the
   * ring. */
  for (uint32_t i = r->head; i != r->tail; i++)
    ents[i & (cap - 1)] = r->ents[i & r->mask];
  fut__free(r->ents);
  r->ents = ents;
  r->mask = cap - 1;
  return 0;
}

/* The release registry: few entries, read on close only. */
static struct { fut_cb fn, release; } releases[16];
static atomic_int nreleases;

void fut__register_release(fut_cb fn, fut_cb release) {
  int n = atomic_load(&nreleases);
  for (int i = 0; i < n; i++)
    if (releases[i].fn == fn)
      return;
  int i = atomic_fetch_add(&nreleases, 1);
  FUT__ASSERT(i < 16);
  releases[i].fn = fn;
  releases[i].release = release;
}

void fut__release_entry(fut_cb fn, void *arg) {
  int n = atomic_load(&nreleases);
  for (int i = 0; i < n; i++)
    if (releases[i].fn == fn) {
      releases[i].release(arg);
      return;
    }
}

void fut__ready_clear(fut_loop_t *loop) {
  struct fut__ring *r = &loop->ready;
  /* Releasing may free futures whose report schedules nothing (the loop
   * is closed), so the ring does not change under us. */
  while (r->head != r->tail) {
    struct fut__ready_ent e = r->ents[r->head & r->mask];
    r->head++;
    fut__release_entry(e.fn, e.arg);
  }
}
