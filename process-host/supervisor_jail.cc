#include "supervisor_jail.h"

#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>

#include "kos/support/file.h"

namespace kos::proc {
namespace {

struct Entry {
    const char* name;
    const char* reason;
};

constexpr Entry kAllow[] = {
    {"poll", "the supervision loop"},
    {"ppoll", "the supervision loop"},
    {"read", "setup socket, relay, /proc and cgroup files"},
    {"write", "audit lines on stderr, relay"},
    {"writev", "stdio"},
    {"close", "descriptors"},
    {"ioctl", "seccomp notifications: RECV, SEND, ID_VALID, ADDFD (checked below)"},
    {"process_vm_readv", "copying a path or address out of the program once"},
    {"openat", "/proc/<pid>/{root,cwd,fd,comm}, cgroup event files"},
    {"openat2", "resolving an execve path inside the sandbox root"},
    {"fstat", "identifying an execve target"},
    {"newfstatat", "identifying an execve target"},
    {"statx", "identifying an execve target"},
    {"readlink", "the path of an execve target inside the sandbox (/proc/self/fd), for the policy's verdict"},
    {"readlinkat", "the same, where libc uses readlinkat"},
    {"lseek", "stdio"},
    // Paths in volumes, performed for the program beneath the volume's mount (supervisor_vfs.cc).
    {"process_vm_writev", "a stat buffer or a link's target written into the program"},
    {"mkdirat", "mkdir in a volume"},
    {"unlinkat", "unlink, rmdir in a volume"},
    {"renameat2", "rename in a volume"},
    {"symlinkat", "symlink in a volume"},
    {"linkat", "link in a volume"},
    {"fchmodat", "chmod in a volume"},
    {"utimensat", "file times in a volume"},
    {"faccessat2", "access in a volume"},
    {"ftruncate", "truncate in a volume"},
    {"umask", "the program's umask, not the supervisor's, for files it creates in a volume"},
    {"fstatfs", "telling /proc apart while resolving a path as the program's kernel would"},
    {"setfsuid", "acting with the program's host ids in a volume"},
    {"setfsgid", "acting with the program's host ids in a volume"},
    {"fcntl", "a blocking socket made non-blocking for the supervisor's connect, then restored"},
    {"pidfd_open", "duplicating the program's socket"},
    {"pidfd_getfd", "duplicating the program's socket to connect/bind with the checked address"},
    {"getsockopt", "the socket's type"},
    {"connect", "an allowed connect on the duplicated socket; relay to the published port"},
    {"bind", "an allowed bind on the duplicated socket"},
    {"socket", "relay sockets inside the sandbox's network namespace"},
    {"setns", "entering and leaving the sandbox's network namespace for relay sockets"},
    {"accept4", "published ports"},
    {"sendto", "relay"},
    {"recvfrom", "relay"},
    {"recvmsg", "setup socket"},
    {"shutdown", "relay half-close"},
    {"wait4", "the program's exit"},
    {"waitid", "the program's exit"},
    {"kill", "the wall-time limit"},
    {"rmdir", "removing the run's cgroup"},
    {"clock_gettime", "deadlines"},
    {"clock_nanosleep", "waiting for the cgroup to empty"},
    {"nanosleep", "waiting for the cgroup to empty"},
    {"getpid", "libc"},
    {"gettid", "libc"},
    {"brk", "heap"},
    {"mmap", "heap"},
    {"munmap", "heap"},
    {"mremap", "heap"},
    {"madvise", "heap"},
    {"futex", "libc locks"},
    {"rt_sigprocmask", "libc"},
    {"rt_sigaction", "libc"},
    {"rt_sigreturn", "signal return"},
    {"restart_syscall", "signal restarts"},
    {"tgkill", "abort()"},
    {"exit", "exit"},
    {"exit_group", "exit"},
};

} // namespace

Result<void> jail_supervisor() {
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return make_error(errno, "supervisor jail: no_new_privs: " + errno_string(errno));
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
    if (!ctx)
        return make_error(ENOMEM, "supervisor jail: seccomp_init failed");
    auto fail = [&](int rc, const std::string& what) {
        seccomp_release(ctx);
        return make_error(-rc, "supervisor jail: " + what + ": " + errno_string(-rc));
    };
    if (int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2); rc < 0)
        return fail(rc, "optimize");
    for (const Entry& e : kAllow) {
        int nr = seccomp_syscall_resolve_name(e.name);
        if (nr == __NR_SCMP_ERROR)
            continue;
        if (std::string(e.name) == "ioctl") {
            for (unsigned long req : {static_cast<unsigned long>(SECCOMP_IOCTL_NOTIF_RECV),
                                      static_cast<unsigned long>(SECCOMP_IOCTL_NOTIF_SEND),
                                      static_cast<unsigned long>(SECCOMP_IOCTL_NOTIF_ID_VALID),
                                      static_cast<unsigned long>(SECCOMP_IOCTL_NOTIF_ADDFD)}) {
                scmp_arg_cmp cmp{1, SCMP_CMP_MASKED_EQ, 0xffffffffu, req & 0xffffffffu};
                if (int rc = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, 1, &cmp); rc < 0)
                    return fail(rc, "ioctl rule");
            }
            continue;
        }
        if (int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0); rc < 0)
            return fail(rc, std::string("rule for ") + e.name);
    }
    int rc = seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc < 0)
        return make_error(-rc, "supervisor jail: loading the filter: " + errno_string(-rc));
    return {};
}

} // namespace kos::proc
