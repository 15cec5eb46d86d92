// The VFS server: the object manager of the bundle's volumes (kos run -v).
//
// Every call of a Linux process that names a path inside a labeled volume
// arrives here as a vfs.File request (abi/idl/vfs.kidl) over the channel
// "vfs" the init description gave the process; the kernel's security hook
// has judged it against the policy (`request DOMAIN -> vfs_t
// vfs.File.open{path, flags, mode}`) before it arrives. The server then
// asks the kernel to perform it on behalf of that client: the kernel
// checks the volume's label for the client (`security DOMAIN -> LABEL
// file.read` / `file.write`) and reaches the host through the VMM's file
// service. A file it opens moves to the client as a handle in the reply;
// reading and writing it then go to the kernel with that handle.
//
// The kernel serves such path calls only to this task and only while it
// serves a request, for the task that sent it: a Linux process cannot
// reach a labeled volume by path without passing the policy here.
#include "kos/file.h"
#include "kos/idl/vfs.h"
#include "servers.h"

namespace {

namespace F = kos::idl::vfs::File;
namespace fsabi = kos::abi::file;
using kos::abi::i64;
using kos::abi::u32;
using kos::abi::u64;
using kos::abi::u8;

constexpr int32_t kEinval = 22, kEnametoolong = 36, kEopnotsupp = 95;

// The page the kernel reads the call from and writes the answer to.
alignas(4096) fsabi::FileCall g_call;
// readlink's target, the reply's span points here.
char g_target[fsabi::kMaxFilePath];

void begin(fsabi::FileOp op) {
    memset(&g_call, 0, offsetof(fsabi::FileCall, path));
    g_call.op = static_cast<u32>(op);
}

// Paths arrive as spans (not NUL-terminated); the kernel normalizes-checks
// them again and finds their volume.
int32_t set_path(char* field, u32* len, const kos::idl::Span& path) {
    if (path.size == 0)
        return -kEinval;
    if (path.size > fsabi::kMaxFilePath)
        return -kEnametoolong;
    memcpy(field, path.data, path.size);
    *len = path.size;
    return 0;
}

int32_t call() { return static_cast<int32_t>(kn::sys(kn::Sys::file_call, reinterpret_cast<u64>(&g_call))); }

int32_t path_call(fsabi::FileOp op, const kos::idl::Span& path, u32 arg = 0, u32 mode = 0) {
    begin(op);
    g_call.arg = arg;
    g_call.mode = mode;
    int32_t r = set_path(g_call.path, &g_call.path_len, path);
    return r < 0 ? r : call();
}

int32_t two_path_call(fsabi::FileOp op, const kos::idl::Span& a, const kos::idl::Span& b) {
    begin(op);
    int32_t r = set_path(g_call.path, &g_call.path_len, a);
    if (r == 0)
        r = set_path(g_call.path2, &g_call.path2_len, b);
    return r < 0 ? r : call();
}

u8 kind_of(u32 mode) {
    switch (mode & 0170000) {
    case 0100000: return 1;
    case 0040000: return 2;
    case 0120000: return 3;
    default: return 4;
    }
}

struct Server {
    int32_t open(const F::open::Request& req, F::open::Response& resp) {
        constexpr u32 kCloexec = 02000000;
        begin(fsabi::FileOp::Open);
        g_call.flags = req.flags & ~kCloexec;
        g_call.mode = req.mode & 07777;
        int32_t r = set_path(g_call.path, &g_call.path_len, req.path);
        if (r == 0)
            r = call();
        if (r < 0)
            return r;
        resp.file = static_cast<u32>(r); // moves to the client with the reply
        resp.mode = g_call.stat.mode;
        return 0;
    }
    int32_t stat(const F::stat::Request& req, F::stat::Response& resp) {
        int32_t r = path_call(fsabi::FileOp::Stat, req.path, req.follow ? 0 : fsabi::kNoFollow);
        if (r < 0)
            return r;
        const fsabi::FileStat& s = g_call.stat;
        resp.size = s.size;
        resp.mtime = s.mtime_ns;
        resp.mode = s.mode;
        resp.kind = kind_of(s.mode);
        resp.ino = s.ino;
        resp.blocks = s.blocks;
        resp.atime = s.atime_ns;
        resp.ctime = s.ctime_ns;
        resp.nlink = s.nlink;
        resp.blksize = s.blksize;
        return 0;
    }
    int32_t unlink(const F::unlink::Request& req, F::unlink::Response&) {
        return path_call(fsabi::FileOp::Unlink, req.path);
    }
    int32_t rmdir(const F::rmdir::Request& req, F::rmdir::Response&) {
        return path_call(fsabi::FileOp::Unlink, req.path, fsabi::kRemoveDir);
    }
    int32_t mkdir(const F::mkdir::Request& req, F::mkdir::Response&) {
        return path_call(fsabi::FileOp::Mkdir, req.path, 0, req.mode & 07777);
    }
    int32_t rename(const F::rename::Request& req, F::rename::Response&) {
        return two_path_call(fsabi::FileOp::Rename, req.old_path, req.new_path);
    }
    int32_t link(const F::link::Request& req, F::link::Response&) {
        return two_path_call(fsabi::FileOp::Link, req.old_path, req.new_path);
    }
    int32_t symlink(const F::symlink::Request& req, F::symlink::Response&) {
        return two_path_call(fsabi::FileOp::Symlink, req.path, req.target);
    }
    int32_t readlink(const F::readlink::Request& req, F::readlink::Response& resp) {
        begin(fsabi::FileOp::ReadLink);
        int32_t r = set_path(g_call.path, &g_call.path_len, req.path);
        if (r < 0)
            return r;
        g_call.buffer = reinterpret_cast<u64>(g_target);
        g_call.length = sizeof g_target;
        r = call();
        if (r < 0)
            return r;
        resp.target = {reinterpret_cast<const uint8_t*>(g_target), static_cast<uint32_t>(r)};
        return 0;
    }
    int32_t chmod(const F::chmod::Request& req, F::chmod::Response&) {
        return path_call(fsabi::FileOp::Chmod, req.path, req.follow ? 0 : fsabi::kNoFollow, req.mode & 07777);
    }
    int32_t set_times(const F::set_times::Request& req, F::set_times::Response&) {
        begin(fsabi::FileOp::SetTimes);
        g_call.arg = req.follow ? 0 : fsabi::kNoFollow;
        g_call.times[0] = req.atime;
        g_call.times[1] = req.mtime;
        int32_t r = set_path(g_call.path, &g_call.path_len, req.path);
        return r < 0 ? r : call();
    }
    // Calls on an open file go to the kernel with the file's handle (and
    // the kernel refuses requests that would pass this server a handle).
    int32_t read(const F::read::Request&, F::read::Response&) { return -kEopnotsupp; }
    int32_t write(const F::write::Request&, F::write::Response&) { return -kEopnotsupp; }
    int32_t close(const F::close::Request&, F::close::Response&) { return -kEopnotsupp; }
    int32_t readdir(const F::readdir::Request&, F::readdir::Response&) { return -kEopnotsupp; }
};

} // namespace

int vfs_server_main(const kn::NativeStartInfo* info) {
    u32 h = kn::handle(info, "vfs");
    if (!h) {
        kn::print("kos: vfs server: no channel 'vfs' in its init description\n");
        return 1;
    }
    static Server server;
    i64 r = kn::serve(h, [](const kn::ipc::MessageHeader& req, const u8* payload, u8* reply, u32 cap,
                            kn::ipc::MessageHeader& reply_h) { F::dispatch(server, req, payload, reply, cap, reply_h); });
    kn::printf("kos: vfs server: receive failed: %ld\n", r);
    return 2;
}
