// Errors of the policy front end, collected so one run reports several
// problems ("file:line:column: found X, expected Y"), capped at 20.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kos/policy/ast.h"
#include "kos/support/result.h"

namespace kos::policy {

class Diagnostics {
  public:
    static constexpr size_t kMaxErrors = 20;

    // `files` names the file indices of locations; it must outlive this object.
    explicit Diagnostics(const std::vector<std::string>* files) : m_files(files) {}

    void error(ast::Loc loc, const std::string& message);
    // An error with no position (an I/O failure before any source is read).
    void error_at(const std::string& where, const std::string& message);

    // Notes that errors were left out (the run stopped at the cap).
    void truncated() { m_dropped = true; }

    bool full() const { return m_messages.size() >= kMaxErrors; }
    bool empty() const { return m_messages.empty(); }
    size_t count() const { return m_messages.size(); }
    const std::vector<std::string>& messages() const { return m_messages; }

    std::string where(ast::Loc loc) const;
    // All messages, one per line (with a note when some were left out).
    Error to_error() const;

  private:
    const std::vector<std::string>* m_files;
    std::vector<std::string> m_messages;
    bool m_dropped = false;
};

} // namespace kos::policy
