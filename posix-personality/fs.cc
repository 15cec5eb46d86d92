#include "fs.h"
#include "net.h"
#include "system.h"
#include "volume.h"

#include "kos/base/format.h"
#include "kos/base/string.h"

namespace kos::rt {

constinit Fd g_fds[kMaxFds];

namespace {

namespace rfs = abi::rootfs;

constexpr int kAtFdcwd = -100;
constexpr int kORdonly = 0, kOAccmode = 3, kOCreat = 0100, kOTrunc = 01000,
              kODirectory = 0200000, kONofollow = 0400000, kOCloexec = 02000000;
constexpr int kAtSymlinkNofollow = 0x100, kAtEmptyPath = 0x1000;
constexpr int kMaxSymlinks = 40;


struct Iovec {
    u64 base, len;
};

bool user_range_ok(u64 addr, u64 len) {
    return addr < abi::sys::kUserTop && len <= abi::sys::kUserTop - addr;
}

Fd* get_fd(int fd) {
    if (fd < 0 || fd >= kMaxFds || g_fds[fd].kind == FdKind::Free)
        return nullptr;
    return &g_fds[fd];
}

// Descriptors sharing a pipe or socket handle (dup, dup2, fork copies the
// table): the handle is closed with its last descriptor. A handle's low 8
// bits are its slot in the kernel's table.
constexpr int kHandleSlots = 256;
u32 g_handle_refs[kHandleSlots];

// eventfd and epoll slots are shared the same way (dup, fork copies).
u32 g_eventfd_refs[64];
u32 g_epoll_refs[16];
u32 g_memory_refs[16];
void free_eventfd(u32 slot);
void free_epoll(u32 slot);

bool kernel_handle_kind(FdKind k) {
    return k == FdKind::Pipe || k == FdKind::Socket || k == FdKind::UnixPair || k == FdKind::VolFile ||
           k == FdKind::VolDir;
}

void ref_handle(const Fd& f) {
    if (kernel_handle_kind(f.kind))
        ++g_handle_refs[f.handle % kHandleSlots];
    vol_ref(f);
    if (f.kind == FdKind::UnixPair && f.handle2)
        ++g_handle_refs[f.handle2 % kHandleSlots];
    else if (f.kind == FdKind::EventFd)
        ++g_eventfd_refs[f.handle % 64];
    else if (f.kind == FdKind::Epoll)
        ++g_epoll_refs[f.handle % 16];
    else if (f.kind == FdKind::Memory)
        ++g_memory_refs[f.handle % 16];
}

void release_handle(u32 h) {
    if (--g_handle_refs[h % kHandleSlots] == 0)
        native(Sys::handle_close, h);
}

void release_fd(Fd& f) {
    if (f.kind == FdKind::UnixPair) {
        release_handle(f.handle);
        if (f.handle2)
            release_handle(f.handle2);
    } else if (kernel_handle_kind(f.kind)) {
        vol_release(f);
        release_handle(f.handle);
    }
    else if (f.kind == FdKind::EventFd && --g_eventfd_refs[f.handle % 64] == 0)
        free_eventfd(f.handle);
    else if (f.kind == FdKind::Epoll && --g_epoll_refs[f.handle % 16] == 0)
        free_epoll(f.handle);
    else if (f.kind == FdKind::Memory)
        --g_memory_refs[f.handle % 16];
    f = Fd{};
}

// --- /proc/self ------------------------------------------------------------------

char g_exe[abi::rootfs::kMaxPath + 1] = "/";
char g_cmdline[4096];
u64 g_cmdline_size = 0;

// Files made when opened: a few read-only buffers.
struct MemoryFile {
    char data[4096];
    u64 size = 0;
};
MemoryFile g_memory_files[16];

// "/proc/self/X" or "/proc/<this pid>/X" -> "X"; nullptr otherwise.
const char* proc_self_rest(const char* path) {
    if (!path || strncmp(path, "/proc/", 6) != 0)
        return nullptr;
    const char* p = path + 6;
    if (strncmp(p, "self/", 5) == 0)
        return p + 5;
    u64 pid = static_cast<u64>(native(Sys::process_self)) & 0xffffffff, n = 0;
    const char* q = p;
    while (*q >= '0' && *q <= '9')
        n = n * 10 + static_cast<u64>(*q++ - '0');
    if (q != p && *q == '/' && n == pid)
        return q + 1;
    return nullptr;
}

void append(MemoryFile& m, const char* s) {
    while (*s && m.size < sizeof m.data)
        m.data[m.size++] = *s++;
}

void append_number(MemoryFile& m, u64 v) {
    char buf[24];
    int n = 0;
    do
        buf[n++] = static_cast<char>('0' + v % 10);
    while ((v /= 10) != 0);
    while (n > 0 && m.size < sizeof m.data)
        m.data[m.size++] = buf[--n];
}

// Builds /proc/self/<rest> into a free buffer; its slot, or -errno.
i64 proc_self_file(const char* rest) {
    int slot = -1;
    for (int i = 0; i < 16 && slot < 0; ++i)
        if (g_memory_refs[i] == 0)
            slot = i;
    if (slot < 0)
        return -kEMFILE;
    MemoryFile& m = g_memory_files[slot];
    m.size = 0;
    if (strcmp(rest, "cmdline") == 0) {
        memcpy(m.data, g_cmdline, g_cmdline_size);
        m.size = g_cmdline_size;
    } else if (strcmp(rest, "status") == 0 || strcmp(rest, "comm") == 0) {
        const char* name = g_exe;
        for (const char* c = g_exe; *c; ++c)
            if (*c == '/')
                name = c + 1;
        bool comm = rest[0] == 'c';
        if (!comm)
            append(m, "Name:\t");
        append(m, name);
        append(m, "\n");
        if (!comm) {
            append(m, "State:\tR (running)\nPid:\t");
            append_number(m, static_cast<u64>(native(Sys::process_self)) & 0xffffffff);
            append(m, "\nPPid:\t");
            append_number(m, static_cast<u64>(native(Sys::process_self)) >> 32);
            append(m, "\nUid:\t");
            for (int i = 0; i < 4; ++i) {
                append_number(m, g_rt.launch.uid);
                append(m, i < 3 ? "\t" : "\nGid:\t");
            }
            for (int i = 0; i < 4; ++i) {
                append_number(m, g_rt.launch.gid);
                append(m, i < 3 ? "\t" : "\n");
            }
        }
    } else {
        return -kENOENT;
    }
    return slot;
}

// readlink of /proc/self/exe and /proc/self/fd/N.
i64 proc_self_link(const char* rest, char* out, u64 cap) {
    const char* target = nullptr;
    char tmp[64];
    if (strcmp(rest, "exe") == 0) {
        target = g_exe;
    } else if (strncmp(rest, "fd/", 3) == 0) {
        int fd = 0;
        const char* p = rest + 3;
        if (!*p)
            return -kENOENT;
        for (; *p; ++p) {
            if (*p < '0' || *p > '9' || fd > kMaxFds)
                return -kENOENT;
            fd = fd * 10 + (*p - '0');
        }
        Fd* f = get_fd(fd);
        if (!f)
            return -kENOENT;
        switch (f->kind) {
        case FdKind::File:
        case FdKind::Dir: target = g_rt.rootfs.path(g_rt.rootfs.entry(f->entry)); break;
        case FdKind::Console: target = "/dev/console"; break;
        case FdKind::Device: target = "/dev/null"; break;
        case FdKind::Pipe: format(tmp, sizeof tmp, "pipe:[%u]", f->handle); target = tmp; break;
        case FdKind::Socket:
        case FdKind::UnixPair: format(tmp, sizeof tmp, "socket:[%u]", f->handle); target = tmp; break;
        case FdKind::EventFd: target = "anon_inode:[eventfd]"; break;
        case FdKind::Epoll: target = "anon_inode:[eventpoll]"; break;
        default: target = "anon_inode:[kos]"; break;
        }
        if ((f->kind == FdKind::File || f->kind == FdKind::Dir) && !*target)
            target = "/";
    } else {
        return -kENOENT;
    }
    u64 n = strlen(target);
    if (n > cap)
        n = cap;
    memcpy(out, target, n);
    return static_cast<i64>(n);
}

int alloc_fd(int min = 0) {
    for (int i = min; i < kMaxFds; ++i)
        if (g_fds[i].kind == FdKind::Free)
            return i;
    return -kEMFILE;
}

} // namespace

Fd* fd_get(int fd) { return get_fd(fd); }
int fd_alloc(int min) { return alloc_fd(min); }
void fd_ref(const Fd& f) { ref_handle(f); }
void fd_release(Fd& f) { release_fd(f); }

namespace {

// Path resolution over the rootfs image. `out` holds the normalized absolute
// path so far; components are appended and symlinks expanded in place.
//
// A path that reaches a volume's mount point leaves the rootfs: the rest
// is appended to `path` lexically ("." dropped, ".." taken back, which may
// lead out of the volume again) and the walk ends with kInVolume; the host
// resolves what lies below the mount point.
constexpr i64 kInVolume = 1ll << 40;

struct Resolver {
    char path[rfs::kMaxPath + 1];
    u64 len = 0;
    int links = 0;
    bool in_volume = false;

    i64 lookup() const {
        return g_rt.rootfs.find(len ? path : "/", len ? len : 1);
    }

    // ".." (lexically: the last component goes; "/.." is "/").
    void pop_component() {
        while (len > 0 && path[len - 1] != '/')
            --len;
        if (len > 0)
            --len;
    }

    // Resolves `in` relative to the current `path`.
    i64 walk(const char* in, bool follow_last) {
        const char* p = in;
        if (*p == '/') {
            len = 0;
        }
        in_volume = len > 0 && volume_at(path, len) >= 0; // a base (cwd, directory) in a volume
        i64 cur = in_volume ? kInVolume : lookup();
        while (true) {
            while (*p == '/')
                ++p;
            if (!*p)
                return cur;
            const char* comp = p;
            while (*p && *p != '/')
                ++p;
            u64 clen = static_cast<u64>(p - comp);
            if (in_volume) {
                if (clen == 1 && comp[0] == '.')
                    continue;
                if (clen == 2 && comp[0] == '.' && comp[1] == '.') {
                    pop_component();
                    in_volume = len > 0 && volume_at(path, len) >= 0;
                    cur = in_volume ? kInVolume : lookup();
                    continue;
                }
                if (clen > 255 || len + 1 + clen > rfs::kMaxPath)
                    return -kENAMETOOLONG;
                path[len++] = '/';
                memcpy(path + len, comp, clen);
                len += clen;
                continue;
            }
            bool last = true;
            for (const char* q = p; *q; ++q)
                if (*q != '/') {
                    last = false;
                    break;
                }
            if (cur < 0)
                return cur;
            const rfs::RootfsEntry& ce = g_rt.rootfs.entry(static_cast<u32>(cur));
            if ((ce.mode & rfs::kTypeMask) != rfs::kTypeDir)
                return -kENOTDIR;
            if (clen == 1 && comp[0] == '.')
                continue;
            if (clen == 2 && comp[0] == '.' && comp[1] == '.') {
                pop_component();
                cur = lookup();
                continue;
            }
            if (clen > 255)
                return -kENAMETOOLONG;
            if (len + 1 + clen > rfs::kMaxPath)
                return -kENAMETOOLONG;
            u64 saved = len;
            path[len++] = '/';
            memcpy(path + len, comp, clen);
            len += clen;
            if (volume_at(path, len) >= 0) {
                in_volume = true;
                cur = kInVolume;
                continue;
            }
            i64 next = lookup();
            if (next < 0) {
                // Missing: fine to report, unless more components follow.
                return last ? -kENOENT : -kENOENT;
            }
            const rfs::RootfsEntry& ne = g_rt.rootfs.entry(static_cast<u32>(next));
            if ((ne.mode & rfs::kTypeMask) == rfs::kTypeSymlink && (!last || follow_last)) {
                if (++links > kMaxSymlinks)
                    return -kELOOP;
                len = saved; // the link's target is relative to its directory
                char target[rfs::kMaxPath + 1];
                u64 tlen = ne.size;
                memcpy(target, g_rt.rootfs.symlink_target(ne), tlen);
                target[tlen] = 0;
                i64 r = walk(target, true);
                if (r < 0)
                    return r;
                cur = r; // kInVolume: the link led into a volume
                continue;
            }
            cur = next;
        }
    }
};

// The absolute guest path of the last resolve_at that returned kInVolume.
char g_volume_path[rfs::kMaxPath + 1];

i64 resolve_at(int dirfd, const char* path, bool follow_last) {
    if (!path)
        return -kEFAULT;
    u64 plen = cstr_len(path, rfs::kMaxPath + 1);
    if (plen > rfs::kMaxPath)
        return -kENAMETOOLONG;
    if (plen == 0)
        return -kENOENT;
    Resolver r;
    const char* base = g_rt.cwd;
    if (path[0] != '/' && dirfd != kAtFdcwd) {
        Fd* d = get_fd(dirfd);
        if (!d)
            return -kEBADF;
        if (d->kind == FdKind::VolDir) {
            base = vol_dir_path(*d);
            if (!base)
                return -kENOMEM; // no slot kept its path
        } else if (d->kind != FdKind::Dir) {
            return -kENOTDIR;
        } else {
            base = g_rt.rootfs.path(g_rt.rootfs.entry(d->entry));
        }
    }
    if (path[0] != '/') {
        u64 blen = cstr_len(base, rfs::kMaxPath);
        r.len = (blen == 1) ? 0 : blen;
        memcpy(r.path, base, r.len);
    }
    i64 idx = r.walk(path, follow_last);
    if (idx == kInVolume) {
        memcpy(g_volume_path, r.path, r.len);
        g_volume_path[r.len] = 0;
    }
    return idx;
}

void fill_stat(LinuxStat* st, u32 entry) {
    const rfs::RootfsEntry& e = g_rt.rootfs.entry(entry);
    memset(st, 0, sizeof *st);
    st->st_dev = 0x6b6f73; // the rootfs device
    st->st_ino = entry + 1;
    st->st_nlink = (e.mode & rfs::kTypeMask) == rfs::kTypeDir ? 2 : 1;
    st->st_mode = e.mode;
    st->st_uid = e.uid;
    st->st_gid = e.gid;
    st->st_size = static_cast<i64>(e.size);
    st->st_blksize = 4096;
    st->st_blocks = static_cast<i64>((e.size + 511) / 512);
    st->st_atime_sec = st->st_mtime_sec = st->st_ctime_sec = static_cast<u64>(e.mtime_sec);
}

void fill_console_stat(LinuxStat* st) {
    memset(st, 0, sizeof *st);
    st->st_dev = 5;
    st->st_ino = 1;
    st->st_nlink = 1;
    st->st_mode = 0020620; // character device, crw--w----
    st->st_rdev = (5u << 8) | 1u; // like /dev/console
    st->st_blksize = 1024;
}

} // namespace

void fs_init() {
    volumes_init();
    for (int i = 0; i < 3; ++i) {
        g_fds[i].kind = FdKind::Console;
        g_fds[i].stream = i == 2 ? 2 : 1;
        g_fds[i].flags = i == 0 ? kORdonly : 1;
    }
    u64 n = cstr_len(g_rt.launch.cwd, rfs::kMaxPath);
    memcpy(g_rt.cwd, g_rt.launch.cwd, n);
    g_rt.cwd[n] = 0;
}

bool rootfs_readable(u32 entry) {
    const auto* bits = reinterpret_cast<const u8*>(g_rt.info.readable_bitmap);
    return !bits || (bits[entry / 8] >> (entry % 8)) & 1;
}

i64 fs_resolve(int dirfd, const char* path, bool follow_last) {
    i64 idx = resolve_at(dirfd, path, follow_last);
    return idx == kInVolume ? -kEACCES : idx; // programs do not run from volumes
}

namespace {
constexpr short kPollIn = 0x1, kPollOut = 0x4, kPollNval = 0x20;

// --- eventfd and epoll --------------------------------------------------------

struct EventFd {
    bool used = false;
    bool semaphore = false;
    u64 count = 0;
};
constexpr int kMaxEventFds = 64;
EventFd g_eventfds[kMaxEventFds];

struct EpollItem {
    int fd = -1;
    u32 events = 0;
    u64 data = 0;
};
constexpr int kMaxEpolls = 16, kMaxEpollItems = 128;
struct Epoll {
    bool used = false;
    EpollItem items[kMaxEpollItems];
};
Epoll g_epolls[kMaxEpolls];

short eventfd_ready(const Fd& f) {
    const EventFd& e = g_eventfds[f.handle % kMaxEventFds];
    short r = 0;
    if (e.count > 0)
        r |= kPollIn;
    if (e.count < ~0ull - 1)
        r |= kPollOut;
    return r;
}

bool epoll_has_ready(u32 slot);

void free_eventfd(u32 slot) { g_eventfds[slot % kMaxEventFds] = EventFd{}; }
void free_epoll(u32 slot) { g_epolls[slot % kMaxEpolls] = Epoll{}; }

// read/write of an eventfd: an 8-byte counter.
i64 eventfd_rw(Fd& f, u64 buf, u64 len, bool write) {
    if (len < 8)
        return -kEINVAL;
    if (!user_range_ok(buf, 8))
        return -kEFAULT;
    EventFd& e = g_eventfds[f.handle % kMaxEventFds];
    u64 v = 0;
    if (write) {
        memcpy(&v, reinterpret_cast<const void*>(buf), 8);
        if (v == ~0ull)
            return -kEINVAL;
    }
    for (;;) {
        bool can = write ? e.count <= ~0ull - 1 - v : e.count > 0;
        if (can)
            break;
        if (f.flags & 04000)
            return -11; // EAGAIN
        // Wait for another thread of this process (the only possible peer).
        runtime_unlock();
        wait_yield();
        runtime_lock();
    }
    if (write) {
        e.count += v;
    } else {
        v = e.semaphore ? 1 : e.count;
        e.count -= v;
        memcpy(reinterpret_cast<void*>(buf), &v, 8);
    }
    return 8;
}

short ready_events(int fd) {
    Fd* f = get_fd(fd);
    if (!f)
        return kPollNval;
    switch (f->kind) {
    case FdKind::Console:
        return (f->flags & kOAccmode) == kORdonly ? kPollIn : static_cast<short>(kPollIn | kPollOut);
    case FdKind::File:
    case FdKind::Dir:
    case FdKind::VolFile:
    case FdKind::VolDir:
        return kPollIn | kPollOut;
    case FdKind::Device:
        return kPollIn | kPollOut;
    case FdKind::Pipe: {
        i64 r = native(Sys::pipe_poll, f->handle);
        if (r < 0)
            return kPollNval;
        bool read_end = (f->flags & kOAccmode) == kORdonly;
        return read_end ? ((r & 1) ? kPollIn : 0) : ((r & 2) ? kPollOut : 0);
    }
    case FdKind::UnixPair: {
        i64 in = native(Sys::pipe_poll, f->handle);
        i64 out = f->handle2 ? native(Sys::pipe_poll, f->handle2) : 2;
        if (in < 0 || out < 0)
            return kPollNval;
        return static_cast<short>(((in & 1) ? kPollIn : 0) | ((out & 2) ? kPollOut : 0));
    }
    case FdKind::EventFd:
        return eventfd_ready(*f);
    case FdKind::Epoll:
        return epoll_has_ready(f->handle) ? kPollIn : 0;
    case FdKind::Socket:
        return socket_ready(*f);
    default:
        return kPollNval;
    }
}

// Repeats `check` (under the runtime lock) until it finds something or the
// deadline passes, yielding the CPU in between.
template <class Check> i64 wait_ready(u64 deadline_ns, Check check) {
    for (;;) {
        runtime_lock();
        socket_forget_noted();
        i64 n = check();
        runtime_unlock();
        if (n != 0 || deadline_ns == 0)
            return n;
        // Sockets wait in the network service (which wakes when one is
        // ready); everything else changes only when other threads run.
        if (!socket_wait_noted(deadline_ns))
            wait_yield();
        if (deadline_ns != kNoDeadline && monotonic_ns() >= deadline_ns)
            return 0;
    }
}
} // namespace

i64 sys_poll(u64 fds, u64 nfds, u64 deadline_ns) {
    struct PollFd {
        int fd;
        short events, revents;
    };
    if (nfds > kMaxFds)
        return -kEINVAL;
    if (!user_range_ok(fds, nfds * sizeof(PollFd)))
        return -kEFAULT;
    auto* p = reinterpret_cast<PollFd*>(fds);
    return wait_ready(deadline_ns, [&] {
        i64 n = 0;
        for (u64 i = 0; i < nfds; ++i) {
            if (p[i].fd < 0) {
                p[i].revents = 0;
                continue;
            }
            short ready = ready_events(p[i].fd);
            p[i].revents = ready == kPollNval ? kPollNval : static_cast<short>(ready & p[i].events);
            if (p[i].revents)
                ++n;
        }
        return n;
    });
}

i64 sys_select(int nfds, u64 readfds, u64 writefds, u64 exceptfds, u64 deadline_ns) {
    if (nfds < 0 || nfds > kMaxFds)
        return -kEINVAL;
    u64 words = (static_cast<u64>(nfds) + 63) / 64;
    u64* sets[2] = {reinterpret_cast<u64*>(readfds), reinterpret_cast<u64*>(writefds)};
    for (u64* set : sets)
        if (set && !user_range_ok(reinterpret_cast<u64>(set), words * 8))
            return -kEFAULT;
    if (exceptfds && !user_range_ok(exceptfds, words * 8))
        return -kEFAULT;
    // What was asked, kept: each check rewrites the sets with the answer.
    u64 want[2][kMaxFds / 64] = {};
    for (int k = 0; k < 2; ++k)
        if (sets[k])
            memcpy(want[k], sets[k], words * 8);
    i64 r = wait_ready(deadline_ns, [&]() -> i64 {
        i64 n = 0;
        for (int fd = 0; fd < nfds; ++fd) {
            u64 bit = 1ull << (fd % 64);
            bool want_r = want[0][fd / 64] & bit;
            bool want_w = want[1][fd / 64] & bit;
            if (!want_r && !want_w)
                continue;
            short ready = ready_events(fd);
            if (ready == kPollNval)
                return -kEBADF;
            if (want_r && (ready & kPollIn))
                ++n;
            if (want_w && (ready & kPollOut))
                ++n;
        }
        return n;
    });
    if (r < 0)
        return r;
    for (int fd = 0; fd < nfds; ++fd) {
        u64 bit = 1ull << (fd % 64);
        short ready = (want[0][fd / 64] | want[1][fd / 64]) & bit ? ready_events(fd) : 0;
        if (sets[0] && !(want[0][fd / 64] & bit && (ready & kPollIn)))
            sets[0][fd / 64] &= ~bit;
        if (sets[1] && !(want[1][fd / 64] & bit && (ready & kPollOut)))
            sets[1][fd / 64] &= ~bit;
    }
    if (exceptfds)
        for (u64 w = 0; w < words; ++w)
            reinterpret_cast<u64*>(exceptfds)[w] = 0;
    return r;
}

namespace {

constexpr u32 kEpollIn = 0x1, kEpollOut = 0x4, kEpollErr = 0x8, kEpollHup = 0x10;
constexpr int kEpollCtlAdd = 1, kEpollCtlDel = 2, kEpollCtlMod = 3;

struct EpollEvent {
    u32 events;
    u64 data;
} __attribute__((packed));
static_assert(sizeof(EpollEvent) == 12);

// Ready items of an epoll instance, written to `out` (up to `max`).
int epoll_collect(u32 slot, EpollEvent* out, int max, int depth) {
    Epoll& ep = g_epolls[slot % kMaxEpolls];
    int n = 0;
    for (EpollItem& it : ep.items) {
        if (it.fd < 0 || n >= max)
            continue;
        Fd* f = get_fd(it.fd);
        short ready;
        if (!f)
            ready = 0; // closed: Linux drops it from the set
        else if (f->kind == FdKind::Epoll)
            ready = depth < 4 && epoll_collect(f->handle, nullptr, 1, depth + 1) ? kPollIn : 0;
        else
            ready = ready_events(it.fd);
        u32 ev = 0;
        if ((ready & kPollIn) && (it.events & kEpollIn))
            ev |= kEpollIn;
        if ((ready & kPollOut) && (it.events & kEpollOut))
            ev |= kEpollOut;
        if (ev) {
            if (out)
                out[n] = EpollEvent{ev, it.data};
            ++n;
        }
    }
    return n;
}

bool epoll_has_ready(u32 slot) { return epoll_collect(slot, nullptr, 1, 1) > 0; }

} // namespace

i64 sys_epoll_create(int flags) {
    if (flags & ~kOCloexec)
        return -kEINVAL;
    for (int i = 0; i < kMaxEpolls; ++i) {
        if (g_epolls[i].used)
            continue;
        int fd = alloc_fd();
        if (fd < 0)
            return fd;
        g_epolls[i] = Epoll{};
        g_epolls[i].used = true;
        g_fds[fd] = Fd{};
        g_fds[fd].kind = FdKind::Epoll;
        g_fds[fd].handle = static_cast<u32>(i);
        g_fds[fd].cloexec = flags & kOCloexec;
        ref_handle(g_fds[fd]);
        return fd;
    }
    return -kEMFILE;
}

i64 sys_epoll_ctl(int epfd, int op, int fd, u64 event) {
    Fd* e = get_fd(epfd);
    if (!e || !get_fd(fd))
        return -kEBADF;
    if (e->kind != FdKind::Epoll || fd == epfd)
        return -kEINVAL;
    EpollEvent ev{};
    if (op != kEpollCtlDel) {
        if (!user_range_ok(event, sizeof ev))
            return -kEFAULT;
        memcpy(&ev, reinterpret_cast<const void*>(event), sizeof ev);
    }
    Epoll& ep = g_epolls[e->handle % kMaxEpolls];
    EpollItem* found = nullptr;
    EpollItem* free_item = nullptr;
    for (EpollItem& it : ep.items) {
        if (it.fd == fd)
            found = &it;
        else if (it.fd < 0 && !free_item)
            free_item = &it;
    }
    switch (op) {
    case kEpollCtlAdd:
        if (found)
            return -kEEXIST;
        if (!free_item)
            return -28; // ENOSPC
        *free_item = EpollItem{fd, ev.events | kEpollErr | kEpollHup, ev.data};
        return 0;
    case kEpollCtlMod:
        if (!found)
            return -kENOENT;
        found->events = ev.events | kEpollErr | kEpollHup;
        found->data = ev.data;
        return 0;
    case kEpollCtlDel:
        if (!found)
            return -kENOENT;
        *found = EpollItem{};
        return 0;
    default:
        return -kEINVAL;
    }
}

i64 sys_epoll_wait(int epfd, u64 events, int max, u64 deadline_ns) {
    Fd* e = get_fd(epfd);
    if (!e)
        return -kEBADF;
    if (e->kind != FdKind::Epoll || max <= 0 || max > kMaxEpollItems)
        return -kEINVAL;
    if (!user_range_ok(events, static_cast<u64>(max) * sizeof(EpollEvent)))
        return -kEFAULT;
    u32 slot = e->handle;
    return wait_ready(deadline_ns, [&] {
        return static_cast<i64>(epoll_collect(slot, reinterpret_cast<EpollEvent*>(events), max, 1));
    });
}

i64 sys_eventfd(u64 initval, int flags) {
    constexpr int kEfdSemaphore = 1, kEfdNonblock = 04000;
    if (flags & ~(kOCloexec | kEfdSemaphore | kEfdNonblock) || initval > 0xffffffffu)
        return -kEINVAL;
    for (int i = 0; i < kMaxEventFds; ++i) {
        if (g_eventfds[i].used)
            continue;
        int fd = alloc_fd();
        if (fd < 0)
            return fd;
        g_eventfds[i] = EventFd{true, (flags & kEfdSemaphore) != 0, initval};
        g_fds[fd] = Fd{};
        g_fds[fd].kind = FdKind::EventFd;
        g_fds[fd].handle = static_cast<u32>(i);
        g_fds[fd].flags = static_cast<u32>(flags & kEfdNonblock) | 2; // O_RDWR
        g_fds[fd].cloexec = flags & kOCloexec;
        ref_handle(g_fds[fd]);
        return fd;
    }
    return -kEMFILE;
}

void proc_set_program(const char* path, const char* const* argv) {
    // An absolute path as the program named it (relative ones from the cwd).
    u64 n = 0;
    if (path[0] != '/') {
        for (const char* c = g_rt.cwd; *c && n < sizeof g_exe - 2; ++c)
            g_exe[n++] = *c;
        if (n == 0 || g_exe[n - 1] != '/')
            g_exe[n++] = '/';
    }
    for (const char* c = path; *c && n < sizeof g_exe - 1; ++c)
        g_exe[n++] = *c;
    g_exe[n] = 0;
    g_cmdline_size = 0;
    for (u64 i = 0; argv && argv[i]; ++i) {
        u64 len = strlen(argv[i]) + 1;
        if (g_cmdline_size + len > sizeof g_cmdline)
            break;
        memcpy(g_cmdline + g_cmdline_size, argv[i], len);
        g_cmdline_size += len;
    }
}

void fs_close_on_exec() {
    for (Fd& f : g_fds)
        if (f.kind != FdKind::Free && f.cloexec)
            release_fd(f);
}

i64 fd_file_entry(int fd) {
    Fd* f = get_fd(fd);
    if (!f)
        return -kEBADF;
    if (f->kind != FdKind::File)
        return -kEACCES;
    return f->entry;
}

i64 sys_pread(int fd, u64 buf, u64 len, i64 off) {
    Fd* f = get_fd(fd);
    if (!f)
        return -kEBADF;
    if (f->kind == FdKind::Dir)
        return -kEISDIR;
    if (f->kind == FdKind::VolFile || f->kind == FdKind::VolDir)
        return off < 0 ? -kEINVAL : vol_read(*f, buf, len, off);
    if (f->kind == FdKind::Memory) {
        if (off < 0)
            return -kEINVAL;
        if (!user_range_ok(buf, len))
            return -kEFAULT;
        const MemoryFile& m = g_memory_files[f->handle % 16];
        if (static_cast<u64>(off) >= m.size)
            return 0;
        u64 n = m.size - static_cast<u64>(off) < len ? m.size - static_cast<u64>(off) : len;
        memcpy(reinterpret_cast<void*>(buf), m.data + off, n);
        return static_cast<i64>(n);
    }
    if (f->kind != FdKind::File)
        return -kESPIPE;
    if (off < 0)
        return -kEINVAL;
    if (!user_range_ok(buf, len))
        return -kEFAULT;
    const rfs::RootfsEntry& e = g_rt.rootfs.entry(f->entry);
    u64 o = static_cast<u64>(off);
    if (o >= e.size)
        return 0;
    u64 n = e.size - o < len ? e.size - o : len;
    memcpy(reinterpret_cast<void*>(buf), g_rt.rootfs.file_data(e) + o, n);
    return static_cast<i64>(n);
}

i64 sys_read(int fd, u64 buf, u64 len) {
    Fd* f = get_fd(fd);
    if (!f)
        return -kEBADF;
    if (f->kind == FdKind::EventFd)
        return eventfd_rw(*f, buf, len, false);
    if (f->kind == FdKind::Epoll)
        return -kEINVAL;
    if (f->kind == FdKind::Socket)
        return socket_read(fd, buf, len);
    if ((f->flags & kOAccmode) == 1)
        return -kEBADF;
    if (f->kind == FdKind::VolFile || f->kind == FdKind::VolDir)
        return vol_read(*f, buf, len, -1);
    if (f->kind == FdKind::Console) {
        if (!user_range_ok(buf, len))
            return -kEFAULT;
        return native(Sys::console_read, buf, len);
    }
    if (f->kind == FdKind::Pipe || f->kind == FdKind::UnixPair) {
        u32 h = f->handle;
        // O_NONBLOCK: EAGAIN rather than a wait while the pipe is empty and
        // has a writer.
        if ((f->flags & kONonblock) && !(native(Sys::pipe_poll, h) & 1))
            return -11; // EAGAIN
        runtime_unlock();
        i64 r = native(Sys::pipe_read, h, buf, len);
        runtime_lock();
        return r;
    }
    if (f->kind == FdKind::Device) {
        if (!user_range_ok(buf, len))
            return -kEFAULT;
        switch (f->device) {
        case Device::Null: return 0;
        case Device::Zero:
        case Device::Full: memset(reinterpret_cast<void*>(buf), 0, len); return static_cast<i64>(len);
        case Device::Random:
            if (len > (32u << 20))
                len = 32u << 20;
            random_fill(reinterpret_cast<void*>(buf), len);
            return static_cast<i64>(len);
        }
    }
    i64 r = sys_pread(fd, buf, len, static_cast<i64>(f->offset));
    if (r > 0)
        f->offset += static_cast<u64>(r);
    return r;
}

i64 sys_write(int fd, u64 buf, u64 len) {
    Fd* f = get_fd(fd);
    if (!f)
        return -kEBADF;
    if (f->kind == FdKind::EventFd)
        return eventfd_rw(*f, buf, len, true);
    if (f->kind == FdKind::Epoll)
        return -kEINVAL;
    if (f->kind == FdKind::Socket)
        return socket_write(fd, buf, len);
    if (f->kind == FdKind::VolFile || f->kind == FdKind::VolDir)
        return vol_write(*f, buf, len, -1);
    if (f->kind == FdKind::Pipe || f->kind == FdKind::UnixPair) {
        if ((f->flags & kOAccmode) == kORdonly)
            return -kEBADF;
        if (f->kind == FdKind::UnixPair && !f->handle2)
            return -32; // EPIPE: this end was shut down for writing
        // A blocking write returns once every byte is in the pipe.
        u32 h = f->kind == FdKind::UnixPair ? f->handle2 : f->handle;
        if ((f->flags & kONonblock) && !(native(Sys::pipe_poll, h) & 2))
            return -11; // EAGAIN: full (a non-blocking write takes what fits below)
        runtime_unlock();
        u64 done = 0;
        i64 r = 0;
        while (done < len) {
            r = native(Sys::pipe_write, h, buf + done, len - done);
            if (r <= 0)
                break;
            done += static_cast<u64>(r);
            if (f->flags & kONonblock)
                break; // what fitted
        }
        runtime_lock();
        // EPIPE without readers (SIGPIPE comes with signal delivery).
        return done ? static_cast<i64>(done) : r;
    }
    if (f->kind == FdKind::Device) {
        if ((f->flags & kOAccmode) == kORdonly)
            return -kEBADF;
        if (!user_range_ok(buf, len))
            return -kEFAULT;
        return f->device == Device::Full ? -28 /* ENOSPC */ : static_cast<i64>(len);
    }
    if (f->kind != FdKind::Console)
        return -kEBADF; // rootfs files are opened read-only
    if (!user_range_ok(buf, len))
        return -kEFAULT;
    u64 done = 0;
    while (done < len) {
        i64 r = native(Sys::console_write, static_cast<u64>(f->stream), buf + done, len - done);
        if (r < 0)
            return done ? static_cast<i64>(done) : r;
        if (r == 0)
            break;
        done += static_cast<u64>(r);
    }
    return static_cast<i64>(done);
}

i64 sys_pwrite(int fd, u64 buf, u64 len, i64 off) {
    Fd* f = get_fd(fd);
    if (!f)
        return -kEBADF;
    if (off < 0)
        return -kEINVAL;
    if (f->kind == FdKind::VolFile || f->kind == FdKind::VolDir)
        return vol_write(*f, buf, len, off);
    if (f->kind == FdKind::Pipe || f->kind == FdKind::Socket || f->kind == FdKind::UnixPair ||
        f->kind == FdKind::Console || f->kind == FdKind::EventFd || f->kind == FdKind::Epoll)
        return -kESPIPE;
    if (f->kind == FdKind::Device)
        return sys_write(fd, buf, len);
    return -kEBADF; // rootfs files are opened read-only
}

// readv/writev: one transfer per buffer, stopping at the first short one.
i64 vector_io(int fd, u64 iov, int cnt, i64 (*op)(int, u64, u64)) {
    if (cnt < 0 || cnt > 1024)
        return -kEINVAL;
    if (!user_range_ok(iov, u64(cnt) * sizeof(Iovec)))
        return -kEFAULT;
    const auto* v = reinterpret_cast<const Iovec*>(iov);
    i64 total = 0;
    for (int i = 0; i < cnt; ++i) {
        if (!v[i].len)
            continue;
        i64 r = op(fd, v[i].base, v[i].len);
        if (r < 0)
            return total ? total : r;
        total += r;
        if (static_cast<u64>(r) < v[i].len)
            break;
    }
    return total;
}

i64 sys_readv(int fd, u64 iov, int cnt) { return vector_io(fd, iov, cnt, sys_read); }

i64 sys_writev(int fd, u64 iov, int cnt) { return vector_io(fd, iov, cnt, sys_write); }

struct DeviceNode {
    const char* path;
    Device device;
    u32 rdev; // Linux major << 8 | minor
};
constexpr DeviceNode kDevices[] = {
    {"/dev/null", Device::Null, (1u << 8) | 3},   {"/dev/zero", Device::Zero, (1u << 8) | 5},
    {"/dev/full", Device::Full, (1u << 8) | 7},   {"/dev/random", Device::Random, (1u << 8) | 8},
    {"/dev/urandom", Device::Random, (1u << 8) | 9},
};

const DeviceNode* device_node(const char* path) {
    if (!path || strncmp(path, "/dev/", 5) != 0)
        return nullptr;
    for (const DeviceNode& d : kDevices)
        if (strcmp(path, d.path) == 0)
            return &d;
    return nullptr;
}

i64 sys_openat(int dirfd, const char* path, int flags, int mode) {
    if (const char* rest = proc_self_rest(path)) {
        if (strcmp(rest, "exe") == 0)
            return sys_openat(dirfd, g_exe, flags, mode);
        if ((flags & kOAccmode) != kORdonly)
            return -kEACCES;
        i64 slot = proc_self_file(rest);
        if (slot < 0)
            return slot;
        int fd = alloc_fd();
        if (fd < 0)
            return fd;
        g_fds[fd] = Fd{};
        g_fds[fd].kind = FdKind::Memory;
        g_fds[fd].handle = static_cast<u32>(slot);
        g_fds[fd].flags = static_cast<u32>(flags);
        g_fds[fd].cloexec = flags & kOCloexec;
        ref_handle(g_fds[fd]);
        return fd;
    }
    if (const DeviceNode* d = device_node(path)) {
        int fd = alloc_fd();
        if (fd < 0)
            return fd;
        Fd& f = g_fds[fd];
        f.kind = FdKind::Device;
        f.device = d->device;
        f.entry = d->rdev;
        f.flags = static_cast<u32>(flags);
        f.cloexec = flags & kOCloexec;
        return fd;
    }
    if (path && strcmp(path, "/dev/tty") == 0) {
        int fd = alloc_fd();
        if (fd < 0)
            return fd;
        g_fds[fd] = Fd{};
        g_fds[fd].kind = FdKind::Console;
        g_fds[fd].stream = 1;
        g_fds[fd].flags = static_cast<u32>(flags);
        g_fds[fd].cloexec = flags & kOCloexec;
        return fd;
    }
    i64 idx = resolve_at(dirfd, path, !(flags & kONofollow));
    if (idx == kInVolume)
        return vol_open(g_volume_path, flags, mode);
    if (idx < 0) {
        if (idx == -kENOENT && (flags & kOCreat))
            return -kEROFS;
        return idx;
    }
    const rfs::RootfsEntry& e = g_rt.rootfs.entry(static_cast<u32>(idx));
    u32 type = e.mode & rfs::kTypeMask;
    if ((flags & kOAccmode) != kORdonly || (flags & kOTrunc))
        return type == rfs::kTypeDir ? -kEISDIR : -kEROFS;
    if (type == rfs::kTypeSymlink)
        return -kELOOP; // O_NOFOLLOW on a symlink
    if ((flags & kODirectory) && type != rfs::kTypeDir)
        return -kENOTDIR;
    // Files the policy does not let this label read are not even mapped.
    if (type == rfs::kTypeFile && !rootfs_readable(static_cast<u32>(idx)))
        return -kEACCES;
    int fd = alloc_fd();
    if (fd < 0)
        return fd;
    Fd& f = g_fds[fd];
    f.kind = type == rfs::kTypeDir ? FdKind::Dir : FdKind::File;
    f.entry = static_cast<u32>(idx);
    f.offset = 0;
    f.flags = static_cast<u32>(flags);
    f.cloexec = flags & kOCloexec;
    return fd;
}

i64 sys_close(int fd) {
    Fd* f = get_fd(fd);
    if (!f)
        return -kEBADF;
    release_fd(*f);
    return 0;
}

i64 sys_pipe2(u64 fds, int flags) {
    if (flags & ~(kOCloexec | 04000 /* O_NONBLOCK */))
        return -kEINVAL;
    if (!user_range_ok(fds, 8))
        return -kEFAULT;
    int rfd = alloc_fd();
    if (rfd < 0)
        return rfd;
    g_fds[rfd].kind = FdKind::Pipe; // reserve while the second is found
    int wfd = alloc_fd();
    g_fds[rfd] = Fd{};
    if (wfd < 0)
        return wfd;
    u32 handles[2];
    i64 r = native(Sys::pipe_create, reinterpret_cast<u64>(handles));
    if (r < 0)
        return r;
    for (int end = 0; end < 2; ++end) {
        Fd& f = g_fds[end == 0 ? rfd : wfd];
        f = Fd{};
        f.kind = FdKind::Pipe;
        f.handle = handles[end];
        f.flags = (end == 0 ? kORdonly : 1) | (flags & kONonblock);
        f.cloexec = flags & kOCloexec;
        ref_handle(f);
    }
    reinterpret_cast<int*>(fds)[0] = rfd;
    reinterpret_cast<int*>(fds)[1] = wfd;
    return 0;
}

i64 unix_pair(u64 fds, int flags) {
    if (!user_range_ok(fds, 8))
        return -kEFAULT;
    int a = alloc_fd();
    if (a < 0)
        return a;
    g_fds[a].kind = FdKind::UnixPair; // reserve while the second is found
    int b = alloc_fd();
    g_fds[a] = Fd{};
    if (b < 0)
        return b;
    u32 ab[2], ba[2]; // read end, write end
    i64 r = native(Sys::pipe_create, reinterpret_cast<u64>(ab));
    if (r < 0)
        return r;
    if ((r = native(Sys::pipe_create, reinterpret_cast<u64>(ba))) < 0) {
        native(Sys::handle_close, ab[0]);
        native(Sys::handle_close, ab[1]);
        return r;
    }
    for (int end = 0; end < 2; ++end) {
        Fd& f = g_fds[end == 0 ? a : b];
        f = Fd{};
        f.kind = FdKind::UnixPair;
        f.handle = end == 0 ? ba[0] : ab[0];
        f.handle2 = end == 0 ? ab[1] : ba[1];
        f.flags = 2; // O_RDWR
        f.cloexec = flags & kOCloexec;
        f.entry = 1; // AF_UNIX
        ref_handle(f);
    }
    reinterpret_cast<int*>(fds)[0] = a;
    reinterpret_cast<int*>(fds)[1] = b;
    return 0;
}

i64 unix_pair_shutdown_write(Fd& f) {
    if (f.handle2) {
        release_handle(f.handle2);
        f.handle2 = 0;
    }
    return 0;
}

i64 sys_lseek(int fd, i64 off, int whence) {
    Fd* f = get_fd(fd);
    if (!f)
        return -kEBADF;
    if (f->kind == FdKind::Console)
        return -kESPIPE;
    if (f->kind == FdKind::Device)
        return 0; // character devices ignore the offset
    if (f->kind == FdKind::VolFile || f->kind == FdKind::VolDir)
        return vol_seek(*f, off, whence);
    if (f->kind == FdKind::Memory) {
        const MemoryFile& m = g_memory_files[f->handle % 16];
        i64 base = whence == 0 ? 0 : whence == 1 ? static_cast<i64>(f->offset) : whence == 2 ? static_cast<i64>(m.size) : -1;
        if (base < 0 || base + off < 0)
            return -kEINVAL;
        f->offset = static_cast<u64>(base + off);
        return static_cast<i64>(f->offset);
    }
    if (f->kind == FdKind::EventFd || f->kind == FdKind::Epoll)
        return -kESPIPE;
    if (f->kind == FdKind::Pipe)
        return -kESPIPE;
    if (f->kind == FdKind::Dir) {
        // Only positions getdents64 hands out: 0, 1, a child of this
        // directory, or the end.
        const rfs::RootfsEntry& dir = g_rt.rootfs.entry(f->entry);
        if (whence != 0 || off < 0)
            return -kEINVAL;
        u64 pos = static_cast<u64>(off);
        bool ok = pos <= 1 || pos - 2 == dir.subtree_end;
        if (!ok && pos - 2 > f->entry && pos - 2 < dir.subtree_end) {
            const rfs::RootfsEntry& e = g_rt.rootfs.entry(static_cast<u32>(pos - 2));
            const char* ep = g_rt.rootfs.path(e);
            i64 parent = g_rt.rootfs.find(ep, rfs::RootfsView::parent_len(ep, e.path_len));
            ok = parent == static_cast<i64>(f->entry);
        }
        if (!ok)
            return -kEINVAL;
        f->offset = pos;
        return off;
        return -kEINVAL;
    }
    i64 base;
    switch (whence) {
    case 0: base = 0; break;
    case 1: base = static_cast<i64>(f->offset); break;
    case 2: base = static_cast<i64>(g_rt.rootfs.entry(f->entry).size); break;
    default: return -kEINVAL;
    }
    i64 pos = base + off;
    if (pos < 0 || (off > 0 && pos < base))
        return -kEINVAL;
    f->offset = static_cast<u64>(pos);
    return pos;
}

i64 sys_fstat(int fd, u64 statbuf) {
    Fd* f = get_fd(fd);
    if (!f)
        return -kEBADF;
    if (!user_range_ok(statbuf, sizeof(LinuxStat)))
        return -kEFAULT;
    auto* st = reinterpret_cast<LinuxStat*>(statbuf);
    if (f->kind == FdKind::VolFile || f->kind == FdKind::VolDir)
        return vol_fstat(*f, st);
    if (f->kind == FdKind::Console) {
        fill_console_stat(st);
    } else if (f->kind == FdKind::Pipe) {
        fill_console_stat(st);
        st->st_mode = 0010600; // a FIFO
        st->st_rdev = 0;
        st->st_ino = 1000 + f->handle;
    } else if (f->kind == FdKind::Device) {
        fill_console_stat(st);
        st->st_mode = 0020666; // crw-rw-rw-
        st->st_rdev = f->entry;
        st->st_ino = 100 + static_cast<u64>(f->device);
    } else if (f->kind == FdKind::Memory) {
        fill_console_stat(st);
        st->st_mode = 0100444; // a regular read-only file (its size: 0, as in /proc)
        st->st_rdev = 0;
        st->st_size = 0;
        st->st_ino = 2000 + f->handle;
    } else if (f->kind == FdKind::Socket || f->kind == FdKind::UnixPair) {
        fill_console_stat(st);
        st->st_mode = 0140777; // a socket
        st->st_rdev = 0;
        st->st_ino = 4000 + f->handle;
    } else if (f->kind == FdKind::EventFd || f->kind == FdKind::Epoll) {
        fill_console_stat(st);
        st->st_mode = 0600; // an anonymous inode
        st->st_rdev = 0;
        st->st_ino = 3000 + f->handle;
    } else {
        fill_stat(st, f->entry);
    }
    return 0;
}

i64 sys_fstatat(int dirfd, const char* path, u64 statbuf, int flags) {
    if (path && path[0] == 0 && (flags & kAtEmptyPath))
        return sys_fstat(dirfd, statbuf);
    if (const char* rest = proc_self_rest(path)) {
        if (!user_range_ok(statbuf, sizeof(LinuxStat)))
            return -kEFAULT;
        bool link = strcmp(rest, "exe") == 0 || strncmp(rest, "fd/", 3) == 0;
        if (link && !(flags & kAtSymlinkNofollow)) {
            if (rest[0] == 'e')
                return sys_fstatat(dirfd, g_exe, statbuf, flags);
            char tmp[8];
            if (proc_self_link(rest, tmp, sizeof tmp) < 0)
                return -kENOENT;
            int fd = 0;
            for (const char* p = rest + 3; *p; ++p)
                fd = fd * 10 + (*p - '0');
            return sys_fstat(fd, statbuf);
        }
        char tmp[8];
        if (link ? proc_self_link(rest, tmp, sizeof tmp) < 0
                 : strcmp(rest, "cmdline") != 0 && strcmp(rest, "status") != 0 && strcmp(rest, "comm") != 0)
            return -kENOENT;
        auto* st = reinterpret_cast<LinuxStat*>(statbuf);
        fill_console_stat(st);
        st->st_mode = link ? 0120777 : 0100444;
        st->st_rdev = 0;
        st->st_size = 0;
        return 0;
    }
    if (const DeviceNode* d = device_node(path)) {
        if (!user_range_ok(statbuf, sizeof(LinuxStat)))
            return -kEFAULT;
        auto* st = reinterpret_cast<LinuxStat*>(statbuf);
        fill_console_stat(st);
        st->st_mode = 0020666;
        st->st_rdev = d->rdev;
        st->st_ino = 100 + static_cast<u64>(d->device);
        return 0;
    }
    i64 idx = resolve_at(dirfd, path, !(flags & kAtSymlinkNofollow));
    if (idx < 0)
        return idx;
    if (!user_range_ok(statbuf, sizeof(LinuxStat)))
        return -kEFAULT;
    if (idx == kInVolume)
        return vol_stat(g_volume_path, !(flags & kAtSymlinkNofollow), reinterpret_cast<LinuxStat*>(statbuf));
    fill_stat(reinterpret_cast<LinuxStat*>(statbuf), static_cast<u32>(idx));
    return 0;
}

// Directory positions: 0 is ".", 1 is "..", and n >= 2 is the child entry
// with index n - 2.
i64 sys_getdents64(int fd, u64 buf, u64 len) {
    Fd* f = get_fd(fd);
    if (!f)
        return -kEBADF;
    if (f->kind == FdKind::VolDir || f->kind == FdKind::VolFile)
        return vol_getdents(*f, buf, len);
    if (f->kind != FdKind::Dir)
        return -kENOTDIR;
    if (!user_range_ok(buf, len))
        return -kEFAULT;
    const rfs::RootfsEntry& dir = g_rt.rootfs.entry(f->entry);
    u64 used = 0;
    auto* out = reinterpret_cast<u8*>(buf);
    auto emit = [&](u64 ino, const char* name, u64 nlen, u8 type, u64 next) {
        u64 reclen = (19 + nlen + 1 + 7) & ~7ull;
        if (used + reclen > len)
            return false;
        u8* rec = out + used;
        i64 next_off = static_cast<i64>(next);
        u16 rl = static_cast<u16>(reclen);
        memcpy(rec, &ino, 8);
        memcpy(rec + 8, &next_off, 8);
        memcpy(rec + 16, &rl, 2);
        rec[18] = type;
        memcpy(rec + 19, name, nlen);
        memset(rec + 19 + nlen, 0, reclen - 19 - nlen);
        used += reclen;
        f->offset = next;
        return true;
    };
    constexpr u8 kDtDir = 4, kDtLnk = 10, kDtReg = 8;
    if (f->offset == 0 && !emit(f->entry + 1, ".", 1, kDtDir, 1))
        return -kEINVAL;
    if (f->offset == 1) {
        i64 parent = g_rt.rootfs.find(g_rt.rootfs.path(dir),
                                      rfs::RootfsView::parent_len(g_rt.rootfs.path(dir), dir.path_len));
        if (!emit(static_cast<u64>(parent < 0 ? f->entry : parent) + 1, "..", 2, kDtDir,
                  rfs::RootfsView::first_child(f->entry) + 2))
            return used ? static_cast<i64>(used) : -kEINVAL;
    }
    while (f->offset >= 2 && f->offset - 2 < dir.subtree_end) {
        u32 i = static_cast<u32>(f->offset - 2);
        const rfs::RootfsEntry& e = g_rt.rootfs.entry(i);
        u64 nlen = 0;
        const char* name = rfs::RootfsView::basename(g_rt.rootfs.path(e), e.path_len, &nlen);
        u32 type = e.mode & rfs::kTypeMask;
        u8 dt = type == rfs::kTypeDir ? kDtDir : type == rfs::kTypeSymlink ? kDtLnk : kDtReg;
        if (!emit(i + 1, name, nlen, dt, u64(g_rt.rootfs.next_sibling(i)) + 2))
            return used ? static_cast<i64>(used) : -kEINVAL; // buffer too small
    }
    return static_cast<i64>(used);
}

i64 sys_readlinkat(int dirfd, const char* path, u64 buf, u64 len) {
    if (const char* rest = proc_self_rest(path)) {
        if (static_cast<i64>(len) <= 0)
            return -kEINVAL;
        if (!user_range_ok(buf, len))
            return -kEFAULT;
        return proc_self_link(rest, reinterpret_cast<char*>(buf), len);
    }
    i64 idx = resolve_at(dirfd, path, false);
    if (idx == kInVolume)
        return vol_readlink(g_volume_path, buf, len);
    if (idx < 0)
        return idx;
    const rfs::RootfsEntry& e = g_rt.rootfs.entry(static_cast<u32>(idx));
    if ((e.mode & rfs::kTypeMask) != rfs::kTypeSymlink)
        return -kEINVAL;
    if (static_cast<i64>(len) <= 0)
        return -kEINVAL;
    if (!user_range_ok(buf, len))
        return -kEFAULT;
    u64 n = e.size < len ? e.size : len;
    memcpy(reinterpret_cast<void*>(buf), g_rt.rootfs.symlink_target(e), n);
    return static_cast<i64>(n);
}

i64 sys_statx(int dirfd, const char* path, int flags, u32 mask, u64 buf) {
    struct Timestamp {
        i64 sec;
        u32 nsec;
        abi::i32 pad;
    };
    struct Statx {
        u32 mask, blksize;
        u64 attributes;
        u32 nlink, uid, gid;
        u16 mode, pad0;
        u64 ino, size, blocks, attributes_mask;
        Timestamp atime, btime, ctime, mtime;
        u32 rdev_major, rdev_minor, dev_major, dev_minor;
        u64 spare[14];
    };
    static_assert(sizeof(Statx) == 256);
    if (flags & ~(kAtSymlinkNofollow | kAtEmptyPath | 0x800 /* AT_NO_AUTOMOUNT */ | 0x6000 /* AT_STATX_SYNC_TYPE */))
        return -kEINVAL;
    if (!user_range_ok(buf, sizeof(Statx)))
        return -kEFAULT;
    LinuxStat st{};
    i64 r = sys_fstatat(dirfd, path, reinterpret_cast<u64>(&st), flags & (kAtSymlinkNofollow | kAtEmptyPath));
    if (r < 0)
        return r;
    Statx x{};
    x.mask = 0x7ff; // STATX_BASIC_STATS
    x.blksize = static_cast<u32>(st.st_blksize);
    x.nlink = static_cast<u32>(st.st_nlink);
    x.uid = st.st_uid;
    x.gid = st.st_gid;
    x.mode = static_cast<u16>(st.st_mode);
    x.ino = st.st_ino;
    x.size = static_cast<u64>(st.st_size);
    x.blocks = static_cast<u64>(st.st_blocks);
    x.atime = {static_cast<i64>(st.st_atime_sec), static_cast<u32>(st.st_atime_nsec), 0};
    x.mtime = {static_cast<i64>(st.st_mtime_sec), static_cast<u32>(st.st_mtime_nsec), 0};
    x.ctime = {static_cast<i64>(st.st_ctime_sec), static_cast<u32>(st.st_ctime_nsec), 0};
    x.rdev_major = static_cast<u32>(st.st_rdev >> 8) & 0xfff;
    x.rdev_minor = static_cast<u32>(st.st_rdev & 0xff);
    x.dev_major = static_cast<u32>(st.st_dev >> 8) & 0xfff;
    x.dev_minor = static_cast<u32>(st.st_dev & 0xff);
    memcpy(reinterpret_cast<void*>(buf), &x, sizeof x);
    return 0;
}

i64 sys_sendfile(int out, int in, u64 offset, u64 count) {
    Fd* fi = get_fd(in);
    Fd* fo = get_fd(out);
    if (!fi || !fo)
        return -kEBADF;
    i64 pos = 0;
    if (offset) {
        if (!user_range_ok(offset, 8))
            return -kEFAULT;
        memcpy(&pos, reinterpret_cast<const void*>(offset), 8);
        if (pos < 0)
            return -kEINVAL;
    }
    // Through a buffer on this thread's runtime stack (the reads and
    // writes may drop the runtime lock while they wait).
    u8 buf[16 * 1024];
    u64 done = 0;
    while (done < count) {
        u64 want = count - done < sizeof buf ? count - done : sizeof buf;
        i64 n = offset ? sys_pread(in, reinterpret_cast<u64>(buf), want, pos)
                       : sys_read(in, reinterpret_cast<u64>(buf), want);
        if (n <= 0) {
            if (n < 0 && done == 0)
                return n;
            break;
        }
        i64 w = sys_write(out, reinterpret_cast<u64>(buf), static_cast<u64>(n));
        if (w <= 0) {
            if (done == 0)
                return w;
            break;
        }
        done += static_cast<u64>(w);
        pos += w;
        if (w < n || static_cast<u64>(n) < want)
            break;
    }
    if (offset)
        memcpy(reinterpret_cast<void*>(offset), &pos, 8);
    return static_cast<i64>(done);
}

// --- calls that change files: the volumes' file service, or the rootfs's
// refusals (rootfs_change_path, rootfs_change_fd) --------------------------------

i64 sys_mkdirat(int dirfd, const char* path, u32 mode) {
    i64 idx = path ? resolve_at(dirfd, path, false) : -kEFAULT;
    if (idx == kInVolume)
        return vol_mkdir(g_volume_path, mode & ~current_umask());
    return rootfs_change_path(dirfd, path, true, false);
}

i64 sys_unlinkat(int dirfd, const char* path, int flags) {
    constexpr int kAtRemovedir = 0x200;
    if (flags & ~kAtRemovedir)
        return -kEINVAL;
    i64 idx = path ? resolve_at(dirfd, path, false) : -kEFAULT;
    if (idx == kInVolume)
        return vol_unlink(g_volume_path, flags & kAtRemovedir);
    return rootfs_change_path(dirfd, path, false, false);
}

i64 sys_symlinkat(const char* target, int dirfd, const char* path) {
    i64 idx = path ? resolve_at(dirfd, path, false) : -kEFAULT;
    if (idx == kInVolume)
        return vol_symlink(target, g_volume_path);
    return rootfs_change_path(dirfd, path, true, false);
}

namespace {
// rename and link: both names in one volume (else EXDEV, as across Linux
// mounts), or the rootfs's answers.
i64 two_names(bool link, int olddir, const char* oldpath, int newdir, const char* newpath, bool follow_old) {
    i64 a = oldpath ? resolve_at(olddir, oldpath, follow_old) : -kEFAULT;
    if (a < 0)
        return a;
    char from[rfs::kMaxPath + 1] = {};
    if (a == kInVolume)
        memcpy(from, g_volume_path, cstr_len(g_volume_path, rfs::kMaxPath) + 1);
    i64 b = newpath ? resolve_at(newdir, newpath, false) : -kEFAULT;
    if (a == kInVolume && b == kInVolume)
        return link ? vol_link(from, g_volume_path) : vol_rename(from, g_volume_path);
    if (a == kInVolume || b == kInVolume)
        return b < 0 && b != -kENOENT ? b : -18; // EXDEV
    return link ? rootfs_change_path(newdir, newpath, true, false) : -kEROFS;
}
} // namespace

i64 sys_renameat(int olddir, const char* oldpath, int newdir, const char* newpath, u32 flags) {
    if (flags)
        return -kEINVAL; // RENAME_NOREPLACE, RENAME_EXCHANGE: not offered
    return two_names(false, olddir, oldpath, newdir, newpath, false);
}

i64 sys_linkat(int olddir, const char* oldpath, int newdir, const char* newpath, int flags) {
    constexpr int kAtSymlinkFollow = 0x400;
    return two_names(true, olddir, oldpath, newdir, newpath, flags & kAtSymlinkFollow);
}

i64 sys_fchmodat(int dirfd, const char* path, u32 mode, bool follow) {
    i64 idx = path ? resolve_at(dirfd, path, follow) : -kEFAULT;
    if (idx == kInVolume)
        return vol_chmod(g_volume_path, mode, follow);
    return rootfs_change_path(dirfd, path, false, follow);
}

i64 sys_fchownat(int dirfd, const char* path, bool follow) {
    i64 idx = path ? resolve_at(dirfd, path, follow) : -kEFAULT;
    if (idx == kInVolume) {
        // Volume files belong to the program's user already (see fstat):
        // there is no other owner to give them. Succeeds for an existing file.
        LinuxStat st;
        return vol_stat(g_volume_path, follow, &st);
    }
    return rootfs_change_path(dirfd, path, false, follow);
}

i64 sys_utimensat(int dirfd, const char* path, u64 times, int flags) {
    if (!path) { // futimens
        Fd* f = get_fd(dirfd);
        if (f && (f->kind == FdKind::VolFile || f->kind == FdKind::VolDir))
            return vol_set_times(nullptr, f, times, true);
        return rootfs_change_fd(dirfd, false);
    }
    bool follow = !(flags & kAtSymlinkNofollow);
    i64 idx = resolve_at(dirfd, path, follow);
    if (idx == kInVolume)
        return vol_set_times(g_volume_path, nullptr, times, follow);
    return rootfs_change_path(dirfd, path, false, follow);
}

i64 sys_truncate(const char* path, i64 length) {
    i64 idx = path ? resolve_at(kAtFdcwd, path, true) : -kEFAULT;
    if (idx == kInVolume) {
        i64 fd = vol_open(g_volume_path, 1 /* O_WRONLY */, 0);
        if (fd < 0)
            return fd;
        i64 r = vol_truncate(g_fds[fd], length);
        release_fd(g_fds[fd]);
        return r;
    }
    return rootfs_change_path(kAtFdcwd, path, false, true);
}

i64 sys_ftruncate(int fd, i64 length) {
    Fd* f = get_fd(fd);
    if (f && f->kind == FdKind::VolFile)
        return vol_truncate(*f, length);
    return rootfs_change_fd(fd, true);
}

i64 sys_fchmod(int fd, u32 mode) {
    Fd* f = get_fd(fd);
    if (f && (f->kind == FdKind::VolFile || f->kind == FdKind::VolDir))
        return vol_fchmod(*f, mode);
    return rootfs_change_fd(fd, false);
}

i64 sys_fchown(int fd) {
    Fd* f = get_fd(fd);
    if (f && (f->kind == FdKind::VolFile || f->kind == FdKind::VolDir))
        return 0; // see sys_fchownat
    return rootfs_change_fd(fd, false);
}

i64 sys_fsync(int fd) {
    Fd* f = get_fd(fd);
    if (f && f->kind == FdKind::VolFile)
        return vol_sync(*f);
    return fd_check(fd);
}

i64 rootfs_change_path(int dirfd, const char* path, bool create, bool follow) {
    if (!path)
        return -kEFAULT;
    i64 idx = resolve_at(dirfd, path, follow);
    if (idx >= 0)
        return create ? -kEEXIST : -kEROFS;
    return idx == -kENOENT && create ? -kEROFS : idx;
}

i64 rootfs_change_fd(int fd, bool truncate) {
    Fd* f = get_fd(fd);
    if (!f)
        return -kEBADF;
    if (truncate && f->kind != FdKind::File)
        return -kEINVAL;
    return -kEROFS;
}

i64 fd_check(int fd) { return get_fd(fd) ? 0 : -kEBADF; }

i64 sys_faccessat(int dirfd, const char* path, int mode) {
    i64 idx = resolve_at(dirfd, path, true);
    if (idx == kInVolume) {
        LinuxStat st;
        int v = volume_at(g_volume_path, cstr_len(g_volume_path, rfs::kMaxPath));
        i64 r = vol_stat(g_volume_path, true, &st);
        if (r < 0)
            return r;
        if ((mode & 2) && !volume_writable(v))
            return -kEROFS;
        if ((mode & 1) && !(st.st_mode & 0111))
            return -kEACCES;
        return 0;
    }
    if (idx < 0)
        return idx;
    if (mode & 2)
        return -kEROFS;
    const rfs::RootfsEntry& e = g_rt.rootfs.entry(static_cast<u32>(idx));
    if ((mode & 1) && !(e.mode & 0111))
        return -kEACCES;
    return 0;
}

i64 sys_ioctl(int fd, u64 req, u64 arg) {
    Fd* f = get_fd(fd);
    if (!f)
        return -kEBADF;
    if (req == 0x5421) { // FIONBIO
        if (!user_range_ok(arg, 4))
            return -kEFAULT;
        int on;
        memcpy(&on, reinterpret_cast<const void*>(arg), 4);
        f->flags = on ? (f->flags | kONonblock) : (f->flags & ~kONonblock);
        return 0;
    }
    // The console is not a terminal yet: TCGETS, TIOCGWINSZ and the rest
    // answer ENOTTY, so programs treat output as a pipe or file.
    return -kENOTTY;
}

i64 sys_dup(int oldfd) {
    Fd* f = get_fd(oldfd);
    if (!f)
        return -kEBADF;
    int fd = alloc_fd();
    if (fd < 0)
        return fd;
    g_fds[fd] = *f;
    g_fds[fd].cloexec = false;
    ref_handle(g_fds[fd]);
    return fd;
}

i64 sys_dup3(int oldfd, int newfd, int flags, bool dup2) {
    Fd* f = get_fd(oldfd);
    if (!f)
        return -kEBADF;
    if (newfd < 0 || newfd >= kMaxFds)
        return -kEBADF;
    if (oldfd == newfd)
        return dup2 ? newfd : -kEINVAL;
    if (flags & ~kOCloexec)
        return -kEINVAL;
    Fd copy = *f;
    if (g_fds[newfd].kind != FdKind::Free)
        release_fd(g_fds[newfd]);
    g_fds[newfd] = copy;
    g_fds[newfd].cloexec = flags & kOCloexec;
    ref_handle(g_fds[newfd]);
    return newfd;
}

i64 sys_fcntl(int fd, int cmd, u64 arg) {
    Fd* f = get_fd(fd);
    if (!f)
        return -kEBADF;
    switch (cmd) {
    case 0:    // F_DUPFD
    case 1030: { // F_DUPFD_CLOEXEC
        if (arg >= kMaxFds)
            return -kEINVAL;
        int nfd = alloc_fd(static_cast<int>(arg));
        if (nfd < 0)
            return nfd;
        g_fds[nfd] = *f;
        g_fds[nfd].cloexec = cmd == 1030;
        ref_handle(g_fds[nfd]);
        return nfd;
    }
    case 1: return f->cloexec ? 1 : 0; // F_GETFD
    case 2: f->cloexec = arg & 1; return 0; // F_SETFD
    case 3: return f->flags; // F_GETFL
    case 4: // F_SETFL: O_NONBLOCK matters for sockets and pipes; O_APPEND has no effect on these files
        f->flags = (f->flags & ~kONonblock) | (static_cast<u32>(arg) & kONonblock);
        return 0;
    default: return -kEINVAL;
    }
}

i64 sys_chdir(const char* path) {
    i64 idx = resolve_at(kAtFdcwd, path, true);
    if (idx == kInVolume) {
        LinuxStat st;
        i64 r = vol_stat(g_volume_path, true, &st);
        if (r < 0)
            return r;
        if ((st.st_mode & rfs::kTypeMask) != rfs::kTypeDir)
            return -kENOTDIR;
        memcpy(g_rt.cwd, g_volume_path, cstr_len(g_volume_path, rfs::kMaxPath) + 1);
        return 0;
    }
    if (idx < 0)
        return idx;
    const rfs::RootfsEntry& e = g_rt.rootfs.entry(static_cast<u32>(idx));
    if ((e.mode & rfs::kTypeMask) != rfs::kTypeDir)
        return -kENOTDIR;
    memcpy(g_rt.cwd, g_rt.rootfs.path(e), e.path_len);
    g_rt.cwd[e.path_len] = 0;
    return 0;
}

i64 sys_getcwd(u64 buf, u64 len) {
    u64 n = cstr_len(g_rt.cwd, sizeof g_rt.cwd) + 1;
    if (len < n)
        return -kERANGE;
    if (!user_range_ok(buf, n))
        return -kEFAULT;
    memcpy(reinterpret_cast<void*>(buf), g_rt.cwd, n);
    return static_cast<i64>(n);
}

} // namespace kos::rt
