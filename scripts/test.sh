#!/usr/bin/env bash
# `ninja test`: builds with warnings as errors and runs the whole suite.
source "$(dirname "$0")/common.sh"
# libnng-dev: the bridge and its tests; openssl: the certificates they make.
need_packages libcmocka-dev libnng-dev openssl
cmake_build build -DSHMRPC_BUILD_TESTS=ON -DSHMRPC_WERROR=ON
cd build
ctest --output-on-failure --timeout 300 "$@"
