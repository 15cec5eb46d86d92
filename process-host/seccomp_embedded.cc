#include "seccomp_filter.h"

extern "C" const unsigned char kos_sandbox_filter[];
extern "C" const unsigned char kos_sandbox_filter_end[];
extern "C" const unsigned char kos_sandbox_filter_volumes[];
extern "C" const unsigned char kos_sandbox_filter_volumes_end[];

namespace kos::proc {

SeccompFilter SeccompFilter::embedded(bool volume_paths) {
    SeccompFilter f;
    if (volume_paths)
        f.m_bpf.assign(kos_sandbox_filter_volumes, kos_sandbox_filter_volumes_end);
    else
        f.m_bpf.assign(kos_sandbox_filter, kos_sandbox_filter_end);
    f.m_notify = true;
    return f;
}

} // namespace kos::proc
