#include "handle_table.h"

#include <gtest/gtest.h>

using kos::Handle;
using kos::HandleTable;
using kos::KernelObject;
using kos::ObjectType;

namespace {
constexpr int kEbadf = 9, kEperm = 1, kEnfile = 23;
}

TEST(HandleTable, LookupChecksTypeAndRights) {
    HandleTable t;
    KernelObject ch;
    auto h = t.insert(&ch, ObjectType::ChannelClient, kos::kRightCall);
    ASSERT_FALSE(h.is_error());
    EXPECT_NE(*h, kos::kInvalidHandle);
    EXPECT_EQ(ch.refcount, 1u);
    auto e = t.get(*h, ObjectType::ChannelClient, kos::kRightCall);
    ASSERT_FALSE(e.is_error());
    EXPECT_EQ((*e).object, &ch);
    EXPECT_EQ(t.get(*h, ObjectType::ChannelServer, 0).error(), kEbadf);
    EXPECT_EQ(t.get(*h, ObjectType::ChannelClient, kos::kRightReceive).error(), kEperm);
}

TEST(HandleTable, ForgedAndStaleHandlesFail) {
    HandleTable t;
    KernelObject a, b;
    Handle ha = *t.insert(&a, ObjectType::ChannelClient, kos::kRightCall);
    // Forged: same slot, another generation; slot 0; out-of-range garbage.
    EXPECT_EQ(t.get(ha + (1u << HandleTable::kIndexBits), ObjectType::ChannelClient, 0).error(), kEbadf);
    EXPECT_EQ(t.get(0, ObjectType::ChannelClient, 0).error(), kEbadf);
    EXPECT_EQ(t.get(0xffffffffu, ObjectType::ChannelClient, 0).error(), kEbadf);
    // Stale: closed, then the slot reused for another object.
    ASSERT_FALSE(t.remove(ha).is_error());
    EXPECT_EQ(a.refcount, 0u);
    Handle hb = *t.insert(&b, ObjectType::ChannelClient, kos::kRightCall);
    EXPECT_NE(ha, hb);
    EXPECT_EQ(t.get(ha, ObjectType::ChannelClient, 0).error(), kEbadf);
    EXPECT_EQ((*t.get(hb, ObjectType::ChannelClient, 0)).object, &b);
    EXPECT_EQ(t.remove(ha).error(), kEbadf);
}

TEST(HandleTable, RightsOnlyShrinkOnDuplicate) {
    HandleTable t;
    KernelObject ch;
    Handle full = *t.insert(&ch, ObjectType::ChannelClient,
                            kos::kRightCall | kos::kRightTransfer | kos::kRightDuplicate);
    auto weak = t.duplicate(full, kos::kRightCall);
    ASSERT_FALSE(weak.is_error());
    EXPECT_EQ(ch.refcount, 2u);
    EXPECT_EQ(t.get(*weak, ObjectType::ChannelClient, kos::kRightTransfer).error(), kEperm);
    // The weaker handle cannot be duplicated at all, and no handle can gain rights.
    EXPECT_EQ(t.duplicate(*weak, kos::kRightCall).error(), kEperm);
    EXPECT_EQ(t.duplicate(full, kos::kRightReceive).error(), kEperm);
}

TEST(HandleTable, FullTableIsAnError) {
    HandleTable t;
    KernelObject ch;
    for (uint32_t i = 1; i < HandleTable::kCapacity; ++i)
        ASSERT_FALSE(t.insert(&ch, ObjectType::ChannelClient, kos::kRightCall).is_error());
    EXPECT_EQ(t.insert(&ch, ObjectType::ChannelClient, kos::kRightCall).error(), kEnfile);
    EXPECT_EQ(t.count(), HandleTable::kCapacity - 1);
}
