// The IDL model: interfaces, methods and typed fields as the IDL compiler
// (kos-idlc) parses them from .kidl files. The policy compiler uses the same
// model to check that every rule names real interfaces, methods and fields,
// and copies each method's message layout into the compiled policy so the
// engine can read field values straight out of a message.
//
// Message layout (docs/security-server.md, "Message layout"): a payload is a
// fixed part followed by a variable tail. Fields sit in the fixed part in
// declaration order, each at its natural alignment; String and Bytes fields
// are a {u32 offset, u32 size} descriptor (offset from the payload start,
// pointing into the tail). The fixed part's size is rounded up to 8.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kos/support/result.h"

namespace kos::idl {

struct SourceLoc {
    std::string file;
    uint32_t line = 0;   // 1-based
    uint32_t column = 0; // 1-based
};

// Field types. Sizes in the fixed part: Bool/U8/I8 1, U16/I16 2,
// U32/I32/Handle 4, U64/I64 8, Ip 16 (IPv6, IPv4 as ::ffff:a.b.c.d),
// String/Bytes 8 (descriptor). Alignment = size, except Ip (1) and
// String/Bytes (4).
enum class Type : uint8_t {
    Bool = 1,
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    Handle,
    Ip,
    String,
    Bytes,
};

// Which way information flows in a call, for the multi-level families:
// Read = from the server to the client (the request carries only control),
// Write = from the client to the server, ReadWrite = both (the default).
enum class Flow : uint8_t { ReadWrite = 0, Read = 1, Write = 2 };

// Memory a client may lend with a call of the method (ipc_call_grant): none,
// read by the server, or read and written by it; at most grant_max bytes.
// The kernel refuses a grant the method does not declare.
enum class Grant : uint8_t { None = 0, Read = 1, Write = 2 };
inline constexpr uint64_t kMaxGrantBytes = 64ull << 20; // abi/kos/syscall.h kMaxGrant

struct Field {
    std::string name;
    Type type = Type::U32;
    uint32_t max_size = 0; // String/Bytes: the declared bound in bytes
    uint32_t offset = 0;   // in the payload's fixed part
    SourceLoc where;
};

struct Method {
    std::string name;
    uint32_t id = 0; // unique within its interface, explicit in the source
    Flow flow = Flow::ReadWrite;
    Grant grant = Grant::None;
    uint64_t grant_max = 0;           // bytes, a multiple of 4096
    std::vector<Field> request;       // arguments
    std::vector<Field> response;      // results
    uint32_t request_fixed_size = 0;  // multiple of 8
    uint32_t response_fixed_size = 0; // multiple of 8
    SourceLoc where;
};

struct Interface {
    std::string name; // full name: "<package>.<Interface>", e.g. "vfs.File"
    uint32_t id = 0;  // unique across all loaded IDL files, explicit in the source
    std::vector<Method> methods;
    SourceLoc where;

    const Method* find_method(std::string_view name) const;
    const Method* find_method(uint32_t id) const;
};

struct Module {
    std::vector<Interface> interfaces;
    // parse_idl: the file's package. load_idl_files: the package all files
    // share, or empty when they name different ones.
    std::string package;

    const Interface* find(std::string_view full_name) const;
    const Interface* find(uint32_t id) const;
};

// Parses one .kidl text. `origin` names it in errors ("vfs.kidl:3:7: ...").
Result<Module> parse_idl(std::string_view text, std::string_view origin);

// Parses and merges files (each once, by canonical path); fails on a
// duplicate interface name or id across files.
Result<Module> load_idl_files(const std::vector<std::string>& paths);

// Size and alignment of a type in the fixed part.
uint32_t type_size(Type t);
uint32_t type_align(Type t);
std::string_view type_name(Type t); // as written in .kidl ("u32", "string", ...)

// True for String and Bytes (a descriptor in the fixed part, data in the tail).
bool is_variable(Type t);

// Caps of the parser (docs/idl.md): inputs beyond them are errors.
inline constexpr size_t kMaxSourceBytes = size_t{256} * 1024;
inline constexpr size_t kMaxNameLength = 64;
inline constexpr size_t kMaxInterfaces = 256; // per file
inline constexpr size_t kMaxMethods = 256;    // per interface
inline constexpr size_t kMaxFields = 64;      // per argument or result list

// Lays out `fields` (docs/security-server.md, "Message layout"): sets each
// Field::offset and returns the fixed size (a multiple of 8).
uint32_t compute_layout(std::vector<Field>& fields);

// The largest payload of a field list laid out with `fixed_size`: the fixed
// part plus every String and Bytes field at its bound.
uint64_t max_payload_size(const std::vector<Field>& fields, uint32_t fixed_size);

// Checks a payload against a laid-out field list exactly as the decoders
// kos-idlc generates do: size >= fixed size, each descriptor's offset >=
// fixed size, offset + size <= payload size, size <= bound, bools 0 or 1.
// Errors (EPROTO) name the field and what is wrong.
Result<void> check_payload(const std::vector<Field>& fields, uint32_t fixed_size,
                           const uint8_t* payload, size_t size);

} // namespace kos::idl
