/* policy_cond: the conditional state encoder and log Z(c) network of
 * gfn-diffusion's VAE models (models/architectures.py StateEncodingVAE,
 * FlowModelVAE; policy.h). Row r of every slot of a pass is trajectory r,
 * whose condition is cond[r]; the condition's share of the first layer,
 * W1[:, d:] c + b1, is computed once per trajectory (set_condition) and its
 * gradient summed over the slots before one product with the conditions. */
#include "policy_impl.h"

#include "diffsamp/blas.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(DS_REAL_DOUBLE)
#define GEMM_RAW cblas_dgemm
#else
#define GEMM_RAW cblas_sgemm
#endif
/* every product is followed by ds_blas_done (diffsamp/blas.h: why) */
#define GEMM(...) (GEMM_RAW(__VA_ARGS__), ds_blas_done())

struct ds_policy_cond {
    int C, ld;          /* cond_dim, d + C (row stride of W1) */
    int w1, b1;         /* s_model.x_model.0 */
    ds_mlp rest;        /* s_model.x_model.{2.0, ..., L+2}: cond_layers x [Linear(H,H), GELU], Linear(H,H) */
    int cap;            /* rows per slot the flow workspace holds */
    ds_real *ws;
    ds_real *cond;      /* (cap, C) the pass's conditions */
    ds_real *cproj;     /* (cap, H) W1[:, d:] c + b1 */
    ds_real *dcproj;    /* (cap, H) d loss / d cproj, summed over the slots back-propagated so far */
    ds_real *a1, *gd1;  /* (R, H) GELU of the first layer and GELU' */
    ds_real *fa, *fgd;  /* (cap, H) GELU(semb) of slot 0 and GELU' (the flow input) */
    ds_real *dsemb, *da1; /* (R, H) */
    ds_real *dfa;       /* (cap, H) */
    ds_real *scratch;   /* (R, H) */
};

ds_status ds_pcond_register(ds_policy *p)
{
    const ds_policy_config *c = &p->c;
    const int H = c->hidden, L = c->cond_layers;
    DS_CHECK(L >= 0 && L + 1 <= DS_MLP_MAX_LINEAR, DS_ERR_CONFIG, "condition.hidden_layers is %d; allowed 0..%d", L,
             DS_MLP_MAX_LINEAR - 1);
    struct ds_policy_cond *q = calloc(1, sizeof *q);
    DS_ALLOC_CHECK(q);
    p->cond = q;
    q->C = c->cond_dim;
    q->ld = c->dim + c->cond_dim;
    DS_TRY(ds_arena_add(&p->arena, "s_model.x_model.0.weight", H, q->ld, DS_GROUP_POLICY, &q->w1));
    DS_TRY(ds_arena_add(&p->arena, "s_model.x_model.0.bias", 1, H, DS_GROUP_POLICY, &q->b1));
    /* nn.Sequential(Linear, GELU, L x Sequential(Linear, GELU), Linear): indices 2..L+1 (".0") and L+2 */
    char buf[DS_MLP_MAX_LINEAR][DS_TENSOR_NAME_MAX];
    const char *names[DS_MLP_MAX_LINEAR];
    int dims[DS_MLP_MAX_LINEAR + 1];
    for (int l = 0; l <= L; l++) {
        if (l < L) snprintf(buf[l], sizeof buf[l], "s_model.x_model.%d.0", l + 2);
        else snprintf(buf[l], sizeof buf[l], "s_model.x_model.%d", L + 2);
        names[l] = buf[l];
        dims[l] = H;
    }
    dims[L + 1] = H;
    DS_TRY(ds_mlp_add(&q->rest, &p->arena, L + 1, dims, names, DS_GROUP_POLICY));
    return DS_OK;
}

ds_status ds_pcond_alloc(ds_policy *p)
{
    struct ds_policy_cond *q = p->cond;
    const size_t H = (size_t)p->c.hidden, R = (size_t)p->max_rows, C = (size_t)q->C;
    q->cap = (p->max_rows + p->max_steps - 1) / p->max_steps;
    const size_t cap = (size_t)q->cap;
    const size_t mrest = ds_mlp_workspace(&q->rest, R), mflow = ds_mlp_workspace(&p->flow, cap);
    ds_real **views[] = {&q->cond, &q->cproj, &q->dcproj, &q->a1, &q->gd1, &q->fa, &q->fgd, &q->dsemb, &q->da1,
                         &q->dfa, &q->scratch};
    const size_t sizes[] = {cap * C, cap * H, cap * H, R * H, R * H, cap * H, cap * H, R * H, R * H, cap * H, R * H};
    size_t total = mrest + mflow;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) total += sizes[i];
    q->ws = ds_calloc(total, sizeof(ds_real));
    DS_CHECK(q->ws != NULL, DS_ERR_NOMEM, "out of memory for the conditional policy (%zu MB for %d rows)",
             total * sizeof(ds_real) >> 20, p->max_rows);
    size_t off = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        *views[i] = q->ws + off;
        off += sizes[i];
    }
    ds_mlp_bind(&q->rest, q->ws + off, R);
    off += mrest;
    ds_mlp_bind(&p->flow, q->ws + off, cap);
    return DS_OK;
}

void ds_pcond_free(ds_policy *p)
{
    if (!p->cond) return;
    ds_free(p->cond->ws);
    free(p->cond);
    p->cond = NULL;
}

ds_status ds_policy_set_condition(ds_policy *p, const ds_real *cond)
{
    struct ds_policy_cond *q = p->cond;
    DS_CHECK(q != NULL, DS_ERR_INVALID, "ds_policy_set_condition: the policy is unconditional");
    DS_CHECK(cond != NULL && p->rows >= 1, DS_ERR_INVALID, "ds_policy_set_condition: no condition or no pass");
    DS_CHECK(p->rows <= q->cap, DS_ERR_INVALID,
             "conditional pass of %d rows per slot exceeds the workspace of %d (a pass has all %d slots)", p->rows,
             q->cap, p->max_steps);
    const int H = p->c.hidden, d = p->c.dim, rows = p->rows;
    memcpy(q->cond, cond, sizeof(ds_real) * (size_t)rows * q->C);
    const ds_real *b1 = ds_arena_param(&p->arena, q->b1), *W1 = ds_arena_param(&p->arena, q->w1);
    for (int r = 0; r < rows; r++) memcpy(q->cproj + (size_t)r * H, b1, sizeof(ds_real) * (size_t)H);
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, rows, H, q->C, 1, q->cond, q->C, W1 + d, q->ld, 1, q->cproj, H);
    memset(q->dcproj, 0, sizeof(ds_real) * (size_t)rows * H);
    return DS_OK;
}

ds_status ds_pcond_embed(ds_policy *p, int slot0, int slot1, const ds_real *X, ds_real *out)
{
    struct ds_policy_cond *q = p->cond;
    const ds_arena *a = &p->arena;
    const int H = p->c.hidden, d = p->c.dim, rows = p->rows;
    const size_t r0 = (size_t)slot0 * rows;
    const int n = (slot1 - slot0) * rows;
    ds_real *pre = q->scratch + r0 * H;
    for (int s = slot0; s < slot1; s++)
        memcpy(pre + (size_t)(s - slot0) * rows * H, q->cproj, sizeof(ds_real) * (size_t)rows * H);
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, n, H, d, 1, X, d, ds_arena_param(a, q->w1), q->ld, 1, pre, H);
    ds_gelu_forward_grad(q->a1 + r0 * H, q->gd1 + r0 * H, pre, (size_t)n * H);
    ds_mlp_forward(&q->rest, a, out, q->a1 + r0 * H, r0, n, pre);
    if (slot0 == 0) ds_gelu_forward_grad(q->fa, q->fgd, out, (size_t)rows * H);
    return DS_OK;
}

ds_status ds_pcond_flow_forward(ds_policy *p, int slot0, int slot1)
{
    struct ds_policy_cond *q = p->cond;
    const int rows = p->rows;
    const size_t r0 = (size_t)slot0 * rows;
    const int n = (slot1 - slot0) * rows;
    memset(p->logf + r0, 0, sizeof(ds_real) * (size_t)n);
    if (slot0 == 0) ds_mlp_forward(&p->flow, &p->arena, p->logf, q->fa, 0, rows, q->scratch);
    return DS_OK;
}

ds_status ds_pcond_backward(ds_policy *p, int slot0, int slot1, const ds_real *dh0, ds_real *dx)
{
    struct ds_policy_cond *q = p->cond;
    const ds_arena *a = &p->arena;
    const int H = p->c.hidden, d = p->c.dim, rows = p->rows;
    const size_t r0 = (size_t)slot0 * rows;
    const int n = (slot1 - slot0) * rows;
    ds_real *ds_ = q->dsemb + r0 * H;
    memcpy(ds_, dh0, sizeof(ds_real) * (size_t)n * H);
    if (slot0 == 0) {
        /* log Z(c) of slot 0: back through the flow network and GELU(semb) */
        ds_mlp_backward(&p->flow, a, q->dfa, 0, p->d_logf, q->fa, 0, rows, q->scratch, q->da1);
        for (size_t i = 0; i < (size_t)rows * H; i++) ds_[i] += q->dfa[i] * q->fgd[i];
    }
    ds_real *da1 = q->da1 + r0 * H;
    ds_mlp_backward(&q->rest, a, da1, 0, ds_, q->a1 + r0 * H, r0, n, q->scratch + r0 * H, p->bw2 + r0 * H);
    for (size_t i = 0; i < (size_t)n * H; i++) da1[i] *= q->gd1[r0 * H + i];  /* dpre */
    ds_real *dW1 = ds_arena_grad(a, q->w1);
    const ds_real *X = p->x + r0 * d;
    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, H, d, n, 1, da1, H, X, d, 1, dW1, q->ld);
    if (dx) GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, d, H, 1, da1, H, ds_arena_param(a, q->w1), q->ld, 0, dx, d);
    for (int s = 0; s < slot1 - slot0; s++)
        for (int r = 0; r < rows; r++) {
            const ds_real *src = da1 + ((size_t)s * rows + r) * H;
            ds_real *dst = q->dcproj + (size_t)r * H;
            for (int j = 0; j < H; j++) dst[j] += src[j];
        }
    if (slot1 == p->nsteps) {
        /* the condition's weights and the bias: once per pass */
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, H, q->C, rows, 1, q->dcproj, H, q->cond, q->C, 1, dW1 + d, q->ld);
        ds_real *db1 = ds_arena_grad(a, q->b1);
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < H; j++) db1[j] += q->dcproj[(size_t)r * H + j];
        memset(q->dcproj, 0, sizeof(ds_real) * (size_t)rows * H);
    }
    return DS_OK;
}
