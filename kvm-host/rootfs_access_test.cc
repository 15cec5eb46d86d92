// The boot image's rootfs access section: which files each label may read,
// decided with the bundle's compiled policy.
#include "kvm-host/rootfs_access.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "kos/policy/compiler.h"
#include "kos/rootfs_access.h"
#include "kos/rootfs_image.h"
#include "pkg/rootfs_builder.h"

namespace kos::vmm {
namespace {

namespace ra = abi::rootfs_access;
namespace rfs = abi::rootfs;
namespace fs = std::filesystem;

std::vector<uint8_t> compile(const std::string& text) {
    auto blob = policy::compile_bundle_policy("app_t", {{"policy/app.kpol", text}});
    EXPECT_TRUE(blob) << (blob ? "" : blob.error().message);
    return blob ? *blob : std::vector<uint8_t>{};
}

class RootfsAccess : public ::testing::Test {
protected:
    fs::path dir;
    std::vector<uint8_t> image;

    void SetUp() override {
        std::string tmpl = (fs::temp_directory_path() / "kos-rootfs-access-XXXXXX").string();
        ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
        dir = tmpl;
        fs::create_directories(dir / "bin");
        std::ofstream(dir / "bin" / "prog") << std::string(5000, 'p'); // two pages
        std::ofstream(dir / "public.txt") << "public";
        std::ofstream(dir / "secret.txt") << "secret";
        std::ofstream(dir / "zz.txt") << "after the secret";
        pkg::RootfsBuildOptions o;
        o.labeler = [](const std::string& path, uint32_t) -> Result<std::string> {
            return std::string(path == "/secret.txt" ? "secret_t" : path.starts_with("/bin") ? "exec_t" : "file_t");
        };
        auto built = pkg::build_rootfs_image(dir.string(), o);
        ASSERT_TRUE(built) << built.error().message;
        image = std::move(*built);
    }
    void TearDown() override { fs::remove_all(dir); }

    int64_t entry(const char* path) const {
        rfs::RootfsView v(image.data(), image.size());
        return v.find(path, std::strlen(path));
    }
};

TEST_F(RootfsAccess, NoFileClassOrEverythingReadableMeansNoSection) {
    auto none = encode_rootfs_access(image, compile("domain app_t\nresource file_t, exec_t, secret_t\n"), {"app_t"});
    ASSERT_TRUE(none) << none.error().message;
    EXPECT_TRUE(none->empty());
    auto all = encode_rootfs_access(image,
                                    compile("domain app_t\nresource file_t, exec_t, secret_t\n"
                                            "class file { read: read }\n"
                                            "allow security app_t -> { file_t, exec_t, secret_t } file.read\n"),
                                    {"app_t"});
    ASSERT_TRUE(all) << all.error().message;
    EXPECT_TRUE(all->empty());
}

TEST_F(RootfsAccess, RunsAndBitmapLeaveOutWhatTheLabelMayNotRead) {
    auto blob = compile("domain app_t\nresource file_t, exec_t, secret_t\nclass file { read: read }\n"
                        "allow security app_t -> { file_t, exec_t } file.read\n");
    auto sec = encode_rootfs_access(image, blob, {"app_t"});
    ASSERT_TRUE(sec) << sec.error().message;
    ASSERT_GE(sec->size(), sizeof(ra::Header) + sizeof(ra::Label));
    ra::Header h;
    std::memcpy(&h, sec->data(), sizeof h);
    EXPECT_EQ(h.magic, ra::kMagic);
    EXPECT_EQ(h.label_count, 1u);
    ra::Label l;
    std::memcpy(&l, sec->data() + sizeof h, sizeof l);
    EXPECT_STREQ(l.label, "app_t");
    std::vector<ra::Run> runs(l.run_count);
    std::memcpy(runs.data(), sec->data() + sizeof h + sizeof l + l.first_run * sizeof(ra::Run),
                runs.size() * sizeof(ra::Run));
    rfs::RootfsView v(image.data(), image.size());
    auto covered = [&](uint64_t off, uint64_t len) {
        for (const ra::Run& r : runs)
            if (off >= r.offset && off + len <= r.offset + r.length)
                return true;
        return false;
    };
    // Metadata and readable files are covered, page-aligned; the secret is not.
    EXPECT_TRUE(covered(0, v.header().data_offset));
    for (const char* p : {"/public.txt", "/zz.txt", "/bin/prog"}) {
        const auto& e = v.entry(static_cast<uint32_t>(entry(p)));
        EXPECT_TRUE(covered(e.data_offset, e.size)) << p;
    }
    const auto& s = v.entry(static_cast<uint32_t>(entry("/secret.txt")));
    EXPECT_FALSE(covered(s.data_offset, 1));
    for (size_t i = 0; i < runs.size(); ++i) {
        EXPECT_EQ(runs[i].offset % 4096, 0u);
        EXPECT_EQ(runs[i].length % 4096, 0u);
        if (i)
            EXPECT_GT(runs[i].offset, runs[i - 1].offset + runs[i - 1].length); // merged when adjacent
    }
    auto bit = [&](int64_t i) { return (sec->at(l.bitmap_offset + i / 8) >> (i % 8)) & 1; };
    EXPECT_EQ(bit(entry("/secret.txt")), 0);
    EXPECT_EQ(bit(entry("/public.txt")), 1);
    EXPECT_EQ(bit(entry("/bin")), 1); // directories stay listable
}

TEST_F(RootfsAccess, UnknownLabelsAreErrors) {
    auto blob = compile("domain app_t\nresource file_t\nclass file { read: read }\n");
    auto r = encode_rootfs_access(image, blob, {"nosuch_t"});
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("nosuch_t"), std::string::npos);
}

} // namespace
} // namespace kos::vmm
