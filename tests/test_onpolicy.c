/* On-policy objectives (onpolicy.h): PIS, PIS + LP (learned variance on and
 * off), DDS and DIS. The whole loss, differentiated through the simulated
 * path with the noise held fixed (LP's grad log R included: lp_through_grad),
 * against central finite differences of every parameter in double; the
 * reference's estimator (grad log R a constant) against the same with a
 * zero Hessian; checkpointed recomputation against keeping
 * everything; and short training runs on a diagonal Gaussian whose log Z is
 * known, where the ELBO must come within 0.1 of it. */
#include "diffsamp/energy.h"
#include "diffsamp/nn.h"
#include "diffsamp/onpolicy.h"
#include "diffsamp/policy.h"
#include "diffsamp/reference.h"
#include "diffsamp/sampler.h"
#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(DS_REAL_DOUBLE)
#error "finite-difference tests need ds_real = double (link against diffsamp_core_d)"
#endif

#define FD_H 1e-6
enum { OT = 5, OB = 3 };

typedef enum { PIS = 0, DDS, DIS } process;

typedef struct oncase {
    ds_energy *e;
    ds_reference ref;
    ds_policy *p;
    ds_sim sim;
    ds_traj tr;
    ds_onpolicy *op;
    ds_real *noise;
} oncase;

static void make_ref(ds_reference *ref, process kind, int T, double sigma2)
{
    ds_status rc = kind == PIS ? ds_reference_init_brownian(ref, T, sigma2)
                   : kind == DDS ? ds_reference_init_vp(ref, T, sigma2, 0.1, 10.0)
                                 /* Euler-Maruyama needs int beta <= 1 per step: a gentler schedule on few steps */
                                 : ds_reference_init_vp_em(ref, T, sigma2, 0.1, T < 10 ? 4.0 : 10.0);
    ck_assert_int_eq(rc, DS_OK);
}

static ds_policy_config small_config(int dim, int langevin, int learned_variance)
{
    ds_policy_config c;
    memset(&c, 0, sizeof c);
    c.dim = dim;
    c.hidden = 6;
    c.harmonics = 3;
    c.joint_layers = 1;
    c.lgv_layers = 2;
    c.langevin = langevin;
    c.learned_variance = learned_variance;
    c.clipping = 1;
    c.log_var_range = 4.0;
    c.lgv_clip = 100.0;
    c.gfn_clip = 1e4;
    return c;
}

static void oncase_init(oncase *oc, const char *energy, int dim, process kind, const ds_policy_config *c, int T,
                        int B, double sigma2, uint64_t seed)
{
    memset(oc, 0, sizeof *oc);
    ck_assert_int_eq(ds_energy_create(energy, dim, NULL, &oc->e), DS_OK);
    make_ref(&oc->ref, kind, T, sigma2);
    ck_assert_int_eq(ds_policy_create(c, T, T * B, seed, &oc->p), DS_OK);
    oc->sim = (ds_sim){.policy = oc->p, .energy = oc->e, .ref = &oc->ref};
    ck_assert_int_eq(ds_traj_init(&oc->tr, T, B, dim, c->langevin, 0, 1), DS_OK);
    ck_assert_int_eq(ds_onpolicy_create(&oc->sim, B, 1, &oc->op), DS_OK);
    oc->noise = calloc((size_t)T * B * dim, sizeof(ds_real));
    ds_rng_normal_d(ds_rng_make(77, DS_RNG_TEST), seed, 0, 0, T * B * dim, oc->noise);
}

static void oncase_free(oncase *oc)
{
    ds_onpolicy_destroy(&oc->op);
    ds_traj_free(&oc->tr);
    ds_policy_destroy(&oc->p);
    ds_reference_free(&oc->ref);
    ds_energy_destroy(&oc->e);
    free(oc->noise);
}

static double loss_of(oncase *oc, int B, int k)
{
    double loss = NAN;
    ds_status rc = ds_onpolicy_loss_grad(oc->op, &oc->tr, B, 0, k, ds_rng_make(5, DS_RNG_FORWARD), 3, 0, oc->noise,
                                         &loss);
    ck_assert_msg(rc == DS_OK, "%s", ds_error_message());
    return loss;
}

static void check_fd_clip(const char *energy, int dim, process kind, int langevin, int learned_variance,
                          double sigma2, double scale, double lgv_clip, double gfn_clip, const char *label)
{
    ds_policy_config c = small_config(dim, langevin, learned_variance);
    c.lgv_clip = lgv_clip;
    c.gfn_clip = gfn_clip;
    oncase oc;
    oncase_init(&oc, energy, dim, kind, &c, OT, OB, sigma2, 11);
    ds_arena *a = &oc.p->arena;
    /* random, non-zero parameters everywhere (no zero_init), at a scale that keeps the path finite */
    for (size_t k = 0; k < a->n; k++) a->params[k] *= scale;
    ds_arena_zero_grad(a);
    double loss = loss_of(&oc, OB, 0);
    ck_assert_msg(isfinite(loss) && fabs(loss) < 1e4, "%s: loss %g", label, loss);
    ds_real *grad = calloc(a->n, sizeof *grad), *fd = calloc(a->n, sizeof *fd);
    memcpy(grad, a->grads, a->n * sizeof *grad);
    for (size_t k = 0; k < a->n; k++) {
        const ds_real keep = a->params[k];
        a->params[k] = keep + FD_H;
        const double lp = loss_of(&oc, OB, 0);
        a->params[k] = keep - FD_H;
        const double lm = loss_of(&oc, OB, 0);
        a->params[k] = keep;
        fd[k] = (lp - lm) / (2 * FD_H);
    }
    for (int t = 0; t < a->ntensors; t++) {
        const ds_tensor_info *ti = &a->tensors[t];
        const size_t cnt = (size_t)ti->rows * ti->cols;
        size_t at = 0;
        double worst = ds_test_max_err_at(grad + ti->offset, fd + ti->offset, cnt, 1e-6, 1e-5, &at);
        ck_assert_msg(worst <= 1.0, "%s: d loss / d %s[%zu] is %.10g, finite differences %.10g", label, ti->name, at,
                      grad[ti->offset + at], fd[ti->offset + at]);
    }
    /* the parts of the path that must carry gradient do */
    double gs = 0;
    const int sw = ds_arena_find(a, "s_model.x_model.weight");
    for (int k = 0; k < a->tensors[sw].rows * a->tensors[sw].cols; k++) gs += fabs(grad[a->tensors[sw].offset + k]);
    ck_assert_msg(gs > 1e-6, "%s: no gradient reaches the state embedding", label);
    free(grad);
    free(fd);
    oncase_free(&oc);
}

static void check_fd(const char *energy, int dim, process kind, int langevin, int learned_variance,
                     double sigma2, double scale, const char *label)
{
    check_fd_clip(energy, dim, kind, langevin, learned_variance, sigma2, scale, 100.0, 1e4, label);
}

START_TEST(pis_gradient) { check_fd("gaussian", 3, PIS, 0, 0, 2.0, 0.8, "PIS on gaussian(3)"); }
END_TEST
START_TEST(pis_lp_gradient)
{
    check_fd("25gmm", 2, PIS, 1, 0, 2.0, 0.8, "PIS + LP on 25gmm");
    check_fd("gaussian", 3, PIS, 1, 1, 2.0, 0.8, "PIS + LP + learned variance on gaussian(3)");
    check_fd("many_well", 4, PIS, 1, 1, 0.5, 0.3, "PIS + LP + learned variance on many_well(4)");
}
END_TEST
/* Clipped LP gradients and clipped outputs: their masks in the reverse pass
 * (lgv_clip 0.5 clips most of 25gmm's grad log R, gfn_clip 1.5 some outputs). */
START_TEST(clipped_gradients)
{
    check_fd_clip("25gmm", 2, PIS, 1, 1, 2.0, 0.8, 0.5, 1e4, "PIS + LP on 25gmm, grad log R clipped at 0.5");
    check_fd_clip("gaussian", 3, PIS, 1, 0, 2.0, 2.0, 100.0, 1.5, "PIS + LP on gaussian(3), outputs clipped at 1.5");
}
END_TEST

/* The reference's estimator (grad log R a constant in the drift) is the
 * full gradient without the HVP term: the same as lp_through_grad on an
 * energy whose Hessian is zero, bitwise. */
static ds_status zero_hvp(const void *state, int dim, int n, const ds_real *x, const ds_real *cond, const ds_real *v,
                          ds_real *hv)
{
    (void)state; (void)x; (void)cond; (void)v;
    memset(hv, 0, sizeof(ds_real) * (size_t)n * dim);
    return DS_OK;
}

START_TEST(detached_lp_is_the_reference_estimator)
{
    ds_policy_config c = small_config(2, 1, 1);
    oncase oc;
    oncase_init(&oc, "25gmm", 2, PIS, &c, OT, OB, 2.0, 17);
    for (size_t k = 0; k < oc.p->arena.n; k++) oc.p->arena.params[k] *= 0.8;
    ds_onpolicy *det = NULL, *zero = NULL;
    ck_assert_int_eq(ds_onpolicy_create(&oc.sim, OB, 0, &det), DS_OK);
    ds_energy_vtable zvt = *oc.e->vt;
    zvt.hvp = zero_hvp;
    ds_energy ez = *oc.e;
    ez.vt = &zvt;
    ds_sim sz = oc.sim;
    sz.energy = &ez;
    ck_assert_int_eq(ds_onpolicy_create(&sz, OB, 1, &zero), DS_OK);
    const size_t n = oc.p->arena.n;
    ds_real *g_det = calloc(n, sizeof *g_det), *g_full = calloc(n, sizeof *g_full);
    double l_det, l_zero, l_full;
    const ds_rng r = ds_rng_make(5, DS_RNG_FORWARD);
    ds_arena_zero_grad(&oc.p->arena);
    ck_assert_int_eq(ds_onpolicy_loss_grad(det, &oc.tr, OB, 0, 0, r, 3, 0, oc.noise, &l_det), DS_OK);
    memcpy(g_det, oc.p->arena.grads, n * sizeof *g_det);
    ds_arena_zero_grad(&oc.p->arena);
    ck_assert_int_eq(ds_onpolicy_loss_grad(zero, &oc.tr, OB, 0, 0, r, 3, 0, oc.noise, &l_zero), DS_OK);
    ck_assert(l_det == l_zero);
    ck_assert(memcmp(g_det, oc.p->arena.grads, n * sizeof *g_det) == 0);
    /* and it is a different estimator from the full gradient */
    ds_arena_zero_grad(&oc.p->arena);
    ck_assert_int_eq(ds_onpolicy_loss_grad(oc.op, &oc.tr, OB, 0, 0, r, 3, 0, oc.noise, &l_full), DS_OK);
    memcpy(g_full, oc.p->arena.grads, n * sizeof *g_full);
    ck_assert(l_full == l_det);
    double diff = 0;
    for (size_t k = 0; k < n; k++) diff += fabs(g_full[k] - g_det[k]);
    ck_assert_msg(diff > 1e-6, "the HVP term changed nothing (%g)", diff);
    free(g_det);
    free(g_full);
    ds_onpolicy_destroy(&det);
    ds_onpolicy_destroy(&zero);
    oncase_free(&oc);
}
END_TEST

START_TEST(pis_learned_variance_gradient) { check_fd("9gmm", 2, PIS, 0, 1, 2.0, 0.8, "PIS + learned variance on 9gmm"); }
END_TEST
START_TEST(dds_gradient)
{
    check_fd("gaussian", 3, DDS, 0, 0, 1.5, 0.8, "DDS on gaussian(3)");
    check_fd("25gmm", 2, DDS, 1, 1, 1.5, 0.8, "DDS + LP + learned variance on 25gmm");
}
END_TEST
START_TEST(dis_gradient)
{
    check_fd("gaussian", 3, DIS, 0, 1, 1.5, 0.8, "DIS + learned variance on gaussian(3)");
    check_fd("easy_funnel", 3, DIS, 1, 0, 1.0, 0.5, "DIS + LP on easy_funnel(3)");
}
END_TEST

/* Keeping every activation and recomputing segments of k steps give the
 * same loss and gradient. */
START_TEST(checkpointed_recomputation)
{
    enum { T = 7, B = 4 };
    ds_policy_config c = small_config(2, 1, 1);
    oncase full, seg;
    oncase_init(&full, "25gmm", 2, PIS, &c, T, B, 2.0, 21);
    oncase_init(&seg, "25gmm", 2, PIS, &c, T, B, 2.0, 21);
    ds_arena_zero_grad(&full.p->arena);
    const double l0 = loss_of(&full, B, 0);
    for (int k = 1; k <= T + 1; k++) {
        ds_arena_zero_grad(&seg.p->arena);
        const double lk = loss_of(&seg, B, k);
        ck_assert_msg(lk == l0, "k = %d: loss %.17g vs %.17g", k, lk, l0);
        size_t at = 0;
        double worst = ds_test_max_err_at(seg.p->arena.grads, full.p->arena.grads, full.p->arena.n, 1e-14, 1e-12, &at);
        ck_assert_msg(worst <= 1.0, "k = %d: gradient %zu differs: %.17g vs %.17g", k, at, seg.p->arena.grads[at],
                      full.p->arena.grads[at]);
    }
    /* a workspace of one segment is enough */
    ds_policy *small = NULL;
    ck_assert_int_eq(ds_policy_create(&c, T, 2 * B, 21, &small), DS_OK);
    memcpy(small->arena.params, full.p->arena.params, full.p->arena.n * sizeof(ds_real));
    ds_sim s2 = full.sim;
    s2.policy = small;
    ds_onpolicy *op = NULL;
    ck_assert_int_eq(ds_onpolicy_create(&s2, B, 1, &op), DS_OK);
    double l2 = NAN;
    ds_arena_zero_grad(&small->arena);
    ck_assert_int_eq(ds_onpolicy_loss_grad(op, &full.tr, B, 0, 2, ds_rng_make(5, DS_RNG_FORWARD), 3, 0, full.noise, &l2),
                     DS_OK);
    ck_assert(l2 == l0);
    ck_assert(ds_test_max_err(small->arena.grads, full.p->arena.grads, full.p->arena.n, 1e-14, 1e-12) <= 1.0);
    ck_assert_int_eq(ds_onpolicy_loss_grad(op, &full.tr, B, 0, 0, ds_rng_make(5, DS_RNG_FORWARD), 3, 0, full.noise, &l2),
                     DS_ERR_INVALID);  /* keeping everything does not fit */
    ds_error_clear();
    ds_onpolicy_destroy(&op);
    ds_policy_destroy(&small);
    oncase_free(&full);
    oncase_free(&seg);
}
END_TEST

/* A short run of each on the diagonal Gaussian: the ELBO (mean log-weight
 * of fresh samples) comes within 0.1 of the known log Z. */
static void train_to_elbo(process kind, int T, int iters, const char *label)
{
    enum { B = 128, EB = 2000, D = 2 };
    ds_policy_config c = small_config(D, 0, 0);
    c.hidden = 32;
    c.harmonics = 16;
    c.joint_layers = 2;
    c.zero_init = 1;
    oncase oc;
    oncase_init(&oc, "gaussian", D, kind, &c, T, EB, 1.0, 3);
    ds_adam adam;
    ds_adam_init(&adam, 5e-3, 1e-2);
    double loss = 0;
    for (int it = 0; it < iters; it++) {
        ds_arena_zero_grad(&oc.p->arena);
        ck_assert_int_eq(ds_onpolicy_loss_grad(oc.op, &oc.tr, B, 0, 0, ds_rng_make(9, DS_RNG_FORWARD), (uint64_t)it, 0,
                                               NULL, &loss),
                         DS_OK);
        ds_adam_step(&adam, &oc.p->arena);
    }
    ck_assert_int_eq(ds_sim_forward(&oc.sim, &oc.tr, EB, 0.0, ds_rng_make(9, DS_RNG_EVAL), 0, 0, NULL), DS_OK);
    double elbo = 0;
    for (int b = 0; b < EB; b++) {
        double lw = oc.tr.log_r[b];
        for (int i = 0; i < T; i++) lw += oc.tr.log_pb[i * EB + b] - oc.tr.log_pf[i * EB + b];
        elbo += lw / EB;
    }
    ck_assert_msg(oc.e->has_log_z, "gaussian has a known log Z");
    printf("%s: ELBO %.4f, log Z %.4f\n", label, elbo, oc.e->log_z);
    ck_assert_msg(fabs(elbo - oc.e->log_z) < 0.1 && elbo < oc.e->log_z + 0.02, "%s: ELBO %.4f, log Z %.4f", label,
                  elbo, oc.e->log_z);
    oncase_free(&oc);
}

START_TEST(pis_learns_gaussian) { train_to_elbo(PIS, 20, 400, "PIS"); }
END_TEST
START_TEST(dds_learns_gaussian) { train_to_elbo(DDS, 20, 400, "DDS"); }
END_TEST
START_TEST(dis_learns_gaussian) { train_to_elbo(DIS, 50, 500, "DIS"); }
END_TEST

/* An energy without an HVP: LP's Hessian-vector products by central
 * differences of the gradient give the analytic gradient to ~1e-8. */
START_TEST(finite_difference_hvp)
{
    ds_policy_config c = small_config(2, 1, 1);
    oncase oc;
    oncase_init(&oc, "25gmm", 2, PIS, &c, OT, OB, 2.0, 13);
    for (size_t k = 0; k < oc.p->arena.n; k++) oc.p->arena.params[k] *= 0.8;
    ck_assert(!ds_onpolicy_uses_fd_hvp(oc.op));
    ds_arena_zero_grad(&oc.p->arena);
    const double l0 = loss_of(&oc, OB, 0);
    ds_real *want = calloc(oc.p->arena.n, sizeof *want);
    memcpy(want, oc.p->arena.grads, oc.p->arena.n * sizeof *want);
    ds_energy_vtable nohvp = *oc.e->vt;
    nohvp.hvp = NULL;
    ds_energy e2 = *oc.e;
    e2.vt = &nohvp;
    ds_sim s2 = oc.sim;
    s2.energy = &e2;
    ds_onpolicy *op = NULL;
    ck_assert_int_eq(ds_onpolicy_create(&s2, OB, 1, &op), DS_OK);
    ck_assert(ds_onpolicy_uses_fd_hvp(op));
    ds_arena_zero_grad(&oc.p->arena);
    double l1 = NAN;
    ck_assert_int_eq(ds_onpolicy_loss_grad(op, &oc.tr, OB, 0, 0, ds_rng_make(5, DS_RNG_FORWARD), 3, 0, oc.noise, &l1),
                     DS_OK);
    ck_assert(l1 == l0);
    size_t at = 0;
    double worst = ds_test_max_err_at(oc.p->arena.grads, want, oc.p->arena.n, 1e-7, 1e-6, &at);
    ck_assert_msg(worst <= 1.0, "gradient %zu: %.12g (FD HVP) vs %.12g", at, oc.p->arena.grads[at], want[at]);
    double differs = 0;
    for (size_t k = 0; k < oc.p->arena.n; k++) differs += fabs(oc.p->arena.grads[k] - want[k]);
    ck_assert_msg(differs > 0, "the finite-difference HVP path was not taken");
    ds_onpolicy_destroy(&op);
    free(want);
    oncase_free(&oc);
}
END_TEST

START_TEST(refusals)
{
    ds_policy_config c = small_config(2, 1, 0);
    oncase oc;
    oncase_init(&oc, "25gmm", 2, PIS, &c, OT, OB, 1.0, 1);
    double loss;
    ck_assert_int_eq(ds_onpolicy_loss_grad(oc.op, &oc.tr, OB + 1, 0, 0, ds_rng_make(1, DS_RNG_FORWARD), 0, 0, NULL, &loss),
                     DS_ERR_INVALID);
    ck_assert_int_eq(ds_onpolicy_loss_grad(oc.op, &oc.tr, OB, 0, -1, ds_rng_make(1, DS_RNG_FORWARD), 0, 0, NULL, &loss),
                     DS_ERR_INVALID);
    ds_error_clear();
    oncase_free(&oc);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("onpolicy");
    TCase *g = tcase_create("gradients");
    tcase_set_timeout(g, 300);
    tcase_add_test(g, pis_gradient);
    tcase_add_test(g, pis_lp_gradient);
    tcase_add_test(g, pis_learned_variance_gradient);
    tcase_add_test(g, dds_gradient);
    tcase_add_test(g, dis_gradient);
    tcase_add_test(g, checkpointed_recomputation);
    tcase_add_test(g, finite_difference_hvp);
    tcase_add_test(g, clipped_gradients);
    tcase_add_test(g, detached_lp_is_the_reference_estimator);
    tcase_add_test(g, refusals);
    suite_add_tcase(s, g);
    TCase *t = tcase_create("training");
    tcase_set_timeout(t, 600);
    tcase_add_test(t, pis_learns_gaussian);
    tcase_add_test(t, dds_learns_gaussian);
    tcase_add_test(t, dis_learns_gaussian);
    suite_add_tcase(s, t);
    return ds_test_run(s);
}
