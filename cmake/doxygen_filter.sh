#!/bin/sh
# Doxygen's INPUT_FILTER for the public headers (doxygen runs it as
# `sh doxygen_filter.sh <header>`): their plain /* */ comments become
# Doxygen comments, without changing the headers.
#  - the first comment of the file documents the file: "@file <name>", the
#    name from include/ on; except in future.h, whose comment is the main
#    page's text (Doxygen 1.9 cannot tell future.h and future/future.h
#    apart in @file);
#  - a comment opening a line documents what follows it;
#  - a comment after code on the same line documents that line (/**<);
#  - clang-format markers and one-line "---- section ----" rules stay plain.
case "$1" in
  */include/*) name=${1##*/include/} ;;
  *) name=${1##*/} ;;
esac
first='1s|^/\* \(.*\)$|/** @file '"$name"'\n * \1|'
[ "$name" = future.h ] && first='1b'
exec sed -e '/clang-format/b' \
  -e '/^[ \t]*\/\* -\{4\}.*-\{4\} \*\/$/b' \
  -e "$first" \
  -e '1,/\*\//b' \
  -e 's|^\([ \t]*\)/\*\([^*]\)|\1/**\2|' \
  -e 's|\([;,{]\)\([ \t]*\)/\*\([^*]\)|\1\2/**<\3|' \
  "$1"
