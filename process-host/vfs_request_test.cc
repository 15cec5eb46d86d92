// The parity of the two backends for paths in volumes: the request the
// process backend's supervisor builds with vfs_request.h gets the verdict
// (allow, rule, audit) that the guest kernel's IPC hook gives the message
// the personality runtime sends (encoded with the code kos-idlc generates
// from abi/idl/vfs.kidl, judged with Engine::decide_message as
// microkernel/kernel/security_hook.cc does).
#include "kos/security/vfs_request.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "kos/idl/vfs.h"
#include "kos/policy/audit_json.h"
#include "kos/policy/compiler.h"
#include "sandbox_policy.h"

namespace kos::proc {
namespace {

namespace sec = security;
namespace vfs = idl::vfs::File;

const char* kPolicy = R"(# volumes under the VFS server's interface
idl "vfs.kidl"
domain app_t, vfs_t
resource vol_t
class file { read: read, write: write, execute: read }

allow execute app_t -> app_t where program glob "/bin/*"
allow request app_t -> vfs_t vfs.File.open where path glob "/shared/ok/**" and flags in {0, 0x241, 0x10000}
deny request app_t -> vfs_t vfs.File.open where path glob "/shared/ok/secret*"
allow request app_t -> vfs_t vfs.File.open where path == "/shared/modes" and mode == 0x180
allow request app_t -> vfs_t vfs.File.stat where follow == true
allow request app_t -> vfs_t vfs.File.{unlink, rmdir, readlink} where path glob "/shared/tmp/**"
allow request app_t -> vfs_t vfs.File.mkdir where path glob "/shared/tmp/*" and mode == 0x1ed
allow request app_t -> vfs_t vfs.File.rename where old_path glob "/shared/tmp/*" and new_path glob "/shared/done/*"
audit allow request app_t -> vfs_t vfs.File.link where new_path == "/shared/tmp/l"
allow request app_t -> vfs_t vfs.File.symlink where path glob "/shared/tmp/*" and target == "x"
allow request app_t -> vfs_t vfs.File.chmod where mode in 0..0x1ed and follow == false
allow request app_t -> vfs_t vfs.File.set_times where atime == -1 and mtime == -2
allow request app_t -> vfs_t vfs.File.set_times where atime == 1000000000 and follow == true
allow security app_t -> vol_t file.read
)";

std::vector<uint8_t> compile(const std::string& text) {
    auto blob = policy::compile_bundle_policy("app_t", {{"policy/app.kpol", text}});
    EXPECT_TRUE(blob) << (blob ? "" : blob.error().message);
    return blob ? *blob : std::vector<uint8_t>{};
}

idl::Span span(const std::string& s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), uint32_t(s.size())};
}

// The guest's side: the message the runtime sends, judged as the kernel does.
struct Guest {
    sec::Engine engine;
    std::vector<uint64_t> state;
    explicit Guest(const std::vector<uint8_t>& blob) {
        state.assign(sec::Engine::required_state_size(blob.data(), blob.size()) / 8 + 8, 0);
        EXPECT_EQ(engine.load(blob.data(), blob.size(), state.data(), state.size() * 8),
                  sec::LoadError::None);
    }
    uint32_t label(const char* name) const {
        return engine.find_label(name, uint32_t(std::strlen(name)));
    }
    template <class Req>
    sec::Verdict decide(uint32_t method, const Req& req, sec::AuditRecord* rec) {
        alignas(8) uint8_t msg[4096];
        auto* h = reinterpret_cast<abi::ipc::MessageHeader*>(msg);
        int32_t n = vfs::encode(req, msg + sizeof *h, sizeof msg - sizeof *h);
        EXPECT_GE(n, 0);
        *h = {vfs::kInterfaceId, method, uint32_t(n), 0};
        sec::Verdict v = engine.decide_message(sec::Kind::Request, label("app_t"), label("vfs_t"),
                                               *h, msg + sizeof *h, uint32_t(n), 0);
        if (v.audit)
            EXPECT_TRUE(engine.make_message_audit_record(sec::Kind::Request, label("app_t"),
                                                         label("vfs_t"), *h, msg + sizeof *h,
                                                         uint32_t(n), 0, v, *rec));
        return v;
    }
};

struct Both {
    sec::Verdict guest;
    PolicyDecision process;
    std::string guest_line;
};

class VfsParity : public ::testing::Test {
  protected:
    void SetUp() override {
        blob = compile(kPolicy);
        ASSERT_FALSE(blob.empty());
        guest = std::make_unique<Guest>(blob);
        auto p = SandboxPolicy::load(blob, "app_t");
        ASSERT_TRUE(p) << p.error().message;
        proc = std::move(*p);
        ASSERT_TRUE(proc->declares_vfs_label());
    }
    void expect_same(const Both& b, bool allow, const std::string& what) {
        EXPECT_EQ(b.guest.allow, allow) << what;
        EXPECT_EQ(b.process.verdict.allow, b.guest.allow) << what;
        EXPECT_EQ(b.process.verdict.rule, b.guest.rule) << what;
        EXPECT_EQ(b.process.verdict.audit, b.guest.audit) << what;
        if (b.guest.audit) {
            ASSERT_TRUE(b.process.audited) << what;
            EXPECT_EQ(policy::render_audit_human(proc->engine(), b.process.record), b.guest_line)
                << what;
        }
    }
    template <class Req> Both run(uint32_t method, const Req& req, const VfsCall& call) {
        Both b;
        sec::AuditRecord rec{};
        b.guest = guest->decide(method, req, &rec);
        if (b.guest.audit)
            b.guest_line = policy::render_audit_human(guest->engine, rec);
        b.process = proc->decide_vfs(call, 0);
        return b;
    }
    std::vector<uint8_t> blob;
    std::unique_ptr<Guest> guest;
    std::unique_ptr<SandboxPolicy> proc;
};

TEST_F(VfsParity, Open) {
    struct Case {
        const char* path;
        uint32_t flags, mode;
        bool allow;
    } cases[] = {
        {"/shared/ok/a", 0, 0, true},
        {"/shared/ok/d/e/f", 0x241, 0644, true},
        {"/shared/ok/a", 2, 0, false},      // O_RDWR is not in the set
        {"/shared/ok/a", 0x80000, 0, true}, // O_CLOEXEC is never sent
        {"/shared/ok/a", 0x8000, 0, true},  // nor O_LARGEFILE (musl's open sets it)
        {"/shared/ok/dir", 0x10000 | 0x80000, 0, true},
        {"/shared/ok/secret.txt", 0, 0, false}, // an explicit deny
        {"/shared/other", 0, 0, false},         // default-deny
        {"/shared/modes", 0x41, 0100600, true}, // mode masked with 07777
        {"/shared/modes", 0x41, 0644, false},
    };
    for (const Case& c : cases) {
        std::string path = c.path;
        vfs::open::Request req;
        req.path = span(path);
        req.flags = c.flags & ~0x88000u; // the runtime drops O_CLOEXEC and O_LARGEFILE
        req.mode = c.mode & 07777;
        VfsCall call{VfsOp::Open, path, "", c.flags, c.mode, false, 0, 0};
        expect_same(run(vfs::open::kId, req, call), c.allow,
                    path + " flags " + std::to_string(c.flags));
    }
}

TEST_F(VfsParity, StatUnlinkRmdirReadlinkMkdir) {
    for (bool follow : {true, false}) {
        std::string p = "/shared/x";
        vfs::stat::Request req;
        req.path = span(p);
        req.follow = follow;
        expect_same(run(vfs::stat::kId, req, VfsCall{VfsOp::Stat, p, "", 0, 0, follow, 0, 0}),
                    follow, "stat follow " + std::to_string(follow));
    }
    for (const char* path : {"/shared/tmp/a", "/shared/a"}) {
        std::string p = path;
        bool allow = p.rfind("/shared/tmp/", 0) == 0;
        vfs::unlink::Request u;
        u.path = span(p);
        expect_same(run(vfs::unlink::kId, u, VfsCall{VfsOp::Unlink, p, "", 0, 0, false, 0, 0}),
                    allow, "unlink " + p);
        vfs::rmdir::Request r;
        r.path = span(p);
        expect_same(run(vfs::rmdir::kId, r, VfsCall{VfsOp::Rmdir, p, "", 0, 0, false, 0, 0}), allow,
                    "rmdir " + p);
        vfs::readlink::Request l;
        l.path = span(p);
        expect_same(run(vfs::readlink::kId, l, VfsCall{VfsOp::Readlink, p, "", 0, 0, false, 0, 0}),
                    allow, "readlink " + p);
        for (uint32_t mode : {0755u, 040755u, 0700u}) {
            vfs::mkdir::Request m;
            m.path = span(p);
            m.mode = mode & 07777;
            expect_same(run(vfs::mkdir::kId, m, VfsCall{VfsOp::Mkdir, p, "", 0, mode, false, 0, 0}),
                        allow && (mode & 07777) == 0755, "mkdir " + p + " " + std::to_string(mode));
        }
    }
}

TEST_F(VfsParity, TwoPathsAndSymlink) {
    struct Case {
        const char* a;
        const char* b;
        bool rename, link;
    } cases[] = {
        {"/shared/tmp/a", "/shared/done/a", true, false},
        {"/shared/done/a", "/shared/tmp/a", false, false},
        {"/shared/x", "/shared/tmp/l", false, true}, // audited allow
    };
    for (const Case& c : cases) {
        std::string a = c.a, b = c.b;
        vfs::rename::Request r;
        r.old_path = span(a);
        r.new_path = span(b);
        expect_same(run(vfs::rename::kId, r, VfsCall{VfsOp::Rename, a, b, 0, 0, false, 0, 0}),
                    c.rename, "rename " + a + " " + b);
        vfs::link::Request l;
        l.old_path = span(a);
        l.new_path = span(b);
        Both both = run(vfs::link::kId, l, VfsCall{VfsOp::Link, a, b, 0, 0, false, 0, 0});
        expect_same(both, c.link, "link " + a + " " + b);
        if (c.link)
            EXPECT_TRUE(both.process.audited);
    }
    for (const char* target : {"x", "/etc/passwd"}) {
        std::string p = "/shared/tmp/s", t = target;
        vfs::symlink::Request s;
        s.path = span(p);
        s.target = span(t);
        expect_same(run(vfs::symlink::kId, s, VfsCall{VfsOp::Symlink, p, t, 0, 0, false, 0, 0}),
                    t == "x", "symlink " + t);
    }
}

TEST_F(VfsParity, ChmodAndSetTimes) {
    for (uint32_t mode : {0644u, 04755u, 0100644u}) {
        for (bool follow : {false, true}) {
            std::string p = "/shared/f";
            vfs::chmod::Request c;
            c.path = span(p);
            c.mode = mode & 07777;
            c.follow = follow;
            expect_same(
                run(vfs::chmod::kId, c, VfsCall{VfsOp::Chmod, p, "", 0, mode, follow, 0, 0}),
                (mode & 07777) <= 0755 && !follow, "chmod " + std::to_string(mode));
        }
    }
    struct Case {
        int64_t atime, mtime;
        bool follow, allow;
    } cases[] = {
        {-1, -2, false, true},         {-2, -1, false, false}, {1000000000, 5, true, true},
        {1000000000, 5, false, false}, {-1, -1, true, false},
    };
    for (const Case& c : cases) {
        std::string p = "/shared/f";
        vfs::set_times::Request s;
        s.path = span(p);
        s.atime = c.atime;
        s.mtime = c.mtime;
        s.follow = c.follow;
        expect_same(run(vfs::set_times::kId, s,
                        VfsCall{VfsOp::SetTimes, p, "", 0, 0, c.follow, c.atime, c.mtime}),
                    c.allow,
                    "set_times " + std::to_string(c.atime) + " " + std::to_string(c.mtime));
    }
}

// Without vfs_t (or without vfs.kidl) every request is denied: fail closed.
TEST(VfsPolicy, APolicyWithoutVfsDeniesEveryPath) {
    auto blob = compile("domain app_t\nresource vol_t\nallow execute app_t -> app_t\n");
    auto p = SandboxPolicy::load(blob, "app_t");
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_FALSE((*p)->declares_vfs_label());
    auto d = (*p)->decide_vfs(VfsCall{VfsOp::Open, "/shared/x", "", 0, 0, false, 0, 0}, 0);
    EXPECT_FALSE(d.verdict.allow);
    auto blob2 = compile("domain app_t, vfs_t\nallow execute app_t -> app_t\n");
    auto p2 = SandboxPolicy::load(blob2, "app_t");
    ASSERT_TRUE(p2) << p2.error().message;
    EXPECT_TRUE((*p2)->declares_vfs_label());
    EXPECT_FALSE((*p2)
                     ->decide_vfs(VfsCall{VfsOp::Open, "/shared/x", "", 0, 0, false, 0, 0}, 0)
                     .verdict.allow);
}

} // namespace
} // namespace kos::proc
