/* policy: forward and backward passes of the PIS-architecture networks.
 * Architecture of Zhang & Chen (PIS, 2022) as used by Sendera et al. (2024),
 * names as in gfn-diffusion's models/architectures.py. */
#include "diffsamp/policy.h"

#include "policy_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(DS_REAL_DOUBLE)
#define R_TANH tanh
#define R_EXPF exp
#else
#define R_TANH tanhf
#define R_EXPF expf
#endif

static void mul_inplace(ds_real *a, const ds_real *b, size_t n)
{
    for (size_t i = 0; i < n; i++) a[i] *= b[i];
}

/* Layer names of an MLP: fmt(l) for each Linear layer l. */
typedef struct layer_names {
    char buf[DS_MLP_MAX_LINEAR][DS_TENSOR_NAME_MAX];
    const char *ptr[DS_MLP_MAX_LINEAR];
} layer_names;

/* gfn-diffusion's nn.Sequential numbering: hidden blocks "<prefix>.<l>.<sub>"
 * for l = 1..n-1, the last Linear "<prefix>.<n>", the first "<first>". */
static void sequential_names(layer_names *ln, int nlinear, const char *first, const char *prefix, int sub)
{
    for (int l = 0; l < nlinear; l++) {
        if (l == 0 && first)
            snprintf(ln->buf[l], DS_TENSOR_NAME_MAX, "%s", first);
        else if (l + 1 == nlinear)
            snprintf(ln->buf[l], DS_TENSOR_NAME_MAX, "%s.%d", prefix, nlinear);
        else
            snprintf(ln->buf[l], DS_TENSOR_NAME_MAX, "%s.%d.%d", prefix, first ? l : l + 1, sub);
        ln->ptr[l] = ln->buf[l];
    }
}

/* Registration order is the arena layout (and the checkpoint layout, and
 * the initialisation streams, keyed by tensor index): never reorder. */
static ds_status register_tensors(ds_policy *p)
{
    const ds_policy_config *c = &p->c;
    const int H = c->hidden, d = c->dim, h2 = 2 * c->harmonics, L = c->joint_layers;
    ds_arena *a = &p->arena;
    layer_names ln;
    DS_TRY(ds_arena_add(a, "t_model.timestep_phase", 1, c->harmonics, DS_GROUP_POLICY, &p->t_phase));
    const int tdims[] = {h2, H, H};
    ln.ptr[0] = "t_model.t_model.0";
    ln.ptr[1] = "t_model.t_model.2";
    DS_TRY(ds_mlp_add(&p->time, a, 2, tdims, ln.ptr, DS_GROUP_POLICY));
    if (c->cond_dim > 0) {  /* conditional: policy_cond.c */
        p->s_w = p->s_b = -1;
        DS_TRY(ds_pcond_register(p));
    } else {
        DS_TRY(ds_arena_add(a, "s_model.x_model.weight", H, d, DS_GROUP_POLICY, &p->s_w));
        DS_TRY(ds_arena_add(a, "s_model.x_model.bias", 1, H, DS_GROUP_POLICY, &p->s_b));
    }
    int jdims[DS_MLP_MAX_LINEAR + 1];
    for (int l = 0; l <= L; l++) jdims[l] = H;
    jdims[L + 1] = 2 * d;
    sequential_names(&ln, L + 1, NULL, "joint_model.model", 0);
    DS_TRY(ds_mlp_add(&p->joint, a, L + 1, jdims, ln.ptr, DS_GROUP_POLICY));
    /* a fixed variance reads only the mean half of the output layer: the log-variance half keeps its
       parameters (the checkpoint layout is the reference's) but is neither computed nor differentiated */
    if (!c->learned_variance) p->joint.out_used = d;
    p->l_phase = -1;
    if (c->langevin) {
        const int K = c->lgv_layers;
        DS_TRY(ds_arena_add(a, "langevin_scaling_model.timestep_phase", 1, c->harmonics, DS_GROUP_POLICY,
                            &p->l_phase));
        int ldims[DS_MLP_MAX_LINEAR + 1];
        ldims[0] = h2;
        for (int k = 1; k <= K; k++) ldims[k] = H;
        ldims[K + 1] = ds_policy_lgv_out(p);
        sequential_names(&ln, K + 1, "langevin_scaling_model.lgv_model.0", "langevin_scaling_model.lgv_model", 1);
        DS_TRY(ds_mlp_add(&p->lgv, a, K + 1, ldims, ln.ptr, DS_GROUP_POLICY));
    }
    p->log_z = -1;
    if (c->conditional_flow || c->cond_dim > 0) {  /* conditional: log Z(c) */
        jdims[L + 1] = 1;
        sequential_names(&ln, L + 1, NULL, "flow_model.model", 0);
        DS_TRY(ds_mlp_add(&p->flow, a, L + 1, jdims, ln.ptr, DS_GROUP_FLOW));
    } else {
        DS_TRY(ds_arena_add(a, "flow_model", 1, 1, DS_GROUP_FLOW, &p->log_z));
    }
    return DS_OK;
}

static void init_params(ds_policy *p, uint64_t seed)
{
    ds_arena *a = &p->arena;
    ds_rng r = ds_rng_make(seed, DS_RNG_INIT);
    for (int t = 0; t < a->ntensors; t++) {
        const ds_tensor_info *ti = &a->tensors[t];
        ds_real *w = a->params + ti->offset;
        size_t n = (size_t)ti->rows * (size_t)ti->cols;
        const char *nm = ti->name;
        size_t len = strlen(nm);
        if (strstr(nm, "timestep_phase")) {
            ds_init_normal(w, n, 1.0, r, (uint64_t)t);
        } else if (t == p->log_z) {
            w[0] = 0;
        } else if (len > 7 && strcmp(nm + len - 7, ".weight") == 0) {
            ds_init_uniform(w, n, 1.0 / sqrt((double)ti->cols), r, (uint64_t)t);
        } else {
            /* A bias: PyTorch bounds it by 1/sqrt(fan_in) of its weight (the tensor before it). */
            const ds_tensor_info *wi = &a->tensors[t - 1];
            ds_init_uniform(w, n, 1.0 / sqrt((double)wi->cols), r, (uint64_t)t);
        }
    }
    if (p->c.zero_init) {
        const int L = p->c.joint_layers;
        memset(ds_arena_param(a, p->joint.w[L]), 0, sizeof(ds_real) * (size_t)(2 * p->c.dim * p->c.hidden));
        memset(ds_arena_param(a, p->joint.b[L]), 0, sizeof(ds_real) * (size_t)(2 * p->c.dim));
        if (p->c.langevin) {
            const int K = p->c.lgv_layers, o = ds_policy_lgv_out(p);
            memset(ds_arena_param(a, p->lgv.w[K]), 0, sizeof(ds_real) * (size_t)(o * p->c.hidden));
            ds_real *b = ds_arena_param(a, p->lgv.b[K]);
            for (int i = 0; i < o; i++) b[i] = (ds_real)0.01;
        }
    }
}

int ds_policy_lgv_out(const ds_policy *p) { return p->c.lgv_per_dim ? p->c.dim : 1; }

/* One entry of the workspace size table: a view and its length (0 = absent). */
typedef struct ws_entry {
    ds_real **view;
    size_t count;
} ws_entry;

#define WS_ALIGN 16 /* floats per 64-byte line: every view starts on its own line */

ds_status ds_policy_create(const ds_policy_config *c, int max_steps, int max_rows, uint64_t seed,
                           ds_policy **outp)
{
    DS_CHECK(c->dim >= 1 && c->hidden >= 1 && c->harmonics >= 1, DS_ERR_INVALID,
             "bad policy sizes: dim %d hidden %d harmonics %d", c->dim, c->hidden, c->harmonics);
    DS_CHECK(c->joint_layers >= 0 && c->joint_layers <= DS_MAX_LAYERS, DS_ERR_CONFIG,
             "joint_layers is %d; allowed 0..%d", c->joint_layers, DS_MAX_LAYERS);
    DS_CHECK(!c->langevin || (c->lgv_layers >= 1 && c->lgv_layers <= DS_MAX_LAYERS), DS_ERR_CONFIG,
             "lgv_layers is %d; allowed 1..%d", c->lgv_layers, DS_MAX_LAYERS);
    DS_CHECK(max_steps >= 1 && max_rows >= 1, DS_ERR_INVALID, "bad workspace %d x %d", max_steps, max_rows);
    ds_policy *p = calloc(1, sizeof *p);
    DS_ALLOC_CHECK(p);
    p->c = *c;
    p->max_rows = max_rows;
    p->max_steps = max_steps;
    ds_arena_init(&p->arena);
    ds_status rc = register_tensors(p);
    if (rc == DS_OK) rc = ds_arena_alloc(&p->arena);
    if (rc == DS_OK && c->cond_dim > 0) rc = ds_pcond_alloc(p);
    if (rc != DS_OK) {
        ds_policy_destroy(&p);
        ds_error_trace(__FILE__, __LINE__, __func__);
        return rc;
    }
    const size_t H = (size_t)c->hidden, d = (size_t)c->dim, h2 = 2 * (size_t)c->harmonics;
    const size_t R = (size_t)max_rows, S = (size_t)max_steps, wide = h2 > H ? h2 : H;
    const int lp = c->langevin, flow = c->conditional_flow && c->cond_dim == 0;
    const size_t o = (size_t)ds_policy_lgv_out(p);
    /* the output layer's width as computed (2d, or d with a fixed variance), and the rows of the
       log-variance arrays: one per pass row when learned, one per slot when fixed */
    const size_t od = (size_t)ds_mlp_out(&p->joint), vrows = c->learned_variance ? R : S;
    ds_real *mlp_time = NULL, *mlp_joint = NULL, *mlp_flow = NULL, *mlp_lgv = NULL;
    /* The size table: every workspace array of the policy, in one allocation. */
    const ws_entry table[] = {
        {&p->freq, (size_t)c->harmonics},  {&p->slot_t, S},        {&p->slot_lv, S},
        {&p->slot_v, S},                   {&p->tfeat, S * h2},    {&p->temb, S * H},
        {&p->dtemb, S * H},                {&p->tscratch1, S * wide}, {&p->tscratch2, S * wide},
        {&p->tdfeat, S * h2},              {&p->hbias, (size_t)H},
        {&mlp_time, ds_mlp_workspace(&p->time, S)},
        {&p->lfeat, lp ? S * h2 : 0},      {&p->scale, lp ? S * o : 0}, {&p->dscale, lp ? S * o : 0},
        {&mlp_lgv, lp ? ds_mlp_workspace(&p->lgv, S) : 0},
        {&p->x, R * d},                    {&p->g, lp ? R * d : 0}, {&p->h0gd, R * H},
        {&p->a0, R * H},                   {&mlp_joint, ds_mlp_workspace(&p->joint, R)},
        {&mlp_flow, flow ? ds_mlp_workspace(&p->flow, R) : 0},
        {&p->out, R * od},                 {&p->dout, c->learned_variance ? R * od : 0}, {&p->mean, R * d},
        {&p->logvar, vrows * d},           {&p->var, vrows * d},   {&p->logf, R},
        {&p->d_mean, R * d},               {&p->d_logvar, c->learned_variance ? R * d : 0},
        {&p->d_logf, R},
        {&p->bw1, R * H},                  {&p->bw2, R * H},       {&p->bwa0, R * H},
    };
    const size_t nt = sizeof table / sizeof table[0];
    size_t total = 0;
    for (size_t i = 0; i < nt; i++) total += (table[i].count + WS_ALIGN - 1) / WS_ALIGN * WS_ALIGN;
    p->ws = ds_calloc(total, sizeof(ds_real));
    p->ws_bytes = total * sizeof(ds_real);
    if (!p->ws) {
        ds_policy_destroy(&p);
        return ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__,
                            "out of memory for the policy workspace (%zu MB for %d rows)",
                            total * sizeof(ds_real) >> 20, max_rows);
    }
    size_t off = 0;
    for (size_t i = 0; i < nt; i++) {
        *table[i].view = table[i].count ? p->ws + off : NULL;
        off += (table[i].count + WS_ALIGN - 1) / WS_ALIGN * WS_ALIGN;
    }
    /* a fixed variance: d out is d mean masked by the clip, formed in place */
    if (!c->learned_variance) p->dout = p->d_mean;
    ds_mlp_bind(&p->time, mlp_time, S);
    ds_mlp_bind(&p->joint, mlp_joint, R);
    if (flow) ds_mlp_bind(&p->flow, mlp_flow, R);
    if (lp) ds_mlp_bind(&p->lgv, mlp_lgv, S);
    /* torch.linspace(0.1, 100, harmonics) */
    for (int k = 0; k < c->harmonics; k++)
        p->freq[k] = (ds_real)(c->harmonics == 1 ? 0.1 : 0.1 + (100.0 - 0.1) * k / (c->harmonics - 1));
    init_params(p, seed);
    *outp = p;
    return DS_OK;
}

void ds_policy_destroy(ds_policy **pp)
{
    if (!pp || !*pp) return;
    ds_policy *p = *pp;
    ds_arena_free(&p->arena);
    ds_pcond_free(p);
    DS_FREE(p->ws);
    free(p);
    *pp = NULL;
}

ds_status ds_policy_begin(ds_policy *p, int nsteps, int rows, const ds_ref_step *steps)
{
    DS_CHECK(nsteps >= 1 && nsteps <= p->max_steps, DS_ERR_INVALID, "nsteps %d outside 1..%d", nsteps,
             p->max_steps);
    DS_CHECK(rows >= 1 && (long)nsteps * rows <= p->max_rows, DS_ERR_INVALID,
             "pass of %d x %d rows exceeds the workspace of %d rows", nsteps, rows, p->max_rows);
    DS_CHECK(steps, DS_ERR_INVALID, "a policy pass needs the reference process's steps");
    const ds_policy_config *c = &p->c;
    const ds_arena *a = &p->arena;
    const int h = c->harmonics, S = nsteps;
    p->nsteps = nsteps;
    p->rows = rows;
    for (int s = 0; s < S; s++) {
        p->slot_t[s] = (ds_real)steps[s].t;
        p->slot_lv[s] = (ds_real)log(steps[s].sigma2);
        p->slot_v[s] = (ds_real)steps[s].sigma2;
    }
    if (!c->learned_variance) {  /* the variance is the slot's: one row of d per slot */
        const int d = c->dim;
        for (int s = 0; s < S; s++)
            for (int j = 0; j < d; j++) {
                p->logvar[(size_t)s * d + j] = p->slot_lv[s];
                p->var[(size_t)s * d + j] = p->slot_v[s];
            }
    }
    // time embedding: temb (S, H) = W2 gelu(W0 [sin, cos](t*w + phase) + b0) + b2
    for (int s = 0; s < S; s++)
        ds_fourier_forward(p->tfeat + (size_t)s * 2 * h, p->slot_t[s], p->freq, ds_arena_param(a, p->t_phase), h);
    ds_mlp_forward(&p->time, a, p->temb, p->tfeat, 0, S, p->tscratch1);
    if (c->langevin) {
        for (int s = 0; s < S; s++)
            ds_fourier_forward(p->lfeat + (size_t)s * 2 * h, p->slot_t[s], p->freq,
                               ds_arena_param(a, p->l_phase), h);
        ds_mlp_forward(&p->lgv, a, p->scale, p->lfeat, 0, S, p->tscratch1);
    }
    return DS_OK;
}

static ds_real clip_grad(ds_real v, ds_real lim, int clipping)
{
    if (isnan(v)) v = 0;  /* torch.nan_to_num: NaN -> 0, +-inf -> +-max finite */
    else if (isinf(v)) v = v > 0 ? (ds_real)3.4028234663852886e38 : (ds_real)-3.4028234663852886e38;
    if (clipping) {
        if (v > lim) v = lim;
        if (v < -lim) v = -lim;
    }
    return v;
}

ds_status ds_policy_forward(ds_policy *p, int slot0, int slot1, const ds_real *x, const ds_real *g)
{
    DS_CHECK(0 <= slot0 && slot0 < slot1 && slot1 <= p->nsteps, DS_ERR_INVALID,
             "slots [%d, %d) outside the pass of %d", slot0, slot1, p->nsteps);
    DS_CHECK(!p->c.langevin || g != NULL, DS_ERR_INVALID, "LP needs grad log R");
    const ds_policy_config *c = &p->c;
    const ds_arena *a = &p->arena;
    const int H = c->hidden, d = c->dim, rows = p->rows;
    const size_t r0 = (size_t)slot0 * rows;
    const int n = (slot1 - slot0) * rows;
    ds_real *X = p->x + r0 * d;
    memcpy(X, x, sizeof(ds_real) * (size_t)n * d);
    // h0 (n, H) = x Ws^T + bs + temb[slot]; a0 = gelu(h0)
    ds_real *h0 = p->bw1 + r0 * H;  /* pre-activation scratch; only GELU' is kept */
    if (p->cond) {
        /* conditional: h0 = s_model([x, c]) + temb (policy_cond.c) */
        DS_TRY(ds_pcond_embed(p, slot0, slot1, X, h0));
        for (int s = slot0; s < slot1; s++) {
            const ds_real *te = p->temb + (size_t)s * H;
            for (int r = 0; r < rows; r++) {
                ds_real *row = p->bw1 + ((size_t)s * rows + r) * H;
                for (int j = 0; j < H; j++) row[j] += te[j];
            }
        }
    } else {
        /* one step at a time: its bias is bs + temb[step], and the GELU is fused into the product */
        const ds_real *sb = ds_arena_param(a, p->s_b), *Ws = ds_arena_param(a, p->s_w);
        for (int s = slot0; s < slot1; s++) {
            const ds_real *te = p->temb + (size_t)s * H;
            for (int j = 0; j < H; j++) p->hbias[j] = sb[j] + te[j];
            const size_t rs = (size_t)s * rows;
            ds_linear_forward_gelu(p->a0 + rs * H, p->h0gd + rs * H, X + (rs - r0) * d, Ws, p->hbias, rows, d, H,
                                   p->bw1 + rs * H);
        }
    }
    if (p->cond) ds_gelu_forward_grad(p->a0 + r0 * H, p->h0gd + r0 * H, h0, (size_t)n * H);
    // joint network: L x [Linear(H,H), GELU], Linear(H, 2d) (its first d outputs with a fixed variance)
    const int od = ds_mlp_out(&p->joint);
    ds_real *out = p->out + r0 * od;
    ds_mlp_forward(&p->joint, a, out, p->a0 + r0 * H, r0, n, p->bw2 + r0 * H);
    if (c->langevin) {
        const int o = ds_policy_lgv_out(p);
        ds_real *G = p->g + r0 * d;
        const ds_real lim = (ds_real)c->lgv_clip;
        for (size_t i = 0; i < (size_t)n * d; i++) G[i] = clip_grad(g[i], lim, c->clipping);
        for (int s = slot0; s < slot1; s++) {
            const ds_real *sc = p->scale + (size_t)s * o;
            for (int r = 0; r < rows; r++) {
                size_t row = (size_t)(s - slot0) * rows + r;
                ds_real *orow = out + row * od;
                const ds_real *grow = G + row * d;
                for (int j = 0; j < d; j++) orow[j] += sc[o == 1 ? 0 : j] * grow[j];
            }
        }
    }
    // split and clip: mean = out[:d], logvar = tanh(out[d:]) * range + the slot's log sigma^2 (learned
    // variance; a fixed one is the slot's, set by ds_policy_begin)
    const ds_real lim = (ds_real)c->gfn_clip, range = (ds_real)c->log_var_range;
    for (int r = 0; r < n; r++) {
        const int slot = slot0 + r / rows;
        const ds_real log_s2 = p->slot_lv[slot];
        const ds_real *orow = out + (size_t)r * od;
        ds_real *mrow = p->mean + (r0 + r) * d;
        for (int j = 0; j < d; j++) {
            ds_real mu = orow[j];
            if (c->clipping) mu = mu > lim ? lim : (mu < -lim ? -lim : mu);
            mrow[j] = mu;
        }
        if (!c->learned_variance) continue;
        ds_real *vrow = p->logvar + (r0 + r) * d, *erow = p->var + (r0 + r) * d;
        for (int j = 0; j < d; j++) {
            ds_real lv = orow[d + j];
            if (c->clipping) lv = lv > lim ? lim : (lv < -lim ? -lim : lv);
            vrow[j] = R_TANH(lv) * range + log_s2;
            erow[j] = R_EXPF(vrow[j]);
        }
    }
    // flow: log F = flow net on the same a0, or the scalar log Z (conditional: log Z(c), policy_cond.c)
    if (p->cond) {
        DS_TRY(ds_pcond_flow_forward(p, slot0, slot1));
    } else if (c->conditional_flow) {
        ds_mlp_forward(&p->flow, a, p->logf + r0, p->a0 + r0 * H, r0, n, p->bw2 + r0 * H);
    } else {
        const ds_real lz = ds_arena_param(a, p->log_z)[0];
        for (int r = 0; r < n; r++) p->logf[r0 + r] = lz;
    }
    return DS_OK;
}

ds_status ds_policy_backward(ds_policy *p, int slot0, int slot1, ds_real *dx)
{
    DS_CHECK(0 <= slot0 && slot0 < slot1 && slot1 <= p->nsteps, DS_ERR_INVALID,
             "slots [%d, %d) outside the pass of %d", slot0, slot1, p->nsteps);
    const ds_policy_config *c = &p->c;
    const ds_arena *a = &p->arena;
    const int H = c->hidden, d = c->dim, h = c->harmonics, rows = p->rows, S = slot1 - slot0;
    const size_t r0 = (size_t)slot0 * rows;
    const int n = S * rows;
    const ds_real lim = (ds_real)c->gfn_clip, range = (ds_real)c->log_var_range;
    // d out (n, 2d): the mean half directly, the log-variance half through tanh, both through the clip
    // (a fixed variance: d out is the mean half alone)
    const int od = ds_mlp_out(&p->joint);
    ds_real *dout = p->dout + r0 * od;
    const ds_real *out = p->out + r0 * od;
    for (int r = 0; r < n; r++) {
        const ds_real *orow = out + (size_t)r * od;
        ds_real *drow = dout + (size_t)r * od;
        const ds_real *dm = p->d_mean + (r0 + r) * d;
        for (int j = 0; j < d; j++) {
            const ds_real mu = orow[j];
            drow[j] = c->clipping && (mu > lim || mu < -lim) ? 0 : dm[j];
        }
        if (!c->learned_variance) continue;
        const ds_real *dv = p->d_logvar + (r0 + r) * d;
        for (int j = 0; j < d; j++) {
            const ds_real lv = orow[d + j];
            ds_real gv = 0;
            if (!c->clipping || !(lv > lim || lv < -lim)) {
                const ds_real th = R_TANH(lv);  /* unclipped here */
                gv = dv[j] * range * ((ds_real)1 - th * th);
            }
            drow[d + j] = gv;
        }
    }
    if (c->langevin) {
        const int o = ds_policy_lgv_out(p);
        memset(p->dscale + (size_t)slot0 * o, 0, sizeof(ds_real) * (size_t)S * o);
        for (int s = slot0; s < slot1; s++) {
            ds_real *ds_ = p->dscale + (size_t)s * o;
            for (int r = 0; r < rows; r++) {
                size_t row = (size_t)s * rows + r;
                const ds_real *drow = p->dout + row * od, *grow = p->g + row * d;
                for (int j = 0; j < d; j++) ds_[o == 1 ? 0 : j] += drow[j] * grow[j];
            }
        }
    }
    // joint and flow networks back to a0, then through GELU(h0)
    ds_real *da0 = p->bwa0 + r0 * H;
    const ds_real *a0 = p->a0 + r0 * H;
    ds_real *s1 = p->bw1 + r0 * H, *s2 = p->bw2 + r0 * H;
    /* dh0 = da0 * GELU'(h0): fused into the joint network's first product when nothing else adds to da0 */
    const int fused = !p->cond && !c->conditional_flow;
    if (fused) ds_mlp_backward_gelu(&p->joint, a, da0, p->h0gd + r0 * H, dout, a0, r0, n, s1, s2);
    else ds_mlp_backward(&p->joint, a, da0, 0, dout, a0, r0, n, s1, s2);
    if (p->cond) {
        /* conditional: log Z(c) is back-propagated with the state encoder below */
    } else if (c->conditional_flow) {
        ds_mlp_backward(&p->flow, a, da0, 1, p->d_logf + r0, a0, r0, n, s1, s2);
    } else {
        ds_real *gz = ds_arena_grad(a, p->log_z);
        double acc = 0;
        for (int r = 0; r < n; r++) acc += p->d_logf[r0 + r];
        gz[0] += (ds_real)acc;
    }
    if (!fused) mul_inplace(da0, p->h0gd + r0 * H, (size_t)n * H);  // dh0
    // state embedding
    if (p->cond) {
        DS_TRY(ds_pcond_backward(p, slot0, slot1, da0, dx));
    } else {
        ds_linear_backward_params(ds_arena_grad(a, p->s_w), ds_arena_grad(a, p->s_b), da0, p->x + r0 * d, n, d, H);
        if (dx) ds_linear_backward_input(dx, da0, ds_arena_param(a, p->s_w), n, d, H, 0);
    }
    // time embedding: dtemb[s] = sum of dh0 over the slot's rows, then back through the time net
    ds_real *dte = p->dtemb + (size_t)slot0 * H;
    memset(dte, 0, sizeof(ds_real) * (size_t)S * H);
    for (int s = 0; s < S; s++) ds_col_sums(dte + (size_t)s * H, da0 + (size_t)s * rows * H, rows, H);
    // time network back to its Fourier features, then their phases
    ds_real *t1 = p->tscratch1, *t2 = p->tscratch2, *dfeat = p->tdfeat;
    ds_mlp_backward(&p->time, a, dfeat, 0, dte, p->tfeat + (size_t)slot0 * 2 * h, slot0, S, t1, t2);
    for (int s = 0; s < S; s++)
        ds_fourier_backward(ds_arena_grad(a, p->t_phase), dfeat + (size_t)s * 2 * h, p->slot_t[slot0 + s],
                            p->freq, ds_arena_param(a, p->t_phase), h);
    if (c->langevin) {
        const int o = ds_policy_lgv_out(p);
        ds_mlp_backward(&p->lgv, a, dfeat, 0, p->dscale + (size_t)slot0 * o, p->lfeat + (size_t)slot0 * 2 * h,
                        slot0, S, t1, t2);
        for (int s = 0; s < S; s++)
            ds_fourier_backward(ds_arena_grad(a, p->l_phase), dfeat + (size_t)s * 2 * h, p->slot_t[slot0 + s],
                                p->freq, ds_arena_param(a, p->l_phase), h);
    }
    return DS_OK;
}
