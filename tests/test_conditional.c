/* Tests of the conditional sampler: the per-condition VarGrad objective
 * against finite differences; the gradient of conditional TB and VarGrad
 * through the conditional policy (state encoder of [x, c], log Z(c), LP)
 * against central finite differences of the loss in every tensor, on a
 * conditional Gaussian target built here; the per-image metrics; and, with
 * the pretrained MNIST VAE of ../shared, that a short conditional run gives
 * different images different log Z(x) (skipped when ../shared is absent). */
#include "diffsamp/conditional.h"
#include "diffsamp/config.h"
#include "diffsamp/energy.h"
#include "diffsamp/eval.h"
#include "diffsamp/idx.h"
#include "diffsamp/sampler.h"
#include "diffsamp/train.h"
#include "testutil.h"

#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* log R(x | c) = -1/2 sum_j (x_j - m_j)^2 / s_j^2, m_j = c_j + 0.5 c_{j+1}, s_j = 1 + 0.3 c_{j+2}^2: a target
 * whose mean and scale both depend on the condition (cond_dim = dim + 2). */
static ds_status cg_check(int dim) { return dim >= 1 ? DS_OK : DS_ERR_CONFIG; }
static ds_status cg_create(int dim, const ds_energy_args *a, void **st)
{
    (void)dim;
    (void)a;
    *st = NULL;
    return DS_OK;
}
static void cg_destroy(void *st) { (void)st; }
static ds_status cg_log_reward(const void *st, int dim, int n, const ds_real *x, const ds_real *c, ds_real *lr,
                               ds_real *g)
{
    (void)st;
    const int C = dim + 2;
    for (int k = 0; k < n; k++) {
        double acc = 0;
        for (int j = 0; j < dim; j++) {
            const ds_real *ck = c + (size_t)k * C;
            double m = ck[j] + 0.5 * ck[j + 1], s = 1 + 0.3 * ck[j + 2] * ck[j + 2];
            double z = (x[(size_t)k * dim + j] - m) / s;
            acc += z * z;
            if (g) g[(size_t)k * dim + j] = (ds_real)(-z / s);
        }
        lr[k] = (ds_real)(-0.5 * acc);
    }
    return DS_OK;
}
static const ds_energy_vtable cgauss = {
    .abi_version = DS_ENERGY_ABI_VERSION, .name = "cgauss", .doc = "test", .default_dim = 2, .dims = "any",
    .cond_dim = 4, .check_dim = cg_check, .create = cg_create, .destroy = cg_destroy, .log_reward = cg_log_reward};

/* The same target seen as unconditional with the conditions of the chains
 * bound in (row k of every call is chain k), for ds_ls_run. */
static const ds_real *bound_cond;
static ds_status view_log_reward(const void *st, int dim, int n, const ds_real *x, const ds_real *c, ds_real *lr,
                                 ds_real *g)
{
    (void)c;
    return cg_log_reward(st, dim, n, x, bound_cond, lr, g);
}
static const ds_energy_vtable cview = {
    .abi_version = DS_ENERGY_ABI_VERSION, .name = "cview", .doc = "test", .default_dim = 2, .dims = "any",
    .check_dim = cg_check, .create = cg_create, .destroy = cg_destroy, .log_reward = view_log_reward};

START_TEST(conditional_local_search_is_ds_ls_run_per_condition)
{
    enum { N = 5, D = 2, C = 4 };
    ds_energy *e = NULL, *v = NULL;
    ck_assert_int_eq(ds_energy_create_from(&cgauss, D, NULL, &e), DS_OK);
    ck_assert_int_eq(ds_energy_create_from(&cview, D, NULL, &v), DS_OK);
    ds_real cond[N * C], x1[N * D], x2[N * D];
    int32_t idx[N];
    for (int i = 0; i < N * C; i++) cond[i] = (ds_real)(1.5 * sin(0.9 * i));
    for (int i = 0; i < N * D; i++) x1[i] = x2[i] = (ds_real)(0.3 * cos(1.1 * i));
    for (int k = 0; k < N; k++) idx[k] = 100 + 7 * k;
    bound_cond = cond;
    ds_ls_params p;
    ds_ls_params_init(&p);
    p.max_iter = 30;
    p.burn_in = 10;
    p.step = 0.05;
    ds_buffer *b1 = NULL, *b2 = NULL;
    ck_assert_int_eq(ds_buffer_create(1000, D, DS_PRIO_UNIFORM, 1, 0.01, &b1), DS_OK);
    ck_assert_int_eq(ds_buffer_create(1000, D + 1, DS_PRIO_UNIFORM, 1, 0.01, &b2), DS_OK);
    ds_ls_stats s1, s2;
    ds_rng r = ds_rng_make(4, DS_RNG_LOCAL_SEARCH);
    ck_assert_int_eq(ds_ls_run(v, &p, r, 3, 10, N, x1, b1, &s1), DS_OK);
    ck_assert_int_eq(ds_ls_run_cond(e, &p, r, 3, 10, N, x2, cond, idx, b2, &s2), DS_OK);
    for (int i = 0; i < N * D; i++) ck_assert(x1[i] == x2[i]);
    ck_assert(s1.added == s2.added && s1.added > 0 && s1.final_step == s2.final_step &&
              s1.acceptance == s2.acceptance);
    ck_assert_uint_eq(ds_buffer_size(b1), ds_buffer_size(b2));
    /* every collected row carries its chain's image index; chain k's rows have log R under condition k */
    for (size_t i = 0; i < ds_buffer_size(b2); i++) {
        ds_real a[D], row[D + 1], l1, l2;
        ds_buffer_get(b1, i, a, &l1);
        ds_buffer_get(b2, i, row, &l2);
        ck_assert(a[0] == row[0] && a[1] == row[1] && l1 == l2);
        const int k = ((int)row[D] - 100) / 7;
        ck_assert(k >= 0 && k < N && (int)row[D] == 100 + 7 * k);
        ds_real lr;
        ck_assert_int_eq(ds_energy_log_reward_cond(e, 1, row, cond + k * C, &lr, NULL), DS_OK);
        ck_assert(lr == l2);
    }
    ck_assert_int_eq(ds_ls_run_cond(e, &p, r, 3, 10, N, x2, cond, idx, b1, &s2), DS_ERR_INVALID);
    ds_error_clear();
    ds_buffer_destroy(&b1);
    ds_buffer_destroy(&b2);
    ds_energy_destroy(&e);
    ds_energy_destroy(&v);
}
END_TEST

START_TEST(conditional_vargrad_against_finite_differences)
{
    enum { T = 3, B = 6, K = 3 };
    ds_real pf[T * B], pb[T * B], f[(T + 1) * B], dpf[T * B], df[(T + 1) * B];
    for (int i = 0; i < T * B; i++) {
        pf[i] = (ds_real)(0.3 * sin(1.7 * i));
        pb[i] = (ds_real)(0.2 * cos(0.9 * i));
    }
    for (int i = 0; i < (T + 1) * B; i++) f[i] = (ds_real)(i >= T * B ? -2.0 + 0.7 * (i % 5) : 0.1 * i);
    ds_obj_input in = {.T = T, .B = B, .log_pf = pf, .log_pb = pb, .log_f = f, .batch_norm = 10};
    double loss;
    ck_assert_int_eq(ds_cond_vargrad(&in, K, &loss, dpf, df), DS_OK);
    ck_assert(loss > 0);
    const double h = 1e-6;
    for (int i = 0; i < T * B; i++) {
        ds_real keep = pf[i];
        double lp, lm;
        pf[i] = keep + (ds_real)h;
        ds_cond_vargrad(&in, K, &lp, dpf + 0, df);
        pf[i] = keep - (ds_real)h;
        ds_cond_vargrad(&in, K, &lm, dpf + 0, df);
        pf[i] = keep;
        double an[T * B];
        ds_real d2[T * B], f2[(T + 1) * B];
        double l0;
        ds_cond_vargrad(&in, K, &l0, d2, f2);
        for (int j = 0; j < T * B; j++) an[j] = (double)d2[j];
        double fd = (lp - lm) / (2 * h);
        ck_assert_msg(fabs(fd - an[i]) < 1e-7, "d loss / d log_pf[%d]: %.10g vs fd %.10g", i, an[i], fd);
    }
    for (int i = 0; i < (T + 1) * B; i++) ck_assert(df[i] == 0);
    /* The baseline is per condition: a constant added to one condition's
     * log-weights leaves the loss unchanged; the global one would not. */
    for (int i = 0; i < K; i++) f[T * B + i] += (ds_real)5.0;
    double l2;
    ds_cond_vargrad(&in, K, &l2, dpf, df);
    ck_assert(fabs(l2 - loss) < 1e-9);
    ck_assert_int_eq(ds_cond_vargrad(&in, 4, &l2, dpf, df), DS_ERR_INVALID);
    ds_error_clear();
}
END_TEST

/* Loss of the objective on the stored states under the current parameters. */
static double score_loss(ds_sim *sim, ds_traj *tr, int B, int vargrad, int K, ds_real *dpf, ds_real *df)
{
    ck_assert_int_eq(ds_sim_score(sim, tr, B, tr->log_r), DS_OK);
    ds_obj_input in = {.T = tr->T, .B = B, .log_pf = tr->log_pf, .log_pb = tr->log_pb, .log_f = tr->log_f,
                       .batch_norm = (double)B};
    double loss = 0;
    if (vargrad) ck_assert_int_eq(ds_cond_vargrad(&in, K, &loss, dpf, df), DS_OK);
    else ck_assert_int_eq(ds_objective_eval(DS_OBJ_TB, &in, &loss, dpf, df), DS_OK);
    return loss;
}

static void check_policy_gradient(int vargrad, int lp)
{
    enum { T = 4, B = 6, K = 3, D = 2, C = 4 };
    ds_energy *e = NULL;
    ck_assert_int_eq(ds_energy_create_from(&cgauss, D, NULL, &e), DS_OK);
    ds_policy_config pc = {.dim = D, .hidden = 6, .harmonics = 3, .joint_layers = 1, .lgv_layers = 1,
                           .langevin = lp, .lgv_per_dim = 1, .learned_variance = 1, .log_var_range = 4,
                           .lgv_clip = 1e2, .gfn_clip = 1e4, .zero_init = 0, .cond_dim = C, .cond_layers = 1};
    ds_policy *p = NULL;
    ck_assert_int_eq(ds_policy_create(&pc, T, T * B, 11, &p), DS_OK);
    ck_assert(p->cond != NULL);
    ck_assert(ds_arena_find(&p->arena, "s_model.x_model.0.weight") >= 0);
    ck_assert(ds_arena_find(&p->arena, "s_model.x_model.2.0.weight") >= 0);
    ck_assert(ds_arena_find(&p->arena, "s_model.x_model.3.weight") >= 0);
    ck_assert(ds_arena_find(&p->arena, "flow_model.model.2.weight") >= 0);
    ck_assert(ds_arena_find(&p->arena, "s_model.x_model.weight") < 0);
    ds_reference ref;
    ck_assert_int_eq(ds_reference_init_brownian(&ref, T, 1.0), DS_OK);
    ds_real cond[B * C];
    for (int b = 0; b < B; b++)
        for (int j = 0; j < C; j++) cond[b * C + j] = (ds_real)(0.4 * sin(1.3 * (b / K) + 0.7 * j + 0.2));
    ds_sim sim = {.policy = p, .energy = e, .ref = &ref, .cond = cond};
    ds_traj tr;
    ck_assert_int_eq(ds_traj_init(&tr, T, B, D, lp, 0, 0), DS_OK);
    ck_assert_int_eq(ds_sim_forward(&sim, &tr, B, 0.3, ds_rng_make(5, DS_RNG_TEST), 0, 0, NULL), DS_OK);
    /* log Z(c) is the same for the K rows of one condition and differs between conditions */
    ck_assert(tr.log_f[0] == tr.log_f[1] && tr.log_f[0] != tr.log_f[K]);
    ds_real dpf[T * B], df[(T + 1) * B];
    score_loss(&sim, &tr, B, vargrad, K, dpf, df);
    ds_arena_zero_grad(&p->arena);
    ck_assert_int_eq(ds_sim_backprop(&sim, &tr, B, dpf, df), DS_OK);
    ds_real *grad = malloc(sizeof(ds_real) * p->arena.n);
    memcpy(grad, p->arena.grads, sizeof(ds_real) * p->arena.n);
    const double h = 1e-6;
    int checked = 0;
    for (int ti = 0; ti < p->arena.ntensors; ti++) {
        const ds_tensor_info *inf = &p->arena.tensors[ti];
        const size_t n = (size_t)inf->rows * inf->cols;
        /* every element of the small tensors, a spread of the others */
        for (size_t k = 0; k < n; k += n > 12 ? n / 7 + 1 : 1) {
            const size_t i = inf->offset + k;
            ds_real keep = p->arena.params[i];
            p->arena.params[i] = keep + (ds_real)h;
            double lp_ = score_loss(&sim, &tr, B, vargrad, K, dpf, df);
            p->arena.params[i] = keep - (ds_real)h;
            double lm = score_loss(&sim, &tr, B, vargrad, K, dpf, df);
            p->arena.params[i] = keep;
            double fd = (lp_ - lm) / (2 * h);
            ck_assert_msg(fabs(fd - (double)grad[i]) < 1e-6 * (1 + fabs(fd)),
                          "%s %s element %zu: gradient %.10g, finite difference %.10g", vargrad ? "vargrad" : "tb",
                          inf->name, k, (double)grad[i], fd);
            checked++;
        }
    }
    ck_assert(checked > 50);
    /* VarGrad leaves log Z(c) alone; TB trains it */
    const int fw = ds_arena_find(&p->arena, "flow_model.model.2.weight");
    double gz = 0;
    for (int k = 0; k < 6; k++) gz += fabs((double)grad[p->arena.tensors[fw].offset + k]);
    ck_assert(vargrad ? gz == 0 : gz > 0);
    free(grad);
    ds_traj_free(&tr);
    ds_reference_free(&ref);
    ds_policy_destroy(&p);
    ds_energy_destroy(&e);
}

START_TEST(conditional_tb_gradient_against_finite_differences) { check_policy_gradient(0, 0); check_policy_gradient(0, 1); }
END_TEST
START_TEST(conditional_vargrad_gradient_against_finite_differences) { check_policy_gradient(1, 1); }
END_TEST

START_TEST(per_image_metrics)
{
    /* 2 images x 3 samples */
    const double lw[6] = {-10, -11, -12, -100, -101, -99};
    double se, si, ess, mx, sm;
    ds_cond_image_metrics(lw, 2, 3, &se, &si, &ess, &mx, &sm);
    ck_assert(fabs(se - (-11.0 - 100.0)) < 1e-12);
    ck_assert(fabs(si - (ds_logmeanexp(lw, 3) + ds_logmeanexp(lw + 3, 3))) < 1e-12);
    /* each image's ESS of its own weights: both images have weights 1, e^-1, e^-2 relative to their best */
    const double w1 = exp(-1.0), w2 = exp(-2.0);
    const double one = (1 + w1 + w2) * (1 + w1 + w2) / (3 * (1 + w1 * w1 + w2 * w2));
    ck_assert(fabs(ess - 2 * one) < 1e-12);
    /* equal weights give ESS 1; one finite weight among -inf ones gives 1/K; a NaN weight gives NaN */
    const double flat[3] = {-5, -5, -5}, lone[3] = {-5, -INFINITY, -INFINITY}, bad[3] = {-5, NAN, -4};
    ds_cond_image_metrics(flat, 1, 3, &se, &si, &ess, &mx, &sm);
    ck_assert(fabs(ess - 1.0) < 1e-15);
    ds_cond_image_metrics(lone, 1, 3, &se, &si, &ess, &mx, &sm);
    ck_assert(fabs(ess - 1.0 / 3) < 1e-15);
    ds_cond_image_metrics(bad, 1, 3, &se, &si, &ess, &mx, &sm);
    ck_assert(isnan(ess));
    ds_cond_image_metrics(lw, 2, 3, &se, &si, &ess, &mx, &sm);
    /* the cross-image number is dominated by the best image: far above the mean of the per-image values */
    ds_lse a = {mx, sm};
    double rw = ds_lse_value(&a) - log(6.0);
    ck_assert(fabs(rw - ds_logmeanexp(lw, 6)) < 1e-12);
    ck_assert(rw > si / 2 + 40);
}
END_TEST

/* log Z(x) of images x (n, 784) from the trainer's policy at t = 0. */
static void log_z_of(ds_trainer *t, const ds_settings *s, const ds_real *x, int n, double *out)
{
    ds_policy *p = ds_trainer_policy(t);
    ds_reference ref;
    ck_assert_int_eq(ds_reference_init_brownian(&ref, s->T, s->t_scale), DS_OK);
    ck_assert_int_eq(ds_policy_begin(p, s->T, n, ref.step), DS_OK);
    ck_assert_int_eq(ds_policy_set_condition(p, x), DS_OK);
    ds_real *z0 = calloc((size_t)n * 20, sizeof *z0);
    ck_assert_int_eq(ds_policy_forward(p, 0, 1, z0, NULL), DS_OK);
    for (int i = 0; i < n; i++) out[i] = (double)p->logf[i];
    free(z0);
    ds_reference_free(&ref);
}

START_TEST(conditioning_is_real)
{
    const char *vf = ds_test_shared_file("data/mnist/vae_bce_mnist_100ep.h5");
    if (!vf) return;
    char vpath[1024];
    snprintf(vpath, sizeof vpath, "%s", vf);
    const char *img = ds_test_shared_file("data/mnist/t10k-images-idx3-ubyte.gz");
    if (!img) return;
    ds_settings s;
    ds_settings_defaults(&s);
    char set[1200];
    ck_assert_int_eq(ds_settings_set(&s, "energy.name=vae"), DS_OK);
    snprintf(set, sizeof set, "energy.file=%s", vpath);
    ck_assert_int_eq(ds_settings_set(&s, set), DS_OK);
    snprintf(set, sizeof set, "condition.images=%s", img);
    ck_assert_int_eq(ds_settings_set(&s, set), DS_OK);
    ck_assert_int_eq(ds_settings_set(&s, "objective.name=tb"), DS_OK);
    s.T = 10;
    s.t_scale = 1.0;
    s.batch_size = 16;
    s.cond_repeats = 1;
    s.cond_train_first = 100;
    s.cond_train_count = 16;
    s.cond_eval_count = 2;
    s.cond_eval_repeats = 4;
    s.lr_flow = 0.1;
    s.expl_factor = 0.1;
    s.eval_gt_samples = 0;
    ds_trainer *t = NULL;
    ck_assert_msg(ds_trainer_create(&s, MPI_COMM_WORLD, &t) == DS_OK, "%s", ds_error_message());
    /* the first two test images: a 7 and a 2 */
    ds_real *x = NULL;
    size_t cnt, w;
    ck_assert_int_eq(ds_idx_read_images(img, 0, 2, &x, &cnt, &w), DS_OK);
    double z0[2], z1[2];
    log_z_of(t, &s, x, 2, z0);
    double loss = 0, first = 0;
    for (int i = 0; i < 60; i++) {
        ck_assert_msg(ds_trainer_step(t, &loss) == DS_OK, "%s", ds_error_message());
        if (i == 0) first = loss;
    }
    log_z_of(t, &s, x, 2, z1);
    ds_eval_result r;
    ck_assert_int_eq(ds_trainer_evaluate(t, 0, &r), DS_OK);
    printf("log Z(x): before %.9f %.9f, after 60 iterations %.3f %.3f; loss %.1f -> %.1f; eval elbo %.2f IS %.2f "
           "RW %.2f learned %.2f\n", z0[0], z0[1], z1[0], z1[1], first, loss, r.elbo, r.log_z_is, r.log_z_rw,
           r.log_z_learned);
    /* log Z(x) moved toward log p(x) (hundreds of nats below 0) and tells the two images apart */
    ck_assert(z1[0] < z0[0] - 20 && z1[1] < z0[1] - 20);
    ck_assert(fabs(z1[0] - z1[1]) > 1.0);
    ck_assert(fabs(z0[0] - z0[1]) < fabs(z1[0] - z1[1]));
    ck_assert(isfinite(r.elbo) && r.log_z_is >= r.elbo && r.log_z_rw >= r.log_z_is - 1e-9);
    ds_free(x);
    ds_trainer_destroy(&t);
}
END_TEST

int main(int argc, char **argv)
{
    ds_mpi_io_defaults();
    MPI_Init(&argc, &argv);
    Suite *s = suite_create("conditional");
    TCase *tc = tcase_create("conditional");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, conditional_vargrad_against_finite_differences);
    tcase_add_test(tc, conditional_tb_gradient_against_finite_differences);
    tcase_add_test(tc, conditional_vargrad_gradient_against_finite_differences);
    tcase_add_test(tc, per_image_metrics);
    tcase_add_test(tc, conditional_local_search_is_ds_ls_run_per_condition);
    tcase_add_test(tc, conditioning_is_real);
    suite_add_tcase(s, tc);
    int rc = ds_test_run(s);
    MPI_Finalize();
    return rc;
}
