# The network tests' syscall shims (--wrap applies to the static library's
# objects too): test_net_sock fails sendfile on demand to reach
# fut_sock_sendfile's read + send fallback; test_net_dns holds getaddrinfo
# at a gate to see the DNS pool's concurrency and cancellation, and counts
# freeaddrinfo to prove no result leaks.
if(TARGET test_net_sock)
  target_link_options(test_net_sock PRIVATE "-Wl,--wrap=sendfile")
endif()
if(TARGET test_net_dns)
  target_link_options(test_net_dns PRIVATE "-Wl,--wrap=getaddrinfo"
                                           "-Wl,--wrap=freeaddrinfo")
endif()

# The example of the sock and dns man pages runs as a smoke test.
if(TARGET sock_echo)
  add_test(NAME example_sock_echo COMMAND sock_echo)
  set_tests_properties(example_sock_echo PROPERTIES TIMEOUT 60)
endif()
