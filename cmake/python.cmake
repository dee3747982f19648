# The Python package (python/shmrpc): pure Python over libshmrpc with
# ctypes, so nothing is compiled. `cmake --install` puts it in
# SHMRPC_PYTHON_INSTALL_DIR (relative to the prefix) together with
# _installed.py, which tells the package where the shared library is
# relative to itself. Linux only (the package loads libshmrpc.so.N).
include(GNUInstallDirs)

set(shmrpc_python_default OFF)
if(TARGET shmrpc_shared AND NOT WIN32)
  set(shmrpc_python_default ON)
endif()
option(SHMRPC_BUILD_PYTHON "Install the Python package and run its tests"
  ${shmrpc_python_default})
if(NOT SHMRPC_BUILD_PYTHON)
  return()
endif()
if(NOT TARGET shmrpc_shared)
  message(FATAL_ERROR "shmrpc: SHMRPC_BUILD_PYTHON needs SHMRPC_BUILD_SHARED=ON")
endif()

# Debian's interpreter: its python3-* packages (pytest) are what the tests
# use; a python3 earlier on PATH (pyenv, a venv) may lack them.
if(EXISTS /usr/bin/python3)
  set(shmrpc_python_guess /usr/bin/python3)
else()
  find_program(shmrpc_python_guess NAMES python3)
endif()
set(SHMRPC_PYTHON "${shmrpc_python_guess}" CACHE FILEPATH
  "Python interpreter for the Python tests and the install folder's default")

# Where the package goes: the prefix's folder that this interpreter already
# searches (Debian: lib/python3.X/dist-packages under /usr/local), else the
# standard lib/python3.X/site-packages.
if(NOT SHMRPC_PYTHON_INSTALL_DIR AND SHMRPC_PYTHON)
  execute_process(
    COMMAND ${SHMRPC_PYTHON} -c [[
import os, sys
prefix, version = sys.argv[1], "python%d.%d" % sys.version_info[:2]
for folder in ("site-packages", "dist-packages"):
    relative = "lib/%s/%s" % (version, folder)
    if os.path.join(prefix, relative) in sys.path:
        break
else:
    relative = "lib/%s/site-packages" % version
print(relative, end="")
]] ${CMAKE_INSTALL_PREFIX}
    OUTPUT_VARIABLE shmrpc_python_dir RESULT_VARIABLE shmrpc_python_rc)
  if(NOT shmrpc_python_rc EQUAL 0)
    set(shmrpc_python_dir lib/python3/site-packages)
  endif()
endif()
if(NOT shmrpc_python_dir)
  set(shmrpc_python_dir lib/python3/site-packages)
endif()
set(SHMRPC_PYTHON_INSTALL_DIR "${shmrpc_python_dir}" CACHE STRING
  "Where cmake --install puts the Python package, relative to the prefix")

# The library relative to the installed package, so a relocated prefix
# (cmake --install --prefix, DESTDIR) still finds it.
set(shmrpc_python_library libshmrpc.so.${PROJECT_VERSION_MAJOR})
if(IS_ABSOLUTE "${SHMRPC_PYTHON_INSTALL_DIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(shmrpc_python_relative "${CMAKE_INSTALL_FULL_LIBDIR}/${shmrpc_python_library}")
else()
  file(RELATIVE_PATH shmrpc_python_relative
    /prefix/${SHMRPC_PYTHON_INSTALL_DIR}/shmrpc
    /prefix/${CMAKE_INSTALL_LIBDIR}/${shmrpc_python_library})
endif()
file(WRITE ${PROJECT_BINARY_DIR}/python/_installed.py
  "# Written by cmake --install: the library, relative to this folder.\n"
  "LIBRARY = \"${shmrpc_python_relative}\"\n")

install(DIRECTORY ${PROJECT_SOURCE_DIR}/python/shmrpc
  DESTINATION ${SHMRPC_PYTHON_INSTALL_DIR}
  COMPONENT Python
  FILES_MATCHING PATTERN "*.py"
  PATTERN "__pycache__" EXCLUDE)
install(FILES ${PROJECT_BINARY_DIR}/python/_installed.py
  DESTINATION ${SHMRPC_PYTHON_INSTALL_DIR}/shmrpc
  COMPONENT Python)
message(STATUS "shmrpc: the Python package installs into <prefix>/${SHMRPC_PYTHON_INSTALL_DIR}")
