/* MPI tests (run with mpiexec -n 2): data-parallel training gives the same
 * science whatever the number of ranks; the local-search exchange delivers
 * exactly what each rank sent; the distributed reductions equal the
 * single-rank ones; diverged parameters are detected. A plain MPI program:
 * every rank counts its failures, the counts are summed, and every rank
 * returns nonzero if any failed. */
#define _POSIX_C_SOURCE 200809L
#include "diffsamp/config.h"
#include "diffsamp/dist.h"
#include "diffsamp/replay.h"
#include "diffsamp/train.h"

#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpitest.h"

static void base_settings(ds_settings *s, const char *objective)
{
    ds_settings_defaults(s);
    snprintf(s->energy_name, sizeof s->energy_name, "25gmm");
    char set[64];
    const int lp = strcmp(objective, "pis+lp") == 0; /* PIS with the Langevin parametrisation */
    snprintf(set, sizeof set, "objective.name=%s", lp ? "pis" : objective);
    ds_settings_set(s, set);
    s->langevin = lp;
    s->lp_through_grad = lp;  /* the HVP path too */
    s->T = 10;
    s->batch_size = 37; /* uneven split over 2 ranks: 19 + 18 */
    s->expl_factor = 0.2;
    if (strcmp(objective, "subtb") == 0) s->conditional_flow = 1;
    if (ds_objective_has(s->objective, DS_OBJF_ON_POLICY)) s->expl_factor = 0; /* simulation-based: no exploration */
    s->eval_samples = 101;
    s->eval_gt_samples = 20;
    s->eval_paths = 3;
    snprintf(s->out_dir, sizeof s->out_dir, "/tmp/ds_test_mpi_%d", (int)getpid());
}

/* Trains `iters` iterations on comm and returns the losses and final params. */
static int train(const ds_settings *s, MPI_Comm comm, long iters, double *losses, ds_real **params, size_t *n,
                 ds_eval_result *ev)
{
    ds_trainer *t = NULL;
    if (ds_trainer_create(s, comm, &t) != DS_OK) {
        fprintf(stderr, "[%d] %s\n", rank, ds_error_message());
        return 1;
    }
    for (long i = 0; i < iters; i++) {
        if (ds_trainer_step(t, &losses[i]) != DS_OK) {
            fprintf(stderr, "[%d] %s\n", rank, ds_error_message());
            ds_trainer_destroy(&t);
            return 1;
        }
    }
    const ds_arena *a = &ds_trainer_policy(t)->arena;
    *n = a->n;
    *params = malloc(sizeof(ds_real) * a->n);
    memcpy(*params, a->params, sizeof(ds_real) * a->n);
    if (ev) ds_trainer_evaluate(t, 1, ev);
    ds_trainer_destroy(&t);
    return 0;
}

/* The same run on all ranks of MPI_COMM_WORLD and alone on MPI_COMM_SELF. */
static void compare_world_and_self(const char *objective, int ls, long iters, double loss_tol, double param_tol)
{
    ds_settings s;
    base_settings(&s, objective);
    if (ls) {
        s.ls_enabled = 1;
        s.ls_cycle = 4;
        s.ls_max_iter = 10;
        s.ls_burn_in = 4;
        s.exchange_count = 20; /* exercise the exchange after each round */
    }
    double *lw = calloc((size_t)iters, sizeof(double)), *ls1 = calloc((size_t)iters, sizeof(double));
    ds_real *pw = NULL, *p1 = NULL;
    size_t nw = 0, n1 = 0;
    ds_eval_result ew, e1;
    EXPECT(train(&s, MPI_COMM_WORLD, iters, lw, &pw, &nw, &ew) == 0, "world run failed");
    EXPECT(train(&s, MPI_COMM_SELF, iters, ls1, &p1, &n1, &e1) == 0, "self run failed");
    if (pw && p1) {
        EXPECT(nw == n1, "parameter counts %zu vs %zu", nw, n1);
        double worst_loss = 0, worst_param = 0;
        for (long i = 0; i < iters; i++)
            worst_loss = fmax(worst_loss, fabs(lw[i] - ls1[i]) / (1e-6 + fabs(ls1[i])));
        for (size_t i = 0; i < nw && i < n1; i++)
            worst_param = fmax(worst_param, fabs((double)pw[i] - (double)p1[i]));
        if (rank == 0)
            printf("%-8s ls %d, %ld iterations, np %d vs 1: max relative loss difference %.3g, max parameter "
                   "difference %.3g; eval elbo %.6f vs %.6f\n", objective, ls, iters, size, worst_loss, worst_param,
                   ew.elbo, e1.elbo);
        if (ls) {
            /* With a replay buffer the shards are drawn from separately (by
             * design: each rank keeps what it produced), so the backward
             * batches differ from the single-rank run; the runs agree in
             * distribution, not sample by sample. */
            double mw = 0, m1 = 0;
            for (long i = iters / 2; i < iters; i++) {
                mw += lw[i];
                m1 += ls1[i];
                EXPECT(isfinite(lw[i]), "non-finite loss at %ld", i);
            }
            EXPECT(fabs(mw - m1) <= 0.5 * fabs(m1), "mean losses %g vs %g", mw / (iters / 2), m1 / (iters / 2));
            EXPECT(fabs(ew.elbo - e1.elbo) <= 0.5, "elbo %g vs %g", ew.elbo, e1.elbo);
        } else {
            EXPECT(worst_loss <= loss_tol, "%s: losses differ by %g (relative)", objective, worst_loss);
            EXPECT(worst_param <= param_tol, "%s: parameters differ by %g", objective, worst_param);
            EXPECT(fabs(ew.elbo - e1.elbo) <= 1e-6 * (1 + fabs(e1.elbo)), "elbo %g vs %g", ew.elbo, e1.elbo);
            EXPECT(fabs(ew.ess - e1.ess) <= 1e-6, "ess %g vs %g", ew.ess, e1.ess);
            EXPECT(fabs(ew.mean_ll - e1.mean_ll) <= 1e-6 * (1 + fabs(e1.mean_ll)), "mean ll %g vs %g", ew.mean_ll,
                   e1.mean_ll);
            EXPECT(ew.modes == e1.modes, "modes %d vs %d", ew.modes, e1.modes);
        }
    }
    free(pw);
    free(p1);
    free(lw);
    free(ls1);
}

static void test_exchange(void)
{
    const int d = 3;
    ds_buffer *b = NULL;
    EXPECT(ds_buffer_create(100, d, DS_PRIO_RANK, 1.0, 0.01, &b) == DS_OK, "create");
    /* rank q holds 5 + q entries with log R = 100 q + k and x = (q, k, -k) */
    int mine = 5 + rank;
    for (int k = 0; k < mine; k++) {
        ds_real x[3] = {(ds_real)rank, (ds_real)k, (ds_real)-k}, lr = (ds_real)(100 * rank + k);
        ds_buffer_add(b, 1, x, &lr);
    }
    long got = 0;
    EXPECT(ds_dist_exchange(MPI_COMM_WORLD, b, 3, DS_EXCH_BEST, ds_rng_make(1, DS_RNG_EXCHANGE), 0, &got) == DS_OK,
           "exchange: %s", ds_error_message());
    EXPECT(got == 3L * (size - 1), "received %ld, expected %d", got, 3 * (size - 1));
    EXPECT((long)ds_buffer_size(b) == mine + got, "size %zu", ds_buffer_size(b));
    /* The new entries (after the original ones, in rank order) are each other
     * rank's best 3, best first. */
    size_t i = (size_t)mine;
    for (int q = 0; q < size; q++) {
        if (q == rank) continue;
        for (int k = 0; k < 3; k++, i++) {
            ds_real x[3], lr;
            ds_buffer_get(b, i, x, &lr);
            int want_k = 5 + q - 1 - k;
            EXPECT(x[0] == q && x[1] == want_k && x[2] == -want_k && lr == 100 * q + want_k,
                   "entry %zu: got (%g %g %g; %g), want rank %d's k = %d", i, (double)x[0], (double)x[1],
                   (double)x[2], (double)lr, q, want_k);
        }
    }
    /* random mode sends min(count, size) samples drawn from the shard */
    size_t before = ds_buffer_size(b);
    EXPECT(ds_dist_exchange(MPI_COMM_WORLD, b, 2, DS_EXCH_RANDOM, ds_rng_make(1, DS_RNG_EXCHANGE), 1, &got) ==
           DS_OK, "random exchange");
    EXPECT(got == 2L * (size - 1) && ds_buffer_size(b) == before + (size_t)got, "random exchange received %ld", got);
    ds_buffer_destroy(&b);
}

static void test_reductions(void)
{
    /* Each rank holds a slice of 40 known log-weights; the distributed
     * results must equal the single-process ones on the whole array. */
    double all[40];
    for (int i = 0; i < 40; i++) all[i] = 3.0 * sin(0.7 * i) - (i % 7 == 0 ? 800.0 : 0.0);
    int lo = rank * 40 / size, hi = (rank + 1) * 40 / size;
    double lse = 0;
    EXPECT(ds_dist_logsumexp(MPI_COMM_WORLD, all + lo, hi - lo, &lse) == DS_OK, "lse");
    EXPECT(fabs(lse - ds_logsumexp(all, 40)) < 1e-12, "distributed lse %.15g vs %.15g", lse, ds_logsumexp(all, 40));
    ds_eval_result a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.has_log_z = b.has_log_z = 1;
    EXPECT(ds_dist_eval_weights(MPI_COMM_WORLD, all + lo, hi - lo, &a) == DS_OK, "eval weights");
    EXPECT(ds_dist_eval_weights(MPI_COMM_SELF, all, 40, &b) == DS_OK, "eval weights on one rank");
    EXPECT(fabs(a.elbo - b.elbo) < 1e-12 && fabs(a.log_z_is - b.log_z_is) < 1e-12 && fabs(a.ess - b.ess) < 1e-12,
           "distributed elbo/log_z_is/ess %g %g %g vs %g %g %g", a.elbo, a.log_z_is, a.ess, b.elbo, b.log_z_is, b.ess);
    int any = 0;
    EXPECT(ds_dist_any(MPI_COMM_WORLD, rank == size - 1, &any) == DS_OK && any == 1, "any");
    EXPECT(ds_dist_any(MPI_COMM_WORLD, 0, &any) == DS_OK && any == 0, "none");
}

static void test_check_params(void)
{
    ds_arena a;
    ds_arena_init(&a);
    ds_arena_add(&a, "w", 4, 4, 0, NULL);
    ds_arena_alloc(&a);
    for (size_t i = 0; i < a.n; i++) a.params[i] = (ds_real)(0.25 * i);
    EXPECT(ds_dist_check_params(MPI_COMM_WORLD, &a) == DS_OK, "identical parameters refused");
    if (rank == size - 1) a.params[3] += (ds_real)1e-6;
    ds_status rc = ds_dist_check_params(MPI_COMM_WORLD, &a);
    EXPECT(size == 1 || rc == DS_ERR_NUMERIC, "diverged parameters not detected");
    ds_arena_free(&a);
}

int main(int argc, char **argv)
{
    ds_mpi_io_defaults();
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    test_exchange();
    test_reductions();
    test_check_params();
    /* One iteration: the same trajectories, hence (to float summation order)
     * the same loss and update, whatever the number of ranks. */
    compare_world_and_self("tb", 0, 1, 1e-9, 1e-9);
    compare_world_and_self("vargrad", 0, 1, 1e-9, 1e-9);
    /* 50 iterations, including both-ways training with local search. */
    compare_world_and_self("tb", 0, 50, 1e-6, 1e-6);
    compare_world_and_self("tb", 1, 50, 1e-6, 1e-6);
    compare_world_and_self("subtb", 0, 20, 1e-6, 1e-6);
    /* On-policy objectives: the gradient through the simulated path is
     * summed over the ranks' trajectories like any other. */
    compare_world_and_self("pis", 0, 5, 1e-6, 1e-6);  /* past iteration 0, where zero_init hides dL/dx */
    compare_world_and_self("pis+lp", 0, 5, 1e-6, 1e-6);
    compare_world_and_self("dds", 0, 10, 1e-6, 1e-6);
    compare_world_and_self("dis", 0, 10, 1e-6, 1e-6);
    const int total = mpitest_total();
    if (rank == 0) printf("%s: %d failure(s) over %d ranks\n", total ? "FAILED" : "passed", total, size);
    MPI_Finalize();
    return total ? 1 : 0;
}
