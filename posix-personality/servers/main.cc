// Entry of the personality's servers: argv[0] names the one to be.
#include "servers.h"

int main(const kn::NativeStartInfo* info) {
    const char* const* argv = reinterpret_cast<const char* const*>(info->argv);
    const char* role = info->argc ? argv[0] : "";
    if (strcmp(role, kos::abi::sys::kVfsServerProgram) == 0)
        return vfs_server_main(info);
    if (strcmp(role, kos::abi::sys::kProcServerProgram) == 0)
        return proc_server_main(info);
    if (strcmp(role, kos::abi::sys::kPipeServerProgram) == 0)
        return pipe_server_main(info);
    kn::printf("kos: personality servers: unknown server '%s'\n", role);
    return 1;
}
