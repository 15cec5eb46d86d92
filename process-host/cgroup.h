// A cgroup for one sandbox: v2 when the unified hierarchy has the needed
// controllers, otherwise the v1 hierarchies (memory, pids, cpu). The
// supervisor creates it before the sandboxed process runs any program,
// moves the process in, and removes it after the run.
#pragma once

#include <string>
#include <vector>

#include "kos/support/result.h"
#include "sandbox_spec.h"

namespace kos::proc {

enum class CgroupVersion { None, V1, V2 };

struct CgroupSupport {
    CgroupVersion version = CgroupVersion::None;
    std::string root;                     // v2: the unified mount
    std::vector<std::string> controllers; // usable controllers
    std::string detail;                   // one line for `kos doctor`
};

CgroupSupport probe_cgroups();

class Cgroup {
public:
    Cgroup() = default;
    Cgroup(Cgroup&& o) noexcept : m_dirs(std::move(o.m_dirs)), m_version(o.m_version) { o.m_dirs.clear(); }
    Cgroup& operator=(Cgroup&&) = delete;
    ~Cgroup();

    // Creates kos-NAME cgroups with the limits. Returns an error when the
    // cgroup file system is not writable (unprivileged, read-only mount).
    static Result<Cgroup> create(const std::string& name, const Limits& limits);
    Result<void> add(int pid) const;
    // Which limit the run hit, if any ("memory limit (memory_mib = 64)").
    std::string limit_hit(const Limits& limits) const;
    CgroupVersion version() const { return m_version; }
    const std::vector<std::string>& dirs() const { return m_dirs; }

private:
    std::vector<std::string> m_dirs;
    CgroupVersion m_version = CgroupVersion::None;
};

} // namespace kos::proc
