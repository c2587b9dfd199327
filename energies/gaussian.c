/* gaussian: a diagonal Gaussian with fixed, non-trivial per-coordinate mean
 * and std, a target whose every quantity is known in closed form (a sanity
 * check for samplers and log Z estimators; not in the reference):
 *   mu_j = 0.5 ((j mod 3) - 1),  s_j = 0.75 + 0.25 (j mod 4),
 *   log R = -1/2 sum_j ((x_j - mu_j)/s_j)^2   (unnormalised: log R(mu) = 0),
 *   log Z = sum_j log(sqrt(2 pi) s_j). */
#include "diffsamp/energy.h"

#include <math.h>
#include <stdlib.h>


static double gaussian_mean(int j) { return 0.5 * (double)((j % 3) - 1); }
static double gaussian_std(int j) { return 0.75 + 0.25 * (double)(j % 4); }

static ds_status gaussian_check_dim(int dim)
{
    DS_CHECK(dim >= 1, DS_ERR_CONFIG, "the gaussian energy needs dim >= 1; got dim = %d", dim);
    return DS_OK;
}

static ds_status gaussian_create(int dim, const ds_energy_args *args, void **state)
{
    (void)dim;
    (void)args;
    *state = NULL;
    return DS_OK;
}

static void gaussian_destroy(void *state) { (void)state; }

static ds_status gaussian_log_reward(const void *state, int dim, int n, const ds_real *x,
                                     const ds_real *cond, ds_real *log_r, ds_real *grad)
{
    (void)state;
    (void)cond;
    for (int k = 0; k < n; k++) {
        double acc = 0.0;
        for (int j = 0; j < dim; j++) {
            double s = gaussian_std(j);
            double z = ((double)x[(size_t)k * dim + j] - gaussian_mean(j)) / s;
            acc += z * z;
            if (grad) grad[(size_t)k * dim + j] = (ds_real)(-z / s);
        }
        log_r[k] = (ds_real)(-0.5 * acc);
    }
    return DS_OK;
}

static ds_status gaussian_hvp(const void *state, int dim, int n, const ds_real *x,
                              const ds_real *cond, const ds_real *v, ds_real *hv)
{
    (void)state;
    (void)cond;
    (void)x;
    for (int k = 0; k < n; k++)
        for (int j = 0; j < dim; j++) {
            double s = gaussian_std(j);
            hv[(size_t)k * dim + j] = (ds_real)(-(double)v[(size_t)k * dim + j] / (s * s));
        }
    return DS_OK;
}

/* Sample k: dim normals at (iteration 0, sample first + k, step 0). */
static ds_status gaussian_sample(const void *state, int dim, ds_rng r, uint64_t first, int n,
                                 ds_real *x)
{
    (void)state;
    double *z = malloc(sizeof *z * (size_t)dim);
    DS_ALLOC_CHECK(z);
    for (int k = 0; k < n; k++) {
        ds_rng_normal_d(r, 0, first + (uint64_t)k, 0, dim, z);
        for (int j = 0; j < dim; j++)
            x[(size_t)k * dim + j] = (ds_real)(gaussian_mean(j) + gaussian_std(j) * z[j]);
    }
    free(z);
    return DS_OK;
}

static ds_status gaussian_log_z(const void *state, int dim, double *log_z)
{
    (void)state;
    double acc = 0.0;
    for (int j = 0; j < dim; j++) acc += 0.5 * DS_LOG_2PI + log(gaussian_std(j));
    *log_z = acc;
    return DS_OK;
}

const ds_energy_vtable ds_energy_gaussian = {
    .abi_version = DS_ENERGY_ABI_VERSION,
    .name = "gaussian",
    .doc = "diagonal Gaussian, mu_j = 0.5((j%3)-1), s_j = 0.75+0.25(j%4) (unnormalised)",
    .default_dim = 4,
    .dims = "1 or more",
    .check_dim = gaussian_check_dim,
    .create = gaussian_create,
    .destroy = gaussian_destroy,
    .log_reward = gaussian_log_reward,
    .hvp = gaussian_hvp,
    .sample = gaussian_sample,
    .log_z = gaussian_log_z,
};
