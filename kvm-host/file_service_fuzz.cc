// FileService::handle with arbitrary FileCall pages: each input is a series
// of calls on a fresh service whose volumes are real host directories (a
// labelled writable volume holding symlinks that point out of it, and a
// scratch volume with a quota). Half of the calls are steered towards valid
// ops, file ids, paths and segments so the fuzzer gets past the first
// checks. Every result must be a count or a negated errno, nothing may
// crash or hang, and the directory next to the volumes must be exactly as
// it was after every input.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "kos/policy/compiler.h"
#include "kos/security/engine.h"
#include "kvm-host/file_service.h"

namespace file = kos::abi::file;
namespace fs = std::filesystem;

namespace {

const std::vector<uint8_t>& policy() {
    static const std::vector<uint8_t> blob = [] {
        auto b = kos::policy::compile_bundle_policy(
            "app_t", {{"policy/app.kpol", "domain app_t\nresource data_t\nclass file { read: read, write: write }\n"
                                          "allow security app_t -> data_t file.{read, write}\n"}});
        if (!b)
            __builtin_trap();
        return *b;
    }();
    return blob;
}

uint32_t app_label() {
    static const uint32_t label = [] {
        const auto& b = policy();
        std::vector<uint64_t> state(kos::security::Engine::required_state_size(b.data(), b.size()) / 8 + 8);
        kos::security::Engine e;
        if (e.load(b.data(), b.size(), state.data(), state.size() * 8) != kos::security::LoadError::None)
            __builtin_trap();
        return e.find_label("app_t", 5);
    }();
    return label;
}

struct Snapshot {
    std::string victim;
    struct stat st{};
    std::vector<std::string> names;
    bool operator==(const Snapshot& o) const {
        return victim == o.victim && st.st_mode == o.st.st_mode && st.st_size == o.st.st_size &&
               st.st_mtim.tv_sec == o.st.st_mtim.tv_sec && st.st_mtim.tv_nsec == o.st.st_mtim.tv_nsec &&
               st.st_nlink == o.st.st_nlink && names == o.names;
    }
};

// The temporary tree: top/{vol, tmp, outside/victim}.
struct Tree {
    fs::path top;
    Snapshot clean;

    Tree() {
        std::string tmpl = (fs::temp_directory_path() / "kos-file-fuzz-XXXXXX").string();
        if (!::mkdtemp(tmpl.data()))
            __builtin_trap();
        top = tmpl;
        fs::create_directory(top / "outside");
        std::ofstream(top / "outside" / "victim") << "outside data";
        fs::create_directory(top / "vol");
        fs::create_directory(top / "tmp");
        clean = snapshot();
    }
    ~Tree() {
        reset(); // makes every directory removable again
        std::error_code ec;
        fs::remove_all(top, ec);
    }
    Snapshot snapshot() const {
        Snapshot s;
        std::ifstream in(top / "outside" / "victim", std::ios::binary);
        s.victim.assign(std::istreambuf_iterator<char>(in), {});
        ::lstat((top / "outside" / "victim").c_str(), &s.st);
        for (auto& e : fs::directory_iterator(top / "outside"))
            s.names.push_back(e.path().filename());
        for (auto& e : fs::directory_iterator(top))
            s.names.push_back(e.path().filename());
        std::sort(s.names.begin(), s.names.end());
        return s;
    }
    // The volumes as each input starts with them.
    void reset() {
        std::error_code ec;
        for (const char* d : {"vol", "tmp"}) {
            for (auto& e : fs::recursive_directory_iterator(top / d, ec))
                if (!e.is_symlink())
                    fs::permissions(e.path(), fs::perms::owner_all, fs::perm_options::add, ec);
            fs::permissions(top / d, fs::perms::owner_all, fs::perm_options::add, ec);
            fs::remove_all(top / d, ec);
            fs::create_directory(top / d);
        }
        fs::path v = top / "vol";
        fs::create_directory(v / "d");
        std::ofstream(v / "a") << "hello";
        std::ofstream(v / "d" / "x") << "x";
        fs::create_symlink(top / "outside" / "victim", v / "abs");
        fs::create_symlink("../outside/victim", v / "rel");
        fs::create_symlink(top / "outside", v / "dir");
        fs::create_symlink("../../outside", v / "d" / "up");
        fs::create_symlink("a", v / "in");
    }
};

const char* const kPaths[] = {"",      "a",          "d",        "d/x",    "abs",     "rel",     "dir",
                              "in",    "dir/victim", "d/up",     "d/up/victim", "new",  "d/new", "dir/new",
                              "../x",  "a/..",       "d//x",     "/a",     "d/sub",   "d/sub/y", "victim"};

void set_path(char* dst, uint32_t& len, const char* p) {
    len = static_cast<uint32_t>(std::strlen(p));
    std::memcpy(dst, p, len);
}

void steer(file::FileCall& c, uint8_t mode, uint64_t ram_size) {
    c.op = 1 + c.op % 18;
    c.subject = app_label();
    c.volume = (mode & 4) ? 1 : 0;
    c.file = 1 + c.file % 8;
    c.flags &= O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_APPEND | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK;
    if ((c.flags & O_ACCMODE) == O_ACCMODE)
        c.flags &= ~O_ACCMODE;
    c.mode &= 0777;
    c.arg %= 4;
    c.offset = (mode & 8) ? file::kAtPosition : c.offset % 100000;
    if (c.offset < 0 && c.offset != file::kAtPosition)
        c.offset = -c.offset;
    c.segment_count %= 4;
    for (auto& s : c.segments) {
        s.addr %= ram_size;
        s.len %= 8192;
    }
    set_path(c.path, c.path_len, kPaths[c.path[0] % std::size(kPaths)]);
    if (c.op != static_cast<uint32_t>(file::FileOp::Symlink) || (mode & 16))
        set_path(c.path2, c.path2_len, kPaths[c.path2[0] % std::size(kPaths)]);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static std::vector<uint8_t> ram(256 * 1024);
    static Tree tree;
    tree.reset();
    kos::vmm::FileServiceOptions o;
    o.policy = policy();
    o.audit = [](std::span<const uint8_t> r) {
        if (r.size() != 256)
            __builtin_trap();
    };
    o.volumes.push_back({kos::UniqueFd(::open((tree.top / "vol").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)),
                         "/data", "data_t", true, false, 0});
    o.volumes.push_back({kos::UniqueFd(::open((tree.top / "tmp").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)),
                         "/tmp", "", true, true, 64 * 1024});
    {
        auto svc = kos::vmm::FileService::start(std::move(o));
        if (!svc || !(*svc)->launch())
            __builtin_trap();
        kos::vmm::NetGuestMemory mem{ram.data(), ram.size()};
        size_t off = 0;
        for (int calls = 0; off < size && calls < 64; ++calls) {
            uint8_t mode = data[off++];
            file::FileCall c{};
            // Mostly the fields before the paths; sometimes a whole page.
            size_t n = std::min(size - off, (mode & 1) ? sizeof c : offsetof(file::FileCall, path) + 8);
            std::memcpy(&c, data + off, n);
            off += n;
            if (mode & 2)
                steer(c, mode, ram.size());
            int64_t r = (*svc)->handle(c, mem);
            bool seek = c.op == static_cast<uint32_t>(file::FileOp::Seek);
            if (r < -4095 || (!seek && r > static_cast<int64_t>(file::kMaxFileData)))
                __builtin_trap();
        }
    }
    if (!(tree.snapshot() == tree.clean))
        __builtin_trap(); // something outside the volumes changed
    return 0;
}
