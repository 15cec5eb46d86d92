#include "file.h"

#include "../arch/x86_64/platform.h"
#include "errno.h"
#include "kos/base/string.h"
#include "kos/boot.h"
#include "kos/file.h"
#include "kos/rootfs_image.h"
#include "loader.h"
#include "pmm.h"
#include "security_hook.h"
#include "user_buffer.h"

namespace kos {
namespace {

namespace fs = abi::file;
using abi::i64;
using abi::u32;
using abi::u64;

constexpr i64 kPerm = 1;
constexpr i64 kBadf = 9;
constexpr i64 kXdev = 18;
constexpr i64 kMfile = 24;
constexpr i64 kRofs = 30;
constexpr i64 kNameTooLong = 36;
constexpr u64 kPage = 4096;
constexpr u32 kLinuxAccmode = 3, kLinuxCreat = 0x40, kLinuxTrunc = 0x200;

struct Volume {
    const fs::VolumeEntry* entry = nullptr;
    u32 path_len = 0;
    u32 label = ~0u; // the policy's id for its label
    u32 label_len = 0;
};
Volume g_volumes[fs::kMaxVolumes];
u32 g_volume_count = 0;

struct VolumeFile {
    KernelObject object; // first: handles point here
    u32 id = 0;          // the VMM's file id; 0: slot free
    u32 volume = 0;
};
VolumeFile g_files[fs::kMaxOpenFiles];

// The page handed to the VMM: one call at a time (one vCPU).
alignas(4096) fs::FileCall g_call;

// What travels before the paths, both ways.
constexpr u64 kHeaderBytes = offsetof(fs::FileCall, path);
constexpr u64 kReplyBytes = offsetof(fs::FileCall, path_len);

u64 bounded_len(const char* s, u64 cap) {
    u64 n = 0;
    while (n < cap && s[n])
        ++n;
    return n;
}

VolumeFile* file_of(KernelObject* o) { return reinterpret_cast<VolumeFile*>(o); }

void close_in_vmm(u32 id) {
    memset(&g_call, 0, kHeaderBytes);
    g_call.op = static_cast<u32>(fs::FileOp::Close);
    g_call.file = id;
    platform::file_call(platform::kernel_virt_to_phys(&g_call));
}

i64 adopt(Task& t, u32 id, u32 volume) {
    VolumeFile* f = nullptr;
    for (VolumeFile& c : g_files)
        if (c.id == 0) {
            f = &c;
            break;
        }
    i64 result = -kMfile;
    if (f) {
        f->object = {ObjectType::VolumeFile, 0};
        f->id = id;
        f->volume = volume;
        auto h = t.handles.insert(&f->object, ObjectType::VolumeFile, kRightTransfer | kRightDuplicate);
        if (!h.is_error())
            return *h;
        f->id = 0;
        result = -h.error();
    }
    close_in_vmm(id);
    return result;
}

// Whether task `t` sees volume `v`: a scratch /tmp with a label is the
// private /tmp of that label's processes (each Linux label of the init
// description has its own, so /tmp is no channel between domains).
bool sees(const Task& t, u32 v) {
    const Volume& vol = g_volumes[v];
    if (!(vol.entry->flags & fs::kVolumeScratch) || vol.label_len == 0)
        return true;
    return strlen(t.label_name) == vol.label_len && memcmp(t.label_name, vol.entry->label, vol.label_len) == 0;
}

// Copies a path of the call in and rewrites it relative to its volume,
// whose index it returns (or -errno).
i64 take_path(Task& t, u64 call_va, u64 field, char* path, u32* len) {
    if (*len == 0 || *len > fs::kMaxFilePath)
        return *len ? -kNameTooLong : -err::kNoEnt;
    if (!t.as.copy_in(call_va + field, path, *len))
        return -err::kFault;
    if (!abi::rootfs::RootfsView::path_normalized(path, *len))
        return -err::kInval;
    for (u32 i = 0; i < g_volume_count; ++i) {
        u32 vl = g_volumes[i].path_len;
        if (*len < vl || memcmp(path, g_volumes[i].entry->path, vl) != 0 || (*len > vl && path[vl] != '/') ||
            !sees(t, i))
            continue;
        u32 skip = *len == vl ? vl : vl + 1;
        memmove(path, path + skip, *len - skip);
        *len -= skip;
        return i;
    }
    return -err::kNoEnt;
}

// Policy and mount checks of a call on volume `v`.
i64 check_access(const Task& t, u32 v, bool read, bool write) {
    const fs::VolumeEntry& e = *g_volumes[v].entry;
    if (write && !(e.flags & fs::kVolumeWritable))
        return -kRofs;
    if (e.flags & fs::kVolumeScratch)
        return 0;
    if (read && !check_file(t, g_volumes[v].label, false).allow)
        return -err::kAccess;
    if (write && !check_file(t, g_volumes[v].label, true).allow)
        return -err::kAccess;
    return 0;
}

i64 build_segments(Task& t, u64 va, u64 len, bool write) {
    static_assert(sizeof(fs::FileSegment) == sizeof(PhysSegment));
    if (len > fs::kMaxFileData)
        len = fs::kMaxFileData;
    i64 r = user_segments(t, va, len, write, reinterpret_cast<PhysSegment*>(g_call.segments), fs::kMaxFileSegments,
                          &g_call.segment_count);
    return r < 0 ? r : 0;
}

bool is_read_open(u32 flags) { return (flags & kLinuxAccmode) != 1; }
bool is_write_open(u32 flags) {
    return (flags & kLinuxAccmode) != 0 || (flags & (kLinuxCreat | kLinuxTrunc)) != 0;
}

} // namespace

const char* volumes_init() {
    const auto* bh = g_boot_image.header;
    if (bh->volumes_offset == 0)
        return nullptr;
    if (bh->volumes_offset % kPage != 0 || bh->volumes_size != sizeof(fs::VolumeTable) ||
        bh->volumes_offset > bh->rootfs_offset || bh->rootfs_offset - bh->volumes_offset < bh->volumes_size)
        return "the volume table lies outside its place in the boot image";
    const auto* vt = static_cast<const fs::VolumeTable*>(pmm::phys_to_virt(g_boot_image.pa + bh->volumes_offset));
    if (vt->magic != fs::kVolumeTableMagic || vt->count > fs::kMaxVolumes)
        return "the volume table is malformed (magic or count)";
    u32 count = 0; // the volumes: the entries before the first pipe
    while (count < vt->count && !(vt->entries[count].flags & fs::kVolumePipe))
        ++count;
    for (u32 i = count; i < vt->count; ++i)
        if (!(vt->entries[i].flags & fs::kVolumePipe))
            return "a volume table entry follows a pipe";
    for (u32 i = 0; i < count; ++i) {
        const fs::VolumeEntry& e = vt->entries[i];
        u64 pl = bounded_len(e.path, fs::kMaxVolumePath);
        u64 ll = bounded_len(e.label, fs::kMaxVolumeLabel);
        if (pl == fs::kMaxVolumePath || ll == fs::kMaxVolumeLabel || pl < 2 ||
            !abi::rootfs::RootfsView::path_normalized(e.path, pl) || (ll == 0 && !(e.flags & fs::kVolumeScratch)))
            return "a volume table entry is malformed (path or label)";
        for (u32 j = 0; j < i; ++j) {
            const fs::VolumeEntry& o = *g_volumes[j].entry;
            if ((e.flags & o.flags & fs::kVolumeScratch) && ll && g_volumes[j].label_len &&
                strcmp(e.path, o.path) == 0 && strcmp(e.label, o.label) != 0)
                continue; // the private /tmp of two labels
            u32 ol = g_volumes[j].path_len;
            u64 shorter = ol < pl ? ol : pl;
            const char* longer = ol < pl ? e.path : g_volumes[j].entry->path;
            if (memcmp(e.path, g_volumes[j].entry->path, shorter) == 0 &&
                (ol == pl || longer[shorter] == '/'))
                return "two volumes of the volume table nest";
        }
        g_volumes[i] = {&e, static_cast<u32>(pl), ll ? security_label_id(e.label, static_cast<u32>(ll)) : ~0u,
                        static_cast<u32>(ll)};
    }
    g_volume_count = count;
    return nullptr;
}

void volume_file_released(KernelObject* object) {
    if (object->type != ObjectType::VolumeFile || object->refcount != 0)
        return;
    VolumeFile* f = file_of(object);
    if (f->id == 0)
        return;
    u32 id = f->id;
    f->id = 0;
    close_in_vmm(id);
}

i64 file_call(Thread* self, u64 call_va) {
    Task& t = *self->task;
    if (g_volume_count == 0)
        return -err::kNoEnt;
    if (!t.as.copy_in(call_va, &g_call, kHeaderBytes))
        return -err::kFault;
    auto op = static_cast<fs::FileOp>(g_call.op);
    u32 handle = g_call.file;
    u64 buffer = g_call.buffer;
    u32 path_len = g_call.path_len, path2_len = g_call.path2_len;
    g_call.subject = t.policy_label;
    g_call.segment_count = 0;
    g_call.volume = 0;
    g_call.path_len = g_call.path2_len = 0;

    bool by_path = false, by_file = false, read = false, write = false;
    switch (op) {
    case fs::FileOp::Open:
        by_path = true;
        read = is_read_open(g_call.flags);
        write = is_write_open(g_call.flags);
        break;
    case fs::FileOp::Stat:
    case fs::FileOp::ReadLink: by_path = read = true; break;
    case fs::FileOp::Mkdir:
    case fs::FileOp::Unlink:
    case fs::FileOp::Rename:
    case fs::FileOp::Symlink:
    case fs::FileOp::Link: by_path = write = true; break;
    case fs::FileOp::Chmod:
    case fs::FileOp::SetTimes:
        write = true;
        (path_len ? by_path : by_file) = true;
        break;
    case fs::FileOp::Read:
    case fs::FileOp::Write:
    case fs::FileOp::Seek:
    case fs::FileOp::FStat:
    case fs::FileOp::ReadDir:
    case fs::FileOp::Truncate:
    case fs::FileOp::Sync: by_file = true; break;
    default: return -err::kInval; // Close goes with the last handle (handle_close)
    }

    i64 v = 0;
    const Task* subject = &t;
    if (by_path) {
        v = take_path(t, call_va, offsetof(fs::FileCall, path), g_call.path, &path_len);
        if (v < 0)
            return v;
        // A labeled volume is reached by path only through the VFS server,
        // for the client whose request (judged by the policy) it serves;
        // the scratch /tmp, private to the VM, by every task.
        if (!(g_volumes[v].entry->flags & fs::kVolumeScratch)) {
            Thread* client = self->reply_to;
            if (t.server != PersonalityServer::Vfs || !client || client->task->dead)
                return -kPerm;
            subject = client->task;
            g_call.subject = subject->policy_label;
        }
        g_call.path_len = path_len;
        if (op == fs::FileOp::Rename || op == fs::FileOp::Link) {
            i64 v2 = take_path(t, call_va, offsetof(fs::FileCall, path2), g_call.path2, &path2_len);
            if (v2 < 0)
                return v2 == -err::kNoEnt ? -kXdev : v2;
            if (v2 != v)
                return -kXdev;
            g_call.path2_len = path2_len;
        } else if (op == fs::FileOp::Symlink) {
            if (path2_len == 0 || path2_len > fs::kMaxFilePath)
                return path2_len ? -kNameTooLong : -err::kNoEnt;
            if (!t.as.copy_in(call_va + offsetof(fs::FileCall, path2), g_call.path2, path2_len))
                return -err::kFault;
            g_call.path2_len = path2_len;
        }
    } else {
        auto r = t.handles.get(handle, ObjectType::VolumeFile, 0);
        if (r.is_error())
            return -kBadf;
        VolumeFile* f = file_of((*r).object);
        g_call.file = f->id;
        v = f->volume;
    }
    g_call.volume = static_cast<u32>(v);
    if (by_path || write) {
        i64 a = check_access(*subject, static_cast<u32>(v), read, write);
        if (a < 0)
            return a;
    }
    if (op == fs::FileOp::Read || op == fs::FileOp::Write || op == fs::FileOp::ReadDir || op == fs::FileOp::ReadLink) {
        i64 r = build_segments(t, buffer, g_call.length, op != fs::FileOp::Write);
        if (r < 0)
            return r;
    }

    i64 result = platform::file_call(platform::kernel_virt_to_phys(&g_call));
    if (result >= 0 && op == fs::FileOp::Open) {
        i64 h = adopt(t, g_call.file, static_cast<u32>(v));
        if (h < 0)
            return h;
        result = h;
        g_call.file = static_cast<u32>(h);
    } else {
        g_call.file = handle;
    }
    g_call.subject = 0;
    g_call.volume = 0;
    g_call.buffer = buffer;
    g_call.segment_count = 0;
    if (!t.as.copy_out(call_va, &g_call, kReplyBytes))
        return -err::kFault;
    return result;
}

} // namespace kos
