/* fp_contract: fused multiply-adds for one stretch of code. The C11 build
 * does not contract a * b + c into an FMA; the float kernels that are bound
 * by their arithmetic (GELU in nn.c, the normals in rng.c) put themselves
 * between DS_FP_CONTRACT_BEGIN and DS_FP_CONTRACT_END, and nothing else
 * changes its rounding. */
#ifndef DS_FP_CONTRACT_H
#define DS_FP_CONTRACT_H

#if defined(__clang__)
#define DS_FP_CONTRACT_BEGIN _Pragma("STDC FP_CONTRACT ON")
#define DS_FP_CONTRACT_END _Pragma("STDC FP_CONTRACT OFF")
#elif defined(__GNUC__)
#define DS_FP_CONTRACT_BEGIN _Pragma("GCC push_options") _Pragma("GCC optimize(\"fp-contract=fast\")")
#define DS_FP_CONTRACT_END _Pragma("GCC pop_options")
#else
#define DS_FP_CONTRACT_BEGIN
#define DS_FP_CONTRACT_END
#endif

#endif
