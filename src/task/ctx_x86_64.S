/* x86-64 System V context switch for tasks (see ctx.h).
 *
 * A suspended context's stack holds, from its saved stack pointer up:
 *   MXCSR (4 bytes), x87 control word (2 bytes), padding  8 bytes
 *   r15 r14 r13 r12 rbx rbp                             48 bytes
 *   resume address                                       8 bytes
 * Only callee-saved state is kept: the switch is an ordinary call, so the
 * compiler already saved everything else. */
#if defined(__x86_64__)

        .text

/* void fut__ctx_switch_raw(void **from_sp, void *to_sp) */
        .globl  fut__ctx_switch_raw
        .hidden fut__ctx_switch_raw
        .type   fut__ctx_switch_raw, @function
        .p2align 4
fut__ctx_switch_raw:
        .cfi_startproc
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        subq    $8, %rsp
        stmxcsr (%rsp)
        fnstcw  4(%rsp)
        movq    %rsp, (%rdi)
        movq    %rsi, %rsp
        ldmxcsr (%rsp)
        fldcw   4(%rsp)
        addq    $8, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        ret
        .cfi_endproc
        .size   fut__ctx_switch_raw, .-fut__ctx_switch_raw

/* First resume of a new context lands here with entry in r12 and its
 * argument in r13 (set by fut__ctx_make), the stack 16-byte aligned. */
        .globl  fut__ctx_start
        .hidden fut__ctx_start
        .type   fut__ctx_start, @function
        .p2align 4
fut__ctx_start:
        .cfi_startproc
        .cfi_undefined rip
        movq    %r13, %rdi
        callq   *%r12
        ud2
        .cfi_endproc
        .size   fut__ctx_start, .-fut__ctx_start

#endif
        .section .note.GNU-stack,"",@progbits
