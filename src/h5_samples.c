/* h5_samples: sample sets, streamed in chunks (layout in h5io.h). */
#define _POSIX_C_SOURCE 200809L
#include "h5io_impl.h"
#include "diffsamp/mpicheck.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef DS_VERSION
#define DS_VERSION "unknown"
#endif

const ds_samples_column ds_samples_columns[DS_SAMPLES_NCOLUMNS] = {
    {"x", DS_H5_REAL, 1, "Terminal states x_T of forward trajectories of the trained sampler, without exploration."},
    {"log_reward", DS_H5_F64, 0, "Log reward log R(x_T) = -E(x_T) of each sample."},
    {"log_pf", DS_H5_F64, 0, "Sum over steps of the forward log-probability log p_F along each trajectory."},
    {"log_pb", DS_H5_F64, 0, "Sum over steps of log p_B, the log-probability under the reference process's backward "
                             "kernel, along each trajectory."},
    {"log_weight", DS_H5_F64, 0, "Importance log-weight log R(x_T) + sum log p_B - sum log p_F of each sample."},
};
static const char *const reserved_attrs[] = {"format", "format_version", "config", "code_version", "library_versions",
                                             "precision", "energy", "dim", "n_samples", DS_H5_INTEGRITY_ATTR};

struct ds_samples_writer {
    MPI_Comm comm;
    int rank, size;
    hid_t file, dxpl;
    int ncols;
    ds_samples_column *cols; /* (ncols) a copy of the table (its strings borrowed) */
    hid_t *d;                /* (ncols) one dataset per column */
    uint32_t *crc;           /* (ncols) CRC-32C of the rows written so far, in order */
    ds_h5_index ix;          /* the datasets' byte ranges (for the completion record) */
    int dim;
    uint64_t n_total, written;
    char path[H5IO_PATH], tmp[H5IO_PATH];
};

static void writer_release(ds_samples_writer *w, int remove_tmp)
{
    for (int k = 0; w->d && k < w->ncols; k++) ds_h5_close(w->d[k]);
    ds_free(w->d);
    ds_free(w->cols);
    ds_free(w->crc);
    ds_h5_index_free(&w->ix);
    ds_h5_close(w->dxpl);
    if (w->file >= 0) H5Fclose(w->file);
    w->file = -1;
    if (remove_tmp && w->rank == 0) remove(w->tmp);
    if (w->comm != MPI_COMM_NULL) MPI_Comm_free(&w->comm);
    ds_free(w);
}

ds_status ds_samples_open_columns(MPI_Comm comm, const char *path, const ds_h5_meta *meta,
                                  const ds_samples_column *cols, int ncols, size_t n_total, ds_samples_writer **out)
{
    ds_status rc = DS_OK;
    ds_h5_quiet q;
    ds_h5_header h = {NULL, NULL, NULL};
    ds_samples_writer *w = NULL;
    if (out) *out = NULL;
    ds_h5_quiet_begin(&q);
    CHECK(out && path && *path, rc, local, DS_ERR_INVALID, "sample set path or output handle missing");
    CHECK(meta && meta->energy && *meta->energy && strlen(meta->energy) < DS_NAME_MAX && meta->dim >= 1, rc, local,
          DS_ERR_INVALID, "sample set needs an energy name (< %d characters) and dim >= 1", DS_NAME_MAX);
    w = ds_calloc(1, sizeof *w);
    CHECK(w != NULL, rc, local, DS_ERR_NOMEM, "out of memory for a sample writer");
    w->comm = MPI_COMM_NULL;
    w->file = w->dxpl = -1;
    CHECK(cols && ncols >= 1, rc, local, DS_ERR_INVALID, "sample set %s needs at least one column", path);
    for (int k = 0; k < ncols; k++) {
        CHECK(ds_h5_plain_name(cols[k].name) && cols[k].description, rc, local, DS_ERR_INVALID,
              "sample set column %d: name '%s' must be 1-%d letters, digits or '_', with a description", k,
              cols[k].name ? cols[k].name : "(null)", DS_NAME_MAX - 1);
        for (int j = 0; j < k; j++)
            CHECK(strcmp(cols[j].name, cols[k].name) != 0, rc, local, DS_ERR_INVALID,
                  "sample set column '%s' appears twice", cols[k].name);
    }
    w->cols = ds_calloc((size_t)ncols, sizeof *w->cols);
    w->d = ds_calloc((size_t)ncols, sizeof *w->d);
    w->crc = ds_calloc((size_t)ncols, sizeof *w->crc);
    CHECK(w->cols && w->d && w->crc, rc, local, DS_ERR_NOMEM, "out of memory for a sample writer");
    memcpy(w->cols, cols, sizeof *cols * (size_t)ncols);
    w->ncols = ncols;
    for (int k = 0; k < ncols; k++) w->d[k] = -1;
    DS_TRY_GOTO(rc, ds_h5_join_path(w->path, sizeof w->path, path, ""), local);
    DS_TRY_GOTO(rc, ds_h5_join_path(w->tmp, sizeof w->tmp, path, ".tmp"), local);
local:
    rc = ds_h5_agree(comm, rc);
    if (rc != DS_OK) {
        if (w) {
            ds_free(w->cols);
            ds_free(w->d);
            ds_free(w->crc);
        }
        ds_free(w);
        ds_h5_quiet_end(&q);
        return rc;
    }
    DS_MPI_GOTO(rc, fail, MPI_Comm_dup(comm, &w->comm));
    DS_MPI_GOTO(rc, fail, MPI_Comm_rank(w->comm, &w->rank));
    DS_MPI_GOTO(rc, fail, MPI_Comm_size(w->comm, &w->size));
    w->dim = meta->dim;
    w->n_total = (uint64_t)n_total;
    {
        unsigned long long v[3] = {(unsigned long long)n_total, (unsigned long long)meta->dim,
                                   (unsigned long long)ncols}, mn[3], mx[3];
        DS_MPI_GOTO(rc, fail, MPI_Allreduce(v, mn, 3, MPI_UNSIGNED_LONG_LONG, MPI_MIN, w->comm));
        DS_MPI_GOTO(rc, fail, MPI_Allreduce(v, mx, 3, MPI_UNSIGNED_LONG_LONG, MPI_MAX, w->comm));
        CHECK(mn[0] == mx[0] && mn[1] == mx[1] && mn[2] == mx[2], rc, fail, DS_ERR_INVALID,
              "sample set %s: n_total (%llu .. %llu), dim (%llu .. %llu) or the number of columns (%llu .. %llu) "
              "differs across ranks", path, mn[0], mx[0], mn[1], mx[1], mn[2], mx[2]);
    }
    DS_TRY_GOTO(rc, ds_h5_agree(w->comm, ds_h5_header_strings_bcast(w->comm, meta, &h)), fail);
    DS_TRY_GOTO(rc, ds_h5_agree(w->comm, ds_h5_create_tmp_file(w->comm, w->tmp, &w->file, &w->dxpl)), fail);
    rc = ds_h5_write_root_attrs(w->file, DS_H5_FORMAT_SAMPLES, &h, meta->dim);
    if (rc == DS_OK) {
        int64_t n64 = (int64_t)n_total;
        rc = ds_h5_attr_write_scalar(w->file, "n_samples", H5T_STD_I64LE, H5T_NATIVE_INT64, &n64);
    }
    for (int k = 0; k < w->ncols && rc == DS_OK; k++) {
        hsize_t dims[2] = {(hsize_t)n_total, (hsize_t)meta->dim};
        rc = ds_h5_dset_create(w->file, w->cols[k].name, ds_h5_file_type(w->cols[k].type), w->cols[k].per_dim ? 2 : 1,
                               dims, w->cols[k].description, &w->d[k]);
    }
    DS_TRY_GOTO(rc, ds_h5_agree(w->comm, rc), fail);
    ds_h5_header_strings_free(&h);
    *out = w;
    ds_h5_quiet_end(&q);
    return DS_OK;
fail:
    ds_h5_header_strings_free(&h);
    writer_release(w, 1);
    ds_h5_quiet_end(&q);
    return rc;
}

ds_status ds_samples_append_columns(ds_samples_writer *w, size_t n_local, const void *const *data)
{
    DS_CHECK(w != NULL, DS_ERR_INVALID, "sample writer is NULL");
    ds_status rc = DS_OK;
    ds_h5_quiet q;
    ds_h5_quiet_begin(&q);
    const void *const *bufs = data;
    if (n_local > 0 && !bufs)
        rc = ds_error_set(DS_ERR_INVALID, __FILE__, __LINE__, __func__, "sample set %s: no column data for %zu rows",
                          w->path, n_local);
    for (int k = 0; k < w->ncols && rc == DS_OK; k++)
        if (n_local > 0 && !bufs[k])
            rc = ds_error_set(DS_ERR_INVALID, __FILE__, __LINE__, __func__, "sample set %s: %s is NULL with %zu rows",
                              w->path, w->cols[k].name, n_local);
    DS_TRY_GOTO(rc, ds_h5_agree(w->comm, rc), done);
    uint64_t n = (uint64_t)n_local, offset = 0, total = 0;
    DS_MPI_GOTO(rc, done, MPI_Exscan(&n, &offset, 1, MPI_UINT64_T, MPI_SUM, w->comm));
    if (w->rank == 0) offset = 0;
    DS_MPI_GOTO(rc, done, MPI_Allreduce(&n, &total, 1, MPI_UINT64_T, MPI_SUM, w->comm));
    CHECK(w->written + total <= w->n_total, rc, done, DS_ERR_INVALID,
          "sample set %s: appending %llu samples to the %llu written would exceed the %llu announced", w->path,
          (unsigned long long)total, (unsigned long long)w->written, (unsigned long long)w->n_total);
    for (int k = 0; k < w->ncols && rc == DS_OK && total > 0; k++) {
        hid_t fspace = H5Dget_space(w->d[k]), mspace = -1;
        hsize_t mdims[2] = {n, (hsize_t)w->dim}, start[2] = {w->written + offset, 0};
        mspace = H5Screate_simple(w->cols[k].per_dim ? 2 : 1, mdims, NULL);
        if (fspace < 0 || mspace < 0)
            rc = ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__, "sample set %s: cannot make dataspaces for %s",
                              w->path, w->cols[k].name);
        else if (n == 0 ? (H5Sselect_none(fspace) < 0 || H5Sselect_none(mspace) < 0)
                        : H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, mdims, NULL) < 0)
            rc = ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__, "sample set %s: cannot select rows of %s",
                              w->path, w->cols[k].name);
        else {
            static const double dummy = 0.0;
            hid_t mt = ds_h5_mem_type(w->cols[k].type);
            if (H5Dwrite(w->d[k], mt, mspace, fspace, w->dxpl, n ? bufs[k] : (const void *)&dummy) < 0)
                rc = ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__,
                                  "sample set %s: writing rows %llu..%llu of %s failed (disk full?)", w->tmp,
                                  (unsigned long long)start[0], (unsigned long long)(start[0] + n), w->cols[k].name);
        }
        ds_h5_close(mspace);
        ds_h5_close(fspace);
    }
    DS_TRY_GOTO(rc, ds_h5_agree(w->comm, rc), done);
    /* the chunk's rows follow everything written before, in rank order */
    for (int k = 0; k < w->ncols && total > 0; k++) {
        uint64_t row = ds_h5_size(w->cols[k].type) * (uint64_t)(w->cols[k].per_dim ? w->dim : 1);
        uint32_t chunk = 0, local = n ? ds_crc32c(0, bufs[k], (size_t)(n * row)) : 0;
        DS_TRY_GOTO(rc, ds_h5_crc_rank_order(w->comm, local, n * row, &chunk), done);
        w->crc[k] = ds_crc32c_combine(w->crc[k], chunk, total * row);
    }
    w->written += total;
done:
    ds_h5_quiet_end(&q);
    return rc;
}

ds_status ds_samples_open(MPI_Comm comm, const char *path, const ds_h5_meta *meta, size_t n_total,
                          ds_samples_writer **out)
{
    return ds_samples_open_columns(comm, path, meta, ds_samples_columns, DS_SAMPLES_NCOLUMNS, n_total, out);
}

ds_status ds_samples_append(ds_samples_writer *w, size_t n_local, const ds_real *x, const double *log_reward,
                            const double *log_pf, const double *log_pb, const double *log_weight)
{
    DS_CHECK(w != NULL && w->ncols == DS_SAMPLES_NCOLUMNS, DS_ERR_INVALID,
             "ds_samples_append writes the %d standard columns; this writer has others (use "
             "ds_samples_append_columns)", DS_SAMPLES_NCOLUMNS);
    const void *data[DS_SAMPLES_NCOLUMNS] = {x, log_reward, log_pf, log_pb, log_weight};
    return ds_samples_append_columns(w, n_local, data);
}

ds_status ds_samples_close(ds_samples_writer **wp, const ds_h5_metric *metrics, int nmetrics)
{
    DS_CHECK(wp && *wp, DS_ERR_INVALID, "sample writer is NULL");
    ds_samples_writer *w = *wp;
    *wp = NULL;
    ds_status rc = DS_OK;
    ds_h5_quiet q;
    ds_h5_quiet_begin(&q);
    char *name = NULL;
    CHECK(w->written == w->n_total, rc, local, DS_ERR_INVALID,
          "sample set %s: %llu of the %llu announced samples were appended", w->path, (unsigned long long)w->written,
          (unsigned long long)w->n_total);
    CHECK(nmetrics >= 0 && (nmetrics == 0 || metrics), rc, local, DS_ERR_INVALID, "sample set %s: bad metrics list",
          w->path);
local:
    DS_TRY_GOTO(rc, ds_h5_agree(w->comm, rc), fail);
    /* Attributes are metadata every rank writes: use rank 0's list. */
    DS_MPI_GOTO(rc, fail, MPI_Bcast(&nmetrics, 1, MPI_INT, 0, w->comm));
    for (int k = 0; k < nmetrics; k++) {
        double value = w->rank == 0 ? metrics[k].value : 0.0;
        DS_TRY_GOTO(rc, ds_h5_bcast_str(w->comm, w->rank == 0 ? metrics[k].name : NULL, &name), fail);
        DS_MPI_GOTO(rc, fail, MPI_Bcast(&value, 1, MPI_DOUBLE, 0, w->comm));
        int ok = *name != '\0';
        for (size_t j = 0; ok && j < sizeof reserved_attrs / sizeof *reserved_attrs; j++) ok = strcmp(name, reserved_attrs[j]) != 0;
        if (ok && H5Aexists(w->file, name) > 0) ok = 0;
        rc = ok ? DS_OK
                : ds_error_set(DS_ERR_INVALID, __FILE__, __LINE__, __func__,
                               "sample set %s: metric %d name '%s' is empty, reserved or repeated", w->path, k, name);
        if (rc == DS_OK) rc = ds_h5_attr_write_scalar(w->file, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
        DS_FREE(name);
        DS_TRY_GOTO(rc, ds_h5_agree(w->comm, rc), fail);
    }
    for (int k = 0; k < w->ncols; k++) {
        char dname[DS_NAME_MAX + 2];
        snprintf(dname, sizeof dname, "/%s", w->cols[k].name);
        rc = ds_h5_dset_seal(w->d[k], dname, w->crc[k], &w->ix);
        DS_TRY_GOTO(rc, ds_h5_agree(w->comm, rc), fail);
        ds_h5_close(w->d[k]);
        w->d[k] = -1;
    }
    ds_h5_close(w->dxpl);
    w->dxpl = -1;
    herr_t cerr = H5Fclose(w->file);
    w->file = -1;
    DS_TRY_GOTO(rc, ds_h5_agree(w->comm, cerr >= 0 ? DS_OK : ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__,
                                                                        "closing %s failed (disk full?)", w->tmp)),
                fail);
    DS_TRY_GOTO(rc, ds_h5_seal_file(w->comm, w->tmp, &w->ix), fail);
    DS_TRY_GOTO(rc, ds_h5_commit_collective(w->comm, w->tmp, w->path, NULL), fail);
    writer_release(w, 0);
    ds_h5_quiet_end(&q);
    return DS_OK;
fail:
    ds_free(name);
    writer_release(w, 1);
    ds_h5_quiet_end(&q);
    return rc;
}

void ds_samples_abort(ds_samples_writer **w)
{
    if (!w || !*w) return;
    ds_h5_quiet q;
    ds_h5_quiet_begin(&q);
    writer_release(*w, 1);
    *w = NULL;
    ds_h5_quiet_end(&q);
}

ds_status ds_samples_write(MPI_Comm comm, const char *path, const ds_h5_meta *meta, size_t n_local,
                           const ds_real *x, const double *log_reward, const double *log_pf, const double *log_pb,
                           const double *log_weight, const ds_h5_metric *metrics, int nmetrics)
{
    unsigned long long n = n_local, total = 0;
    DS_MPI(MPI_Allreduce(&n, &total, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, comm));
    ds_samples_writer *w = NULL;
    DS_TRY(ds_samples_open(comm, path, meta, (size_t)total, &w));
    ds_status rc = ds_samples_append(w, n_local, x, log_reward, log_pf, log_pb, log_weight);
    if (rc != DS_OK) {
        ds_error_trace(__FILE__, __LINE__, __func__);
        ds_samples_abort(&w);
        return rc;
    }
    DS_TRY(ds_samples_close(&w, metrics, nmetrics));
    return DS_OK;
}

/* ---- reading ---------------------------------------------------------------- */

void ds_samples_set_free(ds_samples_set *s)
{
    if (!s) return;
    ds_ckpt_data_free(&s->hdr);
    ds_free(s->x);
    ds_free(s->log_reward);
    ds_free(s->log_pf);
    ds_free(s->log_pb);
    ds_free(s->log_weight);
    memset(s, 0, sizeof *s);
}

static ds_status samples_read_local(ds_h5_rd *r, ds_samples_set *s)
{
    DS_TRY(ds_h5_read_header(r, DS_H5_FORMAT_SAMPLES, &s->hdr));
    int64_t n = 0;
    DS_TRY(ds_h5_attr_read_num(r, r->file, "/", "n_samples", H5T_NATIVE_INT64, &n));
    /* every sample takes more than a byte of the file: a bound before sizing */
    DS_CHECK(n >= 0 && (uint64_t)n <= r->file_size, DS_ERR_FORMAT,
             "sample set %s: n_samples is %lld, impossible for a file of %llu bytes", r->path, (long long)n,
             (unsigned long long)r->file_size);
    DS_CHECK(s->hdr.dim >= 1 && (uint64_t)s->hdr.dim <= r->file_size, DS_ERR_FORMAT,
             "sample set %s: dim %d is impossible for a file of %llu bytes", r->path, s->hdr.dim,
             (unsigned long long)r->file_size);
    DS_CHECK((uint64_t)n <= r->file_size / 4 / (uint64_t)s->hdr.dim, DS_ERR_FORMAT,
             "sample set %s: %lld samples of dimension %d cannot fit in a file of %llu bytes", r->path, (long long)n,
             s->hdr.dim, (unsigned long long)r->file_size);
    s->n = (size_t)n;
    size_t rows = s->n ? s->n : 1;
    s->x = ds_calloc(rows * (size_t)s->hdr.dim, sizeof *s->x);
    double **cols[4] = {&s->log_reward, &s->log_pf, &s->log_pb, &s->log_weight};
    for (int k = 0; k < 4; k++) *cols[k] = ds_calloc(rows, sizeof(double));
    DS_CHECK(s->x && s->log_reward && s->log_pf && s->log_pb && s->log_weight, DS_ERR_NOMEM,
             "out of memory for the %zu samples of %s", s->n, r->path);
    return DS_OK;
}

ds_status ds_samples_read(MPI_Comm comm, const char *path, ds_samples_set *out)
{
    DS_CHECK(out && path && *path, DS_ERR_INVALID, "sample set path or output missing");
    memset(out, 0, sizeof *out);
    ds_h5_quiet q;
    ds_h5_quiet_begin(&q);
    char p[H5IO_PATH];
    ds_h5_rd r = {-1, -1, p, "sample set", 0, {0, 0, NULL}, 0};
    ds_status rc = ds_h5_join_path(p, sizeof p, path, "");
    DS_TRY_GOTO(rc, ds_h5_agree(comm, rc), done);
    DS_TRY_GOTO(rc, ds_h5_agree(comm, ds_h5_open_for_read(comm, &r)), done);
    DS_TRY_GOTO(rc, ds_h5_agree(comm, samples_read_local(&r, out)), done);
    hsize_t want[2] = {(hsize_t)out->n, (hsize_t)out->hdr.dim};
    void *bufs[DS_SAMPLES_NCOLUMNS] = {out->x, out->log_reward, out->log_pf, out->log_pb, out->log_weight};
    for (int k = 0; k < DS_SAMPLES_NCOLUMNS; k++) {
        const ds_samples_column *c = &ds_samples_columns[k];
        char name[DS_NAME_MAX + 2];
        snprintf(name, sizeof name, "/%s", c->name);
        DS_TRY_GOTO(rc, ds_h5_agree(comm, ds_h5_dset_read_all(&r, name, ds_h5_class(c->type), ds_h5_mem_type(c->type),
                                                              c->per_dim ? 2 : 1, want, bufs[k])),
                    done);
    }
done:
    ds_h5_close(r.dxpl);
    if (r.file >= 0 && H5Fclose(r.file) < 0 && rc == DS_OK)
        rc = ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__, "closing sample set %s failed", path);
    ds_h5_index_free(&r.index);
    if (rc != DS_OK) ds_samples_set_free(out);
    ds_h5_quiet_end(&q);
    return rc;
}
