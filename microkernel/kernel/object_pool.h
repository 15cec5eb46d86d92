// Fixed-size kernel objects carved from physical frames; out of memory is a
// nullptr, never a panic.
#pragma once

#include "pmm.h"

namespace kos {

template <class T> class ObjectPool {
public:
    T* alloc() {
        if (!m_free && !grow())
            return nullptr;
        Slot* s = m_free;
        m_free = s->next;
        return new (static_cast<void*>(s)) T();
    }
    void free(T* obj) {
        obj->~T();
        Slot* s = reinterpret_cast<Slot*>(obj);
        s->next = m_free;
        m_free = s;
    }

private:
    union Slot {
        Slot* next;
        alignas(T) unsigned char storage[sizeof(T)];
    };
    bool grow() {
        abi::u64 pa = pmm::alloc_frame(false);
        if (pa == pmm::kNoFrame)
            return false;
        Slot* slots = static_cast<Slot*>(pmm::phys_to_virt(pa));
        for (abi::u64 i = 0; i < pmm::kPageSize / sizeof(Slot); ++i) {
            slots[i].next = m_free;
            m_free = &slots[i];
        }
        return true;
    }
    Slot* m_free = nullptr;
};

} // namespace kos

// Placement new: from <new> where a C++ library is present (host unit
// tests), defined here in the freestanding kernel.
#if __has_include(<new>)
#include <new>
#else
inline void* operator new(decltype(sizeof 0), void* p) noexcept { return p; }
#endif
