// The .kpol front end end to end: parser errors at exact positions
// (attack 14), resolution errors, every rule family through the builder and
// the engine (attacks 16 and 17 among them), policy tests that pass and
// fail, explain, audit records and audit2allow, the bundle hook, and the
// example system policy.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <sys/stat.h>

#include "kos/policy/audit_json.h"
#include "kos/policy/compiler.h"
#include "kos/policy/explain.h"
#include "kos/policy/lexer.h"
#include "kos/policy/parser.h"
#include "kos/security/engine.h"

namespace kos::policy {
namespace {

namespace sec = kos::security;

// Compiles one in-memory file "p.kpol" (plus others), idl from abi/idl.
Result<CompiledPolicy> compile_text(const std::string& text, std::vector<MemorySource> more = {}) {
    std::vector<MemorySource> s = {{"p.kpol", text}};
    s.insert(s.end(), more.begin(), more.end());
    return compile_policy_sources(s);
}

std::string error_of(const std::string& text, std::vector<MemorySource> more = {}) {
    auto r = compile_text(text, std::move(more));
    if (r)
        return "(compiled)";
    return r.error().message;
}

std::string failures(const CompiledPolicy& p) {
    std::string out;
    for (const TestOutcome& t : p.tests)
        for (const std::string& f : t.failures)
            out += f + "\n";
    return out;
}

// Compiles and requires every test block to pass (and at least one step to run).
void expect_passes(const std::string& text) {
    auto r = compile_text(text);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_FALSE(r->tests.empty());
    size_t steps = 0;
    for (const TestOutcome& t : r->tests)
        steps += t.steps;
    EXPECT_GT(steps, 0u);
    EXPECT_TRUE(r->all_tests_passed()) << failures(*r);
}

const std::string kHeader = R"K(idl "vfs.kidl"
idl "net.kidl"
idl "door.kidl"
domain init_t, app_t, web_t, vfs_t, net_t
resource data_t, etc_t, door_t
)K";

// --- parser errors (attack 14) ------------------------------------------------

TEST(PolicyParser, ErrorAtExactPosition) {
    EXPECT_EQ(error_of("domain app_t, vfs_t\nallow request app_t => vfs_t vfs.File.open\n"),
              "p.kpol:2:21: found '=', expected '->'");
    EXPECT_EQ(error_of("domain a_t\nallow request a_t ->\n"),
              "p.kpol:2:21: found end of line, expected a label, a set name, 'any' or '{'");
    EXPECT_EQ(
        error_of("allow fetch a_t -> b_t x.y\n"),
        "p.kpol:1:7: found 'fetch', expected a kind (execute, request, response or security)");
    EXPECT_EQ(error_of("domain a_t\n  frobnicate a_t\n"),
              "p.kpol:2:3: found 'frobnicate', expected a statement (include, idl, domain, "
              "resource, trusted, set, "
              "class, sensitivity, categories, integrity, level, machine, allow, deny, limit, "
              "transition, test)");
    EXPECT_EQ(error_of("include \"x.kpol\nx\n"),
              "p.kpol:1:9: found an unterminated string, expected a closing '\"' on the same line");
    EXPECT_EQ(error_of("domain a_t $\n"), "p.kpol:1:12: found '$', expected a name, number, string "
                                          "or one of { } , . * = + - -> : < > ==");
    EXPECT_EQ(error_of("domain a_t\x01\n"), "p.kpol:1:11: found byte 0x01, expected a name, "
                                            "number, string or one of { } , . * = + - -> : < > ==");
    EXPECT_EQ(error_of("limit request a_t -> b_t x.y 10 per 10\n"),
              "p.kpol:1:37: found '10', expected a duration with a unit (ms, s, m or h)");
    EXPECT_EQ(
        error_of("allow request a_t -> b_t vfs\n"),
        "p.kpol:1:26: found 'vfs', expected interface.method, interface.{...} or interface.*");
    EXPECT_EQ(error_of("allow request a_t -> b_t x.y where n == 99999999999999999999\n"),
              "p.kpol:1:41: found '99999999999999999999', expected an integer of at most 64 bits");
    EXPECT_EQ(error_of("test \"t\" {\n  expect maybe request a -> b x.y\n}\n"),
              "p.kpol:2:10: found 'maybe', expected allow or deny");
    EXPECT_EQ(error_of("test \"t\" {\n  expect allow execute a -> b\n"),
              "p.kpol:3:1: found end of file, expected '}' closing the test started at line 1");
}

TEST(PolicyParser, ContinuationJoinsLinesAndCommentsAreIgnored) {
    auto r =
        compile_text(kHeader + "# a comment\nallow request app_t -> vfs_t \\\n   vfs.File.open \\\n"
                               "   where path glob \"/data/**\"   # why\n");
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->model.rules.size(), 1u);
    EXPECT_EQ(r->model.rules[0].text,
              "allow request app_t -> vfs_t vfs.File.open where path glob \"/data/**\"");
    EXPECT_EQ(r->model.rules[0].where, "p.kpol:7:1");
    EXPECT_EQ(error_of("domain a_t \\ b_t\n"),
              "p.kpol:1:12: found '\\', expected a line continuation ('\\' at the end of a line)");
}

TEST(PolicyParser, SeveralErrorsPerRunCappedAtTwenty) {
    std::string e = error_of("domain a_t\nbogus 1\ndomain\nset = x\n");
    EXPECT_EQ(e, "p.kpol:2:1: found 'bogus', expected a statement (include, idl, domain, resource, "
                 "trusted, set, "
                 "class, sensitivity, categories, integrity, level, machine, allow, deny, limit, "
                 "transition, test)\n"
                 "p.kpol:3:7: found end of line, expected a label name\n"
                 "p.kpol:4:5: found '=', expected the set's name");
    std::string many;
    for (int i = 0; i < 50; ++i)
        many += "domain 1\n";
    e = error_of(many);
    EXPECT_EQ(std::count(e.begin(), e.end(), '\n'), 20); // 20 errors + the note
    EXPECT_NE(e.find("p.kpol:20:8: found '1', expected a label name\n(more errors not shown"),
              std::string::npos)
        << e;
}

TEST(PolicyParser, HugeInputsAreRefusedWithPositions) {
    EXPECT_EQ(error_of(std::string(kMaxSourceBytes + 1, ' ')),
              "p.kpol:1:1: a source of 4194305 bytes (at most 4194304 are allowed)");
    EXPECT_EQ(error_of("domain a_t\n\n" + std::string(70000, 'a') + "\n"),
              "p.kpol:3:1: a line of 70000 bytes (at most 65536 are allowed)");
    // A list longer than the cap.
    std::string big = "set s = {";
    for (size_t i = 0; i <= kMaxListItems; ++i)
        big += "a,\n"; // newlines inside braces: each line is short
    big += "a}\n";
    EXPECT_NE(error_of(big).find("found a list of more than 65536 items"), std::string::npos);
}

TEST(PolicyParser, DeepNestingIsAnErrorNotARecursion) {
    EXPECT_EQ(error_of("set s = " + std::string(60000, '{') + "\n"),
              "p.kpol:1:10: found '{', expected a label or set name");
    std::string lines = "set s = ";
    for (int i = 0; i < 100000; ++i)
        lines += "{\n";
    EXPECT_EQ(error_of(lines), "p.kpol:2:1: found '{', expected a label or set name");
    EXPECT_EQ(error_of("test \"a\" {\ntest \"b\" {\n}\n}\n"),
              "p.kpol:2:1: found 'test', expected 'expect'");
}

TEST(PolicyParser, IncludesCyclesAndDepth) {
    EXPECT_EQ(error_of("include \"b.kpol\"\n", {{"b.kpol", "\ninclude \"p.kpol\"\n"}}),
              "b.kpol:2:1: found an include cycle: \"p.kpol\" includes itself (through 2 file(s))");
    std::vector<MemorySource> chain;
    for (int i = 1; i <= 20; ++i)
        chain.push_back({"f" + std::to_string(i) + ".kpol",
                         "include \"f" + std::to_string(i + 1) + ".kpol\"\n"});
    chain.push_back({"f21.kpol", "domain a_t\n"});
    EXPECT_EQ(error_of("include \"f1.kpol\"\n", chain),
              "f16.kpol:1:1: found an include nested 17 deep, expected at most 16");
    // Relative to the including file; a file included twice is read once.
    auto r = compile_text(
        "include \"sub/a.kpol\"\ninclude \"sub/b.kpol\"\n",
        {{"sub/a.kpol", "include \"b.kpol\"\ndomain a_t\n"}, {"sub/b.kpol", "domain b_t\n"}});
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->model.labels.size(), 2u);
    EXPECT_EQ(error_of("include \"../etc/passwd\"\n"),
              "p.kpol:1:1: include \"../etc/passwd\": outside the bundle (includes name the "
              "bundle's own policy files)");
    EXPECT_EQ(error_of("include \"nope.kpol\"\n"),
              "p.kpol:1:1: include \"nope.kpol\": no policy file nope.kpol in the bundle (list it "
              "in [policy] sources)");
}

TEST(PolicyParser, IncludesOnTheHostAreRelativeToTheFile) {
    std::filesystem::path dir =
        std::filesystem::temp_directory_path() / ("kos_policy_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir / "sub");
    std::ofstream(dir / "main.kpol") << "include \"sub/labels.kpol\"\nallow execute a_t -> a_t\n";
    std::ofstream(dir / "sub" / "labels.kpol") << "domain a_t\ninclude \"../main.kpol\"\n";
    auto r = compile_policy_files({(dir / "main.kpol").string()});
    ASSERT_FALSE(r);
    EXPECT_EQ(
        r.error().message,
        (dir / "sub/labels.kpol").string() +
            ":2:1: found an include cycle: \"../main.kpol\" includes itself (through 2 file(s))");
    std::ofstream(dir / "sub" / "labels.kpol", std::ios::trunc) << "domain a_t\n";
    r = compile_policy_files({(dir / "main.kpol").string()});
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->rule_count(), 1u);
    // Never open what is not a regular file (a FIFO would block).
    ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
    std::ofstream(dir / "f.kpol") << "domain a_t\ninclude \"fifo\"\n";
    auto fifo = compile_policy_files({(dir / "f.kpol").string()});
    ASSERT_FALSE(fifo);
    EXPECT_EQ(fifo.error().message, (dir / "f.kpol").string() + ":2:1: " + (dir / "fifo").string() +
                                        ": not a regular file");
    std::ofstream(dir / "g.kpol") << "idl \"" << (dir / "fifo").string() << "\"\n";
    fifo = compile_policy_files({(dir / "g.kpol").string()});
    ASSERT_FALSE(fifo);
    EXPECT_EQ(fifo.error().message, (dir / "g.kpol").string() + ":1:1: idl \"" +
                                        (dir / "fifo").string() + "\": " + (dir / "fifo").string() +
                                        " is not a regular file");
    auto missing = compile_policy_files({(dir / "none.kpol").string()});
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().message, (dir / "none.kpol").string() + ": no such file");
    std::filesystem::remove_all(dir);
}

TEST(PolicyParser, IdlFilesRelativeToThePolicyThenTheSearchPath) {
    std::filesystem::path dir =
        std::filesystem::temp_directory_path() / ("kos_policy_idl_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir / "idl");
    std::filesystem::create_directories(dir / "extra");
    std::ofstream(dir / "idl" / "demo.kidl")
        << "package demo\ninterface Thing 0x7000 {\n    poke 1 (n: u32) -> ()\n}\n";
    std::ofstream(dir / "extra" / "more.kidl")
        << "package more\ninterface Other 0x7001 {\n    ping 1 () -> ()\n}\n";
    std::ofstream(dir / "p.kpol")
        << "idl \"idl/demo.kidl\"\nidl \"more.kidl\"\nidl \"vfs.kidl\"\ndomain a_t\n"
           "allow request a_t -> a_t demo.Thing.poke where n < 3\n"
           "allow request a_t -> a_t more.Other.ping\nallow request a_t -> a_t vfs.File.close\n"
           "test \"t\" {\n expect allow request a_t -> a_t demo.Thing.poke n=2\n"
           " expect deny request a_t -> a_t demo.Thing.poke n=3\n}\n";
    CompileOptions o;
    o.idl_path.insert(o.idl_path.begin(), (dir / "extra").string());
    auto r = compile_policy_files({(dir / "p.kpol").string()}, o);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_TRUE(r->all_tests_passed()) << failures(*r);
    // Without the extra directory, more.kidl is not found; the message
    // lists every place looked at.
    auto bad = compile_policy_files({(dir / "p.kpol").string()});
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().message,
              (dir / "p.kpol").string() + ":2:1: idl \"more.kidl\" not found (looked at " +
                  (dir / "more.kidl").string() + ", " KOS_IDL_DIR "/more.kidl)");
    // An interface id declared twice across files.
    std::ofstream(dir / "extra" / "more.kidl", std::ios::trunc)
        << "package more\ninterface Other 0x7000 {\n    ping 1 () -> ()\n}\n";
    bad = compile_policy_files({(dir / "p.kpol").string()}, o);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find(
                  ":2:1: idl \"more.kidl\": interface more.Other has id 28672, already used by "
                  "demo.Thing"),
              std::string::npos)
        << bad.error().message;
    std::filesystem::remove_all(dir);
}

// --- resolution errors ------------------------------------------------------------

TEST(PolicyResolver, EveryLabelDeclaredOnceWithBothPlaces) {
    EXPECT_EQ(error_of("domain a_t\nresource b_t, a_t\n"),
              "p.kpol:2:15: label a_t is already declared, as a label at p.kpol:1:8");
    EXPECT_EQ(error_of("domain a_t\nset a_t = { a_t }\n"),
              "p.kpol:2:5: set a_t is already declared, as a label at p.kpol:1:8");
    EXPECT_EQ(error_of("class f { r: read }\nclass f { w: write }\n"),
              "p.kpol:2:7: class f is already declared at p.kpol:1:7");
    EXPECT_EQ(error_of("domain any\n"),
              "p.kpol:1:8: found 'any', expected a label name ('any' means every label)");
}

TEST(PolicyResolver, NamesInRulesResolve) {
    EXPECT_EQ(error_of(kHeader + "allow request app_t -> vfx_t vfs.File.open\n"),
              "p.kpol:6:24: found 'vfx_t', expected a declared label or set");
    EXPECT_EQ(error_of(kHeader + "allow request app_t -> vfs_t vfs.Filez.open\n"),
              "p.kpol:6:30: found 'vfs.Filez', expected an interface declared by an idl file");
    EXPECT_EQ(error_of(kHeader + "allow request app_t -> vfs_t vfs.File.{open, opne}\n"),
              "p.kpol:6:46: found 'opne', expected a method of vfs.File (open, read, write, close, "
              "stat, unlink, "
              "mkdir, rename, readdir, readlink, symlink, link, chmod, set_times, rmdir)");
    EXPECT_EQ(error_of(kHeader + "allow security app_t -> data_t file.read\n"),
              "p.kpol:6:32: found 'file', expected a declared class (declare it: class file { "
              "perm: read, ... })");
    EXPECT_EQ(
        error_of(kHeader +
                 "class file { read: read }\nallow security app_t -> data_t file.{read, write}\n"),
        "p.kpol:7:44: found 'write', expected a permission of class file (read)");
    EXPECT_EQ(error_of(kHeader + "allow request any - any -> vfs_t vfs.File.close\n"),
              "p.kpol:6:15: found a source set with no labels, expected at least one label");
    EXPECT_EQ(error_of("domain a_t\nset s = t + { a_t }\nset t = s\n"),
              "p.kpol:3:9: set s is defined in terms of itself (set at p.kpol:2:5)");
    EXPECT_EQ(error_of("idl \"nosuch.kidl\"\n"),
              "p.kpol:1:1: idl \"nosuch.kidl\" not found (looked at nosuch.kidl (in the "
              "bundle), " KOS_IDL_DIR "/nosuch.kidl)");
}

TEST(PolicyResolver, ConditionFieldsExistWithApplicableTypes) {
    // The field must exist in every method the rule names.
    EXPECT_EQ(error_of(kHeader +
                       "allow request app_t -> vfs_t vfs.File.{open, read} where path == \"/x\"\n"),
              "p.kpol:6:58: found field 'path', expected a field of vfs.File.read (file, size)");
    EXPECT_EQ(
        error_of(kHeader + "allow response vfs_t -> app_t vfs.File.open where path == \"/x\"\n"),
        "p.kpol:6:51: found field 'path', expected a field of vfs.File.open's response (file, mode)");
    EXPECT_EQ(
        error_of(kHeader + "allow request app_t -> vfs_t vfs.File.open where flags glob \"1*\"\n"),
        "p.kpol:6:56: found an operator that does not apply to field 'flags' (u32), expected == != "
        "< <= > >= or in");
    EXPECT_EQ(error_of(kHeader + "allow request app_t -> vfs_t vfs.File.open where path < 3\n"),
              "p.kpol:6:55: found an operator that does not apply to field 'path' (string), "
              "expected ==, !=, in, glob "
              "or regex");
    EXPECT_EQ(
        error_of(kHeader + "allow request app_t -> net_t net.Socket.connect where port == 70000\n"),
        "p.kpol:6:63: found 70000, expected a value in 0..65535 (the field is u16)");
    EXPECT_EQ(error_of(kHeader + "allow request app_t -> vfs_t vfs.File.open where flags == -1\n"),
              "p.kpol:6:59: found -1, expected a value in 0..4294967295 (the field is u32)");
    EXPECT_EQ(error_of(kHeader +
                       "allow request app_t -> net_t net.Socket.connect where address == \"x\"\n"),
              "p.kpol:6:66: found a string, expected an address or network (10.0.0.0/8, "
              "2001:db8::/32) (field "
              "'address' is ip)");
    EXPECT_EQ(
        error_of(kHeader +
                 "allow request app_t -> net_t net.Socket.connect where address in 10.0.0.1/8\n"),
        "p.kpol:6:66: found 10.0.0.1/8, expected a network address (bits after the /prefix must be "
        "0)");
    EXPECT_EQ(
        error_of(kHeader + "allow request app_t -> vfs_t vfs.File.open where path regex \"a(b\"\n")
            .substr(0, 52),
        "p.kpol:6:61: found an invalid regex pattern: regex: ");
    EXPECT_EQ(
        error_of(kHeader + "allow request app_t -> vfs_t vfs.File.open where flags in 5..1\n"),
        "p.kpol:6:59: found an empty range, expected lo..hi with lo <= hi");
    EXPECT_EQ(error_of(kHeader + "allow execute init_t -> app_t where path glob \"/x\"\n"),
              "p.kpol:6:37: found field 'path', expected a field of execute (program)");
    EXPECT_EQ(error_of(kHeader +
                       "class f { r: read }\nallow security app_t -> data_t f.r where x == 1\n"),
              "p.kpol:7:42: found a condition, expected none: security queries carry no fields");
    std::string long_path(1025, 'a');
    EXPECT_NE(error_of(kHeader + "allow request app_t -> vfs_t vfs.File.open where path == \"" +
                       long_path + "\"\n")
                  .find("found a string of 1025 bytes, expected at most 1024"),
              std::string::npos);
}

TEST(PolicyResolver, MachinesLevelsAndLimits) {
    EXPECT_EQ(
        error_of(kHeader + "allow request app_t -> door_t door.Door.pass when door_t is open\n"),
        "p.kpol:6:51: found door_t, expected a label with a machine (declare: machine door_t { ... "
        "} initial ...)");
    EXPECT_EQ(error_of(kHeader + "machine door_t { closed, open } initial ajar\n"),
              "p.kpol:6:41: found 'ajar', expected one of the machine's states");
    EXPECT_EQ(error_of(kHeader +
                       "machine door_t { closed, open } initial closed\n"
                       "transition request app_t -> door_t door.Door.open : closed -> wide\n"),
              "p.kpol:7:63: found 'wide', expected a state of door_t (closed, open)");
    EXPECT_EQ(
        error_of(kHeader + "machine app_t { a } initial a\n"),
        "p.kpol:6:9: found domain app_t, expected a resource label (machines are on resources)");
    EXPECT_EQ(error_of(kHeader + "limit request app_t -> net_t net.Socket.connect 0 per 1s\n"),
              "p.kpol:6:49: found 0, expected a count of 1 to 1000000");
    EXPECT_EQ(
        error_of(kHeader + "limit request app_t -> net_t net.Socket.connect 2000000 per 1s\n"),
        "p.kpol:6:49: found 2000000, expected a count of 1 to 1000000");
    EXPECT_EQ(error_of(kHeader + "limit request app_t -> net_t net.Socket.connect 5 per 2h\n"),
              "p.kpol:6:55: found a window of 7200000000000 ns, expected 1ms to 1h");
    EXPECT_EQ(error_of(kHeader + "sensitivity low < high\nlevel app_t middle\n"),
              "p.kpol:7:13: found 'middle', expected a sensitivity level or an integrity level");
    EXPECT_EQ(
        error_of(kHeader + "sensitivity low < high\nlevel app_t high:{x}\n"),
        "p.kpol:7:19: found 'x', expected a declared category (no `categories` are declared)");
    EXPECT_EQ(error_of(kHeader + "sensitivity low < high\nlevel app_t high\nlevel app_t low\n"),
              "p.kpol:8:1: label app_t already has a level (at p.kpol:7:1)");
}

// --- families end to end ----------------------------------------------------------

TEST(PolicyFamilies, BaseAllowAndDefaultDeny) {
    expect_passes(kHeader + R"K(
allow request app_t -> vfs_t vfs.File.{read, close}
allow response vfs_t -> app_t vfs.File.*
test "t" {
    expect allow request app_t -> vfs_t vfs.File.read file=3 size=10
    expect allow request app_t -> vfs_t vfs.File.close
    expect deny request app_t -> vfs_t vfs.File.write
    expect deny request web_t -> vfs_t vfs.File.read
    expect deny request vfs_t -> app_t vfs.File.read
    expect allow response vfs_t -> app_t vfs.File.open file=1
    expect deny response app_t -> vfs_t vfs.File.open
}
)K");
}

TEST(PolicyFamilies, ExplicitDenyWinsWhateverTheOrder) { // attack 17
    for (bool deny_first : {true, false}) {
        std::string deny = "deny request any -> vfs_t vfs.File.open where path glob \"/etc/**\"\n";
        std::string allow = "allow request app_t -> vfs_t vfs.File.open\n";
        std::string text = kHeader + (deny_first ? deny + allow : allow + deny) + R"K(
test "t" {
    expect allow request app_t -> vfs_t vfs.File.open path="/data/x"
    expect allow request app_t -> vfs_t vfs.File.open path="/etc/shadow"
}
)K";
        auto r = compile_text(text);
        ASSERT_TRUE(r) << r.error().message;
        // The second expectation is wrong on purpose: the failure names the deny rule.
        EXPECT_EQ(failures(*r),
                  std::string("p.kpol:") +
                      "11:5: expected allow, got deny by rule p.kpol:" + (deny_first ? "6" : "7") +
                      ":1 (deny request any -> vfs_t vfs.File.open where path glob \"/etc/**\")\n");
    }
}

TEST(PolicyFamilies, UnknownInterfaceMethodOrFieldIsDenied) { // attack 16
    auto r = compile_text(kHeader + "allow request app_t -> vfs_t vfs.File.*\n");
    ASSERT_TRUE(r) << r.error().message;
    sec::Engine e;
    std::vector<uint64_t> state(
        sec::Engine::required_state_size(r->blob.data(), r->blob.size()) / 8 + 1);
    ASSERT_EQ(e.load(r->blob.data(), r->blob.size(), state.data(), state.size() * 8),
              sec::LoadError::None);
    uint32_t app = e.find_label("app_t", 5), vfs = e.find_label("vfs_t", 5);
    sec::FieldValue f[3] = {};
    static const uint8_t path[] = "/x";
    f[0].data = path;
    f[0].size = 2;
    sec::Request q{sec::Kind::Request, app, vfs, 0x100, 1, f, 3, 0};
    EXPECT_TRUE(e.decide(q).allow);
    // An interface the policy does not know, a method vfs.File does not
    // have: denied, whatever `vfs.File.*` says.
    q.a = 0x999;
    EXPECT_FALSE(e.decide(q).allow);
    q.a = 0x100;
    q.b = 77;
    EXPECT_FALSE(e.decide(q).allow);
    // An interface the policy knows but never mentions: nothing allows it.
    q.a = 0x200;
    q.b = 2;
    sec::Verdict v = e.decide(q);
    EXPECT_FALSE(v.allow);
    // A field the policy never mentions cannot be named in a rule at all.
    EXPECT_EQ(
        error_of(kHeader + "allow request app_t -> vfs_t vfs.File.open where owner == 0\n"),
        "p.kpol:6:50: found field 'owner', expected a field of vfs.File.open (path, flags, mode)");
}

TEST(PolicyFamilies, TypeEnforcementOverSets) {
    expect_passes(kHeader + R"K(
set servers = { vfs_t, net_t }
set clients = any - servers - { init_t }
set apps = clients - web_t
allow request clients -> vfs_t vfs.File.close
allow request apps -> servers vfs.File.stat
test "t" {
    expect allow request app_t -> vfs_t vfs.File.close
    expect allow request web_t -> vfs_t vfs.File.close
    expect allow request data_t -> vfs_t vfs.File.close
    expect deny request init_t -> vfs_t vfs.File.close
    expect deny request net_t -> vfs_t vfs.File.close
    expect allow request app_t -> net_t vfs.File.stat
    expect deny request web_t -> net_t vfs.File.stat
}
)K");
}

TEST(PolicyFamilies, ConfidentialityWithCategories) {
    expect_passes(kHeader + R"K(
class file { read: read, write: write, lock: none }
sensitivity public < internal < secret
categories finance, hr
level app_t internal:{finance}
level web_t public
level data_t internal:{finance, hr}
level etc_t public
trusted vfs_t
allow security { app_t, web_t } -> { data_t, etc_t } file.*
allow request app_t -> web_t vfs.File.write
allow request web_t -> app_t vfs.File.write
allow request app_t -> vfs_t vfs.File.write
test "no read up, no write down" {
    expect deny security app_t -> data_t file.read
    expect allow security app_t -> data_t file.write
    expect allow security app_t -> etc_t file.read
    expect deny security app_t -> etc_t file.write
    expect allow security app_t -> etc_t file.lock
    expect allow security web_t -> etc_t file.write
    expect deny security web_t -> data_t file.read
    expect deny request app_t -> web_t vfs.File.write
    expect allow request web_t -> app_t vfs.File.write
    expect allow request app_t -> vfs_t vfs.File.write
}
)K");
    // The deciding rule is the lattice's built-in one, named where declared.
    auto r = compile_text(kHeader +
                          "class file { read: read }\nsensitivity lo < hi\nlevel data_t hi\n"
                          "allow security app_t -> data_t file.read\n"
                          "test \"t\" {\n expect allow security app_t -> data_t file.read\n}\n");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(failures(*r),
              "p.kpol:11:2: expected allow, got deny by rule p.kpol:7:1 (no read up, no write down "
              "(sensitivity lo < ... < hi))\n");
}

TEST(PolicyFamilies, Integrity) {
    expect_passes(kHeader + R"K(
class file { read: read, write: write }
integrity low < high
level app_t high
level web_t low
level etc_t high
allow security { app_t, web_t } -> etc_t file.*
test "no write up, no read down" {
    expect allow security app_t -> etc_t file.write
    expect deny security web_t -> etc_t file.write
    expect allow security web_t -> etc_t file.read
}
)K");
    expect_passes(kHeader + R"K(
class file { read: read, write: write }
integrity low < high
level app_t high
level data_t low
allow security app_t -> data_t file.*
test "a high subject does not read low data" {
    expect deny security app_t -> data_t file.read
    expect allow security app_t -> data_t file.write
}
)K");
}

TEST(PolicyFamilies, MachinesMoveOnAllowedRequests) {
    expect_passes(kHeader + R"K(
machine door_t { closed, open, locked } initial closed
transition request any -> door_t door.Door.open : closed -> open
transition request app_t -> door_t door.Door.close : * -> closed
transition request init_t -> door_t door.Door.close : {open, closed} -> locked
allow request app_t -> door_t door.Door.pass when door_t is open
allow request app_t -> door_t door.Door.{open, close}
allow request init_t -> door_t door.Door.close when door_t is {open, closed}
test "door" {
    expect deny request app_t -> door_t door.Door.pass
    expect allow request app_t -> door_t door.Door.open
    expect allow request app_t -> door_t door.Door.pass
    expect allow request app_t -> door_t door.Door.close
    expect deny request app_t -> door_t door.Door.pass
    expect allow request init_t -> door_t door.Door.close
    expect allow request app_t -> door_t door.Door.open
    expect deny request app_t -> door_t door.Door.pass
}
test "each test starts from the initial state" {
    expect deny request app_t -> door_t door.Door.pass
}
)K");
}

TEST(PolicyFamilies, ValueMatchingOfEachKind) {
    expect_passes(kHeader + R"K(
allow request app_t -> vfs_t vfs.File.open where flags == 0
allow request app_t -> vfs_t vfs.File.open where flags in {0x40, 0x41} and mode != 0777
allow request app_t -> vfs_t vfs.File.open where flags in {1..2, 0x200..0x201} and path == "/w"
allow request app_t -> vfs_t vfs.File.open where flags > 0x1000 and flags <= 0x2000 and path in {"/a", "/b"}
allow request app_t -> vfs_t vfs.File.stat where path glob "/data/**"
allow request app_t -> vfs_t vfs.File.stat where path regex "/srv/[a-z]+\.(txt|md)"
allow request app_t -> vfs_t vfs.File.unlink where path not glob "/data/**" and path not regex ".*\.keep"
allow request app_t -> vfs_t vfs.File.mkdir where mode not in {0777, 0666}
allow request app_t -> vfs_t vfs.File.mkdir where mode < 8
allow request app_t -> net_t net.Socket.connect where address in {192.0.2.0/24, 2001:db8::/32} and port >= 1024
allow request app_t -> net_t net.Socket.bind where address == ::1 and port == 80
allow request app_t -> vfs_t vfs.File.write where data == "hello"
allow response vfs_t -> app_t vfs.File.stat where mtime < -5 and size > 100
allow request app_t -> net_t net.Socket.socket where proto not in 1..16
test "integers" {
    expect allow request app_t -> vfs_t vfs.File.open flags=0
    expect deny request app_t -> vfs_t vfs.File.open flags=3
    expect allow request app_t -> vfs_t vfs.File.open flags=0x41 mode=0644
    expect deny request app_t -> vfs_t vfs.File.open flags=0x41 mode=0777
    expect allow request app_t -> vfs_t vfs.File.open flags=2 path="/w"
    expect allow request app_t -> vfs_t vfs.File.open flags=0x201 path="/w"
    expect deny request app_t -> vfs_t vfs.File.open flags=0x202 path="/w"
    expect allow request app_t -> vfs_t vfs.File.open flags=0x2000 path="/b"
    expect deny request app_t -> vfs_t vfs.File.open flags=0x2001 path="/b"
    expect deny request app_t -> vfs_t vfs.File.open flags=0x1000 path="/b"
    expect deny request app_t -> vfs_t vfs.File.open flags=0x1500 path="/c"
    expect allow request app_t -> vfs_t vfs.File.mkdir mode=0755
    expect deny request app_t -> vfs_t vfs.File.mkdir mode=0777
    expect allow request app_t -> net_t net.Socket.socket proto=17
    expect deny request app_t -> net_t net.Socket.socket proto=6
}
test "signed" {
    expect allow response vfs_t -> app_t vfs.File.stat mtime=-6 size=101
    expect deny response vfs_t -> app_t vfs.File.stat mtime=-5 size=101
    expect deny response vfs_t -> app_t vfs.File.stat mtime=6 size=101
}
test "strings" {
    expect allow request app_t -> vfs_t vfs.File.stat path="/data/a/b"
    expect allow request app_t -> vfs_t vfs.File.stat path="/data"
    expect allow request app_t -> vfs_t vfs.File.stat path="/srv/notes.md"
    expect deny request app_t -> vfs_t vfs.File.stat path="/srv/notes.mdx"
    expect deny request app_t -> vfs_t vfs.File.stat path="/srv/Notes.md"
    expect allow request app_t -> vfs_t vfs.File.unlink path="/tmp/x"
    expect deny request app_t -> vfs_t vfs.File.unlink path="/data/x"
    expect deny request app_t -> vfs_t vfs.File.unlink path="/tmp/.keep"
    expect allow request app_t -> vfs_t vfs.File.write data="hello"
    expect deny request app_t -> vfs_t vfs.File.write data="hello!"
}
test "addresses" {
    expect allow request app_t -> net_t net.Socket.connect address=192.0.2.77 port=8080
    expect deny request app_t -> net_t net.Socket.connect address=192.0.2.77 port=80
    expect deny request app_t -> net_t net.Socket.connect address=192.0.3.1 port=8080
    expect allow request app_t -> net_t net.Socket.connect address=2001:db8::5 port=8080
    expect deny request app_t -> net_t net.Socket.connect address=2001:db9::5 port=8080
    expect allow request app_t -> net_t net.Socket.bind address=::1 port=80
    expect deny request app_t -> net_t net.Socket.bind address=127.0.0.1 port=80
}
)K");
}

TEST(PolicyFamilies, LimitsOverTime) {
    expect_passes(kHeader + R"K(
allow request app_t -> net_t net.Socket.connect
limit request app_t -> net_t net.Socket.connect 3 per 1s
limit request web_t -> net_t net.Socket.{connect, socket} 2 per 1m
allow request web_t -> net_t net.Socket.{connect, socket}
test "a bucket of 3 per second" {
    at 10s expect allow request app_t -> net_t net.Socket.connect
    expect allow request app_t -> net_t net.Socket.connect
    expect allow request app_t -> net_t net.Socket.connect
    expect deny request app_t -> net_t net.Socket.connect
    at 10500ms expect allow request app_t -> net_t net.Socket.connect
    expect deny request app_t -> net_t net.Socket.connect
    at 12s expect allow request app_t -> net_t net.Socket.connect
}
test "one bucket shared by the methods a limit names" {
    expect allow request web_t -> net_t net.Socket.socket
    expect allow request web_t -> net_t net.Socket.connect
    expect deny request web_t -> net_t net.Socket.socket
    at 1m expect allow request web_t -> net_t net.Socket.connect
}
)K");
}

TEST(PolicyFamilies, CombinationOrder) {
    // A denied request does not use up a limit; a request an explicit deny
    // refuses does not move a machine.
    expect_passes(kHeader + R"K(
allow request app_t -> net_t net.Socket.connect where port == 443
deny request app_t -> net_t net.Socket.connect where address in 10.0.0.0/8
limit request app_t -> net_t net.Socket.connect 2 per 1h
machine door_t { closed, open } initial closed
transition request any -> door_t door.Door.open : closed -> open
deny request web_t -> door_t door.Door.open
allow request { app_t, web_t } -> door_t door.Door.{open, pass}
deny request web_t -> door_t door.Door.pass when door_t is closed
test "deny before limit before allow" {
    expect deny request app_t -> net_t net.Socket.connect address=10.1.1.1 port=443
    expect deny request app_t -> net_t net.Socket.connect address=192.0.2.1 port=80
    expect allow request app_t -> net_t net.Socket.connect address=192.0.2.1 port=443
    expect allow request app_t -> net_t net.Socket.connect address=192.0.2.1 port=443
    expect deny request app_t -> net_t net.Socket.connect address=192.0.2.1 port=443
}
test "a denied request moves no machine" {
    expect deny request web_t -> door_t door.Door.open
    expect deny request web_t -> door_t door.Door.pass
    expect allow request app_t -> door_t door.Door.open
    expect allow request web_t -> door_t door.Door.pass
}
)K");
}

// --- tests blocks ---------------------------------------------------------------

TEST(PolicyTests, FailuresNameTheStepAndTheDecidingRule) {
    auto r = compile_text(kHeader + R"K(allow request app_t -> vfs_t vfs.File.close
test "passes" {
    expect allow request app_t -> vfs_t vfs.File.close
}
test "fails" {
    expect deny request app_t -> vfs_t vfs.File.close
    expect allow request app_t -> vfs_t vfs.File.read
}
)K");
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->tests.size(), 2u);
    EXPECT_TRUE(r->tests[0].passed());
    EXPECT_EQ(r->tests[1].name, "fails");
    EXPECT_EQ(r->tests[1].where, "p.kpol:10:1");
    EXPECT_EQ(r->tests_passed(), 1u);
    EXPECT_EQ(failures(*r), "p.kpol:11:5: expected deny, got allow by rule p.kpol:6:1 (allow "
                            "request app_t -> vfs_t vfs.File.close)\n"
                            "p.kpol:12:5: expected allow, got deny by rule default-deny (default "
                            "deny: no rule allows this)\n");
}

TEST(PolicyTests, StepsAreCheckedLikeRules) {
    EXPECT_EQ(
        error_of(
            kHeader +
            "test \"t\" {\n expect allow request app_t -> vfs_t vfs.File.open pth=\"/x\"\n}\n"),
        "p.kpol:7:52: found field 'pth', expected a field of vfs.File.open (path, flags, mode)");
    EXPECT_EQ(
        error_of(
            kHeader +
            "test \"t\" {\n expect allow request app_t -> vfs_t vfs.File.open flags=\"/x\"\n}\n"),
        "p.kpol:7:58: found a string, expected an integer (field 'flags' is u32)");
    EXPECT_EQ(error_of(kHeader +
                       "test \"t\" {\n expect allow request nobody_t -> vfs_t vfs.File.close\n}\n"),
              "p.kpol:7:23: found 'nobody_t', expected a declared label");
}

TEST(PolicyTests, Warnings) {
    auto r = compile_text(
        kHeader + "sensitivity lo < hi\nlevel vfs_t hi\ntrusted vfs_t\ntest \"empty\" {\n}\n");
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->warnings.size(), 2u);
    EXPECT_EQ(r->warnings[0], "p.kpol:7:1: vfs_t is trusted: the lattices do not apply to it, so "
                              "its level has no effect");
    EXPECT_EQ(r->warnings[1], "p.kpol:9:1: test \"empty\" has no steps");
}

TEST(PolicyTests, TimeOnlyMovesForward) {
    EXPECT_EQ(error_of(kHeader + "test \"t\" {\n at 2s expect deny execute init_t -> app_t\n"
                                 " at 1s expect deny execute init_t -> app_t\n}\n"),
              "p.kpol:8:8: found a time of 1000000000 ns, expected one no earlier than the step "
              "before (2000000000 "
              "ns): time in a test only moves forward");
}

TEST(PolicyResolver, SetExpansionHasABudget) {
    std::string text;
    for (int i = 0; i < 20000; ++i)
        text += "domain l" + std::to_string(i) + "\n";
    for (int i = 0; i < 1000; ++i)
        text += "allow execute any -> any\n";
    auto start = std::chrono::steady_clock::now();
    std::string e = error_of(text);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
    EXPECT_NE(e.find(": found label sets that expand to more than 16777216 labels in all, expected "
                     "smaller sets or "
                     "fewer uses of 'any'"),
              std::string::npos)
        << e.substr(0, 300);
}

// --- explain ----------------------------------------------------------------------

TEST(PolicyExplain, ShowsTheEnginesVerdictAndEveryRuleOfTheKey) {
    auto r = compile_text(
        kHeader + R"K(deny request any -> net_t net.Socket.connect where address in 10.0.0.0/8
allow request app_t -> net_t net.Socket.connect where port == 443
allow request app_t -> vfs_t vfs.File.close
)K");
    ASSERT_TRUE(r) << r.error().message;
    auto e = explain_request(r->blob,
                             "request app_t -> net_t net.Socket.connect address=10.0.0.1 port=443");
    ASSERT_TRUE(e) << e.error().message;
    EXPECT_NE(e->find("verdict: deny"), std::string::npos) << *e;
    EXPECT_NE(e->find("rule:    p.kpol:6:1\n"), std::string::npos) << *e;
    EXPECT_NE(e->find("deny       p.kpol:6:1  applies (address:yes)"), std::string::npos) << *e;
    EXPECT_NE(e->find("allow      p.kpol:7:1  applies (port:yes)"), std::string::npos) << *e;
    e = explain_request(r->blob, "request app_t -> vfs_t vfs.File.close");
    ASSERT_TRUE(e) << e.error().message;
    EXPECT_NE(e->find("verdict: allow"), std::string::npos) << *e;
    EXPECT_NE(e->find("cache:   cacheable"), std::string::npos) << *e;
    EXPECT_NE(e->find("a repeat does\n"), std::string::npos) << *e;
    // A truncated or corrupted blob is refused (attack 15), never half-read.
    std::vector<uint8_t> cut(r->blob.begin(), r->blob.end() - 8);
    e = explain_request(cut, "request app_t -> vfs_t vfs.File.close");
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().message.rfind("the compiled policy does not load: ", 0), 0u)
        << e.error().message;
    std::vector<uint8_t> flipped = r->blob;
    flipped[flipped.size() / 2] ^= 1;
    e = explain_request(flipped, "request app_t -> vfs_t vfs.File.close");
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().message.rfind("the compiled policy does not load: ", 0), 0u)
        << e.error().message;
    e = explain_request(r->blob, "request app_t -> vfs_t vfs.File.open path=1");
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().message, "<request>:1:43: found a value that is not a string, expected a "
                                 "quoted string (field 'path' is string)");
}

// --- grants ------------------------------------------------------------------------

// A bundle's own interface with grants: put lends up to 64 KiB the server
// may write, get up to 8 KiB it only reads, ping nothing.
const MemorySource kBlobsIdl = {"blobs.kidl", R"K(package blobs
interface Store 0x3000 {
    put 1 (size: u32) -> () [grant write 65536]
    get 2 (size: u32) -> (total: u64) [grant read 8192]
    ping 3 () -> ()
}
)K"};
const std::string kGrantHeader = "idl \"blobs.kidl\"\ndomain app_t, store_t\n";

std::string grant_error(const std::string& text) { return error_of(kGrantHeader + text, {kBlobsIdl}); }

TEST(PolicyGrants, SizeAndWritabilityConditions) {
    auto r = compile_text(kGrantHeader + R"K(
allow request app_t -> store_t blobs.Store.put where grant.size <= 65536
deny request app_t -> store_t blobs.Store.put where grant.size in 16385..65536 and grant.write == true
allow request app_t -> store_t blobs.Store.get where grant.size in {4096, 8192} and grant.write == 0
allow request app_t -> store_t blobs.Store.{put, get} where grant.size < 4096 and size == 7
allow response store_t -> app_t blobs.Store.get
test "put: up to 64 KiB, nothing writable over 16 KiB" {
    expect allow request app_t -> store_t blobs.Store.put size=1 grant.size=4096
    expect allow request app_t -> store_t blobs.Store.put grant.size=4096 grant.write=1
    expect allow request app_t -> store_t blobs.Store.put grant.size=16384 grant.write=true
    expect allow request app_t -> store_t blobs.Store.put grant.size=32768
    expect deny request app_t -> store_t blobs.Store.put grant.size=32768 grant.write=1
    expect deny request app_t -> store_t blobs.Store.put grant.size=65536 grant.write=1
    expect allow request app_t -> store_t blobs.Store.put
}
test "get: one or two pages, read-only" {
    expect allow request app_t -> store_t blobs.Store.get grant.size=8192
    expect allow request app_t -> store_t blobs.Store.get grant.size=4096 grant.write=0
    expect deny request app_t -> store_t blobs.Store.get grant.size=100
    expect allow request app_t -> store_t blobs.Store.get grant.size=100 size=7
    expect deny request app_t -> store_t blobs.Store.get
    expect allow request app_t -> store_t blobs.Store.get size=7
    expect allow response store_t -> app_t blobs.Store.get total=5
}
)K",
                          {kBlobsIdl});
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->tests.size(), 2u);
    EXPECT_TRUE(r->all_tests_passed()) << failures(*r);
    EXPECT_EQ(r->tests[0].steps + r->tests[1].steps, 14u);
    // A policy with grant conditions needs an engine that knows them.
    EXPECT_EQ(reinterpret_cast<const sec::PolicyHeader*>(r->blob.data())->version, sec::kPolicyVersion);
    auto plain = compile_text(kGrantHeader + "allow request app_t -> store_t blobs.Store.put\n", {kBlobsIdl});
    ASSERT_TRUE(plain) << plain.error().message;
    EXPECT_EQ(reinterpret_cast<const sec::PolicyHeader*>(plain->blob.data())->version,
              sec::kPolicyVersionNoGrants);
}

TEST(PolicyGrants, BadConditionsAreErrorsAtTheirPosition) {
    // Only where the IDL declares a grant.
    EXPECT_EQ(grant_error("allow request app_t -> store_t blobs.Store.ping where grant.size <= 4096\n"),
              "p.kpol:3:55: found 'grant.size' for blobs.Store.ping, expected a method that declares a "
              "grant ([grant read N] or [grant write N] in its IDL): blobs.Store.ping lends none");
    EXPECT_EQ(grant_error("allow request app_t -> store_t blobs.Store.* where grant.write == 0\n"),
              "p.kpol:3:52: found 'grant.write' for blobs.Store.ping, expected a method that declares a "
              "grant ([grant read N] or [grant write N] in its IDL): blobs.Store.ping lends none");
    // Only requests lend memory.
    EXPECT_EQ(grant_error("allow response store_t -> app_t blobs.Store.get where grant.size < 10\n"),
              "p.kpol:3:55: found 'grant.size' in a response rule, expected it in a request rule: only a "
              "request lends memory");
    EXPECT_EQ(grant_error("allow execute app_t -> app_t where grant.size < 10\n"),
              "p.kpol:3:36: found 'grant.size' in an execute rule, expected it in a request rule: only a "
              "request lends memory");
    // Sizes: 0 to 64 MiB, no negative or overflowing values.
    EXPECT_EQ(grant_error("allow request app_t -> store_t blobs.Store.put where grant.size <= -1\n"),
              "p.kpol:3:68: found -1, expected a grant size of 0 to 67108864 bytes (64 MiB)");
    EXPECT_EQ(grant_error("allow request app_t -> store_t blobs.Store.put where grant.size < 67108865\n"),
              "p.kpol:3:67: found 67108865, expected a grant size of 0 to 67108864 bytes (64 MiB)");
    EXPECT_EQ(grant_error("allow request app_t -> store_t blobs.Store.put where grant.size in {1, 2..0x8000000}\n"),
              "p.kpol:3:72: found 134217728, expected a grant size of 0 to 67108864 bytes (64 MiB)");
    EXPECT_EQ(
        grant_error("allow request app_t -> store_t blobs.Store.put where grant.size < 99999999999999999999\n"),
        "p.kpol:3:67: found '99999999999999999999', expected an integer of at most 64 bits");
    EXPECT_EQ(grant_error("allow request app_t -> store_t blobs.Store.put where grant.size in 9..8\n"),
              "p.kpol:3:68: found an empty range, expected lo..hi with lo <= hi");
    // Writability is a bool.
    EXPECT_EQ(grant_error("allow request app_t -> store_t blobs.Store.put where grant.write == 2\n"),
              "p.kpol:3:69: found 2, expected a value in 0 or 1 (the field is bool)");
    EXPECT_EQ(grant_error("allow request app_t -> store_t blobs.Store.put where grant.write glob \"1\"\n"),
              "p.kpol:3:66: found an operator that does not apply to field 'grant.write' (bool), expected "
              "== != < <= > >= or in");
    // Other names after `grant.` are not fields.
    EXPECT_EQ(grant_error("allow request app_t -> store_t blobs.Store.put where grant.colour == 1\n"),
              "p.kpol:3:54: found field 'grant.colour', expected a field of blobs.Store.put (size, "
              "grant.size, grant.write)");
    EXPECT_EQ(grant_error("allow request app_t -> store_t blobs.Store.put where grant. == 1\n"),
              "p.kpol:3:61: found '==', expected size or write (grant.size, grant.write)");
}

TEST(PolicyGrants, TestStepsCheckGrantsLikeTheIdl) {
    auto step = [](const std::string& s) {
        return grant_error("allow request app_t -> store_t blobs.Store.*\ntest \"t\" {\n expect allow " + s +
                           "\n}\n");
    };
    EXPECT_EQ(step("request app_t -> store_t blobs.Store.put grant.size=65537"),
              "p.kpol:5:67: found 65537, expected 0..65536 (the largest grant blobs.Store.put declares, "
              "in bytes)");
    EXPECT_EQ(step("request app_t -> store_t blobs.Store.put grant.size=-1"),
              "p.kpol:5:67: found -1, expected 0..65536 (the largest grant blobs.Store.put declares, in "
              "bytes)");
    EXPECT_EQ(step("request app_t -> store_t blobs.Store.get grant.size=1 grant.write=1"),
              "p.kpol:5:81: found 1, expected 0: blobs.Store.get declares a read-only grant ([grant read N])");
    EXPECT_EQ(step("request app_t -> store_t blobs.Store.put grant.write=1"),
              "p.kpol:5:68: found grant.write=1 without a grant.size, expected the size of the writable "
              "grant (1 or more bytes)");
    EXPECT_EQ(step("request app_t -> store_t blobs.Store.ping grant.size=1"),
              "p.kpol:5:57: found field 'grant.size', expected a field of blobs.Store.ping (it has none)");
    EXPECT_EQ(step("response store_t -> app_t blobs.Store.get grant.size=1"),
              "p.kpol:5:57: found field 'grant.size', expected a field of blobs.Store.get (total)");
}

TEST(PolicyGrants, ExplainAndAuditNameTheGrant) {
    auto r = compile_text(kGrantHeader + R"K(
allow request app_t -> store_t blobs.Store.put where grant.size <= 65536
deny request app_t -> store_t blobs.Store.put where grant.size > 16384 and grant.write == 1
)K",
                          {kBlobsIdl});
    ASSERT_TRUE(r) << r.error().message;
    auto e = explain_request(r->blob, "request app_t -> store_t blobs.Store.put size=3 grant.size=32768 grant.write=1");
    ASSERT_TRUE(e) << e.error().message;
    EXPECT_NE(e->find("verdict: deny"), std::string::npos) << *e;
    EXPECT_NE(e->find("rule:    p.kpol:5:1\n"), std::string::npos) << *e;
    EXPECT_NE(e->find("deny       p.kpol:5:1  applies (grant.size:yes grant.write:yes)"), std::string::npos) << *e;
    EXPECT_NE(e->find("allow      p.kpol:4:1  applies (grant.size:yes)"), std::string::npos) << *e;
    EXPECT_NE(e->find("not cacheable"), std::string::npos) << *e;
    e = explain_request(r->blob, "request app_t -> store_t blobs.Store.put grant.size=32768");
    ASSERT_TRUE(e) << e.error().message;
    EXPECT_NE(e->find("verdict: allow"), std::string::npos) << *e;
    EXPECT_NE(e->find("deny       p.kpol:5:1  does not apply (grant.size:yes grant.write:no)"), std::string::npos)
        << *e;

    sec::Engine eng;
    std::vector<uint64_t> state(sec::Engine::required_state_size(r->blob.data(), r->blob.size()) / 8 + 1);
    ASSERT_EQ(eng.load(r->blob.data(), r->blob.size(), state.data(), state.size() * 8), sec::LoadError::None);
    uint32_t app = eng.find_label("app_t", 5), store = eng.find_label("store_t", 7);
    sec::FieldValue f[1] = {};
    f[0].integer = 3;
    sec::Request q{sec::Kind::Request, app, store, 0x3000, 1, f, 1, 9};
    q.grant_size = 32768;
    q.grant_write = true;
    sec::Verdict v = eng.decide(q);
    ASSERT_FALSE(v.allow);
    sec::AuditRecord rec;
    ASSERT_TRUE(eng.make_audit_record(q, v, rec));
    EXPECT_EQ(render_audit_human(eng, rec), "kos: denied request app_t -> store_t blobs.Store.put grant.size=32768 "
                                            "grant.write=1 size=3 [rule p.kpol:5:1]");
    std::string json = render_audit_json(eng, rec);
    EXPECT_NE(json.find("\"rule_id\":" + std::to_string(v.rule)), std::string::npos) << json;
    EXPECT_NE(json.find("\"fields\":{\"grant.size\":32768,\"grant.write\":1,\"size\":3}"), std::string::npos)
        << json;
    auto a = parse_audit_json(json);
    ASSERT_TRUE(a) << a.error().message;
    ASSERT_EQ(a->fields.size(), 3u);
    EXPECT_EQ(a->fields[0], std::make_pair(std::string("grant.size"), std::string("32768")));
}

// --- audit records -------------------------------------------------------------------

class Audit : public ::testing::Test {
  protected:
    void SetUp() override {
        auto r = compile_text(kHeader + R"K(class file { read: read, write: write }
allow request app_t -> vfs_t vfs.File.open where path glob "/data/**"
deny request app_t -> net_t net.Socket.connect where address in 10.0.0.0/8
allow security app_t -> data_t file.read
)K");
        ASSERT_TRUE(r) << r.error().message;
        m_blob = std::move(r->blob);
        m_state.resize(sec::Engine::required_state_size(m_blob.data(), m_blob.size()) / 8 + 1);
        ASSERT_EQ(m_e.load(m_blob.data(), m_blob.size(), m_state.data(), m_state.size() * 8),
                  sec::LoadError::None);
        char id[17];
        std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(m_e.policy_id()));
        m_id = id;
    }
    sec::AuditRecord record(const sec::Request& q) {
        sec::Verdict v = m_e.decide(q);
        sec::AuditRecord rec;
        EXPECT_TRUE(m_e.make_audit_record(q, v, rec));
        return rec;
    }
    uint32_t label(const char* n) {
        return m_e.find_label(n, static_cast<uint32_t>(std::strlen(n)));
    }

    std::vector<uint8_t> m_blob;
    std::vector<uint64_t> m_state;
    sec::Engine m_e;
    std::string m_id;
};

TEST_F(Audit, RequestRecordAsJsonAndHumanLine) {
    static const char path[] = "/etc/x";
    sec::FieldValue f[3] = {};
    f[0].data = reinterpret_cast<const uint8_t*>(path);
    f[0].size = 6;
    f[1].integer = 0;
    f[2].integer = 0644;
    sec::Request q{sec::Kind::Request, label("app_t"), label("vfs_t"), 0x100, 1, f, 3, 42};
    sec::AuditRecord rec = record(q);
    EXPECT_EQ(render_audit_json(m_e, rec),
              "{\"seq\":1,\"time_ns\":42,\"policy\":\"" + m_id +
                  "\",\"verdict\":\"deny\",\"rule\":\"default-deny\",\"rule_id\":0,\"rule_text\":"
                  "\"default deny: no rule "
                  "allows "
                  "this\",\"kind\":\"request\",\"source\":\"app_t\",\"target\":\"vfs_t\","
                  "\"interface\":\"vfs.File\","
                  "\"method\":\"open\",\"fields\":{\"path\":\"/etc/"
                  "x\",\"flags\":0,\"mode\":420},\"cached\":false}");
    EXPECT_EQ(render_audit_human(m_e, rec), "kos: denied request app_t -> vfs_t vfs.File.open "
                                            "path=\"/etc/x\" flags=0 mode=420 [rule default-deny]");
    // And back: the parser reads what the renderer writes.
    auto a = parse_audit_json(render_audit_json(m_e, rec));
    ASSERT_TRUE(a) << a.error().message;
    EXPECT_FALSE(a->allow);
    EXPECT_EQ(a->seq, 1u);
    EXPECT_EQ(a->interface, "vfs.File");
    EXPECT_EQ(a->method, "open");
    EXPECT_EQ(a->rule, "default-deny");
    ASSERT_EQ(a->fields.size(), 3u);
    EXPECT_EQ(a->fields[0], std::make_pair(std::string("path"), std::string("\"/etc/x\"")));
}

TEST_F(Audit, DenyRuleSecurityAndExecuteRecords) {
    uint8_t addr[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3};
    sec::FieldValue f[3] = {};
    f[0].data = addr;
    f[0].size = 16;
    f[1].integer = 443;
    f[2].integer = 6;
    sec::Request q{sec::Kind::Request, label("app_t"), label("net_t"), 0x200, 2, f, 3, 0};
    sec::AuditRecord rec = record(q);
    EXPECT_EQ(render_audit_human(m_e, rec),
              "kos: denied request app_t -> net_t net.Socket.connect address=10.1.2.3 "
              "port=443 proto=6 [rule p.kpol:8:1]");
    std::string j = render_audit_json(m_e, rec);
    EXPECT_NE(
        j.find("\"rule\":\"p.kpol:8:1\",\"rule_id\":6,\"rule_text\":\"deny request app_t -> net_t "
               "net.Socket.connect where address in 10.0.0.0/8\""),
        std::string::npos)
        << j;
    EXPECT_NE(j.find("\"fields\":{\"address\":\"10.1.2.3\",\"port\":443,\"proto\":6}"),
              std::string::npos)
        << j;

    sec::Request s{sec::Kind::Security, label("app_t"), label("data_t"), 0, 0, nullptr, 0, 7};
    j = render_audit_json(m_e, record(s));
    EXPECT_NE(j.find("\"verdict\":\"allow\",\"rule\":\"p.kpol:9:1\""), std::string::npos) << j;
    EXPECT_NE(j.find("\"kind\":\"security\",\"source\":\"app_t\",\"target\":\"data_t\",\"class\":"
                     "\"file\",\"perm\":\"read\""),
              std::string::npos)
        << j;

    static const char prog[] = "/bin/sh";
    sec::FieldValue p{0, reinterpret_cast<const uint8_t*>(prog), 7};
    sec::Request x{sec::Kind::Execute, label("init_t"), label("app_t"), 0, 0, &p, 1, 0};
    j = render_audit_json(m_e, record(x));
    EXPECT_NE(j.find("\"kind\":\"execute\",\"source\":\"init_t\",\"target\":\"app_t\",\"program\":"
                     "\"/bin/sh\""),
              std::string::npos)
        << j;
    EXPECT_EQ(j.find("\"fields\""), std::string::npos) << j;
}

TEST(AuditJson, ParserRefusesBadLines) {
    EXPECT_EQ(parse_audit_json("not json").error().message, "not a JSON object");
    EXPECT_EQ(parse_audit_json("[1]").error().message, "not a JSON object");
    EXPECT_EQ(parse_audit_json(R"K({"kind":"request"})K").error().message, "no \"verdict\" key");
    EXPECT_EQ(parse_audit_json(R"K({"verdict":"maybe","kind":"request"})K").error().message,
              "\"verdict\" is \"maybe\", expected allow or deny");
    EXPECT_EQ(parse_audit_json(R"K({"verdict":"deny","kind":"request","source":"a","target":"b"})K")
                  .error()
                  .message,
              "no \"interface\" key");
    EXPECT_EQ(parse_audit_json(R"K({"verdict":"deny","kind":"execute","source":1,"target":"b"})K")
                  .error()
                  .message,
              "\"source\" is not a string");
}

TEST(AuditJson, Audit2AllowGroupsDenialsByKey) {
    std::vector<std::string> lines = {
        R"K({"seq":1,"verdict":"deny","rule":"default-deny","rule_id":0,"kind":"request","source":"app_t","target":"vfs_t","interface":"vfs.File","method":"open","fields":{"path":"/etc/x","flags":0}})K",
        R"K({"seq":2,"verdict":"deny","rule":"default-deny","rule_id":0,"kind":"request","source":"app_t","target":"vfs_t","interface":"vfs.File","method":"open","fields":{"path":"/etc/y","flags":1}})K",
        R"K({"seq":3,"verdict":"allow","rule":"p.kpol:3:1","rule_id":5,"kind":"request","source":"app_t","target":"vfs_t","interface":"vfs.File","method":"read","fields":{}})K",
        R"K({"seq":4,"verdict":"deny","rule":"default-deny","rule_id":0,"kind":"security","source":"app_t","target":"etc_t","class":"file","perm":"read"})K",
        R"K({"seq":5,"verdict":"deny","rule":"default-deny","rule_id":0,"kind":"execute","source":"init_t","target":"app_t","program":"/bin/b"})K",
        R"K({"seq":6,"verdict":"deny","rule":"default-deny","rule_id":0,"kind":"execute","source":"init_t","target":"app_t","program":"/bin/a"})K",
        R"K({"seq":7,"verdict":"deny","rule":"p.kpol:9:1","rule_id":9,"rule_text":"deny request any -> net_t net.Socket.*","kind":"request","source":"app_t","target":"net_t","interface":"net.Socket","method":"connect","fields":{"address":"10.0.0.1"}})K",
    };
    std::vector<AuditEntry> entries;
    for (const std::string& l : lines) {
        auto e = parse_audit_json(l);
        ASSERT_TRUE(e) << e.error().message;
        entries.push_back(*e);
    }
    EXPECT_EQ(
        audit2allow(entries),
        "# audit2allow: 6 denials in 7 records; review every rule before adding it to a policy\n"
        "# 2 denials\n"
        "allow execute init_t -> app_t where program in {\"/bin/a\", \"/bin/b\"}\n"
        "# 2 denials, e.g. path=\"/etc/x\" flags=0\n"
        "allow request app_t -> vfs_t vfs.File.open\n"
        "# 1 denial\n"
        "allow security app_t -> etc_t file.read\n"
        "# not suggested: 1 denial by rule p.kpol:9:1 (deny request any -> net_t net.Socket.*): an "
        "allow "
        "cannot override it\n");
}

// --- the bundle hook ------------------------------------------------------------

TEST(BundlePolicy, CompilesAmongTheBundlesOwnFiles) {
    std::vector<MemorySource> src = {
        {"policy/app.kpol",
         "include \"common/labels.kpol\"\nallow execute init_t -> app_t\n"
         "test \"t\" {\n expect allow execute init_t -> app_t program=\"/x\"\n}\n"},
        {"policy/common/labels.kpol", "domain init_t, app_t\n"},
    };
    auto blob = compile_bundle_policy("app_t", src);
    ASSERT_TRUE(blob) << blob.error().message;
    EXPECT_GT(blob->size(), sizeof(sec::PolicyHeader));
    // The domain must be declared (as a domain).
    auto bad = compile_bundle_policy("web_t", src);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().message,
              "the bundle's domain \"web_t\" is not declared as a domain in its policy (add: "
              "domain web_t)");
    // A failing test refuses the bundle.
    src[0].text += "test \"u\" {\n expect deny execute init_t -> app_t\n}\n";
    bad = compile_bundle_policy("app_t", src);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().message,
              "the policy's tests fail:\npolicy/app.kpol:7:2: expected deny, got allow by rule "
              "policy/app.kpol:2:1 (allow execute init_t -> app_t)");
    // Includes never leave the bundle.
    bad = compile_bundle_policy("app_t", {{"policy/app.kpol", "include \"../../etc/x.kpol\"\n"}});
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().message,
              "policy/app.kpol:1:1: include \"../../etc/x.kpol\": outside the bundle (includes "
              "name the bundle's own policy files)");
    bad = compile_bundle_policy("app_t", {{"policy/app.kpol", "include \"/etc/passwd\"\n"}});
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("outside the bundle"), std::string::npos);
    // A placeholder policy that declares nothing denies everything.
    EXPECT_TRUE(compile_bundle_policy("app_t", {{"policy/app.kpol", "# nothing yet\n"}}));
}

// --- the example system policy --------------------------------------------------

TEST(ExamplePolicy, CompilesAndItsTestsPass) {
    std::vector<std::string> files;
    for (const auto& e : std::filesystem::directory_iterator(KOS_EXAMPLE_POLICIES))
        if (e.path().extension() == ".kpol")
            files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    ASSERT_GE(files.size(), 4u);
    auto r = compile_policy_files(files);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_GE(r->tests.size(), 6u);
    EXPECT_TRUE(r->all_tests_passed()) << failures(*r);
    EXPECT_GE(r->rule_count(), 25u);
    auto e = explain_request(
        r->blob,
        "request app_t -> net_t net.Socket.connect address=169.254.169.254 port=80 proto=6");
    ASSERT_TRUE(e) << e.error().message;
    EXPECT_NE(e->find("verdict: deny (audited)"), std::string::npos) << *e;
    EXPECT_NE(e->find("app.kpol:14:1"), std::string::npos) << *e;
    e = explain_request(r->blob, "request app_t -> door_t door.Door.pass");
    ASSERT_TRUE(e) << e.error().message;
    EXPECT_NE(e->find("does not apply (state:no (door_t is closed))"), std::string::npos) << *e;
    e = explain_request(r->blob, "request app_t -> door_t door.Door.open");
    ASSERT_TRUE(e) << e.error().message;
    EXPECT_NE(e->find("applies [closed -> open, if the request is allowed]"), std::string::npos) << *e;
}

} // namespace
} // namespace kos::policy
