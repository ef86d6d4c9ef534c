/* The demo (examples/run_in_executor.c) prints what the Python original
 * prints, line by line: two bytes reprs of 100 random bytes in Python's
 * b'...' notation, then the exact sum of i*i for i < 10**7. */
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

__attribute__((unused)) static bool lowhex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* Decodes a Python bytes literal body (between the quotes) written the way
 * repr() writes it; returns the byte count or -1 if it is not canonical
 * (an escape repr would not use, or a raw byte repr would escape). */
__attribute__((unused)) static int decode_canonical(const char *s, size_t n,
                                                   char quote) {
  int count = 0;
  for (size_t i = 0; i < n; i++, count++) {
    unsigned char c = (unsigned char)s[i];
    if (c != '\\') {
      if (c < 0x20 || c >= 0x7f || c == (unsigned char)quote)
        return -1;
      continue;
    }
    if (++i == n)
      return -1;
    c = (unsigned char)s[i];
    if (c == 't' || c == 'n' || c == 'r' || c == '\\' ||
        c == (unsigned char)quote)
      continue;
    if (c != 'x' || i + 2 >= n || !lowhex(s[i + 1]) || !lowhex(s[i + 2]))
      return -1;
    unsigned v = 0;
    sscanf(s + i + 1, "%2x", &v);
    /* \xNN only for what has no other form. */
    if ((v >= 0x20 && v < 0x7f) || v == '\t' || v == '\n' || v == '\r')
      return -1;
    i += 2;
  }
  return count;
}

__attribute__((unused)) static void check_bytes_line(const char *line,
                                                     const char *label) {
  size_t ll = strlen(label);
  assert_int_equal(strncmp(line, label, ll), 0);
  const char *p = line + ll;
  assert_int_equal(p[0], ' ');
  assert_int_equal(p[1], 'b');
  char q = p[2];
  assert_true(q == '\'' || q == '"');
  const char *body = p + 3;
  size_t n = strlen(body);
  assert_true(n >= 1);
  assert_int_equal(body[n - 1], q);
  n--;
  /* Python picks " only when the bytes hold ' and no ". */
  if (q == '"')
    assert_non_null(memchr(body, '\'', n));
  assert_int_equal(decode_canonical(body, n, q), 100);
}

static void test_demo_output_matches_python(void **state) {
  (void)state;
#ifndef FUT_DEMO_PATH
  /* Examples not built (FUT_BUILD_EXAMPLES=OFF): nothing to run. */
  skip();
#else
  FILE *p = popen(FUT_DEMO_PATH " 2>&1", "r");
  assert_non_null(p);
  char lines[4][1024];
  int n = 0;
  while (n < 4 && fgets(lines[n], sizeof lines[n], p)) {
    lines[n][strcspn(lines[n], "\n")] = '\0';
    n++;
  }
  int status = pclose(p);
  assert_int_equal(status, 0);
  assert_int_equal(n, 3);
  regex_t re;
  assert_int_equal(regcomp(&re,
                           "^(default|custom) thread pool b('.*'|\".*\")$",
                           REG_EXTENDED | REG_NOSUB),
                   0);
  assert_int_equal(regexec(&re, lines[0], 0, NULL, 0), 0);
  assert_int_equal(regexec(&re, lines[1], 0, NULL, 0), 0);
  regfree(&re);
  check_bytes_line(lines[0], "default thread pool");
  check_bytes_line(lines[1], "custom thread pool");
  /* sum(i * i for i in range(10 ** 7)), as Python prints it. */
  assert_string_equal(lines[2], "custom process pool 333333283333335000000");
#endif
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_demo_output_matches_python),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
