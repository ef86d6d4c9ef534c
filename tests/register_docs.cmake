# The reference (cmake/docs.cmake): the man pages render without warnings
# and are complete, the HTML index links every header, an install holds
# them.  Registered when the docs were generated (and groff/man exist).
if(FUT_MAN)
  find_program(FUT_GROFF groff)
  find_program(FUT_MAN_PROGRAM man)
  if(FUT_GROFF OR FUT_MAN_PROGRAM)
    add_test(NAME man_pages
      COMMAND ${CMAKE_COMMAND} -DMANDIR=${FUT_DOCS_DIR}/man
              -DINCLUDE=${PROJECT_SOURCE_DIR}/include
              -DVERSION_H=${FUT_GENERATED_INCLUDE}/future/version.h
              -P ${CMAKE_CURRENT_SOURCE_DIR}/check_man.cmake)
    set_tests_properties(man_pages PROPERTIES TIMEOUT 300)
  else()
    message(STATUS "libfuture: man_pages test not registered (needs groff or man)")
  endif()
  add_test(NAME install_docs
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/install_docs.sh ${PROJECT_BINARY_DIR}
      ${PROJECT_SOURCE_DIR}/include ${FUT_HTML})
  set_tests_properties(install_docs PROPERTIES TIMEOUT 300)
endif()
if(FUT_HTML)
  add_test(NAME html_index
    COMMAND ${CMAKE_COMMAND} -DHTML=${FUT_DOCS_DIR}/html
            -DINCLUDE=${PROJECT_SOURCE_DIR}/include
            -P ${CMAKE_CURRENT_SOURCE_DIR}/check_html.cmake)
  set_tests_properties(html_index PROPERTIES TIMEOUT 120)
endif()
