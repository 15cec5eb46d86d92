#include "handle_table.h"

namespace kos {
namespace {
constexpr int32_t kEbadf = 9, kEperm = 1, kEnfile = 23, kEinval = 22;
} // namespace

ErrorOr<u32> HandleTable::slot_of(Handle h) const {
    u32 i = index_of(h);
    const HandleEntry& e = m_slots[i];
    // Slot 0 is never used, so 0 is never a valid handle.
    if (i == 0 || !e.object || e.generation != generation_of(h))
        return Errno{kEbadf};
    return i;
}

ErrorOr<Handle> HandleTable::insert(KernelObject* object, ObjectType type, u32 rights) {
    if (!object || (rights & ~kRightsAll))
        return Errno{kEinval};
    for (u32 i = 1; i < kCapacity; ++i) {
        HandleEntry& e = m_slots[i];
        if (e.object)
            continue;
        // A new generation per use of the slot; never 0, so that no handle
        // value is ever 0.
        u32 gen = (e.generation + 1) & ((1u << (32 - kIndexBits)) - 1);
        if (gen == 0)
            gen = 1;
        e = {object, type, rights, gen};
        ++object->refcount;
        ++m_count;
        return (gen << kIndexBits) | i;
    }
    return Errno{kEnfile};
}

ErrorOr<HandleEntry> HandleTable::get(Handle h, ObjectType type, u32 rights) const {
    auto slot = slot_of(h);
    if (slot.is_error())
        return Errno{slot.error()};
    const HandleEntry& e = m_slots[*slot];
    if (e.type != type)
        return Errno{kEbadf};
    if ((e.rights & rights) != rights)
        return Errno{kEperm};
    return e;
}

ErrorOr<Handle> HandleTable::duplicate(Handle h, u32 rights) {
    auto slot = slot_of(h);
    if (slot.is_error())
        return Errno{slot.error()};
    HandleEntry e = m_slots[*slot];
    if (!(e.rights & kRightDuplicate) || (rights & ~e.rights))
        return Errno{kEperm};
    return insert(e.object, e.type, rights);
}

ErrorOr<HandleEntry> HandleTable::remove(Handle h) {
    auto slot = slot_of(h);
    if (slot.is_error())
        return Errno{slot.error()};
    HandleEntry& e = m_slots[*slot];
    HandleEntry out = e;
    --e.object->refcount;
    e.object = nullptr; // keep the generation: the old value stays stale
    e.rights = 0;
    e.type = ObjectType::None;
    --m_count;
    return out;
}

} // namespace kos
