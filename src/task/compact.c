/* Compact tasks (FUT_TASK_COMPACT): the run stacks they share, the copy of
 * a suspended one's frames out and back, and the debug-mode check of their
 * restriction.  See compact.h and docs/tasks.md ("Compact mode").
 *
 * The copy-out is lazy: a compact task that switches out stays on its run
 * stack as its "owner"; only when another compact task is switched in on
 * that stack are the owner's frames ([saved sp, top), its image) copied
 * to its buffer.  A task that suspends and resumes with no other compact
 * task in between copies nothing.  The buffer is sized by the task itself
 * before it registers its wake-up (fut__compact_reserve), so the copy-out,
 * which happens on the scheduler at someone else's switch-in, cannot fail:
 * a suspension point fails with -ENOMEM instead, without suspending. */
#include "task/internal.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(FUT__ASAN)
#include <sanitizer/asan_interface.h>
#endif
#if defined(FUT__VALGRIND) && defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define FUT__MEMCHECK 1
#endif
#endif

/* Largest image: far beyond a sane task. */
#define IMG_MAX ((size_t)1 << 29)

/* Debug-mode tasks carry their links for the fault handler's registry. */
struct dbg {
  struct fut__compact h;
  struct fut__task *t;
  struct dbg *prev, *next;
};

static size_t hdr_size(bool debug) {
  return debug ? sizeof(struct dbg) : sizeof(struct fut__compact);
}

static unsigned char *img_of(struct fut__compact *c) {
  return (unsigned char *)c + hdr_size(c->debug);
}

static char *top_of(const struct fut__task *t) {
  return t->stack.lo + fut__stack_size(&t->stack);
}

/* Makes [p, p + n) of a stack readable for a copy-out: no stale ASan
 * poison (the frames' redzones) on the way.  Valgrind needs nothing: the
 * frames above a suspended task's stack pointer are addressable. */
static void stack_open(void *p, size_t n) {
#if defined(FUT__ASAN)
  __asan_unpoison_memory_region(p, n);
#endif
  (void)p;
  (void)n;
}

/* Makes [p, p + n) of a stack writable for a copy-in: also addressable for
 * valgrind (memory below a stack pointer that rose is "no access" to it;
 * the copy then gives it the image's definedness). */
static void stack_open_for_write(void *p, size_t n) {
  stack_open(p, n);
#if defined(FUT__MEMCHECK)
  VALGRIND_MAKE_MEM_UNDEFINED(p, n);
#endif
}

__attribute__((format(printf, 1, 2))) _Noreturn static void
fatal(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("libfuture: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  abort();
}

/* ---- the debug registry (the SIGSEGV handler's view) -------------------- */

static struct dbg *reg_head;
static atomic_flag reg_lock = ATOMIC_FLAG_INIT;

static void reg_acquire(void) {
  while (atomic_flag_test_and_set_explicit(&reg_lock, memory_order_acquire))
    ;
}

static void reg_release(void) {
  atomic_flag_clear_explicit(&reg_lock, memory_order_release);
}

static void reg_add(struct dbg *d) {
  reg_acquire();
  d->prev = NULL;
  d->next = reg_head;
  if (reg_head)
    reg_head->prev = d;
  reg_head = d;
  reg_release();
}

static void reg_remove(struct dbg *d) {
  reg_acquire();
  if (d->prev)
    d->prev->next = d->next;
  else
    reg_head = d->next;
  if (d->next)
    d->next->prev = d->prev;
  d->prev = d->next = NULL;
  reg_release();
}

bool fut__compact_fault(const void *addr, const char **name, uint64_t *id) {
  /* A bounded wait: the lock is only held for a few stores. */
  bool locked = false;
  for (int i = 0; i < 1000000 && !locked; i++)
    locked =
        !atomic_flag_test_and_set_explicit(&reg_lock, memory_order_acquire);
  bool hit = false;
  for (struct dbg *d = reg_head; d && !hit; d = d->next) {
    const char *lo = d->t->stack.lo;
    if ((const char *)addr >= lo &&
        (const char *)addr < lo + fut__stack_size(&d->t->stack)) {
      /* NULL: the default, formatted by the caller */
      *name = fut__task_given_name(d->t);
      *id = d->t->id;
      hit = true;
    }
  }
  if (locked)
    reg_release();
  return hit;
}

/* The task's name for a message, without allocating (the default name is
 * formatted lazily: fut__task_name may need memory that is not there). */
static const char *tname(const struct fut__task *t, char buf[32]) {
  const char *given = fut__task_given_name(t);
  if (given)
    return given;
  snprintf(buf, 32, "Task-%llu", (unsigned long long)t->id);
  return buf;
}

/* Protects a debug-mode task's stack while it is away: any access through
 * an address of it faults.  Without memory for the VMA split (too many
 * mappings), the task simply goes unchecked. */
static void protect(struct fut__task *t) {
  struct dbg *d = (struct dbg *)fut__task_cmp(t);
  if (mprotect(t->stack.lo, fut__stack_size(&t->stack), PROT_NONE) != 0)
    return;
  d->h.prot = 1;
  d->t = t;
  reg_add(d);
}

static void unprotect(struct fut__task *t) {
  struct dbg *d = (struct dbg *)fut__task_cmp(t);
  if (!d->h.prot)
    return;
  reg_remove(d);
  d->h.prot = 0;
  if (mprotect(t->stack.lo, fut__stack_size(&t->stack),
               PROT_READ | PROT_WRITE) != 0)
    fatal("compact task '%s': cannot unprotect its stack: %s",
          tname(t, (char[32]){0}), strerror(errno));
}

/* ---- creation and release ----------------------------------------------- */

static struct fut__run_stack *run_stack(struct fut__task_state *ts, size_t size,
                                        int *err) {
  if (!ts->run && !(ts->run = fut__calloc(1, sizeof *ts->run))) {
    *err = fut__error(-ENOMEM, "fut_create_task: out of memory");
    return NULL;
  }
  struct fut__run_stacks *r = ts->run;
  for (unsigned i = 0; i < r->n; i++)
    if (fut__stack_size(&r->rs[i].st) == size)
      return &r->rs[i];
  if (r->n == FUT__STACK_POOLS) {
    *err = fut__error(-EINVAL,
                      "fut_create_task: compact tasks of more than %d "
                      "stack sizes on one loop",
                      FUT__STACK_POOLS);
    return NULL;
  }
  struct fut__run_stack *rs = &r->rs[r->n];
  if ((*err = fut__stack_get(&ts->cache, size, &rs->st)))
    return NULL;
  rs->owner = NULL;
  r->n++;
  return rs;
}

/* The size of the last image reserved on this thread: a new compact
 * task's buffer starts that big, so that most tasks never reallocate it. */
static _Thread_local uint32_t typical_cap;

int fut__compact_init(struct fut__task_state *ts, struct fut__task *t,
                      size_t size, bool debug) {
  size_t cap = typical_cap < size ? typical_cap : 0;
  struct fut__compact *c = fut__malloc(hdr_size(debug) + cap);
  if (!c)
    return fut__error(-ENOMEM, "fut_create_task: out of memory");
  memset(c, 0, hdr_size(debug));
  c->cap = (uint32_t)cap & ((1u << 30) - 1);
  c->debug = debug;
  int err = 0;
  if (debug) {
    err = fut__stack_get(&ts->cache, size, &t->stack);
  } else if ((c->rs = run_stack(ts, size, &err))) {
    t->stack = c->rs->st;
  }
  if (err) {
    fut__free(c);
    return err;
  }
  /* The record holds the task's cold fields (a name given already moves
   * in): one allocation per compact task. */
  if (t->cold) {
    c->cold = *t->cold;
    fut__free(t->cold);
  }
  t->cold = &c->cold;
  t->has_cmp = true;
  return 0;
}

bool fut__compact_ctx_at_create(const struct fut__task *t) {
  const struct fut__compact *c = fut__task_cmp(t);
  return !c || c->debug;
}

void fut__compact_free(struct fut__task_state *ts, struct fut__task *t,
                       bool abandoned) {
  struct fut__compact *c = fut__task_cmp(t);
  if (!c)
    return;
  if (c->debug) {
    unprotect(t);
    if (abandoned)
      fut__stack_discard(&ts->cache, &t->stack);
    else
      fut__stack_put(&ts->cache, &t->stack);
  } else {
    if (c->rs->owner == t) {
      c->rs->owner = NULL;
      if (abandoned) /* its frames' poison stays behind */
        stack_open(t->stack.lo, fut__stack_size(&t->stack));
    }
    t->stack.lo = NULL;
  }
  /* The record stays, as the task's cold fields (t->cold), until the task
   * is freed: no call here on a compact task's end. */
  t->has_cmp = false;
}

void fut__compact_close(struct fut__task_state *ts) {
  struct fut__run_stacks *r = ts->run;
  if (!r)
    return;
  for (unsigned i = 0; i < r->n; i++)
    fut__stack_discard(&ts->cache, &r->rs[i].st);
  fut__free(r);
  ts->run = NULL;
}

/* ---- the copies ---------------------------------------------------------- */

/* Where the last reservation on this thread probed the stack, and how far
 * below that probe a switch-out's saved stack pointer was found (learnt at
 * the first switch-out: the distance is fixed by the code between the two,
 * see switch_out in await.c; until then a generous guess). */
static _Thread_local uintptr_t last_probe;
static _Thread_local size_t probe_slack;
static _Thread_local bool slack_learnt;
#define SLACK_GUESS 1024

/* noinline: the probe's distance to the switch must not depend on the
 * caller. */
__attribute__((noinline)) int fut__compact_reserve(struct fut__task *t,
                                                   const char *what) {
  struct fut__compact *c = fut__task_cmp(t);
  volatile char probe = 0;
  last_probe = (uintptr_t)&probe;
  size_t need = (size_t)((uintptr_t)top_of(t) - last_probe) +
                (slack_learnt ? probe_slack : SLACK_GUESS);
  need = (need + 15) & ~(size_t)15;
  if (need > fut__stack_size(&t->stack))
    need = fut__stack_size(&t->stack);
  if (need <= 1024)
    typical_cap = (uint32_t)need;
  /* Reuse the buffer unless it is too small, or twice too big (a deep
   * call chain returned: give the memory back). */
  if (need <= c->cap && c->cap <= 2 * need + 64)
    return 0;
  if (need > IMG_MAX)
    return fut__error(-ENOMEM,
                      "%s: the image of compact task '%s' (%zu bytes) is "
                      "too large",
                      what, tname(t, (char[32]){0}), need);
  struct fut__compact *n = fut__realloc(c, hdr_size(c->debug) + need);
  if (!n) {
    if (need <= c->cap)
      return 0; /* could not shrink: keep it */
    return fut__error(-ENOMEM,
                      "%s: out of memory for the image of compact task "
                      "'%s' (%zu bytes of stack to copy out)",
                      what, tname(t, (char[32]){0}), need);
  }
  n->cap = (uint32_t)need & ((1u << 30) - 1);
  t->cold = &n->cold;
  return 0;
}

/* The owner's frames to its buffer; the run stack is free. */
static void evict(struct fut__run_stack *rs) {
  struct fut__task *o = rs->owner;
  struct fut__compact *c = fut__task_cmp(o);
  char *from = top_of(o) - c->len;
  stack_open(from, c->len);
  memcpy(img_of(c), from, c->len);
  rs->owner = NULL;
}

static void copy_in(struct fut__task *t) {
  struct fut__compact *c = fut__task_cmp(t);
  char *to = top_of(t) - c->len;
  stack_open_for_write(to, c->len);
  memcpy(to, img_of(c), c->len);
}

void fut__compact_enter(struct fut__task *t) {
  struct fut__compact *c = fut__task_cmp(t);
  if (c->debug) {
    unprotect(t);
    if (c->len)
      copy_in(t);
    return;
  }
  struct fut__run_stack *rs = c->rs;
  if (rs->owner == t)
    return;
  if (rs->owner)
    evict(rs);
  if (c->len) {
    copy_in(t);
  } else {
    /* First run: the stack may hold stale ASan poison of other tasks'
     * frames, which fut__ctx_make's stores and the new frames would trip
     * over; for valgrind only the first frame's bytes (not the canary,
     * which must stay defined). */
    stack_open(t->stack.lo, fut__stack_size(&t->stack));
    stack_open_for_write(top_of(t) - 256, 256);
    fut__task_make_ctx(t);
  }
  rs->owner = t;
}

void fut__compact_leave(struct fut__task *t) {
  struct fut__compact *c = fut__task_cmp(t);
  if (t->state == FUT__T_DONE)
    return;
  uintptr_t top = (uintptr_t)top_of(t);
#if defined(FUT_CTX_ASM)
  uintptr_t sp = (uintptr_t)t->ctx.sp;
  size_t below = last_probe > sp ? (size_t)(last_probe - sp) : 0;
  if (!slack_learnt || below > probe_slack) {
    probe_slack = below;
    slack_learnt = true;
  }
#else
  /* ucontext keeps the registers in the task; the frames end a little
   * below the probe (swapcontext's own). */
  uintptr_t sp = last_probe - SLACK_GUESS;
  if (sp < (uintptr_t)t->stack.lo)
    sp = (uintptr_t)t->stack.lo;
#endif
  size_t len = (size_t)(top - sp);
  if (len > c->cap) {
    /* The reservation guessed short (cannot happen once the slack is
     * learnt; the first guess is generous): grow on the scheduler. */
    struct fut__compact *n = fut__realloc(c, hdr_size(c->debug) + len);
    if (!n)
      fatal("compact task '%s': out of memory for its %zu-byte image",
            tname(t, (char[32]){0}), len);
    n->cap = (uint32_t)len & ((1u << 30) - 1);
    c = n;
    t->cold = &n->cold;
  }
  c->len = (uint32_t)len;
  if (c->debug) {
    char *from = top_of(t) - len;
    stack_open(from, len);
    memcpy(img_of(c), from, len);
    protect(t);
  }
}
