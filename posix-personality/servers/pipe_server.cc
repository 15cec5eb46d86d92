// The pipe server: the bundle's declared pipes ([[pipe]] in bundle.toml),
// one-way connections between processes of different labels that programs
// open by path, as named pipes.
//
// Its arguments name each pipe: "PATH LABEL". At start it makes one kernel
// pipe per declared path. An open() of that path arrives as a pipe.Pipe
// request (abi/idl/pipe.kidl) over the channel "pipe": the kernel's hook has
// judged `request DOMAIN -> pipe_t pipe.Pipe.open{path, write}`; the server
// then asks `security CLIENT -> LABEL pipe.read` (or `pipe.write`) and
// answers with a handle of that end. Reading and writing go to the kernel's
// pipe from then on.
//
// Each end is handed out once (the process that opened it, and its fork
// children, share it): the server keeps the write end until a writer opens
// it, so a reader that comes first waits instead of seeing end-of-file, and
// the read end until a reader opens it, so an early writer's data waits
// too. Once every writer has closed, the reader sees end-of-file; a second
// open of the same end is EBUSY.
#include "kos/idl/pipe.h"
#include "servers.h"

namespace {

namespace P = kos::idl::pipe::Pipe;
using kos::abi::i64;
using kos::abi::u32;
using kos::abi::u64;
using kos::abi::u8;
using kos::abi::sys::SecurityName;

constexpr int32_t kEnoent = 2, kEbusy = 16, kEinval = 22;
constexpr u32 kMaxPipes = 16;

struct Pipe {
    const char* path = nullptr;
    u32 path_len = 0;
    i64 label = -1;    // the policy's id of its label
    u32 ends[2] = {};  // the server's handles: read, write (0: handed out)
};
Pipe g_pipes[kMaxPipes];
u32 g_count = 0;
i64 g_class = -1, g_read = -1, g_write = -1;

struct Server {
    int32_t open(const P::open::Request& req, P::open::Response& resp) {
        Pipe* p = nullptr;
        for (u32 i = 0; i < g_count; ++i)
            if (g_pipes[i].path_len == req.path.size && memcmp(g_pipes[i].path, req.path.data, req.path.size) == 0)
                p = &g_pipes[i];
        if (!p)
            return -kEnoent;
        i64 perm = req.write ? g_write : g_read;
        if (g_class < 0 || perm < 0 || p->label < 0)
            return -13; // the policy speaks of no pipes: nothing is allowed
        i64 ok = kn::sys(kn::Sys::security_query, kn::g_sender.sender_task, static_cast<u64>(p->label),
                         static_cast<u64>(g_class), static_cast<u64>(perm));
        if (ok < 0)
            return static_cast<int32_t>(ok);
        u32& end = p->ends[req.write ? 1 : 0];
        if (!end)
            return -kEbusy;
        resp.pipe = end; // moves to the client with the reply
        end = 0;
        return 0;
    }
};

} // namespace

int pipe_server_main(const kn::NativeStartInfo* info) {
    u32 h = kn::handle(info, "pipe");
    if (!h) {
        kn::print("kos: pipe server: no channel 'pipe' in its init description\n");
        return 1;
    }
    g_class = kn::security_id(SecurityName::Class, "pipe");
    if (g_class >= 0) {
        g_read = kn::security_id(SecurityName::Permission, "read", static_cast<u64>(g_class));
        g_write = kn::security_id(SecurityName::Permission, "write", static_cast<u64>(g_class));
    }
    const char* const* argv = reinterpret_cast<const char* const*>(info->argv);
    for (u32 a = 1; a < info->argc && g_count < kMaxPipes; ++a) {
        const char* arg = argv[a];
        const char* space = arg;
        while (*space && *space != ' ')
            ++space;
        if (*space != ' ') {
            kn::printf("kos: pipe server: malformed argument '%s'\n", arg);
            return -kEinval;
        }
        Pipe& p = g_pipes[g_count++];
        p.path = arg;
        p.path_len = static_cast<u32>(space - arg);
        p.label = kn::security_id(SecurityName::Label, space + 1);
        if (kn::sys(kn::Sys::pipe_create, reinterpret_cast<u64>(p.ends)) < 0) {
            kn::print("kos: pipe server: cannot make its pipes\n");
            return 3;
        }
    }
    static Server server;
    i64 r = kn::serve(h, [](const kn::ipc::MessageHeader& req, const u8* payload, u8* reply, u32 cap,
                            kn::ipc::MessageHeader& reply_h) { P::dispatch(server, req, payload, reply, cap, reply_h); });
    kn::printf("kos: pipe server: receive failed: %ld\n", r);
    return 2;
}
