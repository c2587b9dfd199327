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

#include "diffsamp/core.h"
#include "diffsamp/reference.h"

/* Every objective DESIGN.md names, in the order of the table below. */
typedef enum ds_objective {
    DS_OBJ_TB = 0, DS_OBJ_VARGRAD, DS_OBJ_DB, DS_OBJ_SUBTB, DS_OBJ_FLSUBTB, DS_OBJ_MLE,
    DS_OBJ_PIS, DS_OBJ_DDS, DS_OBJ_DIS,
    DS_OBJ_COUNT
} ds_objective;

/* Properties of an objective, read by config validation and the trainer
 * instead of tests of names. */
enum ds_objective_flags {
    DS_OBJF_FORWARD = 1u << 0,        /* may be objective.name (forward iterations) */
    DS_OBJF_BACKWARD = 1u << 1,       /* may be objective.backward (buffer samples, both ways) */
    DS_OBJF_ON_POLICY = 1u << 2,      /* gradients through the simulated path: no exploration, no buffer */
    DS_OBJF_FLOW = 1u << 3,           /* needs the flow network log F(x, t) (sampler.conditional_flow) */
    DS_OBJF_PARTIAL_ENERGY = 1u << 4, /* needs sampler.partial_energy (forward-looking flow) */
    DS_OBJF_LEARNS_LOG_Z = 1u << 5,   /* trains a log Z (scalar or log F_0) worth reporting */
    DS_OBJF_IMPLEMENTED = 1u << 6     /* this build can train it */
};

typedef struct ds_objective_info {
    ds_objective kind;
    const char *name;      /* as written in YAML, e.g. "fl-subtb" */
    unsigned flags;        /* ds_objective_flags */
    ds_reference_kind reference; /* the reference process it trains against */
    const char *doc;       /* one line, with the paper it comes from */
} ds_objective_info;

/* The table entry of kind (NULL when kind is out of range). */
const ds_objective_info *ds_objective_info_of(ds_objective kind);
/* The entry named name (NULL when no objective has that name). */
const ds_objective_info *ds_objective_lookup(const char *name);
/* Name of kind as written in YAML ("unknown" when out of range). */
const char *ds_objective_name(ds_objective kind);
/* 1 when kind has every flag of mask. */
int ds_objective_has(ds_objective kind, unsigned mask);
/* Writes the names of the implemented objectives with every flag of mask,
 * comma-separated, into buf (truncated to n). */
void ds_objective_list(unsigned mask, char *buf, size_t n);

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

/* Evaluates off-policy objective kind (TB, VarGrad, DB, SubTB, FL-SubTB, MLE) on in.
 * loss gets this batch's contribution; d_log_pf (T, B) and d_log_f (T+1, B)
 * get d loss / d input (row T of d_log_f is 0: log R is not learnable).
 * FL-SubTB is SubTB on a log_f that already contains the partial energy.
 * DS_ERR_INVALID for PIS/DDS/DIS (on-policy: onpolicy.h). */
ds_status ds_objective_eval(ds_objective kind, const ds_obj_input *in, double *loss, ds_real *d_log_pf,
                            ds_real *d_log_f);

/* Per-trajectory log-weight log R + sum log p_B - sum log p_F into lw (B). */
void ds_objective_log_weights(const ds_obj_input *in, double *lw);

#endif
