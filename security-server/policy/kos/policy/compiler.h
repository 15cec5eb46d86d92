// The .kpol compiler: sources -> checked PolicyModel -> blob, then the
// policy's own tests run on the compiled blob (docs/security-server.md).
//
// compile_policy_files() is what `kos policy check/compile` use;
// compile_policy_sources() compiles in-memory files (a bundle's policy
// sources: includes resolve among them only, never on the host).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kos/policy/builder.h"
#include "kos/support/result.h"

namespace kos::policy {

inline constexpr uint32_t kMaxIncludeDepth = 16;
inline constexpr uint64_t kMaxTotalSourceBytes = 64u << 20; // all files of one policy
inline constexpr uint32_t kMaxSourceFiles = 1024;
inline constexpr uint32_t kMaxLabels = 65536;

// The system interfaces (abi/idl), set by the build.
#ifndef KOS_IDL_DIR
#define KOS_IDL_DIR "/usr/share/kos/idl"
#endif

struct CompileOptions {
    // Where `idl "x.kidl"` looks after the including file's directory.
    std::vector<std::string> idl_path = {KOS_IDL_DIR};
    // Non-empty: this label must be declared as a domain (a bundle's [policy]
    // domain), unless the policy declares no labels at all (it then denies
    // everything).
    std::string domain;
    bool build = true;     // false: parse and resolve only (no blob, no tests)
    bool run_tests = true; // run the `test` blocks on the compiled blob
    BuildLimits limits;
};

struct TestOutcome {
    std::string name;
    std::string where; // of `test`
    uint32_t steps = 0;
    std::vector<std::string> failures; // "file:line:column: expected allow, got deny by rule ..."
    bool passed() const { return failures.empty(); }
};

struct CompiledPolicy {
    PolicyModel model;
    std::vector<uint8_t> blob;      // empty when options.build is false
    std::vector<std::string> files; // every source read, in order
    std::vector<TestOutcome> tests;
    std::vector<std::string> warnings;

    size_t rule_count() const { return model.rules.size(); }
    size_t tests_passed() const;
    bool all_tests_passed() const { return tests_passed() == tests.size(); }
};

// A policy file held in memory.
struct MemorySource {
    std::string name; // path relative to the bundle root, e.g. "policy/app.kpol"
    std::string text;
};

// Errors (EINVAL) list every problem found, one "file:line:column: ..." per
// line (at most 20). Failing tests are not an error: see CompiledPolicy::tests.
Result<CompiledPolicy> compile_policy_files(const std::vector<std::string>& paths,
                                            const CompileOptions& options = {});
Result<CompiledPolicy> compile_policy_sources(const std::vector<MemorySource>& sources,
                                              const CompileOptions& options = {});

// A bundle's policy: every source is a top-level file (includes resolve
// among them only; `idl` also looks in options.idl_path); tests must pass
// and `domain` must be a declared domain (see CompileOptions::domain).
// Returns the blob.
Result<std::vector<uint8_t>> compile_bundle_policy(const std::string& domain,
                                                   const std::vector<MemorySource>& sources,
                                                   const CompileOptions& options = {});

} // namespace kos::policy
