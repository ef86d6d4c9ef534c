/* libfuture — the one result value: what a future, a task's staged return
 * and a concurrent future hold when they finish successfully.  A pointer
 * with an optional destructor, owned bytes, or a 64-bit integer; the kind
 * lives beside the union in the owner (one byte), so owners can extend the
 * kinds with their own (after FUT__V_KINDS). */
#ifndef FUT_BASE_VALUE_H
#define FUT_BASE_VALUE_H

#include <stddef.h>
#include <stdint.h>

#include "future/future.h"

enum {
  FUT__V_NONE = 0, /* nothing stored */
  FUT__V_PTR,      /* p: pointer + destructor (may be NULL) */
  FUT__V_BYTES,    /* b: bytes from fut__malloc + length, NUL-terminated */
  FUT__V_I64,      /* i64 */
  FUT__V_KINDS     /* first kind an owner may define for itself */
};

union fut__value {
  struct {
    void *ptr;
    fut_free_fn dtor;
  } p;
  struct {
    void *data;
    size_t len;
  } b;
  int64_t i64;
};

/* Releases what v holds when it is of kind `kind` (a FUT__V_* below
 * FUT__V_KINDS; other kinds are the owner's to release). */
void fut__value_clear(unsigned kind, union fut__value *v);

/* A fut__malloc'd copy of len bytes followed by a NUL (text results stay
 * printable), or NULL when out of memory (also when len + 1 would wrap).
 * data may be NULL when len is 0. */
void *fut__bytes_dup(const void *data, size_t len);

#endif
