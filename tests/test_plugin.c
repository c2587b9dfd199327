/* Tests of energy plugins (energies/plugin.c): the example plugin
 * (energies/examples/banana.c, built in double for this test) through the
 * registry, its gradient and HVP against central finite differences and its
 * density against quadrature (log Z = 0), its keys, the record of its file
 * and SHA-256 (with the SHA-256 test vectors of FIPS 180-2), what a plugin
 * without optional parts disables, and the refusals: a missing file, no
 * entry point, another ABI version, another precision, non-finite values,
 * a gradient asked of a plugin without one. */
#define _POSIX_C_SOURCE 200809L
#include "diffsamp/energy.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ds_energy_args plugin_args(const char *lib, const char *key, double value)
{
    ds_energy_args a;
    memset(&a, 0, sizeof a);
    snprintf(a.v[0].key, sizeof a.v[0].key, "path");
    snprintf(a.v[0].text, sizeof a.v[0].text, "%s/%s.so", DS_PLUGIN_DIR, lib);
    a.count = 1;
    if (key) {
        snprintf(a.v[1].key, sizeof a.v[1].key, "%s", key);
        a.v[1].num = value;
        a.count = 2;
    }
    return a;
}

/* create fails with code and a message naming the library and saying want. */
static void expect_refused(const char *lib, ds_status code, const char *want)
{
    ds_energy_args a = plugin_args(lib, NULL, 0);
    ds_energy *e = NULL;
    ds_status rc = ds_energy_create("plugin", 0, &a, &e);
    ck_assert_msg(rc == code, "%s: status %d, expected %d (%s)", lib, rc, code, ds_error_message());
    ck_assert(e == NULL);
    char name[64];
    snprintf(name, sizeof name, "%s.so", lib);
    ck_assert_msg(strstr(ds_error_message(), name) && strstr(ds_error_message(), want),
                  "message '%s' should name %s and say '%s'", ds_error_message(), name, want);
    ds_error_clear();
}

START_TEST(example_loads_and_its_derivatives_match_finite_differences)
{
    const int dims[] = {2, 5};
    ds_energy_args a = plugin_args("banana_d", "curvature", 0.7);
    ds_energy *e = NULL;
    ck_assert_msg(ds_energy_create("plugin", dims[_i], &a, &e) == DS_OK, "%s", ds_error_message());
    ck_assert_int_eq(e->dim, dims[_i]);
    ck_assert(e->has_log_z && e->log_z == 0.0);
    ck_assert(e->vt->hvp != NULL && e->vt->sample == NULL);
    ck_assert_str_eq(e->vt->name, "plugin");
    const ds_energy_plugin_lib *lib = ds_energy_plugin_of(e);
    ck_assert(lib != NULL && lib == ds_energy_plugin_last() && lib->has_gradient);
    char hex[65];
    ck_assert_int_eq(ds_sha256_file(lib->file, hex), DS_OK);
    ck_assert_str_eq(hex, lib->sha256);
    ck_assert(strstr(lib->file, "banana_d.so") && lib->file[0] == '/');

    const int d = dims[_i], m = 4;
    const double h = 1e-5;
    ds_real x[4 * 5], v[4 * 5], g[4 * 5], hv[4 * 5], xp[5], gp[5], gm[5], lr[4], fp, fm;
    ds_rng r = ds_rng_make(5, DS_RNG_TEST);
    double z[5];
    for (int k = 0; k < m; k++) {
        ds_rng_normal_d(r, 0, (uint64_t)k, 0, d, z);
        for (int j = 0; j < d; j++) x[k * d + j] = 2.0 * z[j];
        ds_rng_normal_d(r, 1, (uint64_t)k, 0, d, z);
        for (int j = 0; j < d; j++) v[k * d + j] = z[j];
    }
    ck_assert_int_eq(ds_energy_log_reward(e, m, x, lr, g), DS_OK);
    ck_assert_int_eq(ds_energy_hvp(e, m, x, v, hv), DS_OK);
    for (int k = 0; k < m; k++) {
        for (int j = 0; j < d; j++) {
            memcpy(xp, x + k * d, sizeof *xp * d);
            xp[j] += h;
            ck_assert_int_eq(ds_energy_log_reward(e, 1, xp, &fp, NULL), DS_OK);
            xp[j] -= 2 * h;
            ck_assert_int_eq(ds_energy_log_reward(e, 1, xp, &fm, NULL), DS_OK);
            double fd = (fp - fm) / (2 * h), an = g[k * d + j];
            ck_assert_msg(fabs(fd - an) <= 1e-6 * (1 + fabs(an)), "grad %d,%d: %g vs FD %g", k, j, an, fd);
        }
        for (int j = 0; j < d; j++) xp[j] = x[k * d + j] + h * v[k * d + j];
        ck_assert_int_eq(ds_energy_log_reward(e, 1, xp, &fp, gp), DS_OK);
        for (int j = 0; j < d; j++) xp[j] = x[k * d + j] - h * v[k * d + j];
        ck_assert_int_eq(ds_energy_log_reward(e, 1, xp, &fm, gm), DS_OK);
        for (int j = 0; j < d; j++) {
            double fd = (gp[j] - gm[j]) / (2 * h), an = hv[k * d + j];
            ck_assert_msg(fabs(fd - an) <= 1e-6 * (1 + fabs(an)), "hvp %d,%d: %g vs FD %g", k, j, an, fd);
        }
    }
    if (d == 2) { /* normalised: the integral of R over a wide box is 1 */
        double sum = 0, step = 0.02;
        for (double x1 = -14; x1 < 14; x1 += step)
            for (double x2 = -20; x2 < 80; x2 += step) {
                ds_real p[2] = {(ds_real)x1, (ds_real)x2}, l;
                ds_energy_log_reward(e, 1, p, &l, NULL);
                sum += exp(l) * step * step;
            }
        ck_assert_msg(fabs(sum - 1) < 1e-4, "integral of R %.8g, expected 1 (log Z = 0)", sum);
    }
    ds_energy_destroy(&e);
}
END_TEST

START_TEST(keys_are_checked_against_the_library_table)
{
    ds_energy *e = NULL;
    ds_energy_args a = plugin_args("banana_d", "curvatur", 1);
    ck_assert_int_eq(ds_energy_create("plugin", 0, &a, &e), DS_ERR_CONFIG);
    ck_assert_msg(strstr(ds_error_message(), "curvatur") && strstr(ds_error_message(), "path, curvature, scale"),
                  "%s", ds_error_message());
    ds_error_clear();
    a = plugin_args("banana_d", "scale", 0);
    ck_assert_int_eq(ds_energy_create("plugin", 0, &a, &e), DS_ERR_CONFIG);
    ds_error_clear();
    a = plugin_args("banana_d", NULL, 0);
    ck_assert_int_eq(ds_energy_create("plugin", 1, &a, &e), DS_ERR_CONFIG); /* its check_dim: dim >= 2 */
    ds_error_clear();
    const ds_energy_vtable *vt = NULL;
    ck_assert_int_eq(ds_energy_family("plugin", &a, &vt), DS_OK);
    ck_assert(vt != ds_energy_lookup("plugin") && vt->nkeys == 3 && vt->default_dim == 2);
    ck_assert_str_eq(vt->keys[0].name, "path");
    ck_assert_int_eq(ds_energy_family("plugin", NULL, &vt), DS_OK);
    ck_assert(vt == ds_energy_lookup("plugin"));
}
END_TEST

START_TEST(broken_libraries_are_refused_naming_the_file)
{
    expect_refused("missing", DS_ERR_CONFIG, "cannot find");
    expect_refused("no_entry", DS_ERR_CONFIG, "has no entry point 'ds_energy_plugin'");
    expect_refused("bad_abi", DS_ERR_FORMAT, "was built for energy ABI version 42; this diffsamp has version 1");
    expect_refused("banana_f", DS_ERR_FORMAT, "was built with ds_real of 4 bytes");

    /* NaN away from 0: create passes (log R(0) = 0), evaluation does not */
    ds_energy_args a = plugin_args("nan_values", NULL, 0);
    ds_energy *e = NULL;
    ck_assert_int_eq(ds_energy_create("plugin", 0, &a, &e), DS_OK);
    ds_real x[3] = {1, 0, 0}, lr;
    ck_assert_int_eq(ds_energy_log_reward(e, 1, x, &lr, NULL), DS_ERR_NUMERIC);
    ck_assert_msg(strstr(ds_error_message(), "nan_values.so") && strstr(ds_error_message(), "finite"), "%s",
                  ds_error_message());
    ds_error_clear();
    ds_energy_destroy(&e);
}
END_TEST

START_TEST(missing_parts_are_optional_and_named)
{
    ds_energy_args a = plugin_args("no_gradient", NULL, 0);
    ds_energy *e = NULL;
    ck_assert_msg(ds_energy_create("plugin", 0, &a, &e) == DS_OK, "%s", ds_error_message());
    ck_assert(!e->has_log_z && e->vt->hvp == NULL && !ds_energy_has_sampler(e));
    ck_assert(!ds_energy_plugin_of(e)->has_gradient);
    ds_real x[3] = {1, 2, 3}, lr, g[3];
    ck_assert_int_eq(ds_energy_log_reward(e, 1, x, &lr, NULL), DS_OK);
    ck_assert(lr == (ds_real)-7.0);
    ck_assert_int_eq(ds_energy_log_reward(e, 1, x, &lr, g), DS_ERR_CONFIG);
    ck_assert_msg(strstr(ds_error_message(), "no_gradient.so") && strstr(ds_error_message(), "has no gradient"),
                  "%s", ds_error_message());
    ds_error_clear();
    ck_assert_int_eq(ds_energy_hvp(e, 1, x, x, g), DS_ERR_INVALID);
    ds_error_clear();
    char buf[1024];
    ds_energy_plugin_missing(e->vt, 0, buf, sizeof buf);
    ck_assert_msg(strstr(buf, "no gradient") && strstr(buf, "no HVP") && strstr(buf, "no exact sampler") &&
                  strstr(buf, "no log Z"), "%s", buf);
    ds_energy_destroy(&e);
    ck_assert(ds_energy_plugin_of(NULL) == NULL);
}
END_TEST

/* FIPS 180-2 examples, and a file of more than one read buffer. */
START_TEST(sha256_of_files)
{
    static const struct { const char *text; const char *hex; } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    char path[] = "/tmp/ds_test_sha_XXXXXX", hex[65];
    for (int i = 0; i < 4; i++) {
        int fd = mkstemp(path);
        ck_assert(fd >= 0);
        FILE *f = fdopen(fd, "wb");
        if (i < 3)
            fputs(v[i].text, f);
        else
            for (int k = 0; k < 1000000; k++) fputc('a', f);
        fclose(f);
        ck_assert_int_eq(ds_sha256_file(path, hex), DS_OK);
        ck_assert_str_eq(hex, i < 3 ? v[i].hex : "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
        unlink(path);
        memcpy(path + strlen(path) - 6, "XXXXXX", 6);
    }
    ck_assert_int_eq(ds_sha256_file("/nonexistent/x.so", hex), DS_ERR_IO);
    ds_error_clear();
}
END_TEST

static Suite *plugin_suite(void)
{
    Suite *s = suite_create("plugin");
    TCase *t = tcase_create("plugin");
    tcase_set_timeout(t, 60);
    tcase_add_loop_test(t, example_loads_and_its_derivatives_match_finite_differences, 0, 2);
    tcase_add_test(t, keys_are_checked_against_the_library_table);
    tcase_add_test(t, broken_libraries_are_refused_naming_the_file);
    tcase_add_test(t, missing_parts_are_optional_and_named);
    tcase_add_test(t, sha256_of_files);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return ds_test_run(plugin_suite()); }
