// IPC benchmark client: times N call+reply round trips over channel
// "bench" with the TSC: ipctest.Bench.ping (a verdict the engine caches)
// and ping_checked (a field condition, judged every time). Prints the mean
// of each in nanoseconds.
#include "kos/idl/ipctest.h"
#include "kos/native.h"

namespace {

namespace B = kos::idl::ipctest::Bench;

kn::u64 rdtsc() {
    kn::u32 lo, hi;
    asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (kn::u64(hi) << 32) | lo;
}

} // namespace

int main(const kn::NativeStartInfo* info) {
    kn::Channel channel{kn::handle(info, "bench")};
    static B::Client<kn::Channel> client(channel);
    kn::u64 n = 2000;
    kn::u64 khz = info->tsc_khz ? info->tsc_khz : 1000000;
    B::ping::Response pr;
    B::ping_checked::Response cr;
    for (kn::u32 i = 0; i < 50; ++i) // warm up: fault in pages, fill caches
        if (client.ping({i}, pr) < 0 || client.ping_checked({i}, cr) < 0)
            return 1;
    kn::u64 t0 = rdtsc();
    for (kn::u32 i = 0; i < n; ++i)
        if (client.ping({i}, pr) < 0)
            return 2;
    kn::u64 cached = rdtsc() - t0;
    t0 = rdtsc();
    for (kn::u32 i = 0; i < n; ++i)
        if (client.ping_checked({i}, cr) < 0)
            return 3;
    kn::u64 checked = rdtsc() - t0;
    kn::printf("ipc_round_trip_ns %lu\n", cached * 1000000 / khz / n);
    kn::printf("ipc_round_trip_uncached_ns %lu\n", checked * 1000000 / khz / n);
    return 0;
}
