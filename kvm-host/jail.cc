#include "jail.h"

#include <linux/capability.h>
#include <linux/kvm.h>
#include <linux/landlock.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <fcntl.h>

#include "kos/support/file.h"

namespace kos::vmm {
namespace {

// Landlock UAPI values newer than Debian 12's headers (kernel 6.1 has ABI 2).
constexpr uint64_t kFsRightsV1 = (1ull << 13) - 1; // EXECUTE .. MAKE_SYM
constexpr uint64_t kFsRefer = 1ull << 13;          // ABI 2
constexpr uint64_t kFsTruncate = 1ull << 14;       // ABI 3
constexpr uint64_t kFsIoctlDev = 1ull << 15;       // ABI 5
constexpr uint64_t kNetBindTcp = 1ull << 0;        // ABI 4
constexpr uint64_t kNetConnectTcp = 1ull << 1;     // ABI 4
constexpr uint64_t kScopeAbstractUnix = 1ull << 0; // ABI 6
constexpr uint64_t kScopeSignal = 1ull << 1;       // ABI 6

scmp_arg_cmp cmp(unsigned arg, scmp_compare op, uint64_t a, uint64_t b = 0) {
    scmp_arg_cmp c{};
    c.arg = arg;
    c.op = op;
    c.datum_a = a;
    c.datum_b = b;
    return c;
}

struct RulesetAttr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

} // namespace

std::string JailReport::summary() const {
    return "seccomp filter, no capabilities, no_new_privs, " +
           (landlock_abi ? "Landlock ABI " + std::to_string(landlock_abi) : std::string("no Landlock (kernel lacks it)"));
}

Result<void> drop_privileges() {
    // No core dumps of guest memory, and no ptrace by same-uid processes.
    rlimit core{0, 0};
    if (::setrlimit(RLIMIT_CORE, &core) != 0)
        return make_error(errno, "setrlimit(RLIMIT_CORE): " + errno_string(errno));
    if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        return make_error(errno, "prctl(PR_SET_DUMPABLE): " + errno_string(errno));
    // Descriptors: the VMM opens nothing after setup.
    rlimit nofile{64, 64};
    ::setrlimit(RLIMIT_NOFILE, &nofile);
    // Capabilities: the bounding set first (needs CAP_SETPCAP, which only a
    // privileged VMM has), then every set.
    for (int cap = 0; cap <= 63; ++cap)
        if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno == EINVAL)
            break;
    ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    if (::syscall(SYS_capset, &header, data) != 0)
        return make_error(errno, "capset: " + errno_string(errno));
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return make_error(errno, "prctl(PR_SET_NO_NEW_PRIVS): " + errno_string(errno));
    return {};
}

Result<int> restrict_with_landlock() {
    long abi = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi < 0) {
        if (errno == ENOSYS || errno == EOPNOTSUPP)
            return 0;
        return make_error(errno, "Landlock ABI query: " + errno_string(errno));
    }
    RulesetAttr attr{kFsRightsV1, 0, 0};
    size_t size = sizeof(uint64_t);
    if (abi >= 2)
        attr.handled_access_fs |= kFsRefer;
    if (abi >= 3)
        attr.handled_access_fs |= kFsTruncate;
    if (abi >= 4) {
        attr.handled_access_net = kNetBindTcp | kNetConnectTcp;
        size = 2 * sizeof(uint64_t);
    }
    if (abi >= 5)
        attr.handled_access_fs |= kFsIoctlDev;
    if (abi >= 6) {
        attr.scoped = kScopeAbstractUnix | kScopeSignal;
        size = sizeof attr;
    }
    UniqueFd ruleset(static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attr, size, 0)));
    if (!ruleset)
        return make_error(errno, "landlock_create_ruleset: " + errno_string(errno));
    // No rules: every handled access is denied.
    if (::syscall(SYS_landlock_restrict_self, ruleset.get(), 0) != 0)
        return make_error(errno, "landlock_restrict_self: " + errno_string(errno));
    return static_cast<int>(abi);
}

Result<void> install_seccomp_filter(const JailOptions& o) {
    scmp_filter_ctx ctx = ::seccomp_init(SCMP_ACT_KILL_PROCESS);
    if (!ctx)
        return make_error(ENOMEM, "seccomp_init failed");
    int rc = 0;
    auto allow = [&](int nr, std::initializer_list<scmp_arg_cmp> args = {}) {
        if (rc == 0)
            rc = ::seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, static_cast<unsigned>(args.size()),
                                          args.size() ? args.begin() : nullptr);
    };
    auto fd_is = [](unsigned arg, int fd) { return cmp(arg, SCMP_CMP_EQ, static_cast<uint64_t>(fd)); };

    // Run the vCPU and read its registers for error reports; only on the
    // vCPU descriptor.
    // KVM_GET/SET_XSAVE: user FPU state switches where the guest kernel
    // cannot do them itself (nested kvm_pvm); KVM_GET_MP_STATE: is the
    // guest halted for good.
    for (uint64_t req : {uint64_t{KVM_RUN}, uint64_t{KVM_GET_REGS}, uint64_t{KVM_GET_SREGS},
                         uint64_t{KVM_GET_XSAVE}, uint64_t{KVM_SET_XSAVE}, uint64_t{KVM_GET_MP_STATE}})
        allow(SCMP_SYS(ioctl), {fd_is(0, o.vcpu_fd), cmp(1, SCMP_CMP_EQ, req)});
    // Guest console input and output, and kos's own messages.
    allow(SCMP_SYS(read), {fd_is(0, o.stdin_fd)});
    allow(SCMP_SYS(write), {fd_is(0, o.stdout_fd)});
    if (o.stderr_fd != o.stdout_fd)
        allow(SCMP_SYS(write), {fd_is(0, o.stderr_fd)});
    // The policy's audit records, appended to the audit log opened before.
    if (o.audit_fd >= 0)
        allow(SCMP_SYS(write), {fd_is(0, o.audit_fd)});
    // The allocator (error messages, teardown); never executable memory.
    allow(SCMP_SYS(brk));
    allow(SCMP_SYS(mmap), {cmp(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)});
    allow(SCMP_SYS(munmap));
    allow(SCMP_SYS(mremap));
    allow(SCMP_SYS(madvise));
    // stdio asks whether an output is a terminal/file on first use.
    allow(SCMP_SYS(fstat));
    allow(SCMP_SYS(newfstatat), {cmp(3, SCMP_CMP_EQ, AT_EMPTY_PATH)});
    // The watchdog timer's signal interrupts KVM_RUN and returns.
    allow(SCMP_SYS(rt_sigreturn));
    allow(SCMP_SYS(timer_delete));
    // Clocks (when the vDSO is not used), and futexes of the C++ runtime.
    allow(SCMP_SYS(clock_gettime));
    allow(SCMP_SYS(futex));
    // Teardown: closing the VM's descriptors, then exiting.
    allow(SCMP_SYS(close));
    allow(SCMP_SYS(exit));
    allow(SCMP_SYS(exit_group));
    // Default signal actions at exit (SIGPIPE on a closed output) need none.
    if (rc == 0)
        rc = ::seccomp_load(ctx);
    ::seccomp_release(ctx);
    if (rc != 0)
        return make_error(-rc, "installing the VMM's seccomp filter failed: " + errno_string(-rc));
    return {};
}

Result<JailReport> enter_jail(const JailOptions& options) {
    JailReport report;
    KOS_TRY(drop_privileges());
    report.landlock_abi = KOS_TRY(restrict_with_landlock());
    KOS_TRY(install_seccomp_filter(options));
    return report;
}

} // namespace kos::vmm
