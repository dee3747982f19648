# Man pages: shmrpc(1) from the tool's --help (help2man), shmrpc(3) and
# its companions from the headers (Doxygen); scripts/man.sh makes both.
# Built when help2man and doxygen are there (scripts/test-install.sh
# installs them); installed under CMAKE_INSTALL_MANDIR.
include(GNUInstallDirs)

find_program(SHMRPC_HELP2MAN help2man)
find_program(SHMRPC_DOXYGEN doxygen)
set(shmrpc_man_default OFF)
if(SHMRPC_HELP2MAN AND SHMRPC_DOXYGEN AND TARGET shmrpc_tool AND NOT CMAKE_CROSSCOMPILING)
  set(shmrpc_man_default ON)
endif()
option(SHMRPC_BUILD_MAN "Make and install the man pages (help2man, doxygen)"
  ${shmrpc_man_default})
if(NOT SHMRPC_BUILD_MAN)
  if(NOT CMAKE_CROSSCOMPILING)
    message(STATUS "shmrpc: man pages not made (they need help2man and doxygen)")
  endif()
  return()
endif()
if(NOT SHMRPC_HELP2MAN OR NOT SHMRPC_DOXYGEN)
  message(FATAL_ERROR "shmrpc: SHMRPC_BUILD_MAN needs help2man and doxygen "
    "(Debian: apt-get install help2man doxygen)")
endif()

set(shmrpc_man_dir ${PROJECT_BINARY_DIR}/man)
set(shmrpc_man_script ${PROJECT_SOURCE_DIR}/scripts/man.sh)
add_custom_command(OUTPUT ${shmrpc_man_dir}/man1/shmrpc.1
  COMMAND bash ${shmrpc_man_script} tool $<TARGET_FILE:shmrpc_tool> ${shmrpc_man_dir}
  DEPENDS shmrpc_tool ${shmrpc_man_script}
  COMMENT "shmrpc(1) from shmrpc --help")
add_custom_command(OUTPUT ${shmrpc_man_dir}/man3/shmrpc.3
  COMMAND bash ${shmrpc_man_script} library ${shmrpc_man_dir}
  DEPENDS ${PROJECT_SOURCE_DIR}/include/shmrpc.h
    ${PROJECT_SOURCE_DIR}/include/shmrpc_payload.h
    ${PROJECT_SOURCE_DIR}/docs/Doxyfile
    ${PROJECT_SOURCE_DIR}/scripts/docs.sh ${shmrpc_man_script}
  COMMENT "shmrpc(3) from the headers")
add_custom_target(shmrpc_man ALL DEPENDS
  ${shmrpc_man_dir}/man1/shmrpc.1 ${shmrpc_man_dir}/man3/shmrpc.3)
install(DIRECTORY ${shmrpc_man_dir}/man1 ${shmrpc_man_dir}/man3
  DESTINATION ${CMAKE_INSTALL_MANDIR} COMPONENT Documentation)
