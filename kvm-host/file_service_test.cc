// The file service driven as the guest kernel drives it: FileCalls into
// handle(), guest memory a host buffer (gpa = offset), a temporary host
// directory as the volumes.
#include "kvm-host/file_service.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <liburing.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "kos/policy/compiler.h"
#include "kos/security/engine.h"

namespace kos::vmm {
namespace {

namespace file = abi::file;
namespace sec = security;
namespace fs = std::filesystem;

constexpr uint64_t kDataGpa = 0x10000;
constexpr uint64_t kRamSize = 1 << 20;

// app_t may read and write data_t, only read docs_t, nothing of secret_t.
const char kPolicy[] = R"(domain app_t
resource data_t, docs_t, secret_t
class file { read: read, write: write }
allow security app_t -> data_t file.{read, write}
allow security app_t -> docs_t file.read
)";

std::vector<uint8_t> compile(const std::string& text) {
    auto blob = policy::compile_bundle_policy("app_t", {{"policy/app.kpol", text}});
    EXPECT_TRUE(blob) << (blob ? "" : blob.error().message);
    return blob ? *blob : std::vector<uint8_t>{};
}

uint32_t label_of(const std::vector<uint8_t>& blob, const char* name) {
    std::vector<uint64_t> state(sec::Engine::required_state_size(blob.data(), blob.size()) / 8 + 8);
    sec::Engine e;
    if (e.load(blob.data(), blob.size(), state.data(), state.size() * 8) != sec::LoadError::None)
        return sec::kNone;
    return e.find_label(name, static_cast<uint32_t>(std::strlen(name)));
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

void spit(const fs::path& p, const std::string& s) {
    std::ofstream out(p, std::ios::binary);
    out << s;
}

UniqueFd open_dir(const fs::path& p) { return UniqueFd(::open(p.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)); }

// Volumes, all under one temporary directory with a sibling `outside`:
//   0: vol     writable, data_t
//   1: ro      read-only, data_t
//   2: secret  writable, secret_t (the policy allows nothing)
//   3: docs    writable mount, docs_t (the policy allows reading only)
//   4: tmp     scratch, quota 1000 bytes
//   5: odd     writable, a label the policy does not know
enum Vol : uint32_t { kVol = 0, kRo, kSecret, kDocs, kScratch, kUnknown };

class FileServiceTest : public ::testing::Test {
protected:
    fs::path top;
    std::vector<uint8_t> ram = std::vector<uint8_t>(kRamSize);
    std::vector<uint8_t> blob;
    uint32_t subject = 0;
    std::vector<std::vector<uint8_t>> audits;
    std::unique_ptr<FileService> svc;

    void SetUp() override {
        std::string tmpl = (fs::temp_directory_path() / "kos-file-service-XXXXXX").string();
        ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
        top = tmpl;
        for (const char* d : {"vol", "ro", "secret", "docs", "tmp", "odd", "outside"})
            fs::create_directory(top / d);
        spit(top / "outside" / "victim", "outside data");
        spit(top / "ro" / "file", "read only");
        spit(top / "secret" / "file", "secret");
        spit(top / "docs" / "file", "docs");
        blob = compile(kPolicy);
        subject = label_of(blob, "app_t");
        FileServiceOptions o;
        o.policy = blob;
        o.audit = [this](std::span<const uint8_t> r) { audits.emplace_back(r.begin(), r.end()); };
        auto add = [&](const char* dir, const char* label, bool writable, bool scratch = false, uint64_t quota = 0) {
            o.volumes.push_back({open_dir(top / dir), std::string("/") + dir, label, writable, scratch, quota});
        };
        add("vol", "data_t", true);
        add("ro", "data_t", false);
        add("secret", "secret_t", true);
        add("docs", "docs_t", true);
        add("tmp", "", true, true, 1000);
        add("odd", "nosuch_t", true);
        auto s = FileService::start(std::move(o));
        ASSERT_TRUE(s) << s.error().message;
        svc = std::move(*s);
        auto l = svc->launch();
        ASSERT_TRUE(l) << l.error().message;
    }

    void TearDown() override {
        svc.reset();
        std::error_code ec;
        fs::permissions(top / "vol", fs::perms::owner_all, fs::perm_options::add, ec);
        fs::remove_all(top, ec);
    }

    NetGuestMemory mem() { return {ram.data(), ram.size()}; }

    file::FileCall make(file::FileOp op, const std::string& path = "", uint32_t volume = kVol) {
        file::FileCall c{};
        c.op = static_cast<uint32_t>(op);
        c.subject = subject;
        c.volume = volume;
        c.path_len = static_cast<uint32_t>(path.size());
        std::memcpy(c.path, path.data(), std::min<size_t>(path.size(), sizeof c.path));
        return c;
    }
    static void set_path2(file::FileCall& c, const std::string& p) {
        c.path2_len = static_cast<uint32_t>(p.size());
        std::memcpy(c.path2, p.data(), std::min<size_t>(p.size(), sizeof c.path2));
    }
    int64_t call(file::FileCall& c) { return svc->handle(c, mem()); }

    // Open: the file id, or -errno.
    int64_t open(const std::string& path, uint32_t flags, uint32_t volume = kVol, uint32_t mode = 0644) {
        auto c = make(file::FileOp::Open, path, volume);
        c.flags = flags;
        c.mode = mode;
        int64_t r = call(c);
        return r < 0 ? r : static_cast<int64_t>(c.file);
    }
    int64_t close(uint32_t id) {
        auto c = make(file::FileOp::Close);
        c.file = id;
        return call(c);
    }
    int64_t write(uint32_t id, const std::string& data, int64_t offset = file::kAtPosition) {
        std::memcpy(ram.data() + kDataGpa, data.data(), data.size());
        auto c = make(file::FileOp::Write);
        c.file = id;
        c.offset = offset;
        c.segment_count = 1;
        c.segments[0] = {kDataGpa, data.size()};
        return call(c);
    }
    // Read into two segments (the first 3 bytes long) to check the scatter.
    int64_t read(uint32_t id, std::string& out, uint64_t n = 4096, int64_t offset = file::kAtPosition) {
        auto c = make(file::FileOp::Read);
        c.file = id;
        c.offset = offset;
        c.segment_count = 2;
        c.segments[0] = {kDataGpa, std::min<uint64_t>(n, 3)};
        c.segments[1] = {kDataGpa + 0x1000, n - std::min<uint64_t>(n, 3)};
        int64_t r = call(c);
        out.clear();
        if (r > 0) {
            out.assign(reinterpret_cast<char*>(ram.data() + kDataGpa), std::min<uint64_t>(r, 3));
            if (r > 3)
                out.append(reinterpret_cast<char*>(ram.data() + kDataGpa + 0x1000), static_cast<size_t>(r - 3));
        }
        return r;
    }
    std::string read_all(uint32_t id) {
        std::string out, chunk;
        while (read(id, chunk, 7) > 0)
            out += chunk;
        return out;
    }
    int64_t seek(uint32_t id, int64_t offset, uint32_t whence) {
        auto c = make(file::FileOp::Seek);
        c.file = id;
        c.offset = offset;
        c.arg = whence;
        return call(c);
    }
    int64_t path_op(file::FileOp op, const std::string& path, uint32_t volume = kVol, uint32_t arg = 0,
                    uint32_t mode = 0) {
        auto c = make(op, path, volume);
        c.arg = arg;
        c.mode = mode;
        return call(c);
    }
    int64_t two_paths(file::FileOp op, const std::string& a, const std::string& b, uint32_t volume = kVol) {
        auto c = make(op, a, volume);
        set_path2(c, b);
        return call(c);
    }
    int64_t stat(const std::string& path, file::FileStat& st, uint32_t arg = 0, uint32_t volume = kVol) {
        auto c = make(file::FileOp::Stat, path, volume);
        c.arg = arg;
        int64_t r = call(c);
        st = c.stat;
        return r;
    }
    int64_t readlink(const std::string& path, std::string& out) {
        auto c = make(file::FileOp::ReadLink, path);
        c.segment_count = 1;
        c.segments[0] = {kDataGpa, 4096};
        int64_t r = call(c);
        out = r > 0 ? std::string(reinterpret_cast<char*>(ram.data() + kDataGpa), static_cast<size_t>(r)) : "";
        return r;
    }
    std::set<std::string> readdir(uint32_t id) {
        std::set<std::string> names;
        while (true) {
            auto c = make(file::FileOp::ReadDir);
            c.file = id;
            c.segment_count = 1;
            c.segments[0] = {kDataGpa, 512};
            int64_t n = call(c);
            EXPECT_GE(n, 0);
            if (n <= 0)
                break;
            for (int64_t off = 0; off < n;) {
                const uint8_t* rec = ram.data() + kDataGpa + off;
                uint16_t reclen;
                std::memcpy(&reclen, rec + 16, 2);
                names.insert(reinterpret_cast<const char*>(rec + 19));
                off += reclen;
            }
        }
        return names;
    }
    size_t files_outside() {
        size_t n = 0;
        for ([[maybe_unused]] auto& e : fs::directory_iterator(top / "outside"))
            ++n;
        return n;
    }
};

TEST_F(FileServiceTest, OpenWriteSeekReadRoundTrip) {
    int64_t id = open("a.txt", O_RDWR | O_CREAT | O_EXCL, kVol, 0640);
    ASSERT_GT(id, 0);
    EXPECT_EQ(write(static_cast<uint32_t>(id), "hello world"), 11);
    EXPECT_EQ(slurp(top / "vol" / "a.txt"), "hello world");
    EXPECT_EQ(fs::status(top / "vol" / "a.txt").permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
    EXPECT_EQ(seek(static_cast<uint32_t>(id), 0, SEEK_SET), 0);
    std::string s;
    EXPECT_EQ(read(static_cast<uint32_t>(id), s, 5), 5);
    EXPECT_EQ(s, "hello");
    EXPECT_EQ(read(static_cast<uint32_t>(id), s), 6); // the position moved on
    EXPECT_EQ(s, " world");
    EXPECT_EQ(read(static_cast<uint32_t>(id), s), 0); // the end
    // Explicit offsets leave the position alone.
    EXPECT_EQ(read(static_cast<uint32_t>(id), s, 5, 6), 5);
    EXPECT_EQ(s, "world");
    EXPECT_EQ(write(static_cast<uint32_t>(id), "W", 6), 1);
    EXPECT_EQ(seek(static_cast<uint32_t>(id), 0, SEEK_CUR), 11);
    EXPECT_EQ(seek(static_cast<uint32_t>(id), -5, SEEK_END), 6);
    EXPECT_EQ(seek(static_cast<uint32_t>(id), 0, 7), -EINVAL);
    EXPECT_EQ(seek(static_cast<uint32_t>(id), -100, SEEK_SET), -EINVAL);
    EXPECT_EQ(slurp(top / "vol" / "a.txt"), "hello World");
    EXPECT_EQ(open("a.txt", O_RDWR | O_CREAT | O_EXCL), -EEXIST);
    EXPECT_EQ(open("missing", O_RDONLY), -ENOENT);
    EXPECT_EQ(close(static_cast<uint32_t>(id)), 0);
}

TEST_F(FileServiceTest, OpenReportsTheStat) {
    spit(top / "vol" / "f", "12345");
    auto c = make(file::FileOp::Open, "f");
    c.flags = O_RDONLY;
    ASSERT_EQ(call(c), 0);
    EXPECT_NE(c.file, 0u);
    EXPECT_EQ(c.stat.size, 5u);
    EXPECT_TRUE(S_ISREG(c.stat.mode));
    struct stat host{};
    ASSERT_EQ(::stat((top / "vol" / "f").c_str(), &host), 0);
    EXPECT_EQ(c.stat.ino, host.st_ino);
    EXPECT_EQ(c.stat.uid, host.st_uid);
    EXPECT_EQ(c.stat.nlink, 1u);
    // A read-only open file cannot be written.
    EXPECT_EQ(write(c.file, "x"), -EBADF);
    auto w = open("f", O_WRONLY);
    ASSERT_GT(w, 0);
    std::string s;
    EXPECT_EQ(read(static_cast<uint32_t>(w), s), -EBADF);
}

TEST_F(FileServiceTest, AppendTruncateFstatSync) {
    spit(top / "vol" / "log", "one\n");
    int64_t id = open("log", O_WRONLY | O_APPEND);
    ASSERT_GT(id, 0);
    auto f = static_cast<uint32_t>(id);
    EXPECT_EQ(write(f, "two\n"), 4);
    EXPECT_EQ(write(f, "three\n", 0), 6); // O_APPEND: at the end whatever the offset (as Linux)
    EXPECT_EQ(slurp(top / "vol" / "log"), "one\ntwo\nthree\n");
    auto t = make(file::FileOp::Truncate);
    t.file = f;
    t.offset = 3;
    EXPECT_EQ(call(t), 0);
    EXPECT_EQ(slurp(top / "vol" / "log"), "one");
    t.offset = -1;
    EXPECT_EQ(call(t), -EINVAL);
    auto st = make(file::FileOp::FStat);
    st.file = f;
    EXPECT_EQ(call(st), 0);
    EXPECT_EQ(st.stat.size, 3u);
    auto sy = make(file::FileOp::Sync);
    sy.file = f;
    EXPECT_EQ(call(sy), 0);
    // Truncate needs a file open for writing (as ftruncate).
    int64_t r = open("log", O_RDONLY);
    ASSERT_GT(r, 0);
    t.file = static_cast<uint32_t>(r);
    t.offset = 0;
    EXPECT_EQ(call(t), -EINVAL);
    EXPECT_EQ(slurp(top / "vol" / "log"), "one");
    // O_TRUNC on open.
    int64_t tr = open("log", O_WRONLY | O_TRUNC);
    ASSERT_GT(tr, 0);
    EXPECT_EQ(fs::file_size(top / "vol" / "log"), 0u);
}

TEST_F(FileServiceTest, StatFollowsSymlinksUnlessAsked) {
    spit(top / "vol" / "target", "abc");
    fs::create_symlink("target", top / "vol" / "link");
    file::FileStat st{};
    EXPECT_EQ(stat("link", st), 0);
    EXPECT_TRUE(S_ISREG(st.mode));
    EXPECT_EQ(st.size, 3u);
    EXPECT_EQ(stat("link", st, file::kNoFollow), 0);
    EXPECT_TRUE(S_ISLNK(st.mode));
    EXPECT_EQ(stat("", st), 0); // the volume's root
    EXPECT_TRUE(S_ISDIR(st.mode));
    EXPECT_EQ(stat("nothing", st), -ENOENT);
    EXPECT_EQ(stat("target/x", st), -ENOTDIR);
    EXPECT_EQ(stat("link", st, 2), -EINVAL);
}

TEST_F(FileServiceTest, ReadDirListsTheHostRecords) {
    fs::create_directory(top / "vol" / "d");
    for (int i = 0; i < 40; ++i) // more than one 512-byte call
        spit(top / "vol" / "d" / ("file-with-a-longish-name-" + std::to_string(i)), "");
    int64_t id = open("d", O_RDONLY | O_DIRECTORY);
    ASSERT_GT(id, 0);
    auto names = readdir(static_cast<uint32_t>(id));
    EXPECT_EQ(names.size(), 42u);
    EXPECT_TRUE(names.contains("."));
    EXPECT_TRUE(names.contains(".."));
    EXPECT_TRUE(names.contains("file-with-a-longish-name-39"));
    // Rewind and list again; the root is a directory too.
    EXPECT_EQ(seek(static_cast<uint32_t>(id), 0, SEEK_SET), 0);
    EXPECT_EQ(readdir(static_cast<uint32_t>(id)).size(), 42u);
    int64_t root = open("", O_RDONLY | O_DIRECTORY);
    ASSERT_GT(root, 0);
    EXPECT_TRUE(readdir(static_cast<uint32_t>(root)).contains("d"));
    EXPECT_EQ(open("d", O_RDWR), -EISDIR);
}

TEST_F(FileServiceTest, MkdirUnlinkRmdir) {
    EXPECT_EQ(path_op(file::FileOp::Mkdir, "d", kVol, 0, 0750), 0);
    EXPECT_TRUE(fs::is_directory(top / "vol" / "d"));
    EXPECT_EQ(path_op(file::FileOp::Mkdir, "d"), -EEXIST);
    EXPECT_EQ(path_op(file::FileOp::Mkdir, ""), -EEXIST);
    EXPECT_EQ(path_op(file::FileOp::Mkdir, "d/e/f"), -ENOENT);
    EXPECT_EQ(path_op(file::FileOp::Mkdir, "d/e"), 0);
    spit(top / "vol" / "d" / "e" / "f", "x");
    EXPECT_EQ(path_op(file::FileOp::Unlink, "d/e"), -EISDIR);
    EXPECT_EQ(path_op(file::FileOp::Unlink, "d/e", kVol, file::kRemoveDir), -ENOTEMPTY);
    EXPECT_EQ(path_op(file::FileOp::Unlink, "d/e/f"), 0);
    EXPECT_FALSE(fs::exists(top / "vol" / "d" / "e" / "f"));
    EXPECT_EQ(path_op(file::FileOp::Unlink, "d/e", kVol, file::kRemoveDir), 0);
    EXPECT_FALSE(fs::exists(top / "vol" / "d" / "e"));
    EXPECT_EQ(path_op(file::FileOp::Unlink, ""), -EBUSY);
    EXPECT_EQ(path_op(file::FileOp::Unlink, "d", kVol, 4), -EINVAL);
}

TEST_F(FileServiceTest, RenameAndLink) {
    spit(top / "vol" / "a", "A");
    spit(top / "vol" / "b", "B");
    fs::create_directory(top / "vol" / "sub");
    EXPECT_EQ(two_paths(file::FileOp::Rename, "a", "sub/a2"), 0);
    EXPECT_EQ(slurp(top / "vol" / "sub" / "a2"), "A");
    EXPECT_FALSE(fs::exists(top / "vol" / "a"));
    EXPECT_EQ(two_paths(file::FileOp::Rename, "sub/a2", "b"), 0); // replaces b
    EXPECT_EQ(slurp(top / "vol" / "b"), "A");
    EXPECT_EQ(two_paths(file::FileOp::Link, "b", "sub/hard"), 0);
    EXPECT_EQ(fs::hard_link_count(top / "vol" / "b"), 2u);
    EXPECT_EQ(two_paths(file::FileOp::Link, "b", "sub/hard"), -EEXIST);
    EXPECT_EQ(two_paths(file::FileOp::Rename, "missing", "x"), -ENOENT);
    EXPECT_EQ(two_paths(file::FileOp::Rename, "", "x"), -EBUSY);
    EXPECT_EQ(two_paths(file::FileOp::Rename, "b", "../x"), -EINVAL);
    EXPECT_EQ(two_paths(file::FileOp::Link, "sub", "sub2"), -EPERM); // no hard links to directories
}

TEST_F(FileServiceTest, SymlinkAndReadLink) {
    EXPECT_EQ(two_paths(file::FileOp::Symlink, "l", "some/target text"), 0);
    EXPECT_EQ(fs::read_symlink(top / "vol" / "l"), "some/target text");
    std::string s;
    EXPECT_EQ(readlink("l", s), 16);
    EXPECT_EQ(s, "some/target text");
    EXPECT_EQ(two_paths(file::FileOp::Symlink, "l", "x"), -EEXIST);
    EXPECT_EQ(two_paths(file::FileOp::Symlink, "m", ""), -ENOENT);
    spit(top / "vol" / "plain", "");
    EXPECT_EQ(readlink("plain", s), -EINVAL);
    EXPECT_EQ(readlink("", s), -EINVAL);
    // A symlink pointing anywhere may be made; following it is what is checked.
    EXPECT_EQ(two_paths(file::FileOp::Symlink, "abs", "/etc/passwd"), 0);
    EXPECT_EQ(readlink("abs", s), 11);
}

TEST_F(FileServiceTest, ChmodAndSetTimes) {
    spit(top / "vol" / "f", "x");
    EXPECT_EQ(path_op(file::FileOp::Chmod, "f", kVol, 0, 0600), 0);
    EXPECT_EQ(fs::status(top / "vol" / "f").permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write);
    fs::create_symlink("f", top / "vol" / "lf");
    EXPECT_EQ(path_op(file::FileOp::Chmod, "lf", kVol, 0, 0640), 0); // follows
    EXPECT_EQ(fs::status(top / "vol" / "f").permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
    EXPECT_EQ(path_op(file::FileOp::Chmod, "lf", kVol, file::kNoFollow, 0600), -EOPNOTSUPP);
    EXPECT_EQ(path_op(file::FileOp::Chmod, "f", kVol, file::kNoFollow, 0604), 0);
    EXPECT_EQ(fs::status(top / "vol" / "f").permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write | fs::perms::others_read);
    // Never set-ID bits on the host.
    EXPECT_EQ(path_op(file::FileOp::Chmod, "f", kVol, 0, 06755), 0);
    EXPECT_EQ(fs::status(top / "vol" / "f").permissions() & (fs::perms::set_uid | fs::perms::set_gid),
              fs::perms::none);
    EXPECT_EQ(path_op(file::FileOp::Mkdir, "sticky", kVol, 0, 03777), 0);
    EXPECT_EQ(fs::status(top / "vol" / "sticky").permissions() & (fs::perms::set_gid | fs::perms::sticky_bit),
              fs::perms::sticky_bit);
    EXPECT_EQ(path_op(file::FileOp::Chmod, "f", kVol, 0, 0604), 0);
    // On an open file (path_len 0).
    int64_t id = open("f", O_RDONLY);
    ASSERT_GT(id, 0);
    auto c = make(file::FileOp::Chmod);
    c.file = static_cast<uint32_t>(id);
    c.mode = 04400;
    EXPECT_EQ(call(c), 0);
    EXPECT_EQ(fs::status(top / "vol" / "f").permissions() & fs::perms::all, fs::perms::owner_read);
    c.file = 9999;
    EXPECT_EQ(call(c), -EBADF);

    auto t = make(file::FileOp::SetTimes, "f");
    t.times[0] = file::kTimeOmit;
    t.times[1] = 1'000'000'000'123'456'789;
    struct stat before{};
    ASSERT_EQ(::stat((top / "vol" / "f").c_str(), &before), 0);
    EXPECT_EQ(call(t), 0);
    struct stat after{};
    ASSERT_EQ(::stat((top / "vol" / "f").c_str(), &after), 0);
    EXPECT_EQ(after.st_mtim.tv_sec, 1'000'000'000);
    EXPECT_EQ(after.st_mtim.tv_nsec, 123'456'789);
    EXPECT_EQ(after.st_atim.tv_sec, before.st_atim.tv_sec);
    // Without following: the link's own times.
    t = make(file::FileOp::SetTimes, "lf");
    t.arg = file::kNoFollow;
    t.times[0] = t.times[1] = 2'000'000'000;
    EXPECT_EQ(call(t), 0);
    struct stat link{};
    ASSERT_EQ(::lstat((top / "vol" / "lf").c_str(), &link), 0);
    EXPECT_EQ(link.st_mtim.tv_sec, 2);
    ASSERT_EQ(::stat((top / "vol" / "f").c_str(), &after), 0);
    EXPECT_EQ(after.st_mtim.tv_sec, 1'000'000'000);
    // On an open file, now.
    auto n = make(file::FileOp::SetTimes);
    n.file = static_cast<uint32_t>(id);
    n.times[0] = n.times[1] = file::kTimeNow;
    EXPECT_EQ(call(n), 0);
    ASSERT_EQ(::stat((top / "vol" / "f").c_str(), &after), 0);
    EXPECT_GT(after.st_mtim.tv_sec, 1'000'000'000);
}

TEST_F(FileServiceTest, ReadOnlyVolumeRefusesChangesAndChangesNothing) {
    auto before = slurp(top / "ro" / "file");
    EXPECT_EQ(open("file", O_WRONLY, kRo), -EROFS);
    EXPECT_EQ(open("file", O_RDONLY | O_TRUNC, kRo), -EROFS);
    EXPECT_EQ(open("new", O_RDONLY | O_CREAT, kRo), -EROFS);
    EXPECT_EQ(path_op(file::FileOp::Mkdir, "d", kRo), -EROFS);
    EXPECT_EQ(path_op(file::FileOp::Unlink, "file", kRo), -EROFS);
    EXPECT_EQ(two_paths(file::FileOp::Rename, "file", "f2", kRo), -EROFS);
    EXPECT_EQ(two_paths(file::FileOp::Link, "file", "f2", kRo), -EROFS);
    EXPECT_EQ(two_paths(file::FileOp::Symlink, "s", "file", kRo), -EROFS);
    EXPECT_EQ(path_op(file::FileOp::Chmod, "file", kRo, 0, 0777), -EROFS);
    EXPECT_EQ(path_op(file::FileOp::SetTimes, "file", kRo), -EROFS);
    int64_t id = open("file", O_RDONLY, kRo);
    ASSERT_GT(id, 0);
    auto t = make(file::FileOp::Truncate, "", kRo);
    t.file = static_cast<uint32_t>(id);
    EXPECT_EQ(call(t), -EROFS);
    auto c = make(file::FileOp::Chmod, "", kRo);
    c.file = static_cast<uint32_t>(id);
    c.mode = 0777;
    EXPECT_EQ(call(c), -EROFS);
    EXPECT_EQ(read_all(static_cast<uint32_t>(id)), before);
    EXPECT_EQ(slurp(top / "ro" / "file"), before);
    EXPECT_EQ(fs::status(top / "ro" / "file").permissions() & fs::perms::all,
              fs::status(top / "vol").permissions() & fs::perms::all & ~(fs::perms::owner_exec | fs::perms::group_exec |
                                                                          fs::perms::others_exec));
    std::set<std::string> names;
    for (auto& e : fs::directory_iterator(top / "ro"))
        names.insert(e.path().filename());
    EXPECT_EQ(names, std::set<std::string>{"file"});
    EXPECT_TRUE(audits.empty()); // EROFS is not a policy denial
}

TEST_F(FileServiceTest, PolicyDenialsAreEaccesWithAuditRecords) {
    file::FileStat st{};
    EXPECT_EQ(stat("file", st, 0, kSecret), -EACCES);
    ASSERT_EQ(audits.size(), 1u);
    ASSERT_EQ(audits[0].size(), sizeof(sec::AuditRecord));
    sec::AuditRecord rec;
    std::memcpy(&rec, audits[0].data(), sizeof rec);
    EXPECT_EQ(rec.allow, 0);
    EXPECT_EQ(rec.kind, static_cast<uint8_t>(sec::Kind::Security));
    EXPECT_EQ(rec.source, subject);
    EXPECT_EQ(rec.target, label_of(blob, "secret_t"));
    EXPECT_EQ(open("file", O_RDONLY, kSecret), -EACCES);
    EXPECT_EQ(path_op(file::FileOp::Unlink, "file", kSecret), -EACCES);
    EXPECT_TRUE(fs::exists(top / "secret" / "file"));
    // docs_t: reading is allowed, writing is not.
    int64_t id = open("file", O_RDONLY, kDocs);
    ASSERT_GT(id, 0);
    EXPECT_EQ(read_all(static_cast<uint32_t>(id)), "docs");
    size_t n = audits.size();
    EXPECT_EQ(open("file", O_WRONLY, kDocs), -EACCES);
    EXPECT_EQ(open("new", O_RDONLY | O_CREAT, kDocs), -EACCES);
    EXPECT_EQ(path_op(file::FileOp::Mkdir, "d", kDocs), -EACCES);
    auto t = make(file::FileOp::Truncate, "", kDocs);
    t.file = static_cast<uint32_t>(id);
    EXPECT_EQ(call(t), -EACCES);
    EXPECT_EQ(audits.size(), n + 4);
    EXPECT_FALSE(fs::exists(top / "docs" / "new"));
    EXPECT_FALSE(fs::exists(top / "docs" / "d"));
    EXPECT_EQ(slurp(top / "docs" / "file"), "docs");
    // A label the policy does not know, and a subject it does not know.
    EXPECT_EQ(stat("", st, 0, kUnknown), -EACCES);
    auto c = make(file::FileOp::Stat, "", kVol);
    c.subject = 12345;
    EXPECT_EQ(call(c), -EACCES);
    // The scratch volume needs no label.
    EXPECT_EQ(stat("", st, 0, kScratch), 0);
}

TEST_F(FileServiceTest, MalformedPathsAreRejected) {
    file::FileStat st{};
    for (const char* p : {"../x", "..", ".", "/etc", "a//b", "a/./b", "a/../b", "a/", "/", "x/.."})
        EXPECT_EQ(stat(p, st), -EINVAL) << p;
    auto c = make(file::FileOp::Stat, std::string("a\0b", 3));
    EXPECT_EQ(call(c), -EINVAL);
    c = make(file::FileOp::Stat, "a");
    c.path_len = file::kMaxFilePath + 1;
    EXPECT_EQ(call(c), -EINVAL);
    c = make(file::FileOp::Stat, "a");
    c.volume = 6;
    EXPECT_EQ(call(c), -EINVAL);
    c.volume = 0xffffffff;
    EXPECT_EQ(call(c), -EINVAL);
    c = make(file::FileOp::Stat, "a");
    c.op = 0;
    EXPECT_EQ(call(c), -EINVAL);
    c.op = 19;
    EXPECT_EQ(call(c), -EINVAL);
    EXPECT_EQ(open("x", O_RDWR | O_WRONLY), -EINVAL);
    EXPECT_EQ(open("x", O_RDONLY | O_PATH), -EINVAL);
    EXPECT_EQ(open("", O_RDWR | O_TMPFILE), -EOPNOTSUPP);
    EXPECT_EQ(open("x", O_RDONLY | 0x40000000), -EINVAL);
}

// The volume holds symlinks pointing out of it; nothing reaches `outside`.
TEST_F(FileServiceTest, SymlinksOutOfTheVolumeAreEacces) {
    fs::path outside = top / "outside";
    fs::create_symlink(outside / "victim", top / "vol" / "abs");
    fs::create_symlink("../outside/victim", top / "vol" / "rel");
    fs::create_symlink("../../../../../../etc", top / "vol" / "etc");
    fs::create_symlink(outside, top / "vol" / "dir");
    fs::create_directory(top / "vol" / "sub");
    fs::create_symlink("../../outside", top / "vol" / "sub" / "up");
    file::FileStat st{};
    for (const char* p : {"abs", "rel", "etc/passwd", "dir/victim", "sub/up/victim"}) {
        EXPECT_EQ(open(p, O_RDONLY), -EACCES) << p;
        EXPECT_EQ(open(p, O_WRONLY | O_TRUNC), -EACCES) << p;
        EXPECT_EQ(open(p, O_WRONLY | O_CREAT), -EACCES) << p;
        EXPECT_EQ(stat(p, st), -EACCES) << p;
        EXPECT_EQ(path_op(file::FileOp::Chmod, p, kVol, 0, 0777), -EACCES) << p;
        EXPECT_EQ(path_op(file::FileOp::SetTimes, p), -EACCES) << p;
    }
    // A symlink as a parent component of the entry a call names.
    for (const char* p : {"dir/victim", "sub/up/victim", "etc/passwd"}) {
        EXPECT_EQ(path_op(file::FileOp::Unlink, p), -EACCES) << p;
        EXPECT_EQ(two_paths(file::FileOp::Rename, p, "mine"), -EACCES) << p;
        EXPECT_EQ(two_paths(file::FileOp::Link, p, "mine"), -EACCES) << p;
        EXPECT_EQ(path_op(file::FileOp::Chmod, p, kVol, file::kNoFollow, 0777), -EACCES) << p;
        EXPECT_EQ(stat(p, st, file::kNoFollow), -EACCES) << p;
        std::string s;
        EXPECT_EQ(readlink(p, s), -EACCES) << p;
    }
    spit(top / "vol" / "mine", "mine");
    EXPECT_EQ(path_op(file::FileOp::Mkdir, "dir/newdir"), -EACCES);
    EXPECT_EQ(two_paths(file::FileOp::Rename, "mine", "dir/stolen"), -EACCES);
    EXPECT_EQ(two_paths(file::FileOp::Link, "mine", "dir/stolen"), -EACCES);
    EXPECT_EQ(two_paths(file::FileOp::Symlink, "dir/s", "x"), -EACCES);
    EXPECT_EQ(slurp(outside / "victim"), "outside data");
    EXPECT_EQ(files_outside(), 1u);
    EXPECT_EQ(fs::status(outside / "victim").permissions() & fs::perms::all,
              fs::status(top / "vol" / "mine").permissions() & fs::perms::all);
    // The links themselves are inside: they can be read, stat'ed and removed.
    std::string s;
    EXPECT_EQ(readlink("abs", s), static_cast<int64_t>((outside / "victim").string().size()));
    EXPECT_EQ(stat("abs", st, file::kNoFollow), 0);
    EXPECT_EQ(path_op(file::FileOp::Unlink, "abs"), 0);
    EXPECT_TRUE(fs::exists(outside / "victim"));
    EXPECT_TRUE(audits.empty());
}

TEST_F(FileServiceTest, ForgedFileIdsAreEbadf) {
    std::string s;
    EXPECT_EQ(read(0, s), -EBADF);
    EXPECT_EQ(read(12345, s), -EBADF);
    EXPECT_EQ(write(0xffffffff, "x"), -EBADF);
    EXPECT_EQ(close(7), -EBADF);
    int64_t id = open("f", O_RDWR | O_CREAT);
    ASSERT_GT(id, 0);
    EXPECT_EQ(close(static_cast<uint32_t>(id)), 0);
    EXPECT_EQ(close(static_cast<uint32_t>(id)), -EBADF); // closed
    EXPECT_EQ(read(static_cast<uint32_t>(id), s), -EBADF);
    auto c = make(file::FileOp::FStat);
    c.file = static_cast<uint32_t>(id);
    EXPECT_EQ(call(c), -EBADF);
    auto t = make(file::FileOp::Truncate);
    t.file = static_cast<uint32_t>(id) + 1;
    EXPECT_EQ(call(t), -EBADF);
}

TEST_F(FileServiceTest, BadSegments) {
    int64_t id = open("f", O_RDWR | O_CREAT);
    ASSERT_GT(id, 0);
    auto f = static_cast<uint32_t>(id);
    EXPECT_EQ(write(f, "0123456789"), 10);
    ASSERT_EQ(seek(f, 0, SEEK_SET), 0);
    auto rd = [&](std::initializer_list<file::FileSegment> segs, uint32_t count) {
        auto c = make(file::FileOp::Read);
        c.file = f;
        c.offset = 0;
        size_t i = 0;
        for (auto s : segs)
            c.segments[i++] = s;
        c.segment_count = count;
        return call(c);
    };
    EXPECT_EQ(rd({{kRamSize - 4, 8}}, 1), -EFAULT);
    EXPECT_EQ(rd({{kRamSize, 1}}, 1), -EFAULT);
    EXPECT_EQ(rd({{~0ull - 2, 8}}, 1), -EFAULT);
    EXPECT_EQ(rd({{0, 4}, {~0ull, 2}}, 2), -EFAULT);
    EXPECT_EQ(rd({{0, file::kMaxFileData + 1}}, 1), -EINVAL);
    EXPECT_EQ(rd({{0, file::kMaxFileData}, {0, 1}}, 2), -EINVAL);
    EXPECT_EQ(rd({{0, ~0ull}, {0, 2}}, 2), -EINVAL);
    EXPECT_EQ(rd({{0, 4}}, file::kMaxFileSegments + 1), -EINVAL);
    EXPECT_EQ(rd({}, 0), 0); // nothing asked, nothing read
    EXPECT_EQ(rd({{kRamSize - 4, 4}}, 1), 4);
    // Writes may come from the read-only image slot; reads never go there.
    std::vector<uint8_t> image(4096, 'I');
    NetGuestMemory m{ram.data(), ram.size(), image.data(), 0x4000'0000, image.size()};
    auto w = make(file::FileOp::Write);
    w.file = f;
    w.offset = 0;
    w.segment_count = 1;
    w.segments[0] = {0x4000'0000 + 10, 3};
    EXPECT_EQ(svc->handle(w, m), 3);
    EXPECT_EQ(slurp(top / "vol" / "f"), "III3456789");
    w.segments[0] = {0x4000'0000 + 4090, 8};
    EXPECT_EQ(svc->handle(w, m), -EFAULT);
    auto r = make(file::FileOp::Read);
    r.file = f;
    r.offset = 0;
    r.segment_count = 1;
    r.segments[0] = {0x4000'0000, 3};
    EXPECT_EQ(svc->handle(r, m), -EFAULT);
    EXPECT_EQ(image[0], 'I');
    // ReadLink's buffer is checked the same way.
    auto l = make(file::FileOp::ReadLink, "f");
    l.segment_count = 1;
    l.segments[0] = {kRamSize, 16};
    EXPECT_EQ(call(l), -EFAULT);
}

TEST_F(FileServiceTest, OneFileIdSharesItsPosition) {
    // The guest kernel gives both handles of a forked process the same id.
    int64_t id = open("shared", O_RDWR | O_CREAT);
    ASSERT_GT(id, 0);
    auto f = static_cast<uint32_t>(id);
    EXPECT_EQ(write(f, "abc"), 3); // "parent"
    EXPECT_EQ(write(f, "def"), 3); // "child": continues where the parent stopped
    EXPECT_EQ(slurp(top / "vol" / "shared"), "abcdef");
    EXPECT_EQ(seek(f, 1, SEEK_SET), 1);
    std::string s;
    EXPECT_EQ(read(f, s, 2), 2);
    EXPECT_EQ(s, "bc");
    EXPECT_EQ(read(f, s, 2), 2);
    EXPECT_EQ(s, "de");
    // A second open is a second file description with its own position.
    int64_t other = open("shared", O_RDONLY);
    ASSERT_GT(other, 0);
    EXPECT_NE(other, id);
    EXPECT_EQ(read(static_cast<uint32_t>(other), s, 2), 2);
    EXPECT_EQ(s, "ab");
    EXPECT_EQ(seek(f, 0, SEEK_CUR), 5);
}

TEST_F(FileServiceTest, ScratchQuotaCountsApparentSizes) {
    int64_t id = open("a", O_RDWR | O_CREAT, kScratch);
    ASSERT_GT(id, 0);
    auto f = static_cast<uint32_t>(id);
    EXPECT_EQ(write(f, std::string(600, 'a')), 600);
    EXPECT_EQ(svc->scratch_used_for_test(kScratch), 600u);
    EXPECT_EQ(write(f, std::string(500, 'b')), -ENOSPC);
    EXPECT_EQ(fs::file_size(top / "tmp" / "a"), 600u);
    EXPECT_EQ(write(f, std::string(100, 'c'), 0), 100); // overwrite: no growth
    EXPECT_EQ(svc->scratch_used_for_test(kScratch), 600u);
    auto t = make(file::FileOp::Truncate, "", kScratch);
    t.file = f;
    t.offset = 2000;
    EXPECT_EQ(call(t), -ENOSPC); // a hole counts as its apparent size
    t.offset = 100;
    EXPECT_EQ(call(t), 0);
    EXPECT_EQ(svc->scratch_used_for_test(kScratch), 100u);
    // A second file, and a write far past the end.
    int64_t g = open("b", O_WRONLY | O_CREAT, kScratch);
    ASSERT_GT(g, 0);
    EXPECT_EQ(write(static_cast<uint32_t>(g), "x", 950), -ENOSPC);
    EXPECT_EQ(write(static_cast<uint32_t>(g), std::string(900, 'x')), 900);
    EXPECT_EQ(svc->scratch_used_for_test(kScratch), 1000u);
    EXPECT_EQ(write(f, "y", 100), -ENOSPC);
    // Unlinking the last name frees; a second name does not.
    EXPECT_EQ(two_paths(file::FileOp::Link, "b", "b2", kScratch), 0);
    EXPECT_EQ(path_op(file::FileOp::Unlink, "b", kScratch), 0);
    EXPECT_EQ(svc->scratch_used_for_test(kScratch), 1000u);
    EXPECT_EQ(close(static_cast<uint32_t>(g)), 0);
    EXPECT_EQ(svc->scratch_used_for_test(kScratch), 1000u); // b2 still names it
    EXPECT_EQ(path_op(file::FileOp::Unlink, "b2", kScratch), 0);
    EXPECT_EQ(svc->scratch_used_for_test(kScratch), 100u);
    // A rename that replaces a file frees the replaced one.
    EXPECT_EQ(close(f), 0);
    int64_t h = open("c", O_WRONLY | O_CREAT, kScratch);
    ASSERT_GT(h, 0);
    EXPECT_EQ(write(static_cast<uint32_t>(h), std::string(300, 'c')), 300);
    EXPECT_EQ(two_paths(file::FileOp::Rename, "c", "a", kScratch), 0);
    EXPECT_EQ(svc->scratch_used_for_test(kScratch), 300u);
    // A truncating open frees the old contents.
    EXPECT_GT(open("a", O_WRONLY | O_TRUNC, kScratch), 0);
    EXPECT_EQ(svc->scratch_used_for_test(kScratch), 0u);
    // Appends count from the end.
    int64_t ap = open("log", O_WRONLY | O_CREAT | O_APPEND, kScratch);
    ASSERT_GT(ap, 0);
    EXPECT_EQ(write(static_cast<uint32_t>(ap), std::string(999, 'l'), 0), 999);
    EXPECT_EQ(write(static_cast<uint32_t>(ap), "ll", 0), -ENOSPC);
    EXPECT_EQ(write(static_cast<uint32_t>(ap), "l", 0), 1);
    EXPECT_EQ(svc->scratch_used_for_test(kScratch), 1000u);
    // An unlinked file still open keeps its size until its last close (no
    // room won by unlinking open files).
    EXPECT_EQ(path_op(file::FileOp::Unlink, "log", kScratch), 0);
    EXPECT_EQ(svc->scratch_used_for_test(kScratch), 1000u);
    EXPECT_EQ(write(static_cast<uint32_t>(ap), "l", 0), -ENOSPC);
    int64_t other = open("other", O_WRONLY | O_CREAT, kScratch);
    ASSERT_GT(other, 0);
    EXPECT_EQ(write(static_cast<uint32_t>(other), "o"), -ENOSPC);
    auto t2 = make(file::FileOp::Truncate, "", kScratch);
    t2.file = static_cast<uint32_t>(ap);
    t2.offset = 400;
    EXPECT_EQ(call(t2), 0);
    EXPECT_EQ(svc->scratch_used_for_test(kScratch), 400u);
    EXPECT_EQ(close(static_cast<uint32_t>(ap)), 0);
    EXPECT_EQ(svc->scratch_used_for_test(kScratch), 0u);
    EXPECT_EQ(write(static_cast<uint32_t>(other), std::string(1000, 'o')), 1000);
    // Labelled volumes have no quota.
    int64_t big = open("big", O_WRONLY | O_CREAT);
    ASSERT_GT(big, 0);
    EXPECT_EQ(write(static_cast<uint32_t>(big), std::string(200000, 'z')), 200000);
}

TEST_F(FileServiceTest, FifosAndSocketsAreNotServed) {
    ASSERT_EQ(::mkfifo((top / "vol" / "fifo").c_str(), 0600), 0);
    EXPECT_EQ(open("fifo", O_RDONLY), -EACCES); // and the service did not block
    EXPECT_EQ(open("fifo", O_WRONLY), -ENXIO);  // no reader (O_NONBLOCK on the host)
    file::FileStat st{};
    EXPECT_EQ(stat("fifo", st), 0);
    EXPECT_TRUE(S_ISFIFO(st.mode));
}

TEST_F(FileServiceTest, OpenFilesAreLimited) {
    rlimit rl{};
    ::getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_max < file::kMaxOpenFiles + 64)
        GTEST_SKIP() << "RLIMIT_NOFILE hard limit too low";
    rlimit raised{file::kMaxOpenFiles + 64, rl.rlim_max};
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &raised), 0);
    spit(top / "vol" / "f", "");
    std::vector<uint32_t> ids;
    for (uint32_t i = 0; i < file::kMaxOpenFiles; ++i) {
        int64_t id = open("f", O_RDONLY);
        ASSERT_GT(id, 0) << i;
        ids.push_back(static_cast<uint32_t>(id));
    }
    EXPECT_EQ(open("f", O_RDONLY), -ENFILE);
    EXPECT_EQ(close(ids.back()), 0);
    EXPECT_GT(open("f", O_RDONLY), 0);
    for (uint32_t id : ids)
        close(id);
    ::setrlimit(RLIMIT_NOFILE, &rl);
}

TEST(FileServiceStart, FailsClosed) {
    auto vol = [] {
        std::vector<FileVolume> v;
        v.push_back({UniqueFd(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)), "/data", "data_t", false, false, 0});
        return v;
    };
    FileServiceOptions none; // no policy, a labelled volume
    none.volumes = vol();
    EXPECT_FALSE(FileService::start(std::move(none)));
    FileServiceOptions bad;
    std::vector<uint8_t> garbage(64, 7);
    bad.policy = garbage;
    bad.volumes = vol();
    EXPECT_FALSE(FileService::start(std::move(bad)));
    FileServiceOptions empty;
    EXPECT_FALSE(FileService::start(std::move(empty)));
    // Scratch alone needs no policy.
    FileServiceOptions scratch;
    scratch.volumes.push_back({UniqueFd(::open("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC)), "/tmp", "", true, true, 0});
    EXPECT_TRUE(FileService::start(std::move(scratch)));
}

TEST(FileServiceRing, RefusesOpcodesTheServiceDoesNotUse) {
    for (uint8_t op : {uint8_t{IORING_OP_OPENAT}, uint8_t{IORING_OP_NOP}, uint8_t{IORING_OP_SEND},
                       uint8_t{IORING_OP_SOCKET}, uint8_t{IORING_OP_POLL_ADD}, uint8_t{IORING_OP_SPLICE},
                       uint8_t{IORING_OP_URING_CMD}, uint8_t{IORING_OP_FSETXATTR}}) {
        auto r = FileService::ring_result_for_test(op);
        ASSERT_TRUE(r) << r.error().message;
        EXPECT_EQ(*r, -EACCES) << "opcode " << int(op);
    }
}

} // namespace
} // namespace kos::vmm
