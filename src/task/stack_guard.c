/* Stack overflow reports: the SIGSEGV handler that turns a hit of a guard
 * region (a stack's own, or its arena's) into a message naming the task,
 * the report of a canary found overwritten at a switch-out (stacks
 * without a guard of their own, see stack.c), and in debug mode an access
 * to the protected stack of a suspended compact task (compact.c). */
#include "task/internal.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- canary hits --------------------------------------------------------- */

_Noreturn void fut__stack_canary_hit(const struct fut__stack *s,
                                     const char *name) {
  char buf[32];
  if (!name) {
    /* Every stack checked is a task's (t->stack): its default name. */
    const struct fut__task *t =
        fut__container_of(s, const struct fut__task, stack);
    snprintf(buf, sizeof buf, "Task-%llu", (unsigned long long)t->id);
    name = buf;
  }
  fprintf(stderr,
          "libfuture: stack overflow in task '%s': its stack of %zu bytes "
          "is exhausted (canary at %p overwritten, found at its switch-out; "
          "the stacks below it may be corrupt); give it a larger "
          "fut_task_opts_t.stack_size\n",
          name ? name : "?", fut__stack_size(s), (void *)s->lo);
  abort();
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

/* A task's name; NULL is the default, "Task-<id>", formatted here (the
 * handler cannot allocate). */
static size_t put_name(char *buf, size_t len, size_t cap, const char *name,
                       uint64_t id) {
  if (name)
    return put(buf, len, cap, name);
  char num[24];
  num[fmt_u(num, id, 10)] = '\0';
  len = put(buf, len, cap, "Task-");
  return put(buf, len, cap, num);
}

/* Runs on the alternate stack: the task's own stack is exhausted. */
static void on_segv(int sig, siginfo_t *si, void *uctx) {
  const char *name;
  uint64_t id;
  size_t size;
  if (fut__task_guard_hit(si->si_addr, &name, &id, &size)) {
    char buf[512], num[24];
    size_t n = put(buf, 0, sizeof buf, "libfuture: stack overflow in task '");
    n = put_name(buf, n, sizeof buf, name, id);
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
  if (fut__compact_fault(si->si_addr, &name, &id)) {
    /* Debug mode: the protected stack of a suspended compact task. */
    char buf[512], num[24];
    size_t n = put(buf, 0, sizeof buf, "libfuture: compact task '");
    n = put_name(buf, n, sizeof buf, name, id);
    n = put(buf, n, sizeof buf,
            "' is suspended, and its stack was accessed at 0x");
    num[fmt_u(num, (uintptr_t)si->si_addr, 16)] = '\0';
    n = put(buf, n, sizeof buf, num);
    n = put(buf, n, sizeof buf,
            ": an address of its stack was used while it was away (compact "
            "tasks must not hand out addresses of their stack; see "
            "FUT_TASK_COMPACT)\n");
    ssize_t w = write(STDERR_FILENO, buf, n);
    (void)w;
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
