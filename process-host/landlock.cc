#include "landlock.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "kos/support/file.h"

namespace kos::proc {
namespace {

// linux/landlock.h (ABI 1-6), declared here for the parts newer than the
// installed headers.
struct RulesetAttr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net; // ABI 4
    uint64_t scoped;             // ABI 6
};
struct PathBeneathAttr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));
struct NetPortAttr {
    uint64_t allowed_access;
    uint64_t port;
};

constexpr uint32_t kCreateRulesetVersion = 1u << 0;
constexpr int kRulePathBeneath = 1;
constexpr int kRuleNetPort = 2;

constexpr uint64_t kFsExecute = 1ull << 0;
constexpr uint64_t kFsWriteFile = 1ull << 1;
constexpr uint64_t kFsReadFile = 1ull << 2;
constexpr uint64_t kFsReadDir = 1ull << 3;
constexpr uint64_t kFsRemoveDir = 1ull << 4;
constexpr uint64_t kFsRemoveFile = 1ull << 5;
constexpr uint64_t kFsMakeChar = 1ull << 6;
constexpr uint64_t kFsMakeDir = 1ull << 7;
constexpr uint64_t kFsMakeReg = 1ull << 8;
constexpr uint64_t kFsMakeSock = 1ull << 9;
constexpr uint64_t kFsMakeFifo = 1ull << 10;
constexpr uint64_t kFsMakeBlock = 1ull << 11;
constexpr uint64_t kFsMakeSym = 1ull << 12;
constexpr uint64_t kFsRefer = 1ull << 13;    // ABI 2
constexpr uint64_t kFsTruncate = 1ull << 14; // ABI 3
constexpr uint64_t kFsIoctlDev = 1ull << 15; // ABI 5
constexpr uint64_t kNetBindTcp = 1ull << 0;
constexpr uint64_t kNetConnectTcp = 1ull << 1;
constexpr uint64_t kScopeAbstractUnix = 1ull << 0; // ABI 6
constexpr uint64_t kScopeSignal = 1ull << 1;       // ABI 6

constexpr uint64_t kFileRights = kFsExecute | kFsWriteFile | kFsReadFile | kFsTruncate | kFsIoctlDev;

uint64_t fs_rights(int abi) {
    uint64_t r = (1ull << 13) - 1;
    if (abi >= 2)
        r |= kFsRefer;
    if (abi >= 3)
        r |= kFsTruncate;
    if (abi >= 5)
        r |= kFsIoctlDev;
    return r;
}

long create_ruleset(const RulesetAttr* attr, size_t size, uint32_t flags) {
    return ::syscall(SYS_landlock_create_ruleset, attr, size, flags);
}

Result<void> add_fd(int ruleset, int fd, const std::string& path, uint64_t access, int abi) {
    struct stat st{};
    if (::fstat(fd, &st) != 0)
        return make_error(errno, "landlock: " + path + ": " + errno_string(errno));
    access &= fs_rights(abi);
    if (!S_ISDIR(st.st_mode))
        access &= kFileRights;
    PathBeneathAttr pb{access, fd};
    if (::syscall(SYS_landlock_add_rule, ruleset, kRulePathBeneath, &pb, 0) != 0)
        return make_error(errno, "landlock: rule for " + path + ": " + errno_string(errno));
    return {};
}

Result<void> add_path(int ruleset, const std::string& path, uint64_t access, int abi) {
    UniqueFd fd(::open(path.c_str(), O_PATH | O_CLOEXEC));
    if (!fd) {
        if (errno == ENOENT)
            return {};
        return make_error(errno, "landlock: " + path + ": " + errno_string(errno));
    }
    return add_fd(ruleset, fd.get(), path, access, abi);
}

Result<void> add_port(int ruleset, uint16_t port, uint64_t access) {
    NetPortAttr np{access, port};
    if (::syscall(SYS_landlock_add_rule, ruleset, kRuleNetPort, &np, 0) != 0)
        return make_error(errno, "landlock: rule for TCP port " + std::to_string(port) + ": " +
                                     errno_string(errno));
    return {};
}

} // namespace

int landlock_abi() {
    long v = create_ruleset(nullptr, 0, kCreateRulesetVersion);
    return v < 0 ? 0 : static_cast<int>(v);
}

Result<int> landlock_build(const LandlockRules& rules, int abi) {
    if (abi < 1)
        return make_error(EOPNOTSUPP, "landlock is not available on this kernel");
    RulesetAttr attr{};
    attr.handled_access_fs = fs_rights(abi);
    size_t size = sizeof(uint64_t);
    if (abi >= 4) {
        // A right with no port rule is denied: with neither list nor "any",
        // the sandbox can neither bind nor connect TCP sockets.
        if (!rules.tcp_any_bind)
            attr.handled_access_net |= kNetBindTcp;
        if (!rules.tcp_any_connect)
            attr.handled_access_net |= kNetConnectTcp;
        size = 2 * sizeof(uint64_t);
    }
    if (abi >= 6) {
        attr.scoped = kScopeAbstractUnix | kScopeSignal;
        size = sizeof attr;
    }
    long fd = create_ruleset(&attr, size, 0);
    if (fd < 0)
        return make_error(errno, "landlock_create_ruleset: " + errno_string(errno));
    UniqueFd ruleset(static_cast<int>(fd));
    constexpr uint64_t kRead = kFsReadFile | kFsReadDir;
    constexpr uint64_t kWrite = kRead | kFsWriteFile | kFsRemoveDir | kFsRemoveFile | kFsMakeDir |
                                kFsMakeReg | kFsMakeSock | kFsMakeFifo | kFsMakeSym | kFsRefer |
                                kFsTruncate;
    static_assert((kWrite & (kFsExecute | kFsMakeChar | kFsMakeBlock)) == 0, "no exec or devices in writable trees");
    for (const auto& p : rules.read_paths)
        KOS_TRY(add_path(ruleset.get(), p, kRead, abi));
    for (const auto& p : rules.list_paths)
        KOS_TRY(add_path(ruleset.get(), p, kFsReadDir, abi));
    for (const auto& p : rules.write_paths)
        KOS_TRY(add_path(ruleset.get(), p, kWrite, abi));
    for (const auto& p : rules.exec_files)
        KOS_TRY(add_path(ruleset.get(), p, kFsExecute | kFsReadFile, abi));
    for (const auto& p : rules.rw_files)
        KOS_TRY(add_path(ruleset.get(), p, kFsReadFile | kFsWriteFile | kFsTruncate, abi));
    constexpr uint64_t kVolumeWrite = kFsWriteFile | kFsRemoveDir | kFsRemoveFile | kFsMakeReg | kFsMakeDir |
                                      kFsMakeSym | kFsRefer | kFsTruncate;
    for (const VolumeRule& v : rules.volumes) {
        uint64_t access = (v.read ? kRead : 0) | (v.write ? kVolumeWrite : 0);
        if (!access)
            continue; // mounted, but nothing beneath it is granted
        if (v.fd >= 0)
            KOS_TRY(add_fd(ruleset.get(), v.fd, v.path, access, abi));
        else
            KOS_TRY(add_path(ruleset.get(), v.path, access, abi));
    }
    if (abi >= 4) {
        if (!rules.tcp_any_bind)
            for (uint16_t port : rules.tcp_bind_ports)
                KOS_TRY(add_port(ruleset.get(), port, kNetBindTcp));
        if (!rules.tcp_any_connect)
            for (uint16_t port : rules.tcp_connect_ports)
                KOS_TRY(add_port(ruleset.get(), port, kNetConnectTcp));
    }
    return ruleset.release();
}

Result<void> landlock_restrict_self(int ruleset_fd) {
    long rc = ::syscall(SYS_landlock_restrict_self, ruleset_fd, 0);
    int err = errno;
    ::close(ruleset_fd);
    if (rc != 0)
        return make_error(err, "landlock_restrict_self: " + errno_string(err));
    return {};
}

} // namespace kos::proc
