#!/usr/bin/env bash
# `ninja bench`: builds build/bin/shmrpc_bench (Release) and runs it: shmrpc
# against a Unix socket, pipes and raw shared memory, cold calls, several
# clients and the idle cost, and the bridge against nng req/rep, with the
# targets and whether each held; then the Python row (bench/python_bench.py:
# Python round trips over shmrpc against multiprocessing.Pipe and a socket
# pair).
# Arguments go to the benchmark, e.g. `scripts/bench.sh --quick --json`.
# It exits non-zero only when a run fails (a failed call, a wrong answer),
# never for a missed target.
source "$(dirname "$0")/common.sh"
# libnng-dev: the bridge rows (the bridge against nng req/rep).
need_packages cmake ninja-build gcc libnng-dev
extra=()
# As scripts/build.sh does: the tests need cmocka, the benchmark does not.
dpkg-query -W libcmocka-dev >/dev/null 2>&1 || extra+=(-DSHMRPC_BUILD_TESTS=OFF)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "${extra[@]}" >/dev/null
cmake --build build --target shmrpc_bench shmrpc_shared
# The Python row (bench/python_bench.py): Debian's python3 over the shared
# library just built; Linux only, and skipped where there is no python3.
python_bench() {
  [ -x /usr/bin/python3 ] || { say "bench: no /usr/bin/python3: no Python row"; return 0; }
  SHMRPC_LIBRARY=build/lib/libshmrpc.so.0 PYTHONPATH=python PYTHONDONTWRITEBYTECODE=1 \
    /usr/bin/python3 bench/python_bench.py "$@"
}
# With no arguments: the table, then the same results as JSON lines.
if [ "$#" -eq 0 ]; then
  build/bin/shmrpc_bench --json-file build/bench.jsonl
  echo
  python_bench --json-file build/bench.jsonl
  echo
  echo "JSON (one object per line, also in build/bench.jsonl):"
  cat build/bench.jsonl
else
  build/bin/shmrpc_bench "$@"
  python_args=()
  for arg in "$@"; do
    case $arg in --quick | --json) python_args+=("$arg") ;; esac
  done
  python_bench "${python_args[@]}"
fi
