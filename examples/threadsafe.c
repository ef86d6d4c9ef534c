/* Crossing threads: a plain thread starts tasks on a running loop with
 * fut_run_threadsafe and waits for their outcome on a concurrent future;
 * a task hands a blocking call to the default executor with fut_to_thread;
 * a context variable set in the main task is seen by the task it creates,
 * not by its parent's other tasks. */
#include <errno.h>
#include <future.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

static fut_ctxvar_t *request_id; /* a context variable: default NULL */

static int blocking_double(void *arg, fut_cfuture_t *cf) {
  /* Runs in a worker thread: may block. */
  return fut_cfuture_set_result_i64(cf, 2 * (int64_t)(intptr_t)arg);
}

static int handler(void *arg) {
  /* Sees the request id its creator set before creating it. */
  printf("handler: request %s\n", (const char *)fut_ctxvar_get(request_id));
  fut_t *f;
  int err = fut_to_thread(blocking_double, arg, &f);
  if (err)
    return err;
  int64_t v;
  err = fut_await_i64(f, &v);
  fut_unref(f);
  return err ? err : fut_task_return_i64(v);
}

static int serve(void *arg) {
  fut_ctxvar_set(request_id, "r-42"); /* only in this task and its children */
  fut_t *t;
  int err = fut_create_task(fut_get_running_loop(), handler, arg, NULL, &t);
  if (err)
    return err;
  int64_t v;
  err = fut_await_i64(t, &v);
  fut_unref(t);
  return err ? err : fut_task_return_i64(v);
}

static void stop(void *loop) {
  fut_loop_stop(loop);
}

static void *client(void *arg) {
  fut_loop_t *loop = arg;
  fut_cfuture_t *cf;
  int64_t v = 0;
  int err = fut_run_threadsafe(loop, serve, (void *)(intptr_t)21, &cf);
  if (!err) {
    err = fut_cfuture_result_i64(cf, FUT_SEC(10), &v);
    fut_cfuture_unref(cf);
  }
  printf("client thread: %s, result %lld\n", fut_err_name(err), (long long)v);
  fut_loop_call_soon_threadsafe(loop, stop, loop);
  return (void *)(intptr_t)(err == 0 && v == 42);
}

int main(void) {
  fut_loop_t *loop;
  if (fut_ctxvar_new(NULL, &request_id) || fut_loop_new(&loop))
    return 1;
  pthread_t th;
  if (pthread_create(&th, NULL, client, loop))
    return 1;
  fut_loop_run_forever(loop); /* until the client stops it */
  void *ok;
  pthread_join(th, &ok);
  printf("main: request %s outside the tasks\n",
         fut_ctxvar_get(request_id) ? "set" : "unset");
  fut_loop_free(loop);
  fut_ctxvar_free(request_id);
  return ok ? 0 : 1;
}
