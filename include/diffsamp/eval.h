/* eval: the evaluation metrics of DESIGN.md 1 (ELBO, importance-weighted
 * log Z, ESS, mean log-likelihood of true samples, Delta log Z, mode
 * coverage) and the numerically stable reductions they are made of. */
#ifndef DS_EVAL_H
#define DS_EVAL_H

#include "diffsamp/core.h"
#include "diffsamp/modes.h"

typedef struct ds_eval_result {
    long iteration;
    double loss;           /* mean training loss since the previous evaluation */
    double elbo;           /* mean log w */
    double log_z_is;       /* log mean exp log w ("RW") */
    double log_z_learned;  /* log F(x_0, 0): the learned log Z; NaN when the objective has none */
    double ess;            /* (sum w)^2 / (N sum w^2), in (0, 1] */
    double mean_ll;        /* mean log-likelihood of true samples; NaN without a sampler */
    int has_log_z;
    double log_z_true;
    double delta_log_z;    /* |log Z - ELBO| */
    double delta_log_z_is; /* |log Z - log Z_IS| */
    int modes;             /* 2-D mixtures: modes holding samples; -1 otherwise */
    int modes_total;
    double seconds;        /* wall time since the start of the run */
    double ls_acceptance;  /* acceptance rate of the latest local-search round (NaN: none yet) */
    double ls_step;        /* its final MALA step size */
    long buffer_size;      /* replay entries (summed over ranks; 0 without a buffer) */
    long buffer_ls_size;   /* local-search buffer entries */
    /* energy evaluations so far, summed over ranks, by purpose (the order of
     * ds_energy_purpose: train, lp, ls, eval): points where log R was
     * evaluated, of those with the gradient, and Hessian-vector products */
    double energy_value[4], energy_grad[4], energy_hvp;
    /* conditional targets (elbo and log_z_is are then means over the
     * evaluation images of each image's ELBO and IS log p(x)): log mean exp
     * of the log-weights of all images' samples together, the reference
     * code's "RW" number, which estimates no image's likelihood; NaN otherwise */
    double log_z_rw;
    /* per-mode weights against the exact ones (modes.h; NaN where they do not apply) */
    ds_modes_result mode_weights;
} ds_eval_result;

/* log(sum exp v) and log(mean exp v) over n values, stable (max shift);
 * -inf for an empty or all -inf input, NaN if any value is NaN. */
double ds_logsumexp(const double *v, long n);
double ds_logmeanexp(const double *v, long n);

/* Running log-sum-exp: a (max, scaled sum) pair that can be combined across
 * chunks and across MPI ranks (combine the pairs, then finish). */
typedef struct ds_lse { double max, sum; } ds_lse;
void ds_lse_init(ds_lse *a);
void ds_lse_add(ds_lse *a, double v);
void ds_lse_merge(ds_lse *a, const ds_lse *b);
double ds_lse_value(const ds_lse *a);

/* (ELBO, log Z_IS and ESS from log-weights: ds_dist_eval_weights in dist.h,
 * on MPI_COMM_SELF for one process's values.) */

/* Mode coverage of a 2-D grid mixture (per_axis^2 modes spaced `spacing`
 * apart, centred on 0): the number of modes with at least min_count of the n
 * samples within `radius`. */
int ds_eval_grid_modes(const ds_real *x, long n, int per_axis, double spacing, double radius, int min_count);

#endif
