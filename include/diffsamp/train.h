/* train: the training loop of a diffusion sampler (DESIGN.md 1-2): on-policy
 * plus exploration forward trajectories, the off-policy objectives, the
 * data-parallel gradient all-reduce, Adam, periodic evaluation, progress
 * lines and metrics.csv.
 *
 * The trainer is opaque: it owns the energy, the policy, the optimiser, the
 * trajectory stores and the ground-truth samples. Every function is
 * collective over the trainer's communicator. */
#ifndef DS_TRAIN_H
#define DS_TRAIN_H

#include "diffsamp/config.h"
#include "diffsamp/core.h"
#include "diffsamp/energy.h"
#include "diffsamp/eval.h"
#include "diffsamp/policy.h"

#include <mpi.h>
#include <signal.h>
#include <stdio.h>

typedef struct ds_trainer ds_trainer;

/* Builds everything a run needs from validated settings s (copied). The
 * global batch s->batch_size is split over the ranks of comm (uneven splits
 * allowed; at most one trajectory per rank minimum). Collective. */
ds_status ds_trainer_create(const ds_settings *s, MPI_Comm comm, ds_trainer **out);
void ds_trainer_destroy(ds_trainer **t);

/* One training iteration; *loss gets the objective on the global batch. */
ds_status ds_trainer_step(ds_trainer *t, double *loss);

/* Evaluates the current sampler: eval.samples forward trajectories (no
 * exploration) and, when with_ground_truth and the energy has a sampler,
 * the mean log-likelihood of eval.ground_truth_samples true samples. */
ds_status ds_trainer_evaluate(ds_trainer *t, int with_ground_truth, ds_eval_result *r);

/* The whole run from the current iteration: progress lines on `log` (rank
 * 0), evaluations every eval.every iterations and at the end, metrics.csv and
 * config.yaml in output.dir, a checkpoint every output.checkpoint_every
 * iterations and at the end, and the final sample set samples.h5. Before
 * each iteration the ranks agree on whether to stop (the flag set by
 * ds_trainer_set_stop_flag, the file <output.dir>/STOP, train.time_limit);
 * then a checkpoint is written and *stopped = 1 (the CLI exits with 3).
 * The last evaluation is returned in *final (may be NULL). */
ds_status ds_trainer_run(ds_trainer *t, FILE *log, ds_eval_result *final, int *stopped);

/* A flag (set by a signal handler) that asks the run to checkpoint and stop
 * at the next iteration boundary. Not collective. */
void ds_trainer_set_stop_flag(ds_trainer *t, volatile sig_atomic_t *flag);

/* Writes <output.dir>/checkpoint.h5 atomically (the previous one is kept as
 * checkpoint.h5.prev): model, optimiser, iteration, buffers, metrics. */
ds_status ds_trainer_checkpoint(ds_trainer *t);
/* Restores the state saved in a checkpoint: path, or "auto" (NULL) for the
 * newest loadable of <output.dir>/checkpoint.h5 and its .prev. Refuses a
 * checkpoint of another energy, dimension or model shape (DS_ERR_CONFIG) or a
 * damaged one (DS_ERR_FORMAT). Buffers are redistributed evenly when the
 * number of ranks changed. */
ds_status ds_trainer_resume(ds_trainer *t, const char *path);
/* 1 when <output.dir> holds a checkpoint (or its .prev). Not collective. */
int ds_trainer_has_checkpoint(const ds_settings *s);
/* Writes a sample set of n forward samples (no exploration) to path in
 * streamed chunks, with its metrics (ELBO, log Z_IS, ESS, Delta log Z) as
 * attributes; *r (may be NULL) gets those metrics. */
ds_status ds_trainer_write_samples(ds_trainer *t, const char *path, long n, ds_eval_result *r);

long ds_trainer_iteration(const ds_trainer *t);
/* Mean wall time of ds_trainer_step on this rank and the fraction of it
 * spent in MPI calls (reductions, the local-search exchange). */
void ds_trainer_timing(const ds_trainer *t, double *ms_per_iteration, double *mpi_fraction);
ds_policy *ds_trainer_policy(ds_trainer *t);
/* The target (its energy-call counts: ds_energy.calls). */
const ds_energy *ds_trainer_energy(const ds_trainer *t);

/* Test hook: rank `rank` fails with DS_ERR_INVALID ("forced failure") when
 * it starts iteration `iteration`, to show that the whole job then ends with
 * an error instead of hanging (rank < 0: never, the default). Not
 * collective; call it on every rank with the same arguments. */
void ds_trainer_set_fail_hook(ds_trainer *t, int rank, long iteration);

/* The both-ways schedule (DESIGN.md 1): with objective.both_ways or local
 * search, odd iterations train on backward trajectories from the buffer;
 * local search runs on the odd iterations with it % local_search.cycle == 1. */
int ds_trainer_is_backward_iteration(const ds_settings *s, long it);
int ds_trainer_is_local_search_iteration(const ds_settings *s, long it);
/* With searcher.enabled: a searcher round runs before the backward
 * iterations it with ((it - 1) / 2) % searcher.every == 0, and the learner
 * (the policy network and the Adam moments and step; log Z and the buffers
 * kept) is re-initialised before iterations it > 0 with
 * it % searcher.reinit_every == 0 (reinit_every > 0). */
int ds_trainer_is_searcher_iteration(const ds_settings *s, long it);
int ds_trainer_is_reinit_iteration(const ds_settings *s, long it);
/* Whether the trainer keeps a second buffer, the one backward iterations
 * draw from: local search's, or the searcher's own (searcher.own_buffer). */
int ds_settings_search_buffer(const ds_settings *s);

/* The exploration standard deviation at iteration it (0 when off). */
double ds_exploration_std(const ds_settings *s, long it);

#endif
