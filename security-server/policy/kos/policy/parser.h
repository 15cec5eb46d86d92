// The .kpol parser: tokens -> syntax tree (ast.h). Errors go to a
// Diagnostics; after an error the parser skips to the next line, so one run
// reports several problems. It never recurses on input nesting (the grammar
// has at most two brace levels), so no input can exhaust the stack.
#pragma once

#include <optional>
#include <string_view>

#include "kos/policy/ast.h"
#include "kos/policy/diagnostics.h"

namespace kos::policy {

inline constexpr size_t kMaxListItems = 65536; // members of one braced list

// Parses one source file (`file` is its index in the Diagnostics' file table).
ast::File parse_policy(std::string_view text, uint32_t file, Diagnostics& diags);

// Parses one request written like a test step without `expect`:
//   request app_t -> vfs_t vfs.File.open path="/x" flags=0
// (`kos policy explain`). An optional leading `at DURATION` is accepted.
std::optional<ast::Step> parse_request_line(std::string_view text, uint32_t file,
                                            Diagnostics& diags);

} // namespace kos::policy
