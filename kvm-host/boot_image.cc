#include "boot_image.h"

#include <cstring>

#include "kos/boot.h"

namespace kos::vmm {
namespace {
uint64_t align_page(uint64_t v) { return (v + 4095) & ~uint64_t{4095}; }
} // namespace

Result<std::vector<uint8_t>> build_boot_image(const LaunchSpec& launch,
                                              std::span<const uint8_t> rootfs_image) {
    namespace boot = abi::boot;
    if (launch.argv.empty() || launch.argv[0].empty())
        return make_error(EINVAL, "no program to run: give one after `--` or set [app] entrypoint");
    if (launch.argv.size() > boot::kMaxArgs || launch.env.size() > boot::kMaxArgs)
        return make_error(E2BIG, "too many arguments or environment variables (at most " +
                                     std::to_string(boot::kMaxArgs) + " each)");
    std::string strings;
    auto add = [&](const std::string& s) -> Result<void> {
        if (s.find('\0') != std::string::npos)
            return make_error(EINVAL, "argument or environment entry contains a NUL byte");
        strings += s;
        strings.push_back('\0');
        return {};
    };
    for (const auto& a : launch.argv)
        KOS_TRY(add(a));
    for (const auto& e : launch.env)
        KOS_TRY(add(e));
    KOS_TRY(add(launch.cwd));
    KOS_TRY(add(launch.hostname));
    if (strings.size() > boot::kMaxLaunchStrings)
        return make_error(E2BIG, "arguments and environment exceed " +
                                     std::to_string(boot::kMaxLaunchStrings / 1024) + " KiB");

    boot::LaunchHeader lh{};
    lh.argc = static_cast<uint32_t>(launch.argv.size());
    lh.envc = static_cast<uint32_t>(launch.env.size());
    lh.uid = launch.uid;
    lh.gid = launch.gid;
    lh.strings_size = static_cast<uint32_t>(strings.size());

    boot::BootImageHeader h{};
    h.magic = boot::kBootImageMagic;
    h.version = boot::kBootImageVersion;
    h.header_size = sizeof h;
    h.launch_offset = align_page(sizeof h);
    h.launch_size = sizeof lh + strings.size();
    h.rootfs_offset = align_page(h.launch_offset + h.launch_size);
    h.rootfs_size = rootfs_image.size();
    h.total_size = align_page(h.rootfs_offset + h.rootfs_size);
    h.flags = launch.flags;

    std::vector<uint8_t> img(h.total_size, 0);
    std::memcpy(img.data(), &h, sizeof h);
    std::memcpy(img.data() + h.launch_offset, &lh, sizeof lh);
    std::memcpy(img.data() + h.launch_offset + sizeof lh, strings.data(), strings.size());
    if (!rootfs_image.empty())
        std::memcpy(img.data() + h.rootfs_offset, rootfs_image.data(), rootfs_image.size());
    return img;
}

} // namespace kos::vmm
