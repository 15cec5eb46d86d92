/* Trap, interrupt and system call entry.
 *
 * Every entry builds a TrapFrame (see cpu.h) on the kernel stack and calls
 * trap_dispatch(TrapFrame*). Returning to ring 3 is always `iretq` from the
 * (possibly modified) frame.
 *
 * System calls arrive two ways (DESIGN.md, "The platform reality"):
 *  - Hardware KVM: `syscall` from ring 3 enters ring 0 at LSTAR =
 *    syscall_entry below; it builds the same frame with vector 256.
 *  - Nested KVM (kvm_pvm): `syscall` jumps to LSTAR without leaving ring 3;
 *    since LSTAR is on a supervisor-only page the fetch raises #PF, which
 *    arrives here as vector 14 with CR2 = LSTAR and rcx/r11 holding the
 *    return RIP and RFLAGS. trap_dispatch recognises it.
 */

#define USER_CS 0x23
#define USER_SS 0x1b
#define VEC_SYSCALL 256

  .text

.macro ISR_NOERR n
  .balign 16
isr_\n:
  pushq $0
  pushq $\n
  jmp trap_common
.endm

.macro ISR_ERR n
  .balign 16
isr_\n:
  pushq $\n
  jmp trap_common
.endm

ISR_NOERR 0
ISR_NOERR 1
ISR_NOERR 2
ISR_NOERR 3
ISR_NOERR 4
ISR_NOERR 5
ISR_NOERR 6
ISR_NOERR 7
ISR_ERR 8
ISR_NOERR 9
ISR_ERR 10
ISR_ERR 11
ISR_ERR 12
ISR_ERR 13
ISR_ERR 14
ISR_NOERR 15
ISR_NOERR 16
ISR_ERR 17
ISR_NOERR 18
ISR_NOERR 19
ISR_NOERR 20
ISR_ERR 21
ISR_NOERR 22
ISR_NOERR 23
ISR_NOERR 24
ISR_NOERR 25
ISR_NOERR 26
ISR_NOERR 27
ISR_NOERR 28
ISR_ERR 29
ISR_ERR 30
ISR_NOERR 31
ISR_NOERR 32
ISR_NOERR 33
ISR_NOERR 34
ISR_NOERR 255

  .section .rodata
  .balign 8
  .globl isr_stub_table
isr_stub_table:
  .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34
  .quad isr_\n
  .endr
  .globl isr_spurious
isr_spurious:
  .quad isr_255

  .text
  .balign 16
trap_common:
  pushq %rax
  pushq %rbx
  pushq %rcx
  pushq %rdx
  pushq %rsi
  pushq %rdi
  pushq %rbp
  pushq %r8
  pushq %r9
  pushq %r10
  pushq %r11
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  mov %rsp, %rdi
  call trap_dispatch
  .globl trap_return
trap_return:
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %r11
  popq %r10
  popq %r9
  popq %r8
  popq %rbp
  popq %rdi
  popq %rsi
  popq %rdx
  popq %rcx
  popq %rbx
  popq %rax
  add $16, %rsp
  iretq

/* Hardware `syscall` entry (ring 0, interrupts masked by SFMASK, user rsp).
 * `syscall` switches no stack, and the kernel keeps nothing in GS, so each
 * CPU has its own stub (its LSTAR) with its own scratch slot and kernel
 * stack: syscall_user_rsp[n], kernel_stack_top[n] (cpu.cc). */
.macro SYSCALL_STUB n
  .balign 64
syscall_entry_\n:
  mov %rsp, syscall_user_rsp+8*\n(%rip)
  mov kernel_stack_top+8*\n(%rip), %rsp
  pushq $USER_SS
  pushq syscall_user_rsp+8*\n(%rip)
  pushq %r11
  pushq $USER_CS
  pushq %rcx
  pushq $0
  pushq $VEC_SYSCALL
  jmp trap_common
.endm

  .balign 4096
  .globl syscall_stubs
syscall_stubs:
  .irp n, 0,1,2,3,4,5,6,7
  SYSCALL_STUB \n
  .endr
  .balign 4096

  .section .rodata
  .balign 8
  .globl syscall_entry_table
syscall_entry_table:
  .irp n, 0,1,2,3,4,5,6,7
  .quad syscall_entry_\n
  .endr
  .text

/* probe_fxrstor(area) -> 1 if FXRSTOR works in ring 0, 0 if it raised #UD
 * (trap_dispatch resumes a #UD at probe_fxrstor_insn at probe_fxrstor_fail).
 * Nested KVM (kvm_pvm) does not implement it in ring 0. */
  .globl probe_fxrstor, probe_fxrstor_insn, probe_fxrstor_fail
probe_fxrstor:
probe_fxrstor_insn:
  fxrstor64 (%rdi)
  mov $1, %eax
  ret
probe_fxrstor_fail:
  xor %eax, %eax
  ret

/* safe_wrmsr(msr, value) -> 0, or 1 if the WRMSR raised #GP (trap_dispatch
 * resumes it at safe_wrmsr_fail). Used to probe x2APIC support without
 * trusting CPUID, which some nested KVMs leave empty. */
  .globl safe_wrmsr, safe_wrmsr_insn, safe_wrmsr_fail
safe_wrmsr:
  mov %edi, %ecx
  mov %esi, %eax
  mov %rsi, %rdx
  shr $32, %rdx
safe_wrmsr_insn:
  wrmsr
  xor %eax, %eax
  ret
safe_wrmsr_fail:
  mov $1, %eax
  ret

/* enter_user(TrapFrame* frame): start ring-3 execution from a frame built
 * on the current kernel stack. */
  .globl enter_user
enter_user:
  mov %rdi, %rsp
  jmp trap_return

  .section .bss
  .balign 8
syscall_user_rsp:
  .skip 8 * 8

  .section .note.GNU-stack, "", @progbits
