// The personality's servers (one program, two tasks): the VFS server and
// the process server. The kernel starts each from the init description
// with its own label (vfs_t, proc_t) and gives each its own authority.
#pragma once

#include "kos/native.h"

int vfs_server_main(const kn::NativeStartInfo* info);
int proc_server_main(const kn::NativeStartInfo* info);
