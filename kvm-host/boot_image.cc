#include "boot_image.h"

#include <cstring>

#include "kos/boot.h"
#include "kos/file.h"
#include "rootfs_access.h"
#include "kos/init.h"
#include "kos/syscall.h"

namespace kos::vmm {
namespace {
uint64_t align_page(uint64_t v) { return (v + 4095) & ~uint64_t{4095}; }
} // namespace

Result<std::vector<uint8_t>> encode_init(const InitSpec& spec) {
    namespace init = abi::init;
    if (spec.processes.empty() || spec.processes.size() > init::kMaxProcesses)
        return make_error(EINVAL, "init: between 1 and " + std::to_string(init::kMaxProcesses) +
                                      " processes are needed");
    if (spec.channels.size() > init::kMaxChannels)
        return make_error(EINVAL, "init: at most " + std::to_string(init::kMaxChannels) + " channels");
    std::string strings;
    auto add = [&](const std::string& s) {
        uint32_t off = static_cast<uint32_t>(strings.size());
        strings += s;
        strings.push_back('\0');
        return off;
    };
    std::vector<std::string> labels;
    auto label_index = [&](const std::string& l) {
        for (size_t i = 0; i < labels.size(); ++i)
            if (labels[i] == l)
                return static_cast<uint32_t>(i);
        labels.push_back(l);
        return static_cast<uint32_t>(labels.size() - 1);
    };
    std::vector<init::InitProcess> procs;
    for (size_t i = 0; i < spec.processes.size(); ++i) {
        const auto& p = spec.processes[i];
        if (p.name.empty() || p.label.empty())
            return make_error(EINVAL, "init: process " + std::to_string(i) + " needs a name and a label");
        if (!p.native && i != 0 && (p.argv.empty() || p.argv[0].empty()))
            return make_error(EINVAL, "init: process " + p.name + ": a Linux process needs a program");
        if (p.native && (p.argv.empty() || p.argv.size() > 32))
            return make_error(EINVAL, "init: process " + p.name + ": a native process needs a program (and at most 32 arguments)");
        init::InitProcess ip{};
        ip.name = add(p.name);
        ip.label = label_index(p.label);
        ip.kind = static_cast<uint32_t>(p.native ? init::ProcessKind::Native : init::ProcessKind::Linux);
        ip.argc = static_cast<uint32_t>(p.argv.size());
        ip.argv = static_cast<uint32_t>(strings.size());
        for (const auto& a : p.argv)
            add(a);
        if (!p.program.empty())
            ip.program = add(p.program);
        procs.push_back(ip);
    }
    std::vector<init::InitChannel> chans;
    for (const auto& c : spec.channels) {
        if (c.client >= spec.processes.size() || c.server >= spec.processes.size() || c.client == c.server)
            return make_error(EINVAL, "init: channel " + c.name + " must connect two different declared processes");
        if (c.name.empty() || c.name.size() >= 40)
            return make_error(EINVAL, "init: channel names must have 1 to 39 characters");
        chans.push_back({add(c.name), c.client, c.server, c.interface_id, c.client_rights, 0});
    }
    std::vector<uint32_t> label_offsets;
    for (const auto& l : labels)
        label_offsets.push_back(add(l));
    init::InitHeader h{};
    h.magic = init::kMagic;
    h.version = init::kVersion;
    h.process_count = static_cast<uint32_t>(procs.size());
    h.channel_count = static_cast<uint32_t>(chans.size());
    h.label_count = static_cast<uint32_t>(labels.size());
    size_t tables = sizeof h + procs.size() * sizeof(init::InitProcess) +
                    chans.size() * sizeof(init::InitChannel) + label_offsets.size() * 4;
    h.strings_offset = static_cast<uint32_t>(tables);
    h.strings_size = static_cast<uint32_t>(strings.size());
    std::vector<uint8_t> out(tables + strings.size());
    uint8_t* p = out.data();
    auto put = [&](const void* src, size_t n) {
        std::memcpy(p, src, n);
        p += n;
    };
    put(&h, sizeof h);
    put(procs.data(), procs.size() * sizeof(init::InitProcess));
    put(chans.data(), chans.size() * sizeof(init::InitChannel));
    put(label_offsets.data(), label_offsets.size() * 4);
    put(strings.data(), strings.size());
    return out;
}

Result<std::vector<uint8_t>> build_boot_image(const LaunchSpec& launch,
                                              std::span<const uint8_t> rootfs_image) {
    namespace boot = abi::boot;
    bool native_first = !launch.init.processes.empty() && launch.init.processes[0].native;
    if (!native_first && (launch.argv.empty() || launch.argv[0].empty()))
        return make_error(EINVAL, "no program to run: give one after `--` or set [app] entrypoint");
    if (launch.argv.size() > boot::kMaxArgs || launch.env.size() > boot::kMaxArgs)
        return make_error(E2BIG, "too many arguments or environment variables (at most " +
                                     std::to_string(boot::kMaxArgs) + " each)");
    // One launch description per Linux process (abi/kos/boot.h): the app's
    // arguments, then each Linux [[process]]'s program, all with the app's
    // environment, directory, host name and user.
    std::vector<const std::vector<std::string>*> argvs = {&launch.argv};
    for (size_t i = 1; i < launch.init.processes.size(); ++i)
        if (!launch.init.processes[i].native)
            argvs.push_back(&launch.init.processes[i].argv);
    std::string section;
    for (size_t k = 0; k < argvs.size(); ++k) {
        const std::vector<std::string>& argv = *argvs[k];
        if (argv.size() > boot::kMaxArgs)
            return make_error(E2BIG, "too many arguments (at most " + std::to_string(boot::kMaxArgs) + ")");
        std::string strings;
        auto add = [&](const std::string& s) -> Result<void> {
            if (s.find('\0') != std::string::npos)
                return make_error(EINVAL, "argument or environment entry contains a NUL byte");
            strings += s;
            strings.push_back('\0');
            return {};
        };
        for (const auto& a : argv)
            KOS_TRY(add(a));
        for (const auto& e : launch.env)
            KOS_TRY(add(e));
        KOS_TRY(add(launch.cwd));
        KOS_TRY(add(launch.hostname));
        if (strings.size() > boot::kMaxLaunchStrings)
            return make_error(E2BIG, "arguments and environment exceed " +
                                         std::to_string(boot::kMaxLaunchStrings / 1024) + " KiB");
        boot::LaunchHeader lh{};
        lh.argc = static_cast<uint32_t>(argv.size());
        lh.envc = static_cast<uint32_t>(launch.env.size());
        lh.uid = launch.uid;
        lh.gid = launch.gid;
        lh.strings_size = static_cast<uint32_t>(strings.size());
        size_t here = section.size();
        if (k + 1 < argvs.size())
            lh.next = static_cast<uint32_t>((here + sizeof lh + strings.size() + 7) & ~size_t{7});
        section.append(reinterpret_cast<const char*>(&lh), sizeof lh);
        section += strings;
        section.resize(lh.next ? lh.next : section.size(), '\0');
    }

    namespace file = abi::file;
    if (launch.volumes.size() > file::kMaxVolumes)
        return make_error(E2BIG, "at most " + std::to_string(file::kMaxVolumes) + " volumes");
    file::VolumeTable vt{};
    vt.magic = file::kVolumeTableMagic;
    vt.count = static_cast<uint32_t>(launch.volumes.size());
    for (size_t i = 0; i < launch.volumes.size(); ++i) {
        const LaunchVolume& v = launch.volumes[i];
        if (v.path.size() < 2 || v.path.size() >= file::kMaxVolumePath || v.path[0] != '/' ||
            v.label.size() >= file::kMaxVolumeLabel || (v.label.empty() && !v.scratch) ||
            v.path.find('\0') != std::string::npos || v.label.find('\0') != std::string::npos)
            return make_error(EINVAL, "volume " + v.path + ": its path or label does not fit the volume table");
        std::memcpy(vt.entries[i].path, v.path.data(), v.path.size());
        std::memcpy(vt.entries[i].label, v.label.data(), v.label.size());
        if (i > 0 && launch.volumes[i - 1].pipe && !v.pipe)
            return make_error(EINVAL, "volume " + v.path + ": the volume table lists volumes before pipes");
        vt.entries[i].flags = v.pipe ? file::kVolumePipe
                                     : (v.writable || v.scratch ? file::kVolumeWritable : 0u) |
                                           (v.scratch ? file::kVolumeScratch : 0u);
    }

    // Which rootfs files the Linux processes' labels may read.
    std::vector<std::string> linux_labels;
    for (const InitProcessSpec& p : launch.init.processes)
        if (!p.native)
            linux_labels.push_back(p.label);
    std::vector<uint8_t> access = KOS_TRY(encode_rootfs_access(rootfs_image, launch.policy, linux_labels));

    boot::BootImageHeader h{};
    h.magic = boot::kBootImageMagic;
    h.version = boot::kBootImageVersion;
    h.header_size = sizeof h;
    h.launch_offset = align_page(sizeof h);
    h.launch_size = section.size();
    uint64_t after_launch = align_page(h.launch_offset + h.launch_size);
    if (!launch.volumes.empty()) {
        h.volumes_offset = after_launch;
        h.volumes_size = sizeof vt;
        after_launch = align_page(h.volumes_offset + h.volumes_size);
    }
    if (!access.empty()) {
        h.readable_offset = after_launch;
        h.readable_size = access.size();
        after_launch = align_page(h.readable_offset + h.readable_size);
    }
    h.rootfs_offset = after_launch;
    h.rootfs_size = rootfs_image.size();
    std::vector<uint8_t> init;
    if (!launch.init.processes.empty())
        init = KOS_TRY(encode_init(launch.init));
    h.init_offset = init.empty() ? 0 : align_page(h.rootfs_offset + h.rootfs_size);
    h.init_size = init.size();
    uint64_t end = init.empty() ? h.rootfs_offset + h.rootfs_size : h.init_offset + h.init_size;
    if (!launch.policy.empty()) {
        h.policy_offset = align_page(end);
        h.policy_size = launch.policy.size();
        end = h.policy_offset + h.policy_size;
    }
    h.total_size = align_page(end);
    h.flags = launch.flags;

    std::vector<uint8_t> img(h.total_size, 0);
    std::memcpy(img.data(), &h, sizeof h);
    std::memcpy(img.data() + h.launch_offset, section.data(), section.size());
    if (h.volumes_offset)
        std::memcpy(img.data() + h.volumes_offset, &vt, sizeof vt);
    if (h.readable_offset)
        std::memcpy(img.data() + h.readable_offset, access.data(), access.size());
    if (!rootfs_image.empty())
        std::memcpy(img.data() + h.rootfs_offset, rootfs_image.data(), rootfs_image.size());
    if (!init.empty())
        std::memcpy(img.data() + h.init_offset, init.data(), init.size());
    if (!launch.policy.empty())
        std::memcpy(img.data() + h.policy_offset, launch.policy.data(), launch.policy.size());
    return img;
}

} // namespace kos::vmm
