// Audit records as text: one JSON object per line (for log pipelines and
// `kos policy audit2allow`) and a one-line human form for stderr. Names are
// resolved through the loaded policy (the record holds indices and ids).
//
//   {"seq":1,"time_ns":0,"policy":"<16 hex>","verdict":"deny","rule":"web.kpol:12:1",
//    "rule_id":7,"rule_text":"...","kind":"request","source":"app_t","target":"vfs_t",
//    "interface":"vfs.File","method":"open","fields":{"path":"/etc/x","flags":0},"cached":false}
//
// Security records carry "class"/"perm" instead of interface/method;
// execute records carry "program". A request that lent memory has
// "grant.size" and "grant.write" (0 or 1) first among its fields. Integers are JSON numbers, strings
// JSON strings (bytes that are not UTF-8 as \u00XX escapes of each byte),
// bytes fields {"hex":"..."} and addresses strings. "truncated":true when a
// value was cut or did not fit the record.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kos/security/engine.h"
#include "kos/support/result.h"

namespace kos::policy {

// "web.kpol:12:1" (or "default-deny", ...) of rule `id`; "rule #id" if absent.
std::string rule_where(const security::Engine& e, uint32_t id);
std::string rule_text(const security::Engine& e, uint32_t id);
// "web.kpol:12:1 (allow request ...)"
std::string describe_rule(const security::Engine& e, uint32_t id);

std::string render_audit_json(const security::Engine& e, const security::AuditRecord& r);
// kos: denied request app_t -> vfs_t vfs.File.open path="/etc/x" flags=0 [rule web.kpol:12:1]
std::string render_audit_human(const security::Engine& e, const security::AuditRecord& r);

// One parsed JSON line.
struct AuditEntry {
    uint64_t seq = 0;
    uint64_t time_ns = 0;
    std::string policy;
    bool allow = false;
    std::string rule;
    uint32_t rule_id = 0;
    std::string rule_text;
    std::string kind; // execute | request | response | security
    std::string source, target;
    std::string interface, method; // request/response
    std::string cls, perm;         // security
    // Field values written as in a policy (`"/etc/x"`, `0`, `192.0.2.1`).
    std::vector<std::pair<std::string, std::string>> fields;
    bool cached = false;
    bool truncated = false;
};

// Parses one line; errors say which key is missing or of the wrong type.
Result<AuditEntry> parse_audit_json(std::string_view line);

// `allow` rules that would have let the denied records through, one per
// (kind, source, target, interface.method | class.perm), each after a
// "# N denials" comment; denials an allow cannot lift (explicit denies,
// lattices, malformed messages, limits) are counted in comments instead.
// Execute suggestions list the programs seen. Never a complete policy: a
// starting point to review.
std::string audit2allow(const std::vector<AuditEntry>& entries);

} // namespace kos::policy
