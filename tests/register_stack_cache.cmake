# test_stack_cache counts the library's stack mappings through --wrap shims
# (they apply to the static library's objects too).
if(TARGET test_stack_cache)
  target_link_options(test_stack_cache PRIVATE "-Wl,--wrap=mmap"
                                               "-Wl,--wrap=munmap"
                                               "-Wl,--wrap=madvise")
endif()
