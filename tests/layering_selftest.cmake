# The layering check's own test: it must pass a correct tree and fail, naming
# the file and the line, on each kind of violation: a deliberately wrong
# include in a copy of the real tree, an upward include, a '..' include and
# a folder that is not a layer.
#   cmake -DSRC=<real src> -DCHECK=<check_layers.cmake> -DWORK=<scratch>
#         -P layering_selftest.cmake
cmake_minimum_required(VERSION 3.25)

# Runs the check on tree/src; expects success (want_ok) or a failure whose
# output contains `want`.
function(expect_check tree layers want_ok want)
  execute_process(
    COMMAND ${CMAKE_COMMAND} -DSRC=${tree} -DLAYERS_FROM=${layers}
            -P ${CHECK}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(all "${out}${err}")
  if(want_ok AND NOT rc EQUAL 0)
    message(FATAL_ERROR "the check rejected a correct tree (${tree}):\n${all}")
  endif()
  if(NOT want_ok)
    if(rc EQUAL 0)
      message(FATAL_ERROR "the check passed a wrong tree (${tree}):\n${all}")
    endif()
    # CMake wraps long messages (the wrap depends on the path length).
    string(REGEX REPLACE "[ \t\r\n]+" " " flat "${all}")
    string(FIND "${flat}" "${want}" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "the check failed without naming '${want}':\n${all}")
    endif()
  endif()
  message("ok: ${tree} -> rc ${rc}")
endfunction()

file(REMOVE_RECURSE ${WORK})

# 1. The real tree, then the same tree with one upward include added.
file(COPY ${SRC}/ DESTINATION ${WORK}/real/src)
set(real_layers ${WORK}/real/src/sources.cmake)
expect_check(${WORK}/real/src ${real_layers} TRUE "")
file(READ ${WORK}/real/src/loop/loop.c text)
string(REGEX MATCHALL "\n" nl "${text}")
list(LENGTH nl nlines)
math(EXPR bad_line "${nlines} + 1")
file(APPEND ${WORK}/real/src/loop/loop.c "#include \"task/internal.h\"\n")
expect_check(${WORK}/real/src ${real_layers} FALSE
             "src/loop/loop.c:${bad_line}: layer 'loop' includes \"task/internal.h\"")

# 2. A scratch tree of two layers.
set(t ${WORK}/small/src)
file(WRITE ${WORK}/small/layers.cmake "set(FUT_LAYERS low high)\n")
file(WRITE ${t}/low/internal.h "#include <stddef.h>\n")
file(WRITE ${t}/high/internal.h "#include \"low/internal.h\"\n")
file(WRITE ${t}/low/a.c "#include \"low/internal.h\"\n#include \"a.h\"\n")
file(WRITE ${t}/top.c "#include \"high/internal.h\"\n")
expect_check(${t} ${WORK}/small/layers.cmake TRUE "")
file(WRITE ${t}/low/b.c "/* b */\n\n#include \"high/internal.h\"\n")
expect_check(${t} ${WORK}/small/layers.cmake FALSE "src/low/b.c:3: layer 'low'")
file(REMOVE ${t}/low/b.c)
file(WRITE ${t}/low/c.c "#include \"../high/internal.h\"\n")
expect_check(${t} ${WORK}/small/layers.cmake FALSE "src/low/c.c:1:")
file(REMOVE ${t}/low/c.c)
file(WRITE ${t}/stray/d.c "#include \"low/internal.h\"\n")
expect_check(${t} ${WORK}/small/layers.cmake FALSE "folder 'stray' is not a layer")
message("layering self-test passed")
