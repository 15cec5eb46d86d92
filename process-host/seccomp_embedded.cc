#include "seccomp_filter.h"

extern "C" const unsigned char kos_sandbox_filter[];
extern "C" const unsigned char kos_sandbox_filter_end[];

namespace kos::proc {

SeccompFilter SeccompFilter::embedded() {
    SeccompFilter f;
    f.m_bpf.assign(kos_sandbox_filter, kos_sandbox_filter_end);
    f.m_notify = true;
    return f;
}

} // namespace kos::proc
