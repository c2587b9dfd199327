/* h5_checkpoint: checkpoint files as open handles (layout in h5io.h); the
 * modules write and read their own datasets through them (restart.c,
 * train_state.c, train_run.c).
 *
 * Every function on a handle is collective and ends with ds_h5_agree(), an
 * MPI_Allreduce of the status, so that a failure on one rank (a bad
 * argument, a failed write) sends every rank to the same cleanup instead of
 * leaving the others blocked in the next collective HDF5 call. */
#define _POSIX_C_SOURCE 200809L
#include "h5io_impl.h"
#include "diffsamp/mpicheck.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef DS_VERSION
#define DS_VERSION "unknown"
#endif

struct ds_ckpt_file {
    MPI_Comm comm;   /* a duplicate of the caller's */
    int rank, size;
    int writing;     /* 1: being written to tmp; 0: open for reading */
    ds_h5_rd r;      /* file, transfer properties, path, kind */
    ds_ckpt_data hdr;
    ds_h5_index wix; /* the datasets written (writing) */
    char path[H5IO_PATH], tmp[H5IO_PATH], prev[H5IO_PATH];
};

MPI_Comm ds_ckpt_comm(const ds_ckpt_file *f) { return f->comm; }
ds_status ds_ckpt_agree(ds_ckpt_file *f, ds_status rc) { return ds_h5_agree(f->comm, rc); }
const char *ds_ckpt_path(const ds_ckpt_file *f) { return f->path; }
const ds_ckpt_data *ds_ckpt_header(const ds_ckpt_file *f) { return &f->hdr; }

/* Closes and frees a handle; a write handle's temporary file is removed. */
static ds_status release(ds_ckpt_file *f, int remove_tmp)
{
    ds_status rc = DS_OK;
    ds_h5_close(f->r.dxpl);
    if (f->r.file >= 0 && H5Fclose(f->r.file) < 0)
        rc = ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__, "closing checkpoint %s failed", f->path);
    if (remove_tmp && f->writing && f->rank == 0) remove(f->tmp);
    if (f->comm != MPI_COMM_NULL) MPI_Comm_free(&f->comm);
    ds_ckpt_data_free(&f->hdr);
    ds_h5_index_free(&f->wix);
    ds_h5_index_free(&f->r.index);
    ds_free(f);
    return rc;
}

static ds_status handle_new(MPI_Comm comm, const char *path, int writing, ds_ckpt_file **out)
{
    *out = NULL;
    ds_status rc = DS_OK;
    ds_ckpt_file *f = ds_calloc(1, sizeof *f);
    CHECK(f != NULL, rc, done, DS_ERR_NOMEM, "out of memory for a checkpoint handle");
    f->comm = MPI_COMM_NULL;
    f->r.file = f->r.dxpl = -1;
    f->r.path = f->path;
    f->r.kind = "checkpoint";
    f->writing = writing;
    CHECK(path && *path, rc, done, DS_ERR_INVALID, "checkpoint path is empty");
    DS_TRY_GOTO(rc, ds_h5_join_path(f->path, sizeof f->path, path, ""), done);
    DS_TRY_GOTO(rc, ds_h5_join_path(f->tmp, sizeof f->tmp, path, ".tmp"), done);
    DS_TRY_GOTO(rc, ds_h5_join_path(f->prev, sizeof f->prev, path, ".prev"), done);
done:
    rc = ds_h5_agree(comm, rc);
    if (rc == DS_OK) {
        if (MPI_Comm_dup(comm, &f->comm) != MPI_SUCCESS) rc = DS_ERR_MPI;
        else if (MPI_Comm_rank(f->comm, &f->rank) != MPI_SUCCESS || MPI_Comm_size(f->comm, &f->size) != MPI_SUCCESS)
            rc = DS_ERR_MPI;
        if (rc != DS_OK) ds_error_set(rc, __FILE__, __LINE__, __func__, "cannot duplicate the communicator");
    }
    if (rc != DS_OK) {
        if (f) release(f, 0);
        return rc;
    }
    *out = f;
    return DS_OK;
}

/* ---- writing ---------------------------------------------------------------- */

ds_status ds_ckpt_create(MPI_Comm comm, const char *path, const ds_h5_meta *meta, ds_ckpt_file **out)
{
    ds_h5_quiet q;
    ds_h5_quiet_begin(&q);
    ds_h5_header h = {NULL, NULL, NULL};
    ds_ckpt_file *f = NULL;
    ds_status rc = DS_OK;
    if (!out) rc = ds_error_set(DS_ERR_INVALID, __FILE__, __LINE__, __func__, "checkpoint handle pointer is NULL");
    else if (!meta || !meta->energy || !*meta->energy || strlen(meta->energy) >= DS_NAME_MAX)
        rc = ds_error_set(DS_ERR_INVALID, __FILE__, __LINE__, __func__,
                          "checkpoint energy name must be non-empty and shorter than %d characters", DS_NAME_MAX);
    else if (meta->dim < 1)
        rc = ds_error_set(DS_ERR_INVALID, __FILE__, __LINE__, __func__, "checkpoint dim must be >= 1, got %d",
                          meta->dim);
    DS_TRY_GOTO(rc, ds_h5_agree(comm, rc), out);
    *out = NULL;
    DS_TRY_GOTO(rc, handle_new(comm, path, 1, &f), out);
    {
        long long v = meta->dim, mn = 0, mx = 0;
        DS_MPI_GOTO(rc, fail, MPI_Allreduce(&v, &mn, 1, MPI_LONG_LONG, MPI_MIN, f->comm));
        DS_MPI_GOTO(rc, fail, MPI_Allreduce(&v, &mx, 1, MPI_LONG_LONG, MPI_MAX, f->comm));
        if (mn != mx)
            FAIL(rc, fail, DS_ERR_INVALID, "checkpoint %s: dim differs across ranks (%lld .. %lld)", f->path, mn, mx);
    }
    DS_TRY_GOTO(rc, ds_h5_agree(f->comm, ds_h5_header_strings_bcast(f->comm, meta, &h)), fail);
    DS_TRY_GOTO(rc, ds_h5_agree(f->comm, ds_h5_create_tmp_file(f->comm, f->tmp, &f->r.file, &f->r.dxpl)), fail);
    DS_TRY_GOTO(rc, ds_h5_agree(f->comm, ds_h5_write_root_attrs(f->r.file, DS_H5_FORMAT_CHECKPOINT, &h, meta->dim)),
                fail);
    *out = f;
    goto out;
fail:
    release(f, 1);
    ds_error_trace(__FILE__, __LINE__, __func__);
out:
    ds_h5_header_strings_free(&h);
    ds_h5_quiet_end(&q);
    return rc;
}

ds_status ds_ckpt_commit(ds_ckpt_file **fp)
{
    DS_CHECK(fp && *fp && (*fp)->writing, DS_ERR_INVALID, "checkpoint handle is not open for writing");
    ds_ckpt_file *f = *fp;
    *fp = NULL;
    ds_h5_quiet q;
    ds_h5_quiet_begin(&q);
    ds_status rc = DS_OK;
    ds_h5_close(f->r.dxpl);
    f->r.dxpl = -1;
    herr_t cerr = H5Fclose(f->r.file);
    f->r.file = -1;
    rc = ds_h5_agree(f->comm, cerr >= 0 ? DS_OK : ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__,
                                                                "closing %s failed (disk full?)", f->tmp));
    if (rc == DS_OK) rc = ds_h5_seal_file(f->comm, f->tmp, &f->wix);
    if (rc == DS_OK) rc = ds_h5_commit_collective(f->comm, f->tmp, f->path, f->prev);
    if (rc != DS_OK) ds_error_trace(__FILE__, __LINE__, __func__);
    release(f, rc != DS_OK);
    ds_h5_quiet_end(&q);
    return rc;
}

ds_status ds_ckpt_close(ds_ckpt_file **fp)
{
    if (!fp || !*fp) return DS_OK;
    ds_h5_quiet q;
    ds_h5_quiet_begin(&q);
    ds_ckpt_file *f = *fp;
    *fp = NULL;
    ds_status rc = DS_OK;
    ds_h5_close(f->r.dxpl);
    f->r.dxpl = -1;
    if (f->r.file >= 0 && H5Fclose(f->r.file) < 0)
        rc = ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__, "closing checkpoint %s failed", f->path);
    f->r.file = -1;
    rc = ds_h5_agree(f->comm, rc);
    release(f, 1);
    ds_h5_quiet_end(&q);
    return rc;
}

static ds_status need_writing(const ds_ckpt_file *f)
{
    DS_CHECK(f && f->writing, DS_ERR_INVALID, "checkpoint handle is not open for writing");
    return DS_OK;
}

static ds_status need_reading(const ds_ckpt_file *f)
{
    DS_CHECK(f && !f->writing, DS_ERR_INVALID, "checkpoint handle is not open for reading");
    return DS_OK;
}

/* A size or integer that every rank must pass alike (rank 0's copy is
 * written, so a mismatch would silently save one rank's view of a diverged
 * run). */
static ds_status same_everywhere(const ds_ckpt_file *f, const char *name, const char *what, long long v)
{
    long long mn = 0, mx = 0;
    DS_MPI(MPI_Allreduce(&v, &mn, 1, MPI_LONG_LONG, MPI_MIN, f->comm));
    DS_MPI(MPI_Allreduce(&v, &mx, 1, MPI_LONG_LONG, MPI_MAX, f->comm));
    DS_CHECK(mn == mx, DS_ERR_INVALID, "checkpoint %s: %s of %s differs across ranks (%lld .. %lld)", f->path, what,
             name, mn, mx);
    return DS_OK;
}

/* 1 when every group on the way to name and name itself exist (H5Lexists
 * fails, rather than answering 0, when an intermediate group is missing). */
static int link_exists(hid_t file, const char *name)
{
    char buf[H5IO_PATH];
    int len = snprintf(buf, sizeof buf, "%s", name);
    if (len <= 0 || (size_t)len >= sizeof buf) return 0;
    if (strcmp(buf, "/") == 0) return 1;
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            htri_t ex;
            H5E_BEGIN_TRY { ex = H5Lexists(file, buf, H5P_DEFAULT); } H5E_END_TRY;
            if (ex <= 0) return 0;
            *p = c;
            if (c == '\0') break;
        }
    }
    return 1;
}

/* Creates the missing groups on the way to name (not name itself). */
static ds_status make_parents(hid_t file, const char *name)
{
    char buf[H5IO_PATH];
    int len = snprintf(buf, sizeof buf, "%s", name);
    DS_CHECK(len > 1 && (size_t)len < sizeof buf && buf[0] == '/', DS_ERR_INVALID,
             "checkpoint dataset name '%s' must be an absolute path", name);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (!link_exists(file, buf)) {
            hid_t g = -1;
            DS_TRY(ds_h5_group_create(file, buf, &g));
            ds_h5_close(g);
        }
        *p = '/';
    }
    return DS_OK;
}

ds_status ds_ckpt_write_array(ds_ckpt_file *f, const char *name, ds_h5_type type, size_t n, const void *v,
                              const char *description)
{
    DS_TRY(need_writing(f));
    ds_h5_quiet q;
    ds_h5_quiet_begin(&q);
    ds_status rc = same_everywhere(f, name, "the length", (long long)n);
    if (rc == DS_OK && f->rank == 0 && n > 0 && !v)
        rc = ds_error_set(DS_ERR_INVALID, __FILE__, __LINE__, __func__, "checkpoint %s: %s is NULL", f->path, name);
    SYNC(rc, f->comm, done);
    hsize_t dn = (hsize_t)n, mine = f->rank == 0 ? dn : 0;
    STEP(rc, make_parents(f->r.file, name));
    STEP(rc, ds_h5_dset_write(f->r.file, f->r.dxpl, f->comm, &f->wix, name, ds_h5_file_type(type), ds_h5_mem_type(type), 1, &dn, 0,
                              mine, v, description));
    rc = ds_h5_agree(f->comm, rc);
done:
    if (rc != DS_OK) ds_error_trace(__FILE__, __LINE__, __func__);
    ds_h5_quiet_end(&q);
    return rc;
}

ds_status ds_ckpt_write_scalar(ds_ckpt_file *f, const char *name, ds_h5_type type, const void *v,
                               const char *description)
{
    DS_TRY(need_writing(f));
    ds_h5_quiet q;
    ds_h5_quiet_begin(&q);
    ds_status rc = DS_OK;
    if (!v) rc = ds_error_set(DS_ERR_INVALID, __FILE__, __LINE__, __func__, "checkpoint %s: %s is NULL", f->path, name);
    SYNC(rc, f->comm, done);
    long long iv = 0;
    if (type == DS_H5_I32) iv = *(const int32_t *)v;
    else if (type == DS_H5_I64) iv = *(const int64_t *)v;
    else if (type == DS_H5_U64) iv = (long long)*(const uint64_t *)v;
    rc = same_everywhere(f, name, "the value", iv);
    SYNC(rc, f->comm, done);
    STEP(rc, make_parents(f->r.file, name));
    STEP(rc, ds_h5_dset_write(f->r.file, f->r.dxpl, f->comm, &f->wix, name, ds_h5_file_type(type), ds_h5_mem_type(type), 0, NULL, 0,
                              f->rank == 0 ? 1 : 0, v, description));
    rc = ds_h5_agree(f->comm, rc);
done:
    if (rc != DS_OK) ds_error_trace(__FILE__, __LINE__, __func__);
    ds_h5_quiet_end(&q);
    return rc;
}

ds_status ds_ckpt_write_table(ds_ckpt_file *f, const char *name, int ncols, const char *const *columns, size_t rows,
                              const double *v, const char *description)
{
    DS_TRY(need_writing(f));
    ds_h5_quiet q;
    ds_h5_quiet_begin(&q);
    char **cols = NULL;
    hid_t d = -1;
    ds_status rc = DS_OK;
    if (ncols < 0 || (ncols > 0 && !columns) || (rows > 0 && ncols > 0 && !v))
        rc = ds_error_set(DS_ERR_INVALID, __FILE__, __LINE__, __func__, "checkpoint %s: table %s has %d columns, "
                          "columns %s, data %s", f->path, name, ncols, columns ? "given" : "NULL", v ? "given" : "NULL");
    for (int j = 0; rc == DS_OK && j < ncols; j++)
        if (!columns[j] || !*columns[j])
            rc = ds_error_set(DS_ERR_INVALID, __FILE__, __LINE__, __func__, "checkpoint %s: column %d of %s has no name",
                              f->path, j, name);
    SYNC(rc, f->comm, done);
    STEP(rc, same_everywhere(f, name, "the number of columns", ncols));
    STEP(rc, same_everywhere(f, name, "the number of rows", (long long)rows));
    SYNC(rc, f->comm, done);
    /* Column names are metadata every rank writes: rank 0's are used (the
     * broadcasts run on every rank before any step can fail). */
    cols = ds_calloc((size_t)ncols + 1, sizeof *cols);
    if (!cols) rc = ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__, "out of memory for column names");
    SYNC(rc, f->comm, done);
    for (int j = 0; j < ncols; j++) {
        ds_status brc = ds_h5_bcast_str(f->comm, columns[j], &cols[j]);
        if (rc == DS_OK) rc = brc;
    }
    hsize_t md[2] = {(hsize_t)rows, (hsize_t)ncols};
    static const double nothing = 0.0;
    STEP(rc, make_parents(f->r.file, name));
    STEP(rc, ds_h5_dset_write(f->r.file, f->r.dxpl, f->comm, &f->wix, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, md, 0,
                              f->rank == 0 && ncols > 0 ? md[0] : 0, v ? v : &nothing, description));
    if (rc == DS_OK) {
        d = H5Dopen2(f->r.file, name, H5P_DEFAULT);
        if (d < 0) rc = ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__, "cannot reopen dataset %s", name);
    }
    STEP(rc, ds_h5_attr_write_str_array(d, "columns", ncols, (const char *const *)cols));
    rc = ds_h5_agree(f->comm, rc);
done:
    ds_h5_close(d);
    if (cols)
        for (int j = 0; j < ncols; j++) ds_free(cols[j]);
    ds_free(cols);
    if (rc != DS_OK) ds_error_trace(__FILE__, __LINE__, __func__);
    ds_h5_quiet_end(&q);
    return rc;
}

ds_status ds_ckpt_write_rows(ds_ckpt_file *f, const char *name, ds_h5_type type, int width, size_t n_local,
                             const void *v, const char *description)
{
    DS_TRY(need_writing(f));
    ds_h5_quiet q;
    ds_h5_quiet_begin(&q);
    ds_status rc = DS_OK;
    if (width < 0 || (n_local > 0 && !v))
        rc = ds_error_set(DS_ERR_INVALID, __FILE__, __LINE__, __func__, "checkpoint %s: %s has width %d and %zu rows "
                          "with data %s", f->path, name, width, n_local, v ? "given" : "NULL");
    SYNC(rc, f->comm, done);
    rc = same_everywhere(f, name, "the row width", width);
    SYNC(rc, f->comm, done);
    uint64_t n = (uint64_t)n_local, offset = 0, total = 0;
    DS_MPI_GOTO(rc, done, MPI_Exscan(&n, &offset, 1, MPI_UINT64_T, MPI_SUM, f->comm));
    if (f->rank == 0) offset = 0; /* MPI_Exscan leaves rank 0's result undefined */
    DS_MPI_GOTO(rc, done, MPI_Allreduce(&n, &total, 1, MPI_UINT64_T, MPI_SUM, f->comm));
    hsize_t dims[2] = {(hsize_t)total, (hsize_t)width};
    STEP(rc, make_parents(f->r.file, name));
    STEP(rc, ds_h5_dset_write(f->r.file, f->r.dxpl, f->comm, &f->wix, name, ds_h5_file_type(type), ds_h5_mem_type(type),
                              width > 0 ? 2 : 1, dims, (hsize_t)offset, (hsize_t)n, v, description));
    rc = ds_h5_agree(f->comm, rc);
done:
    if (rc != DS_OK) ds_error_trace(__FILE__, __LINE__, __func__);
    ds_h5_quiet_end(&q);
    return rc;
}

ds_status ds_ckpt_write_group(ds_ckpt_file *f, const char *name)
{
    DS_TRY(need_writing(f));
    ds_h5_quiet q;
    ds_h5_quiet_begin(&q);
    ds_status rc = make_parents(f->r.file, name);
    if (rc == DS_OK && !link_exists(f->r.file, name)) {
        hid_t g = -1;
        rc = ds_h5_group_create(f->r.file, name, &g);
        ds_h5_close(g);
    }
    rc = ds_h5_agree(f->comm, rc);
    ds_h5_quiet_end(&q);
    return rc;
}

ds_status ds_ckpt_write_attr(ds_ckpt_file *f, const char *obj, const char *attr, ds_h5_type type, const void *v)
{
    DS_TRY(need_writing(f));
    ds_h5_quiet q;
    ds_h5_quiet_begin(&q);
    ds_status rc = DS_OK;
    unsigned char buf[8] = {0};
    if (f->rank == 0 && v) memcpy(buf, v, ds_h5_size(type));
    DS_MPI_GOTO(rc, done, MPI_Bcast(buf, (int)sizeof buf, MPI_BYTE, 0, f->comm));
    hid_t o = link_exists(f->r.file, obj) ? H5Oopen(f->r.file, obj, H5P_DEFAULT) : -1;
    if (o < 0) rc = ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__, "checkpoint %s: no object %s for attribute %s",
                                 f->path, obj, attr);
    STEP(rc, ds_h5_attr_write_scalar(o, attr, ds_h5_file_type(type), ds_h5_mem_type(type), buf));
    ds_h5_close(o);
    rc = ds_h5_agree(f->comm, rc);
done:
    ds_h5_quiet_end(&q);
    return rc;
}

/* ---- reading ---------------------------------------------------------------- */

/* Root attributes: format, format_version, energy, dim, precision, config,
 * code_version; refuses another format and newer versions. */
ds_status ds_h5_read_header(const ds_h5_rd *r, const char *want_format, ds_ckpt_data *out)
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
    out->plugin_sha256[0] = '\0';
    if (H5Aexists(r->file, "energy_plugin_sha256") > 0) {
        DS_TRY_GOTO(rc, ds_h5_attr_read_str(r, r->file, "/", "energy_plugin_sha256", &s), done);
        CHECK(strlen(s) == 64, rc, done, DS_ERR_FORMAT, "%s %s: attribute energy_plugin_sha256 is '%s', not 64 hex digits",
              r->kind, r->path, s);
        snprintf(out->plugin_sha256, sizeof out->plugin_sha256, "%s", s);
        DS_FREE(s);
    }
done:
    ds_free(s);
    return rc;
}

static ds_status check_expect(const ds_h5_rd *r, const ds_ckpt_expect *e, const ds_ckpt_data *out)
{
    if (!e) return DS_OK;
    DS_CHECK(!e->energy || strcmp(e->energy, out->energy) == 0, DS_ERR_CONFIG,
             "checkpoint %s was written for energy '%s' but this run is configured for energy '%s'", r->path,
             out->energy, e->energy);
    DS_CHECK(e->dim <= 0 || e->dim == out->dim, DS_ERR_CONFIG,
             "checkpoint %s was written for energy '%s' in dimension %d but this run uses dimension %d", r->path,
             out->energy, out->dim, e->dim);
    if (e->plugin_sha256 && out->plugin_sha256[0] && strcmp(e->plugin_sha256, out->plugin_sha256) != 0) {
        const char *allow = getenv("DS_ALLOW_PLUGIN_CHANGE");
        DS_CHECK(allow && strcmp(allow, "1") == 0, DS_ERR_CONFIG,
                 "checkpoint %s was written with an energy plugin library of SHA-256 %s, but this run's library "
                 "has SHA-256 %s: the energy may not be the one the run was trained on. Use the library the run "
                 "started with, or set DS_ALLOW_PLUGIN_CHANGE=1 to continue with this one",
                 r->path, out->plugin_sha256, e->plugin_sha256);
    }
    return DS_OK;
}

ds_status ds_ckpt_open(MPI_Comm comm, const char *path, const ds_ckpt_expect *expect, ds_ckpt_file **out)
{
    ds_h5_quiet q;
    ds_h5_quiet_begin(&q);
    ds_ckpt_file *f = NULL;
    ds_status rc = ds_h5_agree(comm, out ? DS_OK : ds_error_set(DS_ERR_INVALID, __FILE__, __LINE__, __func__,
                                                                 "checkpoint handle pointer is NULL"));
    if (rc != DS_OK) goto out;
    *out = NULL;
    DS_TRY_GOTO(rc, handle_new(comm, path, 0, &f), out);
    DS_TRY_GOTO(rc, ds_h5_agree(f->comm, ds_h5_open_for_read(f->comm, &f->r)), fail);
    DS_TRY_GOTO(rc, ds_h5_agree(f->comm, ds_h5_read_header(&f->r, DS_H5_FORMAT_CHECKPOINT, &f->hdr)), fail);
    DS_TRY_GOTO(rc, ds_h5_agree(f->comm, check_expect(&f->r, expect, &f->hdr)), fail);
    *out = f;
    goto out;
fail:
    release(f, 0);
    ds_error_trace(__FILE__, __LINE__, __func__);
out:
    ds_h5_quiet_end(&q);
    return rc;
}

int ds_ckpt_has(ds_ckpt_file *f, const char *name)
{
    if (!f || f->r.file < 0) return 0;
    ds_h5_quiet q;
    ds_h5_quiet_begin(&q);
    int ex = link_exists(f->r.file, name);
    ds_h5_quiet_end(&q);
    return ex;
}

static ds_status shape_of(const ds_ckpt_file *f, const char *name, int *ndims, size_t dims[2])
{
    ds_status rc = DS_OK;
    hid_t d = -1, sp = -1, t = -1;
    hsize_t hd[H5S_MAX_RANK];
    CHECK(link_exists(f->r.file, name), rc, done, DS_ERR_FORMAT, "checkpoint %s: dataset %s is missing", f->path, name);
    d = H5Dopen2(f->r.file, name, H5P_DEFAULT);
    CHECK(d >= 0, rc, done, DS_ERR_FORMAT, "checkpoint %s: %s is not a readable dataset", f->path, name);
    sp = H5Dget_space(d);
    t = H5Dget_type(d);
    int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    CHECK(nd >= 0 && nd <= 2 && H5Sget_simple_extent_dims(sp, hd, NULL) >= 0, rc, done, DS_ERR_FORMAT,
          "checkpoint %s: dataset %s is not a scalar, vector or matrix", f->path, name);
    DS_TRY_GOTO(rc, ds_h5_dset_sized(&f->r, d, t, name, nd, hd), done);
    *ndims = nd;
    for (int i = 0; i < 2; i++) dims[i] = i < nd ? (size_t)hd[i] : 0;
done:
    ds_h5_close(t);
    ds_h5_close(sp);
    ds_h5_close(d);
    return rc;
}

ds_status ds_ckpt_shape(ds_ckpt_file *f, const char *name, int *ndims, size_t dims[2])
{
    DS_TRY(need_reading(f));
    ds_h5_quiet q;
    ds_h5_quiet_begin(&q);
    ds_status rc = ds_h5_agree(f->comm, shape_of(f, name, ndims, dims));
    ds_h5_quiet_end(&q);
    return rc;
}

ds_status ds_ckpt_read_array(ds_ckpt_file *f, const char *name, ds_h5_type type, size_t n, void *v)
{
    DS_TRY(need_reading(f));
    ds_h5_quiet q;
    ds_h5_quiet_begin(&q);
    hsize_t want = (hsize_t)n;
    ds_status rc = ds_h5_agree(f->comm, ds_h5_dset_read_all(&f->r, name, ds_h5_class(type), ds_h5_mem_type(type), 1,
                                                            &want, v));
    ds_h5_quiet_end(&q);
    return rc;
}

ds_status ds_ckpt_read_scalar(ds_ckpt_file *f, const char *name, ds_h5_type type, void *v)
{
    DS_TRY(need_reading(f));
    ds_h5_quiet q;
    ds_h5_quiet_begin(&q);
    ds_status rc = ds_h5_agree(f->comm, ds_h5_dset_read_all(&f->r, name, ds_h5_class(type), ds_h5_mem_type(type), 0,
                                                            NULL, v));
    ds_h5_quiet_end(&q);
    return rc;
}

void ds_ckpt_table_free(ds_ckpt_table *t)
{
    if (!t) return;
    if (t->columns)
        for (int j = 0; j < t->ncols; j++) ds_free(t->columns[j]);
    ds_free(t->columns);
    ds_free(t->v);
    memset(t, 0, sizeof *t);
}

int ds_ckpt_table_column(const ds_ckpt_table *t, const char *name)
{
    for (int j = 0; j < t->ncols; j++)
        if (strcmp(t->columns[j], name) == 0) return j;
    return -1;
}

static ds_status read_table(const ds_ckpt_file *f, const char *name, long want_rows, ds_ckpt_table *t)
{
    ds_status rc = DS_OK;
    hid_t d = -1;
    hsize_t want[2] = {want_rows < 0 ? ANY_DIM : (hsize_t)want_rows, ANY_DIM}, found[2] = {0, 0};
    DS_TRY_GOTO(rc, ds_h5_dset_open(&f->r, name, H5T_FLOAT, 2, want, found, &d), done);
    DS_TRY_GOTO(rc, ds_h5_attr_read_str_array(&f->r, d, name, "columns", &t->ncols, &t->columns), done);
    CHECK((hsize_t)t->ncols == found[1], rc, done, DS_ERR_FORMAT,
          "checkpoint %s: %s has %llu columns but its columns attribute names %d", f->path, name,
          (unsigned long long)found[1], t->ncols);
    /* ds_h5_dset_open checked the shape against the stored bytes; the
     * product is checked again here because it sizes the allocation */
    CHECK(found[0] <= (hsize_t)(SIZE_MAX / sizeof(double)) / (found[1] ? found[1] : 1) - 1, rc, done, DS_ERR_FORMAT,
          "checkpoint %s: %s claims %llu rows of %d columns", f->path, name, (unsigned long long)found[0], t->ncols);
    t->rows = (size_t)found[0];
    t->v = ds_calloc(t->rows * (size_t)t->ncols + 1, sizeof(double));
    CHECK(t->v != NULL, rc, done, DS_ERR_NOMEM, "out of memory for table %s", name);
    DS_TRY_GOTO(rc, ds_h5_dset_read_rows(&f->r, d, name, H5T_NATIVE_DOUBLE, 2, found, 0, found[1] ? found[0] : 0, t->v),
                done);
done:
    ds_h5_close(d);
    return rc;
}

ds_status ds_ckpt_read_table(ds_ckpt_file *f, const char *name, long want_rows, ds_ckpt_table *t)
{
    DS_TRY(need_reading(f));
    memset(t, 0, sizeof *t);
    ds_h5_quiet q;
    ds_h5_quiet_begin(&q);
    ds_status rc = ds_h5_agree(f->comm, read_table(f, name, want_rows, t));
    if (rc != DS_OK) ds_ckpt_table_free(t);
    ds_h5_quiet_end(&q);
    return rc;
}

static ds_status read_rows(const ds_ckpt_file *f, const char *name, ds_h5_type type, int width, size_t first,
                           size_t n, void *v)
{
    ds_status rc = DS_OK;
    hid_t d = -1;
    hsize_t want[2] = {ANY_DIM, (hsize_t)width}, found[2] = {0, 0};
    DS_TRY_GOTO(rc, ds_h5_dset_open(&f->r, name, ds_h5_class(type), width > 0 ? 2 : 1, want, found, &d), done);
    CHECK(first + n <= (size_t)found[0], rc, done, DS_ERR_FORMAT,
          "checkpoint %s: rows %zu..%zu of %s were asked for, it has %llu", f->path, first, first + n, name,
          (unsigned long long)found[0]);
    DS_TRY_GOTO(rc, ds_h5_dset_read_rows(&f->r, d, name, ds_h5_mem_type(type), width > 0 ? 2 : 1, found,
                                         (hsize_t)first, (hsize_t)n, v), done);
done:
    ds_h5_close(d);
    return rc;
}

ds_status ds_ckpt_read_rows(ds_ckpt_file *f, const char *name, ds_h5_type type, int width, size_t first, size_t n,
                            void *v)
{
    DS_TRY(need_reading(f));
    ds_h5_quiet q;
    ds_h5_quiet_begin(&q);
    ds_status rc = ds_h5_agree(f->comm, read_rows(f, name, type, width, first, n, v));
    ds_h5_quiet_end(&q);
    return rc;
}

ds_status ds_ckpt_read_attr(ds_ckpt_file *f, const char *obj, const char *attr, ds_h5_type type, void *v)
{
    DS_TRY(need_reading(f));
    ds_h5_quiet q;
    ds_h5_quiet_begin(&q);
    ds_status rc = DS_OK;
    hid_t o = link_exists(f->r.file, obj) ? H5Oopen(f->r.file, obj, H5P_DEFAULT) : -1;
    if (o < 0)
        rc = ds_error_set(DS_ERR_FORMAT, __FILE__, __LINE__, __func__, "checkpoint %s: %s is missing", f->path, obj);
    STEP(rc, ds_h5_attr_read_num(&f->r, o, obj, attr, ds_h5_mem_type(type), v));
    ds_h5_close(o);
    rc = ds_h5_agree(f->comm, rc);
    ds_h5_quiet_end(&q);
    return rc;
}

void ds_ckpt_data_free(ds_ckpt_data *d)
{
    if (!d) return;
    ds_free(d->config_yaml);
    ds_free(d->code_version);
    memset(d, 0, sizeof *d);
}

static void append_str(char *buf, size_t cap, const char *s)
{
    if (!buf || cap == 0) return;
    size_t len = strlen(buf);
    if (len + 1 < cap) snprintf(buf + len, cap - len, "%s", s);
}

/* Opens one candidate, hands it to load, and moves its header to *out. */
static ds_status load_one(MPI_Comm comm, const char *path, const ds_ckpt_expect *expect, ds_ckpt_load_fn load,
                          void *ctx, ds_ckpt_data *out)
{
    ds_ckpt_file *f = NULL;
    DS_TRY(ds_ckpt_open(comm, path, expect, &f));
    ds_status rc = load ? load(f, ctx) : DS_OK;
    if (rc == DS_OK && out) {
        *out = f->hdr;
        memset(&f->hdr, 0, sizeof f->hdr);
    }
    ds_status crc = ds_ckpt_close(&f);
    if (rc == DS_OK && crc != DS_OK) {
        if (out) ds_ckpt_data_free(out);
        rc = crc;
    }
    return rc;
}

ds_status ds_ckpt_find_load(MPI_Comm comm, const char *path, const ds_ckpt_expect *expect, ds_ckpt_load_fn load,
                            void *ctx, char *found, size_t found_len, ds_ckpt_data *out, char *warning,
                            size_t warning_len)
{
    ds_status rc = DS_OK, first_rc = DS_OK;
    char cand[2][H5IO_PATH];
    static char first_msg[H5IO_MSG];
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
        rc = load_one(comm, cand[k], expect, load, ctx, out);
        if (rc == DS_OK) {
            int len = snprintf(found, found_len, "%s", cand[k]);
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

ds_status ds_ckpt_find(MPI_Comm comm, const char *path, const ds_ckpt_expect *expect, char *found,
                       size_t found_len, ds_ckpt_data *out, char *warning, size_t warning_len)
{
    return ds_ckpt_find_load(comm, path, expect, NULL, NULL, found, found_len, out, warning, warning_len);
}
