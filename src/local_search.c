/* local_search: batched MALA with the reference's step-size schedule. */
#include "diffsamp/local_search.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ds_ls_params_init(ds_ls_params *p)
{
    if (p == NULL) return;
    memset(p, 0, sizeof(*p));
    p->max_iter = 200;
    p->burn_in = 100;
    p->step = DS_LS_DEFAULT_STEP;
    p->target_acceptance = 0.574;
    p->adapt_up = 1.01;
    p->adapt_down = 0.99;
    p->beta = 1.0;
    p->adapt_every = 5;
    p->reduce = NULL;
    p->reduce_ctx = NULL;
}

ds_status ds_ls_params_check(const ds_ls_params *p)
{
    DS_CHECK(p != NULL, DS_ERR_INVALID, "params must not be NULL");
    DS_CHECK(p->max_iter >= 1 && p->max_iter <= DS_LS_UNIFORM_STEP, DS_ERR_INVALID,
             "max_iter must be in [1, %d], got %d", DS_LS_UNIFORM_STEP, p->max_iter);
    DS_CHECK(p->burn_in >= 0, DS_ERR_INVALID, "burn_in must be >= 0, got %d", p->burn_in);
    DS_CHECK(isfinite(p->step) && p->step > 0.0, DS_ERR_INVALID, "step must be finite and > 0, got %g",
             p->step);
    DS_CHECK(p->target_acceptance >= 0.0 && p->target_acceptance <= 1.0, DS_ERR_INVALID,
             "target_acceptance must be in [0, 1], got %g", p->target_acceptance);
    DS_CHECK(isfinite(p->adapt_up) && p->adapt_up > 0.0 && isfinite(p->adapt_down) && p->adapt_down > 0.0,
             DS_ERR_INVALID, "adapt_up and adapt_down must be finite and > 0, got %g and %g",
             p->adapt_up, p->adapt_down);
    DS_CHECK(isfinite(p->beta) && p->beta > 0.0, DS_ERR_INVALID, "beta must be finite and > 0, got %g",
             p->beta);
    DS_CHECK(p->adapt_every >= 1, DS_ERR_INVALID, "adapt_every must be >= 1, got %d", p->adapt_every);
    return DS_OK;
}

double ds_ls_log_accept_ratio(int dim, double step, double beta, const ds_real *x, double log_r,
                              const ds_real *grad, const ds_real *xp, double log_rp,
                              const ds_real *grad_p)
{
    if (!isfinite(log_rp)) return -INFINITY;
    for (int j = 0; j < dim; j++)
        if (!isfinite(grad_p[j])) return -INFINITY;
    if (!isfinite(log_r)) return INFINITY;
    /* ||x' - x - eta beta g(x)||^2 and ||x - x' - eta beta g(x')||^2 */
    double fwd = 0.0, bwd = 0.0;
    for (int j = 0; j < dim; j++) {
        double a = (double)xp[j] - (double)x[j] - step * beta * (double)grad[j];
        double b = (double)x[j] - (double)xp[j] - step * beta * (double)grad_p[j];
        fwd += a * a;
        bwd += b * b;
    }
    double la = beta * (log_rp - log_r) + (fwd - bwd) / (4.0 * step);
    return isnan(la) ? -INFINITY : la;
}

/* Appends row x (d) to the collected rows of width w: x, then, on a
 * conditional target (w = d + 1), its condition's index. */
static void collect_row(ds_real *cx, size_t at, int d, int w, const ds_real *x, const int32_t *idx, int k)
{
    memcpy(cx + at * (size_t)w, x, (size_t)d * sizeof(ds_real));
    if (w > d) cx[at * (size_t)w + d] = (ds_real)idx[k];
}

/* The MALA chains of ds_ls_run and ds_ls_run_cond: chain k targets
 * log R(. | cond[k]) when cond is not NULL, and its collected rows then carry
 * idx[k] after the state. Arguments are checked by the callers. */
static ds_status ls_chains(const ds_energy *e, const ds_ls_params *p, ds_rng r, uint64_t iteration,
                           uint64_t first_sample, int n, ds_real *x, const ds_real *cond, const int32_t *idx,
                           ds_buffer *out_buffer, ds_ls_stats *stats)
{
    const int d = e->dim, w = cond ? d + 1 : d; /* width of a collected row */
    const size_t nd = (size_t)n * (size_t)d;
    const double beta = p->beta;
    const int collect_steps = p->max_iter - 1 > p->burn_in ? p->max_iter - 1 - p->burn_in : 0;
    const size_t collect_cap = out_buffer ? (size_t)n * (size_t)collect_steps : 0;

    ds_status rc = DS_OK;
    /* workspace: current log R and gradient, proposal with its log R and
     * gradient, one noise vector, and the collected accepted proposals */
    ds_real *lr = ds_calloc((size_t)n, sizeof(ds_real));
    ds_real *g = ds_calloc(nd, sizeof(ds_real));
    ds_real *xp = ds_calloc(nd, sizeof(ds_real));
    ds_real *lrp = ds_calloc((size_t)n, sizeof(ds_real));
    ds_real *gp = ds_calloc(nd, sizeof(ds_real));
    double *xi = ds_calloc((size_t)d, sizeof(double));
    ds_real *cx = collect_cap ? ds_calloc(collect_cap * (size_t)w, sizeof(ds_real)) : NULL;
    ds_real *clr = collect_cap ? ds_calloc(collect_cap, sizeof(ds_real)) : NULL;
    if (!lr || !g || !xp || !lrp || !gp || !xi || (collect_cap && (!cx || !clr))) {
        rc = ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__,
                          "out of memory for local search on %d chains of dim %d", n, d);
        goto done;
    }

    if (n > 0) DS_TRY_GOTO(rc, ds_energy_log_reward_cond(e, n, x, cond, lr, g), done);

    double step = p->step;
    double rate = 0.0;
    double win_acc = 0.0, win_prop = 0.0;
    double all_acc = 0.0, all_prop = 0.0, post_acc = 0.0, post_prop = 0.0;
    size_t n_collected = 0;
    for (int s = 0; s < p->max_iter; s++) {
        if (s > 0) step *= rate > p->target_acceptance ? p->adapt_up : p->adapt_down;
        const double drift = step * beta, noise = sqrt(2.0 * step);

        /* x' = x + eta beta g(x) + sqrt(2 eta) xi */
        for (int k = 0; k < n; k++) {
            ds_rng_normal_d(r, iteration, first_sample + (uint64_t)k, (uint32_t)s, d, xi);
            const ds_real *xk = x + (size_t)k * d, *gk = g + (size_t)k * d;
            ds_real *xpk = xp + (size_t)k * d;
            for (int j = 0; j < d; j++)
                xpk[j] = (ds_real)((double)xk[j] + drift * (double)gk[j] + noise * xi[j]);
        }
        if (n > 0) DS_TRY_GOTO(rc, ds_energy_log_reward_cond(e, n, xp, cond, lrp, gp), done);

        double acc = 0.0;
        for (int k = 0; k < n; k++) {
            size_t o = (size_t)k * d;
            double la = ds_ls_log_accept_ratio(d, step, beta, x + o, (double)lr[k], g + o, xp + o,
                                               (double)lrp[k], gp + o);
            double u;
            ds_rng_uniform_d(r, iteration, first_sample + (uint64_t)k,
                             (uint32_t)(s + DS_LS_UNIFORM_STEP), 1, &u);
            if (!(u < exp(la < 0.0 ? la : 0.0))) continue;
            acc += 1.0;
            memcpy(x + o, xp + o, (size_t)d * sizeof(ds_real));
            memcpy(g + o, gp + o, (size_t)d * sizeof(ds_real));
            lr[k] = lrp[k];
            if (collect_cap && s > p->burn_in && !p->store_states) {
                collect_row(cx, n_collected, d, w, xp + o, idx, k);
                clr[n_collected++] = lrp[k];
            }
        }
        /* store_states: every chain's state after this step, accepted or not */
        if (collect_cap && s > p->burn_in && p->store_states) {
            for (int k = 0; k < n; k++) collect_row(cx, n_collected + (size_t)k, d, w, x + (size_t)k * d, idx, k);
            memcpy(clr + n_collected, lr, (size_t)n * sizeof(ds_real));
            n_collected += (size_t)n;
        }
        all_acc += acc;
        all_prop += n;
        if (s > p->burn_in) {
            post_acc += acc;
            post_prop += n;
        }
        win_acc += acc;
        win_prop += n;
        if (s % p->adapt_every == 0) {
            double counts[2] = {win_acc, win_prop};
            if (p->reduce) DS_TRY_GOTO(rc, p->reduce(p->reduce_ctx, counts), done);
            rate = counts[1] > 0.0 ? counts[0] / counts[1] : 0.0;
            win_acc = win_prop = 0.0;
        }
        if (stats) stats->final_step = step;
    }

    if (n_collected > 0) DS_TRY_GOTO(rc, ds_buffer_add(out_buffer, n_collected, cx, clr), done);
    if (stats) {
        stats->acceptance = all_prop > 0.0 ? all_acc / all_prop : 0.0;
        stats->acceptance_after_burn_in = post_prop > 0.0 ? post_acc / post_prop : 0.0;
        stats->added = (long)n_collected;
    }

done:
    ds_free(lr);
    ds_free(g);
    ds_free(xp);
    ds_free(lrp);
    ds_free(gp);
    ds_free(xi);
    ds_free(cx);
    ds_free(clr);
    return rc;
}

ds_status ds_ls_run(const ds_energy *e, const ds_ls_params *p, ds_rng r, uint64_t iteration,
                    uint64_t first_sample, int n, ds_real *x, ds_buffer *out_buffer, ds_ls_stats *stats)
{
    DS_CHECK(e != NULL && e->vt != NULL && e->vt->log_reward != NULL, DS_ERR_INVALID,
             "energy must be a built ds_energy with a log_reward function");
    DS_CHECK(e->dim >= 1, DS_ERR_INVALID, "energy dim must be >= 1, got %d", e->dim);
    DS_TRY(ds_ls_params_check(p));
    DS_CHECK(n >= 0, DS_ERR_INVALID, "n must be >= 0, got %d", n);
    DS_CHECK(n == 0 || x != NULL, DS_ERR_INVALID, "x must not be NULL");
    DS_CHECK(out_buffer == NULL || ds_buffer_dim(out_buffer) == e->dim, DS_ERR_INVALID,
             "out_buffer has dim %d but the energy has dim %d", ds_buffer_dim(out_buffer), e->dim);
    return ls_chains(e, p, r, iteration, first_sample, n, x, NULL, NULL, out_buffer, stats);
}

ds_status ds_ls_run_cond(const ds_energy *e, const ds_ls_params *p, ds_rng r, uint64_t iteration,
                         uint64_t first_sample, int n, ds_real *x, const ds_real *cond, const int32_t *idx,
                         ds_buffer *out, ds_ls_stats *stats)
{
    DS_TRY(ds_ls_params_check(p));
    const int d = e->dim;
    DS_CHECK(n >= 0 && (n == 0 || (x && cond && idx)), DS_ERR_INVALID, "conditional local search: bad arguments");
    DS_CHECK(out == NULL || ds_buffer_dim(out) == d + 1, DS_ERR_INVALID,
             "conditional local search: the buffer has width %d, rows [z, image] need %d", out ? ds_buffer_dim(out) : 0,
             d + 1);
    return ls_chains(e, p, r, iteration, first_sample, n, x, cond, idx, out, stats);
}
