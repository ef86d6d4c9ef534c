/* The portable task context: makecontext / swapcontext.  Chosen with
 * FUT_CONTEXT=ucontext (or automatically on an architecture without
 * assembly); compiles to nothing otherwise.  Slower than the assembly
 * (swapcontext saves and restores the signal mask with a syscall). */
#if defined(FUT_CTX_UCONTEXT)
#include "task/internal.h"

#include <stdint.h>

/* makecontext passes int arguments only: split the pointers. */
static void trampoline(unsigned fhi, unsigned flo, unsigned ahi, unsigned alo) {
  void (*entry)(void *);
  uintptr_t f = ((uintptr_t)fhi << 16 << 16) | flo;
  uintptr_t a = ((uintptr_t)ahi << 16 << 16) | alo;
  *(void **)(void *)&entry = (void *)f;
  entry((void *)a);
  FUT__ASSERT(!"a task entry returned");
}

void fut__ctx_make(struct fut__ctx *c, void *lo, size_t size,
                   void (*entry)(void *), void *arg) {
  FUT__ASSERT(getcontext(&c->uc) == 0);
  c->uc.uc_stack.ss_sp = lo;
  c->uc.uc_stack.ss_size = size;
  c->uc.uc_link = NULL;
  uintptr_t f = (uintptr_t) * (void **)(void *)&entry;
  uintptr_t a = (uintptr_t)arg;
  makecontext(&c->uc, (void (*)(void))trampoline, 4, (unsigned)(f >> 16 >> 16),
              (unsigned)f, (unsigned)(a >> 16 >> 16), (unsigned)a);
}

void fut__ctx_switch(struct fut__ctx *from, struct fut__ctx *to) {
  FUT__ASSERT(swapcontext(&from->uc, &to->uc) == 0);
}

#else
/* ISO C forbids an empty translation unit. */
typedef int fut__ctx_ucontext_unused;
#endif
