// The compiled policy: the binary format the policy compiler writes
// (security-server/policy, builder.h) and the engine reads
// (engine.h). Freestanding; no hosted header may be included here.
//
// Layout: PolicyHeader at offset 0, then sections at the offsets its
// section table gives (each 8-byte aligned, inside the blob, not
// overlapping the header). All integers little-endian. Every index read from
// a section is bounds-checked where it is used, so a blob with a valid
// checksum but inconsistent contents still cannot make the engine read
// outside the blob: it only produces deny verdicts.
#pragma once

#include "kos/types.h"

namespace kos::security {

using abi::i64;
using abi::u16;
using abi::u32;
using abi::u64;
using abi::u8;

inline constexpr u64 kPolicyMagic = 0x31304c4f50534f4bull; // "KOSPOL01"
// Version 2 adds conditions on a request's grant (kFieldGrantSize,
// kFieldGrantWrite). The builder writes 2 only for a policy that uses them,
// so an engine that does not know them refuses such a blob instead of
// reading those conditions as never holding (which would drop a deny), and
// blobs without them stay readable by older engines.
inline constexpr u32 kPolicyVersion = 2;
inline constexpr u32 kPolicyVersionNoGrants = 1;
inline constexpr u32 kNone = 0xffffffffu;

// What is being asked (docs/security-server.md, "Requests").
enum class Kind : u8 {
    Execute = 1,  // source starts a program (field 0: program path) as target
    Request = 2,  // IPC request from source (client) to target (server)
    Response = 3, // IPC reply from source (server) to target (client)
    Security = 4, // object manager: may source do class.perm on object target
};
inline constexpr u32 kKindCount = 5; // valid kinds are 1..4

enum class Section : u32 {
    Strings = 0,  // bytes; names and rule texts, referenced as StringRef
    Labels,       // Label[]
    Interfaces,   // Interface[]
    Methods,      // Method[]
    Fields,       // Field[]
    Classes,      // Class[]
    Perms,        // Perm[]
    Rules,        // Rule[]
    Instances,    // Instance[]: a rule specialised to one method or permission
    Conditions,   // Condition[]
    Ints,         // u64[]: condition arguments
    Cidrs,        // Cidr[]
    Dfas,         // DfaHeader[]
    DfaData,      // bytes: byte-class maps, transition tables, accept flags
    Index,        // IndexEntry[], a power-of-two open-addressing table
    IndexLists,   // u32[] of instance indices, per IndexEntry
    Machines,     // Machine[]
    Names,        // StringRef[]: sensitivity levels, categories, integrity levels
                  // (in that order, counts in the header), then machine states
    Count,
};
inline constexpr u32 kSectionCount = static_cast<u32>(Section::Count);

struct SectionRef {
    u32 offset; // from the blob start, multiple of 8
    u32 size;   // bytes
};

struct StringRef {
    u32 offset; // into Strings
    u32 size;
};

struct PolicyHeader {
    u64 magic;
    u32 version;
    u32 header_size; // sizeof(PolicyHeader)
    u64 total_size;  // the whole blob
    u64 checksum;    // checksum64 of the blob with this field read as 0
    u32 cache_entries; // verdict cache entries wanted (power of two; the engine may use fewer)
    u32 state_size;  // mutable engine state needed (limits, machines), bytes
    u32 limit_count; // rate-limit buckets
    u32 machine_count;
    u32 sensitivity_count; // levels of the confidentiality lattice (0: family off)
    u32 category_count;    // at most 64
    u32 integrity_count;   // levels of the integrity lattice (0: family off)
    u32 rule_count;
    SectionRef sections[kSectionCount];
};

enum class LabelKind : u8 { Domain = 1, Resource = 2 };
enum LabelFlags : u8 {
    kLabelTrusted = 1, // exempt from the confidentiality and integrity families
};

struct Label {
    StringRef name;
    u8 kind;        // LabelKind
    u8 flags;       // LabelFlags
    u8 sensitivity; // index into the sensitivity levels (0 = lowest)
    u8 integrity;   // index into the integrity levels (0 = lowest)
    u32 machine;    // index into Machines, or kNone
    u64 categories; // bit i = category i
};
static_assert(sizeof(Label) == 24);

struct Interface {
    u32 id; // IDL id
    StringRef name;
    u32 method_first; // into Methods
    u32 method_count;
    u32 reserved;
};
static_assert(sizeof(Interface) == 24);

// Field types and flows: the same values as kos::idl::Type / Flow.
enum class FieldType : u8 {
    Bool = 1, U8, U16, U32, U64, I8, I16, I32, I64, Handle, Ip, String, Bytes,
};
enum class Flow : u8 {
    ReadWrite = 0, // both ways
    Read = 1,      // server (object) to client (subject)
    Write = 2,     // client (subject) to server (object)
    None = 3,      // no information flows (security permissions only)
};

struct Method {
    u32 id; // IDL id
    StringRef name;
    u8 flow; // Flow
    u8 grant;        // 0 none, 1 the server reads it, 2 it also writes (idl::Grant)
    u16 grant_pages; // the grant's largest size in 4 KiB pages
    u32 request_field_first; // into Fields
    u32 request_field_count;
    u32 request_fixed_size; // bytes of the payload's fixed part
    u32 response_field_first;
    u32 response_field_count;
    u32 response_fixed_size;
};
static_assert(sizeof(Method) == 40);

struct Field {
    StringRef name;
    u8 type; // FieldType
    u8 reserved[3];
    u32 offset;   // in the fixed part
    u32 max_size; // String/Bytes
};
static_assert(sizeof(Field) == 20);

struct Class {
    StringRef name;
    u32 perm_first; // into Perms
    u32 perm_count;
};
struct Perm {
    StringRef name;
    u8 flow; // Flow
    u8 reserved[3];
};

enum class Effect : u8 {
    Allow = 1,
    Deny = 2,
    Limit = 3,      // at most limit_count matching requests per limit_window_ns
    Transition = 4, // an allowed matching request moves the target's machine
    Builtin = 5,    // rules 0..kFirstUserRule-1 (see below)
};
enum class Audit : u8 { Default = 0, Always = 1, Never = 2 };

// Built-in rules, present in every blob so every verdict names a rule.
inline constexpr u32 kRuleDefaultDeny = 0;    // nothing allows the request
inline constexpr u32 kRuleMalformed = 1;      // message does not fit its layout
inline constexpr u32 kRuleUnknown = 2;        // label/interface/method/class unknown
inline constexpr u32 kRuleConfidentiality = 3; // a flow the sensitivity lattice forbids
inline constexpr u32 kRuleIntegrity = 4;      // a flow the integrity lattice forbids
inline constexpr u32 kFirstUserRule = 5;

struct Rule {
    u8 effect; // Effect
    u8 kind;   // Kind (0 for built-ins)
    u8 audit;  // Audit
    u8 reserved;
    u32 state_label;  // `when L is S...`: label whose machine is tested, or kNone
    u32 state_mask;   // bit s = state s satisfies the rule
    u32 from_mask;    // Transition: states it applies in
    u32 to_state;     // Transition: the new state
    u32 limit_slot;   // Limit: bucket index
    u64 limit_count;  // Limit: requests per window (>= 1)
    u64 limit_window_ns;
    StringRef where;  // "file:line:column"
    StringRef text;   // the rule as written
};
static_assert(sizeof(Rule) == 56);

// A rule specialised to one (interface, method) or (class, perm): its
// conditions name the fields of that method.
struct Instance {
    u32 rule;
    u32 cond_first; // into Conditions
    u32 cond_count;
};

enum class CondOp : u8 {
    Eq = 1, Lt, Le, Gt, Ge, // integer against Ints[arg_first]
    InSet,                  // integer in sorted Ints[arg_first .. +arg_count]
    InRanges,               // integer in any [lo, hi] pair of Ints (arg_count pairs)
    Match,                  // bytes accepted by Dfas[arg_first]
    InCidr,                 // Ip in any of Cidrs[arg_first .. +arg_count]
};

// Condition::field values past any method's fields (at most 64): the grant
// lent with a request (ipc_call_grant), which is not part of the payload.
// A request without a grant has size 0 and is not writable; for other
// kinds such a condition never holds (the builder only writes them for
// request rules on methods that declare a grant).
inline constexpr u32 kFieldGrantSize = 0xfffffff0u;  // bytes, compared unsigned
inline constexpr u32 kFieldGrantWrite = 0xfffffff1u; // 1: the server may write it
inline constexpr u64 kMaxGrantSize = 64ull << 20;     // abi/kos/syscall.h kMaxGrant

struct Condition {
    u32 field; // index among the method's fields (request fields for Request, response for
               // Response), or kFieldGrantSize / kFieldGrantWrite
    u8 op;     // CondOp
    u8 negate; // 1: the condition holds when the test fails
    u8 is_signed; // integer comparisons treat values as i64
    u8 reserved;
    u32 arg_first;
    u32 arg_count;
};
static_assert(sizeof(Condition) == 16);

struct Cidr {
    u8 address[16]; // IPv6; IPv4 as ::ffff:a.b.c.d
    u32 prefix;     // 0..128 (IPv4 /n is stored as 96 + n)
};
static_assert(sizeof(Cidr) == 20);

struct DfaHeader {
    u32 class_count;   // 1..256
    u32 state_count;   // >= 2; state 0 dead, state 1 start
    u32 classes;       // offset in DfaData of 256 byte-class bytes
    u32 next;          // offset in DfaData of u16[state_count * class_count]
    u32 accepting;     // offset in DfaData of u8[state_count]
};

enum IndexFlags : u32 {
    kIndexStatic = 1,     // no instance depends on fields, states or limits: cacheable
    kIndexAuditAllow = 2, // an `audit allow` applies: an allowed verdict is audited if any
                          // matching allow asks for it, not only the deciding one
};

// Key: (kind, source, target, a, b); a/b = interface id/method id
// (Request, Response), class/perm index (Security), 0/0 (Execute).
// An empty slot has kind 0. Probing is linear from index_hash(key).
struct IndexEntry {
    u32 kind;
    u32 source;
    u32 target;
    u32 a;
    u32 b;
    u32 list_first; // into IndexLists
    u32 list_count;
    u32 flags;      // IndexFlags
};
static_assert(sizeof(IndexEntry) == 32);

// Instances in an index list are ordered: Deny, Limit, Allow, Transition,
// each by rule id. The engine relies on that order.

// A finite-state machine attached to one resource label; its current state
// lives in the engine's state memory (one u32 per machine).
struct Machine {
    u32 label;
    u32 state_count; // 1..32
    u32 initial;
    u32 names_first; // into Names: state_count state names
};

// The hash both sides use for the index and the verdict cache.
inline u64 index_hash(u32 kind, u32 source, u32 target, u32 a, u32 b) {
    u64 h = (static_cast<u64>(source) << 32 | target) * 0x9e3779b97f4a7c15ull;
    h ^= (static_cast<u64>(a) << 32 | b) + 0x632be59bd9b4e5f5ull + (h << 6) + (h >> 2);
    h ^= kind;
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 33);
}

// checksum64: a 64-bit word-wise hash over the blob (fast enough to run in
// the guest kernel at load). It detects corruption and truncation; the
// bundle's Ed25519 signature is what detects tampering.
u64 checksum64(const u8* data, u64 size, u64 checksum_offset);

} // namespace kos::security
