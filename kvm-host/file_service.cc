#include "file_service.h"
#include "service_io.h"

#include <fcntl.h>
#include <liburing.h>
#include <linux/openat2.h>
#include <malloc.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "kos/security/engine.h"

namespace kos::vmm {

namespace file = abi::file;
namespace sec = security;

namespace {

// Newer than Debian 12's headers: IORING_OP_FTRUNCATE (Linux 6.9) and
// fchmodat2 (Linux 6.6).
constexpr uint8_t kOpFtruncate = 55;
constexpr long kSysFchmodat2 = 452;

constexpr unsigned kRingEntries = 8; // one operation at a time
constexpr uint64_t kResolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;

// The opcodes the service submits; the ring refuses every other one.
// FTRUNCATE joins them when the kernel has it (else ftruncate(2)).
constexpr uint8_t kRingOps[] = {
    IORING_OP_OPENAT2,   // every open: the guest's files, parents, O_PATH targets
    IORING_OP_READ,      // Read
    IORING_OP_WRITE,     // Write
    IORING_OP_STATX,     // Open, Stat, FStat, and the scratch quota's sizes
    IORING_OP_CLOSE,     // Close
    IORING_OP_FSYNC,     // Sync
    IORING_OP_MKDIRAT,   // Mkdir
    IORING_OP_UNLINKAT,  // Unlink
    IORING_OP_RENAMEAT,  // Rename
    IORING_OP_SYMLINKAT, // Symlink
    IORING_OP_LINKAT,    // Link
};

uint64_t now_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// Open flags a guest may ask for (O_CLOEXEC is the runtime's business and
// ignored; the kernel's own O_LARGEFILE value is accepted).
constexpr uint32_t kKernelLargefile = 0100000;
constexpr uint32_t kAllowedOpenFlags = O_ACCMODE | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_APPEND | O_NONBLOCK |
                                       O_DSYNC | O_SYNC | O_DIRECTORY | O_NOFOLLOW | O_NOATIME | O_CLOEXEC |
                                       kKernelLargefile;

// Permission bits and the sticky bit a guest may set (Open with O_CREAT,
// Mkdir, Chmod). Never set-user-ID or set-group-ID: a file the guest wrote
// must not become a set-ID program on the host.
constexpr uint32_t kModeMask = 01777;

bool open_writes(uint32_t flags) {
    return (flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC)) != 0;
}

// A path relative to a volume's root: "" (the root itself) or components
// separated by single '/', none empty, "." or "..", no NUL.
bool valid_relative_path(const char* p, uint32_t len) {
    if (len == 0)
        return true;
    if (len > file::kMaxFilePath)
        return false;
    uint32_t start = 0;
    for (uint32_t i = 0; i <= len; ++i) {
        if (i < len && p[i] == '\0')
            return false;
        if (i == len || p[i] == '/') {
            uint32_t n = i - start;
            if (n == 0 || (n == 1 && p[start] == '.') || (n == 2 && p[start] == '.' && p[start + 1] == '.'))
                return false;
            start = i + 1;
        }
    }
    return true;
}

void fill_stat(const struct statx& s, file::FileStat& out) {
    out = file::FileStat{};
    out.ino = s.stx_ino;
    out.size = s.stx_size;
    out.blocks = s.stx_blocks;
    auto ns = [](const statx_timestamp& t) {
        return static_cast<int64_t>(t.tv_sec) * 1000000000 + static_cast<int64_t>(t.tv_nsec);
    };
    out.atime_ns = ns(s.stx_atime);
    out.mtime_ns = ns(s.stx_mtime);
    out.ctime_ns = ns(s.stx_ctime);
    out.mode = s.stx_mode;
    out.nlink = s.stx_nlink;
    out.uid = s.stx_uid;
    out.gid = s.stx_gid;
    out.blksize = s.stx_blksize;
}

timespec to_timespec(int64_t t) {
    if (t == file::kTimeNow)
        return timespec{0, UTIME_NOW};
    if (t == file::kTimeOmit)
        return timespec{0, UTIME_OMIT};
    int64_t sec = t / 1000000000, nsec = t % 1000000000;
    if (nsec < 0) {
        nsec += 1000000000;
        --sec;
    }
    return timespec{sec, nsec};
}

Result<bool> create_ring(io_uring& ring) {
    // FTRUNCATE only if this kernel knows it (restricting to an unknown
    // opcode fails).
    // Asked once per process (a probe costs a ring of its own).
    static const bool ftruncate_op = [] {
        bool known = false;
        if (io_uring_probe* probe = ::io_uring_get_probe()) {
            known = probe->last_op >= kOpFtruncate && ::io_uring_opcode_supported(probe, kOpFtruncate);
            ::io_uring_free_probe(probe);
        }
        return known;
    }();
    std::vector<uint8_t> ops(std::begin(kRingOps), std::end(kRingOps));
    if (ftruncate_op)
        ops.push_back(kOpFtruncate);
    KOS_TRY(create_restricted_ring(ring, kRingEntries, 0, ops, "the file service"));
    return ftruncate_op;
}

} // namespace

struct OpenFile {
    int fd = -1;
    uint32_t volume = 0;
    uint32_t flags = 0; // the guest's open flags
    bool dir = false;
    uint64_t ino = 0; // scratch quota: an unlinked file's size counts until its last close
    uint32_t dev_major = 0, dev_minor = 0;
};

// A parent directory opened beneath a volume's root, and the entry's name.
struct Entry {
    UniqueFd parent;
    std::string last;
};

struct FileService::Impl {
    FileServiceOptions opts;
    std::vector<uint8_t> blob;
    std::vector<uint64_t> engine_state;
    sec::Engine engine;
    std::vector<uint32_t> labels; // per volume
    uint32_t file_class = sec::kNone, perm_read = sec::kNone, perm_write = sec::kNone;
    std::vector<int64_t> scratch_used; // per volume: apparent bytes of its regular files

    io_uring ring{};
    bool ring_ready = false;
    bool ring_ftruncate = false;
    std::thread io_thread;

    // One call at a time (handle() is the vCPU thread's; this keeps a
    // second caller from sharing the job slot and the staging buffer).
    std::mutex call_mu;
    // The handoff: one job at a time (the vCPU waits for each).
    std::mutex mu;
    std::condition_variable work_cv, done_cv;
    std::function<int64_t()> job;
    bool job_pending = false, job_done = false, stop = false;
    int64_t job_result = 0;
    std::vector<std::function<void()>> test_fns;

    // Open files: touched by the vCPU thread between jobs and by the I/O
    // thread during one (the handoff orders them).
    std::unordered_map<uint32_t, OpenFile> files;
    uint32_t next_id = 1;
    std::vector<uint8_t> stage = std::vector<uint8_t>(file::kMaxFileData);

    ~Impl();

    // ---- vCPU thread ----
    int64_t dispatch(file::FileCall& c, const NetGuestMemory& ram);
    int64_t on_io(std::function<int64_t()> fn);
    bool allowed(uint32_t subject, uint32_t volume, bool write);
    int64_t check_path_op(const file::FileCall& c, bool write);
    OpenFile* find(uint32_t id);

    // ---- I/O thread ----
    void io_loop();
    template <class Prep> int ring_op(Prep prep);
    int open_beneath(int dirfd, const std::string& path, uint64_t flags, uint64_t mode = 0);
    int open_parent(uint32_t volume, const std::string& path, Entry& out);
    int stat_fd(int fd, struct statx& st);
    int stat_path(uint32_t volume, const std::string& path, bool follow, struct statx& st);
    // The size a regular file stops taking when `e` goes: its size if this
    // is its last name and no open file refers to it, else 0.
    int64_t size_of_entry(const Entry& e);
    bool is_open(const struct statx& st) const;
    void account(uint32_t volume, int64_t delta);
    int64_t room(uint32_t volume) const;

    int64_t io_open(file::FileCall& c, uint32_t volume, std::string path);
    int64_t io_write(OpenFile f, int64_t offset, size_t len);
    int64_t io_truncate(OpenFile f, int64_t length);
    int64_t io_chmod(uint32_t volume, const std::string& path, bool follow, uint32_t mode);
    int64_t io_set_times(uint32_t volume, const std::string& path, bool follow, const timespec ts[2]);
};

// ---------------------------------------------------------------- setup

Result<std::unique_ptr<FileService>> FileService::start(FileServiceOptions options) {
    auto impl = std::make_unique<Impl>();
    impl->opts = std::move(options);
    impl->blob.assign(impl->opts.policy.begin(), impl->opts.policy.end());
    impl->opts.policy = {};
    auto& vols = impl->opts.volumes;
    if (vols.empty() || vols.size() > file::kMaxVolumes)
        return make_error(EINVAL, "the file service needs 1 to " + std::to_string(file::kMaxVolumes) + " volumes");
    bool labelled = false;
    for (const FileVolume& v : vols) {
        if (!v.root)
            return make_error(EINVAL, "internal error: volume " + v.guest_path + " has no host directory");
        if (!v.scratch && v.label.empty())
            return make_error(EINVAL, "volume " + v.guest_path + " has no label");
        labelled |= !v.scratch;
    }
    // Fail closed: a labelled volume is served only against the policy the
    // guest enforces.
    if (!impl->blob.empty() || labelled) {
        if (impl->blob.empty())
            return make_error(EINVAL, "volumes need the bundle's compiled policy (it decides what the program "
                                      "may do with each volume's label), and the bundle has none: add [policy] "
                                      "sources with `security DOMAIN -> LABEL file.{read, write}` rules");
        uint64_t need = sec::Engine::required_state_size(impl->blob.data(), impl->blob.size());
        impl->engine_state.assign(need / 8 + 8, 0);
        sec::LoadError le = impl->engine.load(impl->blob.data(), impl->blob.size(), impl->engine_state.data(),
                                              impl->engine_state.size() * 8);
        if (le != sec::LoadError::None)
            return make_error(EINVAL, std::string("the file service cannot load the bundle's compiled policy: ") +
                                          sec::describe(le) + " (volumes need the policy the guest enforces)");
        impl->file_class = impl->engine.find_class("file", 4);
        if (impl->file_class != sec::kNone) {
            impl->perm_read = impl->engine.find_perm(impl->file_class, "read", 4);
            impl->perm_write = impl->engine.find_perm(impl->file_class, "write", 5);
        }
    }
    for (const FileVolume& v : vols)
        impl->labels.push_back(v.label.empty() || !impl->engine.loaded()
                                   ? sec::kNone
                                   : impl->engine.find_label(v.label.data(), static_cast<uint32_t>(v.label.size())));
    impl->scratch_used.assign(vols.size(), 0);
    impl->ring_ftruncate = KOS_TRY(create_ring(impl->ring));
    impl->ring_ready = true;
    return std::unique_ptr<FileService>(new FileService(std::move(impl)));
}

FileService::FileService(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}

FileService::~FileService() {
    if (m_impl->io_thread.joinable()) {
        {
            std::lock_guard lock(m_impl->mu);
            m_impl->stop = true;
        }
        m_impl->work_cv.notify_all();
        m_impl->io_thread.join();
    }
}

FileService::Impl::~Impl() {
    for (auto& [id, f] : files)
        ::close(f.fd);
    if (ring_ready)
        ::io_uring_queue_exit(&ring);
}

Result<int> FileService::ring_result_for_test(uint8_t opcode) {
    io_uring ring{};
    KOS_TRY(create_ring(ring));
    return submit_one_and_exit(ring, opcode);
}

std::vector<FileService::VolumeAccess> FileService::volume_access() const {
    std::vector<VolumeAccess> out;
    for (const FileVolume& v : m_impl->opts.volumes)
        out.push_back({v.root.get(), v.writable || v.scratch});
    return out;
}

uint32_t FileService::max_host_fds() const {
    // The guest's open files, the volumes' roots, the ring, and at most
    // three short-lived descriptors of one call (two parents and a target).
    return file::kMaxOpenFiles + static_cast<uint32_t>(m_impl->opts.volumes.size()) + 4;
}

uint64_t FileService::scratch_used_for_test(size_t i) const {
    return i < m_impl->scratch_used.size() ? static_cast<uint64_t>(m_impl->scratch_used[i]) : 0;
}

void FileService::run_on_io_thread_for_test(std::function<void()> fn) {
    {
        std::lock_guard lock(m_impl->mu);
        m_impl->test_fns.push_back(std::move(fn));
    }
    m_impl->work_cv.notify_all();
}

Result<void> FileService::launch(std::function<Result<void>()> on_thread_start) {
    if (m_impl->io_thread.joinable())
        return make_error(EINVAL, "internal error: the file service's I/O thread was launched twice");
    m_impl->io_thread = KOS_TRY(launch_io_thread(std::move(on_thread_start), [this] { m_impl->io_loop(); }));
    return {};
}

// ---------------------------------------------------------------- the handoff

int64_t FileService::Impl::on_io(std::function<int64_t()> fn) {
    std::unique_lock lock(mu);
    if (!io_thread.joinable() || stop)
        return -EIO;
    job = std::move(fn);
    job_pending = true;
    job_done = false;
    work_cv.notify_all();
    done_cv.wait(lock, [&] { return job_done; });
    return job_result;
}

void FileService::Impl::io_loop() {
    std::unique_lock lock(mu);
    while (true) {
        work_cv.wait(lock, [&] { return stop || job_pending || !test_fns.empty(); });
        if (!test_fns.empty()) {
            auto fns = std::move(test_fns);
            test_fns.clear();
            lock.unlock();
            for (auto& fn : fns)
                fn();
            lock.lock();
        }
        if (job_pending) {
            auto fn = std::move(job);
            job = nullptr;
            job_pending = false;
            lock.unlock();
            int64_t r = fn();
            lock.lock();
            job_result = r;
            job_done = true;
            done_cv.notify_all();
        }
        if (stop)
            break;
    }
}

// ---------------------------------------------------------------- vCPU side

int64_t FileService::handle(file::FileCall& call, NetGuestMemory ram) {
    std::lock_guard lock(m_impl->call_mu);
    return m_impl->dispatch(call, ram);
}

OpenFile* FileService::Impl::find(uint32_t id) {
    auto it = files.find(id);
    return it != files.end() ? &it->second : nullptr;
}

// `security <subject> -> <volume label> file.read|write`, the question the
// guest kernel asked, of the same policy. A label or class the policy does
// not know is denied by the engine. Scratch volumes have no label to ask
// about; one with a label is the private /tmp of that label's processes
// only (the guest kernel picks it by the caller's label; checked again).
bool FileService::Impl::allowed(uint32_t subject, uint32_t volume, bool write) {
    if (opts.volumes[volume].scratch)
        return opts.volumes[volume].label.empty() || (labels[volume] != sec::kNone && labels[volume] == subject);
    sec::Request r{sec::Kind::Security, subject, labels[volume], file_class, write ? perm_write : perm_read,
                   nullptr, 0, now_ns()};
    sec::Verdict v = engine.decide(r);
    if (!v.allow && v.audit && opts.audit) {
        sec::AuditRecord rec{};
        if (engine.make_audit_record(r, v, rec))
            opts.audit(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&rec), sizeof rec));
    }
    return v.allow;
}

// The checks of an operation on a volume path: the volume index, the path,
// the policy, and read-only volumes.
int64_t FileService::Impl::check_path_op(const file::FileCall& c, bool write) {
    if (c.volume >= opts.volumes.size())
        return -EINVAL;
    if (c.path_len > file::kMaxFilePath || !valid_relative_path(c.path, c.path_len))
        return -EINVAL;
    if (!allowed(c.subject, c.volume, write))
        return -EACCES;
    const FileVolume& v = opts.volumes[c.volume];
    if (write && !v.writable && !v.scratch)
        return -EROFS;
    return 0;
}

namespace {

// The guest segments of a call: each inside RAM (`to_guest`: the VMM
// writes there) or readable (RAM or the read-only image slot), the total
// at most kMaxFileData.
struct Segments {
    const file::FileCall& c;
    uint64_t total = 0;

    int64_t validate(const NetGuestMemory& ram, bool to_guest) {
        if (c.segment_count > file::kMaxFileSegments)
            return -EINVAL;
        for (uint32_t i = 0; i < c.segment_count; ++i) {
            const file::FileSegment& s = c.segments[i];
            if (s.len > file::kMaxFileData || total + s.len > file::kMaxFileData)
                return -EINVAL;
            if (to_guest ? !ram.contains(s.addr, s.len) : !ram.readable(s.addr, s.len))
                return -EFAULT;
            total += s.len;
        }
        return 0;
    }
    void copy_out(const NetGuestMemory& ram, const uint8_t* src, uint64_t n) const {
        for (uint32_t i = 0; i < c.segment_count && n; ++i) {
            uint64_t k = std::min(n, c.segments[i].len);
            std::memcpy(ram.base + c.segments[i].addr, src, k);
            src += k;
            n -= k;
        }
    }
    void copy_in(const NetGuestMemory& ram, uint8_t* dst) const {
        for (uint32_t i = 0; i < c.segment_count; ++i) {
            std::memcpy(dst, ram.readable(c.segments[i].addr, c.segments[i].len), c.segments[i].len);
            dst += c.segments[i].len;
        }
    }
};

std::string path_of(const char* p, uint32_t len) { return std::string(p, len); }

} // namespace

int64_t FileService::Impl::dispatch(file::FileCall& c, const NetGuestMemory& ram) {
    auto op = static_cast<file::FileOp>(c.op);
    switch (op) {
    case file::FileOp::Open: {
        if (c.flags & ~kAllowedOpenFlags)
            return (c.flags & (O_TMPFILE & ~O_DIRECTORY)) ? -EOPNOTSUPP : -EINVAL;
        if ((c.flags & O_ACCMODE) == O_ACCMODE)
            return -EINVAL;
        if (int64_t r = check_path_op(c, open_writes(c.flags)); r < 0)
            return r;
        if (files.size() >= file::kMaxOpenFiles)
            return -ENFILE;
        return on_io([&, path = path_of(c.path, c.path_len)] { return io_open(c, c.volume, path); });
    }
    case file::FileOp::Stat: {
        if (c.arg & ~file::kNoFollow)
            return -EINVAL;
        if (int64_t r = check_path_op(c, false); r < 0)
            return r;
        bool follow = !(c.arg & file::kNoFollow);
        return on_io([&, path = path_of(c.path, c.path_len)]() -> int64_t {
            struct statx st{};
            int r = stat_path(c.volume, path, follow, st);
            if (r < 0)
                return r;
            fill_stat(st, c.stat);
            return 0;
        });
    }
    case file::FileOp::ReadLink: {
        if (int64_t r = check_path_op(c, false); r < 0)
            return r;
        Segments seg{c};
        if (int64_t r = seg.validate(ram, true); r < 0)
            return r;
        if (c.path_len == 0)
            return -EINVAL; // the root is a directory
        int64_t n = on_io([&, path = path_of(c.path, c.path_len)]() -> int64_t {
            Entry e;
            if (int r = open_parent(c.volume, path, e); r < 0)
                return r;
            long k = ::syscall(SYS_readlinkat, e.parent.get(), e.last.c_str(), stage.data(), seg.total);
            return k < 0 ? -errno : k;
        });
        if (n > 0)
            seg.copy_out(ram, stage.data(), static_cast<uint64_t>(n));
        return n;
    }
    case file::FileOp::Mkdir:
    case file::FileOp::Symlink: {
        if (int64_t r = check_path_op(c, true); r < 0)
            return r;
        std::string target;
        if (op == file::FileOp::Symlink) {
            // The target is text, never resolved by the service.
            if (c.path2_len == 0 || c.path2_len > file::kMaxFilePath ||
                std::memchr(c.path2, 0, c.path2_len) != nullptr)
                return c.path2_len == 0 ? -ENOENT : -EINVAL;
            target = path_of(c.path2, c.path2_len);
        }
        if (c.path_len == 0)
            return -EEXIST; // the root exists
        uint32_t mode = c.mode & kModeMask;
        return on_io([&, path = path_of(c.path, c.path_len), target = std::move(target)] {
            Entry e;
            if (int r = open_parent(c.volume, path, e); r < 0)
                return int64_t{r};
            return int64_t{ring_op([&](io_uring_sqe* s) {
                if (op == file::FileOp::Mkdir)
                    ::io_uring_prep_mkdirat(s, e.parent.get(), e.last.c_str(), mode);
                else
                    ::io_uring_prep_symlinkat(s, target.c_str(), e.parent.get(), e.last.c_str());
            })};
        });
    }
    case file::FileOp::Unlink: {
        if (c.arg & ~file::kRemoveDir)
            return -EINVAL;
        if (int64_t r = check_path_op(c, true); r < 0)
            return r;
        if (c.path_len == 0)
            return -EBUSY; // the volume's root
        bool rmdir = c.arg & file::kRemoveDir;
        return on_io([&, path = path_of(c.path, c.path_len)]() -> int64_t {
            Entry e;
            if (int r = open_parent(c.volume, path, e); r < 0)
                return r;
            int64_t freed = rmdir ? 0 : size_of_entry(e);
            int r = ring_op([&](io_uring_sqe* s) {
                ::io_uring_prep_unlinkat(s, e.parent.get(), e.last.c_str(), rmdir ? AT_REMOVEDIR : 0);
            });
            if (r == 0)
                account(c.volume, -freed);
            return r;
        });
    }
    case file::FileOp::Rename:
    case file::FileOp::Link: {
        if (int64_t r = check_path_op(c, true); r < 0)
            return r;
        if (c.path2_len > file::kMaxFilePath || !valid_relative_path(c.path2, c.path2_len))
            return -EINVAL;
        if (c.path_len == 0 || c.path2_len == 0)
            return op == file::FileOp::Rename ? -EBUSY : (c.path_len == 0 ? -EPERM : -EEXIST);
        return on_io([&, from = path_of(c.path, c.path_len), to = path_of(c.path2, c.path2_len)]() -> int64_t {
            Entry a, b;
            if (int r = open_parent(c.volume, from, a); r < 0)
                return r;
            if (int r = open_parent(c.volume, to, b); r < 0)
                return r;
            int64_t freed = 0;
            if (op == file::FileOp::Rename) {
                // The file a rename replaces is gone (unless it is the same).
                struct statx sa{}, sb{};
                bool same = ring_op([&](io_uring_sqe* s) {
                                ::io_uring_prep_statx(s, a.parent.get(), a.last.c_str(), AT_SYMLINK_NOFOLLOW,
                                                      STATX_INO, &sa);
                            }) == 0 &&
                            ring_op([&](io_uring_sqe* s) {
                                ::io_uring_prep_statx(s, b.parent.get(), b.last.c_str(), AT_SYMLINK_NOFOLLOW,
                                                      STATX_INO, &sb);
                            }) == 0 &&
                            sa.stx_ino == sb.stx_ino && sa.stx_dev_major == sb.stx_dev_major &&
                            sa.stx_dev_minor == sb.stx_dev_minor;
                if (!same)
                    freed = size_of_entry(b);
            }
            int r = ring_op([&](io_uring_sqe* s) {
                if (op == file::FileOp::Rename)
                    ::io_uring_prep_renameat(s, a.parent.get(), a.last.c_str(), b.parent.get(), b.last.c_str(), 0);
                else
                    ::io_uring_prep_linkat(s, a.parent.get(), a.last.c_str(), b.parent.get(), b.last.c_str(), 0);
            });
            if (r == 0)
                account(c.volume, -freed);
            return r;
        });
    }
    case file::FileOp::Chmod:
    case file::FileOp::SetTimes: {
        bool is_chmod = op == file::FileOp::Chmod;
        if (c.arg & ~file::kNoFollow)
            return -EINVAL;
        timespec ts[2] = {};
        if (!is_chmod) {
            ts[0] = to_timespec(c.times[0]);
            ts[1] = to_timespec(c.times[1]);
        }
        uint32_t mode = c.mode & kModeMask;
        if (c.path_len == 0) { // on an open file
            OpenFile* f = find(c.file);
            if (!f)
                return -EBADF;
            if (!allowed(c.subject, f->volume, true))
                return -EACCES;
            if (!opts.volumes[f->volume].writable && !opts.volumes[f->volume].scratch)
                return -EROFS;
            int fd = f->fd;
            return on_io([&, fd]() -> int64_t {
                long r = is_chmod ? ::fchmod(fd, mode) : ::syscall(SYS_utimensat, fd, nullptr, ts, 0);
                return r < 0 ? -errno : 0;
            });
        }
        if (int64_t r = check_path_op(c, true); r < 0)
            return r;
        bool follow = !(c.arg & file::kNoFollow);
        return on_io([&, path = path_of(c.path, c.path_len)] {
            return is_chmod ? io_chmod(c.volume, path, follow, mode) : io_set_times(c.volume, path, follow, ts);
        });
    }
    default:
        break;
    }

    // Operations on an open file.
    if (c.op < static_cast<uint32_t>(file::FileOp::Open) || c.op > static_cast<uint32_t>(file::FileOp::Link))
        return -EINVAL;
    OpenFile* fp = find(c.file);
    if (!fp)
        return -EBADF;
    OpenFile f = *fp;
    uint32_t acc = f.flags & O_ACCMODE;
    switch (op) {
    case file::FileOp::Close:
        files.erase(c.file);
        return on_io([&]() -> int64_t {
            // The last close of an unlinked scratch file frees its size.
            struct statx st{};
            int64_t freed = opts.volumes[f.volume].scratch && stat_fd(f.fd, st) == 0 && S_ISREG(st.stx_mode) &&
                                    st.stx_nlink == 0 && !is_open(st)
                                ? static_cast<int64_t>(st.stx_size)
                                : 0;
            account(f.volume, -freed);
            return ring_op([&](io_uring_sqe* s) { ::io_uring_prep_close(s, f.fd); });
        });
    case file::FileOp::FStat:
        return on_io([&]() -> int64_t {
            struct statx st{};
            int r = stat_fd(f.fd, st);
            if (r < 0)
                return r;
            fill_stat(st, c.stat);
            return 0;
        });
    case file::FileOp::Sync:
        return on_io([&] { return int64_t{ring_op([&](io_uring_sqe* s) { ::io_uring_prep_fsync(s, f.fd, 0); })}; });
    case file::FileOp::Seek:
        if (c.arg > SEEK_END)
            return -EINVAL;
        return on_io([&]() -> int64_t {
            off_t r = ::lseek(f.fd, c.offset, static_cast<int>(c.arg));
            return r < 0 ? -errno : r;
        });
    case file::FileOp::Read:
    case file::FileOp::ReadDir: {
        if (op == file::FileOp::Read && acc == O_WRONLY)
            return -EBADF;
        if (op == file::FileOp::Read && c.offset < 0 && c.offset != file::kAtPosition)
            return -EINVAL;
        Segments seg{c};
        if (int64_t r = seg.validate(ram, true); r < 0)
            return r;
        int64_t n = on_io([&]() -> int64_t {
            if (op == file::FileOp::ReadDir) {
                long k = ::syscall(SYS_getdents64, f.fd, stage.data(), seg.total);
                return k < 0 ? -errno : k;
            }
            return ring_op([&](io_uring_sqe* s) {
                ::io_uring_prep_read(s, f.fd, stage.data(), static_cast<unsigned>(seg.total),
                                     static_cast<uint64_t>(c.offset));
            });
        });
        if (n > 0)
            seg.copy_out(ram, stage.data(), static_cast<uint64_t>(std::min<int64_t>(n, static_cast<int64_t>(seg.total))));
        return n;
    }
    case file::FileOp::Write: {
        if (acc == O_RDONLY)
            return -EBADF;
        if (c.offset < 0 && c.offset != file::kAtPosition)
            return -EINVAL;
        Segments seg{c};
        if (int64_t r = seg.validate(ram, false); r < 0)
            return r;
        if (c.offset >= 0 && static_cast<uint64_t>(c.offset) > static_cast<uint64_t>(INT64_MAX) - seg.total)
            return -EFBIG;
        seg.copy_in(ram, stage.data());
        return on_io([&] { return io_write(f, c.offset, seg.total); });
    }
    case file::FileOp::Truncate:
        if (c.offset < 0)
            return -EINVAL;
        if (!allowed(c.subject, f.volume, true))
            return -EACCES;
        if (!opts.volumes[f.volume].writable && !opts.volumes[f.volume].scratch)
            return -EROFS;
        return on_io([&] { return io_truncate(f, c.offset); });
    default:
        return -EINVAL;
    }
}

// ---------------------------------------------------------------- I/O thread

template <class Prep> int FileService::Impl::ring_op(Prep prep) {
    io_uring_sqe* e = ::io_uring_get_sqe(&ring);
    if (!e)
        return -EBUSY; // cannot happen: one operation at a time
    prep(e);
    int rc = ::io_uring_submit(&ring);
    if (rc < 0)
        return rc;
    io_uring_cqe* cqe = nullptr;
    do
        rc = ::io_uring_wait_cqe(&ring, &cqe);
    while (rc == -EINTR);
    if (rc < 0)
        return rc;
    int res = cqe->res;
    ::io_uring_cqe_seen(&ring, cqe);
    return res;
}

// openat2 beneath `dirfd`: no "..", absolute or symlinked way out of the
// volume (EXDEV from the kernel is an escape attempt: EACCES), no magic
// links.
int FileService::Impl::open_beneath(int dirfd, const std::string& path, uint64_t flags, uint64_t mode) {
    open_how how{};
    how.flags = flags | O_CLOEXEC;
    how.mode = mode;
    how.resolve = kResolve;
    const char* p = path.empty() ? "." : path.c_str();
    int r = ring_op([&](io_uring_sqe* s) { ::io_uring_prep_openat2(s, dirfd, p, &how); });
    return r == -EXDEV ? -EACCES : r;
}

// The parent of a non-empty `path`, opened beneath the volume's root; the
// *at operations then act on `out.last` relative to it, so no symlink in
// the path is followed by anything but openat2.
int FileService::Impl::open_parent(uint32_t volume, const std::string& path, Entry& out) {
    size_t slash = path.rfind('/');
    std::string parent = slash == std::string::npos ? std::string() : path.substr(0, slash);
    out.last = slash == std::string::npos ? path : path.substr(slash + 1);
    int fd = open_beneath(opts.volumes[volume].root.get(), parent, O_PATH | O_DIRECTORY);
    if (fd < 0)
        return fd;
    out.parent = UniqueFd(fd);
    return 0;
}

int FileService::Impl::stat_fd(int fd, struct statx& st) {
    return ring_op([&](io_uring_sqe* s) { ::io_uring_prep_statx(s, fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &st); });
}

int FileService::Impl::stat_path(uint32_t volume, const std::string& path, bool follow, struct statx& st) {
    int root = opts.volumes[volume].root.get();
    if (path.empty())
        return stat_fd(root, st);
    if (follow) {
        int fd = open_beneath(root, path, O_PATH);
        if (fd < 0)
            return fd;
        UniqueFd hold(fd);
        return stat_fd(fd, st);
    }
    Entry e;
    if (int r = open_parent(volume, path, e); r < 0)
        return r;
    return ring_op([&](io_uring_sqe* s) {
        ::io_uring_prep_statx(s, e.parent.get(), e.last.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &st);
    });
}

int64_t FileService::Impl::size_of_entry(const Entry& e) {
    struct statx st{};
    int r = ring_op([&](io_uring_sqe* s) {
        ::io_uring_prep_statx(s, e.parent.get(), e.last.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &st);
    });
    if (r < 0 || !S_ISREG(st.stx_mode) || st.stx_nlink != 1 || is_open(st))
        return 0;
    return static_cast<int64_t>(st.stx_size);
}

bool FileService::Impl::is_open(const struct statx& st) const {
    for (const auto& [id, f] : files)
        if (f.ino == st.stx_ino && f.dev_major == st.stx_dev_major && f.dev_minor == st.stx_dev_minor)
            return true;
    return false;
}

// The scratch quota counts apparent sizes (stx_size) of the regular files
// the volume holds: those with a name, and those unlinked but still open.
void FileService::Impl::account(uint32_t volume, int64_t delta) {
    if (!opts.volumes[volume].scratch)
        return;
    scratch_used[volume] = std::max<int64_t>(0, scratch_used[volume] + delta);
}

int64_t FileService::Impl::room(uint32_t volume) const {
    const FileVolume& v = opts.volumes[volume];
    if (!v.scratch || v.quota_bytes == 0)
        return INT64_MAX;
    auto quota = static_cast<int64_t>(std::min<uint64_t>(v.quota_bytes, INT64_MAX));
    return std::max<int64_t>(0, quota - scratch_used[volume]);
}

int64_t FileService::Impl::io_open(file::FileCall& c, uint32_t volume, std::string path) {
    const FileVolume& v = opts.volumes[volume];
    // The host descriptor is non-blocking until its type is known: a FIFO
    // or device must not block the service's only thread.
    uint64_t flags = (c.flags & ~(O_CLOEXEC | kKernelLargefile)) | O_NOCTTY | O_NONBLOCK;
    uint64_t mode = (c.flags & O_CREAT) ? (c.mode & kModeMask) : 0;
    // Scratch: the size a truncating open throws away.
    int64_t truncated = 0;
    uint64_t truncated_ino = 0;
    if (v.scratch && (c.flags & O_TRUNC)) {
        struct statx st{};
        if (stat_path(volume, path, !(c.flags & O_NOFOLLOW), st) == 0 && S_ISREG(st.stx_mode)) {
            truncated = static_cast<int64_t>(st.stx_size);
            truncated_ino = st.stx_ino;
        }
    }
    int fd = open_beneath(v.root.get(), path, flags, mode);
    if (fd < 0)
        return fd;
    UniqueFd hold(fd);
    struct statx st{};
    if (int r = stat_fd(fd, st); r < 0)
        return r;
    // Regular files and directories only: no FIFO, socket or device of the
    // host is reachable through a volume.
    if (!S_ISREG(st.stx_mode) && !S_ISDIR(st.stx_mode))
        return -EACCES;
    // O_NONBLOCK means nothing for them, and io_uring would answer EAGAIN
    // instead of waiting for the disk.
    if (::fcntl(fd, F_SETFL, static_cast<int>(flags & (O_APPEND | O_NOATIME))) != 0)
        return -errno;
    if (truncated && st.stx_ino == truncated_ino)
        account(volume, -truncated);
    while (next_id == 0 || files.contains(next_id))
        ++next_id;
    uint32_t id = next_id++;
    files.emplace(id, OpenFile{hold.release(), volume, c.flags, S_ISDIR(st.stx_mode), st.stx_ino,
                               st.stx_dev_major, st.stx_dev_minor});
    c.file = id;
    fill_stat(st, c.stat);
    return 0;
}

int64_t FileService::Impl::io_write(OpenFile f, int64_t offset, size_t len) {
    const FileVolume& v = opts.volumes[f.volume];
    bool counted = v.scratch;
    int64_t before = 0;
    if (counted) {
        struct statx st{};
        if (int r = stat_fd(f.fd, st); r < 0)
            return r;
        before = static_cast<int64_t>(st.stx_size);
        int64_t start = offset;
        if (f.flags & O_APPEND) {
            start = before;
        } else if (offset == file::kAtPosition) {
            start = ::lseek(f.fd, 0, SEEK_CUR);
            if (start < 0)
                return -errno;
        }
        int64_t end = start + static_cast<int64_t>(len);
        if (end > before && end - before > room(f.volume))
            return -ENOSPC;
    }
    int n = ring_op([&](io_uring_sqe* s) {
        ::io_uring_prep_write(s, f.fd, stage.data(), static_cast<unsigned>(len), static_cast<uint64_t>(offset));
    });
    if (counted && n > 0) {
        struct statx st{};
        if (stat_fd(f.fd, st) == 0)
            account(f.volume, static_cast<int64_t>(st.stx_size) - before);
    }
    return n;
}

int64_t FileService::Impl::io_truncate(OpenFile f, int64_t length) {
    bool counted = opts.volumes[f.volume].scratch;
    int64_t before = 0;
    if (counted) {
        struct statx st{};
        if (int r = stat_fd(f.fd, st); r < 0)
            return r;
        before = static_cast<int64_t>(st.stx_size);
        if (length > before && length - before > room(f.volume))
            return -ENOSPC;
    }
    int r;
    if (ring_ftruncate) {
        r = ring_op([&](io_uring_sqe* s) {
            ::io_uring_prep_rw(kOpFtruncate, s, f.fd, nullptr, 0, static_cast<uint64_t>(length));
        });
    } else {
        r = ::ftruncate(f.fd, length) == 0 ? 0 : -errno;
    }
    if (counted && r == 0)
        account(f.volume, length - before);
    return r;
}

int64_t FileService::Impl::io_chmod(uint32_t volume, const std::string& path, bool follow, uint32_t mode) {
    int root = opts.volumes[volume].root.get();
    if (follow) {
        int fd = open_beneath(root, path, O_PATH);
        if (fd < 0)
            return fd;
        UniqueFd hold(fd);
        if (::syscall(kSysFchmodat2, fd, "", mode, AT_EMPTY_PATH) == 0)
            return 0;
        if (errno != ENOSYS)
            return -errno;
    } else {
        Entry e;
        if (int r = open_parent(volume, path, e); r < 0)
            return r;
        if (::syscall(kSysFchmodat2, e.parent.get(), e.last.c_str(), mode, AT_SYMLINK_NOFOLLOW) == 0)
            return 0;
        if (errno != ENOSYS)
            return -errno;
    }
    // Kernels before 6.6 (no fchmodat2): fchmod on the file opened for
    // reading; a symlink's own mode cannot be changed.
    int fd = open_beneath(root, path, O_RDONLY | O_NONBLOCK | O_NOCTTY | (follow ? 0 : O_NOFOLLOW));
    if (fd < 0)
        return fd == -ELOOP && !follow ? -EOPNOTSUPP : fd;
    UniqueFd hold(fd);
    return ::fchmod(fd, mode) == 0 ? 0 : -errno;
}

int64_t FileService::Impl::io_set_times(uint32_t volume, const std::string& path, bool follow,
                                        const timespec ts[2]) {
    if (follow) {
        int fd = open_beneath(opts.volumes[volume].root.get(), path, O_PATH);
        if (fd < 0)
            return fd;
        UniqueFd hold(fd);
        return ::syscall(SYS_utimensat, fd, "", ts, AT_EMPTY_PATH) == 0 ? 0 : -errno;
    }
    Entry e;
    if (int r = open_parent(volume, path, e); r < 0)
        return r;
    return ::syscall(SYS_utimensat, e.parent.get(), e.last.c_str(), ts, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}

} // namespace kos::vmm
