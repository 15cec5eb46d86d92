// Pack and verify throughput for ~100 MiB of real files (copied from
// /usr/lib), against `tar` + `sha256sum` of the same tree, in one run.
//
//   pack:   kos pack (rootfs image, labels, digests, manifest, Ed25519
//           signature, atomic write)  vs  tar -cf + sha256sum of the tar
//   verify: open_bundle_for_run (copy into a sealed memfd, signature,
//           every section digest)      vs  sha256sum of the tar
//   verify --full: the same plus every file's own digest (kos verify)
//
// Each measurement is the best of 3 with a warm page cache. Usage:
//   kos_pack_bench [MiB (default 100)] [source dir (default /usr/lib)]
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <functional>
#include <vector>
#include <string>

#include "platform.h"
#include "pkg/bundle.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Copier {
    uint64_t budget;
    uint64_t bytes = 0;
    uint64_t files = 0;

    void copy_file(const std::string& from, const std::string& to, uint64_t size) {
        int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
        if (in < 0)
            return;
        int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (out < 0) {
            ::close(in);
            return;
        }
        std::string buf(1 << 20, '\0');
        ssize_t n;
        while ((n = ::read(in, buf.data(), buf.size())) > 0)
            if (::write(out, buf.data(), static_cast<size_t>(n)) != n)
                break;
        ::close(in);
        ::close(out);
        bytes += size;
        ++files;
    }

    // Regular files only, depth first, until the budget is spent.
    void walk(const std::string& from, const std::string& to, int depth) {
        if (bytes >= budget || depth > 16)
            return;
        DIR* d = ::opendir(from.c_str());
        if (!d)
            return;
        ::mkdir(to.c_str(), 0755);
        std::vector<std::string> names;
        while (dirent* de = ::readdir(d))
            if (std::string(de->d_name) != "." && std::string(de->d_name) != "..")
                names.emplace_back(de->d_name);
        ::closedir(d);
        std::sort(names.begin(), names.end());
        for (const std::string& n : names) {
            if (bytes >= budget)
                break;
            struct stat st{};
            std::string f = from + "/" + n;
            if (::lstat(f.c_str(), &st) != 0)
                continue;
            if (S_ISDIR(st.st_mode))
                walk(f, to + "/" + n, depth + 1);
            else if (S_ISREG(st.st_mode) && (st.st_mode & 0444) == 0444 && bytes + uint64_t(st.st_size) <= budget + (8 << 20))
                copy_file(f, to + "/" + n, static_cast<uint64_t>(st.st_size));
        }
    }
};

double best_of(int n, const std::function<bool()>& f) {
    double best = 1e99;
    for (int i = 0; i < n; ++i) {
        auto t0 = Clock::now();
        if (!f()) {
            std::fprintf(stderr, "pack_bench: operation failed\n");
            std::exit(1);
        }
        best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
    }
    return best;
}

bool sh(const std::string& cmd) { return std::system(cmd.c_str()) == 0; }

} // namespace

int main(int argc, char** argv) {
    uint64_t mib = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 100;
    std::string source = argc > 2 ? argv[2] : "/usr/lib";
    char tmpl[] = "/tmp/kos-pack-bench-XXXXXX";
    std::string dir = ::mkdtemp(tmpl);
    std::string bundle = dir + "/bundle";
    ::mkdir(bundle.c_str(), 0755);
    Copier c{mib << 20};
    c.walk(source, bundle + "/rootfs", 0);
    ::mkdir((bundle + "/policy").c_str(), 0755);
    sh("printf '[app]\\nname = \"bench\"\\nversion = \"1\"\\nentrypoint = [\"/bin/true\"]\\n"
       "[labels]\\n\"/**\" = \"bench_file_t\"\\n[policy]\\ndomain = \"bench_t\"\\n"
       "sources = [\"policy/bench.kpol\"]\\n' > " + bundle + "/bundle.toml");
    sh("echo 'allow bench_t bench_file_t : file { read }' > " + bundle + "/policy/bench.kpol");
    double size_mib = static_cast<double>(c.bytes) / (1 << 20);

    std::printf("kos pack/verify benchmark\nplatform: %s\n", kos::bench::platform_line().c_str());
    std::printf("tree: %llu files, %.1f MiB copied from %s\n", static_cast<unsigned long long>(c.bytes ? c.files : 0),
                size_mib, source.c_str());
    // Warm the page cache for everyone.
    sh("tar -cf - -C " + bundle + " . > /dev/null");

    (void)kos::pkg::init_crypto();
    auto [pub, sec] = kos::pkg::generate_keypair();
    kos::pkg::PackOptions po;
    po.key = &sec;
    std::string kos_file = dir + "/bench.kos", tar_file = dir + "/bench.tar";
    double t_pack = best_of(3, [&] { return kos::pkg::pack_bundle(bundle, kos_file, po).has_value(); });
    double t_tar = best_of(3, [&] {
        return sh("tar -cf " + tar_file + " -C " + bundle + " . && sha256sum " + tar_file + " > /dev/null");
    });
    kos::pkg::TrustOptions trust;
    trust.keys = {pub};
    double t_verify = best_of(3, [&] { return kos::pkg::open_bundle_for_run(kos_file, trust).has_value(); });
    kos::pkg::TrustOptions full = trust;
    full.check_file_digests = true;
    double t_full = best_of(3, [&] { return kos::pkg::open_bundle_for_run(kos_file, full).has_value(); });
    double t_sha = best_of(3, [&] { return sh("sha256sum " + tar_file + " > /dev/null"); });

    auto rate = [&](double t) { return size_mib / t; };
    std::printf("%-44s %8.1f MiB/s  (%.3f s)\n", "kos pack --sign", rate(t_pack), t_pack);
    std::printf("%-44s %8.1f MiB/s  (%.3f s)\n", "baseline: tar -cf + sha256sum", rate(t_tar), t_tar);
    std::printf("%-44s %8.2fx\n", "pack ratio (kos / baseline throughput)", t_tar / t_pack);
    std::printf("%-44s %8.1f MiB/s  (%.3f s)\n", "kos verify (open_bundle_for_run, signed)", rate(t_verify), t_verify);
    std::printf("%-44s %8.1f MiB/s  (%.3f s)\n", "kos verify + every file digest", rate(t_full), t_full);
    std::printf("%-44s %8.1f MiB/s  (%.3f s)\n", "baseline: sha256sum of the tar", rate(t_sha), t_sha);
    std::printf("%-44s %8.2fx\n", "verify ratio (kos / baseline throughput)", t_sha / t_verify);
    std::printf("%-44s %8.2fx\n", "full verify ratio (kos / baseline)", t_sha / t_full);
    struct stat st{};
    ::stat(kos_file.c_str(), &st);
    std::printf("bundle size %.1f MiB (page-aligned file data)\n", static_cast<double>(st.st_size) / (1 << 20));
    (void)kos::pkg::remove_tree(dir);
    return 0;
}
