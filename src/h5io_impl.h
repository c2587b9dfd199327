/* h5io_impl.h: the HDF5 helpers shared by the files of the h5io module
 * (h5io.c: the helpers; h5_checkpoint.c: checkpoints; h5_samples.c: sample
 * sets). Not a public header: only src/h5*.c include it.
 *
 * Collective helpers run in phases: a step runs only while every earlier one
 * succeeded (STEP), and each phase ends with ds_h5_agree (SYNC), so every
 * rank makes the same number of collective calls whichever step failed. */
#ifndef DS_H5IO_IMPL_H
#define DS_H5IO_IMPL_H

#include "diffsamp/h5io.h"

#include <hdf5.h>
#include <mpi.h>
#include <stddef.h>

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
#define STEP(rc, expr)                                                              \
    do {                                                                            \
        if ((rc) == DS_OK) (rc) = (expr);                                           \
    } while (0)
#define SYNC(rc, comm, label)                                                       \
    do {                                                                            \
        (rc) = ds_h5_agree((comm), (rc));                                           \
        if ((rc) != DS_OK) goto label;                                              \
    } while (0)

/* ---- utilities (not collective unless said) ------------------------------- */

/* Collective: every rank returns the status of the lowest failing rank;
 * ranks that did not fail take over its message (prefixed by the rank). */
ds_status ds_h5_agree(MPI_Comm comm, ds_status rc);

/* HDF5 prints its error stack on every failure unless told not to; the
 * previous handler is restored by ds_h5_quiet_end. */
typedef struct ds_h5_quiet {
    H5E_auto2_t func;
    void *data;
} ds_h5_quiet;
void ds_h5_quiet_begin(ds_h5_quiet *q);
void ds_h5_quiet_end(const ds_h5_quiet *q);

/* Closes any HDF5 identifier except files (whose close is collective and
 * checked by the caller); negative ids are ignored. */
void ds_h5_close(hid_t id);
char *ds_h5_str_dup(const char *s);
/* out = path + suffix; DS_ERR_INVALID when it does not fit in cap bytes. */
ds_status ds_h5_join_path(char *out, size_t cap, const char *path, const char *suffix);
int ds_h5_file_exists(const char *path);
/* Collective: rank 0's string on every rank (a ds_calloc'ed copy the caller frees). */
ds_status ds_h5_bcast_str(MPI_Comm comm, const char *in, char **out);
/* ds_real in files (IEEE float32 or float64) and in memory. */
hid_t ds_h5_real_file_type(void);
hid_t ds_h5_real_mem_type(void);
/* A ds_h5_type's file type, memory type, type class and bytes in memory. */
hid_t ds_h5_file_type(ds_h5_type t);
hid_t ds_h5_mem_type(ds_h5_type t);
H5T_class_t ds_h5_class(ds_h5_type t);
size_t ds_h5_size(ds_h5_type t);
/* Names of groups must be plain so that "/replay/<name>" is one link:
 * 1 .. DS_NAME_MAX-1 letters, digits or '_'. */
int ds_h5_plain_name(const char *s);

/* ---- integrity (h5_integrity.c) ---------------------------------------------- */

#define DS_H5_CRC_ATTR "crc32c"    /* per-dataset checksum attribute (uint32) */
#define DS_H5_INTEGRITY_ATTR "integrity" /* root attribute of files with a record */
#define DS_H5_INTEGRITY "crc32c-record-1"

/* CRC-32C of n bytes continuing crc (0 to start; crc of nothing is 0). */
uint32_t ds_crc32c(uint32_t crc, const void *buf, size_t n);
/* crc(A || B) from crc(A), crc(B) and |B|. */
uint32_t ds_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);
/* Collective: the CRC of the concatenation, in rank order, of every rank's
 * bytes (local = their CRC, len = their count), on every rank. */
ds_status ds_h5_crc_rank_order(MPI_Comm comm, uint32_t local, uint64_t len, uint32_t *out);

/* The datasets of a file with their byte ranges and checksums. */
typedef struct ds_h5_entry {
    char *name;
    uint64_t offset, length; /* its data (length 0: none) */
    uint32_t crc;            /* of the data */
    uint64_t header;         /* address of its object header */
    uint32_t header_crc;     /* of the metadata bytes from there to the next header */
} ds_h5_entry;
typedef struct ds_h5_index {
    int n, cap;
    ds_h5_entry *e;
} ds_h5_index;
void ds_h5_index_free(ds_h5_index *ix);
const ds_h5_entry *ds_h5_index_find(const ds_h5_index *ix, const char *name);
/* Writes dataset d's crc32c attribute and, when ix is not NULL and d has
 * storage, adds its byte range to ix (every rank, collectively). */
ds_status ds_h5_dset_seal(hid_t d, const char *name, uint32_t crc, ds_h5_index *ix);
/* Collective, after every rank closed tmp with HDF5: rank 0 appends the
 * completion record of ix (h5_integrity.c) to tmp. */
ds_status ds_h5_seal_file(MPI_Comm comm, const char *tmp, ds_h5_index *ix);
/* Not collective, for tests and fuzzing: appends a completion record of ix's
 * datasets with their CRCs recomputed from path's bytes (the metadata CRCs
 * always are). */
ds_status ds_h5_seal_bytes(const char *path, ds_h5_index *ix);
/* Not collective, for tests: after a tool changed the file at path with
 * HDF5, drops its old record, rewrites every dataset's crc32c attribute from
 * its stored bytes and appends a new record. The file must be intact. */
ds_status ds_h5_reseal(const char *path);
/* Not collective, for fuzzing: the index of path's record (its CRCs not
 * checked) and the length of the content before it. */
ds_status ds_h5_record_index(const char *path, ds_h5_index *ix, uint64_t *content);
/* Collective, before HDF5 opens path: when it ends in a completion record,
 * checks every byte against it (DS_ERR_FORMAT naming the damaged dataset, or
 * the metadata) and returns *sealed = 1 and the index in ix; *sealed = 0 when
 * it has no record. */
ds_status ds_h5_verify_file(MPI_Comm comm, const char *path, const char *kind, int *sealed, ds_h5_index *ix);

/* Collective, before HDF5 opens path: every HDF5 global heap collection
 * outside ix's dataset bytes (ix may be NULL) must hold objects that fit in
 * it (HDF5 1.10 crashes on one that overruns). DS_ERR_FORMAT otherwise. */
ds_status ds_h5_check_heaps(MPI_Comm comm, const char *path, const char *kind, const ds_h5_index *ix);

/* ---- writing ---------------------------------------------------------------- */

/* Collective end of a write: every rank has closed tmp; rank 0 fsyncs it,
 * moves an existing path to prev (when prev is not NULL), renames tmp to
 * path and fsyncs the directory. */
ds_status ds_h5_commit_collective(MPI_Comm comm, const char *tmp, const char *path, const char *prev);

ds_status ds_h5_attr_write(hid_t obj, const char *name, hid_t ftype, hid_t mtype, hid_t space, const void *buf);
/* A variable-length UTF-8 string attribute (NULL writes ""). */
ds_status ds_h5_attr_write_str(hid_t obj, const char *name, const char *value);
/* A 1-D array of n strings (an empty dataspace when n = 0). */
ds_status ds_h5_attr_write_str_array(hid_t obj, const char *name, int n, const char *const *values);
ds_status ds_h5_attr_write_scalar(hid_t obj, const char *name, hid_t ftype, hid_t mtype, const void *value);

/* Creates dataset `name` (shape dims; ndims 0 = scalar, at most 2) under loc
 * and writes this rank's rows [first, first + rows) of it from buf (rows of
 * dims[1] elements of mtype); a scalar is written when rows = 1. Collective:
 * every rank calls it with the same name, type and shape; ranks with rows = 0
 * select nothing but take part. The dataset gets its crc32c attribute (the
 * ranks' rows combined in rank order over comm) and its entry in ix (may be
 * NULL). ftype and mtype must have the same size (no conversion). */
ds_status ds_h5_dset_write(hid_t loc, hid_t dxpl, MPI_Comm comm, ds_h5_index *ix, const char *name, hid_t ftype,
                           hid_t mtype, int ndims, const hsize_t *dims, hsize_t first, hsize_t rows, const void *buf,
                           const char *description);
/* Creates dataset `name` (N, [cols]) without writing it (streamed later). */
ds_status ds_h5_dset_create(hid_t loc, const char *name, hid_t ftype, int ndims, const hsize_t *dims,
                            const char *description, hid_t *out);
ds_status ds_h5_group_create(hid_t loc, const char *name, hid_t *g);

/* The root attributes every file carries; the strings are rank 0's. */
typedef struct ds_h5_header {
    char *config, *energy, *libs;
} ds_h5_header;
void ds_h5_header_strings_free(ds_h5_header *h);
/* Collective. */
ds_status ds_h5_header_strings_bcast(MPI_Comm comm, const ds_h5_meta *meta, ds_h5_header *h);
ds_status ds_h5_write_root_attrs(hid_t file, const char *format, const ds_h5_header *h, int dim);
/* Collective creation of a temporary file with the MPI-IO driver and a
 * collective transfer property list. */
ds_status ds_h5_create_tmp_file(MPI_Comm comm, const char *tmp, hid_t *file, hid_t *dxpl);

/* ---- reading ---------------------------------------------------------------- */

/* Reading context: the file, its name (for messages) and what it is. */
typedef struct ds_h5_rd {
    hid_t file, dxpl;
    const char *path;
    const char *kind;  /* "checkpoint" or "sample set" */
    int sealed;        /* 1: the completion record verified every byte */
    ds_h5_index index; /* its datasets (when sealed) */
    uint64_t file_size;
} ds_h5_rd;
/* The checks of a dataset about to be read: in a sealed file, its crc32c
 * attribute and byte range must be those of the record that verified them. */
ds_status ds_h5_dset_check(const ds_h5_rd *r, hid_t d, const char *name);
/* The shape dims (nd of them) and the element size of ftype must account for
 * exactly the bytes the file stores for d, and fit in the file. */
ds_status ds_h5_dset_sized(const ds_h5_rd *r, hid_t d, hid_t ftype, const char *name, int nd, const hsize_t *dims);

/* Collective: verifies r->path's completion record (ds_h5_verify_file), then
 * opens it read-only through the MPI-IO driver. DS_ERR_IO when there is no
 * file, DS_ERR_FORMAT when it is damaged or not HDF5, or has no record
 * (unless DS_ALLOW_UNVERIFIED=1: then a file written before the checksums, no
 * record and no integrity attribute, is opened with a warning on stderr). */
ds_status ds_h5_open_for_read(MPI_Comm comm, ds_h5_rd *r);
ds_status ds_h5_attr_open(const ds_h5_rd *r, hid_t obj, const char *objname, const char *name, hid_t *a);
/* A scalar string attribute (variable or fixed length) into a new string. */
ds_status ds_h5_attr_read_str(const ds_h5_rd *r, hid_t obj, const char *objname, const char *name, char **out);
/* A scalar numeric attribute, converted to mtype. */
ds_status ds_h5_attr_read_num(const ds_h5_rd *r, hid_t obj, const char *objname, const char *name, hid_t mtype,
                              void *out);
/* A 1-D string-array attribute into n new strings (n may be 0). */
ds_status ds_h5_attr_read_str_array(const ds_h5_rd *r, hid_t obj, const char *objname, const char *name, int *n_out,
                                    char ***out);
/* Root attributes: format (must be want_format), format_version (refuses
 * newer ones), energy, dim, precision, config, code_version. */
ds_status ds_h5_read_header(const ds_h5_rd *r, const char *want_format, ds_ckpt_data *out);
/* Opens dataset `name` and checks its type class and shape: ndims 0 is a
 * scalar, want[i] = ANY_DIM accepts any extent. found (ndims entries) gets
 * the shape. */
ds_status ds_h5_dset_open(const ds_h5_rd *r, const char *name, H5T_class_t want_class, int ndims, const hsize_t *want,
                          hsize_t *found, hid_t *out);
/* Reads rows [first, first + rows) of an open dataset (every element of a
 * scalar when ndims = 0 and rows = 1); collective, rows may be 0. */
ds_status ds_h5_dset_read_rows(const ds_h5_rd *r, hid_t d, const char *name, hid_t mtype, int ndims,
                               const hsize_t *dims, hsize_t first, hsize_t rows, void *buf);
/* Opens, checks and reads a whole replicated dataset on every rank. */
ds_status ds_h5_dset_read_all(const ds_h5_rd *r, const char *name, H5T_class_t cls, hid_t mtype, int ndims,
                              const hsize_t *want, void *buf);

#endif
