/* Allocation hook: every allocation of the library goes through here so
 * tests can make the n-th one fail and check each error path. */
#include "base/internal.h"

#include <string.h>
#include <sys/mman.h>

static atomic_long fail_countdown;  /* 0 = off; n = the n-th call fails */
static atomic_bool fail_sticky;     /* keep failing after the first */
static _Atomic(void *) failed_site; /* caller of the first injected failure
                                      since the last fut__alloc_fail_after */

void fut__alloc_fail_after(long n, bool sticky) {
  atomic_store(&failed_site, NULL);
  atomic_store(&fail_sticky, sticky);
  atomic_store(&fail_countdown, n);
}

void *fut__alloc_failed_site(void) {
  return atomic_load(&failed_site);
}

/* Records where the first injected failure happened (for the allocation
 * sweep's count of sites). */
static void note(void *site) {
  void *none = NULL;
  atomic_compare_exchange_strong(&failed_site, &none, site);
}

static bool should_fail(void) {
  long n = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
  if (FUT__LIKELY(n == 0))
    return false;
  if (n == 1) {
    if (!atomic_load(&fail_sticky))
      atomic_store(&fail_countdown, 0);
    return true;
  }
  atomic_fetch_sub(&fail_countdown, 1);
  return false;
}

void *fut__malloc(size_t n) {
  if (should_fail()) {
    note(__builtin_return_address(0));
    return NULL;
  }
  return malloc(n);
}

void *fut__calloc(size_t n, size_t size) {
  if (should_fail()) {
    note(__builtin_return_address(0));
    return NULL;
  }
  return calloc(n, size);
}

void *fut__realloc(void *p, size_t n) {
  if (should_fail()) {
    note(__builtin_return_address(0));
    return NULL;
  }
  return realloc(p, n);
}

/* Maps n bytes aligned on n (a power of two): map twice the size and
 * unmap the slack, so no memory is wasted on alignment (aligned_alloc
 * would keep it). */
void *fut__chunk_alloc(size_t n) {
  if (should_fail()) {
    note(__builtin_return_address(0));
    return NULL;
  }
  char *p = mmap(NULL, 2 * n, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return NULL;
  uintptr_t start = ((uintptr_t)p + n - 1) & ~(uintptr_t)(n - 1);
  size_t head = start - (uintptr_t)p;
  if (head)
    munmap(p, head);
  if (n - head)
    munmap((char *)start + n, n - head);
  return (void *)start;
}

void *fut__chunk_alloc_huge(size_t n) {
  void *p = fut__chunk_alloc(n);
  /* Advice only: without transparent huge pages (or with them off) the
   * region faults in 4 KiB pages as any other. */
  if (p)
    (void)madvise(p, n, MADV_HUGEPAGE);
  return p;
}

void fut__chunk_free(void *p, size_t n) {
  if (p)
    munmap(p, n);
}

void fut__free(void *p) {
  free(p);
}

char *fut__strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = fut__malloc(n);
  if (d)
    memcpy(d, s, n);
  return d;
}

char *fut__vasprintf(const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0)
    return NULL;
  char *s = fut__malloc((size_t)n + 1);
  if (s)
    vsnprintf(s, (size_t)n + 1, fmt, ap);
  return s;
}

void fut__assert_fail(const char *expr, const char *file, int line) {
  fprintf(stderr, "libfuture: assertion failed: %s (%s:%d)\n", expr, file,
          line);
  abort();
}
