/* objectives: TB, VarGrad, DB, SubTB / FL-SubTB and MLE with exact gradients.
 * TB: Malkin et al. 2022; VarGrad: Richter et al. 2020; DB: Bengio et al.
 * 2023; SubTB: Madan et al. 2023; FL-SubTB: Zhang et al. 2023 (DiGFN);
 * conventions and scales as in gfn-diffusion's gflownet_losses.py. */
#include "diffsamp/objectives.h"

#include <math.h>
#include <string.h>

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
                        "objective '%s' is not an off-policy objective", ds_objective_name(kind));
}
