#include "instance_store.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace kos::cli::instances {
namespace {

constexpr int64_t kSec = 1'000'000'000;

TEST(InstanceStore, NamesFollowTheRule) {
    for (const char* ok : {"a", "web", "Web-1", "db_2.prod", "9lives"})
        EXPECT_TRUE(valid_name(ok)) << ok;
    EXPECT_TRUE(valid_name(std::string(64, 'x')));
    for (const char* bad : {"", "-x", "_x", ".x", "a b", "a/b", "a:b", "é"})
        EXPECT_FALSE(valid_name(bad)) << bad;
    EXPECT_FALSE(valid_name(std::string(65, 'x')));
}

TEST(InstanceStore, Rfc3339RoundTrips) {
    int64_t t = 1'796'000'000 * kSec + 123'456'789;
    std::string s = format_rfc3339(t);
    EXPECT_EQ(s, "2026-11-30T00:53:20.123456789Z");
    EXPECT_EQ(parse_rfc3339(s), t);
    EXPECT_EQ(parse_rfc3339("2026-11-30T00:53:20Z"), 1'796'000'000 * kSec);
    EXPECT_EQ(parse_rfc3339("2026-11-30T00:53:20.5Z"), 1'796'000'000 * kSec + 500'000'000);
    EXPECT_EQ(parse_rfc3339("2026-11-30T00:53:20+01:00"), std::nullopt); // kos writes UTC only
    EXPECT_EQ(parse_rfc3339("yesterday"), std::nullopt);
    EXPECT_EQ(format_rfc3339(0), "");
}

TEST(InstanceStore, AgesAreShort) {
    EXPECT_EQ(format_age(12 * kSec), "12s");
    EXPECT_EQ(format_age(300 * kSec), "5m");
    EXPECT_EQ(format_age(3 * 3600 * kSec), "3h");
    EXPECT_EQ(format_age(3 * 86400 * kSec), "3d");
    EXPECT_EQ(format_age(-5), "0s");
}

TEST(InstanceStore, RecordsRoundTripThroughJson) {
    Record r;
    r.id = std::string(64, 'a');
    r.name = "web";
    r.bundle = "/b";
    r.backend = "vm";
    r.args = {"/bin/sh", "-c", "x"};
    r.status = "stopped";
    r.runner = {42, 7};
    r.monitor = {41, 6};
    r.created_ns = 1'796'000'000 * kSec;
    r.finished_ns = r.created_ns + 3 * kSec;
    r.exit_code = 137;
    r.signal = 9;
    r.limit = "memory limit ([limits] memory = 64 MiB)";
    r.stop_requested = true;
    auto back = from_json_text(to_json_text(r), "state.json");
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(back->id, r.id);
    EXPECT_EQ(back->args, r.args);
    EXPECT_EQ(back->runner.pid, 42);
    EXPECT_EQ(back->monitor.start_ticks, 6u);
    EXPECT_EQ(back->finished_ns, r.finished_ns);
    EXPECT_EQ(back->exit_code, 137);
    EXPECT_EQ(back->signal, 9);
    EXPECT_TRUE(back->stop_requested);
    Observed o = observe(*back, r.finished_ns + 3 * kSec);
    EXPECT_EQ(o.status, "stopped");
    EXPECT_EQ(o.text, "stopped: memory limit (kos stop) 3s ago");
}

TEST(InstanceStore, BadStateFilesAreErrorsNamingTheFile) {
    for (const char* bad :
         {"", "[]", "{", "{\"id\": 5, \"status\": \"running\"}", "{\"status\": \"running\"}"}) {
        auto r = from_json_text(bad, "x/state.json");
        ASSERT_FALSE(r) << bad;
        EXPECT_NE(r.error().message.find("x/state.json"), std::string::npos) << r.error().message;
    }
}

TEST(InstanceStore, LivenessComesFromTheProcessNotTheFile) {
    Record r;
    r.id = "x";
    r.status = "running";
    r.boot_id = current_boot_id();
    r.monitor = self_process();
    EXPECT_TRUE(observe(r, now_unix_ns()).live);
    // The same pid with another start time: a reused pid.
    r.monitor.start_ticks += 1;
    Observed reused = observe(r, now_unix_ns());
    EXPECT_FALSE(reused.live);
    EXPECT_TRUE(reused.stale);
    EXPECT_EQ(reused.status, "stopped");
    // Another boot.
    r.monitor = self_process();
    r.boot_id = "00000000-0000-0000-0000-000000000000";
    EXPECT_FALSE(observe(r, now_unix_ns()).live);
    // A dead process.
    pid_t child = ::fork();
    if (child == 0)
        ::_exit(0);
    ProcessRef zombie{child, process_start_ticks(child)};
    r.boot_id = current_boot_id();
    r.monitor = zombie;
    siginfo_t si{};
    ::waitid(P_PID, static_cast<id_t>(child), &si, WEXITED | WNOWAIT); // a zombie now
    EXPECT_FALSE(observe(r, now_unix_ns()).live);                      // exited, not yet reaped
    int st;
    ::waitpid(child, &st, 0);
    EXPECT_FALSE(observe(r, now_unix_ns()).live);
}

TEST(InstanceStore, ResolvesIdsNamesAndPrefixes) {
    char tmpl[] = "/tmp/kos-store-XXXXXX";
    std::string dir = ::mkdtemp(tmpl);
    ::setenv("XDG_RUNTIME_DIR", dir.c_str(), 1);
    auto store = Store::open(true);
    ASSERT_TRUE(store) << store.error().message;
    EXPECT_EQ(store->root(), dir + "/kos/instances");
    auto add = [&](std::string id, std::string name, int64_t created, bool live) {
        Record r;
        r.id = id;
        r.name = name;
        r.created_ns = created;
        r.status = live ? "running" : "stopped";
        r.boot_id = current_boot_id();
        if (live)
            r.monitor = self_process();
        std::filesystem::create_directories(store->dir_of(id));
        ASSERT_TRUE(store->write(r));
        ASSERT_TRUE(store->claim_name(name, id));
    };
    add("abc111", "web", 1, false);
    add("abc222", "web", 2, false);
    add("abd333", "db", 3, true);
    add("fff444", "db", 4, false);
    // The name index: fff444 took "db" last, but it has ended.
    EXPECT_FALSE(store->live_with_name("db", now_unix_ns()));
    ASSERT_TRUE(store->claim_name("db", "abd333"));
    EXPECT_EQ(store->live_with_name("db", now_unix_ns())->id, "abd333");
    EXPECT_FALSE(store->live_with_name("web", now_unix_ns()));
    EXPECT_EQ(store->resolve("abc111")->id, "abc111");
    EXPECT_EQ(store->resolve("web")->id, "abc222"); // the newest
    EXPECT_EQ(store->resolve("db")->id, "abd333");  // the live one
    EXPECT_EQ(store->resolve("abd")->id, "abd333");
    auto ambiguous = store->resolve("ab");
    ASSERT_FALSE(ambiguous);
    EXPECT_NE(ambiguous.error().message.find("several instance ids"), std::string::npos);
    auto none = store->resolve("zzz");
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().code, ENOENT);
    std::ofstream(store->dir_of("bad0") + "/state.json") << "not json";
    std::vector<std::string> warnings;
    EXPECT_EQ(store->list(&warnings).size(), 4u);
    EXPECT_EQ(warnings.size(), 0u); // bad0 has no directory of its own yet: ENOENT, skipped
    std::filesystem::create_directories(store->dir_of("bad1"));
    std::ofstream(store->dir_of("bad1") + "/state.json") << "not json";
    EXPECT_EQ(store->list(&warnings).size(), 4u);
    EXPECT_EQ(warnings.size(), 1u);
    ASSERT_TRUE(store->remove(*store->resolve("abc222")));
    EXPECT_FALSE(std::filesystem::exists(store->dir_of("abc222")));
    EXPECT_FALSE(std::filesystem::is_symlink(store->root() + "/names/web")); // it was abc222's
    ASSERT_TRUE(store->remove(*store->resolve("abc111")));
    std::filesystem::remove_all(dir);
}

} // namespace
} // namespace kos::cli::instances
