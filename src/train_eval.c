/* train_eval: evaluation of the sampler (ELBO, log Z_IS, ESS, modes, the
 * log-likelihood of true samples) and sample sets. */
#define _POSIX_C_SOURCE 200809L
#include "train_impl.h"

#include "diffsamp/dist.h"
#include "diffsamp/modes.h"
#include "diffsamp/mpicheck.h"
#include "diffsamp/objectives.h"
#include "diffsamp/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


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
 * indices first.., on the stream of `purpose` at the current iteration;
 * per-sample sums go to the arrays that are not NULL, and sum log F_0 is
 * added to *learned. */
static ds_status forward_chunk(ds_trainer *t, ds_rng_purpose purpose, int n, long first, double *log_w,
                               double *log_r, double *log_pf, double *log_pb, double *learned)
{
    const int T = t->s.T;
    DS_TRY(ds_sim_forward(&t->sim, &t->tr, n, 0.0, ds_rng_make(t->s.seed, purpose), (uint64_t)t->iteration,
                          (uint64_t)first, NULL));
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

static ds_status evaluate(ds_trainer *t, int with_ground_truth, ds_eval_result *r);

/* The per-mode diagnostic of the evaluation samples (modes.h): counts on
 * each rank, summed, then the distances. log_w: this rank's log-weights.
 * Collective; no energy calls. */
static ds_status mode_weights(ds_trainer *t, const double *log_w, ds_modes_result *out)
{
    ds_modes_result_clear(out);
    const ds_modes_kind kind = ds_modes_kind_of(t->energy);
    if (kind == DS_MODES_NONE) return DS_OK;
    const int d = t->energy->dim;
    int per_axis = 0, m;
    double spacing = 0;
    if (kind == DS_MODES_WELLS) m = d / 2 + 2 * (d / 2 + 1);  /* right[pairs], hist, whist */
    else {
        ds_energy_mode_grid(t->energy, &per_axis, &spacing);
        m = per_axis * per_axis;
    }
    double *c = calloc((size_t)m, sizeof *c);
    DS_ALLOC_CHECK(c);
    ds_status rc = DS_OK;
    if (kind == DS_MODES_WELLS) {
        double shift = -INFINITY;
        for (int i = 0; i < t->n_eval; i++)
            if (log_w[i] > shift) shift = log_w[i];
        if (t->size > 1) DS_MPI_GOTO(rc, done, MPI_Allreduce(MPI_IN_PLACE, &shift, 1, MPI_DOUBLE, MPI_MAX, t->comm));
        const int pairs = d / 2;
        /* a NaN or infinite maximum leaves the weighted histogram empty (NaN distance) */
        ds_modes_wells_counts(t->eval_x, t->n_eval, d, isfinite(shift) ? log_w : NULL, shift, c, c + pairs,
                              c + 2 * pairs + 1);
        if (t->size > 1) DS_MPI_GOTO(rc, done, MPI_Allreduce(MPI_IN_PLACE, c, m, MPI_DOUBLE, MPI_SUM, t->comm));
        ds_modes_wells_finish(d, t->s.eval_samples, c, c + pairs, c + 2 * pairs + 1, out);
    } else {
        ds_modes_grid_counts(t->eval_x, t->n_eval, per_axis, spacing, c);
        if (t->size > 1) DS_MPI_GOTO(rc, done, MPI_Allreduce(MPI_IN_PLACE, c, m, MPI_DOUBLE, MPI_SUM, t->comm));
        ds_modes_grid_finish(per_axis, c, out);
    }
done:
    free(c);
    return rc;
}

ds_status ds_trainer_energy_calls(ds_trainer *t, double v[DS_NCALLS])
{
    const ds_energy_calls *c = t->energy->calls;
    for (int p = 0; p < DS_ECALL_NPURPOSE; p++) {
        v[p] = c->value[p];
        v[DS_ECALL_NPURPOSE + p] = c->grad[p];
        v[2 * DS_ECALL_NPURPOSE + p] = c->hvp[p];
    }
    if (t->size > 1) DS_MPI(MPI_Allreduce(MPI_IN_PLACE, v, DS_NCALLS, MPI_DOUBLE, MPI_SUM, t->comm));
    return DS_OK;
}

/* The energy evaluations of every rank so far, into r. Collective. */
static ds_status energy_calls_into(ds_trainer *t, ds_eval_result *r)
{
    double v[DS_NCALLS];
    DS_TRY(ds_trainer_energy_calls(t, v));
    r->energy_hvp = 0;
    for (int p = 0; p < DS_ECALL_NPURPOSE; p++) {
        r->energy_value[p] = v[p];
        r->energy_grad[p] = v[DS_ECALL_NPURPOSE + p];
        r->energy_hvp += v[2 * DS_ECALL_NPURPOSE + p];
    }
    return DS_OK;
}

/* Evaluation counts its energy calls as such, whatever the caller's purpose. */
ds_status ds_trainer_evaluate(ds_trainer *t, int with_ground_truth, ds_eval_result *r)
{
    const int prev = ds_energy_set_purpose(t->energy, DS_ECALL_EVAL);
    ds_status rc = evaluate(t, with_ground_truth, r);
    ds_energy_set_purpose(t->energy, prev);
    DS_TRY(rc);
    DS_TRY(energy_calls_into(t, r));
    return DS_OK;
}

/* What every evaluation reports besides its samples' metrics. */
static ds_status finish(ds_trainer *t, ds_eval_result *r)
{
    const ds_settings *s = &t->s;
    r->ls_acceptance = s->ls_enabled && t->ls_rounds > 0 ? t->last_ls.acceptance : NAN;
    r->ls_step = s->ls_enabled && t->ls_rounds > 0 ? t->last_ls.final_step : NAN;
    long sizes[2] = {t->buf ? (long)ds_buffer_size(t->buf) : 0, t->buf_ls ? (long)ds_buffer_size(t->buf_ls) : 0};
    if (t->size > 1) DS_MPI(MPI_Allreduce(MPI_IN_PLACE, sizes, 2, MPI_LONG, MPI_SUM, t->comm));
    r->buffer_size = sizes[0];
    r->buffer_ls_size = sizes[1];
    r->seconds = ds_trainer_elapsed(t);
    return DS_OK;
}

static ds_status evaluate(ds_trainer *t, int with_ground_truth, ds_eval_result *r)
{
    const ds_settings *s = &t->s;
    const int T = s->T, d = t->energy->dim, cap = t->chunk;
    memset(r, 0, sizeof *r);
    r->iteration = t->iteration;
    r->has_log_z = t->energy->has_log_z;
    r->log_z_true = t->energy->log_z;
    r->mean_ll = NAN;
    r->modes = -1;
    r->log_z_rw = NAN;
    if (t->cond) {  /* conditional: per-image metrics on the evaluation images (train_cond.c) */
        DS_TRY(ds_cond_evaluate(t, r));
        return finish(t, r);
    }
    double learned = 0;
    /* Forward samples without exploration, in chunks of the training batch. */
    double *mine = malloc(sizeof(double) * (size_t)(t->n_eval > 0 ? t->n_eval : 1));
    DS_ALLOC_CHECK(mine);
    ds_status rc = DS_OK;
    for (int c0 = 0; c0 < t->n_eval && rc == DS_OK; c0 += cap) {
        int n = t->n_eval - c0 < cap ? t->n_eval - c0 : cap;
        rc = forward_chunk(t, DS_RNG_EVAL, n, t->eval_first + c0, mine + c0, NULL, NULL, NULL, &learned);
        if (rc == DS_OK)
            memcpy(t->eval_x + (size_t)c0 * d, t->tr.states + (size_t)T * n * d, sizeof(ds_real) * (size_t)n * d);
    }
    if (rc == DS_OK) rc = ds_dist_eval_weights(t->comm, mine, t->n_eval, r);
    if (rc == DS_OK) rc = mode_weights(t, mine, &r->mode_weights);
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
            if (!mine2 || !all2 || !allx) {
                free(mine2);
                free(all2);
                free(allx);
                return ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__, "out of memory for the mode count");
            }
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
    return finish(t, r);
}

static ds_status write_samples(ds_trainer *t, const char *path, long n_total, ds_eval_result *r);

ds_status ds_trainer_write_samples(ds_trainer *t, const char *path, long n_total, ds_eval_result *r)
{
    const int prev = ds_energy_set_purpose(t->energy, DS_ECALL_EVAL);
    /* conditional: condition.eval_repeats samples of every evaluation image */
    ds_status rc = t->cond ? ds_cond_write_samples(t, path, r) : write_samples(t, path, n_total, r);
    ds_energy_set_purpose(t->energy, prev);
    ds_eval_result unused;
    if (rc == DS_OK) rc = energy_calls_into(t, r ? r : &unused);
    return rc;
}

static ds_status write_samples(ds_trainer *t, const char *path, long n_total, ds_eval_result *r)
{
    const ds_settings *s = &t->s;
    const int T = s->T, d = t->energy->dim, cap = t->chunk;
    DS_CHECK(n_total >= 1, DS_ERR_CONFIG, "the number of samples must be positive, got %ld", n_total);
    int n_local;
    long first;
    ds_trainer_split(n_total, t->rank, t->size, &n_local, &first);
    double *lw = malloc(sizeof(double) * (size_t)(n_local > 0 ? n_local : 1));
    double *col = malloc(sizeof(double) * (size_t)cap * 4);
    DS_CHECK(lw && col, DS_ERR_NOMEM, "out of memory for %d sample weights", n_local);
    char *yaml = NULL;
    ds_h5_meta meta;
    ds_samples_writer *w = NULL;
    ds_status rc = ds_trainer_meta(t, &yaml, &meta);
    if (rc == DS_OK) rc = ds_samples_open(t->comm, path, &meta, (size_t)n_total, &w);
    /* Every rank takes part in every append: the number of rounds is that of
     * the largest share. Samples use their own stream (DS_RNG_SAMPLES), so a
     * sample set is a function of the model, the iteration and the seed. */
    const long rounds = (n_total / t->size + (n_total % t->size ? 1 : 0) + cap - 1) / cap;
    double learned = 0;
    for (long k = 0; k < rounds && rc == DS_OK; k++) {
        long c0 = k * cap;
        int n = c0 < n_local ? (int)(n_local - c0 < cap ? n_local - c0 : cap) : 0;
        double *lr = col, *pf = col + cap, *pb = col + 2 * cap, *wt = col + 3 * cap;
        if (n > 0)
            rc = forward_chunk(t, DS_RNG_SAMPLES, n, first + c0, wt, lr, pf, pb, &learned);
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
    ds_modes_result_clear(&res.mode_weights);
    res.log_z_rw = NAN;  /* conditional runs only */
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
