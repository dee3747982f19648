#!/usr/bin/env bash
# tests/samples.sh BIN_DIR [LAUNCHER...]: what the calculator sample
# promises, run as its users run it. ctest runs it on Linux; test-windows.sh
# runs it under Wine (LAUNCHER = wine64).
#
#  - calc_client --in-flight N makes N calls at once through one handle and
#    prints the N results in order: four one-second sleeps on a server with
#    four workers take about one second, well under twice one call's time;
#  - calc_server --poll serves from one thread's poll loop that also reads
#    standard input: typed expressions and calls interleave, the end of
#    input leaves the calls served, SIGINT stops it cleanly.
#
# Every wait is for a real line from a process, with a deadline.
set -euo pipefail

bin=$1
shift
run=("$@")
exe=""
[ -f "$bin/calc_server.exe" ] && exe=.exe
name="calc-samples-$$"
dir=$(mktemp -d)
pids=()

fail() {
  printf 'samples.sh: FAIL: %s\n' "$*" >&2
  exit 1
}

cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$dir"
}
trap cleanup EXIT

now_ms() { date +%s%3N; }

client() {
  "${run[@]}" "$bin/calc_client$exe" "$@" | tr -d '\r'
}

# Reads one line from fd 3 into $line, waiting at most 60 s for it.
read_line() {
  IFS= read -r -t 60 line <&3 || fail "no line from the server within 60 s"
  line=${line%$'\r'}
}

# Stops the server pid $1 with SIGINT and checks it exits 0.
stop() {
  local status=0
  kill -INT "$1"
  wait "$1" || status=$?
  [ "$status" -eq 0 ] || fail "the server exited with status $status"
}

# ---- --in-flight ------------------------------------------------------------

mkfifo "$dir/out"
"${run[@]}" "$bin/calc_server$exe" --name "$name" --workers 4 >"$dir/out" &
pids+=($!)
server=$!
exec 3<"$dir/out"
read_line
case "$line" in *"serving '$name'"*) ;; *) fail "ready line: $line" ;; esac

start=$(now_ms)
[ "$(client --name "$name" sleep 1000)" = 1000 ] || fail "one sleep 1000"
one=$(($(now_ms) - start))

start=$(now_ms)
out=$(client --name "$name" --in-flight 4 sleep 1000)
four=$(($(now_ms) - start))
[ "$out" = $'1000\n1000\n1000\n1000' ] || fail "--in-flight 4 sleep 1000 printed: $out"
[ "$four" -lt $((2 * one)) ] ||
  fail "four sleeps in flight took $four ms, one alone $one ms: not at once"
echo "samples.sh: --in-flight 4 sleep 1000: $four ms (one call: $one ms)"

out=$(client --name "$name" --in-flight 3 add 20 22)
[ "$out" = $'42\n42\n42' ] || fail "--in-flight 3 add 20 22 printed: $out"

status=0
out=$(client --name "$name" --in-flight 2 div 1 0 2>&1) || status=$?
[ "$status" -eq 5 ] || fail "--in-flight 2 div 1 0 exited $status, want 5"
[ "$(grep -c 'division by zero' <<<"$out")" -eq 2 ] ||
  fail "--in-flight 2 div 1 0 said: $out"

status=0
client --name "$name" --in-flight 0 add 1 2 >/dev/null 2>&1 || status=$?
[ "$status" -eq 2 ] || fail "--in-flight 0 exited $status, want 2 (usage)"

stop "$server"
exec 3<&-
rm -f "$dir/out"

# ---- --poll -----------------------------------------------------------------

name="$name-poll"
mkfifo "$dir/in" "$dir/out"
"${run[@]}" "$bin/calc_server$exe" --name "$name" --poll <"$dir/in" >"$dir/out" &
pids+=($!)
server=$!
exec 4>"$dir/in"
exec 3<"$dir/out"
read_line
case "$line" in *"serving '$name' from a poll loop"*) ;; *) fail "ready line: $line" ;; esac

echo '1+2' >&4
read_line
[ "$line" = "= 3" ] || fail "1+2 on standard input printed '$line'"
[ "$(client --name "$name" add 2 3)" = 5 ] || fail "add 2 3 through --poll"
echo '2*(3+4)-5' >&4
read_line
[ "$line" = "= 9" ] || fail "2*(3+4)-5 printed '$line'"
out=$(client --name "$name" --in-flight 3 sleep 100)
[ "$out" = $'100\n100\n100' ] || fail "--in-flight 3 sleep 100 through --poll: $out"
echo '1/0' >&4
read_line
case "$line" in "error: division by zero"*) ;; *) fail "1/0 printed '$line'" ;; esac

exec 4>&- # the end of standard input: calls are still served
[ "$(client --name "$name" mul 6 7)" = 42 ] || fail "mul 6 7 after end of input"
stop "$server"
exec 3<&-
if [ -z "$exe" ] && ls /dev/shm | grep -q "shmrpc\.calc-samples-$$"; then
  fail "names left in /dev/shm: $(ls /dev/shm | grep "shmrpc\.calc-samples-$$")"
fi
echo "samples.sh: ok"
