#include "process_backend.h"

#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "cgroup.h"
#include "kos/support/file.h"
#include "pkg/bundle_config.h"
#include "landlock.h"
#include "sandbox.h"
#include "sandbox_spec.h"

namespace kos::proc {
namespace {

constexpr int kExitKosError = 125;
constexpr int kExitCannotExecute = 126;
constexpr int kExitNotFound = 127;

std::string read_line(const char* path) {
    std::ifstream f(path);
    std::string s;
    std::getline(f, s);
    return s;
}

// Forks a child that tries unshare(flags); true when it worked.
bool can_unshare(int flags) {
    pid_t pid = ::fork();
    if (pid == 0)
        ::_exit(::unshare(flags) == 0 ? 0 : 1);
    if (pid < 0)
        return false;
    int st = 0;
    ::waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

} // namespace

std::vector<HostFeature> probe_host() {
    std::vector<HostFeature> out;
    int abi = landlock_abi();
    std::string ll = abi > 0 ? "ABI " + std::to_string(abi) + " (file system" +
                                   std::string(abi >= 4 ? ", TCP ports" : "") +
                                   std::string(abi >= 6 ? ", signal and abstract-socket scoping" : "") + ")"
                             : "unavailable (kernel without CONFIG_SECURITY_LANDLOCK or not in lsm=)";
    out.push_back({"landlock", ll, abi >= 1});
    std::string actions = read_line("/proc/sys/kernel/seccomp/actions_avail");
    bool notif = actions.find("user_notif") != std::string::npos;
    out.push_back({"seccomp", actions.empty() ? "unavailable" : "actions: " + actions, notif});
    bool userns = can_unshare(CLONE_NEWUSER);
    std::string uv = userns ? "available" : "unavailable";
    std::string unpriv = read_line("/proc/sys/kernel/unprivileged_userns_clone");
    std::string maxns = read_line("/proc/sys/user/max_user_namespaces");
    if (!unpriv.empty())
        uv += std::string(", unprivileged ") + (unpriv == "1" ? "allowed" : "disabled (kernel.unprivileged_userns_clone=0)");
    if (maxns == "0")
        uv += ", user.max_user_namespaces=0";
    out.push_back({"user namespaces", uv, userns});
    bool others = can_unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET);
    out.push_back({"mount/pid/ipc/uts/net namespaces", others ? "available" : "unavailable", others});
    CgroupSupport cg = probe_cgroups();
    bool cg_write = ::access(cg.version == CgroupVersion::V2 ? cg.root.c_str() : "/sys/fs/cgroup/memory", W_OK) == 0;
    out.push_back({"process backend verdicts",
                   "the bundle's compiled policy through the security engine; a bundle without [policy] sources "
                   "gets the sandbox spec's ([network], entrypoint only)",
                   true});
    out.push_back({"cgroups", cg.detail + (cg.version != CgroupVersion::None && !cg_write ? " (not writable: [limits] "
                                                                                             "memory/pids/cpu need --best-effort)"
                                                                                           : ""),
                   cg.version != CgroupVersion::None && cg_write});
    return out;
}

bool process_backend_usable(std::string* why) {
    if (landlock_abi() < 1) {
        if (why)
            *why = "Landlock is unavailable";
        return false;
    }
    if (!can_unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET)) {
        if (why)
            *why = "namespaces cannot be created";
        return false;
    }
    return true;
}

int run_bundle(const BackendRequest& r) {
    auto t0 = std::chrono::steady_clock::now();
    // No bundle runs without its behavior config ([labels] and [policy] with
    // sources), as under the VM backend (DESIGN.md principle 9).
    {
        std::string path = r.bundle + "/" + pkg::kConfigFileName;
        auto text = read_text_file(path);
        if (text) {
            auto config = pkg::parse_bundle_config(*text, path);
            if (config) {
                if (auto ok = pkg::require_behavior_config(*config, path); !ok) {
                    std::fprintf(stderr, "kos: %s\n", ok.error().message.c_str());
                    return 125;
                }
            }
        }
    }
    auto spec = spec_from_bundle_dir(r.bundle, r.args);
    double prepare_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (!spec) {
        std::fprintf(stderr, "kos: %s\n", spec.error().message.c_str());
        int code = spec.error().code;
        // As the VM backend: a program the policy may not start is 126.
        bool policy_refused = code == EACCES && spec.error().message.rfind("the bundle's policy does not allow", 0) == 0;
        return code == ENOENT && spec.error().message.rfind("cannot run", 0) == 0 ? kExitNotFound
               : code == ENOEXEC || policy_refused                                 ? kExitCannotExecute
                                                                                   : kExitKosError;
    }
    if (auto ok = add_volumes(*spec, r.volumes); !ok) {
        std::fprintf(stderr, "kos: %s\n", ok.error().message.c_str());
        return kExitKosError;
    }
    for (const std::string& n : spec->notes)
        std::fprintf(stderr, "kos: note: %s\n", n.c_str());
    RunOptions o;
    o.best_effort = r.best_effort;
    o.stats = r.stats;
    o.timeout_s = r.timeout_s;
    o.audit_log = r.audit_log;
    o.jail_supervisor = true;
    for (const std::string& p : r.publish) {
        auto pub = parse_publish(p, "-p");
        if (!pub) {
            std::fprintf(stderr, "kos: %s\n", pub.error().message.c_str());
            return kExitKosError;
        }
        o.publish.push_back(*pub);
    }
    if (r.stats)
        std::fprintf(stderr, "kos: bundle prepared in %.2f ms (config, labels%s)\n", prepare_ms,
                     spec->policy.empty() ? "" : ", policy compiled, rootfs asked about");
    auto outcome = run_sandbox(*spec, o);
    if (!outcome) {
        std::fprintf(stderr, "kos: %s\n", outcome.error().message.c_str());
        return kExitKosError;
    }
    auto ms = [](uint64_t ns) { return static_cast<double>(ns) / 1e6; };
    if (r.stats)
        std::fprintf(stderr,
                     "kos: sandbox set up in %.2f ms (filter built at %.2f, namespaces at %.2f, mounts at %.2f, confined at %.2f, "
                     "program started at %.2f), ran %.2f ms, %llu notifications, %llu denied\n",
                     ms(outcome->setup_ns), ms(outcome->prepared_ns), ms(outcome->cloned_ns), ms(outcome->mounted_ns),
                     ms(outcome->confined_ns), ms(outcome->setup_ns), ms(outcome->run_ns),
                     static_cast<unsigned long long>(outcome->notifications),
                     static_cast<unsigned long long>(outcome->denials));
    if (!outcome->limit_hit.empty())
        std::fprintf(stderr, "kos: the program was stopped by its %s\n", outcome->limit_hit.c_str());
    if (r.result) {
        r.result->signaled = outcome->kind == RunOutcome::Kind::Signaled;
        r.result->value = outcome->value;
        r.result->limit_hit = outcome->limit_hit;
    }
    switch (outcome->kind) {
    case RunOutcome::Kind::ExecFailed:
        std::fprintf(stderr, "kos: cannot run %s: %s\n", spec->argv[0].c_str(), std::strerror(outcome->value));
        return outcome->value == ENOENT ? kExitNotFound : kExitCannotExecute;
    case RunOutcome::Kind::Signaled:
        return 128 + outcome->value;
    case RunOutcome::Kind::Exited:
        return outcome->value;
    }
    return kExitKosError;
}

} // namespace kos::proc
