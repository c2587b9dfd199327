#define _POSIX_C_SOURCE 200809L
/* Tests of the training loop: the both-ways and local-search schedule, the
 * exploration schedule, evaluation statistics, and that training actually
 * learns a target with known log Z (a short run on the diagonal Gaussian). */
#include "diffsamp/config.h"
#include "diffsamp/dist.h"
#include "diffsamp/energy.h"
#include "diffsamp/eval.h"
#include "diffsamp/train.h"
#include "testutil.h"

#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

START_TEST(both_ways_and_local_search_schedule)
{
    ds_settings s;
    ds_settings_defaults(&s);
    /* Plain forward training: never backward. */
    for (long it = 0; it < 10; it++) ck_assert(!ds_trainer_is_backward_iteration(&s, it));
    s.both_ways = 1;
    for (long it = 0; it < 10; it++) ck_assert_int_eq(ds_trainer_is_backward_iteration(&s, it), (int)(it % 2));
    ck_assert(!ds_trainer_is_local_search_iteration(&s, 1));
    /* Local search implies both ways and runs where it % cycle == 1 (odd, backward). */
    s.both_ways = 0;
    s.ls_enabled = 1;
    s.ls_cycle = 100;
    long ls = 0;
    for (long it = 0; it < 1000; it++) {
        if (ds_trainer_is_local_search_iteration(&s, it)) {
            ck_assert_int_eq((int)(it % 100), 1);
            ck_assert(ds_trainer_is_backward_iteration(&s, it));
            ls++;
        }
    }
    ck_assert_int_eq((int)ls, 10);
}
END_TEST

START_TEST(exploration_schedule)
{
    ds_settings s;
    ds_settings_defaults(&s);
    s.expl_factor = 0;
    ck_assert(ds_exploration_std(&s, 0) == 0);
    s.expl_factor = 0.1;
    s.expl_schedule = DS_EXPL_CONSTANT;
    ck_assert(ds_exploration_std(&s, 123456) == 0.1);
    s.expl_schedule = DS_EXPL_LINEAR;
    s.expl_decay_iterations = 5000;
    ck_assert_double_eq_tol(ds_exploration_std(&s, 0), 0.1, 1e-15);
    ck_assert_double_eq_tol(ds_exploration_std(&s, 2500), 0.05, 1e-15);
    ck_assert(ds_exploration_std(&s, 5000) == 0);
    ck_assert(ds_exploration_std(&s, 9000) == 0);
}
END_TEST

START_TEST(evaluation_statistics)
{
    /* Equal weights: ESS 1, ELBO = log Z_IS. */
    double lw[4] = {-1, -1, -1, -1};
    ds_eval_result r;
    memset(&r, 0, sizeof r);
    r.has_log_z = 1;
    r.log_z_true = 0.5;
    ck_assert_int_eq(ds_dist_eval_weights(MPI_COMM_SELF, lw, 4, &r), DS_OK);
    ck_assert_double_eq_tol(r.ess, 1.0, 1e-12);
    ck_assert_double_eq_tol(r.elbo, -1.0, 1e-12);
    ck_assert_double_eq_tol(r.log_z_is, -1.0, 1e-12);
    ck_assert_double_eq_tol(r.delta_log_z, 1.5, 1e-12);
    /* One dominant weight of four: ESS -> 1/4; values far from 0 stay finite. */
    double lw2[4] = {1000, -1000, -1000, -1000};
    ck_assert_int_eq(ds_dist_eval_weights(MPI_COMM_SELF, lw2, 4, &r), DS_OK);
    ck_assert_double_eq_tol(r.ess, 0.25, 1e-12);
    ck_assert_double_eq_tol(r.log_z_is, 1000 - log(4.0), 1e-9);
    /* Direct formulas on random weights. */
    double v[50], sw = 0, sw2 = 0, mean = 0;
    for (int i = 0; i < 50; i++) {
        v[i] = sin(1.7 * i) * 3;
        sw += exp(v[i]);
        sw2 += exp(2 * v[i]);
        mean += v[i] / 50;
    }
    ck_assert_int_eq(ds_dist_eval_weights(MPI_COMM_SELF, v, 50, &r), DS_OK);
    ck_assert_double_eq_tol(r.ess, sw * sw / (50 * sw2), 1e-12);
    ck_assert_double_eq_tol(r.log_z_is, log(sw / 50), 1e-12);
    ck_assert_double_eq_tol(r.elbo, mean, 1e-12);
    /* Merging partial log-sum-exps equals the whole (the MPI reduction). */
    ds_lse a, b;
    ds_lse_init(&a);
    ds_lse_init(&b);
    for (int i = 0; i < 20; i++) ds_lse_add(&a, v[i]);
    for (int i = 20; i < 50; i++) ds_lse_add(&b, v[i]);
    ds_lse_merge(&a, &b);
    ck_assert_double_eq_tol(ds_lse_value(&a), ds_logsumexp(v, 50), 1e-12);
    ck_assert(isinf(ds_logsumexp(NULL, 0)));
}
END_TEST

START_TEST(grid_mode_coverage)
{
    /* Points on 3 of the 25 modes (one of them with two points), one far away. */
    ds_real x[10] = {-10, -10, 0.5f, 0.2f, 10, 10, 0, 0.1f, 2.5f, 2.5f};
    ck_assert_int_eq(ds_eval_grid_modes(x, 5, 5, 5.0, 2.0, 1), 3);
    ck_assert_int_eq(ds_eval_grid_modes(x, 5, 5, 5.0, 2.0, 2), 1);
}
END_TEST

static ds_eval_result train_gaussian_bwd(const char *objective, const char *backward, int both_ways, int ls,
                                         long iterations)
{
    ds_settings s;
    ds_settings_defaults(&s);
    snprintf(s.energy_name, sizeof s.energy_name, "gaussian");
    s.energy_dim = 2;
    char set[128];
    snprintf(set, sizeof set, "objective.name=%s", objective);
    ck_assert_int_eq(ds_settings_set(&s, set), DS_OK);
    snprintf(set, sizeof set, "objective.backward=%s", backward);
    ck_assert_int_eq(ds_settings_set(&s, set), DS_OK);
    s.T = 20;
    s.t_scale = 4.0; /* a prior far from the target, so there is something to learn */
    s.batch_size = 64;
    s.iterations = iterations;
    s.both_ways = both_ways;
    s.ls_enabled = ls;
    s.ls_max_iter = 20;
    s.ls_burn_in = 10;
    s.ls_cycle = 10;
    s.eval_samples = 500;
    s.eval_gt_samples = 100;
    s.eval_paths = 4;
    s.eval_every = 1000;
    s.log_every = 1000;
    if (strcmp(objective, "db") == 0 || strcmp(objective, "subtb") == 0) s.conditional_flow = 1;
    snprintf(s.out_dir, sizeof s.out_dir, "/tmp/diffsamp_test_train_%d", (int)getpid());
    ds_trainer *t = NULL;
    ck_assert_msg(ds_trainer_create(&s, MPI_COMM_WORLD, &t) == DS_OK, "%s", ds_error_message());
    ds_eval_result before, after;
    ck_assert_int_eq(ds_trainer_evaluate(t, 1, &before), DS_OK);
    for (long i = 0; i < iterations; i++) {
        double loss;
        ck_assert_msg(ds_trainer_step(t, &loss) == DS_OK, "%s", ds_error_message());
        ck_assert(isfinite(loss));
    }
    ck_assert_int_eq(ds_trainer_iteration(t), iterations);
    ck_assert_int_eq(ds_trainer_evaluate(t, 1, &after), DS_OK);
    printf("%-8s/%-7s both_ways %d ls %d: delta log Z %.3f -> %.3f, ESS %.3f -> %.3f, mean ll %.3f -> %.3f\n", objective,
           backward, both_ways, ls, before.delta_log_z, after.delta_log_z, before.ess, after.ess, before.mean_ll, after.mean_ll);
    ds_trainer_destroy(&t);
    ck_assert(t == NULL);
    /* Learning happened: the ELBO gap shrank a lot and is small. */
    ck_assert_msg(after.delta_log_z < 0.5 * before.delta_log_z, "no progress: %g -> %g", before.delta_log_z,
                  after.delta_log_z);
    ck_assert(after.ess > before.ess);
    ck_assert(after.mean_ll > before.mean_ll);
    return after;
}

static ds_eval_result train_gaussian(const char *objective, int both_ways, int ls, long iterations)
{
    return train_gaussian_bwd(objective, "tb", both_ways, ls, iterations);
}

START_TEST(training_learns_a_gaussian)
{
    ds_eval_result r = train_gaussian("tb", 0, 0, 300);
    ck_assert_msg(r.delta_log_z < 0.2, "TB on a 2-D Gaussian: delta log Z %g", r.delta_log_z);
    ck_assert(fabs(r.log_z_learned - r.log_z_true) < 0.3);
    train_gaussian("vargrad", 0, 0, 300);
    train_gaussian("subtb", 0, 0, 300);
    train_gaussian("tb", 1, 0, 300);
    train_gaussian_bwd("tb", "mle", 1, 0, 300);
    train_gaussian_bwd("vargrad", "vargrad", 1, 0, 300);
    r = train_gaussian("tb", 1, 1, 300);
    ck_assert(r.buffer_ls_size > 0);
    ck_assert(r.ls_acceptance > 0 && r.ls_acceptance <= 1);
}
END_TEST

START_TEST(fail_hook_fails_the_chosen_rank_at_the_chosen_iteration)
{
    ds_settings s;
    ds_settings_defaults(&s);
    s.T = 5;
    s.batch_size = 8;
    s.eval_samples = 8;
    s.eval_gt_samples = 0;
    s.ls_enabled = 0;
    ds_trainer *t = NULL;
    ck_assert_msg(ds_trainer_create(&s, MPI_COMM_SELF, &t) == DS_OK, "%s", ds_error_message());
    double loss;
    /* Off by default and for a rank this communicator does not have. */
    ds_trainer_set_fail_hook(t, 1, 1);
    ck_assert_int_eq(ds_trainer_step(t, &loss), DS_OK);
    ck_assert_int_eq(ds_trainer_step(t, &loss), DS_OK);
    ds_trainer_set_fail_hook(t, 0, 3);
    ck_assert_int_eq(ds_trainer_step(t, &loss), DS_OK);
    ck_assert_int_eq(ds_trainer_step(t, &loss), DS_ERR_INVALID);
    ck_assert_msg(strstr(ds_error_message(), "forced failure of rank 0 at iteration 3"), "%s", ds_error_message());
    ck_assert_int_eq(ds_trainer_iteration(t), 3);
    ds_trainer_set_fail_hook(t, -1, 0);
    ck_assert_int_eq(ds_trainer_step(t, &loss), DS_OK);
    ds_trainer_destroy(&t);
}
END_TEST

/* Energy-call accounting on a known schedule: every count is exact. */
static void check_calls(const char *objective, int lp, int ls, int through)
{
    enum { T = 6, B = 10, N = 24, EN = 30, GT = 4, K = 3, CYCLE = 5, MAXIT = 7 };
    ds_settings s;
    ds_settings_defaults(&s);
    char set[64];
    snprintf(set, sizeof set, "objective.name=%s", objective);
    ck_assert_int_eq(ds_settings_set(&s, set), DS_OK);
    s.T = T;
    s.batch_size = B;
    s.eval_samples = EN;
    s.eval_gt_samples = GT;
    s.eval_paths = K;
    s.langevin = lp;
    s.lp_through_grad = through;
    s.ls_enabled = ls;
    s.ls_cycle = CYCLE;
    s.ls_max_iter = MAXIT;
    s.ls_burn_in = 2;
    ds_trainer *t = NULL;
    ck_assert_msg(ds_trainer_create(&s, MPI_COMM_SELF, &t) == DS_OK, "%s", ds_error_message());
    double loss;
    for (int i = 0; i < N; i++) ck_assert_msg(ds_trainer_step(t, &loss) == DS_OK, "%s", ds_error_message());
    ds_eval_result r;
    ck_assert_int_eq(ds_trainer_evaluate(t, 1, &r), DS_OK);
    const int onp = strcmp(objective, "pis") == 0;
    /* forward iterations: all of them, or the even ones when training both ways */
    const long fwd = ls ? N / 2 : N;
    long rounds = 0;
    /* local search runs on the backward iterations with it % cycle == 1: 1, 11, 21 */
    for (long it = 0; it < N; it++)
        rounds += ds_trainer_is_backward_iteration(&s, it) && ds_trainer_is_local_search_iteration(&s, it);
    ck_assert(!ls || rounds == 3);
    /* log R(x_T) of every forward trajectory (with its gradient on-policy); the backward iterations take
     * log R from the buffer */
    ck_assert_double_eq(r.energy_value[DS_ECALL_TRAIN], (double)fwd * B);
    ck_assert_double_eq(r.energy_grad[DS_ECALL_TRAIN], onp ? (double)fwd * B : 0.0);
    /* LP: grad log R at the T states of every trajectory of every iteration; on-policy also one HVP per
     * state after x_0 */
    ck_assert_double_eq(r.energy_value[DS_ECALL_LP], lp ? (double)N * T * B : 0.0);
    ck_assert_double_eq(r.energy_grad[DS_ECALL_LP], lp ? (double)N * T * B : 0.0);
    ck_assert_double_eq(r.energy_hvp, onp && lp && through ? (double)N * (T - 1) * B : 0.0);
    /* MALA: the start and every proposal, with gradients */
    ck_assert_double_eq(r.energy_value[DS_ECALL_LS], (double)rounds * B * (MAXIT + 1));
    ck_assert_double_eq(r.energy_grad[DS_ECALL_LS], (double)rounds * B * (MAXIT + 1));
    /* evaluation: EN forward samples and GT x K backward paths, each log R at x_T and (LP) at the T states */
    ck_assert_double_eq(r.energy_value[DS_ECALL_EVAL], (double)(EN + GT * K) * (lp ? T + 1 : 1));
    ck_assert_double_eq(r.energy_grad[DS_ECALL_EVAL], lp ? (double)(EN + GT * K) * T : 0.0);
    ds_trainer_destroy(&t);
}

START_TEST(energy_calls_are_counted_exactly)
{
    check_calls("tb", 0, 0, 0);
    check_calls("tb", 1, 1, 0);
    check_calls("vargrad", 0, 1, 0);
    check_calls("pis", 1, 0, 0);
    check_calls("pis", 1, 0, 1);
    check_calls("pis", 0, 0, 0);
}
END_TEST

int main(int argc, char **argv)
{
    ds_mpi_io_defaults();
    MPI_Init(&argc, &argv);
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, both_ways_and_local_search_schedule);
    tcase_add_test(tc, exploration_schedule);
    tcase_add_test(tc, evaluation_statistics);
    tcase_add_test(tc, grid_mode_coverage);
    tcase_add_test(tc, fail_hook_fails_the_chosen_rank_at_the_chosen_iteration);
    tcase_add_test(tc, energy_calls_are_counted_exactly);
    tcase_add_test(tc, training_learns_a_gaussian);
    suite_add_tcase(s, tc);
    int rc = ds_test_run(s);
    MPI_Finalize();
    return rc;
}
