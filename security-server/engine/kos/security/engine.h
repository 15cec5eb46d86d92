// The security engine: loads a compiled policy and answers verdicts.
//
// Freestanding C++: no exceptions, RTTI, OS calls or allocation. The caller
// provides the blob (kept alive and unchanged while loaded; the kernel keeps
// it in memory no user task can map) and a state buffer of
// required_state_size() bytes for the verdict cache, rate-limit buckets and
// machine states. The same object code runs in the guest kernel, in the
// host-process backend's supervisor and in host tools.
//
// Fail closed: an engine with no policy loaded denies everything; load()
// refuses a blob that is truncated, corrupted (checksum), of another
// version, or whose sections do not fit, and then leaves the engine
// unloaded (the previous policy, if any, is gone too).
//
// Not thread-safe: callers serialize decide() (the kernel runs it under its
// lock; host users wrap it in a mutex).
#pragma once

#include "kos/ipc.h"
#include "kos/security/policy_format.h"

namespace kos::security {

// One field value of a request. Integers (all integer types, Bool, Handle)
// use `integer` (sign-extended for signed types); Ip, String and Bytes use
// data/size (Ip: 16 bytes).
struct FieldValue {
    u64 integer = 0;
    const u8* data = nullptr;
    u32 size = 0;
};

struct Request {
    Kind kind = Kind::Request;
    u32 source = kNone; // label index
    u32 target = kNone; // label index
    u32 a = 0;          // interface id | class index | 0
    u32 b = 0;          // method id | perm index | 0
    // Values of the method's fields in declaration order (the request's
    // fields for Request, the response's for Response; Execute: one String,
    // the program path; Security: none). Fewer than the method declares, or
    // a wrong size: the request is malformed (denied, kRuleMalformed).
    const FieldValue* fields = nullptr;
    u32 field_count = 0;
    u64 now_ns = 0; // monotonic time, for rate limits
    // A reply carrying only an error status (no payload): its fields are
    // absent, and a condition on an absent field never holds.
    bool error_reply = false;
    // Memory lent with a request (ipc_call_grant): its size in bytes (0:
    // none) and whether the server may write it. Conditions on `grant.size`
    // and `grant.write` read these. Set on another kind, larger than
    // kMaxGrantSize, or writable without a size: the request is malformed.
    u64 grant_size = 0;
    bool grant_write = false;
};

struct Verdict {
    bool allow = false;
    bool audit = true;
    bool cached = false; // answered from the verdict cache
    u32 rule = kRuleDefaultDeny;
};

enum class LoadError : u8 {
    None = 0,
    TooSmall,       // shorter than the header or than total_size
    BadMagic,
    BadVersion,
    BadChecksum,
    BadSection,     // a section outside the blob, misaligned, or of a bad size
    BadHeader,      // inconsistent counts
    StateTooSmall,  // the state buffer is smaller than required_state_size()
};
const char* describe(LoadError e);

// The compact binary audit record (rendered as JSON by host tools, which
// resolve names through the blob). Field values are copied in as a TLV
// list: {u8 field, u8 type, u16 size, bytes[size]}, strings cut at
// kAuditValueMax bytes, as many as fit in `data`. A request's grant comes
// first, when it has one: field kAuditFieldGrantSize (U64, its size) and
// kAuditFieldGrantWrite (Bool), rendered as `grant.size` and `grant.write`.
inline constexpr u32 kAuditDataMax = 200;
inline constexpr u32 kAuditValueMax = 96;
inline constexpr u8 kAuditFieldGrantSize = 0xfe;  // methods have at most 64 fields
inline constexpr u8 kAuditFieldGrantWrite = 0xff;
struct AuditRecord {
    u64 sequence;  // per engine, from 1
    u64 time_ns;   // Request::now_ns
    u64 policy_id; // the blob's checksum: which policy decided
    u32 rule;
    u32 source;
    u32 target;
    u32 a;
    u32 b;
    u8 kind;
    u8 allow;
    u8 cached;
    u8 truncated;  // 1: not every field value fit
    u16 data_size;
    u16 reserved;
    u8 data[kAuditDataMax];
};
static_assert(sizeof(AuditRecord) == 256);

struct CacheStats {
    u64 hits = 0;
    u64 misses = 0;
};

class Engine {
public:
    // The state bytes a blob asks for (limits, machines and the verdict
    // cache it wants); 0 if the blob is not even a readable header. A smaller
    // buffer (64-byte aligned) works with a smaller cache, down to 256
    // entries.
    static u64 required_state_size(const u8* blob, u64 size);

    LoadError load(const u8* blob, u64 size, void* state, u64 state_size);
    void unload();
    bool loaded() const { return blob_ != nullptr; }
    u64 policy_id() const; // the checksum of the loaded blob; 0 if none

    // Resets machines to their initial states, empties rate buckets and the
    // cache (policy tests start each test from here).
    void reset_state();

    Verdict decide(const Request& r);

    // The same verdict without reading or filling the cache (benchmarks and
    // `kos policy explain`); limits and machines still advance.
    Verdict decide_uncached(const Request& r);

    // An IPC message as the kernel holds it (its own copy): decodes the
    // fields from the payload by the method's layout, then decides. A
    // payload that does not fit the layout is denied (kRuleMalformed).
    // `grant_size`/`grant_write`: the memory lent with a request (see
    // Request::grant_size); the kernel passes what the caller really lent.
    Verdict decide_message(Kind kind, u32 source, u32 target, const abi::ipc::MessageHeader& h,
                           const u8* payload, u32 payload_size, u64 now_ns, u64 grant_size = 0,
                           bool grant_write = false);

    // Fills `out` for a verdict of `r`. Returns false when no policy is loaded.
    bool make_audit_record(const Request& r, const Verdict& v, AuditRecord& out);
    // The same for a verdict of decide_message (the fields decoded again;
    // a malformed message gets a record without fields).
    bool make_message_audit_record(Kind kind, u32 source, u32 target, const abi::ipc::MessageHeader& h,
                                   const u8* payload, u32 payload_size, u64 now_ns, const Verdict& v,
                                   AuditRecord& out, u64 grant_size = 0, bool grant_write = false);

    CacheStats cache_stats() const { return stats_; }

    // Lookups by name (for enforcement points and host tools); kNone if absent.
    u32 find_label(const char* name, u32 size) const;
    u32 find_class(const char* name, u32 size) const;
    u32 find_perm(u32 cls, const char* name, u32 size) const;

    // Read-only views into the loaded blob (nullptr / empty when out of range).
    const PolicyHeader* header() const { return header_; }
    const Label* label(u32 i) const;
    const Rule* rule(u32 i) const;
    const Interface* interface_by_id(u32 id) const;
    const Method* method(const Interface& in, u32 method_id) const;
    const Field* field(u32 i) const;
    const Class* cls(u32 i) const;
    const Perm* perm(u32 i) const;
    const Machine* machine(u32 i) const;
    // A string from the blob: sets *size; nullptr if out of range.
    const char* string(StringRef s, u32* size) const;
    const StringRef* name(u32 i) const; // Names section
    u32 machine_state(u32 machine) const;

private:
    struct CacheEntry;
    template <class T> const T* table(Section s, u32 i) const;
    template <class T> u32 table_size(Section s) const;
    Verdict evaluate(const Request& r, bool* cacheable);
    bool condition_holds(const Condition& c, const Request& r, u32 field_first, u32 field_count) const;
    bool flow_allowed(const Request& r, u32* rule) const;
    // Decodes a message's fields by its method's layout into values[64];
    // kRuleUnknown / kRuleMalformed on failure, kNone on success.
    u32 decode(Kind kind, const abi::ipc::MessageHeader& h, const u8* payload, u32 payload_size,
               FieldValue* values, u32* count) const;

    const u8* blob_ = nullptr;
    u64 size_ = 0;
    const PolicyHeader* header_ = nullptr;
    u8* state_ = nullptr;
    u64 state_size_ = 0;
    CacheEntry* cache_ = nullptr;
    u32 cache_mask_ = 0;
    u32 generation_ = 0;
    u64 sequence_ = 0;
    CacheStats stats_;
};

} // namespace kos::security
