/* lgcp_bench: times the lgcp energy (d = 1600): log R + gradient of a batch
 * of 300 (one training iteration's terminal states) and of 30,000 (B x T
 * states, one LP pass), log R alone and the HVP, with the FLOP rate of the
 * (n x d) by (d x d) product they are made of next to a plain sgemm of the
 * same shape measured in the same run, and user CPU time (the machine may be
 * shared: wall time alone can mislead). Not a test.
 *
 * usage: lgcp_bench [repetitions (default 3)] */
#include "diffsamp/energy.h"

#include <cblas.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

static double user_s(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + 1e-6 * (double)u.ru_utime.tv_usec;
}

int main(int argc, char **argv)
{
    ds_mpi_io_defaults();
    MPI_Init(&argc, &argv);
    const int reps = argc > 1 ? atoi(argv[1]) : 3;
    ds_energy *e = NULL;
    double t0 = MPI_Wtime();
    if (ds_energy_create("lgcp", 0, NULL, &e) != DS_OK) {
        fprintf(stderr, "lgcp: %s\n", ds_error_message());
        MPI_Finalize();
        return 1;
    }
    const int d = e->dim;
    printf("lgcp (d = %d, %s): create (K, dpotrf, dpotri) %.0f ms\n", d, DS_REAL_NAME, 1e3 * (MPI_Wtime() - t0));
    const int sizes[] = {300, 30000};
    for (int si = 0; si < 2; si++) {
        const int n = sizes[si];
        ds_real *x = malloc(sizeof *x * (size_t)n * d), *g = malloc(sizeof *g * (size_t)n * d);
        ds_real *lr = malloc(sizeof *lr * (size_t)n);
        float *c = malloc(sizeof *c * (size_t)n * d), *o = malloc(sizeof *o * (size_t)n * d),
              *b = malloc(sizeof *b * (size_t)d * d);
        for (size_t i = 0; i < (size_t)n * d; i++) {
            x[i] = (ds_real)(3.9 + 0.5 * ((double)(i % 13) / 13.0 - 0.5));
            c[i] = (float)x[i];
        }
        for (size_t i = 0; i < (size_t)d * d; i++) b[i] = (float)(i % 5) * 0.1f;
        const double flops = 2.0 * n * (double)d * d;
        const char *what[] = {"log R + grad", "log R only  ", "HVP         ", "sgemm (same shape)"};
        for (int w = 0; w < 4; w++) {
            int r = n >= 30000 ? (reps > 1 ? reps / 2 + 1 : 1) : 10 * reps;
            double best = 1e30, u0 = user_s(), wall0 = MPI_Wtime();
            for (int k = 0; k < r; k++) {
                double s = MPI_Wtime();
                if (w == 0) ds_energy_log_reward(e, n, x, lr, g);
                if (w == 1) ds_energy_log_reward(e, n, x, lr, NULL);
                if (w == 2) ds_energy_hvp(e, n, x, x, g);
                if (w == 3)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, d, d, 1, c, d, b, d, 0, o, d);
                double dt = MPI_Wtime() - s;
                if (dt < best) best = dt;
            }
            double user = (user_s() - u0) / r, wall = (MPI_Wtime() - wall0) / r;
            printf("n = %6d  %s  best %9.1f ms  mean %9.1f ms (user CPU %9.1f ms)  product at %6.1f GFLOP/s "
                   "(best wall), %6.1f (user CPU)\n", n, what[w], 1e3 * best, 1e3 * wall, 1e3 * user,
                   flops / best * 1e-9, flops / user * 1e-9);
        }
        free(x); free(g); free(lr); free(c); free(o); free(b);
    }
    ds_energy_destroy(&e);
    MPI_Finalize();
    return 0;
}
