// The .kidl lexer and parser (grammar: docs/idl.md).
//
// The whole source is tokenized first (bounded by kMaxSourceBytes), then a
// recursive-descent parser walks the tokens. Characters the language does
// not know become Invalid tokens, so the error for them comes from the
// parser and says what was expected there. The grammar has no recursion
// (interfaces hold methods hold fields), so nesting cannot exhaust the
// stack whatever the input.
#include <algorithm>
#include <charconv>
#include <format>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "kos/idl/model.h"
#include "kos/ipc.h"

namespace kos::idl {
namespace {

enum class Tok : uint8_t { Name, Number, Punct, Arrow, Invalid, End };

struct Token {
    Tok kind = Tok::End;
    std::string_view text;
    uint32_t line = 1;
    uint32_t column = 1;
};

bool is_name_start(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}
bool is_name_char(char c) {
    return is_name_start(c) || (c >= '0' && c <= '9');
}
bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

std::vector<Token> tokenize(std::string_view src) {
    std::vector<Token> out;
    uint32_t line = 1, column = 1;
    size_t i = 0;
    auto advance = [&](size_t n) {
        for (size_t k = 0; k < n; ++k, ++i) {
            if (src[i] == '\n') {
                ++line;
                column = 1;
            } else {
                ++column;
            }
        }
    };
    while (i < src.size()) {
        char c = src[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            advance(1);
            continue;
        }
        if (c == '#') {
            while (i < src.size() && src[i] != '\n')
                advance(1);
            continue;
        }
        Token t;
        t.line = line;
        t.column = column;
        size_t start = i;
        size_t n = 1;
        if (is_name_start(c)) {
            t.kind = Tok::Name;
            while (start + n < src.size() && is_name_char(src[start + n]))
                ++n;
        } else if (is_digit(c)) {
            // Digits and whatever letters follow ("0x1f", "12abc"): the
            // parser says whether it is a valid number.
            t.kind = Tok::Number;
            while (start + n < src.size() && is_name_char(src[start + n]))
                ++n;
        } else if (c == '-' && start + 1 < src.size() && src[start + 1] == '>') {
            t.kind = Tok::Arrow;
            n = 2;
        } else if (std::string_view("{}()[]<>:,").find(c) != std::string_view::npos) {
            t.kind = Tok::Punct;
        } else {
            t.kind = Tok::Invalid;
        }
        t.text = src.substr(start, n);
        out.push_back(t);
        advance(n);
    }
    Token end;
    end.kind = Tok::End;
    end.line = line;
    end.column = column;
    out.push_back(end);
    return out;
}

std::string describe(const Token& t) {
    switch (t.kind) {
    case Tok::End:
        return "end of file";
    case Tok::Invalid: {
        unsigned char c = static_cast<unsigned char>(t.text[0]);
        if (c >= 0x21 && c < 0x7f)
            return std::format("'{}'", t.text);
        return std::format("byte 0x{:02x}", c);
    }
    case Tok::Name:
        if (t.text.size() > kMaxNameLength)
            return std::format("a name of {} characters", t.text.size());
        return std::format("'{}'", t.text);
    case Tok::Number:
        if (t.text.size() > 32)
            return std::format("a number of {} characters", t.text.size());
        return std::format("'{}'", t.text);
    default:
        return std::format("'{}'", t.text);
    }
}

// C++ keywords and alternative tokens: names become C++ identifiers in the
// generated code, so these are refused.
constexpr std::string_view kCxxKeywords[] = {
    "alignas",
    "alignof",
    "and",
    "and_eq",
    "asm",
    "auto",
    "bitand",
    "bitor",
    "bool",
    "break",
    "case",
    "catch",
    "char",
    "char8_t",
    "char16_t",
    "char32_t",
    "class",
    "compl",
    "concept",
    "const",
    "consteval",
    "constexpr",
    "constinit",
    "const_cast",
    "continue",
    "co_await",
    "co_return",
    "co_yield",
    "decltype",
    "default",
    "delete",
    "do",
    "double",
    "dynamic_cast",
    "else",
    "enum",
    "explicit",
    "export",
    "extern",
    "false",
    "float",
    "for",
    "friend",
    "goto",
    "if",
    "inline",
    "int",
    "long",
    "mutable",
    "namespace",
    "new",
    "noexcept",
    "not",
    "not_eq",
    "nullptr",
    "operator",
    "or",
    "or_eq",
    "private",
    "protected",
    "public",
    "register",
    "reinterpret_cast",
    "requires",
    "return",
    "short",
    "signed",
    "sizeof",
    "static",
    "static_assert",
    "static_cast",
    "struct",
    "switch",
    "template",
    "this",
    "thread_local",
    "throw",
    "true",
    "try",
    "typedef",
    "typeid",
    "typename",
    "union",
    "unsigned",
    "using",
    "virtual",
    "void",
    "volatile",
    "wchar_t",
    "while",
    "xor",
    "xor_eq",
    // Predefined macros and names a freestanding compile may see.
    "NULL",
    "linux",
    "unix",
    "errno",
    "assert",
    "offsetof",
};

// Names kos-idlc emits next to the methods of an interface (docs/idl.md).
constexpr std::string_view kGeneratedNames[] = {
    "Client",
    "dispatch",
    "encode",
    "decode",
    "kInterfaceId",
    "kMaxRequestPayload",
    "kMaxResponsePayload",
    "Request",
    "Response",
    "Span",
    "Ip",
    "detail",
    "Transport",
    "Handler",
};

bool is_generated_name(std::string_view s) {
    // Client's members are m_...; keep method names clear of them.
    return std::ranges::find(kGeneratedNames, s) != std::end(kGeneratedNames) ||
           s.starts_with("m_");
}

bool is_cxx_keyword(std::string_view s) {
    return std::ranges::find(kCxxKeywords, s) != std::end(kCxxKeywords) ||
           // Reserved identifiers: _Upper and anything with a double underscore.
           (s.size() >= 2 && s[0] == '_' && s[1] >= 'A' && s[1] <= 'Z') ||
           s.find("__") != std::string_view::npos;
}

struct Located {
    uint32_t value = 0;
    SourceLoc where;
};

class Parser {
  public:
    Parser(std::string_view src, std::string_view origin)
        : m_tokens(tokenize(src)), m_origin(origin) {}

    Result<Module> parse() {
        Module m;
        KOS_TRY(expect_word("package", "'package'"));
        SourceLoc package_at = loc(peek());
        m.package = KOS_TRY(name("a package name"));
        // kos::idl::<package> sits next to the shared kos::idl::Span, Ip
        // and detail of the generated headers.
        if (is_generated_name(m.package))
            return error_at(package_at,
                            std::format("found '{}', expected a package name other than what "
                                        "kos-idlc generates in namespace kos::idl (Span, Ip, "
                                        "detail, ...)",
                                        m.package));
        std::map<std::string, SourceLoc, std::less<>> names;
        std::map<uint32_t, std::pair<std::string, SourceLoc>> ids;
        while (peek().kind != Tok::End) {
            if (peek().kind != Tok::Name || peek().text != "interface")
                return unexpected(peek(), "'interface' or end of file");
            if (m.interfaces.size() >= kMaxInterfaces)
                return error_at(
                    loc(peek()),
                    std::format("more than {} interfaces in one file; split it", kMaxInterfaces));
            next();
            Interface itf;
            itf.where = loc(peek());
            std::string short_name = KOS_TRY(name("an interface name"));
            itf.name = m.package + "." + short_name;
            Located id = KOS_TRY(number("an interface id"));
            itf.id = id.value;
            if (auto it = names.find(short_name); it != names.end())
                return error_at(itf.where,
                                std::format("duplicate interface name '{}' (first at {})", itf.name,
                                            where_string(it->second)));
            if (auto it = ids.find(itf.id); it != ids.end())
                return error_at(
                    id.where,
                    std::format("duplicate interface id {:#x} (already used by {} at {})", itf.id,
                                it->second.first, where_string(it->second.second)));
            names.emplace(short_name, itf.where);
            ids.emplace(itf.id, std::make_pair(itf.name, itf.where));
            KOS_TRY(expect_punct("{"));
            KOS_TRY(methods(itf));
            m.interfaces.push_back(std::move(itf));
        }
        return m;
    }

  private:
    const Token& peek() const { return m_tokens[m_pos]; }
    const Token& next() {
        const Token& t = m_tokens[m_pos];
        if (t.kind != Tok::End)
            ++m_pos;
        return t;
    }
    SourceLoc loc(const Token& t) const {
        return SourceLoc{std::string(m_origin), t.line, t.column};
    }

    static std::string where_string(const SourceLoc& l) {
        return std::format("{}:{}:{}", l.file, l.line, l.column);
    }
    static std::unexpected<Error> error_at(const SourceLoc& l, std::string what) {
        return make_error(EINVAL, std::format("{}: {}", where_string(l), what));
    }
    std::unexpected<Error> unexpected(const Token& t, std::string_view expected) const {
        return error_at(loc(t), std::format("found {}, expected {}", describe(t), expected));
    }

    Result<void> expect_word(std::string_view word, std::string_view what) {
        if (peek().kind != Tok::Name || peek().text != word)
            return unexpected(peek(), what);
        next();
        return {};
    }
    Result<void> expect_punct(std::string_view p) {
        if (peek().kind != Tok::Punct || peek().text != p)
            return unexpected(peek(), std::format("'{}'", p));
        next();
        return {};
    }
    bool at_punct(std::string_view p) const {
        return peek().kind == Tok::Punct && peek().text == p;
    }

    Result<std::string> name(std::string_view what) {
        const Token& t = peek();
        if (t.kind != Tok::Name)
            return unexpected(t, what);
        if (t.text.size() > kMaxNameLength)
            return unexpected(t, std::format("{} of at most {} characters", what, kMaxNameLength));
        if (is_cxx_keyword(t.text))
            return unexpected(t, std::format("{} that is not a C++ keyword or reserved name "
                                             "(names become C++ identifiers)",
                                             what));
        next();
        return std::string(t.text);
    }

    Result<Located> number(std::string_view what) {
        const Token& t = peek();
        if (t.kind != Tok::Number)
            return unexpected(t, what);
        std::string_view s = t.text;
        int base = 10;
        if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
            s.remove_prefix(2);
            base = 16;
        }
        uint32_t v = 0;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
        if (ec == std::errc::result_out_of_range)
            return unexpected(t, std::format("{} that fits 32 bits (at most 0xffffffff)", what));
        if (ec != std::errc() || end != s.data() + s.size())
            return unexpected(t, std::format("{} (decimal or 0x hex)", what));
        next();
        return Located{v, loc(t)};
    }

    Result<void> methods(Interface& itf) {
        std::map<std::string, SourceLoc, std::less<>> names;
        std::map<uint32_t, std::pair<std::string, SourceLoc>> ids;
        while (!at_punct("}")) {
            if (peek().kind != Tok::Name)
                return unexpected(peek(), "a method name or '}'");
            if (itf.methods.size() >= kMaxMethods)
                return error_at(loc(peek()),
                                std::format("more than {} methods in interface {}; split it",
                                            kMaxMethods, itf.name));
            Method m;
            m.where = loc(peek());
            m.name = KOS_TRY(name("a method name"));
            if (is_generated_name(m.name))
                return error_at(m.where,
                                std::format("found '{}', expected a method name other than what "
                                            "kos-idlc generates next to methods (Client, dispatch, "
                                            "encode, decode, Request, Response, k..., m_...)",
                                            m.name));
            Located id = KOS_TRY(number("a method id"));
            m.id = id.value;
            if (auto it = names.find(m.name); it != names.end())
                return error_at(
                    m.where, std::format("duplicate method name '{}' in interface {} (first at {})",
                                         m.name, itf.name, where_string(it->second)));
            if (auto it = ids.find(m.id); it != ids.end())
                return error_at(
                    id.where,
                    std::format("duplicate method id {} in interface {} (already used by "
                                "'{}' at {})",
                                m.id, itf.name, it->second.first, where_string(it->second.second)));
            names.emplace(m.name, m.where);
            ids.emplace(m.id, std::make_pair(m.name, m.where));

            m.request = KOS_TRY(fields("arguments"));
            if (peek().kind != Tok::Arrow)
                return unexpected(peek(), "'->'");
            next();
            m.response = KOS_TRY(fields("results"));
            if (at_punct("[")) {
                // [flow read|write] and/or [grant read|write BYTES], comma-separated.
                next();
                bool seen_flow = false, seen_grant = false;
                for (;;) {
                    const Token& attr = peek();
                    bool is_flow = attr.kind == Tok::Name && attr.text == "flow";
                    bool is_grant = attr.kind == Tok::Name && attr.text == "grant";
                    if (!is_flow && !is_grant)
                        return unexpected(attr, "'flow' or 'grant'");
                    if ((is_flow && seen_flow) || (is_grant && seen_grant))
                        return unexpected(attr, "each attribute once");
                    next();
                    bool read = peek().kind == Tok::Name && peek().text == "read";
                    bool write = peek().kind == Tok::Name && peek().text == "write";
                    if (!read && !write)
                        return unexpected(peek(), "'read' or 'write'");
                    next();
                    if (is_flow) {
                        seen_flow = true;
                        m.flow = read ? Flow::Read : Flow::Write;
                    } else {
                        seen_grant = true;
                        m.grant = read ? Grant::Read : Grant::Write;
                        Located size = KOS_TRY(number("the grant's largest size in bytes"));
                        if (size.value == 0 || size.value > kMaxGrantBytes)
                            return error_at(size.where, std::format("a grant of 1 to {} bytes (64 MiB)",
                                                                    kMaxGrantBytes));
                        m.grant_max = (uint64_t{size.value} + 4095) & ~uint64_t{4095};
                    }
                    if (!at_punct(","))
                        break;
                    next();
                }
                KOS_TRY(expect_punct("]"));
            }
            m.request_fixed_size = compute_layout(m.request);
            m.response_fixed_size = compute_layout(m.response);
            KOS_TRY(check_fits(itf, m, m.request, m.request_fixed_size, "request"));
            KOS_TRY(check_fits(itf, m, m.response, m.response_fixed_size, "response"));
            itf.methods.push_back(std::move(m));
        }
        next(); // '}'
        return {};
    }

    Result<void> check_fits(const Interface& itf, const Method& m, const std::vector<Field>& fields,
                            uint32_t fixed, std::string_view which) {
        uint64_t total = sizeof(abi::ipc::MessageHeader) + max_payload_size(fields, fixed);
        if (total <= abi::ipc::kMaxMessage)
            return {};
        return error_at(
            m.where,
            std::format("method {}.{}: its largest {} (16-byte header, {}-byte fixed part, "
                        "every string and bytes field at its bound) is {} bytes, more than "
                        "kMaxMessage ({}); lower the bounds or move the data by memory "
                        "transfer",
                        itf.name, m.name, which, fixed, total, abi::ipc::kMaxMessage));
    }

    // "(" [ field { "," field } ] ")"
    Result<std::vector<Field>> fields(std::string_view which) {
        KOS_TRY(expect_punct("("));
        std::vector<Field> out;
        if (at_punct(")")) {
            next();
            return out;
        }
        for (;;) {
            if (out.size() >= kMaxFields)
                return error_at(loc(peek()),
                                std::format("more than {} {} in one method", kMaxFields, which));
            Field f;
            f.where = loc(peek());
            f.name = KOS_TRY(name(out.empty() ? "a field name or ')'" : "a field name"));
            if (is_generated_name(f.name))
                return error_at(f.where,
                                std::format("found '{}', expected a field name other than what "
                                            "kos-idlc generates (Request, Response, Span, Ip, ...)",
                                            f.name));
            for (const Field& g : out)
                if (g.name == f.name)
                    return error_at(f.where,
                                    std::format("duplicate field name '{}' in the {} (first at {})",
                                                f.name, which, where_string(g.where)));
            KOS_TRY(expect_punct(":"));
            KOS_TRY(type(f));
            out.push_back(std::move(f));
            if (at_punct(")")) {
                next();
                return out;
            }
            if (!at_punct(","))
                return unexpected(peek(), "',' or ')'");
            next();
        }
    }

    Result<void> type(Field& f) {
        static constexpr std::string_view kExpected =
            "a type (bool, u8, u16, u32, u64, i8, i16, i32, i64, handle, ip, string<N>, bytes<N>)";
        const Token& t = peek();
        if (t.kind != Tok::Name)
            return unexpected(t, kExpected);
        for (uint8_t i = static_cast<uint8_t>(Type::Bool); i <= static_cast<uint8_t>(Type::Bytes);
             ++i) {
            Type ty = static_cast<Type>(i);
            if (type_name(ty) != t.text)
                continue;
            next();
            f.type = ty;
            if (is_variable(ty)) {
                KOS_TRY(expect_punct("<"));
                Located n = KOS_TRY(number("a bound N"));
                if (n.value < 1)
                    return error_at(n.where,
                                    std::format("found bound 0, expected a bound N >= 1 for {}<N>",
                                                type_name(ty)));
                f.max_size = n.value;
                KOS_TRY(expect_punct(">"));
            }
            return {};
        }
        return unexpected(t, kExpected);
    }

    std::vector<Token> m_tokens;
    size_t m_pos = 0;
    std::string_view m_origin;
};

} // namespace

Result<Module> parse_idl(std::string_view text, std::string_view origin) {
    if (text.size() > kMaxSourceBytes)
        return make_error(
            EFBIG, std::format("{}: the source is {} bytes, more than the {} the IDL compiler "
                               "accepts; split it into several files",
                               origin, text.size(), kMaxSourceBytes));
    Parser p(text, origin);
    return p.parse();
}

} // namespace kos::idl
