/* Kernel entry points.
 *
 * kernel_entry64: the kos VMM enters here directly in 64-bit mode, with its
 *   own identity + high page tables, rdi = physical address of the PVH start
 *   info.
 * pvh_start32: the PVH entry (XEN_ELFNOTE_PHYS32_ENTRY) used by QEMU and other
 *   PVH VMMs: 32-bit protected mode, paging off, ebx = start info. It builds
 *   the same mappings from static tables and joins kernel_entry64.
 */
#define KERNEL_VIRT 0xffffffff80000000

  .section .note.Xen, "a"
  .balign 4
  .long 4                 /* namesz: "Xen\0" */
  .long 8                 /* descsz */
  .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
  .asciz "Xen"
  .balign 4
  .quad pvh_start32 - KERNEL_VIRT
  .balign 4

  .section .boot.text, "ax"
  .code32
  .globl pvh_start32
pvh_start32:
  cli
  cld
  mov %ebx, %esi
  mov $(boot_pml4 - KERNEL_VIRT), %eax
  mov %eax, %cr3
  mov %cr4, %eax
  or $0x20, %eax              /* CR4.PAE */
  mov %eax, %cr4
  mov $0xc0000080, %ecx       /* EFER */
  rdmsr
  or $0x900, %eax             /* LME | NXE */
  wrmsr
  mov %cr0, %eax
  or $0x80010001, %eax        /* PG | WP | PE */
  mov %eax, %cr0
  lgdt (boot_gdtr - KERNEL_VIRT)
  ljmp $0x08, $(pvh_long - KERNEL_VIRT)

  .code64
pvh_long:
  mov $0x10, %eax
  mov %eax, %ds
  mov %eax, %es
  mov %eax, %ss
  xor %eax, %eax
  mov %eax, %fs
  mov %eax, %gs
  mov %rsi, %rdi
  movabs $kernel_entry64, %rax
  jmp *%rax

  .text
  .globl kernel_entry64
kernel_entry64:
  cli
  cld
  lea boot_stack_top(%rip), %rsp
  xor %ebp, %ebp
  call kernel_main
1:
  hlt
  jmp 1b

/* ap_entry64: a further CPU, started by the kos VMM (hypercall StartCpu)
 * in 64-bit mode on the kernel's page tables, rsp = its kernel stack's
 * top, rdi = its index. */
  .globl ap_entry64
ap_entry64:
  cli
  cld
  xor %ebp, %ebp
  call ap_main
2:
  hlt
  jmp 2b

  .section .data
  .balign 4096
boot_pml4:
  .quad boot_pdpt - KERNEL_VIRT + 3
  .fill 510, 8, 0
  .quad boot_pdpt - KERNEL_VIRT + 3
boot_pdpt:
  .quad boot_pd - KERNEL_VIRT + 3
  .fill 509, 8, 0
  .quad boot_pd - KERNEL_VIRT + 3
  .quad 0
boot_pd:
  .set i, 0
  .rept 512
  .quad (i << 21) + 0x83      /* 2 MiB page, present, writable */
  .set i, i + 1
  .endr

  .balign 16
boot_gdt:
  .quad 0
  .quad 0x00af9a000000ffff    /* 64-bit code */
  .quad 0x00cf92000000ffff    /* data */
boot_gdtr:
  .word boot_gdtr - boot_gdt - 1
  .long boot_gdt - KERNEL_VIRT

  .section .bss
  /* CPU 0's kernel stack (arch::kKernelStackSize, aligned to its size;
   * its lowest word, the CPU index, is 0). */
  .balign 32768
boot_stack:
  .skip 32768
  .globl boot_stack_top
boot_stack_top:

  .section .note.GNU-stack, "", @progbits
