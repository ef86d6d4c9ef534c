#!/bin/sh
# The one-loop-per-core example: echo_server --loops 2 on an ephemeral
# loopback port, echo_client with 40 connections, then both loops must
# have served some (SO_REUSEPORT spreads connections by their 4-tuple: all
# 40 on one loop has odds of 2^-39).
#   tests/echo_loops.sh ECHO_SERVER ECHO_CLIENT
set -eu
server=$1 client=$2
out=$(mktemp)
trap 'kill "$pid" 2>/dev/null || true; rm -f "$out"' EXIT
"$server" --host 127.0.0.1 --port 0 --loops 2 --seconds 30 --max-conns 40 \
  >"$out" 2>&1 &
pid=$!
port=""
for _ in $(seq 1 200); do
  port=$(sed -n 's/^listening on 127.0.0.1 port \([0-9]*\) with 2 loops$/\1/p' "$out")
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { echo "server did not start:"; cat "$out"; exit 1; }
"$client" --host 127.0.0.1 --port "$port" --connections 40 --messages 5
wait "$pid"
cat "$out"
a=$(sed -n 's/^loop 0: \([0-9]*\) connections$/\1/p' "$out")
b=$(sed -n 's/^loop 1: \([0-9]*\) connections$/\1/p' "$out")
[ "$((a + b))" -eq 40 ] || { echo "expected 40 connections, got $a + $b"; exit 1; }
[ "$a" -gt 0 ] && [ "$b" -gt 0 ] || { echo "a loop served nothing"; exit 1; }
echo "both loops served: $a and $b"
