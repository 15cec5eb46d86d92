#include "kos/policy/audit_json.h"

#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "kos/policy/request.h"

namespace kos::policy {

namespace sec = kos::security;
using nlohmann::json;
using ordered = nlohmann::ordered_json; // keeps keys in the order written

namespace {

std::string blob_string(const sec::Engine& e, sec::StringRef s) {
    uint32_t size = 0;
    const char* p = e.string(s, &size);
    return p ? std::string(p, size) : std::string();
}

std::string label_name(const sec::Engine& e, uint32_t i) {
    const sec::Label* l = e.label(i);
    return l ? blob_string(e, l->name) : "label#" + std::to_string(i);
}

const char* kind_name(uint8_t k) {
    switch (static_cast<sec::Kind>(k)) {
    case sec::Kind::Execute:
        return "execute";
    case sec::Kind::Request:
        return "request";
    case sec::Kind::Response:
        return "response";
    case sec::Kind::Security:
        return "security";
    }
    return "unknown";
}

// Everything the record names, resolved through the policy.
struct Named {
    std::string what_a, what_b; // interface + method, or class + perm
    std::vector<std::pair<std::string, ordered>> fields;
    std::vector<std::pair<std::string, std::string>> field_text; // policy syntax
};

std::string quote(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c >= 0x7f) {
            char b[8];
            std::snprintf(b, sizeof b, "\\x%02x", c);
            out += b;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

// A JSON string of arbitrary bytes: valid UTF-8 passes, other bytes become
// U+00XX (so the text stays valid JSON; the value is for reading).
std::string to_json_text(const uint8_t* p, uint32_t n) {
    std::string out;
    for (uint32_t i = 0; i < n; ++i) {
        unsigned char c = p[i];
        if (c < 0x80) {
            out += static_cast<char>(c);
            continue;
        }
        int len = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        bool ok = len && i + len <= n;
        for (int k = 1; ok && k < len; ++k)
            ok = (p[i + k] & 0xc0) == 0x80;
        if (ok) {
            out.append(reinterpret_cast<const char*>(p + i), len);
            i += len - 1;
        } else {
            out += static_cast<char>(0xc0 | (c >> 6));
            out += static_cast<char>(0x80 | (c & 0x3f));
        }
    }
    return out;
}

Named resolve(const sec::Engine& e, const sec::AuditRecord& r) {
    Named n;
    const sec::Method* m = nullptr;
    uint32_t field_first = 0, field_count = 0;
    auto kind = static_cast<sec::Kind>(r.kind);
    if (kind == sec::Kind::Request || kind == sec::Kind::Response) {
        const sec::Interface* in = e.interface_by_id(r.a);
        m = in ? e.method(*in, r.b) : nullptr;
        n.what_a = in ? blob_string(e, in->name) : "interface#" + std::to_string(r.a);
        n.what_b = m ? blob_string(e, m->name) : "method#" + std::to_string(r.b);
        if (m) {
            field_first =
                kind == sec::Kind::Request ? m->request_field_first : m->response_field_first;
            field_count =
                kind == sec::Kind::Request ? m->request_field_count : m->response_field_count;
        }
    } else if (kind == sec::Kind::Security) {
        const sec::Class* c = e.cls(r.a);
        n.what_a = c ? blob_string(e, c->name) : "class#" + std::to_string(r.a);
        const sec::Perm* p = c && r.b < c->perm_count ? e.perm(c->perm_first + r.b) : nullptr;
        n.what_b = p ? blob_string(e, p->name) : "perm#" + std::to_string(r.b);
    }
    // TLV: {u8 field, u8 type, u16 size, bytes[size]}
    uint32_t pos = 0, size = std::min<uint32_t>(r.data_size, sec::kAuditDataMax);
    while (pos + 4 <= size) {
        uint8_t index = r.data[pos];
        auto type = static_cast<sec::FieldType>(r.data[pos + 1]);
        uint32_t len = r.data[pos + 2] | uint32_t{r.data[pos + 3]} << 8;
        pos += 4;
        if (pos + len > size)
            break;
        const uint8_t* v = r.data + pos;
        pos += len;
        std::string name;
        if (kind == sec::Kind::Execute) {
            name = "program";
        } else if (kind == sec::Kind::Request && index == sec::kAuditFieldGrantSize) {
            name = "grant.size";
        } else if (kind == sec::Kind::Request && index == sec::kAuditFieldGrantWrite) {
            name = "grant.write";
        } else if (index < field_count) {
            const sec::Field* f = e.field(field_first + index);
            name = f ? blob_string(e, f->name) : "";
        }
        if (name.empty())
            name = "field" + std::to_string(index);
        if (type == sec::FieldType::String) {
            n.fields.emplace_back(name, to_json_text(v, len));
            n.field_text.emplace_back(name,
                                      quote(std::string(reinterpret_cast<const char*>(v), len)));
        } else if (type == sec::FieldType::Bytes) {
            std::string hex;
            char b[4];
            for (uint32_t i = 0; i < len; ++i) {
                std::snprintf(b, sizeof b, "%02x", v[i]);
                hex += b;
            }
            n.fields.emplace_back(name, ordered{{"hex", hex}});
            n.field_text.emplace_back(name,
                                      quote(std::string(reinterpret_cast<const char*>(v), len)));
        } else if (type == sec::FieldType::Ip) {
            std::string a = len == 16 ? format_address(v) : "?";
            n.fields.emplace_back(name, a);
            n.field_text.emplace_back(name, a);
        } else {
            uint64_t x = 0;
            for (uint32_t i = 0; i < len && i < 8; ++i)
                x |= uint64_t{v[i]} << (8 * i);
            if (is_signed_type(type)) {
                auto s = static_cast<int64_t>(x);
                n.fields.emplace_back(name, s);
                n.field_text.emplace_back(name, std::to_string(s));
            } else {
                n.fields.emplace_back(name, x);
                n.field_text.emplace_back(name, std::to_string(x));
            }
        }
    }
    return n;
}

} // namespace

std::string rule_where(const sec::Engine& e, uint32_t id) {
    const sec::Rule* r = e.rule(id);
    std::string w = r ? blob_string(e, r->where) : "";
    return w.empty() ? "rule #" + std::to_string(id) : w;
}

std::string rule_text(const sec::Engine& e, uint32_t id) {
    const sec::Rule* r = e.rule(id);
    return r ? blob_string(e, r->text) : "";
}

std::string describe_rule(const sec::Engine& e, uint32_t id) {
    std::string t = rule_text(e, id);
    return rule_where(e, id) + (t.empty() ? "" : " (" + t + ")");
}

std::string render_audit_json(const sec::Engine& e, const sec::AuditRecord& r) {
    Named n = resolve(e, r);
    char policy[17];
    std::snprintf(policy, sizeof policy, "%016llx", static_cast<unsigned long long>(r.policy_id));
    ordered j = ordered::object();
    j["seq"] = r.sequence;
    j["time_ns"] = r.time_ns;
    j["policy"] = policy;
    j["verdict"] = r.allow ? "allow" : "deny";
    j["rule"] = rule_where(e, r.rule);
    j["rule_id"] = r.rule;
    j["rule_text"] = rule_text(e, r.rule);
    j["kind"] = kind_name(r.kind);
    j["source"] = label_name(e, r.source);
    j["target"] = label_name(e, r.target);
    auto kind = static_cast<sec::Kind>(r.kind);
    if (kind == sec::Kind::Request || kind == sec::Kind::Response) {
        j["interface"] = n.what_a;
        j["method"] = n.what_b;
    } else if (kind == sec::Kind::Security) {
        j["class"] = n.what_a;
        j["perm"] = n.what_b;
    }
    if (kind == sec::Kind::Execute) {
        for (auto& [k, v] : n.fields)
            if (k == "program")
                j["program"] = v;
    } else if (kind != sec::Kind::Security) {
        ordered f = ordered::object();
        for (auto& [k, v] : n.fields)
            f[k] = v;
        j["fields"] = f;
    }
    j["cached"] = r.cached != 0;
    if (r.truncated)
        j["truncated"] = true;
    return j.dump(-1, ' ', false, ordered::error_handler_t::replace);
}

std::string render_audit_human(const sec::Engine& e, const sec::AuditRecord& r) {
    Named n = resolve(e, r);
    std::string s = std::string("kos: ") + (r.allow ? "allowed " : "denied ") + kind_name(r.kind) +
                    " " + label_name(e, r.source) + " -> " + label_name(e, r.target);
    if (!n.what_a.empty())
        s.append(" ").append(n.what_a).append(".").append(n.what_b);
    for (auto& [k, v] : n.field_text)
        s.append(" ").append(k).append("=").append(v);
    if (r.truncated)
        s += " ...";
    s += " [rule " + rule_where(e, r.rule) + "]";
    return s;
}

Result<AuditEntry> parse_audit_json(std::string_view line) {
    ordered j = ordered::parse(line.begin(), line.end(), nullptr, false);
    if (j.is_discarded() || !j.is_object())
        return make_error(EINVAL, "not a JSON object");
    AuditEntry a;
    auto str = [&](const char* k, std::string* out, bool required) -> Result<void> {
        auto it = j.find(k);
        if (it == j.end()) {
            if (required)
                return make_error(EINVAL, std::string("no \"") + k + "\" key");
            return {};
        }
        if (!it->is_string())
            return make_error(EINVAL, std::string("\"") + k + "\" is not a string");
        *out = it->get<std::string>();
        return {};
    };
    auto num = [&](const char* k, uint64_t* out) -> Result<void> {
        auto it = j.find(k);
        if (it == j.end())
            return {};
        if (!it->is_number_unsigned())
            return make_error(EINVAL, std::string("\"") + k + "\" is not a non-negative integer");
        *out = it->get<uint64_t>();
        return {};
    };
    std::string verdict;
    KOS_TRY(str("verdict", &verdict, true));
    if (verdict != "allow" && verdict != "deny")
        return make_error(EINVAL, "\"verdict\" is \"" + verdict + "\", expected allow or deny");
    a.allow = verdict == "allow";
    KOS_TRY(str("kind", &a.kind, true));
    if (a.kind != "execute" && a.kind != "request" && a.kind != "response" && a.kind != "security")
        return make_error(EINVAL, "\"kind\" is \"" + a.kind +
                                      "\", expected execute, request, response or security");
    KOS_TRY(str("source", &a.source, true));
    KOS_TRY(str("target", &a.target, true));
    KOS_TRY(str("rule", &a.rule, false));
    KOS_TRY(str("rule_text", &a.rule_text, false));
    KOS_TRY(str("policy", &a.policy, false));
    uint64_t rule_id = 0;
    KOS_TRY(num("seq", &a.seq));
    KOS_TRY(num("time_ns", &a.time_ns));
    KOS_TRY(num("rule_id", &rule_id));
    a.rule_id = static_cast<uint32_t>(rule_id);
    if (a.kind == "request" || a.kind == "response") {
        KOS_TRY(str("interface", &a.interface, true));
        KOS_TRY(str("method", &a.method, true));
    } else if (a.kind == "security") {
        KOS_TRY(str("class", &a.cls, true));
        KOS_TRY(str("perm", &a.perm, true));
    }
    if (auto it = j.find("program"); it != j.end()) {
        if (!it->is_string())
            return make_error(EINVAL, "\"program\" is not a string");
        a.fields.emplace_back("program", quote(it->get<std::string>()));
    }
    if (auto it = j.find("fields"); it != j.end()) {
        if (!it->is_object())
            return make_error(EINVAL, "\"fields\" is not an object");
        for (auto& [k, v] : it->items()) {
            std::string text;
            if (v.is_string()) {
                std::string s = v.get<std::string>();
                // Addresses are strings in JSON but bare in policy syntax.
                security::Cidr c;
                std::string why;
                text = parse_address(s, false, &c, &why) ? s : quote(s);
            } else if (v.is_number_integer()) {
                text = v.dump();
            } else if (v.is_boolean()) {
                text = v.get<bool>() ? "1" : "0";
            } else if (v.is_object() && v.contains("hex")) {
                text = "hex:" + v["hex"].dump();
            } else {
                return make_error(EINVAL,
                                  "field \"" + k +
                                      "\" has a value that is not a string, integer or bytes");
            }
            a.fields.emplace_back(k, text);
        }
    }
    if (auto it = j.find("cached"); it != j.end() && it->is_boolean())
        a.cached = it->get<bool>();
    if (auto it = j.find("truncated"); it != j.end() && it->is_boolean())
        a.truncated = it->get<bool>();
    return a;
}

std::string audit2allow(const std::vector<AuditEntry>& entries) {
    struct Group {
        size_t count = 0;
        std::set<std::string> programs;
        std::string example;
    };
    std::map<std::string, Group> groups;   // rule text -> group (ordered: stable output)
    std::map<std::string, size_t> skipped; // reason -> count
    size_t denials = 0;
    for (const AuditEntry& a : entries) {
        if (a.allow)
            continue;
        ++denials;
        // Only a default deny is lifted by an allow rule; the others would
        // still deny (explicit denies win, lattices and limits come first).
        bool default_deny =
            a.rule == "default-deny" || (a.rule.empty() && a.rule_id == sec::kRuleDefaultDeny);
        if (!default_deny) {
            std::string why =
                a.rule == "malformed" ? "malformed messages (the client is broken, not the policy)"
                : a.rule == "unknown"
                    ? "unknown labels, interfaces or methods (not in the policy's IDL)"
                    : "rule " + a.rule + (a.rule_text.empty() ? "" : " (" + a.rule_text + ")") +
                          ": an allow cannot override it";
            ++skipped[why];
            continue;
        }
        std::string key = "allow " + a.kind + " " + a.source + " -> " + a.target;
        if (a.kind == "request" || a.kind == "response")
            key += " " + a.interface + "." + a.method;
        else if (a.kind == "security")
            key += " " + a.cls + "." + a.perm;
        Group& g = groups[key];
        ++g.count;
        std::string ex;
        for (auto& [k, v] : a.fields) {
            if (a.kind == "execute" && k == "program") {
                if (g.programs.size() < 32)
                    g.programs.insert(v);
                continue;
            }
            ex.append(" ").append(k).append("=").append(v);
        }
        if (g.example.empty())
            g.example = ex;
    }
    std::string out = "# audit2allow: " + std::to_string(denials) + " denials in " +
                      std::to_string(entries.size()) +
                      " records; review every rule before adding it to a policy\n";
    for (auto& [key, g] : groups) {
        out += "# " + std::to_string(g.count) + (g.count == 1 ? " denial" : " denials");
        if (!g.example.empty())
            out += ", e.g." + g.example;
        out += "\n" + key;
        if (!g.programs.empty()) {
            out += " where program in {";
            bool first = true;
            for (const std::string& p : g.programs) {
                out += (first ? "" : ", ") + p;
                first = false;
            }
            out += "}";
        }
        out += "\n";
    }
    for (auto& [why, n] : skipped)
        out += "# not suggested: " + std::to_string(n) + (n == 1 ? " denial" : " denials") +
               " by " + why + "\n";
    return out;
}

} // namespace kos::policy
