# Installation: the public headers (shmrpc.hpp, the header-only C++
# interface, among them), both libraries, a CMake package
# (find_package(shmrpc CONFIG) giving shmrpc::shmrpc and shmrpc::shmrpc_static,
# for C and C++ alike) and a pkg-config file. The Python package and the man
# pages are installed by cmake/python.cmake and cmake/man.cmake. Included at the end of the top-level CMakeLists.txt,
# once the library targets exist.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(shmrpc_install_cmakedir ${CMAKE_INSTALL_LIBDIR}/cmake/shmrpc)

install(FILES
    ${PROJECT_SOURCE_DIR}/include/shmrpc.h
    ${PROJECT_SOURCE_DIR}/include/shmrpc_payload.h
    ${PROJECT_SOURCE_DIR}/include/shmrpc.hpp
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  COMPONENT Development)

# Users see shmrpc::shmrpc (the shared library) and shmrpc::shmrpc_static,
# not the build's internal target names.
set(shmrpc_install_targets)
if(TARGET shmrpc_shared)
  set_target_properties(shmrpc_shared PROPERTIES EXPORT_NAME shmrpc)
  # Users of the Windows DLL must import its symbols (see SHMRPC_EXTERN);
  # elsewhere the definition changes nothing.
  target_compile_definitions(shmrpc_shared INTERFACE SHMRPC_SHARED)
  list(APPEND shmrpc_install_targets shmrpc_shared)
endif()
if(TARGET shmrpc_static)
  set_target_properties(shmrpc_static PROPERTIES EXPORT_NAME shmrpc_static)
  list(APPEND shmrpc_install_targets shmrpc_static)
endif()
if(NOT shmrpc_install_targets)
  message(FATAL_ERROR "shmrpc: enable SHMRPC_BUILD_SHARED or SHMRPC_BUILD_STATIC")
endif()

install(TARGETS ${shmrpc_install_targets}
  EXPORT shmrpcTargets
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT Runtime
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Runtime
    NAMELINK_COMPONENT Development
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Development
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

install(EXPORT shmrpcTargets
  NAMESPACE shmrpc::
  DESTINATION ${shmrpc_install_cmakedir}
  COMPONENT Development)

# The static library carries Threads::Threads as a link dependency, so the
# package must find Threads before a consumer can link it.
if(TARGET shmrpc_static AND NOT WIN32)
  set(SHMRPC_CONFIG_FIND_THREADS ON)
else()
  set(SHMRPC_CONFIG_FIND_THREADS OFF)
endif()

configure_package_config_file(
  ${CMAKE_CURRENT_LIST_DIR}/shmrpcConfig.cmake.in
  ${PROJECT_BINARY_DIR}/shmrpcConfig.cmake
  INSTALL_DESTINATION ${shmrpc_install_cmakedir})
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/shmrpcConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMajorVersion)
install(FILES
    ${PROJECT_BINARY_DIR}/shmrpcConfig.cmake
    ${PROJECT_BINARY_DIR}/shmrpcConfigVersion.cmake
  DESTINATION ${shmrpc_install_cmakedir}
  COMPONENT Development)

# pkg-config. The prefix is only known when installing (cmake --install
# --prefix may differ from the configured one), so the file is made in two
# steps: now everything but the prefix, which stays as the placeholder
# @CMAKE_INSTALL_PREFIX@; at install time the install script fills it in
# from its own CMAKE_INSTALL_PREFIX (DESTDIR is not part of it, as wanted).
if(WIN32)
  set(shmrpc_pc_libs_private "-ladvapi32")
elseif(CMAKE_SYSTEM_NAME STREQUAL "Linux")
  set(shmrpc_pc_libs_private "-lpthread -lrt")
else()
  set(shmrpc_pc_libs_private "-lpthread")
endif()
foreach(shmrpc_pc_dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${shmrpc_pc_dir}}")
    set(shmrpc_pc_${shmrpc_pc_dir} "${CMAKE_INSTALL_${shmrpc_pc_dir}}")
  else()
    set(shmrpc_pc_${shmrpc_pc_dir} "\${prefix}/${CMAKE_INSTALL_${shmrpc_pc_dir}}")
  endif()
endforeach()
set(shmrpc_pc_prefix "@CMAKE_INSTALL_PREFIX@")
configure_file(${CMAKE_CURRENT_LIST_DIR}/shmrpc.pc.in
  ${PROJECT_BINARY_DIR}/shmrpc.pc.in @ONLY)
install(CODE "configure_file(\"${PROJECT_BINARY_DIR}/shmrpc.pc.in\" \"${PROJECT_BINARY_DIR}/shmrpc.pc\" @ONLY)"
  COMPONENT Development)
install(FILES ${PROJECT_BINARY_DIR}/shmrpc.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
  COMPONENT Development)
