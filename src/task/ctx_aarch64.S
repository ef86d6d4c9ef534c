/* AArch64 (AAPCS64) context switch for tasks (see ctx.h).
 *
 * A suspended context's stack holds, from its saved stack pointer up
 * (176 bytes, 16-byte aligned):
 *   x19 x20 | x21 x22 | x23 x24 | x25 x26 | x27 x28 | x29 x30(lr)
 *   d8 d9 | d10 d11 | d12 d13 | d14 d15 | fpcr, padding
 * Resuming loads them and returns to the saved lr. */
#if defined(__aarch64__)

        .text

/* void fut__ctx_switch_raw(void **from_sp, void *to_sp) */
        .globl  fut__ctx_switch_raw
        .hidden fut__ctx_switch_raw
        .type   fut__ctx_switch_raw, %function
        .p2align 4
fut__ctx_switch_raw:
        .cfi_startproc
        sub     sp, sp, #176
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        stp     d8, d9, [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        mrs     x9, fpcr
        str     x9, [sp, #160]
        mov     x9, sp
        str     x9, [x0]
        mov     sp, x1
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        ldp     d8, d9, [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        ldr     x9, [sp, #160]
        msr     fpcr, x9
        add     sp, sp, #176
        ret
        .cfi_endproc
        .size   fut__ctx_switch_raw, .-fut__ctx_switch_raw

/* First resume of a new context: entry in x19, its argument in x20. */
        .globl  fut__ctx_start
        .hidden fut__ctx_start
        .type   fut__ctx_start, %function
        .p2align 4
fut__ctx_start:
        .cfi_startproc
        .cfi_undefined x30
        mov     x29, #0
        mov     x30, #0
        mov     x0, x20
        blr     x19
        brk     #0
        .cfi_endproc
        .size   fut__ctx_start, .-fut__ctx_start

#endif
        .section .note.GNU-stack,"",%progbits
