/* metrics: the metrics column table and what is made from it (metrics.h). */
#include "diffsamp/metrics.h"
#include "diffsamp/energy.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static double get_iteration(const ds_eval_result *r) { return (double)r->iteration; }
static double get_loss(const ds_eval_result *r) { return r->loss; }
static double get_elbo(const ds_eval_result *r) { return r->elbo; }
static double get_log_z_is(const ds_eval_result *r) { return r->log_z_is; }
static double get_log_z_rw(const ds_eval_result *r) { return r->log_z_rw; }
static double get_log_z_learned(const ds_eval_result *r) { return r->log_z_learned; }
static double get_ess(const ds_eval_result *r) { return r->ess; }
static double get_mean_ll(const ds_eval_result *r) { return r->mean_ll; }
static double get_delta_log_z(const ds_eval_result *r) { return r->has_log_z ? r->delta_log_z : NAN; }
static double get_delta_log_z_is(const ds_eval_result *r) { return r->has_log_z ? r->delta_log_z_is : NAN; }
static double get_modes(const ds_eval_result *r) { return r->modes >= 0 ? (double)r->modes : NAN; }
static double get_ls_acceptance(const ds_eval_result *r) { return r->ls_acceptance; }
static double get_ls_step(const ds_eval_result *r) { return r->ls_step; }
static double get_buffer_size(const ds_eval_result *r) { return (double)r->buffer_size; }
static double get_buffer_ls_size(const ds_eval_result *r) { return (double)r->buffer_ls_size; }
static double get_seconds(const ds_eval_result *r) { return r->seconds; }
static double get_ev_train(const ds_eval_result *r) { return r->energy_value[DS_ECALL_TRAIN]; }
static double get_eg_train(const ds_eval_result *r) { return r->energy_grad[DS_ECALL_TRAIN]; }
static double get_ev_lp(const ds_eval_result *r) { return r->energy_value[DS_ECALL_LP]; }
static double get_eg_lp(const ds_eval_result *r) { return r->energy_grad[DS_ECALL_LP]; }
static double get_ev_ls(const ds_eval_result *r) { return r->energy_value[DS_ECALL_LS]; }
static double get_eg_ls(const ds_eval_result *r) { return r->energy_grad[DS_ECALL_LS]; }
static double get_ev_eval(const ds_eval_result *r) { return r->energy_value[DS_ECALL_EVAL]; }
static double get_eg_eval(const ds_eval_result *r) { return r->energy_grad[DS_ECALL_EVAL]; }
static double get_ehvp(const ds_eval_result *r) { return r->energy_hvp; }
static double get_mw_frac(const ds_eval_result *r) { return r->mode_weights.right_fraction; }
static double get_mw_exact(const ds_eval_result *r) { return r->mode_weights.right_exact; }
static double get_mw_dev(const ds_eval_result *r) { return r->mode_weights.right_max_dev; }
static double get_mw_tv(const ds_eval_result *r) { return r->mode_weights.wells_tv; }
static double get_mw_tv_rw(const ds_eval_result *r) { return r->mode_weights.wells_tv_rw; }
static double get_grid_tv(const ds_eval_result *r) { return r->mode_weights.grid_tv; }

const ds_metrics_column ds_metrics_columns[] = {
    {"iteration", "iteration", "training iterations completed", 1, get_iteration},
    {"loss", NULL, "mean training loss since the previous evaluation", 0, get_loss},
    {"elbo", "ELBO", "mean log-weight log R + sum log p_B - sum log p_F of the evaluation samples", 0, get_elbo},
    {"log_z_is", "log Z (IS)", "importance-weighted log Z: log mean exp of the log-weights", 0, get_log_z_is},
    {"log_z_rw_cross_image", "cross-image RW", "conditional targets: log mean exp of all evaluation images' "
     "log-weights together, the reference code's \"RW\" number, which estimates no image's likelihood (empty "
     "otherwise)", 0, get_log_z_rw},
    {"log_z_learned", "log Z (learned)", "the learned log Z (empty when the objective has none)", 0,
     get_log_z_learned},
    {"ess", "ESS", "effective sample size (sum w)^2 / (N sum w^2), in (0, 1] (conditional targets: the mean over "
     "evaluation images of the ESS of each image's own samples)", 0, get_ess},
    {"mean_log_likelihood", "mean log-likelihood", "mean log-likelihood of true samples (empty without a sampler)",
     0, get_mean_ll},
    {"delta_log_z", "Delta log Z", "|log Z - ELBO| (empty when log Z is unknown)", 0, get_delta_log_z},
    {"delta_log_z_is", "Delta log Z (IS)", "|log Z - log Z (IS)| (empty when log Z is unknown)", 0,
     get_delta_log_z_is},
    {"modes", "modes with samples", "modes of a 2-D grid mixture holding samples (empty for other targets)", 1,
     get_modes},
    {"ls_acceptance", "LS acceptance", "acceptance rate of the latest local-search round", 0, get_ls_acceptance},
    {"ls_step", "LS step", "its final MALA step size", 0, get_ls_step},
    {"buffer_size", "replay entries", "replay-buffer entries over all ranks", 1, get_buffer_size},
    {"buffer_ls_size", "local-search entries", "local-search (or the searcher's own) buffer entries over all ranks", 1, get_buffer_ls_size},
    {"seconds", NULL, "wall time of the run so far, continued across resumes", 0, get_seconds},
    /* energy evaluations so far (all ranks, resumed runs continue the count): points at which log R was
     * evaluated, and of those with its gradient, by what they were for */
    {"energy_values_train", "energy values (training)", "log R evaluations of training trajectories' terminal states",
     1, get_ev_train},
    {"energy_grads_train", NULL, "of those, with the gradient", 1, get_eg_train},
    {"energy_values_lp", "energy values (LP / per step)",
     "log R evaluations at the intermediate states of training passes (LP, partial energy)", 1, get_ev_lp},
    {"energy_grads_lp", NULL, "of those, with the gradient", 1, get_eg_lp},
    {"energy_values_ls", "energy values (local search)", "log R evaluations of local search (MALA)", 1, get_ev_ls},
    {"energy_grads_ls", NULL, "of those, with the gradient", 1, get_eg_ls},
    {"energy_values_eval", "energy values (evaluation)", "log R evaluations of evaluations and sample sets", 1,
     get_ev_eval},
    {"energy_grads_eval", NULL, "of those, with the gradient", 1, get_eg_eval},
    {"energy_hvps", NULL, "Hessian-vector products of the energy (PIS/DDS/DIS with LP)", 1, get_ehvp},
    /* per-mode weights of the evaluation samples against the exact ones (modes.h) */
    {"wells_right_fraction", "right-hand wells", "many_well: mean over pairs of the fraction of samples in the "
     "right-hand well", 0, get_mw_frac},
    {"wells_right_exact", "right-hand (exact)", "many_well: its exact value", 0, get_mw_exact},
    {"wells_right_max_dev", "right-hand max dev.", "many_well: max over pairs of |fraction - exact|", 0, get_mw_dev},
    {"wells_count_tv", "TV #right wells", "many_well: total variation of the number of right-hand wells per "
     "sample against its exact Poisson-binomial law", 0, get_mw_tv},
    {"wells_count_tv_rw", "TV #right wells (IS)", "many_well: the same with self-normalised importance weights",
     0, get_mw_tv_rw},
    {"modes_tv", "TV mode weights", "2-D grid mixtures: total variation of the nearest-mode occupancy against the "
     "exact weights 1/M", 0, get_grid_tv},
};
const int ds_metrics_ncolumns = (int)(sizeof ds_metrics_columns / sizeof ds_metrics_columns[0]);

void ds_metrics_history_init(ds_metrics_history *h, const ds_metrics_column *cols, int ncols)
{
    memset(h, 0, sizeof *h);
    h->cols = cols;
    h->ncols = ncols;
}

void ds_metrics_history_free(ds_metrics_history *h)
{
    free(h->v);
    h->v = NULL;
    h->rows = h->cap = 0;
}

ds_status ds_metrics_history_add(ds_metrics_history *h, const ds_eval_result *r)
{
    if (h->rows == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 64;
        double *v = realloc(h->v, sizeof(double) * cap * (size_t)(h->ncols > 0 ? h->ncols : 1));
        DS_ALLOC_CHECK(v);
        h->v = v;
        h->cap = cap;
    }
    double *row = h->v + h->rows * (size_t)h->ncols;
    for (int c = 0; c < h->ncols; c++) row[c] = h->cols[c].get(r);
    h->rows++;
    return DS_OK;
}

const double *ds_metrics_history_row(const ds_metrics_history *h, size_t i) { return h->v + i * (size_t)h->ncols; }

void ds_metrics_csv_header(FILE *f, const ds_metrics_column *cols, int ncols)
{
    for (int c = 0; c < ncols; c++) fprintf(f, "%s%s", c ? "," : "", cols[c].name);
    fputc('\n', f);
    fflush(f);
}

void ds_metrics_csv_row(FILE *f, const ds_metrics_column *cols, int ncols, const double *row)
{
    for (int c = 0; c < ncols; c++) {
        if (c) fputc(',', f);
        if (isnan(row[c])) continue;
        if (cols[c].integer) fprintf(f, "%.0f", row[c]);
        else fprintf(f, "%.10g", row[c]);
    }
    fputc('\n', f);
    fflush(f);
}

ds_status ds_metrics_history_write(ds_ckpt_file *f, const ds_metrics_history *h)
{
    /* The description lists the columns from the table, so it cannot go
     * stale when one is added. */
    size_t cap = 256;
    for (int c = 0; c < h->ncols; c++) cap += strlen(h->cols[c].name) + strlen(h->cols[c].description) + 8;
    char *desc = malloc(cap);
    const char **names = malloc(sizeof *names * (size_t)(h->ncols > 0 ? h->ncols : 1));
    ds_status rc = desc && names ? DS_OK
                                 : ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__,
                                                "out of memory for the /metrics description");
    if (rc == DS_OK) {
        size_t len = (size_t)snprintf(desc, cap, "Metrics history, one row per evaluation; columns (named in the "
                                      "columns attribute; NaN where a value does not apply):");
        for (int c = 0; c < h->ncols && len < cap; c++) {
            names[c] = h->cols[c].name;
            len += (size_t)snprintf(desc + len, cap - len, "%s %s: %s", c ? ";" : "", h->cols[c].name,
                                    h->cols[c].description);
        }
        if (len < cap) snprintf(desc + len, cap - len, ".");
    }
    rc = ds_ckpt_agree(f, rc);
    if (rc == DS_OK) rc = ds_ckpt_write_table(f, "/metrics", h->ncols, names, h->rows, h->v, desc);
    free(desc);
    free(names);
    return rc;
}

ds_status ds_metrics_history_read(ds_ckpt_file *f, ds_metrics_history *h)
{
    ds_ckpt_table tab;
    DS_TRY(ds_ckpt_read_table(f, "/metrics", -1, &tab));
    int *col = malloc(sizeof *col * (size_t)(h->ncols > 0 ? h->ncols : 1));
    ds_status rc = ds_ckpt_agree(f, col ? DS_OK : ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__,
                                                             "out of memory for the metrics columns"));
    h->rows = 0;
    /* Every index below comes from the file: the table's shape must describe
     * its data (ds_ckpt_read_table checked it against the stored bytes) and
     * each of our columns may appear at most once. */
    if (rc == DS_OK && (tab.ncols < 0 || (tab.rows > 0 && tab.ncols > 0 && !tab.v) ||
                        (tab.ncols > 0 && tab.rows > SIZE_MAX / sizeof(double) / (size_t)tab.ncols)))
        rc = ds_error_set(DS_ERR_FORMAT, __FILE__, __LINE__, __func__, "checkpoint %s: /metrics has %zu rows of %d "
                          "columns, which its data cannot hold", ds_ckpt_path(f), tab.rows, tab.ncols);
    for (int a = 0; rc == DS_OK && a < tab.ncols; a++)
        for (int b = a + 1; rc == DS_OK && b < tab.ncols; b++)
            if (strcmp(tab.columns[a], tab.columns[b]) == 0)
                rc = ds_error_set(DS_ERR_FORMAT, __FILE__, __LINE__, __func__,
                                  "checkpoint %s: /metrics names column '%s' twice", ds_ckpt_path(f), tab.columns[a]);
    rc = ds_ckpt_agree(f, rc);
    if (rc == DS_OK) {
        for (int c = 0; c < h->ncols; c++) col[c] = ds_ckpt_table_column(&tab, h->cols[c].name);
        ds_eval_result dummy;
        memset(&dummy, 0, sizeof dummy);
        for (size_t r = 0; r < tab.rows && rc == DS_OK; r++) {
            rc = ds_metrics_history_add(h, &dummy);
            if (rc != DS_OK) break;
            double *row = h->v + (h->rows - 1) * (size_t)h->ncols;
            for (int c = 0; c < h->ncols; c++) row[c] = col[c] >= 0 ? tab.v[r * (size_t)tab.ncols + col[c]] : NAN;
        }
        rc = ds_ckpt_agree(f, rc);
    }
    free(col);
    ds_ckpt_table_free(&tab);
    return rc;
}

void ds_metrics_print(FILE *f, const ds_eval_result *r, ds_metrics_style style)
{
    if (style == DS_METRICS_LINE) fprintf(f, "  eval @%ld:", r->iteration);
    for (int c = 0; c < ds_metrics_ncolumns; c++) {
        const ds_metrics_column *col = &ds_metrics_columns[c];
        const double v = col->get(r);
        if (!col->label || isnan(v)) continue;
        if (style == DS_METRICS_LINE) {
            if (strcmp(col->name, "iteration") == 0) continue;
            if (col->integer) fprintf(f, "  %s %.0f", col->name, v);
            else fprintf(f, "  %s %.4g", col->name, v);
            if (strcmp(col->name, "modes") == 0) fprintf(f, "/%d", r->modes_total);
        } else {
            if (col->integer) fprintf(f, "%-20s %.0f", col->label, v);
            else fprintf(f, "%-20s %.6f", col->label, v);
            if (strcmp(col->name, "modes") == 0) fprintf(f, " of %d", r->modes_total);
            fputc('\n', f);
            if (strcmp(col->name, "ess") == 0 && r->has_log_z) fprintf(f, "%-20s %.6f\n", "log Z (true)", r->log_z_true);
        }
    }
    if (style == DS_METRICS_LINE) fputc('\n', f);
    fflush(f);
}
