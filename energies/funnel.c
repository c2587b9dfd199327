/* funnel: Neal's funnel as in the reference (GFNOrg/gfn-diffusion,
 * energy_sampling/energies/easy_funnel.py and hard_funnel.py):
 *   x_0 ~ N(0, s^2),  x_i | x_0 ~ N(0, exp(x_0)),  i = 1..d-1,
 * with s = energy.x0_std: 1 (easy_funnel) or 3 (hard_funnel) by default, the
 * reference's values. The density is
 * normalised, so log Z = 0:
 *   log R = -x0^2/(2 s^2) - log s - (d/2) log(2 pi) - (d-1) x0/2
 *           - exp(-x0)/2 * sum_i x_i^2.
 * Derivatives (w = exp(-x0), S = sum_i x_i^2):
 *   d/dx0 = -x0/s^2 - (d-1)/2 + w S/2,   d/dxi = -w xi,
 *   H00 = -1/s^2 - w S/2,  H0i = w xi,  Hii = -w. */
#include "diffsamp/energy.h"

#include <math.h>
#include <stdlib.h>


static ds_status funnel_check_dim(int dim)
{
    DS_CHECK(dim >= 2, DS_ERR_CONFIG,
             "a funnel needs dim >= 2 (x0 plus at least one x_i); got dim = %d "
             "(the reference uses 10, the default)", dim);
    return DS_OK;
}

/* The family's keys, in table order. */
enum { FUNNEL_X0_STD = 0 };

typedef struct funnel_state {
    double s; /* std of x0 */
} funnel_state;

static ds_status funnel_create(int dim, const ds_energy_args *args, void **state)
{
    (void)dim;
    funnel_state *f = malloc(sizeof *f);
    DS_ALLOC_CHECK(f);
    f->s = args->v[FUNNEL_X0_STD].num;
    *state = f;
    return DS_OK;
}

static void funnel_destroy(void *state) { free(state); }

static void funnel_log_reward_s(double s, int dim, int n, const ds_real *x, ds_real *log_r,
                                ds_real *grad)
{
    const double inv_var0 = 1.0 / (s * s);
    for (int k = 0; k < n; k++) {
        const ds_real *xk = x + (size_t)k * dim;
        double x0 = (double)xk[0];
        double w = exp(-x0);
        double sum2 = 0.0;
        for (int i = 1; i < dim; i++) sum2 += (double)xk[i] * (double)xk[i];
        log_r[k] = (ds_real)(-0.5 * x0 * x0 * inv_var0 - log(s) - 0.5 * dim * DS_LOG_2PI -
                             0.5 * (dim - 1) * x0 - 0.5 * w * sum2);
        if (grad) {
            ds_real *gk = grad + (size_t)k * dim;
            gk[0] = (ds_real)(-x0 * inv_var0 - 0.5 * (dim - 1) + 0.5 * w * sum2);
            for (int i = 1; i < dim; i++) gk[i] = (ds_real)(-w * (double)xk[i]);
        }
    }
}

static void funnel_hvp_s(double s, int dim, int n, const ds_real *x, const ds_real *v, ds_real *hv)
{
    const double inv_var0 = 1.0 / (s * s);
    for (int k = 0; k < n; k++) {
        const ds_real *xk = x + (size_t)k * dim;
        const ds_real *vk = v + (size_t)k * dim;
        double x0 = (double)xk[0], v0 = (double)vk[0];
        double w = exp(-x0);
        double sum2 = 0.0, xv = 0.0;
        for (int i = 1; i < dim; i++) {
            sum2 += (double)xk[i] * (double)xk[i];
            xv += (double)xk[i] * (double)vk[i];
        }
        hv[(size_t)k * dim] = (ds_real)((-inv_var0 - 0.5 * w * sum2) * v0 + w * xv);
        for (int i = 1; i < dim; i++)
            hv[(size_t)k * dim + i] = (ds_real)(w * (double)xk[i] * v0 - w * (double)vk[i]);
    }
}

/* Sample k: d normals at (iteration 0, sample first + k, step 0);
 * x0 = s z0, x_i = exp(x0/2) z_i. */
static ds_status funnel_sample_s(double s, int dim, ds_rng r, uint64_t first, int n, ds_real *x)
{
    double *z = malloc(sizeof *z * (size_t)dim);
    DS_ALLOC_CHECK(z);
    for (int k = 0; k < n; k++) {
        ds_real *xk = x + (size_t)k * dim;
        ds_rng_normal_d(r, 0, first + (uint64_t)k, 0, dim, z);
        double x0 = s * z[0];
        double sd = exp(0.5 * x0);
        xk[0] = (ds_real)x0;
        for (int i = 1; i < dim; i++) xk[i] = (ds_real)(sd * z[i]);
    }
    free(z);
    return DS_OK;
}

static ds_status funnel_log_z(const void *state, int dim, double *log_z)
{
    (void)state;
    (void)dim;
    *log_z = 0.0;
    return DS_OK;
}

static ds_status funnel_log_reward(const void *state, int dim, int n, const ds_real *x,
                                   const ds_real *cond, ds_real *log_r, ds_real *grad)
{
    (void)cond;
    funnel_log_reward_s(((const funnel_state *)state)->s, dim, n, x, log_r, grad);
    return DS_OK;
}

static ds_status funnel_hvp(const void *state, int dim, int n, const ds_real *x, const ds_real *cond,
                            const ds_real *v, ds_real *hv)
{
    (void)cond;
    funnel_hvp_s(((const funnel_state *)state)->s, dim, n, x, v, hv);
    return DS_OK;
}

static ds_status funnel_sample(const void *state, int dim, ds_rng r, uint64_t first, int n,
                               ds_real *x)
{
    return funnel_sample_s(((const funnel_state *)state)->s, dim, r, first, n, x);
}

/* The two families differ only in the default of x0_std. */
static const ds_energy_key easy_keys[] = {
    {"x0_std", DS_EKEY_DOUBLE, 1.0, NULL, 0, 1e3, 1, "std s of x0 ~ N(0, s^2) (the reference's easy funnel: 1)"},
};
static const ds_energy_key hard_keys[] = {
    {"x0_std", DS_EKEY_DOUBLE, 3.0, NULL, 0, 1e3, 1, "std s of x0 ~ N(0, s^2) (the reference's hard funnel: 3)"},
};

const ds_energy_vtable ds_energy_easy_funnel = {
    .abi_version = DS_ENERGY_ABI_VERSION,
    .name = "easy_funnel",
    .doc = "funnel x0 ~ N(0,1), x_i | x0 ~ N(0, exp(x0)) (normalised)",
    .default_dim = 10,
    .check_dim = funnel_check_dim,
    .dims = "2 or more",
    DS_ENERGY_KEYS(easy_keys),
    .create = funnel_create,
    .destroy = funnel_destroy,
    .log_reward = funnel_log_reward,
    .hvp = funnel_hvp,
    .sample = funnel_sample,
    .log_z = funnel_log_z,
};

const ds_energy_vtable ds_energy_hard_funnel = {
    .abi_version = DS_ENERGY_ABI_VERSION,
    .name = "hard_funnel",
    .doc = "funnel x0 ~ N(0,3^2), x_i | x0 ~ N(0, exp(x0)) (normalised)",
    .default_dim = 10,
    .check_dim = funnel_check_dim,
    .dims = "2 or more",
    DS_ENERGY_KEYS(hard_keys),
    .create = funnel_create,
    .destroy = funnel_destroy,
    .log_reward = funnel_log_reward,
    .hvp = funnel_hvp,
    .sample = funnel_sample,
    .log_z = funnel_log_z,
};
