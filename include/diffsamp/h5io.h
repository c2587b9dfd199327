/* h5io: the parallel HDF5 files of diffsamp (DESIGN.md 3-4): checkpoints
 * (everything a run needs to resume, on any number of ranks) and sample sets
 * (forward samples with their log-weights and the evaluation metrics).
 *
 * Every file is written collectively through the MPI-IO driver to
 * "<path>.tmp", closed on every rank, fsynced and renamed over <path> by
 * rank 0 (checkpoints keep the previous file as "<path>.prev"), so a crash at
 * any moment leaves <path> or <path>.prev loadable. Replicated arrays
 * (parameters, moments, metrics) are written by rank 0 alone; sharded arrays
 * (replay buffers, samples) by every rank at its MPI_Exscan offset; ranks with
 * nothing to write still take part in every collective call.
 *
 * Root attributes of every file:
 *   format            "diffsamp-checkpoint" | "diffsamp-samples"
 *   format_version    int32, DS_H5_FORMAT_VERSION (readers refuse newer ones)
 *   config            the effective config, YAML text
 *   code_version      "diffsamp <version> (<git describe>)"
 *   library_versions  HDF5, MPI and OpenBLAS versions, one per line
 *   precision         "float" | "double": ds_real of the writer
 *   energy            energy name;  dim  int32, the dimension of x
 *   integrity         "crc32c-record-1": the file ends in a completion record
 * Strings are variable-length UTF-8 (h5py reads them as str). Every dataset
 * has a one-sentence `description` attribute and a `crc32c` attribute (uint32,
 * the CRC-32C of its stored little-endian bytes in row-major order, the
 * ranks' rows combined in rank order: the same for any number of ranks).
 *
 * Integrity (src/h5_integrity.c): every file ends in a completion record,
 * appended after HDF5's last byte before the fsync and rename that publish
 * it, with the byte range and CRC of every dataset and of the HDF5 metadata
 * between them. Readers check every byte against it before HDF5 opens the
 * file, refuse a damaged file naming the dataset (DS_ERR_FORMAT) and refuse
 * a file without a record; with DS_ALLOW_UNVERIFIED=1 in the environment a
 * file from before the checksums (no record, no integrity attribute) loads
 * with a warning on stderr.
 *
 * Checkpoint layout (R = ds_real of the writer, stored as IEEE float32 or
 * float64 and converted to the reader's ds_real on load):
 *   /model/params        (n)  R     flat parameter array
 *   /optimizer/m, /v     (n)  R     Adam moments
 *   /optimizer/step      ()   int64 Adam step count
 *   /state/iteration     ()   int64 training iterations completed
 *   /state/world_size    ()   int32 ranks of the writer
 *   /state/ls_step       ()   f64   local-search (MALA) step size
 *   /state/exploration   ()   f64   exploration std at save (informational)
 *   /state/rng_seed      ()   uint64 train.seed
 *   /state/run           (1, k) f64, attribute `columns`: further run state
 *   /metrics             (rows, ncols) f64, attribute `columns` (ncols strings):
 *                        the table of metrics.h, which its description lists
 *   /replay/<name>/x     (N, dim) R   the shards of every rank, rank order,
 *   /replay/<name>/log_r (N)      R   each shard oldest entry first
 *   /replay/<name>/counts (world_size) int64  rows per writer rank
 *   /replay/<name>       attribute `capacity` int64 (per-rank capacity)
 *
 * Sample set layout (N samples over all ranks, rank order):
 *   /x (N, dim) R; /log_reward, /log_pf, /log_pb, /log_weight (N) f64 (the
 *   table ds_samples_columns), plus any column a caller adds to the table
 *   (a conditional run's /condition (N) int32)
 *   root attributes as above plus `n_samples` (int64) and one f64 attribute
 *   per metric (elbo, log_z_is, ess, delta_log_z, ...).
 *
 * Every function here is collective over its communicator unless said
 * otherwise; on error every rank returns the same status (the message of the
 * lowest failing rank is passed to the others). HDF5's own error printing is
 * switched off inside these functions so the messages are ours. */
#ifndef DS_H5IO_H
#define DS_H5IO_H

#include "diffsamp/config.h"
#include "diffsamp/core.h"

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#define DS_H5_FORMAT_VERSION 1
#define DS_H5_FORMAT_CHECKPOINT "diffsamp-checkpoint"
#define DS_H5_FORMAT_SAMPLES "diffsamp-samples"

/* What every file records about the run. The strings must be the same on
 * every rank (rank 0's are written). */
typedef struct ds_h5_meta {
    const char *energy;      /* energy name (non-empty, < DS_NAME_MAX chars) */
    int dim;                 /* dimension of x (>= 1) */
    const char *config_yaml; /* effective config (ds_settings_to_yaml); NULL = "" */
} ds_h5_meta;

/* One named number stored as a root attribute of a sample set. */
typedef struct ds_h5_metric {
    const char *name;
    double value;
} ds_h5_metric;

/* Element types of datasets and attributes: DS_H5_REAL is ds_real in memory,
 * stored in the writer's precision (IEEE float32 or float64) and converted
 * to the reader's ds_real on load; the others are stored as named. */
typedef enum ds_h5_type { DS_H5_REAL, DS_H5_F64, DS_H5_I32, DS_H5_I64, DS_H5_U64 } ds_h5_type;

/* ---- checkpoints ---------------------------------------------------------- */

/* An open checkpoint, being written (ds_ckpt_create .. ds_ckpt_commit) or
 * read (ds_ckpt_open .. ds_ckpt_close). Every module writes and reads its own
 * datasets through it (restart.h: the arena and Adam, each replay buffer;
 * train_state.c: the run state; train_run.c: the metrics history), so a new
 * saved field touches the module that owns it and nothing here.
 *
 * Every function on a handle is collective over the handle's communicator
 * and returns the same status on every rank. Names are absolute paths
 * ("/model/params"); writers create missing parent groups. Replicated data
 * (the same on every rank) is written from rank 0's copy and read by every
 * rank; sharded data (ds_ckpt_write_rows) is concatenated in rank order at
 * MPI_Exscan offsets. */
typedef struct ds_ckpt_file ds_ckpt_file;

/* What a checkpoint says about itself (its root attributes). */
typedef struct ds_ckpt_data {
    char energy[DS_NAME_MAX];
    int dim;
    int format_version;
    char *config_yaml;  /* the writer's effective config */
    char *code_version;
    char precision[16]; /* ds_real of the writer */
    char plugin_sha256[65]; /* SHA-256 of the writer's energy plugin library; "" when none */
} ds_ckpt_data;

/* What a reader requires of a checkpoint; a zero/NULL field is not checked.
 * (The parameter count is checked by ds_arena_read.) */
typedef struct ds_ckpt_expect {
    const char *energy;
    int dim;
    /* the reader's energy plugin library (SHA-256, 64 hex digits): a checkpoint written with another
       library is refused unless DS_ALLOW_PLUGIN_CHANGE=1 */
    const char *plugin_sha256;
} ds_ckpt_expect;

/* Creates "<path>.tmp" with the root attributes of meta. Errors:
 * DS_ERR_INVALID (bad arguments), DS_ERR_IO (the file cannot be created),
 * DS_ERR_MPI. *out is NULL on error. */
ds_status ds_ckpt_create(MPI_Comm comm, const char *path, const ds_h5_meta *meta, ds_ckpt_file **out);
/* Closes the file being written, fsyncs it, moves an existing path to
 * "<path>.prev" and renames "<path>.tmp" to path. Frees *f and sets it to
 * NULL in every case; on error the temporary file is removed and path and
 * path.prev are left as they were (DS_ERR_IO names the file and the step). */
ds_status ds_ckpt_commit(ds_ckpt_file **f);
/* Opens the checkpoint at path for reading and checks its root attributes
 * against expect (may be NULL). Errors (*out NULL):
 *   DS_ERR_IO      no file at path;
 *   DS_ERR_FORMAT  not an HDF5 file or truncated, wrong `format`, a newer
 *                  `format_version`, a missing root attribute;
 *   DS_ERR_CONFIG  energy or dim differ from expect (both values named). */
ds_status ds_ckpt_open(MPI_Comm comm, const char *path, const ds_ckpt_expect *expect, ds_ckpt_file **out);
/* Closes a handle: a read one, or a write one without committing it (the
 * temporary file is removed). *f may be NULL; it is set to NULL. Returns
 * DS_ERR_IO when closing a read file failed. */
ds_status ds_ckpt_close(ds_ckpt_file **f);
/* The root attributes of an open checkpoint (read handles; borrowed). */
const ds_ckpt_data *ds_ckpt_header(const ds_ckpt_file *f);
/* Collective: every rank returns the status of the lowest rank whose rc is
 * not DS_OK, with its message (for modules that fail locally, say out of
 * memory, between collective calls). */
ds_status ds_ckpt_agree(ds_ckpt_file *f, ds_status rc);
/* The handle's communicator and its file name (for messages). Not collective. */
MPI_Comm ds_ckpt_comm(const ds_ckpt_file *f);
const char *ds_ckpt_path(const ds_ckpt_file *f);

/* Writing. Every dataset gets its one-sentence description. Errors:
 * DS_ERR_INVALID (a read handle, a size or integer value that differs across
 * ranks), DS_ERR_IO, DS_ERR_MPI. */
/* An (n) array, replicated. */
ds_status ds_ckpt_write_array(ds_ckpt_file *f, const char *name, ds_h5_type type, size_t n, const void *v,
                              const char *description);
/* A scalar, replicated (integers must agree across ranks). */
ds_status ds_ckpt_write_scalar(ds_ckpt_file *f, const char *name, ds_h5_type type, const void *v,
                               const char *description);
/* A (rows, ncols) f64 table, replicated, with a `columns` attribute naming
 * its columns (ncols 0 and rows 0 allowed). */
ds_status ds_ckpt_write_table(ds_ckpt_file *f, const char *name, int ncols, const char *const *columns, size_t rows,
                              const double *v, const char *description);
/* Sharded rows: this rank's n_local rows (0 allowed, then v may be NULL) of
 * width elements each (width 0: a 1-D dataset), placed after the rows of
 * the lower ranks. */
ds_status ds_ckpt_write_rows(ds_ckpt_file *f, const char *name, ds_h5_type type, int width, size_t n_local,
                             const void *v, const char *description);
/* An empty group (when absent). */
ds_status ds_ckpt_write_group(ds_ckpt_file *f, const char *name);
/* A numeric scalar attribute `attr` of the group or dataset obj (rank 0's value). */
ds_status ds_ckpt_write_attr(ds_ckpt_file *f, const char *obj, const char *attr, ds_h5_type type, const void *v);

/* Reading. Every rank gets the same data (but for ds_ckpt_read_rows, which
 * reads this rank's rows). Errors: DS_ERR_FORMAT for a missing or misshapen
 * dataset or attribute (named, with expected and found shapes) or a failed
 * read; DS_ERR_NOMEM; DS_ERR_INVALID for a write handle. */
/* 1 when name (a group or a dataset) exists, else 0. */
int ds_ckpt_has(ds_ckpt_file *f, const char *name);
/* The shape of dataset name: *ndims (0 scalar, 1 or 2) and dims. */
ds_status ds_ckpt_shape(ds_ckpt_file *f, const char *name, int *ndims, size_t dims[2]);
/* An (n) array into v. */
ds_status ds_ckpt_read_array(ds_ckpt_file *f, const char *name, ds_h5_type type, size_t n, void *v);
ds_status ds_ckpt_read_scalar(ds_ckpt_file *f, const char *name, ds_h5_type type, void *v);
/* A loaded table; free with ds_ckpt_table_free. */
typedef struct ds_ckpt_table {
    int ncols;
    char **columns; /* (ncols) */
    size_t rows;
    double *v;      /* (rows, ncols) row-major */
} ds_ckpt_table;
/* A table written by ds_ckpt_write_table; rows must equal want_rows unless
 * want_rows < 0. *t is zeroed first. */
ds_status ds_ckpt_read_table(ds_ckpt_file *f, const char *name, long want_rows, ds_ckpt_table *t);
/* The column of t named name, or -1. */
int ds_ckpt_table_column(const ds_ckpt_table *t, const char *name);
void ds_ckpt_table_free(ds_ckpt_table *t);
/* Rows [first, first + n) of an (N, width) dataset (width 0: (N)) into v;
 * ranks may ask for different rows (n 0 allowed). */
ds_status ds_ckpt_read_rows(ds_ckpt_file *f, const char *name, ds_h5_type type, int width, size_t first, size_t n,
                            void *v);
ds_status ds_ckpt_read_attr(ds_ckpt_file *f, const char *obj, const char *attr, ds_h5_type type, void *v);

/* Frees the strings of d and zeroes it. Not collective. */
void ds_ckpt_data_free(ds_ckpt_data *d);

/* Loads what a caller needs from an open checkpoint (ctx is the caller's). */
typedef ds_status (*ds_ckpt_load_fn)(ds_ckpt_file *f, void *ctx);

/* Finds the newest loadable checkpoint among path and "<path>.prev": each
 * that exists is opened (validated against expect, which may be NULL) and,
 * when load is not NULL, handed to load; the first for which both succeed
 * wins (load must leave the same state whatever an earlier failed candidate
 * left). Its path goes to found (found_len bytes) and, when out is not NULL,
 * its root attributes to *out. Each candidate that exists but does not load
 * is skipped and its error message appended to warning (warning_len bytes,
 * may be NULL; "" when nothing was skipped). Errors: DS_ERR_IO "no
 * checkpoint" when neither file exists; otherwise the error of path, with
 * the one of path.prev appended, when neither loads. */
ds_status ds_ckpt_find_load(MPI_Comm comm, const char *path, const ds_ckpt_expect *expect, ds_ckpt_load_fn load,
                            void *ctx, char *found, size_t found_len, ds_ckpt_data *out, char *warning,
                            size_t warning_len);
/* ds_ckpt_find_load without a load function: the newest checkpoint whose
 * root attributes read (what `diffsamp eval` needs to build its settings). */
ds_status ds_ckpt_find(MPI_Comm comm, const char *path, const ds_ckpt_expect *expect, char *found,
                       size_t found_len, ds_ckpt_data *out, char *warning, size_t warning_len);

/* ---- sample sets ---------------------------------------------------------- */

/* One column of a sample set: dataset /<name> with one row per sample. */
typedef struct ds_samples_column {
    const char *name;        /* 1 .. DS_NAME_MAX-1 letters, digits or '_' */
    ds_h5_type type;         /* element type (memory and file, see ds_h5_type) */
    int per_dim;             /* 1: (N, dim) rows; 0: (N) */
    const char *description; /* its description attribute */
} ds_samples_column;

/* The columns of every sample set, in this order: x (N, dim) R; log_reward,
 * log_pf, log_pb, log_weight (N) f64. A set with more columns (say a
 * conditional run's /condition, one DS_H5_I32 per row) passes this table
 * with its rows appended to ds_samples_open_columns. */
#define DS_SAMPLES_NCOLUMNS 5
extern const ds_samples_column ds_samples_columns[DS_SAMPLES_NCOLUMNS];

/* A sample set being written (opaque: it tracks how many rows are written). */
typedef struct ds_samples_writer ds_samples_writer;

/* Creates "<path>.tmp" for n_total samples of meta->dim over all ranks
 * (n_total the same on every rank). The caller appends every sample and then
 * closes, or aborts. Errors: DS_ERR_INVALID, DS_ERR_IO, DS_ERR_MPI. */
ds_status ds_samples_open(MPI_Comm comm, const char *path, const ds_h5_meta *meta, size_t n_total,
                          ds_samples_writer **out);
/* ds_samples_open with the columns cols[0 .. ncols-1] (the same table on
 * every rank; it is copied, its strings are borrowed until close). */
ds_status ds_samples_open_columns(MPI_Comm comm, const char *path, const ds_h5_meta *meta,
                                  const ds_samples_column *cols, int ncols, size_t n_total, ds_samples_writer **out);
/* Appends this rank's next n_local rows (0 allowed, then data may be NULL):
 * data[k] holds n_local rows of column k of the writer's table, in its type
 * (ds_real for DS_H5_REAL, double for DS_H5_F64, int32_t, int64_t, uint64_t).
 * Same chunking and errors as ds_samples_append. */
ds_status ds_samples_append_columns(ds_samples_writer *w, size_t n_local, const void *const *data);
/* Appends this rank's next n_local samples (0 allowed; then the arrays may be
 * NULL): x (n_local, dim), log_reward, log_pf, log_pb, log_weight (n_local)
 * each. The chunks of one call land in rank order after everything appended
 * before, so memory per call is bounded by the chunk size. DS_ERR_INVALID
 * when the total would exceed n_total (nothing is written). */
ds_status ds_samples_append(ds_samples_writer *w, size_t n_local, const ds_real *x, const double *log_reward,
                            const double *log_pf, const double *log_pb, const double *log_weight);
/* Writes the metrics (nmetrics name/value pairs, rank 0's are written) as
 * root attributes, closes and renames the file to its path. Frees *w and sets
 * it to NULL in every case; on error the temporary file is removed.
 * DS_ERR_INVALID when fewer than n_total samples were appended or a metric
 * name is empty or clashes with a reserved attribute. */
ds_status ds_samples_close(ds_samples_writer **w, const ds_h5_metric *metrics, int nmetrics);
/* Collective: closes without renaming and removes the temporary file (for
 * error paths of the caller); *w may be NULL and is set to NULL. */
void ds_samples_abort(ds_samples_writer **w);

/* The whole set in one call: n_local rows per rank (totals summed over
 * ranks), the same arrays and errors as open + append + close. */
ds_status ds_samples_write(MPI_Comm comm, const char *path, const ds_h5_meta *meta, size_t n_local,
                           const ds_real *x, const double *log_reward, const double *log_pf, const double *log_pb,
                           const double *log_weight, const ds_h5_metric *metrics, int nmetrics);

/* A sample set read back (every rank holds all of it). */
typedef struct ds_samples_set {
    ds_ckpt_data hdr;   /* root attributes: energy, dim, config, ... */
    size_t n;           /* n_samples */
    ds_real *x;         /* (n, hdr.dim) */
    double *log_reward, *log_pf, *log_pb, *log_weight; /* (n) each */
} ds_samples_set;
/* Reads the sample set at path (its completion record and checksums
 * verified first, every shape checked against n_samples and dim). Collective.
 * Errors: DS_ERR_IO (no file), DS_ERR_FORMAT (damaged or not a sample set:
 * the file and the dataset named), DS_ERR_NOMEM. *out is zeroed first and
 * freed on error. */
ds_status ds_samples_read(MPI_Comm comm, const char *path, ds_samples_set *out);
/* Frees the arrays and strings of s and zeroes it; NULL allowed. */
void ds_samples_set_free(ds_samples_set *s);

#endif
