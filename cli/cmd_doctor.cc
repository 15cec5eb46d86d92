// `kos doctor`: which isolation features this host offers and which backend
// `kos run --backend auto` will pick.
#include <cstdio>

#include "commands.h"
#include "kvm-host/kvm.h"
#include "process-host/process_backend.h"

namespace kos::cli {
namespace {

int doctor_command() {
    std::string why;
    bool kvm = vmm::kvm_usable(&why);
    std::printf("%-34s %s\n", "kvm:", kvm ? "usable (/dev/kvm, API 12)" : ("not usable: " + why).c_str());
    for (const auto& f : proc::probe_host())
        std::printf("%-34s %s\n", (f.name + ":").c_str(), f.value.c_str());
    std::string pwhy;
    bool process = proc::process_backend_usable(&pwhy);
    std::printf("%-34s %s\n", "process backend:", process ? "usable" : ("not usable: " + pwhy).c_str());
    const char* pick = kvm ? "vm" : process ? "process" : "none (neither backend can run here)";
    std::printf("%-34s %s\n", "kos run --backend auto picks:", pick);
    return kvm || process ? 0 : 1;
}

} // namespace

void add_doctor_commands(CLI::App& app, Context& ctx) {
    CLI::App* doctor = app.add_subcommand("doctor", "Report the isolation features of this host and the backend "
                                                    "`kos run --backend auto` picks");
    doctor->callback([&ctx] { ctx.exit_status = doctor_command(); });
}

} // namespace kos::cli
