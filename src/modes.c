/* modes: per-mode diagnostics against exact mode weights (modes.h). */
#include "diffsamp/modes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

ds_modes_kind ds_modes_kind_of(const ds_energy *e)
{
    if (!e || !e->vt) return DS_MODES_NONE;
    if (e->vt->name && strcmp(e->vt->name, "many_well") == 0) return DS_MODES_WELLS;
    int per_axis;
    double spacing;
    if (e->dim == 2 && ds_energy_mode_grid(e, &per_axis, &spacing)) return DS_MODES_GRID;
    return DS_MODES_NONE;
}

/* The double-well factor of many_well (energies/many_well.c). */
static double well_g(double a) { return -a * a * a * a + 6.0 * a * a + 0.5 * a; }

double ds_modes_well_barrier(void)
{
    double a = 0.0;
    for (int k = 0; k < 50; k++) {
        const double f = -4.0 * a * a * a + 12.0 * a + 0.5, df = -12.0 * a * a + 12.0;
        const double next = a - f / df;
        if (next == a) break;
        a = next;
    }
    return a;
}

/* exp(g - 10): g peaks near 9.87, so the integrand stays below 1. */
static double well_f(double a) { return exp(well_g(a) - 10.0); }

/* Adaptive Simpson with Richardson correction on [lo, hi]; whole = the
 * Simpson estimate of this interval, tol its absolute tolerance. */
static double simpson(double lo, double hi, double flo, double fmid, double fhi, double whole, double tol, int depth)
{
    const double mid = 0.5 * (lo + hi), lm = 0.5 * (lo + mid), rm = 0.5 * (mid + hi);
    const double flm = well_f(lm), frm = well_f(rm);
    const double left = (mid - lo) / 6.0 * (flo + 4.0 * flm + fmid);
    const double right = (hi - mid) / 6.0 * (fmid + 4.0 * frm + fhi);
    const double diff = left + right - whole;
    if (depth <= 0 || fabs(diff) <= 15.0 * tol) return left + right + diff / 15.0;
    return simpson(lo, mid, flo, flm, fmid, left, 0.5 * tol, depth - 1) +
           simpson(mid, hi, fmid, frm, fhi, right, 0.5 * tol, depth - 1);
}

/* int_lo^hi exp(g - 10), summed over 64 panels so the recursion starts from
 * a grid that resolves both wells; tolerance rel * (a rough total). */
static double integrate(double lo, double hi, double abs_tol)
{
    const int panels = 64;
    const double h = (hi - lo) / panels;
    double sum = 0.0;
    for (int i = 0; i < panels; i++) {
        const double a = lo + i * h, b = a + h, m = 0.5 * (a + b);
        const double fa = well_f(a), fm = well_f(m), fb = well_f(b);
        sum += simpson(a, b, fa, fm, fb, h / 6.0 * (fa + 4.0 * fm + fb), abs_tol / panels, 40);
    }
    return sum;
}

double ds_modes_well_right_weight(void)
{
    const double bar = ds_modes_well_barrier();
    /* Z1 exp(-10) is about 1.0e0 (log Z1 = 9.37): an absolute tolerance of
     * 1e-15 is a relative one of about 1e-15 on each part. */
    const double left = integrate(-8.0, bar, 1e-15), right = integrate(bar, 8.0, 1e-15);
    return right / (left + right);
}

void ds_modes_poisson_binomial(int m, const double *p, double *pmf)
{
    pmf[0] = 1.0;
    for (int k = 1; k <= m; k++) pmf[k] = 0.0;
    for (int j = 0; j < m; j++) {
        /* pmf_j+1[k] = pmf_j[k] (1 - p) + pmf_j[k - 1] p, from the top down */
        for (int k = j + 1; k >= 1; k--) pmf[k] = pmf[k] * (1.0 - p[j]) + pmf[k - 1] * p[j];
        pmf[0] *= 1.0 - p[j];
    }
}

void ds_modes_wells_counts(const ds_real *x, long n, int dim, const double *log_w, double shift, double *right,
                           double *hist, double *whist)
{
    const double bar = ds_modes_well_barrier();
    const int pairs = dim / 2;
    for (long i = 0; i < n; i++) {
        int k = 0;
        for (int p = 0; p < pairs; p++) {
            if ((double)x[(size_t)i * dim + 2 * p] > bar) {
                right[p] += 1.0;
                k++;
            }
        }
        hist[k] += 1.0;
        if (log_w && whist) whist[k] += exp(log_w[i] - shift);
    }
}

void ds_modes_grid_counts(const ds_real *x, long n, int per_axis, double spacing, double *cells)
{
    const double half = 0.5 * (per_axis - 1) * spacing;
    for (long i = 0; i < n; i++) {
        long ia = lround(((double)x[2 * i] + half) / spacing), ib = lround(((double)x[2 * i + 1] + half) / spacing);
        /* the outer cells extend to infinity; NaN coordinates count nowhere */
        if (isnan((double)x[2 * i]) || isnan((double)x[2 * i + 1])) continue;
        ia = ia < 0 ? 0 : ia >= per_axis ? per_axis - 1 : ia;
        ib = ib < 0 ? 0 : ib >= per_axis ? per_axis - 1 : ib;
        cells[ia * per_axis + ib] += 1.0;
    }
}

double ds_modes_tv(int m, const double *counts, const double *p)
{
    double total = 0.0;
    for (int k = 0; k < m; k++) total += counts[k];
    if (!(total > 0.0)) return NAN;
    double tv = 0.0;
    for (int k = 0; k < m; k++) tv += fabs(counts[k] / total - p[k]);
    return 0.5 * tv;
}

void ds_modes_result_clear(ds_modes_result *r)
{
    r->right_fraction = r->right_exact = r->right_max_dev = NAN;
    r->wells_tv = r->wells_tv_rw = r->grid_tv = NAN;
}

void ds_modes_wells_finish(int dim, long total, const double *right, const double *hist, const double *whist,
                           ds_modes_result *r)
{
    ds_modes_result_clear(r);
    const int pairs = dim / 2;
    const double w = ds_modes_well_right_weight();
    r->right_exact = w;
    if (total <= 0 || pairs <= 0) return;
    double *p = malloc(sizeof(double) * (size_t)(2 * pairs + 1));
    if (!p) return;  /* the diagnostic stays NaN: it is not worth failing a run for */
    double *pmf = p + pairs;
    double mean = 0.0, dev = 0.0;
    for (int j = 0; j < pairs; j++) {
        const double f = right[j] / (double)total;
        mean += f;
        if (fabs(f - w) > dev) dev = fabs(f - w);
        p[j] = w;
    }
    r->right_fraction = mean / pairs;
    r->right_max_dev = dev;
    ds_modes_poisson_binomial(pairs, p, pmf);
    r->wells_tv = ds_modes_tv(pairs + 1, hist, pmf);
    if (whist) r->wells_tv_rw = ds_modes_tv(pairs + 1, whist, pmf);
    free(p);
}

void ds_modes_grid_finish(int per_axis, const double *cells, ds_modes_result *r)
{
    ds_modes_result_clear(r);
    const int m = per_axis * per_axis;
    double *p = malloc(sizeof(double) * (size_t)m);
    if (!p) return;
    for (int k = 0; k < m; k++) p[k] = 1.0 / m;
    r->grid_tv = ds_modes_tv(m, cells, p);
    free(p);
}
