/* Per-loop pools of fixed-size objects (futures, tasks, handles): see the
 * comment on struct fut__slab in internal.h. */
#include "base/internal.h"

#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define SLAB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAB_ASAN 1
#endif
#endif
#if defined(SLAB_ASAN)
#include <sanitizer/asan_interface.h>
#endif

/* A user may poison its free slots (the task layer does under ASan): a
 * chunk's shadow is clean when it is made and when it goes, since a later
 * mapping may reuse the addresses. */
static void unpoison_chunk(struct fut__slab_chunk *c) {
#if defined(SLAB_ASAN)
  __asan_unpoison_memory_region(c, FUT__SLAB_CHUNK);
#else
  (void)c;
#endif
}

void fut__slab_init(struct fut__slab *s, size_t obj_size) {
  memset(s, 0, sizeof *s);
  s->obj_size = (uint32_t)((obj_size + 7u) & ~(size_t)7u);
  /* Header + bitmap + objects fit the chunk: solve for the count. */
  size_t n = (FUT__SLAB_CHUNK - sizeof(struct fut__slab_chunk) - 64) /
             (s->obj_size + 1.0 / 8);
  s->per_chunk = (uint32_t)n;
  s->div_magic = ((UINT64_C(1) << 32) + s->obj_size - 1) / s->obj_size;
}

/* A chunk's memory: the next spare one, or a new group mapped (aligned on
 * its size, a power of two, hence on the chunk size) whose spare ones the
 * next calls take.  Contiguous chunks are one VMA; a full group (2 MiB) is
 * advised for huge pages when the slab's owner asked (s->huge). */
static void *map_chunk(struct fut__slab *s) {
  if (s->nspare == 0) {
    uint32_t g = s->group ? s->group : 1;
    size_t n = (size_t)g * FUT__SLAB_CHUNK;
    char *m = s->huge && g == FUT__SLAB_GROUP_MAX ? fut__chunk_alloc_huge(n)
                                                  : fut__chunk_alloc(n);
    if (!m)
      return NULL;
    s->spare = m + n;
    s->nspare = g;
    s->group = g < FUT__SLAB_GROUP_MAX ? 2 * g : g;
  }
  s->nspare--;
  s->spare -= FUT__SLAB_CHUNK;
  return s->spare;
}

static struct fut__slab_chunk *new_chunk(struct fut__slab *s) {
  struct fut__slab_chunk *c = map_chunk(s);
  if (!c)
    return NULL;
  unpoison_chunk(c);
  uint32_t words = (s->per_chunk + 63) / 64;
  size_t hdr = sizeof *c + sizeof(uint64_t) * words;
  c->objs = (char *)c + ((hdr + 63) & ~(size_t)63);
  FUT__ASSERT(c->objs + (size_t)s->obj_size * s->per_chunk <=
              (char *)c + FUT__SLAB_CHUNK);
  memset(c->bits, 0xff, sizeof(uint64_t) * words);
  if (s->per_chunk % 64)
    c->bits[words - 1] = (UINT64_C(1) << (s->per_chunk % 64)) - 1;
  c->nfree = s->per_chunk;
  c->owner = s->owner;
  c->hint = 0;
  c->in_avail = false;
  c->next_avail = NULL;
  c->next_all = s->all;
  s->all = c;
  return c;
}

void *fut__slab_alloc_slow(struct fut__slab *s) {
  struct fut__slab_chunk *c = s->cur;
  if (FUT__UNLIKELY(!c)) {
    if ((c = s->avail) != NULL) {
      s->avail = c->next_avail;
      c->in_avail = false;
    } else if (!(c = new_chunk(s))) {
      return NULL;
    }
    s->cur = c;
  }
  uint32_t w = c->hint;
  while (c->bits[w] == 0)
    w++;
  c->hint = w;
  unsigned bit = (unsigned)__builtin_ctzll(c->bits[w]);
  c->bits[w] &= c->bits[w] - 1;
  if (--c->nfree == 0)
    s->cur = NULL; /* full: the next allocation picks another chunk */
  return c->objs + (size_t)(w * 64 + bit) * s->obj_size;
}

void fut__slab_offer(struct fut__slab *s, struct fut__slab_chunk *c) {
  if (c != s->cur) {
    /* It was full: offer it again. */
    c->next_avail = s->avail;
    s->avail = c;
    c->in_avail = true;
  }
}

void fut__slab_each(struct fut__slab *s, void (*fn)(void *obj, void *arg),
                    void *arg) {
  for (struct fut__slab_chunk *c = s->all; c; c = c->next_all) {
    for (uint32_t i = 0; i < s->per_chunk; i++) {
      /* The bit is read afresh: fn may have freed objects. */
      if (!(c->bits[i / 64] >> (i % 64) & 1))
        fn(c->objs + (size_t)i * s->obj_size, arg);
    }
  }
}

void fut__slab_destroy(struct fut__slab *s) {
  struct fut__slab_chunk *c = s->all;
  while (c) {
    struct fut__slab_chunk *next = c->next_all;
    unpoison_chunk(c);
    fut__chunk_free(c, FUT__SLAB_CHUNK);
    c = next;
  }
  /* Spare chunks: the rest of the last group. */
  if (s->nspare)
    fut__chunk_free(s->spare - (size_t)s->nspare * FUT__SLAB_CHUNK,
                    (size_t)s->nspare * FUT__SLAB_CHUNK);
  s->nspare = 0;
  s->group = 0;
  s->all = s->cur = s->avail = NULL;
}
