#include "label_matcher.h"

#include <tuple>

namespace kos::pkg {
namespace {

std::vector<std::string_view> split(std::string_view p) {
    std::vector<std::string_view> out;
    size_t start = 1;
    while (start <= p.size()) {
        size_t end = p.find('/', start);
        if (end == std::string_view::npos)
            end = p.size();
        if (end > start)
            out.push_back(p.substr(start, end - start));
        start = end + 1;
    }
    return out;
}

// Glob within one component: `*` and `?`. Iterative with one backtrack
// point, so it runs in O(len(pattern) * len(name)) at worst.
bool match_component(std::string_view pat, std::string_view name) {
    size_t p = 0, n = 0, star = std::string_view::npos, mark = 0;
    while (n < name.size()) {
        if (p < pat.size() && (pat[p] == '?' || pat[p] == name[n])) {
            ++p;
            ++n;
        } else if (p < pat.size() && pat[p] == '*') {
            star = p++;
            mark = n;
        } else if (star != std::string_view::npos) {
            p = star + 1;
            n = ++mark;
        } else {
            return false;
        }
    }
    while (p < pat.size() && pat[p] == '*')
        ++p;
    return p == pat.size();
}

// Components with `**`: dynamic programming over (pattern, path) positions,
// so a pattern with several `**` stays polynomial.
bool match_components(const std::vector<std::string_view>& pat,
                      const std::vector<std::string_view>& path) {
    size_t P = pat.size(), N = path.size();
    // ok[j] == pattern[i..] matches path[j..], computed for i from P down.
    std::vector<char> next(N + 1, 0), cur(N + 1, 0);
    next[N] = 1;
    for (size_t i = P; i-- > 0;) {
        for (size_t j = N + 1; j-- > 0;) {
            if (pat[i] == "**")
                cur[j] = next[j] || (j < N && cur[j + 1]);
            else
                cur[j] = j < N && match_component(pat[i], path[j]) && next[j + 1];
        }
        std::swap(cur, next);
    }
    return next[0];
}

} // namespace

std::string validate_label_pattern(const std::string& pattern) {
    if (pattern.empty() || pattern.front() != '/')
        return "must be an absolute path such as \"/usr/**\"";
    if (pattern.size() > 1024)
        return "longer than 1024 bytes";
    if (pattern.size() > 1 && pattern.back() == '/')
        return "must not end with '/'";
    size_t wildcards = 0;
    for (std::string_view c : split(pattern)) {
        if (c == "." || c == "..")
            return "must not contain \".\" or \"..\" components";
        if (c.find("**") != std::string_view::npos && c != "**")
            return "\"**\" must be a whole component (\"/a/**\", not \"/a**\")";
        for (char ch : c)
            if (ch == '*' || ch == '?')
                ++wildcards;
            else if (ch == '[' || ch == '\\' || ch == '\0')
                return std::string("unsupported character '") + ch + "' (only * ? ** are special)";
    }
    if (pattern.find("//") != std::string::npos)
        return "must not contain \"//\"";
    if (wildcards > 16)
        return "more than 16 wildcards";
    return "";
}

LabelMatcher::LabelMatcher(std::vector<LabelRule> rules) {
    for (LabelRule& r : rules) {
        Compiled c{std::move(r), true, 0, 0, 0};
        const std::string& p = c.rule.pattern;
        size_t first = p.find_first_of("*?");
        c.exact = first == std::string::npos;
        c.prefix = c.exact ? p.size() : first;
        for (char ch : p)
            if (ch == '*' || ch == '?')
                ++c.wildcards;
            else
                ++c.literals;
        m_rules.push_back(std::move(c));
    }
}

bool LabelMatcher::matches(const std::string& pattern, const std::string& path) {
    return match_components(split(pattern), split(path));
}

Result<std::string> LabelMatcher::label_for(const std::string& path) const {
    const Compiled* best = nullptr;
    const Compiled* tie = nullptr;
    auto key = [](const Compiled& c) {
        return std::make_tuple(c.exact, c.prefix, c.literals, -static_cast<int64_t>(c.wildcards));
    };
    std::vector<std::string_view> parts = split(path);
    for (const Compiled& c : m_rules) {
        if (!match_components(split(c.rule.pattern), parts))
            continue;
        if (!best || key(c) > key(*best)) {
            best = &c;
            tie = nullptr;
        } else if (key(c) == key(*best)) {
            tie = &c;
        }
    }
    if (!best)
        return make_error(ENOENT, path + ": unlabeled file: no [labels] rule matches it; add a "
                                         "rule such as \"" + path + "\" = \"app_file_t\"");
    if (tie && tie->rule.label != best->rule.label)
        return make_error(EINVAL, path + ": ambiguous label: rules \"" + best->rule.pattern + "\" (" +
                                      best->rule.where + ") and \"" + tie->rule.pattern + "\" (" +
                                      tie->rule.where + ") are equally specific; add a more "
                                      "specific rule for this path");
    return best->rule.label;
}

} // namespace kos::pkg
