/* Process pool jobs defined outside the main executable: in a shared
 * library linked at startup, and in a module dlopen'ed after the pool's
 * fork server started. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
/* cmocka needs the three above first. */
#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "future.h"

int pp_needed_triple(const void *data, size_t len, void **out, size_t *out_len);

static int64_t run(fut_executor_t *ex, fut_bytes_fn fn, int64_t x) {
  fut_job_t job = fut_job_bytes(fn, &x, sizeof x);
  fut_cfuture_t *cf = NULL;
  assert_int_equal(fut_executor_submit_job(ex, &job, &cf), 0);
  const void *d;
  size_t n;
  assert_int_equal(fut_cfuture_result_bytes(cf, FUT_FOREVER, &d, &n), 0);
  assert_int_equal(n, sizeof x);
  int64_t r;
  memcpy(&r, d, sizeof r);
  fut_cfuture_unref(cf);
  return r;
}

static void test_procpool_modules_needed_library(void **state) {
  (void)state;
  fut_executor_t *ex = NULL;
  assert_int_equal(fut_process_pool_new(1, &ex), 0);
  assert_int_equal(run(ex, pp_needed_triple, 14), 42);
  fut_executor_free(ex);
}

static void test_procpool_modules_dlopened_plugin(void **state) {
  (void)state;
  fut_executor_t *ex = NULL;
  assert_int_equal(fut_process_pool_new(1, &ex), 0);
  /* Loaded after the fork server exists: it does not have it mapped. */
  void *h = dlopen(PP_PLUGIN_PATH, RTLD_NOW);
  assert_non_null(h);
  fut_bytes_fn negate;
  *(void **)&negate = dlsym(h, "pp_plugin_negate");
  assert_non_null(negate);
  assert_int_equal(run(ex, negate, 7), -7);
  assert_int_equal(run(ex, negate, -9), 9);
  fut_executor_free(ex);
  dlclose(h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_procpool_modules_needed_library),
      cmocka_unit_test(test_procpool_modules_dlopened_plugin),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
