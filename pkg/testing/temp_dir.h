// Test helpers for pkg: temporary directories and small files.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "pkg/bundle.h"

namespace kos::pkg::testing {

class TempDir {
public:
    TempDir() {
        char tmpl[] = "/tmp/kos-pkg-test-XXXXXX";
        m_path = ::mkdtemp(tmpl);
    }
    ~TempDir() { (void)remove_tree(m_path); }
    const std::string& path() const { return m_path; }
    std::string operator/(const std::string& rel) const { return m_path + "/" + rel; }
    void write(const std::string& rel, const std::string& data, int mode = 0644) const {
        mkdirs_for(rel);
        std::ofstream(m_path + "/" + rel, std::ios::binary) << data;
        ::chmod((m_path + "/" + rel).c_str(), static_cast<mode_t>(mode));
    }
    void mkdir(const std::string& rel, int mode = 0755) const {
        mkdirs_for(rel + "/x");
        ::chmod((m_path + "/" + rel).c_str(), static_cast<mode_t>(mode));
    }
    void mkdirs_for(const std::string& rel) const {
        size_t slash = 0;
        while ((slash = rel.find('/', slash)) != std::string::npos) {
            ::mkdir((m_path + "/" + rel.substr(0, slash)).c_str(), 0755);
            ++slash;
        }
    }

private:
    std::string m_path;
};

inline std::string read_all(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

inline void write_all(const std::string& path, const std::string& data) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

// A complete bundle directory: config with a behavior config, one policy
// source, and a small rootfs.
inline std::string bundle_toml(const std::string& name, const std::string& version,
                               const std::string& labels = "\"/**\" = \"app_file_t\"\n\"/bin/**\" = \"app_exec_t\"\n",
                               bool with_policy = true) {
    std::string s = "[app]\nname = \"" + name + "\"\nversion = \"" + version +
                    "\"\nentrypoint = [\"/bin/app\"]\n";
    if (!labels.empty())
        s += "\n[labels]\n" + labels;
    if (with_policy)
        s += "\n[policy]\ndomain = \"app_t\"\nsources = [\"policy/app.kpol\"]\n";
    return s;
}

inline void make_bundle_dir(const TempDir& t, const std::string& sub, const std::string& name = "demo",
                            const std::string& version = "1", const std::string& app = "APP-BINARY-1") {
    std::string p = sub.empty() ? "" : sub + "/";
    t.write(p + "bundle.toml", bundle_toml(name, version));
    t.write(p + "policy/app.kpol",
            "domain app_t\nresource app_file_t, app_exec_t\nclass file { read: read }\n"
            "allow security app_t -> app_file_t file.read\n"
            "allow execute app_t -> app_t where program == \"/bin/app\"\n");
    t.write(p + "rootfs/bin/app", app, 0755);
    t.write(p + "rootfs/etc/config", "key=value\n", 0640);
    t.write(p + "rootfs/data/big", std::string(10000, 'q'));
    t.mkdir(p + "rootfs/empty", 0700);
    ::symlink("../etc/config", (t.path() + "/" + p + "rootfs/bin/cfg").c_str());
}

} // namespace kos::pkg::testing
