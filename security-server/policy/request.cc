#include "kos/policy/request.h"

#include <arpa/inet.h>

#include <cstring>

namespace kos::policy {

using security::FieldType;

bool is_integer_type(FieldType t) {
    return t != FieldType::Ip && t != FieldType::String && t != FieldType::Bytes;
}
bool is_signed_type(FieldType t) {
    return t == FieldType::I8 || t == FieldType::I16 || t == FieldType::I32 || t == FieldType::I64;
}

const char* field_type_name(FieldType t) {
    switch (t) {
    case FieldType::Bool:
        return "bool";
    case FieldType::U8:
        return "u8";
    case FieldType::U16:
        return "u16";
    case FieldType::U32:
        return "u32";
    case FieldType::U64:
        return "u64";
    case FieldType::I8:
        return "i8";
    case FieldType::I16:
        return "i16";
    case FieldType::I32:
        return "i32";
    case FieldType::I64:
        return "i64";
    case FieldType::Handle:
        return "handle";
    case FieldType::Ip:
        return "ip";
    case FieldType::String:
        return "string";
    case FieldType::Bytes:
        return "bytes";
    }
    return "?";
}

bool integer_fits(FieldType t, bool negative, uint64_t magnitude, uint64_t* bits,
                  std::string* why) {
    uint64_t umax = 0;
    uint64_t smax = 0; // signed: largest positive; the most negative is smax + 1
    const char* range;
    switch (t) {
    case FieldType::Bool:
        umax = 1;
        range = "0 or 1";
        break;
    case FieldType::U8:
        umax = 0xff;
        range = "0..255";
        break;
    case FieldType::U16:
        umax = 0xffff;
        range = "0..65535";
        break;
    case FieldType::U32:
    case FieldType::Handle:
        umax = 0xffffffffull;
        range = "0..4294967295";
        break;
    case FieldType::U64:
        umax = UINT64_MAX;
        range = "0..18446744073709551615";
        break;
    case FieldType::I8:
        smax = 127;
        range = "-128..127";
        break;
    case FieldType::I16:
        smax = 32767;
        range = "-32768..32767";
        break;
    case FieldType::I32:
        smax = 0x7fffffffull;
        range = "-2147483648..2147483647";
        break;
    case FieldType::I64:
        smax = INT64_MAX;
        range = "-9223372036854775808..9223372036854775807";
        break;
    default:
        *why = "an integer field";
        return false;
    }
    bool ok = is_signed_type(t) ? (negative ? magnitude <= smax + 1 : magnitude <= smax)
                                : (!negative && magnitude <= umax);
    if (!ok) {
        *why = std::string("a value in ") + range + " (the field is " + field_type_name(t) + ")";
        return false;
    }
    *bits = negative ? ~magnitude + 1 : magnitude;
    return true;
}

bool parse_address(const std::string& text, bool allow_prefix, security::Cidr* out,
                   std::string* why) {
    std::string addr = text;
    int prefix = -1;
    size_t slash = text.find('/');
    if (slash != std::string::npos) {
        if (!allow_prefix) {
            *why = "an address without a /prefix";
            return false;
        }
        addr = text.substr(0, slash);
        std::string p = text.substr(slash + 1);
        if (p.empty() || p.size() > 3 || p.find_first_not_of("0123456789") != std::string::npos) {
            *why = "a prefix length after '/'";
            return false;
        }
        prefix = std::stoi(p);
    }
    std::memset(out, 0, sizeof *out);
    in_addr v4{};
    in6_addr v6{};
    if (addr.find(':') == std::string::npos && ::inet_pton(AF_INET, addr.c_str(), &v4) == 1) {
        if (prefix > 32) {
            *why = "an IPv4 prefix of at most 32";
            return false;
        }
        out->address[10] = 0xff;
        out->address[11] = 0xff;
        std::memcpy(out->address + 12, &v4, 4);
        out->prefix = prefix < 0 ? 128 : 96 + static_cast<uint32_t>(prefix);
    } else if (::inet_pton(AF_INET6, addr.c_str(), &v6) == 1) {
        if (prefix > 128) {
            *why = "an IPv6 prefix of at most 128";
            return false;
        }
        std::memcpy(out->address, &v6, 16);
        out->prefix = prefix < 0 ? 128 : static_cast<uint32_t>(prefix);
    } else {
        *why = "an IPv4 or IPv6 address";
        return false;
    }
    // Host bits must be zero: 10.0.0.1/8 is almost certainly a mistake.
    for (uint32_t bit = out->prefix; bit < 128; ++bit) {
        if (out->address[bit / 8] & (0x80 >> (bit % 8))) {
            *why = "a network address (bits after the /prefix must be 0)";
            return false;
        }
    }
    return true;
}

std::string format_address(const uint8_t bytes[16]) {
    char buf[INET6_ADDRSTRLEN] = {};
    static const uint8_t v4_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(bytes, v4_prefix, 12) == 0)
        ::inet_ntop(AF_INET, bytes + 12, buf, sizeof buf);
    else
        ::inet_ntop(AF_INET6, bytes, buf, sizeof buf);
    return buf;
}

void add_grant_specs(std::vector<FieldSpec>& specs, uint64_t max_bytes, bool writable) {
    FieldSpec size{"grant.size", FieldType::U64, static_cast<uint32_t>(max_bytes), FieldSpec::Grant::Size};
    FieldSpec write{"grant.write", FieldType::Bool, writable ? 1u : 0u, FieldSpec::Grant::Write};
    specs.push_back(std::move(size));
    specs.push_back(std::move(write));
}

bool fill_fields(const ast::Step& step, const std::vector<FieldSpec>& specs,
                 const std::string& method, BuiltRequest& out, Diagnostics& diags) {
    out.values.assign(specs.size(), security::FieldValue{});
    std::vector<bool> seen(specs.size(), false);
    for (size_t i = 0; i < specs.size(); ++i) {
        if (!is_integer_type(specs[i].type) && specs[i].type != FieldType::Ip) {
            out.values[i].data = reinterpret_cast<const uint8_t*>("");
            out.values[i].size = 0;
        } else if (specs[i].type == FieldType::Ip) {
            security::Cidr& c = out.addresses.emplace_back();
            std::memset(&c, 0, sizeof c);
            out.values[i].data = c.address;
            out.values[i].size = 16;
        }
    }
    bool ok = true;
    for (const ast::FieldAssign& a : step.fields) {
        size_t i = 0;
        while (i < specs.size() && specs[i].name != a.field.text)
            ++i;
        if (i == specs.size()) {
            std::string names;
            for (const FieldSpec& s : specs)
                names.append(names.empty() ? "" : ", ").append(s.name);
            diags.error(a.field.loc, "found field '" + a.field.text + "', expected a field of " +
                                         method +
                                         (names.empty() ? " (it has none)" : " (" + names + ")"));
            ok = false;
            continue;
        }
        if (seen[i]) {
            diags.error(a.field.loc, "found field '" + a.field.text +
                                         "' a second time, expected each field once");
            ok = false;
            continue;
        }
        seen[i] = true;
        const FieldSpec& s = specs[i];
        const ast::Value& v = a.value;
        std::string why;
        if (is_integer_type(s.type)) {
            uint64_t bits = 0;
            if (v.kind != ast::Value::Kind::Int) {
                diags.error(v.loc, "found a " +
                                       std::string(v.kind == ast::Value::Kind::String ? "string"
                                                                                      : "address") +
                                       ", expected an integer (field '" + s.name + "' is " +
                                       field_type_name(s.type) + ")");
                ok = false;
            } else if (!integer_fits(s.type, v.negative, v.magnitude, &bits, &why) ||
                       (s.grant == FieldSpec::Grant::Size && bits > s.max_size)) {
                if (s.grant == FieldSpec::Grant::Size)
                    why = "0.." + std::to_string(s.max_size) + " (the largest grant " + method +
                          " declares, in bytes)";
                diags.error(v.loc, "found " + std::string(v.negative ? "-" : "") +
                                       std::to_string(v.magnitude) + ", expected " + why);
                ok = false;
            } else if (s.grant == FieldSpec::Grant::Write && bits > s.max_size) {
                diags.error(v.loc, "found 1, expected 0: " + method +
                                       " declares a read-only grant ([grant read N])");
                ok = false;
            } else {
                out.values[i].integer = bits;
            }
        } else if (s.type == FieldType::Ip) {
            security::Cidr c;
            if (v.kind != ast::Value::Kind::Address) {
                diags.error(
                    v.loc, "found a value that is not an address, expected an IP address (field '" +
                               s.name + "' is ip)");
                ok = false;
            } else if (!parse_address(v.text, false, &c, &why)) {
                diags.error(v.loc, "found " + v.text + ", expected " + why);
                ok = false;
            } else {
                security::Cidr& stored = out.addresses.emplace_back(c);
                out.values[i].data = stored.address;
                out.values[i].size = 16;
            }
        } else {
            if (v.kind != ast::Value::Kind::String) {
                diags.error(
                    v.loc, "found a value that is not a string, expected a quoted string (field '" +
                               s.name + "' is " + field_type_name(s.type) + ")");
                ok = false;
            } else if (v.text.size() > s.max_size) {
                diags.error(v.loc, "found a string of " + std::to_string(v.text.size()) +
                                       " bytes, expected at most " + std::to_string(s.max_size) +
                                       " (field '" + s.name + "')");
                ok = false;
            } else {
                const std::string& stored = out.strings.emplace_back(v.text);
                out.values[i].data = reinterpret_cast<const uint8_t*>(stored.data());
                out.values[i].size = static_cast<uint32_t>(stored.size());
            }
        }
    }
    // The grant specs come last: their values go to the request.
    size_t payload = specs.size();
    while (payload > 0 && specs[payload - 1].grant != FieldSpec::Grant::No)
        --payload;
    for (size_t i = payload; i < specs.size(); ++i) {
        if (specs[i].grant == FieldSpec::Grant::Size)
            out.request.grant_size = out.values[i].integer;
        else
            out.request.grant_write = out.values[i].integer != 0;
    }
    if (out.request.grant_write && out.request.grant_size == 0) {
        ast::Loc at = step.loc;
        for (const ast::FieldAssign& a : step.fields)
            if (a.field.text == "grant.write")
                at = a.value.loc;
        diags.error(at, "found grant.write=1 without a grant.size, expected the size of the "
                              "writable grant (1 or more bytes)");
        ok = false;
    }
    out.values.resize(payload);
    out.request.fields = out.values.empty() ? nullptr : out.values.data();
    out.request.field_count = static_cast<uint32_t>(out.values.size());
    return ok;
}

} // namespace kos::policy
