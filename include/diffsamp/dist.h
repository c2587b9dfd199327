/* dist: the MPI side of training (DESIGN.md 2): reductions that every rank
 * must agree on (stop decisions, distributed log-sum-exp, parameter
 * checksums) and the exchange of local-search samples between the shards of
 * the replay buffer. Every function here is collective over comm. */
#ifndef DS_DIST_H
#define DS_DIST_H

#include "diffsamp/core.h"
#include "diffsamp/eval.h"
#include "diffsamp/exchange.h"
#include "diffsamp/nn.h"
#include "diffsamp/replay.h"
#include "diffsamp/rng.h"

#include <mpi.h>


/* Each rank contributes min(count, size of its shard) samples of ls (the
 * highest log R, or uniformly random ones keyed by (r, iteration)) to one
 * MPI_Allgatherv; every rank then adds the samples sent by the OTHER ranks
 * to its shard. *received (may be NULL) gets the number added here. */
ds_status ds_dist_exchange(MPI_Comm comm, ds_buffer *ls, int count, ds_exchange mode, ds_rng r,
                           uint64_t iteration, long *received);

/* Logical OR of flag over the ranks (stop decisions: every rank acts on the
 * same answer at the same iteration). */
ds_status ds_dist_any(MPI_Comm comm, int flag, int *any);

/* log sum exp of the union of every rank's n values, computed stably from
 * per-rank (max, scaled sum) pairs; the same result on every rank. */
ds_status ds_dist_logsumexp(MPI_Comm comm, const double *v, long n, double *out);

/* ELBO, log Z_IS and ESS over the union of every rank's log-weights (the
 * has_log_z / log_z_true fields of r are used for the deltas). */
ds_status ds_dist_eval_weights(MPI_Comm comm, const double *log_w, long n, ds_eval_result *r);

/* Verifies that the parameters are bitwise identical on every rank (a
 * checksum of the bytes, compared with MPI_MAX and MPI_MIN). Returns
 * DS_ERR_NUMERIC naming the first differing rank pair otherwise. */
ds_status ds_dist_check_params(MPI_Comm comm, const ds_arena *a);

#endif
