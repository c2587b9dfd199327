/* smm: small dense products with fused epilogues (smm.h). */
#include "smm.h"
#include "fp_contract.h"

#include <stdlib.h>
#include <string.h>

#if !defined(DS_REAL_DOUBLE) && defined(__FMA__) && !defined(DS_USE_LIBXSMM)
#define DS_SMM_BUILT 1
#else
#define DS_SMM_BUILT 0
#endif

static int smm_enabled(void)
{
    static int state = -1;  /* read once: the choice must not change within a run */
    if (state < 0) {
        const char *v = getenv("DS_SMM");
        state = !(v && strcmp(v, "0") == 0);
    }
    return state;
}

int ds_smm_ok(int n, int k)
{
    return DS_SMM_BUILT && n > 0 && n % 16 == 0 && k > 0 && smm_enabled();
}

#if DS_SMM_BUILT
DS_FP_CONTRACT_BEGIN
#include "gelu_lanes.h"

/* Register tile: MR rows by NV vectors of 16 columns. With AVX-512's 32
 * registers 6 x 4 accumulators leave room for the 4 vectors of M's row and
 * a broadcast; with AVX2's 16 (each vector is two) 3 x 2. */
#if defined(__AVX512F__)
#define MR 6
#define NV 4
#else
#define MR 3
#define NV 2
#endif
#define KB 128 /* inner dimension per pass: a 128 x 64 block of M (32 KiB) stays in L1 */

static inline ds_vf vload(const float *p)
{
    ds_vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void vstore(float *p, ds_vf v) { memcpy(p, &v, sizeof v); }

/* s in every lane (not 0 + s, which the compiler must keep as an addition
 * for s = -0) */
static inline ds_vf vbcast(float s) { return (ds_vf){s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s}; }

/* One tile, rows [0, mr) by vectors [0, nv), inner indices [0, k). first:
 * the chain starts here (from bias or 0; else from C, stored there by the
 * previous block); last: apply the epilogue (else store the raw sums). */
static inline __attribute__((always_inline)) void tile(const int mr, const int nv, int k, const float *A,
                                                       ptrdiff_t as, ptrdiff_t ls, const float *M, ptrdiff_t ms,
                                                       float *C, ptrdiff_t cs, const ds_smm_epilogue *e,
                                                       const float *bias, int first, int last, ptrdiff_t eoff)
{
    ds_vf acc[MR][NV];
    const int from_c = !first || e->mode == DS_SMM_ADD;
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < nv; v++) {
            if (from_c) acc[i][v] = vload(C + i * cs + 16 * v);
            else if (bias) acc[i][v] = vload(bias + 16 * v);
            else acc[i][v] = (ds_vf){0};
        }
    for (int l = 0; l < k; l++) {
        const float *mrow = M + l * ms;
        ds_vf b[NV];
        for (int v = 0; v < nv; v++) b[v] = vload(mrow + 16 * v);
        for (int i = 0; i < mr; i++) {
            const ds_vf a = vbcast(A[i * as + l * ls]);
            for (int v = 0; v < nv; v++) acc[i][v] += a * b[v];
        }
    }
    if (last && e->mode == DS_SMM_GELU) {
        for (int i = 0; i < mr; i++)
            for (int v = 0; v < nv; v++) {
                ds_vf o, g;
                ds_vgelu(acc[i][v], &o, &g);
                vstore(C + i * cs + 16 * v, o);
                vstore(e->gd + eoff + i * cs + 16 * v, g);
            }
    } else if (last && e->mode == DS_SMM_MUL) {
        for (int i = 0; i < mr; i++)
            for (int v = 0; v < nv; v++)
                vstore(C + i * cs + 16 * v, acc[i][v] * vload(e->mul + eoff + i * cs + 16 * v));
    } else {
        for (int i = 0; i < mr; i++)
            for (int v = 0; v < nv; v++) vstore(C + i * cs + 16 * v, acc[i][v]);
    }
}

#define TILE(r, v)                                                                                        \
    case (r) * 8 + (v):                                                                                   \
        tile(r, v, k, A, as, ls, M, ms, C, cs, e, bias, first, last, eoff);                              \
        break

static void tile_any(int mr, int nv, int k, const float *A, ptrdiff_t as, ptrdiff_t ls, const float *M,
                     ptrdiff_t ms, float *C, ptrdiff_t cs, const ds_smm_epilogue *e, const float *bias,
                     int first, int last, ptrdiff_t eoff)
{
    switch (mr * 8 + nv) {
#if MR == 6
        TILE(1, 1); TILE(1, 2); TILE(1, 3); TILE(1, 4);
        TILE(2, 1); TILE(2, 2); TILE(2, 3); TILE(2, 4);
        TILE(3, 1); TILE(3, 2); TILE(3, 3); TILE(3, 4);
        TILE(4, 1); TILE(4, 2); TILE(4, 3); TILE(4, 4);
        TILE(5, 1); TILE(5, 2); TILE(5, 3); TILE(5, 4);
        TILE(6, 1); TILE(6, 2); TILE(6, 3); TILE(6, 4);
#else
        TILE(1, 1); TILE(1, 2);
        TILE(2, 1); TILE(2, 2);
        TILE(3, 1); TILE(3, 2);
#endif
    default:
        abort(); /* unreachable: mr <= MR, nv <= NV */
    }
}

void ds_smm(int m, int n, int k, const float *A, ptrdiff_t as, ptrdiff_t ls, const float *M, ptrdiff_t ms, float *C,
            ptrdiff_t cs, const ds_smm_epilogue *e)
{
    /* Blocks of the inner dimension outermost, so M's block stays in cache
     * while every row tile passes over it; the chain of each element goes
     * on from C between blocks, so blocking changes no result. */
    for (int l0 = 0; l0 < k; l0 += KB) {
        const int kb = k - l0 < KB ? k - l0 : KB;
        const int first = l0 == 0, last = l0 + kb == k;
        for (int j0 = 0; j0 < n; j0 += 16 * NV) {
            const int nv = (n - j0) / 16 < NV ? (n - j0) / 16 : NV;
            const float *bias = e->bias ? e->bias + j0 : NULL;
            for (int i0 = 0; i0 < m; i0 += MR) {
                const int mr = m - i0 < MR ? m - i0 : MR;
                const ptrdiff_t coff = (ptrdiff_t)i0 * cs + j0;
                tile_any(mr, nv, kb, A + (ptrdiff_t)i0 * as + (ptrdiff_t)l0 * ls, as, ls, M + (ptrdiff_t)l0 * ms + j0,
                         ms, C + coff, cs, e, bias, first, last, coff);
            }
        }
    }
}
DS_FP_CONTRACT_END
#else
void ds_smm(int m, int n, int k, const float *A, ptrdiff_t as, ptrdiff_t ls, const float *M, ptrdiff_t ms, float *C,
            ptrdiff_t cs, const ds_smm_epilogue *e)
{
    (void)m; (void)n; (void)k; (void)A; (void)as; (void)ls; (void)M; (void)ms; (void)C; (void)cs; (void)e;
    abort(); /* ds_smm_ok is 0 in this build: callers never get here */
}
#endif
