#include "oci_import.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "bundle.h"
#include "bundle_config.h"
#include "kos/rootfs_image.h"
#include "kos/support/file.h"
#include "manifest.h"

namespace kos::pkg {
namespace rfs = kos::abi::rootfs;
using nlohmann::json;

namespace {

struct PathLess {
    bool operator()(const std::string& a, const std::string& b) const {
        return rfs::path_compare(a.data(), a.size(), b.data(), b.size()) < 0;
    }
};

struct Node {
    TarEntry::Type type = TarEntry::Type::Dir;
    uint32_t mode = 0755;
    uint32_t uid = 0;
    uint32_t gid = 0;
    int64_t mtime = 0;
    std::string link_target;
    std::shared_ptr<const std::vector<uint8_t>> data;
};

std::string parent_of(const std::string& p) {
    return p.substr(0, rfs::RootfsView::parent_len(p.data(), p.size()));
}

std::string base_of(const std::string& p) {
    uint64_t n = 0;
    const char* b = rfs::RootfsView::basename(p.data(), p.size(), &n);
    return std::string(b, n);
}

// "./a//b/" -> "/a/b". Absolute names and ".." are refused (ATTACKS.md 1):
// a layer's names are relative to its root and never leave it.
Result<std::string> normalize(const std::string& raw, const std::string& what) {
    if (!raw.empty() && raw[0] == '/')
        return make_error(EPERM, what + ": \"" + raw + "\": absolute path in a layer; rejected");
    std::string out;
    size_t start = 0;
    while (start <= raw.size()) {
        size_t slash = raw.find('/', start);
        if (slash == std::string::npos)
            slash = raw.size();
        std::string comp = raw.substr(start, slash - start);
        start = slash + 1;
        if (comp.empty() || comp == ".")
            continue;
        if (comp == "..")
            return make_error(EPERM, what + ": \"" + raw + "\": path escapes the root (\"..\"); rejected");
        if (comp.find('\0') != std::string::npos)
            return make_error(EINVAL, what + ": NUL in path; rejected");
        out += "/" + comp;
    }
    return out.empty() ? std::string("/") : out;
}

class Tree {
public:
    Tree() { m_nodes["/"] = Node{}; }

    const std::map<std::string, Node, PathLess>& nodes() const { return m_nodes; }
    std::vector<std::string>& notes() { return m_notes; }

    Result<void> apply_layer(std::span<const uint8_t> bytes, const std::string& what, TarLimits limits,
                             const std::function<void(uint64_t, uint64_t)>& progress) {
        limits.max_entries = limits.max_entries > m_entries ? limits.max_entries - m_entries : 0;
        limits.max_total_bytes = limits.max_total_bytes > m_bytes ? limits.max_total_bytes - m_bytes : 0;
        auto reader = KOS_TRY(TarReader::open(bytes, limits, what));
        std::vector<TarEntry> entries;
        TarEntry e;
        while (KOS_TRY(reader->next(e))) {
            m_bytes += e.data.size();
            entries.push_back(std::move(e));
            if (progress && entries.size() % 1024 == 0)
                progress(m_entries + entries.size(), m_bytes);
        }
        m_entries += entries.size();
        // OCI image spec, "Whiteouts": a whiteout hides entries of the
        // layers below only, so all of this layer's whiteouts go first.
        auto is_whiteout = [&](const TarEntry& t) {
            auto p = normalize(t.path, what);
            return p && base_of(*p).starts_with(".wh.");
        };
        for (const TarEntry& t : entries)
            if (is_whiteout(t))
                KOS_TRY(whiteout(t, what));
        for (TarEntry& t : entries)
            if (!is_whiteout(t))
                KOS_TRY(add(std::move(t), what));
        return {};
    }

    // Follows symlinks inside the tree (bounded), for looking up the
    // entrypoint and /etc/passwd. Never leaves the tree.
    const Node* resolve(const std::string& path, std::string* resolved = nullptr) const {
        std::string cur = "/";
        std::vector<std::string> todo;
        auto push_components = [&](const std::string& p) {
            std::vector<std::string> comps;
            size_t start = 0;
            while (start <= p.size()) {
                size_t s = p.find('/', start);
                if (s == std::string::npos)
                    s = p.size();
                if (s > start)
                    comps.push_back(p.substr(start, s - start));
                start = s + 1;
            }
            todo.insert(todo.end(), comps.rbegin(), comps.rend());
        };
        push_components(path);
        int hops = 0;
        while (!todo.empty()) {
            std::string c = todo.back();
            todo.pop_back();
            if (c == ".")
                continue;
            if (c == "..") {
                cur = parent_of(cur);
                continue;
            }
            std::string next = cur == "/" ? "/" + c : cur + "/" + c;
            auto it = m_nodes.find(next);
            if (it == m_nodes.end())
                return nullptr;
            if (it->second.type == TarEntry::Type::Symlink) {
                if (++hops > 40)
                    return nullptr;
                const std::string& t = it->second.link_target;
                if (!t.empty() && t[0] == '/')
                    cur = "/";
                push_components(t);
                continue;
            }
            cur = next;
        }
        if (resolved)
            *resolved = cur;
        return &m_nodes.at(cur);
    }

private:
    void erase_below(const std::string& p, bool self) {
        auto it = m_nodes.lower_bound(p);
        if (it != m_nodes.end() && it->first == p) {
            it = self ? m_nodes.erase(it) : std::next(it);
        }
        while (it != m_nodes.end() && rfs::RootfsView::is_descendant(p.data(), p.size(), it->first.data(),
                                                                     it->first.size()))
            it = m_nodes.erase(it);
    }

    // Every existing ancestor must be a real directory (ATTACKS.md 2: an
    // entry may not go through a symlink); missing ones are created.
    Result<void> parents(const std::string& p, const std::string& what, bool create) {
        std::string cur;
        size_t start = 1;
        while (true) {
            size_t slash = p.find('/', start);
            if (slash == std::string::npos)
                break;
            cur = p.substr(0, slash);
            start = slash + 1;
            auto it = m_nodes.find(cur);
            if (it == m_nodes.end()) {
                if (!create)
                    return {};
                m_nodes[cur] = Node{};
                continue;
            }
            if (it->second.type != TarEntry::Type::Dir)
                return make_error(EPERM, what + ": \"" + p + "\" lies under " + cur + ", which is a " +
                                             tar_type_name(it->second.type) +
                                             ", not a directory; rejected (paths never resolve through "
                                             "symlinks)");
        }
        return {};
    }

    Result<void> whiteout(const TarEntry& t, const std::string& what) {
        std::string p = KOS_TRY(normalize(t.path, what));
        std::string base = base_of(p);
        std::string dir = parent_of(p);
        KOS_TRY(parents(p, what, false));
        if (base == ".wh..wh..opq") {
            // Opaque directory: hide everything below it from lower layers;
            // the directory itself (even the root) stays.
            erase_below(dir, false);
            return {};
        }
        std::string name = base.substr(4);
        if (name.empty() || name == "." || name == "..")
            return make_error(EINVAL, what + ": \"" + t.path + "\": malformed whiteout; rejected");
        if (name.starts_with(".wh.")) {
            m_notes.push_back(what + ": " + t.path + ": unknown whiteout metadata ignored");
            return {};
        }
        std::string target = dir == "/" ? "/" + name : dir + "/" + name;
        erase_below(target, true);
        return {};
    }

    Result<void> add(TarEntry t, const std::string& what) {
        std::string p = KOS_TRY(normalize(t.path, what));
        using T = TarEntry::Type;
        if (t.type == T::CharDevice || t.type == T::BlockDevice || t.type == T::Fifo || t.type == T::Socket ||
            t.type == T::Unknown) {
            m_notes.push_back(what + ": " + p + ": " + tar_type_name(t.type) + " dropped");
            return {};
        }
        if (p == "/") {
            if (t.type != T::Dir)
                return make_error(EINVAL, what + ": the layer root is a " + tar_type_name(t.type) + "; rejected");
            m_nodes["/"].mode = t.mode & 0777;
            return {};
        }
        KOS_TRY(parents(p, what, true));
        Node n;
        n.type = t.type;
        n.mode = t.mode;
        n.mtime = t.mtime;
        if (t.type == T::Hardlink) {
            // ATTACKS.md 3: a hardlink names an earlier regular file of the
            // tree, never anything outside it.
            auto target = normalize(t.link_target, what);
            if (!target)
                return make_error(EPERM, what + ": hardlink " + p + " -> \"" + t.link_target +
                                             "\": target outside the root; rejected");
            auto it = m_nodes.find(*target);
            if (it == m_nodes.end() || it->second.type != T::File)
                return make_error(EPERM, what + ": hardlink " + p + " -> \"" + t.link_target +
                                             "\": target is not a regular file in the image; rejected");
            KOS_TRY(parents(*target, what, false));
            n = it->second;
        } else if (t.type == T::Symlink) {
            if (t.link_target.empty())
                return make_error(EINVAL, what + ": symlink " + p + " has an empty target; rejected");
            n.link_target = std::move(t.link_target);
        } else if (t.type == T::File) {
            n.data = std::make_shared<const std::vector<uint8_t>>(std::move(t.data));
        }
        if (n.mode & 06000) {
            m_notes.push_back(what + ": " + p + ": setuid/setgid bits dropped");
            n.mode &= ~06000u;
        }
        if (t.type != T::Hardlink) {
            auto clamp = [&](int64_t id, const char* kind) -> uint32_t {
                if (id < 0 || id > 65534) {
                    m_notes.push_back(what + ": " + p + ": foreign " + kind + " " + std::to_string(id) +
                                      " clamped to 65534");
                    return 65534;
                }
                return static_cast<uint32_t>(id);
            };
            n.uid = clamp(t.uid, "uid");
            n.gid = clamp(t.gid, "gid");
        }
        for (const std::string& x : t.xattrs)
            m_notes.push_back(what + ": " + p + ": extended attribute " + x + " dropped" +
                              (x == "security.capability" ? " (file capabilities are never granted)" : ""));
        auto it = m_nodes.find(p);
        if (it != m_nodes.end() && it->second.type == T::Dir && n.type == T::Dir) {
            it->second.mode = n.mode;
            it->second.uid = n.uid;
            it->second.gid = n.gid;
            it->second.mtime = n.mtime;
            return {};
        }
        if (it != m_nodes.end())
            erase_below(p, true);
        if (n.type == T::Hardlink)
            n.type = T::File;
        m_nodes[p] = std::move(n);
        return {};
    }

    std::map<std::string, Node, PathLess> m_nodes;
    std::vector<std::string> m_notes;
    uint64_t m_entries = 0;
    uint64_t m_bytes = 0;
};

// ---- filesystem output ----

Result<UniqueFd> open_in(int dirfd, const std::string& rel, uint64_t flags) {
    struct open_how how{};
    how.flags = flags | O_CLOEXEC | O_NOCTTY;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    int fd = static_cast<int>(::syscall(SYS_openat2, dirfd, rel.c_str(), &how, sizeof how));
    if (fd < 0)
        return make_error(errno, rel + ": " + errno_string(errno));
    return UniqueFd(fd);
}

Result<void> write_text(int dirfd, const std::string& rel, const std::string& text) {
    UniqueFd fd = KOS_TRY(open_in(dirfd, rel, O_WRONLY | O_CREAT | O_EXCL));
    KOS_TRY(write_all(fd.get(), reinterpret_cast<const uint8_t*>(text.data()), text.size(), rel));
    ::fchmod(fd.get(), 0644);
    return {};
}

Result<void> write_tree(const Tree& tree, int rootfd) {
    using T = TarEntry::Type;
    auto parent_fd = [&](const std::string& p) {
        std::string parent = parent_of(p);
        return open_in(rootfd, parent == "/" ? "." : parent.substr(1), O_RDONLY | O_DIRECTORY);
    };
    for (const auto& [p, n] : tree.nodes()) {
        if (p == "/")
            continue;
        UniqueFd dir = KOS_TRY(parent_fd(p));
        std::string base = base_of(p);
        if (n.type == T::Dir) {
            if (::mkdirat(dir.get(), base.c_str(), 0700) != 0)
                return make_error(errno, p + ": " + errno_string(errno));
        } else if (n.type == T::Symlink) {
            if (::symlinkat(n.link_target.c_str(), dir.get(), base.c_str()) != 0)
                return make_error(errno, p + ": " + errno_string(errno));
        } else {
            UniqueFd fd(::openat(dir.get(), base.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                                 0600));
            if (!fd)
                return make_error(errno, p + ": " + errno_string(errno));
            if (n.data)
                KOS_TRY(write_all(fd.get(), n.data->data(), n.data->size(), p));
            if (::fchmod(fd.get(), n.mode & 07777) != 0)
                return make_error(errno, p + ": " + errno_string(errno));
        }
        // Ownership from the image (already clamped) survives only when
        // importing as root; otherwise the files belong to the importer.
        if (::geteuid() == 0 && ::fchownat(dir.get(), base.c_str(), n.uid, n.gid, AT_SYMLINK_NOFOLLOW) != 0)
            return make_error(errno, p + ": chown: " + errno_string(errno));
        struct timespec ts[2] = {{n.mtime, 0}, {n.mtime, 0}};
        if (n.type != T::Dir)
            ::utimensat(dir.get(), base.c_str(), ts, AT_SYMLINK_NOFOLLOW);
    }
    // Directories last, deepest first: modes may remove write permission.
    for (auto it = tree.nodes().rbegin(); it != tree.nodes().rend(); ++it) {
        const auto& [p, n] = *it;
        if (n.type != T::Dir)
            continue;
        struct timespec ts[2] = {{n.mtime, 0}, {n.mtime, 0}};
        if (p == "/") {
            ::fchmod(rootfd, (n.mode & 0777) | 0700);
            continue;
        }
        UniqueFd dir = KOS_TRY(parent_fd(p));
        std::string base = base_of(p);
        // Keep owner rwx so the bundle can be packed and removed.
        ::fchmodat(dir.get(), base.c_str(), (n.mode & 07777) | 0700, 0);
        ::utimensat(dir.get(), base.c_str(), ts, AT_SYMLINK_NOFOLLOW);
    }
    return {};
}

// ---- JSON and blobs ----

// nlohmann's parser recurses; refuse deep nesting before parsing.
Result<json> parse_json(std::span<const uint8_t> bytes, const std::string& what) {
    int depth = 0;
    bool in_str = false, esc = false;
    for (uint8_t c : bytes) {
        if (in_str) {
            if (esc)
                esc = false;
            else if (c == '\\')
                esc = true;
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"')
            in_str = true;
        else if (c == '[' || c == '{') {
            if (++depth > 64)
                return make_error(EINVAL, what + ": JSON nested deeper than 64 levels; rejected");
        } else if (c == ']' || c == '}')
            --depth;
    }
    const char* text = reinterpret_cast<const char*>(bytes.data());
    json j = json::parse(text, text + bytes.size(), nullptr, false);
    if (j.is_discarded())
        return make_error(EINVAL, what + ": not valid JSON");
    return j;
}

std::optional<std::string> str_field(const json& j, const char* key) {
    if (!j.is_object())
        return std::nullopt;
    auto it = j.find(key);
    if (it == j.end() || !it->is_string())
        return std::nullopt;
    return it->get<std::string>();
}

std::vector<std::string> str_array(const json& j, const char* key) {
    std::vector<std::string> out;
    if (!j.is_object())
        return out;
    auto it = j.find(key);
    if (it == j.end() || !it->is_array())
        return out;
    for (const json& v : *it)
        if (v.is_string())
            out.push_back(v.get<std::string>());
    return out;
}

struct Descriptor {
    std::string media_type;
    std::string hex; // sha256 digest, 64 lower-case hex digits
    uint64_t size = 0;
    json annotations;
    json platform;
};

bool is_hex64(const std::string& s) {
    return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// ATTACKS.md 6: a descriptor names a blob by "sha256:<64 hex>" only, so it
// can never point outside blobs/sha256/; foreign URLs are not followed.
Result<Descriptor> parse_descriptor(const json& j, const std::string& what, const ImportOptions& o) {
    if (!j.is_object())
        return make_error(EINVAL, what + ": descriptor is not an object");
    Descriptor d;
    d.media_type = str_field(j, "mediaType").value_or("");
    std::string digest = str_field(j, "digest").value_or("");
    if (!digest.starts_with("sha256:") || !is_hex64(digest.substr(7)))
        return make_error(EINVAL, what + ": descriptor digest \"" + digest.substr(0, 80) +
                                      "\" is not sha256:<64 lower-case hex digits>; rejected");
    d.hex = digest.substr(7);
    auto size = j.find("size");
    if (size == j.end() || !size->is_number_unsigned() || size->get<uint64_t>() > o.max_blob_bytes)
        return make_error(EINVAL, what + ": descriptor " + digest + " has no valid size (at most " +
                                      std::to_string(o.max_blob_bytes) + " bytes)");
    d.size = size->get<uint64_t>();
    if (j.contains("urls"))
        return make_error(EINVAL, what + ": descriptor " + digest + " has external urls (foreign layer); "
                                                                     "not supported");
    if (auto a = j.find("annotations"); a != j.end())
        d.annotations = *a;
    if (auto p = j.find("platform"); p != j.end())
        d.platform = *p;
    return d;
}

Result<std::vector<uint8_t>> check_blob(std::vector<uint8_t> bytes, const Descriptor& d, const std::string& what) {
    if (bytes.size() != d.size)
        return make_error(EBADMSG, what + ": blob sha256:" + d.hex + ": size " + std::to_string(bytes.size()) +
                                       " does not match the descriptor's " + std::to_string(d.size) + "; rejected");
    if (to_hex(sha256(bytes)) != d.hex)
        return make_error(EBADMSG, what + ": blob sha256:" + d.hex + ": content does not match its digest; rejected");
    return bytes;
}

Result<std::vector<uint8_t>> load_blob(int layout_fd, const Descriptor& d, const std::string& what) {
    std::string rel = "blobs/sha256/" + d.hex;
    auto fd = open_in(layout_fd, rel, O_RDONLY);
    if (!fd)
        return make_error(fd.error().code, what + ": " + fd.error().message);
    struct stat st{};
    if (::fstat(fd->get(), &st) != 0 || !S_ISREG(st.st_mode))
        return make_error(EINVAL, what + ": " + rel + ": not a regular file");
    if (static_cast<uint64_t>(st.st_size) != d.size)
        return make_error(EBADMSG, what + ": blob sha256:" + d.hex + ": size " + std::to_string(st.st_size) +
                                       " does not match the descriptor's " + std::to_string(d.size) + "; rejected");
    std::vector<uint8_t> bytes = KOS_TRY(read_fd(fd->get(), what + ": " + rel, d.size));
    return check_blob(std::move(bytes), d, what);
}

bool layer_media_type_ok(const std::string& t) {
    static const char* ok[] = {
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.diff.tar",
    };
    for (const char* o : ok)
        if (t == o)
            return true;
    return false;
}

// ---- bundle output ----

// A .kpol string literal.
std::string kpol_str(const std::string& v) {
    std::string out = "\"";
    for (char c : v) {
        if (c == '"' || c == '\\')
            out += '\\';
        out += c;
    }
    return out + "\"";
}

std::string toml_str(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (u < 0x20 || u == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", u);
            out += buf;
        } else {
            out += c;
        }
    }
    return out + "\"";
}

std::string toml_array(const std::vector<std::string>& v) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i)
        out += (i ? ", " : "") + toml_str(v[i]);
    return out + "]";
}

std::string sanitize_name(std::string n) {
    if (auto slash = n.rfind('/'); slash != std::string::npos)
        n = n.substr(slash + 1);
    if (auto colon = n.find(':'); colon != std::string::npos)
        n = n.substr(0, colon);
    std::string out;
    for (char c : n)
        out += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-') ? c : '-';
    if (out.empty() || out.size() > 128 || out == "." || out == "..")
        return "imported";
    return out;
}

Result<uint32_t> lookup_id(const Tree& tree, const std::string& file, const std::string& name) {
    if (!name.empty() && name.size() <= 10 && name.find_first_not_of("0123456789") == std::string::npos) {
        uint64_t v = std::stoull(name);
        if (v <= 65534)
            return static_cast<uint32_t>(v);
        return make_error(EINVAL, "image config User: id " + name + " is out of range");
    }
    const Node* n = tree.resolve(file);
    if (n && n->type == TarEntry::Type::File && n->data) {
        std::string text(n->data->begin(), n->data->end());
        size_t start = 0;
        while (start < text.size()) {
            size_t nl = text.find('\n', start);
            if (nl == std::string::npos)
                nl = text.size();
            std::string line = text.substr(start, nl - start);
            start = nl + 1;
            // name:x:ID:...
            size_t c1 = line.find(':');
            if (c1 == std::string::npos || line.substr(0, c1) != name)
                continue;
            size_t c2 = line.find(':', c1 + 1);
            size_t c3 = c2 == std::string::npos ? c2 : line.find(':', c2 + 1);
            if (c3 == std::string::npos)
                continue;
            std::string id = line.substr(c2 + 1, c3 - c2 - 1);
            if (!id.empty() && id.size() <= 5 && id.find_first_not_of("0123456789") == std::string::npos &&
                std::stoul(id) <= 65534)
                return static_cast<uint32_t>(std::stoul(id));
        }
    }
    return make_error(EINVAL, "image config User: \"" + name + "\" is not numeric and not found in the image's " +
                                  file);
}

Result<void> write_bundle(const Tree& tree, const json& image_config, const std::string& name,
                          const std::string& source, const std::string& out_dir, ImportResult& result) {
    const json empty = json::object();
    const json& c = image_config.is_object() && image_config.contains("config") && image_config["config"].is_object()
                        ? image_config["config"]
                        : empty;
    std::vector<std::string> entry = str_array(c, "Entrypoint");
    std::vector<std::string> cmd = str_array(c, "Cmd");
    std::vector<std::string> env = str_array(c, "Env");
    std::string workdir = str_field(c, "WorkingDir").value_or("");
    if (workdir.empty())
        workdir = "/";
    if (workdir[0] != '/')
        workdir = "/" + workdir;
    std::vector<std::string> program = entry, args = cmd;
    if (program.empty()) {
        if (cmd.empty())
            return make_error(EINVAL, source + ": the image config has neither Entrypoint nor Cmd; "
                                               "nothing to run");
        program = {cmd[0]};
        args.assign(cmd.begin() + 1, cmd.end());
    }
    // Resolve the program through PATH inside the image: kos needs an
    // absolute path.
    std::string prog = program[0];
    if (prog.empty())
        return make_error(EINVAL, source + ": empty program name in Entrypoint/Cmd");
    if (prog[0] != '/') {
        std::string path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        for (const std::string& e : env)
            if (e.starts_with("PATH="))
                path = e.substr(5);
        std::vector<std::string> candidates;
        if (prog.find('/') != std::string::npos)
            candidates.push_back((workdir == "/" ? "" : workdir) + "/" + prog);
        else
            for (size_t start = 0; start <= path.size();) {
                size_t colon = path.find(':', start);
                if (colon == std::string::npos)
                    colon = path.size();
                std::string d = path.substr(start, colon - start);
                start = colon + 1;
                if (!d.empty() && d[0] == '/')
                    candidates.push_back((d == "/" ? "" : d) + "/" + prog);
            }
        std::string found;
        for (const std::string& cand : candidates) {
            const Node* n = tree.resolve(cand);
            if (n && n->type == TarEntry::Type::File) {
                auto norm = normalize(cand.substr(1), "entrypoint");
                if (norm)
                    found = *norm;
                break;
            }
        }
        if (found.empty())
            return make_error(ENOENT, source + ": program \"" + prog + "\" of Entrypoint/Cmd not found in "
                                               "the image (searched PATH)");
        program[0] = found;
    }
    std::string user = str_field(c, "User").value_or("");
    uint32_t uid = 0, gid = 0;
    if (!user.empty()) {
        size_t colon = user.find(':');
        std::string u = user.substr(0, colon);
        uid = KOS_TRY(lookup_id(tree, "/etc/passwd", u));
        if (colon != std::string::npos) {
            gid = KOS_TRY(lookup_id(tree, "/etc/group", user.substr(colon + 1)));
        } else if (u.find_first_not_of("0123456789") == std::string::npos) {
            gid = uid;
        } else {
            // The user's primary group: the fourth passwd field.
            gid = uid;
            if (const Node* n = tree.resolve("/etc/passwd"); n && n->data) {
                std::string text(n->data->begin(), n->data->end());
                size_t at = text.find(u + ":");
                while (at != std::string::npos && at != 0 && text[at - 1] != '\n')
                    at = text.find(u + ":", at + 1);
                if (at != std::string::npos) {
                    std::string line = text.substr(at, text.find('\n', at) - at);
                    size_t f = 0, pos = 0;
                    while (f < 3 && (pos = line.find(':', pos)) != std::string::npos) {
                        ++f;
                        ++pos;
                    }
                    if (f == 3) {
                        std::string g = line.substr(pos, line.find(':', pos) - pos);
                        if (!g.empty() && g.size() <= 5 && g.find_first_not_of("0123456789") == std::string::npos)
                            gid = static_cast<uint32_t>(std::stoul(g));
                    }
                }
            }
        }
    }
    std::vector<std::pair<std::string, uint16_t>> ports;
    if (auto it = c.find("ExposedPorts"); it != c.end() && it->is_object())
        for (auto& [k, v] : it->items()) {
            size_t slash = k.find('/');
            std::string num = k.substr(0, slash), proto = slash == std::string::npos ? "tcp" : k.substr(slash + 1);
            if (num.empty() || num.size() > 5 || num.find_first_not_of("0123456789") != std::string::npos ||
                (proto != "tcp" && proto != "udp") || std::stoul(num) == 0 || std::stoul(num) > 65535)
                continue;
            ports.emplace_back(proto, static_cast<uint16_t>(std::stoul(num)));
        }

    std::string t;
    t += "# Imported by `kos import` from " + source + ".\n";
    t += "# DRAFT behavior config: it allows only what the image obviously needs.\n";
    t += "# Review [labels], [limits], [network] and policy/app.kpol before packing.\n\n";
    t += "[app]\n";
    t += "name = " + toml_str(name) + "\n";
    t += "version = \"1\"\n";
    t += "entrypoint = " + toml_array(program) + "\n";
    t += "args = " + toml_array(args) + "\n";
    t += "env = " + toml_array(env) + "\n";
    t += "workdir = " + toml_str(workdir) + "\n";
    t += "user = \"" + std::to_string(uid) + ":" + std::to_string(gid) + "\"\n\n";
    t += "[labels]\n";
    t += "\"/**\" = \"app_file_t\"\n";
    t += "\"/etc/**\" = \"app_config_t\"\n";
    t += "\"/tmp/**\" = \"app_tmp_t\"\n";
    t += "\"/var/**\" = \"app_var_t\"\n";
    for (const char* d : {"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin"}) {
        auto it = tree.nodes().find(d);
        if (it != tree.nodes().end() && it->second.type == TarEntry::Type::Dir)
            t += toml_str(std::string(d) + "/**") + " = \"app_exec_t\"\n";
    }
    t += "\n[policy]\ndomain = \"app_t\"\nsources = [\"policy/app.kpol\"]\n\n";
    t += "[limits]\nmemory = \"512MiB\"\nvcpus = 1\npids = 256\nopen_files = 1024\n";
    if (!ports.empty()) {
        t += "\n# From the image's EXPOSE.\n[network]\nlisten = [\n";
        for (auto& [proto, port] : ports)
            t += "  { proto = \"" + proto + "\", port = " + std::to_string(port) + ", label = \"app_port_t\" },\n";
        t += "]\n";
    }
    // The generated config must parse: a bug here is ours, not the image's.
    auto parsed = parse_bundle_config(t, out_dir + "/bundle.toml");
    if (!parsed)
        return make_error(EINVAL, "internal error: generated bundle.toml is invalid: " + parsed.error().message);

    std::string pol;
    pol += "# DRAFT policy for " + name + ", generated by `kos import` from " + source + ".\n";
    pol += "# Review before packing. Anything not allowed here is denied.\n";
    pol += "domain app_t\n";
    pol += "resource app_exec_t, app_file_t, app_config_t, app_tmp_t, app_var_t";
    pol += ports.empty() ? "\n" : ", app_port_t\n";
    pol += "class file { read: read, map: read, execute: read, write: write, create: write, unlink: write }\n";
    std::set<std::string> protos;
    for (auto& [proto, port] : ports)
        protos.insert(proto);
    for (const std::string& proto : protos)
        pol += "class " + proto + " { listen: none, accept: read }\n";
    pol += "\n# Run the image's programs: its entrypoint and what its bin directories hold.\n";
    pol += "allow execute app_t -> app_t where program == " + kpol_str(program.empty() ? "/" : program[0]) + "\n";
    for (const char* d : {"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin"}) {
        auto it = tree.nodes().find(d);
        if (it != tree.nodes().end() && it->second.type == TarEntry::Type::Dir)
            pol += "allow execute app_t -> app_t where program glob " + kpol_str(std::string(d) + "/*") + "\n";
    }
    pol += "allow security app_t -> app_exec_t file.{read, map, execute}\n";
    pol += "allow security app_t -> app_file_t file.{read, map}\n";
    pol += "allow security app_t -> app_config_t file.read\n";
    pol += "allow security app_t -> app_tmp_t file.{read, write, create, unlink}\n";
    for (auto& [proto, port] : ports)
        pol += "allow security app_t -> app_port_t " + proto + ".{listen, accept}  # EXPOSE " + std::to_string(port) +
               "\n";

    struct stat st{};
    if (::lstat(out_dir.c_str(), &st) == 0)
        return make_error(EEXIST, out_dir + ": already exists (import creates a new bundle directory)");
    std::string tmp = out_dir + ".kos-import-" + std::to_string(::getpid());
    if (::mkdir(tmp.c_str(), 0755) != 0)
        return make_error(errno, tmp + ": " + errno_string(errno));
    auto body = [&]() -> Result<void> {
        UniqueFd dfd(::open(tmp.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!dfd)
            return make_error(errno, tmp + ": " + errno_string(errno));
        KOS_TRY(write_text(dfd.get(), "bundle.toml", t));
        if (::mkdirat(dfd.get(), "policy", 0755) != 0 || ::mkdirat(dfd.get(), "rootfs", 0755) != 0)
            return make_error(errno, tmp + ": " + errno_string(errno));
        KOS_TRY(write_text(dfd.get(), "policy/app.kpol", pol));
        UniqueFd rfd = KOS_TRY(open_in(dfd.get(), "rootfs", O_RDONLY | O_DIRECTORY));
        KOS_TRY(write_tree(tree, rfd.get()));
        if (::rename(tmp.c_str(), out_dir.c_str()) != 0)
            return make_error(errno, out_dir + ": " + errno_string(errno));
        return {};
    };
    Result<void> r = body();
    if (!r)
        (void)remove_tree(tmp);
    result.entries = tree.nodes().size();
    return r;
}

Result<Tree> apply_all(const std::vector<std::vector<uint8_t>>& layers, const ImportOptions& o,
                       std::vector<std::string>& notes) {
    Tree tree;
    for (size_t i = 0; i < layers.size(); ++i)
        KOS_TRY(tree.apply_layer(layers[i], "layer " + std::to_string(i + 1), o.limits, o.progress));
    notes = tree.notes();
    return tree;
}

// Picks the image manifest for linux/amd64 (or the only one) from an index.
Result<Descriptor> pick_manifest(int fd, const json& index, const ImportOptions& o, const std::string& what,
                                 int depth) {
    auto m = index.is_object() ? index.find("manifests") : index.end();
    if (!index.is_object() || m == index.end() || !m->is_array() || m->empty())
        return make_error(EINVAL, what + ": index has no manifests");
    std::optional<Descriptor> chosen;
    for (const json& j : *m) {
        Descriptor d = KOS_TRY(parse_descriptor(j, what, o));
        std::string os = str_field(d.platform, "os").value_or("linux");
        std::string arch = str_field(d.platform, "architecture").value_or("amd64");
        if (os == "linux" && arch == "amd64") {
            chosen = d;
            break;
        }
    }
    if (!chosen)
        return make_error(EINVAL, what + ": no linux/amd64 image in the index");
    if (chosen->media_type == "application/vnd.oci.image.index.v1+json" ||
        chosen->media_type == "application/vnd.docker.distribution.manifest.list.v2+json") {
        if (depth > 2)
            return make_error(EINVAL, what + ": nested indexes deeper than 2; rejected");
        std::vector<uint8_t> bytes = KOS_TRY(load_blob(fd, *chosen, what));
        json nested = KOS_TRY(parse_json(bytes, what + ": index sha256:" + chosen->hex));
        Descriptor inner = KOS_TRY(pick_manifest(fd, nested, o, what, depth + 1));
        if (inner.annotations.is_null())
            inner.annotations = chosen->annotations;
        return inner;
    }
    return *chosen;
}

} // namespace

Result<std::vector<std::string>> apply_layers_for_test(const std::vector<std::vector<uint8_t>>& layers,
                                                       const ImportOptions& options,
                                                       std::vector<std::string>* notes) {
    std::vector<std::string> n;
    Tree tree = KOS_TRY(apply_all(layers, options, n));
    if (notes)
        *notes = n;
    std::vector<std::string> out;
    for (const auto& [p, node] : tree.nodes()) {
        char mode[16];
        std::snprintf(mode, sizeof mode, "%04o", node.mode & 07777);
        std::string d = p + " " + tar_type_name(node.type) + " " + mode + " " + std::to_string(node.uid) + ":" +
                        std::to_string(node.gid);
        if (node.type == TarEntry::Type::Symlink)
            d += " -> " + node.link_target;
        else if (node.data)
            d += " " + std::string(node.data->begin(), node.data->end()).substr(0, 32);
        out.push_back(d);
    }
    return out;
}

Result<ImportResult> import_oci_layout(const std::string& layout_dir, const std::string& out_dir,
                                       const ImportOptions& o) {
    KOS_TRY(init_crypto());
    UniqueFd fd(::open(layout_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd)
        return make_error(errno, layout_dir + ": " + errno_string(errno));
    auto read_json = [&](const std::string& rel) -> Result<json> {
        auto f = open_in(fd.get(), rel, O_RDONLY);
        if (!f)
            return make_error(f.error().code, layout_dir + ": " + f.error().message);
        std::vector<uint8_t> bytes = KOS_TRY(read_fd(f->get(), layout_dir + "/" + rel, o.max_json_bytes));
        return parse_json(bytes, layout_dir + "/" + rel);
    };
    json layout = KOS_TRY(read_json("oci-layout"));
    std::string ver = str_field(layout, "imageLayoutVersion").value_or("");
    if (!ver.starts_with("1."))
        return make_error(EINVAL, layout_dir + "/oci-layout: imageLayoutVersion \"" + ver + "\" is not 1.x");
    json index = KOS_TRY(read_json("index.json"));
    Descriptor md = KOS_TRY(pick_manifest(fd.get(), index, o, layout_dir + "/index.json", 0));

    // Every blob is read and checked before any layer is applied.
    std::vector<uint8_t> mbytes = KOS_TRY(load_blob(fd.get(), md, layout_dir));
    json manifest = KOS_TRY(parse_json(mbytes, layout_dir + ": manifest sha256:" + md.hex));
    if (!manifest.is_object() || !manifest.contains("config") || !manifest.contains("layers") ||
        !manifest["layers"].is_array())
        return make_error(EINVAL, layout_dir + ": manifest sha256:" + md.hex + " has no config or layers");
    Descriptor cd = KOS_TRY(parse_descriptor(manifest["config"], layout_dir + ": config", o));
    std::vector<uint8_t> cbytes = KOS_TRY(load_blob(fd.get(), cd, layout_dir));
    json config = KOS_TRY(parse_json(cbytes, layout_dir + ": config sha256:" + cd.hex));
    if (manifest["layers"].size() > o.max_layers)
        return make_error(E2BIG, layout_dir + ": more than " + std::to_string(o.max_layers) + " layers (limit)");
    std::vector<std::vector<uint8_t>> layers;
    uint64_t total = 0;
    for (const json& l : manifest["layers"]) {
        Descriptor ld = KOS_TRY(parse_descriptor(l, layout_dir + ": layer", o));
        if (!layer_media_type_ok(ld.media_type))
            return make_error(EINVAL, layout_dir + ": layer sha256:" + ld.hex + ": unsupported media type \"" +
                                          ld.media_type + "\"");
        total += ld.size;
        if (total > o.limits.max_total_bytes)
            return make_error(EFBIG, layout_dir + ": layers larger than " +
                                         std::to_string(o.limits.max_total_bytes) + " bytes (limit)");
        layers.push_back(KOS_TRY(load_blob(fd.get(), ld, layout_dir)));
    }
    ImportResult result;
    result.layers = static_cast<uint32_t>(layers.size());
    Tree tree = KOS_TRY(apply_all(layers, o, result.notes));
    std::string name = str_field(md.annotations, "org.opencontainers.image.ref.name").value_or("");
    if (name.empty()) {
        std::string base = layout_dir;
        while (base.size() > 1 && base.back() == '/')
            base.pop_back();
        name = base;
    }
    KOS_TRY(write_bundle(tree, config, sanitize_name(name), layout_dir, out_dir, result));
    return result;
}

Result<ImportResult> import_docker_archive(const std::string& tar_file, const std::string& out_dir,
                                           const ImportOptions& o) {
    KOS_TRY(init_crypto());
    std::vector<uint8_t> archive = KOS_TRY(read_file(tar_file, o.max_blob_bytes));
    auto reader = KOS_TRY(TarReader::open(archive, o.limits, tar_file));
    std::map<std::string, std::vector<uint8_t>> files;
    std::map<std::string, std::string> links;
    TarEntry e;
    while (KOS_TRY(reader->next(e))) {
        std::string p = KOS_TRY(normalize(e.path, tar_file));
        if (e.type == TarEntry::Type::File)
            files[p] = std::move(e.data);
        else if (e.type == TarEntry::Type::Symlink)
            links[p] = e.link_target;
    }
    // Names inside the archive, resolved through its symlinks (docker save
    // links repeated layers) without leaving it.
    auto lookup = [&](const std::string& name) -> Result<const std::vector<uint8_t>*> {
        std::string p = KOS_TRY(normalize(name, tar_file));
        for (int hop = 0; hop < 8; ++hop) {
            if (auto f = files.find(p); f != files.end())
                return &f->second;
            auto l = links.find(p);
            if (l == links.end())
                break;
            std::string target = l->second[0] == '/' ? l->second.substr(1)
                                                     : parent_of(p).substr(1) + "/" + l->second;
            p = KOS_TRY(normalize(target, tar_file));
        }
        return make_error(ENOENT, tar_file + ": " + name + " is missing from the archive");
    };
    const std::vector<uint8_t>* mbytes = KOS_TRY(lookup("manifest.json"));
    json manifest = KOS_TRY(parse_json(*mbytes, tar_file + ": manifest.json"));
    if (!manifest.is_array() || manifest.empty() || !manifest[0].is_object())
        return make_error(EINVAL, tar_file + ": manifest.json is not a non-empty array of images");
    const json& img = manifest[0];
    std::string config_name = str_field(img, "Config").value_or("");
    std::vector<std::string> layer_names = str_array(img, "Layers");
    if (config_name.empty() || layer_names.empty())
        return make_error(EINVAL, tar_file + ": manifest.json has no Config or Layers");
    if (layer_names.size() > o.max_layers)
        return make_error(E2BIG, tar_file + ": more than " + std::to_string(o.max_layers) + " layers (limit)");
    const std::vector<uint8_t>* cbytes = KOS_TRY(lookup(config_name));
    // The config is named by its digest ("<hex>.json" or blobs/sha256/<hex>).
    std::string cbase = base_of("/" + config_name);
    if (cbase.ends_with(".json"))
        cbase = cbase.substr(0, cbase.size() - 5);
    if (is_hex64(cbase) && to_hex(sha256(*cbytes)) != cbase)
        return make_error(EBADMSG, tar_file + ": config " + config_name + ": content does not match its digest; rejected");
    json config = KOS_TRY(parse_json(*cbytes, tar_file + ": " + config_name));
    std::vector<std::string> diff_ids;
    if (config.is_object() && config.contains("rootfs"))
        diff_ids = str_array(config["rootfs"], "diff_ids");
    if (diff_ids.size() != layer_names.size())
        return make_error(EINVAL, tar_file + ": config lists " + std::to_string(diff_ids.size()) +
                                      " layer digests (rootfs.diff_ids) for " + std::to_string(layer_names.size()) +
                                      " layers");
    // Every layer is checked against the config's diff_ids (the digest of
    // the uncompressed layer) before anything is applied.
    std::vector<std::vector<uint8_t>> layers;
    for (size_t i = 0; i < layer_names.size(); ++i) {
        const std::vector<uint8_t>* l = KOS_TRY(lookup(layer_names[i]));
        if ("sha256:" + to_hex(sha256(*l)) != diff_ids[i])
            return make_error(EBADMSG, tar_file + ": layer " + layer_names[i] + ": content does not match " +
                                           diff_ids[i].substr(0, 80) + " in the image config; rejected");
        layers.push_back(*l);
    }
    ImportResult result;
    result.layers = static_cast<uint32_t>(layers.size());
    Tree tree = KOS_TRY(apply_all(layers, o, result.notes));
    std::vector<std::string> tags = str_array(img, "RepoTags");
    std::string name = tags.empty() ? base_of("/" + tar_file) : tags[0];
    if (name.ends_with(".tar"))
        name = name.substr(0, name.size() - 4);
    KOS_TRY(write_bundle(tree, config, sanitize_name(name), tar_file, out_dir, result));
    return result;
}

} // namespace kos::pkg
