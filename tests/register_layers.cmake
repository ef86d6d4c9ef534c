# The layering check over the real sources, and the check's own test.
add_test(NAME layering
  COMMAND ${CMAKE_COMMAND} -DSRC=${PROJECT_SOURCE_DIR}/src
          -P ${PROJECT_SOURCE_DIR}/cmake/check_layers.cmake)
add_test(NAME layering_selftest
  COMMAND ${CMAKE_COMMAND} -DSRC=${PROJECT_SOURCE_DIR}/src
          -DCHECK=${PROJECT_SOURCE_DIR}/cmake/check_layers.cmake
          -DWORK=${CMAKE_CURRENT_BINARY_DIR}/layering_selftest
          -P ${CMAKE_CURRENT_SOURCE_DIR}/layering_selftest.cmake)
set_tests_properties(layering layering_selftest PROPERTIES TIMEOUT 120)
