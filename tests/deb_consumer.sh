#!/bin/sh
# Builds the packages with CPack (DEB and TGZ), checks their metadata,
# extracts both .debs into a scratch root with dpkg -x and builds and runs
# tests/consumer/consumer.c against that root through pkg-config.
#   deb_consumer.sh <build dir> <consumer src> <cc> <cflags> <version>
#                   <soname> <docs: ON|OFF>
set -eu
build=$1 src=$2 cc=$3 cflags=$4 version=$5 soname=$6 docs=$7
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cpack --config "$build/CPackConfig.cmake" -G "DEB;TGZ" -B "$tmp/pkg" >"$tmp/cpack.log" 2>&1 \
  || { cat "$tmp/cpack.log"; exit 1; }
rt=$(ls "$tmp"/pkg/libfuture0_"$version"_*.deb)
dev=$(ls "$tmp"/pkg/libfuture-dev_"$version"_*.deb)
ls "$tmp"/pkg/libfuture0_"$version"_*.tar.gz "$tmp"/pkg/libfuture-dev_"$version"_*.tar.gz
echo "packages: $(basename "$rt") $(basename "$dev")"

# Metadata (dpkg-deb -I): names, versions, dependencies.
dpkg-deb -I "$rt"
dpkg-deb -I "$dev"
field() { dpkg-deb -f "$1" "$2"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(field "$rt" Package)" = libfuture0 ] || fail "runtime package name: $(field "$rt" Package)"
[ "$(field "$dev" Package)" = libfuture-dev ] || fail "dev package name: $(field "$dev" Package)"
[ "$(field "$rt" Version)" = "$version" ] || fail "runtime version: $(field "$rt" Version)"
[ "$(field "$dev" Version)" = "$version" ] || fail "dev version: $(field "$dev" Version)"
case "$(field "$rt" Depends)" in
  libc6*) ;;
  *) fail "libfuture0 Depends: '$(field "$rt" Depends)', expected libc6" ;;
esac
case "$(field "$dev" Depends)" in
  *"libfuture0 (= $version)"*) ;;
  *) fail "libfuture-dev Depends: '$(field "$dev" Depends)', expected libfuture0 (= $version)" ;;
esac
echo "libfuture0 Depends: $(field "$rt" Depends)"
echo "libfuture-dev Depends: $(field "$dev" Depends)"

# Contents: the library in one package, the rest in the other.
dpkg-deb -c "$rt" >"$tmp/rt.txt"
dpkg-deb -c "$dev" >"$tmp/dev.txt"
grep -q "/$soname -> " "$tmp/rt.txt" || fail "libfuture0 lacks $soname"
grep -q "/libfuture.so.$version\$" "$tmp/rt.txt" || fail "libfuture0 lacks libfuture.so.$version"
if grep -q 'include/\|\.a$\|\.pc$\|/man/' "$tmp/rt.txt"; then fail "libfuture0 holds dev files"; fi
for f in include/future.h include/future/version.h lib/libfuture.a \
         lib/pkgconfig/libfuture.pc lib/cmake/libfuture/libfutureConfig.cmake; do
  grep -q "/usr/$f\$" "$tmp/dev.txt" || fail "libfuture-dev lacks /usr/$f"
done
grep -q "/usr/lib/libfuture.so -> " "$tmp/dev.txt" || fail "libfuture-dev lacks the libfuture.so link"
if [ "$docs" = ON ]; then
  for p in man7/libfuture.7 man3/fut_loop.3 man3/fut_future.3; do
    grep -q "/usr/share/man/$p\$" "$tmp/dev.txt" || fail "libfuture-dev lacks $p"
  done
  grep -q "/usr/share/doc/libfuture/html/index.html" "$tmp/dev.txt" \
    || fail "libfuture-dev lacks the HTML reference"
fi

# Both into a scratch root; a consumer built through pkg-config against it.
root=$tmp/root
dpkg -x "$rt" "$root"
dpkg -x "$dev" "$root"
pcdir=$(dirname "$(find "$root" -name libfuture.pc | head -n1)")
libdir=${pcdir%/pkgconfig}
export PKG_CONFIG_PATH="$pcdir"
[ "$(pkg-config --modversion libfuture)" = "$version" ] || fail "pkg-config version"
case "$(pkg-config --cflags libfuture)" in
  *"$root"/usr/*) ;;
  *) fail "pkg-config --cflags does not point into the scratch root: $(pkg-config --cflags libfuture)" ;;
esac
# shellcheck disable=SC2086
"$cc" $cflags -o "$tmp/consumer" "$src/consumer.c" $(pkg-config --cflags --libs libfuture)
out=$(LD_LIBRARY_PATH="$libdir" "$tmp/consumer")
echo "scratch-root consumer: $out"
[ "$out" = "consumer ok 42" ] || fail "consumer printed '$out'"
LD_LIBRARY_PATH="$libdir" ldd "$tmp/consumer" | grep -q "$libdir/$soname" \
  || fail "the consumer does not load $libdir/$soname"
echo "deb consumer: ok"
