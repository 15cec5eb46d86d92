#include "cgroup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "kos/support/file.h"

namespace kos::proc {
namespace {

constexpr long kCgroup2Magic = 0x63677270;

bool is_cgroup2(const std::string& path) {
    struct statfs fs{};
    return ::statfs(path.c_str(), &fs) == 0 && fs.f_type == kCgroup2Magic;
}

std::string read_line(const std::string& path) {
    std::ifstream f(path);
    std::string s;
    std::getline(f, s);
    return s;
}

Result<void> write_str(const std::string& path, const std::string& value) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd)
        return make_error(errno, path + ": " + errno_string(errno));
    if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size()))
        return make_error(errno, "writing \"" + value + "\" to " + path + ": " + errno_string(errno));
    return {};
}

uint64_t counter(const std::string& file, const std::string& key) {
    std::ifstream f(file);
    std::string k;
    uint64_t v = 0;
    while (f >> k >> v)
        if (k == key)
            return v;
    return 0;
}

bool has_word(const std::string& list, const std::string& w) {
    std::istringstream in(list);
    std::string x;
    while (in >> x)
        if (x == w)
            return true;
    return false;
}

} // namespace

CgroupSupport probe_cgroups() {
    CgroupSupport s;
    for (const char* root : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
        if (!is_cgroup2(root))
            continue;
        std::string ctl = read_line(std::string(root) + "/cgroup.controllers");
        if (has_word(ctl, "memory") && has_word(ctl, "pids")) {
            s.version = CgroupVersion::V2;
            s.root = root;
            for (const char* c : {"memory", "pids", "cpu"})
                if (has_word(ctl, c))
                    s.controllers.push_back(c);
            s.detail = std::string("v2 at ") + root + " (controllers: " + ctl + ")";
            return s;
        }
    }
    struct stat st{};
    bool v1 = false;
    for (const char* c : {"memory", "pids", "cpu"}) {
        std::string dir = std::string("/sys/fs/cgroup/") + c;
        if (::stat((dir + "/cgroup.procs").c_str(), &st) == 0 && !is_cgroup2(dir)) {
            s.controllers.push_back(c);
            v1 = true;
        }
    }
    if (v1) {
        s.version = CgroupVersion::V1;
        s.detail = "v1 (hybrid or legacy hierarchy; v2 lacks the memory and pids controllers here); controllers:";
        for (const auto& c : s.controllers)
            s.detail += " " + c;
        return s;
    }
    s.detail = "none usable (no cgroup v2 with memory+pids, no v1 hierarchies)";
    return s;
}

Cgroup::~Cgroup() {
    // Processes are gone by now (the PID namespace died with its init); a
    // cgroup with no processes can be removed.
    // A few tries: the namespace's last processes may still be exiting.
    for (const auto& d : m_dirs)
        for (int i = 0; i < 50 && ::rmdir(d.c_str()) != 0 && errno == EBUSY; ++i)
            ::usleep(2000);
}

Result<Cgroup> Cgroup::create(const std::string& name, const Limits& limits) {
    CgroupSupport sup = probe_cgroups();
    Cgroup cg;
    cg.m_version = sup.version;
    auto has = [&](const char* c) {
        for (const auto& x : sup.controllers)
            if (x == c)
                return true;
        return false;
    };
    if (sup.version == CgroupVersion::V2) {
        std::string parent = sup.root + "/kos";
        if (::mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST)
            return make_error(errno, parent + ": " + errno_string(errno));
        std::string enable;
        for (const auto& c : sup.controllers)
            enable += "+" + c + " ";
        // Delegation: controllers must be enabled in every ancestor.
        (void)write_str(sup.root + "/cgroup.subtree_control", enable);
        KOS_TRY(write_str(parent + "/cgroup.subtree_control", enable));
        std::string dir = parent + "/" + name;
        if (::mkdir(dir.c_str(), 0755) != 0)
            return make_error(errno, dir + ": " + errno_string(errno));
        cg.m_dirs.push_back(dir);
        if (limits.memory_bytes) {
            KOS_TRY(write_str(dir + "/memory.max", std::to_string(limits.memory_bytes)));
            (void)write_str(dir + "/memory.swap.max", "0");
        }
        if (limits.pids)
            KOS_TRY(write_str(dir + "/pids.max", std::to_string(limits.pids)));
        if (limits.cpu_percent && has("cpu"))
            KOS_TRY(write_str(dir + "/cpu.max", std::to_string(limits.cpu_percent * 1000) + " 100000"));
        return cg;
    }
    if (sup.version == CgroupVersion::V1) {
        // Only the hierarchies that carry a limit: joining a v1 memory
        // cgroup alone can cost milliseconds.
        for (const auto& c : sup.controllers) {
            if ((c == "memory" && !limits.memory_bytes) || (c == "pids" && !limits.pids) ||
                (c == "cpu" && !limits.cpu_percent))
                continue;
            std::string dir = "/sys/fs/cgroup/" + c + "/kos-" + name;
            if (::mkdir(dir.c_str(), 0755) != 0)
                return make_error(errno, dir + ": " + errno_string(errno));
            cg.m_dirs.push_back(dir);
            if (c == "memory" && limits.memory_bytes) {
                KOS_TRY(write_str(dir + "/memory.limit_in_bytes", std::to_string(limits.memory_bytes)));
                (void)write_str(dir + "/memory.memsw.limit_in_bytes", std::to_string(limits.memory_bytes));
            }
            if (c == "pids" && limits.pids)
                KOS_TRY(write_str(dir + "/pids.max", std::to_string(limits.pids)));
            if (c == "cpu" && limits.cpu_percent) {
                KOS_TRY(write_str(dir + "/cpu.cfs_period_us", "100000"));
                KOS_TRY(write_str(dir + "/cpu.cfs_quota_us", std::to_string(limits.cpu_percent * 1000)));
            }
        }
        return cg;
    }
    return make_error(EOPNOTSUPP, "no usable cgroup hierarchy: " + sup.detail);
}

Result<void> Cgroup::add(int pid) const {
    for (const auto& d : m_dirs)
        KOS_TRY(write_str(d + "/cgroup.procs", std::to_string(pid)));
    return {};
}

std::string Cgroup::limit_hit(const Limits& limits) const {
    for (const auto& d : m_dirs) {
        bool mem = d.find("/memory/") != std::string::npos || m_version == CgroupVersion::V2;
        bool pids = d.find("/pids/") != std::string::npos || m_version == CgroupVersion::V2;
        if (mem && limits.memory_bytes) {
            std::string f = d + (m_version == CgroupVersion::V2 ? "/memory.events" : "/memory.oom_control");
            if (counter(f, "oom_kill") > 0)
                return "memory limit ([limits] memory = " + std::to_string(limits.memory_bytes >> 20) + " MiB)";
        }
        if (pids && limits.pids && counter(d + "/pids.events", "max") > 0)
            return "process limit ([limits] pids = " + std::to_string(limits.pids) + ")";
    }
    return {};
}

} // namespace kos::proc
