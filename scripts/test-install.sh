#!/usr/bin/env bash
#
# Checks the installed package the way a user meets it: builds shmrpc in
# build-install/, installs it into a temporary prefix, checks what landed
# there (files, SONAME, exported symbols, pkg-config metadata, no build-tree
# paths, DESTDIR staging), then builds tests/install/consumer.c against the
# prefix three ways and runs each build:
#   1. CMake find_package(shmrpc CONFIG), target shmrpc::shmrpc (shared)
#   2. the same with shmrpc::shmrpc_static (nothing of libshmrpc.so needed)
#   3. plain cc with $(pkg-config --cflags --libs shmrpc)
# Linux only. Exits non-zero with a "FAIL:" line on the first problem.
#
# Usage: scripts/test-install.sh [--keep]   (--keep leaves the prefix)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$root/build-install"
keep=0
[[ "${1:-}" == "--keep" ]] && keep=1

fail() {
  echo "test-install: FAIL: $*" >&2
  exit 1
}
step() { echo "test-install: == $*"; }
trap 'echo "test-install: FAIL: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR

work=$(mktemp -d "${TMPDIR:-/tmp}/shmrpc-install.XXXXXX")
if ((keep)); then
  trap 'echo "test-install: kept $work"' EXIT
else
  trap 'rm -rf "$work"' EXIT
fi
prefix="$work/prefix"

# ---- Tools ------------------------------------------------------------------

for tool in cmake ninja cc readelf nm; do
  command -v "$tool" >/dev/null || fail "$tool is not installed"
done
if ! command -v pkg-config >/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    step "installing pkg-config"
    apt-get update -qq && apt-get install -y -qq pkg-config >/dev/null
  fi
  command -v pkg-config >/dev/null || fail "pkg-config is not installed"
fi

# ---- Build and install ----------------------------------------------------
# A fresh build tree each time, so no cached option from an earlier run
# decides the result. The library directory is pinned to lib/ so the paths
# below do not depend on the distribution's multiarch or lib64 layout.

step "building into $build"
rm -rf "$build"
cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_LIBDIR=lib \
  -DSHMRPC_BUILD_TESTS=OFF \
  -DSHMRPC_BUILD_SAMPLES=OFF \
  -DSHMRPC_BUILD_BENCH=OFF \
  -DSHMRPC_WERROR=ON >"$work/configure.log" ||
  { cat "$work/configure.log"; fail "configuring the project"; }
cmake --build "$build" || fail "building the project"

step "installing into $prefix"
cmake --install "$build" --prefix "$prefix" >"$work/install.log" ||
  { cat "$work/install.log"; fail "installing"; }

# ---- What was installed -----------------------------------------------------

version=$(sed -n 's/^#define SHMRPC_VERSION_STRING "\(.*\)"$/\1/p' \
  "$prefix/include/shmrpc.h")
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] ||
  fail "no SHMRPC_VERSION_STRING in the installed shmrpc.h"
major=${version%%.*}
step "checking the files of shmrpc $version"

for file in \
  include/shmrpc.h \
  include/shmrpc_payload.h \
  "lib/libshmrpc.so.$version" \
  lib/libshmrpc.a \
  lib/cmake/shmrpc/shmrpcConfig.cmake \
  lib/cmake/shmrpc/shmrpcConfigVersion.cmake \
  lib/cmake/shmrpc/shmrpcTargets.cmake \
  lib/pkgconfig/shmrpc.pc; do
  [[ -f "$prefix/$file" ]] || fail "not installed: $file"
done
[[ "$(readlink "$prefix/lib/libshmrpc.so.$major")" == "libshmrpc.so.$version" ]] ||
  fail "lib/libshmrpc.so.$major is not a link to libshmrpc.so.$version"
[[ "$(readlink "$prefix/lib/libshmrpc.so")" == "libshmrpc.so.$major" ]] ||
  fail "lib/libshmrpc.so is not a link to libshmrpc.so.$major"

library="$prefix/lib/libshmrpc.so.$version"
soname=$(readelf -d "$library" | sed -n 's/.*(SONAME).*\[\(.*\)\]$/\1/p')
[[ "$soname" == "libshmrpc.so.$major" ]] ||
  fail "SONAME is '$soname', expected libshmrpc.so.$major"

# The exported symbols must be exactly the functions the installed headers
# declare (a prototype starts in column 0, as in shmrpc.h): nothing internal
# leaks, nothing public is missing (a forgotten SHMRPC_EXTERN, or a source
# file left out of the build).
nm -D --defined-only "$library" | awk '{ print $NF }' |
  grep -Ev '^(_init|_fini|_edata|_end|__bss_start)$' | sort -u >"$work/exported"
grep -hE '^[A-Za-z_]' "$prefix/include/shmrpc.h" "$prefix/include/shmrpc_payload.h" |
  grep -Ev '^(typedef|enum|struct|extern)\b' |
  sed -n 's/^[^(]*[ *]\(shmrpc_[a-z0-9_]*\)(.*/\1/p' | sort -u >"$work/declared"
[[ -s "$work/declared" ]] || fail "found no function declarations in the headers"
grep -Ev '^shmrpc_[a-z0-9]' "$work/exported" >"$work/leaked" || true
if [[ -s "$work/leaked" ]]; then
  fail "symbols outside the public API are exported: $(tr '\n' ' ' <"$work/leaked")"
fi
if ! diff -u "$work/declared" "$work/exported" >"$work/symbols.diff"; then
  cat "$work/symbols.diff" >&2
  fail "exported symbols (+) differ from the functions the headers declare (-)"
fi
echo "test-install: $(wc -l <"$work/exported") symbols exported, all declared"

# Installed metadata must not point back into the source or build tree.
if grep -rlF -e "$build" -e "$root/include" -e "$root/src" \
  "$prefix/lib/cmake" "$prefix/lib/pkgconfig"; then
  fail "installed metadata refers to the build or source tree (files above)"
fi

# ---- pkg-config metadata ----------------------------------------------------

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
pkg-config --exists --print-errors shmrpc || fail "pkg-config cannot read shmrpc.pc"
[[ "$(pkg-config --modversion shmrpc)" == "$version" ]] ||
  fail "shmrpc.pc says version $(pkg-config --modversion shmrpc), header $version"
[[ "$(pkg-config --variable=prefix shmrpc)" == "$prefix" ]] ||
  fail "shmrpc.pc has prefix $(pkg-config --variable=prefix shmrpc), installed to $prefix"
static_libs=$(pkg-config --static --libs shmrpc)
for flag in -lshmrpc -lpthread -lrt; do
  [[ " $static_libs " == *" $flag "* ]] ||
    fail "pkg-config --static --libs shmrpc lacks $flag: $static_libs"
done

# A staged install (DESTDIR) writes the real prefix, not the staging path.
step "checking a DESTDIR install"
DESTDIR="$work/stage" cmake --install "$build" --prefix /opt/shmrpc >/dev/null
grep -qx 'prefix=/opt/shmrpc' "$work/stage/opt/shmrpc/lib/pkgconfig/shmrpc.pc" ||
  fail "DESTDIR install: shmrpc.pc does not say prefix=/opt/shmrpc"
[[ -f "$work/stage/opt/shmrpc/lib/libshmrpc.so.$version" ]] ||
  fail "DESTDIR install: library not under the staging directory"

# ---- Consumers ------------------------------------------------------------

# Runs a consumer binary with a time limit; it must print the sum and exit 0.
run_consumer() {
  local label=$1 binary=$2 output
  if ! output=$(LD_LIBRARY_PATH="$prefix/lib" timeout 60 "$binary" 2>&1); then
    echo "$output" >&2
    fail "$label: the consumer failed"
  fi
  [[ "$output" == "shmrpc $version: 4000000000000 + -1234567 = 3999998765433" ]] ||
    fail "$label: unexpected output: $output"
  echo "test-install: $label: $output"
}

# Whether binary records a need for the shared library.
needs_libshmrpc() {
  readelf -d "$1" | grep -q "(NEEDED).*\[libshmrpc\.so\.$major\]"
}

for linkage in shared static; do
  step "consumer via CMake find_package, $linkage"
  dir="$work/consumer-cmake-$linkage"
  static=OFF
  [[ $linkage == static ]] && static=ON
  cmake -S "$root/tests/install" -B "$dir" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
    -DCONSUMER_STATIC=$static >"$dir.log" ||
    { cat "$dir.log"; fail "configuring the CMake consumer ($linkage)"; }
  found=$(sed -n 's/^shmrpc_DIR:PATH=//p' "$dir/CMakeCache.txt")
  [[ "$found" == "$prefix/lib/cmake/shmrpc" ]] ||
    fail "find_package found shmrpc in '$found', not in the prefix"
  cmake --build "$dir" || fail "building the CMake consumer ($linkage)"
  if [[ $linkage == shared ]]; then
    needs_libshmrpc "$dir/consumer" || fail "the shared consumer does not need libshmrpc.so.$major"
  else
    ! needs_libshmrpc "$dir/consumer" || fail "the static consumer needs libshmrpc.so"
  fi
  run_consumer "cmake-$linkage" "$dir/consumer"
done

step "consumer via pkg-config"
# shellcheck disable=SC2046 # the flags are meant to split into words
cc -std=c11 -Wall -Wextra -Wpedantic -Werror -pthread \
  "$root/tests/install/consumer.c" $(pkg-config --cflags --libs shmrpc) \
  -o "$work/consumer-pkgconfig" || fail "building the pkg-config consumer"
needs_libshmrpc "$work/consumer-pkgconfig" ||
  fail "the pkg-config consumer does not need libshmrpc.so.$major"
run_consumer "pkg-config" "$work/consumer-pkgconfig"

echo "test-install: PASS"
