/* Reads a rootfs file's first byte straight from the boot image mapping
 * (kos ABI: kRootfsMapBase), past the runtime's open(): the way a program
 * would try to read a file its label may not read. Prints "READ <byte>"
 * when the page is mapped; the kernel kills it (SIGSEGV) when it is not. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define BOOT_IMAGE ((const volatile unsigned char*)0x00007fe000000000ull)

static uint64_t u64_at(const volatile unsigned char* p) {
    uint64_t v;
    memcpy(&v, (const void*)p, sizeof v);
    return v;
}
static uint32_t u32_at(const volatile unsigned char* p) {
    uint32_t v;
    memcpy(&v, (const void*)p, sizeof v);
    return v;
}

int main(int argc, char** argv) {
    if (argc < 2)
        return 2;
    const volatile unsigned char* rootfs = BOOT_IMAGE + u64_at(BOOT_IMAGE + 40); /* rootfs_offset */
    uint32_t count = u32_at(rootfs + 24);
    uint64_t entries = u64_at(rootfs + 32), strings = u64_at(rootfs + 40);
    for (uint32_t i = 0; i < count; ++i) {
        const volatile unsigned char* e = rootfs + entries + 88ull * i;
        uint32_t path = u32_at(e), len = u32_at(e + 4);
        if (len != strlen(argv[1]) || memcmp((const void*)(rootfs + strings + path), argv[1], len) != 0)
            continue;
        uint64_t data = u64_at(e + 40);
        printf("found %s at %llu\n", argv[1], (unsigned long long)data);
        fflush(stdout);
        printf("READ %u\n", rootfs[data]);
        return 0;
    }
    printf("no such entry\n");
    return 3;
}
