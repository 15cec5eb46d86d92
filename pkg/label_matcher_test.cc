#include "pkg/label_matcher.h"

#include <gtest/gtest.h>

using kos::pkg::LabelMatcher;
using kos::pkg::LabelRule;

TEST(LabelMatcher, GlobsWithinComponentsAndDoubleStarAcross) {
    EXPECT_TRUE(LabelMatcher::matches("/usr/**", "/usr"));
    EXPECT_TRUE(LabelMatcher::matches("/usr/**", "/usr/lib/x.so"));
    EXPECT_FALSE(LabelMatcher::matches("/usr/**", "/usrx"));
    EXPECT_TRUE(LabelMatcher::matches("/**", "/"));
    EXPECT_TRUE(LabelMatcher::matches("/bin/*", "/bin/sh"));
    EXPECT_FALSE(LabelMatcher::matches("/bin/*", "/bin/a/b"));
    EXPECT_TRUE(LabelMatcher::matches("/etc/*.conf", "/etc/a.conf"));
    EXPECT_FALSE(LabelMatcher::matches("/etc/*.conf", "/etc/a.confx"));
    EXPECT_TRUE(LabelMatcher::matches("/a/**/z", "/a/z"));
    EXPECT_TRUE(LabelMatcher::matches("/a/**/z", "/a/b/c/z"));
    EXPECT_TRUE(LabelMatcher::matches("/a/?", "/a/b"));
    EXPECT_FALSE(LabelMatcher::matches("/a/?", "/a/bc"));
    EXPECT_TRUE(LabelMatcher::matches("/", "/"));
    EXPECT_FALSE(LabelMatcher::matches("/", "/a"));
}

TEST(LabelMatcher, MostSpecificRuleWinsRegardlessOfOrder) {
    std::vector<LabelRule> rules = {
        {"/**", "root_t", "b:1"},        {"/etc/**", "etc_t", "b:2"},
        {"/etc/*.conf", "conf_t", "b:3"}, {"/etc/shadow", "shadow_t", "b:4"},
        {"/bin/*", "bin_t", "b:5"},
    };
    for (int order = 0; order < 2; ++order) {
        LabelMatcher m(rules);
        EXPECT_EQ(*m.label_for("/"), "root_t");
        EXPECT_EQ(*m.label_for("/etc"), "etc_t");
        EXPECT_EQ(*m.label_for("/etc/passwd"), "etc_t");
        EXPECT_EQ(*m.label_for("/etc/a.conf"), "conf_t");
        EXPECT_EQ(*m.label_for("/etc/shadow"), "shadow_t");
        EXPECT_EQ(*m.label_for("/bin/sh"), "bin_t");
        EXPECT_EQ(*m.label_for("/bin/x/y"), "root_t");
        std::reverse(rules.begin(), rules.end());
    }
}

TEST(LabelMatcher, UnlabeledAndAmbiguousPathsAreErrors) {
    LabelMatcher m({{"/bin/**", "bin_t", "b:1"}, {"/d/*x", "a_t", "b:2"}, {"/d/x*", "b_t", "b:3"}});
    auto none = m.label_for("/etc/passwd");
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().code, ENOENT);
    EXPECT_NE(none.error().message.find("/etc/passwd: unlabeled file"), std::string::npos);
    // "/d/x*" has the longer literal prefix, so it wins over "/d/*x".
    EXPECT_EQ(*m.label_for("/d/xx"), "b_t");
    LabelMatcher tie({{"/d/a*", "a_t", "b:1"}, {"/d/*a", "b_t", "b:2"}, {"/d/?b", "c_t", "b:3"}});
    EXPECT_EQ(*tie.label_for("/d/ab"), "a_t");
    LabelMatcher tie2({{"/d/*a*", "a_t", "b:1"}, {"/d/*b*", "b_t", "b:2"}});
    auto amb = tie2.label_for("/d/ab");
    ASSERT_FALSE(amb);
    EXPECT_NE(amb.error().message.find("ambiguous label"), std::string::npos) << amb.error().message;
}

TEST(LabelMatcher, ValidatesPatterns) {
    EXPECT_EQ(kos::pkg::validate_label_pattern("/usr/**"), "");
    EXPECT_NE(kos::pkg::validate_label_pattern("usr/**"), "");
    EXPECT_NE(kos::pkg::validate_label_pattern("/usr/../etc"), "");
    EXPECT_NE(kos::pkg::validate_label_pattern("/a**"), "");
    EXPECT_NE(kos::pkg::validate_label_pattern("/a//b"), "");
    EXPECT_NE(kos::pkg::validate_label_pattern("/a/[ab]"), "");
    EXPECT_NE(kos::pkg::validate_label_pattern("/a/"), "");
}

TEST(LabelMatcher, FewerWildcardsWinATieOnLiterals) {
    LabelMatcher m({{"/a/**", "deep_t", "b:1"}, {"/a/*", "one_t", "b:2"}});
    EXPECT_EQ(*m.label_for("/a/b"), "one_t");
    EXPECT_EQ(*m.label_for("/a/b/c"), "deep_t");
    EXPECT_EQ(*m.label_for("/a"), "deep_t");
}
