#!/usr/bin/env bash
# `ninja demo`: starts the calculator server as its own process, makes a few
# calls (one of which fails cleanly), and stops it with SIGINT.
source "$(dirname "$0")/common.sh"
cmake_build build >/dev/null
bin=build/bin
name="calc-demo-$$"
fifo=$(mktemp -u)
mkfifo "$fifo"
"$bin/calc_server" --name "$name" >"$fifo" &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -f "$fifo"' EXIT
exec 3<"$fifo"
# Wait for the server's ready line (a real signal, with a deadline).
read -r -t 10 ready <&3 || { say "demo: the server did not start"; exit 1; }
echo "$ready"

run() {
  local shown="calc_client $*"
  printf '%-40s -> ' "$shown"
  if out=$("$bin/calc_client" --name "$name" "$@" 2>&1); then
    echo "$out"
  else
    echo "$out (exit $?)"
  fi
}
run add 2 3
run mul -7 6
run div 22 7
run mod 22 7
run eval '2*(3+4)-5/2'
run div 1 0
run eval '2*(3+'
run add 9223372036854775807 1
run --timeout 100 sleep 1000
run sub 10 4
kill -INT "$server"
wait "$server"
echo "server stopped; left in /dev/shm: $(ls /dev/shm | grep -c "shmrpc.$name" || true)"
