# The ABI check (cmake/check_abi.cmake): the symbols libfuture.so exports
# against the committed abi/libfuture.symbols, and the check's own test.
add_test(NAME abi
  COMMAND ${CMAKE_COMMAND} -DLIB=$<TARGET_FILE:future>
          -DSYMBOLS=${PROJECT_SOURCE_DIR}/abi/libfuture.symbols
          -P ${PROJECT_SOURCE_DIR}/cmake/check_abi.cmake)
add_test(NAME abi_selftest
  COMMAND ${CMAKE_COMMAND} -DLIB=$<TARGET_FILE:future>
          -DCHECK=${PROJECT_SOURCE_DIR}/cmake/check_abi.cmake
          -DWORK=${CMAKE_CURRENT_BINARY_DIR}/abi_selftest
          -P ${CMAKE_CURRENT_SOURCE_DIR}/abi_selftest.cmake)
set_tests_properties(abi abi_selftest PROPERTIES TIMEOUT 120)
