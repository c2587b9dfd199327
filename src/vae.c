/* vae: the VAE's parameters, its HDF5 file and the batched posterior target
 * log R(z; x) with its z-gradient and Hessian-vector product (vae.h). */
#include "diffsamp/vae.h"

#include "diffsamp/blas.h"

#include "diffsamp/rng.h"

#include <cblas.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const tensor_names[DS_VAE_NTENSOR] = {
    "fc1/weight", "fc1/bias", "fc21/weight", "fc21/bias", "fc22/weight",
    "fc22/bias",  "fc3/weight", "fc3/bias",  "fc4/weight", "fc4/bias",
};

const char *ds_vae_tensor_name(int t) { return t >= 0 && t < DS_VAE_NTENSOR ? tensor_names[t] : "?"; }

static void shape_of(int x, int h, int z, int t, int *rows, int *cols)
{
    /* (out, in) of fc1, fc21, fc22, fc3, fc4 */
    const int outs[5] = {h, z, z, h, x}, ins[5] = {x, h, h, z, h};
    *rows = outs[t / 2];
    *cols = t % 2 ? 1 : ins[t / 2];
}

void ds_vae_tensor_shape(const ds_vae *v, int t, int *rows, int *cols)
{
    shape_of(v->x_dim, v->hidden, v->z_dim, t, rows, cols);
}

ds_status ds_vae_create(int x_dim, int hidden, int z_dim, ds_vae **out)
{
    DS_CHECK(out, DS_ERR_INVALID, "ds_vae_create: out is NULL");
    *out = NULL;
    DS_CHECK(x_dim >= 1 && x_dim <= 1 << 20 && hidden >= 1 && hidden <= 1 << 16 && z_dim >= 1 && z_dim <= 4096,
             DS_ERR_INVALID, "bad VAE sizes: x_dim %d hidden %d z_dim %d", x_dim, hidden, z_dim);
    ds_vae *v = calloc(1, sizeof *v);
    DS_ALLOC_CHECK(v);
    v->x_dim = x_dim;
    v->hidden = hidden;
    v->z_dim = z_dim;
    size_t n = 0;
    for (int t = 0; t < DS_VAE_NTENSOR; t++) {
        int r, c;
        shape_of(x_dim, hidden, z_dim, t, &r, &c);
        v->off[t] = n;
        n += (size_t)r * (size_t)c;
    }
    v->n = n;
    v->theta = ds_calloc(n, sizeof(double));
    if (!v->theta) {
        free(v);
        DS_CHECK(0, DS_ERR_NOMEM, "out of memory for a VAE of %zu parameters", n);
    }
    *out = v;
    return DS_OK;
}

void ds_vae_destroy(ds_vae **vp)
{
    if (!vp || !*vp) return;
    ds_free((*vp)->theta);
    free(*vp);
    *vp = NULL;
}

void ds_vae_init(ds_vae *v, uint64_t seed)
{
    ds_rng r = ds_rng_make(seed, DS_RNG_INIT);
    for (int t = 0; t < DS_VAE_NTENSOR; t++) {
        int rows, cols, wr, wc;
        ds_vae_tensor_shape(v, t, &rows, &cols);
        ds_vae_tensor_shape(v, t - t % 2, &wr, &wc); /* a bias takes its weight's fan-in */
        const size_t n = (size_t)rows * (size_t)cols;
        const double bound = 1.0 / sqrt((double)wc);
        double *w = ds_vae_param(v, t);
        for (size_t i = 0; i < n; i++) {
            double u;
            ds_rng_uniform_d(r, (uint64_t)t, i, 0, 1, &u);
            w[i] = (2.0 * u - 1.0) * bound;
        }
    }
}

/* ---- file ------------------------------------------------------------------ */

typedef struct h5_quiet {
    H5E_auto2_t func;
    void *data;
} h5_quiet;
static void quiet_begin(h5_quiet *q)
{
    H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}
static void quiet_end(const h5_quiet *q) { H5Eset_auto2(H5E_DEFAULT, q->func, q->data); }

/* Rank and dims of dataset name; -1 when it cannot be opened. */
static int dataset_shape(hid_t f, const char *name, hsize_t dims[2])
{
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) return -1;
    hid_t s = H5Dget_space(d);
    int nd = s < 0 ? -1 : H5Sget_simple_extent_ndims(s);
    if (nd >= 1 && nd <= 2) H5Sget_simple_extent_dims(s, dims, NULL);
    if (s >= 0) H5Sclose(s);
    H5Dclose(d);
    return nd;
}

static ds_status load_file(hid_t f, const char *path, ds_vae **out)
{
    hsize_t dims[DS_VAE_NTENSOR][2];
    for (int t = 0; t < DS_VAE_NTENSOR; t++) {
        dims[t][0] = dims[t][1] = 0;
        int nd = H5Lexists(f, tensor_names[t] , H5P_DEFAULT) > 0 ? dataset_shape(f, tensor_names[t], dims[t]) : -1;
        DS_CHECK(nd >= 0, DS_ERR_FORMAT, "%s: no dataset %s (a VAE file holds fc1, fc21, fc22, fc3 and fc4, each "
                 "with weight and bias)", path, tensor_names[t]);
        DS_CHECK(nd == (t % 2 ? 1 : 2), DS_ERR_FORMAT, "%s: dataset %s has rank %d; expected %d", path,
                 tensor_names[t], nd, t % 2 ? 1 : 2);
        if (t % 2) dims[t][1] = 1;
    }
    const hsize_t H = dims[DS_VAE_FC1_W][0], X = dims[DS_VAE_FC1_W][1], Z = dims[DS_VAE_FC21_W][0];
    DS_CHECK(H >= 1 && X >= 1 && Z >= 1 && H <= 1 << 16 && X <= 1 << 20 && Z <= 4096, DS_ERR_FORMAT,
             "%s: dataset fc1/weight and fc21/weight give sizes x_dim %llu hidden %llu z_dim %llu", path,
             (unsigned long long)X, (unsigned long long)H, (unsigned long long)Z);
    for (int t = 0; t < DS_VAE_NTENSOR; t++) {
        int r, c;
        shape_of((int)X, (int)H, (int)Z, t, &r, &c);
        DS_CHECK(dims[t][0] == (hsize_t)r && dims[t][1] == (hsize_t)c, DS_ERR_FORMAT,
                 "%s: dataset %s has shape (%llu%s%llu); x_dim %llu, hidden %llu, z_dim %llu (from fc1/weight and "
                 "fc21/weight) need (%d%s%d)", path, tensor_names[t], (unsigned long long)dims[t][0],
                 t % 2 ? ") (" : ", ", (unsigned long long)dims[t][1], (unsigned long long)X,
                 (unsigned long long)H, (unsigned long long)Z, r, t % 2 ? ") (" : ", ", c);
    }
    ds_vae *v = NULL;
    DS_TRY(ds_vae_create((int)X, (int)H, (int)Z, &v));
    for (int t = 0; t < DS_VAE_NTENSOR; t++) {
        hid_t d = H5Dopen2(f, tensor_names[t], H5P_DEFAULT);
        herr_t e = d < 0 ? -1 : H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, ds_vae_param(v, t));
        if (d >= 0) H5Dclose(d);
        if (e < 0) {
            ds_vae_destroy(&v);
            DS_CHECK(0, DS_ERR_FORMAT, "%s: dataset %s cannot be read as numbers", path, tensor_names[t]);
        }
        int r, c;
        ds_vae_tensor_shape(v, t, &r, &c);
        const double *w = ds_vae_param(v, t);
        for (size_t i = 0; i < (size_t)r * (size_t)c; i++)
            if (!isfinite(w[i])) {
                ds_vae_destroy(&v);
                DS_CHECK(0, DS_ERR_FORMAT, "%s: dataset %s holds a non-finite value at element %zu", path,
                         tensor_names[t], i);
            }
    }
    *out = v;
    return DS_OK;
}

ds_status ds_vae_load(const char *path, ds_vae **out)
{
    DS_CHECK(path && out, DS_ERR_INVALID, "ds_vae_load: NULL argument");
    *out = NULL;
    DS_TRY(ds_check_readable(path, "the VAE file"));
    h5_quiet q;
    quiet_begin(&q);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        quiet_end(&q);
        DS_CHECK(0, DS_ERR_IO, "%s: cannot open as an HDF5 file (a VAE file, the layout of "
                 "vae_bce_mnist_100ep.h5)", path);
    }
    ds_status rc = load_file(f, path, out);
    H5Fclose(f);
    quiet_end(&q);
    if (rc != DS_OK) ds_error_trace(__FILE__, __LINE__, __func__);
    return rc;
}

ds_status ds_vae_save(const ds_vae *v, const char *path, const char *description)
{
    DS_CHECK(v && path, DS_ERR_INVALID, "ds_vae_save: NULL argument");
    char tmp[4096];
    DS_CHECK(snprintf(tmp, sizeof tmp, "%s.tmp", path) < (int)sizeof tmp, DS_ERR_INVALID, "path too long: %s", path);
    h5_quiet q;
    quiet_begin(&q);
    ds_status rc = DS_OK;
    float *buf = NULL;
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        quiet_end(&q);
        DS_CHECK(0, DS_ERR_IO, "%s: cannot create the file", tmp);
    }
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    buf = malloc(sizeof(float) * (v->n ? v->n : 1));
    if (!buf) rc = ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__, "out of memory saving %s", path);
    for (int t = 0; t < DS_VAE_NTENSOR && rc == DS_OK; t++) {
        int r, c;
        ds_vae_tensor_shape(v, t, &r, &c);
        hsize_t dims[2] = {(hsize_t)r, (hsize_t)c};
        size_t n = (size_t)r * (size_t)c;
        const double *w = ds_vae_param(v, t);
        for (size_t i = 0; i < n; i++) buf[i] = (float)w[i];
        hid_t s = H5Screate_simple(t % 2 ? 1 : 2, dims, NULL);
        hid_t d = H5Dcreate2(f, tensor_names[t], H5T_IEEE_F32LE, s, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        if (d < 0 || H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
            rc = ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__, "%s: cannot write dataset %s", tmp,
                              tensor_names[t]);
        if (d >= 0) H5Dclose(d);
        H5Sclose(s);
    }
    if (rc == DS_OK && description) {
        hid_t st = H5Tcopy(H5T_C_S1);
        H5Tset_size(st, H5T_VARIABLE);
        H5Tset_cset(st, H5T_CSET_UTF8);
        hid_t sp = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(f, "description", st, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a < 0 || H5Awrite(a, st, &description) < 0)
            rc = ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__, "%s: cannot write the description", tmp);
        if (a >= 0) H5Aclose(a);
        H5Sclose(sp);
        H5Tclose(st);
    }
    H5Pclose(lcpl);
    free(buf);
    if (H5Fclose(f) < 0 && rc == DS_OK)
        rc = ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__, "%s: closing failed", tmp);
    quiet_end(&q);
    if (rc == DS_OK && rename(tmp, path) != 0)
        rc = ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__, "cannot rename %s to %s", tmp, path);
    if (rc != DS_OK) remove(tmp);
    return rc;
}

/* ---- batched posterior -------------------------------------------------------- */

ds_status ds_vae_work_create(const ds_vae *v, int cap, ds_vae_work **out)
{
    DS_CHECK(v && out && cap >= 1, DS_ERR_INVALID, "ds_vae_work_create: bad arguments");
    *out = NULL;
    ds_vae_work *w = calloc(1, sizeof *w);
    DS_ALLOC_CHECK(w);
    const size_t c = (size_t)cap, X = (size_t)v->x_dim, H = (size_t)v->hidden, Z = (size_t)v->z_dim;
    w->cap = cap;
    double **views[] = {&w->z, &w->x, &w->pre3, &w->h3, &w->a4, &w->p, &w->ga, &w->gh, &w->gz, &w->dh, &w->da, &w->v};
    const size_t sizes[] = {c * Z, c * X, c * H, c * H, c * X, c * X, c * X, c * H, c * Z, c * H, c * X, c * Z};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        *views[i] = ds_calloc(sizes[i], sizeof(double));
        if (!*views[i]) {
            ds_vae_work_destroy(&w);
            DS_CHECK(0, DS_ERR_NOMEM, "out of memory for the VAE workspace of %d rows", cap);
        }
    }
    *out = w;
    return DS_OK;
}

void ds_vae_work_destroy(ds_vae_work **wp)
{
    if (!wp || !*wp) return;
    ds_vae_work *w = *wp;
    double *views[] = {w->z, w->x, w->pre3, w->h3, w->a4, w->p, w->ga, w->gh, w->gz, w->dh, w->da, w->v};
    for (size_t i = 0; i < sizeof views / sizeof views[0]; i++) ds_free(views[i]);
    free(w);
    *wp = NULL;
}

/* out (m, o) = in (m, i) W^T + b (b may be NULL), W (o, i). */
static void lin(double *out, const double *in, const double *W, const double *b, int m, int i, int o)
{
    if (b)
        for (int r = 0; r < m; r++) memcpy(out + (size_t)r * o, b, sizeof(double) * (size_t)o);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, o, i, 1.0, in, i, W, i, b ? 1.0 : 0.0, out, o);
    ds_blas_done(); /* diffsamp/blas.h: why */
}
/* out (m, i) = in (m, o) W, W (o, i). */
static void lin_t(double *out, const double *in, const double *W, int m, int i, int o)
{
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, i, o, 1.0, in, o, W, i, 0.0, out, i);
    ds_blas_done(); /* diffsamp/blas.h: why */
}

/* Decoder forward of m rows of w->z: pre3, h3, p (clamped); returns nothing. */
static void decode(const ds_vae *v, ds_vae_work *w, int m)
{
    const int X = v->x_dim, H = v->hidden, Z = v->z_dim;
    lin(w->pre3, w->z, ds_vae_param(v, DS_VAE_FC3_W), ds_vae_param(v, DS_VAE_FC3_B), m, Z, H);
    for (size_t i = 0; i < (size_t)m * H; i++) w->h3[i] = w->pre3[i] > 0 ? w->pre3[i] : 0;
    lin(w->a4, w->h3, ds_vae_param(v, DS_VAE_FC4_W), ds_vae_param(v, DS_VAE_FC4_B), m, H, X);
    for (size_t i = 0; i < (size_t)m * X; i++) w->p[i] = 1.0 / (1.0 + exp(-w->a4[i]));
}

static int clamped(double p) { return !(p >= DS_VAE_EPS && p <= 1.0 - DS_VAE_EPS); }

/* gz (m, Z) = W3^T (relu' . (W4^T g)) for g (m, X) in w->ga. */
static void back_to_z(const ds_vae *v, ds_vae_work *w, int m, double *gz)
{
    const int X = v->x_dim, H = v->hidden, Z = v->z_dim;
    lin_t(w->gh, w->ga, ds_vae_param(v, DS_VAE_FC4_W), m, H, X);
    for (size_t i = 0; i < (size_t)m * H; i++)
        if (!(w->pre3[i] > 0)) w->gh[i] = 0;
    lin_t(gz, w->gh, ds_vae_param(v, DS_VAE_FC3_W), m, Z, H);
}

void ds_vae_log_posterior(const ds_vae *v, ds_vae_work *w, int n, const double *z, const double *x,
                          double *log_r, double *grad)
{
    const int X = v->x_dim, Z = v->z_dim;
    for (int k0 = 0; k0 < n; k0 += w->cap) {
        const int m = n - k0 < w->cap ? n - k0 : w->cap;
        memcpy(w->z, z + (size_t)k0 * Z, sizeof(double) * (size_t)m * Z);
        decode(v, w, m);
        for (int r = 0; r < m; r++) {
            const double *zr = w->z + (size_t)r * Z, *xr = x + (size_t)(k0 + r) * X, *pr = w->p + (size_t)r * X;
            double *gar = w->ga + (size_t)r * X;
            double lp = 0, ll = 0;
            for (int j = 0; j < Z; j++) lp += DS_LOG_2PI + zr[j] * zr[j];
            for (int j = 0; j < X; j++) {
                double p = pr[j];
                int c = clamped(p);
                if (c) p = p < DS_VAE_EPS ? DS_VAE_EPS : 1.0 - DS_VAE_EPS;
                ll += xr[j] * log(p) + (1.0 - xr[j]) * log1p(-p);
                gar[j] = c ? 0.0 : xr[j] - p;
            }
            log_r[k0 + r] = -0.5 * lp + ll;
        }
        if (grad) {
            back_to_z(v, w, m, w->gz);
            for (int r = 0; r < m; r++)
                for (int j = 0; j < Z; j++)
                    grad[(size_t)(k0 + r) * Z + j] = w->gz[(size_t)r * Z + j] - w->z[(size_t)r * Z + j];
        }
    }
}

void ds_vae_posterior_hvp(const ds_vae *v, ds_vae_work *w, int n, const double *z, const double *x,
                          const double *dz, double *hv)
{
    (void)x; /* the Hessian of the Bernoulli term in the logits does not depend on x */
    const int X = v->x_dim, H = v->hidden, Z = v->z_dim;
    for (int k0 = 0; k0 < n; k0 += w->cap) {
        const int m = n - k0 < w->cap ? n - k0 : w->cap;
        memcpy(w->z, z + (size_t)k0 * Z, sizeof(double) * (size_t)m * Z);
        decode(v, w, m);
        // dh = relu' . (dz W3^T); da = dh W4^T; d(x - p) = -p (1 - p) da where p is not clamped
        lin(w->dh, dz + (size_t)k0 * Z, ds_vae_param(v, DS_VAE_FC3_W), NULL, m, Z, H);
        for (size_t i = 0; i < (size_t)m * H; i++)
            if (!(w->pre3[i] > 0)) w->dh[i] = 0;
        lin(w->da, w->dh, ds_vae_param(v, DS_VAE_FC4_W), NULL, m, H, X);
        for (size_t i = 0; i < (size_t)m * X; i++) {
            const double p = w->p[i];
            w->ga[i] = clamped(p) ? 0.0 : -p * (1.0 - p) * w->da[i];
        }
        back_to_z(v, w, m, w->gz);
        for (int r = 0; r < m; r++)
            for (int j = 0; j < Z; j++)
                hv[(size_t)(k0 + r) * Z + j] = w->gz[(size_t)r * Z + j] - dz[(size_t)(k0 + r) * Z + j];
    }
}
