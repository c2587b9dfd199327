/* Tests of the lgcp energy (energies/lgcp.c): log R against a direct dense
 * evaluation on small grids (the normalised Gaussian prior through its own
 * Cholesky factor, plus the Poisson term of the binned points), gradient and
 * HVP against central finite differences (double build), the chunked
 * log-R-only path against the gradient path, the finpines data (126 points
 * in 111 cells: 99 with one, 9 with two, 3 with three) and the errors for a
 * missing or malformed points file.
 *
 * Built twice (DS_FLOAT_TOO): the float build checks the sgemm path against
 * the dense double evaluation with float tolerances. */
#define _POSIX_C_SOURCE 200809L
#include "diffsamp/energy.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IS_DOUBLE (sizeof(ds_real) == sizeof(double))

static ds_energy_args lgcp_args(const char *points, int grid, double variance, double length,
                                double mean)
{
    ds_energy_args a;
    memset(&a, 0, sizeof a);
    const char *keys[] = {"points", "grid", "variance", "length_scale", "mean"};
    const double nums[] = {0, grid, variance, length, mean};
    for (int i = 0; i < 5; i++) {
        snprintf(a.v[i].key, sizeof a.v[i].key, "%s", keys[i]);
        a.v[i].num = nums[i];
    }
    snprintf(a.v[0].text, sizeof a.v[0].text, "%s", points);
    a.count = 5;
    return a;
}

/* Writes text into a new temporary file; its path into path. */
static void write_temp(char *path, size_t n, const char *text)
{
    snprintf(path, n, "/tmp/ds_test_lgcp_XXXXXX");
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    ck_assert(f != NULL);
    fputs(text, f);
    fclose(f);
}

/* Points of the small-grid tests: the window comment maps [0, 2] x [0, 4] to
 * the unit square; (2, 4) is on the upper edges and goes to the last cell. */
static const char small_points[] =
    "# a comment\n# window: 0 2 0 4\nx,y\n0.1,0.1\n0.1,0.2\n1.2,3.9\n2,4\n 0.7 , 1.5\n\n0.99,2.01\n";

/* The cells of small_points on an n x n grid. */
static void small_counts(int n, double *y)
{
    const double p[][2] = {{0.1, 0.1}, {0.1, 0.2}, {1.2, 3.9}, {2, 4}, {0.7, 1.5}, {0.99, 2.01}};
    memset(y, 0, sizeof *y * (size_t)n * n);
    for (int k = 0; k < 6; k++) {
        int i = (int)floor(n * p[k][0] / 2.0), j = (int)floor(n * p[k][1] / 4.0);
        if (i > n - 1) i = n - 1;
        if (j > n - 1) j = n - 1;
        y[i * n + j] += 1;
    }
}

/* log N(x; mu 1, K) + sum_c (x_c y_c - exp(x_c)/d), densely: K built from
 * the formula, factored by a plain Cholesky, the solve by substitution. */
static double dense_log_target(int n, double s2, double beta, double mu, const double *y,
                               const double *x)
{
    const int d = n * n;
    double *l = calloc((size_t)d * d, sizeof *l), *z = malloc(sizeof *z * d);
    for (int a = 0; a < d; a++)
        for (int b = 0; b <= a; b++) {
            double di = a / n - b / n, dj = a % n - b % n;
            double v = s2 * exp(-sqrt(di * di + dj * dj) / (n * beta));
            for (int k = 0; k < b; k++) v -= l[a * d + k] * l[b * d + k];
            l[a * d + b] = a == b ? sqrt(v) : v / l[b * d + b];
        }
    double half_log_det = 0.0, quad = 0.0, lik = 0.0;
    for (int a = 0; a < d; a++) {
        double v = x[a] - mu;
        for (int k = 0; k < a; k++) v -= l[a * d + k] * z[k];
        z[a] = v / l[a * d + a];
        quad += z[a] * z[a];
        half_log_det += log(l[a * d + a]);
        lik += x[a] * y[a] - exp(x[a]) / d;
    }
    free(l);
    free(z);
    return -0.5 * d * DS_LOG_2PI - half_log_det - 0.5 * quad + lik;
}

static ds_energy *make_small(const char *path, int n, double s2, double beta, double mu)
{
    ds_energy_args a = lgcp_args(path, n, s2, beta, mu);
    ds_energy *e = NULL;
    ds_status rc = ds_energy_create("lgcp", n * n, &a, &e);
    ck_assert_msg(rc == DS_OK, "lgcp grid %d: %s", n, ds_error_message());
    return e;
}

/* m points mu + spread * z (rounded to ds_real). */
static void points(int m, int d, double mu, double spread, uint64_t seed, double *xd, ds_real *x)
{
    ds_rng r = ds_rng_make(seed, DS_RNG_TEST);
    for (int k = 0; k < m; k++) ds_rng_normal_d(r, 0, (uint64_t)k, 0, d, xd + (size_t)k * d);
    for (size_t i = 0; i < (size_t)m * d; i++) {
        x[i] = (ds_real)(mu + spread * xd[i]);
        xd[i] = (double)x[i];
    }
}

typedef struct prior_case {
    int n;
    double s2, beta, mu;
} prior_case;
static const prior_case prior_cases[] = {
    {4, 1.91, 1.0 / 33, 3.881281906951478}, {4, 0.5, 0.3, -1.0}, {3, 2.0, 0.1, 0.0}, {6, 1.91, 1.0 / 33, 2.0},
};

START_TEST(log_reward_matches_dense_evaluation)
{
    const prior_case *c = &prior_cases[_i];
    char path[64];
    write_temp(path, sizeof path, small_points);
    ds_energy *e = make_small(path, c->n, c->s2, c->beta, c->mu);
    ck_assert(!e->has_log_z);
    const int d = c->n * c->n, m = 5;
    double *y = malloc(sizeof *y * d), *xd = malloc(sizeof *xd * d * m);
    ds_real *x = malloc(sizeof *x * d * m), *lr = malloc(sizeof *lr * m), *lr2 = malloc(sizeof *lr2 * m),
            *g = malloc(sizeof *g * d * m);
    small_counts(c->n, y);
    points(m, d, c->mu, 1.0, 11 + (uint64_t)_i, xd, x);
    ck_assert_int_eq(ds_energy_log_reward(e, m, x, lr, g), DS_OK);
    ck_assert_int_eq(ds_energy_log_reward(e, m, x, lr2, NULL), DS_OK);
    for (int k = 0; k < m; k++) {
        double want = dense_log_target(c->n, c->s2, c->beta, c->mu, y, xd + (size_t)k * d);
        double tol = IS_DOUBLE ? 1e-10 * (1 + fabs(want)) : 2e-4 * (1 + fabs(want));
        ck_assert_msg(fabs((double)lr[k] - want) < tol, "grid %d point %d: log R %.15g, dense %.15g", c->n,
                      k, (double)lr[k], want);
        ck_assert_msg(fabs((double)lr2[k] - (double)lr[k]) <= tol, "with and without gradient differ");
    }
    ds_energy_destroy(&e);
    unlink(path);
    free(y); free(xd); free(x); free(lr); free(lr2); free(g);
}
END_TEST

/* Central differences of log R and of grad log R (double build). */
START_TEST(gradient_and_hvp_match_finite_differences)
{
    if (!IS_DOUBLE) return;
    const prior_case *c = &prior_cases[_i];
    char path[64];
    write_temp(path, sizeof path, small_points);
    ds_energy *e = make_small(path, c->n, c->s2, c->beta, c->mu);
    const int d = c->n * c->n, m = 3;
    const double h = 1e-5;
    double *xd = malloc(sizeof *xd * d * m), *vd = malloc(sizeof *vd * d * m);
    ds_real *x = malloc(sizeof *x * d * m), *v = malloc(sizeof *v * d * m), *g = malloc(sizeof *g * d * m),
            *hv = malloc(sizeof *hv * d * m), *xp = malloc(sizeof *xp * d), *gp = malloc(sizeof *gp * d),
            *gm = malloc(sizeof *gm * d), *lr = malloc(sizeof *lr * m);
    points(m, d, c->mu, 1.5, 21 + (uint64_t)_i, xd, x);
    points(m, d, 0.0, 1.0, 31 + (uint64_t)_i, vd, v);
    ck_assert_int_eq(ds_energy_log_reward(e, m, x, lr, g), DS_OK);
    ck_assert_int_eq(ds_energy_hvp(e, m, x, v, hv), DS_OK);
    double worst_g = 0, worst_h = 0;
    for (int k = 0; k < m; k++) {
        const ds_real *xk = x + (size_t)k * d;
        for (int j = 0; j < d; j++) {
            ds_real fp, fm;
            memcpy(xp, xk, sizeof *xp * d);
            xp[j] = xk[j] + h;
            ck_assert_int_eq(ds_energy_log_reward(e, 1, xp, &fp, NULL), DS_OK);
            xp[j] = xk[j] - h;
            ck_assert_int_eq(ds_energy_log_reward(e, 1, xp, &fm, NULL), DS_OK);
            double fd = (fp - fm) / (2 * h), an = g[(size_t)k * d + j];
            double err = fabs(fd - an) / (1e-6 + 1e-6 * fabs(an));
            if (err > worst_g) worst_g = err;
        }
        for (int j = 0; j < d; j++) xp[j] = xk[j] + h * v[(size_t)k * d + j];
        ck_assert_int_eq(ds_energy_log_reward(e, 1, xp, lr, gp), DS_OK);
        for (int j = 0; j < d; j++) xp[j] = xk[j] - h * v[(size_t)k * d + j];
        ck_assert_int_eq(ds_energy_log_reward(e, 1, xp, lr, gm), DS_OK);
        for (int j = 0; j < d; j++) {
            double fd = (gp[j] - gm[j]) / (2 * h), an = hv[(size_t)k * d + j];
            double err = fabs(fd - an) / (1e-6 + 1e-6 * fabs(an));
            if (err > worst_h) worst_h = err;
        }
    }
    printf("lgcp grid %d: gradient FD err %.3g, HVP FD err %.3g (units of 1e-6)\n", c->n, worst_g, worst_h);
    ck_assert_msg(worst_g <= 1.0, "gradient differs from central differences (err %g)", worst_g);
    ck_assert_msg(worst_h <= 1.0, "HVP differs from central differences (err %g)", worst_h);
    ds_energy_destroy(&e);
    unlink(path);
    free(xd); free(vd); free(x); free(v); free(g); free(hv); free(xp); free(gp); free(gm); free(lr);
}
END_TEST

/* More rows than one product chunk: log R alone equals log R with gradient. */
START_TEST(chunked_log_reward_matches)
{
    char path[64];
    write_temp(path, sizeof path, small_points);
    ds_energy *e = make_small(path, 4, 1.91, 1.0 / 33, 3.88);
    const int d = 16, m = 700;
    double *xd = malloc(sizeof *xd * d * m);
    ds_real *x = malloc(sizeof *x * d * m), *lr = malloc(sizeof *lr * m), *lr2 = malloc(sizeof *lr2 * m),
            *g = malloc(sizeof *g * d * m);
    points(m, d, 3.88, 2.0, 41, xd, x);
    ck_assert_int_eq(ds_energy_log_reward(e, m, x, lr, g), DS_OK);
    ck_assert_int_eq(ds_energy_log_reward(e, m, x, lr2, NULL), DS_OK);
#if defined(DS_REAL_DOUBLE)
    const double tol = 0; /* the same products in double: bitwise */
#else
    /* in float, lgcp_log_reward's two paths are one sgemm for the whole
     * batch (with the gradient) and sgemms of LGCP_CHUNK rows (without), and
     * OpenBLAS may block the two sizes differently, so a sum may round
     * differently in its last bits (seen on an AVX-512 EPYC: row 270) */
    const double tol = 1e-6;
#endif
    for (int k = 0; k < m; k++)
        ck_assert_msg(fabs((double)lr[k] - lr2[k]) <= tol * (1 + fabs((double)lr[k])), "row %d: %.9g vs %.9g", k,
                      lr[k], lr2[k]);
    ds_energy_destroy(&e);
    unlink(path);
    free(xd); free(x); free(lr); free(lr2); free(g);
}
END_TEST

/* The default data: y_c = grad_c(mu 1) + a exp(mu), since K^{-1}(x - mu) = 0. */
START_TEST(finpines_counts)
{
    ds_energy *e = NULL;
    ds_status rc = ds_energy_create("lgcp", 0, NULL, &e);
    if (rc != DS_OK && strstr(ds_error_message(), "finpines") && !DS_HAVE_RSCRIPT) {
        printf("SKIPPED finpines_counts: no Rscript at configure time, so no finpines.csv (%s)\n",
               ds_error_message());
        ds_error_clear();
        return;
    }
    ck_assert_msg(rc == DS_OK, "lgcp with the default points: %s", ds_error_message());
    ck_assert_int_eq(e->dim, 1600);
    ck_assert(!e->has_log_z);
    const double mu = 3.881281906951478, a = 1.0 / 1600;
    ds_real *x = malloc(sizeof *x * 1600), *g = malloc(sizeof *g * 1600), lr;
    for (int j = 0; j < 1600; j++) x[j] = (ds_real)mu;
    ck_assert_int_eq(ds_energy_log_reward(e, 1, x, &lr, g), DS_OK);
    int total = 0, nonempty = 0, by[4] = {0};
    for (int j = 0; j < 1600; j++) {
        /* In float, (ds_real)mu differs from mu, so K^{-1}(x - mu) is not
         * exactly 0 and x K^{-1} rounds: counts come back to about 1e-2. */
        double y = (double)g[j] + a * exp((double)x[j]);
        double yr = floor(y + 0.5);
        ck_assert_msg(fabs(y - yr) < (IS_DOUBLE ? 1e-8 : 0.05), "cell %d: count %.10g not an integer", j, y);
        ck_assert(yr >= 0 && yr <= 3);
        total += (int)yr;
        nonempty += yr > 0;
        by[(int)yr]++;
    }
    printf("finpines: %d points, %d non-empty cells (%d, %d, %d with 1, 2, 3)\n", total, nonempty, by[1],
           by[2], by[3]);
    ck_assert_int_eq(total, 126);
    ck_assert_int_eq(nonempty, 111);
    ck_assert_int_eq(by[1], 99);
    ck_assert_int_eq(by[2], 9);
    ck_assert_int_eq(by[3], 3);
    ds_energy_destroy(&e);
    free(x); free(g);
}
END_TEST

/* create fails with DS_ERR_FORMAT/IO and a message containing want. */
static void expect_refused(const char *text, const char *want)
{
    char path[64] = "/nonexistent/points.csv";
    if (text) write_temp(path, sizeof path, text);
    ds_energy_args a = lgcp_args(path, 4, 1.91, 1.0 / 33, 3.88);
    ds_energy *e = NULL;
    ds_status rc = ds_energy_create("lgcp", 16, &a, &e);
    ck_assert_msg(rc == DS_ERR_FORMAT || rc == DS_ERR_IO, "expected a refusal for %s", path);
    ck_assert(e == NULL);
    ck_assert_msg(strstr(ds_error_message(), path) && strstr(ds_error_message(), want),
                  "message '%s' should name %s and say '%s'", ds_error_message(), path, want);
    ds_error_clear();
    if (text) unlink(path);
}

START_TEST(bad_points_files_are_refused)
{
    expect_refused(NULL, "cannot open");
    expect_refused("x,y\n0.5,0.5\n0.5;0.5\n", ":3: error: expected a point");
    expect_refused("x,y\n0.5,0.5,0.1\n", ":2: error: expected a point");
    expect_refused("x,y\n0.5,nan\n", ":2: error: expected a point");
    expect_refused("x,y\n1.5,0.5\n", ":2: error: point (1.5, 0.5) lies outside");
    expect_refused("# window: 0 1 1 0\nx,y\n0.5,0.5\n", ":1: error: expected '# window");
    expect_refused("0.5\n", ":1: error: expected a header");
    expect_refused("x,y\n", "no points");
    expect_refused("", "no points");
    /* grid and dim must agree */
    ds_energy_args a = lgcp_args("x.csv", 4, 1.91, 1.0 / 33, 3.88);
    ds_energy *e = NULL;
    ck_assert_int_eq(ds_energy_create("lgcp", 25, &a, &e), DS_ERR_CONFIG);
    ck_assert_msg(strstr(ds_error_message(), "energy.dim = 16"), "%s", ds_error_message());
    ds_error_clear();
    ck_assert_int_eq(ds_energy_create("lgcp", 15, &a, &e), DS_ERR_CONFIG);
    ds_error_clear();
}
END_TEST

static Suite *lgcp_suite(void)
{
    Suite *s = suite_create("lgcp");
    TCase *t = tcase_create("lgcp");
    tcase_set_timeout(t, 120);
    const int nc = (int)(sizeof prior_cases / sizeof prior_cases[0]);
    tcase_add_loop_test(t, log_reward_matches_dense_evaluation, 0, nc);
    tcase_add_loop_test(t, gradient_and_hvp_match_finite_differences, 0, nc);
    tcase_add_test(t, chunked_log_reward_matches);
    tcase_add_test(t, finpines_counts);
    tcase_add_test(t, bad_points_files_are_refused);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return ds_test_run(lgcp_suite()); }
