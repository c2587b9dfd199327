/* sampler: forward (policy) and backward (reference-process) trajectories of
 * the discretised diffusion of DESIGN.md 1, their log-probabilities, and the
 * chain rule from d loss / d log p_F back into the policy network. Every
 * coefficient of the process comes from the ds_reference the simulation
 * holds (Brownian motion for the paper's objectives; see reference.h).
 *
 * A ds_traj holds one batch of B trajectories of T steps, step-major:
 * states[(i*B + b)*d + j] is coordinate j of x_i of trajectory b. Noise comes
 * from the counter-based generator keyed by (iteration, global sample index
 * first + b, step), so a trajectory does not depend on the batch split. */
#ifndef DS_SAMPLER_H
#define DS_SAMPLER_H

#include "diffsamp/core.h"
#include "diffsamp/energy.h"
#include "diffsamp/policy.h"
#include "diffsamp/reference.h"
#include "diffsamp/rng.h"

typedef struct ds_traj {
    int T, B, d;
    ds_real *states;  /* (T+1, B, d) */
    ds_real *log_pf;  /* (T, B) under the policy's own variance; row 0 includes
                         log mu_0(x_0) when the initial state is random */
    ds_real *log_pb;  /* (T, B) under the reference's backward kernel; 0 where
                         it is certain (row 0 of the Brownian bridge) */
    ds_real *log_f;   /* (T+1, B): log F_i (+ partial energy); row T = log R(x_T) */
    ds_real *log_r;   /* (B) log R(x_T) */
    ds_real *grad;    /* (T, B, d) grad log R(x_i) for LP, else NULL */
    ds_real *pe;      /* (T, B) partial-energy term of log_f, else NULL */
    ds_real *noise;   /* (noise_steps, B, d) the steps' standard normals; read through ds_traj_noise */
    int noise_steps;  /* T when the whole path's noise is kept (the on-policy objectives differentiate
                         through it), else 1: each step's noise overwrites the last */
    ds_real *lr_scratch; /* (T, B) */
    size_t bytes;     /* what the arrays above hold, summed as they are allocated */
} ds_traj;

/* Allocates a batch of B trajectories; with_grad adds the LP gradient store,
 * with_pe the partial-energy store, keep_noise keeps every step's noise
 * (T x B x d) instead of one step's. Free with ds_traj_free. */
ds_status ds_traj_init(ds_traj *tr, int T, int B, int d, int with_grad, int with_pe, int keep_noise);

/* Step i's noise (B, d). */
static inline ds_real *ds_traj_noise(const ds_traj *tr, int i)
{
    return tr->noise + (size_t)(tr->noise_steps > 1 ? i : 0) * (size_t)tr->B * (size_t)tr->d;
}
void ds_traj_free(ds_traj *tr);

/* What a simulation needs besides the batch (initialise with designated
 * initialisers: fields may be added). */
typedef struct ds_sim {
    ds_policy *policy;          /* pass of T slots x B rows */
    const ds_energy *energy;
    const ds_reference *ref;    /* T = ref->T steps */
    int partial_energy;         /* add (1 - t_mix) log N(x; 0, v) + t_mix log R(x) to log F */
    /* Conditional targets and policies: the condition of each trajectory of
     * the batch, (B, cond_dim), for the energy and the policy; NULL when
     * unconditional. */
    const ds_real *cond;
} ds_sim;

/* Forward trajectories from x_0 ~ mu_0 (x_0 = 0 for Brownian motion) for
 * the first B rows of tr: steps are drawn with variance s*exp(logvar) +
 * expl_std^2 and scored under the policy (expl_std = 0: on-policy). noise
 * (T, B, d), when not NULL, replaces the generator for the steps (tests; a
 * random x_0 always comes from the generator). Leaves the policy's
 * activations ready for ds_sim_backprop. Fills states, log_pf, log_pb,
 * log_f, log_r. */
ds_status ds_sim_forward(const ds_sim *s, ds_traj *tr, int B, double expl_std, ds_rng r, uint64_t iteration,
                         uint64_t first, const ds_real *noise);

/* Backward trajectories from terminal states x_T (B, d): x_i ~ p_B(. | x_{i+1})
 * down to x_0 (where p_B is certain, x_i = c x_{i+1}: x_0 = 0 for Brownian
 * motion). noise, when not NULL, replaces the generator: row k (B, d) drives
 * the step from x_{T-k} to x_{T-k-1}; it has T rows, or T-1 when the step to
 * x_0 is certain. Then
 * evaluates the policy on all B x T states in one pass. Fills the same
 * fields as ds_sim_forward. log_r may be NULL (then it is computed from the
 * energy). */
ds_status ds_sim_backward(const ds_sim *s, ds_traj *tr, int B, const ds_real *x_T, const ds_real *log_r,
                          ds_rng r, uint64_t iteration, uint64_t first, const ds_real *noise);

/* Scores the given states under the policy and the reference (no sampling):
 * fills log_pf, log_pb, log_f, log_r from tr->states (used by both of the
 * above and by tests). */
ds_status ds_sim_score(const ds_sim *s, ds_traj *tr, int B, const ds_real *log_r);

/* Building blocks of the simulation, for the on-policy objectives
 * (onpolicy.c), which walk the steps themselves. `slot` is the policy-pass
 * slot that holds step i's outputs. */
/* DS_ERR_INVALID unless tr and the policy workspace fit a batch of B. */
ds_status ds_sim_check_batch(const ds_sim *s, const ds_traj *tr, int B);
/* x_0 of B rows: 0, or N(0, init_var) from stream r at (iteration, first + b, step T). */
void ds_sim_init_states(const ds_sim *s, ds_traj *tr, int B, ds_rng r, uint64_t iteration, uint64_t first);
/* x_{i+1} = a x_i + h mean + sqrt(s var + expl_std^2) eps, eps (B, d). */
void ds_sim_step(const ds_sim *s, ds_traj *tr, int B, int i, int slot, double expl_std, const ds_real *eps);
/* log p_F, log p_B and log F of step i (rows i*B..). */
void ds_sim_score_step(const ds_sim *s, ds_traj *tr, int B, int i, int slot);
/* Adds log mu_0(x_0) to row 0 of log p_F when x_0 is random. */
void ds_sim_score_initial(const ds_sim *s, ds_traj *tr, int B);

/* Chain rule from d_log_pf (T, B) and d_log_f (T+1, B; row T ignored) into
 * the policy's gradients (accumulating into its arena). */
ds_status ds_sim_backprop(const ds_sim *s, const ds_traj *tr, int B, const ds_real *d_log_pf,
                          const ds_real *d_log_f);

#endif
