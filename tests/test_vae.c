/* Tests of the VAE module and the vae posterior energy: log R(z; x) and its
 * z-gradient against the reference values stored in the pretrained MNIST
 * VAE file, gradient and Hessian-vector products against central finite
 * differences in double, the file's round trip and refusals, and the idx
 * reader (a written file, its refusals, and the MNIST test set in
 * ../shared/data/mnist).
 *
 * Built twice (test_vae and test_vae_float): the reference values must hold
 * in the precision the program runs.
 *
 * Tests that need ../shared print SKIPPED and pass when it is absent. */
#define _POSIX_C_SOURCE 200809L /* mkstemp */
#include "diffsamp/energy.h"
#include "diffsamp/idx.h"
#include "diffsamp/vae.h"
#include "testutil.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define VAE_FILE "data/mnist/vae_bce_mnist_100ep.h5"
#define MNIST_TEST "data/mnist/t10k-images-idx3-ubyte.gz"

/* The vae energy of the file at path; in_double sets energy.double. */
static ds_energy *make_vae_in(const char *path, int in_double)
{
    ds_energy_args a = {0};
    a.count = 2;
    snprintf(a.v[0].key, sizeof a.v[0].key, "file");
    snprintf(a.v[0].text, sizeof a.v[0].text, "%s", path);
    snprintf(a.v[1].key, sizeof a.v[1].key, "double");
    a.v[1].num = in_double;
    ds_energy *e = NULL;
    ds_status rc = ds_energy_create("vae", 20, &a, &e);
    ck_assert_msg(rc == DS_OK, "create vae: %s", ds_error_message());
    return e;
}

static ds_energy *make_vae(const char *path) { return make_vae_in(path, 0); }

/* A small random VAE (x 12, hidden 7, z 3) with biases that put pixels on
 * both sides of the clamp rarely. */
static ds_vae *small_vae(void)
{
    ds_vae *v = NULL;
    ck_assert_int_eq(ds_vae_create(12, 7, 3, &v), DS_OK);
    ds_vae_init(v, 7);
    for (size_t i = 0; i < v->n; i++) v->theta[i] *= 3.0;
    return v;
}

START_TEST(reference_values_of_the_mnist_vae)
{
    const char *path = ds_test_shared_file(VAE_FILE);
    if (!path) return;
    char p[1024];
    snprintf(p, sizeof p, "%s", path);
    size_t nz, nx, nl, ng, dz[4], dx[4];
    double *z = ds_test_read(p, "reference_values/z", &nz, dz, NULL);
    double *x = ds_test_read(p, "reference_values/x", &nx, dx, NULL);
    double *lr_ref = ds_test_read(p, "reference_values/log_reward", &nl, NULL, NULL);
    double *g_ref = ds_test_read(p, "reference_values/grad_z_log_reward", &ng, NULL, NULL);
    ck_assert(z && x && lr_ref && g_ref);
    const int n = (int)dz[0];
    ck_assert_int_eq(dz[1], 20);
    ck_assert_int_eq(dx[1], 784);
    ds_energy *e = make_vae(p);
    ck_assert_int_eq(e->dim, 20);
    ck_assert_int_eq(e->vt->cond_dim, 784);
    ds_real *zr = calloc(nz, sizeof *zr), *xr = calloc(nx, sizeof *xr), *lr = calloc((size_t)n, sizeof *lr),
            *g = calloc(nz, sizeof *g);
    for (size_t i = 0; i < nz; i++) zr[i] = (ds_real)z[i];
    for (size_t i = 0; i < nx; i++) xr[i] = (ds_real)x[i];
    ck_assert_int_eq(ds_energy_log_reward_cond(e, n, zr, xr, lr, g), DS_OK);
    double *lrd = malloc(sizeof(double) * (size_t)n), *gd = malloc(sizeof(double) * nz);
    for (int k = 0; k < n; k++) lrd[k] = (double)lr[k];
    for (size_t i = 0; i < nz; i++) gd[i] = (double)g[i];
    /* The reference is float32 torch: log R (hundreds) to about 1e-5 relative. */
    double el = ds_test_max_err(lrd, lr_ref, (size_t)n, 1e-3, 2e-5);
    double eg = ds_test_max_err(gd, g_ref, nz, 2e-3, 1e-3);
    ck_assert_msg(el <= 1, "log R off the reference: %g (first %.8g vs %.8g)", el, lrd[0], lr_ref[0]);
    ck_assert_msg(eg <= 1, "grad log R off the reference: %g", eg);
    /* Conditioning matters: swapping the images changes every value. */
    ds_real *xs = calloc(nx, sizeof *xs);
    for (int k = 0; k < n; k++) memcpy(xs + (size_t)k * 784, xr + (size_t)((k + 1) % n) * 784, 784 * sizeof *xs);
    ck_assert_int_eq(ds_energy_log_reward_cond(e, n, zr, xs, lr, NULL), DS_OK);
    for (int k = 0; k < n; k++) ck_assert(fabs((double)lr[k] - lr_ref[k]) > 1.0);
    /* The unconditional call is refused. */
    ck_assert_int_ne(ds_energy_log_reward(e, n, zr, lr, NULL), DS_OK);
    ds_error_clear();
    ds_energy_destroy(&e);
    free(z); free(x); free(lr_ref); free(g_ref); free(zr); free(xr); free(lr); free(g); free(lrd); free(gd);
    free(xs);
}
END_TEST

/* f(z) = log R(z; x) of row r, in double. */
static double row_log_r(const ds_vae *v, ds_vae_work *w, const double *z, const double *x)
{
    double lr;
    ds_vae_log_posterior(v, w, 1, z, x, &lr, NULL);
    return lr;
}

START_TEST(gradient_and_hvp_against_finite_differences)
{
    ds_vae *v = small_vae();
    ds_vae_work *w = NULL;
    ck_assert_int_eq(ds_vae_work_create(v, 2, &w), DS_OK); /* 5 rows in blocks of 2 */
    const int n = 5, Z = v->z_dim, X = v->x_dim;
    double z[5 * 3], x[5 * 12], g[5 * 3], lr[5], dz[5 * 3], hv[5 * 3];
    ds_rng r = ds_rng_make(3, DS_RNG_EVAL);
    ds_rng_normal_d(r, 0, 0, 0, n * Z, z);
    ds_rng_uniform_d(r, 1, 0, 0, n * X, x);
    ds_rng_normal_d(r, 2, 0, 0, n * Z, dz);
    ds_vae_log_posterior(v, w, n, z, x, lr, g);
    ds_vae_posterior_hvp(v, w, n, z, x, dz, hv);
    const double h = 1e-5;
    for (int k = 0; k < n; k++) {
        ck_assert(fabs(lr[k] - row_log_r(v, w, z + k * Z, x + k * X)) < 1e-12 * (1 + fabs(lr[k])));
        for (int j = 0; j < Z; j++) {
            double zp[3], zm[3];
            memcpy(zp, z + k * Z, sizeof zp);
            memcpy(zm, z + k * Z, sizeof zm);
            zp[j] += h;
            zm[j] -= h;
            double fd = (row_log_r(v, w, zp, x + k * X) - row_log_r(v, w, zm, x + k * X)) / (2 * h);
            ck_assert_msg(fabs(fd - g[k * Z + j]) < 1e-6 * (1 + fabs(fd)), "grad row %d dim %d: %.10g vs fd %.10g",
                          k, j, g[k * Z + j], fd);
        }
        /* Hv against the directional difference of the gradient. */
        double zp[3], zm[3], gp[3], gm[3], l1;
        for (int j = 0; j < Z; j++) {
            zp[j] = z[k * Z + j] + h * dz[k * Z + j];
            zm[j] = z[k * Z + j] - h * dz[k * Z + j];
        }
        ds_vae_log_posterior(v, w, 1, zp, x + k * X, &l1, gp);
        ds_vae_log_posterior(v, w, 1, zm, x + k * X, &l1, gm);
        for (int j = 0; j < Z; j++) {
            double fd = (gp[j] - gm[j]) / (2 * h);
            ck_assert_msg(fabs(fd - hv[k * Z + j]) < 1e-5 * (1 + fabs(fd)), "hvp row %d dim %d: %.10g vs fd %.10g",
                          k, j, hv[k * Z + j], fd);
        }
    }
    ds_vae_work_destroy(&w);
    ds_vae_destroy(&v);
}
END_TEST

START_TEST(energy_hvp_matches_the_module_on_the_mnist_vae)
{
    const char *path = ds_test_shared_file(VAE_FILE);
    if (!path) return;
    ds_energy *e = make_vae(path);
    /* 130 rows: more than one block of the energy (128). */
    const int n = 130;
    ds_real *z = calloc((size_t)n * 20, sizeof *z), *x = calloc((size_t)n * 784, sizeof *x),
            *v = calloc((size_t)n * 20, sizeof *v), *hv = calloc((size_t)n * 20, sizeof *hv),
            *g = calloc((size_t)n * 20, sizeof *g), *gp = calloc((size_t)n * 20, sizeof *gp),
            *gm = calloc((size_t)n * 20, sizeof *gm), *lr = calloc((size_t)n, sizeof *lr);
    ds_rng r = ds_rng_make(5, DS_RNG_EVAL);
    ds_rng_normal(r, 0, 0, 0, n * 20, z);
    ds_rng_normal(r, 1, 0, 0, n * 20, v);
    double *u = malloc(sizeof(double) * (size_t)n * 784);
    ds_rng_uniform_d(r, 2, 0, 0, n * 784, u);
    for (int i = 0; i < n * 784; i++) x[i] = (ds_real)(u[i] < 0.8 ? 0.0 : u[i]); /* MNIST-like: mostly 0 */
    ck_assert_int_eq(ds_energy_hvp_cond(e, n, z, x, v, hv), DS_OK);
    if (sizeof(ds_real) == sizeof(double)) {
        /* A small step: a pixel that crosses the clamp inside +-h makes the
         * gradient jump (torch.clamp has no gradient past it). */
        const double h = 1e-7;
        ds_real *zp = calloc((size_t)n * 20, sizeof *zp), *zm = calloc((size_t)n * 20, sizeof *zm);
        for (int i = 0; i < n * 20; i++) {
            zp[i] = z[i] + h * v[i];
            zm[i] = z[i] - h * v[i];
        }
        ck_assert_int_eq(ds_energy_log_reward_cond(e, n, zp, x, lr, gp), DS_OK);
        ck_assert_int_eq(ds_energy_log_reward_cond(e, n, zm, x, lr, gm), DS_OK);
        for (int i = 0; i < n * 20; i++) {
            double fd = ((double)gp[i] - (double)gm[i]) / (2 * h);
            ck_assert_msg(fabs(fd - (double)hv[i]) < 1e-3 * (1 + fabs(fd)), "hvp %d: %.10g vs fd %.10g", i,
                          (double)hv[i], fd);
        }
        free(zp);
        free(zm);
    }
    (void)g;
    ds_energy_destroy(&e);
    free(z); free(x); free(v); free(hv); free(g); free(gp); free(gm); free(lr); free(u);
}
END_TEST

/* The float decoder (ds_vae_log_posterior_f, what the float program runs)
 * against the double module, row by row: a random VAE of 37 pixels (two
 * 16-lane blocks and a scalar tail) scaled so that pixels land on both
 * sides of the clamp, and the pretrained MNIST VAE on real test images with
 * latents out to 4 standard deviations. */
static void float_matches_double(const ds_vae *v, int n, const double *z, const double *x, double tol_lr,
                                 double tol_g, int *clamped_rows)
{
    const int Z = v->z_dim, X = v->x_dim;
    ds_vae_work *w = NULL;
    ds_vae_f *f = NULL;
    ck_assert_int_eq(ds_vae_work_create(v, 7, &w), DS_OK);
    ck_assert_int_eq(ds_vae_f_create(v, 5, &f), DS_OK); /* blocks of 5: a partial last block */
    double *lr = malloc(sizeof(double) * (size_t)n), *g = malloc(sizeof(double) * (size_t)n * Z);
    float *zf = malloc(sizeof(float) * (size_t)n * Z), *xf = malloc(sizeof(float) * (size_t)n * X),
          *lrf = malloc(sizeof(float) * (size_t)n), *gf = malloc(sizeof(float) * (size_t)n * Z),
          *lr2 = malloc(sizeof(float) * (size_t)n);
    for (size_t i = 0; i < (size_t)n * Z; i++) zf[i] = (float)z[i];
    for (size_t i = 0; i < (size_t)n * X; i++) xf[i] = (float)x[i];
    /* the double path at the float inputs, so only the arithmetic differs */
    double *zd = malloc(sizeof(double) * (size_t)n * Z), *xd = malloc(sizeof(double) * (size_t)n * X);
    for (size_t i = 0; i < (size_t)n * Z; i++) zd[i] = zf[i];
    for (size_t i = 0; i < (size_t)n * X; i++) xd[i] = xf[i];
    ds_vae_log_posterior(v, w, n, zd, xd, lr, g);
    ds_vae_log_posterior_f(f, n, zf, xf, lrf, gf);
    ds_vae_log_posterior_f(f, n, zf, xf, lr2, NULL);
    *clamped_rows = 0;
    double worst_lr = 0, worst_g = 0;
    for (int k = 0; k < n; k++) {
        ck_assert_msg(lr2[k] == lrf[k], "row %d: log R depends on whether the gradient is asked for", k);
        ck_assert_msg(fabs(lrf[k] - lr[k]) <= tol_lr * (1 + fabs(lr[k])), "row %d: log R float %.9g double %.9g",
                      k, (double)lrf[k], lr[k]);
        double gmax = 0, emax = 0;
        for (int j = 0; j < Z; j++) {
            gmax = fmax(gmax, fabs(g[(size_t)k * Z + j]));
            emax = fmax(emax, fabs(gf[(size_t)k * Z + j] - g[(size_t)k * Z + j]));
        }
        ck_assert_msg(emax <= tol_g * (1 + gmax), "row %d: gradient off by %g (largest component %g)", k, emax, gmax);
        worst_lr = fmax(worst_lr, fabs(lrf[k] - lr[k]) / (1 + fabs(lr[k])));
        worst_g = fmax(worst_g, emax / (1 + gmax));
        /* count rows with a clamped pixel, so the test shows it covered them */
        ds_vae_log_posterior(v, w, 1, zd + (size_t)k * Z, xd + (size_t)k * X, lr, NULL);
        int any = 0;
        for (int j = 0; j < X; j++) any |= !(w->p[j] >= DS_VAE_EPS && w->p[j] <= 1 - DS_VAE_EPS);
        *clamped_rows += any;
    }
    printf("float decoder (x %d, z %d): largest relative error of log R %.2g, of the gradient %.2g\n", X, Z,
           worst_lr, worst_g);
    ds_vae_f_destroy(&f);
    ds_vae_work_destroy(&w);
    free(lr); free(g); free(zf); free(xf); free(lrf); free(gf); free(lr2); free(zd); free(xd);
}

START_TEST(float_decoder_matches_the_double_module)
{
    ds_vae *v = NULL;
    ck_assert_int_eq(ds_vae_create(37, 9, 3, &v), DS_OK);
    ds_vae_init(v, 11);
    for (size_t i = 0; i < v->n; i++) v->theta[i] *= 12.0; /* logits out to +-20: some pixels clamp */
    const int n = 23;
    double z[23 * 3], x[23 * 37];
    ds_rng r = ds_rng_make(9, DS_RNG_EVAL);
    ds_rng_normal_d(r, 0, 0, 0, n * 3, z);
    ds_rng_uniform_d(r, 1, 0, 0, n * 37, x);
    for (int i = 0; i < n * 37; i += 3) x[i] = 0; /* exact zeros, as in images */
    int clamped = 0;
    float_matches_double(v, n, z, x, 5e-7, 2e-5, &clamped);
    ck_assert_msg(clamped >= 5, "only %d rows had a clamped pixel", clamped);
    ds_vae_destroy(&v);
    /* widths that are multiples of 16 (hidden 48, 64 pixels): the float build's own product kernel with its
     * bias and ReLU-mask epilogues, with no file needed */
    ck_assert_int_eq(ds_vae_create(64, 48, 3, &v), DS_OK);
    ds_vae_init(v, 12);
    for (size_t i = 0; i < v->n; i++) v->theta[i] *= 8.0;
    double z2[23 * 3], x2[23 * 64];
    ds_rng_normal_d(r, 3, 0, 0, n * 3, z2);
    ds_rng_uniform_d(r, 4, 0, 0, n * 64, x2);
    float_matches_double(v, n, z2, x2, 5e-7, 2e-5, &clamped);
    ck_assert_msg(clamped >= 5, "only %d rows had a clamped pixel", clamped);
    ds_vae_destroy(&v);

    const char *path = ds_test_shared_file(VAE_FILE); /* a static buffer: copied */
    if (!path) return;
    char vp[1024];
    snprintf(vp, sizeof vp, "%s", path);
    const char *imgs = ds_test_shared_file(MNIST_TEST);
    if (!imgs) return;
    ck_assert_int_eq(ds_vae_load(vp, &v), DS_OK);
    ds_idx im;
    ck_assert_int_eq(ds_idx_read(imgs, 0, 2000, &im), DS_OK);
    const int m = 40;
    double *zm = malloc(sizeof(double) * m * 20), *xm = malloc(sizeof(double) * m * 784);
    ds_rng_normal_d(r, 2, 0, 0, m * 20, zm);
    for (int i = 0; i < m * 20; i++) zm[i] *= 1.0 + 3.0 * (i % 20) / 19.0; /* 1 to 4 standard deviations */
    for (int k = 0; k < m; k++)
        for (int j = 0; j < 784; j++) xm[k * 784 + j] = im.data[(size_t)(k * 37) * 784 + j] / 255.0;
    float_matches_double(v, m, zm, xm, 5e-7, 2e-5, &clamped);
    printf("float decoder: %d of %d MNIST rows had a clamped pixel\n", clamped, m);
    ck_assert(clamped >= 1);
    free(zm);
    free(xm);
    ds_idx_free(&im);
    ds_vae_destroy(&v);
}
END_TEST

/* The vae energy as the program calls it (130 rows: two of its blocks) in
 * float and with energy.double: true, against the double module. */
START_TEST(energy_float_and_double_paths_agree)
{
    const char *path = ds_test_shared_file(VAE_FILE);
    if (!path) return;
    char vp[1024];
    snprintf(vp, sizeof vp, "%s", path);
    ds_vae *v = NULL;
    ck_assert_int_eq(ds_vae_load(vp, &v), DS_OK);
    ds_vae_work *w = NULL;
    ck_assert_int_eq(ds_vae_work_create(v, 64, &w), DS_OK);
    const int n = 130;
    ds_real *z = calloc((size_t)n * 20, sizeof *z), *x = calloc((size_t)n * 784, sizeof *x),
            *lr = calloc((size_t)n, sizeof *lr), *g = calloc((size_t)n * 20, sizeof *g);
    double *zd = malloc(sizeof(double) * n * 20), *xd = malloc(sizeof(double) * n * 784),
           *lrd = malloc(sizeof(double) * n), *gd = malloc(sizeof(double) * n * 20);
    ds_rng r = ds_rng_make(6, DS_RNG_EVAL);
    ds_rng_normal(r, 0, 0, 0, n * 20, z);
    double *u = malloc(sizeof(double) * (size_t)n * 784);
    ds_rng_uniform_d(r, 1, 0, 0, n * 784, u);
    for (int i = 0; i < n * 784; i++) x[i] = (ds_real)(u[i] < 0.8 ? 0.0 : u[i]);
    for (int i = 0; i < n * 20; i++) zd[i] = (double)z[i];
    for (int i = 0; i < n * 784; i++) xd[i] = (double)x[i];
    ds_vae_log_posterior(v, w, n, zd, xd, lrd, gd);
    for (int dbl = 0; dbl < 2; dbl++) {
        ds_energy *e = make_vae_in(vp, dbl);
        ck_assert_int_eq(ds_energy_log_reward_cond(e, n, z, x, lr, g), DS_OK);
        /* the double build: the module itself; energy.double in float: the module, rounded to float on the
         * way out; the float path: float arithmetic */
        const int is_double = sizeof(ds_real) == sizeof(double);
        const double tl = is_double ? 1e-12 : dbl ? 1.2e-7 : 5e-7, tg = is_double ? 1e-10 : dbl ? 1.2e-7 : 2e-5;
        for (int k = 0; k < n; k++) {
            ck_assert_msg(fabs((double)lr[k] - lrd[k]) <= tl * (1 + fabs(lrd[k])), "double=%d row %d: %.9g vs %.9g",
                          dbl, k, (double)lr[k], lrd[k]);
            double gmax = 0, emax = 0;
            for (int j = 0; j < 20; j++) {
                gmax = fmax(gmax, fabs(gd[k * 20 + j]));
                emax = fmax(emax, fabs((double)g[k * 20 + j] - gd[k * 20 + j]));
            }
            ck_assert_msg(emax <= tg * (1 + gmax), "double=%d row %d: gradient off by %g (largest %g)", dbl, k, emax,
                          gmax);
        }
        ds_energy_destroy(&e);
    }
    ds_vae_work_destroy(&w);
    ds_vae_destroy(&v);
    free(z); free(x); free(lr); free(g); free(zd); free(xd); free(lrd); free(gd); free(u);
}
END_TEST

START_TEST(file_round_trip_and_refusals)
{
    ds_vae *v = small_vae();
    char path[] = "/tmp/ds_test_vae_XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    ck_assert_int_eq(ds_vae_save(v, path, "a test VAE"), DS_OK);
    ds_vae *u = NULL;
    ck_assert_msg(ds_vae_load(path, &u) == DS_OK, "%s", ds_error_message());
    ck_assert_int_eq(u->x_dim, 12);
    ck_assert_int_eq(u->hidden, 7);
    ck_assert_int_eq(u->z_dim, 3);
    for (size_t i = 0; i < v->n; i++) ck_assert(fabs(u->theta[i] - (double)(float)v->theta[i]) == 0);
    ds_vae_destroy(&u);
    /* Not an HDF5 file. */
    FILE *f = fopen(path, "w");
    fputs("not hdf5\n", f);
    fclose(f);
    ck_assert_int_eq(ds_vae_load(path, &u), DS_ERR_IO);
    ck_assert(strstr(ds_error_message(), path) != NULL);
    ck_assert(u == NULL);
    /* A dataset missing, then one with a wrong shape. */
    hid_t h = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hsize_t d2[2] = {7, 12};
    hid_t s = H5Screate_simple(2, d2, NULL);
    hid_t d = H5Dcreate2(h, "fc1/weight", H5T_IEEE_F32LE, s, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(d);
    H5Sclose(s);
    H5Fclose(h);
    ck_assert_int_eq(ds_vae_load(path, &u), DS_ERR_FORMAT);
    ck_assert_msg(strstr(ds_error_message(), "fc1/bias") != NULL, "%s", ds_error_message());
    ck_assert_int_eq(ds_vae_save(v, path, NULL), DS_OK);
    h = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(h, "fc3/bias", H5P_DEFAULT);
    hsize_t d1[1] = {5};
    s = H5Screate_simple(1, d1, NULL);
    d = H5Dcreate2(h, "fc3/bias", H5T_IEEE_F32LE, s, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(d);
    H5Sclose(s);
    H5Fclose(h);
    H5Pclose(lcpl);
    ck_assert_int_eq(ds_vae_load(path, &u), DS_ERR_FORMAT);
    ck_assert_msg(strstr(ds_error_message(), "fc3/bias") != NULL, "%s", ds_error_message());
    /* The energy refuses a missing file key and a VAE of the wrong latent size. */
    ds_energy *e = NULL;
    ck_assert_int_eq(ds_energy_create("vae", 20, NULL, &e), DS_ERR_CONFIG);
    ck_assert(strstr(ds_error_message(), "energy.file") != NULL);
    ck_assert_int_eq(ds_vae_save(v, path, NULL), DS_OK);
    ds_energy_args a = {0};
    a.count = 1;
    snprintf(a.v[0].key, sizeof a.v[0].key, "file");
    snprintf(a.v[0].text, sizeof a.v[0].text, "%s", path);
    ck_assert_int_eq(ds_energy_create("vae", 20, &a, &e), DS_ERR_CONFIG);
    ck_assert_msg(strstr(ds_error_message(), "latent size 3") != NULL, "%s", ds_error_message());
    ds_error_clear();
    remove(path);
    ds_vae_destroy(&v);
}
END_TEST

static void write_bytes(const char *path, const unsigned char *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert(f != NULL);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

START_TEST(idx_reader_and_refusals)
{
    char path[] = "/tmp/ds_test_idx_XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    /* 3 images of 2 x 2 */
    unsigned char b[16 + 12] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2};
    for (int i = 0; i < 12; i++) b[16 + i] = (unsigned char)(i * 20);
    write_bytes(path, b, sizeof b);
    ds_idx x;
    ck_assert_int_eq(ds_idx_read(path, 1, 2, &x), DS_OK);
    ck_assert_int_eq(x.ndims, 3);
    ck_assert_uint_eq(x.count, 2);
    ck_assert_uint_eq(x.width, 4);
    ck_assert_int_eq(x.data[0], 80);
    ck_assert_int_eq(x.data[7], 220);
    ds_idx_free(&x);
    ds_real *px;
    size_t cnt, w;
    ck_assert_int_eq(ds_idx_read_images(path, 0, 0, &px, &cnt, &w), DS_OK);
    ck_assert_uint_eq(cnt, 3);
    ck_assert(fabs((double)px[11] - 220.0 / 255.0) < 1e-7);
    ds_free(px);
    /* past the end */
    ck_assert_int_eq(ds_idx_read(path, 2, 2, &x), DS_ERR_FORMAT);
    ck_assert(strstr(ds_error_message(), path) && strstr(ds_error_message(), "holds 3"));
    /* truncated data */
    write_bytes(path, b, sizeof b - 3);
    ck_assert_int_eq(ds_idx_read(path, 0, 0, &x), DS_ERR_FORMAT);
    ck_assert(strstr(ds_error_message(), "ends inside the data"));
    /* bad magic, bad type */
    b[0] = 1;
    write_bytes(path, b, sizeof b);
    ck_assert_int_eq(ds_idx_read(path, 0, 0, &x), DS_ERR_FORMAT);
    ck_assert(strstr(ds_error_message(), "not an idx file"));
    b[0] = 0;
    b[2] = 0x0D;
    write_bytes(path, b, sizeof b);
    ck_assert_int_eq(ds_idx_read(path, 0, 0, &x), DS_ERR_FORMAT);
    ck_assert(strstr(ds_error_message(), "element type 0x0d"));
    /* a label file is not an image file */
    unsigned char lab[8 + 2] = {0, 0, 8, 1, 0, 0, 0, 2, 3, 4};
    write_bytes(path, lab, sizeof lab);
    ck_assert_int_eq(ds_idx_read(path, 0, 0, &x), DS_OK);
    ck_assert_uint_eq(x.width, 1);
    ds_idx_free(&x);
    ck_assert_int_eq(ds_idx_read_images(path, 0, 0, &px, &cnt, &w), DS_ERR_FORMAT);
    remove(path);
    ck_assert_int_eq(ds_idx_read(path, 0, 0, &x), DS_ERR_IO);
    ck_assert_msg(strstr(ds_error_message(), "the idx file ") && strstr(ds_error_message(), ": No such file or directory"),
                  "%s", ds_error_message());
    ck_assert_msg(!strstr(ds_error_message(), "relative path"), "%s", ds_error_message()); /* path is absolute */
    /* a relative path names the directory it was looked for in; a directory is not a file */
    char cwd[4096], want[4200];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(ds_idx_read("no/such.idx", 0, 0, &x), DS_ERR_IO);
    snprintf(want, sizeof want, "the idx file no/such.idx: No such file or directory (a relative path, looked for in %s)",
             cwd);
    ck_assert_msg(strstr(ds_error_message(), want), "%s", ds_error_message());
    ds_vae *u = NULL;
    ck_assert_int_eq(ds_vae_load("/tmp", &u), DS_ERR_IO);
    ck_assert_msg(strstr(ds_error_message(), "the VAE file /tmp: a directory, not a file"), "%s", ds_error_message());
    ck_assert(u == NULL);
    ds_error_clear();
}
END_TEST

START_TEST(mnist_test_images)
{
    const char *img = ds_test_shared_file(MNIST_TEST);
    if (!img) return;
    char ipath[1024];
    snprintf(ipath, sizeof ipath, "%s", img);
    ds_real *px;
    size_t cnt, w;
    ck_assert_msg(ds_idx_read_images(ipath, 0, 0, &px, &cnt, &w) == DS_OK, "%s", ds_error_message());
    ck_assert_uint_eq(cnt, 10000);
    ck_assert_uint_eq(w, 784);
    /* The first 8 are the VAE file's reference images. */
    const char *vf = ds_test_shared_file(VAE_FILE);
    if (vf) {
        size_t nx;
        double *x = ds_test_read(vf, "reference_values/x", &nx, NULL, NULL);
        ck_assert(x && nx == 8 * 784);
        for (size_t i = 0; i < nx; i++) ck_assert(fabs((double)px[i] - x[i]) < 1e-6);
        free(x);
    }
    ds_free(px);
    /* The last 5 images alone. */
    ck_assert_int_eq(ds_idx_read_images(ipath, 9995, 5, &px, &cnt, &w), DS_OK);
    ck_assert_uint_eq(cnt, 5);
    ds_free(px);
}
END_TEST

START_TEST(vae_loss_gradient_against_finite_differences)
{
    ds_vae *v = NULL;
    ck_assert_int_eq(ds_vae_create(9, 5, 3, &v), DS_OK);
    ds_vae_init(v, 3);
    ds_vae_train_work *w = NULL;
    ck_assert_int_eq(ds_vae_train_work_create(v, 4, &w), DS_OK);
    const int m = 4;
    double x[4 * 9], eps[4 * 3];
    ds_rng r = ds_rng_make(9, DS_RNG_TEST);
    ds_rng_uniform_d(r, 0, 0, 0, m * 9, x);
    ds_rng_normal_d(r, 1, 0, 0, m * 3, eps);
    double *g = calloc(v->n, sizeof *g);
    double bce, kl;
    ds_vae_loss(v, w, m, x, eps, &bce, &kl, g);
    ck_assert(bce > 0 && kl >= 0);
    const double h = 1e-6;
    for (size_t i = 0; i < v->n; i++) {
        const double keep = v->theta[i];
        double bp, kp, bm, km;
        v->theta[i] = keep + h;
        ds_vae_loss(v, w, m, x, eps, &bp, &kp, NULL);
        v->theta[i] = keep - h;
        ds_vae_loss(v, w, m, x, eps, &bm, &km, NULL);
        v->theta[i] = keep;
        const double fd = ((bp + kp) - (bm + km)) / (2 * h);
        ck_assert_msg(fabs(fd - g[i]) < 1e-6 * (1 + fabs(fd)), "parameter %zu: gradient %.10g, fd %.10g", i, g[i], fd);
    }
    free(g);
    ds_vae_train_work_destroy(&w);
    ds_vae_destroy(&v);
}
END_TEST

/* An idx file of n images of 28 x 28: blobs at image-dependent places. */
static void write_blobs(const char *path, int n, int seed)
{
    FILE *f = fopen(path, "wb");
    ck_assert(f != NULL);
    unsigned char hdr[16] = {0, 0, 8, 3, 0, 0, (unsigned char)(n >> 8), (unsigned char)n, 0, 0, 0, 28, 0, 0, 0, 28};
    fwrite(hdr, 1, 16, f);
    for (int k = 0; k < n; k++) {
        double cx = 8 + 12 * (0.5 + 0.5 * sin(1.3 * k + seed)), cy = 8 + 12 * (0.5 + 0.5 * cos(0.7 * k + seed));
        for (int i = 0; i < 28; i++)
            for (int j = 0; j < 28; j++) {
                double d2 = (i - cy) * (i - cy) + (j - cx) * (j - cx);
                unsigned char px = (unsigned char)(255.0 * exp(-d2 / 18.0));
                fputc(px, f);
            }
    }
    fclose(f);
}

START_TEST(vae_training_lowers_the_loss)
{
    char tr[] = "/tmp/ds_test_vae_tr_XXXXXX", te[] = "/tmp/ds_test_vae_te_XXXXXX",
         out[] = "/tmp/ds_test_vae_out_XXXXXX";
    close(mkstemp(tr));
    close(mkstemp(te));
    close(mkstemp(out));
    write_blobs(tr, 256, 0);
    write_blobs(te, 64, 5);
    ds_vae_train_opts o = {.train_images = tr, .test_images = te, .epochs = 1, .batch = 32, .hidden = 32,
                           .z_dim = 4, .lr = 1e-3, .seed = 2, .out = out};
    double l1, e1, l5, e5;
    ck_assert_msg(ds_vae_train(&o, NULL, &l1, &e1) == DS_OK, "%s", ds_error_message());
    o.epochs = 6;
    ck_assert_int_eq(ds_vae_train(&o, NULL, &l5, &e5), DS_OK);
    printf("vae-train on blobs: after 1 epoch loss %.2f test ELBO %.2f; after 6: %.2f %.2f\n", l1, e1, l5, e5);
    ck_assert(l5 < l1 - 10 && e5 > e1 + 10);
    /* the file reads back as the energy's VAE */
    ds_vae *v = NULL;
    ck_assert_int_eq(ds_vae_load(out, &v), DS_OK);
    ck_assert(v->x_dim == 784 && v->hidden == 32 && v->z_dim == 4);
    ds_vae_destroy(&v);
    /* refusals name the file */
    o.train_images = "/nonexistent/train.idx";
    ck_assert_int_eq(ds_vae_train(&o, NULL, &l1, &e1), DS_ERR_IO);
    ck_assert(strstr(ds_error_message(), "/nonexistent/train.idx") != NULL);
    ds_error_clear();
    remove(tr);
    remove(te);
    remove(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vae");
    TCase *tc = tcase_create("vae");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, reference_values_of_the_mnist_vae);
    tcase_add_test(tc, gradient_and_hvp_against_finite_differences);
    tcase_add_test(tc, energy_hvp_matches_the_module_on_the_mnist_vae);
    tcase_add_test(tc, float_decoder_matches_the_double_module);
    tcase_add_test(tc, energy_float_and_double_paths_agree);
    tcase_add_test(tc, file_round_trip_and_refusals);
    tcase_add_test(tc, idx_reader_and_refusals);
    tcase_add_test(tc, mnist_test_images);
    tcase_add_test(tc, vae_loss_gradient_against_finite_differences);
    tcase_add_test(tc, vae_training_lowers_the_loss);
    suite_add_tcase(s, tc);
    return ds_test_run(s);
}
