/* MPI test of the conditional sampler (run with mpiexec -n 2): a conditional
 * run on the pretrained MNIST VAE (VarGrad with the baseline per condition,
 * exploration and LP, conditions split whole over the ranks) gives the same
 * losses, parameters and per-image evaluation on 2 ranks as on 1, at the
 * first iteration and a few after. Skipped (77) when ../shared is absent. */
#define _POSIX_C_SOURCE 200809L
#include "diffsamp/config.h"
#include "diffsamp/train.h"

#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpitest.h"

#define VAE DS_SHARED_DIR "/data/mnist/vae_bce_mnist_100ep.h5"
#define IMAGES DS_SHARED_DIR "/data/mnist/t10k-images-idx3-ubyte.gz"

static void settings(ds_settings *s, const char *objective, int lp)
{
    ds_settings_defaults(s);
    ds_settings_set(s, "energy.name=vae");
    ds_settings_set(s, "energy.file=" VAE);
    ds_settings_set(s, "condition.images=" IMAGES);
    char set[64];
    snprintf(set, sizeof set, "objective.name=%s", objective);
    ds_settings_set(s, set);
    s->T = 10;
    s->t_scale = 1.0;
    s->langevin = lp;
    s->clipping = 1;
    s->batch_size = 15;  /* 5 conditions of 3: 3 + 2 over 2 ranks */
    s->cond_repeats = 3;
    s->cond_train_first = 100;
    s->cond_train_count = 50;
    s->cond_eval_count = 3; /* 2 + 1 images */
    s->cond_eval_repeats = 3;
    s->expl_factor = 0.1;
    s->eval_gt_samples = 0;
    snprintf(s->out_dir, sizeof s->out_dir, "/tmp/ds_test_mpi_cond_%d", (int)getpid());
}

static int train(const ds_settings *s, MPI_Comm comm, long iters, double *losses, ds_real **params, size_t *n,
                 ds_eval_result *ev)
{
    ds_trainer *t = NULL;
    if (ds_trainer_create(s, comm, &t) != DS_OK) {
        fprintf(stderr, "[%d] %s\n", rank, ds_error_message());
        return 1;
    }
    for (long i = 0; i < iters; i++)
        if (ds_trainer_step(t, &losses[i]) != DS_OK) {
            fprintf(stderr, "[%d] %s\n", rank, ds_error_message());
            ds_trainer_destroy(&t);
            return 1;
        }
    const ds_arena *a = &ds_trainer_policy(t)->arena;
    *n = a->n;
    *params = malloc(sizeof(ds_real) * a->n);
    memcpy(*params, a->params, sizeof(ds_real) * a->n);
    int rc = ds_trainer_evaluate(t, 0, ev) != DS_OK;
    ds_trainer_destroy(&t);
    return rc;
}

static void compare(const char *objective, int lp, long iters, double tol)
{
    ds_settings s;
    settings(&s, objective, lp);
    double lw[16], l1[16];
    ds_real *pw = NULL, *p1 = NULL;
    size_t nw = 0, n1 = 0;
    ds_eval_result ew, e1;
    EXPECT(train(&s, MPI_COMM_WORLD, iters, lw, &pw, &nw, &ew) == 0, "world run failed");
    EXPECT(train(&s, MPI_COMM_SELF, iters, l1, &p1, &n1, &e1) == 0, "self run failed");
    if (!pw || !p1) return;
    double wl = 0, wp = 0;
    for (long i = 0; i < iters; i++) wl = fmax(wl, fabs(lw[i] - l1[i]) / (1e-6 + fabs(l1[i])));
    for (size_t i = 0; i < nw && i < n1; i++) wp = fmax(wp, fabs((double)pw[i] - (double)p1[i]));
    if (rank == 0)
        printf("%s lp %d, %ld iterations, np %d vs 1: loss %.3g, params %.3g; elbo %.6f vs %.6f, IS %.6f vs %.6f, "
               "RW %.6f vs %.6f\n", objective, lp, iters, size, wl, wp, ew.elbo, e1.elbo, ew.log_z_is, e1.log_z_is,
               ew.log_z_rw, e1.log_z_rw);
    EXPECT(nw == n1, "parameter counts %zu vs %zu", nw, n1);
    EXPECT(wl <= tol, "%s: losses differ by %g (relative)", objective, wl);
    EXPECT(wp <= tol, "%s: parameters differ by %g", objective, wp);
    EXPECT(fabs(ew.elbo - e1.elbo) <= tol * (1 + fabs(e1.elbo)), "elbo %.12g vs %.12g", ew.elbo, e1.elbo);
    EXPECT(fabs(ew.log_z_is - e1.log_z_is) <= tol * (1 + fabs(e1.log_z_is)), "IS %.12g vs %.12g", ew.log_z_is,
           e1.log_z_is);
    EXPECT(fabs(ew.log_z_rw - e1.log_z_rw) <= tol * (1 + fabs(e1.log_z_rw)), "RW %.12g vs %.12g", ew.log_z_rw,
           e1.log_z_rw);
    EXPECT(ew.ess > 0 && ew.ess <= 1 && fabs(ew.ess - e1.ess) <= tol, "per-image ESS %.12g vs %.12g", ew.ess, e1.ess);
    free(pw);
    free(p1);
}

int main(int argc, char **argv)
{
    ds_mpi_io_defaults();
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (access(VAE, R_OK) != 0 || access(IMAGES, R_OK) != 0) {
        if (rank == 0) printf("SKIPPED: %s or %s is absent (the shared data live in ../shared)\n", VAE, IMAGES);
        MPI_Finalize();
        return 77;
    }
    compare("vargrad", 1, 1, 1e-9);
    compare("tb", 0, 1, 1e-9);
    compare("vargrad", 1, 4, 1e-6);
    const int total = mpitest_total();
    if (rank == 0) printf("%s: %d failure(s) over %d ranks\n", total ? "FAILED" : "passed", total, size);
    MPI_Finalize();
    return total ? 1 : 0;
}
