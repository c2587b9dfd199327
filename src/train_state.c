/* train_state: the checkpoint of a run. Each part of the state is written and
 * read by the module that owns it, on one open checkpoint (h5io.h): the arena
 * and Adam and the replay buffers (restart.h), the metrics history
 * (metrics.h), and here the run state of the trainer itself (/state). */
#define _POSIX_C_SOURCE 200809L
#include "train_impl.h"

#include "diffsamp/restart.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The run state beyond the model, the buffers and the metrics history that a
 * resumed run needs to be the uninterrupted run: /state/run, a one-row table
 * with one named column per field. A new field is one row here; a checkpoint
 * written before the field existed restores its fallback. */
typedef struct run_field {
    const char *name;
    double *real;   /* the field, when it is a double */
    long *count;    /* the field, when it is a long */
    double fallback;
} run_field;

enum { NRUN = 6 };

static void run_fields(ds_trainer *t, run_field f[NRUN])
{
    const run_field table[NRUN] = {
        {"eval_loss_acc", &t->eval_loss_acc, NULL, 0},
        {"eval_loss_n", NULL, &t->eval_loss_n, 0},
        {"ls_acceptance", &t->last_ls.acceptance, NULL, NAN},
        {"ls_rounds", NULL, &t->ls_rounds, 0},
        {"exchanged", NULL, &t->exchanged, 0},
        /* written as the run's wall time so far (ds_trainer_elapsed), read back as that of the earlier processes */
        {"seconds", &t->seconds_before, NULL, 0},
    };
    memcpy(f, table, sizeof table);
}

/* /state: the iteration and the scalars that restore every random stream
 * and the local-search step size, then /state/run. */
static ds_status state_write(ds_trainer *t, ds_ckpt_file *f)
{
    const ds_settings *s = &t->s;
    int64_t it = t->iteration;
    int32_t ws = t->size;
    double ls_step = t->last_ls.final_step, expl = ds_exploration_std(s, t->iteration);
    uint64_t seed = s->seed;
    DS_TRY(ds_ckpt_write_scalar(f, "/state/iteration", DS_H5_I64, &it,
                                "Training iterations completed; the run resumes at this iteration."));
    DS_TRY(ds_ckpt_write_scalar(f, "/state/world_size", DS_H5_I32, &ws, "Number of MPI ranks that wrote this "
                                "checkpoint."));
    DS_TRY(ds_ckpt_write_scalar(f, "/state/ls_step", DS_H5_F64, &ls_step, "Current (adapted) local-search MALA step "
                                "size."));
    DS_TRY(ds_ckpt_write_scalar(f, "/state/exploration", DS_H5_F64, &expl,
                                "Exploration standard deviation at this iteration (informational)."));
    DS_TRY(ds_ckpt_write_scalar(f, "/state/rng_seed", DS_H5_U64, &seed,
                                "Seed of the counter-based generator (train.seed); with the iteration it restores every "
                                "stream."));
    run_field rf[NRUN];
    run_fields(t, rf);
    const char *names[NRUN];
    double vals[NRUN];
    for (int k = 0; k < NRUN; k++) {
        names[k] = rf[k].name;
        vals[k] = rf[k].real ? *rf[k].real : (double)*rf[k].count;
        if (rf[k].real == &t->seconds_before) vals[k] = ds_trainer_elapsed(t);
    }
    DS_TRY(ds_ckpt_write_table(f, "/state/run", NRUN, names, 1, vals,
                               "Further run state (loss accumulators, local-search statistics); names in columns."));
    /* energy evaluations of all ranks so far: a resumed run continues the count on any number of ranks */
    double calls[DS_NCALLS];
    DS_TRY(ds_trainer_energy_calls(t, calls));
    const char *cnames[DS_NCALLS];
    static const char *const kinds[3] = {"value", "grad", "hvp"}, *const purposes[DS_ECALL_NPURPOSE] = {
        "train", "lp", "ls", "eval"};
    char buf[DS_NCALLS][32];
    for (int k = 0; k < DS_NCALLS; k++) {
        snprintf(buf[k], sizeof buf[k], "%s_%s", kinds[k / DS_ECALL_NPURPOSE], purposes[k % DS_ECALL_NPURPOSE]);
        cnames[k] = buf[k];
    }
    return ds_ckpt_write_table(f, "/state/energy_calls", DS_NCALLS, cnames, 1, calls,
                               "Energy evaluations of all ranks so far (points), by kind (value, grad, hvp) and "
                               "purpose (train, lp, ls, eval); names in columns.");
}

static ds_status state_read(ds_trainer *t, ds_ckpt_file *f, int *world_size)
{
    int64_t it = 0;
    int32_t ws = 0;
    double ls_step = 0, expl = 0;
    uint64_t seed = 0;
    DS_TRY(ds_ckpt_read_scalar(f, "/state/iteration", DS_H5_I64, &it));
    DS_TRY(ds_ckpt_read_scalar(f, "/state/world_size", DS_H5_I32, &ws));
    DS_TRY(ds_ckpt_read_scalar(f, "/state/ls_step", DS_H5_F64, &ls_step));
    DS_TRY(ds_ckpt_read_scalar(f, "/state/exploration", DS_H5_F64, &expl));
    DS_TRY(ds_ckpt_read_scalar(f, "/state/rng_seed", DS_H5_U64, &seed));
    DS_CHECK(ws >= 1, DS_ERR_FORMAT, "checkpoint %s: /state/world_size is %d, expected >= 1", ds_ckpt_path(f), (int)ws);
    t->iteration = (long)it;
    t->last_ls.final_step = ls_step;
    *world_size = ws;
    run_field rf[NRUN];
    run_fields(t, rf);
    ds_ckpt_table tab;
    memset(&tab, 0, sizeof tab);
    if (ds_ckpt_has(f, "/state/run")) DS_TRY(ds_ckpt_read_table(f, "/state/run", 1, &tab));
    for (int k = 0; k < NRUN; k++) {
        int c = ds_ckpt_table_column(&tab, rf[k].name);
        double v = c >= 0 ? tab.v[c] : rf[k].fallback;
        if (rf[k].real) *rf[k].real = v;
        else *rf[k].count = (long)v;
    }
    ds_ckpt_table_free(&tab);
    /* the totals go to rank 0, so that the sum over ranks continues them */
    ds_energy_calls *c = t->energy->calls;
    memset(c->value, 0, sizeof c->value);
    memset(c->grad, 0, sizeof c->grad);
    memset(c->hvp, 0, sizeof c->hvp);
    if (ds_ckpt_has(f, "/state/energy_calls")) {
        memset(&tab, 0, sizeof tab);
        DS_TRY(ds_ckpt_read_table(f, "/state/energy_calls", 1, &tab));
        DS_CHECK(tab.ncols == DS_NCALLS, DS_ERR_FORMAT, "checkpoint %s: /state/energy_calls has %d columns, expected %d",
                 ds_ckpt_path(f), tab.ncols, DS_NCALLS);
        if (t->rank == 0)
            for (int p = 0; p < DS_ECALL_NPURPOSE; p++) {
                c->value[p] = tab.v[p];
                c->grad[p] = tab.v[DS_ECALL_NPURPOSE + p];
                c->hvp[p] = tab.v[2 * DS_ECALL_NPURPOSE + p];
            }
        ds_ckpt_table_free(&tab);
    }
    return DS_OK;
}

/* The replay buffers and their group names under /replay. */
static int buffers_of(ds_trainer *t, ds_buffer *bufs[2], const char *names[2])
{
    bufs[0] = t->buf;
    bufs[1] = t->buf_ls;
    names[0] = "buffer";
    names[1] = "buffer_ls";
    return 2;
}

ds_status ds_trainer_checkpoint(ds_trainer *t)
{
    char path[DS_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/checkpoint.h5", t->s.out_dir);
    char *yaml = NULL;
    ds_h5_meta meta;
    DS_TRY(ds_trainer_meta(t, &yaml, &meta));
    ds_ckpt_file *f = NULL;
    /* Each call returns the same status on every rank: all take one path. */
    ds_status rc = ds_ckpt_create(t->comm, path, &meta, &f);
    if (rc == DS_OK) rc = ds_arena_write(f, &t->policy->arena, &t->adam);
    if (rc == DS_OK) rc = state_write(t, f);
    if (rc == DS_OK) rc = ds_metrics_history_write(f, &t->hist);
    if (rc == DS_OK && t->searcher) rc = ds_searcher_write(f, t->searcher);
    if (rc == DS_OK) rc = ds_ckpt_write_group(f, "/replay");
    ds_buffer *bufs[2];
    const char *names[2];
    const int nb = buffers_of(t, bufs, names);
    for (int k = 0; k < nb && rc == DS_OK; k++)
        if (bufs[k]) rc = ds_buffer_write(f, names[k], bufs[k]);
    if (rc == DS_OK) rc = ds_ckpt_commit(&f);
    else ds_ckpt_close(&f);
    free(yaml);
    if (rc != DS_OK) ds_error_trace(__FILE__, __LINE__, __func__);
    return rc;
}

typedef struct load_ctx {
    ds_trainer *t;
    int world_size; /* ranks of the writer */
} load_ctx;

/* Everything a checkpoint restores. Every part overwrites what an earlier,
 * failed candidate may have loaded, so the fallback to .prev starts clean. */
static ds_status load(ds_ckpt_file *f, void *ctx)
{
    load_ctx *c = ctx;
    ds_trainer *t = c->t;
    DS_TRY(ds_arena_read(f, &t->policy->arena, &t->adam));
    DS_TRY(state_read(t, f, &c->world_size));
    DS_TRY(ds_metrics_history_read(f, &t->hist));
    /* a checkpoint without /searcher (the searcher turned on at resume) keeps the fresh chains */
    if (t->searcher && ds_ckpt_has(f, "/searcher")) DS_TRY(ds_searcher_read(f, t->searcher));
    ds_buffer *bufs[2];
    const char *names[2];
    const int nb = buffers_of(t, bufs, names);
    for (int k = 0; k < nb; k++) {
        if (!bufs[k]) continue; /* e.g. local search turned off on resume */
        char group[DS_NAME_MAX + 16];
        snprintf(group, sizeof group, "/replay/%s", names[k]);
        if (ds_ckpt_has(f, group)) DS_TRY(ds_buffer_read(f, names[k], bufs[k], NULL));
        else ds_buffer_clear(bufs[k]);
    }
    return DS_OK;
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
    const ds_energy_plugin_lib *lib = ds_energy_plugin_of(t->energy);
    ds_ckpt_expect ex = {t->energy->vt->name, t->energy->dim, lib ? lib->sha256 : NULL};
    load_ctx ctx = {t, t->size};
    char found[DS_PATH_MAX + 32], warning[2048];
    ds_status rc = ds_ckpt_find_load(t->comm, want, &ex, load, &ctx, found, sizeof found, NULL, warning, sizeof warning);
    if (rc != DS_OK) {
        ds_error_trace(__FILE__, __LINE__, __func__);
        return rc;
    }
    if (t->rank == 0 && warning[0]) fprintf(stderr, "diffsamp: warning: %s\n", warning);
    t->resumed_ranks = ctx.world_size;
    snprintf(t->resumed_from, sizeof t->resumed_from, "%s", found);
    return DS_OK;
}

int ds_trainer_has_checkpoint(const ds_settings *s)
{
    char path[DS_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/checkpoint.h5", s->out_dir);
    if (access(path, F_OK) == 0) return 1;
    snprintf(path, sizeof path, "%s/checkpoint.h5.prev", s->out_dir);
    return access(path, F_OK) == 0;
}
