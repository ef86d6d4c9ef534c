# The reference, generated from the public headers' comments (the single
# source: no second copy of the text).
#  - man pages (cmake/gen_man.cmake, a CMake script: built everywhere):
#    fut_<header>(3) per header, a .so link per function, libfuture(7);
#    installed under share/man (component dev).
#  - HTML (Doxygen, when installed; else skipped with a message): the same
#    headers through an input filter that turns their /* */ comments into
#    Doxygen comments; installed under share/doc/libfuture/html.
# FUT_BUILD_DOCS: AUTO (HTML when Doxygen is found), ON (Doxygen required),
# OFF (neither man pages nor HTML).
set(FUT_BUILD_DOCS "AUTO" CACHE STRING "Build the reference: ON, OFF or AUTO")
set(FUT_MAN OFF)
set(FUT_HTML OFF)
set(FUT_DOCS_DIR ${PROJECT_BINARY_DIR}/docs)
file(GLOB FUT_PUBLIC_HEADERS CONFIGURE_DEPENDS
  ${PROJECT_SOURCE_DIR}/include/future/*.h)
list(APPEND FUT_PUBLIC_HEADERS ${PROJECT_SOURCE_DIR}/include/future.h
  ${FUT_GENERATED_INCLUDE}/future/version.h)

if(NOT FUT_BUILD_DOCS STREQUAL "OFF")
  # ---- man pages
  set(FUT_MAN ON)
  set(man_stamp ${FUT_DOCS_DIR}/man.stamp)
  file(GLOB man_examples CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/examples/*.c)
  add_custom_command(OUTPUT ${man_stamp}
    COMMAND ${CMAKE_COMMAND} -DINCLUDE=${PROJECT_SOURCE_DIR}/include
            -DVERSION_H=${FUT_GENERATED_INCLUDE}/future/version.h
            -DEXAMPLES=${PROJECT_SOURCE_DIR}/examples
            -DOUT=${FUT_DOCS_DIR}/man -DVERSION=${PROJECT_VERSION}
            -P ${PROJECT_SOURCE_DIR}/cmake/gen_man.cmake
    COMMAND ${CMAKE_COMMAND} -E touch ${man_stamp}
    DEPENDS ${FUT_PUBLIC_HEADERS} ${man_examples}
            ${PROJECT_SOURCE_DIR}/cmake/gen_man.cmake
            ${PROJECT_SOURCE_DIR}/cmake/fut_headers.cmake
    COMMENT "Man pages from the headers" VERBATIM)
  add_custom_target(man ALL DEPENDS ${man_stamp})
  install(DIRECTORY ${FUT_DOCS_DIR}/man/ DESTINATION ${CMAKE_INSTALL_MANDIR}
    COMPONENT dev)

  # ---- HTML
  find_package(Doxygen QUIET)
  if(DOXYGEN_FOUND)
    set(FUT_HTML ON)
  elseif(FUT_BUILD_DOCS STREQUAL "ON")
    message(FATAL_ERROR "FUT_BUILD_DOCS=ON but doxygen was not found "
      "(Debian: apt-get install doxygen)")
  else()
    message(STATUS "libfuture: HTML reference SKIPPED: doxygen not found "
      "(Debian: apt-get install doxygen); the man pages are still built")
  endif()
endif()
if(FUT_BUILD_DOCS STREQUAL "OFF")
  message(STATUS "libfuture: docs SKIPPED (FUT_BUILD_DOCS=OFF): no man pages, no HTML")
endif()

if(FUT_HTML)
  # The main page: include/future.h's comment (its list of headers), each
  # header linked to its page.  future.h's own page is linked by its file
  # name (Doxygen 1.9 resolves "future.h" to future/future.h).
  include(${PROJECT_SOURCE_DIR}/cmake/fut_headers.cmake)
  fut_parse_header(${PROJECT_SOURCE_DIR}/include/future.h TOP)
  set(mainpage "# libfuture ${PROJECT_VERSION} {#mainpage}\n\n")
  string(APPEND mainpage "${TOP_TITLE}. [future.h](future_8h.html): "
    "include this one header.  The text of each header's page is the "
    "header's own comments, as in the man pages (`man libfuture`, "
    "`man fut_loop`, `man fut_loop_new`).\n\nPublic headers:\n\n")
  string(APPEND mainpage "- [future.h](future_8h.html) \\htmlonly&mdash;\\endhtmlonly "
    "includes all of them\n")
  string(REPLACE "\n" ";" top_lines "${TOP_BODY}")
  set(listed "")
  foreach(l IN LISTS top_lines)
    if(l MATCHES "^ +(future/[a-z_]+\\.h) +(.*)$")
      string(APPEND mainpage "- @ref ${CMAKE_MATCH_1} \"${CMAKE_MATCH_1}\" "
        "\\htmlonly&mdash;\\endhtmlonly ${CMAKE_MATCH_2}\n")
      list(APPEND listed ${CMAKE_MATCH_1})
    endif()
  endforeach()
  # A header future.h's comment forgot still gets its link.
  file(GLOB hdrs RELATIVE ${PROJECT_SOURCE_DIR}/include
    ${PROJECT_SOURCE_DIR}/include/future/*.h)
  foreach(h IN LISTS hdrs)
    if(NOT h IN_LIST listed)
      string(APPEND mainpage "- @ref ${h} \"${h}\"\n")
    endif()
  endforeach()
  file(WRITE ${FUT_DOCS_DIR}/mainpage.md "${mainpage}")
  configure_file(${PROJECT_SOURCE_DIR}/cmake/Doxyfile.in
    ${FUT_DOCS_DIR}/Doxyfile @ONLY)
  set(html_index ${FUT_DOCS_DIR}/html/index.html)
  add_custom_command(OUTPUT ${html_index}
    COMMAND ${CMAKE_COMMAND} -E remove_directory ${FUT_DOCS_DIR}/html
    COMMAND ${DOXYGEN_EXECUTABLE} ${FUT_DOCS_DIR}/Doxyfile
    DEPENDS ${FUT_PUBLIC_HEADERS} ${FUT_DOCS_DIR}/Doxyfile
            ${FUT_DOCS_DIR}/mainpage.md
            ${PROJECT_SOURCE_DIR}/cmake/doxygen_filter.sh
    WORKING_DIRECTORY ${FUT_DOCS_DIR}
    COMMENT "HTML reference (Doxygen) from the headers" VERBATIM)
  add_custom_target(html ALL DEPENDS ${html_index})
  install(DIRECTORY ${FUT_DOCS_DIR}/html/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/html
    COMPONENT dev)
  message(STATUS "libfuture: docs: man pages in ${FUT_DOCS_DIR}/man, "
    "HTML in ${FUT_DOCS_DIR}/html (Doxygen ${DOXYGEN_VERSION})")
elseif(FUT_MAN)
  message(STATUS "libfuture: docs: man pages in ${FUT_DOCS_DIR}/man")
endif()
# For the packaging test: ON when the package holds the whole reference.
if(FUT_MAN AND FUT_HTML)
  set(FUT_DOCS ON)
else()
  set(FUT_DOCS OFF)
endif()
