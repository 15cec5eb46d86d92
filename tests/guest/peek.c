/* Looks for the compiled policy from inside the VM: the boot image is
 * mapped read-only at a fixed address of every Linux process (kos ABI:
 * kRootfsMapBase) for the runtime; the policy follows the rootfs in it and
 * must not be readable. Prints what it finds, then reads the policy's first
 * byte: the kernel kills the program (SIGSEGV) unless it is mapped. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define BOOT_IMAGE ((const volatile unsigned char*)0x00007fe000000000ull)

static uint64_t field(unsigned offset) {
    uint64_t v;
    memcpy(&v, (const void*)(BOOT_IMAGE + offset), sizeof v);
    return v;
}

int main(void) {
    if (memcmp((const void*)BOOT_IMAGE, "KOSBOOT1", 8) != 0) {
        printf("no boot image header\n");
        return 2;
    }
    uint64_t policy = field(128), policy_size = field(136); /* BootImageHeader::policy_offset, _size */
    printf("boot image header readable; policy at %llu (%llu bytes)\n", (unsigned long long)policy,
           (unsigned long long)policy_size);
    fflush(stdout);
    if (policy_size == 0)
        return 3;
    unsigned char b = BOOT_IMAGE[policy];
    printf("POLICY READABLE: first byte %u\n", b);
    return 0;
}
