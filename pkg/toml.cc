#include "toml.h"

#include <clocale>
#include <cmath>
#include <cstdlib>
#include <locale.h>

#include "kos/support/text.h"

namespace kos::pkg::toml {

const char* describe(Type type) {
    switch (type) {
    case Type::String:
        return "a string";
    case Type::Integer:
        return "an integer";
    case Type::Float:
        return "a float";
    case Type::Boolean:
        return "a boolean";
    case Type::Array:
        return "an array";
    case Type::Table:
        return "a table";
    }
    return "a value";
}

Table::Table() = default;
Table::~Table() = default;
Table::Table(Table&&) noexcept = default;
Table& Table::operator=(Table&&) noexcept = default;

const Value* Table::find(std::string_view key) const {
    auto it = m_index.find(key);
    return it == m_index.end() ? nullptr : &m_entries[it->second].value;
}

Value* Table::find_mutable(std::string_view key) {
    auto it = m_index.find(key);
    return it == m_index.end() ? nullptr : &m_entries[it->second].value;
}

Value& Table::insert(std::string key, Position key_position, Value value) {
    m_index.emplace(key, m_entries.size());
    m_entries.push_back(Entry{std::move(key), key_position, std::move(value)});
    return m_entries.back().value;
}

std::span<const Entry> Table::entries() const {
    return m_entries;
}
size_t Table::size() const {
    return m_entries.size();
}
bool Table::empty() const {
    return m_entries.empty();
}

namespace {

bool is_bare_key_char(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

bool is_digit(int c) {
    return c >= '0' && c <= '9';
}

// TOML 1.0 allows no control characters but tab in strings and comments
// (line ends are handled by the callers).
bool is_control(unsigned char c) {
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

// The length of the well-formed UTF-8 sequence at `s` (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF), or 0.
size_t utf8_length(std::string_view s, uint32_t* code_point = nullptr) {
    auto b = [&](size_t i) { return i < s.size() ? static_cast<unsigned char>(s[i]) : 0u; };
    unsigned c0 = b(0);
    size_t n;
    uint32_t cp;
    unsigned lo = 0x80, hi = 0xbf;
    if (c0 < 0x80) {
        n = 1, cp = c0;
    } else if (c0 >= 0xc2 && c0 <= 0xdf) {
        n = 2, cp = c0 & 0x1f;
    } else if (c0 >= 0xe0 && c0 <= 0xef) {
        n = 3, cp = c0 & 0x0f;
        if (c0 == 0xe0)
            lo = 0xa0;
        if (c0 == 0xed)
            hi = 0x9f;
    } else if (c0 >= 0xf0 && c0 <= 0xf4) {
        n = 4, cp = c0 & 0x07;
        if (c0 == 0xf0)
            lo = 0x90;
        if (c0 == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; ++i) {
        unsigned c = b(i);
        if (c < (i == 1 ? lo : 0x80u) || c > (i == 1 ? hi : 0xbfu))
            return 0;
        cp = (cp << 6) | (c & 0x3f);
    }
    if (code_point)
        *code_point = cp;
    return n;
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xc0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xe0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
        out += static_cast<char>(0xf0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    }
}

std::string hex4(uint32_t v, int digits) {
    static const char kHex[] = "0123456789ABCDEF";
    std::string s;
    for (int i = digits - 1; i >= 0; --i)
        s += kHex[(v >> (4 * i)) & 0xf];
    return s;
}

// A key as the user would write it, safe to print: bare if it can be,
// otherwise quoted with escapes for quotes, backslashes, control and
// non-ASCII characters (so a message cannot carry terminal controls).
std::string display_key(std::string_view key) {
    bool bare = !key.empty();
    for (char c : key)
        bare = bare && is_bare_key_char(static_cast<unsigned char>(c));
    if (bare)
        return std::string(key);
    std::string out = "\"";
    for (size_t i = 0; i < key.size();) {
        auto c = static_cast<unsigned char>(key[i]);
        uint32_t cp = c;
        size_t n = c < 0x80 ? 1 : utf8_length(key.substr(i), &cp);
        if (n == 0) // keys are valid UTF-8; never reached
            n = 1, cp = 0xfffd;
        i += n;
        if (cp == '"' || cp == '\\')
            out += '\\', out += static_cast<char>(cp);
        else if (cp < 0x20 || cp >= 0x7f)
            out += cp > 0xffff ? "\\U" + hex4(cp, 8) : "\\u" + hex4(cp, 4);
        else
            out += static_cast<char>(cp);
    }
    return out + "\"";
}

struct KeyPart {
    std::string name;
    Position at;
};

// `prefix` holds displayed parts ("a", "\"b c\"") and array indexes ("[2]").
std::string display_path(std::span<const std::string> prefix, std::span<const KeyPart> parts) {
    std::string out;
    for (const std::string& p : prefix)
        out += (out.empty() || p[0] == '[' ? "" : ".") + p;
    for (const KeyPart& p : parts)
        out += (out.empty() ? "" : ".") + display_key(p.name);
    return out;
}

std::string display_path(std::span<const KeyPart> parts) {
    return display_path({}, parts);
}

std::string display_position(Position p) {
    return std::to_string(p.line) + ":" + std::to_string(p.column);
}

} // namespace

class Parser {
  public:
    Parser(std::string_view text, const std::string& origin, const Limits& limits)
        : m_text(text), m_origin(origin), m_limits(limits) {}

    Result<Table> run() {
        if (m_text.size() > m_limits.max_input_bytes)
            return fail(m_at, "the file has " + std::to_string(m_text.size()) + " bytes; at most " +
                                  std::to_string(m_limits.max_input_bytes) + " are accepted");
        if (m_text.starts_with("\xef\xbb\xbf")) // a UTF-8 byte order mark, as some editors write
            m_pos = 3;
        Table* current = &m_root;
        uint32_t section = 0;
        for (;;) {
            skip_blanks();
            if (at_end())
                break;
            int c = peek();
            if (c == '[') {
                current = KOS_TRY(header()); // sets m_path
                section = ++m_sections;
                KOS_TRY(end_of_line("the table header"));
            } else if (c == '#' || c == '\n' || c == '\r') {
                KOS_TRY(end_of_line(nullptr));
            } else {
                KOS_TRY(key_value(*current, section));
                KOS_TRY(end_of_line("the value"));
            }
        }
        return std::move(m_root);
    }

  private:
    // The cursor.
    bool at_end() const { return m_pos >= m_text.size(); }
    int peek(size_t ahead = 0) const {
        return m_pos + ahead < m_text.size() ? static_cast<unsigned char>(m_text[m_pos + ahead])
                                             : -1;
    }
    // Moves past one byte. Columns count characters: a UTF-8 continuation
    // byte does not start a new one.
    void advance() {
        if (at_end())
            return;
        auto c = static_cast<unsigned char>(m_text[m_pos++]);
        if (c == '\n') {
            ++m_at.line;
            m_at.column = 1;
        } else if ((c & 0xc0) != 0x80) {
            ++m_at.column;
        }
    }
    void advance(size_t n) {
        while (n--)
            advance();
    }

    std::unexpected<Error> fail(Position at, const std::string& what) const {
        return make_error(EINVAL, m_origin + ":" + display_position(at) + ": " + what);
    }

    // What is at the cursor, for "expected X, found Y".
    std::string found() const {
        int c = peek();
        if (c < 0)
            return "the end of the file";
        if (c == '\n' || (c == '\r' && peek(1) == '\n'))
            return "the end of the line";
        if (c >= 0x20 && c < 0x7f)
            return std::string("'") + static_cast<char>(c) + "'";
        if (c < 0x80)
            return "control character U+" + hex4(static_cast<uint32_t>(c), 4);
        uint32_t cp;
        if (utf8_length(m_text.substr(m_pos), &cp) == 0)
            return "a byte that is not UTF-8 (0x" + hex4(static_cast<uint32_t>(c), 2) + ")";
        return "character U+" + hex4(cp, cp > 0xffff ? 6 : 4);
    }
    std::unexpected<Error> expected(const std::string& what) const {
        return fail(m_at, "expected " + what + ", found " + found());
    }

    void skip_blanks() {
        while (peek() == ' ' || peek() == '\t')
            advance();
    }

    // A comment, from its '#' to the end of the line (not included).
    Result<void> comment() {
        advance(); // '#'
        for (;;) {
            int c = peek();
            if (c < 0 || c == '\n' || (c == '\r' && peek(1) == '\n'))
                return {};
            KOS_TRY(text_char("a comment"));
        }
    }

    // One character of a comment or string that is not a line end: checks
    // it (no control characters, UTF-8), appends it to `out` if given and
    // moves past it.
    Result<void> text_char(const char* where, std::string* out = nullptr) {
        auto c = static_cast<unsigned char>(m_text[m_pos]);
        if (c == '\r')
            return fail(m_at, std::string("a carriage return in ") + where +
                                  " must be followed by a line feed");
        if (is_control(c))
            return fail(m_at, found() + " in " + where +
                                  " (TOML allows no control characters but tab" +
                                  (std::string_view(where) == "a comment"
                                       ? ")"
                                       : "; write an escape such as \\u0000)"));
        size_t n = c < 0x80 ? 1 : utf8_length(m_text.substr(m_pos));
        if (n == 0)
            return fail(m_at,
                        "invalid UTF-8 in " + std::string(where) + " (byte 0x" + hex4(c, 2) + ")");
        if (out)
            out->append(m_text.substr(m_pos, n));
        advance(n);
        return {};
    }

    // After a header or a key/value pair: blanks, an optional comment, then
    // a line end or the end of the file.
    Result<void> end_of_line(const char* after) {
        skip_blanks();
        if (peek() == '#')
            KOS_TRY(comment());
        if (at_end())
            return {};
        if (peek() == '\n') {
            advance();
            return {};
        }
        if (peek() == '\r' && peek(1) == '\n') {
            advance(2);
            return {};
        }
        if (peek() == '\r')
            return fail(m_at, "a carriage return must be followed by a line feed");
        if (!after)
            return expected("a key, a [table] header or a comment");
        return expected(std::string("a new line or a comment after ") + after);
    }

    // Blanks, comments and line ends (inside arrays).
    Result<void> skip_space() {
        for (;;) {
            skip_blanks();
            int c = peek();
            if (c == '#') {
                KOS_TRY(comment());
            } else if (c == '\n') {
                advance();
            } else if (c == '\r' && peek(1) == '\n') {
                advance(2);
            } else if (c == '\r') {
                return fail(m_at, "a carriage return must be followed by a line feed");
            } else {
                return {};
            }
        }
    }

    // Keys: bare-key or "quoted" or 'literal' parts joined by dots.
    Result<std::vector<KeyPart>> key() {
        std::vector<KeyPart> parts;
        for (;;) {
            skip_blanks();
            KeyPart part{{}, m_at};
            int c = peek();
            if (c == '"' || c == '\'') {
                if (peek(1) == c && peek(2) == c)
                    return fail(m_at, "a key cannot be a multi-line string");
                part.name = KOS_TRY(c == '"' ? basic_string(m_limits.max_key_bytes, "a key")
                                             : literal_string(m_limits.max_key_bytes, "a key"));
            } else {
                while (peek() >= 0 && is_bare_key_char(static_cast<unsigned char>(peek()))) {
                    if (part.name.size() >= m_limits.max_key_bytes)
                        return fail(part.at, "a key longer than " +
                                                 std::to_string(m_limits.max_key_bytes) + " bytes");
                    part.name += static_cast<char>(peek());
                    advance();
                }
                if (part.name.empty())
                    return expected("a key (letters, digits, '_' and '-', or a quoted string)");
            }
            if (parts.size() >= m_limits.max_depth)
                return fail(part.at, "a dotted key with more than " +
                                         std::to_string(m_limits.max_depth) + " parts");
            parts.push_back(std::move(part));
            skip_blanks();
            if (peek() != '.')
                return parts;
            advance();
        }
    }

    Result<void> check_depth(uint32_t depth, Position at) const {
        if (depth > m_limits.max_depth)
            return fail(at, "tables and arrays nested deeper than " +
                                std::to_string(m_limits.max_depth));
        return {};
    }

    Table new_table(Table::Origin origin, uint32_t depth, uint32_t section = 0) {
        Table t;
        t.m_origin = origin;
        t.m_depth = depth;
        t.m_section = section;
        return t;
    }

    static Table* table_of(Value& v) { return std::get_if<Table>(&v.m_data); }

    // [a.b.c] or [[a.b.c]]: returns the table that the following keys go to.
    Result<Table*> header() {
        Position start = m_at;
        advance(); // '['
        bool array = peek() == '[';
        if (array)
            advance();
        std::vector<KeyPart> parts = KOS_TRY(key());
        if (peek() != ']')
            return expected(array ? "']]' to end the [[table]] header"
                                  : "']' to end the [table] header");
        advance();
        if (array) {
            if (peek() != ']')
                return expected("']]' to end the [[table]] header");
            advance();
        }
        std::string name = display_path(parts);
        m_path.clear();
        for (const KeyPart& p : parts)
            m_path.push_back(display_key(p.name));
        Table* t = &m_root;
        for (size_t i = 0; i + 1 < parts.size(); ++i) {
            const KeyPart& part = parts[i];
            Value* v = t->find_mutable(part.name);
            if (!v) {
                KOS_TRY(check_depth(t->m_depth + 1, part.at));
                v = &t->insert(part.name, part.at,
                               Value(new_table(Table::Origin::Implicit, t->m_depth + 1), start));
                t = table_of(*v);
                continue;
            }
            std::string so_far = display_path(std::span(parts).first(i + 1));
            if (Table* sub = table_of(*v)) {
                if (sub->m_origin == Table::Origin::Inline)
                    return fail(part.at, so_far + " is an inline table (" +
                                             display_position(v->m_position) +
                                             "), which cannot be extended");
                t = sub;
            } else if (v->m_table_array) {
                t = table_of(std::get<Array>(v->m_data).back());
            } else {
                return fail(part.at, so_far + " is already " + describe(v->type()) + " (" +
                                         display_position(v->m_position) + "), not a table");
            }
        }
        const KeyPart& last = parts.back();
        Value* v = t->find_mutable(last.name);
        if (array) {
            if (!v) {
                KOS_TRY(check_depth(t->m_depth + 2, last.at));
                Array elements;
                elements.emplace_back(new_table(Table::Origin::Header, t->m_depth + 2), start);
                v = &t->insert(last.name, last.at, Value(std::move(elements), start));
                v->m_table_array = true;
                return table_of(std::get<Array>(v->m_data).back());
            }
            if (!v->m_table_array) {
                std::string what =
                    v->type() == Type::Array ? "an array value" : describe(v->type());
                return fail(start, "[[" + name + "]]: " + name + " is already " + what + " (" +
                                       display_position(v->m_position) +
                                       "), not an array of tables");
            }
            Array& elements = std::get<Array>(v->m_data);
            elements.emplace_back(new_table(Table::Origin::Header, t->m_depth + 2), start);
            return table_of(elements.back());
        }
        if (!v) {
            KOS_TRY(check_depth(t->m_depth + 1, last.at));
            v = &t->insert(last.name, last.at,
                           Value(new_table(Table::Origin::Header, t->m_depth + 1), start));
            return table_of(*v);
        }
        std::string first = " (" + display_position(v->m_position) + ")";
        Table* sub = table_of(*v);
        if (v->m_table_array)
            return fail(start, "[" + name + "] is an array of tables" + first + "; write [[" +
                                   name + "]] to add a table to it");
        if (!sub)
            return fail(start,
                        "[" + name + "]: " + name + " is already " + describe(v->type()) + first);
        switch (sub->m_origin) {
        case Table::Origin::Implicit:
            // Named before as a super-table ([a.b] names a): this defines it.
            sub->m_origin = Table::Origin::Header;
            v->m_position = start;
            return sub;
        case Table::Origin::Dotted:
            return fail(start, "table [" + name + "] is already defined by dotted keys" + first);
        case Table::Origin::Inline:
            return fail(start,
                        "table [" + name + "] is already defined as an inline table" + first);
        case Table::Origin::Root:
        case Table::Origin::Header:
            break;
        }
        return fail(start, "table [" + name + "] is defined twice (first at " +
                               display_position(v->m_position) + ")");
    }

    // key = value, into `into` (the current section's table or an inline
    // table, whose path is m_path). Dotted keys create tables that only
    // this section (`section`) may add to.
    Result<void> key_value(Table& into, uint32_t section) {
        std::vector<KeyPart> parts = KOS_TRY(key());
        if (peek() != '=')
            return expected("'=' after the key");
        advance();
        skip_blanks();
        Table* t = &into;
        for (size_t i = 0; i + 1 < parts.size(); ++i) {
            const KeyPart& part = parts[i];
            Value* v = t->find_mutable(part.name);
            if (!v) {
                KOS_TRY(check_depth(t->m_depth + 1, part.at));
                v = &t->insert(
                    part.name, part.at,
                    Value(new_table(Table::Origin::Dotted, t->m_depth + 1, section), part.at));
                t = table_of(*v);
                continue;
            }
            std::string so_far = display_path(m_path, std::span(parts).first(i + 1));
            std::string first = " (" + display_position(v->m_position) + ")";
            Table* sub = table_of(*v);
            if (!sub)
                return fail(part.at, so_far + " is already " + describe(v->type()) + first +
                                         ", not a table");
            switch (sub->m_origin) {
            case Table::Origin::Implicit:
                // A super-table a header named but nobody defined: these
                // dotted keys define it (TOML 1.0 §Keys).
                sub->m_origin = Table::Origin::Dotted;
                sub->m_section = section;
                break;
            case Table::Origin::Dotted:
                if (sub->m_section == section)
                    break;
                return fail(part.at, "table " + so_far + " is defined by dotted keys elsewhere" +
                                         first + "; they cannot add to it here");
            case Table::Origin::Root:
            case Table::Origin::Header:
                return fail(part.at, "table " + so_far + " is defined by a header" + first +
                                         "; dotted keys cannot add to it");
            case Table::Origin::Inline:
                return fail(part.at,
                            so_far + " is an inline table" + first + ", which cannot be extended");
            }
            t = sub;
        }
        const KeyPart& last = parts.back();
        if (const Value* v = t->find_mutable(last.name))
            return fail(last.at, display_path(m_path, parts) + " is defined twice (first at " +
                                     display_position(v->m_position) + ")");
        size_t path_size = m_path.size();
        for (const KeyPart& p : parts)
            m_path.push_back(display_key(p.name));
        Value value = KOS_TRY(parse_value(t->m_depth + 1));
        m_path.resize(path_size);
        t->insert(last.name, last.at, std::move(value));
        return {};
    }

    // A value; `depth` is the one an array or inline table here would have.
    Result<Value> parse_value(uint32_t depth) {
        Position at = m_at;
        int c = peek();
        switch (c) {
        case '"':
            if (peek(1) == '"' && peek(2) == '"')
                return Value(KOS_TRY(multiline_string('"')), at);
            return Value(KOS_TRY(basic_string(m_limits.max_string_bytes, "a string")), at);
        case '\'':
            if (peek(1) == '\'' && peek(2) == '\'')
                return Value(KOS_TRY(multiline_string('\'')), at);
            return Value(KOS_TRY(literal_string(m_limits.max_string_bytes, "a string")), at);
        case '[':
            return array(depth);
        case '{':
            return inline_table(depth);
        case 't':
        case 'f': {
            bool v = c == 't';
            std::string_view word = v ? "true" : "false";
            if (m_text.substr(m_pos, word.size()) == word &&
                (m_pos + word.size() == m_text.size() ||
                 !is_bare_key_char(static_cast<unsigned char>(m_text[m_pos + word.size()])))) {
                advance(word.size());
                return Value(v, at);
            }
            break;
        }
        default:
            if (is_digit(c) || c == '+' || c == '-' ||
                (c == 'i' && peek(1) == 'n' && peek(2) == 'f') ||
                (c == 'n' && peek(1) == 'a' && peek(2) == 'n'))
                return number();
            break;
        }
        if (c >= 0 && is_bare_key_char(static_cast<unsigned char>(c))) {
            // A word: most likely a string without its quotes.
            size_t n = 0;
            while (n < 64 && peek(n) >= 0 && is_bare_key_char(static_cast<unsigned char>(peek(n))))
                ++n;
            std::string word(m_text.substr(m_pos, n));
            return fail(at, "expected a value, found " + word + " (strings need quotes: \"" + word +
                                "\"; booleans are true and false)");
        }
        return expected("a value (a string, number, true, false, [array] or {inline table})");
    }

    Result<Value> array(uint32_t depth) {
        Position at = m_at;
        KOS_TRY(check_depth(depth, at));
        advance(); // '['
        Array items;
        for (;;) {
            KOS_TRY(skip_space());
            if (peek() == ']')
                break;
            m_path.push_back("[" + std::to_string(items.size()) + "]");
            items.push_back(KOS_TRY(parse_value(depth + 1)));
            m_path.pop_back();
            KOS_TRY(skip_space());
            if (peek() == ',') {
                advance();
                continue;
            }
            if (peek() == ']')
                break;
            return expected("',' or ']' after an array element (the array starts at " +
                            display_position(at) + ")");
        }
        advance(); // ']'
        return Value(std::move(items), at);
    }

    // { a = 1, b.c = 2 }: on one line, no trailing comma (TOML 1.0).
    Result<Value> inline_table(uint32_t depth) {
        Position at = m_at;
        KOS_TRY(check_depth(depth, at));
        advance(); // '{'
        // Complete once closed: nothing outside it can add to it (key_value
        // checks the tables below the one it adds to, never that one).
        Table t = new_table(Table::Origin::Inline, depth);
        uint32_t section = ++m_sections; // its dotted keys make tables only it adds to
        skip_blanks();
        if (peek() == '}') {
            advance();
        } else {
            for (;;) {
                skip_blanks();
                if (peek() == '\n' || peek() == '\r')
                    return fail(m_at,
                                "an inline table must be on one line (TOML 1.0); use a [table] "
                                "for more keys");
                if (peek() == '}')
                    return fail(m_at, "no trailing comma allowed in an inline table");
                KOS_TRY(key_value(t, section));
                skip_blanks();
                if (peek() == ',') {
                    advance();
                    continue;
                }
                if (peek() == '}') {
                    advance();
                    break;
                }
                if (peek() == '\n' || peek() == '\r')
                    return fail(m_at,
                                "an inline table must be on one line (TOML 1.0); the one at " +
                                    display_position(at) + " has no '}'");
                return expected("',' or '}' in the inline table (it starts at " +
                                display_position(at) + ")");
            }
        }
        return Value(std::move(t), at);
    }

    // One escape sequence after a backslash (the cursor is on the '\').
    Result<void> escape(std::string& out) {
        Position at = m_at;
        advance(); // '\'
        int c = peek();
        switch (c) {
        case 'b':
            out += '\b';
            break;
        case 't':
            out += '\t';
            break;
        case 'n':
            out += '\n';
            break;
        case 'f':
            out += '\f';
            break;
        case 'r':
            out += '\r';
            break;
        case '"':
            out += '"';
            break;
        case '\\':
            out += '\\';
            break;
        case 'u':
        case 'U': {
            int digits = c == 'u' ? 4 : 8;
            uint32_t cp = 0;
            for (int i = 1; i <= digits; ++i) {
                int h = kos::hex_value(peek(static_cast<size_t>(i)));
                if (h < 0)
                    return fail(at, std::string("\\") + static_cast<char>(c) + " needs " +
                                        std::to_string(digits) + " hexadecimal digits");
                cp = (cp << 4) | static_cast<uint32_t>(h);
            }
            if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return fail(
                    at,
                    std::string("\\") + static_cast<char>(c) +
                        std::string(m_text.substr(m_pos + 1, digits)) +
                        " is not a Unicode scalar value (U+0000 to U+D7FF or U+E000 to U+10FFFF)");
            append_utf8(out, cp);
            advance(static_cast<size_t>(digits));
            break;
        }
        default:
            return fail(at, "unknown escape " +
                                (c >= 0x21 && c < 0x7f ? std::string("\\") + static_cast<char>(c)
                                                       : "'\\' before " + found()) +
                                " (TOML has \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX)");
        }
        advance(); // the escape's letter (or last hex digit)
        return {};
    }

    Result<void> check_length(const std::string& s, size_t max, Position at,
                              const char* what) const {
        if (s.size() > max)
            return fail(at, std::string(what) + " longer than " + std::to_string(max) + " bytes");
        return {};
    }

    // "...": on one line, with escapes.
    Result<std::string> basic_string(size_t max, const char* what) {
        Position at = m_at;
        advance(); // '"'
        std::string out;
        for (;;) {
            int c = peek();
            if (c < 0 || c == '\n' || c == '\r')
                return fail(at, std::string(what) +
                                    " without its closing '\"' on the same line (use \"\"\" for "
                                    "a multi-line string)");
            if (c == '"') {
                advance();
                return out;
            }
            if (c == '\\')
                KOS_TRY(escape(out));
            else
                KOS_TRY(text_char("a string", &out));
            KOS_TRY(check_length(out, max, at, what));
        }
    }

    // '...': on one line, no escapes.
    Result<std::string> literal_string(size_t max, const char* what) {
        Position at = m_at;
        advance(); // '\''
        std::string out;
        for (;;) {
            int c = peek();
            if (c < 0 || c == '\n' || c == '\r')
                return fail(at, std::string(what) +
                                    " without its closing \"'\" on the same line (use ''' for "
                                    "a multi-line string)");
            if (c == '\'') {
                advance();
                return out;
            }
            KOS_TRY(text_char("a string", &out));
            KOS_TRY(check_length(out, max, at, what));
        }
    }

    // """...""" (escapes, line-ending backslashes) or '''...''' (neither).
    // A line end right after the opening quotes is not part of the string;
    // CRLF becomes LF; one or two quotes may come right before the closing ones.
    Result<std::string> multiline_string(char quote) {
        Position at = m_at;
        advance(3);
        if (peek() == '\n')
            advance();
        else if (peek() == '\r' && peek(1) == '\n')
            advance(2);
        std::string out;
        for (;;) {
            int c = peek();
            if (c < 0)
                return fail(at, std::string("a multi-line string without its closing ") +
                                    (quote == '"' ? "\"\"\"" : "'''"));
            if (c == quote) {
                size_t run = 0;
                while (peek(run) == quote)
                    ++run;
                if (run >= 3) {
                    if (run > 5)
                        return fail(
                            m_at, "too many quotes at the end of a multi-line string (at most two "
                                  "may come before the closing three)");
                    out.append(run - 3, quote);
                    advance(run);
                    KOS_TRY(check_length(out, m_limits.max_string_bytes, at, "a string"));
                    return out;
                }
                out.append(run, quote);
                advance(run);
            } else if (c == '\n') {
                out += '\n';
                advance();
            } else if (c == '\r' && peek(1) == '\n') {
                out += '\n';
                advance(2);
            } else if (c == '\\' && quote == '"') {
                // A backslash at the end of a line (blanks may follow it)
                // removes the line end and the blanks and line ends after it.
                size_t k = 1;
                while (peek(k) == ' ' || peek(k) == '\t')
                    ++k;
                if (peek(k) == '\n' || (peek(k) == '\r' && peek(k + 1) == '\n')) {
                    advance(k);
                    while (peek() == ' ' || peek() == '\t' || peek() == '\n' ||
                           (peek() == '\r' && peek(1) == '\n'))
                        advance(peek() == '\r' ? 2 : 1);
                } else {
                    KOS_TRY(escape(out));
                }
            } else {
                KOS_TRY(text_char("a string", &out));
            }
            KOS_TRY(check_length(out, m_limits.max_string_bytes, at, "a string"));
        }
    }

    // Integers and floats. The token is every character that can be part
    // of a number (or of a date, refused with its own message).
    Result<Value> number() {
        Position at = m_at;
        size_t end = m_pos;
        auto number_char = [](char c) {
            return is_bare_key_char(static_cast<unsigned char>(c)) || c == '+' || c == '.' ||
                   c == ':';
        };
        while (end < m_text.size() && number_char(m_text[end]))
            ++end;
        std::string_view tok = m_text.substr(m_pos, end - m_pos);
        if (tok.size() > 128)
            return fail(at, "a number longer than 128 characters");
        auto bad = [&](const std::string& why) {
            return fail(at, "invalid number " + std::string(tok) + ": " + why);
        };
        // Dates (1979-05-27) and times (07:32:00): a date with a time after a
        // space would continue past the token, so the shape is enough.
        auto digits = [&](size_t from, size_t n) {
            if (tok.size() < from + n)
                return false;
            for (size_t i = from; i < from + n; ++i)
                if (!is_digit(tok[i]))
                    return false;
            return true;
        };
        if ((digits(0, 4) && tok.size() > 4 && tok[4] == '-') ||
            (digits(0, 2) && tok.size() > 2 && tok[2] == ':'))
            return fail(at,
                        "dates and times are not supported (write the value as a quoted string)");

        size_t i = 0;
        bool negative = false;
        if (tok[0] == '+' || tok[0] == '-') {
            negative = tok[0] == '-';
            i = 1;
        }
        std::string_view body = tok.substr(i);
        if (body == "inf" || body == "nan") {
            advance(tok.size());
            double v = body == "inf" ? HUGE_VAL : std::nan("");
            return Value(negative ? -v : v, at);
        }
        // Prefixed integers: no sign, leading zeros allowed after the prefix.
        if (body.size() >= 2 && body[0] == '0' &&
            (body[1] == 'x' || body[1] == 'o' || body[1] == 'b')) {
            if (i != 0)
                return bad("a hexadecimal, octal or binary integer has no sign");
            unsigned base = body[1] == 'x' ? 16 : body[1] == 'o' ? 8 : 2;
            uint64_t v = 0;
            bool any = false, prev_digit = false;
            for (size_t k = 2; k < body.size(); ++k) {
                char c = body[k];
                if (c == '_') {
                    if (!prev_digit || k + 1 == body.size())
                        return bad("'_' must be between two digits");
                    prev_digit = false;
                    continue;
                }
                int d = kos::hex_value(c);
                if (d < 0 || static_cast<unsigned>(d) >= base)
                    return bad(std::string("'") + c + "' is not a base-" + std::to_string(base) +
                               " digit");
                if (v > (static_cast<uint64_t>(INT64_MAX) - static_cast<unsigned>(d)) / base)
                    return fail(at, "integer " + std::string(tok) +
                                        " does not fit in 64 bits (signed)");
                v = v * base + static_cast<unsigned>(d);
                any = prev_digit = true;
            }
            if (!any)
                return bad("no digits after the prefix");
            advance(tok.size());
            return Value(static_cast<int64_t>(v), at);
        }
        // Decimal: an integer part without leading zeros, then an optional
        // fraction and exponent (which make it a float).
        auto digit_run = [&](size_t& k, const char* part) -> Result<void> {
            if (k >= tok.size() || !is_digit(tok[k]))
                return bad(std::string("expected a digit ") + part);
            while (k < tok.size() && (is_digit(tok[k]) || tok[k] == '_')) {
                if (tok[k] == '_' && (k + 1 >= tok.size() || !is_digit(tok[k + 1])))
                    return bad("'_' must be between two digits");
                ++k;
            }
            return {};
        };
        size_t k = i;
        KOS_TRY(digit_run(k, i == 0 ? "first" : "after the sign"));
        if (tok[i] == '0' && k > i + 1)
            return bad("leading zeros are not allowed");
        bool is_float = false;
        if (k < tok.size() && tok[k] == '.') {
            ++k;
            KOS_TRY(digit_run(k, "after the decimal point"));
            is_float = true;
        }
        if (k < tok.size() && (tok[k] == 'e' || tok[k] == 'E')) {
            ++k;
            if (k < tok.size() && (tok[k] == '+' || tok[k] == '-'))
                ++k;
            KOS_TRY(digit_run(k, "in the exponent"));
            is_float = true;
        }
        if (k != tok.size())
            return bad(std::string("unexpected '") + tok[k] + "'");
        std::string clean;
        for (char c : tok)
            if (c != '_')
                clean += c;
        if (!is_float) {
            uint64_t v = 0;
            uint64_t limit =
                negative ? static_cast<uint64_t>(INT64_MAX) + 1 : static_cast<uint64_t>(INT64_MAX);
            for (size_t j = i; j < clean.size(); ++j) {
                unsigned d = static_cast<unsigned>(clean[j] - '0');
                if (v > (limit - d) / 10)
                    return fail(at, "integer " + std::string(tok) +
                                        " does not fit in 64 bits (signed)");
                v = v * 10 + d;
            }
            advance(tok.size());
            // Negating in unsigned arithmetic: -2^63 has no positive int64.
            return Value(static_cast<int64_t>(negative ? 0 - v : v), at);
        }
        // strtod with the C locale: the process locale must not change what
        // '.' means.
        static locale_t c_locale = newlocale(LC_ALL_MASK, "C", static_cast<locale_t>(nullptr));
        if (!c_locale)
            return fail(at, "cannot read floats (no C locale)");
        char* stop = nullptr;
        double v = strtod_l(clean.c_str(), &stop, c_locale);
        if (stop != clean.c_str() + clean.size())
            return bad("not a float");
        if (std::isinf(v))
            return fail(at, "float " + std::string(tok) + " is out of range");
        advance(tok.size());
        return Value(v, at);
    }

    std::string_view m_text;
    const std::string& m_origin;
    const Limits& m_limits;
    size_t m_pos = 0;
    Position m_at;
    Table m_root;
    uint32_t m_sections = 0;
    // The path of the table or array being filled, displayed: for messages.
    std::vector<std::string> m_path;
};

Result<Table> parse(std::string_view text, const std::string& origin, const Limits& limits) {
    Parser parser(text, origin, limits);
    return parser.run();
}

} // namespace kos::pkg::toml
