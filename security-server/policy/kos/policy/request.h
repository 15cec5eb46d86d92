// Requests written as text (test steps, `kos policy explain`): typed field
// values checked against a method's fields and turned into an engine
// Request. Also the literal checks conditions share (integer ranges per
// type, addresses).
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "kos/policy/ast.h"
#include "kos/policy/diagnostics.h"
#include "kos/security/engine.h"

namespace kos::policy {

struct FieldSpec {
    std::string name;
    security::FieldType type = security::FieldType::U32;
    uint32_t max_size = 0; // String/Bytes; GrantSize: the largest grant; GrantWrite: 1 if writable
    // Not a payload field: the grant lent with a request (`grant.size`,
    // `grant.write`), filled into Request::grant_size / grant_write. These
    // specs come after the payload's.
    enum class Grant : uint8_t { No, Size, Write };
    Grant grant = Grant::No;
};

// Appends `grant.size` and `grant.write` for a request of a method that
// declares a grant of at most `max_bytes`, `writable` or read-only.
void add_grant_specs(std::vector<FieldSpec>& specs, uint64_t max_bytes, bool writable);

// A request with the storage its field values point into (not copyable:
// the values point into `strings`/`addresses`).
struct BuiltRequest {
    security::Request request;
    std::vector<security::FieldValue> values;
    std::deque<std::string> strings;
    std::deque<security::Cidr> addresses;
    std::string what; // "vfs.File.open", "file.read", "" (execute)

    BuiltRequest() = default;
    BuiltRequest(const BuiltRequest&) = delete;
    BuiltRequest& operator=(const BuiltRequest&) = delete;
};

bool is_integer_type(security::FieldType t);
bool is_signed_type(security::FieldType t);
const char* field_type_name(security::FieldType t);

// The value as the engine sees it (two's complement for negatives), if it
// fits type `t`; otherwise false and `why` says the type's range.
bool integer_fits(security::FieldType t, bool negative, uint64_t magnitude, uint64_t* bits,
                  std::string* why);

// "192.0.2.1", "10.0.0.0/8", "2001:db8::/32" -> Cidr (IPv4 as ::ffff:a.b.c.d,
// prefix 96 + n). Without a prefix the whole address (128). `allow_prefix`
// false refuses a /n.
bool parse_address(const std::string& text, bool allow_prefix, security::Cidr* out,
                   std::string* why);
std::string format_address(const uint8_t bytes[16]);

// Fills `out.values` (one per spec, in order) from a step's `field=value`
// list: unknown or repeated fields and values of the wrong type or range are
// errors at their position; a field left out is 0 (or empty). `method`
// names the method in messages. Grant specs (add_grant_specs) set the
// request's grant instead of a value; left out, the request lends nothing.
bool fill_fields(const ast::Step& step, const std::vector<FieldSpec>& specs,
                 const std::string& method, BuiltRequest& out, Diagnostics& diags);

} // namespace kos::policy
