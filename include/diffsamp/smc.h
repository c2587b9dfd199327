/* smc: the paper's SMC baseline (Table 1's first row): annealed importance
 * sampling with resampling (sequential Monte Carlo) from the Gaussian
 * reference N(0, init_var I) to the target along the geometric path
 *   gamma_k(x) = (1 - b_k) log N(x; 0, init_var I) + b_k log R(x),  b_k = k / K,
 * with systematic resampling whenever the effective sample size falls below
 * ess_threshold * N, and mcmc_steps MALA moves per level whose step is
 * adapted toward target_acceptance (x1.1 / x0.9 per level, from the
 * acceptance of all particles). Del Moral, Doucet and Jasra (2006).
 *
 * Particles are sharded over the ranks of comm (rank r holds a contiguous
 * block of the global index range); every random number is keyed by the
 * global particle index and the level, and the weights and resampling are
 * computed on the gathered global arrays in index order, so the result does
 * not depend on the number of ranks (bitwise). Resampling gathers every
 * particle on every rank (N d numbers per resampling): fine for the 10^3 to
 * 10^5 particles of these benchmarks. */
#ifndef DS_SMC_H
#define DS_SMC_H

#include "diffsamp/core.h"
#include "diffsamp/energy.h"

#include <mpi.h>

typedef struct ds_smc_config {
    long particles;          /* N, over all ranks */
    int levels;              /* K annealing levels */
    int mcmc_steps;          /* MALA moves per level */
    double init_var;         /* variance of the Gaussian reference */
    double ess_threshold;    /* resample when ESS < ess_threshold * N (0: never, 1: always) */
    double step;             /* initial MALA step size */
    double target_acceptance;
    uint64_t seed;
} ds_smc_config;

/* Defaults: 2000 particles, 100 levels, 2 MALA steps, N(0, 1), threshold
 * 0.5, step 0.05, acceptance 0.574, seed 0. */
void ds_smc_config_defaults(ds_smc_config *c);

typedef struct ds_smc_result {
    double log_z;            /* the SMC estimate of log Z */
    double ess;              /* effective sample size of the final weights, as a fraction of N */
    double acceptance;       /* MALA acceptance over the whole run */
    double step;             /* the final MALA step */
    long resamplings;
    long energy_evals;       /* log R evaluations (each with its gradient), summed over ranks */
} ds_smc_result;

/* Runs SMC on e. x (n_local, d) and log_w (n_local) receive this rank's
 * block of the final particles and their normalised log-weights (log of
 * N W_i: 0 for every particle right after a resampling), where n_local and
 * *first come from ds_smc_local. Collective over comm. */
ds_status ds_smc_run(MPI_Comm comm, const ds_energy *e, const ds_smc_config *c, ds_real *x, double *log_w,
                     ds_smc_result *res);
/* This rank's number of particles and first global index. */
ds_status ds_smc_local(MPI_Comm comm, long particles, long *n_local, long *first);

#endif
