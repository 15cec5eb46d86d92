/* Entry points of the personality runtime (ring 3).
 *
 * runtime_start: first instruction of the process; rdi = RuntimeStartInfo,
 *   rsp = runtime stack.
 * runtime_linux_entry: the kernel enters here after an application executed
 *   `syscall`; the application's registers are in the ThreadBlock at the GS
 *   base. The runtime handles the call, then resumes the application
 *   directly (no kernel entry): flags, then registers, then the stack
 *   pointer, then a jump through the block.
 */
#define FRAME_RAX 0
#define FRAME_RBX 8
#define FRAME_RCX 16
#define FRAME_RDX 24
#define FRAME_RSI 32
#define FRAME_RDI 40
#define FRAME_RBP 48
#define FRAME_RSP 56
#define FRAME_R8 64
#define FRAME_R9 72
#define FRAME_R10 80
#define FRAME_R11 88
#define FRAME_R12 96
#define FRAME_R13 104
#define FRAME_R14 112
#define FRAME_R15 120
#define FRAME_RIP 128
#define FRAME_RFLAGS 136
#define TB_SELF 144
#define TB_ASYNC 208
#define FPU_AREA 1024   /* abi::sys::kFpuAreaOffset */
#define ASYNC_RESUME 2  /* abi::sys::kAsyncResume */

  .section .kos_header, "a"
  .quad 0x454d49544e55524b    /* "KRUNTIME" */
  .quad runtime_start
  .quad runtime_linux_entry
  .quad __text_start
  .quad __text_end
  .quad runtime_fpu_saved
  .quad resume_application
  .quad runtime_resume_end

  .text
  .globl runtime_start
runtime_start:
  and $-16, %rsp
  call runtime_main
  ud2

  .globl runtime_linux_entry
runtime_linux_entry:
  and $-16, %rsp
  mov %gs:TB_SELF, %rdi
  /* The program's vector registers, before anything can switch threads
     (a new thread's were put in its block by the kernel): with xsave64
     when the kernel enabled more than x87/SSE (AVX's upper halves). */
  cmpq $ASYNC_RESUME, TB_ASYNC(%rdi)
  je 1f
  mov kos_xsave_mask(%rip), %eax
  test %eax, %eax
  jz 2f
  mov kos_xsave_mask+4(%rip), %edx
  xsave64 FPU_AREA(%rdi)
  jmp 1f
2:
  fxsave64 FPU_AREA(%rdi)
1:
  .globl runtime_fpu_saved
runtime_fpu_saved:
  call linux_syscall
  /* fall through */

  .globl resume_application
resume_application:
  mov %gs:TB_SELF, %rcx
  mov kos_xsave_mask(%rip), %eax
  test %eax, %eax
  jz 3f
  mov kos_xsave_mask+4(%rip), %edx
  xrstor64 FPU_AREA(%rcx)
  jmp 4f
3:
  fxrstor64 FPU_AREA(%rcx)
4:
  pushq %gs:FRAME_RFLAGS
  popfq
  mov %gs:FRAME_RAX, %rax
  mov %gs:FRAME_RBX, %rbx
  mov %gs:FRAME_RCX, %rcx
  mov %gs:FRAME_RDX, %rdx
  mov %gs:FRAME_RSI, %rsi
  mov %gs:FRAME_RDI, %rdi
  mov %gs:FRAME_RBP, %rbp
  mov %gs:FRAME_R8, %r8
  mov %gs:FRAME_R9, %r9
  mov %gs:FRAME_R10, %r10
  mov %gs:FRAME_R11, %r11
  mov %gs:FRAME_R12, %r12
  mov %gs:FRAME_R13, %r13
  mov %gs:FRAME_R14, %r14
  mov %gs:FRAME_R15, %r15
  mov %gs:FRAME_RSP, %rsp
  jmp *%gs:FRAME_RIP
  .globl runtime_resume_end
runtime_resume_end:

  .section .note.GNU-stack, "", @progbits
