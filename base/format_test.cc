#include "kos/base/format.h"

#include <gtest/gtest.h>

TEST(Format, Basics) {
    char buf[64];
    kos::format(buf, sizeof buf, "%s=%d %u %x %lx %05d %c %%", "a", -12, 7u, 255u, 0x1234abcdul, 42, 'z');
    EXPECT_STREQ(buf, "a=-12 7 ff 1234abcd 00042 z %");
    kos::format(buf, sizeof buf, "%.*s|%p", 3, "abcdef", reinterpret_cast<void*>(0x10));
    EXPECT_STREQ(buf, "abc|0x10");
    kos::format(buf, sizeof buf, "%#lx %#x", 0xabcul, 0u);
    EXPECT_STREQ(buf, "0xabc 0x0");
}

TEST(Format, TruncatesAndReportsFullLength) {
    char buf[4];
    size_t n = kos::format(buf, sizeof buf, "%s", "abcdef");
    EXPECT_EQ(n, 6u);
    EXPECT_STREQ(buf, "abc");
}
