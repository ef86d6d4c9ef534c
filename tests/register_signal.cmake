# The signal example as a smoke test: it sends itself SIGTERM and must shut
# down cleanly (exit 0).
if(TARGET graceful_shutdown)
  add_test(NAME example_graceful_shutdown
           COMMAND graceful_shutdown --self-test)
  set_tests_properties(example_graceful_shutdown PROPERTIES TIMEOUT 60)
endif()
