#include "volume.h"

#include "kos/base/string.h"
#include "kos/boot.h"
#include "kos/file.h"
#include "kos/idl/pipe.h"
#include "kos/idl/vfs.h"
#include "server_channel.h"

namespace kos::rt {
namespace {

namespace fsabi = abi::file;
using fsabi::FileCall;
using fsabi::FileOp;

const fsabi::VolumeTable* g_table = nullptr;
u32 g_path_len[fsabi::kMaxVolumes];

// One call page, used under the runtime lock (a file call never drops it).
alignas(4096) FileCall g_call;

// Paths of open volume directories (openat relative to them, fchdir),
// shared by the descriptors that dup and fork make.
constexpr int kDirSlots = 32;
constexpr u64 kDirPathMax = 512;
struct DirPath {
    u32 refs = 0;
    char path[kDirPathMax];
};
DirPath g_dirs[kDirSlots];

bool user_range_ok(u64 addr, u64 len) {
    return addr < abi::sys::kUserTop && len <= abi::sys::kUserTop - addr;
}

void begin(FileOp op) {
    // Only the header travels unless a path is set: clear what the kernel reads.
    memset(&g_call, 0, offsetof(FileCall, path));
    g_call.op = static_cast<u32>(op);
}

i64 set_path(char* field, u32* len_field, const char* path) {
    u64 n = cstr_len(path, fsabi::kMaxFilePath + 1);
    if (n > fsabi::kMaxFilePath)
        return -kENAMETOOLONG;
    memcpy(field, path, n);
    *len_field = static_cast<u32>(n);
    return 0;
}

i64 call() { return native(Sys::file_call, reinterpret_cast<u64>(&g_call)); }

// Labeled volumes are reached by path through the VFS server: each call is
// a vfs.File request the policy judges (posix-personality/servers). The
// scratch /tmp, private to the VM, is reached directly.
namespace V = idl::vfs::File;

// Used under the runtime lock, as g_call. Without a VFS server (the
// policy declares no vfs_t) every call is EACCES.
ServerChannel g_vfs_channel{&g_rt.info.vfs_channel, -kEACCES};
V::Client<ServerChannel> g_vfs(g_vfs_channel);

idl::Span span(const char* s) {
    return {reinterpret_cast<const u8*>(s), static_cast<u32>(cstr_len(s, fsabi::kMaxFilePath + 1))};
}

bool too_long(const char* path) { return cstr_len(path, fsabi::kMaxFilePath + 1) > fsabi::kMaxFilePath; }

// Whether a path lies in a labeled volume (not the scratch /tmp). A path
// too long for any volume call is not: the direct call says ENAMETOOLONG.
bool labeled(const char* path) {
    if (too_long(path))
        return false;
    int v = volume_at(path, cstr_len(path, fsabi::kMaxFilePath + 1));
    return v >= 0 && !(g_table->entries[v].flags & fsabi::kVolumeScratch);
}

// The bundle's declared pipes ([[pipe]]) are entries of the volume table
// too, after the volumes; the pipe server hands out their ends.
ServerChannel g_pipe_channel{&g_rt.info.pipe_channel, -kEACCES};
idl::pipe::Pipe::Client<ServerChannel> g_pipe(g_pipe_channel);

bool is_pipe(const char* path) {
    u64 n = cstr_len(path, fsabi::kMaxFilePath + 1);
    int v = volume_at(path, n);
    return v >= 0 && (g_table->entries[v].flags & fsabi::kVolumePipe) && n == g_path_len[v];
}

i64 pipe_open(const char* path, int flags) {
    constexpr int kOCloexec = 02000000, kONonblock = 04000;
    int acc = flags & 3;
    if (acc == 2)
        return -kEINVAL; // a declared pipe is one-way: open it for reading or for writing
    int fd = fd_alloc();
    if (fd < 0)
        return fd;
    idl::pipe::Pipe::open::Response resp;
    abi::i32 r = g_pipe.open({span(path), acc == 1}, resp);
    if (r < 0)
        return server_result(r);
    Fd& f = g_fds[fd];
    f = Fd{};
    f.kind = FdKind::Pipe;
    f.handle = resp.pipe;
    f.flags = static_cast<u32>(acc | (flags & kONonblock));
    f.cloexec = flags & kOCloexec;
    fd_ref(f);
    return fd;
}

i64 path_call(FileOp op, const char* path, u32 arg = 0) {
    begin(op);
    g_call.arg = arg;
    i64 r = set_path(g_call.path, &g_call.path_len, path);
    return r < 0 ? r : call();
}

i64 two_path_call(FileOp op, const char* a, const char* b) {
    begin(op);
    i64 r = set_path(g_call.path, &g_call.path_len, a);
    if (r == 0)
        r = set_path(g_call.path2, &g_call.path2_len, b);
    return r < 0 ? r : call();
}

void to_linux(const fsabi::FileStat& s, LinuxStat* st) {
    memset(st, 0, sizeof *st);
    st->st_dev = 0x6b6f7601; // volumes: one device, distinct from the rootfs's
    st->st_ino = s.ino;
    st->st_nlink = s.nlink;
    st->st_mode = s.mode;
    // Volume files belong to the program's own user, whoever owns them on the host.
    st->st_uid = g_rt.launch.uid;
    st->st_gid = g_rt.launch.gid;
    st->st_size = static_cast<i64>(s.size);
    st->st_blksize = s.blksize ? s.blksize : 4096;
    st->st_blocks = static_cast<i64>(s.blocks);
    auto split = [](i64 ns, u64* sec, u64* nsec) {
        i64 q = ns / 1'000'000'000, r = ns % 1'000'000'000;
        if (r < 0) {
            r += 1'000'000'000;
            --q;
        }
        *sec = static_cast<u64>(q);
        *nsec = static_cast<u64>(r);
    };
    split(s.atime_ns, &st->st_atime_sec, &st->st_atime_nsec);
    split(s.mtime_ns, &st->st_mtime_sec, &st->st_mtime_nsec);
    split(s.ctime_ns, &st->st_ctime_sec, &st->st_ctime_nsec);
}

// Moves data between the caller's buffer and the file, in pieces the
// kernel takes (kMaxFileData, fewer segments when pages are scattered).
i64 transfer(FileOp op, Fd& f, u64 buf, u64 len, i64 offset) {
    if (!user_range_ok(buf, len))
        return -kEFAULT;
    u64 done = 0;
    while (done < len || (len == 0 && done == 0)) {
        begin(op);
        g_call.file = f.handle;
        g_call.offset = offset < 0 ? fsabi::kAtPosition : offset + static_cast<i64>(done);
        g_call.buffer = buf + done;
        g_call.length = len - done;
        i64 r = call();
        if (r < 0)
            return done ? static_cast<i64>(done) : r;
        done += static_cast<u64>(r);
        // A read returns what one call brought (a short read, as Linux
        // allows); a write goes on until every byte is written.
        if (r == 0 || len == 0 || op == FileOp::Read)
            break;
    }
    return static_cast<i64>(done);
}

} // namespace

void volumes_init() {
    const auto* bh = reinterpret_cast<const abi::boot::BootImageHeader*>(abi::sys::kRootfsMapBase);
    if (bh->volumes_offset == 0)
        return;
    const auto* t = reinterpret_cast<const fsabi::VolumeTable*>(abi::sys::kRootfsMapBase + bh->volumes_offset);
    if (t->magic != fsabi::kVolumeTableMagic || t->count > fsabi::kMaxVolumes)
        return; // the kernel refuses such a table at boot
    for (u32 i = 0; i < t->count; ++i)
        g_path_len[i] = static_cast<u32>(cstr_len(t->entries[i].path, fsabi::kMaxVolumePath - 1));
    g_table = t;
}

bool volume_writable(int v) {
    return g_table && v >= 0 && static_cast<u32>(v) < g_table->count &&
           (g_table->entries[v].flags & fsabi::kVolumeWritable);
}

int volume_at(const char* path, u64 len) {
    if (!g_table)
        return -1;
    for (u32 i = 0; i < g_table->count; ++i) {
        u32 vl = g_path_len[i];
        if (len >= vl && memcmp(path, g_table->entries[i].path, vl) == 0 && (len == vl || path[vl] == '/'))
            return static_cast<int>(i);
    }
    return -1;
}

i64 vol_open(const char* path, int flags, int mode) {
    constexpr int kOCloexec = 02000000, kODirectory = 0200000;
    if (is_pipe(path))
        return (flags & kODirectory) ? -kENOTDIR : pipe_open(path, flags);
    int fd = fd_alloc();
    if (fd < 0)
        return fd;
    // O_LARGEFILE (0100000) means nothing on x86-64 (musl sets it, glibc
    // does not): the request's flags leave it out, so one policy rule
    // reads the same for both.
    constexpr u32 kOLargefile = 0100000;
    u32 open_flags = static_cast<u32>(flags) & ~(static_cast<u32>(kOCloexec) | kOLargefile);
    u32 open_mode = static_cast<u32>(mode) & 07777;
    i64 r;
    u32 file_mode = 0;
    if (labeled(path)) {
        V::open::Response resp;
        r = server_result(g_vfs.open({span(path), open_flags, open_mode}, resp));
        if (r == 0) {
            r = resp.file;
            file_mode = resp.mode;
        }
    } else {
        begin(FileOp::Open);
        g_call.flags = open_flags;
        g_call.mode = open_mode;
        r = set_path(g_call.path, &g_call.path_len, path);
        if (r == 0)
            r = call();
        file_mode = g_call.stat.mode;
    }
    if (r < 0)
        return r;
    Fd& f = g_fds[fd];
    f = Fd{};
    f.handle = static_cast<u32>(r);
    f.flags = static_cast<u32>(flags);
    f.cloexec = flags & kOCloexec;
    bool dir = (file_mode & 0170000) == 0040000;
    f.kind = dir ? FdKind::VolDir : FdKind::VolFile;
    if ((flags & kODirectory) && !dir) {
        native(Sys::handle_close, f.handle);
        f = Fd{};
        return -kENOTDIR;
    }
    if (dir) {
        u64 n = cstr_len(path, kDirPathMax);
        for (int i = 0; i < kDirSlots && n < kDirPathMax; ++i)
            if (g_dirs[i].refs == 0) {
                memcpy(g_dirs[i].path, path, n + 1);
                f.entry = static_cast<u32>(i + 1);
                break;
            }
        // Without a slot (too many open directories, or a very long path)
        // the descriptor still reads; openat relative to it fails (ENOMEM).
    }
    fd_ref(f);
    return fd;
}

const char* vol_dir_path(const Fd& f) {
    if (f.kind != FdKind::VolDir || f.entry == 0 || f.entry > kDirSlots)
        return nullptr;
    return g_dirs[f.entry - 1].path;
}

void vol_ref(const Fd& f) {
    if (f.kind == FdKind::VolDir && f.entry && f.entry <= kDirSlots)
        ++g_dirs[f.entry - 1].refs;
}

void vol_release(const Fd& f) {
    if (f.kind == FdKind::VolDir && f.entry && f.entry <= kDirSlots && g_dirs[f.entry - 1].refs)
        --g_dirs[f.entry - 1].refs;
}

i64 vol_stat(const char* path, bool follow, LinuxStat* st) {
    if (is_pipe(path)) {
        // What the bundle declares: a named pipe, the program's own.
        fsabi::FileStat s{};
        s.ino = static_cast<u64>(volume_at(path, cstr_len(path, fsabi::kMaxFilePath + 1))) + 1;
        s.mode = 0010600;
        s.nlink = 1;
        to_linux(s, st);
        st->st_dev = 0x6b6f7602; // pipes: a device of their own
        return 0;
    }
    if (labeled(path)) {
        V::stat::Response resp;
        i64 r = server_result(g_vfs.stat({span(path), follow}, resp));
        if (r < 0)
            return r;
        fsabi::FileStat s{};
        s.ino = resp.ino;
        s.size = resp.size;
        s.blocks = resp.blocks;
        s.atime_ns = resp.atime;
        s.mtime_ns = resp.mtime;
        s.ctime_ns = resp.ctime;
        s.mode = resp.mode;
        s.nlink = resp.nlink;
        s.blksize = resp.blksize;
        to_linux(s, st);
        return 0;
    }
    i64 r = path_call(FileOp::Stat, path, follow ? 0 : fsabi::kNoFollow);
    if (r < 0)
        return r;
    to_linux(g_call.stat, st);
    return 0;
}

i64 vol_readlink(const char* path, u64 buf, u64 len) {
    if (static_cast<i64>(len) <= 0)
        return -kEINVAL;
    if (!user_range_ok(buf, len))
        return -kEFAULT;
    if (labeled(path)) {
        V::readlink::Response resp;
        i64 r = server_result(g_vfs.readlink({span(path)}, resp));
        if (r < 0)
            return r;
        u64 n = resp.target.size < len ? resp.target.size : len;
        memcpy(reinterpret_cast<void*>(buf), resp.target.data, n);
        return static_cast<i64>(n);
    }
    begin(FileOp::ReadLink);
    i64 r = set_path(g_call.path, &g_call.path_len, path);
    if (r < 0)
        return r;
    g_call.buffer = buf;
    g_call.length = len;
    return call();
}

i64 vol_mkdir(const char* path, u32 mode) {
    if (labeled(path)) {
        V::mkdir::Response resp;
        return server_result(g_vfs.mkdir({span(path), mode & 07777}, resp));
    }
    begin(FileOp::Mkdir);
    g_call.mode = mode & 07777;
    i64 r = set_path(g_call.path, &g_call.path_len, path);
    return r < 0 ? r : call();
}

i64 vol_unlink(const char* path, bool dir) {
    if (labeled(path)) {
        if (dir) {
            V::rmdir::Response resp;
            return server_result(g_vfs.rmdir({span(path)}, resp));
        }
        V::unlink::Response resp;
        return server_result(g_vfs.unlink({span(path)}, resp));
    }
    return path_call(FileOp::Unlink, path, dir ? fsabi::kRemoveDir : 0);
}

i64 vol_rename(const char* from, const char* to) {
    if (labeled(from)) {
        if (too_long(to))
            return -kENAMETOOLONG;
        V::rename::Response resp;
        return server_result(g_vfs.rename({span(from), span(to)}, resp));
    }
    return two_path_call(FileOp::Rename, from, to);
}

i64 vol_link(const char* from, const char* to) {
    if (labeled(from)) {
        if (too_long(to))
            return -kENAMETOOLONG;
        V::link::Response resp;
        return server_result(g_vfs.link({span(from), span(to)}, resp));
    }
    return two_path_call(FileOp::Link, from, to);
}

i64 vol_symlink(const char* target, const char* path) {
    if (!target)
        return -kEFAULT;
    if (labeled(path)) {
        if (too_long(target))
            return -kENAMETOOLONG;
        V::symlink::Response resp;
        return server_result(g_vfs.symlink({span(path), span(target)}, resp));
    }
    return two_path_call(FileOp::Symlink, path, target);
}

i64 vol_chmod(const char* path, u32 mode, bool follow) {
    if (labeled(path)) {
        V::chmod::Response resp;
        return server_result(g_vfs.chmod({span(path), mode & 07777, follow}, resp));
    }
    begin(FileOp::Chmod);
    g_call.mode = mode & 07777;
    g_call.arg = follow ? 0 : fsabi::kNoFollow;
    i64 r = set_path(g_call.path, &g_call.path_len, path);
    return r < 0 ? r : call();
}

i64 vol_set_times(const char* path, const Fd* f, u64 times, bool follow) {
    constexpr i64 kUtimeNow = (1l << 30) - 1, kUtimeOmit = (1l << 30) - 2;
    begin(FileOp::SetTimes);
    g_call.arg = follow ? 0 : fsabi::kNoFollow;
    g_call.times[0] = g_call.times[1] = fsabi::kTimeNow;
    if (times) {
        if (!user_range_ok(times, 32))
            return -kEFAULT;
        const auto* ts = reinterpret_cast<const i64*>(times);
        for (int i = 0; i < 2; ++i) {
            i64 sec = ts[2 * i], nsec = ts[2 * i + 1];
            if (nsec == kUtimeNow)
                g_call.times[i] = fsabi::kTimeNow;
            else if (nsec == kUtimeOmit)
                g_call.times[i] = fsabi::kTimeOmit;
            else if (nsec < 0 || nsec >= 1'000'000'000)
                return -kEINVAL;
            else
                g_call.times[i] = sec * 1'000'000'000 + nsec;
        }
    }
    if (f) {
        g_call.file = f->handle;
    } else if (labeled(path)) {
        V::set_times::Response resp;
        return server_result(g_vfs.set_times({span(path), g_call.times[0], g_call.times[1], follow}, resp));
    } else {
        i64 r = set_path(g_call.path, &g_call.path_len, path);
        if (r < 0)
            return r;
    }
    return call();
}

i64 vol_read(Fd& f, u64 buf, u64 len, i64 offset) {
    if (f.kind == FdKind::VolDir)
        return -kEISDIR;
    if ((f.flags & 3) == 1)
        return -kEBADF;
    return transfer(FileOp::Read, f, buf, len, offset);
}

i64 vol_write(Fd& f, u64 buf, u64 len, i64 offset) {
    if (f.kind == FdKind::VolDir || (f.flags & 3) == 0)
        return -kEBADF;
    return transfer(FileOp::Write, f, buf, len, offset);
}

i64 vol_seek(Fd& f, i64 offset, int whence) {
    begin(FileOp::Seek);
    g_call.file = f.handle;
    g_call.offset = offset;
    g_call.arg = static_cast<u32>(whence);
    return call();
}

i64 vol_fstat(Fd& f, LinuxStat* st) {
    begin(FileOp::FStat);
    g_call.file = f.handle;
    i64 r = call();
    if (r < 0)
        return r;
    to_linux(g_call.stat, st);
    return 0;
}

i64 vol_getdents(Fd& f, u64 buf, u64 len) {
    if (f.kind != FdKind::VolDir)
        return -kENOTDIR;
    if (!user_range_ok(buf, len))
        return -kEFAULT;
    begin(FileOp::ReadDir);
    g_call.file = f.handle;
    g_call.buffer = buf;
    g_call.length = len;
    return call();
}

i64 vol_truncate(Fd& f, i64 length) {
    if (length < 0)
        return -kEINVAL;
    if (f.kind != FdKind::VolFile || (f.flags & 3) == 0)
        return -kEINVAL;
    begin(FileOp::Truncate);
    g_call.file = f.handle;
    g_call.offset = length;
    return call();
}

i64 vol_fchmod(Fd& f, u32 mode) {
    begin(FileOp::Chmod);
    g_call.file = f.handle;
    g_call.mode = mode & 07777;
    return call();
}

i64 vol_sync(Fd& f) {
    begin(FileOp::Sync);
    g_call.file = f.handle;
    return call();
}

} // namespace kos::rt
