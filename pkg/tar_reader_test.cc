#include "pkg/tar_reader.h"

#include <gtest/gtest.h>

#include "pkg/testing/tar_builder.h"

using namespace kos::pkg;
using kos::pkg::testing::make_tar;
using kos::pkg::testing::TarItem;

namespace {
kos::Result<std::vector<TarEntry>> read_all(const std::vector<uint8_t>& tar, const TarLimits& limits = {}) {
    auto r = KOS_TRY(TarReader::open(tar, limits, "layer"));
    std::vector<TarEntry> out;
    TarEntry e;
    while (KOS_TRY(r->next(e)))
        out.push_back(std::move(e));
    return out;
}
} // namespace

TEST(TarReader, ReadsTypesModesOwnersAndXattrs) {
    auto tar = make_tar({{.path = "d", .type = 'd', .mode = 0755},
                         {.path = "d/f", .data = "hello", .mode = 04755, .uid = 7, .gid = 8,
                          .xattrs = {{"security.capability", "x"}}},
                         {.path = "l", .type = 'l', .data = "/d/f"},
                         {.path = "h", .type = 'h', .data = "d/f"},
                         {.path = "n", .type = 'c'}},
                        true);
    auto entries = read_all(tar);
    ASSERT_TRUE(entries) << entries.error().message;
    ASSERT_EQ(entries->size(), 5u);
    const TarEntry& f = (*entries)[1];
    EXPECT_EQ(f.path, "d/f");
    EXPECT_EQ(f.type, TarEntry::Type::File);
    EXPECT_EQ(std::string(f.data.begin(), f.data.end()), "hello");
    EXPECT_EQ(f.mode, 04755u);
    EXPECT_EQ(f.uid, 7);
    ASSERT_EQ(f.xattrs.size(), 1u);
    EXPECT_EQ(f.xattrs[0], "security.capability");
    EXPECT_EQ((*entries)[2].type, TarEntry::Type::Symlink);
    EXPECT_EQ((*entries)[2].link_target, "/d/f");
    EXPECT_EQ((*entries)[3].type, TarEntry::Type::Hardlink);
    EXPECT_EQ((*entries)[4].type, TarEntry::Type::CharDevice);
}

// Attack 7: explicit caps with clear messages.
TEST(TarReader, Attack7CapsEntriesNamesDepthAndDecompressionBombs) {
    EXPECT_EQ(TarLimits{}.max_entries, 1'000'000u);

    std::vector<TarItem> many;
    for (int i = 0; i < 101; ++i)
        many.push_back({.path = "f" + std::to_string(i), .data = "x"});
    TarLimits small;
    small.max_entries = 100;
    auto r1 = read_all(make_tar(many), small);
    ASSERT_FALSE(r1);
    EXPECT_EQ(r1.error().message, "layer: more than 100 entries (limit)");

    auto r2 = read_all(make_tar({{.path = std::string(4096, 'n'), .data = "x"}}));
    ASSERT_FALSE(r2);
    EXPECT_EQ(r2.error().message, "layer: " + std::string(64, 'n') + "...: a name is longer than 255 bytes (limit)");

    std::string deep;
    for (int i = 0; i < 200; ++i)
        deep += "d/";
    deep += "f";
    auto r3 = read_all(make_tar({{.path = deep, .data = "x"}}));
    ASSERT_FALSE(r3);
    EXPECT_EQ(r3.error().message, "layer: " + deep.substr(0, 64) + "...: nested deeper than 128 directories (limit)");

    std::string longpath;
    while (longpath.size() <= 4096)
        longpath += std::string(100, 'p') + "/";
    longpath += "f";
    auto r4 = read_all(make_tar({{.path = longpath, .data = "x"}}));
    ASSERT_FALSE(r4);
    EXPECT_EQ(r4.error().message, "layer: " + longpath.substr(0, 64) + "...: path longer than 4096 bytes (limit)");

    // 256 MiB of zeros compress to a few hundred KiB: a bomb.
    auto bomb = make_tar({{.path = "zeros", .size_override = 256ll << 20}}, true);
    ASSERT_LT(bomb.size(), 1u << 20);
    auto r5 = read_all(bomb);
    ASSERT_FALSE(r5);
    EXPECT_EQ(r5.error().message, "layer: zeros: expands more than 200x (limit; a decompression bomb?)");

    TarLimits total;
    total.max_total_bytes = 1 << 20;
    auto r6 = read_all(make_tar({{.path = "a", .size_override = 2 << 20}}), total);
    ASSERT_FALSE(r6);
    EXPECT_EQ(r6.error().message, "layer: a: more than 1048576 bytes uncompressed (limit; a decompression bomb?)");
}

TEST(TarReader, GarbageIsAnError) {
    std::vector<uint8_t> junk(1000, 0x5a);
    auto r = read_all(junk);
    ASSERT_FALSE(r);
}
