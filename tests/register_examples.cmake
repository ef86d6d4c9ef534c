# The examples the man pages show (cmake/gen_man.cmake) run as smoke tests
# (run_in_executor runs in test_demo).
foreach(ex hello_future version gather thread_pool echo_protocol
           queue_workers)
  if(TARGET ${ex})
    add_test(NAME example_${ex} COMMAND ${ex})
    set_tests_properties(example_${ex} PROPERTIES TIMEOUT 60)
  endif()
endforeach()

# The network examples: echo_server with one loop per thread (two loops,
# SO_REUSEPORT) against echo_client, and the connections each loop served.
if(TARGET echo_server AND TARGET echo_client)
  add_test(NAME example_echo_loops
           COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/echo_loops.sh
                   $<TARGET_FILE:echo_server> $<TARGET_FILE:echo_client>)
  set_tests_properties(example_echo_loops PROPERTIES TIMEOUT 60)
endif()

# asyncio.locks' example (the sync(3) man page shows it).
if(TARGET sync_locks)
  add_test(NAME example_sync_locks COMMAND sync_locks)
  set_tests_properties(example_sync_locks PROPERTIES TIMEOUT 60)
endif()
# The sync layer's task groups and thread crossings.
foreach(ex pipeline threadsafe)
  if(TARGET ${ex})
    add_test(NAME example_${ex} COMMAND ${ex})
    set_tests_properties(example_${ex} PROPERTIES TIMEOUT 60)
  endif()
endforeach()
