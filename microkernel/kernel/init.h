// Creates the tasks and channels of the init description (or the single
// Linux program when the boot image has none) and makes them runnable.
#pragma once

#include "kos/types.h"

namespace kos {

// Returns nullptr, or a message naming what in the init description is
// wrong; nothing has run yet either way.
const char* start_tasks(abi::u64 kernel_pml4);

} // namespace kos
