#!/usr/bin/env bash
# Cross-builds shmrpc for 64-bit Windows with MinGW-w64, then runs the test
# suite and the calculator sample under Wine. `ninja test-windows` runs it.
#
# Everything it makes lives in build-win/: the cmocka it builds for Windows
# from Debian's source package (cached; never committed), the Wine prefix,
# and the project's own build (build-win/bin/*.exe).
#
# Environment: SHMRPC_CTEST_ARGS adds arguments to ctest (e.g. "-R rpc").
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD="$ROOT/build-win"
TOOLCHAIN="$ROOT/cmake/mingw-w64-x86_64.cmake"
CMOCKA_SRC="$BUILD/cmocka-src"
CMOCKA_BUILD="$BUILD/cmocka-build"
CMOCKA_PREFIX="$BUILD/cmocka"
WINE=/usr/lib/wine/wine64
WINESERVER=/usr/lib/wine/wineserver
# g++-mingw-w64-x86-64: the C++ header's tests and sample, run under Wine too.
PACKAGES=(gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64 wine64 cmake ninja-build dpkg-dev)

log() { printf 'test-windows: %s\n' "$*"; }
die() { printf 'test-windows: error: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

apt_updated=0
apt_update_once() {
  if [ "$apt_updated" -eq 0 ]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    apt_updated=1
  fi
}

package_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# ---- 1. Tools -------------------------------------------------------------

install_packages() {
  local missing=() package
  for package in "${PACKAGES[@]}"; do
    package_installed "$package" || missing+=("$package")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if ! is_root; then
    die "missing package ${missing[*]} (as root: apt-get install ${missing[*]})"
  fi
  apt_update_once
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# ---- 2. cmocka for Windows, from Debian's source package -------------------

# A deb-src entry for this machine's own Debian suite, unless one exists.
ensure_deb_src() {
  local suite
  if grep -rqs '^[[:space:]]*\(deb-src\|Types:.*deb-src\)' \
      /etc/apt/sources.list /etc/apt/sources.list.d/; then
    return 0
  fi
  is_root || die "no deb-src entry for apt-get source cmocka (add one as root)"
  # shellcheck disable=SC1091 # a system file, read at run time
  suite=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
  [ -n "$suite" ] || die "cannot tell the Debian suite from /etc/os-release"
  log "adding deb-src for $suite"
  cat >/etc/apt/sources.list.d/shmrpc-deb-src.sources <<EOF
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  apt_updated=0
  apt_update_once
}

# The cache is valid while this stamp names the same source and toolchain.
cmocka_stamp_text() {
  local source_dir=$1
  printf '%s\n%s\n' "$(basename "$source_dir")" "$(sha256sum "$TOOLCHAIN" | cut -d' ' -f1)"
}

build_cmocka() {
  local source_dir stamp="$CMOCKA_PREFIX/.shmrpc-stamp" apt_options=()
  source_dir=""
  if [ -d "$CMOCKA_SRC" ]; then
    source_dir=$(find "$CMOCKA_SRC" -mindepth 1 -maxdepth 1 -type d -name 'cmocka-*' | sort | tail -n 1)
  fi
  if [ -n "$source_dir" ] && [ -f "$stamp" ] &&
     [ "$(cat "$stamp")" = "$(cmocka_stamp_text "$source_dir")" ] &&
     [ -f "$CMOCKA_PREFIX/lib/libcmocka.a" ]; then
    log "cmocka: cached in $CMOCKA_PREFIX"
    return 0
  fi

  if [ -z "$source_dir" ]; then
    ensure_deb_src
    rm -rf "$CMOCKA_SRC"
    mkdir -p "$CMOCKA_SRC"
    # As root, apt would drop to its _apt user, which cannot write here.
    is_root && apt_options=(-o APT::Sandbox::User=root)
    log "cmocka: apt-get source cmocka"
    if ! (cd "$CMOCKA_SRC" && apt-get "${apt_options[@]}" source -q cmocka >source.log 2>&1); then
      if is_root && grep -q 'You must put some .deb-src. URIs\|Unable to find a source package' "$CMOCKA_SRC/source.log"; then
        apt_updated=0
        apt_update_once
        (cd "$CMOCKA_SRC" && apt-get "${apt_options[@]}" source -q cmocka >source.log 2>&1) ||
          { cat "$CMOCKA_SRC/source.log" >&2; die "apt-get source cmocka failed"; }
      else
        cat "$CMOCKA_SRC/source.log" >&2
        die "apt-get source cmocka failed"
      fi
    fi
    source_dir=$(find "$CMOCKA_SRC" -mindepth 1 -maxdepth 1 -type d -name 'cmocka-*' | sort | tail -n 1)
    [ -n "$source_dir" ] || die "apt-get source cmocka unpacked nothing"
  fi

  log "cmocka: building $(basename "$source_dir") for Windows"
  rm -rf "$CMOCKA_BUILD" "$CMOCKA_PREFIX"
  cmake -G Ninja -S "$source_dir" -B "$CMOCKA_BUILD" \
    -DCMAKE_TOOLCHAIN_FILE="$TOOLCHAIN" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$CMOCKA_PREFIX" \
    -DCMAKE_INSTALL_LIBDIR=lib \
    -DWITH_STATIC_LIB=ON -DWITH_EXAMPLES=OFF -DUNIT_TESTING=OFF \
    -DCMAKE_DISABLE_FIND_PACKAGE_Doxygen=ON >"$BUILD/cmocka-configure.log" 2>&1 ||
    { cat "$BUILD/cmocka-configure.log" >&2; die "cmocka: configure failed"; }
  cmake --build "$CMOCKA_BUILD" >"$BUILD/cmocka-build.log" 2>&1 ||
    { cat "$BUILD/cmocka-build.log" >&2; die "cmocka: build failed"; }
  cmake --install "$CMOCKA_BUILD" >>"$BUILD/cmocka-build.log" 2>&1 ||
    { cat "$BUILD/cmocka-build.log" >&2; die "cmocka: install failed"; }

  # cmocka 1.1.x always builds a DLL and installs the static library as
  # libcmocka-static.a; its package config names the import library (and,
  # with MinGW, a wrong file name). Keep only the static library, under the
  # plain name find_library(cmocka) looks for, and point the config at it.
  local lib="$CMOCKA_PREFIX/lib" config="$CMOCKA_PREFIX/lib/cmake/cmocka/cmocka-config.cmake"
  [ -f "$lib/libcmocka-static.a" ] || die "cmocka: no static library was built"
  rm -f "$lib/libcmocka.dll.a" "$lib/cmocka.dll.a" "$CMOCKA_PREFIX/bin/cmocka.dll"
  mv "$lib/libcmocka-static.a" "$lib/libcmocka.a"
  if [ -f "$config" ]; then
    # shellcheck disable=SC2016 # ${PACKAGE_PREFIX_DIR} is CMake's, not ours
    sed -i -E 's#^(set\(CMOCKA_LIBRAR(Y|IES) ).*$#\1${PACKAGE_PREFIX_DIR}/lib/libcmocka.a)#' "$config"
    cat >>"$config" <<'EOF'

# Added by shmrpc's scripts/test-windows.sh: the static library as the
# imported target that newer cmocka releases export.
if(NOT TARGET cmocka::cmocka)
  add_library(cmocka::cmocka STATIC IMPORTED)
  set_target_properties(cmocka::cmocka PROPERTIES
    IMPORTED_LOCATION "${CMOCKA_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${CMOCKA_INCLUDE_DIR}")
endif()
EOF
  fi
  cmocka_stamp_text "$source_dir" >"$stamp"
  log "cmocka: installed in $CMOCKA_PREFIX"
}

# ---- 3. Wine ---------------------------------------------------------------

setup_wine() {
  [ -x "$WINE" ] || die "missing $WINE (package wine64)"
  export WINEPREFIX="$BUILD/wineprefix"
  export WINEARCH=win64
  export WINEDEBUG=-all
  # No Mono or Gecko installer dialogs, and no display to show them on.
  export WINEDLLOVERRIDES="mscoree,mshtml="
  unset DISPLAY WAYLAND_DISPLAY
  if [ ! -f "$WINEPREFIX/system.reg" ]; then
    log "wine: creating prefix $WINEPREFIX"
    mkdir -p "$WINEPREFIX"
    "$WINE" wineboot -i >"$BUILD/wineboot.log" 2>&1 ||
      { cat "$BUILD/wineboot.log" >&2; die "wine: wineboot -i failed"; }
    "$WINESERVER" -w
  fi
}

# ---- 4. The project --------------------------------------------------------

build_project() {
  log "configuring build-win"
  cmake -G Ninja -S "$ROOT" -B "$BUILD" \
    -DCMAKE_TOOLCHAIN_FILE="$TOOLCHAIN" \
    -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-RelWithDebInfo}" \
    -DSHMRPC_WERROR=ON \
    -DCMAKE_PREFIX_PATH="$CMOCKA_PREFIX" >"$BUILD/configure.log" 2>&1 ||
    { cat "$BUILD/configure.log" >&2; die "configure failed"; }
  log "building"
  cmake --build "$BUILD" || die "build failed"
}

run_tests() {
  log "ctest under Wine"
  # shellcheck disable=SC2086 # SHMRPC_CTEST_ARGS is a list of words
  (cd "$BUILD" && ctest --output-on-failure --timeout 300 -j "$(nproc)" ${SHMRPC_CTEST_ARGS:-}) ||
    die "tests failed under Wine"
}

# ---- 5. The calculator sample ---------------------------------------------

server_pid=""
# On failure: the server must not outlive this script.
kill_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}

# Wine turns SIGINT into a console Ctrl-C event, which the C runtime hands to
# the sample's SIGINT handler: the server stops and removes its names.
stop_server() {
  local deadline=$((SECONDS + 20)) status=0
  kill -INT "$server_pid" 2>/dev/null || true
  while kill -0 "$server_pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      kill_server
      die "calculator: server did not stop on SIGINT within 20 s"
    fi
    sleep 0.1
  done
  wait "$server_pid" || status=$?
  server_pid=""
  [ "$status" -eq 0 ] || die "calculator: server exited with status $status"
}

run_calc() {
  local bin="$BUILD/bin" name="calc-win-$$"
  local out="$BUILD/calc_server.out" err="$BUILD/calc_server.err"
  local answer deadline
  [ -f "$bin/calc_server.exe" ] || die "no $bin/calc_server.exe"
  [ -f "$bin/calc_client.exe" ] || die "no $bin/calc_client.exe"
  log "calculator: server $name"
  : >"$out"
  "$WINE" "$bin/calc_server.exe" --name "$name" >"$out" 2>"$err" &
  server_pid=$!
  deadline=$((SECONDS + 60))
  while [ ! -s "$out" ] || ! grep -q . "$out"; do
    kill -0 "$server_pid" 2>/dev/null || { cat "$out" "$err" >&2; die "calculator: server exited early"; }
    [ "$SECONDS" -lt "$deadline" ] || { cat "$out" "$err" >&2; die "calculator: no ready line in 60 s"; }
    sleep 0.1
  done
  log "calculator: server says: $(head -n 1 "$out" | tr -d '\r')"
  answer=$(timeout 60 "$WINE" "$bin/calc_client.exe" --name "$name" add 2 3 | tr -d '\r') ||
    die "calculator: client failed: $answer"
  [ "$answer" = "5" ] || die "calculator: add 2 3 printed '$answer', want 5"
  log "calculator: add 2 3 = $answer"
  if [ -f "$bin/calc_client_cpp.exe" ]; then
    answer=$(timeout 60 "$WINE" "$bin/calc_client_cpp.exe" --name "$name" mul 6 7 | tr -d '\r') ||
      die "calculator: the C++ client failed: $answer"
    [ "$answer" = "42" ] || die "calculator: C++ mul 6 7 printed '$answer', want 42"
    log "calculator: C++ client: mul 6 7 = $answer"
  fi
  stop_server
  log "calculator: server stopped cleanly"
  if timeout 60 "$WINE" "$bin/calc_client.exe" --name "$name" --timeout 0 add 2 3 >/dev/null 2>&1; then
    die "calculator: a call succeeded after the server stopped"
  fi
}

cleanup() {
  kill_server
  # Let this prefix's wineserver go, so nothing keeps our output pipe open.
  if [ -n "${WINEPREFIX:-}" ] && [ -d "$WINEPREFIX" ]; then
    timeout 20 "$WINESERVER" -w 2>/dev/null || "$WINESERVER" -k 2>/dev/null || true
  fi
}
trap cleanup EXIT

mkdir -p "$BUILD"
install_packages
build_cmocka
setup_wine
build_project
run_tests
run_calc
log "calculator: --in-flight and --poll (tests/samples.sh)"
bash "$ROOT/tests/samples.sh" "$BUILD/bin" "$WINE" || die "calculator: tests/samples.sh failed under Wine"
log "all passed"
