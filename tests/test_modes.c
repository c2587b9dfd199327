/* Tests of the per-mode diagnostic (modes.h): the barrier is a critical
 * point of g; the right-hand weight agrees with an independent quadrature
 * (composite Gauss-Legendre, here) to 1e-12; the Poisson-binomial pmf
 * against the binomial formula and a brute-force enumeration; on exact
 * many_well and 25gmm samples the distances lie within their stated
 * statistical bounds, and on deliberately biased samples (exact samples with
 * one well flipped in a fraction of them, or the corner modes of 25gmm
 * depleted by 30 %) they exceed them. */
#include "diffsamp/energy.h"
#include "diffsamp/modes.h"
#include "diffsamp/rng.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double g(double a) { return -a * a * a * a + 6.0 * a * a + 0.5 * a; }

START_TEST(barrier_is_the_minimum_between_the_wells)
{
    const double b = ds_modes_well_barrier();
    ck_assert_double_lt(fabs(-4.0 * b * b * b + 12.0 * b + 0.5), 1e-14);
    ck_assert(b < 0 && b > -0.05);
    ck_assert(g(b) < g(b - 1e-4) && g(b) < g(b + 1e-4)); /* a minimum of log R: the barrier */
}
END_TEST

/* 20-point Gauss-Legendre on 4000 panels of [lo, hi]: an independent rule. */
static double gauss_legendre(double lo, double hi)
{
    /* nodes and weights of the 5-point rule, applied on many panels */
    static const double xk[5] = {0.0, 0.5384693101056831, -0.5384693101056831, 0.9061798459386640,
                                 -0.9061798459386640};
    static const double wk[5] = {0.5688888888888889, 0.4786286704993665, 0.4786286704993665, 0.2369268850561891,
                                 0.2369268850561891};
    const int panels = 20000;
    const double h = (hi - lo) / panels;
    double s = 0.0;
    for (int i = 0; i < panels; i++) {
        const double c = lo + (i + 0.5) * h;
        for (int k = 0; k < 5; k++) s += wk[k] * 0.5 * h * exp(g(c + 0.5 * h * xk[k]) - 10.0);
    }
    return s;
}

START_TEST(right_weight_matches_an_independent_quadrature)
{
    const double b = ds_modes_well_barrier();
    const double l = gauss_legendre(-8.0, b), r = gauss_legendre(b, 8.0);
    const double w = ds_modes_well_right_weight();
    ck_assert_double_lt(fabs(w - r / (l + r)), 1e-12);
    ck_assert_double_lt(fabs(w - 0.844311), 5e-7); /* the value documented in modes.h */
    /* the whole integral is the many_well one: log Z1 */
    ds_energy *e = NULL;
    ck_assert(ds_energy_create("many_well", 2, NULL, &e) == DS_OK);
    ck_assert_double_lt(fabs(log(l + r) + 10.0 + 0.5 * DS_LOG_2PI - e->log_z), 1e-12);
    ds_energy_destroy(&e);
}
END_TEST

START_TEST(poisson_binomial_pmf)
{
    double p[6] = {0.1, 0.5, 0.9, 0.3, 0.7, 0.25}, pmf[7], brute[7] = {0};
    ds_modes_poisson_binomial(6, p, pmf);
    for (int mask = 0; mask < 64; mask++) {
        double q = 1.0;
        int k = 0;
        for (int j = 0; j < 6; j++) {
            if (mask >> j & 1) { q *= p[j]; k++; } else q *= 1.0 - p[j];
        }
        brute[k] += q;
    }
    for (int k = 0; k <= 6; k++) ck_assert_double_lt(fabs(pmf[k] - brute[k]), 1e-15);
    /* equal p: binomial(16, w) */
    double pe[16], pm[17];
    for (int j = 0; j < 16; j++) pe[j] = 0.8;
    ds_modes_poisson_binomial(16, pe, pm);
    double c = 1.0;
    for (int k = 0; k <= 16; k++) {
        ck_assert_double_lt(fabs(pm[k] - c * pow(0.8, k) * pow(0.2, 16 - k)), 1e-14);
        c = c * (16 - k) / (k + 1);
    }
}
END_TEST

/* Statistical bounds with failure probability delta = 1e-6 each, for n
 * samples. TV of an empirical histogram: E TV <= 0.5 sum_k sqrt(p_k (1 - p_k)
 * / n) and TV changes by at most 1/n per sample (McDiarmid), so
 * TV <= E + sqrt(ln(1/delta) / (2 n)). One pair's fraction: Hoeffding with a
 * union bound over the pairs, |f - w| <= sqrt(ln(2 pairs / delta) / (2 n)). */
static double tv_bound(int m, const double *p, long n)
{
    double e = 0.0;
    for (int k = 0; k < m; k++) e += sqrt(p[k] * (1.0 - p[k]) / (double)n);
    return 0.5 * e + sqrt(log(1e6) / (2.0 * n));
}

static ds_real *exact(const char *name, int dim, long n)
{
    ds_energy *e = NULL;
    ck_assert(ds_energy_create(name, dim, NULL, &e) == DS_OK);
    ds_real *x = malloc(sizeof *x * (size_t)n * dim);
    ck_assert(ds_energy_sample(e, ds_rng_make(3, DS_RNG_GROUND_TRUTH), 0, (int)n, x) == DS_OK);
    ck_assert(ds_modes_kind_of(e) == (strcmp(name, "many_well") == 0 ? DS_MODES_WELLS : DS_MODES_GRID));
    ds_energy_destroy(&e);
    return x;
}

static void wells(const ds_real *x, long n, int dim, const double *log_w, ds_modes_result *r)
{
    const int pairs = dim / 2;
    double *c = calloc((size_t)(3 * pairs + 2), sizeof *c);
    double shift = -INFINITY;
    for (long i = 0; log_w && i < n; i++) shift = log_w[i] > shift ? log_w[i] : shift;
    ds_modes_wells_counts(x, n, dim, log_w, shift, c, c + pairs, c + 2 * pairs + 1);
    ds_modes_wells_finish(dim, n, c, c + pairs, log_w ? c + 2 * pairs + 1 : NULL, r);
    free(c);
}

START_TEST(many_well_exact_samples_are_within_the_bounds_and_biased_ones_not)
{
    const int dim = 32, pairs = 16;
    const long n = 4000;
    ds_real *x = exact("many_well", dim, n);
    double p[16], pmf[17];
    const double w = ds_modes_well_right_weight();
    for (int j = 0; j < pairs; j++) p[j] = w;
    ds_modes_poisson_binomial(pairs, p, pmf);
    const double tvb = tv_bound(pairs + 1, pmf, n), devb = sqrt(log(2.0 * pairs / 1e-6) / (2.0 * n));
    ds_modes_result r;
    wells(x, n, dim, NULL, &r);
    ck_assert_double_eq(r.right_exact, w);
    ck_assert_double_lt(r.right_max_dev, devb);
    ck_assert_double_lt(fabs(r.right_fraction - w), devb);
    ck_assert_double_lt(r.wells_tv, tvb);
    ck_assert(isnan(r.wells_tv_rw) && isnan(r.grid_tv));
    /* equal importance weights reproduce the raw distance */
    double *lw = calloc((size_t)n, sizeof *lw);
    wells(x, n, dim, lw, &r);
    ck_assert_double_lt(fabs(r.wells_tv_rw - r.wells_tv), 1e-12);
    /* importance weights that undo a bias: samples with k right wells
     * weighted by pmf(k) / empirical(k) give a weighted TV of 0 */
    double hist[17] = {0};
    for (long i = 0; i < n; i++) {
        int k = 0;
        for (int q = 0; q < pairs; q++) k += x[i * dim + 2 * q] > ds_modes_well_barrier();
        hist[k] += 1.0 / n;
    }
    for (long i = 0; i < n; i++) {
        int k = 0;
        for (int q = 0; q < pairs; q++) k += x[i * dim + 2 * q] > ds_modes_well_barrier();
        lw[i] = log(pmf[k] / hist[k]);
    }
    wells(x, n, dim, lw, &r);
    ck_assert_double_lt(r.wells_tv_rw, 1e-3); /* only the never-seen counts remain */
    /* a bias of the kind a sampler has: 1 sample in 5 with pair 3 flipped to
     * the left well (fraction w - 0.17) */
    for (long i = 0; i < n; i += 5) x[i * dim + 6] = (ds_real)(-fabs((double)x[i * dim + 6]) - 0.5);
    wells(x, n, dim, NULL, &r);
    ck_assert_double_gt(r.right_max_dev, devb);
    /* all samples shifted to one well more on the right where possible */
    for (long i = 0; i < n; i++)
        for (int q = 0; q < pairs; q++)
            if (x[i * dim + 2 * q] < 0) { x[i * dim + 2 * q] = 1.7f; break; }
    wells(x, n, dim, NULL, &r);
    ck_assert_double_gt(r.wells_tv, tvb);
    ck_assert_double_gt(r.wells_tv, 0.2);
    free(lw);
    free(x);
}
END_TEST

START_TEST(grid_exact_samples_are_within_the_bound_and_depleted_corners_not)
{
    const long n = 20000;
    ds_real *x = exact("25gmm", 2, n);
    double cells[25] = {0}, p[25];
    for (int k = 0; k < 25; k++) p[k] = 1.0 / 25;
    ds_modes_grid_counts(x, n, 5, 5.0, cells);
    ds_modes_result r;
    ds_modes_grid_finish(5, cells, &r);
    const double b = tv_bound(25, p, n);
    ck_assert_double_lt(r.grid_tv, b);
    ck_assert(isnan(r.wells_tv));
    /* the corner modes 30 % short (their samples moved to the centre): 0.048
     * of the mass, outside the bound (0.036 at n = 20000). At the 2000
     * samples of an evaluation the bound is 0.11, so the 2-3 % corner
     * deficit the issue saw is below what one evaluation can resolve. */
    long moved = 0;
    for (long i = 0; i < n && moved < (long)(0.3 * 4 * n / 25); i++)
        if (fabs((double)x[2 * i]) > 7.5 && fabs((double)x[2 * i + 1]) > 7.5) {
            x[2 * i] = x[2 * i + 1] = 0;
            moved++;
        }
    memset(cells, 0, sizeof cells);
    ds_modes_grid_counts(x, n, 5, 5.0, cells);
    ds_modes_grid_finish(5, cells, &r);
    ck_assert_double_gt(r.grid_tv, b);
    free(x);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("modes");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, barrier_is_the_minimum_between_the_wells);
    tcase_add_test(tc, right_weight_matches_an_independent_quadrature);
    tcase_add_test(tc, poisson_binomial_pmf);
    tcase_add_test(tc, many_well_exact_samples_are_within_the_bounds_and_biased_ones_not);
    tcase_add_test(tc, grid_exact_samples_are_within_the_bound_and_depleted_corners_not);
    suite_add_tcase(s, tc);
    return ds_test_run(s);
}
