# Valgrind (memcheck) over the process pool tests (issue 9, defect 8): the
# parent's side of the pool — manager thread, dispatch, frames, the fork
# handler — runs under memcheck; the fork server and the workers, exec'd
# from the program's real path (valgrind is not followed into children),
# run natively.  Same conditions as register_valgrind_tasks.cmake: gcc
# builds without sanitizers.  Left out of test_procpool:
# test_procpool_spawn_failure_soft (it lowers RLIMIT_NOFILE, under which
# valgrind itself runs out of descriptors) and
# test_procpool_forked_child_fails_cleanly (its child frees a pool made
# before the fork, whose manager-owned memory it must not touch: memcheck
# counts that as lost and sets the child's exit status).
# --child-silent-after-fork keeps the forked children's reports out.
# About 20 s and 8 s on the 2-core machine.
find_program(FUT_VALGRIND valgrind)
if(FUT_VALGRIND AND NOT FUT_SANITIZE AND CMAKE_C_COMPILER_ID STREQUAL "GNU")
  foreach(t test_procpool test_procpool_executor)
    if(TARGET ${t})
      add_test(NAME ${t}_valgrind
        COMMAND ${FUT_VALGRIND} -q --error-exitcode=99 --leak-check=full
                --errors-for-leak-kinds=definite,indirect
                --child-silent-after-fork=yes
                $<TARGET_FILE:${t}>)
      set_tests_properties(${t}_valgrind PROPERTIES TIMEOUT 300
        ENVIRONMENT
        "CMOCKA_MESSAGE_OUTPUT=stdout;FUT_TEST_SKIP=test_procpool_spawn_failure_soft,test_procpool_forked_child_fails_cleanly")
    endif()
  endforeach()
endif()
