/* reference: the reference process of the discretised diffusion, as the
 * per-step coefficients a simulation needs (DESIGN.md 1). The sampler holds
 * one and never assumes which process it is.
 *
 * Step i (i = 0..T-1) goes from x_i at time t_i to x_{i+1}. Per dimension:
 *   forward   x_{i+1} = a_i x_i + h_i f + sqrt(s_i var) eps,
 *             f the policy's drift, var = exp(log-variance) its variance,
 *             which is sigma2_i for a fixed-variance policy (a learned one
 *             multiplies exp(log_var_range tanh(.)) into sigma2_i);
 *   backward  p_B(x_i | x_{i+1}) = N(x_i; c_i x_{i+1}, r_i); r_i = 0 means
 *             x_i = c_i x_{i+1} with certainty (no log p_B term);
 *   initial   x_0 ~ N(0, init_var I); init_var = 0 means x_0 = 0 (and no
 *             log mu_0 term);
 *   marginal  N(0, v_i I) at x_i, what the partial energy of FL-SubTB
 *             interpolates from, with weight 1 - t_mix_i (t_mix_i on log R).
 * The backward kernel is the time reversal of the reference chain (f = 0,
 * fixed variance): with marginal variances v_{i+1} = a_i^2 v_i + s_i sigma2_i,
 *   c_i = a_i v_i / v_{i+1},   r_i = v_i s_i sigma2_i / v_{i+1}
 * (Bayes for Gaussians). So a zero-drift policy IS the reference, and
 * sum log p_F + log mu_0(x_0) - sum log p_B = log N(x_T; 0, v_T) on every
 * path (tests/test_nn.c checks this for both processes below).
 *
 * Brownian motion (PIS, the paper's off-policy objectives), dt = 1/T,
 * sigma2 = sampler.t_scale:
 *   t_i = i/T, t_mix_i = i dt, a = 1, h = dt, s = dt, sigma2_i = sigma2,
 *   c_i = i/(i+1), r_i = sigma2 dt i/(i+1) (the Brownian bridge; r_0 = 0),
 *   init_var = 0, v_i = sigma2 max(1, i) dt (the reference clamps i = 0).
 *
 * Variance preserving (Ornstein-Uhlenbeck; DDS, Vargas et al. 2023, and
 * DIS, Berner et al. 2024), dX = -(beta(t)/2) X dt + sigma sqrt(beta(t)) dW
 * in generative time t in [0, 1], beta linear from beta_max at t = 0 (the
 * prior) to beta_min at t = 1 (sde_sampler's vp_10: 10 and 0.1, sigma = 1),
 * integrated exactly over each step (the exponential integrator):
 *   B_i = int_{t_i}^{t_{i+1}} beta = dt (beta(t_i) + beta(t_{i+1})) / 2,
 *   t_i = t_mix_i = i/T, a_i = exp(-B_i / 2), h_i = dt,
 *   s_i = 1 - a_i^2, sigma2_i = sigma^2 (so the step noise is sigma^2 (1 - a_i^2)),
 *   init_var = sigma^2, v_i = sigma^2 (stationary), hence c_i = a_i, r_i = sigma^2 s_i.
 *
 * The same process discretised by Euler-Maruyama (DIS, Berner et al.;
 * sde_sampler's `Bridge` + `TimeReversalLoss` integrate by EM), with the
 * step's integral B_i of beta in both directions:
 *   a_i = c_i = 1 - B_i / 2, h_i = dt, s_i = B_i, sigma2_i = sigma^2,
 *   r_i = sigma^2 B_i, init_var = v_i = sigma^2.
 * The forward drift is the OU pull -beta x / 2: sde_sampler's generative
 * drift +beta x / 2 plus the prior-score part of its LerpCtrl control at
 * initialisation (sigma^2 beta grad log N(x; 0, sigma^2) = -beta x), folded
 * into the reference so that a zero policy drift starts from the prior's OU.
 * The EM chain is reversible but its stationary variance is
 * sigma^2 / (1 - B_i / 4), so p_B is the reversal only to first order in dt
 * (the divergence term of the linear drift that DIS integrates is inside the
 * ratio of the two Gaussian kernels) and the zero-drift identity is not
 * exact. (Evaluating beta at the left point forward and the right point
 * backward, as a literal EM of the two SDEs would, leaves an O(1) mismatch
 * per unit time: measured on a Gaussian target, an ELBO gap of about 70/T.)
 */
#ifndef DS_REFERENCE_H
#define DS_REFERENCE_H

#include "diffsamp/core.h"

typedef enum ds_reference_kind { DS_REF_BROWNIAN = 0, DS_REF_VP = 1, DS_REF_VP_EM = 2 } ds_reference_kind;

/* Coefficients of step i (see above). */
typedef struct ds_ref_step {
    double t;       /* time of x_i as the networks see it */
    double t_mix;   /* weight of log R(x_i) in the partial energy */
    double a, h;    /* forward mean a x_i + h f */
    double s;       /* forward variance s * var */
    double sigma2;  /* the fixed-variance policy's var */
    double c, r;    /* backward kernel N(c x_{i+1}, r); r = 0: certain */
    double v;       /* variance of the marginal at x_i for the partial energy */
} ds_ref_step;

typedef struct ds_reference {
    ds_reference_kind kind;
    int T;
    double init_var;    /* x_0 ~ N(0, init_var); 0: x_0 = 0 */
    double final_var;   /* v_T: the reference marginal at x_T is N(0, final_var) */
    ds_ref_step *step;  /* (T) */
} ds_reference;

/* Brownian motion with variance sigma2 per unit time on T steps. Free with
 * ds_reference_free. DS_ERR_INVALID on T < 1 or sigma2 <= 0. */
ds_status ds_reference_init_brownian(ds_reference *ref, int T, double sigma2);
/* Variance-preserving OU with linear beta from beta_max (t = 0) to beta_min
 * (t = 1) and stationary variance sigma2, on T steps. */
ds_status ds_reference_init_vp(ds_reference *ref, int T, double sigma2, double beta_min, double beta_max);
/* The same process discretised by Euler-Maruyama (DIS). */
ds_status ds_reference_init_vp_em(ds_reference *ref, int T, double sigma2, double beta_min, double beta_max);
void ds_reference_free(ds_reference *ref);
/* Name for messages and files ("brownian", "vp", "vp-em"). */
const char *ds_reference_name(const ds_reference *ref);

#endif
