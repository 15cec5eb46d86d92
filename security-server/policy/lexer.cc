#include "kos/policy/lexer.h"

#include <cstdio>

namespace kos::policy {
namespace {

bool is_ident_start(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}
bool is_ident(char c) {
    return is_ident_start(c) || (c >= '0' && c <= '9');
}
bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
bool is_hex(char c) {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

class Lexer {
  public:
    Lexer(std::string_view text, uint32_t file) : m_s(text), m_file(file) {}

    std::vector<Token> run() {
        if (m_s.size() > kMaxSourceBytes) {
            error(0, "a source of " + std::to_string(m_s.size()) + " bytes (at most " +
                         std::to_string(kMaxSourceBytes) + " are allowed)");
            return finish();
        }
        while (m_i < m_s.size()) {
            if (!step())
                return finish();
        }
        return finish();
    }

  private:
    std::vector<Token> finish() {
        Token t;
        t.kind = Tok::End;
        t.loc = loc_of(static_cast<uint32_t>(m_i));
        t.begin = t.end = static_cast<uint32_t>(m_i);
        m_out.push_back(std::move(t));
        return std::move(m_out);
    }

    ast::Loc loc_of(uint32_t offset) const {
        return ast::Loc{m_file, m_line, offset - m_line_start + 1};
    }

    void push(Tok kind, size_t begin, std::string text, std::string suffix = {}) {
        Token t;
        t.kind = kind;
        t.text = std::move(text);
        t.suffix = std::move(suffix);
        t.loc = loc_of(static_cast<uint32_t>(begin));
        t.begin = static_cast<uint32_t>(begin);
        t.end = static_cast<uint32_t>(m_i);
        m_out.push_back(std::move(t));
    }

    void error(size_t at, std::string what) {
        Token t;
        t.kind = Tok::Error;
        t.text = std::move(what);
        t.loc = loc_of(static_cast<uint32_t>(at));
        t.begin = t.end = static_cast<uint32_t>(at);
        m_out.push_back(std::move(t));
        m_i = m_s.size();
    }

    // Called at the start of each line: enforces the line length cap.
    bool new_line(size_t start) {
        ++m_line;
        m_line_start = static_cast<uint32_t>(start);
        return check_line();
    }
    bool check_line() {
        size_t nl = m_s.find('\n', m_line_start);
        size_t len = (nl == std::string_view::npos ? m_s.size() : nl) - m_line_start;
        if (len > kMaxLineBytes) {
            error(m_line_start, "a line of " + std::to_string(len) + " bytes (at most " +
                                    std::to_string(kMaxLineBytes) + " are allowed)");
            return false;
        }
        return true;
    }

    bool step() {
        if (m_i == 0 && !check_line())
            return false;
        char c = m_s[m_i];
        size_t b = m_i;
        if (c == ' ' || c == '\t' || c == '\r') {
            ++m_i;
            return true;
        }
        if (c == '\n') {
            ++m_i;
            push(Tok::Newline, b, "\n");
            m_out.back().end = static_cast<uint32_t>(b);
            return new_line(m_i);
        }
        if (c == '#') {
            while (m_i < m_s.size() && m_s[m_i] != '\n')
                ++m_i;
            return true;
        }
        if (c == '\\') {
            // A continuation: `\` then only blanks up to the end of the line.
            size_t j = m_i + 1;
            while (j < m_s.size() && (m_s[j] == ' ' || m_s[j] == '\t' || m_s[j] == '\r'))
                ++j;
            if (j < m_s.size() && m_s[j] == '\n') {
                m_i = j + 1;
                return new_line(m_i);
            }
            if (j >= m_s.size()) {
                m_i = j;
                return true;
            }
            error(b, "found '\\', expected a line continuation ('\\' at the end of a line)");
            return false;
        }
        if (c == '"')
            return string();
        if (is_digit(c) || (c == ':' && m_i + 1 < m_s.size() && m_s[m_i + 1] == ':') ||
            (is_hex(c) && looks_like_ipv6()))
            if (address())
                return true;
        if (is_digit(c)) {
            if (c == '0' && m_i + 1 < m_s.size() && (m_s[m_i + 1] == 'x' || m_s[m_i + 1] == 'X')) {
                m_i += 2;
                while (m_i < m_s.size() && is_hex(m_s[m_i]))
                    ++m_i;
            } else {
                while (m_i < m_s.size() && is_digit(m_s[m_i]))
                    ++m_i;
            }
            std::string text(m_s.substr(b, m_i - b));
            size_t sb = m_i;
            while (m_i < m_s.size() && is_ident(m_s[m_i]))
                ++m_i;
            push(Tok::Number, b, std::move(text), std::string(m_s.substr(sb, m_i - sb)));
            return true;
        }
        if (is_ident_start(c)) {
            while (m_i < m_s.size() && is_ident(m_s[m_i]))
                ++m_i;
            push(Tok::Ident, b, std::string(m_s.substr(b, m_i - b)));
            return true;
        }
        static constexpr std::string_view two[] = {"->", "<=", ">=", "==", "!=", ".."};
        for (std::string_view t : two) {
            if (m_s.substr(m_i, 2) == t) {
                m_i += 2;
                push(Tok::Sym, b, std::string(t));
                return true;
            }
        }
        if (std::string_view("{},.*=+-:<>").find(c) != std::string_view::npos) {
            ++m_i;
            push(Tok::Sym, b, std::string(1, c));
            return true;
        }
        char buf[64];
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f)
            std::snprintf(buf, sizeof buf, "found byte 0x%02x", static_cast<unsigned char>(c));
        else
            std::snprintf(buf, sizeof buf, "found '%c'", c);
        error(b, std::string(buf) +
                     ", expected a name, number, string or one of { } , . * = + - -> : < > ==");
        return false;
    }

    // At a hex letter: an IPv6 address such as fe80::1 (two or more ':'
    // in a run of hex digits, ':' and '.', not followed by a name character).
    bool looks_like_ipv6() const {
        size_t j = m_i;
        int colons = 0;
        while (j < m_s.size() && (is_hex(m_s[j]) || m_s[j] == ':' || m_s[j] == '.')) {
            colons += m_s[j] == ':';
            ++j;
        }
        return colons >= 2 && (j >= m_s.size() || !is_ident(m_s[j]));
    }

    // An address token if the text here is one (IPv6 with ':', or a dotted
    // quad), with an optional /prefix; false (nothing consumed) otherwise.
    bool address() {
        size_t j = m_i;
        int colons = 0, dots = 0;
        bool dotdot = false;
        while (j < m_s.size() && (is_hex(m_s[j]) || m_s[j] == ':' || m_s[j] == '.')) {
            colons += m_s[j] == ':';
            if (m_s[j] == '.') {
                ++dots;
                if (j + 1 < m_s.size() && m_s[j + 1] == '.')
                    dotdot = true;
            }
            ++j;
        }
        if (dotdot || (colons == 0 && dots != 3))
            return false;
        if (colons == 0) {
            // A dotted quad: digits only.
            for (size_t k = m_i; k < j; ++k)
                if (!is_digit(m_s[k]) && m_s[k] != '.')
                    return false;
        }
        if (j < m_s.size() && m_s[j] == '/') {
            ++j;
            while (j < m_s.size() && is_digit(m_s[j]))
                ++j;
        }
        if (j < m_s.size() && is_ident(m_s[j]))
            return false;
        size_t b = m_i;
        m_i = j;
        push(Tok::Address, b, std::string(m_s.substr(b, j - b)));
        return true;
    }

    bool string() {
        size_t b = m_i++;
        std::string out;
        while (true) {
            if (m_i >= m_s.size() || m_s[m_i] == '\n') {
                error(b, "found an unterminated string, expected a closing '\"' on the same line");
                return false;
            }
            char c = m_s[m_i];
            if (c == '"') {
                ++m_i;
                break;
            }
            if (c == '\\') {
                if (m_i + 1 >= m_s.size()) {
                    error(m_i, "found '\\' at the end of the source, expected an escape");
                    return false;
                }
                char e = m_s[m_i + 1];
                switch (e) {
                case '"':
                    out += '"';
                    m_i += 2;
                    continue;
                case '\\':
                    out += '\\';
                    m_i += 2;
                    continue;
                case 'n':
                    out += '\n';
                    m_i += 2;
                    continue;
                case 't':
                    out += '\t';
                    m_i += 2;
                    continue;
                case 'r':
                    out += '\r';
                    m_i += 2;
                    continue;
                case '0':
                    out += '\0';
                    m_i += 2;
                    continue;
                case 'x':
                    if (m_i + 3 < m_s.size() && is_hex(m_s[m_i + 2]) && is_hex(m_s[m_i + 3])) {
                        out += static_cast<char>(
                            std::stoi(std::string(m_s.substr(m_i + 2, 2)), nullptr, 16));
                        m_i += 4;
                        continue;
                    }
                    error(m_i, "found '\\x' without two hex digits, expected \\xHH");
                    return false;
                default:
                    // Kept as written: regex and glob patterns use their own
                    // escapes (\. \d \*), which reach the pattern compiler.
                    out += '\\';
                    out += e;
                    m_i += 2;
                    continue;
                }
            }
            out += c;
            ++m_i;
        }
        push(Tok::String, b, std::move(out));
        return true;
    }

    std::string_view m_s;
    uint32_t m_file;
    size_t m_i = 0;
    uint32_t m_line = 1;
    uint32_t m_line_start = 0;
    std::vector<Token> m_out;
};

} // namespace

std::vector<Token> lex(std::string_view text, uint32_t file) {
    return Lexer(text, file).run();
}

std::string describe(const Token& t) {
    auto cut = [](const std::string& s) { return s.size() > 40 ? s.substr(0, 40) + "..." : s; };
    switch (t.kind) {
    case Tok::End:
        return "end of file";
    case Tok::Newline:
        return "end of line";
    case Tok::Ident:
        return "'" + t.text + "'";
    case Tok::Number:
        return "'" + t.text + t.suffix + "'";
    case Tok::String:
        return "string \"" + cut(t.text) + "\"";
    case Tok::Address:
        return "address " + t.text;
    case Tok::Sym:
        return "'" + t.text + "'";
    case Tok::Error:
        return t.text;
    }
    return "?";
}

} // namespace kos::policy
