# The doc check's own test: the real headers plus a header whose int
# function documents no return value and no errors, and one with no comment
# at all: the check must fail and name both.
#   cmake -DCHECK=<check_docs.cmake> -DSRC_INCLUDE=<include> -DVERSION_H=<generated>
#         -DWORK=<dir> -P docs_check_selftest.cmake
file(REMOVE_RECURSE ${WORK})
file(COPY ${SRC_INCLUDE}/future DESTINATION ${WORK}/include
  FILES_MATCHING PATTERN "*.h")
file(WRITE ${WORK}/include/future/selftest.h [=[
/* libfuture — a header for the doc check's self-test. */
#ifndef FUTURE_SELFTEST_H
#define FUTURE_SELFTEST_H
#include "future/version.h"

/* Does something with a, and says nothing of what comes back. */
FUT_EXTERN int fut_selftest_no_return(int a);

FUT_EXTERN void fut_selftest_no_comment(void);

/* Does something.  Returns 0 or a negative code.  Errors: -EINVAL. */
FUT_EXTERN int fut_selftest_documented(int a);
#endif
]=])
execute_process(COMMAND ${CMAKE_COMMAND} -DINCLUDE=${WORK}/include
  -DEXTRA=${VERSION_H} -P ${CHECK}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(all "${out}${err}")
string(REGEX REPLACE "[ \n]+" " " flat "${all}")
if(rc EQUAL 0)
  message(FATAL_ERROR "the doc check passed on a bad header:\n${all}")
endif()
foreach(expect "fut_selftest_no_return returns int but its comment does not say what it returns"
               "fut_selftest_no_comment: no comment documents it")
  string(FIND "${flat}" "${expect}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "the doc check does not say '${expect}':\n${all}")
  endif()
endforeach()
string(FIND "${flat}" "fut_selftest_documented" at)
if(NOT at EQUAL -1)
  message(FATAL_ERROR "the doc check blames a documented function:\n${all}")
endif()
message("ok: the doc check fails on the bad header and names both functions")
