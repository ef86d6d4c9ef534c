/* asyncio.locks: four workers share a counter under a lock, a semaphore
 * lets two of them "download" at a time, a barrier lines them up before
 * the last step, and an event tells main that the last one passed. */
#include <errno.h>
#include <future.h>
#include <stdio.h>

static fut_lock_t *lock;
static fut_sem_t *slots;
static fut_barrier_t *line_up;
static fut_event_t *done;
static int counter;

static int worker(void *arg) {
  int id = (int)(intptr_t)arg;
  int err = fut_sem_acquire(slots); /* at most two at a time */
  if (err)
    return err;
  fut_sleep(FUT_MS(5)); /* the "download" */
  fut_sem_release(slots);

  if ((err = fut_lock_acquire(lock))) /* -ECANCELED: not acquired */
    return err;
  counter++;
  fut_lock_release(lock);

  unsigned index;
  if ((err = fut_barrier_wait(line_up, &index)))
    return err;
  printf("worker %d passed the barrier as %u\n", id, index);
  if (index == 0)
    fut_event_set(done);
  return 0;
}

static int main_task(void *arg) {
  (void)arg;
  fut_loop_t *loop = fut_get_running_loop();
  fut_t *tasks[4];
  for (int i = 0; i < 4; i++)
    if (fut_create_task(loop, worker, (void *)(intptr_t)i, NULL, &tasks[i]))
      return -ENOMEM;
  int err = fut_event_wait(done);
  for (int i = 0; i < 4; i++) {
    int e = fut_await(tasks[i], NULL);
    if (e && !err)
      err = e;
    fut_unref(tasks[i]);
  }
  printf("counter: %d\n", counter); /* 4 */
  return err;
}

int main(void) {
  if (fut_lock_new(&lock) || fut_sem_new(2, &slots) ||
      fut_barrier_new(4, &line_up) || fut_event_new(&done))
    return 1;
  int err = fut_run(main_task, NULL, NULL);
  fut_lock_free(lock);
  fut_sem_free(slots);
  fut_barrier_free(line_up);
  fut_event_free(done);
  if (err)
    fprintf(stderr, "sync_locks: %s\n", fut_strerror(err));
  return err ? 1 : 0;
}
