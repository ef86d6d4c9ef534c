#!/bin/sh
# Installs the built library into a temporary prefix, then builds and runs
# tests/consumer/consumer.c against it twice: through pkg-config and through
# CMake's find_package(libfuture).
set -eu
# $4: extra compiler flags (the sanitizers of a sanitized build: an
# instrumented libfuture.so needs an instrumented program).
# $5: the SONAME (libfuture.so.0.MINOR), $6: the version (MAJOR.MINOR.PATCH).
build=$1 src=$2 cc=$3 cflags=${4:-} soname=${5:-libfuture.so.0} version=${6:-0}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(find "$tmp/prefix" -name 'libfuture.pc' -exec dirname {} \; | head -n1)
libdir=${libdir%/pkgconfig}

# 1. pkg-config
PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --exists libfuture
# shellcheck disable=SC2086
"$cc" $cflags -o "$tmp/consumer_pc" "$src/consumer.c" \
  $(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --cflags --libs libfuture)
out=$(LD_LIBRARY_PATH="$libdir" "$tmp/consumer_pc")
echo "pkg-config consumer: $out"
[ "$out" = "consumer ok 42" ]

# 2. find_package (the version asked for: this MAJOR.MINOR; the package
# accepts only the same minor while the major is 0)
cmake -S "$src" -B "$tmp/cbuild" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DFUT_WANT_VERSION="${version%.*}" \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="$cflags" >/dev/null
cmake --build "$tmp/cbuild" >/dev/null
out=$(LD_LIBRARY_PATH="$libdir" "$tmp/cbuild/consumer")
echo "find_package consumer: $out"
[ "$out" = "consumer ok 42" ]
# The CMake consumer links the shared library, found in the prefix.
ldd "$tmp/cbuild/consumer" | grep -q "$libdir/$soname"
# The installed library carries that SONAME, with the symlinks to it.
[ -L "$libdir/$soname" ] && [ -L "$libdir/libfuture.so" ]
[ -f "$libdir/libfuture.so.$version" ]
# The generated version.h is installed and matches the version.
grep -q "define FUT_VERSION_MINOR $(echo "$version" | cut -d. -f2)\$" \
  "$tmp/prefix/include/future/version.h"

# 3. The CMake package refuses another minor while the major is 0 (the
# SONAME changes with it): asking for MAJOR.(MINOR+1) must fail.
major=${version%%.*} minor=$(echo "$version" | cut -d. -f2)
if [ "$major" = 0 ]; then
  if cmake -S "$src" -B "$tmp/cbuild2" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
       -DFUT_WANT_VERSION="0.$((minor + 1))" >/dev/null 2>&1; then
    echo "find_package(libfuture 0.$((minor + 1))) accepted $version" >&2
    exit 1
  fi
  echo "find_package(libfuture 0.$((minor + 1))) refused, as it should"
fi
