// Handles: a task's references to kernel objects, each with rights.
//
// A handle value encodes a slot index and the slot's generation, so a
// closed (stale) or made-up (forged) value never reaches another object:
// lookups check the generation, the object type and the rights. Rights only
// shrink when a handle is duplicated or transferred (Zircon handles, seL4
// capability derivation).
#pragma once

#include "kos/base/result.h"
#include "kos/syscall.h"
#include "kos/types.h"

namespace kos {

using abi::u32;

enum class ObjectType : u32 { None = 0, ChannelClient, ChannelServer, PipeRead, PipeWrite, NetSocket, VolumeFile };

using abi::sys::kRightCall;
using abi::sys::kRightDuplicate;
using abi::sys::kRightReceive;
using abi::sys::kRightTransfer;
inline constexpr u32 kRightsAll = kRightCall | kRightReceive | kRightTransfer | kRightDuplicate;

struct KernelObject {
    ObjectType type = ObjectType::None;
    u32 refcount = 0;
};

using Handle = u32;
inline constexpr Handle kInvalidHandle = 0;

struct HandleEntry {
    KernelObject* object = nullptr;
    ObjectType type = ObjectType::None;
    u32 rights = 0;
    u32 generation = 0;
};

class HandleTable {
public:
    static constexpr u32 kCapacity = 256;
    static constexpr u32 kIndexBits = 8;

    // Adds a handle; ENFILE when the table is full.
    ErrorOr<Handle> insert(KernelObject* object, ObjectType type, u32 rights);
    // Looks up a handle of `type` holding all of `rights`. EBADF for stale,
    // forged or closed handles, EBADF for the wrong type, EPERM for missing
    // rights.
    ErrorOr<HandleEntry> get(Handle h, ObjectType type, u32 rights) const;
    // A second handle to the same object with `rights` (a subset of the
    // original's, which must include kRightDuplicate).
    ErrorOr<Handle> duplicate(Handle h, u32 rights);
    // Removes a handle (for close, and for transfer to another task).
    ErrorOr<HandleEntry> remove(Handle h);
    u32 count() const { return m_count; }
    // Calls fn(entry) for every handle, then empties the table (a task's end).
    template <class Fn> void clear(Fn fn) {
        for (u32 i = 1; i < kCapacity; ++i) {
            if (!m_slots[i].object)
                continue;
            HandleEntry e = m_slots[i];
            --e.object->refcount;
            m_slots[i].object = nullptr;
            m_slots[i].rights = 0;
            m_slots[i].type = ObjectType::None;
            --m_count;
            fn(e);
        }
    }
    // Makes this (empty) table a copy of `src` with the same values (fork).
    void copy_from(const HandleTable& src) {
        for (u32 i = 0; i < kCapacity; ++i) {
            m_slots[i] = src.m_slots[i];
            if (m_slots[i].object)
                ++m_slots[i].object->refcount;
        }
        m_count = src.m_count;
    }

private:
    static u32 index_of(Handle h) { return h & (kCapacity - 1); }
    static u32 generation_of(Handle h) { return h >> kIndexBits; }
    ErrorOr<u32> slot_of(Handle h) const;

    HandleEntry m_slots[kCapacity] = {};
    u32 m_count = 0;
};

} // namespace kos
