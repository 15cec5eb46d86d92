// The .kpol syntax tree (docs/security-server.md, "The policy language").
//
// The parser (parser.h) produces one File per source; the compiler
// (compiler.h) resolves names across all of them and lowers the result
// into a PolicyModel. Every node carries the position it was written at, so
// resolution errors point at the exact name or value.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace kos::policy::ast {

// A position: file index (into the compiler's file table), 1-based line
// and column (in bytes).
struct Loc {
    uint32_t file = 0;
    uint32_t line = 0;
    uint32_t column = 0;
};

struct Name {
    std::string text;
    Loc loc;
};

// A label set expression: terms joined by + and -, evaluated left to right.
// A term is a label or set name, `any`, or a braced list of names.
struct SetTerm {
    enum class Kind : uint8_t { Name, Any, List };
    Kind kind = Kind::Name;
    char op = '+';           // how it combines with what is left of it ('+' for the first)
    std::vector<Name> names; // Name: one; List: the members
    Loc loc;
};
struct SetExpr {
    std::vector<SetTerm> terms;
    Loc loc;
};

// What a rule covers: `iface.method`, `iface.{m1, m2}`, `iface.*`,
// `class.perm`, `class.{p1, p2}`, `class.*`. `path` holds the dotted prefix
// (for Single, the last element is the member).
struct What {
    enum class Kind : uint8_t { None, Single, List, All };
    Kind kind = Kind::None;
    std::vector<Name> path;
    std::vector<Name> members; // List
    Loc loc;
};

// A literal value in a condition or a test step.
struct Value {
    enum class Kind : uint8_t { Int, String, Address, Range };
    Kind kind = Kind::Int;
    bool negative = false; // Int: -magnitude
    uint64_t magnitude = 0;
    bool hi_negative = false; // Range: lo = (negative, magnitude), hi = (hi_negative, hi_magnitude)
    uint64_t hi_magnitude = 0;
    std::string text; // String: decoded bytes; Address: as written
    Loc loc;
};

struct Condition {
    enum class Op : uint8_t { Eq, Ne, Lt, Le, Gt, Ge, In, NotIn, Glob, NotGlob, Regex, NotRegex };
    Name field;
    Op op = Op::Eq;
    std::vector<Value>
        values; // Eq..Ge: one; In/NotIn: the members (or one range/address); Glob/Regex: one String
    bool braced = false; // In/NotIn: written as {...}
    Loc op_loc;
};

// `when L is S` / `when L is {S1, S2}`
struct When {
    Name label;
    std::vector<Name> states;
    Loc loc;
};

struct Rule {
    enum class Effect : uint8_t { Allow, Deny, Limit, Transition };
    enum class AuditMode : uint8_t { Default, Always, Never };
    Effect effect = Effect::Allow;
    AuditMode audit = AuditMode::Default;
    Name kind; // execute | request | response | security
    SetExpr sources, targets;
    What what;
    std::vector<Condition> conditions;
    std::optional<When> when;
    // Transition: `: FROM -> TO` (from_any: `*` or `any`).
    bool from_any = false;
    std::vector<Name> from_states;
    Name to_state;
    // Limit: `N per DURATION`.
    Value limit_count;
    uint64_t limit_window_ns = 0;
    Loc window_loc;
    Loc loc;
    std::string text; // the rule as written, on one line
};

struct Include {
    std::string path;
    Loc loc;
};
struct Idl {
    std::string path;
    Loc loc;
};
struct LabelDecl {
    bool resource = false;
    std::vector<Name> names;
    Loc loc;
};
struct Trusted {
    SetExpr labels;
    Loc loc;
};
struct SetDef {
    Name name;
    SetExpr expr;
    Loc loc;
};
struct Perm {
    Name name;
    Name flow; // read | write | readwrite | none
};
struct ClassDecl {
    Name name;
    std::vector<Perm> perms;
    Loc loc;
};
// `sensitivity a < b < c`, `integrity ...`, `categories x, y`
struct Family {
    enum class Kind : uint8_t { Sensitivity, Integrity, Categories };
    Kind kind = Kind::Sensitivity;
    std::vector<Name> names;
    Loc loc;
};
// `level L first[:{cats}] [second]`
struct Level {
    Name label;
    std::optional<Name> first;
    std::vector<Name> categories;
    bool has_categories = false;
    std::optional<Name> second;
    Loc loc;
};
struct Machine {
    Name label;
    std::vector<Name> states;
    Name initial;
    Loc loc;
};

// One test step, or (for `kos policy explain`) a request written the same way.
struct FieldAssign {
    Name field;
    Value value;
};
struct Step {
    std::optional<uint64_t> at_ns;
    bool expect_allow = false;
    Name kind;
    Name source, target;
    What what; // Single or None
    std::vector<FieldAssign> fields;
    Loc loc;         // of `expect` (or of the kind when there is none)
    Loc verdict_loc; // of allow/deny
};
struct Test {
    std::string name;
    std::vector<Step> steps;
    Loc loc;
};

using Statement = std::variant<Include, Idl, LabelDecl, Trusted, SetDef, ClassDecl, Family, Level,
                               Machine, Rule, Test>;

struct File {
    std::vector<Statement> statements;
};

} // namespace kos::policy::ast
