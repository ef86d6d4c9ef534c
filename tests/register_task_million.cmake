# test_task_million plays a kernel without MADV_GUARD_INSTALL
# (-Wl,--wrap=madvise).  In the suite it holds 100,000 live tasks (about
# 0.5 GB resident, three times the 32,747 at which per-stack guards ran out
# of VMAs); .ci/run runs it once more with FUT_TEST_MILLION_N=1000000
# (about 8 GB at peak).  Plain builds only (sanitizers multiply the
# memory), run alone.
if(TARGET test_task_million)
  target_link_options(test_task_million PRIVATE "-Wl,--wrap=madvise")
  set_tests_properties(test_task_million PROPERTIES TIMEOUT 1200
    RUN_SERIAL TRUE
    ENVIRONMENT "CMOCKA_MESSAGE_OUTPUT=stdout;FUT_TEST_MILLION_N=100000")
  if(FUT_SANITIZE)
    set_tests_properties(test_task_million PROPERTIES DISABLED TRUE)
  endif()
endif()
