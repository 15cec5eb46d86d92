// Regular expressions and globs compiled to minimal DFAs.
//
// The policy compiler turns every `regex` and `glob` condition into a DFA
// and stores its tables in the compiled policy; the freestanding engine only
// walks tables (linear time, no backtracking, no allocation). Matching is
// always of the whole value (implicitly anchored at both ends).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kos/support/result.h"

namespace kos::policy {

// State 0 is the dead state (absorbing, never accepting); state 1 is the
// start state. next[state * class_count + byte_class[byte]] is the
// successor. Minimal: no two states are equivalent.
struct Dfa {
    std::array<uint8_t, 256> byte_class{}; // byte -> equivalence class
    uint16_t class_count = 0;              // 1..256
    uint32_t state_count = 0;              // including the dead state
    std::vector<uint16_t> next;            // state_count * class_count
    std::vector<uint8_t> accepting;        // state_count entries, 0 or 1

    bool matches(std::string_view input) const;
};

struct DfaLimits {
    uint32_t max_pattern_bytes = 1024;
    uint32_t max_states = 4096; // after minimization; more is an error
    uint32_t max_repeat = 255;  // {m,n} bounds
};

// POSIX-ERE-like syntax: literals; `.`; bracket expressions `[a-z]`,
// `[^...]`, with classes [:alpha:] [:digit:] [:alnum:] [:space:] [:upper:]
// [:lower:] [:xdigit:] [:punct:]; groups `( )`; alternation `|`;
// quantifiers `* + ? {m} {m,} {m,n}`; escapes `\. \\ \d \D \w \W \s \S \n
// \t \r \xHH` and `\` before any punctuation. `^` and `$` are accepted only
// as the first/last character (matching is anchored anyway). Bytes, not
// code points: UTF-8 literals match their byte sequences.
// Errors say what is wrong and at which byte offset of the pattern
// ("regex: unbalanced ')' at offset 7").
Result<Dfa> compile_regex(std::string_view pattern, const DfaLimits& limits = {});

// Path globs, the same dialect as bundle labels (pkg/label_matcher.h):
// `*` any run of bytes except '/', `?` one byte except '/', `[...]` a
// bracket expression (never matching '/'), `**` as a whole component zero
// or more whole components ("/data/**" matches "/data", "/data/" and
// everything below), `\x` a literal x. Anything else is literal.
Result<Dfa> compile_glob(std::string_view pattern, const DfaLimits& limits = {});

// Details both dialects pin down (dfa_test.cc tests each):
// - regex: `.` and negated brackets match every byte, '\n' included.
//   Inside brackets `\` escapes as outside (`[\]\-\\]`, `[\d.]`). A
//   quantifier may not follow another (`a**`: use a group, `(a*)*`); `{`
//   must start a valid bound; `]` and `}` alone are literals; empty
//   alternatives and groups match the empty string.
// - glob: values are split into components like LabelMatcher::matches:
//   runs of '/' separate components and a trailing '/' is ignored, so
//   the glob "/data/a" matches "/data//a/"; a component is never empty, so
//   "/a/*" does not match "/a/". An absolute pattern matches only values that
//   start with '/' (LabelMatcher only ever sees those); a relative pattern
//   ("*.txt", "a/**") only values that do not. The empty value matches no
//   glob. "." and ".." in a value are ordinary components (normalize paths
//   first). `[!...]` and `[^...]` negate; `\` inside brackets quotes the
//   next byte. Errors: an empty pattern, a trailing '/', "//", "." or ".."
//   components, "**" that is not a whole component, an escaped '/'.
// - Work is bounded: the NFA by max(4096, 16 * max_states) states, subset
//   construction by 8 * max_states states and a step budget; past either
//   the error says which limit was hit.

// The DFA that matches exactly the strings in `values` (the compiled form of
// `== "x"` and `in {"a", "b"}` on strings); an empty set matches nothing
// (then states 0 and 1 are both dead, the one exception to minimality).
// Errors ("literals: ...") when the set needs more states than `limits`
// allow during construction or after minimization.
Result<Dfa> compile_literals(const std::vector<std::string>& values, const DfaLimits& limits = {});

} // namespace kos::policy
