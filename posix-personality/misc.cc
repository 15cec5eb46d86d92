// Clocks (from the TSC, in ring 3: no VM exit) and randomness (seeded by
// the host's entropy through the boot image).
#include "kos/base/string.h"
#include "runtime.h"

namespace kos::rt {
namespace {

u64 rdtsc() {
    abi::u32 lo, hi;
    asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (u64(hi) << 32) | lo;
}

u64 rotl(u64 x, int k) { return (x << k) | (x >> (64 - k)); }

// xoshiro256** (public domain algorithm by Blackman and Vigna).
u64 next_random() {
    u64* s = g_rt.rng_state;
    u64 result = rotl(s[1] * 5, 7) * 9;
    u64 t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

} // namespace

void time_init() {
    u64 khz = g_rt.info.tsc_khz ? g_rt.info.tsc_khz : 1000000; // unknown: assume 1 GHz
    g_rt.tsc_mult = (1000000ull << 32) / khz;
    memcpy(g_rt.rng_state, g_rt.info.random_seed, sizeof g_rt.rng_state);
    if (!(g_rt.rng_state[0] | g_rt.rng_state[1] | g_rt.rng_state[2] | g_rt.rng_state[3]))
        g_rt.rng_state[0] = rdtsc() | 1;
}

u64 monotonic_ns() {
    unsigned __int128 t = static_cast<unsigned __int128>(rdtsc()) * g_rt.tsc_mult;
    return static_cast<u64>(t >> 32);
}

u64 realtime_ns() { return g_rt.info.realtime_at_tsc0_ns + monotonic_ns(); }

void random_fill(void* buf, u64 len) {
    auto* p = static_cast<u8*>(buf);
    while (len) {
        u64 r = next_random();
        u64 n = len < 8 ? len : 8;
        memcpy(p, &r, n);
        p += n;
        len -= n;
    }
}

} // namespace kos::rt
