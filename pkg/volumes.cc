#include "pkg/volumes.h"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace kos::pkg {
namespace {

bool under(const std::string& path, const std::string& dir) {
    return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/');
}

// Absolute, no empty, "." or ".." components, no trailing '/'.
bool normalized_guest_path(const std::string& p) {
    if (p.size() < 2 || p[0] != '/' || p.back() == '/' || p.size() > kMaxVolumeGuestPath)
        return false;
    size_t i = 1;
    while (i <= p.size()) {
        size_t j = p.find('/', i);
        if (j == std::string::npos)
            j = p.size();
        std::string c = p.substr(i, j - i);
        if (c.empty() || c == "." || c == "..")
            return false;
        i = j + 1;
    }
    return p.find('\0') == std::string::npos;
}

Result<std::string> host_directory(const std::string& given, const std::string& arg) {
    if (given.empty())
        return make_error(EINVAL, "-v " + arg + ": the host directory is empty; write -v HOST_DIR:GUEST_PATH");
    char buf[PATH_MAX];
    if (!::realpath(given.c_str(), buf))
        return make_error(errno, "-v " + arg + ": host directory " + given + ": " + std::strerror(errno) +
                                     (errno == ENOENT ? " (create it first)" : ""));
    struct stat st {};
    if (::stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        return make_error(ENOTDIR, "-v " + arg + ": " + given + " is not a directory (a volume is a directory)");
    return std::string(buf);
}

} // namespace

Result<UniqueFd> open_volume_host_dir(const VolumeMount& v) {
    struct open_how how {};
    how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    int fd = static_cast<int>(::syscall(SYS_openat2, AT_FDCWD, v.host.c_str(), &how, sizeof how));
    if (fd < 0) {
        int e = errno;
        return make_error(e, "volume " + describe(v) + ": opening " + v.host + ": " + std::strerror(e) +
                                 (e == ELOOP ? " (a component of the path became a symlink after the run started; "
                                               "the volume is not attached)"
                                             : ""));
    }
    return UniqueFd(fd);
}

std::string describe(const VolumeMount& v) {
    return v.host + " -> " + v.guest + " (" + (v.writable ? "rw" : "ro") + ", label " + v.label + ")";
}

std::string no_vfs_server_note(const VolumeMount& first, size_t count, const std::string& domain,
                               const std::string& vfs_label) {
    return "the bundle's policy declares no " + vfs_label + ", the label of the VFS server that serves volumes, "
           "so every path in " + describe(first) + " fails (EACCES); to use " +
           (count > 1 ? "the volumes" : "it") + ", declare `domain " + vfs_label + "` and allow `request " + domain +
           " -> " + vfs_label + " vfs.File.*` and `response " + vfs_label + " -> " + domain +
           " vfs.File.*` (or narrower rules)";
}

Result<std::vector<VolumeMount>> resolve_volumes(const BundleConfig& config, const std::vector<std::string>& args) {
    std::vector<VolumeMount> out;
    for (const std::string& arg : args) {
        VolumeMount v;
        const VolumeConfig* declared = nullptr;
        size_t eq = arg.find('=');
        size_t colon = arg.find(':');
        if (eq != std::string::npos && (colon == std::string::npos || eq < colon)) {
            // NAME=HOST_DIR
            std::string name = arg.substr(0, eq);
            for (const auto& d : config.volumes)
                if (d.name == name)
                    declared = &d;
            if (!declared) {
                std::string names;
                for (const auto& d : config.volumes)
                    names += (names.empty() ? "" : ", ") + d.name;
                return make_error(ENOENT, "-v " + arg + ": the bundle declares no volume \"" + name + "\" (" +
                                              (names.empty() ? std::string("it declares none; use -v HOST_DIR:GUEST_PATH,label=L")
                                                             : "declared: " + names) + ")");
            }
            v.host = KOS_TRY(host_directory(arg.substr(eq + 1), arg));
            v.guest = declared->path;
            v.writable = declared->writable;
            v.label = declared->label;
            v.name = declared->name;
        } else {
            // HOST_DIR:GUEST_PATH[:OPTIONS]
            if (colon == std::string::npos)
                return make_error(EINVAL, "-v " + arg + ": expected HOST_DIR:GUEST_PATH[:ro|rw][,label=LABEL] or "
                                                        "NAME=HOST_DIR");
            size_t colon2 = arg.find(':', colon + 1);
            std::string host = arg.substr(0, colon);
            v.guest = arg.substr(colon + 1, colon2 == std::string::npos ? std::string::npos : colon2 - colon - 1);
            std::string options = colon2 == std::string::npos ? "" : arg.substr(colon2 + 1);
            if (!normalized_guest_path(v.guest))
                return make_error(EINVAL, "-v " + arg + ": guest path \"" + v.guest + "\" must be an absolute, "
                                                        "normalized path other than / (at most 255 bytes), e.g. /data");
            for (const auto& d : config.volumes)
                if (d.path == v.guest)
                    declared = &d;
            bool ro = false, rw = false;
            std::string label;
            size_t i = 0;
            while (!options.empty() && i <= options.size()) {
                size_t j = options.find(',', i);
                if (j == std::string::npos)
                    j = options.size();
                std::string o = options.substr(i, j - i);
                if (o == "ro")
                    ro = true;
                else if (o == "rw")
                    rw = true;
                else if (o.rfind("label=", 0) == 0)
                    label = o.substr(6);
                else
                    return make_error(EINVAL, "-v " + arg + ": unknown option \"" + o +
                                                  "\" (options: ro, rw, label=LABEL, separated by commas)");
                i = j + 1;
            }
            if (ro && rw)
                return make_error(EINVAL, "-v " + arg + ": give ro or rw, not both");
            if (!label.empty() && !valid_label(label))
                return make_error(EINVAL, "-v " + arg + ": label \"" + label +
                                              "\" is not a label ([A-Za-z_][A-Za-z0-9_.:-]*, at most 128 bytes)");
            if (declared) {
                if (!label.empty() && label != declared->label)
                    return make_error(EINVAL, "-v " + arg + ": " + v.guest + " is the bundle's volume \"" + declared->name +
                                                  "\", labeled " + declared->label + "; drop label=" + label);
                if (rw && !declared->writable)
                    return make_error(EACCES, "-v " + arg + ": the bundle declares volume \"" + declared->name +
                                                  "\" read-only (access = \"ro\"); attach it with :ro");
                v.label = declared->label;
                v.writable = declared->writable && !ro;
                v.name = declared->name;
            } else {
                if (label.empty())
                    return make_error(EINVAL, "-v " + arg + ": the volume needs a label: add label=LABEL (e.g. -v " + host +
                                                  ":" + v.guest + ":rw,label=data_t), or declare [volumes.NAME] with path = \"" +
                                                  v.guest + "\" in bundle.toml");
                v.label = label;
                v.writable = !ro;
            }
            v.host = KOS_TRY(host_directory(host, arg));
        }
        if (under(v.guest, "/proc") || under(v.guest, "/dev"))
            return make_error(EINVAL, "-v " + arg + ": " + v.guest + " is under /proc or /dev, which kos provides");
        for (const auto& o : out)
            if (under(v.guest, o.guest) || under(o.guest, v.guest))
                return make_error(EINVAL, "-v " + arg + ": " + v.guest + " overlaps the volume at " + o.guest +
                                              " (volumes may not nest)");
        out.push_back(std::move(v));
        if (out.size() > kMaxVolumes)
            return make_error(E2BIG, "-v: at most " + std::to_string(kMaxVolumes) + " volumes per run");
    }
    return out;
}

} // namespace kos::pkg
