# The ABI check: compares the symbols libfuture.so exports with the
# committed list abi/libfuture.symbols (sorted, one a line; a comment line
# "# SONAME libfuture.so.X" names the SONAME the list belongs to).
#
#   cmake -DLIB=<libfuture.so> -DSYMBOLS=<list> [-DUPDATE=ON]
#         -P cmake/check_abi.cmake
#
# Fails, naming the symbols,
#  - when a listed symbol is no longer exported while the SONAME is the
#    list's: removing a symbol breaks programs linked against that SONAME,
#    so it needs a SONAME bump (a minor release while the major is 0);
#  - when an exported symbol is not listed yet: add it (abi-update);
#  - when the library's SONAME differs from the list's (after a bump):
#    regenerate the list (abi-update).
# UPDATE=ON rewrites the list from the library instead (the abi-update
# target: cmake --build build --target abi-update).
cmake_minimum_required(VERSION 3.25)
if(NOT LIB OR NOT SYMBOLS)
  message(FATAL_ERROR "usage: cmake -DLIB=<lib> -DSYMBOLS=<list> -P check_abi.cmake")
endif()

execute_process(COMMAND objdump -p ${LIB} OUTPUT_VARIABLE dyn RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR NOT dyn MATCHES "SONAME +([^\n ]+)")
  message(FATAL_ERROR "cannot read the SONAME of ${LIB}")
endif()
set(soname "${CMAKE_MATCH_1}")

execute_process(COMMAND nm -D --defined-only ${LIB}
  OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "nm -D failed on ${LIB}")
endif()
string(REPLACE "\n" ";" lines "${out}")
set(exported "")
foreach(line IN LISTS lines)
  # "0000000000012345 T fut_new@@LIBFUTURE_0.1"; the version node itself is
  # an absolute symbol ("A LIBFUTURE_0.1"), not part of the API.
  if(line MATCHES "^[0-9a-fA-F]* +([A-Za-z]) +([^@ ]+)")
    if(NOT CMAKE_MATCH_1 STREQUAL "A")
      list(APPEND exported "${CMAKE_MATCH_2}")
    endif()
  endif()
endforeach()
list(REMOVE_DUPLICATES exported)
list(SORT exported)
list(LENGTH exported nexported)

if(UPDATE)
  string(REPLACE ";" "\n" body "${exported}")
  file(WRITE ${SYMBOLS}
    "# The symbols libfuture exports (ABI check: cmake/check_abi.cmake).\n"
    "# Regenerate: cmake --build build --target abi-update\n"
    "# SONAME ${soname}\n"
    "${body}\n")
  message("abi-update: wrote ${nexported} symbols of ${soname} to ${SYMBOLS}")
  return()
endif()

if(NOT EXISTS ${SYMBOLS})
  message(FATAL_ERROR "ABI check: ${SYMBOLS} is missing; create it with "
    "cmake --build <build> --target abi-update")
endif()
file(STRINGS ${SYMBOLS} list_lines)
set(listed "")
set(list_soname "")
foreach(line IN LISTS list_lines)
  if(line MATCHES "^# *SONAME +([^ ]+)")
    set(list_soname "${CMAKE_MATCH_1}")
  elseif(line MATCHES "^#" OR line STREQUAL "")
  else()
    string(STRIP "${line}" line)
    list(APPEND listed "${line}")
  endif()
endforeach()
if(list_soname STREQUAL "")
  message(FATAL_ERROR "ABI check: ${SYMBOLS} has no '# SONAME ...' line")
endif()

set(removed ${listed})
list(REMOVE_ITEM removed ${exported})
set(added ${exported})
if(listed)
  list(REMOVE_ITEM added ${listed})
endif()

set(fail "")
if(NOT soname STREQUAL list_soname)
  string(APPEND fail "the library's SONAME is ${soname} but ${SYMBOLS} lists "
    "the symbols of ${list_soname}: after a SONAME bump, regenerate the list "
    "(cmake --build <build> --target abi-update) and commit it\n")
else()
  foreach(s IN LISTS removed)
    string(APPEND fail "symbol ${s} disappeared from ${soname} without a "
      "SONAME bump: programs linked against ${soname} use it.  Keep it, or "
      "bump the SONAME (the minor version while the major is 0) and "
      "regenerate the list\n")
  endforeach()
endif()
foreach(s IN LISTS added)
  string(APPEND fail "new symbol ${s} is exported but not listed in "
    "${SYMBOLS}: add it (cmake --build <build> --target abi-update) and "
    "commit the list\n")
endforeach()
if(fail)
  message(FATAL_ERROR "ABI check failed:\n${fail}")
endif()
list(LENGTH listed nlisted)
message("ABI check: ${nexported} exported symbols of ${soname} match "
  "${SYMBOLS} (${nlisted} listed)")
