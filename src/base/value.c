/* The one result value: release and byte copy, shared by futures, tasks and
 * concurrent futures. */
#include "base/internal.h"

#include <string.h>

void fut__value_clear(unsigned kind, union fut__value *v) {
  switch (kind) {
  case FUT__V_PTR:
    if (v->p.dtor)
      v->p.dtor(v->p.ptr);
    break;
  case FUT__V_BYTES:
    fut__free(v->b.data);
    break;
  default:
    break;
  }
}

void *fut__bytes_dup(const void *data, size_t len) {
  char *copy = len < SIZE_MAX ? fut__malloc(len + 1) : NULL;
  if (!copy)
    return NULL;
  if (len)
    memcpy(copy, data, len);
  copy[len] = '\0';
  return copy;
}
