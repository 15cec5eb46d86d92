#include "kos/rootfs_image.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace rfs = kos::abi::rootfs;

TEST(RootfsImage, PathCompareKeepsSubtreesContiguous) {
    auto cmp = [](const char* a, const char* b) {
        return rfs::path_compare(a, std::strlen(a), b, std::strlen(b));
    };
    EXPECT_LT(cmp("/", "/a"), 0);
    EXPECT_LT(cmp("/a", "/a/b"), 0);
    EXPECT_LT(cmp("/a/b", "/a-c"), 0);
    EXPECT_GT(cmp("/b", "/a/z"), 0);
    EXPECT_EQ(cmp("/a", "/a"), 0);
}

TEST(RootfsImage, Normalization) {
    auto ok = [](const char* p) { return rfs::RootfsView::path_normalized(p, std::strlen(p)); };
    EXPECT_TRUE(ok("/"));
    EXPECT_TRUE(ok("/a/b.c"));
    EXPECT_FALSE(ok("a"));
    EXPECT_FALSE(ok("/a/"));
    EXPECT_FALSE(ok("//a"));
    EXPECT_FALSE(ok("/a/../b"));
    EXPECT_FALSE(ok("/./b"));
}

TEST(RootfsImage, RejectsGarbage) {
    std::vector<uint8_t> junk(200, 0xab);
    rfs::RootfsView v(junk.data(), junk.size());
    EXPECT_EQ(v.validate(), rfs::Error::BadMagic);
    rfs::RootfsView small(junk.data(), 10);
    EXPECT_EQ(small.validate(), rfs::Error::TooSmall);
}
