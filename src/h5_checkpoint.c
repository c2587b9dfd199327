/* h5_checkpoint: checkpoints (layout in h5io.h).
 *
 * Every public function is collective and runs in phases; each phase ends
 * with ds_h5_agree(), an MPI_Allreduce of the status, so that a failure on
 * one rank (a bad argument, a failed write) sends every rank to the same
 * cleanup instead of leaving the others blocked in the next collective HDF5
 * call. */
#define _POSIX_C_SOURCE 200809L
#include "h5io_impl.h"
#include "diffsamp/mpicheck.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef DS_VERSION
#define DS_VERSION "unknown"
#endif

static ds_status ckpt_check_args(const char *path, const ds_ckpt *c)
{
    DS_CHECK(path && *path, DS_ERR_INVALID, "checkpoint path is empty");
    DS_CHECK(c != NULL, DS_ERR_INVALID, "checkpoint state is NULL");
    DS_CHECK(c->meta.energy && *c->meta.energy && strlen(c->meta.energy) < DS_NAME_MAX, DS_ERR_INVALID,
             "checkpoint energy name must be non-empty and shorter than %d characters", DS_NAME_MAX);
    DS_CHECK(c->meta.dim >= 1, DS_ERR_INVALID, "checkpoint dim must be >= 1, got %d", c->meta.dim);
    DS_CHECK(c->n_params == 0 || (c->params && c->m && c->v), DS_ERR_INVALID,
             "checkpoint params, m and v must not be NULL (n_params = %zu)", c->n_params);
    DS_CHECK(c->metrics_ncols >= 0, DS_ERR_INVALID, "metrics_ncols must be >= 0, got %d", c->metrics_ncols);
    DS_CHECK(c->metrics_ncols == 0 || c->metrics_columns, DS_ERR_INVALID, "metrics_columns is NULL");
    for (int j = 0; j < c->metrics_ncols; j++)
        DS_CHECK(c->metrics_columns[j] && *c->metrics_columns[j], DS_ERR_INVALID, "metrics column %d has no name", j);
    DS_CHECK(c->metrics_rows == 0 || c->metrics_ncols == 0 || c->metrics, DS_ERR_INVALID,
             "metrics is NULL with %zu rows", c->metrics_rows);
    DS_CHECK(c->nbuffers >= 0 && c->nbuffers <= DS_CKPT_MAX_BUFFERS, DS_ERR_INVALID,
             "nbuffers must be in [0, %d], got %d", DS_CKPT_MAX_BUFFERS, c->nbuffers);
    for (int b = 0; b < c->nbuffers; b++) {
        const ds_ckpt_buffer *B = &c->buffers[b];
        DS_CHECK(ds_h5_plain_name(B->name), DS_ERR_INVALID,
                 "buffer %d name '%s' must be 1-%d letters, digits or '_'", b, B->name ? B->name : "(null)",
                 DS_NAME_MAX - 1);
        for (int k = 0; k < b; k++)
            DS_CHECK(strcmp(c->buffers[k].name, B->name) != 0, DS_ERR_INVALID, "buffer name '%s' appears twice",
                     B->name);
        DS_CHECK(B->n_local == 0 || (B->x && B->log_r), DS_ERR_INVALID, "buffer '%s': x or log_r is NULL with %zu rows",
                 B->name, B->n_local);
    }
    return DS_OK;
}

/* The replicated fields must agree across ranks (rank 0's are written, so a
 * mismatch would silently save one rank's view of a diverged run). */
static ds_status ckpt_check_consistent(MPI_Comm comm, const ds_ckpt *c)
{
    enum { NV = 6 };
    long long v[NV] = {(long long)c->n_params, c->meta.dim, c->nbuffers, (long long)c->metrics_rows,
                       c->metrics_ncols, (long long)c->iteration};
    static const char *what[NV] = {"n_params", "dim", "nbuffers", "metrics_rows", "metrics_ncols", "iteration"};
    long long mn[NV], mx[NV];
    DS_MPI(MPI_Allreduce(v, mn, NV, MPI_LONG_LONG, MPI_MIN, comm));
    DS_MPI(MPI_Allreduce(v, mx, NV, MPI_LONG_LONG, MPI_MAX, comm));
    for (int i = 0; i < NV; i++)
        DS_CHECK(mn[i] == mx[i], DS_ERR_INVALID, "checkpoint %s differs across ranks (%lld .. %lld)", what[i], mn[i],
                 mx[i]);
    for (int b = 0; b < c->nbuffers; b++) {
        char name[DS_NAME_MAX];
        int rank;
        DS_MPI(MPI_Comm_rank(comm, &rank));
        if (rank == 0) snprintf(name, sizeof name, "%s", c->buffers[b].name);
        DS_MPI(MPI_Bcast(name, DS_NAME_MAX, MPI_CHAR, 0, comm));
        int same = strcmp(name, c->buffers[b].name) == 0, all = 0;
        DS_MPI(MPI_Allreduce(&same, &all, 1, MPI_INT, MPI_MIN, comm));
        DS_CHECK(all, DS_ERR_INVALID, "checkpoint buffer %d is named '%s' on rank 0 but differently on another rank",
                 b, name);
    }
    return DS_OK;
}

static ds_status ckpt_write_replay(MPI_Comm comm, hid_t file, hid_t dxpl, const ds_ckpt *c)
{
    ds_status rc = DS_OK;
    int rank, size;
    hid_t replay = -1, g = -1;
    int64_t *counts = NULL;
    DS_MPI(MPI_Comm_rank(comm, &rank));
    DS_MPI(MPI_Comm_size(comm, &size));
    counts = ds_calloc((size_t)size, sizeof *counts);
    if (!counts) rc = ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__, "out of memory for %d counts", size);
    STEP(rc, ds_h5_group_create(file, "replay", &replay));
    SYNC(rc, comm, done);
    for (int b = 0; b < c->nbuffers; b++) {
        const ds_ckpt_buffer *B = &c->buffers[b];
        /* Every rank is here with rc = DS_OK: the collectives match. */
        int64_t n = (int64_t)B->n_local, offset = 0, total = 0;
        DS_MPI_GOTO(rc, done, MPI_Exscan(&n, &offset, 1, MPI_INT64_T, MPI_SUM, comm));
        if (rank == 0) offset = 0; /* MPI_Exscan leaves rank 0's result undefined */
        DS_MPI_GOTO(rc, done, MPI_Allgather(&n, 1, MPI_INT64_T, counts, 1, MPI_INT64_T, comm));
        for (int r = 0; r < size; r++) total += counts[r];
        int64_t capacity = B->capacity;
        DS_MPI_GOTO(rc, done, MPI_Bcast(&capacity, 1, MPI_INT64_T, 0, comm));

        hsize_t xd[2] = {(hsize_t)total, (hsize_t)c->meta.dim}, cd = (hsize_t)size;
        STEP(rc, ds_h5_group_create(replay, B->name, &g));
        STEP(rc, ds_h5_attr_write_scalar(g, "capacity", H5T_STD_I64LE, H5T_NATIVE_INT64, &capacity));
        STEP(rc, ds_h5_dset_write(g, dxpl, "x", ds_h5_real_file_type(), ds_h5_real_mem_type(), 2, xd, (hsize_t)offset, (hsize_t)n, B->x,
                            "Replay-buffer states of every writer rank in rank order, each shard oldest first."));
        STEP(rc, ds_h5_dset_write(g, dxpl, "log_r", ds_h5_real_file_type(), ds_h5_real_mem_type(), 1, xd, (hsize_t)offset, (hsize_t)n,
                            B->log_r, "Log reward log R(x) of each row of x."));
        STEP(rc, ds_h5_dset_write(g, dxpl, "counts", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &cd, 0, rank == 0 ? cd : 0, counts,
                            "Rows of x contributed by each writer rank, in rank order."));
        ds_h5_close(g);
        g = -1;
        SYNC(rc, comm, done);
    }
done:
    ds_h5_close(g);
    ds_h5_close(replay);
    ds_free(counts);
    return rc;
}

/* Every dataset of a checkpoint. */
static ds_status ckpt_write_body(MPI_Comm comm, hid_t file, hid_t dxpl, const ds_ckpt *c)
{
    ds_status rc = DS_OK;
    int rank, size;
    hid_t g = -1;
    char **cols = NULL;
    DS_MPI(MPI_Comm_rank(comm, &rank));
    DS_MPI(MPI_Comm_size(comm, &size));
    const hsize_t mine = rank == 0 ? 1 : 0; /* replicated data: rank 0 writes */
    hsize_t n = (hsize_t)c->n_params;

    STEP(rc, ds_h5_group_create(file, "model", &g));
    STEP(rc, ds_h5_dset_write(g, dxpl, "params", ds_h5_real_file_type(), ds_h5_real_mem_type(), 1, &n, 0, mine * n, c->params,
                        "Flat parameter array of the sampler (policy, log Z or flow, Langevin scaling) in arena order."));
    ds_h5_close(g);
    g = -1;
    STEP(rc, ds_h5_group_create(file, "optimizer", &g));
    STEP(rc, ds_h5_dset_write(g, dxpl, "m", ds_h5_real_file_type(), ds_h5_real_mem_type(), 1, &n, 0, mine * n, c->m,
                        "Adam first moment, same layout as /model/params."));
    STEP(rc, ds_h5_dset_write(g, dxpl, "v", ds_h5_real_file_type(), ds_h5_real_mem_type(), 1, &n, 0, mine * n, c->v,
                        "Adam second moment, same layout as /model/params."));
    STEP(rc, ds_h5_dset_write(g, dxpl, "step", H5T_STD_I64LE, H5T_NATIVE_INT64, 0, NULL, 0, mine, &c->adam_step,
                        "Number of Adam steps taken (bias correction)."));
    ds_h5_close(g);
    g = -1;
    SYNC(rc, comm, done);

    int32_t ws = size;
    STEP(rc, ds_h5_group_create(file, "state", &g));
    STEP(rc, ds_h5_dset_write(g, dxpl, "iteration", H5T_STD_I64LE, H5T_NATIVE_INT64, 0, NULL, 0, mine, &c->iteration,
                        "Training iterations completed; the run resumes at this iteration."));
    STEP(rc, ds_h5_dset_write(g, dxpl, "world_size", H5T_STD_I32LE, H5T_NATIVE_INT32, 0, NULL, 0, mine, &ws,
                        "Number of MPI ranks that wrote this checkpoint."));
    STEP(rc, ds_h5_dset_write(g, dxpl, "ls_step", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, NULL, 0, mine, &c->ls_step,
                        "Current (adapted) local-search MALA step size."));
    STEP(rc, ds_h5_dset_write(g, dxpl, "exploration", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, NULL, 0, mine, &c->exploration,
                        "Exploration standard deviation at this iteration (informational)."));
    STEP(rc, ds_h5_dset_write(g, dxpl, "rng_seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, 0, NULL, 0, mine, &c->rng_seed,
                        "Seed of the counter-based generator (train.seed); with the iteration it restores every stream."));
    ds_h5_close(g);
    g = -1;
    SYNC(rc, comm, done);

    /* Column names are metadata every rank writes: rank 0's are used (the
     * broadcasts run on every rank before any step can fail). */
    cols = ds_calloc((size_t)c->metrics_ncols + 1, sizeof *cols);
    if (!cols) rc = ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__, "out of memory for metric names");
    SYNC(rc, comm, done);
    for (int j = 0; j < c->metrics_ncols; j++) {
        ds_status brc = ds_h5_bcast_str(comm, c->metrics_columns[j], &cols[j]);
        if (rc == DS_OK) rc = brc;
    }
    hsize_t md[2] = {(hsize_t)c->metrics_rows, (hsize_t)c->metrics_ncols};
    static const double no_metrics = 0.0;
    STEP(rc, ds_h5_dset_write(file, dxpl, "metrics", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, md, 0, mine * md[0] * (md[1] > 0),
                        c->metrics ? c->metrics : &no_metrics,
                        "Metrics history so far, one row per evaluation or log point; column names in the columns attribute."));
    if (rc == DS_OK) {
        g = H5Dopen2(file, "metrics", H5P_DEFAULT);
        if (g < 0) rc = ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__, "cannot reopen dataset /metrics");
    }
    STEP(rc, ds_h5_attr_write_str_array(g, "columns", c->metrics_ncols, (const char *const *)cols));
    ds_h5_close(g);
    g = -1;
    SYNC(rc, comm, done);

    if (c->nextra > 0) {
        /* Further run state: a one-row table named like /metrics. */
        double vals[64];
        const char *names[64];
        CHECK(c->nextra <= 64, rc, done, DS_ERR_INVALID, "%d extra state values, at most 64", c->nextra);
        for (int j = 0; j < c->nextra; j++) {
            vals[j] = c->extra[j].value;
            names[j] = c->extra[j].name;
        }
        hsize_t ed[2] = {1, (hsize_t)c->nextra};
        hid_t sg = H5Gopen2(file, "state", H5P_DEFAULT);
        if (sg < 0) rc = ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__, "cannot reopen group /state");
        STEP(rc, ds_h5_dset_write(sg, dxpl, "run", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, ed, 0, mine, vals,
                            "Further run state (loss accumulators, local-search statistics); names in columns."));
        if (rc == DS_OK) {
            g = H5Dopen2(sg, "run", H5P_DEFAULT);
            if (g < 0) rc = ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__, "cannot reopen /state/run");
        }
        STEP(rc, ds_h5_attr_write_str_array(g, "columns", c->nextra, names));
        ds_h5_close(g);
        g = -1;
        ds_h5_close(sg);
        SYNC(rc, comm, done);
    }

    rc = ckpt_write_replay(comm, file, dxpl, c);
done:
    ds_h5_close(g);
    if (cols)
        for (int j = 0; j < c->metrics_ncols; j++) ds_free(cols[j]);
    ds_free(cols);
    return rc;
}

ds_status ds_ckpt_write(MPI_Comm comm, const char *path, const ds_ckpt *c)
{
    ds_h5_quiet q;
    ds_h5_quiet_begin(&q);
    ds_status rc;
    int rank = 0;
    hid_t file = -1, dxpl = -1;
    ds_h5_header h = {NULL, NULL, NULL};
    char tmp[H5IO_PATH], prev[H5IO_PATH];

    rc = ckpt_check_args(path, c);
    if (rc == DS_OK) rc = ds_h5_join_path(tmp, sizeof tmp, path, ".tmp");
    if (rc == DS_OK) rc = ds_h5_join_path(prev, sizeof prev, path, ".prev");
    DS_TRY_GOTO(rc, ds_h5_agree(comm, rc), out);
    DS_MPI_GOTO(rc, out, MPI_Comm_rank(comm, &rank));
    DS_TRY_GOTO(rc, ds_h5_agree(comm, ckpt_check_consistent(comm, c)), out);
    DS_TRY_GOTO(rc, ds_h5_agree(comm, ds_h5_header_strings_bcast(comm, &c->meta, &h)), out);

    DS_TRY_GOTO(rc, ds_h5_agree(comm, ds_h5_create_tmp_file(comm, tmp, &file, &dxpl)), fail);
    DS_TRY_GOTO(rc, ds_h5_agree(comm, ds_h5_write_root_attrs(file, DS_H5_FORMAT_CHECKPOINT, &h, c->meta.dim)), fail);
    DS_TRY_GOTO(rc, ds_h5_agree(comm, ckpt_write_body(comm, file, dxpl, c)), fail);
    ds_h5_close(dxpl);
    dxpl = -1;
    herr_t cerr = H5Fclose(file);
    file = -1;
    DS_TRY_GOTO(rc, ds_h5_agree(comm, cerr >= 0 ? DS_OK : ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__,
                                                                     "closing %s failed (disk full?)", tmp)),
                fail);
    DS_TRY_GOTO(rc, ds_h5_commit_collective(comm, tmp, path, prev), fail);
    goto out;
fail:
    ds_h5_close(dxpl);
    if (file >= 0) H5Fclose(file);
    if (rank == 0) remove(tmp);
    ds_error_trace(__FILE__, __LINE__, __func__);
out:
    ds_h5_header_strings_free(&h);
    ds_h5_quiet_end(&q);
    return rc;
}

/* Root attributes: format, format_version, energy, dim, precision, config,
 * code_version; refuses another format and newer versions. */
static ds_status ckpt_read_header(const ds_h5_rd *r, const char *want_format, ds_ckpt_data *out)
{
    ds_status rc = DS_OK;
    char *s = NULL;
    DS_TRY_GOTO(rc, ds_h5_attr_read_str(r, r->file, "/", "format", &s), done);
    CHECK(strcmp(s, want_format) == 0, rc, done, DS_ERR_FORMAT, "%s is not a diffsamp %s: its format attribute is '%s', expected '%s'",
          r->path, r->kind, s, want_format);
    DS_FREE(s);
    int version = 0;
    DS_TRY_GOTO(rc, ds_h5_attr_read_num(r, r->file, "/", "format_version", H5T_NATIVE_INT, &version), done);
    CHECK(version <= DS_H5_FORMAT_VERSION, rc, done, DS_ERR_FORMAT,
          "%s %s has format_version %d, newer than the version %d this build of diffsamp (" DS_VERSION
          ") reads: use a newer diffsamp",
          r->kind, r->path, version, DS_H5_FORMAT_VERSION);
    CHECK(version >= 1, rc, done, DS_ERR_FORMAT, "%s %s has an invalid format_version %d", r->kind, r->path, version);
    out->format_version = version;
    DS_TRY_GOTO(rc, ds_h5_attr_read_str(r, r->file, "/", "energy", &s), done);
    CHECK(strlen(s) < DS_NAME_MAX, rc, done, DS_ERR_FORMAT, "%s %s: energy name '%s' is too long", r->kind, r->path, s);
    snprintf(out->energy, sizeof out->energy, "%s", s);
    DS_FREE(s);
    DS_TRY_GOTO(rc, ds_h5_attr_read_num(r, r->file, "/", "dim", H5T_NATIVE_INT, &out->dim), done);
    CHECK(out->dim >= 1, rc, done, DS_ERR_FORMAT, "%s %s: dim attribute is %d, expected >= 1", r->kind, r->path, out->dim);
    DS_TRY_GOTO(rc, ds_h5_attr_read_str(r, r->file, "/", "precision", &s), done);
    snprintf(out->precision, sizeof out->precision, "%s", s);
    DS_FREE(s);
    DS_TRY_GOTO(rc, ds_h5_attr_read_str(r, r->file, "/", "config", &out->config_yaml), done);
    DS_TRY_GOTO(rc, ds_h5_attr_read_str(r, r->file, "/", "code_version", &out->code_version), done);
done:
    ds_free(s);
    return rc;
}

static ds_status ckpt_check_expect(const ds_h5_rd *r, const ds_ckpt_expect *e, const ds_ckpt_data *out)
{
    if (!e) return DS_OK;
    DS_CHECK(!e->energy || strcmp(e->energy, out->energy) == 0, DS_ERR_CONFIG,
             "checkpoint %s was written for energy '%s' but this run is configured for energy '%s'", r->path,
             out->energy, e->energy);
    DS_CHECK(e->dim <= 0 || e->dim == out->dim, DS_ERR_CONFIG,
             "checkpoint %s was written for energy '%s' in dimension %d but this run uses dimension %d", r->path,
             out->energy, out->dim, e->dim);
    return DS_OK;
}

/* Reads the replicated part: parameters, moments, scalars and metrics. */
static ds_status ckpt_read_replicated(const ds_h5_rd *r, const ds_ckpt_expect *e, ds_ckpt_data *out)
{
    ds_status rc = DS_OK;
    hid_t d = -1;
    hsize_t found[2] = {0, 0}, want1 = ANY_DIM;
    DS_TRY_GOTO(rc, ds_h5_dset_open(r, "/model/params", H5T_FLOAT, 1, &want1, found, &d), done);
    out->n_params = (size_t)found[0];
    if (e && e->n_params && e->n_params != out->n_params)
        FAIL(rc, done, DS_ERR_CONFIG,
             "checkpoint %s: /model/params has shape (%zu) but this model has shape (%zu): the checkpoint was "
             "written by a differently configured network (sampler.* settings)",
             r->path, out->n_params, e->n_params);
    size_t n = out->n_params;
    out->params = ds_calloc(n, sizeof(ds_real));
    out->m = ds_calloc(n, sizeof(ds_real));
    out->v = ds_calloc(n, sizeof(ds_real));
    CHECK(out->params && out->m && out->v, rc, done, DS_ERR_NOMEM, "out of memory for %zu parameters", n);
    DS_TRY_GOTO(rc, ds_h5_dset_read_rows(r, d, "/model/params", ds_h5_real_mem_type(), 1, found, 0, found[0], out->params), done);
    hsize_t wn = (hsize_t)n;
    DS_TRY_GOTO(rc, ds_h5_dset_read_all(r, "/optimizer/m", H5T_FLOAT, ds_h5_real_mem_type(), 1, &wn, out->m), done);
    DS_TRY_GOTO(rc, ds_h5_dset_read_all(r, "/optimizer/v", H5T_FLOAT, ds_h5_real_mem_type(), 1, &wn, out->v), done);
    DS_TRY_GOTO(rc, ds_h5_dset_read_all(r, "/optimizer/step", H5T_INTEGER, H5T_NATIVE_INT64, 0, NULL, &out->adam_step), done);
    DS_TRY_GOTO(rc, ds_h5_dset_read_all(r, "/state/iteration", H5T_INTEGER, H5T_NATIVE_INT64, 0, NULL, &out->iteration), done);
    DS_TRY_GOTO(rc, ds_h5_dset_read_all(r, "/state/world_size", H5T_INTEGER, H5T_NATIVE_INT, 0, NULL, &out->world_size), done);
    DS_TRY_GOTO(rc, ds_h5_dset_read_all(r, "/state/ls_step", H5T_FLOAT, H5T_NATIVE_DOUBLE, 0, NULL, &out->ls_step), done);
    DS_TRY_GOTO(rc, ds_h5_dset_read_all(r, "/state/exploration", H5T_FLOAT, H5T_NATIVE_DOUBLE, 0, NULL, &out->exploration), done);
    DS_TRY_GOTO(rc, ds_h5_dset_read_all(r, "/state/rng_seed", H5T_INTEGER, H5T_NATIVE_UINT64, 0, NULL, &out->rng_seed), done);
    CHECK(out->world_size >= 1, rc, done, DS_ERR_FORMAT, "checkpoint %s: /state/world_size is %d, expected >= 1",
          r->path, out->world_size);

    ds_h5_close(d);
    d = -1;
    hsize_t wm[2] = {ANY_DIM, ANY_DIM};
    DS_TRY_GOTO(rc, ds_h5_dset_open(r, "/metrics", H5T_FLOAT, 2, wm, found, &d), done);
    DS_TRY_GOTO(rc, ds_h5_attr_read_str_array(r, d, "/metrics", "columns", &out->metrics_ncols, &out->metrics_columns), done);
    CHECK((hsize_t)out->metrics_ncols == found[1], rc, done, DS_ERR_FORMAT,
          "checkpoint %s: /metrics has %llu columns but its columns attribute names %d", r->path,
          (unsigned long long)found[1], out->metrics_ncols);
    out->metrics_rows = (size_t)found[0];
    out->metrics = ds_calloc(out->metrics_rows * (size_t)out->metrics_ncols, sizeof(double));
    CHECK(out->metrics != NULL, rc, done, DS_ERR_NOMEM, "out of memory for the metrics history");
    DS_TRY_GOTO(rc, ds_h5_dset_read_rows(r, d, "/metrics", H5T_NATIVE_DOUBLE, 2, found, 0, found[1] ? found[0] : 0,
                                   out->metrics),
                done);
    ds_h5_close(d);
    d = -1;
    /* optional: further run state */
    htri_t has_run;
    H5E_BEGIN_TRY { has_run = H5Lexists(r->file, "/state/run", H5P_DEFAULT); } H5E_END_TRY;
    if (has_run > 0) {
        hsize_t wr[2] = {1, ANY_DIM};
        DS_TRY_GOTO(rc, ds_h5_dset_open(r, "/state/run", H5T_FLOAT, 2, wr, found, &d), done);
        DS_TRY_GOTO(rc, ds_h5_attr_read_str_array(r, d, "/state/run", "columns", &out->nextra, &out->extra_names), done);
        CHECK((hsize_t)out->nextra == found[1], rc, done, DS_ERR_FORMAT,
              "checkpoint %s: /state/run has %llu columns but its columns attribute names %d", r->path,
              (unsigned long long)found[1], out->nextra);
        out->extra_values = ds_calloc((size_t)(out->nextra > 0 ? out->nextra : 1), sizeof(double));
        CHECK(out->extra_values != NULL, rc, done, DS_ERR_NOMEM, "out of memory for the run state");
        DS_TRY_GOTO(rc, ds_h5_dset_read_rows(r, d, "/state/run", H5T_NATIVE_DOUBLE, 2, found, 0, 1, out->extra_values), done);
    }
done:
    ds_h5_close(d);
    return rc;
}

/* Each /replay/<name> group, its even share of rows on this rank. */
static ds_status ckpt_read_replay(MPI_Comm comm, const ds_h5_rd *r, ds_ckpt_data *out)
{
    ds_status rc = DS_OK;
    hid_t replay = -1, g = -1, dx = -1, dl = -1, dc = -1;
    int rank, size;
    DS_MPI_GOTO(rc, done, MPI_Comm_rank(comm, &rank));
    DS_MPI_GOTO(rc, done, MPI_Comm_size(comm, &size));
    CHECK(H5Lexists(r->file, "/replay", H5P_DEFAULT) > 0, rc, done, DS_ERR_FORMAT, "checkpoint %s: group /replay is missing",
          r->path);
    replay = H5Gopen2(r->file, "/replay", H5P_DEFAULT);
    CHECK(replay >= 0, rc, done, DS_ERR_FORMAT, "checkpoint %s: /replay is not a group", r->path);
    H5G_info_t info;
    CHECK(H5Gget_info(replay, &info) >= 0, rc, done, DS_ERR_FORMAT, "checkpoint %s: cannot list /replay", r->path);
    CHECK(info.nlinks <= DS_CKPT_MAX_BUFFERS, rc, done, DS_ERR_FORMAT,
          "checkpoint %s: /replay holds %llu buffers, at most %d are supported", r->path,
          (unsigned long long)info.nlinks, DS_CKPT_MAX_BUFFERS);
    for (hsize_t i = 0; i < info.nlinks; i++) {
        ds_ckpt_data_buffer *B = &out->buffers[out->nbuffers];
        ssize_t len = H5Lget_name_by_idx(replay, ".", H5_INDEX_NAME, H5_ITER_INC, i, B->name, sizeof B->name, H5P_DEFAULT);
        CHECK(len > 0 && (size_t)len < sizeof B->name, rc, done, DS_ERR_FORMAT,
              "checkpoint %s: cannot read the name of buffer %llu in /replay", r->path, (unsigned long long)i);
        out->nbuffers++;
        char gname[DS_NAME_MAX + 16], nx[DS_NAME_MAX + 32], nl[DS_NAME_MAX + 32], nc[DS_NAME_MAX + 32];
        snprintf(gname, sizeof gname, "/replay/%s", B->name);
        snprintf(nx, sizeof nx, "%s/x", gname);
        snprintf(nl, sizeof nl, "%s/log_r", gname);
        snprintf(nc, sizeof nc, "%s/counts", gname);
        g = H5Gopen2(r->file, gname, H5P_DEFAULT);
        CHECK(g >= 0, rc, done, DS_ERR_FORMAT, "checkpoint %s: %s is not a group", r->path, gname);
        int64_t cap = 0;
        DS_TRY_GOTO(rc, ds_h5_attr_read_num(r, g, gname, "capacity", H5T_NATIVE_INT64, &cap), done);
        B->capacity = (long)cap;

        hsize_t wx[2] = {ANY_DIM, (hsize_t)out->dim}, fx[2] = {0, 0}, wl, fl, wc = ANY_DIM, fc;
        DS_TRY_GOTO(rc, ds_h5_dset_open(r, nx, H5T_FLOAT, 2, wx, fx, &dx), done);
        wl = fx[0];
        DS_TRY_GOTO(rc, ds_h5_dset_open(r, nl, H5T_FLOAT, 1, &wl, &fl, &dl), done);
        DS_TRY_GOTO(rc, ds_h5_dset_open(r, nc, H5T_INTEGER, 1, &wc, &fc, &dc), done);
        CHECK(fc >= 1 && fc < (hsize_t)INT32_MAX, rc, done, DS_ERR_FORMAT, "checkpoint %s: %s is empty", r->path, nc);
        B->writer_ranks = (int)fc;
        B->counts = ds_calloc((size_t)fc, sizeof *B->counts);
        CHECK(B->counts != NULL, rc, done, DS_ERR_NOMEM, "out of memory for %s", nc);
        DS_TRY_GOTO(rc, ds_h5_dset_read_rows(r, dc, nc, H5T_NATIVE_INT64, 1, &fc, 0, fc, B->counts), done);
        int64_t sum = 0;
        for (hsize_t k = 0; k < fc; k++) {
            CHECK(B->counts[k] >= 0, rc, done, DS_ERR_FORMAT, "checkpoint %s: %s has a negative count", r->path, nc);
            sum += B->counts[k];
        }
        CHECK((hsize_t)sum == fx[0], rc, done, DS_ERR_FORMAT,
              "checkpoint %s: %s sums to %lld rows but %s has shape (%llu, %d)", r->path, nc, (long long)sum, nx,
              (unsigned long long)fx[0], out->dim);

        /* Even redistribution in saved order, whatever the writer's P. */
        size_t N = (size_t)fx[0];
        B->n_total = N;
        if (B->writer_ranks == size) {
            /* Same number of ranks: every rank gets back exactly its own shard,
             * so that a resumed run is the uninterrupted run. */
            size_t off = 0;
            for (int k = 0; k < rank; k++) off += (size_t)B->counts[k];
            B->first = off;
            B->n_local = (size_t)B->counts[rank];
        } else {
            B->first = (size_t)((unsigned long long)N * (unsigned long long)rank / (unsigned long long)size);
            B->n_local = (size_t)((unsigned long long)N * (unsigned long long)(rank + 1) / (unsigned long long)size) -
                         B->first;
        }
        B->x = ds_calloc(B->n_local * (size_t)out->dim, sizeof(ds_real));
        B->log_r = ds_calloc(B->n_local, sizeof(ds_real));
        CHECK(B->x && B->log_r, rc, done, DS_ERR_NOMEM, "out of memory for %zu rows of %s", B->n_local, gname);
        DS_TRY_GOTO(rc, ds_h5_dset_read_rows(r, dx, nx, ds_h5_real_mem_type(), 2, fx, B->first, B->n_local, B->x), done);
        DS_TRY_GOTO(rc, ds_h5_dset_read_rows(r, dl, nl, ds_h5_real_mem_type(), 1, &fl, B->first, B->n_local, B->log_r), done);
        ds_h5_close(dx);
        ds_h5_close(dl);
        ds_h5_close(dc);
        ds_h5_close(g);
        dx = dl = dc = g = -1;
    }
done:
    ds_h5_close(dx);
    ds_h5_close(dl);
    ds_h5_close(dc);
    ds_h5_close(g);
    ds_h5_close(replay);
    return rc;
}

ds_status ds_ckpt_read(MPI_Comm comm, const char *path, const ds_ckpt_expect *expect, ds_ckpt_data *out)
{
    ds_status rc = DS_OK;
    ds_h5_quiet q;
    ds_h5_rd r = {-1, -1, path, "checkpoint"};
    if (!out) return ds_error_set(DS_ERR_INVALID, __FILE__, __LINE__, __func__, "out is NULL");
    memset(out, 0, sizeof *out);
    ds_h5_quiet_begin(&q);
    if (!path || !*path) rc = ds_error_set(DS_ERR_INVALID, __FILE__, __LINE__, __func__, "checkpoint path is empty");
    DS_TRY_GOTO(rc, ds_h5_agree(comm, rc), done);
    DS_TRY_GOTO(rc, ds_h5_agree(comm, ds_h5_open_for_read(comm, &r)), done);
    DS_TRY_GOTO(rc, ds_h5_agree(comm, ckpt_read_header(&r, DS_H5_FORMAT_CHECKPOINT, out)), done);
    DS_TRY_GOTO(rc, ds_h5_agree(comm, ckpt_check_expect(&r, expect, out)), done);
    /* The reads below are collective; a failure in the middle of one of
     * them is the same on every rank (same file, same metadata). */
    DS_TRY_GOTO(rc, ds_h5_agree(comm, ckpt_read_replicated(&r, expect, out)), done);
    DS_TRY_GOTO(rc, ds_h5_agree(comm, ckpt_read_replay(comm, &r, out)), done);
done:
    ds_h5_close(r.dxpl);
    if (r.file >= 0 && H5Fclose(r.file) < 0 && rc == DS_OK)
        rc = ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__, "closing checkpoint %s failed", path);
    if (rc != DS_OK) ds_ckpt_data_free(out);
    ds_h5_quiet_end(&q);
    return rc;
}

void ds_ckpt_data_free(ds_ckpt_data *d)
{
    if (!d) return;
    ds_free(d->config_yaml);
    ds_free(d->code_version);
    ds_free(d->params);
    ds_free(d->m);
    ds_free(d->v);
    ds_free(d->metrics);
    if (d->metrics_columns)
        for (int j = 0; j < d->metrics_ncols; j++) ds_free(d->metrics_columns[j]);
    ds_free(d->metrics_columns);
    if (d->extra_names)
        for (int j = 0; j < d->nextra; j++) ds_free(d->extra_names[j]);
    ds_free(d->extra_names);
    ds_free(d->extra_values);
    for (int b = 0; b < DS_CKPT_MAX_BUFFERS; b++) {
        ds_free(d->buffers[b].counts);
        ds_free(d->buffers[b].x);
        ds_free(d->buffers[b].log_r);
    }
    memset(d, 0, sizeof *d);
}

static void append_str(char *buf, size_t cap, const char *s)
{
    if (!buf || cap == 0) return;
    size_t len = strlen(buf);
    if (len + 1 < cap) snprintf(buf + len, cap - len, "%s", s);
}

ds_status ds_ckpt_find(MPI_Comm comm, const char *path, const ds_ckpt_expect *expect, char *found,
                       size_t found_len, ds_ckpt_data *out, char *warning, size_t warning_len)
{
    ds_status rc = DS_OK, first_rc = DS_OK;
    char cand[2][H5IO_PATH];
    static char first_msg[H5IO_MSG];
    ds_ckpt_data scratch;
    ds_ckpt_data *dst = out ? out : &scratch;
    int rank = 0, any = 0;
    if (warning && warning_len) warning[0] = '\0';
    if (found && found_len) found[0] = '\0';
    if (out) memset(out, 0, sizeof *out);
    CHECK(path && *path && found && found_len, rc, local, DS_ERR_INVALID, "checkpoint path or found buffer missing");
    rc = ds_h5_join_path(cand[0], sizeof cand[0], path, "");
    if (rc == DS_OK) rc = ds_h5_join_path(cand[1], sizeof cand[1], path, ".prev");
local:
    DS_TRY(ds_h5_agree(comm, rc));
    DS_MPI(MPI_Comm_rank(comm, &rank));
    for (int k = 0; k < 2; k++) {
        /* Rank 0 decides what exists, so every rank tries the same files. */
        int exists = rank == 0 ? ds_h5_file_exists(cand[k]) : 0;
        DS_MPI(MPI_Bcast(&exists, 1, MPI_INT, 0, comm));
        if (!exists) continue;
        any = 1;
        rc = ds_ckpt_read(comm, cand[k], expect, dst);
        if (rc == DS_OK) {
            int len = snprintf(found, found_len, "%s", cand[k]);
            if (!out) ds_ckpt_data_free(&scratch);
            if (len < 0 || (size_t)len >= found_len) {
                if (out) ds_ckpt_data_free(out);
                return ds_error_set(DS_ERR_INVALID, __FILE__, __LINE__, __func__,
                                    "found buffer of %zu bytes is too small for %s", found_len, cand[k]);
            }
            return DS_OK;
        }
        append_str(warning, warning_len, "skipped ");
        append_str(warning, warning_len, cand[k]);
        append_str(warning, warning_len, ": ");
        append_str(warning, warning_len, ds_error_message());
        append_str(warning, warning_len, "\n");
        if (first_rc == DS_OK) {
            first_rc = rc;
            snprintf(first_msg, sizeof first_msg, "%s", ds_error_message());
        } else {
            char second[H5IO_MSG];
            snprintf(second, sizeof second, "%s", ds_error_message());
            return ds_error_set(first_rc, __FILE__, __LINE__, __func__,
                                "no loadable checkpoint at %s or %s.prev:\n  %s\n  and %s", path, path, first_msg, second);
        }
    }
    if (!any)
        return ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__, "no checkpoint at %s or %s.prev", path, path);
    return ds_error_set(first_rc, __FILE__, __LINE__, __func__, "no loadable checkpoint at %s (and no %s.prev):\n  %s",
                        path, path, first_msg);
}
