#include "security_hook.h"

#include "../arch/x86_64/cpu.h"
#include "../arch/x86_64/platform.h"
#include "kos/base/string.h"
#include "kos/boot.h"
#include "kos/security/engine.h"
#include "kos/security/net_request.h"
#include "loader.h"
#include "panic.h"
#include "pmm.h"

namespace kos {
namespace {

namespace sec = security;
using abi::u32;
using abi::u64;
using abi::u8;

sec::Engine g_engine;
// The engine's state (limit buckets, machines, then as much verdict cache
// as the policy wants and fits). A policy whose limits and machines alone
// do not fit is refused at boot.
constexpr u64 kEngineStateBytes = 256 * 1024;
alignas(64) u64 g_engine_state[kEngineStateBytes / 8];
sec::AuditRecord g_audit_record;

u64 now_ns() { return monotonic_ns(); }

const char* label_text(const Task& t) { return t.label_name; }

// Reports a policy verdict marked for audit: the full record to the host
// (kos run renders it), or one line on the console under other VMMs.
void report(const char* what, const Task& src, const Task* dst, const Verdict& v) {
    if (platform::is_kos_vmm()) {
        platform::audit_record(platform::kernel_virt_to_phys(&g_audit_record));
        return;
    }
    const sec::Rule* r = g_engine.rule(v.policy_rule);
    u32 n = 0;
    const char* where = r ? g_engine.string(r->where, &n) : nullptr;
    char rule[128] = "?";
    if (where) {
        if (n >= sizeof rule)
            n = sizeof rule - 1;
        memcpy(rule, where, n);
        rule[n] = 0;
    }
    kprintf("kos: %s %s %s (%s) -> %s (%s) [rule %s]\n", v.allow ? "allowed" : "denied", what, src.name,
            label_text(src), dst ? dst->name : "-", dst ? label_text(*dst) : "-", rule);
}

} // namespace

const char* security_init() {
    const auto* bh = g_boot_image.header;
    if (bh->policy_size == 0)
        return nullptr;
    if (bh->policy_offset % abi::boot::kPageSize != 0 || bh->policy_offset > bh->total_size ||
        bh->policy_size > bh->total_size - bh->policy_offset)
        return "the compiled policy lies outside the boot image";
    if (bh->policy_offset < user_visible_image_size())
        return "the compiled policy overlaps the part of the boot image tasks can map";
    const auto* blob = static_cast<const u8*>(pmm::phys_to_virt(g_boot_image.pa + bh->policy_offset));
    sec::LoadError e = g_engine.load(blob, bh->policy_size, g_engine_state, sizeof g_engine_state);
    if (e != sec::LoadError::None)
        return sec::describe(e);
    return nullptr;
}

bool security_enforcing() { return g_engine.loaded(); }

const char* security_bind(Task& t) {
    if (!g_engine.loaded()) {
        t.policy_label = sec::kNone;
        return nullptr;
    }
    t.policy_label = g_engine.find_label(t.label_name, static_cast<u32>(strlen(t.label_name)));
    if (t.policy_label == sec::kNone)
        return "a process's label is not declared in the policy";
    return nullptr;
}

Verdict check_execute(const Task& subject, const Task& target, const char* program) {
    if (!g_engine.loaded())
        return {true, false, "no-policy", 0}; // a bare rootfs run: nothing to mediate
    sec::FieldValue fv{0, reinterpret_cast<const u8*>(program), static_cast<u32>(strlen(program))};
    sec::Request r{sec::Kind::Execute, subject.policy_label, target.policy_label, 0, 0, &fv, 1, now_ns()};
    sec::Verdict v = g_engine.decide(r);
    Verdict out{v.allow, v.audit, nullptr, v.rule};
    if (v.audit && g_engine.make_audit_record(r, v, g_audit_record))
        report("execute", subject, &target, out);
    return out;
}

namespace {

Verdict check_message(sec::Kind kind, const Task& src, const Task& dst, const Channel& ch,
                      const abi::ipc::MessageHeader& h, u64 grant_size, bool grant_write) {
    if (h.interface_id != ch.interface_id)
        return {false, true, "channel-interface", 0};
    if (!g_engine.loaded())
        return {false, true, "no-policy", 0};
    grant_write = grant_write && grant_size != 0; // an empty grant lends nothing to write
    if (grant_size) {
        // The IDL's declaration bounds what the policy may allow.
        Verdict g = check_grant(h, grant_size, grant_write);
        if (!g.allow)
            return g;
    }
    const u8* payload = reinterpret_cast<const u8*>(&h + 1);
    u64 now = now_ns();
    sec::Verdict v = g_engine.decide_message(kind, src.policy_label, dst.policy_label, h, payload,
                                             h.payload_size, now, grant_size, grant_write);
    Verdict out{v.allow, v.audit, nullptr, v.rule};
    if (v.audit && g_engine.make_message_audit_record(kind, src.policy_label, dst.policy_label, h, payload,
                                                      h.payload_size, now, v, g_audit_record, grant_size,
                                                      grant_write))
        report(kind == sec::Kind::Request ? "request" : "response", src, &dst, out);
    return out;
}

} // namespace

Verdict check_request(const Task& src, const Channel& ch, const abi::ipc::MessageHeader& h, u64 grant_size,
                      bool grant_write) {
    if (!src.origin || src.origin->index >= 64 || !((ch.clients >> src.origin->index) & 1))
        return {false, true, "channel-endpoints", 0};
    return check_message(sec::Kind::Request, src, *ch.server, ch, h, grant_size, grant_write);
}

Verdict check_response(const Task& server, const Task& client, const Channel& ch,
                       const abi::ipc::MessageHeader& h) {
    if (&server != ch.server)
        return {false, true, "channel-endpoints", 0};
    return check_message(sec::Kind::Response, server, client, ch, h, 0, false);
}

Verdict check_grant(const abi::ipc::MessageHeader& h, u64 size, bool write) {
    const sec::Interface* in = g_engine.interface_by_id(h.interface_id);
    const sec::Method* m = in ? g_engine.method(*in, h.method_id) : nullptr;
    if (!m || (m->grant != 1 && m->grant != 2))
        return {false, true, "undeclared-grant", 0};
    if (write && m->grant != 2)
        return {false, true, "grant-direction", 0};
    if (size > u64{m->grant_pages} * 4096)
        return {false, true, "grant-size", 0};
    return {true, false, nullptr, 0};
}

Verdict check_net(const Task& subject, bool connect, const u8* ip, abi::u16 port, abi::u8 proto) {
    if (!g_engine.loaded())
        return {false, true, "no-policy", 0};
    static u32 net_label = g_engine.find_label(sec::kNetLabel, sizeof sec::kNetLabel - 1);
    sec::NetRequest r;
    if (connect)
        sec::make_net_connect(r, subject.policy_label, net_label, ip, port, proto, now_ns());
    else
        sec::make_net_bind(r, subject.policy_label, net_label, ip, port, now_ns());
    sec::Verdict v = g_engine.decide(r.request);
    Verdict out{v.allow, v.audit, nullptr, v.rule};
    if (v.audit && g_engine.make_audit_record(r.request, v, g_audit_record))
        report(connect ? "connect" : "bind", subject, nullptr, out);
    return out;
}

u32 security_label_id(const char* name, u32 len) {
    return g_engine.loaded() ? g_engine.find_label(name, len) : sec::kNone;
}

Verdict check_file(const Task& subject, u32 label, bool write) {
    if (!g_engine.loaded())
        return {false, true, "no-policy", 0};
    static u32 file_class = g_engine.find_class("file", 4);
    static u32 read_perm = file_class == sec::kNone ? sec::kNone : g_engine.find_perm(file_class, "read", 4);
    static u32 write_perm = file_class == sec::kNone ? sec::kNone : g_engine.find_perm(file_class, "write", 5);
    if ((write ? write_perm : read_perm) == sec::kNone) {
        // The policy does not speak of files: nothing of a volume is allowed.
        Verdict out{false, true, "no-file-class", 0};
        audit_denied(write ? "file.write" : "file.read", subject, nullptr, nullptr, nullptr, out);
        return out;
    }
    sec::Request r{sec::Kind::Security, subject.policy_label, label, file_class, write ? write_perm : read_perm,
                   nullptr, 0, now_ns()};
    sec::Verdict v = g_engine.decide(r);
    Verdict out{v.allow, v.audit, nullptr, v.rule};
    if (v.audit && g_engine.make_audit_record(r, v, g_audit_record))
        report(write ? "file.write" : "file.read", subject, nullptr, out);
    return out;
}

Verdict check_signal(const Task& subject, const Task& target) {
    if (!g_engine.loaded())
        return {false, true, "no-policy", 0};
    static u32 process_class = g_engine.find_class("process", 7);
    static u32 signal_perm =
        process_class == sec::kNone ? sec::kNone : g_engine.find_perm(process_class, "signal", 6);
    if (signal_perm == sec::kNone) {
        Verdict out{false, true, "no-process-class", 0};
        audit_denied("process.signal", subject, &target, nullptr, nullptr, out);
        return out;
    }
    sec::Request r{sec::Kind::Security, subject.policy_label, target.policy_label, process_class, signal_perm,
                   nullptr, 0, now_ns()};
    sec::Verdict v = g_engine.decide(r);
    Verdict out{v.allow, v.audit, nullptr, v.rule};
    if (v.audit && g_engine.make_audit_record(r, v, g_audit_record))
        report("process.signal", subject, &target, out);
    return out;
}

u32 handle_field_offsets(bool request, const abi::ipc::MessageHeader& h, u32* offsets, u32 max) {
    const sec::Interface* in = g_engine.interface_by_id(h.interface_id);
    const sec::Method* m = in ? g_engine.method(*in, h.method_id) : nullptr;
    if (!m)
        return 0;
    u32 first = request ? m->request_field_first : m->response_field_first;
    u32 count = request ? m->request_field_count : m->response_field_count;
    u32 n = 0;
    for (u32 i = 0; i < count && n < max; ++i) {
        const sec::Field* f = g_engine.field(first + i);
        if (f && f->type == static_cast<u8>(sec::FieldType::Handle))
            offsets[n++] = f->offset;
    }
    return n;
}

abi::i64 security_resolve(Task& caller, abi::u64 what, abi::u64 name, abi::u64 len, abi::u64 cls) {
    if (!g_engine.loaded())
        return -38; // ENOSYS
    char buf[129];
    if (len == 0 || len > 128)
        return -22;
    if (!caller.as.copy_in(name, buf, len))
        return -14; // EFAULT
    u32 n = static_cast<u32>(len);
    u32 id = sec::kNone;
    switch (static_cast<abi::sys::SecurityName>(what)) {
    case abi::sys::SecurityName::Label: id = g_engine.find_label(buf, n); break;
    case abi::sys::SecurityName::Class: id = g_engine.find_class(buf, n); break;
    case abi::sys::SecurityName::Permission:
        id = cls > 0xffffffffu ? sec::kNone : g_engine.find_perm(static_cast<u32>(cls), buf, n);
        break;
    default: return -22;
    }
    return id == sec::kNone ? -2 : static_cast<abi::i64>(id); // ENOENT
}

abi::i64 security_query(Task& caller, abi::u64 subject_task, abi::u64 object, abi::u64 cls, abi::u64 perm) {
    if (!g_engine.loaded())
        return -38;
    Task* subject = subject_task < 0xffffffffu ? task_at(static_cast<u32>(subject_task)) : nullptr;
    if (!subject || object > 0xffffffffu || cls > 0xffffffffu || perm > 0xffffffffu)
        return -22;
    sec::Request r{sec::Kind::Security, subject->policy_label, static_cast<u32>(object), static_cast<u32>(cls),
                   static_cast<u32>(perm), nullptr, 0, now_ns()};
    sec::Verdict v = g_engine.decide(r);
    if (v.audit && g_engine.make_audit_record(r, v, g_audit_record)) {
        Verdict out{v.allow, v.audit, nullptr, v.rule};
        report("security", *subject, &caller, out);
    }
    return v.allow ? 0 : -13; // EACCES
}

void audit_denied(const char* what, const Task& src, const Task* dst, const Channel* ch,
                  const abi::ipc::MessageHeader* h, const Verdict& v) {
    if (!v.rule)
        return; // the policy decided: reported by check_* when it asked for an audit
    if (h && ch && dst)
        kprintf("kos: denied %s %s (%s) -> %s (%s): interface %u method %u on channel '%s' "
                "(declared for interface %u) [rule %s]\n",
                what, src.name, src.label_name, dst->name, dst->label_name, h->interface_id,
                h->method_id, ch->name, ch->interface_id, v.rule);
    else
        kprintf("kos: denied %s by %s (%s) [rule %s]\n", what, src.name, src.label_name, v.rule);
}

} // namespace kos
