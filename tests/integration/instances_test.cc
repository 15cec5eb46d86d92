// Instances of `kos run` end to end: run -d, --name, --rm, ps, logs,
// inspect, stop, rm, and stale records; VMs and the process backend.
// Every test has its own XDG_RUNTIME_DIR and XDG_STATE_HOME, so nothing
// touches the user's instances or audit log.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "kvm-host/testing/require_kvm.h"
#include "process-host/process_backend.h"
#include "process.h"

using kos::test::ProcessResult;
using kos::test::run_process;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::string kKos = KOS_BINARY;
const std::string kBusybox = std::string(KOS_SOURCE_DIR) + "/examples/busybox";

class Instances : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/kos-instances-XXXXXX";
        m_dir = ::mkdtemp(tmpl);
        ::setenv("XDG_RUNTIME_DIR", (m_dir + "/run").c_str(), 1);
        ::setenv("XDG_STATE_HOME", (m_dir + "/state").c_str(), 1);
        fs::create_directories(m_dir + "/run");
        fs::create_directories(m_dir + "/state");
    }
    void TearDown() override {
        // Nothing may outlive the test: kill what is still recorded as live.
        for (const std::string& id : ids())
            run_process({kKos, "rm", "-f", id}, 20);
        fs::remove_all(m_dir);
    }

    std::string instances_dir() const { return m_dir + "/run/kos/instances"; }
    std::vector<std::string> ids() const {
        std::vector<std::string> out;
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(instances_dir(), ec))
            if (e.path().filename().string()[0] != '.' && e.path().filename() != "names")
                out.push_back(e.path().filename().string());
        return out;
    }

    static ProcessResult kos(std::vector<std::string> args, int timeout = 30) {
        args.insert(args.begin(), kKos);
        return run_process(args, timeout);
    }
    static json inspect(const std::string& q) {
        ProcessResult r = kos({"inspect", q});
        EXPECT_EQ(r.status, 0) << r.err;
        json j = json::parse(r.out, nullptr, false);
        EXPECT_FALSE(j.is_discarded()) << r.out;
        return j;
    }
    // Polls `kos logs` until it holds `text`.
    static std::string wait_for_log(const std::string& q, const std::string& text,
                                    int seconds = 15) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
        std::string out;
        while (std::chrono::steady_clock::now() < deadline) {
            out = kos({"logs", q}).out;
            if (out.find(text) != std::string::npos)
                break;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        return out;
    }
    static json wait_stopped(const std::string& q, int seconds = 15) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
        json j;
        while (std::chrono::steady_clock::now() < deadline) {
            j = inspect(q);
            if (j.value("status", "") == "stopped")
                break;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        return j;
    }

    // The full life of a detached instance, on either backend.
    void detached_lifecycle(const std::string& backend) {
        ProcessResult r = kos({"run", "-d", "--name", "web", "--backend", backend, kBusybox, "--",
                               "/bin/sh", "-c", "echo hello-from-kos; exec /bin/busybox sleep 30"});
        ASSERT_EQ(r.status, 0) << r.err;
        ASSERT_EQ(r.out.size(), 65u) << r.out;
        std::string id = r.out.substr(0, 64);
        EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;

        ProcessResult ps = kos({"ps"});
        EXPECT_EQ(ps.status, 0) << ps.err;
        EXPECT_NE(ps.out.find("web"), std::string::npos) << ps.out;
        EXPECT_NE(ps.out.find("running"), std::string::npos) << ps.out;
        EXPECT_NE(ps.out.find(id.substr(0, 12)), std::string::npos) << ps.out;
        EXPECT_NE(ps.out.find(backend), std::string::npos) << ps.out;

        EXPECT_NE(wait_for_log("web", "hello-from-kos").find("hello-from-kos"), std::string::npos);

        json j = inspect(id.substr(0, 8)); // a unique prefix is enough
        EXPECT_EQ(j["ociVersion"].get<std::string>().substr(0, 2), "1.");
        EXPECT_EQ(j["id"], id);
        EXPECT_EQ(j["name"], "web");
        EXPECT_EQ(j["status"], "running");
        EXPECT_EQ(j["backend"], backend);
        EXPECT_EQ(j["bundle"], kBusybox);
        ASSERT_TRUE(j["pid"].is_number_integer());
        int pid = j["pid"].get<int>();
        EXPECT_GT(pid, 0);
        EXPECT_EQ(::kill(pid, 0), 0);
        EXPECT_TRUE(j["log_path"].is_string());
        EXPECT_FALSE(j["created"].get<std::string>().empty());
        EXPECT_TRUE(j["annotations"].is_object());

        // A second instance with a live instance's name is refused and
        // changes nothing.
        size_t before = ids().size();
        ProcessResult dup = kos({"run", "-d", "--name", "web", "--backend", backend, kBusybox});
        EXPECT_EQ(dup.status, 125);
        EXPECT_NE(dup.err.find("--name web"), std::string::npos) << dup.err;
        EXPECT_NE(dup.err.find("already"), std::string::npos) << dup.err;
        EXPECT_EQ(dup.out, "");
        EXPECT_EQ(ids().size(), before);

        // A running instance is not removed without -f.
        ProcessResult busy = kos({"rm", "web"});
        EXPECT_EQ(busy.status, 1);
        EXPECT_NE(busy.err.find("web is running; stop it first"), std::string::npos) << busy.err;
        EXPECT_TRUE(fs::exists(instances_dir() + "/" + id));

        auto t0 = std::chrono::steady_clock::now();
        ProcessResult stop = kos({"stop", "-t", "3", "web"});
        double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        EXPECT_EQ(stop.status, 0) << stop.err;
        EXPECT_EQ(stop.out, "web\n");
        EXPECT_LT(took, 8.0);
        EXPECT_NE(::kill(pid, 0), 0); // the runner is gone

        ProcessResult all = kos({"ps", "-a"});
        EXPECT_NE(all.out.find("web"), std::string::npos) << all.out;
        EXPECT_NE(all.out.find("(kos stop)"), std::string::npos) << all.out;
        EXPECT_EQ(kos({"ps"}).out.find("web"), std::string::npos);
        json s = inspect("web");
        EXPECT_EQ(s["status"], "stopped");
        EXPECT_TRUE(s["stopped_by_kos_stop"].get<bool>());
        EXPECT_FALSE(s["finished"].get<std::string>().empty());

        // Stopping again says so and does not fail.
        ProcessResult again = kos({"stop", "web"});
        EXPECT_EQ(again.status, 0);
        EXPECT_NE(again.err.find("not running"), std::string::npos) << again.err;

        ProcessResult rm = kos({"rm", "web"});
        EXPECT_EQ(rm.status, 0) << rm.err;
        EXPECT_FALSE(fs::exists(instances_dir() + "/" + id));
        EXPECT_NE(kos({"inspect", "web"}).status, 0);
    }

    std::string m_dir;
};

TEST_F(Instances, DetachedLifecycleVm) {
    KOS_REQUIRE_KVM();
    detached_lifecycle("vm");
}

TEST_F(Instances, DetachedLifecycleProcessBackend) {
    std::string why;
    if (!kos::proc::process_backend_usable(&why))
        GTEST_SKIP() << "process backend unusable here: " << why;
    detached_lifecycle("process");
}

TEST_F(Instances, BadNameIsRefusedAndNothingRecorded) {
    for (const std::string& name :
         std::vector<std::string>{"bad name", "-dash", std::string(65, 'a'), ""}) {
        ProcessResult r = kos({"run", "-d", "--name", name, kBusybox});
        EXPECT_EQ(r.status, 125) << name;
        EXPECT_NE(r.err.find("--name"), std::string::npos) << r.err;
        EXPECT_EQ(r.out, "");
    }
    EXPECT_TRUE(ids().empty());
}

TEST_F(Instances, AttachedRunIsRecordedWithItsExitStatus) {
    KOS_REQUIRE_KVM();
    ProcessResult r =
        kos({"run", "--name", "three", kBusybox, "--", "/bin/sh", "-c", "echo out; exit 3"});
    EXPECT_EQ(r.status, 3) << r.err;
    EXPECT_EQ(r.out, "out\n"); // attached output still goes to the terminal
    ProcessResult ps = kos({"ps", "-a"});
    EXPECT_NE(ps.out.find("three"), std::string::npos) << ps.out;
    EXPECT_NE(ps.out.find("exited (3)"), std::string::npos) << ps.out;
    json j = inspect("three");
    EXPECT_EQ(j["status"], "stopped");
    EXPECT_EQ(j["exit_code"], 3);
    EXPECT_TRUE(j["log_path"].is_null());
    // A stopped instance's name may be used again.
    EXPECT_EQ(
        kos({"run", "--rm", "--name", "three", kBusybox, "--", "/bin/busybox", "true"}).status, 0);
}

TEST_F(Instances, RmOptionLeavesNoState) {
    KOS_REQUIRE_KVM();
    ProcessResult r = kos({"run", "--rm", kBusybox, "--", "/bin/busybox", "true"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(ids().empty());
    ProcessResult d = kos({"run", "-d", "--rm", kBusybox, "--", "/bin/busybox", "true"});
    ASSERT_EQ(d.status, 0) << d.err;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (!ids().empty() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_TRUE(ids().empty());
}

TEST_F(Instances, DetachedEnvLimitAndExitAreRecorded) {
    KOS_REQUIRE_KVM();
    ProcessResult env = kos(
        {"run", "-d", "--name", "env", "-e", "GREETING=hi", kBusybox, "--", "/bin/busybox", "env"});
    ASSERT_EQ(env.status, 0) << env.err;
    ProcessResult lim = kos({"run", "-d", "--name", "lim", "--timeout", "1", kBusybox, "--",
                             "/bin/busybox", "sleep", "30"});
    ASSERT_EQ(lim.status, 0) << lim.err;
    json e = wait_stopped("env");
    EXPECT_EQ(e["exit_code"], 0);
    EXPECT_NE(kos({"logs", "env"}).out.find("GREETING=hi"), std::string::npos);
    json l = wait_stopped("lim");
    EXPECT_EQ(l["status"], "stopped");
    EXPECT_EQ(l["limit"], "wall-time limit (--timeout)") << l.dump(2) << kos({"logs", "lim"}).out;
    EXPECT_EQ(l["exit_code"], 125);
    EXPECT_NE(kos({"ps", "-a"}).out.find("stopped: wall-time limit"), std::string::npos);
    // logs -f returns once the instance has ended.
    ProcessResult f = kos({"logs", "-f", "lim"}, 10);
    EXPECT_FALSE(f.timed_out);
    EXPECT_NE(f.out.find("wall-time limit"), std::string::npos) << f.out;
}

TEST_F(Instances, LogsFollowUntilTheInstanceEnds) {
    KOS_REQUIRE_KVM();
    ProcessResult r = kos({"run", "-d", "--name", "f", kBusybox, "--", "/bin/sh", "-c",
                           "echo first; /bin/busybox sleep 1; echo second; exit 4"});
    ASSERT_EQ(r.status, 0) << r.err;
    ProcessResult f = kos({"logs", "-f", "f"}, 20);
    EXPECT_FALSE(f.timed_out);
    EXPECT_EQ(f.status, 0) << f.err;
    EXPECT_EQ(f.out, "first\nsecond\n");
    json j = wait_stopped("f");
    EXPECT_EQ(j["exit_code"], 4);
    // An attached run has no log.
    ProcessResult attached = kos({"run", "--name", "att", kBusybox, "--", "/bin/busybox", "true"});
    EXPECT_EQ(attached.status, 0) << attached.err;
    ProcessResult nolog = kos({"logs", "att"});
    EXPECT_EQ(nolog.status, 1);
    EXPECT_NE(nolog.err.find("att ran attached"), std::string::npos) << nolog.err;
}

// The name check and the record's creation happen under one lock.
TEST_F(Instances, ConcurrentRunsWithOneNameHaveOneWinner) {
    KOS_REQUIRE_KVM();
    std::vector<ProcessResult> results(4);
    std::vector<std::thread> threads;
    for (auto& r : results)
        threads.emplace_back([&r] {
            r = kos({"run", "-d", "--name", "race", kBusybox, "--", "/bin/busybox", "sleep", "10"});
        });
    for (auto& t : threads)
        t.join();
    int won = 0;
    for (const auto& r : results) {
        if (r.status == 0)
            ++won;
        else
            EXPECT_NE(r.err.find("--name race: instance"), std::string::npos) << r.err;
    }
    EXPECT_EQ(won, 1);
    EXPECT_EQ(ids().size(), 1u);
    ProcessResult rm = kos({"rm", "-f", "race"});
    EXPECT_EQ(rm.status, 0) << rm.err;
    EXPECT_TRUE(ids().empty());
}

TEST_F(Instances, StaleRecordsNeverShowAsRunning) {
    // A pid that is dead, and a live pid whose start time does not match
    // (as after pid reuse).
    pid_t child = ::fork();
    if (child == 0)
        ::_exit(0);
    int st;
    ::waitpid(child, &st, 0);
    struct Case {
        std::string name;
        int pid;
    };
    for (const Case& c : {Case{"dead", child}, Case{"reused", static_cast<int>(::getpid())}}) {
        std::string id = std::string(c.name == "dead" ? "aa" : "bb") + std::string(62, '0');
        fs::create_directories(instances_dir() + "/" + id);
        json j = {{"ociVersion", "1.2.0"},
                  {"id", id},
                  {"status", "running"},
                  {"pid", c.pid},
                  {"bundle", kBusybox},
                  {"name", c.name},
                  {"backend", "vm"},
                  {"created", "2026-01-01T00:00:00.000000000Z"},
                  {"process", {{"pid", c.pid}, {"start_ticks", 1}}},
                  {"monitor", {{"pid", c.pid}, {"start_ticks", 1}}}};
        std::ofstream(instances_dir() + "/" + id + "/state.json") << j.dump();
    }
    ProcessResult ps = kos({"ps"});
    EXPECT_EQ(ps.status, 0) << ps.err;
    EXPECT_EQ(ps.out.find("dead"), std::string::npos) << ps.out;
    EXPECT_EQ(ps.out.find("reused"), std::string::npos) << ps.out;
    ProcessResult all = kos({"ps", "-a"});
    EXPECT_NE(all.out.find("dead"), std::string::npos) << all.out;
    EXPECT_EQ(all.out.find("running"), std::string::npos) << all.out;
    for (const char* q : {"dead", "reused"}) {
        json j = inspect(q);
        EXPECT_EQ(j["status"], "stopped") << q;
        EXPECT_TRUE(j.value("stale", false)) << q;
    }
    // Stopping one says so; removing it works, and never signals the pid.
    EXPECT_EQ(kos({"stop", "reused"}).status, 0);
    EXPECT_EQ(kos({"rm", "reused"}).status, 0);
    EXPECT_EQ(kos({"rm", "dead"}).status, 0);
    EXPECT_TRUE(ids().empty());
    ProcessResult unknown = kos({"logs", "nosuch"});
    EXPECT_EQ(unknown.status, 1);
    EXPECT_NE(unknown.err.find("no instance is named \"nosuch\""), std::string::npos)
        << unknown.err;
}

} // namespace
