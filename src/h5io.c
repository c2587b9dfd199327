/* h5io: the HDF5 helpers that checkpoints (h5_checkpoint.c) and sample sets
 * (h5_samples.c) are made of: collective writes at MPI_Exscan offsets,
 * attributes, shape-checked reads, the agreed error of every rank, and the
 * temporary-file + fsync + rename commit (file layout in h5io.h, internal
 * interface in h5io_impl.h). */
#define _POSIX_C_SOURCE 200809L
#include "h5io_impl.h"
#include "diffsamp/energy.h"
#include "diffsamp/mpicheck.h"

#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef DS_VERSION
#define DS_VERSION "unknown"
#endif

/* ---- small utilities ------------------------------------------------------- */

/* Every rank returns the status of the lowest failing rank; ranks that did
 * not fail take over its message (prefixed by the rank). */
ds_status ds_h5_agree(MPI_Comm comm, ds_status rc)
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
void ds_h5_quiet_begin(ds_h5_quiet *q)
{
    q->func = NULL;
    q->data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}
void ds_h5_quiet_end(const ds_h5_quiet *q) { H5Eset_auto2(H5E_DEFAULT, q->func, q->data); }

/* Closes any HDF5 identifier except files (whose close is collective and
 * checked by the caller); negative ids are ignored. */
void ds_h5_close(hid_t id)
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

char *ds_h5_str_dup(const char *s)
{
    size_t n = strlen(s);
    char *d = ds_calloc(n + 1, 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

ds_status ds_h5_join_path(char *out, size_t cap, const char *path, const char *suffix)
{
    int len = snprintf(out, cap, "%s%s", path, suffix);
    DS_CHECK(len >= 0 && (size_t)len < cap, DS_ERR_INVALID, "path too long (%zu characters at most): %s%s",
             cap - 1, path, suffix);
    return DS_OK;
}

int ds_h5_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* "(8, 2)", "(8)" or "()" with "?" for ANY_DIM. */
static const char *ds_h5_shape_str(char *buf, size_t cap, int ndims, const hsize_t *dims)
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
ds_status ds_h5_bcast_str(MPI_Comm comm, const char *in, char **out)
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

hid_t ds_h5_real_file_type(void) { return sizeof(ds_real) == sizeof(float) ? H5T_IEEE_F32LE : H5T_IEEE_F64LE; }
hid_t ds_h5_real_mem_type(void) { return sizeof(ds_real) == sizeof(float) ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE; }

hid_t ds_h5_file_type(ds_h5_type t)
{
    switch (t) {
    case DS_H5_REAL: return ds_h5_real_file_type();
    case DS_H5_F64: return H5T_IEEE_F64LE;
    case DS_H5_I32: return H5T_STD_I32LE;
    case DS_H5_I64: return H5T_STD_I64LE;
    case DS_H5_U64: return H5T_STD_U64LE;
    }
    return -1;
}

hid_t ds_h5_mem_type(ds_h5_type t)
{
    switch (t) {
    case DS_H5_REAL: return ds_h5_real_mem_type();
    case DS_H5_F64: return H5T_NATIVE_DOUBLE;
    case DS_H5_I32: return H5T_NATIVE_INT32;
    case DS_H5_I64: return H5T_NATIVE_INT64;
    case DS_H5_U64: return H5T_NATIVE_UINT64;
    }
    return -1;
}

H5T_class_t ds_h5_class(ds_h5_type t) { return t == DS_H5_REAL || t == DS_H5_F64 ? H5T_FLOAT : H5T_INTEGER; }

size_t ds_h5_size(ds_h5_type t)
{
    switch (t) {
    case DS_H5_REAL: return sizeof(ds_real);
    case DS_H5_I32: return sizeof(int32_t);
    case DS_H5_F64:
    case DS_H5_I64:
    case DS_H5_U64: return 8;
    }
    return 8;
}

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
    if (prev && ds_h5_file_exists(path))
        DS_CHECK(rename(path, prev) == 0, DS_ERR_IO, "cannot rename %s to %s: %s", path, prev, strerror(errno));
    DS_CHECK(rename(tmp, path) == 0, DS_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    char dir[H5IO_PATH];
    DS_TRY(ds_h5_join_path(dir, sizeof dir, path, ""));
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
ds_status ds_h5_commit_collective(MPI_Comm comm, const char *tmp, const char *path, const char *prev)
{
    int rank;
    DS_MPI(MPI_Comm_rank(comm, &rank));
    DS_MPI(MPI_Barrier(comm));
    ds_status rc = DS_OK;
    if (rank == 0) rc = commit_file(tmp, path, prev);
    return ds_h5_agree(comm, rc);
}
/* ---- writing ---------------------------------------------------------------- */

ds_status ds_h5_attr_write(hid_t obj, const char *name, hid_t ftype, hid_t mtype, hid_t space, const void *buf)
{
    ds_status rc = DS_OK;
    hid_t a = H5Acreate2(obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(a >= 0, rc, done, DS_ERR_IO, "cannot create attribute '%s'", name);
    CHECK(H5Awrite(a, mtype, buf) >= 0, rc, done, DS_ERR_IO, "cannot write attribute '%s'", name);
done:
    ds_h5_close(a);
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

ds_status ds_h5_attr_write_str(hid_t obj, const char *name, const char *value)
{
    ds_status rc = DS_OK;
    hid_t t = vlen_str_type(), s = H5Screate(H5S_SCALAR);
    CHECK(t >= 0 && s >= 0, rc, done, DS_ERR_IO, "cannot make the string type of attribute '%s'", name);
    const char *v = value ? value : "";
    DS_TRY_GOTO(rc, ds_h5_attr_write(obj, name, t, t, s, &v), done);
done:
    ds_h5_close(t);
    ds_h5_close(s);
    return rc;
}

/* A 1-D array of n strings (an empty dataspace when n = 0). */
ds_status ds_h5_attr_write_str_array(hid_t obj, const char *name, int n, const char *const *values)
{
    ds_status rc = DS_OK;
    hsize_t dim = (hsize_t)n;
    hid_t t = vlen_str_type(), s = n > 0 ? H5Screate_simple(1, &dim, NULL) : H5Screate(H5S_NULL);
    CHECK(t >= 0 && s >= 0, rc, done, DS_ERR_IO, "cannot make the type of attribute '%s'", name);
    const char *dummy = "";
    DS_TRY_GOTO(rc, ds_h5_attr_write(obj, name, t, t, s, n > 0 ? (const void *)values : (const void *)&dummy), done);
done:
    ds_h5_close(t);
    ds_h5_close(s);
    return rc;
}

ds_status ds_h5_attr_write_scalar(hid_t obj, const char *name, hid_t ftype, hid_t mtype, const void *value)
{
    ds_status rc = DS_OK;
    hid_t s = H5Screate(H5S_SCALAR);
    CHECK(s >= 0, rc, done, DS_ERR_IO, "cannot make the dataspace of attribute '%s'", name);
    DS_TRY_GOTO(rc, ds_h5_attr_write(obj, name, ftype, mtype, s, value), done);
done:
    ds_h5_close(s);
    return rc;
}

/* Creates dataset `name` (shape dims; ndims 0 = scalar, at most 2) under loc
 * and writes this rank's rows [first, first + rows) of it from buf (rows of
 * dims[1] elements of mtype); a scalar is written when rows = 1. Collective:
 * every rank calls it with the same name, type and shape; ranks with rows = 0
 * select nothing but take part. */
ds_status ds_h5_dset_write(hid_t loc, hid_t dxpl, MPI_Comm comm, ds_h5_index *ix, const char *name, hid_t ftype,
                            hid_t mtype, int ndims, const hsize_t *dims, hsize_t first, hsize_t rows, const void *buf,
                            const char *description)
{
    ds_status rc = DS_OK;
    /* The bytes in memory are the bytes in the file (same size, both
     * little-endian): their CRC is the dataset's. */
    size_t esize = H5Tget_size(mtype);
    uint64_t nbytes = (uint64_t)rows * (ndims > 1 ? dims[1] : 1) * esize;
    uint32_t crc = 0, local = esize == H5Tget_size(ftype) && rows > 0 ? ds_crc32c(0, buf, (size_t)nbytes) : 0;
    DS_TRY(ds_h5_crc_rank_order(comm, local, rows > 0 ? nbytes : 0, &crc));
    DS_CHECK(esize == H5Tget_size(ftype), DS_ERR_INVALID, "dataset %s: memory and file types differ in size", name);
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
    DS_TRY_GOTO(rc, ds_h5_attr_write_str(d, "description", description), done);
    DS_TRY_GOTO(rc, ds_h5_dset_seal(d, name, crc, ix), done);
done:
    ds_h5_close(d);
    ds_h5_close(dcpl);
    ds_h5_close(mspace);
    ds_h5_close(fspace);
    return rc;
}

/* Creates dataset `name` (N, [cols]) without writing it (streamed later). */
ds_status ds_h5_dset_create(hid_t loc, const char *name, hid_t ftype, int ndims, const hsize_t *dims,
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
    DS_TRY_GOTO(rc, ds_h5_attr_write_str(*out, "description", description), done);
done:
    ds_h5_close(dcpl);
    ds_h5_close(fspace);
    return rc;
}


void ds_h5_header_strings_free(ds_h5_header *h)
{
    DS_FREE(h->config);
    DS_FREE(h->energy);
    DS_FREE(h->libs);
}

ds_status ds_h5_header_strings_bcast(MPI_Comm comm, const ds_h5_meta *meta, ds_h5_header *h)
{
    int rank;
    DS_MPI(MPI_Comm_rank(comm, &rank));
    char libs[2048] = "";
    if (rank == 0) library_versions(libs, sizeof libs);
    DS_TRY(ds_h5_bcast_str(comm, meta->config_yaml, &h->config));
    DS_TRY(ds_h5_bcast_str(comm, meta->energy, &h->energy));
    DS_TRY(ds_h5_bcast_str(comm, libs, &h->libs));
    return DS_OK;
}

ds_status ds_h5_write_root_attrs(hid_t file, const char *format, const ds_h5_header *h, int dim)
{
    int version = DS_H5_FORMAT_VERSION;
    DS_TRY(ds_h5_attr_write_str(file, "format", format));
    DS_TRY(ds_h5_attr_write_scalar(file, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT, &version));
    DS_TRY(ds_h5_attr_write_str(file, "config", h->config));
    char code_version[256];
    snprintf(code_version, sizeof code_version, "diffsamp %s (%s)", DS_VERSION, ds_git_version());
    DS_TRY(ds_h5_attr_write_str(file, "code_version", code_version));
    DS_TRY(ds_h5_attr_write_str(file, "library_versions", h->libs));
    DS_TRY(ds_h5_attr_write_str(file, "precision", DS_REAL_NAME));
    DS_TRY(ds_h5_attr_write_str(file, "energy", h->energy));
    DS_TRY(ds_h5_attr_write_scalar(file, "dim", H5T_STD_I32LE, H5T_NATIVE_INT, &dim));
    /* An energy from a shared library (energies/plugin.c): which file, and
     * the SHA-256 of its bytes. */
    const ds_energy_plugin_lib *plugin = ds_energy_plugin_last();
    if (plugin && strcmp(h->energy, "plugin") == 0) {
        DS_TRY(ds_h5_attr_write_str(file, "energy_plugin", plugin->file));
        DS_TRY(ds_h5_attr_write_str(file, "energy_plugin_sha256", plugin->sha256));
    }
    DS_TRY(ds_h5_attr_write_str(file, DS_H5_INTEGRITY_ATTR, DS_H5_INTEGRITY));
    return DS_OK;
}

/* Collective creation of path's temporary file with the MPI-IO driver and a
 * collective transfer property list. */
ds_status ds_h5_create_tmp_file(MPI_Comm comm, const char *tmp, hid_t *file, hid_t *dxpl)
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
    ds_h5_close(fapl);
    return rc;
}

/* Names of groups must be plain so that "/replay/<name>" is one link. */
int ds_h5_plain_name(const char *s)
{
    if (!s || !*s || strlen(s) >= DS_NAME_MAX) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return 0;
    return 1;
}

ds_status ds_h5_group_create(hid_t loc, const char *name, hid_t *g)
{
    *g = H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    DS_CHECK(*g >= 0, DS_ERR_IO, "cannot create group %s", name);
    return DS_OK;
}

ds_status ds_h5_attr_open(const ds_h5_rd *r, hid_t obj, const char *objname, const char *name, hid_t *a)
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
ds_status ds_h5_attr_read_str(const ds_h5_rd *r, hid_t obj, const char *objname, const char *name, char **out)
{
    ds_status rc = DS_OK;
    hid_t a = -1, ft = -1, mt = -1, sp = -1;
    char *vs = NULL;
    *out = NULL;
    DS_TRY_GOTO(rc, ds_h5_attr_open(r, obj, objname, name, &a), done);
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
        *out = ds_h5_str_dup(vs ? vs : "");
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
    ds_h5_close(mt);
    ds_h5_close(ft);
    ds_h5_close(sp);
    ds_h5_close(a);
    return rc;
}

/* A scalar numeric attribute, converted to mtype. */
ds_status ds_h5_attr_read_num(const ds_h5_rd *r, hid_t obj, const char *objname, const char *name, hid_t mtype, void *out)
{
    ds_status rc = DS_OK;
    hid_t a = -1, ft = -1, sp = -1;
    DS_TRY_GOTO(rc, ds_h5_attr_open(r, obj, objname, name, &a), done);
    ft = H5Aget_type(a);
    sp = H5Aget_space(a);
    CHECK(ft >= 0 && sp >= 0 && (H5Tget_class(ft) == H5T_INTEGER || H5Tget_class(ft) == H5T_FLOAT) &&
              H5Sget_simple_extent_npoints(sp) == 1,
          rc, done, DS_ERR_FORMAT, "%s %s: attribute '%s' of %s is not a single number", r->kind, r->path, name,
          objname);
    CHECK(H5Aread(a, mtype, out) >= 0, rc, done, DS_ERR_FORMAT, "%s %s: cannot read attribute '%s' of %s", r->kind,
          r->path, name, objname);
done:
    ds_h5_close(ft);
    ds_h5_close(sp);
    ds_h5_close(a);
    return rc;
}

/* A 1-D string-array attribute into n new strings (n may be 0). */
ds_status ds_h5_attr_read_str_array(const ds_h5_rd *r, hid_t obj, const char *objname, const char *name, int *n_out,
                                     char ***out)
{
    ds_status rc = DS_OK;
    hid_t a = -1, ft = -1, mt = -1, sp = -1;
    char **vs = NULL, *fixed = NULL;
    int n = 0;
    *out = NULL;
    *n_out = 0;
    DS_TRY_GOTO(rc, ds_h5_attr_open(r, obj, objname, name, &a), done);
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
            (*out)[i] = ds_h5_str_dup(vs[i] ? vs[i] : "");
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
            (*out)[i] = ds_h5_str_dup(fixed + (size_t)i * (len + 1));
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
    ds_h5_close(mt);
    ds_h5_close(ft);
    ds_h5_close(sp);
    ds_h5_close(a);
    return rc;
}

/* The shape and element size read from the file must describe the bytes
 * the file holds for the dataset (contiguous storage, allocated at
 * creation): a damaged shape is refused before anything is sized by it. */
ds_status ds_h5_dset_sized(const ds_h5_rd *r, hid_t d, hid_t ftype, const char *name, int nd, const hsize_t *dims)
{
    size_t tsize = ftype >= 0 ? H5Tget_size(ftype) : 0;
    uint64_t npts = 1;
    int overflow = tsize == 0 || tsize > 64;
    for (int i = 0; i < nd && !overflow; i++) {
        if (dims[i] != 0 && npts > UINT64_MAX / dims[i]) overflow = 1;
        else npts *= dims[i];
    }
    if (!overflow && npts > UINT64_MAX / tsize) overflow = 1;
    uint64_t bytes = overflow ? 0 : npts * tsize;
    hsize_t stored = H5Dget_storage_size(d);
    DS_CHECK(!overflow && bytes == (uint64_t)stored && (r->file_size == 0 || bytes <= r->file_size), DS_ERR_FORMAT,
             "%s %s: dataset %s claims %d dimensions of %s%zu-byte elements but the file holds %llu bytes of it "
             "(damaged shape or type)", r->kind, r->path, name, nd, overflow ? "an impossible number of " : "",
             tsize, (unsigned long long)stored);
    return DS_OK;
}

/* Opens dataset `name` and checks its type class and shape: ndims 0 is a
 * scalar, want[i] = ANY_DIM accepts any extent. found (ndims entries) gets
 * the shape. */
ds_status ds_h5_dset_open(const ds_h5_rd *r, const char *name, H5T_class_t want_class, int ndims, const hsize_t *want,
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
             ds_h5_shape_str(a, sizeof a, nd, dims), ds_h5_shape_str(b, sizeof b, ndims, want));
    }
    DS_TRY_GOTO(rc, ds_h5_dset_sized(r, d, t, name, nd, dims), done);
    DS_TRY_GOTO(rc, ds_h5_dset_check(r, d, name), done);
    for (int i = 0; i < nd; i++) found[i] = dims[i];
    *out = d;
    d = -1;
done:
    ds_h5_close(t);
    ds_h5_close(sp);
    ds_h5_close(d);
    return rc;
}

/* Reads rows [first, first + rows) of an open dataset (every element of a
 * scalar when ndims = 0 and rows = 1); collective, rows may be 0. */
ds_status ds_h5_dset_read_rows(const ds_h5_rd *r, hid_t d, const char *name, hid_t mtype, int ndims, const hsize_t *dims,
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
    ds_h5_close(mspace);
    ds_h5_close(fspace);
    return rc;
}

/* Opens, checks and reads a whole replicated dataset on every rank. */
ds_status ds_h5_dset_read_all(const ds_h5_rd *r, const char *name, H5T_class_t cls, hid_t mtype, int ndims,
                               const hsize_t *want, void *buf)
{
    ds_status rc = DS_OK;
    hid_t d = -1;
    hsize_t found[2] = {0, 0};
    DS_TRY_GOTO(rc, ds_h5_dset_open(r, name, cls, ndims, want, found, &d), done);
    DS_TRY_GOTO(rc, ds_h5_dset_read_rows(r, d, name, mtype, ndims, found, 0, ndims == 0 ? 1 : found[0], buf), done);
done:
    ds_h5_close(d);
    return rc;
}

ds_status ds_h5_open_for_read(MPI_Comm comm, ds_h5_rd *r)
{
    ds_status rc = DS_OK;
    hid_t fapl = -1;
    int rank = 0;
    r->file = r->dxpl = -1;
    r->sealed = 0;
    r->file_size = 0;
    CHECK(ds_h5_file_exists(r->path), rc, done, DS_ERR_IO, "cannot open %s %s: no such file", r->kind, r->path);
    {
        struct stat st;
        if (stat(r->path, &st) == 0) r->file_size = (uint64_t)st.st_size;
    }
    /* Before HDF5 sees a byte of it: HDF5 can crash on a damaged file. */
    DS_TRY_GOTO(rc, ds_h5_verify_file(comm, r->path, r->kind, &r->sealed, &r->index), done);
    if (!r->sealed) {
        /* Unverified bytes reach HDF5 only when asked for (rank 0 decides for all). */
        const char *env = getenv("DS_ALLOW_UNVERIFIED");
        int allow = env && *env && strcmp(env, "0") != 0;
        MPI_Comm_rank(comm, &rank);
        DS_MPI_GOTO(rc, done, MPI_Bcast(&allow, 1, MPI_INT, 0, comm));
        CHECK(allow, rc, done, DS_ERR_FORMAT,
              "%s %s has no completion record at its end: it was truncated, damaged at its end or rewritten by "
              "another tool (or written before diffsamp kept checksums); not opened, since HDF5 can crash on a "
              "damaged file. To load a file from before the checksums unverified, set DS_ALLOW_UNVERIFIED=1",
              r->kind, r->path);
    }
    DS_TRY_GOTO(rc, ds_h5_check_heaps(comm, r->path, r->kind, r->sealed ? &r->index : NULL), done);
    fapl = H5Pcreate(H5P_FILE_ACCESS);
    CHECK(fapl >= 0 && H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL) >= 0, rc, done, DS_ERR_IO,
          "cannot set up the MPI-IO driver to read %s", r->path);
    r->dxpl = H5Pcreate(H5P_DATASET_XFER);
    CHECK(r->dxpl >= 0 && H5Pset_dxpl_mpio(r->dxpl, H5FD_MPIO_COLLECTIVE) >= 0, rc, done, DS_ERR_IO,
          "cannot set up collective transfers to read %s", r->path);
    r->file = H5Fopen(r->path, H5F_ACC_RDONLY, fapl);
    CHECK(r->file >= 0, rc, done, DS_ERR_FORMAT, "cannot open %s %s: not an HDF5 file or truncated", r->kind, r->path);
    if (!r->sealed) {
        htri_t has = H5Aexists(r->file, DS_H5_INTEGRITY_ATTR);
        CHECK(has == 0, rc, done, DS_ERR_FORMAT,
              "%s %s has no completion record at its end (it was truncated, or its last bytes are damaged, or a "
              "tool rewrote it): its contents cannot be verified; not used", r->kind, r->path);
        static char warned[H5IO_PATH]; /* once per file, not at every reopening */
        if (rank == 0 && strcmp(warned, r->path) != 0 && snprintf(warned, sizeof warned, "%s", r->path) >= 0)
            fprintf(stderr, "diffsamp: warning: %s %s was written before diffsamp kept checksums: its contents "
                    "are not verified (DS_ALLOW_UNVERIFIED)\n", r->kind, r->path);
    }
done:
    ds_h5_close(fapl);
    return rc;
}
