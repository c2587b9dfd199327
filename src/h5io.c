/* h5io: parallel HDF5 checkpoints and sample sets (layout in h5io.h).
 *
 * Every public function is collective and runs in phases; each phase ends
 * with agree(), an MPI_Allreduce of the status, so that a failure on one rank
 * (a bad argument, a failed write) sends every rank to the same cleanup
 * instead of leaving the others blocked in the next collective HDF5 call. */
#define _POSIX_C_SOURCE 200809L
#include "diffsamp/h5io.h"
#include "diffsamp/mpicheck.h"

#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef DS_VERSION
#define DS_VERSION "unknown"
#endif
#ifndef DS_GIT_VERSION
#define DS_GIT_VERSION "unknown"
#endif

#define H5IO_PATH 4096        /* room for a path plus ".prev" */
#define H5IO_MSG 4096         /* ds_error_message's capacity */
#define ANY_DIM ((hsize_t)-1) /* a dimension a shape check does not fix */

#define FAIL(rc, label, code, ...)                                                  \
    do {                                                                            \
        (rc) = ds_error_set((code), __FILE__, __LINE__, __func__, __VA_ARGS__);     \
        goto label;                                                                 \
    } while (0)
#define CHECK(cond, rc, label, code, ...)                                           \
    do {                                                                            \
        if (!(cond)) FAIL(rc, label, code, __VA_ARGS__);                            \
    } while (0)


/* ---- small utilities ------------------------------------------------------- */

/* Every rank returns the status of the lowest failing rank; ranks that did
 * not fail take over its message (prefixed by the rank). */
static ds_status agree(MPI_Comm comm, ds_status rc)
{
    int rank, size;
    DS_MPI(MPI_Comm_rank(comm, &rank));
    DS_MPI(MPI_Comm_size(comm, &size));
    int mine = rc != DS_OK ? rank : size, first = size;
    DS_MPI(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm));
    if (first == size) return DS_OK;
    int code = (int)rc;
    static char msg[H5IO_MSG];
    if (rank == first) snprintf(msg, sizeof msg, "%s", ds_error_message());
    DS_MPI(MPI_Bcast(&code, 1, MPI_INT, first, comm));
    DS_MPI(MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, first, comm));
    msg[sizeof msg - 1] = '\0';
    if (rc == DS_OK) ds_error_set((ds_status)code, __FILE__, __LINE__, __func__, "on rank %d: %s", first, msg);
    return (ds_status)code;
}

/* HDF5 prints its error stack on every failure unless told not to; the
 * previous handler is restored on the way out. */
typedef struct quiet {
    H5E_auto2_t func;
    void *data;
} quiet;
static void quiet_begin(quiet *q)
{
    q->func = NULL;
    q->data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}
static void quiet_end(const quiet *q) { H5Eset_auto2(H5E_DEFAULT, q->func, q->data); }

/* Closes any HDF5 identifier except files (whose close is collective and
 * checked by the caller); negative ids are ignored. */
static void h5_close(hid_t id)
{
    if (id < 0) return;
    switch (H5Iget_type(id)) {
    case H5I_GROUP: H5Gclose(id); break;
    case H5I_DATATYPE: H5Tclose(id); break;
    case H5I_DATASPACE: H5Sclose(id); break;
    case H5I_DATASET: H5Dclose(id); break;
    case H5I_ATTR: H5Aclose(id); break;
    case H5I_GENPROP_LST: H5Pclose(id); break;
    default: break;
    }
}

static char *str_dup(const char *s)
{
    size_t n = strlen(s);
    char *d = ds_calloc(n + 1, 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

static ds_status join_path(char *out, size_t cap, const char *path, const char *suffix)
{
    int len = snprintf(out, cap, "%s%s", path, suffix);
    DS_CHECK(len >= 0 && (size_t)len < cap, DS_ERR_INVALID, "path too long (%zu characters at most): %s%s",
             cap - 1, path, suffix);
    return DS_OK;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* "(8, 2)", "(8)" or "()" with "?" for ANY_DIM. */
static const char *shape_str(char *buf, size_t cap, int ndims, const hsize_t *dims)
{
    size_t len = 0;
    buf[0] = '\0';
    len += (size_t)snprintf(buf + len, cap - len, "(");
    for (int i = 0; i < ndims && len < cap; i++) {
        if (dims[i] == ANY_DIM)
            len += (size_t)snprintf(buf + len, cap - len, "%s?", i ? ", " : "");
        else
            len += (size_t)snprintf(buf + len, cap - len, "%s%llu", i ? ", " : "", (unsigned long long)dims[i]);
    }
    if (len < cap) snprintf(buf + len, cap - len, ")");
    return buf;
}

/* Rank 0's string on every rank (a ds_calloc'ed copy the caller frees). */
static ds_status bcast_str(MPI_Comm comm, const char *in, char **out)
{
    int rank;
    *out = NULL;
    DS_MPI(MPI_Comm_rank(comm, &rank));
    unsigned long long n = rank == 0 ? (unsigned long long)strlen(in ? in : "") : 0;
    DS_MPI(MPI_Bcast(&n, 1, MPI_UNSIGNED_LONG_LONG, 0, comm));
    DS_CHECK(n < (unsigned long long)INT32_MAX, DS_ERR_INVALID, "string of %llu bytes is too long to broadcast", n);
    char *s = ds_calloc((size_t)n + 1, 1);
    DS_ALLOC_CHECK(s);
    if (rank == 0 && n) memcpy(s, in, (size_t)n);
    ds_status rc = DS_OK;
    DS_MPI_GOTO(rc, fail, MPI_Bcast(s, (int)n + 1, MPI_CHAR, 0, comm));
    s[n] = '\0';
    *out = s;
    return DS_OK;
fail:
    ds_free(s);
    return rc;
}

/* "HDF5 x.y.z\n<MPI library, first line>\n<OpenBLAS config>". */
static void library_versions(char *buf, size_t cap)
{
    unsigned maj = 0, min = 0, rel = 0;
    H5get_libversion(&maj, &min, &rel);
    char mpi[MPI_MAX_LIBRARY_VERSION_STRING + 1] = "";
    int len = 0;
    if (MPI_Get_library_version(mpi, &len) != MPI_SUCCESS) snprintf(mpi, sizeof mpi, "MPI (unknown)");
    mpi[sizeof mpi - 1] = '\0';
    char *nl = strchr(mpi, '\n');
    if (nl) *nl = '\0';
    const char *blas = "BLAS (not OpenBLAS)";
#if defined(OPENBLAS_VERSION)
    blas = openblas_get_config();
#endif
    snprintf(buf, cap, "HDF5 %u.%u.%u\n%s\n%s", maj, min, rel, mpi, blas ? blas : "OpenBLAS");
}

static hid_t real_file_type(void) { return sizeof(ds_real) == sizeof(float) ? H5T_IEEE_F32LE : H5T_IEEE_F64LE; }
static hid_t real_mem_type(void) { return sizeof(ds_real) == sizeof(float) ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE; }

/* fsync a file or directory by name. */
static ds_status fsync_path(const char *path, int directory)
{
    int fd = open(path, directory ? O_RDONLY : O_RDWR);
    DS_CHECK(fd >= 0, DS_ERR_IO, "cannot open %s to fsync it: %s", path, strerror(errno));
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    /* Some file systems refuse fsync on directories; the data is synced. */
    DS_CHECK(rc == 0 || (directory && (err == EINVAL || err == EBADF)), DS_ERR_IO, "fsync of %s failed: %s",
             path, strerror(err));
    return DS_OK;
}

/* Rank 0, after every rank closed tmp: makes tmp durable and moves it to
 * path (the old path, if any, to prev when prev is not NULL). */
static ds_status commit_file(const char *tmp, const char *path, const char *prev)
{
    DS_TRY(fsync_path(tmp, 0));
    if (prev && file_exists(path))
        DS_CHECK(rename(path, prev) == 0, DS_ERR_IO, "cannot rename %s to %s: %s", path, prev, strerror(errno));
    DS_CHECK(rename(tmp, path) == 0, DS_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    char dir[H5IO_PATH];
    DS_TRY(join_path(dir, sizeof dir, path, ""));
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    DS_TRY(fsync_path(dir, 1));
    return DS_OK;
}

/* Collective end of a write: every rank has closed tmp; rank 0 commits. */
static ds_status commit_collective(MPI_Comm comm, const char *tmp, const char *path, const char *prev)
{
    int rank;
    DS_MPI(MPI_Comm_rank(comm, &rank));
    DS_MPI(MPI_Barrier(comm));
    ds_status rc = DS_OK;
    if (rank == 0) rc = commit_file(tmp, path, prev);
    return agree(comm, rc);
}

/* ---- writing ---------------------------------------------------------------- */

static ds_status attr_write(hid_t obj, const char *name, hid_t ftype, hid_t mtype, hid_t space, const void *buf)
{
    ds_status rc = DS_OK;
    hid_t a = H5Acreate2(obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(a >= 0, rc, done, DS_ERR_IO, "cannot create attribute '%s'", name);
    CHECK(H5Awrite(a, mtype, buf) >= 0, rc, done, DS_ERR_IO, "cannot write attribute '%s'", name);
done:
    h5_close(a);
    return rc;
}

static hid_t vlen_str_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return t;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

static ds_status attr_write_str(hid_t obj, const char *name, const char *value)
{
    ds_status rc = DS_OK;
    hid_t t = vlen_str_type(), s = H5Screate(H5S_SCALAR);
    CHECK(t >= 0 && s >= 0, rc, done, DS_ERR_IO, "cannot make the string type of attribute '%s'", name);
    const char *v = value ? value : "";
    DS_TRY_GOTO(rc, attr_write(obj, name, t, t, s, &v), done);
done:
    h5_close(t);
    h5_close(s);
    return rc;
}

/* A 1-D array of n strings (an empty dataspace when n = 0). */
static ds_status attr_write_str_array(hid_t obj, const char *name, int n, const char *const *values)
{
    ds_status rc = DS_OK;
    hsize_t dim = (hsize_t)n;
    hid_t t = vlen_str_type(), s = n > 0 ? H5Screate_simple(1, &dim, NULL) : H5Screate(H5S_NULL);
    CHECK(t >= 0 && s >= 0, rc, done, DS_ERR_IO, "cannot make the type of attribute '%s'", name);
    const char *dummy = "";
    DS_TRY_GOTO(rc, attr_write(obj, name, t, t, s, n > 0 ? (const void *)values : (const void *)&dummy), done);
done:
    h5_close(t);
    h5_close(s);
    return rc;
}

static ds_status attr_write_scalar(hid_t obj, const char *name, hid_t ftype, hid_t mtype, const void *value)
{
    ds_status rc = DS_OK;
    hid_t s = H5Screate(H5S_SCALAR);
    CHECK(s >= 0, rc, done, DS_ERR_IO, "cannot make the dataspace of attribute '%s'", name);
    DS_TRY_GOTO(rc, attr_write(obj, name, ftype, mtype, s, value), done);
done:
    h5_close(s);
    return rc;
}

/* Creates dataset `name` (shape dims; ndims 0 = scalar, at most 2) under loc
 * and writes this rank's rows [first, first + rows) of it from buf (rows of
 * dims[1] elements of mtype); a scalar is written when rows = 1. Collective:
 * every rank calls it with the same name, type and shape; ranks with rows = 0
 * select nothing but take part. */
static ds_status dset_write(hid_t loc, hid_t dxpl, const char *name, hid_t ftype, hid_t mtype, int ndims,
                            const hsize_t *dims, hsize_t first, hsize_t rows, const void *buf,
                            const char *description)
{
    ds_status rc = DS_OK;
    hid_t fspace = -1, mspace = -1, dcpl = -1, d = -1;
    hsize_t mdims[2] = {rows, ndims > 1 ? dims[1] : 1};
    if (ndims == 0) {
        fspace = H5Screate(H5S_SCALAR);
        mspace = H5Screate(H5S_SCALAR);
    } else {
        fspace = H5Screate_simple(ndims, dims, NULL);
        mspace = H5Screate_simple(ndims, mdims, NULL);
    }
    CHECK(fspace >= 0 && mspace >= 0, rc, done, DS_ERR_IO, "cannot make the dataspaces of dataset %s", name);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    CHECK(dcpl >= 0, rc, done, DS_ERR_IO, "cannot make the creation properties of dataset %s", name);
    /* Every element is written, so filling first would only double the I/O;
     * parallel HDF5 allocates contiguous storage at creation anyway. */
    CHECK(H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) >= 0 && H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) >= 0,
          rc, done, DS_ERR_IO, "cannot set the creation properties of dataset %s", name);
    d = H5Dcreate2(loc, name, ftype, fspace, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    CHECK(d >= 0, rc, done, DS_ERR_IO, "cannot create dataset %s", name);
    if (rows == 0) {
        CHECK(H5Sselect_none(fspace) >= 0 && H5Sselect_none(mspace) >= 0, rc, done, DS_ERR_IO,
              "cannot select nothing in dataset %s", name);
    } else if (ndims > 0) {
        hsize_t start[2] = {first, 0};
        CHECK(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, mdims, NULL) >= 0, rc, done, DS_ERR_IO,
              "cannot select rows %llu..%llu of dataset %s", (unsigned long long)first,
              (unsigned long long)(first + rows), name);
    }
    static const double dummy = 0.0;
    /* An empty dataset (the same on every rank) has nothing to transfer, and
     * HDF5 refuses a write to it. */
    if (H5Sget_simple_extent_npoints(fspace) > 0)
        CHECK(H5Dwrite(d, mtype, mspace, fspace, dxpl, rows > 0 ? buf : (const void *)&dummy) >= 0, rc, done,
              DS_ERR_IO, "writing dataset %s failed", name);
    DS_TRY_GOTO(rc, attr_write_str(d, "description", description), done);
done:
    h5_close(d);
    h5_close(dcpl);
    h5_close(mspace);
    h5_close(fspace);
    return rc;
}

/* Creates dataset `name` (N, [cols]) without writing it (streamed later). */
static ds_status dset_create(hid_t loc, const char *name, hid_t ftype, int ndims, const hsize_t *dims,
                             const char *description, hid_t *out)
{
    ds_status rc = DS_OK;
    hid_t fspace = H5Screate_simple(ndims, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    *out = -1;
    CHECK(fspace >= 0 && dcpl >= 0, rc, done, DS_ERR_IO, "cannot make the dataspace of dataset %s", name);
    CHECK(H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) >= 0 && H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) >= 0,
          rc, done, DS_ERR_IO, "cannot set the creation properties of dataset %s", name);
    *out = H5Dcreate2(loc, name, ftype, fspace, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    CHECK(*out >= 0, rc, done, DS_ERR_IO, "cannot create dataset %s", name);
    DS_TRY_GOTO(rc, attr_write_str(*out, "description", description), done);
done:
    h5_close(dcpl);
    h5_close(fspace);
    return rc;
}

/* The root attributes every file carries; the strings are rank 0's. */
typedef struct header_strings {
    char *config, *energy, *libs;
} header_strings;

static void header_strings_free(header_strings *h)
{
    DS_FREE(h->config);
    DS_FREE(h->energy);
    DS_FREE(h->libs);
}

static ds_status header_strings_bcast(MPI_Comm comm, const ds_h5_meta *meta, header_strings *h)
{
    int rank;
    DS_MPI(MPI_Comm_rank(comm, &rank));
    char libs[2048] = "";
    if (rank == 0) library_versions(libs, sizeof libs);
    DS_TRY(bcast_str(comm, meta->config_yaml, &h->config));
    DS_TRY(bcast_str(comm, meta->energy, &h->energy));
    DS_TRY(bcast_str(comm, libs, &h->libs));
    return DS_OK;
}

static ds_status write_root_attrs(hid_t file, const char *format, const header_strings *h, int dim)
{
    int version = DS_H5_FORMAT_VERSION;
    DS_TRY(attr_write_str(file, "format", format));
    DS_TRY(attr_write_scalar(file, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT, &version));
    DS_TRY(attr_write_str(file, "config", h->config));
    DS_TRY(attr_write_str(file, "code_version", "diffsamp " DS_VERSION " (" DS_GIT_VERSION ")"));
    DS_TRY(attr_write_str(file, "library_versions", h->libs));
    DS_TRY(attr_write_str(file, "precision", DS_REAL_NAME));
    DS_TRY(attr_write_str(file, "energy", h->energy));
    DS_TRY(attr_write_scalar(file, "dim", H5T_STD_I32LE, H5T_NATIVE_INT, &dim));
    return DS_OK;
}

/* Collective creation of path's temporary file with the MPI-IO driver and a
 * collective transfer property list. */
static ds_status create_tmp_file(MPI_Comm comm, const char *tmp, hid_t *file, hid_t *dxpl)
{
    ds_status rc = DS_OK;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    *file = -1;
    *dxpl = -1;
    CHECK(fapl >= 0 && H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL) >= 0, rc, done, DS_ERR_IO,
          "cannot set up the MPI-IO driver for %s", tmp);
    *dxpl = H5Pcreate(H5P_DATASET_XFER);
    CHECK(*dxpl >= 0 && H5Pset_dxpl_mpio(*dxpl, H5FD_MPIO_COLLECTIVE) >= 0, rc, done, DS_ERR_IO,
          "cannot set up collective transfers for %s", tmp);
    *file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    CHECK(*file >= 0, rc, done, DS_ERR_IO,
          "cannot create %s (does the directory exist and is it writable on every rank?)", tmp);
done:
    h5_close(fapl);
    return rc;
}

/* Names of groups must be plain so that "/replay/<name>" is one link. */
static int plain_name(const char *s)
{
    if (!s || !*s || strlen(s) >= DS_NAME_MAX) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return 0;
    return 1;
}

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
        DS_CHECK(plain_name(B->name), DS_ERR_INVALID,
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

/* Inside a collective phase: run a step only while every earlier one
 * succeeded, then agree once per phase, so every rank makes the same number
 * of agree() calls whichever step failed where. */
#define STEP(rc, expr)                                                              \
    do {                                                                            \
        if ((rc) == DS_OK) (rc) = (expr);                                           \
    } while (0)
#define SYNC(rc, comm, label)                                                       \
    do {                                                                            \
        (rc) = agree((comm), (rc));                                                 \
        if ((rc) != DS_OK) goto label;                                              \
    } while (0)

static ds_status group_create(hid_t loc, const char *name, hid_t *g)
{
    *g = H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    DS_CHECK(*g >= 0, DS_ERR_IO, "cannot create group %s", name);
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
    STEP(rc, group_create(file, "replay", &replay));
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
        STEP(rc, group_create(replay, B->name, &g));
        STEP(rc, attr_write_scalar(g, "capacity", H5T_STD_I64LE, H5T_NATIVE_INT64, &capacity));
        STEP(rc, dset_write(g, dxpl, "x", real_file_type(), real_mem_type(), 2, xd, (hsize_t)offset, (hsize_t)n, B->x,
                            "Replay-buffer states of every writer rank in rank order, each shard oldest first."));
        STEP(rc, dset_write(g, dxpl, "log_r", real_file_type(), real_mem_type(), 1, xd, (hsize_t)offset, (hsize_t)n,
                            B->log_r, "Log reward log R(x) of each row of x."));
        STEP(rc, dset_write(g, dxpl, "counts", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &cd, 0, rank == 0 ? cd : 0, counts,
                            "Rows of x contributed by each writer rank, in rank order."));
        h5_close(g);
        g = -1;
        SYNC(rc, comm, done);
    }
done:
    h5_close(g);
    h5_close(replay);
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

    STEP(rc, group_create(file, "model", &g));
    STEP(rc, dset_write(g, dxpl, "params", real_file_type(), real_mem_type(), 1, &n, 0, mine * n, c->params,
                        "Flat parameter array of the sampler (policy, log Z or flow, Langevin scaling) in arena order."));
    h5_close(g);
    g = -1;
    STEP(rc, group_create(file, "optimizer", &g));
    STEP(rc, dset_write(g, dxpl, "m", real_file_type(), real_mem_type(), 1, &n, 0, mine * n, c->m,
                        "Adam first moment, same layout as /model/params."));
    STEP(rc, dset_write(g, dxpl, "v", real_file_type(), real_mem_type(), 1, &n, 0, mine * n, c->v,
                        "Adam second moment, same layout as /model/params."));
    STEP(rc, dset_write(g, dxpl, "step", H5T_STD_I64LE, H5T_NATIVE_INT64, 0, NULL, 0, mine, &c->adam_step,
                        "Number of Adam steps taken (bias correction)."));
    h5_close(g);
    g = -1;
    SYNC(rc, comm, done);

    int32_t ws = size;
    STEP(rc, group_create(file, "state", &g));
    STEP(rc, dset_write(g, dxpl, "iteration", H5T_STD_I64LE, H5T_NATIVE_INT64, 0, NULL, 0, mine, &c->iteration,
                        "Training iterations completed; the run resumes at this iteration."));
    STEP(rc, dset_write(g, dxpl, "world_size", H5T_STD_I32LE, H5T_NATIVE_INT32, 0, NULL, 0, mine, &ws,
                        "Number of MPI ranks that wrote this checkpoint."));
    STEP(rc, dset_write(g, dxpl, "ls_step", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, NULL, 0, mine, &c->ls_step,
                        "Current (adapted) local-search MALA step size."));
    STEP(rc, dset_write(g, dxpl, "exploration", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, NULL, 0, mine, &c->exploration,
                        "Exploration standard deviation at this iteration (informational)."));
    STEP(rc, dset_write(g, dxpl, "rng_seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, 0, NULL, 0, mine, &c->rng_seed,
                        "Seed of the counter-based generator (train.seed); with the iteration it restores every stream."));
    h5_close(g);
    g = -1;
    SYNC(rc, comm, done);

    /* Column names are metadata every rank writes: rank 0's are used (the
     * broadcasts run on every rank before any step can fail). */
    cols = ds_calloc((size_t)c->metrics_ncols + 1, sizeof *cols);
    if (!cols) rc = ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__, "out of memory for metric names");
    SYNC(rc, comm, done);
    for (int j = 0; j < c->metrics_ncols; j++) {
        ds_status brc = bcast_str(comm, c->metrics_columns[j], &cols[j]);
        if (rc == DS_OK) rc = brc;
    }
    hsize_t md[2] = {(hsize_t)c->metrics_rows, (hsize_t)c->metrics_ncols};
    static const double no_metrics = 0.0;
    STEP(rc, dset_write(file, dxpl, "metrics", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, md, 0, mine * md[0] * (md[1] > 0),
                        c->metrics ? c->metrics : &no_metrics,
                        "Metrics history so far, one row per evaluation or log point; column names in the columns attribute."));
    if (rc == DS_OK) {
        g = H5Dopen2(file, "metrics", H5P_DEFAULT);
        if (g < 0) rc = ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__, "cannot reopen dataset /metrics");
    }
    STEP(rc, attr_write_str_array(g, "columns", c->metrics_ncols, (const char *const *)cols));
    h5_close(g);
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
        STEP(rc, dset_write(sg, dxpl, "run", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, ed, 0, mine, vals,
                            "Further run state (loss accumulators, local-search statistics); names in columns."));
        if (rc == DS_OK) {
            g = H5Dopen2(sg, "run", H5P_DEFAULT);
            if (g < 0) rc = ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__, "cannot reopen /state/run");
        }
        STEP(rc, attr_write_str_array(g, "columns", c->nextra, names));
        h5_close(g);
        g = -1;
        h5_close(sg);
        SYNC(rc, comm, done);
    }

    rc = ckpt_write_replay(comm, file, dxpl, c);
done:
    h5_close(g);
    if (cols)
        for (int j = 0; j < c->metrics_ncols; j++) ds_free(cols[j]);
    ds_free(cols);
    return rc;
}

ds_status ds_ckpt_write(MPI_Comm comm, const char *path, const ds_ckpt *c)
{
    quiet q;
    quiet_begin(&q);
    ds_status rc;
    int rank = 0;
    hid_t file = -1, dxpl = -1;
    header_strings h = {NULL, NULL, NULL};
    char tmp[H5IO_PATH], prev[H5IO_PATH];

    rc = ckpt_check_args(path, c);
    if (rc == DS_OK) rc = join_path(tmp, sizeof tmp, path, ".tmp");
    if (rc == DS_OK) rc = join_path(prev, sizeof prev, path, ".prev");
    DS_TRY_GOTO(rc, agree(comm, rc), out);
    DS_MPI_GOTO(rc, out, MPI_Comm_rank(comm, &rank));
    DS_TRY_GOTO(rc, agree(comm, ckpt_check_consistent(comm, c)), out);
    DS_TRY_GOTO(rc, agree(comm, header_strings_bcast(comm, &c->meta, &h)), out);

    DS_TRY_GOTO(rc, agree(comm, create_tmp_file(comm, tmp, &file, &dxpl)), fail);
    DS_TRY_GOTO(rc, agree(comm, write_root_attrs(file, DS_H5_FORMAT_CHECKPOINT, &h, c->meta.dim)), fail);
    DS_TRY_GOTO(rc, agree(comm, ckpt_write_body(comm, file, dxpl, c)), fail);
    h5_close(dxpl);
    dxpl = -1;
    herr_t cerr = H5Fclose(file);
    file = -1;
    DS_TRY_GOTO(rc, agree(comm, cerr >= 0 ? DS_OK : ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__,
                                                                     "closing %s failed (disk full?)", tmp)),
                fail);
    DS_TRY_GOTO(rc, commit_collective(comm, tmp, path, prev), fail);
    goto out;
fail:
    h5_close(dxpl);
    if (file >= 0) H5Fclose(file);
    if (rank == 0) remove(tmp);
    ds_error_trace(__FILE__, __LINE__, __func__);
out:
    header_strings_free(&h);
    quiet_end(&q);
    return rc;
}

/* ---- reading ---------------------------------------------------------------- */

/* Reading context: the file, its name (for messages) and what it is. */
typedef struct rd {
    hid_t file, dxpl;
    const char *path;
    const char *kind; /* "checkpoint" or "sample set" */
} rd;

static ds_status attr_open(const rd *r, hid_t obj, const char *objname, const char *name, hid_t *a)
{
    htri_t ex = H5Aexists(obj, name);
    *a = -1;
    DS_CHECK(ex > 0, DS_ERR_FORMAT, "%s %s: attribute '%s' of %s is missing (not a diffsamp file, or damaged)",
             r->kind, r->path, name, objname);
    *a = H5Aopen(obj, name, H5P_DEFAULT);
    DS_CHECK(*a >= 0, DS_ERR_FORMAT, "%s %s: cannot open attribute '%s' of %s", r->kind, r->path, name, objname);
    return DS_OK;
}

/* A scalar string attribute (variable or fixed length) into a new string. */
static ds_status attr_read_str(const rd *r, hid_t obj, const char *objname, const char *name, char **out)
{
    ds_status rc = DS_OK;
    hid_t a = -1, ft = -1, mt = -1, sp = -1;
    char *vs = NULL;
    *out = NULL;
    DS_TRY_GOTO(rc, attr_open(r, obj, objname, name, &a), done);
    ft = H5Aget_type(a);
    sp = H5Aget_space(a);
    CHECK(ft >= 0 && sp >= 0 && H5Tget_class(ft) == H5T_STRING && H5Sget_simple_extent_npoints(sp) == 1, rc, done,
          DS_ERR_FORMAT, "%s %s: attribute '%s' of %s is not a single string", r->kind, r->path, name, objname);
    mt = H5Tcopy(H5T_C_S1);
    CHECK(mt >= 0, rc, done, DS_ERR_IO, "cannot make a string type");
    if (H5Tis_variable_str(ft) > 0) {
        CHECK(H5Tset_size(mt, H5T_VARIABLE) >= 0 && H5Tset_cset(mt, H5Tget_cset(ft)) >= 0, rc, done, DS_ERR_IO,
              "cannot make a string type");
        CHECK(H5Aread(a, mt, &vs) >= 0, rc, done, DS_ERR_FORMAT, "%s %s: cannot read attribute '%s' of %s", r->kind,
              r->path, name, objname);
        *out = str_dup(vs ? vs : "");
    } else {
        size_t n = H5Tget_size(ft);
        CHECK(n > 0 && H5Tset_size(mt, n + 1) >= 0 && H5Tset_strpad(mt, H5T_STR_NULLTERM) >= 0 &&
                  H5Tset_cset(mt, H5Tget_cset(ft)) >= 0,
              rc, done, DS_ERR_IO, "cannot make a string type");
        *out = ds_calloc(n + 2, 1);
        CHECK(*out != NULL, rc, done, DS_ERR_NOMEM, "out of memory for attribute '%s'", name);
        CHECK(H5Aread(a, mt, *out) >= 0, rc, done, DS_ERR_FORMAT, "%s %s: cannot read attribute '%s' of %s", r->kind,
              r->path, name, objname);
    }
    CHECK(*out != NULL, rc, done, DS_ERR_NOMEM, "out of memory for attribute '%s'", name);
done:
    if (vs) H5free_memory(vs);
    if (rc != DS_OK) DS_FREE(*out);
    h5_close(mt);
    h5_close(ft);
    h5_close(sp);
    h5_close(a);
    return rc;
}

/* A scalar numeric attribute, converted to mtype. */
static ds_status attr_read_num(const rd *r, hid_t obj, const char *objname, const char *name, hid_t mtype, void *out)
{
    ds_status rc = DS_OK;
    hid_t a = -1, ft = -1, sp = -1;
    DS_TRY_GOTO(rc, attr_open(r, obj, objname, name, &a), done);
    ft = H5Aget_type(a);
    sp = H5Aget_space(a);
    CHECK(ft >= 0 && sp >= 0 && (H5Tget_class(ft) == H5T_INTEGER || H5Tget_class(ft) == H5T_FLOAT) &&
              H5Sget_simple_extent_npoints(sp) == 1,
          rc, done, DS_ERR_FORMAT, "%s %s: attribute '%s' of %s is not a single number", r->kind, r->path, name,
          objname);
    CHECK(H5Aread(a, mtype, out) >= 0, rc, done, DS_ERR_FORMAT, "%s %s: cannot read attribute '%s' of %s", r->kind,
          r->path, name, objname);
done:
    h5_close(ft);
    h5_close(sp);
    h5_close(a);
    return rc;
}

/* A 1-D string-array attribute into n new strings (n may be 0). */
static ds_status attr_read_str_array(const rd *r, hid_t obj, const char *objname, const char *name, int *n_out,
                                     char ***out)
{
    ds_status rc = DS_OK;
    hid_t a = -1, ft = -1, mt = -1, sp = -1;
    char **vs = NULL, *fixed = NULL;
    int n = 0;
    *out = NULL;
    *n_out = 0;
    DS_TRY_GOTO(rc, attr_open(r, obj, objname, name, &a), done);
    ft = H5Aget_type(a);
    sp = H5Aget_space(a);
    CHECK(ft >= 0 && sp >= 0 && H5Tget_class(ft) == H5T_STRING && H5Sget_simple_extent_ndims(sp) <= 1, rc, done,
          DS_ERR_FORMAT, "%s %s: attribute '%s' of %s is not a list of strings", r->kind, r->path, name, objname);
    hssize_t np = H5Sget_simple_extent_type(sp) == H5S_NULL ? 0 : H5Sget_simple_extent_npoints(sp);
    CHECK(np >= 0 && np < 1000000, rc, done, DS_ERR_FORMAT, "%s %s: attribute '%s' of %s has a bad size", r->kind,
          r->path, name, objname);
    n = (int)np;
    *out = ds_calloc((size_t)n + 1, sizeof **out);
    CHECK(*out != NULL, rc, done, DS_ERR_NOMEM, "out of memory for attribute '%s'", name);
    if (n == 0) goto done;
    mt = H5Tcopy(H5T_C_S1);
    CHECK(mt >= 0, rc, done, DS_ERR_IO, "cannot make a string type");
    if (H5Tis_variable_str(ft) > 0) {
        vs = ds_calloc((size_t)n, sizeof *vs);
        CHECK(vs != NULL, rc, done, DS_ERR_NOMEM, "out of memory for attribute '%s'", name);
        CHECK(H5Tset_size(mt, H5T_VARIABLE) >= 0, rc, done, DS_ERR_IO, "cannot make a string type");
        CHECK(H5Aread(a, mt, vs) >= 0, rc, done, DS_ERR_FORMAT, "%s %s: cannot read attribute '%s' of %s", r->kind,
              r->path, name, objname);
        for (int i = 0; i < n; i++) {
            (*out)[i] = str_dup(vs[i] ? vs[i] : "");
            CHECK((*out)[i] != NULL, rc, done, DS_ERR_NOMEM, "out of memory for attribute '%s'", name);
        }
    } else {
        size_t len = H5Tget_size(ft);
        CHECK(len > 0 && H5Tset_size(mt, len + 1) >= 0 && H5Tset_strpad(mt, H5T_STR_NULLTERM) >= 0, rc, done,
              DS_ERR_IO, "cannot make a string type");
        fixed = ds_calloc((size_t)n, len + 1);
        CHECK(fixed != NULL, rc, done, DS_ERR_NOMEM, "out of memory for attribute '%s'", name);
        CHECK(H5Aread(a, mt, fixed) >= 0, rc, done, DS_ERR_FORMAT, "%s %s: cannot read attribute '%s' of %s", r->kind,
              r->path, name, objname);
        for (int i = 0; i < n; i++) {
            (*out)[i] = str_dup(fixed + (size_t)i * (len + 1));
            CHECK((*out)[i] != NULL, rc, done, DS_ERR_NOMEM, "out of memory for attribute '%s'", name);
        }
    }
done:
    if (vs) {
        for (int i = 0; i < n; i++)
            if (vs[i]) H5free_memory(vs[i]);
        ds_free(vs);
    }
    ds_free(fixed);
    if (rc != DS_OK && *out) {
        for (int i = 0; i < n; i++) ds_free((*out)[i]);
        DS_FREE(*out);
    }
    *n_out = rc == DS_OK ? n : 0;
    h5_close(mt);
    h5_close(ft);
    h5_close(sp);
    h5_close(a);
    return rc;
}

/* Opens dataset `name` and checks its type class and shape: ndims 0 is a
 * scalar, want[i] = ANY_DIM accepts any extent. found (ndims entries) gets
 * the shape. */
static ds_status dset_open(const rd *r, const char *name, H5T_class_t want_class, int ndims, const hsize_t *want,
                           hsize_t *found, hid_t *out)
{
    ds_status rc = DS_OK;
    hid_t d = -1, sp = -1, t = -1;
    *out = -1;
    /* H5Lexists fails (< 0) when an intermediate group is missing. */
    CHECK(H5Lexists(r->file, name, H5P_DEFAULT) > 0, rc, done, DS_ERR_FORMAT, "%s %s: dataset %s is missing", r->kind,
          r->path, name);
    d = H5Dopen2(r->file, name, H5P_DEFAULT);
    CHECK(d >= 0, rc, done, DS_ERR_FORMAT, "%s %s: %s is not a readable dataset", r->kind, r->path, name);
    t = H5Dget_type(d);
    CHECK(t >= 0 && H5Tget_class(t) == want_class, rc, done, DS_ERR_FORMAT, "%s %s: dataset %s has the wrong type (expected %s)",
          r->kind, r->path, name, want_class == H5T_FLOAT ? "floating point" : "integer");
    sp = H5Dget_space(d);
    CHECK(sp >= 0, rc, done, DS_ERR_FORMAT, "%s %s: cannot read the shape of dataset %s", r->kind, r->path, name);
    int nd = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[H5S_MAX_RANK];
    CHECK(nd >= 0 && nd <= H5S_MAX_RANK && H5Sget_simple_extent_dims(sp, dims, NULL) >= 0, rc, done, DS_ERR_FORMAT,
          "%s %s: cannot read the shape of dataset %s", r->kind, r->path, name);
    int ok = nd == ndims && H5Sget_simple_extent_type(sp) != H5S_NULL;
    for (int i = 0; ok && i < nd; i++) ok = want[i] == ANY_DIM || want[i] == dims[i];
    if (!ok) {
        char a[128], b[128];
        FAIL(rc, done, DS_ERR_FORMAT, "%s %s: dataset %s has shape %s, expected %s", r->kind, r->path, name,
             shape_str(a, sizeof a, nd, dims), shape_str(b, sizeof b, ndims, want));
    }
    for (int i = 0; i < nd; i++) found[i] = dims[i];
    *out = d;
    d = -1;
done:
    h5_close(t);
    h5_close(sp);
    h5_close(d);
    return rc;
}

/* Reads rows [first, first + rows) of an open dataset (every element of a
 * scalar when ndims = 0 and rows = 1); collective, rows may be 0. */
static ds_status dset_read_rows(const rd *r, hid_t d, const char *name, hid_t mtype, int ndims, const hsize_t *dims,
                                hsize_t first, hsize_t rows, void *buf)
{
    ds_status rc = DS_OK;
    hid_t fspace = H5Dget_space(d), mspace = -1;
    hsize_t mdims[2] = {rows, ndims > 1 ? dims[1] : 1};
    mspace = ndims == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(ndims, mdims, NULL);
    CHECK(fspace >= 0 && mspace >= 0, rc, done, DS_ERR_IO, "cannot make the dataspaces to read %s", name);
    if (rows == 0) {
        CHECK(H5Sselect_none(fspace) >= 0 && H5Sselect_none(mspace) >= 0, rc, done, DS_ERR_IO,
              "cannot select nothing in %s", name);
    } else if (ndims > 0) {
        hsize_t start[2] = {first, 0};
        CHECK(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, mdims, NULL) >= 0, rc, done, DS_ERR_IO,
              "cannot select rows of %s", name);
    }
    double dummy = 0.0;
    if (H5Sget_simple_extent_npoints(fspace) == 0) goto done; /* the same on every rank */
    CHECK(H5Dread(d, mtype, mspace, fspace, r->dxpl, rows > 0 ? buf : (void *)&dummy) >= 0, rc, done, DS_ERR_FORMAT,
          "%s %s: reading dataset %s failed (file truncated or corrupt?)", r->kind, r->path, name);
done:
    h5_close(mspace);
    h5_close(fspace);
    return rc;
}

/* Opens, checks and reads a whole replicated dataset on every rank. */
static ds_status dset_read_all(const rd *r, const char *name, H5T_class_t cls, hid_t mtype, int ndims,
                               const hsize_t *want, void *buf)
{
    ds_status rc = DS_OK;
    hid_t d = -1;
    hsize_t found[2] = {0, 0};
    DS_TRY_GOTO(rc, dset_open(r, name, cls, ndims, want, found, &d), done);
    DS_TRY_GOTO(rc, dset_read_rows(r, d, name, mtype, ndims, found, 0, ndims == 0 ? 1 : found[0], buf), done);
done:
    h5_close(d);
    return rc;
}

static ds_status open_for_read(MPI_Comm comm, rd *r)
{
    ds_status rc = DS_OK;
    hid_t fapl = -1;
    r->file = r->dxpl = -1;
    CHECK(file_exists(r->path), rc, done, DS_ERR_IO, "cannot open %s %s: no such file", r->kind, r->path);
    fapl = H5Pcreate(H5P_FILE_ACCESS);
    CHECK(fapl >= 0 && H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL) >= 0, rc, done, DS_ERR_IO,
          "cannot set up the MPI-IO driver to read %s", r->path);
    r->dxpl = H5Pcreate(H5P_DATASET_XFER);
    CHECK(r->dxpl >= 0 && H5Pset_dxpl_mpio(r->dxpl, H5FD_MPIO_COLLECTIVE) >= 0, rc, done, DS_ERR_IO,
          "cannot set up collective transfers to read %s", r->path);
    r->file = H5Fopen(r->path, H5F_ACC_RDONLY, fapl);
    CHECK(r->file >= 0, rc, done, DS_ERR_FORMAT, "cannot open %s %s: not an HDF5 file or truncated", r->kind, r->path);
done:
    h5_close(fapl);
    return rc;
}

/* Root attributes: format, format_version, energy, dim, precision, config,
 * code_version; refuses another format and newer versions. */
static ds_status ckpt_read_header(const rd *r, const char *want_format, ds_ckpt_data *out)
{
    ds_status rc = DS_OK;
    char *s = NULL;
    DS_TRY_GOTO(rc, attr_read_str(r, r->file, "/", "format", &s), done);
    CHECK(strcmp(s, want_format) == 0, rc, done, DS_ERR_FORMAT, "%s is not a diffsamp %s: its format attribute is '%s', expected '%s'",
          r->path, r->kind, s, want_format);
    DS_FREE(s);
    int version = 0;
    DS_TRY_GOTO(rc, attr_read_num(r, r->file, "/", "format_version", H5T_NATIVE_INT, &version), done);
    CHECK(version <= DS_H5_FORMAT_VERSION, rc, done, DS_ERR_FORMAT,
          "%s %s has format_version %d, newer than the version %d this build of diffsamp (" DS_VERSION
          ") reads: use a newer diffsamp",
          r->kind, r->path, version, DS_H5_FORMAT_VERSION);
    CHECK(version >= 1, rc, done, DS_ERR_FORMAT, "%s %s has an invalid format_version %d", r->kind, r->path, version);
    out->format_version = version;
    DS_TRY_GOTO(rc, attr_read_str(r, r->file, "/", "energy", &s), done);
    CHECK(strlen(s) < DS_NAME_MAX, rc, done, DS_ERR_FORMAT, "%s %s: energy name '%s' is too long", r->kind, r->path, s);
    snprintf(out->energy, sizeof out->energy, "%s", s);
    DS_FREE(s);
    DS_TRY_GOTO(rc, attr_read_num(r, r->file, "/", "dim", H5T_NATIVE_INT, &out->dim), done);
    CHECK(out->dim >= 1, rc, done, DS_ERR_FORMAT, "%s %s: dim attribute is %d, expected >= 1", r->kind, r->path, out->dim);
    DS_TRY_GOTO(rc, attr_read_str(r, r->file, "/", "precision", &s), done);
    snprintf(out->precision, sizeof out->precision, "%s", s);
    DS_FREE(s);
    DS_TRY_GOTO(rc, attr_read_str(r, r->file, "/", "config", &out->config_yaml), done);
    DS_TRY_GOTO(rc, attr_read_str(r, r->file, "/", "code_version", &out->code_version), done);
done:
    ds_free(s);
    return rc;
}

static ds_status ckpt_check_expect(const rd *r, const ds_ckpt_expect *e, const ds_ckpt_data *out)
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
static ds_status ckpt_read_replicated(const rd *r, const ds_ckpt_expect *e, ds_ckpt_data *out)
{
    ds_status rc = DS_OK;
    hid_t d = -1;
    hsize_t found[2] = {0, 0}, want1 = ANY_DIM;
    DS_TRY_GOTO(rc, dset_open(r, "/model/params", H5T_FLOAT, 1, &want1, found, &d), done);
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
    DS_TRY_GOTO(rc, dset_read_rows(r, d, "/model/params", real_mem_type(), 1, found, 0, found[0], out->params), done);
    hsize_t wn = (hsize_t)n;
    DS_TRY_GOTO(rc, dset_read_all(r, "/optimizer/m", H5T_FLOAT, real_mem_type(), 1, &wn, out->m), done);
    DS_TRY_GOTO(rc, dset_read_all(r, "/optimizer/v", H5T_FLOAT, real_mem_type(), 1, &wn, out->v), done);
    DS_TRY_GOTO(rc, dset_read_all(r, "/optimizer/step", H5T_INTEGER, H5T_NATIVE_INT64, 0, NULL, &out->adam_step), done);
    DS_TRY_GOTO(rc, dset_read_all(r, "/state/iteration", H5T_INTEGER, H5T_NATIVE_INT64, 0, NULL, &out->iteration), done);
    DS_TRY_GOTO(rc, dset_read_all(r, "/state/world_size", H5T_INTEGER, H5T_NATIVE_INT, 0, NULL, &out->world_size), done);
    DS_TRY_GOTO(rc, dset_read_all(r, "/state/ls_step", H5T_FLOAT, H5T_NATIVE_DOUBLE, 0, NULL, &out->ls_step), done);
    DS_TRY_GOTO(rc, dset_read_all(r, "/state/exploration", H5T_FLOAT, H5T_NATIVE_DOUBLE, 0, NULL, &out->exploration), done);
    DS_TRY_GOTO(rc, dset_read_all(r, "/state/rng_seed", H5T_INTEGER, H5T_NATIVE_UINT64, 0, NULL, &out->rng_seed), done);
    CHECK(out->world_size >= 1, rc, done, DS_ERR_FORMAT, "checkpoint %s: /state/world_size is %d, expected >= 1",
          r->path, out->world_size);

    h5_close(d);
    d = -1;
    hsize_t wm[2] = {ANY_DIM, ANY_DIM};
    DS_TRY_GOTO(rc, dset_open(r, "/metrics", H5T_FLOAT, 2, wm, found, &d), done);
    DS_TRY_GOTO(rc, attr_read_str_array(r, d, "/metrics", "columns", &out->metrics_ncols, &out->metrics_columns), done);
    CHECK((hsize_t)out->metrics_ncols == found[1], rc, done, DS_ERR_FORMAT,
          "checkpoint %s: /metrics has %llu columns but its columns attribute names %d", r->path,
          (unsigned long long)found[1], out->metrics_ncols);
    out->metrics_rows = (size_t)found[0];
    out->metrics = ds_calloc(out->metrics_rows * (size_t)out->metrics_ncols, sizeof(double));
    CHECK(out->metrics != NULL, rc, done, DS_ERR_NOMEM, "out of memory for the metrics history");
    DS_TRY_GOTO(rc, dset_read_rows(r, d, "/metrics", H5T_NATIVE_DOUBLE, 2, found, 0, found[1] ? found[0] : 0,
                                   out->metrics),
                done);
    h5_close(d);
    d = -1;
    /* optional: further run state */
    htri_t has_run;
    H5E_BEGIN_TRY { has_run = H5Lexists(r->file, "/state/run", H5P_DEFAULT); } H5E_END_TRY;
    if (has_run > 0) {
        hsize_t wr[2] = {1, ANY_DIM};
        DS_TRY_GOTO(rc, dset_open(r, "/state/run", H5T_FLOAT, 2, wr, found, &d), done);
        DS_TRY_GOTO(rc, attr_read_str_array(r, d, "/state/run", "columns", &out->nextra, &out->extra_names), done);
        CHECK((hsize_t)out->nextra == found[1], rc, done, DS_ERR_FORMAT,
              "checkpoint %s: /state/run has %llu columns but its columns attribute names %d", r->path,
              (unsigned long long)found[1], out->nextra);
        out->extra_values = ds_calloc((size_t)(out->nextra > 0 ? out->nextra : 1), sizeof(double));
        CHECK(out->extra_values != NULL, rc, done, DS_ERR_NOMEM, "out of memory for the run state");
        DS_TRY_GOTO(rc, dset_read_rows(r, d, "/state/run", H5T_NATIVE_DOUBLE, 2, found, 0, 1, out->extra_values), done);
    }
done:
    h5_close(d);
    return rc;
}

/* Each /replay/<name> group, its even share of rows on this rank. */
static ds_status ckpt_read_replay(MPI_Comm comm, const rd *r, ds_ckpt_data *out)
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
        DS_TRY_GOTO(rc, attr_read_num(r, g, gname, "capacity", H5T_NATIVE_INT64, &cap), done);
        B->capacity = (long)cap;

        hsize_t wx[2] = {ANY_DIM, (hsize_t)out->dim}, fx[2] = {0, 0}, wl, fl, wc = ANY_DIM, fc;
        DS_TRY_GOTO(rc, dset_open(r, nx, H5T_FLOAT, 2, wx, fx, &dx), done);
        wl = fx[0];
        DS_TRY_GOTO(rc, dset_open(r, nl, H5T_FLOAT, 1, &wl, &fl, &dl), done);
        DS_TRY_GOTO(rc, dset_open(r, nc, H5T_INTEGER, 1, &wc, &fc, &dc), done);
        CHECK(fc >= 1 && fc < (hsize_t)INT32_MAX, rc, done, DS_ERR_FORMAT, "checkpoint %s: %s is empty", r->path, nc);
        B->writer_ranks = (int)fc;
        B->counts = ds_calloc((size_t)fc, sizeof *B->counts);
        CHECK(B->counts != NULL, rc, done, DS_ERR_NOMEM, "out of memory for %s", nc);
        DS_TRY_GOTO(rc, dset_read_rows(r, dc, nc, H5T_NATIVE_INT64, 1, &fc, 0, fc, B->counts), done);
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
        DS_TRY_GOTO(rc, dset_read_rows(r, dx, nx, real_mem_type(), 2, fx, B->first, B->n_local, B->x), done);
        DS_TRY_GOTO(rc, dset_read_rows(r, dl, nl, real_mem_type(), 1, &fl, B->first, B->n_local, B->log_r), done);
        h5_close(dx);
        h5_close(dl);
        h5_close(dc);
        h5_close(g);
        dx = dl = dc = g = -1;
    }
done:
    h5_close(dx);
    h5_close(dl);
    h5_close(dc);
    h5_close(g);
    h5_close(replay);
    return rc;
}

ds_status ds_ckpt_read(MPI_Comm comm, const char *path, const ds_ckpt_expect *expect, ds_ckpt_data *out)
{
    ds_status rc = DS_OK;
    quiet q;
    rd r = {-1, -1, path, "checkpoint"};
    if (!out) return ds_error_set(DS_ERR_INVALID, __FILE__, __LINE__, __func__, "out is NULL");
    memset(out, 0, sizeof *out);
    quiet_begin(&q);
    if (!path || !*path) rc = ds_error_set(DS_ERR_INVALID, __FILE__, __LINE__, __func__, "checkpoint path is empty");
    DS_TRY_GOTO(rc, agree(comm, rc), done);
    DS_TRY_GOTO(rc, agree(comm, open_for_read(comm, &r)), done);
    DS_TRY_GOTO(rc, agree(comm, ckpt_read_header(&r, DS_H5_FORMAT_CHECKPOINT, out)), done);
    DS_TRY_GOTO(rc, agree(comm, ckpt_check_expect(&r, expect, out)), done);
    /* The reads below are collective; a failure in the middle of one of
     * them is the same on every rank (same file, same metadata). */
    DS_TRY_GOTO(rc, agree(comm, ckpt_read_replicated(&r, expect, out)), done);
    DS_TRY_GOTO(rc, agree(comm, ckpt_read_replay(comm, &r, out)), done);
done:
    h5_close(r.dxpl);
    if (r.file >= 0 && H5Fclose(r.file) < 0 && rc == DS_OK)
        rc = ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__, "closing checkpoint %s failed", path);
    if (rc != DS_OK) ds_ckpt_data_free(out);
    quiet_end(&q);
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
    rc = join_path(cand[0], sizeof cand[0], path, "");
    if (rc == DS_OK) rc = join_path(cand[1], sizeof cand[1], path, ".prev");
local:
    DS_TRY(agree(comm, rc));
    DS_MPI(MPI_Comm_rank(comm, &rank));
    for (int k = 0; k < 2; k++) {
        /* Rank 0 decides what exists, so every rank tries the same files. */
        int exists = rank == 0 ? file_exists(cand[k]) : 0;
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

/* ---- sample sets ------------------------------------------------------------ */

enum { S_X = 0, S_LOG_REWARD, S_LOG_PF, S_LOG_PB, S_LOG_WEIGHT, S_N };
static const char *const sample_names[S_N] = {"x", "log_reward", "log_pf", "log_pb", "log_weight"};
static const char *const sample_desc[S_N] = {
    "Terminal states x_T of forward trajectories of the trained sampler, without exploration.",
    "Log reward log R(x_T) = -E(x_T) of each sample.",
    "Sum over steps of the forward log-probability log p_F along each trajectory.",
    "Sum over steps of the backward (Brownian bridge) log-probability log p_B along each trajectory.",
    "Importance log-weight log R(x_T) + sum log p_B - sum log p_F of each sample."};
static const char *const reserved_attrs[] = {"format", "format_version", "config", "code_version", "library_versions",
                                             "precision", "energy", "dim", "n_samples"};

struct ds_samples_writer {
    MPI_Comm comm;
    int rank, size;
    hid_t file, dxpl, d[S_N];
    int dim;
    uint64_t n_total, written;
    char path[H5IO_PATH], tmp[H5IO_PATH];
};

static void writer_release(ds_samples_writer *w, int remove_tmp)
{
    for (int k = 0; k < S_N; k++) h5_close(w->d[k]);
    h5_close(w->dxpl);
    if (w->file >= 0) H5Fclose(w->file);
    w->file = -1;
    if (remove_tmp && w->rank == 0) remove(w->tmp);
    if (w->comm != MPI_COMM_NULL) MPI_Comm_free(&w->comm);
    ds_free(w);
}

ds_status ds_samples_open(MPI_Comm comm, const char *path, const ds_h5_meta *meta, size_t n_total,
                          ds_samples_writer **out)
{
    ds_status rc = DS_OK;
    quiet q;
    header_strings h = {NULL, NULL, NULL};
    ds_samples_writer *w = NULL;
    if (out) *out = NULL;
    quiet_begin(&q);
    CHECK(out && path && *path, rc, local, DS_ERR_INVALID, "sample set path or output handle missing");
    CHECK(meta && meta->energy && *meta->energy && strlen(meta->energy) < DS_NAME_MAX && meta->dim >= 1, rc, local,
          DS_ERR_INVALID, "sample set needs an energy name (< %d characters) and dim >= 1", DS_NAME_MAX);
    w = ds_calloc(1, sizeof *w);
    CHECK(w != NULL, rc, local, DS_ERR_NOMEM, "out of memory for a sample writer");
    w->comm = MPI_COMM_NULL;
    w->file = w->dxpl = -1;
    for (int k = 0; k < S_N; k++) w->d[k] = -1;
    DS_TRY_GOTO(rc, join_path(w->path, sizeof w->path, path, ""), local);
    DS_TRY_GOTO(rc, join_path(w->tmp, sizeof w->tmp, path, ".tmp"), local);
local:
    rc = agree(comm, rc);
    if (rc != DS_OK) {
        ds_free(w);
        quiet_end(&q);
        return rc;
    }
    DS_MPI_GOTO(rc, fail, MPI_Comm_dup(comm, &w->comm));
    DS_MPI_GOTO(rc, fail, MPI_Comm_rank(w->comm, &w->rank));
    DS_MPI_GOTO(rc, fail, MPI_Comm_size(w->comm, &w->size));
    w->dim = meta->dim;
    w->n_total = (uint64_t)n_total;
    {
        unsigned long long v[2] = {(unsigned long long)n_total, (unsigned long long)meta->dim}, mn[2], mx[2];
        DS_MPI_GOTO(rc, fail, MPI_Allreduce(v, mn, 2, MPI_UNSIGNED_LONG_LONG, MPI_MIN, w->comm));
        DS_MPI_GOTO(rc, fail, MPI_Allreduce(v, mx, 2, MPI_UNSIGNED_LONG_LONG, MPI_MAX, w->comm));
        CHECK(mn[0] == mx[0] && mn[1] == mx[1], rc, fail, DS_ERR_INVALID,
              "sample set %s: n_total (%llu .. %llu) or dim (%llu .. %llu) differs across ranks", path, mn[0], mx[0],
              mn[1], mx[1]);
    }
    DS_TRY_GOTO(rc, agree(w->comm, header_strings_bcast(w->comm, meta, &h)), fail);
    DS_TRY_GOTO(rc, agree(w->comm, create_tmp_file(w->comm, w->tmp, &w->file, &w->dxpl)), fail);
    rc = write_root_attrs(w->file, DS_H5_FORMAT_SAMPLES, &h, meta->dim);
    if (rc == DS_OK) {
        int64_t n64 = (int64_t)n_total;
        rc = attr_write_scalar(w->file, "n_samples", H5T_STD_I64LE, H5T_NATIVE_INT64, &n64);
    }
    for (int k = 0; k < S_N && rc == DS_OK; k++) {
        hsize_t dims[2] = {(hsize_t)n_total, (hsize_t)meta->dim};
        rc = dset_create(w->file, sample_names[k], k == S_X ? real_file_type() : H5T_IEEE_F64LE, k == S_X ? 2 : 1,
                         dims, sample_desc[k], &w->d[k]);
    }
    DS_TRY_GOTO(rc, agree(w->comm, rc), fail);
    header_strings_free(&h);
    *out = w;
    quiet_end(&q);
    return DS_OK;
fail:
    header_strings_free(&h);
    writer_release(w, 1);
    quiet_end(&q);
    return rc;
}

ds_status ds_samples_append(ds_samples_writer *w, size_t n_local, const ds_real *x, const double *log_reward,
                            const double *log_pf, const double *log_pb, const double *log_weight)
{
    DS_CHECK(w != NULL, DS_ERR_INVALID, "sample writer is NULL");
    ds_status rc = DS_OK;
    quiet q;
    quiet_begin(&q);
    const void *bufs[S_N] = {x, log_reward, log_pf, log_pb, log_weight};
    for (int k = 0; k < S_N && rc == DS_OK; k++)
        if (n_local > 0 && !bufs[k])
            rc = ds_error_set(DS_ERR_INVALID, __FILE__, __LINE__, __func__, "sample set %s: %s is NULL with %zu rows",
                              w->path, sample_names[k], n_local);
    DS_TRY_GOTO(rc, agree(w->comm, rc), done);
    uint64_t n = (uint64_t)n_local, offset = 0, total = 0;
    DS_MPI_GOTO(rc, done, MPI_Exscan(&n, &offset, 1, MPI_UINT64_T, MPI_SUM, w->comm));
    if (w->rank == 0) offset = 0;
    DS_MPI_GOTO(rc, done, MPI_Allreduce(&n, &total, 1, MPI_UINT64_T, MPI_SUM, w->comm));
    CHECK(w->written + total <= w->n_total, rc, done, DS_ERR_INVALID,
          "sample set %s: appending %llu samples to the %llu written would exceed the %llu announced", w->path,
          (unsigned long long)total, (unsigned long long)w->written, (unsigned long long)w->n_total);
    for (int k = 0; k < S_N && rc == DS_OK && total > 0; k++) {
        hid_t fspace = H5Dget_space(w->d[k]), mspace = -1;
        hsize_t mdims[2] = {n, (hsize_t)w->dim}, start[2] = {w->written + offset, 0};
        mspace = H5Screate_simple(k == S_X ? 2 : 1, mdims, NULL);
        if (fspace < 0 || mspace < 0)
            rc = ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__, "sample set %s: cannot make dataspaces for %s",
                              w->path, sample_names[k]);
        else if (n == 0 ? (H5Sselect_none(fspace) < 0 || H5Sselect_none(mspace) < 0)
                        : H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, mdims, NULL) < 0)
            rc = ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__, "sample set %s: cannot select rows of %s",
                              w->path, sample_names[k]);
        else {
            static const double dummy = 0.0;
            hid_t mt = k == S_X ? real_mem_type() : H5T_NATIVE_DOUBLE;
            if (H5Dwrite(w->d[k], mt, mspace, fspace, w->dxpl, n ? bufs[k] : (const void *)&dummy) < 0)
                rc = ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__,
                                  "sample set %s: writing rows %llu..%llu of %s failed (disk full?)", w->tmp,
                                  (unsigned long long)start[0], (unsigned long long)(start[0] + n), sample_names[k]);
        }
        h5_close(mspace);
        h5_close(fspace);
    }
    DS_TRY_GOTO(rc, agree(w->comm, rc), done);
    w->written += total;
done:
    quiet_end(&q);
    return rc;
}

ds_status ds_samples_close(ds_samples_writer **wp, const ds_h5_metric *metrics, int nmetrics)
{
    DS_CHECK(wp && *wp, DS_ERR_INVALID, "sample writer is NULL");
    ds_samples_writer *w = *wp;
    *wp = NULL;
    ds_status rc = DS_OK;
    quiet q;
    quiet_begin(&q);
    char *name = NULL;
    CHECK(w->written == w->n_total, rc, local, DS_ERR_INVALID,
          "sample set %s: %llu of the %llu announced samples were appended", w->path, (unsigned long long)w->written,
          (unsigned long long)w->n_total);
    CHECK(nmetrics >= 0 && (nmetrics == 0 || metrics), rc, local, DS_ERR_INVALID, "sample set %s: bad metrics list",
          w->path);
local:
    DS_TRY_GOTO(rc, agree(w->comm, rc), fail);
    /* Attributes are metadata every rank writes: use rank 0's list. */
    DS_MPI_GOTO(rc, fail, MPI_Bcast(&nmetrics, 1, MPI_INT, 0, w->comm));
    for (int k = 0; k < nmetrics; k++) {
        double value = w->rank == 0 ? metrics[k].value : 0.0;
        DS_TRY_GOTO(rc, bcast_str(w->comm, w->rank == 0 ? metrics[k].name : NULL, &name), fail);
        DS_MPI_GOTO(rc, fail, MPI_Bcast(&value, 1, MPI_DOUBLE, 0, w->comm));
        int ok = *name != '\0';
        for (size_t j = 0; ok && j < sizeof reserved_attrs / sizeof *reserved_attrs; j++) ok = strcmp(name, reserved_attrs[j]) != 0;
        if (ok && H5Aexists(w->file, name) > 0) ok = 0;
        rc = ok ? DS_OK
                : ds_error_set(DS_ERR_INVALID, __FILE__, __LINE__, __func__,
                               "sample set %s: metric %d name '%s' is empty, reserved or repeated", w->path, k, name);
        if (rc == DS_OK) rc = attr_write_scalar(w->file, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
        DS_FREE(name);
        DS_TRY_GOTO(rc, agree(w->comm, rc), fail);
    }
    for (int k = 0; k < S_N; k++) {
        h5_close(w->d[k]);
        w->d[k] = -1;
    }
    h5_close(w->dxpl);
    w->dxpl = -1;
    herr_t cerr = H5Fclose(w->file);
    w->file = -1;
    DS_TRY_GOTO(rc, agree(w->comm, cerr >= 0 ? DS_OK : ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__,
                                                                        "closing %s failed (disk full?)", w->tmp)),
                fail);
    DS_TRY_GOTO(rc, commit_collective(w->comm, w->tmp, w->path, NULL), fail);
    writer_release(w, 0);
    quiet_end(&q);
    return DS_OK;
fail:
    ds_free(name);
    writer_release(w, 1);
    quiet_end(&q);
    return rc;
}

void ds_samples_abort(ds_samples_writer **w)
{
    if (!w || !*w) return;
    quiet q;
    quiet_begin(&q);
    writer_release(*w, 1);
    *w = NULL;
    quiet_end(&q);
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
