/* exact: sample sets that are not a trained sampler's, in the sample-set
 * layout of DESIGN.md 3 so that analysis/ reads them like any other:
 * exact samples of a target from its own sampler (`diffsamp ground-truth`),
 * and the weighted particles of the SMC baseline (`diffsamp smc`). Analysis
 * never needs a second implementation of the energies. */
#ifndef DS_EXACT_H
#define DS_EXACT_H

#include "diffsamp/core.h"
#include "diffsamp/energy.h"
#include "diffsamp/smc.h"

#include <mpi.h>

/* Writes n_total exact samples of e to path (written atomically: .tmp, then
 * renamed): /x (N, dim) and /log_reward (N), with root attribute log_z_true
 * when the target's log Z is known, sample k drawn from stream (seed,
 * DS_RNG_GROUND_TRUTH) at index k whatever the number of ranks. config_yaml
 * (may be NULL) is stored as the config attribute. Collective.
 * DS_ERR_INVALID when e has no exact sampler. */
ds_status ds_exact_write(MPI_Comm comm, const ds_energy *e, long n_total, uint64_t seed, const char *config_yaml,
                         const char *path);

/* Runs SMC (smc.h) on e and writes its particles to path: /x (N, dim),
 * /log_reward (N) and /log_weight (N, the normalised log-weights), with the
 * result as root attributes (log_z_smc, ess, acceptance, resamplings,
 * energy_evals, and delta_log_z when log Z is known). res gets the result. */
ds_status ds_smc_write(MPI_Comm comm, const ds_energy *e, const ds_smc_config *c, const char *config_yaml,
                       const char *path, ds_smc_result *res);

#endif
