# The subprocess example (its man page's EXAMPLE) runs as a smoke test:
# `ls -l /` line by line; and once on a command that stays silent, which it
# must kill after its one-second timeout (exit status 1, stderr says so).
if(TARGET subprocess_pipe)
  add_test(NAME example_subprocess_pipe COMMAND subprocess_pipe)
  set_tests_properties(example_subprocess_pipe PROPERTIES TIMEOUT 60
    PASS_REGULAR_EXPRESSION "exit code 0, [1-9][0-9]* lines")
  add_test(NAME example_subprocess_pipe_timeout
           COMMAND subprocess_pipe sleep 30)
  set_tests_properties(example_subprocess_pipe_timeout PROPERTIES TIMEOUT 60
    PASS_REGULAR_EXPRESSION "exit code -9, 0 lines")
endif()
