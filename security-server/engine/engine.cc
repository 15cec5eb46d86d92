// The verdict engine (engine.h). Freestanding: no library calls beyond what
// the compiler emits for plain loads and stores.
#include "kos/security/engine.h"

namespace kos::security {

namespace {

constexpr u32 kMinCacheEntries = 256; // power of two; two-way sets
constexpr u32 kMaxCacheEntries = 1u << 20;
constexpr u32 kMaxFields = 64;      // per method, in decide_message
constexpr u32 kMaxCommits = 16;     // limits/transitions applied per request
constexpr u32 kExecuteProgramMax = 4096;

template <class T> T load_le(const u8* p) {
    T v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}

u64 rotl(u64 x, int r) { return (x << r) | (x >> (64 - r)); }

u64 align8(u64 x) { return (x + 7) & ~u64{7}; }

// A grant only comes with a request, within the ABI's bound; a writable
// grant has a size.
bool grant_valid(const Request& r) {
    if (r.grant_size == 0)
        return !r.grant_write;
    return r.kind == Kind::Request && r.grant_size <= kMaxGrantSize;
}

bool bytes_equal(const char* a, u32 an, const char* b, u32 bn) {
    if (an != bn)
        return false;
    for (u32 i = 0; i < an; ++i)
        if (a[i] != b[i])
            return false;
    return true;
}

// The mutable state after the cache: limit buckets, then machine states.
struct Bucket {
    u64 tokens; // scaled by the window: one request costs window_ns
    u64 last_ns;
};

} // namespace

// Two-way sets of 32-byte entries: a set is one 64-byte cache line.
struct Engine::CacheEntry {
    u64 k0; // source << 32 | target
    u64 k1; // a << 32 | b
    u32 tag; // generation << 3 | kind; 0: empty
    u32 verdict; // bit 31 allow, bit 30 audit, low 30 bits rule
    u64 reserved;
};

u64 checksum64(const u8* data, u64 size, u64 checksum_offset) {
    u64 h = 0x6a09e667f3bcc908ull ^ size;
    u64 i = 0;
    for (; i + 8 <= size; i += 8) {
        u64 w = i == checksum_offset ? 0 : load_le<u64>(data + i);
        h = rotl(h ^ (w * 0x9e3779b97f4a7c15ull), 29) * 0xbf58476d1ce4e5b9ull;
    }
    u64 tail = 0;
    for (u64 j = 0; i + j < size; ++j)
        tail |= static_cast<u64>(data[i + j]) << (8 * j);
    h = rotl(h ^ (tail * 0x9e3779b97f4a7c15ull), 29) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

const char* describe(LoadError e) {
    switch (e) {
    case LoadError::None: return "loaded";
    case LoadError::TooSmall: return "the compiled policy is truncated";
    case LoadError::BadMagic: return "not a compiled kos policy (bad magic)";
    case LoadError::BadVersion: return "compiled policy of an unsupported format version";
    case LoadError::BadChecksum: return "the compiled policy is corrupted (checksum mismatch)";
    case LoadError::BadSection: return "a section of the compiled policy lies outside it or is misaligned";
    case LoadError::BadHeader: return "the compiled policy's header is inconsistent";
    case LoadError::StateTooSmall: return "the engine's state buffer is too small for this policy";
    }
    return "unknown load error";
}

// ---- loading ---------------------------------------------------------------

namespace {

// Element sizes of the table sections (0: byte sections).
constexpr u32 kElementSize[kSectionCount] = {
    0,                 // Strings
    sizeof(Label),     sizeof(Interface), sizeof(Method), sizeof(Field), sizeof(Class),
    sizeof(Perm),      sizeof(Rule),      sizeof(Instance), sizeof(Condition), sizeof(u64),
    sizeof(Cidr),      sizeof(DfaHeader), 0,                sizeof(IndexEntry), sizeof(u32),
    sizeof(Machine),   sizeof(StringRef),
};

u64 align64(u64 x) { return (x + 63) & ~u64{63}; }

// The cache size a policy asks for (the builder's hint), within bounds.
u32 wanted_cache_entries(const PolicyHeader* h) {
    u32 n = h->cache_entries;
    if (n < kMinCacheEntries || n > kMaxCacheEntries || (n & (n - 1)) != 0)
        n = 4096;
    return n;
}

const PolicyHeader* readable_header(const u8* blob, u64 size) {
    if (!blob || size < sizeof(PolicyHeader))
        return nullptr;
    if (reinterpret_cast<unsigned long>(blob) % 8 != 0)
        return nullptr;
    return reinterpret_cast<const PolicyHeader*>(blob);
}

} // namespace

u64 Engine::required_state_size(const u8* blob, u64 size) {
    const PolicyHeader* h = readable_header(blob, size);
    if (!h)
        return 0;
    return align64(h->state_size) + 64 + u64{wanted_cache_entries(h)} * 32;
}

void Engine::unload() {
    blob_ = nullptr;
    size_ = 0;
    header_ = nullptr;
    state_ = nullptr;
    state_size_ = 0;
    cache_ = nullptr;
}

LoadError Engine::load(const u8* blob, u64 size, void* state, u64 state_size) {
    unload();
    const PolicyHeader* h = readable_header(blob, size);
    if (!h)
        return LoadError::TooSmall;
    if (h->magic != kPolicyMagic)
        return LoadError::BadMagic;
    if ((h->version != kPolicyVersion && h->version != kPolicyVersionNoGrants) ||
        h->header_size != sizeof(PolicyHeader))
        return LoadError::BadVersion;
    if (h->total_size > size || h->total_size < sizeof(PolicyHeader))
        return LoadError::TooSmall;
    u64 total = h->total_size;
    if (checksum64(blob, total, __builtin_offsetof(PolicyHeader, checksum)) != h->checksum)
        return LoadError::BadChecksum;
    for (u32 s = 0; s < kSectionCount; ++s) {
        SectionRef r = h->sections[s];
        if (r.offset % 8 != 0 || r.offset < sizeof(PolicyHeader) ||
            u64{r.offset} + r.size > total)
            return LoadError::BadSection;
        if (kElementSize[s] && r.size % kElementSize[s] != 0)
            return LoadError::BadSection;
    }
    u32 index_slots = h->sections[static_cast<u32>(Section::Index)].size / sizeof(IndexEntry);
    if (index_slots != 0 && (index_slots & (index_slots - 1)) != 0)
        return LoadError::BadSection;
    if (h->category_count > 64 || h->sensitivity_count > 256 || h->integrity_count > 256 ||
        h->state_size != align8(h->limit_count * u64{sizeof(Bucket)}) + align8(h->machine_count * u64{4}) ||
        h->rule_count < kFirstUserRule ||
        h->rule_count != h->sections[static_cast<u32>(Section::Rules)].size / sizeof(Rule))
        return LoadError::BadHeader;
    // The verdict cache takes what the buffer has after the fixed state, up
    // to what the policy asks for.
    // The cache starts at the first 64-byte boundary after the fixed state.
    u64 base = reinterpret_cast<unsigned long>(state);
    u64 fixed = align64(base + h->state_size) - base;
    if (!state || base % 8 != 0 || state_size < fixed + u64{kMinCacheEntries} * 32)
        return LoadError::StateTooSmall;
    u32 entries = wanted_cache_entries(h);
    while (fixed + u64{entries} * 32 > state_size)
        entries /= 2;

    blob_ = blob;
    size_ = total;
    header_ = h;
    state_ = static_cast<u8*>(state);
    state_size_ = state_size;
    bool fresh = generation_ == 0 || cache_ != reinterpret_cast<CacheEntry*>(state_ + fixed) ||
                 cache_mask_ != entries / 2 - 1;
    cache_ = reinterpret_cast<CacheEntry*>(state_ + fixed);
    cache_mask_ = entries / 2 - 1; // sets
    if (fresh) {
        // A buffer this engine has not used with this geometry: it may hold anything.
        for (u32 i = 0; i < entries; ++i)
            cache_[i] = CacheEntry{0, 0, 0, 0, 0};
    }
    // A new generation: entries cached for an earlier policy never match.
    generation_ = (generation_ + 1) & 0x1fffffff;
    if (generation_ == 0)
        generation_ = 1;
    reset_state();
    return LoadError::None;
}

u64 Engine::policy_id() const { return header_ ? header_->checksum : 0; }

void Engine::reset_state() {
    if (!header_)
        return;
    u8* p = state_;
    for (u64 i = 0; i < header_->state_size; ++i)
        p[i] = 0;
    u32* machines = reinterpret_cast<u32*>(p + align8(header_->limit_count * u64{sizeof(Bucket)}));
    for (u32 m = 0; m < header_->machine_count; ++m) {
        const Machine* mc = machine(m);
        machines[m] = mc ? mc->initial : 0;
    }
    // Limit buckets start full.
    Bucket* buckets = reinterpret_cast<Bucket*>(p);
    for (u32 i = 0; i < header_->limit_count; ++i)
        buckets[i] = Bucket{~u64{0}, 0};
    sequence_ = 0;
}

// ---- views -------------------------------------------------------------------

template <class T> const T* Engine::table(Section s, u32 i) const {
    if (!header_)
        return nullptr;
    SectionRef r = header_->sections[static_cast<u32>(s)];
    if (u64{i} >= r.size / sizeof(T))
        return nullptr;
    return reinterpret_cast<const T*>(blob_ + r.offset) + i;
}

template <class T> u32 Engine::table_size(Section s) const {
    if (!header_)
        return 0;
    return header_->sections[static_cast<u32>(s)].size / sizeof(T);
}

const Label* Engine::label(u32 i) const { return table<Label>(Section::Labels, i); }
const Rule* Engine::rule(u32 i) const { return table<Rule>(Section::Rules, i); }
const Field* Engine::field(u32 i) const { return table<Field>(Section::Fields, i); }
const Class* Engine::cls(u32 i) const { return table<Class>(Section::Classes, i); }
const Perm* Engine::perm(u32 i) const { return table<Perm>(Section::Perms, i); }
const Machine* Engine::machine(u32 i) const { return table<Machine>(Section::Machines, i); }
const StringRef* Engine::name(u32 i) const { return table<StringRef>(Section::Names, i); }

const char* Engine::string(StringRef s, u32* size) const {
    if (!header_)
        return nullptr;
    SectionRef r = header_->sections[static_cast<u32>(Section::Strings)];
    if (u64{s.offset} + s.size > r.size)
        return nullptr;
    if (size)
        *size = s.size;
    return reinterpret_cast<const char*>(blob_ + r.offset + s.offset);
}

// Interfaces are sorted by id, methods within an interface by id.
const Interface* Engine::interface_by_id(u32 id) const {
    u32 lo = 0, hi = table_size<Interface>(Section::Interfaces);
    while (lo < hi) {
        u32 mid = lo + (hi - lo) / 2;
        const Interface* in = table<Interface>(Section::Interfaces, mid);
        if (in->id == id)
            return in;
        if (in->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return nullptr;
}

const Method* Engine::method(const Interface& in, u32 method_id) const {
    u32 lo = 0, hi = in.method_count;
    while (lo < hi) {
        u32 mid = lo + (hi - lo) / 2;
        const Method* m = table<Method>(Section::Methods, in.method_first + mid);
        if (!m)
            return nullptr;
        if (m->id == method_id)
            return m;
        if (m->id < method_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return nullptr;
}

u32 Engine::find_label(const char* n, u32 size) const {
    u32 count = table_size<Label>(Section::Labels);
    for (u32 i = 0; i < count; ++i) {
        u32 len = 0;
        const char* s = string(label(i)->name, &len);
        if (s && bytes_equal(s, len, n, size))
            return i;
    }
    return kNone;
}

u32 Engine::find_class(const char* n, u32 size) const {
    u32 count = table_size<Class>(Section::Classes);
    for (u32 i = 0; i < count; ++i) {
        u32 len = 0;
        const char* s = string(cls(i)->name, &len);
        if (s && bytes_equal(s, len, n, size))
            return i;
    }
    return kNone;
}

u32 Engine::find_perm(u32 c, const char* n, u32 size) const {
    const Class* k = cls(c);
    if (!k)
        return kNone;
    for (u32 i = 0; i < k->perm_count; ++i) {
        const Perm* p = perm(k->perm_first + i);
        u32 len = 0;
        const char* s = p ? string(p->name, &len) : nullptr;
        if (s && bytes_equal(s, len, n, size))
            return i;
    }
    return kNone;
}

u32 Engine::machine_state(u32 m) const {
    if (!header_ || m >= header_->machine_count)
        return kNone;
    const u8* p = state_ + align8(header_->limit_count * u64{sizeof(Bucket)});
    return reinterpret_cast<const u32*>(p)[m];
}

// ---- evaluation --------------------------------------------------------------

namespace {

// What a request's key resolves to before rules run.
struct Shape {
    u32 field_first = 0; // into Fields (Request/Response)
    u32 field_count = 0;
    bool execute = false;
    Flow flow = Flow::ReadWrite;
};

} // namespace

bool Engine::condition_holds(const Condition& c, const Request& r, u32 field_first,
                             u32 field_count) const {
    // Callers set broken_ semantics by treating an unreadable condition as
    // holding for denies and failing for allows; see evaluate().
    FieldValue grant{};
    const FieldValue* vp = nullptr;
    if (c.field == kFieldGrantSize || c.field == kFieldGrantWrite) {
        // Not a payload field: the memory lent with the request.
        if (r.kind != Kind::Request)
            return false;
        grant.integer = c.field == kFieldGrantSize ? r.grant_size : (r.grant_write ? 1 : 0);
        vp = &grant;
    } else {
        if (c.field >= field_count || c.field >= r.field_count)
            return false;
        vp = &r.fields[c.field];
    }
    const FieldValue& v = *vp;
    bool result = false;
    auto ints = [&](u32 i) -> const u64* { return table<u64>(Section::Ints, i); };
    auto less = [&](u64 x, u64 y) {
        return c.is_signed ? static_cast<i64>(x) < static_cast<i64>(y) : x < y;
    };
    switch (static_cast<CondOp>(c.op)) {
    case CondOp::Eq:
    case CondOp::Lt:
    case CondOp::Le:
    case CondOp::Gt:
    case CondOp::Ge: {
        const u64* a = ints(c.arg_first);
        if (!a)
            return false;
        u64 x = v.integer;
        switch (static_cast<CondOp>(c.op)) {
        case CondOp::Eq: result = x == *a; break;
        case CondOp::Lt: result = less(x, *a); break;
        case CondOp::Le: result = !less(*a, x); break;
        case CondOp::Gt: result = less(*a, x); break;
        default: result = !less(x, *a); break;
        }
        break;
    }
    case CondOp::InSet: {
        u32 lo = 0, hi = c.arg_count;
        while (lo < hi) {
            u32 mid = lo + (hi - lo) / 2;
            const u64* a = ints(c.arg_first + mid);
            if (!a)
                return false;
            if (*a == v.integer) {
                result = true;
                break;
            }
            if (less(*a, v.integer))
                lo = mid + 1;
            else
                hi = mid;
        }
        break;
    }
    case CondOp::InRanges:
        for (u32 i = 0; i < c.arg_count && !result; ++i) {
            const u64* lo = ints(c.arg_first + 2 * i);
            const u64* hi = ints(c.arg_first + 2 * i + 1);
            if (!lo || !hi)
                return false;
            result = !less(v.integer, *lo) && !less(*hi, v.integer);
        }
        break;
    case CondOp::Match: {
        const DfaHeader* d = table<DfaHeader>(Section::Dfas, c.arg_first);
        if (!d || d->class_count == 0 || d->class_count > 256 || d->state_count < 2)
            return false;
        SectionRef dr = header_->sections[static_cast<u32>(Section::DfaData)];
        const u8* data = blob_ + dr.offset;
        u64 table_bytes = u64{d->state_count} * d->class_count * 2;
        if (u64{d->classes} + 256 > dr.size || d->next % 2 != 0 ||
            u64{d->next} + table_bytes > dr.size || u64{d->accepting} + d->state_count > dr.size)
            return false;
        const u8* classes = data + d->classes;
        const u8* next = data + d->next;
        u32 s = 1;
        for (u32 i = 0; i < v.size && s != 0; ++i) {
            u32 cls = classes[v.data[i]];
            if (cls >= d->class_count)
                return false;
            s = load_le<u16>(next + 2 * (u64{s} * d->class_count + cls));
            if (s >= d->state_count)
                return false;
        }
        result = data[d->accepting + s] != 0;
        break;
    }
    case CondOp::InCidr:
        if (v.size != 16 || !v.data)
            return false;
        for (u32 i = 0; i < c.arg_count && !result; ++i) {
            const Cidr* k = table<Cidr>(Section::Cidrs, c.arg_first + i);
            if (!k || k->prefix > 128)
                return false;
            u32 bits = k->prefix;
            bool match = true;
            for (u32 byte = 0; byte < 16 && bits > 0 && match; ++byte) {
                u32 take = bits >= 8 ? 8 : bits;
                u8 mask = static_cast<u8>(0xff00u >> take);
                match = (v.data[byte] & mask) == (k->address[byte] & mask);
                bits -= take;
            }
            result = match;
        }
        break;
    default:
        return false;
    }
    return c.negate ? !result : result;
}

bool Engine::flow_allowed(const Request& r, u32* rule_out) const {
    const PolicyHeader& h = *header_;
    if (h.sensitivity_count == 0 && h.integrity_count == 0)
        return true;
    const Label* s = label(r.source);
    const Label* t = label(r.target);
    if (!s || !t)
        return false;
    if ((s->flags & kLabelTrusted) || (t->flags & kLabelTrusted))
        return true;

    // Direction: from the subject/client to the object/server ("write") and
    // back ("read"). For a response the client is the target.
    Flow flow = Flow::Write;
    const Label* client = s;
    const Label* server = t;
    if (r.kind == Kind::Request || r.kind == Kind::Response) {
        const Interface* in = interface_by_id(r.a);
        const Method* m = in ? method(*in, r.b) : nullptr;
        if (!m)
            return false;
        flow = static_cast<Flow>(m->flow);
        if (r.kind == Kind::Response) {
            client = t;
            server = s;
        }
    } else if (r.kind == Kind::Security) {
        const Class* k = cls(r.a);
        const Perm* p = k && r.b < k->perm_count ? perm(k->perm_first + r.b) : nullptr;
        if (!p)
            return false;
        flow = static_cast<Flow>(p->flow);
    }
    bool to_server = flow == Flow::Write || flow == Flow::ReadWrite;
    bool to_client = flow == Flow::Read || flow == Flow::ReadWrite;
    auto check = [&](const Label* from, const Label* to) {
        if (h.sensitivity_count &&
            (to->sensitivity < from->sensitivity || (from->categories & ~to->categories) != 0)) {
            *rule_out = kRuleConfidentiality;
            return false;
        }
        if (h.integrity_count && from->integrity < to->integrity) {
            *rule_out = kRuleIntegrity;
            return false;
        }
        return true;
    };
    if (to_server && !check(client, server))
        return false;
    if (to_client && !check(server, client))
        return false;
    return true;
}

Verdict Engine::evaluate(const Request& r, bool* cacheable) {
    *cacheable = false;
    Verdict deny_unknown{false, true, false, kRuleUnknown};
    Verdict malformed{false, true, false, kRuleMalformed};
    u32 kind = static_cast<u32>(r.kind);
    if (kind == 0 || kind >= kKindCount || !label(r.source) || !label(r.target))
        return deny_unknown;
    if (!grant_valid(r))
        return malformed;

    // The fields this key's conditions read, and their validity.
    u32 field_first = 0, field_count = 0;
    bool execute = r.kind == Kind::Execute;
    if (r.kind == Kind::Request || r.kind == Kind::Response) {
        const Interface* in = interface_by_id(r.a);
        const Method* m = in ? method(*in, r.b) : nullptr;
        if (!m)
            return deny_unknown;
        bool req = r.kind == Kind::Request;
        field_first = req ? m->request_field_first : m->response_field_first;
        field_count = req ? m->request_field_count : m->response_field_count;
    } else if (r.kind == Kind::Security) {
        const Class* k = cls(r.a);
        if (!k || r.b >= k->perm_count)
            return deny_unknown;
    } else {
        field_count = 1;
    }
    if (r.error_reply) {
        if (r.kind != Kind::Response || r.field_count != 0)
            return malformed;
        field_count = 0;
    }
    if (r.field_count < field_count || (field_count && !r.fields))
        return malformed;
    for (u32 i = 0; i < field_count; ++i) {
        const FieldValue& v = r.fields[i];
        if (execute) {
            if (v.size > kExecuteProgramMax || (v.size && !v.data))
                return malformed;
            continue;
        }
        const Field* f = field(field_first + i);
        if (!f)
            return malformed;
        FieldType t = static_cast<FieldType>(f->type);
        if (t == FieldType::Ip && (v.size != 16 || !v.data))
            return malformed;
        if ((t == FieldType::String || t == FieldType::Bytes) &&
            (v.size > f->max_size || (v.size && !v.data)))
            return malformed;
        if (t == FieldType::Bool && v.integer > 1)
            return malformed;
    }

    // The rules for this key.
    const IndexEntry* entry = nullptr;
    u32 slots = table_size<IndexEntry>(Section::Index);
    if (slots) {
        u64 hash = index_hash(kind, r.source, r.target, r.a, r.b);
        for (u32 probe = 0; probe < slots; ++probe) {
            const IndexEntry* e = table<IndexEntry>(Section::Index, (hash + probe) & (slots - 1));
            if (e->kind == 0)
                break;
            if (e->kind == kind && e->source == r.source && e->target == r.target && e->a == r.a &&
                e->b == r.b) {
                entry = e;
                break;
            }
        }
    }
    *cacheable = !entry || (entry->flags & kIndexStatic);

    u32 list_first = entry ? entry->list_first : 0;
    u32 list_count = entry ? entry->list_count : 0;
    u8* limits_base = state_;
    Bucket* buckets = reinterpret_cast<Bucket*>(limits_base);
    u32* machines = reinterpret_cast<u32*>(limits_base + align8(header_->limit_count * u64{sizeof(Bucket)}));

    // A rule instance applies when its conditions and state requirement hold.
    bool broken = false;
    auto applies = [&](const Instance& in, const Rule& rl) {
        if (rl.state_label != kNone) {
            const Label* l = label(rl.state_label);
            if (!l || l->machine >= header_->machine_count) {
                broken = true;
                return false;
            }
            if (!((rl.state_mask >> machines[l->machine]) & 1))
                return false;
        }
        for (u32 c = 0; c < in.cond_count; ++c) {
            const Condition* cond = table<Condition>(Section::Conditions, in.cond_first + c);
            if (!cond) {
                broken = true;
                return false;
            }
            if (!condition_holds(*cond, r, field_first, field_count))
                return false;
        }
        return true;
    };
    auto instance_at = [&](u32 i, const Instance** in, const Rule** rl) {
        const u32* idx = table<u32>(Section::IndexLists, list_first + i);
        *in = idx ? table<Instance>(Section::Instances, *idx) : nullptr;
        *rl = *in ? rule((*in)->rule) : nullptr;
        if (!*rl)
            broken = true;
        return *rl != nullptr;
    };
    auto refill = [&](const Rule& rl, u64* tokens) {
        if (rl.limit_slot >= header_->limit_count || rl.limit_window_ns == 0 || rl.limit_count == 0) {
            broken = true;
            return false;
        }
        Bucket& b = buckets[rl.limit_slot];
        u64 cap = rl.limit_count * rl.limit_window_ns;
        u64 t = b.tokens > cap ? cap : b.tokens;
        u64 elapsed = r.now_ns > b.last_ns ? r.now_ns - b.last_ns : 0;
        if (elapsed > rl.limit_window_ns)
            elapsed = rl.limit_window_ns;
        t += elapsed * rl.limit_count;
        *tokens = t > cap ? cap : t;
        return true;
    };

    // 1. Explicit denies win.
    for (u32 i = 0; i < list_count; ++i) {
        const Instance* in;
        const Rule* rl;
        if (!instance_at(i, &in, &rl))
            return malformed;
        if (rl->effect != static_cast<u8>(Effect::Deny))
            continue;
        if (applies(*in, *rl))
            return Verdict{false, rl->audit != static_cast<u8>(Audit::Never), false, in->rule};
        if (broken)
            return malformed;
    }
    // 2. The lattices.
    u32 lattice_rule = kRuleDefaultDeny;
    if (!flow_allowed(r, &lattice_rule))
        return Verdict{false, true, false, lattice_rule};
    // 3. Exhausted limits.
    for (u32 i = 0; i < list_count; ++i) {
        const Instance* in;
        const Rule* rl;
        if (!instance_at(i, &in, &rl))
            return malformed;
        if (rl->effect != static_cast<u8>(Effect::Limit))
            continue;
        if (applies(*in, *rl)) {
            u64 tokens = 0;
            if (!refill(*rl, &tokens))
                return malformed;
            if (tokens < rl->limit_window_ns)
                return Verdict{false, rl->audit != static_cast<u8>(Audit::Never), false, in->rule};
        }
        if (broken)
            return malformed;
    }
    // 4. The first allow.
    Verdict v{false, true, false, kRuleDefaultDeny};
    for (u32 i = 0; i < list_count; ++i) {
        const Instance* in;
        const Rule* rl;
        if (!instance_at(i, &in, &rl))
            return malformed;
        if (rl->effect != static_cast<u8>(Effect::Allow))
            continue;
        if (applies(*in, *rl)) {
            if (!v.allow)
                v = Verdict{true, rl->audit == static_cast<u8>(Audit::Always), false, in->rule};
            else
                v.audit = true; // a later `audit allow` that also matches
            // Keep looking only for an `audit allow` that also matches.
            if (v.audit || !(entry->flags & kIndexAuditAllow))
                break;
        }
        if (broken)
            return malformed;
    }
    if (!v.allow)
        return v;

    // 5. Commit: count the request against its limits and move machines.
    // Transitions match against the state before this request; the first
    // transition (by rule id) per machine wins.
    u32 moved[kMaxCommits];
    u32 to_state[kMaxCommits];
    u32 moved_count = 0;
    for (u32 i = 0; i < list_count; ++i) {
        const Instance* in;
        const Rule* rl;
        if (!instance_at(i, &in, &rl))
            return malformed;
        if (rl->effect == static_cast<u8>(Effect::Limit) && applies(*in, *rl)) {
            u64 tokens = 0;
            if (!refill(*rl, &tokens))
                return malformed;
            Bucket& b = buckets[rl->limit_slot];
            b.tokens = tokens - rl->limit_window_ns;
            b.last_ns = r.now_ns;
        } else if (rl->effect == static_cast<u8>(Effect::Transition) && applies(*in, *rl)) {
            const Label* l = label(r.target);
            u32 m = l ? l->machine : kNone;
            if (m >= header_->machine_count || rl->to_state >= 32)
                return malformed;
            if (!((rl->from_mask >> machines[m]) & 1))
                continue;
            bool seen = false;
            for (u32 j = 0; j < moved_count; ++j)
                seen |= moved[j] == m;
            if (!seen && moved_count < kMaxCommits) {
                moved[moved_count] = m;
                to_state[moved_count++] = rl->to_state;
            }
        }
        if (broken)
            return malformed;
    }
    for (u32 j = 0; j < moved_count; ++j)
        machines[moved[j]] = to_state[j];
    return v;
}

Verdict Engine::decide(const Request& r) {
    if (!header_)
        return Verdict{false, true, false, kRuleDefaultDeny};
    u32 kind = static_cast<u32>(r.kind);
    if (kind == 0 || kind >= kKindCount)
        return Verdict{false, true, false, kRuleUnknown};
    // Checked before the cache too: a cached verdict is never given to a
    // request with an impossible grant.
    if (!grant_valid(r))
        return Verdict{false, true, false, kRuleMalformed};
    // A key is cacheable only when no rule of it has conditions (grant
    // conditions included), so a cached verdict holds for any grant.
    u64 k0 = static_cast<u64>(r.source) << 32 | r.target;
    u64 k1 = static_cast<u64>(r.a) << 32 | r.b;
    u32 tag = generation_ << 3 | kind;
    CacheEntry* set = cache_ + 2 * (index_hash(kind, r.source, r.target, r.a, r.b) & cache_mask_);
    for (u32 way = 0; way < 2; ++way) {
        const CacheEntry& e = set[way];
        if (e.tag == tag && e.k0 == k0 && e.k1 == k1) {
            ++stats_.hits;
            return Verdict{(e.verdict >> 31) != 0, ((e.verdict >> 30) & 1) != 0, true, e.verdict & 0x3fffffff};
        }
    }
    ++stats_.misses;
    bool cacheable = false;
    Verdict v = evaluate(r, &cacheable);
    if (cacheable && v.rule < (1u << 30) && v.rule != kRuleMalformed &&
        v.rule != kRuleUnknown) {
        // The newest entry goes first; the older one moves to the second way.
        set[1] = set[0];
        set[0] = CacheEntry{k0, k1, tag, (v.allow ? 1u << 31 : 0) | (v.audit ? 1u << 30 : 0) | v.rule, 0};
    }
    return v;
}

Verdict Engine::decide_uncached(const Request& r) {
    if (!header_)
        return Verdict{false, true, false, kRuleDefaultDeny};
    bool cacheable = false;
    return evaluate(r, &cacheable);
}

u32 Engine::decode(Kind kind, const abi::ipc::MessageHeader& h, const u8* payload, u32 payload_size,
                   FieldValue* values, u32* count) const {
    *count = 0;
    if (kind != Kind::Request && kind != Kind::Response)
        return kRuleUnknown;
    const Interface* in = interface_by_id(h.interface_id);
    const Method* m = in ? method(*in, h.method_id) : nullptr;
    if (!m)
        return kRuleUnknown;
    bool req = kind == Kind::Request;
    u32 first = req ? m->request_field_first : m->response_field_first;
    u32 n = req ? m->request_field_count : m->response_field_count;
    u32 fixed = req ? m->request_fixed_size : m->response_fixed_size;
    if (n > kMaxFields || payload_size < fixed || h.payload_size != payload_size ||
        (payload_size && !payload))
        return kRuleMalformed;
    for (u32 i = 0; i < n; ++i) {
        const Field* f = field(first + i);
        if (!f)
            return kRuleMalformed;
        FieldValue& v = values[i];
        v = FieldValue{};
        const u8* p = payload + f->offset;
        auto fits = [&](u32 size) { return u64{f->offset} + size <= fixed; };
        switch (static_cast<FieldType>(f->type)) {
        case FieldType::Bool:
        case FieldType::U8:
            if (!fits(1))
                return kRuleMalformed;
            v.integer = p[0];
            if (f->type == static_cast<u8>(FieldType::Bool) && v.integer > 1)
                return kRuleMalformed;
            break;
        case FieldType::I8:
            if (!fits(1))
                return kRuleMalformed;
            v.integer = static_cast<u64>(static_cast<i64>(static_cast<signed char>(p[0])));
            break;
        case FieldType::U16:
            if (!fits(2))
                return kRuleMalformed;
            v.integer = load_le<u16>(p);
            break;
        case FieldType::I16:
            if (!fits(2))
                return kRuleMalformed;
            v.integer = static_cast<u64>(static_cast<i64>(static_cast<short>(load_le<u16>(p))));
            break;
        case FieldType::U32:
        case FieldType::Handle:
            if (!fits(4))
                return kRuleMalformed;
            v.integer = load_le<u32>(p);
            break;
        case FieldType::I32:
            if (!fits(4))
                return kRuleMalformed;
            v.integer = static_cast<u64>(static_cast<i64>(static_cast<int>(load_le<u32>(p))));
            break;
        case FieldType::U64:
        case FieldType::I64:
            if (!fits(8))
                return kRuleMalformed;
            v.integer = load_le<u64>(p);
            break;
        case FieldType::Ip:
            if (!fits(16))
                return kRuleMalformed;
            v.data = p;
            v.size = 16;
            break;
        case FieldType::String:
        case FieldType::Bytes: {
            if (!fits(8))
                return kRuleMalformed;
            u32 off = load_le<u32>(p);
            u32 size = load_le<u32>(p + 4);
            if (off < fixed || u64{off} + size > payload_size || size > f->max_size)
                return kRuleMalformed;
            v.data = payload + off;
            v.size = size;
            break;
        }
        default:
            return kRuleMalformed;
        }
    }
    *count = n;
    return kNone;
}

Verdict Engine::decide_message(Kind kind, u32 source, u32 target, const abi::ipc::MessageHeader& h,
                               const u8* payload, u32 payload_size, u64 now_ns, u64 grant_size,
                               bool grant_write) {
    if (!header_)
        return Verdict{false, true, false, kRuleDefaultDeny};
    // An error reply is a status and nothing else.
    if (kind == Kind::Response && h.status != 0) {
        if (payload_size != 0 || h.payload_size != 0)
            return Verdict{false, true, false, kRuleMalformed};
        Request r{kind, source, target, h.interface_id, h.method_id, nullptr, 0, now_ns, true};
        return decide(r);
    }
    FieldValue values[kMaxFields];
    u32 count = 0;
    u32 bad = decode(kind, h, payload, payload_size, values, &count);
    if (bad != kNone)
        return Verdict{false, true, false, bad};
    Request r{kind, source, target, h.interface_id, h.method_id, values, count, now_ns};
    r.grant_size = grant_size;
    r.grant_write = grant_write;
    return decide(r);
}

bool Engine::make_message_audit_record(Kind kind, u32 source, u32 target, const abi::ipc::MessageHeader& h,
                                       const u8* payload, u32 payload_size, u64 now_ns, const Verdict& v,
                                       AuditRecord& out, u64 grant_size, bool grant_write) {
    FieldValue values[kMaxFields];
    u32 count = 0;
    if (decode(kind, h, payload, payload_size, values, &count) != kNone)
        count = 0;
    Request r{kind, source, target, h.interface_id, h.method_id, values, count, now_ns};
    r.grant_size = grant_size;
    r.grant_write = grant_write;
    return make_audit_record(r, v, out);
}

bool Engine::make_audit_record(const Request& r, const Verdict& v, AuditRecord& out) {
    if (!header_)
        return false;
    out = AuditRecord{};
    out.sequence = ++sequence_;
    out.time_ns = r.now_ns;
    out.policy_id = header_->checksum;
    out.rule = v.rule;
    out.source = r.source;
    out.target = r.target;
    out.a = r.a;
    out.b = r.b;
    out.kind = static_cast<u8>(r.kind);
    out.allow = v.allow;
    out.cached = v.cached;

    // Field types, as the policy knows them.
    u32 field_first = 0, field_count = 0;
    if (r.kind == Kind::Request || r.kind == Kind::Response) {
        const Interface* in = interface_by_id(r.a);
        const Method* m = in ? method(*in, r.b) : nullptr;
        if (m) {
            bool req = r.kind == Kind::Request;
            field_first = req ? m->request_field_first : m->response_field_first;
            field_count = req ? m->request_field_count : m->response_field_count;
        }
    } else if (r.kind == Kind::Execute) {
        field_count = 1;
    }
    if (field_count > r.field_count)
        field_count = r.field_count;
    u32 pos = 0;
    if (r.grant_size || r.grant_write) {
        // The grant first: it is small, and often what decided.
        const u8 ids[2] = {kAuditFieldGrantSize, kAuditFieldGrantWrite};
        const u8 types[2] = {static_cast<u8>(FieldType::U64), static_cast<u8>(FieldType::Bool)};
        const u64 values[2] = {r.grant_size, r.grant_write ? 1u : 0u};
        for (u32 g = 0; g < 2; ++g) {
            out.data[pos] = ids[g];
            out.data[pos + 1] = types[g];
            out.data[pos + 2] = 8;
            out.data[pos + 3] = 0;
            for (u32 j = 0; j < 8; ++j)
                out.data[pos + 4 + j] = static_cast<u8>(values[g] >> (8 * j));
            pos += 12;
        }
    }
    for (u32 i = 0; i < field_count && i < 256; ++i) {
        const FieldValue& fv = r.fields[i];
        u8 type = static_cast<u8>(FieldType::String);
        if (r.kind != Kind::Execute) {
            const Field* f = field(field_first + i);
            if (!f)
                break;
            type = f->type;
        }
        bool bytes = type == static_cast<u8>(FieldType::String) ||
                     type == static_cast<u8>(FieldType::Bytes) || type == static_cast<u8>(FieldType::Ip);
        u32 size = bytes ? fv.size : 8;
        if (bytes && size > kAuditValueMax) {
            size = kAuditValueMax;
            out.truncated = 1;
        }
        if (pos + 4 + size > kAuditDataMax) {
            out.truncated = 1;
            break;
        }
        out.data[pos] = static_cast<u8>(i);
        out.data[pos + 1] = type;
        out.data[pos + 2] = static_cast<u8>(size);
        out.data[pos + 3] = static_cast<u8>(size >> 8);
        pos += 4;
        if (bytes) {
            for (u32 j = 0; j < size; ++j)
                out.data[pos + j] = fv.data ? fv.data[j] : 0;
        } else {
            for (u32 j = 0; j < 8; ++j)
                out.data[pos + j] = static_cast<u8>(fv.integer >> (8 * j));
        }
        pos += size;
    }
    out.data_size = static_cast<u16>(pos);
    return true;
}

} // namespace kos::security
