// The IDL model: lookups, type tables, the message layout, payload checks
// and loading several .kidl files (the parser is in parser.cc).
#include "kos/idl/model.h"

#include <cstring>
#include <filesystem>
#include <format>
#include <fstream>
#include <set>
#include <sstream>

namespace kos::idl {

const Method* Interface::find_method(std::string_view n) const {
    for (const Method& m : methods)
        if (m.name == n)
            return &m;
    return nullptr;
}

const Method* Interface::find_method(uint32_t method_id) const {
    for (const Method& m : methods)
        if (m.id == method_id)
            return &m;
    return nullptr;
}

const Interface* Module::find(std::string_view full_name) const {
    for (const Interface& i : interfaces)
        if (i.name == full_name)
            return &i;
    return nullptr;
}

const Interface* Module::find(uint32_t interface_id) const {
    for (const Interface& i : interfaces)
        if (i.id == interface_id)
            return &i;
    return nullptr;
}

uint32_t type_size(Type t) {
    switch (t) {
    case Type::Bool:
    case Type::U8:
    case Type::I8:
        return 1;
    case Type::U16:
    case Type::I16:
        return 2;
    case Type::U32:
    case Type::I32:
    case Type::Handle:
        return 4;
    case Type::U64:
    case Type::I64:
        return 8;
    case Type::Ip:
        return 16;
    case Type::String:
    case Type::Bytes:
        return 8;
    }
    return 0;
}

uint32_t type_align(Type t) {
    switch (t) {
    case Type::Ip:
        return 1;
    case Type::String:
    case Type::Bytes:
        return 4;
    default:
        return type_size(t);
    }
}

std::string_view type_name(Type t) {
    switch (t) {
    case Type::Bool:
        return "bool";
    case Type::U8:
        return "u8";
    case Type::U16:
        return "u16";
    case Type::U32:
        return "u32";
    case Type::U64:
        return "u64";
    case Type::I8:
        return "i8";
    case Type::I16:
        return "i16";
    case Type::I32:
        return "i32";
    case Type::I64:
        return "i64";
    case Type::Handle:
        return "handle";
    case Type::Ip:
        return "ip";
    case Type::String:
        return "string";
    case Type::Bytes:
        return "bytes";
    }
    return "?";
}

bool is_variable(Type t) {
    return t == Type::String || t == Type::Bytes;
}

uint32_t compute_layout(std::vector<Field>& fields) {
    // At most kMaxFields fields of at most 16 bytes: no overflow.
    uint32_t at = 0;
    for (Field& f : fields) {
        uint32_t a = type_align(f.type);
        at = (at + a - 1) / a * a;
        f.offset = at;
        at += type_size(f.type);
    }
    return (at + 7) / 8 * 8;
}

uint64_t max_payload_size(const std::vector<Field>& fields, uint32_t fixed_size) {
    uint64_t total = fixed_size;
    for (const Field& f : fields)
        if (is_variable(f.type))
            total += f.max_size;
    return total;
}

Result<void> check_payload(const std::vector<Field>& fields, uint32_t fixed_size,
                           const uint8_t* payload, size_t size) {
    if (size < fixed_size)
        return make_error(EPROTO,
                          std::format("payload of {} bytes is shorter than its fixed part ({})",
                                      size, fixed_size));
    for (const Field& f : fields) {
        if (f.type == Type::Bool) {
            uint8_t b = payload[f.offset];
            if (b > 1)
                return make_error(EPROTO,
                                  std::format("field {}: bool is {}, expected 0 or 1", f.name, b));
        } else if (is_variable(f.type)) {
            uint32_t d[2];
            std::memcpy(d, payload + f.offset, sizeof d);
            if (d[0] < fixed_size)
                return make_error(
                    EPROTO, std::format("field {}: offset {} is inside the fixed part ({} bytes)",
                                        f.name, d[0], fixed_size));
            if (d[1] > f.max_size)
                return make_error(EPROTO, std::format("field {}: size {} is over its bound {}",
                                                      f.name, d[1], f.max_size));
            if (d[0] > size || d[1] > size - d[0])
                return make_error(
                    EPROTO, std::format("field {}: offset {} + size {} is past the payload's end "
                                        "({} bytes)",
                                        f.name, d[0], d[1], size));
        }
    }
    return {};
}

Result<Module> load_idl_files(const std::vector<std::string>& paths) {
    Module out;
    std::set<std::string> seen;
    std::set<std::string> packages;
    for (const std::string& path : paths) {
        std::error_code ec;
        std::filesystem::path canon = std::filesystem::weakly_canonical(path, ec);
        std::string key = ec ? path : canon.string();
        if (!seen.insert(key).second)
            continue;
        std::ifstream in(path, std::ios::binary);
        if (!in)
            return make_error(ENOENT, std::format("{}: cannot open the IDL file: {}", path,
                                                  std::strerror(errno)));
        // Read at most one byte over the cap, so a huge file is refused
        // without reading it all.
        std::string text(kMaxSourceBytes + 1, '\0');
        in.read(text.data(), static_cast<std::streamsize>(text.size()));
        if (in.bad())
            return make_error(EIO, std::format("{}: cannot read the IDL file", path));
        text.resize(static_cast<size_t>(in.gcount()));
        Module m = KOS_TRY(parse_idl(text, path));
        for (Interface& itf : m.interfaces) {
            for (const Interface& other : out.interfaces) {
                auto at = [](const SourceLoc& l) {
                    return std::format("{}:{}:{}", l.file, l.line, l.column);
                };
                if (other.name == itf.name)
                    return make_error(EINVAL,
                                      std::format("{}: duplicate interface name '{}' (first at {})",
                                                  at(itf.where), itf.name, at(other.where)));
                if (other.id == itf.id)
                    return make_error(
                        EINVAL, std::format("{}: duplicate interface id {:#x} (already used by {} "
                                            "at {})",
                                            at(itf.where), itf.id, other.name, at(other.where)));
            }
            out.interfaces.push_back(std::move(itf));
        }
        packages.insert(m.package);
    }
    if (packages.size() == 1)
        out.package = *packages.begin();
    return out;
}

} // namespace kos::idl
