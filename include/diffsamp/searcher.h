/* searcher: long-running MALA chains that fill a replay buffer for a learner
 * trained off-policy from it (issue 20, section 4; the searcher / learner
 * split of SGDS, arXiv 2505.19552).
 *
 * MALA chains do not cross many_well's barriers (about 8 and 10 nats), so
 * each chain's wells are those it starts in: from the Gaussian, a pair lands
 * in the right-hand well about half the time (the target: 0.84). smc_levels
 * > 0 starts the chains from an SMC run instead (annealed from the same
 * Gaussian, 2 MALA moves per level, then one systematic resampling of the
 * final weighted particles), whose particles carry the target's mode
 * weights up to the SMC's error.
 *
 * `chains` chains over all ranks, split like a batch (ds_trainer_split:
 * rank r holds a contiguous range of global chain indices). They start from
 * N(0, init_var I) and persist for the whole run: a round runs `steps` MALA
 * steps (local_search.h's kernel and step-size schedule, the step carried
 * from round to round) and adds the states of its last `keep` steps, with
 * their log R, to a buffer. Chain k at round key `it` draws from stream
 * (seed, DS_RNG_SEARCHER) at (iteration = it, sample = k), so the chains do
 * not depend on the number of ranks (the acceptance counts that adapt the
 * step are summed over the ranks). The chain states and the step are part
 * of the checkpoint (/searcher), read back on any number of ranks. */
#ifndef DS_SEARCHER_H
#define DS_SEARCHER_H

#include "diffsamp/core.h"
#include "diffsamp/energy.h"
#include "diffsamp/h5io.h"
#include "diffsamp/local_search.h"
#include "diffsamp/replay.h"

#include <mpi.h>
#include <stdint.h>

typedef struct ds_searcher_config {
    long chains;              /* over all ranks, >= 1 */
    int steps;                /* MALA steps per round, >= 2 */
    int keep;                 /* the last `keep` steps' states are buffered, 1 <= keep < steps */
    double step;              /* initial MALA step */
    double target_acceptance; /* in (0, 1) */
    double adapt_up, adapt_down; /* step factors (local_search.adapt_up / adapt_down) */
    double init_var;          /* variance of the Gaussian start, > 0 */
    int smc_levels;           /* > 0: start from an SMC run (smc.h) of `chains` particles and this many levels
                               * from that Gaussian, resampled to equal weights; 0: the Gaussian itself */
    uint64_t seed;
} ds_searcher_config;

typedef struct ds_searcher ds_searcher;

/* Creates the searcher of this rank of comm (its share of the chains, drawn
 * from their start). Collective when smc_levels > 0 (the SMC run, whose
 * energy calls count under the energy's current purpose). DS_ERR_INVALID on
 * a bad config, DS_ERR_NOMEM, or the SMC's error. */
ds_status ds_searcher_create(MPI_Comm comm, const ds_energy *e, const ds_searcher_config *c, ds_searcher **out);
/* Frees *s and sets it to NULL; NULL is fine. */
void ds_searcher_destroy(ds_searcher **s);

/* One round keyed by `key` (the training iteration): the chains move,
 * the states of the last `keep` steps go to out (may be NULL). Collective
 * over comm (the acceptance counts). stats may be NULL. The energy's calls
 * count under its current purpose. */
ds_status ds_searcher_round(ds_searcher *s, uint64_t key, ds_buffer *out, ds_ls_stats *stats);

/* The current step size; this rank's chains (n, dim) and their count. */
double ds_searcher_step(const ds_searcher *s);
const ds_real *ds_searcher_states(const ds_searcher *s, int *n);
long ds_searcher_rounds(const ds_searcher *s);

/* /searcher/x (chains, dim, in global index order), /searcher/step and
 * /searcher/rounds. Collective. */
ds_status ds_searcher_write(ds_ckpt_file *f, const ds_searcher *s);
/* Reads them back (any writer rank count); DS_ERR_FORMAT when the file's
 * chain count or dim differs from this searcher's. Collective. */
ds_status ds_searcher_read(ds_ckpt_file *f, ds_searcher *s);

#endif
