# Cross-compiling for 64-bit Windows with MinGW-w64 (Debian package
# gcc-mingw-w64-x86-64), running the results under Wine:
#
#   cmake -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64-x86_64.cmake \
#         -DCMAKE_PREFIX_PATH=/path/to/windows/deps -B build-win
#
# Windows libraries are looked for only under the MinGW sysroot and under the
# prefixes given in CMAKE_PREFIX_PATH, never among the host's own libraries.

set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(SHMRPC_MINGW_TRIPLET x86_64-w64-mingw32)

# Debian ships a "-win32" (Win32 threads) and a "-posix" (winpthreads)
# flavour; the plain names follow update-alternatives. Either works: the
# library uses Win32 threads itself. CMake finds the matching ar, ranlib and
# windres from the compiler's prefix.
set(CMAKE_C_COMPILER ${SHMRPC_MINGW_TRIPLET}-gcc)
# The C++ compiler is a package of its own (g++-mingw-w64-x86-64): name it
# only where it is installed, so that a C-only cross build still configures
# (cmake/cxx.cmake then skips the C++ tests and sample).
find_program(SHMRPC_MINGW_CXX ${SHMRPC_MINGW_TRIPLET}-g++)
if(SHMRPC_MINGW_CXX)
  set(CMAKE_CXX_COMPILER ${SHMRPC_MINGW_CXX})
endif()
set(CMAKE_RC_COMPILER ${SHMRPC_MINGW_TRIPLET}-windres)

# The target environment: the MinGW sysroot, plus every prefix the caller
# names explicitly (e.g. a cmocka built for Windows). A prefix that is also a
# find root is searched as it is instead of being re-rooted under the sysroot.
set(CMAKE_FIND_ROOT_PATH /usr/${SHMRPC_MINGW_TRIPLET})
foreach(shmrpc_prefix IN LISTS CMAKE_PREFIX_PATH)
  list(APPEND CMAKE_FIND_ROOT_PATH ${shmrpc_prefix})
endforeach()
unset(shmrpc_prefix)

# Programs (compilers, Wine) come from the host; libraries, headers and
# package configurations only from the target environment.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# ctest and add_custom_command run .exe files through Wine. The caller sets
# WINEPREFIX, WINEDEBUG and WINEDLLOVERRIDES in the environment (see
# scripts/test-windows.sh). Debian installs the 64-bit loader as
# /usr/lib/wine/wine64; /usr/bin/wine is a wrapper that prefers the 32-bit one.
if(NOT DEFINED CMAKE_CROSSCOMPILING_EMULATOR)
  find_program(SHMRPC_WINE64 NAMES wine64
    PATHS /usr/lib/wine /usr/lib64/wine /opt/wine-stable/bin
    NO_CMAKE_FIND_ROOT_PATH)
  if(NOT SHMRPC_WINE64)
    find_program(SHMRPC_WINE64 NAMES wine NO_CMAKE_FIND_ROOT_PATH)
  endif()
  if(SHMRPC_WINE64)
    set(CMAKE_CROSSCOMPILING_EMULATOR ${SHMRPC_WINE64})
  endif()
endif()
