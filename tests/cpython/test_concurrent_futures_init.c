/* CPython's Lib/test/test_concurrent_futures/test_init.py (the mixins
 * InitializerMixin and FailingInitializerMixin, which CPython runs per
 * executor kind, and FailingInitializerResourcesTest) as libfuture's
 * behavioural spec: one cmocka test per CPython test method that applies
 * to C, each as <Mixin>_test_initializer_thread and _process.
 *
 * Mapping: initializer / initargs are the pools' initializer and initarg
 * options (a pointer for a thread pool, bytes for a process pool);
 * BrokenExecutor is FUT_E_BROKEN_POOL; the CRITICAL log record CPython
 * checks for ("ValueError: error in initializer") is the message the
 * broken pool gives its failed jobs and refused submissions. */
#include "cf_proc_util.h"

#include <pthread.h>

enum { WORKER_COUNT = 2 };

/* INITIALIZER_STATUS of this process (a worker process has its own). */
static char initializer_status[32] = "uninitialized";

/* Each thread's initializer writes it (a Python global, under the GIL). */
static pthread_mutex_t status_lock = PTHREAD_MUTEX_INITIALIZER;

/* init(x) */
static int init_thread(void *arg) {
  pthread_mutex_lock(&status_lock);
  snprintf(initializer_status, sizeof initializer_status, "%s",
           (const char *)arg);
  pthread_mutex_unlock(&status_lock);
  return 0;
}

static int init_process(const void *arg, size_t len) {
  if (len >= sizeof initializer_status)
    return -EINVAL;
  memcpy(initializer_status, arg, len);
  initializer_status[len] = '\0';
  return 0;
}

/* init_fail(): sleeps 0.1 s ("let some futures be scheduled"), then
 * raises ValueError('error in initializer'). */
static int init_fail_thread(void *arg) {
  (void)arg;
  pp_sleep_ns(FUT_MS(100));
  return -EINVAL;
}

static int init_fail_process(const void *arg, size_t len) {
  (void)arg;
  (void)len;
  pp_sleep_ns(FUT_MS(100));
  return -EINVAL;
}

/* get_init_status() */
static int get_init_status_call(void *arg, fut_cfuture_t *cf) {
  (void)arg;
  pthread_mutex_lock(&status_lock);
  int err = fut_cfuture_set_result_bytes(cf, initializer_status,
                                         strlen(initializer_status));
  pthread_mutex_unlock(&status_lock);
  return err;
}

static int get_init_status_bytes(const void *data, size_t len, void **out,
                                 size_t *out_len) {
  (void)data;
  (void)len;
  size_t n = strlen(initializer_status);
  char *s = malloc(n + 1);
  if (!s)
    return -ENOMEM;
  memcpy(s, initializer_status, n + 1);
  *out = s;
  *out_len = n;
  return 0;
}

static fut_executor_t *thread_pool(fut_init_fn init, void *arg) {
  fut_thread_pool_opts_t o;
  fut_thread_pool_opts_init(&o);
  o.max_workers = WORKER_COUNT;
  o.initializer = init;
  o.initarg = arg;
  fut_executor_t *ex = NULL;
  assert_int_equal(fut_thread_pool_new_ex(&o, &ex), 0);
  return ex;
}

static fut_executor_t *process_pool(fut_process_pool_init_fn init,
                                    const char *arg) {
  fut_process_pool_opts_t o;
  fut_process_pool_opts_init(&o);
  o.max_workers = WORKER_COUNT;
  o.initializer = init;
  o.initarg = arg;
  o.initarg_len = arg ? strlen(arg) : 0;
  fut_executor_t *ex = NULL;
  assert_int_equal(fut_process_pool_new_ex(&o, &ex), 0);
  return ex;
}

static void check_initialized(fut_cfuture_t **futures) {
  for (int i = 0; i < WORKER_COUNT; i++) {
    const void *d;
    size_t n;
    assert_int_equal(fut_cfuture_result_bytes(futures[i], FUT_SEC(30), &d, &n),
                     0);
    assert_int_equal(n, strlen("initialized"));
    assert_memory_equal(d, "initialized", n);
    fut_cfuture_unref(futures[i]);
  }
}

/* InitializerMixin.test_initializer (thread pool) */
static void test_InitializerMixin_test_initializer_thread(void **state) {
  (void)state;
  snprintf(initializer_status, sizeof initializer_status, "uninitialized");
  fut_executor_t *ex = thread_pool(init_thread, "initialized");
  fut_cfuture_t *futures[WORKER_COUNT];
  for (int i = 0; i < WORKER_COUNT; i++)
    assert_int_equal(
        fut_executor_submit(ex, get_init_status_call, NULL, &futures[i]), 0);
  check_initialized(futures);
  assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_FOREVER), 0);
  fut_executor_free(ex);
}

/* InitializerMixin.test_initializer (process pool) */
static void test_InitializerMixin_test_initializer_process(void **state) {
  (void)state;
  snprintf(initializer_status, sizeof initializer_status, "uninitialized");
  fut_executor_t *ex = process_pool(init_process, "initialized");
  fut_cfuture_t *futures[WORKER_COUNT];
  for (int i = 0; i < WORKER_COUNT; i++)
    futures[i] = pp_submit(ex, get_init_status_bytes, NULL, 0);
  check_initialized(futures);
  assert_int_equal(fut_executor_shutdown(ex, true, false, FUT_FOREVER), 0);
  fut_executor_free(ex);
}

/* FailingInitializerMixin.test_initializer, for either pool: a first
 * submission is refused or its future fails with BrokenExecutor; at some
 * point (30 s at most) the executor is broken, and from then on submit
 * fails. */
static void check_failing_initializer(fut_executor_t *ex,
                                      const fut_job_t *job) {
  char logged[512] = "";
  fut_cfuture_t *future = NULL;
  int err = fut_executor_submit_job(ex, job, &future);
  if (err) {
    assert_int_equal(err, FUT_E_BROKEN_POOL); /* already broken */
    snprintf(logged, sizeof logged, "%s", fut_last_error());
  } else {
    const char *msg = NULL;
    assert_int_equal(fut_cfuture_exception(future, FUT_SEC(30), &msg),
                     FUT_E_BROKEN_POOL);
    snprintf(logged, sizeof logged, "%s", msg ? msg : "");
    fut_cfuture_unref(future);
  }
  /* _assert_logged('ValueError: error in initializer') */
  assert_non_null(strstr(logged, "initializer"));
  for (int i = 0; i < 15000; i++) {
    err = fut_executor_submit_job(ex, job, &future);
    if (err)
      break;
    fut_cfuture_wait(future, FUT_SEC(30));
    fut_cfuture_unref(future);
    pp_sleep_ns(FUT_MS(2));
  }
  assert_int_equal(err, FUT_E_BROKEN_POOL); /* "executor not broken" */
  assert_int_equal(fut_executor_submit_job(ex, job, &future),
                   FUT_E_BROKEN_POOL);
  assert_non_null(strstr(fut_last_error(), "initializer"));
  fut_executor_shutdown(ex, true, false, FUT_SEC(30));
  fut_executor_free(ex);
}

/* FailingInitializerMixin.test_initializer (thread pool) */
static void test_FailingInitializerMixin_test_initializer_thread(void **state) {
  (void)state;
  fut_executor_t *ex = thread_pool(init_fail_thread, NULL);
  fut_job_t job = fut_job_call(get_init_status_call, NULL);
  check_failing_initializer(ex, &job);
}

/* FailingInitializerMixin.test_initializer (process pool) */
static void
test_FailingInitializerMixin_test_initializer_process(void **state) {
  (void)state;
  fut_executor_t *ex = process_pool(init_fail_process, NULL);
  fut_job_t job = fut_job_bytes(get_init_status_bytes, NULL, 0);
  check_failing_initializer(ex, &job);
}

#define T(name)                                                                \
  cmocka_unit_test_setup_teardown(name, pp_no_children, pp_no_children)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_InitializerMixin_test_initializer_thread),
      T(test_InitializerMixin_test_initializer_process),
      T(test_FailingInitializerMixin_test_initializer_thread),
      T(test_FailingInitializerMixin_test_initializer_process),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
