/* Task contexts: the machine state of a suspended stack, and the switch.
 *
 * Two implementations, chosen at configure time (cmake/context.cmake):
 *   FUT_CTX_ASM       ctx_<arch>.S saves the callee-saved registers and the
 *                     FP control words on the old stack, stores the stack
 *                     pointer, loads the new one, restores, returns;
 *   FUT_CTX_UCONTEXT  ctx_ucontext.c wraps makecontext / swapcontext
 *                     (portable, but swapcontext makes a sigprocmask
 *                     syscall per switch).
 * Sanitizer fiber hooks and valgrind registration are the caller's
 * (await.c, stack.c): this layer only moves registers. */
#ifndef FUT_CTX_H
#define FUT_CTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(FUT_CTX_UCONTEXT)
#include <ucontext.h>
struct fut__ctx {
  ucontext_t uc; /* valid while the context is not running */
};
#elif defined(FUT_CTX_ASM)
struct fut__ctx {
  void *sp; /* saved stack pointer while not running; the registers are
               stored just above it, the resume address last */
};
#else
#error "no task context implementation selected (see cmake/context.cmake)"
#endif

#if defined(FUT_CTX_UCONTEXT)
/* Prepares c to run entry(arg) on the stack [lo, lo + size) at its first
 * switch.  entry must never return: it ends by switching away for good. */
void fut__ctx_make(struct fut__ctx *c, void *lo, size_t size,
                   void (*entry)(void *), void *arg);

/* Saves the running context into from and resumes to. */
void fut__ctx_switch(struct fut__ctx *from, struct fut__ctx *to);

#else
#include <stdint.h>

void fut__ctx_switch_raw(void **from_sp, void *to_sp);
void fut__ctx_start(void);

static inline void fut__ctx_switch(struct fut__ctx *from, struct fut__ctx *to) {
  fut__ctx_switch_raw(&from->sp, to->sp);
}

/* Builds the frame ctx_<arch>.S pops at the first switch: zeroed
 * callee-saved registers except the two carrying entry and arg, default
 * FP control words, and fut__ctx_start as the resume address. */
static inline void fut__ctx_make(struct fut__ctx *c, void *lo, size_t size,
                                 void (*entry)(void *), void *arg) {
  uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
#if defined(__x86_64__)
  /* After the 8 popped words and the ret, rsp = top - 16: aligned. */
  uint64_t *w = (uint64_t *)(top - 80);
  w[0] = (uint64_t)0x037F << 32 | 0x1F80; /* fpu cw | mxcsr */
  w[1] = 0;                               /* r15 */
  w[2] = 0;                               /* r14 */
  w[3] = (uint64_t)(uintptr_t)arg;        /* r13 */
  w[4] = (uint64_t)(uintptr_t)entry;      /* r12 */
  w[5] = 0;                               /* rbx */
  w[6] = 0;                               /* rbp */
  w[7] = (uint64_t)(uintptr_t)fut__ctx_start;
  w[8] = w[9] = 0;
#elif defined(__aarch64__)
  uint64_t *w = (uint64_t *)(top - 176);
  for (int i = 0; i < 22; i++)
    w[i] = 0;
  w[0] = (uint64_t)(uintptr_t)entry;           /* x19 */
  w[1] = (uint64_t)(uintptr_t)arg;             /* x20 */
  w[11] = (uint64_t)(uintptr_t)fut__ctx_start; /* x30 */
#else
#error "FUT_CTX_ASM on an unsupported architecture"
#endif
  c->sp = w;
}
#endif

#endif

/* ---- sanitizers and valgrind --------------------------------------------- */
#if defined(__SANITIZE_ADDRESS__)
#define FUT__ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define FUT__TSAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) && !defined(FUT__ASAN)
#define FUT__ASAN 1
#endif
#if __has_feature(thread_sanitizer) && !defined(FUT__TSAN)
#define FUT__TSAN 1
#endif
#endif
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#define FUT__VALGRIND 1
#endif
#endif

/* ---- stacks (stack.c) ---------------------------------------------------- */

/* A task stack: usable bytes [lo, lo + size), growing down towards a
 * guard.  Carved from an arena (one mapping holding many stacks of one
 * size, see stack.c) or, for unusual sizes, a mapping of its own.  Pages
 * are committed when first touched. */
struct fut__arena;
/* Sizes are kept in 4 KiB units (every stack size is a multiple of the
 * page size, at most 4 GiB): the descriptor is 24 bytes, in each task and
 * each free-list entry. */
#define FUT__STACK_UNIT_SHIFT 12
struct fut__stack {
  char *lo;                 /* lowest usable byte; NULL = none */
  struct fut__arena *arena; /* NULL: a mapping of its own, guard below lo */
  uint32_t units : 31;      /* usable bytes >> FUT__STACK_UNIT_SHIFT */
  uint32_t canary : 1;      /* no guard page of its own: the lowest words
                               are checked at every switch-out
                               (fut__stack_canary_ok) */
  unsigned vg_id;           /* valgrind stack id, 0 without valgrind */
};

/* Usable bytes of s. */
static inline size_t fut__stack_size(const struct fut__stack *s) {
  return (size_t)s->units << FUT__STACK_UNIT_SHIFT;
}
static inline void fut__stack_set_size(struct fut__stack *s, size_t size) {
  s->units = (uint32_t)(size >> FUT__STACK_UNIT_SHIFT) & 0x7fffffffu;
}

/* A fault in [fut__stack_fault_lo(s), lo) while this stack runs is its
 * overflow (its guard, or its arena's).  Async-signal-safe. */
char *fut__stack_fault_lo(const struct fut__stack *s);

static inline void *fut__stack_lo(const struct fut__stack *s) {
  return s->lo;
}

/* The canary: the lowest FUT__CANARY_WORDS words of a stack without a
 * guard page of its own stay zero (never written: reading them maps the
 * shared zero page, so the check costs no resident memory).  A task whose
 * frames reached them overflowed. */
#define FUT__CANARY_WORDS 8
static inline bool fut__stack_canary_ok(const struct fut__stack *s) {
  const volatile uintptr_t *w = (const volatile uintptr_t *)(void *)s->lo;
  uintptr_t any = 0;
  for (unsigned i = 0; i < FUT__CANARY_WORDS; i++)
    any |= w[i];
  return any == 0;
}

/* Free stacks of one size class, reused by new tasks of that size: a task
 * that reuses one makes no syscall and takes no page fault.  The free list
 * has no fixed cap (a burst of 100,000 connections recycles its stacks);
 * when the loop goes idle (it is about to block in epoll_wait), the free
 * stacks beyond FUT__STACK_CACHE_KEEP, oldest first, give their pages
 * back with MADV_DONTNEED but stay in the list (address space only):
 * memory returns lazily, never on the hot path.  Arenas are unmapped at
 * loop close. */
#define FUT__STACK_CACHE_KEEP 256
#define FUT__STACK_POOLS 8
struct fut__stack_pool {
  size_t size;             /* usable bytes of its stacks; 0 = unused */
  struct fut__stack *free; /* [0, n) free; [0, clean) given back */
  unsigned n, cap, clean;
  size_t out;                /* stacks handed out, not yet back */
  struct fut__arena *arenas; /* newest first; the first is being carved */
};
struct fut__stack_cache {
  struct fut__stack_pool pool[FUT__STACK_POOLS];
};

/* Rounds size up to pages; 0 on overflow. */
size_t fut__stack_round(size_t size);
/* A stack of `size` usable bytes (already rounded), from the free list, a
 * new slot of an arena, or a new arena.  Returns 0, -ENOMEM (no memory, no
 * address space, or too many mappings). */
int fut__stack_get(struct fut__stack_cache *c, size_t size,
                   struct fut__stack *out);
/* Returns a stack to its free list (a stack of its own is unmapped). */
void fut__stack_put(struct fut__stack_cache *c, struct fut__stack *s);
/* Unmaps the arenas (every stack must be back). */
void fut__stack_cache_clear(struct fut__stack_cache *c);
/* Gives back the pages of the free stacks beyond keep per size class (the
 * most recently freed stay warm). */
void fut__stack_cache_trim(struct fut__stack_cache *c, unsigned keep);
/* Returns a stack whose frames were dropped without returning (all of it
 * may hold stale sanitizer poison). */
void fut__stack_discard(struct fut__stack_cache *c, struct fut__stack *s);
/* A task's canary was overwritten: reports the overflow naming the task
 * (name NULL: the default name of the task whose stack s is) and aborts.
 * Never returns. */
_Noreturn void fut__stack_canary_hit(const struct fut__stack *s,
                                     const char *name);
/* Once per thread that runs tasks: an alternate signal stack and the
 * SIGSEGV handler that recognises guard pages. */
void fut__stack_guard_setup(void);

/* await.c: whether addr lies in the guard region of the task running on this
 * thread; then its name (NULL: the default "Task-<id>" not formatted yet),
 * its id and its stack size.  Async-signal-safe. */
bool fut__task_guard_hit(const void *addr, const char **name, uint64_t *id,
                         size_t *size);
