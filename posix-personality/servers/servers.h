// The personality's servers (one program, a task each): the VFS server,
// the process server and the pipe server. The init description starts
// each with its own label (vfs_t, proc_t, pipe_t); the kernel gives the
// first two their own authority (volume paths, signals across trees).
#pragma once

#include "kos/native.h"

int vfs_server_main(const kn::NativeStartInfo* info);
int proc_server_main(const kn::NativeStartInfo* info);
int pipe_server_main(const kn::NativeStartInfo* info);
