/* onpolicy: PIS / DDS / DIS losses and their reverse pass through the
 * simulated path (see include/diffsamp/onpolicy.h). */
#include "diffsamp/onpolicy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct ds_onpolicy {
    const ds_sim *s;
    int max_B;
    ds_real *lam;   /* (B, d) adjoint dL/dx_{i+1}, then dL/dx_i */
    ds_real *dx;    /* (B, d) d/dx_i through the state embedding */
    ds_real *v;     /* (B, d) HVP direction (LP) */
    ds_real *hv;    /* (B, d) */
    ds_real *g_T;   /* (B, d) grad log R(x_T) */
    int through;    /* LP: differentiate grad log R(x_i) too (HVPs) */
    int fd_hvp;     /* ... and the energy has no HVP: central differences of its gradient */
    ds_real *xa, *xb, *ga, *gb;  /* (B, d) finite-difference HVP: x +- h v and the gradients there */
    double *step;                /* (B) its h per row */
};

ds_status ds_onpolicy_create(const ds_sim *s, int B, int lp_through_grad, ds_onpolicy **out)
{
    DS_CHECK(s && s->policy && s->energy && s->ref && B >= 1 && out, DS_ERR_INVALID, "ds_onpolicy_create: bad arguments");
    ds_onpolicy *o = calloc(1, sizeof *o);
    DS_ALLOC_CHECK(o);
    o->s = s;
    o->max_B = B;
    o->through = s->policy->c.langevin && lp_through_grad;
    o->fd_hvp = o->through && !s->energy->vt->hvp;
    const size_t n = (size_t)B * s->energy->dim;
    if (o->fd_hvp) {
        o->xa = ds_calloc(n, sizeof(ds_real));
        o->xb = ds_calloc(n, sizeof(ds_real));
        o->ga = ds_calloc(n, sizeof(ds_real));
        o->gb = ds_calloc(n, sizeof(ds_real));
        o->step = ds_calloc((size_t)B, sizeof(double));
        if (!o->xa || !o->xb || !o->ga || !o->gb || !o->step) {
            ds_onpolicy_destroy(&o);
            return ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__, "out of memory for the HVP scratch");
        }
    }
    o->lam = ds_calloc(n, sizeof(ds_real));
    o->dx = ds_calloc(n, sizeof(ds_real));
    o->v = ds_calloc(n, sizeof(ds_real));
    o->hv = ds_calloc(n, sizeof(ds_real));
    o->g_T = ds_calloc(n, sizeof(ds_real));
    if (!o->lam || !o->dx || !o->v || !o->hv || !o->g_T) {
        ds_onpolicy_destroy(&o);
        return ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__, "out of memory for %d on-policy adjoints", B);
    }
    *out = o;
    return DS_OK;
}

void ds_onpolicy_destroy(ds_onpolicy **op)
{
    if (!op || !*op) return;
    ds_onpolicy *o = *op;
    DS_FREE(o->lam);
    DS_FREE(o->dx);
    DS_FREE(o->v);
    DS_FREE(o->hv);
    DS_FREE(o->g_T);
    DS_FREE(o->xa);
    DS_FREE(o->xb);
    DS_FREE(o->ga);
    DS_FREE(o->gb);
    DS_FREE(o->step);
    free(o);
    *op = NULL;
}

int ds_onpolicy_uses_fd_hvp(const ds_onpolicy *o) { return o->fd_hvp; }

/* hv = H(x) v per row: the energy's own HVP, or central differences of its
 * gradient along v with a step relative to |x| and |v| (error O(eps^2)). */
static ds_status hvp(ds_onpolicy *o, int B, const ds_real *x, const ds_real *v, ds_real *hv)
{
    const ds_energy *e = o->s->energy;
    if (!o->fd_hvp) return ds_energy_hvp(e, B, x, v, hv);
    const int d = e->dim;
    const double base = sizeof(ds_real) == sizeof(double) ? 1e-5 : 3e-3; /* ~ cube root of the precision */
    for (int b = 0; b < B; b++) {
        double xn = 0, vn = 0;
        for (int j = 0; j < d; j++) {
            xn += (double)x[(size_t)b * d + j] * x[(size_t)b * d + j];
            vn += (double)v[(size_t)b * d + j] * v[(size_t)b * d + j];
        }
        const double h = vn > 0 ? base * (1 + sqrt(xn)) / sqrt(vn) : 0;
        for (int j = 0; j < d; j++) {
            const size_t k = (size_t)b * d + j;
            o->xa[k] = (ds_real)((double)x[k] + h * (double)v[k]);
            o->xb[k] = (ds_real)((double)x[k] - h * (double)v[k]);
        }
        o->step[b] = h;
    }
    /* log R itself is not needed: o->hv takes it (B <= B d values) */
    DS_TRY(ds_energy_log_reward(e, B, o->xa, o->hv, o->ga));
    DS_TRY(ds_energy_log_reward(e, B, o->xb, o->hv, o->gb));
    for (int b = 0; b < B; b++)
        for (int j = 0; j < d; j++) {
            const size_t k = (size_t)b * d + j;
            hv[k] = o->step[b] > 0 ? (ds_real)(((double)o->ga[k] - (double)o->gb[k]) / (2 * o->step[b])) : 0;
        }
    return DS_OK;
}

/* Re-evaluates the policy on steps [i0, i1) as one pass (slot k = step
 * i0 + k), one slot per call exactly as the forward pass did, from the
 * stored states and (LP) gradients, so the activations are bitwise the same. */
static ds_status segment_forward(const ds_sim *s, ds_traj *tr, int B, int i0, int i1)
{
    ds_policy *p = s->policy;
    const int d = tr->d, lp = p->c.langevin;
    DS_TRY(ds_policy_begin(p, i1 - i0, B, s->ref->step + i0));
    for (int i = i0; i < i1; i++)
        DS_TRY(ds_policy_forward(p, i - i0, i - i0 + 1, tr->states + (size_t)i * B * d,
                                 lp ? tr->grad + (size_t)i * B * d : NULL));
    return DS_OK;
}

/* Reverse pass of step i held in policy slot `slot`: o->lam is dL/dx_{i+1}
 * from the steps after it; on return it is dL/dx_i (not needed at i = 0). */
static ds_status reverse_step(ds_onpolicy *o, ds_traj *tr, int B, int i, int slot, double w)
{
    const ds_sim *s = o->s;
    ds_policy *p = s->policy;
    const int d = tr->d;
    const ds_ref_step *st = &s->ref->step[i];
    const double a = st->a, h = st->h, sv0 = st->s, c = st->c;
    const int random_pb = st->r > 0;
    const double inv_r = random_pb ? 1.0 / st->r : 0;
    const ds_real *x0 = tr->states + (size_t)i * B * d, *x1 = x0 + (size_t)B * d;
    const ds_real *eps = ds_traj_noise(tr, i);
    /* a fixed variance is the step's: 1 / (s var) once for the step */
    const int fixed = !p->c.learned_variance;
    const double inv0 = fixed ? 1.0 / (sv0 * (double)ds_policy_var_row(p, (size_t)slot * B)[0]) : 0;
    for (int b = 0; b < B; b++) {
        const size_t prow = (size_t)slot * B + b;
        const ds_real *mu = p->mean + prow * d, *var = ds_policy_var_row(p, prow);
        ds_real *dm = p->d_mean + prow * d, *dv = p->d_logvar ? p->d_logvar + prow * d : NULL;
        ds_real *lam = o->lam + (size_t)b * d;
        for (int j = 0; j < d; j++) {
            const size_t k = (size_t)b * d + j;
            const double sv = sv0 * (double)var[j];
            const double res = ((double)x1[k] - a * (double)x0[k]) - h * (double)mu[j];
            const double rs = fixed ? res * inv0 : res / sv; /* res / (s e^lv) */
            const double rb = random_pb ? ((double)x0[k] - c * (double)x1[k]) * inv_r : 0;
            /* dL/dx_{i+1} in all: downstream, log p_F_i's and -log p_B_i's own */
            const double G = (double)lam[j] - w * rs - w * c * rb;
            /* x_{i+1} = a x_i + h mu + sqrt(s e^lv) eps; log p_F_i = -(res^2/(s e^lv) + log(2 pi s) + lv)/2 */
            dm[j] = (ds_real)(h * G + w * h * rs);
            if (dv) dv[j] = (ds_real)(G * 0.5 * sqrt(sv) * (double)eps[k] + w * 0.5 * (res * rs - 1.0));
            lam[j] = (ds_real)(a * G + w * a * rs + w * rb);  /* the direct part of dL/dx_i */
        }
        p->d_logf[prow] = 0;
    }
    const int need_dx = i > 0;  /* x_0 does not depend on the parameters */
    DS_TRY(ds_policy_backward(p, slot, slot + 1, need_dx ? o->dx : NULL));
    if (!need_dx) return DS_OK;
    for (size_t k = 0; k < (size_t)B * d; k++) o->lam[k] += o->dx[k];
    if (o->through) {
        /* mean += scale(t) * clip(grad log R(x_i)): d/dx_i = H(x_i) (scale * dmean * clip'), where dmean is
         * the gradient at the output before gfn_clip (p->dout's mean half) */
        const int o_ = ds_policy_lgv_out(p);
        const ds_real *sc = p->scale + (size_t)slot * o_, *g = tr->grad + (size_t)i * B * d;
        const double lim = p->c.lgv_clip;
        for (int b = 0; b < B; b++) {
            const ds_real *dout = p->dout + ((size_t)slot * B + b) * ds_mlp_out(&p->joint);
            for (int j = 0; j < d; j++) {
                const size_t k = (size_t)b * d + j;
                const double gk = (double)g[k];
                const int pass = isfinite(gk) && (!p->c.clipping || fabs(gk) < lim);
                o->v[k] = pass ? (ds_real)((double)sc[o_ == 1 ? 0 : j] * (double)dout[j]) : 0;
            }
        }
        const int prev = ds_energy_refine_purpose(s->energy, DS_ECALL_TRAIN, DS_ECALL_LP);
        const ds_status rc = hvp(o, B, x0, o->v, o->dx);  /* o->dx is free again */
        ds_energy_set_purpose(s->energy, prev);
        DS_TRY(rc);
        for (size_t k = 0; k < (size_t)B * d; k++) o->lam[k] += o->dx[k];
    }
    return DS_OK;
}

ds_status ds_onpolicy_loss_grad(ds_onpolicy *o, ds_traj *tr, int B, double norm, int checkpoint_every, ds_rng r,
                                uint64_t iteration, uint64_t first, const ds_real *noise, double *loss)
{
    const ds_sim *s = o->s;
    DS_CHECK(B >= 1 && B <= o->max_B, DS_ERR_INVALID, "batch %d outside the on-policy workspace of %d", B, o->max_B);
    DS_CHECK(checkpoint_every >= 0, DS_ERR_INVALID, "checkpoint_every %d < 0", checkpoint_every);
    const int T = s->ref->T, d = tr->d;
    const int k = checkpoint_every > 0 && checkpoint_every < T ? checkpoint_every : T;
    DS_CHECK(tr->T == T && tr->d == s->energy->dim && B <= tr->B, DS_ERR_INVALID, "trajectory store does not fit");
    DS_CHECK((long)k * B <= s->policy->max_rows, DS_ERR_INVALID,
             "segments of %d steps x %d rows exceed the policy workspace (%d rows)", k, B, s->policy->max_rows);
    DS_CHECK(!s->policy->c.langevin || tr->grad, DS_ERR_INVALID, "LP needs a trajectory store with gradients");
    DS_CHECK(tr->noise_steps == T, DS_ERR_INVALID, "the reverse pass needs a trajectory store that keeps its noise");
    /* Forward, segment by segment: states, noise, log p_F, log p_B. */
    ds_sim_init_states(s, tr, B, r, iteration, first);
    for (int i0 = 0; i0 < T; i0 += k) {
        const int i1 = i0 + k < T ? i0 + k : T;
        DS_TRY(ds_policy_begin(s->policy, i1 - i0, B, s->ref->step + i0));
        for (int i = i0; i < i1; i++) {
            const ds_real *x = tr->states + (size_t)i * B * d;
            ds_real *g = s->policy->c.langevin ? tr->grad + (size_t)i * B * d : NULL;
            if (g) {
                const int prev = ds_energy_refine_purpose(s->energy, DS_ECALL_TRAIN, DS_ECALL_LP);
                const ds_status rc = ds_energy_log_reward(s->energy, B, x, tr->lr_scratch + (size_t)i * B, g);
                ds_energy_set_purpose(s->energy, prev);
                DS_TRY(rc);
            }
            DS_TRY(ds_policy_forward(s->policy, i - i0, i - i0 + 1, x, g));
            ds_real *eps = ds_traj_noise(tr, i);
            if (noise)
                memcpy(eps, noise + (size_t)i * B * d, sizeof(ds_real) * (size_t)B * d);
            else
                ds_rng_normal_batch(r, iteration, first, B, (uint32_t)i, d, eps);
            ds_sim_step(s, tr, B, i, i - i0, 0.0, eps);
            ds_sim_score_step(s, tr, B, i, i - i0);
        }
    }
    ds_sim_score_initial(s, tr, B);
    const ds_real *x_T = tr->states + (size_t)T * B * d;
    DS_TRY(ds_energy_log_reward(s->energy, B, x_T, tr->log_r, o->g_T));
    const double nb = norm > 0 ? norm : (double)B, w = 1.0 / (nb * d);
    double total = 0;
    for (int b = 0; b < B; b++) {
        double lb = -(double)tr->log_r[b];
        for (int i = 0; i < T; i++) lb += (double)tr->log_pf[(size_t)i * B + b] - (double)tr->log_pb[(size_t)i * B + b];
        total += lb;
    }
    *loss = total * w;
    if (!isfinite(*loss)) return DS_OK; /* refused by the caller after the reduction, on every rank */
    /* Reverse: dL/dx_T = -w grad log R(x_T), then step by step back to x_0,
     * re-evaluating every segment but the last (still in the workspace). */
    for (size_t q = 0; q < (size_t)B * d; q++) o->lam[q] = (ds_real)(-w * (double)o->g_T[q]);
    const int last0 = (T - 1) / k * k;
    for (int i0 = last0; i0 >= 0; i0 -= k) {
        const int i1 = i0 + k < T ? i0 + k : T;
        if (i0 != last0) DS_TRY(segment_forward(s, tr, B, i0, i1));
        for (int i = i1 - 1; i >= i0; i--) DS_TRY(reverse_step(o, tr, B, i, i - i0, w));
    }
    return DS_OK;
}
