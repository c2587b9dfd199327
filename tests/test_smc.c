/* SMC baseline (smc.h), run with mpiexec -n 2: the log Z estimate on the
 * diagonal Gaussian agrees with the exact value within its error bar over
 * seeds; the run does not depend on the number of ranks (2 ranks against
 * each rank alone, bitwise); the final weighted particles have the target's
 * mean; bad settings are refused. A plain MPI program: every rank counts its
 * failures, the counts are summed, and every rank returns nonzero if any
 * failed. */
#include "diffsamp/energy.h"
#include "diffsamp/smc.h"

#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpitest.h"

/* Runs c on comm; x and w (all particles, gathered in index order on every
 * rank of comm) may be NULL. */
static ds_status run(MPI_Comm comm, const ds_energy *e, const ds_smc_config *c, ds_smc_result *r, ds_real *x_all,
                     double *w_all)
{
    long n, first;
    ds_smc_local(comm, c->particles, &n, &first);
    ds_real *x = calloc((size_t)(n + 1) * e->dim, sizeof *x);
    double *w = calloc((size_t)n + 1, sizeof *w);
    ds_status rc = ds_smc_run(comm, e, c, x, w, r);
    int csize;
    MPI_Comm_size(comm, &csize);
    if (rc == DS_OK && x_all) {
        int *cnt = malloc(sizeof(int) * 4 * (size_t)csize), *dsp = cnt + csize, *cd = cnt + 2 * csize,
            *dd = cnt + 3 * csize;
        int mine = (int)n;
        MPI_Allgather(&mine, 1, MPI_INT, cnt, 1, MPI_INT, comm);
        dsp[0] = 0;
        for (int q = 1; q < csize; q++) dsp[q] = dsp[q - 1] + cnt[q - 1];
        for (int q = 0; q < csize; q++) { cd[q] = cnt[q] * e->dim; dd[q] = dsp[q] * e->dim; }
        MPI_Allgatherv(x, (int)n * e->dim, MPI_DOUBLE, x_all, cd, dd, MPI_DOUBLE, comm);
        MPI_Allgatherv(w, (int)n, MPI_DOUBLE, w_all, cnt, dsp, MPI_DOUBLE, comm);
        free(cnt);
    }
    free(x);
    free(w);
    return rc;
}

int main(int argc, char **argv)
{
    ds_mpi_io_defaults();
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    ds_energy *e = NULL;
    EXPECT(ds_energy_create("gaussian", 3, NULL, &e) == DS_OK, "gaussian: %s", ds_error_message());
    ds_smc_config c;
    ds_smc_config_defaults(&c);
    c.particles = 1001; /* uneven over 2 ranks */
    c.levels = 20;
    c.init_var = 9.0; /* a wide start and few levels: the weights degenerate and resampling is exercised */

    /* 1. log Z within its error bar over 6 seeds (SMC is unbiased for Z, so
     * log Z is biased low by about var/2: allowed for) */
    enum { S = 6 };
    double lz[S], mean = 0, var = 0;
    ds_smc_result r;
    for (int k = 0; k < S; k++) {
        c.seed = 100 + (uint64_t)k;
        EXPECT(run(MPI_COMM_WORLD, e, &c, &r, NULL, NULL) == DS_OK, "smc: %s", ds_error_message());
        lz[k] = r.log_z;
        mean += lz[k] / S;
        EXPECT(r.resamplings > 0 && r.ess > 0 && r.ess <= 1 && r.acceptance > 0.2 && r.acceptance < 1,
               "seed %d: resamplings %ld ess %g acceptance %g", k, r.resamplings, r.ess, r.acceptance);
        EXPECT(r.energy_evals == c.particles * (1 + (long)c.levels * c.mcmc_steps), "energy evaluations %ld",
               r.energy_evals);
    }
    for (int k = 0; k < S; k++) var += (lz[k] - mean) * (lz[k] - mean) / (S - 1);
    const double se = sqrt(var / S);
    EXPECT(fabs(mean - e->log_z) < 3 * se + var / 2 + 0.01, "log Z %.4f +- %.4f, exact %.4f", mean, se, e->log_z);
    EXPECT(se < 0.1, "the estimate's spread %.3f is too large for 1001 particles on a Gaussian", se);
    if (rank == 0) printf("SMC on gaussian(3): log Z %.4f +- %.4f (exact %.4f), last acceptance %.3f\n", mean, se,
                          e->log_z, r.acceptance);

    /* 2. the number of ranks does not matter: 2 ranks against each rank alone */
    c.seed = 7;
    const size_t N = (size_t)c.particles, D = (size_t)e->dim;
    ds_real *x2 = calloc(N * D, sizeof *x2), *x1 = calloc(N * D, sizeof *x1);
    double *w2 = calloc(N, sizeof *w2), *w1 = calloc(N, sizeof *w1);
    ds_smc_result r2, r1;
    EXPECT(run(MPI_COMM_WORLD, e, &c, &r2, x2, w2) == DS_OK, "%s", ds_error_message());
    EXPECT(run(MPI_COMM_SELF, e, &c, &r1, x1, w1) == DS_OK, "%s", ds_error_message());
    EXPECT(r1.log_z == r2.log_z && r1.resamplings == r2.resamplings && r1.step == r2.step,
           "np %d: log Z %.17g, np 1: %.17g", size, r2.log_z, r1.log_z);
    EXPECT(memcmp(x1, x2, N * D * sizeof *x1) == 0 && memcmp(w1, w2, N * sizeof *w1) == 0,
           "particles differ between np %d and np 1", size);
    /* 3. the weighted particles have the target's mean (gaussian: 0.5 ((j % 3) - 1)) */
    double wsum = 0, m[3] = {0, 0, 0};
    for (size_t i = 0; i < N; i++) {
        const double wi = exp(w2[i]);
        wsum += wi;
        for (size_t j = 0; j < D; j++) m[j] += wi * x2[i * D + j];
    }
    for (size_t j = 0; j < D; j++) {
        const double want = 0.5 * (double)(((int)j % 3) - 1);
        EXPECT(fabs(m[j] / wsum - want) < 0.15, "mean of coordinate %zu: %.3f, target %.3f", j, m[j] / wsum, want);
    }
    EXPECT(fabs(wsum / (double)N - 1) < 1e-9, "normalised weights average %g, not 1", wsum / (double)N);

    /* 4. refusals */
    ds_smc_config bad = c;
    bad.levels = 0;
    EXPECT(run(MPI_COMM_WORLD, e, &bad, &r, NULL, NULL) == DS_ERR_CONFIG, "levels 0 accepted");
    bad = c;
    bad.ess_threshold = 1.5;
    EXPECT(run(MPI_COMM_WORLD, e, &bad, &r, NULL, NULL) == DS_ERR_CONFIG, "ess_threshold 1.5 accepted");

    free(x1);
    free(x2);
    free(w1);
    free(w2);
    ds_energy_destroy(&e);
    const int total = mpitest_total();
    MPI_Finalize();
    if (rank == 0) printf("%s: %d failure(s)\n", total ? "FAILED" : "ok", total);
    return total ? 1 : 0;
}
