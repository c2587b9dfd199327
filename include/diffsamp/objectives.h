/* objectives: the off-policy losses of DESIGN.md 1 as pure functions of the
 * per-step log-probabilities of a batch of trajectories, with their exact
 * gradients with respect to log p_F and log F.
 *
 * Arrays are step-major: log_pf[i*B + b] is step i of trajectory b. The
 * trajectory is data (no gradient through states), so the only learnable
 * inputs are log p_F (through the policy) and log F (log Z or the flow
 * network); log p_B is the fixed Brownian bridge and log_f[T] = log R(x_T)
 * is the target. Gradients are written (not added). */
#ifndef DS_OBJECTIVES_H
#define DS_OBJECTIVES_H

#include "diffsamp/config.h"
#include "diffsamp/core.h"

typedef struct ds_obj_input {
    int T, B;
    const ds_real *log_pf;   /* (T, B) */
    const ds_real *log_pb;   /* (T, B); step 0 is 0 (x_0 = 0 is certain) */
    const ds_real *log_f;    /* (T+1, B); row T is log R(x_T) */
    double subtb_lambda;     /* SubTB weight base (2 in the paper) */
    /* Batch normaliser: the loss is a mean over this many trajectories (the
     * global batch under MPI); 0 means B. SubTB is a sum (the reference's
     * convention) and ignores it. */
    double batch_norm;
    /* VarGrad's log Z estimate: NULL means the mean over this batch; under MPI
     * pass the global mean of log R + sum log p_B - sum log p_F. */
    const double *vargrad_log_z;
} ds_obj_input;

/* Evaluates objective kind (TB, VarGrad, DB, SubTB, FL-SubTB, MLE) on in.
 * loss gets this batch's contribution; d_log_pf (T, B) and d_log_f (T+1, B)
 * get d loss / d input (row T of d_log_f is 0: log R is not learnable).
 * FL-SubTB is SubTB on a log_f that already contains the partial energy.
 * DS_ERR_INVALID for PIS/DDS/DIS (on-policy objectives live elsewhere). */
ds_status ds_objective_eval(ds_objective kind, const ds_obj_input *in, double *loss, ds_real *d_log_pf,
                            ds_real *d_log_f);

/* Per-trajectory log-weight log R + sum log p_B - sum log p_F into lw (B). */
void ds_objective_log_weights(const ds_obj_input *in, double *lw);

#endif
