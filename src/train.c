/* train: creation of the trainer, its getters and the both-ways schedule (the
 * rest of the module: train_step.c, train_eval.c, train_run.c, train_state.c). */
#define _POSIX_C_SOURCE 200809L
#include "train_impl.h"

#include "diffsamp/mpicheck.h"
#include "diffsamp/rng.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

void ds_trainer_split(long total, int rank, int size, int *n, long *first)
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
    ds_trainer_split(s->batch_size, t->rank, t->size, &t->B, &t->first);
    DS_TRY_GOTO(rc, ds_energy_create(s->energy_name, s->energy_dim, &s->energy_args, &t->energy), fail);
    if (t->energy->vt->cond_dim > 0) DS_TRY_GOTO(rc, ds_cond_setup(t), fail);  /* conditional: train_cond.c */
    const int d = t->energy->dim, T = s->T;
    ds_policy_config pc = {
        .dim = d, .hidden = s->hidden, .harmonics = s->harmonics, .joint_layers = s->joint_layers,
        .lgv_layers = s->lgv_layers, .langevin = s->langevin, .lgv_per_dim = s->lgv_per_dimension,
        .learned_variance = s->learned_variance, .clipping = s->clipping, .zero_init = s->zero_init,
        .conditional_flow = s->conditional_flow, .log_var_range = s->log_var_range,
        .lgv_clip = s->lgv_clip, .gfn_clip = s->gfn_clip,
        .cond_dim = t->energy->vt->cond_dim, .cond_layers = t->energy->vt->cond_dim > 0 ? s->cond_layers : 0};
    /* The policy holds one pass of T x B rows; an on-policy run that
     * recomputes segments of k steps needs only k x B (and evaluates in
     * chunks that fit). */
    const int onpolicy = ds_objective_has(s->objective, DS_OBJF_ON_POLICY);
    const int k = onpolicy && s->recompute_every > 0 && s->recompute_every < T ? s->recompute_every : T;
    const long long rows_ll = (long long)k * t->B > T ? (long long)k * t->B : T;
    if (rows_ll > INT_MAX) {
        rc = ds_error_set(DS_ERR_CONFIG, __FILE__, __LINE__, __func__,
                          "a pass of %d steps x %d trajectories (%lld rows) is too large for one rank: use more ranks, "
                          "a smaller train.batch_size or objective.recompute_every", k, t->B, rows_ll);
        goto fail;
    }
    const int rows = (int)rows_ll;
    t->chunk = rows / T < t->B ? rows / T : t->B;
    DS_TRY_GOTO(rc, ds_policy_create(&pc, T, rows, s->seed, &t->policy), fail);
    if (t->cond) DS_TRY_GOTO(rc, ds_cond_check(t), fail);
    t->pc = pc;
    ds_adam_init(&t->adam, s->lr_policy, s->lr_flow);
    switch (ds_objective_info_of(s->objective)->reference) {
    case DS_REF_VP: rc = ds_reference_init_vp(&t->ref, T, s->t_scale, s->beta_min, s->beta_max); break;
    case DS_REF_VP_EM: rc = ds_reference_init_vp_em(&t->ref, T, s->t_scale, s->beta_min, s->beta_max); break;
    default: rc = ds_reference_init_brownian(&t->ref, T, s->t_scale); break;
    }
    DS_TRY_GOTO(rc, rc, fail);
    t->sim = (ds_sim){.policy = t->policy, .energy = t->energy, .ref = &t->ref, .partial_energy = s->partial_energy};
    if (onpolicy) {
        DS_TRY_GOTO(rc, ds_onpolicy_create(&t->sim, t->B, s->lp_through_grad, &t->onp), fail);
        if (t->rank == 0 && ds_onpolicy_uses_fd_hvp(t->onp))
            fprintf(stderr, "note: energy '%s' has no Hessian-vector product: LP's grad log R is differentiated by "
                            "central differences of its gradient\n", t->energy->vt->name);
    }
    DS_TRY_GOTO(rc, ds_traj_init(&t->tr, T, t->B, d, s->langevin, s->partial_energy, onpolicy), fail);
    t->d_log_pf = ds_calloc((size_t)T * t->B, sizeof(ds_real));
    t->d_log_f = ds_calloc((size_t)(T + 1) * t->B, sizeof(ds_real));
    t->lw = ds_calloc((size_t)t->B, sizeof(double));
    long f;
    ds_trainer_split(s->eval_samples, t->rank, t->size, &t->n_eval, &f);
    t->eval_first = (int)f;
    t->eval_x = ds_calloc((size_t)(t->n_eval > 0 ? t->n_eval : 1) * d, sizeof(ds_real));
    if (!t->d_log_pf || !t->d_log_f || !t->lw || !t->eval_x) {
        rc = ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__, "out of memory for the trainer");
        goto fail;
    }
    if (s->eval_gt_samples > 0 && ds_energy_has_sampler(t->energy)) {
        ds_trainer_split(s->eval_gt_samples, t->rank, t->size, &t->n_gt, &f);
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
    /* local search implies both ways, as in the reference; so does the searcher */
    t->both_ways = s->both_ways || s->ls_enabled || s->searcher_enabled;
    if (t->both_ways) {
        /* The buffer capacity is split over the ranks: each keeps what it produced. */
        size_t cap = (size_t)((s->replay_capacity + t->size - 1) / t->size);
        const int bw = t->cond ? d + 1 : d;  /* conditional: rows [z, image index] (train_cond.c) */
        DS_TRY_GOTO(rc, ds_buffer_create(cap, bw, s->replay_priority, s->replay_beta, s->replay_rank_weight, &t->buf),
                    fail);
        if (ds_settings_search_buffer(s))
            DS_TRY_GOTO(rc, ds_buffer_create(cap, bw, s->replay_priority, s->replay_beta, s->replay_rank_weight,
                                             &t->buf_ls), fail);
        t->bx = ds_calloc((size_t)t->B * bw, sizeof(ds_real));
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
    t->lsp.store_states = s->ls_store_states;
    t->lsp.reduce = ls_reduce;
    t->lsp.reduce_ctx = t;
    t->last_ls.final_step = s->ls_step;
    t->last_ls.acceptance = NAN;
    if (s->ls_enabled) DS_TRY_GOTO(rc, ds_ls_params_check(&t->lsp), fail);
    if (s->searcher_enabled) {
        ds_searcher_config sc = {.chains = s->searcher_chains, .steps = s->searcher_steps, .keep = s->searcher_keep,
                                 .step = s->searcher_step, .target_acceptance = s->searcher_target_acceptance,
                                 .adapt_up = s->ls_adapt_up, .adapt_down = s->ls_adapt_down,
                                 .init_var = s->searcher_init_var, .smc_levels = s->searcher_smc_levels,
                                 .seed = s->seed};
        const int prev = ds_energy_set_purpose(t->energy, DS_ECALL_LS); /* the SMC start is search */
        rc = ds_searcher_create(comm, t->energy, &sc, &t->searcher);
        ds_energy_set_purpose(t->energy, prev);
        DS_TRY_GOTO(rc, rc, fail);
    }
    t->last_search.acceptance = NAN;
    t->fail_iteration = -1; /* the test hook is off (ds_trainer_set_fail_hook) */
    ds_metrics_history_init(&t->hist, ds_metrics_columns, ds_metrics_ncolumns);
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
    ds_onpolicy_destroy(&t->onp);
    ds_reference_free(&t->ref);
    ds_policy_destroy(&t->policy);
    ds_energy_destroy(&t->energy);
    ds_cond_free(t);
    DS_FREE(t->d_log_pf);
    DS_FREE(t->d_log_f);
    DS_FREE(t->lw);
    DS_FREE(t->eval_x);
    DS_FREE(t->gt_x);
    DS_FREE(t->gt_lw);
    ds_buffer_destroy(&t->buf);
    ds_buffer_destroy(&t->buf_ls);
    ds_searcher_destroy(&t->searcher);
    ds_metrics_history_free(&t->hist);
    DS_FREE(t->bx);
    DS_FREE(t->blr);
    free(t);
    *tp = NULL;
}

long ds_trainer_iteration(const ds_trainer *t) { return t->iteration; }
ds_policy *ds_trainer_policy(ds_trainer *t) { return t->policy; }
const ds_energy *ds_trainer_energy(const ds_trainer *t) { return t->energy; }

void ds_trainer_set_fail_hook(ds_trainer *t, int rank, long iteration)
{
    t->fail_iteration = rank >= 0 && rank == t->rank ? iteration : -1;
}

int ds_trainer_is_backward_iteration(const ds_settings *s, long it)
{
    return (s->both_ways || s->ls_enabled || s->searcher_enabled) && it % 2 == 1;
}

int ds_trainer_is_local_search_iteration(const ds_settings *s, long it)
{
    return s->ls_enabled && it % s->ls_cycle == 1;
}

/* What the run does that its settings alone do not say, as YAML comment
 * lines for <run>/config.yaml and the files' config attribute; "" if none. */
const char *ds_trainer_notes(const ds_trainer *t)
{
    if (t->onp && ds_onpolicy_uses_fd_hvp(t->onp))
        return "# note: the energy has no Hessian-vector product; LP's grad log R is differentiated by central\n"
               "# differences of its gradient (objective.lp_through_grad: true)\n";
    return "";
}

int ds_trainer_is_searcher_iteration(const ds_settings *s, long it)
{
    return s->searcher_enabled && it % 2 == 1 && ((it - 1) / 2) % s->searcher_every == 0;
}

int ds_settings_search_buffer(const ds_settings *s)
{
    return s->ls_enabled || (s->searcher_enabled && s->searcher_own_buffer);
}

int ds_trainer_is_reinit_iteration(const ds_settings *s, long it)
{
    return s->searcher_enabled && s->searcher_reinit_every > 0 && it > 0 && it % s->searcher_reinit_every == 0;
}

ds_status ds_trainer_meta(const ds_trainer *t, char **yaml, ds_h5_meta *meta)
{
    DS_TRY(ds_settings_to_yaml(&t->s, yaml));
    const char *notes = ds_trainer_notes(t);
    if (notes[0]) {
        const size_t a = strlen(*yaml), b = strlen(notes);
        char *y = realloc(*yaml, a + b + 1);
        DS_CHECK(y != NULL, DS_ERR_NOMEM, "out of memory for the run's configuration");
        memcpy(y + a, notes, b + 1);
        *yaml = y;
    }
    meta->energy = t->energy->vt->name;
    meta->dim = t->energy->dim;
    meta->config_yaml = *yaml;
    return DS_OK;
}
