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

# deb_consumer: cpack -G DEB and TGZ give libfuture0 and libfuture-dev; both
# .debs go into a scratch root (dpkg -x) and a consumer is built against it
# through pkg-config.  Needs cpack, dpkg-deb and pkg-config (a Debian host).
find_program(FUT_DPKG_DEB dpkg-deb)
find_program(FUT_PKG_CONFIG pkg-config)
# Not in sanitizer builds: a package of an instrumented library is no
# package to ship.
if(FUT_SANITIZE)
  message(STATUS "libfuture: deb_consumer test not registered (sanitizer build)")
elseif(FUT_DPKG_DEB AND FUT_PKG_CONFIG AND CMAKE_CPACK_COMMAND)
  add_test(NAME deb_consumer
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/deb_consumer.sh
      ${PROJECT_BINARY_DIR} ${CMAKE_CURRENT_SOURCE_DIR}/consumer
      ${CMAKE_C_COMPILER} "${consumer_flags}" ${PROJECT_VERSION} ${FUT_SONAME}
      ${FUT_DOCS})
  set_tests_properties(deb_consumer PROPERTIES TIMEOUT 600)
else()
  message(STATUS "libfuture: deb_consumer test not registered "
    "(needs dpkg-deb and pkg-config)")
endif()
