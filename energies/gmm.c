/* gmm: the 2-D Gaussian mixtures of the reference (GFNOrg/gfn-diffusion,
 * energy_sampling/energies/nine_gmm.py and twenty_five_gmm.py).
 *
 * Both are equal-weight mixtures of isotropic Gaussians, normalised, so
 * log Z = 0:
 *   9gmm:  modes {-5,0,5}^2,              std 0.5477222 (the reference's literal)
 *   25gmm: modes {-10,-5,0,5,10}^2,       covariance 0.3 I
 * Keys (defaults: the reference's values): energy.spacing (both), energy.std
 * (9gmm) and energy.variance (25gmm), each family spelling the width as its
 * reference file does.
 * log R = logsumexp_m(-|x - mu_m|^2 / (2 s^2)) - log M - (d/2) log(2 pi s^2),
 * evaluated with the maximum subtracted so far tails stay finite. */
#include "diffsamp/energy.h"

#include <math.h>
#include <stdlib.h>

#define GMM_DIM 2
#define GMM_MAX_MODES 25

typedef struct gmm_spec {
    int nmodes;
    int per_axis;
    double spacing;
    double std;
    double mu[GMM_MAX_MODES][GMM_DIM];
} gmm_spec;

static void gmm_grid(gmm_spec *g, int per_axis, double spacing, double std)
{
    g->nmodes = per_axis * per_axis;
    g->per_axis = per_axis;
    g->spacing = spacing;
    g->std = std;
    int half = per_axis / 2;
    for (int a = 0; a < per_axis; a++)
        for (int b = 0; b < per_axis; b++) {
            g->mu[a * per_axis + b][0] = spacing * (a - half);
            g->mu[a * per_axis + b][1] = spacing * (b - half);
        }
}

static ds_status gmm_check_dim(int dim)
{
    DS_CHECK(dim == GMM_DIM, DS_ERR_CONFIG,
             "the Gaussian-mixture energies are defined in 2 dimensions only; got dim = %d "
             "(set energy.dim to 2 or leave it 0 for the default)", dim);
    return DS_OK;
}

static ds_status gmm_create(const gmm_spec *proto, void **state)
{
    gmm_spec *g = malloc(sizeof *g);
    DS_ALLOC_CHECK(g);
    *g = *proto;
    *state = g;
    return DS_OK;
}

/* The keys of each family, in table order. */
enum { GMM_SPACING = 0, GMM_WIDTH = 1 };

static const ds_energy_key gmm9_keys[] = {
    {"spacing", DS_EKEY_DOUBLE, 5.0, NULL, 0, 1e6, 1, "distance between neighbouring modes of the 3x3 grid"},
    {"std", DS_EKEY_DOUBLE, 0.5477222, NULL, 0, 1e6, 1, "std of each mixture component"},
};
static const ds_energy_key gmm25_keys[] = {
    {"spacing", DS_EKEY_DOUBLE, 5.0, NULL, 0, 1e6, 1, "distance between neighbouring modes of the 5x5 grid"},
    {"variance", DS_EKEY_DOUBLE, 0.3, NULL, 0, 1e12, 1, "variance of each mixture component"},
};

static ds_status gmm9_create(int dim, const ds_energy_args *args, void **state)
{
    (void)dim;
    gmm_spec g;
    gmm_grid(&g, 3, args->v[GMM_SPACING].num, args->v[GMM_WIDTH].num);
    return gmm_create(&g, state);
}

static ds_status gmm25_create(int dim, const ds_energy_args *args, void **state)
{
    (void)dim;
    gmm_spec g;
    gmm_grid(&g, 5, args->v[GMM_SPACING].num, sqrt(args->v[GMM_WIDTH].num));
    return gmm_create(&g, state);
}

static int gmm_mode_grid(const void *state, int dim, int *per_axis, double *spacing)
{
    (void)dim;
    const gmm_spec *g = state;
    *per_axis = g->per_axis;
    *spacing = g->spacing;
    return 1;
}

static void gmm_destroy(void *state) { free(state); }

/* Per-point log R, gradient g and responsibilities resp (nmodes). */
static double gmm_point(const gmm_spec *g, const double x[GMM_DIM], double grad[GMM_DIM],
                        double resp[GMM_MAX_MODES])
{
    const double inv_var = 1.0 / (g->std * g->std);
    double lmax = -INFINITY;
    for (int m = 0; m < g->nmodes; m++) {
        double r2 = 0.0;
        for (int j = 0; j < GMM_DIM; j++) {
            double dx = x[j] - g->mu[m][j];
            r2 += dx * dx;
        }
        resp[m] = -0.5 * r2 * inv_var;
        if (resp[m] > lmax) lmax = resp[m];
    }
    double sum = 0.0;
    for (int m = 0; m < g->nmodes; m++) {
        /* below -708.4 exp is subnormal (glibc's slow path, 10x the cost) and
         * its weight is below 1e-308 of the leading mode's: exactly nothing
         * once added to sum >= 1, or to the float gradient */
        const double a = resp[m] - lmax;
        resp[m] = a < -708.4 ? 0.0 : exp(a);
        sum += resp[m];
    }
    for (int j = 0; j < GMM_DIM; j++) grad[j] = 0.0;
    for (int m = 0; m < g->nmodes; m++) {
        resp[m] /= sum;
        for (int j = 0; j < GMM_DIM; j++) grad[j] -= resp[m] * (x[j] - g->mu[m][j]) * inv_var;
    }
    return lmax + log(sum) - log((double)g->nmodes) -
           0.5 * GMM_DIM * (DS_LOG_2PI + 2.0 * log(g->std));
}

static ds_status gmm_log_reward(const void *state, int dim, int n, const ds_real *x,
                                const ds_real *cond, ds_real *log_r, ds_real *grad)
{
    (void)cond;
    const gmm_spec *g = state;
    double resp[GMM_MAX_MODES], xd[GMM_DIM], gd[GMM_DIM];
    for (int k = 0; k < n; k++) {
        for (int j = 0; j < GMM_DIM; j++) xd[j] = (double)x[(size_t)k * dim + j];
        log_r[k] = (ds_real)gmm_point(g, xd, gd, resp);
        if (grad)
            for (int j = 0; j < GMM_DIM; j++) grad[(size_t)k * dim + j] = (ds_real)gd[j];
    }
    return DS_OK;
}

/* H = sum_m r_m (g_m g_m^T - I/s^2) - grad grad^T with g_m = -(x - mu_m)/s^2. */
static ds_status gmm_hvp(const void *state, int dim, int n, const ds_real *x, const ds_real *cond,
                         const ds_real *v, ds_real *hv)
{
    (void)cond;
    const gmm_spec *g = state;
    const double inv_var = 1.0 / (g->std * g->std);
    double resp[GMM_MAX_MODES], xd[GMM_DIM], vd[GMM_DIM], gd[GMM_DIM], out[GMM_DIM];
    for (int k = 0; k < n; k++) {
        for (int j = 0; j < GMM_DIM; j++) {
            xd[j] = (double)x[(size_t)k * dim + j];
            vd[j] = (double)v[(size_t)k * dim + j];
        }
        gmm_point(g, xd, gd, resp);
        double gv = 0.0;
        for (int j = 0; j < GMM_DIM; j++) {
            gv += gd[j] * vd[j];
            out[j] = -vd[j] * inv_var;
        }
        for (int j = 0; j < GMM_DIM; j++) out[j] -= gd[j] * gv;
        for (int m = 0; m < g->nmodes; m++) {
            double gm[GMM_DIM], gmv = 0.0;
            for (int j = 0; j < GMM_DIM; j++) {
                gm[j] = -(xd[j] - g->mu[m][j]) * inv_var;
                gmv += gm[j] * vd[j];
            }
            for (int j = 0; j < GMM_DIM; j++) out[j] += resp[m] * gm[j] * gmv;
        }
        for (int j = 0; j < GMM_DIM; j++) hv[(size_t)k * dim + j] = (ds_real)out[j];
    }
    return DS_OK;
}

/* Sample k: the mode from one uniform (step 0), the offset from two normals
 * (step 1), all at (iteration 0, sample first + k). */
static ds_status gmm_sample(const void *state, int dim, ds_rng r, uint64_t first, int n, ds_real *x)
{
    const gmm_spec *g = state;
    for (int k = 0; k < n; k++) {
        double u, z[GMM_DIM];
        ds_rng_uniform_d(r, 0, first + (uint64_t)k, 0, 1, &u);
        ds_rng_normal_d(r, 0, first + (uint64_t)k, 1, GMM_DIM, z);
        int m = (int)(u * g->nmodes);
        if (m >= g->nmodes) m = g->nmodes - 1;
        for (int j = 0; j < GMM_DIM; j++)
            x[(size_t)k * dim + j] = (ds_real)(g->mu[m][j] + g->std * z[j]);
    }
    return DS_OK;
}

static ds_status gmm_log_z(const void *state, int dim, double *log_z)
{
    (void)state;
    (void)dim;
    *log_z = 0.0;
    return DS_OK;
}

const ds_energy_vtable ds_energy_9gmm = {
    .abi_version = DS_ENERGY_ABI_VERSION,
    .name = "9gmm",
    .doc = "mixture of 9 Gaussians on {-5,0,5}^2, std 0.5477 (normalised)",
    .default_dim = GMM_DIM,
    .dims = "2",
    DS_ENERGY_KEYS(gmm9_keys),
    .check_dim = gmm_check_dim,
    .create = gmm9_create,
    .destroy = gmm_destroy,
    .log_reward = gmm_log_reward,
    .hvp = gmm_hvp,
    .sample = gmm_sample,
    .log_z = gmm_log_z,
    .mode_grid = gmm_mode_grid,
};

const ds_energy_vtable ds_energy_25gmm = {
    .abi_version = DS_ENERGY_ABI_VERSION,
    .name = "25gmm",
    .doc = "mixture of 25 Gaussians on {-10,-5,0,5,10}^2, variance 0.3 (normalised)",
    .default_dim = GMM_DIM,
    .dims = "2",
    DS_ENERGY_KEYS(gmm25_keys),
    .check_dim = gmm_check_dim,
    .create = gmm25_create,
    .destroy = gmm_destroy,
    .log_reward = gmm_log_reward,
    .hvp = gmm_hvp,
    .sample = gmm_sample,
    .log_z = gmm_log_z,
    .mode_grid = gmm_mode_grid,
};
