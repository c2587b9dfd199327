/* The one GELU of diffsamp (nn.h ds_gelu_forward_grad) against the exact
 * erf form evaluated in double with libm, over the whole float range (every
 * 1021st bit pattern, about 4 million values) and densely over [-20, 20].
 * Built twice: the double build must agree to double rounding; the float
 * build (the vectorised kernel the program runs) to the bounds below,
 * a few float ulps. */
#include "diffsamp/nn.h"
#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(DS_REAL_DOUBLE)
#define OUT_BOUND 1e-15 /* relative to max(1, |x|) */
#define GD_BOUND 1e-15
#else
/* Measured worst cases (the kernel with fused multiply-adds): 1.67e-7
 * max(1, |x|) for GELU (near x = 1.22) and 3.04e-7 for GELU' (near x =
 * 0.07); without them 1.75e-7 and 3.16e-7. float's own rounding of a value
 * near 1 is 6e-8, so these are 3-6 ulps. */
#define OUT_BOUND 2.5e-7
#define GD_BOUND 5e-7
#endif

static void exact(double v, double *out, double *gd)
{
    double cdf = 0.5 * erfc(-v / sqrt(2.0));
    *out = v * cdf;
    *gd = cdf + v * exp(-0.5 * v * v) * 0.39894228040143267794;
}

typedef struct worst {
    double out, out_x, gd, gd_x;
    long n;
} worst;

static void check_block(const ds_real *x, int n, worst *w)
{
    ds_real o[4096], g[4096];
    ds_gelu_forward_grad(o, g, x, (size_t)n);
    for (int k = 0; k < n; k++) {
        double wo, wg;
        exact((double)x[k], &wo, &wg);
        double sc = fabs((double)x[k]) > 1 ? fabs((double)x[k]) : 1;
        double eo = fabs((double)o[k] - wo) / sc, eg = fabs((double)g[k] - wg);
        if (!(eo <= w->out)) { w->out = eo; w->out_x = x[k]; }  /* NaN counts as worst */
        if (!(eg <= w->gd)) { w->gd = eg; w->gd_x = x[k]; }
        w->n++;
    }
}

START_TEST(whole_float_range)
{
    worst w = {0, 0, 0, 0, 0};
    float xs[4096];
    ds_real x[4096];
    int k = 0;
    for (uint64_t bits = 0; bits < (1ull << 32); bits += 1021) {
        uint32_t b = (uint32_t)bits;
        memcpy(&xs[k], &b, sizeof b);
        if (!isfinite(xs[k])) continue;
        x[k] = (ds_real)xs[k];
        if (++k == 4096) { check_block(x, k, &w); k = 0; }
    }
    if (k) check_block(x, k, &w);
    ck_assert_msg(w.n > 4000000, "only %ld values", w.n);
    ck_assert_msg(w.out <= OUT_BOUND, "GELU error %.3g max(1,|x|) at x = %.9g (bound %.3g)", w.out, w.out_x, OUT_BOUND);
    ck_assert_msg(w.gd <= GD_BOUND, "GELU' error %.3g at x = %.9g (bound %.3g)", w.gd, w.gd_x, GD_BOUND);
}
END_TEST

START_TEST(dense_grid_and_special_values)
{
    worst w = {0, 0, 0, 0, 0};
    ds_real x[4096];
    for (int i = 0; i < 1 << 20; i += 4096) {
        for (int k = 0; k < 4096; k++) x[k] = (ds_real)(-20.0 + 40.0 * (i + k) / (1 << 20));
        check_block(x, 4096, &w);
    }
    ck_assert_msg(w.out <= OUT_BOUND, "GELU error %.3g at x = %.9g", w.out, w.out_x);
    ck_assert_msg(w.gd <= GD_BOUND, "GELU' error %.3g at x = %.9g", w.gd, w.gd_x);
    /* exact where it must be */
    const ds_real s[] = {0, 1e30f, -1e30f, 3e38f, -3e38f, 40, -40};
    ds_real o[7], g[7];
    ds_gelu_forward_grad(o, g, s, 7);
    ck_assert(o[0] == 0 && g[0] == 0.5);
    ck_assert(o[1] == s[1] && g[1] == 1 && o[3] == s[3] && g[3] == 1 && o[5] == 40 && g[5] == 1);
    ck_assert(fabs(o[2]) < 1e-30 && fabs(g[2]) < 1e-30 && fabs(o[4]) < 1e-30 && fabs(g[4]) < 1e-30);
    /* a length that is not a multiple of the vector width: the tail equals the lanes */
    ds_real y[13], oy[13], gy[13], o1, g1;
    for (int k = 0; k < 13; k++) y[k] = (ds_real)(0.37 * k - 2.1);
    ds_gelu_forward_grad(oy, gy, y, 13);
    for (int k = 0; k < 13; k++) {
        ds_gelu_forward_grad(&o1, &g1, &y[k], 1);
        ck_assert(o1 == oy[k] && g1 == gy[k]);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gelu (" DS_REAL_NAME ")");
    TCase *tc = tcase_create("gelu");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, whole_float_range);
    tcase_add_test(tc, dense_grid_and_special_values);
    suite_add_tcase(s, tc);
    return ds_test_run(s);
}
