/* modes: per-mode diagnostics of a sample set against the target's exact
 * mode weights (issue 20, section 1), for the targets whose modes are known
 * in closed form:
 *
 * - many_well (d/2 independent double wells in the first coordinate of each
 *   pair, g(a) = -a^4 + 6 a^2 + a/2): a pair is in its right-hand well when
 *   a lies right of the barrier a* (the local minimum of g between the wells,
 *   the energy's saddle, a* = -0.0417);
 *   its exact probability w = int_{a*}^inf e^g / int e^g is the same for
 *   every pair (w = 0.844311) because the wells are unequal only
 *   through the a/2 term. Reported: the mean over pairs of the fraction of
 *   samples in the right-hand well, the largest deviation of one pair's
 *   fraction from w, and the total-variation distance between the
 *   distribution of the number of right-hand wells per sample and its
 *   exact Poisson-binomial law (binomial here, since the p_j are equal),
 *   raw and importance-weighted (self-normalised weights exp(log w)).
 * - 2-D grid mixtures (25gmm, 9gmm, equal weights, isotropic components):
 *   each sample is assigned to its nearest grid mode (Voronoi cell). The
 *   mixture is a product of two 1-D mixtures, and in 1-D what a cell loses
 *   to a neighbour it gets back from that neighbour up to terms of order
 *   Phi(-3 spacing / (2 std)) (below 1e-40 for 25gmm and 9gmm), so the
 *   cell masses are 1/M and the total-variation distance of the cell
 *   occupancies against 1/M is reported.
 *
 * Counts are integers, so shards on several ranks are summed before the
 * distances are taken (ds_modes_*_counts, then ds_modes_finish). */
#ifndef DS_MODES_H
#define DS_MODES_H

#include "diffsamp/core.h"
#include "diffsamp/energy.h"

typedef enum ds_modes_kind {
    DS_MODES_NONE = 0,
    DS_MODES_WELLS,   /* many_well */
    DS_MODES_GRID     /* a 2-D grid mixture (the energy's mode_grid) */
} ds_modes_kind;

/* The diagnostic for a kind, from counts. Fields that do not apply are NaN. */
typedef struct ds_modes_result {
    double right_fraction;     /* wells: mean over pairs of the fraction right of a* */
    double right_exact;        /* wells: the exact weight w */
    double right_max_dev;      /* wells: max over pairs |fraction_j - w| */
    double wells_tv;           /* wells: TV(histogram of #right wells, Poisson-binomial) */
    double wells_tv_rw;        /* wells: the same with self-normalised importance weights */
    double grid_tv;            /* grid: TV(Voronoi-cell occupancy, 1/M) */
} ds_modes_result;

/* Which diagnostic applies to e (by family name and mode grid). */
ds_modes_kind ds_modes_kind_of(const ds_energy *e);

/* The barrier a* of the double well: the root of g'(a) = -4a^3 + 12a + 1/2
 * between the wells (Newton from 0, to machine precision). */
double ds_modes_well_barrier(void);

/* The exact probability of the right-hand well, int_{a*}^inf e^g da /
 * int e^g da, by adaptive Simpson quadrature in double on [-8, a*] and
 * [a*, 8] (e^g < e^-3700 beyond), relative tolerance 1e-14. */
double ds_modes_well_right_weight(void);

/* pmf[0..m] of the number of successes of m independent Bernoulli(p_j)
 * (Poisson-binomial), by the O(m^2) recursion. */
void ds_modes_poisson_binomial(int m, const double *p, double *pmf);

/* Accumulates the many_well counts of n samples x (n, dim) into
 * right[dim/2] (samples right of a* per pair) and hist[dim/2 + 1] (samples
 * per number of right-hand wells); with log_w != NULL also whist[dim/2 + 1]
 * += exp(log_w - shift) (the importance weights, shifted by the global
 * maximum of log_w). Adds to what the arrays hold. */
void ds_modes_wells_counts(const ds_real *x, long n, int dim, const double *log_w, double shift, double *right,
                           double *hist, double *whist);

/* Accumulates the Voronoi-cell counts of n 2-D samples x (n, 2) on the
 * per_axis^2 grid of `spacing` centred on 0 into cells[per_axis^2]. */
void ds_modes_grid_counts(const ds_real *x, long n, int per_axis, double spacing, double *cells);

/* Total variation 0.5 sum_k |counts_k / sum(counts) - p_k| over k = 0..m-1
 * (NaN when the counts sum to 0). */
double ds_modes_tv(int m, const double *counts, const double *p);

/* The many_well result from summed counts of `total` samples (whist may be
 * NULL: wells_tv_rw is then NaN). */
void ds_modes_wells_finish(int dim, long total, const double *right, const double *hist, const double *whist,
                           ds_modes_result *r);

/* The grid result from summed cell counts. */
void ds_modes_grid_finish(int per_axis, const double *cells, ds_modes_result *r);

/* All fields NaN. */
void ds_modes_result_clear(ds_modes_result *r);

#endif
