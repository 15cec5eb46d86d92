// Fuzzes the rootfs index reader (abi/kos/rootfs_image.h): RootfsView::
// validate() on untrusted images, then every accessor the guest uses after
// it, which must stay in bounds.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kos/rootfs_image.h"

namespace rfs = kos::abi::rootfs;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // 8-byte aligned copy, as the guest sees page-aligned images.
    std::vector<uint64_t> buf(size / 8 + 1);
    std::memcpy(buf.data(), data, size);
    rfs::RootfsView v(reinterpret_cast<const uint8_t*>(buf.data()), size);
    uint32_t bad = 0;
    if (v.validate(&bad) != rfs::Error::None)
        return 0;
    uint64_t sum = 0;
    for (uint32_t i = 0; i < v.count(); ++i) {
        const rfs::RootfsEntry& e = v.entry(i);
        const char* p = v.path(e);
        if (v.find(p, e.path_len) != int64_t(i))
            __builtin_trap();
        sum += static_cast<unsigned char>(v.label(e)[e.label_len]);
        uint32_t type = e.mode & rfs::kTypeMask;
        if (type == rfs::kTypeFile && e.size)
            sum += v.file_data(e)[0] + v.file_data(e)[e.size - 1];
        else if (type == rfs::kTypeSymlink)
            sum += static_cast<unsigned char>(v.symlink_target(e)[e.size]);
        else if (type == rfs::kTypeDir)
            for (uint32_t c = rfs::RootfsView::first_child(i); c < e.subtree_end; c = v.next_sibling(c))
                sum += v.entry(c).path_len;
    }
    return sum == 0xdeadbeef ? 1 : 0;
}
