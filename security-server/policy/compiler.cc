// Sources -> PolicyModel (names, sets, IDL references, conditions checked)
// -> blob (builder.cc) -> the policy's tests, run on the blob.
#include "kos/policy/compiler.h"

#include <algorithm>
#include <deque>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include "kos/policy/audit_json.h"
#include "kos/policy/lexer.h"
#include "kos/policy/parser.h"
#include "kos/policy/request.h"
#include "kos/security/engine.h"
#include "kos/support/file.h"

namespace kos::policy {

namespace fs = std::filesystem;
namespace sec = kos::security;

size_t CompiledPolicy::tests_passed() const {
    size_t n = 0;
    for (const TestOutcome& t : tests)
        n += t.passed();
    return n;
}

namespace {

sec::FieldType to_field_type(idl::Type t) {
    return static_cast<sec::FieldType>(t);
}

std::vector<FieldSpec> specs_of(const std::vector<idl::Field>& fields) {
    std::vector<FieldSpec> out;
    out.reserve(fields.size());
    for (const idl::Field& f : fields)
        out.push_back(FieldSpec{f.name, to_field_type(f.type), f.max_size});
    return out;
}

// --- Loading: files, includes, idl ---------------------------------------------

struct FlatStatement {
    const ast::Statement* statement;
    uint32_t file;
};

class Sources {
  public:
    Sources(const std::vector<MemorySource>* memory, const CompileOptions& options,
            Diagnostics& diags, std::vector<std::string>& names)
        : m_memory(memory), m_options(options), m_d(diags), m_names(names) {
        if (memory)
            for (const MemorySource& s : *memory)
                m_by_name.emplace(fs::path(s.name).lexically_normal().string(), &s);
    }

    // A top-level file, named as the user wrote it.
    void load_top(const std::string& path) {
        std::string key, text;
        if (!locate(path, &key, &text, ""))
            return;
        load(key, display_of(path), text, 0);
    }

    const std::vector<FlatStatement>& flat() const { return m_flat; }
    std::vector<std::pair<const ast::Idl*, uint32_t>> idls;

    // Reads an idl file for `idl "path"` in file `file`: relative to that
    // file, then the search path. Sets the display name.
    bool read_idl(const ast::Idl& i, uint32_t file, std::string* key, std::string* display,
                  std::string* text) {
        std::vector<std::string> tried;
        fs::path p(i.path);
        if (i.path.empty()) {
            m_d.error(i.loc, "found an empty path, expected an .kidl file");
            return false;
        }
        if (m_memory) {
            if (!p.is_absolute()) {
                std::string joined =
                    (fs::path(m_names[file]).parent_path() / p).lexically_normal().string();
                auto it = m_by_name.find(joined);
                if (it != m_by_name.end()) {
                    *key = "bundle:" + joined;
                    *display = joined;
                    *text = it->second->text;
                    return true;
                }
                tried.push_back(joined + " (in the bundle)");
            }
        } else if (p.is_absolute()) {
            return read_host(i, i.path, key, display, text);
        } else {
            fs::path joined = (fs::path(m_names[file]).parent_path() / p).lexically_normal();
            std::error_code ec;
            if (fs::is_regular_file(joined, ec))
                return read_host(i, joined.string(), key, display, text);
            tried.push_back(joined.string());
        }
        if (!p.is_absolute()) {
            for (const std::string& dir : m_options.idl_path) {
                fs::path c = (fs::path(dir) / p).lexically_normal();
                std::error_code ec;
                if (fs::is_regular_file(c, ec))
                    return read_host(i, c.string(), key, display, text);
                tried.push_back(c.string());
            }
        } else {
            tried.push_back(i.path + " (absolute paths are refused in bundles)");
        }
        std::string list;
        for (const std::string& t : tried)
            list += (list.empty() ? "" : ", ") + t;
        m_d.error(i.loc, "idl \"" + i.path + "\" not found (looked at " + list + ")");
        return false;
    }

  private:
    bool read_host(const ast::Idl& i, const std::string& path, std::string* key,
                   std::string* display, std::string* text) {
        std::error_code ec;
        // Regular files only: opening a FIFO would block.
        if (!fs::is_regular_file(path, ec)) {
            m_d.error(i.loc, "idl \"" + i.path + "\": " + path + " is not a regular file");
            return false;
        }
        fs::path canon = fs::weakly_canonical(path, ec);
        *key = ec ? path : canon.string();
        *display = path;
        auto r = read_text_file(path, kMaxSourceBytes);
        if (!r) {
            m_d.error(i.loc, "idl \"" + i.path + "\": " + r.error().message);
            return false;
        }
        *text = std::move(*r);
        return true;
    }

    std::string display_of(const std::string& path) const {
        return m_memory ? fs::path(path).lexically_normal().string() : path;
    }

    // Finds a policy file: sets its identity key and text. `from` is the
    // error position's text ("" for a top-level file).
    bool locate(const std::string& path, std::string* key, std::string* text,
                const std::string& from, const std::string& written = {}) {
        const std::string& shown = written.empty() ? path : written;
        auto fail = [&](const std::string& msg) {
            m_d.error_at(from, msg);
            return false;
        };
        if (m_memory) {
            fs::path p(path);
            std::string norm = p.lexically_normal().string();
            if (p.is_absolute() || norm == ".." || norm.starts_with("../"))
                return fail("include \"" + shown +
                            "\": outside the bundle (includes name the bundle's own policy files)");
            auto it = m_by_name.find(norm);
            if (it == m_by_name.end())
                return fail("include \"" + shown + "\": no policy file " + norm +
                            " in the bundle (list it in [policy] sources)");
            *key = norm;
            *text = it->second->text;
            return true;
        }
        std::error_code ec;
        if (!fs::is_regular_file(path, ec))
            return fail(path + ": " +
                        (fs::exists(path, ec) ? "not a regular file" : "no such file"));
        uint64_t size = fs::file_size(path, ec);
        if (ec)
            return fail(path + ": " + ec.message());
        if (size > kMaxSourceBytes)
            return fail(path + ": a source of " + std::to_string(size) + " bytes (at most " +
                        std::to_string(kMaxSourceBytes) + " are allowed)");
        auto r = read_text_file(path, kMaxSourceBytes);
        if (!r)
            return fail(r.error().message);
        fs::path canon = fs::weakly_canonical(path, ec);
        *key = ec ? path : canon.string();
        *text = std::move(*r);
        return true;
    }

    void load(const std::string& key, const std::string& display, const std::string& text,
              uint32_t depth) {
        if (m_loaded.count(key))
            return; // each file once: a second include of it adds nothing
        if (m_names.size() >= kMaxSourceFiles) {
            m_d.error_at(display, "more than " + std::to_string(kMaxSourceFiles) + " policy files");
            return;
        }
        m_total += text.size();
        if (m_total > kMaxTotalSourceBytes) {
            m_d.error_at(display, "the policy's files hold more than " +
                                      std::to_string(kMaxTotalSourceBytes) + " bytes together");
            return;
        }
        m_loaded.insert(key);
        uint32_t index = static_cast<uint32_t>(m_names.size());
        m_names.push_back(display);
        m_stack.push_back(key);
        const ast::File& f = m_files.emplace_back(parse_policy(text, index, m_d));
        for (const ast::Statement& st : f.statements) {
            if (const auto* inc = std::get_if<ast::Include>(&st)) {
                include(*inc, index, depth);
                continue;
            }
            if (const auto* idl = std::get_if<ast::Idl>(&st))
                idls.emplace_back(idl, index);
            m_flat.push_back(FlatStatement{&st, index});
        }
        m_stack.pop_back();
    }

    void include(const ast::Include& inc, uint32_t file, uint32_t depth) {
        if (depth + 1 > kMaxIncludeDepth) {
            m_d.error(inc.loc, "found an include nested " + std::to_string(depth + 1) +
                                   " deep, expected at most " + std::to_string(kMaxIncludeDepth));
            return;
        }
        if (inc.path.empty()) {
            m_d.error(inc.loc, "found an empty path, expected a policy file");
            return;
        }
        fs::path p(inc.path);
        std::string target =
            p.is_absolute()
                ? inc.path
                : (fs::path(m_names[file]).parent_path() / p).lexically_normal().string();
        std::string key, text;
        if (!locate(target, &key, &text, m_d.where(inc.loc), inc.path))
            return;
        if (std::find(m_stack.begin(), m_stack.end(), key) != m_stack.end()) {
            m_d.error(inc.loc, "found an include cycle: \"" + inc.path +
                                   "\" includes itself (through " + std::to_string(m_stack.size()) +
                                   " file(s))");
            return;
        }
        load(key, display_of(target), text, depth + 1);
    }

    const std::vector<MemorySource>* m_memory;
    const CompileOptions& m_options;
    Diagnostics& m_d;
    std::vector<std::string>& m_names;
    std::map<std::string, const MemorySource*> m_by_name;
    std::deque<ast::File> m_files;
    std::vector<FlatStatement> m_flat;
    std::set<std::string> m_loaded;
    std::vector<std::string> m_stack;
    uint64_t m_total = 0;
};

// --- Resolution -----------------------------------------------------------------

class Resolver {
  public:
    Resolver(Sources& sources, const CompileOptions& options, Diagnostics& d, PolicyModel& model)
        : m_src(sources), m_options(options), m_d(d), m_m(model) {}

    void run() {
        load_idl();
        declarations();
        if (m_d.full())
            return;
        second_pass();
        // A policy that declares labels must declare the bundle's domain
        // among them. One that declares none (a placeholder) compiles to a
        // policy that denies everything, which is safe as it is.
        if (!m_options.domain.empty() && !m_m.labels.empty()) {
            auto it = m_labels.find(m_options.domain);
            if (it == m_labels.end() || m_m.labels[it->second].kind != sec::LabelKind::Domain)
                m_d.error_at("", "the bundle's domain \"" + m_options.domain +
                                     "\" is not declared as a domain in its policy (add: domain " +
                                     m_options.domain + ")");
        }
    }

    std::vector<std::pair<const ast::Test*, uint32_t>> tests;
    std::vector<std::string> warnings;

  private:
    std::string where(ast::Loc l) const { return m_d.where(l); }

    // -- idl --
    void load_idl() {
        std::set<std::string> done;
        for (auto [stmt, file] : m_src.idls) {
            std::string key, display, text;
            if (!m_src.read_idl(*stmt, file, &key, &display, &text)) {
                m_idl_failed = true;
                continue;
            }
            if (!done.insert(key).second)
                continue;
            auto mod = idl::parse_idl(text, display);
            if (!mod) {
                m_d.error(stmt->loc, "idl \"" + stmt->path + "\": " + mod.error().message);
                m_idl_failed = true;
                continue;
            }
            for (idl::Interface& in : mod->interfaces) {
                if (const idl::Interface* other = m_m.idl.find(in.name)) {
                    m_d.error(stmt->loc, "idl \"" + stmt->path + "\": interface " + in.name +
                                             " is already declared by " + other->where.file);
                    continue;
                }
                if (const idl::Interface* other = m_m.idl.find(in.id)) {
                    m_d.error(stmt->loc, "idl \"" + stmt->path + "\": interface " + in.name +
                                             " has id " + std::to_string(in.id) +
                                             ", already used by " + other->name + " (" +
                                             other->where.file + ")");
                    continue;
                }
                m_m.idl.interfaces.push_back(std::move(in));
            }
        }
    }

    // -- declarations --
    bool declare_name(const ast::Name& n, const char* what) {
        if (n.text == "any") {
            m_d.error(n.loc, "found 'any', expected a " + std::string(what) +
                                 " name ('any' means every label)");
            return false;
        }
        auto l = m_labels.find(n.text);
        if (l != m_labels.end()) {
            m_d.error(n.loc, std::string(what) + " " + n.text +
                                 " is already declared, as a label at " +
                                 m_m.labels[l->second].where);
            return false;
        }
        auto s = m_sets.find(n.text);
        if (s != m_sets.end()) {
            m_d.error(n.loc, std::string(what) + " " + n.text +
                                 " is already declared, as a set at " +
                                 where(s->second.def->name.loc));
            return false;
        }
        return true;
    }

    void declarations() {
        for (const FlatStatement& fs : m_src.flat()) {
            if (m_d.full())
                return;
            if (const auto* d = std::get_if<ast::LabelDecl>(fs.statement)) {
                for (const ast::Name& n : d->names) {
                    if (!declare_name(n, "label"))
                        continue;
                    if (m_m.labels.size() >= kMaxLabels) {
                        m_d.error(n.loc, "found label " + n.text + ", expected at most " +
                                             std::to_string(kMaxLabels) + " labels");
                        return;
                    }
                    LabelDef l;
                    l.name = n.text;
                    l.kind = d->resource ? sec::LabelKind::Resource : sec::LabelKind::Domain;
                    l.where = where(n.loc);
                    m_labels.emplace(n.text, static_cast<uint32_t>(m_m.labels.size()));
                    m_m.labels.push_back(std::move(l));
                }
            } else if (const auto* s = std::get_if<ast::SetDef>(fs.statement)) {
                if (declare_name(s->name, "set"))
                    m_sets.emplace(s->name.text, SetState{s, false, false, {}, false});
            } else if (const auto* c = std::get_if<ast::ClassDecl>(fs.statement)) {
                declare_class(*c);
            } else if (const auto* f = std::get_if<ast::Family>(fs.statement)) {
                declare_family(*f);
            }
        }
    }

    void declare_class(const ast::ClassDecl& c) {
        auto it = m_classes.find(c.name.text);
        if (it != m_classes.end()) {
            m_d.error(c.name.loc,
                      "class " + c.name.text + " is already declared at " + it->second.second);
            return;
        }
        ClassDef def;
        def.name = c.name.text;
        std::map<std::string, ast::Loc> seen;
        for (const ast::Perm& p : c.perms) {
            if (auto s = seen.find(p.name.text); s != seen.end()) {
                m_d.error(p.name.loc, "permission " + p.name.text + " is already declared at " +
                                          where(s->second));
                continue;
            }
            seen.emplace(p.name.text, p.name.loc);
            PermDef pd;
            pd.name = p.name.text;
            const std::string& f = p.flow.text;
            if (f == "read")
                pd.flow = sec::Flow::Read;
            else if (f == "write")
                pd.flow = sec::Flow::Write;
            else if (f == "readwrite")
                pd.flow = sec::Flow::ReadWrite;
            else if (f == "none")
                pd.flow = sec::Flow::None;
            else {
                m_d.error(p.flow.loc,
                          "found '" + f + "', expected a flow (read, write, readwrite or none)");
                continue;
            }
            def.perms.push_back(std::move(pd));
        }
        if (c.perms.empty()) {
            m_d.error(c.loc, "found an empty class, expected at least one permission");
            return;
        }
        m_classes.emplace(c.name.text, std::make_pair(static_cast<uint32_t>(m_m.classes.size()),
                                                      where(c.name.loc)));
        m_m.classes.push_back(std::move(def));
    }

    void declare_family(const ast::Family& f) {
        const char* what = f.kind == ast::Family::Kind::Sensitivity ? "sensitivity"
                           : f.kind == ast::Family::Kind::Integrity ? "integrity"
                                                                    : "categories";
        std::string* decl = f.kind == ast::Family::Kind::Sensitivity ? &m_m.sensitivity_where
                            : f.kind == ast::Family::Kind::Integrity ? &m_m.integrity_where
                                                                     : &m_categories_where;
        if (!decl->empty()) {
            m_d.error(f.loc, std::string(what) + " is already declared at " + *decl);
            return;
        }
        *decl = where(f.loc);
        std::vector<std::string>& out = f.kind == ast::Family::Kind::Sensitivity ? m_m.sensitivities
                                        : f.kind == ast::Family::Kind::Integrity
                                            ? m_m.integrity_levels
                                            : m_m.categories;
        size_t cap = f.kind == ast::Family::Kind::Categories ? 64 : 256;
        std::map<std::string, ast::Loc> seen;
        for (const ast::Name& n : f.names) {
            if (auto s = seen.find(n.text); s != seen.end()) {
                m_d.error(n.loc,
                          "'" + n.text + "' is already in this list (at " + where(s->second) + ")");
                continue;
            }
            if (out.size() >= cap) {
                m_d.error(n.loc, "found '" + n.text + "', expected at most " + std::to_string(cap) +
                                     " " + (cap == 64 ? "categories" : "levels"));
                return;
            }
            seen.emplace(n.text, n.loc);
            out.push_back(n.text);
        }
    }

    // -- sets --
    // Members are sorted label indices. Every label an evaluation touches
    // counts against a budget, so no input makes resolution quadratic.
    using Members = std::vector<uint32_t>;
    // Anything that builds stays far below it: the builder allows 4M index keys.
    static constexpr uint64_t kSetWorkBudget = 16u << 20;

    struct SetState {
        const ast::SetDef* def;
        bool resolving;
        bool resolved;
        Members members;
        bool broken = false; // its definition has an error (reported once)
    };

    bool spend(uint64_t n, ast::Loc loc) {
        m_set_work += n;
        if (m_set_work <= kSetWorkBudget)
            return true;
        if (!m_budget_reported)
            m_d.error(loc, "found label sets that expand to more than " +
                               std::to_string(kSetWorkBudget) +
                               " labels in all, expected smaller sets or fewer uses of 'any'");
        m_budget_reported = true;
        return false;
    }

    // Members of a set expression; nullopt on error.
    std::optional<Members> eval(const ast::SetExpr& e, uint32_t depth = 0) {
        Members acc;
        bool ok = true;
        for (const ast::SetTerm& t : e.terms) {
            Members v;
            if (t.kind == ast::SetTerm::Kind::Any) {
                if (!spend(m_m.labels.size(), t.loc))
                    return std::nullopt;
                v.resize(m_m.labels.size());
                for (uint32_t i = 0; i < v.size(); ++i)
                    v[i] = i;
            } else {
                for (const ast::Name& n : t.names) {
                    auto term = name_members(n, depth);
                    if (!term) {
                        ok = false;
                        continue;
                    }
                    if (!spend(term->size(), n.loc))
                        return std::nullopt;
                    v.insert(v.end(), term->begin(), term->end());
                }
                std::sort(v.begin(), v.end());
                v.erase(std::unique(v.begin(), v.end()), v.end());
            }
            if (!spend(acc.size() + v.size(), t.loc))
                return std::nullopt;
            Members out;
            if (t.op == '+')
                std::set_union(acc.begin(), acc.end(), v.begin(), v.end(), std::back_inserter(out));
            else
                std::set_difference(acc.begin(), acc.end(), v.begin(), v.end(),
                                    std::back_inserter(out));
            acc = std::move(out);
        }
        if (!ok)
            return std::nullopt;
        return acc;
    }

    std::optional<Members> name_members(const ast::Name& n, uint32_t depth) {
        if (auto l = m_labels.find(n.text); l != m_labels.end())
            return Members{l->second};
        auto s = m_sets.find(n.text);
        if (s == m_sets.end()) {
            m_d.error(n.loc, "found '" + n.text + "', expected a declared label or set" +
                                 suggestion(n.text));
            return std::nullopt;
        }
        SetState& st = s->second;
        if (st.broken)
            return std::nullopt; // already reported
        if (st.resolved)
            return st.members;
        if (st.resolving || depth > 256) {
            m_d.error(n.loc, "set " + n.text + " is defined in terms of itself (set at " +
                                 where(st.def->name.loc) + ")");
            return std::nullopt;
        }
        st.resolving = true;
        auto v = eval(st.def->expr, depth + 1);
        st.resolving = false;
        if (!v) {
            st.broken = true;
            return std::nullopt;
        }
        st.resolved = true;
        st.members = *v;
        return v;
    }

    std::string suggestion(const std::string& name) const {
        // The closest declared label by a cheap measure: same prefix up to '_'.
        for (const auto& [k, v] : m_labels)
            if (k.size() > 2 && name.size() > 2 && k.substr(0, k.size() - 2) == name)
                return " (did you mean " + k + "?)";
        return "";
    }

    std::optional<uint32_t> label(const ast::Name& n) {
        auto l = m_labels.find(n.text);
        if (l == m_labels.end()) {
            m_d.error(n.loc, "found '" + n.text + "', expected a declared label" +
                                 (m_sets.count(n.text) ? " (" + n.text + " is a set)"
                                                       : suggestion(n.text)));
            return std::nullopt;
        }
        return l->second;
    }

    // -- second pass: sets, trusted, levels, machines, rules --
    void second_pass() {
        for (const FlatStatement& fs : m_src.flat()) {
            if (m_d.full())
                return;
            const ast::Statement* st = fs.statement;
            if (const auto* s = std::get_if<ast::SetDef>(st)) {
                ast::Name n = s->name;
                if (m_sets.count(n.text) && m_sets.at(n.text).def == s)
                    (void)name_members(n, 0);
            } else if (const auto* t = std::get_if<ast::Trusted>(st)) {
                if (auto v = eval(t->labels))
                    for (uint32_t i : *v)
                        m_m.labels[i].trusted = true;
            } else if (const auto* l = std::get_if<ast::Level>(st)) {
                level(*l);
            } else if (const auto* m = std::get_if<ast::Machine>(st)) {
                machine(*m);
            }
        }
        for (const auto& [label, at] : m_levels)
            if (m_m.labels[label].trusted)
                warnings.push_back(
                    at + ": " + m_m.labels[label].name +
                    " is trusted: the lattices do not apply to it, so its level has no effect");
        for (const FlatStatement& fs : m_src.flat()) {
            if (m_d.full())
                return;
            if (const auto* r = std::get_if<ast::Rule>(fs.statement))
                rule(*r);
            else if (const auto* t = std::get_if<ast::Test>(fs.statement)) {
                tests.emplace_back(t, fs.file);
                if (t->steps.empty())
                    warnings.push_back(where(t->loc) + ": test \"" + t->name + "\" has no steps");
            }
        }
    }

    void level(const ast::Level& l) {
        auto li = label(l.label);
        if (!li)
            return;
        if (auto prev = m_levels.find(*li); prev != m_levels.end()) {
            m_d.error(l.loc,
                      "label " + l.label.text + " already has a level (at " + prev->second + ")");
            return;
        }
        m_levels.emplace(*li, where(l.loc));
        LabelDef& d = m_m.labels[*li];
        auto find = [](const std::vector<std::string>& v, const std::string& s) -> int {
            auto it = std::find(v.begin(), v.end(), s);
            return it == v.end() ? -1 : static_cast<int>(it - v.begin());
        };
        bool sens_done = false;
        if (l.first) {
            int s = find(m_m.sensitivities, l.first->text);
            int i = find(m_m.integrity_levels, l.first->text);
            if (s >= 0) {
                d.sensitivity = static_cast<uint8_t>(s);
                sens_done = true;
            } else if (i >= 0 && !l.has_categories && !l.second) {
                d.integrity = static_cast<uint8_t>(i);
            } else {
                m_d.error(l.first->loc,
                          "found '" + l.first->text + "', expected a sensitivity level" +
                              (m_m.sensitivities.empty() ? " (no `sensitivity` is declared)" : "") +
                              (l.has_categories || l.second ? "" : " or an integrity level"));
                return;
            }
        }
        if (l.has_categories) {
            if (!sens_done) {
                m_d.error(l.loc, "categories follow a sensitivity level");
                return;
            }
            for (const ast::Name& c : l.categories) {
                int ci = find(m_m.categories, c.text);
                if (ci < 0) {
                    m_d.error(c.loc, "found '" + c.text + "', expected a declared category" +
                                         (m_m.categories.empty() ? " (no `categories` are declared)"
                                                                 : ""));
                    return;
                }
                d.categories |= uint64_t{1} << ci;
            }
        }
        if (l.second) {
            int i = find(m_m.integrity_levels, l.second->text);
            if (i < 0) {
                m_d.error(
                    l.second->loc,
                    "found '" + l.second->text + "', expected an integrity level" +
                        (m_m.integrity_levels.empty() ? " (no `integrity` is declared)" : ""));
                return;
            }
            d.integrity = static_cast<uint8_t>(i);
        }
    }

    void machine(const ast::Machine& m) {
        auto li = label(m.label);
        if (!li)
            return;
        if (auto prev = m_machines.find(*li); prev != m_machines.end()) {
            m_d.error(m.loc, "label " + m.label.text + " already has a machine (at " +
                                 where(m_machine_decl[prev->second]->loc) + ")");
            return;
        }
        if (m_m.labels[*li].kind != sec::LabelKind::Resource) {
            m_d.error(m.label.loc, "found domain " + m.label.text +
                                       ", expected a resource label (machines are on resources)");
            return;
        }
        MachineDef def;
        def.label = *li;
        std::map<std::string, ast::Loc> seen;
        for (const ast::Name& s : m.states) {
            if (auto p = seen.find(s.text); p != seen.end()) {
                m_d.error(s.loc,
                          "state " + s.text + " is already listed (at " + where(p->second) + ")");
                return;
            }
            seen.emplace(s.text, s.loc);
            def.states.push_back(s.text);
        }
        if (def.states.empty() || def.states.size() > 32) {
            m_d.error(m.loc, "found a machine of " + std::to_string(def.states.size()) +
                                 " states, expected 1 to 32");
            return;
        }
        auto it = std::find(def.states.begin(), def.states.end(), m.initial.text);
        if (it == def.states.end()) {
            m_d.error(m.initial.loc,
                      "found '" + m.initial.text + "', expected one of the machine's states");
            return;
        }
        def.initial = static_cast<uint32_t>(it - def.states.begin());
        m_machines.emplace(*li, static_cast<uint32_t>(m_m.machines.size()));
        m_machine_decl.push_back(&m);
        m_m.machines.push_back(std::move(def));
    }

    std::optional<uint32_t> state_of(uint32_t label, const ast::Name& s) {
        const MachineDef& md = m_m.machines[m_machines.at(label)];
        auto it = std::find(md.states.begin(), md.states.end(), s.text);
        if (it == md.states.end()) {
            std::string all;
            for (const std::string& x : md.states)
                all.append(all.empty() ? "" : ", ").append(x);
            m_d.error(s.loc, "found '" + s.text + "', expected a state of " +
                                 m_m.labels[label].name + " (" + all + ")");
            return std::nullopt;
        }
        return static_cast<uint32_t>(it - md.states.begin());
    }

    // The methods (with their field lists) a rule names.
    struct Target {
        OpRef op;
        std::string name; // "vfs.File.open"
        const std::vector<idl::Field>* fields;
        const idl::Method* method = nullptr; // Request/Response rules
    };

    bool resolve_what(const ast::Rule& r, Kind kind, std::vector<Target>* out) {
        const ast::What& w = r.what;
        static const std::vector<idl::Field> kNoFields;
        if (kind == Kind::Execute) {
            out->push_back(Target{{0, 0}, "execute", &execute_method().request});
            return true;
        }
        std::vector<ast::Name> prefix = w.path;
        std::vector<ast::Name> members;
        if (w.kind == ast::What::Kind::Single) {
            members.push_back(prefix.back());
            prefix.pop_back();
        } else if (w.kind == ast::What::Kind::List) {
            members = w.members;
        }
        std::string owner;
        for (const ast::Name& n : prefix)
            owner += (owner.empty() ? "" : ".") + n.text;
        if (kind == Kind::Security) {
            if (prefix.size() != 1) {
                m_d.error(w.loc, "found '" + owner + "', expected a class name (class.perm)");
                return false;
            }
            auto c = m_classes.find(owner);
            if (c == m_classes.end()) {
                m_d.error(w.loc, "found '" + owner + "', expected a declared class" +
                                     (m_classes.empty()
                                          ? " (declare it: class " + owner + " { perm: read, ... })"
                                          : ""));
                return false;
            }
            const ClassDef& cd = m_m.classes[c->second.first];
            if (w.kind == ast::What::Kind::All) {
                for (uint32_t i = 0; i < cd.perms.size(); ++i)
                    out->push_back(
                        Target{{c->second.first, i}, owner + "." + cd.perms[i].name, &kNoFields});
                return true;
            }
            bool ok = true;
            for (const ast::Name& m : members) {
                auto it = std::find_if(cd.perms.begin(), cd.perms.end(),
                                       [&](const PermDef& p) { return p.name == m.text; });
                if (it == cd.perms.end()) {
                    std::string all;
                    for (const PermDef& p : cd.perms)
                        all.append(all.empty() ? "" : ", ").append(p.name);
                    std::string msg = "found '" + m.text + "', expected a permission of class ";
                    msg.append(owner).append(" (").append(all).append(")");
                    m_d.error(m.loc, msg);
                    ok = false;
                    continue;
                }
                out->push_back(
                    Target{{c->second.first, static_cast<uint32_t>(it - cd.perms.begin())},
                           owner + "." + m.text,
                           &kNoFields});
            }
            return ok;
        }
        const idl::Interface* in = m_m.idl.find(owner);
        if (!in) {
            // An idl statement already failed: this is most likely one of
            // its interfaces, so say nothing more about it.
            if (m_idl_failed)
                return false;
            m_d.error(w.loc,
                      "found '" + owner + "', expected an interface declared by an idl file" +
                          (m_m.idl.interfaces.empty() ? " (no idl statement loaded any)" : ""));
            return false;
        }
        auto fields_of = [&](const idl::Method& m) {
            return kind == Kind::Request ? &m.request : &m.response;
        };
        if (w.kind == ast::What::Kind::All) {
            for (const idl::Method& m : in->methods)
                out->push_back(Target{{in->id, m.id}, owner + "." + m.name, fields_of(m), &m});
            return true;
        }
        bool ok = true;
        for (const ast::Name& mn : members) {
            const idl::Method* m = in->find_method(mn.text);
            if (!m) {
                std::string all;
                for (const idl::Method& x : in->methods)
                    all.append(all.empty() ? "" : ", ").append(x.name);
                std::string msg = "found '" + mn.text + "', expected a method of ";
                msg.append(owner).append(" (").append(all).append(")");
                m_d.error(mn.loc, msg);
                ok = false;
                continue;
            }
            out->push_back(Target{{in->id, m->id}, owner + "." + m->name, fields_of(*m), m});
        }
        return ok;
    }

    // Checks one condition against every method and lowers it.
    bool condition(const ast::Condition& c, Kind kind, const std::vector<Target>& targets,
                   ConditionDef* out) {
        using AOp = ast::Condition::Op;
        using Op = ConditionDef::Op;
        out->field = c.field.text;
        out->where = where(c.field.loc);
        if (kind == Kind::Security) {
            m_d.error(c.field.loc,
                      "found a condition, expected none: security queries carry no fields");
            return false;
        }
        // `grant.size` / `grant.write`: the memory a request lends, on
        // methods that declare a grant in the IDL.
        bool grant_size = c.field.text == kGrantSizeField;
        bool grant_cond = grant_size || c.field.text == kGrantWriteField;
        std::vector<sec::FieldType> types;
        if (grant_cond) {
            if (kind != Kind::Request) {
                m_d.error(c.field.loc,
                          "found '" + c.field.text + "' in " +
                              (kind == Kind::Execute ? "an execute" : "a response") +
                              " rule, expected it in a request rule: only a request lends memory");
                return false;
            }
            for (const Target& t : targets) {
                if (!t.method || t.method->grant == idl::Grant::None) {
                    m_d.error(c.field.loc,
                              "found '" + c.field.text + "' for " + t.name +
                                  ", expected a method that declares a grant ([grant read N] or "
                                  "[grant write N] in its IDL): " + t.name + " lends none");
                    return false;
                }
                types.push_back(grant_size ? sec::FieldType::U64 : sec::FieldType::Bool);
            }
        }
        // Every method must have the field, with one kind of type.
        for (const Target& t : targets) {
            if (grant_cond)
                break;
            auto it = std::find_if(t.fields->begin(), t.fields->end(),
                                   [&](const idl::Field& f) { return f.name == c.field.text; });
            if (it == t.fields->end()) {
                std::string all;
                for (const idl::Field& f : *t.fields)
                    all.append(all.empty() ? "" : ", ").append(f.name);
                bool lends = kind == Kind::Request && t.method && t.method->grant != idl::Grant::None;
                if (lends)
                    all.append(all.empty() ? "" : ", ").append("grant.size, grant.write");
                m_d.error(c.field.loc, "found field '" + c.field.text + "', expected a field of " +
                                           t.name + (kind == Kind::Response ? "'s response" : "") +
                                           (all.empty() ? " (it has none)" : " (" + all + ")"));
                return false;
            }
            types.push_back(to_field_type(it->type));
        }
        enum class Cat : uint8_t { Integer, String, Ip };
        auto cat_of = [](sec::FieldType t) {
            return is_integer_type(t)        ? Cat::Integer
                   : t == sec::FieldType::Ip ? Cat::Ip
                                             : Cat::String;
        };
        Cat cat = cat_of(types[0]);
        for (size_t i = 1; i < types.size(); ++i) {
            if (cat_of(types[i]) != cat) {
                m_d.error(c.field.loc, "field '" + c.field.text + "' is " +
                                           field_type_name(types[0]) + " in " + targets[0].name +
                                           " but " + field_type_name(types[i]) + " in " +
                                           targets[i].name + ": one condition cannot test both");
                return false;
            }
        }
        const char* tname = field_type_name(types[0]);
        auto op_error = [&](const std::string& allowed) {
            m_d.error(c.op_loc, "found an operator that does not apply to field '" + c.field.text +
                                    "' (" + tname + "), expected " + allowed);
            return false;
        };
        auto value_error = [&](const ast::Value& v, const std::string& expected) {
            static const char* names[] = {"an integer", "a string", "an address", "a range"};
            m_d.error(v.loc, std::string("found ") + names[static_cast<int>(v.kind)] +
                                 ", expected " + expected + " (field '" + c.field.text + "' is " +
                                 tname + ")");
            return false;
        };
        auto int_bits = [&](const ast::Value& v, bool hi, uint64_t* bits) {
            bool neg = hi ? v.hi_negative : v.negative;
            uint64_t mag = hi ? v.hi_magnitude : v.magnitude;
            if (grant_size && (neg || mag > sec::kMaxGrantSize)) {
                m_d.error(v.loc, "found " + std::string(neg ? "-" : "") + std::to_string(mag) +
                                     ", expected a grant size of 0 to " +
                                     std::to_string(sec::kMaxGrantSize) + " bytes (64 MiB)");
                return false;
            }
            for (sec::FieldType t : types) {
                std::string why;
                if (!integer_fits(t, neg, mag, bits, &why)) {
                    m_d.error(v.loc, "found " + std::string(neg ? "-" : "") + std::to_string(mag) +
                                         ", expected " + why);
                    return false;
                }
            }
            return true;
        };
        bool negate =
            c.op == AOp::Ne || c.op == AOp::NotIn || c.op == AOp::NotGlob || c.op == AOp::NotRegex;
        switch (cat) {
        case Cat::Integer: {
            if (c.op == AOp::Glob || c.op == AOp::NotGlob || c.op == AOp::Regex ||
                c.op == AOp::NotRegex)
                return op_error("== != < <= > >= or in");
            bool any_range = false;
            for (const ast::Value& v : c.values) {
                if (v.kind != ast::Value::Kind::Int && v.kind != ast::Value::Kind::Range)
                    return value_error(v, "an integer");
                any_range |= v.kind == ast::Value::Kind::Range;
            }
            if (c.op == AOp::In || c.op == AOp::NotIn) {
                if (c.values.empty()) {
                    m_d.error(c.op_loc, "found an empty set, expected at least one value");
                    return false;
                }
                out->op = any_range ? (negate ? Op::NotInRanges : Op::InRanges)
                                    : (negate ? Op::NotInSet : Op::InSet);
                bool is_signed = is_signed_type(types[0]);
                for (const ast::Value& v : c.values) {
                    uint64_t lo = 0, hi = 0;
                    if (!int_bits(v, false, &lo))
                        return false;
                    hi = lo;
                    if (v.kind == ast::Value::Kind::Range && !int_bits(v, true, &hi))
                        return false;
                    if (is_signed ? int64_t(lo) > int64_t(hi) : lo > hi) {
                        m_d.error(v.loc, "found an empty range, expected lo..hi with lo <= hi");
                        return false;
                    }
                    out->ints.push_back(static_cast<int64_t>(lo));
                    if (any_range)
                        out->ints.push_back(static_cast<int64_t>(hi));
                }
                return true;
            }
            if (any_range)
                return value_error(c.values[0], "one integer (write `in lo..hi` for a range)");
            uint64_t bits = 0;
            if (!int_bits(c.values[0], false, &bits))
                return false;
            static constexpr Op ops[] = {Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge};
            out->op = ops[static_cast<int>(c.op)];
            out->ints.push_back(static_cast<int64_t>(bits));
            return true;
        }
        case Cat::String: {
            uint32_t max = UINT32_MAX;
            bool any_bytes = false;
            for (const Target& t : targets)
                for (const idl::Field& f : *t.fields)
                    if (f.name == c.field.text) {
                        max = std::min(max, f.max_size);
                        any_bytes |= f.type == idl::Type::Bytes;
                    }
            (void)any_bytes;
            switch (c.op) {
            case AOp::Lt:
            case AOp::Le:
            case AOp::Gt:
            case AOp::Ge:
                return op_error("==, !=, in, glob or regex");
            case AOp::Glob:
            case AOp::NotGlob:
            case AOp::Regex:
            case AOp::NotRegex: {
                bool glob = c.op == AOp::Glob || c.op == AOp::NotGlob;
                const ast::Value& v = c.values[0];
                auto d = glob ? compile_glob(v.text, m_options.limits.dfa)
                              : compile_regex(v.text, m_options.limits.dfa);
                if (!d) {
                    m_d.error(v.loc, "found an invalid " + std::string(glob ? "glob" : "regex") +
                                         " pattern: " + d.error().message);
                    return false;
                }
                out->op =
                    glob ? (negate ? Op::NotGlob : Op::Glob) : (negate ? Op::NotRegex : Op::Regex);
                out->strings.push_back(v.text);
                return true;
            }
            default:
                break;
            }
            for (const ast::Value& v : c.values) {
                if (v.kind != ast::Value::Kind::String)
                    return value_error(v, "a quoted string");
                if (v.text.size() > max) {
                    m_d.error(v.loc, "found a string of " + std::to_string(v.text.size()) +
                                         " bytes, expected at most " + std::to_string(max) +
                                         " (the bound of field '" + c.field.text +
                                         "'): it could never match");
                    return false;
                }
                out->strings.push_back(v.text);
            }
            if (c.values.empty()) {
                m_d.error(c.op_loc, "found an empty set, expected at least one string");
                return false;
            }
            out->op = c.op == AOp::Eq   ? Op::BytesEq
                      : c.op == AOp::Ne ? Op::BytesNe
                      : c.op == AOp::In ? Op::BytesInSet
                                        : Op::BytesNotInSet;
            return true;
        }
        case Cat::Ip: {
            if (c.op != AOp::Eq && c.op != AOp::Ne && c.op != AOp::In && c.op != AOp::NotIn)
                return op_error("in, not in, == or !=");
            if (c.values.empty()) {
                m_d.error(c.op_loc, "found an empty set, expected at least one address");
                return false;
            }
            for (const ast::Value& v : c.values) {
                if (v.kind != ast::Value::Kind::Address)
                    return value_error(v, "an address or network (10.0.0.0/8, 2001:db8::/32)");
                sec::Cidr cidr;
                std::string why;
                bool prefix_ok = c.op == AOp::In || c.op == AOp::NotIn;
                if (!parse_address(v.text, prefix_ok, &cidr, &why)) {
                    m_d.error(v.loc, "found " + v.text + ", expected " + why);
                    return false;
                }
                out->cidrs.push_back(cidr);
            }
            out->op = negate ? Op::NotInCidr : Op::InCidr;
            return true;
        }
        }
        return false;
    }

    void rule(const ast::Rule& r) {
        size_t errors = m_d.count();
        RuleDef def;
        def.where = where(r.loc);
        def.text = r.text;
        def.effect = r.effect == ast::Rule::Effect::Allow   ? Effect::Allow
                     : r.effect == ast::Rule::Effect::Deny  ? Effect::Deny
                     : r.effect == ast::Rule::Effect::Limit ? Effect::Limit
                                                            : Effect::Transition;
        def.audit = r.audit == ast::Rule::AuditMode::Always  ? sec::Audit::Always
                    : r.audit == ast::Rule::AuditMode::Never ? sec::Audit::Never
                                                             : sec::Audit::Default;
        const std::string& k = r.kind.text;
        def.kind = k == "execute"    ? Kind::Execute
                   : k == "request"  ? Kind::Request
                   : k == "response" ? Kind::Response
                                     : Kind::Security;
        auto src = eval(r.sources);
        auto dst = eval(r.targets);
        if (src) {
            def.sources = std::move(*src);
            if (def.sources.empty())
                m_d.error(r.sources.loc,
                          "found a source set with no labels, expected at least one label");
        }
        if (dst) {
            def.targets = std::move(*dst);
            if (def.targets.empty())
                m_d.error(r.targets.loc,
                          "found a target set with no labels, expected at least one label");
        }
        std::vector<Target> targets;
        if (!resolve_what(r, def.kind, &targets) || m_d.count() != errors)
            return;
        if (def.kind != Kind::Execute)
            for (const Target& t : targets)
                def.ops.push_back(t.op);
        for (const ast::Condition& c : r.conditions) {
            ConditionDef cd;
            if (condition(c, def.kind, targets, &cd))
                def.conditions.push_back(std::move(cd));
        }
        if (r.when) {
            auto l = label(r.when->label);
            if (l) {
                if (!m_machines.count(*l)) {
                    m_d.error(r.when->label.loc,
                              "found " + r.when->label.text +
                                  ", expected a label with a machine (declare: machine " +
                                  r.when->label.text + " { ... } initial ...)");
                } else {
                    std::vector<uint32_t> states;
                    for (const ast::Name& s : r.when->states)
                        if (auto si = state_of(*l, s))
                            states.push_back(*si);
                    def.when = std::make_pair(*l, states);
                }
            }
        }
        if (def.effect == Effect::Transition) {
            if (def.kind == Kind::Execute) {
                m_d.error(
                    r.kind.loc,
                    "found execute, expected request, response or security (transitions move a "
                    "target resource's machine)");
                return;
            }
            std::optional<std::vector<uint32_t>> first_from;
            std::optional<uint32_t> first_to;
            for (uint32_t t : def.targets) {
                if (!m_machines.count(t)) {
                    m_d.error(r.targets.loc, "target " + m_m.labels[t].name +
                                                 " has no machine, expected every target "
                                                 "of a transition to have one");
                    return;
                }
                std::vector<uint32_t> from;
                for (const ast::Name& s : r.from_states) {
                    auto si = state_of(t, s);
                    if (!si)
                        return;
                    from.push_back(*si);
                }
                auto to = state_of(t, r.to_state);
                if (!to)
                    return;
                if ((first_from && *first_from != from) || (first_to && *first_to != *to)) {
                    m_d.error(r.to_state.loc,
                              "the targets' machines number these states differently; write one "
                              "transition per target");
                    return;
                }
                first_from = from;
                first_to = to;
            }
            def.from_states = first_from.value_or(std::vector<uint32_t>{});
            def.to_state = first_to.value_or(0);
        }
        if (def.effect == Effect::Limit) {
            const ast::Value& n = r.limit_count;
            if (n.negative || n.magnitude < 1 || n.magnitude > 1'000'000) {
                m_d.error(n.loc, "found " + std::string(n.negative ? "-" : "") +
                                     std::to_string(n.magnitude) +
                                     ", expected a count of 1 to 1000000");
                return;
            }
            constexpr uint64_t kHour = 3'600'000'000'000ull;
            if (r.limit_window_ns < 1'000'000 || r.limit_window_ns > kHour) {
                m_d.error(r.window_loc, "found a window of " + std::to_string(r.limit_window_ns) +
                                            " ns, expected 1ms to 1h");
                return;
            }
            def.limit_count = n.magnitude;
            def.limit_window_ns = r.limit_window_ns;
        }
        if (m_d.count() != errors)
            return;
        m_m.rules.push_back(std::move(def));
    }

    Sources& m_src;
    const CompileOptions& m_options;
    Diagnostics& m_d;
    PolicyModel& m_m;
    std::unordered_map<std::string, uint32_t> m_labels;
    std::map<std::string, SetState> m_sets;
    std::map<std::string, std::pair<uint32_t, std::string>> m_classes;
    std::string m_categories_where;
    std::map<uint32_t, std::string> m_levels;
    std::map<uint32_t, uint32_t> m_machines; // label -> machine index
    std::vector<const ast::Machine*> m_machine_decl;
    uint64_t m_set_work = 0;
    bool m_budget_reported = false;
    bool m_idl_failed = false;
};

// --- Tests ---------------------------------------------------------------------

// Resolves a step against the model (ids and field layouts from the IDL)
// and the engine (label, class and permission indices in the blob).
bool build_step(const ast::Step& s, const PolicyModel& m, const sec::Engine& e, BuiltRequest& out,
                Diagnostics& d) {
    const std::string& k = s.kind.text;
    sec::Request& r = out.request;
    r.kind = k == "execute"    ? Kind::Execute
             : k == "request"  ? Kind::Request
             : k == "response" ? Kind::Response
                               : Kind::Security;
    r.source = e.find_label(s.source.text.data(), static_cast<uint32_t>(s.source.text.size()));
    r.target = e.find_label(s.target.text.data(), static_cast<uint32_t>(s.target.text.size()));
    bool ok = true;
    if (r.source == sec::kNone) {
        d.error(s.source.loc, "found '" + s.source.text + "', expected a declared label");
        ok = false;
    }
    if (r.target == sec::kNone) {
        d.error(s.target.loc, "found '" + s.target.text + "', expected a declared label");
        ok = false;
    }
    std::vector<FieldSpec> specs;
    std::string method;
    if (r.kind == Kind::Execute) {
        specs = specs_of(execute_method().request);
        method = "execute";
    } else {
        std::string owner;
        for (size_t i = 0; i + 1 < s.what.path.size(); ++i)
            owner += (owner.empty() ? "" : ".") + s.what.path[i].text;
        const ast::Name& member = s.what.path.back();
        method = owner + "." + member.text;
        out.what = method;
        if (r.kind == Kind::Security) {
            r.a = e.find_class(owner.data(), static_cast<uint32_t>(owner.size()));
            if (r.a == sec::kNone) {
                d.error(s.what.loc, "found '" + owner + "', expected a declared class");
                return false;
            }
            r.b = e.find_perm(r.a, member.text.data(), static_cast<uint32_t>(member.text.size()));
            if (r.b == sec::kNone) {
                d.error(member.loc,
                        "found '" + member.text + "', expected a permission of class " + owner);
                return false;
            }
        } else {
            const idl::Interface* in = m.idl.find(owner);
            if (!in) {
                d.error(s.what.loc,
                        "found '" + owner + "', expected an interface declared by an idl file");
                return false;
            }
            const idl::Method* mt = in->find_method(member.text);
            if (!mt) {
                d.error(member.loc, "found '" + member.text + "', expected a method of " + owner);
                return false;
            }
            r.a = in->id;
            r.b = mt->id;
            specs = specs_of(r.kind == Kind::Request ? mt->request : mt->response);
            if (r.kind == Kind::Request && mt->grant != idl::Grant::None)
                add_grant_specs(specs, mt->grant_max, mt->grant == idl::Grant::Write);
        }
    }
    if (!fill_fields(s, specs, method, out, d))
        ok = false;
    return ok;
}

void run_tests(CompiledPolicy& out, const std::vector<std::pair<const ast::Test*, uint32_t>>& tests,
               Diagnostics& d) {
    if (tests.empty())
        return;
    sec::Engine engine;
    uint64_t state_size = sec::Engine::required_state_size(out.blob.data(), out.blob.size());
    std::vector<uint64_t> state((state_size + 7) / 8 + 1);
    sec::LoadError le =
        engine.load(out.blob.data(), out.blob.size(), state.data(), state.size() * 8);
    if (le != sec::LoadError::None) {
        d.error_at("", std::string("the compiled policy does not load: ") + sec::describe(le));
        return;
    }
    for (auto [t, file] : tests) {
        TestOutcome o;
        o.name = t->name;
        o.where = d.where(t->loc);
        engine.reset_state();
        uint64_t now = 0;
        for (const ast::Step& s : t->steps) {
            BuiltRequest br;
            if (!build_step(s, out.model, engine, br, d))
                continue;
            if (s.at_ns) {
                // The engine's clock is monotonic (rate buckets refill with it).
                if (*s.at_ns < now) {
                    d.error(s.loc, "found a time of " + std::to_string(*s.at_ns) +
                                       " ns, expected one no earlier than the step before (" +
                                       std::to_string(now) +
                                       " ns): time in a test only moves forward");
                    continue;
                }
                now = *s.at_ns;
            }
            br.request.now_ns = now;
            sec::Verdict v = engine.decide(br.request);
            ++o.steps;
            if (v.allow != s.expect_allow)
                o.failures.push_back(d.where(s.loc) + ": expected " +
                                     (s.expect_allow ? "allow" : "deny") + ", got " +
                                     (v.allow ? "allow" : "deny") + " by rule " +
                                     describe_rule(engine, v.rule));
        }
        out.tests.push_back(std::move(o));
    }
}

Result<CompiledPolicy> compile(const std::vector<std::string>& paths,
                               const std::vector<MemorySource>* memory,
                               const CompileOptions& options) {
    CompiledPolicy out;
    std::vector<std::string> names;
    Diagnostics d(&names);
    Sources sources(memory, options, d, names);
    if (memory) {
        // A bundle's .kidl files are its own interfaces: read by `idl`
        // statements, not policy text.
        for (const MemorySource& s : *memory)
            if (!s.name.ends_with(".kidl"))
                sources.load_top(s.name);
    } else {
        for (const std::string& p : paths)
            sources.load_top(p);
    }
    if (names.empty() && d.empty())
        return make_error(EINVAL, "no policy files given");
    // Resolution runs on a complete parse only: a statement dropped by a
    // syntax error would otherwise cause a cascade of unknown names.
    Resolver res(sources, options, d, out.model);
    if (d.empty())
        res.run();
    out.files = names;
    out.warnings = res.warnings;
    if (!d.empty())
        return std::unexpected(d.to_error());
    if (!options.build)
        return out;
    auto blob = build_policy(out.model, options.limits);
    if (!blob)
        return std::unexpected(blob.error());
    out.blob = std::move(*blob);
    if (options.run_tests)
        run_tests(out, res.tests, d);
    if (!d.empty())
        return std::unexpected(d.to_error());
    return out;
}

} // namespace

Result<CompiledPolicy> compile_policy_files(const std::vector<std::string>& paths,
                                            const CompileOptions& options) {
    return compile(paths, nullptr, options);
}

Result<CompiledPolicy> compile_policy_sources(const std::vector<MemorySource>& sources,
                                              const CompileOptions& options) {
    return compile({}, &sources, options);
}

Result<std::vector<uint8_t>> compile_bundle_policy(const std::string& domain,
                                                   const std::vector<MemorySource>& sources,
                                                   const CompileOptions& options) {
    CompileOptions o = options;
    o.domain = domain;
    o.build = true;
    o.run_tests = true;
    CompiledPolicy p = KOS_TRY(compile_policy_sources(sources, o));
    std::string failures;
    for (const TestOutcome& t : p.tests)
        for (const std::string& f : t.failures)
            failures += (failures.empty() ? "" : "\n") + f;
    if (!failures.empty())
        return make_error(EINVAL, "the policy's tests fail:\n" + failures);
    return std::move(p.blob);
}

} // namespace kos::policy
