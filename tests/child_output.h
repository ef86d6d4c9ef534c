/* The overflow tests' children: each one's stderr comes back through a
 * pipe, read to its end, then the child is reaped. */
#ifndef TESTS_CHILD_OUTPUT_H
#define TESTS_CHILD_OUTPUT_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* Reads rfd (the pipe's read end, closed here) into out (NUL-terminated,
 * at most cap - 1 bytes), then waits for pid.  Returns its wait status, or
 * -1 when waitpid fails. */
static inline int child_output(pid_t pid, int rfd, char *out, size_t cap) {
  size_t len = 0;
  ssize_t r;
  while (len < cap - 1 && (r = read(rfd, out + len, cap - 1 - len)) > 0)
    len += (size_t)r;
  out[len] = '\0';
  close(rfd);
  int status;
  return waitpid(pid, &status, 0) == pid ? status : -1;
}

#endif
