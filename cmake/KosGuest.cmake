# Freestanding guest targets (kernel and ring-3 personality code).
#
# Guest code is always optimized (-O2, after the build type's flags): ring-0
# code is emulated instruction by instruction on nested KVM, so -O0 kernels
# are several times slower there.
#
# Every guest target gets exactly the flags below: the host's compile and link
# options (libc++, sanitizers) are replaced, not appended to. Kernel code is
# built without SSE/AVX (-mgeneral-regs-only): on nested KVM those instructions
# crash the VM in ring 0, and the personality runtime must not clobber the
# application's vector registers either, so it uses the same restriction.

set(KOS_GUEST_COMMON_FLAGS
  -ffreestanding -nostdlibinc -fno-exceptions -fno-rtti -fno-threadsafe-statics
  -fno-stack-protector -fno-asynchronous-unwind-tables -fno-unwind-tables
  -O2 -fno-omit-frame-pointer -mno-red-zone -mgeneral-regs-only -fcf-protection=none
  -Wall -Wextra -Werror -Wno-unused-parameter
  $<$<COMPILE_LANGUAGE:CXX>:-std=c++23>)

set(KOS_GUEST_KERNEL_FLAGS ${KOS_GUEST_COMMON_FLAGS} -mcmodel=kernel -fno-pic -fno-pie)
# The runtime is linked at a fixed address above 4 GiB; position-independent
# code reaches everything RIP-relative, so no large code model is needed.
set(KOS_GUEST_USER_FLAGS ${KOS_GUEST_COMMON_FLAGS} -fpie)

function(_kos_guest_flags target kind)
  if(kind STREQUAL "kernel")
    set(flags ${KOS_GUEST_KERNEL_FLAGS})
  else()
    set(flags ${KOS_GUEST_USER_FLAGS})
  endif()
  set_property(TARGET ${target} PROPERTY COMPILE_OPTIONS ${flags})
  set_property(TARGET ${target} PROPERTY LINK_OPTIONS "")
  set_property(TARGET ${target} PROPERTY INTERFACE_LINK_OPTIONS "")
endfunction()

# kos_guest_library(NAME KIND kernel|user SOURCES ...)
function(kos_guest_library name)
  cmake_parse_arguments(A "" "KIND" "SOURCES" ${ARGN})
  add_library(${name} STATIC ${A_SOURCES})
  _kos_guest_flags(${name} ${A_KIND})
endfunction()

# kos_guest_executable(NAME KIND kernel|user LINKER_SCRIPT file SOURCES ... LIBS ...)
function(kos_guest_executable name)
  cmake_parse_arguments(A "" "KIND;LINKER_SCRIPT" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${A_SOURCES})
  _kos_guest_flags(${name} ${A_KIND})
  set_property(TARGET ${name} PROPERTY LINK_OPTIONS
    -nostdlib -static -fuse-ld=lld -Wl,--no-dynamic-linker -Wl,-z,noexecstack
    -Wl,--build-id=none -Wl,-T,${A_LINKER_SCRIPT} -Wl,-z,max-page-size=4096)
  set_property(TARGET ${name} APPEND PROPERTY LINK_DEPENDS ${A_LINKER_SCRIPT})
  target_link_libraries(${name} PRIVATE ${A_LIBS})
  set_target_properties(${name} PROPERTIES SUFFIX ".elf"
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/guest)
endfunction()
