# The ABI check's own test: a list with one symbol the library does not
# export (as if it had been removed from the library) must fail, naming the
# symbol; a list missing one exported symbol (a new symbol not yet listed)
# must fail, naming it; the list as generated must pass.
#   cmake -DLIB=<libfuture.so> -DCHECK=<check_abi.cmake> -DWORK=<dir> -P ...
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
function(run_check list expect_ok expect_text)
  execute_process(COMMAND ${CMAKE_COMMAND} -DLIB=${LIB} -DSYMBOLS=${list}
    -P ${CHECK} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(all "${out}${err}")
  if(expect_ok AND NOT rc EQUAL 0)
    message(FATAL_ERROR "the ABI check failed on ${list}:\n${all}")
  endif()
  if(NOT expect_ok AND rc EQUAL 0)
    message(FATAL_ERROR "the ABI check passed on ${list}, it must fail:\n${all}")
  endif()
  # CMake wraps long messages (the wrap depends on the path length).
  string(REGEX REPLACE "[ \t\r\n]+" " " flat "${all}")
  string(FIND "${flat}" "${expect_text}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "the ABI check's output on ${list} does not say "
      "'${expect_text}':\n${all}")
  endif()
  message("ok: ${list}: ${expect_text}")
endfunction()

# 1. The list generated from the library passes.
execute_process(COMMAND ${CMAKE_COMMAND} -DLIB=${LIB}
  -DSYMBOLS=${WORK}/good.symbols -DUPDATE=ON -P ${CHECK} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "abi-update failed")
endif()
run_check(${WORK}/good.symbols TRUE "match")

# 2. One extra listed symbol: removed from the library without a bump.
file(READ ${WORK}/good.symbols good)
file(WRITE ${WORK}/removed.symbols "${good}fut_selftest_removed_symbol\n")
run_check(${WORK}/removed.symbols FALSE
  "symbol fut_selftest_removed_symbol disappeared")

# 3. One exported symbol missing from the list: new, not yet listed.
string(REGEX MATCH "\nfut_[a-z0-9_]+\n" first "${good}")
string(STRIP "${first}" first)
string(REPLACE "\n${first}\n" "\n" missing "${good}")
file(WRITE ${WORK}/new.symbols "${missing}")
run_check(${WORK}/new.symbols FALSE "new symbol ${first} is exported")

# 4. A list of another SONAME (a bump): regenerate.
string(REGEX REPLACE "# SONAME [^\n]+" "# SONAME libfuture.so.0.0" old "${good}")
file(WRITE ${WORK}/oldsoname.symbols "${old}")
run_check(${WORK}/oldsoname.symbols FALSE "regenerate the list")
