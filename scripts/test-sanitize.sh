#!/usr/bin/env bash
# `ninja test-asan` / `ninja test-tsan`: the whole suite under
# AddressSanitizer + UndefinedBehaviorSanitizer, or ThreadSanitizer over the
# suites whose threads share handles and servers in one process: test_rpc
# (server and clients as threads), test_payload, test_lanes (threads on one
# handle) and test_async (calls that do not block, a server thread stopped
# under them). The crash and hostile suites are left to ASan: TSan cannot
# follow a lock word across processes, and sees another process's writes to
# the mapping as races it cannot explain.
source "$(dirname "$0")/common.sh"
kind=${1:?usage: test-sanitize.sh asan|tsan}
need_packages libcmocka-dev libnng-dev openssl
case "$kind" in
  asan) flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
        export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
        export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ;;
  tsan) flags="-fsanitize=thread -fno-omit-frame-pointer"
        export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
        set -- "$1" -R 'test_rpc|test_payload|test_lanes|test_async' "${@:2}" ;;
  *) say "unknown sanitizer '$kind' (asan or tsan)"; exit 2 ;;
esac
cmake_build "build-$kind" -DSHMRPC_BUILD_TESTS=ON -DSHMRPC_WERROR=ON \
  -DSHMRPC_BUILD_BENCH=OFF -DSHMRPC_SOAK_MS=8000 \
  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="$flags" -DCMAKE_SHARED_LINKER_FLAGS="$flags"
cd "build-$kind"
ctest --output-on-failure --timeout 300 "${@:2}"
