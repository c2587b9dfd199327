/* policy: the sampler's networks (the "PIS architecture" of DESIGN.md 1):
 * the forward policy (mean and log-variance of each step), the Langevin
 * scaling network of LP, and log Z or the conditional flow network log F.
 *
 * Evaluation is organised for speed. A pass covers `nsteps` time slots with
 * `rows` states each (row r belongs to slot r / rows). ds_policy_begin runs
 * the time-only networks once per slot; ds_policy_forward then evaluates any
 * range of slots with one matrix product per layer and keeps what the
 * backward pass needs, so an off-policy trajectory simulated slot by slot is
 * differentiated afterwards in one batched pass over all B x T rows without
 * evaluating the network again. Nothing here allocates after create.
 *
 * The four networks are one MLP type (nn.h) each; the workspace is one
 * allocation cut into named views by a size table (llm.c's layout).
 * The struct is transparent for tests and the trainer (the arena, the output
 * arrays); the workspace pointers are private. */
#ifndef DS_POLICY_H
#define DS_POLICY_H

#include "diffsamp/core.h"
#include "diffsamp/nn.h"
#include "diffsamp/reference.h"
#include "diffsamp/rng.h"

#define DS_MAX_LAYERS 8  /* joint_layers and lgv_layers (config.c enforces the same bound) */

typedef struct ds_policy_config {
    int dim;              /* d */
    int hidden;           /* H (state and time embedding width) */
    int harmonics;        /* Fourier features per sin/cos */
    int joint_layers;     /* hidden Linear(H,H) layers of the joint network */
    int lgv_layers;       /* layers of the Langevin scaling network */
    int langevin;         /* LP on/off */
    int lgv_per_dim;      /* LP scale per dimension (d) or shared (1) */
    int learned_variance;
    int clipping;         /* clip the whole output to +-gfn_clip */
    int zero_init;
    int conditional_flow; /* log F(x, t) network instead of a scalar log Z */
    int cond_dim;         /* per-trajectory condition c (e.g. an image); 0 = none (the networks above, unchanged) */
    int cond_layers;      /* conditional only: hidden Linear(H,H) layers of the state encoder of [x, c] */
    double log_var_range;
    double lgv_clip;
    double gfn_clip;
} ds_policy_config;

typedef struct ds_policy {
    ds_policy_config c;
    ds_arena arena;       /* every parameter, PyTorch names */
    int max_rows, max_steps;

    /* Set by ds_policy_begin. */
    int nsteps, rows;     /* slots in this pass, rows per slot */

    /* Outputs of ds_policy_forward, row-indexed over the whole pass. */
    ds_real *mean;        /* (nsteps*rows, d) drift, LP included */
    ds_real *logvar;      /* log-variance: the reference's log sigma2 of the slot, plus the learned part;
                             (nsteps*rows, d) when learned, (nsteps, d) when fixed (every row of a slot
                             has its slot's): read it through ds_policy_logvar_row */
    ds_real *var;         /* exp(logvar), so the samplers need no exp; ds_policy_var_row */
    ds_real *logf;        /* (nsteps*rows) log F(x, t) or log Z */

    /* Inputs of ds_policy_backward, filled by the caller (same indexing). d_logvar is NULL with a
       fixed variance: nothing depends on it; and then ds_policy_backward masks d_mean by the clip in
       place (it is the output layer's gradient), so the caller fills it again before each call. */
    ds_real *d_mean, *d_logvar, *d_logf;

    /* The four networks (PyTorch names in comments). */
    ds_mlp time;          /* t_model.t_model.{0,2}: Fourier(2h) -> H -> H */
    ds_mlp joint;         /* joint_model.model.*: GELU(h0) -> L x [Linear(H,H), GELU] -> Linear(H, 2d) */
    ds_mlp flow;          /* flow_model.model.*: the joint shape with output 1 (conditional flow only) */
    ds_mlp lgv;           /* langevin_scaling_model.lgv_model.*: Fourier(2h) -> ... -> 1 or d (LP only) */
    int t_phase, s_w, s_b, l_phase;
    int log_z;            /* scalar log Z, or -1 */

    struct ds_policy_cond *cond; /* conditional networks (policy_cond.c); NULL when cond_dim = 0 */

    /* Private: views into one workspace allocation (see the size table in policy.c). */
    ds_real *ws;
    size_t ws_bytes;      /* the workspace's size */
    ds_real *freq, *slot_t, *slot_lv, *slot_v;  /* (harmonics), (max_steps) x 3 */
    ds_real *tfeat, *temb, *dtemb, *lfeat, *scale, *dscale;
    ds_real *hbias; /* (H): bs + temb of the step being computed */
    ds_real *tscratch1, *tscratch2, *tdfeat;
    ds_real *x, *g, *h0gd, *a0, *out, *dout, *bw1, *bw2, *bwa0;
} ds_policy;

/* Row `row` (slot * rows + r) of the pass's log-variance and variance. */
static inline const ds_real *ds_policy_logvar_row(const ds_policy *p, size_t row)
{
    return p->logvar + (p->c.learned_variance ? row : row / (size_t)p->rows) * (size_t)p->c.dim;
}
static inline const ds_real *ds_policy_var_row(const ds_policy *p, size_t row)
{
    return p->var + (p->c.learned_variance ? row : row / (size_t)p->rows) * (size_t)p->c.dim;
}

/* Builds the networks for c with workspace for passes of up to max_steps
 * slots and max_rows rows in all, and initialises the parameters from seed
 * as PyTorch would (uniform +-1/sqrt(fan_in), phases N(0,1), zero_init).
 * One allocation holds every workspace array. The caller frees with
 * ds_policy_destroy. */
ds_status ds_policy_create(const ds_policy_config *c, int max_steps, int max_rows, uint64_t seed,
                           ds_policy **out);
void ds_policy_destroy(ds_policy **p);

/* Starts a pass: nsteps slots, rows states per slot; slot s is step s of
 * the reference process: the networks see its time steps[s].t and a
 * fixed-variance policy its variance steps[s].sigma2 (a learned one adds its
 * log-variance to log sigma2). Runs the time embedding (and LP scale)
 * networks once per slot. */
ds_status ds_policy_begin(ds_policy *p, int nsteps, int rows, const ds_ref_step *steps);

/* Evaluates the rows of slots [slot0, slot1): x (n, d) are the states of those
 * rows (n = (slot1-slot0)*rows), g (n, d) grad log R at them (LP only, else
 * NULL; clipped and NaN-cleaned here). Writes p->mean, p->logvar, p->var, p->logf
 * for those rows and keeps the activations for ds_policy_backward. */
ds_status ds_policy_forward(ds_policy *p, int slot0, int slot1, const ds_real *x, const ds_real *g);

/* Back-propagates p->d_mean, p->d_logvar, p->d_logf of the rows of slots
 * [slot0, slot1) into p->arena.grads (accumulating), including the time
 * networks. When dx != NULL, also writes d/dx of the network input
 * ((slot1-slot0)*rows, d; only the state-embedding path: the LP term's
 * dependence on x through grad log R is the caller's, via an energy HVP). */
ds_status ds_policy_backward(ds_policy *p, int slot0, int slot1, ds_real *dx);

/* Conditional policies (cond_dim > 0; policy_cond.c), the architecture of
 * gfn-diffusion's VAE models: the state encoder is an MLP of [x, c]
 * (Linear(d + C, H), GELU, cond_layers x [Linear(H, H), GELU], Linear(H, H)),
 * its output plus the time embedding feeds the joint network as before, LP's
 * scale is a function of t, and log Z(c) = flow(GELU(s_model(x_0 = 0, c)))
 * (flow_model.model.*, the joint shape with output 1, group flow). log F is
 * computed at slot 0 only (0 elsewhere): TB and VarGrad use nothing else.
 *
 * After every ds_policy_begin, ds_policy_set_condition gives the condition
 * of each of the pass's rows per slot, cond (rows, cond_dim), the same for
 * every slot (row r of any slot is trajectory r). The condition's part of
 * the first layer is computed once per trajectory; its weight gradient is
 * added when a backward call covers the pass's last slot. */
ds_status ds_policy_set_condition(ds_policy *p, const ds_real *cond);

/* Number of rows the output of LP's scale network has (1 or d). */
int ds_policy_lgv_out(const ds_policy *p);

#endif
