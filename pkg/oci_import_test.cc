#include "pkg/oci_import.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "kos/rootfs_image.h"
#include "pkg/bundle.h"
#include "pkg/testing/tar_builder.h"
#include "pkg/testing/temp_dir.h"

using namespace kos::pkg;
using kos::pkg::testing::make_tar;
using kos::pkg::testing::read_all;
using kos::pkg::testing::TarItem;
using kos::pkg::testing::TempDir;
using kos::pkg::testing::write_all;
using nlohmann::json;
namespace rfs = kos::abi::rootfs;

namespace {

std::string str(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }
std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }
std::string digest_hex(const std::vector<uint8_t>& v) { return to_hex(sha256(v)); }

bool exists(const std::string& p) {
    struct stat st{};
    return ::lstat(p.c_str(), &st) == 0;
}

std::vector<std::string> list_dir(const std::string& p) {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(p.c_str())) {
        while (dirent* de = ::readdir(d))
            out.emplace_back(de->d_name);
        ::closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
}

kos::Result<std::vector<std::string>> apply(const std::vector<std::vector<TarItem>>& layers,
                                            std::vector<std::string>* notes = nullptr) {
    std::vector<std::vector<uint8_t>> tars;
    for (const auto& l : layers)
        tars.push_back(make_tar(l));
    return apply_layers_for_test(tars, {}, notes);
}

bool has(const std::vector<std::string>& tree, const std::string& prefix) {
    return std::any_of(tree.begin(), tree.end(),
                       [&](const std::string& s) { return s == prefix || s.starts_with(prefix + " "); });
}

json image_config(const std::vector<std::vector<uint8_t>>& layers, json cfg) {
    json diff = json::array();
    for (const auto& l : layers)
        diff.push_back("sha256:" + digest_hex(l));
    return {{"architecture", "amd64"}, {"os", "linux"}, {"config", cfg},
            {"rootfs", {{"type", "layers"}, {"diff_ids", diff}}}};
}

struct Layout {
    std::string dir;
    std::vector<std::string> layer_hex;
    std::string manifest_hex;
};

void put_blob(const std::string& dir, const std::vector<uint8_t>& b) {
    write_all(dir + "/blobs/sha256/" + digest_hex(b), str(b));
}

// Writes an OCI image layout; `edit` may change the manifest's layer
// descriptors before it is written.
Layout write_layout(const TempDir& t, const std::string& name, const std::vector<std::vector<uint8_t>>& layers,
                    const json& cfg, const std::function<void(json&)>& edit = {}) {
    Layout l;
    l.dir = t / name;
    t.mkdir(name + "/blobs/sha256");
    write_all(l.dir + "/oci-layout", R"({"imageLayoutVersion": "1.0.0"})");
    std::vector<uint8_t> config = bytes(image_config(layers, cfg).dump());
    put_blob(l.dir, config);
    json m = {{"schemaVersion", 2},
              {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
              {"config", {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                          {"digest", "sha256:" + digest_hex(config)},
                          {"size", config.size()}}},
              {"layers", json::array()}};
    for (const auto& layer : layers) {
        put_blob(l.dir, layer);
        l.layer_hex.push_back(digest_hex(layer));
        m["layers"].push_back({{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"},
                               {"digest", "sha256:" + digest_hex(layer)},
                               {"size", layer.size()}});
    }
    if (edit)
        edit(m);
    std::vector<uint8_t> mb = bytes(m.dump());
    put_blob(l.dir, mb);
    l.manifest_hex = digest_hex(mb);
    json index = {{"schemaVersion", 2},
                  {"manifests", {{{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                                  {"digest", "sha256:" + l.manifest_hex},
                                  {"size", mb.size()},
                                  {"annotations", {{"org.opencontainers.image.ref.name", "demo:1"}}}}}}};
    write_all(l.dir + "/index.json", index.dump());
    return l;
}

std::string read_file_from_bundle(const RunnableBundle& b, const std::string& path) {
    rfs::RootfsView v(b.rootfs.data(), b.rootfs.size());
    int64_t i = v.find(path.data(), path.size());
    if (i < 0)
        return "<missing>";
    const auto& e = v.entry(uint32_t(i));
    return std::string(reinterpret_cast<const char*>(v.file_data(e)), e.size);
}

} // namespace

// Attack 1: "../../x" and "/etc/x" are rejected; nothing is written.
TEST(OciImport, Attack1EscapingAndAbsolutePathsAreRejected) {
    auto a = apply({{{.path = "ok", .data = "1"}, {.path = "../../x", .data = "evil"}}});
    ASSERT_FALSE(a);
    EXPECT_EQ(a.error().message, "layer 1: \"../../x\": path escapes the root (\"..\"); rejected");
    auto b = apply({{{.path = "/etc/x", .data = "evil"}}});
    ASSERT_FALSE(b);
    EXPECT_EQ(b.error().message, "layer 1: \"/etc/x\": absolute path in a layer; rejected");
    auto c = apply({{{.path = "a/../../x", .data = "evil"}}});
    ASSERT_FALSE(c);

    TempDir t;
    std::vector<uint8_t> layer = make_tar({{.path = "bin/app", .data = "app", .mode = 0755},
                                           {.path = "../../escape", .data = "evil"}},
                                          true);
    Layout l = write_layout(t, "img", {layer}, {{"Entrypoint", {"/bin/app"}}});
    t.mkdir("out");
    auto before = list_dir(t / "out");
    auto r = import_oci_layout(l.dir, t / "out/bundle", {});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message, "layer 1: \"../../escape\": path escapes the root (\"..\"); rejected");
    EXPECT_EQ(list_dir(t / "out"), before);
    EXPECT_FALSE(exists(t / "escape"));
    EXPECT_FALSE(exists("/tmp/escape"));
}

// Attack 2: an entry below a symlink is rejected, in the same layer or a
// later one.
TEST(OciImport, Attack2EntriesThroughSymlinksAreRejected) {
    auto a = apply({{{.path = "a", .type = 'l', .data = "/"}, {.path = "a/etc/passwd", .data = "evil"}}});
    ASSERT_FALSE(a);
    EXPECT_EQ(a.error().message, "layer 1: \"/a/etc/passwd\" lies under /a, which is a symlink, not a directory; "
                                 "rejected (paths never resolve through symlinks)");
    auto b = apply({{{.path = "a", .type = 'l', .data = "../../.."}}, {{.path = "a/x", .data = "evil"}}});
    ASSERT_FALSE(b);
    EXPECT_NE(b.error().message.find("lies under /a, which is a symlink"), std::string::npos);
    auto c = apply({{{.path = "a", .type = 'l', .data = "/etc"}}, {{.path = "a/.wh.passwd", .data = ""}}});
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message.find("lies under /a, which is a symlink"), std::string::npos);
    // A symlink replaced by a directory in a later layer is fine.
    auto d = apply({{{.path = "a", .type = 'l', .data = "/"}}, {{.path = "a", .type = 'd'}, {.path = "a/x", .data = "1"}}});
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_TRUE(has(*d, "/a/x file"));
}

// Attack 3: hardlinks to targets outside the tree are rejected.
TEST(OciImport, Attack3HardlinksOutsideTheRootAreRejected) {
    auto a = apply({{{.path = "h", .type = 'h', .data = "../../etc/passwd"}}});
    ASSERT_FALSE(a);
    EXPECT_EQ(a.error().message, "layer 1: hardlink /h -> \"../../etc/passwd\": target outside the root; rejected");
    auto b = apply({{{.path = "h", .type = 'h', .data = "/etc/passwd"}}});
    ASSERT_FALSE(b);
    EXPECT_EQ(b.error().message, "layer 1: hardlink /h -> \"/etc/passwd\": target outside the root; rejected");
    auto c = apply({{{.path = "h", .type = 'h', .data = "etc/passwd"}}});
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().message,
              "layer 1: hardlink /h -> \"etc/passwd\": target is not a regular file in the image; rejected");
    auto d = apply({{{.path = "etc/passwd", .data = "root:x:0:0"}, {.path = "h", .type = 'h', .data = "etc/passwd"}}});
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_TRUE(has(*d, "/h file 0644 0:0 root:x:0:0"));
}

// Attack 4: whiteouts follow OCI layer order and never remove a parent or
// the root; malformed whiteouts are rejected.
TEST(OciImport, Attack4WhiteoutsFollowOciSemantics) {
    std::vector<std::string> notes;
    auto r = apply({{{.path = "a/x", .data = "1"},
                     {.path = "a/y", .data = "2"},
                     {.path = "b/z", .data = "3"},
                     {.path = "c", .data = "4"}},
                    {{.path = "a/.wh.x"},
                     {.path = ".wh.c"},
                     {.path = "b/.wh..wh..opq"},
                     {.path = "b/new", .data = "5"},
                     {.path = "d", .data = "same layer"},
                     {.path = ".wh.d"},
                     {.path = ".wh.missing"},
                     {.path = "a/.wh.y/", .type = 'd'}}},
                   &notes);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_FALSE(has(*r, "/a/x"));
    EXPECT_FALSE(has(*r, "/a/y")); // "a/.wh.y/" (a directory entry) is a whiteout too
    EXPECT_TRUE(has(*r, "/a"));
    EXPECT_FALSE(has(*r, "/b/z"));
    EXPECT_TRUE(has(*r, "/b/new"));
    EXPECT_TRUE(has(*r, "/b"));
    EXPECT_FALSE(has(*r, "/c"));
    EXPECT_TRUE(has(*r, "/d")); // a whiteout hides lower layers only
    EXPECT_FALSE(std::any_of(r->begin(), r->end(), [](auto& s) { return s.find(".wh.") != std::string::npos; }));

    // Opaque whiteout at the root: lower layers vanish, the root stays.
    auto root = apply({{{.path = "old", .data = "1"}}, {{.path = ".wh..wh..opq"}, {.path = "new", .data = "2"}}});
    ASSERT_TRUE(root);
    EXPECT_EQ(root->size(), 2u);
    EXPECT_TRUE(has(*root, "/ directory"));
    EXPECT_TRUE(has(*root, "/new"));

    for (const char* bad : {".wh.", "a/.wh.", ".wh..", "a/.wh.."}) {
        auto m = apply({{{.path = "a/x", .data = "1"}}, {{.path = bad}}});
        ASSERT_FALSE(m) << bad;
        EXPECT_EQ(m.error().message, std::string("layer 2: \"") + bad + "\": malformed whiteout; rejected");
    }
    // ".wh..wh..opq" inside a/ removes a/'s lower children but keeps a/.
    auto opq = apply({{{.path = "a/x", .data = "1"}}, {{.path = "a/.wh..wh..opq"}}});
    ASSERT_TRUE(opq);
    EXPECT_TRUE(has(*opq, "/a"));
    EXPECT_FALSE(has(*opq, "/a/x"));
}

// Attack 5: devices, fifos, setuid/setgid, capability xattrs and foreign
// owners are dropped or clamped, and reported.
TEST(OciImport, Attack5SpecialFilesPrivilegeBitsAndOwnersAreNeutralized) {
    std::vector<std::string> notes;
    auto r = apply({{{.path = "dev/null", .type = 'c'},
                     {.path = "fifo", .type = 'p'},
                     {.path = "suid", .data = "x", .mode = 06755},
                     {.path = "cap", .data = "x", .mode = 0755, .xattrs = {{"security.capability", "\x01"}}},
                     {.path = "foreign", .data = "x", .uid = 100000, .gid = 4000000000}}},
                   &notes);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_FALSE(has(*r, "/dev/null"));
    EXPECT_FALSE(has(*r, "/fifo"));
    EXPECT_TRUE(has(*r, "/suid file 0755 0:0"));
    EXPECT_TRUE(has(*r, "/foreign file 0644 65534:65534"));
    std::vector<std::string> expected = {
        "layer 1: /dev/null: character device dropped",
        "layer 1: /fifo: fifo dropped",
        "layer 1: /suid: setuid/setgid bits dropped",
        "layer 1: /cap: extended attribute security.capability dropped (file capabilities are never granted)",
        "layer 1: /foreign: foreign uid 100000 clamped to 65534",
        "layer 1: /foreign: foreign gid 4000000000 clamped to 65534",
    };
    for (const std::string& e : expected)
        EXPECT_NE(std::find(notes.begin(), notes.end(), e), notes.end()) << e;
}

// Attack 6: blob digest or size mismatches and descriptors pointing outside
// blobs/ are rejected before anything is extracted.
TEST(OciImport, Attack6BadBlobsAndDescriptorsAreRejectedBeforeExtraction) {
    TempDir t;
    std::vector<uint8_t> layer = make_tar({{.path = "bin/app", .data = "app", .mode = 0755}}, true);
    json cfg = {{"Entrypoint", {"/bin/app"}}};
    auto expect_rejected = [&](const Layout& l, const std::string& message) {
        auto r = import_oci_layout(l.dir, t / "out", {});
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error().message, message);
        EXPECT_FALSE(exists(t / "out"));
        for (const std::string& n : list_dir(t.path()))
            EXPECT_EQ(n.find("out.kos-import"), std::string::npos) << n;
    };

    Layout flipped = write_layout(t, "flipped", {layer}, cfg);
    std::string blob = read_all(flipped.dir + "/blobs/sha256/" + flipped.layer_hex[0]);
    blob[blob.size() / 2] ^= 1;
    write_all(flipped.dir + "/blobs/sha256/" + flipped.layer_hex[0], blob);
    expect_rejected(flipped, flipped.dir + ": blob sha256:" + flipped.layer_hex[0] +
                                 ": content does not match its digest; rejected");

    Layout sized = write_layout(t, "sized", {layer}, cfg, [](json& m) { m["layers"][0]["size"] = 10; });
    expect_rejected(sized, sized.dir + ": blob sha256:" + sized.layer_hex[0] + ": size " +
                               std::to_string(layer.size()) + " does not match the descriptor's 10; rejected");

    Layout outside = write_layout(t, "outside", {layer}, cfg, [](json& m) {
        m["layers"][0]["digest"] = "sha256:../../../../etc/passwd";
    });
    expect_rejected(outside, outside.dir + ": layer: descriptor digest \"sha256:../../../../etc/passwd\" is not "
                                           "sha256:<64 lower-case hex digits>; rejected");

    // A blob that is a symlink to a file elsewhere is not followed.
    Layout linked = write_layout(t, "linked", {layer}, cfg);
    std::string target = t / "elsewhere";
    write_all(target, str(layer));
    std::string bp = linked.dir + "/blobs/sha256/" + linked.layer_hex[0];
    ::unlink(bp.c_str());
    ASSERT_EQ(::symlink(target.c_str(), bp.c_str()), 0);
    auto r = import_oci_layout(linked.dir, t / "out", {});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ELOOP) << r.error().message;
    EXPECT_FALSE(exists(t / "out"));

    Layout foreign = write_layout(t, "foreign", {layer}, cfg, [](json& m) {
        m["layers"][0]["urls"] = {"https://example.com/layer"};
    });
    auto f = import_oci_layout(foreign.dir, t / "out", {});
    ASSERT_FALSE(f);
    EXPECT_NE(f.error().message.find("external urls"), std::string::npos);
}

// Attack 7 through the importer: a bomb layer and the entry cap.
TEST(OciImport, Attack7CapsApplyAcrossLayers) {
    TempDir t;
    std::vector<TarItem> items;
    for (int i = 0; i < 60; ++i)
        items.push_back({.path = "f" + std::to_string(i), .data = "x"});
    std::vector<uint8_t> l1 = make_tar(items, true), l2 = make_tar(items, true);
    Layout l = write_layout(t, "img", {l1, l2}, {{"Cmd", {"/f1"}}});
    ImportOptions o;
    o.limits.max_entries = 100;
    auto r = import_oci_layout(l.dir, t / "out", o);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message, "layer 2: more than 40 entries (limit)");
    EXPECT_FALSE(exists(t / "out"));
}

// A real image made of files from this machine: a static busybox and some
// of /etc, imported from an OCI layout and from a docker archive, gives a
// bundle directory that open_bundle_for_run accepts.
TEST(OciImport, ImportsRealImageFromOciLayoutAndDockerArchive) {
    std::string busybox = read_all("/bin/busybox");
    if (busybox.empty())
        GTEST_SKIP() << "no /bin/busybox";
    TempDir t;
    std::string os_release = read_all("/etc/os-release");
    std::vector<uint8_t> base = make_tar({{.path = "bin", .type = 'd', .mode = 0755},
                                          {.path = "bin/busybox", .data = busybox, .mode = 0755},
                                          {.path = "bin/sh", .type = 'l', .data = "busybox"},
                                          {.path = "etc/os-release", .data = os_release},
                                          {.path = "etc/passwd", .data = "root:x:0:0::/root:/bin/sh\n"
                                                                         "app:x:1000:1000::/home/app:/bin/sh\n"},
                                          {.path = "tmp/old", .data = "old"}},
                                         true);
    std::vector<uint8_t> top = make_tar({{.path = "tmp/.wh.old"}, {.path = "srv/hello.txt", .data = "hello\n"}}, true);
    json cfg = {{"Entrypoint", {"sh", "-c"}},
                {"Cmd", {"cat /srv/hello.txt"}},
                {"Env", {"PATH=/usr/bin:/bin", "GREETING=hi"}},
                {"WorkingDir", "/srv"},
                {"User", "app"},
                {"ExposedPorts", {{"8080/tcp", json::object()}}}};
    Layout l = write_layout(t, "img", {base, top}, cfg);
    auto r = import_oci_layout(l.dir, t / "oci-bundle", {});
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->layers, 2u);

    auto check = [&](const std::string& dir, const std::string& name) {
        auto b = open_bundle_for_run(dir, {});
        ASSERT_TRUE(b) << b.error().message;
        EXPECT_EQ(b->config.app.name, name);
        EXPECT_EQ(b->config.app.entrypoint, (std::vector<std::string>{"/bin/sh", "-c"}));
        EXPECT_EQ(b->config.app.args, (std::vector<std::string>{"cat /srv/hello.txt"}));
        EXPECT_EQ(b->config.app.env, (std::vector<std::string>{"PATH=/usr/bin:/bin", "GREETING=hi"}));
        EXPECT_EQ(b->config.app.workdir, "/srv");
        EXPECT_EQ(b->config.app.uid, 1000u);
        EXPECT_EQ(b->config.app.gid, 1000u);
        ASSERT_EQ(b->config.network.listen.size(), 1u);
        EXPECT_EQ(b->config.network.listen[0].port, 8080);
        EXPECT_EQ(read_file_from_bundle(*b, "/bin/busybox"), busybox);
        EXPECT_EQ(read_file_from_bundle(*b, "/srv/hello.txt"), "hello\n");
        EXPECT_EQ(read_file_from_bundle(*b, "/tmp/old"), "<missing>");
        rfs::RootfsView v(b->rootfs.data(), b->rootfs.size());
        EXPECT_STREQ(v.label(v.entry(uint32_t(v.find("/bin/busybox", 12)))), "app_exec_t");
        EXPECT_STREQ(v.label(v.entry(uint32_t(v.find("/etc/passwd", 11)))), "app_config_t");
        EXPECT_NE(read_all(dir + "/bundle.toml").find("DRAFT"), std::string::npos);
    };
    check(t / "oci-bundle", "demo");

    // docker save layout: manifest.json, <config hex>.json, <id>/layer.tar
    // (uncompressed layers; diff_ids are their digests).
    std::vector<uint8_t> base_raw = make_tar({{.path = "bin/busybox", .data = busybox, .mode = 0755},
                                              {.path = "bin/sh", .type = 'l', .data = "busybox"},
                                              {.path = "etc/passwd", .data = "app:x:1000:1000::/:/bin/sh\n"},
                                              {.path = "tmp/old", .data = "old"}});
    std::vector<uint8_t> top_raw = make_tar({{.path = "tmp/.wh.old"}, {.path = "srv/hello.txt", .data = "hello\n"}});
    std::vector<uint8_t> config = bytes(image_config({base_raw, top_raw}, cfg).dump());
    std::string chex = digest_hex(config);
    json manifest = json::array({{{"Config", chex + ".json"},
                                  {"RepoTags", {"example/app:latest"}},
                                  {"Layers", {"l1/layer.tar", "l2/layer.tar"}}}});
    auto archive = make_tar({{.path = "manifest.json", .data = manifest.dump()},
                             {.path = chex + ".json", .data = str(config)},
                             {.path = "l1/layer.tar", .data = str(base_raw)},
                             {.path = "l2/layer.tar", .data = str(top_raw)}});
    write_all(t / "image.tar", str(archive));
    auto d = import_docker_archive(t / "image.tar", t / "docker-bundle", {});
    ASSERT_TRUE(d) << d.error().message;
    check(t / "docker-bundle", "app");

    // A layer that does not match its diff_id is rejected (attack 6).
    std::vector<uint8_t> evil = make_tar({{.path = "bin/busybox", .data = "evil", .mode = 0755}});
    auto bad = make_tar({{.path = "manifest.json", .data = manifest.dump()},
                         {.path = chex + ".json", .data = str(config)},
                         {.path = "l1/layer.tar", .data = str(evil)},
                         {.path = "l2/layer.tar", .data = str(top_raw)}});
    write_all(t / "bad.tar", str(bad));
    auto e = import_docker_archive(t / "bad.tar", t / "bad-bundle", {});
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().message, t / "bad.tar" + ": layer l1/layer.tar: content does not match sha256:" +
                                     digest_hex(base_raw) + " in the image config; rejected");
    EXPECT_FALSE(exists(t / "bad-bundle"));

    // The import result packs and verifies like any bundle.
    auto p = pack_bundle(t / "oci-bundle", t / "demo.kos", {});
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_TRUE(open_bundle_for_run(t / "demo.kos", {}));
}
