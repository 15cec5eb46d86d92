// PolicyModel -> compiled policy blob (engine/kos/security/policy_format.h).
//
// The language front end (parser.h) resolves names, includes, label sets and
// IDL references and lowers a policy into this model; the builder lays out
// the blob: it expands every rule over its sources, targets and methods into
// index keys, resolves condition fields per method, compiles patterns to
// DFAs, marks keys whose verdicts are cacheable, and computes the checksum.
// Everything here is already checked by the front end; the builder still
// refuses inconsistent input (with a message naming the rule) rather than
// writing a blob the engine would misread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kos/idl/model.h"
#include "kos/policy/dfa.h"
#include "kos/security/policy_format.h"
#include "kos/support/result.h"

namespace kos::policy {

using security::Effect;
using security::Kind;

struct LabelDef {
    std::string name;
    security::LabelKind kind = security::LabelKind::Domain;
    bool trusted = false;       // exempt from the lattice families
    uint8_t sensitivity = 0;    // index into PolicyModel::sensitivities
    uint64_t categories = 0;    // bits into PolicyModel::categories
    uint8_t integrity = 0;      // index into PolicyModel::integrity_levels
    std::string where;          // "file:line:column" of the declaration
};

struct PermDef {
    std::string name;
    security::Flow flow = security::Flow::ReadWrite;
};
struct ClassDef {
    std::string name;
    std::vector<PermDef> perms;
};

// A state machine on one resource label.
struct MachineDef {
    uint32_t label = 0; // index into labels
    std::vector<std::string> states; // 1..32
    uint32_t initial = 0;
};

// The names conditions use for the grant lent with a request (not payload
// fields: IDL field names have no dot).
inline constexpr const char* kGrantSizeField = "grant.size";
inline constexpr const char* kGrantWriteField = "grant.write";

// One condition on a field, by field name (resolved per method), or on the
// request's grant (kGrantSizeField, kGrantWriteField).
struct ConditionDef {
    enum class Op { Eq, Ne, Lt, Le, Gt, Ge, InSet, NotInSet, InRanges, NotInRanges,
                    Regex, NotRegex, Glob, NotGlob, InCidr, NotInCidr, BytesEq, BytesNe,
                    BytesInSet, BytesNotInSet };
    std::string field;
    Op op = Op::Eq;
    std::vector<int64_t> ints;             // Eq..Ge: one value; sets; ranges as lo,hi pairs
    std::vector<std::string> strings;      // Regex/Glob: one pattern; BytesEq: one value; BytesInSet: values
    std::vector<security::Cidr> cidrs;     // InCidr
    std::string where;                     // for errors
};

// What a rule covers: for Request/Response rules (interface id, method id)
// pairs; for Security rules (class index, perm index) pairs; for Execute
// rules nothing (the key is (source, target)).
struct OpRef {
    uint32_t a = 0;
    uint32_t b = 0;
};

struct RuleDef {
    Effect effect = Effect::Allow;     // Allow, Deny, Limit or Transition
    Kind kind = Kind::Request;
    security::Audit audit = security::Audit::Default;
    std::vector<uint32_t> sources;     // label indices (sets already expanded)
    std::vector<uint32_t> targets;
    std::vector<OpRef> ops;            // empty for Execute
    std::vector<ConditionDef> conditions; // all must hold
    // `when L is S1|S2`: label index and states (by index in its machine).
    std::optional<std::pair<uint32_t, std::vector<uint32_t>>> when;
    // Transition: from states (empty: any) -> to state, on the target's machine.
    std::vector<uint32_t> from_states;
    uint32_t to_state = 0;
    // Limit: `limit_count` requests per `limit_window_ns`.
    uint64_t limit_count = 0;
    uint64_t limit_window_ns = 0;
    std::string where; // "file:line:column"
    std::string text;  // the rule as written (one line, trimmed)
};

struct PolicyModel {
    std::vector<LabelDef> labels;
    std::vector<std::string> sensitivities;     // low to high; empty: family off
    std::vector<std::string> categories;        // at most 64
    std::vector<std::string> integrity_levels;  // low to high; empty: family off
    std::string sensitivity_where, integrity_where; // declarations, for the built-in rules' text
    std::vector<ClassDef> classes;
    idl::Module idl;                            // every interface rules may name
    std::vector<MachineDef> machines;
    std::vector<RuleDef> rules;                 // in source order; ids start at kFirstUserRule
};

struct BuildLimits {
    uint64_t max_index_keys = 4'000'000; // after expanding sets and wildcards
    uint64_t max_blob_bytes = 256ull << 20;
    DfaLimits dfa;
};

// The compiled policy. Rule i of `model.rules` gets id kFirstUserRule + i.
Result<std::vector<uint8_t>> build_policy(const PolicyModel& model, const BuildLimits& limits = {});

// The pseudo-method Execute rules' conditions use: one field, `program`
// (String, max 4096).
const idl::Method& execute_method();

} // namespace kos::policy
