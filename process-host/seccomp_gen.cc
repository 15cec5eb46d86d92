// kos_seccomp_gen OUT [--volumes]: writes the sandbox's seccomp filter (with
// user notification; with --volumes, of the calls that name a path too) as
// raw BPF, for embedding in kos (seccomp_filter.h).
#include <cstdio>
#include <string>

#include "kos/support/file.h"
#include "seccomp_filter.h"

int main(int argc, char** argv) {
    bool volumes = argc == 3 && std::string(argv[2]) == "--volumes";
    if (argc != 2 && !volumes) {
        std::fprintf(stderr, "usage: %s OUT.bpf [--volumes]\n", argv[0]);
        return 2;
    }
    auto f = kos::proc::SeccompFilter::build({.notify = true, .volume_paths = volumes});
    if (!f) {
        std::fprintf(stderr, "kos_seccomp_gen: %s\n", f.error().message.c_str());
        return 1;
    }
    if (auto r = kos::write_file_atomic(argv[1], f->bpf().data(), f->bpf().size(), 0644); !r) {
        std::fprintf(stderr, "kos_seccomp_gen: %s\n", r.error().message.c_str());
        return 1;
    }
    return 0;
}
