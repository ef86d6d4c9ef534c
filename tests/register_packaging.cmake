# Packaging checks, run by ctest beside the cmocka programs:
#  - exports: libfuture.so exports only fut_ symbols, each in the version
#    node named after the SONAME, and carries the SONAME libfuture.so.0.MINOR;
#  - install_consumer: installs into a temporary prefix and builds a small
#    program against it through pkg-config and through find_package.
add_test(NAME exports
  COMMAND ${CMAKE_COMMAND}
    -DLIB=$<TARGET_FILE:future>
    -DSONAME=${FUT_SONAME} -DNODE=${FUT_ABI_NODE}
    -P ${CMAKE_CURRENT_SOURCE_DIR}/check_exports.cmake)
set(consumer_flags "")
if(FUT_SANITIZE)
  set(consumer_flags "-fsanitize=${FUT_SANITIZE}")
endif()
add_test(NAME install_consumer
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/install_consumer.sh
    ${PROJECT_BINARY_DIR} ${CMAKE_CURRENT_SOURCE_DIR}/consumer ${CMAKE_C_COMPILER}
        "${consumer_flags}" ${FUT_SONAME} ${PROJECT_VERSION})
set_tests_properties(exports install_consumer PROPERTIES TIMEOUT 300)
