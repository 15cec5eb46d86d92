#include "pkg/toml.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>

namespace {

using namespace kos::pkg::toml;

kos::Result<Table> parse_text(std::string_view text, const Limits& limits = {}) {
    return parse(text, "t.toml", limits);
}

// The error message for `text`, or "" when it parses.
std::string error_of(std::string_view text, const Limits& limits = {}) {
    auto r = parse_text(text, limits);
    return r ? std::string() : r.error().message;
}

#define EXPECT_TOML_ERROR(text, message) EXPECT_EQ(error_of(text), message) << "input: " << (text)

const Value& at(const Table& t, std::string_view key) {
    const Value* v = t.find(key);
    EXPECT_NE(v, nullptr) << key;
    static const Value kMissing(std::string("<missing>"), Position{});
    return v ? *v : kMissing;
}

const Table& table(const Table& t, std::string_view key) {
    const Table* sub = at(t, key).as_table();
    EXPECT_NE(sub, nullptr) << key;
    static const Table kEmpty;
    return sub ? *sub : kEmpty;
}

std::string str(const Table& t, std::string_view key) {
    const std::string* s = at(t, key).as_string();
    return s ? *s : "<not a string>";
}

int64_t integer(const Table& t, std::string_view key) {
    const int64_t* i = at(t, key).as_integer();
    EXPECT_NE(i, nullptr) << key;
    return i ? *i : -999;
}

double floating(const Table& t, std::string_view key) {
    const double* d = at(t, key).as_float();
    EXPECT_NE(d, nullptr) << key;
    return d ? *d : -999;
}

std::string pos(const Value& v) {
    return std::to_string(v.position().line) + ":" + std::to_string(v.position().column);
}

TEST(Toml, CommentsBlankLinesAndLineEnds) {
    auto r = parse_text("# a comment\n\n  \t\na = 1 # after a value\r\n[t] # after a header\nb = "
                        "2\n# last, no line end");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(integer(*r, "a"), 1);
    EXPECT_EQ(integer(table(*r, "t"), "b"), 2);
    // Comments may hold any character but controls, UTF-8 included.
    auto u = parse_text("a = 1 # Gr\xc3\xbc\xc3\x9f"
                        "e \xf0\x9f\x99\x82 \t tab\n");
    EXPECT_TRUE(u) << u.error().message;
    EXPECT_TRUE(parse_text(""));
    EXPECT_TRUE(parse_text("\xef\xbb\xbf"
                           "a = 1\n")); // byte order mark
}

TEST(Toml, Keys) {
    auto r = parse_text(R"(bare_key-1 = 1
1234 = 2
"quoted key" = 3
'literal "key"' = 4
"" = 5
"\u00e9" = 6
a . b  .	c = 7
site."google.com" = 8
)");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(integer(*r, "bare_key-1"), 1);
    EXPECT_EQ(integer(*r, "1234"), 2);
    EXPECT_EQ(integer(*r, "quoted key"), 3);
    EXPECT_EQ(integer(*r, "literal \"key\""), 4);
    EXPECT_EQ(integer(*r, ""), 5);
    EXPECT_EQ(integer(*r, "\xc3\xa9"), 6);
    EXPECT_EQ(integer(table(table(*r, "a"), "b"), "c"), 7);
    EXPECT_EQ(integer(table(*r, "site"), "google.com"), 8);
    // The order of the text, not sorted.
    std::vector<std::string> keys;
    for (const Entry& e : r->entries())
        keys.push_back(e.key);
    EXPECT_EQ(keys, (std::vector<std::string>{"bare_key-1", "1234", "quoted key", "literal \"key\"",
                                              "", "\xc3\xa9", "a", "site"}));
}

TEST(Toml, Tables) {
    auto r = parse_text(R"(top = 1
[a]
x = 1
[a.b.c]
y = 2
[ a . "q" ]
z = 3
[d.e]
[d] # a super-table named before may be defined once
f = 4
[fruit]
apple.color = "red"
apple.taste.sweet = true
[fruit.apple.texture] # a sub-table of a table made by dotted keys
smooth = true
)");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(integer(*r, "top"), 1);
    const Table& a = table(*r, "a");
    EXPECT_EQ(integer(a, "x"), 1);
    EXPECT_EQ(integer(table(table(a, "b"), "c"), "y"), 2);
    EXPECT_EQ(integer(table(a, "q"), "z"), 3);
    EXPECT_EQ(integer(table(*r, "d"), "f"), 4);
    EXPECT_TRUE(table(table(*r, "d"), "e").empty());
    const Table& apple = table(table(*r, "fruit"), "apple");
    EXPECT_EQ(str(apple, "color"), "red");
    EXPECT_EQ(*at(table(apple, "taste"), "sweet").as_boolean(), true);
    EXPECT_EQ(*at(table(apple, "texture"), "smooth").as_boolean(), true);
    // A table's position is its header's '['.
    EXPECT_EQ(pos(at(*r, "a")), "2:1");
    EXPECT_EQ(pos(at(*r, "d")), "9:1"); // defined by [d], named first by [d.e]
}

TEST(Toml, ArraysOfTables) {
    auto r = parse_text(R"([[process]]
name = "a"
[process.extra]
k = 1
[[process.sub]]
n = 1
[[process.sub]]
n = 2

[[process]]
name = "b"

[[ empty ]]
)");
    ASSERT_TRUE(r) << r.error().message;
    const Array* procs = at(*r, "process").as_array();
    ASSERT_NE(procs, nullptr);
    ASSERT_EQ(procs->size(), 2u);
    const Table& first = *(*procs)[0].as_table();
    EXPECT_EQ(str(first, "name"), "a");
    EXPECT_EQ(integer(table(first, "extra"), "k"), 1);
    ASSERT_EQ(at(first, "sub").as_array()->size(), 2u);
    EXPECT_EQ(integer(*(*at(first, "sub").as_array())[1].as_table(), "n"), 2);
    EXPECT_EQ(str(*(*procs)[1].as_table(), "name"), "b");
    EXPECT_EQ(pos((*procs)[1]), "10:1");
    EXPECT_EQ(at(*r, "empty").as_array()->size(), 1u);
}

TEST(Toml, InlineTables) {
    auto r = parse_text(R"(point = { x = 1, y = -2 }
empty = {}
nested = { a = { b = [1, { c = "d" }] }, e.f = true, e.g = 'h' }
listen = [{ proto = "tcp", port = 8080 }, {port=53}]
)");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(integer(table(*r, "point"), "y"), -2);
    EXPECT_TRUE(table(*r, "empty").empty());
    const Table& nested = table(*r, "nested");
    const Array& arr = *at(table(nested, "a"), "b").as_array();
    EXPECT_EQ(str(*arr[1].as_table(), "c"), "d");
    EXPECT_EQ(str(table(nested, "e"), "g"), "h");
    const Array& listen = *at(*r, "listen").as_array();
    ASSERT_EQ(listen.size(), 2u);
    EXPECT_EQ(pos(listen[1]), "4:43");
    EXPECT_EQ(integer(*listen[1].as_table(), "port"), 53);
}

TEST(Toml, Arrays) {
    auto r = parse_text(R"(empty = []
ints = [ 1, 2, 3, ]
mixed = [1, "two", 3.0, true, [4], {five = 5}]
multi = [
  "a", # a comment
  # another
  "b",

]
nested = [[1, 2], [], [[3]]]
)");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_TRUE(at(*r, "empty").as_array()->empty());
    EXPECT_EQ(at(*r, "ints").as_array()->size(), 3u);
    const Array& mixed = *at(*r, "mixed").as_array();
    ASSERT_EQ(mixed.size(), 6u);
    EXPECT_EQ(mixed[0].type(), Type::Integer);
    EXPECT_EQ(mixed[1].type(), Type::String);
    EXPECT_EQ(mixed[2].type(), Type::Float);
    EXPECT_EQ(mixed[3].type(), Type::Boolean);
    EXPECT_EQ(mixed[4].type(), Type::Array);
    EXPECT_EQ(mixed[5].type(), Type::Table);
    const Array& multi = *at(*r, "multi").as_array();
    ASSERT_EQ(multi.size(), 2u);
    EXPECT_EQ(*multi[1].as_string(), "b");
    EXPECT_EQ(pos(multi[1]), "7:3");
    EXPECT_EQ((*(*at(*r, "nested").as_array())[2].as_array())[0].as_array()->size(), 1u);
}

TEST(Toml, BasicStrings) {
    auto r = parse_text(R"(a = "tab\there \"q\" back\\slash \b\f\n\r"
b = "\u00e9\u20AC\U0001F642\u0000"
c = "raw UTF-8: é€🙂 and a	tab"
d = ""
)");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(str(*r, "a"), "tab\there \"q\" back\\slash \b\f\n\r");
    EXPECT_EQ(str(*r, "b"),
              std::string("\xc3\xa9\xe2\x82\xac\xf0\x9f\x99\x82") + std::string(1, '\0'));
    EXPECT_EQ(str(*r, "c"), "raw UTF-8: \xc3\xa9\xe2\x82\xac\xf0\x9f\x99\x82 and a\ttab");
    EXPECT_EQ(str(*r, "d"), "");
}

TEST(Toml, LiteralStrings) {
    auto r = parse_text(R"(a = 'C:\Users\nodejs\templates'
b = '<\i\c*\s*>'
c = ''
d = 'say "hi"'
)");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(str(*r, "a"), "C:\\Users\\nodejs\\templates");
    EXPECT_EQ(str(*r, "b"), "<\\i\\c*\\s*>");
    EXPECT_EQ(str(*r, "c"), "");
    EXPECT_EQ(str(*r, "d"), "say \"hi\"");
}

TEST(Toml, MultiLineStrings) {
    auto r = parse_text("a = \"\"\"\nRoses\r\nViolets\"\"\"\n"
                        "b = \"\"\"The quick \\\n\n   brown \\   \n  fox.\"\"\"\n"
                        "c = \"\"\"\"quoted\"\" \"\"\"\"\"\n"
                        "d = '''\nC:\\path\\\n''\n'''\n"
                        "e = ''''one quote''''\n"
                        "f = \"\"\"\\u0041\\t\"\"\"\n"
                        "g = \"\"\"\"\"\"\n");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(str(*r, "a"), "Roses\nViolets");
    EXPECT_EQ(str(*r, "b"), "The quick brown fox.");
    EXPECT_EQ(str(*r, "c"), "\"quoted\"\" \"\"");
    EXPECT_EQ(str(*r, "d"), "C:\\path\\\n''\n");
    EXPECT_EQ(str(*r, "e"), "'one quote'");
    EXPECT_EQ(str(*r, "f"), "A\t");
    EXPECT_EQ(str(*r, "g"), "");
}

TEST(Toml, Integers) {
    auto r = parse_text(R"(a = 42
b = +17
c = -17
d = 0
e = -0
f = 1_000_000
g = 0xDEAD_beef
h = 0o755
i = 0b1101_0110
j = 9223372036854775807
k = -9223372036854775808
l = 0x7fffffffffffffff
m = 0x00ff
)");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(integer(*r, "a"), 42);
    EXPECT_EQ(integer(*r, "b"), 17);
    EXPECT_EQ(integer(*r, "c"), -17);
    EXPECT_EQ(integer(*r, "d"), 0);
    EXPECT_EQ(integer(*r, "e"), 0);
    EXPECT_EQ(integer(*r, "f"), 1000000);
    EXPECT_EQ(integer(*r, "g"), 0xdeadbeef);
    EXPECT_EQ(integer(*r, "h"), 0755);
    EXPECT_EQ(integer(*r, "i"), 0xd6);
    EXPECT_EQ(integer(*r, "j"), std::numeric_limits<int64_t>::max());
    EXPECT_EQ(integer(*r, "k"), std::numeric_limits<int64_t>::min());
    EXPECT_EQ(integer(*r, "l"), std::numeric_limits<int64_t>::max());
    EXPECT_EQ(integer(*r, "m"), 255);
}

TEST(Toml, Floats) {
    auto r = parse_text(R"(a = 1.0
b = -3.1415
c = 5e+22
d = 1e06
e = -2E-2
f = 6.626e-34
g = 224_617.445_991
h = inf
i = +inf
j = -inf
k = nan
l = -0.0
m = 0e0
)");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(floating(*r, "a"), 1.0);
    EXPECT_EQ(floating(*r, "b"), -3.1415);
    EXPECT_EQ(floating(*r, "c"), 5e22);
    EXPECT_EQ(floating(*r, "d"), 1e6);
    EXPECT_EQ(floating(*r, "e"), -0.02);
    EXPECT_EQ(floating(*r, "f"), 6.626e-34);
    EXPECT_EQ(floating(*r, "g"), 224617.445991);
    EXPECT_EQ(floating(*r, "h"), std::numeric_limits<double>::infinity());
    EXPECT_EQ(floating(*r, "i"), std::numeric_limits<double>::infinity());
    EXPECT_EQ(floating(*r, "j"), -std::numeric_limits<double>::infinity());
    EXPECT_TRUE(std::isnan(floating(*r, "k")));
    EXPECT_TRUE(std::signbit(floating(*r, "l")));
    EXPECT_EQ(floating(*r, "m"), 0.0);
    // No conversions between types.
    EXPECT_EQ(at(*r, "a").as_integer(), nullptr);
}

TEST(Toml, Booleans) {
    auto r = parse_text("t = true\nf = false\n");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*at(*r, "t").as_boolean(), true);
    EXPECT_EQ(*at(*r, "f").as_boolean(), false);
    EXPECT_EQ(at(*r, "t").as_integer(), nullptr);
    EXPECT_TRUE(parse_text("t=true#c\nf=[false,true]"));
}

TEST(Toml, PositionsOfKeysAndValues) {
    auto r = parse_text(
        "[app]\n  name   = \"x\"\n# \xc3\xa9\xc3\xa9\n\"\xc3\xa9\xc3\xa9\" = 'y'\na.b = 1\n");
    ASSERT_TRUE(r) << r.error().message;
    const Table& app = table(*r, "app");
    ASSERT_EQ(app.entries().size(), 3u);
    EXPECT_EQ(app.entries()[0].key_position.line, 2u);
    EXPECT_EQ(app.entries()[0].key_position.column, 3u);
    EXPECT_EQ(pos(app.entries()[0].value), "2:12");
    // Columns count characters: "éé" is two columns, four bytes.
    EXPECT_EQ(pos(app.entries()[1].value), "4:8");
    const Table& a = table(app, "a");
    EXPECT_EQ(a.entries()[0].key_position.column, 3u);
    EXPECT_EQ(pos(app.entries()[2].value), "5:1"); // a table made by a dotted key: its key
}

TEST(Toml, DatesAndTimesAreRefused) {
    const char* msg = "dates and times are not supported (write the value as a quoted string)";
    EXPECT_TOML_ERROR("d = 1979-05-27\n", std::string("t.toml:1:5: ") + msg);
    EXPECT_TOML_ERROR("d = 1979-05-27T07:32:00Z\n", std::string("t.toml:1:5: ") + msg);
    EXPECT_TOML_ERROR("d = 1979-05-27 07:32:00\n", std::string("t.toml:1:5: ") + msg);
    EXPECT_TOML_ERROR("d = [07:32:00]\n", std::string("t.toml:1:6: ") + msg);
    EXPECT_TRUE(parse_text("d = \"1979-05-27\"\n"));
}

TEST(Toml, SyntaxErrorsNamePositionAndExpectation) {
    EXPECT_TOML_ERROR("a = 1\nb 2\n", "t.toml:2:3: expected '=' after the key, found '2'");
    EXPECT_TOML_ERROR("a = \n",
                      "t.toml:1:5: expected a value (a string, number, true, false, [array] or "
                      "{inline table}), found the end of the line");
    EXPECT_TOML_ERROR("a = 1 2\n",
                      "t.toml:1:7: expected a new line or a comment after the value, found '2'");
    EXPECT_TOML_ERROR(
        "[a] b = 1\n",
        "t.toml:1:5: expected a new line or a comment after the table header, found 'b'");
    EXPECT_TOML_ERROR(
        "= 1\n", "t.toml:1:1: expected a key (letters, digits, '_' and '-', or a quoted string), "
                 "found '='");
    EXPECT_TOML_ERROR(
        "a.= 1\n", "t.toml:1:3: expected a key (letters, digits, '_' and '-', or a quoted string), "
                   "found '='");
    EXPECT_TOML_ERROR(
        "[a\n", "t.toml:1:3: expected ']' to end the [table] header, found the end of the line");
    EXPECT_TOML_ERROR(
        "[[a]\n",
        "t.toml:1:5: expected ']]' to end the [[table]] header, found the end of the line");
    EXPECT_TOML_ERROR(
        "[]\n", "t.toml:1:2: expected a key (letters, digits, '_' and '-', or a quoted string), "
                "found ']'");
    EXPECT_TOML_ERROR("name = web\n",
                      "t.toml:1:8: expected a value, found web (strings need quotes: \"web\"; "
                      "booleans are true and false)");
    EXPECT_TOML_ERROR("b = True\n",
                      "t.toml:1:5: expected a value, found True (strings need quotes: \"True\"; "
                      "booleans are true and false)");
    EXPECT_TOML_ERROR("b = truely\n",
                      "t.toml:1:5: expected a value, found truely (strings need quotes: "
                      "\"truely\"; booleans are true and false)");
    EXPECT_TOML_ERROR("a = [1 2]\n",
                      "t.toml:1:8: expected ',' or ']' after an array element (the array starts "
                      "at 1:5), found '2'");
    EXPECT_TOML_ERROR("a = [1,,]\n",
                      "t.toml:1:8: expected a value (a string, number, true, false, [array] or "
                      "{inline table}), found ','");
    EXPECT_TOML_ERROR("a = [1,\n",
                      "t.toml:2:1: expected a value (a string, number, true, false, [array] or "
                      "{inline table}), found the end of the file");
    EXPECT_TOML_ERROR("a = { b = 1 c = 2 }\n",
                      "t.toml:1:13: expected ',' or '}' in the inline table (it starts "
                      "at 1:5), found 'c'");
    EXPECT_TOML_ERROR("a = { b = 1, }\n",
                      "t.toml:1:14: no trailing comma allowed in an inline table");
    EXPECT_TOML_ERROR("a = { b = 1,\nc = 2 }\n",
                      "t.toml:1:13: an inline table must be on one line (TOML 1.0); "
                      "use a [table] for more keys");
    EXPECT_TOML_ERROR("a = { b = 1\n}\n",
                      "t.toml:1:12: an inline table must be on one line (TOML 1.0); the one "
                      "at 1:5 has no '}'");
    EXPECT_TOML_ERROR("a = 1\r\n\rb = 2\n",
                      "t.toml:2:1: a carriage return must be followed by a line feed");
    EXPECT_TOML_ERROR("\"\"\"k\"\"\" = 1\n", "t.toml:1:1: a key cannot be a multi-line string");
}

TEST(Toml, StringErrors) {
    EXPECT_TOML_ERROR("a = \"abc\n",
                      "t.toml:1:5: a string without its closing '\"' on the same line (use \"\"\" "
                      "for a multi-line string)");
    EXPECT_TOML_ERROR(
        "a = 'abc", "t.toml:1:5: a string without its closing \"'\" on the same line (use ''' for "
                    "a multi-line string)");
    EXPECT_TOML_ERROR("a = \"\"\"abc\n",
                      "t.toml:1:5: a multi-line string without its closing \"\"\"");
    EXPECT_TOML_ERROR("a = '''abc''", "t.toml:1:5: a multi-line string without its closing '''");
    EXPECT_TOML_ERROR("a = \"\\q\"\n",
                      "t.toml:1:6: unknown escape \\q (TOML has \\b \\t \\n \\f \\r \\\" \\\\ "
                      "\\uXXXX \\UXXXXXXXX)");
    EXPECT_TOML_ERROR("a = \"\\ \"\n",
                      "t.toml:1:6: unknown escape '\\' before ' ' (TOML has \\b \\t \\n \\f \\r "
                      "\\\" \\\\ \\uXXXX \\UXXXXXXXX)");
    EXPECT_TOML_ERROR("a = \"\\x41\"\n",
                      "t.toml:1:6: unknown escape \\x (TOML has \\b \\t \\n \\f \\r \\\" \\\\ "
                      "\\uXXXX \\UXXXXXXXX)");
    EXPECT_TOML_ERROR("a = \"\\u12\"\n", "t.toml:1:6: \\u needs 4 hexadecimal digits");
    EXPECT_TOML_ERROR("a = \"\\U0000004\"\n", "t.toml:1:6: \\U needs 8 hexadecimal digits");
    EXPECT_TOML_ERROR("a = \"\\uD800\"\n",
                      "t.toml:1:6: \\uD800 is not a Unicode scalar value (U+0000 to U+D7FF "
                      "or U+E000 to U+10FFFF)");
    EXPECT_TOML_ERROR("a = \"\\U00110000\"\n",
                      "t.toml:1:6: \\U00110000 is not a Unicode scalar value (U+0000 to "
                      "U+D7FF or U+E000 to U+10FFFF)");
    EXPECT_TOML_ERROR("a = \"\"\"x\"\"\"\"\"\"\n",
                      "t.toml:1:9: too many quotes at the end of a multi-line string "
                      "(at most two may come before the closing three)");
    EXPECT_TOML_ERROR("a = \"\"\"x \\ y\"\"\"\n",
                      "t.toml:1:10: unknown escape '\\' before ' ' (TOML has \\b \\t "
                      "\\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX)");
    EXPECT_TOML_ERROR(std::string("a = \"x\x01\"\n"),
                      "t.toml:1:7: control character U+0001 in a string (TOML "
                      "allows no control characters but tab; write an escape such "
                      "as \\u0000)");
    EXPECT_TOML_ERROR(std::string("a = 'x\x7f'\n"),
                      "t.toml:1:7: control character U+007F in a string (TOML "
                      "allows no control characters but tab; write an escape such "
                      "as \\u0000)");
    EXPECT_TOML_ERROR("a = '''x\ry'''\n",
                      "t.toml:1:9: a carriage return in a string must be followed by a line feed");
    EXPECT_TOML_ERROR("# x\x02\n",
                      "t.toml:1:4: control character U+0002 in a comment (TOML allows no control "
                      "characters but tab)");
    // UTF-8 is checked: overlong forms, surrogates, stray continuation bytes.
    EXPECT_TOML_ERROR("a = \"\xc0\xaf\"\n", "t.toml:1:6: invalid UTF-8 in a string (byte 0xC0)");
    EXPECT_TOML_ERROR("a = \"\xed\xa0\x80\"\n",
                      "t.toml:1:6: invalid UTF-8 in a string (byte 0xED)");
    EXPECT_TOML_ERROR("# \x80\n", "t.toml:1:3: invalid UTF-8 in a comment (byte 0x80)");
    EXPECT_TOML_ERROR("a = \"\xf4\x90\x80\x80\"\n",
                      "t.toml:1:6: invalid UTF-8 in a string (byte 0xF4)");
    EXPECT_TOML_ERROR("\xc3\xa9 = 1\n",
                      "t.toml:1:1: expected a key (letters, digits, '_' and '-', or a quoted "
                      "string), found character U+00E9");
}

TEST(Toml, NumberErrors) {
    EXPECT_TOML_ERROR("a = 012\n", "t.toml:1:5: invalid number 012: leading zeros are not allowed");
    EXPECT_TOML_ERROR("a = -01.5\n",
                      "t.toml:1:5: invalid number -01.5: leading zeros are not allowed");
    EXPECT_TOML_ERROR("a = 1__0\n",
                      "t.toml:1:5: invalid number 1__0: '_' must be between two digits");
    EXPECT_TOML_ERROR("a = 10_\n",
                      "t.toml:1:5: invalid number 10_: '_' must be between two digits");
    EXPECT_TOML_ERROR("a = 1.\n",
                      "t.toml:1:5: invalid number 1.: expected a digit after the decimal point");
    EXPECT_TOML_ERROR("a = 1.e5\n",
                      "t.toml:1:5: invalid number 1.e5: expected a digit after the decimal point");
    EXPECT_TOML_ERROR("a = 1e\n",
                      "t.toml:1:5: invalid number 1e: expected a digit in the exponent");
    EXPECT_TOML_ERROR("a = +\n", "t.toml:1:5: invalid number +: expected a digit after the sign");
    EXPECT_TOML_ERROR("a = 12abc\n", "t.toml:1:5: invalid number 12abc: unexpected 'a'");
    EXPECT_TOML_ERROR("a = +0x10\n",
                      "t.toml:1:5: invalid number +0x10: a hexadecimal, octal or binary integer "
                      "has no sign");
    EXPECT_TOML_ERROR("a = 0x\n", "t.toml:1:5: invalid number 0x: no digits after the prefix");
    EXPECT_TOML_ERROR("a = 0o8\n", "t.toml:1:5: invalid number 0o8: '8' is not a base-8 digit");
    EXPECT_TOML_ERROR("a = 0b_1\n",
                      "t.toml:1:5: invalid number 0b_1: '_' must be between two digits");
    EXPECT_TOML_ERROR("a = 9223372036854775808\n",
                      "t.toml:1:5: integer 9223372036854775808 does not fit in 64 "
                      "bits (signed)");
    EXPECT_TOML_ERROR("a = -9223372036854775809\n",
                      "t.toml:1:5: integer -9223372036854775809 does not fit in 64 "
                      "bits (signed)");
    EXPECT_TOML_ERROR("a = 0x8000000000000000\n",
                      "t.toml:1:5: integer 0x8000000000000000 does not fit in 64 "
                      "bits (signed)");
    EXPECT_TOML_ERROR("a = 1e400\n", "t.toml:1:5: float 1e400 is out of range");
    EXPECT_TOML_ERROR("a = infinity\n",
                      "t.toml:1:5: invalid number infinity: expected a digit first");
    EXPECT_TOML_ERROR("a = .5\n",
                      "t.toml:1:5: expected a value (a string, number, true, false, [array] or "
                      "{inline table}), found '.'");
}

// TOML 1.0 §Table, §Array of Tables, §Inline Table: a key or a table is
// defined once; inline tables and static arrays are complete.
TEST(Toml, RedefinitionsAreErrors) {
    // Keys in messages are written as in TOML, escaped: no terminal controls.
    EXPECT_TOML_ERROR("\"a\\u001b\" = 1\n\"a\\u001b\" = 2\n",
                      "t.toml:2:1: \"a\\u001B\" is defined twice (first at 1:13)");
    EXPECT_TOML_ERROR("a.\"b c\" = 1\na.\"b c\" = 2\n",
                      "t.toml:2:3: a.\"b c\" is defined twice (first at 1:11)");
    EXPECT_TOML_ERROR("a = 1\na = 2\n", "t.toml:2:1: a is defined twice (first at 1:5)");
    EXPECT_TOML_ERROR("a = 1\n\"a\" = 2\n", "t.toml:2:1: a is defined twice (first at 1:5)");
    EXPECT_TOML_ERROR("[t]\n[t]\n", "t.toml:2:1: table [t] is defined twice (first at 1:1)");
    EXPECT_TOML_ERROR("[t.u]\n[t]\n[t]\n", "t.toml:3:1: table [t] is defined twice (first at 2:1)");
    EXPECT_TOML_ERROR("[t]\nu = 1\n[t.u]\n", "t.toml:3:1: [t.u]: t.u is already an integer (2:5)");
    EXPECT_TOML_ERROR("[t]\nu = 1\n[t.u.v]\n",
                      "t.toml:3:4: t.u is already an integer (2:5), not a table");
    EXPECT_TOML_ERROR("a.b = 1\na = 2\n", "t.toml:2:1: a is defined twice (first at 1:1)");
    EXPECT_TOML_ERROR("a = 1\na.b = 2\n", "t.toml:2:1: a is already an integer (1:5), not a table");
    // Tables made by dotted keys cannot be defined by a header...
    EXPECT_TOML_ERROR("[fruit]\napple.color = 'red'\n[fruit.apple]\n",
                      "t.toml:3:1: table [fruit.apple] is already defined by dotted keys (2:1)");
    EXPECT_TOML_ERROR("a.b = 1\n[a]\n",
                      "t.toml:2:1: table [a] is already defined by dotted keys (1:1)");
    // ...and dotted keys cannot add to tables a header defined.
    EXPECT_TOML_ERROR(
        "[a.b.c]\nz = 9\n[a]\nb.c.t = 1\n",
        "t.toml:4:3: table a.b.c is defined by a header (1:1); dotted keys cannot add to it");
    EXPECT_TOML_ERROR(
        "[a.b.c.d]\n[a]\nb.c.d.k.t = 1\n",
        "t.toml:3:5: table a.b.c.d is defined by a header (1:1); dotted keys cannot add to it");
    // Inline tables are complete once closed.
    EXPECT_TOML_ERROR("a = {}\n[a]\n",
                      "t.toml:2:1: table [a] is already defined as an inline table (1:5)");
    EXPECT_TOML_ERROR("a = {b = 1}\n[a.c]\n",
                      "t.toml:2:2: a is an inline table (1:5), which cannot be extended");
    EXPECT_TOML_ERROR("a = {b = 1}\na.c = 2\n",
                      "t.toml:2:1: a is an inline table (1:5), which cannot be extended");
    EXPECT_TOML_ERROR("a = {b = {c = 1}, b.d = 2}\n",
                      "t.toml:1:19: a.b is an inline table (1:10), which cannot be extended");
    EXPECT_TOML_ERROR("a = {b.c = 1, b.c = 2}\n",
                      "t.toml:1:17: a.b.c is defined twice (first at 1:12)");
    EXPECT_TOML_ERROR("a = [{b = 1}]\n[a.c]\n",
                      "t.toml:2:2: a is already an array (1:5), not a table");
    // Arrays of tables and static arrays.
    EXPECT_TOML_ERROR(
        "a = [1]\n[[a]]\n",
        "t.toml:2:1: [[a]]: a is already an array value (1:5), not an array of tables");
    EXPECT_TOML_ERROR("[a]\n[[a]]\n",
                      "t.toml:2:1: [[a]]: a is already a table (1:1), not an array of tables");
    EXPECT_TOML_ERROR("[[a]]\n[a]\n",
                      "t.toml:2:1: [a] is an array of tables (1:1); write [[a]] to add a table "
                      "to it");
    EXPECT_TOML_ERROR("[[a]]\nb = 1\n[a.b]\n",
                      "t.toml:3:1: [a.b]: a.b is already an integer (2:5)");
    // But these are fine: a header through an array of tables goes to its
    // last table; a super-table is defined once after its sub-tables.
    EXPECT_TRUE(parse_text("[[a]]\n[a.b]\n[[a]]\n[a.b]\n"));
    EXPECT_TRUE(parse_text("[a.b.c]\n[a.b]\n[a]\n"));
    EXPECT_TRUE(parse_text("[a.b.c]\n[a]\nb.d = 1\n")); // a.b was only named, never defined
}

TEST(Toml, Limits) {
    // Nesting: arrays, inline tables, headers and dotted keys all count.
    std::string deep_ok = "a = " + std::string(64, '[') + std::string(64, ']') + "\n";
    EXPECT_TRUE(parse_text(deep_ok)) << error_of(deep_ok);
    EXPECT_TOML_ERROR("a = " + std::string(65, '[') + std::string(65, ']') + "\n",
                      "t.toml:1:69: tables and arrays nested deeper than 64");
    EXPECT_TOML_ERROR("a = " + std::string(100000, '['),
                      "t.toml:1:69: tables and arrays nested deeper than 64");
    std::string inl = "a = ";
    for (int i = 0; i < 70; ++i)
        inl += "{b = ";
    EXPECT_EQ(error_of(inl + "1"), "t.toml:1:325: tables and arrays nested deeper than 64");
    std::string dotted, header = "[";
    for (int i = 0; i < 65; ++i) {
        dotted += (i ? ".k" : "k");
        header += (i ? ".k" : "k");
    }
    EXPECT_EQ(error_of(dotted + " = 1\n"), "t.toml:1:129: a dotted key with more than 64 parts");
    EXPECT_EQ(error_of(header + "]\n"), "t.toml:1:130: a dotted key with more than 64 parts");
    EXPECT_EQ(error_of("[a.b]\n" + dotted.substr(0, 64 * 2 - 1) + " = 1\n"),
              "t.toml:2:125: tables and arrays nested deeper than 64");
    EXPECT_TRUE(parse_text("a.b = " + std::string(63, '[') + std::string(63, ']') + "\n"));
    EXPECT_EQ(error_of("a.b = " + std::string(64, '[') + std::string(64, ']') + "\n"),
              "t.toml:1:70: tables and arrays nested deeper than 64");
    // Sizes.
    Limits tiny;
    tiny.max_input_bytes = 16;
    EXPECT_EQ(error_of(std::string(17, '#'), tiny),
              "t.toml:1:1: the file has 17 bytes; at most 16 are accepted");
    EXPECT_TRUE(parse_text(std::string(16, '#'), tiny));
    Limits small;
    small.max_key_bytes = 4;
    small.max_string_bytes = 5;
    EXPECT_EQ(error_of("abcde = 1", small), "t.toml:1:1: a key longer than 4 bytes");
    EXPECT_EQ(error_of("'abcde' = 1", small), "t.toml:1:1: a key longer than 4 bytes");
    EXPECT_TRUE(parse_text("abcd = 'abcde'", small));
    EXPECT_EQ(error_of("a = 'abcdef'", small), "t.toml:1:5: a string longer than 5 bytes");
    EXPECT_EQ(error_of("a = \"\\u00e9\\u00e9\\u00e9\"", small),
              "t.toml:1:5: a string longer than 5 bytes");
    EXPECT_EQ(error_of("a = '''abcdef'''", small), "t.toml:1:5: a string longer than 5 bytes");
    EXPECT_EQ(error_of("a = " + std::string(200, '1')),
              "t.toml:1:5: a number longer than 128 characters");
}

// Inputs that crashed toml++ 3.3 (tests/fuzz/seeds/pkg_config/toml_*), which
// kos used before this parser: each is refused with its position.
TEST(Toml, InputsThatBrokeTomlPlusPlus) {
    struct Case {
        std::string text, message;
    } cases[] = {
        {"[`app]\n", "t.toml:1:2: expected a key (letters, digits, '_' and '-', or a quoted "
                     "string), found '`'"},
        {"[app]\nname = \"x" + std::string(1, '\0') + "y\"\n",
         "t.toml:2:10: control character U+0000 in a string (TOML allows no control characters but "
         "tab; write an "
         "escape such as \\u0000)"},
        {"[app]\nname = 5\xc5\xbb\n",
         "t.toml:2:9: expected a new line or a comment after the value, found character U+017B"},
        {"x = " + std::string(40, '[') + "\n",
         "t.toml:2:1: expected a value (a string, number, true, false, [array] or {inline table}), "
         "found the end "
         "of the file"},
        {"x = [{ a = [ }]\n", "t.toml:1:14: expected a value (a string, number, true, false, "
                              "[array] or {inline table}), found '}'"},
        {"\ne = 33/I------ 5 5",
         "t.toml:2:7: expected a new line or a comment after the value, found '/'"},
        {"e = 2024-01-01 5 ",
         "t.toml:1:5: dates and times are not supported (write the value as a quoted string)"},
    };
    for (const Case& c : cases)
        EXPECT_EQ(error_of(c.text), c.message) << "input: " << c.text;
}

// Every seed of the pkg_config fuzz target parses or fails with a position;
// the ones that crashed toml++ fail with these messages.
TEST(Toml, FuzzSeeds) {
    const std::map<std::string, std::string> expected = {
        {"toml_bad_date",
         "seed:2:5: dates and times are not supported (write the value as a quoted string)"},
        {"toml_bad_table_header",
         "seed:1:2: expected a key (letters, digits, '_' and '-', or a quoted string), found '`'"},
        {"toml_date_space_digit",
         "seed:2:7: expected a new line or a comment after the value, found '/'"},
        {"toml_deep_arrays", "seed:1:70: tables and arrays nested deeper than 64"},
        {"toml_escape_non_ascii",
         "seed:2:5: dates and times are not supported (write the value as a quoted string)"},
        {"toml_mismatched_close", "seed:8:49: expected a value (a string, number, true, false, "
                                  "[array] or {inline table}), found '}'"},
        {"toml_non_ascii", "seed:1:33: expected '=' after the key, found character U+017B"},
        {"toml_non_ascii_value",
         "seed:3:9: expected a new line or a comment after the value, found '('"},
        {"toml_nul_in_array", "seed:1:26: expected a value (a string, number, true, false, [array] "
                              "or {inline table}), found '}'"},
    };
    size_t seen = 0;
    for (const auto& entry : std::filesystem::directory_iterator(KOS_PKG_CONFIG_SEEDS)) {
        std::ifstream in(entry.path(), std::ios::binary);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::string name = entry.path().filename();
        auto r = parse(text, "seed");
        auto it = expected.find(name);
        if (it != expected.end()) {
            ++seen;
            ASSERT_FALSE(r) << name;
            EXPECT_EQ(r.error().message, it->second) << name;
        } else if (name.ends_with(".toml")) {
            EXPECT_TRUE(r) << name << ": " << r.error().message;
        }
    }
    EXPECT_EQ(seen, expected.size());
}

} // namespace
