// The code kos-idlc generates (headers built by kos_idl_generate from
// abi/idl/echo.kidl and testdata/all_types.kidl): round trips, every
// malformed case the decoders must reject (checked against the model's
// check_payload, which the fuzzer and the engine rely on), a client stub
// talking to the server dispatch through an in-memory transport, the
// kos-idlc command line, and the golden copy of a generated header.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <string_view>
#include <sys/wait.h>
#include <vector>

#include "kos/idl/alltypes.h"
#include "kos/idl/edge.h"
#include "kos/idl/generator.h"
#include "kos/idl/model.h"
#include "kos/idl/test.h"

namespace {

namespace all = kos::idl::alltypes::All;
namespace echo_itf = kos::idl::test::Echo;
using kos::abi::ipc::MessageHeader;

kos::idl::Span span(std::string_view s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), uint32_t(s.size())};
}
std::string str(const kos::idl::Span& s) {
    return std::string(reinterpret_cast<const char*>(s.data), s.size);
}

const kos::idl::Method& model_method(const char* name) {
    static kos::idl::Module m = [] {
        auto r = kos::idl::load_idl_files({std::string(KOS_IDL_TESTDATA_DIR) + "/all_types.kidl"});
        EXPECT_TRUE(r) << r.error().message;
        return *r;
    }();
    return *m.find("alltypes.All")->find_method(name);
}

template <class T> T load(const uint8_t* p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
template <class T> void store(uint8_t* p, T v) {
    std::memcpy(p, &v, sizeof v);
}

TEST(IdlGenerated, Constants) {
    EXPECT_EQ(echo_itf::kInterfaceId, 0x7000u);
    EXPECT_EQ(echo_itf::echo::kId, 1u);
    EXPECT_EQ(echo_itf::kMaxRequestPayload, 8u + 1024);
    EXPECT_EQ(all::kInterfaceId, 0x7100u);
    EXPECT_EQ(kos::idl::alltypes::Other::kInterfaceId, 0x7101u);
    EXPECT_EQ(all::mixed::kRequestFixedSize, 48u);
    EXPECT_EQ(all::mixed::kResponseFixedSize, 8u);
    EXPECT_EQ(all::nothing::kRequestFixedSize, 0u);
    EXPECT_EQ(all::every::kRequestFixedSize, model_method("every").request_fixed_size);
    EXPECT_EQ(all::every::kResponseFixedSize, model_method("every").response_fixed_size);
}

TEST(IdlGenerated, EchoRoundTrip) {
    echo_itf::echo::Request req;
    req.data = span("hello, kos");
    uint8_t buf[2048];
    int32_t n = echo_itf::encode(req, buf, sizeof buf);
    ASSERT_EQ(n, 8 + 10);
    EXPECT_EQ(load<uint32_t>(buf), 8u); // offset: right after the fixed part
    EXPECT_EQ(load<uint32_t>(buf + 4), 10u);
    echo_itf::echo::Request out;
    ASSERT_TRUE(echo_itf::decode(buf, uint32_t(n), out));
    EXPECT_EQ(str(out.data), "hello, kos");
    EXPECT_EQ(out.data.data, buf + 8); // points into the payload

    // Empty and at the bound.
    req.data = {};
    EXPECT_EQ(echo_itf::encode(req, buf, sizeof buf), 8);
    std::string max(1024, 'x');
    req.data = span(max);
    EXPECT_EQ(echo_itf::encode(req, buf, sizeof buf), 8 + 1024);
    ASSERT_TRUE(echo_itf::decode(buf, 8 + 1024, out));
    EXPECT_EQ(str(out.data), max);
}

TEST(IdlGenerated, EncodeErrors) {
    uint8_t buf[2048];
    echo_itf::echo::Request req;
    std::string over(1025, 'x');
    req.data = span(over);
    EXPECT_EQ(echo_itf::encode(req, buf, sizeof buf), -22); // -EINVAL: over the bound
    req.data = {nullptr, 3};
    EXPECT_EQ(echo_itf::encode(req, buf, sizeof buf), -22); // -EINVAL: null with a size
    req.data = span("abc");
    EXPECT_EQ(echo_itf::encode(req, buf, 10), -90); // -EMSGSIZE
    EXPECT_EQ(echo_itf::encode(req, buf, 11), 11);
    all::nothing::Request nothing;
    EXPECT_EQ(all::encode(nothing, nullptr, 0), 0);
}

all::every::Request every_request() {
    all::every::Request r;
    r.f_bool = true;
    r.f_u8 = 0xab;
    r.f_u16 = 0xbeef;
    r.f_u32 = 0xdeadbeef;
    r.f_u64 = 0x0123456789abcdefull;
    r.f_i8 = -5;
    r.f_i16 = -30000;
    r.f_i32 = -2000000000;
    r.f_i64 = -9000000000000000000ll;
    r.f_handle = 77;
    for (int i = 0; i < 16; ++i)
        r.f_ip.bytes[i] = uint8_t(i * 3);
    r.f_string = span("/data/a");
    r.f_bytes = span(std::string_view("\0\1\2\3", 4));
    return r;
}

TEST(IdlGenerated, EveryTypeRoundTrip) {
    all::every::Request r = every_request();
    uint8_t buf[1024];
    std::memset(buf, 0xee, sizeof buf);
    int32_t n = all::encode(r, buf, sizeof buf);
    const kos::idl::Method& m = model_method("every");
    ASSERT_EQ(n, int32_t(m.request_fixed_size + 7 + 4));
    // The padding of the fixed part is zeroed (nothing leaks from the buffer).
    std::vector<bool> used(m.request_fixed_size);
    for (const kos::idl::Field& f : m.request)
        for (uint32_t i = 0; i < kos::idl::type_size(f.type); ++i)
            used[f.offset + i] = true;
    for (uint32_t i = 0; i < m.request_fixed_size; ++i)
        if (!used[i])
            EXPECT_EQ(buf[i], 0) << "padding byte " << i;
    EXPECT_TRUE(kos::idl::check_payload(m.request, m.request_fixed_size, buf, uint32_t(n)));

    all::every::Request o;
    ASSERT_TRUE(all::decode(buf, uint32_t(n), o));
    EXPECT_EQ(o.f_bool, true);
    EXPECT_EQ(o.f_u8, 0xab);
    EXPECT_EQ(o.f_u16, 0xbeef);
    EXPECT_EQ(o.f_u32, 0xdeadbeefu);
    EXPECT_EQ(o.f_u64, 0x0123456789abcdefull);
    EXPECT_EQ(o.f_i8, -5);
    EXPECT_EQ(o.f_i16, -30000);
    EXPECT_EQ(o.f_i32, -2000000000);
    EXPECT_EQ(o.f_i64, -9000000000000000000ll);
    EXPECT_EQ(o.f_handle, 77u);
    EXPECT_EQ(std::memcmp(o.f_ip.bytes, r.f_ip.bytes, 16), 0);
    EXPECT_EQ(str(o.f_string), "/data/a");
    EXPECT_EQ(str(o.f_bytes), std::string("\0\1\2\3", 4));

    // Each field sits where the model says (what the engine reads).
    for (const kos::idl::Field& f : m.request) {
        if (f.name == "f_u32")
            EXPECT_EQ(load<uint32_t>(buf + f.offset), 0xdeadbeefu);
        if (f.name == "f_i64")
            EXPECT_EQ(load<int64_t>(buf + f.offset), -9000000000000000000ll);
        if (f.name == "f_ip")
            EXPECT_EQ(buf[f.offset + 15], 45);
        if (f.name == "f_string") {
            EXPECT_EQ(load<uint32_t>(buf + f.offset), m.request_fixed_size);
            EXPECT_EQ(load<uint32_t>(buf + f.offset + 4), 7u);
        }
        if (f.name == "f_bytes")
            EXPECT_EQ(load<uint32_t>(buf + f.offset), m.request_fixed_size + 7);
    }

    all::every::Response resp;
    resp.f_string = span("s");
    resp.f_bytes = span("bb");
    resp.f_i64 = 5;
    resp.f_bool = false;
    n = all::encode(resp, buf, sizeof buf);
    ASSERT_GT(n, 0);
    all::every::Response ro;
    ro.f_bool = true;
    ASSERT_TRUE(all::decode(buf, uint32_t(n), ro));
    EXPECT_EQ(str(ro.f_string), "s");
    EXPECT_EQ(str(ro.f_bytes), "bb");
    EXPECT_EQ(ro.f_i64, 5);
    EXPECT_FALSE(ro.f_bool);
}

TEST(IdlGenerated, MixedLayoutMatchesTheDoc) {
    all::mixed::Request r;
    r.a = 1;
    r.b = 2;
    r.c = span("ccc");
    r.d.bytes[0] = 0xd0;
    r.e = 0x4455;
    r.g = true;
    uint8_t buf[256];
    int32_t n = all::encode(r, buf, sizeof buf);
    ASSERT_EQ(n, 48 + 3);
    EXPECT_EQ(buf[0], 1);
    EXPECT_EQ(load<uint64_t>(buf + 8), 2u);
    EXPECT_EQ(load<uint32_t>(buf + 16), 48u);
    EXPECT_EQ(load<uint32_t>(buf + 20), 3u);
    EXPECT_EQ(buf[24], 0xd0);
    EXPECT_EQ(load<uint16_t>(buf + 40), 0x4455);
    EXPECT_EQ(buf[42], 1);
    EXPECT_EQ(std::string(reinterpret_cast<char*>(buf + 48), 3), "ccc");
}

// Each malformed payload must be refused both by the generated decoder and
// by the model's check_payload.
void expect_rejected(const std::vector<uint8_t>& p, const char* why) {
    all::every::Request o;
    EXPECT_FALSE(all::decode(p.data(), uint32_t(p.size()), o)) << why;
    const kos::idl::Method& m = model_method("every");
    EXPECT_FALSE(kos::idl::check_payload(m.request, m.request_fixed_size, p.data(), p.size()))
        << why;
}

TEST(IdlGenerated, DecodeRejectsMalformed) {
    all::every::Request r = every_request();
    std::vector<uint8_t> good(1024);
    int32_t n = all::encode(r, good.data(), uint32_t(good.size()));
    ASSERT_GT(n, 0);
    good.resize(size_t(n));
    const kos::idl::Method& m = model_method("every");
    auto field = [&](const char* name) {
        for (const kos::idl::Field& f : m.request)
            if (f.name == name)
                return f.offset;
        ADD_FAILURE() << name;
        return 0u;
    };
    all::every::Request o;
    ASSERT_TRUE(all::decode(good.data(), uint32_t(good.size()), o));

    // Short payload: less than the fixed part (and empty).
    expect_rejected(std::vector<uint8_t>(good.begin(), good.begin() + m.request_fixed_size - 1),
                    "short");
    expect_rejected({}, "empty");
    // A truncated tail: the descriptors now point past the end.
    expect_rejected(std::vector<uint8_t>(good.begin(), good.end() - 1), "truncated tail");

    auto patched = [&](const char* name, uint32_t at, uint32_t value) {
        std::vector<uint8_t> p = good;
        store<uint32_t>(p.data() + field(name) + at, value);
        return p;
    };
    // Descriptor out of bounds.
    expect_rejected(patched("f_string", 0, uint32_t(good.size())), "offset at the end with a size");
    expect_rejected(patched("f_string", 0, 0xffffffffu), "offset far past the end");
    expect_rejected(patched("f_bytes", 4, 0xfffffffcu), "offset + size overflowing 32 bits");
    // size > N (with the data really there).
    {
        std::vector<uint8_t> p = good;
        p.resize(m.request_fixed_size + 200);
        store<uint32_t>(p.data() + field("f_bytes"), m.request_fixed_size);
        store<uint32_t>(p.data() + field("f_bytes") + 4, 129);
        expect_rejected(p, "size over the bound");
        store<uint32_t>(p.data() + field("f_bytes") + 4, 128);
        EXPECT_TRUE(all::decode(p.data(), uint32_t(p.size()), o)) << "size at the bound";
    }
    // Offset inside the fixed part.
    expect_rejected(patched("f_string", 0, m.request_fixed_size - 1),
                    "offset inside the fixed part");
    expect_rejected(patched("f_string", 0, 0), "offset 0");
    // bool 2 (and 0xff).
    {
        std::vector<uint8_t> p = good;
        p[field("f_bool")] = 2;
        expect_rejected(p, "bool 2");
        p[field("f_bool")] = 0xff;
        expect_rejected(p, "bool 0xff");
        p[field("f_bool")] = 0;
        EXPECT_TRUE(all::decode(p.data(), uint32_t(p.size()), o));
        EXPECT_FALSE(o.f_bool);
    }
    // A payload longer than needed and a zero-size span at the very end
    // are valid (offset + size <= payload size).
    {
        std::vector<uint8_t> p = good;
        p.resize(p.size() + 5);
        store<uint32_t>(p.data() + field("f_string"), uint32_t(p.size()));
        store<uint32_t>(p.data() + field("f_string") + 4, 0);
        EXPECT_TRUE(all::decode(p.data(), uint32_t(p.size()), o));
        EXPECT_TRUE(kos::idl::check_payload(m.request, m.request_fixed_size, p.data(), p.size()));
    }
    // The mixed method's bool in the response.
    uint8_t resp[8] = {2};
    all::mixed::Response mr;
    EXPECT_FALSE(all::decode(resp, 8, mr));
    resp[0] = 1;
    EXPECT_TRUE(all::decode(resp, 8, mr));
    EXPECT_TRUE(mr.ok);
    EXPECT_FALSE(all::decode(resp, 7, mr));
}

// A server for alltypes.All: echoes, fails on request, counts calls.
struct AllServer {
    int calls = 0;
    int32_t mixed(const all::mixed::Request& r, all::mixed::Response& out) {
        ++calls;
        out.ok = r.g && r.a == 1;
        return 0;
    }
    int32_t every(const all::every::Request& r, all::every::Response& out) {
        ++calls;
        out.f_string = r.f_string;
        out.f_bytes = r.f_bytes;
        out.f_i64 = r.f_i64 / 2;
        out.f_bool = !r.f_bool;
        return 0;
    }
    int32_t nothing(const all::nothing::Request&, all::nothing::Response&) {
        ++calls;
        return 0;
    }
    int32_t fail(const all::fail::Request& r, all::fail::Response&) {
        ++calls;
        return -r.code;
    }
};

struct EchoServer {
    int32_t echo(const echo_itf::echo::Request& r, echo_itf::echo::Response& out) {
        out.data = r.data;
        return 0;
    }
};

// An in-memory transport: copies the request as a channel would, runs the
// server's dispatch, copies the reply back within reply_cap. `corrupt`
// lets a test damage the reply on the way.
template <class Dispatch> struct LoopbackTransport {
    Dispatch dispatch;
    std::function<void(MessageHeader&, uint8_t*)> corrupt;
    MessageHeader last_request{};
    int32_t call(const MessageHeader& h, const uint8_t* payload, uint8_t* reply, uint32_t reply_cap,
                 MessageHeader& reply_h) {
        if (sizeof(MessageHeader) + h.payload_size > kos::abi::ipc::kMaxMessage)
            return -90;
        last_request = h;
        std::vector<uint8_t> in(payload, payload + h.payload_size);
        std::vector<uint8_t> out(kos::abi::ipc::kMaxMessage - sizeof(MessageHeader));
        MessageHeader rh{};
        dispatch(h, in.data(), out.data(), uint32_t(out.size()), rh);
        if (corrupt)
            corrupt(rh, out.data());
        if (rh.payload_size > reply_cap)
            return -90;
        std::memcpy(reply, out.data(), rh.payload_size);
        reply_h = rh;
        return 0;
    }
};

auto all_transport(AllServer& server) {
    auto d = [&server](const MessageHeader& h, const uint8_t* p, uint8_t* r, uint32_t cap,
                       MessageHeader& rh) { return all::dispatch(server, h, p, r, cap, rh); };
    return LoopbackTransport<decltype(d)>{d, {}, {}};
}

TEST(IdlGenerated, ClientTalksToDispatch) {
    AllServer server;
    auto transport = all_transport(server);
    all::Client<decltype(transport)> client(transport);

    all::every::Request r = every_request();
    all::every::Response out;
    ASSERT_EQ(client.every(r, out), 0);
    EXPECT_EQ(transport.last_request.interface_id, 0x7100u);
    EXPECT_EQ(transport.last_request.method_id, all::every::kId);
    EXPECT_EQ(str(out.f_string), "/data/a");
    EXPECT_EQ(str(out.f_bytes), std::string("\0\1\2\3", 4));
    EXPECT_EQ(out.f_i64, r.f_i64 / 2);
    EXPECT_FALSE(out.f_bool);

    all::mixed::Request mr;
    mr.a = 1;
    mr.g = true;
    all::mixed::Response mo;
    ASSERT_EQ(client.mixed(mr, mo), 0);
    EXPECT_TRUE(mo.ok);

    all::nothing::Request nr;
    all::nothing::Response no;
    EXPECT_EQ(client.nothing(nr, no), 0);

    // The handler's errno comes back as the call's result.
    all::fail::Request fr;
    fr.code = 13;
    all::fail::Response fo;
    EXPECT_EQ(client.fail(fr, fo), -13);
    EXPECT_EQ(server.calls, 4);

    // An encode error never reaches the server.
    std::string over(65, 's');
    r.f_string = span(over);
    EXPECT_EQ(client.every(r, out), -22);
    EXPECT_EQ(server.calls, 4);
}

TEST(IdlGenerated, EchoClientAndServer) {
    EchoServer server;
    auto d = [&server](const MessageHeader& h, const uint8_t* p, uint8_t* r, uint32_t cap,
                       MessageHeader& rh) { return echo_itf::dispatch(server, h, p, r, cap, rh); };
    LoopbackTransport<decltype(d)> transport{d, {}, {}};
    echo_itf::Client<decltype(transport)> client(transport);
    std::string text(1024, 'e');
    echo_itf::echo::Request req;
    req.data = span(text);
    echo_itf::echo::Response resp;
    ASSERT_EQ(client.echo(req, resp), 0);
    EXPECT_EQ(str(resp.data), text);
}

TEST(IdlGenerated, ClientRefusesBadReplies) {
    AllServer server;
    auto transport = all_transport(server);
    all::Client<decltype(transport)> client(transport);
    all::mixed::Request mr;
    all::mixed::Response mo;

    transport.corrupt = [](MessageHeader&, uint8_t* p) { p[0] = 7; }; // bool 7
    EXPECT_EQ(client.mixed(mr, mo), -71);
    transport.corrupt = [](MessageHeader& h, uint8_t*) { h.payload_size = 4; }; // short
    EXPECT_EQ(client.mixed(mr, mo), -71);
    transport.corrupt = [](MessageHeader& h, uint8_t*) {
        h.method_id = all::every::kId;
    }; // another method
    EXPECT_EQ(client.mixed(mr, mo), -71);
    transport.corrupt = [](MessageHeader& h, uint8_t*) {
        h.interface_id = 0x7000;
    }; // another interface
    EXPECT_EQ(client.mixed(mr, mo), -71);
    transport.corrupt = [](MessageHeader& h, uint8_t*) { h.status = 5; }; // a positive status
    EXPECT_EQ(client.mixed(mr, mo), -71);
    transport.corrupt = [](MessageHeader& h, uint8_t*) { h.payload_size = 4000; }; // over reply_cap
    EXPECT_EQ(client.mixed(mr, mo), -90);
    transport.corrupt = {};
    EXPECT_EQ(client.mixed(mr, mo), 0);
}

TEST(IdlGenerated, DispatchErrors) {
    AllServer server;
    uint8_t reply[256];
    MessageHeader rh{};
    uint8_t payload[64] = {};

    // Unknown method: -ENOSYS, in the reply header too.
    MessageHeader h{all::kInterfaceId, 99, 0, 0};
    EXPECT_EQ(all::dispatch(server, h, payload, reply, sizeof reply, rh), -38);
    EXPECT_EQ(rh.status, -38);
    EXPECT_EQ(rh.method_id, 99u);
    EXPECT_EQ(rh.payload_size, 0u);
    // Another interface: -EPROTO.
    h = {0x7000, all::mixed::kId, 48, 0};
    EXPECT_EQ(all::dispatch(server, h, payload, reply, sizeof reply, rh), -71);
    // Malformed request (short, then bool 2): -EPROTO, the handler not called.
    h = {all::kInterfaceId, all::mixed::kId, 47, 0};
    EXPECT_EQ(all::dispatch(server, h, payload, reply, sizeof reply, rh), -71);
    h.payload_size = 48;
    store<uint32_t>(payload + 16, 48); // c: offset 48, size 0
    payload[42] = 2;
    EXPECT_EQ(all::dispatch(server, h, payload, reply, sizeof reply, rh), -71);
    EXPECT_EQ(server.calls, 0);
    payload[42] = 1;
    payload[0] = 1;
    EXPECT_EQ(all::dispatch(server, h, payload, reply, sizeof reply, rh), 0);
    EXPECT_EQ(rh.status, 0);
    EXPECT_EQ(rh.payload_size, 8u);
    EXPECT_EQ(reply[0], 1);
    EXPECT_EQ(server.calls, 1);
    // A reply that does not fit reply_cap: -EMSGSIZE from encode.
    EXPECT_EQ(all::dispatch(server, h, payload, reply, 4, rh), -90);
    EXPECT_EQ(rh.payload_size, 0u);
    // A handler error.
    h = {all::kInterfaceId, all::fail::kId, 8, 0};
    store<int32_t>(payload, 2);
    EXPECT_EQ(all::dispatch(server, h, payload, reply, sizeof reply, rh), -2);
    EXPECT_EQ(rh.status, -2);
}

// edge.kidl: names that shadow the generated code's parameters and locals.
struct EdgeServer {
    int32_t edge(const kos::idl::edge::edge::edge::Request& r,
                 kos::idl::edge::edge::edge::Response& out) {
        out.payload = r.in;
        out.size = r.buf;
        out.handler = true;
        out.status = -1;
        out.request = r.total;
        out.response.bytes[15] = 9;
        return 0;
    }
    int32_t h(const kos::idl::edge::edge::h::Request&, kos::idl::edge::edge::h::Response& out) {
        out.kId = 3;
        return 0;
    }
    int32_t call(const kos::idl::edge::edge::call::Request&,
                 kos::idl::edge::edge::call::Response&) {
        return 0;
    }
};

TEST(IdlGenerated, CollidingNamesStillWork) {
    namespace e = kos::idl::edge::edge;
    EdgeServer server;
    auto d = [&server](const MessageHeader& h, const uint8_t* p, uint8_t* r, uint32_t cap,
                       MessageHeader& rh) { return e::dispatch(server, h, p, r, cap, rh); };
    LoopbackTransport<decltype(d)> transport{d, {}, {}};
    e::Client<decltype(transport)> client(transport);
    e::edge::Request req;
    req.in = 4;
    req.buf = 5;
    req.total = span("tt");
    e::edge::Response resp;
    ASSERT_EQ(client.edge(req, resp), 0);
    EXPECT_EQ(resp.payload, 4);
    EXPECT_EQ(resp.size, 5u);
    EXPECT_TRUE(resp.handler);
    EXPECT_EQ(resp.status, -1);
    EXPECT_EQ(str(resp.request), "tt");
    EXPECT_EQ(resp.response.bytes[15], 9);
    e::h::Request hr;
    e::h::Response ho;
    ASSERT_EQ(client.h(hr, ho), 0);
    EXPECT_EQ(ho.kId, 3);
    // An interface without methods: everything is unknown.
    struct NoHandler {};
    NoHandler nh;
    MessageHeader h{kos::idl::edge::Empty::kInterfaceId, 1, 0, 0}, rh{};
    EXPECT_EQ(kos::idl::edge::Empty::dispatch(nh, h, nullptr, nullptr, 0, rh), -38);
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// Runs kos-idlc; returns its exit status and what it printed.
int run_idlc(const std::string& args, std::string& output) {
    std::string cmd = std::string(KOS_IDLC_PATH) + " " + args + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    if (!p)
        return -1;
    char buf[512];
    output.clear();
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        output.append(buf, n);
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(IdlCompiler, CommandLine) {
    char tmpl[] = "/tmp/kos_idlc_test_XXXXXX";
    std::string dir = mkdtemp(tmpl);
    std::string abi = KOS_IDL_ABI_DIR;
    std::string out;
    EXPECT_EQ(
        run_idlc("--out " + dir + " " + abi + "/echo.kidl " + abi + "/vfs.kidl --summary", out), 0)
        << out;
    EXPECT_NE(read_file(dir + "/kos/idl/test.h").find("namespace kos::idl::test::Echo {"),
              std::string::npos);
    EXPECT_NE(
        read_file(dir + "/kos/idl/vfs.h").find("inline constexpr uint32_t kInterfaceId = 0x100;"),
        std::string::npos);
    EXPECT_NE(read_file(dir + "/kos/idl/vfs.json").find("\"name\": \"vfs.File\", \"id\": 256"),
              std::string::npos);

    EXPECT_EQ(run_idlc("", out), 2);
    EXPECT_EQ(out, "usage: kos-idlc --out DIR [--summary] file.kidl...\n");
    {
        std::ofstream(dir + "/bad.kidl")
            << "package p\ninterface A 1 {\n  f 1 (x: u8) -> (x: u8, x: u8)\n}\n";
    }
    EXPECT_EQ(run_idlc("--out " + dir + " " + dir + "/bad.kidl", out), 1);
    EXPECT_EQ(out, dir + "/bad.kidl:3:26: duplicate field name 'x' in the results (first at " +
                       dir + "/bad.kidl:3:19)\n");
    {
        std::ofstream(dir + "/clash.kidl") << "package test\ninterface B 0x9999 {}\n";
        std::ofstream(dir + "/dup.kidl") << "package other\ninterface X 0x7000 {}\n";
    }
    EXPECT_EQ(run_idlc("--out " + dir + " " + abi + "/echo.kidl " + dir + "/clash.kidl", out), 1);
    EXPECT_EQ(out, dir + "/clash.kidl: package 'test' is also the package of " + abi +
                       "/echo.kidl; each input becomes kos/idl/<package>.h, so give them different "
                       "packages\n");
    EXPECT_EQ(run_idlc("--out " + dir + " " + abi + "/echo.kidl " + dir + "/dup.kidl", out), 1);
    EXPECT_EQ(out,
              dir + "/dup.kidl:2:11: duplicate interface id 0x7000 (already used by test.Echo at " +
                  abi + "/echo.kidl:4:11)\n");
    std::filesystem::remove_all(dir);
}

// The golden copy of echo.kidl's header: a change to the generator shows up
// in review. To update it after an intended change:
//   kos-idlc --out /tmp/g abi/idl/echo.kidl && cp /tmp/g/kos/idl/test.h \
//     security-server/idl/testdata/golden/test.h
TEST(IdlCompiler, GoldenEchoHeader) {
    auto m = kos::idl::load_idl_files({std::string(KOS_IDL_ABI_DIR) + "/echo.kidl"});
    ASSERT_TRUE(m) << m.error().message;
    std::string golden = read_file(std::string(KOS_IDL_TESTDATA_DIR) + "/golden/test.h");
    EXPECT_EQ(kos::idl::generate_header(*m, "echo.kidl"), golden)
        << "the generated header changed: update testdata/golden/test.h (see the comment above "
           "this test)";
}

} // namespace
