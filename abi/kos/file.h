// Volumes for programs in the VM: host directories attached with
// `kos run -v`, served by the VMM's file service (kvm-host/file_service.h)
// through one native call and one hypercall that carry the same FileCall
// page, as sockets do (kos/net.h).
//
//   runtime --native file_call(FileCall*)--> kernel --hc::Op::File(gpa)--> VMM
//
// The volume table (VolumeTable, in the boot image) lists each volume's
// guest path, label and access. The runtime sends a call on an absolute,
// normalized guest path (no ".", ".." or empty components) that lies in a
// volume. The kernel finds the volume by the longest matching prefix,
// asks the policy `security <caller> -> <volume label> file.read` (or
// file.write for anything that changes the volume or opens for writing),
// refuses changes to a read-only volume (EROFS), rewrites the path relative
// to the volume's root, stamps the caller's label into `subject`, turns the
// data buffer into guest-physical segments and makes the hypercall. Open
// files are kernel objects behind handles (fork shares them, and with them
// the file position, as Linux shares an open file description). The VMM
// checks the same things again against the same compiled policy and the
// same table, then works on the host directory with openat2(RESOLVE_BENEATH):
// a symlink or ".." that leaves the volume fails (EACCES).
#pragma once

#include "kos/types.h"

namespace kos::abi::file {

// ---- The volume table (boot image section, read by kernel and runtime) ----

inline constexpr u64 kVolumeTableMagic = 0x314c4f56534f4bull; // "KOSVOL1"
inline constexpr u32 kMaxVolumes = 16;
inline constexpr u32 kMaxVolumePath = 256; // guest path, with its NUL
inline constexpr u32 kMaxVolumeLabel = 128;

enum VolumeFlags : u32 {
    kVolumeWritable = 1u << 0, // mounted read-write (else changes fail with EROFS)
    kVolumeScratch = 1u << 1,  // the VM's private /tmp: writable, no label check
    // Not a volume: a declared pipe ([[pipe]]), served by the pipe server
    // (pipe.kidl). Pipe entries follow every volume in the table; the
    // kernel and the VMM's file service know nothing of them.
    kVolumePipe = 1u << 2,
};

struct VolumeEntry {
    char path[kMaxVolumePath];   // absolute, normalized, NUL-terminated, not "/"
    char label[kMaxVolumeLabel]; // the volume's label (NUL-terminated); scratch: "", or the
                                 // label whose processes alone see it (their private /tmp)
    u32 flags;                   // VolumeFlags
    u32 reserved;
    u64 reserved2;
};
static_assert(sizeof(VolumeEntry) == 400);

struct VolumeTable {
    u64 magic; // kVolumeTableMagic
    u32 count; // entries in use, at most kMaxVolumes; no entry's path is a prefix
               // (at a component boundary) of another's
    u32 reserved;
    VolumeEntry entries[kMaxVolumes];
};

// ---- The call ----

enum class FileOp : u32 {
    Open = 1,      // path, flags (Linux O_*), mode -> file id in `file`, `stat` of it
    Close = 2,     // file (the kernel sends it when the last handle goes)
    Read = 3,      // file, segments, offset (kAtPosition: at the file position,
                   // which advances) -> bytes, 0 at the end
    Write = 4,     // file, segments, offset (kAtPosition, or O_APPEND) -> bytes
    Seek = 5,      // file, offset, arg = whence (0 SET, 1 CUR, 2 END) -> new position
    Stat = 6,      // path, arg = kNoFollow -> 0, `stat`
    FStat = 7,     // file -> 0, `stat`
    ReadDir = 8,   // file, segments -> bytes of linux_dirent64 records, 0 at the end
    Mkdir = 9,     // path, mode
    Unlink = 10,   // path, arg = kRemoveDir: rmdir (else unlink; EISDIR on a directory)
    Rename = 11,   // path -> path2, both in the same volume (else EXDEV)
    Symlink = 12,  // path: the new link; path2: its target, any text (not resolved)
    ReadLink = 13, // path, segments -> bytes of the target (not NUL-terminated)
    Truncate = 14, // file (opened for writing), offset = the new length
    Chmod = 15,    // path (or file when path_len == 0), mode; arg = kNoFollow
    SetTimes = 16, // path (or file when path_len == 0), times[0] atime, times[1] mtime
                   // in ns since the epoch, or kTimeNow / kTimeOmit; arg = kNoFollow
    Sync = 17,     // file: fsync
    Link = 18,     // path (existing) -> path2 (the new name), same volume
};

inline constexpr i64 kAtPosition = -1;
inline constexpr u32 kNoFollow = 1;  // Stat/Chmod/SetTimes: the last component's symlink itself
inline constexpr u32 kRemoveDir = 1; // Unlink: rmdir
inline constexpr i64 kTimeNow = -1;  // SetTimes
inline constexpr i64 kTimeOmit = -2;

inline constexpr u32 kMaxFilePath = 1024; // bytes of a path, without a NUL
inline constexpr u32 kMaxFileSegments = 64;
inline constexpr u64 kMaxFileData = 256 * 1024; // a call moves at most this many bytes
inline constexpr u32 kMaxOpenFiles = 1024;      // open files of the whole VM

struct FileSegment {
    u64 addr; // kernel -> VMM: guest-physical address
    u64 len;
};

// As Linux's struct statx reports them; uid and gid are the host's (the
// runtime shows volume files as owned by the program's own uid and gid).
struct FileStat {
    u64 ino;
    u64 size;
    u64 blocks; // 512-byte blocks
    i64 atime_ns;
    i64 mtime_ns;
    i64 ctime_ns;
    u32 mode; // st_mode: type and permission bits
    u32 nlink;
    u32 uid;
    u32 gid;
    u32 blksize;
    u32 reserved;
};
static_assert(sizeof(FileStat) == 72);

// One page, shared layout for both hops.
struct FileCall {
    u32 op;            // FileOp
    u32 subject;       // kernel -> VMM: the caller's label index in the compiled policy
    u32 file;          // handle (runtime <-> kernel), file id (kernel <-> VMM); Open: out
    u32 volume;        // kernel -> VMM: index in the volume table
    u32 flags;         // Open: Linux O_* flags (O_CLOEXEC is the runtime's business)
    u32 mode;          // Open with O_CREAT, Mkdir, Chmod: permission bits
    u32 arg;           // see FileOp
    u32 segment_count; // kernel -> VMM: segments of `buffer`
    i64 offset;        // Read/Write/Seek/Truncate
    i64 times[2];      // SetTimes
    u64 buffer;        // runtime -> kernel: Read/Write/ReadDir/ReadLink data in the
    u64 length;        //   caller's memory, and its length (at most kMaxFileData)
    FileStat stat;     // out: Open, Stat, FStat
    u32 path_len;      // runtime -> kernel: absolute guest paths; kernel -> VMM:
    u32 path2_len;     //   relative to the volume's root ("" is the root itself)
    char path[kMaxFilePath];
    char path2[kMaxFilePath]; // Rename/Link: the second path; Symlink: the target
    FileSegment segments[kMaxFileSegments];
};
static_assert(sizeof(FileCall) <= 4096);

} // namespace kos::abi::file
