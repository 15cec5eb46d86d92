// IPC benchmark client: times N call+reply round trips over channel
// "bench" with the TSC and prints the mean in nanoseconds.
#include "kos_native.h"

namespace {
kn::u64 rdtsc() {
    kn::u32 lo, hi;
    asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (kn::u64(hi) << 32) | lo;
}
} // namespace

int main(const kn::NativeStartInfo* info) {
    kn::u32 h = kn::handle(info, "bench");
    kn::u64 n = 2000;
    kn::Message reply{};
    for (int i = 0; i < 50; ++i) // warm up: fault in pages, fill caches
        if (kn::call(h, 9, 1, "ping", &reply) < 0)
            return 1;
    kn::u64 t0 = rdtsc();
    for (kn::u64 i = 0; i < n; ++i)
        if (kn::call(h, 9, 1, "ping", &reply) < 0)
            return 2;
    kn::u64 cycles = rdtsc() - t0;
    kn::u64 khz = info->tsc_khz ? info->tsc_khz : 1000000;
    kn::printf("ipc_round_trip_ns %lu\n", cycles * 1000000 / khz / n);
    return 0;
}
