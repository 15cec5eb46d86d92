# kos_idl_generate(NAME FILES a.kidl ...)
#
# Runs kos-idlc (security-server/idl) at build time on the .kidl files,
# together (so interface ids are checked across them), into
# ${CMAKE_CURRENT_BINARY_DIR}/NAME, and defines the INTERFACE library NAME
# exposing that directory and kos_abi: link it and
# `#include "kos/idl/<package>.h"` (docs/idl.md). It carries only include
# directories, so guest targets may link it too.
#
# The output names come from the files' `package` lines, read here when
# CMake configures; each file is a configure dependency, so changing a
# package name reconfigures.
function(kos_idl_generate name)
  cmake_parse_arguments(A "" "" "FILES" ${ARGN})
  if(NOT A_FILES)
    message(FATAL_ERROR "kos_idl_generate(${name}): no FILES given")
  endif()
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/${name})
  set(files)
  set(outputs ${out_dir}/${name}.stamp)
  foreach(f IN LISTS A_FILES)
    get_filename_component(abs ${f} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    if(NOT EXISTS ${abs})
      message(FATAL_ERROR "kos_idl_generate(${name}): ${abs} does not exist")
    endif()
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${abs})
    file(STRINGS ${abs} lines REGEX "^[ \t]*package[ \t]+[A-Za-z_][A-Za-z0-9_]*")
    if(NOT lines)
      message(FATAL_ERROR "kos_idl_generate(${name}): ${abs} has no `package NAME` line")
    endif()
    list(GET lines 0 line)
    string(REGEX REPLACE "^[ \t]*package[ \t]+([A-Za-z_][A-Za-z0-9_]*).*" "\\1" package "${line}")
    list(APPEND files ${abs})
    list(APPEND outputs ${out_dir}/kos/idl/${package}.h ${out_dir}/kos/idl/${package}.json)
  endforeach()
  # kos-idlc rewrites a header only when it changes (dependents are not
  # rebuilt for nothing); the stamp records that the command ran.
  add_custom_command(
    OUTPUT ${outputs}
    COMMAND $<TARGET_FILE:kos-idlc> --out ${out_dir} --summary ${files}
    COMMAND ${CMAKE_COMMAND} -E touch ${out_dir}/${name}.stamp
    DEPENDS kos-idlc ${files}
    COMMENT "kos-idlc: ${name}"
    VERBATIM)
  add_custom_target(${name}_generate DEPENDS ${outputs})
  add_library(${name} INTERFACE)
  target_include_directories(${name} INTERFACE ${out_dir})
  target_link_libraries(${name} INTERFACE kos_abi)
  # Interface libraries pass their dependencies on to whoever links them.
  add_dependencies(${name} ${name}_generate)
endfunction()
