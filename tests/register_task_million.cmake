# test_task_million plays a kernel without MADV_GUARD_INSTALL
# (-Wl,--wrap=madvise) and holds 10^6 live tasks (about 4.5 GB resident):
# plain builds only (sanitizers multiply the memory), run alone.
if(TARGET test_task_million)
  target_link_options(test_task_million PRIVATE "-Wl,--wrap=madvise")
  set_tests_properties(test_task_million PROPERTIES TIMEOUT 1200
    RUN_SERIAL TRUE)
  if(FUT_SANITIZE)
    set_tests_properties(test_task_million PROPERTIES DISABLED TRUE)
  endif()
endif()
