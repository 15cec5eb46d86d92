// The .kidl parser: the system interfaces, the layout, and every error with
// its exact file:line:column.
#include "kos/idl/model.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <format>
#include <fstream>
#include <string>
#include <unistd.h>

#include "kos/ipc.h"

namespace kos::idl {
namespace {

std::string abi(const char* name) {
    return std::string(KOS_IDL_ABI_DIR) + "/" + name;
}

// The error parse_idl gives for `src` (origin "t.kidl"), or "" if it parses.
std::string error_of(std::string_view src) {
    auto m = parse_idl(src, "t.kidl");
    return m ? std::string() : m.error().message;
}

Module parse_ok(std::string_view src) {
    auto m = parse_idl(src, "t.kidl");
    EXPECT_TRUE(m) << m.error().message;
    return m ? *m : Module{};
}

TEST(IdlParse, EverySystemInterface) {
    auto m = load_idl_files(
        {abi("vfs.kidl"), abi("net.kidl"), abi("proc.kidl"), abi("door.kidl"), abi("pipe.kidl"), abi("echo.kidl")});
    ASSERT_TRUE(m) << m.error().message;
    EXPECT_EQ(m->interfaces.size(), 6u);
    const Interface* pipe = m->find("pipe.Pipe");
    ASSERT_NE(pipe, nullptr);
    EXPECT_EQ(pipe->id, 0x500u);
    ASSERT_NE(pipe->find_method("open"), nullptr);
    EXPECT_EQ(pipe->find_method("open")->request.size(), 2u);
    EXPECT_EQ(m->package, ""); // several packages

    const Interface* vfs = m->find("vfs.File");
    ASSERT_NE(vfs, nullptr);
    EXPECT_EQ(vfs->id, 0x100u);
    EXPECT_EQ(m->find(0x100u), vfs);
    for (const char* n :
         {"open", "read", "write", "close", "stat", "unlink", "mkdir", "rename", "readdir", "readlink", "symlink",
          "link", "chmod", "set_times", "rmdir"})
        EXPECT_NE(vfs->find_method(n), nullptr) << n;
    const Method* open = vfs->find_method("open");
    EXPECT_EQ(vfs->find_method(1u), open);
    ASSERT_EQ(open->request.size(), 3u);
    EXPECT_EQ(open->request[0].name, "path");
    EXPECT_EQ(open->request[0].type, Type::String);
    EXPECT_EQ(open->request[0].max_size, 1024u);
    EXPECT_EQ(open->request[0].where.line, 20u);
    EXPECT_EQ(open->request[0].where.column, 13u);
    EXPECT_EQ(vfs->find_method("read")->flow, Flow::Read);
    EXPECT_EQ(vfs->find_method("write")->flow, Flow::Write);
    EXPECT_EQ(vfs->find_method("close")->flow, Flow::ReadWrite);
    // readdir -> (name: string<255>, kind: u8, done: bool, next: u64)
    const Method* readdir = vfs->find_method("readdir");
    EXPECT_EQ(readdir->response[1].offset, 8u);
    EXPECT_EQ(readdir->response[2].offset, 9u);
    EXPECT_EQ(readdir->response[3].offset, 16u);
    EXPECT_EQ(readdir->response_fixed_size, 24u);

    const Interface* net = m->find("net.Socket");
    ASSERT_NE(net, nullptr);
    EXPECT_EQ(net->id, 0x200u);
    const Method* connect = net->find_method("connect");
    ASSERT_NE(connect, nullptr);
    ASSERT_EQ(connect->request.size(), 3u);
    EXPECT_EQ(connect->request[0].type, Type::Ip);
    EXPECT_EQ(connect->request[1].name, "port");
    EXPECT_EQ(connect->request[1].offset, 16u);
    EXPECT_EQ(connect->request[2].offset, 18u);
    EXPECT_EQ(connect->request_fixed_size, 24u);

    const Interface* proc = m->find("proc.Process");
    ASSERT_NE(proc, nullptr);
    EXPECT_EQ(proc->id, 0x300u);
    EXPECT_EQ(proc->find_method("kill")->request[1].name, "signal");
    const Interface* door = m->find("door.Door");
    ASSERT_NE(door, nullptr);
    EXPECT_EQ(door->methods.size(), 3u);
    EXPECT_EQ(door->find_method("pass")->request_fixed_size, 0u);
    const Interface* echo = m->find("test.Echo");
    ASSERT_NE(echo, nullptr);
    EXPECT_EQ(echo->id, 0x7000u);
    EXPECT_EQ(m->find("test.Nope"), nullptr);
    EXPECT_EQ(m->find(0x999u), nullptr);
    EXPECT_EQ(echo->find_method("nope"), nullptr);
    EXPECT_EQ(echo->find_method(7u), nullptr);

    // Every message of every system interface fits, at its bounds.
    for (const Interface& itf : m->interfaces)
        for (const Method& me : itf.methods) {
            EXPECT_LE(16 + max_payload_size(me.request, me.request_fixed_size),
                      abi::ipc::kMaxMessage);
            EXPECT_LE(16 + max_payload_size(me.response, me.response_fixed_size),
                      abi::ipc::kMaxMessage);
        }
}

TEST(IdlParse, OneFileKeepsItsPackage) {
    auto m = load_idl_files({abi("echo.kidl")});
    ASSERT_TRUE(m) << m.error().message;
    EXPECT_EQ(m->package, "test");
}

TEST(IdlLayout, MixedTypesByHand) {
    Module m = parse_ok(
        "package p\n"
        "interface A 1 {\n"
        "  f 1 (a: u8, b: u64, c: string<10>, d: ip, e: u16, g: bool, h: i32, i: bytes<3>, j: i8,"
        " k: i16, l: handle, m: u32, n: i64) -> ()\n"
        "}\n");
    ASSERT_EQ(m.interfaces.size(), 1u);
    const Method& f = m.interfaces[0].methods[0];
    // a u8 @0; b u64 aligned to 8 @8; c descriptor aligned to 4 @16 (8
    // bytes); d ip alignment 1 @24 (16 bytes); e u16 @40; g bool @42; h i32
    // aligned to 4 @44; i descriptor @48; j i8 @56; k i16 aligned to 2 @58;
    // l handle @60; m u32 @64; n i64 aligned to 8 @72; end 80.
    const uint32_t expected[] = {0, 8, 16, 24, 40, 42, 44, 48, 56, 58, 60, 64, 72};
    ASSERT_EQ(f.request.size(), std::size(expected));
    for (size_t i = 0; i < f.request.size(); ++i)
        EXPECT_EQ(f.request[i].offset, expected[i]) << f.request[i].name;
    EXPECT_EQ(f.request_fixed_size, 80u);
    EXPECT_EQ(f.response_fixed_size, 0u);
    EXPECT_EQ(max_payload_size(f.request, f.request_fixed_size), 80u + 10 + 3);

    // Rounded up to 8: one u8 is a fixed part of 8; ip then u8 is 17 -> 24.
    Module m2 = parse_ok("package p interface A 1 { f 1 (a: u8) -> (d: ip, x: u8) }");
    EXPECT_EQ(m2.interfaces[0].methods[0].request_fixed_size, 8u);
    EXPECT_EQ(m2.interfaces[0].methods[0].response[1].offset, 16u);
    EXPECT_EQ(m2.interfaces[0].methods[0].response_fixed_size, 24u);
}

TEST(IdlLayout, TypeTables) {
    EXPECT_EQ(type_size(Type::Ip), 16u);
    EXPECT_EQ(type_align(Type::Ip), 1u);
    EXPECT_EQ(type_size(Type::String), 8u);
    EXPECT_EQ(type_align(Type::Bytes), 4u);
    EXPECT_EQ(type_align(Type::U64), 8u);
    EXPECT_EQ(type_size(Type::Handle), 4u);
    EXPECT_EQ(type_name(Type::Handle), "handle");
    EXPECT_EQ(type_name(Type::I16), "i16");
    EXPECT_TRUE(is_variable(Type::Bytes));
    EXPECT_FALSE(is_variable(Type::Ip));
}

TEST(IdlParse, GrammarDetails) {
    Module m = parse_ok("# a comment\n"
                        "package p # trailing comment\n"
                        "interface A 0x10 {\n"
                        "  read 0XfF (read: u32, flow: u8, string: string<1>) -> (write: "
                        "bytes<0x10>) [ flow write ]\n"
                        "  write 2 () -> ()\n"
                        "}\n"
                        "interface B 4294967295 {}\n");
    ASSERT_EQ(m.interfaces.size(), 2u);
    EXPECT_EQ(m.package, "p");
    EXPECT_EQ(m.interfaces[0].name, "p.A");
    EXPECT_EQ(m.interfaces[0].id, 0x10u);
    EXPECT_EQ(m.interfaces[0].where.line, 3u);
    EXPECT_EQ(m.interfaces[0].where.column, 11u);
    const Method& read = m.interfaces[0].methods[0];
    EXPECT_EQ(read.id, 0xffu);
    EXPECT_EQ(read.flow, Flow::Write);
    EXPECT_EQ(read.response[0].max_size, 16u);
    EXPECT_EQ(read.where.line, 4u);
    EXPECT_EQ(read.where.column, 3u);
    EXPECT_EQ(m.interfaces[1].id, 0xffffffffu);
    EXPECT_TRUE(m.interfaces[1].methods.empty());
    // A package with no interfaces is valid; an argument and a result may
    // share a name.
    parse_ok("package empty");
    parse_ok("package p interface A 1 { echo 1 (data: bytes<8>) -> (data: bytes<8>) }");
}

struct ErrorCase {
    const char* src;
    const char* error;
};

TEST(IdlParse, GrantsAreDeclaredPerMethod) {
    auto m = kos::idl::parse_idl("package p\ninterface A 1 {\n"
                                            "  r 1 (n: u32) -> () [grant read 5000]\n"
                                            "  w 2 () -> () [flow write, grant write 0x10000]\n"
                                            "  n 3 () -> ()\n}\n", "t.kidl");
    ASSERT_TRUE(m) << m.error().message;
    const auto& ms = m->interfaces[0].methods;
    EXPECT_EQ(ms[0].grant, kos::idl::Grant::Read);
    EXPECT_EQ(ms[0].grant_max, 8192u); // whole pages
    EXPECT_EQ(ms[1].grant, kos::idl::Grant::Write);
    EXPECT_EQ(ms[1].flow, kos::idl::Flow::Write);
    EXPECT_EQ(ms[1].grant_max, 65536u);
    EXPECT_EQ(ms[2].grant, kos::idl::Grant::None);
    for (const char* bad : {"[grant read]", "[grant read 0]", "[grant read 67108865]", "[grant both 4096]",
                            "[grant read 4096, grant write 4096]"}) {
        auto b = kos::idl::parse_idl(std::string("package p\ninterface A 1 {\n  r 1 () -> () ") + bad + "\n}\n",
                                     "t.kidl");
        EXPECT_FALSE(b) << bad;
    }
}

TEST(IdlParse, SyntaxErrors) {
    const ErrorCase cases[] = {
        {"", "t.kidl:1:1: found end of file, expected 'package'"},
        {"  # only a comment\n", "t.kidl:2:1: found end of file, expected 'package'"},
        {"interface A 1 {}", "t.kidl:1:1: found 'interface', expected 'package'"},
        {"package 1", "t.kidl:1:9: found '1', expected a package name"},
        {"package p\nfoo", "t.kidl:2:1: found 'foo', expected 'interface' or end of file"},
        {"package p\npackage q",
         "t.kidl:2:1: found 'package', expected 'interface' or end of file"},
        {"package p\ninterface 3", "t.kidl:2:11: found '3', expected an interface name"},
        {"package p\ninterface A {", "t.kidl:2:13: found '{', expected an interface id"},
        {"package p\ninterface A 0x100000000 {}",
         "t.kidl:2:13: found '0x100000000', expected an interface id that fits 32 bits (at most "
         "0xffffffff)"},
        {"package p\ninterface A 12ab {}",
         "t.kidl:2:13: found '12ab', expected an interface id (decimal or 0x hex)"},
        {"package p\ninterface A 0x {}",
         "t.kidl:2:13: found '0x', expected an interface id (decimal or 0x hex)"},
        {"package p\ninterface A 1 (", "t.kidl:2:15: found '(', expected '{'"},
        {"package p\ninterface A 1 {\n",
         "t.kidl:3:1: found end of file, expected a method name or '}'"},
        {"package p\ninterface A 1 {\n  7", "t.kidl:3:3: found '7', expected a method name or '}'"},
        {"package p\ninterface A 1 {\n  f (", "t.kidl:3:5: found '(', expected a method id"},
        {"package p\ninterface A 1 {\n  f 1 -> ()", "t.kidl:3:7: found '->', expected '('"},
        {"package p\ninterface A 1 {\n  f 1 (a u32)", "t.kidl:3:10: found 'u32', expected ':'"},
        {"package p\ninterface A 1 {\n  f 1 (1: u32)",
         "t.kidl:3:8: found '1', expected a field name or ')'"},
        {"package p\ninterface A 1 {\n  f 1 (a: u32,)",
         "t.kidl:3:15: found ')', expected a field name"},
        {"package p\ninterface A 1 {\n  f 1 (a: u32 b: u8)",
         "t.kidl:3:15: found 'b', expected ',' or ')'"},
        {"package p\ninterface A 1 {\n  f 1 (a: u33)",
         "t.kidl:3:11: found 'u33', expected a type (bool, u8, u16, u32, u64, i8, i16, i32, i64, "
         "handle, ip, "
         "string<N>, bytes<N>)"},
        {"package p\ninterface A 1 {\n  f 1 (a: <)",
         "t.kidl:3:11: found '<', expected a type (bool, u8, u16, u32, u64, i8, i16, i32, i64, "
         "handle, ip, "
         "string<N>, bytes<N>)"},
        {"package p\ninterface A 1 {\n  f 1 (a: string 5)", "t.kidl:3:18: found '5', expected '<'"},
        {"package p\ninterface A 1 {\n  f 1 (a: string<x>)",
         "t.kidl:3:18: found 'x', expected a bound N"},
        {"package p\ninterface A 1 {\n  f 1 (a: bytes<5)", "t.kidl:3:18: found ')', expected '>'"},
        {"package p\ninterface A 1 {\n  f 1 () ()", "t.kidl:3:10: found '(', expected '->'"},
        {"package p\ninterface A 1 {\n  f 1 () - ()", "t.kidl:3:10: found '-', expected '->'"},
        {"package p\ninterface A 1 {\n  f 1 () -> ) }", "t.kidl:3:13: found ')', expected '('"},
        {"package p\ninterface A 1 {\n  f 1 () -> () [read] }",
         "t.kidl:3:17: found 'read', expected 'flow' or 'grant'"},
        {"package p\ninterface A 1 {\n  f 1 () -> () [flow both] }",
         "t.kidl:3:22: found 'both', expected 'read' or 'write'"},
        {"package p\ninterface A 1 {\n  f 1 () -> () [flow read }",
         "t.kidl:3:27: found '}', expected ']'"},
        {"package p\ninterface A 1 {\n  f 1 () -> () 5 }",
         "t.kidl:3:16: found '5', expected a method name or '}'"},
        {"package p$", "t.kidl:1:10: found '$', expected 'interface' or end of file"},
        {"package p\n\xc3\xa9", "t.kidl:2:1: found byte 0xc3, expected 'interface' or end of file"},
        {"package p\n\x01", "t.kidl:2:1: found byte 0x01, expected 'interface' or end of file"},
        {"package \tclass",
         "t.kidl:1:10: found 'class', expected a package name that is not a C++ keyword or "
         "reserved name (names become C++ identifiers)"},
        {"package p interface A 1 { f 1 (__x: u8) -> () }",
         "t.kidl:1:32: found '__x', expected a field name or ')' that is not a C++ keyword or "
         "reserved name "
         "(names become C++ identifiers)"},
        {"package detail",
         "t.kidl:1:9: found 'detail', expected a package name other than what kos-idlc "
         "generates in namespace kos::idl (Span, Ip, detail, ...)"},
        {"package p interface A 1 { encode 1 () -> () }",
         "t.kidl:1:27: found 'encode', expected a method name other than what kos-idlc generates "
         "next to "
         "methods (Client, dispatch, encode, decode, Request, Response, k..., m_...)"},
        {"package p interface A 1 { f 1 () -> (Request: u8) }",
         "t.kidl:1:38: found 'Request', expected a field name other than what kos-idlc generates "
         "(Request, "
         "Response, Span, Ip, ...)"},
    };
    for (const ErrorCase& c : cases)
        EXPECT_EQ(error_of(c.src), c.error) << "source: " << c.src;
}

TEST(IdlParse, DuplicatesAreErrors) {
    const ErrorCase cases[] = {
        {"package p\ninterface A 1 {}\ninterface A 2 {}",
         "t.kidl:3:11: duplicate interface name 'p.A' (first at t.kidl:2:11)"},
        {"package p\ninterface A 1 {}\ninterface B 0x1 {}",
         "t.kidl:3:13: duplicate interface id 0x1 (already used by p.A at t.kidl:2:11)"},
        {"package p\ninterface A 1 {\n  f 1 () -> ()\n  f 2 () -> ()\n}",
         "t.kidl:4:3: duplicate method name 'f' in interface p.A (first at t.kidl:3:3)"},
        {"package p\ninterface A 1 {\n  f 1 () -> ()\n  g 0x1 () -> ()\n}",
         "t.kidl:4:5: duplicate method id 1 in interface p.A (already used by 'f' at t.kidl:3:3)"},
        {"package p\ninterface A 1 {\n  f 1 (a: u8, b: u8, a: u32) -> ()\n}",
         "t.kidl:3:22: duplicate field name 'a' in the arguments (first at t.kidl:3:8)"},
        {"package p\ninterface A 1 {\n  f 1 () -> (x: u8, x: u8)\n}",
         "t.kidl:3:21: duplicate field name 'x' in the results (first at t.kidl:3:14)"},
    };
    for (const ErrorCase& c : cases)
        EXPECT_EQ(error_of(c.src), c.error) << "source: " << c.src;
    // The same method name in two interfaces is fine.
    parse_ok("package p interface A 1 { f 1 () -> () } interface B 2 { f 1 () -> () }");
}

TEST(IdlParse, BoundsAndMessageSize) {
    EXPECT_EQ(error_of("package p\ninterface A 1 {\n  f 1 (s: string<0>) -> ()\n}"),
              "t.kidl:3:18: found bound 0, expected a bound N >= 1 for string<N>");
    EXPECT_EQ(error_of("package p\ninterface A 1 {\n  f 1 () -> (s: bytes<0x0>)\n}"),
              "t.kidl:3:23: found bound 0, expected a bound N >= 1 for bytes<N>");
    // 16 (header) + 8 (descriptor) + 4072 = 4096: fits exactly.
    parse_ok("package p interface A 1 { f 1 (d: bytes<4072>) -> () }");
    EXPECT_EQ(error_of("package p\ninterface A 1 {\n  big 1 (d: bytes<4073>) -> ()\n}"),
              "t.kidl:3:3: method p.A.big: its largest request (16-byte header, 8-byte fixed part, "
              "every string "
              "and bytes field at its bound) is 4097 bytes, more than kMaxMessage (4096); lower "
              "the bounds or "
              "move the data by memory transfer");
    // Bounds that overflow 32 bits when summed are still caught.
    EXPECT_EQ(error_of("package p\ninterface A 1 {\n  big 1 () -> (a: bytes<0xffffffff>, b: "
                       "string<0xffffffff>)\n}"),
              "t.kidl:3:3: method p.A.big: its largest response (16-byte header, 16-byte fixed "
              "part, every "
              "string and bytes field at its bound) is 8589934622 bytes, more than kMaxMessage "
              "(4096); lower the "
              "bounds or move the data by memory transfer");
    // The fixed part alone: 64 u64 fields is 512 bytes, fine.
}

TEST(IdlParse, CapsGiveErrorsNotCrashes) {
    // A 1 MiB source.
    std::string big = "package p\n" + std::string(1 << 20, ' ');
    EXPECT_EQ(error_of(big),
              std::format("t.kidl: the source is {} bytes, more than the 262144 the IDL compiler "
                          "accepts; split it into several files",
                          big.size()));
    // A 4 KiB name.
    EXPECT_EQ(error_of("package " + std::string(4096, 'a')),
              "t.kidl:1:9: found a name of 4096 characters, expected a package name of at most 64 "
              "characters");
    EXPECT_EQ(error_of("package p interface " + std::string(65, 'B') + " 1 {}"),
              "t.kidl:1:21: found a name of 65 characters, expected an interface name of at most "
              "64 characters");
    parse_ok("package p interface " + std::string(64, 'B') + " 1 {}");
    // A 4 KiB number.
    EXPECT_EQ(error_of("package p interface A " + std::string(4096, '9') + " {}"),
              "t.kidl:1:23: found a number of 4096 characters, expected an interface id that fits "
              "32 bits (at "
              "most 0xffffffff)");
    EXPECT_EQ(error_of("package p interface A 0x00000000000000000001 {}"), "");

    std::string many_itf = "package p\n";
    for (int i = 0; i < 257; ++i)
        many_itf += std::format("interface I{} {} {{}}\n", i, i);
    EXPECT_EQ(error_of(many_itf), "t.kidl:258:1: more than 256 interfaces in one file; split it");

    std::string many_methods = "package p\ninterface A 1 {\n";
    for (int i = 0; i < 257; ++i)
        many_methods += std::format("m{} {} () -> ()\n", i, i);
    many_methods += "}";
    EXPECT_EQ(error_of(many_methods),
              "t.kidl:259:1: more than 256 methods in interface p.A; split it");

    std::string many_fields = "package p interface A 1 { f 1 (";
    for (int i = 0; i < 65; ++i)
        many_fields += std::format("{}f{}: u8", i ? ", " : "", i);
    many_fields += ") -> () }";
    size_t col = many_fields.find("f64:") + 1;
    EXPECT_EQ(error_of(many_fields),
              std::format("t.kidl:1:{}: more than 64 arguments in one method", col));

    // Deep or unbalanced bracket soup: errors, no recursion to exhaust.
    EXPECT_NE(error_of("package p interface A 1 { f 1 " + std::string(100000, '(')), "");
    EXPECT_NE(error_of(std::string(200000, '{')), "");
}

class TempDir {
  public:
    TempDir() {
        char tmpl[] = "/tmp/kos_idl_test_XXXXXX";
        m_path = mkdtemp(tmpl);
    }
    ~TempDir() { std::filesystem::remove_all(m_path); }
    std::string write(const std::string& name, const std::string& text) const {
        std::string p = m_path + "/" + name;
        std::ofstream(p) << text;
        return p;
    }
    const std::string& path() const { return m_path; }

  private:
    std::string m_path;
};

TEST(IdlLoad, DuplicatesAcrossFiles) {
    TempDir dir;
    std::string a = dir.write("a.kidl", "package a\ninterface A 0x10 {}\n");
    std::string b = dir.write("b.kidl", "package b\n\ninterface B 0x10 {}\n");
    std::string c = dir.write("c.kidl", "package a\ninterface A 0x11 {}\n");
    auto m = load_idl_files({a, b});
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().message,
              b + ":3:11: duplicate interface id 0x10 (already used by a.A at " + a + ":2:11)");
    m = load_idl_files({a, c});
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().message,
              c + ":2:11: duplicate interface name 'a.A' (first at " + a + ":2:11)");

    // The same file twice (by another spelling of its path) is loaded once.
    m = load_idl_files({a, dir.path() + "/./a.kidl"});
    ASSERT_TRUE(m) << m.error().message;
    EXPECT_EQ(m->interfaces.size(), 1u);
    EXPECT_EQ(m->package, "a");

    m = load_idl_files({dir.path() + "/missing.kidl"});
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().code, ENOENT);
    EXPECT_EQ(m.error().message,
              dir.path() + "/missing.kidl: cannot open the IDL file: No such file or directory");

    // Errors inside a file name the file.
    std::string bad = dir.write("bad.kidl", "package p\ninterface A x {}\n");
    m = load_idl_files({bad});
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().message, bad + ":2:13: found 'x', expected an interface id");

    // A huge file is refused without being read whole.
    std::string huge = dir.write("huge.kidl", "package p\n" + std::string(2 << 20, '#'));
    m = load_idl_files({huge});
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().message,
              huge + ": the source is 262145 bytes, more than the 262144 the IDL compiler "
                     "accepts; split it into several files");
}

} // namespace
} // namespace kos::idl
