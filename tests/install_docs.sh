#!/bin/sh
# A fresh `cmake --install` into a temporary prefix holds a man page per
# family (one per public header), libfuture(7), a page per public function
# that man resolves to its family page, and the HTML reference when built.
#   install_docs.sh <build dir> <include dir> <html: ON|OFF>
set -eu
build=$1 include=$2 html=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
man=$tmp/prefix/share/man
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -f "$man/man7/libfuture.7" ] || fail "no man7/libfuture.7"
n=0
for h in "$include"/future/*.h version; do
  base=$(basename "$h" .h)
  [ -f "$man/man3/fut_$base.3" ] || fail "no man3/fut_$base.3 for future/$base.h"
  n=$((n + 1))
done
echo "$n family pages installed in share/man/man3"
# A function's page is a link to its family's page.
grep -qx '.so man3/fut_loop.3' "$man/man3/fut_loop_new.3" || fail "fut_loop_new.3 is not a link to fut_loop.3"
if command -v man >/dev/null; then
  # `man fut_loop_new` from the installed tree opens fut_loop(3).
  MANPATH=$man man -w fut_loop_new | grep -q "man3/fut_loop.3$" || fail "man -w fut_loop_new does not resolve to fut_loop.3"
  out=$(MANPATH=$man MANWIDTH=80 man fut_loop_new 2>&1 | head -5)
  echo "$out" | grep -q "FUT_LOOP(3)" || fail "man fut_loop_new does not show fut_loop(3): $out"
  out=$(MANPATH=$man MANWIDTH=80 man 7 libfuture 2>&1 | head -5)
  echo "$out" | grep -q "LIBFUTURE(7)" || fail "man 7 libfuture: $out"
  echo "man fut_loop_new and man libfuture work from the installed tree"
fi
if [ "$html" = ON ]; then
  [ -f "$tmp/prefix/share/doc/libfuture/html/index.html" ] || fail "no share/doc/libfuture/html/index.html"
  echo "HTML reference installed in share/doc/libfuture/html"
fi
