#include "pkg/volumes.h"

#include <filesystem>
#include <gtest/gtest.h>
#include <unistd.h>

namespace {

using kos::pkg::BundleConfig;
using kos::pkg::resolve_volumes;

struct TempDir {
    std::string path;
    TempDir() {
        char t[] = "/tmp/kos-volumes-test-XXXXXX";
        path = ::mkdtemp(t);
    }
    ~TempDir() { std::filesystem::remove_all(path); }
};

BundleConfig config_with_data_volume(bool writable) {
    BundleConfig c;
    c.volumes.push_back({"data", "/data", writable, "data_t"});
    return c;
}

TEST(Volumes, AttachesADeclaredVolumeByName) {
    TempDir d;
    auto v = resolve_volumes(config_with_data_volume(true), {"data=" + d.path});
    ASSERT_TRUE(v) << v.error().message;
    ASSERT_EQ(v->size(), 1u);
    EXPECT_EQ((*v)[0].guest, "/data");
    EXPECT_EQ((*v)[0].label, "data_t");
    EXPECT_TRUE((*v)[0].writable);
    EXPECT_EQ((*v)[0].host, std::filesystem::canonical(d.path).string());
}

TEST(Volumes, HostPathFormTakesTheDeclaredLabelAndAccess) {
    TempDir d;
    auto ro = resolve_volumes(config_with_data_volume(false), {d.path + ":/data"});
    ASSERT_TRUE(ro) << ro.error().message;
    EXPECT_FALSE((*ro)[0].writable);
    EXPECT_EQ((*ro)[0].label, "data_t");
    auto rw = resolve_volumes(config_with_data_volume(false), {d.path + ":/data:rw"});
    ASSERT_FALSE(rw);
    EXPECT_NE(rw.error().message.find("read-only"), std::string::npos) << rw.error().message;
    auto relabel = resolve_volumes(config_with_data_volume(true), {d.path + ":/data:label=other_t"});
    ASSERT_FALSE(relabel);
}

TEST(Volumes, UndeclaredPathNeedsALabel) {
    TempDir d;
    auto none = resolve_volumes({}, {d.path + ":/srv"});
    ASSERT_FALSE(none);
    EXPECT_NE(none.error().message.find("label=LABEL"), std::string::npos) << none.error().message;
    auto ok = resolve_volumes({}, {d.path + ":/srv:ro,label=srv_t"});
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_FALSE((*ok)[0].writable);
    EXPECT_EQ((*ok)[0].label, "srv_t");
    auto rw = resolve_volumes({}, {d.path + ":/srv:label=srv_t"});
    ASSERT_TRUE(rw);
    EXPECT_TRUE((*rw)[0].writable);
}

TEST(Volumes, RefusesBadValues) {
    TempDir d;
    const std::vector<std::string> bad = {
        d.path,                                  // no guest path
        d.path + ":data:label=x_t",              // relative
        d.path + ":/:label=x_t",                 // the root
        d.path + ":/a/../b:label=x_t",           // not normalized
        d.path + ":/a/:label=x_t",               // trailing slash
        d.path + ":/proc/x:label=x_t",           // kos's own
        d.path + ":/dev:label=x_t",
        d.path + ":/a:ro,rw,label=x_t",          // both
        d.path + ":/a:label=1bad",               // not a label
        d.path + ":/a:exec,label=x_t",           // unknown option
        d.path + "/missing:/a:label=x_t",        // no such host directory
        "nosuch=" + d.path,                      // undeclared name
    };
    for (const auto& b : bad) {
        auto r = resolve_volumes({}, {b});
        EXPECT_FALSE(r) << b;
        if (!r)
            EXPECT_NE(r.error().message.find("-v "), std::string::npos) << r.error().message;
    }
    // A file is not a directory.
    std::string file = d.path + "/f";
    FILE* f = ::fopen(file.c_str(), "w");
    ::fclose(f);
    EXPECT_FALSE(resolve_volumes({}, {file + ":/a:label=x_t"}));
}

TEST(Volumes, RefusesNestedVolumes) {
    TempDir d;
    auto r = resolve_volumes({}, {d.path + ":/a:label=x_t", d.path + ":/a/b:label=x_t"});
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("nest"), std::string::npos);
    EXPECT_TRUE(resolve_volumes({}, {d.path + ":/a:label=x_t", d.path + ":/ab:label=x_t"}));
}

TEST(Volumes, ResolvesSymlinksInTheHostPathOnce) {
    TempDir d;
    std::filesystem::create_directory(d.path + "/real");
    std::filesystem::create_directory_symlink(d.path + "/real", d.path + "/link");
    auto r = resolve_volumes({}, {d.path + "/link:/a:label=x_t"});
    ASSERT_TRUE(r);
    EXPECT_EQ((*r)[0].host, std::filesystem::canonical(d.path + "/real").string());
}

TEST(Volumes, OpeningFailsWhenAComponentBecameASymlink) {
    TempDir d;
    std::filesystem::create_directories(d.path + "/a/vol");
    std::filesystem::create_directories(d.path + "/elsewhere/vol");
    auto r = resolve_volumes({}, {d.path + "/a/vol:/v:label=x_t"});
    ASSERT_TRUE(r) << r.error().message;
    auto fd = kos::pkg::open_volume_host_dir((*r)[0]);
    ASSERT_TRUE(fd) << fd.error().message;
    // Swap a parent component for a symlink, as an attacker racing the setup would.
    std::filesystem::rename(d.path + "/a", d.path + "/a-old");
    std::filesystem::create_directory_symlink(d.path + "/elsewhere", d.path + "/a");
    auto swapped = kos::pkg::open_volume_host_dir((*r)[0]);
    ASSERT_FALSE(swapped);
    EXPECT_EQ(swapped.error().code, ELOOP);
    EXPECT_NE(swapped.error().message.find("became a symlink"), std::string::npos) << swapped.error().message;
}

} // namespace
