#define _POSIX_C_SOURCE 200809L
/* Tests of the metrics table: metrics.csv and the checkpoint's /metrics are
 * made from it, so a column added to the table (here a test-only one) is
 * written and read back with no other code; /metrics is read by column name
 * (a file without the column gives NaN, an unknown column is ignored); the
 * one printer shows what has a value. */
#include "diffsamp/h5io.h"
#include "diffsamp/metrics.h"
#include "testutil.h"

#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static double get_twice_elbo(const ds_eval_result *r) { return 2 * r->elbo; }

/* The run's table plus one test-only column (what a conditional run adds). */
static ds_metrics_column extended[64];
static int n_extended;

static void make_extended(void)
{
    ck_assert_int_lt(ds_metrics_ncolumns, 63);
    memcpy(extended, ds_metrics_columns, sizeof *extended * (size_t)ds_metrics_ncolumns);
    extended[ds_metrics_ncolumns] =
        (ds_metrics_column){"test_twice_elbo", "twice the ELBO", "twice the ELBO (a test-only column)", 0,
                            get_twice_elbo};
    n_extended = ds_metrics_ncolumns + 1;
}

static ds_eval_result result(long it)
{
    ds_eval_result r;
    memset(&r, 0, sizeof r);
    r.iteration = it;
    r.loss = 0.5 * it;
    r.elbo = -1.25 - it;
    r.log_z_is = -0.5;
    r.log_z_learned = NAN;
    r.log_z_rw = NAN; /* conditional targets only */
    r.ess = 0.25;
    r.mean_ll = NAN;
    r.has_log_z = it == 20;
    r.log_z_true = 0;
    r.delta_log_z = 1.25 + it;
    r.delta_log_z_is = 0.5;
    r.modes = it == 20 ? 7 : -1;
    r.modes_total = 25;
    r.ls_acceptance = NAN;
    r.ls_step = NAN;
    r.buffer_size = 3 * it;
    r.seconds = 1.5;
    ds_modes_result_clear(&r.mode_weights); /* the per-mode columns do not apply: empty cells */
    return r;
}

static int column_of(const char *name)
{
    for (int c = 0; c < ds_metrics_ncolumns; c++)
        if (strcmp(ds_metrics_columns[c].name, name) == 0) return c;
    return -1;
}

START_TEST(design_columns_are_in_the_table)
{
    /* DESIGN.md 4: metrics.csv has at least these columns. */
    const char *need[] = {"iteration", "loss", "elbo", "log_z_is", "ess", "seconds", "delta_log_z", "delta_log_z_is"};
    for (size_t i = 0; i < sizeof need / sizeof *need; i++) ck_assert_msg(column_of(need[i]) >= 0, "%s", need[i]);
    for (int c = 0; c < ds_metrics_ncolumns; c++) {
        ck_assert(ds_metrics_columns[c].description && *ds_metrics_columns[c].description);
        ck_assert(ds_metrics_columns[c].get != NULL);
    }
}
END_TEST

START_TEST(extra_column_reaches_metrics_csv)
{
    make_extended();
    ds_metrics_history h;
    ds_metrics_history_init(&h, extended, n_extended);
    for (long it = 10; it <= 200; it += 10) ck_assert_int_eq(ds_metrics_history_add(&h, &(ds_eval_result){0}), DS_OK);
    h.rows = 0; /* grown past the first capacity; start over */
    ds_eval_result a = result(10), b = result(20);
    ck_assert_int_eq(ds_metrics_history_add(&h, &a), DS_OK);
    ck_assert_int_eq(ds_metrics_history_add(&h, &b), DS_OK);
    char path[256];
    snprintf(path, sizeof path, "/tmp/ds_test_metrics_%d.csv", (int)getpid());
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ds_metrics_csv_header(f, h.cols, h.ncols);
    for (size_t i = 0; i < h.rows; i++) ds_metrics_csv_row(f, h.cols, h.ncols, ds_metrics_history_row(&h, i));
    fclose(f);
    f = fopen(path, "r");
    char line[3][4096];
    for (int i = 0; i < 3; i++) ck_assert_ptr_nonnull(fgets(line[i], sizeof line[i], f));
    fclose(f);
    remove(path);
    ck_assert_msg(strncmp(line[0], "iteration,loss,elbo,", 20) == 0, "%s", line[0]);
    ck_assert_msg(strstr(line[0], ",seconds,energy_values_train,") != NULL, "%s", line[0]);
    ck_assert_msg(strstr(line[0], ",modes_tv,test_twice_elbo\n") != NULL, "%s", line[0]);
    /* row of iteration 10: integer iteration, NaN cells empty, delta empty
     * without a known log Z, the extra column last. */
    ck_assert_msg(strcmp(line[1], "10,5,-11.25,-0.5,,,0.25,,,,,,,30,0,1.5,0,0,0,0,0,0,0,0,0,,,,,,,-22.5\n") == 0, "%s",
                  line[1]);
    ck_assert_msg(strcmp(line[2], "20,10,-21.25,-0.5,,,0.25,,21.25,0.5,7,,,60,0,1.5,0,0,0,0,0,0,0,0,0,,,,,,,-42.5\n") == 0,
                  "%s", line[2]);
    ds_metrics_history_free(&h);
}
END_TEST

static void write_history(const char *path, const ds_metrics_history *h)
{
    ds_h5_meta meta = {"25gmm", 2, "a: 1\n"};
    ds_ckpt_file *f = NULL;
    ck_assert_int_eq(ds_ckpt_create(MPI_COMM_WORLD, path, &meta, &f), DS_OK);
    ck_assert_int_eq(ds_metrics_history_write(f, h), DS_OK);
    ck_assert_int_eq(ds_ckpt_commit(&f), DS_OK);
}

static void read_history(const char *path, ds_metrics_history *h)
{
    ds_ckpt_file *f = NULL;
    ck_assert_msg(ds_ckpt_open(MPI_COMM_WORLD, path, NULL, &f) == DS_OK, "%s", ds_error_message());
    ck_assert_msg(ds_metrics_history_read(f, h) == DS_OK, "%s", ds_error_message());
    ck_assert_int_eq(ds_ckpt_close(&f), DS_OK);
}

START_TEST(extra_column_round_trips_through_the_checkpoint)
{
    make_extended();
    char path[256];
    snprintf(path, sizeof path, "/tmp/ds_test_metrics_%d.h5", (int)getpid());
    ds_metrics_history ext, std_, back;
    ds_metrics_history_init(&ext, extended, n_extended);
    ds_metrics_history_init(&std_, ds_metrics_columns, ds_metrics_ncolumns);
    for (long it = 10; it <= 30; it += 10) {
        ds_eval_result r = result(it);
        ck_assert_int_eq(ds_metrics_history_add(&ext, &r), DS_OK);
        ck_assert_int_eq(ds_metrics_history_add(&std_, &r), DS_OK);
    }
    const int e = n_extended - 1, elbo = column_of("elbo");
    /* With the column: written, described, and read back by name. */
    write_history(path, &ext);
    double *cols = ds_test_read(path, "/metrics", NULL, NULL, NULL);
    ck_assert_ptr_nonnull(cols);
    free(cols);
    ds_metrics_history_init(&back, extended, n_extended);
    read_history(path, &back);
    ck_assert_uint_eq(back.rows, 3);
    for (size_t i = 0; i < 3; i++) {
        const double *row = ds_metrics_history_row(&back, i), *want = ds_metrics_history_row(&ext, i);
        ck_assert(row[e] == 2 * row[elbo] && row[e] == want[e]);
        for (int c = 0; c < n_extended; c++) ck_assert(row[c] == want[c] || (isnan(row[c]) && isnan(want[c])));
    }
    ds_metrics_history_free(&back);
    /* The run's table reads the same file, ignoring the column it lacks. */
    ds_metrics_history_init(&back, ds_metrics_columns, ds_metrics_ncolumns);
    read_history(path, &back);
    ck_assert(back.rows == 3 && ds_metrics_history_row(&back, 2)[elbo] == -31.25);
    ds_metrics_history_free(&back);
    /* A file written before the column existed: NaN in it. */
    write_history(path, &std_);
    ds_metrics_history_init(&back, extended, n_extended);
    read_history(path, &back);
    ck_assert(back.rows == 3 && isnan(ds_metrics_history_row(&back, 1)[e]));
    ck_assert(ds_metrics_history_row(&back, 1)[elbo] == -21.25);
    ds_metrics_history_free(&back);
    remove(path);
    char prev[300]; /* the second write kept the first as PATH.prev (the checkpoint writer's rotation) */
    snprintf(prev, sizeof prev, "%s.prev", path);
    remove(prev);
    ds_metrics_history_free(&ext);
    ds_metrics_history_free(&std_);
}
END_TEST

/* The description attribute of /metrics (a variable-length string). */
static char *read_description(const char *path)
{
    static char buf[8192];
    buf[0] = '\0';
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d = H5Dopen2(f, "/metrics", H5P_DEFAULT);
    hid_t a = H5Aopen(d, "description", H5P_DEFAULT), mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5T_CSET_UTF8);
    char *s = NULL;
    if (H5Aread(a, mt, &s) >= 0 && s) snprintf(buf, sizeof buf, "%s", s);
    if (s) H5free_memory(s);
    H5Tclose(mt);
    H5Aclose(a);
    H5Dclose(d);
    H5Fclose(f);
    return buf;
}

START_TEST(metrics_description_lists_the_table)
{
    make_extended();
    char path[256];
    snprintf(path, sizeof path, "/tmp/ds_test_metrics_desc_%d.h5", (int)getpid());
    ds_metrics_history ext;
    ds_metrics_history_init(&ext, extended, n_extended);
    write_history(path, &ext);
    const char *desc = read_description(path);
    for (int c = 0; c < n_extended; c++) {
        char want[512];
        snprintf(want, sizeof want, "%s: %s", extended[c].name, extended[c].description);
        ck_assert_msg(strstr(desc, want) != NULL, "the /metrics description lacks '%s': %s", want, desc);
    }
    remove(path);
    ds_metrics_history_free(&ext);
}
END_TEST

static char *print_to_string(const ds_eval_result *r, ds_metrics_style style)
{
    static char buf[8192];
    FILE *f = tmpfile();
    ds_metrics_print(f, r, style);
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

START_TEST(one_printer_shows_what_has_a_value)
{
    ds_eval_result r = result(20);
    const char *rep = print_to_string(&r, DS_METRICS_REPORT);
    ck_assert_msg(strstr(rep, "iteration            20\n") == rep, "%s", rep);
    ck_assert_msg(strstr(rep, "\nELBO                 -21.250000\n"), "%s", rep);
    ck_assert_msg(strstr(rep, "\nlog Z (true)         0.000000\n"), "%s", rep);
    ck_assert_msg(strstr(rep, "\nDelta log Z          21.250000\n"), "%s", rep);
    ck_assert_msg(strstr(rep, "\nmodes with samples   7 of 25\n"), "%s", rep);
    ck_assert_msg(!strstr(rep, "learned") && !strstr(rep, "mean log-likelihood") && !strstr(rep, "loss"), "%s", rep);
    r = result(10); /* log Z unknown, no modes */
    rep = print_to_string(&r, DS_METRICS_REPORT);
    ck_assert_msg(!strstr(rep, "Delta") && !strstr(rep, "log Z (true)") && !strstr(rep, "modes"), "%s", rep);
    const char *line = print_to_string(&r, DS_METRICS_LINE);
    ck_assert_msg(strncmp(line, "  eval @10:  elbo -11.25  log_z_is -0.5  ess 0.25", 48) == 0, "%s", line);
    ck_assert_msg(strchr(line, '\n') == line + strlen(line) - 1, "one line: %s", line);
    r.log_z_rw = -52.75; /* a conditional target's cross-image number */
    rep = print_to_string(&r, DS_METRICS_REPORT);
    ck_assert_msg(strstr(rep, "\ncross-image RW       -52.750000\n"), "%s", rep);
    line = print_to_string(&r, DS_METRICS_LINE);
    ck_assert_msg(strstr(line, "  log_z_is -0.5  log_z_rw_cross_image -52.75  ess 0.25"), "%s", line);
}
END_TEST

int main(int argc, char **argv)
{
    ds_mpi_io_defaults();
    MPI_Init(&argc, &argv);
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, design_columns_are_in_the_table);
    tcase_add_test(tc, extra_column_reaches_metrics_csv);
    tcase_add_test(tc, extra_column_round_trips_through_the_checkpoint);
    tcase_add_test(tc, metrics_description_lists_the_table);
    tcase_add_test(tc, one_printer_shows_what_has_a_value);
    suite_add_tcase(s, tc);
    int rc = ds_test_run(s);
    MPI_Finalize();
    return rc;
}
