/* sampler: simulation and scoring of forward and backward trajectories. */
#include "diffsamp/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


/* One array of the store, its size added to tr->bytes. */
static ds_real *traj_array(ds_traj *tr, size_t n)
{
    tr->bytes += n * sizeof(ds_real);
    return ds_calloc(n, sizeof(ds_real));
}

ds_status ds_traj_init(ds_traj *tr, int T, int B, int d, int with_grad, int with_pe, int keep_noise)
{
    memset(tr, 0, sizeof *tr);
    DS_CHECK(T >= 1 && B >= 1 && d >= 1, DS_ERR_INVALID, "bad trajectory batch T %d B %d d %d", T, B, d);
    tr->T = T;
    tr->B = B;
    tr->d = d;
    const size_t TB = (size_t)T * B;
    tr->states = traj_array(tr, (TB + B) * d);
    tr->log_pf = traj_array(tr, TB);
    tr->log_pb = traj_array(tr, TB);
    tr->log_f = traj_array(tr, TB + B);
    tr->log_r = traj_array(tr, B);
    tr->noise_steps = keep_noise ? T : 1;
    tr->noise = traj_array(tr, (size_t)tr->noise_steps * B * d);
    tr->lr_scratch = traj_array(tr, TB);
    int ok = tr->states && tr->log_pf && tr->log_pb && tr->log_f && tr->log_r && tr->noise && tr->lr_scratch;
    if (ok && with_grad) ok = (tr->grad = traj_array(tr, TB * d)) != NULL;
    if (ok && with_pe) ok = (tr->pe = traj_array(tr, TB)) != NULL;
    if (!ok) {
        ds_traj_free(tr);
        return ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__,
                            "out of memory for %d trajectories of %d steps in d = %d", B, T, d);
    }
    return DS_OK;
}

void ds_traj_free(ds_traj *tr)
{
    if (!tr) return;
    DS_FREE(tr->states);
    DS_FREE(tr->log_pf);
    DS_FREE(tr->log_pb);
    DS_FREE(tr->log_f);
    DS_FREE(tr->log_r);
    DS_FREE(tr->grad);
    DS_FREE(tr->pe);
    DS_FREE(tr->noise);
    DS_FREE(tr->lr_scratch);
}

ds_status ds_sim_check_batch(const ds_sim *s, const ds_traj *tr, int B)
{
    DS_CHECK(B >= 1 && B <= tr->B, DS_ERR_INVALID, "batch %d outside the trajectory store of %d", B, tr->B);
    DS_CHECK(s->ref && s->ref->T == tr->T && s->energy->dim == tr->d, DS_ERR_INVALID,
             "trajectory store is T %d d %d, simulation T %d d %d", tr->T, tr->d, s->ref ? s->ref->T : 0,
             s->energy->dim);
    DS_CHECK(!s->policy->c.langevin || tr->grad, DS_ERR_INVALID, "LP needs a trajectory store with gradients");
    DS_CHECK(!s->partial_energy || tr->pe, DS_ERR_INVALID, "partial energy needs its store");
    DS_CHECK((long)tr->T * B <= s->policy->max_rows, DS_ERR_INVALID,
             "batch of %d x %d steps exceeds the policy workspace (%d rows)", B, tr->T, s->policy->max_rows);
    return DS_OK;
}

/* Starts the policy pass: one slot per step at the reference's times, with
 * the reference's variance for a fixed-variance policy. */
static ds_status begin_pass(const ds_sim *s, int B)
{
    DS_TRY(ds_policy_begin(s->policy, s->ref->T, B, s->ref->step));
    if (s->cond) DS_TRY(ds_policy_set_condition(s->policy, s->cond));
    return DS_OK;
}

/* Partial energy of step i: (1 - t_mix) log N(x; 0, v) + t_mix log R(x). */
static void partial_energy_rows(const ds_sim *s, int i, int B, const ds_real *x, const ds_real *log_r,
                                ds_real *pe)
{
    const int d = s->energy->dim;
    const ds_ref_step *st = &s->ref->step[i];
    const double t = st->t_mix, ref_var = st->v;
    for (int b = 0; b < B; b++) {
        double sq = 0;
        for (int j = 0; j < d; j++) sq += (double)x[(size_t)b * d + j] * x[(size_t)b * d + j];
        double log_ref = -0.5 * (d * (DS_LOG_2PI + log(ref_var)) + sq / ref_var);
        pe[b] = (ds_real)((1.0 - t) * log_ref + (t > 0 ? t * (double)log_r[b] : 0.0));
    }
}

/* Energy terms of the states of steps [i0, i1): grad log R for LP and the
 * partial-energy term, in one batched energy call. */
static ds_status state_terms(const ds_sim *s, ds_traj *tr, int B, int i0, int i1)
{
    const int d = tr->d;
    const int lp = s->policy->c.langevin;
    if (!lp && !s->partial_energy) return DS_OK;
    const size_t r0 = (size_t)i0 * B;
    const int n = (i1 - i0) * B;
    /* per-step terms of a training pass are counted as LP calls */
    const int prev = ds_energy_refine_purpose(s->energy, DS_ECALL_TRAIN, DS_ECALL_LP);
    ds_status rc = DS_OK;
    if (s->cond) {  /* conditional: one call per step, the batch's conditions */
        for (int i = i0; i < i1 && rc == DS_OK; i++)
            rc = ds_energy_log_reward_cond(s->energy, B, tr->states + (size_t)i * B * d, s->cond,
                                           tr->lr_scratch + (size_t)i * B, lp ? tr->grad + (size_t)i * B * d : NULL);
    } else {
        rc = ds_energy_log_reward(s->energy, n, tr->states + r0 * d, tr->lr_scratch + r0,
                                  lp ? tr->grad + r0 * d : NULL);
    }
    ds_energy_set_purpose(s->energy, prev);
    DS_TRY(rc);
    if (s->partial_energy)
        for (int i = i0; i < i1; i++)
            partial_energy_rows(s, i, B, tr->states + (size_t)i * B * d, tr->lr_scratch + (size_t)i * B,
                                tr->pe + (size_t)i * B);
    return DS_OK;
}

void ds_sim_score_step(const ds_sim *s, ds_traj *tr, int B, int i, int slot)
{
    const int d = tr->d;
    const ds_policy *p = s->policy;
    const ds_ref_step *st = &s->ref->step[i];
    const ds_real *x0 = tr->states + (size_t)i * B * d, *x1 = x0 + (size_t)B * d;
    const double a = st->a, h = st->h, sv = st->s, c = st->c;
    const int random_pb = st->r > 0;
    const double inv_r = random_pb ? 1.0 / st->r : 0;
    /* the constant terms of the d Gaussian log-densities, added once */
    const double cpf = d * (DS_LOG_2PI + log(sv)), cpb = random_pb ? d * (DS_LOG_2PI + log(st->r)) : 0;
    /* a fixed variance is the step's for every coordinate: its log and inverse once per step */
    const int fixed = !p->c.learned_variance;
    const double lv0 = fixed ? (double)ds_policy_logvar_row(p, (size_t)slot * B)[0] : 0;
    const double inv0 = fixed ? 1.0 / (sv * (double)ds_policy_var_row(p, (size_t)slot * B)[0]) : 0;
    for (int b = 0; b < B; b++) {
        const size_t row = (size_t)i * B + b, prow = (size_t)slot * B + b;
        const ds_real *mu = p->mean + prow * d, *lv = ds_policy_logvar_row(p, prow), *var = ds_policy_var_row(p, prow);
        const ds_real *xa = x0 + (size_t)b * d, *xc = x1 + (size_t)b * d;
        double lpf = cpf, lpb = 0;
        if (fixed) {
            double sq = 0;
            for (int j = 0; j < d; j++) {
                double res = ((double)xc[j] - a * (double)xa[j]) - h * (double)mu[j];
                sq += res * res;
            }
            lpf += sq * inv0 + d * lv0;
        } else {
            for (int j = 0; j < d; j++) {
                double res = ((double)xc[j] - a * (double)xa[j]) - h * (double)mu[j];
                lpf += res * res / (sv * (double)var[j]) + (double)lv[j];
            }
        }
        if (random_pb) {
            lpb = cpb;
            for (int j = 0; j < d; j++) {
                double rb = (double)xa[j] - (double)xc[j] * c;
                lpb += rb * rb * inv_r;
            }
        }
        tr->log_pf[row] = (ds_real)(-0.5 * lpf);
        tr->log_pb[row] = (ds_real)(-0.5 * lpb);
        tr->log_f[row] = p->logf[prow] + (s->partial_energy ? tr->pe[row] : 0);
    }
}

void ds_sim_score_initial(const ds_sim *s, ds_traj *tr, int B)
{
    if (!(s->ref->init_var > 0)) return;
    /* x_0 ~ N(0, init_var): its log-density is part of the forward path's */
    const int d = tr->d;
    const double v0 = s->ref->init_var, c0 = d * (DS_LOG_2PI + log(v0));
    for (int b = 0; b < B; b++) {
        double sq = 0;
        for (int j = 0; j < d; j++) sq += (double)tr->states[(size_t)b * d + j] * tr->states[(size_t)b * d + j];
        tr->log_pf[b] = (ds_real)((double)tr->log_pf[b] - 0.5 * (c0 + sq / v0));
    }
}

/* log p_F from the policy outputs of the pass, log p_B from the reference's
 * backward kernel, log F (+ partial energy) and log R: everything but the
 * states is derived. */
static ds_status score_from_policy(const ds_sim *s, ds_traj *tr, int B, const ds_real *log_r)
{
    const int T = s->ref->T, d = tr->d;
    for (int i = 0; i < T; i++) ds_sim_score_step(s, tr, B, i, i);
    ds_sim_score_initial(s, tr, B);
    if (log_r) {
        memcpy(tr->log_r, log_r, sizeof(ds_real) * (size_t)B);
    } else {
        DS_TRY(ds_energy_log_reward_cond(s->energy, B, tr->states + (size_t)T * B * d, s->cond, tr->log_r, NULL));
    }
    memcpy(tr->log_f + (size_t)T * B, tr->log_r, sizeof(ds_real) * (size_t)B);
    return DS_OK;
}

void ds_sim_init_states(const ds_sim *s, ds_traj *tr, int B, ds_rng r, uint64_t iteration, uint64_t first)
{
    const int d = tr->d;
    const size_t n = (size_t)B * d;
    if (!(s->ref->init_var > 0)) {
        memset(tr->states, 0, sizeof(ds_real) * n);
        return;
    }
    /* N(0, init_var) on the generator's step T, which no transition uses */
    ds_rng_normal_batch(r, iteration, first, B, (uint32_t)s->ref->T, d, tr->states);
    const double std0 = sqrt(s->ref->init_var);
    for (size_t k = 0; k < n; k++) tr->states[k] = (ds_real)(std0 * (double)tr->states[k]);
}

void ds_sim_step(const ds_sim *s, ds_traj *tr, int B, int i, int slot, double expl_std, const ds_real *eps)
{
    const int d = tr->d;
    const ds_policy *p = s->policy;
    const ds_ref_step *st = &s->ref->step[i];
    const double a = st->a, h = st->h, sv = st->s, ex2 = expl_std * expl_std;
    const ds_real *x = tr->states + (size_t)i * B * d;
    ds_real *xn = tr->states + (size_t)(i + 1) * B * d;
    const int fixed = !p->c.learned_variance;  /* then one standard deviation for the step */
    const double std0 = fixed ? sqrt(sv * (double)ds_policy_var_row(p, (size_t)slot * B)[0] + ex2) : 0;
    for (int b = 0; b < B; b++) {
        const size_t prow = (size_t)slot * B + b;
        const ds_real *mu = p->mean + prow * d, *var = ds_policy_var_row(p, prow);
        for (int j = 0; j < d; j++) {
            double std = fixed ? std0 : sqrt(sv * (double)var[j] + ex2);
            xn[(size_t)b * d + j] = (ds_real)(a * (double)x[(size_t)b * d + j] + h * (double)mu[j] +
                                              std * (double)eps[(size_t)b * d + j]);
        }
    }
}

ds_status ds_sim_forward(const ds_sim *s, ds_traj *tr, int B, double expl_std, ds_rng r, uint64_t iteration,
                         uint64_t first, const ds_real *noise)
{
    DS_TRY(ds_sim_check_batch(s, tr, B));
    const int T = s->ref->T, d = tr->d;
    ds_policy *p = s->policy;
    DS_TRY(begin_pass(s, B));
    ds_sim_init_states(s, tr, B, r, iteration, first);
    for (int i = 0; i < T; i++) {
        const ds_real *x = tr->states + (size_t)i * B * d;
        DS_TRY(state_terms(s, tr, B, i, i + 1));
        DS_TRY(ds_policy_forward(p, i, i + 1, x, p->c.langevin ? tr->grad + (size_t)i * B * d : NULL));
        const ds_real *eps = noise ? noise + (size_t)i * B * d : ds_traj_noise(tr, i);
        if (!noise) ds_rng_normal_batch(r, iteration, first, B, (uint32_t)i, d, ds_traj_noise(tr, i));
        ds_sim_step(s, tr, B, i, i, expl_std, eps);
    }
    DS_TRY(score_from_policy(s, tr, B, NULL));
    return DS_OK;
}

ds_status ds_sim_score(const ds_sim *s, ds_traj *tr, int B, const ds_real *log_r)
{
    DS_TRY(ds_sim_check_batch(s, tr, B));
    const int T = s->ref->T;
    DS_TRY(begin_pass(s, B));
    DS_TRY(state_terms(s, tr, B, 0, T));
    DS_TRY(ds_policy_forward(s->policy, 0, T, tr->states, s->policy->c.langevin ? tr->grad : NULL));
    DS_TRY(score_from_policy(s, tr, B, log_r));
    return DS_OK;
}

ds_status ds_sim_backward(const ds_sim *s, ds_traj *tr, int B, const ds_real *x_T, const ds_real *log_r,
                          ds_rng r, uint64_t iteration, uint64_t first, const ds_real *noise)
{
    DS_TRY(ds_sim_check_batch(s, tr, B));
    const int T = s->ref->T, d = tr->d;
    const size_t n = (size_t)B * d;
    memcpy(tr->states + (size_t)T * n, x_T, sizeof(ds_real) * n);
    for (int j = T; j >= 1; j--) {
        /* x_{j-1} ~ N(c x_j, r) under the reference's backward kernel of step j-1 */
        const ds_ref_step *st = &s->ref->step[j - 1];
        const ds_real *xj = tr->states + (size_t)j * n;
        ds_real *xp = tr->states + (size_t)(j - 1) * n;
        const double c = st->c;
        if (!(st->r > 0)) {  /* certain: x_0 = 0 of the Brownian bridge */
            if (c == 0) memset(xp, 0, sizeof(ds_real) * n);
            else for (size_t k = 0; k < n; k++) xp[k] = (ds_real)((double)xj[k] * c);
            continue;
        }
        const double std = sqrt(st->r);
        ds_real *eps = ds_traj_noise(tr, T - j);
        if (noise) {
            memcpy(eps, noise + (size_t)(T - j) * n, sizeof(ds_real) * n);
        } else {
            ds_rng_normal_batch(r, iteration, first, B, (uint32_t)(j - 1), d, eps);
        }
        for (size_t k = 0; k < n; k++) xp[k] = (ds_real)((double)xj[k] * c + std * (double)eps[k]);
    }
    DS_TRY(ds_sim_score(s, tr, B, log_r));
    return DS_OK;
}

ds_status ds_sim_backprop(const ds_sim *s, const ds_traj *tr, int B, const ds_real *d_log_pf,
                          const ds_real *d_log_f)
{
    const int T = s->ref->T, d = tr->d;
    ds_policy *p = s->policy;
    DS_CHECK(p->nsteps == T && p->rows == B, DS_ERR_INVALID,
             "policy pass is %d x %d, trajectories %d x %d: simulate before back-propagating", p->nsteps,
             p->rows, T, B);
    /* Back-propagate a few steps at a time: a block of ~2000 rows keeps its
     * activations in cache through every layer (measured: faster than one
     * pass over all B x T rows, which streams each activation from memory). */
    int block = 2048 / B;
    if (block < 1) block = 1;
    for (int i0 = 0; i0 < T; i0 += block) {
        const int i1 = i0 + block < T ? i0 + block : T;
        for (int i = i0; i < i1; i++) {
            const ds_ref_step *st = &s->ref->step[i];
            const double a = st->a, h = st->h, sv = st->s;
            const ds_real *x0 = tr->states + (size_t)i * B * d, *x1 = x0 + (size_t)B * d;
            const int fixed = !p->c.learned_variance;  /* then 1 / (s var) once for the step */
            const double inv0 = fixed ? 1.0 / (sv * (double)ds_policy_var_row(p, (size_t)i * B)[0]) : 0;
            for (int b = 0; b < B; b++) {
                const size_t row = (size_t)i * B + b;
                const ds_real *mu = p->mean + row * d, *var = ds_policy_var_row(p, row);
                ds_real *dm = p->d_mean + row * d, *dv = p->d_logvar ? p->d_logvar + row * d : NULL;
                const double g = (double)d_log_pf[row];
                for (int j = 0; j < d; j++) {
                    /* log p_F = -0.5 (res^2 / (s e^lv) + log 2 pi + log s + lv), res = x1 - a x0 - h mu */
                    double res = ((double)x1[(size_t)b * d + j] - a * (double)x0[(size_t)b * d + j]) -
                                 h * (double)mu[j];
                    double inv_var = fixed ? inv0 : 1.0 / (sv * (double)var[j]);
                    dm[j] = (ds_real)(g * res * h * inv_var);
                    if (dv) dv[j] = (ds_real)(g * 0.5 * (res * res * inv_var - 1.0));
                }
                p->d_logf[row] = d_log_f[row];
            }
        }
        DS_TRY(ds_policy_backward(p, i0, i1, NULL));
    }
    return DS_OK;
}
