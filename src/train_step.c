/* train_step: one training iteration (forward or backward trajectories, the
 * objective, the gradient all-reduce, Adam, the local-search exchange). */
#define _POSIX_C_SOURCE 200809L
#include "train_impl.h"

#include "diffsamp/conditional.h"
#include "diffsamp/dist.h"
#include "diffsamp/mpicheck.h"
#include "diffsamp/objectives.h"
#include "diffsamp/rng.h"

#include <math.h>

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

/* The global loss: this rank's share summed over the ranks, refused when
 * not finite. */
static ds_status global_loss(ds_trainer *t, ds_objective kind, double local, double *total)
{
    *total = local;
    if (t->size > 1) {
        double t0 = MPI_Wtime();
        DS_MPI(MPI_Allreduce(&local, total, 1, MPI_DOUBLE, MPI_SUM, t->comm));
        t->t_mpi += MPI_Wtime() - t0;
    }
    DS_CHECK(isfinite(*total), DS_ERR_NUMERIC,
             "the %s loss is %g at iteration %ld; lower train.lr_policy or turn on sampler.clipping",
             ds_objective_name(kind), *total, t->iteration);
    return DS_OK;
}

/* The objective on the trajectories in t->tr, the chain rule into the
 * policy, the gradient all-reduce and the Adam step. */
static ds_status train_on_batch(ds_trainer *t, ds_objective kind, double *loss)
{
    const ds_settings *s = &t->s;
    const int T = s->T, B = t->B;
    ds_obj_input in = {.T = T, .B = B, .log_pf = t->tr.log_pf, .log_pb = t->tr.log_pb, .log_f = t->tr.log_f,
                       .subtb_lambda = s->subtb_lambda, .batch_norm = (double)s->batch_size};
    double vg = 0;
    double local = 0;
    if (t->cond && kind == DS_OBJ_VARGRAD) {
        /* conditional: the baseline of each condition's trajectories (train_cond.c) */
        DS_TRY(ds_cond_vargrad(&in, ds_cond_repeats(t), &local, t->d_log_pf, t->d_log_f));
    } else if (kind == DS_OBJ_VARGRAD) {
        ds_objective_log_weights(&in, t->lw);
        for (int b = 0; b < B; b++) vg += t->lw[b];
        if (t->size > 1) DS_MPI(MPI_Allreduce(MPI_IN_PLACE, &vg, 1, MPI_DOUBLE, MPI_SUM, t->comm));
        vg /= s->batch_size;
        in.vargrad_log_z = &vg;
    }
    if (!(t->cond && kind == DS_OBJ_VARGRAD)) DS_TRY(ds_objective_eval(kind, &in, &local, t->d_log_pf, t->d_log_f));
    double total;
    DS_TRY(global_loss(t, kind, local, &total));
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
    DS_TRY(ds_dist_exchange(t->comm, t->buf_ls, s->exchange_count, s->exchange_mode,
                            ds_rng_make(s->seed, DS_RNG_EXCHANGE), (uint64_t)it, &got));
    t->t_mpi += MPI_Wtime() - t0;
    t->exchanged += got;
    return DS_OK;
}

/* An on-policy iteration: the loss of reparametrised forward trajectories,
 * differentiated through the simulated path, then the same reduction and
 * Adam step as every objective. */
static ds_status train_on_policy(ds_trainer *t, double *loss)
{
    const ds_settings *s = &t->s;
    const long it = t->iteration;
    double local = 0;
    ds_arena_zero_grad(&t->policy->arena);
    DS_TRY(ds_onpolicy_loss_grad(t->onp, &t->tr, t->B, (double)s->batch_size, s->recompute_every,
                                 ds_rng_make(s->seed, DS_RNG_FORWARD), (uint64_t)it, (uint64_t)t->first, NULL, &local));
    double total;
    DS_TRY(global_loss(t, s->objective, local, &total));
    DS_TRY(reduce_and_update(t));
    *loss = total;
    return DS_OK;
}

/* A fresh learner (searcher.reinit_every): the network of a new seed, Adam
 * started over; the learned log Z keeps its value (SGDS keeps it across
 * re-initialisations). Every rank does the same, from the same seed. */
static ds_status reinit_learner(ds_trainer *t, long it)
{
    ds_policy *fresh = NULL;
    const uint64_t seed = t->s.seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(it / t->s.searcher_reinit_every));
    DS_TRY(ds_policy_create(&t->pc, t->s.T, t->s.T, seed, &fresh));
    ds_arena *a = &t->policy->arena;
    const ds_arena *b = &fresh->arena;
    ds_status rc = a->n == b->n ? DS_OK
                                : ds_error_set(DS_ERR_INVALID, __FILE__, __LINE__, __func__,
                                               "re-initialised policy has %zu parameters, expected %zu", b->n, a->n);
    if (rc == DS_OK) {
        size_t z0 = 0, z1 = 0; /* the log Z tensor's range, kept */
        if (t->policy->log_z >= 0) {
            const ds_tensor_info *ti = &a->tensors[t->policy->log_z];
            z0 = ti->offset;
            z1 = z0 + (size_t)ti->rows * (size_t)ti->cols;
        }
        for (size_t i = 0; i < a->n; i++) {
            if (i < z0 || i >= z1) a->params[i] = b->params[i];
            a->m[i] = a->v[i] = 0;
        }
        t->adam.step = 0;
    }
    ds_policy_destroy(&fresh);
    return rc;
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
             "forced failure of rank %d at iteration %ld (the test hook ds_trainer_set_fail_hook is set)", t->rank, it);
    if (ds_trainer_is_reinit_iteration(s, it)) DS_TRY(reinit_learner(t, it));
    if (t->onp) {
        DS_TRY(train_on_policy(t, loss));
    } else if (!ds_trainer_is_backward_iteration(s, it)) {
        /* Forward: on-policy plus exploration; terminal states feed the buffer. */
        if (t->cond) DS_TRY(ds_cond_draw(t, it));  /* conditional: this iteration's images */
        DS_TRY(ds_sim_forward(&t->sim, &t->tr, B, ds_exploration_std(s, it), ds_rng_make(s->seed, DS_RNG_FORWARD),
                              (uint64_t)it, (uint64_t)t->first, NULL));
        if (t->buf && t->cond) DS_TRY(ds_cond_buffer_add(t));  /* conditional: (image, z, log R) */
        else if (t->buf) DS_TRY(ds_buffer_add(t->buf, (size_t)B, t->tr.states + (size_t)T * B * d, t->tr.log_r));
        DS_TRY(train_on_batch(t, s->objective, loss));
    } else if (t->cond) {
        /* Backward, conditional: buffer entries carry their image (train_cond.c). */
        int did_ls = 0;
        DS_TRY(ds_cond_backward_batch(t, it, &did_ls));
        if (did_ls && t->size > 1 && s->exchange_every == 0) DS_TRY(exchange(t, it));
        DS_TRY(train_on_batch(t, s->backward, loss));
    } else {
        /* Backward: states from the buffer (or the local-search buffer), noised
         * by the reference process's backward kernel, trained with the
         * backward objective. */
        if (ds_trainer_is_searcher_iteration(s, it)) {
            /* the searcher's chains move on and feed the buffer training draws from */
            const int prev = ds_energy_set_purpose(t->energy, DS_ECALL_LS);
            const ds_status rc =
                ds_searcher_round(t->searcher, (uint64_t)it, ds_settings_search_buffer(s) ? t->buf_ls : t->buf,
                                  &t->last_search);
            ds_energy_set_purpose(t->energy, prev);
            DS_TRY(rc);
        }
        if (ds_trainer_is_local_search_iteration(s, it)) {
            DS_TRY(ds_buffer_sample(t->buf, ds_rng_make(s->seed, DS_RNG_BUFFER), (uint64_t)it,
                                    (uint64_t)(t->first + s->batch_size), B, t->bx, t->blr));
            /* carry_step: go on from the step the previous round adapted to (restored on resume) */
            if (s->ls_carry_step && t->ls_rounds > 0) t->lsp.step = t->last_ls.final_step;
            const int prev = ds_energy_set_purpose(t->energy, DS_ECALL_LS);
            const ds_status rc = ds_ls_run(t->energy, &t->lsp, ds_rng_make(s->seed, DS_RNG_LOCAL_SEARCH),
                                           (uint64_t)it, (uint64_t)t->first, B, t->bx, t->buf_ls, &t->last_ls);
            ds_energy_set_purpose(t->energy, prev);
            DS_TRY(rc);
            t->ls_rounds++;
            if (t->size > 1 && s->exchange_every == 0) DS_TRY(exchange(t, it));
        }
        ds_buffer *src = ds_settings_search_buffer(s) ? t->buf_ls : t->buf;
        DS_CHECK(ds_buffer_size(src) > 0, DS_ERR_INVALID,
                 "the %s buffer is empty at iteration %ld (%s)",
                 s->ls_enabled ? "local-search" : src == t->buf_ls ? "searcher" : "replay", it,
                 s->ls_enabled ? "local search added nothing: check local_search.burn_in < local_search.max_iter and "
                                 "the step size"
                 : src == t->buf_ls ? "no searcher round has run since the buffer was emptied: a run resumed with "
                                      "searcher.own_buffer turned on starts it empty; check searcher.every"
                                    : "no forward iteration has filled it");
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
