// Verdict cost of the security engine, in one run:
//
//   baseline   a bare open-addressing hash-table probe with the same key
//              (kind, source, target, interface, method) and hash
//   cached     Engine::decide on keys whose verdicts are in the cache
//   uncached   Engine::decide_uncached on the same keys (index probe + rules)
//   condition  Engine::decide on keys whose rule has a glob on a path field
//              (never cacheable: the DFA runs every time)
//   message    Engine::decide_message: the kernel's path, decoding the
//              payload by the method's layout first
//
// for synthetic policies of 10, 1,000 and 10,000 rules over 200 labels and
// 10 interfaces x 16 methods. Each figure is the best of 5 passes over 4,096
// requests spread over the policy's keys. DESIGN.md targets: cached <= 3x
// the bare probe, uncached with 1,000 rules <= 1 us.
//
// Build with the release preset (the debug build is unoptimized).
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "kos/policy/builder.h"
#include "kos/security/engine.h"
#include "platform.h"

namespace {

namespace sec = kos::security;
using Clock = std::chrono::steady_clock;

constexpr uint32_t kLabels = 200, kInterfaces = 10, kMethods = 16, kRequests = 4096;

kos::idl::Module synthetic_idl() {
    kos::idl::Module m;
    for (uint32_t i = 0; i < kInterfaces; ++i) {
        kos::idl::Interface in;
        in.name = "bench.I" + std::to_string(i);
        in.id = 0x100 + i;
        for (uint32_t j = 0; j < kMethods; ++j) {
            kos::idl::Method mt;
            mt.name = "m" + std::to_string(j);
            mt.id = j + 1;
            kos::idl::Field path;
            path.name = "path";
            path.type = kos::idl::Type::String;
            path.max_size = 256;
            path.offset = 0;
            kos::idl::Field flags;
            flags.name = "flags";
            flags.type = kos::idl::Type::U32;
            flags.offset = 8;
            mt.request = {path, flags};
            mt.request_fixed_size = 16;
            in.methods.push_back(mt);
        }
        m.interfaces.push_back(in);
    }
    return m;
}

struct Key {
    uint32_t src, dst, iface, method;
    bool conditional;
};

// Rule i: allow request L(i) -> L(i * 7 + 3) Ii.m(i), every 4th with a glob.
// Keys are distinct up to 200 * 200 * 160 combinations.
kos::policy::PolicyModel synthetic_policy(uint32_t rules, std::vector<Key>& keys) {
    kos::policy::PolicyModel m;
    m.idl = synthetic_idl();
    for (uint32_t i = 0; i < kLabels; ++i) {
        kos::policy::LabelDef l;
        l.name = "d" + std::to_string(i) + "_t";
        m.labels.push_back(l);
    }
    std::mt19937 rng(rules);
    for (uint32_t i = 0; i < rules; ++i) {
        Key k{static_cast<uint32_t>(rng() % kLabels), static_cast<uint32_t>(rng() % kLabels),
              0x100 + static_cast<uint32_t>(rng() % kInterfaces), 1 + static_cast<uint32_t>(rng() % kMethods),
              i % 4 == 3};
        kos::policy::RuleDef r;
        r.effect = i % 10 == 9 ? sec::Effect::Deny : sec::Effect::Allow;
        r.kind = sec::Kind::Request;
        r.sources = {k.src};
        r.targets = {k.dst};
        r.ops = {{k.iface, k.method}};
        if (k.conditional) {
            kos::policy::ConditionDef c;
            c.field = "path";
            c.op = kos::policy::ConditionDef::Op::Glob;
            c.strings = {"/srv/data/*/reports/**"};
            r.conditions.push_back(c);
        }
        r.where = "bench.kpol:" + std::to_string(i + 1) + ":1";
        r.text = "rule " + std::to_string(i);
        m.rules.push_back(r);
        keys.push_back(k);
    }
    return m;
}

// The baseline: the same key, hash and probing as the engine's cache and
// index, in a bare table.
struct BareTable {
    struct Slot {
        uint64_t k0, k1;
        uint32_t kind, value;
    };
    std::vector<Slot> slots;
    uint64_t mask;

    explicit BareTable(const std::vector<Key>& keys) {
        size_t n = 1;
        while (n < keys.size() * 2)
            n <<= 1;
        slots.assign(n, Slot{0, 0, 0, 0});
        mask = n - 1;
        for (const Key& k : keys) {
            uint64_t h = sec::index_hash(2, k.src, k.dst, k.iface, k.method);
            for (uint64_t p = 0;; ++p) {
                Slot& s = slots[(h + p) & mask];
                if (s.kind == 0 || (s.k0 == (uint64_t(k.src) << 32 | k.dst) && s.k1 == (uint64_t(k.iface) << 32 | k.method))) {
                    s = Slot{uint64_t(k.src) << 32 | k.dst, uint64_t(k.iface) << 32 | k.method, 2, 1};
                    break;
                }
            }
        }
    }
    __attribute__((noinline)) uint32_t probe(uint32_t kind, uint32_t src, uint32_t dst, uint32_t a, uint32_t b) const {
        uint64_t h = sec::index_hash(kind, src, dst, a, b);
        uint64_t k0 = uint64_t(src) << 32 | dst, k1 = uint64_t(a) << 32 | b;
        for (uint64_t p = 0;; ++p) {
            const Slot& s = slots[(h + p) & mask];
            if (s.kind == 0)
                return 0;
            if (s.kind == kind && s.k0 == k0 && s.k1 == k1)
                return s.value;
        }
    }
};

template <class F> double best_ns_per_op(F&& f) {
    double best = 1e30;
    for (int pass = 0; pass < 5; ++pass) {
        auto t0 = Clock::now();
        uint64_t sink = f();
        double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / kRequests;
        asm volatile("" ::"r"(sink));
        best = std::min(best, ns);
    }
    return best;
}

} // namespace

int main() {
    std::printf("kos security engine verdicts (%s)\n", kos::bench::platform_line().c_str());
    std::printf("%-8s %10s %10s %10s %10s %10s %10s %12s\n", "rules", "probe ns", "cached ns", "uncached",
                "condition", "message", "blob KiB", "cached/probe");
    for (uint32_t n : {10u, 1000u, 10000u}) {
        std::vector<Key> keys;
        kos::policy::PolicyModel model = synthetic_policy(n, keys);
        auto t0 = Clock::now();
        auto blob = kos::policy::build_policy(model);
        double build_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        if (!blob) {
            std::fprintf(stderr, "build: %s\n", blob.error().message.c_str());
            return 1;
        }
        std::vector<uint64_t> state(sec::Engine::required_state_size(blob->data(), blob->size()) / 8 + 1);
        sec::Engine engine;
        if (engine.load(blob->data(), blob->size(), state.data(), state.size() * 8) != sec::LoadError::None)
            return 1;

        // Requests: static keys and conditional keys, spread over the policy.
        std::mt19937 rng(7);
        std::vector<Key> statics, conds;
        for (const Key& k : keys)
            (k.conditional ? conds : statics).push_back(k);
        const char* path = "/srv/data/2026/reports/q3/summary.txt";
        sec::FieldValue fv[2] = {{0, reinterpret_cast<const uint8_t*>(path), static_cast<uint32_t>(strlen(path))},
                                 {0, nullptr, 0}};
        auto request = [&](const Key& k) {
            return sec::Request{sec::Kind::Request, k.src, k.dst, k.iface, k.method, fv, 2, 0};
        };
        std::vector<sec::Request> hot, cond;
        for (uint32_t i = 0; i < kRequests; ++i) {
            hot.push_back(request(statics[rng() % statics.size()]));
            cond.push_back(request(conds[rng() % conds.size()]));
        }
        // Messages for the kernel path.
        std::vector<uint8_t> payload(16 + strlen(path));
        uint32_t off = 16, size = static_cast<uint32_t>(strlen(path));
        std::memcpy(&payload[0], &off, 4);
        std::memcpy(&payload[4], &size, 4);
        std::memcpy(&payload[16], path, size);

        BareTable bare(keys);
        double probe = best_ns_per_op([&] {
            uint64_t s = 0;
            for (const sec::Request& r : hot)
                s += bare.probe(2, r.source, r.target, r.a, r.b);
            return s;
        });
        for (const sec::Request& r : hot) // warm the cache
            engine.decide(r);
        double cached = best_ns_per_op([&] {
            uint64_t s = 0;
            for (const sec::Request& r : hot)
                s += engine.decide(r).allow;
            return s;
        });
        double uncached = best_ns_per_op([&] {
            uint64_t s = 0;
            for (const sec::Request& r : hot)
                s += engine.decide_uncached(r).allow;
            return s;
        });
        double conditional = best_ns_per_op([&] {
            uint64_t s = 0;
            for (const sec::Request& r : cond)
                s += engine.decide(r).allow;
            return s;
        });
        double message = best_ns_per_op([&] {
            uint64_t s = 0;
            for (const sec::Request& r : cond) {
                kos::abi::ipc::MessageHeader h{r.a, r.b, static_cast<uint32_t>(payload.size()), 0};
                s += engine.decide_message(sec::Kind::Request, r.source, r.target, h, payload.data(),
                                           static_cast<uint32_t>(payload.size()), 0)
                         .allow;
            }
            return s;
        });
        std::printf("%-8u %10.1f %10.1f %10.1f %10.1f %10.1f %10.1f %11.2fx   (compile %.1f ms)\n", n, probe,
                    cached, uncached, conditional, message, blob->size() / 1024.0, cached / probe, build_ms);
        auto st = engine.cache_stats();
        if (st.hits == 0) {
            std::fprintf(stderr, "the cache never hit\n");
            return 1;
        }
    }
    std::printf("targets (DESIGN.md): cached <= 3x the bare probe; uncached with 1,000 rules <= 1000 ns\n");
    return 0;
}
