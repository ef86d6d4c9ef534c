# CPython's asyncio tests ported as libfuture's behavioural spec: one cmocka
# program per CPython test file, tests/cpython/test_<file>.c, registered as
# the ctest entry cpython_test_<file>.  docs/asyncio-to-libfuture.md counts
# what each ports.
file(GLOB FUT_CPYTHON_TESTS CONFIGURE_DEPENDS
     ${CMAKE_CURRENT_SOURCE_DIR}/cpython/test_*.c)
foreach(src ${FUT_CPYTHON_TESTS})
  get_filename_component(base ${src} NAME_WE)
  set(name cpython_${base})
  add_executable(${name} ${src})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src
                                             ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE future_static fut_cmocka)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES TIMEOUT 300
    ENVIRONMENT "CMOCKA_MESSAGE_OUTPUT=stdout")
endforeach()
