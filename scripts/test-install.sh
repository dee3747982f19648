#!/usr/bin/env bash
#
# Checks the installed package the way a user meets it: builds shmrpc in
# build-install/, installs it into a temporary prefix, checks what landed
# there (files, SONAME, exported symbols, pkg-config metadata, no build-tree
# paths, DESTDIR staging), then builds tests/install/consumer.c and its C++
# twin consumer.cpp (the header-only shmrpc.hpp) against the prefix three
# ways and runs each build:
#   1. CMake find_package(shmrpc CONFIG), target shmrpc::shmrpc (shared)
#   2. the same with shmrpc::shmrpc_static (nothing of libshmrpc.so needed)
#   3. plain cc, g++ and clang++ with $(pkg-config --cflags --libs shmrpc)
# then the rest a user meets: `man shmrpc` and `man 3 shmrpc` from the
# prefix, `import shmrpc` from the installed Python package and from
# `pip install ./python` in a fresh venv, and README.md's examples built
# with the very commands the README shows and run against each other.
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

# shellcheck source=common.sh
source "$root/scripts/common.sh"
need_packages pkg-config g++ clang help2man doxygen man-db python3-venv
for tool in cmake ninja cc c++ clang++ readelf nm pkg-config man; do
  command -v "$tool" >/dev/null || fail "$tool is not installed"
done
python=/usr/bin/python3  # Debian's: the one python3-venv serves
[[ -x $python ]] || fail "$python is not installed"

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
  -DSHMRPC_BUILD_MAN=ON \
  -DSHMRPC_BUILD_PYTHON=ON \
  -DSHMRPC_PYTHON="$python" \
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
  include/shmrpc.hpp \
  share/man/man1/shmrpc.1 \
  share/man/man3/shmrpc.3 \
  share/man/man3/shmrpc_payload.3 \
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

# The Python package: wherever the configure step put it under lib/.
python_init=$(find "$prefix/lib" -path '*/shmrpc/__init__.py' | head -n 1)
[[ -n "$python_init" ]] || fail "no Python package shmrpc under $prefix/lib"
python_dir=$(dirname "$(dirname "$python_init")")
[[ -f "$python_dir/shmrpc/_installed.py" ]] ||
  fail "the Python package lacks _installed.py (where the library is)"

# Installed metadata must not point back into the source or build tree.
if grep -rlF -e "$build" -e "$root/include" -e "$root/src" -e "$root/python" \
  "$prefix/lib/cmake" "$prefix/lib/pkgconfig" "$python_dir/shmrpc"; then
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
  step "consumers via CMake find_package, $linkage"
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
  cmake --build "$dir" || fail "building the CMake consumers ($linkage)"
  for consumer in consumer consumer_cpp; do
    [[ -x "$dir/$consumer" ]] || fail "the CMake build made no $consumer ($linkage)"
    if [[ $linkage == shared ]]; then
      needs_libshmrpc "$dir/$consumer" || fail "the shared $consumer does not need libshmrpc.so.$major"
    else
      ! needs_libshmrpc "$dir/$consumer" || fail "the static $consumer needs libshmrpc.so"
    fi
    run_consumer "cmake-$linkage-$consumer" "$dir/$consumer"
  done
done

step "consumers via pkg-config"
# shellcheck disable=SC2046 # the flags are meant to split into words
cc -std=c11 -Wall -Wextra -Wpedantic -Werror -pthread \
  "$root/tests/install/consumer.c" $(pkg-config --cflags --libs shmrpc) \
  -o "$work/consumer-pkgconfig" || fail "building the pkg-config consumer"
needs_libshmrpc "$work/consumer-pkgconfig" ||
  fail "the pkg-config consumer does not need libshmrpc.so.$major"
run_consumer "pkg-config" "$work/consumer-pkgconfig"
for cxx in g++ clang++; do
  # shellcheck disable=SC2046
  "$cxx" -std=c++17 -Wall -Wextra -Wpedantic -Werror -pthread \
    "$root/tests/install/consumer.cpp" $(pkg-config --cflags --libs shmrpc) \
    -o "$work/consumer-pkgconfig-$cxx" || fail "building the C++ pkg-config consumer with $cxx"
  run_consumer "pkg-config-$cxx" "$work/consumer-pkgconfig-$cxx"
done

# ---- Man pages ----------------------------------------------------------------
# man-db finds PREFIX/share/man for a PREFIX/bin on PATH, as a user's shell
# has it after installing.

step "man pages from the prefix"
for page in "1 shmrpc" "3 shmrpc" "3 shmrpc_payload"; do
  # shellcheck disable=SC2086 # section and name
  where=$(env -u MANPATH PATH="$prefix/bin:$PATH" man -w $page 2>&1) ||
    fail "man -w $page: $where"
  [[ "$where" == "$prefix/share/man/"* ]] || fail "man $page found $where, not the prefix's"
done
text=$(env -u MANPATH PATH="$prefix/bin:$PATH" MANWIDTH=100 man 1 shmrpc 2>/dev/null)
[[ "$text" == *"call NAME METHOD"* && "$text" == *"COMMANDS IN DETAIL"* ]] ||
  fail "man shmrpc does not show the commands"
text=$(env -u MANPATH PATH="$prefix/bin:$PATH" MANWIDTH=100 man 3 shmrpc 2>/dev/null)
[[ "$text" == *"shmrpc_call"* ]] || fail "man 3 shmrpc does not document shmrpc_call"
echo "test-install: man shmrpc, man 3 shmrpc and man 3 shmrpc_payload found"

# ---- Python -------------------------------------------------------------------

# A round trip inside one interpreter: a Server on a thread, a Client.
python_round_trip='
import os, threading, shmrpc
name = "shmrpc-install-py-%d" % os.getpid()
with shmrpc.Server(name) as server:
    server.method(1, "add")(lambda r: shmrpc.pack_i64(sum(shmrpc.unpack_i64(r, 2))))
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        with shmrpc.Client(name, timeout=10) as client:
            print(shmrpc.__version__, shmrpc.unpack_i64(client.call("add", shmrpc.pack_i64(2, 3)))[0])
    finally:
        server.stop()
        thread.join()
'
step "python3 -c 'import shmrpc' with the installed package"
# No LD_LIBRARY_PATH: the package finds the library installed beside it.
out=$(cd "$work" && env -u SHMRPC_LIBRARY -u LD_LIBRARY_PATH PYTHONPATH="$python_dir" \
  "$python" -c 'import shmrpc; print(shmrpc.__file__)') || fail "import shmrpc from $python_dir"
[[ "$out" == "$python_dir/shmrpc/__init__.py" ]] || fail "imported $out, not the installed package"
out=$(cd "$work" && env -u SHMRPC_LIBRARY -u LD_LIBRARY_PATH PYTHONPATH="$python_dir" \
  timeout 60 "$python" -c "$python_round_trip") || fail "a Python round trip with the installed package"
[[ "$out" == "$version 5" ]] || fail "installed package: unexpected output: $out"
echo "test-install: installed Python package: $out"

step "pip install ./python into a fresh venv, offline"
"$python" -m venv "$work/venv" || fail "python3 -m venv"
"$work/venv/bin/pip" install --disable-pip-version-check --no-index -q "$root/python" ||
  fail "pip install ./python"
[[ ! -e "$root/python/build" && ! -e "$root/python/shmrpc.egg-info" ]] ||
  fail "pip install left build output in the source tree"
out=$(cd "$work" && env -u SHMRPC_LIBRARY LD_LIBRARY_PATH="$prefix/lib" \
  timeout 60 "$work/venv/bin/python" -c "$python_round_trip") || fail "a Python round trip after pip install"
[[ "$out" == "$version 5" ]] || fail "pip-installed package: unexpected output: $out"
echo "test-install: pip-installed Python package: $out"

# ---- README.md's examples, as written -----------------------------------------

step "README examples, built with the README's own commands"
examples="$work/readme"
"$python" "$root/python/tests/readme_examples.py" "$root/README.md" "$examples" >"$work/examples.tsv"
while IFS=$'\t' read -r file command; do
  [[ -n "$command" ]] || continue
  (cd "$examples" && bash -c "$command") || fail "README's build of $file: $command"
  echo "test-install: built $file: $command"
done <"$work/examples.tsv"
for program in adder adder-cpp adder-loop; do
  [[ -x "$examples/$program" ]] || fail "the README's commands made no $program"
done
service="shmrpc-install-readme-$$"
mkfifo "$work/ready"
LD_LIBRARY_PATH="$prefix/lib" "$examples/adder" "$service" serve >"$work/ready" &
server_pid=$!
exec 3<"$work/ready"
read -r -t 20 ready <&3 || { kill "$server_pid"; fail "README's adder server did not start"; }
[[ "$ready" == "serving $service" ]] || { kill "$server_pid"; fail "README's adder said: $ready"; }
for client in "$examples/adder" "$examples/adder-cpp" "$python $examples/adder.py"; do
  # shellcheck disable=SC2086 # the Python client is two words
  out=$(LD_LIBRARY_PATH="$prefix/lib" PYTHONPATH="$python_dir" timeout 60 $client "$service" 2 3) ||
    { kill "$server_pid"; fail "README's client $client failed"; }
  [[ "$out" == 5 ]] || { kill "$server_pid"; fail "README's client $client printed $out"; }
done
# The event loop's client: i + i for every i below 100, eight calls in flight.
out=$(LD_LIBRARY_PATH="$prefix/lib" timeout 60 "$examples/adder-loop" "$service" 100) ||
  { kill "$server_pid"; fail "README's adder-loop failed"; }
[[ "$out" == 9900 ]] || { kill "$server_pid"; fail "README's adder-loop printed $out, want 9900"; }
kill -TERM "$server_pid"
wait "$server_pid" || fail "README's adder server did not exit 0 on SIGTERM"
exec 3<&-
ls /dev/shm | grep -q "shmrpc\.$service" && fail "README's adder server left names in /dev/shm"
echo "test-install: README examples: adder, adder-cpp and adder.py all got 5 from adder, adder-loop 9900"

echo "test-install: PASS"
