/* ds_bench: times training iterations of the configurations the issue
 * tracker compares with the PyTorch reference (batch 300, T = 100, width 64):
 * 25gmm TB and many_well TB + exploration; prints ms/iteration, the network
 * FLOP rate achieved and, measured in the same run, this machine's sgemm
 * FLOP rate. Not a test: timings depend on the machine and its load.
 *
 * usage: ds_bench [iterations per case (default 60)] */
#include "diffsamp/config.h"
#include "diffsamp/train.h"

#include <cblas.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Multiply-adds of one network evaluation of one row, forward only. */
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

static int run_case(const char *label, const char *yaml, long iters)
{
    ds_settings s;
    ds_settings_defaults(&s);
    if (ds_settings_load_string(&s, yaml, label) != DS_OK) {
        fprintf(stderr, "%s\n", ds_error_message());
        return 1;
    }
    s.iterations = iters + 5;
    ds_trainer *t = NULL;
    if (ds_trainer_create(&s, MPI_COMM_WORLD, &t) != DS_OK) {
        fprintf(stderr, "%s\n", ds_error_message());
        return 1;
    }
    double loss;
    for (int i = 0; i < 5; i++) ds_trainer_step(t, &loss); /* warm-up */
    double t0 = ds_wtime();
    for (long i = 0; i < iters; i++) {
        if (ds_trainer_step(t, &loss) != DS_OK) {
            fprintf(stderr, "%s\n", ds_error_message());
            return 1;
        }
    }
    double ms = 1e3 * (ds_wtime() - t0) / iters;
    int d = ds_trainer_policy(t)->c.dim;
    /* forward once during simulation, backward = two products per layer */
    double flops = 3.0 * row_flops(&s, d) * s.T * s.batch_size;
    printf("%-34s %8.2f ms/iteration   %6.2f GFLOP/s in the network   (%.2f GFLOP/iteration)\n", label, ms,
           flops / (ms * 1e-3) / 1e9, flops / 1e9);
    ds_trainer_destroy(&t);
    return 0;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    long iters = argc > 1 ? atol(argv[1]) : 60;
    const char *threads = getenv("OPENBLAS_NUM_THREADS");
    printf("diffsamp benchmark (%s, OPENBLAS_NUM_THREADS=%s, %ld timed iterations per case)\n", DS_REAL_NAME,
           threads ? threads : "unset", iters);
    printf("sgemm (30000 x 64) x (64 x 64), the shape of a hidden layer: %.1f GFLOP/s\n",
           sgemm_rate(30000, 64, 64, 20) / 1e9);
    printf("sgemm 1024 x 1024 x 1024:                                   %.1f GFLOP/s\n",
           sgemm_rate(1024, 1024, 1024, 5) / 1e9);
    int rc = 0;
    rc |= run_case("25gmm TB", "energy: {name: 25gmm}\nobjective: {name: tb}\nsampler: {T: 100, t_scale: 5.0}\n"
                   "train: {batch_size: 300}\neval: {ground_truth_samples: 0}\n", iters);
    rc |= run_case("many_well TB + exploration", "energy: {name: many_well}\nobjective: {name: tb}\n"
                   "sampler: {T: 100, t_scale: 1.0}\ntrain: {batch_size: 300}\nexploration: {factor: 0.1}\n"
                   "eval: {ground_truth_samples: 0}\n", iters);
    rc |= run_case("many_well TB + expl. + LP", "energy: {name: many_well}\nobjective: {name: tb}\n"
                   "sampler: {T: 100, t_scale: 1.0, langevin: true}\ntrain: {batch_size: 300}\n"
                   "exploration: {factor: 0.1}\neval: {ground_truth_samples: 0}\n", iters);
    printf("PyTorch reference: issue #2 quotes 410 ms/iteration (25gmm TB) and 460 (many_well TB + exploration) on "
           "this 2-core machine; README has it timed here with 1 and 2 threads\n");
    MPI_Finalize();
    return rc;
}
