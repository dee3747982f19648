#!/usr/bin/env bash
# `ninja fuzz`: builds the libFuzzer targets with Clang (libFuzzer,
# AddressSanitizer, UBSan) and runs each for FUZZ_SECONDS (default 60):
# build-fuzz/bin/fuzz_server from a scratch corpus in build-fuzz/corpus,
# seeded from fuzz/corpus, then build-fuzz/bin/fuzz_bridge_wire (the
# bridge's wire decoders) from build-fuzz/corpus-bridge, seeded from
# fuzz/corpus-bridge (the seeds are never written). Fails if a fuzzer finds a
# crash, a leak or a timeout; the input that caused it stays in
# build-fuzz/artifacts/TARGET/ until the next run. Arguments go to
# libFuzzer, e.g. `scripts/fuzz.sh -seed=1`.
source "$(dirname "$0")/common.sh"
need_packages clang libclang-rt-14-dev

seconds=${FUZZ_SECONDS:-60}
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
  say "FUZZ_SECONDS must be a positive number of seconds, not '$seconds'"
  exit 2
fi

# The library is instrumented for coverage and the sanitizers; the fuzz
# target adds -fsanitize=fuzzer itself. Only what the fuzzer needs is built.
flags="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
export CC=clang
# CC counts only when a folder is first configured: start over if build-fuzz
# was configured with another compiler.
if [ -f build-fuzz/CMakeCache.txt ] &&
  ! grep -q '^CMAKE_C_COMPILER:[A-Z]*=.*clang' build-fuzz/CMakeCache.txt; then
  say "build-fuzz was configured with another compiler; configuring it afresh"
  rm -rf build-fuzz
fi
cmake_build build-fuzz -DSHMRPC_BUILD_FUZZ=ON -DSHMRPC_BUILD_TESTS=OFF \
  -DSHMRPC_BUILD_BENCH=OFF -DSHMRPC_BUILD_SAMPLES=OFF \
  -DSHMRPC_BUILD_SHARED=OFF -DCMAKE_C_FLAGS="$flags"
for target in fuzz_server fuzz_bridge_wire; do
  if [ ! -x "build-fuzz/bin/$target" ]; then
    say "build-fuzz/bin/$target was not built (is build-fuzz configured with clang?)"
    exit 1
  fi
done

cd build-fuzz
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
pid=
# fuzz_server names its service fuzz-<pid> and destroys it at exit; a crash,
# a timeout or an interrupt leaves the name behind. Remove this run's name,
# and any other fuzz-<pid> whose process is gone (-jobs workers, a
# reproducer run by hand), never the name of a fuzzer still running.
# A service is several names (shmrpc.NAME, shmrpc.NAME@calls, @lock, @req,
# one FIFO per lane): all of them go.
cleanup() {
  local path owner
  [ -n "$pid" ] && rm -f "/dev/shm/shmrpc.fuzz-$pid" "/dev/shm/shmrpc.fuzz-$pid@"*
  for path in /dev/shm/shmrpc.fuzz-*; do
    owner=${path##*/shmrpc.fuzz-}
    owner=${owner%%@*}
    [[ $owner =~ ^[0-9]+$ ]] && [ ! -d "/proc/$owner" ] && rm -f "$path"
  done
  return 0
}
trap cleanup EXIT

# run_target TARGET SEEDS SCRATCH [libFuzzer args]: runs TARGET for
# FUZZ_SECONDS from the scratch corpus SCRATCH (kept between runs), seeded
# from SEEDS (never written); fails if it finds anything.
run_target() {
  local target=$1 seeds=$2 scratch=$3 rc=0 found artifact
  shift 3
  mkdir -p "$scratch"
  find "$seeds" -maxdepth 1 -type f -exec cp -t "$scratch/" {} +
  rm -rf "artifacts/$target"
  mkdir -p "artifacts/$target"
  "bin/$target" "$scratch" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -artifact_prefix="artifacts/$target/" \
    -print_final_stats=1 "$@" &
  pid=$!
  wait "$pid" || rc=$?
  cleanup
  pid=
  found=$(find "artifacts/$target" -type f | head -n 5)
  if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
    say "fuzz: $target failed (exit $rc)${found:+; reproduce with:}"
    for artifact in $found; do
      say "  build-fuzz/bin/$target build-fuzz/$artifact"
    done
    exit 1
  fi
  say "fuzz: $target: no crash in ${seconds}s; corpus: build-fuzz/$scratch ($(find "$scratch" -type f | wc -l) inputs)"
}

# The server's scratch corpus keeps its old name, corpus/.
run_target fuzz_server "$ROOT/fuzz/corpus" corpus "$@"
run_target fuzz_bridge_wire "$ROOT/fuzz/corpus-bridge" corpus-bridge "$@"
