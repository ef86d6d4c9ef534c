/* The task stack free lists (issue 17's lifecycle cliff): stacks are
 * carved from arenas (one mapping for hundreds of stacks), a burst of a
 * thousand tasks recycles the stacks of the burst before it without a
 * syscall, and the loop gives back the pages of all but a few when it goes
 * idle (MADV_DONTNEED; the stacks stay for reuse).
 *
 * Linked with -Wl,--wrap=mmap,--wrap=munmap,--wrap=madvise
 * (register_stack_cache.cmake): the shim counts the mappings made for task
 * stacks (MAP_STACK), the unmaps and the MADV_DONTNEEDs. */
#include "fixture.h"
#include "task_helpers.h"

#include <stdatomic.h>
#include <sys/mman.h>

static atomic_long stack_maps, unmaps, dontneeds;

int __real_madvise(void *addr, size_t len, int advice);
int __wrap_madvise(void *addr, size_t len, int advice);
int __wrap_madvise(void *addr, size_t len, int advice) {
  if (advice == MADV_DONTNEED)
    atomic_fetch_add(&dontneeds, 1);
  return __real_madvise(addr, len, advice);
}

void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off) {
  if (flags & MAP_STACK)
    atomic_fetch_add(&stack_maps, 1);
  return __real_mmap(addr, len, prot, flags, fd, off);
}

int __real_munmap(void *addr, size_t len);
int __wrap_munmap(void *addr, size_t len);
int __wrap_munmap(void *addr, size_t len) {
  atomic_fetch_add(&unmaps, 1);
  return __real_munmap(addr, len);
}

enum { BURST = 1000, KEEP = 256 };

static int one_step(void *arg) {
  (void)arg;
  return fut_yield();
}

/* BURST tasks, each yielding once, all awaited: the loop never blocks in
 * between (there is always ready work). */
static void burst(fut_loop_t *loop) {
  static fut_t *ts[BURST];
  for (int i = 0; i < BURST; i++)
    ts[i] = spawn(loop, one_step, NULL);
  for (int i = 0; i < BURST; i++) {
    assert_int_equal(fut_await(ts[i], NULL), 0);
    fut_unref(ts[i]);
  }
}

static int bursts_body(void *arg) {
  long *maps = arg;
  fut_loop_t *loop = fut_get_running_loop();
  long m0 = atomic_load(&stack_maps);
  burst(loop);
  maps[0] = atomic_load(&stack_maps) - m0;
  long u0 = atomic_load(&unmaps);
  burst(loop); /* the cache holds the first burst's stacks */
  maps[1] = atomic_load(&stack_maps) - m0 - maps[0];
  maps[2] = atomic_load(&unmaps) - u0;
  return 0;
}

static void test_bursts_recycle_stacks(void **state) {
  fut_loop_t *loop = *state;
  long maps[3];
  assert_int_equal(run_main(loop, bursts_body, maps), 0);
  /* The first burst: a few arenas at most (none when main's arena, mapped
   * before, holds them all: 1,024 default stacks), not a mapping per
   * stack */
  printf("[ INFO     ] first burst: %ld arena mapping(s)\n", maps[0]);
  assert_true(maps[0] >= 0 && maps[0] <= 4);
  assert_int_equal(maps[1], 0); /* the second burst mapped nothing */
  assert_int_equal(maps[2], 0); /* and unmapped nothing */
  /* Idle: the loop is about to block; the free stacks beyond KEEP give
   * their pages back, oldest first, and stay mapped. */
  long u0 = atomic_load(&unmaps), d0 = atomic_load(&dontneeds);
  assert_int_equal(fut_loop_run_once(loop, 1000000), 0);
  long trimmed = atomic_load(&dontneeds) - d0;
  assert_true(trimmed >= BURST + 1 - KEEP - 1 && trimmed <= BURST + 1 - KEEP);
  assert_int_equal(atomic_load(&unmaps) - u0, 0);
  /* Idle again: nothing more to give back. */
  d0 = atomic_load(&dontneeds);
  assert_int_equal(fut_loop_run_once(loop, 1000), 0);
  assert_int_equal(atomic_load(&dontneeds) - d0, 0);
  /* The next burst maps nothing: the given-back stacks are reused. */
  long m[3];
  assert_int_equal(run_main(loop, bursts_body, m), 0);
  assert_int_equal(m[0], 0);
  assert_int_equal(m[1], 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FX_LOOP_TEST(test_bursts_recycle_stacks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
