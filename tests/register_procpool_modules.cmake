# test_procpool_modules: process-pool jobs whose functions live in a shared
# library linked at startup and in a module dlopen'ed later (the worker
# resolves them by the module's path).  Its source is not named test_*.c so
# the generic glob does not build it without these libraries.
add_library(pp_needed SHARED ${CMAKE_CURRENT_SOURCE_DIR}/procpool_lib/pp_needed.c)
add_library(pp_plugin MODULE ${CMAKE_CURRENT_SOURCE_DIR}/procpool_lib/pp_plugin.c)
add_executable(test_procpool_modules
  ${CMAKE_CURRENT_SOURCE_DIR}/procpool_modules_main.c)
target_include_directories(test_procpool_modules PRIVATE
  ${PROJECT_SOURCE_DIR}/src ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(test_procpool_modules PRIVATE future_static pp_needed
  fut_cmocka ${CMAKE_DL_LIBS})
target_compile_definitions(test_procpool_modules PRIVATE
  PP_PLUGIN_PATH="$<TARGET_FILE:pp_plugin>")
add_dependencies(test_procpool_modules pp_plugin)
add_test(NAME test_procpool_modules COMMAND test_procpool_modules)
set_tests_properties(test_procpool_modules PROPERTIES TIMEOUT 120
  ENVIRONMENT "CMOCKA_MESSAGE_OUTPUT=stdout")
