// `kos policy check / compile / explain / audit2allow`, and the policy
// compiler bundles are packed and opened with. Thin: parse options, call
// security-server/policy, print.
#include <unistd.h>

#include <cerrno>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "commands.h"
#include "kos/policy/audit_json.h"
#include "kos/policy/compiler.h"
#include "kos/policy/explain.h"
#include "kos/support/file.h"

namespace kos::cli {
namespace {

constexpr int kExitFailed = 1;   // the policy has errors or failing tests
constexpr int kExitBadInput = 2; // unreadable or malformed input

int fail(int status, const std::string& message) {
    std::fprintf(stderr, "kos: %s\n", message.c_str());
    return status;
}

struct CompileArgs {
    std::vector<std::string> files;
    std::vector<std::string> idl_path;
    std::string out;

    policy::CompileOptions options() const {
        policy::CompileOptions o;
        // --idl-path directories come before the system interfaces.
        if (!idl_path.empty())
            o.idl_path.insert(o.idl_path.begin(), idl_path.begin(), idl_path.end());
        return o;
    }
    void add_to(CLI::App* cmd) {
        cmd->add_option("files", files, "Policy source files (.kpol)")->required();
        cmd->add_option(
            "--idl-path", idl_path,
            "Directory searched for `idl` files after the policy file's own (repeatable; the "
            "system interfaces come last)");
    }
};

// Prints failing tests; returns true when all passed.
bool report_tests(const policy::CompiledPolicy& p) {
    for (const policy::TestOutcome& t : p.tests) {
        if (t.passed())
            continue;
        std::fprintf(stderr, "%s: test \"%s\" failed:\n", t.where.c_str(), t.name.c_str());
        for (const std::string& f : t.failures)
            std::fprintf(stderr, "  %s\n", f.c_str());
    }
    for (const std::string& w : p.warnings)
        std::fprintf(stderr, "kos: warning: %s\n", w.c_str());
    return p.all_tests_passed();
}

std::string summary(const policy::CompiledPolicy& p) {
    std::string s = std::to_string(p.rule_count()) + (p.rule_count() == 1 ? " rule, " : " rules, ");
    if (p.all_tests_passed())
        return s + std::to_string(p.tests.size()) +
               (p.tests.size() == 1 ? " test passed" : " tests passed");
    return s + std::to_string(p.tests_passed()) + " of " + std::to_string(p.tests.size()) +
           " tests passed";
}

// Files that cannot be read are bad input (2), not a failing policy (1).
bool readable(const std::vector<std::string>& files) {
    for (const std::string& f : files) {
        if (::access(f.c_str(), R_OK) != 0) {
            fail(kExitBadInput, f + ": " + errno_string(errno));
            return false;
        }
    }
    return true;
}

int check_command(const CompileArgs& a) {
    if (!readable(a.files))
        return kExitBadInput;
    auto p = policy::compile_policy_files(a.files, a.options());
    if (!p) {
        std::fprintf(stderr, "%s\n", p.error().message.c_str());
        return kExitFailed;
    }
    bool ok = report_tests(*p);
    std::printf("%s\n", summary(*p).c_str());
    return ok ? 0 : kExitFailed;
}

int compile_command(const CompileArgs& a) {
    if (!readable(a.files))
        return kExitBadInput;
    auto p = policy::compile_policy_files(a.files, a.options());
    if (!p) {
        std::fprintf(stderr, "%s\n", p.error().message.c_str());
        return kExitFailed;
    }
    if (!report_tests(*p))
        return fail(kExitFailed,
                    summary(*p) + "; " + a.out + " not written (the policy's tests must pass)");
    if (auto w = write_file_atomic(a.out, p->blob.data(), p->blob.size()); !w)
        return fail(kExitFailed, w.error().message);
    std::printf("%s: %zu bytes, %s\n", a.out.c_str(), p->blob.size(), summary(*p).c_str());
    return 0;
}

int explain_command(const std::string& blob_path, const std::string& request) {
    auto blob = read_file(blob_path, 256u << 20);
    if (!blob)
        return fail(kExitBadInput, blob.error().message);
    auto text = policy::explain_request(*blob, request);
    if (!text)
        return fail(kExitBadInput, blob_path + ": " + text.error().message);
    std::printf("%s", text->c_str());
    return 0;
}

int audit2allow_command(const std::string& path) {
    std::string text;
    if (path.empty() || path == "-") {
        // A pipe or terminal, read to its end (read_fd wants a regular file).
        char buf[65536];
        while (true) {
            ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return fail(kExitBadInput, "standard input: " + errno_string(errno));
            if (n == 0)
                break;
            text.append(buf, static_cast<size_t>(n));
            if (text.size() > (1ull << 30))
                return fail(kExitBadInput, "standard input: more than 1 GiB of audit records");
        }
    } else {
        auto r = read_text_file(path, 1ull << 30);
        if (!r)
            return fail(kExitBadInput, r.error().message);
        text = std::move(*r);
    }
    std::string name = path.empty() ? "-" : path;
    std::vector<policy::AuditEntry> entries;
    size_t line = 0, start = 0;
    while (start < text.size()) {
        size_t nl = text.find('\n', start);
        std::string_view l(text.data() + start,
                           (nl == std::string::npos ? text.size() : nl) - start);
        start = nl == std::string::npos ? text.size() : nl + 1;
        ++line;
        if (l.find_first_not_of(" \t\r") == std::string_view::npos)
            continue;
        auto e = policy::parse_audit_json(l);
        if (!e)
            return fail(kExitBadInput, name + ":" + std::to_string(line) +
                                           ": not an audit record: " + e.error().message);
        entries.push_back(std::move(*e));
    }
    std::printf("%s", policy::audit2allow(entries).c_str());
    return 0;
}

} // namespace

pkg::PolicyCompiler bundle_policy_compiler() {
    return [](const pkg::BundleConfig& config,
              const std::vector<pkg::PolicySource>& sources) -> Result<std::vector<uint8_t>> {
        std::vector<policy::MemorySource> in;
        in.reserve(sources.size());
        for (const pkg::PolicySource& s : sources)
            in.push_back(policy::MemorySource{s.name, std::string(s.bytes.begin(), s.bytes.end())});
        auto blob = policy::compile_bundle_policy(config.policy.domain, in);
        if (!blob)
            return std::unexpected(with_context(blob.error(), "compiling the bundle's policy"));
        return blob;
    };
}

void add_policy_commands(CLI::App& app, Context& ctx) {
    CLI::App* pol =
        app.add_subcommand("policy", "Check, compile and explain security policies (.kpol)");
    pol->require_subcommand(1);

    auto check = std::make_shared<CompileArgs>();
    CLI::App* c =
        pol->add_subcommand("check", "Parse and type-check policy files and run their tests");
    check->add_to(c);
    c->callback([check, &ctx] { ctx.exit_status = check_command(*check); });

    auto comp = std::make_shared<CompileArgs>();
    CLI::App* co = pol->add_subcommand(
        "compile", "Compile policy files into a policy blob (only if every test passes)");
    comp->add_to(co);
    co->add_option("-o,--output", comp->out, "The compiled policy file (written atomically)")
        ->required();
    co->callback([comp, &ctx] { ctx.exit_status = compile_command(*comp); });

    auto blob = std::make_shared<std::string>();
    auto request = std::make_shared<std::string>();
    CLI::App* ex = pol->add_subcommand(
        "explain", "Show the verdict of a compiled policy for one request, and why");
    ex->add_option("policy", *blob, "Compiled policy file (from kos policy compile)")->required();
    ex->add_option("request", *request,
                   "The request, as in a test step: 'request app_t -> vfs_t vfs.File.open "
                   "path=\"/x\" flags=0'")
        ->required();
    ex->callback([blob, request, &ctx] { ctx.exit_status = explain_command(*blob, *request); });

    auto input = std::make_shared<std::string>();
    CLI::App* aa = pol->add_subcommand(
        "audit2allow", "Suggest allow rules for the denials in audit JSON lines (prints; never "
                       "writes a policy)");
    aa->add_option("input", *input, "Audit log (JSON lines); - or nothing for standard input");
    aa->callback([input, &ctx] { ctx.exit_status = audit2allow_command(*input); });
}

} // namespace kos::cli
