# Valgrind (memcheck) over the task, timeout and combinator tests (and the
# context-bound callbacks, whose releases it checks): task
# stacks are registered with VALGRIND_STACK_REGISTER, so stack switches are
# not reported.  Skipped in sanitizer builds, and with compilers other than
# gcc (valgrind 3.19 cannot read clang 14's DWARF 5).  test_task_scale runs
# 2,000 tasks under valgrind instead of 100,000.
find_program(FUT_VALGRIND valgrind)
if(FUT_VALGRIND AND NOT FUT_SANITIZE AND CMAKE_C_COMPILER_ID STREQUAL "GNU")
  foreach(t test_task test_task_run test_task_scale test_task_timeout
            test_task_compact
            test_combine test_sync_ctxvar_callbacks)
    if(TARGET ${t})
      add_test(NAME ${t}_valgrind
        COMMAND ${FUT_VALGRIND} -q --error-exitcode=99 --leak-check=full
                --errors-for-leak-kinds=definite,indirect
                $<TARGET_FILE:${t}>)
      set_tests_properties(${t}_valgrind PROPERTIES TIMEOUT 300
        ENVIRONMENT "CMOCKA_MESSAGE_OUTPUT=stdout")
    endif()
  endforeach()
endif()
