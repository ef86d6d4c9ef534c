# The doc check (cmake/check_docs.cmake; needs no doxygen): every public
# function is documented, every int function says what it returns and its
# errors.  And the check's own test.
add_test(NAME docs_check
  COMMAND ${CMAKE_COMMAND} -DINCLUDE=${PROJECT_SOURCE_DIR}/include
          -DEXTRA=${FUT_GENERATED_INCLUDE}/future/version.h
          -P ${PROJECT_SOURCE_DIR}/cmake/check_docs.cmake)
add_test(NAME docs_check_selftest
  COMMAND ${CMAKE_COMMAND} -DCHECK=${PROJECT_SOURCE_DIR}/cmake/check_docs.cmake
          -DSRC_INCLUDE=${PROJECT_SOURCE_DIR}/include
          -DVERSION_H=${FUT_GENERATED_INCLUDE}/future/version.h
          -DWORK=${CMAKE_CURRENT_BINARY_DIR}/docs_check_selftest
          -P ${CMAKE_CURRENT_SOURCE_DIR}/docs_check_selftest.cmake)
set_tests_properties(docs_check docs_check_selftest PROPERTIES TIMEOUT 120)
