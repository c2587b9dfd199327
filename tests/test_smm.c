/* The network's products (nn.h ds_linear_*), and in the float build the
 * small-product kernel under them (src/smm.c).
 *
 * Both builds: every ds_linear_* entry point against a plain double loop,
 * at widths the kernel takes (multiples of 16) and widths it leaves to
 * BLAS, with row counts that are not multiples of the register tile.
 * Float build, where the kernel is built: each element of its result is
 * the scalar fmaf chain bit for bit, in every mode, with A read by rows
 * or transposed and an inner dimension over several of its blocks; its
 * GELU epilogue equals ds_gelu_forward_grad on that chain. */
#include "diffsamp/nn.h"
#include "testutil.h"

#include "../src/smm.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(DS_REAL_DOUBLE)
#define TOL 1e-12
#else
#define TOL 2e-5
#endif

static uint64_t lcg = 88172645463325252ull;
static double uni(void)
{
    lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(lcg >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static ds_real *randv(size_t n)
{
    ds_real *v = malloc(n * sizeof *v);
    ck_assert(v != NULL);
    for (size_t i = 0; i < n; i++) v[i] = (ds_real)uni();
    return v;
}

static double gelu_d(double x) { return 0.5 * x * erfc(-x / sqrt(2.0)); }
static double gelu_grad_d(double x) { return 0.5 * erfc(-x / sqrt(2.0)) + x * exp(-0.5 * x * x) * 0.39894228040143267794; }

/* |got - want| <= TOL * (1 + sum |terms|) for each element */
static void near(const ds_real *got, const double *want, const double *scale, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs((double)got[i] - want[i]) <= TOL * (1 + scale[i]), "%s[%zu]: %.9g, want %.9g", what, i,
                      (double)got[i], want[i]);
}

static void linear_case(int B, int in, int out)
{
    ds_real *x = randv((size_t)B * in), *W = randv((size_t)out * in), *b = randv((size_t)out);
    ds_real *dout = randv((size_t)B * out), *gdin = randv((size_t)B * in);
    ds_real *y = malloc(sizeof(ds_real) * B * out), *act = malloc(sizeof(ds_real) * B * out);
    ds_real *gd = malloc(sizeof(ds_real) * B * out), *scratch = malloc(sizeof(ds_real) * B * out);
    ds_real *din = malloc(sizeof(ds_real) * B * in), *dW = calloc((size_t)out * in, sizeof(ds_real));
    double *ref = malloc(sizeof(double) * B * (out > in ? out : in)), *sc = malloc(sizeof(double) * B * (out > in ? out : in));
    double *refW = malloc(sizeof(double) * out * in), *scW = malloc(sizeof(double) * out * in);
    ck_assert(y && act && gd && scratch && din && dW && ref && sc && refW && scW);
    char what[96];

    /* forward: y = x W^T + b; then with the GELU fused */
    for (int r = 0; r < B; r++)
        for (int j = 0; j < out; j++) {
            double s = b[j], a = fabs((double)b[j]);
            for (int k = 0; k < in; k++) {
                s += (double)x[(size_t)r * in + k] * W[(size_t)j * in + k];
                a += fabs((double)x[(size_t)r * in + k] * W[(size_t)j * in + k]);
            }
            ref[(size_t)r * out + j] = s;
            sc[(size_t)r * out + j] = a;
        }
    snprintf(what, sizeof what, "forward %dx%d->%d", B, in, out);
    ds_linear_forward(y, x, W, b, B, in, out);
    near(y, ref, sc, (size_t)B * out, what);
    ds_linear_forward_gelu(act, gd, x, W, b, B, in, out, scratch);
    for (size_t i = 0; i < (size_t)B * out; i++) {
        /* GELU of the reference pre-activation, with the slope as the error's scale */
        double z = ref[i], e = TOL * (1 + sc[i]) * 1.2 + 6e-7 * (fabs(z) > 1 ? fabs(z) : 1);
        ck_assert_msg(fabs((double)act[i] - gelu_d(z)) <= e, "%s gelu[%zu]: %.9g, want %.9g", what, i, (double)act[i],
                      gelu_d(z));
        ck_assert_msg(fabs((double)gd[i] - gelu_grad_d(z)) <= e + 1e-6, "%s gelu'[%zu]", what, i);
    }
    /* forward_add: y += x W^T (y holds x W^T + b: now 2 x W^T + b) */
    ds_linear_forward_add(y, x, W, B, in, out);
    for (size_t i = 0; i < (size_t)B * out; i++) {
        double r = ref[i] - b[i % out];
        ref[i] = r + ref[i];
        sc[i] *= 2;
    }
    snprintf(what, sizeof what, "forward_add %dx%d->%d", B, in, out);
    near(y, ref, sc, (size_t)B * out, what);

    /* backward input: din = dout W, += dout W, and (dout W) * gdin */
    for (int r = 0; r < B; r++)
        for (int k = 0; k < in; k++) {
            double s = 0, a = 0;
            for (int j = 0; j < out; j++) {
                s += (double)dout[(size_t)r * out + j] * W[(size_t)j * in + k];
                a += fabs((double)dout[(size_t)r * out + j] * W[(size_t)j * in + k]);
            }
            ref[(size_t)r * in + k] = s;
            sc[(size_t)r * in + k] = a;
        }
    snprintf(what, sizeof what, "backward_input %dx%d<-%d", B, in, out);
    ds_linear_backward_input(din, dout, W, B, in, out, 0);
    near(din, ref, sc, (size_t)B * in, what);
    ds_linear_backward_input(din, dout, W, B, in, out, 1);
    for (size_t i = 0; i < (size_t)B * in; i++) { ref[i] *= 2; sc[i] *= 2; }
    near(din, ref, sc, (size_t)B * in, what);
    ds_linear_backward_input_gelu(din, dout, W, gdin, B, in, out);
    for (size_t i = 0; i < (size_t)B * in; i++) { ref[i] *= 0.5 * gdin[i]; sc[i] *= 0.5; }
    snprintf(what, sizeof what, "backward_input_gelu %dx%d<-%d", B, in, out);
    near(din, ref, sc, (size_t)B * in, what);

    /* backward params, twice: dW accumulates */
    for (int j = 0; j < out; j++)
        for (int k = 0; k < in; k++) {
            double s = 0, a = 0;
            for (int r = 0; r < B; r++) {
                s += (double)dout[(size_t)r * out + j] * x[(size_t)r * in + k];
                a += fabs((double)dout[(size_t)r * out + j] * x[(size_t)r * in + k]);
            }
            refW[(size_t)j * in + k] = 2 * s;
            scW[(size_t)j * in + k] = 2 * a;
        }
    ds_real *db = calloc((size_t)out, sizeof(ds_real));
    double *refb = calloc((size_t)out, sizeof(double)), *scb = calloc((size_t)out, sizeof(double));
    ck_assert(db && refb && scb);
    for (int r = 0; r < B; r++)
        for (int j = 0; j < out; j++) {
            refb[j] += 2.0 * dout[(size_t)r * out + j];
            scb[j] += 2.0 * fabs((double)dout[(size_t)r * out + j]);
        }
    ds_linear_backward_params(dW, db, dout, x, B, in, out);
    ds_linear_backward_params(dW, db, dout, x, B, in, out);
    snprintf(what, sizeof what, "backward_params %dx%d<-%d", B, in, out);
    near(dW, refW, scW, (size_t)out * in, what);
    snprintf(what, sizeof what, "bias gradient %dx%d<-%d", B, in, out);
    near(db, refb, scb, (size_t)out, what);
    /* the column sums are the plain row-after-row sums, bit for bit */
    ds_real *db1 = calloc((size_t)out, sizeof(ds_real));
    ck_assert(db1 != NULL);
    for (int rep = 0; rep < 2; rep++)
        for (int r = 0; r < B; r++)
            for (int j = 0; j < out; j++) db1[j] += dout[(size_t)r * out + j];
    ck_assert_msg(memcmp(db, db1, sizeof(ds_real) * out) == 0, "%s: not the row-after-row sums", what);
    free(db); free(db1); free(refb); free(scb);

    free(x); free(W); free(b); free(dout); free(gdin); free(y); free(act); free(gd); free(scratch); free(din);
    free(dW); free(ref); free(sc); free(refW); free(scW);
}

START_TEST(linear_layers_against_double)
{
    /* (rows, in, out): kernel widths, BLAS widths, tails of the 6-row tile, long inner dimensions */
    const int cases[][3] = {{300, 64, 64}, {7, 64, 64}, {13, 2, 64}, {1, 32, 16}, {301, 64, 2}, {50, 17, 48},
                            {9, 128, 80}, {1800, 64, 64}, {5, 200, 32}, {40, 64, 128}, {3, 3, 5}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) linear_case(cases[c][0], cases[c][1], cases[c][2]);
}
END_TEST

#if !defined(DS_REAL_DOUBLE)
/* the scalar chain the kernel promises: start, then fmaf in l = 0, 1, ... */
static float chain(float start, int k, const float *A, ptrdiff_t as, ptrdiff_t ls, const float *M, ptrdiff_t ms,
                   int i, int j)
{
    float s = start;
    for (int l = 0; l < k; l++) s = fmaf(A[i * as + l * ls], M[l * ms + j], s);
    return s;
}

static void kernel_case(int m, int n, int k, int transposed)
{
    const ptrdiff_t as = transposed ? 1 : k + 3, ls = transposed ? m + 1 : 1, ms = n + 16, cs = n + 5;
    float *A = (float *)randv((size_t)(transposed ? k * (m + 1) : m * (k + 3)));
    float *M = (float *)randv((size_t)k * ms), *bias = (float *)randv((size_t)n);
    float *C = (float *)randv((size_t)m * cs), *C0 = malloc(sizeof(float) * m * cs);
    float *gd = malloc(sizeof(float) * m * cs), *mul = (float *)randv((size_t)m * cs);
    ck_assert(C0 && gd);
    memcpy(C0, C, sizeof(float) * m * cs);
    const ds_smm_mode modes[] = {DS_SMM_SET, DS_SMM_ADD, DS_SMM_GELU, DS_SMM_MUL};
    for (int mi = 0; mi < 4; mi++)
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            const ds_smm_mode mode = modes[mi];
            if (with_bias && (mode == DS_SMM_ADD || mode == DS_SMM_MUL)) continue;
            memcpy(C, C0, sizeof(float) * m * cs);
            const ds_smm_epilogue e = {mode, with_bias ? bias : NULL, gd, mul};
            ds_smm(m, n, k, A, as, ls, M, ms, C, cs, &e);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    const size_t at = (size_t)i * cs + j;
                    const float start = mode == DS_SMM_ADD ? C0[at] : with_bias ? bias[j] : 0.0f;
                    const float s = chain(start, k, A, as, ls, M, ms, i, j);
                    float want = s, wgd = 0;
                    if (mode == DS_SMM_GELU) ds_gelu_forward_grad(&want, &wgd, &s, 1);
                    if (mode == DS_SMM_MUL) want = s * mul[at];
                    ck_assert_msg(memcmp(&C[at], &want, sizeof want) == 0,
                                  "mode %d bias %d (%d x %d x %d, A %s) at (%d, %d): %.9g, the chain gives %.9g", mi,
                                  with_bias, m, n, k, transposed ? "transposed" : "by rows", i, j, (double)C[at],
                                  (double)want);
                    if (mode == DS_SMM_GELU) ck_assert(memcmp(&gd[at], &wgd, sizeof wgd) == 0);
                }
            /* the padding between rows is never written */
            for (int i = 0; i < m; i++)
                for (int j = n; j < cs; j++) ck_assert(C[(size_t)i * cs + j] == C0[(size_t)i * cs + j]);
        }
    free(A); free(M); free(bias); free(C); free(C0); free(gd); free(mul);
}

START_TEST(kernel_is_the_fma_chain)
{
    if (!ds_smm_ok(16, 1)) {
        printf("SKIPPED: the small-product kernel is not built here (no FMA target, DS_LIBXSMM, or DS_SMM=0)\n");
        return;
    }
    ck_assert(!ds_smm_ok(8, 4) && !ds_smm_ok(17, 4) && !ds_smm_ok(16, 0));
    const int ms[] = {1, 5, 6, 7, 13, 37}, ns[] = {16, 32, 48, 64, 80, 128, 144}, ks[] = {1, 2, 7, 64, 129, 300};
    for (size_t a = 0; a < 6; a++)
        for (size_t b = 0; b < 7; b++)
            for (size_t c = 0; c < 6; c++) kernel_case(ms[a], ns[b], ks[c], (int)((a + b + c) % 2));
}
END_TEST
#endif

int main(void)
{
    Suite *s = suite_create("smm (" DS_REAL_NAME ")");
    TCase *tc = tcase_create("smm");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, linear_layers_against_double);
#if !defined(DS_REAL_DOUBLE)
    tcase_add_test(tc, kernel_is_the_fma_chain);
#endif
    suite_add_tcase(s, tc);
    return ds_test_run(s);
}
