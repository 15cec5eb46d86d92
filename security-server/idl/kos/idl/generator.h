// kos-idlc's code generator: freestanding C++ for the interfaces of one
// .kidl file (docs/idl.md, "kos-idlc").
#pragma once

#include <string>
#include <string_view>

#include "kos/idl/model.h"

namespace kos::idl {

// The header `kos/idl/<file.package>.h` for one parsed file. `source_name`
// only appears in the header's comments. Cannot fail: parse_idl has
// already refused every name and layout the generator could not express.
std::string generate_header(const Module& file, std::string_view source_name);

// A machine-readable summary of the file's interfaces (JSON: ids, flows,
// fields with types, bounds and offsets, fixed sizes), for tools that
// want the layouts without linking kos_idl.
std::string generate_summary(const Module& file);

} // namespace kos::idl
