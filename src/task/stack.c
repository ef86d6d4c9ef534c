/* Task stacks: carved from arenas (one mapping holding many stacks of one
 * size), recycled through a per-loop free list per size class with its
 * memory given back lazily when the loop goes idle, and the SIGSEGV
 * handler that turns a guard hit into a message naming the task.
 *
 * An arena is [guard|stack][guard|stack]...: each slot is a guard region
 * of GUARD_PAGES below the usable stack.  Where the kernel has
 * MADV_GUARD_INSTALL (Linux 6.13+), every slot's guard is a guard region
 * inside the mapping: no VMA, no memory.  Elsewhere, only the arena's
 * lowest guard is mprotect'd (one more VMA per arena, not two per stack:
 * a million tasks stay far below vm.max_map_count, 65530 by default); the
 * other slots' guard regions are untouched padding, and each stack's
 * lowest words are a canary checked at every switch-out (await.c): an
 * overflow that stops in the padding or the canary is reported when the
 * task switches out; one that runs on through the stacks below faults at
 * the arena's guard and is reported at once.  See docs/tasks.md. */
#include "task/internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#if defined(FUT__VALGRIND)
#include <valgrind/valgrind.h>
#endif
#if defined(FUT__ASAN)
#include <sanitizer/asan_interface.h>
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

/* The guard region below each stack: several pages, so that a frame
 * larger than a page (a big local array) still lands in it instead of
 * skipping over it into a neighbouring stack.  With MADV_GUARD_INSTALL
 * it costs no memory and no VMA; without, address space only.  Either way
 * it spaces the stacks out, and the spacing is what the await cost at a
 * million live tasks follows (docs/tasks.md, "The await cliff"). */
#ifndef GUARD_PAGES
#define GUARD_PAGES 16
#endif

/* Fresh slots are prepared PREP_BATCH at a time, each step one
 * process_madvise call over the batch (Linux 6.13+ takes any advice for
 * the calling process; PIDFD_SELF_THREAD on recent kernels): their guard
 * regions installed, and their top pages populated (MADV_POPULATE_WRITE), the
 * one page a new task touches first; instead of one madvise and one page fault
 * per new task.  At most PREP_BATCH - 1 populated pages wait unused per
 * size class.  Where the call is refused, slots are prepared one by one
 * as before, and top pages fault in when first touched. */
#define PREP_BATCH 32u
#ifndef PIDFD_SELF_THREAD
#define PIDFD_SELF_THREAD (-10000)
#endif

/* Largest stack accepted: far beyond any sane task, small enough that
 * rounding never overflows. */
#define STACK_MAX ((size_t)1 << 32)

/* Arenas: ARENA_BYTES of address space, at most ARENA_SLOTS stacks; a
 * slot larger than ARENA_BIG gets a mapping of its own. */
#define ARENA_BYTES ((size_t)128 << 20)
#define ARENA_SLOTS 1024u
#define ARENA_BIG ((size_t)32 << 20)

struct fut__arena {
  struct fut__arena *next;
  char *base;         /* the mapping */
  size_t len;         /* its length */
  unsigned nslots;    /* slots it holds */
  unsigned carved;    /* slots handed out so far (in address order) */
  unsigned ready;     /* slots [carved, ready) prepared by a batch */
  bool guarded;       /* MADV_GUARD_INSTALL worked for its lowest guard */
  bool ready_guarded; /* the batch installed the guards of [carved, ready) */
};

/* 1 while MADV_GUARD_INSTALL works, -1 once the kernel refused it. */
static atomic_int guard_install = 1;
/* 1 while process_madvise on this process works for an advice, -1 once
 * refused: guard installs, then populating top pages. */
static atomic_int batch_guard = 1;
#if defined(FUT__STACK_NO_POPULATE) /* to measure what populating buys */
static atomic_int batch_populate = -1;
#else
static atomic_int batch_populate = 1;
#endif

static pthread_once_t thp_once = PTHREAD_ONCE_INIT;
static bool thp_is_always;

static void read_thp(void) {
  FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");
  char buf[128] = "";
  if (f) {
    if (!fgets(buf, sizeof buf, f))
      buf[0] = '\0';
    fclose(f);
  }
  thp_is_always = strstr(buf, "[always]") != NULL;
}

static bool thp_always(void) {
  pthread_once(&thp_once, read_thp);
  return thp_is_always;
}

static size_t page_size(void) {
  static size_t ps;
  if (!ps) {
    long v = sysconf(_SC_PAGESIZE);
    ps = v > 0 ? (size_t)v : 4096;
  }
  return ps;
}

static size_t guard_bytes(void) {
  return GUARD_PAGES * page_size();
}

char *fut__stack_fault_lo(const struct fut__stack *s) {
  /* With a guard of its own (or a mapping of its own), a fault below it
   * is someone else's; without, the overflow runs down through the stacks
   * below to the arena's guard. */
  if (s->arena && s->canary)
    return s->arena->base;
  return s->lo - guard_bytes();
}

size_t fut__stack_round(size_t size) {
  size_t ps = page_size();
  if (size > STACK_MAX)
    return 0;
  return (size + ps - 1) & ~(ps - 1);
}

/* Clears stale ASan poison left by the frames of a task that switched away
 * for good: the next user of these bytes would see false reports.  A task
 * always ends by returning from its function, whose frames unpoison
 * themselves on the way out; only the few frames at the top (task_entry,
 * the final switch) stay poisoned, so the top 16 KiB is enough, and much
 * cheaper than the whole stack's shadow (100,000 tasks: 3 s instead of
 * 10 s). */
static void unpoison(struct fut__stack *s) {
#if defined(FUT__ASAN)
  size_t n = fut__stack_size(s) < 16384 ? fut__stack_size(s) : 16384;
  __asan_unpoison_memory_region(s->lo + (fut__stack_size(s) - n), n);
#else
  (void)s;
#endif
}

static void vg_register(struct fut__stack *s) {
  s->vg_id = 0;
#if defined(FUT__VALGRIND)
  s->vg_id = VALGRIND_STACK_REGISTER(s->lo, s->lo + fut__stack_size(s));
#endif
}

static void vg_deregister(struct fut__stack *s) {
#if defined(FUT__VALGRIND)
  if (s->vg_id)
    VALGRIND_STACK_DEREGISTER(s->vg_id);
#endif
  s->vg_id = 0;
}

static void *map_stack_memory(size_t len) {
  void *p =
      mmap(NULL, len, PROT_READ | PROT_WRITE,
           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (p == MAP_FAILED)
    return NULL;
  /* A huge page would commit 2 MiB for a task that touches 4 KiB; only
   * THP "always" gives anonymous memory huge pages unasked. */
  if (thp_always())
    madvise(p, len, MADV_NOHUGEPAGE);
  return p;
}

/* Installs a guard region at g with MADV_GUARD_INSTALL; false where the
 * kernel refuses it (before 6.13), remembered for every later stack. */
static bool guard_region(void *g, size_t len) {
  if (atomic_load_explicit(&guard_install, memory_order_relaxed) < 0)
    return false;
  if (madvise(g, len, MADV_GUARD_INSTALL) == 0)
    return true;
  if (errno == EINVAL) /* kernel before 6.13 */
    atomic_store_explicit(&guard_install, -1, memory_order_relaxed);
  return false;
}

/* A stack of its own: [guard|stack], the old layout, for sizes no arena
 * takes.  Two VMAs without MADV_GUARD_INSTALL. */
static int own_stack(size_t size, struct fut__stack *out) {
  size_t guard = guard_bytes();
  char *map = map_stack_memory(size + guard);
  if (!map)
    return fut__error(-ENOMEM, "task stack: mmap of %zu bytes failed: %s",
                      size + guard, strerror(errno));
  if (!guard_region(map, guard) && mprotect(map, guard, PROT_NONE) != 0) {
    int e = errno;
    munmap(map, size + guard);
    return fut__error(-ENOMEM,
                      "task stack: cannot protect the guard page: "
                      "%s (too many mappings? see vm.max_map_count)",
                      strerror(e));
  }
  out->lo = map + guard;
  fut__stack_set_size(out, size);
  out->arena = NULL;
  out->canary = false;
  vg_register(out);
  return 0;
}

static int new_arena(struct fut__stack_pool *p) {
  size_t slot = p->size + guard_bytes();
  size_t nslots = ARENA_BYTES / slot;
  if (nslots > ARENA_SLOTS)
    nslots = ARENA_SLOTS;
  if (nslots < 1)
    nslots = 1;
  struct fut__arena *a = fut__malloc(sizeof *a);
  if (!a)
    return -ENOMEM;
  a->len = nslots * slot;
  a->base = map_stack_memory(a->len);
  if (!a->base) {
    fut__free(a);
    return fut__error(-ENOMEM, "task stack: mmap of %zu bytes failed: %s",
                      nslots * slot, strerror(errno));
  }
  size_t guard = guard_bytes();
  a->guarded = guard_region(a->base, guard);
  if (!a->guarded && mprotect(a->base, guard, PROT_NONE) != 0) {
    int e = errno;
    munmap(a->base, a->len);
    fut__free(a);
    return fut__error(-ENOMEM,
                      "task stack: cannot protect the guard page: "
                      "%s (too many mappings? see vm.max_map_count)",
                      strerror(e));
  }
  a->nslots = (unsigned)nslots;
  a->carved = 0;
  a->ready = 0;
  a->ready_guarded = false;
  a->next = p->arenas;
  p->arenas = a;
  return 0;
}

/* One process_madvise over iov[0, n); false where the kernel refuses it
 * (remembered in *works for every later batch). */
static bool batch_advise(struct iovec *iov, size_t n, int advice,
                         atomic_int *works) {
  if (n == 0)
    return true;
  if (atomic_load_explicit(works, memory_order_relaxed) < 0)
    return false;
  size_t want = 0;
  for (size_t i = 0; i < n; i++)
    want += iov[i].iov_len;
  long r = syscall(SYS_process_madvise, PIDFD_SELF_THREAD, iov, n, advice, 0u);
  if (r == (long)want)
    return true;
  if (r < 0 && errno != ENOMEM && errno != EAGAIN && errno != EINTR)
    atomic_store_explicit(works, -1, memory_order_relaxed);
  return false;
}

/* Prepares the next batch of a's slots from a->carved on (see PREP_BATCH). */
static void prepare(struct fut__stack_pool *p, struct fut__arena *a) {
  size_t guard = guard_bytes(), slot = p->size + guard, ps = page_size();
  unsigned from = a->carved,
           to = a->nslots - from > PREP_BATCH ? from + PREP_BATCH : a->nslots;
  struct iovec iov[PREP_BATCH];
  size_t n = 0;
  /* Slot 0's guard is the arena's, installed with it. */
  for (unsigned i = from == 0 ? 1 : from; i < to; i++)
    iov[n++] = (struct iovec){a->base + (size_t)i * slot, guard};
  a->ready_guarded =
      a->guarded && batch_advise(iov, n, MADV_GUARD_INSTALL, &batch_guard);
  /* Top pages only where the guards are in place: populating a slot
   * whose guard then fails would leave a stack without one. */
  if (a->ready_guarded) {
    n = 0;
    for (unsigned i = from; i < to; i++)
      iov[n++] = (struct iovec){a->base + (size_t)(i + 1) * slot - ps, ps};
    batch_advise(iov, n, MADV_POPULATE_WRITE, &batch_populate);
  }
  a->ready = to;
}

/* The next unused slot of the pool's newest arena (a new arena when it is
 * full). */
static int carve(struct fut__stack_pool *p, struct fut__stack *out) {
  struct fut__arena *a = p->arenas;
  if (!a || a->carved == a->nslots) {
    int rc = new_arena(p);
    if (rc)
      return rc;
    a = p->arenas;
  }
  if (a->carved == a->ready)
    prepare(p, a);
  size_t guard = guard_bytes();
  char *g = a->base + (size_t)a->carved * (p->size + guard);
  bool own_guard = a->carved == 0     ? a->guarded
                   : a->ready_guarded ? true
                                      : guard_region(g, guard);
  a->carved++;
  out->lo = g + guard;
  fut__stack_set_size(out, p->size);
  out->arena = a;
  out->canary = !own_guard;
  vg_register(out);
  return 0;
}

static struct fut__stack_pool *pool_of(struct fut__stack_cache *c, size_t size,
                                       bool add) {
  for (unsigned i = 0; i < FUT__STACK_POOLS; i++) {
    struct fut__stack_pool *p = &c->pool[i];
    if (p->size == size)
      return p;
    if (!p->size) {
      if (!add)
        return NULL;
      p->size = size;
      return p;
    }
  }
  return NULL;
}

int fut__stack_get(struct fut__stack_cache *c, size_t size,
                   struct fut__stack *out) {
  struct fut__stack_pool *p =
      size + guard_bytes() <= ARENA_BIG ? pool_of(c, size, true) : NULL;
  if (!p)
    return own_stack(size, out);
  if (p->n > 0) {
    *out = p->free[--p->n];
    if (p->clean > p->n)
      p->clean = p->n;
    p->out++;
    return 0;
  }
  /* The free list will hold this stack one day: grow it now, so that
   * fut__stack_put never fails. */
  if (p->cap <= p->out + 1) {
    size_t cap = p->cap ? 2 * (size_t)p->cap : 64;
    if (cap > UINT32_MAX)
      return -ENOMEM;
    struct fut__stack *ns = fut__realloc(p->free, cap * sizeof *ns);
    if (!ns)
      return -ENOMEM;
    p->free = ns;
    p->cap = (unsigned)cap;
  }
  int rc = carve(p, out);
  if (rc == 0)
    p->out++;
  return rc;
}

static void unmap_own(struct fut__stack *s) {
  vg_deregister(s);
  munmap(s->lo - guard_bytes(), fut__stack_size(s) + guard_bytes());
}

void fut__stack_put(struct fut__stack_cache *c, struct fut__stack *s) {
  if (!s->lo)
    return;
  unpoison(s);
  struct fut__stack_pool *p =
      s->arena ? pool_of(c, fut__stack_size(s), false) : NULL;
  if (!s->arena) {
    unmap_own(s);
  } else if (!p) {
    vg_deregister(s); /* its arena outlived its loop: leaked */
  } else {
    FUT__ASSERT(p->n < p->cap && p->out > 0);
    p->free[p->n++] = *s;
    p->out--;
  }
  s->lo = NULL;
}

void fut__stack_discard(struct fut__stack_cache *c, struct fut__stack *s) {
  if (!s->lo)
    return;
#if defined(FUT__ASAN)
  __asan_unpoison_memory_region(s->lo, fut__stack_size(s));
#endif
  fut__stack_put(c, s);
}

void fut__stack_cache_trim(struct fut__stack_cache *c, unsigned keep) {
  for (unsigned i = 0; i < FUT__STACK_POOLS && c->pool[i].size; i++) {
    struct fut__stack_pool *p = &c->pool[i];
    /* The oldest go: the newest were touched last, still warm.  The
     * canary reads zero again afterwards, as it must. */
    for (; p->clean + keep < p->n; p->clean++) {
      struct fut__stack *s = &p->free[p->clean];
      madvise(s->lo, fut__stack_size(s), MADV_DONTNEED);
    }
  }
}

void fut__stack_cache_clear(struct fut__stack_cache *c) {
  for (unsigned i = 0; i < FUT__STACK_POOLS && c->pool[i].size; i++) {
    struct fut__stack_pool *p = &c->pool[i];
    for (unsigned j = 0; j < p->n; j++)
      vg_deregister(&p->free[j]);
    struct fut__arena *a = p->arenas;
    while (a) {
      struct fut__arena *next = a->next;
      /* A stack still out (a task that outlives its loop's close) keeps
       * its arena: leaked rather than pulled from under it. */
      if (p->out == 0)
        munmap(a->base, a->len);
      fut__free(a);
      a = next;
    }
    fut__free(p->free);
    memset(p, 0, sizeof *p);
  }
}
