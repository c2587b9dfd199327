/* train_state: the checkpointed state of a run (write, resume, find). */
#define _POSIX_C_SOURCE 200809L
#include "train_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

ds_status ds_trainer_checkpoint(ds_trainer *t)
{
    const ds_settings *s = &t->s;
    char path[DS_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/checkpoint.h5", s->out_dir);
    char *yaml = NULL;
    ds_h5_meta unused;
    DS_TRY(ds_trainer_meta(t, &yaml, &unused));
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
    c.metrics_ncols = DS_TRAINER_NMETRIC;
    c.metrics_columns = ds_trainer_metric_columns;
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
        rc = ds_trainer_history_add(t, &dummy);
        if (rc != DS_OK) break;
        double *row = t->hist + (t->nhist - 1) * DS_TRAINER_NMETRIC;
        for (int c = 0; c < DS_TRAINER_NMETRIC; c++) {
            row[c] = NAN;
            for (int k = 0; k < d.metrics_ncols; k++)
                if (strcmp(d.metrics_columns[k], ds_trainer_metric_columns[c]) == 0) row[c] = d.metrics[r * d.metrics_ncols + k];
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
