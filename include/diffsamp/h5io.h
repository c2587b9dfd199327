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
 * Strings are variable-length UTF-8 (h5py reads them as str). Every dataset
 * has a one-sentence `description` attribute.
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
 *   /metrics             (rows, ncols) f64, attribute `columns` (ncols strings)
 *   /replay/<name>/x     (N, dim) R   the shards of every rank, rank order,
 *   /replay/<name>/log_r (N)      R   each shard oldest entry first
 *   /replay/<name>/counts (world_size) int64  rows per writer rank
 *   /replay/<name>       attribute `capacity` int64 (per-rank capacity)
 *
 * Sample set layout (N samples over all ranks, rank order):
 *   /x (N, dim) R; /log_reward, /log_pf, /log_pb, /log_weight (N) f64
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
/* Most replay buffers a checkpoint holds ("buffer", "buffer_ls"). */
#define DS_CKPT_MAX_BUFFERS 4

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

/* ---- checkpoints ---------------------------------------------------------- */

/* This rank's shard of one replay buffer (borrowed pointers). */
typedef struct ds_ckpt_buffer {
    const char *name;     /* group /replay/<name>: letters, digits, '_' */
    long capacity;        /* per-rank capacity, stored as an attribute */
    size_t n_local;       /* rows held by this rank (0 allowed) */
    const ds_real *x;     /* (n_local, dim), oldest first (ds_buffer_export) */
    const ds_real *log_r; /* (n_local) */
} ds_ckpt_buffer;

/* The state to save, filled by the caller with borrowed pointers. Everything
 * but the buffer shards must be identical on every rank; rank 0's copy is
 * written. */
typedef struct ds_ckpt {
    ds_h5_meta meta;
    size_t n_params;
    const ds_real *params, *m, *v; /* (n_params) each */
    int64_t adam_step;
    int64_t iteration;
    double ls_step;
    double exploration;
    uint64_t rng_seed;
    int metrics_ncols;                  /* >= 0 */
    const char *const *metrics_columns; /* (metrics_ncols) column names */
    size_t metrics_rows;                /* 0 allowed */
    const double *metrics;              /* (metrics_rows, metrics_ncols), row-major */
    int nbuffers;                       /* 0 .. DS_CKPT_MAX_BUFFERS, same names on every rank */
    ds_ckpt_buffer buffers[DS_CKPT_MAX_BUFFERS];
    /* Further run state as named numbers (the same names on every rank;
     * rank 0's values): /state/run, a (1, nextra) f64 table with a
     * `columns` attribute. 0 / NULL = none. */
    int nextra;
    const ds_h5_metric *extra;
} ds_ckpt;

/* What a reader requires of a checkpoint; a zero/NULL field is not checked. */
typedef struct ds_ckpt_expect {
    const char *energy;
    int dim;
    size_t n_params;
} ds_ckpt_expect;

/* A loaded replay buffer: this rank's even share of the saved rows. */
typedef struct ds_ckpt_data_buffer {
    char name[DS_NAME_MAX];
    long capacity;       /* as saved (the writer's per-rank capacity) */
    size_t n_total;      /* rows in the file */
    size_t first;        /* global index of this rank's first row */
    size_t n_local;      /* rows given to this rank */
    int writer_ranks;    /* length of the saved count table */
    int64_t *counts;     /* (writer_ranks) rows per writer rank */
    ds_real *x;          /* (n_local, dim) */
    ds_real *log_r;      /* (n_local) */
} ds_ckpt_data_buffer;

/* A loaded checkpoint; every array is owned and freed by ds_ckpt_data_free. */
typedef struct ds_ckpt_data {
    char energy[DS_NAME_MAX];
    int dim;
    int format_version;
    char *config_yaml;     /* the writer's effective config */
    char *code_version;
    char precision[16];    /* ds_real of the writer */
    size_t n_params;
    ds_real *params, *m, *v;
    int64_t adam_step;
    int64_t iteration;
    int world_size;        /* ranks of the writer */
    double ls_step;
    double exploration;
    uint64_t rng_seed;
    int metrics_ncols;
    char **metrics_columns; /* (metrics_ncols) */
    size_t metrics_rows;
    double *metrics;        /* (metrics_rows, metrics_ncols) */
    int nbuffers;           /* groups under /replay, in name order */
    ds_ckpt_data_buffer buffers[DS_CKPT_MAX_BUFFERS];
    int nextra;             /* /state/run (0 when the file has none) */
    char **extra_names;     /* (nextra) */
    double *extra_values;   /* (nextra) */
} ds_ckpt_data;

/* Writes c to path atomically (see the top of this file): "<path>.tmp" is
 * written and renamed to path, and an existing path becomes "<path>.prev".
 * Buffer shards are concatenated in rank order. Errors: DS_ERR_INVALID (bad
 * or inconsistent arguments across ranks), DS_ERR_IO (HDF5, fsync or rename
 * failed: the message names the file and the step; path and path.prev are
 * left as they were), DS_ERR_MPI. */
ds_status ds_ckpt_write(MPI_Comm comm, const char *path, const ds_ckpt *c);

/* Reads and validates the checkpoint at path into *out (zeroed first; free
 * with ds_ckpt_data_free, also after an error). Replicated arrays go to
 * every rank; each buffer goes back to its writer ranks shard by shard when
 * the reader has as many ranks as the writer had (so a resumed run is the
 * uninterrupted run), else it is split evenly over the reading ranks in
 * saved order: rank r of P gets rows [r*N/P, (r+1)*N/P). expect may be NULL. Errors (out is left empty):
 *   DS_ERR_IO      no file at path;
 *   DS_ERR_FORMAT  not an HDF5 file or truncated, wrong `format`, a newer
 *                  `format_version`, a missing or misshapen dataset or
 *                  attribute (named, with expected and found shapes), a read
 *                  failure (the dataset is named);
 *   DS_ERR_CONFIG  energy, dim or parameter count differ from expect (both
 *                  values named). */
ds_status ds_ckpt_read(MPI_Comm comm, const char *path, const ds_ckpt_expect *expect, ds_ckpt_data *out);

/* Frees every array of d (which may be partly filled) and zeroes it. Not
 * collective. */
void ds_ckpt_data_free(ds_ckpt_data *d);

/* Finds the newest loadable checkpoint among path and "<path>.prev": each
 * that exists is read in full with ds_ckpt_read (validated against expect,
 * which may be NULL) and the first that loads wins. Its path goes to found
 * (found_len bytes) and, when out is not NULL, its content to *out (else it
 * is discarded). Each candidate that exists but does not load is skipped and
 * its error message appended to warning (warning_len bytes, may be NULL; ""
 * when nothing was skipped). Errors: DS_ERR_IO "no checkpoint" when neither
 * file exists; otherwise the error of path, with the one of path.prev
 * appended, when neither loads. */
ds_status ds_ckpt_find(MPI_Comm comm, const char *path, const ds_ckpt_expect *expect, char *found,
                       size_t found_len, ds_ckpt_data *out, char *warning, size_t warning_len);

/* ---- sample sets ---------------------------------------------------------- */

/* A sample set being written (opaque: it tracks how many rows are written). */
typedef struct ds_samples_writer ds_samples_writer;

/* Creates "<path>.tmp" for n_total samples of meta->dim over all ranks
 * (n_total the same on every rank). The caller appends every sample and then
 * closes, or aborts. Errors: DS_ERR_INVALID, DS_ERR_IO, DS_ERR_MPI. */
ds_status ds_samples_open(MPI_Comm comm, const char *path, const ds_h5_meta *meta, size_t n_total,
                          ds_samples_writer **out);
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

#endif
