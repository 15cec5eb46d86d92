# kos_embed_file(TARGET target SYMBOL name FILE path [DEPENDS tgt] [SECTION s])
#
# Adds `extern const unsigned char name[]` and `name_end[]` to TARGET, holding
# the bytes of FILE (via .incbin). Used to embed the personality runtime into
# the kernel image and the guest image into the `kos` binary, so a single
# binary carries everything it boots.
function(kos_embed_file)
  cmake_parse_arguments(A "" "TARGET;SYMBOL;FILE;DEPENDS;SECTION" "" ${ARGN})
  if(NOT A_SECTION)
    set(A_SECTION ".rodata")
  endif()
  set(asm ${CMAKE_CURRENT_BINARY_DIR}/embed_${A_SYMBOL}.S)
  file(WRITE ${asm}
    "  .section ${A_SECTION},\"a\"\n"
    "  .balign 4096\n"
    "  .globl ${A_SYMBOL}\n"
    "  .globl ${A_SYMBOL}_end\n"
    "${A_SYMBOL}:\n"
    "  .incbin \"${A_FILE}\"\n"
    "${A_SYMBOL}_end:\n"
    "  .section .note.GNU-stack,\"\",@progbits\n")
  target_sources(${A_TARGET} PRIVATE ${asm})
  set_source_files_properties(${asm} PROPERTIES OBJECT_DEPENDS ${A_FILE})
  if(A_DEPENDS)
    add_dependencies(${A_TARGET} ${A_DEPENDS})
  endif()
endfunction()
