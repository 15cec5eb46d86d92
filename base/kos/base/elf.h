// ELF64 validation and program-header access for x86-64 images.
//
// Used by the VMM (loading the kernel), the kernel (loading the personality
// runtime) and the runtime (loading applications), so every loader checks the
// same things. Freestanding; every accessor is bounds-checked against the
// file size before use.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace kos::elf {

inline constexpr uint16_t kTypeExec = 2;
inline constexpr uint16_t kTypeDyn = 3;
inline constexpr uint16_t kMachineX86_64 = 62;
inline constexpr uint32_t kPtLoad = 1;
inline constexpr uint32_t kPtDynamic = 2;
inline constexpr uint32_t kPtInterp = 3;
inline constexpr uint32_t kPtNote = 4;
inline constexpr uint32_t kPtPhdr = 6;
inline constexpr uint32_t kPtTls = 7;
inline constexpr uint32_t kPtGnuStack = 0x6474e551;
inline constexpr uint32_t kPfX = 1;
inline constexpr uint32_t kPfW = 2;
inline constexpr uint32_t kPfR = 4;

struct Ehdr {
    uint8_t ident[16];
    uint16_t type;
    uint16_t machine;
    uint32_t version;
    uint64_t entry;
    uint64_t phoff;
    uint64_t shoff;
    uint32_t flags;
    uint16_t ehsize;
    uint16_t phentsize;
    uint16_t phnum;
    uint16_t shentsize;
    uint16_t shnum;
    uint16_t shstrndx;
};
static_assert(sizeof(Ehdr) == 64);

struct Phdr {
    uint32_t type;
    uint32_t flags;
    uint64_t offset;
    uint64_t vaddr;
    uint64_t paddr;
    uint64_t filesz;
    uint64_t memsz;
    uint64_t align;
};
static_assert(sizeof(Phdr) == 56);

struct Nhdr {
    uint32_t namesz;
    uint32_t descsz;
    uint32_t type;
};

enum class Error {
    None,
    TooSmall,
    NotElf,
    Not64Bit,
    NotLittleEndian,
    WrongMachine,
    NotExecutable,
    BadProgramHeaders,
    SegmentOutOfFile,
    SegmentBadSize,
    SegmentOverflow,
    NoLoadableSegment,
    Dynamic,
};

constexpr const char* error_string(Error e) {
    switch (e) {
    case Error::None: return "ok";
    case Error::TooSmall: return "file too small to be an ELF executable";
    case Error::NotElf: return "not an ELF file (bad magic)";
    case Error::Not64Bit: return "not a 64-bit ELF file (32-bit programs are not supported)";
    case Error::NotLittleEndian: return "not a little-endian ELF file";
    case Error::WrongMachine: return "ELF file for another architecture (kos runs x86-64 programs)";
    case Error::NotExecutable: return "ELF file is not an executable (ET_EXEC or ET_DYN)";
    case Error::BadProgramHeaders: return "ELF program header table is malformed";
    case Error::SegmentOutOfFile: return "ELF segment extends past the end of the file";
    case Error::SegmentBadSize: return "ELF segment has a file size larger than its memory size";
    case Error::SegmentOverflow: return "ELF segment address range overflows";
    case Error::NoLoadableSegment: return "ELF file has no loadable segment";
    case Error::Dynamic: return "dynamically linked program (needs an ELF interpreter); only static programs are supported yet";
    }
    return "unknown ELF error";
}

class Image {
public:
    Image(const uint8_t* data, uint64_t size) : m_data(data), m_size(size) {}

    // Checks the header, the program header table and every PT_LOAD against
    // the file. With allow_interp false, a PT_INTERP is an error.
    Error validate(bool allow_interp = false) const {
        if (m_size < sizeof(Ehdr))
            return Error::TooSmall;
        const Ehdr& h = ehdr();
        if (h.ident[0] != 0x7f || h.ident[1] != 'E' || h.ident[2] != 'L' || h.ident[3] != 'F')
            return Error::NotElf;
        if (h.ident[4] != 2)
            return Error::Not64Bit;
        if (h.ident[5] != 1)
            return Error::NotLittleEndian;
        if (h.machine != kMachineX86_64)
            return Error::WrongMachine;
        if (h.type != kTypeExec && h.type != kTypeDyn)
            return Error::NotExecutable;
        if (h.phentsize != sizeof(Phdr) || h.phnum == 0 || h.phnum > 256 || h.phoff > m_size ||
            uint64_t(h.phnum) * sizeof(Phdr) > m_size - h.phoff || h.phoff % 8 != 0)
            return Error::BadProgramHeaders;
        bool any_load = false;
        for (uint16_t i = 0; i < h.phnum; ++i) {
            const Phdr& p = phdr(i);
            if (p.type == kPtInterp && !allow_interp)
                return Error::Dynamic;
            if (p.type != kPtLoad)
                continue;
            any_load = true;
            if (p.offset > m_size || p.filesz > m_size - p.offset)
                return Error::SegmentOutOfFile;
            if (p.filesz > p.memsz)
                return Error::SegmentBadSize;
            if (p.vaddr + p.memsz < p.vaddr || p.paddr + p.memsz < p.paddr)
                return Error::SegmentOverflow;
        }
        return any_load ? Error::None : Error::NoLoadableSegment;
    }

    const Ehdr& ehdr() const { return *reinterpret_cast<const Ehdr*>(m_data); }
    uint16_t phnum() const { return ehdr().phnum; }
    const Phdr& phdr(uint16_t i) const {
        return reinterpret_cast<const Phdr*>(m_data + ehdr().phoff)[i];
    }
    const uint8_t* data() const { return m_data; }
    uint64_t size() const { return m_size; }

    // Finds a note (name, type) in PT_NOTE segments; returns its descriptor
    // or nullptr. Bounds-checked.
    const uint8_t* find_note(const char* name, uint32_t type, uint32_t* desc_size) const {
        uint32_t name_len = 0;
        while (name[name_len])
            ++name_len;
        for (uint16_t i = 0; i < phnum(); ++i) {
            const Phdr& p = phdr(i);
            if (p.type != kPtNote || p.offset > m_size || p.filesz > m_size - p.offset)
                continue;
            uint64_t off = p.offset, end = p.offset + p.filesz;
            while (end - off >= sizeof(Nhdr)) {
                // Notes in an untrusted file need not be aligned: copy.
                Nhdr note;
                __builtin_memcpy(&note, m_data + off, sizeof note);
                const Nhdr* n = &note;
                uint64_t name_sz = (uint64_t(n->namesz) + 3) & ~3ull;
                uint64_t desc_sz = (uint64_t(n->descsz) + 3) & ~3ull;
                uint64_t body = off + sizeof(Nhdr);
                if (name_sz > end - body || desc_sz > end - body - name_sz)
                    break;
                const char* nm = reinterpret_cast<const char*>(m_data + body);
                bool match = n->type == type && n->namesz == name_len + 1;
                for (uint32_t k = 0; match && k < name_len; ++k)
                    match = nm[k] == name[k];
                if (match) {
                    *desc_size = n->descsz;
                    return m_data + body + name_sz;
                }
                off = body + name_sz + desc_sz;
            }
        }
        return nullptr;
    }

private:
    const uint8_t* m_data;
    uint64_t m_size;
};

} // namespace kos::elf
