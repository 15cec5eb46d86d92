// Assigns labels to rootfs paths from [labels] rules, like SELinux
// file_contexts: the most specific matching rule wins.
//
// Pattern syntax: an absolute path whose components may contain `*` (any
// run of bytes except '/'), `?` (one byte except '/'), or be exactly `**`
// (zero or more whole components). "/usr/**" thus labels "/usr" and
// everything below it; "/**" labels the whole tree including "/".
//
// Specificity, compared in order (larger wins):
//   1. no wildcard at all (an exact path),
//   2. length of the literal prefix before the first wildcard,
//   3. number of literal (non-wildcard) bytes,
//   4. fewer wildcards.
// Two matching rules that tie on all four are an error that names both, so
// a label never depends on the order rules were written in.
#pragma once

#include <string>
#include <vector>

#include "bundle_config.h"
#include "kos/support/result.h"

namespace kos::pkg {

// Returns "" if `pattern` is valid, else what is wrong with it.
std::string validate_label_pattern(const std::string& pattern);

class LabelMatcher {
public:
    explicit LabelMatcher(std::vector<LabelRule> rules);

    // The label of `path` (normalized, absolute). Fails with ENOENT when no
    // rule matches (an unlabeled file) and EINVAL on an ambiguous tie.
    Result<std::string> label_for(const std::string& path) const;

    // Whether `pattern` matches `path` (exposed for tests).
    static bool matches(const std::string& pattern, const std::string& path);

private:
    struct Compiled {
        LabelRule rule;
        bool exact;
        size_t prefix;
        size_t literals;
        size_t wildcards;
    };
    std::vector<Compiled> m_rules;
};

} // namespace kos::pkg
