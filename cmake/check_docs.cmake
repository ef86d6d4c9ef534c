# The doc check: every public function of include/future/*.h is documented,
# and every one that returns int documents its return value and its errors.
#
#   cmake [-DINCLUDE=<dir holding future/*.h>] [-DEXTRA=<more headers>]
#         -P cmake/check_docs.cmake
#
# The rule.  A public function is a FUT_EXTERN (or static inline)
# declaration.  Its documentation is its own comment (the comment right
# above it, shared by the declarations that follow it without a blank
# line), the other comments of its paragraph (back to the previous blank
# line) and its section comment ("/* ---- name ----" above it); see
# cmake/fut_headers.cmake.  Then:
#  - every function needs some documentation;
#  - a function returning int needs a sentence about its return value
#    ("Returns ...", "... returns ...", "Return ...") in that documentation,
#    and one about its errors ("Errors: ...", or an error code: -EINVAL,
#    FUT_E_CLOSED, ...) there or in the header's own comment (the first
#    comment of the file, where a header lists the errors common to all its
#    functions: "Common errors: ...").
# void, bool, pointer and other getters need only the description.
# Fails naming each function that breaks the rule.
cmake_minimum_required(VERSION 3.25)
include(${CMAKE_CURRENT_LIST_DIR}/fut_headers.cmake)
if(NOT INCLUDE)
  set(INCLUDE ${CMAKE_CURRENT_LIST_DIR}/../include)
endif()
file(GLOB headers ${INCLUDE}/future/*.h)
list(APPEND headers ${EXTRA})
list(SORT headers)
set(bad "")
set(nfun 0)
set(nint 0)
foreach(h IN LISTS headers)
  get_filename_component(base ${h} NAME)
  fut_parse_header(${h} H)
  foreach(f IN LISTS H_FUNCS)
    math(EXPR nfun "${nfun} + 1")
    set(doc "${H_OWN_${f}}\n${H_PARA_${f}}\n${H_SEC_${f}}")
    string(STRIP "${doc}" doc)
    if(doc STREQUAL "")
      string(APPEND bad "future/${base}: ${f}: no comment documents it\n")
      continue()
    endif()
    if(NOT H_RET_${f} STREQUAL "int")
      continue()
    endif()
    math(EXPR nint "${nint} + 1")
    fut_pick_sentences("${doc}" "${FUT_RETURN_RE}" r)
    fut_pick_sentences("${doc}\n${H_INTRO}" "${FUT_ERRORS_RE}" e)
    if(NOT r)
      string(APPEND bad "future/${base}: ${f} returns int but its comment "
        "does not say what it returns (add a \"Returns ...\" sentence)\n")
    endif()
    if(NOT e)
      string(APPEND bad "future/${base}: ${f} returns int but its comment "
        "names no error (add an \"Errors: ...\" sentence)\n")
    endif()
  endforeach()
endforeach()
if(nfun LESS 50)
  message(FATAL_ERROR "doc check: only ${nfun} functions found: the check is broken")
endif()
if(bad)
  message(FATAL_ERROR "doc check failed:\n${bad}")
endif()
message("doc check: ${nfun} public functions documented; the ${nint} "
  "returning int document their return value and errors")
