#!/bin/sh
# Reruns every cmocka program of a build with `ulimit -n LIMIT` (default
# 20): tests may fail (too few descriptors for what they do), but only
# cleanly. A program killed by a signal or stopped by the timeout is a
# defect: the library crashed or hung where it should have returned an
# error.
#   tests/run_with_fd_limit.sh BUILD_DIR [LIMIT]
set -u
build=$1 limit=${2:-20}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
n=0 passed=0 failed=0 crashed=0
for t in "$build"/tests/test_*; do
  [ -x "$t" ] && [ -f "$t" ] || continue
  case $t in *.*) continue ;; esac
  n=$((n + 1))
  ( ulimit -n "$limit" && FUT_SOAK_SECONDS=1 exec timeout -k 5 120 "$t" ) \
    >"$out" 2>&1 </dev/null
  rc=$?
  # cmocka turns a signal inside a test into a failure: look for it too.
  if grep -q "Test failed with exception" "$out"; then
    rc=255
  fi
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1))
  elif [ "$rc" -lt 124 ]; then
    failed=$((failed + 1)) # cmocka's exit code: the number of failed tests
  else
    crashed=$((crashed + 1))
    echo "CRASH or HANG under ulimit -n $limit: $t (exit $rc)"
    tail -20 "$out"
  fi
done
echo "ulimit -n $limit: $n programs, $passed passed, $failed failed" \
  "cleanly, $crashed crashed or hung"
[ "$n" -gt 0 ] && [ "$crashed" -eq 0 ]
