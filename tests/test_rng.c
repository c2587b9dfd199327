/* Tests of the counter-based generator: Random123 known answers, purity of
 * draws, and the moments of the normal and uniform streams. */
#include "diffsamp/rng.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>

START_TEST(philox_known_answers)
{
    /* Random123 kat_vectors for philox4x32_10. */
    const uint32_t ctr[3][4] = {{0, 0, 0, 0},
                                {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                                {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}};
    const uint32_t key[3][2] = {{0, 0}, {0xffffffffu, 0xffffffffu}, {0xa4093822u, 0x299f31d0u}};
    const uint32_t want[3][4] = {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u},
                                 {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu},
                                 {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}};
    for (int k = 0; k < 3; k++) {
        uint32_t out[4];
        ds_philox4x32_10(ctr[k], key[k], out);
        for (int j = 0; j < 4; j++) ck_assert_uint_eq(out[j], want[k][j]);
    }
}
END_TEST

START_TEST(draws_are_pure_functions_of_the_counter)
{
    ds_rng r = ds_rng_make(12345, DS_RNG_FORWARD);
    double a[7], b[7], c[7];
    ds_rng_normal_d(r, 3, 17, 5, 7, a);
    ds_rng_normal_d(r, 3, 16, 5, 7, c);  /* another sample in between */
    ds_rng_normal_d(r, 3, 17, 5, 7, b);
    for (int i = 0; i < 7; i++) ck_assert(a[i] == b[i]);
    ck_assert(a[0] != c[0]);
    /* A prefix of a longer draw is the shorter draw. */
    double d[3];
    ds_rng_normal_d(r, 3, 17, 5, 3, d);
    for (int i = 0; i < 3; i++) ck_assert(d[i] == a[i]);
    /* Another purpose or seed gives other numbers. */
    ds_rng_normal_d(ds_rng_make(12345, DS_RNG_BACKWARD), 3, 17, 5, 7, c);
    ck_assert(a[0] != c[0]);
    ds_rng_normal_d(ds_rng_make(12346, DS_RNG_FORWARD), 3, 17, 5, 7, c);
    ck_assert(a[0] != c[0]);
    /* ds_real draws: the double draws rounded in the double build; in the
     * float build (vectorised Box-Muller) equal to float precision, and still
     * a pure function of the counter (a prefix of a longer draw). */
    ds_real e[7];
    ds_rng_normal(r, 3, 17, 5, 7, e);
    for (int i = 0; i < 7; i++) {
        if (sizeof(ds_real) == sizeof(double)) ck_assert(e[i] == (ds_real)a[i]);
        else ck_assert_msg(fabs((double)e[i] - a[i]) <= 2e-6 * (1 + fabs(a[i])), "%d: %.9g vs %.9g", i, (double)e[i], a[i]);
    }
    ds_real big[40], small[3];
    ds_rng_normal(r, 9, 4, 2, 40, big);
    ds_rng_normal(r, 9, 4, 2, 3, small);
    for (int i = 0; i < 3; i++) ck_assert(big[i] == small[i]);
    /* The batched draw is the per-sample draw, for small and large d. */
    for (int dd = 1; dd <= 20; dd += 3) {
        ds_real batch[11 * 20], one[20];
        ds_rng_normal_batch(r, 9, 100, 11, 2, dd, batch);
        for (int q = 0; q < 11; q++) {
            ds_rng_normal(r, 9, 100 + (uint64_t)q, 2, dd, one);
            for (int k = 0; k < dd; k++)
                ck_assert_msg(batch[q * dd + k] == one[k], "d %d sample %d coordinate %d", dd, q, k);
        }
    }
    double bigd[40];
    ds_rng_normal_d(r, 9, 4, 2, 40, bigd);
    for (int i = 0; i < 40; i++) ck_assert(fabs((double)big[i] - bigd[i]) <= 2e-6 * (1 + fabs(bigd[i])));
}
END_TEST

START_TEST(normal_and_uniform_moments)
{
    ds_rng r = ds_rng_make(7, DS_RNG_TEST);
    const int n = 200000;
    double *x = malloc(sizeof(double) * n);
    double *u = malloc(sizeof(double) * n);
    for (int s = 0; s < n / 100; s++) {
        ds_rng_normal_d(r, 0, (uint64_t)s, 0, 100, x + 100 * s);
        ds_rng_uniform_d(r, 1, (uint64_t)s, 0, 100, u + 100 * s);
    }
    double m1 = 0, m2 = 0, m3 = 0, m4 = 0, um = 0, uv = 0, umin = 1, umax = 0;
    for (int i = 0; i < n; i++) {
        m1 += x[i]; m2 += x[i] * x[i]; m3 += x[i] * x[i] * x[i]; m4 += x[i] * x[i] * x[i] * x[i];
        um += u[i]; uv += (u[i] - 0.5) * (u[i] - 0.5);
        if (u[i] < umin) umin = u[i];
        if (u[i] > umax) umax = u[i];
    }
    m1 /= n; m2 /= n; m3 /= n; m4 /= n; um /= n; uv /= n;
    /* Standard errors: 1/sqrt(n) = 0.0022; bounds are ~5 sigma. */
    ck_assert_double_lt(fabs(m1), 0.012);
    ck_assert_double_lt(fabs(m2 - 1.0), 0.02);
    ck_assert_double_lt(fabs(m3), 0.04);
    ck_assert_double_lt(fabs(m4 - 3.0), 0.1);
    ck_assert_double_lt(fabs(um - 0.5), 0.004);
    ck_assert_double_lt(fabs(uv - 1.0 / 12.0), 0.002);
    ck_assert(umin > 0.0 && umax < 1.0);
    /* The ds_real path (vectorised in the float build) has the same moments. */
    ds_real *xr = malloc(sizeof(ds_real) * n);
    for (int s = 0; s < n / 100; s++) ds_rng_normal(r, 2, (uint64_t)s, 0, 100, xr + 100 * s);
    double r1 = 0, r2 = 0, r4 = 0;
    for (int i = 0; i < n; i++) {
        double v = (double)xr[i];
        r1 += v; r2 += v * v; r4 += v * v * v * v;
    }
    ck_assert_double_lt(fabs(r1 / n), 0.012);
    ck_assert_double_lt(fabs(r2 / n - 1.0), 0.02);
    ck_assert_double_lt(fabs(r4 / n - 3.0), 0.1);
    free(xr);
    free(x);
    free(u);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, philox_known_answers);
    tcase_add_test(tc, draws_are_pure_functions_of_the_counter);
    tcase_add_test(tc, normal_and_uniform_moments);
    suite_add_tcase(s, tc);
    return ds_test_run(s);
}
