#include "rootfs_access.h"

#include <algorithm>
#include <cstring>
#include <map>

#include "kos/rootfs_access.h"
#include "kos/rootfs_image.h"
#include "kos/security/engine.h"

namespace kos::vmm {
namespace {

namespace ra = abi::rootfs_access;
namespace rfs = abi::rootfs;
namespace sec = security;

uint64_t page_up(uint64_t v) { return (v + 4095) & ~uint64_t{4095}; }

} // namespace

Result<std::vector<uint8_t>> encode_rootfs_access(std::span<const uint8_t> rootfs_image,
                                                  std::span<const uint8_t> policy,
                                                  const std::vector<std::string>& labels) {
    if (policy.empty() || labels.empty() || rootfs_image.empty())
        return std::vector<uint8_t>{};
    if (labels.size() > ra::kMaxLabels)
        return make_error(E2BIG, "at most " + std::to_string(ra::kMaxLabels) + " labels of Linux processes");
    sec::Engine engine;
    std::vector<uint64_t> state(sec::Engine::required_state_size(policy.data(), policy.size()) / 8 + 8, 0);
    if (sec::LoadError e = engine.load(policy.data(), policy.size(), state.data(), state.size() * 8);
        e != sec::LoadError::None)
        return make_error(EINVAL, std::string("the compiled policy cannot be loaded: ") + sec::describe(e));
    uint32_t cls = engine.find_class("file", 4);
    uint32_t read = cls == sec::kNone ? sec::kNone : engine.find_perm(cls, "read", 4);
    if (read == sec::kNone)
        return std::vector<uint8_t>{}; // the policy does not speak of files: all readable

    rfs::RootfsView view(rootfs_image.data(), rootfs_image.size());
    if (view.validate() != rfs::Error::None)
        return make_error(EINVAL, "the rootfs image is malformed");
    const uint32_t n = view.count();
    const uint64_t meta_end = page_up(view.header().data_offset);
    const uint64_t bitmap_bytes = (n + 7) / 8;

    struct Set {
        std::vector<ra::Run> runs;
        std::vector<uint8_t> bitmap;
    };
    std::vector<Set> sets;
    bool all_readable = true;
    for (const std::string& label : labels) {
        uint32_t subject = engine.find_label(label.data(), static_cast<uint32_t>(label.size()));
        if (subject == sec::kNone)
            return make_error(EINVAL, "label " + label + " is not declared in the bundle's policy");
        if (label.size() >= ra::kMaxLabelLen)
            return make_error(EINVAL, "label " + label + " is too long");
        Set s;
        s.bitmap.assign(bitmap_bytes, 0);
        std::map<std::string, bool> verdicts; // by the file's label
        std::vector<ra::Run> pages;           // readable files' pages, in entry order
        for (uint32_t i = 0; i < n; ++i) {
            const rfs::RootfsEntry& e = view.entry(i);
            bool ok = true;
            if ((e.mode & rfs::kTypeMask) == rfs::kTypeFile) {
                std::string object(view.label(e), e.label_len);
                auto [it, fresh] = verdicts.try_emplace(object, false);
                if (fresh) {
                    uint32_t target = engine.find_label(object.data(), static_cast<uint32_t>(object.size()));
                    it->second = target != sec::kNone &&
                                 engine.decide(sec::Request{sec::Kind::Security, subject, target, cls, read, nullptr, 0, 0})
                                     .allow;
                }
                ok = it->second;
                if (ok && e.size)
                    pages.push_back({e.data_offset, page_up(e.size)});
            }
            if (ok)
                s.bitmap[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
            else
                all_readable = false;
        }
        // The metadata, then the readable files' pages, merged into runs.
        std::sort(pages.begin(), pages.end(), [](const ra::Run& a, const ra::Run& b) { return a.offset < b.offset; });
        s.runs.push_back({0, meta_end});
        for (const ra::Run& p : pages) {
            ra::Run& last = s.runs.back();
            if (p.offset <= last.offset + last.length) {
                uint64_t end = std::max(last.offset + last.length, p.offset + p.length);
                last.length = end - last.offset;
            } else {
                s.runs.push_back(p);
            }
        }
        sets.push_back(std::move(s));
    }
    if (all_readable)
        return std::vector<uint8_t>{};

    size_t run_total = 0;
    for (const Set& s : sets)
        run_total += s.runs.size();
    size_t runs_at = sizeof(ra::Header) + sets.size() * sizeof(ra::Label);
    size_t bitmaps_at = runs_at + run_total * sizeof(ra::Run);
    std::vector<uint8_t> out(bitmaps_at + sets.size() * bitmap_bytes, 0);
    ra::Header h{ra::kMagic, static_cast<uint32_t>(sets.size()), n, static_cast<uint32_t>(run_total), 0};
    std::memcpy(out.data(), &h, sizeof h);
    uint32_t first = 0;
    for (size_t i = 0; i < sets.size(); ++i) {
        ra::Label l{};
        std::memcpy(l.label, labels[i].data(), labels[i].size());
        l.first_run = first;
        l.run_count = static_cast<uint32_t>(sets[i].runs.size());
        l.bitmap_offset = static_cast<uint32_t>(bitmaps_at + i * bitmap_bytes);
        std::memcpy(out.data() + sizeof h + i * sizeof l, &l, sizeof l);
        std::memcpy(out.data() + runs_at + first * sizeof(ra::Run), sets[i].runs.data(),
                    sets[i].runs.size() * sizeof(ra::Run));
        std::memcpy(out.data() + l.bitmap_offset, sets[i].bitmap.data(), bitmap_bytes);
        first += l.run_count;
    }
    return out;
}

} // namespace kos::vmm
