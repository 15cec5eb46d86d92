# kos_fuzz_target(NAME SOURCES ... [LIBS ...] [SEEDS dir] [SECONDS n])
#
# A libFuzzer target (with ASan and UBSan), run by ctest for SECONDS
# (default 20) starting from the seed corpus in SEEDS; new inputs go to the
# build tree, never to the source tree. Put the parser's own sources in
# SOURCES so they get coverage instrumentation.
#
# Debian's libFuzzer runtime is built against libstdc++; kos links libc++.
# The two coexist in one binary (std::__1 vs std::__cxx11), so the target
# also links libstdc++ by file name (clang rewrites a plain -lstdc++ to the
# selected -stdlib).
function(kos_fuzz_target name)
  cmake_parse_arguments(A "" "SEEDS;SECONDS" "SOURCES;LIBS" ${ARGN})
  if(NOT KOS_BUILD_FUZZERS)
    return()
  endif()
  if(NOT A_SECONDS)
    set(A_SECONDS 20)
  endif()
  add_executable(${name} ${A_SOURCES})
  target_compile_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(${name} PRIVATE ${A_LIBS} -l:libstdc++.so.6)
  set(corpus ${CMAKE_CURRENT_BINARY_DIR}/${name}_corpus)
  # A fixed seed: a CI run explores the same inputs for the same code, so a
  # failure it reports can be reproduced (and a found input becomes a seed).
  set(args -max_total_time=${A_SECONDS} -seed=1 -rss_limit_mb=2048 -timeout=10 ${corpus})
  if(A_SEEDS)
    list(APPEND args ${A_SEEDS})
  endif()
  file(MAKE_DIRECTORY ${corpus})
  add_test(NAME ${name} COMMAND $<TARGET_FILE:${name}> ${args})
  math(EXPR timeout "${A_SECONDS} + 60")
  set_tests_properties(${name} PROPERTIES LABELS fuzz TIMEOUT ${timeout})
endfunction()
