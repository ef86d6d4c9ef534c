# test_version compares the generated header and the library with the
# version CMake was given.
if(TARGET test_version)
  target_compile_definitions(test_version PRIVATE
    FUT_EXPECT_VERSION="${PROJECT_VERSION}")
endif()
