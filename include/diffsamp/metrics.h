/* metrics: the columns of the metrics of an evaluation as one table, and
 * everything made from it: the rows of a run's metrics history, metrics.csv,
 * the checkpoint's /metrics table (its `columns` attribute and its
 * description) and the one printer of evaluation results (progress lines,
 * the final report, `diffsamp eval`).
 *
 * Adding a column is one row of ds_metrics_columns (a name, a label, a
 * description, and a getter from ds_eval_result): metrics.csv, /metrics and
 * the reports follow. A checkpoint written before the column existed
 * resumes with NaN (an empty cell) in it, since /metrics is read by column
 * name. */
#ifndef DS_METRICS_H
#define DS_METRICS_H

#include "diffsamp/core.h"
#include "diffsamp/eval.h"
#include "diffsamp/h5io.h"

#include <stddef.h>
#include <stdio.h>

/* One column. */
typedef struct ds_metrics_column {
    const char *name;        /* metrics.csv header and /metrics column name */
    const char *label;       /* in printed reports; NULL = not printed */
    const char *description; /* one phrase (listed in the /metrics description) */
    int integer;             /* written without decimals */
    double (*get)(const ds_eval_result *r); /* NaN = no value: an empty cell, not printed */
} ds_metrics_column;

/* The columns of every run, in order (the interface of DESIGN.md 4). */
extern const ds_metrics_column ds_metrics_columns[];
extern const int ds_metrics_ncolumns;

/* A history of rows of one table (caller-owned; the table is borrowed and
 * must outlive it). */
typedef struct ds_metrics_history {
    const ds_metrics_column *cols;
    int ncols;
    size_t rows, cap;
    double *v; /* (rows, ncols) row-major */
} ds_metrics_history;

void ds_metrics_history_init(ds_metrics_history *h, const ds_metrics_column *cols, int ncols);
void ds_metrics_history_free(ds_metrics_history *h);
/* Appends the row of r (grown as needed; DS_ERR_NOMEM). */
ds_status ds_metrics_history_add(ds_metrics_history *h, const ds_eval_result *r);
/* Row i (borrowed). */
const double *ds_metrics_history_row(const ds_metrics_history *h, size_t i);

/* metrics.csv: the header, and one row (NaN: an empty cell); flushed. */
void ds_metrics_csv_header(FILE *f, const ds_metrics_column *cols, int ncols);
void ds_metrics_csv_row(FILE *f, const ds_metrics_column *cols, int ncols, const double *row);

/* Writes the history as /metrics, (rows, ncols) f64 with a `columns`
 * attribute and a description listing every column's; collective. */
ds_status ds_metrics_history_write(ds_ckpt_file *f, const ds_metrics_history *h);
/* Replaces the rows of h by those of /metrics, matched by column name (NaN
 * for a column the file lacks; columns h does not know are ignored);
 * collective. */
ds_status ds_metrics_history_read(ds_ckpt_file *f, ds_metrics_history *h);

/* The one printer of evaluation results: every labelled column of
 * ds_metrics_columns that has a value, plus log Z (true) when known.
 * DS_METRICS_LINE: one progress line "  eval @IT: name value ...";
 * DS_METRICS_REPORT: one "label   value" line each. */
typedef enum ds_metrics_style { DS_METRICS_LINE = 0, DS_METRICS_REPORT = 1 } ds_metrics_style;
void ds_metrics_print(FILE *f, const ds_eval_result *r, ds_metrics_style style);

#endif
