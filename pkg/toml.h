// A TOML 1.0 parser for untrusted input (bundle.toml).
//
// It builds a tree of values that each keep their source position, so
// callers can name the line and column of a value they refuse. Everything
// the input can make large is bounded (Limits): the text, keys, strings and
// the nesting depth of tables and arrays, which also bounds the recursion
// of the parser and of the tree's destructor. No exceptions: errors are
// values that name the origin, line and column and what was expected.
//
// Supported (https://toml.io/en/v1.0.0): comments; bare, quoted and dotted
// keys; [table] and [[array.of.tables]] headers; inline tables; arrays
// (mixed types allowed); basic, literal and multi-line strings with every
// escape; integers (decimal, hex, octal, binary); floats (with inf and nan);
// booleans. Dates and times are refused with an error that says so: the
// configs this parser reads have no date fields.
//
// Tables keep their keys in the order of the text.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "kos/support/result.h"

namespace kos::pkg::toml {

// 1-based; columns count characters (UTF-8 code points), not bytes.
struct Position {
    uint32_t line = 1;
    uint32_t column = 1;
};

enum class Type : uint8_t { String, Integer, Float, Boolean, Array, Table };

// "a string", "an integer", ...: for messages.
const char* describe(Type type);

class Value;
struct Entry;

// A table: keys in the order the text defines them, each found in O(log n).
class Table {
  public:
    Table();
    ~Table();
    Table(Table&&) noexcept;
    Table& operator=(Table&&) noexcept;
    Table(const Table&) = delete;
    Table& operator=(const Table&) = delete;

    // The value under `key`, or null.
    const Value* find(std::string_view key) const;
    std::span<const Entry> entries() const;
    size_t size() const;
    bool empty() const;

  private:
    friend class Parser;
    // How the table came to be, for the redefinition rules of TOML 1.0 §Table.
    enum class Origin : uint8_t {
        Root,
        Implicit, // a super-table a header named on its way ([a.b] makes a)
        Header,   // defined by its own [header] or [[header]]
        Dotted,   // defined by dotted keys (a.b = 1 makes a)
        Inline,   // { ... }: complete once closed
    };
    Value* find_mutable(std::string_view key);
    Value& insert(std::string key, Position key_position, Value value);

    std::vector<Entry> m_entries;
    std::map<std::string, size_t, std::less<>> m_index;
    Origin m_origin = Origin::Root;
    uint32_t m_section = 0; // Dotted: the section (header or inline table) that made it
    uint32_t m_depth = 0;   // tables and arrays above it
};

using Array = std::vector<Value>;

class Value {
  public:
    Value(std::string s, Position at) : m_data(std::move(s)), m_position(at) {}
    Value(int64_t i, Position at) : m_data(i), m_position(at) {}
    Value(double d, Position at) : m_data(d), m_position(at) {}
    // Only a real bool: a string literal would convert to bool, not std::string.
    template <std::same_as<bool> B> Value(B b, Position at) : m_data(b), m_position(at) {}
    Value(Array a, Position at) : m_data(std::move(a)), m_position(at) {}
    Value(Table t, Position at) : m_data(std::move(t)), m_position(at) {}

    Type type() const { return static_cast<Type>(m_data.index()); }
    // Where the value starts: its first character; for a table, the '[' of
    // its header, the '{' of an inline table or the first key that made it.
    Position position() const { return m_position; }

    // The value if it has that type, else null. No conversions: an integer
    // is not a float, a boolean is not an integer.
    const std::string* as_string() const { return std::get_if<std::string>(&m_data); }
    const int64_t* as_integer() const { return std::get_if<int64_t>(&m_data); }
    const double* as_float() const { return std::get_if<double>(&m_data); }
    const bool* as_boolean() const { return std::get_if<bool>(&m_data); }
    const Array* as_array() const { return std::get_if<Array>(&m_data); }
    const Table* as_table() const { return std::get_if<Table>(&m_data); }

  private:
    friend class Parser;
    friend class Table;
    // Alternatives in the order of Type.
    std::variant<std::string, int64_t, double, bool, Array, Table> m_data;
    Position m_position;
    bool m_table_array = false; // an Array made by [[headers]], which more [[headers]] extend
};

struct Entry {
    std::string key;
    Position key_position; // the key's own part, for a dotted key the last one
    Value value;
};

struct Limits {
    size_t max_input_bytes = 1 << 20;
    // Tables and arrays inside each other, counting the tables a header or
    // a dotted key names (a.b.c = 1 is depth 3).
    uint32_t max_depth = 64;
    size_t max_key_bytes = 4096;       // after escapes
    size_t max_string_bytes = 1 << 16; // after escapes
};

// Parses a TOML document. `origin` names it in errors:
// "bundle.toml:3:7: expected '=' after the key, found '}'". Errors carry EINVAL.
Result<Table> parse(std::string_view text, const std::string& origin, const Limits& limits = {});

} // namespace kos::pkg::toml
