/* many_well: the Many-Well target of the reference (GFNOrg/gfn-diffusion,
 * energy_sampling/energies/many_well.py): d/2 independent 2-D double wells
 *   log R = sum_p [ g(x_{2p}) - x_{2p+1}^2 / 2 ],  g(a) = -a^4 + 6 a^2 + a/2.
 * It factorises, so
 *   log Z = (d/2) (log Z1 + log(2 pi)/2),  Z1 = int exp(g(a)) da,
 * with Z1 computed at create time by trapezoidal quadrature (spectrally
 * accurate for this analytic, super-exponentially decaying integrand); for
 * d = 32 this reproduces the reference's 164.6956753197969 (which uses
 * Z1 = 11784.50927).
 *
 * Exact samples, as in the reference: each first coordinate by rejection
 * sampling from the proposal q = 0.2 N(-1.7, 0.5^2) + 0.8 N(1.7, 0.5^2)
 * with envelope M >= sup exp(g)/q (computed at create time on a fine grid
 * with a safety margin; the reference uses 3 Z1), each second coordinate
 * standard normal. */
#include "diffsamp/energy.h"

#include <math.h>
#include <stdlib.h>

#define MW_MAX_DIM 65536 /* two rng steps per pair, and steps are 16-bit */

typedef struct mw_state {
    double log_z1;     /* log of the 1-D double-well integral */
    double log_m;      /* log envelope: g(a) <= log_m + log q(a) for all a */
} mw_state;

static double mw_g(double a) { return -a * a * a * a + 6.0 * a * a + 0.5 * a; }

/* log q(a) for the reference's two-component proposal. */
static double mw_log_q(double a)
{
    const double s = 0.5;
    double l1 = log(0.2) - 0.5 * ((a + 1.7) / s) * ((a + 1.7) / s);
    double l2 = log(0.8) - 0.5 * ((a - 1.7) / s) * ((a - 1.7) / s);
    double mx = l1 > l2 ? l1 : l2;
    return mx + log(exp(l1 - mx) + exp(l2 - mx)) - log(s) - 0.5 * DS_LOG_2PI;
}

/* Trapezoid rule for int exp(g - shift) over [-8, 8] (g(+-8) < -3700, so the
 * truncation is far below double precision), halving the step until the
 * estimate settles to 1e-15 relative. Returns log Z1. */
static double mw_log_z1(void)
{
    const double lo = -8.0, hi = 8.0, shift = 10.0; /* max g is about 9.87 */
    int m = 256;
    double h = (hi - lo) / m;
    double sum = 0.5 * (exp(mw_g(lo) - shift) + exp(mw_g(hi) - shift));
    for (int i = 1; i < m; i++) sum += exp(mw_g(lo + i * h) - shift);
    double est = sum * h;
    for (int level = 0; level < 12; level++) {
        for (int i = 0; i < m; i++) sum += exp(mw_g(lo + (i + 0.5) * h) - shift);
        m *= 2;
        h *= 0.5;
        double next = sum * h;
        int done = fabs(next - est) <= 1e-15 * next;
        est = next;
        if (done && level >= 2) break;
    }
    return log(est) + shift;
}

/* sup_a g(a) - log q(a): the ratio vanishes beyond |a| = 4 (g falls like
 * -a^4, log q like -2 a^2), so a grid of step 1e-4 on [-5, 5] finds the
 * maximum to within 1e-6 (the maximum is smooth); 1e-3 is added as margin. */
static double mw_log_envelope(void)
{
    double best = -INFINITY;
    for (int i = 0; i <= 100000; i++) {
        double a = -5.0 + 1e-4 * i;
        double r = mw_g(a) - mw_log_q(a);
        if (r > best) best = r;
    }
    return best + 1e-3;
}

static ds_status mw_check_dim(int dim)
{
    DS_CHECK(dim >= 2 && dim % 2 == 0 && dim <= MW_MAX_DIM, DS_ERR_CONFIG,
             "many_well is a product of 2-D double wells, so dim must be even "
             "(2 <= dim <= %d); got dim = %d (the reference uses 32, the default)",
             MW_MAX_DIM, dim);
    return DS_OK;
}

static ds_status mw_create(int dim, const ds_energy_args *args, void **state)
{
    (void)dim;
    (void)args;
    mw_state *s = malloc(sizeof *s);
    DS_ALLOC_CHECK(s);
    s->log_z1 = mw_log_z1();
    s->log_m = mw_log_envelope();
    *state = s;
    return DS_OK;
}

static void mw_destroy(void *state) { free(state); }

static ds_status mw_log_reward(const void *state, int dim, int n, const ds_real *x,
                               const ds_real *cond, ds_real *log_r, ds_real *grad)
{
    (void)state;
    (void)cond;
    for (int k = 0; k < n; k++) {
        const ds_real *xk = x + (size_t)k * dim;
        double acc = 0.0;
        for (int p = 0; p < dim; p += 2) {
            double a = (double)xk[p], b = (double)xk[p + 1];
            acc += mw_g(a) - 0.5 * b * b;
            if (grad) {
                grad[(size_t)k * dim + p] = (ds_real)(-4.0 * a * a * a + 12.0 * a + 0.5);
                grad[(size_t)k * dim + p + 1] = (ds_real)(-b);
            }
        }
        log_r[k] = (ds_real)acc;
    }
    return DS_OK;
}

/* The Hessian is diagonal: 12 - 12 a^2 for first coordinates, -1 otherwise. */
static ds_status mw_hvp(const void *state, int dim, int n, const ds_real *x, const ds_real *cond,
                        const ds_real *v, ds_real *hv)
{
    (void)state;
    (void)cond;
    for (size_t i = 0; i < (size_t)n * (size_t)dim; i += 2) {
        double a = (double)x[i];
        hv[i] = (ds_real)((12.0 - 12.0 * a * a) * (double)v[i]);
        hv[i + 1] = (ds_real)(-(double)v[i + 1]);
    }
    return DS_OK;
}

/* One first coordinate by rejection, as a pure function of (r, sample, pair):
 * attempt t reads uniforms 4t..4t+3 of the stream at step 2 pair (component,
 * two for Box-Muller, acceptance). The buffer holds the first `*cap` of them;
 * since a prefix of a longer draw is the shorter draw, it is redrawn twice as
 * long when exhausted. Acceptance is about Z1/M = 0.4, so the first 4
 * attempts suffice 6 times in 7. */
static ds_status mw_sample_first(const mw_state *s, ds_rng r, uint64_t sample, int pair,
                                 double **buf, int *cap, double *out)
{
    const uint32_t step = (uint32_t)(2 * pair);
    int have = 16;
    if (*cap < have) {
        double *nb = realloc(*buf, sizeof *nb * (size_t)have);
        DS_ALLOC_CHECK(nb);
        *buf = nb;
        *cap = have;
    }
    ds_rng_uniform_d(r, 0, sample, step, have, *buf);
    for (int t = 0;; t++) {
        if (4 * t + 4 > have) {
            DS_CHECK(have < (1 << 22), DS_ERR_NUMERIC,
                     "many_well rejection sampler: no acceptance after %d attempts "
                     "(envelope log M = %g)", t, s->log_m);
            have *= 2;
            if (*cap < have) {
                double *nb = realloc(*buf, sizeof *nb * (size_t)have);
                DS_ALLOC_CHECK(nb);
                *buf = nb;
                *cap = have;
            }
            ds_rng_uniform_d(r, 0, sample, step, have, *buf);
        }
        const double *u = *buf + 4 * t;
        double mu = u[0] < 0.2 ? -1.7 : 1.7;
        double z = sqrt(-2.0 * log(u[1])) * cos(2.0 * 3.14159265358979323846 * u[2]);
        double a = mu + 0.5 * z;
        if (log(u[3]) + s->log_m + mw_log_q(a) < mw_g(a)) {
            *out = a;
            return DS_OK;
        }
    }
}

static ds_status mw_sample(const void *state, int dim, ds_rng r, uint64_t first, int n, ds_real *x)
{
    const mw_state *s = state;
    double *buf = NULL;
    int cap = 0;
    ds_status rc = DS_OK;
    for (int k = 0; k < n; k++) {
        uint64_t sample = first + (uint64_t)k;
        for (int p = 0; p < dim / 2; p++) {
            double a = 0.0, b = 0.0;
            DS_TRY_GOTO(rc, mw_sample_first(s, r, sample, p, &buf, &cap, &a), done);
            ds_rng_normal_d(r, 0, sample, (uint32_t)(2 * p + 1), 1, &b);
            x[(size_t)k * dim + 2 * p] = (ds_real)a;
            x[(size_t)k * dim + 2 * p + 1] = (ds_real)b;
        }
    }
done:
    free(buf);
    return rc;
}

static ds_status mw_log_z(const void *state, int dim, double *log_z)
{
    const mw_state *s = state;
    *log_z = 0.5 * dim * (s->log_z1 + 0.5 * DS_LOG_2PI);
    return DS_OK;
}

const ds_energy_vtable ds_energy_many_well = {
    .abi_version = DS_ENERGY_ABI_VERSION,
    .name = "many_well",
    .doc = "d/2 double wells, log R = sum -a^4 + 6a^2 + a/2 - b^2/2 (unnormalised)",
    .default_dim = 32,
    .dims = "even, 2 to 65536",
    .check_dim = mw_check_dim,
    .create = mw_create,
    .destroy = mw_destroy,
    .log_reward = mw_log_reward,
    .hvp = mw_hvp,
    .sample = mw_sample,
    .log_z = mw_log_z,
};
