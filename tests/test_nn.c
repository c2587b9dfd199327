/* Tests of the nn kit, the policy networks and the sampler's chain rule:
 * every analytic gradient against central finite differences in double
 * precision (Linear, GELU, Fourier features, every parameter of the policy in
 * each architecture variant, and the whole chain policy -> log p_F / log F ->
 * objective on fixed states with real energies), Adam against the
 * torch.optim.Adam formula evaluated here, and the arena's bookkeeping. */
#include "diffsamp/energy.h"
#include "diffsamp/nn.h"
#include "diffsamp/objectives.h"
#include "diffsamp/policy.h"
#include "diffsamp/sampler.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(DS_REAL_DOUBLE)
#error "finite-difference tests need ds_real = double (link against diffsamp_core_d)"
#endif

#define FD_H 1e-6

/* ---------------------------------------------------------------- helpers */

/* n normals times scale, a pure function of stream. */
static void randn(ds_real *x, size_t n, uint64_t stream, double scale)
{
    ds_rng r = ds_rng_make(2024, DS_RNG_TEST);
    ds_rng_normal_d(r, stream, 0, 0, (int)n, x);
    for (size_t i = 0; i < n; i++) x[i] *= scale;
}

static ds_real *alloc_real(size_t n)
{
    ds_real *p = calloc(n ? n : 1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* Fails with the worst element named when |got - want| > atol + rtol |want| anywhere. */
static void expect_close(const char *what, const double *got, const double *want, size_t n, double atol,
                         double rtol)
{
    size_t at = 0;
    double worst = ds_test_max_err_at(got, want, n, atol, rtol, &at);
    ck_assert_msg(worst <= 1.0, "%s: element %zu is %.12g, expected %.12g (error %.3g of tolerance)", what, at,
                  n ? got[at] : 0.0, n ? want[at] : 0.0, worst);
}

static double max_abs(const double *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

static double dot(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* ---------------------------------------------------------------- layers */

enum { LB = 5, LIN = 4, LOUT = 3 };

static double linear_loss(const ds_real *in, const ds_real *W, const ds_real *b, const ds_real *c)
{
    ds_real out[LB * LOUT];
    ds_linear_forward(out, in, W, b, LB, LIN, LOUT);
    return dot(c, out, LB * LOUT);
}

START_TEST(linear_forward_matches_naive)
{
    ds_real in[LB * LIN], W[LOUT * LIN], b[LOUT], out[LB * LOUT], want[LB * LOUT];
    randn(in, LB * LIN, 1, 1.0);
    randn(W, LOUT * LIN, 2, 1.0);
    randn(b, LOUT, 3, 1.0);
    for (int withb = 0; withb < 2; withb++) {
        for (int r = 0; r < LB; r++)
            for (int o = 0; o < LOUT; o++) {
                double s = withb ? b[o] : 0;
                for (int k = 0; k < LIN; k++) s += in[r * LIN + k] * W[o * LIN + k];
                want[r * LOUT + o] = s;
            }
        for (int i = 0; i < LB * LOUT; i++) out[i] = 99;  /* without bias the output is overwritten */
        ds_linear_forward(out, in, W, withb ? b : NULL, LB, LIN, LOUT);
        expect_close(withb ? "linear with bias" : "linear without bias", out, want, LB * LOUT, 1e-14, 1e-13);
    }
}
END_TEST

START_TEST(linear_backward_matches_fd_and_accumulates)
{
    ds_real in[LB * LIN], W[LOUT * LIN], b[LOUT], c[LB * LOUT];
    randn(in, LB * LIN, 4, 1.0);
    randn(W, LOUT * LIN, 5, 1.0);
    randn(b, LOUT, 6, 1.0);
    randn(c, LB * LOUT, 7, 1.0);
    /* Analytic gradients added onto known non-zero contents. */
    ds_real dW0[LOUT * LIN], db0[LOUT], din0[LB * LIN];
    randn(dW0, LOUT * LIN, 8, 1.0);
    randn(db0, LOUT, 9, 1.0);
    randn(din0, LB * LIN, 10, 1.0);
    ds_real dW[LOUT * LIN], db[LOUT], din[LB * LIN];
    memcpy(dW, dW0, sizeof dW);
    memcpy(db, db0, sizeof db);
    memcpy(din, din0, sizeof din);
    ds_linear_backward(din, dW, db, c, in, W, LB, LIN, LOUT);
    for (int i = 0; i < LOUT * LIN; i++) dW[i] -= dW0[i];
    for (int i = 0; i < LOUT; i++) db[i] -= db0[i];
    for (int i = 0; i < LB * LIN; i++) din[i] -= din0[i];

    ds_real fW[LOUT * LIN], fb[LOUT], fin[LB * LIN];
    struct { ds_real *x, *fd; int n; } vars[3] = {{W, fW, LOUT * LIN}, {b, fb, LOUT}, {in, fin, LB * LIN}};
    for (int v = 0; v < 3; v++) {
        for (int i = 0; i < vars[v].n; i++) {
            ds_real keep = vars[v].x[i];
            vars[v].x[i] = keep + FD_H;
            double lp = linear_loss(in, W, b, c);
            vars[v].x[i] = keep - FD_H;
            double lm = linear_loss(in, W, b, c);
            vars[v].x[i] = keep;
            vars[v].fd[i] = (lp - lm) / (2 * FD_H);
        }
    }
    expect_close("linear dW", dW, fW, LOUT * LIN, 1e-9, 1e-6);
    expect_close("linear db", db, fb, LOUT, 1e-9, 1e-6);
    expect_close("linear din", din, fin, LB * LIN, 1e-9, 1e-6);

    /* db and din may be NULL; dW still accumulates. */
    memcpy(dW, dW0, sizeof dW);
    ds_linear_backward(NULL, dW, NULL, c, in, W, LB, LIN, LOUT);
    for (int i = 0; i < LOUT * LIN; i++) dW[i] -= dW0[i];
    expect_close("linear dW (db, din NULL)", dW, fW, LOUT * LIN, 1e-9, 1e-6);
}
END_TEST

START_TEST(gelu_forward_and_backward)
{
    /* Known values: GELU(x) = x Phi(x), Phi(1) = 0.841344746068543, Phi(2) = 0.977249868051821. */
    const ds_real xs[] = {-3.0, -1.0, -0.5, 0.0, 0.3, 1.0, 2.0, 4.5};
    enum { N = sizeof xs / sizeof xs[0] };
    ds_real out[N], gd[N], want[N];
    ds_gelu_forward_grad(out, gd, xs, N);
    for (int i = 0; i < N; i++) want[i] = 0.5 * xs[i] * (1 + erf(xs[i] / sqrt(2.0)));
    expect_close("gelu forward", out, want, N, 1e-15, 1e-14);
    ck_assert_double_eq_tol(out[5], 0.841344746068543, 1e-14);
    ck_assert_double_eq_tol(out[1], -(1 - 0.841344746068543), 1e-14);
    ck_assert_double_eq_tol(out[6], 2 * 0.977249868051821, 1e-14);
    ck_assert(out[3] == 0.0);
    /* GELU' against central differences of GELU */
    ds_real fd[N];
    for (int i = 0; i < N; i++) {
        ds_real xp = xs[i] + FD_H, xm = xs[i] - FD_H, yp, ym, g;
        ds_gelu_forward_grad(&yp, &g, &xp, 1);
        ds_gelu_forward_grad(&ym, &g, &xm, 1);
        fd[i] = (yp - ym) / (2 * FD_H);
    }
    expect_close("gelu derivative", gd, fd, N, 1e-9, 1e-6);
}
END_TEST

/* The MLP against central differences: parameters and input, with an
 * offset row range (the policy evaluates passes in blocks of rows). */
START_TEST(mlp_forward_and_backward)
{
    enum { MR = 7, M0 = 2, MN = 4, MI = 3, MO = 2 };
    const int dims[] = {MI, 5, 4, MO};
    const char *names[] = {"m.0", "m.1", "m.2"};
    ds_arena a;
    ds_arena_init(&a);
    ds_mlp m;
    ck_assert_int_eq(ds_mlp_add(&m, &a, 3, dims, names, DS_GROUP_POLICY), DS_OK);
    ck_assert_int_eq(ds_arena_alloc(&a), DS_OK);
    ck_assert_int_eq(a.ntensors, 6);
    ck_assert_int_eq(ds_arena_find(&a, "m.2.bias"), 5);
    ck_assert_int_eq(ds_mlp_max_hidden(&m), 5);
    randn(a.params, a.n, 41, 0.7);
    ds_real *ws = alloc_real(ds_mlp_workspace(&m, MR));
    ds_mlp_bind(&m, ws, MR);
    ds_real in[MN * MI], out[MN * MO], c[MN * MO], din[MN * MI], s1[MN * 5], s2[MN * 5];
    randn(in, MN * MI, 42, 1.0);
    randn(c, MN * MO, 43, 1.0);
    ds_mlp_forward(&m, &a, out, in, M0, MN, s1);
    ds_arena_zero_grad(&a);
    for (int i = 0; i < MN * MI; i++) din[i] = 1e3;  /* overwritten */
    ds_mlp_backward(&m, &a, din, 0, c, in, M0, MN, s1, s2);
    ds_real *fdp = alloc_real(a.n), fdx[MN * MI];
    for (size_t k = 0; k < a.n; k++) {
        ds_real keep = a.params[k], yp[MN * MO], ym[MN * MO];
        a.params[k] = keep + FD_H;
        ds_mlp_forward(&m, &a, yp, in, M0, MN, s1);
        a.params[k] = keep - FD_H;
        ds_mlp_forward(&m, &a, ym, in, M0, MN, s1);
        a.params[k] = keep;
        fdp[k] = (dot(c, yp, MN * MO) - dot(c, ym, MN * MO)) / (2 * FD_H);
    }
    expect_close("mlp parameter gradient", a.grads, fdp, a.n, 1e-8, 1e-6);
    for (int k = 0; k < MN * MI; k++) {
        ds_real keep = in[k], yp[MN * MO], ym[MN * MO];
        in[k] = keep + FD_H;
        ds_mlp_forward(&m, &a, yp, in, M0, MN, s1);
        in[k] = keep - FD_H;
        ds_mlp_forward(&m, &a, ym, in, M0, MN, s1);
        in[k] = keep;
        fdx[k] = (dot(c, yp, MN * MO) - dot(c, ym, MN * MO)) / (2 * FD_H);
    }
    expect_close("mlp input gradient", din, fdx, MN * MI, 1e-8, 1e-6);
    /* accumulate = 1 adds */
    ds_real pre[MN * MI];
    randn(pre, MN * MI, 44, 1.0);
    memcpy(din, pre, sizeof din);
    ds_mlp_forward(&m, &a, out, in, M0, MN, s1);
    ds_mlp_backward(&m, &a, din, 1, c, in, M0, MN, s1, s2);
    for (int i = 0; i < MN * MI; i++) din[i] -= pre[i];
    expect_close("mlp input gradient (accumulate)", din, fdx, MN * MI, 1e-8, 1e-6);
    /* a single Linear is an MLP too */
    ds_mlp one;
    const char *n1[] = {"one"};
    ds_arena b;
    ds_arena_init(&b);
    ck_assert_int_eq(ds_mlp_add(&one, &b, 1, dims, n1, DS_GROUP_FLOW), DS_OK);
    ck_assert_int_eq(ds_mlp_workspace(&one, 100), 0);
    ck_assert_int_eq(ds_mlp_add(&one, &b, DS_MLP_MAX_LINEAR + 1, dims, n1, DS_GROUP_FLOW), DS_ERR_INVALID);
    ds_error_clear();
    ds_arena_free(&b);
    free(fdp);
    free(ws);
    ds_arena_free(&a);
}
END_TEST

enum { FH = 5 };

static double fourier_loss(ds_real t, const ds_real *w, const ds_real *ph, const ds_real *c)
{
    ds_real out[2 * FH];
    ds_fourier_forward(out, t, w, ph, FH);
    return dot(c, out, 2 * FH);
}

START_TEST(fourier_forward_and_phase_gradient)
{
    ds_real w[FH], ph[FH], c[2 * FH], out[2 * FH], want[2 * FH];
    for (int k = 0; k < FH; k++) w[k] = 0.1 + (100.0 - 0.1) * k / (FH - 1);
    randn(ph, FH, 13, 1.0);
    randn(c, 2 * FH, 14, 1.0);
    const ds_real t = 0.37;
    ds_fourier_forward(out, t, w, ph, FH);
    for (int k = 0; k < FH; k++) {
        want[k] = sin(t * w[k] + ph[k]);
        want[FH + k] = cos(t * w[k] + ph[k]);
    }
    expect_close("fourier forward", out, want, 2 * FH, 1e-14, 1e-13);

    ds_real dph[FH], pre[FH], fd[FH];
    randn(pre, FH, 15, 1.0);
    memcpy(dph, pre, sizeof dph);
    ds_fourier_backward(dph, c, t, w, ph, FH);
    for (int k = 0; k < FH; k++) dph[k] -= pre[k];
    for (int k = 0; k < FH; k++) {
        ds_real keep = ph[k];
        ph[k] = keep + FD_H;
        double lp = fourier_loss(t, w, ph, c);
        ph[k] = keep - FD_H;
        double lm = fourier_loss(t, w, ph, c);
        ph[k] = keep;
        fd[k] = (lp - lm) / (2 * FD_H);
    }
    expect_close("fourier dphase (accumulated)", dph, fd, FH, 1e-9, 1e-6);
}
END_TEST

/* ---------------------------------------------------------------- arena, Adam */

START_TEST(arena_bookkeeping)
{
    ds_arena a;
    ds_arena_init(&a);
    int i0 = -1, i1 = -1, i2 = -1, dummy = -1;
    ck_assert_int_eq(ds_arena_add(&a, "layer.weight", 3, 5, DS_GROUP_POLICY, &i0), DS_OK);
    ck_assert_int_eq(ds_arena_add(&a, "layer.bias", 1, 3, DS_GROUP_POLICY, &i1), DS_OK);
    ck_assert_int_eq(ds_arena_add(&a, "log_z", 1, 1, DS_GROUP_FLOW, &i2), DS_OK);
    ck_assert_int_eq(i0, 0);
    ck_assert_int_eq(i1, 1);
    ck_assert_int_eq(i2, 2);
    ck_assert_int_eq(ds_arena_add(&a, "layer.bias", 1, 3, DS_GROUP_POLICY, &dummy), DS_ERR_INVALID);
    ck_assert_int_eq(ds_arena_add(&a, "bad.shape", 0, 3, DS_GROUP_POLICY, &dummy), DS_ERR_INVALID);
    ck_assert_int_eq(ds_arena_add(&a, "bad.group", 1, 3, DS_PARAM_GROUPS, &dummy), DS_ERR_INVALID);
    ck_assert_int_eq(a.ntensors, 3);
    ck_assert_int_eq(ds_arena_find(&a, "layer.bias"), 1);
    ck_assert_int_eq(ds_arena_find(&a, "log_z"), 2);
    ck_assert_int_eq(ds_arena_find(&a, "layer"), -1);
    ck_assert_int_eq(a.tensors[2].group, DS_GROUP_FLOW);
    ck_assert_int_eq(ds_arena_alloc(&a), DS_OK);
    ck_assert_int_eq(ds_arena_add(&a, "late", 1, 1, DS_GROUP_POLICY, &dummy), DS_ERR_INVALID);
    ck_assert_int_eq(a.ntensors, 3);
    ds_error_clear();
    /* Tensors lie inside the arrays and do not overlap; everything starts at 0. */
    for (int t = 0; t < a.ntensors; t++) {
        size_t lo = a.tensors[t].offset, hi = lo + (size_t)a.tensors[t].rows * a.tensors[t].cols;
        ck_assert(hi <= a.n);
        for (int u = t + 1; u < a.ntensors; u++) ck_assert(a.tensors[u].offset >= hi);
    }
    for (size_t k = 0; k < a.n; k++) ck_assert(a.params[k] == 0 && a.grads[k] == 0 && a.m[k] == 0 && a.v[k] == 0);
    ck_assert_ptr_eq(ds_arena_param(&a, i1), a.params + a.tensors[i1].offset);
    ds_arena_grad(&a, i0)[14] = 3.0;
    ds_arena_grad(&a, i2)[0] = -1.0;
    ds_arena_zero_grad(&a);
    for (size_t k = 0; k < a.n; k++) ck_assert(a.grads[k] == 0);
    ds_arena_free(&a);
    ck_assert_ptr_null(a.params);
    ck_assert_int_eq(a.ntensors, 0);
    ds_arena_free(&a);  /* twice is harmless */
}
END_TEST

START_TEST(adam_matches_torch_formula)
{
    ds_arena a;
    ds_arena_init(&a);
    int iw, iz;
    ck_assert_int_eq(ds_arena_add(&a, "w", 2, 3, DS_GROUP_POLICY, &iw), DS_OK);
    ck_assert_int_eq(ds_arena_add(&a, "z", 1, 2, DS_GROUP_FLOW, &iz), DS_OK);
    ck_assert_int_eq(ds_arena_alloc(&a), DS_OK);
    enum { NW = 6, NZ = 2, N = NW + NZ, STEPS = 3 };
    const double lr[2] = {1e-2, 3e-1};
    double p[N], m[N] = {0}, v[N] = {0};
    ds_real g[N];
    randn(p, N, 20, 1.0);
    memcpy(ds_arena_param(&a, iw), p, NW * sizeof(double));
    memcpy(ds_arena_param(&a, iz), p + NW, NZ * sizeof(double));
    ds_adam opt;
    ds_adam_init(&opt, lr[0], lr[1]);
    ck_assert(opt.beta1 == 0.9 && opt.beta2 == 0.999 && opt.eps == 1e-8 && opt.step == 0);
    for (int t = 1; t <= STEPS; t++) {
        randn(g, N, 20 + (uint64_t)t, 1.0);
        if (t == 2) g[1] = 0;  /* a zero gradient still moves through the momentum */
        memcpy(ds_arena_grad(&a, iw), g, NW * sizeof(double));
        memcpy(ds_arena_grad(&a, iz), g + NW, NZ * sizeof(double));
        ds_adam_step(&opt, &a);
        ck_assert_int_eq(opt.step, t);
        for (int k = 0; k < N; k++) {
            const double b1 = 0.9, b2 = 0.999, eps = 1e-8, lrk = lr[k < NW ? 0 : 1];
            m[k] = b1 * m[k] + (1 - b1) * g[k];
            v[k] = b2 * v[k] + (1 - b2) * g[k] * g[k];
            p[k] -= lrk / (1 - pow(b1, t)) * m[k] / (sqrt(v[k]) / sqrt(1 - pow(b2, t)) + eps);
        }
        double got[N], gm[N], gv[N];
        memcpy(got, ds_arena_param(&a, iw), NW * sizeof(double));
        memcpy(got + NW, ds_arena_param(&a, iz), NZ * sizeof(double));
        memcpy(gm, a.m + a.tensors[iw].offset, NW * sizeof(double));
        memcpy(gm + NW, a.m + a.tensors[iz].offset, NZ * sizeof(double));
        memcpy(gv, a.v + a.tensors[iw].offset, NW * sizeof(double));
        memcpy(gv + NW, a.v + a.tensors[iz].offset, NZ * sizeof(double));
        expect_close("adam params", got, p, N, 1e-15, 1e-13);
        expect_close("adam m", gm, m, N, 1e-15, 1e-13);
        expect_close("adam v", gv, v, N, 1e-15, 1e-13);
    }
    ds_arena_free(&a);
}
END_TEST

/* ---------------------------------------------------------------- policy */

enum { PS = 4, PR = 3, PN = PS * PR, PD = 3 };
#define P_SIGMA2 2.0 /* reference variance of the policy tests */

/* The policy's slots are the steps of a Brownian reference on PS steps. */
static ds_status begin_brownian(ds_policy *p, int nsteps, int rows)
{
    ds_reference ref;
    ds_status rc = ds_reference_init_brownian(&ref, nsteps, P_SIGMA2);
    if (rc == DS_OK) rc = ds_policy_begin(p, nsteps, rows, ref.step);
    ds_reference_free(&ref);
    return rc;
}

static ds_policy_config base_config(void)
{
    ds_policy_config c;
    memset(&c, 0, sizeof c);
    c.dim = PD;
    c.hidden = 8;
    c.harmonics = 4;
    c.joint_layers = 2;
    c.lgv_layers = 2;
    c.log_var_range = 4.0;
    c.lgv_clip = 100.0;
    c.gfn_clip = 1e4;
    return c;
}

typedef struct policy_case {
    ds_real x[PN * PD], g[PN * PD];
    ds_real cm[PN * PD], cv[PN * PD], cf[PN];
} policy_case;

static void policy_case_init(policy_case *pc, uint64_t stream)
{
    randn(pc->x, PN * PD, 100 * stream + 1, 1.0);
    randn(pc->g, PN * PD, 100 * stream + 2, 2.0);
    randn(pc->cm, PN * PD, 100 * stream + 3, 1.0);
    randn(pc->cv, PN * PD, 100 * stream + 4, 1.0);
    randn(pc->cf, PN, 100 * stream + 5, 1.0);
}

/* The pass's log-variance as one (PN, PD) array (a fixed variance stores one row per slot). */
static void policy_logvar(const ds_policy *p, ds_real *lv)
{
    for (int r = 0; r < PN; r++) memcpy(lv + r * PD, ds_policy_logvar_row(p, (size_t)r), sizeof(ds_real) * PD);
}

static double policy_outputs_loss(const ds_policy *p, const policy_case *pc)
{
    ds_real lv[PN * PD];
    policy_logvar(p, lv);
    return dot(pc->cm, p->mean, PN * PD) + dot(pc->cv, lv, PN * PD) + dot(pc->cf, p->logf, PN);
}

static double policy_loss(ds_policy *p, const policy_case *pc, const ds_real *x)
{
    ck_assert_int_eq(begin_brownian(p, PS, PR), DS_OK);
    ck_assert_int_eq(ds_policy_forward(p, 0, PS, x, p->c.langevin ? pc->g : NULL), DS_OK);
    return policy_outputs_loss(p, pc);
}

/* Forward over all slots, then backward of the coefficient loss into grads and dx. */
static void policy_analytic(ds_policy *p, const policy_case *pc, ds_real *dx)
{
    policy_loss(p, pc, pc->x);
    memcpy(p->d_mean, pc->cm, sizeof pc->cm);
    if (p->c.learned_variance) memcpy(p->d_logvar, pc->cv, sizeof pc->cv);
    else ck_assert_ptr_null(p->d_logvar);  /* nothing depends on a fixed variance */
    memcpy(p->d_logf, pc->cf, sizeof pc->cf);
    ds_arena_zero_grad(&p->arena);
    ck_assert_int_eq(ds_policy_backward(p, 0, PS, dx), DS_OK);
}

static void check_policy(const ds_policy_config *c, const char *label, uint64_t stream)
{
    ds_policy *p = NULL;
    ck_assert_msg(ds_policy_create(c, PS, PN, 7 + stream, &p) == DS_OK, "%s: %s", label, ds_error_message());
    policy_case pc;
    policy_case_init(&pc, stream);
    const size_t n = p->arena.n;
    ds_real *grad = alloc_real(n), *fd = alloc_real(n);
    ds_real dx[PN * PD], fdx[PN * PD], dx2[PN * PD];
    ds_real mean[PN * PD], logvar[PN * PD], logf[PN];

    policy_analytic(p, &pc, dx);
    memcpy(grad, p->arena.grads, n * sizeof *grad);
    memcpy(mean, p->mean, sizeof mean);
    policy_logvar(p, logvar);
    memcpy(logf, p->logf, sizeof logf);

    /* Every parameter of every tensor against central differences. */
    char what[160];
    for (int t = 0; t < p->arena.ntensors; t++) {
        const ds_tensor_info *ti = &p->arena.tensors[t];
        const size_t cnt = (size_t)ti->rows * ti->cols;
        ds_real *w = p->arena.params + ti->offset;
        for (size_t k = 0; k < cnt; k++) {
            ds_real keep = w[k];
            w[k] = keep + FD_H;
            double lp = policy_loss(p, &pc, pc.x);
            w[k] = keep - FD_H;
            double lm = policy_loss(p, &pc, pc.x);
            w[k] = keep;
            fd[ti->offset + k] = (lp - lm) / (2 * FD_H);
        }
        snprintf(what, sizeof what, "%s: d loss / d %s", label, ti->name);
        expect_close(what, grad + ti->offset, fd + ti->offset, cnt, 1e-7, 1e-5);
        if (c->gfn_clip > 1.0) /* nothing clipped: every tensor takes part */
            ck_assert_msg(max_abs(grad + ti->offset, cnt) > 1e-8, "%s: gradient of %s is zero", label, ti->name);
    }

    /* d loss / d x with grad log R held fixed. */
    for (int k = 0; k < PN * PD; k++) {
        ds_real xs[PN * PD];
        memcpy(xs, pc.x, sizeof xs);
        xs[k] = pc.x[k] + FD_H;
        double lp = policy_loss(p, &pc, xs);
        xs[k] = pc.x[k] - FD_H;
        double lm = policy_loss(p, &pc, xs);
        fdx[k] = (lp - lm) / (2 * FD_H);
    }
    snprintf(what, sizeof what, "%s: d loss / d x", label);
    expect_close(what, dx, fdx, PN * PD, 1e-7, 1e-5);
    ck_assert_msg(max_abs(dx, PN * PD) > 1e-8, "%s: dx is zero", label);

    /* Backward over [0,2) then [2,4) after one forward over [0,4) adds up to the one-call gradient. */
    policy_loss(p, &pc, pc.x);
    ds_arena_zero_grad(&p->arena);
    ck_assert_int_eq(ds_policy_backward(p, 0, 2, dx2), DS_OK);
    ck_assert_int_eq(ds_policy_backward(p, 2, PS, dx2 + 2 * PR * PD), DS_OK);
    snprintf(what, sizeof what, "%s: split backward grads", label);
    expect_close(what, p->arena.grads, grad, n, 1e-13, 1e-11);
    snprintf(what, sizeof what, "%s: split backward dx", label);
    expect_close(what, dx2, dx, PN * PD, 1e-13, 1e-11);

    /* Forward over [0,2) then [2,4) equals one forward; its activations give the same gradient. */
    ck_assert_int_eq(begin_brownian(p, PS, PR), DS_OK);
    for (int i = 0; i < PN * PD; i++) p->mean[i] = NAN;
    if (c->learned_variance)
        for (int i = 0; i < PN * PD; i++) p->logvar[i] = NAN;
    for (int i = 0; i < PN; i++) p->logf[i] = NAN;
    ck_assert_int_eq(ds_policy_forward(p, 0, 2, pc.x, c->langevin ? pc.g : NULL), DS_OK);
    ck_assert_int_eq(ds_policy_forward(p, 2, PS, pc.x + 2 * PR * PD, c->langevin ? pc.g + 2 * PR * PD : NULL),
                     DS_OK);
    snprintf(what, sizeof what, "%s: split forward mean", label);
    expect_close(what, p->mean, mean, PN * PD, 1e-13, 1e-12);
    snprintf(what, sizeof what, "%s: split forward logvar", label);
    ds_real logvar2[PN * PD];
    policy_logvar(p, logvar2);
    expect_close(what, logvar2, logvar, PN * PD, 1e-13, 1e-12);
    snprintf(what, sizeof what, "%s: split forward logf", label);
    expect_close(what, p->logf, logf, PN, 1e-13, 1e-12);
    ds_arena_zero_grad(&p->arena);
    ck_assert_int_eq(ds_policy_backward(p, 0, PS, dx2), DS_OK);
    snprintf(what, sizeof what, "%s: backward after split forward", label);
    expect_close(what, p->arena.grads, grad, n, 1e-13, 1e-11);

    free(grad);
    free(fd);
    ds_policy_destroy(&p);
    ck_assert_ptr_null(p);
}

START_TEST(policy_plain)
{
    ds_policy_config c = base_config();
    check_policy(&c, "plain L2", 1);
    c.joint_layers = 0;
    check_policy(&c, "plain L0", 2);
    c.joint_layers = 1;
    check_policy(&c, "plain L1", 3);
}
END_TEST

START_TEST(policy_learned_variance)
{
    ds_policy_config c = base_config();
    c.learned_variance = 1;
    check_policy(&c, "learned variance L2", 4);
    c.joint_layers = 0;
    check_policy(&c, "learned variance L0", 5);
}
END_TEST

START_TEST(policy_langevin)
{
    ds_policy_config c = base_config();
    c.langevin = 1;
    c.lgv_per_dim = 0;
    c.lgv_layers = 2;
    check_policy(&c, "LP shared scale, lgv_layers 2", 6);
    c.lgv_per_dim = 1;
    c.lgv_layers = 3;
    check_policy(&c, "LP per-dim scale, lgv_layers 3", 7);
    c.lgv_layers = 1;
    c.joint_layers = 1;
    c.learned_variance = 1;
    check_policy(&c, "LP per-dim, lgv_layers 1, L1, learned variance", 8);
}
END_TEST

START_TEST(policy_conditional_flow)
{
    ds_policy_config c = base_config();
    c.conditional_flow = 1;
    check_policy(&c, "conditional flow L2", 9);
    c.joint_layers = 0;
    check_policy(&c, "conditional flow L0", 10);
    c.joint_layers = 1;
    c.learned_variance = 1;
    check_policy(&c, "conditional flow L1, learned variance", 11);
}
END_TEST

START_TEST(policy_everything_clipping_on)
{
    /* Clipping on with a limit nothing reaches: the same gradients as without. */
    ds_policy_config c = base_config();
    c.clipping = 1;
    c.gfn_clip = 1e4;
    c.lgv_clip = 1.5;  /* some grad log R entries are clipped: they are inputs, so FD still matches */
    c.langevin = 1;
    c.lgv_per_dim = 1;
    c.learned_variance = 1;
    c.conditional_flow = 1;
    check_policy(&c, "all on, clipping (nothing clipped)", 12);
}
END_TEST

START_TEST(policy_clipped_outputs_have_zero_gradient)
{
    ds_policy_config c = base_config();
    c.clipping = 1;
    c.learned_variance = 1;
    c.langevin = 1;
    c.gfn_clip = 0.3;
    policy_case pc;
    policy_case_init(&pc, 13);
    ds_policy *p = NULL;
    ck_assert_int_eq(ds_policy_create(&c, PS, PN, 20, &p), DS_OK);
    policy_loss(p, &pc, pc.x);
    /* The pre-clip outputs: some beyond the limit, some inside, none near it (FD would straddle the kink). */
    int clipped = 0, inside = 0;
    double margin = INFINITY;
    for (int i = 0; i < PN * 2 * PD; i++) {
        double o = fabs(p->out[i]);
        if (o > c.gfn_clip) clipped++;
        else inside++;
        if (fabs(o - c.gfn_clip) < margin) margin = fabs(o - c.gfn_clip);
    }
    ck_assert_msg(clipped > 0 && inside > 0, "clip case: %d clipped, %d inside", clipped, inside);
    ck_assert_msg(margin > 1e-4, "clip case: an output is %.3g from the limit", margin);
    for (int r = 0; r < PN; r++)
        for (int j = 0; j < PD; j++) {
            double mu = p->out[r * 2 * PD + j];
            if (fabs(mu) > c.gfn_clip) ck_assert(p->mean[r * PD + j] == (mu > 0 ? c.gfn_clip : -c.gfn_clip));
            else ck_assert(p->mean[r * PD + j] == mu);
        }
    /* A loss that only sees clipped outputs has zero gradient everywhere. */
    policy_case only = pc;
    for (int r = 0; r < PN; r++)
        for (int j = 0; j < PD; j++) {
            if (!(fabs(p->out[r * 2 * PD + j]) > c.gfn_clip)) only.cm[r * PD + j] = 0;
            if (!(fabs(p->out[r * 2 * PD + PD + j]) > c.gfn_clip)) only.cv[r * PD + j] = 0;
        }
    for (int r = 0; r < PN; r++) only.cf[r] = 0;
    ds_real dx[PN * PD];
    policy_analytic(p, &only, dx);
    ck_assert_msg(max_abs(p->arena.grads, p->arena.n) == 0.0, "clipped outputs leak gradient (max %g)",
                  max_abs(p->arena.grads, p->arena.n));
    ck_assert(max_abs(dx, PN * PD) == 0.0);
    ds_policy_destroy(&p);
    /* And the full loss matches central differences with part of the outputs clipped. */
    check_policy(&c, "clipping with outputs clipped", 13);
}
END_TEST

START_TEST(policy_lp_input_is_cleaned_and_clipped)
{
    ds_policy_config c = base_config();
    c.langevin = 1;
    c.lgv_per_dim = 1;
    c.clipping = 1;
    c.lgv_clip = 1.0;
    policy_case pc;
    policy_case_init(&pc, 14);
    ds_real g[PN * PD], clean[PN * PD], mean[PN * PD];
    memcpy(g, pc.g, sizeof g);
    g[0] = NAN;
    g[4] = INFINITY;
    g[7] = -INFINITY;
    g[10] = 1e30;
    for (int i = 0; i < PN * PD; i++) {
        double v = isnan(g[i]) ? 0.0 : g[i];
        clean[i] = v > 1.0 ? 1.0 : (v < -1.0 ? -1.0 : v);
    }
    ds_policy *p = NULL;
    ck_assert_int_eq(ds_policy_create(&c, PS, PN, 21, &p), DS_OK);
    ck_assert_int_eq(begin_brownian(p, PS, PR), DS_OK);
    ck_assert_int_eq(ds_policy_forward(p, 0, PS, pc.x, clean), DS_OK);
    memcpy(mean, p->mean, sizeof mean);
    ck_assert_int_eq(ds_policy_forward(p, 0, PS, pc.x, g), DS_OK);
    for (int i = 0; i < PN * PD; i++) ck_assert(isfinite(p->mean[i]));
    expect_close("LP with NaN/inf/large grad log R", p->mean, mean, PN * PD, 1e-15, 1e-15);
    /* LP really uses g: another g moves the mean. */
    ck_assert_int_eq(ds_policy_forward(p, 0, PS, pc.x, pc.x), DS_OK);
    ck_assert(fabs(p->mean[1] - mean[1]) > 1e-6);
    ck_assert_int_eq(ds_policy_forward(p, 0, PS, pc.x, NULL), DS_ERR_INVALID);
    ck_assert_int_eq(ds_policy_forward(p, 2, 2, pc.x, g), DS_ERR_INVALID);
    ck_assert_int_eq(begin_brownian(p, PS + 1, PR), DS_ERR_INVALID);
    ds_error_clear();
    ds_policy_destroy(&p);
}
END_TEST

/* ------------------------------------------------------------ reference */

/* The interface's contract (reference.h): the backward kernel is the Bayes
 * reversal of the reference chain, so a zero-drift, fixed-variance policy
 * IS the reference and every path has
 *   sum log p_F + log mu_0(x_0) - sum log p_B = log N(x_T; 0, v_T).
 * Checked for Brownian motion and the variance-preserving process, with the
 * Brownian coefficients also against the bridge of DESIGN.md 1 directly. */
static void check_reference(const ds_reference *ref, const char *label)
{
    enum { RB = 5, RD = 2 };
    const int T = ref->T;
    double v = ref->init_var;
    for (int i = 0; i < T; i++) {
        const ds_ref_step *st = &ref->step[i];
        const double q = st->s * st->sigma2, vn = st->a * st->a * v + q;
        ck_assert_msg(fabs(st->c - st->a * v / vn) < 1e-14, "%s: c of step %d", label, i);
        ck_assert_msg(fabs(st->r - v * q / vn) < 1e-14 * (1 + st->r), "%s: r of step %d", label, i);
        v = vn;
    }
    ck_assert_msg(fabs(v - ref->final_var) < 1e-12, "%s: v_T %g, final_var %g", label, v, ref->final_var);
    ds_energy *e = NULL;
    ck_assert_int_eq(ds_energy_create("gaussian", RD, NULL, &e), DS_OK);
    ds_policy_config c = base_config();
    c.dim = RD;
    c.zero_init = 1;  /* drift 0 */
    ds_policy *p = NULL;
    ck_assert_int_eq(ds_policy_create(&c, T, T * RB, 5, &p), DS_OK);
    ds_sim sim = {.policy = p, .energy = e, .ref = ref};
    ds_traj tr;
    ck_assert_int_eq(ds_traj_init(&tr, T, RB, RD, 0, 0, 0), DS_OK);
    ck_assert_int_eq(ds_sim_forward(&sim, &tr, RB, 0.0, ds_rng_make(3, DS_RNG_TEST), 0, 0, NULL), DS_OK);
    for (int pass = 0; pass < 2; pass++) {  /* forward paths, then backward paths from the same x_T */
        for (int b = 0; b < RB; b++) {
            double sum = 0, sq = 0;
            for (int i = 0; i < T; i++) sum += tr.log_pf[i * RB + b] - tr.log_pb[i * RB + b];
            for (int j = 0; j < RD; j++) sq += tr.states[((size_t)T * RB + b) * RD + j] * tr.states[((size_t)T * RB + b) * RD + j];
            const double want = -0.5 * (RD * (DS_LOG_2PI + log(ref->final_var)) + sq / ref->final_var);
            ck_assert_msg(fabs(sum - want) < 1e-10 * (1 + fabs(want)), "%s (%s paths): %.15g vs %.15g", label,
                          pass ? "backward" : "forward", sum, want);
            if (ref->init_var == 0)
                for (int j = 0; j < RD; j++) ck_assert(tr.states[b * RD + j] == 0);
            else
                ck_assert(tr.states[b * RD] != 0);
        }
        ds_real xT[RB * RD];
        memcpy(xT, tr.states + (size_t)T * RB * RD, sizeof xT);
        ck_assert_int_eq(ds_sim_backward(&sim, &tr, RB, xT, NULL, ds_rng_make(3, DS_RNG_TEST), 1, 0, NULL), DS_OK);
    }
    ds_traj_free(&tr);
    ds_policy_destroy(&p);
    ds_energy_destroy(&e);
}

START_TEST(reference_processes)
{
    ds_reference ref;
    ck_assert_int_eq(ds_reference_init_brownian(&ref, 6, 3.0), DS_OK);
    ck_assert_str_eq(ds_reference_name(&ref), "brownian");
    for (int i = 0; i < 6; i++) {  /* DESIGN.md 1: the bridge N(x_{i+1} i/(i+1), sigma2 dt i/(i+1)) */
        ck_assert(ref.step[i].c == i / (i + 1.0));
        ck_assert_double_eq_tol(ref.step[i].r, 3.0 / 6 * i / (i + 1.0), 1e-15);
        ck_assert(ref.step[i].a == 1.0 && ref.step[i].h == 1.0 / 6 && ref.step[i].s == 1.0 / 6);
    }
    check_reference(&ref, "brownian");
    ds_reference_free(&ref);
    ck_assert_int_eq(ds_reference_init_vp(&ref, 8, 1.5, 0.1, 10.0), DS_OK);
    ck_assert_str_eq(ds_reference_name(&ref), "vp");
    /* vp_10: beta from 10 at t = 0 to 0.1 at t = 1; the first step shrinks most */
    ck_assert_double_eq_tol(ref.step[0].a, exp(-0.25 * (10.0 + 10.0 - 9.9 / 8) / 8), 1e-15);
    ck_assert(ref.step[0].a < ref.step[7].a);
    check_reference(&ref, "vp");
    ds_reference_free(&ref);
    /* Euler-Maruyama (dis): a = c = 1 - B/2, s = B, r = sigma^2 B with B the step's integral of beta */
    ck_assert_int_eq(ds_reference_init_vp_em(&ref, 20, 1.5, 0.1, 10.0), DS_OK);
    ck_assert_str_eq(ds_reference_name(&ref), "vp-em");
    for (int i = 0; i < 20; i++) {
        const double b0 = 10.0 - 9.9 * i / 20, b1 = 10.0 - 9.9 * (i + 1) / 20, B = 0.5 * (b0 + b1) / 20;
        ck_assert_double_eq_tol(ref.step[i].a, 1 - B / 2, 1e-15);
        ck_assert(ref.step[i].c == ref.step[i].a);
        ck_assert_double_eq_tol(ref.step[i].s, B, 1e-15);
        ck_assert_double_eq_tol(ref.step[i].r, 1.5 * B, 1e-15);
        ck_assert(ref.step[i].h == 1.0 / 20 && ref.step[i].v == 1.5);
    }
    ck_assert(ref.init_var == 1.5);
    ds_reference_free(&ref);
    ck_assert_int_eq(ds_reference_init_vp_em(&ref, 2, 1.0, 0.1, 10.0), DS_ERR_CONFIG); /* int beta > 1 per step */
    ck_assert_int_eq(ds_reference_init_brownian(&ref, 0, 1.0), DS_ERR_INVALID);
    ck_assert_int_eq(ds_reference_init_vp(&ref, 4, 1.0, 2.0, 1.0), DS_ERR_INVALID);
    ds_error_clear();
}
END_TEST

/* ---------------------------------------------------------------- whole chain */

enum { CT = 4, CB = 3 };

typedef struct chain {
    ds_reference ref;
    ds_sim sim;
    ds_traj tr;
    ds_objective obj;
    ds_real d_pf[CT * CB], d_f[(CT + 1) * CB];
} chain;

static double chain_loss(chain *ch)
{
    ck_assert_msg(ds_sim_score(&ch->sim, &ch->tr, CB, NULL) == DS_OK, "score: %s", ds_error_message());
    ds_obj_input in;
    memset(&in, 0, sizeof in);
    in.T = CT;
    in.B = CB;
    in.log_pf = ch->tr.log_pf;
    in.log_pb = ch->tr.log_pb;
    in.log_f = ch->tr.log_f;
    in.subtb_lambda = 2.0;
    double loss = NAN;
    ck_assert_msg(ds_objective_eval(ch->obj, &in, &loss, ch->d_pf, ch->d_f) == DS_OK, "objective: %s",
                  ds_error_message());
    return loss;
}

/* log F_i = flow output + (1 - t_i) log N(x_i; 0, sigma^2 max(1, i) dt I) + t_i log R(x_i)
 * (DESIGN.md 1, FL-SubTB): the constants are invisible to finite differences. */
static void check_partial_energy(const chain *ch, const char *label)
{
    const int d = ch->tr.d;
    const double dt = 1.0 / CT, s2 = P_SIGMA2;
    ds_real lr[CT * CB];
    ck_assert_int_eq(ds_energy_log_reward(ch->sim.energy, CT * CB, ch->tr.states, lr, NULL), DS_OK);
    for (int i = 0; i < CT; i++)
        for (int b = 0; b < CB; b++) {
            const ds_real *x = ch->tr.states + (size_t)(i * CB + b) * d;
            const int vp = ch->ref.kind == DS_REF_VP; /* VP: stationary N(0, sigma^2), weight t_i = i/T */
            const double var = vp ? s2 : s2 * (i > 1 ? i : 1) * dt, t = vp ? (double)i / CT : i * dt;
            double sq = 0;
            for (int j = 0; j < d; j++) sq += x[j] * x[j];
            double log_n = -0.5 * d * (DS_LOG_2PI + log(var)) - 0.5 * sq / var;
            double want = ch->sim.policy->logf[i * CB + b] + (1 - t) * log_n + t * lr[i * CB + b];
            ck_assert_msg(fabs(ch->tr.log_f[i * CB + b] - want) <= 1e-12 * (1 + fabs(want)),
                          "%s: log F of step %d, trajectory %d is %.15g, expected %.15g", label, i, b,
                          ch->tr.log_f[i * CB + b], want);
        }
    for (int b = 0; b < CB; b++) ck_assert(ch->tr.log_f[CT * CB + b] == ch->tr.log_r[b]);
}

static void check_chain(const char *energy, int dim, ds_objective obj, const ds_policy_config *cfg,
                        int partial_energy, int vp, const char *label)
{
    ds_energy *e = NULL;
    ck_assert_msg(ds_energy_create(energy, dim, NULL, &e) == DS_OK, "%s: energy %s: %s", label, energy,
                  ds_error_message());
    ds_policy_config c = *cfg;
    c.dim = dim;
    chain ch;
    memset(&ch, 0, sizeof ch);
    ch.obj = obj;
    ck_assert_int_eq(ds_policy_create(&c, CT, CT * CB, 31, &ch.sim.policy), DS_OK);
    if (vp)
        ck_assert_int_eq(ds_reference_init_vp(&ch.ref, CT, P_SIGMA2, 0.1, 10.0), DS_OK);
    else
        ck_assert_int_eq(ds_reference_init_brownian(&ch.ref, CT, P_SIGMA2), DS_OK);
    ch.sim = (ds_sim){.policy = ch.sim.policy, .energy = e, .ref = &ch.ref, .partial_energy = partial_energy};
    ck_assert_int_eq(ds_traj_init(&ch.tr, CT, CB, dim, c.langevin, partial_energy, 0), DS_OK);
    /* Fixed states: x_0 = 0, x_1..x_T random (a random walk of the reference's scale). */
    randn(ch.tr.states + CB * dim, (size_t)CT * CB * dim, 300 + (uint64_t)obj, 1.0);
    for (int i = 2; i <= CT; i++)
        for (int k = 0; k < CB * dim; k++) ch.tr.states[i * CB * dim + k] += ch.tr.states[(i - 1) * CB * dim + k];
    ds_arena *a = &ch.sim.policy->arena;
    const size_t n = a->n;
    ds_real *grad = alloc_real(n), *fd = alloc_real(n);

    double loss = chain_loss(&ch);
    ck_assert(isfinite(loss) && loss > 0);
    if (partial_energy) check_partial_energy(&ch, label);
    ds_arena_zero_grad(a);
    ck_assert_msg(ds_sim_backprop(&ch.sim, &ch.tr, CB, ch.d_pf, ch.d_f) == DS_OK, "backprop: %s",
                  ds_error_message());
    memcpy(grad, a->grads, n * sizeof *grad);

    char what[192];
    for (int t = 0; t < a->ntensors; t++) {
        const ds_tensor_info *ti = &a->tensors[t];
        const size_t cnt = (size_t)ti->rows * ti->cols;
        ds_real *w = a->params + ti->offset;
        for (size_t k = 0; k < cnt; k++) {
            ds_real keep = w[k];
            w[k] = keep + FD_H;
            double lp = chain_loss(&ch);
            w[k] = keep - FD_H;
            double lm = chain_loss(&ch);
            w[k] = keep;
            fd[ti->offset + k] = (lp - lm) / (2 * FD_H);
        }
        snprintf(what, sizeof what, "%s: d loss / d %s", label, ti->name);
        expect_close(what, grad + ti->offset, fd + ti->offset, cnt, 1e-6, 1e-5);
        ck_assert_msg(max_abs(grad + ti->offset, cnt) > 1e-8, "%s: gradient of %s is zero", label, ti->name);
    }
    free(grad);
    free(fd);
    ds_traj_free(&ch.tr);
    ds_reference_free(&ch.ref);
    ds_policy_destroy(&ch.sim.policy);
    ds_energy_destroy(&e);
}

START_TEST(chain_tb_langevin)
{
    ds_policy_config c = base_config();
    c.langevin = 1;
    c.learned_variance = 1;
    check_chain("gaussian", 3, DS_OBJ_TB, &c, 0, 0, "TB + LP + learned variance on gaussian(3)");
    c.lgv_per_dim = 1;
    c.learned_variance = 0;
    check_chain("25gmm", 2, DS_OBJ_TB, &c, 0, 0, "TB + LP per dim on 25gmm");
    c.learned_variance = 1;
    check_chain("gaussian", 3, DS_OBJ_TB, &c, 0, 1, "TB + LP + learned variance on gaussian(3), VP reference");
}
END_TEST

START_TEST(chain_subtb_flow_partial_energy)
{
    ds_policy_config c = base_config();
    c.conditional_flow = 1;
    check_chain("25gmm", 2, DS_OBJ_SUBTB, &c, 1, 0, "SubTB + flow + partial energy on 25gmm");
    c.learned_variance = 1;
    check_chain("gaussian", 3, DS_OBJ_FLSUBTB, &c, 1, 0, "FL-SubTB + flow + learned variance on gaussian(3)");
    check_chain("gaussian", 3, DS_OBJ_DB, &c, 0, 0, "DB + flow + learned variance on gaussian(3)");
    check_chain("gaussian", 3, DS_OBJ_FLSUBTB, &c, 1, 1, "FL-SubTB + flow on gaussian(3), VP reference");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("nn");
    TCase *layers = tcase_create("layers");
    tcase_add_test(layers, linear_forward_matches_naive);
    tcase_add_test(layers, linear_backward_matches_fd_and_accumulates);
    tcase_add_test(layers, gelu_forward_and_backward);
    tcase_add_test(layers, mlp_forward_and_backward);
    tcase_add_test(layers, reference_processes);
    tcase_add_test(layers, fourier_forward_and_phase_gradient);
    tcase_add_test(layers, arena_bookkeeping);
    tcase_add_test(layers, adam_matches_torch_formula);
    suite_add_tcase(s, layers);
    TCase *policy = tcase_create("policy");
    tcase_set_timeout(policy, 120);
    tcase_add_test(policy, policy_plain);
    tcase_add_test(policy, policy_learned_variance);
    tcase_add_test(policy, policy_langevin);
    tcase_add_test(policy, policy_conditional_flow);
    tcase_add_test(policy, policy_everything_clipping_on);
    tcase_add_test(policy, policy_clipped_outputs_have_zero_gradient);
    tcase_add_test(policy, policy_lp_input_is_cleaned_and_clipped);
    suite_add_tcase(s, policy);
    TCase *chain_tc = tcase_create("chain");
    tcase_set_timeout(chain_tc, 120);
    tcase_add_test(chain_tc, chain_tb_langevin);
    tcase_add_test(chain_tc, chain_subtb_flow_partial_energy);
    suite_add_tcase(s, chain_tc);
    return ds_test_run(s);
}
