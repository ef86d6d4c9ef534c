#!/bin/sh
# Installs the built library into a temporary prefix, then builds and runs
# tests/consumer/consumer.c against it twice: through pkg-config and through
# CMake's find_package(libfuture).
set -eu
# $4: extra compiler flags (the sanitizers of a sanitized build: an
# instrumented libfuture.so needs an instrumented program).
build=$1 src=$2 cc=$3 cflags=${4:-}
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

# 2. find_package
cmake -S "$src" -B "$tmp/cbuild" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="$cflags" >/dev/null
cmake --build "$tmp/cbuild" >/dev/null
out=$(LD_LIBRARY_PATH="$libdir" "$tmp/cbuild/consumer")
echo "find_package consumer: $out"
[ "$out" = "consumer ok 42" ]
# The CMake consumer links the shared library, found in the prefix.
ldd "$tmp/cbuild/consumer" | grep -q "$libdir/libfuture.so.0"
