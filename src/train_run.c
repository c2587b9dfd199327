/* train_run: the run loop (progress lines, stop decisions, evaluations,
 * checkpoints) and metrics.csv. */
#define _POSIX_C_SOURCE 200809L
#include "train_impl.h"

#include "diffsamp/blas.h"

#include "diffsamp/mpicheck.h"
#include "diffsamp/objectives.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* (Re)writes metrics.csv from the history (so a resumed run's file is the
 * uninterrupted run's file) and leaves it open for appending. */
static ds_status open_metrics(ds_trainer *t, FILE **out)
{
    char path[DS_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/metrics.csv", t->s.out_dir);
    FILE *f = fopen(path, "w");
    DS_CHECK(f != NULL, DS_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    const ds_metrics_history *h = &t->hist;
    ds_metrics_csv_header(f, h->cols, h->ncols);
    for (size_t i = 0; i < h->rows; i++) ds_metrics_csv_row(f, h->cols, h->ncols, ds_metrics_history_row(h, i));
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
        fputs(ds_trainer_notes(t), cf);
        fclose(cf);
        DS_TRY(rc);
        DS_TRY(open_metrics(t, &csv));
        fprintf(log, "diffsamp: %s on %s (d = %d), %s, T = %d, batch %d on %d rank(s), %ld iterations, %zu parameters\n",
                ds_objective_name(s->objective), t->energy->vt->name, t->energy->dim, DS_REAL_NAME, s->T,
                s->batch_size, t->size, s->iterations, t->policy->arena.n);
        fprintf(log, "BLAS: %s\n", ds_blas_describe());
        fprintf(log, "subnormal numbers: %s\n", ds_fp_describe());
        /* what this rank holds for training; the buffers' pages are taken as they fill */
        const double mb = 1.0 / (1 << 20);
        fprintf(log, "memory per rank: policy workspace %.0f MB, trajectories %.0f MB", t->policy->ws_bytes * mb,
                t->tr.bytes * mb);
        if (t->buf)
            fprintf(log, ", replay buffers up to %.0f MB", (ds_buffer_bytes(t->buf) + ds_buffer_bytes(t->buf_ls)) * mb);
        fputc('\n', log);
        if (t->iteration > 0) fprintf(log, "resumed at iteration %ld from %s\n", t->iteration, t->resumed_from);
        if (t->resumed_ranks > 0 && t->resumed_ranks != t->size)
            fprintf(log, "the checkpoint was written on %d rank%s, this run has %d%s\n", t->resumed_ranks,
                    t->resumed_ranks == 1 ? "" : "s", t->size,
                    t->buf ? ": the replay buffers were redistributed evenly" : "");
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
            DS_TRY_GOTO(rc, ds_metrics_history_add(&t->hist, &last), done);
            if (root) ds_metrics_csv_row(csv, t->hist.cols, t->hist.ncols, ds_metrics_history_row(&t->hist, t->hist.rows - 1));
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
        if (root && do_eval) ds_metrics_print(log, &last, DS_METRICS_LINE);
        if ((s->checkpoint_every > 0 && it % s->checkpoint_every == 0) || it == s->iterations)
            DS_TRY_GOTO(rc, ds_trainer_checkpoint(t), done);
    }
    if (t->iteration >= s->iterations) {
        char path[DS_PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/samples.h5", s->out_dir);
        DS_TRY_GOTO(rc, ds_trainer_write_samples(t, path, s->eval_samples, final), done);
        if (root) {
            if (t->cond) /* conditional: per-image metrics, and the reference's cross-image number */
                fprintf(log, "samples: %s (%d per image of %d evaluation images; over images: mean ELBO %.4f, mean IS "
                             "log p(x) %.4f; cross-image log-mean-exp (the reference's \"RW\") %.4f)\n", path,
                        s->cond_eval_repeats, s->cond_eval_count, final ? final->elbo : NAN,
                        final ? final->log_z_is : NAN, final ? final->log_z_rw : NAN);
            else
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
