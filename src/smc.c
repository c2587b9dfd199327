/* smc: annealed SMC from a Gaussian to the target (see include/diffsamp/smc.h). */
#include "diffsamp/smc.h"
#include "diffsamp/mpicheck.h"
#include "diffsamp/rng.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Counter steps of the SMC stream, so no two uses of it overlap. */
enum { STEP_PROPOSAL = 0, STEP_ACCEPT = 1, STEP_RESAMPLE = 2, STEP_INIT = 3 };
#define RESAMPLE_SAMPLE 0 /* the one uniform of a resampling: sample 0 of its own step */

void ds_smc_config_defaults(ds_smc_config *c)
{
    memset(c, 0, sizeof *c);
    c->particles = 2000;
    c->levels = 100;
    c->mcmc_steps = 2;
    c->init_var = 1.0;
    c->ess_threshold = 0.5;
    c->step = 0.05;
    c->target_acceptance = 0.574;
}

ds_status ds_smc_local(MPI_Comm comm, long particles, long *n_local, long *first)
{
    int rank, size;
    DS_MPI(MPI_Comm_rank(comm, &rank));
    DS_MPI(MPI_Comm_size(comm, &size));
    const long base = particles / size, extra = particles % size;
    *n_local = base + (rank < extra);
    *first = rank * base + (rank < extra ? rank : extra);
    return DS_OK;
}

typedef struct smc_ws {
    MPI_Comm comm;
    const ds_energy *e;
    const ds_smc_config *c;
    int d, size;
    long n, first, N;
    ds_real *lr, *g, *xp, *lrp, *gp;  /* (n), (n, d), (n, d), (n), (n, d) */
    double *all_lw;                   /* (N) */
    ds_real *all_x, *all_lr, *all_g;  /* (N, d), (N), (N, d): gathered for resampling */
    int *counts, *displs;             /* (size) each, in particles */
    int *counts_d, *displs_d;         /* (size) each, in reals */
    long evals;
} smc_ws;

static MPI_Datatype real_type(void) { return sizeof(ds_real) == sizeof(double) ? MPI_DOUBLE : MPI_FLOAT; }

static double log_ref(const smc_ws *w, const ds_real *x)
{
    double sq = 0;
    for (int j = 0; j < w->d; j++) sq += (double)x[j] * x[j];
    return -0.5 * (w->d * (DS_LOG_2PI + log(w->c->init_var)) + sq / w->c->init_var);
}

/* log gamma_b(x) and its gradient into grad (d). */
static double log_gamma(const smc_ws *w, double b, const ds_real *x, double lr, const ds_real *g, double *grad)
{
    for (int j = 0; j < w->d; j++) grad[j] = (1 - b) * (-(double)x[j] / w->c->init_var) + b * (double)g[j];
    return (1 - b) * log_ref(w, x) + b * lr;
}

static double lse(const double *v, long n)
{
    double m = -INFINITY, s = 0;
    for (long i = 0; i < n; i++) m = v[i] > m ? v[i] : m;
    if (!isfinite(m)) return m;
    for (long i = 0; i < n; i++) s += exp(v[i] - m);
    return m + log(s);
}

/* log sum exp(2 v): with lse, the ESS (sum w)^2 / sum w^2 in logs. */
static double lse2(const double *v, long n)
{
    double m = -INFINITY, s = 0;
    for (long i = 0; i < n; i++) m = v[i] > m ? v[i] : m;
    if (!isfinite(m)) return m;
    for (long i = 0; i < n; i++) s += exp(2 * (v[i] - m));
    return 2 * m + log(s);
}

/* Gathers every rank's log-weights in global index order; NaN (log R not a
 * number) counts as zero weight. */
static ds_status gather_lw(smc_ws *w, const double *lw)
{
    DS_MPI(MPI_Allgatherv(lw, (int)w->n, MPI_DOUBLE, w->all_lw, w->counts, w->displs, MPI_DOUBLE, w->comm));
    for (long i = 0; i < w->N; i++)
        if (isnan(w->all_lw[i])) w->all_lw[i] = -INFINITY;
    return DS_OK;
}

/* Systematic resampling on the gathered arrays: global position k takes the
 * particle whose cumulative normalised weight interval holds (u + k) / N. */
static ds_status resample(smc_ws *w, ds_real *x, double *lw, int level)
{
    const int d = w->d;
    DS_MPI(MPI_Allgatherv(x, (int)(w->n * d), real_type(), w->all_x, w->counts_d, w->displs_d, real_type(), w->comm));
    DS_MPI(MPI_Allgatherv(w->lr, (int)w->n, real_type(), w->all_lr, w->counts, w->displs, real_type(), w->comm));
    DS_MPI(MPI_Allgatherv(w->g, (int)(w->n * d), real_type(), w->all_g, w->counts_d, w->displs_d, real_type(),
                          w->comm));
    const double L = lse(w->all_lw, w->N);
    double u;
    ds_rng_uniform_d(ds_rng_make(w->c->seed, DS_RNG_SMC), (uint64_t)level, RESAMPLE_SAMPLE, STEP_RESAMPLE, 1, &u);
    long anc = 0;
    double cum = exp(w->all_lw[0] - L);
    for (long k = 0; k < w->first + w->n; k++) {
        const double point = (u + (double)k) / (double)w->N;
        while (cum < point && anc + 1 < w->N) cum += exp(w->all_lw[++anc] - L);
        if (k < w->first) continue;
        const long i = k - w->first;
        memcpy(x + (size_t)i * d, w->all_x + (size_t)anc * d, sizeof(ds_real) * (size_t)d);
        memcpy(w->g + (size_t)i * d, w->all_g + (size_t)anc * d, sizeof(ds_real) * (size_t)d);
        w->lr[i] = w->all_lr[anc];
        lw[i] = 0;
    }
    return DS_OK;
}

/* mcmc_steps MALA moves targeting gamma_b; adds accepted and proposed counts. */
static ds_status mala(smc_ws *w, ds_real *x, double b, int level, double eps, long *accepted)
{
    const int d = w->d;
    const ds_rng r = ds_rng_make(w->c->seed, DS_RNG_SMC);
    double *ga = malloc(sizeof(double) * (size_t)d * 2);
    DS_ALLOC_CHECK(ga);
    double *gb = ga + d;
    ds_status rc = DS_OK;
    for (int s = 0; s < w->c->mcmc_steps && rc == DS_OK; s++) {
        const uint64_t it = 1 + (uint64_t)(level - 1) * (uint64_t)w->c->mcmc_steps + (uint64_t)s;
        ds_rng_normal_batch(r, it, (uint64_t)w->first, (int)w->n, STEP_PROPOSAL, d, w->xp);
        for (long i = 0; i < w->n; i++) {
            const ds_real *xi = x + (size_t)i * d;
            log_gamma(w, b, xi, w->lr[i], w->g + (size_t)i * d, ga);
            ds_real *yi = w->xp + (size_t)i * d;
            for (int j = 0; j < d; j++) yi[j] = (ds_real)((double)xi[j] + eps * ga[j] + sqrt(2 * eps) * (double)yi[j]);
        }
        rc = ds_energy_log_reward(w->e, (int)w->n, w->xp, w->lrp, w->gp);
        w->evals += w->n;
        if (rc != DS_OK) break;
        for (long i = 0; i < w->n; i++) {
            ds_real *xi = x + (size_t)i * d, *yi = w->xp + (size_t)i * d;
            const double lx = log_gamma(w, b, xi, w->lr[i], w->g + (size_t)i * d, ga);
            const double ly = log_gamma(w, b, yi, w->lrp[i], w->gp + (size_t)i * d, gb);
            double fwd = 0, bwd = 0;  /* log q(y | x), log q(x | y) up to the same constant */
            for (int j = 0; j < d; j++) {
                const double a = (double)yi[j] - (double)xi[j] - eps * ga[j];
                const double c = (double)xi[j] - (double)yi[j] - eps * gb[j];
                fwd += a * a;
                bwd += c * c;
            }
            const double log_alpha = ly - lx - (bwd - fwd) / (4 * eps);
            double u;
            ds_rng_uniform_d(r, it, (uint64_t)(w->first + i), STEP_ACCEPT, 1, &u);
            if (isfinite(ly) && log(u) < log_alpha) {
                memcpy(xi, yi, sizeof(ds_real) * (size_t)d);
                memcpy(w->g + (size_t)i * d, w->gp + (size_t)i * d, sizeof(ds_real) * (size_t)d);
                w->lr[i] = w->lrp[i];
                (*accepted)++;
            }
        }
    }
    free(ga);
    return rc;
}

static void ws_free(smc_ws *w)
{
    DS_FREE(w->lr);
    DS_FREE(w->g);
    DS_FREE(w->xp);
    DS_FREE(w->lrp);
    DS_FREE(w->gp);
    DS_FREE(w->all_x);
    DS_FREE(w->all_lr);
    DS_FREE(w->all_g);
    free(w->all_lw);
    free(w->counts);
}

ds_status ds_smc_run(MPI_Comm comm, const ds_energy *e, const ds_smc_config *c, ds_real *x, double *log_w,
                     ds_smc_result *res)
{
    DS_CHECK(e && c && x && log_w && res, DS_ERR_INVALID, "ds_smc_run: NULL argument");
    DS_CHECK(c->particles >= 1 && c->particles <= 100000000 && c->levels >= 1 && c->mcmc_steps >= 0,
             DS_ERR_CONFIG, "SMC needs 1..1e8 particles, levels >= 1 and mcmc_steps >= 0 (got %ld, %d, %d)",
             c->particles, c->levels, c->mcmc_steps);
    DS_CHECK((double)c->particles * e->dim <= (double)INT_MAX, DS_ERR_CONFIG,
             "SMC: %ld particles of dimension %d are more than one MPI message can gather (%d numbers); use fewer "
             "particles", c->particles, e->dim, INT_MAX);
    DS_CHECK((double)c->levels * (c->mcmc_steps + 1) < 4294967295.0, DS_ERR_CONFIG,
             "SMC: levels x (mcmc_steps + 1) = %.0f exceeds the generator's 32-bit iteration counter",
             (double)c->levels * (c->mcmc_steps + 1));
    DS_CHECK(c->init_var > 0 && c->step > 0 && c->ess_threshold >= 0 && c->ess_threshold <= 1 &&
                 c->target_acceptance > 0 && c->target_acceptance < 1,
             DS_ERR_CONFIG, "SMC: init_var and step must be > 0, ess_threshold in [0, 1], target_acceptance in (0, 1)");
    smc_ws w;
    memset(&w, 0, sizeof w);
    w.comm = comm;
    w.e = e;
    w.c = c;
    w.d = e->dim;
    w.N = c->particles;
    DS_MPI(MPI_Comm_size(comm, &w.size));
    DS_TRY(ds_smc_local(comm, c->particles, &w.n, &w.first));
    const int d = w.d;
    const size_t nd = (size_t)(w.n > 0 ? w.n : 1) * d, Nd = (size_t)w.N * d;
    w.lr = ds_calloc((size_t)(w.n > 0 ? w.n : 1), sizeof(ds_real));
    w.lrp = ds_calloc((size_t)(w.n > 0 ? w.n : 1), sizeof(ds_real));
    w.g = ds_calloc(nd, sizeof(ds_real));
    w.xp = ds_calloc(nd, sizeof(ds_real));
    w.gp = ds_calloc(nd, sizeof(ds_real));
    w.all_x = ds_calloc(Nd, sizeof(ds_real));
    w.all_g = ds_calloc(Nd, sizeof(ds_real));
    w.all_lr = ds_calloc((size_t)w.N, sizeof(ds_real));
    w.all_lw = malloc(sizeof(double) * (size_t)w.N);
    w.counts = malloc(sizeof(int) * (size_t)w.size * 4);
    ds_status rc = DS_OK;
    if (!w.lr || !w.lrp || !w.g || !w.xp || !w.gp || !w.all_x || !w.all_g || !w.all_lr || !w.all_lw || !w.counts) {
        ws_free(&w);
        return ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__, "out of memory for %ld SMC particles in d = %d",
                            w.N, d);
    }
    w.displs = w.counts + w.size;
    w.counts_d = w.counts + 2 * w.size;
    w.displs_d = w.counts + 3 * w.size;
    for (int q = 0; q < w.size; q++) {
        const long base = w.N / w.size, extra = w.N % w.size;
        w.counts[q] = (int)(base + (q < extra));
        w.displs[q] = (int)(q * base + (q < extra ? q : extra));
        w.counts_d[q] = w.counts[q] * d;
        w.displs_d[q] = w.displs[q] * d;
    }
    const ds_rng r = ds_rng_make(c->seed, DS_RNG_SMC);
    ds_rng_normal_batch(r, 0, (uint64_t)w.first, (int)w.n, STEP_INIT, d, x);
    const double sd = sqrt(c->init_var);
    for (size_t k = 0; k < (size_t)w.n * d; k++) x[k] = (ds_real)(sd * (double)x[k]);
    DS_TRY_GOTO(rc, ds_energy_log_reward(e, (int)w.n, x, w.lr, w.g), done);
    w.evals += w.n;
    for (long i = 0; i < w.n; i++) log_w[i] = 0;
    double log_z = 0, eps = c->step;
    long acc_total = 0, prop_total = 0, resamplings = 0;
    for (int k = 1; k <= c->levels; k++) {
        const double b0 = (double)(k - 1) / c->levels, b1 = (double)k / c->levels;
        for (long i = 0; i < w.n; i++)
            log_w[i] += (b1 - b0) * ((double)w.lr[i] - log_ref(&w, x + (size_t)i * d));
        DS_TRY_GOTO(rc, gather_lw(&w, log_w), done);
        const double L = lse(w.all_lw, w.N);
        if (!isfinite(L)) {
            rc = ds_error_set(DS_ERR_NUMERIC, __FILE__, __LINE__, __func__,
                              "SMC: every particle has zero weight at level %d of %d", k, c->levels);
            goto done;
        }
        const double ess = exp(2 * L - lse2(w.all_lw, w.N)) / (double)w.N;
        if (ess < c->ess_threshold && k < c->levels) {
            log_z += L - log((double)w.N);
            DS_TRY_GOTO(rc, resample(&w, x, log_w, k), done);
            resamplings++;
        }
        if (c->mcmc_steps > 0) {
            long acc = 0;
            DS_TRY_GOTO(rc, mala(&w, x, b1, k, eps, &acc), done);
            long both[2] = {acc, w.n * (long)c->mcmc_steps};
            DS_MPI_GOTO(rc, done, MPI_Allreduce(MPI_IN_PLACE, both, 2, MPI_LONG, MPI_SUM, comm));
            acc_total += both[0];
            prop_total += both[1];
            eps *= (double)both[0] / (double)both[1] > c->target_acceptance ? 1.1 : 0.9;
        }
    }
    DS_TRY_GOTO(rc, gather_lw(&w, log_w), done);
    const double L = lse(w.all_lw, w.N);
    res->log_z = log_z + L - log((double)w.N);
    res->ess = exp(2 * L - lse2(w.all_lw, w.N)) / (double)w.N;
    res->acceptance = prop_total ? (double)acc_total / (double)prop_total : 0;
    res->step = eps;
    res->resamplings = resamplings;
    for (long i = 0; i < w.n; i++) log_w[i] = (isnan(log_w[i]) ? -INFINITY : log_w[i]) - (L - log((double)w.N));
    long ev = w.evals;
    DS_MPI_GOTO(rc, done, MPI_Allreduce(&ev, &res->energy_evals, 1, MPI_LONG, MPI_SUM, comm));
done:
    ws_free(&w);
    return rc;
}
