// kos_seccomp_gen OUT: writes the sandbox's seccomp filter (with user
// notification) as raw BPF, for embedding in kos (seccomp_filter.h).
#include <cstdio>

#include "kos/support/file.h"
#include "seccomp_filter.h"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s OUT.bpf\n", argv[0]);
        return 2;
    }
    auto f = kos::proc::SeccompFilter::build({.notify = true});
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
