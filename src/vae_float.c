/* vae_float: the posterior target log R(z; x) and its z-gradient in float,
 * for the sampler's hot loops (local search and LP evaluate it for every
 * chain at every step); vae.h says what it computes and how closely.
 *
 * Per pixel it works in the logit a (p = sigmoid(a)), so that one exp and
 * one log serve the value, the gradient and the clamp:
 *   e = exp(-|a|),  softplus(a) = max(a, 0) + log(1 + e),
 *   x log p + (1 - x) log(1 - p) = x a - softplus(a),
 *   p = 1 / (1 + e) for a >= 0 and e / (1 + e) below,
 * and a clamped pixel (p outside [eps, 1 - eps]) takes the clamped value and
 * no gradient, as torch.clamp does. The pixel pass runs on 16 lanes
 * (gelu_lanes.h's exp; log by 2 atanh((m - 1)/(m + 1)) on m in
 * [1/sqrt 2, sqrt 2], a series whose truncation is below 1e-9), and each
 * row's sum is kept in double. The products run through smm.c's kernel
 * where it applies (the float build with FMA; widths that are multiples of
 * 16: every product but the last, to the latent), the ReLU mask fused into
 * the backward product; sgemm otherwise. */
#include "diffsamp/vae.h"
#include "fp_contract.h"

#include "diffsamp/blas.h"
#include "smm.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

ds_status ds_vae_f_create(const ds_vae *v, int cap, ds_vae_f **out)
{
    DS_CHECK(v && out && cap >= 1, DS_ERR_INVALID, "ds_vae_f_create: bad arguments");
    *out = NULL;
    ds_vae_f *f = calloc(1, sizeof *f);
    DS_ALLOC_CHECK(f);
    f->x_dim = v->x_dim;
    f->hidden = v->hidden;
    f->z_dim = v->z_dim;
    f->cap = cap;
    const size_t c = (size_t)cap, X = (size_t)v->x_dim, H = (size_t)v->hidden, Z = (size_t)v->z_dim;
    float **views[] = {&f->w3, &f->b3, &f->w4, &f->b4, &f->w3t, &f->w4t, &f->h3, &f->mask, &f->a4, &f->ga, &f->gh, &f->gz};
    const size_t sizes[] = {H * Z, H, X * H, X, Z * H, H * X, c * H, c * H, c * X, c * X, c * H, c * Z};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        *views[i] = ds_calloc(sizes[i], sizeof(float));
        if (!*views[i]) {
            ds_vae_f_destroy(&f);
            DS_CHECK(0, DS_ERR_NOMEM, "out of memory for the float VAE decoder of %d rows", cap);
        }
    }
    const int from[] = {DS_VAE_FC3_W, DS_VAE_FC3_B, DS_VAE_FC4_W, DS_VAE_FC4_B};
    for (int t = 0; t < 4; t++)
        for (size_t i = 0; i < sizes[t]; i++) (*views[t])[i] = (float)ds_vae_param(v, from[t])[i];
    /* the forward products' right-hand sides for smm: W^T, row-major */
    for (size_t o = 0; o < H; o++)
        for (size_t i = 0; i < Z; i++) f->w3t[i * H + o] = f->w3[o * Z + i];
    for (size_t o = 0; o < X; o++)
        for (size_t i = 0; i < H; i++) f->w4t[i * X + o] = f->w4[o * H + i];
    *out = f;
    return DS_OK;
}

void ds_vae_f_destroy(ds_vae_f **fp)
{
    if (!fp || !*fp) return;
    ds_vae_f *f = *fp;
    float *views[] = {f->w3, f->b3, f->w4, f->b4, f->w3t, f->w4t, f->h3, f->mask, f->a4, f->ga, f->gh, f->gz};
    for (size_t i = 0; i < sizeof views / sizeof views[0]; i++) ds_free(views[i]);
    free(f);
    *fp = NULL;
}

/* The value of a clamped pixel: p held at eps (low) or 1 - eps (high). */
typedef struct clamp_terms {
    float lo_x, lo_1, hi_x, hi_1; /* term = x * ..._x + ..._1 */
} clamp_terms;

static clamp_terms clamp_terms_make(void)
{
    const double l = log(DS_VAE_EPS), l1 = log1p(-DS_VAE_EPS);
    /* p = eps: x log eps + (1 - x) log(1 - eps); p = 1 - eps: x log(1 - eps) + (1 - x) log eps */
    return (clamp_terms){(float)(l - l1), (float)l1, (float)(l1 - l), (float)l};
}

/* One pixel in scalar float: the tail of a row that is not a multiple of 16. */
static float pixel_scalar(float a, float x, const clamp_terms *c, float *g)
{
    const float e = expf(-fabsf(a)), inv = 1.0f / (1.0f + e);
    const float p = a >= 0 ? inv : e * inv;
    if (p < (float)DS_VAE_EPS) {
        *g = 0;
        return x * c->lo_x + c->lo_1;
    }
    if (p > (float)(1.0 - DS_VAE_EPS)) {
        *g = 0;
        return x * c->hi_x + c->hi_1;
    }
    *g = x - p;
    return x * a - ((a > 0 ? a : 0) + log1pf(e));
}

DS_FP_CONTRACT_BEGIN
#include "gelu_lanes.h"

typedef double ds_vd8 __attribute__((vector_size(64)));
typedef float ds_vf8 __attribute__((vector_size(32)));

/* log(u) for u in [1, 2], 16 lanes: u = 2^k m with m in [1/sqrt 2, sqrt 2],
 * log m = 2 atanh(s), s = (m - 1)/(m + 1), |s| <= 0.1716. */
static inline ds_vf vlog_1_2(ds_vf u)
{
    const ds_vi big = u > 1.41421356237f;
    const ds_vf m = ds_vsel(big, u * 0.5f, u);
    const ds_vf s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
    ds_vf q = s2 * (2.0f / 9.0f) + 2.0f / 7.0f;
    q = q * s2 + 2.0f / 5.0f;
    q = q * s2 + 2.0f / 3.0f;
    q = q * s2 + 2.0f;
    const ds_vf zero = {0};
    return s * q + ds_vsel(big, zero + 0.69314718056f, zero);
}

/* The pixel pass of one row: returns sum_j log-likelihood terms (double),
 * g[j] = d/da of it (0 at a clamped pixel). */
static double row_pass(const float *a, const float *x, float *g, int X, const clamp_terms *c)
{
    ds_vd8 acc = {0};
    const ds_vf zero = {0};
    const float eps = (float)DS_VAE_EPS, one_eps = (float)(1.0 - DS_VAE_EPS);
    int j = 0;
    for (; j + DS_LANES <= X; j += DS_LANES) {
        ds_vf av, xv;
        memcpy(&av, a + j, sizeof av);
        memcpy(&xv, x + j, sizeof xv);
        const ds_vi neg = av < 0;
        const ds_vf e = ds_vexp(ds_vsel(neg, av, -av));
        const ds_vf onep = 1.0f + e, inv = 1.0f / onep;
        const ds_vf p = ds_vsel(neg, e * inv, inv);
        ds_vf term = xv * av - (ds_vsel(neg, zero, av) + vlog_1_2(onep));
        const ds_vi lo = p < eps, hi = p > one_eps;
        term = ds_vsel(lo, xv * c->lo_x + c->lo_1, term);
        term = ds_vsel(hi, xv * c->hi_x + c->hi_1, term);
        const ds_vf gv = ds_vsel(lo | hi, zero, xv - p);
        memcpy(g + j, &gv, sizeof gv);
        ds_vf8 h0, h1;
        memcpy(&h0, &term, sizeof h0);
        memcpy(&h1, (const char *)&term + sizeof h0, sizeof h1);
        acc += __builtin_convertvector(h0, ds_vd8) + __builtin_convertvector(h1, ds_vd8);
    }
    double s = 0;
    for (int l = 0; l < 8; l++) s += acc[l];
    for (; j < X; j++) s += (double)pixel_scalar(a[j], x[j], c, g + j);
    return s;
}

/* h = relu(h), mask = relu'(h) (1 or 0) */
static void relu_inplace(float *h, float *mask, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mask[i] = h[i] > 0 ? 1.0f : 0.0f;
        h[i] = h[i] > 0 ? h[i] : 0;
    }
}
DS_FP_CONTRACT_END

void ds_vae_log_posterior_f(ds_vae_f *f, int n, const float *z, const float *x, float *log_r, float *grad)
{
    const int X = f->x_dim, H = f->hidden, Z = f->z_dim;
    const clamp_terms c = clamp_terms_make();
    for (int k0 = 0; k0 < n; k0 += f->cap) {
        const int m = n - k0 < f->cap ? n - k0 : f->cap;
        const float *zb = z + (size_t)k0 * Z, *xb = x + (size_t)k0 * X;
        /* h3 = relu(z W3^T + b3), a4 = h3 W4^T + b4 */
        if (ds_smm_ok(H, Z)) {
            const ds_smm_epilogue e = {.mode = DS_SMM_SET, .bias = f->b3};
            ds_smm(m, H, Z, zb, Z, 1, f->w3t, H, f->h3, H, &e);
        } else {
            for (int r = 0; r < m; r++) memcpy(f->h3 + (size_t)r * H, f->b3, sizeof(float) * (size_t)H);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, H, Z, 1.0f, zb, Z, f->w3, Z, 1.0f, f->h3, H);
            ds_blas_done();
        }
        relu_inplace(f->h3, f->mask, (size_t)m * H);
        if (ds_smm_ok(X, H)) {
            const ds_smm_epilogue e = {.mode = DS_SMM_SET, .bias = f->b4};
            ds_smm(m, X, H, f->h3, H, 1, f->w4t, X, f->a4, X, &e);
        } else {
            for (int r = 0; r < m; r++) memcpy(f->a4 + (size_t)r * X, f->b4, sizeof(float) * (size_t)X);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, X, H, 1.0f, f->h3, H, f->w4, H, 1.0f, f->a4, X);
            ds_blas_done();
        }
        for (int r = 0; r < m; r++) {
            const float *zr = zb + (size_t)r * Z;
            double prior = 0;
            for (int j = 0; j < Z; j++) prior += DS_LOG_2PI + (double)zr[j] * zr[j];
            const double ll = row_pass(f->a4 + (size_t)r * X, xb + (size_t)r * X, f->ga + (size_t)r * X, X, &c);
            log_r[k0 + r] = (float)(-0.5 * prior + ll);
        }
        if (!grad) continue;
        /* grad = W3^T (relu' . (W4^T ga)) - z */
        if (ds_smm_ok(H, X)) {
            const ds_smm_epilogue e = {.mode = DS_SMM_MUL, .mul = f->mask};
            ds_smm(m, H, X, f->ga, X, 1, f->w4, H, f->gh, H, &e);
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, H, X, 1.0f, f->ga, X, f->w4, H, 0.0f, f->gh, H);
            ds_blas_done();
            for (size_t i = 0; i < (size_t)m * H; i++) f->gh[i] *= f->mask[i];
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, Z, H, 1.0f, f->gh, H, f->w3, Z, 0.0f, f->gz, Z);
        ds_blas_done();
        for (size_t i = 0; i < (size_t)m * Z; i++) grad[(size_t)k0 * Z + i] = f->gz[i] - zb[i];
    }
}
