#include "kos/policy/explain.h"

#include <cstring>
#include <vector>

#include "kos/policy/audit_json.h"
#include "kos/policy/parser.h"
#include "kos/policy/request.h"
#include "kos/security/engine.h"

namespace kos::policy {

namespace sec = kos::security;

namespace {

// Bounds-checked reads of the loaded blob's sections (host side, for
// reporting; the engine does its own checks).
class View {
  public:
    View(const uint8_t* blob, uint64_t size, const sec::PolicyHeader* h)
        : m_blob(blob), m_size(size), m_h(h) {}

    template <class T> uint32_t count(sec::Section s) const {
        const sec::SectionRef& r = m_h->sections[static_cast<uint32_t>(s)];
        if (uint64_t{r.offset} + r.size > m_size)
            return 0;
        return static_cast<uint32_t>(r.size / sizeof(T));
    }
    template <class T> const T* at(sec::Section s, uint64_t i) const {
        if (i >= count<T>(s))
            return nullptr;
        const sec::SectionRef& r = m_h->sections[static_cast<uint32_t>(s)];
        return reinterpret_cast<const T*>(m_blob + r.offset + i * sizeof(T));
    }
    const uint8_t* bytes(sec::Section s, uint64_t offset, uint64_t n) const {
        const sec::SectionRef& r = m_h->sections[static_cast<uint32_t>(s)];
        if (uint64_t{r.offset} + r.size > m_size || offset + n > r.size)
            return nullptr;
        return m_blob + r.offset + offset;
    }

  private:
    const uint8_t* m_blob;
    uint64_t m_size;
    const sec::PolicyHeader* m_h;
};

std::string str(const sec::Engine& e, sec::StringRef s) {
    uint32_t n = 0;
    const char* p = e.string(s, &n);
    return p ? std::string(p, n) : std::string();
}

std::string state_name(const sec::Engine& e, uint32_t machine, uint32_t state) {
    const sec::Machine* m = e.machine(machine);
    const sec::StringRef* n =
        m && state < m->state_count ? e.name(m->names_first + state) : nullptr;
    return n ? str(e, *n) : "state #" + std::to_string(state);
}

bool dfa_accepts(const View& v, uint32_t index, const sec::FieldValue& f) {
    const sec::DfaHeader* h = v.at<sec::DfaHeader>(sec::Section::Dfas, index);
    if (!h || h->class_count == 0 || h->class_count > 256 || h->state_count < 2)
        return false;
    const uint8_t* classes = v.bytes(sec::Section::DfaData, h->classes, 256);
    const uint8_t* next =
        v.bytes(sec::Section::DfaData, h->next, uint64_t{h->state_count} * h->class_count * 2);
    const uint8_t* accepting = v.bytes(sec::Section::DfaData, h->accepting, h->state_count);
    if (!classes || !next || !accepting)
        return false;
    uint32_t s = 1;
    for (uint32_t i = 0; i < f.size && s != 0; ++i) {
        uint32_t c = classes[f.data[i]];
        if (c >= h->class_count)
            return false;
        uint64_t k = (uint64_t{s} * h->class_count + c) * 2;
        s = next[k] | uint32_t{next[k + 1]} << 8;
        if (s >= h->state_count)
            return false;
    }
    return accepting[s] != 0;
}

bool cidr_contains(const sec::Cidr& c, const sec::FieldValue& f) {
    if (f.size != 16 || !f.data || c.prefix > 128)
        return false;
    for (uint32_t bit = 0; bit < c.prefix; ++bit) {
        uint8_t m = 0x80 >> (bit % 8);
        if ((c.address[bit / 8] & m) != (f.data[bit / 8] & m))
            return false;
    }
    return true;
}

bool condition_holds(const View& v, const sec::Condition& c, const sec::Request& req,
                     const std::vector<sec::FieldValue>& values) {
    sec::FieldValue grant{};
    if (c.field == sec::kFieldGrantSize || c.field == sec::kFieldGrantWrite) {
        if (req.kind != sec::Kind::Request)
            return false;
        grant.integer = c.field == sec::kFieldGrantSize ? req.grant_size : req.grant_write;
    } else if (c.field >= values.size()) {
        return false;
    }
    const sec::FieldValue& f = c.field < values.size() ? values[c.field] : grant;
    auto arg = [&](uint64_t i, uint64_t* out) {
        const uint64_t* p = v.at<uint64_t>(sec::Section::Ints, uint64_t{c.arg_first} + i);
        if (p)
            *out = *p;
        return p != nullptr;
    };
    auto less = [&](uint64_t a, uint64_t b) {
        return c.is_signed ? int64_t(a) < int64_t(b) : a < b;
    };
    bool r = false;
    uint64_t x = f.integer, y = 0, z = 0;
    switch (static_cast<sec::CondOp>(c.op)) {
    case sec::CondOp::Eq:
        r = arg(0, &y) && x == y;
        break;
    case sec::CondOp::Lt:
        r = arg(0, &y) && less(x, y);
        break;
    case sec::CondOp::Le:
        r = arg(0, &y) && !less(y, x);
        break;
    case sec::CondOp::Gt:
        r = arg(0, &y) && less(y, x);
        break;
    case sec::CondOp::Ge:
        r = arg(0, &y) && !less(x, y);
        break;
    case sec::CondOp::InSet:
        for (uint32_t i = 0; i < c.arg_count && !r; ++i)
            r = arg(i, &y) && x == y;
        break;
    case sec::CondOp::InRanges:
        for (uint32_t i = 0; i < c.arg_count && !r; ++i)
            r = arg(uint64_t{2} * i, &y) && arg(uint64_t{2} * i + 1, &z) && !less(x, y) &&
                !less(z, x);
        break;
    case sec::CondOp::Match:
        r = dfa_accepts(v, c.arg_first, f);
        break;
    case sec::CondOp::InCidr:
        for (uint32_t i = 0; i < c.arg_count && !r; ++i) {
            const sec::Cidr* k = v.at<sec::Cidr>(sec::Section::Cidrs, uint64_t{c.arg_first} + i);
            r = k && cidr_contains(*k, f);
        }
        break;
    default:
        return false;
    }
    return c.negate ? !r : r;
}

const char* effect_name(uint8_t e) {
    switch (static_cast<sec::Effect>(e)) {
    case sec::Effect::Allow:
        return "allow";
    case sec::Effect::Deny:
        return "deny";
    case sec::Effect::Limit:
        return "limit";
    case sec::Effect::Transition:
        return "transition";
    default:
        return "built-in";
    }
}

std::string window_text(uint64_t ns) {
    if (ns % 3'600'000'000'000ull == 0)
        return std::to_string(ns / 3'600'000'000'000ull) + "h";
    if (ns % 60'000'000'000ull == 0)
        return std::to_string(ns / 60'000'000'000ull) + "m";
    if (ns % 1'000'000'000ull == 0)
        return std::to_string(ns / 1'000'000'000ull) + "s";
    return std::to_string(ns / 1'000'000ull) + "ms";
}

} // namespace

Result<std::string> explain_request(std::span<const uint8_t> blob, std::string_view text) {
    sec::Engine e;
    uint64_t state_size = sec::Engine::required_state_size(blob.data(), blob.size());
    std::vector<uint64_t> state((state_size + 7) / 8 + 1);
    if (sec::LoadError le = e.load(blob.data(), blob.size(), state.data(), state.size() * 8);
        le != sec::LoadError::None)
        return make_error(EINVAL,
                          std::string("the compiled policy does not load: ") + sec::describe(le));
    View v(blob.data(), blob.size(), e.header());

    std::vector<std::string> names = {"<request>"};
    Diagnostics d(&names);
    std::optional<ast::Step> step = parse_request_line(text, 0, d);
    if (!step)
        return std::unexpected(d.to_error());

    BuiltRequest br;
    sec::Request& r = br.request;
    const std::string& k = step->kind.text;
    r.kind = k == "execute"    ? sec::Kind::Execute
             : k == "request"  ? sec::Kind::Request
             : k == "response" ? sec::Kind::Response
                               : sec::Kind::Security;
    r.source =
        e.find_label(step->source.text.data(), static_cast<uint32_t>(step->source.text.size()));
    r.target =
        e.find_label(step->target.text.data(), static_cast<uint32_t>(step->target.text.size()));
    if (r.source == sec::kNone)
        d.error(step->source.loc,
                "found '" + step->source.text + "', expected a label of this policy");
    if (r.target == sec::kNone)
        d.error(step->target.loc,
                "found '" + step->target.text + "', expected a label of this policy");
    std::vector<FieldSpec> specs;
    std::string what;
    if (r.kind == sec::Kind::Execute) {
        specs.push_back(FieldSpec{"program", sec::FieldType::String, 4096});
        what = "execute";
    } else {
        std::string owner;
        for (size_t i = 0; i + 1 < step->what.path.size(); ++i)
            owner += (owner.empty() ? "" : ".") + step->what.path[i].text;
        const ast::Name& member = step->what.path.back();
        what = owner + "." + member.text;
        if (r.kind == sec::Kind::Security) {
            r.a = e.find_class(owner.data(), static_cast<uint32_t>(owner.size()));
            r.b = r.a == sec::kNone ? sec::kNone
                                    : e.find_perm(r.a, member.text.data(),
                                                  static_cast<uint32_t>(member.text.size()));
            if (r.a == sec::kNone)
                d.error(step->what.loc, "found '" + owner + "', expected a class of this policy");
            else if (r.b == sec::kNone)
                d.error(member.loc,
                        "found '" + member.text + "', expected a permission of class " + owner);
        } else {
            const sec::Interface* in = nullptr;
            for (uint32_t i = 0; i < v.count<sec::Interface>(sec::Section::Interfaces) && !in;
                 ++i) {
                const sec::Interface* x = v.at<sec::Interface>(sec::Section::Interfaces, i);
                if (x && str(e, x->name) == owner)
                    in = x;
            }
            const sec::Method* m = nullptr;
            for (uint32_t i = 0; in && i < in->method_count && !m; ++i) {
                const sec::Method* x =
                    v.at<sec::Method>(sec::Section::Methods, uint64_t{in->method_first} + i);
                if (x && str(e, x->name) == member.text)
                    m = x;
            }
            if (!in) {
                d.error(step->what.loc, "found '" + owner +
                                            "', expected an interface of this policy (one it does "
                                            "not know is denied as unknown)");
            } else if (!m) {
                d.error(member.loc, "found '" + member.text + "', expected a method of " + owner);
            } else {
                r.a = in->id;
                r.b = m->id;
                bool req = r.kind == sec::Kind::Request;
                uint32_t first = req ? m->request_field_first : m->response_field_first;
                uint32_t n = req ? m->request_field_count : m->response_field_count;
                for (uint32_t i = 0; i < n; ++i) {
                    const sec::Field* f = e.field(first + i);
                    if (f)
                        specs.push_back(FieldSpec{
                            str(e, f->name), static_cast<sec::FieldType>(f->type), f->max_size});
                }
                if (req && (m->grant == 1 || m->grant == 2))
                    add_grant_specs(specs, uint64_t{m->grant_pages} * 4096, m->grant == 2);
            }
        }
    }
    if (d.empty())
        fill_fields(*step, specs, what, br, d);
    if (!d.empty())
        return std::unexpected(d.to_error());
    r.now_ns = step->at_ns.value_or(0);

    // The rules of this key, evaluated before the engine decides (a
    // transition would change the state they are read in).
    std::string rules_report;
    bool cacheable = false;
    bool found = false;
    uint32_t slots = v.count<sec::IndexEntry>(sec::Section::Index);
    uint32_t ka = r.kind == sec::Kind::Execute ? 0 : r.a,
             kb = r.kind == sec::Kind::Execute ? 0 : r.b;
    if (slots && (slots & (slots - 1)) == 0) {
        uint64_t h = sec::index_hash(static_cast<uint32_t>(r.kind), r.source, r.target, ka, kb);
        for (uint32_t probe = 0; probe < slots; ++probe) {
            const sec::IndexEntry* ie =
                v.at<sec::IndexEntry>(sec::Section::Index, (h + probe) & (slots - 1));
            if (!ie || ie->kind == 0)
                break;
            if (ie->kind != static_cast<uint32_t>(r.kind) || ie->source != r.source ||
                ie->target != r.target || ie->a != ka || ie->b != kb)
                continue;
            found = true;
            cacheable = ie->flags & sec::kIndexStatic;
            for (uint32_t i = 0; i < ie->list_count; ++i) {
                const uint32_t* ii =
                    v.at<uint32_t>(sec::Section::IndexLists, uint64_t{ie->list_first} + i);
                const sec::Instance* inst =
                    ii ? v.at<sec::Instance>(sec::Section::Instances, *ii) : nullptr;
                const sec::Rule* rule = inst ? e.rule(inst->rule) : nullptr;
                if (!rule)
                    continue;
                std::string status;
                bool holds = true;
                for (uint32_t c = 0; c < inst->cond_count; ++c) {
                    const sec::Condition* cond = v.at<sec::Condition>(
                        sec::Section::Conditions, uint64_t{inst->cond_first} + c);
                    bool ok = cond && condition_holds(v, *cond, r, br.values);
                    std::string field =
                        !cond                                   ? "?"
                        : cond->field == sec::kFieldGrantSize  ? "grant.size"
                        : cond->field == sec::kFieldGrantWrite ? "grant.write"
                        : cond->field < specs.size()            ? specs[cond->field].name
                                                                : "?";
                    status += " " + field + ":" + (ok ? "yes" : "no");
                    holds &= ok;
                }
                if (rule->state_label != sec::kNone) {
                    const sec::Label* l = e.label(rule->state_label);
                    uint32_t m = l ? l->machine : sec::kNone;
                    uint32_t s = m != sec::kNone ? e.machine_state(m) : 32;
                    bool ok = s < 32 && (rule->state_mask >> s & 1);
                    status += " state:";
                    status += ok ? "yes" : "no";
                    if (l && s < 32)
                        status.append(" (")
                            .append(str(e, l->name))
                            .append(" is ")
                            .append(state_name(e, m, s))
                            .append(")");
                    holds &= ok;
                }
                std::string extra;
                if (rule->effect == static_cast<uint8_t>(sec::Effect::Limit))
                    extra = " [" + std::to_string(rule->limit_count) + " per " +
                            window_text(rule->limit_window_ns) + "]";
                if (rule->effect == static_cast<uint8_t>(sec::Effect::Transition)) {
                    const sec::Label* t = e.label(r.target);
                    uint32_t m = t ? t->machine : sec::kNone;
                    uint32_t s = m != sec::kNone ? e.machine_state(m) : 32;
                    bool from_ok = s < 32 && (rule->from_mask >> s & 1);
                    holds &= from_ok;
                    if (s < 32)
                        extra = " [" + state_name(e, m, s) + " -> " +
                                state_name(e, m, rule->to_state) +
                                (from_ok ? "" : ": not from this state") +
                                ", if the request is allowed]";
                }
                char line[32];
                std::snprintf(line, sizeof line, "  %-10s ", effect_name(rule->effect));
                rules_report += line + str(e, rule->where) + "  " +
                                (holds ? "applies" : "does not apply") +
                                (status.empty() ? "" : " (" + status.substr(1) + ")") + extra +
                                "\n      " + str(e, rule->text) + "\n";
            }
            break;
        }
    }

    sec::Verdict verdict = e.decide(r);
    sec::Verdict again = e.decide(r);

    std::string out;
    out += "verdict: " + std::string(verdict.allow ? "allow" : "deny") +
           (verdict.audit ? " (audited)" : "") + "\n";
    out += "rule:    " + rule_where(e, verdict.rule) + "\n";
    std::string rt = rule_text(e, verdict.rule);
    if (!rt.empty())
        out += "         " + rt + "\n";
    out +=
        std::string("cache:   ") +
        (cacheable ? "cacheable (no rule of this key tests fields, states, limits or transitions)"
                   : "not cacheable (decided afresh each time)") +
        "; this answer " + (verdict.cached ? "came" : "did not come") +
        " from the cache, a repeat " + (again.cached ? "does" : "does not") + "\n";
    if (!found) {
        out += "rules:   none name " + std::string(k) + " " + step->source.text + " -> " +
               step->target.text + (what == "execute" ? "" : " " + what) + "\n";
    } else {
        out += "rules for this key, in the order the engine checks them:\n" + rules_report;
    }
    return out;
}

} // namespace kos::policy
