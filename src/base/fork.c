/* The process's fork counter: one pthread_atfork handler for the whole
 * library, registered when the library is loaded.  The loop, the thread
 * pool and the process pool compare the count they recorded with it to
 * refuse use in a forked child (DESIGN.md §5). */
#include "base/internal.h"

atomic_uint fut__fork_gen;

static void on_fork_child(void) {
  atomic_fetch_add(&fut__fork_gen, 1);
}

__attribute__((constructor)) static void fork_counter_init(void) {
  pthread_atfork(NULL, NULL, on_fork_child);
}
