/* ds_bench: ms/iteration of every objective on the paper's Table-1
 * configurations (configs/ files: 25gmm and many_well; batch 300, T = 100,
 * width 64), with the CPU time, target evaluations per second and the
 * network's FLOP rate, and, measured in the same run, this machine's sgemm
 * rate at 1024^3 and at the hidden layer's shape. Not a test: timings
 * depend on the machine and its load (the CPU time column is the one to
 * read on a shared machine).
 *
 * usage: ds_bench [-n ITERATIONS] [-c CONFIG_DIR] [FILTER...]
 *   ITERATIONS  timed iterations per case (default 20; iteration 0 is
 *               warm-up; with local search, iteration 1 is its cycle's LS
 *               iteration and is timed separately)
 *   FILTER      run only the cases whose label contains one of these words */
#define _POSIX_C_SOURCE 200809L
#include "diffsamp/blas.h"
#include "diffsamp/config.h"
#include "diffsamp/nn.h"
#include "diffsamp/train.h"

#include <cblas.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef DS_SOURCE_DIR
#define DS_SOURCE_DIR "."
#endif

typedef struct bench_case {
    const char *label;
    const char *config;  /* configs/<config>.yaml */
    const char *set;     /* one more key=value, or NULL */
} bench_case;

static const bench_case cases[] = {
    {"25gmm TB", "25gmm_tb", NULL},
    {"25gmm TB + Expl.", "25gmm_tb_expl", NULL},
    {"25gmm TB + Expl. + LS", "25gmm_tb_expl_ls", NULL},
    {"25gmm TB + Expl. + LP", "25gmm_tb_expl_lp", NULL},
    {"25gmm TB + Expl. + LP + LS", "25gmm_tb_expl_lp_ls", NULL},
    {"25gmm VarGrad + Expl.", "25gmm_vargrad_expl", NULL},
    {"25gmm VarGrad + Expl. + LP + LS", "25gmm_vargrad_expl_lp_ls", NULL},
    {"25gmm DB", "25gmm_flsubtb", "objective.name=db"},
    {"25gmm SubTB", "25gmm_flsubtb", "objective.name=subtb"},
    {"25gmm FL-SubTB", "25gmm_flsubtb", NULL},
    {"25gmm FL-SubTB + LP", "25gmm_flsubtb_lp", NULL},
    {"25gmm PIS", "25gmm_pis", NULL},
    {"25gmm PIS + LP", "25gmm_pis_lp", NULL},
    {"25gmm DDS", "25gmm_dds", NULL},
    {"25gmm DIS", "25gmm_dis", NULL},
    {"manywell TB", "manywell_tb", NULL},
    {"manywell TB + Expl.", "manywell_tb_expl", NULL},
    {"manywell TB + Expl. + LS", "manywell_tb_expl_ls", NULL},
    {"manywell TB + Expl. + LP", "manywell_tb_expl_lp", NULL},
    {"manywell TB + Expl. + LP + LS", "manywell_tb_expl_lp_ls", NULL},
    {"manywell VarGrad + Expl.", "manywell_vargrad_expl", NULL},
    {"manywell VarGrad + Expl. + LP + LS", "manywell_vargrad_expl_lp_ls", NULL},
    {"manywell DB", "manywell_flsubtb", "objective.name=db"},
    {"manywell SubTB", "manywell_flsubtb", "objective.name=subtb"},
    {"manywell FL-SubTB", "manywell_flsubtb", NULL},
    {"manywell FL-SubTB + LP", "manywell_flsubtb_lp", NULL},
    {"manywell PIS", "manywell_pis", NULL},
    {"manywell PIS + LP", "manywell_pis_lp", NULL},
    {"manywell DDS", "manywell_dds", NULL},
    {"manywell DIS", "manywell_dis", NULL},
};

static double cpu_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Multiply-adds x 2 of one evaluation of the drift network (and flow
 * network) for one row, forward only; the time embedding is per step. */
static double row_flops(const ds_settings *s, int d)
{
    const double H = s->hidden;
    double f = 2.0 * d * H + s->joint_layers * 2.0 * H * H + 2.0 * H * 2 * d;
    if (s->conditional_flow) f += s->joint_layers * 2.0 * H * H + 2.0 * H;
    return f;
}

static double sgemm_rate(int m, int n, int k, int reps)
{
    float *a = calloc((size_t)m * k, sizeof(float)), *b = calloc((size_t)k * n, sizeof(float));
    float *c = calloc((size_t)m * n, sizeof(float));
    for (size_t i = 0; i < (size_t)m * k; i++) a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)k * n; i++) b[i] = (float)(i % 5) * 0.1f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1, a, k, b, k, 0, c, n);
    double t0 = ds_wtime();
    for (int r = 0; r < reps; r++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1, a, k, b, k, 0, c, n);
    double dt = ds_wtime() - t0;
    free(a);
    free(b);
    free(c);
    return 2.0 * m * n * k * reps / dt;
}

/* The network's own layer calls at a hidden layer's shape (m rows, 64 -> 64):
 * Linear + GELU forward, and the weight-gradient product; through
 * src/smm.c where it runs them (DS_SMM=0: BLAS and a separate GELU pass). */
static void layer_rates(int m, int reps, double *fwd, double *wgrad)
{
    const int H = 64;
    ds_real *x = calloc((size_t)m * H, sizeof(ds_real)), *W = calloc((size_t)H * H, sizeof(ds_real));
    ds_real *b = calloc((size_t)H, sizeof(ds_real)), *act = calloc((size_t)m * H, sizeof(ds_real));
    ds_real *gd = calloc((size_t)m * H, sizeof(ds_real)), *scratch = calloc((size_t)m * H, sizeof(ds_real));
    ds_real *dW = calloc((size_t)H * H, sizeof(ds_real));
    for (size_t i = 0; i < (size_t)m * H; i++) x[i] = (ds_real)((double)(i % 7) * 0.1 - 0.3);
    for (size_t i = 0; i < (size_t)H * H; i++) W[i] = (ds_real)((double)(i % 5) * 0.1 - 0.2);
    ds_linear_forward_gelu(act, gd, x, W, b, m, H, H, scratch);
    double t0 = ds_wtime();
    for (int r = 0; r < reps; r++) ds_linear_forward_gelu(act, gd, x, W, b, m, H, H, scratch);
    *fwd = 2.0 * m * H * H * reps / (ds_wtime() - t0);
    t0 = ds_wtime();
    for (int r = 0; r < reps; r++) ds_linear_backward_params(dW, NULL, act, x, m, H, H);
    *wgrad = 2.0 * m * H * H * reps / (ds_wtime() - t0);
    free(x); free(W); free(b); free(act); free(gd); free(scratch); free(dW);
}

static double calls_total(const ds_energy *e)
{
    double n = 0;
    for (int p = 0; p < DS_ECALL_NPURPOSE; p++) n += e->calls->value[p];
    return n;
}

static int run_case(const bench_case *bc, const char *dir, long iters, int rank)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.yaml", dir, bc->config);
    ds_settings s;
    ds_settings_defaults(&s);
    ds_status rc = ds_settings_load_file(&s, path);
    if (rc == DS_OK && bc->set) rc = ds_settings_set(&s, bc->set);
    if (rc != DS_OK) {
        fprintf(stderr, "%s: %s\n", bc->label, ds_error_message());
        return 1;
    }
    s.iterations = iters + 1;
    ds_trainer *t = NULL;
    if (ds_trainer_create(&s, MPI_COMM_WORLD, &t) != DS_OK) {
        fprintf(stderr, "%s: %s\n", bc->label, ds_error_message());
        return 1;
    }
    const ds_energy *e = ds_trainer_energy(t);
    double loss, wall = 0, cpu = 0, ls_wall = 0, calls = 0;
    long n = 0, n_ls = 0;
    for (long i = 0; i <= iters; i++) {
        const int ls = ds_trainer_is_local_search_iteration(&s, ds_trainer_iteration(t));
        const double c0 = calls_total(e), w0 = ds_wtime(), p0 = cpu_time();
        if (ds_trainer_step(t, &loss) != DS_OK) {
            fprintf(stderr, "%s: %s\n", bc->label, ds_error_message());
            ds_trainer_destroy(&t);
            return 1;
        }
        const double dw = ds_wtime() - w0, dp = cpu_time() - p0;
        if (i == 0) continue; /* warm-up */
        if (ls) {
            ls_wall += dw;
            n_ls++;
        } else {
            wall += dw;
            cpu += dp;
            n++;
        }
        calls += calls_total(e) - c0;
    }
    const double ms = 1e3 * wall / (double)(n > 0 ? n : 1), cpu_ms = 1e3 * cpu / (double)(n > 0 ? n : 1);
    const int d = e->dim;
    /* forward once during simulation, backward = two products per layer */
    const double flops = 3.0 * row_flops(&s, d) * s.T * s.batch_size;
    char lscol[64] = "";
    if (n_ls > 0) {
        const double ls_ms = 1e3 * ls_wall / (double)n_ls;
        snprintf(lscol, sizeof lscol, "  LS it. %7.0f ms, %6.1f amortised", ls_ms, ms + (ls_ms - ms) / s.ls_cycle);
    }
    if (rank == 0)
        printf("%-36s %8.2f ms %8.2f cpu %9.3g evals/s %6.1f GFLOP/s%s\n", bc->label, ms, cpu_ms,
               calls / (wall + ls_wall), flops / (ms * 1e-3) / 1e9, lscol);
    ds_trainer_destroy(&t);
    return 0;
}

static int selected(const char *label, int nf, char **filters)
{
    if (nf == 0) return 1;
    for (int k = 0; k < nf; k++)
        if (strstr(label, filters[k])) return 1;
    return 0;
}

int main(int argc, char **argv)
{
    ds_blas_tune();
    ds_mpi_io_defaults();
    ds_fp_defaults();
    MPI_Init(&argc, &argv);
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    long iters = 20;
    const char *dir = DS_SOURCE_DIR "/configs";
    char **filters = calloc((size_t)argc, sizeof *filters);
    int nf = 0;
    for (int k = 1; k < argc; k++) {
        if (strcmp(argv[k], "-n") == 0 && k + 1 < argc)
            iters = atol(argv[++k]);
        else if (strcmp(argv[k], "-c") == 0 && k + 1 < argc)
            dir = argv[++k];
        else
            filters[nf++] = argv[k];
    }
    if (iters < 2) iters = 2;
    const char *threads = getenv("OPENBLAS_NUM_THREADS");
    if (rank == 0) {
        printf("diffsamp benchmark (%s, %d rank(s), OPENBLAS_NUM_THREADS=%s, %ld timed iterations per case, "
               "configurations from %s)\n", DS_REAL_NAME, size, threads ? threads : "unset", iters, dir);
        printf("BLAS: %s; subnormal numbers %s\n", ds_blas_describe(), ds_fp_describe());
        printf("sgemm (30000 x 64) x (64 x 64), the shape of a hidden layer: %.1f GFLOP/s\n",
               sgemm_rate(30000, 64, 64, 20) / 1e9);
        printf("sgemm 1024 x 1024 x 1024:                                   %.1f GFLOP/s\n",
               sgemm_rate(1024, 1024, 1024, 5) / 1e9);
        double fwd, wgrad;
        layer_rates(300, 2000, &fwd, &wgrad);
        printf("the network's layer (300 x 64) -> 64: Linear + GELU %.1f GFLOP/s, weight gradient %.1f GFLOP/s\n",
               fwd / 1e9, wgrad / 1e9);
        layer_rates(30000, 20, &fwd, &wgrad);
        printf("the network's layer (30000 x 64) -> 64: Linear + GELU %.1f GFLOP/s, weight gradient %.1f GFLOP/s\n",
               fwd / 1e9, wgrad / 1e9);
        printf("ms/iteration (wall and CPU of this process; LS iterations apart), target evaluations per second,\n"
               "the drift network's FLOP rate; with LS, the LS iteration and the cost amortised over its cycle\n");
    }
    int rc = 0;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        if (selected(cases[k].label, nf, filters)) rc |= run_case(&cases[k], dir, iters, rank);
    free(filters);
    MPI_Finalize();
    return rc;
}
