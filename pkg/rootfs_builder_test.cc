#include "pkg/rootfs_builder.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>

#include "kos/rootfs_image.h"

namespace rfs = kos::abi::rootfs;

namespace {

class TempDir {
public:
    TempDir() {
        char tmpl[] = "/tmp/kos-rootfs-test-XXXXXX";
        m_path = ::mkdtemp(tmpl);
    }
    ~TempDir() { [[maybe_unused]] int rc = std::system(("rm -rf " + m_path).c_str()); }
    const std::string& path() const { return m_path; }
    void write(const std::string& rel, const std::string& data) {
        std::ofstream(m_path + "/" + rel, std::ios::binary) << data;
    }
    void mkdir(const std::string& rel) { ::mkdir((m_path + "/" + rel).c_str(), 0755); }

private:
    std::string m_path;
};

} // namespace

TEST(RootfsBuilder, BuildsValidSortedImageWithContents) {
    TempDir t;
    t.mkdir("a");
    t.mkdir("a/b");
    t.write("a/b/f", "hello");
    t.write("a-c", "x");
    t.write("a/z", std::string(5000, 'z'));
    ASSERT_EQ(::symlink("/a/z", (t.path() + "/link").c_str()), 0);
    auto img = kos::pkg::build_rootfs_image(
        t.path(), {.labeler = [](const std::string& p, uint32_t) -> kos::Result<std::string> {
            return p == "/a-c" ? "special_t" : "app_t";
        }});
    ASSERT_TRUE(img) << img.error().message;
    rfs::RootfsView v(img->data(), img->size());
    ASSERT_EQ(v.validate(), rfs::Error::None);
    ASSERT_EQ(v.count(), 7u); // / /a /a/b /a/b/f /a/z /a-c /link
    EXPECT_STREQ(v.path(v.entry(1)), "/a");
    EXPECT_STREQ(v.path(v.entry(4)), "/a/z");
    EXPECT_STREQ(v.path(v.entry(5)), "/a-c");
    EXPECT_EQ(v.entry(1).subtree_end, 5u);
    int64_t f = v.find("/a/b/f", 6);
    ASSERT_GE(f, 0);
    const auto& e = v.entry(static_cast<uint32_t>(f));
    EXPECT_EQ(e.size, 5u);
    EXPECT_EQ(e.data_offset % 4096, 0u);
    EXPECT_EQ(std::memcmp(v.file_data(e), "hello", 5), 0);
    EXPECT_STREQ(v.label(e), "app_t");
    EXPECT_STREQ(v.label(v.entry(5)), "special_t");
    int64_t l = v.find("/link", 5);
    ASSERT_GE(l, 0);
    EXPECT_STREQ(v.symlink_target(v.entry(static_cast<uint32_t>(l))), "/a/z");
    EXPECT_EQ(v.find("/a/b/g", 6), -1);
    // Children of /a: /a/b then /a/z.
    uint32_t c = rfs::RootfsView::first_child(1);
    EXPECT_STREQ(v.path(v.entry(c)), "/a/b");
    c = v.next_sibling(c);
    EXPECT_STREQ(v.path(v.entry(c)), "/a/z");
    EXPECT_EQ(v.next_sibling(c), 5u);
}

TEST(RootfsBuilder, LabelerErrorStopsTheBuild) {
    TempDir t;
    t.write("secret", "x");
    auto img = kos::pkg::build_rootfs_image(
        t.path(), {.labeler = [](const std::string& p, uint32_t) -> kos::Result<std::string> {
            if (p == "/secret")
                return kos::make_error(EPERM, "/secret: no label rule matches");
            return "app_t";
        }});
    ASSERT_FALSE(img);
    EXPECT_EQ(img.error().message, "/secret: no label rule matches");
}

TEST(RootfsBuilder, MissingDirectory) {
    auto img = kos::pkg::build_rootfs_image("/nonexistent/kos", {});
    ASSERT_FALSE(img);
    EXPECT_NE(img.error().message.find("/nonexistent/kos"), std::string::npos);
}
