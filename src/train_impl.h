/* train_impl.h: the trainer's private state, shared by the files of the
 * train module (train.c: creation and the schedule; train_step.c: one
 * iteration; train_eval.c: evaluation and sample sets; train_run.c: the run
 * loop and its outputs; train_state.c: the checkpointed run state). Not a
 * public header: nothing outside src/train*.c includes it. */
#ifndef DS_TRAIN_IMPL_H
#define DS_TRAIN_IMPL_H

#include "diffsamp/train.h"

#include "diffsamp/energy.h"
#include "diffsamp/h5io.h"
#include "diffsamp/local_search.h"
#include "diffsamp/metrics.h"
#include "diffsamp/onpolicy.h"
#include "diffsamp/replay.h"
#include "diffsamp/sampler.h"
#include "diffsamp/searcher.h"

#include <mpi.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

struct ds_trainer {
    ds_settings s;
    MPI_Comm comm;
    int rank, size;
    int B;              /* this rank's share of the batch */
    long first;         /* global index of this rank's first trajectory */
    long iteration;     /* iterations completed */
    ds_energy *energy;
    ds_policy *policy;
    ds_adam adam;
    ds_reference ref;   /* the reference process the sampler simulates (the objective's) */
    ds_sim sim;
    ds_onpolicy *onp;   /* on-policy objectives (pis, dds, dis): the reverse pass; else NULL */
    int chunk;          /* trajectories per evaluation pass (the policy holds T x chunk rows) */
    ds_traj tr;
    ds_real *d_log_pf, *d_log_f;  /* (T, B), (T+1, B) */
    double *lw;                   /* (B) log-weights (VarGrad baseline) */
    /* evaluation */
    int n_eval, eval_first;       /* this rank's share of eval.samples */
    ds_real *eval_x;              /* (n_eval, d) terminal states of the last evaluation */
    int n_gt, gt_first;           /* this rank's share of the ground-truth samples */
    ds_real *gt_x;                /* (n_gt, d) */
    double *gt_lw;                /* (n_gt * paths) */
    double t_start;
    double seconds_before;        /* wall time of the run's earlier processes (from the checkpoint; 0 when fresh) */
    /* both-ways training and local search (Sendera et al. 2024, section 4) */
    int both_ways;
    ds_buffer *buf;               /* terminal states of forward iterations */
    ds_buffer *buf_ls;            /* states found by local search */
    ds_real *bx, *blr;            /* (B, d), (B) a batch drawn from a buffer */
    ds_ls_params lsp;
    ds_ls_stats last_ls;          /* the latest local-search round */
    long ls_rounds;
    long exchanged;               /* samples received from other ranks so far */
    /* the MCMC searcher (searcher.h): chains that fill the buffer backward iterations draw from */
    ds_searcher *searcher;        /* NULL unless searcher.enabled */
    ds_ls_stats last_search;      /* its latest round */
    ds_policy_config pc;          /* the policy's configuration (re-initialisation of the learner) */
    long fail_iteration;          /* test hook (ds_trainer_set_fail_hook): fail here; -1 = never */
    /* run state that checkpoints carry beyond the model and the buffers */
    ds_metrics_history hist;      /* every evaluation so far (ds_metrics_columns) */
    double eval_loss_acc;         /* training losses since the last evaluation */
    long eval_loss_n;
    volatile sig_atomic_t *stop_flag;
    double t_created;
    char resumed_from[DS_PATH_MAX + 64];
    int resumed_ranks;            /* the number of ranks that wrote it (0: not resumed) */
    struct ds_cond_state *cond;   /* conditional targets (train_cond.c); NULL otherwise */
    double t_train;               /* wall seconds inside ds_trainer_step */
    double t_mpi;                 /* of which in MPI calls (reductions, exchange) */
    long steps_timed;
};

/* Rank `rank`'s share of `total` items split over `size` ranks (the first
 * total % size ranks get one more): *n items from global index *first. */
void ds_trainer_split(long total, int rank, int size, int *n, long *first);

/* This run's energy evaluations, summed over the ranks (collective): value,
 * grad and hvp counts, DS_ECALL_NPURPOSE each, in that order. */
#define DS_NCALLS (3 * DS_ECALL_NPURPOSE)
ds_status ds_trainer_energy_calls(ds_trainer *t, double v[DS_NCALLS]);
/* Wall time of the run so far in seconds: this process's, plus that of the
 * processes before it (the checkpoint's /state/run "seconds"). */
static inline double ds_trainer_elapsed(const ds_trainer *t) { return t->seconds_before + (ds_wtime() - t->t_start); }

/* The file metadata of this run (energy, dim, the effective config as YAML in
 * *yaml, which the caller frees). */
ds_status ds_trainer_meta(const ds_trainer *t, char **yaml, ds_h5_meta *meta);
const char *ds_trainer_notes(const ds_trainer *t);

/* The conditional path (train_cond.c). setup: after the energy, before the
 * policy (it sets B and first to whole conditions); check: after the policy. */
ds_status ds_cond_setup(ds_trainer *t);
ds_status ds_cond_check(ds_trainer *t);
void ds_cond_free(ds_trainer *t);
/* Draws iteration it's training conditions into the simulation's rows. */
ds_status ds_cond_draw(ds_trainer *t, long it);
/* condition.repeats of a conditional run, 1 otherwise. */
int ds_cond_repeats(const ds_trainer *t);
ds_status ds_cond_evaluate(ds_trainer *t, ds_eval_result *r);
/* Forward iterations: each condition's best trajectory (by log R) into the
 * replay buffer as [z, image index]. */
ds_status ds_cond_buffer_add(ds_trainer *t);
/* Backward iterations: the local-search round when it is due (*did_ls = 1),
 * then B / K buffer entries, each the terminal state of K backward
 * trajectories with its image, simulated into t->tr. */
ds_status ds_cond_backward_batch(ds_trainer *t, long it, int *did_ls);
ds_status ds_cond_write_samples(ds_trainer *t, const char *path, ds_eval_result *r);

#endif
