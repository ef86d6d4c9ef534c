/* The version: one number in CMake's project(VERSION), seen the same
 * through the generated header's macros and the library's functions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <future.h>

static void test_macros_match_cmake(void **state) {
  (void)state;
  char s[32];
  snprintf(s, sizeof s, "%d.%d.%d", FUT_VERSION_MAJOR, FUT_VERSION_MINOR,
           FUT_VERSION_PATCH);
  assert_string_equal(s, FUT_EXPECT_VERSION);
}

static void test_functions_match_macros(void **state) {
  (void)state;
  assert_int_equal(fut_version(), FUT_VERSION_HEX);
  assert_int_equal(fut_version() >> 16, FUT_VERSION_MAJOR);
  assert_int_equal((fut_version() >> 8) & 0xff, FUT_VERSION_MINOR);
  assert_int_equal(fut_version() & 0xff, FUT_VERSION_PATCH);
  assert_string_equal(fut_version_string(), FUT_EXPECT_VERSION);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_macros_match_cmake),
      cmocka_unit_test(test_functions_match_macros),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
