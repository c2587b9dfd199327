/* smm: the float build's small dense products, written for the network's
 * shapes (a few hundred to a few thousand rows by 16..128 columns) with the
 * work that follows them fused in: bias, GELU with its derivative, and the
 * GELU' product of the backward pass.
 *
 * C (m x n) = A M, A(i, l) = A[i * as + l * ls] (so A may be read
 * transposed), M row-major (k x n, row stride ms), C row stride cs.
 * Every element of C is one chain of fused multiply-adds in l = 0, 1, ...,
 * starting from its bias (or C itself when accumulating, or 0): the result
 * does not depend on the vector width, the blocking or the number of rows,
 * and equals the scalar fmaf chain bit for bit (tests/test_smm.c).
 *
 * Available in the float build where the compiler targets fused
 * multiply-adds (-march=native on an AVX2 or AVX-512 machine) and n is a
 * multiple of 16; ds_smm_ok says so, and the callers in nn.c use BLAS
 * otherwise. DS_SMM=0 in the environment turns it off (BLAS everywhere),
 * for comparisons. */
#ifndef DS_SMM_H
#define DS_SMM_H

#include <stddef.h>

typedef enum ds_smm_mode {
    DS_SMM_SET,  /* C = bias + A M (bias may be NULL: 0) */
    DS_SMM_ADD,  /* C += A M */
    DS_SMM_GELU, /* C = GELU(bias + A M), gd = GELU'(bias + A M) */
    DS_SMM_MUL,  /* C = (A M) * mul, elementwise (the backward pass through a GELU) */
} ds_smm_mode;

typedef struct ds_smm_epilogue {
    ds_smm_mode mode;
    const float *bias;  /* n values added to every row (SET, GELU) */
    float *gd;          /* GELU: GELU' rows, stride cs */
    const float *mul;   /* MUL: factor rows, stride cs */
} ds_smm_epilogue;

/* 1 when ds_smm runs products with n columns and inner dimension k */
int ds_smm_ok(int n, int k);

void ds_smm(int m, int n, int k, const float *A, ptrdiff_t as, ptrdiff_t ls, const float *M, ptrdiff_t ms, float *C,
            ptrdiff_t cs, const ds_smm_epilogue *e);

#endif
