// The engine against blobs made by the builder from hand-written models
// (the language front end has its own tests on top of these).
#include "kos/security/engine.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "kos/policy/address.h"
#include "kos/policy/builder.h"

namespace kos::security {
namespace {

using policy::ConditionDef;
using policy::PolicyModel;
using policy::RuleDef;

constexpr uint32_t kFiles = 0x10;
constexpr uint32_t kOpen = 1, kRead = 2, kWrite = 3;

// t.Files.open(path: string<64>, flags: u32, mode: i32, addr: ip, port: u16, ok: bool) -> (fd: handle)
// read(fd: handle) -> (data: bytes<64>) [flow read]; write(fd: handle, data: bytes<64>) [flow write]
idl::Module test_idl() {
    using idl::Type;
    auto field = [](const char* n, Type t, uint32_t off, uint32_t max = 0) {
        idl::Field f;
        f.name = n;
        f.type = t;
        f.offset = off;
        f.max_size = max;
        return f;
    };
    idl::Interface in;
    in.name = "t.Files";
    in.id = kFiles;
    idl::Method open;
    open.name = "open";
    open.id = kOpen;
    open.request = {field("path", Type::String, 0, 64), field("flags", Type::U32, 8),
                    field("mode", Type::I32, 12),       field("addr", Type::Ip, 16),
                    field("port", Type::U16, 32),       field("ok", Type::Bool, 34)};
    open.request_fixed_size = 40;
    open.response = {field("fd", Type::Handle, 0)};
    open.response_fixed_size = 8;
    idl::Method read;
    read.name = "read";
    read.id = kRead;
    read.flow = idl::Flow::Read;
    read.request = {field("fd", Type::Handle, 0)};
    read.request_fixed_size = 8;
    read.response = {field("data", Type::Bytes, 0, 64)};
    read.response_fixed_size = 8;
    idl::Method write = read;
    write.name = "write";
    write.id = kWrite;
    write.flow = idl::Flow::Write;
    write.request = {field("fd", Type::Handle, 0), field("data", Type::Bytes, 4, 64)};
    write.request_fixed_size = 16;
    write.response = {};
    write.response_fixed_size = 0;
    in.methods = {write, open, read}; // unsorted on purpose
    idl::Module m;
    m.interfaces.push_back(in);
    return m;
}

enum : uint32_t { kApp, kVfs, kData, kInit, kDoor };

PolicyModel base_model() {
    PolicyModel m;
    m.idl = test_idl();
    auto label = [&](const char* n, LabelKind k) {
        policy::LabelDef l;
        l.name = n;
        l.kind = k;
        m.labels.push_back(l);
    };
    label("app_t", LabelKind::Domain);
    label("vfs_t", LabelKind::Domain);
    label("data_t", LabelKind::Resource);
    label("init_t", LabelKind::Domain);
    label("door_t", LabelKind::Resource);
    policy::ClassDef file{"file", {{"read", Flow::Read}, {"write", Flow::Write}, {"getattr", Flow::None}}};
    m.classes.push_back(file);
    return m;
}

RuleDef rule(Effect e, Kind k, std::vector<uint32_t> src, std::vector<uint32_t> dst,
             std::vector<policy::OpRef> ops, std::string text) {
    RuleDef r;
    r.effect = e;
    r.kind = k;
    r.sources = std::move(src);
    r.targets = std::move(dst);
    r.ops = std::move(ops);
    r.where = "test.kpol:" + std::to_string(text.size()) + ":1";
    r.text = std::move(text);
    return r;
}

ConditionDef cond(std::string field, ConditionDef::Op op, std::vector<int64_t> ints = {},
                  std::vector<std::string> strings = {}) {
    ConditionDef c;
    c.field = std::move(field);
    c.op = op;
    c.ints = std::move(ints);
    c.strings = std::move(strings);
    return c;
}

struct Loaded {
    std::vector<uint8_t> blob;
    std::vector<uint64_t> state;
    Engine engine;

    explicit Loaded(const PolicyModel& m) {
        auto b = policy::build_policy(m);
        EXPECT_TRUE(b) << (b ? "" : b.error().message);
        if (!b)
            return;
        blob = *b;
        state.resize(Engine::required_state_size(blob.data(), blob.size()) / 8 + 1);
        EXPECT_EQ(engine.load(blob.data(), blob.size(), state.data(), state.size() * 8), LoadError::None);
    }
};

// Encodes a t.Files.open request payload.
struct OpenArgs {
    std::string path = "/data/a";
    uint32_t flags = 0;
    int32_t mode = 0;
    std::string addr = "192.0.2.1";
    uint16_t port = 80;
    uint8_t ok = 1;
};
std::vector<uint8_t> encode_open(const OpenArgs& a) {
    std::vector<uint8_t> p(40, 0);
    uint32_t off = 40, size = static_cast<uint32_t>(a.path.size());
    std::memcpy(&p[0], &off, 4);
    std::memcpy(&p[4], &size, 4);
    std::memcpy(&p[8], &a.flags, 4);
    std::memcpy(&p[12], &a.mode, 4);
    auto ip = policy::parse_ip(a.addr);
    EXPECT_TRUE(ip);
    std::memcpy(&p[16], ip->data(), 16);
    std::memcpy(&p[32], &a.port, 2);
    p[34] = a.ok;
    p.insert(p.end(), a.path.begin(), a.path.end());
    return p;
}

Verdict open_verdict(Engine& e, const OpenArgs& a, uint32_t src = kApp, uint32_t dst = kVfs, uint64_t now = 0) {
    std::vector<uint8_t> p = encode_open(a);
    abi::ipc::MessageHeader h{kFiles, kOpen, static_cast<uint32_t>(p.size()), 0};
    return e.decide_message(Kind::Request, src, dst, h, p.data(), static_cast<uint32_t>(p.size()), now);
}

Verdict plain(Engine& e, Kind k, uint32_t src, uint32_t dst, uint32_t a, uint32_t b, uint64_t now = 0) {
    FieldValue fv[2]{};
    Request r{k, src, dst, a, b, fv, 2, now};
    return e.decide(r);
}

TEST(Engine, UnloadedEngineDeniesEverything) {
    Engine e;
    Verdict v = plain(e, Kind::Security, 0, 0, 0, 0);
    EXPECT_FALSE(v.allow);
    EXPECT_EQ(v.rule, kRuleDefaultDeny);
}

TEST(Engine, AllowDefaultDenyAndExplicitDenyWinsWhateverTheOrder) {
    PolicyModel m = base_model();
    m.rules.push_back(rule(Effect::Allow, Kind::Request, {kApp}, {kVfs}, {{kFiles, kRead}}, "allow read"));
    m.rules.push_back(rule(Effect::Allow, Kind::Request, {kApp}, {kVfs}, {{kFiles, kWrite}}, "allow write"));
    m.rules.push_back(rule(Effect::Deny, Kind::Request, {kApp}, {kVfs}, {{kFiles, kWrite}}, "deny write"));
    Loaded l(m);
    Verdict v = plain(l.engine, Kind::Request, kApp, kVfs, kFiles, kRead);
    EXPECT_TRUE(v.allow);
    EXPECT_EQ(v.rule, kFirstUserRule);
    EXPECT_FALSE(v.audit);
    v = plain(l.engine, Kind::Request, kApp, kVfs, kFiles, kWrite);
    EXPECT_FALSE(v.allow);
    EXPECT_EQ(v.rule, kFirstUserRule + 2);
    EXPECT_TRUE(v.audit);
    // Nobody allowed vfs_t -> app_t, nor responses.
    v = plain(l.engine, Kind::Request, kVfs, kApp, kFiles, kRead);
    EXPECT_FALSE(v.allow);
    EXPECT_EQ(v.rule, kRuleDefaultDeny);
    EXPECT_FALSE(plain(l.engine, Kind::Response, kVfs, kApp, kFiles, kRead).allow);
}

TEST(Engine, UnknownInterfaceMethodLabelOrPermissionIsDenied) {
    PolicyModel m = base_model();
    m.rules.push_back(rule(Effect::Allow, Kind::Request, {kApp}, {kVfs}, {{kFiles, kRead}}, "allow read"));
    Loaded l(m);
    EXPECT_EQ(plain(l.engine, Kind::Request, kApp, kVfs, 0x99, kRead).rule, kRuleUnknown);
    EXPECT_EQ(plain(l.engine, Kind::Request, kApp, kVfs, kFiles, 77).rule, kRuleUnknown);
    EXPECT_EQ(plain(l.engine, Kind::Request, 1000, kVfs, kFiles, kRead).rule, kRuleUnknown);
    EXPECT_EQ(plain(l.engine, Kind::Security, kApp, kData, 5, 0).rule, kRuleUnknown);
    EXPECT_EQ(plain(l.engine, static_cast<Kind>(9), kApp, kData, 0, 0).rule, kRuleUnknown);
    EXPECT_FALSE(plain(l.engine, Kind::Request, kApp, kVfs, 0x99, kRead).allow);
}

TEST(Engine, StaticVerdictsAreCachedAndAReloadInvalidatesThem) {
    PolicyModel m = base_model();
    m.rules.push_back(rule(Effect::Allow, Kind::Request, {kApp}, {kVfs}, {{kFiles, kRead}}, "allow read"));
    Loaded l(m);
    Verdict first = plain(l.engine, Kind::Request, kApp, kVfs, kFiles, kRead);
    Verdict second = plain(l.engine, Kind::Request, kApp, kVfs, kFiles, kRead);
    EXPECT_TRUE(first.allow);
    EXPECT_FALSE(first.cached);
    EXPECT_TRUE(second.allow);
    EXPECT_TRUE(second.cached);
    EXPECT_EQ(second.rule, first.rule);
    EXPECT_EQ(l.engine.cache_stats().hits, 1u);

    // The same state buffer, another policy: the cached allow must not survive.
    PolicyModel denying = base_model();
    denying.rules.push_back(rule(Effect::Deny, Kind::Request, {kApp}, {kVfs}, {{kFiles, kRead}}, "deny read"));
    auto blob2 = policy::build_policy(denying);
    ASSERT_TRUE(blob2);
    ASSERT_EQ(l.engine.load(blob2->data(), blob2->size(), l.state.data(), l.state.size() * 8), LoadError::None);
    Verdict after = plain(l.engine, Kind::Request, kApp, kVfs, kFiles, kRead);
    EXPECT_FALSE(after.allow);
    EXPECT_FALSE(after.cached);
}

TEST(Engine, VerdictsThatDependOnFieldsAreNeverCached) {
    PolicyModel m = base_model();
    RuleDef r = rule(Effect::Allow, Kind::Request, {kApp}, {kVfs}, {{kFiles, kOpen}}, "allow open in /data");
    r.conditions.push_back(cond("path", ConditionDef::Op::Glob, {}, {"/data/**"}));
    m.rules.push_back(r);
    Loaded l(m);
    EXPECT_TRUE(open_verdict(l.engine, {.path = "/data/x"}).allow);
    Verdict v = open_verdict(l.engine, {.path = "/etc/shadow"});
    EXPECT_FALSE(v.allow);
    EXPECT_FALSE(v.cached);
    EXPECT_TRUE(open_verdict(l.engine, {.path = "/data/y/z"}).allow);
    EXPECT_EQ(l.engine.cache_stats().hits, 0u);
}

TEST(Engine, ValueConditionsOfEveryKind) {
    using Op = ConditionDef::Op;
    struct Case {
        ConditionDef c;
        OpenArgs yes, no;
    };
    auto cidr = [](const char* s) {
        auto c = policy::parse_cidr(s);
        EXPECT_TRUE(c) << s;
        return *c;
    };
    ConditionDef in_cidr = cond("addr", Op::InCidr);
    in_cidr.cidrs = {cidr("10.0.0.0/8"), cidr("2001:db8::/32")};
    ConditionDef not_cidr = cond("addr", Op::NotInCidr);
    not_cidr.cidrs = {cidr("10.0.0.0/8")};
    std::vector<Case> cases = {
        {cond("flags", Op::Eq, {2}), {.flags = 2}, {.flags = 3}},
        {cond("flags", Op::Ne, {2}), {.flags = 3}, {.flags = 2}},
        {cond("mode", Op::Lt, {0}), {.mode = -5}, {.mode = 5}}, // signed comparison
        {cond("flags", Op::Le, {7}), {.flags = 7}, {.flags = 8}},
        {cond("port", Op::Gt, {1023}), {.port = 8080}, {.port = 80}},
        {cond("port", Op::Ge, {1024}), {.port = 1024}, {.port = 1023}},
        {cond("flags", Op::InSet, {9, 1, 5}), {.flags = 5}, {.flags = 4}},
        {cond("mode", Op::InSet, {-1, 3, -7}), {.mode = -7}, {.mode = 7}},
        {cond("flags", Op::NotInSet, {1, 5}), {.flags = 4}, {.flags = 5}},
        {cond("port", Op::InRanges, {1, 10, 80, 90}), {.port = 85}, {.port = 50}},
        {cond("port", Op::NotInRanges, {1, 1023}), {.port = 1024}, {.port = 22}},
        {cond("path", Op::Regex, {}, {"/data/[a-z]+\\.txt"}), {.path = "/data/ab.txt"}, {.path = "/data/a1.txt"}},
        {cond("path", Op::NotRegex, {}, {".*\\.\\..*"}), {.path = "/data/a"}, {.path = "/data/../etc"}},
        {cond("path", Op::Glob, {}, {"/data/*"}), {.path = "/data/a"}, {.path = "/data/a/b"}},
        {cond("path", Op::NotGlob, {}, {"/etc/**"}), {.path = "/data/a"}, {.path = "/etc/passwd"}},
        {cond("path", Op::BytesEq, {}, {"/data/a"}), {.path = "/data/a"}, {.path = "/data/ab"}},
        {cond("path", Op::BytesNe, {}, {"/data/a"}), {.path = "/data/ab"}, {.path = "/data/a"}},
        {cond("path", Op::BytesInSet, {}, {"/a", "/b"}), {.path = "/b"}, {.path = "/c"}},
        {cond("path", Op::BytesNotInSet, {}, {"/a", "/b"}), {.path = "/c"}, {.path = "/a"}},
        {in_cidr, {.addr = "10.1.2.3"}, {.addr = "11.0.0.1"}},
        {in_cidr, {.addr = "2001:db8::1"}, {.addr = "2001:db9::1"}},
        {not_cidr, {.addr = "192.0.2.1"}, {.addr = "10.0.0.1"}},
        {cond("ok", Op::Eq, {1}), {.ok = 1}, {.ok = 0}},
    };
    for (size_t i = 0; i < cases.size(); ++i) {
        PolicyModel m = base_model();
        RuleDef r = rule(Effect::Allow, Kind::Request, {kApp}, {kVfs}, {{kFiles, kOpen}}, "case " + std::to_string(i));
        r.conditions.push_back(cases[i].c);
        m.rules.push_back(r);
        Loaded l(m);
        EXPECT_TRUE(open_verdict(l.engine, cases[i].yes).allow) << "case " << i;
        EXPECT_FALSE(open_verdict(l.engine, cases[i].no).allow) << "case " << i;
    }
}

TEST(Engine, ConditionsAreTypeChecked) {
    using Op = ConditionDef::Op;
    for (auto c : {cond("path", Op::Eq, {1}), cond("flags", Op::Glob, {}, {"*"}), cond("port", Op::Eq, {70000}),
                   cond("nope", Op::Eq, {1}), cond("addr", Op::InSet, {1}), cond("ok", Op::Eq, {2})}) {
        PolicyModel m = base_model();
        RuleDef r = rule(Effect::Allow, Kind::Request, {kApp}, {kVfs}, {{kFiles, kOpen}}, "typed");
        r.conditions.push_back(c);
        m.rules.push_back(r);
        auto b = policy::build_policy(m);
        EXPECT_FALSE(b) << c.field;
        if (!b)
            EXPECT_NE(b.error().message.find("test.kpol:"), std::string::npos) << b.error().message;
    }
    PolicyModel m = base_model();
    RuleDef r = rule(Effect::Allow, Kind::Request, {kApp}, {kVfs}, {{kFiles, kOpen}}, "bad regex");
    r.conditions.push_back(cond("path", Op::Regex, {}, {"(a"}));
    m.rules.push_back(r);
    EXPECT_FALSE(policy::build_policy(m));
}

TEST(Engine, MalformedMessagesAreDeniedBeforeAnyRule) {
    PolicyModel m = base_model();
    m.rules.push_back(rule(Effect::Allow, Kind::Request, {kApp}, {kVfs}, {{kFiles, kOpen}}, "allow open"));
    Loaded l(m);
    auto verdict = [&](std::vector<uint8_t> p, uint32_t payload_size) {
        abi::ipc::MessageHeader h{kFiles, kOpen, payload_size, 0};
        return l.engine.decide_message(Kind::Request, kApp, kVfs, h, p.data(), payload_size, 0);
    };
    std::vector<uint8_t> good = encode_open({});
    EXPECT_TRUE(verdict(good, good.size()).allow);
    auto with = [&](size_t at, uint32_t value) {
        std::vector<uint8_t> p = good;
        std::memcpy(&p[at], &value, 4);
        return p;
    };
    EXPECT_EQ(verdict(good, 39).rule, kRuleMalformed);                      // shorter than the fixed part
    EXPECT_EQ(verdict(with(0, 8), good.size()).rule, kRuleMalformed);        // string inside the fixed part
    EXPECT_EQ(verdict(with(4, 1000), good.size()).rule, kRuleMalformed);     // string past the end
    EXPECT_EQ(verdict(with(4, 0xffffffff), good.size()).rule, kRuleMalformed); // wraps
    std::vector<uint8_t> long_path = encode_open({.path = std::string(65, 'a')});
    EXPECT_EQ(verdict(long_path, long_path.size()).rule, kRuleMalformed);   // above string<64>
    std::vector<uint8_t> bad_bool = good;
    bad_bool[34] = 2;
    EXPECT_EQ(verdict(bad_bool, good.size()).rule, kRuleMalformed);
    // A header that disagrees with the payload's size.
    abi::ipc::MessageHeader h{kFiles, kOpen, 12, 0};
    EXPECT_EQ(l.engine.decide_message(Kind::Request, kApp, kVfs, h, good.data(), good.size(), 0).rule,
              kRuleMalformed);
}

TEST(Engine, ConfidentialityLatticeWithCategories) {
    PolicyModel m = base_model();
    m.sensitivities = {"public", "internal", "secret"};
    m.categories = {"finance", "hr"};
    m.labels[kApp].sensitivity = 1; // internal:{finance}
    m.labels[kApp].categories = 1;
    m.labels[kVfs].sensitivity = 1; // internal:{finance,hr}
    m.labels[kVfs].categories = 3;
    m.labels[kData].sensitivity = 2; // secret:{finance,hr}
    m.labels[kData].categories = 3;
    m.labels[kInit].trusted = true;
    uint32_t c_file = 0, p_read = 0, p_write = 1, p_getattr = 2;
    for (uint32_t s : {kApp, kVfs, kInit})
        for (uint32_t t : {kApp, kVfs, kData, kInit}) {
            m.rules.push_back(rule(Effect::Allow, Kind::Request, {s}, {t}, {{kFiles, kRead}, {kFiles, kWrite}, {kFiles, kOpen}}, "allow"));
            m.rules.push_back(rule(Effect::Allow, Kind::Security, {s}, {t}, {{c_file, p_read}, {c_file, p_write}, {c_file, p_getattr}}, "allow"));
        }
    Loaded l(m);
    auto sec = [&](uint32_t s, uint32_t o, uint32_t p) { return plain(l.engine, Kind::Security, s, o, c_file, p); };
    EXPECT_FALSE(sec(kApp, kData, p_read).allow); // read up
    EXPECT_EQ(sec(kApp, kData, p_read).rule, kRuleConfidentiality);
    EXPECT_TRUE(sec(kApp, kData, p_write).allow);   // write up is fine
    EXPECT_FALSE(sec(kVfs, kData, p_read).allow);   // read up
    EXPECT_TRUE(sec(kVfs, kData, p_write).allow);
    EXPECT_TRUE(sec(kApp, kData, p_getattr).allow); // no flow
    EXPECT_FALSE(sec(kVfs, kApp, p_write).allow);   // {finance,hr} -> {finance}: write down
    EXPECT_TRUE(sec(kVfs, kApp, p_read).allow);     // read down
    // IPC: write flows client -> server; read flows back; open goes both ways.
    EXPECT_TRUE(plain(l.engine, Kind::Request, kApp, kVfs, kFiles, kWrite).allow);
    EXPECT_FALSE(plain(l.engine, Kind::Request, kApp, kVfs, kFiles, kRead).allow); // hr data to a finance-only client
    EXPECT_FALSE(plain(l.engine, Kind::Request, kApp, kVfs, kFiles, kOpen).allow);
    EXPECT_TRUE(plain(l.engine, Kind::Request, kVfs, kApp, kFiles, kRead).allow);
    EXPECT_TRUE(sec(kInit, kData, p_read).allow); // trusted
}

TEST(Engine, IntegrityLattice) {
    PolicyModel m = base_model();
    m.integrity_levels = {"low", "high"};
    m.labels[kVfs].integrity = 1;
    m.labels[kData].integrity = 1;
    for (uint32_t s : {kApp, kVfs})
        m.rules.push_back(rule(Effect::Allow, Kind::Security, {s}, {kData, kApp}, {{0, 0}, {0, 1}}, "allow"));
    Loaded l(m);
    EXPECT_FALSE(plain(l.engine, Kind::Security, kApp, kData, 0, 1).allow); // write up
    EXPECT_EQ(plain(l.engine, Kind::Security, kApp, kData, 0, 1).rule, kRuleIntegrity);
    EXPECT_TRUE(plain(l.engine, Kind::Security, kApp, kData, 0, 0).allow);  // read up
    EXPECT_FALSE(plain(l.engine, Kind::Security, kVfs, kApp, 0, 0).allow);  // read down
    EXPECT_TRUE(plain(l.engine, Kind::Security, kVfs, kApp, 0, 1).allow);   // write down
    EXPECT_TRUE(plain(l.engine, Kind::Security, kVfs, kData, 0, 1).allow);
}

TEST(Engine, MachinesMoveOnAllowedRequestsAndGateRules) {
    PolicyModel m = base_model();
    m.machines.push_back({kDoor, {"closed", "open", "locked"}, 0});
    RuleDef open = rule(Effect::Transition, Kind::Request, {kApp}, {kDoor}, {{kFiles, kOpen}}, "open: closed -> open");
    open.from_states = {0};
    open.to_state = 1;
    RuleDef close = rule(Effect::Transition, Kind::Request, {kApp}, {kDoor}, {{kFiles, kWrite}}, "write: open -> closed");
    close.from_states = {1};
    close.to_state = 0;
    RuleDef pass = rule(Effect::Allow, Kind::Request, {kApp}, {kDoor}, {{kFiles, kRead}}, "read when open");
    pass.when = std::pair<uint32_t, std::vector<uint32_t>>{kDoor, {1}};
    m.rules = {open, close, pass,
               rule(Effect::Allow, Kind::Request, {kApp}, {kDoor}, {{kFiles, kOpen}, {kFiles, kWrite}}, "allow open, write")};
    Loaded l(m);
    uint32_t door = 0;
    EXPECT_EQ(l.engine.machine_state(door), 0u);
    EXPECT_FALSE(plain(l.engine, Kind::Request, kApp, kDoor, kFiles, kRead).allow);
    EXPECT_TRUE(open_verdict(l.engine, {}, kApp, kDoor).allow);
    EXPECT_EQ(l.engine.machine_state(door), 1u);
    Verdict v = plain(l.engine, Kind::Request, kApp, kDoor, kFiles, kRead);
    EXPECT_TRUE(v.allow);
    EXPECT_FALSE(v.cached);
    FieldValue fv[2]{};
    Request w{Kind::Request, kApp, kDoor, kFiles, kWrite, fv, 2, 0};
    EXPECT_TRUE(l.engine.decide(w).allow);
    EXPECT_EQ(l.engine.machine_state(door), 0u);
    EXPECT_FALSE(plain(l.engine, Kind::Request, kApp, kDoor, kFiles, kRead).allow);
    // A denied request moves nothing.
    open_verdict(l.engine, {}, kVfs, kDoor);
    EXPECT_EQ(l.engine.machine_state(door), 0u);
    l.engine.reset_state();
    EXPECT_EQ(l.engine.machine_state(door), 0u);
}

TEST(Engine, RateLimitsCountAllowedRequestsAndRefillOverTheWindow) {
    PolicyModel m = base_model();
    RuleDef lim = rule(Effect::Limit, Kind::Request, {kApp}, {kVfs}, {{kFiles, kRead}}, "3 per second");
    lim.limit_count = 3;
    lim.limit_window_ns = 1'000'000'000;
    m.rules = {lim, rule(Effect::Allow, Kind::Request, {kApp}, {kVfs}, {{kFiles, kRead}}, "allow read")};
    Loaded l(m);
    uint64_t t = 5'000'000'000;
    for (int i = 0; i < 3; ++i)
        EXPECT_TRUE(plain(l.engine, Kind::Request, kApp, kVfs, kFiles, kRead, t).allow) << i;
    Verdict v = plain(l.engine, Kind::Request, kApp, kVfs, kFiles, kRead, t);
    EXPECT_FALSE(v.allow);
    EXPECT_EQ(v.rule, kFirstUserRule);
    // A third of the window later, one more token.
    t += 334'000'000;
    EXPECT_TRUE(plain(l.engine, Kind::Request, kApp, kVfs, kFiles, kRead, t).allow);
    EXPECT_FALSE(plain(l.engine, Kind::Request, kApp, kVfs, kFiles, kRead, t).allow);
    t += 10'000'000'000;
    for (int i = 0; i < 3; ++i)
        EXPECT_TRUE(plain(l.engine, Kind::Request, kApp, kVfs, kFiles, kRead, t).allow);
    EXPECT_FALSE(plain(l.engine, Kind::Request, kApp, kVfs, kFiles, kRead, t).allow);
}

TEST(Engine, ExecuteRulesMatchTheProgram) {
    PolicyModel m = base_model();
    RuleDef r = rule(Effect::Allow, Kind::Execute, {kInit}, {kApp}, {}, "init may start /usr/bin/*");
    r.conditions.push_back(cond("program", ConditionDef::Op::Glob, {}, {"/usr/bin/*"}));
    m.rules.push_back(r);
    Loaded l(m);
    auto exec = [&](const char* prog, uint32_t src) {
        FieldValue fv{0, reinterpret_cast<const uint8_t*>(prog), static_cast<uint32_t>(strlen(prog))};
        return l.engine.decide(Request{Kind::Execute, src, kApp, 0, 0, &fv, 1, 0});
    };
    EXPECT_TRUE(exec("/usr/bin/app", kInit).allow);
    EXPECT_FALSE(exec("/bin/sh", kInit).allow);
    EXPECT_FALSE(exec("/usr/bin/app", kApp).allow);
    EXPECT_EQ(l.engine.decide(Request{Kind::Execute, kInit, kApp, 0, 0, nullptr, 0, 0}).rule, kRuleMalformed);
}

TEST(Engine, AuditFlagsAndRecords) {
    PolicyModel m = base_model();
    RuleDef loud = rule(Effect::Allow, Kind::Request, {kApp}, {kVfs}, {{kFiles, kOpen}}, "audit allow open");
    loud.audit = Audit::Always;
    RuleDef quiet = rule(Effect::Deny, Kind::Request, {kApp}, {kVfs}, {{kFiles, kWrite}}, "noaudit deny write");
    quiet.audit = Audit::Never;
    m.rules = {loud, quiet};
    Loaded l(m);
    EXPECT_FALSE(plain(l.engine, Kind::Request, kApp, kVfs, kFiles, kWrite).audit);
    EXPECT_TRUE(plain(l.engine, Kind::Request, kApp, kVfs, kFiles, kRead).audit); // default deny

    std::vector<uint8_t> p = encode_open({.path = "/data/report", .flags = 0x42});
    abi::ipc::MessageHeader h{kFiles, kOpen, static_cast<uint32_t>(p.size()), 0};
    Verdict v = l.engine.decide_message(Kind::Request, kApp, kVfs, h, p.data(), p.size(), 77);
    EXPECT_TRUE(v.allow);
    EXPECT_TRUE(v.audit);
    // Rebuild the request the way decide_message saw it, for the record.
    FieldValue fv[6]{};
    std::string path = "/data/report";
    fv[0] = {0, reinterpret_cast<const uint8_t*>(path.data()), static_cast<uint32_t>(path.size())};
    fv[1].integer = 0x42;
    uint8_t ip[16]{};
    fv[3] = {0, ip, 16};
    Request r{Kind::Request, kApp, kVfs, kFiles, kOpen, fv, 6, 77};
    AuditRecord rec;
    ASSERT_TRUE(l.engine.make_audit_record(r, v, rec));
    EXPECT_EQ(rec.sequence, 1u);
    EXPECT_EQ(rec.time_ns, 77u);
    EXPECT_EQ(rec.policy_id, l.engine.policy_id());
    EXPECT_EQ(rec.rule, v.rule);
    EXPECT_EQ(rec.allow, 1);
    ASSERT_GE(rec.data_size, 4 + path.size() + 4 + 8);
    EXPECT_EQ(rec.data[0], 0);                                 // field 0
    EXPECT_EQ(rec.data[1], static_cast<uint8_t>(FieldType::String));
    EXPECT_EQ(rec.data[2] | rec.data[3] << 8, static_cast<int>(path.size()));
    EXPECT_EQ(std::string(reinterpret_cast<char*>(rec.data + 4), path.size()), path);
    size_t next = 4 + path.size();
    EXPECT_EQ(rec.data[next], 1);                              // field 1: flags
    EXPECT_EQ(rec.data[next + 4], 0x42);
    uint32_t size = 0;
    const char* text = l.engine.string(l.engine.rule(v.rule)->text, &size);
    EXPECT_EQ(std::string(text, size), "audit allow open");
}

TEST(Engine, LoadRefusesTruncatedCorruptedAndForeignBlobs) {
    PolicyModel m = base_model();
    m.rules.push_back(rule(Effect::Allow, Kind::Request, {kApp}, {kVfs}, {{kFiles, kRead}}, "allow read"));
    Loaded good(m);
    ASSERT_TRUE(good.engine.loaded());
    std::vector<uint64_t> state(good.state.size());
    Engine e;
    // Every truncation.
    for (size_t n = 0; n < good.blob.size(); n += 7) {
        std::vector<uint8_t> cut(good.blob.begin(), good.blob.begin() + n);
        EXPECT_NE(e.load(cut.data(), cut.size(), state.data(), state.size() * 8), LoadError::None) << n;
        EXPECT_FALSE(e.loaded());
    }
    // Every single-byte corruption.
    for (size_t i = 0; i < good.blob.size(); ++i) {
        std::vector<uint8_t> bad = good.blob;
        bad[i] ^= 0x20;
        EXPECT_NE(e.load(bad.data(), bad.size(), state.data(), state.size() * 8), LoadError::None) << i;
    }
    std::vector<uint8_t> bad = good.blob;
    bad[0] = 'X';
    EXPECT_EQ(e.load(bad.data(), bad.size(), state.data(), state.size() * 8), LoadError::BadMagic);
    EXPECT_EQ(e.load(good.blob.data(), good.blob.size(), state.data(), 64), LoadError::StateTooSmall);
    // After a failed load, nothing is allowed (not even what the last good policy allowed).
    ASSERT_EQ(e.load(good.blob.data(), good.blob.size(), state.data(), state.size() * 8), LoadError::None);
    EXPECT_TRUE(plain(e, Kind::Request, kApp, kVfs, kFiles, kRead).allow);
    EXPECT_NE(e.load(bad.data(), bad.size(), state.data(), state.size() * 8), LoadError::None);
    EXPECT_FALSE(plain(e, Kind::Request, kApp, kVfs, kFiles, kRead).allow);
    EXPECT_STREQ(describe(LoadError::BadChecksum), "the compiled policy is corrupted (checksum mismatch)");
}

TEST(Engine, BuildIsDeterministic) {
    PolicyModel m = base_model();
    for (uint32_t s : {kApp, kVfs, kInit})
        m.rules.push_back(rule(Effect::Allow, Kind::Request, {s}, {kVfs, kApp}, {{kFiles, kRead}, {kFiles, kOpen}}, "r"));
    auto a = policy::build_policy(m), b = policy::build_policy(m);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(*a, *b);
}

TEST(Engine, ExpansionBeyondTheKeyLimitIsRefused) {
    PolicyModel m = base_model();
    m.rules.push_back(rule(Effect::Allow, Kind::Request, {kApp, kVfs, kInit}, {kApp, kVfs, kInit},
                           {{kFiles, kRead}, {kFiles, kOpen}}, "wide"));
    policy::BuildLimits lim;
    lim.max_index_keys = 10;
    auto b = policy::build_policy(m, lim);
    ASSERT_FALSE(b);
    EXPECT_NE(b.error().message.find("narrow this rule"), std::string::npos) << b.error().message;
}

} // namespace
} // namespace kos::security

namespace kos::security {
namespace {

TEST(Engine, ASmallerStateBufferGetsASmallerCacheAndTheSameVerdicts) {
    PolicyModel m = base_model();
    m.rules.push_back(rule(Effect::Allow, Kind::Request, {kApp}, {kVfs}, {{kFiles, kRead}}, "allow read"));
    auto blob = policy::build_policy(m);
    ASSERT_TRUE(blob);
    std::vector<uint64_t> state(2048); // 16 KiB: room for 256 entries
    Engine e;
    ASSERT_EQ(e.load(blob->data(), blob->size(), state.data(), state.size() * 8), LoadError::None);
    EXPECT_TRUE(plain(e, Kind::Request, kApp, kVfs, kFiles, kRead).allow);
    EXPECT_TRUE(plain(e, Kind::Request, kApp, kVfs, kFiles, kRead).cached);
    EXPECT_EQ(e.load(blob->data(), blob->size(), state.data(), 1024), LoadError::StateTooSmall);
    EXPECT_EQ(plain(e, Kind::Request, kApp, kVfs, kFiles, kRead).rule, kRuleDefaultDeny); // unloaded
    ASSERT_EQ(e.load(blob->data(), blob->size(), state.data(), state.size() * 8), LoadError::None);
    EXPECT_TRUE(plain(e, Kind::Request, kApp, kVfs, kFiles, kRead).allow);
    // An invalid kind never aliases a cached verdict of a valid one.
    EXPECT_EQ(plain(e, static_cast<Kind>(2 + 8), kApp, kVfs, kFiles, kRead).rule, kRuleUnknown);
}

} // namespace
} // namespace kos::security

namespace kos::security {
namespace {

TEST(Engine, AnAuditAllowAuditsEvenWhenAnEarlierAllowDecides) {
    PolicyModel m = base_model();
    m.rules.push_back(rule(Effect::Allow, Kind::Request, {kApp}, {kVfs}, {{kFiles, kOpen}}, "allow open"));
    RuleDef loud = rule(Effect::Allow, Kind::Request, {kApp}, {kVfs}, {{kFiles, kOpen}}, "audit allow open of /secret");
    loud.audit = Audit::Always;
    loud.conditions.push_back(cond("path", ConditionDef::Op::BytesEq, {}, {"/secret"}));
    m.rules.push_back(loud);
    Loaded l(m);
    Verdict quiet = open_verdict(l.engine, {.path = "/data/a"});
    EXPECT_TRUE(quiet.allow);
    EXPECT_FALSE(quiet.audit);
    Verdict v = open_verdict(l.engine, {.path = "/secret"});
    EXPECT_TRUE(v.allow);
    EXPECT_TRUE(v.audit);
    EXPECT_EQ(v.rule, kFirstUserRule); // the first allow still decides
}

} // namespace
} // namespace kos::security

namespace kos::security {
namespace {

TEST(Engine, ErrorRepliesCarryNoFieldsAndMatchNoFieldCondition) {
    PolicyModel m = base_model();
    m.rules.push_back(rule(Effect::Allow, Kind::Response, {kVfs}, {kApp}, {{kFiles, kOpen}}, "allow open replies"));
    RuleDef cond_only = rule(Effect::Allow, Kind::Response, {kVfs}, {kApp}, {{kFiles, kRead}}, "read replies of 'ok'");
    cond_only.conditions.push_back(cond("data", ConditionDef::Op::BytesEq, {}, {"ok"}));
    m.rules.push_back(cond_only);
    Loaded l(m);
    abi::ipc::MessageHeader err{kFiles, kOpen, 0, -2};
    EXPECT_TRUE(l.engine.decide_message(Kind::Response, kVfs, kApp, err, nullptr, 0, 0).allow);
    abi::ipc::MessageHeader err_read{kFiles, kRead, 0, -2};
    EXPECT_FALSE(l.engine.decide_message(Kind::Response, kVfs, kApp, err_read, nullptr, 0, 0).allow);
    uint8_t junk[8] = {};
    abi::ipc::MessageHeader err_payload{kFiles, kOpen, 8, -2};
    EXPECT_EQ(l.engine.decide_message(Kind::Response, kVfs, kApp, err_payload, junk, 8, 0).rule, kRuleMalformed);
    // A successful reply without its fixed part is still malformed.
    abi::ipc::MessageHeader ok{kFiles, kOpen, 0, 0};
    EXPECT_EQ(l.engine.decide_message(Kind::Response, kVfs, kApp, ok, nullptr, 0, 0).rule, kRuleMalformed);
}


// --- grants -------------------------------------------------------------------

// t.Blobs: put lends up to 64 KiB the server may write, get up to 8 KiB it
// only reads, ping lends nothing.
constexpr uint32_t kBlobs = 0x20;
constexpr uint32_t kPut = 1, kGet = 2, kPing = 3;

PolicyModel grant_model() {
    PolicyModel m = base_model();
    idl::Interface in;
    in.name = "t.Blobs";
    in.id = kBlobs;
    idl::Field size;
    size.name = "size";
    size.type = idl::Type::U32;
    size.offset = 0;
    idl::Method put;
    put.name = "put";
    put.id = kPut;
    put.request = {size};
    put.request_fixed_size = 8;
    put.grant = idl::Grant::Write;
    put.grant_max = 65536;
    idl::Method get = put;
    get.name = "get";
    get.id = kGet;
    get.grant = idl::Grant::Read;
    get.grant_max = 8192;
    idl::Method ping = put;
    ping.name = "ping";
    ping.id = kPing;
    ping.grant = idl::Grant::None;
    ping.grant_max = 0;
    in.methods = {put, get, ping};
    m.idl.interfaces.push_back(in);
    return m;
}

Verdict grant_verdict(Engine& e, uint32_t method, uint64_t grant_size, bool write, uint32_t size = 16,
                      Kind kind = Kind::Request) {
    uint8_t p[8]{};
    std::memcpy(p, &size, 4);
    abi::ipc::MessageHeader h{kBlobs, method, sizeof p, 0};
    return e.decide_message(kind, kind == Kind::Request ? kApp : kVfs, kind == Kind::Request ? kVfs : kApp, h, p,
                            sizeof p, 0, grant_size, write);
}

TEST(Engine, GrantConditionsJudgeSizeAndWritability) {
    using Op = ConditionDef::Op;
    PolicyModel m = grant_model();
    // put: at most 64 KiB, but nothing over 16 KiB that the server may write.
    RuleDef allow_put = rule(Effect::Allow, Kind::Request, {kApp}, {kVfs}, {{kBlobs, kPut}}, "allow put");
    allow_put.conditions.push_back(cond(policy::kGrantSizeField, Op::Le, {65536}));
    RuleDef deny_put = rule(Effect::Deny, Kind::Request, {kApp}, {kVfs}, {{kBlobs, kPut}}, "deny big writable put");
    deny_put.conditions.push_back(cond(policy::kGrantSizeField, Op::InRanges, {16385, 65536}));
    deny_put.conditions.push_back(cond(policy::kGrantWriteField, Op::Eq, {1}));
    // get: exactly one or two pages, read-only.
    RuleDef allow_get = rule(Effect::Allow, Kind::Request, {kApp}, {kVfs}, {{kBlobs, kGet}}, "allow get");
    allow_get.conditions.push_back(cond(policy::kGrantSizeField, Op::InSet, {8192, 4096}));
    allow_get.conditions.push_back(cond(policy::kGrantWriteField, Op::Ne, {1}));
    m.rules = {allow_put, deny_put, allow_get};
    Loaded l(m);
    EXPECT_EQ(l.blob[8], kPolicyVersion); // uses grant conditions: version 2

    Verdict v = grant_verdict(l.engine, kPut, 4096, false);
    EXPECT_TRUE(v.allow);
    EXPECT_EQ(v.rule, kFirstUserRule);
    EXPECT_TRUE(grant_verdict(l.engine, kPut, 4096, true).allow);
    EXPECT_TRUE(grant_verdict(l.engine, kPut, 32768, false).allow);
    EXPECT_TRUE(grant_verdict(l.engine, kPut, 0, false).allow); // no grant: size 0
    v = grant_verdict(l.engine, kPut, 32768, true);
    EXPECT_FALSE(v.allow);
    EXPECT_EQ(v.rule, kFirstUserRule + 1); // the explicit deny, by its id
    EXPECT_TRUE(v.audit);
    EXPECT_TRUE(grant_verdict(l.engine, kPut, 16384, true).allow); // one below the range
    v = grant_verdict(l.engine, kPut, 65537, false);
    EXPECT_FALSE(v.allow);
    EXPECT_EQ(v.rule, kRuleDefaultDeny);

    EXPECT_TRUE(grant_verdict(l.engine, kGet, 8192, false).allow);
    EXPECT_TRUE(grant_verdict(l.engine, kGet, 4096, false).allow);
    EXPECT_EQ(grant_verdict(l.engine, kGet, 4095, false).rule, kRuleDefaultDeny);
    EXPECT_EQ(grant_verdict(l.engine, kGet, 0, false).rule, kRuleDefaultDeny);
    v = grant_verdict(l.engine, kGet, 4096, true);
    EXPECT_FALSE(v.allow);
    EXPECT_EQ(v.rule, kRuleDefaultDeny);

    // Impossible grants are malformed: with a reply, past the ABI's bound,
    // writable without a size.
    EXPECT_EQ(grant_verdict(l.engine, kPut, 4096, false, 16, Kind::Response).rule, kRuleMalformed);
    EXPECT_EQ(grant_verdict(l.engine, kPut, kMaxGrantSize + 1, false).rule, kRuleMalformed);
    EXPECT_EQ(grant_verdict(l.engine, kPut, 0, true).rule, kRuleMalformed);
    EXPECT_EQ(grant_verdict(l.engine, kPut, kMaxGrantSize, false).rule, kRuleDefaultDeny);

    // The same through decide(): a Request with the grant set.
    FieldValue fv[1]{};
    Request r{Kind::Request, kApp, kVfs, kBlobs, kPut, fv, 1, 0};
    r.grant_size = 20000;
    r.grant_write = true;
    EXPECT_EQ(l.engine.decide(r).rule, kFirstUserRule + 1);
    r.grant_write = false;
    EXPECT_TRUE(l.engine.decide(r).allow);
    EXPECT_TRUE(l.engine.decide_uncached(r).allow);
}

TEST(Engine, TheCacheNeverAnswersForAnotherGrant) {
    using Op = ConditionDef::Op;
    PolicyModel m = grant_model();
    RuleDef small = rule(Effect::Allow, Kind::Request, {kApp}, {kVfs}, {{kBlobs, kPut}}, "allow small put");
    small.conditions.push_back(cond(policy::kGrantSizeField, Op::Le, {4096}));
    // get has no condition: a static key, cached whatever the grant.
    RuleDef any_get = rule(Effect::Allow, Kind::Request, {kApp}, {kVfs}, {{kBlobs, kGet}}, "allow get");
    m.rules = {small, any_get};
    Loaded l(m);
    for (int round = 0; round < 3; ++round) {
        Verdict a = grant_verdict(l.engine, kPut, 4096, false);
        Verdict b = grant_verdict(l.engine, kPut, 4097, false);
        Verdict c = grant_verdict(l.engine, kPut, 65536, true);
        EXPECT_TRUE(a.allow) << round;
        EXPECT_FALSE(b.allow) << round;
        EXPECT_FALSE(c.allow) << round;
        EXPECT_FALSE(a.cached || b.cached || c.cached) << round;
    }
    EXPECT_EQ(l.engine.cache_stats().hits, 0u);
    // A verdict that depends on no condition holds for any grant, so the
    // cache may answer it: the grant is still checked for sense first.
    EXPECT_TRUE(grant_verdict(l.engine, kGet, 0, false).allow);
    Verdict cached = grant_verdict(l.engine, kGet, 8192, false);
    EXPECT_TRUE(cached.allow);
    EXPECT_TRUE(cached.cached);
    Verdict impossible = grant_verdict(l.engine, kGet, kMaxGrantSize + 1, false);
    EXPECT_FALSE(impossible.allow);
    EXPECT_EQ(impossible.rule, kRuleMalformed);
}

TEST(Engine, GrantsAppearFirstInAuditRecords) {
    using Op = ConditionDef::Op;
    PolicyModel m = grant_model();
    RuleDef small = rule(Effect::Allow, Kind::Request, {kApp}, {kVfs}, {{kBlobs, kPut}}, "allow small put");
    small.conditions.push_back(cond(policy::kGrantSizeField, Op::Le, {4096}));
    m.rules = {small};
    Loaded l(m);
    uint32_t size = 99;
    uint8_t p[8]{};
    std::memcpy(p, &size, 4);
    abi::ipc::MessageHeader h{kBlobs, kPut, sizeof p, 0};
    Verdict v = l.engine.decide_message(Kind::Request, kApp, kVfs, h, p, sizeof p, 5, 0x12345, true);
    EXPECT_FALSE(v.allow);
    AuditRecord rec;
    ASSERT_TRUE(l.engine.make_message_audit_record(Kind::Request, kApp, kVfs, h, p, sizeof p, 5, v, rec, 0x12345,
                                                   true));
    EXPECT_EQ(rec.rule, kRuleDefaultDeny);
    ASSERT_EQ(rec.data_size, 12u + 12u + 12u);
    EXPECT_EQ(rec.data[0], kAuditFieldGrantSize);
    EXPECT_EQ(rec.data[1], static_cast<uint8_t>(FieldType::U64));
    uint64_t got = 0;
    std::memcpy(&got, rec.data + 4, 8);
    EXPECT_EQ(got, 0x12345u);
    EXPECT_EQ(rec.data[12], kAuditFieldGrantWrite);
    EXPECT_EQ(rec.data[12 + 4], 1);
    EXPECT_EQ(rec.data[24], 0); // then the payload's field 0: size
    EXPECT_EQ(rec.data[24 + 4], 99);
    // Without a grant the record has the payload's fields only.
    ASSERT_TRUE(l.engine.make_message_audit_record(Kind::Request, kApp, kVfs, h, p, sizeof p, 5, v, rec));
    EXPECT_EQ(rec.data_size, 12u);
    EXPECT_EQ(rec.data[0], 0);
}

TEST(Engine, OnlyPoliciesWithGrantConditionsNeedTheNewFormat) {
    using Op = ConditionDef::Op;
    PolicyModel m = grant_model();
    m.rules = {rule(Effect::Allow, Kind::Request, {kApp}, {kVfs}, {{kBlobs, kPut}}, "allow put")};
    Loaded plain_policy(m);
    EXPECT_EQ(plain_policy.blob[8], kPolicyVersionNoGrants); // readable by engines before grants
    m.rules[0].conditions.push_back(cond(policy::kGrantWriteField, Op::Eq, {0}));
    Loaded with_grants(m);
    EXPECT_EQ(with_grants.blob[8], kPolicyVersion);
    // Another version is refused.
    std::vector<uint8_t> bad = with_grants.blob;
    bad[8] = 3;
    auto* hdr = reinterpret_cast<PolicyHeader*>(bad.data());
    hdr->checksum = checksum64(bad.data(), bad.size(), offsetof(PolicyHeader, checksum));
    std::vector<uint64_t> state(with_grants.state.size());
    Engine e;
    EXPECT_EQ(e.load(bad.data(), bad.size(), state.data(), state.size() * 8), LoadError::BadVersion);
}

TEST(Engine, TheBuilderRefusesGrantConditionsWhereNoGrantIsDeclared) {
    using Op = ConditionDef::Op;
    PolicyModel m = grant_model();
    RuleDef r = rule(Effect::Allow, Kind::Request, {kApp}, {kVfs}, {{kBlobs, kPut}, {kBlobs, kPing}}, "allow");
    r.conditions.push_back(cond(policy::kGrantSizeField, Op::Le, {4096}));
    m.rules = {r};
    auto b = policy::build_policy(m);
    ASSERT_FALSE(b);
    EXPECT_NE(b.error().message.find("'grant.size' on a method that declares no grant"), std::string::npos)
        << b.error().message;
    r = rule(Effect::Allow, Kind::Response, {kVfs}, {kApp}, {{kBlobs, kPut}}, "allow response");
    r.conditions.push_back(cond(policy::kGrantWriteField, Op::Eq, {0}));
    m.rules = {r};
    EXPECT_FALSE(policy::build_policy(m));
    r = rule(Effect::Allow, Kind::Request, {kApp}, {kVfs}, {{kBlobs, kPut}}, "allow");
    r.conditions.push_back(cond(policy::kGrantSizeField, Op::Le, {-1}));
    m.rules = {r};
    b = policy::build_policy(m);
    ASSERT_FALSE(b);
    EXPECT_NE(b.error().message.find("grant size -1 outside 0..67108864"), std::string::npos) << b.error().message;
    r.conditions[0] = cond(policy::kGrantWriteField, Op::Eq, {2});
    m.rules = {r};
    EXPECT_FALSE(policy::build_policy(m));
}

} // namespace
} // namespace kos::security
