/* Task stacks: one anonymous mapping per stack with a guard region of 16
 * pages below the usable part, recycled through a per-loop cache (trimmed
 * when the loop goes idle),
 * and the SIGSEGV handler that turns a guard hit into a message naming the
 * task.
 *
 * The guard is installed with MADV_GUARD_INSTALL where the kernel has it
 * (Linux 6.13+): a guard region inside the mapping, so neighbouring stacks
 * still merge into one VMA and 100,000 tasks stay far below
 * vm.max_map_count (65530 by default).  Older kernels get mprotect, which
 * costs two VMAs per stack. */
#include "task/internal.h"

#include <signal.h>
#include <string.h>
#include <sys/mman.h>
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
 * skipping over it into a neighbouring mapping.  With MADV_GUARD_INSTALL
 * it costs no memory and no VMA; with mprotect, address space only. */
#define GUARD_PAGES 16

/* Largest stack accepted: far beyond any sane task, small enough that
 * rounding never overflows. */
#define STACK_MAX ((size_t)1 << 32)

/* 1 while MADV_GUARD_INSTALL works, -1 once the kernel refused it. */
static atomic_int guard_install = 1;

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
  size_t n = s->size < 16384 ? s->size : 16384;
  __asan_unpoison_memory_region((char *)fut__stack_lo(s) + (s->size - n), n);
#else
  (void)s;
#endif
}

static void unmap(struct fut__stack *s) {
  unpoison(s);
#if defined(FUT__VALGRIND)
  if (s->vg_id)
    VALGRIND_STACK_DEREGISTER(s->vg_id);
#endif
  munmap(s->map, s->map_size);
  s->map = NULL;
}

int fut__stack_get(struct fut__stack_cache *c, size_t size,
                   struct fut__stack *out) {
  for (unsigned i = c->n; i-- > 0;) {
    if (c->s[i].size == size) {
      *out = c->s[i];
      c->s[i] = c->s[--c->n];
      return 0;
    }
  }
  size_t ps = page_size();
  size_t guard = GUARD_PAGES * ps;
  size_t map_size = size + guard;
  void *map =
      mmap(NULL, map_size, PROT_READ | PROT_WRITE,
           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (map == MAP_FAILED)
    return fut__error(-ENOMEM, "task stack: mmap of %zu bytes failed: %s",
                      map_size, strerror(errno));
  /* A huge page would commit 2 MiB for a task that touches 4 KiB; only
   * THP "always" gives anonymous memory huge pages unasked. */
  if (thp_always())
    madvise(map, map_size, MADV_NOHUGEPAGE);
  int guard_ok = atomic_load_explicit(&guard_install, memory_order_relaxed);
  if (guard_ok >= 0) {
    guard_ok = madvise(map, guard, MADV_GUARD_INSTALL) == 0;
    if (!guard_ok && errno == EINVAL) /* kernel before 6.13 */
      atomic_store_explicit(&guard_install, -1, memory_order_relaxed);
  }
  if (guard_ok <= 0 && mprotect(map, guard, PROT_NONE) != 0) {
    int e = errno;
    munmap(map, map_size);
    return fut__error(-ENOMEM,
                      "task stack: cannot protect the guard page: "
                      "%s (too many mappings? see vm.max_map_count)",
                      strerror(e));
  }
  out->map = map;
  out->map_size = map_size;
  out->size = size;
  out->vg_id = 0;
#if defined(FUT__VALGRIND)
  out->vg_id =
      VALGRIND_STACK_REGISTER((char *)map + guard, (char *)map + map_size);
#endif
  return 0;
}

void fut__stack_put(struct fut__stack_cache *c, struct fut__stack *s) {
  if (!s->map)
    return;
  if (c && c->n == c->cap && c->cap < FUT__STACK_CACHE_MAX) {
    unsigned cap = c->cap ? 2 * c->cap : 64;
    struct fut__stack *ns = fut__realloc(c->s, cap * sizeof *ns);
    if (ns) {
      c->s = ns;
      c->cap = cap;
    }
  }
  if (c && c->n < c->cap) {
    unpoison(s);
    c->s[c->n++] = *s;
  } else {
    unmap(s);
  }
  s->map = NULL;
}

void fut__stack_discard(struct fut__stack *s) {
  if (!s->map)
    return;
#if defined(FUT__ASAN)
  __asan_unpoison_memory_region(fut__stack_lo(s), s->size);
#endif
  unmap(s);
}

void fut__stack_cache_trim(struct fut__stack_cache *c, unsigned keep) {
  if (c->n <= keep)
    return;
  /* The oldest entries go: the newest were touched last, still warm. */
  unsigned drop = c->n - keep;
  for (unsigned i = 0; i < drop; i++)
    unmap(&c->s[i]);
  memmove(c->s, c->s + drop, keep * sizeof *c->s);
  c->n = keep;
}

void fut__stack_cache_clear(struct fut__stack_cache *c) {
  while (c->n > 0)
    unmap(&c->s[--c->n]);
  fut__free(c->s);
  c->s = NULL;
  c->cap = 0;
}

/* ---- guard-page hits ----------------------------------------------------- */

#define ALTSTACK_SIZE (64u * 1024u)

static struct sigaction old_segv;
static pthread_once_t handler_once = PTHREAD_ONCE_INIT;
static pthread_key_t altstack_key;
static _Thread_local bool have_altstack;

static size_t fmt_u(char *buf, uint64_t v, unsigned base) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v % base];
    v /= base;
  } while (v);
  for (size_t i = 0; i < n; i++)
    buf[i] = tmp[n - 1 - i];
  return n;
}

static size_t put(char *buf, size_t len, size_t cap, const char *s) {
  while (*s && len < cap)
    buf[len++] = *s++;
  return len;
}

/* Runs on the alternate stack: the task's own stack is exhausted. */
static void on_segv(int sig, siginfo_t *si, void *uctx) {
  const char *name;
  size_t size;
  if (fut__task_guard_hit(si->si_addr, &name, &size)) {
    char buf[512], num[24];
    size_t n = put(buf, 0, sizeof buf, "libfuture: stack overflow in task '");
    n = put(buf, n, sizeof buf, name ? name : "?");
    n = put(buf, n, sizeof buf, "': its stack of ");
    num[fmt_u(num, size, 10)] = '\0';
    n = put(buf, n, sizeof buf, num);
    n = put(buf, n, sizeof buf, " bytes is exhausted (guard page hit at 0x");
    num[fmt_u(num, (uintptr_t)si->si_addr, 16)] = '\0';
    n = put(buf, n, sizeof buf, num);
    n = put(buf, n, sizeof buf,
            "); give it a larger "
            "fut_task_opts_t.stack_size\n");
    ssize_t w = write(STDERR_FILENO, buf, n);
    (void)w;
    /* Die of the SIGSEGV itself, the default way (core dump included). */
    signal(SIGSEGV, SIG_DFL);
    return;
  }
  if (old_segv.sa_flags & SA_SIGINFO) {
    if (old_segv.sa_sigaction) {
      old_segv.sa_sigaction(sig, si, uctx);
      return;
    }
  } else if (old_segv.sa_handler != SIG_DFL && old_segv.sa_handler != SIG_IGN) {
    old_segv.sa_handler(sig);
    return;
  }
  /* Not ours and nobody else's: the fault repeats with the default action
   * when the handler returns. */
  signal(SIGSEGV, SIG_DFL);
}

static void free_altstack(void *p) {
  stack_t ss = {.ss_flags = SS_DISABLE};
  sigaltstack(&ss, NULL);
  munmap(p, ALTSTACK_SIZE);
}

static void install_handler(void) {
  pthread_key_create(&altstack_key, free_altstack);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &old_segv);
}

void fut__stack_guard_setup(void) {
  pthread_once(&handler_once, install_handler);
  if (have_altstack)
    return;
  have_altstack = true;
  stack_t old;
  /* Keep an alternate stack someone else (a sanitizer) already set. */
  if (sigaltstack(NULL, &old) == 0 && !(old.ss_flags & SS_DISABLE) &&
      old.ss_size >= ALTSTACK_SIZE / 4)
    return;
  void *p = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return; /* overflows then die without the message */
  stack_t ss = {.ss_sp = p, .ss_size = ALTSTACK_SIZE, .ss_flags = 0};
  if (sigaltstack(&ss, NULL) != 0) {
    munmap(p, ALTSTACK_SIZE);
    return;
  }
  pthread_setspecific(altstack_key, p);
}
