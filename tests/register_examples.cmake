# The examples the man pages show (cmake/gen_man.cmake) run as smoke tests
# (run_in_executor runs in test_demo).
foreach(ex hello_future version gather thread_pool)
  if(TARGET ${ex})
    add_test(NAME example_${ex} COMMAND ${ex})
    set_tests_properties(example_${ex} PROPERTIES TIMEOUT 60)
  endif()
endforeach()
