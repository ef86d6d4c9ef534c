# Packaging checks, run by ctest beside the cmocka programs:
#  - exports: libfuture.so exports only fut_ symbols and carries a versioned
#    SONAME;
#  - install_consumer: installs into a temporary prefix and builds a small
#    program against it through pkg-config and through find_package.
add_test(NAME exports
  COMMAND ${CMAKE_COMMAND}
    -DLIB=$<TARGET_FILE:future>
    -DMAJOR=${PROJECT_VERSION_MAJOR}
    -P ${CMAKE_CURRENT_SOURCE_DIR}/check_exports.cmake)
set(consumer_flags "")
if(FUT_SANITIZE)
  set(consumer_flags "-fsanitize=${FUT_SANITIZE}")
endif()
add_test(NAME install_consumer
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/install_consumer.sh
    ${PROJECT_BINARY_DIR} ${CMAKE_CURRENT_SOURCE_DIR}/consumer ${CMAKE_C_COMPILER}
        "${consumer_flags}")
set_tests_properties(exports install_consumer PROPERTIES TIMEOUT 300)
