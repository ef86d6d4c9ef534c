/* Per-loop free lists of fixed-size objects carved from chunks, so that the
 * steady state allocates nothing per future or handle.  Chunks are returned
 * to malloc only when the loop is released. */
#include "internal.h"

void fut__slab_init(struct fut__slab *s, size_t obj_size, size_t per_chunk) {
  s->free = NULL;
  s->chunks = NULL;
  s->obj_size = (obj_size + 7u) & ~(size_t)7u;
  s->per_chunk = per_chunk;
}

void *fut__slab_refill(struct fut__slab *s) {
  /* The chunk's first 16 bytes link it into s->chunks. */
  char *chunk = fut__malloc(16 + s->obj_size * s->per_chunk);
  if (!chunk)
    return NULL;
  *(void **)chunk = s->chunks;
  s->chunks = chunk;
  char *first = chunk + 16;
  /* Thread objects 1..n-1 onto the free list; hand out object 0. */
  for (size_t i = s->per_chunk - 1; i >= 1; i--) {
    void *obj = first + i * s->obj_size;
    *(void **)obj = s->free;
    s->free = obj;
  }
  return first;
}

void fut__slab_destroy(struct fut__slab *s) {
  void *c = s->chunks;
  while (c) {
    void *next = *(void **)c;
    fut__free(c);
    c = next;
  }
  s->chunks = NULL;
  s->free = NULL;
}
