# The layering check (docs/architecture.md): reads every #include "..." of
# the library's sources and fails, naming the file and the line, when a
# layer includes a private header of a layer above it, reaches out of its
# folder with "..", or when a folder of src/ is not a known layer.
#
#   cmake -DSRC=<dir with the layer folders> [-DLAYERS_FROM=<sources.cmake>]
#         -P cmake/check_layers.cmake
#
# The layer order comes from FUT_LAYERS in src/sources.cmake (the one place
# it is written); LAYERS_FROM lets the check's own test use a scratch tree.
cmake_minimum_required(VERSION 3.25)
if(NOT SRC)
  message(FATAL_ERROR "usage: cmake -DSRC=<src dir> -P check_layers.cmake")
endif()
if(NOT LAYERS_FROM)
  set(LAYERS_FROM ${CMAKE_CURRENT_LIST_DIR}/../src/sources.cmake)
endif()
get_filename_component(SRC "${SRC}" ABSOLUTE)
include(${LAYERS_FROM})
if(NOT FUT_LAYERS)
  message(FATAL_ERROR "${LAYERS_FROM} does not set FUT_LAYERS")
endif()

string(REPLACE ";" " < " order "${FUT_LAYERS}")

# The rank of a layer folder (0 = lowest); the top (files directly in
# src/) ranks above every layer.
list(LENGTH FUT_LAYERS top_rank)

set(violations 0)
set(nfiles 0)
set(nincludes 0)
file(GLOB_RECURSE files RELATIVE ${SRC} ${SRC}/*.c ${SRC}/*.h ${SRC}/*.S)
list(SORT files)
foreach(rel ${files})
  math(EXPR nfiles "${nfiles} + 1")
  string(FIND "${rel}" "/" slash)
  if(slash EQUAL -1)
    set(layer "(top)")
    set(rank ${top_rank})
  else()
    string(SUBSTRING "${rel}" 0 ${slash} layer)
    list(FIND FUT_LAYERS ${layer} rank)
    if(rank EQUAL -1)
      message("src/${rel}: folder '${layer}' is not a layer: add it to "
              "FUT_LAYERS in src/sources.cmake, in its place in the order")
      math(EXPR violations "${violations} + 1")
      continue()
    endif()
  endif()
  # One list element per line, empty lines kept (file(STRINGS) drops them):
  # the characters that split or group CMake lists are neutralised first.
  file(READ ${SRC}/${rel} text)
  string(REGEX REPLACE "[][;\\]" "_" text "${text}")
  string(REPLACE "\n" ";" lines "${text}")
  set(lineno 0)
  foreach(line IN LISTS lines)
    math(EXPR lineno "${lineno} + 1")
    if(NOT line MATCHES "^[ \t]*#[ \t]*include[ \t]*\"([^\"]+)\"")
      continue()
    endif()
    set(inc "${CMAKE_MATCH_1}")
    math(EXPR nincludes "${nincludes} + 1")
    if(inc MATCHES "(^|/)\\.\\.(/|$)")
      message("src/${rel}:${lineno}: #include \"${inc}\" reaches out of its "
              "folder with '..': name headers from src/ (\"<layer>/x.h\")")
      math(EXPR violations "${violations} + 1")
      continue()
    endif()
    string(FIND "${inc}" "/" islash)
    if(islash EQUAL -1 OR NOT EXISTS ${SRC}/${inc})
      continue() # the same folder, or a public header under include/
    endif()
    string(SUBSTRING "${inc}" 0 ${islash} inc_layer)
    list(FIND FUT_LAYERS ${inc_layer} inc_rank)
    if(inc_rank EQUAL -1)
      continue() # not a layer folder: reported as a folder above
    endif()
    if(inc_rank GREATER rank)
      message("src/${rel}:${lineno}: layer '${layer}' includes \"${inc}\" "
              "of the higher layer '${inc_layer}' (order: ${order})")
      math(EXPR violations "${violations} + 1")
    endif()
  endforeach()
endforeach()

if(nfiles EQUAL 0)
  message(FATAL_ERROR "layering check: no source files under ${SRC}")
endif()
if(violations GREATER 0)
  message(FATAL_ERROR "layering check: ${violations} violation(s) in "
                      "${nfiles} files")
endif()
message("layering check: ${nfiles} files, ${nincludes} includes, "
        "0 violations (order: ${order})")
