// `kos run --name/-d/--rm` and `kos ps / logs / stop / rm / inspect`:
// instances of runs (instances.h, instance_store.h).
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include "instance_store.h"
#include "instances.h"

namespace kos::cli::instances {
namespace {

constexpr int kExitKosError = 125;

// Written by the runner, read by the monitor once the runner has ended:
// a MAP_SHARED page, so that writing it needs no system call (the VMM's
// jail allows none that would open or send anything).
struct RunnerReport {
    int32_t program_signal;
    char limit[256];
    char error[2048];
};
RunnerReport* g_report = nullptr;

void copy_text(char* dst, size_t size, const std::string& s) {
    size_t n = std::min(s.size(), size - 1);
    std::memcpy(dst, s.data(), n);
    dst[n] = '\0';
}

int fail(const std::string& message, int status = 1) {
    std::fprintf(stderr, "kos: %s\n", message.c_str());
    return status;
}

std::string random_id() {
    uint8_t bytes[32];
    size_t got = 0;
    while (got < sizeof bytes) {
        ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
        if (n > 0)
            got += static_cast<size_t>(n);
    }
    static const char* kHex = "0123456789abcdef";
    std::string id;
    for (uint8_t b : bytes) {
        id += kHex[b >> 4];
        id += kHex[b & 15];
    }
    return id;
}

// A readable default name: adjective_noun, from the id's random bits.
std::string generated_name(const std::string& id, int attempt) {
    static const char* kAdjectives[] = {"brave", "calm",   "eager",  "fond",   "gentle", "happy",
                                        "keen",  "lucid",  "mellow", "nimble", "proud",  "quiet",
                                        "sharp", "steady", "tidy",   "witty"};
    static const char* kNouns[] = {"badger", "crane", "dingo",  "egret", "falcon", "gecko",
                                   "heron",  "ibis",  "jackal", "koala", "lemur",  "marten",
                                   "newt",   "otter", "puffin", "quokka"};
    unsigned a = static_cast<unsigned>(std::stoul(id.substr(0, 2), nullptr, 16));
    unsigned n = static_cast<unsigned>(std::stoul(id.substr(2, 2), nullptr, 16));
    std::string name = std::string(kAdjectives[a % 16]) + "_" + kNouns[n % 16];
    if (attempt > 0)
        name += "_" + id.substr(4, 4);
    return name;
}

std::string name_rule() {
    return "a name is 1 to 64 characters from a-z A-Z 0-9 _ . -, starting with a letter or a digit";
}

bool same_process_gone(const ProcessRef& p) {
    return p.pid <= 0 || process_start_ticks(p.pid) != p.start_ticks;
}

// Sends `sig` to the recorded process if it is still that process (a pidfd
// pins it while its start time is checked, so a reused pid is never hit).
bool signal_process(const ProcessRef& p, int sig) {
    if (p.pid <= 0)
        return false;
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, p.pid, 0));
    if (pidfd < 0)
        return false;
    bool ok = process_start_ticks(p.pid) == p.start_ticks &&
              ::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) == 0;
    ::close(pidfd);
    return ok;
}

// Reads, changes and writes a record under the store's lock.
template <class F> Result<Record> update(const Store& store, const std::string& id, F change) {
    UniqueFd lock = KOS_TRY(store.lock());
    Record r = KOS_TRY(store.read(id));
    change(r);
    KOS_TRY(store.write(r));
    return r;
}

// The monitor: starts the runner, forwards termination signals, records
// the end. `ready_fd` (detached) gets one byte once the run is recorded as
// running. Returns the runner's wait status.
int monitor(const Store& store, const std::string& id, bool attached, int ready_fd,
            const std::function<int()>& body) {
    void* page = ::mmap(nullptr, sizeof(RunnerReport), PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    auto* report = page == MAP_FAILED ? nullptr : new (page) RunnerReport{};
    sigset_t waited, old;
    sigemptyset(&waited);
    for (int sig : {SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT})
        sigaddset(&waited, sig);
    ::sigprocmask(SIG_BLOCK, &waited, &old);
    // An inherited SIGCHLD disposition of SIG_IGN would reap the runner
    // behind our back and lose its status.
    struct sigaction old_chld{}, dfl{};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGCHLD, &dfl, &old_chld);
    std::fflush(nullptr);
    pid_t monitor_pid = ::getpid();
    pid_t child = ::fork();
    if (child == 0) {
        // The monitor is the instance as others see it: when it is killed,
        // the run ends with it, as when kos ran everything in one process.
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != monitor_pid)
            ::_exit(kExitKosError);
        ::sigaction(SIGCHLD, &old_chld, nullptr);
        ::sigprocmask(SIG_SETMASK, &old, nullptr);
        if (ready_fd >= 0)
            ::close(ready_fd);
        g_report = report;
        int status = body();
        std::fflush(nullptr);
        std::exit(status);
    }
    if (child < 0) {
        int err = errno;
        ::sigaction(SIGCHLD, &old_chld, nullptr);
        ::sigprocmask(SIG_SETMASK, &old, nullptr);
        (void)update(store, id, [&](Record& r) {
            r.status = "stopped";
            r.finished_ns = now_unix_ns();
            r.exit_code = kExitKosError;
            r.error = "fork: " + errno_string(err);
        });
        return fail("cannot start the run: fork: " + errno_string(err), kExitKosError) << 8;
    }
    auto started = update(store, id, [&](Record& r) {
        r.status = "running";
        r.runner = {child, process_start_ticks(child)};
        r.started_ns = now_unix_ns();
    });
    if (!started)
        std::fprintf(stderr, "kos: warning: cannot record the run as running: %s\n",
                     started.error().message.c_str());
    if (ready_fd >= 0) {
        char ok = started ? 'R' : 'E';
        (void)!::write(ready_fd, &ok, 1);
        ::close(ready_fd);
    }
    int wstatus = 0;
    for (;;) {
        pid_t got = ::waitpid(child, &wstatus, WNOHANG);
        if (got == child)
            break;
        if (got < 0 && errno != EINTR) { // cannot happen with SIGCHLD at SIG_DFL
            wstatus = kExitKosError << 8;
            break;
        }
        siginfo_t si{};
        if (::sigwaitinfo(&waited, &si) < 0 || si.si_signo == SIGCHLD)
            continue;
        // A key typed at the terminal signals the whole foreground
        // process group, the runner included: do not send it twice.
        if (attached && si.si_code == SI_KERNEL)
            continue;
        ::kill(child, si.si_signo);
    }
    ::sigaction(SIGCHLD, &old_chld, nullptr);
    ::sigprocmask(SIG_SETMASK, &old, nullptr);

    auto ended = update(store, id, [&](Record& r) {
        r.status = "stopped";
        r.finished_ns = now_unix_ns();
        if (WIFEXITED(wstatus)) {
            r.exit_code = WEXITSTATUS(wstatus);
        } else if (WIFSIGNALED(wstatus)) {
            r.signal = WTERMSIG(wstatus);
            r.exit_code = 128 + WTERMSIG(wstatus);
        }
        if (report) {
            if (report->program_signal && !r.signal)
                r.signal = report->program_signal;
            // The runner may be a compromised VMM: bound what it wrote.
            r.limit.assign(report->limit, ::strnlen(report->limit, sizeof report->limit));
            r.error.assign(report->error, ::strnlen(report->error, sizeof report->error));
        }
    });
    if (!ended) {
        std::fprintf(stderr, "kos: warning: cannot record the end of the run: %s\n",
                     ended.error().message.c_str());
    } else if (auto lock = store.lock(); lock) {
        store.release_name(ended->name, id); // the name is free again
        if (ended->remove)
            if (auto rm = store.remove(*ended); !rm)
                std::fprintf(stderr, "kos: warning: --rm: %s\n", rm.error().message.c_str());
    }
    if (report)
        ::munmap(report, sizeof(RunnerReport));
    return wstatus;
}

// The exit status of an attached `kos run`: the runner's; a runner killed
// by a signal kills kos with the same signal, as before runs had monitors.
int finish_attached(int wstatus) {
    if (WIFEXITED(wstatus))
        return WEXITSTATUS(wstatus);
    if (WIFSIGNALED(wstatus)) {
        int sig = WTERMSIG(wstatus);
        std::fflush(nullptr);
        ::signal(sig, SIG_DFL);
        ::raise(sig);
        return 128 + sig;
    }
    return kExitKosError;
}

} // namespace

void note_error(const std::string& message) {
    if (g_report && !g_report->error[0])
        copy_text(g_report->error, sizeof g_report->error, message);
}

void note_limit(const std::string& limit) {
    if (g_report && !limit.empty())
        copy_text(g_report->limit, sizeof g_report->limit, limit);
}

void note_program_signal(int signal) {
    if (g_report)
        g_report->program_signal = signal;
}

void add_run_options(CLI::App* run, RunOptions& o) {
    run->add_option("--name", o.name,
                    "Name the instance (kos ps, logs, stop, rm, inspect); unique among running "
                    "instances; default: a generated name")
        ->each([&o](const std::string&) { o.name_given = true; });
    run->add_flag("-d,--detach", o.detach,
                  "Run in the background: print the instance id and return; the output goes to "
                  "the instance's log (kos logs)");
    run->add_flag("--rm", o.remove, "Remove the instance's record (and log) when the run ends");
}

int run(const RunOptions& o, const RunDescription& d, const std::function<int()>& body) {
    if (o.name_given && !valid_name(o.name))
        return fail("--name \"" + o.name + "\": " + name_rule() + "; choose another name",
                    kExitKosError);
    // An attached run still runs when it cannot be recorded (a read-only
    // home, say); what needs the record (-d, --name) fails instead.
    auto unrecorded = [&](const std::string& why) {
        if (o.detach || o.name_given || o.remove)
            return fail("cannot record the instance: " + why, kExitKosError);
        std::fprintf(stderr,
                     "kos: warning: this run is not recorded (kos ps will not show it): %s\n",
                     why.c_str());
        return body();
    };
    auto store = Store::open(true);
    if (!store)
        return unrecorded(store.error().message);
    if (o.detach) {
        struct stat st{};
        if (::stat(d.bundle.c_str(), &st) != 0)
            return fail(
                d.bundle +
                    ": no such bundle (a directory with bundle.toml, or a packed bundle file)",
                kExitKosError);
    }

    // Validate, then perform: the name is checked and the record created
    // under the lock, so two `kos run --name x` cannot both win. The lock
    // is released before anything runs.
    Record r;
    std::string name_taken;
    auto create = [&]() -> Result<void> {
        UniqueFd lock = KOS_TRY(store->lock());
        int64_t now = now_unix_ns();
        if (o.name_given) {
            if (auto other = store->live_with_name(o.name, now)) {
                name_taken = "--name " + o.name + ": instance " + other->id.substr(0, 12) +
                             " already has this name and is " + observe(*other, now).status +
                             "; choose another name, or stop it first (kos stop " + o.name + ")";
                return {};
            }
        }
        r.id = random_id();
        r.name = o.name;
        for (int attempt = 0; r.name.empty(); ++attempt) {
            std::string candidate = generated_name(r.id, attempt);
            if (!store->live_with_name(candidate, now) || attempt > 3)
                r.name = candidate;
        }
        std::error_code ec;
        r.bundle = std::filesystem::absolute(d.bundle, ec).lexically_normal().string();
        if (ec || r.bundle.empty())
            r.bundle = d.bundle;
        if (r.bundle.size() > 1 && r.bundle.back() == '/')
            r.bundle.pop_back();
        r.backend = d.backend;
        r.args = d.args;
        r.audit_log = d.audit_log;
        r.detached = o.detach;
        r.remove = o.remove;
        r.created_ns = now;
        r.boot_id = current_boot_id();
        r.monitor = self_process();
        std::string dir = store->dir_of(r.id);
        if (::mkdir(dir.c_str(), 0700) != 0)
            return make_error(errno, "cannot create " + dir + ": " + errno_string(errno));
        if (o.detach)
            r.log_path = dir + "/output.log";
        auto w = store->write(r);
        if (w)
            w = store->claim_name(r.name, r.id);
        if (!w)
            (void)store->remove(r);
        return w;
    };
    if (auto created = create(); !created)
        return unrecorded(created.error().message);
    if (!name_taken.empty())
        return fail(name_taken, kExitKosError);

    if (!o.detach)
        return finish_attached(monitor(*store, r.id, true, -1, body));

    // Detached: open the log first, so that failing to is this command's
    // error; then fork, new session, fork again (the monitor is not a
    // session leader and can never get a controlling terminal back).
    UniqueFd log(::open(r.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    int ready[2];
    if (!log || !devnull || ::pipe2(ready, O_CLOEXEC) != 0) {
        int err = errno;
        (void)store->remove(r);
        return fail("cannot start the detached run: " + r.log_path + ": " + errno_string(err),
                    kExitKosError);
    }
    std::fflush(nullptr);
    pid_t child = ::fork();
    if (child == 0) {
        ::close(ready[0]);
        ::setsid();
        pid_t grandchild = ::fork();
        if (grandchild != 0)
            ::_exit(grandchild < 0 ? 1 : 0);
        ::dup2(devnull.get(), 0);
        ::dup2(log.get(), 1);
        ::dup2(log.get(), 2);
        log = UniqueFd();
        devnull = UniqueFd();
        auto moved = update(*store, r.id, [](Record& x) { x.monitor = self_process(); });
        if (!moved) {
            std::fprintf(stderr, "kos: cannot record the monitor: %s\n",
                         moved.error().message.c_str());
            ::_exit(kExitKosError);
        }
        monitor(*store, r.id, false, ready[1], body);
        std::fflush(nullptr);
        ::_exit(0);
    }
    ::close(ready[1]);
    int st = 0;
    if (child > 0)
        ::waitpid(child, &st, 0);
    char ok = 0;
    ssize_t n;
    do
        n = ::read(ready[0], &ok, 1);
    while (n < 0 && errno == EINTR);
    ::close(ready[0]);
    if (child < 0 || n != 1 || ok != 'R') {
        auto again = store->read(r.id);
        std::string why = again && !again->error.empty() ? again->error : "see " + r.log_path;
        return fail("the detached run did not start: " + why, kExitKosError);
    }
    std::printf("%s\n", r.id.c_str());
    return 0;
}

// ---- kos ps ----

namespace {

std::string shorten(const std::string& s, size_t max) {
    if (s.size() <= max)
        return s;
    return "..." + s.substr(s.size() - (max - 3));
}

int ps_command(bool all, bool quiet) {
    auto store = Store::open(false);
    if (!store)
        return fail("ps: " + store.error().message);
    std::vector<std::string> warnings;
    std::vector<Record> records = store->list(&warnings);
    for (const std::string& w : warnings)
        std::fprintf(stderr, "kos: warning: ignoring an unreadable instance record: %s\n",
                     w.c_str());
    int64_t now = now_unix_ns();
    std::vector<std::vector<std::string>> rows;
    rows.push_back({"ID", "NAME", "BUNDLE", "BACKEND", "STATUS", "CREATED"});
    for (const Record& r : records) {
        Observed o = observe(r, now);
        if (!all && !o.live)
            continue;
        if (quiet) {
            std::printf("%s\n", r.id.substr(0, 12).c_str());
            continue;
        }
        rows.push_back({r.id.substr(0, 12), r.name, shorten(r.bundle, 40), r.backend, o.text,
                        format_age(now - r.created_ns) + " ago"});
    }
    if (quiet)
        return 0;
    std::vector<size_t> width(rows[0].size(), 0);
    for (const auto& row : rows)
        for (size_t i = 0; i < row.size(); ++i)
            width[i] = std::max(width[i], row[i].size());
    for (const auto& row : rows) {
        std::string line;
        for (size_t i = 0; i < row.size(); ++i) {
            line += row[i];
            if (i + 1 < row.size())
                line += std::string(width[i] - row[i].size() + 3, ' ');
        }
        std::printf("%s\n", line.c_str());
    }
    return 0;
}

// ---- kos logs ----

// Copies what `fd` has from `*offset` on to stdout.
void copy_new(int fd, off_t* offset) {
    char buf[65536];
    for (;;) {
        ssize_t n = ::pread(fd, buf, sizeof buf, *offset);
        if (n <= 0)
            break;
        std::fwrite(buf, 1, static_cast<size_t>(n), stdout);
        *offset += n;
    }
    std::fflush(stdout);
}

int logs_command(const std::string& q, bool follow) {
    auto store = Store::open(false);
    if (!store)
        return fail("logs: " + store.error().message);
    auto r = store->resolve(q);
    if (!r)
        return fail("logs: " + r.error().message);
    if (r->log_path.empty())
        return fail("logs: " + r->name +
                    " ran attached: its output went to its terminal, not to a log "
                    "(kos run -d keeps one)");
    UniqueFd fd(::open(r->log_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd)
        return fail("logs: " + r->log_path + ": " + errno_string(errno));
    off_t offset = 0;
    copy_new(fd.get(), &offset);
    while (follow) {
        auto now = store->read(r->id);
        bool live = now && observe(*now, now_unix_ns()).live;
        copy_new(fd.get(), &offset);
        if (!live)
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return 0;
}

// ---- kos stop ----

// Waits until the record no longer counts as live (or is gone), up to
// `seconds`.
bool wait_ended(const Store& store, const std::string& id, double seconds) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    for (;;) {
        auto r = store.read(id);
        if (!r || !observe(*r, now_unix_ns()).live)
            return true;
        if (std::chrono::steady_clock::now() >= deadline)
            return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

// SIGTERM, then SIGKILL after `grace` seconds; the monitor records the
// end (or this command does, when the monitor is gone).
int stop_instance(const Store& store, const Record& found, double grace, bool quiet) {
    Observed o = observe(found, now_unix_ns());
    if (!o.live) {
        std::fprintf(stderr, "kos: %s is not running (%s); nothing to stop\n", found.name.c_str(),
                     o.text.c_str());
        return 0;
    }
    auto r = update(store, found.id, [](Record& x) { x.stop_requested = true; });
    if (!r)
        return fail("stop: " + r.error().message);
    // A run still being set up has no runner yet: its monitor forwards.
    auto target = [&] {
        auto now = store.read(found.id);
        return now && now->runner.pid > 0 ? now->runner : found.monitor;
    };
    int sent = SIGTERM;
    signal_process(target(), SIGTERM);
    bool ended = wait_ended(store, found.id, grace);
    // The process backend's supervisor takes SIGQUIT as "kill the program
    // now" and still cleans up (its cgroup); SIGKILL would leave that.
    if (!ended && found.backend == "process") {
        signal_process(target(), SIGQUIT);
        ended = wait_ended(store, found.id, 2);
    }
    if (!ended) {
        sent = SIGKILL;
        signal_process(target(), SIGKILL);
        if (!wait_ended(store, found.id, 5))
            return fail("stop: " + found.name + " still runs after SIGKILL");
    }
    // The monitor normally records the end; if it was gone, record it here.
    auto after = store.read(found.id);
    if (after && after->status != "stopped" && same_process_gone(after->monitor)) {
        (void)update(store, found.id, [&](Record& x) {
            x.status = "stopped";
            x.finished_ns = now_unix_ns();
            x.signal = sent;
        });
        if (auto lock = store.lock(); lock)
            store.release_name(found.name, found.id);
    }
    if (!quiet)
        std::printf("%s\n", found.name.c_str());
    return 0;
}

int stop_command(const std::vector<std::string>& qs, double grace) {
    auto store = Store::open(false);
    if (!store)
        return fail("stop: " + store.error().message);
    int status = 0;
    for (const std::string& q : qs) {
        auto r = store->resolve(q);
        if (!r) {
            status = fail("stop: " + r.error().message);
            continue;
        }
        if (int s = stop_instance(*store, *r, grace, false); s != 0)
            status = s;
    }
    return status;
}

// ---- kos rm ----

int rm_command(const std::vector<std::string>& qs, bool force) {
    auto store = Store::open(false);
    if (!store)
        return fail("rm: " + store.error().message);
    int status = 0;
    for (const std::string& q : qs) {
        auto r = store->resolve(q);
        if (!r) {
            status = fail("rm: " + r.error().message);
            continue;
        }
        if (observe(*r, now_unix_ns()).live) {
            if (!force) {
                status = fail("rm: " + r->name + " is running; stop it first (kos stop " + r->name +
                              ") or use kos rm -f");
                continue;
            }
            if (int s = stop_instance(*store, *r, 0, true); s != 0) {
                status = s;
                continue;
            }
        }
        auto lock = store->lock();
        if (!lock) {
            status = fail("rm: " + lock.error().message);
            continue;
        }
        // Checked again under the lock: nothing may have restarted it, but
        // a monitor may still be writing its last words.
        auto again = store->read(r->id);
        if (again && observe(*again, now_unix_ns()).live) {
            status = fail("rm: " + r->name + " is running again; nothing removed");
            continue;
        }
        if (auto ok = store->remove(*r); !ok) {
            status = fail("rm: " + ok.error().message);
            continue;
        }
        std::printf("%s\n", r->name.c_str());
    }
    return status;
}

} // namespace

// ---- kos inspect ----

bool inspect_wants_instance(const std::string& argument) {
    struct stat st{};
    return ::lstat(argument.c_str(), &st) != 0 && errno == ENOENT;
}

int inspect_command(const std::string& q) {
    auto store = Store::open(false);
    if (!store)
        return fail("inspect: " + q + ": no such bundle, and " + store.error().message);
    auto r = store->resolve(q);
    if (!r) {
        if (r.error().code == ENOENT)
            return fail("inspect: " + q + ": no such bundle file or directory, and " +
                        r.error().message);
        return fail("inspect: " + r.error().message);
    }
    Observed o = observe(*r, now_unix_ns());
    std::printf("%s", to_json_text(*r, &o).c_str());
    return 0;
}

void add_commands(CLI::App& app, Context& ctx) {
    auto all = std::make_shared<bool>(false);
    auto quiet = std::make_shared<bool>(false);
    CLI::App* ps = app.add_subcommand("ps", "List instances of kos run (running ones; -a: all)");
    ps->add_flag("-a,--all", *all, "Also list instances that have ended");
    ps->add_flag("-q,--quiet", *quiet, "Print the short ids only");
    ps->callback([all, quiet, &ctx] { ctx.exit_status = ps_command(*all, *quiet); });

    auto lq = std::make_shared<std::string>();
    auto follow = std::make_shared<bool>(false);
    CLI::App* logs =
        app.add_subcommand("logs", "Print the output of a detached instance (kos run -d)");
    logs->add_option("instance", *lq, "Instance name or id (a unique prefix of the id is enough)")
        ->required();
    logs->add_flag("-f,--follow", *follow, "Keep printing new output until the instance ends");
    logs->callback([lq, follow, &ctx] { ctx.exit_status = logs_command(*lq, *follow); });

    auto sq = std::make_shared<std::vector<std::string>>();
    auto grace = std::make_shared<double>(10);
    CLI::App* stop = app.add_subcommand(
        "stop", "Stop running instances: SIGTERM, then SIGKILL after a grace time");
    stop->add_option("instance", *sq, "Instance names or ids")->required();
    stop->add_option("-t,--time", *grace, "Seconds to wait after SIGTERM before SIGKILL")
        ->check(CLI::Range(0.0, 86400.0))
        ->capture_default_str();
    stop->callback([sq, grace, &ctx] { ctx.exit_status = stop_command(*sq, *grace); });

    auto rq = std::make_shared<std::vector<std::string>>();
    auto force = std::make_shared<bool>(false);
    CLI::App* rm =
        app.add_subcommand("rm", "Remove the records (and logs) of instances that have ended");
    rm->add_option("instance", *rq, "Instance names or ids")->required();
    rm->add_flag("-f,--force", *force, "Kill a running instance first");
    rm->callback([rq, force, &ctx] { ctx.exit_status = rm_command(*rq, *force); });
}

} // namespace kos::cli::instances
