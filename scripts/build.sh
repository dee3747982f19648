#!/usr/bin/env bash
# `ninja`: builds the library, the samples, the benchmark and (when cmocka is
# there) the tests into build/.
source "$(dirname "$0")/common.sh"
tests=OFF
dpkg-query -W libcmocka-dev >/dev/null 2>&1 && tests=ON
cmake_build build -DSHMRPC_BUILD_TESTS=$tests
