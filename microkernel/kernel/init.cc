#include "init.h"

#include "ipc.h"
#include "kos/base/format.h"
#include "kos/base/string.h"
#include "kos/init.h"
#include "loader.h"
#include "pmm.h"
#include "security_hook.h"

namespace kos {
namespace {

namespace init = abi::init;
namespace sys = abi::sys;
using abi::u32;
using abi::u64;

char g_error[256];

const char* fail(const char* fmt, u32 a = 0) {
    format(g_error, sizeof g_error, fmt, a);
    return g_error;
}

Task* new_task(u64 kernel_pml4) {
    Task* t = alloc_task();
    if (!t || !t->as.init(kernel_pml4) || !alloc_thread(t))
        return nullptr;
    return t;
}

// A string of the init description, or nullptr if it does not end inside
// the string table.
const char* string_at(const char* strings, u32 size, u32 offset) {
    if (offset >= size)
        return nullptr;
    for (u32 i = offset; i < size; ++i)
        if (strings[i] == 0)
            return strings + offset;
    return nullptr;
}

} // namespace

const char* start_tasks(u64 kernel_pml4) {
    const auto* bh = g_boot_image.header;
    if (bh->init_size == 0) {
        Task* app = new_task(kernel_pml4);
        if (!app)
            return "out of memory creating the first task";
        app->origin = app;
        app->name = "app";
        app->label_name = "app";
        if (security_enforcing())
            return "a compiled policy needs an init description naming the app's label";
        if (const char* err = start_linux_task(app))
            return err;
        make_runnable(app->thread);
        return nullptr;
    }

    if (bh->init_offset > bh->total_size || bh->init_size > bh->total_size - bh->init_offset ||
        bh->init_size < sizeof(init::InitHeader))
        return "init description out of the boot image's bounds";
    const auto* base = static_cast<const abi::u8*>(pmm::phys_to_virt(g_boot_image.pa + bh->init_offset));
    const auto* h = reinterpret_cast<const init::InitHeader*>(base);
    if (h->magic != init::kMagic || h->version != init::kVersion)
        return "init description has a bad magic or version";
    if (h->process_count == 0 || h->process_count > init::kMaxProcesses ||
        h->channel_count > init::kMaxChannels || h->label_count == 0 || h->label_count > 256)
        return "init description declares too many (or no) processes, channels or labels";
    u64 tables = sizeof *h + u64(h->process_count) * sizeof(init::InitProcess) +
                 u64(h->channel_count) * sizeof(init::InitChannel) + u64(h->label_count) * 4;
    if (tables > bh->init_size || h->strings_offset < tables || h->strings_offset > bh->init_size ||
        h->strings_size > bh->init_size - h->strings_offset)
        return "init description tables out of bounds";
    const auto* procs = reinterpret_cast<const init::InitProcess*>(base + sizeof *h);
    const auto* chans = reinterpret_cast<const init::InitChannel*>(procs + h->process_count);
    const auto* labels = reinterpret_cast<const u32*>(chans + h->channel_count);
    const char* strings = reinterpret_cast<const char*>(base + h->strings_offset);

    Task* tasks[init::kMaxProcesses] = {};
    for (u32 i = 0; i < h->process_count; ++i) {
        const init::InitProcess& p = procs[i];
        if (p.label >= h->label_count || !string_at(strings, h->strings_size, labels[p.label]) ||
            !string_at(strings, h->strings_size, p.name))
            return fail("init description: process %u has a bad name or label", i);
        if (p.kind > u32(init::ProcessKind::Native))
            return fail("init description: process %u has an unknown kind", i);
        tasks[i] = new_task(kernel_pml4);
        if (!tasks[i])
            return "out of memory creating tasks";
        tasks[i]->origin = tasks[i];
        const char* program0 = p.kind == u32(init::ProcessKind::Native) && p.argc
                                   ? string_at(strings, h->strings_size, p.argv)
                                   : nullptr;
        tasks[i]->server = program0 ? personality_server(program0) : PersonalityServer::None;
        tasks[i]->name = strings + p.name;
        tasks[i]->label = p.label;
        tasks[i]->label_name = strings + labels[p.label];
        if (const char* err = security_bind(*tasks[i])) {
            format(g_error, sizeof g_error, "process %s: label %s: %s", tasks[i]->name, tasks[i]->label_name, err);
            return g_error;
        }
    }

    static sys::NativeHandle handles[init::kMaxProcesses][sys::kMaxNativeHandles];
    static Channel* channel_of_declaration[init::kMaxChannels];
    u32 handle_count[init::kMaxProcesses] = {};
    for (u32 i = 0; i < h->channel_count; ++i) {
        const init::InitChannel& c = chans[i];
        const char* name = string_at(strings, h->strings_size, c.name);
        if (!name || c.client >= h->process_count || c.server >= h->process_count || c.client == c.server ||
            (c.client_rights & ~(sys::kRightCall | sys::kRightTransfer | sys::kRightDuplicate)))
            return fail("init description: channel %u is malformed", i);
        // The same name, server and interface as a channel declared before:
        // one more client of that channel.
        Channel* ch = nullptr;
        for (u32 j = 0; j < i; ++j)
            if (chans[j].server == c.server && chans[j].interface_id == c.interface_id &&
                strcmp(string_at(strings, h->strings_size, chans[j].name), name) == 0)
                ch = channel_of_declaration[j];
        bool shared = ch != nullptr;
        if (!ch) {
            ch = alloc_channel();
            if (!ch)
                return "too many channels";
            ch->type = ObjectType::ChannelClient;
            ch->name = name;
            ch->interface_id = c.interface_id;
            ch->client = tasks[c.client];
            ch->server = tasks[c.server];
        }
        channel_of_declaration[i] = ch;
        ch->clients |= 1ull << c.client;
        struct End {
            u32 process;
            ObjectType type;
            u32 rights;
        } ends[2] = {{c.client, ObjectType::ChannelClient, c.client_rights},
                     {c.server, ObjectType::ChannelServer, sys::kRightReceive}};
        for (const End& end : ends) {
            if (shared && end.type == ObjectType::ChannelServer)
                continue; // the server has its handle already
            auto handle = tasks[end.process]->handles.insert(ch, end.type, end.rights);
            u32& n = handle_count[end.process];
            if (handle.is_error() || n == sys::kMaxNativeHandles)
                return fail("init description: process %u has too many channels", end.process);
            sys::NativeHandle& nh = handles[end.process][n++];
            u64 len = strlen(name);
            if (len >= sizeof nh.name)
                return fail("init description: channel %u's name is too long", i);
            memcpy(nh.name, name, len + 1);
            nh.handle = *handle;
            nh.rights = end.rights;
        }
        // A Linux process's channel "vfs", "proc" or "pipe" to that
        // personality server (RuntimeStartInfo::vfs_channel, ...).
        PersonalityServer server = tasks[c.server]->server;
        if (procs[c.client].kind == u32(init::ProcessKind::Linux) && server != PersonalityServer::None &&
            strcmp(name, personality_channel(server)) == 0)
            tasks[c.client]->server_channel[u32(server) - 1] = handles[c.client][handle_count[c.client] - 1].handle;
    }

    u32 next_launch = 1; // launch description 0 is the app's, whatever its kind
    for (u32 i = 0; i < h->process_count; ++i) {
        const init::InitProcess& p = procs[i];
        const char* err = nullptr;
        // execute L -> L: may a process of this label run this program?
        const char* program = p.program ? string_at(strings, h->strings_size, p.program)
                              : p.argc  ? string_at(strings, h->strings_size, p.argv)
                                        : nullptr;
        // The personality's servers are part of the kernel image, not
        // programs of the bundle: no policy decides whether they run.
        bool system_server = tasks[i]->server != PersonalityServer::None;
        tasks[i]->kernel_fpu = p.kind == u32(init::ProcessKind::Native) && !system_server;
        Verdict v = system_server ? Verdict{true, false, "system-server", 0}
                                  : check_execute(*tasks[i], *tasks[i], program ? program : "");
        if (!v.allow) {
            format(g_error, sizeof g_error, "the policy does not allow %s (%s) to execute %s", tasks[i]->name,
                   tasks[i]->label_name, program ? program : "?");
            return g_error;
        }
        if (p.kind == u32(init::ProcessKind::Linux)) {
            err = start_linux_task(tasks[i], i == 0 ? 0 : next_launch++);
        } else {
            const char* argv[33];
            if (p.argc == 0 || p.argc > 32)
                return fail("init description: process %u has no program or too many arguments", i);
            u32 off = p.argv;
            for (u32 a = 0; a < p.argc; ++a) {
                argv[a] = string_at(strings, h->strings_size, off);
                if (!argv[a])
                    return fail("init description: process %u has a bad argument", i);
                off += static_cast<u32>(strlen(argv[a])) + 1;
            }
            argv[p.argc] = nullptr;
            err = start_native_task(tasks[i], argv, p.argc, handles[i], handle_count[i]);
        }
        if (err) {
            format(g_error, sizeof g_error, "cannot start process %u (%s): %s", i, tasks[i]->name, err);
            return g_error;
        }
        make_runnable(tasks[i]->thread);
    }
    return nullptr;
}

} // namespace kos
