/* Error codes: fut_strerror, fut_err_name, fut_last_error. */
#include "fixture.h"

#include <limits.h>
#include <pthread.h>

static void test_errors_errno_codes(void **state) {
  (void)state;
  static const struct {
    int err;
    const char *name;
  } codes[] = {{-EINVAL, "EINVAL"},       {-ENOMEM, "ENOMEM"},
               {-ECANCELED, "ECANCELED"}, {-ETIMEDOUT, "ETIMEDOUT"},
               {-EBADF, "EBADF"},         {-EPERM, "EPERM"},
               {-EBUSY, "EBUSY"},         {-EIO, "EIO"}};
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    assert_string_equal(fut_err_name(codes[i].err), codes[i].name);
    assert_string_equal(fut_strerror(codes[i].err),
                        strerror(-codes[i].err));
  }
}

static void test_errors_library_codes(void **state) {
  (void)state;
  int n = 0;
#define CHECK(name, value, msg)                                               \
  assert_int_equal(FUT_E_##name, value);                                      \
  assert_true(FUT_E_##name > FUT__E_MIN && FUT_E_##name < -4095);             \
  assert_string_equal(fut_err_name(FUT_E_##name), "FUT_E_" #name);            \
  assert_string_equal(fut_strerror(FUT_E_##name), msg);                       \
  n++;
  FUT_ERRNO_MAP(CHECK)
#undef CHECK
  assert_true(n >= 14);
  assert_string_equal(fut_err_name(FUT_E_INVALID_STATE),
                      "FUT_E_INVALID_STATE");
}

static void test_errors_success(void **state) {
  (void)state;
  assert_string_equal(fut_strerror(0), "success");
  assert_string_equal(fut_err_name(0), "0");
}

static void test_errors_unknown_code(void **state) {
  (void)state;
  static const int unknown[] = {-10500, -10999, FUT__E_MIN, 1, 12345,
                                INT_MIN, INT_MAX, -4096, -100000};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    assert_string_equal(fut_err_name(unknown[i]), "unknown");
    assert_non_null(fut_strerror(unknown[i]));
    assert_string_equal(fut_strerror(unknown[i]), "unknown error");
  }
  /* An errno-range value without a name still gets a string. */
  assert_non_null(fut_strerror(-4000));
  assert_non_null(fut_err_name(-4000));
}

static void *other_thread_error(void *arg) {
  (void)arg;
  fut_loop_t *loop = NULL;
  fut_loop_call_soon(loop, NULL, NULL, NULL); /* records a detail here */
  return NULL;
}

static void test_errors_last_error_thread_local(void **state) {
  fut_loop_t *loop = *state;
  assert_int_equal(fut_loop_add_reader(loop, -3, fx_fail_cb, NULL), -EINVAL);
  char mine[256];
  snprintf(mine, sizeof mine, "%s", fut_last_error());
  assert_non_null(strstr(mine, "negative fd"));
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, other_thread_error, NULL), 0);
  pthread_join(th, NULL);
  assert_string_equal(fut_last_error(), mine);
  assert_int_equal(fut_loop_call_soon(loop, NULL, NULL, NULL), -EINVAL);
  assert_non_null(strstr(fut_last_error(), "fut_loop_call_soon"));
}

static void test_errors_version(void **state) {
  (void)state;
  assert_int_equal(fut_version(), FUT_VERSION_HEX);
  assert_non_null(fut_version_string());
  assert_true(strlen(fut_version_string()) >= 5);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_errors_errno_codes),
      cmocka_unit_test(test_errors_library_codes),
      cmocka_unit_test(test_errors_success),
      cmocka_unit_test(test_errors_unknown_code),
      FX_LOOP_TEST(test_errors_last_error_thread_local),
      cmocka_unit_test(test_errors_version),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
