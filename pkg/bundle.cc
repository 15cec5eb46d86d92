#include "bundle.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sodium.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>

#include "bundle_format.h"
#include "kos/rootfs_image.h"
#include "kos/support/file.h"
#include "label_matcher.h"

namespace kos::pkg {
namespace rfs = kos::abi::rootfs;
namespace {

constexpr uint64_t kMaxPolicySize = 16 << 20;
constexpr uint64_t kMaxBundleSize = 16ull << 30;

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

int64_t now_or(int64_t now) { return now ? now : static_cast<int64_t>(::time(nullptr)); }

std::string format_time(int64_t t) {
    time_t tt = static_cast<time_t>(t);
    struct tm tm{};
    ::gmtime_r(&tt, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

// Opens `rel` beneath `dirfd` without following any symlink, so a bundle
// directory cannot point its policy sources outside itself.
Result<UniqueFd> open_beneath(int dirfd, const std::string& rel, uint64_t flags, const std::string& what) {
    struct open_how how{};
    how.flags = flags | O_CLOEXEC | O_NOCTTY;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    int fd = static_cast<int>(::syscall(SYS_openat2, dirfd, rel.c_str(), &how, sizeof how));
    if (fd < 0)
        return make_error(errno, what + ": " + errno_string(errno) +
                                     (errno == ELOOP || errno == EXDEV
                                          ? " (symlinks are not followed here)"
                                          : ""));
    return UniqueFd(fd);
}

Result<std::vector<uint8_t>> read_beneath(int dirfd, const std::string& rel, uint64_t max,
                                          const std::string& what) {
    UniqueFd fd = KOS_TRY(open_beneath(dirfd, rel, O_RDONLY, what));
    struct stat st{};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
        return make_error(EINVAL, what + ": not a regular file");
    return read_fd(fd.get(), what, max);
}

struct LoadedDir {
    BundleConfig config;
    std::string config_text;
    std::vector<PolicySource> sources;
    std::vector<uint8_t> compiled;
    std::vector<uint8_t> rootfs;
    RootfsBuildReport report;
};

Result<LoadedDir> load_dir(const std::string& dir, const PolicyCompiler& compiler,
                           const std::function<void(uint64_t, uint64_t)>& progress) {
    UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dfd)
        return make_error(errno, dir + ": " + errno_string(errno));
    LoadedDir d;
    std::string config_path = dir + "/" + kConfigFileName;
    auto text = read_beneath(dfd.get(), kConfigFileName, kMaxConfigBytes, config_path);
    if (!text) {
        if (text.error().code == ENOENT)
            return make_error(ENOENT, dir + ": no behavior config: " + kConfigFileName +
                                          " is missing (see docs/bundle-format.md)");
        return std::unexpected(text.error());
    }
    d.config_text.assign(text->begin(), text->end());
    d.config = KOS_TRY(parse_bundle_config(d.config_text, config_path));
    KOS_TRY(require_behavior_config(d.config, config_path));
    d.sources = KOS_TRY(read_policy_sources(dir, d.config));
    LabelMatcher matcher(d.config.labels);
    RootfsBuildOptions opts;
    opts.labeler = [&](const std::string& path, uint32_t) { return matcher.label_for(path); };
    opts.progress = progress;
    auto image = build_rootfs_image(dir + "/rootfs", opts, &d.report);
    if (!image)
        return std::unexpected(with_context(image.error(), dir + "/rootfs"));
    d.rootfs = std::move(*image);
    if (compiler)
        d.compiled = KOS_TRY(compiler(d.config, d.sources));
    return d;
}

// Every rootfs entry must carry a valid label (attack 12, for images that
// did not come from our builder).
Result<void> check_rootfs(std::span<const uint8_t> image, const std::string& what) {
    rfs::RootfsView view(image.data(), image.size());
    uint32_t bad = 0;
    if (rfs::Error e = view.validate(&bad); e != rfs::Error::None)
        return make_error(EINVAL, what + ": invalid rootfs image: " + rfs::error_string(e) +
                                      (bad != ~0u ? " (entry " + std::to_string(bad) + ")" : ""));
    for (uint32_t i = 0; i < view.count(); ++i) {
        const rfs::RootfsEntry& e = view.entry(i);
        std::string label(view.label(e), e.label_len);
        if (!valid_label(label))
            return make_error(ENOENT, what + ": " + std::string(view.path(e), e.path_len) +
                                          ": unlabeled file (no valid label in the rootfs index)");
    }
    return {};
}

Result<void> check_file_digests(std::span<const uint8_t> image, const std::string& what) {
    rfs::RootfsView view(image.data(), image.size());
    for (uint32_t i = 0; i < view.count(); ++i) {
        const rfs::RootfsEntry& e = view.entry(i);
        uint32_t type = e.mode & rfs::kTypeMask;
        Sha256 d{};
        if (type == rfs::kTypeFile)
            d = sha256({view.file_data(e), e.size});
        else if (type == rfs::kTypeSymlink)
            d = sha256({reinterpret_cast<const uint8_t*>(view.symlink_target(e)), e.size});
        else
            continue;
        if (std::memcmp(d.data(), e.digest, 32) != 0)
            return make_error(EBADMSG, what + ": rootfs file " + std::string(view.path(e), e.path_len) +
                                           ": content does not match its SHA-256 digest");
    }
    return {};
}

Result<std::vector<PublicKey>> load_keys(const TrustOptions& trust, std::vector<std::string>& revoked) {
    std::vector<PublicKey> keys = trust.keys;
    revoked = trust.revoked_key_ids;
    for (const std::string& f : trust.key_files) {
        std::string text = KOS_TRY(read_text_file(f, 4096));
        keys.push_back(KOS_TRY(parse_public_key(text, f)));
    }
    if (!trust.trust_dir.empty()) {
        DIR* d = ::opendir(trust.trust_dir.c_str());
        if (!d)
            return make_error(errno, trust.trust_dir + ": trust directory: " + errno_string(errno));
        std::vector<std::string> names;
        while (dirent* de = ::readdir(d))
            names.emplace_back(de->d_name);
        ::closedir(d);
        std::sort(names.begin(), names.end());
        for (const std::string& n : names) {
            std::string p = trust.trust_dir + "/" + n;
            if (n.size() > 4 && n.ends_with(".pub")) {
                std::string text = KOS_TRY(read_text_file(p, 4096));
                keys.push_back(KOS_TRY(parse_public_key(text, p)));
            } else if (n == "revoked") {
                std::string text = KOS_TRY(read_text_file(p, 1 << 20));
                size_t start = 0;
                while (start < text.size()) {
                    size_t nl = text.find('\n', start);
                    if (nl == std::string::npos)
                        nl = text.size();
                    std::string line = text.substr(start, nl - start);
                    if (!line.empty() && line[0] != '#')
                        revoked.push_back(line);
                    start = nl + 1;
                }
            }
        }
    }
    if (keys.empty())
        return make_error(ENOKEY, "no trusted public keys found (trust directory " + trust.trust_dir +
                                      " has no *.pub files)");
    return keys;
}

std::string state_file(const TrustOptions& trust, const std::string& name) {
    return trust.state_dir + "/" + name + ".version";
}

// Refuses a version older than the one this host already accepted.
Result<void> check_rollback(const TrustOptions& trust, const Manifest& m, const std::string& what) {
    if (trust.state_dir.empty())
        return {};
    if (!valid_version(m.version))
        return make_error(EINVAL, what + ": version \"" + m.version + "\" is not numeric, so rollback "
                                         "cannot be checked");
    std::string f = state_file(trust, m.name);
    auto seen = read_text_file(f, 256);
    if (!seen) {
        if (seen.error().code == ENOENT)
            return {};
        return std::unexpected(seen.error());
    }
    std::string v = *seen;
    while (!v.empty() && v.back() == '\n')
        v.pop_back();
    if (valid_version(v) && compare_versions(m.version, v) < 0)
        return make_error(ESTALE, what + ": rollback refused: version " + m.version + " of " + m.name +
                                      " is older than version " + v + ", already accepted on this host (" +
                                      f + ")");
    return {};
}

Result<void> record_version(const TrustOptions& trust, const Manifest& m) {
    if (trust.state_dir.empty())
        return {};
    std::string f = state_file(trust, m.name);
    auto seen = read_text_file(f, 256);
    if (seen) {
        std::string v = *seen;
        while (!v.empty() && v.back() == '\n')
            v.pop_back();
        if (valid_version(v) && compare_versions(m.version, v) <= 0)
            return {};
    }
    for (size_t slash = 1; (slash = trust.state_dir.find('/', slash)) != std::string::npos; ++slash)
        ::mkdir(trust.state_dir.substr(0, slash).c_str(), 0700);
    ::mkdir(trust.state_dir.c_str(), 0700);
    std::string line = m.version + "\n";
    return write_file_atomic(f, line.data(), line.size(), 0600);
}

Result<void> check_expiry(const TrustOptions& trust, const Manifest& m, const std::string& what) {
    if (m.expires != 0 && now_or(trust.now) >= m.expires)
        return make_error(EKEYEXPIRED, what + ": expired: the manifest of " + m.name + " version " +
                                           m.version + " expired at " + format_time(m.expires) +
                                           "; ask its publisher for a newer version");
    return {};
}

// Verifies a packed bundle held in `file` (already sealed) and fills `out`.
Result<void> verify_packed(std::span<const uint8_t> file, const TrustOptions& trust,
                           const std::string& what, RunnableBundle& out) {
    if (file.size() < kPackedHeaderSize)
        return make_error(EINVAL, what + ": not a kos bundle (smaller than its 4096-byte header)");
    PackedHeader h;
    std::memcpy(&h, file.data(), sizeof h);
    if (std::memcmp(h.magic, kPackedMagic, 8) != 0)
        return make_error(EINVAL, what + ": not a kos bundle (bad magic)");
    if (h.format_version != kPackedVersion || h.header_size != kPackedHeaderSize)
        return make_error(EINVAL, what + ": unsupported bundle format version " +
                                      std::to_string(h.format_version));
    if (h.file_size != file.size())
        return make_error(EINVAL, what + ": header: file size " + std::to_string(h.file_size) +
                                      " does not match the actual size " + std::to_string(file.size()) +
                                      " (truncated or trailing data)");
    for (uint64_t i = sizeof h; i < kPackedHeaderSize; ++i)
        if (file[i] != 0)
            return make_error(EINVAL, what + ": header: reserved byte at offset " + std::to_string(i) +
                                          " is not zero (modified header)");
    if (h.manifest_size == 0 || h.manifest_size > kMaxManifestSize || h.manifest_offset > file.size() ||
        h.manifest_size > file.size() - h.manifest_offset ||
        h.signature_offset != h.manifest_offset + h.manifest_size ||
        h.signature_size > kMaxSignatureSize || h.signature_offset + h.signature_size != file.size())
        return make_error(EINVAL, what + ": header: manifest or signature range is invalid");
    std::span<const uint8_t> mbytes = file.subspan(h.manifest_offset, h.manifest_size);
    if (sha256(mbytes) != std::to_array(h.manifest_sha256))
        return make_error(EBADMSG, what + ": manifest does not match its digest in the header "
                                          "(modified manifest)");
    std::string sig_text(reinterpret_cast<const char*>(file.data() + h.signature_offset), h.signature_size);

    // Signature first: nothing of an unauthenticated manifest is trusted.
    if (h.signature_size > 0) {
        out.signature.present = true;
        MinisignSignature sig = KOS_TRY(parse_signature(sig_text).transform_error(
            [&](Error e) { return with_context(std::move(e), what); }));
        out.signature.key_id = key_id_hex(sig.key_id);
        out.signature.trusted_comment = sig.trusted_comment;
    }
    if (trust.signature_required()) {
        if (h.signature_size == 0)
            return make_error(EKEYREJECTED, what + ": unsigned bundle, but trusted keys are configured "
                                                   "(sign it with kos pack --sign)");
        std::vector<std::string> revoked;
        std::vector<PublicKey> keys = KOS_TRY(load_keys(trust, revoked));
        MinisignSignature sig = KOS_TRY(verify_message(mbytes, sig_text, keys, revoked)
                                            .transform_error([&](Error e) {
                                                return with_context(std::move(e), what);
                                            }));
        out.signature.verified = true;
        for (const PublicKey& k : keys)
            if (k.key_id == sig.key_id)
                out.signature.key_origin = k.origin;
    }
    Manifest m = KOS_TRY(parse_manifest(mbytes).transform_error(
        [&](Error e) { return with_context(std::move(e), what); }));

    // Layout: sections back to back from the header to the manifest, in the
    // fixed order, gaps only before the page-aligned rootfs and all zero.
    uint64_t cursor = kPackedHeaderSize;
    int stage = -1; // then 0 config, 1 policy (repeatable), 2 compiled, 3 rootfs
    for (const ManifestSection& s : m.sections) {
        std::string sname = std::string("section ") + section_kind_name(s.kind) + " " + s.name;
        int st = s.kind == SectionKind::Config           ? 0
                 : s.kind == SectionKind::Policy         ? 1
                 : s.kind == SectionKind::CompiledPolicy ? 2
                                                         : 3;
        bool in_order = stage < 0 ? st == 0 : st > stage || (st == 1 && stage == 1);
        if (!in_order || (stage >= 0 && st == 0))
            return make_error(EINVAL, what + ": manifest: " + sname + " is out of order or repeated");
        stage = st;
        uint64_t expect = st == 3 ? align_up(cursor, kPackedAlign) : cursor;
        if (s.offset != expect || s.size > h.manifest_offset || s.offset > h.manifest_offset - s.size)
            return make_error(EINVAL, what + ": manifest: " + sname + " has an invalid offset or size");
        for (uint64_t i = cursor; i < s.offset; ++i)
            if (file[i] != 0)
                return make_error(EINVAL, what + ": padding byte at offset " + std::to_string(i) +
                                              " is not zero");
        cursor = s.offset + s.size;
    }
    if (stage != 3 || cursor != h.manifest_offset)
        return make_error(EINVAL, what + ": manifest: sections do not end with the rootfs image "
                                         "right before the manifest");
    for (const ManifestSection& s : m.sections) {
        std::span<const uint8_t> bytes = file.subspan(s.offset, s.size);
        if (sha256(bytes) != s.digest) {
            std::string msg = what + ": " + section_kind_name(s.kind) + " " + s.name +
                              ": SHA-256 does not match the manifest";
            if (s.kind == SectionKind::Rootfs) {
                // Name the file if the index is intact.
                rfs::RootfsView view(bytes.data(), bytes.size());
                if (view.validate() != rfs::Error::None)
                    msg += " (the rootfs index is damaged)";
                else if (auto r = check_file_digests(bytes, what); !r)
                    msg = r.error().message + " (rootfs SHA-256 does not match the manifest)";
                else
                    msg += " (the rootfs index or metadata was modified)";
            }
            return make_error(EBADMSG, msg);
        }
    }

    const ManifestSection* cs = m.find(SectionKind::Config);
    out.config_text.assign(reinterpret_cast<const char*>(file.data() + cs->offset), cs->size);
    out.config = KOS_TRY(parse_bundle_config(out.config_text, what + ":" + kConfigFileName));
    KOS_TRY(require_behavior_config(out.config, what + ":" + kConfigFileName));
    if (out.config.app.name != m.name || out.config.app.version != m.version ||
        out.config.policy.domain != m.domain)
        return make_error(EINVAL, what + ": manifest name/version/domain do not match bundle.toml");
    size_t pi = 0;
    for (const ManifestSection& s : m.sections) {
        if (s.kind == SectionKind::Policy) {
            if (pi >= out.config.policy.sources.size() || out.config.policy.sources[pi] != s.name)
                return make_error(EINVAL, what + ": policy section " + s.name +
                                              " is not the next [policy] source in bundle.toml");
            ++pi;
            out.policy_sources.push_back({s.name, {file.begin() + static_cast<ptrdiff_t>(s.offset),
                                                   file.begin() + static_cast<ptrdiff_t>(s.offset + s.size)}});
        } else if (s.kind == SectionKind::CompiledPolicy) {
            out.compiled_policy.assign(file.begin() + static_cast<ptrdiff_t>(s.offset),
                                       file.begin() + static_cast<ptrdiff_t>(s.offset + s.size));
        } else if (s.kind == SectionKind::Rootfs) {
            out.rootfs_offset = s.offset;
            out.rootfs = file.subspan(s.offset, s.size);
        }
    }
    if (pi != out.config.policy.sources.size())
        return make_error(EINVAL, what + ": [policy] source " + out.config.policy.sources[pi] +
                                      " has no section in the bundle");
    KOS_TRY(check_rootfs(out.rootfs, what));
    if (trust.check_file_digests)
        KOS_TRY(check_file_digests(out.rootfs, what));
    KOS_TRY(check_expiry(trust, m, what));
    if (out.signature.verified)
        KOS_TRY(check_rollback(trust, m, what));
    out.manifest = std::move(m);
    return {};
}

} // namespace

SealedMemory::~SealedMemory() {
    if (m_map)
        ::munmap(const_cast<uint8_t*>(m_map), m_size);
    if (m_fd >= 0)
        ::close(m_fd);
}

Result<std::shared_ptr<SealedMemory>> SealedMemory::copy_from_fd(int fd, uint64_t size,
                                                                 const std::string& what) {
    if (size == 0)
        return make_error(EINVAL, what + ": empty");
    std::shared_ptr<SealedMemory> m(new SealedMemory());
    m->m_fd = ::memfd_create("kos-bundle", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (m->m_fd < 0)
        return make_error(errno, "memfd_create: " + errno_string(errno));
    if (::ftruncate(m->m_fd, static_cast<off_t>(size)) != 0)
        return make_error(errno, what + ": cannot allocate " + std::to_string(size) + " bytes: " +
                                     errno_string(errno));
    void* w = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, m->m_fd, 0);
    if (w == MAP_FAILED)
        return make_error(errno, "mmap: " + errno_string(errno));
    uint64_t done = 0;
    int err = 0;
    while (done < size) {
        ssize_t n = ::pread(fd, static_cast<uint8_t*>(w) + done, std::min<uint64_t>(size - done, 8 << 20),
                            static_cast<off_t>(done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            err = n < 0 ? errno : EIO;
            break;
        }
        done += static_cast<uint64_t>(n);
    }
    ::munmap(w, size);
    if (err)
        return make_error(err, what + ": read failed" + (err == EIO ? " (file shrank while reading)" : ": " + errno_string(err)));
    // No writable mapping remains, so F_SEAL_WRITE succeeds; from here on
    // the bytes cannot change.
    if (::fcntl(m->m_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0)
        return make_error(errno, "sealing the bundle copy: " + errno_string(errno));
    void* r = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, m->m_fd, 0);
    if (r == MAP_FAILED)
        return make_error(errno, "mmap: " + errno_string(errno));
    m->m_map = static_cast<const uint8_t*>(r);
    m->m_size = size;
    return m;
}

Result<std::shared_ptr<SealedMemory>> SealedMemory::copy_from(std::span<const uint8_t> bytes) {
    int mfd = ::memfd_create("kos-src", MFD_CLOEXEC);
    if (mfd < 0)
        return make_error(errno, "memfd_create: " + errno_string(errno));
    UniqueFd src(mfd);
    size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = ::write(mfd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return make_error(errno, "memfd write: " + errno_string(errno));
        done += static_cast<size_t>(n);
    }
    return copy_from_fd(mfd, bytes.size(), "rootfs image");
}

Result<RunnableBundle> open_bundle_for_run(const std::string& path, const TrustOptions& trust) {
    KOS_TRY(init_crypto());
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0)
        return make_error(errno, path + ": " + errno_string(errno));
    RunnableBundle b;
    b.path = path;
    if (S_ISDIR(st.st_mode)) {
        if (trust.signature_required())
            return make_error(EKEYREJECTED, path + ": a bundle directory carries no signature, but "
                                                   "trusted keys are configured; pack and sign it "
                                                   "(kos pack --sign) and run the packed file");
        LoadedDir d = KOS_TRY(load_dir(path, trust.policy_compiler, {}));
        b.config = std::move(d.config);
        b.config_text = std::move(d.config_text);
        b.policy_sources = std::move(d.sources);
        b.compiled_policy = std::move(d.compiled);
        b.report = std::move(d.report);
        auto mem = KOS_TRY(SealedMemory::copy_from(d.rootfs));
        b.memory = mem;
        b.rootfs = mem->bytes();
        b.rootfs_offset = 0;
        KOS_TRY(check_rootfs(b.rootfs, path));
        b.manifest.name = b.config.app.name;
        b.manifest.version = b.config.app.version;
        b.manifest.domain = b.config.policy.domain;
        b.manifest.sections.push_back({SectionKind::Config, kConfigFileName, 0, b.config_text.size(),
                                       sha256({reinterpret_cast<const uint8_t*>(b.config_text.data()),
                                               b.config_text.size()})});
        for (const PolicySource& s : b.policy_sources)
            b.manifest.sections.push_back({SectionKind::Policy, s.name, 0, s.bytes.size(), sha256(s.bytes)});
        b.manifest.sections.push_back({SectionKind::Rootfs, "rootfs.img", 0, b.rootfs.size(), sha256(b.rootfs)});
        return b;
    }
    if (!S_ISREG(st.st_mode))
        return make_error(EINVAL, path + ": not a bundle directory or a packed bundle file");
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!fd)
        return make_error(errno, path + ": " + errno_string(errno));
    if (::fstat(fd.get(), &st) != 0)
        return make_error(errno, path + ": " + errno_string(errno));
    if (static_cast<uint64_t>(st.st_size) > kMaxBundleSize)
        return make_error(EFBIG, path + ": larger than " + std::to_string(kMaxBundleSize >> 30) + " GiB");
    auto mem = KOS_TRY(SealedMemory::copy_from_fd(fd.get(), static_cast<uint64_t>(st.st_size), path));
    b.packed = true;
    b.memory = mem;
    KOS_TRY(verify_packed(mem->bytes(), trust, path, b));
    if (!b.compiled_policy.empty() || !trust.policy_compiler) {
        // Compiled at pack time (and signed), or no compiler yet.
    } else {
        b.compiled_policy = KOS_TRY(trust.policy_compiler(b.config, b.policy_sources));
    }
    if (b.signature.verified)
        KOS_TRY(record_version(trust, b.manifest));
    return b;
}

TrustOptions default_trust_options() {
    TrustOptions t;
    auto env = [](const char* name) -> std::string {
        const char* v = ::getenv(name);
        return v ? v : "";
    };
    std::string config = xdg_base_dir("XDG_CONFIG_HOME", ".config");
    std::string state = xdg_base_dir("XDG_STATE_HOME", ".local/state");
    struct stat st{};
    if (!env("KOS_TRUST_DIR").empty())
        t.trust_dir = env("KOS_TRUST_DIR");
    else if (!config.empty() && ::stat((config + "/kos/trusted-keys").c_str(), &st) == 0 &&
             S_ISDIR(st.st_mode))
        t.trust_dir = config + "/kos/trusted-keys";
    if (!state.empty())
        t.state_dir = state + "/kos/versions";
    return t;
}

namespace {

// Where every piece of a packed bundle goes, and the signed manifest.
struct BundlePlan {
    PackedHeader header{};
    Manifest manifest;
    std::string manifest_text;
    std::string signature;
    // (offset, bytes) of every section, in file order.
    std::vector<std::pair<uint64_t, std::span<const uint8_t>>> pieces;
};

Result<BundlePlan> plan_bundle(const BundleParts& parts, const PackOptions& options) {
    KOS_TRY(init_crypto());
    BundleConfig cfg = KOS_TRY(parse_bundle_config(parts.config_text, kConfigFileName));
    KOS_TRY(require_behavior_config(cfg, kConfigFileName));
    if (!valid_bundle_name(cfg.app.name))
        return make_error(EINVAL, std::string(kConfigFileName) + ": [app] name \"" + cfg.app.name +
                                      "\" must be 1-128 of A-Z a-z 0-9 . _ - to be packed");
    if (!valid_version(cfg.app.version))
        return make_error(EINVAL, std::string(kConfigFileName) + ": [app] version \"" + cfg.app.version +
                                      "\" must be numeric (\"3\", \"1.2.0\") so rollback can be detected");
    BundlePlan p;
    Manifest& m = p.manifest;
    m.name = cfg.app.name;
    m.version = cfg.app.version;
    m.created = now_or(options.created);
    m.expires = options.expires;
    m.domain = cfg.policy.domain;
    uint64_t cursor = kPackedHeaderSize;
    auto add = [&](SectionKind kind, const std::string& name, std::span<const uint8_t> bytes) {
        if (kind == SectionKind::Rootfs)
            cursor = align_up(cursor, kPackedAlign);
        m.sections.push_back({kind, name, cursor, bytes.size(), sha256(bytes)});
        p.pieces.emplace_back(cursor, bytes);
        cursor += bytes.size();
    };
    add(SectionKind::Config, kConfigFileName,
        {reinterpret_cast<const uint8_t*>(parts.config_text.data()), parts.config_text.size()});
    for (const PolicySource& s : parts.policy_sources)
        add(SectionKind::Policy, s.name, s.bytes);
    if (!parts.compiled_policy.empty())
        add(SectionKind::CompiledPolicy, "policy.bin", parts.compiled_policy);
    add(SectionKind::Rootfs, "rootfs.img", parts.rootfs);
    p.manifest_text = serialize_manifest(m);
    if (options.key) {
        std::string comment = "kos bundle " + m.name + " version " + m.version + " expires " +
                              (m.expires ? format_time(m.expires) : std::string("never"));
        p.signature = sign_message(
            *options.key, {reinterpret_cast<const uint8_t*>(p.manifest_text.data()), p.manifest_text.size()},
            comment);
    }
    PackedHeader& h = p.header;
    std::memcpy(h.magic, kPackedMagic, 8);
    h.format_version = kPackedVersion;
    h.header_size = kPackedHeaderSize;
    h.manifest_offset = cursor;
    h.manifest_size = p.manifest_text.size();
    h.signature_offset = cursor + p.manifest_text.size();
    h.signature_size = p.signature.size();
    h.file_size = h.signature_offset + p.signature.size();
    Sha256 md = sha256({reinterpret_cast<const uint8_t*>(p.manifest_text.data()), p.manifest_text.size()});
    std::memcpy(h.manifest_sha256, md.data(), 32);
    p.pieces.emplace_back(h.manifest_offset,
                          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(p.manifest_text.data()),
                                                   p.manifest_text.size()));
    p.pieces.emplace_back(h.signature_offset,
                          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(p.signature.data()),
                                                   p.signature.size()));
    return p;
}

} // namespace

Result<std::vector<uint8_t>> assemble_bundle(const BundleParts& parts, const PackOptions& options,
                                             Manifest* manifest_out) {
    BundlePlan p = KOS_TRY(plan_bundle(parts, options));
    std::vector<uint8_t> out(p.header.file_size, 0);
    std::memcpy(out.data(), &p.header, sizeof p.header);
    for (auto& [off, bytes] : p.pieces)
        if (!bytes.empty())
            std::memcpy(out.data() + off, bytes.data(), bytes.size());
    if (manifest_out)
        *manifest_out = std::move(p.manifest);
    return out;
}

Result<PackResult> pack_bundle(const std::string& dir, const std::string& out, const PackOptions& options) {
    KOS_TRY(init_crypto());
    LoadedDir d = KOS_TRY(load_dir(dir, options.policy_compiler, options.progress));
    PackResult r;
    {
        rfs::RootfsView view(d.rootfs.data(), d.rootfs.size());
        r.entries = view.count();
    }
    BundleParts parts{std::move(d.config_text), std::move(d.sources), std::move(d.compiled),
                      std::move(d.rootfs)};
    BundlePlan p = KOS_TRY(plan_bundle(parts, options));
    // Written piece by piece into a temporary file (the gaps stay zero: the
    // file is created empty and sized first), synced, then renamed: readers
    // never see a partial bundle, and nothing appears on failure.
    std::string tmp = out + ".tmp." + std::to_string(::getpid());
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd)
        return make_error(errno, tmp + ": " + errno_string(errno));
    auto body = [&]() -> Result<void> {
        if (::ftruncate(fd.get(), static_cast<off_t>(p.header.file_size)) != 0)
            return make_error(errno, tmp + ": " + errno_string(errno));
        auto put = [&](uint64_t off, const void* data, size_t n) -> Result<void> {
            const auto* c = static_cast<const uint8_t*>(data);
            while (n > 0) {
                ssize_t w = ::pwrite(fd.get(), c, std::min<size_t>(n, 64 << 20), static_cast<off_t>(off));
                if (w < 0 && errno == EINTR)
                    continue;
                if (w <= 0)
                    return make_error(errno, tmp + ": write failed: " + errno_string(errno));
                c += w;
                off += static_cast<uint64_t>(w);
                n -= static_cast<size_t>(w);
            }
            return {};
        };
        KOS_TRY(put(0, &p.header, sizeof p.header));
        for (auto& [off, bytes] : p.pieces)
            KOS_TRY(put(off, bytes.data(), bytes.size()));
        if (::fsync(fd.get()) != 0 || ::rename(tmp.c_str(), out.c_str()) != 0)
            return make_error(errno, out + ": " + errno_string(errno));
        return {};
    };
    if (auto res = body(); !res) {
        ::unlink(tmp.c_str());
        return std::unexpected(res.error());
    }
    r.file_size = p.header.file_size;
    r.manifest = std::move(p.manifest);
    r.report = std::move(d.report);
    return r;
}

Result<std::pair<std::string, std::string>> read_manifest_and_signature(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd)
        return make_error(errno, path + ": " + errno_string(errno));
    PackedHeader h{};
    if (::pread(fd.get(), &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h) ||
        std::memcmp(h.magic, kPackedMagic, 8) != 0)
        return make_error(EINVAL, path + ": not a packed kos bundle");
    if (h.manifest_size > kMaxManifestSize || h.signature_size > kMaxSignatureSize)
        return make_error(EINVAL, path + ": header: manifest or signature too large");
    std::string m(h.manifest_size, '\0'), s(h.signature_size, '\0');
    if (::pread(fd.get(), m.data(), m.size(), static_cast<off_t>(h.manifest_offset)) !=
            static_cast<ssize_t>(m.size()) ||
        ::pread(fd.get(), s.data(), s.size(), static_cast<off_t>(h.signature_offset)) !=
            static_cast<ssize_t>(s.size()))
        return make_error(EINVAL, path + ": truncated");
    return std::pair{m, s};
}

Result<void> remove_tree(const std::string& path) {
    struct stat st{};
    if (::lstat(path.c_str(), &st) != 0)
        return errno == ENOENT ? Result<void>{} : make_error(errno, path + ": " + errno_string(errno));
    if (S_ISDIR(st.st_mode)) {
        ::chmod(path.c_str(), 0700);
        DIR* d = ::opendir(path.c_str());
        if (!d)
            return make_error(errno, path + ": " + errno_string(errno));
        std::vector<std::string> names;
        while (dirent* de = ::readdir(d))
            if (std::strcmp(de->d_name, ".") != 0 && std::strcmp(de->d_name, "..") != 0)
                names.emplace_back(de->d_name);
        ::closedir(d);
        for (const std::string& n : names)
            KOS_TRY(remove_tree(path + "/" + n));
        if (::rmdir(path.c_str()) != 0)
            return make_error(errno, path + ": " + errno_string(errno));
        return {};
    }
    if (::unlink(path.c_str()) != 0)
        return make_error(errno, path + ": " + errno_string(errno));
    return {};
}

namespace {

Result<void> write_beneath(int dirfd, const std::string& rel, std::span<const uint8_t> bytes, int mode) {
    // Parents of a policy source ("policy/app.kpol").
    size_t slash = 0;
    while ((slash = rel.find('/', slash)) != std::string::npos) {
        std::string parent = rel.substr(0, slash);
        if (::mkdirat(dirfd, parent.c_str(), 0755) != 0 && errno != EEXIST)
            return make_error(errno, parent + ": " + errno_string(errno));
        ++slash;
    }
    UniqueFd fd = KOS_TRY(open_beneath(dirfd, rel, O_WRONLY | O_CREAT | O_EXCL, rel));
    KOS_TRY(write_all(fd.get(), bytes.data(), bytes.size(), rel));
    ::fchmod(fd.get(), static_cast<mode_t>(mode));
    return {};
}

Result<void> extract_rootfs(std::span<const uint8_t> image, int rootfd, std::vector<std::string>* notes) {
    rfs::RootfsView view(image.data(), image.size());
    bool root = ::geteuid() == 0;
    auto fix = [&](int parent, const char* base, const rfs::RootfsEntry& e, const std::string& p) -> Result<void> {
        uint32_t type = e.mode & rfs::kTypeMask;
        mode_t perm = e.mode & 07777;
        if (perm & (S_ISUID | S_ISGID)) {
            perm &= ~static_cast<mode_t>(S_ISUID | S_ISGID);
            if (notes)
                notes->push_back(p + ": setuid/setgid bits dropped");
        }
        if (root && ::fchownat(parent, base, e.uid, e.gid, AT_SYMLINK_NOFOLLOW) != 0)
            return make_error(errno, p + ": chown: " + errno_string(errno));
        if (type != rfs::kTypeSymlink && ::fchmodat(parent, base, perm, 0) != 0)
            return make_error(errno, p + ": chmod: " + errno_string(errno));
        struct timespec ts[2] = {{e.mtime_sec, 0}, {e.mtime_sec, 0}};
        ::utimensat(parent, base, ts, AT_SYMLINK_NOFOLLOW);
        return {};
    };
    auto open_parent = [&](const std::string& p) -> Result<UniqueFd> {
        uint64_t plen = rfs::RootfsView::parent_len(p.data(), p.size());
        std::string parent = plen == 1 ? "." : p.substr(1, plen - 1);
        return open_beneath(rootfd, parent, O_RDONLY | O_DIRECTORY, parent);
    };
    for (uint32_t i = 1; i < view.count(); ++i) {
        const rfs::RootfsEntry& e = view.entry(i);
        std::string p(view.path(e), e.path_len);
        uint64_t blen = 0;
        std::string base(rfs::RootfsView::basename(p.data(), p.size(), &blen), blen);
        UniqueFd parent = KOS_TRY(open_parent(p));
        uint32_t type = e.mode & rfs::kTypeMask;
        if (type == rfs::kTypeDir) {
            if (::mkdirat(parent.get(), base.c_str(), 0700) != 0)
                return make_error(errno, p + ": " + errno_string(errno));
        } else if (type == rfs::kTypeSymlink) {
            std::string target(view.symlink_target(e), e.size);
            if (::symlinkat(target.c_str(), parent.get(), base.c_str()) != 0)
                return make_error(errno, p + ": " + errno_string(errno));
            KOS_TRY(fix(parent.get(), base.c_str(), e, p));
        } else {
            UniqueFd fd(::openat(parent.get(), base.c_str(),
                                 O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
            if (!fd)
                return make_error(errno, p + ": " + errno_string(errno));
            KOS_TRY(write_all(fd.get(), view.file_data(e), e.size, p));
            fd = UniqueFd();
            KOS_TRY(fix(parent.get(), base.c_str(), e, p));
        }
    }
    // Directories last, deepest first, so read-only ones could be filled.
    for (uint32_t i = view.count(); i-- > 0;) {
        const rfs::RootfsEntry& e = view.entry(i);
        if ((e.mode & rfs::kTypeMask) != rfs::kTypeDir)
            continue;
        std::string p(view.path(e), e.path_len);
        if (i == 0) {
            KOS_TRY(fix(rootfd, ".", e, p));
            continue;
        }
        uint64_t blen = 0;
        std::string base(rfs::RootfsView::basename(p.data(), p.size(), &blen), blen);
        UniqueFd parent = KOS_TRY(open_parent(p));
        KOS_TRY(fix(parent.get(), base.c_str(), e, p));
    }
    return {};
}

} // namespace

Result<void> unpack_bundle(const std::string& bundle, const std::string& out_dir,
                           const TrustOptions& trust, std::vector<std::string>* notes) {
    RunnableBundle b = KOS_TRY(open_bundle_for_run(bundle, trust));
    struct stat st{};
    if (::lstat(out_dir.c_str(), &st) == 0)
        return make_error(EEXIST, out_dir + ": already exists (unpack writes a new directory)");
    std::string tmp = out_dir + ".kos-unpack-" + std::to_string(::getpid());
    if (::mkdir(tmp.c_str(), 0755) != 0)
        return make_error(errno, tmp + ": " + errno_string(errno));
    auto body = [&]() -> Result<void> {
        UniqueFd dfd(::open(tmp.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!dfd)
            return make_error(errno, tmp + ": " + errno_string(errno));
        KOS_TRY(write_beneath(dfd.get(), kConfigFileName,
                              {reinterpret_cast<const uint8_t*>(b.config_text.data()), b.config_text.size()},
                              0644));
        for (const PolicySource& s : b.policy_sources)
            KOS_TRY(write_beneath(dfd.get(), s.name, s.bytes, 0644));
        if (::mkdirat(dfd.get(), "rootfs", 0700) != 0)
            return make_error(errno, tmp + "/rootfs: " + errno_string(errno));
        UniqueFd rfd = KOS_TRY(open_beneath(dfd.get(), "rootfs", O_RDONLY | O_DIRECTORY, "rootfs"));
        KOS_TRY(extract_rootfs(b.rootfs, rfd.get(), notes));
        if (::rename(tmp.c_str(), out_dir.c_str()) != 0)
            return make_error(errno, out_dir + ": " + errno_string(errno));
        return {};
    };
    Result<void> r = body();
    if (!r)
        (void)remove_tree(tmp);
    return r;
}

Result<std::vector<PolicySource>> read_policy_sources(const std::string& dir, const BundleConfig& config) {
    UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dfd)
        return make_error(errno, dir + ": " + errno_string(errno));
    std::vector<PolicySource> sources;
    for (const std::string& src : config.policy.sources) {
        std::vector<uint8_t> bytes =
            KOS_TRY(read_beneath(dfd.get(), src, kMaxPolicySize, dir + "/" + src + " ([policy] source)"));
        sources.push_back({src, std::move(bytes)});
    }
    return sources;
}

} // namespace kos::pkg
