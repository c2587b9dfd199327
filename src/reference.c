/* reference: per-step coefficients of the Brownian and variance-preserving
 * reference processes (see include/diffsamp/reference.h for the formulas). */
#include "diffsamp/reference.h"

#include <math.h>
#include <string.h>

/* int_{t_i}^{t_{i+1}} beta for the linear schedule (exact: the trapezoid). */
static double beta_step(int i, int T, double beta_min, double beta_max)
{
    const double b0 = beta_max + (beta_min - beta_max) * ((double)i / T);
    const double b1 = beta_max + (beta_min - beta_max) * ((double)(i + 1) / T);
    return 0.5 * (b0 + b1) * (1.0 / T);
}

static ds_status alloc_steps(ds_reference *ref, ds_reference_kind kind, int T)
{
    DS_CHECK(T >= 1, DS_ERR_INVALID, "a reference process needs T >= 1 steps, got %d", T);
    ref->step = ds_calloc((size_t)T, sizeof *ref->step);
    DS_ALLOC_CHECK(ref->step);
    ref->kind = kind;
    ref->T = T;
    return DS_OK;
}

ds_status ds_reference_init_brownian(ds_reference *ref, int T, double sigma2)
{
    memset(ref, 0, sizeof *ref);
    DS_CHECK(sigma2 > 0 && isfinite(sigma2), DS_ERR_INVALID, "Brownian reference: sigma^2 must be > 0, got %g",
             sigma2);
    DS_TRY(alloc_steps(ref, DS_REF_BROWNIAN, T));
    /* The expressions are the ones the sampler used before this module
     * existed, term for term, so runs stay bitwise identical. */
    const double dt = 1.0 / T;
    for (int i = 0; i < T; i++) {
        ds_ref_step *st = &ref->step[i];
        const double shrink = i / (i + 1.0);
        st->t = (double)i / T;
        st->t_mix = i * dt;
        st->a = 1.0;
        st->h = dt;
        st->s = dt;
        st->sigma2 = sigma2;
        st->c = shrink;
        st->r = sigma2 * dt * shrink;  /* 0 at i = 0: x_0 = 0 is certain */
        st->v = sigma2 * (i > 1 ? i : 1) * dt;
    }
    ref->init_var = 0;
    ref->final_var = sigma2 * (T * dt);
    return DS_OK;
}

ds_status ds_reference_init_vp(ds_reference *ref, int T, double sigma2, double beta_min, double beta_max)
{
    memset(ref, 0, sizeof *ref);
    DS_CHECK(sigma2 > 0 && isfinite(sigma2), DS_ERR_INVALID, "VP reference: sigma^2 must be > 0, got %g", sigma2);
    DS_CHECK(beta_min > 0 && beta_max >= beta_min && isfinite(beta_max), DS_ERR_INVALID,
             "VP reference: need 0 < beta_min <= beta_max, got %g and %g", beta_min, beta_max);
    DS_TRY(alloc_steps(ref, DS_REF_VP, T));
    const double dt = 1.0 / T;
    for (int i = 0; i < T; i++) {
        ds_ref_step *st = &ref->step[i];
        const double t0 = (double)i / T;
        /* beta(t) = beta_max + (beta_min - beta_max) t: the prior end (t = 0) is the noisiest */
        const double B = beta_step(i, T, beta_min, beta_max);
        st->t = t0;
        st->t_mix = t0;
        st->a = exp(-0.5 * B);
        st->h = dt;
        st->s = -expm1(-B);  /* 1 - a^2, accurate for small steps */
        st->sigma2 = sigma2;
        st->c = st->a;       /* stationary: v_i = v_{i+1} = sigma2 */
        st->r = sigma2 * st->s;
        st->v = sigma2;
    }
    ref->init_var = sigma2;
    ref->final_var = sigma2;
    return DS_OK;
}

ds_status ds_reference_init_vp_em(ds_reference *ref, int T, double sigma2, double beta_min, double beta_max)
{
    DS_CHECK(T >= 1 && beta_step(0, T, beta_min, beta_max) <= 1.0, DS_ERR_CONFIG,
             "the Euler-Maruyama VP reference (dis) needs steps with int beta <= 1 (the first has %g): raise "
             "sampler.T or lower sampler.beta_max", T >= 1 ? beta_step(0, T, beta_min, beta_max) : 0.0);
    DS_TRY(ds_reference_init_vp(ref, T, sigma2, beta_min, beta_max)); /* checks the other arguments */
    ref->kind = DS_REF_VP_EM;
    for (int i = 0; i < T; i++) {
        ds_ref_step *st = &ref->step[i];
        const double B = beta_step(i, T, beta_min, beta_max);
        st->a = 1.0 - 0.5 * B;
        st->s = B;
        st->c = 1.0 - 0.5 * B;
        st->r = sigma2 * B;
    }
    return DS_OK;
}

void ds_reference_free(ds_reference *ref)
{
    if (!ref) return;
    DS_FREE(ref->step);
    ref->T = 0;
}

const char *ds_reference_name(const ds_reference *ref)
{
    return ref->kind == DS_REF_VP ? "vp" : ref->kind == DS_REF_VP_EM ? "vp-em" : "brownian";
}
