# test_procpool_dlopened: fut_process_pool_create in a program that dlopens
# libfuture (no fork-server constructor in /proc/self/exe) fails with
# -ETIMEDOUT instead of hanging.  Not under sanitizers: an instrumented
# libfuture.so cannot be dlopen'ed by a plain program.
if(NOT FUT_SANITIZE AND TARGET future)
  add_executable(test_procpool_dlopened
    ${CMAKE_CURRENT_SOURCE_DIR}/procpool_dlopen_main.c)
  target_link_libraries(test_procpool_dlopened PRIVATE ${CMAKE_DL_LIBS})
  target_compile_definitions(test_procpool_dlopened PRIVATE
    LIBFUTURE_PATH="$<TARGET_FILE:future>")
  add_dependencies(test_procpool_dlopened future)
  add_test(NAME test_procpool_dlopened COMMAND test_procpool_dlopened)
  set_tests_properties(test_procpool_dlopened PROPERTIES TIMEOUT 60)
endif()
