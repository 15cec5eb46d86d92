// The VMM against misbehaving guests (ATTACKS.md 22, 23): tiny hand-made
// guest images run in real KVM virtual machines.
#include "kvm-host/vmm.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "kos/boot.h"
#include "kos/file.h"
#include "kos/hypercall.h"
#include "kvm-host/boot_image.h"
#include "kvm-host/kvm.h"
#include "kvm-host/testing/require_kvm.h"
#include "kvm-host/testing/tiny_guest.h"

namespace hc = kos::abi::hc;
using kos::vmm::testing::hypercall_code;
using kos::vmm::testing::kTinyData;
using kos::vmm::testing::tiny_guest_elf;

namespace {

class Vmm : public ::testing::Test {
protected:
    void SetUp() override { KOS_REQUIRE_KVM(); }

    kos::Result<kos::vmm::RunOutcome> run(const std::vector<uint8_t>& elf, uint64_t timeout_ms = 10000,
                                          std::vector<kos::vmm::FileVolume> volumes = {}, bool jail = false) {
        kos::vmm::LaunchSpec launch;
        launch.argv = {"/none"};
        kos::vmm::VmOptions o;
        o.kernel_elf = elf;
        o.boot_image = *kos::vmm::build_boot_image(launch, {});
        o.wall_timeout_ms = timeout_ms;
        o.volumes = std::move(volumes);
        o.jail = jail;
        return kos::vmm::run_vm(std::move(o));
    }
};

std::vector<uint8_t> block(hc::Op op, std::initializer_list<uint64_t> args) {
    hc::HypercallBlock b{};
    b.op = static_cast<uint32_t>(op);
    int i = 0;
    for (uint64_t a : args)
        b.args[i++] = a;
    std::vector<uint8_t> out(sizeof b);
    std::memcpy(out.data(), &b, sizeof b);
    return out;
}

std::vector<uint8_t> operator+(std::vector<uint8_t> a, const std::vector<uint8_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

// Makes a hypercall with block 0, then exits with -(block 0's result) as the
// status: the test sees the error code the VMM returned to the guest.
std::vector<uint8_t> call_then_exit_with_error() {
    uint32_t b0 = kTinyData, b1 = kTinyData + 64;
    std::vector<uint8_t> code = hypercall_code(b0);
    auto abs32 = [](uint32_t a) {
        return std::vector<uint8_t>{uint8_t(a), uint8_t(a >> 8), uint8_t(a >> 16), uint8_t(a >> 24)};
    };
    code = code + std::vector<uint8_t>{0x48, 0x8b, 0x04, 0x25} + abs32(b0 + 56); // mov result, %rax
    code = code + std::vector<uint8_t>{0x48, 0xf7, 0xd8};                         // neg %rax
    code = code + std::vector<uint8_t>{0x48, 0x89, 0x04, 0x25} + abs32(b1 + 16); // mov %rax, args[1]
    code = code + hypercall_code(b1) + std::vector<uint8_t>{0xf4};
    return code;
}

} // namespace

TEST_F(Vmm, ExitHypercallEndsTheRunWithItsStatus) {
    auto r = run(tiny_guest_elf(hypercall_code(kTinyData), block(hc::Op::Exit, {0, 42})));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->kind, kos::vmm::RunOutcome::Kind::Exited);
    EXPECT_EQ(r->value, 42);
}

TEST_F(Vmm, HaltWithoutExitIsAnErrorWithRegisters) {
    auto r = run(tiny_guest_elf({0xfa, 0xf4})); // cli; hlt
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("the guest halted with interrupts disabled and can never continue"),
              std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("rip=0000000000100002"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().code, ETIMEDOUT); // found by the watchdog, not by the time limit
}

TEST_F(Vmm, TripleFaultIsAnErrorWithRegisters) {
    auto r = run(tiny_guest_elf({0x0f, 0x0b})); // ud2 with no usable IDT
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("triple-faulted"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("rip="), std::string::npos);
}

TEST_F(Vmm, BusyLoopIsStoppedByTheWallTimeLimit) {
    auto r = run(tiny_guest_elf({0xeb, 0xfe}), 300); // jmp .
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ETIMEDOUT);
    EXPECT_NE(r.error().message.find("wall-time limit of 0.3 s"), std::string::npos) << r.error().message;
}

TEST_F(Vmm, HypercallBlockOutsideGuestMemoryStopsTheRun) {
    auto r = run(tiny_guest_elf(hypercall_code(0xfffff000)));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("hypercall block outside its memory"), std::string::npos);
}

TEST_F(Vmm, ConsoleWriteWithHugeLengthGetsEfault) {
    auto data = block(hc::Op::ConsoleWrite, {1, kTinyData, 1ull << 40}) + block(hc::Op::Exit, {0, 0});
    auto r = run(tiny_guest_elf(call_then_exit_with_error(), data));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->value, EFAULT);
}

TEST_F(Vmm, ConsoleWriteOutsideMemoryGetsEfault) {
    auto data = block(hc::Op::ConsoleWrite, {2, 0xffffffffffff0000ull, 16}) + block(hc::Op::Exit, {0, 0});
    auto r = run(tiny_guest_elf(call_then_exit_with_error(), data));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->value, EFAULT);
}

TEST_F(Vmm, UnknownHypercallGetsEnosys) {
    auto data = block(static_cast<hc::Op>(999), {}) + block(hc::Op::Exit, {0, 0});
    auto r = run(tiny_guest_elf(call_then_exit_with_error(), data));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->value, ENOSYS);
}

namespace {

namespace file = kos::abi::file;

// Block 0 makes a File call with the page at kTinyData + 128, block 1 exits
// with its error.
std::vector<uint8_t> file_call_data(const file::FileCall& c, uint64_t page_gpa = kTinyData + 128) {
    auto data = block(hc::Op::File, {page_gpa}) + block(hc::Op::Exit, {0, 0});
    data.resize(128);
    std::vector<uint8_t> page(sizeof c);
    std::memcpy(page.data(), &c, sizeof c);
    return data + page;
}

file::FileCall mkdir_call(const char* path) {
    file::FileCall c{};
    c.op = static_cast<uint32_t>(file::FileOp::Mkdir);
    c.mode = 0755;
    c.path_len = static_cast<uint32_t>(std::strlen(path));
    std::memcpy(c.path, path, c.path_len);
    return c;
}

// A scratch volume (no label, so no policy needed) in a new temporary directory.
struct ScratchDir {
    std::string path;
    ScratchDir() {
        std::string tmpl = "/tmp/kos-vmm-volume-XXXXXX";
        path = ::mkdtemp(tmpl.data()) ? tmpl : "";
    }
    ~ScratchDir() {
        ::rmdir((path + "/made").c_str());
        ::rmdir(path.c_str());
    }
    std::vector<kos::vmm::FileVolume> volumes() const {
        std::vector<kos::vmm::FileVolume> v;
        v.push_back({kos::UniqueFd(::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)), "/tmp", "", true, true, 0});
        return v;
    }
};

} // namespace

TEST_F(Vmm, FileHypercallWithoutVolumesGetsEnosys) {
    auto r = run(tiny_guest_elf(call_then_exit_with_error(), file_call_data(mkdir_call("made"))));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->value, ENOSYS);
}

TEST_F(Vmm, FileHypercallReachesTheFileService) {
    ScratchDir dir;
    ASSERT_FALSE(dir.path.empty());
    auto r = run(tiny_guest_elf(call_then_exit_with_error(), file_call_data(mkdir_call("made"))), 10000,
                 dir.volumes());
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->value, 0);
    struct stat st{};
    ASSERT_EQ(::stat((dir.path + "/made").c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    // The service's own checks answer through the same path.
    r = run(tiny_guest_elf(call_then_exit_with_error(), file_call_data(mkdir_call("../escape"))), 10000,
            dir.volumes());
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->value, EINVAL);
}

// run_vm's jail with a volume: the file thread starts with its filter,
// Landlock gives it the volume, and the call is served.
TEST_F(Vmm, JailedRunServesAVolume) {
    ScratchDir dir;
    ASSERT_FALSE(dir.path.empty());
    auto elf = tiny_guest_elf(call_then_exit_with_error(), file_call_data(mkdir_call("made")));
    pid_t pid = ::fork();
    if (pid == 0) {
        auto r = run(elf, 10000, dir.volumes(), true);
        ::_exit(!r ? 100 : r->value);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
    EXPECT_EQ(WEXITSTATUS(status), 0);
    struct stat st{};
    EXPECT_EQ(::stat((dir.path + "/made").c_str(), &st), 0);
}

TEST_F(Vmm, FileHypercallPageOutsideGuestMemoryGetsEfault) {
    ScratchDir dir;
    ASSERT_FALSE(dir.path.empty());
    auto r = run(tiny_guest_elf(call_then_exit_with_error(), file_call_data(mkdir_call("made"), 0xfffff000)), 10000,
                 dir.volumes());
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->value, EFAULT);
}

TEST_F(Vmm, WriteToUnbackedMemoryIsReported) {
    // movb $1, 0x30000000 (inside the boot identity map, above guest RAM)
    auto r = run(tiny_guest_elf({0xc6, 0x04, 0x25, 0x00, 0x00, 0x00, 0x30, 0x01, 0xf4}));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("wrote unbacked memory at guest physical address"), std::string::npos)
        << r.error().message;
}

TEST_F(Vmm, GuestPanicIsReported) {
    const char msg[] = "kernel says no";
    std::vector<uint8_t> data = block(hc::Op::Panic, {kTinyData + 64, sizeof msg - 1});
    data.insert(data.end(), msg, msg + sizeof msg);
    auto r = run(tiny_guest_elf(hypercall_code(kTinyData), data));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message, "guest kernel stopped: kernel says no");
}

TEST(VmmImage, RejectsNonElfGuestImage) {
    std::string why;
    if (!kos::vmm::kvm_usable(&why))
        GTEST_SKIP() << "VM test skipped: " << why;
    std::vector<uint8_t> junk(4096, 0x90);
    kos::vmm::LaunchSpec launch;
    launch.argv = {"/none"};
    kos::vmm::VmOptions o;
    o.kernel_elf = junk;
    o.boot_image = *kos::vmm::build_boot_image(launch, {});
    auto r = kos::vmm::run_vm(std::move(o));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message, "guest image: not an ELF file (bad magic)");
}

namespace {

// The boot image carries one launch description per Linux process of the
// init description (abi/kos/boot.h), chained by `next`: the app's first,
// then each Linux [[process]]'s program, all with the app's environment;
// native processes get none. Pipe entries follow the volumes.
TEST(BootImage, LaunchDescriptionsChainOnePerLinuxProcess) {
    namespace boot = kos::abi::boot;
    kos::vmm::LaunchSpec launch;
    launch.argv = {"/bin/app", "a1"};
    launch.env = {"K=V"};
    launch.init.processes = {{"app", "app_t", false, launch.argv, ""},
                             {"srv", "srv_t", true, {"/bin/srv"}, ""},
                             {"worker", "worker_t", false, {"/bin/worker", "w1", "w2"}, ""}};
    launch.volumes = {{"/data", "vol_t", true, false, false}, {"/run/jobs", "jobs_t", false, false, true}};
    auto img = kos::vmm::build_boot_image(launch, {});
    ASSERT_TRUE(img) << img.error().message;
    boot::BootImageHeader h;
    std::memcpy(&h, img->data(), sizeof h);
    auto block = [&](uint64_t at, std::vector<std::string>* argv) {
        boot::LaunchHeader lh;
        std::memcpy(&lh, img->data() + h.launch_offset + at, sizeof lh);
        const char* s = reinterpret_cast<const char*>(img->data() + h.launch_offset + at + sizeof lh);
        for (uint32_t i = 0; i < lh.argc + lh.envc; ++i, s += std::strlen(s) + 1)
            argv->push_back(s);
        return lh;
    };
    std::vector<std::string> first, second;
    boot::LaunchHeader a = block(0, &first);
    EXPECT_EQ(first, (std::vector<std::string>{"/bin/app", "a1", "K=V"}));
    ASSERT_NE(a.next, 0u);
    EXPECT_EQ(a.next % 8, 0u);
    boot::LaunchHeader b = block(a.next, &second);
    EXPECT_EQ(second, (std::vector<std::string>{"/bin/worker", "w1", "w2", "K=V"}));
    EXPECT_EQ(b.next, 0u);
    EXPECT_EQ(h.launch_size, a.next + sizeof b + b.strings_size);

    kos::abi::file::VolumeTable vt;
    std::memcpy(&vt, img->data() + h.volumes_offset, sizeof vt);
    ASSERT_EQ(vt.count, 2u);
    EXPECT_EQ(vt.entries[0].flags, kos::abi::file::kVolumeWritable);
    EXPECT_EQ(vt.entries[1].flags, kos::abi::file::kVolumePipe);
    // A volume after a pipe is refused.
    std::swap(launch.volumes[0], launch.volumes[1]);
    auto bad = kos::vmm::build_boot_image(launch, {});
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("lists volumes before pipes"), std::string::npos) << bad.error().message;
}

} // namespace
