// The init description: every process and every channel of a bundle,
// declared before anything starts (no anonymous messaging). Part of the
// boot image (BootImageHeader::init_offset); the kernel creates exactly
// these tasks and channels and nothing else.
//
// Layout: InitHeader, InitProcess[process_count], InitChannel[channel_count],
// then NUL-terminated strings referenced by offset from the string table's
// start.
#pragma once

#include "kos/types.h"

namespace kos::abi::init {

inline constexpr u64 kMagic = 0x315449494e534f4bull; // "KOSNIIT1"
inline constexpr u32 kVersion = 1;
inline constexpr u32 kMaxProcesses = 64;
inline constexpr u32 kMaxChannels = 256;

enum class ProcessKind : u32 {
    Linux = 0,  // runs on the POSIX personality (launch description for process 0)
    Native = 1, // uses the native kos API directly
};

struct InitHeader {
    u64 magic;
    u32 version;
    u32 process_count;
    u32 channel_count;
    u32 label_count;
    u32 strings_offset; // from the start of the init description
    u32 strings_size;
};
static_assert(sizeof(InitHeader) == 32);

struct InitProcess {
    u32 name;   // string offset
    u32 label;  // index into labels (strings: label_count offsets after the channels)
    u32 kind;   // ProcessKind
    u32 argc;   // argv: argc consecutive strings starting at `argv`
    u32 argv;   // string offset; argv[0] is the program path in the rootfs
    u32 program; // string offset of the program's path with its symlinks resolved
                 // (what the policy's execute rule judges); 0: argv[0]
};
static_assert(sizeof(InitProcess) == 24);

struct InitChannel {
    u32 name;         // string offset; the name both ends see
    u32 client;       // process index
    u32 server;       // process index
    u32 interface_id; // the only interface this channel carries
    u32 client_rights;
    u32 reserved;
};
static_assert(sizeof(InitChannel) == 24);

// After the channels: u32 label_offsets[label_count] (string offsets).

} // namespace kos::abi::init
