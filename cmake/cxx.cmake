# C++: the header-only include/shmrpc.hpp needs no compiled code, but its
# tests and the C++ sample do. They are built when a C++ compiler exists
# (a C-only machine still builds everything else).
#
# SHMRPC_CXX_OTHER_COMPILER (default auto): the suite also builds the C++ tests with a
# second compiler (g++ next to clang++, or the reverse), in a nested build
# of this project under ${CMAKE_BINARY_DIR}/cxx-other, so both compilers
# see the header with warnings as errors. Empty disables it.
include(CheckLanguage)
check_language(CXX)
if(CMAKE_CXX_COMPILER)
  enable_language(CXX)
  set(CMAKE_CXX_STANDARD 17)
  set(CMAKE_CXX_STANDARD_REQUIRED ON)
  set(CMAKE_CXX_EXTENSIONS OFF)
  set(CMAKE_CXX_VISIBILITY_PRESET hidden)
  set(SHMRPC_HAVE_CXX ON)
  # MinGW's C++ runtime is a set of DLLs (libstdc++-6, libgcc_s_seh-1) that
  # a Windows machine or a Wine prefix does not have: link it in.
  if(MINGW)
    string(APPEND CMAKE_EXE_LINKER_FLAGS " -static-libgcc -static-libstdc++")
  endif()
  # The C warnings (and -Werror) minus the one that means nothing in C++.
  set(shmrpc_cxx_warnings ${shmrpc_warnings})
  list(REMOVE_ITEM shmrpc_cxx_warnings -Wstrict-prototypes)
else()
  set(SHMRPC_HAVE_CXX OFF)
  message(STATUS "shmrpc: no C++ compiler: the C++ tests and sample are not built")
endif()

# The other compiler pair, for the nested build (not when cross-compiling,
# and not in a sanitizer build, whose point is the sanitizer). "auto" looks
# for it at each configure, so installing clang later is enough.
set(SHMRPC_CXX_OTHER_COMPILER auto CACHE STRING
  "C and C++ compilers (a list of two) that also build the C++ tests; auto: find them; empty: none")
set(shmrpc_other_compilers "${SHMRPC_CXX_OTHER_COMPILER}")
if(shmrpc_other_compilers STREQUAL "auto")
  set(shmrpc_other_compilers "")
  if(SHMRPC_HAVE_CXX AND NOT CMAKE_CROSSCOMPILING AND NOT CMAKE_C_FLAGS MATCHES "-fsanitize")
    unset(SHMRPC_FOUND_OTHER_CXX CACHE)
    unset(SHMRPC_FOUND_OTHER_CC CACHE)
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      find_program(SHMRPC_FOUND_OTHER_CXX NAMES clang++)
      find_program(SHMRPC_FOUND_OTHER_CC NAMES clang)
    elseif(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
      find_program(SHMRPC_FOUND_OTHER_CXX NAMES g++)
      find_program(SHMRPC_FOUND_OTHER_CC NAMES gcc)
    endif()
    if(SHMRPC_FOUND_OTHER_CXX AND SHMRPC_FOUND_OTHER_CC)
      set(shmrpc_other_compilers "${SHMRPC_FOUND_OTHER_CC};${SHMRPC_FOUND_OTHER_CXX}")
    else()
      message(STATUS "shmrpc: no second C++ compiler (clang++ or g++): the C++ tests are built once")
    endif()
  endif()
endif()
