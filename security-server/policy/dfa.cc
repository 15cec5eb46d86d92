// Pattern -> minimal DFA: parse to a small syntax tree, Thompson NFA,
// subset construction over byte classes, Hopcroft minimization, then the
// byte classes are merged again where the minimal DFA no longer tells them
// apart. Every stage is bounded by DfaLimits (or a budget derived from
// them), so a hostile pattern yields an error, never a hang.
#include "kos/policy/dfa.h"

#include <algorithm>
#include <bitset>
#include <cerrno>
#include <map>
#include <unordered_map>

#include "kos/support/text.h"

namespace kos::policy {
namespace {

using ByteSet = std::bitset<256>;

constexpr uint32_t kInf = 0xffffffffu;
constexpr uint32_t kMaxDepth = 256; // nesting of groups

// ---------------------------------------------------------------------------
// Syntax tree shared by the regex, glob and literal-set front ends.

struct Node {
    enum Kind : uint8_t { Empty, Set, Cat, Alt, Rep } kind = Empty;
    ByteSet set;            // Set
    std::vector<Node> kids; // Cat, Alt; Rep has one
    uint32_t min = 0;       // Rep
    uint32_t max = 0;       // Rep; kInf = unbounded
    uint32_t offset = 0;    // where in the pattern (for errors)
};

Node make_set(const ByteSet& s, uint32_t offset = 0) {
    Node n;
    n.kind = Node::Set;
    n.set = s;
    n.offset = offset;
    return n;
}

Node make_byte(uint8_t b, uint32_t offset = 0) {
    ByteSet s;
    s.set(b);
    return make_set(s, offset);
}

Node make_rep(Node kid, uint32_t min, uint32_t max, uint32_t offset = 0) {
    Node n;
    n.kind = Node::Rep;
    n.min = min;
    n.max = max;
    n.offset = offset;
    n.kids.push_back(std::move(kid));
    return n;
}

Node make_list(Node::Kind kind, std::vector<Node> kids) {
    if (kids.size() == 1)
        return std::move(kids[0]);
    Node n;
    n.kind = kids.empty() ? Node::Empty : kind;
    n.kids = std::move(kids);
    return n;
}

std::string at(std::string_view what, size_t offset) {
    return std::string(what) + " at offset " + std::to_string(offset);
}

std::string printable(char c) {
    auto b = static_cast<unsigned char>(c);
    if (b >= 0x20 && b < 0x7f)
        return std::string(1, c);
    static const char kHex[] = "0123456789abcdef";
    return std::string("\\x") + kHex[b >> 4] + kHex[b & 15];
}

// ---------------------------------------------------------------------------
// Byte sets: POSIX classes and the \d \w \s shorthands (ASCII only; bytes,
// not code points).

ByteSet range_set(int lo, int hi) {
    ByteSet s;
    for (int b = lo; b <= hi; ++b)
        s.set(static_cast<size_t>(b));
    return s;
}

ByteSet digit_set() {
    return range_set('0', '9');
}
ByteSet upper_set() {
    return range_set('A', 'Z');
}
ByteSet lower_set() {
    return range_set('a', 'z');
}
ByteSet alpha_set() {
    return upper_set() | lower_set();
}
ByteSet alnum_set() {
    return alpha_set() | digit_set();
}
ByteSet word_set() {
    ByteSet s = alnum_set();
    s.set('_');
    return s;
}
ByteSet space_set() {
    ByteSet s;
    for (char c : std::string_view(" \t\n\r\f\v"))
        s.set(static_cast<unsigned char>(c));
    return s;
}
ByteSet xdigit_set() {
    return digit_set() | range_set('a', 'f') | range_set('A', 'F');
}
ByteSet punct_set() {
    ByteSet s;
    for (int b = 0x21; b < 0x7f; ++b)
        if (!alnum_set().test(static_cast<size_t>(b)))
            s.set(static_cast<size_t>(b));
    return s;
}

bool is_punct(char c) {
    auto b = static_cast<unsigned char>(c);
    return b > 0x20 && b < 0x7f && !alnum_set().test(b);
}

bool named_class(std::string_view name, ByteSet& out) {
    if (name == "alpha")
        out = alpha_set();
    else if (name == "digit")
        out = digit_set();
    else if (name == "alnum")
        out = alnum_set();
    else if (name == "space")
        out = space_set();
    else if (name == "upper")
        out = upper_set();
    else if (name == "lower")
        out = lower_set();
    else if (name == "xdigit")
        out = xdigit_set();
    else if (name == "punct")
        out = punct_set();
    else
        return false;
    return true;
}

// One escape after '\' at p[i - 1]; i points after the backslash. In glob
// mode `\x` is always the literal x. In regex mode the escapes of dfa.h.
// `single` is set when the result is one byte (a valid range endpoint).
Result<ByteSet> parse_escape(std::string_view p, size_t& i, bool glob, const char* who,
                             bool& single) {
    size_t start = i - 1;
    if (i >= p.size())
        return make_error(EINVAL, std::string(who) + ": " + at("trailing '\\'", start));
    char c = p[i++];
    single = true;
    ByteSet s;
    if (glob) {
        s.set(static_cast<unsigned char>(c));
        return s;
    }
    switch (c) {
    case 'n':
        s.set('\n');
        return s;
    case 't':
        s.set('\t');
        return s;
    case 'r':
        s.set('\r');
        return s;
    case 'x': {
        int hi = i < p.size() ? kos::hex_value(p[i]) : -1;
        int lo = i + 1 < p.size() ? kos::hex_value(p[i + 1]) : -1;
        if (hi < 0 || lo < 0)
            return make_error(EINVAL, std::string(who) + ": " +
                                          at("'\\x' needs two hex digits (\\x2f)", start));
        i += 2;
        s.set(static_cast<size_t>(hi) * 16 + static_cast<size_t>(lo));
        return s;
    }
    case 'd':
        single = false;
        return digit_set();
    case 'D':
        single = false;
        return ~digit_set();
    case 'w':
        single = false;
        return word_set();
    case 'W':
        single = false;
        return ~word_set();
    case 's':
        single = false;
        return space_set();
    case 'S':
        single = false;
        return ~space_set();
    default:
        if (is_punct(c)) {
            s.set(static_cast<unsigned char>(c));
            return s;
        }
        return make_error(EINVAL, std::string(who) + ": " +
                                      at("unknown escape '\\" + printable(c) + "'", start));
    }
}

// A bracket expression; p[i] == '['. `[^...]` negates (glob: also `[!...]`).
// A ']' first is literal, a '-' first or last is literal, [:class:] names a
// POSIX class. Backslash escapes inside brackets (regex escapes in regex
// mode, literal next byte in glob mode).
Result<ByteSet> parse_bracket(std::string_view p, size_t& i, bool glob, const char* who) {
    const size_t open = i++;
    auto fail = [&](const std::string& what, size_t off) {
        return make_error(EINVAL, std::string(who) + ": " + at(what, off));
    };
    bool negate = false;
    if (i < p.size() && (p[i] == '^' || (glob && p[i] == '!'))) {
        negate = true;
        ++i;
    }
    ByteSet set;
    bool first = true;
    // Reads one element: a byte (single) or a class.
    auto element = [&](ByteSet& out, bool& single) -> Result<void> {
        size_t here = i;
        char c = p[i];
        if (c == '[' && i + 1 < p.size() && p[i + 1] == ':') {
            size_t end = p.find(":]", i + 2);
            if (end == std::string_view::npos)
                return fail("unterminated '[:'", here);
            std::string_view name = p.substr(i + 2, end - i - 2);
            if (!named_class(name, out))
                return fail("unknown class '[:" + std::string(name) +
                                ":]' (known: alpha digit alnum space upper lower xdigit punct)",
                            here);
            i = end + 2;
            single = false;
            return {};
        }
        if (c == '[' && i + 1 < p.size() && (p[i + 1] == '=' || p[i + 1] == '.'))
            return fail("collating elements '[" + std::string(1, p[i + 1]) + "' are not supported",
                        here);
        if (c == '\\') {
            ++i;
            out = KOS_TRY(parse_escape(p, i, glob, who, single));
            return {};
        }
        out.reset();
        out.set(static_cast<unsigned char>(c));
        single = true;
        ++i;
        return {};
    };
    for (;;) {
        if (i >= p.size())
            return fail("unterminated '['", open);
        if (p[i] == ']' && !first) {
            ++i;
            break;
        }
        first = false;
        size_t lo_at = i;
        ByteSet lo;
        bool lo_single = false;
        KOS_TRY(element(lo, lo_single));
        if (i + 1 < p.size() && p[i] == '-' && p[i + 1] != ']') {
            ++i;
            size_t hi_at = i;
            if (!lo_single)
                return fail("a range cannot start with a class", lo_at);
            ByteSet hi;
            bool hi_single = false;
            KOS_TRY(element(hi, hi_single));
            if (!hi_single)
                return fail("a range cannot end with a class", hi_at);
            size_t a = 0, b = 0;
            while (!lo.test(a))
                ++a;
            while (!hi.test(b))
                ++b;
            if (a > b)
                return fail("invalid range '" + printable(static_cast<char>(a)) + "-" +
                                printable(static_cast<char>(b)) + "' (start after end)",
                            lo_at);
            set |= range_set(static_cast<int>(a), static_cast<int>(b));
        } else {
            set |= lo;
        }
    }
    return negate ? ~set : set;
}

// ---------------------------------------------------------------------------
// Regex parser (recursive descent). alt := seq ('|' seq)*; seq := (atom
// quantifier?)*.

class RegexParser {
  public:
    RegexParser(std::string_view p, const DfaLimits& limits) : m_p(p), m_limits(limits) {}

    Result<Node> parse() {
        if (m_i < m_p.size() && m_p[m_i] == '^')
            ++m_i;
        Node n = KOS_TRY(alt(0));
        if (m_i < m_p.size()) // only a ')' stops alt() early
            return fail("unbalanced ')'", m_i);
        return n;
    }

  private:
    std::unexpected<Error> fail(const std::string& what, size_t off) const {
        return make_error(EINVAL, "regex: " + at(what, off));
    }

    Result<Node> alt(uint32_t depth) {
        std::vector<Node> alts;
        alts.push_back(KOS_TRY(seq(depth)));
        while (m_i < m_p.size() && m_p[m_i] == '|') {
            ++m_i;
            alts.push_back(KOS_TRY(seq(depth)));
        }
        return make_list(Node::Alt, std::move(alts));
    }

    Result<Node> seq(uint32_t depth) {
        std::vector<Node> items;
        while (m_i < m_p.size() && m_p[m_i] != '|' && m_p[m_i] != ')') {
            size_t here = m_i;
            char c = m_p[m_i];
            if (c == '*' || c == '+' || c == '?' || c == '{')
                return fail(std::string("nothing to repeat before '") + c + "'", here);
            Node atom = KOS_TRY(this->atom(depth));
            bool quantified = false;
            while (m_i < m_p.size()) {
                char q = m_p[m_i];
                if (q != '*' && q != '+' && q != '?' && q != '{')
                    break;
                if (quantified)
                    return fail(std::string("'") + q +
                                    "' follows another quantifier (use a group: (a*)*)",
                                m_i);
                atom = KOS_TRY(quantifier(std::move(atom)));
                quantified = true;
            }
            items.push_back(std::move(atom));
        }
        return make_list(Node::Cat, std::move(items));
    }

    Result<uint32_t> number(size_t& i) {
        uint64_t v = 0;
        size_t start = i;
        while (i < m_p.size() && m_p[i] >= '0' && m_p[i] <= '9') {
            v = std::min<uint64_t>(v * 10 + static_cast<uint64_t>(m_p[i] - '0'), 1u << 30);
            ++i;
        }
        if (i == start)
            return make_error(EINVAL, "");
        return static_cast<uint32_t>(v);
    }

    Result<Node> quantifier(Node atom) {
        size_t here = m_i;
        char q = m_p[m_i++];
        if (q == '*')
            return make_rep(std::move(atom), 0, kInf, static_cast<uint32_t>(here));
        if (q == '+')
            return make_rep(std::move(atom), 1, kInf, static_cast<uint32_t>(here));
        if (q == '?')
            return make_rep(std::move(atom), 0, 1, static_cast<uint32_t>(here));
        // {m} {m,} {m,n}
        auto bad = [&] { return fail("invalid repeat (expected {m}, {m,} or {m,n})", here); };
        auto lo = number(m_i);
        if (!lo)
            return bad();
        uint32_t min = *lo, max = min;
        if (m_i < m_p.size() && m_p[m_i] == ',') {
            ++m_i;
            if (m_i < m_p.size() && m_p[m_i] == '}') {
                max = kInf;
            } else {
                auto hi = number(m_i);
                if (!hi)
                    return bad();
                max = *hi;
            }
        }
        if (m_i >= m_p.size() || m_p[m_i] != '}')
            return bad();
        ++m_i;
        uint32_t biggest = max == kInf ? min : max;
        if (biggest > m_limits.max_repeat)
            return fail("repeat bound " + std::to_string(biggest) + " exceeds the limit of " +
                            std::to_string(m_limits.max_repeat),
                        here);
        if (max < min)
            return fail("repeat bounds {" + std::to_string(min) + "," + std::to_string(max) +
                            "} are reversed",
                        here);
        return make_rep(std::move(atom), min, max, static_cast<uint32_t>(here));
    }

    Result<Node> atom(uint32_t depth) {
        size_t here = m_i;
        auto off = static_cast<uint32_t>(here);
        char c = m_p[m_i];
        switch (c) {
        case '(': {
            if (depth + 1 > kMaxDepth)
                return fail("groups nested deeper than " + std::to_string(kMaxDepth), here);
            ++m_i;
            Node inner = KOS_TRY(alt(depth + 1));
            if (m_i >= m_p.size() || m_p[m_i] != ')')
                return fail("unbalanced '('", here);
            ++m_i;
            return inner;
        }
        case '[':
            return make_set(KOS_TRY(parse_bracket(m_p, m_i, false, "regex")), off);
        case '.':
            ++m_i;
            return make_set(~ByteSet(), off);
        case '\\': {
            ++m_i;
            bool single = false;
            return make_set(KOS_TRY(parse_escape(m_p, m_i, false, "regex", single)), off);
        }
        case '^':
            return fail("'^' is only allowed as the first character (escape it: \\^)", here);
        case '$':
            if (here + 1 != m_p.size())
                return fail("'$' is only allowed as the last character (escape it: \\$)", here);
            ++m_i;
            return Node{};
        default:
            ++m_i;
            return make_byte(static_cast<uint8_t>(c), off);
        }
    }

    std::string_view m_p;
    const DfaLimits& m_limits;
    size_t m_i = 0;
};

// ---------------------------------------------------------------------------
// Glob -> syntax tree. A value v matches iff v + "/" is in
//   L' = "/"+ U1 U2 ... Un          (absolute pattern)
//   L' =      U1 U2 ... Un          (relative pattern)
// where a component c gives U = C "/"+ (C: c's glob, one non-empty run of
// non-'/' bytes) and `**` gives U = ([^/]+ "/"+)*. Appending the '/' makes
// the decomposition of a value into components unique, which is exactly
// LabelMatcher's split(): runs of '/' separate components and a trailing
// '/' is ignored. compile_glob() turns "v + '/' in L'" into acceptance on
// the DFA of L'.

Result<Node> glob_tree(std::string_view p) {
    auto fail = [](const std::string& what, size_t off) {
        return make_error(EINVAL, "glob: " + at(what, off));
    };
    if (p.empty())
        return fail("empty pattern (write \"/**\" to match every path)", 0);
    ByteSet not_slash = ~ByteSet();
    not_slash.reset('/');
    Node slashes = make_rep(make_byte('/'), 1, kInf);
    Node any_component = make_rep(make_set(not_slash), 1, kInf);

    std::vector<Node> units;
    size_t i = 0;
    if (p[0] == '/') {
        units.push_back(slashes);
        i = 1;
    }
    if (p.size() > 1 && p.back() == '/')
        return fail("must not end with '/' (write \"/data\" or \"/data/**\")", p.size() - 1);
    while (i < p.size()) {
        size_t begin = i;
        // One component: up to the next unescaped '/' outside brackets.
        std::vector<Node> parts;
        bool only_stars = true;
        size_t stars = 0;
        while (i < p.size() && p[i] != '/') {
            size_t here = i;
            auto off = static_cast<uint32_t>(here);
            char c = p[i];
            if (c == '*') {
                if (i + 1 < p.size() && p[i + 1] == '*') {
                    size_t end = i;
                    while (end < p.size() && p[end] == '*')
                        ++end;
                    bool whole =
                        here == begin && end - here == 2 && (end == p.size() || p[end] == '/');
                    if (!whole)
                        return fail("\"**\" must be a whole component (\"/a/**\", not \"/a**\")",
                                    here);
                    i = end;
                    parts.clear();
                    stars = 2;
                    break;
                }
                ++i;
                ++stars;
                parts.push_back(make_rep(make_set(not_slash), 0, kInf, off));
                continue;
            }
            only_stars = false;
            if (c == '?') {
                ++i;
                parts.push_back(make_set(not_slash, off));
            } else if (c == '[') {
                // Never matches '/', whatever the brackets say.
                ByteSet s = KOS_TRY(parse_bracket(p, i, true, "glob"));
                parts.push_back(make_set(s & not_slash, off));
            } else if (c == '\\') {
                ++i;
                bool single = false;
                ByteSet s = KOS_TRY(parse_escape(p, i, true, "glob", single));
                if (s.test('/'))
                    return fail("an escaped '/' can never match (components never contain '/')",
                                here);
                parts.push_back(make_set(s, off));
            } else {
                ++i;
                parts.push_back(make_byte(static_cast<uint8_t>(c), off));
            }
        }
        std::string_view comp = p.substr(begin, i - begin);
        if (comp.empty())
            return fail("empty component (\"//\")", begin);
        if (comp == "." || comp == "..")
            return fail("\".\" and \"..\" components are not allowed", begin);
        if (stars == 2 && parts.empty() && comp == "**") {
            units.push_back(make_rep(make_list(Node::Cat, {any_component, slashes}), 0, kInf));
        } else {
            // A component is never empty, so one made of stars alone is
            // [^/]+ rather than [^/]*.
            Node body = only_stars ? any_component : make_list(Node::Cat, std::move(parts));
            units.push_back(make_list(Node::Cat, {std::move(body), slashes}));
        }
        if (i < p.size())
            ++i; // the '/'
    }
    return make_list(Node::Cat, std::move(units));
}

// ---------------------------------------------------------------------------
// Thompson NFA.

struct NfaState {
    std::vector<uint32_t> eps;
    uint32_t target = kInf; // byte edge
    uint32_t label = 0;     // index into Nfa::labels
};

struct Nfa {
    std::vector<NfaState> states;
    std::vector<ByteSet> labels;
    uint32_t start = 0;
    uint32_t accept = 0;
    uint32_t cap = 0;
    bool overflow = false;
    uint32_t overflow_offset = 0;

    uint32_t add() {
        if (states.size() >= cap)
            overflow = true;
        states.emplace_back();
        return static_cast<uint32_t>(states.size() - 1);
    }
};

struct Frag {
    uint32_t start, end;
};

class NfaBuilder {
  public:
    NfaBuilder(Nfa& nfa) : m_nfa(nfa) {}

    Frag emit(const Node& n) {
        if (m_nfa.overflow) {
            uint32_t s = m_nfa.add();
            return {s, s};
        }
        switch (n.kind) {
        case Node::Empty: {
            uint32_t s = m_nfa.add();
            return {s, s};
        }
        case Node::Set: {
            uint32_t s = m_nfa.add(), e = m_nfa.add();
            m_nfa.states[s].target = e;
            m_nfa.states[s].label = label(n.set);
            return {s, e};
        }
        case Node::Cat: {
            Frag f = emit(n.kids[0]);
            for (size_t k = 1; k < n.kids.size() && !m_nfa.overflow; ++k) {
                Frag g = emit(n.kids[k]);
                m_nfa.states[f.end].eps.push_back(g.start);
                f.end = g.end;
            }
            return f;
        }
        case Node::Alt: {
            uint32_t s = m_nfa.add(), e = m_nfa.add();
            for (const Node& k : n.kids) {
                if (m_nfa.overflow)
                    break;
                Frag g = emit(k);
                m_nfa.states[s].eps.push_back(g.start);
                m_nfa.states[g.end].eps.push_back(e);
            }
            return {s, e};
        }
        case Node::Rep: {
            uint32_t s = m_nfa.add();
            uint32_t cur = s;
            for (uint32_t k = 0; k < n.min && !m_nfa.overflow; ++k) {
                Frag g = emit(n.kids[0]);
                m_nfa.states[cur].eps.push_back(g.start);
                cur = g.end;
            }
            uint32_t e = m_nfa.add();
            if (n.max == kInf) {
                Frag g = emit(n.kids[0]);
                m_nfa.states[cur].eps.push_back(g.start);
                m_nfa.states[cur].eps.push_back(e);
                m_nfa.states[g.end].eps.push_back(g.start);
                m_nfa.states[g.end].eps.push_back(e);
            } else {
                for (uint32_t k = n.min; k < n.max && !m_nfa.overflow; ++k) {
                    Frag g = emit(n.kids[0]);
                    m_nfa.states[cur].eps.push_back(g.start);
                    m_nfa.states[cur].eps.push_back(e);
                    cur = g.end;
                }
                m_nfa.states[cur].eps.push_back(e);
            }
            if (m_nfa.overflow && !m_overflow_noted) {
                m_overflow_noted = true;
                m_nfa.overflow_offset = n.offset;
            }
            return {s, e};
        }
        }
        return {0, 0};
    }

  private:
    uint32_t label(const ByteSet& s) {
        for (size_t k = 0; k < m_nfa.labels.size(); ++k)
            if (m_nfa.labels[k] == s)
                return static_cast<uint32_t>(k);
        m_nfa.labels.push_back(s);
        return static_cast<uint32_t>(m_nfa.labels.size() - 1);
    }

    Nfa& m_nfa;
    bool m_overflow_noted = false;
};

// ---------------------------------------------------------------------------
// Subset construction over byte classes.

struct RawDfa {
    std::array<uint16_t, 256> byte_class{}; // byte -> class
    uint32_t classes = 0;
    uint32_t states = 0;            // state 0: dead (empty set); state 1: start
    std::vector<uint32_t> next;     // states * classes
    std::vector<uint8_t> accepting; // states
};

struct Budget {
    uint32_t max_raw_states;
    uint64_t max_work;
};

Budget budget_for(const DfaLimits& limits) {
    uint64_t max_states = std::min<uint64_t>(limits.max_states, 65535);
    return {static_cast<uint32_t>(std::max<uint64_t>(8 * max_states, 64)),
            std::max<uint64_t>(uint64_t{1} << 18, max_states * 4096)};
}

uint32_t nfa_cap(const DfaLimits& limits) {
    return static_cast<uint32_t>(std::max<uint64_t>(4096, 16 * uint64_t{limits.max_states}));
}

Result<RawDfa> determinize(const Nfa& nfa, const DfaLimits& limits, const char* who) {
    RawDfa d;
    // Byte classes: bytes no edge label tells apart share a class.
    std::array<uint16_t, 256> cls{};
    uint32_t count = 1;
    for (const ByteSet& l : nfa.labels) {
        std::vector<int32_t> split(size_t{2} * count, -1);
        uint32_t next_count = 0;
        for (size_t b = 0; b < 256; ++b) {
            size_t key = 2 * cls[b] + (l.test(b) ? 1 : 0);
            if (split[key] < 0)
                split[key] = static_cast<int32_t>(next_count++);
            cls[b] = static_cast<uint16_t>(split[key]);
        }
        count = next_count;
    }
    d.byte_class = cls;
    d.classes = count;
    std::vector<std::vector<uint16_t>> label_classes(nfa.labels.size());
    for (size_t k = 0; k < nfa.labels.size(); ++k) {
        std::vector<char> seen(count, 0);
        for (size_t b = 0; b < 256; ++b)
            if (nfa.labels[k].test(b) && !seen[cls[b]]) {
                seen[cls[b]] = 1;
                label_classes[k].push_back(cls[b]);
            }
    }

    Budget budget = budget_for(limits);
    uint64_t work = 0;
    std::vector<uint32_t> stamp(nfa.states.size(), 0);
    uint32_t epoch = 0;
    std::vector<uint32_t> stack;
    // A DFA state keeps only the NFA states that matter for its future:
    // those with a byte edge, the accepting one, and the start (which
    // nothing re-enters, so the start DFA state stays unique).
    std::vector<char> important(nfa.states.size(), 0);
    for (size_t s = 0; s < nfa.states.size(); ++s)
        important[s] =
            static_cast<char>(nfa.states[s].target != kInf || s == nfa.accept || s == nfa.start);
    auto closure = [&](std::vector<uint32_t>& set) {
        ++epoch;
        stack.assign(set.begin(), set.end());
        set.clear();
        while (!stack.empty()) {
            uint32_t s = stack.back();
            stack.pop_back();
            ++work;
            if (stamp[s] == epoch)
                continue;
            stamp[s] = epoch;
            if (important[s])
                set.push_back(s);
            for (uint32_t t : nfa.states[s].eps)
                if (stamp[t] != epoch)
                    stack.push_back(t);
        }
        std::sort(set.begin(), set.end());
    };

    std::unordered_map<std::string, uint32_t> ids;
    std::vector<std::vector<uint32_t>> sets;
    auto key_of = [](const std::vector<uint32_t>& s) {
        return std::string(reinterpret_cast<const char*>(s.data()), s.size() * sizeof(uint32_t));
    };
    auto intern = [&](std::vector<uint32_t>&& s) -> uint32_t {
        auto [it, fresh] = ids.try_emplace(key_of(s), static_cast<uint32_t>(sets.size()));
        if (fresh) {
            bool acc = std::binary_search(s.begin(), s.end(), nfa.accept);
            d.accepting.push_back(acc ? 1 : 0);
            sets.push_back(std::move(s));
            d.next.resize(sets.size() * count, 0);
        }
        return it->second;
    };
    intern({});
    std::vector<uint32_t> start{nfa.start};
    closure(start);
    intern(std::move(start));

    std::vector<std::vector<uint32_t>> buckets(count);
    std::unordered_map<std::string, uint32_t> seen_buckets;
    for (uint32_t q = 1; q < sets.size(); ++q) {
        for (auto& b : buckets)
            b.clear();
        for (uint32_t s : sets[q]) {
            const NfaState& st = nfa.states[s];
            if (st.target == kInf)
                continue;
            for (uint16_t c : label_classes[st.label])
                buckets[c].push_back(st.target);
            work += label_classes[st.label].size();
        }
        // Classes that reach the same NFA states (all the bytes under a
        // '.', say) share one closure.
        seen_buckets.clear();
        for (uint32_t c = 0; c < count; ++c) {
            if (buckets[c].empty())
                continue;
            auto [it, fresh] = seen_buckets.try_emplace(key_of(buckets[c]), 0);
            if (fresh) {
                std::vector<uint32_t> t = buckets[c];
                closure(t);
                it->second = intern(std::move(t));
            }
            d.next[q * count + c] = it->second;
        }
        if (sets.size() > budget.max_raw_states)
            return make_error(E2BIG, std::string(who) + ": more than " +
                                         std::to_string(budget.max_raw_states) +
                                         " DFA states during construction (the limit is " +
                                         std::to_string(limits.max_states) +
                                         " after minimization); simplify the pattern (bounded "
                                         "repeats of alternatives such as (a|b){20} multiply "
                                         "states)");
        if (work > budget.max_work)
            return make_error(E2BIG, std::string(who) +
                                         ": pattern too complex to compile (more "
                                         "than " +
                                         std::to_string(budget.max_work) +
                                         " construction steps); simplify it");
    }
    d.states = static_cast<uint32_t>(sets.size());
    return d;
}

// ---------------------------------------------------------------------------
// Hopcroft minimization. Returns block_of[state]; blocks are numbered from 0.

std::vector<uint32_t> minimize(const RawDfa& d, uint32_t& block_count) {
    const uint32_t n = d.states, k = d.classes;
    // Inverse transitions, CSR by (target, class).
    std::vector<uint32_t> inv_start(static_cast<size_t>(n) * k + 1, 0),
        inv(static_cast<size_t>(n) * k);
    for (uint32_t s = 0; s < n; ++s)
        for (uint32_t c = 0; c < k; ++c)
            ++inv_start[static_cast<size_t>(d.next[s * k + c]) * k + c + 1];
    for (size_t x = 1; x < inv_start.size(); ++x)
        inv_start[x] += inv_start[x - 1];
    {
        std::vector<uint32_t> fill(inv_start.begin(), inv_start.end() - 1);
        for (uint32_t s = 0; s < n; ++s)
            for (uint32_t c = 0; c < k; ++c)
                inv[fill[static_cast<size_t>(d.next[s * k + c]) * k + c]++] = s;
    }

    struct Block {
        uint32_t begin, end, marked;
    };
    std::vector<uint32_t> elems(n), pos(n), blk(n);
    std::vector<Block> blocks;
    {
        uint32_t w = 0;
        for (int acc = 0; acc < 2; ++acc) {
            uint32_t begin = w;
            for (uint32_t s = 0; s < n; ++s)
                if (d.accepting[s] == acc) {
                    elems[w] = s;
                    pos[s] = w;
                    blk[s] = static_cast<uint32_t>(blocks.size());
                    ++w;
                }
            if (w > begin)
                blocks.push_back({begin, w, 0});
        }
    }
    std::vector<char> in_work(blocks.size(), 0);
    std::vector<uint32_t> work;
    if (blocks.size() == 2) {
        uint32_t smaller =
            blocks[0].end - blocks[0].begin <= blocks[1].end - blocks[1].begin ? 0 : 1;
        work.push_back(smaller);
        in_work[smaller] = 1;
    }
    std::vector<uint32_t> splitter, touched;
    while (!work.empty()) {
        uint32_t a = work.back();
        work.pop_back();
        in_work[a] = 0;
        splitter.assign(elems.begin() + blocks[a].begin, elems.begin() + blocks[a].end);
        for (uint32_t c = 0; c < k; ++c) {
            touched.clear();
            for (uint32_t t : splitter) {
                size_t x = static_cast<size_t>(t) * k + c;
                for (uint32_t e = inv_start[x]; e < inv_start[x + 1]; ++e) {
                    uint32_t p = inv[e];
                    Block& b = blocks[blk[p]];
                    uint32_t i = pos[p];
                    if (i < b.begin + b.marked)
                        continue;
                    uint32_t j = b.begin + b.marked;
                    std::swap(elems[i], elems[j]);
                    pos[elems[i]] = i;
                    pos[elems[j]] = j;
                    if (b.marked++ == 0)
                        touched.push_back(blk[p]);
                }
            }
            for (uint32_t bi : touched) {
                Block& b = blocks[bi];
                if (b.marked == b.end - b.begin) {
                    b.marked = 0;
                    continue;
                }
                Block nb{b.begin, b.begin + b.marked, 0};
                b.begin += b.marked;
                b.marked = 0;
                auto ni = static_cast<uint32_t>(blocks.size());
                uint32_t old_size = b.end - b.begin;
                blocks.push_back(nb);
                in_work.push_back(0);
                for (uint32_t x = nb.begin; x < nb.end; ++x)
                    blk[elems[x]] = ni;
                if (in_work[bi] || nb.end - nb.begin <= old_size) {
                    work.push_back(ni);
                    in_work[ni] = 1;
                } else {
                    work.push_back(bi);
                    in_work[bi] = 1;
                }
            }
        }
    }
    block_count = static_cast<uint32_t>(blocks.size());
    return blk;
}

// Minimal DFA in the output format: dead state 0, start 1, the rest in
// breadth-first order; then byte classes merged where the columns agree.
Result<Dfa> finish(const RawDfa& d, const DfaLimits& limits, const char* who) {
    uint32_t block_count = 0;
    std::vector<uint32_t> blk = minimize(d, block_count);
    const uint32_t k = d.classes;
    std::vector<uint32_t> rep(block_count, kInf);
    for (uint32_t s = 0; s < d.states; ++s)
        if (rep[blk[s]] == kInf)
            rep[blk[s]] = s;
    std::vector<uint32_t> id(block_count, kInf), order;
    uint32_t dead = blk[0], start = blk[1];
    id[dead] = 0;
    order.push_back(dead);
    if (start == dead) {
        order.push_back(dead); // the empty language: start is a second dead state
    } else {
        id[start] = 1;
        order.push_back(start);
    }
    for (size_t x = 1; x < order.size(); ++x) {
        uint32_t s = rep[order[x]];
        for (uint32_t c = 0; c < k; ++c) {
            uint32_t b = blk[d.next[s * k + c]];
            if (id[b] == kInf) {
                id[b] = static_cast<uint32_t>(order.size());
                order.push_back(b);
            }
        }
    }
    auto states = static_cast<uint32_t>(order.size());
    uint32_t max_states = std::min<uint32_t>(limits.max_states, 65535);
    if (states > max_states)
        return make_error(E2BIG, std::string(who) + ": the minimal DFA has " +
                                     std::to_string(states) + " states, more than the limit of " +
                                     std::to_string(max_states) + "; simplify the pattern");
    // Columns per raw class, then merge identical ones.
    std::vector<uint16_t> table(static_cast<size_t>(states) * k);
    for (uint32_t x = 0; x < states; ++x)
        for (uint32_t c = 0; c < k; ++c)
            table[static_cast<size_t>(x) * k + c] = static_cast<uint16_t>(
                x == 0 && start != dead ? 0 : id[blk[d.next[rep[order[x]] * k + c]]]);
    std::vector<int32_t> merged(k, -1);
    std::vector<uint32_t> firsts; // raw class standing for each final class
    std::map<std::vector<uint16_t>, uint32_t> columns;
    Dfa out;
    for (size_t b = 0; b < 256; ++b) {
        uint32_t c = d.byte_class[b];
        if (merged[c] < 0) {
            std::vector<uint16_t> column(states);
            for (uint32_t x = 0; x < states; ++x)
                column[x] = table[static_cast<size_t>(x) * k + c];
            auto [it, fresh] =
                columns.try_emplace(std::move(column), static_cast<uint32_t>(firsts.size()));
            if (fresh)
                firsts.push_back(c);
            merged[c] = static_cast<int32_t>(it->second);
        }
        out.byte_class[b] = static_cast<uint8_t>(merged[c]);
    }
    out.class_count = static_cast<uint16_t>(firsts.size());
    out.state_count = states;
    out.next.resize(static_cast<size_t>(states) * out.class_count);
    out.accepting.resize(states);
    for (uint32_t x = 0; x < states; ++x) {
        for (size_t f = 0; f < firsts.size(); ++f)
            out.next[static_cast<size_t>(x) * out.class_count + f] =
                table[static_cast<size_t>(x) * k + firsts[f]];
        out.accepting[x] = x == 0 ? 0 : d.accepting[rep[order[x]]];
    }
    return out;
}

Result<RawDfa> raw_from_tree(const Node& tree, const DfaLimits& limits, const char* who) {
    Nfa nfa;
    nfa.cap = nfa_cap(limits);
    // A fresh start state with no incoming edges, so the start DFA state is
    // never re-entered (compile_glob relies on it).
    nfa.start = nfa.add();
    Frag f = NfaBuilder(nfa).emit(tree);
    if (nfa.overflow)
        return make_error(E2BIG,
                          std::string(who) + ": " +
                              at("the pattern expands to more than " + std::to_string(nfa.cap) +
                                     " NFA states (nested or large repeats)",
                                 nfa.overflow_offset));
    nfa.states[nfa.start].eps.push_back(f.start);
    nfa.accept = f.end;
    return determinize(nfa, limits, who);
}

Result<void> check_size(std::string_view p, const DfaLimits& limits, const char* who) {
    if (p.size() > limits.max_pattern_bytes)
        return make_error(E2BIG, std::string(who) + ": " +
                                     at("pattern is " + std::to_string(p.size()) +
                                            " bytes, longer than the limit of " +
                                            std::to_string(limits.max_pattern_bytes),
                                        limits.max_pattern_bytes));
    return {};
}

} // namespace

bool Dfa::matches(std::string_view input) const {
    if (state_count < 2 || class_count == 0 ||
        next.size() != static_cast<size_t>(state_count) * class_count ||
        accepting.size() != state_count) [[unlikely]]
        return false;
    uint32_t s = 1;
    for (char ch : input) {
        s = next[s * class_count + byte_class[static_cast<unsigned char>(ch)]];
        if (s == 0 || s >= state_count)
            return false;
    }
    return accepting[s] != 0;
}

Result<Dfa> compile_regex(std::string_view pattern, const DfaLimits& limits) {
    KOS_TRY(check_size(pattern, limits, "regex"));
    Node tree = KOS_TRY(RegexParser(pattern, limits).parse());
    RawDfa raw = KOS_TRY(raw_from_tree(tree, limits, "regex"));
    return finish(raw, limits, "regex");
}

Result<Dfa> compile_glob(std::string_view pattern, const DfaLimits& limits) {
    KOS_TRY(check_size(pattern, limits, "glob"));
    Node tree = KOS_TRY(glob_tree(pattern));
    RawDfa raw = KOS_TRY(raw_from_tree(tree, limits, "glob"));
    // v matches iff v + "/" is in L' (see glob_tree): a state accepts iff
    // its '/' successor accepts L'. The start state never accepts (the empty
    // value is not a path); nothing re-enters it.
    const uint32_t slash = raw.byte_class['/'];
    std::vector<uint8_t> acc(raw.states, 0);
    for (uint32_t s = 2; s < raw.states; ++s)
        acc[s] = raw.accepting[raw.next[s * raw.classes + slash]];
    raw.accepting = std::move(acc);
    return finish(raw, limits, "glob");
}

Result<Dfa> compile_literals(const std::vector<std::string>& values, const DfaLimits& limits) {
    std::vector<Node> alts;
    alts.reserve(values.size());
    for (const std::string& v : values) {
        if (v.size() > limits.max_pattern_bytes)
            return make_error(E2BIG, "literals: a string of " + std::to_string(v.size()) +
                                         " bytes is longer than the limit of " +
                                         std::to_string(limits.max_pattern_bytes));
        std::vector<Node> bytes;
        bytes.reserve(v.size());
        for (char c : v)
            bytes.push_back(make_byte(static_cast<uint8_t>(c)));
        alts.push_back(make_list(Node::Cat, std::move(bytes)));
    }
    Node tree;
    if (!alts.empty()) {
        tree.kind = Node::Alt;
        tree.kids = std::move(alts);
    } else {
        tree = make_set(ByteSet()); // matches nothing
    }
    RawDfa raw = KOS_TRY(raw_from_tree(tree, limits, "literals"));
    return finish(raw, limits, "literals");
}

} // namespace kos::policy
