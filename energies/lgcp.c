/* lgcp: the log-Gaussian Cox process on the Finnish pines data, the paper's
 * 1600-dimensional target (Sendera et al. 2024, after Moller et al. 1998; the
 * same form as GFNOrg/gfn-diffusion energies/lgcp.py, sde_sampler
 * distr/cox.py and fab-jax targets/cox.py).
 *
 * The unit square is cut into an n x n grid (energy.grid, 40); cell
 * (i, j) = (floor(n u), floor(n v)), clipped to n - 1, is coordinate
 * c = i n + j of the latent x in R^(n^2) (row-major, the row from the first
 * column of the points). With y_c the number of points in cell c, a = 1/n^2
 * the cell area and K_cc' = s2 exp(-|c - c'| / (n beta)) over integer cell
 * indices (s2 = energy.variance, beta = energy.length_scale),
 *   log R(x) = log N(x; mu 1, K) + sum_c [x_c y_c - a exp(x_c)],
 * the Gaussian with its normaliser -d/2 log 2 pi - 1/2 log det K, and the
 * Poisson log-likelihood without its constant -sum_c log y_c! (everyone drops
 * it, so log Z here is the literature's; it is not known exactly: the
 * literature's long-run estimates disagree, 512.6 in sde_sampler, 501.8 in
 * fab-jax, so the family has no log_z).
 *   grad = -K^{-1}(x - mu) + y - a exp(x),   H v = -K^{-1} v - a exp(x) v.
 *
 * K is factored once at create (LAPACK dpotrf through OpenBLAS) and inverted
 * (dpotri); a batch is then one (n_points x d) by (d x d) product: with
 * r = mu K^{-1} 1, K^{-1}(x - mu) = x K^{-1} - r, so the product reads x
 * itself and writes straight into grad (no per-state triangular solves and no
 * copy of the batch). In the float build the product is an sgemm against a
 * float K^{-1}, the per-element terms are in double.
 *
 * The points: energy.points is a CSV file with a header line (two column
 * names, e.g. x,y) and one point per line; lines starting with '#' are
 * comments, and a comment `# window: x0 x1 y0 y1` says the points lie in that
 * rectangle and are rescaled to the unit square ((x - x0)/(x1 - x0), ...);
 * without one they must lie in the unit square already. The default,
 * `finpines`, names the CSV that the build extracts with Rscript from Debian's
 * r-cran-spatstat.data (scripts/finpines.R; window [-5, 5] x [-8, 2], 126
 * trees): $DS_DATA_DIR/finpines.csv when DS_DATA_DIR is set, else the build
 * tree's data/finpines.csv. */
#include "diffsamp/energy.h"

#include "diffsamp/blas.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef DS_LGCP_DATA_DIR
#define DS_LGCP_DATA_DIR "data"
#endif

/* LAPACK (OpenBLAS ships it): Cholesky factor and inverse from it. */
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info);

#if defined(DS_REAL_DOUBLE)
#define LGCP_GEMM cblas_dgemm
#else
#define LGCP_GEMM cblas_sgemm
#endif

/* After each product, ds_blas_done (diffsamp/blas.h): OpenBLAS's kernels can
 * leave the vector registers' upper halves dirty, and the libm exp calls that
 * follow then pay the SSE penalty (measured in a training run: the
 * elementwise part 26x slower, 2.6 s instead of 0.10 s over 80 calls). */

/* Rows per product when log R is asked without a gradient (into scratch). */
#define LGCP_CHUNK 256

/* The family's keys, in table order. */
enum { LGCP_POINTS = 0, LGCP_GRID, LGCP_VARIANCE, LGCP_LENGTH, LGCP_MEAN };

typedef struct lgcp_state {
    int n, d;
    double area;     /* a = 1/d */
    double mean;     /* mu */
    double log_norm; /* -d/2 log 2 pi - 1/2 log det K */
    ds_real *kinv;   /* (d, d) K^{-1} */
    double *r;       /* (d) mu K^{-1} 1 */
    double *counts;  /* (d) y */
    ds_real *scratch; /* (LGCP_CHUNK, d): x K^{-1} when no gradient is asked */
} lgcp_state;

static ds_status lgcp_check_dim(int dim)
{
    int n = (int)floor(sqrt((double)dim) + 0.5);
    DS_CHECK(dim >= 4 && n * n == dim && n <= 100, DS_ERR_CONFIG,
             "lgcp needs dim = grid^2 for energy.grid from 2 to 100 (1600 for the paper's 40 x 40 "
             "grid); got dim = %d", dim);
    return DS_OK;
}

static void lgcp_destroy(void *state)
{
    lgcp_state *g = state;
    if (!g) return;
    free(g->kinv);
    free(g->r);
    free(g->counts);
    free(g->scratch);
    free(g);
}

/* The file the points key names ("finpines" = the build's extract). */
static void points_path(const char *key, char *path, size_t size)
{
    if (strcmp(key, "finpines") != 0) {
        snprintf(path, size, "%s", key);
        return;
    }
    const char *dir = getenv("DS_DATA_DIR");
    snprintf(path, size, "%s/finpines.csv", dir && dir[0] ? dir : DS_LGCP_DATA_DIR);
}

/* Reads the points of path and bins them into counts (n x n). */
static ds_status read_points(const char *key, int n, double *counts)
{
    char path[DS_ENERGY_TEXT_MAX + 64];
    points_path(key, path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f && strcmp(key, "finpines") == 0)
        return ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__,
                            "energy 'lgcp': cannot open %s (energy.points: finpines): %s; `make build` "
                            "extracts it with Rscript from r-cran-spatstat.data (scripts/deps.sh installs "
                            "it), or set DS_DATA_DIR to the folder holding finpines.csv, or "
                            "energy.points to a CSV of x,y points", path, strerror(errno));
    DS_CHECK(f != NULL, DS_ERR_IO, "energy 'lgcp': cannot open energy.points file %s: %s", path,
             strerror(errno));
    double x0 = 0.0, x1 = 1.0, y0 = 0.0, y1 = 1.0;
    int header = 0, points = 0, lineno = 0;
    char line[512];
    ds_status rc = DS_OK;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            rc = ds_error_set(DS_ERR_FORMAT, __FILE__, __LINE__, __func__,
                              "%s:%d: error: line longer than %d characters", path, lineno,
                              (int)sizeof line - 2);
            break;
        }
        char *s = line;
        while (*s == ' ' || *s == '\t') s++;
        if (*s == '\n' || *s == '\r' || *s == '\0') continue;
        if (*s == '#') {
            if (strncmp(s, "# window:", 9) == 0) {
                if (sscanf(s + 9, "%lf %lf %lf %lf", &x0, &x1, &y0, &y1) != 4 || !isfinite(x0) ||
                    !isfinite(x1) || !isfinite(y0) || !isfinite(y1) || !(x1 > x0) || !(y1 > y0)) {
                    rc = ds_error_set(DS_ERR_FORMAT, __FILE__, __LINE__, __func__,
                                      "%s:%d: error: expected '# window: x0 x1 y0 y1' with x0 < x1 "
                                      "and y0 < y1, found '%.60s'", path, lineno, s);
                    break;
                }
            }
            continue;
        }
        if (!header) { /* column names */
            header = 1;
            if (!strchr(s, ',')) {
                rc = ds_error_set(DS_ERR_FORMAT, __FILE__, __LINE__, __func__,
                                  "%s:%d: error: expected a header line of two column names "
                                  "(e.g. x,y), found '%.60s'", path, lineno, s);
                break;
            }
            continue;
        }
        char *end = NULL;
        errno = 0;
        double u = strtod(s, &end);
        int ok = end != s && errno == 0;
        char *t = end;
        while (ok && (*t == ' ' || *t == '\t')) t++;
        ok = ok && *t == ',';
        double v = ok ? strtod(t + 1, &end) : 0.0;
        ok = ok && end != t + 1 && errno == 0;
        while (ok && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')) end++;
        ok = ok && *end == '\0' && isfinite(u) && isfinite(v);
        if (!ok) {
            rc = ds_error_set(DS_ERR_FORMAT, __FILE__, __LINE__, __func__,
                              "%s:%d: error: expected a point 'x,y' (two finite numbers), found '%.60s'",
                              path, lineno, s);
            break;
        }
        if (u < x0 || u > x1 || v < y0 || v > y1) {
            rc = ds_error_set(DS_ERR_FORMAT, __FILE__, __LINE__, __func__,
                              "%s:%d: error: point (%g, %g) lies outside the window [%g, %g] x [%g, %g] "
                              "(a '# window: x0 x1 y0 y1' comment sets it; the default is the unit "
                              "square)", path, lineno, u, v, x0, x1, y0, y1);
            break;
        }
        /* Rescale to the unit square, then the cell; a point on the upper
         * edge goes to the last cell. */
        int i = (int)floor(n * ((u - x0) / (x1 - x0)));
        int j = (int)floor(n * ((v - y0) / (y1 - y0)));
        if (i > n - 1) i = n - 1;
        if (j > n - 1) j = n - 1;
        counts[(size_t)i * n + j] += 1.0;
        points++;
    }
    if (rc == DS_OK && ferror(f))
        rc = ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__, "%s: read error", path);
    if (rc == DS_OK && points == 0)
        rc = ds_error_set(DS_ERR_FORMAT, __FILE__, __LINE__, __func__,
                          "%s: no points (expected a header line x,y and one 'x,y' line per point)",
                          path);
    fclose(f);
    return rc;
}

static ds_status lgcp_create(int dim, const ds_energy_args *args, void **state)
{
    const int n = (int)args->v[LGCP_GRID].num;
    DS_CHECK(n * n == dim, DS_ERR_CONFIG,
             "energy 'lgcp': energy.grid = %d needs energy.dim = %d (grid^2); got dim = %d", n, n * n,
             dim);
    lgcp_state *g = calloc(1, sizeof *g);
    DS_ALLOC_CHECK(g);
    const size_t d = (size_t)dim;
    double *k = malloc(sizeof *k * d * d);
    g->kinv = malloc(sizeof *g->kinv * d * d);
    g->r = malloc(sizeof *g->r * d);
    g->counts = calloc(d, sizeof *g->counts);
    g->scratch = malloc(sizeof *g->scratch * d * LGCP_CHUNK);
    ds_status rc = DS_OK;
    if (!k || !g->kinv || !g->r || !g->counts || !g->scratch) {
        rc = ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__,
                          "energy 'lgcp': out of memory for the %zu x %zu prior covariance", d, d);
        goto done;
    }
    g->n = n;
    g->d = dim;
    g->area = 1.0 / (double)dim;
    g->mean = args->v[LGCP_MEAN].num;
    DS_TRY_GOTO(rc, read_points(args->v[LGCP_POINTS].text, n, g->counts), done);

    const double s2 = args->v[LGCP_VARIANCE].num, scale = n * args->v[LGCP_LENGTH].num;
    for (int c = 0; c < dim; c++)
        for (int e = 0; e < dim; e++) {
            double di = (double)(c / n - e / n), dj = (double)(c % n - e % n);
            k[(size_t)c * d + e] = s2 * exp(-sqrt(di * di + dj * dj) / scale);
        }
    int info = 0;
    dpotrf_("L", &dim, k, &dim, &info);
    if (info != 0) {
        rc = ds_error_set(DS_ERR_CONFIG, __FILE__, __LINE__, __func__,
                          "energy 'lgcp': the prior covariance is not positive definite (dpotrf info %d) "
                          "for energy.variance %g, energy.length_scale %g", info, s2,
                          args->v[LGCP_LENGTH].num);
        goto done;
    }
    /* Column-major "L" of a symmetric row-major matrix is its upper triangle
     * read row-wise; the diagonal is the same either way. */
    double log_det = 0.0;
    for (size_t c = 0; c < d; c++) log_det += 2.0 * log(k[c * d + c]);
    g->log_norm = -0.5 * (double)dim * DS_LOG_2PI - 0.5 * log_det;
    dpotri_("L", &dim, k, &dim, &info);
    if (info != 0) {
        rc = ds_error_set(DS_ERR_CONFIG, __FILE__, __LINE__, __func__,
                          "energy 'lgcp': inverting the prior covariance failed (dpotri info %d)", info);
        goto done;
    }
    /* dpotri filled the column-major lower triangle: row-major entries
     * (c, e) with e >= c. Mirror, then store in ds_real. */
    for (size_t c = 0; c < d; c++)
        for (size_t e = 0; e < c; e++) k[c * d + e] = k[e * d + c];
    for (size_t c = 0; c < d; c++) {
        double acc = 0.0;
        for (size_t e = 0; e < d; e++) {
            acc += k[c * d + e];
            g->kinv[c * d + e] = (ds_real)k[c * d + e];
        }
        g->r[c] = g->mean * acc;
    }
done:
    free(k);
    if (rc != DS_OK) {
        lgcp_destroy(g);
        return rc;
    }
    *state = g;
    return DS_OK;
}

/* log R of rows x (m, d) given xk = x K^{-1} (m, d); when grad, xk is
 * replaced by the gradient (it may be the same array). */
static void lgcp_finish(const lgcp_state *g, int m, const ds_real *x, ds_real *xk, ds_real *log_r,
                        int grad)
{
    const int d = g->d;
    for (int k = 0; k < m; k++) {
        const ds_real *xr = x + (size_t)k * d;
        ds_real *wr = xk + (size_t)k * d;
        double quad = 0.0, lik = 0.0;
        for (int j = 0; j < d; j++) {
            const double xj = (double)xr[j];
            const double w = (double)wr[j] - g->r[j]; /* (K^{-1}(x - mu))_j */
            const double rate = g->area * exp(xj);
            quad += (xj - g->mean) * w;
            lik += xj * g->counts[j] - rate;
            if (grad) wr[j] = (ds_real)(-w + g->counts[j] - rate);
        }
        log_r[k] = (ds_real)(g->log_norm - 0.5 * quad + lik);
    }
}

static ds_status lgcp_log_reward(const void *state, int dim, int n, const ds_real *x,
                                 const ds_real *cond, ds_real *log_r, ds_real *grad)
{
    (void)cond;
    const lgcp_state *g = state;
    if (grad) { /* one product for the whole batch, straight into grad */
        LGCP_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, dim, dim, 1, x, dim, g->kinv, dim, 0,
                  grad, dim);
        ds_blas_done();
        lgcp_finish(g, n, x, grad, log_r, 1);
        return DS_OK;
    }
    for (int k0 = 0; k0 < n; k0 += LGCP_CHUNK) {
        const int m = n - k0 < LGCP_CHUNK ? n - k0 : LGCP_CHUNK;
        const ds_real *xr = x + (size_t)k0 * dim;
        LGCP_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, dim, dim, 1, xr, dim, g->kinv, dim, 0,
                  g->scratch, dim);
        ds_blas_done();
        lgcp_finish(g, m, xr, g->scratch, log_r + k0, 0);
    }
    return DS_OK;
}

static ds_status lgcp_hvp(const void *state, int dim, int n, const ds_real *x, const ds_real *cond,
                          const ds_real *v, ds_real *hv)
{
    (void)cond;
    const lgcp_state *g = state;
    LGCP_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, dim, dim, -1, v, dim, g->kinv, dim, 0, hv,
              dim);
    ds_blas_done();
    for (size_t i = 0; i < (size_t)n * dim; i++)
        hv[i] = (ds_real)((double)hv[i] - g->area * exp((double)x[i]) * (double)v[i]);
    return DS_OK;
}

static const ds_energy_key lgcp_keys[] = {
    {"points", DS_EKEY_STRING, 0, "finpines", 1, DS_ENERGY_TEXT_MAX - 1, 0,
     "CSV of points (header x,y; '# window: x0 x1 y0 y1' rescales, else the unit square); "
     "finpines = the build's extract of spatstat.data's finpines"},
    {"grid", DS_EKEY_INT, 40, NULL, 2, 100, 0, "cells per side n (energy.dim must be n^2)"},
    {"variance", DS_EKEY_DOUBLE, 1.91, NULL, 0, 1e6, 1, "prior variance s2 of the latent field"},
    {"length_scale", DS_EKEY_DOUBLE, 1.0 / 33.0, NULL, 0, 1e6, 1,
     "prior length scale beta: K = s2 exp(-|c - c'| / (n beta)) over cell indices"},
    {"mean", DS_EKEY_DOUBLE, 3.881281906951478, NULL, -1e6, 1e6, 0,
     "prior mean mu of every cell (ln 126 - 1.91/2)"},
};

const ds_energy_vtable ds_energy_lgcp = {
    .abi_version = DS_ENERGY_ABI_VERSION,
    .name = "lgcp",
    .doc = "log-Gaussian Cox process, Finnish pines on a 40 x 40 grid (log Z not known)",
    .default_dim = 1600,
    .check_dim = lgcp_check_dim,
    .dims = "grid^2 (1600 for energy.grid 40)",
    DS_ENERGY_KEYS(lgcp_keys),
    .create = lgcp_create,
    .destroy = lgcp_destroy,
    .log_reward = lgcp_log_reward,
    .hvp = lgcp_hvp,
};
