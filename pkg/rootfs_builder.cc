#include "rootfs_builder.h"

#include <dirent.h>
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "kos/rootfs_image.h"
#include "kos/support/file.h"
#include "manifest.h"

namespace kos::pkg {
namespace rfs = kos::abi::rootfs;
namespace {

struct Node {
    std::string path;
    struct stat st{};
    std::vector<uint8_t> content; // file bytes or symlink target
    std::string label;
};

struct Walker {
    const RootfsBuildOptions& opts;
    RootfsBuildReport* report;
    std::vector<Node> nodes;
    uint64_t total = 0;

    Result<void> add(int parent_fd, const char* name, const std::string& path, const struct stat& st) {
        if (nodes.size() >= opts.max_entries)
            return make_error(E2BIG, path + ": more than " + std::to_string(opts.max_entries) +
                                         " entries in rootfs");
        if (path.size() > rfs::kMaxPath)
            return make_error(ENAMETOOLONG, path.substr(0, 64) + "...: path longer than " +
                                                std::to_string(rfs::kMaxPath) + " bytes");
        Node n;
        n.path = path;
        n.st = st;
        if (S_ISREG(st.st_mode)) {
            UniqueFd fd(::openat(parent_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
            if (!fd)
                return make_error(errno, path + ": " + errno_string(errno));
            total += static_cast<uint64_t>(st.st_size);
            if (total > opts.max_total_bytes)
                return make_error(EFBIG, path + ": rootfs is larger than " +
                                             std::to_string(opts.max_total_bytes) + " bytes");
            n.content = KOS_TRY(read_fd(fd.get(), path, opts.max_total_bytes));
            if (opts.progress)
                opts.progress(nodes.size() + 1, total);
        } else if (S_ISLNK(st.st_mode)) {
            char buf[rfs::kMaxPath + 1];
            ssize_t len = ::readlinkat(parent_fd, name, buf, sizeof buf);
            if (len < 0)
                return make_error(errno, path + ": " + errno_string(errno));
            if (len == 0 || static_cast<size_t>(len) > rfs::kMaxPath)
                return make_error(EINVAL, path + ": symlink target is empty or too long");
            n.content.assign(buf, buf + len);
        } else if (!S_ISDIR(st.st_mode)) {
            if (report)
                report->skipped.push_back(path + ": special file (device, fifo or socket) left out");
            return {};
        }
        if (opts.labeler)
            n.label = KOS_TRY(opts.labeler(path, st.st_mode));
        nodes.push_back(std::move(n));
        if (S_ISDIR(st.st_mode))
            KOS_TRY(walk_dir(parent_fd, name, path));
        return {};
    }

    Result<void> walk_dir(int parent_fd, const char* name, const std::string& path) {
        int fd = ::openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return make_error(errno, path + ": " + errno_string(errno));
        DIR* d = ::fdopendir(fd);
        if (!d) {
            ::close(fd);
            return make_error(errno, path + ": " + errno_string(errno));
        }
        std::vector<std::string> names;
        while (dirent* de = ::readdir(d)) {
            if (std::strcmp(de->d_name, ".") == 0 || std::strcmp(de->d_name, "..") == 0)
                continue;
            names.emplace_back(de->d_name);
        }
        Result<void> result;
        for (const std::string& child : names) {
            struct stat st{};
            if (::fstatat(fd, child.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
                result = make_error(errno, path + "/" + child + ": " + errno_string(errno));
                break;
            }
            std::string child_path = path == "/" ? "/" + child : path + "/" + child;
            result = add(fd, child.c_str(), child_path, st);
            if (!result)
                break;
        }
        ::closedir(d);
        return result;
    }
};

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

template <class T> void put(std::vector<uint8_t>& img, uint64_t off, const T& v) {
    std::memcpy(img.data() + off, &v, sizeof v);
}

} // namespace

Result<std::vector<uint8_t>> build_rootfs_image(const std::string& dir,
                                                const RootfsBuildOptions& options,
                                                RootfsBuildReport* report) {
    if (sodium_init() < 0)
        return make_error(EIO, "libsodium failed to initialize");
    struct stat st{};
    if (::stat(dir.c_str(), &st) != 0)
        return make_error(errno, dir + ": " + errno_string(errno));
    if (!S_ISDIR(st.st_mode))
        return make_error(ENOTDIR, dir + ": rootfs is not a directory");

    Walker w{options, report, {}, 0};
    {
        Node root;
        root.path = "/";
        root.st = st;
        if (options.labeler)
            root.label = KOS_TRY(options.labeler("/", st.st_mode));
        w.nodes.push_back(std::move(root));
        KOS_TRY(w.walk_dir(AT_FDCWD, dir.c_str(), "/"));
    }
    std::vector<Node>& nodes = w.nodes;
    std::sort(nodes.begin(), nodes.end(), [](const Node& a, const Node& b) {
        return rfs::path_compare(a.path.data(), a.path.size(), b.path.data(), b.path.size()) < 0;
    });

    // String table: paths, labels (deduplicated), symlink targets.
    std::string strings(1, '\0');
    auto intern = [&](const std::string& s) {
        uint64_t off = strings.size();
        strings += s;
        strings.push_back('\0');
        return off;
    };
    std::vector<rfs::RootfsEntry> entries(nodes.size());
    std::vector<std::pair<std::string, uint32_t>> label_offsets;
    for (size_t i = 0; i < nodes.size(); ++i) {
        const Node& n = nodes[i];
        rfs::RootfsEntry& e = entries[i];
        e.path_offset = static_cast<uint32_t>(intern(n.path));
        e.path_len = static_cast<uint32_t>(n.path.size());
        auto it = std::find_if(label_offsets.begin(), label_offsets.end(),
                               [&](auto& p) { return p.first == n.label; });
        if (it == label_offsets.end()) {
            label_offsets.emplace_back(n.label, static_cast<uint32_t>(intern(n.label)));
            it = label_offsets.end() - 1;
        }
        e.label_offset = it->second;
        e.label_len = static_cast<uint32_t>(n.label.size());
        e.mode = static_cast<uint32_t>(n.st.st_mode) & (rfs::kTypeMask | 07777);
        e.uid = static_cast<uint32_t>(n.st.st_uid);
        e.gid = static_cast<uint32_t>(n.st.st_gid);
        e.mtime_sec = n.st.st_mtim.tv_sec;
        if (S_ISLNK(n.st.st_mode)) {
            e.size = n.content.size();
            e.data_offset = intern(std::string(n.content.begin(), n.content.end()));
        } else if (S_ISREG(n.st.st_mode)) {
            e.size = n.content.size();
        }
        if (!S_ISDIR(n.st.st_mode)) {
            Sha256 d = sha256(n.content);
            std::memcpy(e.digest, d.data(), d.size());
        }
    }
    if (strings.size() > UINT32_MAX)
        return make_error(E2BIG, dir + ": rootfs string table exceeds 4 GiB");
    // Subtree ends: a directory's descendants are the following entries that
    // lie under its path.
    for (size_t i = 0; i < nodes.size(); ++i) {
        size_t end = i + 1;
        if (S_ISDIR(nodes[i].st.st_mode)) {
            while (end < nodes.size() &&
                   rfs::RootfsView::is_descendant(nodes[i].path.data(), nodes[i].path.size(),
                                                  nodes[end].path.data(), nodes[end].path.size()))
                ++end;
        }
        entries[i].subtree_end = static_cast<uint32_t>(end);
    }

    uint64_t entries_off = sizeof(rfs::RootfsHeader);
    uint64_t strings_off = entries_off + entries.size() * sizeof(rfs::RootfsEntry);
    uint64_t data_off = align_up(strings_off + strings.size(), rfs::kPageSize);
    uint64_t cursor = data_off;
    for (size_t i = 0; i < nodes.size(); ++i) {
        if (!S_ISREG(nodes[i].st.st_mode))
            continue;
        entries[i].data_offset = cursor;
        cursor = align_up(cursor + nodes[i].content.size(), rfs::kPageSize);
    }
    std::vector<uint8_t> img(cursor, 0);
    rfs::RootfsHeader h{};
    h.magic = rfs::kMagic;
    h.version = rfs::kVersion;
    h.entry_size = sizeof(rfs::RootfsEntry);
    h.image_size = img.size();
    h.entry_count = static_cast<uint32_t>(entries.size());
    h.entries_offset = entries_off;
    h.strings_offset = strings_off;
    h.strings_size = strings.size();
    h.data_offset = data_off;
    h.data_size = cursor - data_off;
    put(img, 0, h);
    std::memcpy(img.data() + entries_off, entries.data(), entries.size() * sizeof(rfs::RootfsEntry));
    std::memcpy(img.data() + strings_off, strings.data(), strings.size());
    for (size_t i = 0; i < nodes.size(); ++i)
        if (S_ISREG(nodes[i].st.st_mode) && !nodes[i].content.empty())
            std::memcpy(img.data() + entries[i].data_offset, nodes[i].content.data(),
                        nodes[i].content.size());

    rfs::RootfsView view(img.data(), img.size());
    uint32_t bad = 0;
    if (rfs::Error err = view.validate(&bad); err != rfs::Error::None)
        return make_error(EINVAL, dir + ": internal error: built rootfs image is invalid (" +
                                      rfs::error_string(err) + ")");
    return img;
}

} // namespace kos::pkg
