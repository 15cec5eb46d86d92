#include "instance_store.h"

#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace kos::cli::instances {

using nlohmann::json;
namespace fs = std::filesystem;

uint64_t process_start_ticks(int pid) {
    if (pid <= 0)
        return 0;
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(f, line))
        return 0;
    // The command name (field 2) is in parentheses and may hold anything,
    // spaces and ')' included: count fields after its last ')'.
    size_t close = line.rfind(')');
    if (close == std::string::npos)
        return 0;
    // Field 3 (state) follows; field 22 (starttime) is 19 fields later.
    size_t pos = close + 2;
    for (int field = 3; field < 22; ++field) {
        pos = line.find(' ', pos);
        if (pos == std::string::npos)
            return 0;
        ++pos;
    }
    return std::strtoull(line.c_str() + pos, nullptr, 10);
}

ProcessRef self_process() {
    int pid = static_cast<int>(::getpid());
    return {pid, process_start_ticks(pid)};
}

std::string current_boot_id() {
    std::ifstream f("/proc/sys/kernel/random/boot_id");
    std::string s;
    std::getline(f, s);
    return s;
}

bool process_alive(const ProcessRef& p, const std::string& boot_id) {
    if (p.pid <= 0 || p.start_ticks == 0)
        return false;
    if (!boot_id.empty() && boot_id != current_boot_id())
        return false;
    if (::kill(p.pid, 0) != 0 && errno != EPERM)
        return false;
    // A zombie has not been reaped by its parent yet but runs no more.
    std::ifstream f("/proc/" + std::to_string(p.pid) + "/stat");
    std::string line;
    std::getline(f, line);
    size_t close = line.rfind(')');
    if (close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z')
        return false;
    return process_start_ticks(p.pid) == p.start_ticks;
}

int64_t now_unix_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::string format_rfc3339(int64_t unix_ns) {
    if (unix_ns <= 0)
        return "";
    time_t secs = static_cast<time_t>(unix_ns / 1'000'000'000);
    tm t{};
    ::gmtime_r(&secs, &t);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", t.tm_year + 1900,
                  t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                  static_cast<long long>(unix_ns % 1'000'000'000));
    return buf;
}

std::optional<int64_t> parse_rfc3339(const std::string& s) {
    if (s.empty())
        return std::nullopt;
    tm t{};
    int consumed = 0;
    if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &t.tm_year, &t.tm_mon, &t.tm_mday,
                    &t.tm_hour, &t.tm_min, &t.tm_sec, &consumed) != 6)
        return std::nullopt;
    t.tm_year -= 1900;
    t.tm_mon -= 1;
    int64_t frac = 0;
    size_t i = static_cast<size_t>(consumed);
    if (i < s.size() && s[i] == '.') {
        int digits = 0;
        for (++i; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i, ++digits)
            if (digits < 9)
                frac = frac * 10 + (s[i] - '0');
        for (; digits < 9; ++digits)
            frac *= 10;
    }
    if (i >= s.size() || (s[i] != 'Z' && s[i] != 'z'))
        return std::nullopt; // kos writes UTC only
    return static_cast<int64_t>(::timegm(&t)) * 1'000'000'000 + frac;
}

std::string format_age(int64_t ns) {
    int64_t s = std::max<int64_t>(ns, 0) / 1'000'000'000;
    if (s < 120)
        return std::to_string(s) + "s";
    if (s < 7200)
        return std::to_string(s / 60) + "m";
    if (s < int64_t{2} * 86400)
        return std::to_string(s / 3600) + "h";
    return std::to_string(s / 86400) + "d";
}

bool valid_name(const std::string& name) {
    if (name.empty() || name.size() > 64)
        return false;
    auto alnum = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    };
    if (!alnum(name[0]))
        return false;
    return std::all_of(name.begin() + 1, name.end(),
                       [&](char c) { return alnum(c) || c == '_' || c == '.' || c == '-'; });
}

namespace {

// The short description of a limit ("wall-time limit (--timeout)" ->
// "wall-time limit").
std::string short_limit(const std::string& limit) {
    return limit.substr(0, limit.find(" ("));
}

const char* signal_name(int sig) {
    const char* d = sigabbrev_np(sig);
    return d ? d : "?";
}

} // namespace

Observed observe(const Record& r, int64_t now_ns) {
    Observed o;
    if (r.status != "stopped") {
        o.live = r.alive_at_read
                     ? *r.alive_at_read
                     : process_alive(r.monitor, r.boot_id) || process_alive(r.runner, r.boot_id);
        if (o.live) {
            o.status = r.status;
            o.text = r.status == "running" && r.started_ns
                         ? "running " + format_age(now_ns - r.started_ns)
                         : r.status;
            return o;
        }
        o.status = "stopped";
        o.stale = true;
        o.text = "exited (unknown)";
        return o;
    }
    o.status = "stopped";
    std::string ago = r.finished_ns ? " " + format_age(now_ns - r.finished_ns) + " ago" : "";
    if (!r.limit.empty())
        o.text = "stopped: " + short_limit(r.limit);
    else if (r.signal)
        o.text = "killed by signal " + std::to_string(*r.signal);
    else if (r.exit_code)
        o.text = "exited (" + std::to_string(*r.exit_code) + ")";
    else
        o.text = "exited (unknown)";
    if (r.stop_requested)
        o.text += " (kos stop)";
    o.text += ago;
    return o;
}

std::string to_json_text(const Record& r, const Observed* observed) {
    // The OCI runtime state's fields first (runtime-spec runtime.md
    // "State"), then kos's.
    nlohmann::ordered_json j;
    auto time = [](int64_t ns) { return ns ? json(format_rfc3339(ns)) : json(nullptr); };
    j["ociVersion"] = "1.2.0";
    j["id"] = r.id;
    j["status"] = observed ? observed->status : r.status;
    j["pid"] = r.runner.pid;
    j["bundle"] = r.bundle;
    j["annotations"] = json(r.annotations);
    j["name"] = r.name;
    j["backend"] = r.backend;
    j["args"] = r.args;
    j["created"] = time(r.created_ns);
    j["started"] = time(r.started_ns);
    j["finished"] = time(r.finished_ns);
    j["exit_code"] = r.exit_code ? json(*r.exit_code) : json(nullptr);
    j["signal"] = r.signal ? json(*r.signal) : json(nullptr);
    j["signal_name"] = r.signal ? json(std::string("SIG") + signal_name(*r.signal)) : json(nullptr);
    j["limit"] = r.limit.empty() ? json(nullptr) : json(r.limit);
    j["error"] = r.error.empty() ? json(nullptr) : json(r.error);
    j["stopped_by_kos_stop"] = r.stop_requested;
    j["detached"] = r.detached;
    j["remove"] = r.remove;
    j["log_path"] = r.log_path.empty() ? json(nullptr) : json(r.log_path);
    j["audit_log"] = r.audit_log.empty() ? json(nullptr) : json(r.audit_log);
    j["process"] = {{"pid", r.runner.pid}, {"start_ticks", r.runner.start_ticks}};
    j["monitor"] = {{"pid", r.monitor.pid}, {"start_ticks", r.monitor.start_ticks}};
    j["boot_id"] = r.boot_id;
    if (observed) {
        j["state_text"] = observed->text;
        if (observed->stale)
            j["stale"] = true; // recorded as created/running, but its processes are gone
    }
    return j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

Result<Record> from_json_text(const std::string& text, const std::string& where) {
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object())
        return make_error(EINVAL, where + ": not a JSON object");
    Record r;
    try {
        r.id = j.value("id", "");
        r.name = j.value("name", "");
        r.bundle = j.value("bundle", "");
        r.backend = j.value("backend", "");
        r.args = j.value("args", std::vector<std::string>{});
        r.status = j.value("status", "");
        r.annotations = j.value("annotations", std::map<std::string, std::string>{});
        auto proc = [&](const char* key) {
            ProcessRef p;
            if (j.contains(key) && j[key].is_object()) {
                p.pid = j[key].value("pid", 0);
                p.start_ticks = j[key].value("start_ticks", uint64_t{0});
            }
            return p;
        };
        r.runner = proc("process");
        r.monitor = proc("monitor");
        r.boot_id = j.value("boot_id", "");
        auto time = [&](const char* key) -> int64_t {
            if (!j.contains(key) || !j[key].is_string())
                return 0;
            return parse_rfc3339(j[key].get<std::string>()).value_or(0);
        };
        r.created_ns = time("created");
        r.started_ns = time("started");
        r.finished_ns = time("finished");
        r.detached = j.value("detached", false);
        r.remove = j.value("remove", false);
        if (j.contains("exit_code") && j["exit_code"].is_number_integer())
            r.exit_code = j["exit_code"].get<int>();
        if (j.contains("signal") && j["signal"].is_number_integer())
            r.signal = j["signal"].get<int>();
        auto str = [&](const char* key) {
            return j.contains(key) && j[key].is_string() ? j[key].get<std::string>()
                                                         : std::string();
        };
        r.limit = str("limit");
        r.error = str("error");
        r.log_path = str("log_path");
        r.audit_log = str("audit_log");
        r.stop_requested = j.value("stopped_by_kos_stop", false);
    } catch (const json::exception& e) {
        return make_error(EINVAL, where + ": " + e.what());
    }
    if (r.id.empty() || r.status.empty())
        return make_error(EINVAL, where + ": no id or status");
    return r;
}

Result<Store> Store::open(bool create) {
    // The runtime directory must exist already (its owner, the session
    // manager, makes it); the state directory is made as needed (XDG Base
    // Directory Specification).
    std::string base;
    struct stat st{};
    if (const char* rt = std::getenv("XDG_RUNTIME_DIR");
        rt && *rt && ::stat(rt, &st) == 0 && S_ISDIR(st.st_mode))
        base = std::string(rt) + "/kos";
    else if (std::string state = xdg_base_dir("XDG_STATE_HOME", ".local/state"); !state.empty())
        base = state + "/kos";
    else
        return make_error(
            ENOENT, "no place for instance records: set XDG_RUNTIME_DIR, XDG_STATE_HOME or HOME");
    Store s;
    s.m_root = base + "/instances";
    if (create) {
        std::error_code ec;
        fs::create_directories(base, ec);
        if (::mkdir(s.m_root.c_str(), 0700) != 0 && errno != EEXIST)
            return make_error(errno, "cannot create " + s.m_root + ": " + errno_string(errno));
    }
    return s;
}

Result<UniqueFd> Store::lock() const {
    std::string path = m_root + "/.lock";
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd)
        return make_error(errno, "cannot open " + path + ": " + errno_string(errno));
    while (::flock(fd.get(), LOCK_EX) != 0)
        if (errno != EINTR)
            return make_error(errno, "cannot lock " + path + ": " + errno_string(errno));
    return fd;
}

Result<Record> Store::read(const std::string& id) const {
    auto read_once = [&]() -> Result<Record> {
        std::string path = dir_of(id) + "/state.json";
        std::string text = KOS_TRY(read_text_file(path, 1 << 20));
        return from_json_text(text, path);
    };
    Record r = KOS_TRY(read_once());
    if (r.status == "stopped")
        return r;
    r.alive_at_read = process_alive(r.monitor, r.boot_id) || process_alive(r.runner, r.boot_id);
    if (*r.alive_at_read)
        return r;
    // The monitor writes the end of the run before it exits: a record that
    // looks abandoned may have been read just before that write, so it is
    // read once more now that its processes are known to be gone.
    if (auto again = read_once()) {
        r = std::move(*again);
        r.alive_at_read = false;
    }
    return r;
}

Result<void> Store::write(const Record& r) const {
    // Temporary file and rename, as write_file_atomic, without its fsync:
    // a record is about processes of this boot, and a run should not wait
    // for the disk three times (the state directory is the fallback).
    std::string text = to_json_text(r);
    std::string path = dir_of(r.id) + "/state.json";
    std::string tmp = path + ".tmp." + std::to_string(::getpid());
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd)
        return make_error(errno, tmp + ": " + errno_string(errno));
    if (auto w = write_all(fd.get(), text.data(), text.size(), tmp); !w) {
        ::unlink(tmp.c_str());
        return w;
    }
    fd = UniqueFd();
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        return make_error(err, path + ": " + errno_string(err));
    }
    return {};
}

Result<void> Store::remove(const Record& r) const {
    release_name(r.name, r.id);
    std::error_code ec;
    fs::remove_all(dir_of(r.id), ec);
    if (ec)
        return make_error(ec.value(), "cannot remove " + dir_of(r.id) + ": " + ec.message());
    return {};
}

std::optional<Record> Store::live_with_name(const std::string& name, int64_t now_ns) const {
    std::error_code ec;
    fs::path target = fs::read_symlink(m_root + "/names/" + name, ec);
    if (ec)
        return std::nullopt;
    auto r = read(target.filename().string());
    if (!r || r->name != name || !observe(*r, now_ns).live)
        return std::nullopt;
    return *r;
}

Result<void> Store::claim_name(const std::string& name, const std::string& id) const {
    std::string dir = m_root + "/names";
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        return make_error(errno, "cannot create " + dir + ": " + errno_string(errno));
    std::string link = dir + "/" + name, tmp = link + ".tmp." + std::to_string(::getpid());
    ::unlink(tmp.c_str());
    if (::symlink(("../" + id).c_str(), tmp.c_str()) != 0 ||
        ::rename(tmp.c_str(), link.c_str()) != 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        return make_error(err, "cannot record the name " + link + ": " + errno_string(err));
    }
    return {};
}

void Store::release_name(const std::string& name, const std::string& id) const {
    if (name.empty())
        return;
    std::string link = m_root + "/names/" + name;
    std::error_code ec;
    if (fs::read_symlink(link, ec).filename().string() == id && !ec)
        ::unlink(link.c_str());
}

std::vector<Record> Store::list(std::vector<std::string>* warnings) const {
    std::vector<Record> out;
    std::error_code ec;
    for (const fs::directory_entry& e : fs::directory_iterator(m_root, ec)) {
        std::string id = e.path().filename().string();
        if (id.empty() || id[0] == '.' || id == "names")
            continue;
        auto r = read(id);
        if (r)
            out.push_back(std::move(*r));
        else if (warnings && r.error().code != ENOENT) // ENOENT: being created or removed
            warnings->push_back(r.error().message);
    }
    std::sort(out.begin(), out.end(),
              [](const Record& a, const Record& b) { return a.created_ns > b.created_ns; });
    return out;
}

Result<Record> Store::resolve(const std::string& q) const {
    if (q.empty())
        return make_error(EINVAL, "an empty instance name or id");
    std::vector<Record> all = list();
    for (const Record& r : all)
        if (r.id == q)
            return r;
    if (valid_name(q))
        if (auto live = live_with_name(q, now_unix_ns()))
            return *live;
    // list() is newest first, so the first stopped match is the newest.
    const Record* by_name = nullptr;
    int64_t now = now_unix_ns();
    for (const Record& r : all) {
        if (r.name != q)
            continue;
        if (observe(r, now).live)
            return r;
        if (!by_name)
            by_name = &r;
    }
    if (by_name)
        return *by_name;
    std::vector<const Record*> prefixed;
    for (const Record& r : all)
        if (r.id.starts_with(q))
            prefixed.push_back(&r);
    if (prefixed.size() == 1)
        return *prefixed[0];
    if (prefixed.size() > 1) {
        std::string names;
        for (const Record* r : prefixed)
            names += (names.empty() ? "" : ", ") + r->id.substr(0, 12) + " (" + r->name + ")";
        return make_error(EINVAL, "\"" + q + "\" is the start of several instance ids: " + names +
                                      "; give more of the id");
    }
    return make_error(ENOENT, "no instance is named \"" + q +
                                  "\" or has an id starting with it (kos ps -a lists them)");
}

} // namespace kos::cli::instances
