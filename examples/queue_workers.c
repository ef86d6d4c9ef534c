/* Queues: a producer task puts jobs into a bounded queue, three worker
 * tasks get them, and the producer joins the queue (every job done), then
 * shuts it down so that the workers' gets fail with FUT_E_QUEUE_SHUTDOWN
 * and the workers return. */
#include <future.h>
#include <stdint.h>
#include <stdio.h>

static int done_jobs;

static int worker(void *arg) {
  fut_queue_t *q = arg;
  for (;;) {
    void *job;
    int err = fut_queue_get(q, &job); /* waits while the queue is empty */
    if (err == FUT_E_QUEUE_SHUTDOWN)
      return 0;
    if (err)
      return err;
    fut_sleep(FUT_MS(1)); /* the work */
    done_jobs++;
    fut_queue_task_done(q);
  }
}

static int main_task(void *arg) {
  (void)arg;
  fut_loop_t *loop = fut_get_running_loop();
  fut_queue_t *q;
  int err = fut_queue_new(FUT_QUEUE_FIFO, 4, NULL, &q);
  if (err)
    return err;
  fut_t *workers[3];
  for (int i = 0; i < 3; i++)
    fut_create_task(loop, worker, q, NULL, &workers[i]);
  for (intptr_t job = 1; job <= 20 && !err; job++)
    err = fut_queue_put(q, (void *)job); /* waits while the queue is full */
  if (!err)
    err = fut_queue_join(q); /* every job got and done */
  fut_queue_shutdown(q, false);
  for (int i = 0; i < 3; i++) {
    fut_await(workers[i], NULL);
    fut_unref(workers[i]);
  }
  printf("%d jobs done\n", done_jobs); /* 20 jobs done */
  fut_queue_free(q);
  return err;
}

int main(void) {
  int err = fut_run(main_task, NULL, NULL);
  if (err)
    fprintf(stderr, "queue_workers: %s\n", fut_strerror(err));
  return err ? 1 : 0;
}
