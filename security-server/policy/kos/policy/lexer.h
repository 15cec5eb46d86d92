// The .kpol lexer: source text -> tokens.
//
// One statement per line: newlines are tokens (a `\` at the end of a line
// joins it with the next; `#` starts a comment). Addresses (10.0.0.0/8,
// 2001:db8::1) are single tokens, so `in 10.0.0.0/8` needs no quoting;
// `1..1024` stays three tokens. A number immediately followed by letters
// keeps them as its suffix (`500ms`, `1h`).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kos/policy/ast.h"

namespace kos::policy {

inline constexpr uint64_t kMaxSourceBytes = 4u << 20; // per file
inline constexpr uint32_t kMaxLineBytes = 64u << 10;

enum class Tok : uint8_t {
    End,
    Newline,
    Ident,   // [A-Za-z_][A-Za-z0-9_]*
    Number,  // decimal or 0x hex digits (text), suffix: trailing letters
    String,  // text = decoded bytes
    Address, // IPv4/IPv6 address with an optional /prefix
    Sym,     // { } , . * = + - -> : < <= > >= == != ..
    Error,   // text = what is wrong; the lexer stops after one
};

struct Token {
    Tok kind = Tok::End;
    std::string text;
    std::string suffix; // Number: letters written right after the digits
    ast::Loc loc;
    uint32_t begin = 0; // byte offsets in the source
    uint32_t end = 0;
};

// Tokenizes `text` (file index `file` in the locations). Always ends with
// Tok::End; a lexical error becomes one Tok::Error token followed by End.
std::vector<Token> lex(std::string_view text, uint32_t file);

// How a token is named in "found X" messages: 'name', "string", end of line...
std::string describe(const Token& t);

} // namespace kos::policy
