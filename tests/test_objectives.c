/* Tests of the off-policy objectives: each loss against a naive
 * re-implementation of the formulas of DESIGN.md 1 written here (and against
 * hand-computed values on tiny batches), each gradient against central
 * finite differences in double precision, the batch normaliser, VarGrad's
 * log Z override, the refusal of on-policy objectives and the log-weights. */
#include "diffsamp/config.h"
#include "diffsamp/objectives.h"
#include "diffsamp/rng.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(DS_REAL_DOUBLE)
#error "finite-difference tests need ds_real = double (link against diffsamp_core_d)"
#endif

#define FD_H 1e-6

enum { T = 5, B = 4 };

typedef struct batch {
    ds_real pf[T * B], pb[T * B], f[(T + 1) * B];
    double lambda, norm;
    int has_lz;
    double lz;
} batch;

static void randn(ds_real *x, size_t n, uint64_t stream, double scale)
{
    ds_rng r = ds_rng_make(99, DS_RNG_TEST);
    ds_rng_normal_d(r, stream, 0, 0, (int)n, x);
    for (size_t i = 0; i < n; i++) x[i] *= scale;
}

static void batch_init(batch *bt, uint64_t stream)
{
    memset(bt, 0, sizeof *bt);
    randn(bt->pf, T * B, 10 * stream + 1, 1.5);
    randn(bt->pb, T * B, 10 * stream + 2, 1.5);
    for (int b = 0; b < B; b++) bt->pb[b] = 0;  /* x_0 = 0 is certain */
    randn(bt->f, (T + 1) * B, 10 * stream + 3, 2.0);
    bt->lambda = 2.0;
}

static ds_obj_input input_of(const batch *bt)
{
    ds_obj_input in;
    memset(&in, 0, sizeof in);
    in.T = T;
    in.B = B;
    in.log_pf = bt->pf;
    in.log_pb = bt->pb;
    in.log_f = bt->f;
    in.subtb_lambda = bt->lambda;
    in.batch_norm = bt->norm;
    in.vargrad_log_z = bt->has_lz ? &bt->lz : NULL;
    return in;
}

/* ---------------------------------------------------------------- naive losses */

#define PF(i, b) ((double)bt->pf[(i) * B + (b)])
#define PB(i, b) ((double)bt->pb[(i) * B + (b)])
#define F(i, b) ((double)bt->f[(i) * B + (b)])

static double naive_loss(ds_objective kind, const batch *bt)
{
    const double norm = bt->norm > 0 ? bt->norm : B;
    double total = 0;
    switch (kind) {
    case DS_OBJ_TB:
    case DS_OBJ_VARGRAD: {
        double lz = 0;
        if (kind == DS_OBJ_VARGRAD) {
            if (bt->has_lz) {
                lz = bt->lz;
            } else {
                for (int b = 0; b < B; b++) {
                    double w = F(T, b);
                    for (int i = 0; i < T; i++) w += PB(i, b) - PF(i, b);
                    lz += w / B;
                }
            }
        }
        for (int b = 0; b < B; b++) {
            double s = (kind == DS_OBJ_TB ? F(0, b) : lz) - F(T, b);
            for (int i = 0; i < T; i++) s += PF(i, b) - PB(i, b);
            total += 0.5 * s * s;
        }
        return total / norm;
    }
    case DS_OBJ_DB:
        for (int b = 0; b < B; b++)
            for (int i = 0; i < T; i++) {
                double s = PF(i, b) + F(i, b) - PB(i, b) - F(i + 1, b);
                total += 0.5 * s * s;
            }
        return total / norm;
    case DS_OBJ_SUBTB:
    case DS_OBJ_FLSUBTB: {
        double z = 0;
        for (int i = 0; i < T; i++)
            for (int j = i + 1; j <= T; j++) z += pow(bt->lambda, j - i);
        for (int b = 0; b < B; b++)
            for (int i = 0; i < T; i++)
                for (int j = i + 1; j <= T; j++) {
                    double s = F(i, b) - F(j, b);
                    for (int k = i; k < j; k++) s += PF(k, b) - PB(k, b);
                    total += pow(bt->lambda, j - i) / z * s * s;
                }
        return total;  /* a sum over the batch */
    }
    case DS_OBJ_MLE:
        for (int b = 0; b < B; b++)
            for (int i = 0; i < T; i++) total -= PF(i, b);
        return total / norm;
    default: break;
    }
    ck_abort_msg("naive_loss: objective %d", (int)kind);
    return NAN;
}

static double eval_loss(ds_objective kind, const batch *bt, ds_real *d_pf, ds_real *d_f)
{
    ds_real dpf_[T * B], df_[(T + 1) * B];
    ds_obj_input in = input_of(bt);
    double loss = NAN;
    ds_status rc = ds_objective_eval(kind, &in, &loss, d_pf ? d_pf : dpf_, d_f ? d_f : df_);
    ck_assert_msg(rc == DS_OK, "%s: %s", ds_objective_name(kind), ds_error_message());
    return loss;
}

static void expect_close(const char *what, const double *got, const double *want, size_t n, double atol,
                         double rtol)
{
    size_t at = 0;
    double worst = ds_test_max_err_at(got, want, n, atol, rtol, &at);
    ck_assert_msg(worst <= 1.0, "%s: element %zu (step %zu, trajectory %zu) is %.12g, expected %.12g", what, at,
                  at / B, at % B, got[at], want[at]);
}

static double max_abs(const double *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

/* Loss against the naive formula; d_log_pf and d_log_f (rows 0..T-1) against
 * central differences; row T of d_log_f is 0; outputs are written, not added. */
static void check_objective(ds_objective kind, batch *bt, const char *label)
{
    ds_real d_pf[T * B], d_f[(T + 1) * B];
    for (int k = 0; k < T * B; k++) d_pf[k] = 1e3;  /* garbage the call must overwrite */
    for (int k = 0; k < (T + 1) * B; k++) d_f[k] = -1e3;
    double loss = eval_loss(kind, bt, d_pf, d_f);
    double want = naive_loss(kind, bt);
    ck_assert_msg(fabs(loss - want) <= 1e-12 * (1 + fabs(want)), "%s %s: loss %.15g, naive %.15g",
                  ds_objective_name(kind), label, loss, want);
    ck_assert(loss > 0 || kind == DS_OBJ_MLE);

    ds_real fd_pf[T * B], fd_f[(T + 1) * B];
    for (int k = 0; k < T * B; k++) {
        ds_real keep = bt->pf[k];
        bt->pf[k] = keep + FD_H;
        double lp = eval_loss(kind, bt, NULL, NULL);
        bt->pf[k] = keep - FD_H;
        double lm = eval_loss(kind, bt, NULL, NULL);
        bt->pf[k] = keep;
        fd_pf[k] = (lp - lm) / (2 * FD_H);
    }
    for (int k = 0; k < T * B; k++) {
        ds_real keep = bt->f[k];
        bt->f[k] = keep + FD_H;
        double lp = eval_loss(kind, bt, NULL, NULL);
        bt->f[k] = keep - FD_H;
        double lm = eval_loss(kind, bt, NULL, NULL);
        bt->f[k] = keep;
        fd_f[k] = (lp - lm) / (2 * FD_H);
    }
    char what[128];
    snprintf(what, sizeof what, "%s %s: d loss / d log_pf", ds_objective_name(kind), label);
    expect_close(what, d_pf, fd_pf, T * B, 1e-8, 1e-6);
    snprintf(what, sizeof what, "%s %s: d loss / d log_f", ds_objective_name(kind), label);
    expect_close(what, d_f, fd_f, T * B, 1e-8, 1e-6);
    for (int b = 0; b < B; b++) ck_assert_msg(d_f[T * B + b] == 0, "%s: d log R is not 0", what);
    ck_assert_msg(max_abs(d_pf, T * B) > 1e-6, "%s %s: zero gradient", ds_objective_name(kind), label);
    if (kind != DS_OBJ_MLE)
        ck_assert_msg(kind == DS_OBJ_VARGRAD || max_abs(d_f, T * B) > 1e-6, "%s %s: zero log F gradient",
                      ds_objective_name(kind), label);
}

static const ds_objective kinds[] = {DS_OBJ_TB, DS_OBJ_VARGRAD, DS_OBJ_DB, DS_OBJ_SUBTB, DS_OBJ_FLSUBTB, DS_OBJ_MLE};
enum { NKINDS = sizeof kinds / sizeof kinds[0] };

START_TEST(loss_and_gradients)
{
    batch bt;
    batch_init(&bt, 1 + (uint64_t)_i);
    check_objective(kinds[_i], &bt, "lambda 2");
    bt.lambda = 0.7;
    batch_init(&bt, 11 + (uint64_t)_i);
    bt.lambda = 0.7;
    check_objective(kinds[_i], &bt, "lambda 0.7");
}
END_TEST

START_TEST(hand_computed_values)
{
    /* T = 2, B = 1: log F_0 = 1, log p_F = (0.5, -0.25), log p_B = (0, 0.5), log F_1 = 0.3, log R = 0.2. */
    const ds_real pf[2] = {0.5, -0.25}, pb[2] = {0, 0.5}, f[3] = {1.0, 0.3, 0.2};
    ds_obj_input in;
    memset(&in, 0, sizeof in);
    in.T = 2;
    in.B = 1;
    in.log_pf = pf;
    in.log_pb = pb;
    in.log_f = f;
    in.subtb_lambda = 2.0;
    ds_real d_pf[2], d_f[3];
    double loss = NAN;
    /* TB: delta = 1 + 0.25 - 0.5 - 0.2 = 0.55. */
    ck_assert_int_eq(ds_objective_eval(DS_OBJ_TB, &in, &loss, d_pf, d_f), DS_OK);
    ck_assert_double_eq_tol(loss, 0.5 * 0.55 * 0.55, 1e-15);
    ck_assert_double_eq_tol(d_pf[0], 0.55, 1e-15);
    ck_assert_double_eq_tol(d_f[0], 0.55, 1e-15);
    ck_assert(d_f[1] == 0 && d_f[2] == 0);
    /* VarGrad with one trajectory: log Z hat makes delta 0. */
    ck_assert_int_eq(ds_objective_eval(DS_OBJ_VARGRAD, &in, &loss, d_pf, d_f), DS_OK);
    ck_assert_double_eq_tol(loss, 0.0, 1e-15);
    /* DB: (0.5 + 1 - 0 - 0.3) = 1.2, (-0.25 + 0.3 - 0.5 - 0.2) = -0.65. */
    ck_assert_int_eq(ds_objective_eval(DS_OBJ_DB, &in, &loss, d_pf, d_f), DS_OK);
    ck_assert_double_eq_tol(loss, 0.5 * (1.2 * 1.2 + 0.65 * 0.65), 1e-15);
    ck_assert_double_eq_tol(d_f[1], -1.2 - 0.65, 1e-15);
    /* SubTB: pairs (0,1) w 2/8, (1,2) w 2/8, (0,2) w 4/8 with deltas 1.2, -0.65, 0.55. */
    ck_assert_int_eq(ds_objective_eval(DS_OBJ_SUBTB, &in, &loss, d_pf, d_f), DS_OK);
    ck_assert_double_eq_tol(loss, 0.25 * 1.44 + 0.25 * 0.4225 + 0.5 * 0.3025, 1e-15);
    /* MLE: -(0.5 - 0.25). */
    ck_assert_int_eq(ds_objective_eval(DS_OBJ_MLE, &in, &loss, d_pf, d_f), DS_OK);
    ck_assert_double_eq_tol(loss, -0.25, 1e-15);
    ck_assert_double_eq_tol(d_pf[1], -1.0, 1e-15);
}
END_TEST

START_TEST(batch_norm_scales_means_not_subtb)
{
    batch bt;
    batch_init(&bt, 30);
    for (int k = 0; k < NKINDS; k++) {
        ds_objective kind = kinds[k];
        ds_real dpf0[T * B], df0[(T + 1) * B], dpf1[T * B], df1[(T + 1) * B];
        bt.norm = 0;
        double l0 = eval_loss(kind, &bt, dpf0, df0);
        bt.norm = 10.0;
        double l1 = eval_loss(kind, &bt, dpf1, df1);
        const int is_sum = kind == DS_OBJ_SUBTB || kind == DS_OBJ_FLSUBTB;
        const double scale = is_sum ? 1.0 : (double)B / 10.0;
        ck_assert_msg(fabs(l1 - scale * l0) <= 1e-13 * fabs(l0), "%s: loss %g with norm 10, %g with B",
                      ds_objective_name(kind), l1, l0);
        for (int i = 0; i < T * B; i++) ck_assert(fabs(dpf1[i] - scale * dpf0[i]) <= 1e-13 * (1 + fabs(dpf0[i])));
        for (int i = 0; i < (T + 1) * B; i++) ck_assert(fabs(df1[i] - scale * df0[i]) <= 1e-13 * (1 + fabs(df0[i])));
        ck_assert(fabs(l1 - naive_loss(kind, &bt)) <= 1e-12 * (1 + fabs(l1)));
        check_objective(kind, &bt, "batch_norm 10");
    }
}
END_TEST

START_TEST(vargrad_log_z_override)
{
    batch bt;
    batch_init(&bt, 40);
    ds_obj_input in = input_of(&bt);
    double lw[B], mean = 0;
    ds_objective_log_weights(&in, lw);
    for (int b = 0; b < B; b++) mean += lw[b] / B;
    /* Passing the batch mean reproduces the default exactly. */
    double l_default = eval_loss(DS_OBJ_VARGRAD, &bt, NULL, NULL);
    bt.has_lz = 1;
    bt.lz = mean;
    ck_assert_double_eq_tol(eval_loss(DS_OBJ_VARGRAD, &bt, NULL, NULL), l_default, 1e-12 * (1 + l_default));
    /* Another log Z (the global estimate under MPI) is used as given and held fixed. */
    bt.lz = mean + 0.8;
    double l_shift = eval_loss(DS_OBJ_VARGRAD, &bt, NULL, NULL);
    ck_assert_double_eq_tol(l_shift, l_default + 0.5 * 0.8 * 0.8, 1e-12 * (1 + l_shift));
    check_objective(DS_OBJ_VARGRAD, &bt, "log Z override");
    bt.norm = 16;
    check_objective(DS_OBJ_VARGRAD, &bt, "log Z override, batch_norm 16");
}
END_TEST

START_TEST(on_policy_objectives_refused)
{
    batch bt;
    batch_init(&bt, 50);
    ds_obj_input in = input_of(&bt);
    ds_real d_pf[T * B], d_f[(T + 1) * B];
    double loss = 0;
    const ds_objective bad[] = {DS_OBJ_PIS, DS_OBJ_DDS, DS_OBJ_DIS};
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(ds_objective_eval(bad[k], &in, &loss, d_pf, d_f), DS_ERR_INVALID);
        ck_assert_ptr_nonnull(strstr(ds_error_message(), ds_objective_name(bad[k])));
    }
    in.subtb_lambda = 0;
    ck_assert_int_eq(ds_objective_eval(DS_OBJ_SUBTB, &in, &loss, d_pf, d_f), DS_ERR_INVALID);
    in.subtb_lambda = 2;
    in.B = 0;
    ck_assert_int_eq(ds_objective_eval(DS_OBJ_TB, &in, &loss, d_pf, d_f), DS_ERR_INVALID);
    ds_error_clear();
}
END_TEST

START_TEST(log_weights)
{
    batch store;
    batch *bt = &store;  /* the PF/PB/F macros read through bt */
    batch_init(bt, 60);
    ds_obj_input in = input_of(bt);
    double lw[B];
    ds_objective_log_weights(&in, lw);
    for (int b = 0; b < B; b++) {
        double want = F(T, b);
        for (int i = 0; i < T; i++) want += PB(i, b) - PF(i, b);
        ck_assert_double_eq_tol(lw[b], want, 1e-13);
    }
    /* TB's per-trajectory delta is log F_0 - log w. */
    ds_real d_pf[T * B], d_f[(T + 1) * B];
    eval_loss(DS_OBJ_TB, bt, d_pf, d_f);
    for (int b = 0; b < B; b++) ck_assert_double_eq_tol(d_pf[b] * B, F(0, b) - lw[b], 1e-12);
}
END_TEST

/* The table: names round-trip, every kind has one entry in enum order, and
 * the properties the config reader and the trainer rely on hold. */
START_TEST(objective_table)
{
    for (int k = 0; k < DS_OBJ_COUNT; k++) {
        const ds_objective_info *o = ds_objective_info_of((ds_objective)k);
        ck_assert_ptr_nonnull(o);
        ck_assert_int_eq(o->kind, k);
        ck_assert_ptr_eq(ds_objective_lookup(o->name), o);
        ck_assert_str_eq(ds_objective_name((ds_objective)k), o->name);
        ck_assert(o->flags & (DS_OBJF_FORWARD | DS_OBJF_BACKWARD));
        /* on-policy objectives never train on buffer samples */
        ck_assert(!(o->flags & DS_OBJF_ON_POLICY) || !(o->flags & DS_OBJF_BACKWARD));
        /* a partial energy lives in the flow network */
        ck_assert(!(o->flags & DS_OBJF_PARTIAL_ENERGY) || (o->flags & DS_OBJF_FLOW));
    }
    ck_assert_ptr_null(ds_objective_info_of(DS_OBJ_COUNT));
    ck_assert_ptr_null(ds_objective_info_of((ds_objective)-1));
    ck_assert_ptr_null(ds_objective_lookup("TB"));
    ck_assert_ptr_null(ds_objective_lookup(NULL));
    ck_assert_str_eq(ds_objective_name(DS_OBJ_COUNT), "unknown");
    ck_assert(ds_objective_has(DS_OBJ_MLE, DS_OBJF_BACKWARD) && !ds_objective_has(DS_OBJ_MLE, DS_OBJF_FORWARD));
    ck_assert(ds_objective_has(DS_OBJ_DB, DS_OBJF_FLOW) && !ds_objective_has(DS_OBJ_TB, DS_OBJF_FLOW));
    ck_assert(!ds_objective_has(DS_OBJ_VARGRAD, DS_OBJF_LEARNS_LOG_Z));
    char buf[128];
    ds_objective_list(DS_OBJF_FORWARD, buf, sizeof buf);
    ck_assert_str_eq(buf, "tb, vargrad, db, subtb, fl-subtb, pis, dds, dis");
    ds_objective_list(DS_OBJF_BACKWARD, buf, sizeof buf);
    ck_assert_str_eq(buf, "tb, vargrad, mle");
    ds_objective_list(DS_OBJF_FORWARD, buf, 8); /* truncated, still terminated */
    ck_assert_uint_lt(strlen(buf), 8);
    /* every implemented off-policy objective is evaluated by ds_objective_eval, the rest refused */
    batch bt;
    batch_init(&bt, 70);
    ds_obj_input in = input_of(&bt);
    ds_real d_pf[T * B], d_f[(T + 1) * B];
    double loss;
    for (int k = 0; k < DS_OBJ_COUNT; k++)
        ck_assert_int_eq(ds_objective_eval((ds_objective)k, &in, &loss, d_pf, d_f) == DS_OK,
                         ds_objective_has((ds_objective)k, DS_OBJF_IMPLEMENTED) &&
                             !ds_objective_has((ds_objective)k, DS_OBJF_ON_POLICY));
    /* the reference process each trains against */
    ck_assert_int_eq(ds_objective_info_of(DS_OBJ_TB)->reference, DS_REF_BROWNIAN);
    ck_assert_int_eq(ds_objective_info_of(DS_OBJ_PIS)->reference, DS_REF_BROWNIAN);
    ck_assert_int_eq(ds_objective_info_of(DS_OBJ_DDS)->reference, DS_REF_VP);
    ck_assert_int_eq(ds_objective_info_of(DS_OBJ_DIS)->reference, DS_REF_VP_EM);
    ds_error_clear();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("objectives");
    TCase *tc = tcase_create("objectives");
    tcase_add_loop_test(tc, loss_and_gradients, 0, NKINDS);
    tcase_add_test(tc, hand_computed_values);
    tcase_add_test(tc, batch_norm_scales_means_not_subtb);
    tcase_add_test(tc, vargrad_log_z_override);
    tcase_add_test(tc, on_policy_objectives_refused);
    tcase_add_test(tc, log_weights);
    tcase_add_test(tc, objective_table);
    suite_add_tcase(s, tc);
    return ds_test_run(s);
}
