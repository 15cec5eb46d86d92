// Host-process backend benchmark: the cost of its confinement, each against
// a baseline measured in the same run (targets in DESIGN.md).
//
//   getpid       an allowed pass-through system call: unconfined vs under the
//                backend's seccomp filter + Landlock ruleset (the same
//                generated artifacts, applied in a forked child)
//   open+close   of a readable file, same two cases
//   hello        cold start of examples/hello: posix_spawn and fork+exec of
//                the static binary vs the sandbox started by the library
//                (run_sandbox) and vs the whole `kos run --backend process`
//
// Usage: kos_process_bench KOS_BINARY SOURCE_DIR [RUNS]
#include <fcntl.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "platform.h"
#include "process-host/landlock.h"
#include "process-host/process_backend.h"
#include "process-host/sandbox.h"
#include "process-host/sandbox_spec.h"
#include "process-host/seccomp_filter.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// ns per iteration of `op`, best of 5 batches.
double ns_per_op(int iters, const std::function<void()>& op) {
    double best = 1e30;
    for (int batch = 0; batch < 5; ++batch) {
        auto t = Clock::now();
        for (int i = 0; i < iters; ++i)
            op();
        double ns = std::chrono::duration<double, std::nano>(Clock::now() - t).count() / iters;
        best = std::min(best, ns);
    }
    return best;
}

struct Micro {
    double getpid_ns = 0;
    double open_close_ns = 0;
};

const char* kOpenPath = "/etc/hostname";

Micro measure() {
    Micro m;
    m.getpid_ns = ns_per_op(1'000'000, [] { ::syscall(SYS_getpid); });
    m.open_close_ns = ns_per_op(100'000, [] {
        int fd = ::open(kOpenPath, O_RDONLY | O_CLOEXEC);
        ::close(fd);
    });
    return m;
}

enum Confine { kNone = 0, kSeccomp = 1, kLandlock = 2, kBoth = 3 };

// Measures in a forked child, confined first as asked.
bool measure_in_child(int confine, Micro* out) {
    int p[2];
    if (::pipe(p) != 0)
        return false;
    pid_t pid = ::fork();
    if (pid == 0) {
        ::close(p[0]);
        if (confine) {
            auto filter = kos::proc::SeccompFilter::build({.notify = false});
            kos::proc::LandlockRules rules;
            rules.read_paths = {"/"};
            rules.write_paths = {"/tmp"};
            auto rs = kos::proc::landlock_build(rules, kos::proc::landlock_abi());
            if (!filter || !rs || ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
                ::_exit(1);
            if ((confine & kLandlock) && !kos::proc::landlock_restrict_self(*rs))
                ::_exit(1);
            if ((confine & kSeccomp) && filter->load() < -1)
                ::_exit(1);
        }
        Micro m = measure();
        [[maybe_unused]] ssize_t w = ::write(p[1], &m, sizeof m);
        ::_exit(0);
    }
    ::close(p[1]);
    bool ok = ::read(p[0], out, sizeof *out) == static_cast<ssize_t>(sizeof *out);
    ::close(p[0]);
    int st = 0;
    ::waitpid(pid, &st, 0);
    return ok && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

int devnull() { return ::open("/dev/null", O_WRONLY | O_CLOEXEC); }

double spawn_ms(const std::vector<std::string>& argv, bool use_fork) {
    std::vector<char*> args;
    for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int null = devnull();
    auto t = Clock::now();
    pid_t pid = -1;
    if (use_fork) {
        pid = ::fork();
        if (pid == 0) {
            ::dup2(null, 1);
            ::execve(args[0], args.data(), environ);
            ::_exit(127);
        }
    } else {
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, null, 1);
        ::posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
        posix_spawn_file_actions_destroy(&fa);
    }
    int st = 0;
    ::waitpid(pid, &st, 0);
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - t).count();
    ::close(null);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        std::fprintf(stderr, "%s exited with status %d\n", argv[0].c_str(), st);
    return ms;
}

// run_sandbox from this (single-threaded) process, stdout to /dev/null.
double library_ms(const kos::proc::SandboxSpec& spec) {
    int saved = ::dup(1);
    int null = devnull();
    ::dup2(null, 1);
    auto t = Clock::now();
    auto r = kos::proc::run_sandbox(spec, {});
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - t).count();
    ::dup2(saved, 1);
    ::close(saved);
    ::close(null);
    if (!r || r->kind != kos::proc::RunOutcome::Kind::Exited || r->value != 0)
        std::fprintf(stderr, "run_sandbox failed: %s\n", r ? "bad exit" : r.error().message.c_str());
    return ms;
}

void row(const char* what, double kos, double base, const char* unit) {
    std::printf("%-58s %10.3f %10.3f %4s %7.2fx\n", what, kos, base, unit, kos / base);
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s KOS_BINARY SOURCE_DIR [RUNS]\n", argv[0]);
        return 2;
    }
    std::string kos = argv[1], src = argv[2];
    int runs = argc > 3 ? std::max(1, std::atoi(argv[3])) : 20;
    std::printf("kos host-process backend benchmark\nplatform: %s\nlandlock ABI %d; runs: %d (median for "
                "cold starts, best of 5 batches for system calls)\n\n",
                kos::bench::platform_line().c_str(), kos::proc::landlock_abi(), runs);
    std::fflush(stdout); // before stdout is pointed at /dev/null around run_sandbox
    std::string why;
    if (!kos::proc::process_backend_usable(&why)) {
        std::printf("SKIPPED: the process backend cannot run here: %s\n", why.c_str());
        return 0;
    }

    Micro native{}, confined{}, seccomp_only{}, landlock_only{};
    if (!measure_in_child(kNone, &native) || !measure_in_child(kBoth, &confined) ||
        !measure_in_child(kSeccomp, &seccomp_only) || !measure_in_child(kLandlock, &landlock_only)) {
        std::fprintf(stderr, "measuring in a child failed\n");
        return 1;
    }

    std::string hello = src + "/examples/hello/rootfs/hello";
    auto spec = kos::proc::spec_from_bundle_dir(src + "/examples/hello", {});
    if (!spec) {
        std::fprintf(stderr, "%s\n", spec.error().message.c_str());
        return 1;
    }
    std::vector<double> ps, fe, lib, cli;
    spawn_ms({hello}, false); // warm the page cache
    library_ms(*spec);
    for (int i = 0; i < runs; ++i) {
        ps.push_back(spawn_ms({hello}, false));
        fe.push_back(spawn_ms({hello}, true));
        lib.push_back(library_ms(*spec));
        cli.push_back(spawn_ms({kos, "run", "--backend", "process", src + "/examples/hello"}, false));
    }
    double p = median(ps), f = median(fe), l = median(lib), c = median(cli);

    std::printf("%-58s %10s %10s %4s %8s\n", "measure", "kos", "base", "", "ratio");
    row("getpid: seccomp + Landlock vs unconfined", confined.getpid_ns, native.getpid_ns, "ns");
    row("open+close: seccomp + Landlock vs unconfined", confined.open_close_ns, native.open_close_ns, "ns");
    row("  open+close: seccomp only", seccomp_only.open_close_ns, native.open_close_ns, "ns");
    row("  open+close: Landlock only", landlock_only.open_close_ns, native.open_close_ns, "ns");
    row("hello cold start: run_sandbox() vs posix_spawn", l, p, "ms");
    row("hello cold start: run_sandbox() vs fork+exec", l, f, "ms");
    row("hello cold start: `kos run --backend process` vs posix_spawn", c, p, "ms");
    std::printf("\ntargets (DESIGN.md): getpid <= 1.15x; open+close <= 1.3x; hello <= 1.5x posix_spawn\n");
    return 0;
}
