/* eval: stable reductions and the evaluation metrics. */
#include "diffsamp/eval.h"

#include <math.h>
#include <stdlib.h>

void ds_lse_init(ds_lse *a)
{
    a->max = -INFINITY;
    a->sum = 0;
}

void ds_lse_add(ds_lse *a, double v)
{
    if (isnan(v) || isnan(a->max)) { a->max = NAN; return; }
    if (v == -INFINITY) return;
    if (v <= a->max) {
        a->sum += exp(v - a->max);
    } else {
        a->sum = a->sum * exp(a->max - v) + 1.0;
        a->max = v;
    }
}

void ds_lse_merge(ds_lse *a, const ds_lse *b)
{
    if (isnan(a->max) || isnan(b->max)) { a->max = NAN; return; }
    if (b->max == -INFINITY) return;
    if (a->max == -INFINITY) { *a = *b; return; }
    if (b->max <= a->max) {
        a->sum += b->sum * exp(b->max - a->max);
    } else {
        a->sum = a->sum * exp(a->max - b->max) + b->sum;
        a->max = b->max;
    }
}

double ds_lse_value(const ds_lse *a)
{
    if (isnan(a->max)) return NAN;
    if (a->max == -INFINITY) return -INFINITY;
    return a->max + log(a->sum);
}

double ds_logsumexp(const double *v, long n)
{
    ds_lse a;
    ds_lse_init(&a);
    for (long i = 0; i < n; i++) ds_lse_add(&a, v[i]);
    return ds_lse_value(&a);
}

double ds_logmeanexp(const double *v, long n)
{
    if (n <= 0) return -INFINITY;
    return ds_logsumexp(v, n) - log((double)n);
}

int ds_eval_grid_modes(const ds_real *x, long n, int per_axis, double spacing, double radius, int min_count)
{
    int nm = per_axis * per_axis;
    int *count = calloc((size_t)nm, sizeof *count);
    if (!count) return -1;
    const double half = 0.5 * (per_axis - 1) * spacing;
    for (long i = 0; i < n; i++) {
        double px = (double)x[2 * i], py = (double)x[2 * i + 1];
        long ia = lround((px + half) / spacing), ib = lround((py + half) / spacing);
        if (ia < 0 || ia >= per_axis || ib < 0 || ib >= per_axis) continue;
        double dx = px - (ia * spacing - half), dy = py - (ib * spacing - half);
        if (dx * dx + dy * dy <= radius * radius) count[ia * per_axis + ib]++;
    }
    int hit = 0;
    for (int m = 0; m < nm; m++) hit += count[m] >= min_count;
    free(count);
    return hit;
}
