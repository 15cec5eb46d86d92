// The records of `kos run` instances, for `kos ps`, `logs`, `stop`, `rm`
// and `inspect`.
//
// Where: $XDG_RUNTIME_DIR/kos/instances/<id>/ when XDG_RUNTIME_DIR names a
// directory (a per-user tmpfs that, like the process ids recorded, does not
// outlive the session or a reboot), else $XDG_STATE_HOME/kos/instances/<id>/
// (~/.local/state/kos/instances). Each instance directory holds state.json
// (written whole through a temporary file and rename, so a reader never
// sees half of it; not fsynced: a record describes processes of this boot)
// and, for a detached run, output.log.
//
// <root>/names/<name> is a symlink to the id of the instance that last took
// the name while live: `kos run` checks a name (and creates a record) in
// constant time however many ended records there are. A stale link is
// harmless: the instance it names is checked for liveness.
//
// Locking: every read-modify-write of a record, and the name check that
// precedes creating one, happens under an exclusive flock on
// <root>/.lock. Readers that only look (ps, inspect) do not lock: rename
// gives them the old or the new file. Never hold the lock across fork: a
// flock belongs to the open file description, which the child shares.
//
// Liveness is never taken from the file alone: a record that says
// created/running counts only while its monitor or its runner process is
// alive and is still the same process (same boot, same start time in
// /proc/<pid>/stat), so a crashed monitor or a reused pid shows as ended.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kos/support/file.h"
#include "kos/support/result.h"

namespace kos::cli::instances {

// A process as recorded: its pid and its start time (clock ticks after
// boot, /proc/<pid>/stat field 22), which together name it for the boot.
struct ProcessRef {
    int pid = 0;
    uint64_t start_ticks = 0;
};

// The start time of a live process, 0 when it is gone.
uint64_t process_start_ticks(int pid);
ProcessRef self_process();
// True while `p` is alive and is still the process that was recorded.
bool process_alive(const ProcessRef& p, const std::string& boot_id);
std::string current_boot_id();

struct Record {
    std::string id;   // 64 hex digits
    std::string name; // unique among live instances
    std::string bundle;
    std::string backend; // vm | process
    std::vector<std::string> args;
    std::string status = "created"; // created | running | stopped, as last written
    ProcessRef runner;              // the process running the bundle (OCI "pid")
    ProcessRef monitor;             // the kos process waiting for it and recording its end
    std::string boot_id;
    int64_t created_ns = 0, started_ns = 0, finished_ns = 0; // Unix time, 0: not yet
    bool detached = false;
    bool remove = false;          // --rm: the record goes when the run ends
    std::optional<int> exit_code; // kos run's exit status
    std::optional<int> signal;    // the signal that ended the program (or kos)
    std::string limit;            // the limit that ended the run, if one did
    std::string error;            // kos's own message when the run failed
    bool stop_requested = false;  // kos stop ended it
    std::string log_path;         // detached: the run's stdout and stderr
    std::string audit_log;        // "" : none
    std::map<std::string, std::string> annotations;
    // Not stored: whether the monitor or the runner was alive when
    // Store::read read this record (observe() uses it rather than looking
    // again, which could see a run that ended after the read as abandoned).
    std::optional<bool> alive_at_read;
};

// What a record means now, after checking its processes.
struct Observed {
    std::string status; // created | running | stopped
    bool live = false;
    bool stale = false; // the file says created/running but no process is left
    std::string text;   // for kos ps: "running 12s", "exited (0) 3s ago", ...
};
Observed observe(const Record& r, int64_t now_ns);

std::string format_rfc3339(int64_t unix_ns);
std::optional<int64_t> parse_rfc3339(const std::string& s);
int64_t now_unix_ns();
// "12s", "5m", "3h", "2d".
std::string format_age(int64_t ns);

// [a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}
bool valid_name(const std::string& name);

std::string to_json_text(const Record& r, const Observed* observed = nullptr);
Result<Record> from_json_text(const std::string& text, const std::string& where);

class Store {
  public:
    // The instances directory (created, mode 0700, when `create`).
    static Result<Store> open(bool create);
    const std::string& root() const { return m_root; }
    std::string dir_of(const std::string& id) const { return m_root + "/" + id; }

    // The store's exclusive lock, held until the descriptor closes.
    Result<UniqueFd> lock() const;

    // Every readable record; unreadable ones are reported in `warnings`.
    std::vector<Record> list(std::vector<std::string>* warnings = nullptr) const;
    // Checks the processes of a record that says created/running; if they
    // are gone, reads it a second time (it may have ended in between: the
    // monitor writes the end before it exits).
    Result<Record> read(const std::string& id) const;
    Result<void> write(const Record& r) const;
    // Removes the record and its name link (if the link is still its own).
    Result<void> remove(const Record& r) const;

    // The live instance holding `name`, if any (the name index; call under
    // the lock).
    std::optional<Record> live_with_name(const std::string& name, int64_t now_ns) const;
    // Points the name at `id` (under the lock), or drops the link if it is
    // still `id`'s (when the run ends: the name is free again).
    Result<void> claim_name(const std::string& name, const std::string& id) const;
    void release_name(const std::string& name, const std::string& id) const;

    // By exact id, then by name (the live instance, else the newest one),
    // then by unique id prefix. Errors name what matched and what to do.
    Result<Record> resolve(const std::string& name_or_id) const;

  private:
    std::string m_root;
};

} // namespace kos::cli::instances
