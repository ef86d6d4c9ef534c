/* Tasks and combinators: fut_run starts main as a task; main starts three
 * tasks that sleep and return a number, gathers them, then gives a slow
 * one 50 ms with fut_wait_for. */
#include <errno.h>
#include <future.h>
#include <stdint.h>
#include <stdio.h>

static int square_later(void *arg) {
  int64_t n = (int64_t)(intptr_t)arg;
  int err = fut_sleep(FUT_MS(10 * n)); /* -ECANCELED if cancelled */
  if (err)
    return err;
  return fut_task_return_i64(n * n);
}

static int slow(void *arg) {
  (void)arg;
  return fut_sleep(FUT_SEC(10)); /* cancelled by the timeout */
}

static int main_task(void *arg) {
  (void)arg;
  fut_loop_t *loop = fut_get_running_loop();
  fut_t *tasks[3], *all;
  for (int i = 0; i < 3; i++)
    if (fut_create_task(loop, square_later, (void *)(intptr_t)(3 - i), NULL,
                        &tasks[i]))
      return -ENOMEM;
  int err = fut_gather(loop, tasks, 3, 0, &all);
  if (!err)
    err = fut_await(all, NULL); /* 0: every task finished */
  for (int i = 0; i < 3; i++) {
    int64_t v = 0;
    if (!err)
      fut_result_i64(fut_gather_child(all, (size_t)i), &v);
    printf("task %d: %lld\n", i, (long long)v);
    fut_unref(tasks[i]);
  }
  fut_unref(all);
  if (err)
    return err;

  fut_t *t, *limited;
  if (fut_create_task(loop, slow, NULL, NULL, &t))
    return -ENOMEM;
  err = fut_wait_for(t, FUT_MS(50), &limited);
  if (!err)
    err = fut_await(limited, NULL);
  printf("wait_for: %s\n", fut_err_name(err)); /* ETIMEDOUT */
  fut_unref(limited);
  fut_unref(t);
  return err == -ETIMEDOUT ? 0 : -EINVAL;
}

int main(void) {
  int err = fut_run(main_task, NULL, NULL);
  if (err)
    fprintf(stderr, "main failed: %s\n", fut_strerror(err));
  return err ? 1 : 0;
}
