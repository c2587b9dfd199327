/* train: the training loop, evaluation and run outputs. */
#define _POSIX_C_SOURCE 200809L
#include "diffsamp/train.h"

#include "diffsamp/dist.h"
#include "diffsamp/energy.h"
#include "diffsamp/local_search.h"
#include "diffsamp/objectives.h"
#include "diffsamp/replay.h"
#include "diffsamp/rng.h"
#include "diffsamp/sampler.h"

#include "diffsamp/h5io.h"
#include "diffsamp/mpicheck.h"

#include <errno.h>
#include <signal.h>
#include <unistd.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


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
    ds_reference ref;             /* the reference process the sampler simulates */
    ds_sim sim;
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
    /* both-ways training and local search (Sendera et al. 2024, section 4) */
    int both_ways;
    ds_buffer *buf;               /* terminal states of forward iterations */
    ds_buffer *buf_ls;            /* states found by local search */
    ds_real *bx, *blr;            /* (B, d), (B) a batch drawn from a buffer */
    ds_ls_params lsp;
    ds_ls_stats last_ls;          /* the latest local-search round */
    long ls_rounds;
    long exchanged;               /* samples received from other ranks so far */
    long fail_iteration;          /* test hook (DS_DEBUG_FAIL_RANK/ITERATION): fail here; -1 = never */
    /* run state that checkpoints carry beyond the model and the buffers */
    double *hist;                 /* (nhist, NMETRIC) every evaluation so far */
    size_t nhist, cap_hist;
    double eval_loss_acc;         /* training losses since the last evaluation */
    long eval_loss_n;
    volatile sig_atomic_t *stop_flag;
    double t_created;
    char resumed_from[DS_PATH_MAX + 64];
    double t_train;               /* wall seconds inside ds_trainer_step */
    double t_mpi;                 /* of which in MPI calls (reductions, exchange) */
    long steps_timed;
};

/* Sums local-search acceptance counts over the ranks, so that every rank
 * adapts the step size from the global batch statistic. */
static ds_status ls_reduce(void *ctx, double counts[2])
{
    ds_trainer *t = ctx;
    if (t->size == 1) return DS_OK;
    double t0 = MPI_Wtime();
    DS_MPI(MPI_Allreduce(MPI_IN_PLACE, counts, 2, MPI_DOUBLE, MPI_SUM, t->comm));
    t->t_mpi += MPI_Wtime() - t0;
    return DS_OK;
}

static void split(long total, int rank, int size, int *n, long *first)
{
    long base = total / size, rem = total % size;
    *n = (int)(base + (rank < rem ? 1 : 0));
    *first = rank * base + (rank < rem ? rank : rem);
}

double ds_exploration_std(const ds_settings *s, long it)
{
    if (s->expl_factor <= 0) return 0;
    if (s->expl_schedule == DS_EXPL_LINEAR) {
        double f = 1.0 - (double)it / (double)s->expl_decay_iterations;
        return s->expl_factor * (f > 0 ? f : 0);
    }
    return s->expl_factor;
}

ds_status ds_trainer_create(const ds_settings *s, MPI_Comm comm, ds_trainer **out)
{
    DS_TRY(ds_settings_validate(s));
    ds_trainer *t = calloc(1, sizeof *t);
    DS_ALLOC_CHECK(t);
    ds_status rc = DS_OK;
    t->s = *s;
    t->comm = comm;
    DS_MPI_GOTO(rc, fail, MPI_Comm_rank(comm, &t->rank));
    DS_MPI_GOTO(rc, fail, MPI_Comm_size(comm, &t->size));
    if (s->batch_size < t->size) {
        rc = ds_error_set(DS_ERR_CONFIG, __FILE__, __LINE__, __func__,
                          "train.batch_size %d is smaller than the number of ranks %d", s->batch_size, t->size);
        goto fail;
    }
    split(s->batch_size, t->rank, t->size, &t->B, &t->first);
    DS_TRY_GOTO(rc, ds_energy_create(s->energy_name, s->energy_dim, &s->energy_args, &t->energy), fail);
    const int d = t->energy->dim, T = s->T;
    ds_policy_config pc = {
        .dim = d, .hidden = s->hidden, .harmonics = s->harmonics, .joint_layers = s->joint_layers,
        .lgv_layers = s->lgv_layers, .langevin = s->langevin, .lgv_per_dim = s->lgv_per_dimension,
        .learned_variance = s->learned_variance, .clipping = s->clipping, .zero_init = s->zero_init,
        .conditional_flow = s->conditional_flow, .log_var_range = s->log_var_range,
        .lgv_clip = s->lgv_clip, .gfn_clip = s->gfn_clip};
    DS_TRY_GOTO(rc, ds_policy_create(&pc, T, T * t->B, s->seed, &t->policy), fail);
    ds_adam_init(&t->adam, s->lr_policy, s->lr_flow);
    DS_TRY_GOTO(rc, ds_reference_init_brownian(&t->ref, T, s->t_scale), fail);
    t->sim = (ds_sim){.policy = t->policy, .energy = t->energy, .ref = &t->ref, .partial_energy = s->partial_energy};
    DS_TRY_GOTO(rc, ds_traj_init(&t->tr, T, t->B, d, s->langevin, s->partial_energy), fail);
    t->d_log_pf = ds_calloc((size_t)T * t->B, sizeof(ds_real));
    t->d_log_f = ds_calloc((size_t)(T + 1) * t->B, sizeof(ds_real));
    t->lw = ds_calloc((size_t)t->B, sizeof(double));
    long f;
    split(s->eval_samples, t->rank, t->size, &t->n_eval, &f);
    t->eval_first = (int)f;
    t->eval_x = ds_calloc((size_t)(t->n_eval > 0 ? t->n_eval : 1) * d, sizeof(ds_real));
    if (!t->d_log_pf || !t->d_log_f || !t->lw || !t->eval_x) {
        rc = ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__, "out of memory for the trainer");
        goto fail;
    }
    if (s->eval_gt_samples > 0 && ds_energy_has_sampler(t->energy)) {
        split(s->eval_gt_samples, t->rank, t->size, &t->n_gt, &f);
        t->gt_first = (int)f;
        t->gt_x = ds_calloc((size_t)(t->n_gt > 0 ? t->n_gt : 1) * d, sizeof(ds_real));
        t->gt_lw = ds_calloc((size_t)(t->n_gt > 0 ? t->n_gt : 1) * s->eval_paths, sizeof(double));
        if (!t->gt_x || !t->gt_lw) {
            rc = ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__, "out of memory for ground truth");
            goto fail;
        }
        /* The true samples are fixed for the run (like the reference's eval_data). */
        if (t->n_gt > 0)
            DS_TRY_GOTO(rc, ds_energy_sample(t->energy, ds_rng_make(s->seed, DS_RNG_GROUND_TRUTH),
                                             (uint64_t)t->gt_first, t->n_gt, t->gt_x), fail);
    }
    t->both_ways = s->both_ways || s->ls_enabled;  /* local search implies both ways, as in the reference */
    if (t->both_ways) {
        /* The buffer capacity is split over the ranks: each keeps what it produced. */
        size_t cap = (size_t)((s->replay_capacity + t->size - 1) / t->size);
        DS_TRY_GOTO(rc, ds_buffer_create(cap, d, s->replay_priority, s->replay_beta, s->replay_rank_weight, &t->buf),
                    fail);
        if (s->ls_enabled)
            DS_TRY_GOTO(rc, ds_buffer_create(cap, d, s->replay_priority, s->replay_beta, s->replay_rank_weight,
                                             &t->buf_ls), fail);
        t->bx = ds_calloc((size_t)t->B * d, sizeof(ds_real));
        t->blr = ds_calloc((size_t)t->B, sizeof(ds_real));
        if (!t->bx || !t->blr) {
            rc = ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__, "out of memory for buffer batches");
            goto fail;
        }
    }
    ds_ls_params_init(&t->lsp);
    t->lsp.max_iter = s->ls_max_iter;
    t->lsp.burn_in = s->ls_burn_in;
    t->lsp.step = s->ls_step;
    t->lsp.target_acceptance = s->ls_target_acceptance;
    t->lsp.adapt_up = s->ls_adapt_up;
    t->lsp.adapt_down = s->ls_adapt_down;
    t->lsp.beta = s->ls_beta;
    t->lsp.reduce = ls_reduce;
    t->lsp.reduce_ctx = t;
    t->last_ls.final_step = s->ls_step;
    t->last_ls.acceptance = NAN;
    if (s->ls_enabled) DS_TRY_GOTO(rc, ds_ls_params_check(&t->lsp), fail);
    /* Test hook: make one rank fail at a given iteration, to show that the
     * whole job then ends with an error instead of hanging. */
    t->fail_iteration = -1;
    const char *fr = getenv("DS_DEBUG_FAIL_RANK"), *fi = getenv("DS_DEBUG_FAIL_ITERATION");
    if (fr && atoi(fr) == t->rank) t->fail_iteration = fi ? atol(fi) : 0;
    t->t_start = t->t_created = ds_wtime();
    *out = t;
    return DS_OK;
fail:
    ds_trainer_destroy(&t);
    return rc;
}

void ds_trainer_destroy(ds_trainer **tp)
{
    if (!tp || !*tp) return;
    ds_trainer *t = *tp;
    ds_traj_free(&t->tr);
    ds_reference_free(&t->ref);
    ds_policy_destroy(&t->policy);
    ds_energy_destroy(&t->energy);
    DS_FREE(t->d_log_pf);
    DS_FREE(t->d_log_f);
    DS_FREE(t->lw);
    DS_FREE(t->eval_x);
    DS_FREE(t->gt_x);
    DS_FREE(t->gt_lw);
    ds_buffer_destroy(&t->buf);
    ds_buffer_destroy(&t->buf_ls);
    free(t->hist);
    DS_FREE(t->bx);
    DS_FREE(t->blr);
    free(t);
    *tp = NULL;
}

long ds_trainer_iteration(const ds_trainer *t) { return t->iteration; }
long ds_trainer_exchanged(const ds_trainer *t) { return t->exchanged; }
int ds_trainer_local_batch(const ds_trainer *t, long *first)
{
    if (first) *first = t->first;
    return t->B;
}
ds_policy *ds_trainer_policy(ds_trainer *t) { return t->policy; }
const ds_settings *ds_trainer_settings(const ds_trainer *t) { return &t->s; }

/* Sums the gradient over ranks (each rank's loss is already divided by the
 * global batch), then the same Adam step everywhere. */
static ds_status reduce_and_update(ds_trainer *t)
{
    ds_arena *a = &t->policy->arena;
    if (t->size > 1) {
        MPI_Datatype type = sizeof(ds_real) == sizeof(double) ? MPI_DOUBLE : MPI_FLOAT;
        double t0 = MPI_Wtime();
        DS_MPI(MPI_Allreduce(MPI_IN_PLACE, a->grads, (int)a->n, type, MPI_SUM, t->comm));
        t->t_mpi += MPI_Wtime() - t0;
    }
    ds_adam_step(&t->adam, a);
    return DS_OK;
}

/* The objective on the trajectories in t->tr, the chain rule into the
 * policy, the gradient all-reduce and the Adam step. */
static ds_status train_on_batch(ds_trainer *t, ds_objective kind, double *loss)
{
    const ds_settings *s = &t->s;
    const int T = s->T, B = t->B;
    ds_obj_input in = {T, B, t->tr.log_pf, t->tr.log_pb, t->tr.log_f, s->subtb_lambda, (double)s->batch_size, NULL};
    double vg = 0;
    if (kind == DS_OBJ_VARGRAD) {
        ds_objective_log_weights(&in, t->lw);
        for (int b = 0; b < B; b++) vg += t->lw[b];
        if (t->size > 1) DS_MPI(MPI_Allreduce(MPI_IN_PLACE, &vg, 1, MPI_DOUBLE, MPI_SUM, t->comm));
        vg /= s->batch_size;
        in.vargrad_log_z = &vg;
    }
    double local = 0;
    DS_TRY(ds_objective_eval(kind, &in, &local, t->d_log_pf, t->d_log_f));
    double total = local;
    if (t->size > 1) {
        double t0 = MPI_Wtime();
        DS_MPI(MPI_Allreduce(&local, &total, 1, MPI_DOUBLE, MPI_SUM, t->comm));
        t->t_mpi += MPI_Wtime() - t0;
    }
    DS_CHECK(isfinite(total), DS_ERR_NUMERIC,
             "the %s loss is %g at iteration %ld; lower train.lr_policy or turn on sampler.clipping",
             ds_objective_name(kind), total, t->iteration);
    ds_arena_zero_grad(&t->policy->arena);
    DS_TRY(ds_sim_backprop(&t->sim, &t->tr, B, t->d_log_pf, t->d_log_f));
    DS_TRY(reduce_and_update(t));
    *loss = total;
    return DS_OK;
}

/* Sends this rank's best (or random) local-search samples to every other
 * rank and adds what the others send (replay.exchange*). */
static ds_status exchange(ds_trainer *t, long it)
{
    const ds_settings *s = &t->s;
    long got = 0;
    double t0 = MPI_Wtime();
    DS_TRY(ds_dist_exchange(t->comm, t->buf_ls, s->exchange_count, (ds_exchange_mode)s->exchange_mode,
                            ds_rng_make(s->seed, DS_RNG_EXCHANGE), (uint64_t)it, &got));
    t->t_mpi += MPI_Wtime() - t0;
    t->exchanged += got;
    return DS_OK;
}

int ds_trainer_is_backward_iteration(const ds_settings *s, long it)
{
    return (s->both_ways || s->ls_enabled) && it % 2 == 1;
}

int ds_trainer_is_local_search_iteration(const ds_settings *s, long it)
{
    return s->ls_enabled && it % s->ls_cycle == 1;
}

static ds_status step_impl(ds_trainer *t, double *loss);

ds_status ds_trainer_step(ds_trainer *t, double *loss)
{
    double t0 = ds_wtime();
    ds_status rc = step_impl(t, loss);
    t->t_train += ds_wtime() - t0;
    t->steps_timed++;
    return rc;
}

void ds_trainer_timing(const ds_trainer *t, double *ms_per_iteration, double *mpi_fraction)
{
    *ms_per_iteration = t->steps_timed ? 1e3 * t->t_train / t->steps_timed : 0;
    *mpi_fraction = t->t_train > 0 ? t->t_mpi / t->t_train : 0;
}

static ds_status step_impl(ds_trainer *t, double *loss)
{
    const ds_settings *s = &t->s;
    const int T = s->T, B = t->B, d = t->energy->dim;
    const long it = t->iteration;
    DS_CHECK(it != t->fail_iteration, DS_ERR_INVALID,
             "forced failure of rank %d at iteration %ld (DS_DEBUG_FAIL_RANK is set)", t->rank, it);
    if (!ds_trainer_is_backward_iteration(s, it)) {
        /* Forward: on-policy plus exploration; terminal states feed the buffer. */
        DS_TRY(ds_sim_forward(&t->sim, &t->tr, B, ds_exploration_std(s, it), ds_rng_make(s->seed, DS_RNG_FORWARD),
                              (uint64_t)it, (uint64_t)t->first, NULL));
        if (t->buf) DS_TRY(ds_buffer_add(t->buf, (size_t)B, t->tr.states + (size_t)T * B * d, t->tr.log_r));
        DS_TRY(train_on_batch(t, s->objective, loss));
    } else {
        /* Backward: states from the buffer (or the local-search buffer), noised
         * by the Brownian bridge, trained with the backward objective. */
        if (ds_trainer_is_local_search_iteration(s, it)) {
            DS_TRY(ds_buffer_sample(t->buf, ds_rng_make(s->seed, DS_RNG_BUFFER), (uint64_t)it,
                                    (uint64_t)(t->first + s->batch_size), B, t->bx, t->blr));
            DS_TRY(ds_ls_run(t->energy, &t->lsp, ds_rng_make(s->seed, DS_RNG_LOCAL_SEARCH), (uint64_t)it,
                             (uint64_t)t->first, B, t->bx, t->buf_ls, &t->last_ls));
            t->ls_rounds++;
            if (t->size > 1 && s->exchange_every == 0) DS_TRY(exchange(t, it));
        }
        ds_buffer *src = s->ls_enabled ? t->buf_ls : t->buf;
        DS_CHECK(ds_buffer_size(src) > 0, DS_ERR_INVALID,
                 "the %s buffer is empty at iteration %ld (local search added nothing: check local_search.burn_in < "
                 "local_search.max_iter and the step size)", s->ls_enabled ? "local-search" : "replay", it);
        DS_TRY(ds_buffer_sample(src, ds_rng_make(s->seed, DS_RNG_BUFFER), (uint64_t)it, (uint64_t)t->first, B, t->bx,
                                t->blr));
        DS_TRY(ds_sim_backward(&t->sim, &t->tr, B, t->bx, t->blr, ds_rng_make(s->seed, DS_RNG_BACKWARD), (uint64_t)it,
                               (uint64_t)t->first, NULL));
        DS_TRY(train_on_batch(t, s->backward, loss));
    }
    t->iteration++;
    if (t->size > 1 && s->ls_enabled && s->exchange_every > 0 && t->iteration % s->exchange_every == 0)
        DS_TRY(exchange(t, it));
    if (t->size > 1 && s->check_every > 0 && t->iteration % s->check_every == 0)
        DS_TRY(ds_dist_check_params(t->comm, &t->policy->arena));
    return DS_OK;
}

/* In-place sum of n doubles over the ranks. */
static ds_status sum_doubles(ds_trainer *t, double *v, int n)
{
    DS_MPI(MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, t->comm));
    return DS_OK;
}

/* Gathers every rank's n doubles into all[] (total entries) in rank order. */
static ds_status allgather_doubles(ds_trainer *t, const double *mine, int n, double *all)
{
    if (t->size == 1) {
        memcpy(all, mine, sizeof(double) * (size_t)n);
        return DS_OK;
    }
    int *counts = malloc(sizeof(int) * (size_t)t->size * 2);
    DS_ALLOC_CHECK(counts);
    int *displs = counts + t->size;
    ds_status rc = DS_OK;
    DS_MPI_GOTO(rc, done, MPI_Allgather(&n, 1, MPI_INT, counts, 1, MPI_INT, t->comm));
    displs[0] = 0;
    for (int r = 1; r < t->size; r++) displs[r] = displs[r - 1] + counts[r - 1];
    DS_MPI_GOTO(rc, done, MPI_Allgatherv(mine, n, MPI_DOUBLE, all, counts, displs, MPI_DOUBLE, t->comm));
done:
    free(counts);
    return rc;
}

/* Forward trajectories (no exploration) of n <= batch samples with global
 * indices first.., on the evaluation stream keyed by `key`; per-sample sums
 * go to the arrays that are not NULL, and sum log F_0 is added to *learned. */
static ds_status forward_chunk(ds_trainer *t, int n, long first, uint64_t key, double *log_w, double *log_r,
                               double *log_pf, double *log_pb, double *learned)
{
    const int T = t->s.T;
    DS_TRY(ds_sim_forward(&t->sim, &t->tr, n, 0.0, ds_rng_make(t->s.seed, DS_RNG_EVAL), key, (uint64_t)first, NULL));
    for (int b = 0; b < n; b++) {
        double sf = 0, sb = 0;
        for (int i = 0; i < T; i++) {
            sf += (double)t->tr.log_pf[(size_t)i * n + b];
            sb += (double)t->tr.log_pb[(size_t)i * n + b];
        }
        const double lr = (double)t->tr.log_r[b];
        if (log_w) log_w[b] = lr + sb - sf;
        if (log_r) log_r[b] = lr;
        if (log_pf) log_pf[b] = sf;
        if (log_pb) log_pb[b] = sb;
        *learned += (double)t->tr.log_f[b];
    }
    return DS_OK;
}

ds_status ds_trainer_evaluate(ds_trainer *t, int with_ground_truth, ds_eval_result *r)
{
    const ds_settings *s = &t->s;
    const int T = s->T, d = t->energy->dim, cap = t->B;
    memset(r, 0, sizeof *r);
    r->iteration = t->iteration;
    r->has_log_z = t->energy->has_log_z;
    r->log_z_true = t->energy->log_z;
    r->mean_ll = NAN;
    r->modes = -1;
    double learned = 0;
    /* Forward samples without exploration, in chunks of the training batch. */
    double *mine = malloc(sizeof(double) * (size_t)(t->n_eval > 0 ? t->n_eval : 1));
    DS_ALLOC_CHECK(mine);
    ds_status rc = DS_OK;
    for (int c0 = 0; c0 < t->n_eval && rc == DS_OK; c0 += cap) {
        int n = t->n_eval - c0 < cap ? t->n_eval - c0 : cap;
        rc = forward_chunk(t, n, t->eval_first + c0, (uint64_t)t->iteration, mine + c0, NULL, NULL, NULL, &learned);
        if (rc == DS_OK)
            memcpy(t->eval_x + (size_t)c0 * d, t->tr.states + (size_t)T * n * d, sizeof(ds_real) * (size_t)n * d);
    }
    if (rc == DS_OK) rc = ds_dist_eval_weights(t->comm, mine, t->n_eval, r);
    free(mine);
    DS_TRY(rc);
    if (t->size > 1) DS_MPI(MPI_Allreduce(MPI_IN_PLACE, &learned, 1, MPI_DOUBLE, MPI_SUM, t->comm));
    r->log_z_learned = !ds_objective_has(s->objective, DS_OBJF_LEARNS_LOG_Z) ? NAN : learned / s->eval_samples;
    /* Mode coverage for the 2-D grid mixtures: a mode is held when a sample
     * lies within 0.4 spacings (2.0 for the 25gmm grid) of it. */
    int per_axis;
    double spacing;
    if (ds_energy_mode_grid(t->energy, &per_axis, &spacing)) {
        int modes;
        if (t->size > 1) {
            /* Coverage of the union: gather the (small, 2-D) sample set. */
            double *mine2 = malloc(sizeof(double) * (size_t)(2 * t->n_eval + 1));
            double *all2 = malloc(sizeof(double) * (size_t)(2 * s->eval_samples));
            ds_real *allx = malloc(sizeof(ds_real) * (size_t)(2 * s->eval_samples));
            DS_CHECK(mine2 && all2 && allx, DS_ERR_NOMEM, "out of memory for the mode count");
            for (int k = 0; k < 2 * t->n_eval; k++) mine2[k] = (double)t->eval_x[k];
            rc = allgather_doubles(t, mine2, 2 * t->n_eval, all2);
            for (int k = 0; k < 2 * s->eval_samples; k++) allx[k] = (ds_real)all2[k];
            modes = ds_eval_grid_modes(allx, s->eval_samples, per_axis, spacing, 0.4 * spacing, 1);
            free(mine2);
            free(all2);
            free(allx);
            DS_TRY(rc);
        } else {
            modes = ds_eval_grid_modes(t->eval_x, t->n_eval, per_axis, spacing, 0.4 * spacing, 1);
        }
        r->modes = modes;
        r->modes_total = per_axis * per_axis;
    }
    /* Mean log-likelihood of true samples: K backward paths each. */
    if (with_ground_truth && t->gt_x) {
        const int K = s->eval_paths;
        const long rows = (long)t->n_gt * K;
        for (long r0 = 0; r0 < rows; r0 += cap) {
            int n = rows - r0 < cap ? (int)(rows - r0) : cap;
            /* Row q is path q % K of true sample q / K. */
            /* Stage x_T in the noise scratch: ds_sim_backward copies it into the
             * states before it draws any noise. */
            ds_real *xT = t->tr.noise;
            for (int q = 0; q < n; q++)
                memcpy(xT + (size_t)q * d, t->gt_x + (size_t)((r0 + q) / K) * d, sizeof(ds_real) * (size_t)d);
            DS_TRY(ds_sim_backward(&t->sim, &t->tr, n, xT, NULL, ds_rng_make(s->seed, DS_RNG_EVAL_BACKWARD),
                                   (uint64_t)t->iteration, (uint64_t)((long)t->gt_first * K + r0), NULL));
            for (int q = 0; q < n; q++) {
                double acc = 0;
                for (int i = 0; i < T; i++)
                    acc += (double)t->tr.log_pf[(size_t)i * n + q] - (double)t->tr.log_pb[(size_t)i * n + q];
                t->gt_lw[r0 + q] = acc;
            }
        }
        double sum = 0;
        for (int k = 0; k < t->n_gt; k++) sum += ds_logmeanexp(t->gt_lw + (size_t)k * K, K);
        if (t->size > 1) DS_MPI(MPI_Allreduce(MPI_IN_PLACE, &sum, 1, MPI_DOUBLE, MPI_SUM, t->comm));
        r->mean_ll = sum / s->eval_gt_samples;
    }
    r->ls_acceptance = s->ls_enabled && t->ls_rounds > 0 ? t->last_ls.acceptance : NAN;
    r->ls_step = s->ls_enabled && t->ls_rounds > 0 ? t->last_ls.final_step : NAN;
    long sizes[2] = {t->buf ? (long)ds_buffer_size(t->buf) : 0, t->buf_ls ? (long)ds_buffer_size(t->buf_ls) : 0};
    if (t->size > 1) DS_MPI(MPI_Allreduce(MPI_IN_PLACE, sizes, 2, MPI_LONG, MPI_SUM, t->comm));
    r->buffer_size = sizes[0];
    r->buffer_ls_size = sizes[1];
    r->seconds = ds_wtime() - t->t_start;
    return DS_OK;
}

static ds_status make_dirs(const char *path)
{
    char buf[DS_PATH_MAX];
    int len = snprintf(buf, sizeof buf, "%s", path);
    DS_CHECK(len > 0 && (size_t)len < sizeof buf, DS_ERR_CONFIG, "output.dir is empty or too long");
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__, "cannot create directory %s: %s", buf,
                                    strerror(errno));
            *p = c;
            if (c == '\0') break;
        }
    }
    return DS_OK;
}

static void fmt_duration(double sec, char *out, size_t n)
{
    if (!(sec >= 0) || sec > 1e8) { snprintf(out, n, "?"); return; }
    long s = (long)(sec + 0.5);
    if (s >= 3600) snprintf(out, n, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
    else if (s >= 60) snprintf(out, n, "%ldm%02lds", s / 60, s % 60);
    else snprintf(out, n, "%lds", s);
}

static void print_eval(FILE *log, const ds_eval_result *r)
{
    fprintf(log, "  eval @%ld: elbo %.4f  log_z_is %.4f  ess %.3f", r->iteration, r->elbo, r->log_z_is, r->ess);
    if (!isnan(r->log_z_learned)) fprintf(log, "  log_z_learned %.4f", r->log_z_learned);
    if (r->has_log_z) fprintf(log, "  dlogz %.4f  dlogz_is %.4f", r->delta_log_z, r->delta_log_z_is);
    if (!isnan(r->mean_ll)) fprintf(log, "  mean_ll %.4f", r->mean_ll);
    if (r->modes >= 0) fprintf(log, "  modes %d/%d", r->modes, r->modes_total);
    if (!isnan(r->ls_acceptance)) fprintf(log, "  ls_accept %.3f ls_step %.4g", r->ls_acceptance, r->ls_step);
    if (r->buffer_size > 0) fprintf(log, "  buffer %ld/%ld", r->buffer_size, r->buffer_ls_size);
    fprintf(log, "\n");
    fflush(log);
}

/* metrics.csv columns; the checkpoint's /metrics table has the same ones. */
static const char *const metric_columns[] = {
    "iteration", "loss", "elbo", "log_z_is", "log_z_learned", "ess", "mean_log_likelihood", "delta_log_z",
    "delta_log_z_is", "modes", "ls_acceptance", "ls_step", "buffer_size", "buffer_ls_size", "seconds"};
#define NMETRIC ((int)(sizeof metric_columns / sizeof metric_columns[0]))

static void result_to_row(const ds_eval_result *r, double *row)
{
    double v[NMETRIC] = {(double)r->iteration, r->loss, r->elbo, r->log_z_is, r->log_z_learned, r->ess, r->mean_ll,
                         r->has_log_z ? r->delta_log_z : NAN, r->has_log_z ? r->delta_log_z_is : NAN,
                         r->modes >= 0 ? (double)r->modes : NAN, r->ls_acceptance, r->ls_step,
                         (double)r->buffer_size, (double)r->buffer_ls_size, r->seconds};
    memcpy(row, v, sizeof v);
}

static ds_status history_add(ds_trainer *t, const ds_eval_result *r)
{
    if (t->nhist == t->cap_hist) {
        size_t cap = t->cap_hist ? 2 * t->cap_hist : 64;
        double *h = realloc(t->hist, sizeof(double) * cap * NMETRIC);
        DS_ALLOC_CHECK(h);
        t->hist = h;
        t->cap_hist = cap;
    }
    result_to_row(r, t->hist + t->nhist * NMETRIC);
    t->nhist++;
    return DS_OK;
}

static void write_csv_row(FILE *f, const double *row)
{
    for (int c = 0; c < NMETRIC; c++) {
        if (c) fputc(',', f);
        if (isnan(row[c])) continue;
        if (c == 0 || c == 9 || c == 12 || c == 13) fprintf(f, "%.0f", row[c]);
        else fprintf(f, "%.10g", row[c]);
    }
    fputc('\n', f);
    fflush(f);
}

/* (Re)writes metrics.csv from the history (so a resumed run's file is the
 * uninterrupted run's file) and leaves it open for appending. */
static ds_status open_metrics(ds_trainer *t, FILE **out)
{
    char path[DS_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/metrics.csv", t->s.out_dir);
    FILE *f = fopen(path, "w");
    DS_CHECK(f != NULL, DS_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    for (int c = 0; c < NMETRIC; c++) fprintf(f, "%s%s", c ? "," : "", metric_columns[c]);
    fputc('\n', f);
    for (size_t i = 0; i < t->nhist; i++) write_csv_row(f, t->hist + i * NMETRIC);
    *out = f;
    return DS_OK;
}

void ds_trainer_set_stop_flag(ds_trainer *t, volatile sig_atomic_t *flag) { t->stop_flag = flag; }

/* Should the run stop now? Signals, the stop file and the time limit, agreed
 * across ranks so that every rank stops at the same iteration. */
static ds_status stop_requested(ds_trainer *t, int *stop, const char **why)
{
    const ds_settings *s = &t->s;
    int mine = 0;
    *why = NULL;
    if (t->stop_flag && *t->stop_flag) mine |= 1;
    char path[DS_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/STOP", s->out_dir);
    if (access(path, F_OK) == 0) mine |= 2;
    if (s->time_limit > 0 && ds_wtime() - t->t_created > s->time_limit) mine |= 4;
    if (s->stop_iteration > 0 && t->iteration >= s->stop_iteration) mine |= 8;
    int all = mine;
    if (t->size > 1) DS_MPI(MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_BOR, t->comm));
    *stop = all != 0;
    if (all & 1) *why = "a signal";
    else if (all & 2) *why = "the stop file";
    else if (all & 4) *why = "the time limit (train.time_limit)";
    else if (all & 8) *why = "train.stop_iteration";
    return DS_OK;
}

ds_status ds_trainer_run(ds_trainer *t, FILE *log, ds_eval_result *final, int *stopped)
{
    const ds_settings *s = &t->s;
    const int root = t->rank == 0;
    FILE *csv = NULL;
    ds_status rc = DS_OK;
    *stopped = 0;
    if (root) {
        DS_TRY(make_dirs(s->out_dir));
        char path[DS_PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/config.yaml", s->out_dir);
        FILE *cf = fopen(path, "w");
        DS_CHECK(cf != NULL, DS_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        rc = ds_settings_write_yaml(s, cf, 0);
        fclose(cf);
        DS_TRY(rc);
        DS_TRY(open_metrics(t, &csv));
        fprintf(log, "diffsamp: %s on %s (d = %d), %s, T = %d, batch %d on %d rank(s), %ld iterations, %zu parameters\n",
                ds_objective_name(s->objective), t->energy->vt->name, t->energy->dim, DS_REAL_NAME, s->T,
                s->batch_size, t->size, s->iterations, t->policy->arena.n);
        if (t->iteration > 0) fprintf(log, "resumed at iteration %ld from %s\n", t->iteration, t->resumed_from);
        fflush(log);
    }
    if (t->size > 1) DS_MPI(MPI_Barrier(t->comm));  /* the run folder exists before anyone writes into it */
    ds_eval_result last;
    memset(&last, 0, sizeof last);
    last.iteration = -1;
    double loss_acc = 0;
    long loss_n = 0;
    double t_window = ds_wtime();
    long it_window = t->iteration;
    while (t->iteration < s->iterations) {
        int stop = 0;
        const char *why = NULL;
        DS_TRY_GOTO(rc, stop_requested(t, &stop, &why), done);
        if (stop) {
            DS_TRY_GOTO(rc, ds_trainer_checkpoint(t), done);
            if (root) {
                fprintf(log, "stopped by %s at iteration %ld; checkpoint written to %s/checkpoint.h5 (exit code 3: "
                        "requeue and resume)\n", why, t->iteration, s->out_dir);
                fflush(log);
            }
            *stopped = 1;
            goto done;
        }
        double loss;
        DS_TRY_GOTO(rc, ds_trainer_step(t, &loss), done);
        loss_acc += loss;
        loss_n++;
        t->eval_loss_acc += loss;
        t->eval_loss_n++;
        const long it = t->iteration;
        int do_eval = (s->eval_every > 0 && it % s->eval_every == 0) || it == s->iterations;
        if (do_eval) {
            DS_TRY_GOTO(rc, ds_trainer_evaluate(t, 1, &last), done);
            last.loss = t->eval_loss_n ? t->eval_loss_acc / t->eval_loss_n : NAN;
            t->eval_loss_acc = 0;
            t->eval_loss_n = 0;
            DS_TRY_GOTO(rc, history_add(t, &last), done);
            if (root) write_csv_row(csv, t->hist + (t->nhist - 1) * NMETRIC);
        }
        if (root && (it % s->log_every == 0 || it == s->iterations)) {
            double now = ds_wtime();
            double rate = (it - it_window) / (now - t_window > 0 ? now - t_window : 1e-9);
            char eta[32];
            fmt_duration((s->iterations - it) / (rate > 0 ? rate : 1e-9), eta, sizeof eta);
            fprintf(log, "[it %ld/%ld] %.1f it/s  ETA %s  loss %.5g", it, s->iterations, rate, eta, loss_acc / loss_n);
            if (last.iteration >= 0)
                fprintf(log, "  | eval@%ld elbo %.4f log_z_is %.4f ess %.3f", last.iteration, last.elbo, last.log_z_is,
                        last.ess);
            fprintf(log, "\n");
            fflush(log);
            t_window = now;
            it_window = it;
            loss_acc = 0;
            loss_n = 0;
        }
        if (root && do_eval) print_eval(log, &last);
        if ((s->checkpoint_every > 0 && it % s->checkpoint_every == 0) || it == s->iterations)
            DS_TRY_GOTO(rc, ds_trainer_checkpoint(t), done);
    }
    if (t->iteration >= s->iterations) {
        char path[DS_PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/samples.h5", s->out_dir);
        DS_TRY_GOTO(rc, ds_trainer_write_samples(t, path, s->eval_samples, final), done);
        if (root) {
            fprintf(log, "samples: %s (%d samples)\n", path, s->eval_samples);
            fflush(log);
        }
        if (final && last.iteration >= 0) {
            /* keep the run's last evaluation (with the mean log-likelihood) */
            *final = last;
        }
    }
done:
    if (csv) fclose(csv);
    return rc;
}

/* ---------------------------------------------------------------- files */

static ds_status meta_of(const ds_trainer *t, char **yaml, ds_h5_meta *meta)
{
    DS_TRY(ds_settings_to_yaml(&t->s, yaml));
    meta->energy = t->energy->vt->name;
    meta->dim = t->energy->dim;
    meta->config_yaml = *yaml;
    return DS_OK;
}

ds_status ds_trainer_checkpoint(ds_trainer *t)
{
    const ds_settings *s = &t->s;
    char path[DS_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/checkpoint.h5", s->out_dir);
    char *yaml = NULL;
    ds_h5_meta unused;
    DS_TRY(meta_of(t, &yaml, &unused));
    ds_ckpt c;
    memset(&c, 0, sizeof c);
    c.meta.energy = t->energy->vt->name;
    c.meta.dim = t->energy->dim;
    c.meta.config_yaml = yaml;
    const ds_arena *a = &t->policy->arena;
    c.n_params = a->n;
    c.params = a->params;
    c.m = a->m;
    c.v = a->v;
    c.adam_step = t->adam.step;
    c.iteration = t->iteration;
    c.ls_step = t->last_ls.final_step;
    c.exploration = ds_exploration_std(s, t->iteration);
    c.rng_seed = s->seed;
    c.metrics_ncols = NMETRIC;
    c.metrics_columns = metric_columns;
    c.metrics_rows = t->nhist;
    c.metrics = t->hist;
    /* The rest of the run state, so that a resumed run is the same run. */
    ds_h5_metric extra[] = {{"eval_loss_acc", t->eval_loss_acc},
                            {"eval_loss_n", (double)t->eval_loss_n},
                            {"ls_acceptance", t->last_ls.acceptance},
                            {"ls_rounds", (double)t->ls_rounds},
                            {"exchanged", (double)t->exchanged}};
    c.nextra = (int)(sizeof extra / sizeof extra[0]);
    c.extra = extra;
    ds_real *bx[2] = {NULL, NULL}, *blr[2] = {NULL, NULL};
    ds_buffer *bufs[2] = {t->buf, t->buf_ls};
    const char *names[2] = {"buffer", "buffer_ls"};
    ds_status rc = DS_OK;
    for (int k = 0; k < 2; k++) {
        if (!bufs[k]) continue;
        size_t n = ds_buffer_size(bufs[k]);
        bx[k] = ds_calloc((n ? n : 1) * (size_t)t->energy->dim, sizeof(ds_real));
        blr[k] = ds_calloc(n ? n : 1, sizeof(ds_real));
        if (!bx[k] || !blr[k]) {
            rc = ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__, "out of memory exporting %s", names[k]);
            goto done;
        }
        if (n) DS_TRY_GOTO(rc, ds_buffer_export(bufs[k], bx[k], blr[k]), done);
        ds_ckpt_buffer *cb = &c.buffers[c.nbuffers++];
        cb->name = names[k];
        cb->capacity = (long)ds_buffer_capacity(bufs[k]);
        cb->n_local = n;
        cb->x = bx[k];
        cb->log_r = blr[k];
    }
    DS_TRY_GOTO(rc, ds_ckpt_write(t->comm, path, &c), done);
done:
    for (int k = 0; k < 2; k++) {
        ds_free(bx[k]);
        ds_free(blr[k]);
    }
    free(yaml);
    return rc;
}

static double extra_value(const ds_ckpt_data *d, const char *name, double fallback)
{
    for (int i = 0; i < d->nextra; i++)
        if (strcmp(d->extra_names[i], name) == 0) return d->extra_values[i];
    return fallback;
}

ds_status ds_trainer_resume(ds_trainer *t, const char *path)
{
    const ds_settings *s = &t->s;
    char want[DS_PATH_MAX + 32];
    if (!path || strcmp(path, "auto") == 0) {
        snprintf(want, sizeof want, "%s/checkpoint.h5", s->out_dir);
    } else {
        int n = snprintf(want, sizeof want, "%s", path);
        DS_CHECK(n > 0 && (size_t)n < sizeof want, DS_ERR_CONFIG, "checkpoint path too long");
    }
    ds_ckpt_expect ex = {t->energy->vt->name, t->energy->dim, t->policy->arena.n};
    ds_ckpt_data d;
    memset(&d, 0, sizeof d);
    char found[DS_PATH_MAX + 32], warning[2048];
    ds_status rc = ds_ckpt_find(t->comm, want, &ex, found, sizeof found, &d, warning, sizeof warning);
    if (rc != DS_OK) {
        ds_ckpt_data_free(&d);
        ds_error_trace(__FILE__, __LINE__, __func__);
        return rc;
    }
    if (t->rank == 0 && warning[0]) fprintf(stderr, "diffsamp: warning: %s\n", warning);
    ds_arena *a = &t->policy->arena;
    memcpy(a->params, d.params, sizeof(ds_real) * a->n);
    memcpy(a->m, d.m, sizeof(ds_real) * a->n);
    memcpy(a->v, d.v, sizeof(ds_real) * a->n);
    t->adam.step = d.adam_step;
    t->iteration = d.iteration;
    t->last_ls.final_step = d.ls_step;
    t->last_ls.acceptance = extra_value(&d, "ls_acceptance", NAN);
    t->ls_rounds = (long)extra_value(&d, "ls_rounds", 0);
    t->exchanged = (long)extra_value(&d, "exchanged", 0);
    t->eval_loss_acc = extra_value(&d, "eval_loss_acc", 0);
    t->eval_loss_n = (long)extra_value(&d, "eval_loss_n", 0);
    /* metrics history, by column name */
    t->nhist = 0;
    for (size_t r = 0; r < d.metrics_rows && rc == DS_OK; r++) {
        ds_eval_result dummy;
        memset(&dummy, 0, sizeof dummy);
        rc = history_add(t, &dummy);
        if (rc != DS_OK) break;
        double *row = t->hist + (t->nhist - 1) * NMETRIC;
        for (int c = 0; c < NMETRIC; c++) {
            row[c] = NAN;
            for (int k = 0; k < d.metrics_ncols; k++)
                if (strcmp(d.metrics_columns[k], metric_columns[c]) == 0) row[c] = d.metrics[r * d.metrics_ncols + k];
        }
    }
    /* buffers: this rank's even share of every saved shard */
    for (int k = 0; k < d.nbuffers && rc == DS_OK; k++) {
        ds_buffer *b = strcmp(d.buffers[k].name, "buffer") == 0 ? t->buf
                       : strcmp(d.buffers[k].name, "buffer_ls") == 0 ? t->buf_ls : NULL;
        if (!b) continue;  /* e.g. local search turned off on resume */
        rc = ds_buffer_import(b, d.buffers[k].n_local, d.buffers[k].x, d.buffers[k].log_r);
    }
    if (rc == DS_OK && t->rank == 0 && d.world_size != t->size)
        fprintf(stderr, "diffsamp: resuming a %d-rank checkpoint on %d ranks: the replay buffers were "
                "redistributed evenly\n", d.world_size, t->size);
    snprintf(t->resumed_from, sizeof t->resumed_from, "%s", found);
    ds_ckpt_data_free(&d);
    if (rc != DS_OK) ds_error_trace(__FILE__, __LINE__, __func__);
    return rc;
}

int ds_trainer_has_checkpoint(const ds_settings *s)
{
    char path[DS_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/checkpoint.h5", s->out_dir);
    if (access(path, F_OK) == 0) return 1;
    snprintf(path, sizeof path, "%s/checkpoint.h5.prev", s->out_dir);
    return access(path, F_OK) == 0;
}

ds_status ds_trainer_write_samples(ds_trainer *t, const char *path, long n_total, ds_eval_result *r)
{
    const ds_settings *s = &t->s;
    const int T = s->T, d = t->energy->dim, cap = t->B;
    DS_CHECK(n_total >= 1, DS_ERR_CONFIG, "the number of samples must be positive, got %ld", n_total);
    int n_local;
    long first;
    split(n_total, t->rank, t->size, &n_local, &first);
    double *lw = malloc(sizeof(double) * (size_t)(n_local > 0 ? n_local : 1));
    double *col = malloc(sizeof(double) * (size_t)cap * 4);
    DS_CHECK(lw && col, DS_ERR_NOMEM, "out of memory for %d sample weights", n_local);
    char *yaml = NULL;
    ds_h5_meta meta;
    ds_samples_writer *w = NULL;
    ds_status rc = meta_of(t, &yaml, &meta);
    if (rc == DS_OK) rc = ds_samples_open(t->comm, path, &meta, (size_t)n_total, &w);
    /* Every rank takes part in every append: the number of rounds is that of
     * the largest share. Samples use their own stream (iteration key far from
     * training's), so a sample set is a function of the model and the seed. */
    const long rounds = (n_total / t->size + (n_total % t->size ? 1 : 0) + cap - 1) / cap;
    double learned = 0;
    for (long k = 0; k < rounds && rc == DS_OK; k++) {
        long c0 = k * cap;
        int n = c0 < n_local ? (int)(n_local - c0 < cap ? n_local - c0 : cap) : 0;
        double *lr = col, *pf = col + cap, *pb = col + 2 * cap, *wt = col + 3 * cap;
        if (n > 0)
            rc = forward_chunk(t, n, first + c0, (uint64_t)t->iteration | (UINT64_C(1) << 31), wt, lr, pf, pb,
                               &learned);
        /* appends are collective: every rank must learn that one failed */
        int any = 0;
        ds_status arc = ds_dist_any(t->comm, rc != DS_OK, &any);
        if (rc == DS_OK && arc != DS_OK) rc = arc;
        if (rc == DS_OK && any)
            rc = ds_error_set(DS_ERR_NUMERIC, __FILE__, __LINE__, __func__,
                              "another rank failed while writing the sample set %s", path);
        if (rc != DS_OK) break;
        if (n > 0) {
            memcpy(lw + c0, wt, sizeof(double) * (size_t)n);
            rc = ds_samples_append(w, (size_t)n, t->tr.states + (size_t)T * n * d, lr, pf, pb, wt);
        } else {
            rc = ds_samples_append(w, 0, NULL, NULL, NULL, NULL, NULL);
        }
    }
    ds_eval_result res;
    memset(&res, 0, sizeof res);
    res.iteration = t->iteration;
    res.has_log_z = t->energy->has_log_z;
    res.log_z_true = t->energy->log_z;
    if (rc == DS_OK) rc = ds_dist_eval_weights(t->comm, lw, n_local, &res);
    if (rc == DS_OK && t->size > 1) rc = sum_doubles(t, &learned, 1);
    res.log_z_learned = !ds_objective_has(s->objective, DS_OBJF_LEARNS_LOG_Z) ? NAN : learned / n_total;
    res.mean_ll = NAN;
    res.modes = -1;
    if (rc == DS_OK) {
        ds_h5_metric m[8];
        int nm = 0;
        m[nm++] = (ds_h5_metric){"elbo", res.elbo};
        m[nm++] = (ds_h5_metric){"log_z_is", res.log_z_is};
        m[nm++] = (ds_h5_metric){"ess", res.ess};
        m[nm++] = (ds_h5_metric){"iteration", (double)t->iteration};
        if (!isnan(res.log_z_learned)) m[nm++] = (ds_h5_metric){"log_z_learned", res.log_z_learned};
        if (res.has_log_z) {
            m[nm++] = (ds_h5_metric){"log_z", res.log_z_true};
            m[nm++] = (ds_h5_metric){"delta_log_z", res.delta_log_z};
            m[nm++] = (ds_h5_metric){"delta_log_z_is", res.delta_log_z_is};
        }
        rc = ds_samples_close(&w, m, nm);
    } else {
        ds_samples_abort(&w);
    }
    if (r) *r = res;
    free(yaml);
    free(lw);
    free(col);
    if (rc != DS_OK) ds_error_trace(__FILE__, __LINE__, __func__);
    return rc;
}
