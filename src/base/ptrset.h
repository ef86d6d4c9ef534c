/* libfuture — a set of pointers, to take each distinct entry of an array
 * once (asyncio's wait / as_completed and concurrent.futures' as_completed
 * take a set of futures).  Open addressing; up to 16 entries it needs no
 * allocation.  Header-only, included by base/internal.h. */
#ifndef FUT_BASE_PTRSET_H
#define FUT_BASE_PTRSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fut__ptrset {
  const void **slots; /* mask + 1 slots, NULL = free */
  size_t mask;
  unsigned bits;
  const void *small[32];
};

/* Prepares s for at most n distinct pointers; 0 or -ENOMEM. */
static inline int fut__ptrset_init(struct fut__ptrset *s, size_t n) {
  s->bits = 5;
  while (((size_t)1 << s->bits) < 2 * n)
    s->bits++;
  s->mask = ((size_t)1 << s->bits) - 1;
  if (s->bits == 5) {
    for (size_t i = 0; i < 32; i++)
      s->small[i] = NULL;
    s->slots = s->small;
    return 0;
  }
  s->slots = (const void **)fut__calloc(s->mask + 1, sizeof *s->slots);
  return s->slots ? 0 : -ENOMEM;
}

/* Adds p (not NULL); true if it was not in s yet. */
static inline bool fut__ptrset_add(struct fut__ptrset *s, const void *p) {
  uint64_t h = (uint64_t)(uintptr_t)p * UINT64_C(0x9E3779B97F4A7C15);
  size_t i = (size_t)(h >> (64 - s->bits));
  while (s->slots[i] && s->slots[i] != p)
    i = (i + 1) & s->mask;
  if (s->slots[i])
    return false;
  s->slots[i] = p;
  return true;
}

static inline void fut__ptrset_free(struct fut__ptrset *s) {
  if (s->slots != s->small)
    fut__free((void *)s->slots);
  s->slots = NULL;
}

#endif
