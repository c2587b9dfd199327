/* train_cond: the trainer's conditional path (energies with cond_dim > 0,
 * e.g. the VAE posterior p(z | x); conditional.h). Each iteration draws
 * batch_size / K training images as conditions (K = condition.repeats; the
 * draw of condition j at iteration i is uniform over the training images,
 * from the counter-based stream at (i, j), so it does not depend on the
 * number of ranks), gives each K trajectories and trains TB (log Z(x) from
 * the policy's flow network) or VarGrad with the baseline of each condition.
 * Conditions are split over the ranks whole, so a condition's K
 * trajectories and its baseline are on one rank. Evaluation draws
 * condition.eval_repeats forward samples for each evaluation image. */
#define _POSIX_C_SOURCE 200809L
#include "train_impl.h"

#include "diffsamp/conditional.h"
#include "diffsamp/dist.h"
#include "diffsamp/eval.h"
#include "diffsamp/idx.h"
#include "diffsamp/modes.h"
#include "diffsamp/mpicheck.h"
#include "diffsamp/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct ds_cond_state {
    int C, K;            /* condition size, trajectories per training condition */
    int n_cond;          /* this rank's training conditions per iteration */
    long cond_first;     /* global index of the first */
    ds_real *train;      /* (ntrain, C) training images */
    ds_real *eval;       /* (neval, C) evaluation images */
    size_t ntrain, neval;
    int n_img, img_first;/* this rank's evaluation images */
    ds_real *rows;       /* (B, C) the condition of each trajectory of the current pass */
    int32_t *idx;        /* (B) its image index: in condition.images (training passes, buffers) or in the
                          * evaluation file (evaluation passes) */
    double *lw;          /* (B) */
    ds_real *z, *lr;     /* (B, d), (B): terminal states and log R of a backward batch */
    ds_real *brow;       /* (B, d + 1): buffer rows [z, image index] */
};

ds_status ds_cond_vargrad(const ds_obj_input *in, int K, double *loss, ds_real *d_log_pf, ds_real *d_log_f)
{
    const int T = in->T, B = in->B;
    DS_CHECK(K >= 1 && B % K == 0, DS_ERR_INVALID, "conditional VarGrad: batch %d is not a multiple of K = %d", B, K);
    const double norm = in->batch_norm > 0 ? in->batch_norm : (double)B;
    double acc = 0;
    for (int c0 = 0; c0 < B; c0 += K) {
        double lw[64], *w = lw;
        double *heap = NULL;
        if (K > 64) {
            heap = malloc(sizeof(double) * (size_t)K);
            DS_ALLOC_CHECK(heap);
            w = heap;
        }
        double mean = 0;
        for (int k = 0; k < K; k++) {
            const int b = c0 + k;
            double v = (double)in->log_f[(size_t)T * B + b];
            for (int i = 0; i < T; i++)
                v += (double)in->log_pb[(size_t)i * B + b] - (double)in->log_pf[(size_t)i * B + b];
            w[k] = v;
            mean += v;
        }
        mean /= K;
        for (int k = 0; k < K; k++) {
            const double delta = mean - w[k];
            acc += 0.5 * delta * delta;
            for (int i = 0; i < T; i++) d_log_pf[(size_t)i * B + c0 + k] = (ds_real)(delta / norm);
        }
        free(heap);
    }
    memset(d_log_f, 0, sizeof(ds_real) * (size_t)(T + 1) * B);
    *loss = acc / norm;
    return DS_OK;
}

void ds_cond_image_metrics(const double *lw, int n_img, int K, double *sum_elbo, double *sum_is, double *sum_ess,
                           double *lse_max, double *lse_sum)
{
    ds_lse all;
    ds_lse_init(&all);
    double se = 0, si = 0, sess = 0;
    for (int i = 0; i < n_img; i++) {
        const double *v = lw + (size_t)i * K;
        double m = 0;
        ds_lse w, w2; /* log sum w and log sum w^2 of this image's weights */
        ds_lse_init(&w);
        ds_lse_init(&w2);
        for (int k = 0; k < K; k++) {
            m += v[k];
            ds_lse_add(&all, v[k]);
            ds_lse_add(&w, v[k]);
            ds_lse_add(&w2, 2 * v[k]);
        }
        se += m / K;
        si += ds_lse_value(&w) - log((double)K);
        /* (sum w)^2 / (K sum w^2) with w = exp(lw - max): both sums are scaled by
         * the same max (w2's is twice w's); NaN for a NaN weight or none finite */
        sess += isfinite(w.max) ? w.sum * w.sum / (K * w2.sum) : NAN;
    }
    *sum_elbo = se;
    *sum_is = si;
    *sum_ess = sess;
    *lse_max = all.max;
    *lse_sum = all.sum;
}

const char *ds_cond_eval_file(const ds_settings *s)
{
    return s->cond_eval_images[0] ? s->cond_eval_images : s->cond_images;
}

/* Images first .. first + count - 1 of the idx file path, as the energy's conditions. */
static ds_status read_conditions(const ds_trainer *t, const char *path, long first, long count, ds_real **rows,
                                 size_t *n)
{
    size_t w = 0;
    DS_TRY(ds_idx_read_images(path, (size_t)first, (size_t)count, rows, n, &w));
    DS_CHECK(w == (size_t)t->energy->vt->cond_dim, DS_ERR_CONFIG,
             "%s: images of %zu pixels; energy '%s' takes conditions of %d", path, w, t->energy->vt->name,
             t->energy->vt->cond_dim);
    return DS_OK;
}

ds_status ds_cond_setup(ds_trainer *t)
{
    const ds_settings *s = &t->s;
    DS_CHECK(!s->searcher_enabled, DS_ERR_CONFIG,
             "searcher.enabled is not available for conditional energies (%s: its chains would need an image each); "
             "use local_search.enabled for a conditional target", t->energy->vt->name);
    struct ds_cond_state *q = calloc(1, sizeof *q);
    DS_ALLOC_CHECK(q);
    t->cond = q;
    q->C = t->energy->vt->cond_dim;
    q->K = s->cond_repeats;
    const long nc = s->batch_size / q->K;
    DS_CHECK(nc >= t->size, DS_ERR_CONFIG,
             "train.batch_size / condition.repeats = %ld conditions per iteration; each of the %d ranks needs one", nc,
             t->size);
    ds_trainer_split(nc, t->rank, t->size, &q->n_cond, &q->cond_first);
    t->B = q->n_cond * q->K;
    t->first = q->cond_first * q->K;
    /* condition.train_count 0 (diffsamp sample --images): evaluation images only, for sampling */
    if (s->cond_train_count > 0)
        DS_TRY(read_conditions(t, s->cond_images, s->cond_train_first, s->cond_train_count, &q->train, &q->ntrain));
    DS_TRY(read_conditions(t, ds_cond_eval_file(s), s->cond_eval_first, s->cond_eval_count, &q->eval, &q->neval));
    long f;
    ds_trainer_split(s->cond_eval_count, t->rank, t->size, &q->n_img, &f);
    q->img_first = (int)f;
    q->rows = ds_calloc((size_t)t->B * q->C, sizeof(ds_real));
    q->idx = ds_calloc((size_t)t->B, sizeof(int32_t));
    q->lw = ds_calloc((size_t)t->B, sizeof(double));
    const size_t d = (size_t)t->energy->dim;
    q->z = ds_calloc((size_t)t->B * d, sizeof(ds_real));
    q->lr = ds_calloc((size_t)t->B, sizeof(ds_real));
    q->brow = ds_calloc((size_t)t->B * (d + 1), sizeof(ds_real));
    DS_CHECK(q->rows && q->idx && q->lw && q->z && q->lr && q->brow, DS_ERR_NOMEM, "out of memory for the conditions of %d trajectories", t->B);
    t->sim.cond = NULL;
    return DS_OK;
}

ds_status ds_cond_check(ds_trainer *t)
{
    DS_CHECK(t->s.cond_eval_repeats <= t->chunk, DS_ERR_CONFIG,
             "condition.eval_repeats (%d; -n of diffsamp sample) exceeds the %d trajectories of one pass on a rank: "
             "ask for at most %d samples per image, or train with a larger train.batch_size or fewer ranks",
             t->s.cond_eval_repeats, t->chunk, t->chunk);
    return DS_OK;
}

void ds_cond_free(ds_trainer *t)
{
    struct ds_cond_state *q = t->cond;
    if (!q) return;
    ds_free(q->train);
    ds_free(q->eval);
    ds_free(q->rows);
    ds_free(q->idx);
    ds_free(q->lw);
    ds_free(q->z);
    ds_free(q->lr);
    ds_free(q->brow);
    free(q);
    t->cond = NULL;
}

ds_status ds_cond_draw(ds_trainer *t, long it)
{
    struct ds_cond_state *q = t->cond;
    DS_CHECK(q->ntrain > 0, DS_ERR_INVALID, "a trainer made for sampling only (no training images) cannot train");
    const ds_rng r = ds_rng_make(t->s.seed, DS_RNG_CONDITION);
    for (int c = 0; c < q->n_cond; c++) {
        double u;
        ds_rng_uniform_d(r, (uint64_t)it, (uint64_t)(q->cond_first + c), 0, 1, &u);
        size_t img = (size_t)(u * (double)q->ntrain);
        if (img >= q->ntrain) img = q->ntrain - 1;
        for (int k = 0; k < q->K; k++) {
            const int b = c * q->K + k;
            memcpy(q->rows + (size_t)b * q->C, q->train + img * q->C, sizeof(ds_real) * (size_t)q->C);
            q->idx[b] = (int32_t)(t->s.cond_train_first + (long)img);
        }
    }
    t->sim.cond = q->rows;
    return DS_OK;
}

int ds_cond_repeats(const ds_trainer *t) { return t->cond ? t->cond->K : 1; }

/* The training image of condition index idx (an index of condition.images):
 * buffer rows hold training conditions only (ds_cond_buffer_add, and local
 * search and the exchange pass them on). */
static const ds_real *image_of(const ds_trainer *t, int32_t idx)
{
    const struct ds_cond_state *q = t->cond;
    const long tr = (long)idx - t->s.cond_train_first;
    return tr >= 0 && tr < (long)q->ntrain ? q->train + (size_t)tr * q->C : NULL;
}

ds_status ds_cond_buffer_add(ds_trainer *t)
{
    struct ds_cond_state *q = t->cond;
    const int T = t->s.T, B = t->B, d = t->energy->dim, K = q->K;
    const ds_real *xT = t->tr.states + (size_t)T * B * d;
    /* gfn-diffusion's VAE buffer: each condition's best of its K trajectories */
    for (int c = 0; c < q->n_cond; c++) {
        int best = c * K;
        for (int k = 1; k < K; k++)
            if (t->tr.log_r[c * K + k] > t->tr.log_r[best]) best = c * K + k;
        memcpy(q->brow + (size_t)c * (d + 1), xT + (size_t)best * d, sizeof(ds_real) * (size_t)d);
        q->brow[(size_t)c * (d + 1) + d] = (ds_real)q->idx[best];
        q->lr[c] = t->tr.log_r[best];
    }
    DS_TRY(ds_buffer_add(t->buf, (size_t)q->n_cond, q->brow, q->lr));
    return DS_OK;
}

/* Splits n buffer rows [z, idx] into q->z, q->idx and q->rows, each repeated rep times. */
static ds_status split_rows(ds_trainer *t, const ds_real *rows_in, const ds_real *lr_in, int n, int rep)
{
    struct ds_cond_state *q = t->cond;
    const int d = t->energy->dim;
    for (int i = 0; i < n; i++) {
        const ds_real *row = rows_in + (size_t)i * (d + 1);
        const int32_t idx = (int32_t)lrint((double)row[d]);
        const ds_real *img = image_of(t, idx);
        DS_CHECK(img != NULL, DS_ERR_FORMAT, "a buffer entry names image %d, outside the training images of "
                 "condition.images (a checkpoint of another run?)", (int)idx);
        for (int k = 0; k < rep; k++) {
            const int b = i * rep + k;
            memcpy(q->z + (size_t)b * d, row, sizeof(ds_real) * (size_t)d);
            memcpy(q->rows + (size_t)b * q->C, img, sizeof(ds_real) * (size_t)q->C);
            q->idx[b] = idx;
            q->lr[b] = lr_in[i];
        }
    }
    return DS_OK;
}

ds_status ds_cond_backward_batch(ds_trainer *t, long it, int *did_ls)
{
    struct ds_cond_state *q = t->cond;
    const ds_settings *s = &t->s;
    const int B = t->B;
    *did_ls = 0;
    if (ds_trainer_is_local_search_iteration(s, it)) {
        /* one chain per condition of the batch, as the reference's buffer.sample() */
        DS_TRY(ds_buffer_sample(t->buf, ds_rng_make(s->seed, DS_RNG_BUFFER), (uint64_t)it,
                                (uint64_t)(t->first + s->batch_size), q->n_cond, t->bx, t->blr));
        DS_TRY(split_rows(t, t->bx, t->blr, q->n_cond, 1));
        const int prev = ds_energy_set_purpose(t->energy, DS_ECALL_LS);
        const ds_status rc = ds_ls_run_cond(t->energy, &t->lsp, ds_rng_make(s->seed, DS_RNG_LOCAL_SEARCH),
                                                  (uint64_t)it, (uint64_t)q->cond_first, q->n_cond, q->z, q->rows, q->idx,
                                                  t->buf_ls, &t->last_ls);
        ds_energy_set_purpose(t->energy, prev);
        DS_TRY(rc);
        t->ls_rounds++;
        *did_ls = 1;
    }
    ds_buffer *src = s->ls_enabled ? t->buf_ls : t->buf;
    DS_CHECK(ds_buffer_size(src) > 0, DS_ERR_INVALID,
             "the %s buffer is empty at iteration %ld (local search added nothing: check local_search.burn_in < "
             "local_search.max_iter and the step size)", s->ls_enabled ? "local-search" : "replay", it);
    /* B / K entries, K backward trajectories from each (gfn-diffusion's bwd_tb_avg_cond) */
    DS_TRY(ds_buffer_sample(src, ds_rng_make(s->seed, DS_RNG_BUFFER), (uint64_t)it, (uint64_t)q->cond_first,
                            q->n_cond, t->bx, t->blr));
    DS_TRY(split_rows(t, t->bx, t->blr, q->n_cond, q->K));
    t->sim.cond = q->rows;
    DS_TRY(ds_sim_backward(&t->sim, &t->tr, B, q->z, q->lr, ds_rng_make(s->seed, DS_RNG_BACKWARD), (uint64_t)it,
                           (uint64_t)t->first, NULL));
    return DS_OK;
}

/* Forward samples without exploration of images [i0, i0 + m) of this rank's
 * evaluation share, K each: log-weights into lw (m*K), and the columns when
 * not NULL. */
static ds_status eval_chunk(ds_trainer *t, ds_rng_purpose purpose, int i0, int m, int K, double *lw,
                            double *lr, double *pf, double *pb, double *sum_log_z)
{
    struct ds_cond_state *q = t->cond;
    const ds_settings *s = &t->s;
    const int T = s->T, n = m * K;
    for (int i = 0; i < m; i++)
        for (int k = 0; k < K; k++) {
            const int b = i * K + k;
            memcpy(q->rows + (size_t)b * q->C, q->eval + (size_t)(q->img_first + i0 + i) * q->C,
                   sizeof(ds_real) * (size_t)q->C);
            q->idx[b] = (int32_t)(s->cond_eval_first + q->img_first + i0 + i);
        }
    t->sim.cond = q->rows;
    /* counted from the image's index in the file, so an image's K samples do not depend on which
     * images are evaluated with it (diffsamp sample --first) */
    DS_TRY(ds_sim_forward(&t->sim, &t->tr, n, 0.0, ds_rng_make(s->seed, purpose), (uint64_t)t->iteration,
                          (uint64_t)(s->cond_eval_first + q->img_first + i0) * (uint64_t)K, NULL));
    for (int b = 0; b < n; b++) {
        double a = (double)t->tr.log_r[b], spf = 0, spb = 0;
        for (int i = 0; i < T; i++) {
            spf += (double)t->tr.log_pf[(size_t)i * n + b];
            spb += (double)t->tr.log_pb[(size_t)i * n + b];
        }
        lw[b] = a + spb - spf;
        if (lr) lr[b] = a;
        if (pf) pf[b] = spf;
        if (pb) pb[b] = spb;
    }
    for (int i = 0; i < m; i++) *sum_log_z += (double)t->tr.log_f[(size_t)i * K];
    return DS_OK;
}

/* Adds the per-image metrics of m images' log-weights lw ((m, K)) to sums
 * (ELBO, IS log p(x), -, ESS: sums[2], the learned log Z(x), is eval_chunk's)
 * and all (the log-sum-exp of every weight). */
static void add_image_metrics(const double *lw, int m, int K, double sums[4], ds_lse *all)
{
    double se, si, ess, mx, sm;
    ds_cond_image_metrics(lw, m, K, &se, &si, &ess, &mx, &sm);
    sums[0] += se;
    sums[1] += si;
    sums[3] += ess;
    ds_lse part = {mx, sm};
    ds_lse_merge(all, &part);
}

/* Global metrics from this rank's sums over its images (of the ELBO, IS
 * log p(x), learned log Z(x) and ESS). Collective. */
static ds_status reduce_metrics(ds_trainer *t, double sums[4], double lse_max, double lse_sum, ds_eval_result *r)
{
    const double nimg = (double)t->s.cond_eval_count, nall = nimg * t->s.cond_eval_repeats;
    double gmax = lse_max;
    if (t->size > 1) {
        DS_MPI(MPI_Allreduce(MPI_IN_PLACE, sums, 4, MPI_DOUBLE, MPI_SUM, t->comm));
        DS_MPI(MPI_Allreduce(&lse_max, &gmax, 1, MPI_DOUBLE, MPI_MAX, t->comm));
    }
    double part = isfinite(gmax) && lse_sum > 0 ? lse_sum * exp(lse_max - gmax) : 0;
    if (t->size > 1) DS_MPI(MPI_Allreduce(MPI_IN_PLACE, &part, 1, MPI_DOUBLE, MPI_SUM, t->comm));
    r->elbo = sums[0] / nimg;
    r->log_z_is = sums[1] / nimg;
    r->log_z_learned = t->s.objective == DS_OBJ_TB ? sums[2] / nimg : NAN;
    r->log_z_rw = gmax + log(part) - log(nall);
    r->ess = sums[3] / nimg;  /* the mean over images of each image's ESS of its own samples */
    ds_modes_result_clear(&r->mode_weights);  /* no modes to weigh */
    return DS_OK;
}

ds_status ds_cond_evaluate(ds_trainer *t, ds_eval_result *r)
{
    struct ds_cond_state *q = t->cond;
    const int K = t->s.cond_eval_repeats, per = t->chunk / K;
    double *lw = malloc(sizeof(double) * (size_t)(per > 0 ? per : 1) * K);
    DS_ALLOC_CHECK(lw);
    double sums[4] = {0, 0, 0, 0};
    ds_lse all;
    ds_lse_init(&all);
    ds_status rc = DS_OK;
    for (int i0 = 0; i0 < q->n_img && rc == DS_OK; i0 += per) {
        const int m = q->n_img - i0 < per ? q->n_img - i0 : per;
        rc = eval_chunk(t, DS_RNG_EVAL, i0, m, K, lw, NULL, NULL, NULL, &sums[2]);
        if (rc != DS_OK) break;
        add_image_metrics(lw, m, K, sums, &all);
    }
    free(lw);
    DS_TRY(rc);
    DS_TRY(reduce_metrics(t, sums, all.max, all.sum, r));
    return DS_OK;
}

static const ds_samples_column condition_column = {
    "condition", DS_H5_I32, 0,
    "Index of the condition image of each sample in its idx file (condition.eval_images, or condition.images "
    "when that is empty; the config attribute names both): group rows by it for per-image estimates."};

ds_status ds_cond_write_samples(ds_trainer *t, const char *path, ds_eval_result *r)
{
    struct ds_cond_state *q = t->cond;
    const ds_settings *s = &t->s;
    const int T = s->T, d = t->energy->dim, K = s->cond_eval_repeats, per = t->chunk / K;
    const size_t n_total = (size_t)s->cond_eval_count * (size_t)K;
    ds_samples_column cols[DS_SAMPLES_NCOLUMNS + 1];
    memcpy(cols, ds_samples_columns, sizeof ds_samples_columns);
    cols[DS_SAMPLES_NCOLUMNS] = condition_column;
    const size_t cap = (size_t)(per > 0 ? per : 1) * K;
    double *col = malloc(sizeof(double) * cap * 4);
    DS_ALLOC_CHECK(col);
    char *yaml = NULL;
    ds_h5_meta meta;
    ds_samples_writer *w = NULL;
    ds_status rc = ds_trainer_meta(t, &yaml, &meta);
    if (rc == DS_OK) rc = ds_samples_open_columns(t->comm, path, &meta, cols, DS_SAMPLES_NCOLUMNS + 1, n_total, &w);
    /* every rank takes part in every append: the rounds of the largest share */
    const int max_img = s->cond_eval_count / t->size + (s->cond_eval_count % t->size ? 1 : 0);
    const int rounds = (max_img + per - 1) / per;
    double sums[4] = {0, 0, 0, 0};
    ds_lse all;
    ds_lse_init(&all);
    for (int k = 0; k < rounds && rc == DS_OK; k++) {
        const int i0 = k * per, m = i0 < q->n_img ? (q->n_img - i0 < per ? q->n_img - i0 : per) : 0;
        double *lw = col, *lr = col + cap, *pf = col + 2 * cap, *pb = col + 3 * cap;
        if (m > 0) rc = eval_chunk(t, DS_RNG_SAMPLES, i0, m, K, lw, lr, pf, pb, &sums[2]);
        int any = 0;
        ds_status arc = ds_dist_any(t->comm, rc != DS_OK, &any);
        if (rc == DS_OK && arc != DS_OK) rc = arc;
        if (rc == DS_OK && any)
            rc = ds_error_set(DS_ERR_NUMERIC, __FILE__, __LINE__, __func__,
                              "another rank failed while writing the sample set %s", path);
        if (rc != DS_OK) break;
        if (m > 0) add_image_metrics(lw, m, K, sums, &all);
        const void *data[DS_SAMPLES_NCOLUMNS + 1] = {t->tr.states + (size_t)T * m * K * d, lr, pf, pb, lw, q->idx};
        rc = ds_samples_append_columns(w, m > 0 ? (size_t)m * K : 0, data);
    }
    ds_eval_result res;
    memset(&res, 0, sizeof res);
    res.iteration = t->iteration;
    res.mean_ll = NAN;
    res.modes = -1;
    if (rc == DS_OK) rc = reduce_metrics(t, sums, all.max, all.sum, &res);
    if (rc == DS_OK) {
        ds_h5_metric m[8];
        int nm = 0;
        m[nm++] = (ds_h5_metric){"elbo", res.elbo};
        m[nm++] = (ds_h5_metric){"log_p_is", res.log_z_is};
        m[nm++] = (ds_h5_metric){"log_z_rw_cross_image", res.log_z_rw};
        m[nm++] = (ds_h5_metric){"ess_per_image", res.ess};
        m[nm++] = (ds_h5_metric){"samples_per_image", (double)K};
        m[nm++] = (ds_h5_metric){"iteration", (double)t->iteration};
        if (!isnan(res.log_z_learned)) m[nm++] = (ds_h5_metric){"log_z_learned", res.log_z_learned};
        rc = ds_samples_close(&w, m, nm);
    } else {
        ds_samples_abort(&w);
    }
    if (r) *r = res;
    free(yaml);
    free(col);
    if (rc != DS_OK) ds_error_trace(__FILE__, __LINE__, __func__);
    return rc;
}
