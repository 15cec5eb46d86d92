#include "vmm.h"

#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "kos/base/elf.h"
#include "kos/boot.h"
#include "kos/hypercall.h"
#include "kos/pvh.h"
#include "file_service.h"
#include "jail.h"
#include "kvm.h"
#include "net_service.h"

extern "C" const unsigned char kos_guest_image[];
extern "C" const unsigned char kos_guest_image_end[];

namespace kos::vmm {

std::span<const uint8_t> embedded_guest_image() {
    return {kos_guest_image, static_cast<size_t>(kos_guest_image_end - kos_guest_image)};
}

namespace {

namespace boot = abi::boot;
namespace pvh = abi::pvh;
namespace hc = abi::hc;

uint64_t now_ns(clockid_t clock = CLOCK_MONOTONIC) {
    timespec ts{};
    ::clock_gettime(clock, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// An anonymous host mapping that backs guest memory.
class Mapping {
public:
    static Result<Mapping> create(uint64_t size) {
        void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            return make_error(errno, "cannot reserve " + std::to_string(size >> 20) +
                                         " MiB of guest memory: " + errno_string(errno));
        return Mapping(static_cast<uint8_t*>(p), size);
    }
    Mapping(Mapping&& o) noexcept : m_ptr(std::exchange(o.m_ptr, nullptr)), m_size(o.m_size) {}
    ~Mapping() {
        if (m_ptr)
            ::munmap(m_ptr, m_size);
    }
    uint8_t* data() const { return m_ptr; }
    uint64_t size() const { return m_size; }

private:
    Mapping(uint8_t* p, uint64_t s) : m_ptr(p), m_size(s) {}
    uint8_t* m_ptr;
    uint64_t m_size;
};

// Guest RAM at GPA 0: every access from a guest-supplied address goes
// through in_ram(), so no guest value can reach outside the mapping.
struct GuestRam {
    uint8_t* base;
    uint64_t size;
    bool in_ram(uint64_t gpa, uint64_t len) const { return gpa <= size && len <= size - gpa; }
    uint8_t* at(uint64_t gpa) const { return base + gpa; }
};

// All guest memory the VMM reads on the guest's behalf: RAM, and the
// read-only boot image slot (console output may come straight from file
// pages the guest maps without copying).
struct GuestMemory {
    GuestRam ram;
    const uint8_t* image = nullptr;
    uint64_t image_gpa = 0;
    uint64_t image_size = 0;
    const uint8_t* readable(uint64_t gpa, uint64_t len) const {
        if (ram.in_ram(gpa, len))
            return ram.at(gpa);
        if (gpa >= image_gpa && gpa - image_gpa <= image_size && len <= image_size - (gpa - image_gpa))
            return image + (gpa - image_gpa);
        return nullptr;
    }
};

Result<uint64_t> load_kernel(const GuestRam& ram, std::span<const uint8_t> image) {
    elf::Image img(image.data(), image.size());
    if (elf::Error err = img.validate(); err != elf::Error::None)
        return make_error(ENOEXEC, std::string("guest image: ") + elf::error_string(err));
    for (uint16_t i = 0; i < img.phnum(); ++i) {
        const elf::Phdr& ph = img.phdr(i);
        if (ph.type != elf::kPtLoad)
            continue;
        if (ph.paddr < boot::kKernelPaddr || !ram.in_ram(ph.paddr, ph.memsz))
            return make_error(ENOEXEC, "guest image: segment at physical address " +
                                           std::to_string(ph.paddr) + " does not fit guest RAM");
        std::memcpy(ram.at(ph.paddr), image.data() + ph.offset, ph.filesz);
        std::memset(ram.at(ph.paddr + ph.filesz), 0, ph.memsz - ph.filesz);
    }
    return img.ehdr().entry;
}

// Identity map of the first GiB plus the same GiB at -2 GiB, 2 MiB pages;
// the kernel replaces these with its own tables at once.
void build_boot_page_tables(const GuestRam& ram) {
    auto* pml4 = reinterpret_cast<uint64_t*>(ram.at(boot::kBootPml4Paddr));
    auto* pdpt = reinterpret_cast<uint64_t*>(ram.at(boot::kBootPml4Paddr + 0x1000));
    auto* pd = reinterpret_cast<uint64_t*>(ram.at(boot::kBootPml4Paddr + 0x2000));
    std::memset(pml4, 0, 0x3000);
    pml4[0] = (boot::kBootPml4Paddr + 0x1000) | 3;
    pml4[511] = (boot::kBootPml4Paddr + 0x1000) | 3;
    pdpt[0] = (boot::kBootPml4Paddr + 0x2000) | 3;
    pdpt[510] = (boot::kBootPml4Paddr + 0x2000) | 3;
    for (uint64_t i = 0; i < 512; ++i)
        pd[i] = (i << 21) | 0x83;
}

void write_start_info(const GuestRam& ram, uint64_t image_gpa, uint64_t image_size, uint32_t cpus) {
    uint64_t base = boot::kStartInfoPaddr;
    uint64_t modlist = base + 0x100, memmap = base + 0x200, cmdline = base + 0x400;
    pvh::StartInfo si{};
    si.magic = pvh::kStartInfoMagic;
    si.version = 1;
    si.nr_modules = 1;
    si.modlist_paddr = modlist;
    si.cmdline_paddr = cmdline;
    si.memmap_paddr = memmap;
    pvh::ModlistEntry mod{image_gpa, image_size, 0, 0};
    pvh::MemmapEntry map[3] = {
        {0, 0x9f000, pvh::kMemmapRam, 0},
        {0x100000, ram.size - 0x100000, pvh::kMemmapRam, 0},
        {image_gpa, image_size, pvh::kMemmapReserved, 0},
    };
    si.memmap_entries = 3;
    std::memcpy(ram.at(base), &si, sizeof si);
    std::memcpy(ram.at(modlist), &mod, sizeof mod);
    std::memcpy(ram.at(memmap), map, sizeof map);
    std::string line = "kos.vmm kos.cpus=" + std::to_string(cpus);
    std::memcpy(ram.at(cmdline), line.c_str(), line.size() + 1);
}

// 64-bit mode at `entry` on page tables `cr3`, with `rdi` and `rsp`.
Result<void> setup_long_mode(Vcpu& vcpu, uint64_t entry, uint64_t cr3, uint64_t rdi, uint64_t rsp = 0) {
    kvm_sregs s = KOS_TRY(vcpu.sregs());
    kvm_segment code{};
    code.base = 0;
    code.limit = 0xffffffff;
    code.selector = 0x08;
    code.type = 11; // execute/read, accessed
    code.present = 1;
    code.s = 1;
    code.l = 1;
    code.g = 1;
    kvm_segment data = code;
    data.selector = 0x10;
    data.type = 3; // read/write, accessed
    data.l = 0;
    data.db = 1;
    s.cs = code;
    s.ds = s.es = s.fs = s.gs = s.ss = data;
    s.cr3 = cr3;
    s.cr4 = 1u << 5;                                      // PAE
    s.cr0 = 0x80000000u | 0x10000u | 0x20u | 0x10u | 0x1u; // PG WP NE ET PE
    s.efer = 0x500 | 0x800 | 0x1;                         // LME LMA NXE SCE
    KOS_TRY(vcpu.set_sregs(s));
    kvm_regs r{};
    r.rip = entry;
    r.rflags = 2;
    r.rdi = rdi;
    r.rsp = rsp;
    KOS_TRY(vcpu.set_regs(r));
    return {};
}

// A further vCPU's start, asked by the guest kernel (hc::Op::StartCpu).
struct CpuStart {
    bool requested = false;
    uint64_t rip = 0, rsp = 0, cr3 = 0;
};

struct HypercallState {
    const GuestRam& ram;
    const GuestMemory& mem;
    const VmOptions& opts;
    NetService* net = nullptr;    // null: no networking
    FileService* files = nullptr; // null: no volumes
    uint64_t output_bytes = 0;
    std::atomic<bool> done = false;
    RunOutcome outcome;
    // One hypercall at a time: the guest kernel's lock serializes them,
    // and a guest that did not must not corrupt the VMM's state either.
    std::mutex mutex;
    // Further vCPUs wait here for their start (index 1 ..).
    std::condition_variable start_cv;
    CpuStart starts[boot::kMaxCpus];
};

// Handles one hypercall; returns an error only for conditions that end the
// run (panic, output limit). Malformed requests get a negative result.
// A service call page (NetCall, FileCall) at `gpa`: the service works on
// its own copy of the page and validates the segments against RAM itself;
// the page is copied back. ENOSYS when the VM has no such service.
template <class Call, class Service> int64_t serve_page(HypercallState& st, Service* service, uint64_t gpa) {
    if (!service)
        return -ENOSYS;
    if (!st.ram.in_ram(gpa, sizeof(Call)))
        return -EFAULT;
    Call call;
    std::memcpy(&call, st.ram.at(gpa), sizeof call);
    int64_t result =
        service->handle(call, NetGuestMemory{st.ram.base, st.ram.size, st.mem.image, st.mem.image_gpa, st.mem.image_size});
    std::memcpy(st.ram.at(gpa), &call, sizeof call);
    return result;
}

Result<void> handle_hypercall(HypercallState& st, int vcpu_fd, uint32_t block_gpa) {
    std::lock_guard lock(st.mutex);
    if (!st.ram.in_ram(block_gpa, sizeof(hc::HypercallBlock)))
        return make_error(EFAULT, "guest passed a hypercall block outside its memory (gpa " +
                                      std::to_string(block_gpa) + ")");
    hc::HypercallBlock b;
    std::memcpy(&b, st.ram.at(block_gpa), sizeof b);
    int64_t result = -EINVAL;
    switch (static_cast<hc::Op>(b.op)) {
    case hc::Op::ConsoleWrite: {
        uint64_t stream = b.args[0], gpa = b.args[1], len = b.args[2];
        const uint8_t* src = st.mem.readable(gpa, len);
        if ((stream != 1 && stream != 2) || len > hc::kMaxConsoleChunk || !src) {
            result = -EFAULT;
            break;
        }
        if (st.output_bytes + len > st.opts.output_limit) {
            return make_error(EFBIG, "the program's output reached the limit of " +
                                         std::to_string(st.opts.output_limit) +
                                         " bytes; the run was stopped");
        }
        st.output_bytes += len;
        KOS_TRY(write_all(stream == 1 ? st.opts.stdout_fd : st.opts.stderr_fd, src, len, "guest output"));
        result = static_cast<int64_t>(len);
        break;
    }
    case hc::Op::ConsoleRead: {
        uint64_t gpa = b.args[0], len = b.args[1];
        if (len > hc::kMaxConsoleChunk || !st.ram.in_ram(gpa, len)) {
            result = -EFAULT;
            break;
        }
        ssize_t n;
        do
            n = ::read(st.opts.stdin_fd, st.ram.at(gpa), len);
        while (n < 0 && errno == EINTR);
        result = n < 0 ? -errno : n;
        break;
    }
    case hc::Op::Exit:
        st.done = true;
        st.outcome.kind = b.args[0] == static_cast<uint64_t>(hc::ExitKind::Signaled) ||
                                  b.args[0] == static_cast<uint64_t>(hc::ExitKind::OutOfMemory)
                              ? RunOutcome::Kind::Signaled
                              : RunOutcome::Kind::Exited;
        st.outcome.out_of_memory = b.args[0] == static_cast<uint64_t>(hc::ExitKind::OutOfMemory);
        st.outcome.value = static_cast<int>(b.args[1] & 0xff);
        result = 0;
        break;
    case hc::Op::FpuSwitch: {
        // The guest kernel cannot restore FPU state in ring 0 on some nested
        // KVMs: save and load the vCPU's XSAVE area here.
        uint64_t save = b.args[0], load = b.args[1];
        constexpr uint64_t kArea = sizeof(kvm_xsave);
        if ((save && !st.ram.in_ram(save, kArea)) || (load && !st.ram.in_ram(load, kArea))) {
            result = -EFAULT;
            break;
        }
        result = 0;
        if (save && ::ioctl(vcpu_fd, KVM_GET_XSAVE, st.ram.at(save)) != 0)
            result = -errno;
        if (result == 0 && load && ::ioctl(vcpu_fd, KVM_SET_XSAVE, st.ram.at(load)) != 0)
            result = -errno;
        break;
    }
    case hc::Op::CopyPage: {
        uint64_t dst = b.args[0], src = b.args[1];
        if (dst % 4096 || src % 4096 || !st.ram.in_ram(dst, 4096) || !st.ram.in_ram(src, 4096)) {
            result = -EFAULT;
            break;
        }
        std::memmove(st.ram.at(dst), st.ram.at(src), 4096);
        result = 0;
        break;
    }
    case hc::Op::ZeroPage: {
        uint64_t pa = b.args[0];
        if (pa % 4096 || !st.ram.in_ram(pa, 4096)) {
            result = -EFAULT;
            break;
        }
        std::memset(st.ram.at(pa), 0, 4096);
        result = 0;
        break;
    }
    case hc::Op::Audit: {
        uint64_t gpa = b.args[0];
        if (!st.ram.in_ram(gpa, hc::kAuditRecordSize)) {
            result = -EFAULT;
            break;
        }
        if (st.opts.audit)
            st.opts.audit(std::span<const uint8_t>(st.ram.at(gpa), hc::kAuditRecordSize));
        result = 0;
        break;
    }
    case hc::Op::Net:
        result = serve_page<abi::net::NetCall>(st, st.net, b.args[0]);
        break;
    case hc::Op::File:
        result = serve_page<abi::file::FileCall>(st, st.files, b.args[0]);
        break;
    case hc::Op::StartCpu: {
        uint64_t cpu = b.args[0];
        if (cpu == 0 || cpu >= st.opts.cpus || st.starts[cpu].requested) {
            result = -EINVAL; // no such vCPU, or started already
            break;
        }
        st.starts[cpu] = {true, b.args[1], b.args[2], b.args[3]};
        st.start_cv.notify_all();
        result = 0;
        break;
    }
    case hc::Op::Panic: {
        uint64_t gpa = b.args[0], len = std::min<uint64_t>(b.args[1], hc::kMaxPanicMessage);
        std::string msg = st.ram.in_ram(gpa, len)
                              ? std::string(reinterpret_cast<const char*>(st.ram.at(gpa)), len)
                              : std::string("(message outside guest memory)");
        while (!msg.empty() && msg.back() == '\n')
            msg.pop_back();
        return make_error(EIO, "guest kernel stopped: " + msg);
    }
    default:
        result = -ENOSYS;
    }
    b.result = result;
    std::memcpy(st.ram.at(block_gpa) + offsetof(hc::HypercallBlock, result), &b.result,
                sizeof b.result);
    return {};
}

// SIGUSR1 interrupts KVM_RUN on the thread it is sent to: its handler sets
// that thread's immediate_exit, so KVM_RUN returns EINTR now or at its next
// entry (Documentation/virt/kvm/api.rst, "immediate_exit"). The watchdog,
// a POSIX timer, sends it to the first vCPU's thread twice a second (no
// extra thread), whose run loop then checks the limits and whether the
// guest halted for good; vCPU threads send it to each other when the run
// ends. The services' I/O threads block every signal.
thread_local kvm_run* t_run = nullptr;
thread_local volatile sig_atomic_t t_kicked = 0;
constexpr long kWatchdogPeriodNs = 500'000'000;

void on_kick(int) {
    t_kicked = 1;
    if (t_run)
        t_run->immediate_exit = 1;
}

class Watchdog {
public:
    // Ticks every 500 ms, or at the wall-time limit if that is sooner.
    Watchdog(kvm_run* run, uint64_t timeout_ms) {
        t_kicked = 0;
        t_run = run;
        struct sigaction sa{};
        sa.sa_handler = on_kick;
        sigemptyset(&sa.sa_mask);
        ::sigaction(SIGUSR1, &sa, nullptr); // no SA_RESTART: KVM_RUN returns EINTR
        sigevent sev{};
        sev.sigev_notify = SIGEV_THREAD_ID;
        sev.sigev_signo = SIGUSR1;
        sev._sigev_un._tid = ::gettid();
        if (::timer_create(CLOCK_MONOTONIC, &sev, &m_timer) != 0)
            return;
        m_armed = true;
        long period = kWatchdogPeriodNs;
        if (timeout_ms && timeout_ms * 1000000 < static_cast<uint64_t>(period))
            period = static_cast<long>(timeout_ms * 1000000);
        itimerspec its{};
        its.it_value.tv_nsec = period;
        its.it_interval.tv_nsec = period;
        ::timer_settime(m_timer, 0, &its, nullptr);
    }
    ~Watchdog() {
        if (m_armed)
            ::timer_delete(m_timer);
        t_run = nullptr;
    }
    // True once per timer tick (or kick from another vCPU).
    bool take_tick() {
        bool fired = t_kicked;
        t_kicked = 0;
        return fired;
    }

private:
    timer_t m_timer{};
    bool m_armed = false;
};

// A guest that halted with interrupts disabled can never run again (the
// in-kernel irqchip keeps HLT inside KVM, so there is no exit to see).
bool halted_for_good(const Vcpu& vcpu) {
    kvm_mp_state mp{};
    if (::ioctl(vcpu.fd(), KVM_GET_MP_STATE, &mp) != 0 || mp.mp_state != KVM_MP_STATE_HALTED)
        return false;
    auto regs = vcpu.regs();
    return regs && !(regs->rflags & (1u << 9));
}

} // namespace

// Handles the exit `vcpu` just made; an error ends the run.
Result<void> handle_exit(HypercallState& st, Vcpu& vcpu) {
    kvm_run* run = vcpu.run();
    switch (run->exit_reason) {
    case KVM_EXIT_IO: {
        if (run->io.port == hc::kPort && run->io.direction == KVM_EXIT_IO_OUT && run->io.size == 4 &&
            run->io.count == 1) {
            uint32_t gpa;
            std::memcpy(&gpa, reinterpret_cast<uint8_t*>(run) + run->io.data_offset, 4);
            return handle_hypercall(st, vcpu.fd(), gpa);
        }
        if (run->io.direction == KVM_EXIT_IO_IN) {
            // No device behind other ports: reads see a floating bus.
            std::memset(reinterpret_cast<uint8_t*>(run) + run->io.data_offset, 0xff,
                        static_cast<size_t>(run->io.size) * run->io.count);
        }
        return {};
    }
    case KVM_EXIT_HLT:
        return make_error(EIO, "the guest halted and can never continue\n" + vcpu.describe());
    case KVM_EXIT_SHUTDOWN:
        return make_error(EIO, "the guest triple-faulted (CPU reset)\n" + vcpu.describe());
    case KVM_EXIT_FAIL_ENTRY:
        return make_error(EIO, "KVM could not enter the guest (hardware reason " +
                                   std::to_string(run->fail_entry.hardware_entry_failure_reason) + ")\n" +
                                   vcpu.describe());
    case KVM_EXIT_INTERNAL_ERROR:
        return make_error(EIO, "KVM internal error (suberror " + std::to_string(run->internal.suberror) +
                                   ") while running the guest\n" + vcpu.describe());
    case KVM_EXIT_MMIO:
        return make_error(EFAULT, std::string("the guest ") + (run->mmio.is_write ? "wrote" : "read") +
                                      " unbacked memory at guest physical address " +
                                      std::to_string(run->mmio.phys_addr) + "\n" + vcpu.describe());
    default:
        return make_error(EIO, "unexpected VM exit (reason " + std::to_string(run->exit_reason) + ")\n" +
                                   vcpu.describe());
    }
}

// The vCPU threads of one run: the first is the caller's; the others start
// when the guest kernel asks. The first error (or the guest's exit) ends
// the run on all of them.
class VcpuThreads {
public:
    VcpuThreads(HypercallState& st, std::vector<Vcpu>& vcpus) : m_st(st), m_vcpus(vcpus) {
        m_first = ::pthread_self();
    }
    ~VcpuThreads() { join(); }

    // Starts a thread per further vCPU, each waiting for the guest's
    // StartCpu. `setup` runs first on each (the jail's filter).
    Result<void> launch(std::function<Result<void>()> setup) {
        for (uint32_t i = 1; i < m_vcpus.size(); ++i) {
            std::promise<Result<void>> started;
            auto ready = started.get_future();
            m_threads.emplace_back([this, i, &started, setup] {
                t_run = m_vcpus[i].run();
                Result<void> r = setup ? setup() : Result<void>{};
                bool ok = r.has_value();
                started.set_value(std::move(r));
                if (ok)
                    run_further(i);
            });
            Result<void> r = ready.get();
            if (!r)
                return std::unexpected(r.error());
        }
        return {};
    }

    // Ends the run on every vCPU: the first error wins.
    void stop(std::optional<Error> error) {
        {
            std::lock_guard lock(m_st.mutex);
            if (error && !m_error)
                m_error = std::move(error);
            m_st.done = true;
        }
        m_st.start_cv.notify_all();
        pthread_t self = ::pthread_self();
        if (!::pthread_equal(self, m_first))
            ::pthread_kill(m_first, SIGUSR1);
        for (std::thread& t : m_threads)
            if (!::pthread_equal(self, t.native_handle()))
                ::pthread_kill(t.native_handle(), SIGUSR1);
    }

    void join() {
        for (std::thread& t : m_threads)
            if (t.joinable())
                t.join();
        m_threads.clear();
    }

    std::optional<Error> error() {
        std::lock_guard lock(m_st.mutex);
        return m_error;
    }
    uint64_t further_exits() const { return m_exits; }

private:
    void run_further(uint32_t i) {
        Vcpu& vcpu = m_vcpus[i];
        CpuStart start;
        {
            std::unique_lock lock(m_st.mutex);
            m_st.start_cv.wait(lock, [&] { return m_st.starts[i].requested || m_st.done; });
            if (m_st.done)
                return;
            start = m_st.starts[i];
        }
        auto fail = [&](const std::string& what) {
            stop(Error{EIO, "vCPU " + std::to_string(i) + ": " + what});
        };
        if (auto r = setup_long_mode(vcpu, start.rip, start.cr3, i, start.rsp); !r)
            return fail(r.error().message);
        kvm_mp_state mp{KVM_MP_STATE_RUNNABLE};
        if (::ioctl(vcpu.fd(), KVM_SET_MP_STATE, &mp) != 0)
            return fail("KVM_SET_MP_STATE: " + errno_string(errno));
        while (!m_st.done) {
            if (::ioctl(vcpu.fd(), KVM_RUN, 0) != 0) {
                if (errno == EINTR || errno == EAGAIN) {
                    vcpu.run()->immediate_exit = 0;
                    continue;
                }
                return fail("KVM_RUN: " + errno_string(errno));
            }
            m_exits.fetch_add(1, std::memory_order_relaxed);
            if (auto r = handle_exit(m_st, vcpu); !r)
                return fail(r.error().message);
            if (m_st.done)
                stop(std::nullopt); // the guest's exit: the first vCPU ends the run
        }
    }

    HypercallState& m_st;
    std::vector<Vcpu>& m_vcpus;
    pthread_t m_first;
    std::vector<std::thread> m_threads;
    std::optional<Error> m_error;
    std::atomic<uint64_t> m_exits = 0;
};

Result<RunOutcome> run_vm(VmOptions opts) {
    uint64_t t0 = now_ns();
    if (opts.ram_bytes < (16ull << 20) || opts.ram_bytes > (64ull << 30) || opts.ram_bytes % 4096)
        return make_error(EINVAL, "guest memory must be between 16 MiB and 64 GiB");
    if (opts.boot_image.empty() || opts.boot_image.size() % 4096)
        return make_error(EINVAL, "internal error: boot image must be a non-empty multiple of 4 KiB");
    if (opts.cpus < 1 || opts.cpus > boot::kMaxCpus)
        return make_error(EINVAL, "a VM has 1 to " + std::to_string(boot::kMaxCpus) + " vCPUs, not " +
                                      std::to_string(opts.cpus));

    UniqueFd kvm = KOS_TRY(open_kvm());
    Vm vm = KOS_TRY(Vm::create(kvm.get()));
    Mapping ram_map = KOS_TRY(Mapping::create(opts.ram_bytes));
    Mapping image_map = KOS_TRY(Mapping::create(opts.boot_image.size()));
    GuestRam ram{ram_map.data(), ram_map.size()};

    // Clock and entropy for the guest, in the boot image header.
    auto* header = reinterpret_cast<boot::BootImageHeader*>(opts.boot_image.data());
    if (::getrandom(header->random_seed, sizeof header->random_seed, 0) !=
        static_cast<ssize_t>(sizeof header->random_seed))
        return make_error(errno, "getrandom: " + errno_string(errno));

    uint64_t entry = KOS_TRY(load_kernel(ram, opts.kernel_elf));
    build_boot_page_tables(ram);
    uint64_t image_gpa = boot::kImageSlotPaddr;
    if (opts.ram_bytes > image_gpa)
        image_gpa = (opts.ram_bytes + (1ull << 30) - 1) & ~((1ull << 30) - 1);
    write_start_info(ram, image_gpa, opts.boot_image.size(), opts.cpus);

    // Slots first, then the in-kernel irqchip (its local APIC timer drives
    // preemption; adding slots after it is slow on nested KVM), then the
    // vCPU. The boot image slot is read-only to the guest; its bytes are
    // copied in below, once the header is final.
    KOS_TRY(vm.add_memory(0, 0, ram.base, ram.size, false));
    bool ro = vm.has_cap(KVM_CAP_READONLY_MEM);
    KOS_TRY(vm.add_memory(1, image_gpa, image_map.data(), image_map.size(), ro));
    if (::ioctl(vm.fd(), KVM_CREATE_IRQCHIP, 0) != 0)
        return make_error(errno, "KVM_CREATE_IRQCHIP: " + errno_string(errno) +
                                     " (kos needs KVM's in-kernel interrupt controller)");
    // All vCPUs now (the further ones wait for the guest kernel to start
    // them), their TSCs set to 0 together, which KVM takes as synchronized.
    std::vector<Vcpu> vcpus;
    vcpus.reserve(opts.cpus);
    for (uint32_t i = 0; i < opts.cpus; ++i)
        vcpus.push_back(KOS_TRY(vm.create_vcpu(static_cast<int>(i))));
    Vcpu& vcpu = vcpus[0];
    KOS_TRY(setup_long_mode(vcpu, entry, boot::kBootPml4Paddr, boot::kStartInfoPaddr));

    int tsc_khz = ::ioctl(vcpu.fd(), KVM_GET_TSC_KHZ, 0);
    header->tsc_khz = tsc_khz > 0 ? static_cast<uint64_t>(tsc_khz) : 0;
    alignas(kvm_msrs) uint8_t msr_buf[sizeof(kvm_msrs) + sizeof(kvm_msr_entry)] = {};
    auto* msrs = reinterpret_cast<kvm_msrs*>(msr_buf);
    msrs->nmsrs = 1;
    msrs->entries[0].index = 0x10; // IA32_TIME_STAMP_COUNTER
    msrs->entries[0].data = 0;
    for (Vcpu& v : vcpus)
        ::ioctl(v.fd(), KVM_SET_MSRS, msrs);
    header->realtime_at_tsc0_ns = now_ns(CLOCK_REALTIME);
    std::memcpy(image_map.data(), opts.boot_image.data(), opts.boot_image.size());

    GuestMemory mem{ram, image_map.data(), image_gpa, image_map.size()};
    // The network service binds the published ports now: after the jail
    // nothing can be bound.
    std::unique_ptr<NetService> net;
    if (opts.network) {
        NetServiceOptions no;
        no.policy = opts.policy;
        no.publish = opts.publish;
        no.audit = opts.audit;
        no.max_sockets = opts.max_sockets;
        net = KOS_TRY(NetService::start(std::move(no)));
    }
    // The volumes' directories were opened by the caller; the file
    // service's ring is made now, before the jail.
    std::unique_ptr<FileService> files;
    if (!opts.volumes.empty()) {
        FileServiceOptions fo;
        fo.policy = opts.policy;
        fo.audit = opts.audit;
        fo.volumes = std::move(opts.volumes);
        files = KOS_TRY(FileService::start(std::move(fo)));
    }
    HypercallState st{ram, mem, opts, net.get(), files.get(), 0, false, {}, {}, {}, {}};
    kvm_run* run = vcpu.run();
    Watchdog watchdog(run, opts.wall_timeout_ms);
    VcpuThreads threads(st, vcpus);
    if (opts.jail) {
        JailOptions jo{vcpu.fd(), {}, opts.stdin_fd, opts.stdout_fd, opts.stderr_fd, opts.audit_fd};
        for (size_t i = 1; i < vcpus.size(); ++i)
            jo.more_vcpu_fds.push_back(vcpus[i].fd());
        if (net) {
            jo.net_wake_fd = net->wake_fd();
            jo.net_fds = net->max_host_fds();
            jo.net_connect = net->may_connect_out();
        }
        if (files) {
            jo.files = true;
            jo.file_fds = files->max_host_fds();
            for (auto [fd, writable] : files->volume_access())
                jo.volumes.push_back({fd, writable});
        }
        // Each service thread inherits the process-wide parts and installs
        // its own filter first thing.
        auto start_threads = [&]() -> Result<void> {
            if (net)
                KOS_TRY(net->launch([] { return install_io_thread_filter(); }));
            if (files)
                KOS_TRY(files->launch([] { return install_file_thread_filter(); }));
            KOS_TRY(threads.launch([&jo] { return install_seccomp_filter(jo); }));
            return {};
        };
        st.outcome.jail = KOS_TRY(enter_jail(jo, start_threads)).summary();
    } else {
        if (net)
            KOS_TRY(net->launch());
        if (files)
            KOS_TRY(files->launch());
        KOS_TRY(threads.launch(nullptr));
    }
    // From here on, an error ends the run on every vCPU first.
    auto fail = [&](Error e) -> Result<RunOutcome> {
        threads.stop(std::nullopt);
        threads.join();
        if (auto first = threads.error())
            return std::unexpected(*first);
        return std::unexpected(std::move(e));
    };
    uint64_t t1 = now_ns();
    st.outcome.setup_ns = t1 - t0;
    while (!st.done) {
        if (::ioctl(vcpu.fd(), KVM_RUN, 0) != 0) {
            if (watchdog.take_tick()) {
                run->immediate_exit = 0;
                if (st.done)
                    break; // another vCPU ended the run
                if (opts.wall_timeout_ms && now_ns() - t1 >= opts.wall_timeout_ms * 1000000) {
                    char limit[32];
                    std::snprintf(limit, sizeof limit, "%g", static_cast<double>(opts.wall_timeout_ms) / 1000);
                    return fail(Error{ETIMEDOUT, std::string("the run reached its wall-time limit of ") + limit +
                                                     " s and was stopped\n" + vcpu.describe()});
                }
                if (opts.cpu_time_ms) {
                    timespec cpu{};
                    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
                    uint64_t used_ms = static_cast<uint64_t>(cpu.tv_sec) * 1000 + static_cast<uint64_t>(cpu.tv_nsec) / 1000000;
                    if (used_ms >= opts.cpu_time_ms) {
                        char limit[32];
                        std::snprintf(limit, sizeof limit, "%g", static_cast<double>(opts.cpu_time_ms) / 1000);
                        return fail(Error{EDQUOT, std::string("the run used its CPU-time limit of ") + limit +
                                                      " s and was stopped\n" + vcpu.describe()});
                    }
                }
                // This vCPU only: an ioctl on another waits until that
                // thread leaves KVM_RUN (the vCPU's mutex).
                if (halted_for_good(vcpu))
                    return fail(Error{EIO, "the guest halted with interrupts disabled and can never "
                                           "continue\n" + vcpu.describe()});
                continue;
            }
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return fail(Error{errno, "KVM_RUN: " + errno_string(errno)});
        }
        ++st.outcome.exits;
        if (auto r = handle_exit(st, vcpu); !r)
            return fail(r.error());
    }
    threads.stop(std::nullopt);
    threads.join();
    if (auto error = threads.error())
        return std::unexpected(*error);
    st.outcome.exits += threads.further_exits();
    st.outcome.run_ns = now_ns() - t1;
    return st.outcome;
}

} // namespace kos::vmm
