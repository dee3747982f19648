#!/usr/bin/env bash
# `ninja bench`: builds build/bin/shmrpc_bench (Release) and runs it: shmrpc
# against a Unix socket, pipes and raw shared memory, cold calls, several
# clients and the idle cost, and the bridge against nng req/rep, with the
# targets and whether each held.
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
cmake --build build --target shmrpc_bench
# With no arguments: the table, then the same results as JSON lines.
if [ "$#" -eq 0 ]; then
  build/bin/shmrpc_bench --json-file build/bench.jsonl
  echo
  echo "JSON (one object per line, also in build/bench.jsonl):"
  cat build/bench.jsonl
else
  exec build/bin/shmrpc_bench "$@"
fi
