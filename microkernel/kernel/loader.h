// Starting tasks: Linux tasks get the personality runtime and the boot
// image mapped (the runtime loads the program); native tasks have their ELF
// mapped by the kernel from the rootfs image.
#pragma once

#include "kos/boot.h"
#include "kos/syscall.h"
#include "task.h"

namespace kos {

struct BootImage {
    abi::u64 pa = 0;
    abi::u64 size = 0;
    const abi::boot::BootImageHeader* header = nullptr;
};
extern BootImage g_boot_image;

// Each returns nullptr, or a static message saying what failed.
// launch_index: which Linux process of the init description (0: the app),
// for its launch description (abi/kos/boot.h).
const char* start_linux_task(Task* task, abi::u32 launch_index = 0);
// Bytes of the boot image a Linux task sees (header, launch description,
// rootfs): everything after them (init description, policy) stays kernel-only.
abi::u64 user_visible_image_size();
// The personality server an init description's program names
// (abi::sys::kVfsServerProgram, ...: the kernel image carries them), or
// None for a rootfs file.
PersonalityServer personality_server(const char* program);
// The channel each one serves Linux processes on ("vfs", "proc", "pipe").
const char* personality_channel(PersonalityServer server);
const char* start_native_task(Task* task, const char* const* argv, abi::u32 argc,
                              const abi::sys::NativeHandle* handles, abi::u32 handle_count);

} // namespace kos
