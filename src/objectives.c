/* objectives: TB, VarGrad, DB, SubTB / FL-SubTB and MLE with exact gradients.
 * TB: Malkin et al. 2022; VarGrad: Richter et al. 2020; DB: Bengio et al.
 * 2023; SubTB: Madan et al. 2023; FL-SubTB: Zhang et al. 2023 (DiGFN);
 * conventions and scales as in gfn-diffusion's gflownet_losses.py. */
#include "diffsamp/objectives.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------ the table */

enum {
    OFFP = DS_OBJF_IMPLEMENTED, /* off-policy, trainable here */
    FWD = DS_OBJF_FORWARD,
    BWD = DS_OBJF_BACKWARD,
    LZ = DS_OBJF_LEARNS_LOG_Z
};

/* In enum order. The on-policy objectives are trained through the
 * simulated path by onpolicy.c; the others by ds_objective_eval below. */
#define ONP (DS_OBJF_IMPLEMENTED | DS_OBJF_FORWARD | DS_OBJF_ON_POLICY)
static const ds_objective_info table[DS_OBJ_COUNT] = {
    {DS_OBJ_TB, "tb", OFFP | FWD | BWD | LZ, DS_REF_BROWNIAN, "trajectory balance (Malkin et al. 2022)"},
    {DS_OBJ_VARGRAD, "vargrad", OFFP | FWD | BWD, DS_REF_BROWNIAN,
     "VarGrad: TB with the batch estimate of log Z (Richter et al. 2020)"},
    {DS_OBJ_DB, "db", OFFP | FWD | DS_OBJF_FLOW | LZ, DS_REF_BROWNIAN, "detailed balance (Bengio et al. 2023)"},
    {DS_OBJ_SUBTB, "subtb", OFFP | FWD | DS_OBJF_FLOW | LZ, DS_REF_BROWNIAN,
     "sub-trajectory balance (Madan et al. 2023)"},
    {DS_OBJ_FLSUBTB, "fl-subtb", OFFP | FWD | DS_OBJF_FLOW | DS_OBJF_PARTIAL_ENERGY | LZ, DS_REF_BROWNIAN,
     "forward-looking SubTB (Zhang et al. 2023)"},
    {DS_OBJ_MLE, "mle", OFFP | BWD, DS_REF_BROWNIAN, "maximum likelihood of backward trajectories from the buffer"},
    {DS_OBJ_PIS, "pis", ONP, DS_REF_BROWNIAN, "path integral sampler (Zhang and Chen 2022)"},
    {DS_OBJ_DDS, "dds", ONP, DS_REF_VP, "denoising diffusion sampler (Vargas et al. 2023)"},
    {DS_OBJ_DIS, "dis", ONP, DS_REF_VP_EM, "time-reversed diffusion sampler (Berner et al. 2024)"},
};
#undef ONP

const ds_objective_info *ds_objective_info_of(ds_objective kind)
{
    return (int)kind >= 0 && (int)kind < DS_OBJ_COUNT ? &table[kind] : NULL;
}

const ds_objective_info *ds_objective_lookup(const char *name)
{
    for (int i = 0; name && i < DS_OBJ_COUNT; i++)
        if (strcmp(table[i].name, name) == 0) return &table[i];
    return NULL;
}

const char *ds_objective_name(ds_objective kind)
{
    const ds_objective_info *o = ds_objective_info_of(kind);
    return o ? o->name : "unknown";
}

int ds_objective_has(ds_objective kind, unsigned mask)
{
    const ds_objective_info *o = ds_objective_info_of(kind);
    return o && (o->flags & mask) == mask;
}

void ds_objective_list(unsigned mask, char *buf, size_t n)
{
    size_t len = 0;
    if (n) buf[0] = '\0';
    for (int i = 0; i < DS_OBJ_COUNT; i++) {
        if ((table[i].flags & (mask | DS_OBJF_IMPLEMENTED)) != (mask | DS_OBJF_IMPLEMENTED)) continue;
        if (len + 1 >= n) break;
        int w = snprintf(buf + len, n - len, "%s%s", len ? ", " : "", table[i].name);
        if (w > 0) len += (size_t)w;
    }
}

/* ------------------------------------------------------------- the losses */

void ds_objective_log_weights(const ds_obj_input *in, double *lw)
{
    const int T = in->T, B = in->B;
    for (int b = 0; b < B; b++) lw[b] = (double)in->log_f[(size_t)T * B + b];
    for (int i = 0; i < T; i++)
        for (int b = 0; b < B; b++)
            lw[b] += (double)in->log_pb[(size_t)i * B + b] - (double)in->log_pf[(size_t)i * B + b];
}

/* TB and VarGrad: delta_b = c + sum log p_F - sum log p_B - log R, loss =
 * 0.5 * sum_b delta_b^2 / norm with c = log F_0 (TB) or the batch estimate of
 * log Z (VarGrad, whose own dependence on the batch cancels in the gradient
 * because the deltas sum to zero over the batch). */
static void tb_like(const ds_obj_input *in, int vargrad, double norm, double *loss, ds_real *d_pf, ds_real *d_f)
{
    const int T = in->T, B = in->B;
    double lz_hat = 0;
    if (vargrad) {
        if (in->vargrad_log_z) {
            lz_hat = *in->vargrad_log_z;
        } else {
            for (int b = 0; b < B; b++) {
                double lw = (double)in->log_f[(size_t)T * B + b];
                for (int i = 0; i < T; i++)
                    lw += (double)in->log_pb[(size_t)i * B + b] - (double)in->log_pf[(size_t)i * B + b];
                lz_hat += lw;
            }
            lz_hat /= B;
        }
    }
    double total = 0;
    for (int b = 0; b < B; b++) {
        double delta = vargrad ? lz_hat : (double)in->log_f[b];
        delta -= (double)in->log_f[(size_t)T * B + b];
        for (int i = 0; i < T; i++)
            delta += (double)in->log_pf[(size_t)i * B + b] - (double)in->log_pb[(size_t)i * B + b];
        total += 0.5 * delta * delta;
        ds_real g = (ds_real)(delta / norm);
        for (int i = 0; i < T; i++) d_pf[(size_t)i * B + b] = g;
        d_f[b] = vargrad ? 0 : g;
    }
    *loss = total / norm;
}

static void db(const ds_obj_input *in, double norm, double *loss, ds_real *d_pf, ds_real *d_f)
{
    const int T = in->T, B = in->B;
    double total = 0;
    for (int i = 0; i < T; i++) {
        for (int b = 0; b < B; b++) {
            size_t k = (size_t)i * B + b;
            double delta = (double)in->log_pf[k] + (double)in->log_f[k] - (double)in->log_pb[k] -
                           (double)in->log_f[k + B];
            total += 0.5 * delta * delta;
            ds_real g = (ds_real)(delta / norm);
            d_pf[k] = g;
            d_f[k] += g;
            if (i + 1 < T) d_f[k + B] -= g;
        }
    }
    *loss = total / norm;
}

/* SubTB: sum_b sum_{i<j} w_ij (log F_i + C_j - C_i - log F_j)^2 with
 * C_k = sum_{m<k} (log p_F - log p_B)_m and w_ij = lambda^(j-i) / sum over
 * all pairs. The O(T^2) pair loop runs per trajectory; gradients go to F_i,
 * F_j (j < T) and, through C, to every log p_F between them. */
static ds_status subtb(const ds_obj_input *in, double *loss, ds_real *d_pf, ds_real *d_f)
{
    const int T = in->T, B = in->B;
    const double lam = in->subtb_lambda;
    DS_CHECK(lam > 0, DS_ERR_INVALID, "subtb lambda must be positive, got %g", lam);
    /* log of the normaliser sum_{0<=i<j<=T} lam^(j-i) = sum_{k=1..T} (T+1-k) lam^k, stably. */
    double mx = -INFINITY;
    for (int k = 1; k <= T; k++) {
        double v = log((double)(T + 1 - k)) + k * log(lam);
        if (v > mx) mx = v;
    }
    double acc = 0;
    for (int k = 1; k <= T; k++) acc += exp(log((double)(T + 1 - k)) + k * log(lam) - mx);
    const double log_norm = mx + log(acc);
    const double w1 = exp(log(lam) - log_norm);
    double total = 0;
    for (int b = 0; b < B; b++) {
        /* First pass: accumulate dL/dC_k into d_pf[k-1] (no scratch needed) and dL/dF. */
        for (int i = 0; i < T; i++) d_pf[(size_t)i * B + b] = 0;
        double Ci = 0;
        for (int i = 0; i < T; i++) {
            double Fi = (double)in->log_f[(size_t)i * B + b];
            double Cj = Ci, dFi = 0, w = w1 / lam;
            for (int j = i + 1; j <= T; j++) {
                w *= lam;  /* lambda^(j-i) / normaliser */
                Cj += (double)in->log_pf[(size_t)(j - 1) * B + b] - (double)in->log_pb[(size_t)(j - 1) * B + b];
                double Fj = (double)in->log_f[(size_t)j * B + b];
                double delta = Fi + Cj - Ci - Fj;
                total += w * delta * delta;
                double g = 2.0 * w * delta;
                dFi += g;
                if (j < T) d_f[(size_t)j * B + b] -= (ds_real)g;
                d_pf[(size_t)(j - 1) * B + b] += (ds_real)g;          /* dC_j */
                if (i > 0) d_pf[(size_t)(i - 1) * B + b] -= (ds_real)g; /* dC_i */
            }
            d_f[(size_t)i * B + b] += (ds_real)dFi;
            Ci += (double)in->log_pf[(size_t)i * B + b] - (double)in->log_pb[(size_t)i * B + b];
        }
        /* d log p_F_m = sum_{k > m} dC_k: a suffix sum over k = m+1..T (stored at k-1). */
        double suffix = 0;
        for (int m = T - 1; m >= 0; m--) {
            suffix += (double)d_pf[(size_t)m * B + b];
            d_pf[(size_t)m * B + b] = (ds_real)suffix;
        }
    }
    *loss = total;
    return DS_OK;
}

ds_status ds_objective_eval(ds_objective kind, const ds_obj_input *in, double *loss, ds_real *d_log_pf,
                            ds_real *d_log_f)
{
    DS_CHECK(in->T >= 1 && in->B >= 1, DS_ERR_INVALID, "empty batch (T %d, B %d)", in->T, in->B);
    const int T = in->T, B = in->B;
    const double norm = in->batch_norm > 0 ? in->batch_norm : (double)B;
    memset(d_log_f, 0, sizeof(ds_real) * (size_t)(T + 1) * B);
    switch (kind) {
    case DS_OBJ_TB: tb_like(in, 0, norm, loss, d_log_pf, d_log_f); return DS_OK;
    case DS_OBJ_VARGRAD: tb_like(in, 1, norm, loss, d_log_pf, d_log_f); return DS_OK;
    case DS_OBJ_DB: db(in, norm, loss, d_log_pf, d_log_f); return DS_OK;
    case DS_OBJ_SUBTB:
    case DS_OBJ_FLSUBTB: DS_TRY(subtb(in, loss, d_log_pf, d_log_f)); return DS_OK;
    case DS_OBJ_MLE: {
        double total = 0;
        for (size_t k = 0; k < (size_t)T * B; k++) {
            total -= (double)in->log_pf[k];
            d_log_pf[k] = (ds_real)(-1.0 / norm);
        }
        *loss = total / norm;
        return DS_OK;
    }
    default: break;
    }
    return ds_error_set(DS_ERR_INVALID, __FILE__, __LINE__, __func__,
                        "objective '%s' is not an off-policy objective of this build", ds_objective_name(kind));
}
