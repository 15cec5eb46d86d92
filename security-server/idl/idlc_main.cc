// kos-idlc --out DIR [--summary] file.kidl...
//
// Parses all inputs together (interface names and ids are unique across
// them) and writes DIR/kos/idl/<package>.h per input; with --summary also
// DIR/kos/idl/<package>.json. Files are rewritten only when their contents
// change, so dependent code is not rebuilt for nothing.
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "kos/idl/generator.h"
#include "kos/idl/model.h"

namespace {

int usage() {
    std::fprintf(stderr, "usage: kos-idlc --out DIR [--summary] file.kidl...\n");
    return 2;
}

bool write_if_changed(const std::filesystem::path& path, const std::string& text) {
    {
        std::ifstream in(path, std::ios::binary);
        if (in) {
            std::ostringstream old;
            old << in.rdbuf();
            if (old.str() == text)
                return true;
        }
    }
    std::filesystem::path tmp = path;
    tmp += ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << text;
        if (!out.flush()) {
            std::fprintf(stderr, "kos-idlc: cannot write %s\n", tmp.c_str());
            return false;
        }
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        std::fprintf(stderr, "kos-idlc: cannot write %s: %s\n", path.c_str(), ec.message().c_str());
        return false;
    }
    return true;
}

int run(int argc, char** argv) {
    std::string out_dir;
    bool summary = false;
    std::vector<std::string> inputs;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--out" && i + 1 < argc)
            out_dir = argv[++i];
        else if (a == "--summary")
            summary = true;
        else if (a.starts_with("-"))
            return usage();
        else
            inputs.push_back(a);
    }
    if (out_dir.empty() || inputs.empty())
        return usage();

    // The cross-file checks (duplicate interface names and ids).
    auto all = kos::idl::load_idl_files(inputs);
    if (!all) {
        std::fprintf(stderr, "%s\n", all.error().message.c_str());
        return 1;
    }

    std::filesystem::path dir = std::filesystem::path(out_dir) / "kos" / "idl";
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
        std::fprintf(stderr, "kos-idlc: cannot create %s: %s\n", dir.c_str(), ec.message().c_str());
        return 1;
    }
    std::map<std::string, std::string> package_source;
    for (const std::string& path : inputs) {
        auto one = kos::idl::load_idl_files({path});
        if (!one) {
            std::fprintf(stderr, "%s\n", one.error().message.c_str());
            return 1;
        }
        auto [it, fresh] = package_source.emplace(one->package, path);
        if (!fresh) {
            if (std::filesystem::equivalent(it->second, path, ec))
                continue; // the same file named twice
            std::fprintf(stderr,
                         "%s: package '%s' is also the package of %s; each input becomes "
                         "kos/idl/<package>.h, so "
                         "give them different packages\n",
                         path.c_str(), one->package.c_str(), it->second.c_str());
            return 1;
        }
        std::string name = std::filesystem::path(path).filename().string();
        if (!write_if_changed(dir / (one->package + ".h"), kos::idl::generate_header(*one, name)))
            return 1;
        if (summary &&
            !write_if_changed(dir / (one->package + ".json"), kos::idl::generate_summary(*one)))
            return 1;
    }
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    // Out of memory (or a filesystem error thrown by std::filesystem) ends
    // the tool with a message instead of an unhandled exception.
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "kos-idlc: %s\n", e.what());
        return 1;
    }
}
