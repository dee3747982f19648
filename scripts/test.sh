#!/usr/bin/env bash
# `ninja test`: builds with warnings as errors and runs the whole suite.
source "$(dirname "$0")/common.sh"
need_packages libcmocka-dev
cmake_build build -DSHMRPC_BUILD_TESTS=ON -DSHMRPC_WERROR=ON
cd build
ctest --output-on-failure --timeout 300 "$@"
