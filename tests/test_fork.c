/* fork: a loop is refused in a forked child until fut_loop_fork(); after it
 * timers, readers and the thread-safe door work in the child; nothing the
 * child does to its copy disturbs the parent's loop.  The child reports
 * through its exit status (0 = every check passed, else the failed step). */
#include "fixture.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loop/internal.h"

/* Runs child(arg) in a forked child and returns its exit status. */
static int run_child(int (*child)(void *), void *arg) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    _exit(child(arg));
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  return WEXITSTATUS(status);
}

struct forked {
  fut_loop_t *loop;
  int rfd, wfd;    /* a pipe the child watches after fut_loop_fork */
};

static void child_stop(void *loop) { fut_loop_stop(loop); }

static int child_refuses_then_works(void *arg) {
  struct forked *x = arg;
  fut_loop_t *loop = x->loop;
  int ran = 0;
  if (fut_loop_run_forever(loop) != FUT_E_FORKED)
    return 1;
  if (fut_loop_run_once(loop, 0) != FUT_E_FORKED)
    return 2;
  if (fut_loop_add_reader(loop, x->rfd, fx_count_cb, &ran) != FUT_E_FORKED)
    return 3;
  if (fut_loop_call_later(loop, 1, fx_count_cb, &ran, NULL) != FUT_E_FORKED)
    return 4;
  if (strstr(fut_last_error(), "fut_loop_fork") == NULL)
    return 5;
  if (fut_loop_fork(loop) != 0)
    return 6;
  /* A timer. */
  uint64_t t0 = fut_loop_time(loop);
  if (fut_loop_call_later(loop, FUT_MS(5), child_stop, loop, NULL) != 0)
    return 7;
  if (fut_loop_run_forever(loop) != 0)
    return 8;
  if (fut_loop_time(loop) - t0 < FUT_MS(5))
    return 9;
  /* A reader. */
  if (fut_loop_add_reader(loop, x->rfd, fx_count_cb, &ran) != 0)
    return 10;
  if (write(x->wfd, "c", 1) != 1)
    return 11;
  for (int i = 0; i < 100 && !ran; i++)
    if (fut_loop_run_once(loop, FUT_MS(20)) != 0)
      return 12;
  if (ran == 0)
    return 13;
  if (fut_loop_remove_reader(loop, x->rfd) != 1)
    return 14;
  /* The child's own thread-safe door. */
  int ts = 0;
  if (fut_loop_call_soon_threadsafe(loop, fx_count_cb, &ts) != 0)
    return 15;
  for (int i = 0; i < 100 && !ts; i++)
    if (fut_loop_run_once(loop, FUT_MS(20)) != 0)
      return 16;
  if (ts != 1)
    return 17;
  /* The parent's reader was re-registered for the child too. */
  fut_loop_stats_t st;
  fut_loop_stats(loop, &st);
  if (st.watchers != 1)
    return 18;
  if (fut_loop_free(loop) != 0)
    return 19;
  return 0;
}

static void test_fork_child_refuses_until_loop_fork(void **state) {
  fut_loop_t *loop = *state;
  int fds[2], pfds[2], parent_ran = 0;
  assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
  assert_int_equal(pipe2(pfds, O_CLOEXEC | O_NONBLOCK), 0);
  /* The parent watches a pipe of its own, and keeps a timer pending. */
  assert_int_equal(fut_loop_add_reader(loop, pfds[0], fx_count_cb,
                                       &parent_ran), 0);
  fut_handle_t *h;
  assert_int_equal(fut_loop_call_later(loop, FUT_SEC(60), fx_fail_cb, NULL,
                                       &h), 0);
  struct forked x = {loop, fds[0], fds[1]};
  assert_int_equal(run_child(child_refuses_then_works, &x), 0);
  /* The parent's loop is untouched by the child's fut_loop_fork + free. */
  assert_int_equal(fut_loop_run_once(loop, 0), 0);
  assert_int_equal(parent_ran, 0);
  assert_int_equal(write(pfds[1], "p", 1), 1);
  assert_true(fx_run_until_flag(loop, &parent_ran));
  int ts = 0;
  assert_int_equal(fut_loop_call_soon_threadsafe(loop, fx_count_cb, &ts), 0);
  assert_true(fx_run_until_flag(loop, &ts));
  assert_int_equal(fut_loop_remove_reader(loop, pfds[0]), 1);
  fut_handle_cancel(h);
  fut_handle_unref(h);
  for (int i = 0; i < 2; i++) {
    close(fds[i]);
    close(pfds[i]);
  }
}

/* The child drops its copy of the loop without fut_loop_fork (the common
 * case: a worker process that inherited a loop it never uses). */
static int child_frees_loop(void *arg) {
  struct forked *x = arg;
  if (fut_loop_remove_reader(x->loop, x->rfd) != 1)
    return 1;
  if (fut_loop_free(x->loop) != 0)
    return 2;
  return 0;
}

static void test_fork_child_free_keeps_parent_watchers(void **state) {
  fut_loop_t *loop = *state;
  int a[2], b[2], ran_a = 0, ran_b = 0;
  assert_int_equal(pipe2(a, O_CLOEXEC | O_NONBLOCK), 0);
  assert_int_equal(pipe2(b, O_CLOEXEC | O_NONBLOCK), 0);
  assert_int_equal(fut_loop_add_reader(loop, a[0], fx_count_cb, &ran_a), 0);
  assert_int_equal(fut_loop_add_reader(loop, b[0], fx_count_cb, &ran_b), 0);
  struct forked x = {loop, a[0], a[1]};
  assert_int_equal(run_child(child_frees_loop, &x), 0);
  /* Both of the parent's readers still fire. */
  assert_int_equal(write(a[1], "a", 1), 1);
  assert_int_equal(write(b[1], "b", 1), 1);
  assert_true(fx_run_until_flag(loop, &ran_a));
  assert_true(fx_run_until_flag(loop, &ran_b));
  assert_int_equal(fut_loop_remove_reader(loop, a[0]), 1);
  assert_int_equal(fut_loop_remove_reader(loop, b[0]), 1);
  for (int i = 0; i < 2; i++) {
    close(a[i]);
    close(b[i]);
  }
}

/* A parent thread held the thread-safe queue's lock at fork time (a
 * producer in call_soon_threadsafe): the child's copy of the lock stays
 * locked forever, and freeing the inherited loop must not wait on it. */
struct holder {
  fut_loop_t *loop;
  pthread_mutex_t m;
  pthread_cond_t cv;
  bool locked, release;
};

static void *hold_tsq_lock(void *arg) {
  struct holder *h = arg;
  pthread_mutex_lock(&h->loop->door.lock);
  pthread_mutex_lock(&h->m);
  h->locked = true;
  pthread_cond_signal(&h->cv);
  while (!h->release)
    pthread_cond_wait(&h->cv, &h->m);
  pthread_mutex_unlock(&h->m);
  pthread_mutex_unlock(&h->loop->door.lock);
  return NULL;
}

static int child_frees_with_lock_held(void *arg) {
  struct holder *h = arg;
  alarm(10); /* a hang becomes SIGALRM, not a stuck test */
  if (fut_loop_free(h->loop) != 0)
    return 1;
  return 0;
}

static void test_fork_child_free_with_queue_lock_held(void **state) {
  fut_loop_t *loop = *state;
  struct holder h = {.loop = loop};
  pthread_mutex_init(&h.m, NULL);
  pthread_cond_init(&h.cv, NULL);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, hold_tsq_lock, &h), 0);
  pthread_mutex_lock(&h.m);
  while (!h.locked)
    pthread_cond_wait(&h.cv, &h.m);
  pthread_mutex_unlock(&h.m);
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    _exit(child_frees_with_lock_held(&h));
  pthread_mutex_lock(&h.m);
  h.release = true;
  pthread_cond_signal(&h.cv);
  pthread_mutex_unlock(&h.m);
  pthread_join(th, NULL);
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  pthread_mutex_destroy(&h.m);
  pthread_cond_destroy(&h.cv);
  /* The parent's door still works. */
  int ran = 0;
  assert_int_equal(fut_loop_call_soon_threadsafe(loop, fx_count_cb, &ran), 0);
  assert_true(fx_run_until_flag(loop, &ran));
}

static void test_fork_loop_fork_closed(void **state) {
  fut_loop_t *loop = *state;
  assert_int_equal(fut_loop_fork(NULL), -EINVAL);
  assert_int_equal(fut_loop_close(loop), 0);
  assert_int_equal(fut_loop_fork(loop), FUT_E_CLOSED);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FX_LOOP_TEST(test_fork_child_refuses_until_loop_fork),
      FX_LOOP_TEST(test_fork_child_free_keeps_parent_watchers),
      FX_LOOP_TEST(test_fork_child_free_with_queue_lock_held),
      FX_LOOP_TEST(test_fork_loop_fork_closed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
