// The VM's file service: the host side of volumes (`kos run -v`,
// abi/kos/file.h describes the FileCall page and the path a call takes).
//
// Two threads touch it:
//
// - the vCPU thread calls handle() for each hc::Op::File hypercall. It
//   validates every field of the page (the guest kernel may be
//   compromised), asks the bundle's compiled policy again, copies the
//   guest's data between guest RAM and the service's staging buffer, and
//   hands the host work to the I/O thread, waiting for its answer (a mutex
//   and two condition variables: futexes, no file syscall).
// - the I/O thread owns every host descriptor and makes every host file
//   system call: through its io_uring where io_uring has the operation
//   (OPENAT2, READ, WRITE, STATX, CLOSE, FSYNC, MKDIRAT, UNLINKAT,
//   RENAMEAT, SYMLINKAT, LINKAT, FTRUNCATE when the kernel has it), plain
//   system calls for the rest (getdents64, readlinkat, fchmodat2/fchmod,
//   utimensat, lseek, fcntl(F_SETFL), ftruncate on kernels without the
//   ring op).
//
// Path safety: every path is relative to a volume's root descriptor and is
// resolved with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS), so no
// symlink or ".." leads out of the volume (EXDEV from the kernel, EACCES to
// the guest). Calls that name an entry (mkdir, unlink, rename, symlink,
// link, readlink, lstat, chmod and utimes without following) open the
// entry's parent that way and act on the last component relative to it.
//
// The ring is created disabled, restricted to the opcodes above and then
// enabled (IORING_REGISTER_RESTRICTIONS): io_uring work is not seen by
// seccomp.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kos/file.h"
#include "kos/support/file.h"
#include "kos/support/result.h"
#include "kvm-host/net_service.h"

namespace kos::vmm {

// One volume as the VMM serves it. Index i in FileServiceOptions::volumes
// is FileCall::volume i and entry i of the boot image's volume table.
struct FileVolume {
    UniqueFd root;          // O_PATH directory (pkg::open_volume_host_dir), or the scratch directory
    std::string guest_path; // for messages
    std::string label;      // the volume's label in the policy ("" for scratch)
    bool writable = false;
    bool scratch = false;       // the VM's private /tmp: writable, no label check
    uint64_t quota_bytes = 0;   // scratch only: apparent bytes it may hold (0: no limit)
};

struct FileServiceOptions {
    // The compiled bundle policy (the bytes the guest kernel enforces). It
    // must load when any volume is not scratch (fail closed). Copied.
    std::span<const uint8_t> policy;
    // Receives the engine's audit record (security::AuditRecord bytes) of
    // each request the VMM denies and the policy audits. May be empty.
    std::function<void(std::span<const uint8_t>)> audit;
    std::vector<FileVolume> volumes; // at most abi::file::kMaxVolumes
};

class FileService {
public:
    // Loads the policy, takes the volumes' descriptors and creates the
    // restricted ring. No thread yet: launch() starts it once the
    // process-wide parts of the jail are in place. Errors: no volume or
    // too many, a volume without a descriptor or label, the policy does not
    // load (EINVAL), io_uring unavailable or not restrictable.
    static Result<std::unique_ptr<FileService>> start(FileServiceOptions options);

    ~FileService(); // stops and joins the I/O thread, closes every descriptor

    FileService(const FileService&) = delete;
    FileService& operator=(const FileService&) = delete;

    // Starts the I/O thread; `on_thread_start` runs first on it (the jail
    // installs the thread's seccomp filter there) and its error is returned
    // here. Call once.
    Result<void> launch(std::function<Result<void>()> on_thread_start = {});

    // One FileCall from the guest kernel: validates every field against
    // `ram`, the volumes and the open files, re-checks the policy, performs
    // the call on the I/O thread and writes its outputs into `call` (Open:
    // `file` and `stat`; Stat, FStat: `stat`; data into the segments).
    // Returns the call's result (>= 0, or -errno). Called from the vCPU
    // thread only, after launch(); it waits for the I/O thread.
    //
    // Calls with a path use `volume`; calls on an open file use that file's
    // volume and ignore `volume`. Errors of its own, before any host call:
    // EINVAL (op, volume index, path, flags, arg, whence, segment count or
    // total), EFAULT (a segment outside guest RAM; Write may read the image
    // slot), EBADF (not an open file, or not open for reading/writing),
    // EACCES (the policy), EROFS (a change on a read-only volume), ENFILE
    // (kMaxOpenFiles), ENOSPC (the scratch quota). Otherwise the host's
    // errno, with EXDEV from openat2 (a way out of the volume) as EACCES.
    int64_t handle(abi::file::FileCall& call, NetGuestMemory ram);

    // The volumes' root descriptors and whether each is writable (the
    // jail's Landlock rules), and how many host descriptors the service may
    // hold at once (for RLIMIT_NOFILE).
    struct VolumeAccess {
        int fd;
        bool writable;
    };
    std::vector<VolumeAccess> volume_access() const;
    uint32_t max_host_fds() const;

    // Scratch volume `i`: the apparent bytes it holds by the service's
    // count (tests).
    uint64_t scratch_used_for_test(size_t i) const;

    // Test hook: runs `fn` on the I/O thread at its next wake-up (the jail
    // test makes a forbidden syscall there).
    void run_on_io_thread_for_test(std::function<void()> fn);

    // Test hook: submits one `opcode` SQE (a NOP, or an OPENAT of "/" when
    // asked for that) to a ring set up as the service's is, and returns its
    // result: -EACCES for every opcode the service does not use.
    static Result<int> ring_result_for_test(uint8_t opcode);

    struct Impl;

private:
    explicit FileService(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

} // namespace kos::vmm
