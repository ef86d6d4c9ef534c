/* libfuture — the base layer's private interface: allocation, errors,
 * the clock, the slab, the intrusive list, the fork counter.  Every other
 * layer builds on it; it includes no other layer.  Never installed.
 *
 * Naming: fut__ for functions shared across files (hidden from the shared
 * library by -fvisibility=hidden), plain static names inside a file. */
#ifndef FUT_BASE_INTERNAL_H
#define FUT_BASE_INTERNAL_H
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "base/queue.h"
#include "base/value.h"
#include "future.h"

#define FUT__LIKELY(x) __builtin_expect(!!(x), 1)
#define FUT__UNLIKELY(x) __builtin_expect(!!(x), 0)

#define fut__container_of(ptr, type, member)                                   \
  ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* Broken invariants abort with a message; never compiled out. */
#define FUT__ASSERT(cond)                                                      \
  do {                                                                         \
    if (FUT__UNLIKELY(!(cond)))                                                \
      fut__assert_fail(#cond, __FILE__, __LINE__);                             \
  } while (0)
_Noreturn void fut__assert_fail(const char *expr, const char *file, int line);

/* ---- alloc.c: every allocation goes through here (fault injection) ----- */
void *fut__malloc(size_t n);
void *fut__calloc(size_t n, size_t size);
void *fut__realloc(void *p, size_t n);
/* n bytes aligned on n (a power of two), from mmap; fut__chunk_free. */
void *fut__chunk_alloc(size_t n);
/* The same, advised for transparent huge pages (MADV_HUGEPAGE): for n a
 * multiple of 2 MiB, one fault maps 2 MiB where 4 KiB pages take 512.
 * Parts may be freed separately (fut__chunk_free of a sub-range). */
void *fut__chunk_alloc_huge(size_t n);
void fut__chunk_free(void *p, size_t n);
void fut__free(void *p);
char *fut__strdup(const char *s);
char *fut__vasprintf(const char *fmt, va_list ap);
/* Test hook: the n-th allocation from now (1 = the next) fails, and every
 * one after it while `sticky`; n = 0 disables.  Process-wide, atomic. */
void fut__alloc_fail_after(long n, bool sticky);
/* Test hook: the return address (the calling site) of the first failure
 * injected since the last fut__alloc_fail_after, or NULL when none was. */
void *fut__alloc_failed_site(void);

/* A set of pointers, to take each distinct entry of an array once. */
#include "base/ptrset.h"

/* ---- errors.c ---------------------------------------------------------- */
/* Records a detail for fut_last_error() and returns err. */
int fut__error(int err, const char *fmt, ...) FUT_PRINTF(2, 3);
/* 0 when code can be a failure's code (negative, and its negation an int:
 * INT_MIN is not), else -EINVAL with a message naming `what`. */
int fut__check_failure_code(int code, const char *what);

/* ---- clock ------------------------------------------------------------- */
static inline uint64_t fut__now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- slab.c: per-loop pools of fixed-size objects ---------------------
 * Objects are carved from 64 KiB chunks aligned on their size, so an
 * object finds its chunk by masking its address.  Each chunk keeps a bitmap
 * of free slots and hands out the lowest free one: reuse stays in address
 * order, so objects freed in a scattered order (timers fired by deadline)
 * are reallocated close together instead of as a random walk through
 * memory.  The steady state allocates nothing. */
#define FUT__SLAB_CHUNK ((size_t)64 * 1024)
/* Chunks are mapped in groups that double up to FUT__SLAB_GROUP_MAX, so
 * that a slab of a million objects (tasks) takes a few hundred mappings,
 * not thousands, and a small slab still maps one chunk.  A full group is
 * FUT__SLAB_REGION (2 MiB) and is advised for huge pages: a burst of a
 * million objects then faults a few hundred times, not 8,000 (in a VM a
 * 4 KiB fault can cost 10-20 us). */
#define FUT__SLAB_REGION ((size_t)2 * 1024 * 1024)
#define FUT__SLAB_GROUP_MAX ((uint32_t)(FUT__SLAB_REGION / FUT__SLAB_CHUNK))

struct fut__slab_chunk;
struct fut__slab {
  struct fut__slab_chunk *cur;   /* chunk allocations come from; NULL when
                                    no chunk has a free slot */
  struct fut__slab_chunk *avail; /* other chunks with free slots */
  struct fut__slab_chunk *all;   /* every chunk, for destroy */
  uint32_t obj_size;             /* multiple of 8 */
  uint32_t per_chunk;            /* objects per chunk */
  uint64_t div_magic;            /* ceil(2^32 / obj_size): offset -> index */
  void *owner;                   /* copied into each chunk: what an object
                                    belongs to (fut__slab_owner) */
  char *spare;                   /* chunks mapped but not used yet, from
                                    spare down: [spare - nspare chunks,
                                    spare) */
  uint32_t nspare;               /* how many */
  uint32_t group;                /* chunks in the next mapping (1, 2, 4 ..
                                    FUT__SLAB_GROUP_MAX): one VMA each */
  bool huge;                     /* full groups advised for huge pages
                                    (set after fut__slab_init) */
};

struct fut__slab_chunk {
  struct fut__slab_chunk *next_all;   /* in slab->all */
  struct fut__slab_chunk *next_avail; /* in slab->avail while there */
  bool in_avail;                      /* linked in slab->avail */
  uint32_t nfree;                     /* free slots */
  uint32_t hint;                      /* no free slot in bits[0..hint) */
  char *objs;                         /* first object */
  void *owner;                        /* the slab's owner */
  uint64_t bits[];                    /* 1 = free */
};

void fut__slab_init(struct fut__slab *s, size_t obj_size);
void fut__slab_destroy(struct fut__slab *s);
/* An object, or NULL when out of memory. */
static inline void *fut__slab_alloc(struct fut__slab *s);
static inline void fut__slab_free(struct fut__slab *s, void *p);
/* Calls fn(obj, arg) on every object of s allocated now, a chunk at a
 * time (in address order within a chunk).  fn may free objects, obj
 * included; an object allocated during the walk may or may not be
 * visited.  O(capacity): for rare walks (listing a loop's tasks, closing
 * them), not hot paths. */
void fut__slab_each(struct fut__slab *s, void (*fn)(void *obj, void *arg),
                    void *arg);
/* fut__slab_free's rare case: c had no free slot before (it is offered
 * again). */
void fut__slab_offer(struct fut__slab *s, struct fut__slab_chunk *c);
/* fut__slab_alloc's slow path: another chunk, or a scan for a word with a
 * free slot. */
void *fut__slab_alloc_slow(struct fut__slab *s);

/* The fast path, inline: an object when the current chunk's hint word
 * has a free slot and the chunk stays non-full (the lowest free slot, as
 * the slow path would give), else NULL (then call fut__slab_alloc). */
static inline void *fut__slab_try_alloc(struct fut__slab *s) {
  struct fut__slab_chunk *c = s->cur;
  if (FUT__LIKELY(c != NULL)) {
    uint32_t w = c->hint;
    uint64_t b = c->bits[w];
    if (FUT__LIKELY(b != 0 && c->nfree > 1)) {
      c->bits[w] = b & (b - 1);
      c->nfree--;
      return c->objs +
             (size_t)(w * 64 + (unsigned)__builtin_ctzll(b)) * s->obj_size;
    }
  }
  return NULL;
}

static inline void *fut__slab_alloc(struct fut__slab *s) {
  void *p = fut__slab_try_alloc(s);
  return FUT__LIKELY(p != NULL) ? p : fut__slab_alloc_slow(s);
}

/* Inline: frees run once per object (a future's last unref). */
static inline void fut__slab_free(struct fut__slab *s, void *p) {
  struct fut__slab_chunk *c =
      (void *)((uintptr_t)p & ~(uintptr_t)(FUT__SLAB_CHUNK - 1));
  uint32_t idx =
      (uint32_t)(((uint64_t)((char *)p - c->objs) * s->div_magic) >> 32);
  uint32_t w = idx / 64;
  uint64_t bit = UINT64_C(1) << (idx % 64);
  FUT__ASSERT(!(c->bits[w] & bit)); /* double free */
  c->bits[w] |= bit;
  if (w < c->hint)
    c->hint = w;
  if (FUT__UNLIKELY(c->nfree++ == 0))
    fut__slab_offer(s, c);
}

/* The owner of the slab p was allocated from (slab->owner when its chunk
 * was made): objects need not store it. */
static inline void *fut__slab_owner(const void *p) {
  return ((const struct fut__slab_chunk *)((uintptr_t)p &
                                           ~(uintptr_t)(FUT__SLAB_CHUNK - 1)))
      ->owner;
}

/* ---- fork.c: the process's fork counter --------------------------------
 * Incremented in the child of every fork (one pthread_atfork handler for the
 * whole library).  An object records the count when it is made; a
 * different count later means it was inherited by a forked child. */
extern atomic_uint fut__fork_gen;
static inline unsigned fut__fork_generation(void) {
  return atomic_load_explicit(&fut__fork_gen, memory_order_relaxed);
}

#endif
