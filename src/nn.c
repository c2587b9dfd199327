/* nn: parameter arena, Linear / GELU / Fourier layers and Adam. */
#include "diffsamp/nn.h"
#include "fp_contract.h"

#include "diffsamp/blas.h"
#include "smm.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(DS_REAL_DOUBLE)
#define DS_GEMM_RAW cblas_dgemm
#define DS_ERF erf
#define DS_EXP exp
#define DS_SIN sin
#define DS_COS cos
#define DS_SQRT sqrt
#else
#define DS_GEMM_RAW cblas_sgemm
#define DS_ERF erff
#define DS_EXP expf
#define DS_SIN sinf
#define DS_COS cosf
#define DS_SQRT sqrtf
#endif
/* every product is followed by ds_blas_done (blas.h: why) */
#define DS_GEMM(...) (DS_GEMM_RAW(__VA_ARGS__), ds_blas_done())

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

#if !defined(DS_REAL_DOUBLE)
/* W (rows x cols) transposed into a buffer of this thread, for the forward
 * products that want W^T row-major (smm.c, libxsmm). Weights above its size
 * go through BLAS, so nothing is allocated. */
#define DS_WT_MAX 16384 /* 64 KiB: a 128 x 128 layer */
static _Thread_local float wt_buf[DS_WT_MAX];

static const float *transposed(const float *W, int rows, int cols)
{
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) wt_buf[(size_t)j * rows + i] = W[(size_t)i * cols + j];
    return wt_buf;
}
#endif

#if defined(DS_USE_LIBXSMM) && !defined(DS_REAL_DOUBLE)
/* The float build's products through libxsmm's JIT kernels (cmake
 * -DDS_LIBXSMM=ON; measured on these machines at (300 x 64) x (64 x 64):
 * 155-165 GFLOP/s against OpenBLAS's 105-120, and no packing copies).
 * libxsmm is column-major: a row-major C = A B is the column-major
 * C^T = B^T A^T, so each product below names its operands the other way
 * round. Its JIT has no kernel for a transposed first operand, so the
 * forward product multiplies by a transposed copy of W (made per call:
 * out x in numbers, against B x out x in multiply-adds). */
#include <libxsmm.h>

static void xsmm_or_die(libxsmm_smmfunction f)
{
    if (!f) {
        fprintf(stderr, "diffsamp: libxsmm has no kernel for a product shape (build without DS_LIBXSMM)\n");
        abort();
    }
}

/* column-major C (m x n) = A (m x k) op(B) + beta C, op(B) = B or B^T (k x n) */
static void xsmm_gemm(int trans_b, int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                      float beta, float *c, int ldc)
{
    const libxsmm_blasint M = m, N = n, K = k, la = lda, lb = ldb, lc = ldc;
    const float one = 1;
    const int flags = (trans_b ? LIBXSMM_GEMM_FLAG_TRANS_B : 0) | (beta == 0 ? LIBXSMM_GEMM_FLAG_BETA_0 : 0);
    libxsmm_smmfunction f = libxsmm_smmdispatch(M, N, K, &la, &lb, &lc, &one, &beta, &flags, NULL);
    xsmm_or_die(f);
    f(a, b, c);
    ds_blas_done();
}

static void linear_product(ds_real *out, const ds_real *in, const ds_real *W, int B, int in_dim, int out_dim,
                           float beta)
{
    /* row-major out (B, out) = in (B, in) W^T: column-major out' (out x B) = Wt' (out x in) in' (in x B) */
    if ((size_t)out_dim * (size_t)in_dim > DS_WT_MAX) {  /* wider than the transposed copy's buffer */
        DS_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, B, out_dim, in_dim, 1, in, in_dim, W, in_dim, beta, out,
                out_dim);
        return;
    }
    const float *Wt = transposed(W, out_dim, in_dim); /* row-major (in, out) = column-major (out x in) */
    xsmm_gemm(0, out_dim, B, in_dim, Wt, out_dim, in, in_dim, beta, out, out_dim);
}

static void params_product(ds_real *dW, const ds_real *dout, const ds_real *in, int B, int in_dim, int out_dim)
{
    /* row-major dW (out, in) += dout^T in: column-major dW' (in x out) += in' (in x B) dout'^T (B x out), in
     * blocks of rows (libxsmm's kernels slow down 4x over a long inner dimension) */
    for (int r = 0; r < B; r += 512) {
        const int k = B - r < 512 ? B - r : 512;
        xsmm_gemm(1, in_dim, out_dim, k, in + (size_t)r * in_dim, in_dim, dout + (size_t)r * out_dim, out_dim, 1,
                  dW, in_dim);
    }
}

static void input_product(ds_real *din, const ds_real *dout, const ds_real *W, int B, int in_dim, int out_dim,
                          float beta)
{
    /* row-major din (B, in) = dout W: column-major din' (in x B) = W' (in x out) dout' (out x B) */
    xsmm_gemm(0, in_dim, B, out_dim, W, in_dim, dout, out_dim, beta, din, in_dim);
}
#else
static void linear_product(ds_real *out, const ds_real *in, const ds_real *W, int B, int in_dim, int out_dim,
                           ds_real beta)
{
    DS_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, B, out_dim, in_dim, 1, in, in_dim, W, in_dim, beta, out,
            out_dim);
}

static void params_product(ds_real *dW, const ds_real *dout, const ds_real *in, int B, int in_dim, int out_dim)
{
    DS_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, out_dim, in_dim, B, 1, dout, out_dim, in, in_dim, 1, dW,
            in_dim);
}

static void input_product(ds_real *din, const ds_real *dout, const ds_real *W, int B, int in_dim, int out_dim,
                          ds_real beta)
{
    DS_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, in_dim, out_dim, 1, dout, out_dim, W, in_dim, beta, din,
            in_dim);
}
#endif

/* The products through smm.c where it runs them (the float build, widths
 * that are multiples of 16): each returns 1 when it did the work. */
#if !defined(DS_REAL_DOUBLE)
static int smm_forward(ds_real *out, ds_real *gd, const ds_real *in, const ds_real *W, const ds_real *b, int B,
                       int in_dim, int out_dim, ds_smm_mode mode)
{
    if ((size_t)out_dim * (size_t)in_dim > DS_WT_MAX || !ds_smm_ok(out_dim, in_dim)) return 0;
    const ds_smm_epilogue e = {mode, b, gd, NULL};
    ds_smm(B, out_dim, in_dim, in, in_dim, 1, transposed(W, out_dim, in_dim), out_dim, out, out_dim, &e);
    return 1;
}

static int smm_params(ds_real *dW, const ds_real *dout, const ds_real *in, int B, int in_dim, int out_dim)
{
    if (ds_smm_ok(in_dim, B)) {
        const ds_smm_epilogue e = {DS_SMM_ADD, NULL, NULL, NULL};
        ds_smm(out_dim, in_dim, B, dout, 1, out_dim, in, in_dim, dW, in_dim, &e);  /* dout read transposed */
        return 1;
    }
    if ((size_t)out_dim * (size_t)in_dim <= DS_WT_MAX && ds_smm_ok(out_dim, B)) {
        /* a narrow input (the state layer, in_dim = d): dW^T (in, out) = in^T dout, then added to dW */
        const ds_smm_epilogue e = {DS_SMM_SET, NULL, NULL, NULL};
        ds_smm(in_dim, out_dim, B, in, 1, in_dim, dout, out_dim, wt_buf, out_dim, &e);
        for (int j = 0; j < out_dim; j++)
            for (int i = 0; i < in_dim; i++) dW[(size_t)j * in_dim + i] += wt_buf[(size_t)i * out_dim + j];
        return 1;
    }
    return 0;
}

static int smm_input(ds_real *din, const ds_real *dout, const ds_real *W, int B, int in_dim, int out_dim,
                     ds_smm_mode mode, const ds_real *mul)
{
    if (!ds_smm_ok(in_dim, out_dim)) return 0;
    const ds_smm_epilogue e = {mode, NULL, NULL, mul};
    ds_smm(B, in_dim, out_dim, dout, out_dim, 1, W, in_dim, din, in_dim, &e);
    return 1;
}
#else
#define smm_forward(...) 0
#define smm_params(...) 0
#define smm_input(...) 0
#endif

void ds_linear_forward(ds_real *out, const ds_real *in, const ds_real *W, const ds_real *b,
                       int B, int in_dim, int out_dim)
{
    // out: (B, out_dim), in: (B, in_dim), W: (out_dim, in_dim)
    if (smm_forward(out, NULL, in, W, b, B, in_dim, out_dim, DS_SMM_SET)) return;
    if (b) {
        for (int r = 0; r < B; r++) memcpy(out + (size_t)r * out_dim, b, (size_t)out_dim * sizeof(ds_real));
    }
    linear_product(out, in, W, B, in_dim, out_dim, b ? 1 : 0);
}

void ds_linear_forward_gelu(ds_real *act, ds_real *gd, const ds_real *in, const ds_real *W, const ds_real *b,
                            int B, int in_dim, int out_dim, ds_real *scratch)
{
    if (smm_forward(act, gd, in, W, b, B, in_dim, out_dim, DS_SMM_GELU)) return;
    ds_linear_forward(scratch, in, W, b, B, in_dim, out_dim);
    ds_gelu_forward_grad(act, gd, scratch, (size_t)B * out_dim);
}

void ds_linear_forward_add(ds_real *out, const ds_real *in, const ds_real *W, int B, int in_dim, int out_dim)
{
    if (smm_forward(out, NULL, in, W, NULL, B, in_dim, out_dim, DS_SMM_ADD)) return;
    linear_product(out, in, W, B, in_dim, out_dim, 1);
}

void ds_col_sums(ds_real *restrict acc, const ds_real *restrict x, int B, int n)
{
    int j0 = 0;
#if !defined(DS_REAL_DOUBLE)
    /* 64 columns at a time in registers (storing acc after every row made
     * each row wait for the last one's store); the same order of additions */
    typedef float vf16 __attribute__((vector_size(64)));
    for (; j0 + 64 <= n; j0 += 64) {
        vf16 v[4];
        memcpy(v, acc + j0, sizeof v);
        for (int r = 0; r < B; r++) {
            vf16 row[4];
            memcpy(row, x + (size_t)r * n + j0, sizeof row);
            for (int k = 0; k < 4; k++) v[k] += row[k];
        }
        memcpy(acc + j0, v, sizeof v);
    }
#endif
    for (int r = 0; r < B; r++) {
        const ds_real *row = x + (size_t)r * n;
        for (int j = j0; j < n; j++) acc[j] += row[j];
    }
}

void ds_linear_backward_params(ds_real *dW, ds_real *db, const ds_real *dout, const ds_real *in, int B, int in_dim,
                               int out_dim)
{
    // dW (out_dim, in_dim) += dout^T (out_dim, B) @ in (B, in_dim)
    if (!smm_params(dW, dout, in, B, in_dim, out_dim)) params_product(dW, dout, in, B, in_dim, out_dim);
    if (db) ds_col_sums(db, dout, B, out_dim);
}

void ds_linear_backward_input(ds_real *din, const ds_real *dout, const ds_real *W, int B, int in_dim, int out_dim,
                              int accumulate)
{
    // din (B, in_dim) (+)= dout (B, out_dim) @ W (out_dim, in_dim)
    if (smm_input(din, dout, W, B, in_dim, out_dim, accumulate ? DS_SMM_ADD : DS_SMM_SET, NULL)) return;
    input_product(din, dout, W, B, in_dim, out_dim, accumulate ? 1 : 0);
}

void ds_linear_backward_input_gelu(ds_real *din, const ds_real *dout, const ds_real *W, const ds_real *gd, int B,
                                   int in_dim, int out_dim)
{
    // din (B, in_dim) = (dout @ W) * gd
    if (smm_input(din, dout, W, B, in_dim, out_dim, DS_SMM_MUL, gd)) return;
    input_product(din, dout, W, B, in_dim, out_dim, 0);
    for (size_t k = 0; k < (size_t)B * in_dim; k++) din[k] *= gd[k];
}

void ds_linear_backward(ds_real *din, ds_real *dW, ds_real *db, const ds_real *dout,
                        const ds_real *in, const ds_real *W, int B, int in_dim, int out_dim)
{
    ds_linear_backward_params(dW, db, dout, in, B, in_dim, out_dim);
    if (din) ds_linear_backward_input(din, dout, W, B, in_dim, out_dim, 1);
}

#if defined(DS_REAL_DOUBLE)
/* GELU forward that also stores GELU'(x) for the backward pass (libm, double). */
void ds_gelu_forward_grad(ds_real *out, ds_real *gd, const ds_real *x, size_t n)
{
    const double s = 0.70710678118654752440, c = 0.39894228040143267794;
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        double cdf = 0.5 * (1.0 + erf(v * s));
        out[i] = v * cdf;
        gd[i] = cdf + v * c * exp(-0.5 * v * v);
    }
}
#else
/* The float build: 16 lanes at a time (gelu_lanes.h, with fused multiply-adds). */
DS_FP_CONTRACT_BEGIN
#include "gelu_lanes.h"

static inline void gelu_block(const float *x, float *out, float *gd)
{
    ds_vf v, o, g;
    memcpy(&v, x, sizeof v);
    ds_vgelu(v, &o, &g);
    memcpy(out, &o, sizeof o);
    memcpy(gd, &g, sizeof g);
}

void ds_gelu_forward_grad(ds_real *restrict out, ds_real *restrict gd, const ds_real *restrict x, size_t n)
{
    size_t i = 0;
    for (; i + DS_LANES <= n; i += DS_LANES) gelu_block(x + i, out + i, gd + i);
    if (i < n) {  /* tail through the same lanes, so every element is computed identically */
        float xb[DS_LANES] = {0}, ob[DS_LANES], gb[DS_LANES];
        memcpy(xb, x + i, sizeof(float) * (n - i));
        gelu_block(xb, ob, gb);
        memcpy(out + i, ob, sizeof(float) * (n - i));
        memcpy(gd + i, gb, sizeof(float) * (n - i));
    }
}
DS_FP_CONTRACT_END
#endif

/* ------------------------------------------------------------------ MLP */

ds_status ds_mlp_add(ds_mlp *m, ds_arena *a, int nlinear, const int *dims, const char *const *names, int group)
{
    memset(m, 0, sizeof *m);
    DS_CHECK(nlinear >= 1 && nlinear <= DS_MLP_MAX_LINEAR, DS_ERR_INVALID, "an MLP has 1..%d Linear layers, got %d",
             DS_MLP_MAX_LINEAR, nlinear);
    m->nlinear = nlinear;
    for (int l = 0; l <= nlinear; l++) {
        DS_CHECK(dims[l] >= 1, DS_ERR_INVALID, "MLP width %d of layer %d", dims[l], l);
        m->dims[l] = dims[l];
    }
    char name[2 * DS_TENSOR_NAME_MAX];  /* the arena refuses names that are too long */
    for (int l = 0; l < nlinear; l++) {
        snprintf(name, sizeof name, "%s.weight", names[l]);
        DS_TRY(ds_arena_add(a, name, dims[l + 1], dims[l], group, &m->w[l]));
        snprintf(name, sizeof name, "%s.bias", names[l]);
        DS_TRY(ds_arena_add(a, name, 1, dims[l + 1], group, &m->b[l]));
    }
    return DS_OK;
}

size_t ds_mlp_workspace(const ds_mlp *m, size_t rows)
{
    size_t n = 0;
    for (int l = 1; l < m->nlinear; l++) n += 2 * rows * (size_t)m->dims[l];
    return n;
}

int ds_mlp_max_hidden(const ds_mlp *m)
{
    int w = 0;
    for (int l = 1; l < m->nlinear; l++) w = m->dims[l] > w ? m->dims[l] : w;
    return w;
}

void ds_mlp_bind(ds_mlp *m, ds_real *ws, size_t rows)
{
    for (int l = 1; l < m->nlinear; l++) {
        m->act[l] = ws;
        ws += rows * (size_t)m->dims[l];
        m->gd[l] = ws;
        ws += rows * (size_t)m->dims[l];
    }
}

void ds_mlp_forward(const ds_mlp *m, const ds_arena *a, ds_real *out, const ds_real *in, size_t r0, int n,
                    ds_real *scratch)
{
    // in: (n, dims[0]) -> [Linear, GELU] x (L-1) -> Linear -> out: (n, dims[L])
    const int L = m->nlinear;
    for (int l = 0; l < L; l++) {
        const ds_real *x = l == 0 ? in : m->act[l] + r0 * m->dims[l];
        if (l + 1 == L) {  /* the first ds_mlp_out(m) rows of W and b: the outputs that are read */
            ds_linear_forward(out, x, ds_arena_param(a, m->w[l]), ds_arena_param(a, m->b[l]), n, m->dims[l],
                              ds_mlp_out(m));
        } else {
            const size_t o = r0 * m->dims[l + 1];
            ds_linear_forward_gelu(m->act[l + 1] + o, m->gd[l + 1] + o, x, ds_arena_param(a, m->w[l]),
                                   ds_arena_param(a, m->b[l]), n, m->dims[l], m->dims[l + 1], scratch);
        }
    }
}

static void mlp_backward(const ds_mlp *m, const ds_arena *a, ds_real *din, int accumulate, const ds_real *din_gd,
                         const ds_real *dout, const ds_real *in, size_t r0, int n, ds_real *s1, ds_real *s2)
{
    const int L = m->nlinear;
    const ds_real *g = dout;  // d loss / d output of layer l
    ds_real *cur = s1, *nxt = s2;
    for (int l = L - 1; l >= 0; l--) {
        const ds_real *x = l == 0 ? in : m->act[l] + r0 * m->dims[l];
        const int nout = l + 1 == L ? ds_mlp_out(m) : m->dims[l + 1];  /* unread outputs: zero gradient */
        ds_linear_backward_params(ds_arena_grad(a, m->w[l]), ds_arena_grad(a, m->b[l]), g, x, n, m->dims[l], nout);
        if (l == 0) {
            if (din && din_gd) ds_linear_backward_input_gelu(din, g, ds_arena_param(a, m->w[0]), din_gd, n, m->dims[0], nout);
            else if (din) ds_linear_backward_input(din, g, ds_arena_param(a, m->w[0]), n, m->dims[0], nout, accumulate);
            break;
        }
        // d act_l, then through the GELU in front of it
        ds_linear_backward_input_gelu(cur, g, ds_arena_param(a, m->w[l]), m->gd[l] + r0 * m->dims[l], n,
                                      m->dims[l], nout);
        g = cur;
        ds_real *t = cur; cur = nxt; nxt = t;
    }
}

void ds_mlp_backward(const ds_mlp *m, const ds_arena *a, ds_real *din, int accumulate, const ds_real *dout,
                     const ds_real *in, size_t r0, int n, ds_real *s1, ds_real *s2)
{
    mlp_backward(m, a, din, accumulate, NULL, dout, in, r0, n, s1, s2);
}

void ds_mlp_backward_gelu(const ds_mlp *m, const ds_arena *a, ds_real *din, const ds_real *din_gd,
                          const ds_real *dout, const ds_real *in, size_t r0, int n, ds_real *s1, ds_real *s2)
{
    mlp_backward(m, a, din, 0, din_gd, dout, in, r0, n, s1, s2);
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
