# test_demo runs the run_in_executor example: it needs the example's path
# and must be built after it.
if(TARGET test_demo)
  if(TARGET run_in_executor)
    target_compile_definitions(test_demo PRIVATE
      FUT_DEMO_PATH="$<TARGET_FILE:run_in_executor>")
    add_dependencies(test_demo run_in_executor)
  endif()
endif()
