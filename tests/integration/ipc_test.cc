// Native kos IPC in a real VM: tasks and channels from the init
// description, complete mediation of typed requests, handles and rights,
// and a crashing server (ATTACKS.md 18).
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <cstring>
#include <memory>
#include <vector>
#include <string>

#include "kos/policy/audit_json.h"
#include "kos/policy/compiler.h"
#include "kos/security/engine.h"
#include "kos/syscall.h"
#include "kvm-host/boot_image.h"
#include "kvm-host/kvm.h"
#include "kvm-host/testing/require_kvm.h"
#include "kvm-host/vmm.h"
#include "pkg/rootfs_builder.h"

namespace {

namespace sys = kos::abi::sys;

std::string read_all(int fd) {
    std::string out;
    char buf[4096];
    ::lseek(fd, 0, SEEK_SET);
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0)
        out.append(buf, static_cast<size_t>(n));
    return out;
}

struct VmRun {
    kos::Result<kos::vmm::RunOutcome> outcome;
    std::string out, err;
    std::vector<std::string> audit;      // one line per record, as kos run prints them
    std::vector<std::string> audit_json; // the same records as JSON lines
};

// The tests' policy (tests/guest/native/ipc.kpol), compiled like a bundle's.
const std::vector<uint8_t>& ipc_policy() {
    static std::vector<uint8_t> blob = [] {
        auto p = kos::policy::compile_policy_files({KOS_IPC_POLICY});
        EXPECT_TRUE(p) << p.error().message;
        EXPECT_TRUE(p && p->all_tests_passed());
        return p ? p->blob : std::vector<uint8_t>{};
    }();
    return blob;
}

VmRun run_ipc(const kos::vmm::InitSpec& init, std::vector<uint8_t> policy = ipc_policy(), uint32_t cpus = 1) {
    auto rootfs = kos::pkg::build_rootfs_image(KOS_IPC_ROOTFS, {});
    EXPECT_TRUE(rootfs) << rootfs.error().message;
    kos::vmm::LaunchSpec launch;
    launch.init = init;
    launch.policy = policy;
    // The host side of the audit channel: the same policy renders the records.
    auto host = std::make_shared<kos::security::Engine>();
    auto state = std::make_shared<std::vector<uint64_t>>(1 << 16);
    if (!policy.empty())
        host->load(launch.policy.data(), launch.policy.size(), state->data(), state->size() * 8);
    auto image = kos::vmm::build_boot_image(launch, *rootfs);
    EXPECT_TRUE(image) << image.error().message;
    int out = ::memfd_create("out", 0), err = ::memfd_create("err", 0);
    kos::vmm::VmOptions o;
    o.kernel_elf = kos::vmm::embedded_guest_image();
    o.boot_image = std::move(*image);
    o.stdout_fd = out;
    o.stderr_fd = err;
    o.wall_timeout_ms = 20000;
    o.cpus = cpus;
    auto audit = std::make_shared<std::vector<std::string>>();
    auto audit_json = std::make_shared<std::vector<std::string>>();
    o.audit = [host, state, audit, audit_json](std::span<const uint8_t> bytes) {
        kos::security::AuditRecord rec;
        std::memcpy(&rec, bytes.data(), sizeof rec);
        audit->push_back(kos::policy::render_audit_human(*host, rec));
        audit_json->push_back(kos::policy::render_audit_json(*host, rec));
    };
    VmRun r{kos::vmm::run_vm(std::move(o)), "", "", {}, {}};
    r.audit = *audit;
    r.audit_json = *audit_json;
    r.out = read_all(out);
    r.err = read_all(err);
    ::close(out);
    ::close(err);
    return r;
}

kos::vmm::InitSpec echo_bundle(uint32_t client_rights) {
    kos::vmm::InitSpec s;
    s.processes = {{"client", "app_t", true, {"/bin/ipc_client"}, ""},
                   {"echo", "echo_t", true, {"/bin/echo_server"}, ""}};
    s.channels = {{"echo", 0, 1, 0x7100, client_rights}};
    return s;
}

class Ipc : public ::testing::Test {
protected:
    void SetUp() override { KOS_REQUIRE_KVM(); }
};

} // namespace

// With one vCPU, and with two: client and server then run on different
// CPUs (each call and reply wakes the other CPU).
class IpcCpus : public Ipc, public ::testing::WithParamInterface<uint32_t> {};
INSTANTIATE_TEST_SUITE_P(Cpus, IpcCpus, ::testing::Values(1u, 2u));

TEST_P(IpcCpus, CallsRightsForgeriesDenialsAndServerCrash) {
    VmRun r = run_ipc(echo_bundle(sys::kRightCall | sys::kRightDuplicate | sys::kRightTransfer), ipc_policy(), GetParam());
    ASSERT_TRUE(r.outcome) << r.outcome.error().message << "\n" << r.out << r.err;
    EXPECT_EQ(r.outcome->value, 0) << r.out << r.err;
    for (const char* line : {"ok an allowed call gets the server's reply (0)",
                             "ok a store the policy allows succeeds (0)",
                             "ok a store of a key the policy does not allow is denied (-13)",
                             "ok a store above the allowed level is denied (-13)",
                             "ok an audited store succeeds (0)",
                             "ok a reply the policy denies does not reach the client (-13)",
                             "ok the object manager refuses what the policy does not allow on its object (-13)",
                             "ok a malformed message is denied (-13)",
                             "ok a handle without the transfer right cannot be passed (-1)",
                             "ok the handle that went through the server still calls the channel (0)",
                             "ok the server reads a 64 KiB grant (8189175)",
                             "ok reading past the grant fails (-14)", "ok a read-only grant cannot be written (-13)",
                             "ok the server writes a writable grant (0)", "ok a call without a grant lends nothing (-14)",
                             "ok a writable grant to a method that only reads one is refused (-13)",
                             "ok a grant larger than the method declares is refused (-13)",
                             "ok a grant to a method that declares none is refused (-13)",
                             "ok the policy lets a 4 KiB read-only grant through (368640)",
                             "ok the same call with a 64 KiB grant is denied by the policy (-13)",
                             "ok the small grant still passes after the large one was denied (368640)",
                             "ok a writable grant the policy does not allow is denied (-13)",
                             "ok a call for another interface is denied (-13)",
                             "ok a forged handle fails (-9)", "ok an undeclared handle fails (-9)",
                             "ok a handle with fewer rights cannot call (-1)",
                             "ok rights cannot grow back (-1)", "ok a closed handle is stale (-9)",
                             "ok a client handle cannot receive (-9)",
                             "ok a server crash is reported to its client (-32)",
                             "ok calls to a dead server fail (-32)", "ipc_client: 0 failures"})
        EXPECT_NE(r.out.find(line), std::string::npos) << "missing: " << line << "\n" << r.out;
    // Denials and the crash are reported on stderr, one line each, with the rule.
    EXPECT_NE(r.err.find("kos: denied request client (app_t) -> echo (echo_t): interface 99 method 1 "
                         "on channel 'echo' (declared for interface 28928) [rule channel-interface]"),
              std::string::npos)
        << r.err;
    // The policy's verdicts marked for audit reach the host as records: each
    // denial, and the allow the policy asks to audit, naming the rule.
    auto has = [&](const std::string& needle) {
        for (const std::string& l : r.audit)
            if (l.find(needle) != std::string::npos)
                return true;
        return false;
    };
    std::string all;
    for (const std::string& l : r.audit)
        all += l + "\n";
    EXPECT_TRUE(has("denied request app_t -> echo_t ipctest.Echo.store key=\"secret/a\" level=2 [rule default-deny]")) << all;
    EXPECT_TRUE(has("denied request app_t -> echo_t ipctest.Echo.store key=\"public/a\" level=4 [rule default-deny]")) << all;
    EXPECT_TRUE(has("allowed request app_t -> echo_t ipctest.Echo.store key=\"public/audited\" level=1 [rule ")) << all;
    // The deny of the LEAK reply decides it, named by its line in ipc.kpol.
    std::ifstream policy(KOS_IPC_POLICY);
    std::string line;
    int deny_line = 0;
    for (int n = 1; std::getline(policy, line); ++n)
        if (line.rfind("deny response", 0) == 0)
            deny_line = n;
    ASSERT_GT(deny_line, 0);
    EXPECT_TRUE(has("ipc.kpol:" + std::to_string(deny_line) + ":1]")) << all;
    EXPECT_TRUE(has("denied response echo_t -> app_t ipctest.Echo.echo")) << all;
    // A request denied for its grant: the record carries the grant the
    // kernel saw and the deciding rule (the deny on its size, by line and
    // id; the writable one falls to the default deny).
    int grant_line = 0;
    policy.clear();
    policy.seekg(0);
    for (int n = 1; std::getline(policy, line); ++n)
        if (line.rfind("deny request app_t -> echo_t ipctest.Echo.peek where grant.size", 0) == 0)
            grant_line = n;
    ASSERT_GT(grant_line, 0);
    EXPECT_TRUE(has("denied request app_t -> echo_t ipctest.Echo.peek grant.size=65536 grant.write=0 size=16 "
                    "[rule ")) << all;
    EXPECT_TRUE(has("ipc.kpol:" + std::to_string(grant_line) + ":1]")) << all;
    EXPECT_TRUE(has("denied request app_t -> echo_t ipctest.Echo.peek grant.size=4096 grant.write=1 size=16 "
                    "[rule default-deny]")) << all;
    bool grant_json = false;
    for (const std::string& j : r.audit_json)
        grant_json |= j.find("ipc.kpol:" + std::to_string(grant_line) + ":1\",\"rule_id\":") != std::string::npos &&
                      j.find("\"fields\":{\"grant.size\":65536,\"grant.write\":0,\"size\":16}") != std::string::npos &&
                      j.find("\"verdict\":\"deny\"") != std::string::npos;
    EXPECT_TRUE(grant_json) << all;
    // Allowed grants within the policy leave no record; nothing else about peek does.
    EXPECT_FALSE(has("ipctest.Echo.peek grant.size=4096 grant.write=0")) << all;
    EXPECT_TRUE(has("[rule malformed]")) << all;
    EXPECT_TRUE(has("denied security app_t -> vault_t vault.lock [rule default-deny]")) << all;
    bool json_ok = false;
    for (const std::string& j : r.audit_json)
        json_ok |= j.find("\"key\":\"secret/a\"") != std::string::npos && j.find("\"verdict\":\"deny\"") != std::string::npos;
    EXPECT_TRUE(json_ok) << all;
    EXPECT_NE(r.err.find("kos: denied call on an undeclared, closed or insufficient handle by client "
                         "(app_t) [rule handle-rights]"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("kos: echo killed by SIGILL: invalid opcode"), std::string::npos) << r.err;
}

TEST_P(IpcCpus, ABusyLoopInOneTaskDoesNotStopTheOthers) {
    // The spinner is runnable before the server: without preemption the
    // client's first call would never be answered.
    kos::vmm::InitSpec s;
    s.processes = {{"client", "app_t", true, {"/bin/ipc_client"}, ""},
                   {"spinner", "spin_t", true, {"/bin/spinner"}, ""},
                   {"echo", "echo_t", true, {"/bin/echo_server"}, ""}};
    s.channels = {{"echo", 0, 2, 0x7100, sys::kRightCall | sys::kRightDuplicate}};
    VmRun r = run_ipc(s, ipc_policy(), GetParam());
    ASSERT_TRUE(r.outcome) << r.outcome.error().message << "\n" << r.out << r.err;
    EXPECT_NE(r.out.find("ok an allowed call gets the server's reply (0)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("ok a server crash is reported to its client (-32)"), std::string::npos) << r.out;
}

TEST_F(Ipc, WithoutTheDuplicateRightNothingCanBeDerived) {
    // The same client with only the call right: duplication fails, so the
    // client reports those checks as failures.
    VmRun r = run_ipc(echo_bundle(sys::kRightCall));
    ASSERT_TRUE(r.outcome) << r.outcome.error().message;
    EXPECT_NE(r.out.find("FAIL a handle can be duplicated with fewer rights (-1)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("ok an allowed call gets the server's reply"), std::string::npos) << r.out;
}

TEST_F(Ipc, WithoutAPolicyEveryRequestIsDenied) {
    VmRun r = run_ipc(echo_bundle(sys::kRightCall), {});
    ASSERT_TRUE(r.outcome) << r.outcome.error().message;
    EXPECT_NE(r.out.find("FAIL an allowed call gets the server's reply (-13)"), std::string::npos) << r.out;
    EXPECT_NE(r.err.find("[rule no-policy]"), std::string::npos) << r.err;
}

TEST_F(Ipc, AProcessWhoseProgramThePolicyDoesNotAllowNeverStarts) {
    kos::vmm::InitSpec s = echo_bundle(sys::kRightCall);
    s.processes[1].argv = {"/bin/spinner"}; // echo_t may execute only /bin/echo_server
    VmRun r = run_ipc(s);
    ASSERT_FALSE(r.outcome);
    EXPECT_NE(r.outcome.error().message.find("the policy does not allow echo (echo_t) to execute /bin/spinner"),
              std::string::npos)
        << r.outcome.error().message;
}

TEST_F(Ipc, ALabelThePolicyDoesNotDeclareStopsTheBoot) {
    kos::vmm::InitSpec s = echo_bundle(sys::kRightCall);
    s.processes[1].label = "stranger_t";
    VmRun r = run_ipc(s);
    ASSERT_FALSE(r.outcome);
    EXPECT_NE(r.outcome.error().message.find("process echo: label stranger_t: a process's label is not declared in the policy"),
              std::string::npos)
        << r.outcome.error().message;
}

TEST_F(Ipc, ACorruptedPolicyStopsTheBoot) {
    std::vector<uint8_t> bad = ipc_policy();
    bad[bad.size() / 2] ^= 1;
    VmRun r = run_ipc(echo_bundle(sys::kRightCall), bad);
    ASSERT_FALSE(r.outcome);
    EXPECT_NE(r.outcome.error().message.find("the compiled policy cannot be loaded: the compiled policy is corrupted"),
              std::string::npos)
        << r.outcome.error().message;
}

TEST_F(Ipc, MalformedInitDescriptionsAreRefusedBeforeBoot) {
    kos::vmm::InitSpec s = echo_bundle(sys::kRightCall);
    s.channels[0].server = 5;
    auto bad = kos::vmm::encode_init(s);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().message, "init: channel echo must connect two different declared processes");
    s = echo_bundle(sys::kRightCall);
    s.processes[1].native = false;
    s.processes[1].argv.clear();
    bad = kos::vmm::encode_init(s);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().message, "init: process echo: a Linux process needs a program");
}

TEST_F(Ipc, AProgramMissingFromTheRootfsStopsTheBoot) {
    kos::vmm::InitSpec s = echo_bundle(sys::kRightCall);
    s.processes[1].argv = {"/bin/nothere"};
    VmRun r = run_ipc(s, {}); // no policy: the execute check would refuse it first
    ASSERT_FALSE(r.outcome);
    EXPECT_NE(r.outcome.error().message.find(
                  "cannot start process 1 (echo): the program is not a regular file in the rootfs"),
              std::string::npos)
        << r.outcome.error().message;
}

namespace {

// The personality's VFS server, started from the kernel image ("kos:vfs")
// for a native client: requests pass the policy by path before they reach
// it, and the kernel refuses a request that would hand it a handle.
TEST_F(Ipc, TheVfsServerTakesRequestsButNoHandles) {
    kos::vmm::InitSpec s;
    s.processes = {{"client", "app_t", true, {"/bin/vfs_probe"}, ""},
                   {"vfs-server", "vfs_t", true, {sys::kVfsServerProgram}, ""}};
    s.channels = {{"vfs", 0, 1, 0x100, sys::kRightCall | sys::kRightTransfer}};
    VmRun r = run_ipc(s);
    ASSERT_TRUE(r.outcome) << r.outcome.error().message << r.err;
    EXPECT_EQ(r.outcome->value, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("vfs_probe: 0 failures"), std::string::npos) << r.out << r.err;
    bool denied = false;
    for (const std::string& line : r.audit)
        denied |= line.find("denied request app_t -> vfs_t vfs.File.open path=\"/etc/passwd\"") != std::string::npos;
    EXPECT_TRUE(denied) << ::testing::PrintToString(r.audit);
}

} // namespace

