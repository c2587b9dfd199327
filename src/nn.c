/* nn: parameter arena, Linear / GELU / Fourier layers and Adam. */
#include "diffsamp/nn.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(DS_REAL_DOUBLE)
#define DS_GEMM cblas_dgemm
#define DS_ERF erf
#define DS_EXP exp
#define DS_SIN sin
#define DS_COS cos
#define DS_SQRT sqrt
#else
#define DS_GEMM cblas_sgemm
#define DS_ERF erff
#define DS_EXP expf
#define DS_SIN sinf
#define DS_COS cosf
#define DS_SQRT sqrtf
#endif

void ds_arena_init(ds_arena *a)
{
    memset(a, 0, sizeof *a);
}

ds_status ds_arena_add(ds_arena *a, const char *name, int rows, int cols, int group, int *index)
{
    DS_CHECK(!a->allocated, DS_ERR_INVALID, "tensor '%s' added after the arena was allocated", name);
    DS_CHECK(rows > 0 && cols > 0, DS_ERR_INVALID, "tensor '%s' has shape (%d, %d)", name, rows, cols);
    DS_CHECK(group >= 0 && group < DS_PARAM_GROUPS, DS_ERR_INVALID, "bad group %d", group);
    DS_CHECK(strlen(name) < DS_TENSOR_NAME_MAX, DS_ERR_INVALID, "tensor name too long: %s", name);
    DS_CHECK(ds_arena_find(a, name) < 0, DS_ERR_INVALID, "tensor '%s' registered twice", name);
    if (a->ntensors == a->cap) {
        int cap = a->cap ? 2 * a->cap : 32;
        ds_tensor_info *t = realloc(a->tensors, (size_t)cap * sizeof *t);
        DS_ALLOC_CHECK(t);
        a->tensors = t;
        a->cap = cap;
    }
    ds_tensor_info *t = &a->tensors[a->ntensors];
    snprintf(t->name, sizeof t->name, "%s", name);
    /* Keep every tensor 16-element aligned so BLAS sees aligned rows. */
    t->offset = (a->n + 15) & ~(size_t)15;
    t->rows = rows;
    t->cols = cols;
    t->group = group;
    a->n = t->offset + (size_t)rows * (size_t)cols;
    if (index) *index = a->ntensors;
    a->ntensors++;
    return DS_OK;
}

ds_status ds_arena_alloc(ds_arena *a)
{
    DS_CHECK(!a->allocated, DS_ERR_INVALID, "arena allocated twice");
    a->params = ds_calloc(a->n, sizeof(ds_real));
    a->grads = ds_calloc(a->n, sizeof(ds_real));
    a->m = ds_calloc(a->n, sizeof(ds_real));
    a->v = ds_calloc(a->n, sizeof(ds_real));
    if (!a->params || !a->grads || !a->m || !a->v) {
        ds_arena_free(a);
        return ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__,
                            "cannot allocate %zu parameters", a->n);
    }
    a->allocated = 1;
    return DS_OK;
}

void ds_arena_free(ds_arena *a)
{
    if (!a) return;
    DS_FREE(a->params);
    DS_FREE(a->grads);
    DS_FREE(a->m);
    DS_FREE(a->v);
    free(a->tensors);
    memset(a, 0, sizeof *a);
}

int ds_arena_find(const ds_arena *a, const char *name)
{
    for (int i = 0; i < a->ntensors; i++)
        if (strcmp(a->tensors[i].name, name) == 0) return i;
    return -1;
}

void ds_arena_zero_grad(ds_arena *a)
{
    memset(a->grads, 0, a->n * sizeof(ds_real));
}

void ds_init_uniform(ds_real *w, size_t n, double bound, ds_rng r, uint64_t tensor_id)
{
    double u[64];
    for (size_t i = 0; i < n; i += 64) {
        size_t k = n - i < 64 ? n - i : 64;
        ds_rng_uniform_d(r, tensor_id, i / 64, 0, (int)k, u);
        for (size_t j = 0; j < k; j++) w[i + j] = (ds_real)(bound * (2.0 * u[j] - 1.0));
    }
}

void ds_init_normal(ds_real *w, size_t n, double std, ds_rng r, uint64_t tensor_id)
{
    double z[64];
    for (size_t i = 0; i < n; i += 64) {
        size_t k = n - i < 64 ? n - i : 64;
        ds_rng_normal_d(r, tensor_id, i / 64, 1, (int)k, z);
        for (size_t j = 0; j < k; j++) w[i + j] = (ds_real)(std * z[j]);
    }
}

void ds_linear_forward(ds_real *out, const ds_real *in, const ds_real *W, const ds_real *b,
                       int B, int in_dim, int out_dim)
{
    // out: (B, out_dim), in: (B, in_dim), W: (out_dim, in_dim)
    if (b) {
        for (int r = 0; r < B; r++) memcpy(out + (size_t)r * out_dim, b, (size_t)out_dim * sizeof(ds_real));
    }
    DS_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, B, out_dim, in_dim, 1, in, in_dim, W, in_dim,
            b ? 1 : 0, out, out_dim);
}

void ds_linear_forward_add(ds_real *out, const ds_real *in, const ds_real *W, int B, int in_dim, int out_dim)
{
    DS_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, B, out_dim, in_dim, 1, in, in_dim, W, in_dim, 1, out, out_dim);
}

void ds_linear_backward_params(ds_real *dW, ds_real *db, const ds_real *dout, const ds_real *in, int B, int in_dim,
                               int out_dim)
{
    // dW (out_dim, in_dim) += dout^T (out_dim, B) @ in (B, in_dim)
    DS_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, out_dim, in_dim, B, 1, dout, out_dim, in, in_dim, 1, dW,
            in_dim);
    if (db) {
        for (int r = 0; r < B; r++) {
            const ds_real *row = dout + (size_t)r * out_dim;
            for (int j = 0; j < out_dim; j++) db[j] += row[j];
        }
    }
}

void ds_linear_backward_input(ds_real *din, const ds_real *dout, const ds_real *W, int B, int in_dim, int out_dim,
                              int accumulate)
{
    // din (B, in_dim) (+)= dout (B, out_dim) @ W (out_dim, in_dim)
    DS_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, in_dim, out_dim, 1, dout, out_dim, W, in_dim,
            accumulate ? 1 : 0, din, in_dim);
}

void ds_linear_backward(ds_real *din, ds_real *dW, ds_real *db, const ds_real *dout,
                        const ds_real *in, const ds_real *W, int B, int in_dim, int out_dim)
{
    ds_linear_backward_params(dW, db, dout, in, B, in_dim, out_dim);
    if (din) ds_linear_backward_input(din, dout, W, B, in_dim, out_dim, 1);
}

#define DS_SQRT1_2 0.70710678118654752440
#define DS_INV_SQRT_2PI 0.39894228040143267794

void ds_gelu_forward(ds_real *out, const ds_real *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ds_real v = x[i];
        out[i] = (ds_real)0.5 * v * ((ds_real)1 + DS_ERF(v * (ds_real)DS_SQRT1_2));
    }
}

void ds_gelu_backward(ds_real *din, const ds_real *dout, const ds_real *x, size_t n, int accumulate)
{
    for (size_t i = 0; i < n; i++) {
        ds_real v = x[i];
        ds_real cdf = (ds_real)0.5 * ((ds_real)1 + DS_ERF(v * (ds_real)DS_SQRT1_2));
        ds_real pdf = (ds_real)DS_INV_SQRT_2PI * DS_EXP((ds_real)-0.5 * v * v);
        ds_real g = dout[i] * (cdf + v * pdf);
        din[i] = accumulate ? din[i] + g : g;
    }
}

void ds_fourier_forward(ds_real *out, ds_real t, const ds_real *w, const ds_real *phase, int H)
{
    for (int k = 0; k < H; k++) {
        ds_real arg = t * w[k] + phase[k];
        out[k] = DS_SIN(arg);
        out[H + k] = DS_COS(arg);
    }
}

void ds_fourier_backward(ds_real *dphase, const ds_real *dout, ds_real t, const ds_real *w,
                         const ds_real *phase, int H)
{
    for (int k = 0; k < H; k++) {
        ds_real arg = t * w[k] + phase[k];
        dphase[k] += dout[k] * DS_COS(arg) - dout[H + k] * DS_SIN(arg);
    }
}

void ds_adam_init(ds_adam *opt, double lr_policy, double lr_flow)
{
    opt->beta1 = 0.9;
    opt->beta2 = 0.999;
    opt->eps = 1e-8;
    opt->lr[DS_GROUP_POLICY] = lr_policy;
    opt->lr[DS_GROUP_FLOW] = lr_flow;
    opt->step = 0;
}

void ds_adam_step(ds_adam *opt, ds_arena *a)
{
    opt->step++;
    const double b1 = opt->beta1, b2 = opt->beta2;
    const double bc1 = 1.0 - pow(b1, (double)opt->step);
    const double bc2_sqrt = sqrt(1.0 - pow(b2, (double)opt->step));
    for (int t = 0; t < a->ntensors; t++) {
        const ds_tensor_info *ti = &a->tensors[t];
        const ds_real step_size = (ds_real)(opt->lr[ti->group] / bc1);
        const ds_real inv_bc2 = (ds_real)(1.0 / bc2_sqrt);
        const ds_real eps = (ds_real)opt->eps;
        size_t n = (size_t)ti->rows * (size_t)ti->cols;
        ds_real *p = a->params + ti->offset, *g = a->grads + ti->offset;
        ds_real *m = a->m + ti->offset, *v = a->v + ti->offset;
        for (size_t i = 0; i < n; i++) {
            m[i] = (ds_real)b1 * m[i] + (ds_real)(1.0 - b1) * g[i];
            v[i] = (ds_real)b2 * v[i] + (ds_real)(1.0 - b2) * g[i] * g[i];
            ds_real denom = DS_SQRT(v[i]) * inv_bc2 + eps;
            p[i] -= step_size * m[i] / denom;
        }
    }
}
