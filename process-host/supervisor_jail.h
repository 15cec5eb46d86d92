// The supervisor's own jail: once the sandbox runs, the `kos` process that
// answers its notifications parses bytes the program controls (addresses,
// paths), so it drops what it does not need: no_new_privs and a seccomp
// filter (libseccomp) allowing only the calls listed in supervisor_jail.cc,
// each with its reason; anything else kills it, and with it (parent-death
// signal) the sandbox. Landlock is not used here: a Landlock domain created
// after the sandbox's would forbid reading the program's memory.
#pragma once

#include "kos/support/result.h"

namespace kos::proc {

// Irreversible for the calling process; `kos run` calls it, library users
// that start several sandboxes from one process do not.
Result<void> jail_supervisor();

} // namespace kos::proc
