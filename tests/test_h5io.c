/* MPI test of h5io (run with 2 ranks): checkpoints written and read back on
 * the same, fewer and more ranks with uneven and empty buffer shards, every
 * refusal (energy, dim, parameter count, missing or misshapen dataset,
 * truncated file, newer format, wrong format), the atomic write with .prev
 * fallback, streamed sample sets, and a sample set with a column added to
 * the table (/condition).
 *
 * Checks never skip a collective call: a failed check counts and goes on, and
 * the count is reduced over the ranks at the end (every rank returns nonzero
 * on failure). */
#define _POSIX_C_SOURCE 200809L
#include "diffsamp/config.h"
#include "diffsamp/h5io.h"
#include "diffsamp/restart.h"
#include "testutil.h"
#include "../src/h5io_impl.h" /* ds_h5_reseal, ds_crc32c */

#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int world_rank = 0, world_size = 1;
static int failures = 0;
static char dir[1024];

static void fail_at(int line, const char *cond, const char *fmt, ...)
{
    failures++;
    fprintf(stderr, "[%d] test_h5io.c:%d: check failed: %s: ", world_rank, line, cond);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}
#define EXPECT(cond, ...)                                                           \
    do {                                                                            \
        if (!(cond)) fail_at(__LINE__, #cond, __VA_ARGS__);                         \
    } while (0)
#define EXPECT_OK(expr)                                                             \
    do {                                                                            \
        ds_status rc_ = (expr);                                                     \
        if (rc_ != DS_OK) fail_at(__LINE__, #expr, "status %d: %s", (int)rc_, ds_error_message()); \
    } while (0)
/* expr fails with code and a message containing every needle. */
#define EXPECT_FAIL(expr, code, ...)                                                \
    do {                                                                            \
        ds_status rc_ = (expr);                                                     \
        const char *needles_[] = {__VA_ARGS__, NULL};                               \
        if (rc_ != (code)) fail_at(__LINE__, #expr, "status %d, expected %d: %s", (int)rc_, (int)(code), ds_error_message()); \
        for (int k_ = 0; needles_[k_]; k_++)                                        \
            if (!strstr(ds_error_message(), needles_[k_]))                          \
                fail_at(__LINE__, #expr, "message lacks '%s': %s", needles_[k_], ds_error_message()); \
    } while (0)

static const char *file_in_dir(const char *name)
{
    static char buf[8][1280];
    static int next = 0;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

/* ---- deterministic content --------------------------------------------------- */

enum { DIM = 3, NPARAMS = 37, NCOLS = 4, NROWS = 3 };
static double param_value(int i) { return 0.25 * i - 3.0; }  /* exact in float too */
static double m_value(int i) { return 0.5 * i; }
static double v_value(int i) { return 0.125 * i + 1.0; }
/* Row g of buffer b: values that name the row, exact in float. */
static double x_value(int b, long g, int j) { return 1000.0 * b + 10.0 * (double)g + j + 0.5; }
static double logr_value(int b, long g) { return -(double)g - 0.25 - 100.0 * b; }
static double metric_value(int r, int c) { return r * 10.0 + c + 0.125; }
static const char *metric_cols[NCOLS] = {"iteration", "loss", "elbo", "log_z_is"};

/* The state a checkpoint of this test holds: an arena with Adam, two replay
 * buffers (this rank's shards), the /state scalars and a metrics table. */
typedef struct fixture {
    ds_arena a;
    ds_adam adam;
    ds_buffer *buf[2];
    double metrics[NROWS * NCOLS];
    int64_t iteration;
    int ncols;     /* metrics columns written (NCOLS or 0) */
    size_t nrows;  /* metrics rows written */
    int nbuffers;  /* buffers written */
    char *yaml;
} fixture;

static const char *const buffer_names[2] = {"buffer", "buffer_ls"};

static void arena_make(ds_arena *a, int n)
{
    ds_arena_init(a);
    ds_arena_add(a, "w", 1, n, 0, NULL);
    ds_arena_alloc(a);
}

/* A checkpoint where this rank holds counts[b] rows of buffer b starting at
 * global row first[b]. */
static void fixture_make(fixture *f, const long counts[2], const long first[2], int64_t iteration)
{
    memset(f, 0, sizeof *f);
    arena_make(&f->a, NPARAMS);
    for (int i = 0; i < NPARAMS; i++) {
        f->a.params[i] = (ds_real)param_value(i);
        f->a.m[i] = (ds_real)m_value(i);
        f->a.v[i] = (ds_real)v_value(i);
    }
    ds_adam_init(&f->adam, 1e-3, 1e-1);
    f->adam.step = 1234567890123L;
    for (int r = 0; r < NROWS; r++)
        for (int c = 0; c < NCOLS; c++) f->metrics[r * NCOLS + c] = metric_value(r, c);
    f->iteration = iteration;
    f->ncols = NCOLS;
    f->nrows = NROWS;
    f->nbuffers = 2;
    ds_settings s;
    ds_settings_defaults(&s);
    s.seed = 4242;
    s.batch_size = 77;
    if (ds_settings_to_yaml(&s, &f->yaml) != DS_OK) f->yaml = NULL;
    for (int b = 0; b < 2; b++) {
        ds_buffer_create((size_t)(5000 + b), DIM, DS_PRIO_RANK, 1.0, 0.01, &f->buf[b]);
        for (long i = 0; i < counts[b]; i++) {
            ds_real x[DIM], lr = (ds_real)logr_value(b, first[b] + i);
            for (int j = 0; j < DIM; j++) x[j] = (ds_real)x_value(b, first[b] + i, j);
            ds_buffer_add(f->buf[b], 1, x, &lr);
        }
    }
}

static void fixture_free(fixture *f)
{
    free(f->yaml);
    ds_arena_free(&f->a);
    for (int b = 0; b < 2; b++) ds_buffer_destroy(&f->buf[b]);
}

/* What the trainer writes, module by module, on one handle. */
static ds_status fixture_write(MPI_Comm comm, const char *path, const fixture *fx)
{
    ds_h5_meta meta = {"25gmm", DIM, fx->yaml};
    int size;
    MPI_Comm_size(comm, &size);
    int32_t ws = size;
    double ls_step = 0.0125, expl = 0.5;
    uint64_t seed = 0xfedcba9876543210ULL;
    ds_ckpt_file *f = NULL;
    ds_status rc = ds_ckpt_create(comm, path, &meta, &f);
    if (rc == DS_OK) rc = ds_arena_write(f, &fx->a, &fx->adam);
    if (rc == DS_OK) rc = ds_ckpt_write_scalar(f, "/state/iteration", DS_H5_I64, &fx->iteration, "Iterations.");
    if (rc == DS_OK) rc = ds_ckpt_write_scalar(f, "/state/world_size", DS_H5_I32, &ws, "Ranks.");
    if (rc == DS_OK) rc = ds_ckpt_write_scalar(f, "/state/ls_step", DS_H5_F64, &ls_step, "Step.");
    if (rc == DS_OK) rc = ds_ckpt_write_scalar(f, "/state/exploration", DS_H5_F64, &expl, "Exploration.");
    if (rc == DS_OK) rc = ds_ckpt_write_scalar(f, "/state/rng_seed", DS_H5_U64, &seed, "Seed.");
    if (rc == DS_OK)
        rc = ds_ckpt_write_table(f, "/metrics", fx->ncols, metric_cols, fx->nrows, fx->nrows ? fx->metrics : NULL,
                                 "Metrics.");
    if (rc == DS_OK) rc = ds_ckpt_write_group(f, "/replay");
    for (int b = 0; b < fx->nbuffers && rc == DS_OK; b++) rc = ds_buffer_write(f, buffer_names[b], fx->buf[b]);
    if (rc == DS_OK) rc = ds_ckpt_commit(&f);
    else ds_ckpt_close(&f);
    return rc;
}

/* Everything a reader of the fixture restores. */
typedef struct loaded {
    ds_arena a;
    ds_adam adam;
    int64_t iteration;
    int32_t world_size;
    double ls_step, exploration;
    uint64_t rng_seed;
    ds_ckpt_table metrics;
    int nbuffers;
    ds_buffer *buf[2];
    ds_buffer_share share[2];
    int64_t counts[2][8];
    int64_t capacity[2];
    ds_ckpt_data hdr;
    int n_params; /* of the arena to read into */
} loaded;

static void loaded_init(loaded *l, int n_params)
{
    memset(l, 0, sizeof *l);
    l->n_params = n_params;
    arena_make(&l->a, n_params);
    ds_adam_init(&l->adam, 1e-3, 1e-1);
    for (int b = 0; b < 2; b++) ds_buffer_create(100, DIM, DS_PRIO_RANK, 1.0, 0.01, &l->buf[b]);
}

static void loaded_free(loaded *l)
{
    ds_arena_free(&l->a);
    ds_ckpt_table_free(&l->metrics);
    ds_ckpt_data_free(&l->hdr);
    for (int b = 0; b < 2; b++) ds_buffer_destroy(&l->buf[b]);
}

/* A ds_ckpt_load_fn: reads every part into a loaded (ctx). */
static ds_status load_all(ds_ckpt_file *f, void *ctx)
{
    loaded *l = ctx;
    const ds_ckpt_data *h = ds_ckpt_header(f);
    ds_ckpt_data_free(&l->hdr);
    l->hdr = *h;
    l->hdr.config_yaml = h->config_yaml ? strdup(h->config_yaml) : NULL;
    l->hdr.code_version = h->code_version ? strdup(h->code_version) : NULL;
    DS_TRY(ds_arena_read(f, &l->a, &l->adam));
    DS_TRY(ds_ckpt_read_scalar(f, "/state/iteration", DS_H5_I64, &l->iteration));
    DS_TRY(ds_ckpt_read_scalar(f, "/state/world_size", DS_H5_I32, &l->world_size));
    DS_TRY(ds_ckpt_read_scalar(f, "/state/ls_step", DS_H5_F64, &l->ls_step));
    DS_TRY(ds_ckpt_read_scalar(f, "/state/exploration", DS_H5_F64, &l->exploration));
    DS_TRY(ds_ckpt_read_scalar(f, "/state/rng_seed", DS_H5_U64, &l->rng_seed));
    ds_ckpt_table_free(&l->metrics);
    DS_TRY(ds_ckpt_read_table(f, "/metrics", -1, &l->metrics));
    l->nbuffers = 0;
    for (int b = 0; b < 2; b++) {
        char g[128], c[160];
        snprintf(g, sizeof g, "/replay/%s", buffer_names[b]);
        snprintf(c, sizeof c, "%s/counts", g);
        if (!ds_ckpt_has(f, g)) continue;
        l->nbuffers++;
        DS_TRY(ds_buffer_read(f, buffer_names[b], l->buf[b], &l->share[b]));
        DS_TRY(ds_ckpt_read_attr(f, g, "capacity", DS_H5_I64, &l->capacity[b]));
        if (l->share[b].writer_ranks <= 8)
            DS_TRY(ds_ckpt_read_array(f, c, DS_H5_I64, (size_t)l->share[b].writer_ranks, l->counts[b]));
    }
    return DS_OK;
}

/* ds_ckpt_open + load_all + ds_ckpt_close. */
static ds_status read_all(MPI_Comm comm, const char *path, const ds_ckpt_expect *e, loaded *l)
{
    ds_ckpt_file *f = NULL;
    DS_TRY(ds_ckpt_open(comm, path, e, &f));
    ds_status rc = load_all(f, l);
    ds_status crc = ds_ckpt_close(&f);
    return rc != DS_OK ? rc : crc;
}

/* Checks everything read back; totals[b] rows expected in buffer b,
 * counts[b] the writer's count table. */
static void check_data(MPI_Comm comm, const loaded *d, int64_t iteration, int writer_ranks, const long totals[2],
                       const long *const counts[2])
{
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    EXPECT(strcmp(d->hdr.energy, "25gmm") == 0, "energy '%s'", d->hdr.energy);
    EXPECT(d->hdr.dim == DIM, "dim %d", d->hdr.dim);
    EXPECT(d->hdr.format_version == DS_H5_FORMAT_VERSION, "format_version %d", d->hdr.format_version);
    EXPECT(strcmp(d->hdr.precision, DS_REAL_NAME) == 0, "precision '%s'", d->hdr.precision);
    EXPECT(d->hdr.code_version && strncmp(d->hdr.code_version, "diffsamp ", 9) == 0, "code_version '%s'",
           d->hdr.code_version ? d->hdr.code_version : "(null)");
    int bad = 0;
    for (int i = 0; i < NPARAMS; i++)
        bad += d->a.params[i] != (ds_real)param_value(i) || d->a.m[i] != (ds_real)m_value(i) ||
               d->a.v[i] != (ds_real)v_value(i);
    EXPECT(bad == 0, "%d parameter/moment mismatches", bad);
    EXPECT(d->adam.step == 1234567890123L, "adam step %ld", d->adam.step);
    EXPECT(d->iteration == iteration, "iteration %lld", (long long)d->iteration);
    EXPECT(d->world_size == writer_ranks, "world_size %d", (int)d->world_size);
    EXPECT(d->ls_step == 0.0125 && d->exploration == 0.5, "ls_step %g exploration %g", d->ls_step, d->exploration);
    EXPECT(d->rng_seed == 0xfedcba9876543210ULL, "rng_seed %llx", (unsigned long long)d->rng_seed);
    EXPECT(d->metrics.ncols == NCOLS && d->metrics.rows == NROWS, "metrics (%zu, %d)", d->metrics.rows,
           d->metrics.ncols);
    for (int c = 0; c < d->metrics.ncols && c < NCOLS; c++)
        EXPECT(strcmp(d->metrics.columns[c], metric_cols[c]) == 0, "column %d '%s'", c, d->metrics.columns[c]);
    bad = 0;
    for (int i = 0; i < NROWS * NCOLS && d->metrics.rows == NROWS; i++)
        bad += d->metrics.v[i] != metric_value(i / NCOLS, i % NCOLS);
    EXPECT(bad == 0, "%d metric mismatches", bad);
    EXPECT(ds_ckpt_table_column(&d->metrics, "elbo") == 2 && ds_ckpt_table_column(&d->metrics, "nope") == -1,
           "table column lookup");

    /* The config round-trips through the YAML loader. */
    ds_settings s;
    ds_settings_defaults(&s);
    EXPECT(d->hdr.config_yaml && ds_settings_load_string(&s, d->hdr.config_yaml, "checkpoint config") == DS_OK,
           "config does not load: %s", ds_error_message());
    EXPECT(s.seed == 4242 && s.batch_size == 77, "config seed %llu batch %d", (unsigned long long)s.seed,
           s.batch_size);

    EXPECT(d->nbuffers == 2, "nbuffers %d", d->nbuffers);
    for (int b = 0; b < 2 && b < d->nbuffers; b++) {
        const ds_buffer_share *B = &d->share[b];
        const char *name = buffer_names[b];
        EXPECT(d->capacity[b] == 5000 + b, "capacity %lld", (long long)d->capacity[b]);
        EXPECT(B->n_total == (size_t)totals[b], "buffer %s n_total %zu, expected %ld", name, B->n_total, totals[b]);
        EXPECT(B->writer_ranks == writer_ranks, "writer_ranks %d", B->writer_ranks);
        for (int r = 0; r < B->writer_ranks && r < writer_ranks; r++)
            EXPECT(d->counts[b][r] == counts[b][r], "buffer %s count[%d] = %lld, expected %ld", name, r,
                   (long long)d->counts[b][r], counts[b][r]);
        /* Read on as many ranks as wrote: each rank gets its own shard back
         * (exact resume); else the even split. Either way the union of the
         * shares is every row in order. */
        size_t lo, hi;
        if (writer_ranks == size) {
            lo = 0;
            for (int r = 0; r < rank; r++) lo += (size_t)counts[b][r];
            hi = lo + (size_t)counts[b][rank];
        } else {
            lo = (size_t)totals[b] * (size_t)rank / (size_t)size;
            hi = (size_t)totals[b] * (size_t)(rank + 1) / (size_t)size;
        }
        EXPECT(B->first == lo && B->n_local == hi - lo, "buffer %s share [%zu, +%zu), expected [%zu, %zu)", name,
               B->first, B->n_local, lo, hi);
        EXPECT(ds_buffer_size(d->buf[b]) == B->n_local, "buffer %s holds %zu rows, share %zu", name,
               ds_buffer_size(d->buf[b]), B->n_local);
        bad = 0;
        for (size_t i = 0; i < B->n_local && i < ds_buffer_size(d->buf[b]); i++) {
            long g = (long)(B->first + i);
            ds_real x[DIM], lr;
            ds_buffer_get(d->buf[b], i, x, &lr);
            for (int j = 0; j < DIM; j++) bad += x[j] != (ds_real)x_value(b, g, j);
            bad += lr != (ds_real)logr_value(b, g);
        }
        EXPECT(bad == 0, "buffer %s: %d row mismatches", name, bad);
        unsigned long long mine = B->n_local, sum = 0, before = 0;
        MPI_Allreduce(&mine, &sum, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, comm);
        MPI_Exscan(&mine, &before, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, comm);
        if (rank == 0) before = 0;
        EXPECT(sum == (unsigned long long)totals[b] && before == B->first, "buffer %s: union %llu rows, first %zu",
               name, sum, B->first);
    }
}

/* ---- serial file surgery (rank 0) ------------------------------------------ */

static int copy_bytes(const char *from, const char *to, double fraction)
{
    FILE *in = fopen(from, "rb");
    if (!in) return -1;
    fseek(in, 0, SEEK_END);
    long n = ftell(in);
    fseek(in, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, in);
    fclose(in);
    FILE *out = fopen(to, "wb");
    if (!out) { free(buf); return -1; }
    size_t keep = (size_t)((double)got * fraction);
    size_t put = fwrite(buf, 1, keep, out);
    fclose(out);
    free(buf);
    return put == keep ? 0 : -1;
}

/* Copies from -> to and applies one change with serial HDF5. */
typedef enum { DELETE_V, ITERATION_1D, NEWER_VERSION, FLOAT_PARAMS } surgery;
static int operate(const char *from, const char *to, surgery op)
{
    if (copy_bytes(from, to, 1.0) != 0) return -1;
    hid_t f = H5Fopen(to, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) return -1;
    herr_t rc = 0;
    if (op == DELETE_V) {
        rc = H5Ldelete(f, "/optimizer/v", H5P_DEFAULT);
    } else if (op == ITERATION_1D) {
        hsize_t n = 3;
        int64_t vals[3] = {1, 2, 3};
        rc = H5Ldelete(f, "/state/iteration", H5P_DEFAULT);
        hid_t s = H5Screate_simple(1, &n, NULL);
        hid_t d = H5Dcreate2(f, "/state/iteration", H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (rc >= 0) rc = H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, vals);
        H5Dclose(d);
        H5Sclose(s);
    } else if (op == NEWER_VERSION) {
        int v = DS_H5_FORMAT_VERSION + 1;
        hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
        rc = H5Awrite(a, H5T_NATIVE_INT, &v);
        H5Aclose(a);
    } else if (op == FLOAT_PARAMS) {
        /* What a float run writes: the double build must read it. */
        float vals[NPARAMS];
        for (int i = 0; i < NPARAMS; i++) vals[i] = (float)param_value(i);
        hsize_t n = NPARAMS;
        rc = H5Ldelete(f, "/model/params", H5P_DEFAULT);
        hid_t s = H5Screate_simple(1, &n, NULL);
        hid_t d = H5Dcreate2(f, "/model/params", H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (rc >= 0) rc = H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, vals);
        H5Dclose(d);
        H5Sclose(s);
    }
    if (H5Fclose(f) < 0) rc = -1;
    /* the surgery is the change under test: make the completion record and
     * the checksums agree with it again */
    if (rc >= 0 && ds_h5_reseal(to) != DS_OK) rc = -1;
    return rc < 0 ? -1 : 0;
}

static herr_t check_description(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    (void)info;
    int *missing = data;
    hid_t d;
    H5E_BEGIN_TRY { d = H5Dopen2(g, name, H5P_DEFAULT); } H5E_END_TRY;
    if (d >= 0) {
        if (H5Aexists(d, "description") <= 0) {
            fprintf(stderr, "dataset %s has no description\n", name);
            (*missing)++;
        }
        H5Dclose(d);
    }
    return 0;
}

/* Every dataset has a description and every root attribute is present. */
static void check_file_attrs(const char *path, const char *format)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    EXPECT(f >= 0, "cannot open %s", path);
    if (f < 0) return;
    int missing = 0;
    H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC, check_description, &missing);
    EXPECT(missing == 0, "%d datasets without description in %s", missing, path);
    static const char *attrs[] = {"format", "format_version", "config", "code_version", "library_versions",
                                  "energy", "dim", "precision"};
    for (size_t i = 0; i < sizeof attrs / sizeof *attrs; i++)
        EXPECT(H5Aexists(f, attrs[i]) > 0, "%s lacks root attribute %s", path, attrs[i]);
    hid_t a = H5Aopen(f, "format", H5P_DEFAULT), t = H5Aget_type(a);
    char *s = NULL;
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5T_CSET_UTF8);
    EXPECT(H5Tis_variable_str(t) > 0 && H5Aread(a, mt, &s) >= 0 && s && strcmp(s, format) == 0,
           "format attribute of %s is '%s'", path, s ? s : "(unreadable)");
    if (s) H5free_memory(s);
    H5Tclose(mt);
    H5Tclose(t);
    H5Aclose(a);
    a = H5Aopen(f, "library_versions", H5P_DEFAULT);
    t = H5Aget_type(a);
    mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5T_CSET_UTF8);
    s = NULL;
    EXPECT(H5Aread(a, mt, &s) >= 0 && s && strstr(s, "HDF5 1.") && strchr(s, '\n'), "library_versions '%s'",
           s ? s : "(unreadable)");
    if (s) H5free_memory(s);
    H5Tclose(mt);
    H5Tclose(t);
    H5Aclose(a);
    H5Fclose(f);
}

/* ---- the tests ------------------------------------------------------------- */

static const long two_counts0[2] = {5, 3}, two_counts1[2] = {0, 2};
static const long *const two_counts[2] = {two_counts0, two_counts1};
static const long two_totals[2] = {8, 2};

/* Writes the 2-rank checkpoint (buffer: 5 + 3 rows, buffer_ls: 0 + 2). */
static void write_two(const char *path, int64_t iteration)
{
    long counts[2] = {two_counts0[world_rank], two_counts1[world_rank]};
    long first[2] = {world_rank ? two_counts0[0] : 0, world_rank ? two_counts1[0] : 0};
    fixture f;
    fixture_make(&f, counts, first, iteration);
    EXPECT_OK(fixture_write(MPI_COMM_WORLD, path, &f));
    fixture_free(&f);
}

static void test_same_ranks_and_one_rank(void)
{
    const char *path = file_in_dir("two.h5");
    write_two(path, 42);
    if (world_rank == 0) check_file_attrs(path, DS_H5_FORMAT_CHECKPOINT);
    EXPECT(access(file_in_dir("two.h5.tmp"), F_OK) != 0, "temporary file left behind");

    ds_ckpt_expect e = {"25gmm", DIM, NULL};
    loaded d;
    loaded_init(&d, NPARAMS);
    EXPECT_OK(read_all(MPI_COMM_WORLD, path, &e, &d));
    check_data(MPI_COMM_WORLD, &d, 42, 2, two_totals, two_counts);
    loaded_free(&d);

    /* 2 -> 1: rank 0 alone gets every row. */
    MPI_Comm sub;
    MPI_Comm_split(MPI_COMM_WORLD, world_rank == 0 ? 0 : MPI_UNDEFINED, 0, &sub);
    if (sub != MPI_COMM_NULL) {
        loaded_init(&d, NPARAMS);
        EXPECT_OK(read_all(sub, path, NULL, &d));
        check_data(sub, &d, 42, 2, two_totals, two_counts);
        EXPECT(d.share[0].n_local == 8 && d.share[1].n_local == 2, "1 rank holds %zu and %zu rows",
               d.share[0].n_local, d.share[1].n_local);
        loaded_free(&d);
        MPI_Comm_free(&sub);
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

static void test_one_rank_to_two(void)
{
    const char *path = file_in_dir("one.h5");
    MPI_Comm sub;
    MPI_Comm_split(MPI_COMM_WORLD, world_rank == 0 ? 0 : MPI_UNDEFINED, 0, &sub);
    static const long c0[1] = {7}, c1[1] = {0};
    static const long *const counts[2] = {c0, c1};
    static const long totals[2] = {7, 0};
    if (sub != MPI_COMM_NULL) {
        long n[2] = {7, 0}, first[2] = {0, 0};
        fixture f;
        fixture_make(&f, n, first, 9);
        EXPECT_OK(fixture_write(sub, path, &f));
        fixture_free(&f);
        MPI_Comm_free(&sub);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    loaded d;
    loaded_init(&d, NPARAMS);
    EXPECT_OK(read_all(MPI_COMM_WORLD, path, NULL, &d));
    check_data(MPI_COMM_WORLD, &d, 9, 1, totals, counts);
    loaded_free(&d);
}

/* No metrics yet (rows 0, and no columns at all) and no buffers. */
static void test_empty_tables(void)
{
    const char *path = file_in_dir("empty.h5");
    long n[2] = {0, 0}, first[2] = {0, 0};
    for (int ncols = NCOLS; ncols >= 0; ncols -= NCOLS) {
        fixture f;
        fixture_make(&f, n, first, 0);
        f.nrows = 0;
        f.ncols = ncols;
        f.nbuffers = 0;
        EXPECT_OK(fixture_write(MPI_COMM_WORLD, path, &f));
        fixture_free(&f);
        loaded d;
        loaded_init(&d, NPARAMS);
        EXPECT_OK(read_all(MPI_COMM_WORLD, path, NULL, &d));
        EXPECT(d.metrics.rows == 0 && d.metrics.ncols == ncols && d.nbuffers == 0,
               "empty tables: metrics (%zu, %d), %d buffers", d.metrics.rows, d.metrics.ncols, d.nbuffers);
        for (int c = 0; c < d.metrics.ncols; c++)
            EXPECT(strcmp(d.metrics.columns[c], metric_cols[c]) == 0, "column %d '%s'", c, d.metrics.columns[c]);
        loaded_free(&d);
    }
}

static void test_refusals(void)
{
    const char *path = file_in_dir("two.h5");
    loaded d;
    loaded_init(&d, NPARAMS);
    char want[64], found[64];

    ds_ckpt_expect e = {"manywell", DIM, NULL};
    EXPECT_FAIL(read_all(MPI_COMM_WORLD, path, &e, &d), DS_ERR_CONFIG, "'25gmm'", "'manywell'", path);
    e = (ds_ckpt_expect){"25gmm", 32, NULL};
    EXPECT_FAIL(read_all(MPI_COMM_WORLD, path, &e, &d), DS_ERR_CONFIG, "dimension 3", "dimension 32");
    /* Another model shape: the arena reader refuses, naming both shapes. */
    loaded big;
    loaded_init(&big, NPARAMS + 5);
    snprintf(want, sizeof want, "(%d)", NPARAMS + 5);
    snprintf(found, sizeof found, "(%d)", NPARAMS);
    e = (ds_ckpt_expect){"25gmm", DIM, NULL};
    EXPECT_FAIL(read_all(MPI_COMM_WORLD, path, &e, &big), DS_ERR_CONFIG, "/model/params", want, found);
    loaded_free(&big);

    const char *miss = file_in_dir("missing.h5"), *shape = file_in_dir("shape.h5"), *trunc = file_in_dir("trunc.h5");
    const char *newer = file_in_dir("newer.h5"), *flt = file_in_dir("float.h5"), *junk = file_in_dir("junk.h5");
    int ok = 1;
    if (world_rank == 0) {
        ok = operate(path, miss, DELETE_V) == 0 && operate(path, shape, ITERATION_1D) == 0 &&
             copy_bytes(path, trunc, 0.5) == 0 && operate(path, newer, NEWER_VERSION) == 0 &&
             operate(path, flt, FLOAT_PARAMS) == 0;
        FILE *j = fopen(junk, "w");
        if (j) {
            fputs("not an HDF5 file\n", j);
            fclose(j);
        }
    }
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
    EXPECT(ok, "could not prepare the damaged copies");
    EXPECT_FAIL(read_all(MPI_COMM_WORLD, miss, &e, &d), DS_ERR_FORMAT, "/optimizer/v", "missing", miss);
    EXPECT_FAIL(read_all(MPI_COMM_WORLD, shape, &e, &d), DS_ERR_FORMAT, "/state/iteration", "shape (3)",
                "expected ()");
    EXPECT_FAIL(read_all(MPI_COMM_WORLD, trunc, &e, &d), DS_ERR_FORMAT, trunc, "no completion record",
                "DS_ALLOW_UNVERIFIED");
    EXPECT_FAIL(read_all(MPI_COMM_WORLD, junk, &e, &d), DS_ERR_FORMAT, "no completion record");
    /* asked to read unverified files, HDF5 refuses them itself */
    setenv("DS_ALLOW_UNVERIFIED", "1", 1);
    EXPECT_FAIL(read_all(MPI_COMM_WORLD, trunc, &e, &d), DS_ERR_FORMAT, "cannot open checkpoint", trunc,
                "not an HDF5 file or truncated");
    EXPECT_FAIL(read_all(MPI_COMM_WORLD, junk, &e, &d), DS_ERR_FORMAT, "not an HDF5 file or truncated");
    unsetenv("DS_ALLOW_UNVERIFIED");
    EXPECT_FAIL(read_all(MPI_COMM_WORLD, newer, &e, &d), DS_ERR_FORMAT, "format_version 2", "newer");
    EXPECT_FAIL(read_all(MPI_COMM_WORLD, file_in_dir("absent.h5"), &e, &d), DS_ERR_IO, "no such file");
    /* A missing replay count table is named. */
    ds_ckpt_file *f = NULL;
    EXPECT_OK(ds_ckpt_open(MPI_COMM_WORLD, path, &e, &f));
    EXPECT(f && ds_ckpt_has(f, "/replay/buffer") && !ds_ckpt_has(f, "/replay/nope") && !ds_ckpt_has(f, "/no/such"),
           "ds_ckpt_has");
    if (f) EXPECT_FAIL(ds_buffer_read(f, "nope", d.buf[0], NULL), DS_ERR_FORMAT, "/replay/nope");
    /* A read handle refuses writes. */
    if (f) EXPECT_FAIL(ds_ckpt_write_group(f, "/x"), DS_ERR_INVALID, "not open for writing");
    EXPECT_OK(ds_ckpt_close(&f));
    EXPECT(f == NULL, "close left the handle");

    /* float32 parameters (a float run's file) load converted. */
    loaded_free(&d);
    loaded_init(&d, NPARAMS);
    EXPECT_OK(read_all(MPI_COMM_WORLD, flt, &e, &d));
    check_data(MPI_COMM_WORLD, &d, 42, 2, two_totals, two_counts);
    loaded_free(&d);

    /* A sample set is not a checkpoint. */
    ds_h5_meta meta = {"25gmm", DIM, "a: 1\n"};
    const char *samples = file_in_dir("notckpt.h5");
    EXPECT_OK(ds_samples_write(MPI_COMM_WORLD, samples, &meta, 0, NULL, NULL, NULL, NULL, NULL, NULL, 0));
    EXPECT_FAIL(ds_ckpt_open(MPI_COMM_WORLD, samples, &e, &f), DS_ERR_FORMAT, "not a diffsamp checkpoint",
                "diffsamp-samples");
    EXPECT(f == NULL, "a refused open left a handle");

    /* Bad arguments on one rank fail on every rank, and leave no file. */
    fixture fx;
    long n[2] = {1, 1}, first[2] = {world_rank, world_rank};
    fixture_make(&fx, n, first, 1);
    const char *bad = file_in_dir("bad.h5");
    EXPECT_OK(ds_ckpt_create(MPI_COMM_WORLD, bad, &meta, &f));
    if (f) EXPECT_FAIL(ds_buffer_write(f, world_rank == 1 ? "bad/name" : "buffer_ls", fx.buf[1]), DS_ERR_INVALID,
                       "bad/name");
    if (f) EXPECT_FAIL(ds_ckpt_write_array(f, "/model/params", DS_H5_REAL, world_rank == 1 ? NPARAMS - 1 : NPARAMS,
                                           fx.a.params, "Parameters."), DS_ERR_INVALID, "differs across ranks");
    int64_t it = world_rank;
    if (f) EXPECT_FAIL(ds_ckpt_write_scalar(f, "/state/iteration", DS_H5_I64, &it, "Iteration."), DS_ERR_INVALID,
                       "/state/iteration", "differs across ranks");
    EXPECT_OK(ds_ckpt_close(&f));
    MPI_Barrier(MPI_COMM_WORLD);
    EXPECT(access(bad, F_OK) != 0 && access(file_in_dir("bad.h5.tmp"), F_OK) != 0, "a refused write left a file");
    fixture_free(&fx);
    MPI_Barrier(MPI_COMM_WORLD);
}

/* The iteration of the newest loadable checkpoint, through ds_ckpt_find_load. */
static ds_status find_all(const char *path, const ds_ckpt_expect *e, char *found, size_t found_len, loaded *l,
                          char *warning, size_t warning_len)
{
    ds_ckpt_data hdr;
    ds_status rc = ds_ckpt_find_load(MPI_COMM_WORLD, path, e, load_all, l, found, found_len, &hdr, warning,
                                     warning_len);
    if (rc == DS_OK) {
        EXPECT(strcmp(hdr.energy, "25gmm") == 0 && hdr.config_yaml, "header of the found file");
        ds_ckpt_data_free(&hdr);
    }
    return rc;
}

static void test_atomic_and_find(void)
{
    const char *path = file_in_dir("run.h5"), *prev = file_in_dir("run.h5.prev");
    char found[1280], warning[8192];
    loaded d;
    loaded_init(&d, NPARAMS);
    ds_ckpt_expect e = {"25gmm", DIM, NULL};

    EXPECT_FAIL(ds_ckpt_find(MPI_COMM_WORLD, path, &e, found, sizeof found, NULL, warning, sizeof warning),
                DS_ERR_IO, "no checkpoint");
    write_two(path, 100);
    EXPECT(access(prev, F_OK) != 0, ".prev exists after the first write");
    write_two(path, 200);
    EXPECT(access(path, F_OK) == 0 && access(prev, F_OK) == 0, "path and .prev after two writes");
    EXPECT(access(file_in_dir("run.h5.tmp"), F_OK) != 0, "temporary file left behind");
    EXPECT_OK(read_all(MPI_COMM_WORLD, path, &e, &d));
    EXPECT(d.iteration == 200, "newest holds iteration %lld", (long long)d.iteration);
    EXPECT_OK(read_all(MPI_COMM_WORLD, prev, &e, &d));
    EXPECT(d.iteration == 100, ".prev holds iteration %lld", (long long)d.iteration);
    check_data(MPI_COMM_WORLD, &d, 100, 2, two_totals, two_counts);

    EXPECT_OK(find_all(path, &e, found, sizeof found, &d, warning, sizeof warning));
    EXPECT(strcmp(found, path) == 0 && warning[0] == '\0' && d.iteration == 200, "found %s (it %lld), warning '%s'",
           found, (long long)d.iteration, warning);

    /* A torn newest file: find falls back to .prev and says why. */
    if (world_rank == 0) {
        copy_bytes(path, file_in_dir("whole.h5"), 1.0);
        copy_bytes(file_in_dir("whole.h5"), path, 0.5);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    EXPECT_OK(find_all(path, &e, found, sizeof found, &d, warning, sizeof warning));
    EXPECT(strcmp(found, prev) == 0 && d.iteration == 100, "found %s (it %lld)", found, (long long)d.iteration);
    EXPECT(strstr(warning, path) && strstr(warning, "truncated"), "warning '%s'", warning);
    EXPECT_OK(ds_ckpt_find(MPI_COMM_WORLD, path, NULL, found, sizeof found, NULL, NULL, 0));
    EXPECT(strcmp(found, prev) == 0, "found %s without data", found);

    /* A newest file whose root attributes read but whose body does not: the
     * header-only find takes it, a full load falls back to .prev. */
    if (world_rank == 0) operate(file_in_dir("whole.h5"), path, DELETE_V);
    MPI_Barrier(MPI_COMM_WORLD);
    EXPECT_OK(ds_ckpt_find(MPI_COMM_WORLD, path, &e, found, sizeof found, NULL, warning, sizeof warning));
    EXPECT(strcmp(found, path) == 0, "header-only find: %s", found);
    EXPECT_OK(find_all(path, &e, found, sizeof found, &d, warning, sizeof warning));
    EXPECT(strcmp(found, prev) == 0 && d.iteration == 100 && strstr(warning, "/optimizer/v"),
           "found %s (it %lld), warning '%s'", found, (long long)d.iteration, warning);

    /* A crash between the two renames leaves only .prev. */
    if (world_rank == 0) remove(path);
    MPI_Barrier(MPI_COMM_WORLD);
    EXPECT_OK(ds_ckpt_find(MPI_COMM_WORLD, path, &e, found, sizeof found, NULL, warning, sizeof warning));
    EXPECT(strcmp(found, prev) == 0 && warning[0] == '\0', "found %s, warning '%s'", found, warning);

    /* Both damaged: refused, naming both. */
    if (world_rank == 0) {
        copy_bytes(file_in_dir("whole.h5"), path, 0.3);
        copy_bytes(file_in_dir("whole.h5"), prev, 0.6);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    EXPECT_FAIL(find_all(path, &e, found, sizeof found, &d, warning, sizeof warning), DS_ERR_FORMAT,
                "no loadable checkpoint", path, prev);

    /* The next write after a good one replaces a damaged path: write twice. */
    write_two(path, 300);
    write_two(path, 400);
    EXPECT_OK(find_all(path, &e, found, sizeof found, &d, warning, sizeof warning));
    EXPECT(strcmp(found, path) == 0 && d.iteration == 400, "found %s (it %lld)", found, (long long)d.iteration);
    loaded_free(&d);
}

/* Streamed sample set: 3 appends of uneven chunks per rank. */
static double sample_value(long g, int j) { return 0.5 * (double)g + 0.25 * j - 7.0; }

static void test_samples(void)
{
    enum { NCHUNK = 3 };
    static const long chunks[2][NCHUNK] = {{3, 0, 4}, {2, 5, 1}};
    long total = 0;
    for (int r = 0; r < 2; r++)
        for (int k = 0; k < NCHUNK; k++) total += chunks[r][k];
    const char *path = file_in_dir("samples.h5");
    ds_h5_meta meta = {"funnel", DIM, "energy:\n  name: funnel\n"};
    ds_samples_writer *w = NULL;
    EXPECT_OK(ds_samples_open(MPI_COMM_WORLD, path, &meta, (size_t)total, &w));
    long done = 0;
    for (int k = 0; k < NCHUNK && w; k++) {
        long n = chunks[world_rank][k], first = done + (world_rank ? chunks[0][k] : 0);
        ds_real x[8 * DIM];
        double lr[8], pf[8], pb[8], lw[8];
        for (long i = 0; i < n; i++) {
            long g = first + i;
            for (int j = 0; j < DIM; j++) x[i * DIM + j] = (ds_real)sample_value(g, j);
            lr[i] = -(double)g;
            pf[i] = 0.1 * (double)g;
            pb[i] = -0.2 * (double)g;
            lw[i] = lr[i] + pb[i] - pf[i];
        }
        EXPECT_OK(ds_samples_append(w, (size_t)n, n ? x : NULL, lr, pf, pb, lw));
        done += chunks[0][k] + chunks[1][k];
    }
    /* Too many rows: refused on every rank, nothing written. */
    double one = 1.0;
    ds_real x1[DIM] = {0};
    EXPECT_FAIL(ds_samples_append(w, 1, x1, &one, &one, &one, &one), DS_ERR_INVALID, "exceed");
    ds_h5_metric metrics[3] = {{"elbo", -1.5}, {"log_z_is", -0.25}, {"ess", 0.75}};
    EXPECT_OK(ds_samples_close(&w, metrics, 3));
    EXPECT(w == NULL, "close left the writer");
    EXPECT(access(file_in_dir("samples.h5.tmp"), F_OK) != 0, "temporary file left behind");

    if (world_rank == 0) {
        check_file_attrs(path, DS_H5_FORMAT_SAMPLES);
        size_t n = 0, dims[4];
        int nd = 0;
        double *x = ds_test_read(path, "/x", &n, dims, &nd);
        EXPECT(x && nd == 2 && dims[0] == (size_t)total && dims[1] == DIM, "/x shape");
        int bad = 0;
        for (long g = 0; x && g < total; g++)
            for (int j = 0; j < DIM; j++) bad += x[g * DIM + j] != sample_value(g, j);
        EXPECT(bad == 0, "/x: %d mismatches", bad);
        free(x);
        static const char *names[4] = {"/log_reward", "/log_pf", "/log_pb", "/log_weight"};
        for (int k = 0; k < 4; k++) {
            double *v = ds_test_read(path, names[k], &n, dims, &nd);
            EXPECT(v && nd == 1 && n == (size_t)total, "%s shape", names[k]);
            bad = 0;
            for (long g = 0; v && g < total; g++) {
                double want = k == 0 ? -(double)g : k == 1 ? 0.1 * g : k == 2 ? -0.2 * g : -(double)g - 0.2 * g - 0.1 * g;
                bad += v[g] != want;
            }
            EXPECT(bad == 0, "%s: %d mismatches", names[k], bad);
            free(v);
        }
        double a = 0;
        EXPECT(ds_test_read_attr(path, "/", "elbo", &a) == 0 && a == -1.5, "elbo %g", a);
        EXPECT(ds_test_read_attr(path, "/", "ess", &a) == 0 && a == 0.75, "ess %g", a);
        EXPECT(ds_test_read_attr(path, "/", "dim", &a) == 0 && a == DIM, "dim %g", a);
        EXPECT(ds_test_read_attr(path, "/", "n_samples", &a) == 0 && a == (double)total, "n_samples %g", a);
    }

    /* Closing short of n_total or with a reserved metric name is refused
     * and leaves no file. */
    const char *shortp = file_in_dir("short.h5");
    EXPECT_OK(ds_samples_open(MPI_COMM_WORLD, shortp, &meta, 4, &w));
    double v2[2] = {1, 2};
    ds_real x2[2 * DIM] = {0};
    if (w) EXPECT_OK(ds_samples_append(w, 1, x2, v2, v2, v2, v2));
    /* A bad argument on one rank fails the call on every rank. */
    if (w) EXPECT_FAIL(ds_samples_append(w, 1, world_rank == 1 ? NULL : x2, v2, v2, v2, v2), DS_ERR_INVALID,
                       "x is NULL");
    if (w) EXPECT_FAIL(ds_samples_close(&w, NULL, 0), DS_ERR_INVALID, "2 of the 4");
    EXPECT(w == NULL, "failed close left the writer");
    EXPECT_OK(ds_samples_open(MPI_COMM_WORLD, shortp, &meta, 2, &w));
    if (w) EXPECT_OK(ds_samples_append(w, 1, x2, v2, v2, v2, v2));
    ds_h5_metric reserved = {"energy", 1.0};
    if (w) EXPECT_FAIL(ds_samples_close(&w, &reserved, 1), DS_ERR_INVALID, "'energy'");
    EXPECT_OK(ds_samples_open(MPI_COMM_WORLD, shortp, &meta, 2, &w));
    ds_samples_abort(&w);
    MPI_Barrier(MPI_COMM_WORLD);
    EXPECT(access(shortp, F_OK) != 0 && access(file_in_dir("short.h5.tmp"), F_OK) != 0,
           "a refused or aborted sample set left a file");

    /* One-shot write, uneven: 4 rows on rank 0, 1 on rank 1. */
    const char *oneshot = file_in_dir("oneshot.h5");
    long n = world_rank == 0 ? 4 : 1, first = world_rank == 0 ? 0 : 4;
    ds_real x[4 * DIM];
    double lr[4];
    for (long i = 0; i < n; i++) {
        for (int j = 0; j < DIM; j++) x[i * DIM + j] = (ds_real)sample_value(first + i, j);
        lr[i] = (double)(first + i);
    }
    ds_h5_metric m1 = {"delta_log_z", 0.125};
    EXPECT_OK(ds_samples_write(MPI_COMM_WORLD, oneshot, &meta, (size_t)n, x, lr, lr, lr, lr, &m1, 1));
    if (world_rank == 0) {
        size_t cnt = 0;
        double *v = ds_test_read(oneshot, "/log_weight", &cnt, NULL, NULL);
        EXPECT(v && cnt == 5 && v[0] == 0 && v[4] == 4, "one-shot log_weight");
        free(v);
        double a = 0;
        EXPECT(ds_test_read_attr(oneshot, "/", "delta_log_z", &a) == 0 && a == 0.125, "delta_log_z %g", a);
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

/* A sample set with one more column from the table (a conditional run's
 * /condition, one int per row), written and read back like the others. */
static void test_samples_extra_column(void)
{
    ds_samples_column cols[DS_SAMPLES_NCOLUMNS + 1];
    memcpy(cols, ds_samples_columns, sizeof ds_samples_columns);
    cols[DS_SAMPLES_NCOLUMNS] = (ds_samples_column){"condition", DS_H5_I32, 0, "Index of the condition of each sample."};
    const char *path = file_in_dir("conditional.h5");
    ds_h5_meta meta = {"25gmm", DIM, "a: 1\n"};
    /* rank 0: rows 0..2, rank 1: rows 3..4 */
    const long n = world_rank == 0 ? 3 : 2, first = world_rank == 0 ? 0 : 3;
    ds_real x[3 * DIM];
    double lr[3], pf[3], pb[3], lw[3];
    int32_t cond[3];
    for (long i = 0; i < n; i++) {
        for (int j = 0; j < DIM; j++) x[i * DIM + j] = (ds_real)sample_value(first + i, j);
        lr[i] = pf[i] = pb[i] = lw[i] = (double)(first + i);
        cond[i] = (int32_t)(100 + first + i);
    }
    const void *data[DS_SAMPLES_NCOLUMNS + 1] = {x, lr, pf, pb, lw, cond};
    ds_samples_writer *w = NULL;
    EXPECT_OK(ds_samples_open_columns(MPI_COMM_WORLD, path, &meta, cols, DS_SAMPLES_NCOLUMNS + 1, 5, &w));
    /* The five-array append refuses a writer with other columns. */
    if (w) EXPECT_FAIL(ds_samples_append(w, (size_t)n, x, lr, pf, pb, lw), DS_ERR_INVALID, "ds_samples_append_columns");
    if (w) EXPECT_OK(ds_samples_append_columns(w, (size_t)n, data));
    if (w) EXPECT_OK(ds_samples_close(&w, NULL, 0));
    if (world_rank == 0) {
        check_file_attrs(path, DS_H5_FORMAT_SAMPLES);
        size_t cnt = 0, dims[4];
        int nd = 0;
        double *c = ds_test_read(path, "/condition", &cnt, dims, &nd);
        int bad = !c || nd != 1 || cnt != 5;
        for (size_t i = 0; c && i < cnt && i < 5; i++) bad += c[i] != 100.0 + (double)i;
        EXPECT(bad == 0, "/condition read back wrong (%zu rows)", cnt);
        free(c);
        double *v = ds_test_read(path, "/log_reward", &cnt, NULL, NULL);
        EXPECT(v && cnt == 5 && v[4] == 4.0, "/log_reward beside /condition");
        free(v);
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d = H5Dopen2(f, "/condition", H5P_DEFAULT);
        hid_t t = H5Dget_type(d);
        EXPECT(H5Tget_class(t) == H5T_INTEGER && H5Tget_size(t) == 4, "/condition is not int32");
        H5Tclose(t);
        H5Dclose(d);
        H5Fclose(f);
    }
    /* A table naming one column twice is refused on every rank. */
    cols[DS_SAMPLES_NCOLUMNS].name = "log_pf";
    EXPECT_FAIL(ds_samples_open_columns(MPI_COMM_WORLD, file_in_dir("twice.h5"), &meta, cols, DS_SAMPLES_NCOLUMNS + 1,
                                        5, &w),
                DS_ERR_INVALID, "'log_pf' appears twice");
    EXPECT(w == NULL, "a refused open left a writer");
    MPI_Barrier(MPI_COMM_WORLD);
}

/* ---- integrity: checksums and the completion record --------------------------- */

/* CRC-32C one bit at a time (the definition, to check the fast one). */
static uint32_t crc_bitwise(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
}

static void test_crc(void)
{
    EXPECT(ds_crc32c(0, "123456789", 9) == 0xE3069283u, "CRC-32C check value 0x%08x", ds_crc32c(0, "123456789", 9));
    EXPECT(ds_crc32c(0, "", 0) == 0, "CRC of nothing");
    unsigned char buf[1000];
    uint64_t z = 88172645463325252ull;
    for (size_t i = 0; i < sizeof buf; i++) {
        z ^= z << 13, z ^= z >> 7, z ^= z << 17;
        buf[i] = (unsigned char)z;
    }
    int bad = 0;
    for (size_t n = 0; n <= sizeof buf; n += 37) {
        uint32_t whole = ds_crc32c(0, buf, n);
        if (whole != crc_bitwise(buf, n)) bad++;
        for (size_t cut = 0; cut <= n; cut += 11) {
            uint32_t a = ds_crc32c(0, buf, cut), b = ds_crc32c(0, buf + cut, n - cut);
            if (ds_crc32c_combine(a, b, n - cut) != whole || ds_crc32c(a, buf + cut, n - cut) != whole) bad++;
        }
    }
    EXPECT(bad == 0, "%d CRCs of pieces differ from the CRC of the whole", bad);
    /* rank order: rank r's bytes follow rank r-1's, whatever their sizes */
    size_t cut = world_rank == 0 ? 333 : 1000;
    const unsigned char *mine = world_rank == 0 ? buf : buf + 333;
    size_t n = world_rank == 0 ? 333 : 1000 - 333;
    uint32_t all = 0;
    EXPECT_OK(ds_h5_crc_rank_order(MPI_COMM_WORLD, ds_crc32c(0, mine, n), n, &all));
    EXPECT(all == ds_crc32c(0, buf, 1000), "rank-order CRC 0x%08x (cut at %zu)", all, cut);
}

static uint32_t crc_attr(const char *path, const char *name)
{
    uint32_t v = 0;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d = f >= 0 ? H5Dopen2(f, name, H5P_DEFAULT) : -1;
    hid_t a = d >= 0 ? H5Aopen(d, "crc32c", H5P_DEFAULT) : -1;
    if (a < 0 || H5Aread(a, H5T_NATIVE_UINT32, &v) < 0) v = 0xdeadbeefu;
    if (a >= 0) H5Aclose(a);
    if (d >= 0) H5Dclose(d);
    if (f >= 0) H5Fclose(f);
    return v;
}

/* The offset of name's data in the file at path (HDF5 on one rank). */
static long data_offset(const char *path, const char *name)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d = f >= 0 ? H5Dopen2(f, name, H5P_DEFAULT) : -1;
    haddr_t off = d >= 0 ? H5Dget_offset(d) : HADDR_UNDEF;
    if (d >= 0) H5Dclose(d);
    if (f >= 0) H5Fclose(f);
    return off == HADDR_UNDEF ? -1 : (long)off;
}

static int flip_byte(const char *from, const char *to, long at)
{
    if (copy_bytes(from, to, 1.0) != 0 || at < 0) return -1;
    FILE *f = fopen(to, "r+b");
    if (!f) return -1;
    int c = fseek(f, at, SEEK_SET) == 0 ? fgetc(f) : EOF;
    int ok = c != EOF && fseek(f, at, SEEK_SET) == 0 && fputc(c ^ 0x04, f) != EOF;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* The same global rows written by 1 and by 2 ranks (split anywhere) carry
 * the same checksum, that of the bytes in rank order. */
static void test_checksums_any_ranks(void)
{
    const char *p2 = file_in_dir("crc2.h5"), *p1 = file_in_dir("crc1.h5");
    enum { N = 11, W = 3 };
    ds_real rows[N * W];
    for (int i = 0; i < N * W; i++) rows[i] = (ds_real)(0.5 * i - 4.0);
    ds_h5_meta meta = {"25gmm", DIM, "a: 1\n"};
    const size_t split = 4;
    ds_ckpt_file *f = NULL;
    EXPECT_OK(ds_ckpt_create(MPI_COMM_WORLD, p2, &meta, &f));
    EXPECT_OK(ds_ckpt_write_rows(f, "/rows", DS_H5_REAL, W, world_rank == 0 ? split : N - split,
                                 world_rank == 0 ? rows : rows + split * W, "rows split over two ranks"));
    EXPECT_OK(ds_ckpt_write_array(f, "/array", DS_H5_REAL, N, rows, "an array"));
    EXPECT_OK(ds_ckpt_commit(&f));
    MPI_Comm sub;
    MPI_Comm_split(MPI_COMM_WORLD, world_rank == 0 ? 0 : MPI_UNDEFINED, 0, &sub);
    if (sub != MPI_COMM_NULL) {
        EXPECT_OK(ds_ckpt_create(sub, p1, &meta, &f));
        EXPECT_OK(ds_ckpt_write_rows(f, "/rows", DS_H5_REAL, W, N, rows, "rows of one rank"));
        EXPECT_OK(ds_ckpt_commit(&f));
        MPI_Comm_free(&sub);
        uint32_t want = ds_crc32c(0, rows, sizeof rows), want_a = ds_crc32c(0, rows, sizeof(ds_real) * N);
        EXPECT(crc_attr(p1, "/rows") == want && crc_attr(p2, "/rows") == want && crc_attr(p2, "/array") == want_a,
               "crc32c of /rows: np 1 0x%08x, np 2 0x%08x, expected 0x%08x; /array 0x%08x, expected 0x%08x",
               crc_attr(p1, "/rows"), crc_attr(p2, "/rows"), want, crc_attr(p2, "/array"), want_a);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    /* sample sets: appended in chunks of different sizes per rank */
    const char *s1 = file_in_dir("crc_s1.h5"), *s2 = file_in_dir("crc_s2.h5");
    double lw[N];
    for (int i = 0; i < N; i++) lw[i] = 0.25 * i;
    for (int np = 1; np <= 2; np++) {
        ds_samples_writer *w = NULL;
        MPI_Comm c = MPI_COMM_WORLD;
        if (np == 1) MPI_Comm_split(MPI_COMM_WORLD, world_rank == 0 ? 0 : MPI_UNDEFINED, 0, &c);
        if (c == MPI_COMM_NULL) continue;
        EXPECT_OK(ds_samples_open(c, np == 1 ? s1 : s2, &meta, N, &w));
        int r = 0;
        MPI_Comm_rank(c, &r);
        /* np 1: rows 0..10 in chunks of 5 and 6; np 2: chunk 1 = rows 0..2 on rank 0, 3..6 on rank 1,
         * chunk 2 = rows 7..8 and 9..10 */
        size_t a[2][2] = {{5, 6}, {0, 0}}, b[2][2] = {{3, 2}, {4, 2}};
        size_t first = 0;
        for (int k = 0; k < 2; k++) {
            size_t n = np == 1 ? a[0][k] : b[r][k];
            size_t lo = np == 1 ? first : first + (r == 0 ? 0 : b[0][k]);
            EXPECT_OK(ds_samples_append(w, n, rows + lo * DIM, lw + lo, lw + lo, lw + lo, lw + lo));
            first += np == 1 ? a[0][k] : b[0][k] + b[1][k];
        }
        EXPECT_OK(ds_samples_close(&w, NULL, 0));
        if (np == 1) MPI_Comm_free(&c);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (world_rank == 0) {
        uint32_t want_x = ds_crc32c(0, rows, sizeof(ds_real) * N * DIM), want_w = ds_crc32c(0, lw, sizeof lw);
        EXPECT(crc_attr(s1, "/x") == want_x && crc_attr(s2, "/x") == want_x, "sample /x crc32c np 1 0x%08x, "
               "np 2 0x%08x, expected 0x%08x", crc_attr(s1, "/x"), crc_attr(s2, "/x"), want_x);
        EXPECT(crc_attr(s1, "/log_weight") == want_w && crc_attr(s2, "/log_pf") == want_w,
               "sample /log_weight crc32c 0x%08x, /log_pf 0x%08x, expected 0x%08x", crc_attr(s1, "/log_weight"),
               crc_attr(s2, "/log_pf"), want_w);
    }
    /* and they read back, verified, on every rank */
    ds_samples_set set;
    EXPECT_OK(ds_samples_read(MPI_COMM_WORLD, s2, &set));
    int bad = set.n == N && set.hdr.dim == DIM ? 0 : 1;
    for (int i = 0; !bad && i < N; i++) {
        bad += set.log_weight[i] != lw[i] || set.log_reward[i] != lw[i];
        for (int j = 0; j < DIM; j++) bad += set.x[i * DIM + j] != rows[i * DIM + j];
    }
    EXPECT(bad == 0, "sample set read back: n %zu, dim %d, %d mismatches", set.n, set.hdr.dim, bad);
    ds_samples_set_free(&set);
}

/* One flipped byte anywhere is refused before HDF5 opens the file, naming
 * the dataset it fell in; resuming falls back to .prev. */
static void test_damage_refused(void)
{
    const char *path = file_in_dir("intact.h5"), *v = file_in_dir("flip_v.h5"), *meta = file_in_dir("flip_meta.h5");
    const char *rec = file_in_dir("flip_record.h5"), *cut = file_in_dir("cut_record.h5");
    const char *smp = file_in_dir("intact_samples.h5"), *smp_bad = file_in_dir("flip_samples.h5");
    write_two(path, 42);
    ds_h5_meta hm = {"25gmm", DIM, "a: 1\n"};
    double lw[4] = {1, 2, 3, 4};
    ds_real x[4 * DIM] = {0};
    EXPECT_OK(ds_samples_write(MPI_COMM_WORLD, smp, &hm, world_rank == 0 ? 4 : 0, x, lw, lw, lw, lw, NULL, 0));
    int ok = 1;
    if (world_rank == 0) {
        struct stat st;
        long size = stat(path, &st) == 0 ? (long)st.st_size : 0;
        ok = flip_byte(path, v, data_offset(path, "/optimizer/v") + 9) == 0 && flip_byte(path, meta, 200) == 0 &&
             flip_byte(path, rec, size - 3) == 0 && copy_bytes(path, cut, 1.0 - 8.0 / (double)size) == 0 &&
             flip_byte(smp, smp_bad, data_offset(smp, "/log_weight") + 1) == 0;
    }
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
    EXPECT(ok, "could not prepare the damaged copies");
    loaded d;
    loaded_init(&d, NPARAMS);
    ds_ckpt_expect e = {"25gmm", DIM, NULL};
    EXPECT_FAIL(read_all(MPI_COMM_WORLD, v, &e, &d), DS_ERR_FORMAT, v, "dataset /optimizer/v is damaged");
    EXPECT_FAIL(read_all(MPI_COMM_WORLD, meta, &e, &d), DS_ERR_FORMAT, meta, "metadata", "damaged");
    EXPECT_FAIL(read_all(MPI_COMM_WORLD, rec, &e, &d), DS_ERR_FORMAT, rec, "completion record is damaged");
    EXPECT_FAIL(read_all(MPI_COMM_WORLD, cut, &e, &d), DS_ERR_FORMAT, cut, "no completion record");
    ds_samples_set set;
    EXPECT_FAIL(ds_samples_read(MPI_COMM_WORLD, smp_bad, &set), DS_ERR_FORMAT, smp_bad,
                "dataset /log_weight is damaged");
    EXPECT_OK(ds_samples_read(MPI_COMM_WORLD, smp, &set));
    ds_samples_set_free(&set);
    EXPECT_FAIL(ds_ckpt_open(MPI_COMM_WORLD, smp, &e, &(ds_ckpt_file *){NULL}), DS_ERR_FORMAT,
                "not a diffsamp checkpoint");
    /* the newest file damaged, the previous one intact: the previous one loads */
    char run[1280], prev[1280]; /* file_in_dir's buffers are a ring of 8 */
    snprintf(run, sizeof run, "%s/fallback.h5", dir);
    snprintf(prev, sizeof prev, "%s/fallback.h5.prev", dir);
    if (world_rank == 0) ok = copy_bytes(v, run, 1.0) == 0 && copy_bytes(path, prev, 1.0) == 0;
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
    char found[2048], warning[4096];
    loaded_free(&d);
    loaded_init(&d, NPARAMS);
    ds_ckpt_data hdr;
    EXPECT_OK(ds_ckpt_find_load(MPI_COMM_WORLD, run, &e, load_all, &d, found, sizeof found, &hdr, warning,
                                sizeof warning));
    EXPECT(strcmp(found, prev) == 0 && strstr(warning, "/optimizer/v is damaged"), "found %s, warning %s", found,
           warning);
    check_data(MPI_COMM_WORLD, &d, 42, 2, two_totals, two_counts);
    ds_ckpt_data_free(&hdr);
    loaded_free(&d);
}

static void remove_dir(void)
{
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(int argc, char **argv)
{
    ds_mpi_io_defaults();
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    if (world_rank == 0) {
        const char *base = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/ds_h5io_XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(dir)) dir[0] = '\0';
    }
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (!dir[0]) {
        if (world_rank == 0) fprintf(stderr, "cannot create a temporary directory\n");
        MPI_Finalize();
        return 1;
    }
    if (world_size != 2) {
        if (world_rank == 0) printf("test_h5io runs with exactly 2 ranks (got %d)\n", world_size);
        failures++;
    } else {
        double t0 = MPI_Wtime();
        test_same_ranks_and_one_rank();
        test_one_rank_to_two();
        test_empty_tables();
        test_refusals();
        test_atomic_and_find();
        test_samples();
        test_samples_extra_column();
        test_crc();
        test_checksums_any_ranks();
        test_damage_refused();
        if (world_rank == 0) printf("test_h5io: %.2f s\n", MPI_Wtime() - t0);
        /* Every file, group, dataset and attribute opened is closed again. */
        ssize_t open_objects = H5Fget_obj_count((hid_t)H5F_OBJ_ALL, H5F_OBJ_ALL);
        EXPECT(open_objects == 0, "%zd HDF5 objects left open", open_objects);
    }
    int total = 0;
    MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    if (world_rank == 0) {
        if (total == 0 && !getenv("DS_TEST_KEEP")) remove_dir();
        else fprintf(stderr, "test_h5io: %d failed checks (files kept in %s)\n", total, dir);
        printf("test_h5io: %s\n", total == 0 ? "all checks passed" : "FAILED");
    }
    MPI_Finalize();
    return total == 0 ? 0 : 1;
}

