#include "seccomp_filter.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "kos/support/file.h"

namespace kos::proc {
namespace {

struct Entry {
    const char* name;
    const char* reason;
};

// Every allowed call with its reason. Calls whose arguments matter (ioctl,
// clone, socket, personality) are allowed with conditions in build().
constexpr Entry kAllow[] = {
    // Files: access is decided by Landlock and the mount namespace, in the kernel.
    {"read", "I/O on open descriptors"},
    {"write", "I/O on open descriptors"},
    {"readv", "I/O on open descriptors"},
    {"writev", "I/O on open descriptors"},
    {"pread64", "I/O on open descriptors"},
    {"pwrite64", "I/O on open descriptors"},
    {"preadv", "I/O on open descriptors"},
    {"pwritev", "I/O on open descriptors"},
    {"preadv2", "I/O on open descriptors"},
    {"pwritev2", "I/O on open descriptors"},
    {"open", "opening files; Landlock decides which"},
    {"openat", "opening files; Landlock decides which"},
    {"openat2", "opening files; Landlock decides which"},
    {"creat", "creating files; Landlock decides where"},
    {"close", "closing descriptors"},
    {"close_range", "closing descriptors"},
    {"lseek", "file offsets"},
    {"stat", "file metadata"},
    {"fstat", "file metadata"},
    {"lstat", "file metadata"},
    {"newfstatat", "file metadata"},
    {"statx", "file metadata"},
    {"statfs", "file system metadata"},
    {"fstatfs", "file system metadata"},
    {"access", "permission checks"},
    {"faccessat", "permission checks"},
    {"faccessat2", "permission checks"},
    {"getdents", "directory listing"},
    {"getdents64", "directory listing"},
    {"getcwd", "working directory"},
    {"chdir", "working directory"},
    {"fchdir", "working directory"},
    {"readlink", "symlinks"},
    {"readlinkat", "symlinks"},
    {"mkdir", "directories; Landlock decides where"},
    {"mkdirat", "directories; Landlock decides where"},
    {"rmdir", "directories; Landlock decides where"},
    {"unlink", "removing files; Landlock decides where"},
    {"unlinkat", "removing files; Landlock decides where"},
    {"rename", "renaming; Landlock decides where"},
    {"renameat", "renaming; Landlock decides where"},
    {"renameat2", "renaming; Landlock decides where"},
    {"link", "hard links; Landlock decides where"},
    {"linkat", "hard links; Landlock decides where"},
    {"symlink", "symlinks; Landlock decides where"},
    {"symlinkat", "symlinks; Landlock decides where"},
    {"mknod", "FIFOs and sockets; no capability allows devices"},
    {"mknodat", "FIFOs and sockets; no capability allows devices"},
    {"chmod", "modes of the app's own files"},
    {"fchmod", "modes of the app's own files"},
    {"fchmodat", "modes of the app's own files"},
    {"fchmodat2", "modes of the app's own files"},
    {"chown", "owners within the app's user namespace"},
    {"fchown", "owners within the app's user namespace"},
    {"lchown", "owners within the app's user namespace"},
    {"fchownat", "owners within the app's user namespace"},
    {"umask", "file creation mask"},
    {"truncate", "file sizes; Landlock decides which"},
    {"ftruncate", "file sizes"},
    {"fallocate", "file space"},
    {"fsync", "durability"},
    {"fdatasync", "durability"},
    {"sync", "durability"},
    {"syncfs", "durability"},
    {"sync_file_range", "durability"},
    {"fadvise64", "I/O hints"},
    {"readahead", "I/O hints"},
    {"flock", "advisory locks"},
    {"fcntl", "descriptor flags and locks"},
    {"dup", "descriptors"},
    {"dup2", "descriptors"},
    {"dup3", "descriptors"},
    {"pipe", "pipes"},
    {"pipe2", "pipes"},
    {"sendfile", "copying between descriptors"},
    {"splice", "copying between descriptors"},
    {"tee", "copying between descriptors"},
    {"vmsplice", "copying between descriptors"},
    {"copy_file_range", "copying between descriptors"},
    {"utime", "file times"},
    {"utimes", "file times"},
    {"utimensat", "file times"},
    {"futimesat", "file times"},
    {"getxattr", "extended attributes (read)"},
    {"lgetxattr", "extended attributes (read)"},
    {"fgetxattr", "extended attributes (read)"},
    {"listxattr", "extended attributes (read)"},
    {"llistxattr", "extended attributes (read)"},
    {"flistxattr", "extended attributes (read)"},
    {"inotify_init", "file change notification"},
    {"inotify_init1", "file change notification"},
    {"inotify_add_watch", "file change notification"},
    {"inotify_rm_watch", "file change notification"},
    {"memfd_create", "anonymous files"},
    // Memory.
    {"brk", "heap"},
    {"mmap", "memory mappings"},
    {"munmap", "memory mappings"},
    {"mremap", "memory mappings"},
    {"mprotect", "memory protection (JITs, loaders)"},
    {"msync", "memory mappings"},
    {"mincore", "memory residency"},
    {"madvise", "memory hints"},
    {"mlock", "memory locking within RLIMIT_MEMLOCK"},
    {"mlock2", "memory locking within RLIMIT_MEMLOCK"},
    {"munlock", "memory locking"},
    {"mlockall", "memory locking within RLIMIT_MEMLOCK"},
    {"munlockall", "memory locking"},
    {"membarrier", "memory ordering across threads"},
    {"pkey_alloc", "memory protection keys"},
    {"pkey_free", "memory protection keys"},
    {"pkey_mprotect", "memory protection keys"},
    {"get_mempolicy", "NUMA queries"},
    {"set_mempolicy", "NUMA policy of the app's own memory"},
    {"mbind", "NUMA policy of the app's own memory"},
    // Processes and threads inside the sandbox's PID namespace.
    {"fork", "new processes in the sandbox"},
    {"vfork", "new processes in the sandbox"},
    {"exit", "thread exit"},
    {"exit_group", "process exit"},
    {"wait4", "waiting for children"},
    {"waitid", "waiting for children"},
    {"kill", "signals (Landlock scopes them to the sandbox)"},
    {"tkill", "signals to own threads"},
    {"tgkill", "signals to own threads"},
    {"pidfd_open", "process handles inside the sandbox"},
    {"pidfd_send_signal", "signals (Landlock scopes them to the sandbox)"},
    {"set_tid_address", "thread startup"},
    {"set_robust_list", "thread startup"},
    {"get_robust_list", "thread startup"},
    {"rseq", "restartable sequences (glibc threads)"},
    {"futex", "thread synchronization"},
    {"futex_waitv", "thread synchronization"},
    {"arch_prctl", "TLS setup"},
    {"prctl", "process attributes; privileges are already dropped"},
    {"sched_yield", "scheduling"},
    {"sched_getaffinity", "scheduling queries"},
    {"sched_setaffinity", "scheduling within the cgroup's CPUs"},
    {"sched_getparam", "scheduling queries"},
    {"sched_setparam", "scheduling of own threads"},
    {"sched_getscheduler", "scheduling queries"},
    {"sched_setscheduler", "scheduling of own threads; RT needs a capability"},
    {"sched_get_priority_max", "scheduling queries"},
    {"sched_get_priority_min", "scheduling queries"},
    {"sched_rr_get_interval", "scheduling queries"},
    {"sched_getattr", "scheduling queries"},
    {"sched_setattr", "scheduling of own threads"},
    {"getpriority", "scheduling queries"},
    {"setpriority", "lowering own priority"},
    {"getcpu", "CPU queries"},
    {"getrlimit", "limits (read)"},
    {"setrlimit", "lowering own limits; raising needs a capability"},
    {"prlimit64", "limits; raising needs a capability"},
    {"getrusage", "resource usage"},
    {"times", "resource usage"},
    {"sysinfo", "system information"},
    {"uname", "system information (own UTS namespace)"},
    {"setsid", "sessions"},
    {"getsid", "sessions"},
    {"setpgid", "process groups"},
    {"getpgid", "process groups"},
    {"getpgrp", "process groups"},
    {"getpid", "identity"},
    {"getppid", "identity"},
    {"gettid", "identity"},
    {"getuid", "identity"},
    {"geteuid", "identity"},
    {"getgid", "identity"},
    {"getegid", "identity"},
    {"getresuid", "identity"},
    {"getresgid", "identity"},
    {"getgroups", "identity"},
    {"setuid", "identity within the user namespace (one mapped id)"},
    {"setgid", "identity within the user namespace (one mapped id)"},
    {"setreuid", "identity within the user namespace (one mapped id)"},
    {"setregid", "identity within the user namespace (one mapped id)"},
    {"setresuid", "identity within the user namespace (one mapped id)"},
    {"setresgid", "identity within the user namespace (one mapped id)"},
    {"setfsuid", "identity within the user namespace (one mapped id)"},
    {"setfsgid", "identity within the user namespace (one mapped id)"},
    {"setgroups", "identity within the user namespace"},
    {"capget", "capability queries (all are dropped)"},
    {"capset", "capabilities can only shrink (all are dropped)"},
    {"seccomp", "further self-restriction"},
    {"landlock_create_ruleset", "further self-restriction"},
    {"landlock_add_rule", "further self-restriction"},
    {"landlock_restrict_self", "further self-restriction"},
    {"restart_syscall", "signal restarts"},
    // Signals.
    {"rt_sigaction", "signal handlers"},
    {"rt_sigprocmask", "signal masks"},
    {"rt_sigreturn", "signal handler return"},
    {"rt_sigpending", "signal queries"},
    {"rt_sigtimedwait", "waiting for signals"},
    {"rt_sigsuspend", "waiting for signals"},
    {"rt_sigqueueinfo", "signals (Landlock scopes them to the sandbox)"},
    {"rt_tgsigqueueinfo", "signals (Landlock scopes them to the sandbox)"},
    {"sigaltstack", "signal stacks"},
    {"signalfd", "signals as descriptors"},
    {"signalfd4", "signals as descriptors"},
    {"pause", "waiting"},
    // Time.
    {"nanosleep", "sleeping"},
    {"clock_nanosleep", "sleeping"},
    {"clock_gettime", "time"},
    {"clock_getres", "time"},
    {"gettimeofday", "time"},
    {"time", "time"},
    {"alarm", "timers"},
    {"getitimer", "timers"},
    {"setitimer", "timers"},
    {"timer_create", "timers"},
    {"timer_settime", "timers"},
    {"timer_gettime", "timers"},
    {"timer_getoverrun", "timers"},
    {"timer_delete", "timers"},
    {"timerfd_create", "timers"},
    {"timerfd_settime", "timers"},
    {"timerfd_gettime", "timers"},
    // Waiting and events.
    {"poll", "event waiting"},
    {"ppoll", "event waiting"},
    {"select", "event waiting"},
    {"pselect6", "event waiting"},
    {"epoll_create", "event waiting"},
    {"epoll_create1", "event waiting"},
    {"epoll_ctl", "event waiting"},
    {"epoll_wait", "event waiting"},
    {"epoll_pwait", "event waiting"},
    {"epoll_pwait2", "event waiting"},
    {"eventfd", "event descriptors"},
    {"eventfd2", "event descriptors"},
    // Sockets: the network namespace holds only loopback; connect and bind
    // on IP sockets are decided by the supervisor (notification).
    {"socketpair", "local socket pairs"},
    {"accept", "serving connections"},
    {"accept4", "serving connections"},
    {"listen", "serving connections"},
    {"shutdown", "sockets"},
    {"getsockname", "sockets"},
    {"getpeername", "sockets"},
    {"getsockopt", "sockets"},
    {"setsockopt", "sockets"},
    {"sendto", "sockets (only loopback exists in the namespace)"},
    {"recvfrom", "sockets"},
    {"sendmsg", "sockets (only loopback exists in the namespace)"},
    {"recvmsg", "sockets"},
    {"sendmmsg", "sockets (only loopback exists in the namespace)"},
    {"recvmmsg", "sockets"},
    // System V and POSIX IPC, private to the sandbox's IPC namespace.
    {"shmget", "IPC in own namespace"},
    {"shmat", "IPC in own namespace"},
    {"shmdt", "IPC in own namespace"},
    {"shmctl", "IPC in own namespace"},
    {"semget", "IPC in own namespace"},
    {"semop", "IPC in own namespace"},
    {"semtimedop", "IPC in own namespace"},
    {"semctl", "IPC in own namespace"},
    {"msgget", "IPC in own namespace"},
    {"msgsnd", "IPC in own namespace"},
    {"msgrcv", "IPC in own namespace"},
    {"msgctl", "IPC in own namespace"},
    {"mq_open", "IPC in own namespace"},
    {"mq_unlink", "IPC in own namespace"},
    {"mq_timedsend", "IPC in own namespace"},
    {"mq_timedreceive", "IPC in own namespace"},
    {"mq_notify", "IPC in own namespace"},
    {"mq_getsetattr", "IPC in own namespace"},
    // Randomness.
    {"getrandom", "randomness"},
};

// Denied with kDeniedErrno: kernel attack surface or ways around the
// sandbox. Each would otherwise fall to ENOSYS; naming them gives the
// policy's errno and documents intent.
constexpr const char* kDeny[] = {
    "io_uring_setup", "io_uring_enter", "io_uring_register", // bypasses seccomp for I/O (ATTACKS 27)
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", // inspecting other processes
    "bpf", "perf_event_open", "userfaultfd",                   // kernel attack surface
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr",                       // the file system view is fixed
    "unshare", "setns",                                         // namespaces
    "keyctl", "add_key", "request_key",                         // kernel keyrings are not namespaced
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
    "swapon", "swapoff", "acct", "quotactl", "syslog", "vhangup", "iopl", "ioperm",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "name_to_handle_at",
    "open_by_handle_at", "lookup_dcookie", "uselib", "nfsservctl",
    "setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr",
    "fanotify_init", "fanotify_mark", "migrate_pages", "move_pages",
};

// clone3 is not listed: its flags live in memory the filter cannot read, so
// it fails with ENOSYS and libc falls back to clone, whose flags are checked.

constexpr const char* kNotify[] = {"connect", "bind", "execve", "execveat"};

// With volumes under a policy: every call that names a path, so that the
// supervisor can judge those that land in a volume as the VFS server's
// requests and perform them itself (docs/process-backend.md, "Paths in
// volumes"). Calls on descriptors (read, write, fstat, fchmod, ftruncate,
// getdents) are not here: the open was the decision.
constexpr const char* kNotifyPaths[] = {
    "open", "openat", "openat2", "creat", "truncate",                       // vfs.File.open
    "stat", "lstat", "newfstatat", "statx", "access", "faccessat", "faccessat2", // vfs.File.stat
    "mkdir", "mkdirat", "unlink", "unlinkat", "rmdir", "rename", "renameat", "renameat2",
    "symlink", "symlinkat", "link", "linkat", "readlink", "readlinkat",
    "chmod", "fchmodat", "fchmodat2", "utime", "utimes", "utimensat", "futimesat", // chmod, set_times
    "mknod", "mknodat",                                                   // refused in volumes
};

constexpr uint64_t kNamespaceFlags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET |
                                     CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP | 0x80 /*CLONE_NEWTIME*/;

// SCMP_A0..SCMP_A5 leave datum_b to the compiler's zeroing, which
// -Wmissing-field-initializers rejects; this spells it out.
constexpr scmp_arg_cmp arg(unsigned n, scmp_compare op, uint64_t a, uint64_t b = 0) { return {n, op, a, b}; }

int resolve(const char* name) { return seccomp_syscall_resolve_name(name); }

struct Ctx {
    scmp_filter_ctx ctx;
    ~Ctx() { seccomp_release(ctx); }
};

Result<void> rule(scmp_filter_ctx ctx, uint32_t action, int nr, const char* name, unsigned n,
                  const scmp_arg_cmp* cmp) {
    int rc = seccomp_rule_add_array(ctx, action, nr, n, cmp);
    if (rc < 0)
        return make_error(-rc, std::string("seccomp rule for ") + name + ": " + errno_string(-rc));
    return {};
}

Result<std::vector<uint8_t>> export_fd(scmp_filter_ctx ctx, bool pfc, std::string* text) {
    UniqueFd fd(::memfd_create("kos-seccomp", MFD_CLOEXEC));
    if (!fd)
        return make_error(errno, "memfd_create: " + errno_string(errno));
    int rc = pfc ? seccomp_export_pfc(ctx, fd.get()) : seccomp_export_bpf(ctx, fd.get());
    if (rc < 0)
        return make_error(-rc, "exporting the seccomp filter: " + errno_string(-rc));
    off_t size = ::lseek(fd.get(), 0, SEEK_END);
    std::vector<uint8_t> out(static_cast<size_t>(size));
    if (::pread(fd.get(), out.data(), out.size(), 0) != size)
        return make_error(EIO, "reading the exported seccomp filter");
    if (text)
        text->assign(out.begin(), out.end());
    return out;
}

} // namespace

const char* const* denied_syscall_names(size_t* count) {
    *count = sizeof kDeny / sizeof kDeny[0];
    return kDeny;
}

const char* const* volume_path_syscall_names(size_t* count) {
    *count = sizeof kNotifyPaths / sizeof kNotifyPaths[0];
    return kNotifyPaths;
}

Result<SeccompFilter> SeccompFilter::build(const SeccompOptions& options) {
    Ctx c{seccomp_init(SCMP_ACT_ERRNO(kUnknownErrno))};
    if (!c.ctx)
        return make_error(ENOMEM, "seccomp_init failed");
    // Only the native ABI: i386 (int 0x80) and x32 system calls kill the
    // process. libseccomp checks the arch field first and, for x86_64,
    // rejects numbers with the x32 bit as a bad architecture.
    if (int rc = seccomp_attr_set(c.ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS); rc < 0)
        return make_error(-rc, "seccomp: bad-arch action: " + errno_string(-rc));
    // A binary tree of syscall numbers instead of a linear chain: a few
    // comparisons per call whatever the table's size (DESIGN.md: an allowed
    // call within 1.15x of native).
    if (int rc = seccomp_attr_set(c.ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2); rc < 0)
        return make_error(-rc, "seccomp: binary-tree optimization: " + errno_string(-rc));
    auto notified_path = [&](const char* name) {
        if (!(options.notify && options.volume_paths))
            return false;
        for (const char* n : kNotifyPaths)
            if (std::strcmp(n, name) == 0)
                return true;
        return false;
    };
    for (const Entry& e : kAllow) {
        int nr = resolve(e.name);
        if (nr == __NR_SCMP_ERROR)
            continue; // unknown to this libseccomp: falls to ENOSYS
        KOS_TRY(rule(c.ctx, notified_path(e.name) ? SCMP_ACT_NOTIFY : SCMP_ACT_ALLOW, nr, e.name, 0, nullptr));
    }
    for (const char* name : kDeny) {
        int nr = resolve(name);
        if (nr == __NR_SCMP_ERROR)
            continue;
        KOS_TRY(rule(c.ctx, SCMP_ACT_ERRNO(kDeniedErrno), nr, name, 0, nullptr));
    }
    // ioctl: everything but terminal input injection (ATTACKS 27; the app
    // has no controlling terminal either) and console control.
    {
        int nr = resolve("ioctl");
        scmp_arg_cmp deny[] = {arg(1, SCMP_CMP_MASKED_EQ, 0xffffffffu, 0x5412 /*TIOCSTI*/),
                                arg(1, SCMP_CMP_MASKED_EQ, 0xffffffffu, 0x541c /*TIOCLINUX*/)};
        KOS_TRY(rule(c.ctx, SCMP_ACT_ERRNO(kDeniedErrno), nr, "ioctl TIOCSTI", 1, &deny[0]));
        KOS_TRY(rule(c.ctx, SCMP_ACT_ERRNO(kDeniedErrno), nr, "ioctl TIOCLINUX", 1, &deny[1]));
        // Other requests: allowed (device access is limited by the minimal
        // /dev and Landlock's IOCTL_DEV right).
        // (libseccomp checks the two denials above first; one condition per
        // argument is all a rule may hold, and it only has to differ from
        // the denied ones.)
        scmp_arg_cmp ne = arg(1, SCMP_CMP_NE, 0x5412);
        KOS_TRY(rule(c.ctx, SCMP_ACT_ALLOW, nr, "ioctl", 1, &ne));
    }
    // clone: threads and processes, never new namespaces.
    {
        int nr = resolve("clone");
        scmp_arg_cmp ok = arg(0, SCMP_CMP_MASKED_EQ, kNamespaceFlags, 0);
        KOS_TRY(rule(c.ctx, SCMP_ACT_ALLOW, nr, "clone", 1, &ok));
        for (uint64_t bit = 1; bit; bit <<= 1) {
            if (!(kNamespaceFlags & bit))
                continue;
            scmp_arg_cmp ns = arg(0, SCMP_CMP_MASKED_EQ, bit, bit);
            KOS_TRY(rule(c.ctx, SCMP_ACT_ERRNO(kDeniedErrno), nr, "clone with namespace flags", 1, &ns));
        }
    }
    // socket: local, IP and netlink sockets only (no raw packet access).
    {
        int nr = resolve("socket");
        for (int family : {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK}) {
            scmp_arg_cmp f = arg(0, SCMP_CMP_EQ, static_cast<uint64_t>(family));
            KOS_TRY(rule(c.ctx, SCMP_ACT_ALLOW, nr, "socket", 1, &f));
        }
    }
    // personality: queries and PER_LINUX only (no READ_IMPLIES_EXEC, no
    // ADDR_NO_RANDOMIZE).
    {
        int nr = resolve("personality");
        for (uint64_t v : {0ull, 0xffffffffull}) {
            scmp_arg_cmp p = arg(0, SCMP_CMP_EQ, v);
            KOS_TRY(rule(c.ctx, SCMP_ACT_ALLOW, nr, "personality", 1, &p));
        }
    }
    for (const char* name : kNotify) {
        int nr = resolve(name);
        KOS_TRY(rule(c.ctx, options.notify ? SCMP_ACT_NOTIFY : SCMP_ACT_ALLOW, nr, name, 0, nullptr));
    }
    SeccompFilter f;
    f.m_notify = options.notify;
    f.m_bpf = KOS_TRY(export_fd(c.ctx, false, nullptr));
    if (options.with_pfc)
        KOS_TRY(export_fd(c.ctx, true, &f.m_pfc));
    return f;
}

int SeccompFilter::load() const {
    sock_fprog prog{};
    prog.len = static_cast<unsigned short>(m_bpf.size() / sizeof(sock_filter));
    prog.filter = reinterpret_cast<sock_filter*>(const_cast<uint8_t*>(m_bpf.data()));
    unsigned flags = m_notify ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0;
    long rc = ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
    if (rc < 0)
        return -errno;
    return m_notify ? static_cast<int>(rc) : -1;
}

} // namespace kos::proc
