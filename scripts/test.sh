#!/usr/bin/env bash
# `ninja test`: builds with warnings as errors and runs the whole suite.
source "$(dirname "$0")/common.sh"
# python3-pytest runs the Python tests; g++ and clang++ both build the C++
# ones; libnng-dev: the bridge and its tests; openssl: the certificates they
# make.
need_packages libcmocka-dev python3-pytest g++ clang libnng-dev openssl
cmake_build build -DSHMRPC_BUILD_TESTS=ON -DSHMRPC_WERROR=ON
cd build
ctest --output-on-failure --timeout 300 "$@"
