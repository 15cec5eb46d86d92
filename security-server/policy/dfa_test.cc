#include "kos/policy/dfa.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <random>
#include <regex>
#include <set>

#include "pkg/label_matcher.h"

using kos::policy::compile_glob;
using kos::policy::compile_literals;
using kos::policy::compile_regex;
using kos::policy::Dfa;
using kos::policy::DfaLimits;

namespace {

// Checks the documented shape (dead state 0, start 1, table sizes) and
// minimality, independently of dfa.cc: every state is reachable, and Moore
// refinement over the byte alphabet finds no two equivalent states.
void expect_well_formed_and_minimal(const Dfa& d, const std::string& what) {
    SCOPED_TRACE(what);
    ASSERT_GE(d.state_count, 2u);
    ASSERT_GE(d.class_count, 1u);
    ASSERT_LE(d.class_count, 256u);
    ASSERT_EQ(d.next.size(), size_t{d.state_count} * d.class_count);
    ASSERT_EQ(d.accepting.size(), d.state_count);
    for (uint8_t c : d.byte_class)
        ASSERT_LT(c, d.class_count);
    for (uint16_t t : d.next)
        ASSERT_LT(t, d.state_count);
    EXPECT_EQ(d.accepting[0], 0);
    for (uint32_t c = 0; c < d.class_count; ++c)
        EXPECT_EQ(d.next[c], 0) << "the dead state is absorbing";
    // Every class is used by some byte, and no two classes have the same
    // column (the compression merged them).
    std::set<uint8_t> used(d.byte_class.begin(), d.byte_class.end());
    EXPECT_EQ(used.size(), d.class_count);
    std::set<std::vector<uint16_t>> columns;
    for (uint32_t c = 0; c < d.class_count; ++c) {
        std::vector<uint16_t> col;
        for (uint32_t s = 0; s < d.state_count; ++s)
            col.push_back(d.next[s * d.class_count + c]);
        columns.insert(col);
    }
    EXPECT_EQ(columns.size(), d.class_count) << "two byte classes are interchangeable";
    bool empty_language = true;
    for (uint8_t a : d.accepting)
        empty_language = empty_language && a == 0;
    if (empty_language) {
        EXPECT_EQ(d.state_count, 2u);
        return;
    }
    // Reachability from the start (the dead state may be unreachable).
    std::vector<char> seen(d.state_count, 0);
    std::vector<uint32_t> todo{1};
    seen[1] = 1;
    while (!todo.empty()) {
        uint32_t s = todo.back();
        todo.pop_back();
        for (uint32_t c = 0; c < d.class_count; ++c) {
            uint16_t t = d.next[s * d.class_count + c];
            if (!seen[t]) {
                seen[t] = 1;
                todo.push_back(t);
            }
        }
    }
    for (uint32_t s = 1; s < d.state_count; ++s)
        EXPECT_TRUE(seen[s]) << "state " << s << " is unreachable";
    // Moore refinement.
    std::vector<uint32_t> block(d.state_count);
    for (uint32_t s = 0; s < d.state_count; ++s)
        block[s] = d.accepting[s];
    for (;;) {
        std::map<std::vector<uint32_t>, uint32_t> ids;
        std::vector<uint32_t> next_block(d.state_count);
        for (uint32_t s = 0; s < d.state_count; ++s) {
            std::vector<uint32_t> sig{block[s]};
            for (uint32_t c = 0; c < d.class_count; ++c)
                sig.push_back(block[d.next[s * d.class_count + c]]);
            next_block[s] = ids.emplace(sig, static_cast<uint32_t>(ids.size())).first->second;
        }
        std::set<uint32_t> before(block.begin(), block.end());
        block = next_block;
        if (ids.size() == before.size())
            break;
    }
    std::set<uint32_t> distinct(block.begin(), block.end());
    EXPECT_EQ(distinct.size(), d.state_count) << "the DFA is not minimal";
}

Dfa regex_or_die(std::string_view p, const DfaLimits& limits = {}) {
    auto r = compile_regex(p, limits);
    EXPECT_TRUE(r) << p << ": " << (r ? "" : r.error().message);
    return r ? *r : Dfa{};
}

Dfa glob_or_die(std::string_view p) {
    auto r = compile_glob(p);
    EXPECT_TRUE(r) << p << ": " << (r ? "" : r.error().message);
    return r ? *r : Dfa{};
}

struct Case {
    const char* pattern;
    std::vector<std::string> accept;
    std::vector<std::string> reject;
};

void run_cases(const std::vector<Case>& cases, bool glob) {
    for (const Case& c : cases) {
        Dfa d = glob ? glob_or_die(c.pattern) : regex_or_die(c.pattern);
        expect_well_formed_and_minimal(d, c.pattern);
        for (const std::string& s : c.accept)
            EXPECT_TRUE(d.matches(s)) << c.pattern << " should match \"" << s << "\"";
        for (const std::string& s : c.reject)
            EXPECT_FALSE(d.matches(s)) << c.pattern << " should not match \"" << s << "\"";
    }
}

void expect_error(kos::Result<Dfa> r, const std::string& message) {
    ASSERT_FALSE(r) << "expected: " << message;
    EXPECT_EQ(r.error().message, message);
    EXPECT_TRUE(r.error().code == EINVAL || r.error().code == E2BIG);
}

} // namespace

TEST(Regex, AcceptsAndRejectsWholeValues) {
    std::string nul_a("\0a", 2);
    run_cases(
        {
            {"abc", {"abc"}, {"", "ab", "abcd", "xabc", "ABC"}},
            {"", {""}, {"a"}},
            {"^abc$", {"abc"}, {"abcc", "^abc$"}},
            {"a|b|", {"a", "b", ""}, {"ab", "c"}},
            {"(a|b)*abb", {"abb", "aabb", "babb", "ababb"}, {"", "ab", "abba", "abbb"}},
            {"[a-z]+\\.txt", {"a.txt", "readme.txt"}, {".txt", "A.txt", "a.txt2", "aXtxt"}},
            {"x{3}", {"xxx"}, {"xx", "xxxx"}},
            {"x{2,}", {"xx", "xxxxxxx"}, {"", "x"}},
            {"x{1,3}y?", {"x", "xxy", "xxx"}, {"", "xxxx", "y", "xyy"}},
            {"x{0}", {""}, {"x"}},
            {"(ab){2}|c+", {"abab", "c", "ccc"}, {"ab", "ababab", "abc"}},
            {".", {"a", "\n", "/", nul_a.substr(0, 1)}, {"", "ab"}},
            {"a.c",
             {"abc", "a.c",
              "a\xff"
              "c"},
             {"ac", "abbc"}},
            {"[^a-c]", {"d", "\n", "\xff"}, {"a", "b", "c", ""}},
            {"[]a]", {"]", "a"}, {"b", "[]a]"}},
            {"[^]a]", {"b"}, {"]", "a"}},
            {"[a-]", {"a", "-"}, {"b"}},
            {"[-a]", {"a", "-"}, {"b"}},
            {"[[:digit:][:upper:]]+", {"0", "A9Z"}, {"a", ""}},
            {"[[:alpha:]][[:alnum:]]*", {"a", "Ab3"}, {"3a", "a-b"}},
            {"[[:space:]]", {" ", "\t", "\n", "\r", "\f", "\v"}, {"a"}},
            {"[[:xdigit:]]{2}", {"0f", "A9"}, {"g0", "f"}},
            {"[[:punct:]]+", {"!?", "/._-"}, {"a", " "}},
            {"[[:lower:]]", {"q"}, {"Q"}},
            {"\\d+\\D", {"12a", "0 "}, {"12", "a1"}},
            {"\\w+\\W\\s\\S", {"a_1- x"}, {"a_1-  ", "- - x"}},
            {"\\n\\t\\r\\x41\\x7e", {"\n\t\rA~"}, {"\n\t\ra~"}},
            {"\\.\\\\\\*\\+\\?\\(\\)\\[\\]\\{\\}\\|\\^\\$\\/", {".\\*+?()[]{}|^$/"}, {""}},
            {"[\\]\\-\\\\]+", {"]", "-", "\\", "]-\\"}, {"a"}},
            {"[\\d.]+", {"1.2", "..."}, {"a"}},
            {"a]b}", {"a]b}"}, {"ab"}},
            {"caf\xc3\xa9", {"caf\xc3\xa9"}, {"cafe", "caf\xc3"}},
            {"(|a)(b|)", {"", "a", "b", "ab"}, {"ba"}},
            {"((a))((b)*)", {"a", "abbb"}, {"b", ""}},
            {"[a-c]*[b-d]+", {"b", "ad", "abcd", "cccb"}, {"", "a", "ae"}},
            {"a\\x00b", {std::string("a\0b", 3)}, {"ab"}},
            {"(a|ab)(c|bcd)(d*)", {"abcd", "acd", "abcdd"}, {"ab", "abd"}},
        },
        false);
}

TEST(Glob, AcceptsAndRejectsPaths) {
    run_cases(
        {
            {"/data/**",
             {"/data", "/data/", "/data/a", "/data/a/b/c", "//data//a//"},
             {"/dat", "/datax", "/datax/y", "", "data/a", "/x/data"}},
            {"/usr/bin/*",
             {"/usr/bin/sh", "/usr/bin/a.b"},
             {"/usr/bin", "/usr/bin/", "/usr/bin/a/b"}},
            {"/", {"/", "//"}, {"", "/a"}},
            {"/**", {"/", "/a", "/a/b/", "//"}, {"", "a"}},
            {"/etc/*.conf", {"/etc/a.conf", "/etc/.conf"}, {"/etc/a.confx", "/etc/a/b.conf"}},
            {"/a/**/z", {"/a/z", "/a/b/z", "/a/b/c/z"}, {"/a", "/a/zz", "/a/b/zz"}},
            {"/a/?", {"/a/b", "/a/?"}, {"/a/bc", "/a//", "/a/"}},
            {"/a/*/b", {"/a/x/b"}, {"/a//b", "/a/b", "/a/x/y/b"}},
            {"/a/[bc]?", {"/a/bx", "/a/cc"}, {"/a/ax", "/a/b", "/a/b/"}},
            {"/a/[!b]", {"/a/a", "/a/c"}, {"/a/b", "/a//"}},
            {"/a/[^b-y]", {"/a/a", "/a/z"}, {"/a/b", "/a/m"}},
            {"/a/[/a]", {"/a/a"}, {"/a//", "/a/"}},
            {"/a/\\*\\?\\[", {"/a/*?["}, {"/a/x?["}},
            {"/a/*\\*", {"/a/x*", "/a/*"}, {"/a/x"}},
            {"/**/*.txt", {"/a.txt", "/x/y/a.txt"}, {"/a.txt/b", "/a.txtx"}},
            {"/a/**/**/b", {"/a/b", "/a/x/b", "/a/x/y/b"}, {"/a/x"}},
            {"*.txt", {"a.txt", "a.txt/"}, {"/a.txt", "", "b/a.txt", ".txt2"}},
            {"**", {"a", "a/b", "a//b/"}, {"", "/", "/a"}},
            {"a/**", {"a", "a/", "a/b/c"}, {"/a", "b", "ab"}},
            {"/data/a", {"/data/a", "/data//a/", "//data/a"}, {"/data/a/b", "/data/ab"}},
            // Not normalized: ".." is a component like any other.
            {"/data/**", {"/data/../etc/shadow"}, {"/etc/shadow"}},
            {"/caf\xc3\xa9/*", {"/caf\xc3\xa9/x"}, {"/cafe/x"}},
        },
        true);
}

// Random strings over a small alphabet against std::regex (ERE,
// regex_match): the two must agree on every string.
TEST(Regex, AgreesWithStdRegexExtended) {
    const std::vector<std::string> patterns = {
        "a",       "ab|ba",        "(a|b)*abb",  "a*b*c*",       "(ab|a)*",    "(a|b|c)+",
        "a?b?c?",  "(a*b)*",       "[ab]{2,3}",  "a{3}|b{2,}",   "(ab){1,2}c", ".*a.*b.*",
        "[^a]*",   "(a|b){0,3}c?", "c(a|b)*c",   "((a|b)c)*",    "a(b|c)*d?",  "(aa|bb|cc)*",
        "[a-c]+b", "(a+|b+)c",     "a*(b|cc)*a", "(abc|ab|a)*c", "([ab]c?)*",  "(a?b?)*",
        ".?.?c",   "(a|(b(c)*))*", "b{1,4}a*",   "(a{2})*b",     "(c|ab*)+",   "[[:alpha:]]+d",
        "a(b|c)c", "(a.c)|(b.*)",
    };
    const std::string alphabet = "abcd";
    std::mt19937 rng(1);
    size_t checked = 0;
    for (const std::string& p : patterns) {
        SCOPED_TRACE(p);
        Dfa d = regex_or_die(p);
        expect_well_formed_and_minimal(d, p);
        std::regex re(p, std::regex::extended);
        auto check = [&](const std::string& s) {
            ASSERT_EQ(d.matches(s), std::regex_match(s, re)) << "on \"" << s << "\"";
            ++checked;
        };
        // Every string up to length 5, then random ones up to length 12.
        std::vector<std::string> level{""};
        for (int len = 0; len <= 5; ++len) {
            std::vector<std::string> longer;
            for (const std::string& s : level) {
                check(s);
                for (char c : alphabet)
                    longer.push_back(s + c);
            }
            level = std::move(longer);
        }
        for (int n = 0; n < 2000; ++n) {
            std::string s(rng() % 13, 'a');
            for (char& c : s)
                c = alphabet[rng() % alphabet.size()];
            check(s);
        }
    }
    std::printf("[ info ] %zu strings checked against std::regex\n", checked);
}

// Random valid label patterns and random absolute paths: compile_glob
// agrees with pkg's LabelMatcher::matches. (Values that do not start with
// '/' never match an absolute glob; LabelMatcher, which only ever sees
// absolute paths, ignores the first byte.)
TEST(Glob, AgreesWithLabelMatcher) {
    std::mt19937 rng(7);
    const std::vector<std::string> pieces = {"a", "b", "*", "?", "ab", "a*", "*b", "?a", "*?*"};
    const std::string path_alphabet = "/ab.";
    size_t checked = 0;
    for (int n = 0; n < 400; ++n) {
        std::string pattern;
        int comps = static_cast<int>(rng() % 4);
        for (int c = 0; c < comps; ++c) {
            pattern += '/';
            if (rng() % 4 == 0) {
                pattern += "**";
            } else {
                int k = 1 + static_cast<int>(rng() % 2);
                for (int j = 0; j < k; ++j)
                    pattern += pieces[rng() % pieces.size()];
            }
        }
        if (pattern.empty())
            pattern = "/";
        if (!kos::pkg::validate_label_pattern(pattern).empty())
            continue; // e.g. "**" inside a component
        SCOPED_TRACE(pattern);
        Dfa d = glob_or_die(pattern);
        expect_well_formed_and_minimal(d, pattern);
        for (int m = 0; m < 300; ++m) {
            std::string path = "/";
            size_t len = rng() % 9;
            for (size_t j = 0; j < len; ++j)
                path += path_alphabet[rng() % path_alphabet.size()];
            ASSERT_EQ(d.matches(path), kos::pkg::LabelMatcher::matches(pattern, path))
                << "on \"" << path << "\"";
            ++checked;
            EXPECT_FALSE(d.matches("x" + path.substr(1)));
        }
    }
    // The fixed examples from pkg's own tests.
    for (const char* p : {"/usr/**", "/**", "/bin/*", "/etc/*.conf", "/a/**/z", "/a/?", "/"})
        for (const char* s :
             {"/usr", "/usr/lib/x.so", "/usrx", "/", "/bin/sh", "/bin/a/b", "/etc/a.conf",
              "/etc/a.confx", "/a/z", "/a/b/c/z", "/a/b", "/a/bc", "/a"}) {
            Dfa d = glob_or_die(p);
            EXPECT_EQ(d.matches(s), kos::pkg::LabelMatcher::matches(p, s)) << p << " on " << s;
        }
    std::printf("[ info ] %zu paths checked against LabelMatcher\n", checked);
}

TEST(Dfa, MinimalStateCounts) {
    // The textbook minimal DFA of (a|b)*abb has 4 states; over all 256
    // bytes a fifth, dead state catches every other byte.
    Dfa d = regex_or_die("(a|b)*abb");
    EXPECT_EQ(d.state_count, 5u);
    EXPECT_EQ(d.class_count, 3u); // a, b, everything else
    Dfa plus = regex_or_die("[a-z]+");
    EXPECT_EQ(plus.state_count, 3u);
    EXPECT_EQ(plus.class_count, 2u);
    // Equivalent patterns give the same tables.
    Dfa x = regex_or_die("(a|b)*");
    Dfa y = regex_or_die("(a*b*)*");
    EXPECT_EQ(x.next, y.next);
    EXPECT_EQ(x.accepting, y.accepting);
    EXPECT_EQ(x.byte_class, y.byte_class);
    // .* has no dead state reachable; state 0 is still there.
    Dfa all = regex_or_die(".*");
    EXPECT_EQ(all.state_count, 2u);
    EXPECT_EQ(all.class_count, 1u);
    EXPECT_TRUE(all.matches(""));
    EXPECT_TRUE(all.matches(std::string("\0\xff", 2)));
    // The n-th symbol from the end is a: 2^(n+1) states plus dead.
    Dfa nth = regex_or_die("(a|b)*a(a|b){3}");
    EXPECT_EQ(nth.state_count, 17u);
    // "/data/**": start, after '/', "d", "da", "dat", "data" (accepting),
    // "/data/" (accepting), inside a component below, plus dead.
    Dfa g = glob_or_die("/data/**");
    expect_well_formed_and_minimal(g, "/data/**");
    EXPECT_LE(g.state_count, 10u);
}

TEST(Dfa, Literals) {
    auto d = compile_literals({"read", "write", "", "readlink"});
    ASSERT_TRUE(d) << d.error().message;
    expect_well_formed_and_minimal(*d, "literals");
    for (const char* s : {"read", "write", "", "readlink"})
        EXPECT_TRUE(d->matches(s)) << s;
    for (const char* s : {"rea", "reads", "writ", "readlin", "readlinkx", "x"})
        EXPECT_FALSE(d->matches(s)) << s;
    std::string bin("a\0b", 3);
    auto b = compile_literals({bin});
    ASSERT_TRUE(b);
    EXPECT_TRUE(b->matches(bin));
    EXPECT_FALSE(b->matches("a"));
    // An empty set matches nothing; the table is still well formed.
    auto none = compile_literals({});
    ASSERT_TRUE(none);
    EXPECT_EQ(none->state_count, 2u);
    EXPECT_FALSE(none->matches(""));
    EXPECT_FALSE(none->matches("a"));
    expect_well_formed_and_minimal(*none, "empty set");
    // A large set: 2000 strings.
    std::vector<std::string> many;
    for (int i = 0; i < 2000; ++i)
        many.push_back("/svc/" + std::to_string(i * 7919));
    auto m = compile_literals(many);
    ASSERT_TRUE(m) << m.error().message;
    for (const std::string& s : many)
        ASSERT_TRUE(m->matches(s));
    EXPECT_FALSE(m->matches("/svc/1"));
    // Limits.
    DfaLimits small;
    small.max_states = 8;
    expect_error(compile_literals({"abcdefghijklmnop"}, small),
                 "literals: the minimal DFA has 18 states, more than the limit of 8; simplify the "
                 "pattern");
    small.max_pattern_bytes = 4;
    expect_error(compile_literals({"abcdef"}, small),
                 "literals: a string of 6 bytes is longer than the limit of 4");
}

TEST(Dfa, MalformedRegexesNameWhatAndWhere) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"abc)d", "regex: unbalanced ')' at offset 3"},
        {"a(b(c)", "regex: unbalanced '(' at offset 1"},
        {"*a", "regex: nothing to repeat before '*' at offset 0"},
        {"a|+", "regex: nothing to repeat before '+' at offset 2"},
        {"(?a)", "regex: nothing to repeat before '?' at offset 1"},
        {"^*", "regex: nothing to repeat before '*' at offset 1"},
        {"a**", "regex: '*' follows another quantifier (use a group: (a*)*) at offset 2"},
        {"a{2}{3}", "regex: '{' follows another quantifier (use a group: (a*)*) at offset 4"},
        {"a{", "regex: invalid repeat (expected {m}, {m,} or {m,n}) at offset 1"},
        {"a{x}", "regex: invalid repeat (expected {m}, {m,} or {m,n}) at offset 1"},
        {"a{1,x}", "regex: invalid repeat (expected {m}, {m,} or {m,n}) at offset 1"},
        {"a{,3}", "regex: invalid repeat (expected {m}, {m,} or {m,n}) at offset 1"},
        {"a{2", "regex: invalid repeat (expected {m}, {m,} or {m,n}) at offset 1"},
        {"ab{5,2}", "regex: repeat bounds {5,2} are reversed at offset 2"},
        {"a{256}", "regex: repeat bound 256 exceeds the limit of 255 at offset 1"},
        {"a{1,99999999999}", "regex: repeat bound 1073741824 exceeds the limit of 255 at offset 1"},
        {"a{300,}", "regex: repeat bound 300 exceeds the limit of 255 at offset 1"},
        {"[abc", "regex: unterminated '[' at offset 0"},
        {"x[]", "regex: unterminated '[' at offset 1"},
        {"[z-a]", "regex: invalid range 'z-a' (start after end) at offset 1"},
        {"[[:alpah:]]", "regex: unknown class '[:alpah:]' (known: alpha digit alnum space upper "
                        "lower xdigit punct) at offset 1"},
        {"[[:alpha:]-z]", "regex: a range cannot start with a class at offset 1"},
        {"[a-\\d]", "regex: a range cannot end with a class at offset 3"},
        {"[[=a=]]", "regex: collating elements '[=' are not supported at offset 1"},
        {"[[:alpha", "regex: unterminated '[:' at offset 1"},
        {"ab\\", "regex: trailing '\\' at offset 2"},
        {"\\q", "regex: unknown escape '\\q' at offset 0"},
        {"a\\1", "regex: unknown escape '\\1' at offset 1"},
        {"\\x4", "regex: '\\x' needs two hex digits (\\x2f) at offset 0"},
        {"\\xg0", "regex: '\\x' needs two hex digits (\\x2f) at offset 0"},
        {"a^b", "regex: '^' is only allowed as the first character (escape it: \\^) at offset 1"},
        {"a$b", "regex: '$' is only allowed as the last character (escape it: \\$) at offset 1"},
        {"(a$)", "regex: '$' is only allowed as the last character (escape it: \\$) at offset 2"},
        {std::string(300, '(') + std::string(300, ')'),
         "regex: groups nested deeper than 256 at offset 256"},
    };
    for (const auto& [pattern, message] : cases) {
        SCOPED_TRACE(pattern);
        expect_error(compile_regex(pattern), message);
    }
}

TEST(Dfa, MalformedGlobsNameWhatAndWhere) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"", "glob: empty pattern (write \"/**\" to match every path) at offset 0"},
        {"/data/", "glob: must not end with '/' (write \"/data\" or \"/data/**\") at offset 5"},
        {"/a//b", "glob: empty component (\"//\") at offset 3"},
        {"//", "glob: must not end with '/' (write \"/data\" or \"/data/**\") at offset 1"},
        {"/a/../b", "glob: \".\" and \"..\" components are not allowed at offset 3"},
        {"/./b", "glob: \".\" and \"..\" components are not allowed at offset 1"},
        {"/a**", "glob: \"**\" must be a whole component (\"/a/**\", not \"/a**\") at offset 2"},
        {"/**a", "glob: \"**\" must be a whole component (\"/a/**\", not \"/a**\") at offset 1"},
        {"/***", "glob: \"**\" must be a whole component (\"/a/**\", not \"/a**\") at offset 1"},
        {"/a/[bc", "glob: unterminated '[' at offset 3"},
        {"/a/[c-b]", "glob: invalid range 'c-b' (start after end) at offset 4"},
        {"/a\\", "glob: trailing '\\' at offset 2"},
        {"/a\\/b", "glob: an escaped '/' can never match (components never contain '/') at "
                   "offset 2"},
    };
    for (const auto& [pattern, message] : cases) {
        SCOPED_TRACE(pattern);
        expect_error(compile_glob(pattern), message);
    }
}

TEST(Dfa, LimitsAreErrorsNotHangs) {
    using Clock = std::chrono::steady_clock;
    auto t0 = Clock::now();
    // 2^21 states needed: construction stops at 8 x 4096.
    expect_error(compile_regex("(a|b)*a(a|b){20}"),
                 "regex: more than 32768 DFA states during construction (the limit is 4096 "
                 "after minimization); simplify the pattern (bounded repeats of alternatives "
                 "such as (a|b){20} multiply states)");
    // 2^13 + 1 states after minimization: over the limit.
    expect_error(compile_regex("(a|b)*a(a|b){11}"),
                 "regex: the minimal DFA has 4097 states, more than the limit of 4096; simplify "
                 "the pattern");
    // Nested repeats expand past the NFA bound long before any DFA work.
    expect_error(compile_regex("((a{255}){255}){255}"),
                 "regex: the pattern expands to more than 65536 NFA states (nested or large "
                 "repeats) at offset 3");
    expect_error(compile_regex(std::string(1025, 'a')),
                 "regex: pattern is 1025 bytes, longer than the limit of 1024 at offset 1024");
    expect_error(compile_glob("/" + std::string(1024, 'a')),
                 "glob: pattern is 1025 bytes, longer than the limit of 1024 at offset 1024");
    DfaLimits small;
    small.max_repeat = 3;
    small.max_states = 4;
    expect_error(compile_regex("a{4}", small),
                 "regex: repeat bound 4 exceeds the limit of 3 at offset 1");
    expect_error(compile_regex("abcd", small),
                 "regex: the minimal DFA has 6 states, more than the limit of 4; simplify the "
                 "pattern");
    expect_error(compile_glob("/a/b/c", small),
                 "glob: the minimal DFA has 8 states, more than the limit of 4; simplify the "
                 "pattern");
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
    std::printf("[ info ] all limit errors in %lld ms\n", static_cast<long long>(ms));
    EXPECT_LT(ms, 20000);
}

// Patterns built to make each stage expensive: each one compiles or fails
// with an error, in bounded time.
TEST(Dfa, AdversarialPatternsFinishQuickly) {
    using Clock = std::chrono::steady_clock;
    std::string many_classes;
    for (int c = 1; c < 128; c += 2)
        many_classes +=
            "\\x" + std::string(1, "0123456789abcdef"[c >> 4]) + "0123456789abcdef"[c & 15] + "?";
    const std::vector<std::string> patterns = {
        "(.*.*.*.*.*.*.*.*){30}",
        ".{0,255}.{0,255}.{0,255}.{0,255}x",
        "(a|aa){0,255}",
        "((a*)*){255}",
        "(.{0,255}x){4}",
        "((a|b)*a(a|b)*){1,255}b",
        "(a{0,255}){0,255}",
        "([ab]{0,200}c){5}",
        ".*a.{12}",
        "(((.{1,9}){1,9}){1,9})",
        "((.*[0-9a-fA-F]){3}.*[g-z]){20}",
        many_classes,
        "(" + many_classes + "){8}",
    };
    for (const std::string& p : patterns) {
        auto t0 = Clock::now();
        auto r = compile_regex(p);
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
        std::printf("[ info ] %-40.40s %-10s %6lld ms %s\n", p.c_str(),
                    r ? (std::to_string(r->state_count) + " states").c_str() : "error",
                    static_cast<long long>(ms), r ? "" : r.error().message.substr(0, 60).c_str());
        // Generous: a debug build on a loaded machine; a hang is what this
        // catches.
        EXPECT_LT(ms, 30000) << p;
        // The independent minimality check is quadratic in the chain
        // length of ".{0,255}..."; check the small ones.
        if (r && r->state_count <= 1024)
            expect_well_formed_and_minimal(*r, p);
    }
}

// The largest DFA the default limits allow for a classic blow-up pattern:
// (a|b)*a(a|b){10} needs 2^11 + 1 = 2049 states.
TEST(Dfa, LargestDfaCompileTime) {
    using Clock = std::chrono::steady_clock;
    for (const char* p : {"(a|b)*a(a|b){10}", "[a-z0-9_.-]{1,255}", "(\\d{1,3}\\.){3}\\d{1,3}",
                          "([a-z]+/){0,20}[a-z]+\\.(txt|md|conf)"}) {
        auto t0 = Clock::now();
        Dfa d = regex_or_die(p);
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
        std::printf("[ info ] %-40s %5u states %3u classes %8lld us\n", p, d.state_count,
                    d.class_count, static_cast<long long>(us));
        expect_well_formed_and_minimal(d, p);
    }
    Dfa big = regex_or_die("(a|b)*a(a|b){10}");
    EXPECT_EQ(big.state_count, 2049u);
    EXPECT_TRUE(big.matches("bbbbabbbbbbbbbb"
                            "a"
                            "bbbbbbbbbb"));
    EXPECT_FALSE(big.matches("aaaaaaaaaaab"
                             "bbbbbbbbbb"));
    Dfa ip = regex_or_die("(\\d{1,3}\\.){3}\\d{1,3}");
    EXPECT_TRUE(ip.matches("192.168.0.1"));
    EXPECT_FALSE(ip.matches("192.168.0"));
    EXPECT_FALSE(ip.matches("1921.168.0.1"));
}

TEST(Dfa, MatchesRejectsMalformedTables) {
    Dfa empty;
    EXPECT_FALSE(empty.matches(""));
    EXPECT_FALSE(empty.matches("a"));
    Dfa d = regex_or_die("ab");
    d.next.pop_back();
    EXPECT_FALSE(d.matches("ab"));
}

// Random ERE patterns (atoms a b c . [ab] [^a], groups, |, * + ? {m,n})
// against std::regex on random strings.
TEST(Regex, RandomPatternsAgreeWithStdRegex) {
    std::mt19937 rng(11);
    const std::vector<std::string> atoms = {"a", "b", "c", ".", "[ab]", "[^a]", "[[:lower:]]"};
    const std::vector<std::string> quantifiers = {"",  "",    "",      "*",   "+",
                                                  "?", "{2}", "{0,2}", "{1,}"};
    std::function<std::string(int)> gen = [&](int depth) -> std::string {
        std::string out;
        int items = 1 + static_cast<int>(rng() % 3);
        for (int i = 0; i < items; ++i) {
            std::string atom;
            if (depth > 0 && rng() % 3 == 0) {
                atom = "(" + gen(depth - 1);
                if (rng() % 2)
                    atom += "|" + gen(depth - 1);
                atom += ")";
            } else {
                atom = atoms[rng() % atoms.size()];
            }
            out += atom + quantifiers[rng() % quantifiers.size()];
        }
        return out;
    };
    size_t checked = 0, skipped = 0;
    for (int n = 0; n < 200; ++n) {
        std::string p = gen(2);
        SCOPED_TRACE(p);
        Dfa d = regex_or_die(p);
        std::regex re(p, std::regex::extended);
        for (int m = 0; m < 200; ++m) {
            std::string s(rng() % 9, 'a');
            for (char& c : s)
                c = "abcd"[rng() % 4];
            bool expected = false;
            try {
                expected = std::regex_match(s, re);
            } catch (const std::regex_error&) {
                ++skipped; // libc++ gives up on some nested loops (error_complexity)
                continue;
            }
            ASSERT_EQ(d.matches(s), expected) << "on \"" << s << "\"";
            ++checked;
        }
    }
    std::printf("[ info ] %zu random pattern/string pairs agree with std::regex (%zu it gave "
                "up on)\n",
                checked, skipped);
    EXPECT_GT(checked, 35000u);
}
