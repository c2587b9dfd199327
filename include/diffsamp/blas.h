/* blas: choosing OpenBLAS's kernels where its own detection fails.
 *
 * Debian 12's OpenBLAS (0.3.21, DYNAMIC_ARCH) does not know recent Intel
 * cores (Sapphire Rapids and later): it falls back to its generic "Prescott"
 * kernels, which run sgemm at a quarter of the machine's speed (measured on
 * these machines: 11 GFLOP/s against 53 with the SkylakeX kernels at
 * 1024^3). ds_blas_tune chooses the best kernel family the CPU's own flags
 * allow when, and only when, OpenBLAS fell back and the user has not chosen
 * one (OPENBLAS_CORETYPE set: kept, whatever it says). Kernels differ in
 * rounding, so results differ from the fallback's in the last bits; runs that
 * must reproduce bitwise across machines set OPENBLAS_CORETYPE themselves. */
#ifndef DIFFSAMP_BLAS_H
#define DIFFSAMP_BLAS_H

/* Call once, first thing in main, before any BLAS call and before any thread
 * starts. Safe without OpenBLAS (does nothing). */
void ds_blas_tune(void);

/* "OpenBLAS 0.3.21 ..., kernels SkylakeX (chosen by diffsamp: ...)" or the
 * like, for the start line of a run; a static string. */
const char *ds_blas_describe(void);

/* Call after every BLAS/LAPACK call (nn.c's products do). OpenBLAS's
 * AVX-512 kernels can return with the upper halves of the vector registers
 * dirty; every legacy-SSE instruction after that (glibc's scalar exp, log
 * and tanhf are SSE code) then carries a false dependency on them. Measured
 * on these machines: the 25gmm energy (25 exp per point) 15x slower after a
 * product than before one, 25gmm FL-SubTB 212 -> 67 ms CPU per iteration
 * once cleared. vzeroupper costs about one cycle; on machines without AVX
 * this does nothing. */
static inline void ds_blas_done(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#if defined(__AVX__)
    __builtin_ia32_vzeroupper();
#else
    /* built without AVX (DS_NATIVE off): the compiler holds at most 128-bit
     * values, which vzeroupper keeps; run it only where the CPU has AVX */
    if (__builtin_cpu_supports("avx")) __asm__ volatile("vzeroupper" ::: "memory");
#endif
#endif
}

#endif
