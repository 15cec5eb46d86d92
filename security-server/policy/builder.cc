// PolicyModel -> compiled policy blob (builder.h, policy_format.h).
#include "kos/policy/builder.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <unordered_map>

namespace kos::policy {

namespace sec = kos::security;

namespace {

uint32_t align8(uint64_t x) { return static_cast<uint32_t>((x + 7) & ~uint64_t{7}); }

bool is_signed(idl::Type t) {
    return t == idl::Type::I8 || t == idl::Type::I16 || t == idl::Type::I32 || t == idl::Type::I64;
}
bool is_integer(idl::Type t) {
    return t != idl::Type::Ip && t != idl::Type::String && t != idl::Type::Bytes;
}
bool is_bytes(idl::Type t) { return t == idl::Type::String || t == idl::Type::Bytes; }

// Inclusive value range of an integer type, for checking condition values.
bool fits(idl::Type t, int64_t v) {
    switch (t) {
    case idl::Type::Bool: return v == 0 || v == 1;
    case idl::Type::U8: return v >= 0 && v <= 0xff;
    case idl::Type::U16: return v >= 0 && v <= 0xffff;
    case idl::Type::U32:
    case idl::Type::Handle: return v >= 0 && v <= 0xffffffffll;
    case idl::Type::I8: return v >= -128 && v <= 127;
    case idl::Type::I16: return v >= -32768 && v <= 32767;
    case idl::Type::I32: return v >= INT32_MIN && v <= INT32_MAX;
    default: return true; // U64 values arrive as their two's-complement bits; I64 any
    }
}

// Appends one section's bytes, tracking where each section starts.
class Blob {
public:
    template <class T> uint32_t add(sec::Section s, const std::vector<T>& items) {
        return add_bytes(s, reinterpret_cast<const uint8_t*>(items.data()), items.size() * sizeof(T));
    }
    uint32_t add_bytes(sec::Section s, const uint8_t* p, uint64_t n) {
        sections_[static_cast<uint32_t>(s)] = std::vector<uint8_t>(p, p + n);
        return 0;
    }
    std::array<std::vector<uint8_t>, sec::kSectionCount> sections_;
};

class Strings {
public:
    sec::StringRef add(const std::string& s) {
        auto it = seen_.find(s);
        if (it != seen_.end())
            return it->second;
        sec::StringRef r{static_cast<uint32_t>(bytes_.size()), static_cast<uint32_t>(s.size())};
        bytes_.insert(bytes_.end(), s.begin(), s.end());
        seen_.emplace(s, r);
        return r;
    }
    std::vector<uint8_t> bytes_;

private:
    std::unordered_map<std::string, sec::StringRef> seen_;
};

struct KeyHash {
    size_t operator()(const std::array<uint32_t, 5>& k) const {
        return sec::index_hash(k[0], k[1], k[2], k[3], k[4]);
    }
};

int effect_order(Effect e) {
    switch (e) {
    case Effect::Deny: return 0;
    case Effect::Limit: return 1;
    case Effect::Allow: return 2;
    default: return 3;
    }
}

class Builder {
public:
    Builder(const PolicyModel& m, const BuildLimits& l) : m_(m), limits_(l) {}

    Result<std::vector<uint8_t>> build();

private:
    Error rule_error(const RuleDef& r, const std::string& what) {
        return Error{EINVAL, (r.where.empty() ? std::string("rule") : r.where) + ": " + what};
    }
    Result<void> labels();
    Result<void> interfaces();
    Result<void> classes();
    Result<void> machines();
    Result<void> rules();
    Result<uint32_t> dfa(const Dfa& d);
    Result<void> condition(const RuleDef& r, const ConditionDef& c, const std::vector<idl::Field>& fields,
                           const idl::Method* method);
    Result<void> index();

    const PolicyModel& m_;
    const BuildLimits& limits_;
    Strings strings_;
    std::vector<sec::Label> labels_;
    std::vector<sec::Interface> interfaces_;
    std::vector<sec::Method> methods_;
    std::vector<sec::Field> fields_;
    std::vector<sec::Class> classes_;
    std::vector<sec::Perm> perms_;
    std::vector<sec::Rule> rules_;
    std::vector<sec::Instance> instances_;
    std::vector<sec::Condition> conditions_;
    bool uses_grants_ = false; // a condition on grant.size or grant.write: format version 2
    std::vector<uint64_t> ints_;
    std::vector<sec::Cidr> cidrs_;
    std::vector<sec::DfaHeader> dfas_;
    std::vector<uint8_t> dfa_data_;
    std::map<std::string, uint32_t> dfa_by_pattern_;
    std::vector<sec::IndexEntry> index_;
    std::vector<uint32_t> index_lists_;
    std::vector<sec::Machine> machines_;
    std::vector<sec::StringRef> names_;
    uint32_t limit_count_ = 0;
    // key -> instance indices
    std::unordered_map<std::array<uint32_t, 5>, std::vector<uint32_t>, KeyHash> keys_;
    uint64_t key_refs_ = 0;
};

Result<void> Builder::labels() {
    if (m_.labels.size() >= (1u << 24))
        return make_error(E2BIG, "too many labels (" + std::to_string(m_.labels.size()) + ")");
    if (m_.sensitivities.size() > 256 || m_.integrity_levels.size() > 256)
        return make_error(E2BIG, "at most 256 sensitivity and 256 integrity levels");
    if (m_.categories.size() > 64)
        return make_error(E2BIG, "at most 64 categories (" + std::to_string(m_.categories.size()) + " declared)");
    uint64_t cat_mask = m_.categories.size() == 64 ? ~uint64_t{0} : (uint64_t{1} << m_.categories.size()) - 1;
    for (const LabelDef& l : m_.labels) {
        if ((!m_.sensitivities.empty() && l.sensitivity >= m_.sensitivities.size()) ||
            (m_.sensitivities.empty() && l.sensitivity != 0) ||
            (!m_.integrity_levels.empty() && l.integrity >= m_.integrity_levels.size()) ||
            (m_.integrity_levels.empty() && l.integrity != 0) || (l.categories & ~cat_mask))
            return make_error(EINVAL, l.where + ": label " + l.name + " has a level outside the declared lattices");
        sec::Label out{};
        out.name = strings_.add(l.name);
        out.kind = static_cast<uint8_t>(l.kind);
        out.flags = l.trusted ? sec::kLabelTrusted : 0;
        out.sensitivity = l.sensitivity;
        out.integrity = l.integrity;
        out.machine = sec::kNone;
        out.categories = l.categories;
        labels_.push_back(out);
    }
    for (const std::string& n : m_.sensitivities)
        names_.push_back(strings_.add(n));
    for (const std::string& n : m_.categories)
        names_.push_back(strings_.add(n));
    for (const std::string& n : m_.integrity_levels)
        names_.push_back(strings_.add(n));
    return {};
}

Result<void> Builder::interfaces() {
    std::vector<const idl::Interface*> sorted;
    for (const idl::Interface& in : m_.idl.interfaces)
        sorted.push_back(&in);
    std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->id < b->id; });
    for (size_t i = 1; i < sorted.size(); ++i)
        if (sorted[i]->id == sorted[i - 1]->id)
            return make_error(EINVAL, "interfaces " + sorted[i - 1]->name + " and " + sorted[i]->name +
                                          " share id " + std::to_string(sorted[i]->id));
    auto add_fields = [&](const std::vector<idl::Field>& fs) {
        for (const idl::Field& f : fs) {
            sec::Field out{};
            out.name = strings_.add(f.name);
            out.type = static_cast<uint8_t>(f.type);
            out.offset = f.offset;
            out.max_size = f.max_size;
            fields_.push_back(out);
        }
    };
    for (const idl::Interface* in : sorted) {
        sec::Interface out{};
        out.id = in->id;
        out.name = strings_.add(in->name);
        out.method_first = static_cast<uint32_t>(methods_.size());
        out.method_count = static_cast<uint32_t>(in->methods.size());
        interfaces_.push_back(out);
        std::vector<const idl::Method*> ms;
        for (const idl::Method& mt : in->methods)
            ms.push_back(&mt);
        std::sort(ms.begin(), ms.end(), [](auto* a, auto* b) { return a->id < b->id; });
        for (size_t i = 1; i < ms.size(); ++i)
            if (ms[i]->id == ms[i - 1]->id)
                return make_error(EINVAL, in->name + ": methods " + ms[i - 1]->name + " and " + ms[i]->name +
                                              " share id " + std::to_string(ms[i]->id));
        for (const idl::Method* mt : ms) {
            sec::Method o{};
            o.id = mt->id;
            o.name = strings_.add(mt->name);
            o.flow = static_cast<uint8_t>(mt->flow);
            o.grant = static_cast<uint8_t>(mt->grant);
            o.grant_pages = static_cast<uint16_t>(mt->grant_max / 4096); // at most 16384
            o.request_field_first = static_cast<uint32_t>(fields_.size());
            o.request_field_count = static_cast<uint32_t>(mt->request.size());
            o.request_fixed_size = mt->request_fixed_size;
            add_fields(mt->request);
            o.response_field_first = static_cast<uint32_t>(fields_.size());
            o.response_field_count = static_cast<uint32_t>(mt->response.size());
            o.response_fixed_size = mt->response_fixed_size;
            add_fields(mt->response);
            methods_.push_back(o);
        }
    }
    return {};
}

Result<void> Builder::classes() {
    for (const ClassDef& c : m_.classes) {
        sec::Class out{};
        out.name = strings_.add(c.name);
        out.perm_first = static_cast<uint32_t>(perms_.size());
        out.perm_count = static_cast<uint32_t>(c.perms.size());
        classes_.push_back(out);
        for (const PermDef& p : c.perms) {
            sec::Perm po{};
            po.name = strings_.add(p.name);
            po.flow = static_cast<uint8_t>(p.flow);
            perms_.push_back(po);
        }
    }
    return {};
}

Result<void> Builder::machines() {
    for (const MachineDef& md : m_.machines) {
        if (md.label >= labels_.size())
            return make_error(EINVAL, "a machine names label #" + std::to_string(md.label) + ", which does not exist");
        if (md.states.empty() || md.states.size() > 32 || md.initial >= md.states.size())
            return make_error(EINVAL, "machine of " + m_.labels[md.label].name + ": 1 to 32 states and a valid initial state");
        if (labels_[md.label].machine != sec::kNone)
            return make_error(EINVAL, "label " + m_.labels[md.label].name + " has two machines");
        labels_[md.label].machine = static_cast<uint32_t>(machines_.size());
        sec::Machine out{};
        out.label = md.label;
        out.state_count = static_cast<uint32_t>(md.states.size());
        out.initial = md.initial;
        out.names_first = static_cast<uint32_t>(names_.size());
        for (const std::string& s : md.states)
            names_.push_back(strings_.add(s));
        machines_.push_back(out);
    }
    return {};
}

Result<uint32_t> Builder::dfa(const Dfa& d) {
    if (d.class_count == 0 || d.class_count > 256 || d.state_count < 2 ||
        d.next.size() != size_t{d.state_count} * d.class_count || d.accepting.size() != d.state_count)
        return make_error(EINVAL, "internal: inconsistent DFA");
    auto pad8 = [&] { dfa_data_.resize(align8(dfa_data_.size())); };
    sec::DfaHeader h{};
    h.class_count = d.class_count;
    h.state_count = d.state_count;
    pad8();
    h.classes = static_cast<uint32_t>(dfa_data_.size());
    dfa_data_.insert(dfa_data_.end(), d.byte_class.begin(), d.byte_class.end());
    pad8();
    h.next = static_cast<uint32_t>(dfa_data_.size());
    for (uint16_t n : d.next) {
        dfa_data_.push_back(static_cast<uint8_t>(n));
        dfa_data_.push_back(static_cast<uint8_t>(n >> 8));
    }
    h.accepting = static_cast<uint32_t>(dfa_data_.size());
    dfa_data_.insert(dfa_data_.end(), d.accepting.begin(), d.accepting.end());
    if (dfa_data_.size() > limits_.max_blob_bytes)
        return make_error(E2BIG, "patterns take more than " + std::to_string(limits_.max_blob_bytes) + " bytes");
    dfas_.push_back(h);
    return static_cast<uint32_t>(dfas_.size() - 1);
}

Result<void> Builder::condition(const RuleDef& r, const ConditionDef& c, const std::vector<idl::Field>& fields,
                               const idl::Method* method) {
    using Op = ConditionDef::Op;
    std::string where = c.where.empty() ? r.where : c.where;
    auto err = [&](const std::string& what) { return make_error(EINVAL, where + ": " + what); };
    uint32_t index = 0;
    idl::Type t = idl::Type::U64;
    if (c.field == kGrantSizeField || c.field == kGrantWriteField) {
        // The grant lent with a request: only where the method declares one.
        if (r.kind != Kind::Request || !method || method->grant == idl::Grant::None)
            return err("'" + c.field + "' on a method that declares no grant");
        bool size = c.field == kGrantSizeField;
        index = size ? sec::kFieldGrantSize : sec::kFieldGrantWrite;
        t = size ? idl::Type::U64 : idl::Type::Bool;
        if (size)
            for (int64_t v : c.ints)
                if (v < 0 || static_cast<uint64_t>(v) > sec::kMaxGrantSize)
                    return err("grant size " + std::to_string(v) + " outside 0.." +
                               std::to_string(sec::kMaxGrantSize));
        uses_grants_ = true;
    } else {
        auto it = std::find_if(fields.begin(), fields.end(), [&](const idl::Field& f) { return f.name == c.field; });
        if (it == fields.end())
            return err("no field '" + c.field + "' in every method the rule names");
        index = static_cast<uint32_t>(it - fields.begin());
        t = it->type;
    }
    sec::Condition out{};
    out.field = index;
    out.is_signed = is_signed(t);
    auto need_integer = [&]() -> Result<void> {
        if (!is_integer(t))
            return err("field '" + c.field + "' is " + std::string(idl::type_name(t)) + ", not an integer");
        for (int64_t v : c.ints)
            if (!fits(t, v))
                return err("value " + std::to_string(v) + " does not fit field '" + c.field + "' (" +
                           std::string(idl::type_name(t)) + ")");
        return {};
    };
    auto pattern = [&](const std::string& key, Result<Dfa> (*compile)(std::string_view, const DfaLimits&),
                       const std::string& p) -> Result<uint32_t> {
        auto found = dfa_by_pattern_.find(key);
        if (found != dfa_by_pattern_.end())
            return found->second;
        Result<Dfa> d = compile(p, limits_.dfa);
        if (!d)
            return err(d.error().message);
        uint32_t i = KOS_TRY(dfa(*d));
        dfa_by_pattern_.emplace(key, i);
        return i;
    };
    switch (c.op) {
    case Op::Eq: case Op::Ne: case Op::Lt: case Op::Le: case Op::Gt: case Op::Ge: {
        KOS_TRY(need_integer());
        if (c.ints.size() != 1)
            return err("a comparison takes one value");
        static constexpr sec::CondOp ops[] = {sec::CondOp::Eq, sec::CondOp::Eq, sec::CondOp::Lt,
                                              sec::CondOp::Le, sec::CondOp::Gt, sec::CondOp::Ge};
        out.op = static_cast<uint8_t>(ops[static_cast<int>(c.op)]);
        out.negate = c.op == Op::Ne;
        out.arg_first = static_cast<uint32_t>(ints_.size());
        out.arg_count = 1;
        ints_.push_back(static_cast<uint64_t>(c.ints[0]));
        break;
    }
    case Op::InSet: case Op::NotInSet: {
        KOS_TRY(need_integer());
        std::vector<uint64_t> v(c.ints.begin(), c.ints.end());
        if (out.is_signed)
            std::sort(v.begin(), v.end(), [](uint64_t a, uint64_t b) { return int64_t(a) < int64_t(b); });
        else
            std::sort(v.begin(), v.end());
        v.erase(std::unique(v.begin(), v.end()), v.end());
        out.op = static_cast<uint8_t>(sec::CondOp::InSet);
        out.negate = c.op == Op::NotInSet;
        out.arg_first = static_cast<uint32_t>(ints_.size());
        out.arg_count = static_cast<uint32_t>(v.size());
        ints_.insert(ints_.end(), v.begin(), v.end());
        break;
    }
    case Op::InRanges: case Op::NotInRanges: {
        KOS_TRY(need_integer());
        if (c.ints.empty() || c.ints.size() % 2)
            return err("ranges come as lo..hi pairs");
        for (size_t i = 0; i < c.ints.size(); i += 2)
            if (out.is_signed ? c.ints[i] > c.ints[i + 1] : uint64_t(c.ints[i]) > uint64_t(c.ints[i + 1]))
                return err("empty range " + std::to_string(c.ints[i]) + ".." + std::to_string(c.ints[i + 1]));
        out.op = static_cast<uint8_t>(sec::CondOp::InRanges);
        out.negate = c.op == Op::NotInRanges;
        out.arg_first = static_cast<uint32_t>(ints_.size());
        out.arg_count = static_cast<uint32_t>(c.ints.size() / 2);
        for (int64_t v : c.ints)
            ints_.push_back(static_cast<uint64_t>(v));
        break;
    }
    case Op::Regex: case Op::NotRegex: case Op::Glob: case Op::NotGlob: {
        if (!is_bytes(t))
            return err("field '" + c.field + "' is " + std::string(idl::type_name(t)) + "; patterns match strings and bytes");
        if (c.strings.size() != 1)
            return err("a pattern condition takes one pattern");
        bool regex = c.op == Op::Regex || c.op == Op::NotRegex;
        out.op = static_cast<uint8_t>(sec::CondOp::Match);
        out.negate = c.op == Op::NotRegex || c.op == Op::NotGlob;
        out.arg_first = KOS_TRY(pattern((regex ? "r:" : "g:") + c.strings[0], regex ? compile_regex : compile_glob,
                                        c.strings[0]));
        out.arg_count = 1;
        break;
    }
    case Op::BytesEq: case Op::BytesNe: case Op::BytesInSet: case Op::BytesNotInSet: {
        if (!is_bytes(t))
            return err("field '" + c.field + "' is " + std::string(idl::type_name(t)) + ", not a string");
        if (c.strings.empty())
            return err("an empty set of strings");
        std::vector<std::string> values = c.strings;
        std::sort(values.begin(), values.end());
        values.erase(std::unique(values.begin(), values.end()), values.end());
        std::string key = "l:";
        for (const std::string& v : values)
            key += std::to_string(v.size()) + ":" + v;
        auto found = dfa_by_pattern_.find(key);
        uint32_t idx;
        if (found != dfa_by_pattern_.end()) {
            idx = found->second;
        } else {
            Result<Dfa> d = compile_literals(values, limits_.dfa);
            if (!d)
                return err(d.error().message);
            idx = KOS_TRY(dfa(*d));
            dfa_by_pattern_.emplace(key, idx);
        }
        out.op = static_cast<uint8_t>(sec::CondOp::Match);
        out.negate = c.op == Op::BytesNe || c.op == Op::BytesNotInSet;
        out.arg_first = idx;
        out.arg_count = 1;
        break;
    }
    case Op::InCidr: case Op::NotInCidr:
        if (t != idl::Type::Ip)
            return err("field '" + c.field + "' is " + std::string(idl::type_name(t)) + ", not an ip");
        if (c.cidrs.empty())
            return err("an empty set of addresses");
        for (const sec::Cidr& k : c.cidrs)
            if (k.prefix > 128)
                return err("prefix length above 128");
        out.op = static_cast<uint8_t>(sec::CondOp::InCidr);
        out.negate = c.op == Op::NotInCidr;
        out.arg_first = static_cast<uint32_t>(cidrs_.size());
        out.arg_count = static_cast<uint32_t>(c.cidrs.size());
        cidrs_.insert(cidrs_.end(), c.cidrs.begin(), c.cidrs.end());
        break;
    }
    conditions_.push_back(out);
    return {};
}

Result<void> Builder::rules() {
    auto builtin = [&](const std::string& text, const std::string& where) {
        sec::Rule r{};
        r.effect = static_cast<uint8_t>(Effect::Builtin);
        r.state_label = sec::kNone;
        r.where = strings_.add(where);
        r.text = strings_.add(text);
        rules_.push_back(r);
    };
    builtin("default deny: no rule allows this", "default-deny");
    builtin("the message does not fit its method's layout", "malformed");
    builtin("unknown label, interface, method, class or permission", "unknown");
    builtin("no read up, no write down (sensitivity " +
                (m_.sensitivities.empty() ? std::string("off") : m_.sensitivities.front() + " < ... < " + m_.sensitivities.back()) + ")",
            m_.sensitivity_where.empty() ? "confidentiality" : m_.sensitivity_where);
    builtin("no write up, no read down (integrity " +
                (m_.integrity_levels.empty() ? std::string("off") : m_.integrity_levels.front() + " < ... < " + m_.integrity_levels.back()) + ")",
            m_.integrity_where.empty() ? "integrity" : m_.integrity_where);

    for (size_t ri = 0; ri < m_.rules.size(); ++ri) {
        const RuleDef& r = m_.rules[ri];
        uint32_t id = static_cast<uint32_t>(rules_.size());
        sec::Rule out{};
        out.effect = static_cast<uint8_t>(r.effect);
        out.kind = static_cast<uint8_t>(r.kind);
        out.audit = static_cast<uint8_t>(r.audit);
        out.state_label = sec::kNone;
        out.from_mask = 0xffffffffu;
        out.limit_slot = sec::kNone;
        out.where = strings_.add(r.where);
        out.text = strings_.add(r.text);
        if (r.effect == Effect::Builtin)
            return std::unexpected(rule_error(r, "built-in effect in a user rule"));
        if (r.sources.empty() || r.targets.empty())
            return std::unexpected(rule_error(r, "the rule names no source or no target label"));
        for (uint32_t l : r.sources)
            if (l >= labels_.size())
                return std::unexpected(rule_error(r, "source label #" + std::to_string(l) + " does not exist"));
        for (uint32_t l : r.targets)
            if (l >= labels_.size())
                return std::unexpected(rule_error(r, "target label #" + std::to_string(l) + " does not exist"));
        if (r.when) {
            uint32_t l = r.when->first;
            if (l >= labels_.size() || labels_[l].machine == sec::kNone)
                return std::unexpected(rule_error(r, "`when` names a label without a machine"));
            uint32_t states = machines_[labels_[l].machine].state_count;
            out.state_label = l;
            for (uint32_t s : r.when->second) {
                if (s >= states)
                    return std::unexpected(rule_error(r, "`when` names state #" + std::to_string(s) + " of a machine with " +
                                                             std::to_string(states)));
                out.state_mask |= 1u << s;
            }
        }
        if (r.effect == Effect::Transition) {
            if (r.kind != Kind::Request && r.kind != Kind::Response && r.kind != Kind::Security)
                return std::unexpected(rule_error(r, "transitions apply to requests, responses and security queries"));
            for (uint32_t l : r.targets) {
                if (labels_[l].machine == sec::kNone)
                    return std::unexpected(rule_error(r, "target " + m_.labels[l].name + " has no machine"));
                uint32_t states = machines_[labels_[l].machine].state_count;
                if (r.to_state >= states)
                    return std::unexpected(rule_error(r, "no state #" + std::to_string(r.to_state) + " in the machine of " +
                                                             m_.labels[l].name));
                for (uint32_t s : r.from_states)
                    if (s >= states)
                        return std::unexpected(rule_error(r, "no state #" + std::to_string(s) + " in the machine of " +
                                                                 m_.labels[l].name));
            }
            out.to_state = r.to_state;
            if (!r.from_states.empty()) {
                out.from_mask = 0;
                for (uint32_t s : r.from_states)
                    out.from_mask |= 1u << s;
            }
        }
        if (r.effect == Effect::Limit) {
            constexpr uint64_t kHour = 3'600'000'000'000ull;
            if (r.limit_count < 1 || r.limit_count > 1'000'000 || r.limit_window_ns < 1'000'000 ||
                r.limit_window_ns > kHour)
                return std::unexpected(rule_error(r, "a limit is 1 to 1000000 requests per 1ms to 1h"));
            out.limit_slot = limit_count_++;
            out.limit_count = r.limit_count;
            out.limit_window_ns = r.limit_window_ns;
        }
        rules_.push_back(out);

        // One instance per method (or permission), with its conditions.
        std::vector<OpRef> ops = r.ops;
        if (r.kind == Kind::Execute) {
            if (!ops.empty())
                return std::unexpected(rule_error(r, "execute rules name no method"));
            ops.push_back({0, 0});
        } else if (ops.empty()) {
            return std::unexpected(rule_error(r, "the rule names no method or permission"));
        }
        for (const OpRef& op : ops) {
            const std::vector<idl::Field>* fields = nullptr;
            const idl::Method* method = nullptr;
            static const std::vector<idl::Field> kNoFields;
            if (r.kind == Kind::Execute) {
                fields = &execute_method().request;
            } else if (r.kind == Kind::Security) {
                if (op.a >= classes_.size() || op.b >= classes_[op.a].perm_count)
                    return std::unexpected(rule_error(r, "no such class permission"));
                fields = &kNoFields;
            } else {
                const idl::Interface* in = m_.idl.find(op.a);
                const idl::Method* mt = in ? in->find_method(op.b) : nullptr;
                if (!mt)
                    return std::unexpected(rule_error(r, "interface " + std::to_string(op.a) + " method " +
                                                             std::to_string(op.b) + " is not in the IDL"));
                fields = r.kind == Kind::Request ? &mt->request : &mt->response;
                method = mt;
            }
            sec::Instance inst{id, static_cast<uint32_t>(conditions_.size()), 0};
            for (const ConditionDef& c : r.conditions)
                KOS_TRY(condition(r, c, *fields, method));
            inst.cond_count = static_cast<uint32_t>(conditions_.size() - inst.cond_first);
            uint32_t inst_index = static_cast<uint32_t>(instances_.size());
            instances_.push_back(inst);
            uint64_t expansion = uint64_t{r.sources.size()} * r.targets.size();
            key_refs_ += expansion;
            if (key_refs_ > limits_.max_index_keys)
                return std::unexpected(rule_error(
                    r, "the policy expands to more than " + std::to_string(limits_.max_index_keys) +
                           " (kind, source, target, method) keys; narrow this rule's label sets"));
            for (uint32_t s : r.sources)
                for (uint32_t t : r.targets)
                    keys_[{static_cast<uint32_t>(r.kind), s, t, op.a, op.b}].push_back(inst_index);
        }
    }
    return {};
}

Result<void> Builder::index() {
    uint64_t slots = 0;
    if (!keys_.empty()) {
        slots = 1;
        while (slots < keys_.size() * 2)
            slots <<= 1;
    }
    index_.assign(slots, sec::IndexEntry{});
    // Deterministic output: lay keys out in sorted order.
    std::vector<const std::pair<const std::array<uint32_t, 5>, std::vector<uint32_t>>*> ordered;
    ordered.reserve(keys_.size());
    for (const auto& kv : keys_)
        ordered.push_back(&kv);
    std::sort(ordered.begin(), ordered.end(), [](auto* a, auto* b) { return a->first < b->first; });
    for (const auto* kv : ordered) {
        std::vector<uint32_t> list = kv->second;
        std::sort(list.begin(), list.end(), [&](uint32_t x, uint32_t y) {
            const sec::Rule& a = rules_[instances_[x].rule];
            const sec::Rule& b = rules_[instances_[y].rule];
            int ea = effect_order(static_cast<Effect>(a.effect)), eb = effect_order(static_cast<Effect>(b.effect));
            if (ea != eb)
                return ea < eb;
            return instances_[x].rule < instances_[y].rule;
        });
        bool is_static = true;
        bool audit_allow = false;
        for (uint32_t i : list) {
            const sec::Rule& rl = rules_[instances_[i].rule];
            Effect e = static_cast<Effect>(rl.effect);
            audit_allow |= e == Effect::Allow && rl.audit == static_cast<uint8_t>(sec::Audit::Always);
            if (instances_[i].cond_count || rl.state_label != sec::kNone || e == Effect::Limit ||
                e == Effect::Transition)
                is_static = false;
        }
        const auto& k = kv->first;
        sec::IndexEntry e{k[0], k[1], k[2], k[3], k[4], static_cast<uint32_t>(index_lists_.size()),
                          static_cast<uint32_t>(list.size()),
                          (is_static ? sec::kIndexStatic : 0u) | (audit_allow ? sec::kIndexAuditAllow : 0u)};
        index_lists_.insert(index_lists_.end(), list.begin(), list.end());
        uint64_t h = sec::index_hash(k[0], k[1], k[2], k[3], k[4]);
        for (uint64_t p = 0;; ++p) {
            sec::IndexEntry& slot = index_[(h + p) & (slots - 1)];
            if (slot.kind == 0) {
                slot = e;
                break;
            }
        }
    }
    return {};
}

Result<std::vector<uint8_t>> Builder::build() {
    KOS_TRY(labels());
    KOS_TRY(interfaces());
    KOS_TRY(classes());
    KOS_TRY(machines());
    KOS_TRY(rules());
    KOS_TRY(index());

    Blob b;
    b.add(sec::Section::Labels, labels_);
    b.add(sec::Section::Interfaces, interfaces_);
    b.add(sec::Section::Methods, methods_);
    b.add(sec::Section::Fields, fields_);
    b.add(sec::Section::Classes, classes_);
    b.add(sec::Section::Perms, perms_);
    b.add(sec::Section::Rules, rules_);
    b.add(sec::Section::Instances, instances_);
    b.add(sec::Section::Conditions, conditions_);
    b.add(sec::Section::Ints, ints_);
    b.add(sec::Section::Cidrs, cidrs_);
    b.add(sec::Section::Dfas, dfas_);
    b.add(sec::Section::DfaData, dfa_data_);
    b.add(sec::Section::Index, index_);
    b.add(sec::Section::IndexLists, index_lists_);
    b.add(sec::Section::Machines, machines_);
    b.add(sec::Section::Names, names_);
    b.add(sec::Section::Strings, strings_.bytes_);

    sec::PolicyHeader h{};
    h.magic = sec::kPolicyMagic;
    // Only a policy with grant conditions needs an engine that knows them.
    h.version = uses_grants_ ? sec::kPolicyVersion : sec::kPolicyVersionNoGrants;
    h.header_size = sizeof(sec::PolicyHeader);
    h.limit_count = limit_count_;
    h.machine_count = static_cast<uint32_t>(machines_.size());
    h.sensitivity_count = static_cast<uint32_t>(m_.sensitivities.size());
    h.category_count = static_cast<uint32_t>(m_.categories.size());
    h.integrity_count = static_cast<uint32_t>(m_.integrity_levels.size());
    h.rule_count = static_cast<uint32_t>(rules_.size());
    h.state_size = align8(uint64_t{limit_count_} * 16) + align8(uint64_t{h.machine_count} * 4);
    // A verdict cache with room for every cacheable key four times over
    // (two-way sets), 4096 to 65536 entries.
    uint64_t cacheable = 0;
    for (const sec::IndexEntry& e : index_)
        cacheable += e.kind != 0 && (e.flags & sec::kIndexStatic);
    h.cache_entries = 4096;
    while (h.cache_entries < cacheable * 4 && h.cache_entries < 65536)
        h.cache_entries <<= 1;
    uint64_t offset = align8(sizeof h);
    for (uint32_t s = 0; s < sec::kSectionCount; ++s) {
        uint64_t size = b.sections_[s].size();
        if (offset + size > limits_.max_blob_bytes || offset + size > 0xffffffffull)
            return make_error(E2BIG, "the compiled policy would exceed " + std::to_string(limits_.max_blob_bytes) +
                                         " bytes");
        h.sections[s] = {static_cast<uint32_t>(offset), static_cast<uint32_t>(size)};
        offset = align8(offset + size);
    }
    h.total_size = offset;
    std::vector<uint8_t> out(offset, 0);
    for (uint32_t s = 0; s < sec::kSectionCount; ++s)
        if (!b.sections_[s].empty())
            std::memcpy(out.data() + h.sections[s].offset, b.sections_[s].data(), b.sections_[s].size());
    std::memcpy(out.data(), &h, sizeof h);
    uint64_t sum = sec::checksum64(out.data(), out.size(), offsetof(sec::PolicyHeader, checksum));
    std::memcpy(out.data() + offsetof(sec::PolicyHeader, checksum), &sum, sizeof sum);
    return out;
}

} // namespace

Result<std::vector<uint8_t>> build_policy(const PolicyModel& model, const BuildLimits& limits) {
    return Builder(model, limits).build();
}

const idl::Method& execute_method() {
    static const idl::Method m = [] {
        idl::Method x;
        x.name = "execute";
        x.flow = idl::Flow::Write;
        idl::Field f;
        f.name = "program";
        f.type = idl::Type::String;
        f.max_size = 4096;
        x.request.push_back(f);
        x.request_fixed_size = 8;
        return x;
    }();
    return m;
}

} // namespace kos::policy
