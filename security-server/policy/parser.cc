#include "kos/policy/parser.h"

#include "kos/policy/lexer.h"

namespace kos::policy {

// --- Diagnostics -----------------------------------------------------------

void Diagnostics::error(ast::Loc loc, const std::string& message) {
    error_at(where(loc), message);
}

void Diagnostics::error_at(const std::string& where, const std::string& message) {
    if (full()) {
        m_dropped = true;
        return;
    }
    m_messages.push_back(where.empty() ? message : where + ": " + message);
}

std::string Diagnostics::where(ast::Loc loc) const {
    std::string f = m_files && loc.file < m_files->size() ? (*m_files)[loc.file] : "<input>";
    return f + ":" + std::to_string(loc.line) + ":" + std::to_string(loc.column);
}

Error Diagnostics::to_error() const {
    std::string all;
    for (const std::string& m : m_messages)
        all += (all.empty() ? "" : "\n") + m;
    if (m_dropped)
        all += "\n(more errors not shown: fix these first)";
    return Error{EINVAL, all};
}

// --- Parser ------------------------------------------------------------------

namespace {

// Parses a duration (number + ns/us/ms/s/m/h) into nanoseconds.
bool duration_ns(const Token& t, uint64_t* out, std::string* why) {
    uint64_t n = 0;
    for (char c : t.text) {
        if (c < '0' || c > '9') {
            *why = "a decimal number of a unit";
            return false;
        }
        if (n > (UINT64_MAX - 9) / 10) {
            *why = "a duration of at most 1h";
            return false;
        }
        n = n * 10 + static_cast<uint64_t>(c - '0');
    }
    uint64_t unit = 0;
    if (t.suffix == "ns" || (t.suffix.empty() && n == 0))
        unit = 1;
    else if (t.suffix == "us")
        unit = 1000;
    else if (t.suffix == "ms")
        unit = 1000000;
    else if (t.suffix == "s")
        unit = 1000000000ull;
    else if (t.suffix == "m")
        unit = 60ull * 1000000000ull;
    else if (t.suffix == "h")
        unit = 3600ull * 1000000000ull;
    else {
        *why = "a duration with a unit (ms, s, m or h)";
        return false;
    }
    if (n > UINT64_MAX / unit) {
        *why = "a shorter duration";
        return false;
    }
    *out = n * unit;
    return true;
}

bool number_value(const std::string& text, uint64_t* out) {
    uint64_t v = 0;
    bool hex = text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X');
    if (text.size() == 2 && hex)
        return false;
    for (size_t i = hex ? 2 : 0; i < text.size(); ++i) {
        char c = text[i];
        uint64_t d = c >= '0' && c <= '9'   ? static_cast<uint64_t>(c - '0')
                     : c >= 'a' && c <= 'f' ? static_cast<uint64_t>(c - 'a' + 10)
                                            : static_cast<uint64_t>(c - 'A' + 10);
        uint64_t base = hex ? 16 : 10;
        if (v > (UINT64_MAX - d) / base)
            return false;
        v = v * base + d;
    }
    *out = v;
    return true;
}

class Parser {
  public:
    Parser(std::string_view text, uint32_t file, Diagnostics& d) : m_src(text), m_d(d) {
        m_t = lex(text, file);
    }

    ast::File file() {
        ast::File f;
        while (!m_d.full()) {
            skip_newlines();
            if (at_end())
                break;
            if (cur().kind == Tok::Error) {
                if (m_reported_error != m_i)
                    m_d.error(cur().loc, cur().text);
                break;
            }
            size_t before = m_d.count(), start = m_i;
            if (!statement(f) || m_d.count() != before)
                recover(start);
        }
        skip_newlines();
        if (m_d.full() && !at_end())
            m_d.truncated();
        return f;
    }

    std::optional<ast::Step> request_line() {
        skip_newlines();
        ast::Step s;
        if (cur().kind == Tok::Error) {
            m_d.error(cur().loc, cur().text);
            return std::nullopt;
        }
        if (is_ident("at") && !at_clause(s))
            return std::nullopt;
        s.loc = cur().loc;
        if (!step_body(s))
            return std::nullopt;
        skip_newlines();
        if (!at_end()) {
            found("the end of the request");
            return std::nullopt;
        }
        return s;
    }

  private:
    // --- token access ---
    const Token& cur() const { return m_t[m_i]; }
    const Token& peek(size_t n = 1) const { return m_t[std::min(m_i + n, m_t.size() - 1)]; }
    bool at_end() const { return cur().kind == Tok::End; }
    void advance() {
        if (!at_end())
            ++m_i;
    }
    bool is_sym(std::string_view s) const { return cur().kind == Tok::Sym && cur().text == s; }
    bool is_ident(std::string_view s) const { return cur().kind == Tok::Ident && cur().text == s; }
    bool at_line_end() const { return cur().kind == Tok::Newline || cur().kind == Tok::End; }
    void skip_newlines() {
        while (cur().kind == Tok::Newline)
            advance();
    }
    // Reports "found <current token>, expected <what>"; always false.
    bool found(const std::string& expected) {
        if (cur().kind == Tok::Error) {
            if (m_reported_error != m_i)
                m_d.error(cur().loc, cur().text);
            m_reported_error = m_i;
        } else {
            m_d.error(cur().loc, "found " + describe(cur()) + ", expected " + expected);
        }
        return false;
    }
    bool expect_sym(std::string_view s) {
        if (!is_sym(s))
            return found("'" + std::string(s) + "'");
        advance();
        return true;
    }
    bool expect_keyword(std::string_view s) {
        if (!is_ident(s))
            return found("'" + std::string(s) + "'");
        advance();
        return true;
    }
    bool end_of_statement() {
        if (!at_line_end())
            return found("the end of the line");
        return true;
    }
    // Skips what is left of a statement (or test step) that began at token
    // `from`: to the end of its line, or past the braces it left open (so
    // an unclosed list reports one error, not one per line).
    void recover(size_t from) {
        long depth = 0;
        for (size_t i = from; i < m_i && i < m_t.size(); ++i) {
            if (m_t[i].kind == Tok::Sym && m_t[i].text == "{")
                ++depth;
            else if (m_t[i].kind == Tok::Sym && m_t[i].text == "}")
                --depth;
        }
        while (!at_end() && cur().kind != Tok::Error &&
               !(depth <= 0 && cur().kind == Tok::Newline)) {
            if (is_sym("{"))
                ++depth;
            else if (is_sym("}"))
                --depth;
            advance();
        }
        if (cur().kind == Tok::Error) {
            if (m_reported_error != m_i)
                m_d.error(cur().loc, cur().text);
            m_reported_error = m_i;
            while (!at_end())
                advance();
        }
    }

    bool name(ast::Name* out, const std::string& what) {
        if (cur().kind != Tok::Ident)
            return found(what);
        out->text = cur().text;
        out->loc = cur().loc;
        advance();
        return true;
    }

    // A field name in a condition or a test step: a name, or `grant.size` /
    // `grant.write` (properties of the request, not payload fields; the
    // resolver says which names a method has).
    bool field_name(ast::Name* out, const std::string& what) {
        if (!name(out, what))
            return false;
        if (out->text == "grant" && is_sym(".")) {
            advance();
            ast::Name member;
            if (!name(&member, "size or write (grant.size, grant.write)"))
                return false;
            out->text += "." + member.text;
        }
        return true;
    }

    bool string(std::string* out, const std::string& what) {
        if (cur().kind != Tok::String)
            return found(what);
        *out = cur().text;
        advance();
        return true;
    }

    // `{ item, item, ... }` with newlines allowed inside.
    template <class F> bool braced(F&& item, const std::string& what) {
        if (!expect_sym("{"))
            return false;
        size_t n = 0;
        while (true) {
            skip_newlines();
            if (is_sym("}")) {
                advance();
                return true;
            }
            if (++n > kMaxListItems) {
                m_d.error(cur().loc, "found a list of more than " + std::to_string(kMaxListItems) +
                                         " items, expected a shorter list");
                return false;
            }
            if (!item())
                return false;
            skip_newlines();
            if (is_sym(",")) {
                advance();
                continue;
            }
            if (is_sym("}")) {
                advance();
                return true;
            }
            return found("',' or '}' after " + what);
        }
    }

    bool name_list(std::vector<ast::Name>* out, const std::string& what) {
        return braced(
            [&] {
                ast::Name n;
                if (!name(&n, what))
                    return false;
                out->push_back(std::move(n));
                return true;
            },
            what);
    }

    // name, name, ... (at least one) up to the end of the line
    bool comma_names(std::vector<ast::Name>* out, const std::string& what) {
        while (true) {
            ast::Name n;
            if (!name(&n, what))
                return false;
            out->push_back(std::move(n));
            if (!is_sym(","))
                return true;
            advance();
        }
    }

    bool set_expr(ast::SetExpr* out) {
        out->loc = cur().loc;
        char op = '+';
        while (true) {
            ast::SetTerm t;
            t.op = op;
            t.loc = cur().loc;
            if (is_ident("any")) {
                t.kind = ast::SetTerm::Kind::Any;
                advance();
            } else if (cur().kind == Tok::Ident) {
                t.kind = ast::SetTerm::Kind::Name;
                ast::Name n;
                name(&n, "");
                t.names.push_back(std::move(n));
            } else if (is_sym("{")) {
                t.kind = ast::SetTerm::Kind::List;
                if (!name_list(&t.names, "a label or set name"))
                    return false;
            } else {
                return found("a label, a set name, 'any' or '{'");
            }
            out->terms.push_back(std::move(t));
            if (out->terms.size() > kMaxListItems)
                return found("a shorter set expression");
            if (is_sym("+") || is_sym("-")) {
                op = cur().text[0];
                advance();
                continue;
            }
            return true;
        }
    }

    // iface.method | iface.{a, b} | iface.* (and class.perm ...)
    bool what(ast::What* out, bool security) {
        out->loc = cur().loc;
        std::string expected =
            security ? "a class name (class.perm)" : "an interface name (package.Interface.method)";
        ast::Name n;
        if (!name(&n, expected))
            return false;
        out->path.push_back(std::move(n));
        while (is_sym(".")) {
            advance();
            if (is_sym("*")) {
                advance();
                out->kind = ast::What::Kind::All;
                return true;
            }
            if (is_sym("{")) {
                out->kind = ast::What::Kind::List;
                return name_list(&out->members, security ? "a permission name" : "a method name");
            }
            if (!name(&n, security ? "a permission name, '{' or '*'" : "a name, '{' or '*'"))
                return false;
            out->path.push_back(std::move(n));
            if (out->path.size() > 64)
                return found("a shorter name");
        }
        if (out->path.size() < 2) {
            m_d.error(out->loc,
                      "found '" + out->path[0].text + "', expected " +
                          (security ? "class.perm, class.{...} or class.*"
                                    : "interface.method, interface.{...} or interface.*"));
            return false;
        }
        out->kind = ast::What::Kind::Single;
        return true;
    }

    bool int_value(ast::Value* v) {
        v->loc = cur().loc;
        v->kind = ast::Value::Kind::Int;
        if (is_sym("-")) {
            v->negative = true;
            advance();
        }
        if (cur().kind != Tok::Number || !cur().suffix.empty() ||
            !number_value(cur().text, &v->magnitude))
            return found(cur().kind == Tok::Number ? "an integer of at most 64 bits"
                                                   : "an integer");
        if (v->negative && v->magnitude == 0)
            v->negative = false;
        advance();
        return true;
    }

    // An integer (optionally negative), a string, an address, true/false.
    bool value(ast::Value* v, bool allow_range) {
        v->loc = cur().loc;
        if (cur().kind == Tok::String) {
            v->kind = ast::Value::Kind::String;
            v->text = cur().text;
            advance();
            return true;
        }
        if (cur().kind == Tok::Address) {
            v->kind = ast::Value::Kind::Address;
            v->text = cur().text;
            advance();
            return true;
        }
        if (is_ident("true") || is_ident("false")) {
            v->kind = ast::Value::Kind::Int;
            v->magnitude = is_ident("true");
            advance();
            return true;
        }
        if (cur().kind != Tok::Number && !is_sym("-"))
            return found(allow_range ? "a value (integer, range, string or address)"
                                     : "a value (integer, string or address)");
        if (!int_value(v))
            return false;
        if (allow_range && is_sym("..")) {
            advance();
            ast::Value hi;
            if (!int_value(&hi))
                return false;
            v->kind = ast::Value::Kind::Range;
            v->hi_negative = hi.negative;
            v->hi_magnitude = hi.magnitude;
        }
        return true;
    }

    bool condition(ast::Condition* c) {
        if (!field_name(&c->field, "a field name"))
            return false;
        c->op_loc = cur().loc;
        using Op = ast::Condition::Op;
        static constexpr std::pair<std::string_view, Op> cmp[] = {{"==", Op::Eq}, {"!=", Op::Ne},
                                                                  {"<", Op::Lt},  {"<=", Op::Le},
                                                                  {">", Op::Gt},  {">=", Op::Ge}};
        for (auto [s, op] : cmp) {
            if (is_sym(s)) {
                advance();
                c->op = op;
                ast::Value v;
                if (!value(&v, false))
                    return false;
                c->values.push_back(std::move(v));
                return true;
            }
        }
        bool negate = false;
        if (is_ident("not")) {
            negate = true;
            advance();
        }
        if (is_ident("glob") || is_ident("regex")) {
            bool glob = is_ident("glob");
            c->op = glob ? (negate ? Op::NotGlob : Op::Glob) : (negate ? Op::NotRegex : Op::Regex);
            advance();
            ast::Value v;
            v.loc = cur().loc;
            v.kind = ast::Value::Kind::String;
            if (!string(&v.text, glob ? "a quoted glob pattern" : "a quoted regular expression"))
                return false;
            c->values.push_back(std::move(v));
            return true;
        }
        if (is_ident("in")) {
            advance();
            c->op = negate ? Op::NotIn : Op::In;
            if (is_sym("{")) {
                c->braced = true;
                return braced(
                    [&] {
                        ast::Value v;
                        if (!value(&v, true))
                            return false;
                        c->values.push_back(std::move(v));
                        return true;
                    },
                    "a value");
            }
            ast::Value v;
            if (!value(&v, true))
                return false;
            c->values.push_back(std::move(v));
            return true;
        }
        return found(negate ? "'in', 'glob' or 'regex' after 'not'"
                            : "an operator (== != < <= > >= in, not in, glob, regex)");
    }

    bool when_clause(ast::When* w) {
        w->loc = cur().loc;
        advance(); // when
        if (!name(&w->label, "a label with a machine"))
            return false;
        if (!expect_keyword("is"))
            return false;
        if (is_sym("{"))
            return name_list(&w->states, "a state name");
        ast::Name s;
        if (!name(&s, "a state name or '{'"))
            return false;
        w->states.push_back(std::move(s));
        return true;
    }

    std::string rule_text(uint32_t begin, uint32_t end) const {
        std::string out;
        bool in_string = false, space = false;
        for (uint32_t i = begin; i < end && i < m_src.size(); ++i) {
            char c = m_src[i];
            if (in_string) {
                out += c;
                if (c == '\\' && i + 1 < end) {
                    out += m_src[++i];
                } else if (c == '"') {
                    in_string = false;
                }
                continue;
            }
            if (c == '\\' && i + 1 < end &&
                (m_src[i + 1] == '\n' || m_src[i + 1] == ' ' || m_src[i + 1] == '\t' ||
                 m_src[i + 1] == '\r')) {
                space = true;
                continue;
            }
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                space = true;
                continue;
            }
            if (c == '#') { // a comment inside a continued rule: to the end of its line
                while (i < end && m_src[i] != '\n')
                    ++i;
                space = true;
                continue;
            }
            if (space && !out.empty())
                out += ' ';
            space = false;
            out += c;
            if (c == '"')
                in_string = true;
        }
        return out;
    }

    bool rule(ast::File& f) {
        ast::Rule r;
        r.loc = cur().loc;
        uint32_t begin = cur().begin;
        if (is_ident("audit") || is_ident("noaudit")) {
            r.audit =
                is_ident("audit") ? ast::Rule::AuditMode::Always : ast::Rule::AuditMode::Never;
            advance();
            if (!(is_ident("allow") || is_ident("deny") || is_ident("limit") ||
                  is_ident("transition")))
                return found("allow, deny, limit or transition");
        }
        const std::string& e = cur().text;
        r.effect = e == "allow"   ? ast::Rule::Effect::Allow
                   : e == "deny"  ? ast::Rule::Effect::Deny
                   : e == "limit" ? ast::Rule::Effect::Limit
                                  : ast::Rule::Effect::Transition;
        advance();
        if (!kind(&r.kind))
            return false;
        if (!set_expr(&r.sources) || !expect_sym("->") || !set_expr(&r.targets))
            return false;
        if (r.kind.text != "execute") {
            if (!what(&r.what, r.kind.text == "security"))
                return false;
        }
        if (r.effect == ast::Rule::Effect::Limit) {
            if (!int_value(&r.limit_count))
                return false;
            if (!expect_keyword("per"))
                return false;
            r.window_loc = cur().loc;
            std::string why;
            if (cur().kind != Tok::Number || !duration_ns(cur(), &r.limit_window_ns, &why))
                return found(why.empty() ? "a duration (1s, 500ms, 1m, 1h)" : why);
            advance();
        }
        if (r.effect == ast::Rule::Effect::Transition) {
            if (!expect_sym(":"))
                return false;
            if (is_sym("*") || is_ident("any")) {
                r.from_any = true;
                advance();
            } else if (is_sym("{")) {
                if (!name_list(&r.from_states, "a state name"))
                    return false;
            } else {
                ast::Name s;
                if (!name(&s, "a state name, '{', '*' or 'any'"))
                    return false;
                r.from_states.push_back(std::move(s));
            }
            if (!expect_sym("->") || !name(&r.to_state, "the new state's name"))
                return false;
        }
        if (is_ident("where")) {
            advance();
            while (true) {
                ast::Condition c;
                if (!condition(&c))
                    return false;
                r.conditions.push_back(std::move(c));
                if (r.conditions.size() > 256)
                    return found("at most 256 conditions");
                if (!is_ident("and"))
                    break;
                advance();
            }
        }
        if (is_ident("when")) {
            ast::When w;
            if (!when_clause(&w))
                return false;
            r.when = std::move(w);
        }
        if (!at_line_end()) {
            if (r.kind.text == "execute" && cur().kind == Tok::Ident && r.conditions.empty() &&
                !r.when)
                return found(
                    "'where', 'when' or the end of the line (execute rules name no method)");
            return found(r.conditions.empty() && !r.when ? "'where', 'when' or the end of the line"
                         : r.when                        ? "the end of the line"
                                                         : "'and', 'when' or the end of the line");
        }
        r.text = rule_text(begin, m_t[m_i - 1].end);
        f.statements.push_back(std::move(r));
        return true;
    }

    bool kind(ast::Name* k) {
        if (!(is_ident("execute") || is_ident("request") || is_ident("response") ||
              is_ident("security")))
            return found("a kind (execute, request, response or security)");
        return name(k, "");
    }

    bool at_clause(ast::Step& s) {
        advance(); // at
        uint64_t ns = 0;
        std::string why;
        if (cur().kind != Tok::Number || !duration_ns(cur(), &ns, &why))
            return found(why.empty() ? "a time (2s, 500ms)" : why);
        s.at_ns = ns;
        advance();
        return true;
    }

    // KIND SOURCE -> TARGET [WHAT] [field=value ...]
    bool step_body(ast::Step& s) {
        if (!kind(&s.kind))
            return false;
        if (!name(&s.source, "the source label") || !expect_sym("->") ||
            !name(&s.target, "the target label"))
            return false;
        if (s.kind.text != "execute") {
            if (!what(&s.what, s.kind.text == "security"))
                return false;
            if (s.what.kind != ast::What::Kind::Single) {
                m_d.error(
                    s.what.loc,
                    "found a list of members, expected one " +
                        std::string(s.kind.text == "security" ? "class.perm" : "interface.method") +
                        " in a test step");
                return false;
            }
        }
        while (cur().kind == Tok::Ident) {
            ast::FieldAssign a;
            if (!field_name(&a.field, ""))
                return false;
            if (!expect_sym("="))
                return false;
            if (!value(&a.value, false))
                return false;
            s.fields.push_back(std::move(a));
            if (s.fields.size() > 256)
                return found("at most 256 field values");
        }
        if (!at_line_end())
            return found("field=value or the end of the line");
        return true;
    }

    bool test(ast::File& f) {
        ast::Test t;
        t.loc = cur().loc;
        advance();
        if (!string(&t.name, "the test's name in quotes"))
            return false;
        if (!expect_sym("{"))
            return false;
        if (!at_line_end())
            return found("the end of the line after '{'");
        while (!m_d.full()) {
            skip_newlines();
            if (is_sym("}")) {
                advance();
                break;
            }
            if (at_end() || cur().kind == Tok::Error) {
                found("'}' closing the test started at line " + std::to_string(t.loc.line));
                f.statements.push_back(std::move(t));
                return false;
            }
            size_t before = m_d.count(), start = m_i;
            ast::Step s;
            bool ok = true;
            if (is_ident("at"))
                ok = at_clause(s);
            if (ok) {
                s.loc = cur().loc;
                ok = expect_keyword("expect");
            }
            if (ok) {
                s.verdict_loc = cur().loc;
                if (is_ident("allow") || is_ident("deny")) {
                    s.expect_allow = is_ident("allow");
                    advance();
                } else {
                    ok = found("allow or deny");
                }
            }
            if (ok)
                ok = step_body(s);
            if (ok && m_d.count() == before)
                t.steps.push_back(std::move(s));
            else
                recover(start);
        }
        f.statements.push_back(std::move(t));
        return end_of_statement();
    }

    bool statement(ast::File& f) {
        if (cur().kind != Tok::Ident)
            return found(
                "a statement (include, idl, domain, resource, trusted, set, class, sensitivity, "
                "categories, integrity, level, machine, allow, deny, limit, transition, test)");
        const std::string kw = cur().text;
        ast::Loc loc = cur().loc;
        if (kw == "include" || kw == "idl") {
            advance();
            std::string path;
            if (!string(&path, "a quoted file path"))
                return false;
            if (kw == "include")
                f.statements.push_back(ast::Include{path, loc});
            else
                f.statements.push_back(ast::Idl{path, loc});
            return end_of_statement();
        }
        if (kw == "domain" || kw == "resource") {
            advance();
            ast::LabelDecl d;
            d.resource = kw == "resource";
            d.loc = loc;
            if (!comma_names(&d.names, "a label name"))
                return false;
            f.statements.push_back(std::move(d));
            return end_of_statement();
        }
        if (kw == "trusted") {
            advance();
            ast::Trusted t;
            t.loc = loc;
            if (!set_expr(&t.labels))
                return false;
            // `trusted a, b, c`: a list is the union of its items.
            while (is_sym(",")) {
                advance();
                ast::SetExpr more;
                if (!set_expr(&more))
                    return false;
                for (ast::SetTerm& term : more.terms)
                    t.labels.terms.push_back(std::move(term));
                if (t.labels.terms.size() > kMaxListItems)
                    return found("a shorter list");
            }
            f.statements.push_back(std::move(t));
            return end_of_statement();
        }
        if (kw == "set") {
            advance();
            ast::SetDef s;
            s.loc = loc;
            if (!name(&s.name, "the set's name") || !expect_sym("=") || !set_expr(&s.expr))
                return false;
            f.statements.push_back(std::move(s));
            return end_of_statement();
        }
        if (kw == "class") {
            advance();
            ast::ClassDecl c;
            c.loc = loc;
            if (!name(&c.name, "the class's name"))
                return false;
            bool ok = braced(
                [&] {
                    ast::Perm p;
                    if (!name(&p.name, "a permission name") || !expect_sym(":") ||
                        !name(&p.flow, "a flow (read, write, readwrite or none)"))
                        return false;
                    c.perms.push_back(std::move(p));
                    return true;
                },
                "a permission");
            if (!ok)
                return false;
            f.statements.push_back(std::move(c));
            return end_of_statement();
        }
        if (kw == "sensitivity" || kw == "integrity" || kw == "categories") {
            advance();
            ast::Family fam;
            fam.loc = loc;
            fam.kind = kw == "sensitivity" ? ast::Family::Kind::Sensitivity
                       : kw == "integrity" ? ast::Family::Kind::Integrity
                                           : ast::Family::Kind::Categories;
            std::string sep = fam.kind == ast::Family::Kind::Categories ? "," : "<";
            while (true) {
                ast::Name n;
                if (!name(&n, fam.kind == ast::Family::Kind::Categories ? "a category name"
                                                                        : "a level name"))
                    return false;
                fam.names.push_back(std::move(n));
                if (fam.names.size() > 256)
                    return found("at most 256 names");
                if (!is_sym(sep))
                    break;
                advance();
            }
            f.statements.push_back(std::move(fam));
            if (!at_line_end())
                return found("'" + sep + "' or the end of the line");
            return true;
        }
        if (kw == "level") {
            advance();
            ast::Level l;
            l.loc = loc;
            if (!name(&l.label, "a label name"))
                return false;
            ast::Name first;
            if (!name(&first, "a sensitivity or integrity level"))
                return false;
            l.first = first;
            if (is_sym(":")) {
                advance();
                l.has_categories = true;
                if (!name_list(&l.categories, "a category name"))
                    return false;
            }
            if (cur().kind == Tok::Ident) {
                ast::Name second;
                name(&second, "");
                l.second = second;
            }
            f.statements.push_back(std::move(l));
            return end_of_statement();
        }
        if (kw == "machine") {
            advance();
            ast::Machine m;
            m.loc = loc;
            if (!name(&m.label, "a resource label") || !name_list(&m.states, "a state name") ||
                !expect_keyword("initial") || !name(&m.initial, "the initial state"))
                return false;
            f.statements.push_back(std::move(m));
            return end_of_statement();
        }
        if (kw == "audit" || kw == "noaudit" || kw == "allow" || kw == "deny" || kw == "limit" ||
            kw == "transition")
            return rule(f);
        if (kw == "test")
            return test(f);
        return found(
            "a statement (include, idl, domain, resource, trusted, set, class, sensitivity, "
            "categories, integrity, level, machine, allow, deny, limit, transition, test)");
    }

    std::string_view m_src;
    Diagnostics& m_d;
    std::vector<Token> m_t;
    size_t m_i = 0;
    size_t m_reported_error = SIZE_MAX; // the Tok::Error already reported
};

} // namespace

ast::File parse_policy(std::string_view text, uint32_t file, Diagnostics& diags) {
    Parser p(text, file, diags);
    return p.file();
}

std::optional<ast::Step> parse_request_line(std::string_view text, uint32_t file,
                                            Diagnostics& diags) {
    Parser p(text, file, diags);
    return p.request_line();
}

} // namespace kos::policy
